/* reaper.c - re-schedules instances whose node stopped reporting. The
 * reservation is released first, so the worker that takes the re-queued
 * instance does not find it "already placed" on the dead node. */
#include "reaper.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "mirror.h"
#include "service.h"

#define BATCH 256

struct reaper {
    const svc_ctx *ctx;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop; /* guarded by lock */
    /* The reaper thread's own (see may_move). */
    double hold_since;   /* monotonic start of the current hold; 0: none */
    bool hold_expired;   /* held REAPER_HOLD_TTLS * NODE_TTL: moving again */
    double settle_until; /* monotonic: after a hold, the rest get a TTL */
};

int reaper_requeue(const svc_ctx *c, const reservation_view *r, double now, const char *why)
{
    cluster_release(c->cluster, r->job_id, r->instance);
    /* Only while it is still placed on that node: another process sharing
     * the store may have moved it already. */
    int rc = store_requeue(c->store, r->job_id, r->instance, r->node_id, now);
    if (rc < 0) {
        /* The instance stays "placed" in the store; after a restart its
         * reservation is restored and the reaper finds it again. */
        metrics_inc(c->metrics, M_STORE_ERRORS);
        log_error(c->log, "job %s/%u on node %s: re-queueing failed", r->job_id, r->instance,
                  r->node_id);
        return -1;
    }
    if (rc > 0)
        return 1;
    log_warn(c->log, "job %s/%u: node %s %s, re-scheduled", r->job_id, r->instance, r->node_id,
             why);
    metrics_inc(c->metrics, M_JOBS_RESCHEDULED);
    return 0;
}

bool reaper_holds(size_t heard, size_t late, size_t silent)
{
    size_t behind = silent + late;
    return silent > 0 && behind > REAPER_HOLD_MIN && behind * 100 >= heard * REAPER_HOLD_SHARE_PCT;
}

int reaper_run_once(const svc_ctx *c, double now)
{
    reservation_view batch[BATCH];
    int total = 0;
    /* Bounded, in case a reservation could not be released. */
    for (int round = 0; round < 1000; round++) {
        size_t n = cluster_stale_placements(c->cluster, now, batch, BATCH);
        for (size_t i = 0; i < n; i++)
            if (reaper_requeue(c, &batch[i], now, "inactive") == 0)
                total++;
        /* Released ones are no longer stale, so the next call moves on;
         * stop when a batch was not full. */
        if (n < BATCH)
            break;
    }
    return total;
}

/* Whether this pass may move instances, given reaper_holds: a hold starts
 * when most nodes are behind; it ends when they are not, and then the
 * nodes still silent get one NODE_TTL to report (they come back over a
 * heartbeat period, and the last ones are no deader than the first), or
 * after REAPER_HOLD_TTLS * NODE_TTL, when a silence that long is taken for
 * what it says. Logs where a hold starts and ends, not at every pass. */
static bool may_move(reaper *r, double mono, double now)
{
    const svc_ctx *c = r->ctx;
    double ttl = c->cfg->node_ttl, limit = REAPER_HOLD_TTLS * ttl;
    size_t heard, late, silent;
    cluster_silence(c->cluster, now, limit, &heard, &late, &silent);
    if (reaper_holds(heard, late, silent)) {
        if (r->hold_since == 0) {
            r->hold_since = mono;
            log_warn(c->log,
                     "reaper: %zu of %zu nodes silent and %zu late at once; moving no instances "
                     "while most are behind, for %g s at most (overload or a cut-off on this "
                     "side is likelier than so many dead nodes; DELETE a node to move its "
                     "instances now)",
                     silent, heard, late, limit);
        }
        if (mono - r->hold_since < limit)
            return false;
        if (!r->hold_expired) {
            r->hold_expired = true;
            log_warn(c->log, "reaper: most nodes silent for %g s; moving their instances", limit);
        }
        return mono >= r->settle_until;
    }
    if (r->hold_since != 0) {
        bool expired = r->hold_expired;
        r->hold_since = 0;
        r->hold_expired = false;
        if (!expired) {
            r->settle_until = mono + ttl;
            log_warn(c->log,
                     "reaper: most nodes are heard again; %zu still silent get %g s to report",
                     silent, ttl);
        }
    }
    return mono >= r->settle_until;
}

static void *reaper_main(void *arg)
{
    reaper *r = arg;
    pthread_setname_np(pthread_self(), "reaper");
    /* A process that just started could not hear reports while it was
     * down (or, in Redis mode, while Redis was, just before): nodes get a
     * TTL to report to it, as after a store outage. Without this, a
     * restart longer than NODE_TTL moved every instance off live nodes. */
    double started = svc_mono();
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double iv = r->ctx->cfg->reaper_interval;
        long ns = ts.tv_nsec + (long)((iv - (double)(long)iv) * 1e9);
        ts.tv_sec += (time_t)iv + ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        while (!r->stop && pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0)
            ;
        if (r->stop)
            break;
        pthread_mutex_unlock(&r->lock);
        /* After a store outage, give nodes a TTL to report again before
         * taking their silence for death. */
        double ttl = r->ctx->cfg->node_ttl;
        double mono = svc_mono(), now = svc_now();
        bool settling =
            mono - started < ttl || (r->ctx->mirror && mirror_settling(r->ctx->mirror, ttl));
        /* One instant for the hold's counts and the pass they allow. */
        if (!settling && may_move(r, mono, now))
            reaper_run_once(r->ctx, now);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

reaper *reaper_new(const svc_ctx *ctx, cs_error *err)
{
    reaper *r = calloc(1, sizeof *r);
    if (!r) {
        cs_fail(err, "reaper", "out of memory");
        return NULL;
    }
    r->ctx = ctx;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&r->thread, NULL, reaper_main, r)) {
        cs_fail(err, "reaper", "cannot start the reaper thread");
        reaper_free(r);
        return NULL;
    }
    r->started = true;
    return r;
}

void reaper_stop(reaper *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (r->started)
        pthread_join(r->thread, NULL);
    r->started = false;
}

void reaper_free(reaper *r)
{
    if (!r)
        return;
    reaper_stop(r);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
