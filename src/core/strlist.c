/* strlist.c - bounded owned string lists for names that come from the network. */
#include "strlist.h"

#include <stdlib.h>
#include <string.h>

#include "cs_limits.h"

int strlist_add(strlist *l, const char *s, size_t max_len, const char *field, cs_error *err)
{
    if (!s || !*s)
        return cs_fail(err, field, "must be a non-empty string");
    size_t len = strnlen(s, max_len + 1);
    if (len > max_len)
        return cs_fail(err, field, "longer than %zu characters", max_len);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20)
            return cs_fail(err, field, "contains a control character");
    if (strlist_has(l, s))
        return 0;
    if (l->n >= CS_LIST_MAX)
        return cs_fail(err, field, "more than %d entries", CS_LIST_MAX);
    char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v)
        return cs_fail(err, field, "out of memory");
    l->v = v;
    l->v[l->n] = strndup(s, len);
    if (!l->v[l->n])
        return cs_fail(err, field, "out of memory");
    l->n++;
    return 0;
}

bool strlist_has(const strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

void strlist_clear(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
