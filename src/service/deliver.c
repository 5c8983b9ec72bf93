/* deliver.c - a bounded in-memory queue of results to POST, drained by a
 * few threads that share IN_FLIGHT POSTs in flight on keep-alive
 * connections (one libcurl multi handle per thread). The queue is only
 * a fast path: every item is already durable in the store's outbox, so
 * dropping one (queue full, shutdown) loses nothing; the periodic outbox
 * scan finds it again. */
#include "deliver.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

typedef struct dthread {
    deliver *d;
    pthread_t thread;
    bool started;
    int index;
    CURLM *multi;
    int conc; /* handles in use: IN_FLIGHT / threads */
    CURL *h[IN_FLIGHT];
    entry *busy[IN_FLIGHT]; /* what each handle is sending; NULL: free */
    struct curl_slist *hdrs;
} dthread;

struct deliver {
    const config *cfg;
    cslog *log;
    store *store;
    metrics *m;
    char base_url[CONFIG_STR_MAX + 64];
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
    atomic_bool abort; /* read by curl's progress callback */
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
    for (int i = 0; i < d->nthreads; i++)
        for (int k = 0; k < DBATCH; k++)
            if (d->inflight[i][k] == id)
                return true;
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
        bool fresh = items[i].attempts == 0 && items[i].created_at >= d->started_at &&
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

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    deliver *d = ud;
    return atomic_load(&d->abort) ? 1 : 0;
}

/* Sets curl up to POST one result; false when it cannot (out of memory:
 * the result stays in the outbox for the scan). */
static bool post_prepare(deliver *d, CURL *curl, const entry *e)
{
    char url[sizeof d->base_url + 3 * CS_ID_MAX + 16];
    char *esc = curl_easy_escape(curl, e->it.job_id, 0);
    if (!esc)
        return false;
    /* The host, port and path prefix come from the configuration only;
     * the job id is one escaped path segment. Escaping leaves '.' alone,
     * and curl resolves the dot segments "." and ".." (an id "..": the
     * result would go to /api/<instance>), so those two are written
     * percent-encoded. */
    const char *seg = esc;
    if (strcmp(esc, ".") == 0)
        seg = "%2E";
    else if (strcmp(esc, "..") == 0)
        seg = "%2E%2E";
    snprintf(url, sizeof url, "%s%s/%u", d->base_url, seg, e->it.instance);
    curl_free(esc);
    /* curl copies the URL; the body is read in place, and the entry
     * outlives the transfer. */
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, e->it.payload ? e->it.payload : "");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(e->it.payload ? strlen(e->it.payload) : 0));
    return true;
}

/* The end of one POST. true when the cluster manager took it (the caller
 * marks it done in the store); a failure is recorded here (retry or give
 * up). */
static bool post_finish(deliver *d, CURL *curl, const entry *e, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && code >= 200 && code < 300) {
        metrics_inc(d->m, M_RESULTS_DELIVERED);
        if (e->received_at > 0)
            metrics_observe(d->m, H_REQUEST_TO_RESULT, svc_now() - e->received_at);
        log_debug(d->log, "result %s/%u delivered (HTTP %ld)", e->it.job_id, e->it.instance, code);
        return true;
    }
    if (atomic_load(&d->abort))
        return false; /* shutting down: the row stays due in the outbox */
    char why[128];
    if (rc != CURLE_OK)
        snprintf(why, sizeof why, "%s", curl_easy_strerror(rc));
    else
        snprintf(why, sizeof why, "HTTP %ld", code);
    metrics_inc(d->m, M_RESULTS_FAILED);
    double now = svc_now();
    uint32_t attempts = e->it.attempts + 1;
    if (now - e->it.created_at >= d->cfg->result_retry) {
        metrics_inc(d->m, M_RESULTS_GIVEN_UP);
        log_error(d->log, "result %s/%u given up after %u attempts over %.0f s: %s", e->it.job_id,
                  e->it.instance, attempts, now - e->it.created_at, why);
        if (store_outbox_give_up(d->store, e->it.id) < 0)
            metrics_inc(d->m, M_STORE_ERRORS);
        return false;
    }
    double delay = deliver_backoff(attempts);
    metrics_inc(d->m, M_RESULTS_RETRIED);
    log_warn(d->log, "result %s/%u not delivered (%s); attempt %u, retry in %.1f s", e->it.job_id,
             e->it.instance, why, attempts, delay);
    if (store_outbox_retry(d->store, e->it.id, attempts, now + delay) < 0)
        metrics_inc(d->m, M_STORE_ERRORS);
    return false;
}

/* Collects the POSTs that ended: their outbox ids go to done[] when the
 * manager took them. Returns how many ended. */
static int post_collect(dthread *t, int64_t *done, size_t *nd)
{
    int ended = 0;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(t->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        int k = 0;
        while (k < t->conc && t->h[k] != msg->easy_handle)
            k++;
        if (k == t->conc || !t->busy[k])
            continue;                   /* not ours: cannot happen */
        CURLcode rc = msg->data.result; /* msg is gone after remove_handle */
        curl_multi_remove_handle(t->multi, t->h[k]);
        entry *e = t->busy[k];
        t->busy[k] = NULL;
        ended++;
        if (post_finish(t->d, t->h[k], e, rc))
            done[(*nd)++] = e->it.id;
    }
    return ended;
}

/* POSTs the claimed results of a batch, up to conc at a time; returns how
 * many the manager took, their ids in done[]. */
static size_t post_batch(dthread *t, entry *batch, size_t m, const int *claimed, int64_t *done)
{
    size_t next = 0, nd = 0;
    int inflight = 0;
    for (;;) {
        for (int k = 0; k < t->conc && next < m; k++) {
            if (t->busy[k])
                continue;
            while (next < m && claimed[next] != STORE_CLAIMED)
                next++;
            if (next == m)
                break;
            entry *e = &batch[next++];
            if (!post_prepare(t->d, t->h[k], e) ||
                curl_multi_add_handle(t->multi, t->h[k]) != CURLM_OK)
                continue; /* stays in the outbox: the scan sends it */
            t->busy[k] = e;
            inflight++;
        }
        if (inflight == 0)
            return nd;
        int running = 0;
        CURLMcode mc = curl_multi_perform(t->multi, &running);
        inflight -= post_collect(t, done, &nd);
        if (mc != CURLM_OK) {
            /* Not expected short of running out of memory: give the
             * transfers up; their rows stay due in the outbox. */
            for (int k = 0; k < t->conc; k++)
                if (t->busy[k]) {
                    curl_multi_remove_handle(t->multi, t->h[k]);
                    t->busy[k] = NULL;
                }
            log_warn(t->d->log, "result delivery: %s", curl_multi_strerror(mc));
            return nd;
        }
        /* Wait only when nothing ended: an ended POST frees a handle for
         * the next result at once. The timeout bounds how long a stop
         * waits (curl's progress callback aborts the transfers). */
        if (inflight > 0 && running > 0 && !(next < m && inflight < t->conc))
            curl_multi_poll(t->multi, NULL, 0, 100, NULL);
    }
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
            if (store_outbox_retry(d->store, it->id, it->attempts, now + HELD_BACK_DELAY) < 0)
                metrics_inc(d->m, M_STORE_ERRORS);
        }
    }
}

static CURL *make_handle(deliver *d, struct curl_slist *hdrs)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return NULL;
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(d->cfg->result_timeout * 1000));
    long connect_ms = (long)(d->cfg->result_timeout * 1000);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms < 2000 ? connect_ms : 2000L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, d);
    return curl;
}

static void handles_free(dthread *t)
{
    for (int k = 0; k < t->conc; k++) {
        curl_easy_cleanup(t->h[k]); /* none is attached to the multi any more */
        t->h[k] = NULL;
    }
    curl_multi_cleanup(t->multi);
    t->multi = NULL;
    curl_slist_free_all(t->hdrs);
    t->hdrs = NULL;
}

/* The multi handle keeps the keep-alive connections, at most conc. */
static bool handles_new(dthread *t)
{
    /* No "Expect: 100-continue": it costs a round trip per result. */
    t->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *more = t->hdrs ? curl_slist_append(t->hdrs, "Expect:") : NULL;
    if (!more || !(t->multi = curl_multi_init()))
        return false;
    t->hdrs = more;
    curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)t->conc);
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)t->conc);
    for (int k = 0; k < t->conc; k++)
        if (!(t->h[k] = make_handle(t->d, t->hdrs)))
            return false;
    return true;
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
            int64_t done[DBATCH];
            size_t nd = 0;
            int claimed[DBATCH];
            claim_batch(d, batch, m, t->conc, claimed);
            nd = post_batch(t, batch, m, claimed, done);
            for (size_t i = 0; i < m; i++)
                outbox_item_clear(&batch[i].it);
            if (nd && store_outbox_done_many(d->store, done, nd) < 0) {
                metrics_inc(d->m, M_STORE_ERRORS);
                log_warn(d->log, "%zu delivered results not marked done (they may be sent again)",
                         nd);
            }
            pthread_mutex_lock(&d->lock);
            for (size_t i = 0; i < m; i++) {
                d->inflight[t->index][i] = 0;
                if (d->polling) {
                    if (d->n_handled < HANDLED_MAX)
                        d->handled[d->n_handled++] = batch[i].it.id;
                    else
                        d->handled_overflow = true; /* the scan drops its batch */
                }
            }
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
    pthread_mutex_unlock(&d->lock);
    handles_free(t);
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
    /* An IPv6 literal needs brackets in a URL. */
    bool v6 = strchr(cfg->manager_host, ':') != NULL;
    snprintf(d->base_url, sizeof d->base_url, "http://%s%s%s:%d/api/result/", v6 ? "[" : "",
             cfg->manager_host, v6 ? "]" : "", cfg->manager_port);
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
        if (!handles_new(t)) {
            cs_fail(err, "deliver", "cannot create the HTTP handles of delivery thread %d", i);
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
    for (int i = 0; i < MAX_THREADS; i++)
        handles_free(&d->t[i]); /* a thread that ran freed its own */
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d->ring);
    free(d->handled);
    free(d);
}
