/* test_engine_threads.c - choose-and-reserve is atomic: scheduling threads
 * placing at once while node reports update the table never book a node
 * beyond its capacity and never refuse while room is left. Runs under
 * ThreadSanitizer too (the _threads suffix labels it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "engine.h"
#include "job.h"
#include "node.h"

#define NOW 1000.0
#define TTL 15.0

#define N_NODES 50
#define NODE_VCPUS 100  /* 100 one-vcpu jobs per node... */
#define NODE_MEM 102400 /* ...and 100 of 1024 MB */
#define FITS (N_NODES * NODE_VCPUS)
#define N_PLACERS 4
#define JOBS_TOTAL 10000
#define JOBS_PER_THREAD (JOBS_TOTAL / N_PLACERS)

static void node_id(char *buf, size_t len, int i)
{
    snprintf(buf, len, "node%02d", i);
}

/* The same full report each time: a heartbeat with unchanged capacity and
 * no usage fields. */
static int send_report(cluster *c, int i, double now)
{
    char id[16];
    node_report r;
    cs_error err;
    node_id(id, sizeof(id), i);
    node_report_init(&r);
    int rc = node_report_set_host(&r, id, &err);
    rc |= node_report_add_virt(&r, "container", &err);
    rc |= node_report_set_arch(&r, "amd64", &err);
    rc |= node_report_set_vcpus(&r, NODE_VCPUS, &err);
    rc |= node_report_set_memory(&r, NODE_MEM, &err);
    if (rc == 0)
        rc = cluster_report(c, id, &r, now, &err) < 0 ? -1 : 0;
    node_report_clear(&r);
    return rc;
}

static cluster *make_cluster(void)
{
    cluster *c = cluster_new(TTL);
    assert_non_null(c);
    for (int i = 0; i < N_NODES; i++)
        assert_int_equal(send_report(c, i, NOW), 0);
    assert_int_equal(cluster_size(c), N_NODES);
    return c;
}

struct shared {
    cluster *c;
    atomic_int placers_left;
    atomic_int errors;     /* calls that returned -1 */
    atomic_int overbooked; /* nodes seen above capacity by the watcher */
    atomic_int reports;    /* heartbeats sent */
    atomic_int mismatches; /* idempotency: a different node for one instance */
};

struct placer {
    struct shared *sh;
    int t;
    int placed, refused, existing;
    char (*nodes)[CS_ID_MAX + 1]; /* per instance, for the shared-job test */
};

static void *place_distinct(void *arg)
{
    struct placer *p = arg;
    engine_opts o;
    engine_opts_default(&o);
    engine_ctx *ctx = engine_ctx_new(&o);
    char id[32];
    for (int i = 0; i < JOBS_PER_THREAD; i++) {
        job_spec j;
        engine_result res;
        cs_error err;
        snprintf(id, sizeof(id), "t%d-job%d", p->t, i);
        job_spec_init(&j);
        int rc = job_spec_set_id(&j, id, &err);
        rc |= job_spec_set_virt(&j, "container", &err);
        rc |= job_spec_set_vcpus(&j, 1, &err);
        rc |= job_spec_set_memory(&j, 1024, &err);
        if (rc == 0)
            rc = engine_place(ctx, p->sh->c, &j, NOW, &res, &err);
        if (rc != 0)
            atomic_fetch_add(&p->sh->errors, 1);
        else if (res.placed && !res.existing)
            p->placed++;
        else if (res.existing)
            p->existing++;
        else
            p->refused++;
        job_spec_clear(&j);
    }
    engine_ctx_free(ctx);
    atomic_fetch_sub(&p->sh->placers_left, 1);
    return NULL;
}

static int check_capacity(const node_view *v, void *ud)
{
    struct shared *sh = ud;
    if (v->reserved_cpu_milli > v->vcpus_milli || v->reserved_memory_mb > v->memory_mb)
        atomic_fetch_add(&sh->overbooked, 1);
    return 0;
}

/* Sends heartbeats for every node, and between rounds checks through the
 * read path that no node is over capacity, until the placers finish. */
static void *heartbeat(void *arg)
{
    struct shared *sh = arg;
    while (atomic_load(&sh->placers_left) > 0) {
        for (int i = 0; i < N_NODES; i++) {
            if (send_report(sh->c, i, NOW) != 0)
                atomic_fetch_add(&sh->errors, 1);
            atomic_fetch_add(&sh->reports, 1);
        }
        cluster_foreach(sh->c, NOW, check_capacity, sh);
    }
    return NULL;
}

static void check_final(cluster *c, int64_t expect_jobs)
{
    int64_t cpu = 0, mem = 0, n = 0;
    for (int i = 0; i < N_NODES; i++) {
        char id[16];
        node_view v;
        node_id(id, sizeof(id), i);
        assert_int_equal(cluster_get(c, id, NOW, &v), 0);
        assert_true(v.reserved_cpu_milli <= v.vcpus_milli);
        assert_true(v.reserved_memory_mb <= v.memory_mb);
        assert_true(v.free_cpu_milli >= 0);
        /* Every reservation is one job's worth: the sums agree. */
        assert_int_equal(v.reserved_cpu_milli, (int64_t)v.n_reservations * 1000);
        assert_int_equal(v.reserved_memory_mb, (int64_t)v.n_reservations * 1024);
        cpu += v.reserved_cpu_milli;
        mem += v.reserved_memory_mb;
        n += v.n_reservations;
    }
    assert_int_equal(n, expect_jobs);
    assert_int_equal(cpu, expect_jobs * 1000);
    assert_int_equal(mem, expect_jobs * 1024);
}

/* The test: 4 threads, 10,000 distinct instances, room for exactly
 * 5,000, heartbeats arriving throughout: exactly 5,000 placed. */
static void test_concurrent_place_exact_capacity(void **state)
{
    (void)state;
    struct shared sh = {.c = make_cluster(), .placers_left = N_PLACERS};
    struct placer p[N_PLACERS];
    pthread_t th[N_PLACERS], hb;
    assert_int_equal(pthread_create(&hb, NULL, heartbeat, &sh), 0);
    for (int t = 0; t < N_PLACERS; t++) {
        p[t] = (struct placer){.sh = &sh, .t = t};
        assert_int_equal(pthread_create(&th[t], NULL, place_distinct, &p[t]), 0);
    }
    int placed = 0, refused = 0, existing = 0;
    for (int t = 0; t < N_PLACERS; t++) {
        pthread_join(th[t], NULL);
        placed += p[t].placed;
        refused += p[t].refused;
        existing += p[t].existing;
    }
    pthread_join(hb, NULL);

    assert_int_equal(atomic_load(&sh.errors), 0);
    assert_int_equal(atomic_load(&sh.overbooked), 0);
    assert_true(atomic_load(&sh.reports) > 0);
    assert_int_equal(existing, 0);
    assert_int_equal(placed, FITS);
    assert_int_equal(refused, JOBS_TOTAL - FITS);
    check_final(sh.c, FITS);

    /* Every placed job is recorded where the table says. */
    int recorded = 0;
    for (int t = 0; t < N_PLACERS; t++) {
        for (int i = 0; i < JOBS_PER_THREAD; i++) {
            char id[32];
            reservation_view rv;
            snprintf(id, sizeof(id), "t%d-job%d", t, i);
            recorded += cluster_placement(sh.c, id, 0, &rv) == 0;
        }
    }
    assert_int_equal(recorded, FITS);
    cluster_free(sh.c);
}

#define SHARED_INSTANCES 1000

static void *place_shared(void *arg)
{
    struct placer *p = arg;
    engine_opts o;
    engine_opts_default(&o);
    engine_ctx *ctx = engine_ctx_new(&o);
    for (int k = 0; k < SHARED_INSTANCES; k++) {
        /* Each thread starts at a different instance so they collide. */
        int i = (k + p->t * (SHARED_INSTANCES / N_PLACERS)) % SHARED_INSTANCES;
        job_spec j;
        engine_result res;
        cs_error err;
        job_spec_init(&j);
        int rc = job_spec_set_id(&j, "shared", &err);
        rc |= job_spec_set_instance(&j, i, &err);
        rc |= job_spec_set_virt(&j, "container", &err);
        rc |= job_spec_set_vcpus(&j, 1, &err);
        rc |= job_spec_set_memory(&j, 1024, &err);
        if (rc == 0)
            rc = engine_place(ctx, p->sh->c, &j, NOW, &res, &err);
        if (rc != 0 || !(res.placed || res.existing)) {
            atomic_fetch_add(&p->sh->errors, 1);
        } else {
            snprintf(p->nodes[i], CS_ID_MAX + 1, "%s", res.node_id);
            if (res.existing)
                p->existing++;
            else
                p->placed++;
        }
        job_spec_clear(&j);
    }
    engine_ctx_free(ctx);
    atomic_fetch_sub(&p->sh->placers_left, 1);
    return NULL;
}

/* All threads place the same 1,000 instances: each is reserved once, and
 * every thread is told the same node for it. */
static void test_concurrent_same_instances_reserved_once(void **state)
{
    (void)state;
    static char nodes[N_PLACERS][SHARED_INSTANCES][CS_ID_MAX + 1];
    memset(nodes, 0, sizeof(nodes));
    struct shared sh = {.c = make_cluster(), .placers_left = N_PLACERS};
    struct placer p[N_PLACERS];
    pthread_t th[N_PLACERS], hb;
    assert_int_equal(pthread_create(&hb, NULL, heartbeat, &sh), 0);
    for (int t = 0; t < N_PLACERS; t++) {
        p[t] = (struct placer){.sh = &sh, .t = t, .nodes = nodes[t]};
        assert_int_equal(pthread_create(&th[t], NULL, place_shared, &p[t]), 0);
    }
    int placed = 0, existing = 0;
    for (int t = 0; t < N_PLACERS; t++) {
        pthread_join(th[t], NULL);
        placed += p[t].placed;
        existing += p[t].existing;
    }
    pthread_join(hb, NULL);

    assert_int_equal(atomic_load(&sh.errors), 0);
    assert_int_equal(atomic_load(&sh.overbooked), 0);
    assert_int_equal(placed, SHARED_INSTANCES);
    assert_int_equal(existing, (N_PLACERS - 1) * SHARED_INSTANCES);
    for (int i = 0; i < SHARED_INSTANCES; i++) {
        reservation_view rv;
        assert_int_equal(cluster_placement(sh.c, "shared", (uint32_t)i, &rv), 0);
        for (int t = 0; t < N_PLACERS; t++)
            assert_string_equal(nodes[t][i], rv.node_id);
    }
    check_final(sh.c, SHARED_INSTANCES);
    cluster_free(sh.c);
}

/* Place-and-release churn from several threads on a tight cluster while a
 * watcher reads: capacity holds at every observation, and when all is
 * released nothing is left reserved. */
static void *churn(void *arg)
{
    struct placer *p = arg;
    engine_opts o;
    engine_opts_default(&o);
    engine_ctx *ctx = engine_ctx_new(&o);
    char id[32];
    for (int i = 0; i < 2000; i++) {
        job_spec j;
        engine_result res;
        cs_error err;
        snprintf(id, sizeof(id), "churn%d", p->t);
        job_spec_init(&j);
        int rc = job_spec_set_id(&j, id, &err);
        rc |= job_spec_set_instance(&j, i % 50, &err);
        rc |= job_spec_set_virt(&j, "container", &err);
        rc |= job_spec_set_vcpus(&j, 40, &err); /* 2 per node at most */
        rc |= job_spec_set_memory(&j, 1024, &err);
        if (rc == 0)
            rc = engine_place(ctx, p->sh->c, &j, NOW, &res, &err);
        if (rc != 0)
            atomic_fetch_add(&p->sh->errors, 1);
        else if (res.placed && i % 3 == 0)
            cluster_release(p->sh->c, id, (uint32_t)(i % 50));
        job_spec_clear(&j);
    }
    /* Release whatever this thread still holds. */
    for (int i = 0; i < 50; i++)
        cluster_release(p->sh->c, id, (uint32_t)i);
    engine_ctx_free(ctx);
    atomic_fetch_sub(&p->sh->placers_left, 1);
    return NULL;
}

static void test_concurrent_place_release_churn(void **state)
{
    (void)state;
    struct shared sh = {.c = make_cluster(), .placers_left = N_PLACERS};
    struct placer p[N_PLACERS];
    pthread_t th[N_PLACERS], hb;
    assert_int_equal(pthread_create(&hb, NULL, heartbeat, &sh), 0);
    for (int t = 0; t < N_PLACERS; t++) {
        p[t] = (struct placer){.sh = &sh, .t = t};
        assert_int_equal(pthread_create(&th[t], NULL, churn, &p[t]), 0);
    }
    for (int t = 0; t < N_PLACERS; t++)
        pthread_join(th[t], NULL);
    pthread_join(hb, NULL);
    assert_int_equal(atomic_load(&sh.errors), 0);
    assert_int_equal(atomic_load(&sh.overbooked), 0);
    for (int i = 0; i < N_NODES; i++) {
        char id[16];
        node_view v;
        node_id(id, sizeof(id), i);
        assert_int_equal(cluster_get(sh.c, id, NOW, &v), 0);
        assert_int_equal(v.n_reservations, 0);
        assert_int_equal(v.reserved_cpu_milli, 0);
        assert_int_equal(v.reserved_memory_mb, 0);
    }
    cluster_free(sh.c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_place_exact_capacity),
        cmocka_unit_test(test_concurrent_same_instances_reserved_once),
        cmocka_unit_test(test_concurrent_place_release_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
