/* cluster.h - the cluster table: every known node, its capacity, last
 * report, and the reservations this scheduler made on it. Thread-safe: one
 * writer-preferring read-write lock guards the whole table (see
 * docs/ARCHITECTURE.md). Pure: time always comes in as an argument. */
#ifndef CS_CLUSTER_H
#define CS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "cs_limits.h"
#include "node.h"

typedef struct cluster cluster;

/* A copy of one node's state, safe to keep after the lock is gone. */
typedef struct node_view {
    char id[CS_ID_MAX + 1];
    char host[CS_HOST_MAX + 1];
    char arch[CS_NAME_MAX + 1];
    uint32_t virt;
    int64_t vcpus_milli, memory_mb;
    int32_t gpus;
    bool has_usage;
    double cpu_percent, memory_percent;
    bool has_location;
    double lat, lon; /* degrees, from the stored point (within about 1e-12) */
    uint32_t n_latency, vivaldi_dim, n_labels; /* edge fields held */
    double last_report;                        /* seconds since the epoch */
    bool active;                               /* last_report within the TTL at `now` */
    int64_t reserved_cpu_milli, reserved_memory_mb;
    int32_t reserved_gpus;
    int64_t free_cpu_milli, free_memory_mb;
    int32_t free_gpus;
    uint32_t n_reservations;
    /* Names resolved from the cluster's dictionaries; valid while the
     * cluster lives (names are never removed). */
    const char *addons[CS_DISTINCT_NAMES];
    uint32_t n_addons;
    const char *csi[CS_DISTINCT_NAMES];
    uint32_t n_csi;
} node_view;

/* One placement this scheduler made and has not released. */
typedef struct reservation_view {
    char job_id[CS_ID_MAX + 1];
    uint32_t instance;
    char node_id[CS_ID_MAX + 1];
    int64_t cpu_milli, memory_mb;
    int32_t gpus;
    double at;
} reservation_view;

/* ttl: seconds after its last report that a node counts as active. */
cluster *cluster_new(double ttl);
void cluster_free(cluster *c);
double cluster_ttl(const cluster *c);

/* Registers the node or applies a report to it (only the fields in r->set
 * change). A first report must carry at least virtualization, vcpus and
 * memory. Returns 0, 1 when the node is new, or -1 with err filled. */
int cluster_report(cluster *c, const char *node_id, const node_report *r, double now,
                   cs_error *err);
/* Removes the node and drops its reservations. When dropped is not NULL it
 * receives a malloc'ed copy of them (caller frees; NULL when none) and
 * n_dropped their count. Returns 0, or -1 if unknown or out of memory. */
int cluster_remove(cluster *c, const char *node_id, reservation_view **dropped, size_t *n_dropped);

/* A report that repeats the node's last one but for its time: the time
 * advances, and each usage count the report restarts (restart_cpu,
 * restart_mem) starts again from the figure the node has, as
 * cluster_report would with the same figures (a count without a figure
 * is left alone). 0, or -1 when the node is unknown. */
int cluster_touch(cluster *c, const char *node_id, double now, bool restart_cpu, bool restart_mem);

size_t cluster_size(cluster *c);
int cluster_get(cluster *c, const char *node_id, double now, node_view *out);
/* Calls fn for every node in table order, under the read lock: fn must not
 * call back into the cluster. Stops early when fn returns non-zero. */
void cluster_foreach(cluster *c, double now, int (*fn)(const node_view *, void *), void *ud);

/* Drops the reservation of one job instance. 0, or -1 if there is none. */
int cluster_release(cluster *c, const char *job_id, uint32_t instance);
/* Drops the instance's reservation only while it is still v's (the same
 * node and time): a caller taking back what it reserved itself, which a
 * newer reservation of the instance may have replaced meanwhile. 0, or -1
 * when there was none or another one. */
int cluster_release_if(cluster *c, const reservation_view *v);
/* The node holding this job instance's reservation; 0, or -1 if none. */
int cluster_placement(cluster *c, const char *job_id, uint32_t instance, reservation_view *out);
/* Charges a reservation without checking capacity: for restoring state that
 * was durable before a restart. Replaces an existing one for the instance. */
int cluster_restore(cluster *c, const reservation_view *r, cs_error *err);
/* Reservations on nodes whose last report is older than the TTL at now, up
 * to max of them; returns how many were written. */
size_t cluster_stale_placements(cluster *c, double now, reservation_view *out, size_t max);
/* Nodes by the age of their last report at now: *heard, those within
 * horizon; of them *late, past half the TTL but within it, and *silent,
 * past the TTL. */
void cluster_silence(cluster *c, double now, double horizon, size_t *heard, size_t *late,
                     size_t *silent);

/* The placed instances of one job (up to max of them written); returns
 * how many there are. */
size_t cluster_job_placements(cluster *c, const char *job_id, reservation_view *out, size_t max);

/* Every reservation, a page at a time: up to max starting at position
 * from (positions shift when reservations are dropped meanwhile). */
size_t cluster_placements(cluster *c, size_t from, reservation_view *out, size_t max);

/* Approximate bytes the table uses (nodes, indexes, dictionaries). */
size_t cluster_memory_bytes(cluster *c);

#endif
