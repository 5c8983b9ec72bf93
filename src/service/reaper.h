/* reaper.h - the periodic task that finds instances placed on nodes whose
 * last report is older than NODE_TTL, releases their reservations and puts
 * them back in the queue, so a worker places them again and the cluster
 * manager gets a new result for the same job id and instance. */
#ifndef CS_REAPER_H
#define CS_REAPER_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster.h"
#include "error.h"

struct svc_ctx;

typedef struct reaper reaper;

/* The thread starts at once, running every cfg->reaper_interval seconds. */
reaper *reaper_new(const struct svc_ctx *ctx, cs_error *err);
/* Whether a pass moves nothing because too many of the nodes running
 * instances are silent at once (at least REAPER_HOLD_SHARE_PCT percent of
 * them, and more than REAPER_HOLD_MIN): then the likelier cause is on this
 * side (the service or its store too loaded to take the reports in time,
 * or cut off from the nodes), and moving most of the cluster's instances
 * onto the few nodes still heard would only add load. The Kubernetes node
 * lifecycle controller stops evicting in the same case. Nodes that run
 * nothing do not count, so long-dead registrations do not hold it. */
#define REAPER_HOLD_SHARE_PCT 55
#define REAPER_HOLD_MIN 2
bool reaper_holds(size_t silent, size_t total);
/* One pass, as the thread runs it; returns the instances re-queued (0
 * while reaper_holds). */
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
