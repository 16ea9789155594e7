/* cmd_tune.c - 'dlp tune': a parameter grid over the fit pipeline, scored
 * by k-fold cross-validation (or one train/validation split); prints every
 * combination, marks the best, and like 'dlp fit' scores and saves the
 * best pipeline refitted on the tuning rows. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Every name in --grid must be a LogisticRegression option: the grid
 * applies to the classifier (the featurizer runs once, untuned). */
static int check_grid_names(const cli_args *a) {
  const char *spec = cli_str(a, "grid");
  size_t np = 0;
  const dlp_param_desc *d = dlp_stage_class_params("LogisticRegression", &np);
  for (const char *p = spec; *p;) {
    size_t len = strcspn(p, "=;");
    while (len > 0 && p[len - 1] == ' ')
      len--;
    while (*p == ' ' && len > 0)
      p++, len--;
    size_t i = 0;
    while (i < np &&
           !((strlen(d[i].name) == len && strncmp(d[i].name, p, len) == 0) ||
             (strlen(d[i].cli_name) == len &&
              strncmp(d[i].cli_name, p, len) == 0)))
      i++;
    if (len > 0 && i == np)
      return cli_usage_error(a->cmd,
                             "unknown parameter '%.*s' in --grid "
                             "(the LogisticRegression options: "
                             "max-iter, reg, elastic-net, tol, "
                             "fit-intercept, standardization, "
                             "family, threshold)",
                             (int)len, p);
    p += strcspn(p, ";");
    if (*p == ';') p++;
  }
  return CLI_PARSED;
}

/* The usage checks that need no data: grid, metric, folds. */
static int plan(const cli_args *a, dlp_ctx *ctx, dlp_param_grid **g,
                dlp_tune_opts *o) {
  const char *metric = cli_str(a, "metric");
  if (dlp_metric_larger_is_better(metric) < 0)
    return cli_usage_error(a->cmd, "unknown metric '%s' for '--metric'",
                           metric);
  if (cli_int(a, "folds") == 1)
    return cli_usage_error(a->cmd, "'--folds 1' cannot cross-validate: give "
                                   "2 or more, or 0 for one split "
                                   "(--train-ratio)");
  double r = cli_real(a, "train-ratio");
  if (r <= 0 || r >= 1)
    return cli_usage_error(a->cmd, "'--train-ratio' must be between 0 and 1 "
                                   "(exclusive)");
  int rc = check_grid_names(a);
  if (rc != CLI_PARSED) return rc;
  if (dlp_param_grid_new(ctx, g) != DLP_OK) return cli_lib_error(ctx);
  if (dlp_param_grid_parse(ctx, *g, cli_str(a, "grid")) != DLP_OK)
    return cli_usage_error(a->cmd, "invalid '--grid %s': %s",
                           cli_str(a, "grid"), dlp_errmsg(ctx));
  dlp_tune_opts_init(o);
  o->folds = (int)cli_int(a, "folds");
  o->train_ratio = r;
  o->seed = cli_u64(a, "seed");
  o->parallelism = (int)cli_int(a, "parallelism");
  o->metric = metric;
  o->eval.label_col = "indexedLabel";
  o->refit = 1;
  return CLI_PARSED;
}

static int print_results(const dlp_tune_result *r, const dlp_tune_opts *o) {
  static const char *names[] = {"#", "parameters", "mean", "std", "best"};
  static const int flags[] = {CLI_COL_RIGHT, CLI_COL_NO_CUT, CLI_COL_RIGHT,
                              CLI_COL_RIGHT, 0};
  cli_table t;
  size_t n = dlp_tune_result_count(r), best = dlp_tune_result_best(r);
  int rc = cli_table_init_cols(&t, 5, names, flags) == 0 ? CLI_EXIT_OK
                                                         : CLI_EXIT_FAIL;
  for (size_t i = 0; rc == CLI_EXIT_OK && i < n; i++) {
    char num[24], mean[32], sd[32];
    snprintf(num, sizeof num, "%zu", i + 1);
    snprintf(mean, sizeof mean, "%.6f", dlp_tune_result_mean(r, i));
    snprintf(sd, sizeof sd, "%.6f", dlp_tune_result_std(r, i));
    const char *row[5] = {num, dlp_tune_result_params(r, i), mean, sd,
                          i == best ? "*" : ""};
    if (cli_table_row(&t, row) != 0) rc = CLI_EXIT_FAIL;
  }
  if (rc == CLI_EXIT_OK) {
    if (o->folds >= 2)
      printf("%zu combination%s x %d folds, metric %s:\n", n, n == 1 ? "" : "s",
             o->folds, o->metric);
    else
      printf("%zu combination%s, train/validation %.2f/%.2f, metric %s:\n", n,
             n == 1 ? "" : "s", o->train_ratio, 1 - o->train_ratio, o->metric);
    cli_table_print(&t, stdout, 0);
    printf("best: %s (%s %.6f)\n", dlp_tune_result_params(r, best), o->metric,
           dlp_tune_result_mean(r, best));
  }
  cli_table_free(&t);
  return rc == CLI_EXIT_OK ? rc : cli_fail("out of memory");
}

/* Sets handleInvalid of the stage of class cls in the pipeline or model. */
static int set_handle_invalid(dlp_ctx *ctx, dlp_stage *s, const char *cls,
                              const char *how) {
  if (!s || strcmp(dlp_stage_class(s), cls) != 0) return CLI_EXIT_OK;
  return dlp_stage_set(ctx, s, "handleInvalid", how) == DLP_OK
             ? CLI_EXIT_OK
             : cli_lib_error(ctx);
}

/* A fold's StringIndexer only knows the labels of its training rows, so a
 * rare class can be missing there: its validation rows are skipped while
 * tuning. The saved model fails on unseen labels again, like 'dlp fit'. */
static int indexer_skip(dlp_ctx *ctx, dlp_pipeline *p) {
  int rc = CLI_EXIT_OK;
  for (size_t i = 0; rc == CLI_EXIT_OK && i < dlp_pipeline_nstages(p); i++)
    rc = set_handle_invalid(ctx, dlp_pipeline_stage(p, i), "StringIndexer",
                            "skip");
  return rc;
}

static int indexer_error(dlp_ctx *ctx, dlp_pipeline_model *pm) {
  int rc = CLI_EXIT_OK;
  for (size_t i = 0; rc == CLI_EXIT_OK && i < dlp_pipeline_model_nstages(pm);
       i++)
    rc = set_handle_invalid(ctx, dlp_pipeline_model_stage(pm, i),
                            "StringIndexerModel", "error");
  return rc;
}

static int tune(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d,
                dlp_pipeline *p, const dlp_param_grid *g,
                const dlp_tune_opts *o) {
  dlp_frame *train = NULL, *test = NULL;
  dlp_tune_result *res = NULL;
  dlp_pipeline_model *pm = NULL;
  int rc = indexer_skip(ctx, p);
  if (rc == CLI_EXIT_OK) rc = cli_ml_train_test(a, ctx, d, &train, &test);
  if (rc == CLI_EXIT_OK) {
    cli_progress prog;
    cli_progress_start(&prog, ctx, NULL, cli_flag(a, "quiet"));
    double t0 = cli_now();
    if (dlp_tune(ctx, p, g, train, o, &res) != DLP_OK) rc = cli_lib_error(ctx);
    cli_progress_end(&prog, ctx);
    if (rc == CLI_EXIT_OK && !cli_flag(a, "quiet"))
      fprintf(stderr, "tuned in %.2f s\n", cli_now() - t0);
  }
  if (rc == CLI_EXIT_OK) rc = print_results(res, o);
  if (rc == CLI_EXIT_OK && !(pm = dlp_tune_result_take_model(res)))
    rc = cli_fail("internal error: tuning kept no refitted model");
  if (rc == CLI_EXIT_OK) rc = indexer_error(ctx, pm);
  if (rc == CLI_EXIT_OK) rc = cli_ml_finish(a, ctx, d, pm, train, test);
  dlp_pipeline_model_free(pm);
  dlp_tune_result_free(res);
  dlp_frame_free(train);
  dlp_frame_free(test);
  return rc;
}

int cli_cmd_tune(const cli_args *a) {
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  dlp_param_grid *g = NULL;
  dlp_pipeline *p = NULL;
  dlp_tune_opts o;
  cli_ml_data d;
  memset(&d, 0, sizeof d);
  int rc = plan(a, ctx, &g, &o);
  if (rc == CLI_PARSED) rc = cli_ml_prepare(a, ctx, &d, &p);
  if (rc == CLI_EXIT_OK) rc = cli_ml_read_labelled(a, ctx, &d);
  if (rc == CLI_EXIT_OK) {
    cli_ml_note_random(a);
    rc = tune(a, ctx, &d, p, g, &o);
  }
  dlp_pipeline_free(p);
  cli_ml_data_free(&d);
  dlp_param_grid_free(g);
  dlp_ctx_free(ctx);
  return rc;
}
