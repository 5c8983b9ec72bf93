/* claim_one.h - a test helper shared by the store tests (test_store.c,
 * test_store_redis.c): claims one result for delivery and returns the
 * store's answer for it. Include after cmocka.h and store.h. */
#ifndef CS_TEST_CLAIM_ONE_H
#define CS_TEST_CLAIM_ONE_H

#include <stdio.h>

static inline int claim1(store *s, int64_t id, const char *job, uint32_t inst, double lease)
{
    outbox_item it = {.id = id, .instance = inst};
    snprintf(it.job_id, sizeof it.job_id, "%s", job);
    int rc = -9;
    assert_int_equal(store_outbox_claim(s, &it, 1, lease, &rc), 0);
    return rc;
}

#endif
