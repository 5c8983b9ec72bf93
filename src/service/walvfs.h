/* walvfs.h - an SQLite VFS over another one that hands a transaction's WAL
 * frames to the kernel in one write instead of two per page (a 24-byte
 * frame header, then the page), flushed no later than the commit frame, so
 * what a commit makes visible is already in the file. Every other file, and
 * every other call, goes straight to the VFS below. */
#ifndef CS_WALVFS_H
#define CS_WALVFS_H

#include "error.h"

typedef struct walvfs walvfs;

/* Registers a VFS of its own name over the one named base (NULL: the
 * default); open connections with walvfs_name(). */
walvfs *walvfs_new(const char *base, cs_error *err);
const char *walvfs_name(const walvfs *v);
/* Unregisters it; every connection opened through it must be closed. */
void walvfs_free(walvfs *v);

#endif
