/* replay.c - runs a fuzz target's entry point on stored inputs, without
 * libFuzzer: the seed corpus and the inputs that once crashed it
 * (fuzz/regress/<target>/), so the ordinary sanitizer build replays them
 * as unit tests (CTest fuzz_replay_<target>), with gcc as well as clang.
 * Usage: replay_<target> FILE|DIR...; a directory stands for its files
 * (in name order, skipping names that start with '.' or "README"). A
 * broken property aborts, as it does under the fuzzer. */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

/* Runs the target on one file. 0, or -1 when it cannot be read. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            FUZZ_CHECK(nb);
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int rc = ferror(f) ? -1 : 0;
    fclose(f);
    if (rc == 0) {
        /* An exact-size copy, so ASan catches a read one past the input. */
        uint8_t *exact = malloc(len ? len : 1);
        FUZZ_CHECK(exact);
        if (len)
            memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    } else {
        fprintf(stderr, "replay: %s: read error\n", path);
    }
    free(buf);
    return rc;
}

static int skip(const struct dirent *d)
{
    return d->d_name[0] != '.' && strncmp(d->d_name, "README", 6) != 0;
}

/* Runs the target on every file of dir; *count grows by their number. */
static int replay_dir(const char *dir, size_t *count)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, skip, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (replay_file(path) != 0)
            rc = -1;
        else
            (*count)++;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int rc = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) != 0)
                rc = 1;
        } else if (replay_file(argv[i]) != 0) {
            rc = 1;
        } else {
            count++;
        }
    }
    printf("replayed %zu inputs\n", count);
    if (count == 0)
        rc = 1; /* an empty corpus means a wrong path, not a pass */
    return rc;
}
