/* mirror.h - keeps this process's cluster table and node documents a copy
 * of a shared store's (Redis mode): a full snapshot at start, then every
 * change from the store's feed, applied by one thread. Workers rank on the
 * copy (fast, no round trip per node) and commit in the store, which has
 * the last word on capacity. */
#ifndef CS_MIRROR_H
#define CS_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct svc_ctx;
typedef struct mirror mirror;

/* Loads the snapshot (synchronously: the copy is complete on return), then
 * starts the following thread. NULL with err filled.
 * gather_s: after a read that brought a few changes, the next one waits
 * this long, unless a worker waits for a newer position (mirror_wait).
 * Under load each read then brings many changes, and the thread, Redis
 * and the kernel pay one round trip and one wake-up for them, not one for
 * every two or three. A process's own placements are in its copy at once
 * and the store checks capacity anyway, so a copy this much older costs a
 * worker at most a retry. */
mirror *mirror_new(const struct svc_ctx *ctx, double gather_s, cs_error *err);
/* Waits until the copy has applied the feed up to seq, at most timeout_s.
 * true when it has. */
bool mirror_wait(mirror *m, uint64_t seq, double timeout_s);
/* True while the store is unreachable and for `window` seconds after it
 * answered again: nodes could not report meanwhile, so their last reports
 * look older than they are and silence proves nothing yet. */
bool mirror_settling(mirror *m, double window);
/* Feed position applied so far. */
uint64_t mirror_seq(mirror *m);
void mirror_stop(mirror *m);
void mirror_free(mirror *m);

#endif
