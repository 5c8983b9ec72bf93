/* test_decisions_threads.c - the ring of last decisions: newest first,
 * the oldest dropped past its size, the limit honoured, the JSON shape the
 * dashboard reads, and workers recording concurrently with readers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "decisions.h"

static void rec(decision *d, const char *job, uint32_t inst, double at)
{
    engine_candidate cands[7];
    engine_result r;
    memset(&r, 0, sizeof r);
    memset(cands, 0, sizeof cands);
    for (int i = 0; i < 7; i++) {
        snprintf(cands[i].node_id, sizeof cands[i].node_id, "n%d", i);
        cands[i].score = 100.0 / (i + 1);
    }
    r.n_nodes = 9;
    r.n_qualified = 7;
    r.reasons[REASON_CPU] = 2;
    r.candidates = cands;
    r.n_candidates = 7;
    r.placed = true;
    snprintf(r.node_id, sizeof r.node_id, "n0");
    decision_fill(d, job, inst, &r, "7/9 nodes qualify: 2 insufficient cpu", at, 0.000123);
}

static void test_ring(void **state)
{
    (void)state;
    decisions *d = decisions_new(3);
    assert_non_null(d);
    json_t *doc = decisions_json(d, 50);
    assert_int_equal(json_integer_value(json_object_get(doc, "recorded")), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "decisions")), 0);
    json_decref(doc);

    decision x;
    for (uint32_t i = 0; i < 5; i++) {
        rec(&x, "j", i, 1000.0 + i);
        decisions_record(d, &x);
    }
    doc = decisions_json(d, 50);
    json_t *list = json_object_get(doc, "decisions");
    assert_int_equal(json_integer_value(json_object_get(doc, "recorded")), 5);
    assert_int_equal(json_integer_value(json_object_get(doc, "kept")), 3);
    assert_int_equal(json_array_size(list), 3);
    /* newest first: 4, 3, 2 */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(list, i), "instance")),
                         4 - i);
    json_t *one = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(one, "state")), "placed");
    assert_string_equal(json_string_value(json_object_get(one, "node_id")), "n0");
    assert_int_equal(json_integer_value(json_object_get(one, "qualified")), 7);
    assert_int_equal(json_array_size(json_object_get(one, "candidates")), DECISIONS_CANDIDATES);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(one, "reasons"), "insufficient_cpu")),
        2);
    assert_true(json_real_value(json_object_get(one, "decision_ms")) > 0.12);
    json_decref(doc);

    doc = decisions_json(d, 1);
    assert_int_equal(json_array_size(json_object_get(doc, "decisions")), 1);
    json_decref(doc);
    decisions_free(d);
}

static void test_not_placed_and_invalid(void **state)
{
    (void)state;
    decisions *d = decisions_new(DECISIONS_KEEP);
    decision x;
    engine_result r;
    memset(&r, 0, sizeof r);
    r.n_nodes = 4;
    r.reasons[REASON_TECHNOLOGY] = 4;
    decision_fill(&x, "u", 0, &r, "0/4 nodes qualify", 1.0, 0);
    decisions_record(d, &x);
    decision_fill(&x, "bad", 1, NULL, "invalid job: vcpus: must be a number", 2.0, 0);
    decisions_record(d, &x);
    json_t *doc = decisions_json(d, 50);
    json_t *list = json_object_get(doc, "decisions");
    json_t *inv = json_array_get(list, 0), *un = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(inv, "state")), "unschedulable");
    assert_null(json_object_get(inv, "node_id"));
    assert_int_equal(json_object_size(json_object_get(inv, "reasons")), 0);
    assert_string_equal(json_string_value(json_object_get(un, "state")), "unschedulable");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(un, "reasons"), "technology")), 4);
    assert_int_equal(json_array_size(json_object_get(un, "candidates")), 0);
    json_decref(doc);
    decisions_free(d);
    decisions_free(NULL);
}

#define THREADS 4
#define EACH 2000

static void *writer(void *arg)
{
    decisions *d = arg;
    decision x;
    for (uint32_t i = 0; i < EACH; i++) {
        rec(&x, "t", i, (double)i);
        decisions_record(d, &x);
    }
    return NULL;
}

static void *reader(void *arg)
{
    decisions *d = arg;
    for (int i = 0; i < 200; i++)
        json_decref(decisions_json(d, DECISIONS_KEEP));
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    decisions *d = decisions_new(DECISIONS_KEEP);
    pthread_t w[THREADS], rd;
    pthread_create(&rd, NULL, reader, d);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&w[i], NULL, writer, d);
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i], NULL);
    pthread_join(rd, NULL);
    json_t *doc = decisions_json(d, 1000);
    assert_int_equal(json_integer_value(json_object_get(doc, "recorded")), THREADS * EACH);
    assert_int_equal(json_array_size(json_object_get(doc, "decisions")), DECISIONS_KEEP);
    json_decref(doc);
    decisions_free(d);
}

int main(void)
{
    json_object_seed(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_not_placed_and_invalid),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
