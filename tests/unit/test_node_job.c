/* test_node_job.c - validation of node reports and job specs: every bad
 * number or string (negative, NaN, infinite, huge, empty, over-long,
 * unknown) is a clear error naming its field, never a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "job.h"
#include "cs_limits.h"
#include "node.h"
#include "strlist.h"
#include "virt.h"

/* A string of n copies of ch in buf (buf must hold n + 1). */
static const char *rep(char *buf, size_t n, char ch)
{
    memset(buf, ch, n);
    buf[n] = '\0';
    return buf;
}

/* The call must fail with -1, and err must name a field containing `sub`
 * (or any non-empty field when sub is "") and carry a message. */
#define assert_fails(call, err, sub)                                                               \
    do {                                                                                           \
        memset(&(err), 0, sizeof(err));                                                            \
        assert_int_equal((call), -1);                                                              \
        assert_true((err).field[0] != '\0');                                                       \
        assert_non_null(strstr((err).field, (sub)));                                               \
        assert_true((err).msg[0] != '\0');                                                         \
    } while (0)

/* ---- shared helpers: error, quantities, virtualization names ---- */

static void test_cs_fail_fills_and_returns_minus_one(void **state)
{
    (void)state;
    cs_error err;
    memset(&err, 'x', sizeof(err));
    assert_int_equal(cs_fail(&err, "vcpus", "must be <= %d", 7), -1);
    assert_string_equal(err.field, "vcpus");
    assert_string_equal(err.msg, "must be <= 7");
    /* NULL err is allowed: callers pass it when they do not care why. */
    assert_int_equal(cs_fail(NULL, "vcpus", "x"), -1);
}

static void test_cs_fail_truncates_long_text(void **state)
{
    (void)state;
    char longf[200], longm[400];
    cs_error err;
    rep(longf, sizeof(longf) - 1, 'f');
    rep(longm, sizeof(longm) - 1, 'm');
    assert_int_equal(cs_fail(&err, longf, "%s", longm), -1);
    assert_true(strlen(err.field) < sizeof(err.field));
    assert_true(strlen(err.msg) < sizeof(err.msg));
}

static void test_cs_check_quantity(void **state)
{
    (void)state;
    cs_error err;
    assert_int_equal(cs_check_quantity(0.0, 10.0, "q", &err), 0);
    assert_int_equal(cs_check_quantity(10.0, 10.0, "q", &err), 0);
    assert_fails(cs_check_quantity(10.5, 10.0, "q", &err), err, "q");
    assert_fails(cs_check_quantity(-0.5, 10.0, "q", &err), err, "q");
    assert_fails(cs_check_quantity(NAN, 10.0, "q", &err), err, "q");
    assert_fails(cs_check_quantity(INFINITY, 10.0, "q", &err), err, "q");
    assert_fails(cs_check_quantity(-INFINITY, 10.0, "q", &err), err, "q");
    assert_int_equal(cs_check_quantity(NAN, 10.0, "q", NULL), -1);
}

static void test_cs_milli_ceil(void **state)
{
    (void)state;
    assert_int_equal(cs_milli_ceil(0.0), 0);
    assert_int_equal(cs_milli_ceil(1.0), 1000);
    assert_int_equal(cs_milli_ceil(0.5), 500);
    /* Below a thousandth still costs one: never under-counted. */
    assert_int_equal(cs_milli_ceil(0.0001), 1);
    assert_int_equal(cs_milli_ceil(1.0004), 1001);
    /* Values whose product with 1000 lands a hair above the integer in
     * binary floating point (2.007 * 1000 == 2007.0000000000002): a whole
     * number of thousandths must not be charged one extra. */
    assert_int_equal(cs_milli_ceil(2.007), 2007);
    assert_int_equal(cs_milli_ceil(16.1), 16100);
    assert_int_equal(cs_milli_ceil(CS_VCPUS_MAX), 65536000);
}

static void test_virt_names(void **state)
{
    (void)state;
    assert_int_equal(virt_from_name("docker"), VIRT_CONTAINER);
    assert_int_equal(virt_from_name("container"), VIRT_CONTAINER);
    assert_int_equal(virt_from_name("unikernel"), VIRT_UNIKERNEL);
    assert_int_equal(virt_from_name("wasm"), VIRT_WASM);
    assert_int_equal(virt_from_name("vm"), VIRT_VM);
    assert_int_equal(virt_from_name("kvm"), 0);
    assert_int_equal(virt_from_name(""), 0);
    assert_string_equal(virt_name(VIRT_CONTAINER), "container");
    assert_string_equal(virt_name(VIRT_UNIKERNEL), "unikernel");
    assert_string_equal(virt_name(VIRT_WASM), "wasm");
    assert_string_equal(virt_name(VIRT_VM), "vm");
}

/* ---- strlist ---- */

static void test_strlist_add_has_dup(void **state)
{
    (void)state;
    strlist l = {0};
    cs_error err;
    assert_int_equal(strlist_add(&l, "amd64", CS_NAME_MAX, "arch", &err), 0);
    assert_int_equal(strlist_add(&l, "arm64", CS_NAME_MAX, "arch", &err), 0);
    assert_int_equal(strlist_add(&l, "amd64", CS_NAME_MAX, "arch", &err), 0);
    assert_int_equal(l.n, 2); /* duplicate ignored */
    assert_true(strlist_has(&l, "amd64"));
    assert_true(strlist_has(&l, "arm64"));
    assert_false(strlist_has(&l, "riscv64"));
    strlist_clear(&l);
    assert_int_equal(l.n, 0);
    assert_false(strlist_has(&l, "amd64"));
    strlist_clear(&l); /* twice is harmless */
}

static void test_strlist_copies(void **state)
{
    (void)state;
    strlist l = {0};
    char buf[8] = "abc";
    assert_int_equal(strlist_add(&l, buf, CS_NAME_MAX, "x", NULL), 0);
    buf[0] = 'z';
    assert_true(strlist_has(&l, "abc"));
    strlist_clear(&l);
}

static void test_strlist_rejects_bad_names(void **state)
{
    (void)state;
    strlist l = {0};
    cs_error err;
    char s[CS_NAME_MAX + 2];
    assert_fails(strlist_add(&l, NULL, CS_NAME_MAX, "addons", &err), err, "addons");
    assert_fails(strlist_add(&l, "", CS_NAME_MAX, "addons", &err), err, "addons");
    assert_fails(strlist_add(&l, rep(s, CS_NAME_MAX + 1, 'a'), CS_NAME_MAX, "addons", &err), err,
                 "addons");
    assert_int_equal(l.n, 0);
    assert_int_equal(strlist_add(&l, rep(s, CS_NAME_MAX, 'a'), CS_NAME_MAX, "addons", &err), 0);
    assert_int_equal(l.n, 1);
    strlist_clear(&l);
}

static void test_strlist_caps_entries(void **state)
{
    (void)state;
    strlist l = {0};
    cs_error err;
    char s[16];
    for (int i = 0; i < CS_LIST_MAX; i++) {
        snprintf(s, sizeof(s), "n%d", i);
        assert_int_equal(strlist_add(&l, s, CS_NAME_MAX, "addons", &err), 0);
    }
    assert_int_equal(l.n, CS_LIST_MAX);
    assert_fails(strlist_add(&l, "one-too-many", CS_NAME_MAX, "addons", &err), err, "addons");
    assert_int_equal(l.n, CS_LIST_MAX);
    /* A duplicate of an entry already there is not a new entry. */
    assert_int_equal(strlist_add(&l, "n0", CS_NAME_MAX, "addons", &err), 0);
    strlist_clear(&l);
}

/* ---- node report setters ---- */

static void test_node_report_init_is_empty(void **state)
{
    (void)state;
    node_report r;
    memset(&r, 0x5a, sizeof(r));
    node_report_init(&r);
    assert_int_equal(r.set, 0);
    assert_int_equal(r.virt, 0);
    assert_int_equal(r.addons.n, 0);
    assert_int_equal(r.csi.n, 0);
    node_report_clear(&r);
}

static void test_node_vcpus(void **state)
{
    (void)state;
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_vcpus(&r, 4.0, &err), 0);
    assert_int_equal(r.vcpus_milli, 4000);
    assert_true(r.set & NODE_F_VCPUS);
    assert_int_equal(node_report_set_vcpus(&r, 0.5, &err), 0);
    assert_int_equal(r.vcpus_milli, 500);
    assert_int_equal(node_report_set_vcpus(&r, 0.0, &err), 0);
    assert_int_equal(r.vcpus_milli, 0);
    assert_int_equal(node_report_set_vcpus(&r, CS_VCPUS_MAX, &err), 0);
    assert_int_equal(r.vcpus_milli, 65536000);
    node_report_clear(&r);
}

static void test_node_vcpus_rejects_bad(void **state)
{
    (void)state;
    const double bad[] = {-1.0, -0.001, NAN, INFINITY, -INFINITY, CS_VCPUS_MAX + 1, 1e300};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        node_report r;
        cs_error err;
        node_report_init(&r);
        assert_fails(node_report_set_vcpus(&r, bad[i], &err), err, "vcpus");
        /* A rejected value is not recorded as present. */
        assert_false(r.set & NODE_F_VCPUS);
        assert_int_equal(node_report_set_vcpus(&r, bad[i], NULL), -1);
        node_report_clear(&r);
    }
}

static void test_node_memory(void **state)
{
    (void)state;
    const double bad[] = {-1.0, NAN, INFINITY, -INFINITY, CS_MEMORY_MAX + 1, 1e20};
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_memory(&r, 4096, &err), 0);
    assert_int_equal(r.memory_mb, 4096);
    assert_true(r.set & NODE_F_MEMORY);
    assert_int_equal(node_report_set_memory(&r, CS_MEMORY_MAX, &err), 0);
    assert_int_equal(r.memory_mb, 1073741824);
    node_report_clear(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        node_report_init(&r);
        assert_fails(node_report_set_memory(&r, bad[i], &err), err, "memory");
        assert_false(r.set & NODE_F_MEMORY);
        node_report_clear(&r);
    }
}

static void test_node_gpus(void **state)
{
    (void)state;
    /* GPUs are whole devices: a fraction is as wrong as a negative. */
    const double bad[] = {-1.0, 1.5, NAN, INFINITY, CS_GPUS_MAX + 1, 1e300};
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_gpus(&r, 2, &err), 0);
    assert_int_equal(r.gpus, 2);
    assert_true(r.set & NODE_F_GPUS);
    assert_int_equal(node_report_set_gpus(&r, CS_GPUS_MAX, &err), 0);
    assert_int_equal(r.gpus, 4096);
    node_report_clear(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        node_report_init(&r);
        assert_fails(node_report_set_gpus(&r, bad[i], &err), err, "gpu");
        assert_false(r.set & NODE_F_GPUS);
        node_report_clear(&r);
    }
}

static void test_node_percentages(void **state)
{
    (void)state;
    const double bad[] = {-0.1, 100.1, NAN, INFINITY, -INFINITY, 1e300};
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_cpu_percent(&r, 0.0, &err), 0);
    assert_int_equal(node_report_set_cpu_percent(&r, 100.0, &err), 0);
    assert_int_equal(node_report_set_cpu_percent(&r, 55.5, &err), 0);
    assert_true(r.cpu_percent == 55.5);
    assert_true(r.set & NODE_F_CPU_PCT);
    assert_int_equal(node_report_set_memory_percent(&r, 12.25, &err), 0);
    assert_true(r.memory_percent == 12.25);
    assert_true(r.set & NODE_F_MEM_PCT);
    node_report_clear(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        node_report_init(&r);
        assert_fails(node_report_set_cpu_percent(&r, bad[i], &err), err, "cpu");
        assert_false(r.set & NODE_F_CPU_PCT);
        assert_fails(node_report_set_memory_percent(&r, bad[i], &err), err, "memory");
        assert_false(r.set & NODE_F_MEM_PCT);
        node_report_clear(&r);
    }
}

static void test_node_location(void **state)
{
    (void)state;
    const double bad[][2] = {{90.5, 0}, {-91, 0}, {0, 180.5},   {0, -181},
                             {NAN, 0},  {0, NAN}, {INFINITY, 0}};
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_location(&r, 52.52, 13.40, &err), 0);
    assert_true(r.set & NODE_F_LOCATION);
    assert_true(r.lat == 52.52 && r.lon == 13.40);
    assert_int_equal(node_report_set_location(&r, -90, 180, &err), 0);
    node_report_clear(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        node_report_init(&r);
        assert_fails(node_report_set_location(&r, bad[i][0], bad[i][1], &err), err, "");
        assert_false(r.set & NODE_F_LOCATION);
        node_report_clear(&r);
    }
}

static void test_node_host(void **state)
{
    (void)state;
    char s[CS_HOST_MAX + 2];
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_host(&r, "worker-1.example", &err), 0);
    assert_string_equal(r.host, "worker-1.example");
    assert_true(r.set & NODE_F_HOST);
    assert_int_equal(node_report_set_host(&r, rep(s, CS_HOST_MAX, 'h'), &err), 0);
    assert_int_equal(strlen(r.host), CS_HOST_MAX);
    node_report_clear(&r);

    node_report_init(&r);
    assert_fails(node_report_set_host(&r, "", &err), err, "host");
    assert_fails(node_report_set_host(&r, NULL, &err), err, "host");
    assert_fails(node_report_set_host(&r, rep(s, CS_HOST_MAX + 1, 'h'), &err), err, "host");
    assert_false(r.set & NODE_F_HOST);
    node_report_clear(&r);
}

static void test_node_arch(void **state)
{
    (void)state;
    char s[CS_NAME_MAX + 2];
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_arch(&r, "arm64", &err), 0);
    assert_string_equal(r.arch, "arm64");
    assert_true(r.set & NODE_F_ARCH);
    assert_int_equal(node_report_set_arch(&r, rep(s, CS_NAME_MAX, 'a'), &err), 0);
    node_report_clear(&r);

    node_report_init(&r);
    assert_fails(node_report_set_arch(&r, "", &err), err, "arch");
    assert_fails(node_report_set_arch(&r, NULL, &err), err, "arch");
    assert_fails(node_report_set_arch(&r, rep(s, CS_NAME_MAX + 1, 'a'), &err), err, "arch");
    assert_false(r.set & NODE_F_ARCH);
    node_report_clear(&r);
}

static void test_node_virt(void **state)
{
    (void)state;
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_add_virt(&r, "docker", &err), 0);
    assert_int_equal(r.virt, VIRT_CONTAINER);
    assert_true(r.set & NODE_F_VIRT);
    /* "container" is the same runtime as "docker": no new bit. */
    assert_int_equal(node_report_add_virt(&r, "container", &err), 0);
    assert_int_equal(r.virt, VIRT_CONTAINER);
    assert_int_equal(node_report_add_virt(&r, "unikernel", &err), 0);
    assert_int_equal(r.virt, VIRT_CONTAINER | VIRT_UNIKERNEL);
    /* Unknown names fail and leave the set as it was. */
    assert_fails(node_report_add_virt(&r, "kvm", &err), err, "virt");
    assert_fails(node_report_add_virt(&r, "", &err), err, "virt");
    assert_fails(node_report_add_virt(&r, NULL, &err), err, "virt");
    assert_int_equal(r.virt, VIRT_CONTAINER | VIRT_UNIKERNEL);
    node_report_clear(&r);
}

static void test_node_id_check(void **state)
{
    (void)state;
    char s[CS_ID_MAX + 2];
    cs_error err;
    assert_int_equal(node_id_check("n1", &err), 0);
    assert_int_equal(node_id_check("5f3a9c2e-node.local", &err), 0);
    assert_int_equal(node_id_check(rep(s, CS_ID_MAX, 'i'), &err), 0);
    assert_fails(node_id_check(rep(s, CS_ID_MAX + 1, 'i'), &err), err, "");
    assert_fails(node_id_check("", &err), err, "");
    assert_fails(node_id_check(NULL, &err), err, "");
    assert_fails(node_id_check("a/b", &err), err, "");
    assert_fails(node_id_check("a\x01"
                               "b",
                               &err),
                 err, "");
    assert_fails(node_id_check("tab\there", &err), err, "");
}

/* ---- job spec setters ---- */

static void test_job_init_defaults(void **state)
{
    (void)state;
    job_spec j;
    memset(&j, 0x5a, sizeof(j));
    job_spec_init(&j);
    assert_int_equal(j.vcpus_milli, 0);
    assert_int_equal(j.memory_mb, 0);
    assert_int_equal(j.gpus, 0);
    assert_int_equal(j.virt, 0);
    assert_int_equal(j.instance, 0);
    assert_int_equal(j.has_direct, 0);
    assert_int_equal(j.arch.n + j.addons.n + j.hosts.n + j.csi.n, 0);
    assert_int_equal(j.strategy, STRATEGY_DEFAULT);
    assert_int_equal(j.top_k, 0);
    job_spec_clear(&j);
}

static void test_job_id(void **state)
{
    (void)state;
    char s[CS_ID_MAX + 2];
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_set_id(&j, "job-1", &err), 0);
    assert_string_equal(j.id, "job-1");
    assert_int_equal(job_spec_set_id(&j, rep(s, CS_ID_MAX, 'j'), &err), 0);
    assert_fails(job_spec_set_id(&j, rep(s, CS_ID_MAX + 1, 'j'), &err), err, "id");
    assert_fails(job_spec_set_id(&j, "", &err), err, "id");
    assert_fails(job_spec_set_id(&j, NULL, &err), err, "id");
    assert_fails(job_spec_set_id(&j, "a/b", &err), err, "id");
    job_spec_clear(&j);
}

static void test_job_instance(void **state)
{
    (void)state;
    const double bad[] = {-1.0, 1.5, NAN, INFINITY, CS_INSTANCE_MAX + 1.0, 1e300};
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_set_instance(&j, 0, &err), 0);
    assert_int_equal(job_spec_set_instance(&j, 7, &err), 0);
    assert_int_equal(j.instance, 7);
    assert_int_equal(job_spec_set_instance(&j, CS_INSTANCE_MAX, &err), 0);
    assert_int_equal(j.instance, CS_INSTANCE_MAX);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_fails(job_spec_set_instance(&j, bad[i], &err), err, "instance");
    job_spec_clear(&j);
}

static void test_job_vcpus(void **state)
{
    (void)state;
    const double bad[] = {-1.0, -0.0001, NAN, INFINITY, -INFINITY, CS_VCPUS_MAX + 1, 1e300};
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_set_vcpus(&j, 0.5, &err), 0);
    assert_int_equal(j.vcpus_milli, 500);
    /* Rounded up so a tiny request is never free. */
    assert_int_equal(job_spec_set_vcpus(&j, 0.0001, &err), 0);
    assert_int_equal(j.vcpus_milli, 1);
    assert_int_equal(job_spec_set_vcpus(&j, CS_VCPUS_MAX, &err), 0);
    assert_int_equal(j.vcpus_milli, 65536000);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_fails(job_spec_set_vcpus(&j, bad[i], &err), err, "vcpus");
    job_spec_clear(&j);
}

static void test_job_memory_and_gpus(void **state)
{
    (void)state;
    const double badmem[] = {-1.0, NAN, INFINITY, CS_MEMORY_MAX + 1, 1e300};
    const double badgpu[] = {-1.0, 0.5, NAN, INFINITY, CS_GPUS_MAX + 1, 1e300};
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_set_memory(&j, 512, &err), 0);
    assert_int_equal(j.memory_mb, 512);
    assert_int_equal(job_spec_set_memory(&j, CS_MEMORY_MAX, &err), 0);
    assert_int_equal(job_spec_set_gpus(&j, 1, &err), 0);
    assert_int_equal(j.gpus, 1);
    assert_int_equal(job_spec_set_gpus(&j, CS_GPUS_MAX, &err), 0);
    for (size_t i = 0; i < sizeof(badmem) / sizeof(badmem[0]); i++)
        assert_fails(job_spec_set_memory(&j, badmem[i], &err), err, "memory");
    for (size_t i = 0; i < sizeof(badgpu) / sizeof(badgpu[0]); i++)
        assert_fails(job_spec_set_gpus(&j, badgpu[i], &err), err, "gpu");
    job_spec_clear(&j);
}

static void test_job_virt(void **state)
{
    (void)state;
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_set_virt(&j, "docker", &err), 0);
    assert_int_equal(j.virt, VIRT_CONTAINER);
    assert_int_equal(job_spec_set_virt(&j, "container", &err), 0);
    assert_int_equal(j.virt, VIRT_CONTAINER);
    assert_int_equal(job_spec_set_virt(&j, "unikernel", &err), 0);
    assert_int_equal(j.virt, VIRT_UNIKERNEL); /* replaces: a job has one runtime */
    assert_fails(job_spec_set_virt(&j, "kvm", &err), err, "virt");
    assert_fails(job_spec_set_virt(&j, "", &err), err, "virt");
    assert_fails(job_spec_set_virt(&j, NULL, &err), err, "virt");
    job_spec_clear(&j);
}

static void test_job_direct_splits_hosts(void **state)
{
    (void)state;
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_add_direct(&j, "a;b;c", &err), 0);
    assert_int_equal(j.has_direct, 1);
    assert_int_equal(j.hosts.n, 3);
    assert_true(strlist_has(&j.hosts, "a"));
    assert_true(strlist_has(&j.hosts, "b"));
    assert_true(strlist_has(&j.hosts, "c"));
    assert_false(strlist_has(&j.hosts, "a;b;c"));
    /* A second constraint adds to the list. */
    assert_int_equal(job_spec_add_direct(&j, "worker-9", &err), 0);
    assert_int_equal(j.hosts.n, 4);
    assert_true(strlist_has(&j.hosts, "worker-9"));
    job_spec_clear(&j);
}

static void test_job_direct_rejects_bad(void **state)
{
    (void)state;
    char s[CS_HOST_MAX + 2];
    char many[CS_LIST_MAX * 8];
    size_t off = 0;
    job_spec j;
    cs_error err;

    job_spec_init(&j);
    assert_fails(job_spec_add_direct(&j, NULL, &err), err, "");
    /* Host names may be as long as a node's host (127): such a node must be
     * addressable; one more is an error. */
    assert_int_equal(job_spec_add_direct(&j, rep(s, CS_HOST_MAX, 'h'), &err), 0);
    assert_fails(job_spec_add_direct(&j, rep(s, CS_HOST_MAX + 1, 'h'), &err), err, "");
    job_spec_clear(&j);

    /* More hosts than a list may hold. */
    for (int i = 0; i <= CS_LIST_MAX; i++)
        off += (size_t)snprintf(many + off, sizeof(many) - off, "%sh%d", i ? ";" : "", i);
    job_spec_init(&j);
    assert_fails(job_spec_add_direct(&j, many, &err), err, "");
    assert_true(j.hosts.n <= CS_LIST_MAX);
    job_spec_clear(&j);
}

static void test_job_strategy(void **state)
{
    (void)state;
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_set_strategy(&j, "most-free", &err), 0);
    assert_int_equal(j.strategy, STRATEGY_MOST_FREE);
    assert_int_equal(job_spec_set_strategy(&j, "best-fit", &err), 0);
    assert_int_equal(j.strategy, STRATEGY_BEST_FIT);
    assert_int_equal(job_spec_set_strategy(&j, "spread", &err), 0);
    assert_int_equal(j.strategy, STRATEGY_SPREAD);
    assert_fails(job_spec_set_strategy(&j, "random", &err), err, "strategy");
    assert_fails(job_spec_set_strategy(&j, "", &err), err, "strategy");
    assert_fails(job_spec_set_strategy(&j, NULL, &err), err, "strategy");
    assert_int_equal(j.strategy, STRATEGY_SPREAD); /* unchanged by the failures */
    assert_string_equal(strategy_name(STRATEGY_MOST_FREE), "most-free");
    assert_string_equal(strategy_name(STRATEGY_BEST_FIT), "best-fit");
    assert_string_equal(strategy_name(STRATEGY_SPREAD), "spread");
    job_spec_clear(&j);
}

static void test_job_validate(void **state)
{
    (void)state;
    job_spec j;
    cs_error err;

    job_spec_init(&j);
    job_spec_set_id(&j, "j", NULL);
    assert_fails(job_spec_validate(&j, &err), err, "virt"); /* no virtualization */
    assert_int_equal(job_spec_set_virt(&j, "container", &err), 0);
    assert_int_equal(job_spec_validate(&j, &err), 0); /* containers need no arch */
    job_spec_clear(&j);

    job_spec_init(&j);
    job_spec_set_id(&j, "j", NULL);
    assert_int_equal(job_spec_set_virt(&j, "unikernel", &err), 0);
    assert_fails(job_spec_validate(&j, &err), err, "arch");
    assert_int_equal(strlist_add(&j.arch, "amd64", CS_NAME_MAX, "arch", &err), 0);
    assert_int_equal(job_spec_validate(&j, &err), 0);
    job_spec_clear(&j);
}

/* ---- edge fields: latency table, Vivaldi coordinates, labels ---- */

static void test_node_latency(void **state)
{
    (void)state;
    char s[CS_NAME_MAX + 2];
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_add_latency(&r, "munich-1", 12.5, &err), 0);
    assert_int_equal(node_report_add_latency(&r, "berlin", 0, &err), 0);
    assert_int_equal(node_report_add_latency(&r, "munich-1", 7, &err), 0); /* replaces */
    assert_true(r.set & NODE_F_LATENCY);
    assert_int_equal(r.n_latency, 2);
    assert_string_equal(r.latency[0].area, "munich-1");
    assert_true(r.latency[0].ms == 7 && r.latency[1].ms == 0);
    const double bad[] = {-0.5, NAN, INFINITY, 2e9};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_fails(node_report_add_latency(&r, "x", bad[i], &err), err, "latency_ms");
    assert_fails(node_report_add_latency(&r, "", 1, &err), err, "latency_ms");
    assert_fails(node_report_add_latency(&r, NULL, 1, &err), err, "latency_ms");
    assert_fails(node_report_add_latency(&r, rep(s, CS_NAME_MAX + 1, 'a'), 1, &err), err,
                 "latency_ms");
    assert_int_equal(r.n_latency, 2);
    node_report_clear(&r);

    /* at most CS_LIST_MAX areas */
    node_report_init(&r);
    for (int i = 0; i < CS_LIST_MAX; i++) {
        snprintf(s, sizeof(s), "area-%d", i);
        assert_int_equal(node_report_add_latency(&r, s, i, &err), 0);
    }
    assert_fails(node_report_add_latency(&r, "one-more", 1, &err), err, "latency_ms");
    assert_int_equal(node_report_add_latency(&r, "area-3", 1, &err), 0); /* a known one */
    node_report_clear(&r);
}

static void test_node_vivaldi(void **state)
{
    (void)state;
    double v[CS_VIVALDI_DIM_MAX + 1] = {1, -2.5, 3};
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_set_vivaldi(&r, v, 3, 0.25, &err), 0);
    assert_true(r.set & NODE_F_VIVALDI);
    assert_int_equal(r.vivaldi_dim, 3);
    assert_true(r.vivaldi[1] == -2.5 && r.vivaldi_height == 0.25);
    assert_int_equal(node_report_set_vivaldi(&r, v, CS_VIVALDI_DIM_MAX, 0, &err), 0);
    node_report_clear(&r);

    node_report_init(&r);
    assert_fails(node_report_set_vivaldi(&r, v, 0, 0, &err), err, "vivaldi.vector");
    assert_fails(node_report_set_vivaldi(&r, v, CS_VIVALDI_DIM_MAX + 1, 0, &err), err,
                 "vivaldi.vector");
    assert_fails(node_report_set_vivaldi(&r, v, 3, -1, &err), err, "vivaldi.height");
    assert_fails(node_report_set_vivaldi(&r, v, 3, NAN, &err), err, "vivaldi.height");
    v[1] = NAN;
    assert_fails(node_report_set_vivaldi(&r, v, 3, 0, &err), err, "vivaldi.vector");
    v[1] = INFINITY;
    assert_fails(node_report_set_vivaldi(&r, v, 3, 0, &err), err, "vivaldi.vector");
    assert_false(r.set & NODE_F_VIVALDI);
    node_report_clear(&r);
}

static void test_node_labels(void **state)
{
    (void)state;
    char s[CS_NAME_MAX + 2];
    node_report r;
    cs_error err;
    node_report_init(&r);
    assert_int_equal(node_report_add_label(&r, "zone", "a", &err), 0);
    assert_int_equal(node_report_add_label(&r, "rack", "r7", &err), 0);
    assert_int_equal(node_report_add_label(&r, "zone", "b", &err), 0); /* replaces */
    assert_true(r.set & NODE_F_LABELS);
    assert_int_equal(r.n_labels, 2);
    assert_string_equal(r.labels[0].value, "b");
    assert_fails(node_report_add_label(&r, "", "a", &err), err, "labels");
    assert_fails(node_report_add_label(&r, "k", "", &err), err, "labels");
    assert_fails(node_report_add_label(&r, "k", rep(s, CS_NAME_MAX + 1, 'v'), &err), err, "labels");
    assert_fails(node_report_add_label(&r, "k", "a\nb", &err), err, "labels");
    assert_int_equal(r.n_labels, 2);
    node_report_clear(&r);
}

/* ---- job: edge constraints and spreading ---- */

static void test_job_geo(void **state)
{
    (void)state;
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_add_geo(&j, 3, 48.1, 11.5, 25, true, &err), 0);
    assert_int_equal(job_spec_add_geo(&j, 4, -90, -180, 0, false, &err), 0);
    assert_int_equal(j.n_cons, 2);
    assert_int_equal(j.cons[0].kind, JOB_CONS_GEO);
    assert_int_equal(j.cons[0].index, 3);
    assert_true(j.cons[0].lat == 48.1 && j.cons[0].lon == 11.5 && j.cons[0].threshold == 25);
    assert_true(j.cons[0].prefer);
    assert_false(j.cons[1].prefer);
    const double bad[][3] = {{90.5, 0, 1},     {-91, 0, 1}, {0, 180.5, 1}, {0, -181, 1},
                             {NAN, 0, 1},      {0, NAN, 1}, {0, 0, -1},    {0, 0, NAN},
                             {0, 0, INFINITY}, {0, 0, 2e9}};
    const char *field[] = {"location.lat", "location.lat", "location.lon", "location.lon",
                           "location.lat", "location.lon", "threshold",    "threshold",
                           "threshold",    "threshold"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_fails(job_spec_add_geo(&j, 0, bad[i][0], bad[i][1], bad[i][2], false, &err), err,
                     field[i]);
        assert_string_equal(err.field, field[i]);
    }
    assert_int_equal(j.n_cons, 2);
    job_spec_clear(&j); /* frees the constraints (ASan checks) */
    assert_int_equal(j.n_cons, 0);
    assert_null(j.cons);
}

static void test_job_latency_and_connectivity(void **state)
{
    (void)state;
    char s[CS_ID_MAX + 2];
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(job_spec_add_latency(&j, 0, "munich-1", 20, true, &err), 0);
    assert_int_equal(job_spec_add_connectivity(&j, 1, "db", 5.5, false, &err), 0);
    assert_int_equal(j.cons[0].kind, JOB_CONS_LATENCY);
    assert_string_equal(j.cons[0].name, "munich-1");
    assert_int_equal(j.cons[1].kind, JOB_CONS_CONNECTIVITY);
    assert_string_equal(j.cons[1].name, "db");
    assert_true(j.cons[1].threshold == 5.5);
    assert_fails(job_spec_add_latency(&j, 0, "", 1, true, &err), err, "area");
    assert_fails(job_spec_add_latency(&j, 0, NULL, 1, true, &err), err, "area");
    assert_fails(job_spec_add_latency(&j, 0, rep(s, CS_NAME_MAX + 1, 'a'), 1, true, &err), err,
                 "area");
    assert_fails(job_spec_add_latency(&j, 0, "a", -1, true, &err), err, "threshold");
    assert_fails(job_spec_add_connectivity(&j, 0, "a/b", 1, true, &err), err, "target_job");
    assert_fails(job_spec_add_connectivity(&j, 0, rep(s, CS_ID_MAX + 1, 'j'), 1, true, &err), err,
                 "target_job");
    assert_fails(job_spec_add_connectivity(&j, 0, "db", NAN, true, &err), err, "latency_ms");
    assert_int_equal(j.n_cons, 2);
    job_spec_clear(&j);

    /* at most CS_LIST_MAX constraints */
    job_spec_init(&j);
    for (int i = 0; i < CS_LIST_MAX; i++)
        assert_int_equal(job_spec_add_latency(&j, (uint32_t)i, "a", 1, true, &err), 0);
    assert_fails(job_spec_add_latency(&j, 99, "a", 1, true, &err), err, "constraints");
    job_spec_clear(&j);
}

static void test_job_spread(void **state)
{
    (void)state;
    char s[CS_NAME_MAX + 2];
    job_spec j;
    cs_error err;
    job_spec_init(&j);
    assert_int_equal(j.spread, SPREAD_NODE); /* the default */
    assert_int_equal(job_spec_set_spread(&j, "zone", &err), 0);
    assert_int_equal(j.spread, SPREAD_LABEL);
    assert_string_equal(j.spread_label, "zone");
    assert_int_equal(job_spec_set_spread(&j, "none", &err), 0);
    assert_int_equal(j.spread, SPREAD_NONE);
    assert_int_equal(job_spec_set_spread(&j, "node", &err), 0);
    assert_int_equal(j.spread, SPREAD_NODE);
    assert_string_equal(j.spread_label, "");
    assert_fails(job_spec_set_spread(&j, "", &err), err, "spread_by");
    assert_fails(job_spec_set_spread(&j, rep(s, CS_NAME_MAX + 1, 'k'), &err), err, "spread_by");
    job_spec_clear(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cs_fail_fills_and_returns_minus_one),
        cmocka_unit_test(test_cs_fail_truncates_long_text),
        cmocka_unit_test(test_cs_check_quantity),
        cmocka_unit_test(test_cs_milli_ceil),
        cmocka_unit_test(test_virt_names),
        cmocka_unit_test(test_strlist_add_has_dup),
        cmocka_unit_test(test_strlist_copies),
        cmocka_unit_test(test_strlist_rejects_bad_names),
        cmocka_unit_test(test_strlist_caps_entries),
        cmocka_unit_test(test_node_report_init_is_empty),
        cmocka_unit_test(test_node_vcpus),
        cmocka_unit_test(test_node_vcpus_rejects_bad),
        cmocka_unit_test(test_node_memory),
        cmocka_unit_test(test_node_gpus),
        cmocka_unit_test(test_node_percentages),
        cmocka_unit_test(test_node_location),
        cmocka_unit_test(test_node_host),
        cmocka_unit_test(test_node_arch),
        cmocka_unit_test(test_node_virt),
        cmocka_unit_test(test_node_id_check),
        cmocka_unit_test(test_job_init_defaults),
        cmocka_unit_test(test_job_id),
        cmocka_unit_test(test_job_instance),
        cmocka_unit_test(test_job_vcpus),
        cmocka_unit_test(test_job_memory_and_gpus),
        cmocka_unit_test(test_job_virt),
        cmocka_unit_test(test_job_direct_splits_hosts),
        cmocka_unit_test(test_job_direct_rejects_bad),
        cmocka_unit_test(test_job_strategy),
        cmocka_unit_test(test_job_validate),
        cmocka_unit_test(test_node_latency),
        cmocka_unit_test(test_node_vivaldi),
        cmocka_unit_test(test_node_labels),
        cmocka_unit_test(test_job_geo),
        cmocka_unit_test(test_job_latency_and_connectivity),
        cmocka_unit_test(test_job_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
