/* main.c - cluster-scheduler-ctl: the operator's command-line client.
 * Reads the global options (anywhere on the line) and their environment
 * variables, then runs one command (commands.c). Exit status: 0 done, 1
 * the server answered an error or could not be reached, 2 usage. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "commands.h"

#define PROG "cluster-scheduler-ctl"
#define DEFAULT_TARGET "127.0.0.1:10005"
#define DEFAULT_TIMEOUT 10.0

static void help(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [OPTION]... COMMAND [ARGUMENT]...\n"
            "\n"
            "Command-line client of cluster-scheduler: lists the nodes, shows where a job\n"
            "was placed and why, submits jobs and runs dry runs through the HTTP API.\n"
            "Tables for a terminal; --json prints the server's JSON instead.\n"
            "\n"
            "Commands:\n"
            "  nodes                        the nodes: state, free and total CPU, memory and\n"
            "      GPUs, reported use, placements, last report\n"
            "  node NODE_ID                 one node's document\n"
            "  job JOB_ID [INSTANCE]        where an instance (default 0) was placed, the\n"
            "      prioritized list and why the other nodes were left out\n"
            "  submit FILE                  queue the job in FILE ('-' reads standard input);\n"
            "      --instance N sets its instance, --wait SECONDS waits for the decision\n"
            "  dry-run FILE                 rank the nodes for the job in FILE without\n"
            "      reserving anything (also: schedule)\n"
            "  decisions                    the service's last decisions, newest first;\n"
            "      --limit N shows at most N\n"
            "\n"
            "Options:\n"
            "  --target HOST:PORT           SCHEDULER_TARGET       default " DEFAULT_TARGET "\n"
            "      the service (an http:// or https:// URL also works)\n"
            "  --token TOKEN                SCHEDULER_TOKEN        default (unset)\n"
            "      sent as Authorization: Bearer TOKEN\n"
            "  --timeout SECONDS            SCHEDULER_TIMEOUT      default 10\n"
            "      time limit of one request\n"
            "  --json                       print the server's JSON documents\n"
            "  --help                       print this help and exit\n"
            "\n"
            "Exit status:\n"
            "  0                            done\n"
            "  1                            the server answered an error (4xx, 5xx) or could\n"
            "      not be reached\n"
            "  2                            wrong usage: unknown command or option, a FILE\n"
            "      that cannot be read or is not a JSON object\n");
}

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see " PROG " --help)\n");
    return CTL_USAGE;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= 0.1 && v <= 3600))
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    const char *target = getenv("SCHEDULER_TARGET");
    const char *token = getenv("SCHEDULER_TOKEN");
    const char *tmo = getenv("SCHEDULER_TIMEOUT");
    double timeout = DEFAULT_TIMEOUT;
    ctl c = {NULL, false, PROG};
    if (!target || !*target)
        target = DEFAULT_TARGET;
    if (tmo && *tmo && !parse_seconds(tmo, &timeout))
        return usage("SCHEDULER_TIMEOUT must be a number of seconds in 0.1..3600, not '%s'", tmo);

    /* Global options may come before or after the command; the rest, in
     * order, belongs to the command. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    if (!rest) {
        fprintf(stderr, PROG ": out of memory\n");
        return CTL_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help(stdout);
            free(rest);
            return CTL_OK;
        }
        if (strcmp(a, "--json") == 0) {
            c.json = true;
        } else if (strcmp(a, "--target") == 0 || strcmp(a, "--token") == 0 ||
                   strcmp(a, "--timeout") == 0) {
            if (i + 1 >= argc) {
                free(rest);
                return usage("option %s needs a value", a);
            }
            const char *v = argv[++i];
            if (strcmp(a, "--target") == 0)
                target = v;
            else if (strcmp(a, "--token") == 0)
                token = v;
            else if (!parse_seconds(v, &timeout)) {
                free(rest);
                return usage("--timeout must be a number of seconds in 0.1..3600, not '%s'", v);
            }
        } else {
            rest[nrest++] = argv[i];
        }
    }
    if (nrest == 0) {
        free(rest);
        help(stderr);
        return CTL_USAGE;
    }
    const ctl_command *cmd = ctl_commands;
    while (cmd->name && strcmp(cmd->name, rest[0]) != 0 &&
           !(cmd->alias && strcmp(cmd->alias, rest[0]) == 0))
        cmd++;
    if (!cmd->name) {
        int rc = usage("unknown command '%s'", rest[0]);
        free(rest);
        return rc;
    }

    /* libcurl and jansson keep process-wide state: set up once, first. */
    json_object_seed(0);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, PROG ": cannot initialise libcurl\n");
        free(rest);
        return CTL_FAIL;
    }
    char err[256];
    int rc;
    if (!(c.cl = client_new(target, token, timeout, err, sizeof err))) {
        rc = usage("%s", err);
        goto out;
    }
    rc = cmd->run(&c, nrest - 1, rest + 1);
out:
    client_free(c.cl);
    curl_global_cleanup();
    free(rest);
    return rc;
}
