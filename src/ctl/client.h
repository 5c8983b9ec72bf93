/* client.h - the HTTP side of cluster-scheduler-ctl: one libcurl handle
 * talking to one service (--target), sending the bearer token when one is
 * set, and collecting each answer under a size cap. */
#ifndef CTL_CLIENT_H
#define CTL_CLIENT_H

#include <stddef.h>

#define CLIENT_BODY_MAX (512u << 20) /* a listing of 100,000 nodes is ~30 MB */

typedef struct client client;

typedef struct client_resp {
    long status; /* HTTP status; 0 when no answer came */
    char *body;  /* NUL-terminated; owned, freed by client_resp_clear */
    size_t len;
    char err[256]; /* why there was no answer */
} client_resp;

/* target: "host:port", "host" (port 10005), "[v6]:port", or an http:// or
 * https:// URL. token: sent as "Authorization: Bearer <token>" when not
 * NULL or empty. NULL with err filled for a target that is not one. */
client *client_new(const char *target, const char *token, double timeout_s, char *err,
                   size_t errlen);
void client_free(client *c);

/* The base URL in use ("http://127.0.0.1:10005"). */
const char *client_base(const client *c);

/* path: starting with '/', already escaped (see client_escape). body may
 * be NULL. 0 when an answer came (any status), -1 with out->err when not. */
int client_request(client *c, const char *method, const char *path, const char *body,
                   client_resp *out);
void client_resp_clear(client_resp *r);

/* A path segment with every byte outside [A-Za-z0-9._~-] %-escaped;
 * malloc'ed, NULL when out of memory. */
char *client_escape(const char *segment);

#endif
