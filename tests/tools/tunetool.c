/* tunetool.c - runs dlp_tune on a feature table from .npy arrays, for the
 * scikit-learn reference test (tests/ref/test_tune_vs_sklearn.py):
 *   tunetool X.npy y.npy --grid SPEC [--folds K] [--train-ratio R]
 *            [--seed S] [--parallelism P] [--metric M] [--max-iter N]
 *            [--tol T] [--test XT.npy] [--save DIR]
 * The pipeline is one LogisticRegression (features X as float32, labels y
 * as int64). Prints one JSON object: the fold of every row
 * ("fold_of_row", ml_tune_folds / ml_tune_split), every combination's
 * settings, mean, std and per-fold metrics, the best index, and with --test
 * the refitted model's predictions on XT; --save writes the refitted model
 * (a pipeline without labels or featurizer, for the SQL tests). Bad
 * arguments exit 2, failures 1. */
#include "dlp.h"
#include "frame/frame.h"
#include "ml/ml.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tool_args {
  const char *x, *y, *grid, *test, *max_iter, *tol, *save;
  dlp_tune_opts o;
} tool_args;

static int usage(const char *msg, const char *arg) {
  fprintf(stderr, "tunetool: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  fprintf(stderr, "usage: tunetool X.npy y.npy --grid SPEC [--folds K] "
                  "[--train-ratio R] [--seed S] [--parallelism P] "
                  "[--metric M] [--max-iter N] [--tol T] [--test XT.npy] "
                  "[--save DIR]\n");
  return 2;
}

static int parse(int argc, char **argv, tool_args *a) {
  memset(a, 0, sizeof *a);
  dlp_tune_opts_init(&a->o);
  int pos = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (strncmp(o, "--", 2) != 0) {
      if (pos >= 2) return usage("unexpected argument", o);
      *(pos++ ? &a->y : &a->x) = o;
      continue;
    }
    if (i + 1 >= argc) return usage("missing value for", o);
    const char *v = argv[++i];
    if (strcmp(o, "--grid") == 0)
      a->grid = v;
    else if (strcmp(o, "--test") == 0)
      a->test = v;
    else if (strcmp(o, "--save") == 0)
      a->save = v;
    else if (strcmp(o, "--metric") == 0)
      a->o.metric = v;
    else if (strcmp(o, "--max-iter") == 0)
      a->max_iter = v;
    else if (strcmp(o, "--tol") == 0)
      a->tol = v;
    else if (strcmp(o, "--folds") == 0)
      a->o.folds = atoi(v);
    else if (strcmp(o, "--parallelism") == 0)
      a->o.parallelism = atoi(v);
    else if (strcmp(o, "--train-ratio") == 0)
      a->o.train_ratio = atof(v);
    else if (strcmp(o, "--seed") == 0)
      a->o.seed = strtoull(v, NULL, 10);
    else
      return usage("unknown option", o);
  }
  if (!a->x || !a->y || !a->grid)
    return usage("X.npy, y.npy and --grid are required", NULL);
  return 0;
}

/* A frame with "features" from X (2-d float32 or float64) and, when y is
 * given, "label" (int64 from any integer-valued dtype). */
static int load_frame(dlp_ctx *ctx, const char *xp, const char *yp,
                      dlp_frame **out) {
  dlp_err e = {0};
  dlp_npy_array x = {0}, y = {0};
  int rc = dlp_npy_load_array(&e, xp, (uint64_t)1 << 32, &x);
  if (rc == DLP_OK && yp) rc = dlp_npy_load_array(&e, yp, 1 << 28, &y);
  if (rc != DLP_OK) return dlp_fail_from(ctx, &e);
  size_t n = x.ndim == 2 ? (size_t)x.dims[0] : 0, d = (size_t)x.dims[1];
  if (!n || (x.dtype != 'f' && x.dtype != 'd') ||
      (yp && (y.ndim != 1 || (size_t)y.dims[0] != n)))
    rc = dlp_fail(ctx, DLP_ERR_ARG, "X must be n x d floats, y n values");
  float *row = rc == DLP_OK ? malloc(d * sizeof *row) : NULL;
  dlp_frame *f = NULL;
  if (rc == DLP_OK) rc = dlp_frame_new(ctx, &f);
  if (rc == DLP_OK)
    rc = dlp_frame_add_column(ctx, f, "features", DLP_TYPE_VECTOR, d);
  if (rc == DLP_OK && yp)
    rc = dlp_frame_add_column(ctx, f, "label", DLP_TYPE_INT64, 0);
  for (size_t i = 0; rc == DLP_OK && i < n; i++) {
    size_t r;
    for (size_t j = 0; j < d; j++)
      row[j] = x.dtype == 'f' ? ((float *)x.data)[i * d + j]
                              : (float)((double *)x.data)[i * d + j];
    rc = dlp_frame_add_row(ctx, f, &r);
    if (rc == DLP_OK) rc = dlp_frame_set_vector(ctx, f, 0, r, row);
    if (rc == DLP_OK && yp) {
      int64_t lab = y.dtype == 'q'   ? ((int64_t *)y.data)[i]
                    : y.dtype == 'd' ? (int64_t)((double *)y.data)[i]
                    : y.dtype == 'f' ? (int64_t)((float *)y.data)[i]
                                     : ((uint8_t *)y.data)[i];
      rc = dlp_frame_set_int64(ctx, f, 1, r, lab);
    }
  }
  free(row);
  dlp_npy_array_free(&x);
  dlp_npy_array_free(&y);
  if (rc != DLP_OK) {
    dlp_frame_free(f);
    return rc;
  }
  *out = f;
  return DLP_OK;
}

static int make_pipeline(dlp_ctx *ctx, const tool_args *a, dlp_pipeline **p) {
  dlp_stage *s = NULL;
  int rc = dlp_pipeline_new(ctx, p);
  if (rc == DLP_OK) rc = dlp_stage_new(ctx, "LogisticRegression", &s);
  if (rc == DLP_OK && a->max_iter)
    rc = dlp_stage_set(ctx, s, "maxIter", a->max_iter);
  if (rc == DLP_OK && a->tol) rc = dlp_stage_set(ctx, s, "tol", a->tol);
  if (rc == DLP_OK) return dlp_pipeline_add(ctx, *p, s);
  dlp_stage_free(s);
  return rc;
}

static void print_folds(const tool_args *a, size_t n) {
  int *fold = calloc(n, sizeof *fold);
  if (a->o.folds >= 2)
    ml_tune_folds(n, a->o.folds, a->o.seed, fold);
  else
    ml_tune_split(n, a->o.train_ratio, a->o.seed, fold);
  printf("\"fold_of_row\": [");
  for (size_t i = 0; i < n; i++)
    printf("%s%d", i ? "," : "", fold[i]);
  printf("],\n");
  free(fold);
}

static void print_result(const tool_args *a, const dlp_tune_result *r) {
  int k = a->o.folds >= 2 ? a->o.folds : 1;
  printf("\"combos\": [\n");
  for (size_t c = 0; c < dlp_tune_result_count(r); c++) {
    printf("  {\"params\": \"%s\", \"mean\": %.17g, \"std\": %.17g, "
           "\"folds\": [",
           dlp_tune_result_params(r, c), dlp_tune_result_mean(r, c),
           dlp_tune_result_std(r, c));
    for (int f = 0; f < k; f++)
      printf("%s%.17g", f ? ", " : "", ml_tune_result_fold_metric(r, c, f));
    printf("]}%s\n", c + 1 < dlp_tune_result_count(r) ? "," : "");
  }
  printf("],\n\"best\": %zu", dlp_tune_result_best(r));
}

/* The refitted model's predictions on the rows of XT. */
static int print_test(dlp_ctx *ctx, const char *path, dlp_pipeline_model *pm) {
  dlp_frame *t = NULL, *pred = NULL;
  int rc = load_frame(ctx, path, NULL, &t);
  if (rc == DLP_OK) rc = dlp_pipeline_model_transform(ctx, pm, t, &pred);
  long c = rc == DLP_OK ? dlp_frame_col_index(pred, "prediction") : -1;
  if (rc == DLP_OK) printf(",\n\"test_pred\": [");
  for (size_t i = 0; c >= 0 && i < dlp_frame_nrows(pred); i++) {
    double v = -1;
    dlp_frame_get_double(pred, (size_t)c, i, &v);
    printf("%s%.0f", i ? "," : "", v);
  }
  if (rc == DLP_OK) printf("]");
  dlp_frame_free(pred);
  dlp_frame_free(t);
  return rc;
}

int main(int argc, char **argv) {
  tool_args a;
  int bad = parse(argc, argv, &a);
  if (bad) return bad;
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  dlp_frame *data = NULL;
  dlp_pipeline *p = NULL;
  dlp_param_grid *g = NULL;
  dlp_tune_result *r = NULL;
  int rc = load_frame(ctx, a.x, a.y, &data);
  if (rc == DLP_OK) rc = make_pipeline(ctx, &a, &p);
  if (rc == DLP_OK) rc = dlp_param_grid_new(ctx, &g);
  if (rc == DLP_OK) rc = dlp_param_grid_parse(ctx, g, a.grid);
  double t0 = dlp_now();
  if (rc == DLP_OK) rc = dlp_tune(ctx, p, g, data, &a.o, &r);
  if (rc == DLP_OK) {
    printf("{\"seconds\": %.3f,\n", dlp_now() - t0);
    print_folds(&a, dlp_frame_nrows(data));
    print_result(&a, r);
    dlp_pipeline_model *pm = dlp_tune_result_take_model(r);
    if (a.test) rc = print_test(ctx, a.test, pm);
    if (rc == DLP_OK && a.save)
      rc = dlp_pipeline_model_save(ctx, pm, a.save, 1);
    dlp_pipeline_model_free(pm);
    printf("}\n");
  }
  if (rc != DLP_OK) fprintf(stderr, "tunetool: %s\n", dlp_errmsg(ctx));
  dlp_tune_result_free(r);
  dlp_param_grid_free(g);
  dlp_pipeline_free(p);
  dlp_frame_free(data);
  dlp_ctx_free(ctx);
  return rc == DLP_OK ? 0 : 1;
}
