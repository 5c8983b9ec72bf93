/* test_nodedocs.c - the node documents: stored as compact text, read back
 * as new trees or as text, compared byte for byte (what lets a copy of a
 * shared store skip parsing a report that repeats the last one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nodedocs.h"

static json_t *doc_of(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    return j;
}

static void test_same_is_byte_for_byte(void **state)
{
    (void)state;
    nodedocs *nd = nodedocs_new();
    assert_non_null(nd);
    assert_false(nodedocs_same(nd, "n1", "{}")); /* unknown */
    /* Field names the store packs (virtualization, ...) and ones it does
     * not: the comparison is with the unpacked text. */
    const char *text = "{\"virtualization\":[\"container\"],\"cpu_percent\":12.5,"
                       "\"memory\":2048,\"custom\":\"x\"}";
    assert_int_equal(nodedocs_put(nd, "n1", doc_of(text)), 0);
    char *stored = nodedocs_get_text(nd, "n1");
    assert_non_null(stored);
    assert_true(nodedocs_same(nd, "n1", stored));
    assert_false(nodedocs_same(nd, "n2", stored));
    /* One byte off, shorter, longer: not the same. */
    size_t n = strlen(stored);
    char *other = strdup(stored);
    assert_non_null(other);
    other[n / 2] = other[n / 2] == 'a' ? 'b' : 'a';
    assert_false(nodedocs_same(nd, "n1", other));
    other[n / 2] = stored[n / 2];
    other[n - 1] = '\0';
    assert_false(nodedocs_same(nd, "n1", other));
    free(other);
    size_t big = n + 2;
    other = malloc(big + 1);
    assert_non_null(other);
    snprintf(other, big + 1, "%s  ", stored);
    assert_false(nodedocs_same(nd, "n1", other));
    free(other);
    /* A document without packed names. */
    assert_int_equal(nodedocs_put(nd, "n3", doc_of("{\"a\":1}")), 0);
    assert_true(nodedocs_same(nd, "n3", "{\"a\":1}"));
    assert_false(nodedocs_same(nd, "n3", "{\"a\":2}"));
    free(stored);
    nodedocs_free(nd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_is_byte_for_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
