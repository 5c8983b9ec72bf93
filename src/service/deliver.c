/* deliver.c - a bounded in-memory queue of results to POST, drained by a
 * few threads that share IN_FLIGHT POSTs in flight on keep-alive
 * connections (one httpc client per thread). The queue is only
 * a fast path: every item is already durable in the store's outbox, so
 * dropping one (queue full, shutdown) loses nothing; the periodic outbox
 * scan finds it again. */
#include "deliver.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpc.h"
#include "service.h"

#define QUEUE_CAP 4096
#define MAX_THREADS 8
#define POLL_INTERVAL 0.25 /* s between outbox scans */
#define POLL_BATCH 256
/* A fresh result belongs to the fast path; the outbox scan leaves it
 * alone for this long, so the two never deliver the same row at once. */
#define FAST_PATH_GRACE 2.0
#define HANDLED_MAX 4096
/* Results one thread takes from the ring at a time: their "delivered"
 * marks share one store write. */
#define DBATCH 32
/* A claimed instance is held back from other deliverers this much longer
 * than the batch's POSTs may take; only a dead holder lets a lease run out. */
#define CLAIM_MARGIN 2.0
/* A result held back behind an older one of its instance is due again
 * after this long. */
#define HELD_BACK_DELAY 0.2
/* Delivered results are marked done in the store together: while more
 * results wait in the ring, a thread keeps its marks (up to DONE_MAX / 2,
 * written after the first batch that ends DONE_DELAY s after the oldest)
 * and writes them with a later batch's, one store call for several
 * batches. A crash meanwhile only sends those results again (delivery is
 * at least once); a newer result of one of those instances can find the
 * claim the mark releases still held, and is sent on a later try. */
#define DONE_MAX 128
#define DONE_DELAY 0.005

typedef struct entry {
    outbox_item it;
    double received_at;
} entry;

/* POSTs in flight at once, all threads together; each thread keeps up to
 * its share (conc). One at a time, a thread sleeps through every round
 * trip and is woken once per result; with several in flight it sends
 * them all and one wake-up collects the answers that arrived meanwhile.
 * Claims keep two results of one instance from ever being in flight
 * together, so their order holds. */
#define IN_FLIGHT 32

/* "/api/result/" + an escaped id (3 bytes a character) + "/" + instance */
#define PATH_CAP (16 + 3 * CS_ID_MAX + 16)

typedef struct dthread {
    deliver *d;
    pthread_t thread;
    bool started;
    int index;
    httpc *hc;
    int conc; /* connections: IN_FLIGHT / threads */
    /* Delivered, not yet marked done (see DONE_MAX); guarded by the
     * deliverer's lock, since a scan must know them as in flight. */
    outbox_key pend[DONE_MAX];
    size_t npend;
    double pend_since; /* svc_mono() of the oldest */
} dthread;

struct deliver {
    const config *cfg;
    cslog *log;
    store *store;
    metrics *m;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    entry *ring; /* guarded by lock */
    size_t head, n;
    int64_t inflight[MAX_THREADS][DBATCH]; /* outbox ids a thread holds; 0 = none */
    bool stop;
    bool polling;
    /* Ids finished while a scan ran: the scan's read of the store may
     * predate their completion, so it must not queue them again. */
    int64_t *handled;
    size_t n_handled;
    bool handled_overflow;
    double next_poll;  /* monotonic */
    double started_at; /* wall clock: older rows are not on the fast path */
    atomic_bool abort; /* ends the POSTs in flight (httpc_post) */
    int nthreads;
    dthread t[MAX_THREADS];
};

double deliver_backoff(uint32_t attempts)
{
    if (attempts < 1)
        attempts = 1;
    if (attempts > 16)
        return 30.0;
    double d = 0.5 * ldexp(1.0, (int)attempts - 1);
    return d > 30.0 ? 30.0 : d;
}

/* Under lock: is this outbox id queued or being delivered? */
static bool known_locked(const deliver *d, int64_t id)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->ring[(d->head + i) % QUEUE_CAP].it.id == id)
            return true;
    for (int i = 0; i < d->nthreads; i++) {
        for (int k = 0; k < DBATCH; k++)
            if (d->inflight[i][k] == id)
                return true;
        for (size_t k = 0; k < d->t[i].npend; k++)
            if (d->t[i].pend[k].id == id)
                return true;
    }
    return false;
}

/* Under lock: queues e (moved) or frees it when full or stopping. */
static void push_locked(deliver *d, entry *e)
{
    if (d->stop || d->n == QUEUE_CAP) {
        log_debug(d->log, "result %s/%u left in the outbox (delivery queue full)", e->it.job_id,
                  e->it.instance);
        outbox_item_clear(&e->it);
        return;
    }
    d->ring[(d->head + d->n) % QUEUE_CAP] = *e;
    d->n++;
    pthread_cond_signal(&d->cond);
}

void deliver_submit(deliver *d, outbox_item *item, double received_at)
{
    entry e = {*item, received_at};
    memset(item, 0, sizeof *item);
    /* A fresh outbox id cannot be queued already: no lookup needed. */
    pthread_mutex_lock(&d->lock);
    push_locked(d, &e);
    pthread_mutex_unlock(&d->lock);
}

/* Called outside the lock; only one thread polls at a time. */
static void poll_outbox(deliver *d)
{
    outbox_item items[POLL_BATCH];
    memset(items, 0, sizeof items);
    double now = svc_now();
    int k = store_outbox_due(d->store, now, items, POLL_BATCH);
    if (k < 0) {
        metrics_inc(d->m, M_STORE_ERRORS);
        log_warn(d->log, "reading the result outbox failed");
        return;
    }
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < k; i++) {
        bool handled = d->handled_overflow;
        for (size_t h = 0; h < d->n_handled && !handled; h++)
            handled = d->handled[h] == items[i].id;
        if (handled) {
            outbox_item_clear(&items[i]);
            continue;
        }
        /* Still on its way to the fast path: never tried, due since it was
         * made. One held back behind an older result of its instance was
         * given a later time (and left the fast path): due again now. */
        bool fresh = items[i].attempts == 0 && items[i].next_at <= items[i].created_at &&
                     items[i].created_at >= d->started_at &&
                     now - items[i].created_at < FAST_PATH_GRACE;
        if (fresh || known_locked(d, items[i].id)) {
            outbox_item_clear(&items[i]);
            continue;
        }
        entry e = {items[i], 0};
        push_locked(d, &e);
    }
    pthread_mutex_unlock(&d->lock);
}

/* The result's path: the job id is one escaped path segment (RFC 3986
 * unreserved characters kept), and the dot segments "." and ".." are
 * written percent-encoded, so that no client or server resolves them
 * (an id "..": the result would go to /api/<instance>). */
static void result_path(const outbox_item *it, char out[PATH_CAP])
{
    static const char hex[] = "0123456789ABCDEF";
    char esc[3 * CS_ID_MAX + 1];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)it->job_id; *p && n + 3 < sizeof esc;
         p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            esc[n++] = (char)*p;
        } else {
            esc[n++] = '%';
            esc[n++] = hex[*p >> 4];
            esc[n++] = hex[*p & 15];
        }
    }
    esc[n] = 0;
    const char *seg = esc;
    if (strcmp(esc, ".") == 0)
        seg = "%2E";
    else if (strcmp(esc, "..") == 0)
        seg = "%2E%2E";
    snprintf(out, PATH_CAP, "/api/result/%s/%u", seg, it->instance);
}

/* The end of one POST. true when the cluster manager took it (the caller
 * marks it done in the store); a failure is recorded here (retry or give
 * up). */
static bool post_finish(deliver *d, const entry *e, const httpc_req *rq)
{
    int code = rq->status;
    if (code >= 200 && code < 300) {
        metrics_inc(d->m, M_RESULTS_DELIVERED);
        if (e->received_at > 0)
            metrics_observe(d->m, H_REQUEST_TO_RESULT, rq->ended - e->received_at);
        log_debug(d->log, "result %s/%u delivered (HTTP %d)", e->it.job_id, e->it.instance, code);
        return true;
    }
    if (atomic_load(&d->abort))
        return false; /* shutting down: the row stays due in the outbox */
    char why[128];
    if (code == 0)
        snprintf(why, sizeof why, "%s", rq->err);
    else
        snprintf(why, sizeof why, "HTTP %d", code);
    metrics_inc(d->m, M_RESULTS_FAILED);
    double now = rq->ended; /* not the end of the batch's slowest POST */
    uint32_t attempts = e->it.attempts + 1;
    if (now - e->it.created_at >= d->cfg->result_retry) {
        metrics_inc(d->m, M_RESULTS_GIVEN_UP);
        log_error(d->log, "result %s/%u given up after %u attempts over %.0f s: %s", e->it.job_id,
                  e->it.instance, attempts, now - e->it.created_at, why);
        outbox_key k = outbox_key_of(&e->it);
        if (store_outbox_give_up(d->store, &k) < 0)
            metrics_inc(d->m, M_STORE_ERRORS);
        return false;
    }
    double delay = deliver_backoff(attempts);
    metrics_inc(d->m, M_RESULTS_RETRIED);
    log_warn(d->log, "result %s/%u not delivered (%s); attempt %u, retry in %.1f s", e->it.job_id,
             e->it.instance, why, attempts, delay);
    outbox_key k = outbox_key_of(&e->it);
    if (store_outbox_retry(d->store, &k, attempts, now + delay) < 0)
        metrics_inc(d->m, M_STORE_ERRORS);
    return false;
}

/* POSTs the claimed results of a batch, up to conc at a time; returns how
 * many the manager took, their keys in done[]. */
static size_t post_batch(dthread *t, entry *batch, size_t m, const int *claimed, outbox_key *done)
{
    httpc_req rq[DBATCH];
    char paths[DBATCH][PATH_CAP];
    size_t which[DBATCH], n = 0, nd = 0;
    for (size_t i = 0; i < m; i++) {
        if (claimed[i] != STORE_CLAIMED)
            continue;
        const entry *e = &batch[i];
        result_path(&e->it, paths[n]);
        rq[n] = (httpc_req){.path = paths[n],
                            .body = e->it.payload ? e->it.payload : "",
                            .len = e->it.payload ? strlen(e->it.payload) : 0};
        which[n++] = i;
    }
    if (n == 0)
        return 0;
    httpc_post(t->hc, rq, n, &t->d->abort);
    for (size_t j = 0; j < n; j++)
        if (post_finish(t->d, &batch[which[j]], &rq[j]))
            done[nd++] = outbox_key_of(&batch[which[j]].it);
    return nd;
}

/* Claims a batch's instances before any POST (see store_outbox_claim):
 * a result replaced while it sat in memory is dropped here, and one whose
 * instance has an older result in flight waits for it. claimed[i] gets
 * the store's answer, or -1 when the store could not be asked (the items
 * stay in the outbox for the scan). */
static void claim_batch(deliver *d, const entry *batch, size_t m, int conc, int *claimed)
{
    outbox_item items[DBATCH];
    for (size_t i = 0; i < m; i++)
        items[i] = batch[i].it; /* shallow: read only */
    /* The POSTs run conc at a time, each within result_timeout. */
    size_t rounds = (m + (size_t)conc - 1) / (size_t)conc;
    double lease = d->cfg->result_timeout * (double)rounds + CLAIM_MARGIN;
    if (store_outbox_claim(d->store, items, m, lease, claimed) < 0) {
        metrics_inc(d->m, M_STORE_ERRORS);
        log_warn(d->log, "claiming %zu results for delivery failed; the outbox scan retries them",
                 m);
        for (size_t i = 0; i < m; i++)
            claimed[i] = -1;
        return;
    }
    double now = svc_now();
    for (size_t i = 0; i < m; i++) {
        const outbox_item *it = &batch[i].it;
        if (claimed[i] == STORE_CLAIM_STALE) {
            metrics_inc(d->m, M_RESULTS_SUPERSEDED);
            log_debug(d->log, "result %s/%u not sent: a newer decision replaced it", it->job_id,
                      it->instance);
        } else if (claimed[i] == STORE_CLAIM_BUSY) {
            metrics_inc(d->m, M_RESULTS_HELD_BACK);
            log_debug(d->log, "result %s/%u waits for an older one of its instance", it->job_id,
                      it->instance);
            outbox_key k = outbox_key_of(it);
            if (store_outbox_retry(d->store, &k, it->attempts, now + HELD_BACK_DELAY) < 0)
                metrics_inc(d->m, M_STORE_ERRORS);
        }
    }
}

/* Under lock: an id a scan running now may have read before its
 * delivery ended, so the scan must not queue it again. */
static void note_handled_locked(deliver *d, int64_t id)
{
    if (!d->polling)
        return;
    if (d->n_handled < HANDLED_MAX)
        d->handled[d->n_handled++] = id;
    else
        d->handled_overflow = true; /* the scan drops its batch */
}

/* Called with the lock held; drops it while writing t's done marks. */
static void flush_done_locked(deliver *d, dthread *t)
{
    size_t n = t->npend;
    if (n == 0)
        return;
    outbox_key keys[DONE_MAX];
    memcpy(keys, t->pend, n * sizeof *keys);
    pthread_mutex_unlock(&d->lock);
    if (store_outbox_done_many(d->store, keys, n) < 0) {
        metrics_inc(d->m, M_STORE_ERRORS);
        log_warn(d->log, "%zu delivered results not marked done (they may be sent again)", n);
    }
    pthread_mutex_lock(&d->lock);
    t->npend = 0; /* only this thread adds to it */
    for (size_t i = 0; i < n; i++)
        note_handled_locked(d, keys[i].id);
}

static void *deliver_main(void *arg)
{
    dthread *t = arg;
    char name[16];
    snprintf(name, sizeof name, "deliver-%d", t->index);
    pthread_setname_np(pthread_self(), name); /* shows in top -H, perf, gdb */
    deliver *d = t->d;
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        double now = svc_mono();
        /* The scan goes first when due: under steady load the ring is never
         * empty, and retries, held-back results and what a dead process
         * left would otherwise wait for a pause in traffic. */
        if (!d->polling && now >= d->next_poll) {
            d->polling = true;
            d->n_handled = 0;
            d->handled_overflow = false;
            pthread_mutex_unlock(&d->lock);
            poll_outbox(d);
            pthread_mutex_lock(&d->lock);
            d->polling = false;
            d->next_poll = svc_mono() + POLL_INTERVAL;
            continue;
        }
        if (d->n > 0) {
            /* A share of the ring, so the other threads get theirs, but
             * at least what one thread keeps in flight: a batch's claim
             * and its done marks are one store call each. */
            size_t m = d->n / (size_t)d->nthreads;
            size_t conc = (size_t)t->conc;
            if (m < conc)
                m = d->n < conc ? d->n : conc;
            if (m > DBATCH)
                m = DBATCH;
            entry batch[DBATCH];
            for (size_t i = 0; i < m; i++) {
                batch[i] = d->ring[d->head];
                d->head = (d->head + 1) % QUEUE_CAP;
                d->n--;
                d->inflight[t->index][i] = batch[i].it.id;
            }
            pthread_mutex_unlock(&d->lock);
            outbox_key done[DBATCH];
            size_t nd = 0;
            int claimed[DBATCH];
            claim_batch(d, batch, m, t->conc, claimed);
            nd = post_batch(t, batch, m, claimed, done);
            for (size_t i = 0; i < m; i++)
                outbox_item_clear(&batch[i].it);
            pthread_mutex_lock(&d->lock);
            if (t->npend + nd > DONE_MAX)
                flush_done_locked(d, t);
            if (t->npend == 0)
                t->pend_since = svc_mono();
            memcpy(t->pend + t->npend, done, nd * sizeof *done);
            t->npend += nd;
            for (size_t i = 0; i < m; i++) {
                d->inflight[t->index][i] = 0;
                bool pending = false;
                for (size_t k = 0; k < nd && !pending; k++)
                    pending = done[k].id == batch[i].it.id;
                if (!pending)
                    note_handled_locked(d, batch[i].it.id);
            }
            if (d->n == 0 || t->npend >= DONE_MAX / 2 || svc_mono() - t->pend_since >= DONE_DELAY)
                flush_done_locked(d, t);
            continue;
        }
        if (t->npend > 0) {
            /* Nothing else to do: write the marks before sleeping, then
             * look again (the lock was dropped meanwhile). */
            flush_done_locked(d, t);
            continue;
        }
        double wait = d->next_poll - now;
        if (wait < 0.01 || wait > POLL_INTERVAL)
            wait = POLL_INTERVAL;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long ns = ts.tv_nsec + (long)(wait * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&d->cond, &d->lock, &ts);
    }
    flush_done_locked(d, t);
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

deliver *deliver_new(const config *cfg, cslog *log, store *st, metrics *m, int threads,
                     cs_error *err)
{
    deliver *d = calloc(1, sizeof *d);
    if (!d || !(d->ring = calloc(QUEUE_CAP, sizeof *d->ring)) ||
        !(d->handled = calloc(HANDLED_MAX, sizeof *d->handled))) {
        if (d)
            free(d->ring);
        free(d);
        cs_fail(err, "deliver", "out of memory");
        return NULL;
    }
    d->cfg = cfg;
    d->log = log;
    d->store = st;
    d->m = m;
    d->started_at = svc_now();
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&d->abort, false);
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    d->nthreads = threads;
    for (int i = 0; i < threads; i++) {
        dthread *t = &d->t[i];
        t->d = d;
        t->index = i;
        t->conc = IN_FLIGHT / threads;
        /* Here, not in the thread: a process that cannot deliver must not
         * start (with one thread, nothing else would send its results). */
        double connect = cfg->result_timeout < 2.0 ? cfg->result_timeout : 2.0;
        if (!(t->hc = httpc_new(cfg->manager_host, cfg->manager_port, t->conc, connect,
                                cfg->result_timeout))) {
            cs_fail(err, "deliver", "cannot create the HTTP client of delivery thread %d", i);
            deliver_free(d);
            return NULL;
        }
        if (pthread_create(&t->thread, NULL, deliver_main, t)) {
            cs_fail(err, "deliver", "cannot start delivery thread %d", i);
            deliver_free(d);
            return NULL;
        }
        t->started = true;
    }
    return d;
}

void deliver_stop(deliver *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    atomic_store(&d->abort, true);
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    for (int i = 0; i < d->nthreads; i++) {
        if (d->t[i].started)
            pthread_join(d->t[i].thread, NULL);
        d->t[i].started = false;
    }
    pthread_mutex_lock(&d->lock);
    while (d->n > 0) {
        outbox_item_clear(&d->ring[d->head].it);
        d->head = (d->head + 1) % QUEUE_CAP;
        d->n--;
    }
    pthread_mutex_unlock(&d->lock);
}

void deliver_free(deliver *d)
{
    if (!d)
        return;
    deliver_stop(d);
    for (int i = 0; i < MAX_THREADS; i++) {
        httpc_free(d->t[i].hc);
        d->t[i].hc = NULL;
    }
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d->ring);
    free(d->handled);
    free(d);
}
