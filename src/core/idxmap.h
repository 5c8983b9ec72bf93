/* idxmap.h - an open-addressing index from a 32-bit hash to positions in a
 * caller's array. The caller keeps the keys (in its array) and supplies the
 * equality test, so one index serves nodes and reservations alike and the
 * array can move elements (swap-remove) by updating one slot. */
#ifndef CS_IDXMAP_H
#define CS_IDXMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDXMAP_NONE UINT32_MAX

typedef struct idxmap {
    uint64_t *slots; /* high 32 bits: hash; low 32 bits: position + 1 (0 = empty) */
    size_t cap;      /* power of two */
    size_t n;
} idxmap;

typedef bool (*idxmap_eq)(const void *ud, uint32_t pos, const void *key);

void idxmap_init(idxmap *m);
void idxmap_free(idxmap *m);
uint32_t idxmap_find(const idxmap *m, uint32_t hash, idxmap_eq eq, const void *ud, const void *key);
int idxmap_insert(idxmap *m, uint32_t hash, uint32_t pos); /* -1 on no memory */
void idxmap_remove(idxmap *m, uint32_t hash, uint32_t pos);
void idxmap_move(idxmap *m, uint32_t hash, uint32_t from, uint32_t to);
size_t idxmap_bytes(const idxmap *m);

uint32_t cs_hash_str(const char *s, uint32_t seed);

#endif
