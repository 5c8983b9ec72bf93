/* test_httpc.c - the result POSTs' HTTP client: the response parser on
 * every framing the cluster manager may use, and the client against a
 * scripted server on 127.0.0.1 (kept-alive connections, a server that
 * closes them, timeouts, a refused port). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpc.h"

static long parse(const char *s, bool eof, int *status, bool *close)
{
    *status = -1;
    *close = false;
    return httpc_parse(s, strlen(s), eof, status, close);
}

static void test_parse_lengths(void **state)
{
    (void)state;
    int st;
    bool cl;
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_int_equal(parse(r, false, &st, &cl), (long)strlen(r));
    assert_int_equal(st, 200);
    assert_false(cl);
    /* every prefix is incomplete, never an error */
    for (size_t n = 0; n < strlen(r); n++) {
        assert_int_equal(httpc_parse(r, n, false, &st, &cl), 0);
    }
    /* bytes after the answer are not part of it */
    char two[128];
    snprintf(two, sizeof two, "%s%s", r, "HTTP/1.1 200 OK\r\n");
    assert_int_equal(parse(two, false, &st, &cl), (long)strlen(r));
    /* header names in any case, LF-only lines */
    assert_int_equal(parse("HTTP/1.1 503 No\ncontent-LENGTH:  3\n\nabc", false, &st, &cl), 39);
    assert_int_equal(st, 503);
    assert_int_equal(parse("HTTP/1.1 204 No Content\r\n\r\n", false, &st, &cl), 27);
    assert_int_equal(st, 204);
}

static void test_parse_chunked_close_interim(void **state)
{
    (void)state;
    int st;
    bool cl;
    const char *r = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "2;x=1\r\nok\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";
    assert_int_equal(parse(r, false, &st, &cl), (long)strlen(r));
    assert_int_equal(st, 201);
    for (size_t n = 0; n < strlen(r); n++)
        assert_int_equal(httpc_parse(r, n, false, &st, &cl), 0);
    /* no length: the body ends with the connection */
    const char *c = "HTTP/1.1 200 OK\r\n\r\nsome body";
    assert_int_equal(parse(c, false, &st, &cl), 0);
    assert_int_equal(parse(c, true, &st, &cl), (long)strlen(c));
    assert_true(cl);
    /* Connection: close, and HTTP/1.0 without keep-alive */
    parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false, &st, &cl);
    assert_true(cl);
    parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, &st, &cl);
    assert_true(cl);
    parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", false, &st,
          &cl);
    assert_false(cl);
    /* an interim 100 Continue is skipped */
    const char *i =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(parse(i, false, &st, &cl), (long)strlen(i));
    assert_int_equal(st, 202);
}

static void test_parse_garbage(void **state)
{
    (void)state;
    int st;
    bool cl;
    assert_int_equal(parse("SSH-2.0-OpenSSH\r\n", false, &st, &cl), -1);
    assert_int_equal(parse("HTTP/1.1 2x0 OK\r\n\r\n", false, &st, &cl), -1);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, &st, &cl), -1);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false, &st, &cl), -1);
    assert_int_equal(
        parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, &st, &cl), -1);
    assert_int_equal(parse("HTTP/1.1 101 Switching\r\n\r\n", false, &st, &cl), -1);
    assert_int_equal(parse("HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n", false, &st, &cl), -1);
    assert_int_equal(parse("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", false, &st, &cl), -1);
}

/* The parser reads only the bytes received: each case sits in a buffer of
 * exactly its length (AddressSanitizer reports any read past it). */
static void test_parse_unterminated(void **state)
{
    (void)state;
    static const char *cases[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n   \r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffff",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 12",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(cases[i]);
        char *b = malloc(n);
        assert_non_null(b);
        memcpy(b, cases[i], n);
        int st;
        bool cl;
        long r = httpc_parse(b, n, false, &st, &cl);
        assert_true(r <= 0); /* incomplete or malformed, never complete */
        free(b);
    }
}

/* ---- against a scripted server ------------------------------------------ */

typedef struct server {
    int lfd, port;
    int mode; /* 0: answer 200 and keep the connection; 1: answer with
               * Connection: close; 2: read and never answer; 3: answer as
               * if keeping the connection, then close it (an idle
               * keep-alive connection the server dropped) */
    int requests, connections;
    char last_req[512];
    pthread_t th;
    pthread_mutex_t mu;
} server;

/* Reads one request (head and Content-Length body); false at the end. */
static bool read_request(int fd, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            return false;
        n += (size_t)r;
        out[n] = 0;
        char *end = strstr(out, "\r\n\r\n");
        char *cl = strstr(out, "Content-Length: ");
        if (end && cl && n >= (size_t)(end + 4 - out) + (size_t)atol(cl + 16))
            return true;
        if (n + 1 >= cap)
            return false;
    }
}

static void *serve(void *arg)
{
    server *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_mutex_lock(&s->mu);
        s->connections++;
        pthread_mutex_unlock(&s->mu);
        char req[4096];
        while (read_request(fd, req, sizeof req)) {
            pthread_mutex_lock(&s->mu);
            s->requests++;
            size_t rl = strlen(req);
            if (rl >= sizeof s->last_req)
                rl = sizeof s->last_req - 1;
            memcpy(s->last_req, req, rl);
            s->last_req[rl] = 0;
            pthread_mutex_unlock(&s->mu);
            if (s->mode == 2)
                continue;
            const char *a =
                s->mode == 1 ? "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
                             : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if (send(fd, a, strlen(a), MSG_NOSIGNAL) < 0 || s->mode == 1 || s->mode == 3)
                break;
        }
        close(fd);
    }
}

static void server_start(server *s, int mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void server_stop(server *s)
{
    shutdown(s->lfd, SHUT_RDWR);
    close(s->lfd);
    pthread_join(s->th, NULL);
    pthread_mutex_destroy(&s->mu);
}

static void post_n(httpc *c, int n, httpc_req *rq)
{
    static atomic_bool no_abort = false;
    for (int i = 0; i < n; i++)
        rq[i] = (httpc_req){.path = "/api/result/j%2F1/0", .body = "{\"a\":1}", .len = 7};
    httpc_post(c, rq, (size_t)n, &no_abort);
}

static void test_keep_alive(void **state)
{
    (void)state;
    server s;
    server_start(&s, 0);
    httpc *c = httpc_new("127.0.0.1", s.port, 1, 2.0, 2.0);
    assert_non_null(c);
    httpc_req rq[5];
    post_n(c, 5, rq);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rq[i].status, 200);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.requests, 5);
    assert_int_equal(s.connections, 1); /* one connection, kept alive */
    assert_non_null(strstr(s.last_req, "POST /api/result/j%2F1/0 HTTP/1.1\r\n"));
    assert_non_null(strstr(s.last_req, "Host: 127.0.0.1:"));
    assert_non_null(strstr(s.last_req, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(s.last_req, "\r\n\r\n{\"a\":1}"));
    pthread_mutex_unlock(&s.mu);
    httpc_free(c);
    server_stop(&s);
}

static void test_server_closes(void **state)
{
    (void)state;
    server s;
    server_start(&s, 1);
    httpc *c = httpc_new("127.0.0.1", s.port, 2, 2.0, 2.0);
    httpc_req rq[6];
    post_n(c, 6, rq);
    for (int i = 0; i < 6; i++)
        assert_int_equal(rq[i].status, 200);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.requests, 6);
    assert_int_equal(s.connections, 6); /* Connection: close is honoured */
    pthread_mutex_unlock(&s.mu);
    httpc_free(c);
    server_stop(&s);
}

static void test_stale_connection_resent(void **state)
{
    (void)state;
    server s;
    server_start(&s, 3);
    httpc *c = httpc_new("127.0.0.1", s.port, 1, 2.0, 2.0);
    httpc_req rq[4];
    for (int round = 0; round < 3; round++) {
        post_n(c, 4, rq);
        for (int i = 0; i < 4; i++)
            assert_int_equal(rq[i].status, 200);
    }
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.requests, 12); /* each answered once */
    pthread_mutex_unlock(&s.mu);
    httpc_free(c);
    server_stop(&s);
}

static void test_timeout_and_refused(void **state)
{
    (void)state;
    server s;
    server_start(&s, 2);
    httpc *c = httpc_new("127.0.0.1", s.port, 2, 1.0, 0.3);
    httpc_req rq[2];
    post_n(c, 2, rq);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rq[i].status, 0);
        assert_string_equal(rq[i].err, "timed out");
    }
    httpc_free(c);
    int port = s.port;
    server_stop(&s);
    /* nobody listens there any more */
    c = httpc_new("127.0.0.1", port, 1, 1.0, 1.0);
    post_n(c, 1, rq);
    assert_int_equal(rq[0].status, 0);
    assert_non_null(strstr(rq[0].err, "connect"));
    httpc_free(c);
}

static void test_abort(void **state)
{
    (void)state;
    server s;
    server_start(&s, 2);
    httpc *c = httpc_new("127.0.0.1", s.port, 1, 1.0, 30.0);
    atomic_bool stop = true;
    httpc_req rq[3];
    for (int i = 0; i < 3; i++)
        rq[i] = (httpc_req){.path = "/x", .body = "", .len = 0};
    httpc_post(c, rq, 3, &stop); /* returns at once, nothing sent */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rq[i].status, 0);
        assert_string_equal(rq[i].err, "aborted");
        assert_true(rq[i].ended > 0);
    }
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.connections, 0);
    pthread_mutex_unlock(&s.mu);
    httpc_free(c);
    server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lengths),
        cmocka_unit_test(test_parse_chunked_close_interim),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_parse_unterminated),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_server_closes),
        cmocka_unit_test(test_stale_connection_resent),
        cmocka_unit_test(test_timeout_and_refused),
        cmocka_unit_test(test_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
