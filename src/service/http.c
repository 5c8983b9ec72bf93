/* http.c - libmicrohttpd in thread-per-connection mode: handlers block on
 * durable store writes (group commit, about a millisecond), and a blocked
 * handler must not stall other connections (see docs/ARCHITECTURE.md). */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "codec.h"

/* MHD reports some conditions once per connection (the connection limit
 * reached, above all): at most this many of its lines per second reach
 * the log, so a flood of connections cannot flood the log too. */
#define MHD_LOG_PER_SECOND 5

struct http_server {
    const config *cfg;
    cslog *log;
    metrics *m;
    http_handler handler;
    void *ud;
    struct MHD_Daemon *d;
    auth *auth;
    atomic_int inflight; /* requests between their first callback and completion */
    bool stopped;
    pthread_mutex_t log_lock; /* guards the three fields below */
    time_t log_second;
    int log_count;
    unsigned long log_suppressed;
};

/* Per-request state, from the first callback to the completion notice. */
typedef struct req {
    route_match m;
    router_status st;
    char *body;
    size_t len, cap;
    bool too_big;
    bool denied; /* answered 401 before the body: the handler never runs */
    size_t discarded;
    struct timespec t0;
} req;

void http_reply_json(http_reply *r, int status, char *body)
{
    free(r->body);
    memset(r, 0, sizeof *r);
    if (!body) {
        http_reply_error(r, 500, "server", "out of memory");
        return;
    }
    r->status = status;
    r->content_type = "application/json";
    r->body = body;
    r->len = strlen(body);
}

void http_reply_text(http_reply *r, int status, const char *text)
{
    free(r->body);
    memset(r, 0, sizeof *r);
    r->status = status;
    r->content_type = "text/plain; charset=utf-8";
    r->body = strdup(text);
    r->len = r->body ? strlen(r->body) : 0;
}

void http_reply_error(http_reply *r, int status, const char *field, const char *message)
{
    free(r->body);
    memset(r, 0, sizeof *r);
    r->status = status;
    r->content_type = "application/json";
    r->body = codec_error_json(field, message);
    r->len = r->body ? strlen(r->body) : 0;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Queues the reply (taking its body) and counts it. */
static enum MHD_Result send_reply(http_server *h, struct MHD_Connection *conn, http_reply *r,
                                  const char *method, const char *url, const req *rq)
{
    struct MHD_Response *resp;
    if (r->body)
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body);
        r->body = NULL;
        return MHD_NO;
    }
    r->body = NULL; /* MHD frees it with the response */
    if (r->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->www_authenticate)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_authenticate);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    metrics_http_status(h->m, r->status);
    if (log_level(h->log) <= CSLOG_DEBUG)
        log_debug(h->log, "http %s %.200s -> %d (%.2f ms)", method, url, r->status,
                  rq ? ms_since(&rq->t0) : 0.0);
    return ok;
}

/* Answers without running a handler: routing failures and 413. */
static enum MHD_Result early_reply(http_server *h, struct MHD_Connection *conn, req *rq,
                                   const char *method, const char *url)
{
    http_reply r = {0};
    switch (rq->st) {
    case ROUTER_NOT_FOUND:
        http_reply_error(&r, 404, "path", "no such route");
        break;
    case ROUTER_BAD_METHOD: {
        char msg[96];
        snprintf(msg, sizeof msg, "method not allowed; allowed: %s", rq->m.allow);
        http_reply_error(&r, 405, "method", msg);
        r.allow = rq->m.allow;
        break;
    }
    case ROUTER_BAD_PARAM:
        http_reply_error(&r, 400, rq->m.bad_field, rq->m.bad_msg);
        break;
    case ROUTER_OK: {
        char msg[96];
        snprintf(msg, sizeof msg, "larger than the limit of %ld bytes (MAX_BODY)",
                 h->cfg->max_body);
        http_reply_error(&r, 413, "body", msg);
        break;
    }
    }
    return send_reply(h, conn, &r, method, url, rq);
}

/* 401 before anything else is looked at: without the token a client
 * learns nothing about routes, ids or limits. The header never reaches
 * a log line. */
static enum MHD_Result unauthorized(http_server *h, struct MHD_Connection *conn, req *rq,
                                    auth_result why, const char *method, const char *url)
{
    http_reply r = {0};
    rq->denied = true;
    if (why == AUTH_MISSING) {
        http_reply_error(&r, 401, "authorization",
                         "this service needs the header 'Authorization: Bearer <token>'");
        r.www_authenticate = "Bearer realm=\"cluster-scheduler\"";
    } else {
        http_reply_error(&r, 401, "authorization", "invalid bearer token");
        r.www_authenticate = "Bearer realm=\"cluster-scheduler\", error=\"invalid_token\"";
    }
    return send_reply(h, conn, &r, method, url, rq);
}

static int body_append(http_server *h, req *rq, const char *data, size_t n)
{
    size_t max = (size_t)h->cfg->max_body;
    if (rq->too_big || n > max - rq->len) {
        /* Past the cap: stop keeping it, but drain a bounded amount so the
         * client gets its 413; a client that keeps sending is cut off. */
        rq->too_big = true;
        free(rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
        rq->discarded += n;
        return rq->discarded > 4 * max ? -1 : 0;
    }
    if (rq->len + n + 1 > rq->cap) {
        size_t ncap = rq->cap ? rq->cap : 4096;
        while (ncap < rq->len + n + 1)
            ncap *= 2;
        if (ncap > max + 1)
            ncap = max + 1;
        char *nb = realloc(rq->body, ncap);
        if (!nb)
            return -1;
        rq->body = nb;
        rq->cap = ncap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    rq->body[rq->len] = 0;
    return 0;
}

/* Reads ?explain= into the match (see route_match.explain). */
static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    route_match *m = cls;
    if (strcmp(key, "explain") != 0)
        return MHD_YES;
    if (!value || !*value || strcmp(value, "1") == 0 || strcmp(value, "true") == 0 ||
        strcmp(value, "yes") == 0)
        m->explain = 1;
    else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
        m->explain = 0;
    else
        m->explain = -1;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_server *h = cls;
    req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &rq->t0);
        atomic_fetch_add(&h->inflight, 1);
        *con_cls = rq;
        rq->st = router_match(method, url, &rq->m);
        if (auth_enabled(h->auth) && !auth_route_public(rq->m.route, rq->m.method)) {
            auth_result ar =
                auth_check(h->auth, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                MHD_HTTP_HEADER_AUTHORIZATION));
            if (ar != AUTH_OK)
                return unauthorized(h, conn, rq, ar, method, url);
        }
        if (rq->st != ROUTER_OK)
            return early_reply(h, conn, rq, method, url);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_arg, &rq->m);
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && rq->m.wants_body) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end == 0 && n > (unsigned long long)h->cfg->max_body) {
                rq->too_big = true;
                return early_reply(h, conn, rq, method, url);
            }
        }
        return MHD_YES;
    }
    if (rq->denied) {
        /* Should MHD still pass the body on, it goes nowhere; the 401 is
         * queued already. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        /* A body on a route that reads none is drained under the same cap. */
        if (!rq->m.wants_body) {
            rq->discarded += n;
            return rq->discarded > (size_t)h->cfg->max_body ? MHD_NO : MHD_YES;
        }
        return body_append(h, rq, upload_data, n) ? MHD_NO : MHD_YES;
    }
    if (rq->too_big)
        return early_reply(h, conn, rq, method, url);
    http_reply r = {0};
    h->handler(h->ud, &rq->m, rq->body, rq->len, &r);
    if (!r.status)
        http_reply_error(&r, 500, "server", "no answer");
    return send_reply(h, conn, &r, method, url, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    http_server *h = cls;
    req *rq = *con_cls;
    if (!rq)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_debug(h->log, "http request ended early (%s, code %d)", router_route_name(rq->m.route),
                  (int)toe);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
    atomic_fetch_sub(&h->inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    http_server *h = cls;
    char line[512];
    unsigned long suppressed = 0;
    time_t now = time(NULL);
    pthread_mutex_lock(&h->log_lock);
    if (now != h->log_second) {
        suppressed = h->log_suppressed;
        h->log_second = now;
        h->log_count = 0;
        h->log_suppressed = 0;
    }
    bool quiet = ++h->log_count > MHD_LOG_PER_SECOND;
    if (quiet)
        h->log_suppressed++;
    pthread_mutex_unlock(&h->log_lock);
    if (suppressed)
        log_warn(h->log, "http: %lu more messages suppressed", suppressed);
    if (quiet)
        return;
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0; /* MHD ends its messages with a newline */
    log_warn(h->log, "http: %s", line);
}

http_server *http_new(const config *cfg, cslog *log, metrics *m, http_handler handler, void *ud,
                      cs_error *err)
{
    http_server *h = calloc(1, sizeof *h);
    if (!h) {
        cs_fail(err, "http", "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->log = log;
    h->m = m;
    h->handler = handler;
    h->ud = ud;
    atomic_init(&h->inflight, 0);
    pthread_mutex_init(&h->log_lock, NULL);
    if (!(h->auth = auth_new(cfg->token))) {
        cs_fail(err, "SCHEDULER_TOKEN", "out of memory or too long");
        goto fail;
    }

    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, cfg->bind, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, cfg->bind, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        cs_fail(err, "BIND_ADDR", "not an IP address: %.64s", cfg->bind);
        goto fail;
    }
    /* libmicrohttpd's defaults suit no network: no timeout, no per-IP
     * limit. The per-IP limit is generous (a cluster manager is one IP). */
    h->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->conn_timeout,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->d) {
        cs_fail(err, "MY_PORT", "cannot listen on %.64s port %d (in use, or not allowed)",
                cfg->bind, cfg->port);
        goto fail;
    }
    return h;
fail:
    auth_free(h->auth);
    pthread_mutex_destroy(&h->log_lock);
    free(h);
    return NULL;
}

void http_stop(http_server *h)
{
    if (!h || h->stopped)
        return;
    h->stopped = true;
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    /* Requests already being handled finish and are answered; idle
     * keep-alive connections are simply closed by MHD_stop_daemon. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&h->inflight) > 0 && ms_since(&t0) < 5000)
        usleep(5000);
    MHD_stop_daemon(h->d);
    h->d = NULL;
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void http_free(http_server *h)
{
    if (!h)
        return;
    http_stop(h);
    auth_free(h->auth);
    pthread_mutex_destroy(&h->log_lock);
    free(h);
}
