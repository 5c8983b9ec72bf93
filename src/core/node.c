/* node.c - validation and conversion of node report fields. */
#include "node.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "virt.h"

int cs_check_quantity(double v, double max, const char *field, cs_error *err)
{
    if (!isfinite(v))
        return cs_fail(err, field, "must be a finite number");
    if (v < 0)
        return cs_fail(err, field, "must be >= 0");
    if (v > max)
        return cs_fail(err, field, "must be at most %.0f", max);
    return 0;
}

int64_t cs_milli_ceil(double v)
{
    /* The small epsilon keeps 0.1 * 1000 = 100.00000000000001 from becoming 101. */
    return (int64_t)ceil(v * 1000.0 - 1e-6);
}

static int check_whole(double v, double max, const char *field, cs_error *err)
{
    if (cs_check_quantity(v, max, field, err))
        return -1;
    if (v != floor(v))
        return cs_fail(err, field, "must be a whole number");
    return 0;
}

static int copy_name(char *dst, size_t cap, const char *s, const char *field, cs_error *err)
{
    if (!s || !*s)
        return cs_fail(err, field, "must be a non-empty string");
    size_t len = strnlen(s, cap);
    if (len >= cap)
        return cs_fail(err, field, "longer than %zu characters", cap - 1);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20)
            return cs_fail(err, field, "contains a control character");
    memcpy(dst, s, len + 1);
    return 0;
}

void node_report_init(node_report *r)
{
    memset(r, 0, sizeof *r);
}

void node_report_clear(node_report *r)
{
    strlist_clear(&r->addons);
    strlist_clear(&r->csi);
    free(r->latency);
    free(r->labels);
    node_report_init(r);
}

int node_report_set_host(node_report *r, const char *host, cs_error *err)
{
    if (copy_name(r->host, sizeof r->host, host, "host", err))
        return -1;
    r->set |= NODE_F_HOST;
    return 0;
}

int node_report_set_arch(node_report *r, const char *arch, cs_error *err)
{
    if (copy_name(r->arch, sizeof r->arch, arch, "architecture", err))
        return -1;
    r->set |= NODE_F_ARCH;
    return 0;
}

int node_report_add_virt(node_report *r, const char *name, cs_error *err)
{
    uint32_t bit = virt_from_name(name);
    if (!bit)
        return cs_fail(err, "virtualization", "unknown virtualization '%.40s'", name ? name : "");
    r->virt |= bit;
    r->set |= NODE_F_VIRT;
    return 0;
}

int node_report_set_vcpus(node_report *r, double v, cs_error *err)
{
    if (cs_check_quantity(v, CS_VCPUS_MAX, "vcpus", err))
        return -1;
    /* Capacity rounds down: never promise a fraction the node lacks. */
    r->vcpus_milli = (int64_t)floor(v * 1000.0 + 1e-6);
    r->set |= NODE_F_VCPUS;
    return 0;
}

int node_report_set_memory(node_report *r, double mb, cs_error *err)
{
    if (cs_check_quantity(mb, CS_MEMORY_MAX, "memory", err))
        return -1;
    r->memory_mb = (int64_t)floor(mb);
    r->set |= NODE_F_MEMORY;
    return 0;
}

int node_report_set_gpus(node_report *r, double n, cs_error *err)
{
    if (check_whole(n, CS_GPUS_MAX, "vgpus", err))
        return -1;
    r->gpus = (int32_t)n;
    r->set |= NODE_F_GPUS;
    return 0;
}

int node_report_set_cpu_percent(node_report *r, double pct, cs_error *err)
{
    if (cs_check_quantity(pct, 100.0, "cpu_percent", err))
        return -1;
    r->cpu_percent = pct;
    r->set |= NODE_F_CPU_PCT;
    return 0;
}

int node_report_set_memory_percent(node_report *r, double pct, cs_error *err)
{
    if (cs_check_quantity(pct, 100.0, "memory_percent", err))
        return -1;
    r->memory_percent = pct;
    r->set |= NODE_F_MEM_PCT;
    return 0;
}

int node_report_set_location(node_report *r, double lat, double lon, cs_error *err)
{
    if (cs_check_lat_lon(lat, lon, err))
        return -1;
    r->lat = lat;
    r->lon = lon;
    r->set |= NODE_F_LOCATION;
    return 0;
}

int cs_check_lat_lon(double lat, double lon, cs_error *err)
{
    if (!isfinite(lat) || lat < -90 || lat > 90)
        return cs_fail(err, "location.lat", "must be a number in -90..90");
    if (!isfinite(lon) || lon < -180 || lon > 180)
        return cs_fail(err, "location.lon", "must be a number in -180..180");
    return 0;
}

int node_report_add_latency(node_report *r, const char *area, double ms, cs_error *err)
{
    char name[CS_NAME_MAX + 1];
    if (copy_name(name, sizeof name, area, "latency_ms", err))
        return -1;
    if (cs_check_quantity(ms, CS_THRESHOLD_MAX, "latency_ms", err))
        return -1;
    r->set |= NODE_F_LATENCY;
    for (size_t i = 0; i < r->n_latency; i++)
        if (strcmp(r->latency[i].area, name) == 0) {
            r->latency[i].ms = ms;
            return 0;
        }
    if (r->n_latency >= CS_LIST_MAX)
        return cs_fail(err, "latency_ms", "more than %d areas", CS_LIST_MAX);
    node_latency *nl = realloc(r->latency, (r->n_latency + 1) * sizeof *nl);
    if (!nl)
        return cs_fail(err, "latency_ms", "out of memory");
    r->latency = nl;
    memcpy(nl[r->n_latency].area, name, sizeof name);
    nl[r->n_latency].ms = ms;
    r->n_latency++;
    return 0;
}

int node_report_set_vivaldi(node_report *r, const double *v, size_t dim, double height,
                            cs_error *err)
{
    if (dim < 1 || dim > CS_VIVALDI_DIM_MAX)
        return cs_fail(err, "vivaldi.vector", "must hold 1..%d numbers", CS_VIVALDI_DIM_MAX);
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(v[i]) || fabs(v[i]) > CS_THRESHOLD_MAX)
            return cs_fail(err, "vivaldi.vector", "must hold finite numbers (ms)");
    if (cs_check_quantity(height, CS_THRESHOLD_MAX, "vivaldi.height", err))
        return -1;
    memcpy(r->vivaldi, v, dim * sizeof *v);
    r->vivaldi_dim = (uint32_t)dim;
    r->vivaldi_height = height;
    r->set |= NODE_F_VIVALDI;
    return 0;
}

int node_report_add_label(node_report *r, const char *key, const char *value, cs_error *err)
{
    char k[CS_NAME_MAX + 1], v[CS_NAME_MAX + 1];
    if (copy_name(k, sizeof k, key, "labels", err) || copy_name(v, sizeof v, value, "labels", err))
        return -1;
    r->set |= NODE_F_LABELS;
    for (size_t i = 0; i < r->n_labels; i++)
        if (strcmp(r->labels[i].key, k) == 0) {
            memcpy(r->labels[i].value, v, sizeof v);
            return 0;
        }
    if (r->n_labels >= CS_LIST_MAX)
        return cs_fail(err, "labels", "more than %d labels", CS_LIST_MAX);
    node_label *nl = realloc(r->labels, (r->n_labels + 1) * sizeof *nl);
    if (!nl)
        return cs_fail(err, "labels", "out of memory");
    r->labels = nl;
    memcpy(nl[r->n_labels].key, k, sizeof k);
    memcpy(nl[r->n_labels].value, v, sizeof v);
    r->n_labels++;
    return 0;
}

int node_id_check(const char *id, cs_error *err)
{
    if (!id || !*id)
        return cs_fail(err, "node_id", "must be a non-empty string");
    size_t len = strnlen(id, CS_ID_MAX + 1);
    if (len > CS_ID_MAX)
        return cs_fail(err, "node_id", "longer than %d characters", CS_ID_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (ch <= 0x20 || ch == '/' || ch == 0x7f)
            return cs_fail(err, "node_id", "contains '/', a space or a control character");
    }
    return 0;
}
