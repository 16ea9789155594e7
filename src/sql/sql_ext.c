/* sql_ext.c - the extension's entry point, per-connection state and model
 * cache (models and fitted pipelines opened once per connection, keyed by
 * name + options). */
#define DLPSQL_INTERNAL
#include "sql.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

SQLITE_EXTENSION_INIT1

dlpsql_state *dlpsql_ref(dlpsql_state *s) {
  s->refs++;
  return s;
}

void dlpsql_unref(void *p) {
  dlpsql_state *s = p;
  if (!s || --s->refs > 0) return;
  for (dlpsql_model *m = s->models, *next; m; m = next) {
    next = m->next;
    dlp_model_free(m->m);
    dlp_pipeline_model_free(m->pm);
    free(m->key);
    free(m);
  }
  dlp_ctx_free(s->ctx);
  free(s);
}

static int is_model_file(const char *name) {
  static const char *ext[] = {".onnx", ".h5", ".hdf5", ".keras"};
  size_t n = strlen(name);
  if (strchr(name, '/')) return 1;
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
    size_t k = strlen(ext[i]);
    if (n > k && strcasecmp(name + n - k, ext[i]) == 0) return 1;
  }
  return 0;
}

static int parse_triple(const cJSON *v, float *out, int positive) {
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3) return 0;
  for (int i = 0; i < 3; i++) {
    const cJSON *x = cJSON_GetArrayItem(v, i);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) ||
        (positive && x->valuedouble <= 0))
      return 0;
    out[i] = (float)x->valuedouble;
  }
  return 1;
}

/* One option of the JSON object into mo / mm; 0 with err set when bad. */
static int apply_option(const cJSON *it, dlp_model_opts *mo, dlpsql_model *mm,
                        char *err, size_t errlen) {
  const char *k = it->string;
  const char *sv = cJSON_IsString(it) ? it->valuestring : NULL;
  int ok = 1;
  if (strcmp(k, "input_size") == 0)
    ok = sv && dlp_parse_size(sv, &mo->input_height, &mo->input_width);
  else if (strcmp(k, "preprocess") == 0)
    ok = sv && dlp_norm_from_name(sv, &mo->norm) && (mo->norm_set = 1);
  else if (strcmp(k, "mean") == 0)
    ok = parse_triple(it, mo->mean, 0) && (mo->norm = DLP_NORM_CUSTOM) &&
         (mo->norm_set = 1);
  else if (strcmp(k, "std") == 0)
    ok = parse_triple(it, mo->std, 1);
  else if (strcmp(k, "channel_order") == 0)
    ok = sv && (strcasecmp(sv, "RGB") == 0 || strcasecmp(sv, "BGR") == 0) &&
         ((mo->bgr = strcasecmp(sv, "BGR") == 0) || 1);
  else if (strcmp(k, "layer") == 0)
    ok = sv && (mo->layer = sv);
  else if (strcmp(k, "random_weights") == 0)
    ok = cJSON_IsBool(it) && ((mo->random_weights = cJSON_IsTrue(it)) || 1);
  else if (strcmp(k, "seed") == 0)
    ok = cJSON_IsNumber(it) && it->valuedouble >= 0 &&
         it->valuedouble < 1.8e19 &&
         ((mo->seed = (uint64_t)it->valuedouble) || 1);
  else if (strcmp(k, "reference") == 0)
    ok = cJSON_IsBool(it) && ((mo->fast = !cJSON_IsTrue(it)) || 1);
  else if (strcmp(k, "precision") == 0)
    ok = sv && (strcmp(sv, "fp32") == 0 || strcmp(sv, "bf16") == 0) &&
         ((mo->precision = strcmp(sv, "bf16") == 0 ? DLP_PRECISION_BF16
                                                   : DLP_PRECISION_FP32) ||
          1);
  else if (strcmp(k, "model_dir") == 0)
    ok = sv && (mo->model_dir = sv);
  else if (strcmp(k, "on_error") == 0)
    ok = sv && (strcmp(sv, "null") == 0 || strcmp(sv, "error") == 0) &&
         ((mm->on_error_null = strcmp(sv, "null") == 0) || 1);
  else if (strcmp(k, "k") == 0)
    ok = cJSON_IsNumber(it) && it->valuedouble >= 1 &&
         it->valuedouble <= 100000 && ((mm->top_k = it->valueint) || 1);
  else if (strcmp(k, "batch_size") == 0)
    ok = cJSON_IsNumber(it) && it->valuedouble >= 1 &&
         it->valuedouble <= 4096 && ((mm->batch_size = it->valueint) || 1);
  else {
    snprintf(err, errlen,
             "unknown option '%s' (known: input_size, preprocess, mean, std, "
             "channel_order, layer, random_weights, seed, reference, "
             "precision, model_dir, on_error, k, batch_size)",
             k);
    return 0;
  }
  if (!ok) snprintf(err, errlen, "invalid value for option '%s'", k);
  return ok;
}

static int open_model(dlpsql_state *s, const char *name, const char *opts,
                      dlpsql_model *mm, char *err, size_t errlen) {
  dlp_model_opts mo;
  dlp_model_opts_init(&mo);
  cJSON *j = NULL;
  int pipeline = dlpsql_is_pipeline(name);
  if (opts && *opts) {
    j = cJSON_Parse(opts);
    if (!cJSON_IsObject(j)) {
      cJSON_Delete(j);
      snprintf(err, errlen, "options are not a JSON object: %.60s", opts);
      return 0;
    }
    for (const cJSON *it = j->child; it; it = it->next) {
      if (pipeline && strcmp(it->string, "on_error") != 0) {
        snprintf(err, errlen,
                 "option '%s' does not apply to a fitted pipeline (only "
                 "on_error does; the pipeline's stages hold the rest)",
                 it->string);
        cJSON_Delete(j);
        return 0;
      }
      if (!apply_option(it, &mo, mm, err, errlen)) {
        cJSON_Delete(j);
        return 0;
      }
    }
  }
  if (pipeline) {
    cJSON_Delete(j);
    return dlpsql_open_pipeline(s, name, mm, err, errlen);
  }
  if (is_model_file(name)) mo.model_file = name;
  int rc = dlp_model_open(s->ctx, mo.model_file ? NULL : name, &mo, &mm->m);
  cJSON_Delete(j); /* the model copies what it keeps */
  if (rc != DLP_OK) {
    snprintf(err, errlen, "%s", dlp_errmsg(s->ctx));
    return 0;
  }
  return 1;
}

dlpsql_model *dlpsql_model_get(dlpsql_state *s, const char *name,
                               const char *opts, char *err, size_t errlen) {
  if (!opts) opts = "";
  size_t ln = strlen(name), lo = strlen(opts);
  for (dlpsql_model *m = s->models; m; m = m->next)
    if (strncmp(m->key, name, ln) == 0 && m->key[ln] == '\x1f' &&
        strcmp(m->key + ln + 1, opts) == 0)
      return m;
  dlpsql_model *mm = calloc(1, sizeof *mm);
  char *key = malloc(ln + lo + 2);
  if (!mm || !key) {
    free(mm);
    free(key);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  memcpy(key, name, ln);
  key[ln] = '\x1f';
  memcpy(key + ln + 1, opts, lo + 1);
  mm->key = key;
  mm->top_k = 5;
  mm->batch_size = 16;
  if (!open_model(s, name, opts, mm, err, errlen)) {
    free(key);
    free(mm);
    return NULL;
  }
  mm->next = s->models;
  s->models = mm;
  return mm;
}

int dlpsql_set_image(dlp_ctx *ctx, dlp_frame *f, size_t row, sqlite3_value *v) {
  dlp_image_meta meta = {NULL, -1, -1, -1, -1, NULL, NULL, 0};
  if (sqlite3_value_type(v) == SQLITE_BLOB) {
    meta.bytes = sqlite3_value_blob(v);
    meta.n_bytes = (size_t)sqlite3_value_bytes(v);
    if (!meta.bytes) meta.error = "empty image blob";
  } else {
    meta.origin = (const char *)sqlite3_value_text(v);
    if (!meta.origin) return DLP_ERR_NOMEM;
  }
  return dlp_frame_set_image_meta(ctx, f, 0, row, &meta);
}

int dlpsql_register(sqlite3 *db, char **errmsg) {
  dlpsql_state *s = calloc(1, sizeof *s);
  if (!s || dlp_ctx_new(&s->ctx) != DLP_OK) {
    free(s);
    if (errmsg) *errmsg = sqlite3_mprintf("dlp: out of memory");
    return SQLITE_NOMEM;
  }
  s->refs = 1; /* held until the registrations below took theirs */
  int rc = dlpsql_register_funcs(db, s);
  if (rc == SQLITE_OK) rc = dlpsql_register_vec(db);
  if (rc == SQLITE_OK) rc = dlpsql_register_images(db, s);
  if (rc == SQLITE_OK) rc = dlpsql_register_knn(db);
  if (rc == SQLITE_OK) rc = dlpsql_register_batch(db, s);
  if (rc == SQLITE_OK) rc = dlpsql_register_pipeline(db, s);
  if (rc != SQLITE_OK && errmsg)
    *errmsg = sqlite3_mprintf("dlp: cannot register functions: %s",
                              sqlite3_errmsg(db));
  dlpsql_unref(s);
  return rc;
}

#ifdef _WIN32
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
    int sqlite3_dlpsql_init(sqlite3 *db, char **errmsg,
                            const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api);
  return dlpsql_register(db, errmsg);
}
