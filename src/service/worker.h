/* worker.h - the scheduling workers: WORKERS threads, each with its own
 * engine context, taking job instances from the durable queue, placing
 * them, recording the outcome and handing the result to the deliverer. */
#ifndef CS_WORKER_H
#define CS_WORKER_H

#include "error.h"

struct svc_ctx;

typedef struct worker_pool worker_pool;

/* Threads start at once. NULL with err filled. */
worker_pool *worker_pool_new(const struct svc_ctx *ctx, int n, cs_error *err);
/* Each worker finishes its current job, then exits; joins them all. */
void worker_pool_stop(worker_pool *p);
void worker_pool_free(worker_pool *p);

#endif
