/* io_jsonl.c - JSON Lines: one object per row.
 *
 * Writing is done by hand rather than with cJSON's printer, because cJSON
 * keeps every number as a double: int64 values beyond 2^53 would lose
 * digits, and integral doubles would print without a '.' and read back as
 * int64. Here int64 prints exactly, doubles print with "%.17g" plus ".0"
 * when integral (so they read back as double, bit for bit), floats of a
 * vector with "%.9g" (exact for float32). NaN and infinities, which JSON
 * cannot hold, become null (in a vector: null elements, read back as NaN).
 *
 * Reading parses each line with cJSON. Column types are inferred over all
 * rows, keys in order of first appearance, a missing key = null:
 *   objects -> image, arrays of numbers -> vector (same length in all rows),
 *   any string -> string (numbers in that column keep their text),
 *   else int64 if every number's text has no '.', 'e' or 'E' and fits in
 *   int64 (the text is taken from the line itself, as cJSON keeps only a
 *   double), else double; true/false are int64 1/0; all-null -> string.
 * The base64 of embedded image bytes is coded here too: cJSON has none and
 * it is twenty lines. */
#include "frame.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ----------------------------------------------------------- */

static void json_string(FILE *fp, const char *s) {
  fputc('"', fp);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(fp, "\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", fp);
    else if (*p == '\r')
      fputs("\\r", fp);
    else if (*p == '\t')
      fputs("\\t", fp);
    else if (*p < 0x20)
      fprintf(fp, "\\u%04x", *p);
    else
      fputc(*p, fp);
  }
  fputc('"', fp);
}

static void json_double(FILE *fp, double v) {
  if (!isfinite(v)) {
    fputs("null", fp);
    return;
  }
  char b[40];
  snprintf(b, sizeof b, "%.17g", v);
  fputs(b, fp);
  if (!strpbrk(b, ".eE")) fputs(".0", fp);
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void json_base64(FILE *fp, const uint8_t *d, size_t n) {
  fputc('"', fp);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16;
    if (i + 1 < n) v |= (uint32_t)d[i + 1] << 8;
    if (i + 2 < n) v |= d[i + 2];
    char q[4] = {b64[v >> 18], b64[(v >> 12) & 63],
                 i + 1 < n ? b64[(v >> 6) & 63] : '=',
                 i + 2 < n ? b64[v & 63] : '='};
    fwrite(q, 1, 4, fp);
  }
  fputc('"', fp);
}

static void json_opt_string(FILE *fp, const char *s) {
  if (s)
    json_string(fp, s);
  else
    fputs("null", fp);
}

static void json_image(FILE *fp, const dlp_img_cell *c) {
  fputs("{\"origin\":", fp);
  json_opt_string(fp, c->origin);
  fprintf(fp,
          ",\"height\":%" PRId32 ",\"width\":%" PRId32 ",\"nChannels\":%" PRId32
          ",\"mode\":%" PRId32 ",\"error\":",
          c->height, c->width, c->n_channels, c->mode);
  json_opt_string(fp, c->error);
  if (c->bytes) {
    fputs(",\"bytes\":", fp);
    json_base64(fp, c->bytes, c->n_bytes);
  }
  fputc('}', fp);
}

static void json_cell(FILE *fp, const dlp_column *c, size_t r) {
  if (!c->valid[r]) {
    fputs("null", fp);
    return;
  }
  switch (c->type) {
  case DLP_TYPE_STRING:
    json_string(fp, c->u.s[r]);
    break;
  case DLP_TYPE_INT64:
    fprintf(fp, "%" PRId64, c->u.i[r]);
    break;
  case DLP_TYPE_DOUBLE:
    json_double(fp, c->u.d[r]);
    break;
  case DLP_TYPE_VECTOR:
    fputc('[', fp);
    for (size_t k = 0; k < c->dim; k++) {
      float v = c->u.v[r * c->dim + k];
      if (k) fputc(',', fp);
      if (isfinite(v))
        fprintf(fp, "%.9g", (double)v);
      else
        fputs("null", fp);
    }
    fputc(']', fp);
    break;
  case DLP_TYPE_IMAGE:
    json_image(fp, &c->u.img[r]);
    break;
  }
}

int dlp_jsonl_write(dlp_ctx *ctx, const dlp_frame *f, const char *path,
                    const dlp_io_opts *o) {
  dlp_io_tmp t;
  int rc = dlp_io_tmp_open(ctx, path, &t);
  if (rc != DLP_OK) return rc;
  for (size_t r = 0; r < f->nrows; r++) {
    fputc('{', t.fp);
    for (size_t i = 0; i < f->ncols; i++) {
      if (i) fputc(',', t.fp);
      json_string(t.fp, f->cols[i].name);
      fputc(':', t.fp);
      json_cell(t.fp, &f->cols[i], r);
    }
    fputs("}\n", t.fp);
  }
  return dlp_io_tmp_close(ctx, &t, path, DLP_OK);
}

/* ---- reading ----------------------------------------------------------- */

/* What pass 1 saw in a column. */
typedef struct jl_col {
  char *name;
  size_t n_int, n_float, n_str, n_arr, n_obj;
  size_t dim;
  dlp_type type;
} jl_col;

/* Byte span of one top-level member's value in the line text. */
typedef struct jl_span {
  size_t at, len;
} jl_span;

typedef struct jl_reader {
  dlp_ctx *ctx;
  const char *path;
  jl_col *cols;
  size_t ncols, capcols;
  jl_span *spans;
  size_t nspans, capspans;
  size_t lineno;
} jl_reader;

static int jl_fail(jl_reader *j, int code, const char *what, const char *col) {
  if (col)
    return dlp_fail(j->ctx, code, "%s:%zu: column '%s': %s", j->path, j->lineno,
                    col, what);
  return dlp_fail(j->ctx, code, "%s:%zu: %s", j->path, j->lineno, what);
}

static int jl_add_span(jl_reader *j, size_t at, size_t end, const char *s) {
  while (at < end && strchr(" \t\r\n", s[at]))
    at++;
  while (end > at && strchr(" \t\r\n", s[end - 1]))
    end--;
  if (j->nspans == j->capspans) {
    size_t cap = j->capspans ? 2 * j->capspans : 16;
    jl_span *v = dlp_realloc_array(j->spans, cap, sizeof *v);
    if (!v) return DLP_ERR_NOMEM;
    j->spans = v;
    j->capspans = cap;
  }
  j->spans[j->nspans++] = (jl_span){at, end - at};
  return DLP_OK;
}

/* Records where each top-level member's value lies in the text, so numbers
 * can be read from their digits (cJSON keeps only a double). Assumes the
 * line already parsed as an object. */
static int jl_scan_spans(jl_reader *j, const char *s, size_t n) {
  j->nspans = 0;
  int depth = 0, in_str = 0, in_val = 0;
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '{' || c == '[') {
      depth++;
    } else if (c == '}' || c == ']') {
      if (depth == 1 && in_val && jl_add_span(j, start, i, s)) return 1;
      in_val = depth == 1 ? 0 : in_val;
      depth--;
    } else if (depth == 1 && c == ':') {
      in_val = 1;
      start = i + 1;
    } else if (depth == 1 && c == ',' && in_val) {
      if (jl_add_span(j, start, i, s)) return 1;
      in_val = 0;
    }
  }
  return 0;
}

/* Whether a number's text is an integer that fits in int64. */
static int jl_int_text(const char *s, size_t len, int64_t *v) {
  char b[32];
  if (len == 0 || len >= sizeof b || memchr(s, '.', len) ||
      memchr(s, 'e', len) || memchr(s, 'E', len))
    return 0;
  memcpy(b, s, len);
  b[len] = '\0';
  char *end;
  errno = 0;
  long long x = strtoll(b, &end, 10);
  if (errno || *end) return 0;
  *v = x;
  return 1;
}

/* The k-th member's number text, or NULL when spans are not in step. */
static const char *jl_num_text(jl_reader *j, const char *line, size_t k,
                               size_t nmembers, size_t *len) {
  if (j->nspans != nmembers || k >= j->nspans) return NULL;
  *len = j->spans[k].len;
  return line + j->spans[k].at;
}

/* Parses one line into an object; blank lines give *obj = NULL. */
static int jl_parse(jl_reader *j, const char *line, size_t len, cJSON **obj) {
  *obj = NULL;
  size_t i = 0;
  while (i < len && strchr(" \t\r", line[i]))
    i++;
  if (i == len) return DLP_OK;
  const char *end = NULL;
  cJSON *o = cJSON_ParseWithLengthOpts(line, len, &end, 0);
  if (!o) {
    char msg[64];
    snprintf(msg, sizeof msg, "invalid JSON at column %zu",
             end && end >= line ? (size_t)(end - line) + 1 : (size_t)1);
    return jl_fail(j, DLP_ERR_CORRUPT, msg, NULL);
  }
  while (end && end < line + len && strchr(" \t\r", *end))
    end++;
  if (!cJSON_IsObject(o) || (end && end != line + len)) {
    cJSON_Delete(o);
    return jl_fail(j, DLP_ERR_CORRUPT,
                   end && end != line + len ? "text after the JSON object"
                                            : "not a JSON object",
                   NULL);
  }
  if (jl_scan_spans(j, line, len)) {
    cJSON_Delete(o);
    return dlp_fail(j->ctx, DLP_ERR_NOMEM, "no memory");
  }
  *obj = o;
  return DLP_OK;
}

static jl_col *jl_col_for(jl_reader *j, const char *name, size_t *idx) {
  for (size_t i = 0; i < j->ncols; i++)
    if (strcmp(j->cols[i].name, name) == 0) {
      if (idx) *idx = i;
      return &j->cols[i];
    }
  if (j->ncols == j->capcols) {
    size_t cap = j->capcols ? 2 * j->capcols : 8;
    jl_col *v = dlp_realloc_array(j->cols, cap, sizeof *v);
    if (!v) return NULL;
    j->cols = v;
    j->capcols = cap;
  }
  jl_col c = {.name = dlp_strdup(name)};
  if (!c.name) return NULL;
  if (idx) *idx = j->ncols;
  j->cols[j->ncols] = c;
  return &j->cols[j->ncols++];
}

/* Pass 1: counts the kinds of value one member holds. */
static int jl_observe(jl_reader *j, const char *line, const cJSON *it, size_t k,
                      size_t nmem) {
  jl_col *c = jl_col_for(j, it->string ? it->string : "", NULL);
  if (!c) return dlp_fail(j->ctx, DLP_ERR_NOMEM, "no memory for a column");
  size_t tl;
  int64_t iv;
  const char *txt = jl_num_text(j, line, k, nmem, &tl);
  if (cJSON_IsBool(it)) {
    c->n_int++;
  } else if (cJSON_IsNumber(it)) {
    int is_int = txt ? jl_int_text(txt, tl, &iv)
                     : it->valuedouble == floor(it->valuedouble);
    is_int ? c->n_int++ : c->n_float++;
  } else if (cJSON_IsString(it)) {
    c->n_str++;
  } else if (cJSON_IsArray(it)) {
    size_t n = (size_t)cJSON_GetArraySize(it);
    const cJSON *e;
    cJSON_ArrayForEach(
        e, it) if (!cJSON_IsNumber(e) &&
                   !cJSON_IsNull(e)) return jl_fail(j, DLP_ERR_SCHEMA,
                                                    "array holds a non-number",
                                                    c->name);
    if (n == 0 || (c->dim && c->dim != n))
      return jl_fail(j, DLP_ERR_SCHEMA,
                     n ? "vectors of different lengths" : "empty array",
                     c->name);
    c->dim = n;
    c->n_arr++;
  } else if (cJSON_IsObject(it)) {
    c->n_obj++;
  }
  return DLP_OK;
}

/* After pass 1: each column's type. */
static int jl_decide(jl_reader *j) {
  for (size_t i = 0; i < j->ncols; i++) {
    jl_col *c = &j->cols[i];
    size_t scalars = c->n_int + c->n_float + c->n_str;
    if ((c->n_obj && (scalars || c->n_arr)) || (c->n_arr && scalars))
      return dlp_fail(j->ctx, DLP_ERR_SCHEMA,
                      "%s: column '%s' mixes objects, arrays and scalars",
                      j->path, c->name);
    c->type = c->n_obj     ? DLP_TYPE_IMAGE
              : c->n_arr   ? DLP_TYPE_VECTOR
              : c->n_str   ? DLP_TYPE_STRING
              : c->n_float ? DLP_TYPE_DOUBLE
              : c->n_int   ? DLP_TYPE_INT64
                           : DLP_TYPE_STRING;
  }
  return DLP_OK;
}

static int b64_val(char c) {
  const char *p = c ? strchr(b64, c) : NULL;
  return p ? (int)(p - b64) : -1;
}

/* Strict base64 (padding required); 0 on bad input. */
static int b64_decode(const char *s, uint8_t **out, size_t *n) {
  size_t len = strlen(s);
  *out = NULL;
  *n = 0;
  if (len % 4) return 0;
  uint8_t *d = malloc(len / 4 * 3 + 1);
  if (!d) return 0;
  size_t m = 0;
  for (size_t i = 0; i < len; i += 4) {
    int pad = (s[i + 2] == '=') + (s[i + 3] == '=');
    int a = b64_val(s[i]), b = b64_val(s[i + 1]);
    int c = pad == 2 ? 0 : b64_val(s[i + 2]), e = pad ? 0 : b64_val(s[i + 3]);
    if (a < 0 || b < 0 || c < 0 || e < 0 || (pad && i + 4 != len) ||
        (pad == 1 && s[i + 2] == '=')) {
      free(d);
      return 0;
    }
    uint32_t v =
        (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)e;
    d[m++] = (uint8_t)(v >> 16);
    if (pad < 2) d[m++] = (uint8_t)(v >> 8);
    if (pad < 1) d[m++] = (uint8_t)v;
  }
  *out = d;
  *n = m;
  return 1;
}

/* An int32 member of an image object; absent or null = -1. */
static int jl_img_int(const cJSON *o, const char *key, int32_t *v) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
  *v = -1;
  if (!x || cJSON_IsNull(x)) return 1;
  double d = x->valuedouble;
  if (!cJSON_IsNumber(x) || d != floor(d) || d < INT32_MIN || d > INT32_MAX)
    return 0;
  *v = (int32_t)d;
  return 1;
}

/* A string member or null; 0 when it is something else. */
static int jl_img_str(const cJSON *o, const char *key, const char **s) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
  *s = cJSON_IsString(x) ? x->valuestring : NULL;
  return !x || cJSON_IsNull(x) || cJSON_IsString(x);
}

static int jl_set_image(jl_reader *j, dlp_frame *f, size_t col, size_t row,
                        const cJSON *o) {
  dlp_image_meta m = {0};
  const char *b = NULL;
  uint8_t *bytes = NULL;
  if (!jl_img_str(o, "origin", &m.origin) ||
      !jl_img_str(o, "error", &m.error) || !jl_img_str(o, "bytes", &b) ||
      !jl_img_int(o, "height", &m.height) ||
      !jl_img_int(o, "width", &m.width) ||
      !jl_img_int(o, "nChannels", &m.n_channels) ||
      !jl_img_int(o, "mode", &m.mode))
    return jl_fail(j, DLP_ERR_CORRUPT, "malformed image object",
                   f->cols[col].name);
  if (b && !b64_decode(b, &bytes, &m.n_bytes))
    return jl_fail(j, DLP_ERR_CORRUPT, "bad base64 in image bytes",
                   f->cols[col].name);
  m.bytes = bytes;
  int rc = dlp_frame_set_image_meta(j->ctx, f, col, row, &m);
  free(bytes);
  return rc;
}

static int jl_set_vector(jl_reader *j, dlp_frame *f, size_t col, size_t row,
                         const cJSON *a) {
  dlp_column *c = &f->cols[col];
  float *v = c->u.v + row * c->dim;
  size_t k = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) {
    if (k < c->dim) v[k++] = cJSON_IsNumber(e) ? (float)e->valuedouble : NAN;
  }
  c->valid[row] = 1;
  return DLP_OK;
}

/* Pass 2: stores one member's value in its cell. */
static int jl_set(jl_reader *j, dlp_frame *f, const char *line, const cJSON *it,
                  size_t k, size_t nmem, size_t row) {
  size_t col = 0, tl = 0;
  jl_col_for(j, it->string ? it->string : "", &col); /* exists after pass 1 */
  if (cJSON_IsNull(it)) return dlp_frame_set_null(j->ctx, f, col, row);
  const char *txt = jl_num_text(j, line, k, nmem, &tl);
  char buf[40];
  int64_t iv;
  switch (f->cols[col].type) {
  case DLP_TYPE_IMAGE:
    return jl_set_image(j, f, col, row, it);
  case DLP_TYPE_VECTOR:
    return jl_set_vector(j, f, col, row, it);
  case DLP_TYPE_INT64:
    if (cJSON_IsBool(it))
      return dlp_frame_set_int64(j->ctx, f, col, row, cJSON_IsTrue(it));
    iv = (int64_t)it->valuedouble;
    if (txt) jl_int_text(txt, tl, &iv);
    return dlp_frame_set_int64(j->ctx, f, col, row, iv);
  case DLP_TYPE_DOUBLE:
    return dlp_frame_set_double(j->ctx, f, col, row,
                                cJSON_IsBool(it) ? cJSON_IsTrue(it)
                                                 : it->valuedouble);
  case DLP_TYPE_STRING:
    if (cJSON_IsString(it))
      return dlp_frame_set_string(j->ctx, f, col, row, it->valuestring);
    if (cJSON_IsBool(it))
      return dlp_frame_set_string(j->ctx, f, col, row,
                                  cJSON_IsTrue(it) ? "true" : "false");
    if (txt && tl < sizeof buf) {
      memcpy(buf, txt, tl);
      buf[tl] = '\0';
    } else {
      snprintf(buf, sizeof buf, "%.17g", it->valuedouble);
    }
    return dlp_frame_set_string(j->ctx, f, col, row, buf);
  }
  return DLP_OK;
}

/* Runs pass 1 (f == NULL) or pass 2 over every line of the file. */
static int jl_pass(jl_reader *j, const char *buf, size_t len, dlp_frame *f) {
  size_t pos = 0;
  j->lineno = 0;
  while (pos < len) {
    const char *line = buf + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t ll = nl ? (size_t)(nl - line) : len - pos;
    pos += ll + (nl != NULL);
    j->lineno++;
    cJSON *o;
    int rc = jl_parse(j, line, ll, &o);
    if (rc != DLP_OK) return rc;
    if (!o) continue;
    size_t nmem = (size_t)cJSON_GetArraySize(o), k = 0, row = 0;
    if (f) rc = dlp_frame_add_row(j->ctx, f, &row);
    for (const cJSON *it = o->child; rc == DLP_OK && it; it = it->next, k++)
      rc = f ? jl_set(j, f, line, it, k, nmem, row)
             : jl_observe(j, line, it, k, nmem);
    cJSON_Delete(o);
    if (rc != DLP_OK) return rc;
  }
  return DLP_OK;
}

int dlp_jsonl_read(dlp_ctx *ctx, const char *path, const dlp_io_opts *o,
                   dlp_frame **out) {
  uint8_t *buf;
  size_t len;
  int rc = dlp_io_slurp(ctx, path, &buf, &len);
  if (rc != DLP_OK) return rc;
  jl_reader j = {.ctx = ctx, .path = path};
  rc = jl_pass(&j, (const char *)buf, len, NULL);
  if (rc == DLP_OK) rc = jl_decide(&j);
  if (rc == DLP_OK) rc = dlp_frame_new(ctx, out);
  for (size_t i = 0; rc == DLP_OK && i < j.ncols; i++)
    if ((rc = dlp_frame_add_column(ctx, *out, j.cols[i].name, j.cols[i].type,
                                   j.cols[i].dim)) != DLP_OK)
      dlp_fail_prefix(ctx, path);
  if (rc == DLP_OK) rc = jl_pass(&j, (const char *)buf, len, *out);
  for (size_t i = 0; i < j.ncols; i++)
    free(j.cols[i].name);
  free(j.cols);
  free(j.spans);
  free(buf);
  return rc;
}
