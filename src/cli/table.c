/* table.c - a box-drawn text table (header, aligned columns, cells cut to a
 * width), the output of 'dlp show'. Widths count UTF-8 code points. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cli_table_init(cli_table *t, size_t ncols) {
  memset(t, 0, sizeof *t);
  t->ncols = ncols;
  t->flags = calloc(ncols ? ncols : 1, sizeof *t->flags);
  t->header = calloc(ncols ? ncols : 1, sizeof *t->header);
  return t->flags && t->header ? 0 : -1;
}

void cli_table_free(cli_table *t) {
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free(t->cells[i]);
  for (size_t c = 0; c < t->ncols && t->header; c++)
    free(t->header[c]);
  free(t->cells);
  free(t->header);
  free(t->flags);
  memset(t, 0, sizeof *t);
}

static char *dup_text(const char *s) {
  size_t n = strlen(s ? s : "");
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s ? s : "", n + 1);
  /* Control characters would break the table's lines. */
  for (char *p = d; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
  return d;
}

int cli_table_column(cli_table *t, size_t col, const char *name, int flags) {
  free(t->header[col]);
  t->header[col] = dup_text(name);
  t->flags[col] = flags;
  return t->header[col] ? 0 : -1;
}

int cli_table_init_cols(cli_table *t, size_t ncols, const char *const *names,
                        const int *flags) {
  int rc = cli_table_init(t, ncols);
  for (size_t c = 0; rc == 0 && c < ncols; c++)
    rc = cli_table_column(t, c, names[c], flags[c]);
  return rc;
}

int cli_table_row(cli_table *t, const char *const *texts) {
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    if (cap > SIZE_MAX / sizeof(char *) / (t->ncols ? t->ncols : 1)) return -1;
    char **cells = realloc(t->cells, cap * t->ncols * sizeof(char *));
    if (!cells) return -1;
    t->cells = cells;
    t->cap = cap;
  }
  char **row = t->cells + t->nrows * t->ncols;
  int ok = 1;
  for (size_t c = 0; c < t->ncols; c++) {
    row[c] = dup_text(texts[c]);
    if (!row[c]) ok = 0;
  }
  t->nrows++; /* counted even when short of memory, so free() sees it */
  return ok ? 0 : -1;
}

/* Code points in s (continuation bytes 10xxxxxx are not counted). */
static size_t text_width(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

/* Byte offset of the code point number k in s. */
static size_t offset_of(const char *s, size_t k) {
  size_t i = 0;
  for (size_t seen = 0; s[i]; i++) {
    if (((unsigned char)s[i] & 0xC0) != 0x80) {
      if (seen == k) return i;
      seen++;
    }
  }
  return i;
}

static size_t col_width(const cli_table *t, size_t c, size_t limit) {
  size_t w = text_width(t->header[c] ? t->header[c] : "");
  for (size_t r = 0; r < t->nrows; r++) {
    size_t cw = text_width(t->cells[r * t->ncols + c]);
    if (cw > w) w = cw;
  }
  if (limit && !(t->flags[c] & CLI_COL_NO_CUT) && w > limit) w = limit;
  return w;
}

/* Prints s in a field of width w: cut with "..." when wider (at the left
 * for CLI_COL_CUT_LEFT, so a long path keeps its file name), padded. */
static void print_cell(FILE *out, const char *s, size_t w, int flags) {
  size_t sw = text_width(s);
  if (sw > w) {
    if (flags & CLI_COL_CUT_LEFT)
      fprintf(out, "...%s", s + offset_of(s, sw - (w - 3)));
    else
      fprintf(out, "%.*s...", (int)offset_of(s, w - 3), s);
    return;
  }
  size_t pad = w - sw;
  if (flags & CLI_COL_RIGHT) fprintf(out, "%*s", (int)pad, "");
  fputs(s, out);
  if (!(flags & CLI_COL_RIGHT)) fprintf(out, "%*s", (int)pad, "");
}

static void print_rule(FILE *out, const size_t *w, size_t ncols, const char *l,
                       const char *m, const char *r) {
  fputs(l, out);
  for (size_t c = 0; c < ncols; c++) {
    for (size_t i = 0; i < w[c] + 2; i++)
      fputs("\u2500", out);
    fputs(c + 1 < ncols ? m : r, out);
  }
  fputc('\n', out);
}

static void print_line(FILE *out, char *const *cells, const size_t *w,
                       const cli_table *t, int header) {
  fputs("\u2502", out);
  for (size_t c = 0; c < t->ncols; c++) {
    fputc(' ', out);
    print_cell(out, cells[c] ? cells[c] : "", w[c],
               header ? (t->flags[c] & ~CLI_COL_RIGHT) : t->flags[c]);
    fputs(" \u2502", out);
  }
  fputc('\n', out);
}

int cli_table_print(const cli_table *t, FILE *out, size_t limit) {
  if (t->ncols == 0) return fputs("(no columns)\n", out) < 0 ? -1 : 0;
  if (limit && limit < 4) limit = 4; /* room for "x..." */
  size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof *w);
  if (!w) return -1;
  for (size_t c = 0; c < t->ncols; c++)
    w[c] = col_width(t, c, limit);
  print_rule(out, w, t->ncols, "\u250c", "\u252c", "\u2510");
  print_line(out, t->header, w, t, 1);
  print_rule(out, w, t->ncols, "\u251c", "\u253c", "\u2524");
  for (size_t r = 0; r < t->nrows; r++)
    print_line(out, t->cells + r * t->ncols, w, t, 0);
  print_rule(out, w, t->ncols, "\u2514", "\u2534", "\u2518");
  free(w);
  return 0;
}
