/* nodedocs.c - a jansson object used as the id -> document map, one mutex
 * for the map and 64 striped mutexes for per-node update ordering. */
#include "nodedocs.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define STRIPES 64

struct nodedocs {
    pthread_mutex_t lock; /* guards map; held only for map operations */
    json_t *map;
    pthread_mutex_t stripe[STRIPES];
};

nodedocs *nodedocs_new(void)
{
    nodedocs *nd = calloc(1, sizeof *nd);
    if (!nd)
        return NULL;
    nd->map = json_object();
    if (!nd->map) {
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
    json_decref(nd->map);
    pthread_mutex_destroy(&nd->lock);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&nd->stripe[i]);
    free(nd);
}

json_t *nodedocs_get(nodedocs *nd, const char *node_id)
{
    pthread_mutex_lock(&nd->lock);
    json_t *doc = json_deep_copy(json_object_get(nd->map, node_id));
    pthread_mutex_unlock(&nd->lock);
    return doc;
}

int nodedocs_put(nodedocs *nd, const char *node_id, json_t *doc)
{
    pthread_mutex_lock(&nd->lock);
    int rc = json_object_set_new(nd->map, node_id, doc);
    pthread_mutex_unlock(&nd->lock);
    return rc;
}

int nodedocs_remove(nodedocs *nd, const char *node_id)
{
    pthread_mutex_lock(&nd->lock);
    int rc = json_object_del(nd->map, node_id);
    pthread_mutex_unlock(&nd->lock);
    return rc;
}

json_t *nodedocs_ids(nodedocs *nd)
{
    json_t *ids = json_array();
    const char *id;
    json_t *v;
    pthread_mutex_lock(&nd->lock);
    json_object_foreach(nd->map, id, v)
    {
        if (ids && json_array_append_new(ids, json_string(id))) {
            json_decref(ids);
            ids = NULL;
        }
    }
    pthread_mutex_unlock(&nd->lock);
    return ids;
}

static unsigned stripe_of(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % STRIPES;
}

void nodedocs_lock_node(nodedocs *nd, const char *node_id)
{
    pthread_mutex_lock(&nd->stripe[stripe_of(node_id)]);
}

void nodedocs_unlock_node(nodedocs *nd, const char *node_id)
{
    pthread_mutex_unlock(&nd->stripe[stripe_of(node_id)]);
}
