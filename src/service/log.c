/* log.c - one line per event, written with a single fputs so concurrent
 * threads never interleave inside a line. */
#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cslog {
    int level;
    FILE *out;
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

cslog *log_new(int level, FILE *out)
{
    cslog *lg = calloc(1, sizeof *lg);
    if (!lg)
        return NULL;
    lg->level = level;
    lg->out = out ? out : stderr;
    return lg;
}

void log_free(cslog *lg)
{
    free(lg);
}

int log_level(const cslog *lg)
{
    return lg ? lg->level : CSLOG_ERROR + 1;
}

int log_level_from_name(const char *name)
{
    for (int i = 0; name && i <= CSLOG_ERROR; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(int level)
{
    return level >= CSLOG_DEBUG && level <= CSLOG_ERROR ? level_names[level] : "?";
}

void log_msg(cslog *lg, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lg, level, fmt, ap);
    va_end(ap);
}

void log_vmsg(cslog *lg, int level, const char *fmt, va_list ap)
{
    if (!lg || level < lg->level)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, log_level_name(level));
    if (n < 0)
        return;
    size_t head = (size_t)n;
    int m = vsnprintf(line + head, sizeof line - head - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = head + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated: keep room for the newline */
    for (size_t i = head; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[len] = '\n';
    line[len + 1] = 0;
    fputs(line, lg->out);
}
