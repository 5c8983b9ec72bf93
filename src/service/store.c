/* store.c - the public store calls: each dispatches to the backend's
 * table (store_impl.h); plus what every backend shares. */
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *job_state_name(job_state st)
{
    switch (st) {
    case JOB_QUEUED:
        return "queued";
    case JOB_PLACED:
        return "placed";
    case JOB_UNSCHEDULABLE:
        return "unschedulable";
    }
    return "unknown";
}

void store_job_clear(store_job *j)
{
    if (!j)
        return;
    free(j->body);
    j->body = NULL;
}

void store_status_clear(store_status *st)
{
    if (!st)
        return;
    free(st->body);
    free(st->result);
    st->body = NULL;
    st->result = NULL;
}

void outbox_item_clear(outbox_item *o)
{
    if (!o)
        return;
    free(o->payload);
    o->payload = NULL;
}

outbox_key outbox_key_of(const outbox_item *it)
{
    outbox_key k = {.id = it->id, .instance = it->instance};
    snprintf(k.job_id, sizeof k.job_id, "%s", it->job_id);
    return k;
}

bool store_shared(const store *s)
{
    return s && s->ops->shared;
}

void store_close(store *s)
{
    if (s)
        s->ops->close(s);
}

int store_enqueue(store *s, const char *job_id, uint32_t instance, const char *body, double now)
{
    return s ? s->ops->enqueue(s, job_id, instance, body, now) : -1;
}

bool store_can_enqueue_async(const store *s)
{
    return s && s->ops->enqueue_async;
}

int store_enqueue_async(store *s, const char *job_id, uint32_t instance, const char *body,
                        double now, store_done_fn done, void *ud)
{
    if (!store_can_enqueue_async(s) || !done)
        return -1;
    return s->ops->enqueue_async(s, job_id, instance, body, now, done, ud);
}

void store_flush_async(store *s)
{
    if (store_can_enqueue_async(s))
        s->ops->flush_async(s);
}

int store_enqueue_many(store *s, const char *job_id, uint32_t n, const char *body, double now,
                       int *rcs)
{
    return s ? s->ops->enqueue_many(s, job_id, n, body, now, rcs) : -1;
}

int store_requeue(store *s, const char *job_id, uint32_t instance, const char *on_node, double now)
{
    return s ? s->ops->requeue(s, job_id, instance, on_node, now) : -1;
}

int store_take(store *s, store_job *out, int timeout_ms)
{
    return s ? s->ops->take(s, out, timeout_ms) : -1;
}

int store_take_more(store *s, store_job *out)
{
    if (!s)
        return -1;
    return s->ops->take_more ? s->ops->take_more(s, out) : s->ops->take(s, out, 0);
}

size_t store_queue_depth(store *s)
{
    return s ? s->ops->queue_depth(s) : 0;
}

int64_t store_finish(store *s, const char *job_id, uint32_t instance, job_state state,
                     const reservation_view *res, const char *result, double now)
{
    return s ? s->ops->finish(s, job_id, instance, state, res, result, now) : -1;
}

int store_finish_many(store *s, store_finish_req *reqs, size_t n)
{
    if (!s)
        return -1;
    if (s->ops->finish_many)
        return s->ops->finish_many(s, reqs, n);
    for (size_t i = 0; i < n; i++)
        reqs[i].rc = s->ops->finish(s, reqs[i].job_id, reqs[i].instance, reqs[i].state, reqs[i].res,
                                    reqs[i].result, reqs[i].now);
    return 0;
}

int store_place(store *s, const char *job_id, uint32_t instance, const reservation_view *res,
                const char *result, double now, double ttl, int64_t *outbox_id,
                char held_node[CS_ID_MAX + 1])
{
    store_place_req r = {.job_id = job_id,
                         .instance = instance,
                         .res = res,
                         .result = result,
                         .now = now,
                         .ttl = ttl};
    if (!outbox_id || !held_node || store_place_many(s, &r, 1) != 0)
        return -1;
    *outbox_id = r.outbox_id;
    memcpy(held_node, r.held_node, sizeof r.held_node);
    return r.rc;
}

int store_place_many(store *s, store_place_req *reqs, size_t n)
{
    if (n && !reqs)
        return -1;
    for (size_t i = 0; i < n; i++) {
        reqs[i].rc = -1;
        reqs[i].outbox_id = 0;
        reqs[i].held_node[0] = '\0';
    }
    if (!s || !s->ops->place_many)
        return -1;
    return n ? s->ops->place_many(s, reqs, n) : 0;
}

int store_status_get(store *s, const char *job_id, uint32_t instance, store_status *out)
{
    return s ? s->ops->status_get(s, job_id, instance, out) : -1;
}

int store_job_delete(store *s, const char *job_id, uint32_t instance)
{
    return s ? s->ops->job_delete(s, job_id, instance) : -1;
}

int store_node_put(store *s, const char *node_id, const char *doc, double last_report,
                   const store_node_caps *caps)
{
    return s ? s->ops->node_put(s, node_id, doc, last_report, caps) : -1;
}

int store_node_delete(store *s, const char *node_id, size_t *requeued)
{
    return s ? s->ops->node_delete(s, node_id, requeued) : -1;
}

int store_load(store *s, const store_loader *l)
{
    return s ? s->ops->load(s, l) : -1;
}

int store_follow(store *s, const store_follower *f, int timeout_ms, uint64_t *seq)
{
    if (!s || !s->ops->follow)
        return -1;
    return s->ops->follow(s, f, timeout_ms, seq);
}

int store_outbox_due(store *s, double now, outbox_item *out, int max)
{
    return s ? s->ops->outbox_due(s, now, out, max) : -1;
}

int store_outbox_claim(store *s, const outbox_item *items, size_t n, double lease, int *rcs)
{
    if (!s || (n && (!items || !rcs)) || !(lease > 0))
        return -1;
    return n ? s->ops->outbox_claim(s, items, n, lease, rcs) : 0;
}

int store_outbox_done(store *s, const outbox_key *k)
{
    return s && k ? s->ops->outbox_done(s, k) : -1;
}

int store_outbox_done_many(store *s, const outbox_key *ks, size_t n)
{
    if (!s || (n && !ks))
        return -1;
    if (s->ops->outbox_done_many)
        return s->ops->outbox_done_many(s, ks, n);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (s->ops->outbox_done(s, &ks[i]) < 0)
            rc = -1;
    return rc;
}

int store_outbox_retry(store *s, const outbox_key *k, uint32_t attempts, double next_at)
{
    return s && k ? s->ops->outbox_retry(s, k, attempts, next_at) : -1;
}

int store_outbox_give_up(store *s, const outbox_key *k)
{
    return s && k ? s->ops->outbox_give_up(s, k) : -1;
}

size_t store_outbox_depth(store *s)
{
    return s ? s->ops->outbox_depth(s) : 0;
}

double store_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
