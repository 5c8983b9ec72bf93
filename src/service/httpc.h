/* httpc.h - the HTTP/1.1 client of the result POSTs: plain http to one
 * host and port, a few keep-alive connections, one request in flight on
 * each, all awaited with one poll(). What the deliverers need and no more
 * (no TLS, redirects, proxies or cookies: the manager URL is host and port
 * only), so a POST costs its send and its receive and little else; with
 * libcurl each also paid a liveness check, per-transfer set-up and a
 * poll per round per connection. */
#ifndef CS_HTTPC_H
#define CS_HTTPC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct httpc httpc;

/* One POST. path: absolute and already escaped ("/api/result/j/0"). */
typedef struct httpc_req {
    const char *path;
    const char *body;
    size_t len;
    int status;   /* out: the HTTP status, 0 when no answer came */
    char err[96]; /* out: why, when status is 0 */
    double ended; /* out: when it ended, seconds since the epoch */
} httpc_req;

/* Up to conns connections to host:port (an IPv6 literal without
 * brackets). Connecting waits at most connect_timeout s, a request
 * timeout s from its start. A host name is looked up again at most once
 * a minute (the lookup itself blocks); when it has several addresses, a
 * failed connect moves the next connection on to the next one. NULL when
 * out of memory. */
httpc *httpc_new(const char *host, int port, int conns, double connect_timeout, double timeout);
void httpc_free(httpc *c);

/* Sends the n requests, up to conns at a time, and returns when every one
 * has its answer, failed or timed out, or when *abort is seen set
 * (checked at least every 100 ms; the rest then fail with "aborted"). */
void httpc_post(httpc *c, httpc_req *reqs, size_t n, const atomic_bool *abort);

/* The response parser, on its own for tests: looks at the len bytes
 * received so far on a connection. Returns the length of the first
 * complete response (interim 1xx answers are skipped), 0 when more bytes
 * are needed, -1 when it is not HTTP. *status gets the final status and
 * *close whether the server ends the connection after it. eof: the
 * server has closed, which ends a body without a length. */
long httpc_parse(const char *buf, size_t len, bool eof, int *status, bool *close);

#endif
