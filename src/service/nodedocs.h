/* nodedocs.h - the node documents: for each node id, the merged JSON of
 * everything its reports said (unknown fields included), as answered by
 * GET /api/v1/nodes and sent in results. Stored documents never leave the
 * map's lock: readers get deep copies, so no jansson value (whose
 * reference count is not safe to share between threads) is ever shared.
 * Thread-safe. */
#ifndef CS_NODEDOCS_H
#define CS_NODEDOCS_H

#include <jansson.h>

typedef struct nodedocs nodedocs;

nodedocs *nodedocs_new(void);
void nodedocs_free(nodedocs *nd);

/* A deep copy of the node's document (caller owns it), or NULL. */
json_t *nodedocs_get(nodedocs *nd, const char *node_id);
/* Stores doc (the reference is stolen) as the node's document. 0 or -1. */
int nodedocs_put(nodedocs *nd, const char *node_id, json_t *doc);
/* 0, or -1 if unknown. */
int nodedocs_remove(nodedocs *nd, const char *node_id);
/* A new array of every node id at this moment (caller owns it). */
json_t *nodedocs_ids(nodedocs *nd);

/* Serialises updates of one node (report -> merge -> durable write) so two
 * concurrent reports of the same node cannot store their documents in the
 * opposite order of their merges; different nodes hardly ever contend
 * (striped locks). */
void nodedocs_lock_node(nodedocs *nd, const char *node_id);
void nodedocs_unlock_node(nodedocs *nd, const char *node_id);

#endif
