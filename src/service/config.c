/* config.c - the settings table and the parser it drives. Adding a setting
 * is one row here plus one field in struct config. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "cs_limits.h"
#include "log.h"
#include "store_redis.h"

const char *const config_strategy_names[] = {"most-free", "best-fit", "spread", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};

/* K_SECRET is a string never repeated back: not in errors, not in
 * config_describe. */
typedef enum kind { K_INT, K_LONG, K_DOUBLE, K_STR, K_SECRET, K_ENUM, K_HOSTPORT } kind;

/* Extra check for a string setting: 0, or -1 with why filled. */
typedef int (*check_fn)(const char *v, char *why, size_t len);

typedef struct setting {
    const char *env;  /* environment variable, or NULL */
    const char *flag; /* long flag without "--" */
    const char *arg;  /* placeholder in --help */
    kind kind;
    const char *def; /* default, parsed like any given value; NULL = empty */
    double min, max; /* numbers: inclusive range */
    bool auto_cores; /* "auto" means the number of online CPUs */
    const char *const *choices;
    size_t off; /* where the value goes in struct config */
    check_fn check;
    const char *help;
} setting;

static int check_bind(const char *v, char *why, size_t len);
static int check_host(const char *v, char *why, size_t len);
static int check_nonempty(const char *v, char *why, size_t len);
static int check_redis(const char *v, char *why, size_t len);
static int check_token(const char *v, char *why, size_t len);

const char *const config_role_names[] = {"all", "api", "worker", NULL};

#define OFF(f) offsetof(config, f)

static const setting settings[] = {
    {"MY_PORT", "port", "N", K_INT, "10005", 1, 65535, false, NULL, OFF(port), NULL,
     "HTTP port to listen on"},
    {"BIND_ADDR", "bind", "ADDR", K_STR, "127.0.0.1", 0, 0, false, NULL, OFF(bind), check_bind,
     "address to listen on (IPv4 or IPv6 literal; 0.0.0.0 serves every interface)"},
    {"CLUSTER_MANAGER_URL", NULL, "HOST", K_STR, "127.0.0.1", 0, 0, false, NULL, OFF(manager_host),
     check_host, "host of the cluster manager that receives results"},
    {"CLUSTER_MANAGER_PORT", NULL, "N", K_INT, "10000", 1, 65535, false, NULL, OFF(manager_port),
     NULL, "port of the cluster manager"},
    {NULL, "manager", "HOST:PORT", K_HOSTPORT, NULL, 1, 65535, false, NULL, OFF(manager_host), NULL,
     "cluster manager address (overrides the two variables above)"},
    {"REDIS_ADDR", "redis", "URL", K_STR, NULL, 0, 0, false, NULL, OFF(redis), check_redis,
     "redis://[[user]:password@]host[:port][/db] of a shared Redis; unset = embedded store"},
    {"ROLE", "role", "ROLE", K_ENUM, "all", 0, 0, false, config_role_names, OFF(role), NULL,
     "all, api (HTTP intake only) or worker (placement and delivery); api and worker need "
     "REDIS_ADDR"},
    {"REDIS_CONNECT_TIMEOUT", "redis-connect-timeout", "SECONDS", K_DOUBLE, "2", 0.01, 600, false,
     NULL, OFF(redis_connect_timeout), NULL, "time limit of one connection attempt to Redis"},
    {"REDIS_TIMEOUT", "redis-timeout", "SECONDS", K_DOUBLE, "5", 0.01, 600, false, NULL,
     OFF(redis_timeout), NULL, "time limit of one Redis command"},
    {"CLAIM_IDLE", "claim-idle", "SECONDS", K_DOUBLE, "30", 0.1, 86400, false, NULL,
     OFF(claim_idle), NULL,
     "a job held this long by a worker that stopped answering is taken by another"},
    {"RESULT_LEASE", "result-lease", "SECONDS", K_DOUBLE, "10", 0.1, 3600, false, NULL,
     OFF(result_lease), NULL,
     "Redis mode: a result being delivered by one process is left to it this long"},
    {"DATA_DIR", "data-dir", "DIR", K_STR, "./data", 0, 0, false, NULL, OFF(data_dir),
     check_nonempty, "directory of the embedded store (created if missing)"},
    {"WORKERS", "workers", "N", K_INT, "auto", 1, 1024, true, NULL, OFF(workers), NULL,
     "scheduling worker threads (auto = number of cores)"},
    {"NODE_TTL", "node-ttl", "SECONDS", K_DOUBLE, "15", 0.1, 86400, false, NULL, OFF(node_ttl),
     NULL,
     "a node whose last report is older than this is inactive (nodes should report at least every "
     "third of it)"},
    {"REAPER_INTERVAL", "reaper-interval", "SECONDS", K_DOUBLE, "5", 0.05, 3600, false, NULL,
     OFF(reaper_interval), NULL, "how often instances on inactive nodes are re-scheduled"},
    {"RESULT_RETRY_S", "result-retry", "SECONDS", K_DOUBLE, "600", 0, 604800, false, NULL,
     OFF(result_retry), NULL, "how long an undelivered result is retried before giving up"},
    {"RESULT_TIMEOUT", "result-timeout", "SECONDS", K_DOUBLE, "5", 0.05, 300, false, NULL,
     OFF(result_timeout), NULL, "time limit of one result POST to the cluster manager"},
    {"STRATEGY", "strategy", "NAME", K_ENUM, "most-free", 0, 0, false, config_strategy_names,
     OFF(strategy), NULL, "default ranking: most-free, best-fit or spread"},
    {"TOP_K", "top-k", "N", K_INT, "10", 1, CS_TOPK_MAX, false, NULL, OFF(top_k), NULL,
     "default length of the prioritized candidate list"},
    {"MAX_BODY", "max-body", "BYTES", K_LONG, "1048576", 1024, 1073741824, false, NULL,
     OFF(max_body), NULL, "largest request body accepted (larger: 413)"},
    {"CONN_TIMEOUT", "conn-timeout", "SECONDS", K_INT, "10", 1, 3600, false, NULL,
     OFF(conn_timeout), NULL, "an idle or stalled HTTP connection is closed after this"},
    {"MAX_CONNECTIONS", "max-connections", "N", K_INT, "1024", 1, 65536, false, NULL,
     OFF(max_connections), NULL, "concurrent HTTP connections; more are closed at once"},
    {"LOG_LEVEL", "log-level", "LEVEL", K_ENUM, "info", 0, 0, false, level_names, OFF(log_level),
     NULL, "debug, info, warn or error"},
    {"SCHEDULER_TOKEN", "token", "TOKEN", K_SECRET, NULL, 0, 0, false, NULL, OFF(token),
     check_token,
     "when set, all but GET /status, /metrics and /ui (static) need 'Authorization: Bearer TOKEN' "
     "(16..255 chars; the flag shows in ps)"},
    {"SCHEDULER_TOKEN_FILE", "token-file", "PATH", K_STR, NULL, 0, 0, false, NULL, OFF(token_file),
     NULL, "file whose first line is the token (instead of SCHEDULER_TOKEN; mode 0600)"},
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

static int check_redis(const char *v, char *why, size_t len)
{
    if (!*v)
        return 0; /* empty = embedded */
    redis_addr a;
    cs_error e;
    if (redis_addr_parse(v, "REDIS_ADDR", &a, &e) == 0)
        return 0;
    snprintf(why, len, "%s", e.msg);
    return -1;
}

static int check_token(const char *v, char *why, size_t len)
{
    if (!*v)
        return 0; /* empty = no token */
    return auth_token_check(v, why, len);
}

static int check_bind(const char *v, char *why, size_t len)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
        return 0;
    snprintf(why, len, "must be an IPv4 or IPv6 address such as 127.0.0.1 or ::1");
    return -1;
}

/* The host goes into a URL, so only name and address characters pass. */
static int check_host(const char *v, char *why, size_t len)
{
    size_t n = strlen(v);
    if (n == 0 || n > 253) {
        snprintf(why, len, "must be a host name or address of 1..253 characters");
        return -1;
    }
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET6, v, buf) == 1)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
        if (!ok) {
            snprintf(why, len, "must be a host name or address (no scheme, port or path)");
            return -1;
        }
    }
    return 0;
}

static int check_nonempty(const char *v, char *why, size_t len)
{
    if (*v)
        return 0;
    snprintf(why, len, "must not be empty");
    return -1;
}

static bool parse_double(const char *v, double *out)
{
    char *end;
    if (!*v)
        return false;
    double d = strtod(v, &end);
    if (*end || !isfinite(d))
        return false;
    *out = d;
    return true;
}

static bool parse_whole(const char *v, long long *out)
{
    char *end;
    if (!*v)
        return false;
    long long n = strtoll(v, &end, 10);
    if (*end)
        return false;
    *out = n;
    return true;
}

/* Names the setting as the user gave it, for error messages. */
static void describe_src(const setting *s, bool from_flag, char *buf, size_t len)
{
    if (from_flag)
        snprintf(buf, len, "--%s", s->flag);
    else
        snprintf(buf, len, "%s", s->env);
}

static int set_value(config *c, const setting *s, const char *v, bool from_flag, char *err,
                     size_t errlen)
{
    char src[64], why[160] = "";
    char *base = (char *)c;
    describe_src(s, from_flag, src, sizeof src);
    switch (s->kind) {
    case K_INT:
    case K_LONG: {
        long long n;
        if (s->auto_cores && strcmp(v, "auto") == 0) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            n = cores > 0 ? cores : 1;
            if (n > (long long)s->max)
                n = (long long)s->max;
        } else if (!parse_whole(v, &n) || n < (long long)s->min || n > (long long)s->max) {
            snprintf(why, sizeof why, "must be a whole number in %.0f..%.0f%s", s->min, s->max,
                     s->auto_cores ? " or auto" : "");
            goto bad;
        }
        if (s->kind == K_INT)
            *(int *)(base + s->off) = (int)n;
        else
            *(long *)(base + s->off) = (long)n;
        return 0;
    }
    case K_DOUBLE: {
        double d;
        if (!parse_double(v, &d) || d < s->min || d > s->max) {
            snprintf(why, sizeof why, "must be a number of seconds in %g..%g", s->min, s->max);
            goto bad;
        }
        *(double *)(base + s->off) = d;
        return 0;
    }
    case K_STR:
    case K_SECRET:
        if (strlen(v) >= CONFIG_STR_MAX) {
            snprintf(why, sizeof why, "longer than %d characters", CONFIG_STR_MAX - 1);
            goto bad;
        }
        if (s->check && s->check(v, why, sizeof why))
            goto bad;
        snprintf(base + s->off, CONFIG_STR_MAX, "%s", v);
        return 0;
    case K_ENUM:
        for (int i = 0; s->choices[i]; i++)
            if (strcmp(v, s->choices[i]) == 0) {
                *(int *)(base + s->off) = i;
                return 0;
            }
        snprintf(why, sizeof why, "must be one of");
        for (int i = 0; s->choices[i]; i++) {
            size_t used = strlen(why);
            snprintf(why + used, sizeof why - used, "%s %s", i ? "," : "", s->choices[i]);
        }
        goto bad;
    case K_HOSTPORT: {
        /* host:port, the port after the last colon; [v6]:port also works. */
        const char *colon = strrchr(v, ':');
        long long port;
        char host[CONFIG_STR_MAX];
        if (!colon || !parse_whole(colon + 1, &port) || port < 1 || port > 65535) {
            snprintf(why, sizeof why, "must be HOST:PORT with a port in 1..65535");
            goto bad;
        }
        size_t hl = (size_t)(colon - v);
        if (hl >= 2 && v[0] == '[' && v[hl - 1] == ']') {
            v++;
            hl -= 2;
        }
        if (hl >= sizeof host) {
            snprintf(why, sizeof why, "host longer than %zu characters", sizeof host - 1);
            goto bad;
        }
        memcpy(host, v, hl);
        host[hl] = 0;
        if (check_host(host, why, sizeof why))
            goto bad;
        snprintf(c->manager_host, sizeof c->manager_host, "%s", host);
        c->manager_port = (int)port;
        return 0;
    }
    }
bad:
    if (s->kind == K_SECRET)
        snprintf(err, errlen, "invalid %s (value not shown): %s", src, why);
    else
        snprintf(err, errlen, "invalid %s '%.80s': %s", src, v, why);
    return -1;
}

/* Reads the token from the first line of c->token_file. Errors name the
 * file, never its content. */
static int load_token_file(config *c, char *err, size_t errlen)
{
    char buf[CONFIG_STR_MAX + 2], why[160];
    int rc = -1;
    if (c->token[0]) {
        snprintf(err, errlen,
                 "set SCHEDULER_TOKEN/--token or SCHEDULER_TOKEN_FILE/--token-file, "
                 "not both");
        return -1;
    }
    FILE *f = fopen(c->token_file, "r");
    if (!f) {
        snprintf(err, errlen, "SCHEDULER_TOKEN_FILE '%.120s': %s", c->token_file, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "SCHEDULER_TOKEN_FILE '%.120s': read error", c->token_file);
        goto out;
    }
    buf[n] = 0;
    size_t line = strcspn(buf, "\n");
    if (line == n && n == sizeof buf - 1) {
        snprintf(err, errlen, "SCHEDULER_TOKEN_FILE '%.120s': first line longer than %d characters",
                 c->token_file, AUTH_TOKEN_MAX);
        goto out;
    }
    /* Editors and `echo` end the line; neither end belongs to the token. */
    while (line && (buf[line - 1] == '\r' || buf[line - 1] == ' ' || buf[line - 1] == '\t'))
        line--;
    buf[line] = 0;
    if (auth_token_check(buf, why, sizeof why)) {
        snprintf(err, errlen, "SCHEDULER_TOKEN_FILE '%.120s': the token %s", c->token_file, why);
        goto out;
    }
    memcpy(c->token, buf, line + 1);
    rc = 0;
out:
    explicit_bzero(buf, sizeof buf);
    fclose(f);
    return rc;
}

static const char *env_lookup(void *ud, const char *name)
{
    (void)ud;
    return getenv(name);
}

static const setting *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (settings[i].flag && strlen(settings[i].flag) == len &&
            strncmp(settings[i].flag, name, len) == 0)
            return &settings[i];
    return NULL;
}

int config_parse(config *c, int argc, char **argv, config_getenv_fn getenv_fn, void *ud, char *err,
                 size_t errlen)
{
    if (!getenv_fn)
        getenv_fn = env_lookup;
    memset(c, 0, sizeof *c);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return CONFIG_HELP;
        if (strcmp(argv[i], "--") == 0)
            break;
    }
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (settings[i].def && set_value(c, &settings[i], settings[i].def, false, err, errlen))
            return CONFIG_ERROR; /* a bad default is a bug; say so rather than run */
    /* An empty variable counts as unset, as container set-ups often leave
     * them empty. */
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *v = settings[i].env ? getenv_fn(ud, settings[i].env) : NULL;
        if (v && *v && set_value(c, &settings[i], v, false, err, errlen))
            return CONFIG_ERROR;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            snprintf(err, errlen, "unexpected argument '%.80s' (see --help)", a);
            return CONFIG_ERROR;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const setting *s = find_flag(name, nlen);
        if (!s) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)",
                     (int)(nlen > 60 ? 60 : nlen), name);
            return CONFIG_ERROR;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option --%s needs a value (%s)", s->flag, s->arg);
                return CONFIG_ERROR;
            }
            v = argv[++i];
        }
        if (set_value(c, s, v, true, err, errlen))
            return CONFIG_ERROR;
    }
    if (c->token_file[0] && load_token_file(c, err, errlen))
        return CONFIG_ERROR;
    if (c->role != CONFIG_ROLE_ALL && !c->redis[0]) {
        snprintf(err, errlen,
                 "ROLE/--role %s needs REDIS_ADDR/--redis: separate processes share one Redis",
                 config_role_names[c->role]);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

void config_help(FILE *out, const char *prog)
{
    fprintf(out,
            "Usage: %s [--SETTING VALUE]...\n\n"
            "A cluster scheduler: receives jobs over HTTP, places them on worker nodes and\n"
            "POSTs each result to the cluster manager. Every setting is an environment\n"
            "variable and a flag; the flag wins.\n\n",
            prog);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        char flag[64] = "", env[64] = "";
        if (s->flag)
            snprintf(flag, sizeof flag, "--%s %s", s->flag, s->arg);
        if (s->env)
            snprintf(env, sizeof env, "%s", s->env);
        fprintf(out, "  %-28s %-22s default %s\n      %s\n", flag, env,
                s->def ? s->def : (s->kind == K_HOSTPORT ? "(the two above)" : "(unset)"), s->help);
    }
    fprintf(out, "\n  %-28s print this help and exit\n", "--help");
}

void config_describe(const config *c, char *buf, size_t len)
{
    snprintf(buf, len,
             "port=%d bind=%s manager=%s:%d store=%s data_dir=%s workers=%d node_ttl=%gs "
             "reaper_interval=%gs result_retry=%gs result_timeout=%gs strategy=%s top_k=%d "
             "max_body=%ld conn_timeout=%ds max_connections=%d log_level=%s role=%s auth=%s",
             c->port, c->bind, c->manager_host, c->manager_port, c->redis[0] ? "redis" : "embedded",
             c->data_dir, c->workers, c->node_ttl, c->reaper_interval, c->result_retry,
             c->result_timeout, config_strategy_names[c->strategy], c->top_k, c->max_body,
             c->conn_timeout, c->max_connections, log_level_name(c->log_level),
             config_role_names[c->role],
             c->token[0] ? (c->token_file[0] ? "bearer-token(file)" : "bearer-token") : "off");
}
