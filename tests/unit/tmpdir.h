/* tmpdir.h - a test helper shared by the tests that work in files
 * (test_store.c, test_walvfs.c): a fresh directory under /tmp and its
 * removal with everything in it. */
#ifndef CS_TEST_TMPDIR_H
#define CS_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline int tmpdir_rm_entry(const char *path, const struct stat *sb, int flag,
                                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Fills dir (n bytes) with a new directory /tmp/<name>.XXXXXX; 0 or -1. */
static inline int tmpdir_make(char *dir, size_t n, const char *name)
{
    snprintf(dir, n, "/tmp/%s.XXXXXX", name);
    return mkdtemp(dir) ? 0 : -1;
}

static inline void tmpdir_remove(const char *dir)
{
    nftw(dir, tmpdir_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
