/* router.c - a small table of path patterns; segments in braces capture. */
#include "router.h"

#include <string.h>

typedef struct route_def {
    route_id id;
    const char *pattern;
    unsigned methods;
    unsigned body_methods; /* methods for which the route reads a body */
    const char *allow;
} route_def;

#define GET_HEAD (METHOD_GET | METHOD_HEAD)

static const route_def routes[] = {
    {ROUTE_HELLO, "/", GET_HEAD, 0, "GET, HEAD"},
    {ROUTE_STATUS, "/status", GET_HEAD, 0, "GET, HEAD"},
    {ROUTE_METRICS, "/metrics", GET_HEAD, 0, "GET, HEAD"},
    /* The original accepted GET with a body on both calculate routes; HEAD
     * is left out there, as it would queue work. */
    {ROUTE_DEPLOY, "/api/calculate/deploy/{job_id}/{instance}", METHOD_GET | METHOD_POST,
     METHOD_GET | METHOD_POST, "GET, POST"},
    {ROUTE_REPLICATE, "/api/calculate/replicate", METHOD_GET | METHOD_POST,
     METHOD_GET | METHOD_POST, "GET, POST"},
    {ROUTE_NODES, "/api/v1/nodes", GET_HEAD, 0, "GET, HEAD"},
    {ROUTE_NODE, "/api/v1/nodes/{node_id}", GET_HEAD | METHOD_PUT | METHOD_DELETE, METHOD_PUT,
     "GET, HEAD, PUT, DELETE"},
    {ROUTE_JOBS, "/api/v1/jobs", METHOD_POST, METHOD_POST, "POST"},
    {ROUTE_JOB, "/api/v1/jobs/{job_id}/{instance}", GET_HEAD | METHOD_DELETE, 0,
     "GET, HEAD, DELETE"},
    {ROUTE_SCHEDULE, "/api/v1/schedule", METHOD_POST, METHOD_POST, "POST"},
    {ROUTE_UI, "/ui", GET_HEAD, 0, "GET, HEAD"},
    {ROUTE_UI_ASSET, "/ui/{asset}", GET_HEAD, 0, "GET, HEAD"},
    {ROUTE_DECISIONS, "/api/v1/decisions", GET_HEAD, 0, "GET, HEAD"},
};

#define N_ROUTES (sizeof routes / sizeof routes[0])
#define MAX_SEGS 8

static const char *const route_names[ROUTE__COUNT] = {
    "none", "hello", "status", "metrics",  "deploy", "replicate", "nodes",
    "node", "jobs",  "job",    "schedule", "ui",     "ui_asset",  "decisions",
};

const char *router_route_name(route_id r)
{
    return (unsigned)r < ROUTE__COUNT ? route_names[r] : "none";
}

unsigned router_method(const char *m)
{
    if (!m)
        return METHOD_OTHER;
    if (strcmp(m, "GET") == 0)
        return METHOD_GET;
    if (strcmp(m, "HEAD") == 0)
        return METHOD_HEAD;
    if (strcmp(m, "POST") == 0)
        return METHOD_POST;
    if (strcmp(m, "PUT") == 0)
        return METHOD_PUT;
    if (strcmp(m, "DELETE") == 0)
        return METHOD_DELETE;
    return METHOD_OTHER;
}

typedef struct seg {
    const char *p;
    size_t len;
} seg;

/* Splits "/a/b/c" into segments. -1 on an empty segment ("//") or too
 * many; the root "/" has none. */
static int split(const char *path, seg *out, size_t max, size_t path_len)
{
    size_t n = 0, i = 1;
    if (path_len == 1)
        return 0;
    while (i <= path_len) {
        const char *start = path + i;
        const char *slash = memchr(start, '/', path_len - i);
        size_t len = slash ? (size_t)(slash - start) : path_len - i;
        if (len == 0 || n == max)
            return -1;
        out[n].p = start;
        out[n].len = len;
        n++;
        i += len + 1;
    }
    return (int)n;
}

static bool seg_eq(const seg *s, const char *lit, size_t len)
{
    return s->len == len && memcmp(s->p, lit, len) == 0;
}

static router_status capture_id(const seg *s, char *dst, const char *field, route_match *out)
{
    if (s->len > CS_ID_MAX) {
        out->bad_field = field;
        out->bad_msg = "longer than 63 characters";
        return ROUTER_BAD_PARAM;
    }
    /* Clients and proxies resolve these as path steps, not as names. */
    if (seg_eq(s, ".", 1) || seg_eq(s, "..", 2)) {
        out->bad_field = field;
        out->bad_msg = "is \".\" or \"..\", which a URL path cannot carry as a name";
        return ROUTER_BAD_PARAM;
    }
    for (size_t i = 0; i < s->len; i++) {
        unsigned char ch = (unsigned char)s->p[i];
        if (ch <= 0x20 || ch == 0x7f) {
            out->bad_field = field;
            out->bad_msg = "contains a space or a control character";
            return ROUTER_BAD_PARAM;
        }
    }
    memcpy(dst, s->p, s->len);
    dst[s->len] = 0;
    return ROUTER_OK;
}

static router_status capture_instance(const seg *s, route_match *out)
{
    uint64_t v = 0;
    bool ok = s->len > 0 && s->len <= 7;
    for (size_t i = 0; ok && i < s->len; i++) {
        char ch = s->p[i];
        if (ch < '0' || ch > '9')
            ok = false;
        else
            v = v * 10 + (uint64_t)(ch - '0');
    }
    if (!ok || v > CS_INSTANCE_MAX) {
        out->bad_field = "instance";
        out->bad_msg = "must be a whole number in 0..1000000";
        return ROUTER_BAD_PARAM;
    }
    out->instance = (uint32_t)v;
    return ROUTER_OK;
}

/* Does the pattern have the shape of the path (literals equal, same count)? */
static bool shape_matches(const char *pattern, const seg *segs, int n)
{
    seg ps[MAX_SEGS];
    int pn = split(pattern, ps, MAX_SEGS, strlen(pattern));
    if (pn != n)
        return false;
    for (int i = 0; i < n; i++)
        if (ps[i].p[0] != '{' && !seg_eq(&segs[i], ps[i].p, ps[i].len))
            return false;
    return true;
}

static router_status capture(const char *pattern, const seg *segs, int n, route_match *out)
{
    seg ps[MAX_SEGS];
    split(pattern, ps, MAX_SEGS, strlen(pattern));
    for (int i = 0; i < n; i++) {
        router_status st = ROUTER_OK;
        if (seg_eq(&ps[i], "{job_id}", 8))
            st = capture_id(&segs[i], out->job_id, "job_id", out);
        else if (seg_eq(&ps[i], "{node_id}", 9))
            st = capture_id(&segs[i], out->node_id, "node_id", out);
        else if (seg_eq(&ps[i], "{instance}", 10))
            st = capture_instance(&segs[i], out);
        else if (seg_eq(&ps[i], "{asset}", 7))
            st = capture_id(&segs[i], out->asset, "path", out);
        if (st != ROUTER_OK)
            return st;
    }
    return ROUTER_OK;
}

router_status router_match(const char *method, const char *path, route_match *out)
{
    memset(out, 0, sizeof *out);
    out->method = router_method(method);
    if (!path || path[0] != '/')
        return ROUTER_NOT_FOUND;
    size_t len = strnlen(path, 4096);
    if (len == 4096)
        return ROUTER_NOT_FOUND;
    if (len > 1 && path[len - 1] == '/' && path[len - 2] != '/')
        len--; /* "/status/" is "/status"; "//" stays an empty segment */
    seg segs[MAX_SEGS];
    int n = split(path, segs, MAX_SEGS, len);
    if (n < 0)
        return ROUTER_NOT_FOUND;
    for (size_t i = 0; i < N_ROUTES; i++) {
        const route_def *r = &routes[i];
        if (!shape_matches(r->pattern, segs, n))
            continue;
        if (!(r->methods & out->method)) {
            out->route = r->id;
            out->allow = r->allow;
            return ROUTER_BAD_METHOD;
        }
        out->route = r->id;
        out->wants_body = (r->body_methods & out->method) != 0;
        return capture(r->pattern, segs, n, out);
    }
    return ROUTER_NOT_FOUND;
}
