/* sql_vec.c - vector helpers: float32 little-endian BLOBs (as dlp writes
 * feature columns) with dlp_vec_dim, dlp_vec_json, dlp_vec (JSON array to
 * BLOB), dlp_cosine and dlp_l2. Sums are taken in double. */
#define DLPSQL_INTERNAL
#include "sql.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void vec_error(sqlite3_context *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void vec_error(sqlite3_context *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  sqlite3_result_error(c, msg ? msg : "dlp: vector error", -1);
  sqlite3_free(msg);
}

/* Reads argument v as a vector: 1 and *p, *dim set; 0 after setting an SQL
 * error (fn names the function) or a NULL result (NULL argument: *isnull). */
static int get_vec(sqlite3_context *c, const char *fn, sqlite3_value *v,
                   const float **p, size_t *dim, int *isnull) {
  *isnull = sqlite3_value_type(v) == SQLITE_NULL;
  if (*isnull) return 0;
  if (sqlite3_value_type(v) != SQLITE_BLOB) {
    vec_error(c, "%s: a vector is a BLOB of float32 values, not %s", fn,
              sqlite3_value_type(v) == SQLITE_TEXT
                  ? "TEXT (use dlp_vec('[...]'))"
                  : "a number");
    return 0;
  }
  int n = sqlite3_value_bytes(v);
  if (n % 4 != 0) {
    vec_error(c,
              "%s: a BLOB of %d bytes is not a float32 vector (not a "
              "multiple of 4)",
              fn, n);
    return 0;
  }
  *p = sqlite3_value_blob(v);
  *dim = (size_t)n / 4;
  return 1;
}

/* The loads are memcpy'd: SQLite gives no alignment promise for BLOBs. */
static double at(const float *p, size_t i) {
  float f;
  memcpy(&f, (const unsigned char *)p + 4 * i, 4);
  return f;
}

static void vec_dim(sqlite3_context *c, int argc, sqlite3_value **argv) {
  const float *p;
  size_t dim;
  int isnull;
  if (get_vec(c, "dlp_vec_dim", argv[0], &p, &dim, &isnull))
    sqlite3_result_int64(c, (sqlite3_int64)dim);
  else if (isnull)
    sqlite3_result_null(c);
}

static void vec_json(sqlite3_context *c, int argc, sqlite3_value **argv) {
  const float *p;
  size_t dim;
  int isnull;
  if (!get_vec(c, "dlp_vec_json", argv[0], &p, &dim, &isnull)) {
    if (isnull) sqlite3_result_null(c);
    return;
  }
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendchar(s, 1, '[');
  for (size_t i = 0; i < dim; i++) {
    char num[32];
    double x = at(p, i);
    if (isfinite(x))
      snprintf(num, sizeof num, "%s%.9g", i ? "," : "", x);
    else
      snprintf(num, sizeof num, "%snull", i ? "," : "");
    sqlite3_str_appendall(s, num);
  }
  sqlite3_str_appendchar(s, 1, ']');
  int n = sqlite3_str_length(s);
  char *out = sqlite3_str_finish(s);
  if (!out)
    sqlite3_result_error_nomem(c);
  else
    sqlite3_result_text(c, out, n, sqlite3_free);
}

/* dlp_vec('[1, 2.5, ...]'): a JSON array of numbers as a vector BLOB. */
static void vec_from_json(sqlite3_context *c, int argc, sqlite3_value **argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
    sqlite3_result_null(c);
    return;
  }
  if (sqlite3_value_type(argv[0]) == SQLITE_BLOB) { /* already a vector */
    const float *p;
    size_t dim;
    int isnull;
    if (get_vec(c, "dlp_vec", argv[0], &p, &dim, &isnull))
      sqlite3_result_value(c, argv[0]);
    return;
  }
  cJSON *j = cJSON_Parse((const char *)sqlite3_value_text(argv[0]));
  int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
  float *v = n > 0 ? sqlite3_malloc64((sqlite3_uint64)n * 4) : NULL;
  int i = 0;
  for (const cJSON *it = j ? j->child : NULL; v && it; it = it->next, i++) {
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) break;
    v[i] = (float)it->valuedouble;
  }
  cJSON_Delete(j);
  if (n <= 0 || (v && i != n)) {
    sqlite3_free(v);
    vec_error(c, "dlp_vec: expected a non-empty JSON array of numbers");
  } else if (!v) {
    sqlite3_result_error_nomem(c);
  } else {
    sqlite3_result_blob(c, v, n * 4, sqlite3_free);
  }
}

/* Both vector arguments; 0 when a result (NULL or error) is already set. */
static int two_vecs(sqlite3_context *c, const char *fn, sqlite3_value **argv,
                    const float **a, const float **b, size_t *dim) {
  size_t da, db;
  int na, nb;
  int oka = get_vec(c, fn, argv[0], a, &da, &na);
  if (!oka && !na) return 0;
  int okb = get_vec(c, fn, argv[1], b, &db, &nb);
  if (!okb && !nb) return 0;
  if (na || nb) {
    sqlite3_result_null(c);
    return 0;
  }
  if (da != db) {
    vec_error(c, "%s: vectors of different dimensions (%lld and %lld)", fn,
              (long long)da, (long long)db);
    return 0;
  }
  *dim = da;
  return 1;
}

static void cosine(sqlite3_context *c, int argc, sqlite3_value **argv) {
  const float *a, *b;
  size_t n;
  if (!two_vecs(c, "dlp_cosine", argv, &a, &b, &n)) return;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; i++) {
    double x = at(a, i), y = at(b, i);
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  if (aa == 0 || bb == 0)
    sqlite3_result_null(c); /* undefined for a zero vector */
  else
    sqlite3_result_double(c, ab / (sqrt(aa) * sqrt(bb)));
}

static void l2(sqlite3_context *c, int argc, sqlite3_value **argv) {
  const float *a, *b;
  size_t n;
  if (!two_vecs(c, "dlp_l2", argv, &a, &b, &n)) return;
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    double d = at(a, i) - at(b, i);
    s += d * d;
  }
  sqlite3_result_double(c, sqrt(s));
}

int dlpsql_register_vec(sqlite3 *db) {
  static const struct {
    const char *name;
    int nargs;
    void (*fn)(sqlite3_context *, int, sqlite3_value **);
  } t[] = {{"dlp_vec_dim", 1, vec_dim},
           {"dlp_vec_json", 1, vec_json},
           {"dlp_vec", 1, vec_from_json},
           {"dlp_cosine", 2, cosine},
           {"dlp_l2", 2, l2}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int rc = sqlite3_create_function_v2(db, t[i].name, t[i].nargs,
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC |
                                            SQLITE_INNOCUOUS,
                                        NULL, t[i].fn, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}
