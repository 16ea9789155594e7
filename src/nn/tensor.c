/* tensor.c - the nn layer's tensor: a float32 row-major array of up to six
 * dims that owns its data or views a buffer someone else owns. */
#include "nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t nn_shape_numel(int ndim, const int64_t *dims) {
  if (ndim < 0 || ndim > NN_MAX_DIMS || (ndim > 0 && !dims)) return -1;
  for (int i = 0; i < ndim; i++)
    if (dims[i] < 0) return -1;
  for (int i = 0; i < ndim; i++) /* a zero dim anywhere empties the tensor */
    if (dims[i] == 0) return 0;
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (n > NN_MAX_NUMEL / dims[i]) return -1;
    n *= dims[i];
  }
  return n;
}

int64_t nn_tensor_numel(const nn_tensor *t) {
  return t ? nn_shape_numel(t->ndim, t->dims) : 0;
}

nn_shape nn_tensor_shape(const nn_tensor *t) {
  nn_shape s = {0, {1, 1, 1, 1, 1, 1}};
  s.ndim = t->ndim;
  for (int i = 0; i < t->ndim; i++)
    s.dims[i] = t->dims[i];
  return s;
}

const char *nn_shape_str(int ndim, const int64_t *dims, char *buf, size_t n) {
  if (!n) return buf;
  buf[0] = '\0';
  if (ndim == 0) {
    snprintf(buf, n, "scalar");
    return buf;
  }
  size_t used = 0;
  for (int i = 0; i < ndim && used < n; i++) {
    int k = snprintf(buf + used, n - used, "%s%lld", i ? "x" : "",
                     (long long)dims[i]);
    if (k < 0) break;
    used += (size_t)k;
  }
  return buf;
}

/* Validates a shape for a new tensor; the count goes to *numel. */
static int check_shape(dlp_err *e, int ndim, const int64_t *dims,
                       int64_t *numel) {
  if (ndim < 0 || ndim > NN_MAX_DIMS)
    return dlp_err_set(e, DLP_ERR_ARG, "tensor: rank %d is outside 0..%d", ndim,
                       NN_MAX_DIMS);
  if (ndim > 0 && !dims)
    return dlp_err_set(e, DLP_ERR_ARG, "tensor: no dims given for rank %d",
                       ndim);
  for (int i = 0; i < ndim; i++)
    if (dims[i] < 0)
      return dlp_err_set(e, DLP_ERR_ARG, "tensor: dim %d is negative (%lld)", i,
                         (long long)dims[i]);
  *numel = nn_shape_numel(ndim, dims);
  if (*numel < 0) {
    char s[128];
    return dlp_err_set(e, DLP_ERR_TOO_LARGE,
                       "tensor: shape %s has more than 2^31 elements",
                       nn_shape_str(ndim, dims, s, sizeof s));
  }
  return DLP_OK;
}

static nn_tensor *header(int ndim, const int64_t *dims) {
  nn_tensor *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ndim = ndim;
  for (int i = 0; i < NN_MAX_DIMS; i++)
    t->dims[i] = i < ndim ? dims[i] : 1;
  return t;
}

int nn_tensor_new(dlp_err *e, int ndim, const int64_t *dims, nn_tensor **out) {
  *out = NULL;
  int64_t numel;
  int rc = check_shape(e, ndim, dims, &numel);
  if (rc != DLP_OK) return rc;
  nn_tensor *t = header(ndim, dims);
  /* At least one float, so an empty tensor still has a valid pointer. */
  float *d = t ? dlp_calloc_array(numel ? (size_t)numel : 1, sizeof *d) : NULL;
  if (!d) {
    free(t);
    return dlp_err_set(e, DLP_ERR_NOMEM, "tensor: no memory for %lld floats",
                       (long long)numel);
  }
  t->data = d;
  *out = t;
  return DLP_OK;
}

int nn_tensor_view(dlp_err *e, float *data, int ndim, const int64_t *dims,
                   nn_tensor **out) {
  *out = NULL;
  int64_t numel;
  int rc = check_shape(e, ndim, dims, &numel);
  if (rc != DLP_OK) return rc;
  nn_tensor *t = header(ndim, dims);
  if (!t) return dlp_err_set(e, DLP_ERR_NOMEM, "tensor: no memory");
  t->data = data;
  t->is_view = true;
  *out = t;
  return DLP_OK;
}

void nn_tensor_free(nn_tensor *t) {
  if (!t) return;
  if (!t->is_view) free(t->data);
  free(t);
}

int nn_check_out(dlp_err *e, const char *op, const nn_tensor *t,
                 const nn_shape *s) {
  char a[128], b[128];
  if (!t || !t->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: no output tensor", op);
  bool same = t->ndim == s->ndim;
  for (int i = 0; same && i < s->ndim; i++)
    same = t->dims[i] == s->dims[i];
  if (same) return DLP_OK;
  return dlp_err_set(e, DLP_ERR_ARG,
                     "%s: output has shape %s but %s is expected", op,
                     nn_shape_str(t->ndim, t->dims, a, sizeof a),
                     nn_shape_str(s->ndim, s->dims, b, sizeof b));
}
