/* virt.h - virtualization technologies as bits, so a node's set of runtimes
 * and a job's runtime compare in one AND. "docker" and "container" are one. */
#ifndef CS_VIRT_H
#define CS_VIRT_H

#include <stdint.h>

enum {
    VIRT_CONTAINER = 1u << 0, /* "container" or "docker" */
    VIRT_UNIKERNEL = 1u << 1,
    VIRT_WASM = 1u << 2,
    VIRT_VM = 1u << 3,
};

/* Returns the bit for a name, or 0 for an unknown one. */
uint32_t virt_from_name(const char *name);
/* The canonical name of one bit ("container", "unikernel", ...). */
const char *virt_name(uint32_t bit);

#endif
