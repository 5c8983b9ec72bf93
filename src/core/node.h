/* node.h - what a node report says about a worker node. A report may carry
 * any subset of the fields (a heartbeat carries only usage); `set` says which.
 * Quantities are integers: CPU in thousandths of a vCPU, memory in MB, so
 * reservations add up exactly. */
#ifndef CS_NODE_H
#define CS_NODE_H

#include <stdint.h>

#include "error.h"
#include "cs_limits.h"
#include "strlist.h"

enum {
    NODE_F_HOST = 1u << 0,
    NODE_F_VIRT = 1u << 1,
    NODE_F_ARCH = 1u << 2,
    NODE_F_VCPUS = 1u << 3,
    NODE_F_MEMORY = 1u << 4,
    NODE_F_GPUS = 1u << 5,
    NODE_F_CPU_PCT = 1u << 6,
    NODE_F_MEM_PCT = 1u << 7,
    NODE_F_ADDONS = 1u << 8,
    NODE_F_CSI = 1u << 9,
    NODE_F_LOCATION = 1u << 10,
    NODE_F_LATENCY = 1u << 11,
    NODE_F_VIVALDI = 1u << 12,
    NODE_F_LABELS = 1u << 13,
};

/* Edge fields: measured round-trip latency to a named area, and labels
 * (zone, rack, ...) that a job can spread its instances across. */
typedef struct node_latency {
    char area[CS_NAME_MAX + 1];
    double ms;
} node_latency;

typedef struct node_label {
    char key[CS_NAME_MAX + 1];
    char value[CS_NAME_MAX + 1];
} node_label;

typedef struct node_report {
    uint32_t set; /* NODE_F_* bits of the fields present */
    char host[CS_HOST_MAX + 1];
    uint32_t virt; /* VIRT_* bits */
    char arch[CS_NAME_MAX + 1];
    int64_t vcpus_milli;
    int64_t memory_mb;
    int32_t gpus;
    double cpu_percent;    /* 0..100 */
    double memory_percent; /* 0..100 */
    strlist addons;
    strlist csi;
    double lat, lon;       /* degrees */
    node_latency *latency; /* owned; n_latency entries, one per area */
    size_t n_latency;
    double vivaldi[CS_VIVALDI_DIM_MAX]; /* network coordinates, ms */
    uint32_t vivaldi_dim;
    double vivaldi_height;
    node_label *labels; /* owned; n_labels entries, one per key */
    size_t n_labels;
} node_report;

void node_report_init(node_report *r);
void node_report_clear(node_report *r); /* frees the lists */

/* Setters validate and convert; each names its field in err on failure. */
int node_report_set_host(node_report *r, const char *host, cs_error *err);
int node_report_set_arch(node_report *r, const char *arch, cs_error *err);
int node_report_add_virt(node_report *r, const char *name, cs_error *err);
int node_report_set_vcpus(node_report *r, double v, cs_error *err);
int node_report_set_memory(node_report *r, double mb, cs_error *err);
int node_report_set_gpus(node_report *r, double n, cs_error *err);
int node_report_set_cpu_percent(node_report *r, double pct, cs_error *err);
int node_report_set_memory_percent(node_report *r, double pct, cs_error *err);
int node_report_set_location(node_report *r, double lat, double lon, cs_error *err);
/* One area's latency (ms >= 0); a second figure for an area replaces the
 * first. Marks the latency table as reported (an empty table clears it). */
int node_report_add_latency(node_report *r, const char *area, double ms, cs_error *err);
/* Vivaldi coordinates: 1..CS_VIVALDI_DIM_MAX finite numbers (ms) and a
 * height >= 0. */
int node_report_set_vivaldi(node_report *r, const double *v, size_t dim, double height,
                            cs_error *err);
/* One label; a second value for a key replaces the first. */
int node_report_add_label(node_report *r, const char *key, const char *value, cs_error *err);

/* Checks a node id: 1..CS_ID_MAX printable characters, no '/'. */
int node_id_check(const char *id, cs_error *err);

/* Shared number checks: finite, 0 <= v <= max. Used by job.c too. */
int cs_check_quantity(double v, double max, const char *field, cs_error *err);
/* A point on earth: lat in -90..90, lon in -180..180 (fields location.lat
 * and location.lon). */
int cs_check_lat_lon(double lat, double lon, cs_error *err);
/* v vCPUs to thousandths, rounded up so a request is never under-counted. */
int64_t cs_milli_ceil(double v);

#endif
