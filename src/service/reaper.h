/* reaper.h - the periodic task that finds instances placed on nodes whose
 * last report is older than NODE_TTL, releases their reservations and puts
 * them back in the queue, so a worker places them again and the cluster
 * manager gets a new result for the same job id and instance. */
#ifndef CS_REAPER_H
#define CS_REAPER_H

#include "error.h"

struct svc_ctx;

typedef struct reaper reaper;

/* The thread starts at once, running every cfg->reaper_interval seconds. */
reaper *reaper_new(const struct svc_ctx *ctx, cs_error *err);
/* One pass, as the thread runs it; returns the instances re-queued. */
int reaper_run_once(const struct svc_ctx *ctx, double now);
void reaper_stop(reaper *r);
void reaper_free(reaper *r);

#endif
