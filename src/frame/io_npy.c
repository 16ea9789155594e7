/* io_npy.c - NumPy .npy arrays, written and parsed by hand: the format is a
 * ten-line spec (magic, version, a Python-literal header dict, raw data) and
 * no C library for it is packaged. The header parser is strict and bounded:
 * it accepts exactly the dict numpy writes, and the data size it declares
 * must match the bytes the file holds.
 *
 * Written: one vector column as '<f4' (rows, dim), one int64 column as '<i8'
 * (rows,), one double column as '<f8' (rows,). Read: the same three, plus
 * '<f4' 1-D as a double column.
 *
 * The same header code also reads and writes whole arrays (dlp_npy_array:
 * '<f4', '<f8', '<i8', '|u1', 0 to 8 dimensions) for the test tools. */
#include "frame.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAGIC "\x93NUMPY"

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

/* Room for the preamble and dict of up to DLP_NPY_MAX_DIMS dimensions. */
#define NPY_HEADER_MAX 512

/* Magic, version 1.0, and the header dict padded so data starts at a
 * multiple of 64 bytes, as numpy does, into out (NPY_HEADER_MAX bytes).
 * Returns the header's length. */
static size_t npy_format_header(uint8_t *out, const char *descr, int ndim,
                                const uint64_t *shape) {
  char dims[DLP_NPY_MAX_DIMS * 24 + 4] = "";
  size_t n = 0;
  for (int i = 0; i < ndim; i++)
    n += (size_t)snprintf(dims + n, sizeof dims - n, "%s%" PRIu64,
                          i ? ", " : "", shape[i]);
  if (ndim == 1) dims[n++] = ',', dims[n] = '\0'; /* (n,) as in Python */
  char *dict = (char *)out + 10;
  size_t dl = (size_t)snprintf(
      dict, NPY_HEADER_MAX - 10,
      "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims);
  size_t total = 10 + dl + 1;
  size_t pad = (64 - total % 64) % 64;
  uint16_t hl = (uint16_t)(dl + pad + 1);
  memcpy(out, NPY_MAGIC "\x01\x00", 8);
  out[8] = (uint8_t)(hl & 0xff);
  out[9] = (uint8_t)(hl >> 8);
  memset(dict + dl, ' ', pad);
  dict[dl + pad] = '\n';
  return total + pad;
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
  uint8_t hdr[NPY_HEADER_MAX];
  size_t hl =
      npy_format_header(hdr, descr, c->type == DLP_TYPE_VECTOR ? 2 : 1, shape);
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

/* What the header dict says. */
typedef struct npy_header {
  char descr[16];
  int fortran; /* -1 until seen */
  size_t shape[DLP_NPY_MAX_DIMS];
  int ndim;     /* -1 until seen */
  int max_ndim; /* a longer shape is malformed */
} npy_header;

/* A cursor over the header text [p, end). */
typedef struct npy_cur {
  const char *p, *end;
} npy_cur;

static void npy_ws(npy_cur *c) {
  while (c->p < c->end && isspace((unsigned char)*c->p))
    c->p++;
}

static int npy_eat(npy_cur *c, char ch) {
  npy_ws(c);
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return 1;
  }
  return 0;
}

/* A quoted Python string of at most cap-1 bytes. */
static int npy_str(npy_cur *c, char *out, size_t cap) {
  npy_ws(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
  char q = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != q) {
    if (n + 1 >= cap) return 0;
    out[n++] = *c->p++;
  }
  out[n] = '\0';
  return c->p < c->end && *c->p++ == q;
}

static int npy_word(npy_cur *c, const char *w) {
  npy_ws(c);
  size_t l = strlen(w);
  if ((size_t)(c->end - c->p) < l || memcmp(c->p, w, l) != 0) return 0;
  c->p += l;
  return 1;
}

/* A tuple of up to h->max_ndim non-negative integers: (), (n,), (n, m). */
static int npy_shape(npy_cur *c, npy_header *h) {
  if (!npy_eat(c, '(')) return 0;
  h->ndim = 0;
  for (;;) {
    if (npy_eat(c, ')')) return 1;
    npy_ws(c);
    if (h->ndim == h->max_ndim || c->p >= c->end ||
        !isdigit((unsigned char)*c->p))
      return 0;
    size_t v = 0;
    while (c->p < c->end && isdigit((unsigned char)*c->p)) {
      if (v > (SIZE_MAX - 9) / 10) return 0;
      v = v * 10 + (size_t)(*c->p++ - '0');
    }
    h->shape[h->ndim++] = v;
    if (!npy_eat(c, ',') && !(npy_ws(c), c->p < c->end && *c->p == ')'))
      return 0;
  }
}

/* Parses "{'descr': ..., 'fortran_order': ..., 'shape': (...), }" with at
 * most max_ndim dimensions. */
static int npy_parse_dict(npy_cur *c, int max_ndim, npy_header *h) {
  h->fortran = h->ndim = -1;
  h->max_ndim = max_ndim;
  h->descr[0] = '\0';
  if (!npy_eat(c, '{')) return 0;
  while (!npy_eat(c, '}')) {
    char key[32];
    if (!npy_str(c, key, sizeof key) || !npy_eat(c, ':')) return 0;
    int ok;
    if (strcmp(key, "descr") == 0)
      ok = npy_str(c, h->descr, sizeof h->descr);
    else if (strcmp(key, "fortran_order") == 0)
      ok = npy_word(c, "False")  ? (h->fortran = 0, 1)
           : npy_word(c, "True") ? (h->fortran = 1, 1)
                                 : 0;
    else if (strcmp(key, "shape") == 0)
      ok = npy_shape(c, h);
    else
      ok = 0;
    if (!ok) return 0;
    if (!npy_eat(c, ',')) {
      if (!npy_eat(c, '}')) return 0;
      break;
    }
  }
  return h->descr[0] && h->fortran >= 0 && h->ndim >= 0;
}

/* Locates the header text and the data in the file. */
static int npy_split(dlp_err *e, const char *path, const uint8_t *b, size_t len,
                     npy_cur *hdr, size_t *data_at) {
  if (len < 10 || memcmp(b, NPY_MAGIC, 6) != 0)
    return dlp_err_set(e, DLP_ERR_FORMAT, "%s: not a .npy file (bad magic)",
                       path);
  size_t hl, at;
  if (b[6] == 1) {
    hl = (size_t)b[8] | (size_t)b[9] << 8;
    at = 10;
  } else if (b[6] == 2 || b[6] == 3) {
    if (len < 12)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "%s: truncated header", path);
    hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
         (size_t)b[11] << 24;
    at = 12;
  } else {
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED, "%s: .npy version %d.%d", path,
                       b[6], b[7]);
  }
  if (hl > len - at)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: header of %zu bytes runs past the end of the file",
                       path, hl);
  hdr->p = (const char *)b + at;
  hdr->end = hdr->p + hl;
  *data_at = at + hl;
  return DLP_OK;
}

/* Reads path (within max_bytes) and parses its header: *b (the caller
 * frees it, also on failure) holds the whole file, the data starts at *at. */
static int npy_open(dlp_err *e, const char *path, uint64_t max_bytes,
                    int max_ndim, uint8_t **b, size_t *len, npy_header *h,
                    size_t *at) {
  dlp_err re = {0};
  npy_cur hc;
  if (dlp_read_file(&re, path, max_bytes, b, len) != DLP_OK)
    return dlp_err_set(e, re.code, "%s: %s", path, re.msg);
  int rc = npy_split(e, path, *b, *len, &hc, at);
  if (rc == DLP_OK && !npy_parse_dict(&hc, max_ndim, h))
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "%s: malformed .npy header", path);
  return rc;
}

/* Checks that the shape times item bytes is exactly the avail data bytes. */
static int npy_check_size(dlp_err *e, const char *path, const npy_header *h,
                          size_t item, size_t avail) {
  size_t need = 1;
  bool over = false, empty = false;
  for (int i = 0; i < h->ndim; i++) {
    over = !dlp_mul_size(need, h->shape[i], &need) || over;
    empty = empty || h->shape[i] == 0;
  }
  if (empty) need = 0, over = false; /* a zero dimension: no data at all */
  if (over || !dlp_mul_size(need, item, &need))
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: the header declares a shape too large for "
                       "memory (the file holds %zu data bytes)",
                       path, avail);
  if (need != avail)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: the header declares %zu data bytes but the file "
                       "holds %zu",
                       path, need, avail);
  return DLP_OK;
}

/* Checks dtype and size for a frame; gives the column type and item size. */
static int npy_check(dlp_err *e, const char *path, const npy_header *h,
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
  return npy_check_size(e, path, h, *item, avail);
}

static uint64_t get_le(const uint8_t *p, size_t n) {
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++)
    x |= (uint64_t)p[i] << (8 * i);
  return x;
}

/* Copies the data into a new frame's single column. */
static int npy_fill(dlp_ctx *ctx, const npy_header *h, dlp_type type,
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
  npy_header h;
  dlp_type type = DLP_TYPE_VECTOR;
  dlp_err e = {0};
  int rc =
      npy_open(&e, path, dlp_ctx_max_file_bytes(ctx), 2, &b, &len, &h, &at);
  if (rc == DLP_OK) rc = npy_check(&e, path, &h, len - at, &type, &item);
  if (rc != DLP_OK) rc = dlp_fail_from(ctx, &e);
  if (rc == DLP_OK)
    rc = npy_fill(ctx, &h, type, item, b + at,
                  o->column ? o->column : "features", out);
  free(b);
  return rc;
}

/* ------------------------------------------------------------------------
 * Whole arrays
 * ------------------------------------------------------------------------ */

/* The dtypes of dlp_npy_array, as numpy names them in 'descr'. */
static const struct {
  char dtype;
  size_t item;
  const char *descr;
} npy_dtypes[] = {{'f', 4, "<f4"},
                  {'d', 8, "<f8"},
                  {'q', 8, "<i8"},
                  {'B', 1, "|u1"},
                  {'B', 1, "<u1"}};
#define NPY_NDTYPES (sizeof npy_dtypes / sizeof npy_dtypes[0])

/* Turns n bytes of item-byte little-endian values into host order, in
 * place (the same swap turns host order into little-endian). */
static void npy_le_to_host(uint8_t *p, size_t n, size_t item) {
  const uint16_t one = 1;
  if (item == 1 || *(const uint8_t *)&one == 1) return;
  for (size_t i = 0; i + item <= n; i += item)
    for (size_t a = i, z = i + item - 1; a < z; a++, z--) {
      uint8_t t = p[a];
      p[a] = p[z];
      p[z] = t;
    }
}

/* Checks order, dtype and size; fills everything of out but data, and
 * *item. */
static int npy_check_array(dlp_err *e, const char *path, const npy_header *h,
                           size_t avail, dlp_npy_array *out, size_t *item) {
  if (h->fortran)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "%s: fortran_order arrays are not supported (only "
                       "C-order arrays are read)",
                       path);
  if (h->descr[0] == '>')
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "%s: dtype '%s' is big-endian; only little-endian "
                       "arrays are read",
                       path, h->descr);
  size_t k = 0;
  while (k < NPY_NDTYPES && strcmp(h->descr, npy_dtypes[k].descr) != 0)
    k++;
  if (k == NPY_NDTYPES)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "%s: dtype '%s' is not supported (want '<f4', '<f8', "
                       "'<i8' or '|u1')",
                       path, h->descr);
  for (int i = 0; i < h->ndim; i++)
    if ((uint64_t)h->shape[i] > (uint64_t)INT64_MAX)
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "%s: dimension %d of the shape is too large", path, i);
  int rc = npy_check_size(e, path, h, npy_dtypes[k].item, avail);
  if (rc != DLP_OK) return rc;
  out->dtype = npy_dtypes[k].dtype;
  out->ndim = h->ndim;
  for (int i = 0; i < h->ndim; i++)
    out->dims[i] = (int64_t)h->shape[i];
  out->nbytes = avail;
  *item = npy_dtypes[k].item;
  return DLP_OK;
}

int dlp_npy_load_array(dlp_err *e, const char *path, uint64_t max_bytes,
                       dlp_npy_array *out) {
  memset(out, 0, sizeof *out);
  uint8_t *b = NULL;
  size_t len = 0, at = 0, item = 0;
  npy_header h;
  int rc = npy_open(e, path, max_bytes, DLP_NPY_MAX_DIMS, &b, &len, &h, &at);
  if (rc == DLP_OK) rc = npy_check_array(e, path, &h, len - at, out, &item);
  if (rc != DLP_OK) {
    free(b);
    memset(out, 0, sizeof *out);
    return rc;
  }
  /* The data moves to the front of the file's buffer, which then shrinks:
   * no second copy of a large array. */
  memmove(b, b + at, out->nbytes);
  npy_le_to_host(b, out->nbytes, item);
  uint8_t *d = realloc(b, out->nbytes ? out->nbytes : 1);
  out->data = d ? d : b;
  return DLP_OK;
}

int dlp_npy_save_array(dlp_err *e, const char *path, const dlp_npy_array *a) {
  size_t k = 0, need;
  while (k < NPY_NDTYPES && npy_dtypes[k].dtype != a->dtype)
    k++;
  if (k == NPY_NDTYPES)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: unknown dtype '%c'", path,
                       a->dtype);
  if (a->ndim < 0 || a->ndim > DLP_NPY_MAX_DIMS)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: %d dimensions (at most %d)", path,
                       a->ndim, DLP_NPY_MAX_DIMS);
  need = npy_dtypes[k].item;
  uint64_t shape[DLP_NPY_MAX_DIMS];
  for (int i = 0; i < a->ndim; i++) {
    if (a->dims[i] < 0 || !dlp_mul_size(need, (size_t)a->dims[i], &need))
      return dlp_err_set(e, DLP_ERR_ARG, "%s: bad dimension %" PRId64, path,
                         a->dims[i]);
    shape[i] = (uint64_t)a->dims[i];
  }
  if (need != a->nbytes || (need && !a->data))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: the shape needs %zu data bytes, the array has %zu",
                       path, need, a->data ? a->nbytes : 0);
  uint8_t hdr[NPY_HEADER_MAX];
  size_t hl = npy_format_header(hdr, npy_dtypes[k].descr, a->ndim, shape);
  uint8_t *buf = hl + need >= hl ? malloc(hl + need) : NULL;
  if (!buf)
    return dlp_err_set(e, DLP_ERR_NOMEM, "%s: no memory for %zu bytes", path,
                       need);
  memcpy(buf, hdr, hl);
  if (need) memcpy(buf + hl, a->data, need);
  npy_le_to_host(buf + hl, need, npy_dtypes[k].item);
  int rc = dlp_write_file_atomic(e, path, buf, hl + need);
  free(buf);
  return rc;
}

void dlp_npy_array_free(dlp_npy_array *a) {
  if (!a) return;
  free(a->data);
  memset(a, 0, sizeof *a);
}
