/* loadgen.h - what the parts of the load generator share: the options, the
 * run's state (flat per-job arrays and counters that the sender threads and
 * the result receiver fill in), the small HTTP/1.1 client the senders use
 * and the receiver that plays the cluster manager. */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define LG_ID_MAX 63     /* the service's limit for job and node ids */
#define LG_PREFIX_MAX 40 /* run id and node prefix: leaves room for "-<n>" */
#define LG_CONN_BUF 65536
#define LG_ERR_MAX 256

/* Per-job flags. The sender and the receiver each set their own bit with
 * one atomic OR, so exactly one of them sees both and counts the match. */
enum { LG_SENT = 1, LG_ACCEPTED = 2, LG_RESULT = 4 };

typedef enum { LG_ROUTE_DROPIN, LG_ROUTE_NATIVE } lg_route;

typedef struct lg_opts {
    char host[256];
    char port[16];
    int receiver_port; /* 0: any free port */
    int receiver_threads;
    size_t nodes;
    size_t jobs;
    double rate; /* jobs/s; 0: as fast as possible */
    int connections;
    lg_route route;
    double job_vcpus, job_memory;
    double node_vcpus, node_memory;
    double timeout;   /* s to wait for results after the last send */
    double heartbeat; /* s between node reports; 0: none */
    int heartbeat_connections;
    double wait_target; /* s to wait for GET /status before starting */
    double request_timeout;
    char run_id[LG_PREFIX_MAX + 1];
    char node_prefix[LG_PREFIX_MAX + 1];
    bool skip_nodes, json, quiet, per_node;
} lg_opts;

/* Placements per node id: a small open-addressing table behind a mutex
 * (the node count is small next to the job count). */
typedef struct lg_node_count {
    char *id;
    uint64_t count;
} lg_node_count;

typedef struct lg_nodes {
    pthread_mutex_t lock;
    lg_node_count *slots;
    size_t cap, n;
    uint64_t unrecorded; /* placements lost to a failed allocation */
} lg_nodes;

typedef struct lg_state {
    const lg_opts *o;
    char prefix[LG_PREFIX_MAX + 2]; /* "<run-id>-" */
    size_t prefix_len;

    /* Indexed by job number. sched_ns and ack_us are written by the one
     * sender that took the job and read after the senders are joined;
     * result_ns is written once by the receiver (first result only) and
     * read after the receiver is stopped. */
    atomic_uchar *flags;
    int64_t *sched_ns;
    int64_t *result_ns;
    uint32_t *ack_us; /* scheduled send to HTTP answer, microseconds */

    atomic_size_t next_node, next_job;
    atomic_size_t sent, accepted, matched;
    /* At a fixed rate: jobs sent over 1 ms after they were due. Many of
     * them: every connection was waiting for an answer (--connections too
     * few for the rate: loadgen, not the service, set the pace); a few:
     * the sending thread itself was woken or scheduled late. */
    atomic_size_t sent_late;
    atomic_size_t errors_http, errors_conn, node_errors, hb_errors, nodes_ok;
    atomic_size_t results, duplicates, unexpected, malformed, found, not_found;
    atomic_int node_threads_done, senders_done;
    atomic_bool stop_sending, stop_heartbeat;
    /* Longest time one heartbeat round took, ns: past the period, every
     * node reported late (and past NODE_TTL, the service may take them
     * for dead). */
    atomic_llong hb_round_max_ns;
    int64_t start_ns;

    pthread_mutex_t err_lock;
    char first_error[LG_ERR_MAX];

    lg_nodes placements;
} lg_state;

static inline int64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Keeps the first error message of the run; later ones are only counted. */
void lg_note_error(lg_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- HTTP client (loadgen_http.c) --------------------------------------- */

typedef struct lg_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    char hostport[300]; /* for the Host header */
} lg_addr;

typedef struct lg_conn {
    const lg_addr *addr;
    double timeout;
    int fd;
    unsigned served; /* answers read on this connection */
    unsigned opens;  /* connections made so far: a new one has a new fd */
    size_t len;      /* bytes in buf */
    size_t used;     /* of which the last answer took */
    char buf[LG_CONN_BUF];
} lg_conn;

typedef struct lg_resp {
    int status;
    const char *body; /* in the connection's buffer, until its next request */
    size_t body_len;
} lg_resp;

int lg_resolve(const char *host, const char *port, lg_addr *out, char *err, size_t errlen);
void lg_conn_init(lg_conn *c, const lg_addr *a, double timeout);
void lg_conn_close(lg_conn *c);
/* Sends one complete request and reads its answer; reconnects as needed.
 * Returns 0 with *r filled, or -1 with a message in err. */
int lg_conn_request(lg_conn *c, const char *req, size_t len, lg_resp *r, char *err, size_t errlen);
/* The two halves of lg_conn_request, for a caller that waits for many
 * connections at once (epoll) and reads an answer once its first bytes are
 * there. lg_conn_send connects first when needed. Both set *retry (may be
 * NULL for lg_conn_send) when the request failed before any byte of its
 * answer on a reused connection (the server closed it while idle): it may
 * be sent once more on a new one. 0, or -1 with a message in err. */
int lg_conn_send(lg_conn *c, const char *req, size_t len, bool *retry, char *err, size_t errlen);
int lg_conn_read(lg_conn *c, lg_resp *r, bool *retry, char *err, size_t errlen);
/* Formats a request with a Content-Length body (or none when body is
 * NULL) into buf. Returns its length, or -1 when it does not fit. */
int lg_format_request(char *buf, size_t cap, const char *method, const char *path,
                      const char *hostport, const char *body);

/* ---- result receiver (loadgen_recv.c) ----------------------------------- */

typedef struct lg_recv lg_recv;

lg_recv *lg_recv_start(lg_state *st, int port, int threads, char *err, size_t errlen);
int lg_recv_port(const lg_recv *r);
void lg_recv_stop(lg_recv *r);

int lg_nodes_init(lg_nodes *t, size_t expect);
/* Adds by to the node's count, creating it (by may be 0). -1: no memory. */
int lg_nodes_add(lg_nodes *t, const char *id, uint64_t by);
void lg_nodes_free(lg_nodes *t);

#endif
