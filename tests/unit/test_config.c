/* test_config.c - defaults, environment, flags (which win), and a clear
 * error naming the setting for every bad value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* A fake environment: "NAME=value" strings, NULL-terminated. */
static const char *fake_getenv(void *ud, const char *name)
{
    const char *const *env = ud;
    size_t n = strlen(name);
    for (; env && *env; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

static int parse(config *c, const char *const *env, int argc, const char **argv, char *err)
{
    const char *args[32] = {"cluster-scheduler"};
    for (int i = 0; i < argc; i++)
        args[i + 1] = argv[i];
    return config_parse(c, argc + 1, (char **)args, fake_getenv, (void *)env, err, 256);
}

static void test_defaults(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    assert_int_equal(parse(&c, NULL, 0, NULL, err), CONFIG_OK);
    assert_int_equal(c.port, 10005);
    assert_string_equal(c.bind, "127.0.0.1");
    assert_string_equal(c.manager_host, "127.0.0.1");
    assert_int_equal(c.manager_port, 10000);
    assert_string_equal(c.redis, "");
    assert_string_equal(c.data_dir, "./data");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c.workers, cores > 0 ? cores : 1);
    assert_true(c.node_ttl == 15.0);
    assert_true(c.reaper_interval == 5.0);
    assert_true(c.result_retry == 600.0);
    assert_string_equal(config_strategy_names[c.strategy], "most-free");
    assert_int_equal(c.top_k, 10);
    assert_int_equal(c.max_body, 1048576);
    assert_int_equal(c.conn_timeout, 10);
    assert_int_equal(c.log_level, CSLOG_INFO);
    assert_int_equal(c.role, CONFIG_ROLE_ALL);
    assert_true(c.redis_connect_timeout == 2.0);
    assert_true(c.redis_timeout == 5.0);
    assert_true(c.claim_idle == 30.0);
    assert_int_equal(c.max_connections, 1024);
    /* No token by default: the service is open, but only on loopback. */
    assert_string_equal(c.token, "");
    assert_string_equal(c.token_file, "");
    char desc[1024];
    config_describe(&c, desc, sizeof desc);
    assert_non_null(strstr(desc, "auth=off"));
}

#define TOKEN "s3cr3t-T0ken-0123456789abcdef"

/* A temp file holding text; the caller removes it. */
static void write_temp(char *path, size_t len, const char *text)
{
    snprintf(path, len, "/tmp/cs-test-token-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_token(void **state)
{
    (void)state;
    config c;
    char err[256] = "", desc[1024];
    const char *env[] = {"SCHEDULER_TOKEN=" TOKEN, NULL};
    assert_int_equal(parse(&c, env, 0, NULL, err), CONFIG_OK);
    assert_string_equal(c.token, TOKEN);
    /* The start-up line says a token is set, never which. */
    config_describe(&c, desc, sizeof desc);
    assert_non_null(strstr(desc, "auth=bearer-token"));
    assert_null(strstr(desc, "s3cr3t"));

    const char *argv[] = {"--token", "flag-token-0123456789"};
    assert_int_equal(parse(&c, env, 2, argv, err), CONFIG_OK);
    assert_string_equal(c.token, "flag-token-0123456789");

    /* Rejected tokens are never repeated in the message. */
    const char *bad[] = {"SCHEDULER_TOKEN=s3cr3t-short", "SCHEDULER_TOKEN=s3cr3t with spaces 0123",
                         "SCHEDULER_TOKEN=s3cr3t\x01"
                         "control-0123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *e1[] = {bad[i], NULL};
        err[0] = 0;
        assert_int_equal(parse(&c, e1, 0, NULL, err), CONFIG_ERROR);
        assert_non_null(strstr(err, "SCHEDULER_TOKEN"));
        if (strstr(err, "s3cr3t"))
            fail_msg("token echoed: %s", err);
    }
    char longtok[300 + 17] = "SCHEDULER_TOKEN=";
    memset(longtok + 16, 'k', 300);
    longtok[316] = 0;
    const char *e2[] = {longtok, NULL};
    assert_int_equal(parse(&c, e2, 0, NULL, err), CONFIG_ERROR);
    assert_null(strstr(err, "kkkk"));
    const char *fl[] = {"--token", "s3cr3t-short"};
    assert_int_equal(parse(&c, NULL, 2, fl, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "--token"));
    assert_null(strstr(err, "s3cr3t"));
}

static void test_token_file(void **state)
{
    (void)state;
    config c;
    char err[256] = "", path[64], desc[1024];
    /* The first line, without its line end or trailing blanks. */
    write_temp(path, sizeof path, TOKEN " \r\nsecond line ignored\n");
    const char *env[] = {NULL, NULL};
    char assign[128];
    snprintf(assign, sizeof assign, "SCHEDULER_TOKEN_FILE=%s", path);
    env[0] = assign;
    assert_int_equal(parse(&c, env, 0, NULL, err), CONFIG_OK);
    assert_string_equal(c.token, TOKEN);
    config_describe(&c, desc, sizeof desc);
    assert_non_null(strstr(desc, "auth=bearer-token(file)"));
    assert_null(strstr(desc, "s3cr3t"));
    const char *argv[] = {"--token-file", path};
    assert_int_equal(parse(&c, NULL, 2, argv, err), CONFIG_OK);
    assert_string_equal(c.token, TOKEN);

    /* Both ways at once is ambiguous. */
    const char *both[] = {"SCHEDULER_TOKEN=" TOKEN, assign, NULL};
    assert_int_equal(parse(&c, both, 0, NULL, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "not both"));
    unlink(path);

    /* Missing file, empty file, bad token: the file is named, its content not. */
    assert_int_equal(parse(&c, env, 0, NULL, err), CONFIG_ERROR);
    assert_non_null(strstr(err, path));
    write_temp(path, sizeof path, "");
    snprintf(assign, sizeof assign, "SCHEDULER_TOKEN_FILE=%s", path);
    assert_int_equal(parse(&c, env, 0, NULL, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "SCHEDULER_TOKEN_FILE"));
    unlink(path);
    write_temp(path, sizeof path, "s3cr3t tok with spaces\n");
    snprintf(assign, sizeof assign, "SCHEDULER_TOKEN_FILE=%s", path);
    assert_int_equal(parse(&c, env, 0, NULL, err), CONFIG_ERROR);
    assert_null(strstr(err, "s3cr3t"));
    unlink(path);
    char big[400];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = 0;
    write_temp(path, sizeof path, big);
    snprintf(assign, sizeof assign, "SCHEDULER_TOKEN_FILE=%s", path);
    assert_int_equal(parse(&c, env, 0, NULL, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "longer"));
    assert_null(strstr(err, "bbbb"));
    unlink(path);
}

static void test_redis_and_roles(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    const char *env[] = {"REDIS_ADDR=redis://:pw@127.0.0.1:6380/3", "ROLE=worker",
                         "REDIS_TIMEOUT=0.5", "CLAIM_IDLE=2", NULL};
    assert_int_equal(parse(&c, env, 0, NULL, err), CONFIG_OK);
    assert_string_equal(c.redis, "redis://:pw@127.0.0.1:6380/3");
    assert_int_equal(c.role, CONFIG_ROLE_WORKER);
    assert_true(c.redis_timeout == 0.5);
    assert_true(c.claim_idle == 2.0);
    const char *argv[] = {"--role", "api", "--redis-connect-timeout", "0.25"};
    assert_int_equal(parse(&c, env, 4, argv, err), CONFIG_OK);
    assert_int_equal(c.role, CONFIG_ROLE_API);
    assert_true(c.redis_connect_timeout == 0.25);
    /* The password never shows in the start-up line. */
    char desc[1024];
    config_describe(&c, desc, sizeof desc);
    assert_null(strstr(desc, "pw"));
    assert_non_null(strstr(desc, "role=api"));

    /* Separate roles only make sense with a shared store. */
    const char *no_redis[] = {"ROLE=api", NULL};
    assert_int_equal(parse(&c, no_redis, 0, NULL, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "REDIS_ADDR"));
}

static void test_env(void **state)
{
    (void)state;
    const char *env[] = {"MY_PORT=8080",
                         "BIND_ADDR=::1",
                         "CLUSTER_MANAGER_URL=cluster_manager",
                         "CLUSTER_MANAGER_PORT=10100",
                         "DATA_DIR=/var/lib/cs",
                         "WORKERS=3",
                         "NODE_TTL=2.5",
                         "STRATEGY=spread",
                         "LOG_LEVEL=debug",
                         "REDIS_ADDR=",
                         "TOP_K=",
                         NULL};
    config c;
    char err[256] = "";
    assert_int_equal(parse(&c, env, 0, NULL, err), CONFIG_OK);
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.bind, "::1");
    assert_string_equal(c.manager_host, "cluster_manager");
    assert_int_equal(c.manager_port, 10100);
    assert_string_equal(c.data_dir, "/var/lib/cs");
    assert_int_equal(c.workers, 3);
    assert_true(c.node_ttl == 2.5);
    assert_string_equal(config_strategy_names[c.strategy], "spread");
    assert_int_equal(c.log_level, CSLOG_DEBUG);
    assert_string_equal(c.redis, ""); /* empty counts as unset */
    assert_int_equal(c.top_k, 10);
}

static void test_flags_override_env(void **state)
{
    (void)state;
    const char *env[] = {"MY_PORT=8080", "CLUSTER_MANAGER_URL=a", "CLUSTER_MANAGER_PORT=1",
                         "WORKERS=3", NULL};
    const char *argv[] = {"--port",         "9000",    "--manager=cm.local:7000",
                          "--workers=auto", "--redis", "redis://:pw@r:6379",
                          "--max-body",     "2048"};
    config c;
    char err[256] = "";
    assert_int_equal(parse(&c, env, 8, argv, err), CONFIG_OK);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.manager_host, "cm.local");
    assert_int_equal(c.manager_port, 7000);
    assert_true(c.workers >= 1);
    assert_string_equal(c.redis, "redis://:pw@r:6379");
    assert_int_equal(c.max_body, 2048);

    const char *v6[] = {"--manager", "[::1]:9"};
    assert_int_equal(parse(&c, NULL, 2, v6, err), CONFIG_OK);
    assert_string_equal(c.manager_host, "::1");
    assert_int_equal(c.manager_port, 9);
}

static void test_help(void **state)
{
    (void)state;
    config c;
    char err[256] = "";
    const char *argv[] = {"--port", "nonsense", "--help"};
    assert_int_equal(parse(&c, NULL, 3, argv, err), CONFIG_HELP);
    const char *h[] = {"-h"};
    assert_int_equal(parse(&c, NULL, 1, h, err), CONFIG_HELP);
    /* the help text names every variable */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_help(f, "cluster-scheduler");
    fclose(f);
    const char *names[] = {"MY_PORT",
                           "BIND_ADDR",
                           "CLUSTER_MANAGER_URL",
                           "CLUSTER_MANAGER_PORT",
                           "--manager",
                           "REDIS_ADDR",
                           "DATA_DIR",
                           "WORKERS",
                           "NODE_TTL",
                           "REAPER_INTERVAL",
                           "RESULT_RETRY_S",
                           "STRATEGY",
                           "TOP_K",
                           "MAX_BODY",
                           "CONN_TIMEOUT",
                           "MAX_CONNECTIONS",
                           "LOG_LEVEL",
                           "SCHEDULER_TOKEN",
                           "SCHEDULER_TOKEN_FILE",
                           "--token",
                           "10005"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strstr(text, names[i]))
            fail_msg("help lacks %s", names[i]);
    free(text);
}

/* Each bad value fails, and the message names the setting. */
static void expect_env_error(const char *assignment, const char *name)
{
    const char *env[] = {assignment, NULL};
    config c;
    char err[256] = "";
    if (parse(&c, env, 0, NULL, err) != CONFIG_ERROR)
        fail_msg("%s accepted", assignment);
    if (!strstr(err, name))
        fail_msg("%s: message '%s' does not name %s", assignment, err, name);
}

static void expect_flag_error(const char *flag, const char *value, const char *name)
{
    const char *argv[] = {flag, value};
    config c;
    char err[256] = "";
    if (parse(&c, NULL, value ? 2 : 1, argv, err) != CONFIG_ERROR)
        fail_msg("%s %s accepted", flag, value ? value : "");
    if (!strstr(err, name))
        fail_msg("%s: message '%s' does not name %s", flag, err, name);
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_env_error("MY_PORT=0", "MY_PORT");
    expect_env_error("MY_PORT=65536", "MY_PORT");
    expect_env_error("MY_PORT=80x", "MY_PORT");
    expect_env_error("MY_PORT=-1", "MY_PORT");
    expect_env_error("BIND_ADDR=localhost", "BIND_ADDR");
    expect_env_error("BIND_ADDR=1.2.3.4.5", "BIND_ADDR");
    expect_env_error("CLUSTER_MANAGER_URL=http://x", "CLUSTER_MANAGER_URL");
    expect_env_error("CLUSTER_MANAGER_URL=a b", "CLUSTER_MANAGER_URL");
    expect_env_error("CLUSTER_MANAGER_PORT=abc", "CLUSTER_MANAGER_PORT");
    expect_env_error("WORKERS=0", "WORKERS");
    expect_env_error("WORKERS=lots", "WORKERS");
    expect_env_error("WORKERS=100000", "WORKERS");
    expect_env_error("NODE_TTL=0", "NODE_TTL");
    expect_env_error("NODE_TTL=nan", "NODE_TTL");
    expect_env_error("NODE_TTL=inf", "NODE_TTL");
    expect_env_error("NODE_TTL=-5", "NODE_TTL");
    expect_env_error("REAPER_INTERVAL=0", "REAPER_INTERVAL");
    expect_env_error("RESULT_RETRY_S=-1", "RESULT_RETRY_S");
    expect_env_error("STRATEGY=random", "STRATEGY");
    expect_env_error("TOP_K=0", "TOP_K");
    expect_env_error("MAX_BODY=10", "MAX_BODY");
    expect_env_error("CONN_TIMEOUT=0", "CONN_TIMEOUT");
    expect_env_error("MAX_CONNECTIONS=0", "MAX_CONNECTIONS");
    expect_env_error("LOG_LEVEL=loud", "LOG_LEVEL");
    expect_env_error("ROLE=boss", "ROLE");
    expect_env_error("REDIS_ADDR=redis://host:notaport", "REDIS_ADDR");
    expect_env_error("REDIS_ADDR=redis://host:0", "REDIS_ADDR");
    expect_env_error("REDIS_ADDR=redis://host/db", "REDIS_ADDR");
    expect_env_error("REDIS_ADDR=http://host:6379", "REDIS_ADDR");
    expect_env_error("REDIS_ADDR=redis://:pw@", "REDIS_ADDR");
    expect_env_error("REDIS_TIMEOUT=0", "REDIS_TIMEOUT");
    expect_env_error("CLAIM_IDLE=-1", "CLAIM_IDLE");
    char longdir[400] = "DATA_DIR=";
    memset(longdir + 9, 'd', 300);
    longdir[309] = 0;
    expect_env_error(longdir, "DATA_DIR");

    expect_flag_error("--port", "x", "--port");
    expect_flag_error("--port", NULL, "--port");
    expect_flag_error("--manager", "hostonly", "--manager");
    expect_flag_error("--manager", "h:0", "--manager");
    expect_flag_error("--manager", "h/x:10", "--manager");
    expect_flag_error("--data-dir", "", "--data-dir");
    expect_flag_error("--nonsense", "1", "--nonsense");
    expect_flag_error("positional", NULL, "positional");
    expect_flag_error("--", NULL, "--");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_flags_override_env),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_redis_and_roles),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_token_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
