/* engine.c - filter, score, rank and reserve.
 *
 * A decision is two passes over the dense array of hot node fields: the
 * first runs the filters (one reason code per rejected node) and collects
 * the qualified positions with the largest free amounts; the second scores
 * those and keeps the best k in a bounded heap, so the cost is
 * O(n + q log k) and nothing sorts the whole cluster.
 *
 * engine_place ranks under the read lock (decisions run in parallel), then
 * takes the write lock and walks the candidates best first, re-running the
 * SAME filter function on each before reserving it: a node taken by another
 * thread in between simply fails the re-check and the next one is tried.
 * After a few lost races it ranks under the write lock, which always
 * succeeds, so no decision can starve.
 *
 * Edge constraints (geo, latency, connectivity) are filters of their own:
 * one plugin each in `edge_filters` (a check with its reasons, and the
 * figure it measures, for ranking and explanations). The filter pass is
 * compiled twice, with and without the edge chain, so a job without edge
 * constraints runs the same loop as before and never reads edge data.
 * Anti-affinity (spreading a job's instances over nodes or label values)
 * works on the qualified list after the pass, and only when other
 * instances of the job are placed; the commit re-checks it, so two
 * instances placed at once still go to different nodes. */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_priv.h"
#include "geo.h"
#include "virt.h"

#define OK_NODE REASON__COUNT
#define OPTIMISTIC_TRIES 3
#define TCO_STRIDE (CS_VIVALDI_DIM_MAX + 2) /* a target: dim, height, coordinates */

typedef struct heap_item {
    double score;
    double tie; /* the strategy's score, when a proximity preference ranks first */
    uint32_t pos;
} heap_item;

/* One of the job's edge constraints, resolved against the cluster. */
typedef struct rcons {
    const job_constraint *jc;
    geo_point p;       /* geo: the job's point */
    double chord2_max; /* geo: the threshold as a squared chord */
    int area;          /* latency: dictionary position; -1 when no node measured it */
    size_t tfirst, tn; /* connectivity: the targets' coordinates in ctx->tco */
    int target_fail;   /* connectivity: the reason every node gets, or OK_NODE */
} rcons;

struct engine_ctx {
    engine_opts opts;
    uint32_t *qual;
    size_t qual_cap;
    heap_item *heap;
    size_t heap_cap;
    engine_candidate *cands;
    size_t cands_cap;
    rcons cons[CS_LIST_MAX];
    size_t cons_removed[CS_LIST_MAX];
    double *tco; /* connectivity targets, TCO_STRIDE doubles each */
    size_t tco_cap;
    uint32_t *hold; /* nodes running other instances of the job, sorted */
    size_t hold_cap;
    const char **hold_val; /* their label values, distinct (spread_by a label) */
    size_t hold_val_cap;
    uint8_t *tier; /* spread tier of each qualified node */
    size_t tier_cap;
};

/* A job's names turned into the cluster's bit positions. A name no node
 * has ever reported cannot be satisfied: `impossible` says so. */
typedef struct resolved {
    const job_spec *job;
    double cutoff;
    /* The job's requests copied in, so the filter loop reads them from a
     * local the compiler can keep in registers. */
    int64_t cpu, mem;
    int32_t gpu;
    uint8_t virt;
    bool need_arch, has_direct, has_addons, has_csi;
    uint64_t arch[4]; /* bit (dictionary position + 1) */
    uint64_t addons, csi;
    bool addons_impossible, csi_impossible;
    /* Edge constraints (in ctx), the targets' coordinates, and whether a
     * constraint ranks by proximity. */
    const rcons *cons;
    size_t n_cons;
    const double *tco;
    bool prefer;
    /* The spread tier the ranking kept (see spread_filter); a commit may
     * not take a node of a worse one. -1: the job does not spread. */
    int spread_best;
} resolved;

static const char *const reason_keys[REASON__COUNT] = {
    "inactive",
    "technology",
    "architecture",
    "direct",
    "addons",
    "csi_driver",
    "insufficient_gpu",
    "insufficient_cpu",
    "insufficient_memory",
    "no_location",
    "too_far",
    "no_latency",
    "latency_too_high",
    "no_coordinates",
    "target_not_running",
    "target_no_coordinates",
    "connectivity_too_slow",
    "replica_in_label",
    "replica_on_node",
};

const char *engine_reason_key(engine_reason r)
{
    return (unsigned)r < REASON__COUNT ? reason_keys[r] : "unknown";
}

void engine_opts_default(engine_opts *o)
{
    o->strategy = STRATEGY_MOST_FREE;
    o->top_k = 10;
    o->weight_cpu = 1.0;
    o->weight_memory = 1.0;
}

engine_ctx *engine_ctx_new(const engine_opts *opts)
{
    engine_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    if (opts)
        ctx->opts = *opts;
    else
        engine_opts_default(&ctx->opts);
    if (ctx->opts.strategy == STRATEGY_DEFAULT)
        ctx->opts.strategy = STRATEGY_MOST_FREE;
    if (ctx->opts.top_k == 0)
        ctx->opts.top_k = 10;
    if (!(ctx->opts.weight_cpu >= 0) || !(ctx->opts.weight_memory >= 0) ||
        ctx->opts.weight_cpu + ctx->opts.weight_memory <= 0) {
        ctx->opts.weight_cpu = 1.0;
        ctx->opts.weight_memory = 1.0;
    }
    return ctx;
}

void engine_ctx_free(engine_ctx *ctx)
{
    if (!ctx)
        return;
    free(ctx->qual);
    free(ctx->heap);
    free(ctx->cands);
    free(ctx->tco);
    free(ctx->hold);
    free(ctx->hold_val);
    free(ctx->tier);
    free(ctx);
}

static int reserve_space(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *nb = realloc(*buf, ncap * elem);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

/* ---- edge filters ------------------------------------------------------- */

/* One plugin per edge constraint kind: the check (OK_NODE or a reason) and
 * the figure it compares (km, ms; NAN when the node lacks it), which
 * ranks nodes under `prefer` and fills explanations. */
typedef struct edge_filter {
    const char *name;
    int (*check)(const resolved *rj, const node_edge *e, const rcons *rc);
    double (*value)(const resolved *rj, const node_edge *e, const rcons *rc);
} edge_filter;

static int geo_check(const resolved *rj, const node_edge *e, const rcons *rc)
{
    (void)rj;
    if (!e || !e->has_loc)
        return REASON_NO_LOCATION;
    const double *l = edge_loc(e);
    geo_point q = {l[0], l[1], l[2]};
    return geo_chord2(&rc->p, &q) <= rc->chord2_max ? OK_NODE : REASON_TOO_FAR;
}

static double geo_value(const resolved *rj, const node_edge *e, const rcons *rc)
{
    (void)rj;
    if (!e || !e->has_loc)
        return NAN;
    const double *l = edge_loc(e);
    geo_point q = {l[0], l[1], l[2]};
    return geo_chord_km(geo_chord2(&rc->p, &q));
}

static const edge_latency *latency_find(const node_edge *e, int area)
{
    if (!e || area < 0)
        return NULL;
    const edge_latency *l = edge_lat(e);
    for (uint8_t i = 0; i < e->n_lat_ms; i++)
        if (l[i].area == (uint32_t)area)
            return &l[i];
    return NULL;
}

static int latency_check(const resolved *rj, const node_edge *e, const rcons *rc)
{
    (void)rj;
    const edge_latency *l = latency_find(e, rc->area);
    if (!l)
        return REASON_NO_LATENCY;
    return l->ms <= rc->jc->threshold ? OK_NODE : REASON_LATENCY;
}

static double latency_value(const resolved *rj, const node_edge *e, const rcons *rc)
{
    (void)rj;
    const edge_latency *l = latency_find(e, rc->area);
    return l ? l->ms : NAN;
}

/* Vivaldi's estimate: the distance of the coordinates plus both heights.
 * Coordinates of different dimensions are compared with zeros for the
 * missing ones. t: a target as stored in ctx->tco. */
static double vivaldi_estimate(const node_edge *e, const double *t)
{
    const double *v = edge_viv(e); /* height, coordinates */
    size_t td = (size_t)t[0], d = e->viv_dim > td ? e->viv_dim : td;
    double sum = 0;
    for (size_t i = 0; i < d; i++) {
        double a = i < e->viv_dim ? v[1 + i] : 0.0, b = i < td ? t[2 + i] : 0.0;
        sum += (a - b) * (a - b);
    }
    return sqrt(sum) + v[0] + t[1];
}

static int connectivity_check(const resolved *rj, const node_edge *e, const rcons *rc)
{
    if (rc->target_fail != OK_NODE)
        return rc->target_fail;
    if (!e || !e->viv_dim)
        return REASON_NO_COORDINATES;
    for (size_t i = 0; i < rc->tn; i++)
        if (vivaldi_estimate(e, rj->tco + (rc->tfirst + i) * TCO_STRIDE) > rc->jc->threshold)
            return REASON_CONNECTIVITY;
    return OK_NODE;
}

/* The worst estimate over the targets. */
static double connectivity_value(const resolved *rj, const node_edge *e, const rcons *rc)
{
    if (rc->target_fail != OK_NODE || !e || !e->viv_dim || !rc->tn)
        return NAN;
    double worst = 0;
    for (size_t i = 0; i < rc->tn; i++) {
        double v = vivaldi_estimate(e, rj->tco + (rc->tfirst + i) * TCO_STRIDE);
        worst = v > worst ? v : worst;
    }
    return worst;
}

static const edge_filter edge_filters[] = {
    [JOB_CONS_GEO] = {"geo", geo_check, geo_value},
    [JOB_CONS_LATENCY] = {"latency", latency_check, latency_value},
    [JOB_CONS_CONNECTIVITY] = {"connectivity", connectivity_check, connectivity_value},
};

/* Runs the job's edge constraints in order; *which gets the position of
 * the one that rejected. */
static int edge_check(const cluster *c, uint32_t pos, const resolved *rj, size_t *which)
{
    const node_edge *e = c->edge[pos];
    for (size_t i = 0; i < rj->n_cons; i++) {
        const rcons *rc = &rj->cons[i];
        int r = edge_filters[rc->jc->kind].check(rj, e, rc);
        if (r != OK_NODE) {
            *which = i;
            return r;
        }
    }
    return OK_NODE;
}

/* Copies the coordinates of every node running the target job (other than
 * this instance) into ctx->tco. 0, or -1 out of memory. */
static int resolve_targets(engine_ctx *ctx, const cluster *c, const job_spec *job, rcons *rc,
                           size_t *used)
{
    rc->tfirst = *used;
    rc->tn = 0;
    rc->target_fail = OK_NODE;
    const jobgrp *g = cluster_jobgrp_find_locked(c, rc->jc->name);
    for (uint32_t p = g ? g->head : IDXMAP_NONE; p != IDXMAP_NONE; p = c->res[p].jnext) {
        const resv *r = &c->res[p];
        if (r->instance == job->instance && strcmp(r->job_id, job->id) == 0)
            continue;
        uint32_t pos = cluster_find_locked(c, r->node_id);
        const node_edge *e = pos == IDXMAP_NONE ? NULL : c->edge[pos];
        if (!e || !e->viv_dim) {
            rc->target_fail = REASON_TARGET_NO_COORDINATES;
            return 0;
        }
        if (reserve_space((void **)&ctx->tco, &ctx->tco_cap, (*used + 1) * TCO_STRIDE,
                          sizeof *ctx->tco))
            return -1;
        double *t = ctx->tco + *used * TCO_STRIDE;
        const double *v = edge_viv(e);
        t[0] = e->viv_dim;
        t[1] = v[0];
        memcpy(t + 2, v + 1, e->viv_dim * sizeof *v);
        (*used)++;
        rc->tn++;
    }
    if (rc->tn == 0)
        rc->target_fail = REASON_TARGET_NOT_RUNNING;
    return 0;
}

static int resolve_edge(engine_ctx *ctx, const cluster *c, const job_spec *job, resolved *rj)
{
    size_t used = 0;
    for (size_t i = 0; i < job->n_cons && i < CS_LIST_MAX; i++) {
        const job_constraint *jc = &job->cons[i];
        rcons *rc = &ctx->cons[i];
        memset(rc, 0, sizeof *rc);
        rc->jc = jc;
        rc->area = -1;
        rc->target_fail = OK_NODE;
        switch (jc->kind) {
        case JOB_CONS_GEO:
            rc->p = geo_unit(jc->lat, jc->lon);
            rc->chord2_max = geo_chord2_max(jc->threshold);
            break;
        case JOB_CONS_LATENCY:
            rc->area = namedict_find(&c->areas, jc->name);
            break;
        case JOB_CONS_CONNECTIVITY:
            if (resolve_targets(ctx, c, job, rc, &used))
                return -1;
            break;
        }
        rj->prefer |= jc->prefer;
    }
    rj->cons = ctx->cons;
    rj->n_cons = job->n_cons < CS_LIST_MAX ? job->n_cons : CS_LIST_MAX;
    rj->tco = ctx->tco;
    return 0;
}

static int resolve(engine_ctx *ctx, const cluster *c, const job_spec *job, double now, resolved *rj)
{
    memset(rj, 0, sizeof *rj);
    rj->job = job;
    rj->cutoff = now - c->ttl;
    rj->cpu = job->vcpus_milli;
    rj->mem = job->memory_mb;
    rj->gpu = job->gpus;
    rj->virt = (uint8_t)job->virt;
    rj->need_arch = job->arch.n > 0;
    rj->has_direct = job->has_direct;
    rj->has_addons = job->addons.n > 0;
    rj->has_csi = job->csi.n > 0;
    rj->spread_best = job->spread == SPREAD_NONE ? -1 : 0;
    for (size_t i = 0; i < job->arch.n; i++) {
        int k = namedict_find(&c->arch, job->arch.v[i]);
        if (k >= 0)
            rj->arch[(k + 1) / 64] |= 1ull << ((k + 1) % 64);
    }
    for (size_t i = 0; i < job->addons.n; i++) {
        int k = namedict_find(&c->addons, job->addons.v[i]);
        if (k < 0)
            rj->addons_impossible = true;
        else
            rj->addons |= 1ull << k;
    }
    for (size_t i = 0; i < job->csi.n; i++) {
        int k = namedict_find(&c->csi, job->csi.v[i]);
        if (k < 0)
            rj->csi_impossible = true;
        else
            rj->csi |= 1ull << k;
    }
    return job->n_cons ? resolve_edge(ctx, c, job, rj) : 0;
}

static bool direct_ok(const cluster *c, uint32_t pos, const job_spec *job)
{
    const node_cold *k = &c->cold[pos];
    for (size_t i = 0; i < job->hosts.n; i++)
        if ((k->host && strcmp(job->hosts.v[i], k->host) == 0) ||
            strcmp(job->hosts.v[i], k->id) == 0)
            return true;
    return false;
}

/* Whether the job asks for none of architecture, direct placement, addons
 * and CSI drivers: the filter pass then has a loop without those tests. */
static inline bool plain_job(const resolved *rj)
{
    return !rj->need_arch && !rj->has_direct && !rj->has_addons && !rj->has_csi;
}

/* The built-in filters, on the node's hot record h (a copy when an
 * explanation counts the instance's own reservation as released). `plain`
 * is a constant at each call site: plain_job(rj) holds, so those tests
 * are left out of the loop rather than tested and skipped per node. */
static inline __attribute__((always_inline)) int
check_base_as(const cluster *c, uint32_t pos, const node_hot *h, const resolved *rj, bool plain)
{
    if (h->last_report < rj->cutoff)
        return REASON_INACTIVE;
    if (!(h->virt & rj->virt))
        return REASON_TECHNOLOGY;
    if (!plain) {
        if (rj->need_arch && !(rj->arch[h->arch / 64] & (1ull << (h->arch % 64))))
            return REASON_ARCH;
        if (rj->has_direct && !direct_ok(c, pos, rj->job))
            return REASON_DIRECT;
        /* Addons and CSI drivers live in the cold record: most jobs ask
         * for neither, so the filter pass need not stream them. */
        if (rj->has_addons &&
            (rj->addons_impossible || (c->cold[pos].addons & rj->addons) != rj->addons))
            return REASON_ADDONS;
        if (rj->has_csi && (rj->csi_impossible || (c->cold[pos].csi & rj->csi) != rj->csi))
            return REASON_CSI;
    }
    if (h->free_gpu < rj->gpu)
        return REASON_GPU;
    if (h->free_cpu < rj->cpu)
        return REASON_CPU;
    if (h->free_mem < rj->mem)
        return REASON_MEMORY;
    return OK_NODE;
}

static inline __attribute__((always_inline)) int check_base(const cluster *c, uint32_t pos,
                                                            const node_hot *h, const resolved *rj)
{
    return check_base_as(c, pos, h, rj, false);
}

/* The one feasibility function: used to choose and again to commit. */
static int check_node(const cluster *c, uint32_t pos, const resolved *rj)
{
    int r = check_base(c, pos, &c->hot[pos], rj);
    size_t which;
    if (r == OK_NODE && rj->n_cons)
        r = edge_check(c, pos, rj, &which);
    return r;
}

/* ---- anti-affinity ------------------------------------------------------ */

static bool same_value(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The nodes running other instances of the job (sorted, distinct) and,
 * spreading by a label, their distinct values of it (NULL for a node
 * without the label: such nodes form one group). Returns how many nodes,
 * or -1 out of memory. */
static long spread_holders(engine_ctx *ctx, const cluster *c, const job_spec *job, size_t *n_val)
{
    *n_val = 0;
    const jobgrp *g = cluster_jobgrp_find_locked(c, job->id);
    if (!g)
        return 0;
    if (reserve_space((void **)&ctx->hold, &ctx->hold_cap, g->n, sizeof *ctx->hold) ||
        reserve_space((void **)&ctx->hold_val, &ctx->hold_val_cap, g->n, sizeof *ctx->hold_val))
        return -1;
    size_t n = 0;
    for (uint32_t p = g->head; p != IDXMAP_NONE; p = c->res[p].jnext) {
        if (c->res[p].instance == job->instance)
            continue; /* this instance itself (an explanation of a placed one) */
        uint32_t pos = cluster_find_locked(c, c->res[p].node_id);
        if (pos != IDXMAP_NONE)
            ctx->hold[n++] = pos;
    }
    qsort(ctx->hold, n, sizeof *ctx->hold, cmp_u32);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || ctx->hold[k - 1] != ctx->hold[i])
            ctx->hold[k++] = ctx->hold[i];
    if (job->spread == SPREAD_LABEL) {
        for (size_t i = 0; i < k; i++) {
            const char *v = node_edge_label(c->edge[ctx->hold[i]], job->spread_label);
            bool seen = false;
            for (size_t j = 0; j < *n_val && !seen; j++)
                seen = same_value(ctx->hold_val[j], v);
            if (!seen)
                ctx->hold_val[(*n_val)++] = v;
        }
    }
    return (long)k;
}

/* Keeps, of the qualified nodes, only those of the best spread tier
 * present: 0 = free of the job (and, by a label, in a label group free of
 * it), 1 = free of it in a group that runs it, 2 = runs it. The others are
 * counted as removed (and, with x, explained). Returns 1 when other
 * instances were placed (the filter had work), 0 when not, -1 out of
 * memory. */
static int spread_filter(engine_ctx *ctx, const cluster *c, resolved *rj, size_t *q,
                         size_t *reasons, engine_node_explain *x)
{
    const job_spec *job = rj->job;
    size_t n_val;
    long nh = spread_holders(ctx, c, job, &n_val);
    if (nh <= 0)
        return (int)nh;
    if (reserve_space((void **)&ctx->tier, &ctx->tier_cap, *q, 1))
        return -1;
    bool by_label = job->spread == SPREAD_LABEL;
    int best = 2;
    size_t hi = 0; /* qual and hold are both ascending: one merge walk */
    for (size_t j = 0; j < *q; j++) {
        uint32_t pos = ctx->qual[j];
        while (hi < (size_t)nh && ctx->hold[hi] < pos)
            hi++;
        int t = hi < (size_t)nh && ctx->hold[hi] == pos ? 2 : 0;
        if (t == 0 && by_label) {
            const char *v = node_edge_label(c->edge[pos], job->spread_label);
            for (size_t i = 0; i < n_val && t == 0; i++)
                t = same_value(ctx->hold_val[i], v) ? 1 : 0;
        }
        ctx->tier[j] = (uint8_t)t;
        best = t < best ? t : best;
    }
    size_t keep = 0;
    for (size_t j = 0; j < *q; j++) {
        uint32_t pos = ctx->qual[j];
        if (ctx->tier[j] == best) {
            ctx->qual[keep++] = pos;
            continue;
        }
        engine_reason r = by_label && (ctx->tier[j] == 1 || best == 0) ? REASON_REPLICA_LABEL
                                                                       : REASON_REPLICA_NODE;
        reasons[r]++;
        if (x) {
            x[pos].reason = r;
            if (r == REASON_REPLICA_LABEL) {
                const char *v = node_edge_label(c->edge[pos], job->spread_label);
                snprintf(x[pos].label, sizeof x[pos].label, "%s", v ? v : "");
            }
        }
    }
    *q = keep;
    rj->spread_best = best;
    return 1;
}

/* The node's spread tier now (under the write lock, at commit): another
 * placement may have landed since the ranking. */
static int spread_tier_now(const cluster *c, uint32_t pos, const job_spec *job)
{
    const jobgrp *g = cluster_jobgrp_find_locked(c, job->id);
    if (!g)
        return 0;
    bool by_label = job->spread == SPREAD_LABEL;
    const char *mine = by_label ? node_edge_label(c->edge[pos], job->spread_label) : NULL;
    int t = 0;
    for (uint32_t p = g->head; p != IDXMAP_NONE; p = c->res[p].jnext) {
        const resv *r = &c->res[p];
        if (r->instance == job->instance)
            continue;
        if (strcmp(r->node_id, c->cold[pos].id) == 0)
            return 2;
        if (by_label && t == 0) {
            uint32_t hp = cluster_find_locked(c, r->node_id);
            if (hp != IDXMAP_NONE &&
                same_value(node_edge_label(c->edge[hp], job->spread_label), mine))
                t = 1;
        }
    }
    return t;
}

/* ---- scoring ------------------------------------------------------------ */

typedef struct scorer {
    engine_strategy strategy;
    double wc, wm;             /* weights, normalised to sum 1 */
    double inv_maxc, inv_maxm; /* most-free: 1 / largest free amount */
    double rc, rm;             /* the request */
} scorer;

static inline double frac(double num, double den)
{
    return den > 0 ? num / den : 0.0;
}

/* Scores are 0..100, higher is better. */
static inline double score_node(const scorer *s, const node_hot *h)
{
    switch (s->strategy) {
    case STRATEGY_BEST_FIT: {
        /* Least capacity left over after placing, as a fraction of capacity. */
        double lc = frac((double)h->free_cpu - s->rc, (double)h->cap_cpu);
        double lm = frac((double)h->free_mem - s->rm, (double)h->cap_mem);
        return 100.0 * (1.0 - (s->wc * lc + s->wm * lm));
    }
    case STRATEGY_SPREAD: {
        /* Lowest utilisation after placing = most left over as a fraction. */
        double lc = frac((double)h->free_cpu - s->rc, (double)h->cap_cpu);
        double lm = frac((double)h->free_mem - s->rm, (double)h->cap_mem);
        return 100.0 * (s->wc * lc + s->wm * lm);
    }
    default:
        /* Most free in absolute terms, normalised by the largest free amount
         * among the qualified nodes, so a big idle node beats a small one. */
        return 100.0 * (s->wc * (double)h->free_cpu * s->inv_maxc +
                        s->wm * (double)h->free_mem * s->inv_maxm);
    }
}

/* With `prefer`: 0..100 by how far under its threshold the node's figure
 * is (100 = distance or latency 0), averaged over the preferring
 * constraints. */
static double proximity_score(const resolved *rj, const node_edge *e)
{
    double sum = 0;
    int n = 0;
    for (size_t i = 0; i < rj->n_cons; i++) {
        const rcons *rc = &rj->cons[i];
        if (!rc->jc->prefer)
            continue;
        double v = edge_filters[rc->jc->kind].value(rj, e, rc), t = rc->jc->threshold;
        double sc = !isfinite(v) ? 0.0 : t > 0 ? 100.0 * (1.0 - v / t) : 100.0;
        sum += sc < 0 ? 0 : sc > 100 ? 100 : sc;
        n++;
    }
    return n ? sum / n : 0.0;
}

static void scorer_init(scorer *s, const engine_ctx *ctx, const job_spec *job, int32_t maxc,
                        int32_t maxm)
{
    *s = (scorer){
        .strategy = job->strategy != STRATEGY_DEFAULT ? job->strategy : ctx->opts.strategy,
        .inv_maxc = maxc > 0 ? 1.0 / (double)maxc : 0.0,
        .inv_maxm = maxm > 0 ? 1.0 / (double)maxm : 0.0,
        .rc = (double)job->vcpus_milli,
        .rm = (double)job->memory_mb,
    };
    double wsum = ctx->opts.weight_cpu + ctx->opts.weight_memory;
    s->wc = ctx->opts.weight_cpu / wsum;
    s->wm = ctx->opts.weight_memory / wsum;
}

/* How one ranking orders nodes: the cluster, its id ranks (NULL when not
 * built for its current nodes) and how many times the ids themselves had
 * to be compared instead, which the ranking then tells the cluster (see
 * cluster_id_compares_add). */
typedef struct order {
    const cluster *c;
    const uint32_t *idr;
    size_t id_cmps;
} order;

/* a ranks before b: higher score, then higher tie score, then smaller node
 * id. */
static inline bool better(order *o, const heap_item *a, const heap_item *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    if (a->tie != b->tie)
        return a->tie > b->tie;
    if (o->idr)
        return o->idr[a->pos] < o->idr[b->pos];
    o->id_cmps++;
    return strcmp(o->c->cold[a->pos].id, o->c->cold[b->pos].id) < 0;
}

/* Min-heap on `better`: the root is the worst of the kept k. */
static void heap_sift_down(order *o, heap_item *hp, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(o, &hp[w], &hp[l]))
            w = l;
        if (r < n && better(o, &hp[w], &hp[r]))
            w = r;
        if (w == i)
            return;
        heap_item t = hp[i];
        hp[i] = hp[w];
        hp[w] = t;
        i = w;
    }
}

static void heap_sift_up(order *o, heap_item *hp, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(o, &hp[p], &hp[i]))
            return;
        heap_item t = hp[i];
        hp[i] = hp[p];
        hp[p] = t;
        i = p;
    }
}

/* Offers one scored node to the heap of the best k. */
static inline void heap_offer(order *o, engine_ctx *ctx, size_t *hn, size_t k, const heap_item *it)
{
    if (*hn < k) {
        ctx->heap[*hn] = *it;
        heap_sift_up(o, ctx->heap, (*hn)++);
    } else if (better(o, it, &ctx->heap[0])) {
        ctx->heap[0] = *it;
        heap_sift_down(o, ctx->heap, *hn, 0);
    }
}

/* Scores the q qualified nodes and keeps the best k in the heap; returns
 * how many it kept. `strategy` is a constant at each call site, so the
 * compiler builds one specialised loop per strategy. */
static inline __attribute__((always_inline)) size_t
keep_best(order *o, engine_ctx *ctx, size_t q, size_t k, scorer *s, engine_strategy strategy)
{
    const node_hot *hot = o->c->hot;
    s->strategy = strategy;
    size_t hn = 0;
    double worst = 0;
    for (size_t j = 0; j < q; j++) {
        uint32_t pos = ctx->qual[j];
        double score = score_node(s, &hot[pos]);
        if (hn == k && score < worst)
            continue; /* the common case once the heap is full: no call */
        heap_item it = {score, 0.0, pos};
        heap_offer(o, ctx, &hn, k, &it);
        worst = ctx->heap[0].score;
    }
    return hn;
}

/* With a proximity preference: proximity first, the strategy's score
 * breaks ties. Only jobs with `prefer` come here. */
static size_t keep_best_prefer(order *o, engine_ctx *ctx, size_t q, size_t k, const scorer *s,
                               const resolved *rj)
{
    const cluster *c = o->c;
    size_t hn = 0;
    for (size_t j = 0; j < q; j++) {
        uint32_t pos = ctx->qual[j];
        heap_item it = {proximity_score(rj, c->edge[pos]), score_node(s, &c->hot[pos]), pos};
        heap_offer(o, ctx, &hn, k, &it);
    }
    return hn;
}

/* ---- ranking ------------------------------------------------------------ */

/* The filter pass: qualified positions into qual, rejections counted per
 * reason (and per edge constraint). `edge` is a constant at each call site:
 * jobs without edge constraints get a loop without the edge chain. */
static inline __attribute__((always_inline)) size_t
filter_pass(const cluster *c, const resolved *rl, uint32_t *qual, size_t *reasons,
            size_t *cons_removed, int32_t *maxc_out, int32_t *maxm_out, bool edge, bool plain)
{
    const size_t n = c->n;
    const node_hot *hot = c->hot;
    size_t q = 0;
    int32_t maxc = 0, maxm = 0;
    for (uint32_t i = 0; i < n; i++) {
        int r = check_base_as(c, i, &hot[i], rl, plain);
        if (edge && r == OK_NODE) {
            size_t w = 0;
            r = edge_check(c, i, rl, &w);
            if (r != OK_NODE)
                cons_removed[w]++;
        }
        if (r != OK_NODE) {
            reasons[r]++;
            continue;
        }
        qual[q++] = i;
        maxc = hot[i].free_cpu > maxc ? hot[i].free_cpu : maxc;
        maxm = hot[i].free_mem > maxm ? hot[i].free_mem : maxm;
    }
    *maxc_out = maxc;
    *maxm_out = maxm;
    return q;
}

static void fill_candidate(const cluster *c, engine_candidate *cd, const heap_item *it,
                           const node_hot *h)
{
    strcpy(cd->node_id, c->cold[it->pos].id);
    cd->score = it->score;
    cd->free_cpu_milli = h->free_cpu;
    cd->free_memory_mb = h->free_mem;
    cd->free_gpus = h->free_gpu;
}

static int rank_locked(engine_ctx *ctx, const cluster *c, const job_spec *job, double now,
                       engine_result *out, resolved *rj)
{
    memset(out, 0, sizeof *out);
    out->job = job;
    /* Everything the loop touches is a local: stores to the counters and
     * the qualified list then cannot make the compiler reload the rest. */
    resolved rl;
    if (resolve(ctx, c, job, now, &rl))
        return -1;
    const size_t n = c->n;
    out->n_nodes = n;
    if (reserve_space((void **)&ctx->qual, &ctx->qual_cap, n, sizeof *ctx->qual))
        return -1;
    size_t reasons[REASON__COUNT] = {0};
    size_t q;
    int32_t maxc, maxm;
    if (rl.n_cons) {
        memset(ctx->cons_removed, 0, rl.n_cons * sizeof *ctx->cons_removed);
        q = filter_pass(c, &rl, ctx->qual, reasons, ctx->cons_removed, &maxc, &maxm, true, false);
        out->cons_removed = ctx->cons_removed;
    } else if (plain_job(&rl)) {
        q = filter_pass(c, &rl, ctx->qual, reasons, NULL, &maxc, &maxm, false, true);
    } else {
        q = filter_pass(c, &rl, ctx->qual, reasons, NULL, &maxc, &maxm, false, false);
    }
    if (q && job->spread != SPREAD_NONE) {
        size_t before = q;
        int sr = spread_filter(ctx, c, &rl, &q, reasons, NULL);
        if (sr < 0)
            return -1;
        out->spread_ran = sr > 0;
        if (q != before) { /* most-free normalises by what is left */
            maxc = maxm = 0;
            for (size_t j = 0; j < q; j++) {
                const node_hot *h = &c->hot[ctx->qual[j]];
                maxc = h->free_cpu > maxc ? h->free_cpu : maxc;
                maxm = h->free_mem > maxm ? h->free_mem : maxm;
            }
        }
    }
    memcpy(out->reasons, reasons, sizeof reasons);
    out->n_qualified = q;
    *rj = rl;

    size_t k = job->top_k ? job->top_k : ctx->opts.top_k;
    if (k >= CS_TOPK_MAX || k > q) /* CS_TOPK_MAX asks for all, however large the cluster */
        k = q;
    if (reserve_space((void **)&ctx->heap, &ctx->heap_cap, k, sizeof *ctx->heap) ||
        reserve_space((void **)&ctx->cands, &ctx->cands_cap, k, sizeof *ctx->cands))
        return -1;
    scorer s;
    scorer_init(&s, ctx, job, maxc, maxm);

    order o = {c, cluster_id_ranks_locked(c), 0};
    size_t hn = 0;
    if (k > 0 && rl.prefer) {
        hn = keep_best_prefer(&o, ctx, q, k, &s, &rl);
    } else if (k > 0) {
        /* One loop per strategy so the switch is not paid per node. */
        switch (s.strategy) {
        case STRATEGY_BEST_FIT:
            hn = keep_best(&o, ctx, q, k, &s, STRATEGY_BEST_FIT);
            break;
        case STRATEGY_SPREAD:
            hn = keep_best(&o, ctx, q, k, &s, STRATEGY_SPREAD);
            break;
        default:
            hn = keep_best(&o, ctx, q, k, &s, STRATEGY_MOST_FREE);
            break;
        }
    }
    /* Pop worst-first into the tail of the list, so it ends best-first. */
    for (size_t m = hn; m > 0; m--) {
        heap_item it = ctx->heap[0];
        ctx->heap[0] = ctx->heap[m - 1];
        heap_sift_down(&o, ctx->heap, m - 1, 0);
        fill_candidate(c, &ctx->cands[m - 1], &it, &c->hot[it.pos]);
    }
    if (o.id_cmps)
        cluster_id_compares_add(c, o.id_cmps);
    out->candidates = ctx->cands;
    out->n_candidates = hn;
    return 0;
}

static int check_job(const job_spec *job, double now, cs_error *err)
{
    if (!isfinite(now))
        return cs_fail(err, "now", "must be a finite time");
    if (!job)
        return cs_fail(err, "job", "is missing");
    return job_spec_validate(job, err);
}

int engine_rank(engine_ctx *ctx, cluster *c, const job_spec *job, double now, engine_result *out,
                cs_error *err)
{
    if (check_job(job, now, err))
        return -1;
    resolved rj;
    pthread_rwlock_rdlock(&c->lock);
    int rc = rank_locked(ctx, c, job, now, out, &rj);
    pthread_rwlock_unlock(&c->lock);
    if (rc)
        return cs_fail(err, "engine", "out of memory");
    return 0;
}

static void mark_existing(engine_result *out, const resv *r)
{
    out->placed = true;
    out->existing = true;
    strcpy(out->node_id, r->node_id);
}

/* Under the write lock: reserve the first candidate that still passes
 * every filter. Moves the chosen one to the front of the list. */
static bool commit_locked(engine_ctx *ctx, cluster *c, const job_spec *job, double now,
                          engine_result *out, const resolved *rj)
{
    for (size_t i = 0; i < out->n_candidates; i++) {
        uint32_t pos = cluster_find_locked(c, ctx->cands[i].node_id);
        if (pos == IDXMAP_NONE || check_node(c, pos, rj) != OK_NODE)
            continue;
        /* Another instance of the job may have landed here (or in its
         * zone) since the ranking: the next candidate keeps them apart. */
        if (rj->spread_best >= 0 && spread_tier_now(c, pos, job) > rj->spread_best)
            continue;
        if (cluster_reserve_locked(c, pos, job, now))
            return false;
        if (i > 0) {
            /* The ones before it were taken meanwhile: they are no longer
             * candidates for this job. */
            memmove(ctx->cands, ctx->cands + i, (out->n_candidates - i) * sizeof *ctx->cands);
            out->n_candidates -= i;
        }
        out->placed = true;
        strcpy(out->node_id, c->cold[pos].id);
        return true;
    }
    return false;
}

int engine_place(engine_ctx *ctx, cluster *c, const job_spec *job, double now, engine_result *out,
                 cs_error *err)
{
    if (check_job(job, now, err))
        return -1;
    resolved rj;
    for (int attempt = 0; attempt <= OPTIMISTIC_TRIES; attempt++) {
        bool last = attempt == OPTIMISTIC_TRIES;
        if (!last) {
            pthread_rwlock_rdlock(&c->lock);
            const resv *r = cluster_resv_find_locked(c, job->id, job->instance);
            if (r) {
                memset(out, 0, sizeof *out);
                mark_existing(out, r);
                pthread_rwlock_unlock(&c->lock);
                return 0;
            }
            int rc = rank_locked(ctx, c, job, now, out, &rj);
            pthread_rwlock_unlock(&c->lock);
            if (rc)
                return cs_fail(err, "engine", "out of memory");
            if (out->n_qualified == 0)
                return 0;
        }
        pthread_rwlock_wrlock(&c->lock);
        const resv *r = cluster_resv_find_locked(c, job->id, job->instance);
        if (r) {
            mark_existing(out, r);
            pthread_rwlock_unlock(&c->lock);
            return 0;
        }
        if (last && rank_locked(ctx, c, job, now, out, &rj)) {
            pthread_rwlock_unlock(&c->lock);
            return cs_fail(err, "engine", "out of memory");
        }
        bool done = commit_locked(ctx, c, job, now, out, &rj);
        pthread_rwlock_unlock(&c->lock);
        if (done || (last && out->n_qualified == 0))
            return 0;
        if (last)
            return cs_fail(err, "engine", "out of memory");
    }
    return 0;
}

static const char *cons_kind_name(job_cons_kind k)
{
    return k >= JOB_CONS_GEO && k <= JOB_CONS_CONNECTIVITY ? edge_filters[k].name : "unknown";
}

static int reason_text(engine_reason r, const job_spec *job, char *buf, size_t len)
{
    switch (r) {
    case REASON_INACTIVE:
        return snprintf(buf, len, "inactive");
    case REASON_TECHNOLOGY:
        return snprintf(buf, len, "no technology %s", virt_name(job->virt));
    case REASON_ARCH:
        return snprintf(buf, len, "architecture not in arch");
    case REASON_DIRECT:
        return snprintf(buf, len, "not in direct constraint");
    case REASON_ADDONS:
        return snprintf(buf, len, "missing addons");
    case REASON_CSI:
        return snprintf(buf, len, "missing csi driver");
    case REASON_GPU:
        return snprintf(buf, len, "insufficient gpu");
    case REASON_CPU:
        return snprintf(buf, len, "insufficient cpu");
    case REASON_MEMORY:
        return snprintf(buf, len, "insufficient memory");
    case REASON_NO_LOCATION:
        return snprintf(buf, len, "no location");
    case REASON_TOO_FAR:
        return snprintf(buf, len, "too far");
    case REASON_NO_LATENCY:
        return snprintf(buf, len, "no latency measured to the area");
    case REASON_LATENCY:
        return snprintf(buf, len, "latency too high");
    case REASON_NO_COORDINATES:
        return snprintf(buf, len, "no vivaldi coordinates");
    case REASON_TARGET_NOT_RUNNING:
        return snprintf(buf, len, "target job not running");
    case REASON_TARGET_NO_COORDINATES:
        return snprintf(buf, len, "target job's node without coordinates");
    case REASON_CONNECTIVITY:
        return snprintf(buf, len, "connectivity too slow");
    case REASON_REPLICA_LABEL:
        return snprintf(buf, len, "in a %.32s already running this job", job->spread_label);
    case REASON_REPLICA_NODE:
        return snprintf(buf, len, "already running this job");
    default:
        return snprintf(buf, len, "unknown");
    }
}

size_t engine_filters(const engine_result *r, engine_filter_count *out, size_t max)
{
    const job_spec *job = r->job;
    size_t n = 0;
    if (!job)
        return 0;
#define ADD_FILTER(name, cons, count)                                                              \
    do {                                                                                           \
        if (n < max)                                                                               \
            out[n] = (engine_filter_count){(name), (cons), (count)};                               \
        n++;                                                                                       \
    } while (0)
    ADD_FILTER("inactive", -1, r->reasons[REASON_INACTIVE]);
    ADD_FILTER("technology", -1, r->reasons[REASON_TECHNOLOGY]);
    if (job->arch.n)
        ADD_FILTER("architecture", -1, r->reasons[REASON_ARCH]);
    if (job->has_direct)
        ADD_FILTER("direct", -1, r->reasons[REASON_DIRECT]);
    if (job->addons.n)
        ADD_FILTER("addons", -1, r->reasons[REASON_ADDONS]);
    if (job->csi.n)
        ADD_FILTER("csi_driver", -1, r->reasons[REASON_CSI]);
    ADD_FILTER("gpu", -1, r->reasons[REASON_GPU]);
    ADD_FILTER("cpu", -1, r->reasons[REASON_CPU]);
    ADD_FILTER("memory", -1, r->reasons[REASON_MEMORY]);
    for (size_t i = 0; i < job->n_cons && i < CS_LIST_MAX; i++)
        ADD_FILTER(cons_kind_name(job->cons[i].kind), (int)job->cons[i].index,
                   r->cons_removed ? r->cons_removed[i] : 0);
    if (r->spread_ran)
        ADD_FILTER("spread", -1,
                   r->reasons[REASON_REPLICA_LABEL] + r->reasons[REASON_REPLICA_NODE]);
#undef ADD_FILTER
    return n;
}

/* ---- explanations ------------------------------------------------------- */

/* The figures behind a rejection (h: the hot record as the check saw it). */
static void explain_figures(engine_node_explain *x, const cluster *c, uint32_t pos,
                            const node_hot *h, const resolved *rj, const rcons *rc, double now)
{
    switch (x->reason) {
    case REASON_INACTIVE:
        x->value = now - h->last_report;
        x->limit = c->ttl;
        break;
    case REASON_GPU:
        x->value = h->free_gpu;
        x->limit = rj->gpu;
        break;
    case REASON_CPU:
        x->value = h->free_cpu / 1000.0;
        x->limit = (double)rj->cpu / 1000.0;
        break;
    case REASON_MEMORY:
        x->value = h->free_mem;
        x->limit = (double)rj->mem;
        break;
    case REASON_TOO_FAR:
    case REASON_LATENCY:
    case REASON_CONNECTIVITY:
        x->value = edge_filters[rc->jc->kind].value(rj, c->edge[pos], rc);
        x->limit = rc->jc->threshold;
        break;
    default:
        break;
    }
}

static int cmp_heap_items(const void *a, const void *b, void *ud)
{
    order o = {ud, NULL, 0};
    const heap_item *x = a, *y = b;
    return better(&o, x, y) ? -1 : better(&o, y, x) ? 1 : 0;
}

static int cmp_explained(const void *a, const void *b)
{
    const engine_node_explain *x = a, *y = b;
    if (x->qualified != y->qualified)
        return x->qualified ? -1 : 1;
    if (x->qualified)
        return (x->rank > y->rank) - (x->rank < y->rank);
    return strcmp(x->node_id, y->node_id);
}

static int explain_locked(engine_ctx *ctx, const cluster *c, const job_spec *job, double now,
                          engine_result *out, engine_node_explain **xo)
{
    memset(out, 0, sizeof *out);
    out->job = job;
    resolved rl;
    if (resolve(ctx, c, job, now, &rl))
        return -1;
    const size_t n = c->n;
    out->n_nodes = n;
    engine_node_explain *x = calloc(n ? n : 1, sizeof *x);
    if (!x || reserve_space((void **)&ctx->qual, &ctx->qual_cap, n, sizeof *ctx->qual)) {
        free(x);
        return -1;
    }
    /* The instance's own reservation counts as released. */
    const resv *self = cluster_resv_find_locked(c, job->id, job->instance);
    uint32_t self_pos = self ? cluster_find_locked(c, self->node_id) : IDXMAP_NONE;
    node_hot self_hot;
    if (self_pos != IDXMAP_NONE) {
        self_hot = c->hot[self_pos];
        int64_t cpu = self_hot.free_cpu + self->cpu, mem = self_hot.free_mem + self->mem;
        int64_t gpu = self_hot.free_gpu + self->gpu;
        self_hot.free_cpu = (int32_t)(cpu < self_hot.cap_cpu ? cpu : self_hot.cap_cpu);
        self_hot.free_mem = (int32_t)(mem < self_hot.cap_mem ? mem : self_hot.cap_mem);
        int64_t capg = c->cold[self_pos].cap_gpu;
        self_hot.free_gpu = (int16_t)(gpu < capg ? gpu : capg);
    }
    size_t reasons[REASON__COUNT] = {0};
    memset(ctx->cons_removed, 0, sizeof ctx->cons_removed);
    if (rl.n_cons)
        out->cons_removed = ctx->cons_removed;
    size_t q = 0;
    int32_t maxc = 0, maxm = 0;
    for (uint32_t i = 0; i < n; i++) {
        engine_node_explain *xi = &x[i];
        strcpy(xi->node_id, c->cold[i].id);
        xi->constraint = -1;
        xi->value = xi->limit = NAN;
        xi->holds_instance = i == self_pos;
        const node_hot *h = i == self_pos ? &self_hot : &c->hot[i];
        int r = check_base(c, i, h, &rl);
        size_t w = 0;
        if (r == OK_NODE && rl.n_cons && (r = edge_check(c, i, &rl, &w)) != OK_NODE) {
            ctx->cons_removed[w]++;
            xi->constraint = (int)rl.cons[w].jc->index;
        }
        if (r != OK_NODE) {
            reasons[r]++;
            xi->reason = (engine_reason)r;
            explain_figures(xi, c, i, h, &rl, rl.n_cons ? &rl.cons[w] : NULL, now);
            continue;
        }
        ctx->qual[q++] = i;
        maxc = h->free_cpu > maxc ? h->free_cpu : maxc;
        maxm = h->free_mem > maxm ? h->free_mem : maxm;
    }
    if (q && job->spread != SPREAD_NONE) {
        int sr = spread_filter(ctx, c, &rl, &q, reasons, x);
        if (sr < 0) {
            free(x);
            return -1;
        }
        out->spread_ran = sr > 0;
        maxc = maxm = 0;
        for (size_t j = 0; j < q; j++) {
            uint32_t pos = ctx->qual[j];
            const node_hot *h = pos == self_pos ? &self_hot : &c->hot[pos];
            maxc = h->free_cpu > maxc ? h->free_cpu : maxc;
            maxm = h->free_mem > maxm ? h->free_mem : maxm;
        }
    }
    memcpy(out->reasons, reasons, sizeof reasons);
    out->n_qualified = q;

    /* Every qualified node scored and sorted, not just the best k. */
    if (reserve_space((void **)&ctx->heap, &ctx->heap_cap, q, sizeof *ctx->heap) ||
        reserve_space((void **)&ctx->cands, &ctx->cands_cap, q, sizeof *ctx->cands)) {
        free(x);
        return -1;
    }
    scorer s;
    scorer_init(&s, ctx, job, maxc, maxm);
    for (size_t j = 0; j < q; j++) {
        uint32_t pos = ctx->qual[j];
        const node_hot *h = pos == self_pos ? &self_hot : &c->hot[pos];
        double st = score_node(&s, h);
        ctx->heap[j] = rl.prefer ? (heap_item){proximity_score(&rl, c->edge[pos]), st, pos}
                                 : (heap_item){st, 0.0, pos};
        x[pos].qualified = true;
    }
    if (q > 1)
        qsort_r(ctx->heap, q, sizeof *ctx->heap, cmp_heap_items, (void *)c);
    size_t k = job->top_k ? job->top_k : ctx->opts.top_k;
    if (k >= CS_TOPK_MAX || k > q)
        k = q;
    for (size_t j = 0; j < q; j++) {
        const heap_item *it = &ctx->heap[j];
        x[it->pos].score = it->score;
        x[it->pos].rank = (uint32_t)(j + 1);
        if (j < k)
            fill_candidate(c, &ctx->cands[j], it,
                           it->pos == self_pos ? &self_hot : &c->hot[it->pos]);
    }
    out->candidates = ctx->cands;
    out->n_candidates = k;
    qsort(x, n, sizeof *x, cmp_explained);
    *xo = x;
    return 0;
}

int engine_explain(engine_ctx *ctx, cluster *c, const job_spec *job, double now, engine_result *out,
                   engine_node_explain **nodes, cs_error *err)
{
    *nodes = NULL;
    if (check_job(job, now, err))
        return -1;
    pthread_rwlock_rdlock(&c->lock);
    int rc = explain_locked(ctx, c, job, now, out, nodes);
    pthread_rwlock_unlock(&c->lock);
    if (rc)
        return cs_fail(err, "engine", "out of memory");
    return 0;
}

static const job_constraint *cons_at(const job_spec *job, int index)
{
    for (size_t i = 0; i < job->n_cons; i++)
        if ((int)job->cons[i].index == index)
            return &job->cons[i];
    return NULL;
}

int engine_explain_text(const engine_node_explain *x, const job_spec *job, char *buf, size_t len)
{
    if (x->qualified)
        return snprintf(buf, len, "qualifies: score %.2f, rank %u", x->score, x->rank);
    const job_constraint *jc = cons_at(job, x->constraint);
    const char *name = jc ? jc->name : "";
    switch (x->reason) {
    case REASON_INACTIVE:
        return snprintf(buf, len, "no report for %.0f s, longer than the node TTL of %.0f s",
                        x->value, x->limit);
    case REASON_TECHNOLOGY:
        return snprintf(buf, len, "does not offer %s", virt_name(job->virt));
    case REASON_ARCH:
        return snprintf(buf, len, "its architecture is not in the job's arch list");
    case REASON_DIRECT:
        return snprintf(buf, len, "not named by the direct constraint");
    case REASON_ADDONS:
        return snprintf(buf, len, "does not support every addon the job needs");
    case REASON_CSI:
        return snprintf(buf, len, "lacks a CSI driver the job's volumes need");
    case REASON_GPU:
        return snprintf(buf, len, "%.0f GPUs free, %.0f requested", x->value, x->limit);
    case REASON_CPU:
        return snprintf(buf, len, "%.3f vCPUs free, %.3f requested", x->value, x->limit);
    case REASON_MEMORY:
        return snprintf(buf, len, "%.0f MB free, %.0f MB requested", x->value, x->limit);
    case REASON_NO_LOCATION:
        return snprintf(buf, len, "reports no location (geo constraint %d)", x->constraint);
    case REASON_TOO_FAR:
        return snprintf(buf, len, "%.3f km from %.6g,%.6g, beyond the threshold of %g km", x->value,
                        jc ? jc->lat : NAN, jc ? jc->lon : NAN, x->limit);
    case REASON_NO_LATENCY:
        return snprintf(buf, len, "no latency measured to area '%s'", name);
    case REASON_LATENCY:
        return snprintf(buf, len, "%g ms to area '%s', above the threshold of %g ms", x->value,
                        name, x->limit);
    case REASON_NO_COORDINATES:
        return snprintf(buf, len, "reports no Vivaldi coordinates");
    case REASON_TARGET_NOT_RUNNING:
        return snprintf(buf, len, "no instance of job '%s' is placed", name);
    case REASON_TARGET_NO_COORDINATES:
        return snprintf(buf, len, "a node running job '%s' reports no Vivaldi coordinates", name);
    case REASON_CONNECTIVITY:
        return snprintf(buf, len,
                        "estimated %.3f ms to a node running job '%s', above the bound of %g ms",
                        x->value, name, x->limit);
    case REASON_REPLICA_LABEL:
        return snprintf(buf, len,
                        "%s '%s' already runs an instance of this job, and other %s values "
                        "are free of it",
                        job->spread_label, x->label[0] ? x->label : "(none)", job->spread_label);
    case REASON_REPLICA_NODE:
        return snprintf(buf, len,
                        "already runs an instance of this job, and other nodes are free of it");
    default:
        return snprintf(buf, len, "unknown");
    }
}

int engine_message(const engine_result *r, const job_spec *job, char *buf, size_t len)
{
    size_t used = 0;
    int total = snprintf(buf, len, "%zu/%zu nodes qualify", r->n_qualified, r->n_nodes);
    if (total > 0)
        used = (size_t)total;
    bool done[REASON__COUNT] = {0};
    const char *sep = ": ";
    for (;;) {
        int best = -1;
        for (int i = 0; i < REASON__COUNT; i++)
            if (!done[i] && r->reasons[i] && (best < 0 || r->reasons[i] > r->reasons[best]))
                best = i;
        if (best < 0)
            break;
        done[best] = true;
        char text[64];
        reason_text((engine_reason)best, job, text, sizeof text);
        int n = snprintf(used < len ? buf + used : NULL, used < len ? len - used : 0, "%s%zu %s",
                         sep, r->reasons[best], text);
        if (n > 0) {
            used += (size_t)n;
            total += n;
        }
        sep = ", ";
    }
    return total;
}
