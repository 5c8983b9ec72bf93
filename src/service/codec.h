/* codec.h - JSON <-> core: turns job documents and node reports into the
 * core's validated structs (every error names the JSON field, e.g.
 * "vcpus" or "constraints[0].node"), and builds the JSON the service
 * answers and sends: node documents, results, dry runs, errors. Pure: no
 * I/O, no globals; every function is safe to call from any thread. */
#ifndef CS_CODEC_H
#define CS_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "engine.h"
#include "error.h"
#include "job.h"
#include "node.h"

/* Parses a request body that must be one JSON object (duplicate keys
 * rejected). Returns a new reference, or NULL with err (field "body"). */
json_t *codec_parse_object(const char *body, size_t len, cs_error *err);

/* The job's id from "_id" (or "id"): 0 and out filled, 1 when absent,
 * -1 when invalid. prefix is put before field names ("" or "job."). */
int codec_job_id(const json_t *job, const char *prefix, char out[CS_ID_MAX + 1], cs_error *err);

/* Reads an optional whole number in 0..CS_INSTANCE_MAX under key:
 * 0 and out set, 1 absent (out untouched), -1 invalid. */
int codec_instance(const json_t *obj, const char *key, uint32_t *out, cs_error *err);

/* Decodes a job document into out (initialised here; the caller clears
 * it even on failure). id: the job id to use (the URL's wins over the
 * body's); NULL means take it from the body. notes: things the job asked
 * for that the service accepts but ignores, for the caller to log (none at
 * present: set to 0); may be NULL. Returns 0, or -1 with err naming the
 * field (with prefix). */
int codec_job(const json_t *job, const char *id, uint32_t instance, const char *prefix,
              job_spec *out, unsigned *notes, cs_error *err);

/* Decodes a node report (any subset of fields) into out (initialised
 * here; the caller clears it). 0, or -1 with err. */
int codec_node(const json_t *report, node_report *out, cs_error *err);

/* A new node document: old (may be NULL) with the report's fields laid
 * over it. JSON nulls and the keys the service computes (_id, active,
 * free, reserved, last_report, reservations) are not stored; sending
 * virtualization drops a stored technology and the other way round.
 * NULL when out of memory. */
json_t *codec_node_merge(const json_t *old, const json_t *report);

/* The node document as answered and sent: "_id", the stored fields, and
 * the live view (active, last_report, free, reserved, reservations).
 * stored may be NULL. New reference or NULL. */
json_t *codec_node_doc(const json_t *stored, const node_view *v);

/* [{"node_id":..,"score":..}, ...] best first. */
json_t *codec_candidates(const engine_result *r);
/* {"insufficient_cpu": 7, ...}: only the reasons that rejected a node. */
json_t *codec_reasons(const engine_result *r);
/* [{"filter": "cpu", "removed": 7}, {"filter": "geo", "constraint": 0,
 * "removed": 2}, ...]: every filter that applied to the job, in chain order. */
json_t *codec_filters(const engine_result *r);
/* {"at", "nodes", "qualified", "filters", "reasons", "per_node": [{"node_id",
 * "qualified", "score", "rank"} or {"node_id", "qualified": false, "reason",
 * "message", "constraint"?, "value"?, "limit"?}, ...]} from engine_explain. */
json_t *codec_explain(const engine_result *r, const engine_node_explain *nodes, const job_spec *job,
                      double at);

/* Result documents for the cluster manager, as compact JSON strings
 * (caller frees), or NULL when out of memory. job: the job as received
 * (borrowed). node_doc: from codec_node_doc (borrowed). */
char *codec_result_placed(const json_t *job, const json_t *node_doc, const engine_result *r,
                          const char *message);
/* The same document as codec_result_placed with codec_node_doc's node,
 * written without building the node's tree: stored_text is the node's
 * stored document as nodedocs_get_text gives it (may be NULL), v its live
 * view. */
char *codec_result_placed_stored(const json_t *job, const char *stored_text, const node_view *v,
                                 const engine_result *r, const char *message);
char *codec_result_unplaced(const json_t *job, const engine_result *r, const char *message);
/* A job the worker could not decode (it passed intake, so only a changed
 * configuration or a bug gets here): not placed, with the error. */
char *codec_result_invalid(const json_t *job, const cs_error *e);

/* {"nodes":..,"qualified":..,"candidates":..,"reasons":..,"filters":..,"message":..} */
json_t *codec_schedule_answer(const engine_result *r, const char *message);

/* {"error":{"field":..,"message":..}} as a string (caller frees). */
char *codec_error_json(const char *field, const char *message);

/* json_dumps with the service's flags (compact, keys in insertion order). */
char *codec_dump(const json_t *v);

#endif
