/* test_logreg.c - the optimisers on functions with known minima, and
 * logistic regression's invariants: optimality, thread-count invariance,
 * weights as repeated rows, prediction by hand, errors that name the row.
 * (Agreement with scikit-learn: tests/ref/test_logreg_vs_sklearn.py.) */
#include "ml/ml.h"
#include "test.h"

#include <stdlib.h>

static dlp_ctx *new_ctx(void) {
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) abort();
  return ctx;
}

/* --- optimiser ------------------------------------------------------------ */

/* Chained Rosenbrock in n dimensions: minimum 0 at (1, ..., 1). */
static int rosenbrock(void *user, const double *x, double *f, double *g) {
  size_t n = *(size_t *)user;
  *f = 0;
  for (size_t i = 0; i < n; i++)
    g[i] = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    double a = x[i + 1] - x[i] * x[i], b = 1 - x[i];
    *f += 100 * a * a + b * b;
    g[i] += -400 * x[i] * a - 2 * b;
    g[i + 1] += 200 * a;
  }
  return DLP_OK;
}

TEST(lbfgs_finds_rosenbrock_minimum) {
  dlp_ctx *ctx = new_ctx();
  for (size_t n = 2; n <= 10; n += 8) {
    double x[10];
    for (size_t i = 0; i < n; i++)
      x[i] = i % 2 ? 1.0 : -1.2;
    ml_optim_opts o = {.max_iter = 1000, .tol = 1e-15, .memory = 10};
    ml_optim_result r;
    CHECK_OK(ctx, ml_minimize(ctx, rosenbrock, &n, x, n, &o, &r));
    for (size_t i = 0; i < n; i++)
      CHECK_NEAR(x[i], 1.0, 1e-6);
    CHECK(r.f < 1e-12);
    /* the history starts at f(x0) and never goes up */
    CHECK(r.history && r.history[0] > 1);
    for (int i = 0; r.history && i < r.iterations; i++)
      CHECK(r.history[i + 1] <= r.history[i]);
    free(r.history);
  }
  dlp_ctx_free(ctx);
}

typedef struct quad {
  const double *a, *c;
  size_t n;
} quad;

/* 0.5 sum a_i (x_i - c_i)^2 */
static int separable_quadratic(void *user, const double *x, double *f,
                               double *g) {
  const quad *q = user;
  *f = 0;
  for (size_t i = 0; i < q->n; i++) {
    double t = x[i] - q->c[i];
    *f += 0.5 * q->a[i] * t * t;
    g[i] = q->a[i] * t;
  }
  return DLP_OK;
}

TEST(owlqn_solves_l1_quadratic_by_soft_threshold) {
  /* argmin 0.5 a (x - c)^2 + l |x| = sign(c) max(|c| - l/a, 0) */
  double a[6] = {1, 2, 0.5, 4, 1, 3}, c[6] = {3, -0.2, -2, 0.1, 0.5, -5};
  double l1[6] = {1, 1, 0.5, 0.2, 0.5, 0};
  quad q = {a, c, 6};
  double x[6] = {0};
  ml_optim_opts o = {.max_iter = 500, .tol = 1e-15, .l1 = l1};
  ml_optim_result r;
  dlp_ctx *ctx = new_ctx();
  CHECK_OK(ctx, ml_minimize(ctx, separable_quadratic, &q, x, 6, &o, &r));
  double fstar = 0;
  for (int i = 0; i < 6; i++) {
    double mag = fabs(c[i]) - l1[i] / a[i];
    double want = mag > 0 ? copysign(mag, c[i]) : 0;
    CHECK_NEAR(x[i], want, 1e-9);
    if (want == 0) CHECK(x[i] == 0); /* exactly zero, not just small */
    fstar += 0.5 * a[i] * (want - c[i]) * (want - c[i]) + l1[i] * fabs(want);
  }
  CHECK_NEAR(r.f, fstar, 1e-12);
  free(r.history);
  dlp_ctx_free(ctx);
}

/* --- data ----------------------------------------------------------------- */

typedef struct dataset {
  size_t n, d;
  float *X;
  double *y, *w;
} dataset;

/* Labels from a noisy linear rule over K classes; feature j scaled by
 * (j % 5 + 1) / 2; column 3 constant. */
static dataset make_data(size_t n, size_t d, int K, uint64_t seed) {
  dataset s = {n, d, malloc(n * d * sizeof(float)), malloc(n * sizeof(double)),
               malloc(n * sizeof(double))};
  dlp_rng r;
  dlp_rng_seed(&r, seed);
  for (size_t i = 0; i < n; i++) {
    double best = -1e300;
    for (size_t j = 0; j < d; j++)
      s.X[i * d + j] = (float)((dlp_rng_uniform(&r) * 2 - 1) * (j % 5 + 1) / 2);
    s.X[i * d + 3] = 1.5f;
    for (int k = 0; k < K; k++) {
      double m = dlp_rng_uniform(&r) * 1.5;
      for (size_t j = 0; j < 4 && j < d; j++)
        m += s.X[i * d + (j + (size_t)k) % d] * (k % 2 ? -1.0 : 1.0);
      if (m > best) best = m, s.y[i] = k;
    }
    s.w[i] = 0.25 + dlp_rng_uniform(&r) * 2;
  }
  return s;
}

static void free_data(dataset *s) { free(s->X), free(s->y), free(s->w); }

/* --- logistic regression -------------------------------------------------- */

TEST(fit_is_optimal_and_reports_its_objective) {
  dataset s = make_data(400, 9, 3, 11);
  dlp_ctx *ctx = new_ctx();
  for (int multi = 0; multi < 2; multi++) {
    double *y = s.y;
    double yb[400];
    if (!multi) { /* binary version: class 0 vs the rest */
      for (size_t i = 0; i < s.n; i++)
        yb[i] = s.y[i] > 0;
      y = yb;
    }
    ml_lr_params p;
    ml_lr_params_init(&p);
    p.reg_param = 0.02;
    p.tol = 1e-14;
    p.max_iter = 1000;
    ml_lr_fit fit;
    CHECK_OK(ctx, ml_lr_train(ctx, s.X, s.n, s.d, y, s.w, &p, &fit));
    CHECK_EQ_INT(fit.k, multi ? 3 : 1);
    CHECK_EQ_INT(fit.multinomial, multi);
    double f = ml_lr_objective(&fit, s.X, s.n, s.d, y, s.w, &p);
    CHECK_NEAR(f, fit.objective, 1e-12);
    for (size_t k = 0; k < fit.k; k++)
      CHECK(fit.coef[k * s.d + 3] == 0);
    /* a local perturbation of any coefficient or intercept only hurts */
    for (size_t i = 0; i < fit.k * s.d + fit.k; i++) {
      double *v =
          i < fit.k * s.d ? &fit.coef[i] : &fit.intercept[i - fit.k * s.d];
      double keep = *v;
      for (int sg = -1; sg <= 1; sg += 2) {
        *v = keep + sg * 1e-4;
        CHECK(ml_lr_objective(&fit, s.X, s.n, s.d, y, s.w, &p) >= f - 1e-13);
      }
      *v = keep;
    }
    if (multi) { /* MLlib centres the multinomial intercepts */
      double sum = 0;
      for (size_t k = 0; k < 3; k++)
        sum += fit.intercept[k];
      CHECK_NEAR(sum, 0, 1e-12);
    }
    ml_lr_fit_clear(&fit);
  }
  dlp_ctx_free(ctx);
  free_data(&s);
}

static int fits_equal(const ml_lr_fit *a, const ml_lr_fit *b) {
  return a->k == b->k && a->iterations == b->iterations &&
         memcmp(a->coef, b->coef, a->k * a->dim * sizeof(double)) == 0 &&
         memcmp(a->intercept, b->intercept, a->k * sizeof(double)) == 0 &&
         a->objective == b->objective;
}

TEST(fit_is_bit_identical_for_any_thread_count) {
  size_t n =
      getenv("DLP_SANITIZED") && atoi(getenv("DLP_SANITIZED")) ? 1500 : 5000;
  dataset s = make_data(n, 37, 4, 5);
  dlp_ctx *ctx = new_ctx();
  for (int l1 = 0; l1 < 2; l1++) {
    ml_lr_params p;
    ml_lr_params_init(&p);
    p.reg_param = 0.01;
    p.elastic_net = l1 ? 0.5 : 0;
    p.max_iter = 30;
    p.threads = 1;
    ml_lr_fit ref, fit;
    CHECK_OK(ctx, ml_lr_train(ctx, s.X, s.n, s.d, s.y, s.w, &p, &ref));
    for (int t = 2; t <= 7; t += 5) {
      p.threads = t;
      CHECK_OK(ctx, ml_lr_train(ctx, s.X, s.n, s.d, s.y, s.w, &p, &fit));
      CHECK(fits_equal(&ref, &fit));
      ml_lr_fit_clear(&fit);
    }
    ml_lr_fit_clear(&ref);
  }
  dlp_ctx_free(ctx);
  free_data(&s);
}

TEST(integer_weight_equals_repeated_rows) {
  /* Without standardization the penalty does not depend on the weights'
   * variance formula, so weight 2 must be the same as the row twice. */
  dataset s = make_data(120, 5, 2, 3);
  size_t n2 = 0;
  float *X2 = malloc(2 * s.n * s.d * sizeof *X2);
  double *y2 = malloc(2 * s.n * sizeof *y2), *w = malloc(s.n * sizeof *w);
  for (size_t i = 0; i < s.n; i++) {
    w[i] = 1 + (i % 2);
    for (size_t c = 0; c < w[i]; c++, n2++) {
      memcpy(X2 + n2 * s.d, s.X + i * s.d, s.d * sizeof *X2);
      y2[n2] = s.y[i];
    }
  }
  ml_lr_params p;
  ml_lr_params_init(&p);
  p.reg_param = 0.05;
  p.elastic_net = 0.4;
  p.standardization = 0;
  p.tol = 1e-14;
  p.max_iter = 500;
  dlp_ctx *ctx = new_ctx();
  ml_lr_fit a, b;
  CHECK_OK(ctx, ml_lr_train(ctx, s.X, s.n, s.d, s.y, w, &p, &a));
  CHECK_OK(ctx, ml_lr_train(ctx, X2, n2, s.d, y2, NULL, &p, &b));
  for (size_t j = 0; j < s.d; j++)
    CHECK_NEAR(a.coef[j], b.coef[j], 1e-7);
  CHECK_NEAR(a.intercept[0], b.intercept[0], 1e-7);
  CHECK_NEAR(a.objective, b.objective, 1e-12);
  ml_lr_fit_clear(&a);
  ml_lr_fit_clear(&b);
  dlp_ctx_free(ctx);
  free(X2), free(y2), free(w);
  free_data(&s);
}

TEST(predict_row_matches_hand_computation) {
  double coef[6] = {0.5, -1, 2, 1, 1, 0}, icpt[3] = {0.25, -0.5, 0.25};
  ml_lr_fit bin = {.multinomial = 0,
                   .n_classes = 2,
                   .k = 1,
                   .dim = 2,
                   .coef = coef,
                   .intercept = icpt,
                   .threshold = 0.5};
  float x[2] = {1.0f, 0.5f};
  double raw[3], prob[3], pred;
  ml_lr_predict_row(&bin, x, raw, prob, &pred);
  double m = 0.25 + 0.5 * 1 - 1 * 0.5, s = 1 / (1 + exp(-m));
  CHECK_EQ_INT(ml_lr_n_outputs(&bin), 2);
  CHECK_NEAR(raw[0], -m, 1e-15);
  CHECK_NEAR(raw[1], m, 1e-15);
  CHECK_NEAR(prob[0], 1 - s, 1e-15);
  CHECK_NEAR(prob[1], s, 1e-15);
  CHECK(pred == 1); /* s = 0.562 > 0.5 */
  bin.threshold = 0.6;
  ml_lr_predict_row(&bin, x, raw, NULL, &pred);
  CHECK(pred == 0);

  ml_lr_fit multi = {.multinomial = 1,
                     .n_classes = 3,
                     .k = 3,
                     .dim = 2,
                     .coef = coef,
                     .intercept = icpt};
  ml_lr_predict_row(&multi, x, raw, prob, &pred);
  double want[3] = {0.25, -0.5 + 2 + 0.5, 0.25 + 1};
  double z = exp(want[0]) + exp(want[1]) + exp(want[2]);
  CHECK_EQ_INT(ml_lr_n_outputs(&multi), 3);
  for (int k = 0; k < 3; k++) {
    CHECK_NEAR(raw[k], want[k], 1e-15);
    CHECK_NEAR(prob[k], exp(want[k]) / z, 1e-15);
  }
  CHECK(pred == 1);
  /* ties go to the first class; huge margins do not overflow */
  double big[6] = {0, 0, 0, 0, 0, 0}, bi[3] = {800, 800, -800};
  multi.coef = big, multi.intercept = bi;
  ml_lr_predict_row(&multi, x, raw, prob, &pred);
  CHECK(pred == 0);
  CHECK_NEAR(prob[0], 0.5, 1e-15);
  CHECK(prob[2] == 0);
}

/* Expects ml_lr_train to fail with DLP_ERR_ARG and a message holding
 * `needle`. */
static void expect_arg_error(const float *X, size_t n, size_t d,
                             const double *y, const double *w,
                             const ml_lr_params *p, const char *needle) {
  dlp_ctx *ctx = new_ctx();
  ml_lr_fit fit;
  int rc = ml_lr_train(ctx, X, n, d, y, w, p, &fit);
  CHECK_EQ_INT(rc, DLP_ERR_ARG);
  if (!strstr(dlp_errmsg(ctx), needle))
    fprintf(stderr, "message '%s' lacks '%s'\n", dlp_errmsg(ctx), needle);
  CHECK(strstr(dlp_errmsg(ctx), needle) != NULL);
  CHECK(fit.coef == NULL);
  dlp_ctx_free(ctx);
}

TEST(bad_input_is_refused_with_the_row) {
  dataset s = make_data(40, 4, 3, 9);
  ml_lr_params p;
  ml_lr_params_init(&p);
  double y[40];
  memcpy(y, s.y, sizeof y);
  y[17] = -1;
  expect_arg_error(s.X, 40, 4, y, NULL, &p, "label -1 at row 17");
  y[17] = 1.5;
  expect_arg_error(s.X, 40, 4, y, NULL, &p, "label 1.5 at row 17");
  y[17] = NAN;
  expect_arg_error(s.X, 40, 4, y, NULL, &p, "at row 17");
  memcpy(y, s.y, sizeof y);
  double w[40];
  for (int i = 0; i < 40; i++)
    w[i] = 1;
  w[5] = -2;
  expect_arg_error(s.X, 40, 4, y, w, &p, "weight -2 at row 5");
  w[5] = 0;
  float keep = s.X[21 * 4 + 2];
  s.X[21 * 4 + 2] = NAN;
  expect_arg_error(s.X, 40, 4, y, w, &p, "feature 2 at row 21");
  s.X[21 * 4 + 2] = keep;
  for (int i = 0; i < 40; i++)
    y[i] = 2;
  expect_arg_error(s.X, 40, 4, y, NULL, &p, "at least two classes");
  expect_arg_error(s.X, 0, 4, y, NULL, &p, "no rows");
  p.family = ML_FAMILY_BINOMIAL;
  expect_arg_error(s.X, 40, 4, s.y, NULL, &p, "binomial");
  ml_lr_params_init(&p);
  p.n_classes = 2;
  expect_arg_error(s.X, 40, 4, s.y, NULL, &p, "declared number of classes 2");
  ml_lr_params_init(&p);
  p.elastic_net = 1.5;
  expect_arg_error(s.X, 40, 4, s.y, NULL, &p, "elasticNetParam");
  ml_lr_params_init(&p);
  p.threshold = -0.1;
  expect_arg_error(s.X, 40, 4, s.y, NULL, &p, "threshold");
  free_data(&s);
}

static int cancel_at_once(void *user, const char *what, uint64_t done,
                          uint64_t total) {
  ++*(int *)user;
  return 1;
}

TEST(progress_callback_can_cancel_a_fit) {
  dataset s = make_data(300, 6, 3, 4);
  ml_lr_params p;
  ml_lr_params_init(&p);
  dlp_ctx *ctx = new_ctx();
  int calls = 0;
  dlp_ctx_set_progress(ctx, cancel_at_once, &calls);
  ml_lr_fit fit;
  CHECK_EQ_INT(ml_lr_train(ctx, s.X, s.n, s.d, s.y, NULL, &p, &fit),
               DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "cancelled") != NULL);
  CHECK(calls == 1);
  CHECK(fit.coef == NULL && fit.history == NULL);
  dlp_ctx_free(ctx);
  free_data(&s);
}

TEST(declared_classes_and_multinomial_family) {
  dataset s = make_data(200, 4, 2, 21);
  ml_lr_params p;
  ml_lr_params_init(&p);
  p.n_classes = 4; /* classes 2 and 3 never seen: still 4 outputs */
  dlp_ctx *ctx = new_ctx();
  ml_lr_fit fit;
  CHECK_OK(ctx, ml_lr_train(ctx, s.X, s.n, s.d, s.y, NULL, &p, &fit));
  CHECK_EQ_INT(fit.n_classes, 4);
  CHECK_EQ_INT(fit.k, 4);
  CHECK_EQ_INT(ml_lr_n_outputs(&fit), 4);
  ml_lr_fit_clear(&fit);
  ml_lr_params_init(&p);
  p.family = ML_FAMILY_MULTINOMIAL;
  CHECK_OK(ctx, ml_lr_train(ctx, s.X, s.n, s.d, s.y, NULL, &p, &fit));
  CHECK_EQ_INT(fit.k, 2);
  CHECK_EQ_INT(fit.multinomial, 1);
  ml_lr_fit_clear(&fit);
  ml_lr_fit_clear(NULL);
  dlp_ctx_free(ctx);
  free_data(&s);
}

int main(void) {
  RUN(lbfgs_finds_rosenbrock_minimum);
  RUN(owlqn_solves_l1_quadratic_by_soft_threshold);
  RUN(fit_is_optimal_and_reports_its_objective);
  RUN(fit_is_bit_identical_for_any_thread_count);
  RUN(integer_weight_equals_repeated_rows);
  RUN(predict_row_matches_hand_computation);
  RUN(bad_input_is_refused_with_the_row);
  RUN(declared_classes_and_multinomial_family);
  RUN(progress_callback_can_cancel_a_fit);
  return test_summary();
}
