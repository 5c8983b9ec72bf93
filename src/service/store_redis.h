/* store_redis.h - the store on Redis (hiredis), shared by every process of
 * the service: API and worker processes on several machines against one
 * Redis. Jobs go through a Stream read by a consumer group; node state,
 * reservations and the result outbox are hashes changed only by Lua
 * scripts, so each change is atomic; every change is also appended to a
 * change feed (a second Stream) that keeps each process's local copy of the
 * cluster current. */
#ifndef CS_STORE_REDIS_H
#define CS_STORE_REDIS_H

#include "store.h"

typedef struct redis_addr {
    char host[256];
    int port;
    char user[128], password[256];
    int db;
} redis_addr;

/* "redis://[[user]:password@]host[:port][/db]" (host:port alone also
 * works). 0, or -1 with err naming field. */
int redis_addr_parse(const char *text, const char *field, redis_addr *out, cs_error *err);

typedef struct store_redis_opts {
    const char *addr;         /* REDIS_ADDR */
    const char *consumer;     /* this process in the consumer group (unique) */
    double claim_idle_s;      /* pending longer than this: another worker takes it */
    double connect_timeout_s; /* per connection attempt */
    double command_timeout_s; /* per command */
    double result_lease_s;    /* a result being delivered is hidden this long */
} store_redis_opts;

/* Connects (a clear error when Redis is unreachable or refuses the password
 * or database), loads the scripts and creates the consumer group. Later
 * failures reconnect with backoff (50 ms doubling to 2 s); meanwhile calls
 * fail at once with -1. NULL with err filled. */
store *store_redis_open(const store_redis_opts *o, cs_error *err);

#endif
