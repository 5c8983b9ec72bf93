/* cs_limits.h - hard caps on every size and number that reaches the core from
 * the network, so each input has a bound and a clear error past it. */
#ifndef CS_LIMITS_H
#define CS_LIMITS_H

#define CS_ID_MAX 63               /* node and job ids, characters */
#define CS_HOST_MAX 127            /* node host names */
#define CS_NAME_MAX 63             /* architecture, addon, CSI driver names */
#define CS_LIST_MAX 64             /* entries in any list (arch, addons, hosts...) */
#define CS_DISTINCT_NAMES 64       /* distinct addon / CSI names in one cluster */
#define CS_DISTINCT_ARCH 250       /* distinct architectures in one cluster */
#define CS_VCPUS_MAX 65536.0       /* per node or job */
#define CS_MEMORY_MAX 1073741824.0 /* MB (1 PiB) */
#define CS_GPUS_MAX 4096.0
#define CS_INSTANCE_MAX 1000000
#define CS_TOPK_MAX 100000
#define CS_VIVALDI_DIM_MAX 16        /* network coordinate dimensions */
#define CS_DISTINCT_AREAS 4096       /* distinct latency areas in one cluster */
#define CS_THRESHOLD_MAX 1e9         /* km or ms in a constraint or report */
#define CS_EARTH_RADIUS_KM 6371.0088 /* mean earth radius (IUGG) */

#endif
