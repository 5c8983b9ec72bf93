/* error.c - filling the core's one error shape. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

int cs_fail(cs_error *err, const char *field, const char *fmt, ...)
{
    if (err) {
        snprintf(err->field, sizeof err->field, "%s", field ? field : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}
