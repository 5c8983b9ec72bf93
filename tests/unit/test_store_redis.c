/* test_store_redis.c - the Redis store against a real redis-server that the
 * test starts itself on a free port (and stops at the end, also when a test
 * fails): open errors, idempotent intake, placement with the store's own
 * capacity check (compared with cluster.c's own table), re-queueing,
 * the change feed, the outbox leases and at-least-once hand-out. Every test
 * starts from an empty Redis (FLUSHALL). A missing redis-server fails. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "store.h"
#include "store_redis.h"

#include "claim_one.h"

#define NOW 1000.0
#define TTL 30.0
#define LEASE 0.2

/* --- the redis-server this program runs -------------------------------- */

static pid_t g_pid = -1;
static int g_port;
static char g_addr[64];

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A port nothing listens on right now: bind port 0, read it back, close. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool executable(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* /usr/bin/redis-server, else the first on PATH. */
static bool find_redis(char *out, size_t n)
{
    if (executable("/usr/bin/redis-server")) {
        snprintf(out, n, "/usr/bin/redis-server");
        return true;
    }
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        if (len > 0 && (size_t)snprintf(out, n, "%.*s/redis-server", (int)len, path) < n &&
            executable(out))
            return true;
        path = end ? end + 1 : NULL;
    }
    return false;
}

static redisContext *connect_to(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && c->err) {
        redisFree(c);
        c = NULL;
    }
    if (c)
        redisSetTimeout(c, (struct timeval){5, 0});
    return c;
}

static void stop_server(void)
{
    if (g_pid <= 0)
        return;
    kill(g_pid, SIGTERM);
    double until = mono() + 5.0;
    int st;
    while (waitpid(g_pid, &st, WNOHANG) == 0) {
        if (mono() > until) {
            kill(g_pid, SIGKILL);
            waitpid(g_pid, &st, 0);
            break;
        }
        sleep_ms(10);
    }
    g_pid = -1;
}

static int group_setup(void **state)
{
    (void)state;
    char bin[4096];
    if (!find_redis(bin, sizeof bin)) {
        fprintf(stderr, "test_store_redis: FAIL: redis-server not found (neither "
                        "/usr/bin/redis-server nor on PATH); install redis-server to run this "
                        "test\n");
        return -1;
    }
    g_port = free_port();
    if (g_port <= 0) {
        fprintf(stderr, "test_store_redis: FAIL: no free port: %s\n", strerror(errno));
        return -1;
    }
    snprintf(g_addr, sizeof g_addr, "redis://127.0.0.1:%d", g_port);
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "test_store_redis: FAIL: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Dies with this program even when it is killed or aborts. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2)
                close(fd);
        }
        execl(bin, "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--daemonize", "no", "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    g_pid = pid;
    double until = mono() + 10.0;
    for (;;) {
        int st;
        if (waitpid(g_pid, &st, WNOHANG) == g_pid) {
            fprintf(stderr, "test_store_redis: FAIL: %s exited at start (status %d)\n", bin,
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            g_pid = -1;
            return -1;
        }
        redisContext *c = connect_to(g_port);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            bool up = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
            freeReplyObject(r);
            redisFree(c);
            if (up)
                return 0;
        }
        if (mono() > until) {
            fprintf(stderr, "test_store_redis: FAIL: %s not answering on port %d after 10 s\n", bin,
                    g_port);
            stop_server();
            return -1;
        }
        sleep_ms(20);
    }
}

static int group_teardown(void **state)
{
    (void)state;
    stop_server();
    return 0;
}

/* --- direct access to Redis -------------------------------------------- */

static long long cmd_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* Reservations in the store: job hashes with a `res` field. */
static long long res_count(redisContext *c)
{
    return cmd_int(c, "EVAL %s 0",
                   "local n = 0 "
                   "for _, k in ipairs(redis.call('KEYS', 'cs:job:*')) do "
                   "if redis.call('HEXISTS', k, 'res') == 1 then n = n + 1 end end "
                   "return n");
}

static bool cmd_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok;
}

/* A hash field holding an integer; -1 when missing. */
static long long hget_ll(redisContext *c, const char *key, const char *field)
{
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    long long v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

/* Removes a password a failed test may have left set. */
static void reset_password(void)
{
    redisContext *c = connect_to(g_port);
    if (!c)
        return;
    freeReplyObject(redisCommand(c, "AUTH x"));
    freeReplyObject(redisCommand(c, "CONFIG SET requirepass %s", ""));
    redisFree(c);
}

/* --- per-test fixture -------------------------------------------------- */

typedef struct fixture {
    redisContext *rc; /* direct connection: FLUSHALL, inspection */
    store *s;         /* consumer "A" */
    store *more[2];   /* others a test opens: closed in teardown */
    cluster *c;       /* cluster.c's table, for comparisons; freed in teardown */
} fixture;

static store *open_store(const char *addr, const char *consumer, double claim_idle_s, cs_error *err)
{
    store_redis_opts o = {
        .addr = addr,
        .consumer = consumer,
        .claim_idle_s = claim_idle_s,
        .connect_timeout_s = 1.0,
        .command_timeout_s = 5.0,
        .result_lease_s = LEASE,
    };
    return store_redis_open(&o, err);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->rc = connect_to(g_port);
    if (!f->rc || !cmd_ok(f->rc, "FLUSHALL")) {
        fprintf(stderr, "cannot FLUSHALL the test redis on port %d\n", g_port);
        goto fail;
    }
    cs_error err = {0};
    /* A long claim time: nothing taken here is handed out twice by accident. */
    f->s = open_store(g_addr, "A", 30.0, &err);
    if (!f->s) {
        fprintf(stderr, "store_redis_open(%s): %s: %s\n", g_addr, err.field, err.msg);
        goto fail;
    }
    *state = f;
    return 0;
fail:
    if (f->rc)
        redisFree(f->rc);
    free(f);
    return -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    for (int i = 0; i < 2; i++)
        store_close(f->more[i]);
    if (f->c)
        cluster_free(f->c);
    redisFree(f->rc);
    free(f);
    reset_password();
    return 0;
}

/* --- helpers ----------------------------------------------------------- */

/* Another store (another process), in slot i of the fixture. */
static store *open_more(fixture *f, int i, const char *addr, const char *consumer,
                        double claim_idle_s)
{
    cs_error err = {0};
    store_close(f->more[i]);
    f->more[i] = open_store(addr, consumer, claim_idle_s, &err);
    if (!f->more[i])
        fail_msg("store_redis_open(%s, %s): %s", addr, consumer, err.msg);
    return f->more[i];
}

static store_node_caps caps_of(int64_t cpu, int64_t mem, int32_t gpus)
{
    store_node_caps c = {.cpu_milli = cpu, .memory_mb = mem, .gpus = gpus};
    return c;
}

static void node_put(store *s, const char *id, double last, store_node_caps c)
{
    char doc[128];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\"}", id);
    assert_int_equal(store_node_put(s, id, doc, last, &c), 0);
}

static reservation_view res_of(const char *job, uint32_t inst, const char *node, int64_t cpu,
                               int64_t mem, int32_t gpus)
{
    reservation_view r = {0};
    snprintf(r.job_id, sizeof r.job_id, "%s", job);
    r.instance = inst;
    snprintf(r.node_id, sizeof r.node_id, "%s", node);
    r.cpu_milli = cpu;
    r.memory_mb = mem;
    r.gpus = gpus;
    r.at = NOW;
    return r;
}

static int place(store *s, const char *job, uint32_t inst, const char *node, int64_t cpu,
                 int64_t mem, int64_t *id, char held[CS_ID_MAX + 1])
{
    reservation_view r = res_of(job, inst, node, cpu, mem, 0);
    char result[160];
    snprintf(result, sizeof result, "{\"job\":\"%s\",\"node\":\"%s\"}", job, node);
    int64_t dummy_id = 0;
    char dummy_held[CS_ID_MAX + 1];
    return store_place(s, job, inst, &r, result, NOW, TTL, id ? id : &dummy_id,
                       held ? held : dummy_held);
}

/* A fresh job placed on node: the store's answer. One not placed is
 * deleted again, so that it does not stay in the queue. */
static int place_new(store *s, const char *node, int64_t cpu, int64_t mem)
{
    static int seq;
    char job[32];
    snprintf(job, sizeof job, "p%d", ++seq);
    assert_int_equal(store_enqueue(s, job, 0, "{}", NOW), 0);
    int rc = place(s, job, 0, node, cpu, mem, NULL, NULL);
    if (rc != STORE_PLACED)
        assert_int_equal(store_job_delete(s, job, 0), 0);
    return rc;
}

/* cpu milli fits on node exactly: cpu is placed, cpu + 1 is not. The probe
 * placement is deleted again (its reservation goes with it). */
static void cpu_boundary(store *s, const char *node, int64_t cpu)
{
    assert_int_equal(store_enqueue(s, "probe", 0, "{}", NOW), 0);
    int rc = place(s, "probe", 0, node, cpu + 1, 1, NULL, NULL);
    if (rc != STORE_NO_ROOM)
        fail_msg("%s: %" PRId64 " milli should not fit (rc %d)", node, cpu + 1, rc);
    rc = place(s, "probe", 0, node, cpu, 1, NULL, NULL);
    if (rc != STORE_PLACED)
        fail_msg("%s: %" PRId64 " milli should fit exactly (rc %d)", node, cpu, rc);
    assert_int_equal(store_job_delete(s, "probe", 0), 0);
}

/* A job as taken, copied (the body is freed at once, so a failed check
 * leaks nothing). */
typedef struct taken {
    char id[CS_ID_MAX + 1];
    uint32_t inst, attempts;
    char body[256];
    double received_at;
} taken;

static taken take_one(store *s, int timeout_ms)
{
    store_job j = {0};
    taken t = {0};
    assert_int_equal(store_take(s, &j, timeout_ms), 0);
    snprintf(t.id, sizeof t.id, "%s", j.job_id);
    t.inst = j.instance;
    t.attempts = j.attempts;
    snprintf(t.body, sizeof t.body, "%s", j.body ? j.body : "(null)");
    t.received_at = j.received_at;
    store_job_clear(&j);
    return t;
}

static void take_expect(store *s, const char *id, uint32_t inst, uint32_t attempts)
{
    taken t = take_one(s, 2000);
    assert_string_equal(t.id, id);
    assert_int_equal(t.inst, inst);
    assert_int_equal(t.attempts, attempts);
}

static void take_none(store *s)
{
    store_job j = {0};
    int rc = store_take(s, &j, 100);
    if (rc == 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "unexpected job %s/%" PRIu32, j.job_id, j.instance);
        store_job_clear(&j);
        fail_msg("%s", msg);
    }
    assert_int_equal(rc, 1);
}

/* Free cpu by cluster.c's recompute_free, for the expected values. */
static int64_t rule_free(int64_t cap, double pct, int64_t all_res, int64_t res_since)
{
    int64_t cpu = cap - all_res;
    int64_t by_use = (int64_t)floor((double)cap * (1.0 - pct / 100.0));
    if (by_use - res_since < cpu)
        cpu = by_use - res_since;
    return cpu;
}

/* --- 1. open errors ---------------------------------------------------- */

static void test_open_errors(void **state)
{
    fixture *f = *state;
    cs_error err = {0};
    char addr[160], want[64];

    int port = free_port();
    assert_true(port > 0);
    snprintf(addr, sizeof addr, "redis://127.0.0.1:%d", port);
    assert_null(open_store(addr, "A", 30.0, &err));
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    if (!strstr(err.msg, want))
        fail_msg("'%s' does not name %s", err.msg, want);

    const char *bad[] = {"http://127.0.0.1:6379", "redis://127.0.0.1:0", "redis://127.0.0.1:x",
                         "redis://:6379", "redis://127.0.0.1:6379/db"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&err, 0, sizeof err);
        store *s = open_store(bad[i], "A", 30.0, &err);
        if (s) {
            store_close(s);
            fail_msg("'%s' accepted", bad[i]);
        }
        assert_true(err.msg[0] != '\0');
    }
    memset(&err, 0, sizeof err);
    assert_null(open_store(g_addr, "", 30.0, &err));

    /* With a password set on the server. */
    assert_true(cmd_ok(f->rc, "CONFIG SET requirepass x"));
    memset(&err, 0, sizeof err);
    assert_null(open_store(g_addr, "A", 30.0, &err));
    if (!strstr(err.msg, "password"))
        fail_msg("no password: '%s'", err.msg);
    snprintf(addr, sizeof addr, "redis://:wrong@127.0.0.1:%d", g_port);
    memset(&err, 0, sizeof err);
    assert_null(open_store(addr, "A", 30.0, &err));
    if (!strstr(err.msg, "authentication"))
        fail_msg("wrong password: '%s'", err.msg);

    snprintf(addr, sizeof addr, "redis://:x@127.0.0.1:%d/3", g_port);
    store *s = open_more(f, 0, addr, "A", 30.0);
    assert_int_equal(store_enqueue(s, "in3", 0, "{}", NOW), 0);
    taken t = take_one(s, 1000);
    assert_string_equal(t.id, "in3");
    assert_true(cmd_ok(f->rc, "SELECT 3"));
    assert_int_equal(cmd_int(f->rc, "EXISTS cs:job:0:in3"), 1);
    assert_int_equal(cmd_int(f->rc, "EXISTS cs:jobs"), 1);
    assert_true(cmd_ok(f->rc, "SELECT 0"));
    assert_int_equal(cmd_int(f->rc, "EXISTS cs:job:0:in3"), 0);
    assert_true(cmd_ok(f->rc, "CONFIG SET requirepass %s", ""));
}

/* --- 2. intake --------------------------------------------------------- */

static void test_enqueue_idempotent(void **state)
{
    fixture *f = *state;
    const double recv = 1700000000.123456;
    assert_int_equal(store_enqueue(f->s, "a", 5, "{\"n\":1}", recv), 0);
    assert_int_equal(store_enqueue(f->s, "a", 5, "{\"other\":1}", recv + 1), 1);

    int rcs[3] = {-9, -9, -9};
    assert_int_equal(store_enqueue_many(f->s, "m:x", 3, "{\"rep\":3}", 2000.5, rcs), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rcs[i], 0);
    assert_int_equal(store_enqueue_many(f->s, "m:x", 3, "{\"rep\":3}", 2001.0, rcs), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rcs[i], 1);
    assert_int_equal(store_enqueue(f->s, "m:x", 1, "{}", 1.0), 1);
    assert_int_equal(store_queue_depth(f->s), 4);

    /* Each instance exactly once, in arrival order. */
    taken t = take_one(f->s, 1000);
    assert_string_equal(t.id, "a");
    assert_int_equal(t.inst, 5);
    assert_string_equal(t.body, "{\"n\":1}");
    assert_true(t.received_at == recv);
    assert_int_equal(t.attempts, 0);
    for (uint32_t i = 0; i < 3; i++) {
        t = take_one(f->s, 1000);
        assert_string_equal(t.id, "m:x");
        assert_int_equal(t.inst, i);
        assert_string_equal(t.body, "{\"rep\":3}");
        assert_true(t.received_at == 2000.5);
    }
    double t0 = mono();
    take_none(f->s);
    assert_true(mono() - t0 >= 0.09);
    assert_int_equal(store_queue_depth(f->s), 0);
    assert_int_equal(store_enqueue(f->s, "a", 5, "{}", 1.0), 1); /* taken: still known */

    store_status st;
    assert_int_equal(store_status_get(f->s, "a", 5, &st), 0);
    assert_int_equal(st.state, JOB_QUEUED);
    assert_string_equal(st.body, "{\"n\":1}");
    assert_null(st.result);
    assert_string_equal(st.node_id, "");
    assert_true(st.received_at == recv);
    store_status_clear(&st);
    assert_int_equal(store_status_get(f->s, "a", 6, &st), 1);
}

/* --- 3. placement ------------------------------------------------------ */

static void test_place(void **state)
{
    fixture *f = *state;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    int rcs[5];
    assert_int_equal(store_enqueue_many(f->s, "j", 5, "{\"cpu\":1}", NOW - 1, rcs), 0);
    for (uint32_t i = 0; i < 5; i++)
        take_expect(f->s, "j", i, 0);

    int64_t last_id = 0;
    char held[CS_ID_MAX + 1];
    for (uint32_t i = 0; i < 4; i++) {
        int64_t id = 0;
        assert_int_equal(place(f->s, "j", i, "n1", 1000, 100, &id, held), STORE_PLACED);
        assert_true(id > last_id);
        last_id = id;
    }
    int64_t id = 0;
    assert_int_equal(place(f->s, "j", 4, "n1", 1000, 100, &id, held), STORE_NO_ROOM);
    assert_int_equal(store_outbox_depth(f->s), 4);

    /* Already placed: the node that holds it. */
    strcpy(held, "junk");
    assert_int_equal(place(f->s, "j", 0, "n1", 1, 1, &id, held), STORE_DECIDED);
    assert_string_equal(held, "n1");

    store_status st;
    assert_int_equal(store_status_get(f->s, "j", 0, &st), 0);
    assert_int_equal(st.state, JOB_PLACED);
    assert_string_equal(st.node_id, "n1");
    assert_string_equal(st.result, "{\"job\":\"j\",\"node\":\"n1\"}");
    assert_string_equal(st.body, "{\"cpu\":1}");
    assert_true(st.received_at == NOW - 1);
    assert_true(st.decided_at == NOW);
    store_status_clear(&st);
    assert_int_equal(store_status_get(f->s, "j", 4, &st), 0);
    assert_int_equal(st.state, JOB_QUEUED);
    store_status_clear(&st);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "res_cpu"), 4000);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "res_mem"), 400);

    /* Deleted: gone. */
    assert_int_equal(store_job_delete(f->s, "j", 4), 0);
    assert_int_equal(place(f->s, "j", 4, "n1", 1, 1, &id, held), STORE_GONE);
    assert_int_equal(store_job_delete(f->s, "j", 4), 1);
    /* Deleting a placed one frees its room. */
    assert_int_equal(store_job_delete(f->s, "j", 0), 0);
    assert_int_equal(store_outbox_depth(f->s), 3);
    assert_int_equal(place_new(f->s, "n1", 1000, 100), STORE_PLACED);
    assert_int_equal(place_new(f->s, "n1", 1, 1), STORE_NO_ROOM);

    /* Memory and gpus are checked too. */
    node_put(f->s, "n3", NOW, caps_of(4000, 4096, 1));
    assert_int_equal(place_new(f->s, "n3", 1, 4097), STORE_NO_ROOM);
    reservation_view g = res_of("gpu", 0, "n3", 1, 1, 2);
    assert_int_equal(store_enqueue(f->s, "gpu", 0, "{}", NOW), 0);
    assert_int_equal(store_place(f->s, "gpu", 0, &g, "{}", NOW, TTL, &id, held), STORE_NO_ROOM);
    g.gpus = 1;
    assert_int_equal(store_place(f->s, "gpu", 0, &g, "{}", NOW, TTL, &id, held), STORE_PLACED);

    /* Inactive (last report older than ttl at now) or unknown: no room. */
    node_put(f->s, "old", NOW - TTL - 1, caps_of(4000, 4096, 0));
    assert_int_equal(place_new(f->s, "old", 1, 1), STORE_NO_ROOM);
    assert_int_equal(place_new(f->s, "nosuch", 1, 1), STORE_NO_ROOM);
    node_put(f->s, "edge", NOW - TTL, caps_of(4000, 4096, 0)); /* exactly ttl: active */
    assert_int_equal(place_new(f->s, "edge", 1, 1), STORE_PLACED);
    /* A report with an older time does not make a node look older. */
    node_put(f->s, "n2", NOW, caps_of(4000, 4096, 0));
    node_put(f->s, "n2", NOW - 100, caps_of(4000, 4096, 0));
    assert_int_equal(place_new(f->s, "n2", 1, 1), STORE_PLACED);
}

/* Several placements in one call: committed in order, each checked
 * against the ones before it, each with its own answer; a request the
 * store refuses to send gets -1 without failing the others. */
static void test_place_many(void **state)
{
    fixture *f = *state;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(store_enqueue(f->s, "pm", i, "{}", NOW), 0);
    reservation_view r[5];
    store_place_req q[5];
    for (uint32_t i = 0; i < 5; i++) {
        r[i] = res_of("pm", i, "n1", 1500, 100, 0);
        q[i] = (store_place_req){
            .job_id = "pm", .instance = i, .res = &r[i], .result = "{}", .now = NOW, .ttl = TTL};
    }
    snprintf(r[4].node_id, sizeof r[4].node_id, "bad id"); /* never sent */
    assert_int_equal(store_place_many(f->s, q, 5), 0);
    assert_int_equal(q[0].rc, STORE_PLACED);
    assert_int_equal(q[1].rc, STORE_PLACED);
    assert_int_equal(q[2].rc, STORE_NO_ROOM); /* 3 x 1500 > 4000 */
    assert_int_equal(q[3].rc, STORE_GONE);    /* never queued */
    assert_int_equal(q[4].rc, -1);
    assert_true(q[0].outbox_id > 0 && q[1].outbox_id > q[0].outbox_id);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "res_cpu"), 3000);
    assert_int_equal(cmd_int(f->rc, "SCARD cs:noderes:n1"), 2);
    assert_int_equal(store_outbox_depth(f->s), 2);
    /* Placed, re-queued, placed again: each time its own outbox entry. */
    assert_int_equal(store_requeue(f->s, "pm", 0, NULL, NOW), 0);
    int64_t first = q[0].outbox_id;
    assert_int_equal(store_place_many(f->s, q, 1), 0);
    assert_int_equal(q[0].rc, STORE_PLACED);
    assert_true(q[0].outbox_id > first);
    assert_int_equal(claim1(f->s, first, "pm", 0, 30.0), STORE_CLAIM_STALE);
    /* Decided already: the node it holds. */
    assert_int_equal(store_place_many(f->s, &q[1], 1), 0);
    assert_int_equal(q[1].rc, STORE_DECIDED);
    assert_string_equal(q[1].held_node, "n1");
    assert_int_equal(store_place_many(f->s, q, 0), 0);
}

/* Releasing a reservation with a zero amount (no gpus: the usual case).
 * The release subtracts each amount from the node's sums in Lua; it must
 * work for 0 too and leave nothing behind. */
static void test_release_zero_amounts(void **state)
{
    fixture *f = *state;
    node_put(f->s, "z", NOW, caps_of(4000, 4096, 2));
    assert_int_equal(store_enqueue(f->s, "z", 0, "{}", NOW), 0);
    assert_int_equal(place(f->s, "z", 0, "z", 1000, 100, NULL, NULL), STORE_PLACED);
    int rc = store_job_delete(f->s, "z", 0);
    if (rc != 0)
        fail_msg("store_job_delete of a placement with gpus 0: %d (want 0); then "
                 "reservations=%lld res_cpu=%lld res_gpu=%lld outbox=%zu",
                 rc, res_count(f->rc), hget_ll(f->rc, "cs:node:z", "res_cpu"),
                 hget_ll(f->rc, "cs:node:z", "res_gpu"), store_outbox_depth(f->s));
    assert_int_equal(res_count(f->rc), 0);
    assert_int_equal(cmd_int(f->rc, "SCARD cs:noderes:z"), 0);
    assert_int_equal(hget_ll(f->rc, "cs:node:z", "res_cpu"), 0);
    assert_int_equal(hget_ll(f->rc, "cs:node:z", "res_gpu"), 0);
    assert_int_equal(store_outbox_depth(f->s), 0);
    /* Zero cpu and memory, too. */
    assert_int_equal(store_enqueue(f->s, "z", 1, "{}", NOW), 0);
    reservation_view r = res_of("z", 1, "z", 0, 0, 1);
    int64_t id;
    char held[CS_ID_MAX + 1];
    assert_int_equal(store_place(f->s, "z", 1, &r, "{}", NOW, TTL, &id, held), STORE_PLACED);
    assert_int_equal(store_requeue(f->s, "z", 1, "z", NOW), 0);
    assert_int_equal(res_count(f->rc), 0);
    assert_int_equal(hget_ll(f->rc, "cs:node:z", "res_gpu"), 0);
}

/* --- 4. the usage rule ------------------------------------------------- */

static void test_usage_rule(void **state)
{
    fixture *f = *state;
    store_node_caps c = caps_of(4000, 4096, 0);
    c.cpu_pct_set = true;
    c.cpu_pct = 50;
    node_put(f->s, "u1", NOW, c);
    /* 4000 milli at 50 % busy: 2000 free by usage. */
    assert_int_equal(place_new(f->s, "u1", 2001, 1), STORE_NO_ROOM);
    assert_int_equal(place_new(f->s, "u1", 2000, 1), STORE_PLACED);
    assert_int_equal(place_new(f->s, "u1", 1, 1), STORE_NO_ROOM);
    /* A new figure covers what ran when it was measured: the 2000 placed
     * before it count only against the capacity. */
    node_put(f->s, "u1", NOW, c);
    assert_int_equal(rule_free(4000, 50, 2000, 0), 2000);
    cpu_boundary(f->s, "u1", 2000);
    assert_int_equal(place_new(f->s, "u1", 2000, 1), STORE_PLACED);
    assert_int_equal(place_new(f->s, "u1", 1, 1), STORE_NO_ROOM); /* 4000 reserved */

    /* The two sides of the min differ. cap 4000, 25 % busy: by usage 3000. */
    c.cpu_pct = 25;
    node_put(f->s, "u2", NOW, c);
    assert_int_equal(store_enqueue(f->s, "A", 0, "{}", NOW), 0);
    assert_int_equal(place(f->s, "A", 0, "u2", 1000, 1, NULL, NULL), STORE_PLACED);
    /* min(4000 - 1000, 3000 - 1000): the usage side. */
    assert_int_equal(rule_free(4000, 25, 1000, 1000), 2000);
    cpu_boundary(f->s, "u2", 2000);
    /* New figure, 10 %: min(4000 - 1000, 3600 - 0): the reservation side. */
    c.cpu_pct = 10;
    node_put(f->s, "u2", NOW, c);
    assert_int_equal(rule_free(4000, 10, 1000, 0), 3000);
    cpu_boundary(f->s, "u2", 3000);
    /* A report without a figure changes nothing. */
    node_put(f->s, "u2", NOW, caps_of(4000, 4096, 0));
    cpu_boundary(f->s, "u2", 3000);
    /* New figure, 50 %: min(3000, 2000 - 0). */
    c.cpu_pct = 50;
    node_put(f->s, "u2", NOW, c);
    cpu_boundary(f->s, "u2", rule_free(4000, 50, 1000, 0));
    /* B after the figure: min(4000 - 1500, 2000 - 500) = 1500. */
    assert_int_equal(store_enqueue(f->s, "B", 0, "{}", NOW), 0);
    assert_int_equal(place(f->s, "B", 0, "u2", 500, 1, NULL, NULL), STORE_PLACED);
    cpu_boundary(f->s, "u2", rule_free(4000, 50, 1500, 500));
    /* Dropping A (made before the figure) leaves the count since it alone:
     * min(4000 - 500, 2000 - 500) = 1500. */
    assert_int_equal(store_job_delete(f->s, "A", 0), 0);
    assert_int_equal(rule_free(4000, 50, 500, 500), 1500);
    cpu_boundary(f->s, "u2", 1500);
    /* Dropping B (made after it) does lower it: min(4000, 2000) = 2000. */
    assert_int_equal(store_job_delete(f->s, "B", 0), 0);
    cpu_boundary(f->s, "u2", 2000);

    /* The floor, with figures that are not exact in binary. */
    const struct {
        int64_t cap;
        double pct;
    } odd[] = {{1001, 50}, {1000, 33.3}, {3000, 12.7}, {7, 99.9}, {4000, 0.1}};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        char id[16];
        snprintf(id, sizeof id, "f%zu", i);
        store_node_caps fc = caps_of(odd[i].cap, 4096, 0);
        fc.cpu_pct_set = true;
        fc.cpu_pct = odd[i].pct;
        node_put(f->s, id, NOW, fc);
        cpu_boundary(f->s, id, rule_free(odd[i].cap, odd[i].pct, 0, 0));
    }

    /* Memory follows the same rule: 4096 MB at 50 % busy, 2048 free. */
    store_node_caps m = caps_of(4000, 4096, 0);
    m.mem_pct_set = true;
    m.mem_pct = 50;
    node_put(f->s, "mem", NOW, m);
    assert_int_equal(place_new(f->s, "mem", 1, 2049), STORE_NO_ROOM);
    assert_int_equal(place_new(f->s, "mem", 1, 2048), STORE_PLACED);
    assert_int_equal(place_new(f->s, "mem", 1, 1), STORE_NO_ROOM);
    node_put(f->s, "mem", NOW, m);
    assert_int_equal(place_new(f->s, "mem", 1, 2049), STORE_NO_ROOM);
    assert_int_equal(place_new(f->s, "mem", 1, 2048), STORE_PLACED);
}

/* The same changes applied to the store and to cluster.c's table (reports
 * through cluster_report, placements the store accepted through
 * cluster_restore, which counts them as made after the last usage figure,
 * as a fresh placement is): every store_place must agree with the table's
 * free capacity, and the store's exact boundary must be the table's. */
typedef struct twin {
    store *s;
    cluster *c;
    int jobs;
} twin;

static void twin_report(twin *t, const char *node, int64_t cpu, int64_t mem, int32_t gpus, bool cs,
                        double cp, bool ms, double mp)
{
    store_node_caps c = {cpu, mem, gpus, cs, ms, cp, mp, false};
    node_put(t->s, node, NOW, c);
    node_report r;
    node_report_init(&r);
    cs_error err = {0};
    assert_int_equal(node_report_add_virt(&r, "container", &err), 0);
    assert_int_equal(node_report_set_vcpus(&r, (double)cpu / 1000.0, &err), 0);
    assert_int_equal(node_report_set_memory(&r, (double)mem, &err), 0);
    assert_int_equal(node_report_set_gpus(&r, gpus, &err), 0);
    if (cs)
        assert_int_equal(node_report_set_cpu_percent(&r, cp, &err), 0);
    if (ms)
        assert_int_equal(node_report_set_memory_percent(&r, mp, &err), 0);
    int rc = cluster_report(t->c, node, &r, NOW, &err);
    node_report_clear(&r);
    if (rc < 0)
        fail_msg("cluster_report: %s: %s", err.field, err.msg);
}

static node_view twin_view(twin *t, const char *node)
{
    node_view v;
    assert_int_equal(cluster_get(t->c, node, NOW, &v), 0);
    return v;
}

/* Tries a placement on both; returns the job id placed (kept in job), or
 * fails when the store and the table disagree. */
static bool twin_place(twin *t, const char *node, int64_t cpu, int64_t mem, int32_t gpus,
                       char job[32])
{
    node_view v = twin_view(t, node);
    bool want = cpu <= v.free_cpu_milli && mem <= v.free_memory_mb && gpus <= v.free_gpus;
    snprintf(job, 32, "t%d", ++t->jobs);
    assert_int_equal(store_enqueue(t->s, job, 0, "{}", NOW), 0);
    reservation_view r = res_of(job, 0, node, cpu, mem, gpus);
    int64_t id;
    char held[CS_ID_MAX + 1];
    int rc = store_place(t->s, job, 0, &r, "{}", NOW, TTL, &id, held);
    if (rc != (want ? STORE_PLACED : STORE_NO_ROOM))
        fail_msg("%s: place %" PRId64 " milli, %" PRId64 " MB, %" PRId32 " gpus: store says %d, "
                 "cluster.c has free %" PRId64 " milli, %" PRId64 " MB, %" PRId32 " gpus",
                 node, cpu, mem, gpus, rc, v.free_cpu_milli, v.free_memory_mb, v.free_gpus);
    if (rc == STORE_PLACED) {
        cs_error err = {0};
        assert_int_equal(cluster_restore(t->c, &r, &err), 0);
        return true;
    }
    assert_int_equal(store_job_delete(t->s, job, 0), 0);
    return false;
}

static void twin_release(twin *t, const char *job)
{
    assert_int_equal(store_job_delete(t->s, job, 0), 0);
    assert_int_equal(cluster_release(t->c, job, 0), 0);
}

/* The exact boundary of each resource, probed with nothing of the others. */
static void twin_probe(twin *t, const char *node)
{
    node_view v = twin_view(t, node);
    char job[32];
    if (twin_place(t, node, v.free_cpu_milli, 0, 0, job))
        twin_release(t, job);
    twin_place(t, node, v.free_cpu_milli + 1, 0, 0, job);
    if (twin_place(t, node, 0, v.free_memory_mb, 0, job))
        twin_release(t, job);
    twin_place(t, node, 0, v.free_memory_mb + 1, 0, job);
    if (twin_place(t, node, 0, 0, v.free_gpus, job))
        twin_release(t, job);
    twin_place(t, node, 0, 0, v.free_gpus + 1, job);
}

static void test_fits_matches_cluster(void **state)
{
    fixture *f = *state;
    twin t = {.s = f->s, .c = f->c = cluster_new(TTL)};
    assert_non_null(t.c);
    const char *nodes[3] = {"c0", "c1", "c2"};
    char held[64][32];
    int nheld = 0;
    for (int i = 0; i < 3; i++)
        twin_report(&t, nodes[i], 4000, 8192, 2, i > 0, 30.0 * i, i == 2, 45.5);
    unsigned seed = 12345;
    for (int step = 0; step < 150; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned x = seed >> 8;
        const char *node = nodes[x % 3];
        unsigned op = (x / 3) % 10;
        if (op < 5) { /* a placement of some size */
            int64_t cpu = (int64_t)((x / 31) % 1700), mem = (int64_t)((x / 7) % 3000);
            int32_t gpus = (int32_t)((x / 11) % 2);
            if (nheld < 64 && twin_place(&t, node, cpu, mem, gpus, held[nheld]))
                nheld++;
        } else if (op < 7 && nheld > 0) { /* a release */
            int k = (int)((x / 13) % (unsigned)nheld);
            twin_release(&t, held[k]);
            memmove(held[k], held[k + 1], (size_t)(nheld - k - 1) * sizeof held[0]);
            nheld--;
        } else if (op < 9) { /* a report, with or without usage figures */
            bool cs = (x / 17) % 2, ms = (x / 19) % 2;
            twin_report(&t, node, 4000, 8192, 2, cs, (double)((x / 23) % 1000) / 10.0, ms,
                        (double)((x / 29) % 1000) / 10.0);
        } else {
            twin_probe(&t, node);
        }
    }
    for (int i = 0; i < 3; i++)
        twin_probe(&t, nodes[i]);
}

/* A node whose capacity shrank below what is reserved on it has no room
 * left, and cluster.c says so as 0 free (not a negative figure): a request
 * of 0 of that resource still fits there. */
static void test_fits_overcommitted(void **state)
{
    fixture *f = *state;
    twin t = {.s = f->s, .c = f->c = cluster_new(TTL)};
    assert_non_null(t.c);
    char job[32];
    twin_report(&t, "s", 4000, 4096, 0, false, 0, false, 0);
    assert_true(twin_place(&t, "s", 3000, 3000, 0, job));
    twin_report(&t, "s", 2000, 2000, 0, false, 0, false, 0); /* shrank */
    node_view v = twin_view(&t, "s");
    assert_int_equal(v.free_cpu_milli, 0);
    assert_int_equal(v.free_memory_mb, 0);
    assert_false(twin_place(&t, "s", 1, 0, 0, job));
    /* cluster.c: free 0 >= 0 requested, so this fits; the store must agree. */
    assert_true(twin_place(&t, "s", 0, 0, 0, job));
}

/* --- 5. requeue -------------------------------------------------------- */

static void test_requeue(void **state)
{
    fixture *f = *state;
    node_put(f->s, "n1", NOW, caps_of(1000, 1000, 0));
    node_put(f->s, "n2", NOW, caps_of(1000, 1000, 0));
    assert_int_equal(store_enqueue(f->s, "j", 0, "{\"b\":1}", NOW), 0);
    take_expect(f->s, "j", 0, 0);
    assert_int_equal(place(f->s, "j", 0, "n1", 1000, 1000, NULL, NULL), STORE_PLACED);
    assert_int_equal(store_outbox_depth(f->s), 1);
    assert_int_equal(place_new(f->s, "n1", 1, 1), STORE_NO_ROOM); /* full */

    assert_int_equal(store_requeue(f->s, "j", 0, "n2", NOW), 1);
    assert_int_equal(store_outbox_depth(f->s), 1);
    assert_int_equal(store_requeue(f->s, "j", 0, "n1", NOW), 0);
    assert_int_equal(store_outbox_depth(f->s), 0);
    assert_int_equal(res_count(f->rc), 0);
    store_status st;
    assert_int_equal(store_status_get(f->s, "j", 0, &st), 0);
    assert_int_equal(st.state, JOB_QUEUED);
    assert_string_equal(st.node_id, "");
    assert_null(st.result);
    assert_string_equal(st.body, "{\"b\":1}");
    store_status_clear(&st);
    /* Not placed on n1 any more. */
    assert_int_equal(store_requeue(f->s, "j", 0, "n1", NOW), 1);
    take_expect(f->s, "j", 0, 1);
    take_none(f->s);
    /* Its reservation is gone: the node has room again. */
    assert_int_equal(place_new(f->s, "n1", 1000, 1000), STORE_PLACED);
    /* And it can be placed again. */
    assert_int_equal(place(f->s, "j", 0, "n2", 1000, 1000, NULL, NULL), STORE_PLACED);

    /* Unknown: 1. Whatever the state (NULL): queued again; a queued one is
     * not queued twice. */
    assert_int_equal(store_requeue(f->s, "nosuch", 0, NULL, NOW), 1);
    assert_int_equal(store_enqueue(f->s, "u", 0, "{}", NOW), 0);
    take_expect(f->s, "u", 0, 0);
    assert_true(store_finish(f->s, "u", 0, JOB_UNSCHEDULABLE, NULL, "{}", NOW) > 0);
    assert_int_equal(store_requeue(f->s, "u", 0, "n1", NOW), 1);
    assert_int_equal(store_requeue(f->s, "u", 0, NULL, NOW), 0);
    assert_int_equal(store_requeue(f->s, "u", 0, NULL, NOW), 0);
    take_expect(f->s, "u", 0, 1);
    take_none(f->s);
}

/* --- 6. node delete ---------------------------------------------------- */

static void test_node_delete(void **state)
{
    fixture *f = *state;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    node_put(f->s, "n2", NOW, caps_of(4000, 4096, 0));
    int rcs[4];
    assert_int_equal(store_enqueue_many(f->s, "r", 4, "{}", NOW, rcs), 0);
    for (uint32_t i = 0; i < 4; i++)
        take_expect(f->s, "r", i, 0);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(place(f->s, "r", i, "n1", 1000, 100, NULL, NULL), STORE_PLACED);
    assert_int_equal(place(f->s, "r", 3, "n2", 1000, 100, NULL, NULL), STORE_PLACED);
    assert_int_equal(store_outbox_depth(f->s), 4);

    size_t requeued = 99;
    assert_int_equal(store_node_delete(f->s, "n1", &requeued), 0);
    assert_int_equal(requeued, 3);
    assert_int_equal(store_outbox_depth(f->s), 1);
    assert_int_equal(res_count(f->rc), 1);
    assert_int_equal(cmd_int(f->rc, "EXISTS cs:node:n1 cs:noderes:n1"), 0);
    assert_int_equal(cmd_int(f->rc, "SISMEMBER cs:nodes n1"), 0);
    for (uint32_t i = 0; i < 3; i++) {
        store_status st;
        assert_int_equal(store_status_get(f->s, "r", i, &st), 0);
        assert_int_equal(st.state, JOB_QUEUED);
        assert_string_equal(st.node_id, "");
        assert_null(st.result);
        store_status_clear(&st);
    }
    /* Each once, in no particular order. */
    unsigned seen = 0;
    for (int k = 0; k < 3; k++) {
        taken t = take_one(f->s, 2000);
        assert_string_equal(t.id, "r");
        assert_true(t.inst < 3);
        assert_false(seen & (1u << t.inst));
        seen |= 1u << t.inst;
        assert_int_equal(t.attempts, 1);
    }
    take_none(f->s);

    requeued = 99;
    assert_int_equal(store_node_delete(f->s, "n1", &requeued), 1);
    assert_int_equal(requeued, 0);
    /* The other node's placement stays. */
    store_status st;
    assert_int_equal(store_status_get(f->s, "r", 3, &st), 0);
    assert_int_equal(st.state, JOB_PLACED);
    assert_string_equal(st.node_id, "n2");
    store_status_clear(&st);
    /* The re-queued ones go elsewhere. */
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(place(f->s, "r", i, "n2", 1000, 100, NULL, NULL), STORE_PLACED);
    assert_int_equal(place_new(f->s, "n2", 1, 1), STORE_NO_ROOM);
    assert_int_equal(store_node_delete(f->s, "n2", NULL), 0);
    assert_int_equal(res_count(f->rc), 0);
}

/* --- 7. unschedulable -------------------------------------------------- */

static void test_finish_unschedulable(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_enqueue(f->s, "u", 2, "{}", NOW), 0);
    take_expect(f->s, "u", 2, 0);
    int64_t id = store_finish(f->s, "u", 2, JOB_UNSCHEDULABLE, NULL, "{\"found\":false}", NOW + 1);
    assert_true(id > 0);
    assert_int_equal(store_finish(f->s, "u", 2, JOB_UNSCHEDULABLE, NULL, "{}", NOW + 2), 0);
    assert_int_equal(store_outbox_depth(f->s), 1);
    store_status st;
    assert_int_equal(store_status_get(f->s, "u", 2, &st), 0);
    assert_int_equal(st.state, JOB_UNSCHEDULABLE);
    assert_string_equal(st.result, "{\"found\":false}");
    assert_true(st.decided_at == NOW + 1);
    store_status_clear(&st);
    /* Decided: a placement is refused, with no node. */
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    char held[CS_ID_MAX + 1] = "junk";
    assert_int_equal(place(f->s, "u", 2, "n1", 1, 1, NULL, held), STORE_DECIDED);
    assert_string_equal(held, "");
    assert_int_equal(store_enqueue(f->s, "u", 2, "{}", NOW), 1);
    take_none(f->s);
    /* Unknown: nothing written. Placements go through store_place. */
    assert_int_equal(store_finish(f->s, "nosuch", 0, JOB_UNSCHEDULABLE, NULL, "{}", NOW), 0);
    assert_int_equal(store_enqueue(f->s, "v", 0, "{}", NOW), 0);
    reservation_view r = res_of("v", 0, "n1", 1, 1, 0);
    assert_int_equal(store_finish(f->s, "v", 0, JOB_PLACED, &r, "{}", NOW), -1);
    assert_int_equal(store_outbox_depth(f->s), 1);
}

/* --- 8. the change feed ------------------------------------------------ */

typedef struct recorder {
    char log[2048];
} recorder;

static void rec(recorder *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec(recorder *r, const char *fmt, ...)
{
    size_t n = strlen(r->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->log + n, sizeof r->log - n, fmt, ap);
    va_end(ap);
}

static void on_reload(void *ud)
{
    rec(ud, "reload;");
}

static void on_reloaded(void *ud)
{
    rec(ud, "reloaded;");
}

static int on_node(void *ud, const char *id, const char *doc, double last, bool uc, bool um)
{
    (void)uc;
    (void)um;
    rec(ud, "node %s %s %.0f;", id, doc, last);
    return 0;
}

static void on_node_gone(void *ud, const char *id)
{
    rec(ud, "gone %s;", id);
}

static void on_reservation(void *ud, const reservation_view *r)
{
    rec(ud, "res %s/%" PRIu32 "@%s %" PRId64 "/%" PRId64 "/%" PRId32 ";", r->job_id, r->instance,
        r->node_id, r->cpu_milli, r->memory_mb, r->gpus);
}

static void on_release(void *ud, const char *job, uint32_t inst)
{
    rec(ud, "release %s/%" PRIu32 ";", job, inst);
}

static void on_touch(void *ud, const char *id, double last, bool uc, bool um)
{
    rec(ud, "touch %s %.0f%s%s;", id, last, uc ? " cpu" : "", um ? " mem" : "");
}

/* One store_follow call: its result, and the log it left in r. */
static int follow(store *s, recorder *r, int timeout_ms, uint64_t *seq)
{
    memset(r, 0, sizeof *r);
    store_follower fo = {on_reload,      on_reloaded, on_node,  on_node_gone,
                         on_reservation, on_release,  on_touch, r};
    return store_follow(s, &fo, timeout_ms, seq);
}

static void test_follow(void **state)
{
    fixture *f = *state;
    recorder r;
    uint64_t seq = 0;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    node_put(f->s, "n0", NOW + 1, caps_of(4000, 4096, 0));
    assert_int_equal(store_enqueue(f->s, "j1", 0, "{}", NOW), 0);
    assert_int_equal(place(f->s, "j1", 0, "n1", 1000, 100, NULL, NULL), STORE_PLACED);

    /* The first call is a snapshot; it returns the number of nodes. */
    assert_int_equal(follow(f->s, &r, 100, &seq), 2);
    assert_string_equal(r.log, "reload;"
                               "node n0 {\"id\":\"n0\"} 1001;"
                               "node n1 {\"id\":\"n1\"} 1000;"
                               "res j1/0@n1 1000/100/0;"
                               "reloaded;");
    assert_int_equal(seq, 3); /* two reports and one reservation */
    assert_int_equal(follow(f->s, &r, 0, &seq), 0);
    assert_string_equal(r.log, "");
    double t0 = mono();
    assert_int_equal(follow(f->s, &r, 100, &seq), 0);
    assert_true(mono() - t0 >= 0.09);
    assert_int_equal(seq, 3);

    /* Changes since: in order, in one call. */
    store_node_caps c = caps_of(2000, 2048, 1);
    c.cpu_pct_set = true;
    c.cpu_pct = 10;
    assert_int_equal(store_node_put(f->s, "n2", "{\"id\":\"n2\"}", NOW + 2, &c), 0);
    assert_int_equal(store_enqueue(f->s, "j2", 3, "{}", NOW), 0);
    assert_int_equal(place(f->s, "j2", 3, "n1", 500, 50, NULL, NULL), STORE_PLACED);
    assert_int_equal(store_job_delete(f->s, "j1", 0), 0);
    assert_int_equal(store_node_delete(f->s, "n2", NULL), 0);
    assert_int_equal(follow(f->s, &r, 100, &seq), 4);
    assert_string_equal(r.log, "node n2 {\"id\":\"n2\"} 1002;"
                               "res j2/3@n1 500/50/0;"
                               "release j1/0;"
                               "gone n2;");
    assert_int_equal(seq, 7);

    /* Deleting a node with a placement: the release comes before the node. */
    assert_int_equal(store_node_delete(f->s, "n1", NULL), 0);
    assert_int_equal(follow(f->s, &r, 100, &seq), 2);
    assert_string_equal(r.log, "release j2/3;gone n1;");

    /* A second follower (another process) starts with its own snapshot. */
    store *b = open_more(f, 0, g_addr, "B", 30.0);
    assert_int_equal(follow(b, &r, 100, &seq), 1);
    assert_string_equal(r.log, "reload;node n0 {\"id\":\"n0\"} 1001;reloaded;");
    assert_int_equal(seq, 9);

    /* Redis lost its data (the feed counts again from 1): a snapshot. The
     * pause puts the new feed's first entry in a later millisecond than the
     * follower's position: an entry id of the same millisecond would not be
     * past it, and the loss would show only at the change after. */
    sleep_ms(5);
    assert_true(cmd_ok(f->rc, "FLUSHALL"));
    node_put(f->s, "n3", NOW + 3, caps_of(1000, 1000, 0));
    assert_int_equal(follow(f->s, &r, 100, &seq), 1);
    assert_string_equal(r.log, "reload;node n3 {\"id\":\"n3\"} 1003;reloaded;");
    assert_int_equal(seq, 1);
    node_put(f->s, "n3", NOW + 4, caps_of(1000, 1000, 0));
    assert_int_equal(follow(f->s, &r, 100, &seq), 1);
    assert_string_equal(r.log, "node n3 {\"id\":\"n3\"} 1004;");
    assert_int_equal(seq, 2);
}

/* A report that repeated the stored document is stored and fed as its
 * time and usage flags alone; one for a node that is gone, or whose
 * stored document is another, is put in full. */
static void test_node_touch(void **state)
{
    fixture *f = *state;
    recorder r;
    uint64_t seq = 0;
    store_node_caps c = caps_of(4000, 4096, 0);
    c.cpu_pct_set = true;
    c.cpu_pct = 10;
    assert_int_equal(store_node_put(f->s, "n1", "{\"id\":\"n1\"}", NOW, &c), 0);
    assert_int_equal(follow(f->s, &r, 100, &seq), 1); /* the snapshot */
    assert_int_equal(store_enqueue(f->s, "t", 0, "{}", NOW), 0);
    assert_int_equal(place(f->s, "t", 0, "n1", 1000, 100, NULL, NULL), STORE_PLACED);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "after_cpu"), 1000);

    c.doc_unchanged = true;
    assert_int_equal(store_node_put(f->s, "n1", "{\"id\":\"n1\"}", NOW + 5, &c), 0);
    assert_int_equal(follow(f->s, &r, 100, &seq), 2);
    assert_string_equal(r.log, "res t/0@n1 1000/100/0;touch n1 1005 cpu;");
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "last"), (long long)NOW + 5);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "cpu_seq"), 2);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "after_cpu"), 0);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "res_cpu"), 1000);
    /* An older time does not move the node back; no figures, no restart. */
    c.cpu_pct_set = false;
    assert_int_equal(store_node_put(f->s, "n1", "{\"id\":\"n1\"}", NOW + 1, &c), 0);
    assert_int_equal(follow(f->s, &r, 100, &seq), 1);
    assert_string_equal(r.log, "touch n1 1005;");
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "cpu_seq"), 2);
    /* Gone meanwhile: put in full. */
    assert_int_equal(store_node_put(f->s, "n9", "{\"id\":\"n9\"}", NOW + 6, &c), 0);
    assert_int_equal(follow(f->s, &r, 100, &seq), 1);
    assert_string_equal(r.log, "node n9 {\"id\":\"n9\"} 1006;");
    /* Another document stored meanwhile (another API process): in full. */
    assert_int_equal(cmd_int(f->rc, "HSET cs:node:n1 doc %s", "{\"id\":\"n1\",\"x\":1}"), 0);
    assert_int_equal(store_node_put(f->s, "n1", "{\"id\":\"n1\"}", NOW + 8, &c), 0);
    assert_int_equal(follow(f->s, &r, 100, &seq), 1);
    assert_string_equal(r.log, "node n1 {\"id\":\"n1\"} 1008;");
}

/* Appends a raw change-feed entry of type "r" with the next seq: packed
 * (one field d) when fields is NULL, else the old form (space-separated
 * field/value pairs). */
static void raw_res_event(redisContext *c, const char *fields, const char *packed)
{
    redisReply *r = redisCommand(c, "INCR cs:ev:seq");
    assert_non_null(r);
    long long seq = r->integer;
    freeReplyObject(r);
    if (fields) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "XADD cs:events * t r seq %lld %s", seq, fields);
        r = redisCommand(c, cmd);
    } else {
        r = redisCommand(c, "XADD cs:events * t r seq %lld d %s", seq, packed);
    }
    assert_true(r && r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);
}

/* A reservation event packs its values in one field; the form of earlier
 * versions (one field each) still reads, and a packed value with too few,
 * too many or empty values is skipped, not half applied. */
static void test_follow_event_forms(void **state)
{
    fixture *f = *state;
    recorder r;
    uint64_t seq = 0;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    assert_int_equal(follow(f->s, &r, 100, &seq), 1); /* the snapshot */
    raw_res_event(f->rc, "job jA inst 2 node n1 cpu 100 mem 10 gpu 0 at 1000", NULL);
    raw_res_event(f->rc, NULL, "jB 0 n1 200 20 1 1000");
    raw_res_event(f->rc, NULL, "jC 0 n1 200 20");
    raw_res_event(f->rc, NULL, "jD 0 n1 200 20 0 1000 9");
    raw_res_event(f->rc, NULL, "jE  0 n1 200 20 0 1000");
    raw_res_event(f->rc, NULL, "jF 1 n1 300 30 0 1000");
    follow(f->s, &r, 100, &seq);
    assert_string_equal(r.log, "res jA/2@n1 100/10/0;"
                               "res jB/0@n1 200/20/1;"
                               "res jF/1@n1 300/30/0;");
}

/* --- 9. outbox --------------------------------------------------------- */

static void test_outbox(void **state)
{
    fixture *f = *state;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    assert_int_equal(store_enqueue(f->s, "o", 0, "{}", NOW), 0);
    int64_t id = 0;
    assert_int_equal(place(f->s, "o", 0, "n1", 1, 1, &id, NULL), STORE_PLACED);
    assert_true(id > 0);
    outbox_item it[4];
    /* Due once the result lease (0.2 s after the decision) has passed. */
    assert_int_equal(store_outbox_due(f->s, NOW, it, 4), 0);
    assert_int_equal(store_outbox_due(f->s, NOW + LEASE / 2, it, 4), 0);
    assert_int_equal(store_outbox_due(f->s, NOW + 0.25, it, 4), 1);
    assert_int_equal(it[0].id, id);
    assert_string_equal(it[0].job_id, "o");
    assert_int_equal(it[0].instance, 0);
    assert_string_equal(it[0].payload, "{\"job\":\"o\",\"node\":\"n1\"}");
    assert_int_equal(it[0].attempts, 0);
    assert_true(it[0].created_at == NOW);
    assert_true(fabs(it[0].next_at - (NOW + LEASE)) < 1e-9);
    outbox_item_clear(&it[0]);
    /* Leased to whoever got it: not due again until the lease ends. */
    assert_int_equal(store_outbox_due(f->s, NOW + 0.25, it, 4), 0);
    assert_int_equal(store_outbox_due(f->s, NOW + 0.4, it, 4), 0);
    assert_int_equal(store_outbox_due(f->s, NOW + 0.5, it, 4), 1);
    outbox_item_clear(&it[0]);
    assert_int_equal(store_outbox_depth(f->s), 1);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = id, .job_id = "o", .instance = 0}),
                     0);
    assert_int_equal(store_outbox_depth(f->s), 0);
    assert_int_equal(store_outbox_due(f->s, NOW + 100, it, 4), 0);
    assert_int_equal(cmd_int(f->rc, "ZCARD cs:outbox:due"), 0);
    assert_int_equal(cmd_int(f->rc, "HEXISTS cs:job:0:o out"), 0);
    assert_int_equal(store_outbox_done(f->s, &(outbox_key){.id = id, .job_id = "o", .instance = 0}),
                     0); /* twice: harmless */

    /* Retry: due at the given time, with its attempts. */
    assert_int_equal(store_enqueue(f->s, "o", 1, "{}", NOW), 0);
    int64_t id2 = store_finish(f->s, "o", 1, JOB_UNSCHEDULABLE, NULL, "{\"found\":false}", NOW);
    assert_true(id2 > id);
    assert_int_equal(store_outbox_due(f->s, NOW + 0.3, it, 4), 1);
    assert_int_equal(it[0].id, id2);
    outbox_item_clear(&it[0]);
    assert_int_equal(store_outbox_retry(
                         f->s, &(outbox_key){.id = id2, .job_id = "o", .instance = 1}, 3, NOW + 10),
                     0);
    assert_int_equal(store_outbox_due(f->s, NOW + 9.9, it, 4), 0);
    assert_int_equal(store_outbox_due(f->s, NOW + 10, it, 4), 1);
    assert_int_equal(it[0].id, id2);
    assert_int_equal(it[0].attempts, 3);
    assert_true(it[0].next_at == NOW + 10);
    assert_string_equal(it[0].payload, "{\"found\":false}");
    outbox_item_clear(&it[0]);
    assert_int_equal(
        store_outbox_give_up(f->s, &(outbox_key){.id = id2, .job_id = "o", .instance = 1}), 0);
    assert_int_equal(store_outbox_depth(f->s), 0);

    /* Oldest first, at most max. */
    int64_t ids[3];
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(store_enqueue(f->s, "q", i, "{}", NOW), 0);
        ids[i] = store_finish(f->s, "q", i, JOB_UNSCHEDULABLE, NULL, "{}", NOW + i);
        assert_true(ids[i] > 0);
    }
    assert_int_equal(store_outbox_due(f->s, NOW + 5, it, 2), 2);
    assert_int_equal(it[0].id, ids[0]);
    assert_int_equal(it[1].id, ids[1]);
    outbox_item_clear(&it[0]);
    outbox_item_clear(&it[1]);
    assert_int_equal(store_outbox_due(f->s, NOW + 5, it, 2), 1);
    assert_int_equal(it[0].id, ids[2]);
    outbox_item_clear(&it[0]);
}

/* Two processes deliver results of one instance in decision order: a
 * result re-scheduled away while one held it is stale, and a newer result
 * waits while an older one is being sent (until done, retried, or its
 * lease ends: the holder died). */
static void test_outbox_claim(void **state)
{
    fixture *f = *state;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    store *a = open_more(f, 0, g_addr, "wa", 30.0);
    store *b = open_more(f, 1, g_addr, "wb", 30.0);
    assert_int_equal(store_enqueue(f->s, "cl", 0, "{}", NOW), 0);
    int64_t x = 0, y = 0, z = 0;
    assert_int_equal(place(a, "cl", 0, "n1", 1, 1, &x, NULL), STORE_PLACED);
    assert_int_equal(claim1(a, x, "cl", 0, 30.0), STORE_CLAIMED);
    assert_int_equal(claim1(a, x, "cl", 0, 30.0), STORE_CLAIMED);
    assert_int_equal(claim1(b, x, "cl", 1, 30.0), STORE_CLAIM_STALE);
    assert_int_equal(store_requeue(f->s, "cl", 0, NULL, NOW), 0);
    assert_int_equal(claim1(a, x, "cl", 0, 30.0), STORE_CLAIM_STALE);
    assert_int_equal(place(b, "cl", 0, "n1", 1, 1, &y, NULL), STORE_PLACED);
    assert_true(y > x);
    assert_int_equal(claim1(b, y, "cl", 0, 30.0), STORE_CLAIM_BUSY);
    assert_int_equal(store_outbox_done(a, &(outbox_key){.id = x, .job_id = "cl", .instance = 0}),
                     0); /* x's send ended */
    /* The claim is released, and y, the current entry, is left alone. */
    assert_int_equal(cmd_int(f->rc, "HEXISTS cs:job:0:cl cl"), 0);
    assert_int_equal(hget_ll(f->rc, "cs:job:0:cl", "out"), y);
    assert_int_equal(cmd_int(f->rc, "EVAL %s 0",
                             "return redis.call('ZSCORE', 'cs:outbox:due', '0:cl') and 1 or 0"),
                     1);
    assert_int_equal(claim1(b, y, "cl", 0, 0.2), STORE_CLAIMED);
    assert_int_equal(
        store_outbox_retry(b, &(outbox_key){.id = y, .job_id = "cl", .instance = 0}, 1, NOW + 5),
        0);
    assert_int_equal(claim1(a, y, "cl", 0, 0.2), STORE_CLAIMED);
    /* a dies holding y; a newer result waits out the lease. */
    assert_int_equal(store_requeue(f->s, "cl", 0, NULL, NOW), 0);
    assert_int_equal(place(b, "cl", 0, "n1", 1, 1, &z, NULL), STORE_PLACED);
    /* z waits for a; y, a's own, is stale. */
    outbox_item two[2] = {{.id = z, .instance = 0}, {.id = y, .instance = 0}};
    snprintf(two[0].job_id, sizeof two[0].job_id, "cl");
    snprintf(two[1].job_id, sizeof two[1].job_id, "cl");
    int rcs[2];
    assert_int_equal(store_outbox_claim(b, two, 2, 30.0, rcs), 0);
    assert_int_equal(rcs[0], STORE_CLAIM_BUSY);
    assert_int_equal(rcs[1], STORE_CLAIM_STALE);
    sleep_ms(300);
    assert_int_equal(claim1(b, z, "cl", 0, 30.0), STORE_CLAIMED);
    assert_int_equal(store_outbox_done(b, &(outbox_key){.id = z, .job_id = "cl", .instance = 0}),
                     0);
    assert_int_equal(claim1(b, z, "cl", 0, 30.0), STORE_CLAIM_STALE);
    assert_int_equal(cmd_int(f->rc, "HEXISTS cs:job:0:cl cl"), 0);
    /* Deleted: stale. */
    assert_int_equal(store_enqueue(f->s, "cl", 1, "{}", NOW), 0);
    int64_t w = store_finish(a, "cl", 1, JOB_UNSCHEDULABLE, NULL, "{}", NOW);
    assert_true(w > 0);
    assert_int_equal(store_job_delete(f->s, "cl", 1), 0);
    assert_int_equal(claim1(a, w, "cl", 1, 30.0), STORE_CLAIM_STALE);

    /* Deleted while its result is being sent, and submitted again: the
     * new instance is a job like any other (the claim left behind does
     * not make it a duplicate, nor expire it), and its result waits until
     * the old send ends. */
    assert_int_equal(store_enqueue(f->s, "cl", 2, "{}", NOW), 0);
    int64_t u = 0, v = 0;
    assert_int_equal(place(a, "cl", 2, "n1", 1, 1, &u, NULL), STORE_PLACED);
    assert_int_equal(claim1(a, u, "cl", 2, 30.0), STORE_CLAIMED);
    assert_int_equal(store_job_delete(f->s, "cl", 2), 0);
    assert_int_equal(store_job_delete(f->s, "cl", 2), 1); /* gone */
    store_status st;
    assert_int_equal(store_status_get(f->s, "cl", 2, &st), 1);
    assert_int_equal(store_enqueue(f->s, "cl", 2, "{}", NOW), 0);
    assert_int_equal(store_enqueue(f->s, "cl", 2, "{}", NOW), 1); /* now a duplicate */
    assert_int_equal(cmd_int(f->rc, "PTTL cs:job:2:cl"), -1);
    assert_int_equal(place(b, "cl", 2, "n1", 1, 1, &v, NULL), STORE_PLACED);
    assert_int_equal(claim1(b, v, "cl", 2, 30.0), STORE_CLAIM_BUSY);
    assert_int_equal(store_outbox_done(a, &(outbox_key){.id = u, .job_id = "cl", .instance = 2}),
                     0);
    assert_int_equal(claim1(b, v, "cl", 2, 30.0), STORE_CLAIMED);
    assert_int_equal(store_outbox_done(b, &(outbox_key){.id = v, .job_id = "cl", .instance = 2}),
                     0);
    assert_int_equal(cmd_int(f->rc, "EVAL %s 0",
                             "return redis.call('ZSCORE', 'cs:outbox:due', '2:cl') and 1 or 0"),
                     0);
    assert_int_equal(cmd_int(f->rc, "HEXISTS cs:job:2:cl cl"), 0);
    assert_int_equal(cmd_int(f->rc, "HEXISTS cs:job:2:cl out"), 0);

    /* A retry of a result dropped while being sent releases the claim and
     * does not bring the result back. */
    assert_int_equal(store_requeue(f->s, "cl", 2, NULL, NOW), 0);
    int64_t q = 0;
    assert_int_equal(place(a, "cl", 2, "n1", 1, 1, &q, NULL), STORE_PLACED);
    assert_int_equal(claim1(a, q, "cl", 2, 30.0), STORE_CLAIMED);
    assert_int_equal(store_requeue(f->s, "cl", 2, NULL, NOW), 0);
    assert_int_equal(
        store_outbox_retry(a, &(outbox_key){.id = q, .job_id = "cl", .instance = 2}, 1, NOW), 0);
    assert_int_equal(cmd_int(f->rc, "EVAL %s 0",
                             "return redis.call('ZSCORE', 'cs:outbox:due', '2:cl') and 1 or 0"),
                     0);
    assert_int_equal(cmd_int(f->rc, "HEXISTS cs:job:2:cl out"), 0);
    assert_int_equal(cmd_int(f->rc, "HEXISTS cs:job:2:cl cl"), 0);
}

/* A store written before layout 2 (reservations as hashes of their own):
 * opening it moves them into their job hashes, and releases one whose
 * job is gone. */
static void test_migrate_layout(void **state)
{
    fixture *f = *state;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    assert_int_equal(store_enqueue(f->s, "mg", 0, "{}", NOW), 0);
    take_expect(f->s, "mg", 0, 0);
    assert_int_equal(place(f->s, "mg", 0, "n1", 1000, 100, NULL, NULL), STORE_PLACED);
    /* As an older version left it, with a second reservation of a job
     * that is gone. */
    assert_int_equal(cmd_int(f->rc, "HDEL cs:job:0:mg res"), 1);
    assert_int_equal(cmd_int(f->rc, "HSET cs:res:0:mg job mg inst 0 node n1 cpu 1000 mem 100 gpu "
                                    "0 at 1 cseq 0 mseq 0"),
                     9);
    assert_int_equal(cmd_int(f->rc, "HSET cs:res:0:gone job gone inst 0 node n1 cpu 500 mem 50 gpu "
                                    "0 at 1 cseq 0 mseq 0"),
                     9);
    assert_int_equal(cmd_int(f->rc, "SADD cs:noderes:n1 0:gone"), 1);
    assert_int_equal(cmd_int(f->rc, "HINCRBY cs:node:n1 res_cpu 500"), 1500);
    assert_int_equal(cmd_int(f->rc, "HINCRBY cs:node:n1 res_mem 50"), 150);
    long long after_cpu = hget_ll(f->rc, "cs:node:n1", "after_cpu");
    assert_int_equal(cmd_int(f->rc, "HINCRBY cs:node:n1 after_cpu 500"), after_cpu + 500);
    /* The set of every reservation versions before session 8 kept, and
     * more old hashes than one SCAN batch, of jobs that are gone, on a
     * node that is gone too. */
    assert_int_equal(cmd_int(f->rc, "SADD cs:res:all 0:mg 0:gone"), 2);
    for (int i = 0; i < 2500; i++)
        assert_int_equal(cmd_int(f->rc,
                                 "HSET cs:res:%d:old job old inst %d node nx cpu 1 mem 1 "
                                 "gpu 0 at 1 cseq 0 mseq 0",
                                 i, i),
                         9);
    assert_int_equal(cmd_int(f->rc, "DEL cs:layout"), 1);

    store *b = open_more(f, 0, g_addr, "mg", 30.0);
    assert_non_null(b);
    assert_int_equal(cmd_int(f->rc, "EVAL %s 0", "return #redis.call('KEYS', 'cs:res:*')"), 0);
    assert_int_equal(res_count(f->rc), 1);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "res_cpu"), 1000);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "res_mem"), 100);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "after_cpu"), after_cpu);
    assert_int_equal(cmd_int(f->rc, "SISMEMBER cs:noderes:n1 0:gone"), 0);
    assert_int_equal(cmd_int(f->rc, "EXISTS cs:res:all"), 0);
    assert_int_equal(cmd_int(f->rc, "EVAL %s 0", "return tonumber(redis.call('GET', 'cs:layout'))"),
                     3);
    /* Released as any other. */
    assert_int_equal(store_requeue(b, "mg", 0, NULL, NOW), 0);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "res_cpu"), 0);
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "res_mem"), 0);
    assert_int_equal(res_count(f->rc), 0);
}

/* A store written before layout 3 (an outbox entry as a hash of its own,
 * its id the member of outbox:due): opening it moves the current entries
 * into their job hashes, with their attempts and due times, and drops
 * entries no instance points at. */
static void test_migrate_outbox(void **state)
{
    fixture *f = *state;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    assert_int_equal(store_enqueue(f->s, "mo", 0, "{}", NOW), 0);
    int64_t id = 0;
    assert_int_equal(place(f->s, "mo", 0, "n1", 1, 1, &id, NULL), STORE_PLACED);
    /* As layout 2 left it, with 2 attempts made, plus an entry that was
     * replaced and one dropped while being sent. */
    assert_int_equal(cmd_int(f->rc, "HDEL cs:job:0:mo oa oc on"), 3);
    assert_int_equal(cmd_int(f->rc, "ZREM cs:outbox:due 0:mo"), 1);
    assert_int_equal(cmd_int(f->rc,
                             "HSET cs:outbox:%lld job mo inst 0 attempts 2 created %f next %f",
                             (long long)id, NOW, NOW + 7),
                     5);
    assert_int_equal(cmd_int(f->rc, "ZADD cs:outbox:due %f %lld", NOW + 7, (long long)id), 1);
    assert_int_equal(cmd_int(f->rc, "HSET cs:outbox:%lld job mo inst 0 attempts 0 created 1 next 1",
                             (long long)id + 100),
                     5);
    assert_int_equal(cmd_int(f->rc, "ZADD cs:outbox:due 1 %lld", (long long)id + 100), 1);
    assert_int_equal(cmd_int(f->rc,
                             "HSET cs:outbox:%lld job mo inst 0 attempts 0 created 1 next "
                             "1 dropped 1",
                             (long long)id + 101),
                     6);
    assert_int_equal(cmd_int(f->rc, "ZADD cs:outbox:due 1 %lld", (long long)id + 101), 1);
    assert_true(cmd_ok(f->rc, "SET cs:layout 2"));

    store *b = open_more(f, 0, g_addr, "mo", 30.0);
    assert_non_null(b);
    assert_int_equal(store_outbox_depth(b), 1);
    assert_int_equal(cmd_int(f->rc, "EXISTS cs:outbox:%lld cs:outbox:%lld cs:outbox:%lld",
                             (long long)id, (long long)id + 100, (long long)id + 101),
                     0);
    outbox_item it[4];
    assert_int_equal(store_outbox_due(b, NOW + 6.9, it, 4), 0);
    assert_int_equal(store_outbox_due(b, NOW + 7, it, 4), 1);
    assert_int_equal(it[0].id, id);
    assert_string_equal(it[0].job_id, "mo");
    assert_int_equal(it[0].instance, 0);
    assert_int_equal(it[0].attempts, 2);
    assert_true(it[0].created_at == NOW);
    outbox_key k = outbox_key_of(&it[0]);
    outbox_item_clear(&it[0]);
    assert_int_equal(store_outbox_done(b, &k), 0);
    assert_int_equal(store_outbox_depth(b), 0);
    assert_int_equal(cmd_int(f->rc, "EVAL %s 0", "return tonumber(redis.call('GET', 'cs:layout'))"),
                     3);
}

#define MT_JOBS 400
#define MT_THREADS 6

typedef struct mt_take {
    store *s;
    atomic_int *seen;
} mt_take;

static void *mt_taker(void *arg)
{
    mt_take *t = arg;
    store_job j;
    while (store_take(t->s, &j, 300) == 0) {
        if (strcmp(j.job_id, "mt") == 0 && j.instance < MT_JOBS)
            atomic_fetch_add(&t->seen[j.instance], 1);
        store_job_clear(&j);
        sleep_ms(1); /* deciding: the takes of the threads interleave as in a worker */
    }
    return NULL;
}

/* Several threads of one process take at once: each queued instance is
 * handed out exactly once, at once (none is dropped between a read and
 * its take, to come back only after CLAIM_IDLE). */
static void test_take_threads(void **state)
{
    fixture *f = *state;
    int rcs[MT_JOBS];
    assert_int_equal(store_enqueue_many(f->s, "mt", MT_JOBS, "{}", NOW, rcs), 0);
    atomic_int seen[MT_JOBS];
    for (int i = 0; i < MT_JOBS; i++)
        atomic_init(&seen[i], 0);
    mt_take t = {f->s, seen};
    pthread_t th[MT_THREADS];
    for (int i = 0; i < MT_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, mt_taker, &t), 0);
    for (int i = 0; i < MT_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < MT_JOBS; i++)
        if (atomic_load(&seen[i]) != 1)
            fail_msg("instance %d handed out %d times", i, atomic_load(&seen[i]));
}

/* --- 10. at least once ------------------------------------------------- */

static void test_at_least_once(void **state)
{
    fixture *f = *state;
    node_put(f->s, "n1", NOW, caps_of(4000, 4096, 0));
    store *a = open_more(f, 0, g_addr, "wa", 0.2);
    store *b = open_more(f, 1, g_addr, "wb", 0.2);
    assert_int_equal(store_enqueue(f->s, "alo", 0, "{\"x\":1}", NOW), 0);

    taken t = take_one(a, 1000);
    assert_string_equal(t.id, "alo");
    assert_int_equal(t.attempts, 0);
    /* Not finished by A. B gets it once it was idle the claim time. */
    double t0 = mono();
    t = take_one(b, 3000);
    assert_true(mono() - t0 >= 0.15);
    assert_string_equal(t.id, "alo");
    assert_int_equal(t.inst, 0);
    assert_string_equal(t.body, "{\"x\":1}");
    assert_int_equal(t.attempts, 1);

    /* Both decide: placed at most once. */
    int64_t id = 0;
    char held[CS_ID_MAX + 1];
    assert_int_equal(place(a, "alo", 0, "n1", 1000, 100, &id, held), STORE_PLACED);
    assert_true(id > 0);
    assert_int_equal(place(b, "alo", 0, "n1", 1000, 100, &id, held), STORE_DECIDED);
    assert_string_equal(held, "n1");
    assert_int_equal(hget_ll(f->rc, "cs:node:n1", "res_cpu"), 1000);
    assert_int_equal(store_outbox_depth(f->s), 1);
    /* Acknowledged: nobody gets it again, even after the claim time. */
    sleep_ms(250);
    take_none(a);
    take_none(b);
    assert_int_equal(cmd_int(f->rc, "XLEN cs:jobs"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_place_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_zero_amounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fits_matches_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fits_overcommitted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_unschedulable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_event_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_at_least_once, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    stop_server(); /* in case the group teardown did not run */
    return failed ? 1 : 0;
}
