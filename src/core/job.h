/* job.h - one instance of a job as the placement engine needs it: resources,
 * runtime, and the constraints that narrow the nodes. Owned strings. */
#ifndef CS_JOB_H
#define CS_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "cs_limits.h"
#include "strlist.h"

typedef enum engine_strategy {
    STRATEGY_DEFAULT = 0, /* use the engine's configured default */
    STRATEGY_MOST_FREE,
    STRATEGY_BEST_FIT,
    STRATEGY_SPREAD,
} engine_strategy;

/* Edge constraints: each is one filter of its own (with its own reasons)
 * and, with `prefer`, a ranking by the measured figure. */
typedef enum job_cons_kind {
    JOB_CONS_GEO = 1,      /* great-circle distance to a point, km */
    JOB_CONS_LATENCY,      /* the node's measured latency to an area, ms */
    JOB_CONS_CONNECTIVITY, /* Vivaldi estimate to every node running a job, ms */
} job_cons_kind;

typedef struct job_constraint {
    job_cons_kind kind;
    uint32_t index;           /* position in the job's "constraints" list */
    bool prefer;              /* rank lower distance / latency first */
    double threshold;         /* km (geo) or ms (latency, connectivity) */
    double lat, lon;          /* geo: degrees */
    char name[CS_ID_MAX + 1]; /* latency: the area; connectivity: the target job id */
} job_constraint;

/* How instances of one job are kept apart. */
typedef enum job_spread {
    SPREAD_NODE = 0, /* default: a node free of the job while there is one */
    SPREAD_NONE,     /* no anti-affinity */
    SPREAD_LABEL,    /* a label value (zone...) free of the job first, then a node */
} job_spread;

typedef struct job_spec {
    char id[CS_ID_MAX + 1];
    uint32_t instance;
    int64_t vcpus_milli;
    int64_t memory_mb;
    int32_t gpus;
    uint32_t virt;  /* exactly one VIRT_* bit */
    strlist arch;   /* any of these; required for unikernels */
    strlist addons; /* `addons` constraint: node must support all */
    strlist hosts;  /* `direct` constraint: node host (or id) among these */
    int has_direct; /* a direct constraint was given (even if it lists none) */
    strlist csi;    /* CSI drivers of the job's volumes: node needs all */
    engine_strategy strategy;
    uint32_t top_k;       /* 0 = engine default; CS_TOPK_MAX = all */
    job_constraint *cons; /* owned; n_cons geo / latency / connectivity constraints */
    size_t n_cons;
    job_spread spread;
    char spread_label[CS_NAME_MAX + 1]; /* SPREAD_LABEL: the label key */
} job_spec;

void job_spec_init(job_spec *j);
void job_spec_clear(job_spec *j);

int job_spec_set_id(job_spec *j, const char *id, cs_error *err);
int job_spec_set_instance(job_spec *j, double n, cs_error *err);
int job_spec_set_vcpus(job_spec *j, double v, cs_error *err);
int job_spec_set_memory(job_spec *j, double mb, cs_error *err);
int job_spec_set_gpus(job_spec *j, double n, cs_error *err);
int job_spec_set_virt(job_spec *j, const char *name, cs_error *err);
/* Splits "a;b;c" (the original's direct-constraint form) into hosts. */
int job_spec_add_direct(job_spec *j, const char *hosts, cs_error *err);
int job_spec_set_strategy(job_spec *j, const char *name, cs_error *err);

/* Edge constraints. index: the constraint's position in the job document.
 * Errors name "threshold", "location.lat", "location.lon", "area",
 * "target_job" (the caller prefixes the path). */
int job_spec_add_geo(job_spec *j, uint32_t index, double lat, double lon, double threshold_km,
                     bool prefer, cs_error *err);
int job_spec_add_latency(job_spec *j, uint32_t index, const char *area, double threshold_ms,
                         bool prefer, cs_error *err);
int job_spec_add_connectivity(job_spec *j, uint32_t index, const char *target_job, double max_ms,
                              bool prefer, cs_error *err);
/* "node" (the default), "none", or a label key such as "zone". */
int job_spec_set_spread(job_spec *j, const char *by, cs_error *err);

/* Whole-job checks that need several fields (virtualization present,
 * unikernel has an arch list). */
int job_spec_validate(const job_spec *j, cs_error *err);

const char *strategy_name(engine_strategy s);

#endif
