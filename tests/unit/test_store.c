/* test_store.c - the SQLite store: queue order, duplicates under concurrency,
 * outcomes, the outbox, reopening after close and after kill -9, and group
 * commit under many writers. Each test works in a fresh temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

#include "claim_one.h"
#include "tmpdir.h"

typedef struct fixture {
    char dir[64];
    store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (tmpdir_make(f->dir, sizeof f->dir, "test_store") != 0) {
        free(f);
        return -1;
    }
    cs_error err = {0};
    f->s = store_sqlite_open(f->dir, &err);
    if (!f->s) {
        fprintf(stderr, "open: %s: %s\n", err.field, err.msg);
        tmpdir_remove(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void reopen(fixture *f)
{
    store_close(f->s);
    cs_error err = {0};
    f->s = store_sqlite_open(f->dir, &err);
    assert_non_null(f->s);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void take_expect(store *s, const char *id, uint32_t inst, const char *body)
{
    store_job j = {0};
    assert_int_equal(store_take(s, &j, 1000), 0);
    assert_string_equal(j.job_id, id);
    assert_int_equal(j.instance, inst);
    if (body)
        assert_string_equal(j.body, body);
    store_job_clear(&j);
}

static reservation_view res_on(const char *job, uint32_t inst, const char *node)
{
    reservation_view r = {0};
    snprintf(r.job_id, sizeof r.job_id, "%s", job);
    r.instance = inst;
    snprintf(r.node_id, sizeof r.node_id, "%s", node);
    r.cpu_milli = 1500;
    r.memory_mb = 512;
    r.gpus = 1;
    r.at = 100.0;
    return r;
}

/* --- tests ------------------------------------------------------------- */

static void test_enqueue_take_order(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_enqueue(f->s, "a", 0, "{\"n\":1}", 1.0), 0);
    assert_int_equal(store_enqueue(f->s, "b", 0, "{\"n\":2}", 2.0), 0);
    assert_int_equal(store_enqueue(f->s, "a", 1, "{\"n\":3}", 3.0), 0);
    assert_int_equal(store_queue_depth(f->s), 3);
    store_job j = {0};
    assert_int_equal(store_take(f->s, &j, 100), 0);
    assert_string_equal(j.job_id, "a");
    assert_int_equal(j.instance, 0);
    assert_string_equal(j.body, "{\"n\":1}");
    assert_true(j.received_at == 1.0);
    assert_int_equal(j.attempts, 0);
    store_job_clear(&j);
    take_expect(f->s, "b", 0, "{\"n\":2}");
    take_expect(f->s, "a", 1, "{\"n\":3}");
    assert_int_equal(store_queue_depth(f->s), 0);
    double t0 = now_s();
    assert_int_equal(store_take(f->s, &j, 50), 1);
    assert_true(now_s() - t0 >= 0.045);
    assert_int_equal(store_take(f->s, &j, 0), 1);
    /* Taken but not finished: still queued in the database. */
    store_status st;
    assert_int_equal(store_status_get(f->s, "a", 0, &st), 0);
    assert_int_equal(st.state, JOB_QUEUED);
    assert_null(st.result);
    store_status_clear(&st);
}

static void test_duplicate(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_enqueue(f->s, "dup", 7, "{}", 1.0), 0);
    assert_int_equal(store_enqueue(f->s, "dup", 7, "{\"other\":1}", 2.0), 1);
    assert_int_equal(store_queue_depth(f->s), 1);
    take_expect(f->s, "dup", 7, "{}");
    assert_int_equal(store_enqueue(f->s, "dup", 7, "{}", 3.0), 1); /* taken, still known */
    reservation_view r = res_on("dup", 7, "n1");
    assert_true(store_finish(f->s, "dup", 7, JOB_PLACED, &r, "{\"found\":true}", 4.0) > 0);
    assert_int_equal(store_enqueue(f->s, "dup", 7, "{}", 5.0), 1); /* decided */
    assert_int_equal(store_queue_depth(f->s), 0);
    store_status st;
    assert_int_equal(store_status_get(f->s, "dup", 7, &st), 0);
    assert_string_equal(st.body, "{}");
    store_status_clear(&st);
}

typedef struct dup_arg {
    store *s;
    pthread_barrier_t *bar;
    int results[100];
} dup_arg;

static void *dup_thread(void *p)
{
    dup_arg *a = p;
    for (int i = 0; i < 100; i++) {
        char id[32];
        snprintf(id, sizeof id, "race-%d", i);
        pthread_barrier_wait(a->bar);
        a->results[i] = store_enqueue(a->s, id, 0, "{}", 1.0);
    }
    return NULL;
}

static void test_concurrent_duplicate(void **state)
{
    fixture *f = *state;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    dup_arg a = {.s = f->s, .bar = &bar}, b = {.s = f->s, .bar = &bar};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, dup_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, dup_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < 100; i++) {
        assert_true((a.results[i] == 0 && b.results[i] == 1) ||
                    (a.results[i] == 1 && b.results[i] == 0));
    }
    assert_int_equal(store_queue_depth(f->s), 100);
}

static void test_finish_status(void **state)
{
    fixture *f = *state;
    store_status st;
    assert_int_equal(store_status_get(f->s, "j", 0, &st), 1);
    assert_int_equal(store_enqueue(f->s, "j", 0, "{\"_id\":\"j\"}", 10.0), 0);
    assert_int_equal(store_enqueue(f->s, "k", 0, "{\"_id\":\"k\"}", 10.0), 0);
    take_expect(f->s, "j", 0, NULL);
    take_expect(f->s, "k", 0, NULL);
    reservation_view r = res_on("j", 0, "node-1");
    int64_t id1 = store_finish(f->s, "j", 0, JOB_PLACED, &r, "{\"found\":true}", 11.0);
    assert_true(id1 > 0);
    int64_t id2 = store_finish(f->s, "k", 0, JOB_UNSCHEDULABLE, NULL, "{\"found\":false}", 12.0);
    assert_true(id2 > id1);

    assert_int_equal(store_status_get(f->s, "j", 0, &st), 0);
    assert_int_equal(st.state, JOB_PLACED);
    assert_string_equal(st.node_id, "node-1");
    assert_string_equal(st.body, "{\"_id\":\"j\"}");
    assert_string_equal(st.result, "{\"found\":true}");
    assert_true(st.received_at == 10.0);
    assert_true(st.decided_at == 11.0);
    store_status_clear(&st);

    assert_int_equal(store_status_get(f->s, "k", 0, &st), 0);
    assert_int_equal(st.state, JOB_UNSCHEDULABLE);
    assert_string_equal(st.node_id, "");
    assert_string_equal(st.result, "{\"found\":false}");
    store_status_clear(&st);
    assert_string_equal(job_state_name(JOB_UNSCHEDULABLE), "unschedulable");
    assert_int_equal(store_outbox_depth(f->s), 2);

    /* A job deleted while a worker held it: its outcome is not recorded. */
    assert_int_equal(store_enqueue(f->s, "gone", 0, "{}", 13.0), 0);
    take_expect(f->s, "gone", 0, NULL);
    assert_int_equal(store_job_delete(f->s, "gone", 0), 0);
    assert_int_equal(store_finish(f->s, "gone", 0, JOB_PLACED, &r, "{}", 14.0), 0);
    assert_int_equal(store_outbox_depth(f->s), 2);
}

static void test_outbox(void **state)
{
    fixture *f = *state;
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_enqueue(f->s, "o", (uint32_t)i, "{}", 1.0), 0);
        ids[i] = store_finish(f->s, "o", (uint32_t)i, JOB_UNSCHEDULABLE, NULL, "{\"r\":1}", 5.0);
        assert_true(ids[i] > 0);
    }
    outbox_item items[8];
    assert_int_equal(store_outbox_due(f->s, 4.0, items, 8), 0); /* not yet created */
    int n = store_outbox_due(f->s, 5.0, items, 8);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) {
        assert_int_equal(items[i].id, ids[i]); /* oldest first */
        assert_string_equal(items[i].job_id, "o");
        assert_int_equal(items[i].instance, i);
        assert_string_equal(items[i].payload, "{\"r\":1}");
        assert_int_equal(items[i].attempts, 0);
        assert_true(items[i].created_at == 5.0);
        outbox_item_clear(&items[i]);
    }
    assert_int_equal(store_outbox_due(f->s, 5.0, items, 2), 2);
    outbox_item_clear(&items[0]);
    outbox_item_clear(&items[1]);

    assert_int_equal(store_outbox_retry(f->s, &(outbox_key){.id = ids[0]}, 1, 60.0), 0);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = ids[1]}), 0);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = ids[1]}), 1);
    assert_int_equal(store_outbox_depth(f->s), 2);
    n = store_outbox_due(f->s, 10.0, items, 8); /* ids[0] waits until 60 */
    assert_int_equal(n, 1);
    assert_int_equal(items[0].id, ids[2]);
    outbox_item_clear(&items[0]);
    n = store_outbox_due(f->s, 60.0, items, 8); /* in order of due time */
    assert_int_equal(n, 2);
    assert_int_equal(items[0].id, ids[2]);
    assert_int_equal(items[1].id, ids[0]);
    assert_int_equal(items[1].attempts, 1);
    assert_true(items[1].next_at == 60.0);
    outbox_item_clear(&items[0]);
    outbox_item_clear(&items[1]);

    assert_int_equal(store_outbox_give_up(f->s, &(outbox_key){.id = ids[0]}), 0);
    assert_int_equal(store_outbox_give_up(f->s, &(outbox_key){.id = ids[0]}), 1);
    assert_int_equal(store_outbox_retry(f->s, &(outbox_key){.id = ids[0]}, 2, 70.0), 1);
    assert_int_equal(store_outbox_depth(f->s), 1);
    reopen(f);
    assert_int_equal(store_outbox_depth(f->s), 1);
    n = store_outbox_due(f->s, 100.0, items, 8);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].id, ids[2]);
    outbox_item_clear(&items[0]);
    /* A later job's result gets a larger id, also after a reopen. */
    assert_int_equal(store_enqueue(f->s, "o", 9, "{}", 1.0), 0);
    assert_true(store_finish(f->s, "o", 9, JOB_UNSCHEDULABLE, NULL, "{}", 5.0) > ids[2]);
}

typedef struct loaded {
    int nodes, res;
    char node_ids[8][CS_ID_MAX + 1];
    char node_docs[8][64];
    double reports[8];
    reservation_view rv[8];
} loaded;

static int on_node(void *ud, const char *id, const char *doc, double last)
{
    loaded *l = ud;
    if (l->nodes >= 8)
        return -1;
    snprintf(l->node_ids[l->nodes], sizeof l->node_ids[0], "%s", id);
    snprintf(l->node_docs[l->nodes], sizeof l->node_docs[0], "%s", doc);
    l->reports[l->nodes++] = last;
    return 0;
}

static int on_res(void *ud, const reservation_view *r)
{
    loaded *l = ud;
    if (l->res >= 8)
        return -1;
    l->rv[l->res++] = *r;
    return 0;
}

static void load(store *s, loaded *out)
{
    memset(out, 0, sizeof *out);
    store_loader l = {.node = on_node, .reservation = on_res, .ud = out};
    assert_int_equal(store_load(s, &l), 0);
}

/* An outbox id names one result: once the job was placed again (or
 * deleted), marking the old result delivered must not touch the new one. */
static void test_outbox_stale_id(void **state)
{
    fixture *f = *state;
    reservation_view r = {.job_id = "st", .node_id = "n1", .cpu_milli = 100, .memory_mb = 10};
    assert_int_equal(store_enqueue(f->s, "st", 0, "{}", 1.0), 0);
    store_job j;
    assert_int_equal(store_take(f->s, &j, 0), 0);
    store_job_clear(&j);
    int64_t old_id = store_finish(f->s, "st", 0, JOB_PLACED, &r, "{\"v\":1}", 2.0);
    assert_true(old_id > 0);
    assert_int_equal(store_requeue(f->s, "st", 0, NULL, 3.0), 0);
    assert_int_equal(store_outbox_depth(f->s), 0);
    assert_int_equal(store_take(f->s, &j, 0), 0);
    store_job_clear(&j);
    int64_t new_id = store_finish(f->s, "st", 0, JOB_PLACED, &r, "{\"v\":2}", 4.0);
    assert_true(new_id > 0 && new_id != old_id);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = old_id}), 1);
    assert_int_equal(store_outbox_retry(f->s, &(outbox_key){.id = old_id}, 3, 9.0), 1);
    assert_int_equal(store_outbox_depth(f->s), 1);
    outbox_item items[2];
    assert_int_equal(store_outbox_due(f->s, 10.0, items, 2), 1);
    assert_int_equal(items[0].id, new_id);
    assert_string_equal(items[0].payload, "{\"v\":2}");
    outbox_item_clear(&items[0]);

    /* Deleted and enqueued again under the same key: a new row. */
    assert_int_equal(store_job_delete(f->s, "st", 0), 0);
    assert_int_equal(store_outbox_depth(f->s), 0);
    assert_int_equal(store_enqueue(f->s, "st", 0, "{}", 5.0), 0);
    assert_int_equal(store_take(f->s, &j, 0), 0);
    store_job_clear(&j);
    int64_t third = store_finish(f->s, "st", 0, JOB_UNSCHEDULABLE, NULL, "{\"v\":3}", 6.0);
    assert_true(third > 0 && third != new_id);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = new_id}), 1);
    assert_int_equal(store_outbox_depth(f->s), 1);
    loaded l;
    load(f->s, &l);
    assert_int_equal(l.res, 0); /* not placed: no reservation */
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = third}), 0);
    assert_int_equal(store_outbox_depth(f->s), 0);
}

/* Results of one instance are sent in decision order: a result replaced
 * while a deliverer held it is stale, and a newer one waits while an older
 * one is being sent (until it is done, retried or its lease ends). */
static void test_outbox_claim(void **state)
{
    fixture *f = *state;
    reservation_view r = {.job_id = "cl", .node_id = "n1", .cpu_milli = 100, .memory_mb = 10};
    store_job j;
    assert_int_equal(store_enqueue(f->s, "cl", 0, "{}", 1.0), 0);
    assert_int_equal(store_take(f->s, &j, 0), 0);
    store_job_clear(&j);
    int64_t x = store_finish(f->s, "cl", 0, JOB_PLACED, &r, "{\"v\":1}", 2.0);
    assert_true(x > 0);
    assert_int_equal(claim1(f->s, x, "cl", 0, 30.0), STORE_CLAIMED);
    assert_int_equal(claim1(f->s, x, "cl", 0, 30.0), STORE_CLAIMED);     /* again: still ours */
    assert_int_equal(claim1(f->s, x, "cl", 1, 30.0), STORE_CLAIM_STALE); /* not its instance */
    /* Re-scheduled while x is held in memory, and decided again. */
    assert_int_equal(store_requeue(f->s, "cl", 0, NULL, 3.0), 0);
    assert_int_equal(claim1(f->s, x, "cl", 0, 30.0), STORE_CLAIM_STALE);
    assert_int_equal(store_take(f->s, &j, 0), 0);
    store_job_clear(&j);
    int64_t y = store_finish(f->s, "cl", 0, JOB_PLACED, &r, "{\"v\":2}", 4.0);
    assert_true(y > 0 && y != x);
    assert_int_equal(claim1(f->s, y, "cl", 0, 30.0), STORE_CLAIM_BUSY);
    /* x's send ends (its row is gone: the mark changes nothing but the claim). */
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = x}), 1);
    assert_int_equal(claim1(f->s, y, "cl", 0, 0.2), STORE_CLAIMED);
    /* A retry releases too; a lease that ran out frees the instance. */
    assert_int_equal(store_outbox_retry(f->s, &(outbox_key){.id = y}, 1, 5.0), 0);
    assert_int_equal(claim1(f->s, y, "cl", 0, 0.2), STORE_CLAIMED);
    assert_int_equal(store_requeue(f->s, "cl", 0, NULL, 6.0), 0);
    assert_int_equal(store_take(f->s, &j, 0), 0);
    store_job_clear(&j);
    int64_t z = store_finish(f->s, "cl", 0, JOB_UNSCHEDULABLE, NULL, "{\"v\":3}", 7.0);
    assert_int_equal(claim1(f->s, z, "cl", 0, 30.0), STORE_CLAIM_BUSY);
    usleep(300 * 1000);
    assert_int_equal(claim1(f->s, z, "cl", 0, 30.0), STORE_CLAIMED);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = z}), 0);
    assert_int_equal(claim1(f->s, z, "cl", 0, 30.0), STORE_CLAIM_STALE);
    /* Deleted: stale. Several at once, and bad arguments. */
    assert_int_equal(store_enqueue(f->s, "cl", 1, "{}", 8.0), 0);
    assert_int_equal(store_take(f->s, &j, 0), 0);
    store_job_clear(&j);
    int64_t w = store_finish(f->s, "cl", 1, JOB_UNSCHEDULABLE, NULL, "{}", 9.0);
    outbox_item two[2] = {{.id = w, .instance = 1}, {.id = z, .instance = 0}};
    snprintf(two[0].job_id, sizeof two[0].job_id, "cl");
    snprintf(two[1].job_id, sizeof two[1].job_id, "cl");
    int rcs[2];
    assert_int_equal(store_outbox_claim(f->s, two, 2, 30.0, rcs), 0);
    assert_int_equal(rcs[0], STORE_CLAIMED);
    assert_int_equal(rcs[1], STORE_CLAIM_STALE);
    assert_int_equal(store_job_delete(f->s, "cl", 1), 0);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = w}), 1);
    assert_int_equal(claim1(f->s, w, "cl", 1, 30.0), STORE_CLAIM_STALE);
    assert_int_equal(store_outbox_claim(f->s, two, 2, 0.0, rcs), -1);
    assert_int_equal(store_outbox_claim(f->s, NULL, 2, 1.0, rcs), -1);
    assert_int_equal(store_outbox_claim(NULL, two, 2, 1.0, rcs), -1);
    assert_int_equal(store_outbox_claim(f->s, NULL, 0, 1.0, NULL), 0);
}

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* A data directory written by schema version 1 (reservations and outbox in
 * side tables) opens with everything in place. */
static void test_migrate_v1(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    f->s = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/scheduler.db", f->dir);
    assert_int_equal(remove(path), 0);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_sql(db, "PRAGMA journal_mode=WAL;"
                 "CREATE TABLE jobs(job_id TEXT NOT NULL, instance INTEGER NOT NULL,"
                 " state INTEGER NOT NULL, body TEXT NOT NULL, result TEXT,"
                 " node_id TEXT NOT NULL DEFAULT '', received_at REAL NOT NULL, decided_at REAL,"
                 " seq INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
                 " PRIMARY KEY(job_id, instance));"
                 "CREATE INDEX jobs_queued ON jobs(seq) WHERE state = 0;"
                 "CREATE TABLE reservations(job_id TEXT NOT NULL, instance INTEGER NOT NULL,"
                 " node_id TEXT NOT NULL, cpu_milli INTEGER NOT NULL, memory_mb INTEGER NOT NULL,"
                 " gpus INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY(job_id, instance));"
                 "CREATE INDEX reservations_node ON reservations(node_id);"
                 "CREATE TABLE nodes(id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL,"
                 " last_report REAL NOT NULL);"
                 "CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL,"
                 " instance INTEGER NOT NULL, payload TEXT NOT NULL,"
                 " attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,"
                 " next_at REAL NOT NULL);"
                 "CREATE INDEX outbox_job ON outbox(job_id, instance);"
                 "CREATE INDEX outbox_next ON outbox(next_at);"
                 "INSERT INTO jobs VALUES('p', 0, 1, '{}', '{\"placed\":1}', 'n1', 1, 2, 1, 0);"
                 "INSERT INTO jobs VALUES('q', 0, 0, '{\"q\":1}', NULL, '', 3, NULL, 2, 0);"
                 "INSERT INTO reservations VALUES('p', 0, 'n1', 250, 64, 1, 2);"
                 "INSERT INTO nodes VALUES('n1', '{}', 1);"
                 "INSERT INTO outbox(job_id, instance, payload, attempts, created_at, next_at)"
                 " VALUES('p', 0, '', 2, 2, 7);"
                 "PRAGMA user_version=1;");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    cs_error err = {0};
    f->s = store_sqlite_open(f->dir, &err);
    if (!f->s)
        fail_msg("open: %s: %s", err.field, err.msg);
    assert_int_equal(store_outbox_depth(f->s), 1);
    assert_int_equal(store_queue_depth(f->s), 1);
    loaded l;
    load(f->s, &l);
    assert_int_equal(l.nodes, 1);
    assert_int_equal(l.res, 1);
    assert_string_equal(l.rv[0].job_id, "p");
    assert_string_equal(l.rv[0].node_id, "n1");
    assert_int_equal(l.rv[0].cpu_milli, 250);
    assert_int_equal(l.rv[0].memory_mb, 64);
    assert_int_equal(l.rv[0].gpus, 1);
    outbox_item items[2];
    assert_int_equal(store_outbox_due(f->s, 6.0, items, 2), 0); /* next_at 7 kept */
    assert_int_equal(store_outbox_due(f->s, 7.0, items, 2), 1);
    assert_string_equal(items[0].payload, "{\"placed\":1}");
    assert_int_equal(items[0].attempts, 2);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = items[0].id}), 0);
    outbox_item_clear(&items[0]);
    assert_int_equal(store_outbox_depth(f->s), 0);
    /* Node deletion still finds the node's reservations. */
    size_t requeued = 0;
    assert_int_equal(store_node_delete(f->s, "n1", &requeued), 0);
    load(f->s, &l);
    assert_int_equal(l.res, 0);
}

/* A JSON object of n bytes (spaces inside), for writes of many pages. */
static char *big_body(size_t n)
{
    char *body = malloc(n + 1);
    assert_non_null(body);
    memset(body, ' ', n);
    body[0] = '{';
    body[n - 1] = '}';
    body[n] = '\0';
    return body;
}

/* Queues and deletes rounds jobs named <prefix><i>: WAL traffic with an
 * empty queue at the end. With wal set, *largest gets the WAL file's
 * largest size seen. */
static void churn(fixture *f, const char *prefix, int rounds, const char *body, const char *wal,
                  off_t *largest)
{
    for (int i = 0; i < rounds; i++) {
        char id[32];
        snprintf(id, sizeof id, "%s%d", prefix, i);
        assert_int_equal(store_enqueue(f->s, id, 0, body, 1.0), 0);
        assert_int_equal(store_job_delete(f->s, id, 0), 0);
        if (wal) {
            struct stat st;
            assert_int_equal(stat(wal, &st), 0);
            if (st.st_size > *largest)
                *largest = st.st_size;
        }
    }
}

/* A reader on an old snapshot keeps the WAL from being copied past it. The
 * writer must not wait for it at every commit (it waited 5 s each), and
 * once it is gone the WAL is copied and starts over. */
static void test_wal_reader_holds_snapshot(void **state)
{
    fixture *f = *state;
    enum { BODY = 16 * 1024, ROUNDS = 3000 };
    char *body = big_body(BODY);
    char path[96], wal[96];
    snprintf(path, sizeof path, "%s/scheduler.db", f->dir);
    snprintf(wal, sizeof wal, "%s/scheduler.db-wal", f->dir);
    churn(f, "q", 10, body, NULL, NULL);
    sqlite3 *rd = NULL;
    assert_int_equal(sqlite3_open_v2(path, &rd, SQLITE_OPEN_READONLY, "unix-excl"), SQLITE_OK);
    exec_sql(rd, "BEGIN; SELECT count(*) FROM jobs");
    double t0 = now_s();
    off_t held = 0;
    churn(f, "r", ROUNDS, body, wal, &held);
    /* About 30,000 pages of WAL: a 5 s wait per commit past 8,000 would
     * take hours; the bound is for a hang, not for speed. */
    assert_true(now_s() - t0 < 120.0);
    exec_sql(rd, "COMMIT");
    sqlite3_close(rd);
    /* As much again: the WAL starts over instead of growing by as much. */
    off_t after = held;
    churn(f, "s", ROUNDS, body, wal, &after);
    assert_true(after < held + (off_t)9000 * 4120);
    free(body);
    assert_int_equal(store_queue_depth(f->s), 0);
}

/* Older versions indexed reservations by node (jobs_res_node); opening
 * such a directory replaces it with the index by decision time, and a node
 * delete still releases exactly that node's reservations through it. */
static void test_res_index_upgrade(void **state)
{
    fixture *f = *state;
    const char *nodes[4] = {"a", "b", "a", "c"};
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(store_enqueue(f->s, "ri", i, "{}", 1.0), 0);
        reservation_view r = res_on("ri", i, nodes[i]);
        r.at = 10.0 - i;
        assert_true(store_finish(f->s, "ri", i, JOB_PLACED, &r, "{}", 2.0) > 0);
    }
    store_close(f->s);
    f->s = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/scheduler.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_sql(db, "DROP INDEX jobs_res; CREATE INDEX jobs_res_node ON jobs(res_node)"
                 " WHERE res_node IS NOT NULL");
    sqlite3_close(db);
    reopen(f);

    assert_int_equal(store_node_delete(f->s, "a", NULL), 1); /* no node row, reservations go */
    loaded l;
    load(f->s, &l);
    assert_int_equal(l.res, 2);
    /* Loaded in decision-time order. */
    assert_int_equal(l.rv[0].instance, 3);
    assert_string_equal(l.rv[0].node_id, "c");
    assert_int_equal(l.rv[1].instance, 1);
    assert_string_equal(l.rv[1].node_id, "b");
    store_close(f->s);
    f->s = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT group_concat(name, ',') FROM (SELECT name FROM"
                                        " sqlite_master WHERE type = 'index' AND name LIKE"
                                        " 'jobs_res%' ORDER BY name)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "jobs_res");
    sqlite3_finalize(st);
    sqlite3_close(db);
    reopen(f);
}

static void test_requeue(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_requeue(f->s, "nope", 0, NULL, 1.0), 1);
    assert_int_equal(store_enqueue(f->s, "r", 0, "{\"b\":1}", 1.0), 0);
    assert_int_equal(store_enqueue(f->s, "other", 0, "{}", 1.5), 0);
    /* Still queued: requeue changes nothing and adds no second copy. */
    assert_int_equal(store_requeue(f->s, "r", 0, NULL, 1.7), 0);
    assert_int_equal(store_queue_depth(f->s), 2);
    take_expect(f->s, "r", 0, NULL);
    reservation_view r = res_on("r", 0, "dead-node");
    assert_true(store_finish(f->s, "r", 0, JOB_PLACED, &r, "{\"found\":true}", 2.0) > 0);
    assert_int_equal(store_requeue(f->s, "r", 0, NULL, 3.0), 0);
    assert_int_equal(store_queue_depth(f->s), 2);
    take_expect(f->s, "other", 0, NULL); /* requeued goes to the back */
    store_job j = {0};
    assert_int_equal(store_take(f->s, &j, 100), 0);
    assert_string_equal(j.job_id, "r");
    assert_string_equal(j.body, "{\"b\":1}");
    assert_int_equal(j.attempts, 1);
    assert_true(j.received_at == 1.0);
    store_job_clear(&j);

    store_status st;
    assert_int_equal(store_status_get(f->s, "r", 0, &st), 0);
    assert_int_equal(st.state, JOB_QUEUED);
    assert_null(st.result);
    assert_string_equal(st.node_id, "");
    store_status_clear(&st);
    /* The stale result and the reservation went with the old outcome. */
    assert_int_equal(store_outbox_depth(f->s), 0);
    loaded l;
    load(f->s, &l);
    assert_int_equal(l.res, 0);
}

static void test_reopen(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "q%d", i);
        assert_int_equal(store_enqueue(f->s, id, (uint32_t)i, "{}", (double)i), 0);
    }
    take_expect(f->s, "q0", 0, NULL);
    take_expect(f->s, "q1", 1, NULL);
    reservation_view r = res_on("q1", 1, "n-a");
    assert_true(store_finish(f->s, "q1", 1, JOB_PLACED, &r, "{\"found\":true}", 9.0) > 0);
    assert_int_equal(store_node_put(f->s, "n-a", "{\"vcpus\":4}", 7.0, NULL), 0);
    assert_int_equal(store_node_put(f->s, "n-b", "{\"vcpus\":2}", 7.5, NULL), 0);
    assert_int_equal(store_node_put(f->s, "n-a", "{\"vcpus\":8}", 8.0, NULL), 0); /* update */

    reopen(f);
    /* q0 was taken but never finished: handed out again, first. */
    assert_int_equal(store_queue_depth(f->s), 4);
    take_expect(f->s, "q0", 0, NULL);
    take_expect(f->s, "q2", 2, NULL);
    take_expect(f->s, "q3", 3, NULL);
    take_expect(f->s, "q4", 4, NULL);
    store_status st;
    assert_int_equal(store_status_get(f->s, "q1", 1, &st), 0);
    assert_int_equal(st.state, JOB_PLACED);
    assert_string_equal(st.node_id, "n-a");
    store_status_clear(&st);

    loaded l;
    load(f->s, &l);
    assert_int_equal(l.nodes, 2);
    assert_string_equal(l.node_ids[0], "n-a");
    assert_string_equal(l.node_docs[0], "{\"vcpus\":8}");
    assert_true(l.reports[0] == 8.0);
    assert_string_equal(l.node_ids[1], "n-b");
    assert_int_equal(l.res, 1);
    assert_string_equal(l.rv[0].job_id, "q1");
    assert_int_equal(l.rv[0].instance, 1);
    assert_string_equal(l.rv[0].node_id, "n-a");
    assert_int_equal(l.rv[0].cpu_milli, 1500);
    assert_int_equal(l.rv[0].memory_mb, 512);
    assert_int_equal(l.rv[0].gpus, 1);
    assert_true(l.rv[0].at == 100.0);
}

static void test_node_delete(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_node_put(f->s, "keep", "{}", 1.0, NULL), 0);
    assert_int_equal(store_node_put(f->s, "drop", "{}", 1.0, NULL), 0);
    const char *nodes[3] = {"drop", "keep", "drop"};
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(store_enqueue(f->s, "nd", i, "{}", 1.0), 0);
        reservation_view r = res_on("nd", i, nodes[i]);
        assert_true(store_finish(f->s, "nd", i, JOB_PLACED, &r, "{}", 2.0) > 0);
    }
    assert_int_equal(store_node_delete(f->s, "drop", NULL), 0);
    assert_int_equal(store_node_delete(f->s, "drop", NULL), 1);
    loaded l;
    load(f->s, &l);
    assert_int_equal(l.nodes, 1);
    assert_string_equal(l.node_ids[0], "keep");
    assert_int_equal(l.res, 1);
    assert_string_equal(l.rv[0].node_id, "keep");
    assert_int_equal(l.rv[0].instance, 1);
}

static void test_job_delete(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_job_delete(f->s, "x", 0), 1);
    assert_int_equal(store_enqueue(f->s, "x", 0, "{}", 1.0), 0);
    assert_int_equal(store_enqueue(f->s, "x", 1, "{}", 1.0), 0);
    assert_int_equal(store_enqueue(f->s, "y", 0, "{}", 1.0), 0);
    take_expect(f->s, "x", 0, NULL);
    reservation_view r = res_on("x", 0, "n");
    assert_true(store_finish(f->s, "x", 0, JOB_PLACED, &r, "{}", 2.0) > 0);
    assert_int_equal(store_outbox_depth(f->s), 1);
    assert_int_equal(store_job_delete(f->s, "x", 0), 0); /* decided */
    assert_int_equal(store_job_delete(f->s, "x", 1), 0); /* still queued */
    assert_int_equal(store_outbox_depth(f->s), 0);
    assert_int_equal(store_queue_depth(f->s), 1);
    take_expect(f->s, "y", 0, NULL);
    store_status st;
    assert_int_equal(store_status_get(f->s, "x", 0, &st), 1);
    loaded l;
    load(f->s, &l);
    assert_int_equal(l.res, 0);
    /* Once forgotten, the same id and instance can be queued again. */
    assert_int_equal(store_enqueue(f->s, "x", 0, "{\"again\":1}", 3.0), 0);
    take_expect(f->s, "x", 0, "{\"again\":1}");
}

static void test_bad_args(void **state)
{
    fixture *f = *state;
    char long_id[CS_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    char max_id[CS_ID_MAX + 1];
    memset(max_id, 'b', sizeof max_id - 1);
    max_id[sizeof max_id - 1] = '\0';

    assert_int_equal(store_enqueue(NULL, "a", 0, "{}", 1.0), -1);
    assert_int_equal(store_enqueue(f->s, NULL, 0, "{}", 1.0), -1);
    assert_int_equal(store_enqueue(f->s, "", 0, "{}", 1.0), -1);
    assert_int_equal(store_enqueue(f->s, long_id, 0, "{}", 1.0), -1);
    assert_int_equal(store_enqueue(f->s, "a", 0, NULL, 1.0), -1);
    assert_int_equal(store_enqueue(f->s, "a", 0, "{}", NAN), -1);
    assert_int_equal(store_enqueue(f->s, max_id, 0, "{}", 1.0), 0);
    assert_int_equal(store_requeue(f->s, long_id, 0, NULL, 1.0), -1);
    assert_int_equal(store_take(f->s, NULL, 0), -1);
    assert_int_equal(store_take(NULL, NULL, 0), -1);
    assert_int_equal(store_finish(f->s, long_id, 0, JOB_PLACED, NULL, "{}", 1.0), -1);
    assert_int_equal(store_finish(f->s, max_id, 0, JOB_PLACED, NULL, NULL, 1.0), -1);
    assert_int_equal(store_finish(f->s, max_id, 0, JOB_QUEUED, NULL, "{}", 1.0), -1);
    assert_int_equal(store_finish(f->s, max_id, 0, (job_state)42, NULL, "{}", 1.0), -1);
    reservation_view r = res_on("x", 0, "n");
    memset(r.node_id, 'n', sizeof r.node_id); /* not terminated */
    assert_int_equal(store_finish(f->s, max_id, 0, JOB_PLACED, &r, "{}", 1.0), -1);
    store_status st;
    assert_int_equal(store_status_get(f->s, long_id, 0, &st), -1);
    assert_int_equal(store_status_get(f->s, "a", 0, NULL), -1);
    assert_int_equal(store_job_delete(f->s, NULL, 0), -1);
    assert_int_equal(store_node_put(f->s, long_id, "{}", 1.0, NULL), -1);
    assert_int_equal(store_node_put(f->s, "n", NULL, 1.0, NULL), -1);
    assert_int_equal(store_node_delete(f->s, long_id, NULL), -1);
    assert_int_equal(store_load(f->s, NULL), -1);
    assert_int_equal(store_outbox_due(f->s, 1.0, NULL, 3), -1);
    outbox_item it;
    assert_int_equal(store_outbox_due(f->s, 1.0, &it, 0), 0);
    assert_int_equal(store_outbox_due(f->s, 1.0, &it, -1), -1);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = -5}), 1);
    assert_int_equal(store_queue_depth(NULL), 0);
    assert_int_equal(store_outbox_depth(NULL), 0);
    store_close(NULL);
    store_job_clear(NULL);
    store_status_clear(NULL);
    outbox_item_clear(NULL);

    cs_error err = {0};
    assert_null(store_sqlite_open(NULL, &err));
    assert_null(store_sqlite_open("", &err));
    assert_null(store_sqlite_open("/proc/version/sub", &err));
    assert_string_equal(err.field, "data_dir");

    /* Strings are bound, never spliced into SQL. */
    const char *evil = "x'); DROP TABLE jobs; --";
    assert_int_equal(store_enqueue(f->s, evil, 0, evil, 1.0), 0);
    take_expect(f->s, max_id, 0, NULL);
    take_expect(f->s, evil, 0, evil);
}

static void *blocked_take(void *p)
{
    store_job j = {0};
    int rc = store_take(p, &j, -1);
    store_job_clear(&j);
    return (void *)(intptr_t)rc;
}

static void test_close_wakes_takers(void **state)
{
    fixture *f = *state;
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, blocked_take, f->s), 0);
    usleep(50000);
    store_close(f->s);
    f->s = NULL;
    for (int i = 0; i < 3; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_int_equal((intptr_t)rc, -1);
    }
    cs_error err = {0};
    f->s = store_sqlite_open(f->dir, &err);
    assert_non_null(f->s);
}

/* --- group commit ------------------------------------------------------ */

enum { GC_THREADS = 8, GC_PER = 500, GC_TOTAL = GC_THREADS * GC_PER };

typedef struct gc_ctx {
    store *s;
    int thread;
    int failures;
    pthread_mutex_t *mu;
    unsigned char *seen; /* GC_TOTAL counters */
    int *taken;
} gc_ctx;

static void *gc_enqueue(void *p)
{
    gc_ctx *c = p;
    char body[256];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (int i = 0; i < GC_PER; i++) {
        char id[32];
        snprintf(id, sizeof id, "gc-%d", c->thread);
        if (store_enqueue(c->s, id, (uint32_t)i, body, 1.0) != 0)
            c->failures++;
    }
    return NULL;
}

static void *gc_take(void *p)
{
    gc_ctx *c = p;
    for (;;) {
        pthread_mutex_lock(c->mu);
        int done = *c->taken >= GC_TOTAL;
        pthread_mutex_unlock(c->mu);
        if (done)
            return NULL;
        store_job j = {0};
        int rc = store_take(c->s, &j, 100);
        if (rc < 0)
            return NULL;
        if (rc == 1)
            continue;
        int t = -1;
        if (sscanf(j.job_id, "gc-%d", &t) == 1 && t >= 0 && t < GC_THREADS && j.instance < GC_PER) {
            pthread_mutex_lock(c->mu);
            c->seen[t * GC_PER + (int)j.instance]++;
            (*c->taken)++;
            pthread_mutex_unlock(c->mu);
        }
        store_job_clear(&j);
    }
}

static void test_group_commit(void **state)
{
    fixture *f = *state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    unsigned char *seen = calloc(GC_TOTAL, 1);
    assert_non_null(seen);
    int taken = 0;
    gc_ctx prod[GC_THREADS], cons[2];
    pthread_t tp[GC_THREADS], tc[2];
    for (int i = 0; i < 2; i++) {
        cons[i] = (gc_ctx){.s = f->s, .mu = &mu, .seen = seen, .taken = &taken};
        assert_int_equal(pthread_create(&tc[i], NULL, gc_take, &cons[i]), 0);
    }
    double t0 = now_s();
    for (int i = 0; i < GC_THREADS; i++) {
        prod[i] = (gc_ctx){.s = f->s, .thread = i};
        assert_int_equal(pthread_create(&tp[i], NULL, gc_enqueue, &prod[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < GC_THREADS; i++) {
        pthread_join(tp[i], NULL);
        failures += prod[i].failures;
    }
    double dt = now_s() - t0;
    for (int i = 0; i < 2; i++)
        pthread_join(tc[i], NULL);
    print_message("group commit: %d enqueues from %d threads in %.3f s = %.0f/s\n", GC_TOTAL,
                  GC_THREADS, dt, GC_TOTAL / dt);
    assert_int_equal(failures, 0);
    assert_int_equal(taken, GC_TOTAL);
    for (int i = 0; i < GC_TOTAL; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(store_queue_depth(f->s), 0);
    free(seen);
}

/* --- durability across kill -9 ----------------------------------------- */

/* The child writes through a store of its own and dies by SIGKILL without
 * closing; everything that returned must be there when the parent opens. */
static void crash_child(const char *dir)
{
    cs_error err;
    store *s = store_sqlite_open(dir, &err);
    if (!s)
        _exit(2);
    for (uint32_t i = 0; i < 300; i++) {
        if (store_enqueue(s, "k9", i, "{\"durable\":true}", (double)i) != 0)
            _exit(3);
    }
    store_job j;
    if (store_take(s, &j, 1000) != 0)
        _exit(4);
    reservation_view r = res_on("k9", j.instance, "node-k");
    if (store_finish(s, "k9", j.instance, JOB_PLACED, &r, "{\"found\":true}", 1.0) <= 0)
        _exit(5);
    if (store_node_put(s, "node-k", "{\"vcpus\":4}", 1.0, NULL) != 0)
        _exit(6);
    raise(SIGKILL);
    _exit(7);
}

static void test_kill9(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    f->s = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        crash_child(f->dir);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    cs_error err = {0};
    f->s = store_sqlite_open(f->dir, &err);
    assert_non_null(f->s);
    assert_int_equal(store_queue_depth(f->s), 299);
    for (uint32_t i = 1; i < 300; i++)
        take_expect(f->s, "k9", i, "{\"durable\":true}");
    assert_int_equal(store_outbox_depth(f->s), 1);
    loaded l;
    load(f->s, &l);
    assert_int_equal(l.nodes, 1);
    assert_int_equal(l.res, 1);
    assert_string_equal(l.rv[0].node_id, "node-k");
}

/* Replicate queues all instances at once; one already known is reported
 * as such and the rest keep their order. */
static void test_enqueue_many(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_enqueue(f->s, "rep", 2, "{}", 1.0), 0);
    int rcs[5];
    assert_int_equal(store_enqueue_many(f->s, "rep", 5, "{\"r\":1}", 2.0, rcs), 0);
    int want[5] = {0, 0, 1, 0, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(rcs[i], want[i]);
    uint32_t order[5] = {2, 0, 1, 3, 4};
    for (int i = 0; i < 5; i++) {
        store_job j;
        assert_int_equal(store_take(f->s, &j, 1000), 0);
        assert_string_equal(j.job_id, "rep");
        assert_int_equal(j.instance, order[i]);
        store_job_clear(&j);
    }
    assert_int_equal(store_queue_depth(f->s), 0);
    assert_int_equal(store_enqueue_many(f->s, "rep", 0, "{}", 3.0, rcs), -1);
}

/* Under steady writes the WAL is copied into the database and starts over,
 * so its file stays bounded however long the load lasts: here the writer
 * (nothing else to do) may outrun the checkpoint thread, and past 8,000
 * pages it copies what is left itself before it writes more. */
static void test_wal_bounded(void **state)
{
    fixture *f = *state;
    enum { BODY = 16 * 1024, ROUNDS = 8000 };
    char *body = big_body(BODY);
    char wal[96];
    snprintf(wal, sizeof wal, "%s/scheduler.db-wal", f->dir);
    off_t largest = 0;
    churn(f, "w", ROUNDS, body, wal, &largest);
    free(body);
    /* Each round writes several pages (an overflow chain and its freeing),
     * so without restarts the WAL would pass 200 MB. A frame is a 4 KB page
     * and a 24-byte header; nothing is copied before 1,000. */
    assert_true(largest > (off_t)1000 * 4120);
    assert_true(largest < (off_t)9000 * 4120);
    assert_int_equal(store_queue_depth(f->s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enqueue_take_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_reader_holds_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_stale_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_res_index_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_wakes_takers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
