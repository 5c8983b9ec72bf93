/* reaper.h - the periodic task that finds instances placed on nodes whose
 * last report is older than NODE_TTL, releases their reservations and puts
 * them back in the queue, so a worker places them again and the cluster
 * manager gets a new result for the same job id and instance. */
#ifndef CS_REAPER_H
#define CS_REAPER_H

#include "cluster.h"
#include "error.h"

struct svc_ctx;

typedef struct reaper reaper;

/* The thread starts at once, running every cfg->reaper_interval seconds. */
reaper *reaper_new(const struct svc_ctx *ctx, cs_error *err);
/* One pass, as the thread runs it; returns the instances re-queued. */
int reaper_run_once(const struct svc_ctx *ctx, double now);
/* Puts one placed instance back in the queue after its node went away
 * (inactive or deleted): releases the reservation, re-queues durably,
 * counts it. 0, 1 when the store no longer has it placed on that node
 * (another process moved it), or -1 when the store failed (logged). */
int reaper_requeue(const struct svc_ctx *ctx, const reservation_view *r, double now,
                   const char *why);
void reaper_stop(reaper *r);
void reaper_free(reaper *r);

#endif
