/* idxmap.c - open addressing with linear probing and backward-shift
 * deletion (no tombstones, so lookups stay short after many removals). */
#include "idxmap.h"

#include <stdlib.h>

#define SLOT_HASH(s) ((uint32_t)((s) >> 32))
#define SLOT_POS(s) ((uint32_t)((s)&0xffffffffu))
#define MAKE_SLOT(h, pos1) (((uint64_t)(h) << 32) | (uint64_t)(pos1))

void idxmap_init(idxmap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->n = 0;
}

void idxmap_free(idxmap *m)
{
    free(m->slots);
    idxmap_init(m);
}

uint32_t cs_hash_str(const char *s, uint32_t seed)
{
    /* FNV-1a, then a finaliser so low bits mix well for masking. */
    uint32_t h = 2166136261u ^ seed;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h;
}

uint32_t idxmap_find(const idxmap *m, uint32_t hash, idxmap_eq eq, const void *ud, const void *key)
{
    if (!m->cap)
        return IDXMAP_NONE;
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        uint64_t s = m->slots[i];
        if (!SLOT_POS(s))
            return IDXMAP_NONE;
        if (SLOT_HASH(s) == hash && eq(ud, SLOT_POS(s) - 1, key))
            return SLOT_POS(s) - 1;
    }
}

static void put(uint64_t *slots, size_t cap, uint64_t slot)
{
    size_t mask = cap - 1;
    size_t i = SLOT_HASH(slot) & mask;
    while (SLOT_POS(slots[i]))
        i = (i + 1) & mask;
    slots[i] = slot;
}

int idxmap_insert(idxmap *m, uint32_t hash, uint32_t pos)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 16;
        uint64_t *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (SLOT_POS(m->slots[i]))
                put(ns, ncap, m->slots[i]);
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    put(m->slots, m->cap, MAKE_SLOT(hash, pos + 1));
    m->n++;
    return 0;
}

static size_t locate(const idxmap *m, uint32_t hash, uint32_t pos)
{
    size_t mask = m->cap - 1;
    uint64_t want = MAKE_SLOT(hash, pos + 1);
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        if (m->slots[i] == want)
            return i;
        if (!SLOT_POS(m->slots[i]))
            return SIZE_MAX;
    }
}

void idxmap_remove(idxmap *m, uint32_t hash, uint32_t pos)
{
    if (!m->cap)
        return;
    size_t i = locate(m, hash, pos);
    if (i == SIZE_MAX)
        return;
    size_t mask = m->cap - 1;
    m->slots[i] = 0;
    m->n--;
    /* Shift later members of the probe run back so no lookup stops early. */
    for (size_t j = (i + 1) & mask; SLOT_POS(m->slots[j]); j = (j + 1) & mask) {
        size_t home = SLOT_HASH(m->slots[j]) & mask;
        /* j's entry may move to i only if its home is not in (i, j]. */
        bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->slots[i] = m->slots[j];
            m->slots[j] = 0;
            i = j;
        }
    }
}

void idxmap_move(idxmap *m, uint32_t hash, uint32_t from, uint32_t to)
{
    if (!m->cap)
        return;
    size_t i = locate(m, hash, from);
    if (i != SIZE_MAX)
        m->slots[i] = MAKE_SLOT(hash, to + 1);
}

size_t idxmap_bytes(const idxmap *m)
{
    return m->cap * sizeof *m->slots;
}
