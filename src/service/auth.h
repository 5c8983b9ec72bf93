/* auth.h - the optional shared bearer token (SCHEDULER_TOKEN): which
 * routes need it, and a check of an Authorization header against it that
 * takes the same time whatever the header holds. Pure: no I/O; the key is
 * read-only after auth_new, so any thread may check against it. */
#ifndef CS_AUTH_H
#define CS_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "router.h"

/* The longest token accepted (characters), as CONFIG_STR_MAX - 1. */
#define AUTH_TOKEN_MAX 255
/* The shortest: anything shorter is too easy to guess over the network. */
#define AUTH_TOKEN_MIN 16

typedef struct auth auth;

typedef enum auth_result {
    AUTH_OK = 0,
    AUTH_MISSING, /* no Authorization header, or not of the Bearer scheme */
    AUTH_INVALID, /* a bearer token, but not the configured one */
} auth_result;

/* A key for token; NULL or "" means no token is configured and every
 * check passes. The token is copied (and wiped again by auth_free).
 * NULL when out of memory or the token is longer than AUTH_TOKEN_MAX. */
auth *auth_new(const char *token);
void auth_free(auth *a);

bool auth_enabled(const auth *a);

/* Routes open without a token: GET (and HEAD) /status and /metrics, so
 * health checks and Prometheus need no secret. */
bool auth_route_public(route_id route, unsigned method);

/* header: the Authorization header's value (NULL when absent), e.g.
 * "Bearer s3cr3t...". The scheme name is case-insensitive (RFC 7235). */
auth_result auth_check(const auth *a, const char *header);

/* 0 when token is acceptable as SCHEDULER_TOKEN (AUTH_TOKEN_MIN ..
 * AUTH_TOKEN_MAX visible ASCII characters, no spaces); -1 with why filled
 * otherwise. why never quotes the token. */
int auth_token_check(const char *token, char *why, size_t len);

#endif
