/* test_persist.c - saved pipeline models: the round trip is bit-identical
 * (coefficients, labels, parameters, predictions), the overwrite rules
 * protect user data, and every kind of damage to a saved directory fails
 * with the right code and a message naming the file. */
#include "frame/frame.h"
#include "ml/stage.h"
#include "nn/models.h"
#include "npy.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static dlp_ctx *ctx;
static char root[] = "/tmp/dlp_test_persist_XXXXXX";

static char *path(const char *a, const char *b) {
  static char buf[16][512];
  static int k;
  char *p = buf[k++ % 16];
  if (b)
    snprintf(p, sizeof buf[0], "%s/%s/%s", root, a, b);
  else
    snprintf(p, sizeof buf[0], "%s/%s", root, a);
  return p;
}

/* n rows of d features in k blobs, string labels "c0".. */
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
      x[j] = (float)(2 * dlp_rng_uniform(&r) - 1);
    x[c % d] += 1.5f;
    char lab[8];
    snprintf(lab, sizeof lab, "c%d", c);
    CHECK_OK(ctx, dlp_frame_add_row(ctx, f, NULL));
    CHECK_OK(ctx, dlp_frame_set_vector(ctx, f, 0, i, x));
    CHECK_OK(ctx, dlp_frame_set_string(ctx, f, 1, i, lab));
  }
  return f;
}

static dlp_pipeline_model *fit(const dlp_frame *f, const char *reg) {
  const char *cls[] = {"DeepImageFeaturizer", "StringIndexer",
                       "LogisticRegression", "IndexToString"};
  dlp_pipeline *p = NULL;
  dlp_pipeline_model *pm = NULL;
  CHECK_OK(ctx, dlp_pipeline_new(ctx, &p));
  for (int i = 0; i < 4; i++) {
    dlp_stage *s = NULL;
    CHECK_OK(ctx, dlp_stage_new(ctx, cls[i], &s));
    CHECK_OK(ctx, dlp_pipeline_add(ctx, p, s));
  }
  dlp_stage *lr = dlp_pipeline_stage(p, 2);
  CHECK_OK(ctx, dlp_stage_set(ctx, lr, "labelCol", "indexedLabel"));
  CHECK_OK(ctx, dlp_stage_set(ctx, lr, "regParam", reg));
  CHECK_OK(ctx, dlp_stage_set(ctx, lr, "elasticNetParam", "0.3"));
  CHECK_OK(ctx, dlp_stage_set(ctx, dlp_pipeline_stage(p, 0), "batchSize", "7"));
  CHECK_OK(ctx, dlp_pipeline_fit(ctx, p, f, &pm));
  dlp_pipeline_free(p);
  return pm;
}

static void same_models(dlp_pipeline_model *a, dlp_pipeline_model *b,
                        const dlp_frame *f) {
  CHECK_EQ_INT(dlp_pipeline_model_nstages(a), dlp_pipeline_model_nstages(b));
  for (size_t i = 0; i < dlp_pipeline_model_nstages(a); i++) {
    dlp_stage *x = dlp_pipeline_model_stage(a, i),
              *y = dlp_pipeline_model_stage(b, i);
    if (!x || !y) continue;
    CHECK_STR(dlp_stage_class(x), dlp_stage_class(y));
    size_t n;
    const dlp_param_desc *d = dlp_stage_class_params(dlp_stage_class(x), &n);
    for (size_t k = 0; k < n; k++)
      CHECK_STR(dlp_stage_get(x, d[k].name), dlp_stage_get(y, d[k].name));
  }
  size_t na, nb;
  const char *const *la = dlp_pipeline_model_labels(a, &na);
  const char *const *lb = dlp_pipeline_model_labels(b, &nb);
  CHECK_EQ_INT(na, nb);
  for (size_t i = 0; i < na && i < nb; i++)
    CHECK_STR(la[i], lb[i]);
  dlp_lr_summary sa, sb;
  CHECK_OK(ctx, dlp_pipeline_model_lr_summary(ctx, a, &sa));
  CHECK_OK(ctx, dlp_pipeline_model_lr_summary(ctx, b, &sb));
  CHECK(sa.dim == sb.dim && sa.n_rows_coef == sb.n_rows_coef &&
        sa.n_classes == sb.n_classes && sa.multinomial == sb.multinomial &&
        sa.iterations == sb.iterations);
  if (sa.dim == sb.dim && sa.n_rows_coef == sb.n_rows_coef) {
    CHECK(memcmp(sa.coefficients, sb.coefficients,
                 sa.dim * sa.n_rows_coef * sizeof(double)) == 0);
    CHECK(memcmp(sa.intercepts, sb.intercepts,
                 sa.n_rows_coef * sizeof(double)) == 0);
  }
  CHECK(memcmp(&sa.objective, &sb.objective, sizeof(double)) == 0);
  if (sa.iterations == sb.iterations)
    CHECK(memcmp(sa.objective_history, sb.objective_history,
                 ((size_t)sa.iterations + 1) * sizeof(double)) == 0);
  /* predictions: byte for byte */
  dlp_frame *ta = NULL, *tb = NULL;
  CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, a, f, &ta));
  CHECK_OK(ctx, dlp_pipeline_model_transform(ctx, b, f, &tb));
  if (!ta || !tb) goto out;
  const char *cols[] = {"rawPrediction", "probability"};
  for (int c = 0; c < 2; c++) {
    long ca = dlp_frame_col_index(ta, cols[c]),
         cb = dlp_frame_col_index(tb, cols[c]);
    CHECK(ca >= 0 && cb >= 0);
    size_t dim = dlp_frame_col_dim(ta, (size_t)ca);
    for (size_t r = 0; ca >= 0 && cb >= 0 && r < dlp_frame_nrows(f); r++) {
      const float *u, *v;
      CHECK(dlp_frame_get_vector(ta, (size_t)ca, r, &u) &&
            dlp_frame_get_vector(tb, (size_t)cb, r, &v) &&
            memcmp(u, v, dim * sizeof(float)) == 0);
    }
  }
  long pa = dlp_frame_col_index(ta, "predictedLabel"),
       pb = dlp_frame_col_index(tb, "predictedLabel");
  for (size_t r = 0; pa >= 0 && pb >= 0 && r < dlp_frame_nrows(f); r++) {
    const char *u = NULL, *v = NULL;
    CHECK(dlp_frame_get_string(ta, (size_t)pa, r, &u));
    CHECK(dlp_frame_get_string(tb, (size_t)pb, r, &v));
    CHECK_STR(u, v);
  }
out:
  dlp_frame_free(ta);
  dlp_frame_free(tb);
}

TEST(round_trip_is_bit_identical) {
  for (int k = 2; k <= 4; k += 2) {
    dlp_frame *f = blobs(240, 5, k, 100 + (uint64_t)k);
    dlp_pipeline_model *pm = fit(f, "0.0123456789"), *back = NULL;
    char name[32];
    snprintf(name, sizeof name, "model%d.dlp", k);
    CHECK_OK(ctx, dlp_pipeline_model_save(ctx, pm, path(name, NULL), 0));
    CHECK_OK(ctx, dlp_pipeline_model_load(ctx, path(name, NULL), &back));
    if (pm && back) same_models(pm, back, f);
    /* the stages' parameters came back too, including the featurizer's */
    if (back)
      CHECK_STR(dlp_stage_get(dlp_pipeline_model_stage(back, 0), "batchSize"),
                "7");
    /* no temporary directory is left behind */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path(name, NULL), (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    dlp_pipeline_model_free(back);
    dlp_pipeline_model_free(pm);
    dlp_frame_free(f);
  }
}

TEST(overwrite_only_replaces_saved_pipelines) {
  dlp_frame *f = blobs(60, 3, 2, 1);
  dlp_pipeline_model *a = fit(f, "0.1"), *b = fit(f, "0.5"), *back = NULL;
  const char *dir = path("ow.dlp", NULL);
  CHECK_OK(ctx, dlp_pipeline_model_save(ctx, a, dir, 0));
  CHECK_EQ_INT(dlp_pipeline_model_save(ctx, b, dir, 0), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "exists") != NULL);
  char slash[600];
  snprintf(slash, sizeof slash, "%s//", dir);
  CHECK_OK(ctx, dlp_pipeline_model_save(ctx, b, slash, 1));
  CHECK_OK(ctx, dlp_pipeline_model_load(ctx, dir, &back));
  if (back)
    CHECK_STR(dlp_stage_get(dlp_pipeline_model_stage(back, 2), "regParam"),
              "0.5");
  dlp_pipeline_model_free(back);
  /* a directory of the user's, not a saved pipeline: never replaced */
  const char *mine = path("mine", NULL);
  CHECK(mkdir(mine, 0755) == 0);
  FILE *fp = fopen(path("mine", "notes.txt"), "w");
  CHECK(fp != NULL);
  if (fp) fclose(fp);
  CHECK_EQ_INT(dlp_pipeline_model_save(ctx, a, mine, 1), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "not a saved pipeline") != NULL);
  CHECK(access(path("mine", "notes.txt"), F_OK) == 0);
  unlink(path("mine", "notes.txt"));
  rmdir(mine);
  dlp_pipeline_model_free(a);
  dlp_pipeline_model_free(b);
  dlp_frame_free(f);
}

/* --- damage ----------------------------------------------------------------
 * Each case saves a fresh copy, damages it, and expects a code and words
 * (the file's name among them) in the message. */

static char *slurp(const char *p, size_t *n) {
  FILE *fp = fopen(p, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long len = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *b = calloc(1, (size_t)len + 1);
  if (b && fread(b, 1, (size_t)len, fp) != (size_t)len) len = 0;
  fclose(fp);
  *n = (size_t)len;
  return b;
}

static void spit(const char *p, const char *b, size_t n) {
  FILE *fp = fopen(p, "wb");
  CHECK(fp != NULL);
  if (!fp) return;
  fwrite(b, 1, n, fp);
  fclose(fp);
}

/* Replaces the first `from` in the manifest with `to`. */
static void edit_manifest(const char *dir, const char *from, const char *to) {
  char mp[600];
  snprintf(mp, sizeof mp, "%s/pipeline.json", dir);
  size_t n;
  char *b = slurp(mp, &n), *at = b ? strstr(b, from) : NULL;
  CHECK(at != NULL);
  if (!at) {
    free(b);
    return;
  }
  char *out = malloc(n + strlen(to) + 1);
  size_t pre = (size_t)(at - b);
  memcpy(out, b, pre);
  strcpy(out + pre, to);
  strcat(out, at + strlen(from));
  spit(mp, out, strlen(out));
  free(out);
  free(b);
}

static void expect_load(const char *dir, int code, const char *w1,
                        const char *w2) {
  dlp_pipeline_model *pm = NULL;
  int rc = dlp_pipeline_model_load(ctx, dir, &pm);
  CHECK_EQ_INT(rc, code);
  CHECK(pm == NULL);
  int ok = strstr(dlp_errmsg(ctx), w1) && (!w2 || strstr(dlp_errmsg(ctx), w2));
  if (!ok) fprintf(stderr, "  message was: %s\n", dlp_errmsg(ctx));
  CHECK(ok);
  dlp_pipeline_model_free(pm);
}

static const char *fresh(dlp_pipeline_model *pm, const char *name) {
  const char *dir = path(name, NULL);
  CHECK_OK(ctx, dlp_pipeline_model_save(ctx, pm, dir, 0));
  return dir;
}

static void truncate_file(const char *p, size_t keep) {
  size_t n;
  char *b = slurp(p, &n);
  if (b) spit(p, b, keep < n ? keep : n);
  free(b);
}

TEST(damaged_directories_fail_clearly) {
  dlp_frame *f = blobs(60, 3, 2, 9);
  dlp_pipeline_model *pm = fit(f, "0.05");
  const char *coef = "stage-2-coefficients.npy";
  const char *d;

  d = fresh(pm, "newer");
  edit_manifest(d, "\"version\":\t1", "\"version\":\t3");
  expect_load(d, DLP_ERR_UNSUPPORTED,
              "written by a newer dlp (format version 3; this dlp reads 1): "
              "upgrade dlp",
              "newer");

  d = fresh(pm, "badjson");
  truncate_file(path("badjson", "pipeline.json"), 200);
  expect_load(d, DLP_ERR_CORRUPT, "badjson/pipeline.json", "malformed JSON");

  d = fresh(pm, "format");
  edit_manifest(d, "dlp-pipeline", "something-else");
  expect_load(d, DLP_ERR_FORMAT, "format/pipeline.json", "not a dlp pipeline");

  d = fresh(pm, "flipped");
  {
    size_t n;
    char *b = slurp(path("flipped", coef), &n);
    if (b && n > 140) {
      b[n - 3] ^= 0x10;
      spit(path("flipped", coef), b, n);
    }
    free(b);
  }
  expect_load(d, DLP_ERR_CORRUPT, "flipped/stage-2-coefficients.npy",
              "SHA-256");

  /* truncated, with the manifest's hash updated: the .npy reader notices */
  d = fresh(pm, "trunc");
  {
    char old[65], now[65];
    dlp_err e = {0};
    CHECK_EQ_INT(nn_sha256_file(&e, path("trunc", coef), old), DLP_OK);
    truncate_file(path("trunc", coef), 100);
    CHECK_EQ_INT(nn_sha256_file(&e, path("trunc", coef), now), DLP_OK);
    edit_manifest(d, old, now);
  }
  expect_load(d, DLP_ERR_CORRUPT, "trunc/stage-2-coefficients.npy", NULL);

  /* float32 instead of float64, hash updated: the dtype is checked */
  d = fresh(pm, "dtype");
  {
    char old[65], now[65];
    dlp_err e = {0};
    dlp_npy_array a = {0};
    CHECK_EQ_INT(nn_sha256_file(&e, path("dtype", coef), old), DLP_OK);
    CHECK_EQ_INT(dlp_npy_load_array(&e, path("dtype", coef), 1 << 20, &a),
                 DLP_OK);
    size_t n = a.nbytes / sizeof(double);
    float *v = calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++)
      v[i] = (float)((double *)a.data)[i];
    dlp_npy_array b = a;
    b.dtype = 'f';
    b.data = v;
    b.nbytes = n * sizeof(float);
    CHECK_EQ_INT(dlp_npy_save_array(&e, path("dtype", coef), &b), DLP_OK);
    CHECK_EQ_INT(nn_sha256_file(&e, path("dtype", coef), now), DLP_OK);
    edit_manifest(d, old, now);
    free(v);
    dlp_npy_array_free(&a);
  }
  expect_load(d, DLP_ERR_CORRUPT, "dtype/stage-2-coefficients.npy", "float64");

  d = fresh(pm, "missing");
  unlink(path("missing", "stage-2-intercepts.npy"));
  expect_load(d, DLP_ERR_NOT_FOUND, "missing/stage-2-intercepts.npy", NULL);

  d = fresh(pm, "escape");
  edit_manifest(d, "stage-2-intercepts.npy", "../newer/stage-2-intercepts.npy");
  expect_load(d, DLP_ERR_CORRUPT, "bad file name", "pipeline.json");

  d = fresh(pm, "klass");
  edit_manifest(d, "\"StringIndexerModel\"", "\"StringIndexerModelX\"");
  expect_load(d, DLP_ERR_UNSUPPORTED, "StringIndexerModelX", "pipeline.json");

  d = fresh(pm, "param");
  edit_manifest(d, "\"regParam\":\t0.05", "\"regParam\":\t-1");
  expect_load(d, DLP_ERR_CORRUPT, "regParam", "param/pipeline.json");

  d = fresh(pm, "unknownparam");
  edit_manifest(d, "\"regParam\"", "\"regParamX\"");
  expect_load(d, DLP_ERR_CORRUPT, "no parameter 'regParamX'", "pipeline.json");

  d = fresh(pm, "enum");
  edit_manifest(d, "\"frequencyDesc\"", "\"sideways\"");
  expect_load(d, DLP_ERR_CORRUPT, "stringOrderType", "pipeline.json");

  d = fresh(pm, "shape");
  edit_manifest(d, "\"n_classes\":\t2", "\"n_classes\":\t3");
  expect_load(d, DLP_ERR_CORRUPT, "shape/pipeline.json", NULL);

  d = fresh(pm, "nomanifest");
  unlink(path("nomanifest", "pipeline.json"));
  expect_load(d, DLP_ERR_NOT_FOUND, "nomanifest/pipeline.json", NULL);
  expect_load(path("nosuchdir", NULL), DLP_ERR_NOT_FOUND, "nosuchdir", NULL);

  dlp_pipeline_model_free(pm);
  dlp_frame_free(f);
}

static int rm_tree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd);
}

int main(void) {
  if (dlp_ctx_new(&ctx) != DLP_OK || !mkdtemp(root)) return 1;
  dlp_ctx_set_threads(ctx, 2);
  RUN(round_trip_is_bit_identical);
  RUN(overwrite_only_replaces_saved_pipelines);
  RUN(damaged_directories_fail_clearly);
  dlp_ctx_free(ctx);
  if (rm_tree(root) != 0) fprintf(stderr, "could not remove %s\n", root);
  return test_summary();
}
