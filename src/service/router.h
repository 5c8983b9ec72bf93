/* router.h - maps an HTTP method and path to a route and its captured
 * parameters. A pure function (no I/O, no allocation), so it can be unit
 * tested and fuzzed on its own. */
#ifndef CS_ROUTER_H
#define CS_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "cs_limits.h"

typedef enum route_id {
    ROUTE_NONE = 0,
    ROUTE_HELLO,     /* GET / */
    ROUTE_STATUS,    /* GET /status */
    ROUTE_METRICS,   /* GET /metrics */
    ROUTE_DEPLOY,    /* GET|POST /api/calculate/deploy/{job_id}/{instance} */
    ROUTE_REPLICATE, /* GET|POST /api/calculate/replicate */
    ROUTE_NODES,     /* GET /api/v1/nodes */
    ROUTE_NODE,      /* GET|PUT|DELETE /api/v1/nodes/{node_id} */
    ROUTE_JOBS,      /* POST /api/v1/jobs */
    ROUTE_JOB,       /* GET|DELETE /api/v1/jobs/{job_id}/{instance} */
    ROUTE_SCHEDULE,  /* POST /api/v1/schedule */
    ROUTE_UI,        /* GET /ui: the dashboard page */
    ROUTE_UI_ASSET,  /* GET /ui/{asset}: its script and style sheet */
    ROUTE_DECISIONS, /* GET /api/v1/decisions: this process's last decisions */
    ROUTE__COUNT
} route_id;

/* Methods as bits; HEAD is served wherever GET only reads. */
enum {
    METHOD_OTHER = 0,
    METHOD_GET = 1u << 0,
    METHOD_HEAD = 1u << 1,
    METHOD_POST = 1u << 2,
    METHOD_PUT = 1u << 3,
    METHOD_DELETE = 1u << 4,
};

typedef enum router_status {
    ROUTER_OK = 0,
    ROUTER_NOT_FOUND,  /* 404: no route has this path */
    ROUTER_BAD_METHOD, /* 405: the path exists; `allow` lists its methods */
    ROUTER_BAD_PARAM,  /* 400: a captured parameter is invalid; see bad_field */
} router_status;

typedef struct route_match {
    route_id route;
    unsigned method;             /* METHOD_* bit of the request */
    bool wants_body;             /* the route reads a request body */
    char job_id[CS_ID_MAX + 1];  /* ROUTE_DEPLOY, ROUTE_JOB */
    uint32_t instance;           /* ROUTE_DEPLOY, ROUTE_JOB */
    char node_id[CS_ID_MAX + 1]; /* ROUTE_NODE */
    char asset[CS_ID_MAX + 1];   /* ROUTE_UI_ASSET: a file name such as "app.js" */
    const char *allow;           /* ROUTER_BAD_METHOD: "GET, HEAD, PUT, DELETE" */
    const char *bad_field;       /* ROUTER_BAD_PARAM: "job_id", "instance", "node_id", "path" */
    const char *bad_msg;         /* ROUTER_BAD_PARAM: why */
    /* The query's explain= (set by the HTTP layer, not the router): 0 absent
     * or off, 1 on ("1", "true", "yes" or no value), -1 any other value. */
    int explain;
} route_match;

unsigned router_method(const char *method);

/* path: without query string. Ids are 1..CS_ID_MAX characters without
 * '/', spaces or control characters; an instance is a decimal number in
 * 0..CS_INSTANCE_MAX. One trailing '/' is ignored. */
router_status router_match(const char *method, const char *path, route_match *out);

const char *router_route_name(route_id r);

#endif
