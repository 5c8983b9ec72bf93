/* http.h - the HTTP server (libmicrohttpd): binds BIND_ADDR:MY_PORT,
 * routes each request (router.h), checks the bearer token when
 * SCHEDULER_TOKEN is set (auth.h), collects the body up to MAX_BODY and
 * hands complete requests to one handler; answers 401/404/405/413 and
 * malformed paths itself, all with the JSON error shape. */
#ifndef CS_HTTP_H
#define CS_HTTP_H

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
} http_reply;

/* Called once per complete request, on that connection's thread; may
 * block briefly (a durable store write). body is NUL-terminated (len
 * excludes the NUL); NULL when the request had none. */
typedef void (*http_handler)(void *ud, const route_match *m, const char *body, size_t len,
                             http_reply *out);

typedef struct http_server http_server;

/* Starts listening at once. NULL with err filled (e.g. the port is taken). */
http_server *http_new(const config *cfg, cslog *log, metrics *m, http_handler handler, void *ud,
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
