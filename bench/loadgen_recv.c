/* loadgen_recv.c - the load generator's stand-in for the cluster manager:
 * a libmicrohttpd server on 127.0.0.1 that takes the service's result POSTs
 * (/api/result/<job_id>/<instance>), notes when each job's first result
 * arrived, whether it was placed and on which node, and answers 200 at
 * once, so that the service's delivery is never what is measured. */
#include "loadgen.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESULT_BODY (1 << 20)
#define RESULT_PATH "/api/result/"

struct lg_recv {
    lg_state *st;
    struct MHD_Daemon *d;
    struct MHD_Response *ok, *not_found;
    int port;
};

/* One request's body, gathered across the upload callbacks. */
typedef struct upload {
    char *data;
    size_t len, cap;
    bool too_big;
} upload;

/* ---- placements per node ------------------------------------------------ */

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int lg_nodes_init(lg_nodes *t, size_t expect)
{
    size_t cap = 64;
    while (cap < expect * 2)
        cap *= 2;
    memset(t, 0, sizeof *t);
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots)
        return -1;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->slots);
        t->slots = NULL;
        return -1;
    }
    t->cap = cap;
    return 0;
}

static lg_node_count *slot_for(lg_node_count *slots, size_t cap, const char *id)
{
    size_t i = (size_t)hash_id(id) & (cap - 1);
    while (slots[i].id && strcmp(slots[i].id, id) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int grow_locked(lg_nodes *t)
{
    size_t cap = t->cap * 2;
    lg_node_count *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].id)
            *slot_for(slots, cap, t->slots[i].id) = t->slots[i];
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

int lg_nodes_add(lg_nodes *t, const char *id, uint64_t by)
{
    int rc = -1;
    pthread_mutex_lock(&t->lock);
    /* Half full at most keeps the probe runs short. */
    if ((t->n + 1) * 2 > t->cap && grow_locked(t) != 0)
        goto out;
    lg_node_count *s = slot_for(t->slots, t->cap, id);
    if (!s->id) {
        s->id = strdup(id);
        if (!s->id)
            goto out;
        t->n++;
    }
    s->count += by;
    rc = 0;
out:
    if (rc != 0)
        t->unrecorded += by;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void lg_nodes_free(lg_nodes *t)
{
    if (!t->slots)
        return;
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].id);
    free(t->slots);
    t->slots = NULL;
    pthread_mutex_destroy(&t->lock);
}

/* ---- results ------------------------------------------------------------- */

/* "<run-id>-<n>" with instance 0, n below the job count: the job number.
 * -1 for anything else (another run's result, a foreign id). */
static long long job_number(const lg_state *st, const char *url)
{
    size_t plen = strlen(RESULT_PATH);
    if (strncmp(url, RESULT_PATH, plen) != 0)
        return -1;
    const char *id = url + plen;
    if (strncmp(id, st->prefix, st->prefix_len) != 0)
        return -1;
    const char *p = id + st->prefix_len;
    if (*p < '0' || *p > '9')
        return -1;
    unsigned long long n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (unsigned long long)(*p - '0');
        if (n >= st->o->jobs)
            return -1;
    }
    if (strcmp(p, "/0") != 0 && strcmp(p, "/0/") != 0)
        return -1;
    return (long long)n;
}

/* ---- reading a result without a tree ---------------------------------- */

/* What the receiver needs from a result: its "found" and its node's "_id".
 * One pass over the text reads both and checks the syntax on the way, so
 * no tree is built per result: the full parse was a third of loadgen's CPU,
 * and loadgen shares the machine with the service it measures. Whatever
 * the pass cannot settle exactly as jansson would (escapes in keys or in
 * the id, bytes outside ASCII, numbers jansson might refuse as too big,
 * deep nesting, duplicate keys of interest, bad syntax) sets `unsure`, and
 * the caller parses that result with jansson instead. */
#define SCAN_DEPTH_MAX 64
#define SCAN_ID_MAX 255

enum { FOUND_ABSENT = -1, FOUND_FALSE = 0, FOUND_TRUE = 1, FOUND_OTHER = 2 };
enum { ROLE_NONE, ROLE_ROOT, ROLE_NODE, ROLE_FOUND, ROLE_ID };

typedef struct scan {
    const char *p, *end;
    bool unsure;
    int found;      /* FOUND_*, root."found" */
    bool node_seen; /* root."node" was seen (a second one is unsure) */
    const char *id; /* root."node"."_id" in the text, when a plain string */
    size_t id_len;
    bool id_seen;
} scan;

static void scan_ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* At the opening quote. Sets *plain when the string has no escape. */
static int scan_string(scan *s, const char **start, size_t *len, bool *plain)
{
    s->p++;
    *start = s->p;
    *plain = true;
    while (s->p < s->end) {
        unsigned char ch = (unsigned char)*s->p;
        if (ch == '"') {
            *len = (size_t)(s->p - *start);
            s->p++;
            return 0;
        }
        if (ch < 0x20)
            return -1;
        if (ch >= 0x80)
            s->unsure = true; /* jansson checks UTF-8; this pass does not */
        if (ch == '\\') {
            *plain = false;
            if (++s->p >= s->end)
                return -1;
            if (*s->p == 'u')
                s->unsure = true; /* \u0000 and surrogates are jansson's call */
            else if (!*s->p || !strchr("\"\\/bfnrt", *s->p))
                return -1;
        }
        s->p++;
    }
    return -1;
}

static bool scan_digits(scan *s, size_t *n)
{
    const char *from = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    *n = (size_t)(s->p - from);
    return *n > 0;
}

static int scan_number(scan *s)
{
    size_t n;
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (!scan_digits(s, &n))
        return -1;
    else if (n > 15)
        s->unsure = true; /* an integer jansson may find too big */
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!scan_digits(s, &n))
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->unsure = true; /* a real jansson may find out of range */
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!scan_digits(s, &n))
            return -1;
    }
    return 0;
}

static int scan_literal(scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

static int scan_value(scan *s, int depth, int role);

/* After a member or an element: 1 when `close` ends the container (taken),
 * 0 after a comma (taken, with the blanks after it), -1 otherwise. */
static int scan_next(scan *s, char close)
{
    scan_ws(s);
    if (s->p >= s->end)
        return -1;
    if (*s->p == close) {
        s->p++;
        return 1;
    }
    if (*s->p != ',')
        return -1;
    s->p++;
    scan_ws(s);
    return 0;
}

static int scan_object(scan *s, int depth, int role)
{
    s->p++;
    scan_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        const char *key;
        size_t len;
        bool plain;
        if (s->p >= s->end || *s->p != '"' || scan_string(s, &key, &len, &plain))
            return -1;
        if (!plain)
            s->unsure = true; /* an escaped key may spell one of ours */
        int sub = ROLE_NONE;
        if (role == ROLE_ROOT && len == 5 && memcmp(key, "found", 5) == 0) {
            if (s->found != FOUND_ABSENT)
                s->unsure = true;
            sub = ROLE_FOUND;
        } else if (role == ROLE_ROOT && len == 4 && memcmp(key, "node", 4) == 0) {
            if (s->node_seen)
                s->unsure = true;
            s->node_seen = true;
            sub = ROLE_NODE;
        } else if (role == ROLE_NODE && len == 3 && memcmp(key, "_id", 3) == 0) {
            if (s->id_seen)
                s->unsure = true;
            s->id_seen = true;
            sub = ROLE_ID;
        }
        scan_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return -1;
        s->p++;
        scan_ws(s);
        if (scan_value(s, depth + 1, sub))
            return -1;
        int next = scan_next(s, '}');
        if (next != 0)
            return next < 0 ? -1 : 0;
    }
}

static int scan_array(scan *s, int depth)
{
    s->p++;
    scan_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (;;) {
        if (scan_value(s, depth + 1, ROLE_NONE))
            return -1;
        int next = scan_next(s, ']');
        if (next != 0)
            return next < 0 ? -1 : 0;
    }
}

static int scan_value(scan *s, int depth, int role)
{
    if (depth > SCAN_DEPTH_MAX) {
        s->unsure = true;
        return -1;
    }
    if (s->p >= s->end)
        return -1;
    if (role == ROLE_FOUND)
        s->found = *s->p == 't' ? FOUND_TRUE : *s->p == 'f' ? FOUND_FALSE : FOUND_OTHER;
    if (role == ROLE_ID)
        s->id = NULL;
    switch (*s->p) {
    case '{':
        return scan_object(s, depth, role == ROLE_NODE ? ROLE_NODE : ROLE_NONE);
    case '[':
        return scan_array(s, depth);
    case '"': {
        const char *str;
        size_t len;
        bool plain;
        if (scan_string(s, &str, &len, &plain))
            return -1;
        if (role == ROLE_ID) {
            if (!plain || len > SCAN_ID_MAX)
                s->unsure = true;
            s->id = str;
            s->id_len = len;
        }
        return 0;
    }
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number(s);
        return -1;
    }
}

/* 0 when the text settled found and the id exactly as jansson would. */
static int scan_result(const char *text, size_t len, scan *s)
{
    memset(s, 0, sizeof *s);
    s->p = text;
    s->end = text + len;
    s->found = FOUND_ABSENT;
    scan_ws(s);
    /* jansson takes an object or an array at the top, nothing else. */
    if (s->p >= s->end || (*s->p != '{' && *s->p != '['))
        return -1;
    if (*s->p == '{' ? scan_object(s, 1, ROLE_ROOT) : scan_array(s, 1))
        return -1;
    scan_ws(s);
    if (s->p != s->end || s->unsure)
        return -1;
    return 0;
}

/* The slow path, for what scan_result left open. */
static void count_parsed(lg_state *st, const upload *u)
{
    json_error_t jerr;
    json_t *root = u->too_big ? NULL : json_loadb(u->data ? u->data : "", u->len, 0, &jerr);
    json_t *found = json_object_get(root, "found");
    if (json_is_true(found)) {
        atomic_fetch_add(&st->found, 1);
        const char *node = json_string_value(json_object_get(json_object_get(root, "node"), "_id"));
        if (node)
            lg_nodes_add(&st->placements, node, 1);
        else
            atomic_fetch_add(&st->malformed, 1);
    } else if (json_is_false(found)) {
        atomic_fetch_add(&st->not_found, 1);
    } else {
        atomic_fetch_add(&st->malformed, 1);
    }
    json_decref(root);
}

static void record(lg_recv *r, long long n, const upload *u, int64_t now)
{
    lg_state *st = r->st;
    unsigned char old = atomic_fetch_or(&st->flags[n], (unsigned char)LG_RESULT);
    /* Delivery is at least once, and a re-scheduled instance gets a second
     * result: only the first one counts for latency and placements. */
    if (old & LG_RESULT) {
        atomic_fetch_add(&st->duplicates, 1);
        return;
    }
    st->result_ns[n] = now;
    atomic_fetch_add(&st->results, 1);
    if (old & LG_ACCEPTED)
        atomic_fetch_add(&st->matched, 1);

    scan s;
    if (u->too_big || !u->data || scan_result(u->data, u->len, &s) != 0) {
        count_parsed(st, u);
        return;
    }
    if (s.found == FOUND_TRUE) {
        atomic_fetch_add(&st->found, 1);
        if (s.id) {
            char id[SCAN_ID_MAX + 1];
            memcpy(id, s.id, s.id_len);
            id[s.id_len] = 0;
            lg_nodes_add(&st->placements, id, 1);
        } else {
            atomic_fetch_add(&st->malformed, 1);
        }
    } else if (s.found == FOUND_FALSE) {
        atomic_fetch_add(&st->not_found, 1);
    } else {
        atomic_fetch_add(&st->malformed, 1);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    lg_recv *r = cls;
    upload *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u)
            return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (u->too_big || u->len + n > MAX_RESULT_BODY) {
            u->too_big = true;
            return MHD_YES;
        }
        if (u->len + n + 1 > u->cap) {
            size_t cap = u->cap ? u->cap : 4096;
            while (cap < u->len + n + 1)
                cap *= 2;
            char *p = realloc(u->data, cap);
            if (!p)
                return MHD_NO;
            u->data = p;
            u->cap = cap;
        }
        memcpy(u->data + u->len, upload_data, n);
        u->len += n;
        return MHD_YES;
    }

    int64_t now = lg_now_ns();
    if (strcmp(method, "POST") != 0 || strncmp(url, RESULT_PATH, strlen(RESULT_PATH)) != 0) {
        atomic_fetch_add(&r->st->unexpected, 1);
        return MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, r->not_found);
    }
    long long n = job_number(r->st, url);
    if (n < 0)
        atomic_fetch_add(&r->st->unexpected, 1);
    else
        record(r, n, u, now);
    /* Even a result that is not ours is taken, or the service would keep
     * retrying it for minutes. */
    return MHD_queue_response(conn, MHD_HTTP_OK, r->ok);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    upload *u = *con_cls;
    if (u) {
        free(u->data);
        free(u);
    }
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    lg_recv *r = cls;
    if (r->st->o->quiet)
        return;
    fprintf(stderr, "loadgen: receiver: ");
    vfprintf(stderr, fmt, ap);
}

lg_recv *lg_recv_start(lg_state *st, int port, int threads, char *err, size_t errlen)
{
    bool ok = false;
    lg_recv *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    r->st = st;
    /* Built once: MHD counts references, so every request can share them. */
    r->ok = MHD_create_response_from_buffer(2, "ok", MHD_RESPMEM_PERSISTENT);
    r->not_found = MHD_create_response_from_buffer(9, "not found", MHD_RESPMEM_PERSISTENT);
    if (!r->ok || !r->not_found) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }

    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    /* The logger goes first: MHD reports problems with later options. */
    r->d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, r, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, r,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, r, MHD_OPTION_END);
    if (!r->d) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d (in use?)", port);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    r->port = info && info->port ? info->port : port;
    ok = true;
out:
    if (!ok) {
        lg_recv_stop(r);
        r = NULL;
    }
    return r;
}

int lg_recv_port(const lg_recv *r)
{
    return r->port;
}

void lg_recv_stop(lg_recv *r)
{
    if (!r)
        return;
    if (r->d)
        MHD_stop_daemon(r->d);
    if (r->ok)
        MHD_destroy_response(r->ok);
    if (r->not_found)
        MHD_destroy_response(r->not_found);
    free(r);
}
