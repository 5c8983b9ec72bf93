/* engine.h - placement: filter the cluster's nodes for one job, score the
 * ones that qualify, keep the best k, and (for engine_place) reserve the
 * best atomically. Each filter rejects with one reason code; the counts per
 * reason explain an empty result. */
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

/* "0/12 nodes qualify: 7 insufficient cpu, 3 no technology unikernel, ...",
 * most frequent reason first. Returns what snprintf would. */
int engine_message(const engine_result *r, const job_spec *job, char *buf, size_t len);

#endif
