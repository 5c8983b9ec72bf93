/* cluster_priv.h - the cluster table's layout, shared only by cluster.c and
 * engine.c. Each node is split in two: the fields every filter reads on
 * every decision (32 bytes, two nodes to a cache line) and the rest, so the filter pass
 * streams through one dense array. */
#ifndef CS_CLUSTER_PRIV_H
#define CS_CLUSTER_PRIV_H

#include <pthread.h>
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
    double lat, lon;
    uint8_t has_cpu_pct, has_mem_pct, has_loc;
} node_cold;

typedef struct resv {
    char job_id[CS_ID_MAX + 1];
    char node_id[CS_ID_MAX + 1];
    uint32_t instance, hash;
    uint32_t cpu_seq, mem_seq; /* the node's, when made */
    int64_t cpu, mem;
    int32_t gpu;
    double at;
} resv;

typedef struct namedict {
    char (*names)[CS_NAME_MAX + 1];
    size_t n, max;
} namedict;

struct cluster {
    pthread_rwlock_t lock;
    double ttl;
    node_hot *hot;
    node_cold *cold;
    size_t n, cap;
    idxmap by_id;
    resv *res;
    size_t n_res, cap_res;
    idxmap res_by_key;
    namedict arch, addons, csi;
    uint64_t version; /* bumped by every write; lets a commit skip re-checks */
};

/* Lookups and changes below expect the caller to hold the lock. */
uint32_t cluster_find_locked(const cluster *c, const char *node_id);
int namedict_find(const namedict *d, const char *name);
resv *cluster_resv_find_locked(const cluster *c, const char *job_id, uint32_t instance);
int cluster_reserve_locked(cluster *c, uint32_t pos, const job_spec *job, double now);
void resv_to_view(const resv *r, reservation_view *out);

#endif
