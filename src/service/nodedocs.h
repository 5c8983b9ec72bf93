/* nodedocs.h - the node documents: for each node id, the merged JSON of
 * everything its reports said (unknown fields included), as answered by
 * GET /api/v1/nodes and sent in results. Documents are stored as their
 * compact serialised text (reals to 15 significant digits, as codec_dump
 * writes them), not as jansson trees: readers get a new tree parsed from
 * it, so no jansson value (whose reference count is not safe to share
 * between threads) is ever shared. Thread-safe. */
#ifndef CS_NODEDOCS_H
#define CS_NODEDOCS_H

#include <jansson.h>
#include <stdbool.h>

typedef struct nodedocs nodedocs;

nodedocs *nodedocs_new(void);
void nodedocs_free(nodedocs *nd);

/* A new tree of the node's document (caller owns it), or NULL. */
json_t *nodedocs_get(nodedocs *nd, const char *node_id);
/* The node's document as compact JSON text (caller frees), or NULL when
 * unknown or out of memory: what nodedocs_get parses, for a writer that
 * splices it into a larger text instead of building a tree. */
char *nodedocs_get_text(nodedocs *nd, const char *node_id);
/* True when text is the node's document as stored, byte for byte. */
bool nodedocs_same(nodedocs *nd, const char *node_id, const char *text);
/* Stores doc (the reference is stolen, even on failure) as the node's
 * document. 0 or -1. */
int nodedocs_put(nodedocs *nd, const char *node_id, json_t *doc);
/* 0, or -1 if unknown. */
int nodedocs_remove(nodedocs *nd, const char *node_id);
/* A new array of every node id at this moment, in the order they were
 * first stored (caller owns it). */
json_t *nodedocs_ids(nodedocs *nd);

/* Serialises updates of one node (report -> merge -> durable write) so two
 * concurrent reports of the same node cannot store their documents in the
 * opposite order of their merges; different nodes hardly ever contend
 * (striped locks). */
void nodedocs_lock_node(nodedocs *nd, const char *node_id);
void nodedocs_unlock_node(nodedocs *nd, const char *node_id);

#endif
