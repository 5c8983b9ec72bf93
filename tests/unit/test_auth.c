/* test_auth.c - the bearer token check: which routes are open, how the
 * header is parsed, that only the exact token passes (shorter, longer,
 * prefix, one byte off), and that checking against no token passes all. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth.h"

#define TOKEN "0123456789abcdef-s3cr3t"

static void test_disabled(void **state)
{
    (void)state;
    auth *a = auth_new(NULL);
    assert_non_null(a);
    assert_false(auth_enabled(a));
    assert_int_equal(auth_check(a, NULL), AUTH_OK);
    assert_int_equal(auth_check(a, "Bearer anything"), AUTH_OK);
    auth_free(a);
    a = auth_new("");
    assert_non_null(a);
    assert_false(auth_enabled(a));
    assert_int_equal(auth_check(a, NULL), AUTH_OK);
    auth_free(a);
    auth_free(NULL);
}

static void test_public_routes(void **state)
{
    (void)state;
    assert_true(auth_route_public(ROUTE_STATUS, METHOD_GET));
    assert_true(auth_route_public(ROUTE_STATUS, METHOD_HEAD));
    assert_true(auth_route_public(ROUTE_METRICS, METHOD_GET));
    assert_true(auth_route_public(ROUTE_METRICS, METHOD_HEAD));
    assert_false(auth_route_public(ROUTE_STATUS, METHOD_POST));
    assert_false(auth_route_public(ROUTE_METRICS, METHOD_DELETE));
    assert_false(auth_route_public(ROUTE_HELLO, METHOD_GET));
    assert_false(auth_route_public(ROUTE_NONE, METHOD_GET));
    /* The dashboard's static files hold no data; what they read does. */
    assert_true(auth_route_public(ROUTE_UI, METHOD_GET));
    assert_true(auth_route_public(ROUTE_UI_ASSET, METHOD_GET));
    assert_false(auth_route_public(ROUTE_UI, METHOD_POST));
    assert_false(auth_route_public(ROUTE_DECISIONS, METHOD_GET));
    for (int r = ROUTE_DEPLOY; r < ROUTE__COUNT; r++) {
        if (r == ROUTE_UI || r == ROUTE_UI_ASSET)
            continue;
        assert_false(auth_route_public((route_id)r, METHOD_GET));
        assert_false(auth_route_public((route_id)r, METHOD_POST));
    }
}

static void test_header_forms(void **state)
{
    (void)state;
    auth *a = auth_new(TOKEN);
    assert_non_null(a);
    assert_true(auth_enabled(a));
    assert_int_equal(auth_check(a, "Bearer " TOKEN), AUTH_OK);
    assert_int_equal(auth_check(a, "bearer " TOKEN), AUTH_OK);
    assert_int_equal(auth_check(a, "BEARER \t " TOKEN "  "), AUTH_OK);
    assert_int_equal(auth_check(a, "  Bearer " TOKEN), AUTH_OK);
    /* not a bearer credential at all */
    assert_int_equal(auth_check(a, NULL), AUTH_MISSING);
    assert_int_equal(auth_check(a, ""), AUTH_MISSING);
    assert_int_equal(auth_check(a, "Bearer"), AUTH_MISSING);
    assert_int_equal(auth_check(a, "Bearer "), AUTH_MISSING);
    assert_int_equal(auth_check(a, "Bearer    "), AUTH_MISSING);
    assert_int_equal(auth_check(a, "Basic dXNlcjpwYXNz"), AUTH_MISSING);
    assert_int_equal(auth_check(a, "Bearer" TOKEN), AUTH_MISSING);
    assert_int_equal(auth_check(a, TOKEN), AUTH_MISSING);
    auth_free(a);
}

static void test_only_the_exact_token(void **state)
{
    (void)state;
    auth *a = auth_new(TOKEN);
    char h[600];
    size_t n = strlen(TOKEN);
    /* every proper prefix, the empty one aside */
    for (size_t k = 1; k < n; k++) {
        snprintf(h, sizeof h, "Bearer %.*s", (int)k, TOKEN);
        assert_int_equal(auth_check(a, h), AUTH_INVALID);
    }
    /* one byte more, and a much longer value */
    assert_int_equal(auth_check(a, "Bearer " TOKEN "x"), AUTH_INVALID);
    memset(h, 0, sizeof h);
    snprintf(h, sizeof h, "Bearer " TOKEN);
    memset(h + strlen(h), 'x', 400);
    assert_int_equal(auth_check(a, h), AUTH_INVALID);
    /* each single byte changed */
    for (size_t i = 0; i < n; i++) {
        snprintf(h, sizeof h, "Bearer " TOKEN);
        h[7 + i] ^= 0x01;
        assert_int_equal(auth_check(a, h), AUTH_INVALID);
    }
    /* the token is case-sensitive, unlike the scheme */
    assert_int_equal(auth_check(a, "Bearer 0123456789ABCDEF-s3cr3t"), AUTH_INVALID);
    auth_free(a);
}

static void test_longest_token(void **state)
{
    (void)state;
    char tok[AUTH_TOKEN_MAX + 2], h[AUTH_TOKEN_MAX + 16];
    memset(tok, 'T', AUTH_TOKEN_MAX);
    tok[AUTH_TOKEN_MAX] = 0;
    auth *a = auth_new(tok);
    assert_non_null(a);
    snprintf(h, sizeof h, "Bearer %s", tok);
    assert_int_equal(auth_check(a, h), AUTH_OK);
    h[strlen(h) - 1] = 0;
    assert_int_equal(auth_check(a, h), AUTH_INVALID);
    auth_free(a);
    /* one more than the maximum is refused */
    tok[AUTH_TOKEN_MAX] = 'T';
    tok[AUTH_TOKEN_MAX + 1] = 0;
    assert_null(auth_new(tok));
}

static void test_token_rules(void **state)
{
    (void)state;
    char why[160];
    assert_int_equal(auth_token_check(TOKEN, why, sizeof why), 0);
    assert_int_equal(auth_token_check("0123456789abcdef", why, sizeof why), 0);
    assert_int_equal(auth_token_check("0123456789abcde", why, sizeof why), -1);
    assert_int_equal(auth_token_check("0123456789 abcdef", why, sizeof why), -1);
    assert_int_equal(auth_token_check("0123456789\tabcdef", why, sizeof why), -1);
    assert_int_equal(auth_token_check("0123456789\xc3\xa9"
                                      "abcdef",
                                      why, sizeof why),
                     -1);
    assert_null(strstr(why, "0123"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disabled),      cmocka_unit_test(test_public_routes),
        cmocka_unit_test(test_header_forms),  cmocka_unit_test(test_only_the_exact_token),
        cmocka_unit_test(test_longest_token), cmocka_unit_test(test_token_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
