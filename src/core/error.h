/* error.h - the one error shape the core hands back: which input field was
 * wrong and why, so adapters can turn it into a 4xx body verbatim. */
#ifndef CS_ERROR_H
#define CS_ERROR_H

#include <stddef.h>

typedef struct cs_error {
    char field[64];
    char msg[160];
} cs_error;

/* Fills err (if not NULL) and returns -1, so callers can `return cs_fail(...)`. */
int cs_fail(cs_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
