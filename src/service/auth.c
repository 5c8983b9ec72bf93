/* auth.c - bearer token check. The comparison must not tell a network
 * client how close its guess was: a memcmp or strcmp returns at the first
 * differing byte (and a length check returns before any byte), so the
 * answer time would reveal the secret's length and then, byte by byte,
 * its prefix. Here both the configured token and the presented one are
 * copied into zero-padded buffers of the same fixed size (AUTH_TOKEN_MAX
 * + 1 bytes) and every byte of the two buffers is XORed into one
 * accumulator, together with the XOR of the two lengths; only the final
 * accumulator is tested. The work done is the same for every guess, long,
 * short, right or wrong. (A digest of both sides would hide the length
 * as well, but needs a hash the project does not otherwise link; padding
 * to the maximum length hides it without one.) */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct auth {
    bool on;
    size_t len;
    unsigned char key[AUTH_TOKEN_MAX + 1]; /* the token, zero-padded */
};

auth *auth_new(const char *token)
{
    size_t len = token ? strnlen(token, AUTH_TOKEN_MAX + 1) : 0;
    if (len > AUTH_TOKEN_MAX)
        return NULL;
    auth *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->on = len > 0;
    a->len = len;
    memcpy(a->key, token ? token : "", len);
    return a;
}

void auth_free(auth *a)
{
    if (!a)
        return;
    /* explicit_bzero: a plain memset before free may be optimised away. */
    explicit_bzero(a, sizeof *a);
    free(a);
}

bool auth_enabled(const auth *a)
{
    return a && a->on;
}

/* The dashboard's page, script and style sheet hold no data (a browser
 * cannot send a bearer header when it loads a page): they are open, and the
 * page asks for the token when the data routes it reads answer 401. */
bool auth_route_public(route_id route, unsigned method)
{
    return (route == ROUTE_STATUS || route == ROUTE_METRICS || route == ROUTE_UI ||
            route == ROUTE_UI_ASSET) &&
           (method == METHOD_GET || method == METHOD_HEAD);
}

/* Fixed-time equality of the configured key and a presented token of
 * glen bytes (see the comment at the top). */
static bool equal_fixed(const auth *a, const char *given, size_t glen)
{
    unsigned char buf[AUTH_TOKEN_MAX + 1];
    memset(buf, 0, sizeof buf);
    /* A longer token is compared by its first bytes and then fails on the
     * length, so it costs no more than any other. */
    size_t n = glen < sizeof buf ? glen : sizeof buf;
    memcpy(buf, given, n);
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        diff |= (unsigned char)(a->key[i] ^ buf[i]);
    size_t ldiff = a->len ^ glen;
    explicit_bzero(buf, sizeof buf);
    return (diff | (ldiff != 0)) == 0;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

auth_result auth_check(const auth *a, const char *header)
{
    if (!auth_enabled(a))
        return AUTH_OK;
    if (!header)
        return AUTH_MISSING;
    while (is_blank(*header))
        header++;
    if (strncasecmp(header, "Bearer", 6) != 0 || !is_blank(header[6]))
        return AUTH_MISSING;
    const char *tok = header + 7;
    while (is_blank(*tok))
        tok++;
    /* The header's length is the client's own knowledge: scanning it
     * tells the client nothing about the secret. */
    size_t glen = strlen(tok);
    while (glen && is_blank(tok[glen - 1]))
        glen--;
    if (glen == 0)
        return AUTH_MISSING;
    return equal_fixed(a, tok, glen) ? AUTH_OK : AUTH_INVALID;
}

int auth_token_check(const char *token, char *why, size_t len)
{
    size_t n = strnlen(token, AUTH_TOKEN_MAX + 1);
    if (n < AUTH_TOKEN_MIN || n > AUTH_TOKEN_MAX) {
        snprintf(why, len,
                 "must be %d..%d characters (e.g. the output of `openssl rand -hex 32`); it is %s",
                 AUTH_TOKEN_MIN, AUTH_TOKEN_MAX, n < AUTH_TOKEN_MIN ? "shorter" : "longer");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)token[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            snprintf(why, len,
                     "may hold only visible ASCII characters (no spaces), as it travels in an "
                     "HTTP header");
            return -1;
        }
    }
    return 0;
}
