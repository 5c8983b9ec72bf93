/* service.h - the scheduler service as one object: it owns the cluster
 * table, the durable store, the node documents, the metrics, and the
 * threads (HTTP, workers, deliverers, reaper). It restores durable state
 * at start and shuts down in order. svc_ctx is the bundle of borrowed
 * handles the service's modules share. */
#ifndef CS_SERVICE_H
#define CS_SERVICE_H

#include <jansson.h>

#include "cluster.h"
#include "config.h"
#include "engine.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "nodedocs.h"
#include "store.h"

struct decisions;
struct deliver;
struct mirror;

/* Handles owned by the service, lent to its modules for its lifetime. */
typedef struct svc_ctx {
    const config *cfg;
    cslog *log;
    cluster *cluster;
    store *store;
    nodedocs *docs;
    metrics *metrics;
    struct deliver *deliver;
    struct mirror *mirror;       /* Redis mode: the local copy's follower; else NULL */
    struct decisions *decisions; /* the last decisions of this process's workers */
    engine_opts opts;            /* engine defaults from STRATEGY and TOP_K */
} svc_ctx;

typedef struct service service;

/* Opens the store in cfg->data_dir and replays it (nodes, reservations)
 * into a new cluster table. NULL with err filled. */
service *service_new(const config *cfg, cslog *log, cs_error *err);
/* Starts deliverers, workers, the reaper, then the HTTP server. -1 with
 * err filled (the caller then calls service_free, which stops what ran). */
int service_start(service *s, cs_error *err);
/* Stops, in order: HTTP (in-flight requests finish), workers (after their
 * current job), the reaper, the deliverers (undelivered results stay in
 * the outbox), then flushes and closes the store. Idempotent. */
void service_stop(service *s);
void service_free(service *s);

/* Seconds since the epoch (wall clock: comparable across restarts). */
double svc_now(void);
/* Seconds on the monotonic clock (for durations). */
double svc_mono(void);

/* The node document as answered and sent in results: stored fields plus
 * the live view at now. New reference, or NULL if the node is unknown. */
json_t *svc_node_doc(const svc_ctx *c, const char *node_id, double now);

#endif
