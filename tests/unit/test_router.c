/* test_router.c - the router maps every documented route, tells 404 from
 * 405 (with the Allow list), and refuses bad ids and instances. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "router.h"

static void expect_route(const char *method, const char *path, route_id id)
{
    route_match m;
    router_status st = router_match(method, path, &m);
    if (st != ROUTER_OK || m.route != id)
        fail_msg("%s %s: status %d route %d, wanted route %d", method, path, st, m.route, id);
}

static void expect_status(const char *method, const char *path, router_status want)
{
    route_match m;
    router_status st = router_match(method, path, &m);
    if (st != want)
        fail_msg("%s %s: status %d, wanted %d", method, path ? path : "(null)", st, want);
}

static void test_all_routes(void **state)
{
    (void)state;
    expect_route("GET", "/", ROUTE_HELLO);
    expect_route("HEAD", "/", ROUTE_HELLO);
    expect_route("GET", "/status", ROUTE_STATUS);
    expect_route("GET", "/metrics", ROUTE_METRICS);
    expect_route("POST", "/api/calculate/deploy/j1/0", ROUTE_DEPLOY);
    expect_route("GET", "/api/calculate/deploy/j1/3", ROUTE_DEPLOY);
    expect_route("POST", "/api/calculate/replicate", ROUTE_REPLICATE);
    expect_route("GET", "/api/calculate/replicate", ROUTE_REPLICATE);
    expect_route("GET", "/api/v1/nodes", ROUTE_NODES);
    expect_route("GET", "/api/v1/nodes/n1", ROUTE_NODE);
    expect_route("PUT", "/api/v1/nodes/n1", ROUTE_NODE);
    expect_route("DELETE", "/api/v1/nodes/n1", ROUTE_NODE);
    expect_route("POST", "/api/v1/jobs", ROUTE_JOBS);
    expect_route("GET", "/api/v1/jobs/j1/0", ROUTE_JOB);
    expect_route("DELETE", "/api/v1/jobs/j1/0", ROUTE_JOB);
    expect_route("POST", "/api/v1/schedule", ROUTE_SCHEDULE);
    /* one trailing slash is tolerated */
    expect_route("GET", "/status/", ROUTE_STATUS);
    expect_route("GET", "/api/v1/nodes/", ROUTE_NODES);
}

static void test_captures(void **state)
{
    (void)state;
    route_match m;
    assert_int_equal(router_match("POST", "/api/calculate/deploy/my-job.1/42", &m), ROUTER_OK);
    assert_string_equal(m.job_id, "my-job.1");
    assert_int_equal(m.instance, 42);
    assert_true(m.wants_body);
    assert_int_equal(m.method, METHOD_POST);

    assert_int_equal(router_match("PUT", "/api/v1/nodes/edge_7", &m), ROUTER_OK);
    assert_string_equal(m.node_id, "edge_7");
    assert_true(m.wants_body);
    assert_int_equal(router_match("GET", "/api/v1/nodes/edge_7", &m), ROUTER_OK);
    assert_false(m.wants_body);

    assert_int_equal(router_match("GET", "/api/v1/jobs/j/1000000", &m), ROUTER_OK);
    assert_int_equal(m.instance, 1000000);
    assert_int_equal(router_match("GET", "/api/v1/jobs/j/0000007", &m), ROUTER_OK);
    assert_int_equal(m.instance, 7);
}

static void test_not_found(void **state)
{
    (void)state;
    expect_status("GET", "/nope", ROUTER_NOT_FOUND);
    expect_status("GET", "", ROUTER_NOT_FOUND);
    expect_status("GET", NULL, ROUTER_NOT_FOUND);
    expect_status("GET", "status", ROUTER_NOT_FOUND);
    expect_status("GET", "//", ROUTER_NOT_FOUND);
    expect_status("GET", "/api//v1/nodes", ROUTER_NOT_FOUND);
    expect_status("GET", "/api/v1/nodes//", ROUTER_NOT_FOUND);
    expect_status("GET", "/api/v1/nodes/a/b", ROUTER_NOT_FOUND);
    expect_status("POST", "/api/calculate/deploy/j1", ROUTER_NOT_FOUND);
    expect_status("POST", "/api/calculate/deploy/j1/0/x", ROUTER_NOT_FOUND);
    expect_status("GET", "/a/b/c/d/e/f/g/h/i/j/k", ROUTER_NOT_FOUND);
    /* an unknown method on an unknown path is a 404, not a 405 */
    expect_status("PATCH", "/nope", ROUTER_NOT_FOUND);
}

static void test_bad_method(void **state)
{
    (void)state;
    route_match m;
    assert_int_equal(router_match("POST", "/status", &m), ROUTER_BAD_METHOD);
    assert_string_equal(m.allow, "GET, HEAD");
    assert_int_equal(router_match("PATCH", "/api/v1/nodes/n1", &m), ROUTER_BAD_METHOD);
    assert_string_equal(m.allow, "GET, HEAD, PUT, DELETE");
    assert_int_equal(router_match("GET", "/api/v1/jobs", &m), ROUTER_BAD_METHOD);
    assert_string_equal(m.allow, "POST");
    assert_int_equal(router_match("PUT", "/api/calculate/deploy/j/0", &m), ROUTER_BAD_METHOD);
    assert_string_equal(m.allow, "GET, POST");
    assert_int_equal(router_match("HEAD", "/api/calculate/deploy/j/0", &m), ROUTER_BAD_METHOD);
    assert_int_equal(router_match("GET", "/api/v1/schedule", &m), ROUTER_BAD_METHOD);
    assert_int_equal(router_match("DELETE", "/api/v1/nodes", &m), ROUTER_BAD_METHOD);
    /* 405 wins over a bad parameter: the method is checked first */
    assert_int_equal(router_match("POST", "/api/v1/jobs/j/x", &m), ROUTER_BAD_METHOD);
}

static void test_bad_params(void **state)
{
    (void)state;
    route_match m;
    char path[256], id[80];
    memset(id, 'a', 64);
    id[64] = 0;
    snprintf(path, sizeof path, "/api/v1/nodes/%s", id);
    assert_int_equal(router_match("GET", path, &m), ROUTER_BAD_PARAM);
    assert_string_equal(m.bad_field, "node_id");
    id[63] = 0; /* 63 is the limit */
    snprintf(path, sizeof path, "/api/v1/nodes/%s", id);
    assert_int_equal(router_match("GET", path, &m), ROUTER_OK);

    assert_int_equal(router_match("POST", "/api/calculate/deploy/j/x", &m), ROUTER_BAD_PARAM);
    assert_string_equal(m.bad_field, "instance");
    assert_int_equal(router_match("POST", "/api/calculate/deploy/j/-1", &m), ROUTER_BAD_PARAM);
    assert_int_equal(router_match("POST", "/api/calculate/deploy/j/1000001", &m), ROUTER_BAD_PARAM);
    assert_int_equal(router_match("POST", "/api/calculate/deploy/j/99999999999999999999", &m),
                     ROUTER_BAD_PARAM);
    assert_int_equal(router_match("POST", "/api/calculate/deploy/j/1.5", &m), ROUTER_BAD_PARAM);
    assert_int_equal(router_match("POST", "/api/calculate/deploy/a b/1", &m), ROUTER_BAD_PARAM);
    assert_string_equal(m.bad_field, "job_id");
    assert_int_equal(router_match("POST", "/api/calculate/deploy/a\tb/1", &m), ROUTER_BAD_PARAM);
    assert_int_equal(router_match("GET", "/api/v1/jobs/a\x7f/1", &m), ROUTER_BAD_PARAM);
    /* Dot segments are path steps to every client, never names. */
    assert_int_equal(router_match("POST", "/api/calculate/deploy/../0", &m), ROUTER_BAD_PARAM);
    assert_string_equal(m.bad_field, "job_id");
    assert_int_equal(router_match("GET", "/api/v1/nodes/.", &m), ROUTER_BAD_PARAM);
    assert_string_equal(m.bad_field, "node_id");
    assert_int_equal(router_match("GET", "/api/v1/nodes/...", &m), ROUTER_OK);
    assert_int_equal(router_match("GET", "/api/v1/jobs/.a/0", &m), ROUTER_OK);
}

/* The dashboard's page and files, and the decisions it shows. */
static void test_dashboard_routes(void **state)
{
    (void)state;
    route_match m;
    expect_route("GET", "/ui", ROUTE_UI);
    expect_route("HEAD", "/ui", ROUTE_UI);
    expect_route("GET", "/ui/", ROUTE_UI);
    expect_route("GET", "/api/v1/decisions", ROUTE_DECISIONS);
    assert_int_equal(router_match("GET", "/ui/app.js", &m), ROUTER_OK);
    assert_int_equal(m.route, ROUTE_UI_ASSET);
    assert_string_equal(m.asset, "app.js");
    assert_false(m.wants_body);
    assert_int_equal(router_match("POST", "/ui", &m), ROUTER_BAD_METHOD);
    assert_string_equal(m.allow, "GET, HEAD");
    assert_int_equal(router_match("PUT", "/ui/app.js", &m), ROUTER_BAD_METHOD);
    assert_int_equal(router_match("POST", "/api/v1/decisions", &m), ROUTER_BAD_METHOD);
    expect_status("GET", "/ui/a/b", ROUTER_NOT_FOUND);
    assert_int_equal(router_match("GET", "/ui/a b", &m), ROUTER_BAD_PARAM);
    assert_string_equal(m.bad_field, "path");
    assert_string_equal(router_route_name(ROUTE_DECISIONS), "decisions");
    assert_string_equal(router_route_name(ROUTE_UI_ASSET), "ui_asset");
}

/* Every prefix and mutation of real paths: no crash, a sane status. */
static void test_garbage(void **state)
{
    (void)state;
    const char *seeds[] = {"/api/calculate/deploy/j1/0", "/api/v1/nodes/n1", "/api/v1/jobs/j/1",
                           "/metrics"};
    const char *methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "", NULL};
    char buf[128];
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        size_t len = strlen(seeds[s]);
        for (size_t cut = 0; cut <= len; cut++) {
            for (int ch = 1; ch < 256; ch += 7) {
                memcpy(buf, seeds[s], len + 1);
                buf[cut] = (char)ch;
                if (cut == len)
                    buf[cut + 1] = 0;
                for (size_t mi = 0; mi < sizeof methods / sizeof methods[0]; mi++) {
                    route_match m;
                    router_status st = router_match(methods[mi], buf, &m);
                    assert_true(st <= ROUTER_BAD_PARAM);
                    if (st == ROUTER_BAD_METHOD)
                        assert_non_null(m.allow);
                    if (st == ROUTER_BAD_PARAM)
                        assert_non_null(m.bad_field);
                    if (st == ROUTER_OK) {
                        assert_true(strlen(m.job_id) <= CS_ID_MAX);
                        assert_true(strlen(m.node_id) <= CS_ID_MAX);
                    }
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_routes),       cmocka_unit_test(test_captures),
        cmocka_unit_test(test_not_found),        cmocka_unit_test(test_bad_method),
        cmocka_unit_test(test_bad_params),       cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_dashboard_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
