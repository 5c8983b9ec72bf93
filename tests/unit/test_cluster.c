/* test_cluster.c - the cluster table: registration and partial reports,
 * removal, lookup, free capacity (capacity minus reservations, bounded by
 * reported usage), release, restore, stale placements, idempotent place. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "engine.h"
#include "job.h"
#include "node.h"
#include "virt.h"

#define NOW 1000.0
#define TTL 15.0

/* A first report: host = id, container runtime, amd64, capacity. */
static void base_report(node_report *r, const char *host, double vcpus, double mem)
{
    node_report_init(r);
    assert_int_equal(node_report_set_host(r, host, NULL), 0);
    assert_int_equal(node_report_add_virt(r, "container", NULL), 0);
    assert_int_equal(node_report_set_arch(r, "amd64", NULL), 0);
    assert_int_equal(node_report_set_vcpus(r, vcpus, NULL), 0);
    assert_int_equal(node_report_set_memory(r, mem, NULL), 0);
}

static void add_node(cluster *c, const char *id, double vcpus, double mem, double now)
{
    node_report r;
    cs_error err;
    base_report(&r, id, vcpus, mem);
    assert_int_equal(cluster_report(c, id, &r, now, &err), 1);
    node_report_clear(&r);
}

/* A usage-only report (what a heartbeat with figures carries). */
static void report_usage(cluster *c, const char *id, double cpu_pct, double mem_pct, double now)
{
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_cpu_percent(&r, cpu_pct, NULL), 0);
    assert_int_equal(node_report_set_memory_percent(&r, mem_pct, NULL), 0);
    assert_int_equal(cluster_report(c, id, &r, now, &err), 0);
    node_report_clear(&r);
}

static void restore(cluster *c, const char *job, uint32_t inst, const char *node, double vcpus,
                    int64_t mem, double at)
{
    reservation_view rv;
    cs_error err;
    memset(&rv, 0, sizeof(rv));
    snprintf(rv.job_id, sizeof(rv.job_id), "%s", job);
    rv.instance = inst;
    snprintf(rv.node_id, sizeof(rv.node_id), "%s", node);
    rv.cpu_milli = cs_milli_ceil(vcpus);
    rv.memory_mb = mem;
    rv.at = at;
    assert_int_equal(cluster_restore(c, &rv, &err), 0);
}

static node_view get(cluster *c, const char *id, double now)
{
    node_view v;
    assert_int_equal(cluster_get(c, id, now, &v), 0);
    return v;
}

/* ---- registration and reports ---- */

static void test_new_then_update(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    cs_error err;
    assert_true(cluster_ttl(c) == TTL);
    assert_int_equal(cluster_size(c), 0);
    base_report(&r, "h1", 4, 4096);
    assert_int_equal(cluster_report(c, "n1", &r, NOW, &err), 1);
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 1, &err), 0);
    assert_int_equal(cluster_size(c), 1);
    assert_int_equal(cluster_report(c, "n2", &r, NOW, &err), 1);
    assert_int_equal(cluster_size(c), 2);
    node_report_clear(&r);
    cluster_free(c);
}

static void test_get_reports_fields(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    cs_error err;
    base_report(&r, "worker-1", 4, 4096);
    assert_int_equal(node_report_add_virt(&r, "unikernel", NULL), 0);
    assert_int_equal(node_report_set_gpus(&r, 2, NULL), 0);
    assert_int_equal(node_report_set_location(&r, 48.1, 11.6, NULL), 0);
    assert_int_equal(strlist_add(&r.addons, "gpu-driver", CS_NAME_MAX, "addons", NULL), 0);
    assert_int_equal(strlist_add(&r.addons, "psql", CS_NAME_MAX, "addons", NULL), 0);
    r.set |= NODE_F_ADDONS;
    assert_int_equal(strlist_add(&r.csi, "csi.local", CS_NAME_MAX, "csi", NULL), 0);
    r.set |= NODE_F_CSI;
    assert_int_equal(cluster_report(c, "n1", &r, NOW, &err), 1);
    node_report_clear(&r);

    node_view v = get(c, "n1", NOW + 1);
    assert_string_equal(v.id, "n1");
    assert_string_equal(v.host, "worker-1");
    assert_string_equal(v.arch, "amd64");
    assert_int_equal(v.virt, VIRT_CONTAINER | VIRT_UNIKERNEL);
    assert_int_equal(v.vcpus_milli, 4000);
    assert_int_equal(v.memory_mb, 4096);
    assert_int_equal(v.gpus, 2);
    assert_true(v.has_location && fabs(v.lat - 48.1) < 1e-9 && fabs(v.lon - 11.6) < 1e-9);
    assert_false(v.has_usage);
    assert_true(v.last_report == NOW);
    assert_true(v.active);
    assert_int_equal(v.reserved_cpu_milli, 0);
    assert_int_equal(v.reserved_memory_mb, 0);
    assert_int_equal(v.reserved_gpus, 0);
    assert_int_equal(v.n_reservations, 0);
    assert_int_equal(v.free_cpu_milli, 4000);
    assert_int_equal(v.free_memory_mb, 4096);
    assert_int_equal(v.free_gpus, 2);
    assert_int_equal(v.n_addons, 2);
    int found = 0;
    for (uint32_t i = 0; i < v.n_addons; i++)
        found += !strcmp(v.addons[i], "gpu-driver") + !strcmp(v.addons[i], "psql");
    assert_int_equal(found, 2);
    assert_int_equal(v.n_csi, 1);
    assert_string_equal(v.csi[0], "csi.local");
    cluster_free(c);
}

static void test_first_report_needs_virt_vcpus_memory(void **state)
{
    (void)state;
    const uint32_t need[] = {NODE_F_VIRT, NODE_F_VCPUS, NODE_F_MEMORY};
    cluster *c = cluster_new(TTL);
    for (size_t i = 0; i < 3; i++) {
        node_report r;
        cs_error err;
        base_report(&r, "h", 4, 4096);
        r.set &= ~need[i];
        memset(&err, 0, sizeof(err));
        assert_int_equal(cluster_report(c, "n1", &r, NOW, &err), -1);
        assert_true(err.field[0] != '\0');
        assert_int_equal(cluster_size(c), 0);
        node_report_clear(&r);
    }
    /* A heartbeat for a node never registered is not a registration. */
    {
        node_report r;
        cs_error err;
        node_report_init(&r);
        assert_int_equal(node_report_set_cpu_percent(&r, 10, NULL), 0);
        assert_int_equal(cluster_report(c, "ghost", &r, NOW, &err), -1);
        node_report_clear(&r);
    }
    assert_int_equal(cluster_size(c), 0);
    cluster_free(c);
}

static void test_report_rejects_bad_id(void **state)
{
    (void)state;
    char longid[CS_ID_MAX + 2];
    memset(longid, 'i', CS_ID_MAX + 1);
    longid[CS_ID_MAX + 1] = '\0';
    const char *bad[] = {"", "a/b", longid, NULL};
    cluster *c = cluster_new(TTL);
    node_report r;
    base_report(&r, "h", 4, 4096);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cs_error err;
        memset(&err, 0, sizeof(err));
        assert_int_equal(cluster_report(c, bad[i], &r, NOW, &err), -1);
        assert_true(err.field[0] != '\0');
    }
    assert_int_equal(cluster_size(c), 0);
    node_report_clear(&r);
    cluster_free(c);
}

static void test_partial_update_changes_only_given_fields(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);

    report_usage(c, "n1", 25, 50, NOW + 5);
    node_view v = get(c, "n1", NOW + 5);
    assert_string_equal(v.host, "n1");
    assert_string_equal(v.arch, "amd64");
    assert_int_equal(v.virt, VIRT_CONTAINER);
    assert_int_equal(v.vcpus_milli, 4000);
    assert_int_equal(v.memory_mb, 4096);
    assert_true(v.has_usage);
    assert_true(v.cpu_percent == 25 && v.memory_percent == 50);
    assert_true(v.last_report == NOW + 5);

    /* Capacity alone: usage and host stay. */
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_vcpus(&r, 8, NULL), 0);
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 6, &err), 0);
    node_report_clear(&r);
    v = get(c, "n1", NOW + 6);
    assert_int_equal(v.vcpus_milli, 8000);
    assert_int_equal(v.memory_mb, 4096);
    assert_string_equal(v.host, "n1");
    assert_true(v.has_usage && v.cpu_percent == 25);

    /* A reported runtime list replaces the old one (the worker sends all). */
    node_report_init(&r);
    assert_int_equal(node_report_add_virt(&r, "unikernel", NULL), 0);
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 7, &err), 0);
    node_report_clear(&r);
    v = get(c, "n1", NOW + 7);
    assert_int_equal(v.virt, VIRT_UNIKERNEL);
    cluster_free(c);
}

/* Past the cluster-wide cap of distinct addon names a report fails with a
 * clear error, and fails whole: nothing else in it is applied. */
static void test_report_past_name_cap_fails_whole(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    cs_error err;
    char name[16];
    base_report(&r, "n1", 4, 4096);
    for (int i = 0; i < CS_DISTINCT_NAMES; i++) {
        snprintf(name, sizeof(name), "addon%d", i);
        assert_int_equal(strlist_add(&r.addons, name, CS_NAME_MAX, "addons", NULL), 0);
    }
    r.set |= NODE_F_ADDONS;
    assert_int_equal(cluster_report(c, "n1", &r, NOW, &err), 1);
    node_report_clear(&r);
    assert_int_equal(get(c, "n1", NOW).n_addons, CS_DISTINCT_NAMES);

    node_report_init(&r);
    assert_int_equal(node_report_set_vcpus(&r, 8, NULL), 0);
    assert_int_equal(strlist_add(&r.addons, "one-more", CS_NAME_MAX, "addons", NULL), 0);
    r.set |= NODE_F_ADDONS;
    memset(&err, 0, sizeof(err));
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 5, &err), -1);
    assert_true(err.field[0] != '\0');
    node_report_clear(&r);
    node_view v = get(c, "n1", NOW + 5);
    assert_int_equal(v.vcpus_milli, 4000);
    assert_int_equal(v.n_addons, CS_DISTINCT_NAMES);
    assert_true(v.last_report == NOW);
    cluster_free(c);
}

static void test_active_follows_ttl(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    assert_true(get(c, "n1", NOW).active);
    assert_true(get(c, "n1", NOW + TTL - 0.5).active);
    assert_false(get(c, "n1", NOW + TTL + 0.5).active);
    /* An empty report is a heartbeat: it refreshes the time only. */
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 20, &err), 0);
    node_report_clear(&r);
    node_view v = get(c, "n1", NOW + 21);
    assert_true(v.active);
    assert_true(v.last_report == NOW + 20);
    assert_int_equal(v.vcpus_milli, 4000);
    cluster_free(c);
}

static void test_get_unknown(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_view v;
    assert_int_equal(cluster_get(c, "nope", NOW, &v), -1);
    add_node(c, "n1", 4, 4096, NOW);
    assert_int_equal(cluster_get(c, "n2", NOW, &v), -1);
    cluster_free(c);
}

static void test_remove(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    add_node(c, "n2", 4, 4096, NOW);
    restore(c, "j", 0, "n1", 1, 512, NOW);
    assert_int_equal(cluster_remove(c, "n1", NULL, NULL), 0);
    assert_int_equal(cluster_size(c), 1);
    node_view v;
    assert_int_equal(cluster_get(c, "n1", NOW, &v), -1);
    assert_int_equal(cluster_remove(c, "n1", NULL, NULL), -1);
    assert_int_equal(cluster_remove(c, "never", NULL, NULL), -1);
    /* Its reservations went with it. */
    reservation_view rv;
    assert_int_equal(cluster_placement(c, "j", 0, &rv), -1);
    assert_int_equal(cluster_release(c, "j", 0), -1);
    /* Registering the id again starts from a clean slate. */
    add_node(c, "n1", 4, 4096, NOW + 1);
    v = get(c, "n1", NOW + 1);
    assert_int_equal(v.reserved_cpu_milli, 0);
    /* The caller can get back what was dropped, to place it again. */
    restore(c, "j", 1, "n1", 1, 512, NOW + 1);
    restore(c, "j", 2, "n2", 1, 512, NOW + 1);
    restore(c, "k", 0, "n1", 2, 256, NOW + 1);
    reservation_view *dropped = NULL;
    size_t nd = 99;
    assert_int_equal(cluster_remove(c, "n1", &dropped, &nd), 0);
    assert_int_equal(nd, 2);
    assert_non_null(dropped);
    unsigned seen = 0;
    for (size_t i = 0; i < nd; i++) {
        assert_string_equal(dropped[i].node_id, "n1");
        if (strcmp(dropped[i].job_id, "j") == 0 && dropped[i].instance == 1)
            seen |= 1;
        if (strcmp(dropped[i].job_id, "k") == 0 && dropped[i].instance == 0 &&
            dropped[i].cpu_milli == 2000)
            seen |= 2;
    }
    assert_int_equal(seen, 3);
    free(dropped);
    assert_int_equal(cluster_placement(c, "j", 2, &rv), 0);
    assert_int_equal(cluster_remove(c, "n2", &dropped, &nd), 0);
    assert_int_equal(nd, 1);
    free(dropped);
    add_node(c, "n3", 4, 4096, NOW + 1);
    assert_int_equal(cluster_remove(c, "n3", &dropped, &nd), 0);
    assert_int_equal(nd, 0);
    assert_null(dropped);
    add_node(c, "n1", 4, 4096, NOW + 1);
    assert_int_equal(v.n_reservations, 0);
    assert_int_equal(cluster_size(c), 1);
    cluster_free(c);
}

struct visit {
    int n;
    int stop_after;
    char seen[8][CS_ID_MAX + 1];
};

static int visit_fn(const node_view *v, void *ud)
{
    struct visit *s = ud;
    snprintf(s->seen[s->n], sizeof(s->seen[0]), "%s", v->id);
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static void test_foreach(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "a", 1, 1024, NOW);
    add_node(c, "b", 2, 1024, NOW);
    add_node(c, "c", 3, 1024, NOW);
    struct visit s = {0};
    cluster_foreach(c, NOW, visit_fn, &s);
    assert_int_equal(s.n, 3);
    int mask = 0;
    for (int i = 0; i < s.n; i++)
        mask |= 1 << (s.seen[i][0] - 'a');
    assert_int_equal(mask, 7); /* each node once */

    struct visit early = {.stop_after = 2};
    cluster_foreach(c, NOW, visit_fn, &early);
    assert_int_equal(early.n, 2);

    cluster *empty = cluster_new(TTL);
    struct visit none = {0};
    cluster_foreach(empty, NOW, visit_fn, &none);
    assert_int_equal(none.n, 0);
    cluster_free(empty);
    cluster_free(c);
}

/* ---- free capacity and reservations ---- */

static void test_free_is_capacity_minus_reservations(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    restore(c, "j1", 0, "n1", 1, 512, NOW + 1);
    restore(c, "j1", 1, "n1", 1.5, 1024, NOW + 1);
    node_view v = get(c, "n1", NOW + 2);
    assert_int_equal(v.reserved_cpu_milli, 2500);
    assert_int_equal(v.reserved_memory_mb, 1536);
    assert_int_equal(v.n_reservations, 2);
    assert_int_equal(v.free_cpu_milli, 1500);
    assert_int_equal(v.free_memory_mb, 2560);
    cluster_free(c);
}

/* Usage rule: free cpu = min(cap - reserved, cap * (1 - cpu%) - reservations
 * made after the usage report); the usage already includes older ones. */
static void test_usage_bounds_free_cpu(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    report_usage(c, "n1", 50, 0, NOW);
    node_view v = get(c, "n1", NOW);
    assert_int_equal(v.free_cpu_milli, 2000); /* busy with work not ours */

    restore(c, "j", 0, "n1", 1, 0, NOW + 1); /* after the report */
    v = get(c, "n1", NOW + 1);
    assert_int_equal(v.free_cpu_milli, 1000); /* min(4000-1000, 2000-1000) */

    /* The next report already counts the job as running: not twice. */
    report_usage(c, "n1", 75, 0, NOW + 2);
    v = get(c, "n1", NOW + 2);
    assert_int_equal(v.free_cpu_milli, 1000); /* min(3000, 4000*0.25) */

    /* Idle again: the reservation still binds. */
    report_usage(c, "n1", 10, 0, NOW + 3);
    v = get(c, "n1", NOW + 3);
    assert_int_equal(v.free_cpu_milli, 3000); /* min(3000, 3600) */
    cluster_free(c);
}

static void test_usage_bounds_free_memory(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    report_usage(c, "n1", 0, 75, NOW);
    assert_int_equal(get(c, "n1", NOW).free_memory_mb, 1024);
    restore(c, "j", 0, "n1", 0, 512, NOW + 1);
    assert_int_equal(get(c, "n1", NOW + 1).free_memory_mb, 512);
    report_usage(c, "n1", 0, 25, NOW + 2);
    assert_int_equal(get(c, "n1", NOW + 2).free_memory_mb, 3072); /* min(3584, 3072) */
    cluster_free(c);
}

/* A reservation restored with a time before the usage report is already in
 * the reported usage, so only the capacity bound charges it. */
static void test_usage_ignores_older_reservations(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW - 10);
    restore(c, "j", 0, "n1", 1, 1024, NOW - 5);
    report_usage(c, "n1", 50, 50, NOW);
    node_view v = get(c, "n1", NOW);
    assert_int_equal(v.free_cpu_milli, 2000); /* min(3000, 2000 - 0) */
    assert_int_equal(v.free_memory_mb, 2048); /* min(3072, 2048 - 0) */
    cluster_free(c);
}

/* A heartbeat without usage fields does not make the old usage figure new:
 * reservations made after the usage report must still be subtracted, or
 * the node looks freer than it is until the next real report. */
static void test_heartbeat_without_usage_keeps_usage_time(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    report_usage(c, "n1", 50, 0, NOW);
    restore(c, "j", 0, "n1", 1, 0, NOW + 1);
    node_report r;
    cs_error err;
    base_report(&r, "n1", 4, 4096); /* capacity, no usage */
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 2, &err), 0);
    node_report_clear(&r);
    node_view v = get(c, "n1", NOW + 2);
    assert_true(v.has_usage);
    assert_int_equal(v.free_cpu_milli, 1000);
    cluster_free(c);
}

/* Each usage figure bounds only its own resource: a report that carries
 * memory_percent alone says nothing new about CPU, so CPU reserved since the
 * last cpu_percent must still be subtracted (and the reverse). */
static void test_single_usage_figure_keeps_other_reservations(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    report_usage(c, "n1", 50, 50, NOW);
    restore(c, "j", 0, "n1", 1, 1024, NOW + 1); /* after the report */
    node_view v = get(c, "n1", NOW + 1);
    assert_int_equal(v.free_cpu_milli, 1000);
    assert_int_equal(v.free_memory_mb, 1024);

    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_memory_percent(&r, 75, NULL), 0);
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 2, &err), 0);
    node_report_clear(&r);
    v = get(c, "n1", NOW + 2);
    assert_int_equal(v.free_memory_mb, 1024); /* min(3072, 4096 * 0.25) */
    assert_int_equal(v.free_cpu_milli, 1000); /* still min(3000, 2000 - 1000) */

    restore(c, "j", 1, "n1", 0.5, 512, NOW + 3);
    node_report_init(&r);
    assert_int_equal(node_report_set_cpu_percent(&r, 50, NULL), 0);
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 4, &err), 0);
    node_report_clear(&r);
    v = get(c, "n1", NOW + 4);
    assert_int_equal(v.free_cpu_milli, 2000); /* min(2500, 2000) */
    assert_int_equal(v.free_memory_mb, 512);  /* min(2560, 1024 - 512) */
    cluster_free(c);
}

/* A touch (a report repeating the last one but for its time) leaves the
 * node as the full report would: the same free capacity with or without a
 * usage count restarted, and the time moved on. */
static void test_touch_matches_report(void **state)
{
    (void)state;
    cluster *a = cluster_new(TTL), *b = cluster_new(TTL);
    cluster *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        add_node(both[i], "n1", 4, 4096, NOW);
        report_usage(both[i], "n1", 50, 50, NOW);
        restore(both[i], "j", 0, "n1", 1, 1024, NOW + 1);
    }
    /* Without figures: reservations since the last figure still count. */
    node_report r;
    cs_error err;
    base_report(&r, "n1", 4, 4096);
    assert_int_equal(cluster_report(a, "n1", &r, NOW + 2, &err), 0);
    node_report_clear(&r);
    assert_int_equal(cluster_touch(b, "n1", NOW + 2, false, false), 0);
    node_view va = get(a, "n1", NOW + 2), vb = get(b, "n1", NOW + 2);
    assert_int_equal(va.free_cpu_milli, 1000);
    assert_int_equal(vb.free_cpu_milli, va.free_cpu_milli);
    assert_int_equal(vb.free_memory_mb, va.free_memory_mb);
    /* With the same figures again: the counts start afresh. */
    report_usage(a, "n1", 50, 50, NOW + 3);
    assert_int_equal(cluster_touch(b, "n1", NOW + 3, true, true), 0);
    va = get(a, "n1", NOW + 3);
    vb = get(b, "n1", NOW + 3);
    assert_int_equal(va.free_cpu_milli, 2000);
    assert_int_equal(vb.free_cpu_milli, va.free_cpu_milli);
    assert_int_equal(vb.free_memory_mb, va.free_memory_mb);
    /* The time moved on: still active a TTL after the touch. */
    assert_true(get(b, "n1", NOW + 3 + TTL).active);
    assert_false(get(b, "n1", NOW + 3 + TTL + 1).active);
    /* An older time does not move it back. */
    assert_int_equal(cluster_touch(b, "n1", NOW, false, false), 0);
    assert_true(get(b, "n1", NOW + 3 + TTL).active);
    /* Unknown node: -1. A count to restart without a figure: the time
     * alone. */
    assert_int_equal(cluster_touch(b, "nope", NOW, false, false), -1);
    add_node(b, "n2", 4, 4096, NOW);
    restore(b, "k", 0, "n2", 1, 1024, NOW);
    assert_int_equal(cluster_touch(b, "n2", NOW + 1, true, true), 0);
    assert_false(get(b, "n2", NOW + 1).has_usage);
    assert_int_equal(get(b, "n2", NOW + 1).free_cpu_milli, 3000);
    assert_true(get(b, "n2", NOW + 1 + TTL).active);
    cluster_free(a);
    cluster_free(b);
}

/* A conditional release takes back only the reservation it names: not
 * one that replaced it (another node or time), not a missing one. */
static void test_release_if(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    add_node(c, "n2", 4, 4096, NOW);
    restore(c, "j", 0, "n1", 1, 1024, NOW);
    reservation_view mine;
    assert_int_equal(cluster_placement(c, "j", 0, &mine), 0);
    /* Replaced by a reservation on another node: kept. */
    restore(c, "j", 0, "n2", 1, 1024, NOW);
    assert_int_equal(cluster_release_if(c, &mine), -1);
    assert_int_equal(get(c, "n2", NOW).free_cpu_milli, 3000);
    /* The same node, another time: kept. */
    restore(c, "j", 0, "n1", 1, 1024, NOW + 1);
    assert_int_equal(cluster_release_if(c, &mine), -1);
    assert_int_equal(get(c, "n1", NOW + 1).free_cpu_milli, 3000);
    /* Its own: released. */
    assert_int_equal(cluster_placement(c, "j", 0, &mine), 0);
    assert_int_equal(cluster_release_if(c, &mine), 0);
    assert_int_equal(get(c, "n1", NOW + 1).free_cpu_milli, 4000);
    assert_int_equal(cluster_release_if(c, &mine), -1);
    cluster_free(c);
}

static void test_release(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    restore(c, "j", 0, "n1", 2, 2048, NOW);
    restore(c, "j", 1, "n1", 1, 1024, NOW);
    assert_int_equal(cluster_release(c, "j", 0), 0);
    node_view v = get(c, "n1", NOW);
    assert_int_equal(v.reserved_cpu_milli, 1000);
    assert_int_equal(v.reserved_memory_mb, 1024);
    assert_int_equal(v.free_cpu_milli, 3000);
    assert_int_equal(v.n_reservations, 1);
    assert_int_equal(cluster_release(c, "j", 0), -1); /* already gone */
    assert_int_equal(cluster_release(c, "j", 7), -1);
    assert_int_equal(cluster_release(c, "other", 1), -1);
    assert_int_equal(cluster_release(c, "j", 1), 0);
    v = get(c, "n1", NOW);
    assert_int_equal(v.free_cpu_milli, 4000);
    assert_int_equal(v.free_memory_mb, 4096);
    assert_int_equal(v.n_reservations, 0);
    cluster_free(c);
}

static void test_placement_lookup(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    restore(c, "job-a", 3, "n1", 1.25, 300, NOW + 0.5);
    reservation_view rv;
    memset(&rv, 0, sizeof(rv));
    assert_int_equal(cluster_placement(c, "job-a", 3, &rv), 0);
    assert_string_equal(rv.job_id, "job-a");
    assert_int_equal(rv.instance, 3);
    assert_string_equal(rv.node_id, "n1");
    assert_int_equal(rv.cpu_milli, 1250);
    assert_int_equal(rv.memory_mb, 300);
    assert_true(rv.at == NOW + 0.5);
    assert_int_equal(cluster_placement(c, "job-a", 2, &rv), -1);
    assert_int_equal(cluster_placement(c, "job-b", 3, &rv), -1);
    cluster_free(c);
}

static void test_restore_replaces_and_skips_capacity_check(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    add_node(c, "n2", 4, 4096, NOW);
    restore(c, "j", 0, "n1", 1, 512, NOW);
    restore(c, "j", 0, "n2", 2, 1024, NOW); /* same instance moves */
    node_view v1 = get(c, "n1", NOW), v2 = get(c, "n2", NOW);
    assert_int_equal(v1.reserved_cpu_milli, 0);
    assert_int_equal(v1.n_reservations, 0);
    assert_int_equal(v2.reserved_cpu_milli, 2000);
    assert_int_equal(v2.n_reservations, 1);
    reservation_view rv;
    assert_int_equal(cluster_placement(c, "j", 0, &rv), 0);
    assert_string_equal(rv.node_id, "n2");

    /* Restoring is not placing: durable state wins over capacity. */
    restore(c, "k", 0, "n1", 3, 3000, NOW);
    restore(c, "k", 1, "n1", 3, 3000, NOW);
    v1 = get(c, "n1", NOW);
    assert_int_equal(v1.reserved_cpu_milli, 6000);
    assert_int_equal(v1.reserved_memory_mb, 6000);
    assert_true(v1.free_cpu_milli <= 0);
    assert_true(v1.free_memory_mb <= 0);
    cluster_free(c);
}

static void test_restore_rejects_bad(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    reservation_view rv;
    cs_error err;
    memset(&rv, 0, sizeof(rv));
    snprintf(rv.job_id, sizeof(rv.job_id), "j");
    snprintf(rv.node_id, sizeof(rv.node_id), "unknown");
    rv.cpu_milli = 1000;
    memset(&err, 0, sizeof(err));
    assert_int_equal(cluster_restore(c, &rv, &err), -1);
    assert_true(err.field[0] != '\0');

    snprintf(rv.node_id, sizeof(rv.node_id), "n1");
    rv.job_id[0] = '\0'; /* no job id */
    assert_int_equal(cluster_restore(c, &rv, &err), -1);

    snprintf(rv.job_id, sizeof(rv.job_id), "j");
    rv.cpu_milli = -1000; /* a negative charge would mint capacity */
    assert_int_equal(cluster_restore(c, &rv, &err), -1);
    rv.cpu_milli = 1000;
    rv.memory_mb = -5;
    assert_int_equal(cluster_restore(c, &rv, &err), -1);

    node_view v = get(c, "n1", NOW);
    assert_int_equal(v.reserved_cpu_milli, 0);
    assert_int_equal(v.reserved_memory_mb, 0);
    assert_int_equal(v.n_reservations, 0);
    cluster_free(c);
}

static void test_stale_placements(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "old", 4, 4096, NOW);
    add_node(c, "fresh", 4, 4096, NOW + 10);
    restore(c, "a", 0, "old", 1, 100, NOW);
    restore(c, "a", 1, "old", 1, 100, NOW);
    restore(c, "a", 2, "fresh", 1, 100, NOW);
    reservation_view out[8];

    /* At NOW + 20 "old" is 20 s silent (> 15), "fresh" 10 s. */
    size_t n = cluster_stale_placements(c, NOW + 20, out, 8);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(out[i].node_id, "old");
        assert_string_equal(out[i].job_id, "a");
        assert_true(out[i].instance == 0 || out[i].instance == 1);
    }
    assert_true(out[0].instance != out[1].instance);
    /* max bounds what is written. */
    assert_int_equal(cluster_stale_placements(c, NOW + 20, out, 1), 1);
    assert_int_equal(cluster_stale_placements(c, NOW + 20, out, 0), 0);
    /* Nothing is stale while both report. */
    assert_int_equal(cluster_stale_placements(c, NOW + 10, out, 8), 0);
    /* Listing does not release. */
    assert_int_equal(get(c, "old", NOW + 20).n_reservations, 2);
    cluster_free(c);
}

/* The reaper's usual call finds nothing among many reservations on live
 * nodes, and still finds the few on a node gone silent, and they go once
 * released. */
static void test_stale_placements_among_many(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "quiet", 64, 65536, NOW);
    add_node(c, "busy", 64, 65536, NOW + 10);
    add_node(c, "idle", 64, 65536, NOW); /* silent too, but holds nothing */
    char job[32];
    for (int i = 0; i < 500; i++) {
        snprintf(job, sizeof job, "j%d", i);
        restore(c, job, 0, "busy", 1, 1, NOW);
    }
    restore(c, "q", 0, "quiet", 1, 1, NOW);
    restore(c, "q", 1, "quiet", 1, 1, NOW);
    reservation_view out[8];
    assert_int_equal(cluster_stale_placements(c, NOW + 10, out, 8), 0);
    size_t n = cluster_stale_placements(c, NOW + 20, out, 8);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(out[i].node_id, "quiet");
    assert_int_equal(cluster_release(c, "q", 0), 0);
    assert_int_equal(cluster_release(c, "q", 1), 0);
    assert_int_equal(cluster_stale_placements(c, NOW + 20, out, 8), 0);
    /* Once "busy" is silent too, all of its reservations are stale. */
    reservation_view many[600];
    assert_int_equal(cluster_stale_placements(c, NOW + 30, many, 600), 500);
    cluster_free(c);
}

/* Nodes by the age of their last report: heard within the horizon, of
 * them late (past half the TTL) and silent (past the TTL). */
static void test_silence(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    size_t heard = 9, late = 9, silent = 9;
    cluster_silence(c, NOW, 10 * TTL, &heard, &late, &silent);
    assert_int_equal(heard + late + silent, 0);
    add_node(c, "fresh", 4, 4096, NOW + 100);
    add_node(c, "late", 4, 4096, NOW + 100 - TTL * 0.75);
    add_node(c, "silent", 4, 4096, NOW + 100 - TTL * 2);
    add_node(c, "gone", 4, 4096, NOW + 100 - TTL * 11);
    cluster_silence(c, NOW + 100, 10 * TTL, &heard, &late, &silent);
    assert_int_equal(heard, 3);
    assert_int_equal(late, 1);
    assert_int_equal(silent, 1);
    /* A wider horizon takes in the long-gone one, as silent. */
    cluster_silence(c, NOW + 100, 20 * TTL, &heard, &late, &silent);
    assert_int_equal(heard, 4);
    assert_int_equal(late, 1);
    assert_int_equal(silent, 2);
    cluster_free(c);
}

static void test_place_is_idempotent(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    add_node(c, "n1", 4, 4096, NOW);
    add_node(c, "n2", 4, 4096, NOW);
    engine_opts o;
    engine_opts_default(&o);
    engine_ctx *ctx = engine_ctx_new(&o);
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_set_id(&j, "job", NULL), 0);
    assert_int_equal(job_spec_set_virt(&j, "container", NULL), 0);
    assert_int_equal(job_spec_set_vcpus(&j, 1, NULL), 0);
    assert_int_equal(job_spec_set_memory(&j, 512, NULL), 0);

    engine_result res;
    assert_int_equal(engine_place(ctx, c, &j, NOW, &res, &err), 0);
    assert_true(res.placed);
    assert_false(res.existing);
    char first[CS_ID_MAX + 1];
    snprintf(first, sizeof(first), "%s", res.node_id);

    /* The same instance again: the existing placement, nothing charged. */
    assert_int_equal(engine_place(ctx, c, &j, NOW + 1, &res, &err), 0);
    assert_true(res.existing);
    assert_string_equal(res.node_id, first);
    node_view a = get(c, "n1", NOW + 1), b = get(c, "n2", NOW + 1);
    assert_int_equal(a.reserved_cpu_milli + b.reserved_cpu_milli, 1000);
    assert_int_equal(a.n_reservations + b.n_reservations, 1);

    /* A released instance is placed afresh. */
    assert_int_equal(cluster_release(c, "job", 0), 0);
    assert_int_equal(engine_place(ctx, c, &j, NOW + 2, &res, &err), 0);
    assert_true(res.placed);
    assert_false(res.existing);
    a = get(c, "n1", NOW + 2);
    b = get(c, "n2", NOW + 2);
    assert_int_equal(a.n_reservations + b.n_reservations, 1);
    job_spec_clear(&j);
    engine_ctx_free(ctx);
    cluster_free(c);
}

static void test_memory_bytes_grows(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    size_t empty = cluster_memory_bytes(c);
    char id[16];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "n%d", i);
        add_node(c, id, 4, 4096, NOW);
    }
    size_t full = cluster_memory_bytes(c);
    assert_true(full > empty);
    assert_true(full - empty >= 100 * 32); /* at least some bytes per node */
    cluster_free(c);
}

/* ---- edge fields ---- */

static void test_edge_fields_stored_and_partial(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    cs_error err;
    add_node(c, "n1", 4, 4096, NOW);
    size_t bare = cluster_memory_bytes(c);
    node_view v = get(c, "n1", NOW);
    assert_false(v.has_location);
    assert_int_equal(v.n_latency + v.vivaldi_dim + v.n_labels, 0);

    node_report_init(&r);
    const double viv[] = {3, 4};
    assert_int_equal(node_report_set_location(&r, -33.86, 151.21, NULL), 0);
    assert_int_equal(node_report_add_latency(&r, "sydney", 2.5, NULL), 0);
    assert_int_equal(node_report_add_latency(&r, "perth", 48, NULL), 0);
    assert_int_equal(node_report_set_vivaldi(&r, viv, 2, 1, NULL), 0);
    assert_int_equal(node_report_add_label(&r, "zone", "au-1", NULL), 0);
    assert_int_equal(cluster_report(c, "n1", &r, NOW, &err), 0);
    node_report_clear(&r);
    v = get(c, "n1", NOW);
    assert_true(v.has_location && fabs(v.lat + 33.86) < 1e-9 && fabs(v.lon - 151.21) < 1e-9);
    assert_int_equal(v.n_latency, 2);
    assert_int_equal(v.vivaldi_dim, 2);
    assert_int_equal(v.n_labels, 1);
    size_t full = cluster_memory_bytes(c);
    assert_true(full > bare);

    /* a report of other fields keeps them; the same report again changes nothing */
    report_usage(c, "n1", 10, 10, NOW + 1);
    v = get(c, "n1", NOW + 1);
    assert_true(v.has_location);
    assert_int_equal(v.n_latency + v.vivaldi_dim + v.n_labels, 5);
    assert_int_equal(cluster_memory_bytes(c), full);

    /* one edge field replaced, the others kept */
    node_report_init(&r);
    assert_int_equal(node_report_add_label(&r, "zone", "au-2", NULL), 0);
    assert_int_equal(node_report_add_label(&r, "rack", "r1", NULL), 0);
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 2, &err), 0);
    node_report_clear(&r);
    v = get(c, "n1", NOW + 2);
    assert_true(v.has_location);
    assert_int_equal(v.n_latency, 2);
    assert_int_equal(v.n_labels, 2);

    /* empty tables clear; with nothing left the block goes (only the
     * location stays here) */
    node_report_init(&r);
    r.set |= NODE_F_LATENCY | NODE_F_LABELS;
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 3, &err), 0);
    node_report_clear(&r);
    v = get(c, "n1", NOW + 3);
    assert_int_equal(v.n_latency, 0);
    assert_int_equal(v.n_labels, 0);
    assert_int_equal(v.vivaldi_dim, 2);
    assert_true(v.has_location);
    assert_true(cluster_memory_bytes(c) < full);
    assert_true(cluster_memory_bytes(c) > bare);

    /* a failed report leaves the node as it was */
    node_report_init(&r);
    assert_int_equal(node_report_add_label(&r, "zone", "x", NULL), 0);
    assert_int_equal(node_report_set_vcpus(&r, 8, NULL), 0);
    r.vivaldi_dim = 0; /* a malformed report bypassing the setter */
    r.set |= NODE_F_VIVALDI;
    assert_int_equal(cluster_report(c, "n1", &r, NOW + 4, &err), -1);
    assert_string_equal(err.field, "vivaldi.vector");
    node_report_clear(&r);
    v = get(c, "n1", NOW + 4);
    assert_int_equal(v.n_labels, 0);
    assert_int_equal(v.vcpus_milli, 4000);

    /* a removed node takes its block with it (ASan checks the free) */
    assert_int_equal(cluster_remove(c, "n1", NULL, NULL), 0);
    cluster_free(c);
}

static void test_edge_area_dictionary_is_bounded(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    node_report r;
    cs_error err;
    char id[32], area[32];
    add_node(c, "n0", 4, 4096, NOW);
    for (int k = 0; k < CS_DISTINCT_AREAS / CS_LIST_MAX; k++) {
        snprintf(id, sizeof(id), "n%d", k);
        base_report(&r, id, 1, 1024);
        for (int i = 0; i < CS_LIST_MAX; i++) {
            snprintf(area, sizeof(area), "a%d", k * CS_LIST_MAX + i);
            assert_int_equal(node_report_add_latency(&r, area, i, NULL), 0);
        }
        assert_true(cluster_report(c, id, &r, NOW, &err) >= 0);
        node_report_clear(&r);
    }
    node_report_init(&r);
    assert_int_equal(node_report_add_latency(&r, "a0", 1, NULL), 0); /* known: fine */
    assert_int_equal(node_report_add_latency(&r, "brand-new", 1, NULL), 0);
    assert_int_equal(cluster_report(c, "n0", &r, NOW, &err), -1);
    assert_string_equal(err.field, "latency_ms");
    node_report_clear(&r);
    assert_int_equal(get(c, "n0", NOW).n_latency, CS_LIST_MAX);
    cluster_free(c);
}

/* cluster_job_placements follows reservations through swaps, releases
 * and node removals: checked against a walk of every reservation. */
static size_t brute_count(cluster *c, const char *job)
{
    reservation_view page[256];
    size_t n = cluster_placements(c, 0, page, 256), k = 0;
    for (size_t i = 0; i < n; i++)
        k += strcmp(page[i].job_id, job) == 0;
    return k;
}

static void test_job_placements_index(void **state)
{
    (void)state;
    cluster *c = cluster_new(TTL);
    char id[32];
    const char *jobs[] = {"a", "b", "c"};
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof(id), "n%d", i);
        add_node(c, id, 64, 65536, NOW);
    }
    srand(7);
    bool held[3][20] = {{false}};
    for (int step = 0; step < 2000; step++) {
        int j = rand() % 3, inst = rand() % 20;
        if (held[j][inst] && rand() % 2) {
            assert_int_equal(cluster_release(c, jobs[j], (uint32_t)inst), 0);
            held[j][inst] = false;
        } else if (!held[j][inst]) {
            snprintf(id, sizeof(id), "n%d", rand() % 8);
            if (cluster_size(c) < 8 && strcmp(id, "n7") == 0)
                continue; /* removed below */
            restore(c, jobs[j], (uint32_t)inst, id, 0.5, 16, NOW);
            held[j][inst] = true;
        }
        if (step == 1000) { /* a node removal drops its reservations */
            reservation_view *dropped = NULL;
            size_t nd = 0;
            assert_int_equal(cluster_remove(c, "n7", &dropped, &nd), 0);
            for (size_t i = 0; i < nd; i++)
                for (int k = 0; k < 3; k++)
                    if (strcmp(dropped[i].job_id, jobs[k]) == 0)
                        held[k][dropped[i].instance] = false;
            free(dropped);
        }
        for (int k = 0; k < 3; k++) {
            reservation_view out[20];
            size_t n = cluster_job_placements(c, jobs[k], out, 20);
            size_t want = 0;
            for (int i = 0; i < 20; i++)
                want += held[k][i];
            assert_int_equal(n, want);
            assert_int_equal(n, brute_count(c, jobs[k]));
            for (size_t i = 0; i < n; i++) {
                assert_string_equal(out[i].job_id, jobs[k]);
                assert_true(held[k][out[i].instance]);
            }
        }
    }
    reservation_view one;
    assert_int_equal(cluster_job_placements(c, "unknown", &one, 1), 0);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_then_update),
        cmocka_unit_test(test_get_reports_fields),
        cmocka_unit_test(test_first_report_needs_virt_vcpus_memory),
        cmocka_unit_test(test_report_rejects_bad_id),
        cmocka_unit_test(test_partial_update_changes_only_given_fields),
        cmocka_unit_test(test_report_past_name_cap_fails_whole),
        cmocka_unit_test(test_active_follows_ttl),
        cmocka_unit_test(test_get_unknown),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_free_is_capacity_minus_reservations),
        cmocka_unit_test(test_usage_bounds_free_cpu),
        cmocka_unit_test(test_usage_bounds_free_memory),
        cmocka_unit_test(test_usage_ignores_older_reservations),
        cmocka_unit_test(test_heartbeat_without_usage_keeps_usage_time),
        cmocka_unit_test(test_single_usage_figure_keeps_other_reservations),
        cmocka_unit_test(test_touch_matches_report),
        cmocka_unit_test(test_release_if),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_placement_lookup),
        cmocka_unit_test(test_restore_replaces_and_skips_capacity_check),
        cmocka_unit_test(test_restore_rejects_bad),
        cmocka_unit_test(test_stale_placements),
        cmocka_unit_test(test_stale_placements_among_many),
        cmocka_unit_test(test_silence),
        cmocka_unit_test(test_place_is_idempotent),
        cmocka_unit_test(test_memory_bytes_grows),
        cmocka_unit_test(test_edge_fields_stored_and_partial),
        cmocka_unit_test(test_edge_area_dictionary_is_bounded),
        cmocka_unit_test(test_job_placements_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
