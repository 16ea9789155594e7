/* stage_lr.c - the LogisticRegression stage: gathers features, labels and
 * weights from the frame for ml_lr_train, and adds MLlib's rawPrediction,
 * probability and prediction columns when transforming. */
#include "stage.h"

#include "frame/frame.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The features column: a vector column without nulls. */
static const dlp_column *features_column(dlp_ctx *ctx, const dlp_stage *s,
                                         const dlp_frame *f, int allow_null) {
  long c = ml_need_column(ctx, s, f, "featuresCol");
  if (c < 0) return NULL;
  const dlp_column *col = &f->cols[c];
  if (col->type != DLP_TYPE_VECTOR) {
    dlp_fail(ctx, DLP_ERR_SCHEMA, "%s: featuresCol '%s' holds %s, not vectors",
             s->cls->name, col->name, dlp_type_name(col->type));
    return NULL;
  }
  for (size_t r = 0; !allow_null && r < f->nrows; r++)
    if (!col->valid[r]) {
      dlp_fail(ctx, DLP_ERR_ARG,
               "%s: row %zu has null features in '%s' "
               "(drop the rows whose image could not be read)",
               s->cls->name, r, col->name);
      return NULL;
    }
  return col;
}

/* Numbers of a label or weight column as doubles, no nulls. */
static double *number_column(dlp_ctx *ctx, const dlp_stage *s,
                             const dlp_frame *f, const char *param) {
  long c = ml_need_column(ctx, s, f, param);
  if (c < 0) return NULL;
  const dlp_column *col = &f->cols[c];
  if (col->type == DLP_TYPE_STRING) {
    dlp_fail(ctx, DLP_ERR_SCHEMA,
             "%s '%s' holds strings: add a StringIndexer "
             "(dlp fit does) and set %s to its outputCol",
             param, col->name, param);
    return NULL;
  }
  if (col->type != DLP_TYPE_INT64 && col->type != DLP_TYPE_DOUBLE) {
    dlp_fail(ctx, DLP_ERR_SCHEMA, "%s '%s' holds %s, not numbers", param,
             col->name, dlp_type_name(col->type));
    return NULL;
  }
  double *v = dlp_malloc_array(f->nrows ? f->nrows : 1, sizeof *v);
  if (!v) {
    dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu values", f->nrows);
    return NULL;
  }
  for (size_t r = 0; r < f->nrows; r++) {
    if (!col->valid[r]) {
      dlp_fail(ctx, DLP_ERR_ARG, "%s: row %zu has a null value in %s '%s'",
               s->cls->name, r, param, col->name);
      free(v);
      return NULL;
    }
    v[r] = col->type == DLP_TYPE_INT64 ? (double)col->u.i[r] : col->u.d[r];
  }
  return v;
}

/* The class count a StringIndexerModel before this stage declares for its
 * label column (0: none; the trainer then uses max label + 1). */
static int64_t declared_classes(const dlp_stage *s, dlp_stage *const *prev,
                                size_t nprev) {
  const char *label = ml_stage_param(s, "labelCol");
  for (size_t i = nprev; i-- > 0;)
    if (prev[i]->cls->kind == ML_INDEXER_MODEL &&
        strcmp(ml_stage_param(prev[i], "outputCol"), label) == 0)
      return (int64_t)prev[i]->n_labels;
  return 0;
}

static int check_labels(dlp_ctx *ctx, const double *y, size_t n,
                        int64_t *n_classes) {
  double mx = 0;
  for (size_t r = 0; r < n; r++) {
    if (!(y[r] >= 0) || y[r] != floor(y[r]) || y[r] > 1e9)
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "LogisticRegression: label %g in row "
                      "%zu is not a class index (0, 1, 2, ...)",
                      y[r], r);
    if (y[r] > mx) mx = y[r];
  }
  if (*n_classes && (double)*n_classes <= mx) *n_classes = (int64_t)mx + 1;
  return DLP_OK;
}

static void lr_params_from(const dlp_stage *s, dlp_ctx *ctx, ml_lr_params *p) {
  ml_lr_params_init(p);
  p->max_iter = (int)ml_stage_param_double(s, "maxIter");
  p->reg_param = ml_stage_param_double(s, "regParam");
  p->elastic_net = ml_stage_param_double(s, "elasticNetParam");
  p->tol = ml_stage_param_double(s, "tol");
  p->fit_intercept = ml_stage_param_bool(s, "fitIntercept");
  p->standardization = ml_stage_param_bool(s, "standardization");
  const char *fam = ml_stage_param(s, "family");
  p->family = strcmp(fam, "binomial") == 0      ? ML_FAMILY_BINOMIAL
              : strcmp(fam, "multinomial") == 0 ? ML_FAMILY_MULTINOMIAL
                                                : ML_FAMILY_AUTO;
  p->threshold = ml_stage_param_double(s, "threshold");
  p->threads = ctx ? ctx->threads : 0;
}

int ml_lr_stage_fit(dlp_ctx *ctx, const dlp_stage *s, const dlp_frame *data,
                    dlp_stage *const *prev, size_t nprev, dlp_stage **out) {
  const dlp_column *fc = features_column(ctx, s, data, 0);
  if (!fc) return dlp_errcode(ctx);
  if (data->nrows == 0)
    return dlp_fail(ctx, DLP_ERR_ARG, "LogisticRegression: no rows to fit");
  double *y = number_column(ctx, s, data, "labelCol"), *w = NULL;
  if (!y) return dlp_errcode(ctx);
  ml_lr_params p;
  lr_params_from(s, ctx, &p);
  p.n_classes = declared_classes(s, prev, nprev);
  int rc = check_labels(ctx, y, data->nrows, &p.n_classes);
  if (rc == DLP_OK && *ml_stage_param(s, "weightCol") &&
      !(w = number_column(ctx, s, data, "weightCol")))
    rc = dlp_errcode(ctx);
  dlp_stage *m = NULL;
  if (rc == DLP_OK)
    rc = ml_stage_make(ctx, ml_class_find("LogisticRegressionModel"), &m);
  if (rc == DLP_OK) rc = ml_stage_copy_params(ctx, m, s);
  if (rc == DLP_OK)
    rc = ml_lr_train(ctx, fc->u.v, data->nrows, fc->dim, y, w, &p, &m->lr);
  if (rc == DLP_OK)
    m->has_lr = 1;
  else if (m)
    ml_lr_fit_clear(&m->lr);
  free(y);
  free(w);
  if (rc != DLP_OK) {
    dlp_stage_free(m);
    return rc;
  }
  *out = m;
  return dlp_ok(ctx);
}

/* --- transform: rows in parallel, straight into the new columns ---------- */

typedef struct lr_job {
  const ml_lr_fit *fit;
  const dlp_column *x;
  dlp_column *raw, *prob, *pred;
  size_t n, k, chunk;
  double *scratch; /* 2 * k per worker */
} lr_job;

static void lr_rows(size_t t, void *user, int worker) {
  lr_job *j = user;
  double *raw = j->scratch + (size_t)worker * 2 * j->k, *prob = raw + j->k;
  size_t end = (t + 1) * j->chunk < j->n ? (t + 1) * j->chunk : j->n;
  for (size_t r = t * j->chunk; r < end; r++) {
    if (!j->x->valid[r]) continue; /* null features: null outputs */
    double pred;
    ml_lr_predict_row(j->fit, j->x->u.v + r * j->x->dim, raw, prob, &pred);
    for (size_t c = 0; c < j->k; c++) {
      j->raw->u.v[r * j->k + c] = (float)raw[c];
      j->prob->u.v[r * j->k + c] = (float)prob[c];
    }
    j->pred->u.d[r] = pred;
    j->raw->valid[r] = j->prob->valid[r] = j->pred->valid[r] = 1;
  }
}

int ml_lr_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f) {
  if (!s->has_lr)
    return dlp_fail(ctx, DLP_ERR_ARG, "LogisticRegressionModel has no fit");
  const dlp_column *fc = features_column(ctx, s, *f, 1);
  if (!fc) return dlp_errcode(ctx);
  if (fc->dim != s->lr.dim)
    return dlp_fail(ctx, DLP_ERR_SCHEMA,
                    "LogisticRegressionModel: features "
                    "'%s' have %zu values per row; the model was fitted on %zu",
                    fc->name, fc->dim, s->lr.dim);
  /* the threshold may have been set on the fitted stage since */
  s->lr.threshold = ml_stage_param_double(s, "threshold");
  size_t k = ml_lr_n_outputs(&s->lr);
  long xc = fc - (*f)->cols;
  long rawc = ml_add_output(ctx, s, *f, "rawPredictionCol", DLP_TYPE_VECTOR, k);
  long pc = rawc >= 0 ? ml_add_output(ctx, s, *f, "probabilityCol",
                                      DLP_TYPE_VECTOR, k)
                      : -1;
  long dc = pc >= 0
                ? ml_add_output(ctx, s, *f, "predictionCol", DLP_TYPE_DOUBLE, 0)
                : -1;
  if (dc < 0) return dlp_errcode(ctx);
  int threads = ctx && ctx->threads > 0 ? ctx->threads : 1;
  dlp_column *cols = (*f)->cols;
  lr_job j = {.fit = &s->lr,
              .x = &cols[xc],
              .raw = &cols[rawc],
              .prob = &cols[pc],
              .pred = &cols[dc],
              .n = (*f)->nrows,
              .k = k,
              .chunk = 256};
  j.scratch = dlp_malloc_array((size_t)threads * 2, k * sizeof(double));
  if (!j.scratch) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for scratch");
  bool done = dlp_parallel_for((j.n + j.chunk - 1) / j.chunk, threads, lr_rows,
                               &j, ctx, "predicting");
  free(j.scratch);
  if (!done) return dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  return dlp_ok(ctx);
}
