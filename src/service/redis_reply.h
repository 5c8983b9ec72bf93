/* redis_reply.h - reading the Redis store's replies: hiredis reply trees
 * (stream entries, the change feed, the snapshot script's answer, the
 * other scripts' answers) turned into the store's structs and callbacks.
 * Pure: no I/O, no allocation except the strings handed to the caller;
 * never frees a reply. Every function accepts any tree hiredis can build
 * (a misbehaving server, a changed script) and answers "malformed" rather
 * than reading past what is there, which is what fuzz/fuzz_redis.c checks.
 * An id with a NUL inside counts as malformed: its C string would name
 * another, shorter id. */
#ifndef CS_REDIS_REPLY_H
#define CS_REDIS_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "store.h"

#define RR_ENTRY_ID_MAX 48 /* a stream entry id, "<ms>-<seq>", with room */

/* An error reply whose text starts with prefix ("NOSCRIPT", "NOGROUP"...). */
bool rr_is_error(const redisReply *r, const char *prefix);
/* An integer reply's value; `otherwise` for anything else. */
long long rr_integer(const redisReply *r, long long otherwise);
/* SCRIPT LOAD's answer: a 40-character digest. */
bool rr_script_sha(const redisReply *r);

/* One job stream entry ([id, [field, value, ...]]) as a job (the caller
 * owns out->body). eid (may be NULL) gets the entry id whenever the entry
 * has one, even when false is returned. false when the entry was deleted
 * (no fields) or is malformed; out holds nothing to free then. */
bool rr_entry_job(const redisReply *e, store_job *out, char eid[RR_ENTRY_ID_MAX]);
/* The entry list of the first stream in an XREAD / XREADGROUP reply
 * ([[stream, [entry, ...]], ...]), or NULL (nil: nothing new; malformed). */
const redisReply *rr_stream_entries(const redisReply *r);
/* XAUTOCLAIM's [cursor, [entry, ...], ...]: false when malformed. */
bool rr_autoclaim(const redisReply *r, const char **cursor, const redisReply **entries);
/* SCAN's [cursor, [key, ...]]: false when malformed (a key not a string). */
bool rr_scan(const redisReply *r, const char **cursor, const redisReply **keys);
/* XPENDING's summary: the number of pending entries, 0 when malformed. */
long long rr_pending_count(const redisReply *r);

/* The enqueue script's [rc, ...]: rcs[i] the answer for instance i (0
 * queued, 1 known), -1 where the reply has none. 0, or -1 when any is.
 * The claim script answers in the same shape (one rc per result). */
int rr_enqueue_rcs(const redisReply *r, uint32_t n, int *rcs);
/* The place script's {rc, outbox id | node, ...}, one pair per placement:
 * placement i's store_place_rc with outbox_id or held_node filled, or -1
 * when the reply is malformed or has no pair i. */
int rr_place(const redisReply *r, size_t i, int64_t *outbox_id, char held_node[CS_ID_MAX + 1]);
/* HMGET of a job hash (state, node, body, result, recv, dec): 0 and out
 * filled (caller clears it), 1 unknown instance, -1 malformed or out of
 * memory. */
int rr_status(const redisReply *r, store_status *out);
/* The node delete script's {existed, requeued}: 0, 1 unknown, -1. */
int rr_node_delete(const redisReply *r, size_t *requeued);
/* The outbox scan script's [[id, job, inst, payload, attempts, created,
 * next], ...]: the number of items written to out (at most max; caller
 * clears them), or -1 (nothing to clear) when malformed or out of memory. */
int rr_outbox_due(const redisReply *r, outbox_item *out, int max);

/* The snapshot script's {seq, last feed id, [id, doc, last]...,
 * [job, inst, node, cpu, mem, gpu, at]...}: checks the whole shape, so the
 * functions below may then read it freely. */
bool rr_snapshot_valid(const redisReply *r);
/* Replays a valid snapshot through l: nodes, then reservations; stops at
 * the first callback that does not return 0 and returns its value. */
int rr_snapshot_replay(const redisReply *r, const store_loader *l);
/* A valid snapshot's feed position (its counter and last entry id) and
 * node count. */
void rr_snapshot_position(const redisReply *r, uint64_t *seq, const char **feed_id, size_t *nodes);

/* One change-feed entry ([id, [field, value, ...]]): false when malformed. */
bool rr_feed_entry(const redisReply *e, const char **id, const redisReply **fields);
/* The entry's sequence number ("seq"), 0 when it has none. */
uint64_t rr_event_seq(const redisReply *fields);
/* Calls the follower's callback for one entry's fields (n node report, h
 * repeated report, d node deleted, r reservation, x release); ignores
 * unknown or incomplete entries. */
void rr_event_apply(const redisReply *fields, const store_follower *fo);
/* GET of the feed counter: true when it is behind seq (Redis came back
 * empty, or lost writes, and counts again). */
bool rr_seq_behind(const redisReply *r, uint64_t seq);

#endif
