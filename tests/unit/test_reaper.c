/* test_reaper.c - when the reaper holds back: most of the recently heard
 * nodes silent or late at once, and more than a couple of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "reaper.h"

/* reaper_holds(heard, late, silent) */
static void test_a_couple_of_dead_nodes_move(void **state)
{
    (void)state;
    /* A small cluster losing one node, or two, whatever their share. */
    assert_false(reaper_holds(1, 0, 1));
    assert_false(reaper_holds(2, 0, 2));
    assert_false(reaper_holds(2, 1, 1));
    assert_false(reaper_holds(1000, 0, REAPER_HOLD_MIN));
}

static void test_a_minority_moves(void **state)
{
    (void)state;
    assert_false(reaper_holds(10, 0, 3));
    assert_false(reaper_holds(100, 20, 34));
    assert_false(reaper_holds(5000, 0, 2749));
}

static void test_nothing_silent_nothing_to_hold(void **state)
{
    (void)state;
    assert_false(reaper_holds(0, 0, 0));
    assert_false(reaper_holds(10, 10, 0)); /* all late, none past the TTL yet */
}

static void test_most_behind_at_once_holds(void **state)
{
    (void)state;
    assert_true(reaper_holds(3, 0, 3));
    assert_true(reaper_holds(5, 0, 3));
    assert_true(reaper_holds(100, 0, 55));
    assert_true(reaper_holds(5000, 0, 2750));
    /* The start of a wave: one past the TTL, most others past half of it. */
    assert_true(reaper_holds(5, 3, 1));
    assert_true(reaper_holds(5000, 2700, 50));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_couple_of_dead_nodes_move),
        cmocka_unit_test(test_a_minority_moves),
        cmocka_unit_test(test_nothing_silent_nothing_to_hold),
        cmocka_unit_test(test_most_behind_at_once_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
