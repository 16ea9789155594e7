/* pipeline.c - dlp_pipeline and dlp_pipeline_model: fitting the stages in
 * order (MLlib's Pipeline.fit), transforming with the fitted ones, and the
 * prefix/clone helpers the tuner builds on. */
#include "stage.h"

#include "frame/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- containers ----------------------------------------------------------- */

static int stages_push(dlp_ctx *ctx, dlp_stage ***v, size_t *n, size_t *cap,
                       dlp_stage *s) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 8;
    dlp_stage **nv = dlp_realloc_array(*v, c, sizeof *nv);
    if (!nv) {
      dlp_stage_free(s);
      return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a stage");
    }
    *v = nv;
    *cap = c;
  }
  (*v)[(*n)++] = s;
  return dlp_ok(ctx);
}

int dlp_pipeline_new(dlp_ctx *ctx, dlp_pipeline **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "dlp_pipeline_new: out is NULL");
  *out = calloc(1, sizeof **out);
  return *out ? dlp_ok(ctx)
              : dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a pipeline");
}

static void stages_free(dlp_stage **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    dlp_stage_free(v[i]);
  free(v);
}

void dlp_pipeline_free(dlp_pipeline *p) {
  if (!p) return;
  stages_free(p->stages, p->n);
  free(p);
}

int dlp_pipeline_add(dlp_ctx *ctx, dlp_pipeline *p, dlp_stage *s) {
  if (!p || !s) {
    dlp_stage_free(s);
    return dlp_fail(ctx, DLP_ERR_ARG, "dlp_pipeline_add: %s is NULL",
                    p ? "stage" : "pipeline");
  }
  if (s->cls->kind == ML_INDEXER_MODEL || s->cls->kind == ML_LR_MODEL) {
    dlp_stage_free(s);
    return dlp_fail(ctx, DLP_ERR_ARG, "a pipeline takes unfitted stages");
  }
  return stages_push(ctx, &p->stages, &p->n, &p->cap, s);
}

size_t dlp_pipeline_nstages(const dlp_pipeline *p) { return p ? p->n : 0; }

dlp_stage *dlp_pipeline_stage(dlp_pipeline *p, size_t i) {
  return p && i < p->n ? p->stages[i] : NULL;
}

void dlp_pipeline_model_free(dlp_pipeline_model *pm) {
  if (!pm) return;
  stages_free(pm->stages, pm->n);
  free(pm);
}

int ml_model_append(dlp_ctx *ctx, dlp_pipeline_model *pm, dlp_stage *s) {
  return stages_push(ctx, &pm->stages, &pm->n, &pm->cap, s);
}

size_t dlp_pipeline_model_nstages(const dlp_pipeline_model *pm) {
  return pm ? pm->n : 0;
}

dlp_stage *dlp_pipeline_model_stage(dlp_pipeline_model *pm, size_t i) {
  return pm && i < pm->n ? pm->stages[i] : NULL;
}

const char *const *dlp_pipeline_model_labels(const dlp_pipeline_model *pm,
                                             size_t *n) {
  for (size_t i = 0; pm && i < pm->n; i++)
    if (pm->stages[i]->cls->kind == ML_INDEXER_MODEL) {
      if (n) *n = pm->stages[i]->n_labels;
      return (const char *const *)pm->stages[i]->labels;
    }
  if (n) *n = 0;
  return NULL;
}

int ml_pipeline_clone(dlp_ctx *ctx, const dlp_pipeline *p, dlp_pipeline **out) {
  int rc = dlp_pipeline_new(ctx, out);
  for (size_t i = 0; rc == DLP_OK && i < p->n; i++) {
    dlp_stage *c;
    rc = ml_stage_clone(ctx, p->stages[i], &c);
    if (rc == DLP_OK) rc = dlp_pipeline_add(ctx, *out, c);
  }
  if (rc != DLP_OK) {
    dlp_pipeline_free(*out);
    *out = NULL;
  }
  return rc;
}

int dlp_pipeline_model_lr_summary(dlp_ctx *ctx, const dlp_pipeline_model *pm,
                                  dlp_lr_summary *out) {
  if (!pm || !out)
    return dlp_fail(ctx, DLP_ERR_ARG, "lr_summary: %s is NULL",
                    pm ? "out" : "model");
  for (size_t i = 0; i < pm->n; i++) {
    const dlp_stage *s = pm->stages[i];
    if (s->cls->kind != ML_LR_MODEL || !s->has_lr) continue;
    *out = (dlp_lr_summary){.multinomial = s->lr.multinomial,
                            .n_classes = s->lr.n_classes,
                            .n_rows_coef = s->lr.k,
                            .dim = s->lr.dim,
                            .coefficients = s->lr.coef,
                            .intercepts = s->lr.intercept,
                            .iterations = s->lr.iterations,
                            .objective = s->lr.objective,
                            .objective_history = s->lr.history};
    return dlp_ok(ctx);
  }
  return dlp_fail(ctx, DLP_ERR_NOT_FOUND,
                  "the pipeline model has no LogisticRegressionModel stage");
}

/* --- columns ------------------------------------------------------------- */

/* Copies column s into d (same type, d has the rows, all null): fixed-size
 * values in one memcpy, strings and images cell by cell. */
static int copy_column(dlp_ctx *ctx, dlp_frame *df, size_t c,
                       const dlp_column *s, size_t n) {
  dlp_column *d = &df->cols[c];
  memcpy(d->valid, s->valid, n);
  switch (s->type) {
  case DLP_TYPE_INT64:
    memcpy(d->u.i, s->u.i, n * sizeof(int64_t));
    return DLP_OK;
  case DLP_TYPE_DOUBLE:
    memcpy(d->u.d, s->u.d, n * sizeof(double));
    return DLP_OK;
  case DLP_TYPE_VECTOR:
    memcpy(d->u.v, s->u.v, n * s->dim * sizeof(float));
    return DLP_OK;
  case DLP_TYPE_STRING:
  case DLP_TYPE_IMAGE:
    break;
  }
  memset(d->valid, 0, n);
  int rc = DLP_OK;
  for (size_t r = 0; rc == DLP_OK && r < n; r++) {
    if (!s->valid[r]) continue;
    if (s->type == DLP_TYPE_STRING) {
      rc = dlp_frame_set_string(ctx, df, c, r, s->u.s[r]);
    } else {
      const dlp_img_cell *i = &s->u.img[r];
      dlp_image_meta m = {i->origin, i->height, i->width, i->n_channels,
                          i->mode,   i->error,  i->bytes, i->n_bytes};
      rc = dlp_frame_set_image_meta(ctx, df, c, r, &m);
    }
  }
  return rc;
}

int ml_frame_copy(dlp_ctx *ctx, const dlp_frame *f, dlp_frame **out) {
  int rc = dlp_frame_clone_schema(ctx, f, out);
  for (size_t r = 0; rc == DLP_OK && r < f->nrows; r++)
    rc = dlp_frame_add_row(ctx, *out, NULL);
  for (size_t c = 0; rc == DLP_OK && c < f->ncols; c++)
    rc = copy_column(ctx, *out, c, &f->cols[c], f->nrows);
  if (rc != DLP_OK) {
    dlp_frame_free(*out);
    *out = NULL;
  }
  return rc;
}

long ml_need_column(dlp_ctx *ctx, const dlp_stage *s, const dlp_frame *f,
                    const char *param) {
  const char *name = ml_stage_param(s, param);
  long c = dlp_frame_col_index(f, name);
  if (c >= 0) return c;
  char list[256] = "";
  for (size_t i = 0; i < dlp_frame_ncols(f); i++) {
    strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
    strncat(list, dlp_frame_col_name(f, i), sizeof list - strlen(list) - 1);
  }
  dlp_fail(ctx, DLP_ERR_NOT_FOUND,
           "%s: %s '%s' is not a column (there are: %s)", s->cls->name, param,
           name, list);
  return -1;
}

long ml_add_output(dlp_ctx *ctx, const dlp_stage *s, dlp_frame *f,
                   const char *param, dlp_type type, size_t dim) {
  const char *name = ml_stage_param(s, param);
  if (dlp_frame_col_index(f, name) >= 0) {
    dlp_fail(ctx, DLP_ERR_SCHEMA,
             "%s: %s '%s' is already a column; choose another name",
             s->cls->name, param, name);
    return -1;
  }
  if (dlp_frame_add_column(ctx, f, name, type, dim) != DLP_OK) return -1;
  return (long)dlp_frame_ncols(f) - 1;
}

/* --- the stage kinds, dispatched ------------------------------------------ */

int ml_stage_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f) {
  switch (s->cls->kind) {
  case ML_FEATURIZER:
    return ml_featurizer_apply(ctx, s, f);
  case ML_INDEXER_MODEL:
    return ml_indexer_apply(ctx, s, f);
  case ML_INDEX_TO_STRING:
    return ml_i2s_apply(ctx, s, f);
  case ML_LR_MODEL:
    return ml_lr_apply(ctx, s, f);
  case ML_INDEXER:
  case ML_LR:
    break;
  }
  return dlp_fail(ctx, DLP_ERR_ARG, "%s is an estimator: fit it first",
                  s->cls->name);
}

int ml_stage_fit(dlp_ctx *ctx, const dlp_stage *s, const dlp_frame *data,
                 dlp_stage *const *prev, size_t nprev, dlp_stage **out) {
  *out = NULL;
  if (s->cls->kind == ML_INDEXER) return ml_indexer_fit(ctx, s, data, out);
  if (s->cls->kind == ML_LR)
    return ml_lr_stage_fit(ctx, s, data, prev, nprev, out);
  return dlp_fail(ctx, DLP_ERR_ARG, "%s is not an estimator", s->cls->name);
}

/* --- fit ----------------------------------------------------------------- */

/* A copy of transformer s for the fitted model. An IndexToString without
 * labels takes those of the last StringIndexerModel fitted before it. */
static int fitted_transformer(dlp_ctx *ctx, const dlp_stage *s,
                              const dlp_pipeline_model *pm, dlp_stage **out) {
  int rc = ml_stage_clone(ctx, s, out);
  if (rc != DLP_OK || s->cls->kind != ML_INDEX_TO_STRING ||
      *ml_stage_param(s, "labels"))
    return rc;
  for (size_t i = pm->n; i-- > 0;) {
    const dlp_stage *p = pm->stages[i];
    if (p->cls->kind != ML_INDEXER_MODEL) continue;
    char *json = ml_labels_json(p->labels, p->n_labels);
    rc = json ? dlp_stage_set(ctx, *out, "labels", json)
              : dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for labels");
    free(json);
    break;
  }
  if (rc != DLP_OK) {
    dlp_stage_free(*out);
    *out = NULL;
  }
  return rc;
}

/* Applies fitted stage m to the data of the fit, copying the caller's
 * frame the first time (*cur is then owned: *owned == 1). */
static int fit_apply(dlp_ctx *ctx, dlp_stage *m, const dlp_frame **cur,
                     dlp_frame **owned) {
  if (!*owned) {
    int rc = ml_frame_copy(ctx, *cur, owned);
    if (rc != DLP_OK) return rc;
  }
  int rc = ml_stage_apply(ctx, m, owned);
  *cur = *owned;
  return rc;
}

static int fit_stage(dlp_ctx *ctx, const dlp_stage *s, const dlp_frame *cur,
                     dlp_pipeline_model *pm, size_t i, size_t n) {
  char what[96];
  snprintf(what, sizeof what, "%s %s", s->cls->estimator ? "fitting" : "adding",
           s->cls->name);
  if (dlp_progress(ctx, what, i, n, true))
    return dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  dlp_stage *m;
  int rc = s->cls->estimator ? ml_stage_fit(ctx, s, cur, pm->stages, pm->n, &m)
                             : fitted_transformer(ctx, s, pm, &m);
  if (rc != DLP_OK) return rc;
  return ml_model_append(ctx, pm, m);
}

int ml_pipeline_fit_from(dlp_ctx *ctx, const dlp_pipeline *p, size_t first,
                         const dlp_frame *data, dlp_pipeline_model **out) {
  if (!p || !data || !out)
    return dlp_fail(ctx, DLP_ERR_ARG, "pipeline fit: an argument is NULL");
  *out = NULL;
  if (first > p->n) first = p->n;
  size_t last_est = 0; /* one past the last estimator */
  for (size_t i = 0; i < p->n; i++)
    if (p->stages[i]->cls->estimator) last_est = i + 1;
  dlp_pipeline_model *pm = calloc(1, sizeof *pm);
  if (!pm) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a model");
  int rc = DLP_OK;
  for (size_t i = 0; rc == DLP_OK && i < first; i++) {
    dlp_stage *c;
    rc = fitted_transformer(ctx, p->stages[i], pm, &c);
    if (rc == DLP_OK) rc = ml_model_append(ctx, pm, c);
  }
  const dlp_frame *cur = data;
  dlp_frame *owned = NULL;
  for (size_t i = first; rc == DLP_OK && i < p->n; i++) {
    rc = fit_stage(ctx, p->stages[i], cur, pm, i, p->n);
    /* Stages after the last estimator need not see the data (MLlib). */
    if (rc == DLP_OK && i + 1 < last_est)
      rc = fit_apply(ctx, pm->stages[pm->n - 1], &cur, &owned);
  }
  dlp_frame_free(owned);
  if (rc != DLP_OK) {
    dlp_pipeline_model_free(pm);
    return rc;
  }
  dlp_progress(ctx, "fitted", p->n, p->n, true);
  *out = pm;
  return dlp_ok(ctx);
}

int dlp_pipeline_fit(dlp_ctx *ctx, const dlp_pipeline *p,
                     const dlp_frame *train, dlp_pipeline_model **out) {
  return ml_pipeline_fit_from(ctx, p, 0, train, out);
}

/* --- transform ----------------------------------------------------------- */

static int transform_stages(dlp_ctx *ctx, dlp_stage *const *stages, size_t n,
                            const dlp_frame *in, dlp_frame **out) {
  if (!in || !out)
    return dlp_fail(ctx, DLP_ERR_ARG, "transform: an argument is NULL");
  *out = NULL;
  dlp_frame *f;
  int rc = ml_frame_copy(ctx, in, &f);
  for (size_t i = 0; rc == DLP_OK && i < n; i++) {
    char what[96];
    snprintf(what, sizeof what, "transforming %s", stages[i]->cls->name);
    if (dlp_progress(ctx, what, i, n, true))
      rc = dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
    else
      rc = ml_stage_apply(ctx, stages[i], &f);
  }
  if (rc != DLP_OK) {
    dlp_frame_free(f);
    return rc;
  }
  *out = f;
  return dlp_ok(ctx);
}

int dlp_pipeline_model_transform(dlp_ctx *ctx, const dlp_pipeline_model *pm,
                                 const dlp_frame *in, dlp_frame **out) {
  if (!pm) return dlp_fail(ctx, DLP_ERR_ARG, "transform: model is NULL");
  return transform_stages(ctx, pm->stages, pm->n, in, out);
}

int ml_pipeline_transform_prefix(dlp_ctx *ctx, const dlp_pipeline *p, size_t n,
                                 const dlp_frame *in, dlp_frame **out) {
  if (!p) return dlp_fail(ctx, DLP_ERR_ARG, "transform: pipeline is NULL");
  if (n > p->n) n = p->n;
  for (size_t i = 0; i < n; i++)
    if (p->stages[i]->cls->estimator)
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "stage %zu (%s) is an estimator: fit it first", i,
                      p->stages[i]->cls->name);
  return transform_stages(ctx, p->stages, n, in, out);
}
