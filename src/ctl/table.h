/* table.h - plain-text tables for a terminal: a header row, columns as
 * wide as their widest cell, numbers aligned right. Cells are copied. */
#ifndef CTL_TABLE_H
#define CTL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define TABLE_COLS_MAX 16

typedef struct table table;

/* headers: ncols (1..TABLE_COLS_MAX) names. NULL when out of memory. */
table *table_new(size_t ncols, const char *const *headers);
void table_free(table *t);

/* Column col is aligned right (numbers). */
void table_align_right(table *t, size_t col);

/* Appends a row of ncols cells (NULL = empty). 0, or -1 out of memory. */
int table_add(table *t, const char *const *cells);

size_t table_rows(const table *t);

/* Two spaces between columns; trailing blanks trimmed. */
void table_print(const table *t, FILE *out);

#endif
