/* test_engine.c - placement: each filter and its reason code, the counts and
 * message when nothing qualifies, each strategy's order, tie-breaks, top-k,
 * and no double booking when jobs arrive one after another; the edge
 * constraints (geo, latency, connectivity) with their edge cases, replica
 * spreading, and per-node explanations. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cluster_priv.h" /* whether the id ranks were built */
#include "engine.h"
#include "geo.h"
#include "job.h"
#include "node.h"
#include "virt.h"

#define NOW 1000.0
#define TTL 15.0

/* ---- helpers ---- */

/* A first report: host = id, the given runtimes ("container,unikernel"),
 * architecture (NULL for none) and capacity. */
static void node_base(node_report *r, const char *host, const char *virts, const char *arch,
                      double vcpus, double mem)
{
    char buf[128];
    node_report_init(r);
    assert_int_equal(node_report_set_host(r, host, NULL), 0);
    snprintf(buf, sizeof(buf), "%s", virts);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        assert_int_equal(node_report_add_virt(r, t, NULL), 0);
    if (arch)
        assert_int_equal(node_report_set_arch(r, arch, NULL), 0);
    assert_int_equal(node_report_set_vcpus(r, vcpus, NULL), 0);
    assert_int_equal(node_report_set_memory(r, mem, NULL), 0);
}

static void put(cluster *c, const char *id, node_report *r, double now)
{
    cs_error err;
    int rc = cluster_report(c, id, r, now, &err);
    if (rc < 0)
        fail_msg("report %s: %s: %s", id, err.field, err.msg);
    node_report_clear(r);
}

/* A container node on amd64, reported at now. */
static void add_node(cluster *c, const char *id, double vcpus, double mem, double now)
{
    node_report r;
    node_base(&r, id, "container", "amd64", vcpus, mem);
    put(c, id, &r, now);
}

static void job_make(job_spec *j, const char *id, uint32_t inst, const char *virt, double vcpus,
                     double mem)
{
    job_spec_init(j);
    assert_int_equal(job_spec_set_id(j, id, NULL), 0);
    assert_int_equal(job_spec_set_instance(j, inst, NULL), 0);
    assert_int_equal(job_spec_set_virt(j, virt, NULL), 0);
    assert_int_equal(job_spec_set_vcpus(j, vcpus, NULL), 0);
    assert_int_equal(job_spec_set_memory(j, mem, NULL), 0);
}

static engine_ctx *ctx_new(engine_strategy s, uint32_t top_k)
{
    engine_opts o;
    engine_opts_default(&o);
    if (s != STRATEGY_DEFAULT)
        o.strategy = s;
    if (top_k)
        o.top_k = top_k;
    engine_ctx *ctx = engine_ctx_new(&o);
    assert_non_null(ctx);
    return ctx;
}

/* n nodes <prefix>00, <prefix>01, ..., each bigger than the one before. */
static void add_rising(cluster *c, const char *prefix, int n, double vcpus, double vcpus_step,
                       double mem, double mem_step)
{
    char id[16];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%s%02d", prefix, i);
        add_node(c, id, vcpus + vcpus_step * i, mem + mem_step * i, NOW);
    }
}

static void rank(engine_ctx *ctx, cluster *c, const job_spec *j, double now, engine_result *res)
{
    cs_error err;
    memset(res, 0, sizeof(*res));
    if (engine_rank(ctx, c, j, now, res, &err) != 0)
        fail_msg("rank: %s: %s", err.field, err.msg);
}

static size_t reason_sum(const engine_result *r)
{
    size_t s = 0;
    for (int i = 0; i < REASON__COUNT; i++)
        s += r->reasons[i];
    return s;
}

/* Exactly one node "ok" qualifies and "bad" is removed for `reason`. */
static void expect_one_rejected(const engine_result *res, engine_reason reason)
{
    assert_int_equal(res->n_nodes, 2);
    assert_int_equal(res->n_qualified, 1);
    assert_int_equal(res->reasons[reason], 1);
    assert_int_equal(reason_sum(res), 1);
    assert_int_equal(res->n_candidates, 1);
    assert_string_equal(res->candidates[0].node_id, "ok");
}

/* Candidates' ids joined with ',' into buf. */
static const char *order(const engine_result *res, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < res->n_candidates && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
                                res->candidates[i].node_id);
    return buf;
}

/* ---- configuration and names ---- */

static void test_opts_default(void **state)
{
    (void)state;
    engine_opts o;
    memset(&o, 0x5a, sizeof(o));
    engine_opts_default(&o);
    assert_int_equal(o.strategy, STRATEGY_MOST_FREE);
    assert_int_equal(o.top_k, 10);
    assert_true(o.weight_cpu == 1.0 && o.weight_memory == 1.0);
}

static void test_reason_keys(void **state)
{
    (void)state;
    assert_string_equal(engine_reason_key(REASON_INACTIVE), "inactive");
    assert_string_equal(engine_reason_key(REASON_TECHNOLOGY), "technology");
    assert_string_equal(engine_reason_key(REASON_ARCH), "architecture");
    assert_string_equal(engine_reason_key(REASON_DIRECT), "direct");
    assert_string_equal(engine_reason_key(REASON_ADDONS), "addons");
    assert_string_equal(engine_reason_key(REASON_CSI), "csi_driver");
    assert_string_equal(engine_reason_key(REASON_GPU), "insufficient_gpu");
    assert_string_equal(engine_reason_key(REASON_CPU), "insufficient_cpu");
    assert_string_equal(engine_reason_key(REASON_MEMORY), "insufficient_memory");
}

/* ---- filters, one reason each ---- */

static void test_filter_inactive(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "ok", 4, 4096, NOW);
    add_node(c, "bad", 4, 4096, NOW - 20); /* silent for 20 s > TTL */
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 512);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_INACTIVE);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_filter_technology(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "ok", "container,unikernel", "amd64", 4, 4096);
    put(c, "ok", &r, NOW);
    add_node(c, "bad", 4, 4096, NOW); /* container only */
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "unikernel", 1, 512);
    assert_int_equal(strlist_add(&j.arch, "amd64", CS_NAME_MAX, "arch", NULL), 0);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_TECHNOLOGY);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* A node that reports "docker" runs a job that asks for "container". */
static void test_filter_docker_is_container(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "ok", "docker", "amd64", 4, 4096);
    put(c, "ok", &r, NOW);
    node_base(&r, "bad", "wasm", "amd64", 4, 4096);
    put(c, "bad", &r, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 512);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_TECHNOLOGY);
    job_spec_clear(&j);
    job_make(&j, "j", 0, "docker", 1, 512);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_TECHNOLOGY);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_filter_arch(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "ok", "unikernel", "arm64", 4, 4096);
    put(c, "ok", &r, NOW);
    node_base(&r, "bad", "unikernel", "amd64", 4, 4096);
    put(c, "bad", &r, NOW);
    node_base(&r, "noarch", "unikernel", NULL, 4, 4096); /* never said */
    put(c, "noarch", &r, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "unikernel", 1, 512);
    /* Any of the job's architectures will do. */
    assert_int_equal(strlist_add(&j.arch, "riscv64", CS_NAME_MAX, "arch", NULL), 0);
    assert_int_equal(strlist_add(&j.arch, "arm64", CS_NAME_MAX, "arch", NULL), 0);
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_nodes, 3);
    assert_int_equal(res.n_qualified, 1);
    assert_int_equal(res.reasons[REASON_ARCH], 2);
    assert_int_equal(reason_sum(&res), 2);
    assert_string_equal(res.candidates[0].node_id, "ok");
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_filter_direct(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "h-ok", "container", "amd64", 4, 4096);
    put(c, "ok", &r, NOW);
    node_base(&r, "h-bad", "container", "amd64", 4, 4096);
    put(c, "bad", &r, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_direct(&j, "h-other;h-ok;h-third", NULL), 0);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_DIRECT);
    job_spec_clear(&j);

    /* The node id names a node as well as its host. */
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_direct(&j, "ok", NULL), 0);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_DIRECT);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* A direct constraint that names no host admits no node (it does not mean
 * "anywhere"). */
static void test_filter_direct_empty_list(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "a", 4, 4096, NOW);
    add_node(c, "b", 4, 4096, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 512);
    j.has_direct = 1;
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_qualified, 0);
    assert_int_equal(res.reasons[REASON_DIRECT], 2);
    assert_int_equal(res.n_candidates, 0);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_filter_addons(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "ok", "container", "amd64", 4, 4096);
    strlist_add(&r.addons, "gpu-driver", CS_NAME_MAX, "addons", NULL);
    strlist_add(&r.addons, "psql", CS_NAME_MAX, "addons", NULL);
    strlist_add(&r.addons, "extra", CS_NAME_MAX, "addons", NULL);
    r.set |= NODE_F_ADDONS;
    put(c, "ok", &r, NOW);
    node_base(&r, "bad", "container", "amd64", 4, 4096);
    strlist_add(&r.addons, "psql", CS_NAME_MAX, "addons", NULL); /* only one of two */
    r.set |= NODE_F_ADDONS;
    put(c, "bad", &r, NOW);
    add_node(c, "none", 4, 4096, NOW); /* no addons at all */
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 512);
    strlist_add(&j.addons, "psql", CS_NAME_MAX, "addons", NULL);
    strlist_add(&j.addons, "gpu-driver", CS_NAME_MAX, "addons", NULL);
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_nodes, 3);
    assert_int_equal(res.n_qualified, 1);
    assert_int_equal(res.reasons[REASON_ADDONS], 2);
    assert_int_equal(reason_sum(&res), 2);
    assert_string_equal(res.candidates[0].node_id, "ok");
    job_spec_clear(&j);

    /* An addon no node in the cluster has ever named. */
    job_make(&j, "j", 0, "container", 1, 512);
    strlist_add(&j.addons, "never-heard-of", CS_NAME_MAX, "addons", NULL);
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_qualified, 0);
    assert_int_equal(res.reasons[REASON_ADDONS], 3);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_filter_csi(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "ok", "container", "amd64", 4, 4096);
    strlist_add(&r.csi, "csi.nfs", CS_NAME_MAX, "csi", NULL);
    r.set |= NODE_F_CSI;
    put(c, "ok", &r, NOW);
    node_base(&r, "bad", "container", "amd64", 4, 4096);
    strlist_add(&r.csi, "csi.local", CS_NAME_MAX, "csi", NULL);
    r.set |= NODE_F_CSI;
    put(c, "bad", &r, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 512);
    strlist_add(&j.csi, "csi.nfs", CS_NAME_MAX, "csi", NULL);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_CSI);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_filter_gpu(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "ok", "container", "amd64", 4, 4096);
    node_report_set_gpus(&r, 2, NULL);
    put(c, "ok", &r, NOW);
    node_base(&r, "bad", "container", "amd64", 4, 4096);
    node_report_set_gpus(&r, 1, NULL);
    put(c, "bad", &r, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 512);
    job_spec_set_gpus(&j, 2, NULL);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_GPU);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_filter_cpu(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "ok", 8, 4096, NOW);
    add_node(c, "bad", 4, 4096, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 4.5, 512);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_CPU);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_filter_memory(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "ok", 4, 8192, NOW);
    add_node(c, "bad", 4, 4096, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 4097);
    rank(ctx, c, &j, NOW, &res);
    expect_one_rejected(&res, REASON_MEMORY);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* The original computed free CPU from memory_percent: here a node busy on
 * CPU but idle on memory is short of CPU, and the reverse short of memory. */
static void test_filter_uses_the_right_usage_figure(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "cpubusy", "container", "amd64", 16, 16384);
    node_report_set_cpu_percent(&r, 90, NULL);
    node_report_set_memory_percent(&r, 0, NULL);
    put(c, "cpubusy", &r, NOW);
    node_base(&r, "membusy", "container", "amd64", 16, 16384);
    node_report_set_cpu_percent(&r, 0, NULL);
    node_report_set_memory_percent(&r, 90, NULL);
    put(c, "membusy", &r, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 4, 4096);
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_qualified, 0);
    assert_int_equal(res.reasons[REASON_CPU], 1);
    assert_int_equal(res.reasons[REASON_MEMORY], 1);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* A node is counted under the first filter (in enum order) that rejects it. */
static void test_first_failing_filter_counts(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "old-small", 1, 256, NOW - 60); /* inactive and too small */
    node_report r;
    node_base(&r, "wasm-small", "wasm", "amd64", 1, 256); /* tech and too small */
    put(c, "wasm-small", &r, NOW);
    add_node(c, "small", 1, 256, NOW); /* cpu and memory */
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 2, 512);
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_nodes, 3);
    assert_int_equal(res.n_qualified, 0);
    assert_int_equal(res.reasons[REASON_INACTIVE], 1);
    assert_int_equal(res.reasons[REASON_TECHNOLOGY], 1);
    assert_int_equal(res.reasons[REASON_CPU], 1);
    assert_int_equal(res.reasons[REASON_MEMORY], 0);
    assert_int_equal(res.n_candidates, 0);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_empty_cluster(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    cs_error err;
    job_make(&j, "j", 0, "container", 1, 512);
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_nodes, 0);
    assert_int_equal(res.n_qualified, 0);
    assert_int_equal(res.n_candidates, 0);
    assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
    assert_false(res.placed);
    char msg[256];
    engine_message(&res, &j, msg, sizeof(msg));
    assert_string_equal(msg, "0/0 nodes qualify");
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_invalid_job_is_an_error(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    cs_error err;
    job_spec_init(&j);
    job_spec_set_id(&j, "j", NULL); /* no virtualization */
    memset(&err, 0, sizeof(err));
    assert_int_equal(engine_rank(ctx, c, &j, NOW, &res, &err), -1);
    assert_true(err.field[0] != '\0');
    assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), -1);
    job_spec_clear(&j);
    job_spec_init(&j); /* unikernel without arch */
    job_spec_set_id(&j, "j", NULL);
    job_spec_set_virt(&j, "unikernel", NULL);
    assert_int_equal(engine_rank(ctx, c, &j, NOW, &res, &err), -1);
    job_spec_clear(&j);
    node_view v;
    assert_int_equal(cluster_get(c, "n1", NOW, &v), 0);
    assert_int_equal(v.n_reservations, 0);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* ---- message ---- */

/* The example, exactly: 12 nodes, 7 too small, 3 without the
 * runtime, 2 silent. */
static void test_message_example(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    char id[16];
    node_report r;
    for (int i = 0; i < 7; i++) {
        snprintf(id, sizeof(id), "small%d", i);
        node_base(&r, id, "unikernel", "amd64", 1, 8192);
        put(c, id, &r, NOW);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "cont%d", i);
        add_node(c, id, 8, 8192, NOW);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(id, sizeof(id), "old%d", i);
        node_base(&r, id, "unikernel", "amd64", 8, 8192);
        put(c, id, &r, NOW - 100);
    }
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "unikernel", 2, 512);
    strlist_add(&j.arch, "amd64", CS_NAME_MAX, "arch", NULL);
    rank(ctx, c, &j, NOW, &res);
    char msg[256];
    int n = engine_message(&res, &j, msg, sizeof(msg));
    assert_string_equal(msg, "0/12 nodes qualify: 7 insufficient cpu, 3 no technology unikernel, "
                             "2 inactive");
    assert_int_equal(n, (int)strlen(msg));

    /* Returns what snprintf would: the full length, truncated text. */
    char small[10];
    assert_int_equal(engine_message(&res, &j, small, sizeof(small)), n);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, msg, sizeof(small) - 1);
    assert_int_equal(engine_message(&res, &j, NULL, 0), n);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* Every reason's phrase, most frequent first (counts 1..9 all distinct). */
static void test_message_all_reasons_most_frequent_first(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    char id[32];
    node_report r;
    int k = 0;
    /* 1 inactive */
    node_base(&r, "x", "unikernel", "arm64", 8, 8192);
    snprintf(id, sizeof(id), "n%02d", k++);
    put(c, id, &r, NOW - 100);
    /* 2 technology */
    for (int i = 0; i < 2; i++) {
        snprintf(id, sizeof(id), "n%02d", k++);
        node_base(&r, id, "wasm", "arm64", 8, 8192);
        put(c, id, &r, NOW);
    }
    /* 3 arch */
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "n%02d", k++);
        node_base(&r, id, "unikernel", "amd64", 8, 8192);
        put(c, id, &r, NOW);
    }
    /* 4 direct (hosts not in the list) */
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "n%02d", k++);
        node_base(&r, "elsewhere", "unikernel", "arm64", 8, 8192);
        put(c, id, &r, NOW);
    }
    /* 5 addons, 6 csi, 7 gpu, 8 cpu, 9 memory: all on host "h" */
    for (int reason = REASON_ADDONS; reason <= REASON_MEMORY; reason++) {
        for (int i = 0; i < reason + 1; i++) {
            snprintf(id, sizeof(id), "n%02d", k++);
            node_base(&r, "h", "unikernel", "arm64", reason == REASON_CPU ? 1 : 8,
                      reason == REASON_MEMORY ? 256 : 8192);
            if (reason != REASON_ADDONS) {
                strlist_add(&r.addons, "a1", CS_NAME_MAX, "addons", NULL);
                r.set |= NODE_F_ADDONS;
            }
            if (reason != REASON_ADDONS && reason != REASON_CSI) {
                strlist_add(&r.csi, "c1", CS_NAME_MAX, "csi", NULL);
                r.set |= NODE_F_CSI;
            }
            node_report_set_gpus(&r, reason == REASON_GPU ? 0 : 1, NULL);
            put(c, id, &r, NOW);
        }
    }
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "unikernel", 2, 512);
    strlist_add(&j.arch, "arm64", CS_NAME_MAX, "arch", NULL);
    job_spec_add_direct(&j, "h", NULL);
    strlist_add(&j.addons, "a1", CS_NAME_MAX, "addons", NULL);
    strlist_add(&j.csi, "c1", CS_NAME_MAX, "csi", NULL);
    job_spec_set_gpus(&j, 1, NULL);
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_nodes, 45);
    for (int i = 0; i < REASON__COUNT; i++) /* the edge reasons need edge constraints */
        assert_int_equal(res.reasons[i], i <= REASON_MEMORY ? (size_t)i + 1 : 0);
    char msg[512];
    engine_message(&res, &j, msg, sizeof(msg));
    assert_string_equal(msg, "0/45 nodes qualify: 9 insufficient memory, 8 insufficient cpu, "
                             "7 insufficient gpu, 6 missing csi driver, 5 missing addons, "
                             "4 not in direct constraint, 3 architecture not in arch, "
                             "2 no technology unikernel, 1 inactive");
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* Equal counts keep the filters' order, so the text is deterministic; a
 * reason that removed no node is not mentioned. */
static void test_message_ties_follow_filter_order(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "a", 1, 4096, NOW);
    add_node(c, "b", 1, 4096, NOW);
    add_node(c, "c", 8, 4096, NOW - 60);
    add_node(c, "d", 8, 4096, NOW - 60);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 2, 512);
    rank(ctx, c, &j, NOW, &res);
    char msg[256];
    engine_message(&res, &j, msg, sizeof(msg));
    assert_string_equal(msg, "0/4 nodes qualify: 2 inactive, 2 insufficient cpu");
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* The same line when some qualify: how many, and why the others did not. */
static void test_message_when_some_qualify(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "a", 8, 4096, NOW);
    add_node(c, "b", 1, 4096, NOW);
    add_node(c, "c", 8, 256, NOW);
    add_node(c, "d", 8, 8192, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 2, 512);
    rank(ctx, c, &j, NOW, &res);
    char msg[256];
    engine_message(&res, &j, msg, sizeof(msg));
    assert_string_equal(msg, "2/4 nodes qualify: 1 insufficient cpu, 1 insufficient memory");
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* ---- strategies ---- */

/* most-free done right: absolute free amounts, so an idle 16-core node
 * beats an idle 4-core one (the original's loop could keep either). */
static void test_most_free_prefers_bigger_idle_node(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "a-small", 4, 4096, NOW);
    add_node(c, "b-big", 16, 16384, NOW);
    add_node(c, "c-mid", 8, 8192, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "b-big,c-mid,a-small");
    for (size_t i = 0; i < res.n_candidates; i++)
        assert_true(res.candidates[i].score >= 0 && res.candidates[i].score <= 100);
    assert_true(res.candidates[0].score > res.candidates[1].score);
    assert_true(res.candidates[1].score > res.candidates[2].score);
    assert_int_equal(res.candidates[0].free_cpu_milli, 16000);
    assert_int_equal(res.candidates[0].free_memory_mb, 16384);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* Free means after usage and reservations, not raw capacity. */
static void test_most_free_counts_usage_and_reservations(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "busy", "container", "amd64", 16, 16384);
    node_report_set_cpu_percent(&r, 90, NULL);
    node_report_set_memory_percent(&r, 90, NULL);
    put(c, "busy", &r, NOW);
    add_node(c, "idle", 4, 4096, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "idle,busy");
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* CPU and memory are each normalised and weighted: with equal weights the
 * node with more of both (relative to the largest) wins; weighting CPU
 * three times flips it. */
static void test_most_free_weights(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "cpu-rich", 8, 2048, NOW); /* 8/8 + 2048/8192 = 1.25 */
    add_node(c, "mem-rich", 4, 8192, NOW); /* 4/8 + 8192/8192 = 1.5 */
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);

    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "mem-rich,cpu-rich");
    engine_ctx_free(ctx);

    engine_opts o;
    engine_opts_default(&o);
    o.weight_cpu = 3.0; /* 3 + 0.25 vs 1.5 + 1 */
    ctx = engine_ctx_new(&o);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "cpu-rich,mem-rich");
    engine_ctx_free(ctx);
    job_spec_clear(&j);
    cluster_free(c);
}

static void add_reserved(cluster *c, const char *node, const char *job, double vcpus, int64_t mem)
{
    reservation_view rv;
    cs_error err;
    memset(&rv, 0, sizeof(rv));
    snprintf(rv.job_id, sizeof(rv.job_id), "%s", job);
    snprintf(rv.node_id, sizeof(rv.node_id), "%s", node);
    rv.cpu_milli = cs_milli_ceil(vcpus);
    rv.memory_mb = mem;
    rv.at = NOW;
    assert_int_equal(cluster_restore(c, &rv, &err), 0);
}

/* Three nodes where the strategies disagree:
 *   idle4: 4 cpu / 4096 idle        leftover 3/4,  util after 1/4
 *   full8: 8 cpu / 8192, 6 / 6144 reserved:
 *                                   leftover 1/8,  util after 7/8
 *   half16: 16 cpu / 16384, 8 / 8192 reserved:
 *                                   leftover 7/16, util after 9/16
 * most-free (absolute free): half16 (8), idle4 (4), full8 (2). */
static void setup_three(cluster *c)
{
    add_node(c, "idle4", 4, 4096, NOW);
    add_node(c, "full8", 8, 8192, NOW);
    add_node(c, "half16", 16, 16384, NOW);
    add_reserved(c, "full8", "r1", 6, 6144);
    add_reserved(c, "half16", "r2", 8, 8192);
}

static void test_strategies_disagree(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    setup_three(c);
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);
    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "half16,idle4,full8");
    engine_ctx_free(ctx);

    ctx = ctx_new(STRATEGY_BEST_FIT, 0);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "full8,half16,idle4");
    engine_ctx_free(ctx);

    ctx = ctx_new(STRATEGY_SPREAD, 0);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "idle4,half16,full8");
    for (size_t i = 0; i + 1 < res.n_candidates; i++)
        assert_true(res.candidates[i].score >= res.candidates[i + 1].score);
    engine_ctx_free(ctx);
    job_spec_clear(&j);
    cluster_free(c);
}

/* The job's own strategy overrides the engine default. */
static void test_job_strategy_overrides_default(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    setup_three(c);
    job_spec j;
    engine_result res;
    char buf[128];
    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    job_make(&j, "j", 0, "container", 1, 512);
    job_spec_set_strategy(&j, "best-fit", NULL);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "full8,half16,idle4");
    job_spec_set_strategy(&j, "spread", NULL);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "idle4,half16,full8");
    job_spec_clear(&j);
    engine_ctx_free(ctx);

    ctx = ctx_new(STRATEGY_SPREAD, 0); /* job says nothing: engine default */
    job_make(&j, "j", 0, "container", 1, 512);
    rank(ctx, c, &j, NOW, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "idle4,half16,full8");
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* best-fit packs: placing one after another fills the fullest node first
 * until it is exactly full. */
static void test_best_fit_packs(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "a", 4, 4096, NOW);
    add_node(c, "b", 4, 4096, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_BEST_FIT, 0);
    char jid[16];
    char first[CS_ID_MAX + 1] = "";
    for (int i = 0; i < 4; i++) {
        job_spec j;
        engine_result res;
        cs_error err;
        snprintf(jid, sizeof(jid), "j%d", i);
        job_make(&j, jid, 0, "container", 1, 1024);
        assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
        assert_true(res.placed);
        if (i == 0)
            snprintf(first, sizeof(first), "%s", res.node_id);
        assert_string_equal(res.node_id, first); /* all on one node */
        job_spec_clear(&j);
    }
    assert_string_equal(first, "a"); /* tie at the start: lowest id */
    node_view v;
    cluster_get(c, "a", NOW, &v);
    assert_int_equal(v.free_cpu_milli, 0);
    cluster_get(c, "b", NOW, &v);
    assert_int_equal(v.n_reservations, 0);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* spread fills unequal nodes evenly: 6 one-core jobs on an 8-core and a
 * 4-core node end 4 and 2 (both half used), whatever ties do in between. */
static void test_spread_fills_evenly(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "big", 8, 8192, NOW);
    add_node(c, "small", 4, 4096, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_SPREAD, 0);
    char jid[16];
    for (int i = 0; i < 6; i++) {
        job_spec j;
        engine_result res;
        cs_error err;
        snprintf(jid, sizeof(jid), "j%d", i);
        job_make(&j, jid, 0, "container", 1, 0);
        assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
        assert_true(res.placed);
        job_spec_clear(&j);
    }
    node_view v;
    cluster_get(c, "big", NOW, &v);
    assert_int_equal(v.reserved_cpu_milli, 4000);
    cluster_get(c, "small", NOW, &v);
    assert_int_equal(v.reserved_cpu_milli, 2000);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* Equal nodes come back in node id order under every strategy, whatever
 * the order they were registered in. */
static void test_tie_break_by_id(void **state)
{
    (void)state;
    const engine_strategy all[] = {STRATEGY_MOST_FREE, STRATEGY_BEST_FIT, STRATEGY_SPREAD};
    cluster *c = cluster_new(TTL);
    add_node(c, "n3", 4, 4096, NOW);
    add_node(c, "n1", 4, 4096, NOW);
    add_node(c, "n4", 4, 4096, NOW);
    add_node(c, "n2", 4, 4096, NOW);
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);
    for (size_t s = 0; s < 3; s++) {
        engine_ctx *ctx = ctx_new(all[s], 0);
        rank(ctx, c, &j, NOW, &res);
        assert_string_equal(order(&res, buf, sizeof(buf)), "n1,n2,n3,n4");
        assert_true(res.candidates[0].score == res.candidates[3].score);
        /* and with k smaller than the tie group */
        j.top_k = 2;
        rank(ctx, c, &j, NOW, &res);
        assert_string_equal(order(&res, buf, sizeof(buf)), "n1,n2");
        j.top_k = 0;
        engine_ctx_free(ctx);
    }
    job_spec_clear(&j);
    cluster_free(c);
}

static bool id_ranks_built(cluster *c)
{
    pthread_rwlock_rdlock(&c->lock);
    bool built = cluster_id_ranks_locked(c) != NULL;
    pthread_rwlock_unlock(&c->lock);
    return built;
}

/* Ties follow the ids also once the cluster ranked often enough to keep
 * its nodes' id ranks, and after nodes come and go (the ranks are rebuilt,
 * never used stale). */
static void test_tie_break_by_id_ranks(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    static const char *const ids[] = {"n5", "n3", "n1", "n40", "n4", "n2", "n0"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        add_node(c, ids[i], 4, 4096, NOW);
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);
    j.top_k = 3;
    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    for (int round = 0; round < 3; round++) {
        /* Rankings of 7 equal nodes compare ids until they compared about
         * as many as a sort of them takes (64 + 7 * 3), then use ranks. */
        assert_false(id_ranks_built(c));
        for (int i = 0; i < 40; i++) {
            rank(ctx, c, &j, NOW, &res);
            assert_string_equal(order(&res, buf, sizeof(buf)), round == 0   ? "n0,n1,n2"
                                                               : round == 1 ? "n1,n2,n3"
                                                                            : "n00,n1,n2");
        }
        assert_true(id_ranks_built(c));
        if (round == 0) {
            assert_int_equal(cluster_remove(c, "n0", NULL, NULL), 0); /* n5's position moves */
        } else {
            add_node(c, "n00", 4, 4096, NOW);
        }
    }
    engine_ctx_free(ctx);
    job_spec_clear(&j);
    cluster_free(c);
}

/* Nodes whose scores never tie never need their ids compared, so no
 * number of rankings makes the cluster sort them. */
static void test_no_ties_no_id_ranks(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_rising(c, "u", 50, 4, 1, 4096, 64);
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);
    j.top_k = 3;
    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    for (int i = 0; i < 500; i++) {
        rank(ctx, c, &j, NOW, &res);
        assert_string_equal(order(&res, buf, sizeof(buf)), "u49,u48,u47");
    }
    assert_false(id_ranks_built(c));
    assert_int_equal(atomic_load(&c->id_rank_debt), 0);
    engine_ctx_free(ctx);
    job_spec_clear(&j);
    cluster_free(c);
}

/* ---- top-k ---- */

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* 1,000 nodes of varied sizes (with many equal ones): the top k under each
 * strategy is exactly the first k of the full ranking, in the same order. */
static void test_top_k_matches_full_ranking(void **state)
{
    (void)state;
    const engine_strategy all[] = {STRATEGY_MOST_FREE, STRATEGY_BEST_FIT, STRATEGY_SPREAD};
    cluster *c = cluster_new(TTL);
    uint32_t seed = 42;
    char id[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "n%04u", lcg(&seed) % 100000);
        node_report r;
        node_base(&r, id, "container", "amd64", 1 + lcg(&seed) % 8, 1024 * (1 + lcg(&seed) % 8));
        put(c, id, &r, NOW);
    }
    size_t nodes = cluster_size(c);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 512);
    static engine_candidate full[1000];
    for (size_t s = 0; s < 3; s++) {
        engine_ctx *ctx = ctx_new(all[s], 0);
        j.top_k = CS_TOPK_MAX; /* all */
        rank(ctx, c, &j, NOW, &res);
        assert_int_equal(res.n_candidates, nodes);
        assert_int_equal(res.n_qualified, nodes);
        memcpy(full, res.candidates, nodes * sizeof(full[0]));
        for (size_t i = 0; i + 1 < nodes; i++) {
            assert_true(full[i].score >= full[i + 1].score);
            if (full[i].score == full[i + 1].score)
                assert_true(strcmp(full[i].node_id, full[i + 1].node_id) < 0);
        }
        const uint32_t ks[] = {1, 7, 10, 100};
        for (size_t k = 0; k < 4; k++) {
            j.top_k = ks[k];
            rank(ctx, c, &j, NOW, &res);
            assert_int_equal(res.n_candidates, ks[k]);
            assert_int_equal(res.n_qualified, nodes);
            for (size_t i = 0; i < ks[k]; i++) {
                assert_string_equal(res.candidates[i].node_id, full[i].node_id);
                assert_true(res.candidates[i].score == full[i].score);
            }
        }
        engine_ctx_free(ctx);
    }
    job_spec_clear(&j);
    cluster_free(c);
}

static void test_top_k_defaults(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_rising(c, "n", 20, 1, 1, 1024, 1024);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 1, 512);

    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    rank(ctx, c, &j, NOW, &res); /* engine default: 10 */
    assert_int_equal(res.n_candidates, 10);
    assert_int_equal(res.n_qualified, 20);
    assert_string_equal(res.candidates[0].node_id, "n19");
    assert_string_equal(res.candidates[9].node_id, "n10");
    j.top_k = 3; /* the job's own */
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_candidates, 3);
    assert_string_equal(res.candidates[2].node_id, "n17");
    j.top_k = 50; /* more than qualify: all of them */
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_candidates, 20);
    engine_ctx_free(ctx);

    ctx = ctx_new(STRATEGY_MOST_FREE, 4); /* configured default */
    j.top_k = 0;
    rank(ctx, c, &j, NOW, &res);
    assert_int_equal(res.n_candidates, 4);
    engine_ctx_free(ctx);
    job_spec_clear(&j);
    cluster_free(c);
}

/* ---- placing ---- */

static void test_rank_reserves_nothing(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "j", 0, "container", 4, 4096);
    for (int i = 0; i < 3; i++) {
        rank(ctx, c, &j, NOW, &res);
        assert_int_equal(res.n_qualified, 1);
        assert_false(res.placed);
    }
    node_view v;
    cluster_get(c, "n1", NOW, &v);
    assert_int_equal(v.n_reservations, 0);
    assert_int_equal(v.free_cpu_milli, 4000);
    reservation_view rv;
    assert_int_equal(cluster_placement(c, "j", 0, &rv), -1);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_place_takes_the_best_and_records_it(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "small", 4, 4096, NOW);
    add_node(c, "big", 16, 16384, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    job_spec j;
    engine_result res;
    cs_error err;
    job_make(&j, "job", 5, "container", 2, 1000);
    assert_int_equal(engine_place(ctx, c, &j, NOW + 1, &res, &err), 0);
    assert_true(res.placed);
    assert_false(res.existing);
    assert_string_equal(res.node_id, "big");
    assert_string_equal(res.candidates[0].node_id, "big");
    reservation_view rv;
    assert_int_equal(cluster_placement(c, "job", 5, &rv), 0);
    assert_string_equal(rv.node_id, "big");
    assert_int_equal(rv.cpu_milli, 2000);
    assert_int_equal(rv.memory_mb, 1000);
    assert_true(rv.at == NOW + 1);
    node_view v;
    cluster_get(c, "big", NOW + 1, &v);
    assert_int_equal(v.reserved_cpu_milli, 2000);
    assert_int_equal(v.free_cpu_milli, 14000);
    assert_int_equal(v.free_memory_mb, 15384);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* The test: 10 nodes of 4 vcpus / 4096 MB, 50 jobs of 1 vcpu /
 * 512 MB one after another: 40 placed, none over 4, 10 refused for CPU on
 * all 10 nodes. Under every strategy. */
static void test_no_double_booking(void **state)
{
    (void)state;
    const engine_strategy all[] = {STRATEGY_MOST_FREE, STRATEGY_BEST_FIT, STRATEGY_SPREAD};
    for (size_t s = 0; s < 3; s++) {
        cluster *c = cluster_new(TTL);
        char id[16];
        for (int i = 0; i < 10; i++) {
            snprintf(id, sizeof(id), "n%d", i);
            add_node(c, id, 4, 4096, NOW);
        }
        engine_ctx *ctx = ctx_new(all[s], 0);
        int placed = 0, refused = 0;
        for (int i = 0; i < 50; i++) {
            job_spec j;
            engine_result res;
            cs_error err;
            snprintf(id, sizeof(id), "job%d", i);
            job_make(&j, id, 0, "container", 1, 512);
            assert_int_equal(engine_place(ctx, c, &j, NOW + i * 0.01, &res, &err), 0);
            if (res.placed) {
                placed++;
                assert_int_equal(i < 40, 1); /* the first 40 all fit */
            } else {
                refused++;
                assert_int_equal(res.n_nodes, 10);
                assert_int_equal(res.n_qualified, 0);
                assert_int_equal(res.reasons[REASON_CPU], 10);
                assert_int_equal(reason_sum(&res), 10);
                char msg[128];
                engine_message(&res, &j, msg, sizeof(msg));
                assert_string_equal(msg, "0/10 nodes qualify: 10 insufficient cpu");
            }
            job_spec_clear(&j);
        }
        assert_int_equal(placed, 40);
        assert_int_equal(refused, 10);
        for (int i = 0; i < 10; i++) {
            node_view v;
            snprintf(id, sizeof(id), "n%d", i);
            assert_int_equal(cluster_get(c, id, NOW + 1, &v), 0);
            assert_int_equal(v.reserved_cpu_milli, 4000);
            assert_int_equal(v.reserved_memory_mb, 2048);
            assert_int_equal(v.n_reservations, 4);
            assert_int_equal(v.free_cpu_milli, 0);
        }
        engine_ctx_free(ctx);
        cluster_free(c);
    }
}

/* Released capacity is placeable again at once. */
static void test_release_makes_room(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 2, 2048, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec a, b;
    engine_result res;
    cs_error err;
    job_make(&a, "a", 0, "container", 2, 1024);
    job_make(&b, "b", 0, "container", 1, 1024);
    assert_int_equal(engine_place(ctx, c, &a, NOW, &res, &err), 0);
    assert_true(res.placed);
    assert_int_equal(engine_place(ctx, c, &b, NOW, &res, &err), 0);
    assert_false(res.placed);
    assert_int_equal(res.reasons[REASON_CPU], 1);
    assert_int_equal(cluster_release(c, "a", 0), 0);
    assert_int_equal(engine_place(ctx, c, &b, NOW, &res, &err), 0);
    assert_true(res.placed);
    assert_string_equal(res.node_id, "n1");
    job_spec_clear(&a);
    job_spec_clear(&b);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* GPUs are reserved like CPU: 2 GPUs take 2 one-GPU jobs, not 3. */
static void test_gpu_reservations(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    node_base(&r, "g", "container", "amd64", 16, 16384);
    node_report_set_gpus(&r, 2, NULL);
    put(c, "g", &r, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    char jid[8];
    for (int i = 0; i < 3; i++) {
        job_spec j;
        engine_result res;
        cs_error err;
        snprintf(jid, sizeof(jid), "j%d", i);
        job_make(&j, jid, 0, "container", 1, 512);
        job_spec_set_gpus(&j, 1, NULL);
        assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
        assert_int_equal(res.placed, i < 2);
        if (i == 2)
            assert_int_equal(res.reasons[REASON_GPU], 1);
        job_spec_clear(&j);
    }
    node_view v;
    cluster_get(c, "g", NOW, &v);
    assert_int_equal(v.reserved_gpus, 2);
    assert_int_equal(v.free_gpus, 0);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* Fractional vCPUs add up exactly: a 16.1-vcpu node takes a 16.1-vcpu job
 * (16.1 * 1000 is a hair above 16100 in binary floating point). */
static void test_fractional_vcpus_fit_exactly(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 16.1, 4096, NOW);
    add_node(c, "n2", 4.014, 4096, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    cs_error err;
    job_make(&j, "a", 0, "container", 16.1, 512);
    assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
    assert_true(res.placed);
    assert_string_equal(res.node_id, "n1");
    job_spec_clear(&j);
    for (int i = 0; i < 2; i++) { /* two 2.007 jobs fill 4.014 exactly */
        job_make(&j, "b", (uint32_t)i, "container", 2.007, 512);
        assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
        assert_true(res.placed);
        assert_string_equal(res.node_id, "n2");
        job_spec_clear(&j);
    }
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* An inactive node is never chosen even when it is the roomiest. */
static void test_place_skips_inactive(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "big-dead", 64, 65536, NOW - 30);
    add_node(c, "small", 2, 2048, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_MOST_FREE, 0);
    job_spec j;
    engine_result res;
    cs_error err;
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
    assert_true(res.placed);
    assert_string_equal(res.node_id, "small");
    assert_int_equal(res.reasons[REASON_INACTIVE], 1);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* The largest values the limits allow add up without overflow (this runs
 * under UBSan), and a zero-capacity node scores a finite number. */
static void test_extreme_sizes(void **state)
{
    (void)state;
    const engine_strategy all[] = {STRATEGY_MOST_FREE, STRATEGY_BEST_FIT, STRATEGY_SPREAD};
    for (size_t s = 0; s < 3; s++) {
        cluster *c = cluster_new(TTL);
        node_report r;
        node_base(&r, "huge", "container", "amd64", CS_VCPUS_MAX, CS_MEMORY_MAX);
        node_report_set_gpus(&r, CS_GPUS_MAX, NULL);
        put(c, "huge", &r, NOW);
        node_base(&r, "zero", "container", "amd64", 0, 0);
        put(c, "zero", &r, NOW);
        engine_ctx *ctx = ctx_new(all[s], 0);
        job_spec j;
        engine_result res;
        cs_error err;

        job_make(&j, "nothing", 0, "container", 0, 0); /* fits both */
        rank(ctx, c, &j, NOW, &res);
        assert_int_equal(res.n_candidates, 2);
        for (size_t i = 0; i < 2; i++)
            assert_true(isfinite(res.candidates[i].score) && res.candidates[i].score >= 0 &&
                        res.candidates[i].score <= 100);
        job_spec_clear(&j);

        job_make(&j, "max", 0, "container", CS_VCPUS_MAX, CS_MEMORY_MAX);
        job_spec_set_gpus(&j, CS_GPUS_MAX, NULL);
        assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
        assert_true(res.placed);
        assert_string_equal(res.node_id, "huge");
        job_spec_set_instance(&j, 1, NULL);
        assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
        assert_false(res.placed);
        assert_int_equal(res.reasons[REASON_GPU], 2);
        job_spec_clear(&j);
        node_view v;
        cluster_get(c, "huge", NOW, &v);
        assert_int_equal(v.free_cpu_milli, 0);
        assert_int_equal(v.free_memory_mb, 0);
        assert_int_equal(v.free_gpus, 0);
        engine_ctx_free(ctx);
        cluster_free(c);
    }
}

/* ---- edge constraints ---- */

/* A container node with a location (lat/lon NAN: none). */
static void add_geo_node(cluster *c, const char *id, double vcpus, double lat, double lon)
{
    node_report r;
    node_base(&r, id, "container", "amd64", vcpus, 8192);
    if (!isnan(lat))
        assert_int_equal(node_report_set_location(&r, lat, lon, NULL), 0);
    put(c, id, &r, NOW);
}

static void rank_ok(engine_ctx *ctx, cluster *c, job_spec *j, engine_result *res)
{
    rank(ctx, c, j, NOW, res);
}

static size_t filter_removed(const engine_result *res, const char *name, int cons)
{
    engine_filter_count f[32];
    size_t n = engine_filters(res, f, 32);
    for (size_t i = 0; i < n && i < 32; i++)
        if (strcmp(f[i].filter, name) == 0 && f[i].constraint == cons)
            return f[i].removed;
    fail_msg("filter %s (%d) not listed", name, cons);
    return 0;
}

static void test_reason_keys_edge(void **state)
{
    (void)state;
    const char *want[] = {"no_location",
                          "too_far",
                          "no_latency",
                          "latency_too_high",
                          "no_coordinates",
                          "target_not_running",
                          "target_no_coordinates",
                          "connectivity_too_slow",
                          "replica_in_label",
                          "replica_on_node"};
    for (int r = REASON_NO_LOCATION; r < REASON__COUNT; r++)
        assert_string_equal(engine_reason_key((engine_reason)r), want[r - REASON_NO_LOCATION]);
    assert_string_equal(engine_reason_key(REASON__COUNT), "unknown");
}

static void test_geo_distances(void **state)
{
    (void)state;
    /* Munich - Berlin, about 504 km */
    double d = geo_haversine_km(48.137, 11.575, 52.52, 13.405);
    assert_true(d > 503 && d < 506);
    /* the chord form used by the filter is the same great-circle distance */
    srand(3);
    for (int i = 0; i < 1000; i++) {
        double la1 = rand() % 18001 / 100.0 - 90, lo1 = rand() % 36001 / 100.0 - 180;
        double la2 = rand() % 18001 / 100.0 - 90, lo2 = rand() % 36001 / 100.0 - 180;
        geo_point a = geo_unit(la1, lo1), b = geo_unit(la2, lo2);
        double h = geo_haversine_km(la1, lo1, la2, lo2), ch = geo_chord_km(geo_chord2(&a, &b));
        assert_true(fabs(h - ch) < 1e-6);
        /* the threshold test agrees with the distance */
        assert_true(geo_chord2(&a, &b) <= geo_chord2_max(h + 1e-6));
        if (h > 1e-3)
            assert_false(geo_chord2(&a, &b) <= geo_chord2_max(h - 1e-3));
    }
    /* a quarter of the circumference; the whole sphere past half of it */
    assert_true(fabs(geo_haversine_km(0, 0, 0, 90) - M_PI / 2 * CS_EARTH_RADIUS_KM) < 1e-6);
    geo_point n = geo_unit(90, 0), s = geo_unit(-90, 0);
    assert_true(geo_chord2(&n, &s) <= geo_chord2_max(20100));
    assert_false(geo_chord2(&n, &s) <= geo_chord2_max(20000));
}

static void test_geo_filter(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_geo_node(c, "munich", 4, 48.137, 11.575);
    add_geo_node(c, "garching", 4, 48.249, 11.651);
    add_geo_node(c, "berlin", 4, 52.52, 13.405);
    add_geo_node(c, "nowhere", 4, NAN, NAN);
    add_geo_node(c, "full", 0.5, 48.137, 11.575); /* capacity rejects first */
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 2, 48.137, 11.575, 50, false, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_int_equal(res.n_qualified, 2);
    assert_string_equal(order(&res, buf, sizeof(buf)), "garching,munich"); /* by id: a tie */
    assert_int_equal(res.reasons[REASON_TOO_FAR], 1);
    assert_int_equal(res.reasons[REASON_NO_LOCATION], 1);
    assert_int_equal(res.reasons[REASON_CPU], 1);
    assert_non_null(res.cons_removed);
    assert_int_equal(res.cons_removed[0], 2);
    assert_int_equal(filter_removed(&res, "geo", 2), 2);
    assert_int_equal(filter_removed(&res, "cpu", -1), 1);
    char msg[256];
    engine_message(&res, &j, msg, sizeof(msg));
    assert_string_equal(msg, "2/5 nodes qualify: 1 insufficient cpu, 1 no location, 1 too far");

    /* two geo constraints: each counts what it removed */
    assert_int_equal(job_spec_add_geo(&j, 5, 48.249, 11.651, 5, false, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_int_equal(res.n_qualified, 1);
    assert_string_equal(res.candidates[0].node_id, "garching");
    assert_int_equal(filter_removed(&res, "geo", 2), 2);
    assert_int_equal(filter_removed(&res, "geo", 5), 1);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_geo_edge_cases(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_geo_node(c, "east", 4, 0, 179.9);
    add_geo_node(c, "west", 4, 0, -179.9);
    add_geo_node(c, "dateline", 4, 0, 180);
    add_geo_node(c, "greenwich", 4, 0, 0);
    add_geo_node(c, "north", 4, 90, 0);
    add_geo_node(c, "north2", 4, 90, 77); /* the same point */
    add_geo_node(c, "near-north", 4, 89.99, 100);
    add_geo_node(c, "south", 4, -90, 0);
    add_geo_node(c, "exact", 4, 48.1, 11.5);
    add_geo_node(c, "beside", 4, 48.1, 11.5000001);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, CS_TOPK_MAX);
    job_spec j;
    engine_result res;
    char buf[256];

    /* antimeridian: 179.9 and -179.9 are 22 km apart, not 40,000 */
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 0, 0, 179.95, 20, false, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "dateline,east,west");
    job_spec_clear(&j);
    /* -180 and 180 are one place: zero threshold keeps it */
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 0, 0, -180, 0, false, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "dateline");
    job_spec_clear(&j);

    /* poles: every longitude is the pole */
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 0, 90, -123, 0, false, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "north,north2");
    job_spec_clear(&j);
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 0, 90, 0, 1.2, false, NULL), 0); /* 0.01 deg = 1.11 km */
    rank_ok(ctx, c, &j, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "near-north,north,north2");
    assert_int_equal(res.reasons[REASON_TOO_FAR], 7);
    job_spec_clear(&j);

    /* zero threshold: only the exact location */
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 0, 48.1, 11.5, 0, false, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "exact");
    job_spec_clear(&j);
    /* a threshold past half the circumference takes every located node */
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 0, 48.1, 11.5, 1e6, false, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_int_equal(res.n_qualified, 10);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_geo_prefer_nearest(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    /* the farther, the roomier: most-free alone would pick "far" */
    add_geo_node(c, "near", 2, 48.14, 11.58);
    add_geo_node(c, "mid", 8, 48.25, 11.65);
    add_geo_node(c, "far", 32, 48.40, 11.75);
    add_geo_node(c, "near-big", 16, 48.14, 11.58); /* same place as near */
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 0, 48.137, 11.575, 50, false, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "far,near-big,mid,near");
    job_spec_clear(&j);

    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 0, 48.137, 11.575, 50, true, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    /* nearest first; at one distance the strategy decides (bigger first) */
    assert_string_equal(order(&res, buf, sizeof(buf)), "near-big,near,mid,far");
    double d = geo_haversine_km(48.137, 11.575, 48.25, 11.65);
    assert_true(fabs(res.candidates[2].score - 100.0 * (1 - d / 50)) < 1e-6);
    assert_true(res.candidates[0].score > 99 && res.candidates[0].score <= 100);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* A node whose latency table is given as "area=ms,area=ms" ("" none). */
static void add_latency_node(cluster *c, const char *id, double vcpus, const char *table)
{
    node_report r;
    char buf[128];
    node_base(&r, id, "container", "amd64", vcpus, 8192);
    snprintf(buf, sizeof(buf), "%s", table);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        *eq = 0;
        assert_int_equal(node_report_add_latency(&r, t, strtod(eq + 1, NULL), NULL), 0);
    }
    put(c, id, &r, NOW);
}

static void test_latency_filter(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_latency_node(c, "a", 2, "munich-1=5,berlin=30");
    add_latency_node(c, "b", 32, "munich-1=20");
    add_latency_node(c, "c", 4, "munich-1=20.0001");
    add_latency_node(c, "d", 4, "berlin=1");
    add_latency_node(c, "e", 4, "");
    add_latency_node(c, "zero", 1, "munich-1=0");
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    char buf[128];
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_latency(&j, 1, "munich-1", 20, true, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    /* at or below the threshold; lower latency ranks first */
    assert_string_equal(order(&res, buf, sizeof(buf)), "zero,a,b");
    assert_true(fabs(res.candidates[1].score - 75.0) < 1e-9); /* 5 of 20 ms */
    assert_int_equal(res.reasons[REASON_LATENCY], 1);
    assert_int_equal(res.reasons[REASON_NO_LATENCY], 2);
    assert_int_equal(filter_removed(&res, "latency", 1), 3);
    job_spec_clear(&j);

    /* prefer none: the strategy ranks */
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_latency(&j, 0, "munich-1", 20, false, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "b,a,zero");
    job_spec_clear(&j);

    /* zero threshold: exactly 0 ms only */
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_latency(&j, 0, "munich-1", 0, true, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "zero");
    job_spec_clear(&j);

    /* an area no node ever measured */
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_latency(&j, 0, "atlantis", 1000, true, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_int_equal(res.n_qualified, 0);
    assert_int_equal(res.reasons[REASON_NO_LATENCY], 6);
    char msg[128];
    engine_message(&res, &j, msg, sizeof(msg));
    assert_string_equal(msg, "0/6 nodes qualify: 6 no latency measured to the area");
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* A node with Vivaldi coordinates (dim 0: none). */
static void add_viv_node(cluster *c, const char *id, const double *v, size_t dim, double height)
{
    node_report r;
    node_base(&r, id, "container", "amd64", 8, 8192);
    if (dim)
        assert_int_equal(node_report_set_vivaldi(&r, v, dim, height, NULL), 0);
    put(c, id, &r, NOW);
}

static void place_on(cluster *c, const char *job, uint32_t inst, const char *node)
{
    reservation_view rv;
    cs_error err;
    memset(&rv, 0, sizeof(rv));
    snprintf(rv.job_id, sizeof(rv.job_id), "%s", job);
    rv.instance = inst;
    snprintf(rv.node_id, sizeof(rv.node_id), "%s", node);
    rv.cpu_milli = 100;
    rv.memory_mb = 10;
    rv.at = NOW;
    assert_int_equal(cluster_restore(c, &rv, &err), 0);
}

static void test_connectivity_filter(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_viv_node(c, "t", (double[]){0, 0}, 2, 1);
    add_viv_node(c, "n1", (double[]){3, 4}, 2, 0.5);   /* 5 + 0.5 + 1 = 6.5 ms to t */
    add_viv_node(c, "n2", (double[]){6, 8}, 2, 0);     /* 10 + 0 + 1 = 11 ms */
    add_viv_node(c, "n3d", (double[]){0, 0, 3}, 3, 0); /* dims differ: 3 + 0 + 1 = 4 ms */
    add_viv_node(c, "none", NULL, 0, 0);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    char buf[128];

    /* nothing of the target runs: every node is refused, with that reason */
    job_make(&j, "web", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_connectivity(&j, 0, "db", 10, true, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_int_equal(res.n_qualified, 0);
    assert_int_equal(res.reasons[REASON_TARGET_NOT_RUNNING], 5);

    place_on(c, "db", 0, "t");
    rank_ok(ctx, c, &j, &res);
    assert_string_equal(order(&res, buf, sizeof(buf)), "t,n3d,n1");
    assert_int_equal(res.reasons[REASON_CONNECTIVITY], 1);
    assert_int_equal(res.reasons[REASON_NO_COORDINATES], 1);

    /* within the bound of every instance of the target */
    place_on(c, "db", 1, "n2");
    rank_ok(ctx, c, &j, &res); /* n1: 6.5 to t, 5.5 to n2; t: 11 to n2 */
    assert_string_equal(order(&res, buf, sizeof(buf)), "n1");
    job_spec_clear(&j);
    job_make(&j, "web", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_connectivity(&j, 0, "db", 6, true, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_int_equal(res.n_qualified, 0);
    job_spec_clear(&j);

    /* a target on a node without coordinates cannot be estimated */
    place_on(c, "cache", 0, "none");
    job_make(&j, "web", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_connectivity(&j, 0, "cache", 100, true, NULL), 0);
    rank_ok(ctx, c, &j, &res);
    assert_int_equal(res.reasons[REASON_TARGET_NO_COORDINATES], 5);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

/* ---- anti-affinity ---- */

static const char *place_one(engine_ctx *ctx, cluster *c, job_spec *j, uint32_t inst,
                             engine_result *res)
{
    cs_error err;
    job_spec_set_instance(j, inst, NULL);
    assert_int_equal(engine_place(ctx, c, j, NOW, res, &err), 0);
    assert_true(res->placed);
    return res->node_id;
}

static void test_spread_replicas_over_nodes(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "big", 64, 65536, NOW);
    add_node(c, "m1", 8, 8192, NOW);
    add_node(c, "m2", 8, 8192, NOW);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "rep", 0, "container", 1, 512);
    assert_string_equal(place_one(ctx, c, &j, 0, &res), "big");
    assert_false(res.spread_ran);
    assert_string_equal(place_one(ctx, c, &j, 1, &res), "m1");
    assert_true(res.spread_ran);
    assert_int_equal(res.reasons[REASON_REPLICA_NODE], 1);
    assert_int_equal(res.n_qualified, 2);
    assert_int_equal(filter_removed(&res, "spread", -1), 1);
    assert_string_equal(place_one(ctx, c, &j, 2, &res), "m2");
    /* every node runs one: back to the strategy, nothing removed */
    assert_string_equal(place_one(ctx, c, &j, 3, &res), "big");
    assert_int_equal(res.reasons[REASON_REPLICA_NODE], 0);
    assert_int_equal(res.n_qualified, 3);
    /* other jobs are not affected */
    job_spec_clear(&j);
    job_make(&j, "other", 0, "container", 1, 512);
    assert_string_equal(place_one(ctx, c, &j, 0, &res), "big");
    job_spec_clear(&j);

    /* spread_by none: the strategy alone */
    job_make(&j, "pack", 0, "container", 1, 512);
    assert_int_equal(job_spec_set_spread(&j, "none", NULL), 0);
    for (uint32_t i = 0; i < 3; i++)
        assert_string_equal(place_one(ctx, c, &j, i, &res), "big");
    assert_false(res.spread_ran);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void add_zone_node(cluster *c, const char *id, double vcpus, const char *zone)
{
    node_report r;
    node_base(&r, id, "container", "amd64", vcpus, 65536);
    if (zone)
        assert_int_equal(node_report_add_label(&r, "zone", zone, NULL), 0);
    assert_int_equal(node_report_add_label(&r, "rack", id, NULL), 0);
    put(c, id, &r, NOW);
}

static void test_spread_by_label(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_zone_node(c, "a1", 64, "a");
    add_zone_node(c, "a2", 60, "a");
    add_zone_node(c, "b1", 32, "b");
    add_zone_node(c, "nolabel", 16, NULL);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 0);
    job_spec j;
    engine_result res;
    job_make(&j, "z", 0, "container", 1, 512);
    assert_int_equal(job_spec_set_spread(&j, "zone", NULL), 0);
    assert_string_equal(place_one(ctx, c, &j, 0, &res), "a1");
    /* zone a is taken: the best node of another zone, a2 is left out */
    assert_string_equal(place_one(ctx, c, &j, 1, &res), "b1");
    assert_int_equal(res.reasons[REASON_REPLICA_LABEL], 2);
    /* nodes without the label form a group of their own */
    assert_string_equal(place_one(ctx, c, &j, 2, &res), "nolabel");
    /* every zone runs one: a node free of the job next */
    assert_string_equal(place_one(ctx, c, &j, 3, &res), "a2");
    assert_int_equal(res.reasons[REASON_REPLICA_NODE], 3);
    assert_int_equal(res.reasons[REASON_REPLICA_LABEL], 0);
    char msg[256];
    engine_message(&res, &j, msg, sizeof(msg));
    assert_string_equal(msg, "1/4 nodes qualify: 3 already running this job");
    assert_string_equal(place_one(ctx, c, &j, 4, &res), "a1");
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

struct spread_placer {
    cluster *c;
    uint32_t first;
    int errors;
};

static void *spread_place_thread(void *arg)
{
    struct spread_placer *p = arg;
    engine_opts o;
    engine_opts_default(&o);
    engine_ctx *ctx = engine_ctx_new(&o);
    for (uint32_t i = p->first; i < p->first + 4; i++) {
        job_spec j;
        engine_result res;
        cs_error err;
        job_spec_init(&j);
        int rc = job_spec_set_id(&j, "par", &err) | job_spec_set_instance(&j, i, &err) |
                 job_spec_set_virt(&j, "container", &err) | job_spec_set_vcpus(&j, 1, &err);
        if (rc || engine_place(ctx, p->c, &j, NOW, &res, &err) || !res.placed)
            p->errors++;
        job_spec_clear(&j);
    }
    engine_ctx_free(ctx);
    return NULL;
}

/* Instances placed at the same time by several threads still land on
 * different nodes: the commit re-checks the spread. */
static void test_spread_holds_under_concurrency(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        cluster *c = cluster_new(TTL);
        char id[16];
        for (int i = 0; i < 16; i++) {
            snprintf(id, sizeof(id), "n%02d", i);
            add_node(c, id, 64, 65536, NOW); /* equal: every thread ranks alike */
        }
        struct spread_placer p[4];
        pthread_t th[4];
        for (int t = 0; t < 4; t++) {
            p[t] = (struct spread_placer){c, (uint32_t)t * 4, 0};
            assert_int_equal(pthread_create(&th[t], NULL, spread_place_thread, &p[t]), 0);
        }
        for (int t = 0; t < 4; t++) {
            pthread_join(th[t], NULL);
            assert_int_equal(p[t].errors, 0);
        }
        reservation_view rv[16];
        assert_int_equal(cluster_job_placements(c, "par", rv, 16), 16);
        for (int a = 0; a < 16; a++)
            for (int b = a + 1; b < 16; b++)
                assert_string_not_equal(rv[a].node_id, rv[b].node_id);
        cluster_free(c);
    }
}

/* ---- explanations ---- */

static void test_explain(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_geo_node(c, "ok-big", 8, 48.14, 11.58);
    add_geo_node(c, "ok-small", 2, 48.14, 11.58);
    add_geo_node(c, "far", 8, 52.52, 13.405);
    add_geo_node(c, "tiny", 0.5, 48.14, 11.58);
    add_geo_node(c, "no-loc", 8, NAN, NAN);
    node_report r;
    node_base(&r, "dead", "container", "amd64", 8, 8192);
    put(c, "dead", &r, NOW - 100);
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 1);
    job_spec j;
    engine_result res;
    engine_node_explain *x = NULL;
    cs_error err;
    char text[256];
    job_make(&j, "j", 0, "container", 1, 512);
    assert_int_equal(job_spec_add_geo(&j, 3, 48.137, 11.575, 100, false, NULL), 0);
    assert_int_equal(engine_explain(ctx, c, &j, NOW, &res, &x, &err), 0);
    assert_int_equal(res.n_nodes, 6);
    assert_int_equal(res.n_qualified, 2);
    assert_int_equal(res.n_candidates, 1); /* top_k still applies to the candidates */
    assert_string_equal(res.candidates[0].node_id, "ok-big");
    /* qualified best first, then the rest by id */
    const char *ids[] = {"ok-big", "ok-small", "dead", "far", "no-loc", "tiny"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(x[i].node_id, ids[i]);
    assert_true(x[0].qualified && x[0].rank == 1 && x[0].score > x[1].score);
    assert_true(x[1].qualified && x[1].rank == 2);
    assert_int_equal(x[2].reason, REASON_INACTIVE);
    assert_true(x[2].value == 100 && x[2].limit == TTL);
    assert_int_equal(x[3].reason, REASON_TOO_FAR);
    assert_int_equal(x[3].constraint, 3);
    assert_true(x[3].value > 400 && x[3].limit == 100);
    engine_explain_text(&x[3], &j, text, sizeof(text));
    assert_non_null(strstr(text, "km from 48.137,11.575, beyond the threshold of 100 km"));
    assert_int_equal(x[4].reason, REASON_NO_LOCATION);
    assert_int_equal(x[5].reason, REASON_CPU);
    assert_true(x[5].value == 0.5 && x[5].limit == 1);
    engine_explain_text(&x[5], &j, text, sizeof(text));
    assert_string_equal(text, "0.500 vCPUs free, 1.000 requested");
    engine_explain_text(&x[0], &j, text, sizeof(text));
    assert_string_equal(strstr(text, "rank"), "rank 1");
    free(x);

    /* a placed instance is explained as if its reservation were released:
     * the node it fills exactly still qualifies */
    job_spec_clear(&j);
    job_make(&j, "fill", 1, "container", 8, 512);
    reservation_view rv;
    memset(&rv, 0, sizeof(rv));
    snprintf(rv.job_id, sizeof(rv.job_id), "fill");
    rv.instance = 1;
    snprintf(rv.node_id, sizeof(rv.node_id), "far");
    rv.cpu_milli = 8000;
    rv.memory_mb = 512;
    assert_int_equal(cluster_restore(c, &rv, &err), 0); /* far is full now */
    assert_int_equal(engine_explain(ctx, c, &j, NOW, &res, &x, &err), 0);
    bool seen = false;
    for (size_t i = 0; i < res.n_nodes; i++) {
        if (strcmp(x[i].node_id, "far") == 0) {
            seen = true;
            assert_true(x[i].holds_instance);
            assert_true(x[i].qualified);
        } else {
            assert_false(x[i].holds_instance);
        }
    }
    assert_true(seen);
    free(x);

    /* nothing qualifies, and an empty cluster */
    job_spec_set_vcpus(&j, 1000, NULL);
    assert_int_equal(engine_explain(ctx, c, &j, NOW, &res, &x, &err), 0);
    assert_int_equal(res.n_qualified, 0);
    assert_int_equal(res.n_candidates, 0);
    assert_false(x[0].qualified);
    free(x);
    cluster *empty = cluster_new(TTL);
    assert_int_equal(engine_explain(ctx, empty, &j, NOW, &res, &x, &err), 0);
    assert_int_equal(res.n_nodes, 0);
    free(x);
    cluster_free(empty);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_explain_texts(void **state)
{
    (void)state;
    job_spec j;
    job_make(&j, "j", 0, "unikernel", 1, 512);
    assert_int_equal(job_spec_add_latency(&j, 0, "munich-1", 20, true, NULL), 0);
    assert_int_equal(job_spec_add_connectivity(&j, 1, "db", 5, true, NULL), 0);
    assert_int_equal(job_spec_set_spread(&j, "zone", NULL), 0);
    struct {
        engine_reason r;
        int cons;
        double v, l;
        const char *want;
    } cases[] = {
        {REASON_TECHNOLOGY, -1, NAN, NAN, "does not offer unikernel"},
        {REASON_MEMORY, -1, 100, 512, "100 MB free, 512 MB requested"},
        {REASON_GPU, -1, 0, 1, "0 GPUs free, 1 requested"},
        {REASON_NO_LATENCY, 0, NAN, NAN, "no latency measured to area 'munich-1'"},
        {REASON_LATENCY, 0, 25.5, 20, "25.5 ms to area 'munich-1', above the threshold of 20 ms"},
        {REASON_TARGET_NOT_RUNNING, 1, NAN, NAN, "no instance of job 'db' is placed"},
        {REASON_CONNECTIVITY, 1, 7.25, 5,
         "estimated 7.250 ms to a node running job 'db', above the bound of 5 ms"},
        {REASON_NO_COORDINATES, 1, NAN, NAN, "reports no Vivaldi coordinates"},
        {REASON_REPLICA_NODE, -1, NAN, NAN,
         "already runs an instance of this job, and other nodes are free of it"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        engine_node_explain x;
        memset(&x, 0, sizeof(x));
        x.reason = cases[i].r;
        x.constraint = cases[i].cons;
        x.value = cases[i].v;
        x.limit = cases[i].l;
        char text[256];
        engine_explain_text(&x, &j, text, sizeof(text));
        assert_string_equal(text, cases[i].want);
    }
    engine_node_explain x;
    memset(&x, 0, sizeof(x));
    x.reason = REASON_REPLICA_LABEL;
    snprintf(x.label, sizeof(x.label), "eu-1");
    char text[256];
    engine_explain_text(&x, &j, text, sizeof(text));
    assert_string_equal(text, "zone 'eu-1' already runs an instance of this job, and other "
                              "zone values are free of it");
    job_spec_clear(&j);
}

/* Jobs without edge constraints rank exactly as before, edge data or not. */
static void test_edge_data_does_not_change_plain_jobs(void **state)
{
    (void)state;
    cluster *a = cluster_new(TTL), *b = cluster_new(TTL);
    char id[16];
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "n%02d", i);
        add_node(a, id, 1 + i % 7, 1024 * (1 + i % 5), NOW);
        node_report r;
        node_base(&r, id, "container", "amd64", 1 + i % 7, 1024 * (1 + i % 5));
        node_report_set_location(&r, i, i, NULL);
        node_report_add_latency(&r, "x", i, NULL);
        node_report_add_label(&r, "zone", i % 2 ? "a" : "b", NULL);
        put(b, id, &r, NOW);
    }
    engine_ctx *ctx = ctx_new(STRATEGY_DEFAULT, 20);
    job_spec j;
    engine_result ra, rb;
    char oa[512], ob[512];
    job_make(&j, "j", 0, "container", 1, 512);
    rank(ctx, a, &j, NOW, &ra);
    order(&ra, oa, sizeof(oa));
    rank(ctx, b, &j, NOW, &rb);
    order(&rb, ob, sizeof(ob));
    assert_string_equal(oa, ob);
    assert_null(rb.cons_removed);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(a);
    cluster_free(b);
}

int main(void)

{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts_default),
        cmocka_unit_test(test_reason_keys),
        cmocka_unit_test(test_filter_inactive),
        cmocka_unit_test(test_filter_technology),
        cmocka_unit_test(test_filter_docker_is_container),
        cmocka_unit_test(test_filter_arch),
        cmocka_unit_test(test_filter_direct),
        cmocka_unit_test(test_filter_direct_empty_list),
        cmocka_unit_test(test_filter_addons),
        cmocka_unit_test(test_filter_csi),
        cmocka_unit_test(test_filter_gpu),
        cmocka_unit_test(test_filter_cpu),
        cmocka_unit_test(test_filter_memory),
        cmocka_unit_test(test_filter_uses_the_right_usage_figure),
        cmocka_unit_test(test_first_failing_filter_counts),
        cmocka_unit_test(test_empty_cluster),
        cmocka_unit_test(test_invalid_job_is_an_error),
        cmocka_unit_test(test_message_example),
        cmocka_unit_test(test_message_all_reasons_most_frequent_first),
        cmocka_unit_test(test_message_ties_follow_filter_order),
        cmocka_unit_test(test_message_when_some_qualify),
        cmocka_unit_test(test_most_free_prefers_bigger_idle_node),
        cmocka_unit_test(test_most_free_counts_usage_and_reservations),
        cmocka_unit_test(test_most_free_weights),
        cmocka_unit_test(test_strategies_disagree),
        cmocka_unit_test(test_job_strategy_overrides_default),
        cmocka_unit_test(test_best_fit_packs),
        cmocka_unit_test(test_spread_fills_evenly),
        cmocka_unit_test(test_tie_break_by_id),
        cmocka_unit_test(test_tie_break_by_id_ranks),
        cmocka_unit_test(test_no_ties_no_id_ranks),
        cmocka_unit_test(test_top_k_matches_full_ranking),
        cmocka_unit_test(test_top_k_defaults),
        cmocka_unit_test(test_rank_reserves_nothing),
        cmocka_unit_test(test_place_takes_the_best_and_records_it),
        cmocka_unit_test(test_no_double_booking),
        cmocka_unit_test(test_release_makes_room),
        cmocka_unit_test(test_gpu_reservations),
        cmocka_unit_test(test_fractional_vcpus_fit_exactly),
        cmocka_unit_test(test_place_skips_inactive),
        cmocka_unit_test(test_extreme_sizes),
        cmocka_unit_test(test_reason_keys_edge),
        cmocka_unit_test(test_geo_distances),
        cmocka_unit_test(test_geo_filter),
        cmocka_unit_test(test_geo_edge_cases),
        cmocka_unit_test(test_geo_prefer_nearest),
        cmocka_unit_test(test_latency_filter),
        cmocka_unit_test(test_connectivity_filter),
        cmocka_unit_test(test_spread_replicas_over_nodes),
        cmocka_unit_test(test_spread_by_label),
        cmocka_unit_test(test_spread_holds_under_concurrency),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_explain_texts),
        cmocka_unit_test(test_edge_data_does_not_change_plain_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
