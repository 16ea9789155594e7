/* ml.h - the ml layer's internal interface: logistic regression training,
 * the optimisers, stages and their parameter tables, evaluation helpers.
 *
 * The flow inside the layer (the public face is the "Machine learning"
 * section of include/dlp.h):
 *
 *     ml_lr_params p;  ml_lr_params_init(&p);  p.reg_param = 0.05;
 *     ml_lr_fit fit;                 // zeroed by ml_lr_train
 *     if (ml_lr_train(ctx, X, n, d, y, NULL, &p, &fit) != DLP_OK) ...
 *     double raw[K], prob[K], pred;
 *     ml_lr_predict_row(&fit, x, raw, prob, &pred);
 *     ml_lr_fit_clear(&fit);
 *
 * Files:
 *   optim.c     L-BFGS and OWL-QN (Andrew & Gao 2007) on a dense objective
 *   logreg.c    LogisticRegression: MLlib's objective, standardization,
 *               binomial/multinomial, weighted rows, threaded gradient
 *   params.c    stage classes and their parameter descriptions (data)
 *   stage.c     dlp_stage: parameter values, set/get/validate
 *   pipeline.c  dlp_pipeline, fit and transform; the stage kinds
 *   persist.c   save/load of pipeline models (JSON manifest + .npy)
 *   stage.h     struct dlp_stage, dlp_pipeline, dlp_pipeline_model (for
 *               the files that build stages: pipeline, persist, tune)
 *   tune.c      parameter grids, CrossValidator, TrainValidationSplit
 *   eval.c      multiclass and binary metrics (MLlib's definitions)
 *   report.c    the self-contained HTML evaluation report
 */
#ifndef DLP_ML_H
#define DLP_ML_H

#include "core.h"

/* --- optim.c ------------------------------------------------------------- */

/* f(x) and its gradient g (length n) at x; returns DLP_OK or an error code
 * (e.g. cancelled). */
typedef int (*ml_objective_fn)(void *user, const double *x, double *f,
                               double *g);

typedef struct ml_optim_opts {
  int max_iter;   /* iterations (each one line search) */
  double tol;     /* stop when |f_k - f_{k-1}| / max(|f_k|, |f_{k-1}|, 1e-?) < tol,
                     Breeze's relative function-value test as MLlib uses it */
  int memory;     /* pairs kept, default 10 */
  /* OWL-QN: l1[i] >= 0 is the L1 weight of coordinate i (NULL: L-BFGS, no
   * L1 part). The minimised objective is f(x) + sum_i l1[i] |x_i|. */
  const double *l1;
} ml_optim_opts;

typedef struct ml_optim_result {
  int iterations;
  double f;          /* final objective (with the L1 part) */
  double *history;   /* iterations + 1 values (malloc'd), or NULL */
  int converged;     /* 1: tol reached; 0: max_iter or line search failed */
} ml_optim_result;

/* Minimises from x (n values, overwritten by the solution). */
int ml_minimize(dlp_ctx *ctx, ml_objective_fn fn, void *user, double *x,
                size_t n, const ml_optim_opts *o, ml_optim_result *res);

/* --- logreg.c ------------------------------------------------------------ */

typedef enum ml_family {
  ML_FAMILY_AUTO = 0,
  ML_FAMILY_BINOMIAL,
  ML_FAMILY_MULTINOMIAL
} ml_family;

typedef struct ml_lr_params {
  int max_iter;            /* 100 */
  double reg_param;        /* 0 */
  double elastic_net;      /* 0: L2 ... 1: L1 */
  double tol;              /* 1e-6 */
  int fit_intercept;       /* 1 */
  int standardization;     /* 1 */
  ml_family family;        /* auto */
  double threshold;        /* 0.5, binomial only */
  int64_t n_classes;       /* 0: max label + 1 (at least 2); else declared
                              (a StringIndexer's label count), > max label */
  int threads;             /* 0: the context's */
} ml_lr_params;
void ml_lr_params_init(ml_lr_params *p);

typedef struct ml_lr_fit {
  int multinomial;      /* 0: one coefficient row (binomial) */
  int64_t n_classes;    /* >= 2 */
  size_t k;             /* coefficient rows: 1 or n_classes */
  size_t dim;
  double *coef;         /* k * dim, original feature scale */
  double *intercept;    /* k */
  double threshold;
  int iterations;
  double objective;
  double *history;      /* iterations + 1 */
} ml_lr_fit;

/* Fits on n rows of d float features (row-major X), labels y[i] in
 * {0, 1, ..., K-1} (integers as doubles; K = max + 1, at least 2), optional
 * row weights w (NULL: 1). The objective is MLlib's:
 *   (1/sum w) sum_i w_i loss_i + reg ((1-a)/2 ||b||^2 + a ||b||_1)
 * with the penalty on standardized coefficients when standardization is 1,
 * never on intercepts. */
int ml_lr_train(dlp_ctx *ctx, const float *X, size_t n, size_t d,
                const double *y, const double *w, const ml_lr_params *p,
                ml_lr_fit *out);
/* One row: raw (k == 1: 2 values, [-m, m]; else K margins), probability (2
 * or K values, may be NULL) and prediction (the class index). */
void ml_lr_predict_row(const ml_lr_fit *fit, const float *x, double *raw,
                       double *prob, double *pred);
/* Number of values in raw/probability: 2 for binomial, K for multinomial. */
size_t ml_lr_n_outputs(const ml_lr_fit *fit);
void ml_lr_fit_clear(ml_lr_fit *fit);
/* MLlib's objective of (coef, intercept) on the data (for tests/bench). */
double ml_lr_objective(const ml_lr_fit *fit, const float *X, size_t n,
                       size_t d, const double *y, const double *w,
                       const ml_lr_params *p);

/* --- stage.c / pipeline.c: what tune.c builds on ------------------------- */

/* 1 when the stage is an estimator (StringIndexer, LogisticRegression),
 * 0 for a transformer. */
int ml_stage_is_estimator(const dlp_stage *s);
/* A deep copy of s (class and every parameter value, fitted state too). */
int ml_stage_clone(dlp_ctx *ctx, const dlp_stage *s, dlp_stage **out);
int ml_pipeline_clone(dlp_ctx *ctx, const dlp_pipeline *p, dlp_pipeline **out);
/* Runs stages [0, n) of p, which must all be transformers, over in. */
int ml_pipeline_transform_prefix(dlp_ctx *ctx, const dlp_pipeline *p, size_t n,
                                 const dlp_frame *in, dlp_frame **out);
/* Like dlp_pipeline_fit, but data is what stages [0, first) (transformers)
 * already produced: they are copied into the model unchanged and not run. */
int ml_pipeline_fit_from(dlp_ctx *ctx, const dlp_pipeline *p, size_t first,
                         const dlp_frame *data, dlp_pipeline_model **out);

/* --- eval.c (the public dlp_evaluate* functions live there too) ---------- */

/* Binary areas over n (score, label in {0,1}, weight) triples, MLlib's
 * BinaryClassificationMetrics without binning: ROC and PR by the trapezoid
 * rule over the distinct score thresholds, PR starting at
 * (0, precision of the first threshold). */
int ml_binary_areas(dlp_ctx *ctx, const double *score, const double *label,
                    const double *weight, size_t n, double *auc_roc,
                    double *auc_pr);

/* --- tune.c --------------------------------------------------------------- */

/* CrossValidator's folds: fold_of_row[i] in [0, k) for each of n rows, the
 * rows shuffled with dlp_rng(seed) and cut into k runs of n/k or n/k + 1. */
void ml_tune_folds(size_t n, int k, uint64_t seed, int *fold_of_row);
/* TrainValidationSplit: fold_of_row[i] = 0 for the ml_tune_n_valid(n,
 * train_ratio) validation rows (chosen with dlp_rng(seed)), 1 for the rest. */
void ml_tune_split(size_t n, double train_ratio, uint64_t seed,
                   int *fold_of_row);
/* round(n * (1 - train_ratio)), kept in [1, n - 1]. */
size_t ml_tune_n_valid(size_t n, double train_ratio);
/* The metric of combination i on fold f (NAN out of range), for tests. */
double ml_tune_result_fold_metric(const dlp_tune_result *r, size_t i, int fold);

#endif /* DLP_ML_H */
