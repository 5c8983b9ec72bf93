/* worker.c - take a job from the queue, decide, record, hand over the
 * result. The decision and its reservation happen in the cluster table
 * first; store_finish then makes them durable together with the result's
 * outbox row, and only a durable outcome is handed to the deliverer. */
#include "worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "decisions.h"
#include "deliver.h"
#include "mirror.h"
#include "service.h"

#define TAKE_TIMEOUT_MS 200 /* how soon a worker notices a stop request */
#define FINISH_TRIES 3
#define TAKE_BATCH 64     /* embedded store: decisions recorded per write */
#define SHARED_ROUNDS 8   /* re-rankings after every candidate filled up meanwhile */
#define MIRROR_WAIT_S 2.0 /* longest wait for the local copy to reach a job's intake */
/* Shared store: placements committed by one store call. Each call is a
 * round trip and a wake-up of Redis and of this thread; under load they
 * cost more than the placements' own commands. */
#define PLACE_BATCH 16

typedef struct worker {
    worker_pool *pool;
    engine_ctx *ectx;
    decision *recs; /* TAKE_BATCH records of the batch in hand, for the dashboard */
    pthread_t thread;
    bool started;
    int index;
} worker;

struct worker_pool {
    const svc_ctx *ctx;
    int n;
    worker *w;
    atomic_bool stop;
};

/* The outcome of one decision, before it is recorded. */
typedef struct outcome {
    job_state state;
    char *result;       /* JSON for the cluster manager */
    bool reserved_here; /* this decision charged a reservation (undo on failure) */
    bool has_res;
    reservation_view res;
    char node_id[CS_ID_MAX + 1];
    char message[256];
} outcome;

/* The result of a placement on the node v shows, written with the node's
 * stored document as text (no tree of it is built; see
 * codec_result_placed_stored). Both modes use it. NULL when out of memory. */
static char *placed_text(const svc_ctx *c, const json_t *body, const node_view *v,
                         const engine_result *r, const char *message)
{
    char *stored = nodedocs_get_text(c->docs, r->node_id);
    char *text = codec_result_placed_stored(body, stored, v, r, message);
    free(stored);
    return text;
}

static void decide(worker *w, const store_job *job, json_t *body, outcome *o, decision *rec)
{
    const svc_ctx *c = w->pool->ctx;
    job_spec spec;
    cs_error e = {{0}, {0}};
    unsigned notes = 0;
    engine_result res;
    memset(o, 0, sizeof *o);
    o->state = JOB_UNSCHEDULABLE;
    if (!body) {
        cs_fail(&e, "body", "stored job is not valid JSON");
        goto invalid;
    }
    if (codec_job(body, job->job_id, job->instance, "", &spec, &notes, &e)) {
        job_spec_clear(&spec);
        goto invalid;
    }
    /* A node removed between the choice and the document fetch drops the
     * reservation with it: choose again, a few times at most. */
    bool decided = false;
    double now = 0, took = 0;
    for (int attempt = 0; attempt < 3 && !decided; attempt++) {
        now = svc_now();
        double t0 = svc_mono();
        int rc = engine_place(w->ectx, c->cluster, &spec, now, &res, &e);
        took = svc_mono() - t0;
        metrics_observe(c->metrics, H_DECISION, took);
        if (rc) {
            job_spec_clear(&spec);
            goto invalid;
        }
        if (res.existing)
            snprintf(o->message, sizeof o->message, "already placed on %s", res.node_id);
        else
            engine_message(&res, &spec, o->message, sizeof o->message);
        if (!res.placed && !res.existing) {
            o->result = codec_result_unplaced(body, &res, o->message);
            decided = true;
            break;
        }
        node_view v;
        if (cluster_get(c->cluster, res.node_id, now, &v) ||
            cluster_placement(c->cluster, job->job_id, job->instance, &o->res)) {
            log_warn(c->log, "job %s/%u: node %s vanished while placing; choosing again",
                     job->job_id, job->instance, res.node_id);
            continue;
        }
        o->has_res = true;
        o->reserved_here = !res.existing;
        o->state = JOB_PLACED;
        snprintf(o->node_id, sizeof o->node_id, "%s", res.node_id);
        o->result = placed_text(c, body, &v, &res, o->message);
        decided = true;
    }
    if (!decided) {
        memset(&res, 0, sizeof res);
        snprintf(o->message, sizeof o->message, "the chosen nodes kept being removed");
        o->result = codec_result_unplaced(body, &res, o->message);
    }
    decision_fill(rec, job->job_id, job->instance, &res, o->message, now, took);
    job_spec_clear(&spec);
    return;
invalid:
    log_warn(c->log, "job %s/%u cannot be decided: %s: %s", job->job_id, job->instance, e.field,
             e.msg);
    snprintf(o->message, sizeof o->message, "invalid job: %s: %s", e.field, e.msg);
    o->result = codec_result_invalid(body, &e);
    decision_fill(rec, job->job_id, job->instance, NULL, o->message, svc_now(), 0);
}

/* Hands a recorded outcome to the deliverer. result is moved. */
static void hand_over(worker *w, const store_job *job, int64_t oid, char *result, double now)
{
    outbox_item it;
    memset(&it, 0, sizeof it);
    it.id = oid;
    snprintf(it.job_id, sizeof it.job_id, "%s", job->job_id);
    it.instance = job->instance;
    it.payload = result;
    it.created_at = now;
    it.next_at = now;
    deliver_submit(w->pool->ctx->deliver, &it, job->received_at);
}

/* The reservation a placement of job on node_id charges. */
static void reservation_of(reservation_view *rv, const store_job *job, const job_spec *spec,
                           const char *node_id, double now)
{
    memset(rv, 0, sizeof *rv);
    snprintf(rv->job_id, sizeof rv->job_id, "%.*s", CS_ID_MAX, job->job_id);
    rv->instance = job->instance;
    snprintf(rv->node_id, sizeof rv->node_id, "%s", node_id);
    rv->cpu_milli = spec->vcpus_milli;
    rv->memory_mb = spec->memory_mb;
    rv->gpus = spec->gpus;
    rv->at = now;
}

/* Shared store (Redis), one job: rank on the local copy, then commit
 * candidates in order in the store, whose script checks capacity against
 * every process's reservations; a candidate that filled up meanwhile is
 * skipped. Nothing is reserved locally until the store said yes.
 * lagging: the copy was found behind the store already (no second wait). */
static void process_shared(worker *w, store_job *job, bool lagging)
{
    const svc_ctx *c = w->pool->ctx;
    json_error_t je;
    json_t *body = json_loads(job->body ? job->body : "", JSON_REJECT_DUPLICATES, &je);
    job_spec spec;
    memset(&spec, 0, sizeof spec);
    cs_error e = {{0}, {0}};
    unsigned notes = 0;
    char message[256] = "";
    char *result = NULL;
    int64_t oid = 0;
    bool placed = false, spec_ok = false;
    char node_id[CS_ID_MAX + 1] = "";
    decision rec;
    decision_fill(&rec, job->job_id, job->instance, NULL, "", svc_now(), 0);

    /* See every node report accepted before this job. */
    if (c->mirror && (lagging || !mirror_wait(c->mirror, job->version, MIRROR_WAIT_S)))
        log_warn(c->log, "job %s/%u: the local copy lags the store; deciding anyway", job->job_id,
                 job->instance);
    if (!body) {
        cs_fail(&e, "body", "stored job is not valid JSON");
    } else if (codec_job(body, job->job_id, job->instance, "", &spec, &notes, &e) == 0) {
        spec_ok = true;
    }
    if (!spec_ok) {
        log_warn(c->log, "job %s/%u cannot be decided: %s: %s", job->job_id, job->instance, e.field,
                 e.msg);
        snprintf(message, sizeof message, "invalid job: %s: %s", e.field, e.msg);
        decision_fill(&rec, job->job_id, job->instance, NULL, message, svc_now(), 0);
        result = codec_result_invalid(body, &e);
        goto unplaced;
    }
    engine_result res;
    for (int round = 0; round < SHARED_ROUNDS; round++) {
        double now = svc_now();
        double t0 = svc_mono();
        if (engine_rank(w->ectx, c->cluster, &spec, now, &res, &e)) {
            snprintf(message, sizeof message, "invalid job: %s: %s", e.field, e.msg);
            decision_fill(&rec, job->job_id, job->instance, NULL, message, now, 0);
            result = codec_result_invalid(body, &e);
            goto unplaced;
        }
        double took = svc_mono() - t0;
        metrics_observe(c->metrics, H_DECISION, took);
        engine_message(&res, &spec, message, sizeof message);
        decision_fill(&rec, job->job_id, job->instance, &res, message, now, took);
        if (res.n_candidates == 0) {
            result = codec_result_unplaced(body, &res, message);
            goto unplaced;
        }
        uint64_t seen = c->mirror ? mirror_seq(c->mirror) : 0;
        for (size_t i = 0; i < res.n_candidates; i++) {
            const engine_candidate *cand = &res.candidates[i];
            node_view v;
            if (cluster_get(c->cluster, cand->node_id, now, &v))
                continue;
            engine_result one = res;
            one.placed = true;
            snprintf(one.node_id, sizeof one.node_id, "%s", cand->node_id);
            char *text = placed_text(c, body, &v, &one, message);
            if (!text)
                break;
            reservation_view rv;
            reservation_of(&rv, job, &spec, cand->node_id, now);
            char held[CS_ID_MAX + 1];
            int rc = store_place(c->store, job->job_id, job->instance, &rv, text, now,
                                 c->cfg->node_ttl, &oid, held);
            if (rc == STORE_PLACED) {
                /* Seen by this process's next decision at once; the feed
                 * brings the same reservation again, harmlessly. */
                cluster_restore(c->cluster, &rv, &e);
                result = text;
                placed = true;
                snprintf(node_id, sizeof node_id, "%s", cand->node_id);
                rec.placed = true;
                snprintf(rec.node_id, sizeof rec.node_id, "%s", cand->node_id);
                goto done;
            }
            free(text);
            if (rc == STORE_NO_ROOM) {
                metrics_inc(c->metrics, M_PLACE_CONFLICTS);
                continue;
            }
            if (rc == STORE_DECIDED || rc == STORE_GONE) {
                log_info(c->log, "job %s/%u was %s meanwhile; nothing to do", job->job_id,
                         job->instance, rc == STORE_GONE ? "deleted" : "decided elsewhere");
                goto out;
            }
            /* The store is not answering: the entry stays pending and is
             * taken again (by this or another worker) after CLAIM_IDLE. */
            metrics_inc(c->metrics, M_STORE_ERRORS);
            log_error(c->log, "job %s/%u: committing the placement failed; left queued",
                      job->job_id, job->instance);
            goto out;
        }
        /* Every candidate filled up since the copy was taken: wait for the
         * copy to catch up with the changes, then rank again. */
        if (c->mirror)
            mirror_wait(c->mirror, seen + 1, 0.05);
    }
    memset(&res, 0, sizeof res);
    snprintf(message, sizeof message, "every qualified node filled up while placing");
    decision_fill(&rec, job->job_id, job->instance, &res, message, svc_now(), 0);
    result = codec_result_unplaced(body, &res, message);
unplaced:
    if (!result)
        goto out;
    oid = store_finish(c->store, job->job_id, job->instance, JOB_UNSCHEDULABLE, NULL, result,
                       svc_now());
    if (oid < 0) {
        metrics_inc(c->metrics, M_STORE_ERRORS);
        log_error(c->log, "job %s/%u: recording the outcome failed; left queued", job->job_id,
                  job->instance);
        goto out;
    }
    if (oid == 0) {
        log_info(c->log, "job %s/%u was deleted or decided meanwhile", job->job_id, job->instance);
        goto out;
    }
done:
    if (placed) {
        metrics_inc(c->metrics, M_JOBS_PLACED);
        log_debug(c->log, "job %s/%u placed on %s (%s)", job->job_id, job->instance, node_id,
                  message);
    } else {
        metrics_inc(c->metrics, M_JOBS_UNSCHEDULABLE);
        log_info(c->log, "job %s/%u unschedulable: %s", job->job_id, job->instance, message);
    }
    decisions_record(c->decisions, &rec);
    hand_over(w, job, oid, result, svc_now());
    result = NULL;
out:
    free(result);
    if (spec_ok || body)
        job_spec_clear(&spec);
    json_decref(body);
}

/* A job of a shared-store batch: ranked on the local copy, its best
 * candidate reserved there, waiting for the store's word. */
typedef struct staged {
    store_job *job;
    char *text; /* the result, placed on rv.node_id */
    reservation_view rv;
    decision *rec;
} staged;

/* Ranks a job and reserves its best candidate in the local copy, so the
 * next job of the batch ranks around it. false: the job goes the
 * one-at-a-time way (process_shared), which handles everything else:
 * invalid jobs, no candidate, an instance the copy shows placed already,
 * a copy behind the store (*lagging set: the batch waits once, not
 * MIRROR_WAIT_S for each of its jobs). */
static bool stage(worker *w, store_job *job, staged *st, decision *rec, bool *lagging)
{
    const svc_ctx *c = w->pool->ctx;
    bool ok = false;
    job_spec spec;
    job_spec_init(&spec);
    cs_error e = {{0}, {0}};
    unsigned notes = 0;
    json_error_t je;
    memset(st, 0, sizeof *st);
    if (*lagging)
        return false;
    if (c->mirror && !mirror_wait(c->mirror, job->version, MIRROR_WAIT_S)) {
        *lagging = true;
        return false;
    }
    json_t *body = json_loads(job->body ? job->body : "", JSON_REJECT_DUPLICATES, &je);
    if (!body || codec_job(body, job->job_id, job->instance, "", &spec, &notes, &e))
        goto out;
    reservation_view held;
    if (cluster_placement(c->cluster, job->job_id, job->instance, &held) == 0)
        goto out;
    double now = svc_now(), t0 = svc_mono();
    engine_result res;
    if (engine_rank(w->ectx, c->cluster, &spec, now, &res, &e) || res.n_candidates == 0)
        goto out;
    double took = svc_mono() - t0;
    char message[256];
    engine_message(&res, &spec, message, sizeof message);
    node_view v;
    if (cluster_get(c->cluster, res.candidates[0].node_id, now, &v))
        goto out;
    engine_result one = res;
    one.placed = true;
    snprintf(one.node_id, sizeof one.node_id, "%s", res.candidates[0].node_id);
    if (!(st->text = placed_text(c, body, &v, &one, message)))
        goto out;
    reservation_of(&st->rv, job, &spec, one.node_id, now);
    if (cluster_restore(c->cluster, &st->rv, &e)) {
        free(st->text);
        st->text = NULL;
        goto out;
    }
    metrics_observe(c->metrics, H_DECISION, took);
    decision_fill(rec, job->job_id, job->instance, &one, message, now, took);
    st->job = job;
    st->rec = rec;
    ok = true;
out:
    job_spec_clear(&spec);
    json_decref(body);
    return ok;
}

/* Drops a staged reservation from the local copy, unless the feed already
 * replaced it with the one of whoever decided the instance. */
static void unstage(worker *w, const staged *st)
{
    cluster_release_if(w->pool->ctx->cluster, &st->rv);
}

/* Shared store: the jobs at hand are ranked one after the other on the
 * local copy (each reserving there, so the next ranks around it) and
 * committed in one store call. A job whose node filled up meanwhile, and
 * every job that could not be staged, goes through process_shared. */
static void process_shared_batch(worker *w, store_job *jobs, size_t n)
{
    const svc_ctx *c = w->pool->ctx;
    staged st[PLACE_BATCH];
    store_place_req rq[PLACE_BATCH];
    bool alone[PLACE_BATCH] = {false};
    bool lagging = false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!stage(w, &jobs[i], &st[k], &w->recs[i], &lagging)) {
            alone[i] = true;
            continue;
        }
        rq[k] = (store_place_req){.job_id = jobs[i].job_id,
                                  .instance = jobs[i].instance,
                                  .res = &st[k].rv,
                                  .result = st[k].text,
                                  .now = st[k].rv.at,
                                  .ttl = c->cfg->node_ttl};
        k++;
    }
    if (k)
        store_place_many(c->store, rq, k); /* on failure every rc is -1 */
    for (size_t j = 0; j < k; j++) {
        staged *s = &st[j];
        const store_job *job = s->job;
        switch (rq[j].rc) {
        case STORE_PLACED:
            metrics_inc(c->metrics, M_JOBS_PLACED);
            log_debug(c->log, "job %s/%u placed on %s (%s)", job->job_id, job->instance,
                      s->rv.node_id, s->rec->message);
            decisions_record(c->decisions, s->rec);
            hand_over(w, job, rq[j].outbox_id, s->text, svc_now());
            s->text = NULL;
            break;
        case STORE_NO_ROOM:
            metrics_inc(c->metrics, M_PLACE_CONFLICTS);
            unstage(w, s);
            alone[job - jobs] = true;
            break;
        case STORE_DECIDED:
        case STORE_GONE:
            unstage(w, s);
            log_info(c->log, "job %s/%u was %s meanwhile; nothing to do", job->job_id,
                     job->instance, rq[j].rc == STORE_GONE ? "deleted" : "decided elsewhere");
            break;
        default:
            /* As in process_shared: the entry stays pending and is taken
             * again after CLAIM_IDLE. */
            unstage(w, s);
            metrics_inc(c->metrics, M_STORE_ERRORS);
            log_error(c->log, "job %s/%u: committing the placement failed; left queued",
                      job->job_id, job->instance);
            break;
        }
        free(s->text);
    }
    for (size_t i = 0; i < n; i++)
        if (alone[i])
            process_shared(w, &jobs[i], lagging);
}

/* What happens after the store answered for one decision: oid as
 * store_finish returned it. Takes o->result. */
static void finalize(worker *w, const store_job *job, outcome *o, const decision *rec, int64_t oid,
                     double now)
{
    const svc_ctx *c = w->pool->ctx;
    if (oid < 0) {
        /* Not durable: undo the reservation so memory matches the store;
         * the job stays queued in the store and is placed after a restart. */
        metrics_inc(c->metrics, M_STORE_ERRORS);
        if (o->reserved_here)
            cluster_release(c->cluster, job->job_id, job->instance);
        log_error(c->log, "job %s/%u: recording the outcome failed; reservation released",
                  job->job_id, job->instance);
        goto drop;
    }
    if (oid == 0) {
        /* The instance was deleted while this worker held it: nothing to
         * record or send, and its reservation must not outlive it. */
        if (o->reserved_here)
            cluster_release(c->cluster, job->job_id, job->instance);
        log_info(c->log, "job %s/%u was deleted while being placed; outcome dropped", job->job_id,
                 job->instance);
        goto drop;
    }
    reservation_view held;
    if (o->state == JOB_PLACED &&
        (cluster_placement(c->cluster, job->job_id, job->instance, &held) != 0 ||
         strcmp(held.node_id, o->node_id) != 0)) {
        /* The node died or was deleted while this worker recorded the
         * outcome: the reaper or the delete found the instance still in
         * this worker's hands and could not re-queue it. Re-queueing now
         * also drops the outbox row just written, so no stale result goes. */
        log_warn(c->log, "job %s/%u: node %s went away while being placed, re-scheduling",
                 job->job_id, job->instance, o->node_id);
        if (store_requeue(c->store, job->job_id, job->instance, NULL, svc_now()) == 0)
            metrics_inc(c->metrics, M_JOBS_RESCHEDULED);
        else
            metrics_inc(c->metrics, M_STORE_ERRORS);
        goto drop;
    }
    if (o->state == JOB_PLACED) {
        metrics_inc(c->metrics, M_JOBS_PLACED);
        log_debug(c->log, "job %s/%u placed on %s (%s)", job->job_id, job->instance, o->node_id,
                  o->message);
    } else {
        metrics_inc(c->metrics, M_JOBS_UNSCHEDULABLE);
        log_info(c->log, "job %s/%u unschedulable: %s", job->job_id, job->instance, o->message);
    }
    decisions_record(c->decisions, rec);
    hand_over(w, job, oid, o->result, now);
    o->result = NULL;
    return;
drop:
    free(o->result);
    o->result = NULL;
}

/* Decides a batch of jobs one after the other (each reserves in the table
 * at once, so the next sees it), then records every outcome in one
 * group-committed write: the durability wait is paid once per batch, not
 * per job. */
static void process_batch(worker *w, store_job *jobs, size_t n)
{
    const svc_ctx *c = w->pool->ctx;
    outcome o[TAKE_BATCH];
    store_finish_req req[TAKE_BATCH];
    size_t which[TAKE_BATCH], k = 0;
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *body = json_loads(jobs[i].body ? jobs[i].body : "", JSON_REJECT_DUPLICATES, &je);
        decide(w, &jobs[i], body, &o[i], &w->recs[i]);
        json_decref(body);
        if (!o[i].result) {
            log_error(c->log, "job %s/%u: out of memory building its result", jobs[i].job_id,
                      jobs[i].instance);
            if (o[i].reserved_here)
                cluster_release(c->cluster, jobs[i].job_id, jobs[i].instance);
            continue;
        }
        which[k] = i;
        req[k] = (store_finish_req){jobs[i].job_id,
                                    jobs[i].instance,
                                    o[i].state,
                                    o[i].has_res ? &o[i].res : NULL,
                                    o[i].result,
                                    0,
                                    -1};
        k++;
    }
    double now = svc_now();
    for (size_t j = 0; j < k; j++)
        req[j].now = now;
    for (int t = 0; t < FINISH_TRIES; t++) {
        /* Only what failed is tried again. */
        store_finish_req again[TAKE_BATCH];
        size_t back[TAKE_BATCH], m = 0;
        for (size_t j = 0; j < k; j++)
            if (req[j].rc < 0) {
                back[m] = j;
                again[m++] = req[j];
            }
        if (m == 0)
            break;
        if (t)
            usleep(100000);
        if (store_finish_many(c->store, again, m) < 0)
            continue;
        for (size_t j = 0; j < m; j++)
            req[back[j]].rc = again[j].rc;
    }
    for (size_t j = 0; j < k; j++)
        finalize(w, &jobs[which[j]], &o[which[j]], &w->recs[which[j]], req[j].rc, now);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "worker-%d", w->index);
    pthread_setname_np(pthread_self(), name); /* shows in top -H, perf, gdb */
    worker_pool *p = w->pool;
    while (!atomic_load(&p->stop)) {
        store_job jobs[TAKE_BATCH];
        memset(jobs, 0, sizeof jobs);
        int rc = store_take(p->ctx->store, &jobs[0], TAKE_TIMEOUT_MS);
        if (rc < 0)
            break; /* store closing */
        if (rc > 0)
            continue;
        if (store_shared(p->ctx->store)) {
            /* Only what this process read already: no round trip to wait
             * for more. */
            size_t n = 1;
            while (n < PLACE_BATCH && store_take_more(p->ctx->store, &jobs[n]) == 0)
                n++;
            process_shared_batch(w, jobs, n);
            for (size_t i = 0; i < n; i++)
                store_job_clear(&jobs[i]);
            continue;
        }
        /* Whatever else is queued right now joins this batch. */
        size_t n = 1;
        while (n < TAKE_BATCH && store_take(p->ctx->store, &jobs[n], 0) == 0)
            n++;
        process_batch(w, jobs, n);
        for (size_t i = 0; i < n; i++)
            store_job_clear(&jobs[i]);
    }
    return NULL;
}

worker_pool *worker_pool_new(const svc_ctx *ctx, int n, cs_error *err)
{
    worker_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->w = calloc((size_t)n, sizeof *p->w))) {
        free(p);
        cs_fail(err, "workers", "out of memory");
        return NULL;
    }
    p->ctx = ctx;
    p->n = n;
    atomic_init(&p->stop, false);
    for (int i = 0; i < n; i++) {
        worker *w = &p->w[i];
        w->pool = p;
        w->index = i;
        w->ectx = engine_ctx_new(&ctx->opts);
        w->recs = calloc(TAKE_BATCH, sizeof *w->recs);
        if (!w->ectx || !w->recs) {
            cs_fail(err, "workers", "out of memory");
            goto fail;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            cs_fail(err, "workers", "cannot start worker thread %d", i);
            goto fail;
        }
        w->started = true;
    }
    return p;
fail:
    worker_pool_free(p);
    return NULL;
}

void worker_pool_stop(worker_pool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    for (int i = 0; i < p->n; i++) {
        if (p->w[i].started)
            pthread_join(p->w[i].thread, NULL);
        p->w[i].started = false;
    }
}

void worker_pool_free(worker_pool *p)
{
    if (!p)
        return;
    worker_pool_stop(p);
    for (int i = 0; i < p->n; i++) {
        engine_ctx_free(p->w[i].ectx);
        free(p->w[i].recs);
    }
    free(p->w);
    free(p);
}
