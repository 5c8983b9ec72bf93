/* store_impl.h - what a store backend provides: a table of functions that
 * store.c's public calls dispatch to. Each backend's handle starts with a
 * `store` whose ops point at its table. Only backends include this. */
#ifndef CS_STORE_IMPL_H
#define CS_STORE_IMPL_H

#include "store.h"

typedef struct store_ops {
    bool shared;
    void (*close)(store *s);
    int (*enqueue)(store *s, const char *job_id, uint32_t instance, const char *body, double now);
    int (*enqueue_async)(store *s, const char *job_id, uint32_t instance, const char *body,
                         double now, store_done_fn done, void *ud); /* NULL: none */
    void (*flush_async)(store *s);                                  /* with enqueue_async */
    int (*enqueue_many)(store *s, const char *job_id, uint32_t n, const char *body, double now,
                        int *rcs);
    int (*requeue)(store *s, const char *job_id, uint32_t instance, const char *on_node,
                   double now);
    int (*take)(store *s, store_job *out, int timeout_ms);
    int (*take_more)(store *s, store_job *out); /* NULL: take without waiting */
    size_t (*queue_depth)(store *s);
    int64_t (*finish)(store *s, const char *job_id, uint32_t instance, job_state state,
                      const reservation_view *res, const char *result, double now);
    int (*finish_many)(store *s, store_finish_req *reqs, size_t n); /* NULL: one by one */
    int (*place_many)(store *s, store_place_req *reqs, size_t n);   /* shared stores only */
    int (*status_get)(store *s, const char *job_id, uint32_t instance, store_status *out);
    int (*job_delete)(store *s, const char *job_id, uint32_t instance);
    int (*node_put)(store *s, const char *node_id, const char *doc, double last_report,
                    const store_node_caps *caps);
    int (*node_delete)(store *s, const char *node_id, size_t *requeued);
    int (*load)(store *s, const store_loader *l);
    int (*follow)(store *s, const store_follower *f, int timeout_ms, uint64_t *seq);
    int (*outbox_due)(store *s, double now, outbox_item *out, int max);
    int (*outbox_claim)(store *s, const outbox_item *items, size_t n, double lease, int *rcs);
    int (*outbox_done)(store *s, const outbox_key *k);
    int (*outbox_done_many)(store *s, const outbox_key *ks, size_t n); /* NULL: one by one */
    int (*outbox_retry)(store *s, const outbox_key *k, uint32_t attempts, double next_at);
    int (*outbox_give_up)(store *s, const outbox_key *k);
    size_t (*outbox_depth)(store *s);
} store_ops;

struct store {
    const store_ops *ops;
};

#endif
