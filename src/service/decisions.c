/* decisions.c - a fixed ring of decision records behind one mutex. Records
 * are plain values copied in and out, so a reader never holds the lock
 * while building JSON and a worker never waits on a reader for long. */
#include "decisions.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct decisions {
    pthread_mutex_t mu;
    size_t keep;
    size_t next;    /* slot the next record goes to */
    uint64_t total; /* records since start */
    decision *ring; /* keep slots; the last min(total, keep) are valid */
};

decisions *decisions_new(size_t keep)
{
    if (keep == 0)
        keep = 1;
    decisions *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    if (!(d->ring = calloc(keep, sizeof *d->ring))) {
        free(d);
        return NULL;
    }
    d->keep = keep;
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

void decisions_free(decisions *d)
{
    if (!d)
        return;
    pthread_mutex_destroy(&d->mu);
    free(d->ring);
    free(d);
}

/* strnlen + memcpy: this runs once per decision on a worker, where a
 * dozen snprintf calls would cost more than the copy itself. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

void decision_fill(decision *rec, const char *job_id, uint32_t instance, const engine_result *r,
                   const char *message, double at, double seconds)
{
    copy_str(rec->job_id, sizeof rec->job_id, job_id);
    rec->instance = instance;
    rec->at = at;
    rec->seconds = seconds;
    copy_str(rec->message, sizeof rec->message, message);
    rec->placed = r && (r->placed || r->existing);
    copy_str(rec->node_id, sizeof rec->node_id, rec->placed ? r->node_id : "");
    rec->n_nodes = r ? r->n_nodes : 0;
    rec->n_qualified = r ? r->n_qualified : 0;
    if (r)
        memcpy(rec->reasons, r->reasons, sizeof rec->reasons);
    else
        memset(rec->reasons, 0, sizeof rec->reasons);
    size_t n = 0;
    if (r)
        n = r->n_candidates < DECISIONS_CANDIDATES ? r->n_candidates : DECISIONS_CANDIDATES;
    for (size_t i = 0; i < n; i++) {
        copy_str(rec->candidates[i].node_id, sizeof rec->candidates[i].node_id,
                 r->candidates[i].node_id);
        rec->candidates[i].score = r->candidates[i].score;
    }
    rec->n_candidates = n;
}

void decisions_record(decisions *d, const decision *rec)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->ring[d->next] = *rec;
    d->next = (d->next + 1) % d->keep;
    d->total++;
    pthread_mutex_unlock(&d->mu);
}

static json_t *decision_json(const decision *r)
{
    json_t *cands = json_array();
    json_t *reasons = json_object();
    json_t *doc = NULL;
    if (!cands || !reasons)
        goto fail;
    for (size_t i = 0; i < r->n_candidates; i++) {
        /* Rounded as in results: more digits are noise to a reader. */
        double score = round(r->candidates[i].score * 100.0) / 100.0;
        if (json_array_append_new(cands, json_pack("{s:s, s:f}", "node_id",
                                                   r->candidates[i].node_id, "score", score)))
            goto fail;
    }
    for (int i = 0; i < REASON__COUNT; i++)
        if (r->reasons[i] && json_object_set_new(reasons, engine_reason_key((engine_reason)i),
                                                 json_integer((json_int_t)r->reasons[i])))
            goto fail;
    doc = json_pack(
        "{s:s, s:I, s:s, s:f, s:f, s:I, s:I, s:o, s:o, s:s}", "job_id", r->job_id, "instance",
        (json_int_t)r->instance, "state", r->placed ? "placed" : "unschedulable", "at", r->at,
        "decision_ms", round(r->seconds * 1e6) / 1e3, "nodes", (json_int_t)r->n_nodes, "qualified",
        (json_int_t)r->n_qualified, "candidates", cands, "reasons", reasons, "message", r->message);
    cands = reasons = NULL; /* stolen by json_pack, even when it fails */
    if (doc && r->placed && json_object_set_new(doc, "node_id", json_string(r->node_id))) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
fail:
    json_decref(cands);
    json_decref(reasons);
    return NULL;
}

json_t *decisions_json(decisions *d, size_t limit)
{
    size_t n = 0;
    uint64_t total = 0;
    decision *copy = NULL;
    json_t *list = json_array();
    if (!list)
        return NULL;
    if (d) {
        if (!(copy = malloc(d->keep * sizeof *copy)))
            goto fail;
        pthread_mutex_lock(&d->mu);
        total = d->total;
        n = total < d->keep ? (size_t)total : d->keep;
        if (n > limit)
            n = limit;
        /* Newest first: walk back from the slot before `next`. */
        for (size_t i = 0; i < n; i++)
            copy[i] = d->ring[(d->next + d->keep - 1 - i) % d->keep];
        pthread_mutex_unlock(&d->mu);
    }
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(list, decision_json(&copy[i])))
            goto fail;
    free(copy);
    return json_pack("{s:I, s:I, s:o}", "kept", (json_int_t)(d ? d->keep : 0), "recorded",
                     (json_int_t)total, "decisions", list);
fail:
    free(copy);
    json_decref(list);
    return NULL;
}
