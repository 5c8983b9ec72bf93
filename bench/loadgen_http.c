/* loadgen_http.c - the load generator's HTTP/1.1 client: one plain TCP
 * socket per sender, kept alive across requests, one request in flight,
 * answers framed by Content-Length (or by the server closing). Much
 * cheaper per request than a general client, so the generator is not the
 * bottleneck on a machine it shares with the service. */
#include "loadgen.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

int lg_resolve(const char *host, const char *port, lg_addr *out, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s:%s: %s", host, port, gai_strerror(rc));
        return -1;
    }
    if (res->ai_addrlen > sizeof out->sa) {
        snprintf(err, errlen, "%s:%s: address too long", host, port);
        freeaddrinfo(res);
        return -1;
    }
    memset(out, 0, sizeof *out);
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    bool v6 = strchr(host, ':') != NULL;
    snprintf(out->hostport, sizeof out->hostport, v6 ? "[%s]:%s" : "%s:%s", host, port);
    freeaddrinfo(res);
    return 0;
}

void lg_conn_init(lg_conn *c, const lg_addr *a, double timeout)
{
    c->addr = a;
    c->timeout = timeout;
    c->fd = -1;
    c->served = 0;
    c->opens = 0;
    c->len = c->used = 0;
}

/* The buffer is left as it is: an answer's body stays readable after the
 * server asked to close. */
void lg_conn_close(lg_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->served = 0;
    c->len = c->used = 0;
}

static void sys_error(char *err, size_t errlen, const char *what)
{
    int e = errno;
    char buf[128];
    const char *msg =
        e == EAGAIN || e == EWOULDBLOCK ? "timed out" : strerror_r(e, buf, sizeof buf);
    snprintf(err, errlen, "%s: %s", what, msg);
}

static int conn_open(lg_conn *c, char *err, size_t errlen)
{
    int fd = socket(c->addr->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sys_error(err, errlen, "socket");
        return -1;
    }
    /* Small requests, one at a time: Nagle would hold each back. */
    int one = 1;
    struct timeval tv;
    tv.tv_sec = (time_t)c->timeout;
    tv.tv_usec = (suseconds_t)((c->timeout - (double)tv.tv_sec) * 1e6);
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
        sys_error(err, errlen, "setsockopt");
        close(fd);
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&c->addr->sa, c->addr->len) != 0) {
        sys_error(err, errlen, "connect");
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->served = 0;
    c->opens++;
    c->len = c->used = 0;
    return 0;
}

static int send_all(lg_conn *c, const char *p, size_t n, char *err, size_t errlen)
{
    while (n > 0) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            sys_error(err, errlen, "send");
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Reads more into the buffer. Returns bytes read, 0 at end of stream. */
static ssize_t fill(lg_conn *c, char *err, size_t errlen)
{
    for (;;) {
        ssize_t k = recv(c->fd, c->buf + c->len, LG_CONN_BUF - c->len, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            sys_error(err, errlen, "recv");
            return -1;
        }
        c->len += (size_t)k;
        return k;
    }
}

/* Drops the rest of a body that does not fit the buffer. */
static int discard(lg_conn *c, size_t n, char *err, size_t errlen)
{
    char scratch[4096];
    while (n > 0) {
        ssize_t k = recv(c->fd, scratch, n < sizeof scratch ? n : sizeof scratch, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            sys_error(err, errlen, "recv");
            return -1;
        }
        if (k == 0) {
            snprintf(err, errlen, "connection closed in the middle of an answer");
            return -1;
        }
        n -= (size_t)k;
    }
    return 0;
}

/* Reads to the end of the stream. Returns 0, or -1 on an error. */
static ssize_t drain(lg_conn *c, char *err, size_t errlen)
{
    char scratch[4096];
    for (;;) {
        ssize_t k = recv(c->fd, scratch, sizeof scratch, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            sys_error(err, errlen, "recv");
            return -1;
        }
        if (k == 0)
            return 0;
    }
}

typedef struct head {
    int status;
    bool has_length, close, chunked;
    unsigned long long length;
} head;

static int parse_head(const char *p, size_t n, head *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (n < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' || p[9] > '5' ||
        p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9') {
        snprintf(err, errlen, "not an HTTP/1.x answer");
        return -1;
    }
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    h->close = p[7] == '0'; /* HTTP/1.0 closes unless told otherwise */

    const char *end = p + n;
    const char *line = memchr(p, '\n', n);
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vlen = (size_t)(eol - v);
            if (vlen > 0 && v[vlen - 1] == '\r')
                vlen--;
            char val[64];
            snprintf(val, sizeof val, "%.*s", (int)(vlen < 63 ? vlen : 63), v);
            if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
                char *e;
                errno = 0;
                h->length = strtoull(val, &e, 10);
                if (errno || e == val || *e || val[0] == '-') {
                    snprintf(err, errlen, "bad Content-Length '%s'", val);
                    return -1;
                }
                h->has_length = true;
            } else if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
                if (strcasestr(val, "close"))
                    h->close = true;
                else if (strcasestr(val, "keep-alive"))
                    h->close = false;
            } else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
                h->chunked = strcasestr(val, "chunked") != NULL;
            }
        }
        line = eol;
    }
    if (h->chunked) {
        snprintf(err, errlen, "chunked answers are not supported");
        return -1;
    }
    return 0;
}

static int read_response(lg_conn *c, lg_resp *r, bool *got_any, char *err, size_t errlen)
{
    /* Whatever followed the previous answer starts this one. */
    if (c->used > 0) {
        memmove(c->buf, c->buf + c->used, c->len - c->used);
        c->len -= c->used;
        c->used = 0;
    }
    *got_any = c->len > 0;

    size_t hdr_len;
    for (;;) {
        const char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (e) {
            hdr_len = (size_t)(e - c->buf) + 4;
            break;
        }
        if (c->len == LG_CONN_BUF) {
            snprintf(err, errlen, "answer headers larger than %d bytes", LG_CONN_BUF);
            return -1;
        }
        ssize_t k = fill(c, err, errlen);
        if (k < 0)
            return -1;
        if (k == 0) {
            snprintf(err, errlen, "connection closed before an answer");
            return -1;
        }
        *got_any = true;
    }

    head h;
    if (parse_head(c->buf, hdr_len, &h, err, errlen) != 0)
        return -1;
    r->status = h.status;
    r->body = c->buf + hdr_len;

    if (!h.has_length && h.status != 204 && h.status != 304) {
        /* Framed by the end of the stream: keep what fits, drop the rest. */
        ssize_t k = 1;
        while (k > 0 && c->len < LG_CONN_BUF)
            k = fill(c, err, errlen);
        if (k > 0)
            k = drain(c, err, errlen);
        if (k < 0)
            return -1;
        r->body_len = c->len - hdr_len;
        lg_conn_close(c);
        return 0;
    }

    unsigned long long need = hdr_len + (h.has_length ? h.length : 0);
    size_t keep = need < LG_CONN_BUF ? (size_t)need : LG_CONN_BUF;
    while (c->len < keep) {
        ssize_t k = fill(c, err, errlen);
        if (k < 0)
            return -1;
        if (k == 0) {
            snprintf(err, errlen, "connection closed in the middle of an answer");
            return -1;
        }
    }
    if (need > keep && discard(c, (size_t)(need - keep), err, errlen) != 0)
        return -1;
    r->body_len = keep - hdr_len;
    c->used = keep;
    c->served++;
    if (h.close)
        lg_conn_close(c);
    return 0;
}

int lg_conn_send(lg_conn *c, const char *req, size_t len, bool *retry, char *err, size_t errlen)
{
    bool reused = c->fd >= 0 && c->served > 0;
    if (retry)
        *retry = false;
    if (c->fd < 0 && conn_open(c, err, errlen) != 0)
        return -1;
    if (send_all(c, req, len, err, errlen) != 0) {
        lg_conn_close(c);
        if (retry)
            *retry = reused;
        return -1;
    }
    return 0;
}

int lg_conn_read(lg_conn *c, lg_resp *r, bool *retry, char *err, size_t errlen)
{
    bool reused = c->served > 0, got_any = false;
    *retry = false;
    if (read_response(c, r, &got_any, err, errlen) == 0)
        return 0;
    lg_conn_close(c);
    *retry = reused && !got_any;
    return -1;
}

int lg_conn_request(lg_conn *c, const char *req, size_t len, lg_resp *r, char *err, size_t errlen)
{
    /* A kept-alive connection the server closed while it was idle fails
     * before any byte of an answer. Intake is idempotent per job id and
     * instance, so one more try on a new connection is safe. */
    for (int attempt = 0;; attempt++) {
        bool retry;
        if (lg_conn_send(c, req, len, &retry, err, errlen) == 0 &&
            lg_conn_read(c, r, &retry, err, errlen) == 0)
            return 0;
        if (!retry || attempt > 0)
            return -1;
    }
}

int lg_format_request(char *buf, size_t cap, const char *method, const char *path,
                      const char *hostport, const char *body)
{
    int n;
    if (body)
        n = snprintf(buf, cap,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, hostport, strlen(body), body);
    else
        n = snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, path, hostport);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}
