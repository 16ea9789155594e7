/* ref_transpose.c - ONNX Transpose reference kernel: the output index walks
 * in order while the input offset follows the permuted strides. */
#include "transpose.h"

#include <string.h>

/* Resolves perm (n == 0: reversed axes) into p[ndim]. */
static int resolve_perm(dlp_err *e, const nn_tensor *x, const int *perm, int n,
                        int p[NN_MAX_DIMS]) {
  if (n == 0) {
    for (int i = 0; i < x->ndim; i++)
      p[i] = x->ndim - 1 - i;
    return DLP_OK;
  }
  if (n != x->ndim || !perm)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "transpose: perm has %d entries but the input has rank "
                       "%d",
                       n, x->ndim);
  bool seen[NN_MAX_DIMS] = {false};
  for (int i = 0; i < n; i++) {
    if (perm[i] < 0 || perm[i] >= n || seen[perm[i]])
      return dlp_err_set(e, DLP_ERR_ARG,
                         "transpose: perm is not a permutation of 0..%d "
                         "(entry %d is %d)",
                         n - 1, i, perm[i]);
    seen[perm[i]] = true;
    p[i] = perm[i];
  }
  return DLP_OK;
}

int nn_transpose_out_shape(dlp_err *e, const nn_tensor *x, const int *perm,
                           int n, nn_shape *out) {
  int p[NN_MAX_DIMS];
  int rc = resolve_perm(e, x, perm, n, p);
  if (rc != DLP_OK) return rc;
  out->ndim = x->ndim;
  for (int i = 0; i < NN_MAX_DIMS; i++)
    out->dims[i] = i < x->ndim ? x->dims[p[i]] : 1;
  return DLP_OK;
}

int nn_transpose(dlp_err *e, const nn_tensor *x, const int *perm, int n,
                 nn_tensor *y) {
  if (!x || !x->data)
    return dlp_err_set(e, DLP_ERR_ARG, "transpose: no input tensor");
  int p[NN_MAX_DIMS];
  nn_shape s;
  int rc = resolve_perm(e, x, perm, n, p);
  if (rc == DLP_OK) rc = nn_transpose_out_shape(e, x, perm, n, &s);
  if (rc == DLP_OK) rc = nn_check_out(e, "transpose", y, &s);
  if (rc != DLP_OK) return rc;
  if (x->data == y->data)
    return dlp_err_set(e, DLP_ERR_ARG, "transpose: output overlaps the input");
  int nd = x->ndim;
  int64_t xs[NN_MAX_DIMS], st[NN_MAX_DIMS], idx[NN_MAX_DIMS] = {0};
  int64_t stride = 1;
  for (int i = nd - 1; i >= 0; i--) {
    xs[i] = stride;
    stride *= x->dims[i];
  }
  for (int i = 0; i < nd; i++)
    st[i] = xs[p[i]]; /* input stride along output axis i */
  int64_t total = nn_tensor_numel(y), off = 0;
  if (total == 0) return DLP_OK;
  if (nd == 0) {
    y->data[0] = x->data[0];
    return DLP_OK;
  }
  /* Innermost output axis as a tight loop, the rest as an odometer. */
  int64_t inner = s.dims[nd - 1], ist = st[nd - 1];
  for (int64_t o = 0; o < total; o += inner) {
    const float *src = x->data + off;
    float *dst = y->data + o;
    for (int64_t j = 0; j < inner; j++)
      dst[j] = src[j * ist];
    for (int d = nd - 2; d >= 0; d--) {
      off += st[d];
      if (++idx[d] < s.dims[d]) break;
      off -= st[d] * s.dims[d];
      idx[d] = 0;
    }
  }
  return DLP_OK;
}
