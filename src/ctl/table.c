/* table.c - rows kept as arrays of owned strings; widths measured in
 * characters (UTF-8 continuation bytes do not count), so "–" lines up. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

struct table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols, row-major; row 0 is the header */
    bool right[TABLE_COLS_MAX];
};

table *table_new(size_t ncols, const char *const *headers)
{
    if (ncols == 0 || ncols > TABLE_COLS_MAX)
        return NULL;
    table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    if (table_add(t, headers)) {
        table_free(t);
        return NULL;
    }
    return t;
}

void table_free(table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

void table_align_right(table *t, size_t col)
{
    if (col < t->ncols)
        t->right[col] = true;
}

int table_add(table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cells, ncap * t->ncols * sizeof *nc);
        if (!nc)
            return -1;
        t->cells = nc;
        t->cap = ncap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = strdup(cells[i] ? cells[i] : "");
        if (!row[i]) {
            while (i--)
                free(row[i]);
            return -1;
        }
    }
    t->nrows++;
    return 0;
}

size_t table_rows(const table *t)
{
    return t->nrows - 1;
}

static size_t width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

void table_print(const table *t, FILE *out)
{
    size_t w[TABLE_COLS_MAX] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t n = width(t->cells[r * t->ncols + c]);
            if (n > w[c])
                w[c] = n;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        /* Pad only up to the last non-empty cell, so lines end clean. */
        size_t last = 0;
        for (size_t c = 0; c < t->ncols; c++)
            if (*t->cells[r * t->ncols + c])
                last = c;
        for (size_t c = 0; c <= last; c++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t pad = w[c] - width(s);
            bool right = t->right[c];
            if (c)
                fputs("  ", out);
            if (right)
                fprintf(out, "%*s", (int)pad, "");
            fputs(s, out);
            if (!right && c < last)
                fprintf(out, "%*s", (int)pad, "");
        }
        fputc('\n', out);
    }
}
