/* nodedocs.c - the id -> document map. Each document is kept as its compact
 * serialised text in one allocation together with its id (a jansson tree
 * costs about 3 KB for a typical 320-byte report: at 100,000 nodes that was
 * most of the process's memory); nodedocs_get parses a fresh tree on demand.
 * The text is packed: the field names of docs/API.md and a few common
 * values are replaced by one byte each (bytes 0x01..0x1f, which compact JSON
 * never contains), which takes a typical report from about 320 to 170
 * bytes. A chained hash table indexes the entries, and a doubly linked list
 * keeps them in insertion order (a replaced document keeps its place), as
 * the jansson object used before did. One mutex for the map, held only for
 * map operations and the copy of one text (never while parsing or
 * serialising), and 64 striped mutexes for per-node update ordering. */
#include "nodedocs.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64
#define MIN_BUCKETS 64
/* Reals keep 15 significant digits, as in codec_dump: the durable copy of
 * every document and every answer that shows one are written that way. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))
#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)
/* A document up to this size is copied to the stack to be parsed. */
#define STACK_COPY 2048

typedef struct entry entry;
struct entry {
    entry *chain;       /* next in the bucket */
    entry *prev, *next; /* insertion order */
    uint32_t hash;
    uint32_t id_len;
    uint32_t doc_len; /* packed */
    uint32_t raw_len; /* unpacked; equal to doc_len: nothing packed */
    char data[];      /* id '\0' packed doc '\0' */
};

/* Byte i + 1 stands for TOKENS[i]. */
#define T(s)                                                                                       \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }
static const struct {
    const char *text;
    size_t len;
} TOKENS[] = {
    T("\"host\":"),
    T("\"virtualization\":"),
    T("\"technology\":"),
    T("\"architecture\":"),
    T("\"vcpus\":"),
    T("\"memory\":"),
    T("\"vgpus\":"),
    T("\"cpu_percent\":"),
    T("\"memory_percent\":"),
    T("\"supported_addons\":"),
    T("\"csi_drivers\":"),
    T("\"csi_driver_name\":"),
    T("\"location\":"),
    T("\"lat\":"),
    T("\"lon\":"),
    T("[\"container\"]"),
    T("\"container\""),
    T("\"unikernel\""),
    T("\"docker\""),
    T("\"wasm\""),
    T("\"amd64\""),
    T("\"arm64\""),
    T("[]"),
};
#undef T
#define NTOKENS (sizeof TOKENS / sizeof TOKENS[0])
_Static_assert(NTOKENS < 0x20, "token bytes are 0x01..0x1f");

/* Packs text (len bytes) in place and returns the packed length. A text
 * that already holds a token byte is left as it is. */
static size_t pack(char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20)
            return len;
    size_t r = 0, w = 0;
    while (r < len) {
        char c = text[r];
        size_t k = NTOKENS;
        if (c == '"' || c == '[')
            for (k = 0; k < NTOKENS; k++)
                if (TOKENS[k].text[0] == c && TOKENS[k].len <= len - r &&
                    memcmp(text + r, TOKENS[k].text, TOKENS[k].len) == 0)
                    break;
        if (k < NTOKENS) {
            text[w++] = (char)(k + 1);
            r += TOKENS[k].len;
        } else {
            text[w++] = text[r++];
        }
    }
    text[w] = '\0';
    return w;
}

/* Writes the entry's document, unpacked, to out (raw_len + 1 bytes). */
static void unpack(const entry *e, const char *packed, char *out)
{
    if (e->raw_len == e->doc_len) {
        memcpy(out, packed, e->doc_len + 1);
        return;
    }
    for (size_t i = 0; i < e->doc_len; i++) {
        unsigned char c = (unsigned char)packed[i];
        if (c >= 1 && c <= NTOKENS) {
            memcpy(out, TOKENS[c - 1].text, TOKENS[c - 1].len);
            out += TOKENS[c - 1].len;
        } else {
            *out++ = (char)c;
        }
    }
    *out = '\0';
}

struct nodedocs {
    pthread_mutex_t lock; /* guards everything below */
    entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    entry *first, *last;
    pthread_mutex_t stripe[STRIPES];
};

static uint32_t hash_id(const char *id, size_t *len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    const unsigned char *p = (const unsigned char *)id;
    for (; *p; p++)
        h = (h ^ *p) * 16777619u;
    *len = (size_t)(p - (const unsigned char *)id);
    return h;
}

static const char *doc_of(const entry *e)
{
    return e->data + e->id_len + 1;
}

nodedocs *nodedocs_new(void)
{
    nodedocs *nd = calloc(1, sizeof *nd);
    if (!nd)
        return NULL;
    nd->nbuckets = MIN_BUCKETS;
    nd->buckets = calloc(nd->nbuckets, sizeof *nd->buckets);
    if (!nd->buckets) {
        free(nd);
        return NULL;
    }
    pthread_mutex_init(&nd->lock, NULL);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&nd->stripe[i], NULL);
    return nd;
}

void nodedocs_free(nodedocs *nd)
{
    if (!nd)
        return;
    for (entry *e = nd->first, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(nd->buckets);
    pthread_mutex_destroy(&nd->lock);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&nd->stripe[i]);
    free(nd);
}

/* The link that points at the entry for id (or the bucket's terminating
 * NULL link if there is none). Under the lock. */
static entry **find(nodedocs *nd, const char *id, size_t len, uint32_t h)
{
    entry **link = &nd->buckets[h & (nd->nbuckets - 1)];
    while (*link &&
           !((*link)->hash == h && (*link)->id_len == len && memcmp((*link)->data, id, len) == 0))
        link = &(*link)->chain;
    return link;
}

/* Doubles the bucket array when the table is fuller than one entry per
 * bucket; a failed allocation only leaves the chains longer. Under the lock. */
static void maybe_grow(nodedocs *nd)
{
    if (nd->count <= nd->nbuckets || nd->nbuckets > SIZE_MAX / 2 / sizeof(entry *))
        return;
    size_t n = nd->nbuckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (entry *e = nd->first; e; e = e->next) {
        entry **head = &b[e->hash & (n - 1)];
        e->chain = *head;
        *head = e;
    }
    free(nd->buckets);
    nd->buckets = b;
    nd->nbuckets = n;
}

json_t *nodedocs_get(nodedocs *nd, const char *node_id)
{
    size_t len;
    uint32_t h = hash_id(node_id, &len);
    char stack[STACK_COPY];
    char *text = NULL;
    size_t doc_len = 0;
    bool found = false;
    pthread_mutex_lock(&nd->lock);
    entry *e = *find(nd, node_id, len, h);
    if (e) {
        doc_len = e->raw_len;
        text = doc_len < sizeof stack ? stack : malloc(doc_len + 1);
        if (text)
            unpack(e, doc_of(e), text);
        found = true;
    }
    pthread_mutex_unlock(&nd->lock);
    if (!found || !text)
        return NULL;
    json_t *doc = json_loadb(text, doc_len, LOAD_FLAGS, NULL);
    if (text != stack)
        free(text);
    return doc;
}

char *nodedocs_get_text(nodedocs *nd, const char *node_id)
{
    size_t len;
    uint32_t h = hash_id(node_id, &len);
    char *text = NULL;
    pthread_mutex_lock(&nd->lock);
    entry *e = *find(nd, node_id, len, h);
    if (e && (text = malloc((size_t)e->raw_len + 1)))
        unpack(e, doc_of(e), text);
    pthread_mutex_unlock(&nd->lock);
    return text;
}

bool nodedocs_same(nodedocs *nd, const char *node_id, const char *text)
{
    size_t len, tl = strlen(text);
    uint32_t h = hash_id(node_id, &len);
    bool same = false;
    pthread_mutex_lock(&nd->lock);
    entry *e = *find(nd, node_id, len, h);
    if (e && e->raw_len == tl) {
        if (e->doc_len == e->raw_len) {
            same = memcmp(doc_of(e), text, tl) == 0;
        } else {
            char *buf = malloc(tl + 1);
            if (buf) {
                unpack(e, doc_of(e), buf);
                same = memcmp(buf, text, tl) == 0;
            }
            free(buf);
        }
    }
    pthread_mutex_unlock(&nd->lock);
    return same;
}

int nodedocs_put(nodedocs *nd, const char *node_id, json_t *doc)
{
    if (!doc)
        return -1;
    char *text = json_dumps(doc, DUMP_FLAGS);
    json_decref(doc);
    if (!text)
        return -1;
    size_t len, raw_len = strlen(text);
    uint32_t h = hash_id(node_id, &len);
    if (len > UINT32_MAX - 2 || raw_len > UINT32_MAX - 2) {
        free(text);
        return -1;
    }
    size_t doc_len = pack(text, raw_len);
    entry *n = malloc(sizeof *n + len + 1 + doc_len + 1);
    if (!n) {
        free(text);
        return -1;
    }
    n->hash = h;
    n->id_len = (uint32_t)len;
    n->doc_len = (uint32_t)doc_len;
    n->raw_len = (uint32_t)raw_len;
    memcpy(n->data, node_id, len + 1);
    memcpy(n->data + len + 1, text, doc_len + 1);
    free(text);

    pthread_mutex_lock(&nd->lock);
    entry **link = find(nd, node_id, len, h);
    entry *old = *link;
    if (old) {
        /* Takes the old entry's place in its chain and in the order. */
        n->chain = old->chain;
        n->prev = old->prev;
        n->next = old->next;
        *link = n;
        if (n->prev)
            n->prev->next = n;
        else
            nd->first = n;
        if (n->next)
            n->next->prev = n;
        else
            nd->last = n;
    } else {
        n->chain = NULL;
        *link = n;
        n->prev = nd->last;
        n->next = NULL;
        if (nd->last)
            nd->last->next = n;
        else
            nd->first = n;
        nd->last = n;
        nd->count++;
        maybe_grow(nd);
    }
    pthread_mutex_unlock(&nd->lock);
    free(old);
    return 0;
}

int nodedocs_remove(nodedocs *nd, const char *node_id)
{
    size_t len;
    uint32_t h = hash_id(node_id, &len);
    pthread_mutex_lock(&nd->lock);
    entry **link = find(nd, node_id, len, h);
    entry *e = *link;
    if (e) {
        *link = e->chain;
        if (e->prev)
            e->prev->next = e->next;
        else
            nd->first = e->next;
        if (e->next)
            e->next->prev = e->prev;
        else
            nd->last = e->prev;
        nd->count--;
    }
    pthread_mutex_unlock(&nd->lock);
    if (!e)
        return -1;
    free(e);
    return 0;
}

json_t *nodedocs_ids(nodedocs *nd)
{
    json_t *ids = json_array();
    pthread_mutex_lock(&nd->lock);
    for (entry *e = nd->first; e && ids; e = e->next) {
        if (json_array_append_new(ids, json_stringn(e->data, e->id_len))) {
            json_decref(ids);
            ids = NULL;
        }
    }
    pthread_mutex_unlock(&nd->lock);
    return ids;
}

static unsigned stripe_of(const char *id)
{
    size_t len;
    return hash_id(id, &len) % STRIPES;
}

void nodedocs_lock_node(nodedocs *nd, const char *node_id)
{
    pthread_mutex_lock(&nd->stripe[stripe_of(node_id)]);
}

void nodedocs_unlock_node(nodedocs *nd, const char *node_id)
{
    pthread_mutex_unlock(&nd->stripe[stripe_of(node_id)]);
}
