/* metrics.h - the service's counters and histograms, updated with atomics
 * from any thread and rendered in the Prometheus text format. Gauges that
 * other modules already know (queue depth, nodes) are passed in at render
 * time instead of being mirrored here. */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct metrics metrics;

typedef enum metric_counter {
    M_JOBS_RECEIVED = 0,  /* job instances accepted into the queue */
    M_JOBS_DUPLICATE,     /* intake requests for an instance already known */
    M_JOBS_PLACED,        /* decisions that placed an instance */
    M_JOBS_UNSCHEDULABLE, /* decisions that found no node */
    M_JOBS_RESCHEDULED,   /* instances re-queued because their node went inactive */
    M_RESULTS_DELIVERED,  /* results the cluster manager accepted */
    M_RESULTS_FAILED,     /* delivery attempts that failed */
    M_RESULTS_RETRIED,    /* retries scheduled after a failure */
    M_RESULTS_GIVEN_UP,   /* results dropped after RESULT_RETRY_S */
    M_RESULTS_SUPERSEDED, /* held results not sent: a newer decision replaced them */
    M_RESULTS_HELD_BACK,  /* sends put off while an older result of the instance was sent */
    M_STORE_ERRORS,       /* storage calls that failed */
    M_PLACE_CONFLICTS,    /* shared store: a candidate filled up before the commit */
    M_COUNTER__COUNT
} metric_counter;

typedef enum metric_hist {
    H_DECISION = 0,      /* seconds engine_place took */
    H_REQUEST_TO_RESULT, /* seconds from intake to the result being accepted */
    H__COUNT
} metric_hist;

/* Values read at render time from their owners. */
typedef struct metrics_gauges {
    size_t queue_depth;
    size_t outbox_depth;
    size_t nodes_active;
    size_t nodes_inactive;
    size_t reservations;
    size_t workers;
} metrics_gauges;

metrics *metrics_new(void);
void metrics_free(metrics *m);

void metrics_inc(metrics *m, metric_counter c);
void metrics_add(metrics *m, metric_counter c, uint64_t n);
uint64_t metrics_get(metrics *m, metric_counter c);
void metrics_observe(metrics *m, metric_hist h, double seconds);
/* Counts one HTTP answer under its status class (1xx..5xx). */
void metrics_http_status(metrics *m, int status);

/* Renders everything into a new NUL-terminated string (caller frees), or
 * NULL when out of memory. */
char *metrics_render(metrics *m, const metrics_gauges *g);

#endif
