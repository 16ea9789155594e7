/* io_csv.c - CSV (RFC 4180), written and parsed by hand: the format is small
 * and no C CSV library packaged in Debian is worth the dependency.
 *
 * Writing: a header row; string values always quoted (so "" is an empty
 * string while an empty unquoted field is null, and "007" stays a string);
 * doubles "%.17g" with ".0" when integral (they read back as double);
 * vectors as "[a,b,...]" ("%.9g"); image columns as six fields <name>.origin,
 * .height, .width, .nChannels, .mode, .error (embedded bytes not written).
 * Lines end with "\r\n" as the RFC says.
 *
 * Reading: fields <name>.origin (with any of the five others) regroup into
 * an image column. Other columns are inferred over their non-empty values:
 * vector if every value is "[numbers]" of one length, else int64 if every
 * value is an unquoted integer, else double if every value is an unquoted
 * number, else string. An empty unquoted field is null. */
#include "frame.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const csv_img_fields[6] = {"origin",    "height", "width",
                                              "nChannels", "mode",   "error"};

/* ---- writing ----------------------------------------------------------- */

static void csv_quoted(FILE *fp, const char *s) {
  fputc('"', fp);
  for (; *s; s++) {
    if (*s == '"') fputc('"', fp);
    fputc(*s, fp);
  }
  fputc('"', fp);
}

/* A header name (plus ".suffix" for image fields): quoted only when it
 * must be. */
static void csv_name(FILE *fp, const char *name, const char *suffix) {
  int q = strpbrk(name, ",\"\r\n") != NULL;
  if (q) fputc('"', fp);
  for (const char *s = name; *s; s++) {
    if (*s == '"') fputc('"', fp);
    fputc(*s, fp);
  }
  if (suffix) fprintf(fp, ".%s", suffix);
  if (q) fputc('"', fp);
}

static void csv_double(FILE *fp, double v) {
  char b[40];
  snprintf(b, sizeof b, "%.17g", v);
  fputs(b, fp);
  if (isfinite(v) && !strpbrk(b, ".eE")) fputs(".0", fp);
}

static void csv_image(FILE *fp, const dlp_img_cell *c) {
  if (c->origin) csv_quoted(fp, c->origin);
  fprintf(fp, ",%" PRId32 ",%" PRId32 ",%" PRId32 ",%" PRId32 ",", c->height,
          c->width, c->n_channels, c->mode);
  if (c->error) csv_quoted(fp, c->error);
}

static void csv_cell(FILE *fp, const dlp_column *c, size_t r) {
  if (!c->valid[r]) {
    if (c->type == DLP_TYPE_IMAGE) fputs(",,,,,", fp);
    return;
  }
  switch (c->type) {
  case DLP_TYPE_STRING:
    csv_quoted(fp, c->u.s[r]);
    break;
  case DLP_TYPE_INT64:
    fprintf(fp, "%" PRId64, c->u.i[r]);
    break;
  case DLP_TYPE_DOUBLE:
    csv_double(fp, c->u.d[r]);
    break;
  case DLP_TYPE_VECTOR:
    fputs("\"[", fp);
    for (size_t k = 0; k < c->dim; k++)
      fprintf(fp, k ? ",%.9g" : "%.9g", (double)c->u.v[r * c->dim + k]);
    fputs("]\"", fp);
    break;
  case DLP_TYPE_IMAGE:
    csv_image(fp, &c->u.img[r]);
    break;
  }
}

int dlp_csv_write(dlp_ctx *ctx, const dlp_frame *f, const char *path,
                  const dlp_io_opts *o) {
  dlp_io_tmp t;
  int rc = dlp_io_tmp_open(ctx, path, &t);
  if (rc != DLP_OK) return rc;
  for (size_t i = 0; i < f->ncols; i++) {
    const dlp_column *c = &f->cols[i];
    int n = c->type == DLP_TYPE_IMAGE ? 6 : 1;
    for (int k = 0; k < n; k++) {
      if (i || k) fputc(',', t.fp);
      csv_name(t.fp, c->name, n == 6 ? csv_img_fields[k] : NULL);
    }
  }
  fputs("\r\n", t.fp);
  for (size_t r = 0; r < f->nrows; r++) {
    for (size_t i = 0; i < f->ncols; i++) {
      if (i) fputc(',', t.fp);
      csv_cell(t.fp, &f->cols[i], r);
    }
    fputs("\r\n", t.fp);
  }
  return dlp_io_tmp_close(ctx, &t, path, DLP_OK);
}

/* ---- reading ----------------------------------------------------------- */

/* One field of the current record: text in the record's store. */
typedef struct csv_field {
  size_t at, len;
  int quoted;
} csv_field;

typedef struct csv_rec {
  csv_field *f;
  size_t n, cap;
  char *store;
  size_t used, scap;
} csv_rec;

typedef struct csv_cur {
  dlp_ctx *ctx;
  const char *path;
  const char *p, *end;
  size_t line;     /* line where the next record starts */
  size_t rec_line; /* line where the current record started */
} csv_cur;

static int csv_put(csv_rec *r, char ch) {
  if (r->used == r->scap) {
    size_t cap = r->scap ? 2 * r->scap : 256;
    char *s = realloc(r->store, cap);
    if (!s) return 0;
    r->store = s;
    r->scap = cap;
  }
  r->store[r->used++] = ch;
  return 1;
}

static int csv_new_field(csv_rec *r) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 16;
    csv_field *f = dlp_realloc_array(r->f, cap, sizeof *f);
    if (!f) return 0;
    r->f = f;
    r->cap = cap;
  }
  r->f[r->n++] = (csv_field){r->used, 0, 0};
  return 1;
}

static int csv_bad(csv_cur *c, const char *what) {
  return dlp_fail(c->ctx, DLP_ERR_CORRUPT, "%s:%zu: %s", c->path, c->line,
                  what);
}

/* A quoted field's body, after the opening quote, up to the closing one. */
static int csv_quoted_body(csv_cur *c, csv_rec *r, csv_field *fd) {
  size_t start = c->line;
  for (;;) {
    if (c->p == c->end) {
      c->line = start;
      return csv_bad(c, "unterminated quoted field");
    }
    char ch = *c->p++;
    if (ch == '"') {
      if (c->p < c->end && *c->p == '"')
        c->p++;
      else
        break;
    }
    if (ch == '\n') c->line++;
    if (!csv_put(r, ch)) return DLP_ERR_NOMEM;
  }
  fd->quoted = 1;
  if (c->p < c->end && !strchr(",\r\n", *c->p))
    return csv_bad(c, "unexpected character after a closing quote");
  return DLP_OK;
}

/* Reads one record; *got = 0 at the end of the text. */
static int csv_record(csv_cur *c, csv_rec *r, int *got) {
  r->n = r->used = 0;
  *got = 0;
  if (c->p >= c->end) return DLP_OK;
  c->rec_line = c->line;
  *got = 1;
  for (;;) {
    if (!csv_new_field(r)) return DLP_ERR_NOMEM;
    csv_field *fd = &r->f[r->n - 1];
    if (c->p < c->end && *c->p == '"') {
      c->p++;
      int rc = csv_quoted_body(c, r, fd);
      if (rc != DLP_OK) return rc;
    } else {
      while (c->p < c->end && !strchr(",\r\n", *c->p)) {
        if (*c->p == '"') return csv_bad(c, "a quote inside an unquoted field");
        if (!csv_put(r, *c->p++)) return DLP_ERR_NOMEM;
      }
    }
    fd->len = r->used - fd->at;
    if (!csv_put(r, '\0')) return DLP_ERR_NOMEM;
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      continue;
    }
    if (c->p < c->end && *c->p == '\r') c->p++;
    if (c->p < c->end && *c->p == '\n') c->p++;
    c->line++;
    return DLP_OK;
  }
}

/* One output column: its source fields and, for inference, what its values
 * looked like. */
typedef struct csv_plan {
  const char *name; /* points into the header record's store */
  char *img_name;   /* image columns: the name without ".origin" */
  dlp_type type;
  long src[6]; /* field index; image: origin..error, -1 when absent */
  int any, not_int, not_num, not_vec;
  size_t dim;
} csv_plan;

typedef struct csv_reader {
  csv_cur cur;
  csv_rec head, rec;
  csv_plan *plan;
  size_t nplan;
} csv_reader;

static const char *fld(const csv_rec *r, long i) {
  return r->store + r->f[i].at;
}

static int fld_null(const csv_rec *r, long i) {
  return i < 0 || (!r->f[i].quoted && r->f[i].len == 0);
}

/* Parses "[a, b, ...]" into v (when not NULL); returns the count or 0. */
static size_t csv_vec(const char *s, float *v, size_t cap) {
  while (isspace((unsigned char)*s))
    s++;
  if (*s++ != '[') return 0;
  size_t n = 0;
  for (;;) {
    char *end;
    float x = strtof(s, &end); /* over/underflow: inf, 0 or subnormal */
    if (end == s) return 0;
    if (v && n < cap) v[n] = x;
    n++;
    s = end;
    while (isspace((unsigned char)*s))
      s++;
    if (*s == ']') break;
    if (*s++ != ',') return 0;
  }
  for (s++; isspace((unsigned char)*s);)
    s++;
  return *s ? 0 : n;
}

static int csv_int(const char *s, int64_t *v) {
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (!*s || *end || errno) return 0;
  *v = x;
  return 1;
}

static int csv_num(const char *s, double *v) {
  char *end;
  double x = strtod(s, &end);
  if (!*s || *end) return 0;
  *v = x;
  return 1;
}

/* The header field called base.suffix, or -1. */
static long csv_find(const csv_rec *h, const char *base, size_t bl,
                     const char *suffix) {
  size_t sl = strlen(suffix);
  for (size_t i = 0; i < h->n; i++) {
    const char *s = fld(h, (long)i);
    if (h->f[i].len == bl + 1 + sl && memcmp(s, base, bl) == 0 &&
        s[bl] == '.' && strcmp(s + bl + 1, suffix) == 0)
      return (long)i;
  }
  return -1;
}

/* Builds the column plan from the header: image groups first, so their
 * fields are claimed, then the rest in header order. */
static int csv_make_plan(csv_reader *R) {
  const csv_rec *h = &R->head;
  long *owner = dlp_malloc_array(h->n, sizeof *owner);
  R->plan = dlp_calloc_array(h->n, sizeof *R->plan);
  if (!owner || !R->plan) {
    free(owner);
    return dlp_fail(R->cur.ctx, DLP_ERR_NOMEM, "no memory for the header");
  }
  for (size_t i = 0; i < h->n; i++)
    owner[i] = -1;
  for (size_t i = 0; i < h->n; i++) {
    const char *s = fld(h, (long)i);
    size_t l = h->f[i].len;
    if (owner[i] >= 0 || l <= 7 || strcmp(s + l - 7, ".origin") != 0) continue;
    for (int k = 0; k < 6; k++) {
      long j = csv_find(h, s, l - 7, csv_img_fields[k]);
      if (j >= 0 && owner[j] < 0) owner[j] = (long)i;
    }
  }
  int rc = DLP_OK;
  for (size_t i = 0; i < h->n && rc == DLP_OK; i++) {
    if (owner[i] >= 0 && owner[i] != (long)i) continue;
    csv_plan *p = &R->plan[R->nplan++];
    p->name = fld(h, (long)i);
    p->src[0] = (long)i;
    if (owner[i] != (long)i) continue;
    p->type = DLP_TYPE_IMAGE;
    p->img_name = strndup(p->name, h->f[i].len - 7);
    if (!p->img_name) rc = dlp_fail(R->cur.ctx, DLP_ERR_NOMEM, "no memory");
    for (int k = 0; k < 6; k++) {
      long j = csv_find(h, p->name, h->f[i].len - 7, csv_img_fields[k]);
      p->src[k] = j >= 0 && owner[j] == (long)i ? j : -1;
    }
  }
  free(owner);
  return rc;
}

/* Pass 1 on one record: what each scalar value looks like. */
static void csv_observe(csv_reader *R) {
  const csv_rec *r = &R->rec;
  for (size_t i = 0; i < R->nplan; i++) {
    csv_plan *p = &R->plan[i];
    if (p->type == DLP_TYPE_IMAGE || fld_null(r, p->src[0])) continue;
    const char *s = fld(r, p->src[0]);
    int64_t iv;
    double dv;
    size_t n = csv_vec(s, NULL, 0);
    if (!n || (p->dim && p->dim != n)) p->not_vec = 1;
    p->dim = n;
    if (r->f[p->src[0]].quoted || !csv_int(s, &iv)) p->not_int = 1;
    if (r->f[p->src[0]].quoted || !csv_num(s, &dv)) p->not_num = 1;
    p->any = 1;
  }
}

static void csv_decide(csv_reader *R) {
  for (size_t i = 0; i < R->nplan; i++) {
    csv_plan *p = &R->plan[i];
    if (p->type == DLP_TYPE_IMAGE) continue;
    p->type = !p->any       ? DLP_TYPE_STRING
              : !p->not_vec ? DLP_TYPE_VECTOR
              : !p->not_int ? DLP_TYPE_INT64
              : !p->not_num ? DLP_TYPE_DOUBLE
                            : DLP_TYPE_STRING;
    if (p->type != DLP_TYPE_VECTOR) p->dim = 0;
  }
}

static int csv_cell_bad(csv_reader *R, const char *col, const char *what) {
  return dlp_fail(R->cur.ctx, DLP_ERR_CORRUPT, "%s:%zu: column '%s': %s",
                  R->cur.path, R->cur.rec_line, col, what);
}

static int csv_set_image(csv_reader *R, dlp_frame *f, size_t col, size_t row,
                         const csv_plan *p) {
  const csv_rec *r = &R->rec;
  int all_null = 1;
  for (int k = 0; k < 6; k++)
    all_null &= fld_null(r, p->src[k]);
  if (all_null) return DLP_OK;
  dlp_image_meta m = {0};
  int32_t *num[4] = {&m.height, &m.width, &m.n_channels, &m.mode};
  for (int k = 1; k < 5; k++) {
    int64_t v = -1;
    if (!fld_null(r, p->src[k]) &&
        (!csv_int(fld(r, p->src[k]), &v) || v < INT32_MIN || v > INT32_MAX))
      return csv_cell_bad(R, p->img_name, "image size is not an integer");
    *num[k - 1] = (int32_t)v;
  }
  m.origin = fld_null(r, p->src[0]) ? NULL : fld(r, p->src[0]);
  m.error = fld_null(r, p->src[5]) ? NULL : fld(r, p->src[5]);
  return dlp_frame_set_image_meta(R->cur.ctx, f, col, row, &m);
}

/* Pass 2 on one record: fills one new row. */
static int csv_fill(csv_reader *R, dlp_frame *f) {
  size_t row;
  int rc = dlp_frame_add_row(R->cur.ctx, f, &row);
  for (size_t i = 0; rc == DLP_OK && i < R->nplan; i++) {
    const csv_plan *p = &R->plan[i];
    if (p->type == DLP_TYPE_IMAGE) {
      rc = csv_set_image(R, f, i, row, p);
      continue;
    }
    if (fld_null(&R->rec, p->src[0])) continue;
    const char *s = fld(&R->rec, p->src[0]);
    int64_t iv = 0;
    double dv = 0;
    dlp_column *c = &f->cols[i];
    switch (p->type) {
    case DLP_TYPE_INT64:
      csv_int(s, &iv);
      rc = dlp_frame_set_int64(R->cur.ctx, f, i, row, iv);
      break;
    case DLP_TYPE_DOUBLE:
      csv_num(s, &dv);
      rc = dlp_frame_set_double(R->cur.ctx, f, i, row, dv);
      break;
    case DLP_TYPE_VECTOR:
      csv_vec(s, c->u.v + row * c->dim, c->dim);
      c->valid[row] = 1;
      break;
    default:
      rc = dlp_frame_set_string(R->cur.ctx, f, i, row, s);
    }
  }
  return rc;
}

/* Runs pass 1 (f == NULL) or pass 2 over the records after the header. */
static int csv_pass(csv_reader *R, const uint8_t *buf, size_t len,
                    dlp_frame *f) {
  R->cur.p = (const char *)buf;
  R->cur.end = R->cur.p + len;
  R->cur.line = 1;
  /* The header is kept from the first pass: the plan points into it. */
  int got, rc = csv_record(&R->cur, R->plan ? &R->rec : &R->head, &got);
  if (rc == DLP_OK && !got)
    return dlp_fail(R->cur.ctx, DLP_ERR_CORRUPT, "%s: empty file (no header)",
                    R->cur.path);
  if (rc == DLP_OK && !R->plan) rc = csv_make_plan(R);
  while (rc == DLP_OK) {
    rc = csv_record(&R->cur, &R->rec, &got);
    if (rc != DLP_OK || !got) break;
    if (R->rec.n == 1 && R->head.n > 1 && fld_null(&R->rec, 0))
      continue; /* a blank line */
    if (R->rec.n != R->head.n)
      return dlp_fail(R->cur.ctx, DLP_ERR_CORRUPT,
                      "%s:%zu: %zu fields, but the header has %zu", R->cur.path,
                      R->cur.rec_line, R->rec.n, R->head.n);
    if (f)
      rc = csv_fill(R, f);
    else
      csv_observe(R);
  }
  if (rc == DLP_ERR_NOMEM)
    return dlp_fail(R->cur.ctx, rc, "%s: no memory", R->cur.path);
  return rc;
}

int dlp_csv_read(dlp_ctx *ctx, const char *path, const dlp_io_opts *o,
                 dlp_frame **out) {
  uint8_t *buf;
  size_t len;
  int rc = dlp_io_slurp(ctx, path, &buf, &len);
  if (rc != DLP_OK) return rc;
  csv_reader R = {.cur = {.ctx = ctx, .path = path}};
  rc = csv_pass(&R, buf, len, NULL);
  if (rc == DLP_OK) csv_decide(&R);
  if (rc == DLP_OK) rc = dlp_frame_new(ctx, out);
  for (size_t i = 0; rc == DLP_OK && i < R.nplan; i++) {
    csv_plan *p = &R.plan[i];
    rc = dlp_frame_add_column(ctx, *out, p->img_name ? p->img_name : p->name,
                              p->type, p->dim);
    if (rc != DLP_OK) dlp_fail_prefix(ctx, path);
  }
  if (rc == DLP_OK) rc = csv_pass(&R, buf, len, *out);
  for (size_t i = 0; i < R.nplan; i++)
    free(R.plan[i].img_name);
  free(R.plan);
  free(R.head.f);
  free(R.head.store);
  free(R.rec.f);
  free(R.rec.store);
  free(buf);
  return rc;
}
