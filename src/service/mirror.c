/* mirror.c - the local copy of a shared store's cluster (see mirror.h).
 * Applying a change is idempotent (a report sets fields, a reservation
 * replaces the instance's, a release of nothing does nothing), so a change
 * this process already applied locally (its own placement) is harmless
 * when it comes back through the feed. */
#include "mirror.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "service.h"

#define FOLLOW_BLOCK_MS 200
/* After a read that brought fewer changes than this, the next one waits
 * (see mirror_new); one that brought this many may have left more behind
 * and goes at once. */
#define BACKLOG 64

struct mirror {
    const svc_ctx *ctx;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* seq advanced, or stopping */
    pthread_cond_t kick; /* a waiter wants a newer position, or stopping */
    uint64_t seq;        /* guarded by lock */
    uint64_t want;       /* guarded by lock: the newest position a waiter asks for */
    int waiting;         /* guarded by lock: mirror_wait calls waiting */
    bool stop;           /* guarded by lock */
    bool failing;        /* guarded by lock: the store is not answering */
    double recovered_at; /* guarded by lock: svc_mono() when it answered again */
    double gather_s;
    json_t *seen; /* thread only: during a snapshot, what it brought */
};

/* A snapshot follows: note what it brings, so that what it lacks can be
 * dropped when it is complete (the table is never emptied meanwhile, so a
 * worker deciding during a reload still sees the cluster). */
static void on_reload(void *ud)
{
    mirror *m = ud;
    json_decref(m->seen);
    m->seen = json_object();
}

static void seen_add(mirror *m, const char *kind, const char *id, uint32_t instance)
{
    if (!m->seen)
        return;
    char key[CS_ID_MAX + 32];
    snprintf(key, sizeof key, "%.1s:%u:%.*s", kind, instance, CS_ID_MAX, id);
    json_object_set_new(m->seen, key, json_true());
}

static bool was_seen(mirror *m, const char *kind, const char *id, uint32_t instance)
{
    char key[CS_ID_MAX + 32];
    snprintf(key, sizeof key, "%.1s:%u:%.*s", kind, instance, CS_ID_MAX, id);
    return json_object_get(m->seen, key) != NULL;
}

static int collect_node(const node_view *v, void *ud)
{
    json_array_append_new(ud, json_string(v->id));
    return 0;
}

static void on_reloaded(void *ud)
{
    mirror *m = ud;
    if (!m->seen)
        return;
    json_t *gone = json_array();
    if (!gone)
        goto out;
    cluster_foreach(m->ctx->cluster, svc_now(), collect_node, gone);
    size_t i;
    json_t *v;
    json_array_foreach(gone, i, v)
    {
        const char *id = json_string_value(v);
        if (id && !was_seen(m, "n", id, 0)) {
            nodedocs_lock_node(m->ctx->docs, id);
            cluster_remove(m->ctx->cluster, id, NULL, NULL);
            nodedocs_remove(m->ctx->docs, id);
            nodedocs_unlock_node(m->ctx->docs, id);
        }
    }
    json_decref(gone);
    /* Reservations the store no longer has. */
    reservation_view page[64];
    size_t from = 0, n;
    while ((n = cluster_placements(m->ctx->cluster, from, page, 64)) > 0) {
        size_t kept = 0;
        for (size_t k = 0; k < n; k++) {
            if (was_seen(m, "r", page[k].job_id, page[k].instance))
                kept++;
            else
                cluster_release(m->ctx->cluster, page[k].job_id, page[k].instance);
        }
        from += kept;
    }
out:
    json_decref(m->seen);
    m->seen = NULL;
}

static int on_node(void *ud, const char *node_id, const char *doc, double last_report,
                   bool cpu_pct_set, bool mem_pct_set)
{
    mirror *m = ud;
    /* Most reports repeat the node's last one but for its time (a
     * heartbeat): the document need not be parsed again. */
    nodedocs_lock_node(m->ctx->docs, node_id);
    bool repeat =
        nodedocs_same(m->ctx->docs, node_id, doc) &&
        cluster_touch(m->ctx->cluster, node_id, last_report, cpu_pct_set, mem_pct_set) == 0;
    nodedocs_unlock_node(m->ctx->docs, node_id);
    if (repeat) {
        seen_add(m, "n", node_id, 0);
        return 0;
    }
    cs_error e;
    node_report nr;
    node_report_init(&nr);
    json_t *j = json_loads(doc, 0, NULL);
    if (!j || codec_node(j, &nr, &e)) {
        log_warn(m->ctx->log, "node %s from the store skipped: its document does not parse",
                 node_id);
        goto out;
    }
    /* Only the usage figures this report carried start a new count of the
     * reservations made since (as in the store's own rule). */
    if (!cpu_pct_set)
        nr.set &= ~NODE_F_CPU_PCT;
    if (!mem_pct_set)
        nr.set &= ~NODE_F_MEM_PCT;
    nodedocs_lock_node(m->ctx->docs, node_id);
    if (cluster_report(m->ctx->cluster, node_id, &nr, last_report, &e) < 0) {
        nodedocs_unlock_node(m->ctx->docs, node_id);
        log_warn(m->ctx->log, "node %s from the store skipped: %s: %s", node_id, e.field, e.msg);
        goto out;
    }
    nodedocs_put(m->ctx->docs, node_id, j);
    j = NULL;
    nodedocs_unlock_node(m->ctx->docs, node_id);
    seen_add(m, "n", node_id, 0);
out:
    json_decref(j);
    node_report_clear(&nr);
    return 0;
}

static void on_node_gone(void *ud, const char *node_id)
{
    mirror *m = ud;
    nodedocs_lock_node(m->ctx->docs, node_id);
    cluster_remove(m->ctx->cluster, node_id, NULL, NULL);
    nodedocs_remove(m->ctx->docs, node_id);
    nodedocs_unlock_node(m->ctx->docs, node_id);
}

static void on_reservation(void *ud, const reservation_view *r)
{
    mirror *m = ud;
    cs_error e;
    seen_add(m, "r", r->job_id, r->instance);
    if (cluster_restore(m->ctx->cluster, r, &e))
        log_debug(m->ctx->log, "reservation %s/%u on %s not mirrored: %s", r->job_id, r->instance,
                  r->node_id, e.msg);
}

static void on_touch(void *ud, const char *node_id, double last_report, bool cpu_pct_set,
                     bool mem_pct_set)
{
    mirror *m = ud;
    /* Unknown here: its full report was skipped too (logged then). */
    if (cluster_touch(m->ctx->cluster, node_id, last_report, cpu_pct_set, mem_pct_set) != 0)
        log_debug(m->ctx->log, "node %s from the store skipped: not in the local copy", node_id);
}

static void on_release(void *ud, const char *job_id, uint32_t instance)
{
    mirror *m = ud;
    cluster_release(m->ctx->cluster, job_id, instance);
}

static int follow_once(mirror *m, int timeout_ms)
{
    store_follower f = {on_reload,      on_reloaded, on_node,  on_node_gone,
                        on_reservation, on_release,  on_touch, m};
    uint64_t seq = 0;
    int n = store_follow(m->ctx->store, &f, timeout_ms, &seq);
    if (n < 0)
        return -1;
    pthread_mutex_lock(&m->lock);
    if (seq > m->seq)
        m->seq = seq;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* Sleeps gather_s unless stopping or a waiter is behind. */
static void gather(mirror *m)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long ns = ts.tv_nsec + (long)(m->gather_s * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&m->lock);
    while (!m->stop && !(m->waiting > 0 && m->want > m->seq))
        if (pthread_cond_timedwait(&m->kick, &m->lock, &ts) != 0)
            break;
    pthread_mutex_unlock(&m->lock);
}

static void *mirror_main(void *arg)
{
    mirror *m = arg;
    pthread_setname_np(pthread_self(), "mirror");
    for (;;) {
        pthread_mutex_lock(&m->lock);
        bool stop = m->stop;
        pthread_mutex_unlock(&m->lock);
        if (stop)
            break;
        int rc = follow_once(m, FOLLOW_BLOCK_MS);
        pthread_mutex_lock(&m->lock);
        bool was = m->failing;
        m->failing = rc < 0;
        if (was && rc >= 0)
            m->recovered_at = svc_mono();
        pthread_mutex_unlock(&m->lock);
        if (rc < 0) {
            if (!was)
                log_warn(m->ctx->log, "following the store's changes failed; retrying");
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        } else if (was) {
            log_info(m->ctx->log, "following the store's changes again");
        }
        if (rc > 0 && rc < BACKLOG)
            gather(m);
    }
    return NULL;
}

mirror *mirror_new(const svc_ctx *ctx, double gather_s, cs_error *err)
{
    mirror *m = calloc(1, sizeof *m);
    if (!m) {
        cs_fail(err, "mirror", "out of memory");
        return NULL;
    }
    m->ctx = ctx;
    m->gather_s = gather_s;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->kick, &ca);
    pthread_condattr_destroy(&ca);
    int n = follow_once(m, 0);
    if (n < 0) {
        cs_fail(err, "redis", "cannot read the cluster from the store");
        goto fail;
    }
    log_info(ctx->log, "loaded %d nodes from the shared store (change feed at %llu)", n,
             (unsigned long long)m->seq);
    if (pthread_create(&m->thread, NULL, mirror_main, m)) {
        cs_fail(err, "mirror", "cannot start the thread");
        goto fail;
    }
    m->started = true;
    return m;
fail:
    mirror_free(m);
    return NULL;
}

bool mirror_wait(mirror *m, uint64_t seq, double timeout_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)((timeout_s - (double)(long)timeout_s) * 1e9);
    ts.tv_sec += (time_t)timeout_s + ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&m->lock);
    if (seq > m->seq) {
        m->waiting++;
        if (seq > m->want) {
            m->want = seq;
            pthread_cond_signal(&m->kick);
        }
        while (m->seq < seq && !m->stop)
            if (pthread_cond_timedwait(&m->cond, &m->lock, &ts) != 0)
                break;
        if (--m->waiting == 0)
            m->want = 0; /* a position nobody waits for does not cut gathers short */
    }
    bool ok = m->seq >= seq;
    pthread_mutex_unlock(&m->lock);
    return ok;
}

bool mirror_settling(mirror *m, double window)
{
    pthread_mutex_lock(&m->lock);
    bool settling = m->failing || (m->recovered_at > 0 && svc_mono() - m->recovered_at < window);
    pthread_mutex_unlock(&m->lock);
    return settling;
}

uint64_t mirror_seq(mirror *m)
{
    pthread_mutex_lock(&m->lock);
    uint64_t s = m->seq;
    pthread_mutex_unlock(&m->lock);
    return s;
}

void mirror_stop(mirror *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_broadcast(&m->cond);
    pthread_cond_signal(&m->kick);
    pthread_mutex_unlock(&m->lock);
    if (m->started)
        pthread_join(m->thread, NULL);
    m->started = false;
}

void mirror_free(mirror *m)
{
    if (!m)
        return;
    mirror_stop(m);
    json_decref(m->seen);
    pthread_cond_destroy(&m->cond);
    pthread_cond_destroy(&m->kick);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
