/* metrics.c - lock-free counters; histograms as fixed cumulative buckets
 * with the sum kept in nanoseconds so it can be an integer atomic. */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_BUCKETS 16

/* Seconds; from 50 µs (a decision on a small cluster) to 60 s (a result
 * retried for a while). */
static const double bucket_le[N_BUCKETS] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                            0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                            0.5,     1,      5,       60};

typedef struct hist {
    _Atomic uint64_t buckets[N_BUCKETS]; /* not cumulative; summed at render */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
} hist;

struct metrics {
    _Atomic uint64_t counters[M_COUNTER__COUNT];
    _Atomic uint64_t http[6]; /* [1]..[5] = 1xx..5xx, [0] other */
    hist h[H__COUNT];
};

static const struct {
    const char *name, *help;
} counter_info[M_COUNTER__COUNT] = {
    {"jobs_received_total", "Job instances accepted into the queue."},
    {"jobs_duplicate_total", "Intake requests for a job instance that was already known."},
    {"jobs_placed_total", "Decisions that placed a job instance on a node."},
    {"jobs_unschedulable_total", "Decisions that found no qualified node."},
    {"jobs_rescheduled_total", "Instances queued again because their node became inactive."},
    {"result_deliveries_total", "Results the cluster manager accepted."},
    {"result_deliveries_failed_total", "Result POSTs that failed (refused, timeout, non-2xx)."},
    {"result_deliveries_retried_total", "Result retries scheduled after a failure."},
    {"result_deliveries_given_up_total", "Results dropped after RESULT_RETRY_S."},
    {"result_deliveries_superseded_total",
     "Results not sent because their instance was re-queued or deleted meanwhile."},
    {"result_deliveries_held_back_total",
     "Sends put off while an older result of the same instance was being sent."},
    {"store_errors_total", "Storage operations that failed."},
    {"place_conflicts_total",
     "Redis mode: candidates that another process filled before this one could commit."},
};

static const struct {
    const char *name, *help;
} hist_info[H__COUNT] = {
    {"decision_seconds", "Time to filter, rank and reserve for one job instance."},
    {"request_to_result_seconds",
     "Time from a job's intake to the cluster manager accepting its result."},
};

metrics *metrics_new(void)
{
    /* All-zero is a valid state for the atomics. */
    return calloc(1, sizeof(metrics));
}

void metrics_free(metrics *m)
{
    free(m);
}

void metrics_inc(metrics *m, metric_counter c)
{
    metrics_add(m, c, 1);
}

void metrics_add(metrics *m, metric_counter c, uint64_t n)
{
    if (m && (unsigned)c < M_COUNTER__COUNT)
        atomic_fetch_add_explicit(&m->counters[c], n, memory_order_relaxed);
}

uint64_t metrics_get(metrics *m, metric_counter c)
{
    if (!m || (unsigned)c >= M_COUNTER__COUNT)
        return 0;
    return atomic_load_explicit(&m->counters[c], memory_order_relaxed);
}

void metrics_observe(metrics *m, metric_hist which, double seconds)
{
    if (!m || (unsigned)which >= H__COUNT || !(seconds >= 0))
        return;
    hist *h = &m->h[which];
    size_t b = 0;
    while (b < N_BUCKETS && seconds > bucket_le[b])
        b++;
    if (b < N_BUCKETS)
        atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    double ns = seconds * 1e9;
    atomic_fetch_add_explicit(&h->sum_ns, ns < 1.8e19 ? (uint64_t)ns : 0, memory_order_relaxed);
}

void metrics_http_status(metrics *m, int status)
{
    if (!m)
        return;
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        cls = 0;
    atomic_fetch_add_explicit(&m->http[cls], 1, memory_order_relaxed);
}

/* A growable text buffer with a hard cap, as for any buffer here. */
typedef struct buf {
    char *p;
    size_t len, cap;
    int failed;
} buf;

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bprintf(buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap * 2;
        if (ncap > (1u << 24)) {
            b->failed = 1;
            return;
        }
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

#define PFX "cluster_scheduler_"

static void gauge(buf *b, const char *name, const char *help, size_t v)
{
    bprintf(b, "# HELP " PFX "%s %s\n# TYPE " PFX "%s gauge\n" PFX "%s %zu\n", name, help, name,
            name, v);
}

char *metrics_render(metrics *m, const metrics_gauges *g)
{
    buf b = {malloc(8192), 0, 8192, 0};
    if (!b.p)
        return NULL;
    b.p[0] = 0;
    gauge(&b, "queue_depth", "Job instances waiting for a worker.", g->queue_depth);
    gauge(&b, "outbox_depth", "Results waiting to be delivered to the cluster manager.",
          g->outbox_depth);
    gauge(&b, "nodes_active", "Nodes that reported within NODE_TTL.", g->nodes_active);
    gauge(&b, "nodes_inactive", "Known nodes whose last report is older than NODE_TTL.",
          g->nodes_inactive);
    gauge(&b, "reservations", "Job instances holding a reservation on a node.", g->reservations);
    gauge(&b, "workers", "Scheduling worker threads.", g->workers);
    for (int c = 0; c < M_COUNTER__COUNT; c++)
        bprintf(&b, "# HELP " PFX "%s %s\n# TYPE " PFX "%s counter\n" PFX "%s %llu\n",
                counter_info[c].name, counter_info[c].help, counter_info[c].name,
                counter_info[c].name,
                (unsigned long long)atomic_load_explicit(&m->counters[c], memory_order_relaxed));
    bprintf(&b, "# HELP " PFX "http_requests_total HTTP requests answered, by status class.\n"
                "# TYPE " PFX "http_requests_total counter\n");
    static const char *const cls[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 1; i <= 5; i++)
        bprintf(&b, PFX "http_requests_total{code=\"%s\"} %llu\n", cls[i],
                (unsigned long long)atomic_load_explicit(&m->http[i], memory_order_relaxed));
    for (int hi = 0; hi < H__COUNT; hi++) {
        hist *h = &m->h[hi];
        const char *name = hist_info[hi].name;
        bprintf(&b, "# HELP " PFX "%s %s\n# TYPE " PFX "%s histogram\n", name, hist_info[hi].help,
                name);
        /* Read the count first: buckets may run ahead of it, never behind
         * by more than the observations racing with this render. */
        uint64_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
        uint64_t cum = 0;
        for (int i = 0; i < N_BUCKETS; i++) {
            cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
            bprintf(&b, PFX "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[i],
                    (unsigned long long)cum);
        }
        if (count < cum)
            count = cum;
        bprintf(&b, PFX "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
        bprintf(&b, PFX "%s_sum %.9f\n", name,
                (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
        bprintf(&b, PFX "%s_count %llu\n", name, (unsigned long long)count);
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
