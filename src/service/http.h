/* http.h - the HTTP server (libmicrohttpd): binds BIND_ADDR:MY_PORT,
 * routes each request (router.h), checks the bearer token when
 * SCHEDULER_TOKEN is set (auth.h), collects the body up to MAX_BODY and
 * hands complete requests to one handler; answers 401/404/405/413 and
 * malformed paths itself, all with the JSON error shape. */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "router.h"

/* What a handler answers. body is malloc'ed and owned by the reply (the
 * server frees it); content_type and allow are static strings. */
typedef struct http_reply {
    int status;
    const char *content_type;
    char *body;
    size_t len;
    const char *allow;
    const char *www_authenticate; /* the WWW-Authenticate header of a 401 */
    bool close;                   /* end the connection after this answer */
} http_reply;

/* Called once per complete request that fast passed, on a handler
 * thread; may block briefly (a durable store write). body is NUL-terminated (len
 * excludes the NUL); NULL when the request had none. */
typedef void (*http_handler)(void *ud, const route_match *m, const char *body, size_t len,
                             http_reply *out);

/* A request whose answer a handler gives later (http_fast_handler). */
typedef struct http_call http_call;
typedef enum http_fast_rc {
    HTTP_FAST_PASS = 0, /* not taken: the http_handler runs, on a handler thread */
    HTTP_FAST_ANSWERED, /* out is the answer */
    HTTP_FAST_PENDING,  /* http_call_answer follows, exactly once, from any thread */
} http_fast_rc;
/* Runs on the event thread for every complete request and must not block:
 * it takes the requests that can be answered without waiting (or whose
 * wait is a callback, such as an asynchronous store write). The call, the
 * match and the body stay valid until the call is answered. */
typedef http_fast_rc (*http_fast_handler)(void *ud, http_call *call, const route_match *m,
                                          const char *body, size_t len, http_reply *out);
/* Answers a pending call, taking r's body; the connection resumes. Never
 * touch the call, its match or its body after this. */
void http_call_answer(http_call *call, http_reply *r);

typedef struct http_server http_server;

typedef struct http_handlers {
    http_handler handler;
    http_fast_handler fast;  /* NULL: passes everything */
    void (*flush)(void *ud); /* may be NULL: after each round of fast calls */
    void *ud;
} http_handlers;

/* Starts listening at once. NULL with err filled (e.g. the port is taken).
 * One event thread serves every connection. Each round it reads what every
 * ready connection sent, runs fast for each complete request, then flush
 * (so that the round's writes start together), and hands what fast passed
 * to HTTP_HANDLER_THREADS handler threads; the connection waits
 * (suspended) meanwhile. */
http_server *http_new(const config *cfg, cslog *log, metrics *m, const http_handlers *hs,
                      cs_error *err);
/* Stops accepting, lets requests in progress finish (up to a few
 * seconds), then closes every connection. Safe to call twice. */
void http_stop(http_server *h);
void http_free(http_server *h);

/* Reply helpers: json takes ownership of body (NULL = out of memory: 500). */
void http_reply_json(http_reply *r, int status, char *body);
void http_reply_text(http_reply *r, int status, const char *text);
void http_reply_error(http_reply *r, int status, const char *field, const char *message);

#endif
