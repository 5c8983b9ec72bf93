/* job.h - one instance of a job as the placement engine needs it: resources,
 * runtime, and the constraints that narrow the nodes. Owned strings. */
#ifndef CS_JOB_H
#define CS_JOB_H

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
    uint32_t top_k; /* 0 = engine default; CS_TOPK_MAX = all */
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

/* Whole-job checks that need several fields (virtualization present,
 * unikernel has an arch list). */
int job_spec_validate(const job_spec *j, cs_error *err);

const char *strategy_name(engine_strategy s);

#endif
