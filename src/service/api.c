/* api.c - the routes of docs/API.md. Every input is decoded and validated
 * (codec) before anything is stored, so a bad request changes nothing;
 * intake answers only after the job is durable. */
#include "api.h"

#include <stdbool.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "decisions.h"
#include "reaper.h"
#include "service.h"
#include "ui.h"
#include "virt.h"

#define HELLO "Hello from cluster-scheduler, the cluster scheduler\n"
#define REPLICAS_MAX 1000
#define FAST_BODY_MAX 65536
/* A stored node document (every report merged, unknown fields kept) is
 * capped: each process keeps every node's in memory and Redis mode sends
 * it to all of them; Oakestra's worker reports are about 1 KB. */
#define NODE_DOC_MAX 65536

static void reply_cs_error(http_reply *out, int status, const cs_error *e)
{
    http_reply_error(out, status, e->field, e->msg);
}

static void store_unavailable(const svc_ctx *c, http_reply *out, const char *what)
{
    metrics_inc(c->metrics, M_STORE_ERRORS);
    log_error(c->log, "store: %s failed", what);
    http_reply_error(out, 503, "store", "storage unavailable; try again");
}

static void reply_json_obj(http_reply *out, int status, json_t *doc)
{
    char *s = codec_dump(doc);
    json_decref(doc);
    http_reply_json(out, status, s);
}

/* ---- nodes ------------------------------------------------------------- */

static void node_put(const svc_ctx *c, const char *id, const char *body, size_t len,
                     http_reply *out)
{
    cs_error e;
    node_report nr;
    node_report_init(&nr);
    json_t *report = NULL, *old = NULL, *doc = NULL;
    char *text = NULL;
    bool locked = false;
    if (node_id_check(id, &e)) {
        reply_cs_error(out, 400, &e);
        goto out;
    }
    if (!(report = codec_parse_object(body, len, &e)) || codec_node(report, &nr, &e)) {
        reply_cs_error(out, 400, &e);
        goto out;
    }
    double now = svc_now();
    nodedocs_lock_node(c->docs, id);
    locked = true;
    old = nodedocs_get(c->docs, id);
    doc = codec_node_merge(old, report);
    text = codec_dump(doc);
    if (!doc || !text) {
        http_reply_error(out, 500, "server", "out of memory");
        goto out;
    }
    if (strlen(text) > NODE_DOC_MAX) {
        http_reply_error(out, 400, "body",
                         "the node document would be larger than 65536 bytes (fields are kept "
                         "across reports; DELETE the node to start afresh)");
        goto out;
    }
    /* A report that changed nothing but the time (a heartbeat) is stored
     * as a time alone where the store can (see store_node_caps). */
    bool unchanged = old && nodedocs_same(c->docs, id, text);
    int rc = cluster_report(c->cluster, id, &nr, now, &e);
    if (rc < 0) {
        reply_cs_error(out, 400, &e);
        goto out;
    }
    /* Memory first, then the durable copy: both under the node's lock, so
     * the store keeps the last merge even when reports race. The map takes
     * doc; it is not touched here afterwards. */
    nodedocs_put(c->docs, id, doc);
    doc = NULL;
    node_view nv;
    store_node_caps caps = {0};
    if (cluster_get(c->cluster, id, now, &nv) == 0) {
        caps.cpu_milli = nv.vcpus_milli;
        caps.memory_mb = nv.memory_mb;
        caps.gpus = nv.gpus;
    }
    caps.cpu_pct_set = (nr.set & NODE_F_CPU_PCT) != 0;
    caps.cpu_pct = nr.cpu_percent;
    caps.mem_pct_set = (nr.set & NODE_F_MEM_PCT) != 0;
    caps.mem_pct = nr.memory_percent;
    caps.doc_unchanged = unchanged;
    if (store_node_put(c->store, id, text, now, &caps) < 0) {
        store_unavailable(c, out, "node put");
        goto out;
    }
    nodedocs_unlock_node(c->docs, id);
    locked = false;
    if (rc == 1)
        log_info(c->log, "node %s registered", id);
    json_t *answer = svc_node_doc(c, id, now);
    if (!answer)
        http_reply_error(out, 404, "node_id", "node removed meanwhile");
    else
        reply_json_obj(out, rc == 1 ? 201 : 200, answer);
out:
    if (locked)
        nodedocs_unlock_node(c->docs, id);
    free(text);
    json_decref(doc);
    json_decref(old);
    json_decref(report);
    node_report_clear(&nr);
}

static void node_get(const svc_ctx *c, const char *id, http_reply *out)
{
    json_t *doc = svc_node_doc(c, id, svc_now());
    if (!doc) {
        http_reply_error(out, 404, "node_id", "unknown node");
        return;
    }
    reply_json_obj(out, 200, doc);
}

/* Appends n bytes to a growing buffer. 0, or -1 out of memory. */
static int buf_add(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 4096;
        while (*len + n + 1 > ncap)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* Written one document at a time into one buffer: at 100,000 nodes a tree
 * of every document at once would cost several hundred MB. */
static void nodes_list(const svc_ctx *c, http_reply *out)
{
    double now = svc_now();
    json_t *snap = nodedocs_ids(c->docs);
    char *buf = NULL;
    size_t len = 0, cap = 0, n = 0;
    if (!snap || buf_add(&buf, &len, &cap, "{\"nodes\":[", 10))
        goto fail;
    size_t i;
    json_t *idv;
    json_array_foreach(snap, i, idv)
    {
        json_t *doc = svc_node_doc(c, json_string_value(idv), now);
        if (!doc)
            continue; /* removed meanwhile */
        char *text = codec_dump(doc);
        json_decref(doc);
        int rc = !text || (n && buf_add(&buf, &len, &cap, ",", 1)) ||
                 buf_add(&buf, &len, &cap, text, strlen(text));
        free(text);
        if (rc)
            goto fail;
        n++;
    }
    if (buf_add(&buf, &len, &cap, "]}", 2))
        goto fail;
    json_decref(snap);
    http_reply_json(out, 200, buf);
    /* Give the transient memory of a large listing back to the system. */
    if (len > (1u << 20))
        malloc_trim(0);
    return;
fail:
    free(buf);
    json_decref(snap);
    http_reply_error(out, 500, "server", "out of memory");
}

static void node_delete(const svc_ctx *c, const char *id, http_reply *out)
{
    /* Its instances are placed again elsewhere, as for a node that died;
     * the cluster hands back the reservations it dropped with the node. */
    size_t n = 0;
    reservation_view *placed = NULL;
    nodedocs_lock_node(c->docs, id);
    int in_cluster = cluster_remove(c->cluster, id, &placed, &n) == 0;
    int had_doc = nodedocs_remove(c->docs, id) == 0;
    if (!in_cluster && !had_doc) {
        nodedocs_unlock_node(c->docs, id);
        free(placed);
        http_reply_error(out, 404, "node_id", "unknown node");
        return;
    }
    size_t moved = 0;
    int rc = store_node_delete(c->store, id, &moved);
    nodedocs_unlock_node(c->docs, id);
    if (rc < 0) {
        free(placed);
        store_unavailable(c, out, "node delete");
        return;
    }
    /* A shared store re-queued them itself, in the same step. */
    double now = svc_now();
    for (size_t i = 0; i < n && !store_shared(c->store); i++)
        if (reaper_requeue(c, &placed[i], now, "deleted") == 0)
            moved++;
    free(placed);
    log_info(c->log, "node %s deleted, %zu instances re-scheduled", id, moved);
    reply_json_obj(out, 200,
                   json_pack("{s:s,s:I}", "deleted", id, "rescheduled", (json_int_t)moved));
}

/* ---- jobs -------------------------------------------------------------- */

/* Counts and logs what the store said of one instance. */
static void count_enqueue(const svc_ctx *c, const char *job_id, uint32_t instance, int rc)
{
    if (rc == 0) {
        metrics_inc(c->metrics, M_JOBS_RECEIVED);
        log_debug(c->log, "job %s/%u queued", job_id, instance);
    } else if (rc == 1) {
        metrics_inc(c->metrics, M_JOBS_DUPLICATE);
        log_info(c->log, "job %s/%u already known; request ignored", job_id, instance);
    }
}

/* Queues one validated instance. 0 queued, 1 known already, -1 store error. */
static int enqueue(const svc_ctx *c, const char *job_id, uint32_t instance, const char *text)
{
    int rc = store_enqueue(c->store, job_id, instance, text, svc_now());
    count_enqueue(c, job_id, instance, rc);
    return rc;
}

/* 0 when the deploy body is a valid job; else -1 with out the 400. */
static int deploy_check(const route_match *m, const char *body, size_t len, http_reply *out)
{
    cs_error e;
    job_spec spec;
    unsigned notes = 0;
    int rc = 0;
    job_spec_init(&spec);
    json_t *job = codec_parse_object(body, len, &e);
    if (!job || codec_job(job, m->job_id, m->instance, "", &spec, &notes, &e)) {
        reply_cs_error(out, 400, &e);
        rc = -1;
    }
    job_spec_clear(&spec);
    json_decref(job);
    return rc;
}

/* The answer to a deploy once the store said what became of it. */
static void deploy_answer(const svc_ctx *c, const route_match *m, int rc, http_reply *out)
{
    count_enqueue(c, m->job_id, m->instance, rc);
    if (rc < 0)
        store_unavailable(c, out, "enqueue");
    else
        http_reply_text(out, 200, "ok");
}

static void deploy(const svc_ctx *c, const route_match *m, const char *body, size_t len,
                   http_reply *out)
{
    if (deploy_check(m, body, len, out))
        return;
    /* The body as sent is what gets stored: it parsed and validated, and
     * writing the tree back out would only cost time (every number). */
    deploy_answer(c, m, store_enqueue(c->store, m->job_id, m->instance, body, svc_now()), out);
}

/* A deploy waiting for its commit (api_fast). */
typedef struct deploy_wait {
    const svc_ctx *c;
    http_call *call;
    const route_match *m;
} deploy_wait;

/* On the committing thread: must not block. */
static void deploy_done(void *ud, int rc)
{
    deploy_wait *w = ud;
    http_reply r = {0};
    deploy_answer(w->c, w->m, rc, &r);
    http_call *call = w->call;
    free(w);
    http_call_answer(call, &r);
}

static void replicate(const svc_ctx *c, const char *body, size_t len, http_reply *out)
{
    cs_error e;
    job_spec spec;
    unsigned notes = 0;
    char *text = NULL;
    char id[CS_ID_MAX + 1];
    job_spec_init(&spec);
    json_t *root = codec_parse_object(body, len, &e);
    if (!root) {
        reply_cs_error(out, 400, &e);
        goto out;
    }
    json_t *job = json_object_get(root, "job");
    json_t *n = json_object_get(root, "replicas");
    if (!json_is_object(job)) {
        http_reply_error(out, 400, "job", "is required (the job document)");
        goto out;
    }
    double reps = json_is_number(n) ? json_number_value(n) : -1;
    if (!json_is_number(n) || reps < 1 || reps > REPLICAS_MAX || reps != (double)(long)reps) {
        http_reply_error(out, 400, "replicas", "must be a whole number in 1..1000");
        goto out;
    }
    int rc = codec_job_id(job, "job.", id, &e);
    if (rc == 1)
        cs_fail(&e, "job._id", "is required");
    if (rc || codec_job(job, id, 0, "job.", &spec, &notes, &e)) {
        reply_cs_error(out, 400, &e);
        goto out;
    }
    if (!(text = codec_dump(job))) {
        http_reply_error(out, 500, "server", "out of memory");
        goto out;
    }
    /* All instances in one group commit; a failure half way is safe to
     * repeat (instances already queued are recognised). */
    int rcs[REPLICAS_MAX];
    int many = store_enqueue_many(c->store, id, (uint32_t)reps, text, svc_now(), rcs);
    for (uint32_t i = 0; i < (uint32_t)reps; i++)
        count_enqueue(c, id, i, rcs[i]);
    if (many < 0) {
        store_unavailable(c, out, "enqueue");
        goto out;
    }
    log_info(c->log, "job %s: %u replicas requested", id, (uint32_t)reps);
    http_reply_text(out, 200, "ok");
out:
    free(text);
    job_spec_clear(&spec);
    json_decref(root);
}

/* The status document of GET /api/v1/jobs/{id}/{instance}. */
static json_t *status_doc(const char *job_id, uint32_t instance, const store_status *st)
{
    json_t *doc = json_pack("{s:s, s:I, s:s}", "job_id", job_id, "instance", (json_int_t)instance,
                            "state", job_state_name(st->state));
    if (!doc)
        return NULL;
    if (st->node_id[0])
        json_object_set_new(doc, "node_id", json_string(st->node_id));
    json_object_set_new(doc, "received_at", json_real(st->received_at));
    if (st->state != JOB_QUEUED)
        json_object_set_new(doc, "decided_at", json_real(st->decided_at));
    json_t *res = st->result ? json_loads(st->result, 0, NULL) : NULL;
    static const char *const keys[] = {"status",  "candidates", "reasons",
                                       "filters", "message",    NULL};
    for (int i = 0; res && keys[i]; i++) {
        json_t *v = json_object_get(res, keys[i]);
        if (v)
            json_object_set(doc, keys[i], v);
    }
    json_decref(res);
    return doc;
}

static void jobs_post(const svc_ctx *c, const char *body, size_t len, http_reply *out)
{
    cs_error e;
    job_spec spec;
    unsigned notes = 0;
    char id[CS_ID_MAX + 1];
    uint32_t instance = 0;
    store_status st;
    memset(&st, 0, sizeof st);
    job_spec_init(&spec);
    json_t *job = codec_parse_object(body, len, &e);
    if (!job) {
        reply_cs_error(out, 400, &e);
        goto out;
    }
    int rc = codec_job_id(job, "", id, &e);
    if (rc == 1)
        cs_fail(&e, "_id", "is required");
    if (rc || codec_instance(job, "instance", &instance, &e) < 0 ||
        codec_job(job, id, instance, "", &spec, &notes, &e)) {
        reply_cs_error(out, 400, &e);
        goto out;
    }
    rc = enqueue(c, id, instance, body); /* as sent, like deploy */
    if (rc < 0) {
        store_unavailable(c, out, "enqueue");
        goto out;
    }
    if (rc == 0) {
        reply_json_obj(out, 202,
                       json_pack("{s:s, s:I, s:s}", "job_id", id, "instance", (json_int_t)instance,
                                 "state", "queued"));
        goto out;
    }
    rc = store_status_get(c->store, id, instance, &st);
    if (rc < 0) {
        store_unavailable(c, out, "status");
        goto out;
    }
    if (rc == 1) /* deleted in between */
        reply_json_obj(out, 200,
                       json_pack("{s:s, s:I, s:s}", "job_id", id, "instance", (json_int_t)instance,
                                 "state", "queued"));
    else
        reply_json_obj(out, 200, status_doc(id, instance, &st));
out:
    store_status_clear(&st);
    job_spec_clear(&spec);
    json_decref(job);
}

static void reply_bad_explain(http_reply *out)
{
    http_reply_error(out, 400, "explain", "must be 1, true, yes, 0, false or no");
}

/* The "explain" member of a job's status: the stored job ranked against
 * the cluster as it is now, every node's verdict. An error object when
 * the stored job no longer decodes. NULL when out of memory. */
static json_t *explain_doc(const svc_ctx *c, const char *job_id, uint32_t instance,
                           const char *body)
{
    cs_error e = {{0}, {0}};
    job_spec spec;
    engine_result res;
    engine_node_explain *nodes = NULL;
    engine_ctx *ectx = NULL;
    json_t *doc = NULL;
    json_t *job = body ? json_loads(body, JSON_REJECT_DUPLICATES, NULL) : NULL;
    job_spec_init(&spec);
    if (!job) {
        cs_fail(&e, "body", "the stored job is not valid JSON");
    } else if (codec_job(job, job_id, instance, "", &spec, NULL, &e) == 0) {
        double now = svc_now();
        if (!(ectx = engine_ctx_new(&c->opts)))
            goto out;
        if (engine_explain(ectx, c->cluster, &spec, now, &res, &nodes, &e) == 0) {
            doc = codec_explain(&res, nodes, &spec, now);
            goto out;
        }
    }
    doc = json_pack("{s:{s:s, s:s}}", "error", "field", e.field, "message", e.msg);
out:
    free(nodes);
    engine_ctx_free(ectx);
    job_spec_clear(&spec);
    json_decref(job);
    return doc;
}

static void job_get(const svc_ctx *c, const route_match *m, http_reply *out)
{
    store_status st;
    memset(&st, 0, sizeof st);
    if (m->explain < 0) {
        reply_bad_explain(out);
        return;
    }
    int rc = store_status_get(c->store, m->job_id, m->instance, &st);
    if (rc < 0) {
        store_unavailable(c, out, "status");
    } else if (rc == 1) {
        http_reply_error(out, 404, "job_id", "unknown job instance");
    } else {
        json_t *doc = status_doc(m->job_id, m->instance, &st);
        if (doc && m->explain &&
            json_object_set_new(doc, "explain", explain_doc(c, m->job_id, m->instance, st.body))) {
            json_decref(doc);
            doc = NULL;
        }
        reply_json_obj(out, 200, doc);
    }
    store_status_clear(&st);
}

static void job_delete(const svc_ctx *c, const route_match *m, http_reply *out)
{
    /* Durable first: if the store fails, memory still matches it. */
    int rc = store_job_delete(c->store, m->job_id, m->instance);
    if (rc < 0) {
        store_unavailable(c, out, "job delete");
        return;
    }
    int released = cluster_release(c->cluster, m->job_id, m->instance) == 0;
    if (rc == 1 && !released) {
        http_reply_error(out, 404, "job_id", "unknown job instance");
        return;
    }
    log_info(c->log, "job %s/%u deleted%s", m->job_id, m->instance,
             released ? "; reservation released" : "");
    reply_json_obj(out, 200,
                   json_pack("{s:{s:s, s:I}}", "deleted", "job_id", m->job_id, "instance",
                             (json_int_t)m->instance));
}

static void schedule(const svc_ctx *c, const route_match *m, const char *body, size_t len,
                     http_reply *out)
{
    cs_error e;
    job_spec spec;
    engine_result res;
    engine_node_explain *nodes = NULL;
    char id[CS_ID_MAX + 1] = "dry-run";
    char msg[512];
    engine_ctx *ectx = NULL;
    job_spec_init(&spec);
    if (m->explain < 0) {
        reply_bad_explain(out);
        return;
    }
    json_t *job = codec_parse_object(body, len, &e);
    if (!job || codec_job_id(job, "", id, &e) < 0 || codec_job(job, id, 0, "", &spec, NULL, &e)) {
        reply_cs_error(out, 400, &e);
        goto out;
    }
    /* A context per dry run: they are rare, and this keeps HTTP threads
     * from sharing the workers' scratch space. */
    if (!(ectx = engine_ctx_new(&c->opts))) {
        http_reply_error(out, 500, "server", "out of memory");
        goto out;
    }
    double now = svc_now();
    int rc = m->explain ? engine_explain(ectx, c->cluster, &spec, now, &res, &nodes, &e)
                        : engine_rank(ectx, c->cluster, &spec, now, &res, &e);
    if (rc) {
        reply_cs_error(out, 500, &e);
        goto out;
    }
    engine_message(&res, &spec, msg, sizeof msg);
    json_t *answer = codec_schedule_answer(&res, msg);
    if (answer && m->explain &&
        json_object_set_new(answer, "explain", codec_explain(&res, nodes, &spec, now))) {
        json_decref(answer);
        answer = NULL;
    }
    reply_json_obj(out, 200, answer);
out:
    free(nodes);
    engine_ctx_free(ectx);
    job_spec_clear(&spec);
    json_decref(job);
}

/* ---- metrics ----------------------------------------------------------- */

typedef struct node_counts {
    size_t active, inactive, reservations;
} node_counts;

static int count_node(const node_view *v, void *ud)
{
    node_counts *n = ud;
    if (v->active)
        n->active++;
    else
        n->inactive++;
    n->reservations += v->n_reservations;
    return 0;
}

static void metrics_page(const svc_ctx *c, http_reply *out)
{
    node_counts nc = {0, 0, 0};
    cluster_foreach(c->cluster, svc_now(), count_node, &nc);
    metrics_gauges g = {
        .queue_depth = store_queue_depth(c->store),
        .outbox_depth = store_outbox_depth(c->store),
        .nodes_active = nc.active,
        .nodes_inactive = nc.inactive,
        .reservations = nc.reservations,
        .workers = (size_t)c->cfg->workers,
    };
    char *text = metrics_render(c->metrics, &g);
    if (!text) {
        http_reply_error(out, 500, "server", "out of memory");
        return;
    }
    http_reply_json(out, 200, text);
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- dashboard --------------------------------------------------------- */

/* The last decisions of this process's workers (none in an api-only
 * process: there the workers run elsewhere and each answers for itself). */
static void decisions_page(const svc_ctx *c, http_reply *out)
{
    json_t *doc = decisions_json(c->decisions, DECISIONS_KEEP);
    bool decides = c->cfg->role != CONFIG_ROLE_API;
    if (!doc || json_object_set_new(doc, "role", json_string(config_role_names[c->cfg->role])) ||
        json_object_set_new(doc, "decides", json_boolean(decides)) ||
        (!decides &&
         json_object_set_new(doc, "note",
                             json_string("this process runs --role api and makes no decisions; "
                                         "each --role worker process answers GET "
                                         "/api/v1/decisions on its own port")))) {
        json_decref(doc);
        http_reply_error(out, 500, "server", "out of memory");
        return;
    }
    reply_json_obj(out, 200, doc);
}

http_fast_rc api_fast(void *ud, http_call *call, const route_match *m, const char *body, size_t len,
                      http_reply *out)
{
    const svc_ctx *c = ud;
    /* A large body would hold every connection up while it is parsed on
     * the event thread: a handler thread takes it (Oakestra's jobs are a
     * few KB). */
    if (m->route != ROUTE_DEPLOY || c->cfg->role == CONFIG_ROLE_WORKER ||
        !store_can_enqueue_async(c->store) || len > FAST_BODY_MAX)
        return HTTP_FAST_PASS;
    if (deploy_check(m, body, len, out))
        return HTTP_FAST_ANSWERED;
    deploy_wait *w = malloc(sizeof *w);
    if (!w) {
        http_reply_error(out, 500, "server", "out of memory");
        return HTTP_FAST_ANSWERED;
    }
    *w = (deploy_wait){.c = c, .call = call, .m = m};
    if (store_enqueue_async(c->store, m->job_id, m->instance, body, svc_now(), deploy_done, w)) {
        free(w);
        deploy_answer(c, m, -1, out);
        return HTTP_FAST_ANSWERED;
    }
    return HTTP_FAST_PENDING;
}

void api_flush(void *ud)
{
    const svc_ctx *c = ud;
    store_flush_async(c->store);
}

void api_handle(void *ud, const route_match *m, const char *body, size_t len, http_reply *out)
{
    const svc_ctx *c = ud;
    /* A worker process answers health, metrics and its own decisions only:
     * intake, the node table and the dashboard belong to the api processes. */
    if (c->cfg->role == CONFIG_ROLE_WORKER && m->route != ROUTE_HELLO && m->route != ROUTE_STATUS &&
        m->route != ROUTE_METRICS && m->route != ROUTE_DECISIONS) {
        http_reply_error(out, 404, "path",
                         "this process runs --role worker: it serves /status, /metrics and "
                         "/api/v1/decisions; send requests to an api process");
        return;
    }
    switch (m->route) {
    case ROUTE_HELLO:
        http_reply_text(out, 200, HELLO);
        return;
    case ROUTE_STATUS:
        http_reply_text(out, 200, "ok");
        return;
    case ROUTE_METRICS:
        metrics_page(c, out);
        return;
    case ROUTE_DEPLOY:
        deploy(c, m, body, len, out);
        return;
    case ROUTE_REPLICATE:
        replicate(c, body, len, out);
        return;
    case ROUTE_NODES:
        nodes_list(c, out);
        return;
    case ROUTE_NODE:
        if (m->method == METHOD_PUT)
            node_put(c, m->node_id, body, len, out);
        else if (m->method == METHOD_DELETE)
            node_delete(c, m->node_id, out);
        else
            node_get(c, m->node_id, out);
        return;
    case ROUTE_JOBS:
        jobs_post(c, body, len, out);
        return;
    case ROUTE_JOB:
        if (m->method == METHOD_DELETE)
            job_delete(c, m, out);
        else
            job_get(c, m, out);
        return;
    case ROUTE_SCHEDULE:
        schedule(c, m, body, len, out);
        return;
    case ROUTE_UI:
        ui_reply(NULL, out);
        return;
    case ROUTE_UI_ASSET:
        ui_reply(m->asset, out);
        return;
    case ROUTE_DECISIONS:
        decisions_page(c, out);
        return;
    default:
        http_reply_error(out, 404, "path", "no such route");
        return;
    }
}
