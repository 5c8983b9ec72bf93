/* loadgen.c - load generator for the cluster scheduler service.
 *
 * It plays the cluster manager: results come back to its own receiver on a
 * loopback port (loadgen_recv.c). It registers N nodes (and keeps them
 * alive with reports), then sends M deploy requests on C kept-alive
 * connections (loadgen_http.c), as fast as possible or open loop at a fixed
 * rate, and reports accepted requests/s, results/s, request-to-result
 * latency, placements per node and errors; one JSON object with --json.
 *
 * Open loop: job i is due at start + i/R whatever happened before, and its
 * latency counts from then, so a service that falls behind shows it as
 * latency rather than slowing the generator down. */
#include "loadgen.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#define DEFAULT_JOBS 10000
#define MAX_JOBS 50000000ULL
#define MAX_NODES 1000000ULL
#define MAX_CONNECTIONS 1024
#define MAX_RECEIVER_THREADS 64
#define TICK_MS 100
#define DRAW_EVERY_NS 200000000LL
#define SLEEP_SLICE_NS 100000000LL /* senders notice a stop within this */
#define BAR_WIDTH 28

typedef enum { GATE_WAIT, GATE_GO, GATE_ABORT } gate_state;

/* Holds the senders between registering nodes and sending jobs, so that
 * every connection is open and every node known when the clock starts. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    gate_state state;
} gate;

typedef struct sender {
    lg_state *st;
    gate *g;
    pthread_t thread;
    bool started;
    int64_t last_done_ns;
    size_t hb_first, hb_step; /* a heartbeat sender's nodes: first, first + step, ... */
    /* Jobs: sender 0 drives every sender's connection (pump_main). */
    struct sender *all;
    int n_all, index;
    bool busy, retried;   /* a job's request is out on this connection */
    size_t job;           /* which */
    int64_t due, sent_ns; /* when it was due and sent */
    unsigned reg_opens;   /* conn.opens when its fd joined the epoll set */
    char req[2048];
    char body[512];
    lg_conn conn;
} sender;

typedef struct run {
    lg_opts o;
    lg_state st;
    lg_addr addr;
    sigset_t sigs;
    lg_recv *recv;
    gate g;
    bool gate_ready, err_lock_ready;
    sender *senders;
    sender *hb; /* heartbeat_connections of them */
    int hb_started;
    bool interrupted, timed_out;
    int64_t end_ns;
} run;

typedef struct summary {
    size_t sent, accepted, results, lost, unsent;
    size_t errors;
    double send_s, results_s, accepted_per_s, results_per_s, duration_s;
    double p50, p90, p99, max, mean;  /* ms, scheduled send to result */
    double ack_p50, ack_p99, ack_max; /* ms, scheduled send to HTTP answer */
    size_t nodes_seen, nodes_used;
    uint64_t per_node_min, per_node_max;
} summary;

void lg_note_error(lg_state *st, const char *fmt, ...)
{
    pthread_mutex_lock(&st->err_lock);
    if (!st->first_error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->first_error, sizeof st->first_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&st->err_lock);
}

/* ---- gate ------------------------------------------------------------- */

static gate_state gate_wait(gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (g->state == GATE_WAIT)
        pthread_cond_wait(&g->cond, &g->lock);
    gate_state s = g->state;
    pthread_mutex_unlock(&g->lock);
    return s;
}

static void gate_open(gate *g, gate_state s)
{
    pthread_mutex_lock(&g->lock);
    g->state = s;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* ---- senders ------------------------------------------------------------ */

static size_t clip(size_t n, size_t max)
{
    return n < max ? n : max;
}

static int put_node(sender *s, size_t k, char *err, size_t errlen)
{
    const lg_opts *o = s->st->o;
    char path[128];
    snprintf(path, sizeof path, "/api/v1/nodes/%s%zu", o->node_prefix, k);
    snprintf(s->body, sizeof s->body,
             "{\"host\":\"%s%zu.loadgen\",\"virtualization\":[\"container\"],\"vcpus\":%.15g,"
             "\"memory\":%.15g,\"architecture\":\"amd64\"}",
             o->node_prefix, k, o->node_vcpus, o->node_memory);
    int len =
        lg_format_request(s->req, sizeof s->req, "PUT", path, s->conn.addr->hostport, s->body);
    if (len < 0) {
        snprintf(err, errlen, "request too long");
        return -1;
    }
    lg_resp r;
    if (lg_conn_request(&s->conn, s->req, (size_t)len, &r, err, errlen) != 0)
        return -1;
    if (r.status != 200 && r.status != 201) {
        snprintf(err, errlen, "HTTP %d: %.*s", r.status, (int)clip(r.body_len, 160), r.body);
        return -1;
    }
    return 0;
}

/* Formats job n's request into s->req and counts it as sent. Its length,
 * or -1 (counted as an error). */
static int job_request(sender *s, size_t n, int64_t due)
{
    lg_state *st = s->st;
    const lg_opts *o = st->o;
    char path[160];
    if (o->route == LG_ROUTE_DROPIN) {
        snprintf(path, sizeof path, "/api/calculate/deploy/%s%zu/0", st->prefix, n);
        snprintf(s->body, sizeof s->body,
                 "{\"_id\":\"%s%zu\",\"virtualization\":\"container\",\"vcpus\":%.15g,"
                 "\"memory\":%.15g}",
                 st->prefix, n, o->job_vcpus, o->job_memory);
    } else {
        snprintf(path, sizeof path, "/api/v1/jobs");
        snprintf(s->body, sizeof s->body,
                 "{\"_id\":\"%s%zu\",\"instance\":0,\"virtualization\":\"container\","
                 "\"vcpus\":%.15g,\"memory\":%.15g}",
                 st->prefix, n, o->job_vcpus, o->job_memory);
    }
    int len =
        lg_format_request(s->req, sizeof s->req, "POST", path, s->conn.addr->hostport, s->body);

    st->sched_ns[n] = due;
    atomic_fetch_or(&st->flags[n], (unsigned char)LG_SENT);
    atomic_fetch_add(&st->sent, 1);
    if (len < 0) {
        atomic_fetch_add(&st->errors_conn, 1);
        lg_note_error(st, "job %s%zu: request too long", st->prefix, n);
    }
    return len;
}

/* Job n's answer (rc 0 with r) or its failure (err). */
static void job_answered(sender *s, size_t n, int64_t due, int rc, const lg_resp *r,
                         const char *err)
{
    lg_state *st = s->st;
    int64_t done = lg_now_ns();
    s->last_done_ns = done;
    int64_t us = (done - due) / 1000;
    st->ack_us[n] = us < 0 ? 0 : us > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)us;

    if (rc != 0) {
        atomic_fetch_add(&st->errors_conn, 1);
        lg_note_error(st, "job %s%zu: %s", st->prefix, n, err);
        return;
    }
    if (r->status / 100 != 2) {
        atomic_fetch_add(&st->errors_http, 1);
        lg_note_error(st, "job %s%zu: HTTP %d: %.*s", st->prefix, n, r->status,
                      (int)clip(r->body_len, 160), r->body);
        return;
    }
    unsigned char old = atomic_fetch_or(&st->flags[n], (unsigned char)LG_ACCEPTED);
    atomic_fetch_add(&st->accepted, 1);
    if (old & LG_RESULT)
        atomic_fetch_add(&st->matched, 1);
}

/* Sleeps until the monotonic time due. -1 when told to stop meanwhile. */
static int sleep_until(const atomic_bool *stop, int64_t due)
{
    for (;;) {
        if (atomic_load(stop))
            return -1;
        int64_t now = lg_now_ns();
        if (now >= due)
            return 0;
        int64_t until = due - now > SLEEP_SLICE_NS ? now + SLEEP_SLICE_NS : due;
        struct timespec ts = {.tv_sec = until / 1000000000LL, .tv_nsec = until % 1000000000LL};
        /* An early wake-up (EINTR) is harmless: the loop looks at the clock. */
        (void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
}

/* Sends c's job (again, after a retry); false when that failed, and then
 * it is answered as failed. */
static bool pump_send(int ep, sender *c, int len)
{
    char err[LG_ERR_MAX];
    if (lg_conn_send(&c->conn, c->req, (size_t)len, NULL, err, sizeof err) != 0) {
        job_answered(c, c->job, c->due, -1, NULL, err);
        return false;
    }
    if (c->conn.opens != c->reg_opens) {
        /* A new connection: a closed fd left the set by itself. */
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)c->index};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->conn.fd, &ev) != 0) {
            lg_conn_close(&c->conn);
            job_answered(c, c->job, c->due, -1, NULL, "epoll_ctl failed");
            return false;
        }
        c->reg_opens = c->conn.opens;
    }
    c->sent_ns = lg_now_ns();
    return true;
}

/* Sends every job on C connections from one thread: each connection
 * carries one request at a time, and a connection whose answer came is
 * free for the next due job. One thread waiting on all of them is woken
 * once for the answers of a whole commit, where a thread per connection
 * was woken (and the service's sending thread preempted) once per answer.
 * Open loop all the same: a job is due at start + n/rate whether or not a
 * connection is free, and its latency counts from then. */
static void pump_main(sender *s0)
{
    lg_state *st = s0->st;
    const lg_opts *o = st->o;
    int n = s0->n_all;
    int *idle = malloc((size_t)n * sizeof *idle);
    struct epoll_event evs[64];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!idle || ep < 0) {
        lg_note_error(st, "loadgen: cannot set up the senders (out of memory or fds)");
        atomic_fetch_add(&st->errors_conn, 1);
        goto out;
    }
    int nidle = 0, inflight = 0;
    for (int i = n - 1; i >= 0; i--) {
        s0->all[i].reg_opens = 0;
        s0->all[i].busy = false;
        idle[nidle++] = i;
    }
    size_t next = 0;
    int64_t last_check = lg_now_ns();
    for (;;) {
        bool stopping = atomic_load(&st->stop_sending);
        int64_t now = lg_now_ns();
        int64_t next_due = 0;
        while (!stopping && nidle > 0 && next < o->jobs) {
            int64_t due = now;
            if (o->rate > 0) {
                due = st->start_ns + (int64_t)((double)next * 1e9 / o->rate);
                if (due > now) {
                    next_due = due;
                    break;
                }
            }
            if (o->rate > 0 && now - due > 1000000)
                atomic_fetch_add(&st->sent_late, 1);
            sender *c = &s0->all[idle[nidle - 1]];
            size_t job = next++;
            atomic_store(&st->next_job, next);
            int len = job_request(c, job, due);
            if (len < 0)
                continue;
            c->job = job;
            c->due = due;
            c->retried = false;
            if (!pump_send(ep, c, len))
                continue;
            c->busy = true;
            nidle--;
            inflight++;
        }
        if (inflight == 0 && (stopping || next >= o->jobs))
            break;
        /* Up to the next due job, or a slice: a stop and the request
         * timeout are looked at between waits. */
        int64_t wait = SLEEP_SLICE_NS;
        if (next_due > 0 && next_due - now < wait)
            wait = next_due - now;
        struct timespec ts = {.tv_sec = wait / 1000000000LL, .tv_nsec = wait % 1000000000LL};
        int k = epoll_pwait2(ep, evs, 64, &ts, NULL);
        if (k < 0 && errno == ENOSYS) /* a kernel before 5.11: whole ms, rounded up */
            k = epoll_wait(ep, evs, 64, (int)((wait + 999999) / 1000000));
        if (k < 0 && errno != EINTR) {
            lg_note_error(st, "loadgen: epoll_pwait2: %s", strerror(errno));
            atomic_fetch_add(&st->errors_conn, 1);
            break;
        }
        for (int i = 0; i < k; i++) {
            sender *c = &s0->all[evs[i].data.u32];
            if (!c->busy) {
                /* A close (or bytes nobody asked for) on an idle
                 * connection: the next job goes out on a new one. */
                lg_conn_close(&c->conn);
                continue;
            }
            lg_resp r;
            bool retry;
            char err[LG_ERR_MAX];
            int rc = lg_conn_read(&c->conn, &r, &retry, err, sizeof err);
            if (rc != 0 && retry && !c->retried) {
                /* Intake is idempotent per job id and instance, so one
                 * more try on a new connection is safe. */
                c->retried = true;
                int len = (int)strlen(c->req);
                if (pump_send(ep, c, len))
                    continue;
            } else {
                job_answered(c, c->job, c->due, rc, &r, err);
            }
            c->busy = false;
            idle[nidle++] = c->index;
            inflight--;
        }
        now = lg_now_ns();
        if (now - last_check >= SLEEP_SLICE_NS) {
            last_check = now;
            int64_t limit = (int64_t)(o->request_timeout * 1e9);
            for (int i = 0; i < n; i++) {
                sender *c = &s0->all[i];
                if (!c->busy || now - c->sent_ns < limit)
                    continue;
                lg_conn_close(&c->conn);
                job_answered(c, c->job, c->due, -1, NULL, "no answer in time (timed out)");
                c->busy = false;
                idle[nidle++] = i;
                inflight--;
            }
        }
    }
out:
    if (ep >= 0)
        close(ep);
    free(idle);
}

static void *sender_main(void *arg)
{
    sender *s = arg;
    lg_state *st = s->st;
    const lg_opts *o = st->o;
    char err[LG_ERR_MAX];

    while (!o->skip_nodes && !atomic_load(&st->stop_sending)) {
        size_t k = atomic_fetch_add(&st->next_node, 1);
        if (k >= o->nodes)
            break;
        if (put_node(s, k, err, sizeof err) == 0) {
            atomic_fetch_add(&st->nodes_ok, 1);
        } else {
            atomic_fetch_add(&st->node_errors, 1);
            lg_note_error(st, "node %s%zu: %s", o->node_prefix, k, err);
        }
    }
    atomic_fetch_add(&st->node_threads_done, 1);
    /* Sender 0 sends every job on every sender's connection, once all of
     * them are done with the nodes. */
    if (gate_wait(s->g) == GATE_GO && s->index == 0)
        pump_main(s);
    if (s->index == 0)
        for (int i = 0; i < s->n_all; i++)
            lg_conn_close(&s->all[i].conn);
    atomic_fetch_add(&st->senders_done, 1);
    return NULL;
}

/* Reports of one heartbeat round go out in slices this long apart. */
#define HEARTBEAT_SLICE_NS 10000000LL

/* The service marks a node inactive after NODE_TTL without a report and
 * moves its instances elsewhere; a long run must keep its nodes alive.
 * Real nodes report on timers of their own, so a round is spread evenly
 * over the period (node k at k/N of it, sent in 10 ms slices) rather than
 * sent as one burst of N reports. */
static void *heartbeat_main(void *arg)
{
    sender *s = arg;
    lg_state *st = s->st;
    const lg_opts *o = st->o;
    int64_t period = (int64_t)(o->heartbeat * 1e9);
    int64_t round = lg_now_ns() + period;
    char err[LG_ERR_MAX];
    size_t k = s->hb_first;

    while (sleep_until(&st->stop_heartbeat,
                       round + (int64_t)((double)k / (double)o->nodes * (double)period)) == 0) {
        /* Everything due by the end of this slice. */
        int64_t until = lg_now_ns() + HEARTBEAT_SLICE_NS - round;
        size_t due = until >= period
                         ? o->nodes
                         : (size_t)((double)until / (double)period * (double)o->nodes) + 1;
        for (; k < o->nodes && k < due && !atomic_load(&st->stop_heartbeat); k += s->hb_step) {
            if (put_node(s, k, err, sizeof err) != 0) {
                atomic_fetch_add(&st->hb_errors, 1);
                lg_note_error(st, "heartbeat of node %s%zu: %s", o->node_prefix, k, err);
            }
        }
        if (k >= o->nodes) {
            int64_t now = lg_now_ns();
            long long took = (long long)(now - round);
            long long max = atomic_load(&st->hb_round_max_ns);
            while (took > max && !atomic_compare_exchange_weak(&st->hb_round_max_ns, &max, took))
                ;
            round = round + period > now ? round + period : now;
            k = s->hb_first;
        }
    }
    lg_conn_close(&s->conn);
    return NULL;
}

/* ---- the main thread ----------------------------------------------------- */

/* SIGINT and SIGTERM are blocked in every thread, so only this wait takes
 * them: no handler, nothing async-signal-unsafe. True when one came. */
static bool tick(const sigset_t *sigs)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = TICK_MS * 1000000L};
    int sig = sigtimedwait(sigs, NULL, &ts);
    return sig == SIGINT || sig == SIGTERM;
}

typedef struct progress {
    bool on;
    int64_t last;
} progress;

static void draw(progress *p, const run *r, const char *phase, size_t done, size_t total,
                 bool force)
{
    int64_t now = lg_now_ns();
    if (!p->on || (!force && now - p->last < DRAW_EVERY_NS))
        return;
    p->last = now;
    const lg_state *st = &r->st;
    double frac = total ? (double)done / (double)total : 1.0;
    if (frac > 1.0)
        frac = 1.0;
    char bar[BAR_WIDTH + 1];
    int fill = (int)(frac * BAR_WIDTH);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    size_t accepted = atomic_load(&st->accepted);
    double el = st->start_ns ? (double)(now - st->start_ns) / 1e9 : 0.0;
    fprintf(stderr,
            "\r\033[K%-7s [%s] %3d%%  sent %zu/%zu  accepted %zu (%.0f/s)  results %zu  "
            "errors %zu",
            phase, bar, (int)(frac * 100), atomic_load(&st->sent), r->o.jobs, accepted,
            el > 0 ? (double)accepted / el : 0.0, atomic_load(&st->results),
            atomic_load(&st->errors_http) + atomic_load(&st->errors_conn));
    fflush(stderr);
}

static int wait_for_target(run *r, char *err, size_t errlen)
{
    int rc = -1;
    lg_conn *c = malloc(sizeof *c);
    char req[512];
    int len = lg_format_request(req, sizeof req, "GET", "/status", r->addr.hostport, NULL);
    if (!c || len < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    int64_t deadline = lg_now_ns() + (int64_t)(r->o.wait_target * 1e9);
    /* A service that takes the connection and says nothing should not
     * hold the start up for longer than asked. */
    double t = r->o.wait_target > 0 && r->o.wait_target < r->o.request_timeout
                   ? r->o.wait_target
                   : r->o.request_timeout;
    for (;;) {
        lg_resp resp;
        lg_conn_init(c, &r->addr, t);
        int got = lg_conn_request(c, req, (size_t)len, &resp, err, errlen);
        lg_conn_close(c);
        if (got == 0 && resp.status == 200) {
            rc = 0;
            goto out;
        }
        if (got == 0)
            snprintf(err, errlen, "GET /status answered %d", resp.status);
        if (lg_now_ns() >= deadline)
            goto out;
        if (tick(&r->sigs)) {
            r->interrupted = true;
            snprintf(err, errlen, "interrupted");
            goto out;
        }
    }
out:
    free(c);
    return rc;
}

/* Stops and joins everything; safe to call twice. Afterwards the per-job
 * arrays belong to this thread alone. */
static void stop_all(run *r)
{
    atomic_store(&r->st.stop_sending, true);
    if (r->gate_ready)
        gate_open(&r->g, GATE_ABORT);
    for (int i = 0; r->senders && i < r->o.connections; i++) {
        if (r->senders[i].started)
            pthread_join(r->senders[i].thread, NULL);
        r->senders[i].started = false;
    }
    atomic_store(&r->st.stop_heartbeat, true);
    for (int i = 0; i < r->hb_started; i++)
        pthread_join(r->hb[i].thread, NULL);
    r->hb_started = 0;
    lg_recv_stop(r->recv);
    r->recv = NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank on sorted values, in ms. */
static double pct_ms(const int64_t *v, size_t n, double p, double unit_ns)
{
    if (n == 0)
        return 0.0;
    size_t rank = (size_t)ceil(p * (double)n);
    size_t i = rank == 0 ? 0 : rank - 1;
    return (double)v[i < n ? i : n - 1] * unit_ns / 1e6;
}

static int summarize(const run *r, summary *s)
{
    int rc = -1;
    const lg_state *st = &r->st;
    size_t m = r->o.jobs;
    int64_t *lat = malloc((m ? m : 1) * sizeof *lat);
    int64_t *ack = malloc((m ? m : 1) * sizeof *ack);
    if (!lat || !ack)
        goto out;

    memset(s, 0, sizeof *s);
    size_t nlat = 0, nack = 0;
    int64_t last_result = 0;
    double sum_ms = 0.0;
    for (size_t n = 0; n < m; n++) {
        unsigned char f = atomic_load_explicit(&st->flags[n], memory_order_relaxed);
        if (!(f & LG_SENT))
            continue;
        s->sent++;
        ack[nack++] = st->ack_us[n];
        if (f & LG_ACCEPTED)
            s->accepted++;
        if (f & LG_RESULT) {
            s->results++;
            int64_t d = st->result_ns[n] - st->sched_ns[n];
            lat[nlat++] = d < 0 ? 0 : d;
            sum_ms += (double)(d < 0 ? 0 : d) / 1e6;
            if (st->result_ns[n] > last_result)
                last_result = st->result_ns[n];
        } else if (f & LG_ACCEPTED) {
            s->lost++;
        }
    }
    s->unsent = m - s->sent;
    s->errors = atomic_load(&st->errors_http) + atomic_load(&st->errors_conn);
    qsort(lat, nlat, sizeof *lat, cmp_i64);
    qsort(ack, nack, sizeof *ack, cmp_i64);
    s->p50 = pct_ms(lat, nlat, 0.50, 1.0);
    s->p90 = pct_ms(lat, nlat, 0.90, 1.0);
    s->p99 = pct_ms(lat, nlat, 0.99, 1.0);
    s->max = nlat ? (double)lat[nlat - 1] / 1e6 : 0.0;
    s->mean = nlat ? sum_ms / (double)nlat : 0.0;
    s->ack_p50 = pct_ms(ack, nack, 0.50, 1e3);
    s->ack_p99 = pct_ms(ack, nack, 0.99, 1e3);
    s->ack_max = nack ? (double)ack[nack - 1] / 1e3 : 0.0;

    int64_t send_end = 0;
    for (int i = 0; i < r->o.connections; i++)
        if (r->senders[i].last_done_ns > send_end)
            send_end = r->senders[i].last_done_ns;
    if (st->start_ns && send_end > st->start_ns)
        s->send_s = (double)(send_end - st->start_ns) / 1e9;
    if (st->start_ns && last_result > st->start_ns)
        s->results_s = (double)(last_result - st->start_ns) / 1e9;
    s->accepted_per_s = s->send_s > 0 ? (double)s->accepted / s->send_s : 0.0;
    s->results_per_s = s->results_s > 0 ? (double)s->results / s->results_s : 0.0;
    if (st->start_ns && r->end_ns > st->start_ns)
        s->duration_s = (double)(r->end_ns - st->start_ns) / 1e9;

    const lg_nodes *t = &st->placements;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].id)
            continue;
        uint64_t c = t->slots[i].count;
        if (s->nodes_seen == 0 || c < s->per_node_min)
            s->per_node_min = c;
        if (c > s->per_node_max)
            s->per_node_max = c;
        s->nodes_seen++;
        if (c > 0)
            s->nodes_used++;
    }
    rc = 0;
out:
    free(lat);
    free(ack);
    return rc;
}

/* Numbered node ids in numeric order: shorter first, then by text. */
static int cmp_node(const void *a, const void *b)
{
    const lg_node_count *x = *(const lg_node_count *const *)a;
    const lg_node_count *y = *(const lg_node_count *const *)b;
    size_t lx = strlen(x->id), ly = strlen(y->id);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return strcmp(x->id, y->id);
}

static const lg_node_count **sorted_nodes(const lg_nodes *t)
{
    const lg_node_count **v = malloc((t->n ? t->n : 1) * sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].id)
            v[k++] = &t->slots[i];
    qsort(v, k, sizeof *v, cmp_node);
    return v;
}

static double r3(double v)
{
    return round(v * 1000.0) / 1000.0;
}

static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (json_object_set_new(o, key, v) != 0)
        (*bad)++;
}

static int print_json(const run *r, const summary *s, int port)
{
    int rc = -1, bad = 0;
    const lg_opts *o = &r->o;
    const lg_state *st = &r->st;
    const lg_node_count **nodes = NULL;
    json_t *j = json_object();
    if (!j)
        goto out;
    put(j, "target", json_string(r->addr.hostport), &bad);
    put(j, "route", json_string(o->route == LG_ROUTE_DROPIN ? "dropin" : "native"), &bad);
    put(j, "run_id", json_string(o->run_id), &bad);
    put(j, "receiver_port", json_integer(port), &bad);
    put(j, "nodes", json_integer((json_int_t)(o->skip_nodes ? 0 : o->nodes)), &bad);
    put(j, "jobs", json_integer((json_int_t)o->jobs), &bad);
    put(j, "rate", json_real(o->rate), &bad);
    put(j, "connections", json_integer(o->connections), &bad);
    put(j, "sent", json_integer((json_int_t)s->sent), &bad);
    put(j, "unsent", json_integer((json_int_t)s->unsent), &bad);
    put(j, "sent_late", json_integer((json_int_t)atomic_load(&st->sent_late)), &bad);
    put(j, "accepted", json_integer((json_int_t)s->accepted), &bad);
    put(j, "errors", json_integer((json_int_t)s->errors), &bad);
    put(j, "errors_http", json_integer((json_int_t)atomic_load(&st->errors_http)), &bad);
    put(j, "errors_conn", json_integer((json_int_t)atomic_load(&st->errors_conn)), &bad);
    put(j, "node_errors", json_integer((json_int_t)atomic_load(&st->node_errors)), &bad);
    put(j, "heartbeat_errors", json_integer((json_int_t)atomic_load(&st->hb_errors)), &bad);
    put(j, "heartbeat_round_max_s", json_real(r3((double)atomic_load(&st->hb_round_max_ns) / 1e9)),
        &bad);
    put(j, "first_error", st->first_error[0] ? json_string(st->first_error) : json_null(), &bad);
    put(j, "results", json_integer((json_int_t)s->results), &bad);
    put(j, "found", json_integer((json_int_t)atomic_load(&st->found)), &bad);
    put(j, "not_found", json_integer((json_int_t)atomic_load(&st->not_found)), &bad);
    put(j, "duplicates", json_integer((json_int_t)atomic_load(&st->duplicates)), &bad);
    put(j, "unexpected", json_integer((json_int_t)atomic_load(&st->unexpected)), &bad);
    put(j, "malformed", json_integer((json_int_t)atomic_load(&st->malformed)), &bad);
    put(j, "lost", json_integer((json_int_t)s->lost), &bad);
    put(j, "send_s", json_real(r3(s->send_s)), &bad);
    put(j, "accepted_per_s", json_real(r3(s->accepted_per_s)), &bad);
    put(j, "results_s", json_real(r3(s->results_s)), &bad);
    put(j, "results_per_s", json_real(r3(s->results_per_s)), &bad);
    put(j, "p50_ms", json_real(r3(s->p50)), &bad);
    put(j, "p90_ms", json_real(r3(s->p90)), &bad);
    put(j, "p99_ms", json_real(r3(s->p99)), &bad);
    put(j, "max_ms", json_real(r3(s->max)), &bad);
    put(j, "mean_ms", json_real(r3(s->mean)), &bad);
    put(j, "ack_p50_ms", json_real(r3(s->ack_p50)), &bad);
    put(j, "ack_p99_ms", json_real(r3(s->ack_p99)), &bad);
    put(j, "ack_max_ms", json_real(r3(s->ack_max)), &bad);
    put(j, "nodes_used", json_integer((json_int_t)s->nodes_used), &bad);
    put(j, "per_node_min", json_integer((json_int_t)s->per_node_min), &bad);
    put(j, "per_node_max", json_integer((json_int_t)s->per_node_max), &bad);
    if (o->per_node) {
        json_t *pn = json_object();
        nodes = sorted_nodes(&st->placements);
        if (!pn || !nodes) {
            json_decref(pn);
            goto out;
        }
        for (size_t i = 0; i < st->placements.n; i++)
            put(pn, nodes[i]->id, json_integer((json_int_t)nodes[i]->count), &bad);
        put(j, "per_node", pn, &bad);
    }
    put(j, "duration_s", json_real(r3(s->duration_s)), &bad);
    put(j, "interrupted", json_boolean(r->interrupted), &bad);
    put(j, "timed_out", json_boolean(r->timed_out), &bad);
    if (bad)
        goto out;
    if (json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15)) != 0 ||
        fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        goto out;
    rc = 0;
out:
    free(nodes);
    json_decref(j);
    return rc;
}

static int print_human(const run *r, const summary *s, int port)
{
    const lg_opts *o = &r->o;
    const lg_state *st = &r->st;
    char rate[32];
    if (o->rate > 0)
        snprintf(rate, sizeof rate, "%g/s", o->rate);
    else
        snprintf(rate, sizeof rate, "max");
    printf("target      %s, %s route, rate %s, %d connections, run id %s, results on port %d\n",
           r->addr.hostport, o->route == LG_ROUTE_DROPIN ? "dropin" : "native", rate,
           o->connections, o->run_id, port);
    printf("nodes       %zu registered, %zu errors, %zu heartbeat errors, longest heartbeat "
           "round %.3f s\n",
           atomic_load(&st->nodes_ok), atomic_load(&st->node_errors), atomic_load(&st->hb_errors),
           (double)atomic_load(&st->hb_round_max_ns) / 1e9);
    printf("requests    %zu sent (%zu over 1 ms late), %zu unsent, %zu "
           "accepted in %.3f s = %.1f/s, %zu errors (%zu http, %zu connection)\n",
           s->sent, atomic_load(&st->sent_late), s->unsent, s->accepted, s->send_s,
           s->accepted_per_s, s->errors, atomic_load(&st->errors_http),
           atomic_load(&st->errors_conn));
    printf("results     %zu in %.3f s = %.1f/s: %zu found, %zu not found, %zu duplicates, "
           "%zu unexpected, %zu malformed, %zu lost%s\n",
           s->results, s->results_s, s->results_per_s, atomic_load(&st->found),
           atomic_load(&st->not_found), atomic_load(&st->duplicates), atomic_load(&st->unexpected),
           atomic_load(&st->malformed), s->lost, r->timed_out ? " (wait timed out)" : "");
    printf("latency ms  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  mean %.3f (due time to result)\n",
           s->p50, s->p90, s->p99, s->max, s->mean);
    printf("answer ms   p50 %.3f  p99 %.3f  max %.3f (due time to HTTP answer)\n", s->ack_p50,
           s->ack_p99, s->ack_max);
    printf("placements  %zu of %zu nodes used, per node min %llu max %llu\n", s->nodes_used,
           s->nodes_seen, (unsigned long long)s->per_node_min, (unsigned long long)s->per_node_max);
    if (st->first_error[0])
        printf("first error %s\n", st->first_error);
    if (r->interrupted)
        printf("interrupted\n");
    if (o->per_node) {
        const lg_node_count **nodes = sorted_nodes(&st->placements);
        if (!nodes)
            return -1;
        for (size_t i = 0; i < st->placements.n; i++)
            printf("  %-24s %llu\n", nodes[i]->id, (unsigned long long)nodes[i]->count);
        free(nodes);
    }
    return fflush(stdout) == 0 ? 0 : -1;
}

/* ---- command line -------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen --target HOST:PORT [options]\n"
            "\n"
            "Plays the cluster manager for a cluster-scheduler service: registers nodes,\n"
            "sends deploy requests and receives the results on a loopback port. Start the\n"
            "service with CLUSTER_MANAGER_URL=127.0.0.1 CLUSTER_MANAGER_PORT=<receiver port>.\n"
            "\n"
            "  --target HOST:PORT     the service (required)\n"
            "  --receiver-port P      port for the results on 127.0.0.1 (default 0: any free\n"
            "                         one, printed on stderr; the service must be told)\n"
            "  --receiver-threads N   receiver threads (default 2)\n"
            "  --nodes N              nodes to register (default 100)\n"
            "  --node-vcpus V         each node's vCPUs (default 64)\n"
            "  --node-memory MB       each node's memory (default 262144)\n"
            "  --node-prefix STR      node ids are STR0, STR1, ... (default loadgen-node-)\n"
            "  --skip-nodes           register no nodes (use those the service has)\n"
            "  --heartbeat S          report every node again every S s (default 5; 0: never)\n"
            "  --heartbeat-connections N\n"
            "                         connections the reports are spread over (default 4)\n"
            "  --jobs M               deploy requests to send (default %d)\n"
            "  --rate R               jobs/s, open loop (default 0: as fast as possible)\n"
            "  --duration S           with --rate: send R*S jobs (instead of --jobs)\n"
            "  --connections C        kept-alive connections for the jobs, one request\n"
            "                         in flight on each, all driven by one thread\n"
            "                         (default 8; they register the nodes first)\n"
            "  --route dropin|native  POST /api/calculate/deploy/ID/0 (default) or\n"
            "                         POST /api/v1/jobs\n"
            "  --job-vcpus V          each job's vCPUs (default 0.001)\n"
            "  --job-memory MB        each job's memory (default 1)\n"
            "  --run-id STR           job ids are STR-0, STR-1, ... (default from time and pid)\n"
            "  --timeout S            wait for outstanding results after the last send\n"
            "                         (default 30)\n"
            "  --request-timeout S    per request (default 30)\n"
            "  --wait S               wait for the service's GET /status (default 10)\n"
            "  --per-node             list placements for every node\n"
            "  --json                 one JSON object on stdout, no progress bar\n"
            "  --quiet                no progress bar, no notes on stderr\n"
            "  -h, --help             this help\n"
            "\n"
            "Latency counts from the time a job was due (start + n/R; with rate 0, when it\n"
            "was sent) to its result's arrival, so falling behind the rate shows up as\n"
            "latency. accepted_per_s is accepted requests over the time spent sending,\n"
            "results_per_s results over the time from the start to the last result, lost\n"
            "the accepted jobs without a result when the wait ended. Each connection\n"
            "carries one request at a time; at a fixed rate, sent_late counts jobs sent\n"
            "over 1 ms after they were due: many when no connection was free (more\n"
            "--connections keep the rate), a few when the sending thread ran late.\n"
            "Exit status 0 when there were no errors and nothing was lost, 1 otherwise,\n"
            "2 for bad usage.\n",
            DEFAULT_JOBS);
}

static int bad_usage(const char *fmt, const char *what)
{
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (see loadgen --help)\n");
    return 2;
}

static bool parse_size(const char *s, unsigned long long max, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = (size_t)v;
    return true;
}

static bool parse_num(const char *s, double min, double max, double *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Ids go into URL paths unescaped, so only unreserved characters. */
static bool valid_id_part(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LG_PREFIX_MAX)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") == n;
}

static bool split_target(const char *t, lg_opts *o)
{
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || !colon[1])
        return false;
    const char *h = t;
    size_t hlen = (size_t)(colon - t);
    if (*h == '[') {
        if (hlen < 3 || h[hlen - 1] != ']')
            return false;
        h++;
        hlen -= 2;
    }
    size_t port;
    if (hlen >= sizeof o->host || !parse_size(colon + 1, 65535, &port) || port == 0)
        return false;
    memcpy(o->host, h, hlen);
    o->host[hlen] = '\0';
    snprintf(o->port, sizeof o->port, "%d", (int)port);
    return true;
}

enum {
    OPT_TARGET = 256,
    OPT_RECEIVER_PORT,
    OPT_RECEIVER_THREADS,
    OPT_NODES,
    OPT_NODE_VCPUS,
    OPT_NODE_MEMORY,
    OPT_NODE_PREFIX,
    OPT_SKIP_NODES,
    OPT_HEARTBEAT,
    OPT_HEARTBEAT_CONNECTIONS,
    OPT_JOBS,
    OPT_RATE,
    OPT_DURATION,
    OPT_CONNECTIONS,
    OPT_ROUTE,
    OPT_JOB_VCPUS,
    OPT_JOB_MEMORY,
    OPT_RUN_ID,
    OPT_TIMEOUT,
    OPT_REQUEST_TIMEOUT,
    OPT_WAIT,
    OPT_PER_NODE,
    OPT_JSON,
    OPT_QUIET,
};

/* 0: run; 1: help printed; 2: bad usage (reported). */
static int parse_args(int argc, char **argv, lg_opts *o)
{
    static const struct option longopts[] = {
        {"target", required_argument, NULL, OPT_TARGET},
        {"receiver-port", required_argument, NULL, OPT_RECEIVER_PORT},
        {"receiver-threads", required_argument, NULL, OPT_RECEIVER_THREADS},
        {"nodes", required_argument, NULL, OPT_NODES},
        {"node-vcpus", required_argument, NULL, OPT_NODE_VCPUS},
        {"node-memory", required_argument, NULL, OPT_NODE_MEMORY},
        {"node-prefix", required_argument, NULL, OPT_NODE_PREFIX},
        {"skip-nodes", no_argument, NULL, OPT_SKIP_NODES},
        {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
        {"heartbeat-connections", required_argument, NULL, OPT_HEARTBEAT_CONNECTIONS},
        {"jobs", required_argument, NULL, OPT_JOBS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"connections", required_argument, NULL, OPT_CONNECTIONS},
        {"route", required_argument, NULL, OPT_ROUTE},
        {"job-vcpus", required_argument, NULL, OPT_JOB_VCPUS},
        {"job-memory", required_argument, NULL, OPT_JOB_MEMORY},
        {"run-id", required_argument, NULL, OPT_RUN_ID},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"per-node", no_argument, NULL, OPT_PER_NODE},
        {"json", no_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };

    memset(o, 0, sizeof *o);
    o->receiver_threads = 2;
    o->nodes = 100;
    o->node_vcpus = 64;
    o->node_memory = 262144;
    snprintf(o->node_prefix, sizeof o->node_prefix, "loadgen-node-");
    o->heartbeat = 5;
    o->heartbeat_connections = 4;
    o->jobs = DEFAULT_JOBS;
    o->connections = 8;
    o->route = LG_ROUTE_DROPIN;
    o->job_vcpus = 0.001;
    o->job_memory = 1;
    o->timeout = 30;
    o->request_timeout = 30;
    o->wait_target = 10;
    bool have_target = false, have_jobs = false;
    double duration = 0;
    size_t v;

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_TARGET:
            if (!split_target(optarg, o))
                return bad_usage("--target: '%s' is not HOST:PORT", optarg);
            have_target = true;
            break;
        case OPT_RECEIVER_PORT:
            if (!parse_size(optarg, 65535, &v))
                return bad_usage("--receiver-port: '%s' is not a port (0..65535)", optarg);
            o->receiver_port = (int)v;
            break;
        case OPT_RECEIVER_THREADS:
            if (!parse_size(optarg, MAX_RECEIVER_THREADS, &v) || v == 0)
                return bad_usage("--receiver-threads: '%s' is not in 1..64", optarg);
            o->receiver_threads = (int)v;
            break;
        case OPT_NODES:
            if (!parse_size(optarg, MAX_NODES, &o->nodes))
                return bad_usage("--nodes: '%s' is not in 0..1000000", optarg);
            break;
        case OPT_NODE_VCPUS:
            if (!parse_num(optarg, 0, 65536, &o->node_vcpus))
                return bad_usage("--node-vcpus: '%s' is not in 0..65536", optarg);
            break;
        case OPT_NODE_MEMORY:
            if (!parse_num(optarg, 0, 1073741824.0, &o->node_memory))
                return bad_usage("--node-memory: '%s' is not in 0..2^30", optarg);
            break;
        case OPT_NODE_PREFIX:
            if (!valid_id_part(optarg))
                return bad_usage("--node-prefix: '%s' must be 1..40 of A-Z a-z 0-9 . _ ~ -",
                                 optarg);
            snprintf(o->node_prefix, sizeof o->node_prefix, "%s", optarg);
            break;
        case OPT_SKIP_NODES:
            o->skip_nodes = true;
            break;
        case OPT_HEARTBEAT:
            if (!parse_num(optarg, 0, 86400, &o->heartbeat))
                return bad_usage("--heartbeat: '%s' is not in 0..86400 seconds", optarg);
            break;
        case OPT_HEARTBEAT_CONNECTIONS: {
            double v;
            if (!parse_num(optarg, 1, 64, &v) || v != (int)v)
                return bad_usage("--heartbeat-connections: '%s' is not in 1..64", optarg);
            o->heartbeat_connections = (int)v;
            break;
        }
        case OPT_JOBS:
            if (!parse_size(optarg, MAX_JOBS, &o->jobs) || o->jobs == 0)
                return bad_usage("--jobs: '%s' is not in 1..50000000", optarg);
            have_jobs = true;
            break;
        case OPT_RATE:
            if (!parse_num(optarg, 0, 1e7, &o->rate))
                return bad_usage("--rate: '%s' is not in 0..10000000 jobs/s", optarg);
            break;
        case OPT_DURATION:
            if (!parse_num(optarg, 0, 1e6, &duration) || duration <= 0)
                return bad_usage("--duration: '%s' is not a positive number of seconds", optarg);
            break;
        case OPT_CONNECTIONS:
            if (!parse_size(optarg, MAX_CONNECTIONS, &v) || v == 0)
                return bad_usage("--connections: '%s' is not in 1..1024", optarg);
            o->connections = (int)v;
            break;
        case OPT_ROUTE:
            if (strcmp(optarg, "dropin") == 0)
                o->route = LG_ROUTE_DROPIN;
            else if (strcmp(optarg, "native") == 0)
                o->route = LG_ROUTE_NATIVE;
            else
                return bad_usage("--route: '%s' is neither dropin nor native", optarg);
            break;
        case OPT_JOB_VCPUS:
            if (!parse_num(optarg, 0, 65536, &o->job_vcpus))
                return bad_usage("--job-vcpus: '%s' is not in 0..65536", optarg);
            break;
        case OPT_JOB_MEMORY:
            if (!parse_num(optarg, 0, 1073741824.0, &o->job_memory))
                return bad_usage("--job-memory: '%s' is not in 0..2^30", optarg);
            break;
        case OPT_RUN_ID:
            if (!valid_id_part(optarg))
                return bad_usage("--run-id: '%s' must be 1..40 of A-Z a-z 0-9 . _ ~ -", optarg);
            snprintf(o->run_id, sizeof o->run_id, "%s", optarg);
            break;
        case OPT_TIMEOUT:
            if (!parse_num(optarg, 0, 86400, &o->timeout))
                return bad_usage("--timeout: '%s' is not in 0..86400 seconds", optarg);
            break;
        case OPT_REQUEST_TIMEOUT:
            if (!parse_num(optarg, 0.001, 86400, &o->request_timeout))
                return bad_usage("--request-timeout: '%s' is not in 0.001..86400 seconds", optarg);
            break;
        case OPT_WAIT:
            if (!parse_num(optarg, 0, 86400, &o->wait_target))
                return bad_usage("--wait: '%s' is not in 0..86400 seconds", optarg);
            break;
        case OPT_PER_NODE:
            o->per_node = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            return bad_usage("%s: unknown option or missing value", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    if (!have_target)
        return bad_usage("%s", "--target HOST:PORT is required");
    if (duration > 0) {
        if (have_jobs || o->rate <= 0)
            return bad_usage("%s", "--duration needs --rate and replaces --jobs");
        double m = ceil(o->rate * duration);
        if (m > (double)MAX_JOBS)
            return bad_usage("%s", "--rate x --duration is more than 50000000 jobs");
        o->jobs = (size_t)m;
    }
    if (o->skip_nodes)
        o->nodes = 0;
    if (!o->run_id[0])
        snprintf(o->run_id, sizeof o->run_id, "lg%llx-%ld", (unsigned long long)time(NULL),
                 (long)getpid());
    return 0;
}

/* ---- main ----------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int rc = 1;
    char err[LG_ERR_MAX];
    run *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    /* Senders sleep until each job is due and latency counts from then:
     * the default 50 us timer slack would be charged to the service.
     * Threads inherit the setting. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    int prc = parse_args(argc, argv, &r->o);
    if (prc != 0) {
        rc = prc == 1 ? 0 : 2;
        goto out;
    }
    const lg_opts *o = &r->o;
    lg_state *st = &r->st;
    st->o = o;
    snprintf(st->prefix, sizeof st->prefix, "%s-", o->run_id);
    st->prefix_len = strlen(st->prefix);
    if (pthread_mutex_init(&st->err_lock, NULL) != 0) {
        fprintf(stderr, "loadgen: pthread_mutex_init failed\n");
        goto out;
    }
    r->err_lock_ready = true;

    /* Blocked before any thread starts (the receiver's too), so that they
     * all inherit the mask and only tick() ever takes these signals. */
    sigemptyset(&r->sigs);
    sigaddset(&r->sigs, SIGINT);
    sigaddset(&r->sigs, SIGTERM);
    struct sigaction ign = {0};
    ign.sa_handler = SIG_IGN;
    if (pthread_sigmask(SIG_BLOCK, &r->sigs, NULL) != 0 || sigaction(SIGPIPE, &ign, NULL) != 0) {
        fprintf(stderr, "loadgen: cannot set up signals\n");
        goto out;
    }

    if (lg_resolve(o->host, o->port, &r->addr, err, sizeof err) != 0) {
        fprintf(stderr, "loadgen: --target: %s\n", err);
        goto out;
    }
    st->flags = calloc(o->jobs, sizeof *st->flags);
    st->sched_ns = calloc(o->jobs, sizeof *st->sched_ns);
    st->result_ns = calloc(o->jobs, sizeof *st->result_ns);
    st->ack_us = calloc(o->jobs, sizeof *st->ack_us);
    r->senders = calloc((size_t)o->connections, sizeof *r->senders);
    r->hb = calloc((size_t)o->heartbeat_connections, sizeof *r->hb);
    if (!st->flags || !st->sched_ns || !st->result_ns || !st->ack_us || !r->senders || !r->hb ||
        lg_nodes_init(&st->placements, o->nodes) != 0) {
        fprintf(stderr, "loadgen: out of memory for %zu jobs\n", o->jobs);
        goto out;
    }
    /* Known nodes count from zero, so the minimum shows unused ones. */
    for (size_t k = 0; k < o->nodes; k++) {
        char id[LG_ID_MAX + 1];
        snprintf(id, sizeof id, "%s%zu", o->node_prefix, k);
        if (lg_nodes_add(&st->placements, id, 0) != 0) {
            fprintf(stderr, "loadgen: out of memory for %zu nodes\n", o->nodes);
            goto out;
        }
    }

    r->recv = lg_recv_start(st, o->receiver_port, o->receiver_threads, err, sizeof err);
    if (!r->recv) {
        fprintf(stderr, "loadgen: receiver: %s\n", err);
        goto out;
    }
    int port = lg_recv_port(r->recv);
    if (!o->quiet) {
        fprintf(stderr,
                "loadgen: receiving results on 127.0.0.1:%d (service: CLUSTER_MANAGER_URL="
                "127.0.0.1 CLUSTER_MANAGER_PORT=%d), run id %s\n",
                port, port, o->run_id);
        fflush(stderr);
    }
    if (wait_for_target(r, err, sizeof err) != 0) {
        fprintf(stderr, "loadgen: %s is not answering: %s\n", r->addr.hostport, err);
        goto out;
    }

    if (pthread_mutex_init(&r->g.lock, NULL) != 0 || pthread_cond_init(&r->g.cond, NULL) != 0) {
        fprintf(stderr, "loadgen: cannot create the start gate\n");
        goto out;
    }
    r->g.state = GATE_WAIT;
    r->gate_ready = true;
    for (int i = 0; i < o->connections; i++) {
        sender *s = &r->senders[i];
        s->st = st;
        s->g = &r->g;
        s->all = r->senders;
        s->n_all = o->connections;
        s->index = i;
        lg_conn_init(&s->conn, &r->addr, o->request_timeout);
        int e = pthread_create(&s->thread, NULL, sender_main, s);
        if (e != 0) {
            fprintf(stderr, "loadgen: pthread_create: %s\n", strerror(e));
            goto out;
        }
        s->started = true;
    }

    progress pr = {.on = isatty(STDERR_FILENO) && !o->quiet && !o->json};
    while (atomic_load(&st->node_threads_done) < o->connections) {
        if (tick(&r->sigs)) {
            r->interrupted = true;
            atomic_store(&st->stop_sending, true);
        }
        draw(&pr, r, "nodes", atomic_load(&st->nodes_ok) + atomic_load(&st->node_errors), o->nodes,
             false);
    }
    if (atomic_load(&st->node_errors) > 0 || r->interrupted) {
        gate_open(&r->g, GATE_ABORT);
    } else {
        st->start_ns = lg_now_ns();
        gate_open(&r->g, GATE_GO);
        /* Real nodes report each on its own: several connections, so that
         * one slow answer does not hold back every other node's report. */
        size_t nhb = o->nodes < (size_t)o->heartbeat_connections ? o->nodes
                                                                 : (size_t)o->heartbeat_connections;
        for (size_t i = 0; o->heartbeat > 0 && i < nhb; i++) {
            sender *h = &r->hb[i];
            h->st = st;
            h->hb_first = i;
            h->hb_step = nhb;
            lg_conn_init(&h->conn, &r->addr, o->request_timeout);
            int e = pthread_create(&h->thread, NULL, heartbeat_main, h);
            if (e != 0) {
                fprintf(stderr, "loadgen: pthread_create: %s\n", strerror(e));
                lg_conn_close(&h->conn);
                goto out;
            }
            r->hb_started++;
        }
    }

    while (atomic_load(&st->senders_done) < o->connections) {
        if (tick(&r->sigs)) {
            r->interrupted = true;
            atomic_store(&st->stop_sending, true);
        }
        draw(&pr, r, "sending", atomic_load(&st->sent), o->jobs, false);
    }
    int64_t deadline = lg_now_ns() + (int64_t)(o->timeout * 1e9);
    while (atomic_load(&st->matched) < atomic_load(&st->accepted)) {
        if (lg_now_ns() >= deadline) {
            r->timed_out = true;
            break;
        }
        if (tick(&r->sigs)) {
            r->interrupted = true;
            break;
        }
        draw(&pr, r, "waiting", atomic_load(&st->matched), atomic_load(&st->accepted), false);
    }
    draw(&pr, r, "done", atomic_load(&st->matched), atomic_load(&st->accepted), true);
    if (pr.on)
        fputc('\n', stderr);
    r->end_ns = lg_now_ns();
    stop_all(r);

    summary sum;
    if (summarize(r, &sum) != 0) {
        fprintf(stderr, "loadgen: out of memory for the summary\n");
        goto out;
    }
    if (!o->quiet && sum.accepted > 0 && sum.results == 0)
        fprintf(stderr,
                "loadgen: no result arrived; was the service started with "
                "CLUSTER_MANAGER_URL=127.0.0.1 CLUSTER_MANAGER_PORT=%d?\n",
                port);
    if (st->placements.unrecorded > 0)
        fprintf(stderr, "loadgen: %llu placements not recorded (out of memory)\n",
                (unsigned long long)st->placements.unrecorded);
    if ((o->json ? print_json(r, &sum, port) : print_human(r, &sum, port)) != 0) {
        fprintf(stderr, "loadgen: cannot write the report\n");
        goto out;
    }
    rc = sum.errors == 0 && sum.lost == 0 && atomic_load(&st->node_errors) == 0 && !r->interrupted
             ? 0
             : 1;
out:
    stop_all(r);
    if (r->gate_ready) {
        pthread_cond_destroy(&r->g.cond);
        pthread_mutex_destroy(&r->g.lock);
    }
    if (r->err_lock_ready)
        pthread_mutex_destroy(&r->st.err_lock);
    lg_nodes_free(&r->st.placements);
    free(r->st.flags);
    free(r->st.sched_ns);
    free(r->st.result_ns);
    free(r->st.ack_us);
    free(r->senders);
    free(r->hb);
    free(r);
    return rc;
}
