/* virt.c - names of virtualization technologies. */
#include "virt.h"

#include <string.h>

uint32_t virt_from_name(const char *name)
{
    if (!name)
        return 0;
    /* Oakestra names the container runtime both ways across versions. */
    if (strcmp(name, "container") == 0 || strcmp(name, "docker") == 0)
        return VIRT_CONTAINER;
    if (strcmp(name, "unikernel") == 0)
        return VIRT_UNIKERNEL;
    if (strcmp(name, "wasm") == 0)
        return VIRT_WASM;
    if (strcmp(name, "vm") == 0)
        return VIRT_VM;
    return 0;
}

const char *virt_name(uint32_t bit)
{
    switch (bit) {
    case VIRT_CONTAINER:
        return "container";
    case VIRT_UNIKERNEL:
        return "unikernel";
    case VIRT_WASM:
        return "wasm";
    case VIRT_VM:
        return "vm";
    default:
        return "unknown";
    }
}
