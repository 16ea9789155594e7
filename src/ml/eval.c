/* eval.c - evaluation metrics with Spark MLlib's definitions: the
 * multiclass ones of MulticlassMetrics / MulticlassClassificationEvaluator
 * (accuracy, weighted precision/recall/F1, logLoss, hammingLoss, the
 * confusion matrix) and the binary areas of BinaryClassificationMetrics
 * (ROC and PR, trapezoid rule over the distinct scores, no binning).
 *
 * Written by hand: the definitions are a few sums, and matching MLlib's
 * conventions exactly (which classes weigh in, where the PR curve starts)
 * matters more than any library would save. */
#include "ml.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Past this, K*K confusion weights would take more than half a gigabyte; a
 * label this large is almost surely not a class index. */
#define EV_MAX_CLASSES 8192

static const char *const ev_metric_names[] = {
    "accuracy",         "f1",      "weightedPrecision", "weightedRecall",
    "weightedFMeasure", "logLoss", "hammingLoss",       "areaUnderROC",
    "areaUnderPR"};
#define EV_N_METRICS (sizeof ev_metric_names / sizeof ev_metric_names[0])

void dlp_eval_opts_init(dlp_eval_opts *o) {
  o->label_col = "label";
  o->prediction_col = "prediction";
  o->probability_col = "probability";
  o->raw_prediction_col = "rawPrediction";
  o->weight_col = NULL;
  o->eps = 1e-15;
}

const char *dlp_metric_at(size_t i) {
  return i < EV_N_METRICS ? ev_metric_names[i] : NULL;
}

static int ev_metric_index(const char *metric) {
  for (size_t i = 0; metric && i < EV_N_METRICS; i++)
    if (strcmp(metric, ev_metric_names[i]) == 0) return (int)i;
  return -1;
}

int dlp_metric_larger_is_better(const char *metric) {
  int i = ev_metric_index(metric);
  if (i < 0) return -1;
  return strcmp(metric, "logLoss") != 0 && strcmp(metric, "hammingLoss") != 0;
}

static int ev_is_binary(const char *metric) {
  return strcmp(metric, "areaUnderROC") == 0 ||
         strcmp(metric, "areaUnderPR") == 0;
}

/* --- reading the columns ------------------------------------------------- */

/* "a", "b", "c" into buf, for messages about a missing column. */
static void ev_col_list(const dlp_frame *f, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = '\0';
  for (size_t c = 0; c < dlp_frame_ncols(f) && len + 1 < cap; c++) {
    int w = snprintf(buf + len, cap - len, "%s\"%s\"", c ? ", " : "",
                     dlp_frame_col_name(f, c));
    if (w < 0) break;
    len += (size_t)w;
  }
  if (!dlp_frame_ncols(f)) snprintf(buf, cap, "(none)");
}

/* Finds a column: DLP_ERR_NOT_FOUND naming it (and listing the frame's)
 * when absent; *idx = -1 and DLP_OK when absent but optional. */
static int ev_find(dlp_ctx *ctx, const dlp_frame *f, const char *name,
                   const char *role, int required, long *idx) {
  *idx = name && *name ? dlp_frame_col_index(f, name) : -1;
  if (*idx >= 0 || !required) return DLP_OK;
  char cols[256];
  ev_col_list(f, cols, sizeof cols);
  if (!name || !*name)
    return dlp_fail(ctx, DLP_ERR_NOT_FOUND, "no %s column was named", role);
  return dlp_fail(ctx, DLP_ERR_NOT_FOUND,
                  "no column \"%s\" (the %s column); the frame has %s", name,
                  role, cols);
}

/* A number column (int64 or double): DLP_ERR_SCHEMA otherwise. */
static int ev_need_number(dlp_ctx *ctx, const dlp_frame *f, long col,
                          const char *role) {
  dlp_type t = dlp_frame_col_type(f, (size_t)col);
  if (t == DLP_TYPE_INT64 || t == DLP_TYPE_DOUBLE) return DLP_OK;
  return dlp_fail(ctx, DLP_ERR_SCHEMA,
                  "the %s column \"%s\" holds %s values; it must be int64 or "
                  "double",
                  role, dlp_frame_col_name(f, (size_t)col), dlp_type_name(t));
}

/* The number in a cell: 1 with *v set, 0 when null. */
static int ev_number(const dlp_frame *f, long col, size_t row, double *v) {
  int64_t i;
  if (dlp_frame_get_double(f, (size_t)col, row, v)) return 1;
  if (!dlp_frame_get_int64(f, (size_t)col, row, &i)) return 0;
  *v = (double)i;
  return 1;
}

/* A class index must be a small non-negative integer. */
static int ev_check_class(dlp_ctx *ctx, double v, const char *role,
                          size_t row) {
  if (!isfinite(v))
    return dlp_fail(ctx, DLP_ERR_ARG, "row %zu: the %s is %g, not a number",
                    row, role, v);
  if (v < 0 || v != floor(v))
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "row %zu: the %s %.17g is not a class index (a "
                    "non-negative integer)",
                    row, role, v);
  if (v >= EV_MAX_CLASSES)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "row %zu: the %s %.17g is beyond the %d classes dlp "
                    "evaluates",
                    row, role, v, EV_MAX_CLASSES);
  return DLP_OK;
}

/* The weight column, when one is named (-1 when not): a number column. */
static int ev_weight_col(dlp_ctx *ctx, const dlp_frame *f,
                         const dlp_eval_opts *o, long *wc) {
  int named = o->weight_col != NULL && *o->weight_col;
  int rc = ev_find(ctx, f, o->weight_col, "weight", named, wc);
  if (rc == DLP_OK && *wc >= 0) rc = ev_need_number(ctx, f, *wc, "weight");
  return rc;
}

/* Row weight: 1 without a weight column; finite and >= 0 with one. */
static int ev_weight(dlp_ctx *ctx, const dlp_frame *f, long col, size_t row,
                     double *w) {
  *w = 1;
  if (col < 0) return DLP_OK;
  if (!ev_number(f, col, row, w))
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "row %zu: the weight (column \"%s\") is "
                    "null",
                    row, dlp_frame_col_name(f, (size_t)col));
  if (!isfinite(*w) || *w < 0)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "row %zu: the weight %g is not a finite number >= 0", row,
                    *w);
  return DLP_OK;
}

/* The rows an evaluation counts. */
typedef struct ev_rows {
  size_t n;
  double *label, *pred, *weight; /* n each; pred is the score (binary) */
  size_t *row;                   /* frame row of each, for messages */
  double total_weight;
} ev_rows;

static void ev_rows_free(ev_rows *r) {
  free(r->label);
  free(r->pred);
  free(r->weight);
  free(r->row);
  memset(r, 0, sizeof *r);
}

static int ev_rows_alloc(dlp_ctx *ctx, ev_rows *r, size_t cap) {
  memset(r, 0, sizeof *r);
  size_t m = cap ? cap : 1;
  r->label = dlp_malloc_array(m, sizeof *r->label);
  r->pred = dlp_malloc_array(m, sizeof *r->pred);
  r->weight = dlp_malloc_array(m, sizeof *r->weight);
  r->row = dlp_malloc_array(m, sizeof *r->row);
  if (r->label && r->pred && r->weight && r->row) return DLP_OK;
  ev_rows_free(r);
  return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu rows to evaluate",
                  cap);
}

static void ev_rows_push(ev_rows *r, double label, double pred, double w,
                         size_t row) {
  r->label[r->n] = label;
  r->pred[r->n] = pred;
  r->weight[r->n] = w;
  r->row[r->n++] = row;
  r->total_weight += w;
}

/* An evaluation needs rows and some weight. */
static int ev_check_counted(dlp_ctx *ctx, const dlp_frame *f,
                            const ev_rows *r) {
  if (dlp_frame_nrows(f) == 0)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "no rows to evaluate: the frame is empty");
  if (r->n == 0)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "no rows to evaluate: all %zu have a null label or "
                    "prediction",
                    dlp_frame_nrows(f));
  if (!(r->total_weight > 0))
    return dlp_fail(ctx, DLP_ERR_ARG, "the %zu rows evaluated weigh 0 in total",
                    r->n);
  return DLP_OK;
}

/* Label and prediction (class indices) and weight of every row with both. */
static int ev_gather_classes(dlp_ctx *ctx, const dlp_frame *f,
                             const dlp_eval_opts *o, ev_rows *r) {
  long lc, pc, wc;
  int rc = ev_find(ctx, f, o->label_col, "label", 1, &lc);
  if (rc == DLP_OK)
    rc = ev_find(ctx, f, o->prediction_col, "prediction", 1, &pc);
  if (rc == DLP_OK) rc = ev_weight_col(ctx, f, o, &wc);
  if (rc == DLP_OK) rc = ev_need_number(ctx, f, lc, "label");
  if (rc == DLP_OK) rc = ev_need_number(ctx, f, pc, "prediction");
  if (rc == DLP_OK) rc = ev_rows_alloc(ctx, r, dlp_frame_nrows(f));
  if (rc != DLP_OK) return rc;
  for (size_t i = 0; i < dlp_frame_nrows(f); i++) {
    double y, p, w;
    if (!ev_number(f, lc, i, &y) || !ev_number(f, pc, i, &p)) continue;
    if ((rc = ev_check_class(ctx, y, "label", i)) != DLP_OK ||
        (rc = ev_check_class(ctx, p, "prediction", i)) != DLP_OK ||
        (rc = ev_weight(ctx, f, wc, i, &w)) != DLP_OK)
      break;
    ev_rows_push(r, y, p, w, i);
  }
  if (rc == DLP_OK) rc = ev_check_counted(ctx, f, r);
  if (rc != DLP_OK) ev_rows_free(r);
  return rc;
}

/* --- multiclass ---------------------------------------------------------- */

void dlp_multiclass_metrics_clear(dlp_multiclass_metrics *m) {
  if (!m) return;
  free(m->confusion);
  free(m->precision);
  free(m->recall);
  free(m->f1_by_class);
  memset(m, 0, sizeof *m);
}

/* MLlib's weighted averages: each class weighs by its share of the true
 * labels, so a class that is only ever predicted weighs 0. */
static void ev_class_metrics(const ev_rows *r, dlp_multiclass_metrics *m) {
  size_t K = m->n_classes;
  double correct = 0;
  for (size_t i = 0; i < r->n; i++) {
    size_t y = (size_t)r->label[i], p = (size_t)r->pred[i];
    m->confusion[y * K + p] += r->weight[i];
    if (y == p) correct += r->weight[i];
  }
  double W = r->total_weight, wp = 0, wr = 0, wf = 0;
  for (size_t c = 0; c < K; c++) {
    double tp = m->confusion[c * K + c], actual = 0, predicted = 0;
    for (size_t j = 0; j < K; j++) {
      actual += m->confusion[c * K + j];
      predicted += m->confusion[j * K + c];
    }
    double prec = predicted > 0 ? tp / predicted : 0;
    double rec = actual > 0 ? tp / actual : 0;
    double f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
    m->precision[c] = prec;
    m->recall[c] = rec;
    m->f1_by_class[c] = f1;
    wp += actual / W * prec;
    wr += actual / W * rec;
    wf += actual / W * f1;
  }
  m->accuracy = correct / W;
  m->hamming_loss = (W - correct) / W;
  m->weighted_precision = wp;
  m->weighted_recall = wr;
  m->f1 = wf;
}

/* -(1/W) sum_i w_i log(max(p_i[label_i], eps)) over the counted rows. */
static int ev_log_loss(dlp_ctx *ctx, const dlp_frame *f, long col,
                       const ev_rows *r, double eps, double *out) {
  dlp_type t = dlp_frame_col_type(f, (size_t)col);
  if (t != DLP_TYPE_VECTOR)
    return dlp_fail(ctx, DLP_ERR_SCHEMA,
                    "the probability column \"%s\" holds %s values; it must "
                    "be a vector column",
                    dlp_frame_col_name(f, (size_t)col), dlp_type_name(t));
  size_t dim = dlp_frame_col_dim(f, (size_t)col);
  double sum = 0;
  for (size_t i = 0; i < r->n; i++) {
    const float *v;
    size_t y = (size_t)r->label[i];
    if (!dlp_frame_get_vector(f, (size_t)col, r->row[i], &v))
      return dlp_fail(ctx, DLP_ERR_ARG, "row %zu: the probability is null",
                      r->row[i]);
    if (y >= dim)
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "row %zu: the label is %zu but the probability vector "
                      "has only %zu values",
                      r->row[i], y, dim);
    double p = v[y];
    if (!isfinite(p) || p < 0 || p > 1)
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "row %zu: probability %g of the label is not in [0, 1]",
                      r->row[i], p);
    sum -= r->weight[i] * log(p > eps ? p : eps);
  }
  *out = sum / r->total_weight;
  return DLP_OK;
}

static int ev_multiclass_alloc(dlp_ctx *ctx, dlp_multiclass_metrics *m,
                               size_t K) {
  m->n_classes = K;
  m->confusion = dlp_calloc_array(K * K, sizeof *m->confusion);
  m->precision = dlp_calloc_array(K, sizeof *m->precision);
  m->recall = dlp_calloc_array(K, sizeof *m->recall);
  m->f1_by_class = dlp_calloc_array(K, sizeof *m->f1_by_class);
  if (m->confusion && m->precision && m->recall && m->f1_by_class)
    return DLP_OK;
  return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu classes", K);
}

/* The multiclass metrics; the probability column is read only when
 * with_prob is set (and then it must exist when need_prob is set). */
static int ev_multiclass(dlp_ctx *ctx, const dlp_frame *f,
                         const dlp_eval_opts *o, int with_prob, int need_prob,
                         dlp_multiclass_metrics *m) {
  memset(m, 0, sizeof *m);
  long prob = -1;
  ev_rows r;
  int rc = with_prob ? ev_find(ctx, f, o->probability_col, "probability",
                               need_prob, &prob)
                     : DLP_OK;
  if (rc == DLP_OK) rc = ev_gather_classes(ctx, f, o, &r);
  if (rc != DLP_OK) return rc;
  double top = 0;
  for (size_t i = 0; i < r.n; i++) {
    if (r.label[i] > top) top = r.label[i];
    if (r.pred[i] > top) top = r.pred[i];
  }
  rc = ev_multiclass_alloc(ctx, m, (size_t)top + 1);
  if (rc == DLP_OK) {
    ev_class_metrics(&r, m);
    m->total_weight = r.total_weight;
    m->n_rows = r.n;
  }
  if (rc == DLP_OK && prob >= 0) {
    double eps = o->eps > 0 ? o->eps : 1e-15;
    rc = ev_log_loss(ctx, f, prob, &r, eps, &m->log_loss);
    m->has_log_loss = rc == DLP_OK;
  }
  ev_rows_free(&r);
  if (rc != DLP_OK) dlp_multiclass_metrics_clear(m);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

int dlp_evaluate_multiclass(dlp_ctx *ctx, const dlp_frame *f,
                            const dlp_eval_opts *o,
                            dlp_multiclass_metrics *out) {
  dlp_eval_opts def;
  if (!o) dlp_eval_opts_init(&def);
  if (!f || !out)
    return dlp_fail(ctx, DLP_ERR_ARG, "dlp_evaluate_multiclass: NULL %s",
                    f ? "output" : "frame");
  return ev_multiclass(ctx, f, o ? o : &def, 1, 0, out);
}

/* --- binary -------------------------------------------------------------- */

typedef struct ev_point {
  double score, label, weight;
} ev_point;

static int ev_by_score_desc(const void *a, const void *b) {
  double x = ((const ev_point *)a)->score, y = ((const ev_point *)b)->score;
  return (x < y) - (x > y);
}

static double ev_trapezoid(double x0, double y0, double x1, double y1) {
  return (x1 - x0) * (y0 + y1) / 2;
}

/* Walks the distinct thresholds from the highest score down, as MLlib's
 * BinaryClassificationMetrics does: every point scoring >= the threshold is
 * called positive. ROC runs (0,0) .. (FPR, TPR) .. (1,1); PR runs
 * (0, first precision) .. (recall, precision). */
static void ev_areas(const ev_point *pt, size_t n, double *roc, double *pr) {
  double P = 0, N = 0;
  for (size_t i = 0; i < n; i++) {
    if (pt[i].label > 0.5)
      P += pt[i].weight;
    else
      N += pt[i].weight;
  }
  double tp = 0, fp = 0, fx = 0, fy = 0, rx = 0, ry = 0, a_roc = 0, a_pr = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    for (; j < n && pt[j].score == pt[i].score; j++) {
      if (pt[j].label > 0.5)
        tp += pt[j].weight;
      else
        fp += pt[j].weight;
    }
    double fpr = N > 0 ? fp / N : 0, tpr = P > 0 ? tp / P : 0;
    double prec = tp + fp > 0 ? tp / (tp + fp) : 1;
    a_roc += ev_trapezoid(fx, fy, fpr, tpr);
    if (i == 0) ry = prec; /* the curve starts at (0, first precision) */
    a_pr += ev_trapezoid(rx, ry, tpr, prec);
    fx = fpr, fy = tpr, rx = tpr, ry = prec;
    i = j;
  }
  *roc = a_roc + ev_trapezoid(fx, fy, 1, 1);
  *pr = a_pr;
}

int ml_binary_areas(dlp_ctx *ctx, const double *score, const double *label,
                    const double *weight, size_t n, double *auc_roc,
                    double *auc_pr) {
  if (n == 0)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "no rows to compute the binary areas "
                    "over");
  ev_point *pt = dlp_malloc_array(n, sizeof *pt);
  if (!pt) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu scores", n);
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(score[i]) || (label[i] != 0 && label[i] != 1) ||
        (weight && (!isfinite(weight[i]) || weight[i] < 0))) {
      free(pt);
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "point %zu: score %g, label %g, weight %g: scores must "
                      "be finite, labels 0 or 1, weights >= 0",
                      i, score[i], label[i], weight ? weight[i] : 1.0);
    }
    pt[i] = (ev_point){score[i], label[i], weight ? weight[i] : 1};
  }
  qsort(pt, n, sizeof *pt, ev_by_score_desc);
  double roc, pr;
  ev_areas(pt, n, &roc, &pr);
  free(pt);
  if (auc_roc) *auc_roc = roc;
  if (auc_pr) *auc_pr = pr;
  return dlp_ok(ctx);
}

/* The score column: rawPrediction when present, else probability; a vector
 * gives its element 1, a number column is the score itself. */
static int ev_score_col(dlp_ctx *ctx, const dlp_frame *f,
                        const dlp_eval_opts *o, long *col) {
  long raw, prob;
  (void)ev_find(ctx, f, o->raw_prediction_col, "rawPrediction", 0, &raw);
  (void)ev_find(ctx, f, o->probability_col, "probability", 0, &prob);
  *col = raw >= 0 ? raw : prob;
  if (*col < 0)
    return dlp_fail(ctx, DLP_ERR_NOT_FOUND,
                    "the binary metrics need a score: the frame has neither "
                    "a \"%s\" (rawPrediction) nor a \"%s\" (probability) "
                    "column",
                    o->raw_prediction_col ? o->raw_prediction_col : "",
                    o->probability_col ? o->probability_col : "");
  dlp_type t = dlp_frame_col_type(f, (size_t)*col);
  if (t == DLP_TYPE_INT64 || t == DLP_TYPE_DOUBLE ||
      (t == DLP_TYPE_VECTOR && dlp_frame_col_dim(f, (size_t)*col) >= 2))
    return DLP_OK;
  return dlp_fail(ctx, DLP_ERR_SCHEMA,
                  "the score column \"%s\" must be a vector of 2 or more "
                  "values or a number column (it holds %s%s)",
                  dlp_frame_col_name(f, (size_t)*col), dlp_type_name(t),
                  t == DLP_TYPE_VECTOR ? " of 1 value" : "");
}

static int ev_score(const dlp_frame *f, long col, size_t row, double *s) {
  const float *v;
  if (dlp_frame_col_type(f, (size_t)col) != DLP_TYPE_VECTOR)
    return ev_number(f, col, row, s);
  if (!dlp_frame_get_vector(f, (size_t)col, row, &v)) return 0;
  *s = v[1];
  return 1;
}

/* (score, label, weight) of every row with a label and a score. */
static int ev_gather_scores(dlp_ctx *ctx, const dlp_frame *f,
                            const dlp_eval_opts *o, ev_rows *r) {
  long lc, sc, wc;
  int rc = ev_find(ctx, f, o->label_col, "label", 1, &lc);
  if (rc == DLP_OK) rc = ev_need_number(ctx, f, lc, "label");
  if (rc == DLP_OK) rc = ev_score_col(ctx, f, o, &sc);
  if (rc == DLP_OK) rc = ev_weight_col(ctx, f, o, &wc);
  if (rc == DLP_OK) rc = ev_rows_alloc(ctx, r, dlp_frame_nrows(f));
  if (rc != DLP_OK) return rc;
  for (size_t i = 0; rc == DLP_OK && i < dlp_frame_nrows(f); i++) {
    double y, s, w;
    if (!ev_number(f, lc, i, &y) || !ev_score(f, sc, i, &s)) continue;
    if (y != 0 && y != 1)
      rc = dlp_fail(ctx, DLP_ERR_ARG,
                    "row %zu: the label is %g; the binary metrics need "
                    "labels 0 and 1",
                    i, y);
    else if (!isfinite(s))
      rc = dlp_fail(ctx, DLP_ERR_ARG, "row %zu: the score is %g", i, s);
    else if ((rc = ev_weight(ctx, f, wc, i, &w)) == DLP_OK)
      ev_rows_push(r, y, s, w, i);
  }
  if (rc == DLP_OK) rc = ev_check_counted(ctx, f, r);
  if (rc != DLP_OK) ev_rows_free(r);
  return rc;
}

static int ev_binary(dlp_ctx *ctx, const dlp_frame *f, const dlp_eval_opts *o,
                     const char *metric, double *value) {
  ev_rows r;
  int rc = ev_gather_scores(ctx, f, o, &r);
  if (rc != DLP_OK) return rc;
  double roc = 0, pr = 0;
  rc = ml_binary_areas(ctx, r.pred, r.label, r.weight, r.n, &roc, &pr);
  ev_rows_free(&r);
  if (rc == DLP_OK) *value = strcmp(metric, "areaUnderROC") == 0 ? roc : pr;
  return rc;
}

/* --- one metric ---------------------------------------------------------- */

static int ev_unknown_metric(dlp_ctx *ctx, const char *metric) {
  char known[256];
  size_t len = 0;
  for (size_t i = 0; i < EV_N_METRICS; i++)
    len += (size_t)snprintf(known + len, sizeof known - len, "%s%s",
                            i ? ", " : "", ev_metric_names[i]);
  return dlp_fail(ctx, DLP_ERR_ARG, "unknown metric \"%s\"; known: %s",
                  metric ? metric : "(null)", known);
}

static double ev_pick(const dlp_multiclass_metrics *m, const char *metric) {
  if (strcmp(metric, "accuracy") == 0) return m->accuracy;
  if (strcmp(metric, "weightedPrecision") == 0) return m->weighted_precision;
  if (strcmp(metric, "weightedRecall") == 0) return m->weighted_recall;
  if (strcmp(metric, "logLoss") == 0) return m->log_loss;
  if (strcmp(metric, "hammingLoss") == 0) return m->hamming_loss;
  return m->f1; /* "f1" and "weightedFMeasure" */
}

int dlp_evaluate(dlp_ctx *ctx, const dlp_frame *f, const char *metric,
                 const dlp_eval_opts *o, double *value) {
  dlp_eval_opts def;
  if (!o) dlp_eval_opts_init(&def);
  if (ev_metric_index(metric) < 0) return ev_unknown_metric(ctx, metric);
  if (!f || !value)
    return dlp_fail(ctx, DLP_ERR_ARG, "dlp_evaluate: NULL %s",
                    f ? "output" : "frame");
  if (ev_is_binary(metric)) {
    int rc = ev_binary(ctx, f, o ? o : &def, metric, value);
    return rc == DLP_OK ? dlp_ok(ctx) : rc;
  }
  int logloss = strcmp(metric, "logLoss") == 0;
  dlp_multiclass_metrics m;
  int rc = ev_multiclass(ctx, f, o ? o : &def, logloss, logloss, &m);
  if (rc != DLP_OK) return rc;
  *value = ev_pick(&m, metric);
  dlp_multiclass_metrics_clear(&m);
  return dlp_ok(ctx);
}
