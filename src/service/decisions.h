/* decisions.h - the last decisions this process made, kept in a small ring
 * in memory for the dashboard (/ui) and GET /api/v1/decisions: which job,
 * where it went, the prioritized list and why the other nodes were left
 * out. Not durable and per process: in Redis mode each process that runs
 * workers keeps its own, and an api-only process keeps none. */
#ifndef CS_DECISIONS_H
#define CS_DECISIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_limits.h"
#include "engine.h"

#define DECISIONS_KEEP 50      /* decisions a process keeps */
#define DECISIONS_CANDIDATES 5 /* entries of each prioritized list kept */

typedef struct decision_candidate {
    char node_id[CS_ID_MAX + 1];
    double score;
} decision_candidate;

/* One decision as recorded; a plain value, copied into the ring. */
typedef struct decision {
    char job_id[CS_ID_MAX + 1];
    uint32_t instance;
    bool placed;
    char node_id[CS_ID_MAX + 1]; /* placed: where */
    double at;                   /* epoch seconds */
    double seconds;              /* time to filter, rank and reserve */
    size_t n_nodes, n_qualified;
    size_t reasons[REASON__COUNT];
    size_t n_candidates; /* at most DECISIONS_CANDIDATES of them below */
    decision_candidate candidates[DECISIONS_CANDIDATES];
    char message[256];
} decision;

typedef struct decisions decisions;

/* keep: how many to remember (>= 1). NULL when out of memory. */
decisions *decisions_new(size_t keep);
void decisions_free(decisions *d);

/* Fills rec from an engine result (r may be NULL: a job that could not be
 * decoded; then only the ids, the time and the message are set). */
void decision_fill(decision *rec, const char *job_id, uint32_t instance, const engine_result *r,
                   const char *message, double at, double seconds);

/* Remembers a copy of rec, dropping the oldest past `keep`. Thread-safe;
 * a short copy under a mutex, so workers can call it per decision. */
void decisions_record(decisions *d, const decision *rec);

/* {"kept": k, "recorded": total since start, "decisions": [newest first,
 * at most limit]}; each entry as docs/API.md describes. NULL when out of
 * memory. */
json_t *decisions_json(decisions *d, size_t limit);

#endif
