/* cmd_transform.c - 'dlp transform': a saved pipeline over a folder of
 * images or a table (of images or of features), written with the stages'
 * columns added (prediction, probability, predictedLabel, ...). */
#include "cli.h"

#include <string.h>

/* Sets the batch size of the pipeline's featurizer, if it has one. */
int cli_ml_set_batch(const cli_args *a, dlp_ctx *ctx, dlp_pipeline_model *pm) {
  if (!cli_given(a, "batch-size")) return CLI_EXIT_OK;
  for (size_t i = 0; i < dlp_pipeline_model_nstages(pm); i++) {
    dlp_stage *s = dlp_pipeline_model_stage(pm, i);
    if (strcmp(dlp_stage_class(s), "DeepImageFeaturizer") == 0 &&
        dlp_stage_set(ctx, s, "batchSize", cli_str(a, "batch-size")) != DLP_OK)
      return cli_lib_error(ctx);
  }
  return CLI_EXIT_OK;
}

int cli_ml_load(const cli_args *a, dlp_ctx *ctx, dlp_pipeline_model **pm) {
  if (dlp_pipeline_model_load(ctx, cli_str(a, "pipeline"), pm) != DLP_OK)
    return cli_lib_error(ctx);
  return cli_ml_set_batch(a, ctx, *pm);
}

/* The path of row r: the image origin, else "". */
static const char *row_path(const dlp_frame *f, long ic, size_t r) {
  dlp_image_meta m;
  if (ic >= 0 && dlp_frame_get_image_meta(f, (size_t)ic, r, &m) && m.origin)
    return m.origin;
  return "";
}

static int show(const dlp_frame *f) {
  enum { MAX_SHOWN = 50 };
  long ic = dlp_frame_col_index(f, "image");
  long lc = dlp_frame_col_index(f, "predictedLabel");
  long pc = dlp_frame_col_index(f, "prediction");
  long qc = dlp_frame_col_index(f, "probability");
  static const char *names[] = {"path", "predictedLabel", "probability"};
  static const int flags[] = {CLI_COL_CUT_LEFT, 0, CLI_COL_RIGHT};
  cli_table t;
  if (cli_table_init_cols(&t, 3, names, flags) != 0) {
    cli_table_free(&t);
    return cli_fail("out of memory");
  }
  size_t n = dlp_frame_nrows(f);
  for (size_t r = 0; r < n && r < MAX_SHOWN; r++) {
    const char *label = NULL;
    const float *prob = NULL;
    double pred;
    char pbuf[32] = "";
    if (lc < 0 || !dlp_frame_get_string(f, (size_t)lc, r, &label))
      label = "(none: invalid image)";
    if (pc >= 0 && qc >= 0 && dlp_frame_get_double(f, (size_t)pc, r, &pred) &&
        dlp_frame_get_vector(f, (size_t)qc, r, &prob) && pred >= 0 &&
        (size_t)pred < dlp_frame_col_dim(f, (size_t)qc))
      snprintf(pbuf, sizeof pbuf, "%.4f", prob[(size_t)pred]);
    const char *row[3] = {row_path(f, ic, r), label, pbuf};
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

static int write_out(const cli_args *a, dlp_ctx *ctx, const dlp_frame *f) {
  dlp_io_opts io;
  dlp_io_opts_init(&io);
  io.table = cli_str(a, "table");
  io.overwrite = cli_flag(a, "overwrite");
  io.column = cli_str(a, "column");
  return dlp_frame_write(ctx, f, cli_str(a, "out"), &io) == DLP_OK
             ? CLI_EXIT_OK
             : cli_lib_error(ctx);
}

int cli_cmd_transform(const cli_args *a) {
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  dlp_pipeline_model *pm = NULL;
  dlp_frame *in = NULL, *out = NULL;
  int rc = cli_ml_load(a, ctx, &pm);
  if (rc == CLI_EXIT_OK)
    rc = cli_ml_read_input(a, ctx, a->pos[0], cli_flag(a, "labels-from-dirs"),
                           &in);
  double t0 = cli_now();
  if (rc == CLI_EXIT_OK) {
    cli_progress prog;
    cli_progress_start(&prog, ctx, NULL, cli_flag(a, "quiet"));
    if (dlp_pipeline_model_transform(ctx, pm, in, &out) != DLP_OK)
      rc = cli_lib_error(ctx);
    cli_progress_end(&prog, ctx);
  }
  if (rc == CLI_EXIT_OK) rc = write_out(a, ctx, out);
  if (rc == CLI_EXIT_OK && !cli_flag(a, "quiet")) {
    long pc = dlp_frame_col_index(out, "prediction");
    size_t n = dlp_frame_nrows(out), none = 0;
    for (size_t r = 0; pc >= 0 && r < n; r++)
      none += dlp_frame_is_null(out, (size_t)pc, r);
    fprintf(stderr,
            "transformed %zu rows (%zu without a prediction: invalid "
            "images) in %.1f s -> %s\n",
            n, none, cli_now() - t0, cli_str(a, "out"));
  }
  if (rc == CLI_EXIT_OK && cli_flag(a, "show")) rc = show(out);
  dlp_frame_free(out);
  dlp_frame_free(in);
  dlp_pipeline_model_free(pm);
  dlp_ctx_free(ctx);
  return rc;
}
