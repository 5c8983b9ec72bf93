/* store.h - the durable side of the service: job queue, job outcomes,
 * node documents, reservations and the result outbox. Two backends behind
 * one table of functions (store_ops, in store_impl.h): SQLite in WAL mode
 * (store_sqlite.c, the embedded default; group commit: many callers' writes
 * share one transaction, each call returns once its write is durable) and
 * Redis (store_redis.c; several processes share it). A *shared* store
 * (Redis) is the authority for reservations: workers rank on their local
 * copy of the cluster and commit with store_place; the local copy follows
 * the store's change feed through store_follow. */
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
    uint64_t version;   /* shared stores: the change feed's position at intake,
                         * as of its last change other than a reservation;
                         * a worker's local copy must reach it before ranking
                         * (a reservation it lacks only costs a retry: the
                         * store checks capacity) */
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
/* Names one outbox entry for done, retry and give-up: its id, and the
 * instance it is for (the Redis store finds the entry through it). */
typedef struct outbox_key {
    int64_t id;
    char job_id[CS_ID_MAX + 1];
    uint32_t instance;
} outbox_key;
outbox_key outbox_key_of(const outbox_item *it);

/* Opens (creating if needed) DATA_DIR/scheduler.db. NULL with err filled. */
store *store_sqlite_open(const char *dir, cs_error *err);
/* True when other processes share the store (Redis): see store_place. */
bool store_shared(const store *s);
/* Flushes pending writes, wakes every waiter (store_take returns -1), frees. */
void store_close(store *s);

/* --- Intake ---------------------------------------------------------- */
/* Queues a job instance durably. Returns 0 when queued, 1 when this job id
 * and instance is already known (queued or decided: nothing is written, the
 * caller reports the existing state), -1 on a storage error. */
int store_enqueue(store *s, const char *job_id, uint32_t instance, const char *body, double now);
/* store_enqueue without waiting for the commit, for a caller that must
 * not block (the HTTP event thread): done(ud, rc) is called once with what
 * store_enqueue would return, when the write is durable or failed, on the
 * thread that committed it; it must not block. job_id and body are
 * borrowed until then. The write starts at the next store_flush_async (or
 * with any other write), so that a caller queueing several makes them
 * share one commit. Returns 0 when queued; -1 when not (the store is
 * closing, or the backend has no such call: see store_can_enqueue_async),
 * and then done is never called. */
typedef void (*store_done_fn)(void *ud, int rc);
bool store_can_enqueue_async(const store *s);
int store_enqueue_async(store *s, const char *job_id, uint32_t instance, const char *body,
                        double now, store_done_fn done, void *ud);
void store_flush_async(store *s);
/* Queues instances 0..n-1 of one job (replicate) in as few transactions as
 * possible; rcs[i] gets what store_enqueue would return for instance i.
 * Returns 0, or -1 when any instance failed. */
int store_enqueue_many(store *s, const char *job_id, uint32_t n, const char *body, double now,
                       int *rcs);
/* Puts a decided instance back in the queue (dead node: place it again).
 * Its old outcome is dropped in the same transaction. on_node: re-queue
 * only while it is placed on that node (NULL: whatever its state). 0 when
 * re-queued, 1 when it was not in that state, -1 on error. */
int store_requeue(store *s, const char *job_id, uint32_t instance, const char *on_node, double now);
/* Next queued instance, in arrival order, waiting up to timeout_ms.
 * 0 = got one (caller owns out), 1 = timed out, -1 = store closing.
 * An instance handed out and not finished is handed out again after a
 * restart (at-least-once); placement is idempotent per id and instance. */
int store_take(store *s, store_job *out, int timeout_ms);
/* Another instance only if this process has one at hand (read from the
 * store with an earlier take): no wait, no call to a shared store. 0 got
 * one; anything else: none now. */
int store_take_more(store *s, store_job *out);
size_t store_queue_depth(store *s);

/* --- Outcomes -------------------------------------------------------- */
/* Records a worker's decision in one transaction: the job's state and
 * result, the reservation (when placed; NULL otherwise), and an outbox row
 * holding `result` for delivery. Returns the outbox id (> 0), 0 when the
 * instance was deleted meanwhile (nothing written, nothing to deliver: the
 * caller drops its reservation), or -1. */
int64_t store_finish(store *s, const char *job_id, uint32_t instance, job_state state,
                     const reservation_view *res, const char *result, double now);
/* Several store_finish calls in as few transactions as possible: rc of
 * each request gets what store_finish would return. 0, or -1 when the
 * requests could not be submitted at all. */
typedef struct store_finish_req {
    const char *job_id;
    uint32_t instance;
    job_state state;
    const reservation_view *res;
    const char *result;
    double now;
    int64_t rc; /* out */
} store_finish_req;
int store_finish_many(store *s, store_finish_req *reqs, size_t n);
/* Shared stores only: commits a placement on res->node_id if the node is
 * still active (last report within ttl at now) and has room for res by the
 * store's own count of every process's reservations, all in one atomic
 * step with the job's state, the result's outbox entry and the queue
 * acknowledgement. */
typedef enum store_place_rc {
    STORE_PLACED = 0,  /* *outbox_id set */
    STORE_NO_ROOM = 1, /* node gone, inactive or full: try the next one */
    STORE_DECIDED = 2, /* already decided elsewhere; held_node names its node
                        * ("" when unschedulable) */
    STORE_GONE = 3,    /* the instance was deleted */
} store_place_rc;
int store_place(store *s, const char *job_id, uint32_t instance, const reservation_view *res,
                const char *result, double now, double ttl, int64_t *outbox_id,
                char held_node[CS_ID_MAX + 1]);
/* Several placements in one call to the store, committed in order: each
 * is checked against the store's count including the ones before it. */
typedef struct store_place_req {
    const char *job_id;
    uint32_t instance;
    const reservation_view *res;
    const char *result;
    double now, ttl;
    int rc;                        /* out: a store_place_rc, or -1 on a store error */
    int64_t outbox_id;             /* out: when placed */
    char held_node[CS_ID_MAX + 1]; /* out: when decided elsewhere */
} store_place_req;
/* 0, or -1 when the store could not be asked (then every rc is -1). */
int store_place_many(store *s, store_place_req *reqs, size_t n);
/* 0 and out filled, 1 unknown instance, -1 error. */
int store_status_get(store *s, const char *job_id, uint32_t instance, store_status *out);
/* Forgets the instance and its reservation. 0, 1 unknown, -1 error. */
int store_job_delete(store *s, const char *job_id, uint32_t instance);

/* --- Nodes ----------------------------------------------------------- */
/* What a shared store needs to check capacity itself: the node's capacity
 * after the report, and the usage figures this report carried. */
typedef struct store_node_caps {
    int64_t cpu_milli, memory_mb;
    int32_t gpus;
    bool cpu_pct_set, mem_pct_set;
    double cpu_pct, mem_pct;
    /* The merged document is the one stored already (a heartbeat): a
     * shared store may record the time and the usage flags alone, and
     * tell the other processes so without the document. */
    bool doc_unchanged;
} store_node_caps;
/* doc: the node's merged JSON document; last_report: its time. */
int store_node_put(store *s, const char *node_id, const char *doc, double last_report,
                   const store_node_caps *caps);
/* Forgets the node and its reservations: 0, 1 unknown, -1 error. A shared
 * store also re-queues the instances placed on it, atomically, and counts
 * them in *requeued (may be NULL); the embedded store leaves that to its
 * caller and sets 0. */
int store_node_delete(store *s, const char *node_id, size_t *requeued);

/* Replays durable state at start: every node (id, doc, last report), then
 * every reservation. Callbacks return 0 to go on. */
typedef struct store_loader {
    int (*node)(void *ud, const char *node_id, const char *doc, double last_report);
    int (*reservation)(void *ud, const reservation_view *r);
    void *ud;
} store_loader;
int store_load(store *s, const store_loader *l);

/* Shared stores: the change feed. Calls back for every change made by any
 * process since the last call (nodes reported or deleted, reservations
 * made or dropped), waiting up to timeout_ms for one. The first call, and
 * any call after the feed lost changes or the store was unreachable, is a
 * full snapshot: reload(), node() and reservation() for everything, then
 * reloaded(). Returns the number of changes
 * applied (>= 0), or -1 on error; *seq gets the feed position reached. */
typedef struct store_follower {
    void (*reload)(void *ud);   /* a snapshot follows... */
    void (*reloaded)(void *ud); /* ...and is complete: forget what it lacked */
    int (*node)(void *ud, const char *node_id, const char *doc, double last_report,
                bool cpu_pct_set, bool mem_pct_set);
    void (*node_gone)(void *ud, const char *node_id);
    void (*reservation)(void *ud, const reservation_view *r);
    void (*release)(void *ud, const char *job_id, uint32_t instance);
    /* A report that repeated the node's stored document (see
     * store_node_caps.doc_unchanged): its time and usage flags. */
    void (*touch)(void *ud, const char *node_id, double last_report, bool cpu_pct_set,
                  bool mem_pct_set);
    void *ud;
} store_follower;
int store_follow(store *s, const store_follower *f, int timeout_ms, uint64_t *seq);

/* --- Outbox ---------------------------------------------------------- */
/* Up to max items due at now (next_at <= now), oldest first. Returns the
 * count; the caller owns the items. Items stay in the outbox until done. */
int store_outbox_due(store *s, double now, outbox_item *out, int max);
/* Just before POSTing: claims the delivery of each item's job instance
 * for lease seconds, so that results of one instance reach the cluster
 * manager in the order they were decided. rcs[i]: 0 = claimed, send it
 * (released by done, retry or give-up, or when the lease ends); 1 = stale,
 * the entry is gone (delivered, or dropped with its decision when the
 * instance was re-queued or deleted): do not send it; 2 = busy, an older
 * result of the instance is being sent: try again later. Without the
 * claim, a result a deliverer holds in memory could be sent after the
 * result of the decision that replaced it. 0, or -1 on a store error (send
 * nothing; the entries stay in the outbox). */
enum { STORE_CLAIMED = 0, STORE_CLAIM_STALE = 1, STORE_CLAIM_BUSY = 2 };
int store_outbox_claim(store *s, const outbox_item *items, size_t n, double lease, int *rcs);
int store_outbox_done(store *s, const outbox_key *k); /* delivered */
/* Several deliveries recorded at once (one transaction where it can). */
int store_outbox_done_many(store *s, const outbox_key *ks, size_t n);
int store_outbox_retry(store *s, const outbox_key *k, uint32_t attempts, double next_at);
int store_outbox_give_up(store *s, const outbox_key *k); /* removed, counted by caller */
size_t store_outbox_depth(store *s);

/* Seconds on the monotonic clock: the stores' leases and timeouts, and the
 * service's own (svc_mono). */
double store_mono(void);

#endif
