/* persist.c - saving and loading fitted pipelines: a directory holding a
 * JSON manifest (pipeline.json) and float64 .npy arrays whose SHA-256 the
 * manifest records, written aside and renamed into place. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "stage.h"

#include "frame/frame.h"
#include "nn/models.h"
#include "npy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PIPE_FORMAT "dlp-pipeline"
#define PIPE_VERSION 1
#define MANIFEST "pipeline.json"

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)ftw;
  return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Removes a directory tree (our own temporary or replaced directories). */
static void rm_tree(const char *dir) {
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int join(dlp_ctx *ctx, char *buf, size_t cap, const char *a,
                const char *b) {
  if ((size_t)snprintf(buf, cap, "%s/%s", a, b) >= cap)
    return dlp_fail(ctx, DLP_ERR_ARG, "path too long: %s/%s", a, b);
  return DLP_OK;
}

/* --- save ---------------------------------------------------------------- */

/* A JSON number that reads back as exactly v: cJSON's own printing stops
 * at 15 digits when the value is within an epsilon, which loses bits. */
static cJSON *exact_number(double v) {
  char buf[40];
  if (!isfinite(v)) return cJSON_CreateNull();
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  return cJSON_CreateRaw(buf);
}

/* Every parameter by MLlib name, typed as its description says. */
static cJSON *params_json(const dlp_stage *s) {
  cJSON *o = cJSON_CreateObject();
  for (size_t i = 0; o && i < s->cls->nparams; i++) {
    const dlp_param_desc *d = &s->cls->params[i];
    const char *v = s->values[i];
    cJSON *item = d->type == DLP_PARAM_INT || d->type == DLP_PARAM_DOUBLE
                      ? exact_number(strtod(v, NULL))
                  : d->type == DLP_PARAM_BOOL
                      ? cJSON_CreateBool(strcmp(v, "true") == 0)
                      : cJSON_CreateString(v);
    if (!item || !cJSON_AddItemToObject(o, d->name, item)) {
      cJSON_Delete(item);
      cJSON_Delete(o);
      return NULL;
    }
  }
  return o;
}

/* Writes one float64 array and records {"file", "sha256", "shape"}. */
static int save_array(dlp_ctx *ctx, const char *tmp, size_t stage,
                      const char *name, const double *v, int ndim,
                      const int64_t *dims, cJSON *arrays) {
  char file[128], path[4096], hex[65];
  snprintf(file, sizeof file, "stage-%zu-%s.npy", stage, name);
  int rc = join(ctx, path, sizeof path, tmp, file);
  if (rc != DLP_OK) return rc;
  dlp_npy_array a = {.dtype = 'd', .ndim = ndim, .data = (void *)v};
  size_t count = 1;
  for (int i = 0; i < ndim; i++) {
    a.dims[i] = dims[i];
    count *= (size_t)dims[i];
  }
  a.nbytes = count * sizeof(double);
  dlp_err e = {0};
  if (dlp_npy_save_array(&e, path, &a) != DLP_OK ||
      nn_sha256_file(&e, path, hex) != DLP_OK)
    return dlp_fail_from(ctx, &e);
  cJSON *o = cJSON_AddObjectToObject(arrays, name);
  cJSON *shape = o ? cJSON_AddArrayToObject(o, "shape") : NULL;
  for (int i = 0; shape && i < ndim; i++)
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)dims[i]));
  if (!shape || !cJSON_AddStringToObject(o, "file", file) ||
      !cJSON_AddStringToObject(o, "sha256", hex))
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the manifest");
  return DLP_OK;
}

static int lr_json(dlp_ctx *ctx, const dlp_stage *s, const char *tmp, size_t i,
                   cJSON *st) {
  const ml_lr_fit *f = &s->lr;
  cJSON *arrays = cJSON_AddObjectToObject(st, "arrays");
  cJSON *sum = cJSON_AddObjectToObject(st, "summary");
  if (!arrays || !sum ||
      !cJSON_AddNumberToObject(st, "n_classes", (double)f->n_classes) ||
      !cJSON_AddBoolToObject(sum, "multinomial", f->multinomial) ||
      !cJSON_AddNumberToObject(sum, "iterations", f->iterations) ||
      !cJSON_AddItemToObject(sum, "objective", exact_number(f->objective)))
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the manifest");
  cJSON *h =
      f->history ? cJSON_AddArrayToObject(sum, "objective_history") : NULL;
  for (int k = 0; h && k <= f->iterations; k++)
    if (!cJSON_AddItemToArray(h, exact_number(f->history[k])))
      return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the manifest");
  if (f->history && !h)
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the manifest");
  int64_t cd[2] = {(int64_t)f->k, (int64_t)f->dim}, id[1] = {(int64_t)f->k};
  int rc = save_array(ctx, tmp, i, "coefficients", f->coef, 2, cd, arrays);
  if (rc == DLP_OK)
    rc = save_array(ctx, tmp, i, "intercepts", f->intercept, 1, id, arrays);
  return rc;
}

static int stage_json(dlp_ctx *ctx, const dlp_stage *s, const char *tmp,
                      size_t i, cJSON *stages) {
  char uid[96];
  snprintf(uid, sizeof uid, "%s_%zu", s->cls->name, i + 1);
  cJSON *st = cJSON_CreateObject(), *params = params_json(s);
  if (!st || !params || !cJSON_AddItemToArray(stages, st)) {
    cJSON_Delete(st);
    cJSON_Delete(params);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the manifest");
  }
  if (!cJSON_AddStringToObject(st, "class", s->cls->name) ||
      !cJSON_AddStringToObject(st, "uid", uid) ||
      !cJSON_AddItemToObject(st, "params", params)) {
    cJSON_Delete(params);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the manifest");
  }
  if (s->cls->kind == ML_INDEXER_MODEL) {
    cJSON *l = cJSON_CreateStringArray((const char *const *)s->labels,
                                       (int)s->n_labels);
    if (!l || !cJSON_AddItemToObject(st, "labels", l)) {
      cJSON_Delete(l);
      return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the manifest");
    }
  }
  if (s->cls->kind == ML_LR_MODEL && s->has_lr)
    return lr_json(ctx, s, tmp, i, st);
  return DLP_OK;
}

static int write_manifest(dlp_ctx *ctx, const dlp_pipeline_model *pm,
                          const char *tmp) {
  char created[32], path[4096];
  time_t now = time(NULL);
  struct tm tm;
  strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
  cJSON *root = cJSON_CreateObject();
  cJSON *stages = NULL;
  int rc = DLP_OK;
  if (!root || !cJSON_AddStringToObject(root, "format", PIPE_FORMAT) ||
      !cJSON_AddNumberToObject(root, "version", PIPE_VERSION) ||
      !cJSON_AddStringToObject(root, "dlp_version", DLP_VERSION) ||
      !cJSON_AddStringToObject(root, "created", created) ||
      !(stages = cJSON_AddArrayToObject(root, "stages")))
    rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the manifest");
  for (size_t i = 0; rc == DLP_OK && i < pm->n; i++)
    rc = stage_json(ctx, pm->stages[i], tmp, i, stages);
  char *txt = rc == DLP_OK ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (rc == DLP_OK && !txt)
    rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the manifest");
  if (rc == DLP_OK) rc = join(ctx, path, sizeof path, tmp, MANIFEST);
  if (rc == DLP_OK) {
    dlp_err e = {0};
    if (dlp_write_file_atomic(&e, path, txt, strlen(txt)) != DLP_OK)
      rc = dlp_fail_from(ctx, &e);
  }
  free(txt);
  return rc;
}

/* Puts the finished tmp directory at dir; an existing (saved pipeline)
 * directory is moved aside first and removed only once tmp is in place. */
static int swap_in(dlp_ctx *ctx, const char *tmp, const char *dir, int exists) {
  char old[4160];
  snprintf(old, sizeof old, "%s.old.%ld", dir, (long)getpid());
  if (exists && rename(dir, old) != 0)
    return dlp_fail(ctx, DLP_ERR_IO, "cannot move %s aside: %s", dir,
                    strerror(errno));
  if (rename(tmp, dir) != 0) {
    int err = errno;
    if (exists) rename(old, dir);
    return dlp_fail(ctx, DLP_ERR_IO, "cannot rename %s to %s: %s", tmp, dir,
                    strerror(err));
  }
  if (exists) rm_tree(old);
  return DLP_OK;
}

/* 1 when dir exists (as a saved pipeline we may replace), 0 when it does
 * not; a failure otherwise. */
static int check_target(dlp_ctx *ctx, const char *dir, int overwrite,
                        int *exists) {
  struct stat st;
  char path[4096];
  *exists = stat(dir, &st) == 0;
  if (!*exists) return DLP_OK;
  if (!overwrite)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "%s exists already (overwrite it with --overwrite)", dir);
  int rc = join(ctx, path, sizeof path, dir, MANIFEST);
  if (rc != DLP_OK) return rc;
  if (!S_ISDIR(st.st_mode) || stat(path, &st) != 0)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "%s exists and is not a saved pipeline (no %s): "
                    "refusing to replace it",
                    dir, MANIFEST);
  return DLP_OK;
}

int dlp_pipeline_model_save(dlp_ctx *ctx, const dlp_pipeline_model *pm,
                            const char *dir, int overwrite) {
  if (!pm || !dir || !*dir)
    return dlp_fail(ctx, DLP_ERR_ARG, "save: %s is missing",
                    pm ? "the directory" : "the model");
  /* "out.dlp/" must not put the temporary directory inside out.dlp */
  char clean[4096];
  size_t len = strlen(dir);
  while (len > 1 && dir[len - 1] == '/')
    len--;
  if (len >= sizeof clean)
    return dlp_fail(ctx, DLP_ERR_ARG, "path too long: %s", dir);
  memcpy(clean, dir, len);
  clean[len] = '\0';
  dir = clean;
  int exists;
  int rc = check_target(ctx, dir, overwrite, &exists);
  if (rc != DLP_OK) return rc;
  char tmp[4160];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid()) >=
      sizeof tmp)
    return dlp_fail(ctx, DLP_ERR_ARG, "path too long: %s", dir);
  rm_tree(tmp); /* a leftover of an earlier crashed save by this pid */
  if (mkdir(tmp, 0755) != 0)
    return dlp_fail(ctx, DLP_ERR_IO, "cannot create %s: %s", tmp,
                    strerror(errno));
  rc = write_manifest(ctx, pm, tmp);
  if (rc == DLP_OK) rc = swap_in(ctx, tmp, dir, exists);
  if (rc != DLP_OK) {
    rm_tree(tmp);
    return rc;
  }
  return dlp_ok(ctx);
}

/* --- load ---------------------------------------------------------------- */

typedef struct loader {
  dlp_ctx *ctx;
  const char *dir;
  char manifest[4096];
} loader;

/* Fails with code and "DIR/pipeline.json: stage i: ..." */
static int bad(loader *L, int code, long stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(loader *L, int code, long stage, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (stage >= 0)
    return dlp_fail(L->ctx, code, "%s: stage %ld: %s", L->manifest, stage, msg);
  return dlp_fail(L->ctx, code, "%s: %s", L->manifest, msg);
}

/* A parameter value from JSON as the text dlp_stage_set takes. */
static int param_text(const cJSON *v, char *buf, size_t cap) {
  if (cJSON_IsString(v)) {
    if (strlen(v->valuestring) >= cap) return 0;
    strcpy(buf, v->valuestring);
  } else if (cJSON_IsBool(v)) {
    strcpy(buf, cJSON_IsTrue(v) ? "true" : "false");
  } else if (cJSON_IsNumber(v)) {
    snprintf(buf, cap, "%.17g", v->valuedouble);
  } else {
    return 0;
  }
  return 1;
}

static int load_params(loader *L, long i, const cJSON *params, dlp_stage *s) {
  if (!cJSON_IsObject(params))
    return bad(L, DLP_ERR_CORRUPT, i, "\"params\" is not an object");
  for (const cJSON *p = params->child; p; p = p->next) {
    long k = ml_class_param_index(s->cls, p->string);
    if (k < 0 || strcmp(s->cls->params[k].name, p->string) != 0)
      return bad(L, DLP_ERR_CORRUPT, i, "%s has no parameter '%s'",
                 s->cls->name, p->string);
    char text[4096];
    if (!param_text(p, text, sizeof text))
      return bad(L, DLP_ERR_CORRUPT, i, "parameter '%s' has a bad JSON type",
                 p->string);
    if (dlp_stage_set(L->ctx, s, p->string, text) != DLP_OK)
      return bad(L, DLP_ERR_CORRUPT, i, "%s", dlp_errmsg(L->ctx));
  }
  return DLP_OK;
}

static int load_labels(loader *L, long i, const cJSON *st, dlp_stage *s) {
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(st, "labels");
  if (!cJSON_IsArray(l))
    return bad(L, DLP_ERR_CORRUPT, i, "StringIndexerModel has no \"labels\"");
  size_t n = (size_t)cJSON_GetArraySize(l);
  s->labels = dlp_calloc_array(n ? n : 1, sizeof *s->labels);
  if (!s->labels) return dlp_fail(L->ctx, DLP_ERR_NOMEM, "no memory");
  for (const cJSON *e = l->child; e; e = e->next) {
    if (!cJSON_IsString(e))
      return bad(L, DLP_ERR_CORRUPT, i, "labels[%zu] is not a string",
                 s->n_labels);
    if (!(s->labels[s->n_labels++] = dlp_strdup(e->valuestring)))
      return dlp_fail(L->ctx, DLP_ERR_NOMEM, "no memory");
  }
  return DLP_OK;
}

/* Loads arrays.<name>: checks the file name, its SHA-256, dtype and shape
 * (ndim dims, -1 = any); *v takes the data. */
static int load_array(loader *L, long i, const cJSON *arrays, const char *name,
                      int ndim, int64_t *dims, double **v) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(arrays, name);
  const cJSON *file = cJSON_GetObjectItemCaseSensitive(a, "file");
  const cJSON *sha = cJSON_GetObjectItemCaseSensitive(a, "sha256");
  if (!cJSON_IsString(file) || !cJSON_IsString(sha))
    return bad(L, DLP_ERR_CORRUPT, i, "arrays.%s needs \"file\" and \"sha256\"",
               name);
  const char *fn = file->valuestring;
  if (!*fn || strchr(fn, '/') || strcmp(fn, "..") == 0 || fn[0] == '.')
    return bad(L, DLP_ERR_CORRUPT, i, "arrays.%s: bad file name '%s'", name,
               fn);
  char path[4096], hex[65];
  int rc = join(L->ctx, path, sizeof path, L->dir, fn);
  if (rc != DLP_OK) return rc;
  dlp_err e = {0};
  if (nn_sha256_file(&e, path, hex) != DLP_OK)
    return dlp_fail(L->ctx, e.code, "pipeline %s: %s", L->dir, e.msg);
  if (strcmp(hex, sha->valuestring) != 0)
    return dlp_fail(L->ctx, DLP_ERR_CORRUPT,
                    "%s was altered or damaged: its SHA-256 is %s, the "
                    "manifest says %.64s",
                    path, hex, sha->valuestring);
  dlp_npy_array arr = {0};
  if (dlp_npy_load_array(&e, path, dlp_ctx_max_file_bytes(L->ctx), &arr) !=
      DLP_OK)
    return dlp_fail(L->ctx, DLP_ERR_CORRUPT, "%s", e.msg);
  int ok = arr.dtype == 'd' && arr.ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) {
    if (dims[d] >= 0 && arr.dims[d] != dims[d]) ok = 0;
    dims[d] = arr.dims[d];
  }
  if (!ok) {
    dlp_npy_array_free(&arr);
    return dlp_fail(L->ctx, DLP_ERR_CORRUPT,
                    "%s: expected a %d-d float64 array of the manifest's "
                    "shape",
                    path, ndim);
  }
  *v = arr.data;
  return DLP_OK;
}

static int load_summary(loader *L, long i, const cJSON *st, ml_lr_fit *f) {
  const cJSON *sum = cJSON_GetObjectItemCaseSensitive(st, "summary");
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(sum, "iterations");
  const cJSON *obj = cJSON_GetObjectItemCaseSensitive(sum, "objective");
  const cJSON *mn = cJSON_GetObjectItemCaseSensitive(sum, "multinomial");
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(sum, "objective_history");
  if (!cJSON_IsNumber(it) || !cJSON_IsNumber(obj) || !cJSON_IsBool(mn) ||
      it->valuedouble < 0 || it->valuedouble > 1e7 ||
      it->valuedouble != floor(it->valuedouble))
    return bad(L, DLP_ERR_CORRUPT, i,
               "\"summary\" needs iterations, objective and multinomial");
  f->iterations = (int)it->valuedouble;
  f->objective = obj->valuedouble;
  f->multinomial = cJSON_IsTrue(mn);
  size_t nh = (size_t)f->iterations + 1;
  f->history = dlp_calloc_array(nh, sizeof(double));
  if (!f->history) return dlp_fail(L->ctx, DLP_ERR_NOMEM, "no memory");
  if (!h) {
    f->history[nh - 1] = f->objective;
    return DLP_OK;
  }
  if (!cJSON_IsArray(h) || (size_t)cJSON_GetArraySize(h) != nh)
    return bad(L, DLP_ERR_CORRUPT, i,
               "objective_history needs iterations + 1 numbers");
  size_t k = 0;
  for (const cJSON *e = h->child; e; e = e->next, k++) {
    if (!cJSON_IsNumber(e))
      return bad(L, DLP_ERR_CORRUPT, i, "objective_history[%zu] is no number",
                 k);
    f->history[k] = e->valuedouble;
  }
  return DLP_OK;
}

static int load_lr(loader *L, long i, const cJSON *st, dlp_stage *s) {
  ml_lr_fit *f = &s->lr;
  s->has_lr = 1; /* from here on, dlp_stage_free clears what is loaded */
  const cJSON *nc = cJSON_GetObjectItemCaseSensitive(st, "n_classes");
  const cJSON *arrays = cJSON_GetObjectItemCaseSensitive(st, "arrays");
  if (!cJSON_IsNumber(nc) || nc->valuedouble < 2 || nc->valuedouble > 1e7 ||
      nc->valuedouble != floor(nc->valuedouble) || !cJSON_IsObject(arrays))
    return bad(L, DLP_ERR_CORRUPT, i,
               "LogisticRegressionModel needs n_classes >= 2 and arrays");
  int rc = load_summary(L, i, st, f);
  if (rc != DLP_OK) return rc;
  f->n_classes = (int64_t)nc->valuedouble;
  if (!f->multinomial && f->n_classes != 2)
    return bad(L, DLP_ERR_CORRUPT, i, "a binomial model has 2 classes");
  int64_t k = f->multinomial ? f->n_classes : 1;
  int64_t cd[2] = {k, -1}, id[1] = {k};
  rc = load_array(L, i, arrays, "coefficients", 2, cd, &f->coef);
  if (rc == DLP_OK)
    rc = load_array(L, i, arrays, "intercepts", 1, id, &f->intercept);
  if (rc == DLP_OK && cd[1] <= 0)
    rc = bad(L, DLP_ERR_CORRUPT, i, "coefficients have no columns");
  f->k = (size_t)k;
  f->dim = (size_t)cd[1];
  f->threshold = ml_stage_param_double(s, "threshold");
  return rc;
}

static int load_stage(loader *L, long i, const cJSON *st, dlp_stage **out) {
  *out = NULL;
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(st, "class");
  if (!cJSON_IsString(cls)) return bad(L, DLP_ERR_CORRUPT, i, "no \"class\"");
  const ml_class *c = ml_class_find(cls->valuestring);
  if (!c)
    return bad(L, DLP_ERR_UNSUPPORTED, i,
               "unknown stage class '%s' (written by another dlp?)",
               cls->valuestring);
  if (c->estimator)
    return bad(L, DLP_ERR_CORRUPT, i,
               "%s is an estimator; a fitted pipeline holds transformers",
               c->name);
  int rc = ml_stage_make(L->ctx, c, out);
  if (rc != DLP_OK) return rc;
  rc = load_params(L, i, cJSON_GetObjectItemCaseSensitive(st, "params"), *out);
  if (rc == DLP_OK && c->kind == ML_INDEXER_MODEL)
    rc = load_labels(L, i, st, *out);
  if (rc == DLP_OK && c->kind == ML_LR_MODEL) rc = load_lr(L, i, st, *out);
  if (rc != DLP_OK) {
    dlp_stage_free(*out);
    *out = NULL;
  }
  return rc;
}

static int check_header(loader *L, const cJSON *root) {
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
  if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, PIPE_FORMAT) != 0)
    return bad(L, DLP_ERR_FORMAT, -1,
               "not a dlp pipeline (format is not \"%s\")", PIPE_FORMAT);
  if (!cJSON_IsNumber(ver) || ver->valuedouble < 1 ||
      ver->valuedouble != floor(ver->valuedouble))
    return bad(L, DLP_ERR_CORRUPT, -1, "bad format version");
  if (ver->valuedouble > PIPE_VERSION)
    return dlp_fail(L->ctx, DLP_ERR_UNSUPPORTED,
                    "pipeline %s was written by a newer dlp (format version "
                    "%.0f; this dlp reads %d): upgrade dlp",
                    L->dir, ver->valuedouble, PIPE_VERSION);
  if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "stages")))
    return bad(L, DLP_ERR_CORRUPT, -1, "no \"stages\" array");
  return DLP_OK;
}

static int load_root(loader *L, const cJSON *root, dlp_pipeline_model *pm) {
  int rc = check_header(L, root);
  const cJSON *stages = cJSON_GetObjectItemCaseSensitive(root, "stages");
  long i = 0;
  for (const cJSON *st = rc == DLP_OK ? stages->child : NULL;
       rc == DLP_OK && st; st = st->next, i++) {
    dlp_stage *s;
    rc = cJSON_IsObject(st) ? load_stage(L, i, st, &s)
                            : bad(L, DLP_ERR_CORRUPT, i, "not an object");
    if (rc == DLP_OK) rc = ml_model_append(L->ctx, pm, s);
  }
  return rc;
}

int dlp_pipeline_model_load(dlp_ctx *ctx, const char *dir,
                            dlp_pipeline_model **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "load: out is NULL");
  *out = NULL;
  if (!dir || !*dir) return dlp_fail(ctx, DLP_ERR_ARG, "load: no directory");
  loader L = {ctx, dir, ""};
  int rc = join(ctx, L.manifest, sizeof L.manifest, dir, MANIFEST);
  if (rc != DLP_OK) return rc;
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return dlp_fail(ctx, DLP_ERR_NOT_FOUND, "pipeline %s: no such directory",
                    dir);
  uint8_t *txt;
  size_t len;
  rc = dlp_io_slurp(ctx, L.manifest, &txt, &len);
  if (rc != DLP_OK) return rc;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts((const char *)txt, len, &end, 0);
  if (!root) {
    size_t at = end ? (size_t)(end - (const char *)txt) : 0;
    free(txt);
    return bad(&L, DLP_ERR_CORRUPT, -1, "malformed JSON near byte %zu", at);
  }
  free(txt);
  dlp_pipeline_model *pm = calloc(1, sizeof *pm);
  rc = pm ? load_root(&L, root, pm)
          : dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a model");
  cJSON_Delete(root);
  if (rc != DLP_OK) {
    dlp_pipeline_model_free(pm);
    return rc;
  }
  *out = pm;
  return dlp_ok(ctx);
}
