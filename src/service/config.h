/* config.h - every setting of the service, from one declarative table
 * (config.c) that drives the defaults, the environment variables, the
 * command-line flags, validation and --help. Flags override the
 * environment. The result is a plain value struct: written once at start,
 * then only read (by every thread). */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CONFIG_STR_MAX 256

typedef struct config {
    int port;                          /* MY_PORT */
    char bind[CONFIG_STR_MAX];         /* BIND_ADDR: an IPv4 or IPv6 literal */
    char manager_host[CONFIG_STR_MAX]; /* CLUSTER_MANAGER_URL (a host name or address) */
    int manager_port;                  /* CLUSTER_MANAGER_PORT */
    char redis[CONFIG_STR_MAX];        /* REDIS_ADDR; "" = embedded store */
    char data_dir[CONFIG_STR_MAX];     /* DATA_DIR */
    int workers;                       /* WORKERS */
    double node_ttl;                   /* NODE_TTL, seconds */
    double reaper_interval;            /* REAPER_INTERVAL, seconds */
    double result_retry;               /* RESULT_RETRY_S, seconds */
    double result_timeout;             /* RESULT_TIMEOUT, seconds per POST */
    int strategy;                      /* STRATEGY: index into config_strategy_names */
    int top_k;                         /* TOP_K */
    long max_body;                     /* MAX_BODY, bytes */
    int conn_timeout;                  /* CONN_TIMEOUT, seconds */
    int max_connections;               /* MAX_CONNECTIONS */
    int log_level;                     /* LOG_LEVEL: CSLOG_* */
    int role;                          /* ROLE: CONFIG_ROLE_* */
    double redis_connect_timeout;      /* REDIS_CONNECT_TIMEOUT, seconds */
    double redis_timeout;              /* REDIS_TIMEOUT, seconds per command */
    double claim_idle;                 /* CLAIM_IDLE, seconds */
    double result_lease;               /* RESULT_LEASE, seconds */
    char token[CONFIG_STR_MAX];        /* SCHEDULER_TOKEN (or read from the file below); "" = off */
    char token_file[CONFIG_STR_MAX];   /* SCHEDULER_TOKEN_FILE; "" = none */
} config;

/* What one process does (--role); api and worker need REDIS_ADDR. */
enum { CONFIG_ROLE_ALL = 0, CONFIG_ROLE_API, CONFIG_ROLE_WORKER };
extern const char *const config_role_names[];

enum { CONFIG_OK = 0, CONFIG_HELP = 1, CONFIG_ERROR = -1 };

/* "most-free", "best-fit", "spread", in the order of config.strategy. */
extern const char *const config_strategy_names[];

/* Looks an environment variable up; NULL when unset. A function so tests
 * can pass a fake environment. */
typedef const char *(*config_getenv_fn)(void *ud, const char *name);

/* Fills c with defaults, then the environment, then argv[1..argc-1].
 * Returns CONFIG_OK, CONFIG_HELP (--help or -h was given: nothing else is
 * checked) or CONFIG_ERROR with a one-line message naming the setting in
 * err. getenv_fn NULL means the process environment. */
int config_parse(config *c, int argc, char **argv, config_getenv_fn getenv_fn, void *ud, char *err,
                 size_t errlen);

/* Prints usage: every setting with its flag, variable, default and meaning. */
void config_help(FILE *out, const char *prog);

/* "port=10005 bind=127.0.0.1 ..." for the start-up log line. Says
 * whether a token is set, never the token. */
void config_describe(const config *c, char *buf, size_t len);

#endif
