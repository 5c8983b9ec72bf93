/* test_metrics.c - the Prometheus text: families with HELP and TYPE, the
 * counters as counted, cumulative histogram buckets up to +Inf; and the
 * delivery backoff schedule (0.5 s doubling, capped at 30 s). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver.h"
#include "metrics.h"

static void test_render(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    assert_non_null(m);
    metrics_inc(m, M_JOBS_RECEIVED);
    metrics_add(m, M_JOBS_RECEIVED, 2);
    metrics_inc(m, M_RESULTS_GIVEN_UP);
    metrics_http_status(m, 200);
    metrics_http_status(m, 404);
    metrics_http_status(m, 413);
    metrics_http_status(m, 999); /* not a class: not counted under one */
    metrics_observe(m, H_DECISION, 0.0003);
    metrics_observe(m, H_DECISION, 2.0);
    metrics_observe(m, H_DECISION, 1e9); /* past the last bucket: only +Inf */
    metrics_observe(m, H_DECISION, -1);  /* ignored */
    assert_int_equal(metrics_get(m, M_JOBS_RECEIVED), 3);

    metrics_gauges g = {.queue_depth = 7,
                        .outbox_depth = 2,
                        .nodes_active = 5,
                        .nodes_inactive = 1,
                        .reservations = 4,
                        .workers = 2};
    char *t = metrics_render(m, &g);
    assert_non_null(t);
    const char *want[] = {
        "# TYPE cluster_scheduler_queue_depth gauge\ncluster_scheduler_queue_depth 7\n",
        "cluster_scheduler_outbox_depth 2\n",
        "cluster_scheduler_nodes_active 5\n",
        "cluster_scheduler_nodes_inactive 1\n",
        "# TYPE cluster_scheduler_jobs_received_total counter\n"
        "cluster_scheduler_jobs_received_total 3\n",
        "cluster_scheduler_jobs_placed_total 0\n",
        "cluster_scheduler_jobs_unschedulable_total 0\n",
        "cluster_scheduler_result_deliveries_failed_total 0\n",
        "cluster_scheduler_result_deliveries_retried_total 0\n",
        "cluster_scheduler_result_deliveries_given_up_total 1\n",
        "cluster_scheduler_http_requests_total{code=\"2xx\"} 1\n",
        "cluster_scheduler_http_requests_total{code=\"4xx\"} 2\n",
        "# TYPE cluster_scheduler_decision_seconds histogram\n",
        "cluster_scheduler_decision_seconds_bucket{le=\"0.0005\"} 1\n",
        "cluster_scheduler_decision_seconds_bucket{le=\"5\"} 2\n",
        "cluster_scheduler_decision_seconds_bucket{le=\"60\"} 2\n",
        "cluster_scheduler_decision_seconds_bucket{le=\"+Inf\"} 3\n",
        "cluster_scheduler_decision_seconds_count 3\n",
        "# TYPE cluster_scheduler_request_to_result_seconds histogram\n",
        "cluster_scheduler_request_to_result_seconds_count 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(t, want[i]))
            fail_msg("missing: %s", want[i]);
    /* every sample line belongs to a family announced by HELP and TYPE */
    char *copy = strdup(t);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        assert_int_equal(strncmp(line, "cluster_scheduler_", 18), 0);
        char fam[128];
        size_t n = strcspn(line, "{ ");
        snprintf(fam, sizeof fam, "# TYPE %.*s", (int)n, line);
        bool suffix = false;
        if (!strstr(t, fam)) {
            /* histogram samples: strip _bucket/_sum/_count */
            const char *sfx[] = {"_bucket", "_sum", "_count"};
            for (int k = 0; k < 3 && !suffix; k++) {
                char *p = strstr(fam, sfx[k]);
                if (p && p[strlen(sfx[k])] == 0) {
                    *p = 0;
                    suffix = true;
                }
            }
            if (!strstr(t, fam))
                fail_msg("no TYPE for %s", line);
        }
    }
    free(copy);
    free(t);
    metrics_free(m);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_true(deliver_backoff(0) == 0.5);
    assert_true(deliver_backoff(1) == 0.5);
    assert_true(deliver_backoff(2) == 1.0);
    assert_true(deliver_backoff(3) == 2.0);
    assert_true(deliver_backoff(7) == 30.0); /* 32 capped */
    assert_true(deliver_backoff(6) == 16.0);
    assert_true(deliver_backoff(100) == 30.0);
    assert_true(deliver_backoff(UINT32_MAX) == 30.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
