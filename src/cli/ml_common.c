/* ml_common.c - what 'dlp fit', 'tune', 'transform' and 'evaluate' share:
 * reading labelled input, building the featurizer + LR pipeline from the
 * options, splitting, and printing metrics and confusion matrices. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* The value of option name, or NULL when the command has no such option. */
static const cli_val *opt_val(const cli_args *a, const char *name) {
  for (int i = 0; a->cmd->opts[i].name; i++)
    if (strcmp(a->cmd->opts[i].name, name) == 0) return &a->vals[i];
  return NULL;
}

static const char *opt_str(const cli_args *a, const char *name) {
  const cli_val *v = opt_val(a, name);
  return v ? v->s : NULL;
}

/* "dlp CMD: message" on stderr; returns CLI_EXIT_FAIL. */
static int ml_fail(const cli_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int ml_fail(const cli_args *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "dlp %s: ", a->cmd->name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_EXIT_FAIL;
}

static int quiet(const cli_args *a) {
  const cli_val *v = opt_val(a, "quiet");
  return v && v->has;
}

/* --- input --------------------------------------------------------------- */

static int read_folder(const cli_args *a, dlp_ctx *ctx, const char *dir,
                       int labels, dlp_frame **out) {
  dlp_scan_opts so;
  dlp_scan_opts_init(&so);
  so.recursive = 1;
  so.labels_from_dirs = labels;
  /* Decode every image once now: a truncated file is then found before
   * the fit, not as a hole in the features. */
  so.verify = 1;
  cli_progress prog;
  cli_progress_start(&prog, ctx, "reading images", quiet(a));
  int rc = dlp_read_images(ctx, dir, &so, out);
  cli_progress_end(&prog, ctx);
  return rc == DLP_OK ? CLI_EXIT_OK : cli_lib_error(ctx);
}

int cli_ml_read_input(const cli_args *a, dlp_ctx *ctx, const char *in,
                      int labels, dlp_frame **out) {
  struct stat st;
  *out = NULL;
  if (stat(in, &st) != 0)
    return ml_fail(a, "cannot read %s: no such file or folder", in);
  if (S_ISDIR(st.st_mode)) return read_folder(a, ctx, in, labels, out);
  dlp_io_opts io;
  dlp_io_opts_init(&io);
  io.table = opt_str(a, "table");
  return dlp_frame_read(ctx, in, &io, out) == DLP_OK ? CLI_EXIT_OK
                                                     : cli_lib_error(ctx);
}

/* Keeps the rows listed in keep[0..n) of *f (replacing it). */
static int keep_rows(dlp_ctx *ctx, dlp_frame **f, const size_t *keep,
                     size_t n) {
  dlp_frame *t = NULL;
  if (dlp_frame_take(ctx, *f, keep, n, &t) != DLP_OK) return cli_lib_error(ctx);
  dlp_frame_free(*f);
  *f = t;
  return CLI_EXIT_OK;
}

/* Drops image rows with an error; warns with an example. */
static int drop_invalid(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d,
                        size_t col) {
  dlp_frame *f = d->all;
  size_t n = dlp_frame_nrows(f), bad = 0,
         *keep = malloc((n + 1) * sizeof *keep);
  const char *why = NULL, *where = NULL;
  if (!keep) return cli_fail("out of memory");
  size_t nk = 0;
  for (size_t r = 0; r < n; r++) {
    dlp_image_meta m;
    if (dlp_frame_get_image_meta(f, col, r, &m) && !m.error) {
      keep[nk++] = r;
    } else {
      bad++;
      if (!why) {
        why = m.error ? m.error : "no image";
        where = m.origin ? m.origin : "?";
      }
    }
  }
  d->n_invalid = bad;
  int rc = CLI_EXIT_OK;
  const cli_val *v = opt_val(a, "fail-on-error");
  if (bad && v && v->has) {
    fprintf(stderr,
            "dlp %s: %zu invalid image%s (e.g. %s: %s); stopping "
            "(--fail-on-error)\n",
            a->cmd->name, bad, bad == 1 ? "" : "s", where, why);
    rc = CLI_EXIT_INVALID;
  } else if (bad) {
    fprintf(stderr, "warning: %zu invalid image%s left out (e.g. %s: %s)\n",
            bad, bad == 1 ? "" : "s", where, why);
    rc = keep_rows(ctx, &d->all, keep, nk);
  }
  free(keep);
  return rc;
}

/* Drops rows whose column col is null (no label, no features). */
static int drop_nulls(const cli_args *a, dlp_ctx *ctx, dlp_frame **f,
                      size_t col, const char *what, size_t *dropped) {
  size_t n = dlp_frame_nrows(*f), nk = 0;
  size_t *keep = malloc((n + 1) * sizeof *keep);
  if (!keep) return cli_fail("out of memory");
  for (size_t r = 0; r < n; r++)
    if (!dlp_frame_is_null(*f, col, r)) keep[nk++] = r;
  *dropped = n - nk;
  int rc = CLI_EXIT_OK;
  if (nk < n) {
    if (!quiet(a))
      fprintf(stderr, "warning: %zu row%s without %s left out\n", n - nk,
              n - nk == 1 ? "" : "s", what);
    rc = keep_rows(ctx, f, keep, nk);
  }
  free(keep);
  return rc;
}

/* Which input the command was given: exactly one of three. */
static int pick_source(const cli_args *a, const char **path, int *features) {
  const char *images = opt_str(a, "images");
  const char *feat = opt_str(a, "features-from");
  const char *in = a->npos > 0 ? a->pos[0] : NULL;
  int given = !!images + !!feat + !!in;
  if (given != 1)
    return cli_usage_error(a->cmd, "%s",
                           given == 0 ? "no input: give --images DIR, "
                                        "a table or folder IN, or "
                                        "--features-from FILE"
                                      : "give one input only: --images "
                                        "DIR, IN or --features-from "
                                        "FILE");
  *path = images ? images : feat ? feat : in;
  *features = feat != NULL;
  if (images) {
    struct stat st;
    if (stat(images, &st) != 0 || !S_ISDIR(st.st_mode))
      return ml_fail(a, "--images %s: not a folder", images);
  }
  return CLI_PARSED;
}

static long need_col(const cli_args *a, const dlp_frame *f, const char *col,
                     const char *path, const char *opt) {
  long c = dlp_frame_col_index(f, col);
  if (c < 0)
    ml_fail(a, "%s has no column '%s' (name it with --%s)", path, col, opt);
  return c;
}

/* Checks the labels after a folder was read: every image in a class
 * sub-folder, at least one such folder. */
static int check_folder_labels(const cli_args *a, const cli_ml_data *d,
                               const char *dir) {
  long lc = dlp_frame_col_index(d->all, "label");
  size_t n = dlp_frame_nrows(d->all), labelled = 0;
  for (size_t r = 0; lc >= 0 && r < n; r++)
    labelled += !dlp_frame_is_null(d->all, (size_t)lc, r);
  if (n == 0) return ml_fail(a, "no images in %s", dir);
  if (labelled == 0)
    return ml_fail(a,
                   "no labels: the images of %s are not in sub-folders; "
                   "put each class in its own sub-folder (%s/CLASS/"
                   "IMAGE)",
                   dir, dir);
  return CLI_EXIT_OK;
}

int cli_ml_data_init(const cli_args *a, cli_ml_data *d) {
  memset(d, 0, sizeof *d);
  int rc = pick_source(a, &d->path, &d->from_features);
  if (rc != CLI_PARSED) return rc;
  d->image_col = opt_str(a, "image-col");
  d->label_col = opt_str(a, "label-col");
  d->features_col = opt_str(a, "features-col");
  if (!d->features_col) d->features_col = "features";
  struct stat st;
  d->folder = stat(d->path, &st) == 0 && S_ISDIR(st.st_mode);
  if (d->folder && d->from_features)
    return cli_usage_error(a->cmd,
                           "--features-from %s: a table file is "
                           "needed, not a folder",
                           d->path);
  if (d->folder) { /* dlp_read_images names them so */
    d->image_col = "image";
    d->label_col = "label";
  }
  return CLI_PARSED;
}

int cli_ml_read_labelled(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d) {
  const char *path = d->path;
  int rc = cli_ml_read_input(a, ctx, path, 1, &d->all);
  if (rc != CLI_EXIT_OK) return rc;
  d->n_read = dlp_frame_nrows(d->all);
  if (d->folder && (rc = check_folder_labels(a, d, path)) != CLI_EXIT_OK)
    return rc;
  long lc = need_col(a, d->all, d->label_col, path, "label-col");
  if (lc < 0) return CLI_EXIT_FAIL;
  if (d->from_features) {
    long fc = need_col(a, d->all, d->features_col, path, "features-col");
    if (fc < 0) return CLI_EXIT_FAIL;
    if (dlp_frame_col_type(d->all, (size_t)fc) != DLP_TYPE_VECTOR)
      return ml_fail(a, "column '%s' of %s is not a vector column",
                     d->features_col, path);
    size_t nf;
    rc = drop_nulls(a, ctx, &d->all, (size_t)fc, "features (invalid images)",
                    &nf);
    d->n_invalid = nf;
  } else {
    long ic = dlp_frame_col_index(d->all, d->image_col);
    if (ic < 0)
      return ml_fail(a,
                     "%s has no column '%s' (name it with --image-col; a "
                     "table of features goes with --features-from)",
                     path, d->image_col);
    if (dlp_frame_col_type(d->all, (size_t)ic) != DLP_TYPE_IMAGE)
      return ml_fail(a, "column '%s' of %s is not an image column",
                     d->image_col, path);
    rc = drop_invalid(a, ctx, d, (size_t)ic);
  }
  if (rc == CLI_EXIT_OK)
    rc = drop_nulls(a, ctx, &d->all, (size_t)lc,
                    d->folder ? "a label (not in a class sub-folder)"
                              : "a label",
                    &d->n_unlabelled);
  if (rc == CLI_EXIT_OK && dlp_frame_nrows(d->all) == 0)
    rc = ml_fail(a, "no usable rows in %s", path);
  return rc;
}

void cli_ml_data_free(cli_ml_data *d) {
  dlp_frame_free(d->all);
  d->all = NULL;
}

/* --- the pipeline --------------------------------------------------------- */

static int set(dlp_ctx *ctx, const cli_args *a, dlp_stage *s, const char *param,
               const char *value) {
  if (dlp_stage_set(ctx, s, param, value) == DLP_OK) return CLI_EXIT_OK;
  return cli_usage_error(a->cmd, "%s", dlp_errmsg(ctx));
}

static int featurizer_stage(const cli_args *a, dlp_ctx *ctx, dlp_stage *s,
                            const cli_ml_data *d) {
  const char *model = opt_str(a, "model");
  const char *file = opt_str(a, "model-file");
  const char *prec = opt_str(a, "precision");
  if (model && file)
    return cli_usage_error(a->cmd, "give either '--model NAME' or "
                                   "'--model-file FILE'");
  if (strcmp(prec, "fp32") != 0 && strcmp(prec, "bf16") != 0)
    return cli_usage_error(a->cmd,
                           "invalid value '%s' for '--precision': "
                           "expected fp32 or bf16",
                           prec);
  if (cli_flag(a, "random-weights") && file)
    return cli_usage_error(a->cmd, "'--random-weights' goes with '--model "
                                   "NAME' (a zoo architecture)");
  int rc = set(ctx, a, s, "modelName", model ? model : "InceptionV3");
  if (rc == CLI_EXIT_OK && file) rc = set(ctx, a, s, "modelFile", file);
  if (rc == CLI_EXIT_OK && opt_str(a, "layer"))
    rc = set(ctx, a, s, "layer", opt_str(a, "layer"));
  if (rc == CLI_EXIT_OK && cli_flag(a, "random-weights"))
    rc = set(ctx, a, s, "randomWeights", "true");
  if (rc == CLI_EXIT_OK)
    rc = set(ctx, a, s, "seed", opt_str(a, "weights-seed"));
  if (rc == CLI_EXIT_OK)
    rc = set(ctx, a, s, "batchSize", opt_str(a, "batch-size"));
  if (rc == CLI_EXIT_OK) rc = set(ctx, a, s, "precision", prec);
  if (rc == CLI_EXIT_OK) rc = set(ctx, a, s, "inputCol", d->image_col);
  if (rc == CLI_EXIT_OK) rc = set(ctx, a, s, "outputCol", d->features_col);
  return rc;
}

/* The LogisticRegression options that were given, by their parameter. */
static int lr_stage(const cli_args *a, dlp_ctx *ctx, dlp_stage *s,
                    const cli_ml_data *d) {
  int rc = set(ctx, a, s, "featuresCol", d->features_col);
  if (rc == CLI_EXIT_OK) rc = set(ctx, a, s, "labelCol", "indexedLabel");
  for (int i = 0; rc == CLI_EXIT_OK && a->cmd->opts[i].name; i++) {
    const char *param;
    if (a->vals[i].given && cli_ml_opt_param(&a->cmd->opts[i], &param))
      rc = set(ctx, a, s, param, a->vals[i].s);
  }
  return rc;
}

/* Makes a stage of cls, lets fill set it up, appends it to p. */
typedef int (*fill_fn)(const cli_args *, dlp_ctx *, dlp_stage *,
                       const cli_ml_data *);
static int add_stage(const cli_args *a, dlp_ctx *ctx, dlp_pipeline *p,
                     const char *cls, fill_fn fill, const cli_ml_data *d) {
  dlp_stage *s = NULL;
  if (dlp_stage_new(ctx, cls, &s) != DLP_OK) return cli_lib_error(ctx);
  int rc = fill ? fill(a, ctx, s, d) : CLI_EXIT_OK;
  if (rc != CLI_EXIT_OK) {
    dlp_stage_free(s);
    return rc;
  }
  return dlp_pipeline_add(ctx, p, s) == DLP_OK ? CLI_EXIT_OK
                                               : cli_lib_error(ctx);
}

static int indexer_stage(const cli_args *a, dlp_ctx *ctx, dlp_stage *s,
                         const cli_ml_data *d) {
  int rc = set(ctx, a, s, "inputCol", d->label_col);
  return rc == CLI_EXIT_OK ? set(ctx, a, s, "outputCol", "indexedLabel") : rc;
}

int cli_ml_build_pipeline(const cli_args *a, dlp_ctx *ctx, const cli_ml_data *d,
                          dlp_pipeline **out) {
  /* With --features-from the featurizer is there only when a model is
   * named: the saved pipeline then works on images too. */
  int featurizer =
      !d->from_features || opt_str(a, "model") || opt_str(a, "model-file");
  dlp_pipeline *p = NULL;
  *out = NULL;
  if (dlp_pipeline_new(ctx, &p) != DLP_OK) return cli_lib_error(ctx);
  int rc = CLI_EXIT_OK;
  if (featurizer)
    rc = add_stage(a, ctx, p, "DeepImageFeaturizer", featurizer_stage, d);
  if (rc == CLI_EXIT_OK)
    rc = add_stage(a, ctx, p, "StringIndexer", indexer_stage, d);
  if (rc == CLI_EXIT_OK)
    rc = add_stage(a, ctx, p, "LogisticRegression", lr_stage, d);
  if (rc == CLI_EXIT_OK) rc = add_stage(a, ctx, p, "IndexToString", NULL, d);
  if (rc != CLI_EXIT_OK) {
    dlp_pipeline_free(p);
    return rc;
  }
  *out = p;
  return CLI_EXIT_OK;
}

/* --- split --------------------------------------------------------------- */

int cli_ml_parse_split(const cli_args *a, double *w, int *k) {
  const char *spec = cli_str(a, "split");
  *k = cli_parse_weights(spec, w, 2);
  if (*k == 1 && w[0] < 1) { /* "0.8": the rest is the test part */
    w[1] = 1 - w[0];
    *k = 2;
  }
  if (*k < 1 || (*k == 1 && w[0] != 1))
    return cli_usage_error(a->cmd,
                           "invalid value '%s' for '--split': "
                           "expected TRAIN,TEST fractions (e.g. "
                           "0.8,0.2) or 1 (no test part)",
                           spec);
  return CLI_PARSED;
}

int cli_ml_split(const cli_args *a, dlp_ctx *ctx, const dlp_frame *all,
                 dlp_frame **train, dlp_frame **test) {
  double w[2];
  int k;
  const char *spec = cli_str(a, "split");
  *train = *test = NULL;
  if (cli_ml_parse_split(a, w, &k) != CLI_PARSED) return CLI_EXIT_USAGE;
  if (k == 1)
    return dlp_frame_head(ctx, all, dlp_frame_nrows(all), train) == DLP_OK
               ? CLI_EXIT_OK
               : cli_lib_error(ctx);
  dlp_frame *parts[2];
  if (dlp_frame_random_split(ctx, all, w, 2, cli_u64(a, "seed"), parts) !=
      DLP_OK)
    return cli_lib_error(ctx);
  *train = parts[0];
  *test = parts[1];
  if (dlp_frame_nrows(*train) == 0) {
    dlp_frame_free(*train);
    dlp_frame_free(*test);
    *train = *test = NULL;
    return ml_fail(a, "the train part of --split %s is empty (%zu rows)", spec,
                   dlp_frame_nrows(all));
  }
  if (dlp_frame_nrows(*test) == 0) {
    fprintf(stderr,
            "warning: the test part of --split %s is empty: no test "
            "metrics\n",
            spec);
    dlp_frame_free(*test);
    *test = NULL;
  }
  return CLI_EXIT_OK;
}

/* --- labels --------------------------------------------------------------- */

/* The label of row r as text into buf; NULL when null. */
static const char *label_text(const dlp_frame *f, size_t col, size_t r,
                              char *buf, size_t n) {
  const char *s;
  int64_t i;
  double v;
  if (dlp_frame_get_string(f, col, r, &s)) return s;
  if (dlp_frame_get_int64(f, col, r, &i)) {
    snprintf(buf, n, "%lld", (long long)i);
    return buf;
  }
  if (dlp_frame_get_double(f, col, r, &v)) {
    snprintf(buf, n, "%.17g", v);
    return buf;
  }
  return NULL;
}

size_t cli_ml_unknown_labels(const dlp_frame *f, const char *label_col,
                             const char *const *labels, size_t n, char *bad,
                             size_t bad_size, size_t **keep, size_t *nkeep) {
  long c = dlp_frame_col_index(f, label_col);
  size_t rows = dlp_frame_nrows(f), unknown = 0;
  *bad = '\0';
  *keep = malloc((rows + 1) * sizeof **keep);
  *nkeep = 0;
  if (!*keep || c < 0) return 0;
  for (size_t r = 0; r < rows; r++) {
    char buf[64];
    const char *t = label_text(f, (size_t)c, r, buf, sizeof buf);
    size_t j = 0;
    while (t && j < n && strcmp(labels[j], t) != 0)
      j++;
    if (t && j == n) {
      if (!unknown++) snprintf(bad, bad_size, "%s", t);
    } else {
      (*keep)[(*nkeep)++] = r;
    }
  }
  return unknown;
}

/* --- metrics -------------------------------------------------------------- */

void cli_ml_print_confusion(const dlp_multiclass_metrics *m,
                            const char *const *labels, size_t n_labels,
                            FILE *out) {
  size_t k = m->n_classes;
  cli_table t;
  if (cli_table_init(&t, k + 1) != 0 ||
      cli_table_column(&t, 0, "true \\ predicted", 0) != 0) {
    cli_table_free(&t);
    return;
  }
  char num[32];
  for (size_t j = 0; j < k; j++) {
    snprintf(num, sizeof num, "%zu", j);
    if (cli_table_column(&t, j + 1, j < n_labels ? labels[j] : num,
                         CLI_COL_RIGHT) != 0)
      goto done;
  }
  const char **row = malloc((k + 1) * sizeof *row);
  char *cells = malloc((k + 1) * 32);
  if (!row || !cells) {
    free(row);
    free(cells);
    goto done;
  }
  for (size_t i = 0; i < k; i++) {
    snprintf(cells, 32, "%zu", i);
    row[0] = i < n_labels ? labels[i] : cells;
    for (size_t j = 0; j < k; j++) {
      snprintf(cells + 32 * (j + 1), 32, "%.15g", m->confusion[i * k + j]);
      row[j + 1] = cells + 32 * (j + 1);
    }
    if (cli_table_row(&t, row) != 0) break;
  }
  free(row);
  free(cells);
  cli_table_print(&t, out, 24);
done:
  cli_table_free(&t);
}

void cli_ml_print_lr(dlp_ctx *ctx, const dlp_pipeline_model *pm) {
  dlp_lr_summary s;
  if (dlp_pipeline_model_lr_summary(ctx, pm, &s) != DLP_OK) return;
  printf("LogisticRegression: %s, %lld classes, %zu features, %d "
         "iteration%s, objective %.6g\n",
         s.multinomial ? "multinomial" : "binomial", (long long)s.n_classes,
         s.dim, s.iterations, s.iterations == 1 ? "" : "s", s.objective);
}

static void print_metrics(const char *what, const dlp_multiclass_metrics *m) {
  printf("%s (%zu rows): accuracy %.4f  f1 %.4f  weightedPrecision %.4f  "
         "weightedRecall %.4f",
         what, m->n_rows, m->accuracy, m->f1, m->weighted_precision,
         m->weighted_recall);
  if (m->has_log_loss) printf("  logLoss %.4f", m->log_loss);
  putchar('\n');
}

int cli_ml_report_metrics(const cli_args *a, dlp_ctx *ctx,
                          const dlp_pipeline_model *pm, const dlp_frame *f,
                          const char *label_col, const char *what,
                          dlp_frame **transformed) {
  size_t nl = 0, *keep = NULL, nkeep = 0;
  const char *const *labels = dlp_pipeline_model_labels(pm, &nl);
  char bad[256];
  dlp_frame *use = NULL, *pred = NULL;
  int rc = CLI_EXIT_OK;
  *transformed = NULL;
  size_t unknown = cli_ml_unknown_labels(f, label_col, labels, nl, bad,
                                         sizeof bad, &keep, &nkeep);
  if (!keep) return cli_fail("out of memory");
  if (unknown)
    fprintf(stderr,
            "warning: %zu %s row%s with a label the training part "
            "never had (e.g. '%s') left out of the %s metrics\n",
            unknown, what, unknown == 1 ? "" : "s", bad, what);
  if (dlp_frame_take(ctx, f, keep, nkeep, &use) != DLP_OK)
    rc = cli_lib_error(ctx);
  free(keep);
  cli_progress prog;
  cli_progress_start(&prog, ctx, NULL, quiet(a));
  if (rc == CLI_EXIT_OK &&
      dlp_pipeline_model_transform(ctx, pm, use, &pred) != DLP_OK)
    rc = cli_lib_error(ctx);
  cli_progress_end(&prog, ctx);
  dlp_frame_free(use);
  dlp_multiclass_metrics m;
  memset(&m, 0, sizeof m);
  dlp_eval_opts eo;
  dlp_eval_opts_init(&eo);
  eo.label_col = "indexedLabel";
  if (rc == CLI_EXIT_OK &&
      dlp_evaluate_multiclass(ctx, pred, &eo, &m) != DLP_OK)
    rc = cli_lib_error(ctx);
  if (rc == CLI_EXIT_OK) {
    print_metrics(what, &m);
    if (m.n_classes <= 12) cli_ml_print_confusion(&m, labels, nl, stdout);
  }
  dlp_multiclass_metrics_clear(&m);
  if (rc == CLI_EXIT_OK)
    *transformed = pred;
  else
    dlp_frame_free(pred);
  return rc;
}

int cli_ml_write_report(const cli_args *a, dlp_ctx *ctx,
                        const dlp_pipeline_model *pm, const dlp_frame *pred,
                        const char *path, const char *title) {
  dlp_eval_opts eo;
  dlp_eval_opts_init(&eo);
  eo.label_col = "indexedLabel";
  dlp_report_opts ro;
  dlp_report_opts_init(&ro);
  ro.title = title;
  const char *ic = opt_str(a, "image-col");
  if (ic) ro.image_col = ic;
  ro.labels = dlp_pipeline_model_labels(pm, &ro.n_labels);
  if (dlp_report_write_html(ctx, pred, &eo, &ro, path) != DLP_OK)
    return cli_lib_error(ctx);
  if (!quiet(a)) fprintf(stderr, "report -> %s\n", path);
  return CLI_EXIT_OK;
}

/* --- featurizing once ------------------------------------------------------
 */

int cli_ml_featurize(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d) {
  if (d->from_features) return CLI_EXIT_OK;
  dlp_pipeline *p = NULL;
  dlp_pipeline_model *pm = NULL;
  dlp_frame *feat = NULL;
  if (dlp_pipeline_new(ctx, &p) != DLP_OK) return cli_lib_error(ctx);
  int rc = add_stage(a, ctx, p, "DeepImageFeaturizer", featurizer_stage, d);
  cli_progress prog;
  cli_progress_start(&prog, ctx, "featurizing", quiet(a));
  double t0 = cli_now();
  if (rc == CLI_EXIT_OK &&
      (dlp_pipeline_fit(ctx, p, d->all, &pm) != DLP_OK ||
       dlp_pipeline_model_transform(ctx, pm, d->all, &feat) != DLP_OK))
    rc = cli_lib_error(ctx);
  cli_progress_end(&prog, ctx);
  double secs = cli_now() - t0;
  dlp_pipeline_model_free(pm);
  dlp_pipeline_free(p);
  if (rc != CLI_EXIT_OK) return rc;
  dlp_frame_free(d->all);
  d->all = feat;
  long fc = dlp_frame_col_index(feat, d->features_col);
  if (fc < 0)
    return ml_fail(a, "the featurizer made no '%s' column", d->features_col);
  size_t nn = 0, dim = dlp_frame_col_dim(feat, (size_t)fc);
  rc = drop_nulls(a, ctx, &d->all, (size_t)fc, "features", &nn);
  d->n_invalid += nn;
  const char *model = opt_str(a, "model");
  if (!quiet(a))
    fprintf(stderr, "featurized %zu images with %s (%zu-d) in %.1f s\n",
            dlp_frame_nrows(d->all),
            model                      ? model
            : opt_str(a, "model-file") ? opt_str(a, "model-file")
                                       : "InceptionV3",
            dim, secs);
  d->featurized = 1;
  return rc;
}
