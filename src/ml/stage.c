/* stage.c - dlp_stage: a class and its parameter values as canonical text,
 * set and read through the class's parameter table, and deep copies. */
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ml_stage_make(dlp_ctx *ctx, const ml_class *cls, dlp_stage **out) {
  *out = NULL;
  dlp_stage *s = calloc(1, sizeof *s);
  if (!s) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a stage");
  s->cls = cls;
  s->values = dlp_calloc_array(cls->nparams, sizeof *s->values);
  int rc = s->values ? DLP_OK
                     : dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a stage");
  for (size_t i = 0; rc == DLP_OK && i < cls->nparams; i++)
    rc = ml_param_validate(ctx, cls->name, &cls->params[i], cls->params[i].def,
                           &s->values[i]);
  if (rc != DLP_OK) {
    dlp_stage_free(s);
    return rc;
  }
  *out = s;
  return dlp_ok(ctx);
}

int dlp_stage_new(dlp_ctx *ctx, const char *class_name, dlp_stage **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "dlp_stage_new: out is NULL");
  *out = NULL;
  const ml_class *c = ml_class_find(class_name);
  if (!c || !c->user_made) {
    char list[256] = "";
    for (size_t i = 0; dlp_stage_class_at(i); i++) {
      strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
      strncat(list, dlp_stage_class_at(i), sizeof list - strlen(list) - 1);
    }
    if (c)
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "%s only comes from fitting or loading a pipeline; "
                      "stage classes: %s",
                      class_name, list);
    return dlp_fail(ctx, DLP_ERR_ARG, "unknown stage class '%s'; known: %s",
                    class_name ? class_name : "(null)", list);
  }
  return ml_stage_make(ctx, c, out);
}

void dlp_stage_free(dlp_stage *s) {
  if (!s) return;
  for (size_t i = 0; s->values && i < s->cls->nparams; i++)
    free(s->values[i]);
  free(s->values);
  ml_labels_free(s->labels, s->n_labels);
  if (s->has_lr) ml_lr_fit_clear(&s->lr);
  dlp_model_free(s->model);
  free(s);
}

const char *dlp_stage_class(const dlp_stage *s) {
  return s ? s->cls->name : NULL;
}

/* Parameters that change which network a featurizer runs. */
static int changes_model(const char *name) {
  static const char *const names[] = {"modelName", "modelFile",     "layer",
                                      "precision", "randomWeights", "seed"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i]) == 0) return 1;
  return 0;
}

static int unknown_param(dlp_ctx *ctx, const ml_class *c, const char *param) {
  char list[512] = "";
  for (size_t i = 0; i < c->nparams; i++) {
    char one[80];
    snprintf(one, sizeof one, "%s%s (%s)", i ? ", " : "", c->params[i].name,
             c->params[i].cli_name);
    strncat(list, one, sizeof list - strlen(list) - 1);
  }
  return dlp_fail(ctx, DLP_ERR_ARG, "%s has no parameter '%s'; it has: %s",
                  c->name, param ? param : "(null)", list);
}

int dlp_stage_set(dlp_ctx *ctx, dlp_stage *s, const char *param,
                  const char *value) {
  if (!s) return dlp_fail(ctx, DLP_ERR_ARG, "dlp_stage_set: stage is NULL");
  long i = ml_class_param_index(s->cls, param);
  if (i < 0) return unknown_param(ctx, s->cls, param);
  const dlp_param_desc *d = &s->cls->params[i];
  char *canon;
  int rc = ml_param_validate(ctx, s->cls->name, d, value, &canon);
  if (rc != DLP_OK) return rc;
  free(s->values[i]);
  s->values[i] = canon;
  if (s->model && changes_model(d->name)) {
    dlp_model_free(s->model);
    s->model = NULL;
  }
  return dlp_ok(ctx);
}

const char *dlp_stage_get(const dlp_stage *s, const char *param) {
  if (!s) return NULL;
  long i = ml_class_param_index(s->cls, param);
  return i < 0 ? NULL : s->values[i];
}

const char *ml_stage_param(const dlp_stage *s, const char *name) {
  const char *v = dlp_stage_get(s, name);
  return v ? v : "";
}

double ml_stage_param_double(const dlp_stage *s, const char *name) {
  return strtod(ml_stage_param(s, name), NULL);
}

int ml_stage_param_bool(const dlp_stage *s, const char *name) {
  return strcmp(ml_stage_param(s, name), "true") == 0;
}

int ml_stage_copy_params(dlp_ctx *ctx, dlp_stage *dst, const dlp_stage *src) {
  for (size_t i = 0; i < dst->cls->nparams; i++) {
    const char *v = dlp_stage_get(src, dst->cls->params[i].name);
    if (!v) continue;
    char *c = dlp_strdup(v);
    if (!c) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a value");
    free(dst->values[i]);
    dst->values[i] = c;
  }
  return DLP_OK;
}

int ml_stage_is_estimator(const dlp_stage *s) { return s && s->cls->estimator; }

static int copy_lr(ml_lr_fit *dst, const ml_lr_fit *src) {
  *dst = *src;
  dst->coef = dlp_malloc_array(src->k * src->dim, sizeof(double));
  dst->intercept = dlp_malloc_array(src->k ? src->k : 1, sizeof(double));
  dst->history = dlp_malloc_array((size_t)src->iterations + 1, sizeof(double));
  if (!dst->coef || !dst->intercept || !dst->history) {
    ml_lr_fit_clear(dst);
    return DLP_ERR_NOMEM;
  }
  memcpy(dst->coef, src->coef, src->k * src->dim * sizeof(double));
  memcpy(dst->intercept, src->intercept, src->k * sizeof(double));
  if (src->history)
    memcpy(dst->history, src->history,
           ((size_t)src->iterations + 1) * sizeof(double));
  else
    dst->history[0] = src->objective;
  return DLP_OK;
}

static int copy_labels(dlp_stage *dst, const dlp_stage *src) {
  if (!src->labels) return DLP_OK;
  dst->labels =
      dlp_calloc_array(src->n_labels ? src->n_labels : 1, sizeof(char *));
  if (!dst->labels) return DLP_ERR_NOMEM;
  dst->n_labels = src->n_labels;
  for (size_t i = 0; i < src->n_labels; i++)
    if (!(dst->labels[i] = dlp_strdup(src->labels[i]))) return DLP_ERR_NOMEM;
  return DLP_OK;
}

int ml_stage_clone(dlp_ctx *ctx, const dlp_stage *s, dlp_stage **out) {
  *out = NULL;
  if (!s) return dlp_fail(ctx, DLP_ERR_ARG, "ml_stage_clone: stage is NULL");
  dlp_stage *c;
  int rc = ml_stage_make(ctx, s->cls, &c);
  if (rc != DLP_OK) return rc;
  rc = ml_stage_copy_params(ctx, c, s);
  if (rc == DLP_OK && copy_labels(c, s) != DLP_OK)
    rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for labels");
  if (rc == DLP_OK && s->has_lr) {
    if (copy_lr(&c->lr, &s->lr) != DLP_OK)
      rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for coefficients");
    else
      c->has_lr = 1;
  }
  if (rc != DLP_OK) {
    dlp_stage_free(c);
    return rc;
  }
  *out = c;
  return dlp_ok(ctx);
}
