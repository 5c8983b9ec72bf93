/* http.c - the HTTP server on libmicrohttpd (see docs/ARCHITECTURE.md):
 * one epoll thread reads every connection and runs the fast handler on each
 * complete request (intake: answered once the store's callback says the
 * job is durable); every other request goes to a few handler threads that
 * may block. A waiting connection is suspended, so many requests share
 * each wake-up instead of each costing a sleeping thread two, as a thread
 * per connection blocked on its commit did. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "codec.h"

/* MHD reports some conditions once per connection (the connection limit
 * reached, above all): at most this many of its lines per second reach
 * the log, so a flood of connections cannot flood the log too. */
#define MHD_LOG_PER_SECOND 5
/* Event mode: threads that run the blocking handlers (node reports, status
 * and explain reads, lists), so that a slow one (a 100,000-node list)
 * holds up at most one of them, never the event thread. */
#define HTTP_HANDLER_THREADS 8

struct http_server {
    const config *cfg;
    cslog *log;
    metrics *m;
    http_handler handler;
    http_fast_handler fast; /* NULL: every request goes to the handler threads */
    void (*flush)(void *ud);
    void *ud;
    struct MHD_Daemon *d;
    /* Event mode: our own loop around MHD_run, for the hook after each
     * round (flush), which MHD's internal thread does not offer. */
    pthread_t loop;
    bool loop_started;
    atomic_bool draining; /* http_stop asked the loop to finish and exit */
    MHD_socket quiesced;  /* the listen socket the loop took back from MHD */
    int wake_fd;          /* eventfd: ends the loop's wait */
    atomic_bool sleeping; /* the loop waits, or is about to: wake it */
    int open_conns;       /* event mode: connections open (event thread only) */
    atomic_uint answers;  /* calls answered so far */
    auth *auth;
    atomic_int inflight; /* requests between their first callback and completion */
    atomic_int parked;   /* event mode: suspended until their answer is back */
    bool stopped;
    /* Event mode: requests passed to the handler threads, oldest first. */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cond;
    struct http_call *pool_head, *pool_tail;
    bool pool_stop;
    pthread_t pool[HTTP_HANDLER_THREADS];
    int n_pool;
    pthread_mutex_t log_lock; /* guards the three fields below */
    time_t log_second;
    int log_count;
    unsigned long log_suppressed;
};

/* Per-request state, from the first callback to the completion notice. */
typedef struct http_call {
    route_match m;
    router_status st;
    char *body;
    size_t len, cap;
    bool too_big;
    bool denied; /* answered 401 before the body: the handler never runs */
    size_t discarded;
    struct timespec t0;
    /* Event mode. The answer is written by whichever thread answers,
     * before it resumes the connection; the event thread reads it only
     * after the resume, so MHD's resume lock orders the two. */
    http_server *h;
    struct MHD_Connection *conn;
    bool started; /* the request went to fast (and perhaps a handler thread) */
    bool parked;  /* suspended, not yet back on the event thread */
    atomic_bool answered;
    http_reply answer;
    struct http_call *next; /* handler threads' queue */
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
    if (r->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
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

/* The connection is back on the event thread (or ends): it no longer
 * holds http_stop back. */
static void unpark(http_server *h, req *rq)
{
    if (!rq->parked)
        return;
    rq->parked = false;
    atomic_fetch_sub(&h->parked, 1);
}

void http_call_answer(http_call *call, http_reply *r)
{
    if (!r->status)
        http_reply_error(r, 500, "server", "no answer");
    http_server *h = call->h;
    call->answer = *r;
    memset(r, 0, sizeof *r);
    atomic_store(&call->answered, true);
    /* The event thread may free the call as soon as this returns. */
    MHD_resume_connection(call->conn);
    /* With our own loop MHD wakes nobody: the loop must run MHD again. It
     * is woken only when it sleeps (or is about to), so that a commit
     * answering many calls costs one wake-up, not one write each; see
     * loop_main for the other half. */
    atomic_fetch_add(&h->answers, 1);
    if (atomic_exchange(&h->sleeping, false)) {
        uint64_t one = 1;
        ssize_t n = write(h->wake_fd, &one, sizeof one);
        (void)n; /* EAGAIN: the counter is full, so the loop wakes anyway */
    }
}

static void pool_push(http_server *h, req *rq)
{
    pthread_mutex_lock(&h->pool_mu);
    rq->next = NULL;
    if (h->pool_tail)
        h->pool_tail->next = rq;
    else
        h->pool_head = rq;
    h->pool_tail = rq;
    pthread_cond_signal(&h->pool_cond);
    pthread_mutex_unlock(&h->pool_mu);
}

static void *pool_main(void *arg)
{
    http_server *h = arg;
    pthread_setname_np(pthread_self(), "http-handler");
    pthread_mutex_lock(&h->pool_mu);
    for (;;) {
        req *rq = h->pool_head;
        if (!rq) {
            if (h->pool_stop)
                break;
            pthread_cond_wait(&h->pool_cond, &h->pool_mu);
            continue;
        }
        h->pool_head = rq->next;
        if (!h->pool_head)
            h->pool_tail = NULL;
        pthread_mutex_unlock(&h->pool_mu);
        http_reply r = {0};
        h->handler(h->ud, &rq->m, rq->body, rq->len, &r);
        http_call_answer(rq, &r);
        pthread_mutex_lock(&h->pool_mu);
    }
    pthread_mutex_unlock(&h->pool_mu);
    return NULL;
}

static void pool_stop(http_server *h)
{
    pthread_mutex_lock(&h->pool_mu);
    h->pool_stop = true;
    pthread_cond_broadcast(&h->pool_cond);
    pthread_mutex_unlock(&h->pool_mu);
    for (int i = 0; i < h->n_pool; i++)
        pthread_join(h->pool[i], NULL);
    h->n_pool = 0;
}

static void *loop_main(void *arg)
{
    http_server *h = arg;
    pthread_setname_np(pthread_self(), "http-event");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    struct pollfd fds[2] = {{.fd = di ? di->epoll_fd : -1, .events = POLLIN},
                            {.fd = h->wake_fd, .events = POLLIN}};
    unsigned seen = 0;
    bool quiesced = false;
    double drain_start = 0;
    bool drain_logged = false;
    for (;;) {
        MHD_UNSIGNED_LONG_LONG to;
        bool draining = atomic_load(&h->draining);
        int cap = draining ? 20 : 1000; /* draining: see the counters move */
        int ms = cap;
        if (MHD_get_timeout(h->d, &to) == MHD_YES && to < (MHD_UNSIGNED_LONG_LONG)cap)
            ms = (int)to;
        /* sleeping before answers is read, answers before sleeping is
         * taken in http_call_answer: an answer either shows here (no
         * sleep) or finds sleeping set and writes the eventfd. */
        atomic_store(&h->sleeping, true);
        unsigned a = atomic_load(&h->answers);
        if (a != seen)
            ms = 0;
        int ready = poll(fds, 2, ms);
        atomic_store(&h->sleeping, false);
        seen = a;
        if (ready > 0 && (fds[1].revents & POLLIN)) {
            uint64_t n;
            ssize_t got = read(h->wake_fd, &n, sizeof n);
            (void)got; /* only resets the counter */
        }
        MHD_run(h->d);
        if (h->flush)
            h->flush(h->ud);
        if (!draining)
            continue;
        /* Stopping, all on this thread: MHD's epoll state has no lock of
         * its own, and only this thread suspends requests, so once none
         * is parked none will be. Requests that complete from now on are
         * answered 503 at once (see on_request). */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double t = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
        if (!quiesced) {
            h->quiesced = MHD_quiesce_daemon(h->d);
            quiesced = true;
            drain_start = t;
        }
        /* A parked request is one whose job may be committing: its answer
         * always comes (the store answers every queued write, even when
         * closing, and every store call has a timeout), and MHD refuses to
         * stop with a connection still suspended. Requests still being
         * received get up to 5 s. */
        int parked = atomic_load(&h->parked);
        if (parked == 0 && (atomic_load(&h->inflight) == 0 || t - drain_start >= 5.0))
            break;
        if (parked > 0 && t - drain_start >= 5.0 && !drain_logged) {
            drain_logged = true;
            log_warn(h->log, "http: stopping waits for %d requests still being answered", parked);
        }
    }
    return NULL;
}

/* Asks the loop to drain and waits until it has exited. */
static void loop_stop(http_server *h)
{
    if (!h->loop_started)
        return;
    atomic_store(&h->draining, true);
    uint64_t one = 1;
    ssize_t n = write(h->wake_fd, &one, sizeof one);
    (void)n; /* the loop also wakes within a second */
    pthread_join(h->loop, NULL);
    h->loop_started = false;
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
    if (rq->started) {
        if (!atomic_load(&rq->answered))
            return MHD_YES; /* not resumed by an answer: keep waiting */
        unpark(h, rq);
        r = rq->answer;
        memset(&rq->answer, 0, sizeof rq->answer);
        return send_reply(h, conn, &r, method, url, rq);
    }
    if (atomic_load(&h->draining)) {
        /* Nothing new starts once stopping has begun: the client retries
         * (with the next process, or this one after its restart). */
        http_reply_error(&r, 503, "server", "shutting down; try again");
        r.close = true;
        return send_reply(h, conn, &r, method, url, rq);
    }
    /* Suspended before anything can answer, so that an answer from
     * another thread always finds the connection suspended. */
    rq->started = true;
    rq->h = h;
    rq->conn = conn;
    rq->parked = true;
    atomic_fetch_add(&h->parked, 1);
    MHD_suspend_connection(conn);
    switch (h->fast ? h->fast(h->ud, rq, &rq->m, rq->body, rq->len, &r) : HTTP_FAST_PASS) {
    case HTTP_FAST_ANSWERED:
        http_call_answer(rq, &r);
        break;
    case HTTP_FAST_PENDING:
        break;
    case HTTP_FAST_PASS:
        pool_push(h, rq);
        break;
    }
    return MHD_YES;
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
    unpark(h, rq);
    free(rq->answer.body);
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

static void log_limited(http_server *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mhd_log(h, fmt, ap);
    va_end(ap);
}

/* Connections are counted here: at MHD's own limit its epoll loop stops
 * accepting, so a client beyond MAX_CONNECTIONS would wait in the listen
 * backlog instead of being turned away at once. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    (void)socket_context;
    http_server *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        h->open_conns++;
    else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        h->open_conns--;
}

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)addr;
    (void)len;
    http_server *h = cls;
    if (h->open_conns < h->cfg->max_connections)
        return MHD_YES;
    log_limited(h, "connection limit (MAX_CONNECTIONS=%d) reached; closing an inbound connection",
                h->cfg->max_connections);
    return MHD_NO;
}

http_server *http_new(const config *cfg, cslog *log, metrics *m, const http_handlers *hs,
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
    h->handler = hs->handler;
    h->fast = hs->fast;
    h->flush = hs->flush;
    h->ud = hs->ud;
    h->wake_fd = -1;
    atomic_init(&h->inflight, 0);
    atomic_init(&h->parked, 0);
    atomic_init(&h->sleeping, false);
    atomic_init(&h->answers, 0);
    atomic_init(&h->draining, false);
    h->quiesced = MHD_INVALID_SOCKET;
    pthread_mutex_init(&h->log_lock, NULL);
    pthread_mutex_init(&h->pool_mu, NULL);
    pthread_cond_init(&h->pool_cond, NULL);
    if (!(h->auth = auth_new(cfg->token))) {
        cs_fail(err, "SCHEDULER_TOKEN", "out of memory or too long");
        goto fail;
    }

    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    /* MHD_ALLOW_SUSPEND_RESUME includes MHD_USE_ITC, but a resume does not
     * wake a loop of our own: http_call_answer does that. */
    unsigned flags = MHD_USE_ERROR_LOG | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if ((h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        cs_fail(err, "http", "cannot make an eventfd");
        goto fail;
    }
    for (; h->n_pool < HTTP_HANDLER_THREADS; h->n_pool++) {
        if (pthread_create(&h->pool[h->n_pool], NULL, pool_main, h) != 0) {
            cs_fail(err, "http", "cannot start a handler thread");
            goto fail;
        }
    }
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
     * limit. The per-IP limit is generous (a cluster manager is one IP).
     * accept_policy enforces MAX_CONNECTIONS; MHD's own limit is one above. */
    unsigned limit = (unsigned)cfg->max_connections + 1u;
    h->d = MHD_start_daemon(flags, (uint16_t)cfg->port, accept_policy, h, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->conn_timeout,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                            MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            limit, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->d) {
        cs_fail(err, "MY_PORT", "cannot listen on %.64s port %d (in use, or not allowed)",
                cfg->bind, cfg->port);
        goto fail;
    }
    if (pthread_create(&h->loop, NULL, loop_main, h) != 0) {
        cs_fail(err, "http", "cannot start the event thread");
        goto fail;
    }
    h->loop_started = true;
    return h;
fail:
    if (h->d)
        MHD_stop_daemon(h->d);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    pool_stop(h);
    auth_free(h->auth);
    pthread_mutex_destroy(&h->log_lock);
    pthread_mutex_destroy(&h->pool_mu);
    pthread_cond_destroy(&h->pool_cond);
    free(h);
    return NULL;
}

void http_stop(http_server *h)
{
    if (!h || h->stopped)
        return;
    h->stopped = true;
    /* Requests already being handled finish and are answered (the loop
     * drains); idle keep-alive connections are simply closed by
     * MHD_stop_daemon. The handler threads have nothing left to answer. */
    loop_stop(h);
    MHD_stop_daemon(h->d);
    h->d = NULL;
    if (h->quiesced != MHD_INVALID_SOCKET)
        close(h->quiesced);
    h->quiesced = MHD_INVALID_SOCKET;
    pool_stop(h);
}

void http_free(http_server *h)
{
    if (!h)
        return;
    http_stop(h);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    auth_free(h->auth);
    pthread_mutex_destroy(&h->log_lock);
    pthread_mutex_destroy(&h->pool_mu);
    pthread_cond_destroy(&h->pool_cond);
    free(h);
}
