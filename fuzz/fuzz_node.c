/* fuzz_node.c - fuzz target: a node report as PUT /api/v1/nodes/{id} reads
 * it (api.c node_put): decode, apply to the cluster table (as a first
 * report and as an update of a known node), merge into the node's
 * document, keep that in the node documents (nodedocs' packed text) and
 * answer the document. Properties checked beyond "no crash, no leak, no
 * undefined behaviour":
 *   - a refused report yields an error naming a field, and the JSON error
 *     answer can always be built from it;
 *   - nodedocs gives back exactly the document it was given (its token
 *     packing is lossless);
 *   - the stored document of an accepted report is accepted again when the
 *     service restarts or another process mirrors it (service.c load_node,
 *     mirror.c on_node: the same decode as a first report) and describes
 *     the same node as the live table (runtimes, architecture, host,
 *     capacity to within the rounding of 15 digits, addons, CSI drivers). */
#include "fuzz.h"

#include <jansson.h>

#include "cluster.h"
#include "codec.h"
#include "nodedocs.h"

#define NOW 1000000.0
#define TTL 30.0
#define ID "n1"

/* A known node, as a typical worker reports it. */
static const char BASE[] =
    "{\"host\":\"edge-1\",\"virtualization\":[\"container\",\"unikernel\"],"
    "\"architecture\":\"amd64\",\"vcpus\":4,\"memory\":8192,\"vgpus\":1,\"cpu_percent\":10,"
    "\"memory_percent\":20,\"supported_addons\":[\"ebpf\"],"
    "\"csi_drivers\":[{\"csi_driver_name\":\"csi.local\"}],"
    "\"location\":{\"lat\":52.5,\"lon\":13.4},\"zone\":\"a\"}";

static void check_refusal(const cs_error *e)
{
    FUZZ_CHECK(memchr(e->field, 0, sizeof e->field) && e->field[0]);
    FUZZ_CHECK(memchr(e->msg, 0, sizeof e->msg) && e->msg[0]);
    char *body = codec_error_json(e->field, e->msg);
    FUZZ_CHECK(body);
    free(body);
}

static int64_t diff(int64_t a, int64_t b)
{
    return a > b ? a - b : b - a;
}

static void check_names(const char *const *a, uint32_t na, const char *const *b, uint32_t nb)
{
    FUZZ_CHECK(na == nb);
    for (uint32_t i = 0; i < na; i++)
        FUZZ_CHECK(strcmp(a[i], b[i]) == 0);
}

/* The node a restart or a mirror makes of the stored text is the live one. */
static void check_replay(const char *text, const node_view *live)
{
    cs_error e;
    node_report nr;
    node_view v;
    json_t *j = json_loads(text, 0, NULL);
    FUZZ_CHECK(j);
    int rc = codec_node(j, &nr, &e);
    if (rc)
        fprintf(stderr, "stored document refused: %s: %s\n%s\n", e.field, e.msg, text);
    FUZZ_CHECK(rc == 0);
    cluster *c = cluster_new(TTL);
    FUZZ_CHECK(c);
    rc = cluster_report(c, ID, &nr, NOW, &e);
    if (rc < 0)
        fprintf(stderr, "stored document refused: %s: %s\n%s\n", e.field, e.msg, text);
    FUZZ_CHECK(rc == 1);
    FUZZ_CHECK(cluster_get(c, ID, NOW, &v) == 0);
    FUZZ_CHECK(v.virt == live->virt);
    FUZZ_CHECK(strcmp(v.arch, live->arch) == 0 && strcmp(v.host, live->host) == 0);
    FUZZ_CHECK(diff(v.vcpus_milli, live->vcpus_milli) <= 1);
    FUZZ_CHECK(diff(v.memory_mb, live->memory_mb) <= 1);
    FUZZ_CHECK(v.gpus == live->gpus);
    FUZZ_CHECK(v.has_location == live->has_location);
    check_names(v.addons, v.n_addons, live->addons, live->n_addons);
    check_names(v.csi, v.n_csi, live->csi, live->n_csi);
    cluster_free(c);
    node_report_clear(&nr);
    json_decref(j);
}

/* node_put after cluster_report accepted the report: merge, store, answer. */
static void store_and_answer(cluster *c, nodedocs *nd, const json_t *report)
{
    node_view live;
    FUZZ_CHECK(cluster_get(c, ID, NOW, &live) == 0);
    json_t *old = nodedocs_get(nd, ID);
    json_t *doc = codec_node_merge(old, report);
    FUZZ_CHECK(doc);
    char *text = codec_dump(doc);
    FUZZ_CHECK(text);
    FUZZ_CHECK(nodedocs_put(nd, ID, doc) == 0);
    json_t *back = nodedocs_get(nd, ID);
    FUZZ_CHECK(back);
    char *again = codec_dump(back);
    FUZZ_CHECK(again && strcmp(text, again) == 0);
    check_replay(text, &live);
    json_t *answer = codec_node_doc(back, &live);
    char *answer_text = codec_dump(answer);
    FUZZ_CHECK(answer_text);
    free(answer_text);
    json_decref(answer);
    free(again);
    json_decref(back);
    json_decref(old);
    free(text);
}

/* The report as node n1's first (a registration). */
static void first_report(const json_t *report, const node_report *nr)
{
    cs_error e;
    cluster *c = cluster_new(TTL);
    nodedocs *nd = nodedocs_new();
    FUZZ_CHECK(c && nd);
    int rc = cluster_report(c, ID, nr, NOW, &e);
    if (rc < 0)
        check_refusal(&e);
    else
        store_and_answer(c, nd, report);
    nodedocs_free(nd);
    cluster_free(c);
}

/* The report as an update of a node that registered with BASE. */
static void update(const json_t *report, const node_report *nr)
{
    cs_error e;
    node_report base;
    cluster *c = cluster_new(TTL);
    nodedocs *nd = nodedocs_new();
    json_t *b = json_loads(BASE, 0, NULL);
    FUZZ_CHECK(c && nd && b);
    FUZZ_CHECK(codec_node(b, &base, &e) == 0 && cluster_report(c, ID, &base, NOW - 5, &e) == 1);
    FUZZ_CHECK(nodedocs_put(nd, ID, codec_node_merge(NULL, b)) == 0);
    /* Another node, so the packed store holds more than one entry. */
    FUZZ_CHECK(nodedocs_put(nd, "n0", json_deep_copy(b)) == 0);
    int rc = cluster_report(c, ID, nr, NOW, &e);
    if (rc < 0)
        check_refusal(&e);
    else
        store_and_answer(c, nd, report);
    json_t *ids = nodedocs_ids(nd);
    FUZZ_CHECK(json_array_size(ids) == 2);
    json_decref(ids);
    node_report_clear(&base);
    json_decref(b);
    nodedocs_free(nd);
    cluster_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_error e;
    node_report nr;
    json_t *report = codec_parse_object((const char *)data, size, &e);
    if (!report) {
        check_refusal(&e);
        return 0;
    }
    if (codec_node(report, &nr, &e)) {
        check_refusal(&e);
    } else {
        first_report(report, &nr);
        update(report, &nr);
    }
    node_report_clear(&nr);
    json_decref(report);
    return 0;
}
