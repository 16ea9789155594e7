/* test_eval.c - the evaluators' edge cases and errors (the sums themselves
 * are checked against scikit-learn in tests/ref/test_eval_vs_sklearn.py). */
#include "dlp.h"
#include "ml.h"
#include "test.h"

#include <unistd.h>

static dlp_ctx *ctx;

/* label (double), prediction (int64), w (double) and, when prob is given,
 * probability (vector[dim]); a NaN label or prediction stands for null. */
static dlp_frame *make_frame(const double *y, const double *p,
                             const float *prob, size_t dim, const double *w,
                             size_t n) {
  dlp_frame *f = NULL;
  int rc = dlp_frame_new(ctx, &f);
  if (rc == DLP_OK)
    rc = dlp_frame_add_column(ctx, f, "label", DLP_TYPE_DOUBLE, 0);
  if (rc == DLP_OK)
    rc = dlp_frame_add_column(ctx, f, "prediction", DLP_TYPE_INT64, 0);
  if (rc == DLP_OK) rc = dlp_frame_add_column(ctx, f, "w", DLP_TYPE_DOUBLE, 0);
  if (rc == DLP_OK && prob)
    rc = dlp_frame_add_column(ctx, f, "probability", DLP_TYPE_VECTOR, dim);
  for (size_t i = 0; rc == DLP_OK && i < n; i++) {
    rc = dlp_frame_add_row(ctx, f, NULL);
    if (rc == DLP_OK && !isnan(y[i]))
      rc = dlp_frame_set_double(ctx, f, 0, i, y[i]);
    if (rc == DLP_OK && !isnan(p[i]))
      rc = dlp_frame_set_int64(ctx, f, 1, i, (int64_t)p[i]);
    if (rc == DLP_OK && w) rc = dlp_frame_set_double(ctx, f, 2, i, w[i]);
    if (rc == DLP_OK && prob)
      rc = dlp_frame_set_vector(ctx, f, 3, i, prob + i * dim);
  }
  CHECK_OK(ctx, rc);
  return f;
}

static int eval_rc(const dlp_frame *f, const char *metric, const char *wcol,
                   double *v) {
  dlp_eval_opts o;
  dlp_eval_opts_init(&o);
  o.weight_col = wcol;
  return dlp_evaluate(ctx, f, metric, &o, v);
}

TEST(metric_names_and_direction) {
  size_t n = 0;
  while (dlp_metric_at(n))
    n++;
  CHECK_EQ_INT(n, 9);
  CHECK_STR(dlp_metric_at(0), "accuracy");
  CHECK(dlp_metric_at(9) == NULL);
  CHECK_EQ_INT(dlp_metric_larger_is_better("accuracy"), 1);
  CHECK_EQ_INT(dlp_metric_larger_is_better("f1"), 1);
  CHECK_EQ_INT(dlp_metric_larger_is_better("areaUnderPR"), 1);
  CHECK_EQ_INT(dlp_metric_larger_is_better("logLoss"), 0);
  CHECK_EQ_INT(dlp_metric_larger_is_better("hammingLoss"), 0);
  CHECK_EQ_INT(dlp_metric_larger_is_better("nope"), -1);
  CHECK_EQ_INT(dlp_metric_larger_is_better(NULL), -1);
  for (size_t i = 0; i < n; i++)
    CHECK(dlp_metric_larger_is_better(dlp_metric_at(i)) >= 0);
}

TEST(empty_frame_is_an_error) {
  float none[2] = {0, 0};
  dlp_frame *f = make_frame(NULL, NULL, none, 2, NULL, 0);
  double v = -1;
  CHECK_EQ_INT(eval_rc(f, "accuracy", NULL, &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "empty") != NULL);
  dlp_multiclass_metrics m;
  CHECK_EQ_INT(dlp_evaluate_multiclass(ctx, f, NULL, &m), DLP_ERR_ARG);
  CHECK(m.confusion == NULL);
  dlp_multiclass_metrics_clear(&m);
  CHECK_EQ_INT(eval_rc(f, "areaUnderROC", NULL, &v), DLP_ERR_ARG);
  dlp_frame_free(f);
}

TEST(all_null_rows_are_an_error) {
  double y[3] = {NAN, 1, NAN}, p[3] = {0, NAN, NAN};
  dlp_frame *f = make_frame(y, p, NULL, 2, NULL, 3);
  double v;
  CHECK_EQ_INT(eval_rc(f, "f1", NULL, &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "null") != NULL);
  dlp_frame_free(f);
}

TEST(null_rows_are_skipped) {
  double y[4] = {1, NAN, 0, 1}, p[4] = {1, 0, 1, NAN};
  float prob[8] = {0.25f, 0.75f, 0, 0, 0.5f, 0.5f, 0, 0};
  dlp_frame *f = make_frame(y, p, prob, 2, NULL, 4);
  dlp_multiclass_metrics m;
  CHECK_OK(ctx, dlp_evaluate_multiclass(ctx, f, NULL, &m));
  CHECK_EQ_INT(m.n_rows, 2);
  CHECK_NEAR(m.accuracy, 0.5, 0);
  CHECK_EQ_INT(m.has_log_loss, 1);
  CHECK_NEAR(m.log_loss, -(log(0.75) + log(0.5)) / 2, 1e-15);
  dlp_multiclass_metrics_clear(&m);
  /* A counted row without a probability cannot have a log loss. */
  CHECK_OK(ctx, dlp_frame_set_null(ctx, f, 3, 2));
  CHECK_EQ_INT(dlp_evaluate_multiclass(ctx, f, NULL, &m), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "row 2") != NULL);
  CHECK(m.confusion == NULL);
  dlp_frame_free(f);
}

TEST(zero_total_weight_is_an_error) {
  double y[2] = {0, 1}, p[2] = {0, 1}, w[2] = {0, 0};
  dlp_frame *f = make_frame(y, p, NULL, 2, w, 2);
  double v;
  CHECK_EQ_INT(eval_rc(f, "accuracy", "w", &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "weigh 0") != NULL);
  /* Zero weight on one row: that row does not count at all. */
  w[1] = 2;
  dlp_frame_free(f);
  p[1] = 0;
  f = make_frame(y, p, NULL, 2, w, 2);
  CHECK_OK(ctx, eval_rc(f, "accuracy", "w", &v));
  CHECK_NEAR(v, 0, 0);
  w[1] = -1;
  dlp_frame_free(f);
  f = make_frame(y, p, NULL, 2, w, 2);
  CHECK_EQ_INT(eval_rc(f, "accuracy", "w", &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "row 1") != NULL);
  dlp_frame_free(f);
}

TEST(single_class) {
  double y[3] = {0, 0, 0}, p[3] = {0, 0, 0};
  float prob[3] = {1, 0.5f, 0.25f};
  dlp_frame *f = make_frame(y, p, prob, 1, NULL, 3);
  dlp_multiclass_metrics m;
  CHECK_OK(ctx, dlp_evaluate_multiclass(ctx, f, NULL, &m));
  CHECK_EQ_INT(m.n_classes, 1);
  CHECK_NEAR(m.accuracy, 1, 0);
  CHECK_NEAR(m.f1, 1, 0);
  CHECK_NEAR(m.hamming_loss, 0, 0);
  CHECK_EQ_INT(m.has_log_loss, 1);
  CHECK_NEAR(m.log_loss, -(log(1.0) + log(0.5) + log(0.25)) / 3, 1e-15);
  dlp_multiclass_metrics_clear(&m);
  dlp_frame_free(f);
}

TEST(k_from_predictions) {
  double y[3] = {0, 1, 1}, p[3] = {0, 4, 1};
  dlp_frame *f = make_frame(y, p, NULL, 2, NULL, 3);
  dlp_multiclass_metrics m;
  CHECK_OK(ctx, dlp_evaluate_multiclass(ctx, f, NULL, &m));
  CHECK_EQ_INT(m.n_classes, 5);
  CHECK_NEAR(m.confusion[1 * 5 + 4], 1, 0);
  CHECK_NEAR(m.confusion[1 * 5 + 1], 1, 0);
  CHECK_NEAR(m.precision[4], 0, 0); /* predicted once, never right */
  CHECK_NEAR(m.recall[1], 0.5, 0);
  /* class 4 is never a true label: it weighs nothing in the averages */
  CHECK_NEAR(m.weighted_recall, (1.0 / 3) * 1 + (2.0 / 3) * 0.5, 1e-15);
  dlp_multiclass_metrics_clear(&m);
  dlp_frame_free(f);
}

TEST(unknown_metric_lists_the_names) {
  double y[1] = {0}, p[1] = {0}, v;
  dlp_frame *f = make_frame(y, p, NULL, 2, NULL, 1);
  CHECK_EQ_INT(eval_rc(f, "acc", NULL, &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "\"acc\"") != NULL);
  CHECK(strstr(dlp_errmsg(ctx), "areaUnderPR") != NULL);
  dlp_frame_free(f);
}

TEST(missing_columns) {
  double y[1] = {0}, p[1] = {0}, v;
  dlp_frame *f = make_frame(y, p, NULL, 2, NULL, 1);
  dlp_eval_opts o;
  dlp_eval_opts_init(&o);
  o.label_col = "indexedLabel";
  CHECK_EQ_INT(dlp_evaluate(ctx, f, "accuracy", &o, &v), DLP_ERR_NOT_FOUND);
  CHECK(strstr(dlp_errmsg(ctx), "indexedLabel") != NULL);
  CHECK_EQ_INT(eval_rc(f, "accuracy", "weights", &v), DLP_ERR_NOT_FOUND);
  CHECK(strstr(dlp_errmsg(ctx), "weights") != NULL);
  dlp_eval_opts_init(&o);
  o.probability_col = "probs";
  CHECK_EQ_INT(dlp_evaluate(ctx, f, "logLoss", &o, &v), DLP_ERR_NOT_FOUND);
  CHECK(strstr(dlp_errmsg(ctx), "probs") != NULL);
  o.raw_prediction_col = "raw";
  CHECK_EQ_INT(dlp_evaluate(ctx, f, "areaUnderROC", &o, &v), DLP_ERR_NOT_FOUND);
  CHECK(strstr(dlp_errmsg(ctx), "raw") != NULL);
  o.label_col = "w"; /* a number column: fine, but all null here */
  CHECK_EQ_INT(dlp_evaluate(ctx, f, "accuracy", &o, &v), DLP_ERR_ARG);
  dlp_frame_free(f);
}

TEST(bad_values_name_the_row) {
  double y[3] = {0, 1, 0.5}, p[3] = {0, 1, 0}, v;
  dlp_frame *f = make_frame(y, p, NULL, 2, NULL, 3);
  CHECK_EQ_INT(eval_rc(f, "accuracy", NULL, &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "row 2") != NULL);
  dlp_frame_free(f);
  y[2] = INFINITY;
  f = make_frame(y, p, NULL, 2, NULL, 3);
  CHECK_EQ_INT(eval_rc(f, "accuracy", NULL, &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "row 2") != NULL);
  dlp_frame_free(f);
  y[2] = 2; /* probability vectors of 2 have no entry for label 2 */
  float prob[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
  f = make_frame(y, p, prob, 2, NULL, 3);
  CHECK_OK(ctx, eval_rc(f, "accuracy", NULL, &v));
  CHECK_EQ_INT(eval_rc(f, "logLoss", NULL, &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "row 2") != NULL);
  CHECK_EQ_INT(eval_rc(f, "areaUnderROC", NULL, &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "row 2") != NULL);
  dlp_frame_free(f);
  y[2] = 1;
  prob[5] = NAN;
  f = make_frame(y, p, prob, 2, NULL, 3);
  CHECK_EQ_INT(eval_rc(f, "logLoss", NULL, &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "row 2") != NULL);
  CHECK_EQ_INT(eval_rc(f, "areaUnderPR", NULL, &v), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "row 2") != NULL);
  dlp_frame_free(f);
}

TEST(log_loss_clips_at_eps) {
  double y[2] = {0, 1}, p[2] = {0, 0}, v;
  float prob[4] = {1, 0, 1, 0}; /* row 1: probability 0 for its label */
  dlp_frame *f = make_frame(y, p, prob, 2, NULL, 2);
  dlp_eval_opts o;
  dlp_eval_opts_init(&o);
  CHECK_NEAR(o.eps, 1e-15, 0);
  o.eps = 1e-3;
  CHECK_OK(ctx, dlp_evaluate(ctx, f, "logLoss", &o, &v));
  CHECK_NEAR(v, -log(1e-3) / 2, 1e-15);
  dlp_frame_free(f);
}

TEST(string_label_column_is_a_schema_error) {
  dlp_frame *f = NULL;
  double v;
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "label", DLP_TYPE_STRING, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "prediction", DLP_TYPE_DOUBLE, 0));
  CHECK_OK(ctx, dlp_frame_add_row(ctx, f, NULL));
  CHECK_EQ_INT(eval_rc(f, "accuracy", NULL, &v), DLP_ERR_SCHEMA);
  CHECK(strstr(dlp_errmsg(ctx), "label") != NULL);
  dlp_frame_free(f);
}

/* Worked by hand: scores .9 .8 .8 .1, labels 1 0 1 0. ROC points (0,0)
 * (0,.5) (.5,1) (1,1): area .375 + .5 = .875. PR points (0,1) (.5,1)
 * (1,2/3) (1,.5): area .5 + 5/12. */
TEST(binary_areas_by_hand) {
  double s[4] = {0.9, 0.8, 0.8, 0.1}, y[4] = {1, 0, 1, 0}, roc, pr;
  CHECK_OK(ctx, ml_binary_areas(ctx, s, y, NULL, 4, &roc, &pr));
  CHECK_NEAR(roc, 0.875, 1e-15);
  CHECK_NEAR(pr, 0.5 + 5.0 / 12, 1e-15);
  /* Weight 2 on the first point is the same as listing it twice. */
  double s5[5] = {0.9, 0.9, 0.8, 0.8, 0.1}, y5[5] = {1, 1, 0, 1, 0};
  double w[4] = {2, 1, 1, 1}, roc5, pr5;
  CHECK_OK(ctx, ml_binary_areas(ctx, s, y, w, 4, &roc, &pr));
  CHECK_OK(ctx, ml_binary_areas(ctx, s5, y5, NULL, 5, &roc5, &pr5));
  CHECK_NEAR(roc, roc5, 1e-15);
  CHECK_NEAR(pr, pr5, 1e-15);
  /* One class only: MLlib's conventions (rates of an empty class are 0). */
  double neg[2] = {0, 0}, pos[2] = {1, 1};
  CHECK_OK(ctx, ml_binary_areas(ctx, s, neg, NULL, 2, &roc, &pr));
  CHECK_NEAR(roc, 0, 0);
  CHECK_NEAR(pr, 0, 0);
  CHECK_OK(ctx, ml_binary_areas(ctx, s, pos, NULL, 2, &roc, &pr));
  CHECK_NEAR(roc, 1, 0);
  CHECK_NEAR(pr, 1, 0);
  double bad[2] = {0, 2};
  CHECK_EQ_INT(ml_binary_areas(ctx, s, bad, NULL, 2, &roc, &pr), DLP_ERR_ARG);
  CHECK_EQ_INT(ml_binary_areas(ctx, s, y, NULL, 0, &roc, &pr), DLP_ERR_ARG);
}

/* The binary metrics through a frame: raw vector, else probability. */
TEST(binary_metrics_from_a_frame) {
  double y[4] = {1, 0, 1, 0}, p[4] = {1, 1, 1, 0}, v;
  float prob[8] = {0.1f, 0.9f, 0.2f, 0.8f, 0.2f, 0.8f, 0.9f, 0.1f};
  dlp_frame *f = make_frame(y, p, prob, 2, NULL, 4);
  CHECK_OK(ctx, eval_rc(f, "areaUnderROC", NULL, &v));
  CHECK_NEAR(v, 0.875, 1e-12);
  CHECK_OK(ctx, eval_rc(f, "areaUnderPR", NULL, &v));
  CHECK_NEAR(v, 0.5 + 5.0 / 12, 1e-12);
  dlp_frame_free(f);
}

/* The whole file, for the report tests (NULL when unreadable). */
static char *slurp(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  char *s = calloc(1, 1 << 20);
  if (s) s[fread(s, 1, (1 << 20) - 1, fp)] = '\0';
  fclose(fp);
  return s;
}

/* A features table (no image column), two classes: the report still has
 * every section, the binary areas, and escapes the class names. */
TEST(report_without_images) {
  double y[4] = {1, 0, 1, 0}, p[4] = {1, 1, 0, 0};
  float prob[8] = {0.1f, 0.9f, 0.2f, 0.8f, 0.6f, 0.4f, 0.9f, 0.1f};
  dlp_frame *f = make_frame(y, p, prob, 2, NULL, 4);
  const char *names[2] = {"<none>", "a & b"};
  dlp_report_opts ro;
  dlp_report_opts_init(&ro);
  CHECK_EQ_INT(ro.max_examples, 60);
  CHECK_EQ_INT(ro.thumb_size, 128);
  ro.labels = names;
  ro.n_labels = 2;
  char path[] = "/tmp/dlp_test_eval_XXXXXX.html";
  int fd = mkstemps(path, 5);
  CHECK(fd >= 0);
  close(fd);
  CHECK_OK(ctx, dlp_report_write_html(ctx, f, NULL, &ro, path));
  char *html = slurp(path);
  CHECK(html != NULL);
  if (html) {
    CHECK(strstr(html, "&lt;none&gt;") != NULL);
    CHECK(strstr(html, "a &amp; b") != NULL);
    CHECK(strstr(html, "<none>") == NULL);
    CHECK(strstr(html, "data-metric=\"areaUnderROC\"") != NULL);
    CHECK(strstr(html, "Showing 2 of 2 misclassified") != NULL);
    CHECK(strstr(html, "<img") == NULL);
    CHECK(strstr(html, "</html>") != NULL);
  }
  free(html);
  /* Bad evaluation columns: the report says why, and writes nothing. */
  dlp_eval_opts eo;
  dlp_eval_opts_init(&eo);
  eo.label_col = "nope";
  unlink(path);
  CHECK_EQ_INT(dlp_report_write_html(ctx, f, &eo, &ro, path),
               DLP_ERR_NOT_FOUND);
  CHECK(strstr(dlp_errmsg(ctx), "nope") != NULL);
  CHECK(access(path, F_OK) != 0);
  CHECK_EQ_INT(
      dlp_report_write_html(ctx, f, NULL, &ro, "/nonexistent-dir/r.html"),
      DLP_ERR_IO);
  dlp_frame_free(f);
}

/* Many classes: no heat map (it would be unreadable), the rest is there. */
TEST(report_many_classes) {
  enum { N = 70 };
  double y[N], p[N];
  for (int i = 0; i < N; i++)
    y[i] = p[i] = i;
  p[3] = 5;
  dlp_frame *f = make_frame(y, p, NULL, 2, NULL, N);
  char path[] = "/tmp/dlp_test_eval_XXXXXX.html";
  int fd = mkstemps(path, 5);
  CHECK(fd >= 0);
  close(fd);
  CHECK_OK(ctx, dlp_report_write_html(ctx, f, NULL, NULL, path));
  char *html = slurp(path);
  CHECK(html && strstr(html, "70 classes: too many to draw") != NULL);
  CHECK(html && strstr(html, "data-true=") == NULL);
  CHECK(html && strstr(html, "<tr data-class=\"69\">") != NULL);
  CHECK(html && strstr(html, "Showing 1 of 1") != NULL);
  free(html);
  unlink(path);
  dlp_frame_free(f);
}

int main(void) {
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  RUN(metric_names_and_direction);
  RUN(empty_frame_is_an_error);
  RUN(all_null_rows_are_an_error);
  RUN(null_rows_are_skipped);
  RUN(zero_total_weight_is_an_error);
  RUN(single_class);
  RUN(k_from_predictions);
  RUN(unknown_metric_lists_the_names);
  RUN(missing_columns);
  RUN(bad_values_name_the_row);
  RUN(log_loss_clips_at_eps);
  RUN(string_label_column_is_a_schema_error);
  RUN(binary_areas_by_hand);
  RUN(binary_metrics_from_a_frame);
  RUN(report_without_images);
  RUN(report_many_classes);
  dlp_ctx_free(ctx);
  return test_summary();
}
