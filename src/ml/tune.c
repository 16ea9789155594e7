/* tune.c - parameter grids (ParamGridBuilder), CrossValidator and
 * TrainValidationSplit, with the featurization cached once for all folds.
 *
 * The expensive part of tuning a transfer-learning pipeline is the CNN, and
 * its output does not depend on the grid: so the leading transformer stages
 * whose parameters are not tuned run once over the whole table, and every
 * (combination, fold) task fits only the rest of the pipeline on rows of
 * that cached table (ml_pipeline_fit_from).
 *
 * Folds differ from MLlib's on purpose: MLlib's kFold draws one random number
 * per row, so its fold sizes vary; here the rows are shuffled with
 * dlp_rng(seed) and cut into k runs whose sizes differ by at most one, which
 * keeps every validation set non-empty and the means comparable. Likewise the
 * validation part of TrainValidationSplit has exactly round(n * (1 -
 * trainRatio)) rows rather than a random count.
 */
#include "frame/frame.h"
#include "stage.h"

#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More combinations than this is almost surely a typo in a grid spec. */
#define TUNE_MAX_COMBOS 10000

typedef struct grid_param {
  char *name;    /* as given, or the MLlib name when unambiguous */
  char **values; /* as given, trimmed */
  size_t n;
} grid_param;

struct dlp_param_grid {
  grid_param *p;
  size_t n;
};

struct dlp_tune_result {
  size_t n; /* combinations */
  int nfolds;
  char **params;   /* n texts */
  double *metrics; /* n * nfolds, [combo * nfolds + fold] */
  double *mean, *std;
  size_t best;
  dlp_pipeline_model *model;
};

/* --- the grid ------------------------------------------------------------ */

int dlp_param_grid_new(dlp_ctx *ctx, dlp_param_grid **out) {
  if (!out)
    return dlp_fail(ctx, DLP_ERR_ARG, "dlp_param_grid_new: out is NULL");
  *out = calloc(1, sizeof **out);
  if (!*out) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
  return dlp_ok(ctx);
}

static void grid_param_clear(grid_param *gp) {
  for (size_t i = 0; gp->values && i < gp->n; i++)
    free(gp->values[i]);
  free(gp->values);
  free(gp->name);
  memset(gp, 0, sizeof *gp);
}

void dlp_param_grid_free(dlp_param_grid *g) {
  if (!g) return;
  for (size_t i = 0; i < g->n; i++)
    grid_param_clear(&g->p[i]);
  free(g->p);
  free(g);
}

size_t dlp_param_grid_count(const dlp_param_grid *g) {
  size_t c = 1;
  for (size_t i = 0; g && i < g->n; i++)
    c *= g->p[i].n;
  return c;
}

/* The MLlib name of a parameter given by either name, when every class
 * that knows the name agrees on it ("reg" -> "regParam"); else the name as
 * given ("label-col" is StringIndexer.inputCol and LogisticRegression.
 * labelCol: which one is decided against the pipeline in dlp_tune). */
static const char *grid_canonical_name(const char *name) {
  const char *found = NULL;
  for (size_t c = 0; dlp_stage_class_at(c); c++) {
    const ml_class *cls = ml_class_find(dlp_stage_class_at(c));
    long j = cls ? ml_class_param_index(cls, name) : -1;
    if (j < 0) continue;
    if (found && strcmp(found, cls->params[j].name) != 0) return name;
    found = cls->params[j].name;
  }
  return found ? found : name;
}

static int grid_has(const dlp_param_grid *g, const char *name) {
  for (size_t i = 0; i < g->n; i++)
    if (strcmp(g->p[i].name, name) == 0) return 1;
  return 0;
}

/* A copy of s[0..len) without surrounding white space. */
static char *trim_dup(const char *s, size_t len) {
  while (len && isspace((unsigned char)*s))
    s++, len--;
  while (len && isspace((unsigned char)s[len - 1]))
    len--;
  char *t = malloc(len + 1);
  if (t) {
    memcpy(t, s, len);
    t[len] = 0;
  }
  return t;
}

/* Fills gp from param and values (trimmed, each non-empty). */
static int grid_param_make(dlp_ctx *ctx, const char *param,
                           const char *const *values, size_t n,
                           grid_param *gp) {
  memset(gp, 0, sizeof *gp);
  char *name = trim_dup(param, strlen(param));
  if (!name) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
  if (!*name) {
    free(name);
    return dlp_fail(ctx, DLP_ERR_ARG, "grid: a parameter name is empty");
  }
  gp->name = dlp_strdup(grid_canonical_name(name));
  gp->values = dlp_calloc_array(n, sizeof *gp->values);
  int rc = gp->name && gp->values
               ? DLP_OK
               : dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
  for (size_t i = 0; rc == DLP_OK && i < n; i++, gp->n++) {
    if (!values[i]) {
      rc = dlp_fail(ctx, DLP_ERR_ARG, "grid: %s: value %zu is NULL", name, i);
      break;
    }
    gp->values[i] = trim_dup(values[i], strlen(values[i]));
    if (!gp->values[i])
      rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
    else if (!*gp->values[i])
      rc = dlp_fail(ctx, DLP_ERR_ARG, "grid: %s: value %zu is empty", name,
                    i + 1);
  }
  free(name);
  if (rc != DLP_OK) grid_param_clear(gp);
  return rc;
}

/* Appends the filled params src[0..n) to g (which takes them) after checking
 * for duplicates and the combination cap; on failure g is unchanged and the
 * caller still owns src. */
static int grid_append(dlp_ctx *ctx, dlp_param_grid *g, grid_param *src,
                       size_t n) {
  size_t count = dlp_param_grid_count(g);
  for (size_t i = 0; i < n; i++) {
    if (grid_has(g, src[i].name))
      return dlp_fail(ctx, DLP_ERR_ARG, "grid: parameter %s is given twice",
                      src[i].name);
    if (src[i].n > TUNE_MAX_COMBOS || count * src[i].n > TUNE_MAX_COMBOS)
      return dlp_fail(ctx, DLP_ERR_TOO_LARGE,
                      "grid: more than %d combinations (adding %s with %zu "
                      "values to %zu)",
                      TUNE_MAX_COMBOS, src[i].name, src[i].n, count);
    count *= src[i].n;
  }
  grid_param *p = dlp_realloc_array(g->p, g->n + n, sizeof *p);
  if (!p) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
  g->p = p;
  memcpy(g->p + g->n, src, n * sizeof *src);
  g->n += n;
  return dlp_ok(ctx);
}

int dlp_param_grid_add(dlp_ctx *ctx, dlp_param_grid *g, const char *param,
                       const char *const *values, size_t n) {
  if (!g || !param || (!values && n))
    return dlp_fail(ctx, DLP_ERR_ARG, "dlp_param_grid_add: NULL argument");
  if (n == 0)
    return dlp_fail(ctx, DLP_ERR_ARG, "grid: %s has no values", param);
  grid_param gp;
  int rc = grid_param_make(ctx, param, values, n, &gp);
  if (rc == DLP_OK && (rc = grid_append(ctx, g, &gp, 1)) != DLP_OK)
    grid_param_clear(&gp);
  return rc;
}

/* Splits s on sep into malloc'd, trimmed parts (empty ones kept). */
static int split_trim(dlp_ctx *ctx, const char *s, char sep, char ***parts,
                      size_t *n) {
  size_t k = 1;
  for (const char *c = s; *c; c++)
    k += *c == sep;
  char **p = dlp_calloc_array(k, sizeof *p);
  if (!p) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
  const char *start = s;
  for (size_t i = 0; i < k; i++) {
    const char *end = strchr(start, sep);
    size_t len = end ? (size_t)(end - start) : strlen(start);
    if (!(p[i] = trim_dup(start, len))) {
      for (size_t j = 0; j < i; j++)
        free(p[j]);
      free(p);
      return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
    }
    start += len + 1;
  }
  *parts = p;
  *n = k;
  return DLP_OK;
}

static void free_parts(char **p, size_t n) {
  for (size_t i = 0; p && i < n; i++)
    free(p[i]);
  free(p);
}

/* One "name=v1,v2" part of a spec into gp. */
static int parse_part(dlp_ctx *ctx, const char *spec, const char *part,
                      grid_param *gp) {
  const char *eq = strchr(part, '=');
  if (!eq)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "grid '%s': '%s' is not name=value,value,...", spec, part);
  char *name = trim_dup(part, (size_t)(eq - part));
  char **vals = NULL;
  size_t nv = 0;
  int rc = name ? split_trim(ctx, eq + 1, ',', &vals, &nv)
                : dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
  if (rc == DLP_OK && !*name)
    rc = dlp_fail(ctx, DLP_ERR_ARG, "grid '%s': '%s' has no parameter name",
                  spec, part);
  for (size_t i = 0; rc == DLP_OK && i < nv; i++)
    if (!*vals[i])
      rc = dlp_fail(ctx, DLP_ERR_ARG,
                    "grid '%s': %s has an empty value (value %zu)", spec, name,
                    i + 1);
  if (rc == DLP_OK)
    rc = grid_param_make(ctx, name, (const char *const *)vals, nv, gp);
  free_parts(vals, nv);
  free(name);
  return rc;
}

int dlp_param_grid_parse(dlp_ctx *ctx, dlp_param_grid *g, const char *spec) {
  if (!g || !spec)
    return dlp_fail(ctx, DLP_ERR_ARG, "dlp_param_grid_parse: NULL argument");
  char **parts = NULL;
  size_t np = 0, made = 0;
  int rc = split_trim(ctx, spec, ';', &parts, &np);
  grid_param *gp = rc == DLP_OK ? dlp_calloc_array(np, sizeof *gp) : NULL;
  if (rc == DLP_OK && !gp)
    rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
  for (size_t i = 0; rc == DLP_OK && i < np; i++) {
    if (!*parts[i])
      rc = dlp_fail(ctx, DLP_ERR_ARG, "grid '%s': part %zu is empty", spec,
                    i + 1);
    else if ((rc = parse_part(ctx, spec, parts[i], &gp[i])) == DLP_OK)
      made++;
  }
  /* A parameter repeated within the spec is caught by grid_append. */
  dlp_param_grid tmp = {0};
  for (size_t i = 0; rc == DLP_OK && i < made; i++)
    if (grid_has(&tmp, gp[i].name))
      rc = dlp_fail(ctx, DLP_ERR_ARG, "grid '%s': parameter %s is given twice",
                    spec, gp[i].name);
    else
      tmp.p = gp, tmp.n = i + 1;
  if (rc == DLP_OK) rc = grid_append(ctx, g, gp, made);
  if (rc != DLP_OK)
    for (size_t i = 0; i < made; i++)
      grid_param_clear(&gp[i]);
  free(gp);
  free_parts(parts, np);
  return rc;
}

/* --- folds --------------------------------------------------------------- */

void ml_tune_folds(size_t n, int k, uint64_t seed, int *fold_of_row) {
  /* Position j of the shuffled order belongs to fold floor(j * k / n): k
   * consecutive runs of n/k or n/k + 1 rows. */
  for (size_t j = 0; j < n; j++)
    fold_of_row[j] = (int)(j * (size_t)k / n);
  dlp_shuffle(fold_of_row, n, sizeof *fold_of_row, seed);
}

size_t ml_tune_n_valid(size_t n, double train_ratio) {
  double v = floor((double)n * (1.0 - train_ratio) + 0.5);
  size_t nv = v < 1 ? 1 : (size_t)v;
  return nv >= n ? n - 1 : nv;
}

void ml_tune_split(size_t n, double train_ratio, uint64_t seed,
                   int *fold_of_row) {
  size_t nv = ml_tune_n_valid(n, train_ratio);
  for (size_t j = 0; j < n; j++)
    fold_of_row[j] = j < nv ? 0 : 1;
  dlp_shuffle(fold_of_row, n, sizeof *fold_of_row, seed);
}

/* --- options and results ------------------------------------------------- */

void dlp_tune_opts_init(dlp_tune_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->folds = 3;
  o->train_ratio = 0.75;
  o->seed = 42;
  o->parallelism = 1;
  o->metric = "accuracy";
  dlp_eval_opts_init(&o->eval);
  o->refit = 1;
}

void dlp_tune_result_free(dlp_tune_result *r) {
  if (!r) return;
  for (size_t i = 0; r->params && i < r->n; i++)
    free(r->params[i]);
  free(r->params);
  free(r->metrics);
  free(r->mean);
  free(r->std);
  dlp_pipeline_model_free(r->model);
  free(r);
}

size_t dlp_tune_result_count(const dlp_tune_result *r) { return r ? r->n : 0; }

const char *dlp_tune_result_params(const dlp_tune_result *r, size_t i) {
  return r && i < r->n ? r->params[i] : NULL;
}

double dlp_tune_result_mean(const dlp_tune_result *r, size_t i) {
  return r && i < r->n ? r->mean[i] : NAN;
}

double dlp_tune_result_std(const dlp_tune_result *r, size_t i) {
  return r && i < r->n ? r->std[i] : NAN;
}

size_t dlp_tune_result_best(const dlp_tune_result *r) {
  return r ? r->best : 0;
}

dlp_pipeline_model *dlp_tune_result_take_model(dlp_tune_result *r) {
  if (!r) return NULL;
  dlp_pipeline_model *m = r->model;
  r->model = NULL;
  return m;
}

double ml_tune_result_fold_metric(const dlp_tune_result *r, size_t i,
                                  int fold) {
  if (!r || i >= r->n || fold < 0 || fold >= r->nfolds) return NAN;
  return r->metrics[i * (size_t)r->nfolds + (size_t)fold];
}

/* --- the tuning run ------------------------------------------------------ */

/* Everything one dlp_tune call works with. */
typedef struct tune_run {
  dlp_ctx *ctx;
  const dlp_tune_opts *o;
  const dlp_param_grid *g;
  dlp_pipeline *base; /* the caller's pipeline, cloned (stages writable) */
  size_t *stage_of;   /* grid param i applies to stage stage_of[i] */
  const char **pname; /* and is called pname[i] there (MLlib name) */
  size_t prefix;      /* stages [0, prefix) run once over all the data */
  const dlp_frame *cached;
  dlp_frame *featurized; /* owned when prefix > 0 */
  size_t ncombos;
  int nfolds; /* folds evaluated: k, or 1 for TrainValidationSplit */
  dlp_frame **train, **valid; /* per fold */
  dlp_pipeline **combo;       /* per combination */
  dlp_ctx **wctx;             /* per worker */
  dlp_err *err;               /* per task */
  double *metrics;            /* per task */
  char **ptext;               /* per combination: its settings */
  atomic_size_t first_failed; /* lowest failed task index, or SIZE_MAX */
} tune_run;

static int check_opts(dlp_ctx *ctx, const dlp_tune_opts *o, size_t nrows) {
  if (o->folds == 1 || o->folds < 0)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "folds = %d: use 2 or more (CrossValidator) or 0 "
                    "(TrainValidationSplit)",
                    o->folds);
  if (o->folds == 0 && !(o->train_ratio > 0 && o->train_ratio < 1))
    return dlp_fail(ctx, DLP_ERR_ARG, "trainRatio = %g: must be in (0, 1)",
                    o->train_ratio);
  if (o->parallelism < 1)
    return dlp_fail(ctx, DLP_ERR_ARG, "parallelism = %d: must be >= 1",
                    o->parallelism);
  if (!o->metric || dlp_metric_larger_is_better(o->metric) < 0) {
    char known[256] = "";
    for (size_t i = 0; dlp_metric_at(i); i++)
      snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
               i ? ", " : "", dlp_metric_at(i));
    return dlp_fail(ctx, DLP_ERR_ARG, "unknown metric '%s' (known: %s)",
                    o->metric ? o->metric : "(null)", known);
  }
  size_t need = o->folds >= 2 ? (size_t)o->folds : 2;
  if (nrows < need)
    return dlp_fail(
        ctx, DLP_ERR_ARG, "%s needs at least %zu rows; the table has %zu",
        o->folds >= 2 ? "cross-validation" : "a validation split", need, nrows);
  return DLP_OK;
}

/* "LogisticRegression: maxIter (max-iter), regParam (reg), ...; ..." for
 * every stage of p, cut at cap. */
static void list_params(dlp_pipeline *p, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  for (size_t i = 0; i < dlp_pipeline_nstages(p) && len < cap; i++) {
    const char *cls = dlp_stage_class(dlp_pipeline_stage(p, i));
    size_t n = 0;
    const dlp_param_desc *d = dlp_stage_class_params(cls, &n);
    for (size_t j = 0; j < n && len < cap; j++) {
      int w = j ? snprintf(buf + len, cap - len, ", %s (%s)", d[j].name,
                           d[j].cli_name)
                : snprintf(buf + len, cap - len, "%s%s: %s (%s)", i ? "; " : "",
                           cls, d[j].name, d[j].cli_name);
      if (w > 0) len += (size_t)w;
    }
  }
}

/* Finds the stage of each grid parameter and checks every value on a clone
 * of that stage, before any work. */
static int resolve_grid(tune_run *t) {
  dlp_ctx *ctx = t->ctx;
  for (size_t i = 0; i < t->g->n; i++) {
    const grid_param *gp = &t->g->p[i];
    size_t s = 0, ns = dlp_pipeline_nstages(t->base);
    long j = -1;
    const ml_class *cls = NULL;
    for (; s < ns && j < 0; s++) {
      cls = ml_class_find(dlp_stage_class(dlp_pipeline_stage(t->base, s)));
      j = cls ? ml_class_param_index(cls, gp->name) : -1;
    }
    if (j < 0) {
      char list[400];
      list_params(t->base, list, sizeof list);
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "grid: no stage of the pipeline has a parameter '%s'; "
                      "tunable: %s",
                      gp->name, list);
    }
    t->stage_of[i] = s - 1;
    t->pname[i] = cls->params[j].name;
    for (size_t k = 0; k < i; k++)
      if (t->stage_of[k] == t->stage_of[i] &&
          strcmp(t->pname[k], t->pname[i]) == 0)
        return dlp_fail(ctx, DLP_ERR_ARG,
                        "grid: %s and %s are the same parameter (%s.%s)",
                        t->g->p[k].name, gp->name, cls->name, t->pname[i]);
    dlp_stage *probe = NULL;
    int rc = ml_stage_clone(ctx, dlp_pipeline_stage(t->base, s - 1), &probe);
    for (size_t v = 0; rc == DLP_OK && v < gp->n; v++)
      if ((rc = dlp_stage_set(ctx, probe, t->pname[i], gp->values[v])) !=
          DLP_OK)
        dlp_fail_prefix(ctx, "grid");
    dlp_stage_free(probe);
    if (rc != DLP_OK) return rc;
  }
  return DLP_OK;
}

/* The number of leading stages that are transformers with no tuned
 * parameter: their output is the same for every task. */
static size_t cacheable_prefix(const tune_run *t) {
  size_t ns = dlp_pipeline_nstages(t->base), s = 0;
  for (; s < ns; s++) {
    if (ml_stage_is_estimator(dlp_pipeline_stage(t->base, s))) break;
    int tuned = 0;
    for (size_t i = 0; i < t->g->n; i++)
      tuned |= t->stage_of[i] == s;
    if (tuned) break;
  }
  return s;
}

/* Value index of grid param i in combination c: the last parameter varies
 * fastest (PySpark's ParamGridBuilder, itertools.product order). */
static size_t combo_value(const dlp_param_grid *g, size_t c, size_t i) {
  size_t stride = 1;
  for (size_t k = g->n; k-- > i + 1;)
    stride *= g->p[k].n;
  return (c / stride) % g->p[i].n;
}

/* "regParam=0.05 elasticNetParam=0.3" for combination c (malloc'd). */
static char *combo_text(const tune_run *t, size_t c) {
  size_t cap = 1, len = 0;
  for (size_t i = 0; i < t->g->n; i++)
    cap += strlen(t->pname[i]) + strlen(t->g->p[i].values[0]) + 2;
  for (size_t i = 0; i < t->g->n; i++)
    cap += strlen(t->g->p[i].values[combo_value(t->g, c, i)]);
  char *txt = malloc(cap);
  if (!txt) return NULL;
  txt[0] = 0;
  for (size_t i = 0; i < t->g->n; i++)
    len += (size_t)snprintf(txt + len, cap - len, "%s%s=%s", i ? " " : "",
                            t->pname[i],
                            t->g->p[i].values[combo_value(t->g, c, i)]);
  return txt;
}

/* The pipeline and the settings text of every combination. */
static int build_combos(tune_run *t, dlp_tune_result *r) {
  dlp_ctx *ctx = t->ctx;
  for (size_t c = 0; c < t->ncombos; c++) {
    if (!(r->params[c] = combo_text(t, c)))
      return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a grid");
    int rc = ml_pipeline_clone(ctx, t->base, &t->combo[c]);
    for (size_t i = 0; rc == DLP_OK && i < t->g->n; i++) {
      const char *v = t->g->p[i].values[combo_value(t->g, c, i)];
      dlp_stage *s = dlp_pipeline_stage(t->combo[c], t->stage_of[i]);
      rc = dlp_stage_set(ctx, s, t->pname[i], v);
    }
    if (rc != DLP_OK) return rc;
  }
  t->ptext = r->params;
  return DLP_OK;
}

/* The train and validation rows of every fold, from the cached table. */
static int build_folds(tune_run *t) {
  dlp_ctx *ctx = t->ctx;
  size_t n = dlp_frame_nrows(t->cached);
  int *fold = dlp_malloc_array(n, sizeof *fold);
  size_t *tr = dlp_malloc_array(n, sizeof *tr);
  size_t *va = dlp_malloc_array(n, sizeof *va);
  int rc = fold && tr && va
               ? DLP_OK
               : dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu rows", n);
  if (rc == DLP_OK) {
    if (t->o->folds >= 2)
      ml_tune_folds(n, t->o->folds, t->o->seed, fold);
    else
      ml_tune_split(n, t->o->train_ratio, t->o->seed, fold);
  }
  for (int f = 0; rc == DLP_OK && f < t->nfolds; f++) {
    size_t ntr = 0, nva = 0;
    for (size_t i = 0; i < n; i++)
      if (fold[i] == f)
        va[nva++] = i;
      else
        tr[ntr++] = i;
    rc = dlp_frame_take_rows(ctx, t->cached, tr, ntr, &t->train[f]);
    if (rc == DLP_OK)
      rc = dlp_frame_take_rows(ctx, t->cached, va, nva, &t->valid[f]);
  }
  free(fold);
  free(tr);
  free(va);
  return rc;
}

/* Fits combination c on the training rows of fold f and scores it on the
 * validation rows, on the worker's own context. */
static int run_task(tune_run *t, dlp_ctx *wc, size_t c, int f, double *value) {
  dlp_pipeline_model *pm = NULL;
  dlp_frame *pred = NULL;
  int rc = ml_pipeline_fit_from(wc, t->combo[c], t->prefix, t->train[f], &pm);
  if (rc == DLP_OK)
    rc = dlp_pipeline_model_transform(wc, pm, t->valid[f], &pred);
  if (rc == DLP_OK)
    rc = dlp_evaluate(wc, pred, t->o->metric, &t->o->eval, value);
  dlp_frame_free(pred);
  dlp_pipeline_model_free(pm);
  return rc;
}

static void task_fn(size_t i, void *user, int worker) {
  tune_run *t = user;
  /* Tasks are handed out in order, so skipping the ones after a failure
   * keeps "the first error in task order" the same for any parallelism. */
  if (i > atomic_load(&t->first_failed)) return;
  dlp_ctx *wc = t->wctx[worker];
  size_t c = i / (size_t)t->nfolds;
  int f = (int)(i % (size_t)t->nfolds);
  t->metrics[i] = NAN;
  if (run_task(t, wc, c, f, &t->metrics[i]) == DLP_OK) return;
  t->err[i] = wc->err;
  size_t cur = atomic_load(&t->first_failed);
  while (i < cur && !atomic_compare_exchange_weak(&t->first_failed, &cur, i))
    ;
}

static int make_workers(tune_run *t) {
  int p = t->o->parallelism;
  int threads = dlp_ctx_threads(t->ctx) / p;
  for (int w = 0; w < p; w++) {
    if (dlp_ctx_new(&t->wctx[w]) != DLP_OK)
      return dlp_fail(t->ctx, DLP_ERR_NOMEM, "no memory for a context");
    dlp_ctx_set_threads(t->wctx[w], threads > 1 ? threads : 1);
    dlp_ctx_set_max_pixels(t->wctx[w], dlp_ctx_max_pixels(t->ctx));
    dlp_ctx_set_max_file_bytes(t->wctx[w], dlp_ctx_max_file_bytes(t->ctx));
  }
  return DLP_OK;
}

static int run_tasks(tune_run *t) {
  size_t ntasks = t->ncombos * (size_t)t->nfolds;
  atomic_init(&t->first_failed, SIZE_MAX);
  int rc = make_workers(t);
  if (rc != DLP_OK) return rc;
  if (!dlp_parallel_for(ntasks, t->o->parallelism, task_fn, t, t->ctx,
                        "tuning"))
    return dlp_fail(t->ctx, DLP_ERR_ARG, "tuning cancelled");
  size_t i = atomic_load(&t->first_failed);
  if (i == SIZE_MAX) return DLP_OK;
  size_t c = i / (size_t)t->nfolds;
  int f = (int)(i % (size_t)t->nfolds);
  char where[64];
  if (t->o->folds >= 2)
    snprintf(where, sizeof where, "fold %d of %d", f + 1, t->nfolds);
  else
    snprintf(where, sizeof where, "validation split");
  return dlp_fail(t->ctx, t->err[i].code, "tuning combination %zu (%s), %s: %s",
                  c + 1, t->g->n ? t->ptext[c] : "no grid", where,
                  t->err[i].msg);
}

/* Means, sample standard deviations and the best combination. */
static void summarise(const tune_run *t, dlp_tune_result *r) {
  int larger = dlp_metric_larger_is_better(t->o->metric) == 1;
  int k = t->nfolds, have_best = 0;
  for (size_t c = 0; c < r->n; c++) {
    const double *m = r->metrics + c * (size_t)k;
    double s = 0, ss = 0;
    for (int f = 0; f < k; f++)
      s += m[f];
    r->mean[c] = s / k;
    for (int f = 0; f < k; f++)
      ss += (m[f] - r->mean[c]) * (m[f] - r->mean[c]);
    r->std[c] = k > 1 ? sqrt(ss / (k - 1)) : 0;
    if (isnan(r->mean[c])) continue;
    if (!have_best || (larger ? r->mean[c] > r->mean[r->best]
                              : r->mean[c] < r->mean[r->best]))
      r->best = c, have_best = 1;
  }
}

static int result_alloc(tune_run *t, dlp_tune_result **out) {
  dlp_tune_result *r = calloc(1, sizeof *r);
  size_t ntasks = t->ncombos * (size_t)t->nfolds;
  *out = r;
  if (!r) return dlp_fail(t->ctx, DLP_ERR_NOMEM, "no memory for a result");
  r->n = t->ncombos;
  r->nfolds = t->nfolds;
  r->params = dlp_calloc_array(r->n, sizeof *r->params);
  r->metrics = dlp_malloc_array(ntasks, sizeof *r->metrics);
  r->mean = dlp_malloc_array(r->n, sizeof *r->mean);
  r->std = dlp_malloc_array(r->n, sizeof *r->std);
  t->metrics = r->metrics;
  t->stage_of = dlp_calloc_array(t->g->n + 1, sizeof *t->stage_of);
  t->pname = dlp_calloc_array(t->g->n + 1, sizeof *t->pname);
  t->train = dlp_calloc_array((size_t)t->nfolds, sizeof *t->train);
  t->valid = dlp_calloc_array((size_t)t->nfolds, sizeof *t->valid);
  t->combo = dlp_calloc_array(t->ncombos, sizeof *t->combo);
  t->wctx = dlp_calloc_array((size_t)t->o->parallelism, sizeof *t->wctx);
  t->err = dlp_calloc_array(ntasks, sizeof *t->err);
  if (!r->params || !r->metrics || !r->mean || !r->std || !t->stage_of ||
      !t->pname || !t->train || !t->valid || !t->combo || !t->wctx || !t->err)
    return dlp_fail(t->ctx, DLP_ERR_NOMEM, "no memory for %zu tuning tasks",
                    ntasks);
  return DLP_OK;
}

static void run_clear(tune_run *t) {
  for (int f = 0; t->train && f < t->nfolds; f++)
    dlp_frame_free(t->train[f]);
  for (int f = 0; t->valid && f < t->nfolds; f++)
    dlp_frame_free(t->valid[f]);
  for (size_t c = 0; t->combo && c < t->ncombos; c++)
    dlp_pipeline_free(t->combo[c]);
  for (int w = 0; t->wctx && w < t->o->parallelism; w++)
    dlp_ctx_free(t->wctx[w]);
  free(t->train);
  free(t->valid);
  free(t->combo);
  free(t->wctx);
  free(t->err);
  free(t->stage_of);
  free(t->pname);
  dlp_frame_free(t->featurized);
  dlp_pipeline_free(t->base);
}

/* The steps of dlp_tune after the arguments are checked. */
static int tune_steps(tune_run *t, const dlp_pipeline *p, const dlp_frame *data,
                      dlp_tune_result *r) {
  dlp_ctx *ctx = t->ctx;
  int rc = ml_pipeline_clone(ctx, p, &t->base);
  if (rc == DLP_OK) rc = resolve_grid(t);
  if (rc == DLP_OK) rc = build_combos(t, r);
  if (rc != DLP_OK) return rc;
  t->prefix = cacheable_prefix(t);
  t->cached = data;
  if (t->prefix > 0) {
    rc = ml_pipeline_transform_prefix(ctx, t->base, t->prefix, data,
                                      &t->featurized);
    if (rc != DLP_OK) return rc;
    t->cached = t->featurized;
  }
  if ((rc = check_opts(ctx, t->o, dlp_frame_nrows(t->cached))) != DLP_OK ||
      (rc = build_folds(t)) != DLP_OK || (rc = run_tasks(t)) != DLP_OK)
    return rc;
  summarise(t, r);
  if (t->o->refit)
    rc = ml_pipeline_fit_from(ctx, t->combo[r->best], t->prefix, t->cached,
                              &r->model);
  return rc;
}

int dlp_tune(dlp_ctx *ctx, const dlp_pipeline *p, const dlp_param_grid *g,
             const dlp_frame *data, const dlp_tune_opts *o,
             dlp_tune_result **out) {
  if (out) *out = NULL;
  if (!p || !data || !out)
    return dlp_fail(ctx, DLP_ERR_ARG, "dlp_tune: NULL argument");
  dlp_tune_opts defaults;
  dlp_tune_opts_init(&defaults);
  static const dlp_param_grid empty = {0};
  tune_run t = {.ctx = ctx, .o = o ? o : &defaults, .g = g ? g : &empty};
  /* Checked now against the input rows, again after featurization (which
   * may drop invalid rows). */
  int rc = check_opts(ctx, t.o, dlp_frame_nrows(data));
  if (rc != DLP_OK) return rc;
  t.ncombos = dlp_param_grid_count(t.g);
  t.nfolds = t.o->folds >= 2 ? t.o->folds : 1;
  dlp_tune_result *r = NULL;
  rc = result_alloc(&t, &r);
  if (rc == DLP_OK) rc = tune_steps(&t, p, data, r);
  run_clear(&t);
  if (rc != DLP_OK) {
    dlp_tune_result_free(r);
    return rc;
  }
  *out = r;
  return dlp_ok(ctx);
}
