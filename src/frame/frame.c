/* frame.c - the frame: typed columns with per-cell null flags, setters,
 * getters, deep row copies, and decoding an image cell on demand. */
#include "frame.h"

#include "image/image.h"

#include <stdlib.h>
#include <string.h>

const char *dlp_type_name(dlp_type t) {
  switch (t) {
  case DLP_TYPE_STRING:
    return "string";
  case DLP_TYPE_INT64:
    return "int64";
  case DLP_TYPE_DOUBLE:
    return "double";
  case DLP_TYPE_VECTOR:
    return "vector";
  case DLP_TYPE_IMAGE:
    return "image";
  }
  return "unknown";
}

int dlp_frame_new(dlp_ctx *ctx, dlp_frame **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "dlp_frame_new: out is NULL");
  *out = calloc(1, sizeof **out);
  if (!*out) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a frame");
  return dlp_ok(ctx);
}

void dlp_img_cell_clear(dlp_img_cell *c) {
  free(c->origin);
  free(c->error);
  free(c->bytes);
  memset(c, 0, sizeof *c);
}

/* Frees the value of one cell and marks it null. */
static void cell_clear(dlp_column *c, size_t row) {
  if (c->type == DLP_TYPE_STRING) {
    free(c->u.s[row]);
    c->u.s[row] = NULL;
  } else if (c->type == DLP_TYPE_IMAGE) {
    dlp_img_cell_clear(&c->u.img[row]);
  }
  c->valid[row] = 0;
}

static void column_free(dlp_column *c, size_t nrows) {
  if (c->valid)
    for (size_t r = 0; r < nrows; r++)
      cell_clear(c, r);
  free(c->name);
  free(c->valid);
  free(c->u.s); /* every union member is one heap pointer */
}

void dlp_frame_free(dlp_frame *f) {
  if (!f) return;
  for (size_t i = 0; i < f->ncols; i++)
    column_free(&f->cols[i], f->nrows);
  free(f->cols);
  free(f);
}

size_t dlp_frame_nrows(const dlp_frame *f) { return f ? f->nrows : 0; }
size_t dlp_frame_ncols(const dlp_frame *f) { return f ? f->ncols : 0; }

const char *dlp_frame_col_name(const dlp_frame *f, size_t col) {
  return f && col < f->ncols ? f->cols[col].name : NULL;
}

dlp_type dlp_frame_col_type(const dlp_frame *f, size_t col) {
  return f && col < f->ncols ? f->cols[col].type : (dlp_type)0;
}

size_t dlp_frame_col_dim(const dlp_frame *f, size_t col) {
  return f && col < f->ncols && f->cols[col].type == DLP_TYPE_VECTOR
             ? f->cols[col].dim
             : 0;
}

long dlp_frame_col_index(const dlp_frame *f, const char *name) {
  if (!f || !name) return -1;
  for (size_t i = 0; i < f->ncols; i++)
    if (strcmp(f->cols[i].name, name) == 0) return (long)i;
  return -1;
}

/* Bytes one row takes in a column's value array. */
static size_t value_size(const dlp_column *c) {
  switch (c->type) {
  case DLP_TYPE_STRING:
    return sizeof(char *);
  case DLP_TYPE_INT64:
    return sizeof(int64_t);
  case DLP_TYPE_DOUBLE:
    return sizeof(double);
  case DLP_TYPE_IMAGE:
    return sizeof(dlp_img_cell);
  case DLP_TYPE_VECTOR:
    return c->dim * sizeof(float); /* dim checked */
  }
  return 1;
}

/* Grows (or first allocates) a column's arrays from old_cap to new_cap rows,
 * zero-filling the new rows. On failure the column keeps its old arrays. */
static int column_reserve(dlp_column *c, size_t old_cap, size_t new_cap) {
  size_t vs = value_size(c);
  uint8_t *valid = realloc(c->valid, new_cap ? new_cap : 1);
  if (!valid) return DLP_ERR_NOMEM;
  c->valid = valid;
  memset(valid + old_cap, 0, new_cap - old_cap);
  char *vals = dlp_realloc_array(c->u.s, new_cap, vs);
  if (!vals) return DLP_ERR_NOMEM;
  memset(vals + old_cap * vs, 0, (new_cap - old_cap) * vs);
  c->u.s = (char **)(void *)vals;
  return DLP_OK;
}

int dlp_frame_add_column(dlp_ctx *ctx, dlp_frame *f, const char *name,
                         dlp_type type, size_t dim) {
  if (!f || !name || !*name)
    return dlp_fail(ctx, DLP_ERR_ARG, "add_column: a column needs a name");
  if (type < DLP_TYPE_STRING || type > DLP_TYPE_IMAGE)
    return dlp_fail(ctx, DLP_ERR_ARG, "add_column '%s': unknown type %d", name,
                    (int)type);
  size_t bytes;
  if (type == DLP_TYPE_VECTOR &&
      (dim == 0 || !dlp_mul_size(dim, sizeof(float), &bytes)))
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "add_column '%s': bad vector dimension %zu", name, dim);
  if (dlp_frame_col_index(f, name) >= 0)
    return dlp_fail(ctx, DLP_ERR_SCHEMA, "column '%s' already exists", name);
  dlp_column *cols = dlp_realloc_array(f->cols, f->ncols + 1, sizeof *cols);
  if (!cols) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a column");
  f->cols = cols;
  dlp_column c = {.name = dlp_strdup(name),
                  .type = type,
                  .dim = type == DLP_TYPE_VECTOR ? dim : 0};
  if (!c.name || column_reserve(&c, 0, f->cap) != DLP_OK) {
    column_free(&c, 0);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for column '%s'", name);
  }
  f->cols[f->ncols++] = c;
  return dlp_ok(ctx);
}

int dlp_frame_add_row(dlp_ctx *ctx, dlp_frame *f, size_t *row) {
  if (!f) return dlp_fail(ctx, DLP_ERR_ARG, "add_row: frame is NULL");
  if (f->nrows == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    if (cap < f->cap) return dlp_fail(ctx, DLP_ERR_TOO_LARGE, "too many rows");
    for (size_t i = 0; i < f->ncols; i++)
      /* On failure, columns already grown keep their larger arrays:
       * harmless, as only the first f->cap rows are used. */
      if (column_reserve(&f->cols[i], f->cap, cap) != DLP_OK)
        return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu rows", cap);
    f->cap = cap;
  }
  if (row) *row = f->nrows;
  f->nrows++;
  return dlp_ok(ctx);
}

/* The column to set, after range and type checks. */
static dlp_column *cell_for_set(dlp_ctx *ctx, dlp_frame *f, size_t col,
                                size_t row, dlp_type want, int *rc) {
  if (!f || col >= f->ncols || row >= f->nrows) {
    *rc =
        dlp_fail(ctx, DLP_ERR_ARG, "cell (%zu, %zu) is out of range", col, row);
    return NULL;
  }
  dlp_column *c = &f->cols[col];
  if (want && c->type != want) {
    *rc = dlp_fail(ctx, DLP_ERR_SCHEMA, "column '%s' is %s, not %s", c->name,
                   dlp_type_name(c->type), dlp_type_name(want));
    return NULL;
  }
  cell_clear(c, row);
  *rc = DLP_OK;
  return c;
}

int dlp_frame_set_null(dlp_ctx *ctx, dlp_frame *f, size_t col, size_t row) {
  int rc;
  if (!cell_for_set(ctx, f, col, row, 0, &rc)) return rc;
  return dlp_ok(ctx);
}

int dlp_frame_set_string(dlp_ctx *ctx, dlp_frame *f, size_t col, size_t row,
                         const char *s) {
  int rc;
  dlp_column *c = cell_for_set(ctx, f, col, row, DLP_TYPE_STRING, &rc);
  if (!c) return rc;
  if (!s) return dlp_ok(ctx); /* NULL string = null cell */
  if (!(c->u.s[row] = dlp_strdup(s)))
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a string");
  c->valid[row] = 1;
  return dlp_ok(ctx);
}

int dlp_frame_set_int64(dlp_ctx *ctx, dlp_frame *f, size_t col, size_t row,
                        int64_t v) {
  int rc;
  dlp_column *c = cell_for_set(ctx, f, col, row, DLP_TYPE_INT64, &rc);
  if (!c) return rc;
  c->u.i[row] = v;
  c->valid[row] = 1;
  return dlp_ok(ctx);
}

int dlp_frame_set_double(dlp_ctx *ctx, dlp_frame *f, size_t col, size_t row,
                         double v) {
  int rc;
  dlp_column *c = cell_for_set(ctx, f, col, row, DLP_TYPE_DOUBLE, &rc);
  if (!c) return rc;
  c->u.d[row] = v;
  c->valid[row] = 1;
  return dlp_ok(ctx);
}

int dlp_frame_set_vector(dlp_ctx *ctx, dlp_frame *f, size_t col, size_t row,
                         const float *v) {
  int rc;
  dlp_column *c = cell_for_set(ctx, f, col, row, DLP_TYPE_VECTOR, &rc);
  if (!c) return rc;
  if (!v) return dlp_ok(ctx);
  memcpy(c->u.v + row * c->dim, v, c->dim * sizeof(float));
  c->valid[row] = 1;
  return dlp_ok(ctx);
}

int dlp_frame_put_img_cell(dlp_ctx *ctx, dlp_frame *f, size_t col, size_t row,
                           dlp_img_cell *cell) {
  int rc;
  dlp_column *c = cell_for_set(ctx, f, col, row, DLP_TYPE_IMAGE, &rc);
  if (!c) {
    dlp_img_cell_clear(cell);
    return rc;
  }
  c->u.img[row] = *cell;
  memset(cell, 0, sizeof *cell);
  c->valid[row] = 1;
  return dlp_ok(ctx);
}

int dlp_frame_set_image_meta(dlp_ctx *ctx, dlp_frame *f, size_t col, size_t row,
                             const dlp_image_meta *m) {
  if (!m) return dlp_frame_set_null(ctx, f, col, row);
  dlp_img_cell c = {.height = m->height,
                    .width = m->width,
                    .n_channels = m->n_channels,
                    .mode = m->mode,
                    .n_bytes = m->bytes ? m->n_bytes : 0};
  c.origin = dlp_strdup(m->origin);
  c.error = dlp_strdup(m->error);
  if (c.n_bytes && (c.bytes = malloc(c.n_bytes)))
    memcpy(c.bytes, m->bytes, c.n_bytes);
  if ((m->origin && !c.origin) || (m->error && !c.error) ||
      (c.n_bytes && !c.bytes)) {
    dlp_img_cell_clear(&c);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for an image cell");
  }
  return dlp_frame_put_img_cell(ctx, f, col, row, &c);
}

/* The column of a non-null cell of type want, or NULL. */
static const dlp_column *cell_for_get(const dlp_frame *f, size_t col,
                                      size_t row, dlp_type want) {
  if (!f || col >= f->ncols || row >= f->nrows) return NULL;
  const dlp_column *c = &f->cols[col];
  if (c->type != want || !c->valid[row]) return NULL;
  return c;
}

int dlp_frame_is_null(const dlp_frame *f, size_t col, size_t row) {
  if (!f || col >= f->ncols || row >= f->nrows) return 1;
  return !f->cols[col].valid[row];
}

int dlp_frame_get_string(const dlp_frame *f, size_t col, size_t row,
                         const char **out) {
  const dlp_column *c = cell_for_get(f, col, row, DLP_TYPE_STRING);
  if (c && out) *out = c->u.s[row];
  return c != NULL;
}

int dlp_frame_get_int64(const dlp_frame *f, size_t col, size_t row,
                        int64_t *out) {
  const dlp_column *c = cell_for_get(f, col, row, DLP_TYPE_INT64);
  if (c && out) *out = c->u.i[row];
  return c != NULL;
}

int dlp_frame_get_double(const dlp_frame *f, size_t col, size_t row,
                         double *out) {
  const dlp_column *c = cell_for_get(f, col, row, DLP_TYPE_DOUBLE);
  if (c && out) *out = c->u.d[row];
  return c != NULL;
}

int dlp_frame_get_vector(const dlp_frame *f, size_t col, size_t row,
                         const float **out) {
  const dlp_column *c = cell_for_get(f, col, row, DLP_TYPE_VECTOR);
  if (c && out) *out = c->u.v + row * c->dim;
  return c != NULL;
}

int dlp_frame_get_image_meta(const dlp_frame *f, size_t col, size_t row,
                             dlp_image_meta *out) {
  const dlp_column *c = cell_for_get(f, col, row, DLP_TYPE_IMAGE);
  if (!c || !out) return c != NULL;
  const dlp_img_cell *ic = &c->u.img[row];
  out->origin = ic->origin;
  out->height = ic->height;
  out->width = ic->width;
  out->n_channels = ic->n_channels;
  out->mode = ic->mode;
  out->error = ic->error;
  out->bytes = ic->bytes;
  out->n_bytes = ic->n_bytes;
  return 1;
}

int dlp_frame_get_image(dlp_ctx *ctx, const dlp_frame *f, size_t col,
                        size_t row, const dlp_decode_opts *opts,
                        dlp_image **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "get_image: out is NULL");
  *out = NULL;
  if (!f || col >= f->ncols || row >= f->nrows)
    return dlp_fail(ctx, DLP_ERR_ARG, "cell (%zu, %zu) is out of range", col,
                    row);
  if (f->cols[col].type != DLP_TYPE_IMAGE)
    return dlp_fail(ctx, DLP_ERR_SCHEMA, "column '%s' is %s, not image",
                    f->cols[col].name, dlp_type_name(f->cols[col].type));
  dlp_image_meta m;
  if (!dlp_frame_get_image_meta(f, col, row, &m))
    return dlp_fail(ctx, DLP_ERR_ARG, "image cell of row %zu is null", row);
  const char *where = m.origin ? m.origin : "(no origin)";
  if (m.error) return dlp_fail(ctx, DLP_ERR_CORRUPT, "%s: %s", where, m.error);
  dlp_err e = {0};
  dlp_limits lim = dlp_ctx_limits(ctx);
  uint8_t *buf = NULL;
  size_t len = m.n_bytes;
  if (!m.bytes) {
    if (!m.origin)
      return dlp_fail(ctx, DLP_ERR_NOT_FOUND,
                      "image cell of row %zu has neither bytes nor origin",
                      row);
    if (dlp_read_file(&e, m.origin, lim.max_file_bytes, &buf, &len) != DLP_OK)
      return dlp_fail(ctx, e.code, "%s: %s", where, e.msg);
  }
  int rc = dlp_img_decode(&e, &lim, m.bytes ? m.bytes : buf, len, opts, out);
  free(buf);
  if (rc != DLP_OK) {
    *out = NULL;
    return dlp_fail(ctx, rc, "%s: %s", where, e.msg);
  }
  if (m.origin && !((*out)->origin = dlp_strdup(m.origin))) {
    dlp_image_free(*out);
    *out = NULL;
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a path");
  }
  return dlp_ok(ctx);
}

int dlp_frame_clone_schema(dlp_ctx *ctx, const dlp_frame *src,
                           dlp_frame **out) {
  int rc = dlp_frame_new(ctx, out);
  for (size_t i = 0; rc == DLP_OK && i < src->ncols; i++)
    rc = dlp_frame_add_column(ctx, *out, src->cols[i].name, src->cols[i].type,
                              src->cols[i].dim);
  if (rc != DLP_OK) {
    dlp_frame_free(*out);
    *out = NULL;
  }
  return rc;
}

/* Copies cell (sc, srow) into (dc, drow), which is null. */
static int cell_copy(dlp_ctx *ctx, dlp_frame *dst, size_t dc, size_t drow,
                     const dlp_column *s, size_t srow) {
  if (!s->valid[srow]) return DLP_OK;
  dlp_column *d = &dst->cols[dc];
  switch (s->type) {
  case DLP_TYPE_STRING:
    return dlp_frame_set_string(ctx, dst, dc, drow, s->u.s[srow]);
  case DLP_TYPE_INT64:
    d->u.i[drow] = s->u.i[srow];
    break;
  case DLP_TYPE_DOUBLE:
    d->u.d[drow] = s->u.d[srow];
    break;
  case DLP_TYPE_VECTOR:
    memcpy(d->u.v + drow * d->dim, s->u.v + srow * s->dim,
           d->dim * sizeof(float));
    break;
  case DLP_TYPE_IMAGE: {
    const dlp_img_cell *c = &s->u.img[srow];
    dlp_image_meta m = {c->origin, c->height, c->width, c->n_channels,
                        c->mode,   c->error,  c->bytes, c->n_bytes};
    return dlp_frame_set_image_meta(ctx, dst, dc, drow, &m);
  }
  }
  d->valid[drow] = 1;
  return DLP_OK;
}

int dlp_frame_append_row_from(dlp_ctx *ctx, dlp_frame *dst,
                              const dlp_frame *src, size_t srow,
                              const size_t *src_col) {
  size_t drow;
  int rc = dlp_frame_add_row(ctx, dst, &drow);
  for (size_t i = 0; rc == DLP_OK && i < dst->ncols; i++) {
    const dlp_column *s = &src->cols[src_col ? src_col[i] : i];
    if (s->type != dst->cols[i].type || s->dim != dst->cols[i].dim)
      return dlp_fail(ctx, DLP_ERR_SCHEMA, "column '%s' does not match",
                      s->name);
    rc = cell_copy(ctx, dst, i, drow, s, srow);
  }
  return rc;
}

int dlp_frame_take_rows(dlp_ctx *ctx, const dlp_frame *f, const size_t *idx,
                        size_t n, dlp_frame **out) {
  int rc = dlp_frame_clone_schema(ctx, f, out);
  for (size_t k = 0; rc == DLP_OK && k < n; k++) {
    if (idx[k] >= f->nrows)
      rc = dlp_fail(ctx, DLP_ERR_ARG, "row %zu is out of range (%zu rows)",
                    idx[k], f->nrows);
    else
      rc = dlp_frame_append_row_from(ctx, *out, f, idx[k], NULL);
  }
  if (rc != DLP_OK && *out) {
    dlp_frame_free(*out);
    *out = NULL;
  }
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}
