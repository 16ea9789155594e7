/* ref_grad_conv.c - reference backward kernels of 2-D convolution: the
 * gradient with respect to the input (data) and to the weights and bias.
 *
 * Written by hand as the readable definition of both gradients, fast enough
 * to train a small network: the loops mirror the forward kernel's
 * (ref_conv.c), with the innermost loop along an output row over a
 * precomputed in-bounds range so it vectorises, no im2col buffers. The
 * work is split into independent pieces (one input plane, or one output
 * channel's weights) that each sum in a fixed order, so the result does
 * not depend on the thread count. */
#include "grad.h"
#include "ref_util.h"

#include <stdlib.h>
#include <string.h>

/* The forward shape of conv(x_like, w_like) into *s, checking the attr and
 * that dy has that shape; forward errors are reported under op's name. */
static int conv_check(dlp_err *e, const char *op, const nn_conv2d_attr *a,
                      const nn_tensor *x_like, const nn_tensor *w_like,
                      const nn_tensor *dy, nn_shape *s) {
  dlp_err tmp = {0};
  if (!a || !x_like || !w_like)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: missing argument", op);
  if (a->act != NN_ACT_NONE)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: fused activation %s is not part of the kernel", op,
                       nn_act_name(a->act));
  if (nn_conv2d_out_shape(&tmp, a, x_like, w_like, s) != DLP_OK)
    return dlp_err_set(e, tmp.code, "%s: %s", op, tmp.msg);
  return nn_grad_check(e, op, "dy", dy, s);
}

/* Sizes of one convolution, gathered so the loops read plainly. */
typedef struct conv_dims {
  int64_t n, c, o, h, w, kh, kw, oh, ow, cg, og;
} conv_dims;

/* A 1x1 kernel with stride 1 and no padding reads each pixel once, in
 * order: such a convolution is the same on the plane flattened to one row,
 * which spares the loops over short rows (the late, small layers). */
static bool is_pointwise(const nn_conv2d_attr *a, const nn_tensor *w_like) {
  return w_like->dims[2] == 1 && w_like->dims[3] == 1 && a->stride[0] == 1 &&
         a->stride[1] == 1 && !a->pads[0] && !a->pads[1] && !a->pads[2] &&
         !a->pads[3];
}

static conv_dims dims_of(const nn_conv2d_attr *a, const nn_tensor *x_like,
                         const nn_tensor *w_like, const nn_shape *ys) {
  conv_dims d = {x_like->dims[0],
                 x_like->dims[1],
                 w_like->dims[0],
                 x_like->dims[2],
                 x_like->dims[3],
                 w_like->dims[2],
                 w_like->dims[3],
                 ys->dims[2],
                 ys->dims[3],
                 x_like->dims[1] / a->groups,
                 w_like->dims[0] / a->groups};
  if (is_pointwise(a, w_like)) {
    d.w = d.ow = d.h * d.w;
    d.h = d.oh = 1;
  }
  return d;
}

/* ------------------------------------------------------------------------
 * Gradient with respect to the input
 * ------------------------------------------------------------------------ */

/* sum a[i] b[i] in eight interleaved partial sums (vectorisable, and a
 * fixed order). */
static float dot(const float *a, const float *b, int64_t n) {
  float s[8] = {0}, tail = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      s[k] += a[i + k] * b[i + k];
  for (; i < n; i++)
    tail += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) +
         tail;
}

typedef struct data_job {
  const nn_conv2d_attr *a;
  conv_dims d;
  const float *w, *dy;
  float *dx;
  float *wt, *dyt; /* small pointwise only: w as (c, og), dy as (n, p, o) */
} data_job;

/* Pointwise layers late in a network have tiny planes (3x3), where one axpy
 * per channel pair is mostly loop overhead; there dx = W^T dy is taken as
 * dot products along the output channels, of transposed copies. */
#define SMALL_PLANE 64

/* dx_plane += the transposed convolution of one dy plane with one kernel
 * slice: every output pixel hands wv * dy back to the pixels it read. */
static void scatter_plane(const nn_conv2d_attr *a, const conv_dims *d,
                          const float *k, const float *dy, float *dx) {
  int sh = a->stride[0], sw = a->stride[1];
  for (int64_t i = 0; i < d->kh; i++)
    for (int64_t j = 0; j < d->kw; j++) {
      float wv = k[i * d->kw + j];
      int64_t off = j * a->dilation[1] - a->pads[1], c0, c1;
      nn_conv_valid_cols(off, sw, d->w, d->ow, &c0, &c1);
      for (int64_t oh = 0; oh < d->oh; oh++) {
        int64_t ih = oh * sh - a->pads[0] + i * a->dilation[0];
        if (ih < 0 || ih >= d->h) continue;
        float *restrict row = dx + ih * d->w;
        const float *restrict g = dy + oh * d->ow;
        if (sw == 1) /* the common case, kept apart so it vectorises */
          for (int64_t ow = c0; ow < c1; ow++)
            row[ow + off] += wv * g[ow];
        else
          for (int64_t ow = c0; ow < c1; ow++)
            row[ow * sw + off] += wv * g[ow];
      }
    }
}

/* One input plane (batch b, channel ic) of dx: the sum over the output
 * channels of its group, in channel order. */
static void data_task(size_t t, void *user, int worker) {
  (void)worker;
  const data_job *j = user;
  const conv_dims *d = &j->d;
  int64_t b = (int64_t)t / d->c, ic = (int64_t)t % d->c;
  int64_t g = ic / d->cg, icg = ic % d->cg, ksize = d->kh * d->kw;
  float *dx = j->dx + (int64_t)t * d->h * d->w;
  memset(dx, 0, (size_t)(d->h * d->w) * sizeof *dx);
  for (int64_t oc = g * d->og; oc < (g + 1) * d->og; oc++)
    scatter_plane(j->a, d, j->w + (oc * d->cg + icg) * ksize,
                  j->dy + (b * d->o + oc) * d->oh * d->ow, dx);
}

/* One input plane (b, ic) of a small pointwise convolution. */
static void pointwise_data_task(size_t t, void *user, int worker) {
  (void)worker;
  const data_job *j = user;
  const conv_dims *d = &j->d;
  int64_t b = (int64_t)t / d->c, ic = (int64_t)t % d->c, g = ic / d->cg;
  int64_t plane = d->ow;
  for (int64_t p = 0; p < plane; p++)
    j->dx[(int64_t)t * plane + p] = dot(
        j->wt + ic * d->og, j->dyt + (b * plane + p) * d->o + g * d->og, d->og);
}

/* Fills j->wt and j->dyt; false when out of memory. */
static bool transpose_pointwise(data_job *j) {
  const conv_dims *d = &j->d;
  int64_t plane = d->ow;
  j->wt = dlp_malloc_array((size_t)(d->c * d->og) + 1, sizeof(float));
  j->dyt = dlp_malloc_array((size_t)(d->n * plane * d->o) + 1, sizeof(float));
  if (!j->wt || !j->dyt) return false;
  for (int64_t ic = 0; ic < d->c; ic++)
    for (int64_t k = 0; k < d->og; k++)
      j->wt[ic * d->og + k] =
          j->w[((ic / d->cg) * d->og + k) * d->cg + ic % d->cg];
  for (int64_t b = 0; b < d->n; b++)
    for (int64_t oc = 0; oc < d->o; oc++)
      for (int64_t p = 0; p < plane; p++)
        j->dyt[(b * plane + p) * d->o + oc] =
            j->dy[(b * d->o + oc) * plane + p];
  return true;
}

int nn_conv2d_backward_data_mt(dlp_err *e, const nn_conv2d_attr *a,
                               const nn_tensor *w, const nn_tensor *dy,
                               nn_tensor *dx, int threads) {
  const char *op = "conv2d_backward_data";
  nn_shape s;
  if (!w || !w->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: weight is missing", op);
  if (!dx || !dx->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: dx is missing", op);
  int rc = conv_check(e, op, a, dx, w, dy, &s);
  if (rc != DLP_OK) return rc;
  data_job j = {a,   dims_of(a, dx, w, &s), w->data, dy->data, dx->data, NULL,
                NULL};
  bool small = is_pointwise(a, w) && j.d.ow < SMALL_PLANE;
  if (small && !transpose_pointwise(&j))
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "%s: no memory for a copy of dy", op);
  else
    dlp_parallel_for((size_t)(j.d.n * j.d.c), threads,
                     small ? pointwise_data_task : data_task, &j, NULL, NULL);
  free(j.wt);
  free(j.dyt);
  return rc;
}

int nn_conv2d_backward_data(dlp_err *e, const nn_conv2d_attr *a,
                            const nn_tensor *w, const nn_tensor *dy,
                            nn_tensor *dx) {
  return nn_conv2d_backward_data_mt(e, a, w, dy, dx, 1);
}

/* ------------------------------------------------------------------------
 * Gradient with respect to the weights and bias
 * ------------------------------------------------------------------------ */

typedef struct weights_job {
  const nn_conv2d_attr *a;
  conv_dims d;
  const float *x, *dy;
  float *dw, *db;
  float *scratch; /* per worker: kh * kw * ow floats */
  bool pointwise;
} weights_job;

/* acc[tap][ow] += dy * x over the rows of one (x plane, dy plane) pair:
 * elementwise along the row so it vectorises; summed up by the caller. */
static void correlate_plane(const nn_conv2d_attr *a, const conv_dims *d,
                            const float *x, const float *dy, float *acc) {
  int sh = a->stride[0], sw = a->stride[1];
  for (int64_t i = 0; i < d->kh; i++)
    for (int64_t j = 0; j < d->kw; j++) {
      float *restrict s = acc + (i * d->kw + j) * d->ow;
      int64_t off = j * a->dilation[1] - a->pads[1], c0, c1;
      nn_conv_valid_cols(off, sw, d->w, d->ow, &c0, &c1);
      for (int64_t oh = 0; oh < d->oh; oh++) {
        int64_t ih = oh * sh - a->pads[0] + i * a->dilation[0];
        if (ih < 0 || ih >= d->h) continue;
        const float *restrict row = x + ih * d->w;
        const float *restrict g = dy + oh * d->ow;
        if (sw == 1) /* the common case, kept apart so it vectorises */
          for (int64_t ow = c0; ow < c1; ow++)
            s[ow] += g[ow] * row[ow + off];
        else
          for (int64_t ow = c0; ow < c1; ow++)
            s[ow] += g[ow] * row[ow * sw + off];
      }
    }
}

/* A pointwise weight is one dot product of two planes per image. */
static void pointwise_weights(const weights_job *j, int64_t oc) {
  const conv_dims *d = &j->d;
  int64_t g = oc / d->og, plane = d->ow;
  for (int64_t icg = 0; icg < d->cg; icg++) {
    double sum = 0;
    for (int64_t b = 0; b < d->n; b++)
      sum += dot(j->dy + (b * d->o + oc) * plane,
                 j->x + (b * d->c + g * d->cg + icg) * plane, plane);
    j->dw[oc * d->cg + icg] = (float)sum;
  }
}

/* One output channel oc: its weights for every input channel of its group
 * (summed over the batch in order) and its bias. */
static void weights_task(size_t t, void *user, int worker) {
  const weights_job *j = user;
  const conv_dims *d = &j->d;
  int64_t oc = (int64_t)t, g = oc / d->og, ksize = d->kh * d->kw;
  int64_t plane = d->oh * d->ow, in_plane = d->h * d->w;
  float *acc = j->scratch + (int64_t)worker * ksize * d->ow;
  if (j->pointwise) pointwise_weights(j, oc);
  for (int64_t icg = 0; icg < d->cg && !j->pointwise; icg++) {
    memset(acc, 0, (size_t)(ksize * d->ow) * sizeof *acc);
    for (int64_t b = 0; b < d->n; b++)
      correlate_plane(j->a, d, j->x + (b * d->c + g * d->cg + icg) * in_plane,
                      j->dy + (b * d->o + oc) * plane, acc);
    for (int64_t k = 0; k < ksize; k++) {
      double sum = 0;
      for (int64_t ow = 0; ow < d->ow; ow++)
        sum += acc[k * d->ow + ow];
      j->dw[(oc * d->cg + icg) * ksize + k] = (float)sum;
    }
  }
  if (!j->db) return;
  double sum = 0;
  for (int64_t b = 0; b < d->n; b++)
    for (int64_t p = 0; p < plane; p++)
      sum += j->dy[(b * d->o + oc) * plane + p];
  j->db[oc] = (float)sum;
}

int nn_conv2d_backward_weights_mt(dlp_err *e, const nn_conv2d_attr *a,
                                  const nn_tensor *x, const nn_tensor *dy,
                                  nn_tensor *dw, nn_tensor *db, int threads) {
  const char *op = "conv2d_backward_weights";
  nn_shape s;
  if (!x || !x->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: x is missing", op);
  if (!dw || !dw->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: dw is missing", op);
  int rc = conv_check(e, op, a, x, dw, dy, &s);
  if (rc != DLP_OK) return rc;
  if (db && (!db->data || nn_tensor_numel(db) != dw->dims[0]))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: db has %lld values but there are %lld output "
                       "channels",
                       op, (long long)nn_tensor_numel(db),
                       (long long)dw->dims[0]);
  weights_job j = {
      a,        dims_of(a, x, dw, &s), x->data, dy->data,
      dw->data, db ? db->data : NULL,  NULL,    is_pointwise(a, dw)};
  if (threads < 1) threads = 1;
  if ((int64_t)threads > j.d.o) threads = j.d.o > 0 ? (int)j.d.o : 1;
  size_t per = (size_t)(j.d.kh * j.d.kw * j.d.ow);
  j.scratch =
      dlp_malloc_array((size_t)threads * (per ? per : 1), sizeof(float));
  if (!j.scratch)
    return dlp_err_set(e, DLP_ERR_NOMEM, "%s: no memory for %d x %zu floats",
                       op, threads, per);
  dlp_parallel_for((size_t)j.d.o, threads, weights_task, &j, NULL, NULL);
  free(j.scratch);
  return DLP_OK;
}

int nn_conv2d_backward_weights(dlp_err *e, const nn_conv2d_attr *a,
                               const nn_tensor *x, const nn_tensor *dy,
                               nn_tensor *dw, nn_tensor *db) {
  return nn_conv2d_backward_weights_mt(e, a, x, dy, dw, db, 1);
}
