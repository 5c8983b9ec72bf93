/* engine.h - placement: filter the cluster's nodes for one job, score the
 * ones that qualify, keep the best k, and (for engine_place) reserve the
 * best atomically. Each filter rejects with one reason code; the counts per
 * reason (and per edge constraint) explain an empty result, and
 * engine_explain says for every node why it was left out or how it scored. */
#ifndef CS_ENGINE_H
#define CS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "job.h"

/* In the order the filters run; a node is counted under the first that
 * rejects it. */
typedef enum engine_reason {
    REASON_INACTIVE = 0,
    REASON_TECHNOLOGY,
    REASON_ARCH,
    REASON_DIRECT,
    REASON_ADDONS,
    REASON_CSI,
    REASON_GPU,
    REASON_CPU,
    REASON_MEMORY,
    /* Edge constraints, in the job's order, each with its own reasons. */
    REASON_NO_LOCATION,           /* geo: the node reports no location */
    REASON_TOO_FAR,               /* geo: farther than the threshold */
    REASON_NO_LATENCY,            /* latency: nothing measured to the area */
    REASON_LATENCY,               /* latency: measured above the threshold */
    REASON_NO_COORDINATES,        /* connectivity: the node has no Vivaldi coordinates */
    REASON_TARGET_NOT_RUNNING,    /* connectivity: no instance of the target job is placed */
    REASON_TARGET_NO_COORDINATES, /* connectivity: a target's node has no coordinates */
    REASON_CONNECTIVITY,          /* connectivity: estimated latency above the bound */
    /* Anti-affinity: counted only while nodes free of the job qualify. */
    REASON_REPLICA_LABEL, /* its label value (zone...) already runs an instance */
    REASON_REPLICA_NODE,  /* it already runs an instance */
    REASON__COUNT
} engine_reason;

/* Stable machine name of a reason ("insufficient_cpu", ...). */
const char *engine_reason_key(engine_reason r);

typedef struct engine_opts {
    engine_strategy strategy; /* default when the job names none */
    uint32_t top_k;           /* default 10 */
    double weight_cpu;        /* most-free weights, default 1 and 1 */
    double weight_memory;
} engine_opts;

void engine_opts_default(engine_opts *o);

typedef struct engine_candidate {
    char node_id[CS_ID_MAX + 1];
    double score; /* 0..100, higher is better */
    int64_t free_cpu_milli, free_memory_mb;
    int32_t free_gpus;
} engine_candidate;

typedef struct engine_result {
    size_t n_nodes;     /* nodes looked at */
    size_t n_qualified; /* nodes that passed every filter */
    size_t reasons[REASON__COUNT];
    /* What engine_filters needs: the job ranked (borrowed: valid while the
     * caller's job lives), the nodes each of its edge constraints removed
     * (job->n_cons entries, owned by the ctx; NULL when it has none), and
     * whether other instances were placed (so the spread filter ran). */
    const job_spec *job;
    const size_t *cons_removed;
    bool spread_ran;
    const engine_candidate *candidates; /* best first; owned by the ctx */
    size_t n_candidates;
    bool placed;                 /* engine_place reserved candidates[0]... */
    bool existing;               /* ...or the instance already had a placement */
    char node_id[CS_ID_MAX + 1]; /* where it was placed */
} engine_result;

/* Per-thread scratch space, reused across decisions so the hot path does
 * not allocate. One per scheduling thread; not shareable. */
typedef struct engine_ctx engine_ctx;
engine_ctx *engine_ctx_new(const engine_opts *opts);
void engine_ctx_free(engine_ctx *ctx);

/* Dry run: rank without reserving. 0, or -1 with err filled. The result's
 * candidates stay valid until the next call on this ctx. */
int engine_rank(engine_ctx *ctx, cluster *c, const job_spec *job, double now, engine_result *out,
                cs_error *err);
/* Rank and reserve the best candidate that still fits at commit time. If the
 * instance already holds a reservation, returns it (existing = true) and
 * charges nothing. placed = false means no node qualified. */
int engine_place(engine_ctx *ctx, cluster *c, const job_spec *job, double now, engine_result *out,
                 cs_error *err);

/* One filter of the chain as it ran for a job: name ("inactive", "cpu",
 * "geo", "spread", ...), the position of its constraint in the job's
 * constraints list (-1 for the built-in filters) and how many nodes it
 * removed (each node is counted by the first filter that rejects it). */
typedef struct engine_filter_count {
    const char *filter;
    int constraint;
    size_t removed;
} engine_filter_count;

/* The filters that applied to the ranked job, in chain order, up to max;
 * returns how many there are (0 when r->job is NULL). */
size_t engine_filters(const engine_result *r, engine_filter_count *out, size_t max);

/* Why one node was left out, or how it ranked. */
typedef struct engine_node_explain {
    char node_id[CS_ID_MAX + 1];
    bool qualified;
    engine_reason reason;        /* when not qualified */
    int constraint;              /* index in the job's constraints list, or -1 */
    double value, limit;         /* the figure compared and its bound, NAN if none:
                                  * age / TTL s, free / requested vCPUs, MB or GPUs,
                                  * km, ms */
    double score;                /* qualified: 0..100 */
    uint32_t rank;               /* qualified: 1 = best */
    bool holds_instance;         /* the explained instance is placed here */
    char label[CS_NAME_MAX + 1]; /* REASON_REPLICA_LABEL: the label value */
} engine_node_explain;

/* engine_rank for one instance, plus every node's verdict in *nodes
 * (malloc'ed, out->n_nodes entries, the caller frees): qualified nodes
 * best first, then the rest by id. The instance's own reservation, if it
 * has one, counts as released, so a placed instance is explained as the
 * decision saw it. 0, or -1 with err. */
int engine_explain(engine_ctx *ctx, cluster *c, const job_spec *job, double now, engine_result *out,
                   engine_node_explain **nodes, cs_error *err);

/* A sentence for one node's verdict ("1234.5 km from 48.1,11.5, over the
 * threshold of 100 km"). Returns what snprintf would. */
int engine_explain_text(const engine_node_explain *x, const job_spec *job, char *buf, size_t len);

/* "0/12 nodes qualify: 7 insufficient cpu, 3 no technology unikernel, ...",
 * most frequent reason first. Returns what snprintf would. */
int engine_message(const engine_result *r, const job_spec *job, char *buf, size_t len);

#endif
