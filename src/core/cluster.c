/* cluster.c - the cluster table: nodes, their capacity and usage, the
 * reservations this scheduler made, and the lock that guards them.
 *
 * Locking: one pthread read-write lock, writers preferred so a stream of
 * decisions cannot starve node reports. Readers (ranking, views) share it;
 * reports, removals, reservations and releases take it exclusively. */
#include "cluster_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geo.h"
#include "virt.h"

static bool node_eq(const void *ud, uint32_t pos, const void *key)
{
    const cluster *c = ud;
    return strcmp(c->cold[pos].id, key) == 0;
}

typedef struct resv_key {
    const char *job_id;
    uint32_t instance;
} resv_key;

static bool resv_eq(const void *ud, uint32_t pos, const void *key)
{
    const cluster *c = ud;
    const resv_key *k = key;
    return c->res[pos].instance == k->instance && strcmp(c->res[pos].job_id, k->job_id) == 0;
}

static uint32_t resv_hash(const char *job_id, uint32_t instance)
{
    return cs_hash_str(job_id, instance * 0x9e3779b9u);
}

static void edge_free(node_edge *e)
{
    free(e);
}

static size_t edge_bytes(const node_edge *e)
{
    return e ? edge_size(e) : 0;
}

const char *node_edge_label(const node_edge *e, const char *key)
{
    if (!e)
        return NULL;
    const char *p = edge_labels(e);
    for (uint8_t i = 0; i < e->n_labels; i++) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, key) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

cluster *cluster_new(double ttl)
{
    cluster *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&c->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc) {
        free(c);
        return NULL;
    }
    if (pthread_mutex_init(&c->id_rank_lock, NULL)) {
        pthread_rwlock_destroy(&c->lock);
        free(c);
        return NULL;
    }
    c->layout = 1; /* id_rank_layout 0: no ranks built */
    c->ttl = ttl > 0 ? ttl : 15.0;
    idxmap_init(&c->by_id);
    idxmap_init(&c->res_by_key);
    idxmap_init(&c->grp_by_id);
    c->arch.max = CS_DISTINCT_ARCH;
    c->addons.max = CS_DISTINCT_NAMES;
    c->csi.max = CS_DISTINCT_NAMES;
    c->areas.max = CS_DISTINCT_AREAS;
    return c;
}

void cluster_free(cluster *c)
{
    if (!c)
        return;
    pthread_rwlock_destroy(&c->lock);
    pthread_mutex_destroy(&c->id_rank_lock);
    free(atomic_load(&c->id_rank));
    for (size_t i = 0; i < c->n; i++) {
        free(c->cold[i].host);
        edge_free(c->edge[i]);
    }
    free(c->hot);
    free(c->cold);
    free(c->edge);
    free(c->res);
    free(c->grp);
    idxmap_free(&c->by_id);
    idxmap_free(&c->res_by_key);
    idxmap_free(&c->grp_by_id);
    namedict *dicts[] = {&c->arch, &c->addons, &c->csi, &c->areas};
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
        free(dicts[i]->names);
        idxmap_free(&dicts[i]->index);
    }
    free(c);
}

double cluster_ttl(const cluster *c)
{
    return c->ttl;
}

static bool name_eq(const void *ud, uint32_t pos, const void *key)
{
    const namedict *d = ud;
    return strcmp(d->names[pos], key) == 0;
}

int namedict_find(const namedict *d, const char *name)
{
    uint32_t pos = idxmap_find(&d->index, cs_hash_str(name, 0), name_eq, d, name);
    return pos == IDXMAP_NONE ? -1 : (int)pos;
}

/* Names are interned for good: dictionaries only grow, so bit positions
 * held by nodes never change meaning. */
static int namedict_intern(namedict *d, const char *name, const char *field, cs_error *err)
{
    int i = namedict_find(d, name);
    if (i >= 0)
        return i;
    if (d->n >= d->max)
        return cs_fail(err, field, "more than %zu distinct names in the cluster", d->max);
    if (strlen(name) > CS_NAME_MAX)
        return cs_fail(err, field, "longer than %d characters", CS_NAME_MAX);
    char(*nn)[CS_NAME_MAX + 1] = realloc(d->names, (d->n + 1) * sizeof *nn);
    if (!nn)
        return cs_fail(err, field, "out of memory");
    d->names = nn;
    strcpy(d->names[d->n], name);
    if (idxmap_insert(&d->index, cs_hash_str(name, 0), (uint32_t)d->n))
        return cs_fail(err, field, "out of memory");
    return (int)d->n++;
}

static int names_to_bits(namedict *d, const strlist *l, const char *field, uint64_t *out,
                         cs_error *err)
{
    uint64_t bits = 0;
    for (size_t i = 0; i < l->n; i++) {
        int k = namedict_intern(d, l->v[i], field, err);
        if (k < 0)
            return -1;
        bits |= 1ull << k;
    }
    *out = bits;
    return 0;
}

/* A build waits until rankings without ranks compared as many ids as a
 * sort of n ids does (about n log2 n), plus this many: the comparisons
 * spent waiting are at most those of the sort, so a cluster whose nodes
 * keep changing spends at most about twice what it must on ties. Counting
 * rankings instead (16 + n / 16 of them) kept the first 328 decisions on
 * a new 5,000-node cluster of identical nodes comparing ids (about 300 us
 * each instead of 30). */
#define ID_RANK_DEBT_MIN 64

typedef struct id_ref {
    const char *id;
    uint32_t pos;
} id_ref;

static int cmp_id_ref(const void *a, const void *b)
{
    return strcmp(((const id_ref *)a)->id, ((const id_ref *)b)->id);
}

const uint32_t *cluster_id_ranks_locked(const cluster *cc)
{
    /* The ranks are a cache of what the ids already say: readers holding
     * the read lock may build them, one at a time (id_rank_lock). Nodes
     * are added and removed only under the write lock, so layout is stable
     * here, and ranks are read only while their layout is current: the
     * array a build replaces is one no reader can be using. */
    cluster *c = (cluster *)cc;
    if (atomic_load_explicit(&c->id_rank_layout, memory_order_acquire) == c->layout)
        return atomic_load_explicit(&c->id_rank, memory_order_relaxed);
    size_t log2n = 1;
    while (log2n < 64 && ((size_t)1 << log2n) < c->n)
        log2n++;
    size_t debt = atomic_load_explicit(&c->id_rank_debt, memory_order_relaxed);
    if (c->n == 0 || c->n > UINT32_MAX || debt < ID_RANK_DEBT_MIN + c->n * log2n)
        return NULL;
    if (pthread_mutex_trylock(&c->id_rank_lock) != 0)
        return NULL; /* another ranking is building them; compare ids meanwhile */
    const uint32_t *out = NULL;
    id_ref *refs = NULL;
    uint32_t *rank = NULL;
    if (atomic_load_explicit(&c->id_rank_layout, memory_order_acquire) == c->layout) {
        out = atomic_load_explicit(&c->id_rank, memory_order_relaxed);
        goto out;
    }
    refs = malloc(c->n * sizeof *refs);
    rank = malloc(c->n * sizeof *rank);
    if (!refs || !rank)
        goto out;
    for (size_t i = 0; i < c->n; i++)
        refs[i] = (id_ref){c->cold[i].id, (uint32_t)i};
    qsort(refs, c->n, sizeof *refs, cmp_id_ref);
    for (size_t r = 0; r < c->n; r++)
        rank[refs[r].pos] = (uint32_t)r;
    free(atomic_exchange_explicit(&c->id_rank, rank, memory_order_relaxed));
    atomic_store_explicit(&c->id_rank_layout, c->layout, memory_order_release);
    atomic_store_explicit(&c->id_rank_debt, 0, memory_order_relaxed);
    out = rank;
    rank = NULL;
out:
    pthread_mutex_unlock(&c->id_rank_lock);
    free(refs);
    free(rank);
    return out;
}

void cluster_id_compares_add(const cluster *cc, size_t n)
{
    cluster *c = (cluster *)cc; /* a counter, like the ranks a cache */
    atomic_fetch_add_explicit(&c->id_rank_debt, n, memory_order_relaxed);
}

uint32_t cluster_find_locked(const cluster *c, const char *node_id)
{
    return idxmap_find(&c->by_id, cs_hash_str(node_id, 0), node_eq, c, node_id);
}

resv *cluster_resv_find_locked(const cluster *c, const char *job_id, uint32_t instance)
{
    resv_key k = {job_id, instance};
    uint32_t pos = idxmap_find(&c->res_by_key, resv_hash(job_id, instance), resv_eq, c, &k);
    return pos == IDXMAP_NONE ? NULL : &c->res[pos];
}

/* free = capacity - reservations, and where usage was reported, no more
 * than the unused share of capacity minus what was reserved since. */
static void recompute_free(node_hot *h, const node_cold *k)
{
    int64_t cpu = (int64_t)h->cap_cpu - k->res_cpu;
    if (k->has_cpu_pct) {
        int64_t by_use = (int64_t)floor((double)h->cap_cpu * (1.0 - k->cpu_pct / 100.0));
        if (by_use - k->after_cpu < cpu)
            cpu = by_use - k->after_cpu;
    }
    int64_t mem = (int64_t)h->cap_mem - k->res_mem;
    if (k->has_mem_pct) {
        int64_t by_use = (int64_t)floor((double)h->cap_mem * (1.0 - k->mem_pct / 100.0));
        if (by_use - k->after_mem < mem)
            mem = by_use - k->after_mem;
    }
    h->free_cpu = cpu > 0 ? (int32_t)cpu : 0;
    h->free_mem = mem > 0 ? (int32_t)mem : 0;
    int32_t gpu = k->cap_gpu - k->res_gpu;
    h->free_gpu = gpu > 0 ? (int16_t)gpu : 0;
}

static int grow_nodes(cluster *c)
{
    if (c->n < c->cap)
        return 0;
    /* Grow by a quarter, not double: at 100,000 nodes the slack of
     * doubling alone would cost more than the nodes' own bytes budget. */
    size_t ncap = c->cap + c->cap / 4 + 4;
    node_hot *h = realloc(c->hot, ncap * sizeof *h);
    if (!h)
        return -1;
    c->hot = h;
    node_cold *k = realloc(c->cold, ncap * sizeof *k);
    if (!k)
        return -1;
    c->cold = k;
    node_edge **e = realloc(c->edge, ncap * sizeof *e);
    if (!e)
        return -1;
    c->edge = e;
    c->cap = ncap;
    return 0;
}

/* The node's next edge block: the report's edge fields laid over the
 * ones it has, built before the node changes so that a failure (a full
 * area dictionary, no memory) leaves it as it was. *next is NULL when
 * nothing is left; *changed is false when the block stays as it is. */
static int edge_prepare(cluster *c, const node_report *r, const node_edge *old, node_edge **next,
                        bool *changed, cs_error *err)
{
    const uint32_t bits = NODE_F_LOCATION | NODE_F_LATENCY | NODE_F_VIVALDI | NODE_F_LABELS;
    *next = NULL;
    *changed = false;
    if (!(r->set & bits))
        return 0;
    node_edge h = {0};
    if (old)
        h = *old;
    if (r->set & NODE_F_LOCATION)
        h.has_loc = 1;
    if (r->set & NODE_F_VIVALDI) {
        if (r->vivaldi_dim < 1 || r->vivaldi_dim > CS_VIVALDI_DIM_MAX)
            return cs_fail(err, "vivaldi.vector", "must hold 1..%d numbers", CS_VIVALDI_DIM_MAX);
        h.viv_dim = (uint8_t)r->vivaldi_dim;
    }
    if (r->set & NODE_F_LATENCY) {
        if (r->n_latency > CS_LIST_MAX)
            return cs_fail(err, "latency_ms", "more than %d areas", CS_LIST_MAX);
        h.n_lat_ms = (uint8_t)r->n_latency;
    }
    if (r->set & NODE_F_LABELS) {
        if (r->n_labels > CS_LIST_MAX)
            return cs_fail(err, "labels", "more than %d labels", CS_LIST_MAX);
        h.n_labels = (uint8_t)r->n_labels;
        h.labels_len = 0;
        for (size_t i = 0; i < r->n_labels; i++)
            h.labels_len += (uint32_t)(strlen(r->labels[i].key) + strlen(r->labels[i].value) + 2);
    }
    if (!h.has_loc && !h.viv_dim && !h.n_lat_ms && !h.n_labels) {
        *changed = old != NULL;
        return 0;
    }
    /* edge_size reads only the header to lay out the parts. */
    node_edge *e = calloc(1, edge_size(&h));
    if (!e)
        return cs_fail(err, "node", "out of memory");
    *e = h;
    double *loc = (double *)edge_loc(e);
    if (r->set & NODE_F_LOCATION) {
        geo_point p = geo_unit(r->lat, r->lon);
        loc[0] = p.x;
        loc[1] = p.y;
        loc[2] = p.z;
    } else if (h.has_loc) {
        memcpy(loc, edge_loc(old), 3 * sizeof *loc);
    }
    double *viv = (double *)edge_viv(e);
    if (r->set & NODE_F_VIVALDI) {
        viv[0] = r->vivaldi_height;
        memcpy(viv + 1, r->vivaldi, r->vivaldi_dim * sizeof *viv);
    } else if (h.viv_dim) {
        memcpy(viv, edge_viv(old), (h.viv_dim + 1u) * sizeof *viv);
    }
    edge_latency *lat = (edge_latency *)edge_lat(e);
    if (r->set & NODE_F_LATENCY) {
        for (size_t i = 0; i < r->n_latency; i++) {
            int k = namedict_intern(&c->areas, r->latency[i].area, "latency_ms", err);
            if (k < 0) {
                free(e);
                return -1;
            }
            lat[i] = (edge_latency){(uint32_t)k, r->latency[i].ms};
        }
    } else if (h.n_lat_ms) {
        memcpy(lat, edge_lat(old), h.n_lat_ms * sizeof *lat);
    }
    char *lab = (char *)edge_labels(e);
    if (r->set & NODE_F_LABELS) {
        for (size_t i = 0; i < r->n_labels; i++) {
            lab = stpcpy(lab, r->labels[i].key) + 1;
            lab = stpcpy(lab, r->labels[i].value) + 1;
        }
    } else if (h.labels_len) {
        memcpy(lab, edge_labels(old), h.labels_len);
    }
    /* A report that repeats what the node has (every heartbeat replayed
     * from a shared store does) keeps the block it has. */
    if (old && edge_size(old) == edge_size(e) && memcmp(old, e, edge_size(e)) == 0) {
        free(e);
        return 0;
    }
    *next = e;
    *changed = true;
    return 0;
}

int cluster_report(cluster *c, const char *node_id, const node_report *r, double now, cs_error *err)
{
    if (node_id_check(node_id, err))
        return -1;
    if (!isfinite(now))
        return cs_fail(err, "now", "must be finite");
    int rc = -1;
    uint64_t addons = 0, csi = 0;
    int arch = -1;
    node_edge *edge = NULL;
    bool edge_changed = false;
    pthread_rwlock_wrlock(&c->lock);
    uint32_t pos = cluster_find_locked(c, node_id);
    bool is_new = pos == IDXMAP_NONE;
    if (is_new) {
        if (!(r->set & NODE_F_VIRT) || !r->virt) {
            cs_fail(err, "virtualization", "is required when a node first reports");
            goto out;
        }
        if (!(r->set & NODE_F_VCPUS)) {
            cs_fail(err, "vcpus", "is required when a node first reports");
            goto out;
        }
        if (!(r->set & NODE_F_MEMORY)) {
            cs_fail(err, "memory", "is required when a node first reports");
            goto out;
        }
    }
    /* Resolve every name before changing anything, so a failed report
     * leaves the node as it was. */
    if ((r->set & NODE_F_ARCH) &&
        (arch = namedict_intern(&c->arch, r->arch, "architecture", err)) < 0)
        goto out;
    if ((r->set & NODE_F_ADDONS) &&
        names_to_bits(&c->addons, &r->addons, "supported_addons", &addons, err))
        goto out;
    if ((r->set & NODE_F_CSI) && names_to_bits(&c->csi, &r->csi, "csi_drivers", &csi, err))
        goto out;
    if (edge_prepare(c, r, is_new ? NULL : c->edge[pos], &edge, &edge_changed, err))
        goto out;
    if (is_new) {
        if (grow_nodes(c)) {
            cs_fail(err, "node", "out of memory");
            goto out;
        }
        pos = (uint32_t)c->n;
        memset(&c->hot[pos], 0, sizeof c->hot[pos]);
        memset(&c->cold[pos], 0, sizeof c->cold[pos]);
        c->edge[pos] = NULL;
        strcpy(c->cold[pos].id, node_id);
        c->cold[pos].hash = cs_hash_str(node_id, 0);
        if (idxmap_insert(&c->by_id, c->cold[pos].hash, pos)) {
            cs_fail(err, "node", "out of memory");
            goto out;
        }
        c->n++;
        c->layout++;
    }
    node_hot *h = &c->hot[pos];
    node_cold *k = &c->cold[pos];
    if (r->set & NODE_F_HOST) {
        char *host = strdup(r->host);
        if (!host) {
            cs_fail(err, "host", "out of memory");
            goto out;
        }
        free(k->host);
        k->host = host;
    }
    if (r->set & NODE_F_VIRT)
        h->virt = (uint8_t)r->virt;
    if (arch >= 0)
        h->arch = (uint8_t)(arch + 1);
    if (r->set & NODE_F_VCPUS)
        h->cap_cpu = (int32_t)r->vcpus_milli;
    if (r->set & NODE_F_MEMORY)
        h->cap_mem = (int32_t)r->memory_mb;
    if (r->set & NODE_F_GPUS)
        k->cap_gpu = r->gpus;
    if (r->set & NODE_F_ADDONS)
        k->addons = addons;
    if (r->set & NODE_F_CSI)
        k->csi = csi;
    if (edge_changed) {
        edge_free(c->edge[pos]);
        c->edge[pos] = edge;
        edge = NULL;
    }
    /* A usage figure covers what ran when it was measured: only
     * reservations made after it still need subtracting. Each resource has
     * its own figure, so each has its own sequence. */
    if (r->set & NODE_F_CPU_PCT) {
        k->cpu_seq++;
        k->after_cpu = 0;
        k->cpu_pct = r->cpu_percent;
        k->has_cpu_pct = 1;
    }
    if (r->set & NODE_F_MEM_PCT) {
        k->mem_seq++;
        k->after_mem = 0;
        k->mem_pct = r->memory_percent;
        k->has_mem_pct = 1;
    }
    if (now > h->last_report)
        h->last_report = now;
    recompute_free(h, k);
    c->version++;
    rc = is_new ? 1 : 0;
out:
    pthread_rwlock_unlock(&c->lock);
    edge_free(edge);
    return rc;
}

int cluster_touch(cluster *c, const char *node_id, double now, bool restart_cpu, bool restart_mem)
{
    if (!node_id || !isfinite(now))
        return -1;
    int rc = -1;
    pthread_rwlock_wrlock(&c->lock);
    uint32_t pos = cluster_find_locked(c, node_id);
    if (pos == IDXMAP_NONE)
        goto out;
    node_hot *h = &c->hot[pos];
    node_cold *k = &c->cold[pos];
    /* As cluster_report with the same figures; a count without a figure
     * has nothing to start again from. */
    if (restart_cpu && k->has_cpu_pct) {
        k->cpu_seq++;
        k->after_cpu = 0;
    }
    if (restart_mem && k->has_mem_pct) {
        k->mem_seq++;
        k->after_mem = 0;
    }
    if (now > h->last_report)
        h->last_report = now;
    recompute_free(h, k);
    c->version++;
    rc = 0;
out:
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

static bool grp_eq(const void *ud, uint32_t pos, const void *key)
{
    const cluster *c = ud;
    return strcmp(c->grp[pos].job_id, key) == 0;
}

static uint32_t grp_find(const cluster *c, const char *job_id)
{
    return idxmap_find(&c->grp_by_id, cs_hash_str(job_id, 0), grp_eq, c, job_id);
}

const jobgrp *cluster_jobgrp_find_locked(const cluster *c, const char *job_id)
{
    uint32_t g = grp_find(c, job_id);
    return g == IDXMAP_NONE ? NULL : &c->grp[g];
}

/* The job's group, made when it has none. IDXMAP_NONE when out of memory. */
static uint32_t grp_get(cluster *c, const char *job_id)
{
    uint32_t g = grp_find(c, job_id);
    if (g != IDXMAP_NONE)
        return g;
    if (c->n_grp == c->cap_grp) {
        size_t ncap = c->cap_grp ? c->cap_grp * 2 : 64;
        jobgrp *ng = realloc(c->grp, ncap * sizeof *ng);
        if (!ng)
            return IDXMAP_NONE;
        c->grp = ng;
        c->cap_grp = ncap;
    }
    g = (uint32_t)c->n_grp;
    jobgrp *gr = &c->grp[g];
    memset(gr, 0, sizeof *gr);
    strcpy(gr->job_id, job_id);
    gr->hash = cs_hash_str(job_id, 0);
    gr->head = IDXMAP_NONE;
    if (idxmap_insert(&c->grp_by_id, gr->hash, g))
        return IDXMAP_NONE;
    c->n_grp++;
    return g;
}

/* Drops a group with no instances left (swapping the last one in). */
static void grp_drop_if_empty(cluster *c, uint32_t g)
{
    if (c->grp[g].n)
        return;
    idxmap_remove(&c->grp_by_id, c->grp[g].hash, g);
    uint32_t last = (uint32_t)(c->n_grp - 1);
    if (g != last) {
        c->grp[g] = c->grp[last];
        idxmap_move(&c->grp_by_id, c->grp[g].hash, last, g);
    }
    c->n_grp--;
}

/* Takes the reservation at pos out of its job's list. */
static void grp_unlink(cluster *c, uint32_t pos)
{
    resv *r = &c->res[pos];
    uint32_t g = grp_find(c, r->job_id);
    if (r->jnext != IDXMAP_NONE)
        c->res[r->jnext].jprev = r->jprev;
    if (r->jprev != IDXMAP_NONE)
        c->res[r->jprev].jnext = r->jnext;
    else if (g != IDXMAP_NONE)
        c->grp[g].head = r->jnext;
    if (g != IDXMAP_NONE) {
        c->grp[g].n--;
        grp_drop_if_empty(c, g);
    }
}

/* The reservation now at pos was moved there: its neighbours follow. */
static void grp_moved(cluster *c, uint32_t pos)
{
    resv *r = &c->res[pos];
    if (r->jnext != IDXMAP_NONE)
        c->res[r->jnext].jprev = pos;
    if (r->jprev != IDXMAP_NONE) {
        c->res[r->jprev].jnext = pos;
    } else {
        uint32_t g = grp_find(c, r->job_id);
        if (g != IDXMAP_NONE)
            c->grp[g].head = pos;
    }
}

size_t cluster_job_placements(cluster *c, const char *job_id, reservation_view *out, size_t max)
{
    pthread_rwlock_rdlock(&c->lock);
    const jobgrp *g = cluster_jobgrp_find_locked(c, job_id);
    size_t n = g ? g->n : 0, i = 0;
    for (uint32_t p = g ? g->head : IDXMAP_NONE; p != IDXMAP_NONE && i < max; p = c->res[p].jnext)
        resv_to_view(&c->res[p], &out[i++]);
    pthread_rwlock_unlock(&c->lock);
    return n;
}

static void resv_remove_at(cluster *c, uint32_t pos)
{
    resv *r = &c->res[pos];
    uint32_t npos = cluster_find_locked(c, r->node_id);
    if (npos != IDXMAP_NONE) {
        node_cold *k = &c->cold[npos];
        k->res_cpu -= r->cpu;
        k->res_mem -= r->mem;
        k->res_gpu -= r->gpu;
        k->n_res--;
        if (r->cpu_seq == k->cpu_seq)
            k->after_cpu -= r->cpu;
        if (r->mem_seq == k->mem_seq)
            k->after_mem -= r->mem;
        recompute_free(&c->hot[npos], k);
    }
    idxmap_remove(&c->res_by_key, r->hash, pos);
    grp_unlink(c, pos);
    uint32_t last = (uint32_t)(c->n_res - 1);
    if (pos != last) {
        c->res[pos] = c->res[last];
        idxmap_move(&c->res_by_key, c->res[pos].hash, last, pos);
        grp_moved(c, pos);
    }
    c->n_res--;
}

int cluster_remove(cluster *c, const char *node_id, reservation_view **dropped, size_t *n_dropped)
{
    int rc = -1;
    if (dropped) {
        *dropped = NULL;
        *n_dropped = 0;
    }
    pthread_rwlock_wrlock(&c->lock);
    uint32_t pos = cluster_find_locked(c, node_id);
    if (pos == IDXMAP_NONE)
        goto out;
    size_t n = 0;
    if (dropped) {
        /* Counted and copied under the same write lock as the removal, so
         * no placement can land on the node between the two. */
        for (size_t i = 0; i < c->n_res; i++)
            n += strcmp(c->res[i].node_id, node_id) == 0;
        if (n && !(*dropped = malloc(n * sizeof **dropped)))
            goto out;
    }
    for (size_t i = c->n_res; i-- > 0;)
        if (strcmp(c->res[i].node_id, node_id) == 0) {
            if (dropped)
                resv_to_view(&c->res[i], &(*dropped)[(*n_dropped)++]);
            resv_remove_at(c, (uint32_t)i);
        }
    idxmap_remove(&c->by_id, c->cold[pos].hash, pos);
    free(c->cold[pos].host);
    edge_free(c->edge[pos]);
    uint32_t last = (uint32_t)(c->n - 1);
    if (pos != last) {
        c->hot[pos] = c->hot[last];
        c->cold[pos] = c->cold[last];
        c->edge[pos] = c->edge[last];
        idxmap_move(&c->by_id, c->cold[pos].hash, last, pos);
    }
    c->n--;
    c->layout++;
    c->version++;
    rc = 0;
out:
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

size_t cluster_size(cluster *c)
{
    pthread_rwlock_rdlock(&c->lock);
    size_t n = c->n;
    pthread_rwlock_unlock(&c->lock);
    return n;
}

static void bits_to_names(const namedict *d, uint64_t bits, const char **out, uint32_t *n)
{
    *n = 0;
    for (size_t i = 0; i < d->n && i < 64; i++)
        if (bits & (1ull << i))
            out[(*n)++] = d->names[i];
}

static void fill_view(const cluster *c, uint32_t pos, double now, node_view *v)
{
    const node_hot *h = &c->hot[pos];
    const node_cold *k = &c->cold[pos];
    memset(v, 0, sizeof *v);
    strcpy(v->id, k->id);
    strcpy(v->host, k->host ? k->host : k->id);
    if (h->arch)
        strcpy(v->arch, c->arch.names[h->arch - 1]);
    v->virt = h->virt;
    v->vcpus_milli = h->cap_cpu;
    v->memory_mb = h->cap_mem;
    v->gpus = k->cap_gpu;
    v->has_usage = k->has_cpu_pct || k->has_mem_pct;
    v->cpu_percent = k->cpu_pct;
    v->memory_percent = k->mem_pct;
    if (c->edge[pos]) {
        const node_edge *e = c->edge[pos];
        if (e->has_loc) {
            const double *p = edge_loc(e);
            v->has_location = true;
            v->lat = asin(p[2] > 1 ? 1 : p[2] < -1 ? -1 : p[2]) * (180.0 / M_PI);
            v->lon = (p[0] == 0 && p[1] == 0) ? 0.0 : atan2(p[1], p[0]) * (180.0 / M_PI);
        }
        v->n_latency = e->n_lat_ms;
        v->vivaldi_dim = e->viv_dim;
        v->n_labels = e->n_labels;
    }
    v->last_report = h->last_report;
    v->active = now - h->last_report <= c->ttl;
    v->reserved_cpu_milli = k->res_cpu;
    v->reserved_memory_mb = k->res_mem;
    v->reserved_gpus = k->res_gpu;
    v->free_cpu_milli = h->free_cpu;
    v->free_memory_mb = h->free_mem;
    v->free_gpus = h->free_gpu;
    v->n_reservations = k->n_res;
    bits_to_names(&c->addons, k->addons, v->addons, &v->n_addons);
    bits_to_names(&c->csi, k->csi, v->csi, &v->n_csi);
}

int cluster_get(cluster *c, const char *node_id, double now, node_view *out)
{
    int rc = -1;
    pthread_rwlock_rdlock(&c->lock);
    uint32_t pos = cluster_find_locked(c, node_id);
    if (pos != IDXMAP_NONE) {
        fill_view(c, pos, now, out);
        rc = 0;
    }
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

void cluster_foreach(cluster *c, double now, int (*fn)(const node_view *, void *), void *ud)
{
    node_view v;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        fill_view(c, (uint32_t)i, now, &v);
        if (fn(&v, ud))
            break;
    }
    pthread_rwlock_unlock(&c->lock);
}

static int resv_add_locked(cluster *c, uint32_t npos, const char *job_id, uint32_t instance,
                           int64_t cpu, int64_t mem, int32_t gpu, double at)
{
    if (c->n_res == c->cap_res) {
        size_t ncap = c->cap_res ? c->cap_res * 2 : 64;
        resv *nr = realloc(c->res, ncap * sizeof *nr);
        if (!nr)
            return -1;
        c->res = nr;
        c->cap_res = ncap;
    }
    uint32_t g = grp_get(c, job_id);
    if (g == IDXMAP_NONE)
        return -1;
    resv *r = &c->res[c->n_res];
    memset(r, 0, sizeof *r);
    strcpy(r->job_id, job_id);
    strcpy(r->node_id, c->cold[npos].id);
    r->instance = instance;
    r->hash = resv_hash(job_id, instance);
    r->cpu = cpu;
    r->mem = mem;
    r->gpu = gpu;
    r->at = at;
    node_cold *k = &c->cold[npos];
    r->cpu_seq = k->cpu_seq;
    r->mem_seq = k->mem_seq;
    if (idxmap_insert(&c->res_by_key, r->hash, (uint32_t)c->n_res)) {
        grp_drop_if_empty(c, g);
        return -1;
    }
    uint32_t pos = (uint32_t)c->n_res;
    r->jprev = IDXMAP_NONE;
    r->jnext = c->grp[g].head;
    if (r->jnext != IDXMAP_NONE)
        c->res[r->jnext].jprev = pos;
    c->grp[g].head = pos;
    c->grp[g].n++;
    c->n_res++;
    k->res_cpu += cpu;
    k->res_mem += mem;
    k->res_gpu += gpu;
    k->after_cpu += cpu;
    k->after_mem += mem;
    k->n_res++;
    recompute_free(&c->hot[npos], k);
    c->version++;
    return 0;
}

int cluster_reserve_locked(cluster *c, uint32_t pos, const job_spec *job, double now)
{
    return resv_add_locked(c, pos, job->id, job->instance, job->vcpus_milli, job->memory_mb,
                           job->gpus, now);
}

void resv_to_view(const resv *r, reservation_view *out)
{
    memset(out, 0, sizeof *out);
    strcpy(out->job_id, r->job_id);
    strcpy(out->node_id, r->node_id);
    out->instance = r->instance;
    out->cpu_milli = r->cpu;
    out->memory_mb = r->mem;
    out->gpus = r->gpu;
    out->at = r->at;
}

int cluster_release(cluster *c, const char *job_id, uint32_t instance)
{
    int rc = -1;
    pthread_rwlock_wrlock(&c->lock);
    resv *r = cluster_resv_find_locked(c, job_id, instance);
    if (r) {
        resv_remove_at(c, (uint32_t)(r - c->res));
        c->version++;
        rc = 0;
    }
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

int cluster_release_if(cluster *c, const reservation_view *v)
{
    int rc = -1;
    pthread_rwlock_wrlock(&c->lock);
    resv *r = cluster_resv_find_locked(c, v->job_id, v->instance);
    if (r && r->at == v->at && strcmp(r->node_id, v->node_id) == 0) {
        resv_remove_at(c, (uint32_t)(r - c->res));
        c->version++;
        rc = 0;
    }
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

int cluster_placement(cluster *c, const char *job_id, uint32_t instance, reservation_view *out)
{
    int rc = -1;
    pthread_rwlock_rdlock(&c->lock);
    resv *r = cluster_resv_find_locked(c, job_id, instance);
    if (r) {
        if (out)
            resv_to_view(r, out);
        rc = 0;
    }
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

int cluster_restore(cluster *c, const reservation_view *rv, cs_error *err)
{
    cs_error e;
    if (node_id_check(rv->job_id, &e))
        return cs_fail(err, "job_id", "%s", e.msg);
    if (rv->cpu_milli < 0 || rv->memory_mb < 0 || rv->gpus < 0)
        return cs_fail(err, "reservation", "negative amount");
    /* Restored figures come from a store, not through job_spec's checks:
     * no more than one job may ask for, so the node's sums cannot overflow. */
    if ((double)rv->cpu_milli > CS_VCPUS_MAX * 1000.0 || (double)rv->memory_mb > CS_MEMORY_MAX ||
        (double)rv->gpus > CS_GPUS_MAX)
        return cs_fail(err, "reservation", "amount above what one job may ask for");
    int rc = -1;
    pthread_rwlock_wrlock(&c->lock);
    uint32_t npos = cluster_find_locked(c, rv->node_id);
    if (npos == IDXMAP_NONE) {
        cs_fail(err, "node_id", "unknown node '%.40s'", rv->node_id);
        goto out;
    }
    resv *old = cluster_resv_find_locked(c, rv->job_id, rv->instance);
    if (old)
        resv_remove_at(c, (uint32_t)(old - c->res));
    /* Counted as made after the last usage report: a restored placement
     * may not show in the node's figures yet, and over-counting is safe. */
    if (resv_add_locked(c, npos, rv->job_id, rv->instance, rv->cpu_milli, rv->memory_mb, rv->gpus,
                        rv->at)) {
        cs_fail(err, "reservation", "out of memory");
        goto out;
    }
    rc = 0;
out:
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

/* True when some reservation may be stale: one on a silent node, or one
 * whose node is not in the table (then the per-node counts fall short of
 * the total). Thousands of nodes instead of what may be millions of
 * reservations, each a lookup by name: the reaper asks every few seconds,
 * and usually nothing is stale. Lock held. */
static bool any_stale_locked(const cluster *c, double now)
{
    size_t on_nodes = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->cold[i].n_res && now - c->hot[i].last_report > c->ttl)
            return true;
        on_nodes += c->cold[i].n_res;
    }
    return on_nodes != c->n_res;
}

size_t cluster_stale_placements(cluster *c, double now, reservation_view *out, size_t max)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&c->lock);
    if (!max || !any_stale_locked(c, now))
        goto out;
    for (size_t i = 0; i < c->n_res && n < max; i++) {
        uint32_t npos = cluster_find_locked(c, c->res[i].node_id);
        if (npos == IDXMAP_NONE || now - c->hot[npos].last_report > c->ttl)
            resv_to_view(&c->res[i], &out[n++]);
    }
out:
    pthread_rwlock_unlock(&c->lock);
    return n;
}

void cluster_silence(cluster *c, double now, double horizon, size_t *heard, size_t *late,
                     size_t *silent)
{
    size_t h = 0, l = 0, q = 0;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        double age = now - c->hot[i].last_report;
        if (age > horizon)
            continue;
        h++;
        if (age > c->ttl)
            q++;
        else if (age > c->ttl / 2)
            l++;
    }
    pthread_rwlock_unlock(&c->lock);
    *heard = h;
    *late = l;
    *silent = q;
}

size_t cluster_placements(cluster *c, size_t from, reservation_view *out, size_t max)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = from; i < c->n_res && n < max; i++)
        resv_to_view(&c->res[i], &out[n++]);
    pthread_rwlock_unlock(&c->lock);
    return n;
}

size_t cluster_memory_bytes(cluster *c)
{
    pthread_rwlock_rdlock(&c->lock);
    size_t hosts = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->cold[i].host)
            hosts += strlen(c->cold[i].host) + 1;
        hosts += edge_bytes(c->edge[i]);
    }
    size_t names = c->arch.n + c->addons.n + c->csi.n + c->areas.n;
    size_t b =
        hosts + sizeof *c + c->cap * (sizeof(node_hot) + sizeof(node_cold) + sizeof(void *)) +
        idxmap_bytes(&c->by_id) + c->cap_res * sizeof(resv) + idxmap_bytes(&c->res_by_key) +
        c->cap_grp * sizeof(jobgrp) + idxmap_bytes(&c->grp_by_id) + names * (CS_NAME_MAX + 1) +
        idxmap_bytes(&c->arch.index) + idxmap_bytes(&c->addons.index) +
        idxmap_bytes(&c->csi.index) + idxmap_bytes(&c->areas.index);
    pthread_rwlock_unlock(&c->lock);
    return b;
}
