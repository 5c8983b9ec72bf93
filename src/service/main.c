/* main.c - cluster-scheduler: reads the configuration, starts the service,
 * waits for SIGTERM or SIGINT, and shuts down in order (exit 0). */
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "service.h"

int main(int argc, char **argv)
{
    /* Two malloc arenas instead of eight per core: threads here allocate
     * little, and with 100,000 nodes the extra arenas only hold freed
     * memory (measured: 5-7 MB more, creeping with every report round). */
    mallopt(M_ARENA_MAX, 2);
    config cfg;
    char err[512];
    int rc = config_parse(&cfg, argc, argv, NULL, NULL, err, sizeof err);
    if (rc == CONFIG_HELP) {
        config_help(stdout, "cluster-scheduler");
        return 0;
    }
    if (rc != CONFIG_OK) {
        fprintf(stderr, "cluster-scheduler: %s\n", err);
        return 2;
    }

    /* Signals are taken synchronously by sigwait below; every thread
     * started from here on inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    cslog *log = log_new(cfg.log_level, NULL);
    if (!log) {
        fprintf(stderr, "cluster-scheduler: out of memory\n");
        return 1;
    }
    char desc[1024];
    config_describe(&cfg, desc, sizeof desc);
    log_info(log, "starting: %s", desc);

    /* jansson's hash seed is process-wide state: set before any thread
     * parses. */
    json_object_seed(0);

    int exit_code = 1;
    cs_error e;
    service *svc = service_new(&cfg, log, &e);
    if (!svc) {
        log_error(log, "cannot start: %s: %s", e.field, e.msg);
        goto out;
    }
    if (service_start(svc, &e)) {
        log_error(log, "cannot start: %s: %s", e.field, e.msg);
        goto out;
    }
    log_info(log, "listening on %s:%d; results go to http://%s:%d/api/result/", cfg.bind, cfg.port,
             cfg.manager_host, cfg.manager_port);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info(log, "received %s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    service_stop(svc);
    exit_code = 0;
    log_info(log, "stopped");
out:
    service_free(svc);
    log_free(log);
    return exit_code;
}
