/* job.c - validation and conversion of a job instance's fields. */
#include "job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "virt.h"

void job_spec_init(job_spec *j)
{
    memset(j, 0, sizeof *j);
}

void job_spec_clear(job_spec *j)
{
    strlist_clear(&j->arch);
    strlist_clear(&j->addons);
    strlist_clear(&j->hosts);
    strlist_clear(&j->csi);
    free(j->cons);
    job_spec_init(j);
}

int job_spec_set_id(job_spec *j, const char *id, cs_error *err)
{
    cs_error e;
    if (node_id_check(id, &e))
        return cs_fail(err, "_id", "%s", e.msg);
    memcpy(j->id, id, strlen(id) + 1);
    return 0;
}

int job_spec_set_instance(job_spec *j, double n, cs_error *err)
{
    if (!isfinite(n) || n < 0 || n > CS_INSTANCE_MAX || n != floor(n))
        return cs_fail(err, "instance", "must be a whole number in 0..%d", CS_INSTANCE_MAX);
    j->instance = (uint32_t)n;
    return 0;
}

int job_spec_set_vcpus(job_spec *j, double v, cs_error *err)
{
    if (cs_check_quantity(v, CS_VCPUS_MAX, "vcpus", err))
        return -1;
    j->vcpus_milli = cs_milli_ceil(v);
    return 0;
}

int job_spec_set_memory(job_spec *j, double mb, cs_error *err)
{
    if (cs_check_quantity(mb, CS_MEMORY_MAX, "memory", err))
        return -1;
    j->memory_mb = (int64_t)ceil(mb);
    return 0;
}

int job_spec_set_gpus(job_spec *j, double n, cs_error *err)
{
    if (cs_check_quantity(n, CS_GPUS_MAX, "vgpus", err))
        return -1;
    if (n != floor(n))
        return cs_fail(err, "vgpus", "must be a whole number");
    j->gpus = (int32_t)n;
    return 0;
}

int job_spec_set_virt(job_spec *j, const char *name, cs_error *err)
{
    uint32_t bit = virt_from_name(name);
    if (!bit)
        return cs_fail(err, "virtualization", "unknown virtualization '%.40s'", name ? name : "");
    j->virt = bit;
    return 0;
}

int job_spec_add_direct(job_spec *j, const char *hosts, cs_error *err)
{
    if (!hosts)
        return cs_fail(err, "node", "must be a string of host names separated by ';'");
    j->has_direct = 1;
    const char *p = hosts;
    char buf[CS_HOST_MAX + 2];
    while (*p) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        /* Blanks around ';' are a writing habit, not part of a name. */
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > CS_HOST_MAX)
            return cs_fail(err, "node", "host name longer than %d characters", CS_HOST_MAX);
        if (len) {
            memcpy(buf, p, len);
            buf[len] = 0;
            if (strlist_add(&j->hosts, buf, CS_HOST_MAX, "node", err))
                return -1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int job_spec_set_strategy(job_spec *j, const char *name, cs_error *err)
{
    if (name && strcmp(name, "most-free") == 0)
        j->strategy = STRATEGY_MOST_FREE;
    else if (name && strcmp(name, "best-fit") == 0)
        j->strategy = STRATEGY_BEST_FIT;
    else if (name && strcmp(name, "spread") == 0)
        j->strategy = STRATEGY_SPREAD;
    else
        return cs_fail(err, "strategy", "must be one of most-free, best-fit, spread");
    return 0;
}

/* Appends a constraint slot; NULL when the list is full or memory is out. */
static job_constraint *cons_add(job_spec *j, job_cons_kind kind, uint32_t index, double threshold,
                                const char *field, bool prefer, cs_error *err)
{
    if (cs_check_quantity(threshold, CS_THRESHOLD_MAX, field, err))
        return NULL;
    if (j->n_cons >= CS_LIST_MAX) {
        cs_fail(err, "constraints", "more than %d entries", CS_LIST_MAX);
        return NULL;
    }
    job_constraint *nc = realloc(j->cons, (j->n_cons + 1) * sizeof *nc);
    if (!nc) {
        cs_fail(err, "constraints", "out of memory");
        return NULL;
    }
    j->cons = nc;
    job_constraint *c = &nc[j->n_cons++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->index = index;
    c->threshold = threshold;
    c->prefer = prefer;
    return c;
}

int job_spec_add_geo(job_spec *j, uint32_t index, double lat, double lon, double threshold_km,
                     bool prefer, cs_error *err)
{
    if (cs_check_lat_lon(lat, lon, err))
        return -1;
    job_constraint *c = cons_add(j, JOB_CONS_GEO, index, threshold_km, "threshold", prefer, err);
    if (!c)
        return -1;
    c->lat = lat;
    c->lon = lon;
    return 0;
}

static int check_name(const char *s, size_t max, const char *field, cs_error *err)
{
    if (!s || !*s)
        return cs_fail(err, field, "must be a non-empty string");
    size_t len = strnlen(s, max + 1);
    if (len > max)
        return cs_fail(err, field, "longer than %zu characters", max);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20)
            return cs_fail(err, field, "contains a control character");
    return 0;
}

int job_spec_add_latency(job_spec *j, uint32_t index, const char *area, double threshold_ms,
                         bool prefer, cs_error *err)
{
    if (check_name(area, CS_NAME_MAX, "area", err))
        return -1;
    job_constraint *c =
        cons_add(j, JOB_CONS_LATENCY, index, threshold_ms, "threshold", prefer, err);
    if (!c)
        return -1;
    snprintf(c->name, sizeof c->name, "%s", area);
    return 0;
}

int job_spec_add_connectivity(job_spec *j, uint32_t index, const char *target_job, double max_ms,
                              bool prefer, cs_error *err)
{
    cs_error e;
    if (node_id_check(target_job, &e))
        return cs_fail(err, "target_job", "%s", e.msg);
    job_constraint *c =
        cons_add(j, JOB_CONS_CONNECTIVITY, index, max_ms, "latency_ms", prefer, err);
    if (!c)
        return -1;
    snprintf(c->name, sizeof c->name, "%s", target_job);
    return 0;
}

int job_spec_set_spread(job_spec *j, const char *by, cs_error *err)
{
    if (check_name(by, CS_NAME_MAX, "spread_by", err))
        return -1;
    j->spread_label[0] = 0;
    if (strcmp(by, "node") == 0) {
        j->spread = SPREAD_NODE;
    } else if (strcmp(by, "none") == 0) {
        j->spread = SPREAD_NONE;
    } else {
        j->spread = SPREAD_LABEL;
        snprintf(j->spread_label, sizeof j->spread_label, "%s", by);
    }
    return 0;
}

int job_spec_validate(const job_spec *j, cs_error *err)
{
    if (!j->id[0])
        return cs_fail(err, "_id", "is required");
    if (!j->virt)
        return cs_fail(err, "virtualization", "is required");
    if (j->virt == VIRT_UNIKERNEL && j->arch.n == 0)
        return cs_fail(err, "arch", "is required (non-empty) for a unikernel");
    if (j->vcpus_milli < 0 || j->memory_mb < 0 || j->gpus < 0)
        return cs_fail(err, "vcpus", "resources must be >= 0");
    if (j->top_k > CS_TOPK_MAX)
        return cs_fail(err, "top_k", "must be at most %d", CS_TOPK_MAX);
    return 0;
}

const char *strategy_name(engine_strategy s)
{
    switch (s) {
    case STRATEGY_MOST_FREE:
        return "most-free";
    case STRATEGY_BEST_FIT:
        return "best-fit";
    case STRATEGY_SPREAD:
        return "spread";
    default:
        return "default";
    }
}
