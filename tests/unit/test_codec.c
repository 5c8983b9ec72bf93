/* test_codec.c - JSON to core and back: every wrong type, bad number or
 * over-long string in a job or node report is a 400-style error naming
 * the JSON field; documents and results have the documented shape. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "virt.h"

static json_t *obj(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (!v)
        fail_msg("test JSON invalid: %s: %s", text, je.text);
    return v;
}

/* Decodes text as a job (id from the body); returns the call's result. */
static int job_from(const char *text, job_spec *j, unsigned *notes, cs_error *e)
{
    json_t *v = obj(text);
    int rc = codec_job(v, NULL, 0, "", j, notes, e);
    json_decref(v);
    return rc;
}

static void expect_job_error(const char *text, const char *field)
{
    job_spec j;
    cs_error e;
    memset(&e, 0, sizeof e);
    int rc = job_from(text, &j, NULL, &e);
    job_spec_clear(&j);
    if (rc != -1)
        fail_msg("accepted: %s", text);
    if (strcmp(e.field, field) != 0)
        fail_msg("%s: field '%s' (%s), wanted '%s'", text, e.field, e.msg, field);
    assert_true(e.msg[0] != 0);
}

static void expect_node_error(const char *text, const char *field)
{
    node_report r;
    cs_error e;
    memset(&e, 0, sizeof e);
    json_t *v = obj(text);
    int rc = codec_node(v, &r, &e);
    json_decref(v);
    node_report_clear(&r);
    if (rc != -1)
        fail_msg("accepted: %s", text);
    if (strcmp(e.field, field) != 0)
        fail_msg("%s: field '%s' (%s), wanted '%s'", text, e.field, e.msg, field);
}

static void test_parse_object(void **state)
{
    (void)state;
    cs_error e;
    const char *bad[] = {"",
                         "{",
                         "[1,2]",
                         "\"x\"",
                         "{\"a\":1,\"a\":2}",
                         "{\"vcpus\": NaN}",
                         "{\"vcpus\": Infinity}",
                         "{\"vcpus\": 1e400}",
                         "{\"vcpus\": 123456789012345678901234567890}",
                         "{\"a\":1} trailing",
                         "{\"a\":\"\\u0000\"}",
                         "{\"a\":\"\xff\xfe\"}",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        memset(&e, 0, sizeof e);
        json_t *v = codec_parse_object(bad[i], strlen(bad[i]), &e);
        if (v)
            fail_msg("accepted: %s", bad[i]);
        assert_string_equal(e.field, "body");
        assert_true(e.msg[0] != 0);
    }
    assert_null(codec_parse_object(NULL, 0, &e));
    json_t *v = codec_parse_object("{\"a\":1}", 7, &e);
    assert_non_null(v);
    json_decref(v);
    /* nesting past jansson's depth limit is an error, not a crash */
    size_t n = 5000;
    char *deep = malloc(2 * n + 16);
    strcpy(deep, "{\"a\":");
    size_t p = 5;
    for (size_t i = 0; i < n; i++)
        deep[p++] = '[';
    for (size_t i = 0; i < n; i++)
        deep[p++] = ']';
    deep[p++] = '}';
    deep[p] = 0;
    assert_null(codec_parse_object(deep, p, &e));
    assert_string_equal(e.field, "body");
    free(deep);
}

static void test_job_minimal_and_full(void **state)
{
    (void)state;
    job_spec j;
    cs_error e;
    unsigned notes = 99;
    assert_int_equal(job_from("{\"_id\":\"j1\",\"virtualization\":\"docker\"}", &j, &notes, &e), 0);
    assert_string_equal(j.id, "j1");
    assert_int_equal(j.virt, VIRT_CONTAINER);
    assert_int_equal(j.vcpus_milli, 0);
    assert_int_equal(notes, 0);
    job_spec_clear(&j);

    assert_int_equal(
        job_from("{\"id\":\"j2\",\"vcpus\":1.5,\"memory\":512,\"vgpus\":1,"
                 "\"virtualization\":\"unikernel\",\"arch\":[\"arm64\",\"amd64\"],"
                 "\"constraints\":[{\"type\":\"direct\",\"node\":\"h1; h2\"},"
                 "{\"type\":\"addons\",\"needs\":[\"gpu\"]},"
                 "{\"type\":\"geo\",\"location\":\"1,2\",\"threshold\":5},"
                 "{\"type\":\"latency\",\"area\":\"x\",\"threshold\":5}],"
                 "\"volumes\":[{\"csi_driver\":\"nfs\"},{\"name\":\"plain\"}],"
                 "\"strategy\":\"best-fit\",\"top_k\":3,\"unrelated\":{\"kept\":true}}",
                 &j, &notes, &e),
        0);
    assert_string_equal(j.id, "j2");
    assert_int_equal(j.vcpus_milli, 1500);
    assert_int_equal(j.memory_mb, 512);
    assert_int_equal(j.gpus, 1);
    assert_int_equal(j.virt, VIRT_UNIKERNEL);
    assert_int_equal(j.arch.n, 2);
    assert_int_equal(j.hosts.n, 2);
    assert_true(j.has_direct);
    assert_true(strlist_has(&j.addons, "gpu"));
    assert_true(strlist_has(&j.csi, "nfs"));
    assert_int_equal(j.csi.n, 1);
    assert_int_equal(j.strategy, STRATEGY_BEST_FIT);
    assert_int_equal(j.top_k, 3);
    assert_int_equal(notes, 0);
    assert_int_equal(j.n_cons, 2);
    assert_int_equal(j.cons[0].kind, JOB_CONS_GEO);
    assert_int_equal(j.cons[0].index, 2);
    assert_true(j.cons[0].lat == 1 && j.cons[0].lon == 2 && j.cons[0].threshold == 5);
    assert_false(j.cons[0].prefer);
    assert_int_equal(j.cons[1].kind, JOB_CONS_LATENCY);
    assert_int_equal(j.cons[1].index, 3);
    assert_string_equal(j.cons[1].name, "x");
    assert_true(j.cons[1].prefer); /* latency ranks lower first unless told not to */
    job_spec_clear(&j);

    /* nulls are "not given"; a direct constraint naming only a cluster
     * does not restrict nodes; a node list works like "a;b" */
    assert_int_equal(job_from("{\"_id\":\"j3\",\"virtualization\":\"container\",\"vcpus\":null,"
                              "\"constraints\":[{\"type\":\"direct\",\"cluster\":\"c1\"},"
                              "{\"type\":\"direct\",\"node\":[\"a\",\"b\"]}]}",
                              &j, NULL, &e),
                     0);
    assert_int_equal(j.vcpus_milli, 0);
    assert_int_equal(j.hosts.n, 2);
    job_spec_clear(&j);

    /* "all" asks for every qualified node, whatever the cluster size */
    assert_int_equal(job_from("{\"_id\":\"j4\",\"virtualization\":\"container\",\"top_k\":\"all\"}",
                              &j, NULL, &e),
                     0);
    assert_int_equal(j.top_k, CS_TOPK_MAX);
    job_spec_clear(&j);
}

static void test_job_id_sources(void **state)
{
    (void)state;
    job_spec j;
    cs_error e;
    /* the URL's id wins, even over a body id of the wrong type */
    json_t *v = obj("{\"_id\":42,\"virtualization\":\"container\"}");
    assert_int_equal(codec_job(v, "from-url", 7, "", &j, NULL, &e), 0);
    assert_string_equal(j.id, "from-url");
    assert_int_equal(j.instance, 7);
    job_spec_clear(&j);
    assert_int_equal(codec_job(v, "bad/id", 0, "", &j, NULL, &e), -1);
    job_spec_clear(&j);
    json_decref(v);

    char id[CS_ID_MAX + 1];
    v = obj("{\"virtualization\":\"container\"}");
    assert_int_equal(codec_job_id(v, "", id, &e), 1);
    json_decref(v);
    v = obj("{\"id\":\"alt\"}");
    assert_int_equal(codec_job_id(v, "", id, &e), 0);
    assert_string_equal(id, "alt");
    json_decref(v);
    v = obj("{\"_id\":\"has space\"}");
    assert_int_equal(codec_job_id(v, "job.", id, &e), -1);
    assert_string_equal(e.field, "job._id");
    json_decref(v);

    uint32_t inst = 5;
    v = obj("{\"instance\":3,\"a\":-1,\"b\":1.5,\"c\":\"1\",\"d\":2000000}");
    assert_int_equal(codec_instance(v, "instance", &inst, &e), 0);
    assert_int_equal(inst, 3);
    assert_int_equal(codec_instance(v, "missing", &inst, &e), 1);
    assert_int_equal(codec_instance(v, "a", &inst, &e), -1);
    assert_string_equal(e.field, "a");
    assert_int_equal(codec_instance(v, "b", &inst, &e), -1);
    assert_int_equal(codec_instance(v, "c", &inst, &e), -1);
    assert_int_equal(codec_instance(v, "d", &inst, &e), -1);
    json_decref(v);
}

static void test_job_errors(void **state)
{
    (void)state;
    expect_job_error("{\"virtualization\":\"container\"}", "_id");
    expect_job_error("{\"_id\":5,\"virtualization\":\"container\"}", "_id");
    expect_job_error("{\"_id\":\"\",\"virtualization\":\"container\"}", "_id");
    expect_job_error("{\"_id\":\"j\"}", "virtualization");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"kvm\"}", "virtualization");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":[\"container\"]}", "virtualization");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"vcpus\":\"2\"}", "vcpus");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"vcpus\":true}", "vcpus");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"vcpus\":-1}", "vcpus");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"vcpus\":1e300}", "vcpus");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"memory\":-0.5}", "memory");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"memory\":{}}", "memory");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"vgpus\":1.5}", "vgpus");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"unikernel\"}", "arch");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"unikernel\",\"arch\":[]}", "arch");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"unikernel\",\"arch\":[1]}", "arch[0]");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"unikernel\",\"arch\":[\"a\",\"\"]}",
                     "arch[1]");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"arch\":5}", "arch");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"constraints\":{}}",
                     "constraints");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"constraints\":[1]}",
                     "constraints[0]");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"constraints\":[{}]}",
                     "constraints[0].type");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\","
                     "\"constraints\":[{\"type\":\"geo\",\"location\":\"0,0\",\"threshold\":1},"
                     "{\"type\":\"magic\"}]}",
                     "constraints[1].type");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\","
                     "\"constraints\":[{\"type\":\"direct\",\"node\":5}]}",
                     "constraints[0].node");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\","
                     "\"constraints\":[{\"type\":\"direct\",\"node\":[\"a\",7]}]}",
                     "constraints[0].node[1]");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\","
                     "\"constraints\":[{\"type\":\"addons\"}]}",
                     "constraints[0].needs");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\","
                     "\"constraints\":[{\"type\":\"addons\",\"needs\":[null]}]}",
                     "constraints[0].needs[0]");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"volumes\":[5]}",
                     "volumes[0]");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\","
                     "\"volumes\":[{\"csi_driver\":3}]}",
                     "volumes[0].csi_driver");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"strategy\":\"x\"}",
                     "strategy");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"top_k\":0}", "top_k");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"top_k\":\"most\"}",
                     "top_k");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"top_k\":2.5}", "top_k");
    expect_job_error("{\"_id\":\"j\",\"virtualization\":\"container\",\"top_k\":1000000}", "top_k");

    /* over-long strings and lists */
    char buf[2048];
    char big[300];
    memset(big, 'x', 299);
    big[299] = 0;
    snprintf(buf, sizeof buf, "{\"_id\":\"%s\",\"virtualization\":\"container\"}", big);
    expect_job_error(buf, "_id");
    snprintf(buf, sizeof buf,
             "{\"_id\":\"j\",\"virtualization\":\"container\",\"constraints\":"
             "[{\"type\":\"addons\",\"needs\":[\"%s\"]}]}",
             big);
    expect_job_error(buf, "constraints[0].needs[0]");
    snprintf(buf, sizeof buf, "{\"_id\":\"j\",\"virtualization\":\"%s\"}", big);
    expect_job_error(buf, "virtualization");
    char *list = malloc(20000);
    strcpy(list, "{\"_id\":\"j\",\"virtualization\":\"container\",\"arch\":[");
    for (int i = 0; i < 100; i++)
        sprintf(list + strlen(list), "%s\"a%d\"", i ? "," : "", i);
    strcat(list, "]}");
    expect_job_error(list, "arch");
    free(list);

    /* a non-object job, with a prefix */
    job_spec j;
    cs_error e;
    json_t *v = json_integer(3);
    assert_int_equal(codec_job(v, NULL, 0, "job.", &j, NULL, &e), -1);
    assert_string_equal(e.field, "job");
    job_spec_clear(&j);
    json_decref(v);
    v = obj("{\"_id\":\"j\",\"virtualization\":\"container\",\"vcpus\":-2}");
    assert_int_equal(codec_job(v, NULL, 0, "job.", &j, NULL, &e), -1);
    assert_string_equal(e.field, "job.vcpus");
    job_spec_clear(&j);
    json_decref(v);
}

static void test_node_report(void **state)
{
    (void)state;
    node_report r;
    cs_error e;
    json_t *v = obj("{\"host\":\"edge-1\",\"virtualization\":[\"docker\",\"wasm\",\"firecracker\"],"
                    "\"architecture\":\"arm64\",\"vcpus\":4,\"memory\":8192,\"vgpus\":1,"
                    "\"cpu_percent\":12.5,\"memory_percent\":50,\"supported_addons\":[\"gpu\"],"
                    "\"csi_drivers\":[\"nfs\",{\"csi_driver_name\":\"ceph\","
                    "\"csi_driver_endpoint\":\"/x\"}],\"location\":{\"lat\":48.1,\"lon\":11.5},"
                    "\"ip\":\"10.0.0.1\"}");
    assert_int_equal(codec_node(v, &r, &e), 0);
    assert_string_equal(r.host, "edge-1");
    assert_int_equal(r.virt, VIRT_CONTAINER | VIRT_WASM);
    assert_string_equal(r.arch, "arm64");
    assert_int_equal(r.vcpus_milli, 4000);
    assert_int_equal(r.memory_mb, 8192);
    assert_int_equal(r.gpus, 1);
    assert_true(r.cpu_percent == 12.5);
    assert_true(strlist_has(&r.addons, "gpu"));
    assert_true(strlist_has(&r.csi, "ceph"));
    assert_true(strlist_has(&r.csi, "nfs"));
    assert_true(r.set & NODE_F_LOCATION);
    assert_true((r.set & (NODE_F_ADDONS | NODE_F_CSI)) == (NODE_F_ADDONS | NODE_F_CSI));
    node_report_clear(&r);
    json_decref(v);

    /* technology is an alias; a heartbeat carries only some fields */
    v = obj("{\"technology\":[\"unikernel\"],\"cpu_percent\":3}");
    assert_int_equal(codec_node(v, &r, &e), 0);
    assert_int_equal(r.virt, VIRT_UNIKERNEL);
    assert_int_equal(r.set, NODE_F_VIRT | NODE_F_CPU_PCT);
    node_report_clear(&r);
    json_decref(v);
    v = obj("{}");
    assert_int_equal(codec_node(v, &r, &e), 0);
    assert_int_equal(r.set, 0);
    node_report_clear(&r);
    json_decref(v);
}

static void test_node_errors(void **state)
{
    (void)state;
    expect_node_error("{\"host\":5}", "host");
    expect_node_error("{\"host\":\"\"}", "host");
    expect_node_error("{\"virtualization\":\"kvm\"}", "virtualization");
    expect_node_error("{\"virtualization\":[\"kvm\",\"xen\"]}", "virtualization");
    /* an empty list would survive in the stored document and fail the replay */
    expect_node_error("{\"virtualization\":[]}", "virtualization");
    expect_node_error("{\"virtualization\":[1]}", "virtualization[0]");
    expect_node_error("{\"technology\":{}}", "technology");
    expect_node_error("{\"architecture\":[]}", "architecture");
    expect_node_error("{\"vcpus\":-1}", "vcpus");
    expect_node_error("{\"vcpus\":\"4\"}", "vcpus");
    expect_node_error("{\"memory\":1e20}", "memory");
    expect_node_error("{\"vgpus\":0.5}", "vgpus");
    expect_node_error("{\"cpu_percent\":101}", "cpu_percent");
    expect_node_error("{\"memory_percent\":-3}", "memory_percent");
    expect_node_error("{\"supported_addons\":5}", "supported_addons");
    expect_node_error("{\"supported_addons\":[\"\"]}", "supported_addons[0]");
    expect_node_error("{\"csi_drivers\":\"nfs\"}", "csi_drivers");
    expect_node_error("{\"csi_drivers\":[{\"name\":\"x\"}]}", "csi_drivers[0].csi_driver_name");
    expect_node_error("{\"csi_drivers\":[3]}", "csi_drivers[0]");
    expect_node_error("{\"location\":[1,2]}", "location");
    expect_node_error("{\"location\":{\"lat\":1}}", "location.lon");
    expect_node_error("{\"location\":{\"lat\":91,\"lon\":0}}", "location.lat");
    expect_node_error("{\"location\":{\"lat\":0,\"lon\":\"e\"}}", "location.lon");
    char buf[600], big[300];
    memset(big, 'h', 299);
    big[299] = 0;
    snprintf(buf, sizeof buf, "{\"host\":\"%s\"}", big);
    expect_node_error(buf, "host");
    snprintf(buf, sizeof buf, "{\"architecture\":\"%s\"}", big);
    expect_node_error(buf, "architecture");
}

static void test_node_merge_and_doc(void **state)
{
    (void)state;
    json_t *r1 = obj("{\"host\":\"h\",\"technology\":[\"docker\"],\"vcpus\":4,\"custom\":{\"k\":1},"
                     "\"_id\":\"spoof\",\"active\":false,\"gpu_driver\":null}");
    json_t *d1 = codec_node_merge(NULL, r1);
    assert_non_null(d1);
    assert_null(json_object_get(d1, "_id"));
    assert_null(json_object_get(d1, "active"));
    assert_null(json_object_get(d1, "gpu_driver"));
    assert_non_null(json_object_get(d1, "custom"));
    json_t *r2 = obj("{\"virtualization\":[\"container\"],\"vcpus\":8}");
    json_t *d2 = codec_node_merge(d1, r2);
    assert_null(json_object_get(d2, "technology"));
    assert_int_equal(json_integer_value(json_object_get(d2, "vcpus")), 8);
    assert_string_equal(json_string_value(json_object_get(d2, "host")), "h");
    assert_non_null(json_object_get(d2, "custom"));
    /* the old document is untouched (documents are immutable) */
    assert_int_equal(json_integer_value(json_object_get(d1, "vcpus")), 4);

    node_view v;
    memset(&v, 0, sizeof v);
    strcpy(v.id, "n1");
    v.active = true;
    v.last_report = 1000.5;
    v.free_cpu_milli = 2500;
    v.free_memory_mb = 100;
    v.reserved_cpu_milli = 1500;
    v.n_reservations = 2;
    json_t *doc = codec_node_doc(d2, &v);
    assert_string_equal(json_string_value(json_object_get(doc, "_id")), "n1");
    assert_true(json_is_true(json_object_get(doc, "active")));
    assert_true(json_real_value(json_object_get(json_object_get(doc, "free"), "vcpus")) == 2.5);
    assert_true(json_real_value(json_object_get(json_object_get(doc, "reserved"), "vcpus")) == 1.5);
    assert_int_equal(json_integer_value(json_object_get(doc, "reservations")), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "host")), "h");
    json_decref(doc);
    doc = codec_node_doc(NULL, &v);
    assert_non_null(doc);
    json_decref(doc);
    json_decref(r1);
    json_decref(r2);
    json_decref(d1);
    json_decref(d2);
}

static void test_results(void **state)
{
    (void)state;
    engine_candidate cands[2];
    memset(cands, 0, sizeof cands);
    strcpy(cands[0].node_id, "n1");
    cands[0].score = 97.456;
    strcpy(cands[1].node_id, "n2");
    cands[1].score = 80;
    engine_result r;
    memset(&r, 0, sizeof r);
    r.n_nodes = 3;
    r.n_qualified = 2;
    r.reasons[REASON_CPU] = 1;
    r.candidates = cands;
    r.n_candidates = 2;
    r.placed = true;
    strcpy(r.node_id, "n1");
    json_t *job = obj("{\"_id\":\"j\",\"anything\":[1,2,3]}");
    json_t *node = obj("{\"_id\":\"n1\",\"host\":\"h\"}");
    char *s = codec_result_placed(job, node, &r, "2/3 nodes qualify: 1 insufficient cpu");
    json_t *doc = obj(s);
    assert_true(json_is_true(json_object_get(doc, "found")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "node"), "_id")),
                        "n1");
    assert_true(json_equal(json_object_get(doc, "job"), job));
    json_t *c = json_object_get(doc, "candidates");
    assert_int_equal(json_array_size(c), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "node_id")), "n1");
    assert_true(json_real_value(json_object_get(json_array_get(c, 0), "score")) == 97.46);
    json_decref(doc);
    free(s);

    r.placed = false;
    r.n_qualified = 0;
    r.n_candidates = 0;
    r.reasons[REASON_INACTIVE] = 2;
    s = codec_result_unplaced(job, &r, "0/3 nodes qualify: 2 inactive, 1 insufficient cpu");
    doc = obj(s);
    assert_true(json_is_false(json_object_get(doc, "found")));
    assert_string_equal(json_string_value(json_object_get(doc, "status")),
                        "NO_QUALIFIED_WORKER_FOUND");
    json_t *reasons = json_object_get(doc, "reasons");
    assert_int_equal(json_integer_value(json_object_get(reasons, "inactive")), 2);
    assert_int_equal(json_integer_value(json_object_get(reasons, "insufficient_cpu")), 1);
    assert_null(json_object_get(reasons, "technology"));
    assert_true(json_equal(json_object_get(doc, "job"), job));
    json_decref(doc);
    free(s);

    json_t *sched = codec_schedule_answer(&r, "m");
    assert_int_equal(json_integer_value(json_object_get(sched, "nodes")), 3);
    assert_int_equal(json_integer_value(json_object_get(sched, "qualified")), 0);
    json_decref(sched);

    cs_error e;
    cs_fail(&e, "vcpus", "must be >= 0");
    s = codec_result_invalid(job, &e);
    doc = obj(s);
    assert_true(json_is_false(json_object_get(doc, "found")));
    json_decref(doc);
    free(s);
    s = codec_result_invalid(NULL, &e);
    assert_non_null(s);
    free(s);
    json_decref(job);
    json_decref(node);
}

static void test_error_json(void **state)
{
    (void)state;
    char *s = codec_error_json("vcpus", "must be >= 0");
    assert_string_equal(s, "{\"error\":{\"field\":\"vcpus\",\"message\":\"must be >= 0\"}}");
    free(s);
    /* a message quoting a truncated UTF-8 value still makes valid JSON */
    s = codec_error_json("virtualization", "unknown virtualization '\xc3'");
    assert_non_null(s);
    json_t *v = obj(s);
    json_decref(v);
    free(s);
}

/* ---- edge constraints, node edge fields, filters and explanations ---- */

#define JOB_WITH(cons) "{\"_id\":\"j\",\"virtualization\":\"container\",\"constraints\":[" cons "]}"

static void test_edge_constraints(void **state)
{
    (void)state;
    job_spec j;
    cs_error e;
    assert_int_equal(
        job_from(JOB_WITH("{\"type\":\"direct\",\"node\":\"h\"},"
                          "{\"type\":\"geo\",\"location\":\" 48.1 , 11.5 \",\"threshold\":\"25\","
                          "\"prefer\":\"nearest\"},"
                          "{\"type\":\"geo\",\"location\":{\"lat\":-33.9,\"long\":\"151.2\"},"
                          "\"threshold\":0},"
                          "{\"type\":\"latency\",\"area\":\"munich-1\",\"threshold\":12.5,"
                          "\"prefer\":\"none\"},"
                          "{\"type\":\"connectivity\",\"target_job\":\"db\",\"latency_ms\":5},"
                          "{\"type\":\"connectivity\",\"target_job\":\"db\",\"threshold\":7}"),
                 &j, NULL, &e),
        0);
    assert_int_equal(j.n_cons, 5);
    assert_int_equal(j.cons[0].kind, JOB_CONS_GEO);
    assert_int_equal(j.cons[0].index, 1);
    assert_true(j.cons[0].lat == 48.1 && j.cons[0].lon == 11.5 && j.cons[0].threshold == 25);
    assert_true(j.cons[0].prefer);
    assert_true(j.cons[1].lat == -33.9 && j.cons[1].lon == 151.2 && j.cons[1].threshold == 0);
    assert_false(j.cons[1].prefer); /* geo: only when asked */
    assert_int_equal(j.cons[2].kind, JOB_CONS_LATENCY);
    assert_false(j.cons[2].prefer);
    assert_true(j.cons[2].threshold == 12.5);
    assert_int_equal(j.cons[3].kind, JOB_CONS_CONNECTIVITY);
    assert_string_equal(j.cons[3].name, "db");
    assert_true(j.cons[3].threshold == 5 && j.cons[3].prefer);
    assert_true(j.cons[4].threshold == 7);
    job_spec_clear(&j);

    assert_int_equal(job_from("{\"_id\":\"j\",\"virtualization\":\"container\","
                              "\"spread_by\":\"zone\"}",
                              &j, NULL, &e),
                     0);
    assert_int_equal(j.spread, SPREAD_LABEL);
    assert_string_equal(j.spread_label, "zone");
    job_spec_clear(&j);
}

static void test_edge_constraint_errors(void **state)
{
    (void)state;
    struct {
        const char *text, *field;
    } cases[] = {
        {JOB_WITH("{\"type\":\"geo\",\"threshold\":5}"), "constraints[0].location"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"48,11\"}"), "constraints[0].threshold"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"48,11\",\"threshold\":-1}"),
         "constraints[0].threshold"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"48,11\",\"threshold\":\"far\"}"),
         "constraints[0].threshold"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"48,11\",\"threshold\":true}"),
         "constraints[0].threshold"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"48,11\",\"threshold\":1e300}"),
         "constraints[0].threshold"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"91,11\",\"threshold\":1}"),
         "constraints[0].location"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"-90.5,11\",\"threshold\":1}"),
         "constraints[0].location"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"0,180.5\",\"threshold\":1}"),
         "constraints[0].location"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"0,-181\",\"threshold\":1}"),
         "constraints[0].location"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"north,east\",\"threshold\":1}"),
         "constraints[0].location"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"48\",\"threshold\":1}"),
         "constraints[0].location"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"48,11,3\",\"threshold\":1}"),
         "constraints[0].location"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":[48,11],\"threshold\":1}"),
         "constraints[0].location"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":{\"lat\":95,\"lon\":0},\"threshold\":1}"),
         "constraints[0].location.lat"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":{\"lat\":5,\"lon\":190},\"threshold\":1}"),
         "constraints[0].location.lon"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":{\"lat\":5},\"threshold\":1}"),
         "constraints[0].location.lon"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":{\"lat\":\"x\",\"lon\":1},\"threshold\":1}"),
         "constraints[0].location.lat"},
        {JOB_WITH("{\"type\":\"geo\",\"location\":\"1,2\",\"threshold\":1,\"prefer\":\"far\"}"),
         "constraints[0].prefer"},
        {JOB_WITH("{\"type\":\"latency\",\"threshold\":1}"), "constraints[0].area"},
        {JOB_WITH("{\"type\":\"latency\",\"area\":\"\",\"threshold\":1}"), "constraints[0].area"},
        {JOB_WITH("{\"type\":\"latency\",\"area\":5,\"threshold\":1}"), "constraints[0].area"},
        {JOB_WITH("{\"type\":\"latency\",\"area\":\"a\"}"), "constraints[0].threshold"},
        {JOB_WITH("{\"type\":\"latency\",\"area\":\"a\",\"threshold\":-0.1}"),
         "constraints[0].threshold"},
        {JOB_WITH("{\"type\":\"connectivity\",\"latency_ms\":1}"), "constraints[0].target_job"},
        {JOB_WITH("{\"type\":\"connectivity\",\"target_job\":\"a/b\",\"latency_ms\":1}"),
         "constraints[0].target_job"},
        {JOB_WITH("{\"type\":\"connectivity\",\"target_job\":\"db\"}"),
         "constraints[0].latency_ms"},
        {JOB_WITH("{\"type\":\"connectivity\",\"target_job\":\"db\",\"latency_ms\":-5}"),
         "constraints[0].latency_ms"},
        {JOB_WITH("{\"type\":\"connectivity\",\"target_job\":\"db\",\"threshold\":-5}"),
         "constraints[0].threshold"},
        {JOB_WITH("{\"type\":\"teleport\"}"), "constraints[0].type"},
        {"{\"_id\":\"j\",\"virtualization\":\"container\",\"spread_by\":5}", "spread_by"},
        {"{\"_id\":\"j\",\"virtualization\":\"container\",\"spread_by\":\"\"}", "spread_by"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_job_error(cases[i].text, cases[i].field);
    /* the prefix names nested jobs (replicate) */
    job_spec j;
    cs_error e;
    json_t *v = obj(JOB_WITH("{\"type\":\"geo\",\"location\":\"1,2\",\"threshold\":-1}"));
    assert_int_equal(codec_job(v, NULL, 0, "job.", &j, NULL, &e), -1);
    assert_string_equal(e.field, "job.constraints[0].threshold");
    job_spec_clear(&j);
    json_decref(v);
}

static void test_node_edge_fields(void **state)
{
    (void)state;
    node_report r;
    cs_error e;
    json_t *v = obj("{\"location\":\"48.1,11.5\",\"latency_ms\":{\"munich-1\":12.5,\"x\":\"3\"},"
                    "\"vivaldi\":{\"vector\":[1,-2,3],\"height\":0.5},"
                    "\"labels\":{\"zone\":\"a\",\"n\":[1,2],\"flag\":true}}");
    assert_int_equal(codec_node(v, &r, &e), 0);
    assert_true(r.lat == 48.1 && r.lon == 11.5);
    assert_int_equal(r.n_latency, 2);
    assert_true(r.latency[1].ms == 3);
    assert_int_equal(r.vivaldi_dim, 3);
    assert_true(r.vivaldi[1] == -2 && r.vivaldi_height == 0.5);
    assert_int_equal(r.n_labels, 1); /* values that are not strings are kept, not used */
    assert_string_equal(r.labels[0].key, "zone");
    uint32_t all = NODE_F_LOCATION | NODE_F_LATENCY | NODE_F_VIVALDI | NODE_F_LABELS;
    assert_int_equal(r.set & all, all);
    node_report_clear(&r);
    json_decref(v);

    /* the original's shapes: top-level lat/long (numbers or strings), vivaldi_* */
    v = obj("{\"lat\":\"52.52\",\"long\":13.405,\"vivaldi_vector\":[4,5],\"vivaldi_height\":2,"
            "\"vivaldi_error\":0.3}");
    assert_int_equal(codec_node(v, &r, &e), 0);
    assert_true(r.lat == 52.52 && r.lon == 13.405);
    assert_int_equal(r.vivaldi_dim, 2);
    assert_true(r.vivaldi_height == 2);
    node_report_clear(&r);
    json_decref(v);

    /* empty tables are reports too: they clear */
    v = obj("{\"latency_ms\":{\"not-measured\":null},\"labels\":{}}");
    assert_int_equal(codec_node(v, &r, &e), 0);
    assert_int_equal(r.set, NODE_F_LATENCY | NODE_F_LABELS);
    node_report_clear(&r);
    json_decref(v);

    char big[200], buf[300];
    memset(big, 'v', 100);
    big[100] = 0;
    snprintf(buf, sizeof buf, "{\"labels\":{\"zone\":\"%s\"}}", big);
    struct {
        const char *text, *field;
    } cases[] = {
        {"{\"location\":\"1\"}", "location"},
        {"{\"location\":\"95,1\"}", "location"},
        {"{\"location\":{\"lat\":1,\"lon\":200}}", "location.lon"},
        {"{\"lat\":1}", "long"},
        {"{\"long\":1}", "lat"},
        {"{\"lat\":91,\"long\":1}", "lat"},
        {"{\"lat\":1,\"long\":\"w\"}", "long"},
        {"{\"latency_ms\":5}", "latency_ms"},
        {"{\"latency_ms\":{\"a\":-1}}", "latency_ms.a"},
        {"{\"latency_ms\":{\"a\":\"slow\"}}", "latency_ms.a"},
        {"{\"vivaldi\":[1,2]}", "vivaldi"},
        {"{\"vivaldi\":{\"height\":1}}", "vivaldi.vector"},
        {"{\"vivaldi\":{\"vector\":[]}}", "vivaldi.vector"},
        {"{\"vivaldi\":{\"vector\":[1,\"x\"]}}", "vivaldi.vector[1]"},
        {"{\"vivaldi\":{\"vector\":[1],\"height\":-1}}", "vivaldi.height"},
        {"{\"vivaldi_height\":1}", "vivaldi_vector"},
        {"{\"vivaldi_vector\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}", "vivaldi_vector"},
        {"{\"labels\":[\"zone\"]}", "labels"},
        {buf, "labels.zone"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_node_error(cases[i].text, cases[i].field);
}

static void test_node_merge_edge_spellings(void **state)
{
    (void)state;
    json_t *d1 = obj("{\"lat\":1,\"long\":2,\"vivaldi_vector\":[1],\"vivaldi_height\":0}");
    json_t *r = obj("{\"location\":\"3,4\",\"vivaldi\":{\"vector\":[2]}}");
    json_t *d2 = codec_node_merge(d1, r);
    assert_null(json_object_get(d2, "lat"));
    assert_null(json_object_get(d2, "long"));
    assert_null(json_object_get(d2, "vivaldi_vector"));
    assert_null(json_object_get(d2, "vivaldi_height"));
    assert_non_null(json_object_get(d2, "location"));
    json_decref(r);
    r = obj("{\"lat\":5,\"long\":6,\"vivaldi_vector\":[3]}");
    json_t *d3 = codec_node_merge(d2, r);
    assert_null(json_object_get(d3, "location"));
    assert_null(json_object_get(d3, "vivaldi"));
    /* the merged document decodes to what was sent last */
    node_report nr;
    cs_error e;
    assert_int_equal(codec_node(d3, &nr, &e), 0);
    assert_true(nr.lat == 5 && nr.lon == 6 && nr.vivaldi[0] == 3);
    node_report_clear(&nr);
    json_decref(r);
    json_decref(d1);
    json_decref(d2);
    json_decref(d3);
}

/* The result as the tree it used to be built as, serialised. */
static char *result_tree(const json_t *job, const json_t *node, const engine_result *r,
                         const char *message)
{
    json_t *doc =
        json_pack("{s:b, s:s, s:O, s:O, s:o, s:o, s:o, s:s}", "found", 1, "status",
                  "NODE_SCHEDULED", "node", node, "job", job, "candidates", codec_candidates(r),
                  "reasons", codec_reasons(r), "filters", codec_filters(r), "message", message);
    char *s = codec_dump(doc);
    json_decref(doc);
    return s;
}

/* Results are written as text without trees: byte for byte what
 * serialising the trees gives, for awkward figures, strings and stored
 * documents too. */
static void test_result_text_matches_trees(void **state)
{
    (void)state;
    static const double scores[] = {97.456, 80, 0, 100, 33.335, 0.005, 12.3, 1e13, 99.999};
    static const int64_t cpus[] = {2500, 0, -1500, 1, 63999, 1001, 10, 64000, 123456789};
    static const char *const stored[] = {
        NULL,
        "{}",
        "{\"host\":\"h\",\"virtualization\":[\"container\"],\"vcpus\":64,\"memory\":262144.5}",
        "{\"host\":\"h\",\"custom\":{\"free\":1,\"x\":\"caf\xc3\xa9\"}}",
        "{\"host\":\"a\\\"b\\\\c\\u0001\",\"labels\":{\"k\":\"v\"},\"n\":null,\"t\":true}",
        "[1,2]",
    };
    static const char *const messages[] = {"2/3 nodes qualify", "", "quote \" back \\ slash",
                                           "ctl \x01\n", "caf\xc3\xa9"};
    engine_candidate cands[sizeof scores / sizeof scores[0]];
    memset(cands, 0, sizeof cands);
    for (size_t i = 0; i < sizeof scores / sizeof scores[0]; i++) {
        snprintf(cands[i].node_id, sizeof cands[i].node_id, "n-%zu\"x", i);
        cands[i].score = scores[i];
    }
    job_spec j;
    cs_error e;
    assert_int_equal(job_from("{\"_id\":\"j\",\"virtualization\":\"container\",\"constraints\":"
                              "[{\"type\":\"geo\",\"location\":\"1,2\",\"threshold\":5}]}",
                              &j, NULL, &e),
                     0);
    size_t removed[1] = {4};
    engine_result r;
    memset(&r, 0, sizeof r);
    r.job = &j;
    r.cons_removed = removed;
    r.n_nodes = 20;
    r.reasons[REASON_CPU] = 2;
    r.reasons[REASON_TOO_FAR] = 3;
    r.candidates = cands;
    r.n_candidates = sizeof cands / sizeof cands[0];
    r.placed = true;
    json_t *job = obj("{\"_id\":\"j\",\"vcpus\":0.1,\"memory\":1e3,\"list\":[1,2.5,\"s\"]}");
    for (size_t si = 0; si < sizeof stored / sizeof stored[0]; si++) {
        for (size_t ci = 0; ci < sizeof cpus / sizeof cpus[0]; ci++) {
            const char *msg = messages[(si + ci) % (sizeof messages / sizeof messages[0])];
            node_view v;
            memset(&v, 0, sizeof v);
            snprintf(v.id, sizeof v.id, "node-%zu", ci);
            v.active = ci % 2;
            v.last_report = 1795767159.0439 + (double)ci / 7;
            v.free_cpu_milli = cpus[ci];
            v.free_memory_mb = 262143 - (int64_t)ci;
            v.free_gpus = (int32_t)ci;
            v.reserved_cpu_milli = cpus[(ci + 3) % (sizeof cpus / sizeof cpus[0])];
            v.reserved_memory_mb = (int64_t)ci;
            v.n_reservations = (uint32_t)ci;
            json_t *st = stored[si] ? json_loads(stored[si], JSON_DECODE_ANY, NULL) : NULL;
            json_t *node = codec_node_doc(st, &v);
            char *want = result_tree(job, node, &r, msg);
            char *got = codec_result_placed_stored(job, stored[si], &v, &r, msg);
            char *got_tree = codec_result_placed(job, node, &r, msg);
            assert_non_null(want);
            assert_non_null(got);
            assert_string_equal(got, want);
            assert_string_equal(got_tree, want);
            free(want);
            free(got);
            free(got_tree);
            json_decref(node);
            json_decref(st);
        }
    }
    for (size_t mi = 0; mi < sizeof messages / sizeof messages[0]; mi++) {
        json_t *doc = json_pack("{s:b, s:s, s:o, s:o, s:s, s:O, s:o}", "found", 0, "status",
                                "NO_QUALIFIED_WORKER_FOUND", "reasons", codec_reasons(&r),
                                "filters", codec_filters(&r), "message", messages[mi], "job", job,
                                "candidates", json_array());
        char *want = codec_dump(doc);
        char *got = codec_result_unplaced(job, &r, messages[mi]);
        assert_string_equal(got, want);
        free(want);
        free(got);
        json_decref(doc);
    }
    /* A string jansson refuses (not UTF-8) fails the document, as before. */
    node_view v;
    memset(&v, 0, sizeof v);
    strcpy(v.id, "n");
    assert_null(codec_result_placed_stored(job, NULL, &v, &r, "bad \xff"));
    assert_null(codec_result_unplaced(job, &r, "bad \xff"));
    assert_null(codec_result_placed_stored(NULL, NULL, &v, &r, "m"));
    json_decref(job);
    job_spec_clear(&j);
}

static void test_filters_and_explain(void **state)
{
    (void)state;
    job_spec j;
    cs_error e;
    assert_int_equal(job_from("{\"_id\":\"j\",\"virtualization\":\"container\",\"arch\":\"amd64\","
                              "\"constraints\":[{\"type\":\"addons\",\"needs\":[\"a\"]},"
                              "{\"type\":\"geo\",\"location\":\"1,2\",\"threshold\":5}]}",
                              &j, NULL, &e),
                     0);
    size_t removed[1] = {4};
    engine_result r;
    memset(&r, 0, sizeof r);
    r.job = &j;
    r.cons_removed = removed;
    r.n_nodes = 2;
    r.n_qualified = 1;
    r.reasons[REASON_CPU] = 2;
    r.reasons[REASON_TOO_FAR] = 3;
    r.reasons[REASON_NO_LOCATION] = 1;
    r.reasons[REASON_REPLICA_NODE] = 5;
    r.spread_ran = true;
    json_t *f = codec_filters(&r);
    char *s = codec_dump(f);
    assert_string_equal(s, "[{\"filter\":\"inactive\",\"removed\":0},"
                           "{\"filter\":\"technology\",\"removed\":0},"
                           "{\"filter\":\"architecture\",\"removed\":0},"
                           "{\"filter\":\"addons\",\"removed\":0},"
                           "{\"filter\":\"gpu\",\"removed\":0},"
                           "{\"filter\":\"cpu\",\"removed\":2},"
                           "{\"filter\":\"memory\",\"removed\":0},"
                           "{\"filter\":\"geo\",\"removed\":4,\"constraint\":1},"
                           "{\"filter\":\"spread\",\"removed\":5}]");
    free(s);
    json_decref(f);

    json_t *sched = codec_schedule_answer(&r, "m");
    assert_int_equal(json_array_size(json_object_get(sched, "filters")), 9);
    json_decref(sched);

    engine_node_explain x[2];
    memset(x, 0, sizeof x);
    strcpy(x[0].node_id, "good");
    x[0].qualified = true;
    x[0].score = 87.654;
    x[0].rank = 1;
    x[0].holds_instance = true;
    x[0].constraint = -1;
    strcpy(x[1].node_id, "far");
    x[1].reason = REASON_TOO_FAR;
    x[1].constraint = 1;
    x[1].value = 123.45678;
    x[1].limit = 5;
    json_t *ex = codec_explain(&r, x, &j, 1000.5);
    assert_int_equal(json_integer_value(json_object_get(ex, "nodes")), 2);
    assert_int_equal(json_integer_value(json_object_get(ex, "qualified")), 1);
    json_t *per = json_object_get(ex, "per_node");
    assert_int_equal(json_array_size(per), 2);
    s = codec_dump(json_array_get(per, 0));
    assert_string_equal(s, "{\"node_id\":\"good\",\"qualified\":true,\"score\":87.65,\"rank\":1,"
                           "\"holds_instance\":true}");
    free(s);
    json_t *n1 = json_array_get(per, 1);
    assert_string_equal(json_string_value(json_object_get(n1, "reason")), "too_far");
    assert_int_equal(json_integer_value(json_object_get(n1, "constraint")), 1);
    assert_true(json_real_value(json_object_get(n1, "value")) == 123.457);
    assert_true(json_real_value(json_object_get(n1, "limit")) == 5);
    assert_non_null(strstr(json_string_value(json_object_get(n1, "message")), "123.457 km"));
    json_decref(ex);

    /* no job (an instance placed earlier): no filters */
    r.job = NULL;
    f = codec_filters(&r);
    assert_int_equal(json_array_size(f), 0);
    json_decref(f);
    job_spec_clear(&j);
}

int main(void)

{
    json_object_seed(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_object),
        cmocka_unit_test(test_job_minimal_and_full),
        cmocka_unit_test(test_job_id_sources),
        cmocka_unit_test(test_job_errors),
        cmocka_unit_test(test_node_report),
        cmocka_unit_test(test_node_errors),
        cmocka_unit_test(test_node_merge_and_doc),
        cmocka_unit_test(test_results),
        cmocka_unit_test(test_result_text_matches_trees),
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_edge_constraints),
        cmocka_unit_test(test_edge_constraint_errors),
        cmocka_unit_test(test_node_edge_fields),
        cmocka_unit_test(test_node_merge_edge_spellings),
        cmocka_unit_test(test_filters_and_explain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
