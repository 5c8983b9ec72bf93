/* httpc.c - see httpc.h. Each connection runs a small state machine
 * (connect, send, receive) driven by one poll() over all of them. */
#include "httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define HEAD_MAX 1024
/* A result's answer is a status and a few bytes; anything far larger is
 * not the cluster manager answering. */
#define RESP_MAX (1 << 20)
#define SLICE_MS 100 /* the longest poll, so an abort is seen */
#define DNS_TTL 60.0 /* s a looked-up host name is kept */

typedef enum cstate { C_IDLE = 0, C_CONNECTING, C_SENDING, C_RECEIVING } cstate;

typedef struct conn {
    int fd;    /* -1: not connected */
    bool used; /* has answered a request before: may have gone stale */
    cstate st;
    httpc_req *rq; /* the request in flight, NULL when idle */
    bool retried;  /* already resent once on a fresh connection */
    char head[HEAD_MAX];
    size_t head_len, sent; /* bytes of head + body written */
    char *buf;             /* the answer so far */
    size_t len, cap;
    double deadline, connect_deadline; /* monotonic */
} conn;

struct httpc {
    struct addrinfo *addrs; /* the host's addresses, looked up at addrs_at */
    double addrs_at;
    unsigned addr_next; /* which one the next connection tries */
    char host[256];
    char hosthdr[280]; /* Host: value, with brackets and port */
    int port;
    int n;
    double connect_timeout, timeout;
    conn c[MAX_CONNS];
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

httpc *httpc_new(const char *host, int port, int conns, double connect_timeout, double timeout)
{
    if (!host || strlen(host) >= 256 || conns < 1)
        return NULL;
    httpc *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->host, sizeof c->host, "%s", host);
    bool v6 = strchr(host, ':') != NULL;
    snprintf(c->hosthdr, sizeof c->hosthdr, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    c->port = port;
    c->n = conns > MAX_CONNS ? MAX_CONNS : conns;
    c->connect_timeout = connect_timeout;
    c->timeout = timeout;
    for (int i = 0; i < c->n; i++)
        c->c[i].fd = -1;
    return c;
}

static void conn_close(conn *k)
{
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
    k->used = false;
    k->len = 0;
}

void httpc_free(httpc *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        conn_close(&c->c[i]);
        free(c->c[i].buf);
    }
    if (c->addrs)
        freeaddrinfo(c->addrs);
    free(c);
}

/* ---- the parser ---------------------------------------------------------- */

/* The end of the line starting at p (the '\n'), or NULL. */
static const char *line_end(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

/* Case-insensitive "name:" at the start of the line; the value after it. */
static const char *header_value(const char *line, const char *eol, const char *name)
{
    size_t n = strlen(name);
    if ((size_t)(eol - line) <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    return v;
}

static bool value_has(const char *v, const char *eol, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = v; p + n <= eol; p++)
        if (strncasecmp(p, token, n) == 0)
            return true;
    return false;
}

/* A number in base 10 or 16 from p, read only up to end (the received
 * bytes are not NUL-terminated, so strtol & co. could read past them).
 * -1 when there is no digit or it exceeds RESP_MAX; *stop: after it. */
static long parse_num(const char *p, const char *end, int base, const char **stop)
{
    long v = 0;
    const char *q = p;
    for (; q < end; q++) {
        int d;
        if (*q >= '0' && *q <= '9')
            d = *q - '0';
        else if (base == 16 && *q >= 'a' && *q <= 'f')
            d = *q - 'a' + 10;
        else if (base == 16 && *q >= 'A' && *q <= 'F')
            d = *q - 'A' + 10;
        else
            break;
        v = v * base + d;
        if (v > RESP_MAX) {
            *stop = q;
            return -1;
        }
    }
    *stop = q;
    return q == p ? -1 : v;
}

/* A chunked body from p: its length, 0 when incomplete, -1 malformed. */
static long chunked_len(const char *p, const char *end)
{
    const char *s = p;
    for (;;) {
        const char *eol = line_end(s, end);
        if (!eol)
            return 0;
        const char *stop;
        long size = parse_num(s, eol, 16, &stop);
        if (size < 0 ||
            (stop < eol && *stop != ';' && *stop != '\r' && *stop != ' ' && *stop != '\t'))
            return -1;
        s = eol + 1;
        if (size == 0) {
            /* Trailers up to an empty line. */
            for (;;) {
                eol = line_end(s, end);
                if (!eol)
                    return 0;
                bool empty = eol == s || (eol == s + 1 && *s == '\r');
                s = eol + 1;
                if (empty)
                    return s - p;
            }
        }
        if ((size_t)(end - s) < (size_t)size + 1)
            return 0;
        s += size;
        if (*s == '\r') {
            if (end - s < 2)
                return 0;
            s++;
        }
        if (*s != '\n')
            return -1;
        s++;
    }
}

long httpc_parse(const char *buf, size_t len, bool eof, int *status, bool *close_after)
{
    const char *p = buf, *end = buf + len;
    for (;;) {
        const char *eol = line_end(p, end);
        if (!eol)
            return len > HEAD_MAX * 8 ? -1 : 0;
        if (end - p < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
            return -1;
        int st = 0;
        for (int i = 9; i < 12; i++) {
            if (p[i] < '0' || p[i] > '9')
                return -1;
            st = st * 10 + (p[i] - '0');
        }
        if (st < 100 || (p[12] != ' ' && p[12] != '\r' && p[12] != '\n'))
            return -1;
        bool close = p[7] == '0'; /* HTTP/1.0: unless it says keep-alive */
        long clen = -1;
        bool chunked = false;
        const char *line = eol + 1;
        for (;;) {
            eol = line_end(line, end);
            if (!eol)
                return len > RESP_MAX ? -1 : 0;
            if (eol == line || (eol == line + 1 && *line == '\r'))
                break;
            const char *v;
            if ((v = header_value(line, eol, "content-length"))) {
                const char *stop;
                long n = parse_num(v, eol, 10, &stop);
                if (n < 0)
                    return -1;
                while (stop < eol && (*stop == ' ' || *stop == '\t' || *stop == '\r'))
                    stop++;
                if (stop != eol)
                    return -1;
                clen = n;
            } else if ((v = header_value(line, eol, "transfer-encoding"))) {
                chunked = value_has(v, eol, "chunked");
            } else if ((v = header_value(line, eol, "connection"))) {
                if (value_has(v, eol, "close"))
                    close = true;
                else if (value_has(v, eol, "keep-alive"))
                    close = false;
            }
            line = eol + 1;
        }
        const char *body = eol + 1;
        if (st >= 100 && st < 200) {
            if (st == 101)
                return -1; /* no protocol switch was asked for */
            p = body;      /* an interim answer: the final one follows */
            continue;
        }
        *status = st;
        *close_after = close;
        if (st == 204 || st == 304)
            return body - buf;
        if (chunked) {
            long n = chunked_len(body, end);
            return n <= 0 ? n : (body - buf) + n;
        }
        if (clen >= 0)
            return (size_t)(end - body) >= (size_t)clen ? (body - buf) + clen : 0;
        /* No length: the body runs to the close. */
        *close_after = true;
        if (!eof)
            return len > RESP_MAX ? -1 : 0;
        return (long)len;
    }
}

/* ---- connections --------------------------------------------------------- */

static void fail(conn *k, const char *why)
{
    httpc_req *rq = k->rq;
    rq->status = 0;
    rq->ended = clock_s(CLOCK_REALTIME);
    snprintf(rq->err, sizeof rq->err, "%s", why);
    k->rq = NULL;
    k->st = C_IDLE;
    conn_close(k);
}

static void fail_errno(conn *k, const char *what)
{
    char why[96];
    snprintf(why, sizeof why, "%s: %s", what, strerror(errno));
    fail(k, why);
}

/* The host's addresses, looked up again once DNS_TTL has passed; an old
 * answer is kept when a new lookup fails. NULL with *why set. */
static const struct addrinfo *addresses(httpc *c, const char **why)
{
    double now = mono();
    if (c->addrs && now - c->addrs_at < DNS_TTL)
        return c->addrs;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int rc = getaddrinfo(c->host, port, &hints, &res);
    if (rc != 0) {
        *why = gai_strerror(rc);
        return c->addrs; /* NULL unless an earlier lookup worked */
    }
    if (c->addrs)
        freeaddrinfo(c->addrs);
    c->addrs = res;
    c->addrs_at = now;
    return res;
}

/* Opens a non-blocking connection; C_CONNECTING until it is writable. */
static int conn_open(httpc *c, conn *k)
{
    const char *why = "no address";
    const struct addrinfo *all = addresses(c, &why), *a = all;
    if (!a) {
        fail(k, why);
        return -1;
    }
    unsigned n = 0;
    for (const struct addrinfo *x = all; x; x = x->ai_next)
        n++;
    for (unsigned i = c->addr_next % n; i > 0; i--)
        a = a->ai_next;
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail_errno(k, "socket");
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    k->fd = fd;
    k->used = false;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        c->addr_next++; /* the next connection tries the next address */
        fail_errno(k, "connect");
        return -1;
    }
    k->st = C_CONNECTING;
    double cd = mono() + c->connect_timeout;
    k->connect_deadline = cd < k->deadline ? cd : k->deadline;
    return 0;
}

/* Writes what is left of the request; C_RECEIVING once all is out. */
static void conn_send(conn *k)
{
    httpc_req *rq = k->rq;
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        if (k->sent < k->head_len)
            iov[n++] = (struct iovec){k->head + k->sent, k->head_len - k->sent};
        size_t boff = k->sent > k->head_len ? k->sent - k->head_len : 0;
        if (boff < rq->len)
            iov[n++] = (struct iovec){(char *)rq->body + boff, rq->len - boff};
        if (n == 0) {
            k->st = C_RECEIVING;
            k->len = 0;
            return;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(k->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            k->st = C_IDLE; /* the caller decides: resend or fail */
            return;
        }
        k->sent += (size_t)w;
    }
}

static void start(httpc *c, conn *k, httpc_req *rq, bool fresh)
{
    k->rq = rq;
    rq->status = 0;
    rq->err[0] = 0;
    if (!fresh) {
        k->retried = false;
        k->deadline = mono() + c->timeout;
    }
    int n = snprintf(k->head, sizeof k->head,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     rq->path, c->hosthdr, rq->len);
    if (n < 0 || (size_t)n >= sizeof k->head) {
        fail(k, "request path too long");
        return;
    }
    k->head_len = (size_t)n;
    k->sent = 0;
    k->len = 0;
    if (k->fd < 0) {
        conn_open(c, k);
        return;
    }
    k->st = C_SENDING;
}

/* A kept-alive connection the server had closed shows as a failed send or
 * an end of stream before any byte of an answer: then the request goes
 * once more on a fresh connection. */
static bool resend(httpc *c, conn *k)
{
    if (!k->used || k->retried || k->len > 0)
        return false;
    httpc_req *rq = k->rq;
    conn_close(k);
    k->retried = true;
    start(c, k, rq, true);
    return true;
}

static void conn_recv(conn *k)
{
    for (;;) {
        if (k->cap - k->len < 4096) {
            size_t ncap = k->cap ? k->cap * 2 : 8192;
            char *nb = ncap <= RESP_MAX * 2 ? realloc(k->buf, ncap) : NULL;
            if (!nb) {
                fail(k, "answer too large");
                return;
            }
            k->buf = nb;
            k->cap = ncap;
        }
        ssize_t r = recv(k->fd, k->buf + k->len, k->cap - k->len, 0);
        bool eof = r == 0;
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            k->st = C_IDLE; /* reset: the caller decides */
            return;
        }
        k->len += (size_t)r;
        int status = 0;
        bool close_after = false;
        long n = httpc_parse(k->buf, k->len, eof, &status, &close_after);
        if (n < 0) {
            fail(k, "malformed HTTP answer");
            return;
        }
        if (n > 0) {
            k->rq->status = status;
            k->rq->ended = clock_s(CLOCK_REALTIME);
            k->rq = NULL;
            k->st = C_IDLE;
            k->used = true;
            /* Bytes past the answer were never asked for: start afresh. */
            if (close_after || (size_t)n != k->len || eof)
                conn_close(k);
            k->len = 0;
            return;
        }
        if (eof) {
            k->st = C_IDLE;
            return;
        }
    }
}

/* After a send or receive step left the connection idle with its request
 * unanswered: the peer went away. */
static void lost(httpc *c, conn *k, const char *what)
{
    int e = errno;
    if (resend(c, k))
        return;
    if (k->len > 0 || e == 0)
        fail(k, "connection closed before the whole answer");
    else {
        errno = e;
        fail_errno(k, what);
    }
}

void httpc_post(httpc *c, httpc_req *reqs, size_t n, const atomic_bool *abort)
{
    size_t next = 0;
    struct pollfd pfd[MAX_CONNS];
    int idx[MAX_CONNS];
    for (;;) {
        if (atomic_load(abort)) {
            /* Before starting more: a request sent now might be taken and
             * then sent again after the restart. */
            for (int i = 0; i < c->n; i++)
                if (c->c[i].rq)
                    fail(&c->c[i], "aborted");
            for (; next < n; next++) {
                reqs[next].status = 0;
                reqs[next].ended = clock_s(CLOCK_REALTIME);
                snprintf(reqs[next].err, sizeof reqs[next].err, "aborted");
            }
            return;
        }
        int busy = 0;
        for (int i = 0; i < c->n; i++) {
            conn *k = &c->c[i];
            if (!k->rq && next < n)
                start(c, k, &reqs[next++], false);
            if (k->rq && k->st == C_SENDING) {
                conn_send(k);
                if (k->st == C_IDLE)
                    lost(c, k, "send");
            }
            if (k->rq)
                busy++;
        }
        if (!busy && next >= n)
            return;
        double now = mono(), wake = now + SLICE_MS / 1000.0;
        int np = 0;
        for (int i = 0; i < c->n; i++) {
            conn *k = &c->c[i];
            if (!k->rq)
                continue;
            double dl = k->st == C_CONNECTING ? k->connect_deadline : k->deadline;
            if (now >= dl) {
                if (k->st == C_CONNECTING)
                    c->addr_next++; /* perhaps unreachable: try the next one */
                fail(k, k->st == C_CONNECTING ? "connect timed out" : "timed out");
                continue;
            }
            if (dl < wake)
                wake = dl;
            pfd[np] =
                (struct pollfd){.fd = k->fd, .events = k->st == C_RECEIVING ? POLLIN : POLLOUT};
            idx[np++] = i;
        }
        if (np == 0)
            continue;
        int ms = (int)((wake - now) * 1000.0) + 1;
        int ready = poll(pfd, (nfds_t)np, ms);
        if (ready <= 0)
            continue;
        for (int j = 0; j < np; j++) {
            if (!pfd[j].revents)
                continue;
            conn *k = &c->c[idx[j]];
            if (k->st == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    c->addr_next++;
                    errno = err;
                    fail_errno(k, "connect");
                    continue;
                }
                k->st = C_SENDING;
                conn_send(k);
                if (k->st == C_IDLE)
                    lost(c, k, "send");
            } else if (k->st == C_SENDING) {
                conn_send(k);
                if (k->st == C_IDLE)
                    lost(c, k, "send");
            } else if (k->st == C_RECEIVING) {
                errno = 0;
                conn_recv(k);
                if (k->st == C_IDLE && k->rq)
                    lost(c, k, "receive");
            }
        }
    }
}
