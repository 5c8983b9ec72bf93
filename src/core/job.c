/* job.c - validation and conversion of a job instance's fields. */
#include "job.h"

#include <math.h>
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
