/* cmd_featurize.c - 'dlp featurize', and the model-running steps it shares
 * with 'dlp predict' and 'dlp apply': options to dlp_model_opts, input
 * (table or folder), the transform, the output file and the summary. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* "a,b,c" -> three finite numbers (std: > 0). */
static int parse_triple(const char *s, float *v, int positive) {
  char *buf;
  const char *items[3];
  int n = cli_split_list(s, &buf, items, 3);
  int ok = n == 3;
  for (int i = 0; ok && i < 3; i++) {
    char *end;
    double d = strtod(items[i], &end);
    ok = *end == '\0' && end != items[i] && d > -1e30 && d < 1e30 &&
         (!positive || d > 0);
    v[i] = (float)d;
  }
  free(buf);
  return ok;
}

/* Image input options (--input-size, --preprocess, --mean/--std,
 * --channel-order) into mo. */
static int image_opts(const cli_args *a, dlp_model_opts *mo) {
  const cli_cmd *c = a->cmd;
  const char *v = cli_str(a, "input-size");
  if (v && !dlp_parse_size(v, &mo->input_height, &mo->input_width))
    return cli_usage_error(c, "invalid value '%s' for '--input-size': "
                              "expected HxW, e.g. 224x224", v);
  if ((v = cli_str(a, "preprocess"))) {
    if (!dlp_norm_from_name(v, &mo->norm))
      return cli_usage_error(c, "invalid value '%s' for '--preprocess': "
                                "expected tf, caffe, torch or none", v);
    mo->norm_set = 1;
  }
  if ((v = cli_str(a, "mean"))) {
    if (cli_given(a, "preprocess"))
      return cli_usage_error(c, "use either '--preprocess' or '--mean', not "
                                "both");
    if (!parse_triple(v, mo->mean, 0))
      return cli_usage_error(c, "invalid value '%s' for '--mean': expected "
                                "three numbers A,B,C", v);
    mo->norm = DLP_NORM_CUSTOM;
    mo->norm_set = 1;
  }
  if ((v = cli_str(a, "std"))) {
    if (!cli_given(a, "mean"))
      return cli_usage_error(c, "'--std' needs '--mean'");
    if (!parse_triple(v, mo->std, 1))
      return cli_usage_error(c, "invalid value '%s' for '--std': expected "
                                "three numbers > 0", v);
  }
  if ((v = cli_str(a, "channel-order"))) {
    if (strcasecmp(v, "RGB") != 0 && strcasecmp(v, "BGR") != 0)
      return cli_usage_error(c, "invalid value '%s' for '--channel-order': "
                                "expected RGB or BGR", v);
    mo->bgr = strcasecmp(v, "BGR") == 0;
    if (mo->norm_set && mo->norm != DLP_NORM_NONE &&
        mo->norm != DLP_NORM_CUSTOM)
      return cli_usage_error(c, "'--channel-order' goes with '--preprocess "
                                "none' or '--mean' (tf and torch are RGB, "
                                "caffe is BGR)");
  }
  return CLI_PARSED;
}

/* All model options of featurize / predict / apply into mo. */
static int model_opts(const cli_args *a, dlp_model_opts *mo) {
  dlp_model_opts_init(mo);
  const char *p = cli_str(a, "precision");
  if (strcmp(p, "fp32") == 0)
    mo->precision = DLP_PRECISION_FP32;
  else if (strcmp(p, "bf16") == 0)
    mo->precision = DLP_PRECISION_BF16;
  else
    return cli_usage_error(a->cmd, "invalid value '%s' for '--precision': "
                                   "expected fp32 or bf16", p);
  mo->fast = !cli_flag(a, "reference");
  mo->model_dir = cli_str(a, "model-dir");
  mo->model_file = cli_str(a, "model-file");
  if (a->cmd->run != cli_cmd_apply) {
    if (cli_given(a, "model") == cli_given(a, "model-file"))
      return cli_usage_error(a->cmd, "give either '--model NAME' or "
                                     "'--model-file FILE'");
    if (cli_flag(a, "random-weights") && !cli_given(a, "model"))
      return cli_usage_error(a->cmd, "'--random-weights' goes with "
                                     "'--model NAME' (a zoo architecture)");
    mo->random_weights = cli_flag(a, "random-weights");
    mo->seed = cli_u64(a, "seed");
  } else if (strcmp(cli_str(a, "output"), "vector") != 0) {
    return cli_usage_error(a->cmd, "invalid value '%s' for '--output': only "
                                   "'vector' is supported so far",
                           cli_str(a, "output"));
  }
  if (a->cmd->run == cli_cmd_featurize) mo->layer = cli_str(a, "layer");
  return image_opts(a, mo);
}

static int is_table_file(const char *path) {
  static const char *ext[] = {".db", ".sqlite", ".sqlite3", ".jsonl",
                              ".ndjson", ".csv"};
  size_t n = strlen(path);
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
    size_t k = strlen(ext[i]);
    if (n > k && strcasecmp(path + n - k, ext[i]) == 0) return 1;
  }
  return 0;
}

/* IN: a table file, or a folder (or image) read with labels from its
 * sub-folders. */
static int read_input(const cli_args *a, dlp_ctx *ctx, dlp_frame **f) {
  const char *in = a->pos[0];
  struct stat st;
  if (stat(in, &st) != 0) return cli_fail("cannot read %s: no such file or "
                                          "folder", in);
  if (!S_ISDIR(st.st_mode) && is_table_file(in)) {
    dlp_io_opts io;
    dlp_io_opts_init(&io);
    io.table = cli_str(a, "table");
    return dlp_frame_read(ctx, in, &io, f) == DLP_OK ? CLI_EXIT_OK
                                                     : cli_lib_error(ctx);
  }
  dlp_scan_opts so;
  dlp_scan_opts_init(&so);
  so.labels_from_dirs = S_ISDIR(st.st_mode);
  so.verify = 0; /* the model decodes every image anyway */
  return dlp_read_images(ctx, in, &so, f) == DLP_OK ? CLI_EXIT_OK
                                                    : cli_lib_error(ctx);
}

static int write_output(const cli_args *a, dlp_ctx *ctx, const dlp_frame *f,
                        const char *col) {
  dlp_io_opts io;
  dlp_io_opts_init(&io);
  io.table = cli_str(a, "table");
  io.overwrite = cli_flag(a, "overwrite");
  io.column = col;
  return dlp_frame_write(ctx, f, cli_str(a, "out"), &io) == DLP_OK
             ? CLI_EXIT_OK
             : cli_lib_error(ctx);
}

/* Rows whose output is null, and an example of why. */
static size_t count_failed(const dlp_frame *f, size_t in_col, size_t out_col,
                           const char **why, const char **where) {
  size_t n = 0;
  *why = *where = NULL;
  for (size_t r = 0; r < dlp_frame_nrows(f); r++) {
    if (!dlp_frame_is_null(f, out_col, r)) continue;
    n++;
    dlp_image_meta m;
    if (!*why && dlp_frame_get_image_meta(f, in_col, r, &m) && m.error) {
      *why = m.error;
      *where = m.origin;
    }
  }
  return n;
}

static const char *verb[] = {"featurized", "predicted", "applied"};

static void print_summary(const cli_args *a, cli_model_mode mode,
                          const dlp_model *m, const dlp_frame *in,
                          const dlp_frame *out, const char *col, double secs) {
  dlp_model_info info;
  dlp_model_get_info(m, &info);
  long ic = dlp_frame_col_index(out, cli_str(a, "input-col"));
  long oc = dlp_frame_col_index(out, col);
  const char *why, *where;
  size_t failed = count_failed(out, (size_t)ic, (size_t)oc, &why, &where);
  size_t dropped = dlp_frame_nrows(in) - dlp_frame_nrows(out);
  size_t good = dlp_frame_nrows(out) - failed;
  char what[96];
  if (mode == CLI_PREDICT)
    snprintf(what, sizeof what, "top-%lld of %lld classes",
             (long long)cli_int(a, "top-k"), (long long)info.n_classes);
  else
    snprintf(what, sizeof what, "%zu-d %s", dlp_frame_col_dim(out, (size_t)oc),
             mode == CLI_FEATURIZE ? "features" : "outputs");
  fprintf(stderr,
          "%s %zu row%s (%zu invalid, %zu dropped) with %s in %.1f s (%.1f "
          "img/s): %s in column '%s' -> %s\n",
          verb[mode], good, good == 1 ? "" : "s", failed + dropped, dropped,
          info.name, secs, secs > 0 ? (double)good / secs : 0.0, what, col,
          cli_str(a, "out"));
  if (why)
    fprintf(stderr, "  invalid: %s: %s\n", where ? where : "?", why);
}

/* The first entry of a predictions JSON array: class, description, prob. */
static void top1(const char *json, char *cls, size_t n, char *prob,
                 size_t pn) {
  const char *c = strstr(json, "\"class\":");
  const char *d = strstr(json, "\"description\":\"");
  const char *p = strstr(json, "\"probability\":");
  const char *end = strchr(json, '}');
  snprintf(cls, n, "%ld", c ? strtol(c + 8, NULL, 10) : -1L);
  if (d && (!end || d < end)) {
    size_t len = strlen(cls);
    const char *s = d + 15;
    const char *q = strchr(s, '"');
    snprintf(cls + len, n - len, " %.*s", q ? (int)(q - s) : 0, s);
  }
  snprintf(prob, pn, "%.4f", p ? strtod(p + 14, NULL) : 0.0);
}

static int show_predictions(const dlp_frame *f, const char *in_col,
                            const char *col) {
  enum { MAX_SHOWN = 50 };
  long ic = dlp_frame_col_index(f, in_col);
  long oc = dlp_frame_col_index(f, col);
  cli_table t;
  static const char *names[] = {"path", "top-1", "probability"};
  static const int flags[] = {CLI_COL_CUT_LEFT, 0, CLI_COL_RIGHT};
  if (cli_table_init_cols(&t, 3, names, flags) != 0) {
    cli_table_free(&t);
    return cli_fail("out of memory");
  }
  size_t n = dlp_frame_nrows(f);
  for (size_t r = 0; r < n && r < MAX_SHOWN; r++) {
    dlp_image_meta m;
    const char *json = NULL;
    char cls[160] = "", prob[32] = "";
    const char *path = dlp_frame_get_image_meta(f, (size_t)ic, r, &m) && m.origin
                           ? m.origin
                           : "";
    if (dlp_frame_get_string(f, (size_t)oc, r, &json))
      top1(json, cls, sizeof cls, prob, sizeof prob);
    else
      snprintf(cls, sizeof cls, "(invalid: %s)", m.error ? m.error : "null");
    const char *row[3] = {path, cls, prob};
    if (cli_table_row(&t, row) != 0) {
      cli_table_free(&t);
      return cli_fail("out of memory");
    }
  }
  cli_table_print(&t, stdout, 60);
  cli_table_free(&t);
  if (n > MAX_SHOWN) printf("... %zu more rows\n", n - MAX_SHOWN);
  return CLI_EXIT_OK;
}

static int transform(const cli_args *a, cli_model_mode mode, dlp_ctx *ctx,
                     dlp_model *m, const dlp_frame *in, dlp_frame **out,
                     const char *col) {
  dlp_transform_opts to;
  dlp_transform_opts_init(&to);
  to.batch_size = (size_t)cli_int(a, "batch-size");
  to.output_col = col;
  to.drop_invalid = cli_flag(a, "drop-invalid");
  const char *ic = cli_str(a, "input-col");
  static const char *labels[] = {"featurizing", "predicting", "applying"};
  cli_progress prog;
  cli_progress_start(&prog, ctx, labels[mode], cli_flag(a, "quiet"));
  int rc = mode == CLI_FEATURIZE ? dlp_model_featurize(ctx, m, in, ic, &to, out)
           : mode == CLI_PREDICT
               ? dlp_model_predict(ctx, m, in, ic, (int)cli_int(a, "top-k"),
                                   &to, out)
               : dlp_model_apply(ctx, m, in, ic, &to, out);
  cli_progress_end(&prog, ctx);
  return rc == DLP_OK ? CLI_EXIT_OK : cli_lib_error(ctx);
}

int cli_model_command(const cli_args *a, cli_model_mode mode) {
  dlp_model_opts mo;
  int rc = model_opts(a, &mo);
  if (rc != CLI_PARSED) return rc;
  static const char *def_col[] = {"features", "predictions", "output"};
  const char *col = cli_str(a, "output-col") ? cli_str(a, "output-col")
                                             : def_col[mode];
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  dlp_model *m = NULL;
  dlp_frame *in = NULL, *out = NULL;
  const char *name = mode == CLI_APPLY ? NULL : cli_str(a, "model");
  rc = dlp_model_open(ctx, name, &mo, &m) == DLP_OK ? CLI_EXIT_OK
                                                    : cli_lib_error(ctx);
  if (rc == CLI_EXIT_OK && mo.random_weights && !cli_flag(a, "quiet"))
    fprintf(stderr, "note: %s with random weights (seed %llu): its outputs "
                    "mean nothing (for tests and benchmarks)\n",
            name, (unsigned long long)mo.seed);
  if (rc == CLI_EXIT_OK) rc = read_input(a, ctx, &in);
  double t0 = cli_now();
  if (rc == CLI_EXIT_OK) rc = transform(a, mode, ctx, m, in, &out, col);
  double secs = cli_now() - t0;
  if (rc == CLI_EXIT_OK) rc = write_output(a, ctx, out, col);
  if (rc == CLI_EXIT_OK && !cli_flag(a, "quiet"))
    print_summary(a, mode, m, in, out, col, secs);
  if (rc == CLI_EXIT_OK && mode == CLI_PREDICT && cli_flag(a, "show"))
    rc = show_predictions(out, cli_str(a, "input-col"), col);
  if (rc == CLI_EXIT_OK && mode == CLI_PREDICT && !dlp_imagenet_class(0) &&
      !cli_flag(a, "quiet"))
    fprintf(stderr, "note: ImageNet class names are not installed "
                    "(imagenet_classes.txt; see docs/models.md), so "
                    "predictions carry class numbers only\n");
  dlp_frame_free(out);
  dlp_frame_free(in);
  dlp_model_free(m);
  dlp_ctx_free(ctx);
  return rc;
}

int cli_cmd_featurize(const cli_args *a) {
  return cli_model_command(a, CLI_FEATURIZE);
}
