/* npy.c - NumPy .npy files, by hand: the format is a ten-line spec (magic,
 * version, a Python-literal header dict, raw data) and numpy is not a C
 * library. One strict, bounded header parser and one header formatter,
 * used here for whole arrays (dlp_npy_array: '<f4', '<f8', '<i8', '|u1',
 * 0 to 8 dimensions) and by the frame sink/source (frame/io_npy.c); the
 * data size a header declares must match the bytes the file holds. */
#include "npy.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAGIC "\x93NUMPY"

/* ------------------------------------------------------------------------
 * The header
 * ------------------------------------------------------------------------ */

size_t dlp_npy_format_header(uint8_t *out, const char *descr, int ndim,
                             const uint64_t *shape) {
  char dims[DLP_NPY_MAX_DIMS * 24 + 4] = "";
  size_t n = 0;
  for (int i = 0; i < ndim; i++)
    n += (size_t)snprintf(dims + n, sizeof dims - n, "%s%" PRIu64,
                          i ? ", " : "", shape[i]);
  if (ndim == 1) dims[n++] = ',', dims[n] = '\0'; /* (n,) as in Python */
  char *dict = (char *)out + 10;
  size_t dl = (size_t)snprintf(
      dict, DLP_NPY_HEADER_MAX - 10,
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
static int npy_shape(npy_cur *c, dlp_npy_header *h) {
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
static int npy_parse_dict(npy_cur *c, int max_ndim, dlp_npy_header *h) {
  h->fortran = h->ndim = -1;
  h->max_ndim = max_ndim < DLP_NPY_MAX_DIMS ? max_ndim : DLP_NPY_MAX_DIMS;
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

int dlp_npy_open(dlp_err *e, const char *path, uint64_t max_bytes, int max_ndim,
                 uint8_t **b, size_t *len, dlp_npy_header *h, size_t *at) {
  dlp_err re = {0};
  npy_cur hc;
  if (dlp_read_file(&re, path, max_bytes, b, len) != DLP_OK)
    return dlp_err_set(e, re.code, "%s: %s", path, re.msg);
  int rc = npy_split(e, path, *b, *len, &hc, at);
  if (rc == DLP_OK && !npy_parse_dict(&hc, max_ndim, h))
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "%s: malformed .npy header", path);
  return rc;
}

int dlp_npy_check_size(dlp_err *e, const char *path, const dlp_npy_header *h,
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
static int npy_check_array(dlp_err *e, const char *path,
                           const dlp_npy_header *h, size_t avail,
                           dlp_npy_array *out, size_t *item) {
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
  int rc = dlp_npy_check_size(e, path, h, npy_dtypes[k].item, avail);
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
  dlp_npy_header h;
  int rc =
      dlp_npy_open(e, path, max_bytes, DLP_NPY_MAX_DIMS, &b, &len, &h, &at);
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
  uint8_t hdr[DLP_NPY_HEADER_MAX];
  size_t hl = dlp_npy_format_header(hdr, npy_dtypes[k].descr, a->ndim, shape);
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
