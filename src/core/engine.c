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
 * succeeds, so no decision can starve. */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_priv.h"
#include "virt.h"

#define OK_NODE REASON__COUNT
#define OPTIMISTIC_TRIES 3

typedef struct heap_item {
    double score;
    uint32_t pos;
} heap_item;

struct engine_ctx {
    engine_opts opts;
    uint32_t *qual;
    size_t qual_cap;
    heap_item *heap;
    size_t heap_cap;
    engine_candidate *cands;
    size_t cands_cap;
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
} resolved;

static const char *const reason_keys[REASON__COUNT] = {
    "inactive",         "technology",       "architecture",        "direct", "addons", "csi_driver",
    "insufficient_gpu", "insufficient_cpu", "insufficient_memory",
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

static void resolve(const cluster *c, const job_spec *job, double now, resolved *rj)
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

/* The one feasibility function: used to choose and again to commit. */
static inline __attribute__((always_inline)) int check_node(const cluster *c, uint32_t pos,
                                                            const resolved *rj)
{
    const node_hot *h = &c->hot[pos];
    if (h->last_report < rj->cutoff)
        return REASON_INACTIVE;
    if (!(h->virt & rj->virt))
        return REASON_TECHNOLOGY;
    if (rj->need_arch && !(rj->arch[h->arch / 64] & (1ull << (h->arch % 64))))
        return REASON_ARCH;
    if (rj->has_direct && !direct_ok(c, pos, rj->job))
        return REASON_DIRECT;
    /* Addons and CSI drivers live in the cold record: most jobs ask for
     * neither, so the filter pass need not stream them. */
    if (rj->has_addons &&
        (rj->addons_impossible || (c->cold[pos].addons & rj->addons) != rj->addons))
        return REASON_ADDONS;
    if (rj->has_csi && (rj->csi_impossible || (c->cold[pos].csi & rj->csi) != rj->csi))
        return REASON_CSI;
    if (h->free_gpu < rj->gpu)
        return REASON_GPU;
    if (h->free_cpu < rj->cpu)
        return REASON_CPU;
    if (h->free_mem < rj->mem)
        return REASON_MEMORY;
    return OK_NODE;
}

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

/* a ranks before b: higher score, then smaller node id. */
static inline bool better(const cluster *c, const heap_item *a, const heap_item *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    return strcmp(c->cold[a->pos].id, c->cold[b->pos].id) < 0;
}

/* Min-heap on `better`: the root is the worst of the kept k. */
static void heap_sift_down(const cluster *c, heap_item *hp, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(c, &hp[w], &hp[l]))
            w = l;
        if (r < n && better(c, &hp[w], &hp[r]))
            w = r;
        if (w == i)
            return;
        heap_item t = hp[i];
        hp[i] = hp[w];
        hp[w] = t;
        i = w;
    }
}

static void heap_sift_up(const cluster *c, heap_item *hp, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(c, &hp[p], &hp[i]))
            return;
        heap_item t = hp[i];
        hp[i] = hp[p];
        hp[p] = t;
        i = p;
    }
}

/* Scores the q qualified nodes and keeps the best k in the heap; returns
 * how many it kept. `strategy` is a constant at each call site, so the
 * compiler builds one specialised loop per strategy. */
static inline __attribute__((always_inline)) size_t keep_best(const cluster *c, engine_ctx *ctx,
                                                              size_t q, size_t k, scorer *s,
                                                              engine_strategy strategy)
{
    s->strategy = strategy;
    size_t hn = 0;
    double worst = 0;
    for (size_t j = 0; j < q; j++) {
        uint32_t pos = ctx->qual[j];
        double score = score_node(s, &c->hot[pos]);
        if (hn == k && score < worst)
            continue; /* the common case once the heap is full: no call */
        heap_item it = {score, pos};
        if (hn < k) {
            ctx->heap[hn] = it;
            heap_sift_up(c, ctx->heap, hn++);
        } else if (better(c, &it, &ctx->heap[0])) {
            ctx->heap[0] = it;
            heap_sift_down(c, ctx->heap, hn, 0);
        } else {
            continue;
        }
        worst = ctx->heap[0].score;
    }
    return hn;
}

static int rank_locked(engine_ctx *ctx, const cluster *c, const job_spec *job, double now,
                       engine_result *out, resolved *rj)
{
    memset(out, 0, sizeof *out);
    /* Everything the loop touches is a local: stores to the counters and
     * the qualified list then cannot make the compiler reload the rest. */
    resolved rl;
    resolve(c, job, now, &rl);
    const size_t n = c->n;
    out->n_nodes = n;
    if (reserve_space((void **)&ctx->qual, &ctx->qual_cap, n, sizeof *ctx->qual))
        return -1;
    uint32_t *qual = ctx->qual;
    const node_hot *hot = c->hot;
    size_t reasons[REASON__COUNT] = {0};
    size_t q = 0;
    int32_t maxc = 0, maxm = 0;
    for (uint32_t i = 0; i < n; i++) {
        int r = check_node(c, i, &rl);
        if (r != OK_NODE) {
            reasons[r]++;
            continue;
        }
        qual[q++] = i;
        maxc = hot[i].free_cpu > maxc ? hot[i].free_cpu : maxc;
        maxm = hot[i].free_mem > maxm ? hot[i].free_mem : maxm;
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
    scorer s = {
        .strategy = job->strategy != STRATEGY_DEFAULT ? job->strategy : ctx->opts.strategy,
        .inv_maxc = maxc > 0 ? 1.0 / (double)maxc : 0.0,
        .inv_maxm = maxm > 0 ? 1.0 / (double)maxm : 0.0,
        .rc = (double)job->vcpus_milli,
        .rm = (double)job->memory_mb,
    };
    double wsum = ctx->opts.weight_cpu + ctx->opts.weight_memory;
    s.wc = ctx->opts.weight_cpu / wsum;
    s.wm = ctx->opts.weight_memory / wsum;

    size_t hn = 0;
    if (k > 0) {
        /* One loop per strategy so the switch is not paid per node. */
        switch (s.strategy) {
        case STRATEGY_BEST_FIT:
            hn = keep_best(c, ctx, q, k, &s, STRATEGY_BEST_FIT);
            break;
        case STRATEGY_SPREAD:
            hn = keep_best(c, ctx, q, k, &s, STRATEGY_SPREAD);
            break;
        default:
            hn = keep_best(c, ctx, q, k, &s, STRATEGY_MOST_FREE);
            break;
        }
    }
    /* Pop worst-first into the tail of the list, so it ends best-first. */
    for (size_t n = hn; n > 0; n--) {
        heap_item it = ctx->heap[0];
        ctx->heap[0] = ctx->heap[n - 1];
        heap_sift_down(c, ctx->heap, n - 1, 0);
        engine_candidate *cd = &ctx->cands[n - 1];
        const node_hot *h = &c->hot[it.pos];
        strcpy(cd->node_id, c->cold[it.pos].id);
        cd->score = it.score;
        cd->free_cpu_milli = h->free_cpu;
        cd->free_memory_mb = h->free_mem;
        cd->free_gpus = h->free_gpu;
    }
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
