/* store.h - the durable side of the service: job queue, job outcomes,
 * node documents, reservations and the result outbox. The embedded backend
 * is SQLite in WAL mode (store_sqlite.c); a Redis backend follows the same
 * contract. Every write is group-committed: many callers' writes share one
 * transaction, and each call returns only after its write is durable. */
#ifndef CS_STORE_H
#define CS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "error.h"

typedef struct store store;

typedef enum job_state {
    JOB_QUEUED = 0,
    JOB_PLACED,
    JOB_UNSCHEDULABLE,
} job_state;

const char *job_state_name(job_state s);

/* One queued job instance as a worker receives it. body: the job JSON as
 * received (owned, NUL-terminated). */
typedef struct store_job {
    char job_id[CS_ID_MAX + 1];
    uint32_t instance;
    char *body;
    double received_at; /* seconds since the epoch */
    uint32_t attempts;  /* times it was handed to a worker before */
} store_job;
void store_job_clear(store_job *j); /* frees body */

/* What is known about one job instance. result: the JSON last sent (or to
 * be sent) to the cluster manager, or NULL while queued. Owned. */
typedef struct store_status {
    job_state state;
    char node_id[CS_ID_MAX + 1]; /* "" unless placed */
    char *body;                  /* job as received */
    char *result;                /* result document, or NULL */
    double received_at, decided_at;
} store_status;
void store_status_clear(store_status *s);

/* A result waiting to be delivered to the cluster manager. */
typedef struct outbox_item {
    int64_t id;
    char job_id[CS_ID_MAX + 1];
    uint32_t instance;
    char *payload; /* JSON to POST; owned */
    uint32_t attempts;
    double created_at, next_at;
} outbox_item;
void outbox_item_clear(outbox_item *o);

/* Opens (creating if needed) DATA_DIR/scheduler.db. NULL with err filled. */
store *store_sqlite_open(const char *dir, cs_error *err);
/* Flushes pending writes, wakes every waiter (store_take returns -1), frees. */
void store_close(store *s);

/* --- Intake ---------------------------------------------------------- */
/* Queues a job instance durably. Returns 0 when queued, 1 when this job id
 * and instance is already known (queued or decided: nothing is written, the
 * caller reports the existing state), -1 on a storage error. */
int store_enqueue(store *s, const char *job_id, uint32_t instance, const char *body, double now);
/* Queues instances 0..n-1 of one job (replicate) in as few transactions as
 * possible; rcs[i] gets what store_enqueue would return for instance i.
 * Returns 0, or -1 when any instance failed. */
int store_enqueue_many(store *s, const char *job_id, uint32_t n, const char *body, double now,
                       int *rcs);
/* Puts a decided instance back in the queue (dead node: place it again).
 * Its old outcome is dropped in the same transaction. */
int store_requeue(store *s, const char *job_id, uint32_t instance, double now);
/* Next queued instance, in arrival order, waiting up to timeout_ms.
 * 0 = got one (caller owns out), 1 = timed out, -1 = store closing.
 * An instance handed out and not finished is handed out again after a
 * restart (at-least-once); placement is idempotent per id and instance. */
int store_take(store *s, store_job *out, int timeout_ms);
size_t store_queue_depth(store *s);

/* --- Outcomes -------------------------------------------------------- */
/* Records a worker's decision in one transaction: the job's state and
 * result, the reservation (when placed; NULL otherwise), and an outbox row
 * holding `result` for delivery. Returns the outbox id (> 0), 0 when the
 * instance was deleted meanwhile (nothing written, nothing to deliver: the
 * caller drops its reservation), or -1. */
int64_t store_finish(store *s, const char *job_id, uint32_t instance, job_state state,
                     const reservation_view *res, const char *result, double now);
/* 0 and out filled, 1 unknown instance, -1 error. */
int store_status_get(store *s, const char *job_id, uint32_t instance, store_status *out);
/* Forgets the instance and its reservation. 0, 1 unknown, -1 error. */
int store_job_delete(store *s, const char *job_id, uint32_t instance);

/* --- Nodes ----------------------------------------------------------- */
/* doc: the node's merged JSON document; last_report: its time. */
int store_node_put(store *s, const char *node_id, const char *doc, double last_report);
int store_node_delete(store *s, const char *node_id); /* also its reservations */

/* Replays durable state at start: every node (id, doc, last report), then
 * every reservation. Callbacks return 0 to go on. */
typedef struct store_loader {
    int (*node)(void *ud, const char *node_id, const char *doc, double last_report);
    int (*reservation)(void *ud, const reservation_view *r);
    void *ud;
} store_loader;
int store_load(store *s, const store_loader *l);

/* --- Outbox ---------------------------------------------------------- */
/* Up to max items due at now (next_at <= now), oldest first. Returns the
 * count; the caller owns the items. Items stay in the outbox until done. */
int store_outbox_due(store *s, double now, outbox_item *out, int max);
int store_outbox_done(store *s, int64_t id); /* delivered */
int store_outbox_retry(store *s, int64_t id, uint32_t attempts, double next_at);
int store_outbox_give_up(store *s, int64_t id); /* removed, counted by caller */
size_t store_outbox_depth(store *s);

#endif
