/* api.h - the HTTP API's semantics (docs/API.md): one handler per route,
 * from a routed request with its body to a reply. Plugs into http.h. */
#ifndef CS_API_H
#define CS_API_H

#include <stddef.h>

#include "http.h"
#include "router.h"

struct svc_ctx;

/* An http_handler; ud is the service's svc_ctx. */
void api_handle(void *ud, const route_match *m, const char *body, size_t len, http_reply *out);
/* An http_fast_handler: takes drop-in deploys (the answer follows the
 * commit) when the store can queue without waiting; passes the rest. */
http_fast_rc api_fast(void *ud, http_call *call, const route_match *m, const char *body, size_t len,
                      http_reply *out);
/* After a round of api_fast calls: their queued jobs start committing. */
void api_flush(void *ud);

#endif
