/* fuzz_router.c - fuzz target: the URL router (router.c). The input is
 * "METHOD PATH": the bytes before the first space are the method, the rest
 * the path (http.c hands the router the path without its query string).
 * Properties checked beyond "no crash, no undefined behaviour":
 *   - every answer is complete: a matched route has valid captures (ids of
 *     1..63 bytes without '/', spaces or control characters, taken from the
 *     path; an instance in 0..1000000), a 405 names the allowed methods, a
 *     400 names the parameter and the problem;
 *   - one trailing '/' changes nothing. */
#include "fuzz.h"

#include <stdbool.h>

#include "router.h"

static void check_id(const char *id, const char *path)
{
    size_t n = strlen(id);
    FUZZ_CHECK(n >= 1 && n <= CS_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)id[i];
        FUZZ_CHECK(ch > 0x20 && ch != 0x7f && ch != '/');
    }
    FUZZ_CHECK(strstr(path, id));
}

static void check_match(router_status st, const route_match *m, const char *method,
                        const char *path)
{
    FUZZ_CHECK(st == ROUTER_OK || st == ROUTER_NOT_FOUND || st == ROUTER_BAD_METHOD ||
               st == ROUTER_BAD_PARAM);
    FUZZ_CHECK(m->method == router_method(method));
    FUZZ_CHECK(router_route_name(m->route) != NULL);
    switch (st) {
    case ROUTER_OK:
        FUZZ_CHECK(m->route > ROUTE_NONE && m->route < ROUTE__COUNT);
        FUZZ_CHECK(m->method != METHOD_OTHER);
        if (m->route == ROUTE_DEPLOY || m->route == ROUTE_JOB) {
            check_id(m->job_id, path);
            FUZZ_CHECK(m->instance <= CS_INSTANCE_MAX);
        }
        if (m->route == ROUTE_NODE)
            check_id(m->node_id, path);
        break;
    case ROUTER_BAD_METHOD:
        FUZZ_CHECK(m->route > ROUTE_NONE && m->allow && m->allow[0]);
        break;
    case ROUTER_BAD_PARAM:
        FUZZ_CHECK(m->bad_field && m->bad_msg && m->bad_msg[0]);
        break;
    case ROUTER_NOT_FOUND:
        FUZZ_CHECK(m->route == ROUTE_NONE);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    char *sp = strchr(text, ' ');
    const char *method = text, *path = sp ? sp + 1 : "";
    if (sp)
        *sp = '\0';
    route_match m;
    router_status st = router_match(method, path, &m);
    check_match(st, &m, method, path);

    size_t len = strlen(path);
    if (len > 1 && len < 4000 && path[len - 1] != '/') {
        char *slashed = malloc(len + 2);
        FUZZ_CHECK(slashed);
        memcpy(slashed, path, len);
        memcpy(slashed + len, "/", 2);
        route_match m2;
        router_status st2 = router_match(method, slashed, &m2);
        check_match(st2, &m2, method, slashed);
        FUZZ_CHECK(st2 == st && m2.route == m.route && m2.wants_body == m.wants_body);
        if (st == ROUTER_OK)
            FUZZ_CHECK(strcmp(m.job_id, m2.job_id) == 0 && strcmp(m.node_id, m2.node_id) == 0 &&
                       m.instance == m2.instance);
        free(slashed);
    }
    /* A path the router must refuse without reading past its end. */
    route_match m3;
    FUZZ_CHECK(router_match(method, NULL, &m3) == ROUTER_NOT_FOUND);
    free(text);
    return 0;
}
