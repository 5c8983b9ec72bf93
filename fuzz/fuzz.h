/* fuzz.h - what the fuzz targets share: the libFuzzer entry point (which
 * replay.c also calls, in ordinary builds, on the stored inputs) and
 * FUZZ_CHECK, which turns a broken property into a crash that libFuzzer
 * reports and saves like any other. */
#ifndef CS_FUZZ_H
#define CS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A NUL-terminated copy of size bytes (a NUL inside ends the C string
 * early, as it would for a caller that got the bytes from the network). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FUZZ_CHECK(s);
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
