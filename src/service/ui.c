/* ui.c - looks the dashboard's embedded files up by name and answers them.
 * The files are a handful, so a linear search is all it takes. */
#include "ui.h"

#include <stdlib.h>
#include <string.h>

const ui_asset *ui_find(const char *name)
{
    if (!name || !*name)
        name = "index.html";
    for (size_t i = 0; i < ui_n_assets; i++)
        if (strcmp(ui_assets[i].name, name) == 0)
            return &ui_assets[i];
    return NULL;
}

void ui_reply(const char *name, http_reply *out)
{
    const ui_asset *a = ui_find(name);
    if (!a) {
        http_reply_error(out, 404, "path", "no such file in the dashboard");
        return;
    }
    /* The reply owns its body (the server frees it): a copy of a few KB. */
    char *body = malloc(a->len + 1);
    if (!body) {
        http_reply_error(out, 500, "server", "out of memory");
        return;
    }
    memcpy(body, a->data, a->len);
    body[a->len] = '\0';
    http_reply_json(out, 200, body);
    out->content_type = a->content_type;
    out->len = a->len; /* not strlen: a file may hold a NUL byte */
}
