/* service.c - owns everything the service runs on; restores durable state
 * at start; starts and stops the threads in dependency order. */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "codec.h"
#include "decisions.h"
#include "deliver.h"
#include "http.h"
#include "mirror.h"
#include "reaper.h"
#include "store_redis.h"
#include "worker.h"

#define DELIVER_THREADS 4
/* With a shared store every batch of deliveries costs two round trips to
 * Redis (claim, done): one thread, holding all the POSTs in flight, makes
 * the batches large. 12% more results/s with 2 workers on 2 cores. */
#define DELIVER_THREADS_SHARED 1

struct service {
    svc_ctx ctx; /* the handles below, lent to the modules */
    cluster *cluster;
    store *store;
    nodedocs *docs;
    metrics *metrics;
    deliver *deliver;
    worker_pool *workers;
    reaper *reaper;
    mirror *mirror;
    decisions *decisions;
    http_server *http;
    size_t loaded_nodes, loaded_reservations, load_errors;
    bool stopped;
};

double svc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double svc_mono(void)
{
    return store_mono(); /* one clock for the service and its store */
}

json_t *svc_node_doc(const svc_ctx *c, const char *node_id, double now)
{
    node_view v;
    if (cluster_get(c->cluster, node_id, now, &v))
        return NULL;
    /* The document may lag the table for a moment during a first report:
     * the live view alone is still a valid answer. */
    json_t *stored = nodedocs_get(c->docs, node_id);
    json_t *doc = codec_node_doc(stored, &v);
    json_decref(stored);
    return doc;
}

/* store_load callbacks: a stored node is replayed as a report made at its
 * last report time, so it is active again only if that was within TTL. */
static int load_node(void *ud, const char *node_id, const char *doc, double last_report)
{
    service *s = ud;
    cs_error e;
    node_report nr;
    node_report_init(&nr);
    json_t *j = doc ? json_loads(doc, 0, NULL) : NULL;
    if (!j || codec_node(j, &nr, &e) ||
        cluster_report(s->cluster, node_id, &nr, last_report, &e) < 0) {
        if (!j)
            cs_fail(&e, "doc", "not valid JSON");
        log_warn(s->ctx.log, "stored node %s skipped: %s: %s", node_id, e.field, e.msg);
        s->load_errors++;
        json_decref(j);
        node_report_clear(&nr);
        return 0;
    }
    node_report_clear(&nr);
    nodedocs_put(s->docs, node_id, j);
    s->loaded_nodes++;
    return 0;
}

static int load_reservation(void *ud, const reservation_view *r)
{
    service *s = ud;
    cs_error e;
    if (cluster_restore(s->cluster, r, &e)) {
        log_warn(s->ctx.log, "stored reservation %s/%u on %s skipped: %s: %s", r->job_id,
                 r->instance, r->node_id, e.field, e.msg);
        s->load_errors++;
        return 0;
    }
    s->loaded_reservations++;
    return 0;
}

#define MIRROR_GATHER 0.002     /* s: see mirror_new */
#define MIRROR_GATHER_API 0.010 /* s */

service *service_new(const config *cfg, cslog *log, cs_error *err)
{
    service *s = calloc(1, sizeof *s);
    if (!s) {
        cs_fail(err, "service", "out of memory");
        return NULL;
    }
    s->ctx.cfg = cfg;
    s->ctx.log = log;
    engine_opts_default(&s->ctx.opts);
    s->ctx.opts.strategy = (engine_strategy)(STRATEGY_MOST_FREE + cfg->strategy);
    s->ctx.opts.top_k = (uint32_t)cfg->top_k;
    if (!(s->cluster = cluster_new(cfg->node_ttl)) || !(s->docs = nodedocs_new()) ||
        !(s->metrics = metrics_new()) || !(s->decisions = decisions_new(DECISIONS_KEEP))) {
        cs_fail(err, "service", "out of memory");
        goto fail;
    }
    s->ctx.cluster = s->cluster;
    s->ctx.docs = s->docs;
    s->ctx.metrics = s->metrics;
    s->ctx.decisions = s->decisions;
    if (cfg->redis[0]) {
        /* Unique in the consumer group across machines and restarts. */
        char host[128] = "host", consumer[200];
        gethostname(host, sizeof host - 1);
        snprintf(consumer, sizeof consumer, "%s-%ld-%ld", host, (long)getpid(), (long)time(NULL));
        store_redis_opts ro = {cfg->redis,         consumer,
                               cfg->claim_idle,    cfg->redis_connect_timeout,
                               cfg->redis_timeout, cfg->result_lease};
        if (!(s->store = store_redis_open(&ro, err)))
            goto fail;
        s->ctx.store = s->store;
        /* The API process only answers reads from its copy (listings,
         * dry runs): it can gather longer than a placing worker. */
        double gather = cfg->role == CONFIG_ROLE_API ? MIRROR_GATHER_API : MIRROR_GATHER;
        if (!(s->mirror = mirror_new(&s->ctx, gather, err)))
            goto fail;
        s->ctx.mirror = s->mirror;
        log_info(log,
                 "shared store on Redis as %s (role %s); %zu jobs queued, %zu results to "
                 "deliver",
                 consumer, config_role_names[cfg->role], store_queue_depth(s->store),
                 store_outbox_depth(s->store));
        return s;
    }
    if (!(s->store = store_sqlite_open(cfg->data_dir, err)))
        goto fail;
    s->ctx.store = s->store;
    store_loader l = {load_node, load_reservation, s};
    if (store_load(s->store, &l) < 0) {
        cs_fail(err, "DATA_DIR", "cannot read the stored state in %.100s", cfg->data_dir);
        goto fail;
    }
    log_info(log,
             "restored %zu nodes and %zu reservations from %s (%zu skipped); %zu jobs queued, "
             "%zu results to deliver",
             s->loaded_nodes, s->loaded_reservations, cfg->data_dir, s->load_errors,
             store_queue_depth(s->store), store_outbox_depth(s->store));
    return s;
fail:
    service_free(s);
    return NULL;
}

int service_start(service *s, cs_error *err)
{
    const config *cfg = s->ctx.cfg;
    /* Consumers before producers: the deliverer is there when the first
     * worker finishes, the workers before the first request arrives. */
    if (cfg->role != CONFIG_ROLE_API) {
        if (!(s->deliver = deliver_new(
                  cfg, s->ctx.log, s->store, s->metrics,
                  store_shared(s->store) ? DELIVER_THREADS_SHARED : DELIVER_THREADS, err)))
            return -1;
        s->ctx.deliver = s->deliver;
        if (!(s->workers = worker_pool_new(&s->ctx, cfg->workers, err)))
            return -1;
        if (!(s->reaper = reaper_new(&s->ctx, err)))
            return -1;
    }
    http_handlers hs = {.handler = api_handle, .fast = api_fast, .flush = api_flush, .ud = &s->ctx};
    if (!(s->http = http_new(cfg, s->ctx.log, s->metrics, &hs, err)))
        return -1;
    return 0;
}

void service_stop(service *s)
{
    if (!s || s->stopped)
        return;
    s->stopped = true;
    http_stop(s->http);
    worker_pool_stop(s->workers);
    reaper_stop(s->reaper);
    mirror_stop(s->mirror);
    /* Deliverers before the store: their last calls mark rows done. */
    deliver_stop(s->deliver);
    if (s->store)
        store_close(s->store);
    s->store = NULL;
    s->ctx.store = NULL;
}

void service_free(service *s)
{
    if (!s)
        return;
    service_stop(s);
    http_free(s->http);
    worker_pool_free(s->workers);
    reaper_free(s->reaper);
    mirror_free(s->mirror);
    deliver_free(s->deliver);
    nodedocs_free(s->docs);
    cluster_free(s->cluster);
    metrics_free(s->metrics);
    decisions_free(s->decisions);
    free(s);
}
