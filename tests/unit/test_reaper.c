/* test_reaper.c - when the reaper holds back: most of the nodes running
 * instances silent at once, and more than a couple of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "reaper.h"

static void test_few_silent_nodes_move(void **state)
{
    (void)state;
    /* One or two dead nodes are moved whatever the cluster's size: a small
     * cluster losing one of two nodes is not an overload. */
    assert_false(reaper_holds(0, 0));
    assert_false(reaper_holds(1, 1));
    assert_false(reaper_holds(2, 2));
    assert_false(reaper_holds(REAPER_HOLD_MIN, REAPER_HOLD_MIN));
    assert_false(reaper_holds(2, 1000));
}

static void test_a_minority_moves(void **state)
{
    (void)state;
    assert_false(reaper_holds(3, 10));
    assert_false(reaper_holds(54, 100));
    assert_false(reaper_holds(2749, 5000));
}

static void test_most_silent_at_once_holds(void **state)
{
    (void)state;
    assert_true(reaper_holds(3, 3));
    assert_true(reaper_holds(3, 5));
    assert_true(reaper_holds(55, 100));
    assert_true(reaper_holds(2750, 5000));
    assert_true(reaper_holds(5000, 5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_few_silent_nodes_move),
        cmocka_unit_test(test_a_minority_moves),
        cmocka_unit_test(test_most_silent_at_once_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
