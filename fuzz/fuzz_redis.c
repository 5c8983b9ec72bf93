/* fuzz_redis.c - fuzz target: the Redis store's reply readers
 * (redis_reply.c). The input is a stream of RESP bytes as a Redis server
 * (or something pretending to be one) might send; hiredis's own reader
 * turns it into reply trees, and every tree goes through every reader:
 * job stream entries, XREAD/XREADGROUP/XAUTOCLAIM/XPENDING shapes, the
 * script answers (enqueue, place, node delete, outbox scan), the job
 * status HMGET, the snapshot and the change feed. The snapshot and feed
 * callbacks do what the service's do (service.c load_*, mirror.c on_*):
 * decode the node document and apply it, restore, release and remove
 * reservations and nodes in a cluster table. Properties checked beyond "no
 * crash, no leak, no undefined behaviour": every string handed on is
 * NUL-terminated within its bound, ids are at most 63 bytes, counts match
 * what was written. */
#include "fuzz.h"

#include <jansson.h>

#include "cluster.h"
#include "codec.h"
#include "redis_reply.h"

#define TTL 30.0
#define NOW 1000000.0
#define MAX_ELEMENTS 4096 /* no real reply is larger; more only costs memory */
#define MAX_REPLIES 64

/* The default reply builders, so the array builder can refuse sizes that
 * would only exhaust memory (hiredis 0.14 has no such limit of its own). */
typedef struct reader_fns {
    redisReplyObjectFunctions mine;
    void *(*create_array)(const redisReadTask *, int);
} reader_fns;

static void *create_array(const redisReadTask *t, int elements)
{
    const reader_fns *f = t->privdata;
    if (elements > MAX_ELEMENTS)
        return NULL; /* the reader reports "out of memory" and stops */
    return f->create_array(t, elements);
}

/* Reads every byte of s, so ASan sees a string that is not terminated. */
static void touch(const char *s)
{
    volatile char sink = 0;
    for (; *s; s++)
        sink = *s;
    (void)sink;
}

static void check_id(const char *id, size_t cap)
{
    FUZZ_CHECK(id && memchr(id, 0, cap));
    FUZZ_CHECK(strlen(id) <= CS_ID_MAX);
}

static void check_job(const store_job *j)
{
    check_id(j->job_id, sizeof j->job_id);
    FUZZ_CHECK(j->job_id[0] && j->body);
    touch(j->body);
}

/* --- what the service does with nodes and reservations ------------------ */

static int on_node_doc(cluster *c, const char *node_id, const char *doc, double last_report)
{
    cs_error e;
    node_report nr;
    check_id(node_id, CS_ID_MAX + 1);
    json_t *j = json_loads(doc, 0, NULL);
    if (j && codec_node(j, &nr, &e) == 0)
        cluster_report(c, node_id, &nr, last_report, &e);
    if (j)
        node_report_clear(&nr);
    json_decref(j);
    return 0;
}

static void on_reservation_view(cluster *c, const reservation_view *r)
{
    cs_error e;
    check_id(r->job_id, sizeof r->job_id);
    check_id(r->node_id, sizeof r->node_id);
    cluster_restore(c, r, &e);
    reservation_view back;
    if (cluster_placement(c, r->job_id, r->instance, &back) == 0)
        FUZZ_CHECK(strcmp(back.job_id, r->job_id) == 0);
}

static int load_node(void *ud, const char *node_id, const char *doc, double last_report)
{
    return on_node_doc(ud, node_id, doc, last_report);
}

static int load_reservation(void *ud, const reservation_view *r)
{
    on_reservation_view(ud, r);
    return 0;
}

static void fo_reload(void *ud)
{
    (void)ud;
}

static int fo_node(void *ud, const char *node_id, const char *doc, double last_report,
                   bool cpu_pct_set, bool mem_pct_set)
{
    (void)cpu_pct_set;
    (void)mem_pct_set;
    FUZZ_CHECK(node_id[0]);
    return on_node_doc(ud, node_id, doc, last_report);
}

static void fo_node_gone(void *ud, const char *node_id)
{
    check_id(node_id, CS_ID_MAX + 1);
    FUZZ_CHECK(node_id[0]);
    cluster_remove(ud, node_id, NULL, NULL);
}

static void fo_reservation(void *ud, const reservation_view *r)
{
    on_reservation_view(ud, r);
}

static void fo_release(void *ud, const char *job_id, uint32_t instance)
{
    check_id(job_id, CS_ID_MAX + 1);
    FUZZ_CHECK(job_id[0]);
    cluster_release(ud, job_id, instance);
}

/* --- every reader on one reply ------------------------------------------ */

static void streams(const redisReply *r)
{
    store_job j;
    char eid[RR_ENTRY_ID_MAX];
    if (rr_entry_job(r, &j, eid)) {
        check_job(&j);
        FUZZ_CHECK(memchr(eid, 0, sizeof eid));
        store_job_clear(&j);
    }
    const redisReply *list = rr_stream_entries(r);
    for (size_t i = 0; list && i < list->elements; i++) {
        if (rr_entry_job(list->element[i], &j, eid)) {
            check_job(&j);
            store_job_clear(&j);
        }
    }
    const char *cursor;
    const redisReply *entries;
    if (rr_autoclaim(r, &cursor, &entries)) {
        touch(cursor);
        if (entries->elements > 0 && rr_entry_job(entries->element[0], &j, NULL)) {
            check_job(&j);
            store_job_clear(&j);
        }
    }
    const redisReply *keys;
    if (rr_scan(r, &cursor, &keys)) {
        touch(cursor);
        for (size_t i = 0; i < keys->elements; i++)
            touch(keys->element[i]->str);
    }
    (void)rr_pending_count(r);
    (void)rr_integer(r, -1);
    (void)rr_script_sha(r);
    (void)rr_is_error(r, "NOSCRIPT");
}

static void scripts(const redisReply *r)
{
    int rcs[8];
    uint32_t n = r->type == REDIS_REPLY_ARRAY && r->elements <= 8 ? (uint32_t)r->elements : 1;
    int rc = rr_enqueue_rcs(r, n, rcs);
    for (uint32_t i = 0; i < n; i++)
        FUZZ_CHECK(rc < 0 || rcs[i] >= 0);

    for (size_t i = 0; i < 3; i++) {
        int64_t oid = 0;
        char held[CS_ID_MAX + 1] = "";
        int prc = rr_place(r, i, &oid, held);
        FUZZ_CHECK(prc >= -1 && prc <= STORE_GONE);
        check_id(held, sizeof held);
    }

    store_status st;
    if (rr_status(r, &st) == 0) {
        check_id(st.node_id, sizeof st.node_id);
        FUZZ_CHECK(st.state == JOB_QUEUED || st.state == JOB_PLACED ||
                   st.state == JOB_UNSCHEDULABLE);
        if (st.body)
            touch(st.body);
        if (st.result)
            touch(st.result);
    }
    store_status_clear(&st);

    size_t requeued;
    rr_node_delete(r, &requeued);

    outbox_item items[4];
    int k = rr_outbox_due(r, items, 4);
    FUZZ_CHECK(k >= -1 && k <= 4);
    for (int i = 0; i < k; i++) {
        check_id(items[i].job_id, sizeof items[i].job_id);
        touch(items[i].payload);
        outbox_item_clear(&items[i]);
    }
}

static void snapshot(const redisReply *r)
{
    if (!rr_snapshot_valid(r))
        return;
    cluster *c = cluster_new(TTL);
    FUZZ_CHECK(c);
    store_loader l = {load_node, load_reservation, c};
    FUZZ_CHECK(rr_snapshot_replay(r, &l) == 0);
    uint64_t seq;
    const char *feed_id;
    size_t nodes;
    rr_snapshot_position(r, &seq, &feed_id, &nodes);
    FUZZ_CHECK(feed_id && nodes * 3 == r->element[2]->elements);
    FUZZ_CHECK(cluster_size(c) <= nodes);
    cluster_free(c);
}

static void fo_touch(void *ud, const char *id, double last, bool uc, bool um)
{
    check_id(id, CS_ID_MAX + 1);
    FUZZ_CHECK(id[0]);
    cluster_touch(ud, id, last, uc, um);
}

static void feed(const redisReply *r)
{
    const redisReply *list = rr_stream_entries(r);
    if (!list)
        return;
    cluster *c = cluster_new(TTL);
    FUZZ_CHECK(c);
    store_follower fo = {fo_reload,      fo_reload,  fo_node,  fo_node_gone,
                         fo_reservation, fo_release, fo_touch, c};
    for (size_t i = 0; i < list->elements; i++) {
        const char *id;
        const redisReply *fields;
        if (!rr_feed_entry(list->element[i], &id, &fields))
            continue;
        (void)rr_event_seq(fields);
        rr_event_apply(fields, &fo);
    }
    reservation_view stale[4];
    cluster_stale_placements(c, NOW, stale, 4);
    cluster_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd = redisReaderCreate();
    FUZZ_CHECK(rd);
    reader_fns fns = {*rd->fn, rd->fn->createArray};
    fns.mine.createArray = create_array;
    rd->fn = &fns.mine;
    rd->privdata = &fns; /* handed to every read task */
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        for (int i = 0; i < MAX_REPLIES; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply)
                break;
            const redisReply *r = reply;
            streams(r);
            scripts(r);
            snapshot(r);
            feed(r);
            (void)rr_seq_behind(r, 5);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
    return 0;
}
