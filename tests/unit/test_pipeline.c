/* test_pipeline.c - stage classes and their parameter tables, set/get,
 * StringIndexer orders and handleInvalid, IndexToString, pipeline fit and
 * transform (skip rules, LR stage errors), the tuner's ml_* helpers, and the
 * whole DeepImageFeaturizer -> StringIndexer -> LR -> IndexToString flow
 * on generated images with random weights. */
#include "ml/stage.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static dlp_ctx *ctx;

/* --- frames -------------------------------------------------------------- */

static dlp_frame *label_frame(const char *const *labels, size_t n) {
  dlp_frame *f = NULL;
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "label", DLP_TYPE_STRING, 0));
  for (size_t i = 0; i < n; i++) {
    size_t r;
    CHECK_OK(ctx, dlp_frame_add_row(ctx, f, &r));
    if (labels[i]) CHECK_OK(ctx, dlp_frame_set_string(ctx, f, 0, r, labels[i]));
  }
  return f;
}

/* n rows of d features: class c ("c0", "c1", ...) centred at +-2 on
 * feature c % d, Gaussian-ish noise; labels in a string column. */
static dlp_frame *blobs(size_t n, size_t d, int k, uint64_t seed) {
  dlp_frame *f = NULL;
  dlp_rng r;
  dlp_rng_seed(&r, seed);
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "features", DLP_TYPE_VECTOR, d));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "label", DLP_TYPE_STRING, 0));
  float x[16];
  for (size_t i = 0; i < n; i++) {
    int c = (int)(i % (size_t)k);
    for (size_t j = 0; j < d; j++)
      x[j] = (float)(dlp_rng_uniform(&r) + dlp_rng_uniform(&r) - 1.0);
    x[c % d] += c < (int)d ? 2.0f : -2.0f;
    char lab[8];
    snprintf(lab, sizeof lab, "c%d", c);
    size_t row;
    CHECK_OK(ctx, dlp_frame_add_row(ctx, f, &row));
    CHECK_OK(ctx, dlp_frame_set_vector(ctx, f, 0, row, x));
    CHECK_OK(ctx, dlp_frame_set_string(ctx, f, 1, row, lab));
  }
  return f;
}

static dlp_stage *stage(const char *cls) {
  dlp_stage *s = NULL;
  CHECK_OK(ctx, dlp_stage_new(ctx, cls, &s));
  return s;
}

static void set(dlp_stage *s, const char *p, const char *v) {
  CHECK_OK(ctx, dlp_stage_set(ctx, s, p, v));
}

static long col(const dlp_frame *f, const char *name) {
  long c = dlp_frame_col_index(f, name);
  CHECK(c >= 0);
  return c;
}

/* --- parameters ---------------------------------------------------------- */

TEST(every_default_validates_and_reads_back) {
  const char *all[] = {"DeepImageFeaturizer", "StringIndexer",
                       "LogisticRegression",  "IndexToString",
                       "StringIndexerModel",  "LogisticRegressionModel"};
  size_t nclass = 0;
  while (dlp_stage_class_at(nclass))
    nclass++;
  CHECK_EQ_INT(nclass, 4);
  for (size_t c = 0; c < 6; c++) {
    size_t n;
    const dlp_param_desc *d = dlp_stage_class_params(all[c], &n);
    CHECK(d != NULL && n > 0);
    dlp_stage *s = NULL;
    if (c < 4) {
      CHECK_OK(ctx, dlp_stage_new(ctx, all[c], &s));
    } else {
      /* fitted classes only come from fit/load */
      CHECK_EQ_INT(dlp_stage_new(ctx, all[c], &s), DLP_ERR_ARG);
      CHECK(strstr(dlp_errmsg(ctx), "fitting") != NULL);
      CHECK_OK(ctx, ml_stage_make(ctx, ml_class_find(all[c]), &s));
    }
    for (size_t i = 0; s && i < n; i++) {
      CHECK(d[i].name && d[i].cli_name && d[i].def && d[i].doc);
      CHECK((d[i].type == DLP_PARAM_ENUM) == (d[i].choices != NULL));
      const char *v = dlp_stage_get(s, d[i].name);
      CHECK(v != NULL);
      /* the CLI name reaches the same parameter */
      CHECK(v == dlp_stage_get(s, d[i].cli_name));
      if (d[i].type == DLP_PARAM_INT || d[i].type == DLP_PARAM_DOUBLE)
        CHECK(strtod(v, NULL) == strtod(d[i].def, NULL));
      else
        CHECK_STR(v, d[i].def);
      char def[64];
      snprintf(def, sizeof def, "%s", d[i].def);
      CHECK_OK(ctx, dlp_stage_set(ctx, s, d[i].name, def));
    }
    dlp_stage_free(s);
  }
  CHECK(dlp_stage_class_params("Nope", NULL) == NULL);
  dlp_stage *s = NULL;
  CHECK_EQ_INT(dlp_stage_new(ctx, "Nope", &s), DLP_ERR_ARG);
  CHECK(s == NULL && strstr(dlp_errmsg(ctx), "LogisticRegression") != NULL);
}

TEST(bad_values_are_refused_with_the_reason) {
  dlp_stage *s = stage("LogisticRegression");
  struct {
    const char *p, *v, *why;
  } bad[] = {{"regParam", "-0.1", ">= 0"},
             {"reg", "abc", "not a finite number"},
             {"reg", "1e400", "not a finite number"},
             {"reg", "nan", "not a finite number"},
             {"reg", "0.1x", "not a finite number"},
             {"reg", "", "not a finite number"},
             {"elastic-net", "1.5", "[0, 1]"},
             {"maxIter", "2.5", "not an integer"},
             {"max-iter", "2000000", "[0, 1e+06]"},
             {"family", "poisson", "auto|binomial|multinomial"},
             {"fitIntercept", "maybe", "not a boolean"},
             {"threshold", "-1", "[0, 1]"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *before = dlp_stage_get(s, bad[i].p);
    char keep[64];
    snprintf(keep, sizeof keep, "%s", before);
    CHECK_EQ_INT(dlp_stage_set(ctx, s, bad[i].p, bad[i].v), DLP_ERR_ARG);
    if (!strstr(dlp_errmsg(ctx), bad[i].why))
      fprintf(stderr, "message for %s=%s: %s\n", bad[i].p, bad[i].v,
              dlp_errmsg(ctx));
    CHECK(strstr(dlp_errmsg(ctx), bad[i].why) != NULL);
    CHECK_STR(dlp_stage_get(s, bad[i].p), keep); /* unchanged */
  }
  CHECK_EQ_INT(dlp_stage_set(ctx, s, "nope", "1"), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "regParam (reg)") != NULL);
  CHECK(dlp_stage_get(s, "nope") == NULL);
  dlp_stage_free(s);
  s = stage("IndexToString");
  CHECK_EQ_INT(dlp_stage_set(ctx, s, "labels", "[1, 2]"), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_stage_set(ctx, s, "labels", "a,b"), DLP_ERR_ARG);
  set(s, "labels", "[\"a\", \"b\"]");
  dlp_stage_free(s);
}

TEST(set_get_round_trips_and_is_canonical) {
  dlp_stage *s = stage("LogisticRegression");
  const double vals[] = {0.1, 1.0 / 3.0, 5e-324, 0.30000000000000004, 7};
  for (size_t i = 0; i < 5; i++) {
    char t[64];
    snprintf(t, sizeof t, "%.17g", vals[i]);
    set(s, "reg", t);
    CHECK(strtod(dlp_stage_get(s, "regParam"), NULL) == vals[i]);
  }
  set(s, "reg", "0.1");
  CHECK_STR(dlp_stage_get(s, "regParam"), "0.1");
  set(s, "max-iter", "1e2");
  CHECK_STR(dlp_stage_get(s, "maxIter"), "100");
  const char *yes[] = {"yes", "1", "TRUE", "true"};
  for (size_t i = 0; i < 4; i++) {
    set(s, "fit-intercept", "no");
    CHECK_STR(dlp_stage_get(s, "fitIntercept"), "false");
    set(s, "fit-intercept", yes[i]);
    CHECK_STR(dlp_stage_get(s, "fitIntercept"), "true");
  }
  set(s, "weight-col", "w");
  CHECK_STR(dlp_stage_get(s, "weightCol"), "w");
  /* a clone is deep and equal */
  dlp_stage *c = NULL;
  CHECK_OK(ctx, ml_stage_clone(ctx, s, &c));
  size_t n;
  const dlp_param_desc *d = dlp_stage_class_params("LogisticRegression", &n);
  for (size_t i = 0; c && i < n; i++) {
    CHECK_STR(dlp_stage_get(c, d[i].name), dlp_stage_get(s, d[i].name));
    CHECK(dlp_stage_get(c, d[i].name) != dlp_stage_get(s, d[i].name));
  }
  CHECK(ml_stage_is_estimator(c) && !ml_stage_is_estimator(NULL));
  dlp_stage_free(c);
  dlp_stage_free(s);
}

/* --- StringIndexer / IndexToString --------------------------------------- */

/* The expected order, computed the slow, obvious way. */
static void expected_order(const char *const *labels, size_t n,
                           const char *order, const char **out, size_t *k) {
  size_t m = 0, cnt[64];
  for (size_t i = 0; i < n; i++) {
    if (!labels[i]) continue;
    size_t j = 0;
    while (j < m && strcmp(out[j], labels[i]) != 0)
      j++;
    if (j == m) out[m] = labels[i], cnt[m++] = 0;
    cnt[j]++;
  }
  int freq = order[0] == 'f', asc = strstr(order, "Asc") != NULL;
  for (size_t a = 0; a < m; a++) /* selection sort */
    for (size_t b = a + 1; b < m; b++) {
      int c = strcmp(out[b], out[a]);
      int before =
          freq ? (cnt[b] != cnt[a] ? (asc ? cnt[b] < cnt[a] : cnt[b] > cnt[a])
                                   : c < 0)
               : (asc ? c < 0 : c > 0);
      if (before) {
        const char *t = out[a];
        size_t tc = cnt[a];
        out[a] = out[b], cnt[a] = cnt[b];
        out[b] = t, cnt[b] = tc;
      }
    }
  *k = m;
}

static dlp_pipeline_model *fit_one(dlp_stage *s, const dlp_frame *f) {
  dlp_pipeline *p = NULL;
  dlp_pipeline_model *pm = NULL;
  CHECK_OK(ctx, dlp_pipeline_new(ctx, &p));
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, s));
  CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, f, &pm));
  dlp_pipeline_free(p);
  return pm;
}

TEST(string_indexer_orders_like_mllib) {
  const char *labels[] = {"b", "a", "zeta", "b", "d", "a", "b", "d",
                          "a", "c", "Z",    "c", "e", "e", "e", "e"};
  size_t n = sizeof labels / sizeof labels[0];
  dlp_frame *f = label_frame(labels, n);
  const char *orders[] = {"frequencyDesc", "frequencyAsc", "alphabetDesc",
                          "alphabetAsc"};
  for (size_t o = 0; o < 4; o++) {
    dlp_stage *s = stage("StringIndexer");
    if (o) set(s, "string-order", orders[o]);
    dlp_pipeline_model *pm = fit_one(s, f);
    const char *want[64];
    size_t k, got_n = 0;
    expected_order(labels, n, orders[o], want, &k);
    const char *const *got = dlp_pipeline_model_labels(pm, &got_n);
    CHECK_EQ_INT(got_n, k);
    for (size_t i = 0; got && i < k && i < got_n; i++)
      CHECK_STR(got[i], want[i]);
    dlp_frame *t = NULL;
    CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, f, &t));
    long ic = col(t, "indexedLabel");
    CHECK_EQ_INT(dlp_frame_col_type(t, (size_t)ic), DLP_TYPE_DOUBLE);
    for (size_t r = 0; got && r < n; r++) {
      double v = -1;
      CHECK(dlp_frame_get_double(t, (size_t)ic, r, &v));
      CHECK(v >= 0 && v < (double)got_n &&
            strcmp(got[(size_t)v], labels[r]) == 0);
    }
    CHECK_EQ_INT(dlp_frame_ncols(f), 1); /* the input is not modified */
    dlp_frame_free(t);
    dlp_pipeline_model_free(pm);
  }
  dlp_frame_free(f);
}

TEST(string_indexer_handle_invalid) {
  const char *train[] = {"x", "y", "y"}, *test[] = {"y", "new", NULL, "x"};
  dlp_frame *tr = label_frame(train, 3), *te = label_frame(test, 4);
  dlp_frame *withnull = label_frame(test, 4);
  /* error: unseen and null labels fail, naming the row */
  dlp_stage *s = stage("StringIndexer");
  dlp_pipeline_model *pm = fit_one(s, tr);
  dlp_frame *t = NULL;
  CHECK_EQ_INT(dlp_pipeline_model_transform(ctx, pm, te, &t), DLP_ERR_ARG);
  CHECK(t == NULL && strstr(dlp_errmsg(ctx), "unseen label 'new' in row 1"));
  dlp_pipeline_model_free(pm);
  s = stage("StringIndexer");
  dlp_pipeline *p = NULL;
  CHECK_OK(ctx, dlp_pipeline_new(ctx, &p));
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, s));
  CHECK_EQ_INT(dlp_pipeline_fit(ctx, p, withnull, &pm), DLP_ERR_ARG);
  CHECK(pm == NULL && strstr(dlp_errmsg(ctx), "row 2 has a null label"));
  dlp_pipeline_free(p);
  /* skip drops them; keep gives numLabels */
  const char *modes[] = {"skip", "keep"};
  for (int m = 0; m < 2; m++) {
    s = stage("StringIndexer");
    set(s, "handleInvalid", modes[m]);
    pm = fit_one(s, tr);
    CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, te, &t));
    CHECK_EQ_INT(dlp_frame_nrows(t), m ? 4 : 2);
    long ic = col(t, "indexedLabel");
    double want_skip[] = {0, 1}, want_keep[] = {0, 2, 2, 1};
    for (size_t r = 0; r < dlp_frame_nrows(t); r++) {
      double v = -1;
      CHECK(dlp_frame_get_double(t, (size_t)ic, r, &v));
      CHECK(v == (m ? want_keep[r] : want_skip[r]));
    }
    dlp_frame_free(t);
    dlp_pipeline_model_free(pm);
  }
  dlp_frame_free(tr);
  dlp_frame_free(te);
  dlp_frame_free(withnull);
}

TEST(string_indexer_reads_int64_labels) {
  dlp_frame *f = NULL;
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "label", DLP_TYPE_INT64, 0));
  const int64_t v[] = {10, 2, 10, -1, 2, 10};
  for (size_t i = 0; i < 6; i++) {
    CHECK_OK(ctx, dlp_frame_add_row(ctx, f, NULL));
    CHECK_OK(ctx, dlp_frame_set_int64(ctx, f, 0, i, v[i]));
  }
  dlp_pipeline_model *pm = fit_one(stage("StringIndexer"), f);
  size_t n;
  const char *const *l = dlp_pipeline_model_labels(pm, &n);
  CHECK_EQ_INT(n, 3);
  if (n == 3) {
    CHECK_STR(l[0], "10");
    CHECK_STR(l[1], "2");
    CHECK_STR(l[2], "-1");
  }
  dlp_pipeline_model_free(pm);
  dlp_frame_free(f);
  /* a double column is no label column */
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "label", DLP_TYPE_DOUBLE, 0));
  dlp_pipeline *p = NULL;
  CHECK_OK(ctx, dlp_pipeline_new(ctx, &p));
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, stage("StringIndexer")));
  CHECK_EQ_INT(dlp_pipeline_fit(ctx, p, f, &pm), DLP_ERR_SCHEMA);
  dlp_frame_free(f);
  /* nor is a missing column: the message lists what there is */
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "klass", DLP_TYPE_STRING, 0));
  CHECK_EQ_INT(dlp_pipeline_fit(ctx, p, f, &pm), DLP_ERR_NOT_FOUND);
  CHECK(strstr(dlp_errmsg(ctx), "'label'") && strstr(dlp_errmsg(ctx), "klass"));
  dlp_pipeline_free(p);
  dlp_frame_free(f);
}

TEST(index_to_string_maps_and_nulls_unknown_indices) {
  dlp_frame *f = NULL;
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "prediction", DLP_TYPE_DOUBLE, 0));
  const double v[] = {1, 0, 2, 3, -1, 0.5, NAN};
  for (size_t i = 0; i < 8; i++) {
    CHECK_OK(ctx, dlp_frame_add_row(ctx, f, NULL));
    if (i < 7) CHECK_OK(ctx, dlp_frame_set_double(ctx, f, 0, i, v[i]));
  }
  dlp_stage *s = stage("IndexToString");
  set(s, "labels", "[\"cat\", \"dog\", \"\\u00e9l\\u00e9phant\"]");
  dlp_pipeline_model *pm = fit_one(s, f);
  dlp_frame *t = NULL;
  CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, f, &t));
  const char *want[] = {"dog", "cat", "\xc3\xa9l\xc3\xa9phant"};
  long oc = col(t, "predictedLabel");
  for (size_t r = 0; r < 8; r++) {
    const char *got = NULL;
    int has = dlp_frame_get_string(t, (size_t)oc, r, &got);
    CHECK_EQ_INT(has, r < 3);
    if (r < 3 && has) CHECK_STR(got, want[r]);
  }
  dlp_frame_free(t);
  dlp_pipeline_model_free(pm);
  /* no labels and no StringIndexer: a clear error */
  pm = fit_one(stage("IndexToString"), f);
  CHECK_EQ_INT(dlp_pipeline_model_transform(ctx, pm, f, &t), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "no labels") != NULL);
  dlp_pipeline_model_free(pm);
  dlp_frame_free(f);
}

/* --- pipelines with logistic regression ---------------------------------- */

/* [featurizer ->] StringIndexer -> LogisticRegression -> IndexToString. */
static dlp_pipeline *lr_pipeline(const char *family, dlp_stage *featurizer) {
  dlp_pipeline *p = NULL;
  CHECK_OK(ctx, dlp_pipeline_new(ctx, &p));
  if (featurizer) CHECK_OK(ctx, dlp_pipeline_add(ctx, p, featurizer));
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, stage("StringIndexer")));
  dlp_stage *lr = stage("LogisticRegression");
  set(lr, "labelCol", "indexedLabel");
  set(lr, "reg", "0.01");
  if (family) set(lr, "family", family);
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, lr));
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, stage("IndexToString")));
  return p;
}

/* Checks a transformed frame against the model's coefficients recomputed
 * here: margins, softmax/sigmoid, argmax, and the predicted label. Returns
 * the accuracy against the true label column. */
static double check_predictions(dlp_pipeline_model *pm, const dlp_frame *t) {
  dlp_lr_summary sm;
  CHECK_OK(ctx, dlp_pipeline_model_lr_summary(ctx, pm, &sm));
  size_t nl;
  const char *const *labels = dlp_pipeline_model_labels(pm, &nl);
  long xc = col(t, "features"), rc = col(t, "rawPrediction"),
       pc = col(t, "probability"), dc = col(t, "prediction"),
       lc = col(t, "predictedLabel"), yc = col(t, "label");
  size_t K = sm.multinomial ? (size_t)sm.n_classes : 2, right = 0;
  CHECK_EQ_INT(dlp_frame_col_dim(t, (size_t)pc), K);
  for (size_t r = 0; r < dlp_frame_nrows(t); r++) {
    const float *x, *raw, *prob;
    double pred, m[16], p[16], mx = -INFINITY, z = 0;
    CHECK(dlp_frame_get_vector(t, (size_t)xc, r, &x));
    CHECK(dlp_frame_get_vector(t, (size_t)rc, r, &raw));
    CHECK(dlp_frame_get_vector(t, (size_t)pc, r, &prob));
    CHECK(dlp_frame_get_double(t, (size_t)dc, r, &pred));
    for (size_t k = 0; k < sm.n_rows_coef; k++) {
      m[k] = sm.intercepts[k];
      for (size_t j = 0; j < sm.dim; j++)
        m[k] += sm.coefficients[k * sm.dim + j] * x[j];
    }
    /* binomial: raw = [-m, m], probability = [1 - sigmoid(m), sigmoid(m)] */
    double q[16];
    if (!sm.multinomial) m[1] = m[0], m[0] = -m[1];
    for (size_t k = 0; k < K; k++)
      q[k] = sm.multinomial ? m[k] : (k ? m[1] : 0);
    for (size_t k = 0; k < K; k++)
      mx = fmax(mx, q[k]);
    for (size_t k = 0; k < K; k++)
      z += p[k] = exp(q[k] - mx);
    size_t best = 0;
    for (size_t k = 0; k < K; k++) {
      CHECK_NEAR(raw[k], m[k], 1e-4 * (1 + fabs(m[k])));
      CHECK_NEAR(prob[k], p[k] / z, 1e-6);
      if (p[k] > p[best]) best = k;
    }
    if (sm.multinomial)
      CHECK(pred == (double)best);
    else
      CHECK(pred == (p[1] / z > 0.5 ? 1.0 : 0.0));
    const char *pl, *y;
    CHECK(dlp_frame_get_string(t, (size_t)lc, r, &pl));
    CHECK(pred >= 0 && pred < (double)nl &&
          strcmp(pl, labels[(size_t)pred]) == 0);
    if (dlp_frame_get_string(t, (size_t)yc, r, &y) && strcmp(y, pl) == 0)
      right++;
  }
  return (double)right / (double)dlp_frame_nrows(t);
}

TEST(pipeline_fits_and_transforms_binomial_and_multinomial) {
  for (int k = 2; k <= 3; k++) {
    dlp_frame *f = blobs(300, 4, k, 7 + (uint64_t)k);
    dlp_pipeline *p = lr_pipeline(NULL, NULL);
    dlp_pipeline_model *pm = NULL;
    CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, f, &pm));
    if (!pm) {
      dlp_pipeline_free(p);
      dlp_frame_free(f);
      continue;
    }
    CHECK_EQ_INT(dlp_pipeline_model_nstages(pm), 3);
    CHECK_STR(dlp_stage_class(dlp_pipeline_model_stage(pm, 0)),
              "StringIndexerModel");
    CHECK_STR(dlp_stage_class(dlp_pipeline_model_stage(pm, 1)),
              "LogisticRegressionModel");
    CHECK_STR(dlp_stage_get(dlp_pipeline_model_stage(pm, 1), "regParam"),
              "0.01");
    dlp_lr_summary sm;
    CHECK_OK(ctx, dlp_pipeline_model_lr_summary(ctx, pm, &sm));
    CHECK_EQ_INT(sm.n_classes, k);
    CHECK_EQ_INT(sm.multinomial, k > 2);
    /* IndexToString took the indexer's labels at fit time */
    CHECK(strstr(dlp_stage_get(dlp_pipeline_model_stage(pm, 2), "labels"),
                 "\"c1\"") != NULL);
    dlp_frame *t = NULL;
    CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, f, &t));
    if (t) CHECK(check_predictions(pm, t) > 0.9);
    CHECK_EQ_INT(dlp_frame_ncols(f), 2);
    dlp_frame_free(t);
    t = NULL;
    /* a threshold set on the fitted stage is used (binomial) */
    set(dlp_pipeline_model_stage(pm, 1), "threshold", "0.97");
    CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, f, &t));
    size_t ones = 0;
    for (size_t r = 0; t && k == 2 && r < dlp_frame_nrows(t); r++) {
      const float *pr;
      double pred;
      CHECK(dlp_frame_get_vector(t, (size_t)col(t, "probability"), r, &pr));
      CHECK(dlp_frame_get_double(t, (size_t)col(t, "prediction"), r, &pred));
      CHECK(pred == (pr[1] > 0.97 ? 1.0 : 0.0));
      ones += pred == 1.0;
    }
    if (k == 2) CHECK(ones > 0 && ones < 150); /* fewer than the c1 rows */
    dlp_frame_free(t);
    dlp_pipeline_model_free(pm);
    dlp_pipeline_free(p);
    dlp_frame_free(f);
  }
}

TEST(transform_skips_present_features_and_absent_labels) {
  dlp_frame *f = blobs(120, 3, 2, 3);
  /* no "image" column: the featurizer must be skipped, not fail */
  dlp_pipeline *p = lr_pipeline(NULL, stage("DeepImageFeaturizer"));
  dlp_pipeline_model *pm = NULL;
  CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, f, &pm));
  /* unlabelled rows: only the features */
  dlp_frame *u = NULL, *t = NULL;
  CHECK_OK(ctx, dlp_frame_new(ctx, &u));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, u, "features", DLP_TYPE_VECTOR, 3));
  const float x[2][3] = {{3, 0, 0}, {0, 3, 0}};
  for (size_t r = 0; r < 2; r++) {
    CHECK_OK(ctx, dlp_frame_add_row(ctx, u, NULL));
    CHECK_OK(ctx, dlp_frame_set_vector(ctx, u, 0, r, x[r]));
  }
  if (pm) CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, u, &t));
  if (t) {
    CHECK(dlp_frame_col_index(t, "indexedLabel") < 0);
    const char *a = NULL, *b = NULL;
    long lc = col(t, "predictedLabel");
    CHECK(dlp_frame_get_string(t, (size_t)lc, 0, &a));
    CHECK(dlp_frame_get_string(t, (size_t)lc, 1, &b));
    if (a && b) {
      CHECK_STR(a, "c0");
      CHECK_STR(b, "c1");
    }
  }
  dlp_frame_free(t);
  /* a row with null features gets null outputs */
  CHECK_OK(ctx, dlp_frame_add_row(ctx, u, NULL));
  t = NULL;
  if (pm) CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, u, &t));
  if (t) {
    CHECK(dlp_frame_is_null(t, (size_t)col(t, "prediction"), 2));
    CHECK(dlp_frame_is_null(t, (size_t)col(t, "predictedLabel"), 2));
    CHECK(!dlp_frame_is_null(t, (size_t)col(t, "prediction"), 1));
  }
  dlp_frame_free(t);
  dlp_frame_free(u);
  dlp_pipeline_model_free(pm);
  dlp_pipeline_free(p);
  dlp_frame_free(f);
}

TEST(lr_stage_errors_say_what_is_wrong) {
  dlp_frame *f = blobs(50, 3, 2, 5);
  /* string labels straight into LR */
  dlp_pipeline *p = NULL;
  dlp_pipeline_model *pm = NULL;
  CHECK_OK(ctx, dlp_pipeline_new(ctx, &p));
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, stage("LogisticRegression")));
  CHECK_EQ_INT(dlp_pipeline_fit(ctx, p, f, &pm), DLP_ERR_SCHEMA);
  CHECK(strstr(dlp_errmsg(ctx), "labelCol 'label' holds strings: add a "
                                "StringIndexer") != NULL);
  dlp_pipeline_free(p);
  /* null features, named by row */
  dlp_frame *g = NULL;
  CHECK_OK(ctx, dlp_frame_head(ctx, f, 50, &g));
  CHECK_OK(ctx, dlp_frame_set_null(ctx, g, 0, 17));
  p = lr_pipeline(NULL, NULL);
  CHECK_EQ_INT(dlp_pipeline_fit(ctx, p, g, &pm), DLP_ERR_ARG);
  CHECK(pm == NULL && strstr(dlp_errmsg(ctx), "row 17 has null features"));
  /* features of another dimension than the fit's */
  CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, f, &pm));
  dlp_frame *h = blobs(10, 4, 2, 6), *t = NULL;
  if (pm) {
    CHECK_EQ_INT(dlp_pipeline_model_transform(ctx, pm, h, &t), DLP_ERR_SCHEMA);
    CHECK(t == NULL && strstr(dlp_errmsg(ctx), "4 values per row") &&
          strstr(dlp_errmsg(ctx), "fitted on 3"));
  }
  /* an output column that exists already */
  dlp_stage *lr = dlp_pipeline_stage(p, 1);
  set(lr, "predictionCol", "label");
  dlp_pipeline_model *pm2 = NULL;
  CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, f, &pm2));
  if (pm2) {
    CHECK_EQ_INT(dlp_pipeline_model_transform(ctx, pm2, f, &t), DLP_ERR_SCHEMA);
    CHECK(strstr(dlp_errmsg(ctx), "already a column") != NULL);
  }
  /* no model: no summary */
  CHECK_EQ_INT(dlp_pipeline_model_lr_summary(ctx, NULL, NULL), DLP_ERR_ARG);
  dlp_pipeline_model_free(pm2);
  dlp_pipeline_model_free(pm);
  dlp_pipeline_free(p);
  dlp_frame_free(h);
  dlp_frame_free(g);
  dlp_frame_free(f);
}

/* Row weights reach the trainer: weight 2 is the same as the row twice
 * (MLlib's objective divides by the total weight). */
TEST(weight_col_counts_rows) {
  dlp_frame *f = blobs(90, 3, 3, 21), *dup = NULL;
  size_t idx[180], m = 0;
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "w", DLP_TYPE_DOUBLE, 0));
  for (size_t r = 0; r < 90; r++) {
    double w = r % 4 == 1 ? 2.0 : 1.0;
    CHECK_OK(ctx, dlp_frame_set_double(ctx, f, 2, r, w));
    idx[m++] = r;
    if (w == 2.0) idx[m++] = r;
  }
  CHECK_OK(ctx, dlp_frame_take(ctx, f, idx, m, &dup));
  dlp_lr_summary s[2];
  dlp_pipeline_model *pm[2] = {NULL, NULL};
  for (int k = 0; k < 2; k++) {
    dlp_pipeline *p = lr_pipeline("multinomial", NULL);
    dlp_stage *lr = dlp_pipeline_stage(p, 1);
    /* duplicates change the label counts, not the alphabet */
    set(dlp_pipeline_stage(p, 0), "string-order", "alphabetAsc");
    set(lr, "standardization", "false");
    set(lr, "tol", "1e-12");
    set(lr, "max-iter", "500");
    if (k == 0) set(lr, "weight-col", "w");
    CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, k ? dup : f, &pm[k]));
    if (pm[k]) CHECK_OK(ctx, dlp_pipeline_model_lr_summary(ctx, pm[k], &s[k]));
    dlp_pipeline_free(p);
  }
  for (size_t i = 0; pm[0] && pm[1] && i < s[0].n_rows_coef * s[0].dim; i++)
    CHECK_NEAR(s[0].coefficients[i], s[1].coefficients[i], 1e-4);
  /* a weight column of strings is refused */
  dlp_pipeline *p = lr_pipeline(NULL, NULL);
  set(dlp_pipeline_stage(p, 1), "weight-col", "label");
  dlp_pipeline_model *bad = NULL;
  CHECK_EQ_INT(dlp_pipeline_fit(ctx, p, f, &bad), DLP_ERR_SCHEMA);
  dlp_pipeline_free(p);
  dlp_pipeline_model_free(pm[0]);
  dlp_pipeline_model_free(pm[1]);
  dlp_frame_free(dup);
  dlp_frame_free(f);
}

TEST(tuner_helpers_prefix_and_fit_from) {
  dlp_frame *f = blobs(200, 3, 3, 11);
  dlp_pipeline *p = lr_pipeline("multinomial", stage("DeepImageFeaturizer"));
  dlp_pipeline *q = NULL;
  CHECK_OK(ctx, ml_pipeline_clone(ctx, p, &q));
  CHECK_EQ_INT(dlp_pipeline_nstages(q), 4);
  dlp_frame *pre = NULL, *t1 = NULL, *t2 = NULL;
  CHECK_EQ_INT(ml_pipeline_transform_prefix(ctx, p, 2, f, &pre), DLP_ERR_ARG);
  CHECK_OK(ctx, ml_pipeline_transform_prefix(ctx, p, 1, f, &pre));
  dlp_pipeline_model *a = NULL, *b = NULL;
  CHECK_OK(ctx, ml_pipeline_fit_from(ctx, q, 1, pre, &a));
  CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, f, &b));
  if (a && b) {
    CHECK_EQ_INT(dlp_pipeline_model_nstages(a), 4);
    CHECK_STR(dlp_stage_class(dlp_pipeline_model_stage(a, 0)),
              "DeepImageFeaturizer");
    CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, a, f, &t1));
    CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, b, f, &t2));
    /* the same data, the same fit: the same probabilities */
    long c1 = t1 ? col(t1, "probability") : -1;
    long c2 = t2 ? col(t2, "probability") : -1;
    for (size_t r = 0; c1 >= 0 && c2 >= 0 && r < 200; r++) {
      const float *x, *y;
      CHECK(dlp_frame_get_vector(t1, (size_t)c1, r, &x));
      CHECK(dlp_frame_get_vector(t2, (size_t)c2, r, &y));
      for (int k = 0; k < 3; k++)
        CHECK_NEAR(x[k], y[k], 1e-6);
    }
  }
  dlp_frame_free(t1);
  dlp_frame_free(t2);
  dlp_frame_free(pre);
  dlp_pipeline_model_free(a);
  dlp_pipeline_model_free(b);
  dlp_pipeline_free(q);
  dlp_pipeline_free(p);
  dlp_frame_free(f);
}

/* --- the whole flow on images -------------------------------------------- */

/* A 24-bit bottom-up BMP of w x h pixels, colour rgb plus a gradient. */
static int write_bmp(const char *path, int w, int h, const uint8_t rgb[3],
                     int seed) {
  int row = (w * 3 + 3) & ~3, size = 54 + row * h;
  uint8_t hdr[54] = {'B', 'M'};
  hdr[2] = (uint8_t)size, hdr[3] = (uint8_t)(size >> 8);
  hdr[4] = (uint8_t)(size >> 16);
  hdr[10] = 54, hdr[14] = 40;
  hdr[18] = (uint8_t)w, hdr[22] = (uint8_t)h, hdr[26] = 1, hdr[28] = 24;
  FILE *fp = fopen(path, "wb");
  if (!fp) return -1;
  fwrite(hdr, 1, 54, fp);
  uint8_t line[256] = {0};
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++)
        line[x * 3 + 2 - c] =
            (uint8_t)(rgb[c] * 3 / 4 + ((x + y + seed) * 7) % 64);
    fwrite(line, 1, (size_t)row, fp);
  }
  return fclose(fp);
}

TEST(featurizer_to_index_to_string_on_images) {
  char dir[] = "/tmp/dlp_test_pipeline_XXXXXX", path[256];
  CHECK(mkdtemp(dir) != NULL);
  const char *cls[] = {"blue", "red"};
  const uint8_t col_rgb[2][3] = {{20, 40, 230}, {230, 30, 20}};
  for (int c = 0; c < 2; c++) {
    snprintf(path, sizeof path, "%s/%s", dir, cls[c]);
    CHECK(mkdir(path, 0755) == 0);
    for (int i = 0; i < 4; i++) {
      snprintf(path, sizeof path, "%s/%s/%d.bmp", dir, cls[c], i);
      CHECK(write_bmp(path, 40, 32, col_rgb[c], i * 5) == 0);
    }
  }
  dlp_scan_opts so;
  dlp_scan_opts_init(&so);
  so.labels_from_dirs = 1;
  dlp_frame *imgs = NULL, *t = NULL;
  CHECK_OK(ctx, dlp_read_images(ctx, dir, &so, &imgs));
  dlp_stage *fz = stage("DeepImageFeaturizer");
  set(fz, "model", "MobileNetV2");
  set(fz, "random-weights", "true");
  set(fz, "seed", "3");
  set(fz, "batch-size", "3");
  dlp_pipeline *p = lr_pipeline(NULL, fz);
  dlp_pipeline_model *pm = NULL;
  CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, imgs, &pm));
  if (pm) CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, imgs, &t));
  if (t) {
    CHECK_EQ_INT(dlp_frame_nrows(t), 8);
    CHECK_EQ_INT(dlp_frame_col_dim(t, (size_t)col(t, "features")), 1280);
    /* the separable colours are learnt (8 training rows, 1280 features) */
    CHECK(check_predictions(pm, t) == 1.0);
    /* the fitted featurizer kept its opened model for the next call */
    CHECK(dlp_pipeline_model_stage(pm, 0)->model != NULL);
  }
  dlp_frame_free(t);
  dlp_pipeline_model_free(pm);
  dlp_pipeline_free(p);
  dlp_frame_free(imgs);
  for (int c = 0; c < 2; c++) {
    for (int i = 0; i < 4; i++) {
      snprintf(path, sizeof path, "%s/%s/%d.bmp", dir, cls[c], i);
      unlink(path);
    }
    snprintf(path, sizeof path, "%s/%s", dir, cls[c]);
    rmdir(path);
  }
  rmdir(dir);
}

int main(void) {
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  dlp_ctx_set_threads(ctx, 2);
  RUN(every_default_validates_and_reads_back);
  RUN(bad_values_are_refused_with_the_reason);
  RUN(set_get_round_trips_and_is_canonical);
  RUN(string_indexer_orders_like_mllib);
  RUN(string_indexer_handle_invalid);
  RUN(string_indexer_reads_int64_labels);
  RUN(index_to_string_maps_and_nulls_unknown_indices);
  RUN(pipeline_fits_and_transforms_binomial_and_multinomial);
  RUN(transform_skips_present_features_and_absent_labels);
  RUN(lr_stage_errors_say_what_is_wrong);
  RUN(weight_col_counts_rows);
  RUN(tuner_helpers_prefix_and_fit_from);
  RUN(featurizer_to_index_to_string_on_images);
  dlp_ctx_free(ctx);
  return test_summary();
}
