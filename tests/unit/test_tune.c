/* test_tune.c - parameter grids, folds, CrossValidator and
 * TrainValidationSplit: grid parsing and its errors, enumeration order,
 * fold sizes, agreement with a fold-by-fold fit done here by hand, the same
 * answers for any parallelism, and the featurizer running once. */
#include "test.h"

#include "dlp.h"
#include "ml.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static int sanitized(void) {
  const char *s = getenv("DLP_SANITIZED");
  return s && strcmp(s, "1") == 0;
}

static dlp_ctx *new_ctx(void) {
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) abort();
  dlp_ctx_set_threads(ctx, 4);
  return ctx;
}

/* --- synthetic data ------------------------------------------------------- */

/* n rows of d features around one centre per class (k classes), labels
 * int64 in "label": separable enough to learn, noisy enough that the
 * regularisation matters. */
static dlp_frame *blobs(dlp_ctx *ctx, size_t n, size_t d, int k,
                        uint64_t seed) {
  dlp_frame *f = NULL;
  if (dlp_frame_new(ctx, &f) != DLP_OK ||
      dlp_frame_add_column(ctx, f, "features", DLP_TYPE_VECTOR, d) != DLP_OK ||
      dlp_frame_add_column(ctx, f, "label", DLP_TYPE_INT64, 0) != DLP_OK)
    abort();
  dlp_rng r;
  dlp_rng_seed(&r, seed);
  float *centre = calloc((size_t)k * d, sizeof *centre), *x = calloc(d, 4);
  for (size_t i = 0; i < (size_t)k * d; i++)
    centre[i] = (float)(2 * dlp_rng_uniform(&r) - 1);
  for (size_t i = 0; i < n; i++) {
    size_t row, c = (size_t)dlp_rng_below(&r, (uint64_t)k);
    for (size_t j = 0; j < d; j++) {
      double u = dlp_rng_uniform(&r) + dlp_rng_uniform(&r) +
                 dlp_rng_uniform(&r) - 1.5; /* roughly normal, sd 0.5 */
      x[j] = centre[c * d + j] + (float)(1.6 * u);
    }
    if (dlp_frame_add_row(ctx, f, &row) != DLP_OK ||
        dlp_frame_set_vector(ctx, f, 0, row, x) != DLP_OK ||
        dlp_frame_set_int64(ctx, f, 1, row, (int64_t)c) != DLP_OK)
      abort();
  }
  free(centre);
  free(x);
  return f;
}

static dlp_pipeline *lr_pipeline(dlp_ctx *ctx, const char *max_iter) {
  dlp_pipeline *p = NULL;
  dlp_stage *s = NULL;
  if (dlp_pipeline_new(ctx, &p) != DLP_OK ||
      dlp_stage_new(ctx, "LogisticRegression", &s) != DLP_OK ||
      dlp_stage_set(ctx, s, "maxIter", max_iter) != DLP_OK ||
      dlp_pipeline_add(ctx, p, s) != DLP_OK)
    abort();
  return p;
}

static dlp_param_grid *grid_of(dlp_ctx *ctx, const char *spec) {
  dlp_param_grid *g = NULL;
  if (dlp_param_grid_new(ctx, &g) != DLP_OK) abort();
  if (dlp_param_grid_parse(ctx, g, spec) != DLP_OK) {
    fprintf(stderr, "grid '%s': %s\n", spec, dlp_errmsg(ctx));
    abort();
  }
  return g;
}

/* One LogisticRegression pipeline (maxIter max_iter) on blobs, with a grid
 * parsed from spec: what most tuning tests start from. */
typedef struct lr_case {
  dlp_ctx *ctx;
  dlp_frame *data;
  dlp_pipeline *p;
  dlp_param_grid *g;
} lr_case;

static lr_case lr_case_make(size_t n, size_t d, int k, uint64_t seed,
                            const char *max_iter, const char *spec) {
  lr_case t;
  t.ctx = new_ctx();
  t.data = blobs(t.ctx, n, d, k, seed);
  t.p = lr_pipeline(t.ctx, max_iter);
  t.g = grid_of(t.ctx, spec);
  return t;
}

static void lr_case_free(lr_case *t) {
  dlp_param_grid_free(t->g);
  dlp_pipeline_free(t->p);
  dlp_frame_free(t->data);
  dlp_ctx_free(t->ctx);
}

/* --- grids ---------------------------------------------------------------- */

TEST(grid_parse_counts_combinations_and_tolerates_spaces) {
  dlp_ctx *ctx = new_ctx();
  dlp_param_grid *g = NULL;
  CHECK_OK(ctx, dlp_param_grid_new(ctx, &g));
  CHECK_EQ_INT(dlp_param_grid_count(g), 1);
  CHECK_OK(ctx,
           dlp_param_grid_parse(ctx, g, "reg=0.01,0.05,0.1;elastic-net=0,0.3"));
  CHECK_EQ_INT(dlp_param_grid_count(g), 6);
  dlp_param_grid_free(g);
  CHECK_OK(ctx, dlp_param_grid_new(ctx, &g));
  CHECK_OK(ctx,
           dlp_param_grid_parse(ctx, g, "  reg = 0.01 , 0.05 ;\t max-iter=5 "));
  const char *v[] = {" true", "false "};
  CHECK_OK(ctx, dlp_param_grid_add(ctx, g, "fitIntercept", v, 2));
  CHECK_EQ_INT(dlp_param_grid_count(g), 4); /* 2 * 1 * 2 */
  dlp_param_grid_free(g);
  dlp_param_grid_free(NULL);
  dlp_ctx_free(ctx);
}

/* Each bad spec fails with DLP_ERR_ARG, a message holding `want`, and
 * leaves the grid as it was. */
static void bad_spec(dlp_ctx *ctx, dlp_param_grid *g, const char *spec,
                     const char *want) {
  size_t before = dlp_param_grid_count(g);
  int rc = dlp_param_grid_parse(ctx, g, spec);
  CHECK_EQ_INT(rc, DLP_ERR_ARG);
  if (!strstr(dlp_errmsg(ctx), want))
    fprintf(stderr, "spec '%s': message '%s' lacks '%s'\n", spec,
            dlp_errmsg(ctx), want);
  CHECK(strstr(dlp_errmsg(ctx), want) != NULL);
  CHECK_EQ_INT(dlp_param_grid_count(g), before);
}

TEST(grid_parse_rejects_empty_parts_and_duplicates) {
  dlp_ctx *ctx = new_ctx();
  dlp_param_grid *g = NULL;
  CHECK_OK(ctx, dlp_param_grid_new(ctx, &g));
  CHECK_OK(ctx, dlp_param_grid_parse(ctx, g, "max-iter=5,10"));
  bad_spec(ctx, g, "reg=0.1;", "reg=0.1;"); /* the spec is shown */
  bad_spec(ctx, g, ";reg=0.1", "part 1 is empty");
  bad_spec(ctx, g, "reg=", "empty value");
  bad_spec(ctx, g, "reg=0.1,,0.2", "empty value (value 2)");
  bad_spec(ctx, g, "reg=0.1, ", "empty value");
  bad_spec(ctx, g, " =0.1", "no parameter name");
  bad_spec(ctx, g, "reg", "not name=value");
  bad_spec(ctx, g, "", "part 1 is empty");
  bad_spec(ctx, g, "reg=1;reg=2", "given twice");
  bad_spec(ctx, g, "reg=1;regParam=2", "regParam is given twice");
  bad_spec(ctx, g, "maxIter=1", "maxIter is given twice"); /* already there */
  const char *none[] = {NULL};
  CHECK_EQ_INT(dlp_param_grid_add(ctx, g, "reg", none, 0), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_param_grid_add(ctx, g, "reg", none, 1), DLP_ERR_ARG);
  const char *empty[] = {"1", " "};
  CHECK_EQ_INT(dlp_param_grid_add(ctx, g, "reg", empty, 2), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_param_grid_count(g), 2);
  dlp_param_grid_free(g);
  dlp_ctx_free(ctx);
}

TEST(grid_caps_the_number_of_combinations) {
  dlp_ctx *ctx = new_ctx();
  dlp_param_grid *g = NULL;
  CHECK_OK(ctx, dlp_param_grid_new(ctx, &g));
  char spec[2048] = "reg=0";
  for (int i = 1; i < 101; i++)
    snprintf(spec + strlen(spec), sizeof spec - strlen(spec), ",%d", i);
  CHECK_OK(ctx, dlp_param_grid_parse(ctx, g, spec)); /* 101 */
  memcpy(spec, "tol", 3);
  CHECK_EQ_INT(dlp_param_grid_parse(ctx, g, spec), DLP_ERR_TOO_LARGE);
  CHECK(strstr(dlp_errmsg(ctx), "10000") != NULL);
  CHECK_EQ_INT(dlp_param_grid_count(g), 101);
  dlp_param_grid_free(g);
  dlp_ctx_free(ctx);
}

/* --- folds ---------------------------------------------------------------- */

TEST(folds_are_disjoint_nearly_equal_and_seeded) {
  size_t ns[] = {2, 3, 10, 11, 100, 1001};
  int ks[] = {2, 3, 5, 10};
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (size_t b = 0; b < sizeof ks / sizeof *ks; b++) {
      size_t n = ns[a];
      int k = ks[b];
      if ((size_t)k > n) continue;
      int *f = calloc(n, sizeof *f), *g = calloc(n, sizeof *g);
      size_t count[10] = {0};
      ml_tune_folds(n, k, 42, f);
      ml_tune_folds(n, k, 42, g);
      CHECK(memcmp(f, g, n * sizeof *f) == 0);
      for (size_t i = 0; i < n; i++) {
        CHECK(f[i] >= 0 && f[i] < k); /* each row in exactly one fold */
        if (f[i] >= 0 && f[i] < k) count[f[i]]++;
      }
      for (int j = 0; j < k; j++)
        CHECK(count[j] == n / (size_t)k || count[j] == n / (size_t)k + 1);
      if (n >= 100) { /* another seed, another assignment; not sorted */
        ml_tune_folds(n, k, 43, g);
        CHECK(memcmp(f, g, n * sizeof *f) != 0);
        size_t runs = 1;
        for (size_t i = 1; i < n; i++)
          runs += f[i] != f[i - 1];
        CHECK(runs > (size_t)k * 4);
      }
      free(f);
      free(g);
    }
}

TEST(train_validation_split_holds_out_the_ratio) {
  size_t n = 103;
  int f[103];
  ml_tune_split(n, 0.75, 7, f);
  size_t nv = 0;
  for (size_t i = 0; i < n; i++)
    nv += f[i] == 0;
  CHECK_EQ_INT(nv, 26); /* round(103 * 0.25) = round(25.75) */
  CHECK_EQ_INT(ml_tune_n_valid(n, 0.75), 26);
  CHECK_EQ_INT(ml_tune_n_valid(10, 0.99), 1); /* never empty */
  CHECK_EQ_INT(ml_tune_n_valid(10, 0.01), 9); /* nor all */
}

/* --- tuning --------------------------------------------------------------- */

/* The metric of one combination on one fold computed the plain way: the
 * fold's rows, dlp_pipeline_fit, transform, evaluate. */
static double manual_fold(dlp_ctx *ctx, const dlp_pipeline *p,
                          const dlp_frame *data, const int *fold, int f,
                          const char *metric, const char *label_col) {
  size_t n = dlp_frame_nrows(data), ntr = 0, nva = 0;
  size_t *tr = calloc(n, sizeof *tr), *va = calloc(n, sizeof *va);
  for (size_t i = 0; i < n; i++)
    if (fold[i] == f)
      va[nva++] = i;
    else
      tr[ntr++] = i;
  dlp_frame *train = NULL, *valid = NULL, *pred = NULL;
  dlp_pipeline_model *pm = NULL;
  double v = NAN;
  dlp_eval_opts eo;
  dlp_eval_opts_init(&eo);
  eo.label_col = label_col;
  CHECK_OK(ctx, dlp_frame_take(ctx, data, tr, ntr, &train));
  CHECK_OK(ctx, dlp_frame_take(ctx, data, va, nva, &valid));
  CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, train, &pm));
  CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, valid, &pred));
  CHECK_OK(ctx, dlp_evaluate(ctx, pred, metric, &eo, &v));
  dlp_frame_free(pred);
  dlp_pipeline_model_free(pm);
  dlp_frame_free(train);
  dlp_frame_free(valid);
  free(tr);
  free(va);
  return v;
}

/* A copy of p with "name=value" settings applied (space separated, as
 * dlp_tune_result_params writes them) to the last stage. */
static dlp_pipeline *with_settings(dlp_ctx *ctx, const dlp_pipeline *p,
                                   const char *settings) {
  dlp_pipeline *q = NULL;
  CHECK_OK(ctx, ml_pipeline_clone(ctx, p, &q));
  char buf[256];
  snprintf(buf, sizeof buf, "%s", settings);
  dlp_stage *s = dlp_pipeline_stage(q, dlp_pipeline_nstages(q) - 1);
  for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
    char *eq = strchr(tok, '=');
    *eq = 0;
    CHECK_OK(ctx, dlp_stage_set(ctx, s, tok, eq + 1));
  }
  return q;
}

TEST(tune_enumerates_like_param_grid_builder_and_matches_manual_folds) {
  size_t n = sanitized() ? 90 : 240;
  lr_case t = lr_case_make(n, 6, 3, 11, "30", "max-iter=3,30; reg=0.5,0.01,0");
  dlp_ctx *ctx = t.ctx;
  dlp_frame *data = t.data;
  dlp_pipeline *p = t.p;
  dlp_param_grid *g = t.g;
  dlp_tune_opts o;
  dlp_tune_opts_init(&o);
  dlp_tune_result *r = NULL;
  CHECK_OK(ctx, dlp_tune(ctx, p, g, data, &o, &r));
  if (!r) abort();
  static const char *want[] = {
      "maxIter=3 regParam=0.5",   "maxIter=3 regParam=0.01",
      "maxIter=3 regParam=0",     "maxIter=30 regParam=0.5",
      "maxIter=30 regParam=0.01", "maxIter=30 regParam=0"};
  CHECK_EQ_INT(dlp_tune_result_count(r), 6);
  int fold[240];
  ml_tune_folds(n, 3, 42, fold);
  size_t best = 0;
  for (size_t c = 0; c < 6; c++) {
    CHECK_STR(dlp_tune_result_params(r, c), want[c]);
    dlp_pipeline *q = with_settings(ctx, p, want[c]);
    double m[3], mean = 0, ss = 0;
    for (int f = 0; f < 3; f++) {
      m[f] = manual_fold(ctx, q, data, fold, f, "accuracy", "label");
      CHECK(m[f] == ml_tune_result_fold_metric(r, c, f));
      mean += m[f] / 3;
    }
    for (int f = 0; f < 3; f++)
      ss += (m[f] - mean) * (m[f] - mean);
    CHECK_NEAR(dlp_tune_result_mean(r, c), mean, 1e-12);
    CHECK_NEAR(dlp_tune_result_std(r, c), sqrt(ss / 2), 1e-12);
    if (dlp_tune_result_mean(r, c) > dlp_tune_result_mean(r, best)) best = c;
    dlp_pipeline_free(q);
  }
  CHECK_EQ_INT(dlp_tune_result_best(r), best); /* ties: the first */
  dlp_tune_result_free(r);
  lr_case_free(&t);
}

/* The same numbers for any parallelism, TrainValidationSplit included; each
 * task's threads change with it too (4 / parallelism). */
TEST(tune_gives_the_same_answers_for_any_parallelism) {
  lr_case t =
      lr_case_make(150, 5, 3, 5, "25", "reg=0.3,0.03,0.003;elastic-net=0,0.5");
  dlp_ctx *ctx = t.ctx;
  dlp_frame *data = t.data;
  dlp_pipeline *p = t.p;
  dlp_param_grid *g = t.g;
  for (int folds = 0; folds <= 4; folds += 4) {
    dlp_tune_result *r[4] = {NULL};
    for (int par = 1; par <= 4; par++) {
      dlp_tune_opts o;
      dlp_tune_opts_init(&o);
      o.folds = folds;
      o.parallelism = par;
      o.metric = "logLoss";
      CHECK_OK(ctx, dlp_tune(ctx, p, g, data, &o, &r[par - 1]));
    }
    if (!r[0] || !r[1] || !r[2] || !r[3]) abort();
    size_t best = 0;
    for (size_t c = 0; c < 6; c++) {
      for (int k = 1; k < 4; k++) {
        CHECK(dlp_tune_result_mean(r[k], c) == dlp_tune_result_mean(r[0], c));
        CHECK(dlp_tune_result_std(r[k], c) == dlp_tune_result_std(r[0], c));
      }
      if (folds == 0) CHECK(dlp_tune_result_std(r[0], c) == 0);
      if (dlp_tune_result_mean(r[0], c) < dlp_tune_result_mean(r[0], best))
        best = c; /* logLoss: smaller is better */
    }
    for (int k = 0; k < 4; k++) {
      CHECK_EQ_INT(dlp_tune_result_best(r[k]), best);
      dlp_tune_result_free(r[k]);
    }
  }
  lr_case_free(&t);
}

/* Predicted class of every row of f under pm. */
static void predictions(dlp_ctx *ctx, const dlp_pipeline_model *pm,
                        const dlp_frame *f, double *out) {
  dlp_frame *pred = NULL;
  CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, f, &pred));
  long c = pred ? dlp_frame_col_index(pred, "prediction") : -1;
  CHECK(c >= 0);
  for (size_t i = 0; c >= 0 && i < dlp_frame_nrows(f); i++)
    CHECK(dlp_frame_get_double(pred, (size_t)c, i, &out[i]));
  dlp_frame_free(pred);
}

TEST(tune_refits_the_best_combination_on_all_rows) {
  lr_case t = lr_case_make(120, 4, 2, 9, "40", "reg=1,0.001");
  dlp_ctx *ctx = t.ctx;
  dlp_frame *data = t.data;
  dlp_pipeline *p = t.p;
  dlp_param_grid *g = t.g;
  dlp_tune_opts o;
  dlp_tune_opts_init(&o);
  o.folds = 0;
  o.train_ratio = 0.6;
  dlp_tune_result *r = NULL;
  CHECK_OK(ctx, dlp_tune(ctx, p, g, data, &o, &r));
  if (!r) abort();
  /* TrainValidationSplit by hand: fold 0 of ml_tune_split is held out. */
  int fold[120];
  ml_tune_split(120, 0.6, 42, fold);
  for (size_t c = 0; c < 2; c++) {
    dlp_pipeline *q = with_settings(ctx, p, dlp_tune_result_params(r, c));
    CHECK(manual_fold(ctx, q, data, fold, 0, "accuracy", "label") ==
          dlp_tune_result_mean(r, c));
    dlp_pipeline_free(q);
  }
  dlp_pipeline_model *pm = dlp_tune_result_take_model(r), *ref = NULL;
  CHECK(pm != NULL);
  CHECK(dlp_tune_result_take_model(r) == NULL);
  dlp_pipeline *q =
      with_settings(ctx, p, dlp_tune_result_params(r, dlp_tune_result_best(r)));
  CHECK_OK(ctx, dlp_pipeline_fit(ctx, q, data, &ref));
  double a[120], b[120];
  if (pm && ref) {
    predictions(ctx, pm, data, a);
    predictions(ctx, ref, data, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    dlp_lr_summary sa, sb;
    CHECK_OK(ctx, dlp_pipeline_model_lr_summary(ctx, pm, &sa));
    CHECK_OK(ctx, dlp_pipeline_model_lr_summary(ctx, ref, &sb));
    CHECK(sa.dim == sb.dim && memcmp(sa.coefficients, sb.coefficients,
                                     sa.n_rows_coef * sa.dim * 8) == 0);
  }
  dlp_pipeline_model_free(pm);
  dlp_pipeline_model_free(ref);
  dlp_pipeline_free(q);
  dlp_tune_result_free(r);
  /* refit = 0: no model. */
  o.refit = 0;
  CHECK_OK(ctx, dlp_tune(ctx, p, g, data, &o, &r));
  CHECK(r && dlp_tune_result_take_model(r) == NULL);
  dlp_tune_result_free(r);
  lr_case_free(&t);
}

static int count_progress(void *user, const char *what, uint64_t done,
                          uint64_t total) {
  (void)what, (void)done, (void)total;
  (*(int *)user)++;
  return 0;
}

TEST(tune_rejects_bad_grids_and_options_before_any_work) {
  lr_case t = lr_case_make(30, 3, 2, 1, "10", "reg=0.1;no-such-param=1,2");
  dlp_ctx *ctx = t.ctx;
  dlp_frame *data = t.data;
  dlp_pipeline *p = t.p;
  int calls = 0;
  dlp_ctx_set_progress(ctx, count_progress, &calls);
  dlp_tune_opts o;
  dlp_tune_opts_init(&o);
  dlp_tune_result *r = NULL;
  CHECK_EQ_INT(dlp_tune(ctx, p, t.g, data, &o, &r), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "'no-such-param'") != NULL);
  CHECK(strstr(dlp_errmsg(ctx), "regParam (reg)") != NULL); /* the list */
  CHECK(r == NULL);
  dlp_param_grid_free(t.g);
  t.g = grid_of(ctx, "reg=0.1,-1");
  CHECK_EQ_INT(dlp_tune(ctx, p, t.g, data, &o, &r), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "regParam") != NULL);
  CHECK(strstr(dlp_errmsg(ctx), "-1") != NULL);
  dlp_param_grid_free(t.g);
  t.g = grid_of(ctx, "elastic-net=0.5;family=auto,poisson");
  CHECK_EQ_INT(dlp_tune(ctx, p, t.g, data, &o, &r), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "poisson") != NULL);
  o.folds = 1;
  CHECK_EQ_INT(dlp_tune(ctx, p, NULL, data, &o, &r), DLP_ERR_ARG);
  o.folds = 31;
  CHECK_EQ_INT(dlp_tune(ctx, p, NULL, data, &o, &r), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "30") != NULL);
  o.folds = 0;
  o.train_ratio = 1;
  CHECK_EQ_INT(dlp_tune(ctx, p, NULL, data, &o, &r), DLP_ERR_ARG);
  dlp_tune_opts_init(&o);
  o.metric = "accuracyy";
  CHECK_EQ_INT(dlp_tune(ctx, p, NULL, data, &o, &r), DLP_ERR_ARG);
  dlp_tune_opts_init(&o);
  o.parallelism = 0;
  CHECK_EQ_INT(dlp_tune(ctx, p, NULL, data, &o, &r), DLP_ERR_ARG);
  CHECK_EQ_INT(calls, 0); /* nothing ran */
  /* An empty grid (NULL) is one combination: plain cross-validation. */
  dlp_tune_opts_init(&o);
  CHECK_OK(ctx, dlp_tune(ctx, p, NULL, data, &o, &r));
  CHECK(r && dlp_tune_result_count(r) == 1);
  CHECK_STR(dlp_tune_result_params(r, 0), "");
  CHECK(calls > 0);
  dlp_tune_result_free(r);
  lr_case_free(&t);
}

/* A combination that fails is reported as the first failing task (in task
 * order), whatever the parallelism. */
TEST(tune_reports_the_first_failing_combination_and_fold) {
  lr_case t =
      lr_case_make(40, 3, 2, 2, "10", "reg=0.1,0.2;features-col=features,nope");
  dlp_ctx *ctx = t.ctx;
  dlp_frame *data = t.data;
  dlp_pipeline *p = t.p;
  dlp_param_grid *g = t.g;
  char first[DLP_ERRMSG_MAX] = "";
  for (int par = 1; par <= 3; par++) {
    dlp_tune_opts o;
    dlp_tune_opts_init(&o);
    o.parallelism = par;
    dlp_tune_result *r = NULL;
    CHECK_EQ_INT(dlp_tune(ctx, p, g, data, &o, &r), DLP_ERR_NOT_FOUND);
    CHECK(r == NULL);
    const char *m = dlp_errmsg(ctx);
    CHECK(strstr(m, "combination 2 (regParam=0.1 featuresCol=nope)") != NULL);
    CHECK(strstr(m, "fold 1 of 3") != NULL);
    CHECK(strstr(m, "'nope'") != NULL);
    if (par == 1)
      snprintf(first, sizeof first, "%s", m);
    else
      CHECK_STR(m, first);
  }
  lr_case_free(&t);
}

/* --- the featurizer runs once --------------------------------------------- */

/* A w x h 24-bit BMP of one colour plus seeded noise. */
static void write_bmp(const char *path, int w, int h, const int rgb[3],
                      uint64_t seed) {
  int stride = (w * 3 + 3) & ~3;
  uint32_t size = 54 + (uint32_t)(stride * h);
  unsigned char hdr[54] = {'B', 'M'};
  memcpy(hdr + 2, &size, 4);
  hdr[10] = 54, hdr[14] = 40, hdr[26] = 1, hdr[28] = 24;
  memcpy(hdr + 18, &w, 4);
  memcpy(hdr + 22, &h, 4);
  FILE *fp = fopen(path, "wb");
  if (!fp) abort();
  fwrite(hdr, 1, 54, fp);
  dlp_rng r;
  dlp_rng_seed(&r, seed);
  unsigned char *row = calloc((size_t)stride, 1);
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) { /* BGR */
        int v = rgb[2 - c] + (int)dlp_rng_below(&r, 60) - 30;
        row[x * 3 + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
      }
    fwrite(row, 1, (size_t)stride, fp);
  }
  free(row);
  fclose(fp);
}

#define N_PER_CLASS 6

static void write_images(const char *root) {
  static const char *cls[2] = {"cat", "dog"};
  static const int rgb[2][3] = {{200, 60, 40}, {40, 80, 210}};
  char path[512];
  for (int c = 0; c < 2; c++) {
    snprintf(path, sizeof path, "%s/%s", root, cls[c]);
    mkdir(path, 0755);
    for (int i = 0; i < N_PER_CLASS; i++) {
      snprintf(path, sizeof path, "%s/%s/%d.bmp", root, cls[c], i);
      write_bmp(path, 24, 20, rgb[c], (uint64_t)(c * 100 + i));
    }
  }
}

static void remove_images(const char *root) {
  char path[512];
  for (int c = 0; c < 2; c++)
    for (int i = 0; i < N_PER_CLASS; i++) {
      snprintf(path, sizeof path, "%s/%s/%d.bmp", root, c ? "dog" : "cat", i);
      unlink(path);
    }
}

typedef struct feat_watch {
  int featurized; /* completed featurizing runs */
  const char *root;
  int remove_after; /* 1: delete the images once they are featurized */
  int was_done;     /* the last call was a completed featurization */
  int tuning_before, tuning_after; /* "tuning" calls before/after the first */
} feat_watch;

static int watch_progress(void *user, const char *what, uint64_t done,
                          uint64_t total) {
  feat_watch *w = user;
  /* A run may report its completion twice (the last batch, then forced). */
  int done_now = strcmp(what, "featurizing") == 0 && done == total;
  if (done_now && !w->was_done) {
    w->featurized++;
    if (w->remove_after) remove_images(w->root);
  }
  w->was_done = done_now;
  if (strcmp(what, "tuning") == 0) {
    if (w->featurized)
      w->tuning_after++;
    else
      w->tuning_before++;
  }
  return 0;
}

static dlp_pipeline *image_pipeline(dlp_ctx *ctx) {
  dlp_pipeline *p = NULL;
  dlp_stage *s = NULL;
  CHECK_OK(ctx, dlp_pipeline_new(ctx, &p));
  CHECK_OK(ctx, dlp_stage_new(ctx, "DeepImageFeaturizer", &s));
  CHECK_OK(ctx, dlp_stage_set(ctx, s, "modelName", "MobileNetV2"));
  CHECK_OK(ctx, dlp_stage_set(ctx, s, "randomWeights", "true"));
  CHECK_OK(ctx, dlp_stage_set(ctx, s, "seed", "3"));
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, s));
  CHECK_OK(ctx, dlp_stage_new(ctx, "StringIndexer", &s));
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, s));
  CHECK_OK(ctx, dlp_stage_new(ctx, "LogisticRegression", &s));
  CHECK_OK(ctx, dlp_stage_set(ctx, s, "labelCol", "indexedLabel"));
  CHECK_OK(ctx, dlp_stage_set(ctx, s, "maxIter", "15"));
  CHECK_OK(ctx, dlp_pipeline_add(ctx, p, s));
  return p;
}

/* The featurization must complete before the first (combination, fold) task
 * and the images are deleted right then: any later attempt to featurize them
 * would fail, so a successful tune proves every task and the refit reused
 * the cached features. The same tune on
 * a table featurized beforehand gives the same numbers. */
TEST(tune_featurizes_once_and_reuses_the_features) {
  char root[] = "/tmp/dlp_tune_XXXXXX";
  if (!mkdtemp(root)) abort();
  write_images(root);
  dlp_ctx *ctx = new_ctx();
  feat_watch w = {0, root, 1, 0, 0, 0};
  dlp_ctx_set_progress(ctx, watch_progress, &w);
  dlp_scan_opts so;
  dlp_scan_opts_init(&so);
  so.labels_from_dirs = 1;
  dlp_frame *images = NULL, *feats = NULL;
  CHECK_OK(ctx, dlp_read_images(ctx, root, &so, &images));
  dlp_pipeline *p = image_pipeline(ctx);
  dlp_param_grid *g = grid_of(ctx, "reg=0.1,0.01;elastic-net=0,0.5");
  dlp_tune_opts o;
  dlp_tune_opts_init(&o);
  o.eval.label_col = "indexedLabel";
  o.parallelism = 2;
  dlp_tune_result *r = NULL, *r2 = NULL;
  CHECK_OK(ctx, dlp_tune(ctx, p, g, images, &o, &r));
  CHECK_EQ_INT(w.featurized, 1);
  CHECK_EQ_INT(w.tuning_before, 0);
  CHECK(w.tuning_after > 0);
  CHECK(r && dlp_tune_result_count(r) == 4);

  /* The features by themselves, then the same tune over them. */
  write_images(root);
  w.remove_after = 0;
  CHECK_OK(ctx, ml_pipeline_transform_prefix(ctx, p, 1, images, &feats));
  CHECK_EQ_INT(w.featurized, 2);
  CHECK_OK(ctx, dlp_tune(ctx, p, g, feats, &o, &r2));
  CHECK_EQ_INT(w.featurized, 2); /* skipped: the features are there */
  for (size_t c = 0; r && r2 && c < 4; c++) {
    CHECK(dlp_tune_result_mean(r, c) == dlp_tune_result_mean(r2, c));
    CHECK(dlp_tune_result_std(r, c) == dlp_tune_result_std(r2, c));
  }

  /* The refitted model is the whole pipeline: it featurizes new images. */
  dlp_pipeline_model *pm = r ? dlp_tune_result_take_model(r) : NULL;
  dlp_frame *pred = NULL;
  CHECK(pm && dlp_pipeline_model_nstages(pm) == 3);
  if (pm) CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, pm, images, &pred));
  CHECK_EQ_INT(w.featurized, 3);
  CHECK(pred && dlp_frame_col_index(pred, "prediction") >= 0);
  dlp_frame_free(pred);
  dlp_pipeline_model_free(pm);
  dlp_tune_result_free(r);
  dlp_tune_result_free(r2);
  dlp_param_grid_free(g);
  dlp_pipeline_free(p);
  dlp_frame_free(images);
  dlp_frame_free(feats);
  remove_images(root);
  char path[512];
  snprintf(path, sizeof path, "%s/cat", root);
  rmdir(path);
  snprintf(path, sizeof path, "%s/dog", root);
  rmdir(path);
  rmdir(root);
  dlp_ctx_free(ctx);
}

/* An argument runs only the tests whose name contains it. */
#define RUN_IF(t)                                                              \
  do {                                                                         \
    if (argc < 2 || strstr(#t, argv[1])) RUN(t);                               \
  } while (0)

int main(int argc, char **argv) {
  RUN_IF(grid_parse_counts_combinations_and_tolerates_spaces);
  RUN_IF(grid_parse_rejects_empty_parts_and_duplicates);
  RUN_IF(grid_caps_the_number_of_combinations);
  RUN_IF(folds_are_disjoint_nearly_equal_and_seeded);
  RUN_IF(train_validation_split_holds_out_the_ratio);
  RUN_IF(tune_enumerates_like_param_grid_builder_and_matches_manual_folds);
  RUN_IF(tune_gives_the_same_answers_for_any_parallelism);
  RUN_IF(tune_refits_the_best_combination_on_all_rows);
  RUN_IF(tune_rejects_bad_grids_and_options_before_any_work);
  RUN_IF(tune_reports_the_first_failing_combination_and_fold);
  RUN_IF(tune_featurizes_once_and_reuses_the_features);
  return test_summary();
}
