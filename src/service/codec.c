/* codec.c - JSON decoding through the core's validating setters, and the
 * documents the service answers with. Field names in errors follow the
 * JSON path of the offending value. */
#include "codec.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

/* A number given as a JSON number or as a string holding one ("12.5"; the
 * original's documents carry both). 0 set, -1 not a number. */
/* The text is one finite number, blanks around it allowed. 0, or -1. */
static int parse_number(const char *s, size_t len, double *out)
{
    char buf[64];
    while (len && *s == ' ') {
        s++;
        len--;
    }
    while (len && s[len - 1] == ' ')
        len--;
    if (!len || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    double d = strtod(buf, &end);
    if (*end || !isfinite(d))
        return -1;
    *out = d;
    return 0;
}

static int number_of(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    return parse_number(json_string_value(v), json_string_length(v), out);
}

/* A number field that may come as a numeric string: -1 invalid, 0 set,
 * 1 absent. */
static int get_lenient(const json_t *obj, const char *key, const char *prefix, double *out,
                       cs_error *err)
{
    json_t *v = get_opt(obj, key);
    if (!v)
        return 1;
    if (number_of(v, out)) {
        char f[PATH_MAX_LEN];
        path(f, prefix, "%s", key);
        return cs_fail(err, f, "must be a number");
    }
    return 0;
}

/* A point: "lat,lon" or {"lat": .., "lon": ..} ("long", "latitude" and
 * "longitude" are accepted too). Errors name prefix + key (+ ".lat"). */
static int get_location(const json_t *v, const char *prefix, const char *key, double *lat,
                        double *lon, cs_error *err)
{
    char f[PATH_MAX_LEN];
    cs_error e;
    path(f, prefix, "%s", key);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        const char *comma = strchr(s, ',');
        if (!comma || parse_number(s, (size_t)(comma - s), lat) ||
            parse_number(comma + 1, strlen(comma + 1), lon))
            return cs_fail(err, f, "must be \"lat,lon\" (two numbers, degrees)");
        if (cs_check_lat_lon(*lat, *lon, &e))
            return cs_fail(err, f, "%s %s",
                           strcmp(e.field, "location.lat") == 0 ? "latitude" : "longitude", e.msg);
        return 0;
    }
    if (!json_is_object(v))
        return cs_fail(err, f, "must be \"lat,lon\" or an object {\"lat\": .., \"lon\": ..}");
    char base[PATH_MAX_LEN];
    path(base, prefix, "%s.", key);
    static const char *const lat_keys[] = {"lat", "latitude", NULL};
    static const char *const lon_keys[] = {"lon", "long", "longitude", NULL};
    const char *const *keys[2] = {lat_keys, lon_keys};
    double *outs[2] = {lat, lon};
    for (int k = 0; k < 2; k++) {
        const char *which = keys[k][0];
        for (int i = 0; keys[k][i]; i++)
            if (get_opt(v, keys[k][i])) {
                which = keys[k][i];
                break;
            }
        int rc = get_lenient(v, which, base, outs[k], err);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            path(f, base, "%s", keys[k][0]);
            return cs_fail(err, f, "is required");
        }
    }
    if (cs_check_lat_lon(*lat, *lon, &e)) {
        const char *dot = strchr(e.field, '.'); /* location.lat or location.lon */
        path(f, base, "%s", dot ? dot + 1 : e.field);
        return relabel(err, f, &e);
    }
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

/* "prefer": "nearest" / "lowest" (rank by the constraint's figure) or
 * "none". 0 set, -1 invalid; absent leaves *prefer as it is. */
static int get_prefer(const json_t *c, const char *base, bool *prefer, cs_error *err)
{
    const char *s;
    int rc = get_string(c, "prefer", base, &s, err);
    if (rc)
        return rc < 0 ? -1 : 0;
    if (strcmp(s, "nearest") == 0 || strcmp(s, "lowest") == 0) {
        *prefer = true;
        return 0;
    }
    if (strcmp(s, "none") == 0) {
        *prefer = false;
        return 0;
    }
    char f[PATH_MAX_LEN];
    path(f, base, "prefer");
    return cs_fail(err, f, "must be \"nearest\", \"lowest\" or \"none\"");
}

/* A required bound: number (or numeric string) >= 0; the core checks the
 * range. */
static int get_bound(const json_t *c, const char *key, const char *base, double *out, cs_error *err)
{
    int rc = get_lenient(c, key, base, out, err);
    if (rc == 1) {
        char f[PATH_MAX_LEN];
        path(f, base, "%s", key);
        return cs_fail(err, f, "is required (a number >= 0, %s)",
                       strcmp(key, "threshold") == 0 ? "km for geo, ms for latency" : "ms");
    }
    return rc;
}

/* geo, latency and connectivity: see docs/API.md. */
static int edge_constraint(const json_t *c, size_t i, const char *type, const char *base,
                           job_spec *out, cs_error *err)
{
    char f[PATH_MAX_LEN];
    cs_error e;
    const char *s = NULL;
    double bound;
    int rc;
    if (strcmp(type, "geo") == 0) {
        bool prefer = false;
        double lat, lon;
        json_t *loc = get_opt(c, "location");
        if (!loc) {
            path(f, base, "location");
            return cs_fail(err, f, "is required (\"lat,lon\" or {\"lat\": .., \"lon\": ..})");
        }
        if (get_location(loc, base, "location", &lat, &lon, err) ||
            get_bound(c, "threshold", base, &bound, err) || get_prefer(c, base, &prefer, err))
            return -1;
        rc = job_spec_add_geo(out, (uint32_t)i, lat, lon, bound, prefer, &e);
    } else {
        bool conn = strcmp(type, "connectivity") == 0, prefer = true;
        const char *key = conn ? "target_job" : "area";
        const char *bkey = conn && !get_opt(c, "latency_ms") && get_opt(c, "threshold")
                               ? "threshold"
                           : conn ? "latency_ms"
                                  : "threshold";
        rc = get_string(c, key, base, &s, err);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            path(f, base, "%s", key);
            return cs_fail(err, f, "is required (%s)", conn ? "a job id" : "an area name");
        }
        if (get_bound(c, bkey, base, &bound, err) || get_prefer(c, base, &prefer, err))
            return -1;
        rc = conn ? job_spec_add_connectivity(out, (uint32_t)i, s, bound, prefer, &e)
                  : job_spec_add_latency(out, (uint32_t)i, s, bound, prefer, &e);
        if (rc && conn && strcmp(e.field, "latency_ms") == 0)
            snprintf(e.field, sizeof e.field, "%s", bkey);
    }
    if (rc) {
        path(f, base, "%s", e.field);
        return relabel(err, f, &e);
    }
    return 0;
}

static int job_constraint_decode(const json_t *c, size_t i, const char *prefix, job_spec *out,
                                 cs_error *err)
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
    if (strcmp(type, "geo") == 0 || strcmp(type, "latency") == 0 ||
        strcmp(type, "connectivity") == 0)
        return edge_constraint(c, i, type, base, out, err);
    path(f, base, "type");
    return cs_fail(err, f,
                   "unknown constraint type '%.40s' (direct, addons, geo, latency, connectivity)",
                   type);
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
            if (job_constraint_decode(c, i, prefix, out, err))
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

    rc = get_string(job, "spread_by", prefix, &s, err);
    if (rc < 0)
        return -1;
    path(f, prefix, "spread_by");
    if (rc == 0 && job_spec_set_spread(out, s, &e))
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

/* The node's location: "location" ("lat,lon" or an object), else the
 * original's top-level "lat" and "long" (numbers or numeric strings). */
static int node_location(const json_t *report, node_report *out, cs_error *err)
{
    cs_error e;
    double lat, lon;
    json_t *v = get_opt(report, "location");
    if (v) {
        if (get_location(v, "", "location", &lat, &lon, err))
            return -1;
    } else {
        const char *lon_key = get_opt(report, "long") ? "long" : "lon";
        int a = get_lenient(report, "lat", "", &lat, err);
        if (a < 0)
            return -1;
        int b = get_lenient(report, lon_key, "", &lon, err);
        if (b < 0)
            return -1;
        if (a == 1 && b == 1)
            return 0;
        if (a == 1 || b == 1)
            return cs_fail(err, a == 1 ? "lat" : "long", "is required with %s",
                           a == 1 ? lon_key : "lat");
        if (cs_check_lat_lon(lat, lon, &e))
            return cs_fail(err, strcmp(e.field, "location.lat") == 0 ? "lat" : lon_key, "%s",
                           e.msg);
    }
    if (node_report_set_location(out, lat, lon, &e))
        return relabel(err, e.field, &e);
    return 0;
}

/* "latency_ms": {"area": ms, ...}. */
static int node_latency_table(const json_t *v, node_report *out, cs_error *err)
{
    char f[PATH_MAX_LEN];
    cs_error e;
    if (!json_is_object(v))
        return cs_fail(err, "latency_ms", "must be an object {\"<area>\": <ms>, ...}");
    if (json_object_size(v) > CS_LIST_MAX)
        return cs_fail(err, "latency_ms", "more than %d areas", CS_LIST_MAX);
    out->set |= NODE_F_LATENCY;
    const char *area;
    json_t *ms;
    json_object_foreach((json_t *)v, area, ms)
    {
        double d;
        if (json_is_null(ms))
            continue; /* not measured */
        path(f, "latency_ms.", "%s", area);
        if (number_of(ms, &d))
            return cs_fail(err, f, "must be a number >= 0 (ms)");
        if (node_report_add_latency(out, area, d, &e))
            return relabel(err, f, &e);
    }
    return 0;
}

/* "vivaldi": {"vector": [..], "height": h}, or the original's
 * "vivaldi_vector" and "vivaldi_height". */
static int node_vivaldi(const json_t *report, node_report *out, cs_error *err)
{
    char f[PATH_MAX_LEN];
    cs_error e;
    const json_t *viv = get_opt(report, "vivaldi");
    const json_t *vec, *h;
    const char *vkey, *hkey;
    if (viv) {
        if (!json_is_object(viv))
            return cs_fail(err, "vivaldi", "must be an object {\"vector\": [..], \"height\": h}");
        vec = get_opt(viv, "vector");
        h = get_opt(viv, "height");
        vkey = "vivaldi.vector";
        hkey = "vivaldi.height";
    } else {
        vec = get_opt(report, "vivaldi_vector");
        h = get_opt(report, "vivaldi_height");
        vkey = "vivaldi_vector";
        hkey = "vivaldi_height";
        if (!vec && !h)
            return 0;
    }
    if (!vec)
        return cs_fail(err, vkey, "is required (a list of numbers, ms)");
    if (!json_is_array(vec) || json_array_size(vec) < 1 ||
        json_array_size(vec) > CS_VIVALDI_DIM_MAX)
        return cs_fail(err, vkey, "must be a list of 1..%d numbers (ms)", CS_VIVALDI_DIM_MAX);
    double coords[CS_VIVALDI_DIM_MAX], height = 0;
    size_t i;
    json_t *it;
    json_array_foreach(vec, i, it)
    {
        if (number_of(it, &coords[i])) {
            snprintf(f, sizeof f, "%s[%zu]", vkey, i);
            return cs_fail(err, f, "must be a number");
        }
    }
    if (h && number_of(h, &height))
        return cs_fail(err, hkey, "must be a number >= 0 (ms)");
    if (node_report_set_vivaldi(out, coords, json_array_size(vec), height, &e))
        return relabel(err, strstr(e.field, "height") ? hkey : vkey, &e);
    return 0;
}

/* "labels": {"zone": "a", ...}: string values are used (spread_by); other
 * values are kept in the document but ignored. */
static int node_labels(const json_t *v, node_report *out, cs_error *err)
{
    char f[PATH_MAX_LEN];
    cs_error e;
    if (!json_is_object(v))
        return cs_fail(err, "labels", "must be an object {\"<key>\": \"<value>\", ...}");
    if (json_object_size(v) > CS_LIST_MAX)
        return cs_fail(err, "labels", "more than %d labels", CS_LIST_MAX);
    out->set |= NODE_F_LABELS;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        if (!json_is_string(val))
            continue;
        path(f, "labels.", "%s", key);
        if (node_report_add_label(out, key, json_string_value(val), &e))
            return relabel(err, f, &e);
    }
    return 0;
}

static int node_edge_fields(const json_t *report, node_report *out, cs_error *err)
{
    if (node_location(report, out, err) || node_vivaldi(report, out, err))
        return -1;
    json_t *v = get_opt(report, "latency_ms");
    if (v && node_latency_table(v, out, err))
        return -1;
    v = get_opt(report, "labels");
    if (v && node_labels(v, out, err))
        return -1;
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

    return node_edge_fields(report, out, err);
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
        /* Two spellings of the location and of the Vivaldi coordinates:
         * the one sent last is the one kept. */
        if (strcmp(key, "location") == 0) {
            json_object_del(doc, "lat");
            json_object_del(doc, "long");
            json_object_del(doc, "lon");
        } else if (strcmp(key, "lat") == 0 || strcmp(key, "long") == 0 || strcmp(key, "lon") == 0) {
            json_object_del(doc, "location");
        } else if (strcmp(key, "vivaldi") == 0) {
            json_object_del(doc, "vivaldi_vector");
            json_object_del(doc, "vivaldi_height");
        } else if (strcmp(key, "vivaldi_vector") == 0 || strcmp(key, "vivaldi_height") == 0) {
            json_object_del(doc, "vivaldi");
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

json_t *codec_filters(const engine_result *r)
{
    engine_filter_count f[CS_LIST_MAX + 16];
    size_t n = engine_filters(r, f, sizeof f / sizeof f[0]);
    if (n > sizeof f / sizeof f[0])
        n = sizeof f / sizeof f[0];
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o =
            json_pack("{s:s, s:I}", "filter", f[i].filter, "removed", (json_int_t)f[i].removed);
        if (o && f[i].constraint >= 0 &&
            json_object_set_new(o, "constraint", json_integer(f[i].constraint))) {
            json_decref(o);
            o = NULL;
        }
        if (json_array_append_new(a, o)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Adds key: v when v is a finite number, rounded to 0.001. */
static int set_figure(json_t *o, const char *key, double v)
{
    if (!isfinite(v))
        return 0;
    return json_object_set_new(o, key, json_real(round(v * 1000.0) / 1000.0));
}

static json_t *explain_node(const engine_node_explain *x, const job_spec *job)
{
    json_t *o = json_pack("{s:s, s:b}", "node_id", x->node_id, "qualified", x->qualified);
    if (!o)
        return NULL;
    int bad = 0;
    char text[256];
    if (x->qualified) {
        bad |= json_object_set_new(o, "score", json_real(round(x->score * 100.0) / 100.0));
        bad |= json_object_set_new(o, "rank", json_integer(x->rank));
    } else {
        engine_explain_text(x, job, text, sizeof text);
        bad |= json_object_set_new(o, "reason", json_string(engine_reason_key(x->reason)));
        bad |= json_object_set_new(o, "message", json_string(text));
        if (x->constraint >= 0)
            bad |= json_object_set_new(o, "constraint", json_integer(x->constraint));
        bad |= set_figure(o, "value", x->value);
        bad |= set_figure(o, "limit", x->limit);
    }
    if (x->holds_instance)
        bad |= json_object_set_new(o, "holds_instance", json_true());
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *codec_explain(const engine_result *r, const engine_node_explain *nodes, const job_spec *job,
                      double at)
{
    json_t *per = json_array();
    for (size_t i = 0; per && i < r->n_nodes; i++)
        if (json_array_append_new(per, explain_node(&nodes[i], job))) {
            json_decref(per);
            per = NULL;
        }
    if (!per)
        return NULL;
    return json_pack("{s:f, s:I, s:I, s:o, s:o, s:o}", "at", at, "nodes", (json_int_t)r->n_nodes,
                     "qualified", (json_int_t)r->n_qualified, "filters", codec_filters(r),
                     "reasons", codec_reasons(r), "per_node", per);
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

/* ---- result documents, written as text ---------------------------------
 *
 * A worker writes one result per decision; building it as a jansson tree
 * and serialising that (a node document parsed from its stored text, ten
 * candidate objects, the filters) was about a third of a worker's time.
 * These writers produce the same bytes json_dumps gives for the tree
 * (compact, keys in insertion order, reals as %.15g with jansson's
 * touches), and hand anything unusual (strings with control or non-ASCII
 * bytes, reals other than the fixed-point figures) to jansson itself. */

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))
#define TB_FIXED_MAX 1000000000000LL /* below this, n / 10^k has at most 15 digits */

typedef struct tbuf {
    char *s;
    size_t len, cap;
    bool bad; /* out of memory, or a value jansson would refuse */
} tbuf;

static void tb_mem(tbuf *b, const char *p, size_t n)
{
    if (b->bad)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->bad = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = 0;
}

/* lit must be a string literal (its size is taken), never an expression. */
#define tb_lit(b, lit) tb_mem((b), "" lit, sizeof(lit) - 1)

static int tb_dump_cb(const char *buffer, size_t size, void *data)
{
    tbuf *b = data;
    tb_mem(b, buffer, size);
    return b->bad ? -1 : 0;
}

/* v serialised by jansson; NULL (as json_pack would refuse it) spoils b. */
static void tb_json(tbuf *b, const json_t *v)
{
    if (!v || json_dump_callback(v, tb_dump_cb, b, DUMP_FLAGS | JSON_ENCODE_ANY) != 0)
        b->bad = true;
}

/* Steals v. */
static void tb_json_new(tbuf *b, json_t *v)
{
    tb_json(b, v);
    json_decref(v);
}

static void tb_str(tbuf *b, const char *s)
{
    if (!s) {
        b->bad = true;
        return;
    }
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c >= 0x80) {
            /* jansson's escapes and its UTF-8 check (a string it refuses
             * makes the whole document fail, as before). */
            tb_json_new(b, json_string(s));
            return;
        }
    }
    tb_lit(b, "\"");
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            tb_mem(b, s + from, i - from);
            tb_lit(b, "\\");
            from = i;
        }
    }
    tb_mem(b, s + from, n - from);
    tb_lit(b, "\"");
}

static void tb_int(tbuf *b, long long v)
{
    char d[24];
    size_t i = sizeof d;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        d[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        d[--i] = '-';
    tb_mem(b, d + i, sizeof d - i);
}

/* n / 10^k (k = 2 or 3) as jansson writes that double: with at most 15
 * significant digits, %.15g prints the decimal exactly, without trailing
 * zeros, and jansson adds ".0" to a whole number. */
static void tb_fixed(tbuf *b, long long n, int k)
{
    long long scale = k == 2 ? 100 : 1000;
    if (n <= -TB_FIXED_MAX || n >= TB_FIXED_MAX) {
        tb_json_new(b, json_real((double)n / (double)scale));
        return;
    }
    if (n < 0) {
        tb_lit(b, "-");
        n = -n;
    }
    tb_int(b, n / scale);
    long long frac = n % scale;
    char d[4];
    int len = 0;
    for (long long unit = scale / 10; unit > 0 && frac > 0; unit /= 10) {
        d[len++] = (char)('0' + frac / unit);
        frac %= unit;
    }
    if (len == 0) {
        tb_lit(b, ".0");
        return;
    }
    tb_lit(b, ".");
    tb_mem(b, d, (size_t)len);
}

/* A score as codec_candidates rounds it (scores are 0..100; anything
 * negative, -0 included, goes to jansson). */
static void tb_score(tbuf *b, double score)
{
    double r = round(score * 100.0);
    if (!isfinite(r) || signbit(r) || r >= (double)TB_FIXED_MAX) {
        tb_json_new(b, json_real(r / 100.0));
        return;
    }
    tb_fixed(b, (long long)r, 2);
}

static void tb_candidates(tbuf *b, const engine_result *r)
{
    tb_lit(b, "[");
    for (size_t i = 0; i < r->n_candidates; i++) {
        if (i)
            tb_lit(b, ",");
        tb_lit(b, "{\"node_id\":");
        tb_str(b, r->candidates[i].node_id);
        tb_lit(b, ",\"score\":");
        tb_score(b, r->candidates[i].score);
        tb_lit(b, "}");
    }
    tb_lit(b, "]");
}

static void tb_reasons(tbuf *b, const engine_result *r)
{
    bool first = true;
    tb_lit(b, "{");
    for (int i = 0; i < REASON__COUNT; i++) {
        if (!r->reasons[i])
            continue;
        if (!first)
            tb_lit(b, ",");
        first = false;
        tb_str(b, engine_reason_key((engine_reason)i));
        tb_lit(b, ":");
        tb_int(b, (long long)r->reasons[i]);
    }
    tb_lit(b, "}");
}

static void tb_filters(tbuf *b, const engine_result *r)
{
    engine_filter_count f[CS_LIST_MAX + 16];
    size_t n = engine_filters(r, f, sizeof f / sizeof f[0]);
    if (n > sizeof f / sizeof f[0])
        n = sizeof f / sizeof f[0];
    tb_lit(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            tb_lit(b, ",");
        tb_lit(b, "{\"filter\":");
        tb_str(b, f[i].filter);
        tb_lit(b, ",\"removed\":");
        tb_int(b, (long long)f[i].removed);
        if (f[i].constraint >= 0) {
            tb_lit(b, ",\"constraint\":");
            tb_int(b, (long long)f[i].constraint);
        }
        tb_lit(b, "}");
    }
    tb_lit(b, "]");
}

static void tb_capacity(tbuf *b, int64_t cpu_milli, int64_t mem_mb, int32_t gpus)
{
    tb_lit(b, "{\"vcpus\":");
    tb_fixed(b, (long long)cpu_milli, 3);
    tb_lit(b, ",\"memory\":");
    tb_int(b, (long long)mem_mb);
    tb_lit(b, ",\"vgpus\":");
    tb_int(b, (long long)gpus);
    tb_lit(b, "}");
}

/* True when the stored text can be spliced in as it is: an object without
 * any of the keys codec_node_doc leaves out (a match inside a value only
 * sends the document the slow way). */
static bool splice_ok(const char *text, size_t len)
{
    static const char *const keys[] = {"\"_id\":",      "\"active\":",      "\"free\":",
                                       "\"reserved\":", "\"last_report\":", "\"reservations\":"};
    if (len < 2 || text[0] != '{' || text[len - 1] != '}')
        return false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (memmem(text, len, keys[i], strlen(keys[i])))
            return false;
    return true;
}

/* What codec_node_doc(parsed stored_text, v) would serialise to. */
static void tb_node(tbuf *b, const char *stored_text, const node_view *v)
{
    size_t len = stored_text ? strlen(stored_text) : 0;
    if (stored_text && !splice_ok(stored_text, len)) {
        json_t *stored = json_loadb(stored_text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        tb_json_new(b, codec_node_doc(stored, v));
        json_decref(stored);
        return;
    }
    tb_lit(b, "{\"_id\":");
    tb_str(b, v->id);
    if (len > 2) {
        /* Its members, after the id as codec_node_doc puts them. */
        tb_lit(b, ",");
        tb_mem(b, stored_text + 1, len - 2);
    }
    if (v->active)
        tb_lit(b, ",\"active\":true,\"last_report\":");
    else
        tb_lit(b, ",\"active\":false,\"last_report\":");
    tb_json_new(b, json_real(v->last_report));
    tb_lit(b, ",\"free\":");
    tb_capacity(b, v->free_cpu_milli, v->free_memory_mb, v->free_gpus);
    tb_lit(b, ",\"reserved\":");
    tb_capacity(b, v->reserved_cpu_milli, v->reserved_memory_mb, v->reserved_gpus);
    tb_lit(b, ",\"reservations\":");
    tb_int(b, (long long)v->n_reservations);
    tb_lit(b, "}");
}

static char *tb_finish(tbuf *b)
{
    if (b->bad) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

/* Everything after the node: the job and the decision. */
static char *finish_placed(tbuf *b, const json_t *job, const engine_result *r, const char *message)
{
    tb_lit(b, ",\"job\":");
    tb_json(b, job);
    tb_lit(b, ",\"candidates\":");
    tb_candidates(b, r);
    tb_lit(b, ",\"reasons\":");
    tb_reasons(b, r);
    tb_lit(b, ",\"filters\":");
    tb_filters(b, r);
    tb_lit(b, ",\"message\":");
    tb_str(b, message ? message : "");
    tb_lit(b, "}");
    return tb_finish(b);
}

char *codec_result_placed(const json_t *job, const json_t *node_doc, const engine_result *r,
                          const char *message)
{
    tbuf b = {0};
    tb_lit(&b, "{\"found\":true,\"status\":\"NODE_SCHEDULED\",\"node\":");
    tb_json(&b, node_doc);
    return finish_placed(&b, job, r, message);
}

char *codec_result_placed_stored(const json_t *job, const char *stored_text, const node_view *v,
                                 const engine_result *r, const char *message)
{
    tbuf b = {0};
    tb_lit(&b, "{\"found\":true,\"status\":\"NODE_SCHEDULED\",\"node\":");
    tb_node(&b, stored_text, v);
    return finish_placed(&b, job, r, message);
}

char *codec_result_unplaced(const json_t *job, const engine_result *r, const char *message)
{
    tbuf b = {0};
    tb_lit(&b, "{\"found\":false,\"status\":\"NO_QUALIFIED_WORKER_FOUND\",\"reasons\":");
    tb_reasons(&b, r);
    tb_lit(&b, ",\"filters\":");
    tb_filters(&b, r);
    tb_lit(&b, ",\"message\":");
    tb_str(&b, message ? message : "");
    tb_lit(&b, ",\"job\":");
    tb_json(&b, job);
    tb_lit(&b, ",\"candidates\":[]}");
    return tb_finish(&b);
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
    return json_pack("{s:I, s:I, s:o, s:o, s:o, s:s}", "nodes", (json_int_t)r->n_nodes, "qualified",
                     (json_int_t)r->n_qualified, "candidates", codec_candidates(r), "reasons",
                     codec_reasons(r), "filters", codec_filters(r), "message",
                     message ? message : "");
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
