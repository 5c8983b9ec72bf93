/* test_walvfs.c - the VFS that gathers WAL frames: a commit is one write
 * instead of two per page; a reader never sees a commit whose frames are not
 * in the file; a transaction that spills pages before its commit reads them
 * back; a process killed right after its commits loses none of them,
 * spilled and rewritten ones too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "walvfs.h"

#include "tmpdir.h"

typedef struct fixture {
    char dir[64];
    char path[96];
    walvfs *vfs;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (tmpdir_make(f->dir, sizeof f->dir, "test_walvfs") != 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    cs_error err = {0};
    f->vfs = walvfs_new("unix-excl", &err);
    if (!f->vfs) {
        fprintf(stderr, "walvfs: %s\n", err.msg);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    walvfs_free(f->vfs);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static sqlite3 *open_db(const char *path, const char *vfs)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL, NULL),
        SQLITE_OK);
    return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static long long query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

/* Write system calls of this process (pwrite counts), from /proc/self/io. */
static long long writes_so_far(void)
{
    FILE *fp = fopen("/proc/self/io", "r");
    assert_non_null(fp);
    char line[128];
    long long n = -1;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "syscw: %lld", &n) == 1)
            break;
    fclose(fp);
    assert_true(n >= 0);
    return n;
}

/* One transaction dirtying about 60 pages: the base VFS makes two writes per
 * page, ours a handful for the whole commit. */
static long long writes_for_commit(const char *path, const char *vfs)
{
    sqlite3 *db = open_db(path, vfs);
    exec_ok(db, "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v BLOB)");
    exec_ok(db, "DELETE FROM t");
    long long before = writes_so_far();
    exec_ok(db, "BEGIN");
    for (int i = 0; i < 60; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES(%d, randomblob(3500))", i);
        exec_ok(db, sql);
    }
    exec_ok(db, "COMMIT");
    long long n = writes_so_far() - before;
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 60);
    sqlite3_close(db);
    return n;
}

static void test_one_write_per_commit(void **state)
{
    fixture *f = *state;
    char plain[128];
    snprintf(plain, sizeof plain, "%s/plain.db", f->dir);
    long long base = writes_for_commit(plain, "unix-excl");
    long long ours = writes_for_commit(f->path, walvfs_name(f->vfs));
    assert_true(base >= 120);
    assert_true(ours <= 6); /* 60 frames of 4,120 bytes: 2 or 3 writes of up to 120 KB */
}

/* While one connection commits, another counts rows at every step: it must
 * only ever see whole commits (multiples of the batch) and never an error. */
static void test_reader_sees_whole_commits(void **state)
{
    fixture *f = *state;
    sqlite3 *w = open_db(f->path, walvfs_name(f->vfs));
    sqlite3 *r = open_db(f->path, walvfs_name(f->vfs));
    exec_ok(w, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
    enum { BATCH = 7, COMMITS = 300 };
    int k = 0;
    for (int c = 0; c < COMMITS; c++) {
        exec_ok(w, "BEGIN");
        for (int i = 0; i < BATCH; i++) {
            char sql[96];
            snprintf(sql, sizeof sql, "INSERT INTO t VALUES(%d, randomblob(%d))", k++,
                     500 + (c * 37 + i * 101) % 6000);
            exec_ok(w, sql);
        }
        exec_ok(w, "COMMIT");
        long long n = query_int(r, "SELECT count(*) FROM t");
        assert_int_equal(n, (long long)(c + 1) * BATCH);
        if (c % 50 == 0)
            assert_int_equal(
                sqlite3_wal_checkpoint_v2(r, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL),
                SQLITE_OK);
    }
    integrity_ok(r);
    sqlite3_close(r);
    sqlite3_close(w);
}

/* A transaction larger than the page cache (it writes frames before its
 * commit and reads them back) that changes some of its rows again. */
static const char SPILL_SQL[] =
    "PRAGMA cache_size=10;"
    "CREATE TABLE t(k INTEGER PRIMARY KEY, n INTEGER, v BLOB);"
    "BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)"
    " INSERT INTO t SELECT i, i, randomblob(900) FROM c;"
    "UPDATE t SET n = n * 2 WHERE k % 3 = 0; COMMIT;";

/* What SPILL_SQL leaves: every row, the right sums, a sound file. */
static void spilled_ok(sqlite3 *db)
{
    long long want = 0;
    for (int i = 1; i <= 2000; i++)
        want += i % 3 == 0 ? 2 * i : i;
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 2000);
    assert_int_equal(query_int(db, "SELECT sum(n) FROM t"), want);
    integrity_ok(db);
}

static void test_spilled_transaction(void **state)
{
    fixture *f = *state;
    sqlite3 *db = open_db(f->path, walvfs_name(f->vfs));
    exec_ok(db, SPILL_SQL);
    spilled_ok(db);
    sqlite3_close(db);

    sqlite3 *again = open_db(f->path, walvfs_name(f->vfs));
    spilled_ok(again);
    sqlite3_close(again);
}

/* In a forked child: the store's way of opening path, or exit 2. */
static sqlite3 *child_open(const char *path)
{
    cs_error err;
    walvfs *v = walvfs_new("unix-excl", &err);
    sqlite3 *db = NULL;
    if (!v || sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              walvfs_name(v)) != SQLITE_OK)
        _exit(2);
    return db;
}

static void child_ok(pid_t pid)
{
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A child commits and dies without closing anything; every commit it made
 * must be there when the file is opened again. */
static void test_killed_after_commit(void **state)
{
    fixture *f = *state;
    enum { COMMITS = 200 };
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *db = child_open(f->path);
        if (sqlite3_exec(db,
                         "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                         "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)",
                         NULL, NULL, NULL) != SQLITE_OK)
            _exit(2);
        for (int i = 0; i < COMMITS; i++) {
            char sql[96];
            snprintf(sql, sizeof sql, "INSERT INTO t VALUES(%d, randomblob(2000))", i);
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
                _exit(3);
        }
        _exit(0); /* no close, no checkpoint: as if killed */
    }
    child_ok(pid);
    sqlite3 *db = open_db(f->path, walvfs_name(f->vfs));
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), COMMITS);
    integrity_ok(db);
    sqlite3_close(db);
}

/* The same, after a transaction that spilled pages and then changed one
 * of them again: SQLite rewrites that transaction's frame headers after its
 * frames, the last write of the commit being the commit frame's header.
 * It must be in the file when COMMIT returns. */
static void test_killed_after_spilled_commit(void **state)
{
    fixture *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *db = child_open(f->path);
        if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL,
                         NULL) != SQLITE_OK ||
            sqlite3_exec(db, SPILL_SQL, NULL, NULL, NULL) != SQLITE_OK)
            _exit(3);
        _exit(0); /* no close: the process is gone right after COMMIT */
    }
    child_ok(pid);
    sqlite3 *db = open_db(f->path, walvfs_name(f->vfs));
    spilled_ok(db);
    sqlite3_close(db);
}

static void test_bad_base(void **state)
{
    (void)state;
    cs_error err = {0};
    assert_null(walvfs_new("no-such-vfs", &err));
    assert_string_equal(err.field, "data_dir");
    assert_null(walvfs_name(NULL));
    walvfs_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_write_per_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_sees_whole_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spilled_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_after_spilled_commit, setup, teardown),
        cmocka_unit_test(test_bad_base),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
