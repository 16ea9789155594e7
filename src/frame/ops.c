/* ops.c - frame operations: head, take, shuffle, random_split, sample,
 * union, drop_invalid, count_errors. Each returns a new frame holding deep
 * copies of the chosen rows, so frames stay independent values. */
#include "frame.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_ARGS(ctx, f, out)                                                \
  do {                                                                         \
    if (!(out))                                                                \
      return dlp_fail(ctx, DLP_ERR_ARG, "%s: out is NULL", __func__);          \
    *(out) = NULL;                                                             \
    if (!(f))                                                                  \
      return dlp_fail(ctx, DLP_ERR_ARG, "%s: frame is NULL", __func__);        \
  } while (0)

size_t dlp_frame_count_errors(const dlp_frame *f, size_t col) {
  if (!f || col >= f->ncols || f->cols[col].type != DLP_TYPE_IMAGE) return 0;
  size_t n = 0;
  for (size_t r = 0; r < f->nrows; r++)
    n += f->cols[col].valid[r] && f->cols[col].u.img[r].error != NULL;
  return n;
}

/* 0, 1, ..., n-1, or NULL with the context set. */
static size_t *iota(dlp_ctx *ctx, size_t n) {
  size_t *idx = dlp_malloc_array(n, sizeof *idx);
  if (!idx) {
    dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu row indices", n);
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  return idx;
}

int dlp_frame_head(dlp_ctx *ctx, const dlp_frame *f, size_t n,
                   dlp_frame **out) {
  CHECK_ARGS(ctx, f, out);
  if (n > f->nrows) n = f->nrows;
  size_t *idx = iota(ctx, n);
  if (!idx) return dlp_errcode(ctx);
  int rc = dlp_frame_take_rows(ctx, f, idx, n, out);
  free(idx);
  return rc;
}

int dlp_frame_take(dlp_ctx *ctx, const dlp_frame *f, const size_t *idx,
                   size_t n, dlp_frame **out) {
  CHECK_ARGS(ctx, f, out);
  if (!idx && n)
    return dlp_fail(ctx, DLP_ERR_ARG, "dlp_frame_take: idx is NULL");
  return dlp_frame_take_rows(ctx, f, idx, n, out);
}

int dlp_frame_shuffle(dlp_ctx *ctx, const dlp_frame *f, uint64_t seed,
                      dlp_frame **out) {
  CHECK_ARGS(ctx, f, out);
  size_t *idx = iota(ctx, f->nrows);
  if (!idx) return dlp_errcode(ctx);
  dlp_shuffle(idx, f->nrows, sizeof *idx, seed);
  int rc = dlp_frame_take_rows(ctx, f, idx, f->nrows, out);
  free(idx);
  return rc;
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

/* Part sizes for n rows by the largest-remainder method: floor(w_i/sum*n),
 * then the leftover rows go to the largest fractional parts (ties: lower i). */
static int split_sizes(dlp_ctx *ctx, const double *w, size_t k, size_t n,
                       size_t *size) {
  double sum = 0;
  for (size_t i = 0; i < k; i++) {
    if (!(w[i] >= 0) || !isfinite(w[i]))
      return dlp_fail(ctx, DLP_ERR_ARG, "random_split: weight %zu is %g", i,
                      w[i]);
    sum += w[i];
  }
  if (!(sum > 0) || !isfinite(sum))
    return dlp_fail(ctx, DLP_ERR_ARG, "random_split: weights sum to %g", sum);
  size_t given = 0;
  double *frac = dlp_malloc_array(k, sizeof *frac);
  if (!frac) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for weights");
  for (size_t i = 0; i < k; i++) {
    double exact = w[i] / sum * (double)n;
    size[i] = (size_t)floor(exact);
    if (size[i] > n - given) size[i] = n - given; /* rounding guard */
    frac[i] = exact - floor(exact);
    given += size[i];
  }
  while (given < n) {
    size_t best = 0;
    for (size_t i = 1; i < k; i++)
      if (frac[i] > frac[best]) best = i;
    size[best]++;
    frac[best] = -1;
    given++;
  }
  free(frac);
  return DLP_OK;
}

int dlp_frame_random_split(dlp_ctx *ctx, const dlp_frame *f,
                           const double *weights, size_t k, uint64_t seed,
                           dlp_frame **out) {
  if (!out || !f || !weights || k == 0)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "random_split needs a frame, weights and k >= 1");
  for (size_t i = 0; i < k; i++)
    out[i] = NULL;
  size_t *size = dlp_calloc_array(k, sizeof *size);
  size_t *idx = iota(ctx, f->nrows);
  int rc = size && idx ? split_sizes(ctx, weights, k, f->nrows, size)
                       : dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a split");
  if (rc == DLP_OK) dlp_shuffle(idx, f->nrows, sizeof *idx, seed);
  size_t at = 0;
  for (size_t i = 0; rc == DLP_OK && i < k; i++) {
    qsort(idx + at, size[i], sizeof *idx, cmp_size);
    rc = dlp_frame_take_rows(ctx, f, idx + at, size[i], &out[i]);
    at += size[i];
  }
  free(size);
  free(idx);
  if (rc != DLP_OK)
    for (size_t i = 0; i < k; i++) {
      dlp_frame_free(out[i]);
      out[i] = NULL;
    }
  return rc;
}

/* Rows whose keep(row) is true. */
static int filter_rows(dlp_ctx *ctx, const dlp_frame *f,
                       int (*keep)(const dlp_frame *, size_t, const void *),
                       const void *arg, dlp_frame **out) {
  size_t *idx = dlp_malloc_array(f->nrows, sizeof *idx);
  if (!idx) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for row indices");
  size_t n = 0;
  for (size_t r = 0; r < f->nrows; r++)
    if (keep(f, r, arg)) idx[n++] = r;
  int rc = dlp_frame_take_rows(ctx, f, idx, n, out);
  free(idx);
  return rc;
}

typedef struct sample_arg {
  double ratio;
  uint64_t seed;
} sample_arg;

static int keep_sampled(const dlp_frame *f, size_t row, const void *p) {
  const sample_arg *a = p;
  uint8_t le[8];
  uint64_t v = row;
  for (int i = 0; i < 8; i++)
    le[i] = (uint8_t)(v >> (8 * i));
  return dlp_hash_uniform(le, sizeof le, a->seed) < a->ratio;
}

int dlp_frame_sample(dlp_ctx *ctx, const dlp_frame *f, double ratio,
                     uint64_t seed, dlp_frame **out) {
  CHECK_ARGS(ctx, f, out);
  if (!(ratio >= 0 && ratio <= 1))
    return dlp_fail(ctx, DLP_ERR_ARG, "sample ratio %g is outside [0, 1]",
                    ratio);
  sample_arg a = {ratio, seed};
  return filter_rows(ctx, f, keep_sampled, &a, out);
}

static int keep_valid(const dlp_frame *f, size_t row, const void *p) {
  const dlp_column *c = &f->cols[*(const size_t *)p];
  return !(c->valid[row] && c->u.img[row].error);
}

int dlp_frame_drop_invalid(dlp_ctx *ctx, const dlp_frame *f, size_t col,
                           dlp_frame **out) {
  CHECK_ARGS(ctx, f, out);
  if (col >= f->ncols)
    return dlp_fail(ctx, DLP_ERR_ARG, "column %zu is out of range", col);
  if (f->cols[col].type != DLP_TYPE_IMAGE)
    return dlp_fail(ctx, DLP_ERR_SCHEMA, "column '%s' is %s, not image",
                    f->cols[col].name, dlp_type_name(f->cols[col].type));
  return filter_rows(ctx, f, keep_valid, &col, out);
}

/* map[i] = the column of b with a's column i's name and type. */
static int union_map(dlp_ctx *ctx, const dlp_frame *a, const dlp_frame *b,
                     size_t *map) {
  if (a->ncols != b->ncols)
    return dlp_fail(ctx, DLP_ERR_SCHEMA,
                    "union: frames have %zu and %zu columns", a->ncols,
                    b->ncols);
  for (size_t i = 0; i < a->ncols; i++) {
    const dlp_column *c = &a->cols[i];
    long j = dlp_frame_col_index(b, c->name);
    if (j < 0)
      return dlp_fail(ctx, DLP_ERR_SCHEMA,
                      "union: column '%s' is missing from the second frame",
                      c->name);
    const dlp_column *d = &b->cols[j];
    if (d->type != c->type || d->dim != c->dim)
      return dlp_fail(ctx, DLP_ERR_SCHEMA,
                      "union: column '%s' is %s[%zu] and %s[%zu]", c->name,
                      dlp_type_name(c->type), c->dim, dlp_type_name(d->type),
                      d->dim);
    map[i] = (size_t)j;
  }
  return DLP_OK;
}

int dlp_frame_union(dlp_ctx *ctx, const dlp_frame *a, const dlp_frame *b,
                    dlp_frame **out) {
  CHECK_ARGS(ctx, a, out);
  if (!b) return dlp_fail(ctx, DLP_ERR_ARG, "union: frame is NULL");
  size_t *map = dlp_calloc_array(a->ncols, sizeof *map);
  if (!map) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for union");
  int rc = union_map(ctx, a, b, map);
  if (rc == DLP_OK) rc = dlp_frame_head(ctx, a, a->nrows, out);
  for (size_t r = 0; rc == DLP_OK && r < b->nrows; r++)
    rc = dlp_frame_append_row_from(ctx, *out, b, r, map);
  free(map);
  if (rc != DLP_OK) {
    dlp_frame_free(*out);
    *out = NULL;
    return rc;
  }
  return dlp_ok(ctx);
}
