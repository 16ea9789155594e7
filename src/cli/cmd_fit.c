/* cmd_fit.c - 'dlp fit': labelled images (or features) -> featurizer +
 * StringIndexer + LogisticRegression + IndexToString, fitted, scored on
 * the train and test parts, saved. The images are featurized once; the
 * fit and both scorings reuse that column (the featurizer of the saved
 * pipeline skips rows that already have it). */
#include "cli.h"

#include <string.h>
#include <sys/stat.h>

/* An existing --out without --overwrite fails before the expensive part. */
int cli_ml_check_out(const cli_args *a) {
  const char *out = cli_str(a, "out");
  struct stat st;
  if (out && !cli_flag(a, "overwrite") && stat(out, &st) == 0) {
    fprintf(stderr, "dlp %s: %s exists (give --overwrite to replace it)\n",
            a->cmd->name, out);
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

void cli_ml_note_random(const cli_args *a) {
  if (cli_flag(a, "random-weights") && !cli_flag(a, "quiet"))
    fprintf(stderr,
            "note: %s with RANDOM weights (seed %llu): no pretrained "
            "network; whatever accuracy is above chance comes from "
            "random convolutional features\n",
            cli_str(a, "model") ? cli_str(a, "model") : "InceptionV3",
            (unsigned long long)cli_u64(a, "weights-seed"));
}

/* Prints where the rows went: read, left out, train/test. */
void cli_ml_print_data(const cli_args *a, const cli_ml_data *d,
                       const dlp_frame *train, const dlp_frame *test) {
  printf("data: %zu rows", dlp_frame_nrows(d->all));
  if (d->n_invalid || d->n_unlabelled)
    printf(" (%zu read, %zu invalid, %zu unlabelled left out)", d->n_read,
           d->n_invalid, d->n_unlabelled);
  printf("; split %s (seed %llu): %zu train, %zu test\n", cli_str(a, "split"),
         (unsigned long long)cli_u64(a, "seed"), dlp_frame_nrows(train),
         test ? dlp_frame_nrows(test) : (size_t)0);
}

/* Scores pm on train and test, writes --report, saves to --out. */
int cli_ml_finish(const cli_args *a, dlp_ctx *ctx, const cli_ml_data *d,
                  const dlp_pipeline_model *pm, const dlp_frame *train,
                  const dlp_frame *test) {
  dlp_frame *ptrain = NULL, *ptest = NULL;
  size_t nl = 0;
  const char *const *labels = dlp_pipeline_model_labels(pm, &nl);
  printf("classes (%zu):", nl);
  for (size_t i = 0; i < nl; i++)
    printf(" %s", labels[i]);
  putchar('\n');
  cli_ml_print_lr(ctx, pm);
  int rc = CLI_EXIT_OK;
  if (train)
    rc = cli_ml_report_metrics(a, ctx, pm, train, d->label_col, "train",
                               &ptrain);
  if (rc == CLI_EXIT_OK && test)
    rc = cli_ml_report_metrics(a, ctx, pm, test, d->label_col, "test", &ptest);
  const char *out = cli_str(a, "out");
  if (rc == CLI_EXIT_OK && out) {
    if (dlp_pipeline_model_save(ctx, pm, out, cli_flag(a, "overwrite")) !=
        DLP_OK)
      rc = cli_lib_error(ctx);
    else
      printf("saved pipeline (%zu stages) -> %s\n",
             dlp_pipeline_model_nstages(pm), out);
  }
  const char *report = cli_str(a, "report");
  if (rc == CLI_EXIT_OK && report) {
    if (!ptest && !cli_flag(a, "quiet"))
      fprintf(stderr, "note: no test part: the report describes the rows "
                      "the pipeline was fitted on\n");
    rc = cli_ml_write_report(a, ctx, pm, ptest ? ptest : ptrain, report,
                             ptest ? "dlp: test part" : "dlp: training rows");
  }
  dlp_frame_free(ptrain);
  dlp_frame_free(ptest);
  return rc;
}

int cli_ml_train_test(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d,
                      dlp_frame **train, dlp_frame **test) {
  int rc = cli_ml_featurize(a, ctx, d);
  if (rc == CLI_EXIT_OK) rc = cli_ml_split(a, ctx, d->all, train, test);
  if (rc == CLI_EXIT_OK) cli_ml_print_data(a, d, *train, *test);
  return rc;
}

static int fit(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d,
               const dlp_pipeline *p) {
  dlp_frame *train = NULL, *test = NULL;
  dlp_pipeline_model *pm = NULL;
  int rc = cli_ml_train_test(a, ctx, d, &train, &test);
  if (rc == CLI_EXIT_OK) {
    cli_progress prog;
    cli_progress_start(&prog, ctx, NULL, cli_flag(a, "quiet"));
    double t0 = cli_now();
    if (dlp_pipeline_fit(ctx, p, train, &pm) != DLP_OK) rc = cli_lib_error(ctx);
    cli_progress_end(&prog, ctx);
    if (rc == CLI_EXIT_OK && !cli_flag(a, "quiet"))
      fprintf(stderr, "fitted in %.2f s\n", cli_now() - t0);
  }
  if (rc == CLI_EXIT_OK) rc = cli_ml_finish(a, ctx, d, pm, train, test);
  dlp_pipeline_model_free(pm);
  dlp_frame_free(train);
  dlp_frame_free(test);
  return rc;
}

/* The checks that need no data, so usage errors come before any work. */
int cli_ml_prepare(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d,
                   dlp_pipeline **p) {
  double w[2];
  int k;
  int rc = cli_ml_check_out(a);
  if (rc == CLI_EXIT_OK) rc = cli_ml_parse_split(a, w, &k);
  if (rc == CLI_PARSED) rc = cli_ml_data_init(a, d);
  if (rc == CLI_PARSED) rc = cli_ml_build_pipeline(a, ctx, d, p);
  return rc == CLI_PARSED ? CLI_EXIT_OK : rc;
}

int cli_cmd_fit(const cli_args *a) {
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  cli_ml_data d;
  dlp_pipeline *p = NULL;
  memset(&d, 0, sizeof d);
  int rc = cli_ml_prepare(a, ctx, &d, &p);
  if (rc == CLI_EXIT_OK) rc = cli_ml_read_labelled(a, ctx, &d);
  if (rc == CLI_EXIT_OK) {
    cli_ml_note_random(a);
    rc = fit(a, ctx, &d, p);
  }
  dlp_pipeline_free(p);
  cli_ml_data_free(&d);
  dlp_ctx_free(ctx);
  return rc;
}
