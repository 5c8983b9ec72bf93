/* commands.h - the subcommands of cluster-scheduler-ctl. Each takes the
 * words after its name (options of its own included), talks to the
 * service through the client and prints a table, or the server's JSON
 * with --json. Each returns the process's exit status. */
#ifndef CTL_COMMANDS_H
#define CTL_COMMANDS_H

#include <stdbool.h>

#include "client.h"

enum {
    CTL_OK = 0,    /* done */
    CTL_FAIL = 1,  /* the server answered an error, or could not be reached */
    CTL_USAGE = 2, /* the command line (or a file it names) is wrong */
};

typedef struct ctl {
    client *cl;
    bool json; /* --json: the server's JSON, pretty-printed, instead of tables */
    const char *prog;
} ctl;

typedef struct ctl_command {
    const char *name;
    const char *alias; /* or NULL */
    int (*run)(const ctl *c, int argc, char **argv);
} ctl_command;

/* The table of commands, ending with a NULL name. */
extern const ctl_command ctl_commands[];

#endif
