/* client.c - libcurl, one easy handle reused for every request of a run
 * (keep-alive), with connect and total timeouts, no redirects, http and
 * https only, and a hard cap on what an answer may weigh. */
#include "client.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORT "10005"

struct client {
    CURL *curl;
    char *auth; /* the Authorization header line, or NULL */
    char base[512];
    double timeout_s;
};

/* Host names, IPv4 and bracketed IPv6 literals, and a port. */
static bool target_chars_ok(const char *s)
{
    for (; *s; s++) {
        char ch = *s;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || strchr(".-_:[]", ch);
        if (!ok)
            return false;
    }
    return true;
}

static int make_base(const char *target, char *base, size_t len, char *err, size_t errlen)
{
    size_t n = strlen(target);
    if (n == 0 || n > 400) {
        snprintf(err, errlen, "the target must be HOST:PORT or an http:// URL (1..400 characters)");
        return -1;
    }
    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        const char *host = strstr(target, "://") + 3;
        const char *slash = strchr(host, '/');
        if (!*host || slash == host || (slash && slash[1])) {
            snprintf(err, errlen, "the target URL must be scheme://host[:port] without a path");
            return -1;
        }
        snprintf(base, len, "%.*s", (int)(n - (slash != NULL)), target);
        return 0;
    }
    if (!target_chars_ok(target)) {
        snprintf(err, errlen, "'%s' is not HOST:PORT", target);
        return -1;
    }
    /* "host" and "[v6]" get the service's default port. */
    const char *close = strrchr(target, ']');
    const char *colon = strrchr(target, ':');
    bool has_port = target[0] == '[' ? (close && close[1] == ':') : colon != NULL;
    if (has_port && !colon[1]) {
        snprintf(err, errlen, "'%s' has no port after the colon", target);
        return -1;
    }
    snprintf(base, len, "http://%s%s%s", target, has_port ? "" : ":", has_port ? "" : DEFAULT_PORT);
    return 0;
}

client *client_new(const char *target, const char *token, double timeout_s, char *err,
                   size_t errlen)
{
    client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->timeout_s = timeout_s;
    if (make_base(target, c->base, sizeof c->base, err, errlen))
        goto fail;
    if (token && *token) {
        if (strlen(token) > 900 || strpbrk(token, "\r\n")) {
            snprintf(err, errlen, "the token must be one line of at most 900 characters");
            goto fail;
        }
        if (asprintf(&c->auth, "Authorization: Bearer %s", token) < 0) {
            c->auth = NULL;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (!(c->curl = curl_easy_init())) {
        snprintf(err, errlen, "cannot initialise libcurl");
        goto fail;
    }
    return c;
fail:
    client_free(c);
    return NULL;
}

void client_free(client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->auth);
    free(c);
}

const char *client_base(const client *c)
{
    return c->base;
}

void client_resp_clear(client_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

typedef struct sink {
    client_resp *r;
    size_t cap;
    bool too_big;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t add = size * n;
    client_resp *r = s->r;
    if (add > CLIENT_BODY_MAX - r->len) {
        s->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (r->len + add + 1 > s->cap) {
        size_t ncap = s->cap ? s->cap : 16384;
        while (ncap < r->len + add + 1)
            ncap *= 2;
        char *nb = realloc(r->body, ncap);
        if (!nb)
            return 0;
        r->body = nb;
        s->cap = ncap;
    }
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

int client_request(client *c, const char *method, const char *path, const char *body,
                   client_resp *out)
{
    memset(out, 0, sizeof *out);
    char url[4096];
    if ((size_t)snprintf(url, sizeof url, "%s%s", c->base, path) >= sizeof url) {
        snprintf(out->err, sizeof out->err, "request path too long");
        return -1;
    }
    struct curl_slist *hdrs = NULL, *h;
    sink s = {out, 0, false};
    CURL *e = c->curl;
    int rc = -1;
    curl_easy_reset(e);
    if (!(h = curl_slist_append(hdrs, "Accept: application/json")))
        goto nomem;
    hdrs = h;
    if (!(h = curl_slist_append(hdrs, "Expect:"))) /* no 100-continue round trip */
        goto nomem;
    hdrs = h;
    if (body) {
        if (!(h = curl_slist_append(hdrs, "Content-Type: application/json")))
            goto nomem;
        hdrs = h;
    }
    if (c->auth) {
        if (!(h = curl_slist_append(hdrs, c->auth)))
            goto nomem;
        hdrs = h;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(c->timeout_s < 5 ? c->timeout_s * 1000 : 5000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    CURLcode cr = curl_easy_perform(e);
    if (cr != CURLE_OK) {
        if (s.too_big)
            snprintf(out->err, sizeof out->err, "the answer is larger than %u MB",
                     CLIENT_BODY_MAX >> 20);
        else
            snprintf(out->err, sizeof out->err, "%.160s: %s", c->base, curl_easy_strerror(cr));
        goto out;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    if (!out->body && !(out->body = calloc(1, 1)))
        goto nomem;
    rc = 0;
    goto out;
nomem:
    snprintf(out->err, sizeof out->err, "out of memory");
out:
    curl_slist_free_all(hdrs);
    if (rc) {
        free(out->body);
        out->body = NULL;
        out->len = 0;
        out->status = 0;
    }
    return rc;
}

char *client_escape(const char *segment)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(segment);
    char *out = malloc(3 * n + 1), *p = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)segment[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '_' || ch == '~' || ch == '-') {
            *p++ = (char)ch;
        } else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = '\0';
    return out;
}
