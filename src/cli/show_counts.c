/* show_counts.c - 'dlp show --counts COLUMN': how many rows hold each value
 * of a column (the per-label counts of a labelled image folder). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct group {
  char *key; /* NULL for the null group */
  size_t count;
} group;

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Most frequent first, then by value. */
static int cmp_group(const void *x, const void *y) {
  const group *a = x, *b = y;
  if (a->count != b->count) return a->count < b->count ? 1 : -1;
  if (!a->key || !b->key) return a->key ? -1 : (b->key ? 1 : 0);
  return strcmp(a->key, b->key);
}

/* The key of one cell (malloc'd), NULL for a null cell; *err on NOMEM. */
static char *cell_key(const dlp_frame *f, size_t col, size_t row, int *err) {
  char buf[64];
  const char *s = NULL;
  int64_t i;
  double d;
  dlp_image_meta m;
  switch (dlp_frame_col_type(f, col)) {
  case DLP_TYPE_STRING:
    if (!dlp_frame_get_string(f, col, row, &s)) return NULL;
    break;
  case DLP_TYPE_INT64:
    if (!dlp_frame_get_int64(f, col, row, &i)) return NULL;
    snprintf(buf, sizeof buf, "%lld", (long long)i);
    s = buf;
    break;
  case DLP_TYPE_DOUBLE:
    if (!dlp_frame_get_double(f, col, row, &d)) return NULL;
    snprintf(buf, sizeof buf, "%.17g", d);
    s = buf;
    break;
  case DLP_TYPE_IMAGE: /* counts images by outcome: "ok" or the error */
    if (!dlp_frame_get_image_meta(f, col, row, &m)) return NULL;
    s = m.error ? m.error : "ok";
    break;
  default:
    return NULL;
  }
  char *k = malloc(strlen(s) + 1);
  if (!k)
    *err = 1;
  else
    strcpy(k, s);
  return k;
}

/* Fills groups[] from the sorted keys; returns the number of groups. */
static size_t make_groups(char **keys, size_t nkeys, size_t nulls,
                          group *groups) {
  size_t ng = 0;
  for (size_t i = 0; i < nkeys; i++) {
    if (ng > 0 && strcmp(groups[ng - 1].key, keys[i]) == 0) {
      groups[ng - 1].count++;
    } else {
      groups[ng].key = keys[i];
      groups[ng++].count = 1;
    }
  }
  if (nulls > 0) {
    groups[ng].key = NULL;
    groups[ng++].count = nulls;
  }
  qsort(groups, ng, sizeof *groups, cmp_group);
  return ng;
}

static int print_groups(const cli_args *a, const dlp_frame *f, size_t col,
                        const group *g, size_t ng, size_t limit) {
  size_t total = dlp_frame_nrows(f);
  size_t shown = cli_given(a, "rows") ? (size_t)cli_int(a, "rows") : ng;
  if (shown > ng) shown = ng;
  const char *names[3] = {dlp_frame_col_name(f, col), "count", "share"};
  static const int flags[3] = {0, CLI_COL_RIGHT, CLI_COL_RIGHT};
  cli_table t;
  int rc = cli_table_init_cols(&t, 3, names, flags);
  for (size_t i = 0; rc == 0 && i < shown; i++) {
    char count[32], share[32];
    snprintf(count, sizeof count, "%zu", g[i].count);
    snprintf(share, sizeof share, "%.1f%%",
             100.0 * (double)g[i].count / (double)total);
    const char *row[3] = {g[i].key ? g[i].key : "null", count, share};
    rc = cli_table_row(&t, row);
  }
  if (rc == 0 && shown > 0) cli_table_print(&t, stdout, limit);
  cli_table_free(&t);
  if (rc != 0) return cli_fail("out of memory");
  printf("%zu distinct value%s in %zu row%s of %s%s\n", ng, ng == 1 ? "" : "s",
         total, total == 1 ? "" : "s", a->pos[0],
         shown < ng ? " (the most frequent shown)" : "");
  return CLI_EXIT_OK;
}

int cli_show_counts(const cli_args *a, const dlp_frame *f, size_t limit) {
  const char *name = cli_str(a, "counts");
  long col = dlp_frame_col_index(f, name);
  if (col < 0) return cli_fail("%s has no column '%s'", a->pos[0], name);
  if (dlp_frame_col_type(f, (size_t)col) == DLP_TYPE_VECTOR)
    return cli_fail("cannot count the values of vector column '%s'", name);
  size_t n = dlp_frame_nrows(f), nkeys = 0, nulls = 0;
  char **keys = calloc(n ? n : 1, sizeof *keys);
  group *groups = calloc(n ? n : 1, sizeof *groups);
  int err = !keys || !groups;
  for (size_t r = 0; !err && r < n; r++) {
    char *k = cell_key(f, (size_t)col, r, &err);
    if (k)
      keys[nkeys++] = k;
    else if (!err)
      nulls++;
  }
  int rc = CLI_EXIT_FAIL;
  if (err) {
    cli_fail("out of memory");
  } else {
    qsort(keys, nkeys, sizeof *keys, cmp_str);
    size_t ng = make_groups(keys, nkeys, nulls, groups);
    rc = print_groups(a, f, (size_t)col, groups, ng, limit);
  }
  for (size_t i = 0; i < nkeys; i++)
    free(keys[i]);
  free(keys);
  free(groups);
  return rc;
}
