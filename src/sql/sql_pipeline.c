/* sql_pipeline.c - fitted pipelines in SQL: dlp_apply(pipeline, image) gives
 * the class probabilities, dlp_classify(pipeline, image) the label as JSON,
 * and a function made by dlp_register(name, pipeline) the label alone
 * (sparkdl's registerKerasImageUDF followed by a classifier). One row at a
 * time through dlp_pipeline_model_transform, so the answers are those of
 * 'dlp transform' on the same images. */
#define DLPSQL_INTERNAL
#include "sql.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int dlpsql_is_pipeline(const char *name) {
  size_t n = strlen(name);
  char *p = malloc(n + sizeof "/pipeline.json");
  if (!p) return 0;
  memcpy(p, name, n);
  memcpy(p + n, "/pipeline.json", sizeof "/pipeline.json");
  struct stat st;
  int yes = stat(p, &st) == 0 && S_ISREG(st.st_mode);
  free(p);
  return yes;
}

int dlpsql_open_pipeline(dlpsql_state *s, const char *dir, dlpsql_model *mm,
                         char *err, size_t errlen) {
  dlp_lr_summary sum;
  if (dlp_pipeline_model_load(s->ctx, dir, &mm->pm) != DLP_OK ||
      dlp_pipeline_model_lr_summary(s->ctx, mm->pm, &sum) != DLP_OK) {
    snprintf(err, errlen, "%s", dlp_errmsg(s->ctx));
    dlp_pipeline_model_free(mm->pm);
    mm->pm = NULL;
    return 0;
  }
  return 1;
}

/* Where the pipeline reads and writes, from its stages' parameters. */
typedef struct pipe_cols {
  const char *image_col; /* the featurizer's input, NULL without one */
  const char *features_col;
  const char *prediction_col, *probability_col;
  size_t dim; /* feature vector length the classifier takes */
} pipe_cols;

static int stage_is(const dlp_stage *st, const char *cls) {
  return strcmp(dlp_stage_class(st), cls) == 0;
}

static int pipe_columns(dlp_ctx *ctx, dlp_pipeline_model *pm, pipe_cols *pc) {
  memset(pc, 0, sizeof *pc);
  dlp_lr_summary sum;
  if (dlp_pipeline_model_lr_summary(ctx, pm, &sum) != DLP_OK) return 0;
  pc->dim = sum.dim;
  for (size_t i = 0; i < dlp_pipeline_model_nstages(pm); i++) {
    const dlp_stage *st = dlp_pipeline_model_stage(pm, i);
    if (stage_is(st, "DeepImageFeaturizer") && !pc->image_col) {
      pc->image_col = dlp_stage_get(st, "inputCol");
      pc->features_col = dlp_stage_get(st, "outputCol");
    } else if (stage_is(st, "LogisticRegressionModel")) {
      if (!pc->features_col)
        pc->features_col = dlp_stage_get(st, "featuresCol");
      pc->prediction_col = dlp_stage_get(st, "predictionCol");
      pc->probability_col = dlp_stage_get(st, "probabilityCol");
      break;
    }
  }
  return pc->features_col && pc->prediction_col && pc->probability_col;
}

/* A BLOB that is not an encoded image is taken as the feature vector. */
static int is_vector_arg(sqlite3_value *v, const pipe_cols *pc) {
  if (sqlite3_value_type(v) != SQLITE_BLOB) return 0;
  const void *b = sqlite3_value_blob(v);
  size_t n = (size_t)sqlite3_value_bytes(v);
  if (b && dlp_format_sniff(b, n) != DLP_FORMAT_UNKNOWN) return 0;
  return !pc->image_col || n == pc->dim * sizeof(float);
}

/* The one-row input frame: an image column for the featurizer, or the
 * features column (the featurizer is then skipped). 0 with msg set when the
 * argument does not fit the pipeline. */
static int input_frame(dlp_ctx *ctx, const pipe_cols *pc, sqlite3_value *v,
                       dlp_frame **out, char *msg, size_t cap) {
  int vec = is_vector_arg(v, pc);
  size_t n = (size_t)sqlite3_value_bytes(v);
  if (vec && n != pc->dim * sizeof(float)) {
    snprintf(msg, cap,
             "a BLOB of %zu bytes is neither an image nor the %zu-d float32 "
             "feature vector the pipeline takes",
             n, pc->dim);
    return 0;
  }
  if (!vec && !pc->image_col) {
    snprintf(msg, cap,
             "the pipeline has no DeepImageFeaturizer: give its %zu-d "
             "features as a float32 vector BLOB",
             pc->dim);
    return 0;
  }
  float *x = vec ? malloc(pc->dim * sizeof *x + 1) : NULL;
  if (x) memcpy(x, sqlite3_value_blob(v), n); /* BLOBs need not be aligned */
  dlp_frame *f = NULL;
  int rc = vec && !x ? DLP_ERR_NOMEM : dlp_frame_new(ctx, &f);
  if (rc == DLP_OK)
    rc = vec ? dlp_frame_add_column(ctx, f, pc->features_col, DLP_TYPE_VECTOR,
                                    pc->dim)
             : dlp_frame_add_column(ctx, f, pc->image_col, DLP_TYPE_IMAGE, 0);
  if (rc == DLP_OK) rc = dlp_frame_add_row(ctx, f, NULL);
  if (rc == DLP_OK)
    rc = vec ? dlp_frame_set_vector(ctx, f, 0, 0, x)
             : dlpsql_set_image(ctx, f, 0, v);
  free(x);
  if (rc != DLP_OK) {
    snprintf(msg, cap, "%s",
             rc == DLP_ERR_NOMEM && !f ? "out of memory" : dlp_errmsg(ctx));
    dlp_frame_free(f);
    return 0;
  }
  *out = f;
  return 1;
}

/* A float32 as the shortest-safe JSON number ("%.9g" reads back as the
 * same float), not the double it widens to (0.930000007152557). */
static cJSON *float_number(float v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.9g", (double)v);
  return cJSON_CreateRaw(buf);
}

/* {"label": "cat", "index": 1, "probability": 0.93, "probabilities":
 * {"cat": 0.93, "dog": 0.07}}; without labels, no "label" and the
 * probabilities as an array. */
static char *classify_json(const char *const *labels, size_t nl, size_t idx,
                           const float *prob, size_t k) {
  cJSON *o = cJSON_CreateObject();
  cJSON *ps = labels ? cJSON_CreateObject() : cJSON_CreateArray();
  if (!o || !ps) {
    cJSON_Delete(o);
    cJSON_Delete(ps);
    return NULL;
  }
  if (labels && idx < nl) cJSON_AddStringToObject(o, "label", labels[idx]);
  cJSON_AddNumberToObject(o, "index", (double)idx);
  cJSON_AddItemToObject(o, "probability",
                        float_number(idx < k ? prob[idx] : 0));
  for (size_t i = 0; i < k; i++) {
    if (!labels)
      cJSON_AddItemToArray(ps, float_number(prob[i]));
    else if (i < nl)
      cJSON_AddItemToObject(ps, labels[i], float_number(prob[i]));
  }
  cJSON_AddItemToObject(o, "probabilities", ps);
  char *txt = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return txt;
}

/* The SQL result from the transformed row. */
static void set_result(sqlite3_context *c, dlpsql_model *mm,
                       const pipe_cols *pc, const dlp_frame *out,
                       dlpsql_pipe_out what) {
  long qc = dlp_frame_col_index(out, pc->probability_col);
  long pcol = dlp_frame_col_index(out, pc->prediction_col);
  const float *prob = NULL;
  double pred = -1;
  size_t k = qc >= 0 ? dlp_frame_col_dim(out, (size_t)qc) : 0;
  if (qc < 0 || pcol < 0 || !dlp_frame_get_vector(out, (size_t)qc, 0, &prob) ||
      !dlp_frame_get_double(out, (size_t)pcol, 0, &pred) || pred < 0) {
    sqlite3_result_error(c, "dlp: the pipeline gave no prediction", -1);
    return;
  }
  size_t nl = 0, idx = (size_t)pred;
  const char *const *labels = dlp_pipeline_model_labels(mm->pm, &nl);
  if (what == DLPSQL_PIPE_PROBABILITY) {
    sqlite3_result_blob(c, prob, (int)(k * sizeof(float)), SQLITE_TRANSIENT);
  } else if (what == DLPSQL_PIPE_LABEL) {
    if (labels && idx < nl)
      sqlite3_result_text(c, labels[idx], -1, SQLITE_TRANSIENT);
    else
      sqlite3_result_int64(c, (sqlite3_int64)idx);
  } else {
    char *json = classify_json(labels, nl, idx, prob, k);
    if (json)
      sqlite3_result_text(c, json, -1, SQLITE_TRANSIENT);
    else
      sqlite3_result_error_nomem(c);
    free(json); /* cJSON allocates with malloc */
  }
}

void dlpsql_pipeline_run(sqlite3_context *c, const char *fn, dlpsql_state *s,
                         dlpsql_model *mm, sqlite3_value *img,
                         dlpsql_pipe_out what) {
  if (sqlite3_value_type(img) == SQLITE_NULL) {
    sqlite3_result_null(c);
    return;
  }
  dlp_ctx *ctx = s->ctx;
  pipe_cols pc;
  char msg[512];
  dlp_frame *in = NULL, *out = NULL;
  if (!pipe_columns(ctx, mm->pm, &pc)) {
    dlpsql_error(c, fn, "the pipeline has no LogisticRegressionModel");
    return;
  }
  if (!input_frame(ctx, &pc, img, &in, msg, sizeof msg)) {
    dlpsql_error(c, fn, msg);
    return;
  }
  if (dlp_pipeline_model_transform(ctx, mm->pm, in, &out) != DLP_OK) {
    dlpsql_error(c, fn, dlp_errmsg(ctx));
  } else {
    long pcol = dlp_frame_col_index(out, pc.prediction_col);
    long ic = pc.image_col ? dlp_frame_col_index(out, pc.image_col) : -1;
    /* A row whose image cannot be read gets null features and outputs. */
    if (pcol >= 0 && dlp_frame_is_null(out, (size_t)pcol, 0) && ic >= 0)
      dlpsql_image_error(c, fn, mm, out, (size_t)ic, img);
    else
      set_result(c, mm, &pc, out, what);
  }
  dlp_frame_free(out);
  dlp_frame_free(in);
}

/* dlp_classify(pipeline, image [, options]). */
static void classify_func(sqlite3_context *c, int argc, sqlite3_value **argv) {
  dlpsql_state *s = sqlite3_user_data(c);
  const char *fn = "dlp_classify";
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL ||
      sqlite3_value_type(argv[1]) == SQLITE_NULL) {
    sqlite3_result_null(c);
    return;
  }
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  const char *opts = argc > 2 && sqlite3_value_type(argv[2]) != SQLITE_NULL
                         ? (const char *)sqlite3_value_text(argv[2])
                         : NULL;
  if (!name || !dlpsql_is_pipeline(name)) {
    char *m = sqlite3_mprintf(
        "%s: '%s' is not a fitted pipeline (a directory holding "
        "pipeline.json, as 'dlp fit --out' writes)",
        fn, name ? name : "");
    sqlite3_result_error(c, m ? m : fn, -1);
    sqlite3_free(m);
    return;
  }
  char err[512];
  dlpsql_model *mm = dlpsql_model_get(s, name, opts, err, sizeof err);
  if (!mm)
    dlpsql_error(c, fn, err);
  else
    dlpsql_pipeline_run(c, fn, s, mm, argv[1], DLPSQL_PIPE_CLASSIFY);
}

int dlpsql_register_pipeline(sqlite3 *db, dlpsql_state *s) {
  for (int n = 2; n <= 3; n++) {
    int rc = sqlite3_create_function_v2(
        db, "dlp_classify", n,
        SQLITE_UTF8 | SQLITE_DIRECTONLY | SQLITE_DETERMINISTIC, dlpsql_ref(s),
        classify_func, NULL, NULL, dlpsql_unref);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}
