/* fuzz_job.c - fuzz target: a request body as the job routes read it. The
 * input goes through the decoding of each route that takes a job
 * (api.c): the drop-in deploy (job id and instance from the URL) and
 * replicate ({"job": .., "replicas": n}) routes, POST /api/v1/jobs (id
 * and instance from the body) and the dry run. Properties checked beyond
 * "no crash, no leak, no undefined behaviour":
 *   - a refused body yields an error naming a field, and the JSON error
 *     answer can always be built from it;
 *   - a job the intake accepted is accepted again by the worker from the
 *     text the store keeps, with the same meaning (ids, runtime, lists,
 *     strategy; quantities to within the rounding of 15 digits);
 *   - the worker's decision on a small cluster (placed, unplaced or
 *     refused) always yields the result document for the cluster manager. */
#include "fuzz.h"

#include <jansson.h>

#include "cluster.h"
#include "codec.h"
#include "engine.h"

#define NOW 1000000.0
#define TTL 30.0

typedef struct fixture {
    cluster *c;
    engine_ctx *ctx;
} fixture;

/* Nodes covering every filter: runtimes, architectures, addons, CSI,
 * GPUs, usage figures, and one past its TTL. */
static const struct {
    const char *id;
    double at;
    const char *report;
} NODES[] = {
    {"n1", NOW,
     "{\"host\":\"edge-1\",\"virtualization\":[\"container\"],\"architecture\":\"amd64\","
     "\"vcpus\":4,\"memory\":8192,\"cpu_percent\":10,\"memory_percent\":20,"
     "\"supported_addons\":[\"gpu-driver\",\"ebpf\"]}"},
    {"n2", NOW,
     "{\"host\":\"edge-2\",\"virtualization\":[\"container\",\"unikernel\"],"
     "\"architecture\":\"arm64\",\"vcpus\":16,\"memory\":32768,\"csi_drivers\":[\"csi.local\"]}"},
    {"n3", NOW,
     "{\"host\":\"gpu-1\",\"technology\":[\"docker\",\"wasm\",\"vm\"],\"architecture\":\"amd64\","
     "\"vcpus\":64,\"memory\":262144,\"vgpus\":4}"},
    {"n4", NOW - 100,
     "{\"host\":\"gone\",\"virtualization\":[\"container\"],\"vcpus\":8,\"memory\":4096}"},
};

static void fixture_init(fixture *f)
{
    engine_opts o;
    engine_opts_default(&o);
    f->c = cluster_new(TTL);
    f->ctx = engine_ctx_new(&o);
    FUZZ_CHECK(f->c && f->ctx);
    for (size_t i = 0; i < sizeof NODES / sizeof NODES[0]; i++) {
        cs_error e;
        node_report nr;
        json_t *j = codec_parse_object(NODES[i].report, strlen(NODES[i].report), &e);
        FUZZ_CHECK(j && codec_node(j, &nr, &e) == 0);
        FUZZ_CHECK(cluster_report(f->c, NODES[i].id, &nr, NODES[i].at, &e) == 1);
        node_report_clear(&nr);
        json_decref(j);
    }
}

static void fixture_free(fixture *f)
{
    engine_ctx_free(f->ctx);
    cluster_free(f->c);
}

/* The 400 answer for a refused body: a field, a message, and JSON. */
static void check_refusal(const cs_error *e)
{
    FUZZ_CHECK(memchr(e->field, 0, sizeof e->field) && e->field[0]);
    FUZZ_CHECK(memchr(e->msg, 0, sizeof e->msg) && e->msg[0]);
    char *body = codec_error_json(e->field, e->msg);
    FUZZ_CHECK(body);
    free(body);
}

static void check_list(const strlist *a, const strlist *b)
{
    FUZZ_CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n; i++)
        FUZZ_CHECK(strcmp(a->v[i], b->v[i]) == 0);
}

static int64_t diff(int64_t a, int64_t b)
{
    return a > b ? a - b : b - a;
}

/* The spec the worker decoded means what the intake's did. */
static void check_same(const job_spec *a, const job_spec *b)
{
    FUZZ_CHECK(strcmp(a->id, b->id) == 0 && a->instance == b->instance);
    FUZZ_CHECK(diff(a->vcpus_milli, b->vcpus_milli) <= 1);
    FUZZ_CHECK(diff(a->memory_mb, b->memory_mb) <= 1);
    FUZZ_CHECK(a->gpus == b->gpus && a->virt == b->virt);
    FUZZ_CHECK(a->strategy == b->strategy && a->top_k == b->top_k);
    FUZZ_CHECK(a->has_direct == b->has_direct);
    check_list(&a->arch, &b->arch);
    check_list(&a->addons, &b->addons);
    check_list(&a->hosts, &b->hosts);
    check_list(&a->csi, &b->csi);
}

/* What worker.c does with a stored job: decode, place, build the result. */
static void work(fixture *f, const char *text, const char *id, uint32_t instance,
                 const job_spec *accepted)
{
    json_error_t je;
    cs_error e;
    job_spec spec;
    engine_result res;
    char msg[512];
    json_t *body = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    FUZZ_CHECK(body);
    FUZZ_CHECK(codec_job(body, id, instance, "", &spec, NULL, &e) == 0);
    check_same(accepted, &spec);
    char *result = NULL;
    if (engine_place(f->ctx, f->c, &spec, NOW, &res, &e)) {
        result = codec_result_invalid(body, &e);
    } else if (res.placed || res.existing) {
        node_view v;
        FUZZ_CHECK(cluster_get(f->c, res.node_id, NOW, &v) == 0);
        json_t *doc = codec_node_doc(NULL, &v);
        FUZZ_CHECK(doc);
        engine_message(&res, &spec, msg, sizeof msg);
        result = codec_result_placed(body, doc, &res, msg);
        json_decref(doc);
        FUZZ_CHECK(cluster_release(f->c, id, instance) == 0);
    } else {
        engine_message(&res, &spec, msg, sizeof msg);
        result = codec_result_unplaced(body, &res, msg);
    }
    FUZZ_CHECK(result);
    free(result);
    job_spec_clear(&spec);
    json_decref(body);
}

/* Intake accepted job (id, instance): store it as text, then work on it. */
static void accepted(fixture *f, const json_t *job, const char *id, uint32_t instance,
                     const job_spec *spec)
{
    char *text = codec_dump(job);
    FUZZ_CHECK(text);
    work(f, text, id, instance, spec);
    free(text);
}

/* POST /api/calculate/deploy/{job_id}/{instance} */
static void deploy(fixture *f, const json_t *job)
{
    cs_error e;
    job_spec spec;
    unsigned notes;
    if (codec_job(job, "job-1", 7, "", &spec, &notes, &e) == 0)
        accepted(f, job, "job-1", 7, &spec);
    else
        check_refusal(&e);
    job_spec_clear(&spec);
}

/* POST /api/calculate/replicate: {"job": {...}, "replicas": n} */
static void replicate(fixture *f, const json_t *root)
{
    cs_error e;
    job_spec spec;
    unsigned notes;
    char id[CS_ID_MAX + 1];
    const json_t *job = json_object_get(root, "job");
    if (!json_is_object(job))
        return;
    int rc = codec_job_id(job, "job.", id, &e);
    if (rc == 1)
        cs_fail(&e, "job._id", "is required");
    job_spec_init(&spec);
    if (rc == 0 && codec_job(job, id, 0, "job.", &spec, &notes, &e) == 0)
        accepted(f, job, id, 0, &spec);
    else
        check_refusal(&e);
    job_spec_clear(&spec);
}

/* POST /api/v1/jobs: id and instance in the body. */
static void jobs_post(fixture *f, const json_t *job)
{
    cs_error e;
    job_spec spec;
    unsigned notes;
    char id[CS_ID_MAX + 1];
    uint32_t instance = 0;
    job_spec_init(&spec);
    int rc = codec_job_id(job, "", id, &e);
    if (rc == 1)
        cs_fail(&e, "_id", "is required");
    if (rc == 0 && codec_instance(job, "instance", &instance, &e) >= 0 &&
        codec_job(job, id, instance, "", &spec, &notes, &e) == 0)
        accepted(f, job, id, instance, &spec);
    else
        check_refusal(&e);
    job_spec_clear(&spec);
}

/* POST /api/v1/schedule: rank without reserving. */
static void schedule(fixture *f, const json_t *job)
{
    cs_error e;
    job_spec spec;
    engine_result res;
    char id[CS_ID_MAX + 1] = "dry-run";
    char msg[512];
    job_spec_init(&spec);
    if (codec_job_id(job, "", id, &e) < 0 || codec_job(job, id, 0, "", &spec, NULL, &e)) {
        check_refusal(&e);
    } else if (engine_rank(f->ctx, f->c, &spec, NOW, &res, &e) == 0) {
        FUZZ_CHECK(res.n_candidates <= res.n_qualified && res.n_qualified <= res.n_nodes);
        engine_message(&res, &spec, msg, sizeof msg);
        json_t *answer = codec_schedule_answer(&res, msg);
        char *text = codec_dump(answer);
        FUZZ_CHECK(text);
        free(text);
        json_decref(answer);
    }
    job_spec_clear(&spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_error e;
    json_t *root = codec_parse_object((const char *)data, size, &e);
    if (!root) {
        check_refusal(&e);
        return 0;
    }
    fixture f;
    fixture_init(&f);
    deploy(&f, root);
    replicate(&f, root);
    jobs_post(&f, root);
    schedule(&f, root);
    fixture_free(&f);
    json_decref(root);
    return 0;
}
