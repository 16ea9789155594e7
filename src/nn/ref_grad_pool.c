/* ref_grad_pool.c - reference backward kernels of 2-D max and average
 * pooling and of global pooling.
 *
 * Written by hand as the readable definition of the gradients. The window
 * rule is the forward kernel's (ref_pool.c, PyTorch's): max pooling sends
 * the gradient to the first maximum of the window clipped to the input,
 * average pooling spreads it over the window with the forward divisor. */
#include "grad.h"
#include "ref_util.h"

#include <math.h>
#include <string.h>

/* Checks dx (shape of x; the x of max pooling too) and dy against the
 * forward pool's output shape *s. */
static int pool_check(dlp_err *e, const char *op, const nn_pool2d_attr *a,
                      const nn_tensor *x_like, const nn_tensor *dy,
                      nn_shape *s) {
  dlp_err tmp = {0};
  if (!a || !x_like || !x_like->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: missing argument", op);
  if (nn_pool2d_out_shape(&tmp, a, x_like, s) != DLP_OK)
    return dlp_err_set(e, tmp.code, "%s: %s", op, tmp.msg);
  return nn_grad_check(e, op, "dy", dy, s);
}

/* Pools' shared loop: for every window of every plane, hands dy on to dx;
 * x is NULL for average pooling. */
static void pool_backward(const nn_pool2d_attr *a, const nn_tensor *x,
                          const nn_tensor *dy, nn_tensor *dx) {
  int64_t h = dx->dims[2], w = dx->dims[3], oh = dy->dims[2], ow = dy->dims[3];
  int64_t planes = dx->dims[0] * dx->dims[1];
  memset(dx->data, 0, (size_t)(planes * h * w) * sizeof(float));
  for (int64_t p = 0; p < planes; p++) {
    const float *in = x ? x->data + p * h * w : NULL;
    const float *g = dy->data + p * oh * ow;
    float *d = dx->data + p * h * w;
    for (int64_t i = 0; i < oh; i++) {
      nn_pool_win wh = nn_pool_window(a, 0, i, h);
      for (int64_t j = 0; j < ow; j++) {
        nn_pool_win ww = nn_pool_window(a, 1, j, w);
        float gv = g[i * ow + j];
        if (in) { /* the first maximum in row-major order */
          int64_t best = wh.lo * w + ww.lo;
          float mx = -INFINITY;
          for (int64_t r = wh.lo; r < wh.hi; r++)
            for (int64_t c = ww.lo; c < ww.hi; c++)
              if (in[r * w + c] > mx) {
                mx = in[r * w + c];
                best = r * w + c;
              }
          d[best] += gv;
          continue;
        }
        float share = gv / (float)nn_pool_divisor(a, &wh, &ww);
        for (int64_t r = wh.lo; r < wh.hi; r++)
          for (int64_t c = ww.lo; c < ww.hi; c++)
            d[r * w + c] += share;
      }
    }
  }
}

int nn_maxpool2d_backward(dlp_err *e, const nn_pool2d_attr *a,
                          const nn_tensor *x, const nn_tensor *dy,
                          nn_tensor *dx) {
  const char *op = "maxpool2d_backward";
  nn_shape s;
  int rc = pool_check(e, op, a, x, dy, &s);
  if (rc != DLP_OK) return rc;
  nn_shape sx = nn_tensor_shape(x);
  if ((rc = nn_grad_check(e, op, "dx", dx, &sx)) != DLP_OK) return rc;
  pool_backward(a, x, dy, dx);
  return DLP_OK;
}

int nn_avgpool2d_backward(dlp_err *e, const nn_pool2d_attr *a,
                          const nn_tensor *dy, nn_tensor *dx) {
  const char *op = "avgpool2d_backward";
  nn_shape s;
  if (!dx || !dx->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: dx is missing", op);
  int rc = pool_check(e, op, a, dx, dy, &s);
  if (rc != DLP_OK) return rc;
  pool_backward(a, NULL, dy, dx);
  return DLP_OK;
}

/* Checks dy against the global pool of x_like: (N, C, 1, ...) as the
 * forward pass gives, or (N, C) after a flatten. */
static int global_check(dlp_err *e, const char *op, const nn_tensor *x_like,
                        const nn_tensor *dy) {
  dlp_err tmp = {0};
  nn_shape s;
  if (!x_like || !x_like->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: missing argument", op);
  if (nn_global_pool_out_shape(&tmp, x_like, &s) != DLP_OK)
    return dlp_err_set(e, tmp.code, "%s: %s", op, tmp.msg);
  nn_shape s2 = {2, {s.dims[0], s.dims[1], 1, 1, 1, 1}};
  if (dy && dy->ndim == 2) return nn_grad_check(e, op, "dy", dy, &s2);
  return nn_grad_check(e, op, "dy", dy, &s);
}

int nn_global_avgpool_backward(dlp_err *e, const nn_tensor *dy, nn_tensor *dx) {
  const char *op = "global_avgpool_backward";
  int rc = global_check(e, op, dx, dy);
  if (rc != DLP_OK) return rc;
  int64_t planes = dx->dims[0] * dx->dims[1];
  int64_t inner = nn_tensor_numel(dx) / (planes ? planes : 1);
  for (int64_t p = 0; p < planes; p++) {
    float share = dy->data[p] / (float)inner;
    for (int64_t i = 0; i < inner; i++)
      dx->data[p * inner + i] = share;
  }
  return DLP_OK;
}

int nn_global_maxpool_backward(dlp_err *e, const nn_tensor *x,
                               const nn_tensor *dy, nn_tensor *dx) {
  const char *op = "global_maxpool_backward";
  int rc = global_check(e, op, x, dy);
  if (rc != DLP_OK) return rc;
  nn_shape sx = nn_tensor_shape(x);
  if ((rc = nn_grad_check(e, op, "dx", dx, &sx)) != DLP_OK) return rc;
  int64_t planes = x->dims[0] * x->dims[1];
  int64_t inner = nn_tensor_numel(x) / (planes ? planes : 1);
  memset(dx->data, 0, (size_t)(planes * inner) * sizeof(float));
  for (int64_t p = 0; p < planes; p++) {
    const float *in = x->data + p * inner;
    int64_t best = 0; /* the first maximum, as in the forward kernel */
    for (int64_t i = 1; i < inner; i++)
      if (in[i] > in[best]) best = i;
    dx->data[p * inner + best] = dy->data[p];
  }
  return DLP_OK;
}
