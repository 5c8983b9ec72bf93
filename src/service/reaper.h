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
/* Whether the reaper holds back because most nodes fell silent at once:
 * some silent (past NODE_TTL), and the silent and the late (past half of
 * it) together more than REAPER_HOLD_MIN and at least
 * REAPER_HOLD_SHARE_PCT percent of the nodes heard within REAPER_HOLD_TTLS
 * times NODE_TTL. The likelier cause is then on this side (the service or
 * its store too loaded to take the reports in time, or cut off from the
 * nodes), and moving most of the cluster's instances onto the few nodes
 * still heard would add to the load. Late nodes count so that a wave of
 * nodes passing the TTL one after another is held from its start (nodes
 * must report at least every NODE_TTL / 3 for a healthy cluster to have
 * none late); long-gone registrations count for nothing. The reaper thread
 * holds for REAPER_HOLD_TTLS times NODE_TTL at most, and after a hold gives
 * the nodes still silent one NODE_TTL to report. */
#define REAPER_HOLD_MIN 2
#define REAPER_HOLD_SHARE_PCT 55
#define REAPER_HOLD_TTLS 10
bool reaper_holds(size_t heard, size_t late, size_t silent);
/* One pass of re-queueing, as the thread runs it when not holding back;
 * returns the instances re-queued. */
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
