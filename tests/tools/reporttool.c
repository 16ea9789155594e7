/* reporttool.c - builds a "transformed" frame from a labelled image folder
 * with predictions faked from file names, and writes the HTML report
 * (tests/ref/test_report_chromium.py):
 *   reporttool DIR OUT.html [--pred NAME=CLASS:PROB]... [--title T]
 *              [--desc D] [--max N] [--thumb N] [--no-images]
 * Classes are the sub-folder names sorted by strcmp, indexed from 0
 * ("indexedLabel", double). A file listed with --pred (by its base name) is
 * predicted CLASS with probability PROB; every other file is predicted its
 * own class with probability 0.9. The rest of each "probability" vector
 * (float32) is spread evenly over the other classes. --no-images reports
 * as for a features table (no image column named). */
#include "dlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CLASSES 64

typedef struct tool {
  const char *classes[MAX_CLASSES];
  size_t n_classes;
  int argc;
  char **argv;
} tool;

static int fail(dlp_ctx *ctx, const char *what) {
  fprintf(stderr, "reporttool: %s: %s\n", what, dlp_errmsg(ctx));
  return 1;
}

static int by_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static size_t class_of(const tool *t, const char *name) {
  for (size_t i = 0; i < t->n_classes; i++)
    if (strcmp(t->classes[i], name) == 0) return i;
  return (size_t)-1;
}

static void collect_classes(tool *t, const dlp_frame *f, size_t lc) {
  for (size_t r = 0; r < dlp_frame_nrows(f); r++) {
    const char *s;
    if (dlp_frame_get_string(f, lc, r, &s) && class_of(t, s) == (size_t)-1 &&
        t->n_classes < MAX_CLASSES)
      t->classes[t->n_classes++] = s;
  }
  qsort(t->classes, t->n_classes, sizeof *t->classes, by_str);
}

/* The --pred entry for a file name: class index and probability. */
static int find_pred(const tool *t, const char *base, size_t *cls,
                     double *prob) {
  size_t bl = strlen(base);
  for (int i = 3; i + 1 < t->argc; i++) {
    const char *a = t->argv[i + 1];
    if (strcmp(t->argv[i], "--pred") != 0 || strncmp(a, base, bl) != 0 ||
        a[bl] != '=')
      continue;
    const char *colon = strrchr(a, ':');
    if (!colon) return 0;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(colon - a - bl - 1), a + bl + 1);
    *cls = class_of(t, name);
    *prob = strtod(colon + 1, NULL);
    return *cls != (size_t)-1;
  }
  return 0;
}

static int fill_row(dlp_ctx *ctx, const tool *t, dlp_frame *f, size_t r,
                    const size_t *col) {
  dlp_image_meta meta;
  const char *label;
  if (!dlp_frame_get_string(f, col[0], r, &label) ||
      !dlp_frame_get_image_meta(f, col[1], r, &meta))
    return DLP_OK;
  const char *base = strrchr(meta.origin, '/');
  base = base ? base + 1 : meta.origin;
  size_t y = class_of(t, label), p = y;
  double prob = 0.9;
  find_pred(t, base, &p, &prob);
  float v[MAX_CLASSES];
  for (size_t k = 0; k < t->n_classes; k++)
    v[k] =
        k == p ? (float)prob : (float)((1 - prob) / (double)(t->n_classes - 1));
  int rc = dlp_frame_set_double(ctx, f, col[2], r, (double)y);
  if (rc == DLP_OK) rc = dlp_frame_set_double(ctx, f, col[3], r, (double)p);
  if (rc == DLP_OK) rc = dlp_frame_set_vector(ctx, f, col[4], r, v);
  return rc;
}

static int add_predictions(dlp_ctx *ctx, tool *t, dlp_frame *f) {
  size_t col[5];
  col[0] = (size_t)dlp_frame_col_index(f, "label");
  col[1] = (size_t)dlp_frame_col_index(f, "image");
  collect_classes(t, f, col[0]);
  if (t->n_classes < 2) {
    fprintf(stderr, "reporttool: need two class folders\n");
    return DLP_ERR_ARG;
  }
  int rc = dlp_frame_add_column(ctx, f, "indexedLabel", DLP_TYPE_DOUBLE, 0);
  if (rc == DLP_OK)
    rc = dlp_frame_add_column(ctx, f, "prediction", DLP_TYPE_DOUBLE, 0);
  if (rc == DLP_OK)
    rc = dlp_frame_add_column(ctx, f, "probability", DLP_TYPE_VECTOR,
                              t->n_classes);
  for (size_t i = 2; i < 5; i++)
    col[i] = dlp_frame_ncols(f) - 3 + (i - 2);
  for (size_t r = 0; rc == DLP_OK && r < dlp_frame_nrows(f); r++)
    rc = fill_row(ctx, t, f, r, col);
  return rc;
}

static const char *opt(int argc, char **argv, const char *name,
                       const char *def) {
  for (int i = 3; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: reporttool DIR OUT.html [--pred NAME=CLASS:PROB]"
                    "... [--title T] [--desc D] [--max N] [--thumb N] "
                    "[--no-images]\n");
    return 2;
  }
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  tool t = {.argc = argc, .argv = argv};
  dlp_scan_opts so;
  dlp_scan_opts_init(&so);
  so.labels_from_dirs = 1;
  dlp_frame *f = NULL;
  int rc = dlp_read_images(ctx, argv[1], &so, &f);
  if (rc != DLP_OK) {
    rc = fail(ctx, "reading the images");
  } else if (add_predictions(ctx, &t, f) != DLP_OK) {
    rc = fail(ctx, "making predictions");
  } else {
    dlp_eval_opts eo;
    dlp_eval_opts_init(&eo);
    eo.label_col = "indexedLabel";
    dlp_report_opts ro;
    dlp_report_opts_init(&ro);
    ro.labels = t.classes;
    ro.n_labels = t.n_classes;
    ro.title = opt(argc, argv, "--title", ro.title);
    ro.pipeline_desc = opt(argc, argv, "--desc", NULL);
    ro.max_examples = strtoul(opt(argc, argv, "--max", "60"), NULL, 10);
    ro.thumb_size = atoi(opt(argc, argv, "--thumb", "128"));
    for (int i = 3; i < argc; i++)
      if (strcmp(argv[i], "--no-images") == 0) ro.image_col = NULL;
    rc = dlp_report_write_html(ctx, f, &eo, &ro, argv[2]) == DLP_OK
             ? 0
             : fail(ctx, "writing the report");
  }
  dlp_frame_free(f);
  dlp_ctx_free(ctx);
  return rc;
}
