/* strlist.h - a bounded, owned list of short strings (architectures,
 * addons, host names, CSI drivers) as they arrive in job and node data. */
#ifndef CS_STRLIST_H
#define CS_STRLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct strlist {
    char **v;
    size_t n;
} strlist;

/* Copies s. Fails (with field named in err) on NULL, empty, over CS_NAME_MAX
 * characters (max_len), or past CS_LIST_MAX entries. Duplicates are ignored. */
int strlist_add(strlist *l, const char *s, size_t max_len, const char *field, cs_error *err);
bool strlist_has(const strlist *l, const char *s);
void strlist_clear(strlist *l);

#endif
