/* io_npy.c - one frame column as a NumPy .npy file. The header parser and
 * formatter are core/npy.c's (hand-written: see there), as are whole
 * arrays (dlp_npy_array); this file maps columns to and from the data.
 *
 * Written: one vector column as '<f4' (rows, dim), one int64 column as '<i8'
 * (rows,), one double column as '<f8' (rows,). Read: the same three, plus
 * '<f4' 1-D as a double column. */
#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The column written: opts->column, else the only vector column, else the
 * only column when it is int64 or double. */
static int npy_pick(dlp_ctx *ctx, const dlp_frame *f, const dlp_io_opts *o,
                    size_t *col) {
  if (o->column) {
    long c = dlp_frame_col_index(f, o->column);
    if (c < 0)
      return dlp_fail(ctx, DLP_ERR_NOT_FOUND, "no column '%s'", o->column);
    *col = (size_t)c;
  } else {
    size_t nvec = 0;
    for (size_t i = 0; i < f->ncols; i++)
      if (f->cols[i].type == DLP_TYPE_VECTOR) *col = i, nvec++;
    if (nvec != 1 && f->ncols == 1) *col = 0, nvec = 1;
    if (nvec != 1)
      return dlp_fail(ctx, DLP_ERR_ARG,
                      ".npy holds one column: the frame has %zu vector "
                      "columns, name one (column option)",
                      nvec);
  }
  const dlp_column *c = &f->cols[*col];
  if (c->type == DLP_TYPE_STRING || c->type == DLP_TYPE_IMAGE)
    return dlp_fail(ctx, DLP_ERR_SCHEMA,
                    "column '%s' is %s; .npy takes vector, int64 or double",
                    c->name, dlp_type_name(c->type));
  for (size_t r = 0; r < f->nrows; r++)
    if (!c->valid[r])
      return dlp_fail(ctx, DLP_ERR_SCHEMA,
                      "column '%s' has null rows; .npy cannot hold nulls",
                      c->name);
  return DLP_OK;
}

/* Little-endian bytes of a 4- or 8-byte value, whatever the host order. */
static void put_le(FILE *fp, const void *v, size_t n) {
  uint64_t x = 0;
  if (n == 4) {
    uint32_t y;
    memcpy(&y, v, 4);
    x = y;
  } else {
    memcpy(&x, v, 8);
  }
  uint8_t b[8];
  for (size_t i = 0; i < n; i++)
    b[i] = (uint8_t)(x >> (8 * i));
  fwrite(b, 1, n, fp);
}

int dlp_npy_write(dlp_ctx *ctx, const dlp_frame *f, const char *path,
                  const dlp_io_opts *o) {
  size_t col = 0;
  int rc = npy_pick(ctx, f, o, &col);
  if (rc != DLP_OK) return rc;
  const dlp_column *c = &f->cols[col];
  dlp_io_tmp t;
  if ((rc = dlp_io_tmp_open(ctx, path, &t)) != DLP_OK) return rc;
  const char *descr = c->type == DLP_TYPE_VECTOR  ? "<f4"
                      : c->type == DLP_TYPE_INT64 ? "<i8"
                                                  : "<f8";
  uint64_t shape[2] = {f->nrows, c->dim};
  uint8_t hdr[DLP_NPY_HEADER_MAX];
  size_t hl = dlp_npy_format_header(hdr, descr,
                                    c->type == DLP_TYPE_VECTOR ? 2 : 1, shape);
  fwrite(hdr, 1, hl, t.fp);
  for (size_t r = 0; r < f->nrows; r++) {
    if (c->type == DLP_TYPE_VECTOR)
      for (size_t k = 0; k < c->dim; k++)
        put_le(t.fp, &c->u.v[r * c->dim + k], 4);
    else if (c->type == DLP_TYPE_INT64)
      put_le(t.fp, &c->u.i[r], 8);
    else
      put_le(t.fp, &c->u.d[r], 8);
  }
  return dlp_io_tmp_close(ctx, &t, path, DLP_OK);
}

/* Checks dtype and size for a frame; gives the column type and item size. */
static int npy_check(dlp_err *e, const char *path, const dlp_npy_header *h,
                     size_t avail, dlp_type *type, size_t *item) {
  int f4 = strcmp(h->descr, "<f4") == 0;
  int i8 = strcmp(h->descr, "<i8") == 0, f8 = strcmp(h->descr, "<f8") == 0;
  if (h->fortran)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "%s: fortran_order arrays are not supported", path);
  if (!(f4 || i8 || f8) || (h->ndim == 2 && !f4) || h->ndim == 0)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "%s: dtype '%s' with %d dimensions is not supported "
                       "(want '<f4' 2-D, or '<i8' / '<f8' / '<f4' 1-D)",
                       path, h->descr, h->ndim);
  if (h->ndim == 2 && h->shape[1] == 0)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED, "%s: zero-width rows", path);
  *type = h->ndim == 2 ? DLP_TYPE_VECTOR
          : i8         ? DLP_TYPE_INT64
                       : DLP_TYPE_DOUBLE;
  *item = f4 ? 4 : 8;
  return dlp_npy_check_size(e, path, h, *item, avail);
}

static uint64_t get_le(const uint8_t *p, size_t n) {
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++)
    x |= (uint64_t)p[i] << (8 * i);
  return x;
}

/* Copies the data into a new frame's single column. */
static int npy_fill(dlp_ctx *ctx, const dlp_npy_header *h, dlp_type type,
                    size_t item, const uint8_t *d, const char *name,
                    dlp_frame **out) {
  size_t dim = type == DLP_TYPE_VECTOR ? h->shape[1] : 1;
  int rc = dlp_frame_new(ctx, out);
  if (rc == DLP_OK) rc = dlp_frame_add_column(ctx, *out, name, type, dim);
  for (size_t r = 0; rc == DLP_OK && r < h->shape[0]; r++) {
    rc = dlp_frame_add_row(ctx, *out, NULL);
    if (rc != DLP_OK) break;
    dlp_column *c = &(*out)->cols[0];
    const uint8_t *row = d + r * dim * item;
    for (size_t k = 0; k < dim; k++) {
      uint64_t x = get_le(row + k * item, item);
      if (type == DLP_TYPE_VECTOR) {
        uint32_t y = (uint32_t)x;
        memcpy(&c->u.v[r * dim + k], &y, 4);
      } else if (type == DLP_TYPE_INT64) {
        memcpy(&c->u.i[r], &x, 8);
      } else if (item == 8) {
        memcpy(&c->u.d[r], &x, 8);
      } else {
        uint32_t y = (uint32_t)x;
        float fv;
        memcpy(&fv, &y, 4);
        c->u.d[r] = fv;
      }
    }
    c->valid[r] = 1;
  }
  return rc;
}

int dlp_npy_read(dlp_ctx *ctx, const char *path, const dlp_io_opts *o,
                 dlp_frame **out) {
  uint8_t *b = NULL;
  size_t len = 0, at = 0, item = 0;
  dlp_npy_header h;
  dlp_type type = DLP_TYPE_VECTOR;
  dlp_err e = {0};
  int rc =
      dlp_npy_open(&e, path, dlp_ctx_max_file_bytes(ctx), 2, &b, &len, &h, &at);
  if (rc == DLP_OK) rc = npy_check(&e, path, &h, len - at, &type, &item);
  if (rc != DLP_OK) rc = dlp_fail_from(ctx, &e);
  if (rc == DLP_OK)
    rc = npy_fill(ctx, &h, type, item, b + at,
                  o->column ? o->column : "features", out);
  free(b);
  return rc;
}
