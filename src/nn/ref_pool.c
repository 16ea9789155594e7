/* ref_pool.c - reference 2-D max and average pooling (kernel, stride,
 * asymmetric pads, ceil_mode, count_include_pad) and global pooling.
 *
 * Written by hand because these loops are the definition the fast backends
 * are tested against. The window rules follow PyTorch, which ONNX and
 * Keras/TF agree with where they overlap: the window is clipped to the input
 * (max and exclusive average) or to the padded input (inclusive average). */
#include "nn.h"
#include "ref_util.h"

#include <math.h>

void nn_pool2d_attr_init(nn_pool2d_attr *a) {
  *a = (nn_pool2d_attr){.kernel = {0, 0}, .stride = {1, 1}};
}

static int check_attr(dlp_err *e, const nn_pool2d_attr *a) {
  for (int i = 0; i < 2; i++) {
    if (a->kernel[i] < 1 || a->stride[i] < 1)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "pool2d: kernel (%d, %d) and stride (%d, %d) must be "
                         "at least 1",
                         a->kernel[0], a->kernel[1], a->stride[0],
                         a->stride[1]);
    /* pads[i] and pads[i + 2] are the begin and end of axis i. */
    int p0 = a->pads[i], p1 = a->pads[i + 2];
    if (p0 < 0 || p1 < 0 || p0 >= a->kernel[i] || p1 >= a->kernel[i])
      return dlp_err_set(e, DLP_ERR_ARG,
                         "pool2d: pads (%d, %d) on the %s axis must be in "
                         "[0, kernel %d)",
                         p0, p1, i ? "width" : "height", a->kernel[i]);
  }
  return DLP_OK;
}

/* Output size of one axis: floor or ceil of (padded - k) / s, plus 1; in
 * ceil mode a last window starting in the end padding is dropped. -1 when
 * the kernel does not fit. */
static int64_t out_size(int64_t in, int p0, int p1, int k, int s, bool ceil) {
  int64_t span = in + p0 + p1 - k;
  if (span < 0) return -1;
  int64_t out = (ceil ? (span + s - 1) / s : span / s) + 1;
  if (ceil && (out - 1) * s >= in + p0) out--;
  return out;
}

int nn_pool2d_out_shape(dlp_err *e, const nn_pool2d_attr *a, const nn_tensor *x,
                        nn_shape *out) {
  char sx[128];
  int rc = check_attr(e, a);
  if (rc != DLP_OK) return rc;
  if (x->ndim != 4 || x->dims[2] < 1 || x->dims[3] < 1)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "pool2d: input has shape %s, not NCHW with H, W >= 1",
                       nn_shape_str(x->ndim, x->dims, sx, sizeof sx));
  int64_t oh = out_size(x->dims[2], a->pads[0], a->pads[2], a->kernel[0],
                        a->stride[0], a->ceil_mode);
  int64_t ow = out_size(x->dims[3], a->pads[1], a->pads[3], a->kernel[1],
                        a->stride[1], a->ceil_mode);
  if (oh < 1 || ow < 1)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "pool2d: the %dx%d kernel is larger than the padded "
                       "%lldx%lld input",
                       a->kernel[0], a->kernel[1],
                       (long long)(x->dims[2] + a->pads[0] + a->pads[2]),
                       (long long)(x->dims[3] + a->pads[1] + a->pads[3]));
  *out = (nn_shape){4, {x->dims[0], x->dims[1], oh, ow, 1, 1}};
  return DLP_OK;
}

/* pads[axis] and pads[axis + 2] are the begin and end of the axis;
 * check_attr and out_size guarantee lo < hi. */
nn_pool_win nn_pool_window(const nn_pool2d_attr *a, int axis, int64_t o,
                           int64_t in) {
  int64_t start = o * a->stride[axis] - a->pads[axis];
  int64_t end = start + a->kernel[axis], p1 = a->pads[axis + 2];
  nn_pool_win w;
  w.padded_len = (end < in + p1 ? end : in + p1) - start;
  w.lo = start < 0 ? 0 : start;
  w.hi = end < in ? end : in;
  return w;
}

int64_t nn_pool_divisor(const nn_pool2d_attr *a, const nn_pool_win *wh,
                        const nn_pool_win *ww) {
  return a->count_include_pad ? wh->padded_len * ww->padded_len
                              : (wh->hi - wh->lo) * (ww->hi - ww->lo);
}

/* Pools every (n, c) plane of x into y; is_max picks the reduction. */
static int pool2d(dlp_err *e, const char *op, bool is_max,
                  const nn_pool2d_attr *a, const nn_tensor *x, nn_tensor *y) {
  nn_shape s;
  if (!x || !x->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: no input tensor", op);
  int rc = nn_pool2d_out_shape(e, a, x, &s);
  if (rc == DLP_OK) rc = nn_check_out(e, op, y, &s);
  if (rc != DLP_OK) return rc;
  int64_t h = x->dims[2], w = x->dims[3], oh = s.dims[2], ow = s.dims[3];
  int64_t planes = x->dims[0] * x->dims[1];
  for (int64_t p = 0; p < planes; p++) {
    const float *in = x->data + p * h * w;
    float *out = y->data + p * oh * ow;
    for (int64_t i = 0; i < oh; i++) {
      nn_pool_win wh = nn_pool_window(a, 0, i, h);
      for (int64_t j = 0; j < ow; j++) {
        nn_pool_win ww = nn_pool_window(a, 1, j, w);
        float mx = -INFINITY, sum = 0;
        for (int64_t r = wh.lo; r < wh.hi; r++)
          for (int64_t c = ww.lo; c < ww.hi; c++) {
            float v = in[r * w + c];
            mx = v > mx ? v : mx;
            sum += v;
          }
        out[i * ow + j] =
            is_max ? mx : sum / (float)nn_pool_divisor(a, &wh, &ww);
      }
    }
  }
  return DLP_OK;
}

int nn_maxpool2d(dlp_err *e, const nn_pool2d_attr *a, const nn_tensor *x,
                 nn_tensor *y) {
  return pool2d(e, "maxpool2d", true, a, x, y);
}

int nn_avgpool2d(dlp_err *e, const nn_pool2d_attr *a, const nn_tensor *x,
                 nn_tensor *y) {
  return pool2d(e, "avgpool2d", false, a, x, y);
}

int nn_global_pool_out_shape(dlp_err *e, const nn_tensor *x, nn_shape *out) {
  char sx[128];
  if (x->ndim < 3)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "global pool: input has shape %s, needs (N, C, d, ...)",
                       nn_shape_str(x->ndim, x->dims, sx, sizeof sx));
  for (int d = 2; d < x->ndim; d++)
    if (x->dims[d] < 1)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "global pool: input %s has an empty spatial dim",
                         nn_shape_str(x->ndim, x->dims, sx, sizeof sx));
  *out = (nn_shape){x->ndim, {x->dims[0], x->dims[1], 1, 1, 1, 1}};
  return DLP_OK;
}

static int global_pool(dlp_err *e, const char *op, bool is_max,
                       const nn_tensor *x, nn_tensor *y) {
  nn_shape s;
  if (!x || !x->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: no input tensor", op);
  int rc = nn_global_pool_out_shape(e, x, &s);
  if (rc == DLP_OK) rc = nn_check_out(e, op, y, &s);
  if (rc != DLP_OK) return rc;
  int64_t planes = x->dims[0] * x->dims[1];
  int64_t inner = nn_tensor_numel(x) / (planes ? planes : 1);
  for (int64_t p = 0; p < planes; p++) {
    const float *in = x->data + p * inner;
    float mx = -INFINITY;
    double sum = 0; /* many terms: accumulate in double */
    for (int64_t i = 0; i < inner; i++) {
      mx = in[i] > mx ? in[i] : mx;
      sum += in[i];
    }
    y->data[p] = is_max ? mx : (float)(sum / (double)inner);
  }
  return DLP_OK;
}

int nn_global_avgpool(dlp_err *e, const nn_tensor *x, nn_tensor *y) {
  return global_pool(e, "global_avgpool", false, x, y);
}

int nn_global_maxpool(dlp_err *e, const nn_tensor *x, nn_tensor *y) {
  return global_pool(e, "global_maxpool", true, x, y);
}
