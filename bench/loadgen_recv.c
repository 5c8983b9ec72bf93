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
