/* log.h - levelled, one-line-per-event logging to stderr with a UTC
 * timestamp. A handle rather than globals, so every module says which log
 * it writes to and tests can silence it. Thread-safe. */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdarg.h>
#include <stdio.h>

enum { CSLOG_DEBUG = 0, CSLOG_INFO, CSLOG_WARN, CSLOG_ERROR };

typedef struct cslog cslog;

/* level: the least severe level written. out: NULL means stderr. */
cslog *log_new(int level, FILE *out);
void log_free(cslog *lg);
int log_level(const cslog *lg);
/* "debug", "info", "warn", "error" -> level, or -1. */
int log_level_from_name(const char *name);
const char *log_level_name(int level);

/* Writes one line: timestamp, level, message. Control characters in the
 * message become '?', so a value from the network cannot forge a line.
 * A NULL lg writes nothing. */
void log_msg(cslog *lg, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The same with a va_list (for library log hooks). */
void log_vmsg(cslog *lg, int level, const char *fmt, va_list ap);

#define log_debug(lg, ...) log_msg((lg), CSLOG_DEBUG, __VA_ARGS__)
#define log_info(lg, ...) log_msg((lg), CSLOG_INFO, __VA_ARGS__)
#define log_warn(lg, ...) log_msg((lg), CSLOG_WARN, __VA_ARGS__)
#define log_error(lg, ...) log_msg((lg), CSLOG_ERROR, __VA_ARGS__)

#endif
