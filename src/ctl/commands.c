/* commands.c - one function per subcommand: build the request, check the
 * answer, print it. Server errors go to stderr as "HTTP 404: field:
 * message" (and the error document to stdout with --json) with exit
 * status 1; a wrong command line is exit status 2. */
#include "commands.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "table.h"

#define FILE_MAX (64u << 20) /* a job document is a few KB; the service takes at most MAX_BODY */
#define WAIT_STEP_US 100000

/* ---- helpers ------------------------------------------------------------ */

static int usage(const ctl *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", c->prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see %s --help)\n", c->prog);
    va_end(ap);
    return CTL_USAGE;
}

static void print_json(const json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

/* An error answer: one line on stderr naming the status, and the field
 * and message of the service's error document when it sent one. */
static void report_error(const ctl *c, const client_resp *r)
{
    json_t *doc = json_loadb(r->body, r->len, 0, NULL);
    json_t *err = json_object_get(doc, "error");
    const char *field = json_string_value(json_object_get(err, "field"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (field && msg)
        fprintf(stderr, "%s: HTTP %ld: %s: %s\n", c->prog, r->status, field, msg);
    else
        fprintf(stderr, "%s: HTTP %ld: %.200s\n", c->prog, r->status, r->len ? r->body : "");
    if (r->status == 401 || r->status == 403)
        fprintf(stderr, "%s: give the API token with --token or SCHEDULER_TOKEN\n", c->prog);
    if (c->json && doc)
        print_json(doc);
    json_decref(doc);
}

/* One request. CTL_OK with *out the parsed JSON answer (when want_json)
 * on a 2xx; CTL_FAIL, after saying why, otherwise. */
static int call(const ctl *c, const char *method, const char *path, const char *body,
                bool want_json, client_resp *r, json_t **out)
{
    if (out)
        *out = NULL;
    if (client_request(c->cl, method, path, body, r)) {
        fprintf(stderr, "%s: %s\n", c->prog, r->err);
        return CTL_FAIL;
    }
    if (r->status < 200 || r->status >= 300) {
        report_error(c, r);
        return CTL_FAIL;
    }
    if (!want_json)
        return CTL_OK;
    json_error_t je;
    *out = json_loadb(r->body, r->len, 0, &je);
    if (!*out) {
        fprintf(stderr, "%s: the answer to %s %s is not JSON: %s\n", c->prog, method, path,
                je.text);
        return CTL_FAIL;
    }
    return CTL_OK;
}

/* A number with at most `decimals` decimals, trailing zeros dropped. */
static const char *fnum(double v, int decimals, char *buf, size_t len)
{
    snprintf(buf, len, "%.*f", decimals, v);
    if (strchr(buf, '.')) {
        char *end = buf + strlen(buf) - 1;
        while (*end == '0')
            *end-- = '\0';
        if (*end == '.')
            *end = '\0';
    }
    if (strcmp(buf, "-0") == 0)
        snprintf(buf, len, "0");
    return buf;
}

static bool jnum(const json_t *o, const char *key, double *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* "free/total" of a resource from a node document; "-" when unknown. */
static const char *pair(const json_t *node, const char *key, int decimals, char *buf, size_t len)
{
    double total, free;
    char a[64], b[64];
    if (!jnum(node, key, &total))
        return "-";
    if (!jnum(json_object_get(node, "free"), key, &free))
        free = total;
    snprintf(buf, len, "%s/%s", fnum(free, decimals, a, sizeof a),
             fnum(total, decimals, b, sizeof b));
    return buf;
}

static const char *utc(double epoch, bool date, char *buf, size_t len)
{
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, date ? "%Y-%m-%d %H:%M:%SZ" : "%H:%M:%S", &tm);
    return buf;
}

static const char *ago(double epoch, char *buf, size_t len)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double s = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - epoch;
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(buf, len, "%.0f s ago", s);
    else if (s < 7200)
        snprintf(buf, len, "%.0f min ago", s / 60);
    else
        snprintf(buf, len, "%.0f h ago", s / 3600);
    return buf;
}

/* A JSON value as one cell: strings bare, numbers short, the rest compact. */
static char *cell(const json_t *v)
{
    char buf[64];
    if (!v || json_is_null(v))
        return strdup("");
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_number(v))
        return strdup(fnum(json_number_value(v), 3, buf, sizeof buf));
    if (json_is_true(v))
        return strdup("yes");
    if (json_is_false(v))
        return strdup("no");
    return json_dumps(v, JSON_COMPACT);
}

/* A list of strings as "a,b,c" (at most ~200 characters); other values
 * as a cell. malloc'ed; NULL when out of memory. */
static char *join(const json_t *v)
{
    if (!json_is_array(v))
        return cell(v);
    char *out = calloc(1, 256);
    size_t i, len = 0;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (!out || !json_is_string(x) || len >= 200)
            continue;
        len += (size_t)snprintf(out + len, 256 - len, "%s%s", len ? "," : "", json_string_value(x));
    }
    return out;
}

/* Reads a file ("-" = standard input) that must hold one JSON object. */
static json_t *read_doc(const ctl *c, const char *path, int *rc)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    *rc = CTL_USAGE;
    if (!f) {
        fprintf(stderr, "%s: cannot open %s: %s\n", c->prog, path, strerror(errno));
        return NULL;
    }
    if (!(buf = malloc(FILE_MAX + 1))) {
        fprintf(stderr, "%s: out of memory\n", c->prog);
        *rc = CTL_FAIL;
        goto out;
    }
    len = fread(buf, 1, FILE_MAX + 1, f);
    if (ferror(f) || len > FILE_MAX) {
        fprintf(stderr, "%s: cannot read %s%s\n", c->prog, path,
                len > FILE_MAX ? ": larger than 64 MB" : "");
        goto out;
    }
    json_error_t je;
    doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        fprintf(stderr, "%s: %s:%d:%d: not JSON: %s\n", c->prog, path, je.line, je.column, je.text);
    else if (!json_is_object(doc)) {
        fprintf(stderr, "%s: %s: the job must be a JSON object\n", c->prog, path);
        json_decref(doc);
        doc = NULL;
    }
out:
    free(buf);
    if (f != stdin)
        fclose(f);
    return doc;
}

/* Parses a whole number in lo..hi; false when it is not one. */
static bool whole(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* ---- rendering ---------------------------------------------------------- */

/* "  1  n1  97.5" rows of a prioritized list. */
static int print_candidates(const json_t *cands, const char *chosen)
{
    static const char *const hdr[] = {"#", "NODE", "SCORE", ""};
    if (!json_is_array(cands) || json_array_size(cands) == 0)
        return 0;
    table *t = table_new(4, hdr);
    if (!t)
        return -1;
    table_align_right(t, 0);
    table_align_right(t, 2);
    size_t i;
    json_t *v;
    json_array_foreach(cands, i, v)
    {
        char n[24], s[64];
        double score = 0;
        jnum(v, "score", &score);
        snprintf(n, sizeof n, "%zu", i + 1);
        const char *id = jstr(v, "node_id");
        const char *row[] = {n, id, fnum(score, 2, s, sizeof s),
                             chosen && strcmp(chosen, id) == 0 ? "<- chosen" : ""};
        if (table_add(t, row)) {
            table_free(t);
            return -1;
        }
    }
    printf("prioritized list (best first):\n");
    table_print(t, stdout);
    table_free(t);
    return 0;
}

static void print_reasons(const json_t *reasons)
{
    if (!json_is_object(reasons) || json_object_size(reasons) == 0)
        return;
    printf("left out:");
    const char *k;
    json_t *v;
    int i = 0;
    json_object_foreach((json_t *)reasons, k, v)
    {
        printf("%s %s %lld", i++ ? "," : "", k, (long long)json_integer_value(v));
    }
    printf("\n");
}

/* An explanation of a shape this client does not know in advance: a list
 * or map of objects becomes a table, anything else "key: value" lines. */
static int print_generic(const char *key, const json_t *v)
{
    const json_t *rows = NULL;
    bool keyed = false;
    if (json_is_array(v) && json_array_size(v) && json_is_object(json_array_get(v, 0)))
        rows = v;
    else if (json_is_object(v) && json_object_size(v) &&
             json_is_object(json_object_iter_value(json_object_iter((json_t *)v)))) {
        rows = v;
        keyed = true;
    }
    if (!rows) {
        if (json_is_object(v)) {
            printf("%s:\n", key);
            const char *k;
            json_t *x;
            json_object_foreach((json_t *)v, k, x)
            {
                char *s = cell(x);
                printf("  %-22s %s\n", k, s ? s : "");
                free(s);
            }
        } else {
            char *s = cell(v);
            printf("%s: %s\n", key, s ? s : "");
            free(s);
        }
        return 0;
    }
    /* Columns: the union of the rows' keys, first seen first. */
    const char *cols[TABLE_COLS_MAX];
    size_t ncols = 0;
    if (keyed)
        cols[ncols++] = "";
    const char *rk;
    json_t *row;
    size_t idx;
    void *it = keyed ? json_object_iter((json_t *)rows) : NULL;
    for (idx = 0;; idx++) {
        row = keyed ? (it ? json_object_iter_value(it) : NULL) : json_array_get(rows, idx);
        if (!row)
            break;
        const char *k;
        json_t *x;
        json_object_foreach(row, k, x)
        {
            (void)x;
            size_t j = 0;
            while (j < ncols && strcmp(cols[j], k) != 0)
                j++;
            if (j == ncols && ncols < TABLE_COLS_MAX)
                cols[ncols++] = k;
        }
        if (keyed)
            it = json_object_iter_next((json_t *)rows, it);
    }
    table *t = table_new(ncols, cols);
    if (!t)
        return -1;
    int rc = 0;
    it = keyed ? json_object_iter((json_t *)rows) : NULL;
    for (idx = 0; rc == 0; idx++) {
        row = keyed ? (it ? json_object_iter_value(it) : NULL) : json_array_get(rows, idx);
        if (!row)
            break;
        rk = keyed ? json_object_iter_key(it) : NULL;
        char *cells[TABLE_COLS_MAX] = {0};
        for (size_t j = 0; j < ncols; j++)
            cells[j] = (keyed && j == 0) ? strdup(rk) : cell(json_object_get(row, cols[j]));
        if (table_add(t, (const char *const *)cells))
            rc = -1;
        for (size_t j = 0; j < ncols; j++)
            free(cells[j]);
        if (keyed)
            it = json_object_iter_next((json_t *)rows, it);
    }
    if (rc == 0) {
        printf("%s:\n", key);
        table_print(t, stdout);
    }
    table_free(t);
    return rc;
}

static bool known_job_key(const char *k)
{
    static const char *const keys[] = {"job_id",      "instance",   "state",  "node_id",
                                       "received_at", "decided_at", "status", "candidates",
                                       "reasons",     "message",    NULL};
    for (int i = 0; keys[i]; i++)
        if (strcmp(keys[i], k) == 0)
            return true;
    return false;
}

/* The status of one job instance, with its explanation. */
static int print_job(const json_t *doc, bool explained)
{
    char b1[64], b2[64];
    double recv = 0, dec = 0;
    const char *node = jstr(doc, "node_id");
    printf("job        %s/%lld\n", jstr(doc, "job_id"),
           (long long)json_integer_value(json_object_get(doc, "instance")));
    printf("state      %s\n", jstr(doc, "state"));
    if (*node)
        printf("node       %s\n", node);
    if (*jstr(doc, "status"))
        printf("status     %s\n", jstr(doc, "status"));
    if (jnum(doc, "received_at", &recv))
        printf("received   %s\n", utc(recv, true, b1, sizeof b1));
    if (jnum(doc, "decided_at", &dec))
        printf("decided    %s (%s ms after intake)\n", utc(dec, true, b1, sizeof b1),
               fnum((dec - recv) * 1000, 1, b2, sizeof b2));
    if (*jstr(doc, "message"))
        printf("why        %s\n", jstr(doc, "message"));
    const json_t *cands = json_object_get(doc, "candidates");
    const json_t *reasons = json_object_get(doc, "reasons");
    if ((cands && json_array_size(cands)) || (reasons && json_object_size(reasons)))
        printf("\n");
    if (print_candidates(cands, *node ? node : NULL))
        return -1;
    print_reasons(reasons);
    /* Whatever else the server explains (e.g. per-node verdicts). */
    bool extra = false;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v)
    {
        if (known_job_key(k))
            continue;
        if (!extra)
            printf("\n");
        extra = true;
        if (print_generic(k, v))
            return -1;
    }
    if (!explained && strcmp(jstr(doc, "state"), "queued") != 0)
        printf("\n(this server gives no per-node explanation; the summary above is all it "
               "keeps)\n");
    return 0;
}

/* GET a job's status, asking for the explanation; a server that does not
 * know ?explain is asked again without it. */
static int get_job(const ctl *c, const char *id, long inst, json_t **doc, bool *explained)
{
    char *esc = client_escape(id);
    char path[512];
    client_resp r;
    int rc = CTL_FAIL;
    *doc = NULL;
    *explained = false;
    if (!esc) {
        fprintf(stderr, "%s: out of memory\n", c->prog);
        return CTL_FAIL;
    }
    snprintf(path, sizeof path, "/api/v1/jobs/%s/%ld?explain=1", esc, inst);
    if (client_request(c->cl, "GET", path, NULL, &r)) {
        fprintf(stderr, "%s: %s\n", c->prog, r.err);
        goto out;
    }
    if (r.status == 400) {
        json_t *e = json_loadb(r.body, r.len, 0, NULL);
        const char *field =
            json_string_value(json_object_get(json_object_get(e, "error"), "field"));
        bool unknown = field && strstr(field, "explain");
        json_decref(e);
        if (unknown) {
            client_resp_clear(&r);
            *strchr(path, '?') = '\0';
            rc = call(c, "GET", path, NULL, true, &r, doc);
            goto out;
        }
    }
    if (r.status < 200 || r.status >= 300) {
        report_error(c, &r);
        goto out;
    }
    json_error_t je;
    if (!(*doc = json_loadb(r.body, r.len, 0, &je))) {
        fprintf(stderr, "%s: the answer is not JSON: %s\n", c->prog, je.text);
        goto out;
    }
    rc = CTL_OK;
out:
    if (*doc) {
        /* Explained: the answer carries more than the summary fields. */
        const char *k;
        json_t *v;
        json_object_foreach(*doc, k, v)
        {
            (void)v;
            if (!known_job_key(k))
                *explained = true;
        }
    }
    client_resp_clear(&r);
    free(esc);
    return rc;
}

/* ---- commands ----------------------------------------------------------- */

static int by_id(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(jstr(x, "_id"), jstr(y, "_id"));
}

static int cmd_nodes(const ctl *c, int argc, char **argv)
{
    static const char *const hdr[] = {"NODE",        "HOST",       "STATE",       "ARCH",
                                      "RUNTIMES",    "VCPUS FREE", "MEM FREE MB", "GPUS FREE",
                                      "USE CPU/MEM", "PLACED",     "LAST REPORT"};
    if (argc > 0)
        return usage(c, "nodes takes no arguments, not '%s'", argv[0]);
    client_resp r;
    json_t *doc = NULL;
    json_t **v = NULL;
    table *t = NULL;
    int rc = call(c, "GET", "/api/v1/nodes", NULL, true, &r, &doc);
    if (rc)
        goto out;
    if (c->json) {
        print_json(doc);
        goto out;
    }
    json_t *nodes = json_object_get(doc, "nodes");
    size_t n = json_array_size(nodes), active = 0;
    rc = CTL_FAIL;
    if (!(v = calloc(n ? n : 1, sizeof *v)) || !(t = table_new(11, hdr)))
        goto nomem;
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(nodes, i);
    qsort(v, n, sizeof *v, by_id);
    for (size_t col = 5; col <= 9; col++)
        table_align_right(t, col);
    for (size_t i = 0; i < n; i++) {
        const json_t *nd = v[i];
        char cpu[64], mem[64], gpu[64], use[64], placed[32], last[64], a[32], b[32];
        double cp, mp, lr;
        bool on = json_is_true(json_object_get(nd, "active"));
        active += on;
        const json_t *virt = json_object_get(nd, "virtualization");
        char *rt = join(virt ? virt : json_object_get(nd, "technology"));
        bool hc = jnum(nd, "cpu_percent", &cp), hm = jnum(nd, "memory_percent", &mp);
        if (hc || hm)
            snprintf(use, sizeof use, "%s%%/%s%%", hc ? fnum(cp, 0, a, sizeof a) : "-",
                     hm ? fnum(mp, 0, b, sizeof b) : "-");
        else
            snprintf(use, sizeof use, "-");
        snprintf(placed, sizeof placed, "%lld",
                 (long long)json_integer_value(json_object_get(nd, "reservations")));
        const char *row[] = {jstr(nd, "_id"),
                             jstr(nd, "host"),
                             on ? "active" : "inactive",
                             jstr(nd, "architecture"),
                             rt ? rt : "",
                             pair(nd, "vcpus", 3, cpu, sizeof cpu),
                             pair(nd, "memory", 0, mem, sizeof mem),
                             pair(nd, "vgpus", 0, gpu, sizeof gpu),
                             use,
                             placed,
                             jnum(nd, "last_report", &lr) ? ago(lr, last, sizeof last) : "-"};
        int bad = table_add(t, row);
        free(rt);
        if (bad)
            goto nomem;
    }
    table_print(t, stdout);
    printf("%zu nodes, %zu active\n", n, active);
    rc = CTL_OK;
    goto out;
nomem:
    fprintf(stderr, "%s: out of memory\n", c->prog);
out:
    table_free(t);
    free(v);
    json_decref(doc);
    client_resp_clear(&r);
    return rc;
}

static int cmd_node(const ctl *c, int argc, char **argv)
{
    if (argc != 1)
        return usage(c, "node needs one NODE_ID");
    char *esc = client_escape(argv[0]);
    char path[512];
    client_resp r;
    json_t *doc = NULL;
    if (!esc) {
        fprintf(stderr, "%s: out of memory\n", c->prog);
        return CTL_FAIL;
    }
    snprintf(path, sizeof path, "/api/v1/nodes/%s", esc);
    free(esc);
    int rc = call(c, "GET", path, NULL, true, &r, &doc);
    if (rc == CTL_OK) {
        if (c->json) {
            print_json(doc);
        } else {
            const char *k;
            json_t *v;
            json_object_foreach(doc, k, v)
            {
                char *s = cell(v);
                printf("%-16s %s\n", k, s ? s : "");
                free(s);
            }
        }
    }
    json_decref(doc);
    client_resp_clear(&r);
    return rc;
}

static int cmd_job(const ctl *c, int argc, char **argv)
{
    long inst = 0;
    if (argc < 1 || argc > 2)
        return usage(c, "job needs JOB_ID and optionally INSTANCE");
    if (argc == 2 && !whole(argv[1], 0, 1000000, &inst))
        return usage(c, "INSTANCE must be a whole number in 0..1000000, not '%s'", argv[1]);
    json_t *doc;
    bool explained;
    int rc = get_job(c, argv[0], inst, &doc, &explained);
    if (rc == CTL_OK) {
        if (c->json)
            print_json(doc);
        else if (print_job(doc, explained))
            rc = CTL_FAIL;
    }
    json_decref(doc);
    return rc;
}

static int cmd_submit(const ctl *c, int argc, char **argv)
{
    const char *file = NULL;
    long inst = -1, wait_s = -1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--instance") == 0 || strcmp(argv[i], "--wait") == 0) {
            long *dst = argv[i][2] == 'i' ? &inst : &wait_s;
            long hi = argv[i][2] == 'i' ? 1000000 : 3600;
            if (i + 1 >= argc || !whole(argv[i + 1], 0, hi, dst))
                return usage(c, "%s needs a whole number in 0..%ld", argv[i], hi);
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage(c, "submit: unknown option '%s'", argv[i]);
        } else if (file) {
            return usage(c, "submit takes one FILE");
        } else {
            file = argv[i];
        }
    }
    if (!file)
        return usage(c, "submit needs a FILE with the job document ('-' reads standard input)");
    int rc;
    json_t *job = read_doc(c, file, &rc);
    if (!job)
        return rc;
    json_t *ans = NULL;
    char *body = NULL;
    client_resp r;
    memset(&r, 0, sizeof r);
    rc = CTL_FAIL;
    if (inst >= 0 && json_object_set_new(job, "instance", json_integer(inst)))
        goto out;
    if (!(body = json_dumps(job, JSON_COMPACT)))
        goto out;
    if ((rc = call(c, "POST", "/api/v1/jobs", body, true, &r, &ans)))
        goto out;
    const char *id = jstr(ans, "job_id");
    long got = (long)json_integer_value(json_object_get(ans, "instance"));
    if (wait_s < 0) {
        if (c->json)
            print_json(ans);
        else if (r.status == 202)
            printf("queued %s/%ld\n", id, got);
        else
            printf("%s/%ld was known already: %s%s%s\n", id, got, jstr(ans, "state"),
                   *jstr(ans, "node_id") ? " on " : "", jstr(ans, "node_id"));
        goto out;
    }
    /* --wait: until a worker decided it, or the time is up. */
    char idcopy[128];
    snprintf(idcopy, sizeof idcopy, "%s", id);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        json_t *doc;
        bool explained;
        if ((rc = get_job(c, idcopy, got, &doc, &explained)))
            goto out;
        if (strcmp(jstr(doc, "state"), "queued") != 0) {
            if (c->json)
                print_json(doc);
            else if (print_job(doc, explained))
                rc = CTL_FAIL;
            json_decref(doc);
            goto out;
        }
        json_decref(doc);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >=
            (double)wait_s) {
            fprintf(stderr, "%s: %s/%ld still queued after %ld s\n", c->prog, idcopy, got, wait_s);
            rc = CTL_FAIL;
            goto out;
        }
        usleep(WAIT_STEP_US);
    }
out:
    client_resp_clear(&r);
    free(body);
    json_decref(ans);
    json_decref(job);
    return rc;
}

static int cmd_dry_run(const ctl *c, int argc, char **argv)
{
    if (argc != 1 || (argv[0][0] == '-' && argv[0][1]))
        return usage(c, "dry-run needs one FILE with the job document ('-' reads standard input)");
    int rc;
    json_t *job = read_doc(c, argv[0], &rc);
    if (!job)
        return rc;
    char *body = json_dumps(job, JSON_COMPACT);
    json_t *ans = NULL;
    client_resp r;
    memset(&r, 0, sizeof r);
    rc = body ? call(c, "POST", "/api/v1/schedule", body, true, &r, &ans) : CTL_FAIL;
    if (rc == CTL_OK) {
        if (c->json) {
            print_json(ans);
        } else {
            printf("%s\n", jstr(ans, "message"));
            const json_t *cands = json_object_get(ans, "candidates");
            if (json_array_size(cands) && print_candidates(cands, NULL))
                rc = CTL_FAIL;
            print_reasons(json_object_get(ans, "reasons"));
        }
    }
    client_resp_clear(&r);
    free(body);
    json_decref(ans);
    json_decref(job);
    return rc;
}

static int cmd_decisions(const ctl *c, int argc, char **argv)
{
    static const char *const hdr[] = {"TIME",      "JOB",         "STATE", "NODE",
                                      "QUALIFIED", "PRIORITIZED", "WHY"};
    long limit = 50;
    if (argc == 2 && strcmp(argv[0], "--limit") == 0) {
        if (!whole(argv[1], 1, 100000, &limit))
            return usage(c, "--limit needs a whole number in 1..100000");
    } else if (argc) {
        return usage(c, "decisions takes only --limit N");
    }
    client_resp r;
    json_t *doc = NULL;
    table *t = NULL;
    int rc = call(c, "GET", "/api/v1/decisions", NULL, true, &r, &doc);
    if (rc)
        goto out;
    json_t *list = json_object_get(doc, "decisions");
    while (json_array_size(list) > (size_t)limit)
        json_array_remove(list, json_array_size(list) - 1);
    if (c->json) {
        print_json(doc);
        goto out;
    }
    if (json_is_false(json_object_get(doc, "decides")))
        fprintf(stderr, "%s: note: %s\n", c->prog, jstr(doc, "note"));
    if (!(t = table_new(7, hdr))) {
        rc = CTL_FAIL;
        goto out;
    }
    table_align_right(t, 4);
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d)
    {
        char when[32], job[128], q[64], cands[512] = "";
        double at = 0, nq = 0, nn = 0;
        jnum(d, "at", &at);
        jnum(d, "qualified", &nq);
        jnum(d, "nodes", &nn);
        snprintf(job, sizeof job, "%s/%lld", jstr(d, "job_id"),
                 (long long)json_integer_value(json_object_get(d, "instance")));
        snprintf(q, sizeof q, "%.0f/%.0f", nq, nn);
        size_t k, len = 0;
        json_t *x;
        json_array_foreach(json_object_get(d, "candidates"), k, x)
        {
            char s[64];
            double sc = 0;
            jnum(x, "score", &sc);
            if (len < sizeof cands - 1)
                len += (size_t)snprintf(cands + len, sizeof cands - len, "%s%s (%s)", k ? ", " : "",
                                        jstr(x, "node_id"), fnum(sc, 2, s, sizeof s));
        }
        const char *row[] = {utc(at, false, when, sizeof when),
                             job,
                             jstr(d, "state"),
                             jstr(d, "node_id"),
                             q,
                             cands,
                             jstr(d, "message")};
        if (table_add(t, row)) {
            rc = CTL_FAIL;
            goto out;
        }
    }
    table_print(t, stdout);
    printf("%zu shown, %lld decided since start\n", json_array_size(list),
           (long long)json_integer_value(json_object_get(doc, "recorded")));
out:
    table_free(t);
    json_decref(doc);
    client_resp_clear(&r);
    return rc;
}

const ctl_command ctl_commands[] = {
    {"nodes", NULL, cmd_nodes},
    {"node", NULL, cmd_node},
    {"job", NULL, cmd_job},
    {"submit", NULL, cmd_submit},
    {"dry-run", "schedule", cmd_dry_run},
    {"decisions", NULL, cmd_decisions},
    {NULL, NULL, NULL},
};
