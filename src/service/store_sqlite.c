/* store_sqlite.c - the embedded durable store: the job queue, job outcomes,
 * node documents, reservations and the result outbox in one SQLite file
 * (DATA_DIR/scheduler.db, WAL). One writer thread owns the write connection
 * and group-commits every caller's write: callers queue a request and sleep
 * until the transaction holding it has committed, so a burst of N writes
 * costs a handful of commits instead of N. Reads use a second connection.
 * The queue itself lives in memory (rebuilt from the jobs table at open) and
 * only ever shows jobs whose row has committed. */
#include "store_impl.h"
#include "walvfs.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Ops per transaction: large enough that a burst shares a few commits, small
 * enough that one transaction never holds the WAL for long. */
#define BATCH_MAX 4096
#define BUSY_TIMEOUT_MS 5000
#define SCHEMA_VERSION 2
#define PATH_CAP 4096

/* Version 2: a job's reservation and its undelivered result live in its own
 * row (columns res_* and out_*, each found through a partial index) instead
 * of two side tables: deciding a job rewrites one row and two small indexes
 * instead of inserting into six b-trees, and a delivery clears one column
 * instead of deleting from three. */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS jobs("
    " job_id TEXT NOT NULL, instance INTEGER NOT NULL, state INTEGER NOT NULL,"
    " body TEXT NOT NULL, result TEXT, node_id TEXT NOT NULL DEFAULT '',"
    " received_at REAL NOT NULL, decided_at REAL, seq INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " res_node TEXT, res_cpu INTEGER, res_mem INTEGER, res_gpus INTEGER, res_at REAL,"
    " out_gen INTEGER NOT NULL DEFAULT 0, out_next REAL,"
    " out_attempts INTEGER NOT NULL DEFAULT 0, out_created REAL,"
    " PRIMARY KEY(job_id, instance));"
    "CREATE INDEX IF NOT EXISTS jobs_queued ON jobs(seq) WHERE state = 0;"
    /* Reservations by decision time, not by node: a placement appends to
     * the index's last leaf, where one keyed by node made each placement
     * dirty a random leaf, a page of WAL per job once the index outgrew the
     * batch (throughput fell by a third over a 600,000-job run). The rare
     * node delete scans it; jobs_res_node is what older versions made. */
    "DROP INDEX IF EXISTS jobs_res_node;"
    "CREATE INDEX IF NOT EXISTS jobs_res ON jobs(res_at, res_node) WHERE res_node IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS jobs_out ON jobs(out_next) WHERE out_next IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS nodes("
    " id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL, last_report REAL NOT NULL);";

/* From version 1 (side tables reservations and outbox) to 2, in place. */
static const char MIGRATE_1_2[] =
    "ALTER TABLE jobs ADD COLUMN res_node TEXT;"
    "ALTER TABLE jobs ADD COLUMN res_cpu INTEGER;"
    "ALTER TABLE jobs ADD COLUMN res_mem INTEGER;"
    "ALTER TABLE jobs ADD COLUMN res_gpus INTEGER;"
    "ALTER TABLE jobs ADD COLUMN res_at REAL;"
    "ALTER TABLE jobs ADD COLUMN out_gen INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN out_next REAL;"
    "ALTER TABLE jobs ADD COLUMN out_attempts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN out_created REAL;"
    "UPDATE jobs SET res_node = r.node_id, res_cpu = r.cpu_milli, res_mem = r.memory_mb,"
    " res_gpus = r.gpus, res_at = r.at FROM reservations r"
    " WHERE r.job_id = jobs.job_id AND r.instance = jobs.instance;"
    "UPDATE jobs SET out_gen = o.id, out_next = o.next_at, out_attempts = o.attempts,"
    " out_created = o.created_at FROM outbox o"
    " WHERE o.job_id = jobs.job_id AND o.instance = jobs.instance;"
    "DROP TABLE reservations;"
    "DROP TABLE outbox;";

/* An outbox id names a job row and the generation of its result, so that a
 * delivery of an older result (the job was re-placed meanwhile, or deleted
 * and its row id reused) never marks a newer one delivered. Generations come
 * from the writer's global sequence; only their low bits are kept. */
#define OUT_GEN_BITS 23
#define OUT_GEN_MASK ((INT64_C(1) << OUT_GEN_BITS) - 1)

static int64_t outbox_id_make(int64_t rowid, int64_t gen)
{
    return (rowid << OUT_GEN_BITS) | (gen & OUT_GEN_MASK);
}

enum {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_SP,
    W_SP_RELEASE,
    W_SP_ROLLBACK,
    W_JOB_INSERT,
    W_JOB_GET,
    W_JOB_REQUEUE,
    W_JOB_FINISH,
    W_JOB_DELETE,
    W_JOB_OUTSTATE,
    W_RES_DELETE_NODE,
    W_OUTBOX_DELETE,
    W_OUTBOX_RETRY,
    W_NODE_PUT,
    W_NODE_DELETE,
    W_COUNT
};

static const char *const W_SQL[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SP] = "SAVEPOINT op",
    [W_SP_RELEASE] = "RELEASE op",
    [W_SP_ROLLBACK] = "ROLLBACK TO op",
    [W_JOB_INSERT] = "INSERT INTO jobs(job_id, instance, state, body, received_at, seq)"
                     " VALUES(?, ?, 0, ?, ?, ?) ON CONFLICT(job_id, instance) DO NOTHING",
    [W_JOB_GET] = "SELECT state, body, received_at, attempts, node_id, out_next IS NOT NULL"
                  " FROM jobs WHERE job_id = ? AND instance = ?",
    /* A requeue drops the reservation and any result not yet delivered: the
     * new placement sends its own. */
    [W_JOB_REQUEUE] = "UPDATE jobs SET state = 0, result = NULL, node_id = '', decided_at = NULL,"
                      " seq = ?, attempts = attempts + 1, res_node = NULL, out_next = NULL"
                      " WHERE job_id = ? AND instance = ?",
    [W_JOB_FINISH] = "UPDATE jobs SET state = ?, result = ?, node_id = ?, decided_at = ?,"
                     " res_node = ?, res_cpu = ?, res_mem = ?, res_gpus = ?, res_at = ?,"
                     " out_gen = ?, out_next = ?, out_attempts = 0, out_created = ?"
                     " WHERE rowid = ?",
    [W_JOB_DELETE] = "DELETE FROM jobs WHERE rowid = ?",
    [W_JOB_OUTSTATE] = "SELECT rowid, out_next IS NOT NULL FROM jobs"
                       " WHERE job_id = ? AND instance = ?",
    [W_RES_DELETE_NODE] = "UPDATE jobs INDEXED BY jobs_res SET res_node = NULL WHERE res_node = ?",
    [W_OUTBOX_DELETE] = "UPDATE jobs SET out_next = NULL"
                        " WHERE rowid = ? AND out_gen & ? = ? AND out_next IS NOT NULL",
    [W_OUTBOX_RETRY] = "UPDATE jobs SET out_attempts = ?, out_next = ?"
                       " WHERE rowid = ? AND out_gen & ? = ? AND out_next IS NOT NULL",
    [W_NODE_PUT] = "INSERT INTO nodes(id, doc, last_report) VALUES(?, ?, ?) ON CONFLICT(id)"
                   " DO UPDATE SET doc = excluded.doc, last_report = excluded.last_report",
    [W_NODE_DELETE] = "DELETE FROM nodes WHERE id = ?",
};

enum { R_STATUS, R_DUE, R_OUTCUR, R_COUNT };

static const char *const R_SQL[R_COUNT] = {
    [R_STATUS] = "SELECT state, node_id, body, result, received_at, decided_at FROM jobs"
                 " WHERE job_id = ? AND instance = ?",
    [R_DUE] = "SELECT rowid, out_gen, job_id, instance, COALESCE(result, ''), out_attempts,"
              " out_created, out_next FROM jobs WHERE out_next <= ? ORDER BY out_next LIMIT ?",
    [R_OUTCUR] =
        "SELECT out_gen, job_id, instance FROM jobs WHERE rowid = ? AND out_next IS NOT NULL",
};

typedef struct qnode {
    struct qnode *next;
    store_job job;
} qnode;

typedef enum op_kind {
    OP_ENQUEUE,
    OP_REQUEUE,
    OP_FINISH,
    OP_JOB_DELETE,
    OP_NODE_PUT,
    OP_NODE_DELETE,
    OP_OUTBOX_DONE,
    OP_OUTBOX_RETRY,
} op_kind;

/* One caller's write. Lives on the caller's stack: the caller sleeps on
 * `cond` until the writer sets `done`, and the writer never touches it after
 * that, so no allocation is needed per write. An asynchronous write
 * (done_fn set, store_enqueue_async) is malloc'ed instead: whoever commits
 * it calls done_fn and frees it; its caller never waits. */
typedef struct op {
    op_kind kind;
    const char *id; /* job or node id */
    uint32_t instance;
    const char *text; /* body, result or node document */
    const reservation_view *res;
    job_state state;
    int64_t outbox_id;
    uint32_t attempts;
    double t; /* now, last_report or next_at */

    /* Filled by the writer. */
    int64_t rc;
    qnode *append; /* to put on the in-memory queue once committed */
    bool unqueue;  /* to take off the in-memory queue once committed */
    int64_t outbox_delta;
    bool done;
    pthread_cond_t cond;
    store_done_fn done_fn;
    void *done_ud;
    struct op *next;
} op;

/* A delivery in flight (store_outbox_claim). One process owns the file,
 * so the claims live in memory; they are few (one per result a deliverer
 * holds), so a flat array does. */
#define CLAIM_MAX 1024
/* See submit_many: how soon after a commit a caller yields before its own. */
#define YIELD_WINDOW 200e-6
typedef struct claim {
    int64_t id;
    uint32_t instance;
    double until; /* monotonic */
    char job_id[CS_ID_MAX + 1];
} claim;

typedef struct sqstore sqstore;
struct sqstore {
    store base; /* first: the generic handle points here */
    char path[PATH_CAP];
    sqlite3 *wdb; /* the committer only (see `writing`), and open before it */
    sqlite3 *rdb; /* under rmu */
    sqlite3_stmt *w[W_COUNT];
    sqlite3_stmt *r[R_COUNT];
    int64_t next_seq; /* committer only */
    bool doomed;      /* committer only: the current transaction cannot commit */

    bool sync_ready;
    pthread_mutex_t mu; /* pending ops, writing, closing, users */
    pthread_cond_t work;
    pthread_cond_t idle;
    op *head, *tail;
    bool writing;       /* a thread is committing a batch: the only user of wdb */
    double last_commit; /* monotonic: when the last commit ended */
    bool closing;
    bool unflushed; /* asynchronous writes queued since the last flush */
    unsigned users; /* callers inside the API; close waits for them */

    pthread_mutex_t qmu; /* the in-memory queue */
    pthread_cond_t qcond;
    qnode *qhead, *qtail;
    size_t qlen;
    bool qclosed;

    pthread_mutex_t rmu;
    claim claims[CLAIM_MAX]; /* under rmu */
    size_t n_claims;

    pthread_t writer;
    bool writer_started;
    walvfs *vfs; /* every connection's: "unix-excl" with WAL writes gathered */

    /* Checkpoints run on their own thread and connection, so a commit never
     * waits for one (the writer's own automatic checkpoints are off). */
    sqlite3 *cdb;
    pthread_t ckpt;
    bool ckpt_started;
    pthread_mutex_t cmu;
    pthread_cond_t ccond; /* to the checkpoint thread: a step is due */
    pthread_cond_t cdone; /* from it: a pass ended */
    bool ckpt_running;    /* guarded by cmu: a pass is copying */
    int wal_pages;        /* guarded by cmu: WAL size after the last commit */
    int wal_copied;       /* guarded by cmu: WAL frames the last checkpoint copied */
    int force_at;         /* guarded by cmu: WAL size at which the writer copies it all */
    bool ckpt_stop;
    bool ckpt_sync_ready;
    atomic_size_t outbox_n;
};

/* --- small helpers ----------------------------------------------------- */

static bool id_ok(const char *id)
{
    if (!id || !*id)
        return false;
    return strnlen(id, CS_ID_MAX + 1) <= CS_ID_MAX;
}

/* After a step the statement must be reset before it runs again; the reset's
 * return code repeats the step's, which the caller has already looked at. */
static void stmt_done(sqlite3_stmt *st)
{
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

/* fmt has one letter per parameter: t text (const char *, NULL binds NULL),
 * i int64_t, u uint32_t, d double. Text is bound SQLITE_STATIC: every caller
 * resets the statement before its strings go away. */
static int bindv(sqlite3_stmt *st, const char *fmt, va_list ap)
{
    int rc = SQLITE_OK;
    for (int i = 0; fmt[i] && rc == SQLITE_OK; i++) {
        switch (fmt[i]) {
        case 't':
            rc = sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_STATIC);
            break;
        case 'i':
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
            break;
        case 'u':
            rc = sqlite3_bind_int64(st, i + 1, (sqlite3_int64)va_arg(ap, unsigned));
            break;
        case 'd':
            rc = sqlite3_bind_double(st, i + 1, va_arg(ap, double));
            break;
        default:
            rc = SQLITE_MISUSE;
        }
    }
    return rc == SQLITE_OK ? 0 : -1;
}

/* Runs a statement that returns no rows. 0 or -1; the statement is reset. */
static int exec_stmt(sqlite3_stmt *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = bindv(st, fmt, ap);
    va_end(ap);
    if (rc == 0 && sqlite3_step(st) != SQLITE_DONE)
        rc = -1;
    stmt_done(st);
    return rc;
}

/* Binds and steps once. 1: a row is ready (caller reads it, then calls
 * stmt_done); 0: no row; -1: error. On 0 and -1 the statement is reset. */
static int query_row(sqlite3_stmt *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = bindv(st, fmt, ap);
    va_end(ap);
    if (rc == 0) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            return 1;
        rc = step == SQLITE_DONE ? 0 : -1;
    }
    stmt_done(st);
    return rc;
}

/* Copies a text column. A NULL column gives NULL (only an error when the
 * column's type is not NULL: sqlite ran out of memory). */
static int col_dup(sqlite3_stmt *st, int col, char **out)
{
    *out = NULL;
    const unsigned char *txt = sqlite3_column_text(st, col);
    if (!txt)
        return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : -1;
    *out = strdup((const char *)txt);
    return *out ? 0 : -1;
}

static int col_id(sqlite3_stmt *st, int col, char out[CS_ID_MAX + 1])
{
    const unsigned char *txt = sqlite3_column_text(st, col);
    if (!txt) {
        if (sqlite3_column_type(st, col) != SQLITE_NULL)
            return -1;
        out[0] = '\0';
        return 0;
    }
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (n > CS_ID_MAX)
        return -1;
    memcpy(out, txt, n);
    out[n] = '\0';
    return 0;
}

static uint32_t col_u32(sqlite3_stmt *st, int col)
{
    sqlite3_int64 v = sqlite3_column_int64(st, col);
    return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static qnode *qnode_new(const char *job_id, uint32_t instance, const char *body, double received_at,
                        uint32_t attempts)
{
    qnode *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->job.body = strdup(body);
    if (!q->job.body) {
        free(q);
        return NULL;
    }
    snprintf(q->job.job_id, sizeof q->job.job_id, "%s", job_id);
    q->job.instance = instance;
    q->job.received_at = received_at;
    q->job.attempts = attempts;
    return q;
}

static void qnode_free(qnode *q)
{
    if (!q)
        return;
    free(q->job.body);
    free(q);
}

/* Caller holds qmu. */
static void queue_push(sqstore *s, qnode *q)
{
    q->next = NULL;
    if (s->qtail)
        s->qtail->next = q;
    else
        s->qhead = q;
    s->qtail = q;
    s->qlen++;
}

/* Caller holds qmu. Deletes are rare, so a linear scan is fine. */
static void queue_remove(sqstore *s, const char *job_id, uint32_t instance)
{
    qnode *prev = NULL;
    for (qnode *q = s->qhead; q; prev = q, q = q->next) {
        if (q->job.instance != instance || strcmp(q->job.job_id, job_id) != 0)
            continue;
        if (prev)
            prev->next = q->next;
        else
            s->qhead = q->next;
        if (s->qtail == q)
            s->qtail = prev;
        s->qlen--;
        qnode_free(q);
        return;
    }
}

/* API entry for calls that do not go through the writer: counted so that
 * store_close can wait for them before tearing down. */
static int enter(sqstore *s)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->closing)
        rc = -1;
    else
        s->users++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void leave(sqstore *s)
{
    pthread_mutex_lock(&s->mu);
    if (--s->users == 0 && s->closing)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* --- the writer -------------------------------------------------------- */

static int64_t apply_enqueue(sqstore *s, op *o)
{
    int64_t rc = -1;
    qnode *q = qnode_new(o->id, o->instance, o->text, o->t, 0);
    if (!q)
        goto out;
    int64_t seq = s->next_seq++;
    if (exec_stmt(s->w[W_JOB_INSERT], "tutdi", o->id, o->instance, o->text, o->t, seq) != 0)
        goto out;
    if (sqlite3_changes(s->wdb) == 0) {
        rc = 1; /* already known: the unique key decides, in writer order */
        goto out;
    }
    o->append = q;
    q = NULL;
    rc = 0;
out:
    qnode_free(q);
    return rc;
}

static int64_t apply_requeue(sqstore *s, op *o)
{
    int64_t rc = -1;
    qnode *q = NULL;
    sqlite3_stmt *get = s->w[W_JOB_GET];
    int row = query_row(get, "tu", o->id, o->instance);
    if (row <= 0) {
        rc = row == 0 ? 1 : -1;
        goto out;
    }
    if (o->text) {
        const unsigned char *node = sqlite3_column_text(get, 4);
        if (sqlite3_column_int(get, 0) != JOB_PLACED || !node ||
            strcmp((const char *)node, o->text) != 0) {
            stmt_done(get);
            rc = 1;
            goto out;
        }
    }
    if (sqlite3_column_int(get, 0) == JOB_QUEUED) {
        /* Already queued or in a worker's hands: queuing it twice would
         * place it twice. */
        stmt_done(get);
        rc = 0;
        goto out;
    }
    const unsigned char *body = sqlite3_column_text(get, 1);
    bool undelivered = sqlite3_column_int(get, 5) != 0;
    if (body)
        q = qnode_new(o->id, o->instance, (const char *)body, sqlite3_column_double(get, 2),
                      col_u32(get, 3) + 1);
    stmt_done(get);
    if (!q)
        goto out;
    int64_t seq = s->next_seq++;
    if (exec_stmt(s->w[W_JOB_REQUEUE], "itu", seq, o->id, o->instance) != 0)
        goto out;
    o->outbox_delta = undelivered ? -1 : 0;
    o->append = q;
    q = NULL;
    rc = 0;
out:
    qnode_free(q);
    return rc;
}

/* The job's row id and whether it holds a result not yet delivered.
 * 1: found; 0: no such job; -1: error. */
static int job_outstate(sqstore *s, const char *id, uint32_t instance, int64_t *rowid,
                        bool *undelivered)
{
    sqlite3_stmt *st = s->w[W_JOB_OUTSTATE];
    int row = query_row(st, "tu", id, instance);
    if (row <= 0)
        return row;
    *rowid = sqlite3_column_int64(st, 0);
    *undelivered = sqlite3_column_int(st, 1) != 0;
    stmt_done(st);
    return 1;
}

static int64_t apply_finish(sqstore *s, op *o)
{
    int64_t rowid;
    bool undelivered;
    int found = job_outstate(s, o->id, o->instance, &rowid, &undelivered);
    if (found <= 0)
        return found; /* 0: deleted while a worker held it, nothing to record */
    const reservation_view *r = o->res;
    int64_t gen = s->next_seq++;
    sqlite3_stmt *st = s->w[W_JOB_FINISH];
    int rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)o->state);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, o->text, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, r ? r->node_id : "", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 4, o->t);
    if (rc == SQLITE_OK && r) { /* without a reservation res_* stay NULL */
        rc = sqlite3_bind_text(st, 5, r->node_id, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 6, r->cpu_milli);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 7, r->memory_mb);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 8, r->gpus);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_double(st, 9, r->at);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 10, gen);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 11, o->t);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 12, o->t);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 13, rowid);
    if (rc == SQLITE_OK && sqlite3_step(st) != SQLITE_DONE)
        rc = SQLITE_ERROR;
    stmt_done(st);
    if (rc != SQLITE_OK)
        return -1;
    o->outbox_delta = undelivered ? 0 : 1;
    return outbox_id_make(rowid, gen);
}

static int64_t apply_job_delete(sqstore *s, op *o)
{
    int64_t rowid;
    bool undelivered;
    int found = job_outstate(s, o->id, o->instance, &rowid, &undelivered);
    if (found < 0)
        return -1;
    if (found == 0)
        return 1;
    if (exec_stmt(s->w[W_JOB_DELETE], "i", rowid) != 0)
        return -1;
    o->outbox_delta = undelivered ? -1 : 0;
    o->unqueue = true;
    return 0;
}

static int64_t apply_node_delete(sqstore *s, op *o)
{
    if (exec_stmt(s->w[W_NODE_DELETE], "t", o->id) != 0)
        return -1;
    bool existed = sqlite3_changes(s->wdb) > 0;
    if (exec_stmt(s->w[W_RES_DELETE_NODE], "t", o->id) != 0)
        return -1;
    return existed ? 0 : 1;
}

static int64_t apply_one(sqstore *s, op *o)
{
    switch (o->kind) {
    case OP_ENQUEUE:
        return apply_enqueue(s, o);
    case OP_REQUEUE:
        return apply_requeue(s, o);
    case OP_FINISH:
        return apply_finish(s, o);
    case OP_JOB_DELETE:
        return apply_job_delete(s, o);
    case OP_NODE_PUT:
        return exec_stmt(s->w[W_NODE_PUT], "ttd", o->id, o->text, o->t) == 0 ? 0 : -1;
    case OP_NODE_DELETE:
        return apply_node_delete(s, o);
    case OP_OUTBOX_DONE:
        if (exec_stmt(s->w[W_OUTBOX_DELETE], "iii", o->outbox_id >> OUT_GEN_BITS, OUT_GEN_MASK,
                      o->outbox_id & OUT_GEN_MASK) != 0)
            return -1;
        if (sqlite3_changes(s->wdb) == 0)
            return 1;
        o->outbox_delta = -1;
        return 0;
    case OP_OUTBOX_RETRY:
        if (exec_stmt(s->w[W_OUTBOX_RETRY], "udiii", o->attempts, o->t,
                      o->outbox_id >> OUT_GEN_BITS, OUT_GEN_MASK, o->outbox_id & OUT_GEN_MASK) != 0)
            return -1;
        return sqlite3_changes(s->wdb) == 0 ? 1 : 0;
    }
    return -1;
}

/* Runs one op inside the batch's transaction. Ops of several statements run
 * in a savepoint so that one failing op leaves the others of its batch
 * intact instead of half-applied. */
static int64_t apply(sqstore *s, op *o)
{
    bool multi = o->kind == OP_NODE_DELETE; /* the others write one statement */
    if (multi && exec_stmt(s->w[W_SP], "") != 0)
        return -1;
    int64_t rc = apply_one(s, o);
    if (rc < 0) {
        qnode_free(o->append);
        o->append = NULL;
        o->unqueue = false;
        o->outbox_delta = 0;
    }
    if (multi) {
        if (rc < 0 && exec_stmt(s->w[W_SP_ROLLBACK], "") != 0)
            s->doomed = true;
        if (exec_stmt(s->w[W_SP_RELEASE], "") != 0)
            s->doomed = true;
    }
    return rc;
}

/* Publishes a committed batch to memory: queue changes in batch order, so a
 * delete followed by a new enqueue of the same instance ends up queued. */
static void publish(sqstore *s, op *batch)
{
    size_t pushed = 0;
    int64_t delta = 0;
    pthread_mutex_lock(&s->qmu);
    for (op *o = batch; o; o = o->next) {
        if (o->unqueue)
            queue_remove(s, o->id, o->instance);
        if (o->append) {
            queue_push(s, o->append);
            o->append = NULL;
            pushed++;
        }
        delta += o->outbox_delta;
    }
    /* One job wakes one worker: waking them all for it would only have the
     * others preempt the committer (often the HTTP thread still owing its
     * answer) and go back to sleep. */
    if (pushed == 1)
        pthread_cond_signal(&s->qcond);
    else if (pushed > 1)
        pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qmu);
    if (delta > 0)
        atomic_fetch_add(&s->outbox_n, (size_t)delta);
    else if (delta < 0)
        atomic_fetch_sub(&s->outbox_n, (size_t)-delta);
}

static void run_batch(sqstore *s, op *batch)
{
    bool ok = exec_stmt(s->w[W_BEGIN], "") == 0;
    s->doomed = false;
    for (op *o = batch; ok && o; o = o->next) {
        o->rc = apply(s, o);
        /* An I/O or memory error can roll the whole transaction back behind
         * our back; then nothing in this batch is durable. */
        if (s->doomed || (o->rc < 0 && sqlite3_get_autocommit(s->wdb)))
            ok = false;
    }
    if (ok && exec_stmt(s->w[W_COMMIT], "") == 0) {
        publish(s, batch);
        return;
    }
    if (!sqlite3_get_autocommit(s->wdb))
        (void)exec_stmt(s->w[W_ROLLBACK], ""); /* nothing more to do if even this fails */
    for (op *o = batch; o; o = o->next) {
        o->rc = -1;
        qnode_free(o->append);
        o->append = NULL;
    }
}

/* Takes the next batch off the queue and commits it. Called with mu held
 * and no commit running; returns with mu held. Whoever calls it is the
 * committer for that batch: the writer thread under load, or a caller that
 * found nobody committing, which then needs no wake-up of another thread
 * before and after its commit (two fewer hand-offs on an idle service). */
static void commit_next(sqstore *s)
{
    s->writing = true;
    op *batch = s->head, *last = s->head;
    for (int n = 1; last->next && n < BATCH_MAX; n++)
        last = last->next;
    s->head = last->next;
    if (!s->head)
        s->tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&s->mu);

    run_batch(s, batch);

    /* Asynchronous writes are answered first and outside mu: each answer
     * resumes an HTTP connection, and the event thread sends it while the
     * waiting callers below are woken. */
    op **link = &batch;
    while (*link) {
        op *o = *link;
        if (!o->done_fn) {
            link = &o->next;
            continue;
        }
        *link = o->next;
        o->done_fn(o->done_ud, (int)o->rc);
        free(o);
    }

    pthread_mutex_lock(&s->mu);
    for (op *o = batch, *next; o; o = next) {
        next = o->next; /* o belongs to its caller once done is seen */
        o->done = true;
        pthread_cond_signal(&o->cond);
    }
    s->writing = false;
    s->last_commit = store_mono();
    /* Ops queued meanwhile belong to nobody committing now; closing must
     * also reach a writer that waited for this commit to end. */
    if (s->head || s->closing)
        pthread_cond_signal(&s->work);
}

static void *writer_main(void *arg)
{
    sqstore *s = arg;
    pthread_setname_np(pthread_self(), "store-writer");
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->head && !s->writing)
            commit_next(s);
        else if (!s->head && s->closing)
            break;
        else
            pthread_cond_wait(&s->work, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Hands n ops to the writer in one go (so they share a transaction when
 * they fit in one batch) and sleeps until every one committed or failed.
 * When no commit is running, the caller commits the queue itself. */
static void submit_many(sqstore *s, op *ops, size_t n)
{
    size_t inited = 0;
    for (; inited < n; inited++) {
        op *o = &ops[inited];
        o->rc = -1;
        o->done = false;
        o->append = NULL;
        o->unqueue = false;
        o->outbox_delta = 0;
        o->next = inited + 1 < n ? &ops[inited + 1] : NULL;
        if (pthread_cond_init(&o->cond, NULL) != 0)
            break;
    }
    pthread_mutex_lock(&s->mu);
    if (s->closing || inited < n) {
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < inited; i++)
            pthread_cond_destroy(&ops[i].cond);
        for (size_t i = 0; i < n; i++)
            ops[i].rc = -1;
        return;
    }
    s->users++;
    if (s->tail)
        s->tail->next = &ops[0];
    else
        s->head = &ops[0];
    s->tail = &ops[n - 1];
    /* The committer finishes ops in queue order: the last one done means
     * all are, and waiting on it alone costs one wake-up, not n.
     * A caller about to commit right after another commit (the service is
     * busy) first lets the threads that are runnable go: those about to
     * submit join this commit instead of each paying for one of their own
     * (WAL frames for the same pages again). Whoever commits next takes
     * the whole queue. On an idle service there is no wait at all. */
    bool yielded = false;
    while (!ops[n - 1].done) {
        if (s->head && !s->writing) {
            if (!yielded && store_mono() - s->last_commit < YIELD_WINDOW) {
                yielded = true;
                pthread_mutex_unlock(&s->mu);
                sched_yield();
                pthread_mutex_lock(&s->mu);
                continue;
            }
            commit_next(s);
        } else {
            pthread_cond_wait(&ops[n - 1].cond, &s->mu);
        }
    }
    if (--s->users == 0 && s->closing)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++)
        pthread_cond_destroy(&ops[i].cond);
}

/* One op: its result. */
static int64_t submit(sqstore *s, op *o)
{
    submit_many(s, o, 1);
    return o->rc;
}

/* --- open and close ---------------------------------------------------- */

static int mkdir_p(const char *dir)
{
    char buf[PATH_CAP];
    int n = snprintf(buf, sizeof buf, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(buf, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int sync_init(sqstore *s)
{
    pthread_condattr_t ca;
    bool ca_ok = false, mu = false, work = false, idle = false, qmu = false, qcond = false;
    if (pthread_condattr_init(&ca) != 0)
        goto fail;
    ca_ok = true;
    /* store_take's timeout must not jump with the wall clock. */
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0)
        goto fail;
    if (!(mu = pthread_mutex_init(&s->mu, NULL) == 0))
        goto fail;
    if (!(work = pthread_cond_init(&s->work, NULL) == 0))
        goto fail;
    if (!(idle = pthread_cond_init(&s->idle, NULL) == 0))
        goto fail;
    if (!(qmu = pthread_mutex_init(&s->qmu, NULL) == 0))
        goto fail;
    if (!(qcond = pthread_cond_init(&s->qcond, &ca) == 0))
        goto fail;
    if (pthread_mutex_init(&s->rmu, NULL) != 0)
        goto fail;
    pthread_condattr_destroy(&ca);
    s->sync_ready = true;
    return 0;
fail:
    if (qcond)
        pthread_cond_destroy(&s->qcond);
    if (qmu)
        pthread_mutex_destroy(&s->qmu);
    if (idle)
        pthread_cond_destroy(&s->idle);
    if (work)
        pthread_cond_destroy(&s->work);
    if (mu)
        pthread_mutex_destroy(&s->mu);
    if (ca_ok)
        pthread_condattr_destroy(&ca);
    return -1;
}

/* The checkpoint thread copies the WAL into the database in steps of
 * CKPT_PAGES new frames (about 4 MB): a page written many times within a
 * step is copied once, and each step pays one database fsync. Waking it at
 * every commit made it copy a few frames at a time, hot pages again and
 * again, an fsync each (13% of the service's CPU per job at full speed);
 * steps of 4,000 frames cost no less CPU than 1,000 but their fsyncs held
 * up commits for longer (p99 at 2,000 jobs/s 6.2 against 4.8 ms).
 * The WAL starts over only after a checkpoint that copied every frame, which
 * under steady load only the writer can do (nothing is appended while it
 * copies): past CKPT_RESTART pages the thread keeps copying until the writer
 * finds at most CKPT_TAIL frames left and finishes, a stall of a few ms.
 * Should writes outrun the thread, past CKPT_FORCE the thread stands aside
 * and the writer copies everything left, waiting for a pass in progress:
 * the WAL's bound, at the price of one long stall. A reader of an older
 * snapshot can keep frames from being copied; the writer waits for it
 * CKPT_FORCE_WAIT_MS, then lets the thread go on and tries again
 * CKPT_PAGES later. */
#define CKPT_PAGES 1000
#define CKPT_RESTART (4 * CKPT_PAGES)
#define CKPT_TAIL (CKPT_PAGES / 4)
#define CKPT_FORCE (8 * CKPT_PAGES)
#define CKPT_FORCE_WAIT_MS 50

static int db_open(const sqstore *s, sqlite3 **db, cs_error *err);

/* Under cmu: whether the checkpoint thread has a step to do. */
static bool ckpt_due(sqstore *s)
{
    if (s->wal_pages >= s->force_at)
        return false;
    int left = s->wal_pages - s->wal_copied;
    return left >= CKPT_PAGES || (s->wal_pages >= CKPT_RESTART && left > CKPT_TAIL);
}

static int wal_hook(void *ud, sqlite3 *db, const char *name, int pages)
{
    sqstore *s = ud;
    int mode = -1;
    pthread_mutex_lock(&s->cmu);
    if (pages < s->wal_pages) { /* the WAL started over */
        s->wal_copied = 0;
        s->force_at = CKPT_FORCE;
    }
    s->wal_pages = pages;
    if (pages >= s->force_at) {
        /* A checkpoint in progress elsewhere makes ours fail at once; the
         * thread starts no new pass past force_at. */
        while (s->ckpt_running)
            pthread_cond_wait(&s->cdone, &s->cmu);
        mode = SQLITE_CHECKPOINT_FULL;
    } else if (ckpt_due(s)) {
        pthread_cond_signal(&s->ccond);
    } else if (pages >= CKPT_RESTART) {
        mode = SQLITE_CHECKPOINT_PASSIVE; /* busy while the thread copies: next commit */
    }
    pthread_mutex_unlock(&s->cmu);
    if (mode == SQLITE_CHECKPOINT_FULL) {
        /* FULL waits for readers of older snapshots; not for long, or every
         * commit would wait that long while one reads. If one holds on, the
         * thread copies what it can and the writer tries again CKPT_PAGES
         * later. */
        (void)sqlite3_busy_timeout(db, CKPT_FORCE_WAIT_MS);
        int rc = sqlite3_wal_checkpoint_v2(db, name, mode, NULL, NULL);
        (void)sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
        if (rc != SQLITE_OK) {
            pthread_mutex_lock(&s->cmu);
            s->force_at = pages + CKPT_PAGES;
            pthread_mutex_unlock(&s->cmu);
        }
    } else if (mode == SQLITE_CHECKPOINT_PASSIVE) {
        (void)sqlite3_wal_checkpoint_v2(db, name, mode, NULL, NULL);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    sqstore *s = arg;
    pthread_setname_np(pthread_self(), "store-ckpt");
    /* A step is a few ms of CPU every few hundred ms, and nothing waits for
     * it: at the normal priority a thread woken meanwhile on its core (the
     * event thread, the writer) queued behind it, and every step showed as
     * a burst of late answers (p99 at 2,000 jobs/s about a quarter higher).
     * SCHED_IDLE lets any other thread take the core at once; when the
     * cores stay busy and the thread falls behind, the writer's forced
     * checkpoint bounds the WAL as before. Lowering a thread's own policy
     * needs no privilege; should it fail, the thread runs as before. */
    struct sched_param idle = {.sched_priority = 0};
    (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
    pthread_mutex_lock(&s->cmu);
    while (!s->ckpt_stop) {
        if (!ckpt_due(s)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&s->ccond, &s->cmu, &ts);
            continue;
        }
        int before = s->wal_copied;
        s->ckpt_running = true;
        pthread_mutex_unlock(&s->cmu);
        /* PASSIVE: copies what no reader needs, never blocks the writer. */
        int copied = 0;
        int rc = sqlite3_wal_checkpoint_v2(s->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, &copied);
        pthread_mutex_lock(&s->cmu);
        /* A pass that got nothing done (busy, or a reader holding old
         * frames) counts as done up to here, so the thread waits for new
         * frames instead of spinning. */
        s->wal_copied = (rc == SQLITE_OK && copied > before) ? copied : s->wal_pages;
        if (s->wal_copied > s->wal_pages) /* the WAL started over meanwhile */
            s->wal_copied = s->wal_pages;
        s->ckpt_running = false;
        pthread_cond_broadcast(&s->cdone);
    }
    pthread_mutex_unlock(&s->cmu);
    return NULL;
}

static void ckpt_stop(sqstore *s)
{
    if (!s->ckpt_started)
        return;
    pthread_mutex_lock(&s->cmu);
    s->ckpt_stop = true;
    pthread_cond_signal(&s->ccond);
    pthread_mutex_unlock(&s->cmu);
    pthread_join(s->ckpt, NULL);
    s->ckpt_started = false;
}

static int ckpt_start(sqstore *s, cs_error *err)
{
    /* A connection checkpoints only once it has opened the WAL: read the
     * schema first, or the checkpoint is a silent no-op. */
    if (db_open(s, &s->cdb, err) != 0 ||
        sqlite3_exec(s->cdb, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK)
        return cs_fail(err, "data_dir", "checkpoint connection: %s",
                       s->cdb ? sqlite3_errmsg(s->cdb) : "cannot open");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->ccond, &ca);
    pthread_cond_init(&s->cdone, NULL);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->cmu, NULL);
    s->ckpt_sync_ready = true;
    s->force_at = CKPT_FORCE;
    sqlite3_wal_autocheckpoint(s->wdb, 0);
    sqlite3_wal_hook(s->wdb, wal_hook, s);
    if (pthread_create(&s->ckpt, NULL, ckpt_main, s) != 0)
        return cs_fail(err, "data_dir", "cannot start the checkpoint thread");
    s->ckpt_started = true;
    return 0;
}

/* Frees whatever open got as far as creating; the writer is already gone. */
static void teardown(sqstore *s)
{
    ckpt_stop(s);
    (void)sqlite3_close(s->cdb);
    if (s->ckpt_sync_ready) {
        pthread_cond_destroy(&s->ccond);
        pthread_cond_destroy(&s->cdone);
        pthread_mutex_destroy(&s->cmu);
    }
    for (int i = 0; i < W_COUNT; i++)
        (void)sqlite3_finalize(s->w[i]); /* repeats the last step's code, already handled */
    for (int i = 0; i < R_COUNT; i++)
        (void)sqlite3_finalize(s->r[i]);
    /* With every statement finalized, close can only fail on a misuse; there
     * is nobody left to tell. */
    (void)sqlite3_close(s->rdb);
    (void)sqlite3_close(s->wdb);
    walvfs_free(s->vfs);
    for (qnode *q = s->qhead, *next; q; q = next) {
        next = q->next;
        qnode_free(q);
    }
    if (s->sync_ready) {
        pthread_mutex_destroy(&s->rmu);
        pthread_cond_destroy(&s->qcond);
        pthread_mutex_destroy(&s->qmu);
        pthread_cond_destroy(&s->idle);
        pthread_cond_destroy(&s->work);
        pthread_mutex_destroy(&s->mu);
    }
    free(s);
}

/* "unix-excl": the process takes the file's lock once and keeps the WAL
 * index in its own memory, so a transaction costs no fcntl() lock calls
 * and no shared-memory file (four to eight system calls a commit). Our
 * connections still share the file; another process cannot open it while
 * the service runs, which the service never wanted anyway (its queue is in
 * this process's memory). */
static int db_open(const sqstore *s, sqlite3 **db, cs_error *err)
{
    int rc = sqlite3_open_v2(s->path, db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             walvfs_name(s->vfs));
    if (rc != SQLITE_OK)
        return cs_fail(err, "data_dir", "cannot open %s: %s", s->path,
                       *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
    if (sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
        sqlite3_extended_result_codes(*db, 1) != SQLITE_OK)
        return cs_fail(err, "data_dir", "%s: %s", s->path, sqlite3_errmsg(*db));
    return 0;
}

static int prepare_all(sqlite3 *db, const char *const *sql, sqlite3_stmt **st, int n, cs_error *err)
{
    for (int i = 0; i < n; i++) {
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL) !=
            SQLITE_OK)
            return cs_fail(err, "data_dir", "preparing a statement: %s", sqlite3_errmsg(db));
    }
    return 0;
}

/* Sets WAL and creates the schema, refusing a database from a newer build. */
static int db_setup(sqlite3 *db, cs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        if ((sqlite3_errcode(db) & 0xff) == SQLITE_BUSY)
            cs_fail(err, "data_dir", "in use by another process (%s)", sqlite3_errmsg(db));
        else
            cs_fail(err, "data_dir", "setting WAL mode: %s", sqlite3_errmsg(db));
        goto out;
    }
    const unsigned char *mode = sqlite3_column_text(st, 0);
    if (!mode || strcmp((const char *)mode, "wal") != 0) {
        cs_fail(err, "data_dir", "WAL mode unavailable (journal mode %s)",
                mode ? (const char *)mode : "?");
        goto out;
    }
    (void)sqlite3_finalize(st);
    st = NULL;
    /* 16 MB of page cache (default 2 MB): the queue's hot pages stay put. */
    if (sqlite3_exec(db, "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384", NULL, NULL, NULL) !=
        SQLITE_OK) {
        cs_fail(err, "data_dir", "setting synchronous: %s", sqlite3_errmsg(db));
        goto out;
    }
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        cs_fail(err, "data_dir", "reading the schema version: %s", sqlite3_errmsg(db));
        goto out;
    }
    int version = sqlite3_column_int(st, 0);
    if (version > SCHEMA_VERSION) {
        cs_fail(err, "data_dir", "database schema version %d is newer than this build's %d",
                version, SCHEMA_VERSION);
        goto out;
    }
    /* A statement still open would keep DROP TABLE from running. */
    (void)sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        (version == 1 && sqlite3_exec(db, MIGRATE_1_2, NULL, NULL, NULL) != SQLITE_OK) ||
        sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA user_version=2", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        cs_fail(err, "data_dir", "creating the schema: %s", sqlite3_errmsg(db));
        if (!sqlite3_get_autocommit(db))
            (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    rc = 0;
out:
    (void)sqlite3_finalize(st);
    return rc;
}

/* Rebuilds the in-memory queue from the queued rows, in arrival order, and
 * the counters the writer keeps. Runs before the writer starts. */
static int load_state(sqstore *s, cs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, step;
    if (sqlite3_prepare_v2(s->wdb, "SELECT coalesce(max(seq), 0) FROM jobs", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        goto out;
    s->next_seq = sqlite3_column_int64(st, 0) + 1;
    (void)sqlite3_finalize(st); /* a one-row aggregate: the step said all */
    st = NULL;
    if (sqlite3_prepare_v2(s->wdb, "SELECT count(*) FROM jobs WHERE out_next IS NOT NULL", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        goto out;
    atomic_store(&s->outbox_n, (size_t)sqlite3_column_int64(st, 0));
    (void)sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(s->wdb,
                           "SELECT job_id, instance, body, received_at, attempts FROM jobs"
                           " WHERE state = 0 ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        char id[CS_ID_MAX + 1];
        const unsigned char *body = sqlite3_column_text(st, 2);
        if (col_id(st, 0, id) != 0 || !id[0] || !body)
            goto out;
        qnode *q = qnode_new(id, col_u32(st, 1), (const char *)body, sqlite3_column_double(st, 3),
                             col_u32(st, 4));
        if (!q)
            goto out;
        queue_push(s, q);
    }
    if (step == SQLITE_DONE)
        rc = 0;
out:
    if (rc != 0)
        cs_fail(err, "data_dir", "loading the queue: %s", sqlite3_errmsg(s->wdb));
    (void)sqlite3_finalize(st);
    return rc;
}

static const store_ops SQLITE_OPS;

store *store_sqlite_open(const char *dir, cs_error *err)
{
    sqstore *s = NULL;
    if (!dir || !*dir) {
        cs_fail(err, "data_dir", "is empty");
        goto fail;
    }
    if (sqlite3_threadsafe() == 0) {
        cs_fail(err, "data_dir", "libsqlite3 was built without thread support");
        goto fail;
    }
    if (mkdir_p(dir) != 0) {
        cs_fail(err, "data_dir", "cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        cs_fail(err, "data_dir", "out of memory");
        goto fail;
    }
    s->base.ops = &SQLITE_OPS;
    int n = snprintf(s->path, sizeof s->path, "%s/scheduler.db", dir);
    if (n < 0 || (size_t)n >= sizeof s->path) {
        cs_fail(err, "data_dir", "path too long");
        goto fail;
    }
    if (sync_init(s) != 0) {
        cs_fail(err, "data_dir", "cannot create locks");
        goto fail;
    }
    if (!(s->vfs = walvfs_new("unix-excl", err)))
        goto fail;
    if (db_open(s, &s->wdb, err) != 0 || db_setup(s->wdb, err) != 0 ||
        prepare_all(s->wdb, W_SQL, s->w, W_COUNT, err) != 0)
        goto fail;
    if (db_open(s, &s->rdb, err) != 0 ||
        sqlite3_exec(s->rdb, "PRAGMA query_only=1", NULL, NULL, NULL) != SQLITE_OK ||
        prepare_all(s->rdb, R_SQL, s->r, R_COUNT, err) != 0) {
        if (s->rdb)
            cs_fail(err, "data_dir", "read connection: %s", sqlite3_errmsg(s->rdb));
        goto fail;
    }
    if (load_state(s, err) != 0 || ckpt_start(s, err) != 0)
        goto fail;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        cs_fail(err, "data_dir", "cannot start the writer thread");
        goto fail;
    }
    s->writer_started = true;
    return &s->base;
fail:
    if (s)
        teardown(s);
    return NULL;
}

static void sq_close(store *base)
{
    sqstore *s = (sqstore *)base;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);

    pthread_mutex_lock(&s->qmu);
    s->qclosed = true;
    pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qmu);

    /* The writer drains every op queued before `closing` was set. */
    if (s->writer_started)
        pthread_join(s->writer, NULL);

    pthread_mutex_lock(&s->mu);
    while (s->users > 0)
        pthread_cond_wait(&s->idle, &s->mu);
    pthread_mutex_unlock(&s->mu);
    teardown(s);
}

/* --- intake ------------------------------------------------------------ */

static int sq_enqueue(store *base, const char *job_id, uint32_t instance, const char *body,
                      double now)
{
    sqstore *s = (sqstore *)base;
    if (!s || !id_ok(job_id) || !body || !isfinite(now))
        return -1;
    op o = {.kind = OP_ENQUEUE, .id = job_id, .instance = instance, .text = body, .t = now};
    return (int)submit(s, &o);
}

/* Queued for the writer thread, which a caller that must not block leaves
 * to commit; it is woken by sq_flush_async, once for a round of intakes.
 * While it commits, the HTTP event thread reads the next round. */
static int sq_enqueue_async(store *base, const char *job_id, uint32_t instance, const char *body,
                            double now, store_done_fn done, void *ud)
{
    sqstore *s = (sqstore *)base;
    if (!s || !id_ok(job_id) || !body || !isfinite(now))
        return -1;
    op *o = calloc(1, sizeof *o);
    if (!o)
        return -1;
    *o = (op){.kind = OP_ENQUEUE,
              .id = job_id,
              .instance = instance,
              .text = body,
              .t = now,
              .rc = -1,
              .done_fn = done,
              .done_ud = ud};
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        free(o);
        return -1;
    }
    if (s->tail)
        s->tail->next = o;
    else
        s->head = o;
    s->tail = o;
    s->unflushed = true;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void sq_flush_async(store *base)
{
    sqstore *s = (sqstore *)base;
    pthread_mutex_lock(&s->mu);
    if (s->unflushed && s->head && !s->writing)
        pthread_cond_signal(&s->work);
    s->unflushed = false;
    pthread_mutex_unlock(&s->mu);
}

static int sq_enqueue_many(store *base, const char *job_id, uint32_t n, const char *body,
                           double now, int *rcs)
{
    sqstore *s = (sqstore *)base;
    if (!s || !id_ok(job_id) || !body || !isfinite(now) || n == 0 || !rcs)
        return -1;
    op *ops = calloc(n, sizeof *ops);
    if (!ops)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        ops[i] = (op){.kind = OP_ENQUEUE, .id = job_id, .instance = i, .text = body, .t = now};
    submit_many(s, ops, n);
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        rcs[i] = (int)ops[i].rc;
        if (rcs[i] < 0)
            rc = -1;
    }
    free(ops);
    return rc;
}

static int sq_requeue(store *base, const char *job_id, uint32_t instance, const char *on_node,
                      double now)
{
    sqstore *s = (sqstore *)base;
    if (!s || !id_ok(job_id) || !isfinite(now) || (on_node && !id_ok(on_node)))
        return -1;
    op o = {.kind = OP_REQUEUE, .id = job_id, .instance = instance, .text = on_node, .t = now};
    return (int)submit(s, &o);
}

static int sq_take(store *base, store_job *out, int timeout_ms)
{
    sqstore *s = (sqstore *)base;
    if (!s || !out)
        return -1;
    if (enter(s) != 0)
        return -1;
    struct timespec deadline;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    int rc = 1;
    pthread_mutex_lock(&s->qmu);
    for (;;) {
        if (s->qclosed) {
            rc = -1;
            break;
        }
        if (s->qhead) {
            qnode *q = s->qhead;
            s->qhead = q->next;
            if (!s->qhead)
                s->qtail = NULL;
            s->qlen--;
            *out = q->job;
            free(q);
            rc = 0;
            break;
        }
        if (timeout_ms == 0)
            break;
        if (timeout_ms < 0)
            pthread_cond_wait(&s->qcond, &s->qmu);
        else if (pthread_cond_timedwait(&s->qcond, &s->qmu, &deadline) == ETIMEDOUT)
            timeout_ms = 0; /* one last look, then report the timeout */
    }
    pthread_mutex_unlock(&s->qmu);
    leave(s);
    return rc;
}

static size_t sq_queue_depth(store *base)
{
    sqstore *s = (sqstore *)base;
    if (!s || enter(s) != 0)
        return 0;
    pthread_mutex_lock(&s->qmu);
    size_t n = s->qlen;
    pthread_mutex_unlock(&s->qmu);
    leave(s);
    return n;
}

/* --- outcomes ---------------------------------------------------------- */

static int64_t sq_finish(store *base, const char *job_id, uint32_t instance, job_state state,
                         const reservation_view *res, const char *result, double now)
{
    sqstore *s = (sqstore *)base;
    if (!s || !id_ok(job_id) || !result || !isfinite(now))
        return -1;
    if (state != JOB_PLACED && state != JOB_UNSCHEDULABLE)
        return -1;
    if (res && (!id_ok(res->node_id) || !isfinite(res->at)))
        return -1;
    op o = {.kind = OP_FINISH,
            .id = job_id,
            .instance = instance,
            .state = state,
            .res = res,
            .text = result,
            .t = now};
    return submit(s, &o);
}

static int sq_finish_many(store *base, store_finish_req *reqs, size_t n)
{
    sqstore *s = (sqstore *)base;
    if (!s || n == 0)
        return n == 0 ? 0 : -1;
    op *ops = calloc(n, sizeof *ops);
    size_t *which = calloc(n, sizeof *which); /* request behind each op */
    if (!ops || !which) {
        free(ops);
        free(which);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const store_finish_req *r = &reqs[i];
        reqs[i].rc = -1;
        bool ok = id_ok(r->job_id) && r->result && isfinite(r->now) &&
                  (r->state == JOB_PLACED || r->state == JOB_UNSCHEDULABLE) &&
                  (!r->res || (id_ok(r->res->node_id) && isfinite(r->res->at)));
        if (!ok)
            continue;
        which[k] = i;
        ops[k++] = (op){.kind = OP_FINISH,
                        .id = r->job_id,
                        .instance = r->instance,
                        .state = r->state,
                        .res = r->res,
                        .text = r->result,
                        .t = r->now};
    }
    if (k)
        submit_many(s, ops, k);
    for (size_t i = 0; i < k; i++)
        reqs[which[i]].rc = ops[i].rc;
    free(ops);
    free(which);
    return 0;
}

static int sq_status_get(store *base, const char *job_id, uint32_t instance, store_status *out)
{
    sqstore *s = (sqstore *)base;
    if (!s || !id_ok(job_id) || !out)
        return -1;
    memset(out, 0, sizeof *out);
    if (enter(s) != 0)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&s->rmu);
    sqlite3_stmt *st = s->r[R_STATUS];
    int row = query_row(st, "tu", job_id, instance);
    if (row <= 0) {
        rc = row == 0 ? 1 : -1;
        goto out;
    }
    int state = sqlite3_column_int(st, 0);
    out->state = state == JOB_PLACED          ? JOB_PLACED
                 : state == JOB_UNSCHEDULABLE ? JOB_UNSCHEDULABLE
                                              : JOB_QUEUED;
    if (col_id(st, 1, out->node_id) != 0 || col_dup(st, 2, &out->body) != 0 ||
        col_dup(st, 3, &out->result) != 0) {
        stmt_done(st);
        store_status_clear(out);
        goto out;
    }
    out->received_at = sqlite3_column_double(st, 4);
    out->decided_at = sqlite3_column_double(st, 5);
    stmt_done(st);
    rc = 0;
out:
    pthread_mutex_unlock(&s->rmu);
    leave(s);
    return rc;
}

static int sq_job_delete(store *base, const char *job_id, uint32_t instance)
{
    sqstore *s = (sqstore *)base;
    if (!s || !id_ok(job_id))
        return -1;
    op o = {.kind = OP_JOB_DELETE, .id = job_id, .instance = instance};
    return (int)submit(s, &o);
}

/* --- nodes ------------------------------------------------------------- */

static int sq_node_put(store *base, const char *node_id, const char *doc, double last_report,
                       const store_node_caps *caps)
{
    sqstore *s = (sqstore *)base;
    (void)caps; /* the cluster table in memory is the authority here */
    if (!s || !id_ok(node_id) || !doc || !isfinite(last_report))
        return -1;
    op o = {.kind = OP_NODE_PUT, .id = node_id, .text = doc, .t = last_report};
    return (int)submit(s, &o);
}

static int sq_node_delete(store *base, const char *node_id, size_t *requeued)
{
    sqstore *s = (sqstore *)base;
    if (requeued)
        *requeued = 0;
    if (!s || !id_ok(node_id))
        return -1;
    op o = {.kind = OP_NODE_DELETE, .id = node_id};
    return (int)submit(s, &o);
}

/* Runs on a connection of its own inside one read transaction: the nodes and
 * reservations come from the same snapshot, and the callbacks may call any
 * store function without meeting a lock this holds. */
static int sq_load(store *base, const store_loader *l)
{
    sqstore *s = (sqstore *)base;
    if (!s || !l)
        return -1;
    if (enter(s) != 0)
        return -1;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    bool in_txn = false;
    int rc = -1, step;
    if (db_open(s, &db, NULL) != 0 ||
        sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    in_txn = true;
    if (sqlite3_prepare_v2(db, "SELECT id, doc, last_report FROM nodes ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK)
        goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        char id[CS_ID_MAX + 1];
        const unsigned char *doc = sqlite3_column_text(st, 1);
        if (col_id(st, 0, id) != 0 || !doc)
            goto out;
        if (l->node) {
            int cb = l->node(l->ud, id, (const char *)doc, sqlite3_column_double(st, 2));
            if (cb != 0) {
                rc = cb;
                goto out;
            }
        }
    }
    if (step != SQLITE_DONE)
        goto out;
    (void)sqlite3_finalize(st); /* stepped to DONE: nothing left to report */
    st = NULL;
    if (sqlite3_prepare_v2(
            db,
            "SELECT job_id, instance, res_node, res_cpu, res_mem, res_gpus, res_at"
            " FROM jobs WHERE res_node IS NOT NULL ORDER BY res_at, job_id, instance",
            -1, &st, NULL) != SQLITE_OK)
        goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        reservation_view r = {0};
        if (col_id(st, 0, r.job_id) != 0 || col_id(st, 2, r.node_id) != 0)
            goto out;
        r.instance = col_u32(st, 1);
        r.cpu_milli = sqlite3_column_int64(st, 3);
        r.memory_mb = sqlite3_column_int64(st, 4);
        r.gpus = (int32_t)sqlite3_column_int(st, 5);
        r.at = sqlite3_column_double(st, 6);
        if (l->reservation) {
            int cb = l->reservation(l->ud, &r);
            if (cb != 0) {
                rc = cb;
                goto out;
            }
        }
    }
    if (step != SQLITE_DONE)
        goto out;
    rc = 0;
out:
    (void)sqlite3_finalize(st);
    if (in_txn)
        (void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL); /* read-only: ends the snapshot */
    (void)sqlite3_close(db);
    leave(s);
    return rc;
}

/* --- outbox ------------------------------------------------------------ */

static int sq_outbox_due(store *base, double now, outbox_item *out, int max)
{
    sqstore *s = (sqstore *)base;
    if (!s || !out || max < 0 || isnan(now))
        return -1;
    if (max == 0)
        return 0;
    if (enter(s) != 0)
        return -1;
    int n = 0, step = SQLITE_DONE;
    bool failed = false;
    pthread_mutex_lock(&s->rmu);
    sqlite3_stmt *st = s->r[R_DUE];
    if (sqlite3_bind_double(st, 1, now) != SQLITE_OK || sqlite3_bind_int(st, 2, max) != SQLITE_OK) {
        failed = true;
        goto out;
    }
    while (n < max && (step = sqlite3_step(st)) == SQLITE_ROW) {
        outbox_item *o = &out[n];
        memset(o, 0, sizeof *o);
        o->id = outbox_id_make(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1));
        if (col_id(st, 2, o->job_id) != 0 || col_dup(st, 4, &o->payload) != 0 || !o->payload) {
            outbox_item_clear(o);
            failed = true;
            goto out;
        }
        if (!*o->payload) {
            outbox_item_clear(o); /* no result to send: cannot happen, rows go with their job */
            continue;
        }
        o->instance = col_u32(st, 3);
        o->attempts = col_u32(st, 5);
        o->created_at = sqlite3_column_double(st, 6);
        o->next_at = sqlite3_column_double(st, 7);
        n++;
    }
    if (n < max && step != SQLITE_DONE)
        failed = true;
out:
    stmt_done(st);
    pthread_mutex_unlock(&s->rmu);
    leave(s);
    if (failed) {
        for (int i = 0; i < n; i++)
            outbox_item_clear(&out[i]);
        return -1;
    }
    return n;
}

/* Under rmu: is id still the instance's undelivered result? 1 yes, 0 no,
 * -1 error. */
static int outbox_current(sqstore *s, const outbox_item *it)
{
    sqlite3_stmt *st = s->r[R_OUTCUR];
    int row = query_row(st, "i", it->id >> OUT_GEN_BITS);
    if (row <= 0)
        return row;
    char job_id[CS_ID_MAX + 1];
    int rc = -1;
    if (col_id(st, 1, job_id) == 0)
        rc = (sqlite3_column_int64(st, 0) & OUT_GEN_MASK) == (it->id & OUT_GEN_MASK) &&
             col_u32(st, 2) == it->instance && strcmp(job_id, it->job_id) == 0;
    stmt_done(st);
    return rc;
}

static int sq_outbox_claim(store *base, const outbox_item *items, size_t n, double lease, int *rcs)
{
    sqstore *s = (sqstore *)base;
    if (enter(s) != 0)
        return -1;
    int rc = 0;
    double now = store_mono();
    pthread_mutex_lock(&s->rmu);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const outbox_item *it = &items[i];
        claim *mine = NULL;
        rcs[i] = STORE_CLAIMED;
        for (size_t k = 0; k < s->n_claims;) {
            claim *c = &s->claims[k];
            if (c->until < now) { /* its holder never let go: a POST cut off at shutdown */
                *c = s->claims[--s->n_claims];
                continue;
            }
            if (c->instance == it->instance && strcmp(c->job_id, it->job_id) == 0) {
                if (c->id != it->id)
                    rcs[i] = STORE_CLAIM_BUSY;
                else
                    mine = c;
            }
            k++;
        }
        if (rcs[i] != STORE_CLAIMED)
            continue;
        int cur = outbox_current(s, it);
        if (cur < 0) {
            rc = -1;
            break;
        }
        if (!cur) {
            rcs[i] = STORE_CLAIM_STALE;
            continue;
        }
        if (!mine) {
            if (s->n_claims == CLAIM_MAX) {
                rcs[i] = STORE_CLAIM_BUSY; /* more in flight than deliverers hold */
                continue;
            }
            mine = &s->claims[s->n_claims++];
            mine->id = it->id;
            mine->instance = it->instance;
            snprintf(mine->job_id, sizeof mine->job_id, "%s", it->job_id);
        }
        mine->until = now + lease;
    }
    pthread_mutex_unlock(&s->rmu);
    leave(s);
    return rc;
}

static void claims_release(sqstore *s, const int64_t *ids, size_t n)
{
    pthread_mutex_lock(&s->rmu);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s->n_claims; k++)
            if (s->claims[k].id == ids[i]) {
                s->claims[k] = s->claims[--s->n_claims];
                break;
            }
    pthread_mutex_unlock(&s->rmu);
}

static int sq_outbox_done(store *base, const outbox_key *k)
{
    sqstore *s = (sqstore *)base;
    if (!s)
        return -1;
    int64_t id = k->id;
    op o = {.kind = OP_OUTBOX_DONE, .outbox_id = id};
    int rc = (int)submit(s, &o);
    claims_release(s, &id, 1);
    return rc;
}

static int sq_outbox_done_many(store *base, const outbox_key *ks, size_t n)
{
    sqstore *s = (sqstore *)base;
    if (!s)
        return -1;
    if (n == 0)
        return 0;
    op *ops = calloc(n, sizeof *ops);
    int64_t *ids = calloc(n, sizeof *ids);
    if (!ops || !ids) {
        free(ops);
        free(ids);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = ks[i].id;
        ops[i] = (op){.kind = OP_OUTBOX_DONE, .outbox_id = ids[i]};
    }
    submit_many(s, ops, n);
    claims_release(s, ids, n);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (ops[i].rc < 0)
            rc = -1;
    free(ops);
    free(ids);
    return rc;
}

static int sq_outbox_retry(store *base, const outbox_key *k, uint32_t attempts, double next_at)
{
    sqstore *s = (sqstore *)base;
    if (!s || !isfinite(next_at))
        return -1;
    int64_t id = k->id;
    op o = {.kind = OP_OUTBOX_RETRY, .outbox_id = id, .attempts = attempts, .t = next_at};
    int rc = (int)submit(s, &o);
    claims_release(s, &id, 1);
    return rc;
}

static int sq_outbox_give_up(store *base, const outbox_key *k)
{
    /* The same removal as a delivery; only the caller's counters differ. */
    return sq_outbox_done(base, k);
}

static size_t sq_outbox_depth(store *base)
{
    sqstore *s = (sqstore *)base;
    return s ? atomic_load(&s->outbox_n) : 0;
}

static const store_ops SQLITE_OPS = {
    .shared = false,
    .close = sq_close,
    .enqueue = sq_enqueue,
    .enqueue_async = sq_enqueue_async,
    .flush_async = sq_flush_async,
    .enqueue_many = sq_enqueue_many,
    .requeue = sq_requeue,
    .take = sq_take,
    .queue_depth = sq_queue_depth,
    .finish = sq_finish,
    .finish_many = sq_finish_many,
    .place_many = NULL,
    .status_get = sq_status_get,
    .job_delete = sq_job_delete,
    .node_put = sq_node_put,
    .node_delete = sq_node_delete,
    .load = sq_load,
    .follow = NULL,
    .outbox_due = sq_outbox_due,
    .outbox_claim = sq_outbox_claim,
    .outbox_done = sq_outbox_done,
    .outbox_done_many = sq_outbox_done_many,
    .outbox_retry = sq_outbox_retry,
    .outbox_give_up = sq_outbox_give_up,
    .outbox_depth = sq_outbox_depth,
};
