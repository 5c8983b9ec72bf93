/* cluster_priv.h - the cluster table's layout, shared only by cluster.c and
 * engine.c. Each node is split in two: the fields every filter reads on
 * every decision (32 bytes, two nodes to a cache line) and the rest, so the filter pass
 * streams through one dense array; edge data hangs off a third one. */
#ifndef CS_CLUSTER_PRIV_H
#define CS_CLUSTER_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cluster.h"
#include "idxmap.h"
#include "job.h"

typedef struct node_hot {
    double last_report;
    /* Cached free amounts, recomputed on every change. 32-bit is enough:
     * CS_VCPUS_MAX thousandths and CS_MEMORY_MAX MB both fit. */
    int32_t free_cpu, free_mem;
    int32_t cap_cpu, cap_mem;
    int16_t free_gpu;
    uint8_t virt;
    uint8_t arch; /* 0 = none reported, else dictionary position + 1 */
} node_hot;
/* What only edge-aware jobs read: one variable-size block per node (a
 * pointer in a dense array beside the hot one, NULL for a node that
 * reported none of it), so nodes without edge data pay 8 bytes, a located
 * node 32 more, jobs without edge constraints never touch it, and jobs
 * with them stream 8 bytes a node instead of the cold record. After the header, each part
 * present, in this order (all 8-byte aligned):
 *   location    3 doubles: the point on the unit sphere (see geo.h)
 *   vivaldi     1 + viv_dim doubles: height, coordinates
 *   latency     n_lat_ms edge_latency entries
 *   labels      labels_len bytes: n_labels "key\0value\0" pairs */
typedef struct edge_latency {
    uint32_t area; /* position in the cluster's area dictionary */
    double ms;
} edge_latency;

typedef struct node_edge {
    uint8_t has_loc, viv_dim, n_lat_ms, n_labels;
    uint32_t labels_len;
} node_edge;

/* Offsets of the parts, from the header alone. */
static inline size_t edge_off_viv(const node_edge *e)
{
    return sizeof *e + (e->has_loc ? 3 * sizeof(double) : 0);
}
static inline size_t edge_off_lat(const node_edge *e)
{
    return edge_off_viv(e) + (e->viv_dim ? (e->viv_dim + 1u) * sizeof(double) : 0);
}
static inline size_t edge_off_labels(const node_edge *e)
{
    return edge_off_lat(e) + e->n_lat_ms * sizeof(edge_latency);
}
static inline size_t edge_size(const node_edge *e)
{
    return edge_off_labels(e) + ((e->labels_len + 7u) & ~7u);
}
static inline const double *edge_loc(const node_edge *e)
{
    return (const double *)(const void *)((const char *)e + sizeof *e);
}
/* [0] is the height, then viv_dim coordinates. */
static inline const double *edge_viv(const node_edge *e)
{
    return (const double *)(const void *)((const char *)e + edge_off_viv(e));
}
static inline const edge_latency *edge_lat(const node_edge *e)
{
    return (const edge_latency *)(const void *)((const char *)e + edge_off_lat(e));
}
static inline const char *edge_labels(const node_edge *e)
{
    return (const char *)e + edge_off_labels(e);
}

typedef struct node_cold {
    char id[CS_ID_MAX + 1];
    char *host;           /* owned; NULL until a host is reported (then the id serves) */
    uint64_t addons, csi; /* bits: positions in the cluster's dictionaries */
    uint32_t hash;
    int32_t cap_gpu;
    int64_t res_cpu, res_mem; /* all reservations on the node */
    int32_t res_gpu;
    int64_t after_cpu, after_mem; /* reservations made since the last usage report */
    uint32_t cpu_seq, mem_seq;    /* bumped by each cpu / memory usage figure */
    uint32_t n_res;
    double cpu_pct, mem_pct;
    uint8_t has_cpu_pct, has_mem_pct;
} node_cold;

typedef struct resv {
    char job_id[CS_ID_MAX + 1];
    char node_id[CS_ID_MAX + 1];
    uint32_t instance, hash;
    uint32_t cpu_seq, mem_seq; /* the node's, when made */
    uint32_t jprev, jnext;     /* the job's other instances (positions), IDXMAP_NONE ends */
    int64_t cpu, mem;
    int32_t gpu;
    double at;
} resv;

typedef struct namedict {
    char (*names)[CS_NAME_MAX + 1];
    size_t n, max;
    idxmap index; /* name -> position */
} namedict;

/* The placed instances of one job, as a list through their reservations:
 * anti-affinity and connectivity need "which nodes run job j" per decision. */
typedef struct jobgrp {
    char job_id[CS_ID_MAX + 1];
    uint32_t hash;
    uint32_t head; /* first reservation */
    uint32_t n;
} jobgrp;

struct cluster {
    pthread_rwlock_t lock;
    double ttl;
    node_hot *hot;
    node_cold *cold;
    node_edge **edge; /* owned blocks, NULL for a node without edge data */
    size_t n, cap;
    idxmap by_id;
    resv *res;
    size_t n_res, cap_res;
    idxmap res_by_key;
    namedict arch, addons, csi, areas;
    jobgrp *grp;
    size_t n_grp, cap_grp;
    idxmap grp_by_id;
    uint64_t version; /* bumped by every write; lets a commit skip re-checks */
    /* Every node's rank by id: ranking breaks ties by the smaller id, and
     * with many equal scores (identical nodes) comparing two ids through
     * their cold records was a third of a decision. Built lazily by
     * cluster_id_ranks_locked, valid while id_rank_layout == layout. */
    uint64_t layout; /* bumped whenever a node is added or removed (positions move) */
    _Atomic uint64_t id_rank_layout;
    uint32_t *_Atomic id_rank;
    /* Ids compared by rankings without valid ranks since the last build. */
    atomic_size_t id_rank_debt;
    pthread_mutex_t id_rank_lock; /* one builder at a time */
};

/* Lookups and changes below expect the caller to hold the lock. */
/* The nodes' ranks by id (rank[pos] < rank[other] when its id sorts
 * first), or NULL when not built for the current set of nodes: then
 * compare ids and count the comparisons with cluster_id_compares_add.
 * Under the read lock at least; builds them once the rankings without
 * them compared about as many ids as sorting them takes, so a cluster
 * whose nodes keep changing does not sort on every decision, and one
 * whose scores never tie never sorts. */
const uint32_t *cluster_id_ranks_locked(const cluster *c);
/* n more id comparisons made without ranks (under the read lock). */
void cluster_id_compares_add(const cluster *c, size_t n);
uint32_t cluster_find_locked(const cluster *c, const char *node_id);
int namedict_find(const namedict *d, const char *name);
resv *cluster_resv_find_locked(const cluster *c, const char *job_id, uint32_t instance);
/* The job's placed instances, or NULL when it has none; walk them from
 * res[g->head] through jnext. */
const jobgrp *cluster_jobgrp_find_locked(const cluster *c, const char *job_id);
/* The value of label key on the node, or NULL. */
const char *node_edge_label(const node_edge *e, const char *key);
int cluster_reserve_locked(cluster *c, uint32_t pos, const job_spec *job, double now);
void resv_to_view(const resv *r, reservation_view *out);

#endif
