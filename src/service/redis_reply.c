/* redis_reply.c - the Redis store's reply readers (see redis_reply.h). Each
 * checks a node's type and element count before it reads inside; strings
 * are NUL-terminated by hiredis but may hold NULs, so lengths are checked
 * on len and copies stop at the first NUL. */
#include "redis_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool rr_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

long long rr_integer(const redisReply *r, long long otherwise)
{
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : otherwise;
}

bool rr_script_sha(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING && r->len == 40;
}

/* A string reply usable as an id: at most CS_ID_MAX bytes and no NUL
 * inside, which would make its C string name another, shorter id. */
static bool id_fits(const redisReply *v)
{
    return v->len <= CS_ID_MAX && strlen(v->str) == v->len;
}

static bool all_strings(const redisReply *r, size_t from, size_t n)
{
    for (size_t i = from; i < from + n; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return false;
    return true;
}

/* --- job stream -------------------------------------------------------- */

bool rr_entry_job(const redisReply *e, store_job *out, char eid[RR_ENTRY_ID_MAX])
{
    memset(out, 0, sizeof *out);
    if (eid && e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
        e->element[0]->type == REDIS_REPLY_STRING)
        snprintf(eid, RR_ENTRY_ID_MAX, "%s", e->element[0]->str);
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    const redisReply *f = e->element[1];
    bool has_job = false;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "job") == 0 && id_fits(v)) {
            snprintf(out->job_id, sizeof out->job_id, "%s", v->str);
            has_job = v->len > 0;
        } else if (strcmp(k->str, "inst") == 0) {
            out->instance = (uint32_t)strtoul(v->str, NULL, 10);
        } else if (strcmp(k->str, "v") == 0) {
            out->version = strtoull(v->str, NULL, 10);
        } else if (strcmp(k->str, "recv") == 0) {
            out->received_at = strtod(v->str, NULL);
        } else if (strcmp(k->str, "a") == 0) {
            out->attempts = (uint32_t)strtoul(v->str, NULL, 10);
        } else if (strcmp(k->str, "body") == 0 && !out->body) {
            out->body = strdup(v->str);
        }
    }
    if (!has_job || !out->body) {
        store_job_clear(out);
        return false;
    }
    return true;
}

const redisReply *rr_stream_entries(const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
        return r->element[0]->element[1];
    return NULL;
}

bool rr_autoclaim(const redisReply *r, const char **cursor, const redisReply **entries)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    *cursor = r->element[0]->str;
    *entries = r->element[1];
    return true;
}

bool rr_scan(const redisReply *r, const char **cursor, const redisReply **keys)
{
    if (!rr_autoclaim(r, cursor, keys))
        return false;
    for (size_t i = 0; i < (*keys)->elements; i++)
        if ((*keys)->element[i]->type != REDIS_REPLY_STRING)
            return false;
    return true;
}

long long rr_pending_count(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                   r->element[0]->type == REDIS_REPLY_INTEGER
               ? r->element[0]->integer
               : 0;
}

/* --- script answers ---------------------------------------------------- */

int rr_enqueue_rcs(const redisReply *r, uint32_t n, int *rcs)
{
    int rc = 0;
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == n;
    for (uint32_t i = 0; i < n; i++) {
        rcs[i] =
            ok && r->element[i]->type == REDIS_REPLY_INTEGER ? (int)r->element[i]->integer : -1;
        if (rcs[i] < 0)
            rc = -1;
    }
    return rc;
}

int rr_place(const redisReply *r, size_t i, int64_t *outbox_id, char held_node[CS_ID_MAX + 1])
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2 || i >= r->elements / 2)
        return -1;
    const redisReply *code = r->element[2 * i], *what = r->element[2 * i + 1];
    if (code->type != REDIS_REPLY_INTEGER || what->type != REDIS_REPLY_STRING ||
        code->integer < STORE_PLACED || code->integer > STORE_GONE)
        return -1;
    int rc = (int)code->integer;
    if (rc == STORE_PLACED)
        *outbox_id = strtoll(what->str, NULL, 10);
    else if (rc == STORE_DECIDED && id_fits(what))
        snprintf(held_node, CS_ID_MAX + 1, "%s", what->str);
    return rc;
}

static int dup_field(const redisReply *r, char **out)
{
    *out = NULL;
    if (r->type != REDIS_REPLY_STRING)
        return 0;
    *out = strdup(r->str);
    return *out ? 0 : -1;
}

int rr_status(const redisReply *r, store_status *out)
{
    memset(out, 0, sizeof *out);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 6)
        return -1;
    redisReply **e = r->element;
    if (e[0]->type != REDIS_REPLY_STRING)
        return 1;
    int st = atoi(e[0]->str);
    out->state = st == JOB_PLACED          ? JOB_PLACED
                 : st == JOB_UNSCHEDULABLE ? JOB_UNSCHEDULABLE
                                           : JOB_QUEUED;
    if (e[1]->type == REDIS_REPLY_STRING && id_fits(e[1]))
        snprintf(out->node_id, sizeof out->node_id, "%s", e[1]->str);
    if (dup_field(e[2], &out->body) != 0 || dup_field(e[3], &out->result) != 0) {
        store_status_clear(out);
        return -1;
    }
    out->received_at = e[4]->type == REDIS_REPLY_STRING ? strtod(e[4]->str, NULL) : 0;
    out->decided_at = e[5]->type == REDIS_REPLY_STRING ? strtod(e[5]->str, NULL) : 0;
    return 0;
}

int rr_node_delete(const redisReply *r, size_t *requeued)
{
    int rc = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER) {
        rc = r->element[0]->integer == 1 ? 0 : 1;
        if (requeued)
            *requeued = (size_t)r->element[1]->integer;
    }
    return rc;
}

int rr_outbox_due(const redisReply *r, outbox_item *out, int max)
{
    int n = 0;
    bool failed = !r || r->type != REDIS_REPLY_ARRAY || max < 0 || r->elements > (size_t)max;
    for (size_t i = 0; !failed && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 7 || !all_strings(e, 0, 7) ||
            !id_fits(e->element[1])) {
            failed = true;
            break;
        }
        outbox_item *o = &out[n];
        memset(o, 0, sizeof *o);
        o->id = strtoll(e->element[0]->str, NULL, 10);
        snprintf(o->job_id, sizeof o->job_id, "%s", e->element[1]->str);
        o->instance = (uint32_t)strtoul(e->element[2]->str, NULL, 10);
        o->payload = strdup(e->element[3]->str);
        o->attempts = (uint32_t)strtoul(e->element[4]->str, NULL, 10);
        o->created_at = strtod(e->element[5]->str, NULL);
        o->next_at = strtod(e->element[6]->str, NULL);
        if (!o->payload) {
            failed = true;
            break;
        }
        n++;
    }
    if (failed) {
        for (int i = 0; i < n; i++)
            outbox_item_clear(&out[i]);
        return -1;
    }
    return n;
}

/* --- snapshot ---------------------------------------------------------- */

/* Seven string replies (job, inst, node, cpu, mem, gpu, at) as a
 * reservation; false when an id is too long. */
/* f: job, instance, node, cpu, memory, gpus, at. The ids are checked for
 * length by the caller. */
static void res_fill(const char *const f[7], reservation_view *v)
{
    memset(v, 0, sizeof *v);
    snprintf(v->job_id, sizeof v->job_id, "%s", f[0]);
    v->instance = (uint32_t)strtoul(f[1], NULL, 10);
    snprintf(v->node_id, sizeof v->node_id, "%s", f[2]);
    v->cpu_milli = strtoll(f[3], NULL, 10);
    v->memory_mb = strtoll(f[4], NULL, 10);
    v->gpus = (int32_t)strtol(f[5], NULL, 10);
    v->at = strtod(f[6], NULL);
}

static bool res_parse(redisReply *const *e, reservation_view *v)
{
    if (!id_fits(e[0]) || !id_fits(e[2]))
        return false;
    const char *f[7];
    for (int i = 0; i < 7; i++)
        f[i] = e[i]->str;
    res_fill(f, v);
    return true;
}

/* The packed form of a reservation event: the seven values in one field,
 * separated by single spaces (ids hold no spaces). */
static bool res_unpack(const redisReply *d, reservation_view *v)
{
    char buf[2 * CS_ID_MAX + 128];
    if (d->len >= sizeof buf || strlen(d->str) != d->len)
        return false;
    memcpy(buf, d->str, d->len + 1);
    const char *f[7];
    char *p = buf;
    for (int i = 0; i < 7; i++) {
        f[i] = p;
        char *sp = strchr(p, ' ');
        if ((sp != NULL) != (i < 6))
            return false; /* too few or too many values */
        if (sp) {
            *sp = '\0';
            p = sp + 1;
        }
        if (!*f[i])
            return false;
    }
    if (strlen(f[0]) > CS_ID_MAX || strlen(f[2]) > CS_ID_MAX)
        return false;
    res_fill(f, v);
    return true;
}

bool rr_snapshot_valid(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
           r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
           r->element[2]->type == REDIS_REPLY_ARRAY && r->element[3]->type == REDIS_REPLY_ARRAY &&
           r->element[2]->elements % 3 == 0 && r->element[3]->elements % 7 == 0 &&
           all_strings(r->element[2], 0, r->element[2]->elements) &&
           all_strings(r->element[3], 0, r->element[3]->elements);
}

int rr_snapshot_replay(const redisReply *r, const store_loader *l)
{
    int rc = 0;
    const redisReply *nodes = r->element[2], *res = r->element[3];
    for (size_t i = 0; i < nodes->elements && rc == 0; i += 3) {
        if (!id_fits(nodes->element[i]))
            continue;
        if (l->node)
            rc = l->node(l->ud, nodes->element[i]->str, nodes->element[i + 1]->str,
                         strtod(nodes->element[i + 2]->str, NULL));
    }
    for (size_t i = 0; i < res->elements && rc == 0; i += 7) {
        reservation_view v;
        if (res_parse(res->element + i, &v) && l->reservation)
            rc = l->reservation(l->ud, &v);
    }
    return rc;
}

void rr_snapshot_position(const redisReply *r, uint64_t *seq, const char **feed_id, size_t *nodes)
{
    *seq = strtoull(r->element[0]->str, NULL, 10);
    *feed_id = r->element[1]->str;
    *nodes = r->element[2]->elements / 3;
}

/* --- change feed ------------------------------------------------------- */

bool rr_feed_entry(const redisReply *e, const char **id, const redisReply **fields)
{
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    *id = e->element[0]->str;
    *fields = e->element[1];
    return true;
}

static const redisReply *field(const redisReply *f, const char *name)
{
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING && strcmp(f->element[i]->str, name) == 0 &&
            f->element[i + 1]->type == REDIS_REPLY_STRING)
            return f->element[i + 1];
    return NULL;
}

/* A non-empty id field, or NULL. */
static const char *id_field(const redisReply *f, const char *name)
{
    const redisReply *v = field(f, name);
    return v && v->len > 0 && id_fits(v) ? v->str : NULL;
}

static const char *fstr(const redisReply *f, const char *name)
{
    const redisReply *v = field(f, name);
    return v ? v->str : "";
}

uint64_t rr_event_seq(const redisReply *fields)
{
    return strtoull(fstr(fields, "seq"), NULL, 10);
}

void rr_event_apply(const redisReply *f, const store_follower *fo)
{
    const char *t = fstr(f, "t");
    if (strcmp(t, "h") == 0) {
        const char *id = id_field(f, "id");
        if (id && fo->touch)
            fo->touch(fo->ud, id, strtod(fstr(f, "last"), NULL), strcmp(fstr(f, "uc"), "1") == 0,
                      strcmp(fstr(f, "um"), "1") == 0);
    } else if (strcmp(t, "n") == 0) {
        const char *id = id_field(f, "id");
        if (id && fo->node)
            fo->node(fo->ud, id, fstr(f, "doc"), strtod(fstr(f, "last"), NULL),
                     strcmp(fstr(f, "uc"), "1") == 0, strcmp(fstr(f, "um"), "1") == 0);
    } else if (strcmp(t, "d") == 0) {
        const char *id = id_field(f, "id");
        if (id && fo->node_gone)
            fo->node_gone(fo->ud, id);
    } else if (strcmp(t, "r") == 0) {
        reservation_view rv;
        const redisReply *d = field(f, "d");
        if (d) {
            if (res_unpack(d, &rv) && fo->reservation)
                fo->reservation(fo->ud, &rv);
            return;
        }
        /* The form of earlier versions, one field per value. */
        static const char *const k[7] = {"job", "inst", "node", "cpu", "mem", "gpu", "at"};
        redisReply vals[7], *e[7];
        for (int i = 0; i < 7; i++) {
            const redisReply *v = field(f, k[i]);
            if (!v)
                return;
            vals[i] = *v;
            e[i] = &vals[i];
        }
        if (res_parse(e, &rv) && fo->reservation)
            fo->reservation(fo->ud, &rv);
    } else if (strcmp(t, "x") == 0) {
        const char *job = id_field(f, "job");
        if (job && fo->release)
            fo->release(fo->ud, job, (uint32_t)strtoul(fstr(f, "inst"), NULL, 10));
    }
}

bool rr_seq_behind(const redisReply *r, uint64_t seq)
{
    if (r && r->type == REDIS_REPLY_NIL)
        return seq > 0;
    if (r && r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10) < seq;
    return false;
}
