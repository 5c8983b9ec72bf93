/* deliver.h - delivery of results to the cluster manager: POST
 * http://<manager>/api/result/<job_id>/<instance>, up to 32 at once over
 * reused keep-alive connections. Fed directly by the workers (fast path) and, at
 * start and every quarter second, by the store's outbox (retries and
 * whatever a restart left behind). Failed POSTs are retried with
 * exponential backoff (0.5 s doubling to 30 s) until RESULT_RETRY_S after
 * the result was made, then given up, logged and counted. */
#ifndef CS_DELIVER_H
#define CS_DELIVER_H

#include "config.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

typedef struct deliver deliver;

/* Threads start at once. NULL with err. */
deliver *deliver_new(const config *cfg, cslog *log, store *st, metrics *m, int threads,
                     cs_error *err);
/* Hands over a fresh result whose outbox row is durable (item is moved:
 * its payload belongs to the deliverer afterwards). received_at: when the
 * job came in, for the request-to-result histogram (0 = unknown). */
void deliver_submit(deliver *d, outbox_item *item, double received_at);
/* Stops the threads, aborting a POST in progress; what was not delivered
 * stays in the outbox for the next start. */
void deliver_stop(deliver *d);
void deliver_free(deliver *d);

/* The backoff after `attempts` failed tries: 0.5 s * 2^(attempts-1), at
 * most 30 s. Exposed for tests. */
double deliver_backoff(uint32_t attempts);

#endif
