/* lrfit.c - fits ml_lr_train on .npy arrays, for the scikit-learn reference
 * test (tests/ref/test_logreg_vs_sklearn.py) and the bench (bench/logreg.py):
 *   lrfit X.npy y.npy [--w W.npy] [--reg R] [--enet A] [--max-iter N]
 *         [--tol T] [--no-intercept] [--no-standardization]
 *         [--family auto|binomial|multinomial] [--n-classes K] [--threads N]
 *         [--predict XT.npy] --out PREFIX
 * writes PREFIX_coef.npy (k x d float64), PREFIX_intercept.npy (k), with
 * --predict also PREFIX_prob.npy (rows x outputs) and PREFIX_pred.npy, and
 * prints one JSON line {"objective":..,"iterations":..,"k":..,
 * "n_classes":..,"fit_seconds":..}. Bad arguments exit 2, failures 1. */
#include "ml/ml.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lrfit_args {
  const char *x, *y, *w, *out, *predict;
  ml_lr_params p;
} lrfit_args;

static int usage(const char *msg, const char *arg) {
  fprintf(stderr, "lrfit: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  fprintf(stderr, "usage: lrfit X.npy y.npy [--w W.npy] [--reg R] [--enet A] "
                  "[--max-iter N] [--tol T] [--no-intercept] "
                  "[--no-standardization] [--family F] [--n-classes K] "
                  "[--threads N] [--predict XT.npy] --out PREFIX\n");
  return 2;
}

static int num(const char *s, double *v) {
  char *end;
  *v = strtod(s, &end);
  return end != s && *end == 0;
}

static int parse_family(const char *s, ml_family *f) {
  if (strcmp(s, "auto") == 0)
    *f = ML_FAMILY_AUTO;
  else if (strcmp(s, "binomial") == 0)
    *f = ML_FAMILY_BINOMIAL;
  else if (strcmp(s, "multinomial") == 0)
    *f = ML_FAMILY_MULTINOMIAL;
  else
    return 0;
  return 1;
}

/* Returns 0 or the exit status for bad arguments. */
static int parse(int argc, char **argv, lrfit_args *a) {
  memset(a, 0, sizeof *a);
  ml_lr_params_init(&a->p);
  int pos = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    double v = 0;
    if (strcmp(o, "--no-intercept") == 0) {
      a->p.fit_intercept = 0;
      continue;
    }
    if (strcmp(o, "--no-standardization") == 0) {
      a->p.standardization = 0;
      continue;
    }
    if (strncmp(o, "--", 2) != 0) {
      if (pos == 0)
        a->x = o;
      else if (pos == 1)
        a->y = o;
      else
        return usage("unexpected argument", o);
      pos++;
      continue;
    }
    if (i + 1 >= argc) return usage("missing value for", o);
    const char *val = argv[++i];
    int isnum = num(val, &v);
    if (strcmp(o, "--w") == 0)
      a->w = val;
    else if (strcmp(o, "--out") == 0)
      a->out = val;
    else if (strcmp(o, "--predict") == 0)
      a->predict = val;
    else if (strcmp(o, "--family") == 0) {
      if (!parse_family(val, &a->p.family)) return usage("bad family", val);
    } else if (!isnum)
      return usage("not a number", val);
    else if (strcmp(o, "--reg") == 0)
      a->p.reg_param = v;
    else if (strcmp(o, "--enet") == 0)
      a->p.elastic_net = v;
    else if (strcmp(o, "--max-iter") == 0)
      a->p.max_iter = (int)v;
    else if (strcmp(o, "--tol") == 0)
      a->p.tol = v;
    else if (strcmp(o, "--threads") == 0)
      a->p.threads = (int)v;
    else if (strcmp(o, "--n-classes") == 0)
      a->p.n_classes = (int64_t)v;
    else
      return usage("unknown option", o);
  }
  if (!a->x || !a->y) return usage("X.npy and y.npy are required", NULL);
  if (!a->out) return usage("--out PREFIX is required", NULL);
  return 0;
}

/* Loads a .npy as n values of double (any dtype the loader knows). */
static double *load_doubles(dlp_err *e, const char *path, int64_t *n,
                            int64_t *cols) {
  dlp_npy_array a;
  if (dlp_npy_load_array(e, path, (uint64_t)1 << 34, &a) != DLP_OK) return NULL;
  int64_t total = 1;
  for (int i = 0; i < a.ndim; i++)
    total *= a.dims[i];
  *n = a.ndim > 0 ? a.dims[0] : 1;
  *cols = *n > 0 ? total / *n : 0;
  double *v = malloc((size_t)(total ? total : 1) * sizeof *v);
  for (int64_t i = 0; v && i < total; i++) {
    switch (a.dtype) {
    case 'f':
      v[i] = ((float *)a.data)[i];
      break;
    case 'd':
      v[i] = ((double *)a.data)[i];
      break;
    case 'q':
      v[i] = (double)((int64_t *)a.data)[i];
      break;
    default:
      v[i] = ((uint8_t *)a.data)[i];
      break;
    }
  }
  dlp_npy_array_free(&a);
  if (!v) dlp_err_set(e, DLP_ERR_NOMEM, "no memory for %s", path);
  return v;
}

static float *to_floats(const double *v, size_t n) {
  float *f = malloc((n ? n : 1) * sizeof *f);
  for (size_t i = 0; f && i < n; i++)
    f[i] = (float)v[i];
  return f;
}

static int save(dlp_err *e, const char *prefix, const char *suffix,
                const double *v, int64_t rows, int64_t cols, int ndim) {
  char path[4096];
  snprintf(path, sizeof path, "%s_%s.npy", prefix, suffix);
  dlp_npy_array a = {.dtype = 'd',
                     .ndim = ndim,
                     .dims = {rows, cols},
                     .data = (void *)v,
                     .nbytes = (size_t)(rows * (ndim > 1 ? cols : 1)) *
                               sizeof(double)};
  return dlp_npy_save_array(e, path, &a);
}

/* Writes probabilities and predictions of the rows in path. */
static int predict(dlp_err *e, const ml_lr_fit *fit, const char *path,
                   const char *prefix) {
  int64_t n, d;
  double *xd = load_doubles(e, path, &n, &d);
  if (!xd) return e->code;
  if ((size_t)d != fit->dim) {
    free(xd);
    return dlp_err_set(e, DLP_ERR_ARG, "%s has %lld columns, the fit %zu", path,
                       (long long)d, fit->dim);
  }
  float *x = to_floats(xd, (size_t)(n * d));
  size_t k = ml_lr_n_outputs(fit);
  double *prob = malloc((size_t)n * k * sizeof *prob + 1);
  double *pred = malloc((size_t)n * sizeof *pred + 1);
  double *raw = malloc(k * sizeof *raw);
  int rc = x && prob && pred && raw ? DLP_OK : DLP_ERR_NOMEM;
  for (int64_t i = 0; rc == DLP_OK && i < n; i++)
    ml_lr_predict_row(fit, x + i * d, raw, prob + i * k, pred + i);
  if (rc == DLP_OK) rc = save(e, prefix, "prob", prob, n, (int64_t)k, 2);
  if (rc == DLP_OK) rc = save(e, prefix, "pred", pred, n, 1, 1);
  free(xd), free(x), free(prob), free(pred), free(raw);
  return rc;
}

static int run(dlp_ctx *ctx, const lrfit_args *a) {
  dlp_err e = {0};
  int64_t n = 0, d = 0, ny = 0, c1 = 0, nw = 0;
  double *xd = load_doubles(&e, a->x, &n, &d);
  double *y = xd ? load_doubles(&e, a->y, &ny, &c1) : NULL;
  double *w = y && a->w ? load_doubles(&e, a->w, &nw, &c1) : NULL;
  float *x = y && (w || !a->w) ? to_floats(xd, (size_t)(n * d)) : NULL;
  free(xd);
  int rc = e.code;
  if (rc == DLP_OK && (ny != n || (a->w && nw != n)))
    rc = dlp_err_set(&e, DLP_ERR_ARG, "y (%lld) and w must have %lld rows",
                     (long long)ny, (long long)n);
  ml_lr_fit fit;
  memset(&fit, 0, sizeof fit);
  double t0 = dlp_now();
  if (rc == DLP_OK) {
    rc = ml_lr_train(ctx, x, (size_t)n, (size_t)d, y, w, &a->p, &fit);
    if (rc != DLP_OK) dlp_err_set(&e, rc, "%s", dlp_errmsg(ctx));
  }
  double secs = dlp_now() - t0;
  if (rc == DLP_OK)
    rc = save(&e, a->out, "coef", fit.coef, (int64_t)fit.k, d, 2);
  if (rc == DLP_OK)
    rc = save(&e, a->out, "intercept", fit.intercept, (int64_t)fit.k, 1, 1);
  if (rc == DLP_OK && a->predict) rc = predict(&e, &fit, a->predict, a->out);
  if (rc == DLP_OK)
    printf("{\"objective\":%.17g,\"iterations\":%d,\"k\":%zu,"
           "\"n_classes\":%lld,\"fit_seconds\":%.6f}\n",
           fit.objective, fit.iterations, fit.k, (long long)fit.n_classes,
           secs);
  else
    fprintf(stderr, "lrfit: %s (%s)\n", e.msg, dlp_errstr(rc));
  ml_lr_fit_clear(&fit);
  free(x), free(y), free(w);
  return rc == DLP_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  lrfit_args a;
  int bad = parse(argc, argv, &a);
  if (bad) return bad;
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  int rc = run(ctx, &a);
  dlp_ctx_free(ctx);
  return rc;
}
