/* codec.c - JSON decoding through the core's validating setters, and the
 * documents the service answers with. Field names in errors follow the
 * JSON path of the offending value. */
#include "codec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "virt.h"

#define PATH_MAX_LEN 64 /* = sizeof(cs_error.field) */

/* The value under key, treating JSON null as absent (Python-built
 * documents often carry "vgpus": null for "not given"). */
static json_t *get_opt(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static void path(char *out, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void path(char *out, const char *prefix, const char *fmt, ...)
{
    int n = snprintf(out, PATH_MAX_LEN, "%s", prefix ? prefix : "");
    if (n < 0 || n >= PATH_MAX_LEN)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, PATH_MAX_LEN - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Re-labels an error from a core setter with the JSON path of the value. */
static int relabel(cs_error *err, const char *field, const cs_error *inner)
{
    return cs_fail(err, field, "%s", inner->msg);
}

json_t *codec_parse_object(const char *body, size_t len, cs_error *err)
{
    if (!body || len == 0) {
        cs_fail(err, "body", "is required (a JSON object)");
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        cs_fail(err, "body", "invalid JSON at line %d column %d: %.100s", je.line, je.column,
                je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        cs_fail(err, "body", "must be a JSON object");
        return NULL;
    }
    return v;
}

/* A number field: -1 invalid, 0 set, 1 absent. */
static int get_number(const json_t *obj, const char *key, const char *prefix, double *out,
                      cs_error *err)
{
    json_t *v = get_opt(obj, key);
    if (!v)
        return 1;
    if (!json_is_number(v)) {
        char f[PATH_MAX_LEN];
        path(f, prefix, "%s", key);
        return cs_fail(err, f, "must be a number");
    }
    *out = json_number_value(v);
    return 0;
}

/* A string field: -1 invalid, 0 set, 1 absent. */
static int get_string(const json_t *obj, const char *key, const char *prefix, const char **out,
                      cs_error *err)
{
    json_t *v = get_opt(obj, key);
    if (!v)
        return 1;
    if (!json_is_string(v)) {
        char f[PATH_MAX_LEN];
        path(f, prefix, "%s", key);
        return cs_fail(err, f, "must be a string");
    }
    *out = json_string_value(v);
    return 0;
}

int codec_job_id(const json_t *job, const char *prefix, char out[CS_ID_MAX + 1], cs_error *err)
{
    const char *key = json_object_get(job, "_id") ? "_id" : "id";
    const char *s = NULL;
    int rc = get_string(job, key, prefix, &s, err);
    if (rc)
        return rc;
    cs_error e;
    if (node_id_check(s, &e)) {
        char f[PATH_MAX_LEN];
        path(f, prefix, "%s", key);
        return cs_fail(err, f, "%s", e.msg);
    }
    snprintf(out, CS_ID_MAX + 1, "%s", s);
    return 0;
}

int codec_instance(const json_t *obj, const char *key, uint32_t *out, cs_error *err)
{
    json_t *v = get_opt(obj, key);
    if (!v)
        return 1;
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (!json_is_number(v) || !(d >= 0) || d > CS_INSTANCE_MAX || d != floor(d))
        return cs_fail(err, key, "must be a whole number in 0..%d", CS_INSTANCE_MAX);
    *out = (uint32_t)d;
    return 0;
}

/* Adds every string of a list (a lone string counts as a list of one) to
 * l; with `lenient`, names the core does not know are the caller's to
 * skip, so only shape errors fail here. */
static int add_names(const json_t *v, const char *prefix, const char *key, strlist *l,
                     size_t max_len, cs_error *err)
{
    char f[PATH_MAX_LEN];
    cs_error e;
    if (json_is_string(v)) {
        path(f, prefix, "%s", key);
        if (strlist_add(l, json_string_value(v), max_len, f, &e))
            return relabel(err, f, &e);
        return 0;
    }
    if (!json_is_array(v)) {
        path(f, prefix, "%s", key);
        return cs_fail(err, f, "must be a list of strings");
    }
    if (json_array_size(v) > CS_LIST_MAX) {
        path(f, prefix, "%s", key);
        return cs_fail(err, f, "more than %d entries", CS_LIST_MAX);
    }
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it)
    {
        path(f, prefix, "%s[%zu]", key, i);
        if (!json_is_string(it))
            return cs_fail(err, f, "must be a string");
        if (strlist_add(l, json_string_value(it), max_len, f, &e))
            return relabel(err, f, &e);
    }
    return 0;
}

static int job_constraint(const json_t *c, size_t i, const char *prefix, job_spec *out,
                          unsigned *notes, cs_error *err)
{
    char f[PATH_MAX_LEN], base[PATH_MAX_LEN];
    cs_error e;
    path(base, prefix, "constraints[%zu].", i);
    if (!json_is_object(c)) {
        path(f, prefix, "constraints[%zu]", i);
        return cs_fail(err, f, "must be an object with a \"type\"");
    }
    const char *type = NULL;
    int rc = get_string(c, "type", base, &type, err);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        path(f, base, "type");
        return cs_fail(err, f, "is required");
    }
    if (strcmp(type, "direct") == 0) {
        /* "node" restricts the hosts; a direct constraint naming only a
         * "cluster" is the root orchestrator's business, not ours. */
        json_t *node = get_opt(c, "node");
        if (!node)
            return 0;
        path(f, base, "node");
        if (json_is_string(node)) {
            if (job_spec_add_direct(out, json_string_value(node), &e))
                return relabel(err, f, &e);
            return 0;
        }
        if (!json_is_array(node))
            return cs_fail(err, f, "must be a string of host names separated by ';'");
        out->has_direct = 1;
        return add_names(node, base, "node", &out->hosts, CS_HOST_MAX, err);
    }
    if (strcmp(type, "addons") == 0) {
        json_t *needs = get_opt(c, "needs");
        if (!needs) {
            path(f, base, "needs");
            return cs_fail(err, f, "is required (a list of addon names)");
        }
        return add_names(needs, base, "needs", &out->addons, CS_NAME_MAX, err);
    }
    if (strcmp(type, "geo") == 0) {
        if (notes)
            *notes |= CODEC_NOTE_GEO;
        return 0;
    }
    if (strcmp(type, "latency") == 0) {
        if (notes)
            *notes |= CODEC_NOTE_LATENCY;
        return 0;
    }
    path(f, base, "type");
    return cs_fail(err, f, "unknown constraint type '%.40s' (direct, addons, geo, latency)", type);
}

int codec_job(const json_t *job, const char *id, uint32_t instance, const char *prefix,
              job_spec *out, unsigned *notes, cs_error *err)
{
    char f[PATH_MAX_LEN];
    cs_error e;
    double d;
    const char *s;
    int rc;
    if (!prefix)
        prefix = "";
    job_spec_init(out);
    if (notes)
        *notes = 0;
    if (!json_is_object(job)) {
        path(f, prefix, "%s", *prefix ? "" : "body");
        if (*prefix)
            f[strlen(f) - 1] = 0; /* "job." -> "job" */
        return cs_fail(err, f, "must be a JSON object");
    }
    if (id) {
        if (job_spec_set_id(out, id, &e))
            return relabel(err, "job_id", &e);
    } else {
        char buf[CS_ID_MAX + 1];
        rc = codec_job_id(job, prefix, buf, err);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            path(f, prefix, "_id");
            return cs_fail(err, f, "is required");
        }
        if (job_spec_set_id(out, buf, &e)) {
            path(f, prefix, "_id");
            return relabel(err, f, &e);
        }
    }
    if (job_spec_set_instance(out, instance, &e))
        return relabel(err, "instance", &e);

    static const struct {
        const char *key;
        int (*set)(job_spec *, double, cs_error *);
    } nums[] = {
        {"vcpus", job_spec_set_vcpus},
        {"memory", job_spec_set_memory},
        {"vgpus", job_spec_set_gpus},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        rc = get_number(job, nums[i].key, prefix, &d, err);
        if (rc < 0)
            return -1;
        path(f, prefix, "%s", nums[i].key);
        if (rc == 0 && nums[i].set(out, d, &e))
            return relabel(err, f, &e);
    }

    rc = get_string(job, "virtualization", prefix, &s, err);
    if (rc < 0)
        return -1;
    path(f, prefix, "virtualization");
    if (rc == 1)
        return cs_fail(err, f, "is required (container, unikernel, wasm or vm)");
    if (job_spec_set_virt(out, s, &e))
        return relabel(err, f, &e);

    json_t *v = get_opt(job, "arch");
    if (v && add_names(v, prefix, "arch", &out->arch, CS_NAME_MAX, err))
        return -1;

    v = get_opt(job, "constraints");
    if (v) {
        path(f, prefix, "constraints");
        if (!json_is_array(v))
            return cs_fail(err, f, "must be a list of objects");
        if (json_array_size(v) > CS_LIST_MAX)
            return cs_fail(err, f, "more than %d entries", CS_LIST_MAX);
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            if (job_constraint(c, i, prefix, out, notes, err))
                return -1;
        }
    }

    v = get_opt(job, "volumes");
    if (v) {
        path(f, prefix, "volumes");
        if (!json_is_array(v))
            return cs_fail(err, f, "must be a list of objects");
        if (json_array_size(v) > CS_LIST_MAX)
            return cs_fail(err, f, "more than %d entries", CS_LIST_MAX);
        size_t i;
        json_t *vol;
        json_array_foreach(v, i, vol)
        {
            char base[PATH_MAX_LEN];
            path(base, prefix, "volumes[%zu].", i);
            if (!json_is_object(vol)) {
                path(f, prefix, "volumes[%zu]", i);
                return cs_fail(err, f, "must be an object");
            }
            rc = get_string(vol, "csi_driver", base, &s, err);
            if (rc < 0)
                return -1;
            path(f, base, "csi_driver");
            if (rc == 0 && strlist_add(&out->csi, s, CS_NAME_MAX, f, &e))
                return relabel(err, f, &e);
        }
    }

    rc = get_string(job, "strategy", prefix, &s, err);
    if (rc < 0)
        return -1;
    path(f, prefix, "strategy");
    if (rc == 0 && job_spec_set_strategy(out, s, &e))
        return relabel(err, f, &e);

    const json_t *tk = json_object_get(job, "top_k");
    if (json_is_string(tk) && strcmp(json_string_value(tk), "all") == 0) {
        out->top_k = CS_TOPK_MAX; /* the engine reads this as "every qualified node" */
        rc = 1;
    } else {
        rc = get_number(job, "top_k", prefix, &d, err);
    }
    if (rc < 0)
        return -1;
    if (rc == 0) {
        path(f, prefix, "top_k");
        if (!(d >= 1) || d > CS_TOPK_MAX || d != floor(d))
            return cs_fail(err, f, "must be a whole number in 1..%d", CS_TOPK_MAX);
        out->top_k = (uint32_t)d;
    }

    if (job_spec_validate(out, &e)) {
        path(f, prefix, "%s", e.field);
        return relabel(err, f, &e);
    }
    return 0;
}

/* Node runtimes: names the core does not know are skipped rather than
 * refused, so a worker that reports an extra runtime is still usable. */
static int node_virt(const json_t *v, const char *key, node_report *out, cs_error *err)
{
    char f[PATH_MAX_LEN];
    cs_error e;
    if (json_is_string(v)) {
        if (node_report_add_virt(out, json_string_value(v), &e))
            return relabel(err, key, &e);
        return 0;
    }
    if (!json_is_array(v))
        return cs_fail(err, key, "must be a list of strings");
    if (json_array_size(v) > CS_LIST_MAX)
        return cs_fail(err, key, "more than %d entries", CS_LIST_MAX);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it)
    {
        snprintf(f, sizeof f, "%s[%zu]", key, i);
        if (!json_is_string(it))
            return cs_fail(err, f, "must be a string");
        const char *s = json_string_value(it);
        if (strlen(s) > CS_NAME_MAX)
            return cs_fail(err, f, "longer than %d characters", CS_NAME_MAX);
        if (virt_from_name(s) && node_report_add_virt(out, s, &e))
            return relabel(err, f, &e);
    }
    /* An empty list would be stored in the node document and then fail the
     * node's replay after a restart: a node runs something or it is no node. */
    if (!out->virt)
        return cs_fail(err, key, "names no known virtualization (container, unikernel, wasm, vm)");
    return 0;
}

static int node_csi(const json_t *v, node_report *out, cs_error *err)
{
    char f[PATH_MAX_LEN];
    cs_error e;
    if (!json_is_array(v))
        return cs_fail(err, "csi_drivers", "must be a list of names or of objects");
    if (json_array_size(v) > CS_LIST_MAX)
        return cs_fail(err, "csi_drivers", "more than %d entries", CS_LIST_MAX);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it)
    {
        const char *name = NULL;
        snprintf(f, sizeof f, "csi_drivers[%zu]", i);
        if (json_is_string(it)) {
            name = json_string_value(it);
        } else if (json_is_object(it)) {
            snprintf(f, sizeof f, "csi_drivers[%zu].csi_driver_name", i);
            json_t *n = json_object_get(it, "csi_driver_name");
            if (!json_is_string(n))
                return cs_fail(err, f, "must be a string");
            name = json_string_value(n);
        } else {
            return cs_fail(err, f, "must be a name or an object with csi_driver_name");
        }
        if (strlist_add(&out->csi, name, CS_NAME_MAX, f, &e))
            return relabel(err, f, &e);
    }
    out->set |= NODE_F_CSI;
    return 0;
}

int codec_node(const json_t *report, node_report *out, cs_error *err)
{
    cs_error e;
    const char *s;
    double d;
    int rc;
    node_report_init(out);
    if (!json_is_object(report))
        return cs_fail(err, "body", "must be a JSON object");

    if ((rc = get_string(report, "host", "", &s, err)) < 0)
        return -1;
    if (rc == 0 && node_report_set_host(out, s, &e))
        return relabel(err, "host", &e);

    /* The newer worker says "virtualization", older documents "technology". */
    const char *vkey = get_opt(report, "virtualization") ? "virtualization" : "technology";
    json_t *v = get_opt(report, vkey);
    if (v && node_virt(v, vkey, out, err))
        return -1;

    if ((rc = get_string(report, "architecture", "", &s, err)) < 0)
        return -1;
    if (rc == 0 && node_report_set_arch(out, s, &e))
        return relabel(err, "architecture", &e);

    static const struct {
        const char *key;
        int (*set)(node_report *, double, cs_error *);
    } nums[] = {
        {"vcpus", node_report_set_vcpus},
        {"memory", node_report_set_memory},
        {"vgpus", node_report_set_gpus},
        {"cpu_percent", node_report_set_cpu_percent},
        {"memory_percent", node_report_set_memory_percent},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        rc = get_number(report, nums[i].key, "", &d, err);
        if (rc < 0)
            return -1;
        if (rc == 0 && nums[i].set(out, d, &e))
            return relabel(err, nums[i].key, &e);
    }

    v = get_opt(report, "supported_addons");
    if (v) {
        if (add_names(v, "", "supported_addons", &out->addons, CS_NAME_MAX, err))
            return -1;
        out->set |= NODE_F_ADDONS;
    }

    v = get_opt(report, "csi_drivers");
    if (v && node_csi(v, out, err))
        return -1;

    v = get_opt(report, "location");
    if (v) {
        if (!json_is_object(v))
            return cs_fail(err, "location", "must be an object {\"lat\": .., \"lon\": ..}");
        double lat, lon;
        rc = get_number(v, "lat", "location.", &lat, err);
        if (rc < 0)
            return -1;
        if (rc == 1)
            return cs_fail(err, "location.lat", "is required");
        rc = get_number(v, "lon", "location.", &lon, err);
        if (rc < 0)
            return -1;
        if (rc == 1)
            return cs_fail(err, "location.lon", "is required");
        if (node_report_set_location(out, lat, lon, &e))
            return relabel(err, e.field, &e);
    }
    return 0;
}

static const char *const computed_keys[] = {
    "_id", "active", "free", "reserved", "last_report", "reservations", NULL,
};

static int is_computed(const char *key)
{
    for (int i = 0; computed_keys[i]; i++)
        if (strcmp(key, computed_keys[i]) == 0)
            return 1;
    return 0;
}

json_t *codec_node_merge(const json_t *old, const json_t *report)
{
    json_t *doc = old ? json_deep_copy(old) : json_object();
    if (!doc)
        return NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)report, key, v)
    {
        if (json_is_null(v) || is_computed(key))
            continue;
        if (strcmp(key, "virtualization") == 0) {
            json_object_del(doc, "technology");
        } else if (strcmp(key, "technology") == 0) {
            /* codec_node read "virtualization" instead and never checked
             * this one: stored, it would change or lose the node at a
             * restart or in another process's mirror. */
            if (get_opt(report, "virtualization"))
                continue;
            json_object_del(doc, "virtualization");
        }
        json_t *copy = json_deep_copy(v);
        if (!copy || json_object_set_new(doc, key, copy)) {
            json_decref(doc);
            return NULL;
        }
    }
    return doc;
}

static json_t *capacity(int64_t cpu_milli, int64_t mem_mb, int32_t gpus)
{
    return json_pack("{s:f, s:I, s:i}", "vcpus", (double)cpu_milli / 1000.0, "memory",
                     (json_int_t)mem_mb, "vgpus", (int)gpus);
}

json_t *codec_node_doc(const json_t *stored, const node_view *v)
{
    json_t *doc = json_object();
    if (!doc)
        return NULL;
    int bad = json_object_set_new(doc, "_id", json_string(v->id));
    if (stored) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)stored, key, val)
        {
            if (!is_computed(key))
                bad |= json_object_set(doc, key, val);
        }
    }
    bad |= json_object_set_new(doc, "active", json_boolean(v->active));
    bad |= json_object_set_new(doc, "last_report", json_real(v->last_report));
    bad |= json_object_set_new(doc, "free",
                               capacity(v->free_cpu_milli, v->free_memory_mb, v->free_gpus));
    bad |= json_object_set_new(
        doc, "reserved", capacity(v->reserved_cpu_milli, v->reserved_memory_mb, v->reserved_gpus));
    bad |= json_object_set_new(doc, "reservations", json_integer(v->n_reservations));
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

json_t *codec_candidates(const engine_result *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->n_candidates; i++) {
        const engine_candidate *c = &r->candidates[i];
        /* Scores rounded to 0.01: more digits are noise to a reader. */
        double score = round(c->score * 100.0) / 100.0;
        if (json_array_append_new(a,
                                  json_pack("{s:s, s:f}", "node_id", c->node_id, "score", score))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *codec_reasons(const engine_result *r)
{
    json_t *o = json_object();
    for (int i = 0; o && i < REASON__COUNT; i++) {
        if (!r->reasons[i])
            continue;
        if (json_object_set_new(o, engine_reason_key((engine_reason)i),
                                json_integer((json_int_t)r->reasons[i]))) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

char *codec_dump(const json_t *v)
{
    /* 15 significant digits: what a human wrote (0.1) comes back as
     * written, not as 0.10000000000000001. */
    return v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
}

/* Steals doc; returns its compact text. */
static char *dump_and_free(json_t *doc)
{
    char *s = codec_dump(doc);
    json_decref(doc);
    return s;
}

char *codec_result_placed(const json_t *job, const json_t *node_doc, const engine_result *r,
                          const char *message)
{
    json_t *doc =
        json_pack("{s:b, s:s, s:O, s:O, s:o, s:o, s:s}", "found", 1, "status", "NODE_SCHEDULED",
                  "node", node_doc, "job", job, "candidates", codec_candidates(r), "reasons",
                  codec_reasons(r), "message", message ? message : "");
    return doc ? dump_and_free(doc) : NULL;
}

char *codec_result_unplaced(const json_t *job, const engine_result *r, const char *message)
{
    json_t *doc = json_pack("{s:b, s:s, s:o, s:s, s:O, s:o}", "found", 0, "status",
                            "NO_QUALIFIED_WORKER_FOUND", "reasons", codec_reasons(r), "message",
                            message ? message : "", "job", job, "candidates", json_array());
    return doc ? dump_and_free(doc) : NULL;
}

/* Copies s, every byte outside printable ASCII made '?': a message that
 * quotes a truncated network value may hold a cut UTF-8 sequence, which
 * jansson would refuse. */
static void ascii_copy(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++)
        dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    dst[i] = 0;
}

char *codec_result_invalid(const json_t *job, const cs_error *e)
{
    char raw[256], msg[256];
    snprintf(raw, sizeof raw, "invalid job: %s: %s", e->field, e->msg);
    ascii_copy(msg, sizeof msg, raw);
    json_t *doc = json_pack("{s:b, s:s, s:{}, s:s, s:O, s:[]}", "found", 0, "status",
                            "NO_QUALIFIED_WORKER_FOUND", "reasons", "message", msg, "job",
                            job ? job : json_null(), "candidates");
    return doc ? dump_and_free(doc) : NULL;
}

json_t *codec_schedule_answer(const engine_result *r, const char *message)
{
    return json_pack("{s:I, s:I, s:o, s:o, s:s}", "nodes", (json_int_t)r->n_nodes, "qualified",
                     (json_int_t)r->n_qualified, "candidates", codec_candidates(r), "reasons",
                     codec_reasons(r), "message", message ? message : "");
}

char *codec_error_json(const char *field, const char *message)
{
    json_t *doc = json_pack("{s:{s:s, s:s}}", "error", "field", field ? field : "", "message",
                            message ? message : "");
    if (!doc) {
        char f[128], m[512];
        ascii_copy(f, sizeof f, field);
        ascii_copy(m, sizeof m, message);
        doc = json_pack("{s:{s:s, s:s}}", "error", "field", f, "message", m);
    }
    return doc ? dump_and_free(doc) : NULL;
}
