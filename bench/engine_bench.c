/* engine_bench.c - how fast the placement engine decides, and how much memory
 * the cluster table takes per node.
 *
 * For each cluster size it builds a cluster of fresh nodes with varied
 * capacities, technologies, architectures and reported usage (deterministic
 * from --seed), then times many decisions of one typical job (1 vCPU, 100 MB,
 * container) with engine_rank (top k, default 10), and with --place also
 * engine_place (each reservation released again, outside the timed section,
 * so capacity never runs out). Single-threaded: one core.
 *
 * One line per size and operation; --json prints one JSON object per line. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "engine.h"
#include "job.h"
#include "node.h"
#include "strlist.h"

#define DEFAULT_SIZES "10,100,1000,10000,100000"
#define MAX_SIZES 32
#define MAX_NODES 10000000UL
#define MIN_CALLS 200          /* time mode: at least this many measured calls */
#define MAX_CALLS 2000000      /* time mode: at most this many */
#define WARMUP_CALLS 50        /* untimed calls before measuring... */
#define WARMUP_S 0.2           /* ...and at least this long */
#define NODE_TTL_S 15.0        /* the engine's default activity window */
#define BENCH_NOW 1700000000.0 /* fixed "now": every node reported at this time */

typedef struct bench_args {
    size_t sizes[MAX_SIZES];
    size_t n_sizes;
    uint64_t seed;
    uint32_t top_k;
    long calls;     /* > 0: exactly this many measured calls per size */
    double seconds; /* time budget per size and operation otherwise */
    bool json;
    bool place;
    const char *strategy; /* NULL: engine default */
} bench_args;

/* ---- deterministic PRNG (splitmix64) ---------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform integer in [lo, hi]. */
static int64_t rng_range(int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(rng_next() % span);
}

/* Uniform double in [0, 1). */
static double rng_unit(void)
{
    return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- small helpers ------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void die_err(const char *what, const cs_error *err)
{
    fprintf(stderr, "engine-bench: %s: %s: %s\n", what, err->field, err->msg);
    exit(1);
}

/* ---- the cluster -------------------------------------------------------- */

static const char *const ADDONS[] = {"istio", "metrics", "gpu-operator", "ingress"};
static const char *const CSI[] = {"csi.ceph.com", "nfs.csi.k8s.io"};

/* One node of a varied fleet: 1..64 vCPUs, 512..262144 MB, ~10% with GPUs,
 * ~85% container only, ~10% container and unikernel, ~5% unikernel only,
 * ~75% amd64, usage 0..95%, some addons, CSI drivers and locations. */
static void add_node(cluster *c, size_t i)
{
    node_report r;
    cs_error err;
    char id[CS_ID_MAX + 1], host[CS_HOST_MAX + 1];

    node_report_init(&r);
    snprintf(id, sizeof id, "node-%zu", i);
    snprintf(host, sizeof host, "host-%zu.bench.local", i);
    if (node_report_set_host(&r, host, &err) != 0)
        die_err("host", &err);

    double t = rng_unit();
    if (t < 0.85) {
        if (node_report_add_virt(&r, "container", &err) != 0)
            die_err("virtualization", &err);
    } else if (t < 0.95) {
        if (node_report_add_virt(&r, "container", &err) != 0 ||
            node_report_add_virt(&r, "unikernel", &err) != 0)
            die_err("virtualization", &err);
    } else {
        if (node_report_add_virt(&r, "unikernel", &err) != 0)
            die_err("virtualization", &err);
    }
    if (node_report_set_arch(&r, rng_unit() < 0.75 ? "amd64" : "arm64", &err) != 0)
        die_err("arch", &err);
    if (node_report_set_vcpus(&r, (double)rng_range(1, 64), &err) != 0)
        die_err("vcpus", &err);
    if (node_report_set_memory(&r, (double)rng_range(512, 262144), &err) != 0)
        die_err("memory", &err);
    if (rng_unit() < 0.10 && node_report_set_gpus(&r, (double)rng_range(1, 8), &err) != 0)
        die_err("gpus", &err);
    if (node_report_set_cpu_percent(&r, rng_unit() * 95.0, &err) != 0)
        die_err("cpu_percent", &err);
    if (node_report_set_memory_percent(&r, rng_unit() * 95.0, &err) != 0)
        die_err("memory_percent", &err);
    if (rng_unit() < 0.20) {
        size_t a = (size_t)rng_range(0, (int64_t)(sizeof ADDONS / sizeof *ADDONS) - 1);
        if (strlist_add(&r.addons, ADDONS[a], CS_NAME_MAX, "supported_addons", &err) != 0)
            die_err("addons", &err);
        r.set |= NODE_F_ADDONS;
    }
    if (rng_unit() < 0.10) {
        size_t d = (size_t)rng_range(0, (int64_t)(sizeof CSI / sizeof *CSI) - 1);
        if (strlist_add(&r.csi, CSI[d], CS_NAME_MAX, "csi_drivers", &err) != 0)
            die_err("csi", &err);
        r.set |= NODE_F_CSI;
    }
    if (rng_unit() < 0.50 && node_report_set_location(&r, rng_unit() * 180.0 - 90.0,
                                                      rng_unit() * 360.0 - 180.0, &err) != 0)
        die_err("location", &err);

    if (cluster_report(c, id, &r, BENCH_NOW, &err) < 0)
        die_err(id, &err);
    node_report_clear(&r);
}

static cluster *build_cluster(size_t n, uint64_t seed)
{
    cluster *c = cluster_new(NODE_TTL_S);
    if (!c) {
        fprintf(stderr, "engine-bench: cluster_new failed\n");
        exit(1);
    }
    /* Same seed and size: same cluster, whatever ran before. */
    rng_state = seed ^ ((uint64_t)n * 0x2545F4914F6CDD1DULL);
    for (size_t i = 0; i < n; i++)
        add_node(c, i);
    if (cluster_size(c) != n) {
        fprintf(stderr, "engine-bench: cluster has %zu nodes, expected %zu\n", cluster_size(c), n);
        exit(1);
    }
    return c;
}

/* ---- measuring ---------------------------------------------------------- */

typedef enum { OP_RANK, OP_PLACE } bench_op;

typedef struct bench_stats {
    size_t calls;
    double decisions_per_s, mean_us, median_us, p99_us, max_us;
    size_t qualified, candidates;
} bench_stats;

/* One decision; the reservation a place makes is released before returning,
 * and only the engine call itself is timed. Returns its duration in ns. */
static uint64_t one_decision(bench_op op, engine_ctx *ctx, cluster *c, const job_spec *job,
                             engine_result *res)
{
    cs_error err;
    uint64_t t0 = now_ns();
    int rc = op == OP_RANK ? engine_rank(ctx, c, job, BENCH_NOW, res, &err)
                           : engine_place(ctx, c, job, BENCH_NOW, res, &err);
    uint64_t t1 = now_ns();
    if (rc != 0)
        die_err(op == OP_RANK ? "engine_rank" : "engine_place", &err);
    if (op == OP_PLACE) {
        if (!res->placed || res->existing) {
            fprintf(stderr, "engine-bench: engine_place did not place (placed=%d existing=%d)\n",
                    (int)res->placed, (int)res->existing);
            exit(1);
        }
        if (cluster_release(c, job->id, job->instance) != 0) {
            fprintf(stderr, "engine-bench: cluster_release found no reservation\n");
            exit(1);
        }
    }
    return t1 - t0;
}

static bench_stats measure(bench_op op, engine_ctx *ctx, cluster *c, const job_spec *job,
                           const bench_args *a, uint32_t top_k)
{
    engine_result res;
    bench_stats st = {0};

    /* Warm caches, the ctx's scratch space and the CPU's clock. */
    double w0 = now_s();
    for (int i = 0; i < WARMUP_CALLS || now_s() - w0 < WARMUP_S; i++)
        one_decision(op, ctx, c, job, &res);

    size_t cap = a->calls > 0 ? (size_t)a->calls : MAX_CALLS;
    uint64_t *samples = malloc(cap * sizeof *samples);
    if (!samples) {
        fprintf(stderr, "engine-bench: out of memory for %zu samples\n", cap);
        exit(1);
    }
    uint64_t budget_ns = (uint64_t)(a->seconds * 1e9);
    uint64_t start = now_ns(), total = 0;
    size_t n = 0;
    while (n < cap) {
        samples[n] = one_decision(op, ctx, c, job, &res);
        total += samples[n];
        n++;
        if (a->calls <= 0 && n >= MIN_CALLS && now_ns() - start >= budget_ns)
            break;
    }

    size_t want = top_k >= CS_TOPK_MAX || res.n_qualified < top_k ? res.n_qualified : top_k;
    if (res.n_nodes != cluster_size(c) || res.n_candidates != want) {
        fprintf(stderr,
                "engine-bench: unexpected result: looked at %zu of %zu nodes, %zu candidates "
                "of %zu qualified (top %" PRIu32 ")\n",
                res.n_nodes, cluster_size(c), res.n_candidates, res.n_qualified, top_k);
        exit(1);
    }
    st.qualified = res.n_qualified;
    st.candidates = res.n_candidates;

    qsort(samples, n, sizeof *samples, cmp_u64);
    st.calls = n;
    st.mean_us = (double)total / (double)n / 1e3;
    st.decisions_per_s = total > 0 ? (double)n / ((double)total / 1e9) : 0.0;
    st.median_us = (n % 2 ? (double)samples[n / 2]
                          : ((double)samples[n / 2 - 1] + (double)samples[n / 2]) / 2.0) /
                   1e3;
    size_t i99 = (size_t)((double)n * 0.99);
    st.p99_us = (double)samples[i99 < n ? i99 : n - 1] / 1e3;
    st.max_us = (double)samples[n - 1] / 1e3;
    free(samples);
    return st;
}

static void print_stats(const bench_args *a, bench_op op, size_t nodes, double bytes_per_node,
                        double build_s, uint32_t top_k, const char *strategy, const bench_stats *st)
{
    const char *opname = op == OP_RANK ? "rank" : "place";
    if (a->json) {
        printf("{\"op\":\"%s\",\"nodes\":%zu,\"top_k\":%" PRIu32 ",\"strategy\":\"%s\","
               "\"calls\":%zu,\"decisions_per_s\":%.1f,\"mean_us\":%.3f,\"median_us\":%.3f,"
               "\"p99_us\":%.3f,\"max_us\":%.3f,\"bytes_per_node\":%.1f,\"qualified\":%zu,"
               "\"build_s\":%.3f,\"seed\":%" PRIu64 "}\n",
               opname, nodes, top_k, strategy, st->calls, st->decisions_per_s, st->mean_us,
               st->median_us, st->p99_us, st->max_us, bytes_per_node, st->qualified, build_s,
               a->seed);
    } else {
        printf("op=%-5s nodes=%-7zu calls=%-8zu decisions_per_s=%-11.1f median_us=%-9.3f "
               "p99_us=%-9.3f bytes_per_node=%-7.1f qualified=%zu\n",
               opname, nodes, st->calls, st->decisions_per_s, st->median_us, st->p99_us,
               bytes_per_node, st->qualified);
    }
    fflush(stdout);
}

static void run_size(const bench_args *a, size_t nodes)
{
    cs_error err;
    double b0 = now_s();
    cluster *c = build_cluster(nodes, a->seed);
    double build_s = now_s() - b0;
    double bytes_per_node = (double)cluster_memory_bytes(c) / (double)nodes;

    engine_opts opts;
    engine_opts_default(&opts);
    opts.top_k = a->top_k;
    engine_ctx *ctx = engine_ctx_new(&opts);
    if (!ctx) {
        fprintf(stderr, "engine-bench: engine_ctx_new failed\n");
        exit(1);
    }

    job_spec job;
    job_spec_init(&job);
    if (job_spec_set_id(&job, "bench-job", &err) != 0 ||
        job_spec_set_instance(&job, 0, &err) != 0 || job_spec_set_vcpus(&job, 1, &err) != 0 ||
        job_spec_set_memory(&job, 100, &err) != 0 ||
        job_spec_set_virt(&job, "container", &err) != 0 ||
        (a->strategy && job_spec_set_strategy(&job, a->strategy, &err) != 0) ||
        job_spec_validate(&job, &err) != 0)
        die_err("job", &err);
    job.top_k = a->top_k;
    const char *strategy =
        strategy_name(job.strategy != STRATEGY_DEFAULT ? job.strategy : opts.strategy);

    bench_stats st = measure(OP_RANK, ctx, c, &job, a, a->top_k);
    print_stats(a, OP_RANK, nodes, bytes_per_node, build_s, a->top_k, strategy, &st);
    if (a->place) {
        st = measure(OP_PLACE, ctx, c, &job, a, a->top_k);
        print_stats(a, OP_PLACE, nodes, bytes_per_node, build_s, a->top_k, strategy, &st);
    }

    job_spec_clear(&job);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* ---- command line -------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: engine-bench [options]\n"
            "\n"
            "Times the placement engine on clusters of several sizes: one typical job\n"
            "(1 vCPU, 100 MB, container) ranked over fresh nodes with varied capacities,\n"
            "technologies, architectures and usage. One thread, one line per size.\n"
            "\n"
            "  --sizes N,N,...    cluster sizes (default " DEFAULT_SIZES ")\n"
            "  --top-k N          candidates to keep, 1..%d or 'all' (default 10)\n"
            "  --calls N          exactly N timed decisions per size (default: at least %d\n"
            "                     and about --time seconds)\n"
            "  --time S           time budget per size in seconds (default 1.5)\n"
            "  --seed N           PRNG seed for the cluster (default 42)\n"
            "  --strategy NAME    most-free, best-fit or spread (default: the engine's)\n"
            "  --place            also time engine_place (reserve, then release untimed)\n"
            "  --json             one JSON object per line: op, nodes, decisions_per_s,\n"
            "                     median_us, p99_us, bytes_per_node, ...\n"
            "  -h, --help         this help\n"
            "\n"
            "decisions_per_s is calls / time spent inside the engine call; median_us and\n"
            "p99_us are per decision; bytes_per_node is cluster_memory_bytes / nodes.\n",
            CS_TOPK_MAX, MIN_CALLS);
}

static void bad_usage(const char *fmt, const char *what)
{
    fprintf(stderr, "engine-bench: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (see engine-bench --help)\n");
    exit(2);
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

static void parse_sizes(const char *s, bench_args *a)
{
    char buf[512];
    if (strlen(s) >= sizeof buf)
        bad_usage("--sizes: list too long: '%s'", s);
    strcpy(buf, s);
    a->n_sizes = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (!parse_u64(tok, MAX_NODES, &v) || v == 0)
            bad_usage("--sizes: '%s' is not a node count between 1 and 10000000", tok);
        if (a->n_sizes == MAX_SIZES)
            bad_usage("--sizes: more than 32 sizes in '%s'", s);
        a->sizes[a->n_sizes++] = (size_t)v;
    }
    if (a->n_sizes == 0)
        bad_usage("--sizes: no size in '%s'", s);
}

static void parse_args(int argc, char **argv, bench_args *a)
{
    memset(a, 0, sizeof *a);
    parse_sizes(DEFAULT_SIZES, a);
    a->seed = 42;
    a->top_k = 10;
    a->seconds = 1.5;

    for (int i = 1; i < argc; i++) {
        char *arg = argv[i], *val = NULL;
        char name[64];
        /* --opt=value or --opt value */
        char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        if (eq) {
            size_t len = (size_t)(eq - arg);
            if (len >= sizeof name)
                bad_usage("unknown option '%s'", arg);
            memcpy(name, arg, len);
            name[len] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
        }
        bool takes_value = !strcmp(name, "--sizes") || !strcmp(name, "--top-k") ||
                           !strcmp(name, "--calls") || !strcmp(name, "--time") ||
                           !strcmp(name, "--seed") || !strcmp(name, "--strategy");
        if (takes_value && !val) {
            if (i + 1 >= argc)
                bad_usage("option '%s' needs a value", name);
            val = argv[++i];
        } else if (!takes_value && val) {
            bad_usage("option '%s' takes no value", name);
        }

        uint64_t v;
        if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(name, "--json")) {
            a->json = true;
        } else if (!strcmp(name, "--place")) {
            a->place = true;
        } else if (!strcmp(name, "--sizes")) {
            parse_sizes(val, a);
        } else if (!strcmp(name, "--top-k")) {
            if (!strcmp(val, "all"))
                a->top_k = CS_TOPK_MAX;
            else if (parse_u64(val, CS_TOPK_MAX, &v) && v > 0)
                a->top_k = (uint32_t)v;
            else
                bad_usage("--top-k: '%s' is not 'all' or a number between 1 and 100000", val);
        } else if (!strcmp(name, "--calls")) {
            if (!parse_u64(val, 100000000, &v) || v == 0)
                bad_usage("--calls: '%s' is not a number between 1 and 100000000", val);
            a->calls = (long)v;
        } else if (!strcmp(name, "--time")) {
            char *end;
            errno = 0;
            double s = strtod(val, &end);
            if (errno || end == val || *end || !isfinite(s) || s <= 0 || s > 3600)
                bad_usage("--time: '%s' is not a number of seconds in (0, 3600]", val);
            a->seconds = s;
        } else if (!strcmp(name, "--seed")) {
            if (!parse_u64(val, UINT64_MAX, &v))
                bad_usage("--seed: '%s' is not a non-negative integer", val);
            a->seed = v;
        } else if (!strcmp(name, "--strategy")) {
            if (strcmp(val, "most-free") && strcmp(val, "best-fit") && strcmp(val, "spread"))
                bad_usage("--strategy: '%s' is not most-free, best-fit or spread", val);
            a->strategy = val;
        } else {
            bad_usage("unknown option '%s'", arg);
        }
    }
}

int main(int argc, char **argv)
{
    bench_args a;
    parse_args(argc, argv, &a);
    for (size_t i = 0; i < a.n_sizes; i++)
        run_size(&a, a.sizes[i]);
    return 0;
}
