/* ref_grad.c - reference backward kernels of the non-spatial ops
 * (activations, clip, dense, batch norm in training mode, broadcasting
 * add/mul, concat, pad, softmax, softmax cross-entropy, dropout).
 *
 * Written by hand because these loops are the definition of each gradient
 * that a fast backend is tested against, and what the training engine runs
 * when no such backend exists: plain loops, reductions in double where many
 * terms meet (batch statistics, broadcast sums, the loss). */
#include "grad.h"
#include "ref_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Shape checks shared by the kernels below
 * ------------------------------------------------------------------------ */

int nn_grad_check(dlp_err *e, const char *op, const char *what,
                  const nn_tensor *t, const nn_shape *s) {
  char a[128], b[128];
  if (!t || !t->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: %s is missing", op, what);
  bool same = t->ndim == s->ndim;
  for (int i = 0; same && i < s->ndim; i++)
    same = t->dims[i] == s->dims[i];
  if (same) return DLP_OK;
  return dlp_err_set(e, DLP_ERR_ARG, "%s: %s has shape %s but %s is expected",
                     op, what, nn_shape_str(t->ndim, t->dims, a, sizeof a),
                     nn_shape_str(s->ndim, s->dims, b, sizeof b));
}

static int check_present(dlp_err *e, const char *op, const char *what,
                         const nn_tensor *t) {
  if (!t || !t->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: %s is missing", op, what);
  return DLP_OK;
}

/* Checks that t (named what) is present and that dy and dx have its shape:
 * the elementwise backward kernels. */
static int check_like(dlp_err *e, const char *op, const char *what,
                      const nn_tensor *t, const nn_tensor *dy,
                      const nn_tensor *dx) {
  int rc = check_present(e, op, what, t);
  if (rc != DLP_OK) return rc;
  nn_shape s = nn_tensor_shape(t);
  if ((rc = nn_grad_check(e, op, "dy", dy, &s)) != DLP_OK) return rc;
  return nn_grad_check(e, op, "dx", dx, &s);
}

/* The forward op's shape check failed with a message in *tmp: report it
 * under the backward op's name. */
static int fwd_fail(dlp_err *e, const char *op, const dlp_err *tmp) {
  return dlp_err_set(e, tmp->code, "%s: %s", op, tmp->msg);
}

/* ------------------------------------------------------------------------
 * Activations and clip
 * ------------------------------------------------------------------------ */

/* d act(x) / dx; y is act(x) when has_y. The kinks follow PyTorch: relu and
 * relu6 have slope 0 at their corners, leaky relu slope alpha at 0. */
static float act_slope(nn_act act, float alpha, float x, float y, bool has_y) {
  switch (act) {
  case NN_ACT_RELU:
    return x > 0 ? 1.0f : 0.0f;
  case NN_ACT_RELU6:
    return x > 0 && x < 6 ? 1.0f : 0.0f;
  case NN_ACT_LEAKY_RELU:
    return x > 0 ? 1.0f : alpha;
  case NN_ACT_SIGMOID: {
    float s = has_y ? y : nn_sigmoid(x);
    return s * (1.0f - s);
  }
  case NN_ACT_TANH: {
    float t = has_y ? y : tanhf(x);
    return 1.0f - t * t;
  }
  case NN_ACT_SWISH: { /* (x s)' = s + x s (1 - s) */
    float s = nn_sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
  }
  case NN_ACT_HARD_SIGMOID: {
    float v = 0.2f * x + 0.5f;
    return v > 0 && v < 1 ? 0.2f : 0.0f;
  }
  default:
    return 1.0f;
  }
}

int nn_act_backward(dlp_err *e, nn_act act, float alpha, const nn_tensor *x,
                    const nn_tensor *y, const nn_tensor *dy, nn_tensor *dx) {
  const char *op = "act_backward";
  if ((unsigned)act >= NN_ACT_COUNT)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: unknown activation %d", op,
                       (int)act);
  int rc = check_present(e, op, "x", x);
  if (rc != DLP_OK) return rc;
  nn_shape s = nn_tensor_shape(x);
  if (y) rc = nn_grad_check(e, op, "y", y, &s);
  if (rc == DLP_OK) rc = nn_grad_check(e, op, "dy", dy, &s);
  if (rc == DLP_OK) rc = nn_grad_check(e, op, "dx", dx, &s);
  if (rc != DLP_OK) return rc;
  int64_t n = nn_tensor_numel(x);
  for (int64_t i = 0; i < n; i++) {
    float yv = y ? y->data[i] : 0.0f;
    dx->data[i] = dy->data[i] * act_slope(act, alpha, x->data[i], yv, y);
  }
  return DLP_OK;
}

int nn_clip_backward(dlp_err *e, float lo, float hi, const nn_tensor *x,
                     const nn_tensor *dy, nn_tensor *dx) {
  const char *op = "clip_backward";
  if (!(lo <= hi))
    return dlp_err_set(e, DLP_ERR_ARG, "%s: min %g is above max %g", op,
                       (double)lo, (double)hi);
  int rc = check_like(e, op, "x", x, dy, dx);
  if (rc != DLP_OK) return rc;
  int64_t n = nn_tensor_numel(x);
  for (int64_t i = 0; i < n; i++) {
    float v = x->data[i];
    dx->data[i] = v > lo && v < hi ? dy->data[i] : 0.0f;
  }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Dense
 * ------------------------------------------------------------------------ */

/* Checks every tensor of the dense backward pass against x and w. */
static int dense_check(dlp_err *e, const nn_dense_attr *a, const nn_tensor *x,
                       const nn_tensor *w, const nn_tensor *dy,
                       const nn_tensor *dx, const nn_tensor *dw,
                       const nn_tensor *db) {
  const char *op = "dense_backward";
  if (a->act != NN_ACT_NONE)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: fused activation %s is not part of the kernel", op,
                       nn_act_name(a->act));
  int rc = check_present(e, op, "x", x);
  if (rc == DLP_OK) rc = check_present(e, op, "weight", w);
  if (rc != DLP_OK) return rc;
  dlp_err tmp = {0};
  nn_shape s, sx = nn_tensor_shape(x), sw = nn_tensor_shape(w);
  if (nn_dense_out_shape(&tmp, a, x, w, &s) != DLP_OK)
    return fwd_fail(e, op, &tmp);
  nn_shape sb = {1, {s.dims[s.ndim - 1], 1, 1, 1, 1, 1}};
  rc = nn_grad_check(e, op, "dy", dy, &s);
  if (rc == DLP_OK && dx) rc = nn_grad_check(e, op, "dx", dx, &sx);
  if (rc == DLP_OK && dw) rc = nn_grad_check(e, op, "dw", dw, &sw);
  if (rc == DLP_OK && db) rc = nn_grad_check(e, op, "db", db, &sb);
  return rc;
}

int nn_dense_backward(dlp_err *e, const nn_dense_attr *a, const nn_tensor *x,
                      const nn_tensor *w, const nn_tensor *dy, nn_tensor *dx,
                      nn_tensor *dw, nn_tensor *db) {
  int rc = dense_check(e, a, x, w, dy, dx, dw, db);
  if (rc != DLP_OK) return rc;
  int64_t in = x->dims[x->ndim - 1], out = dy->dims[dy->ndim - 1];
  int64_t rows = nn_dims_prod(x->dims, 0, x->ndim - 1);
  const float *wd = w->data;
  if (dx) /* dx = dy W^T: rows of w are contiguous either way round */
    for (int64_t r = 0; r < rows; r++) {
      const float *g = dy->data + r * out;
      float *d = dx->data + r * in;
      for (int64_t i = 0; i < in; i++)
        d[i] = 0;
      if (a->transb) /* w (out, in) */
        for (int64_t o = 0; o < out; o++)
          for (int64_t i = 0; i < in; i++)
            d[i] += g[o] * wd[o * in + i];
      else /* w (in, out) */
        for (int64_t i = 0; i < in; i++) {
          float acc = 0;
          for (int64_t o = 0; o < out; o++)
            acc += g[o] * wd[i * out + o];
          d[i] = acc;
        }
    }
  if (dw) { /* dw = x^T dy (or its transpose), one rank-1 update per row */
    memset(dw->data, 0, (size_t)(in * out) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x->data + r * in, *g = dy->data + r * out;
      if (a->transb)
        for (int64_t o = 0; o < out; o++)
          for (int64_t i = 0; i < in; i++)
            dw->data[o * in + i] += g[o] * xr[i];
      else
        for (int64_t i = 0; i < in; i++)
          for (int64_t o = 0; o < out; o++)
            dw->data[i * out + o] += xr[i] * g[o];
    }
  }
  if (db)
    for (int64_t o = 0; o < out; o++) {
      double acc = 0;
      for (int64_t r = 0; r < rows; r++)
        acc += dy->data[r * out + o];
      db->data[o] = (float)acc;
    }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Batch normalisation, training mode
 * ------------------------------------------------------------------------ */

/* Checks a per-channel tensor (C values) of batch norm; NULL passes. */
static int check_channels(dlp_err *e, const char *op, const char *what,
                          const nn_tensor *t, int64_t c) {
  if (!t) return DLP_OK;
  if (!t->data)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: %s has no data", op, what);
  if (nn_tensor_numel(t) != c)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: %s has %lld values but the input has %lld "
                       "channels",
                       op, what, (long long)nn_tensor_numel(t), (long long)c);
  return DLP_OK;
}

/* x must be (N, C, ...) with at least two values per channel: one value has
 * no variance to normalise by (PyTorch refuses it too). */
static int bn_check_x(dlp_err *e, const char *op, const nn_tensor *x) {
  int rc = check_present(e, op, "x", x);
  if (rc != DLP_OK) return rc;
  if (x->ndim < 2)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: input has rank %d, needs (N, C, ...)", op, x->ndim);
  int64_t m = x->dims[0] * nn_dims_prod(x->dims, 2, x->ndim);
  if (m < 2)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: %lld value(s) per channel; training needs at "
                       "least 2",
                       op, (long long)m);
  return DLP_OK;
}

/* Mean and biased variance of channel ch over the batch, two-pass in
 * double. */
static void bn_stats(const nn_tensor *x, int64_t ch, double *mean,
                     double *var) {
  int64_t n = x->dims[0], c = x->dims[1],
          inner = nn_dims_prod(x->dims, 2, x->ndim);
  double sum = 0, sq = 0;
  for (int64_t b = 0; b < n; b++) {
    const float *p = x->data + (b * c + ch) * inner;
    for (int64_t i = 0; i < inner; i++)
      sum += p[i];
  }
  *mean = sum / (double)(n * inner);
  for (int64_t b = 0; b < n; b++) {
    const float *p = x->data + (b * c + ch) * inner;
    for (int64_t i = 0; i < inner; i++)
      sq += (p[i] - *mean) * (p[i] - *mean);
  }
  *var = sq / (double)(n * inner);
}

int nn_batchnorm_train(dlp_err *e, float eps, float momentum,
                       const nn_tensor *x, const nn_tensor *gamma,
                       const nn_tensor *beta, nn_tensor *running_mean,
                       nn_tensor *running_var, nn_tensor *y, float *save_mean,
                       float *save_invstd) {
  const char *op = "batchnorm_train";
  if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: eps %g must be > 0 and momentum %g in [0, 1]", op,
                       (double)eps, (double)momentum);
  int rc = bn_check_x(e, op, x);
  if (rc != DLP_OK) return rc;
  int64_t c = x->dims[1], inner = nn_dims_prod(x->dims, 2, x->ndim);
  int64_t n = x->dims[0], m = n * inner;
  nn_shape s = nn_tensor_shape(x);
  if ((rc = nn_grad_check(e, op, "y", y, &s)) != DLP_OK ||
      (rc = check_present(e, op, "gamma", gamma)) != DLP_OK ||
      (rc = check_present(e, op, "beta", beta)) != DLP_OK ||
      (rc = check_channels(e, op, "gamma", gamma, c)) != DLP_OK ||
      (rc = check_channels(e, op, "beta", beta, c)) != DLP_OK ||
      (rc = check_channels(e, op, "running_mean", running_mean, c)) != DLP_OK ||
      (rc = check_channels(e, op, "running_var", running_var, c)) != DLP_OK)
    return rc;
  if (!save_mean || !save_invstd)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: save_mean/save_invstd missing", op);
  for (int64_t ch = 0; ch < c; ch++) {
    double mean, var;
    bn_stats(x, ch, &mean, &var);
    float inv = (float)(1.0 / sqrt(var + eps)), mu = (float)mean;
    float g = gamma->data[ch] * inv, bt = beta->data[ch];
    for (int64_t b = 0; b < n; b++) { /* y may be x: stats are taken */
      int64_t base = (b * c + ch) * inner;
      for (int64_t i = 0; i < inner; i++)
        y->data[base + i] = (x->data[base + i] - mu) * g + bt;
    }
    save_mean[ch] = mu;
    save_invstd[ch] = inv;
    double mo = momentum;
    if (running_mean)
      running_mean->data[ch] =
          (float)((1 - mo) * running_mean->data[ch] + mo * mean);
    if (running_var) /* PyTorch keeps the unbiased variance */
      running_var->data[ch] = (float)((1 - mo) * running_var->data[ch] +
                                      mo * var * (double)m / (double)(m - 1));
  }
  return DLP_OK;
}

int nn_batchnorm_backward(dlp_err *e, const nn_tensor *x,
                          const nn_tensor *gamma, const float *save_mean,
                          const float *save_invstd, const nn_tensor *dy,
                          nn_tensor *dx, nn_tensor *dgamma, nn_tensor *dbeta) {
  const char *op = "batchnorm_backward";
  int rc = bn_check_x(e, op, x);
  if (rc != DLP_OK) return rc;
  int64_t c = x->dims[1], inner = nn_dims_prod(x->dims, 2, x->ndim),
          n = x->dims[0];
  nn_shape s = nn_tensor_shape(x);
  rc = nn_grad_check(e, op, "dy", dy, &s);
  if (rc == DLP_OK && dx) rc = nn_grad_check(e, op, "dx", dx, &s);
  if (rc == DLP_OK) rc = check_present(e, op, "gamma", gamma);
  if (rc == DLP_OK) rc = check_channels(e, op, "gamma", gamma, c);
  if (rc == DLP_OK) rc = check_channels(e, op, "dgamma", dgamma, c);
  if (rc == DLP_OK) rc = check_channels(e, op, "dbeta", dbeta, c);
  if (rc != DLP_OK) return rc;
  if (!save_mean || !save_invstd)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: save_mean/save_invstd missing", op);
  double m = (double)(n * inner);
  for (int64_t ch = 0; ch < c; ch++) {
    float mu = save_mean[ch], inv = save_invstd[ch];
    double sdy = 0, sdyxh = 0; /* sum dy, sum dy * xhat */
    for (int64_t b = 0; b < n; b++) {
      int64_t base = (b * c + ch) * inner;
      for (int64_t i = 0; i < inner; i++) {
        float g = dy->data[base + i];
        sdy += g;
        sdyxh += g * (x->data[base + i] - mu) * inv;
      }
    }
    if (dgamma) dgamma->data[ch] = (float)sdyxh;
    if (dbeta) dbeta->data[ch] = (float)sdy;
    if (!dx) continue;
    /* dx = gamma inv (dy - mean(dy) - xhat mean(dy xhat)); dx may be dy */
    float k = gamma->data[ch] * inv, mdy = (float)(sdy / m);
    float mdx = (float)(sdyxh / m);
    for (int64_t b = 0; b < n; b++) {
      int64_t base = (b * c + ch) * inner;
      for (int64_t i = 0; i < inner; i++) {
        float xh = (x->data[base + i] - mu) * inv;
        dx->data[base + i] = k * (dy->data[base + i] - mdy - xh * mdx);
      }
    }
  }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Broadcasting add / mul
 * ------------------------------------------------------------------------ */

/* Checks that t broadcasts to exactly dy's shape. */
static int check_bcast(dlp_err *e, const char *op, const char *what,
                       const nn_tensor *t, const nn_tensor *dy) {
  dlp_err tmp = {0};
  nn_shape s;
  char st[128], sy[128];
  if (nn_broadcast_shape(&tmp, t, dy, &s) != DLP_OK)
    return fwd_fail(e, op, &tmp);
  bool same = s.ndim == dy->ndim;
  for (int i = 0; same && i < s.ndim; i++)
    same = s.dims[i] == dy->dims[i];
  if (same) return DLP_OK;
  return dlp_err_set(e, DLP_ERR_ARG,
                     "%s: %s of shape %s does not broadcast "
                     "to dy's shape %s",
                     op, what, nn_shape_str(t->ndim, t->dims, st, sizeof st),
                     nn_shape_str(dy->ndim, dy->dims, sy, sizeof sy));
}

/* out = dy (times other, broadcast, when not NULL) summed over the axes out
 * is broadcast along; sums in double. */
static int reduce_bcast(dlp_err *e, const char *op, const nn_tensor *dy,
                        const nn_tensor *other, nn_tensor *out) {
  nn_shape s = nn_tensor_shape(dy);
  int64_t no = nn_tensor_numel(out), n = nn_tensor_numel(dy);
  double *acc = dlp_calloc_array(no ? (size_t)no : 1, sizeof *acc);
  if (!acc)
    return dlp_err_set(e, DLP_ERR_NOMEM, "%s: no memory for %lld sums", op,
                       (long long)no);
  int64_t so[NN_MAX_DIMS] = {0}, sb[NN_MAX_DIMS] = {0};
  nn_bcast_strides(out, &s, so);
  if (other) nn_bcast_strides(other, &s, sb);
  int64_t idx[NN_MAX_DIMS] = {0}, io = 0, ib = 0;
  for (int64_t i = 0; i < n; i++) {
    acc[io] += other ? (double)dy->data[i] * other->data[ib] : dy->data[i];
    nn_bcast_next(&s, idx, so, sb, &io, &ib);
  }
  for (int64_t i = 0; i < no; i++)
    out->data[i] = (float)acc[i];
  free(acc);
  return DLP_OK;
}

int nn_add_backward(dlp_err *e, const nn_tensor *dy, nn_tensor *da,
                    nn_tensor *db) {
  const char *op = "add_backward";
  int rc = check_present(e, op, "dy", dy);
  if (rc == DLP_OK && da) rc = check_present(e, op, "da", da);
  if (rc == DLP_OK && db) rc = check_present(e, op, "db", db);
  if (rc == DLP_OK && da) rc = check_bcast(e, op, "da", da, dy);
  if (rc == DLP_OK && db) rc = check_bcast(e, op, "db", db, dy);
  if (rc == DLP_OK && da) rc = reduce_bcast(e, op, dy, NULL, da);
  if (rc == DLP_OK && db) rc = reduce_bcast(e, op, dy, NULL, db);
  return rc;
}

int nn_mul_backward(dlp_err *e, const nn_tensor *a, const nn_tensor *b,
                    const nn_tensor *dy, nn_tensor *da, nn_tensor *db) {
  const char *op = "mul_backward";
  nn_shape s, sa, sb;
  dlp_err tmp = {0};
  int rc = check_present(e, op, "a", a);
  if (rc == DLP_OK) rc = check_present(e, op, "b", b);
  if (rc != DLP_OK) return rc;
  if (nn_broadcast_shape(&tmp, a, b, &s) != DLP_OK)
    return fwd_fail(e, op, &tmp);
  sa = nn_tensor_shape(a);
  sb = nn_tensor_shape(b);
  rc = nn_grad_check(e, op, "dy", dy, &s);
  if (rc == DLP_OK && da) rc = nn_grad_check(e, op, "da", da, &sa);
  if (rc == DLP_OK && db) rc = nn_grad_check(e, op, "db", db, &sb);
  if (rc == DLP_OK && da) rc = reduce_bcast(e, op, dy, b, da);
  if (rc == DLP_OK && db) rc = reduce_bcast(e, op, dy, a, db);
  return rc;
}

/* ------------------------------------------------------------------------
 * Concat, pad
 * ------------------------------------------------------------------------ */

/* Checks the pieces of dy: all dims but ax equal to dy's, sizes along ax
 * summing to dy's. At most one piece may be NULL: its size is the rest. */
static int concat_check(dlp_err *e, const nn_tensor *dy, int ax,
                        nn_tensor *const *dxs, int n, int64_t *null_len) {
  const char *op = "concat_backward";
  int64_t used = 0;
  int nulls = 0;
  for (int k = 0; k < n; k++) {
    const nn_tensor *t = dxs[k];
    if (!t) {
      nulls++;
      continue;
    }
    nn_shape s = nn_tensor_shape(dy);
    s.dims[ax] = t->ndim == dy->ndim ? t->dims[ax] : 0;
    char what[32];
    snprintf(what, sizeof what, "dx %d", k);
    int rc = nn_grad_check(e, op, what, t, &s);
    if (rc != DLP_OK) return rc;
    used += t->dims[ax];
  }
  if (nulls > 1)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: %d pieces are NULL, so their sizes are unknown "
                       "(at most one may be)",
                       op, nulls);
  *null_len = dy->dims[ax] - used;
  if (*null_len < 0 || (nulls == 0 && *null_len != 0))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: the pieces have %lld values along axis %d but dy "
                       "has %lld",
                       op, (long long)used, ax, (long long)dy->dims[ax]);
  return DLP_OK;
}

int nn_concat_backward(dlp_err *e, const nn_tensor *dy, int axis,
                       nn_tensor *const *dxs, int n) {
  const char *op = "concat_backward";
  int rc = check_present(e, op, "dy", dy);
  if (rc != DLP_OK) return rc;
  if (n < 1 || !dxs) return dlp_err_set(e, DLP_ERR_ARG, "%s: no pieces", op);
  int ax = 0;
  int64_t null_len = 0, outer = 0, inner = 0;
  rc = nn_axis_split(e, op, dy, axis, &ax, &outer, &inner);
  if (rc == DLP_OK) rc = concat_check(e, dy, ax, dxs, n, &null_len);
  if (rc != DLP_OK) return rc;
  const float *src = dy->data;
  for (int64_t o = 0; o < outer; o++)
    for (int k = 0; k < n; k++) {
      int64_t len = (dxs[k] ? dxs[k]->dims[ax] : null_len) * inner;
      if (dxs[k])
        memcpy(dxs[k]->data + o * len, src, (size_t)len * sizeof *src);
      src += len;
    }
  return DLP_OK;
}

/* Every output element hands its gradient to the input element it was
 * read from: the interior for constant mode, and also the mirrored or
 * repeated edge elements for reflect and edge mode. */
int nn_pad_backward(dlp_err *e, const nn_pad_attr *a, const nn_tensor *dy,
                    nn_tensor *dx) {
  const char *op = "pad_backward";
  dlp_err tmp = {0};
  nn_shape s;
  int rc = check_present(e, op, "dx", dx);
  if (rc != DLP_OK) return rc;
  if (nn_pad_out_shape(&tmp, a, dx, &s) != DLP_OK) return fwd_fail(e, op, &tmp);
  if ((rc = nn_grad_check(e, op, "dy", dy, &s)) != DLP_OK) return rc;
  int64_t n = nn_tensor_numel(dy), idx[NN_MAX_DIMS] = {0};
  memset(dx->data, 0, (size_t)nn_tensor_numel(dx) * sizeof(float));
  for (int64_t i = 0; i < n; i++) {
    int64_t src = nn_pad_source_index(a, dx, idx);
    if (src >= 0) dx->data[src] += dy->data[i];
    for (int d = s.ndim - 1; d >= 0; d--) { /* odometer over dy */
      if (++idx[d] < s.dims[d]) break;
      idx[d] = 0;
    }
  }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Softmax and the cross-entropy loss
 * ------------------------------------------------------------------------ */

int nn_softmax_backward(dlp_err *e, int axis, const nn_tensor *y,
                        const nn_tensor *dy, nn_tensor *dx) {
  const char *op = "softmax_backward";
  int ax = 0, rc = check_like(e, op, "y", y, dy, dx);
  int64_t outer = 0, inner = 0;
  if (rc == DLP_OK) rc = nn_axis_split(e, op, y, axis, &ax, &outer, &inner);
  if (rc != DLP_OK) return rc;
  int64_t n = y->dims[ax];
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * n * inner + i;
      const float *yl = y->data + base, *gl = dy->data + base;
      double dot = 0;
      for (int64_t k = 0; k < n; k++)
        dot += (double)yl[k * inner] * gl[k * inner];
      for (int64_t k = 0; k < n; k++) /* dx may be dy: read before write */
        dx->data[base + k * inner] =
            (float)(yl[k * inner] * (gl[k * inner] - dot));
    }
  return DLP_OK;
}

static int xent_check(dlp_err *e, const nn_tensor *logits,
                      const int32_t *labels, const float *w, float smoothing,
                      double *loss, double *wsum) {
  const char *op = "softmax_xent";
  char sl[128];
  int rc = check_present(e, op, "logits", logits);
  if (rc != DLP_OK) return rc;
  if (logits->ndim != 2 || logits->dims[0] < 1 || logits->dims[1] < 1)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: logits have shape %s, not (N >= 1, K >= 1)", op,
                       nn_shape_str(logits->ndim, logits->dims, sl, sizeof sl));
  if (!labels || !loss)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: labels or loss missing", op);
  if (!(smoothing >= 0 && smoothing < 1))
    return dlp_err_set(e, DLP_ERR_ARG, "%s: smoothing %g is not in [0, 1)", op,
                       (double)smoothing);
  int64_t n = logits->dims[0], k = logits->dims[1];
  *wsum = 0;
  for (int64_t i = 0; i < n; i++) {
    if (labels[i] < 0 || labels[i] >= k)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "%s: label %d of row %lld is not in [0, %lld)", op,
                         (int)labels[i], (long long)i, (long long)k);
    if (w && !(w[i] >= 0 && isfinite(w[i])))
      return dlp_err_set(e, DLP_ERR_ARG,
                         "%s: weight %g of row %lld is negative or not finite",
                         op, (double)w[i], (long long)i);
    *wsum += w ? w[i] : 1.0;
  }
  if (!(*wsum > 0))
    return dlp_err_set(e, DLP_ERR_ARG, "%s: the weights sum to 0", op);
  return DLP_OK;
}

/* loss_i = -sum_k q_k log p_k with q = (1 - s) onehot(label) + s / K, and
 * d loss_i / d z = p - q; the batch loss is sum w_i loss_i / sum w_i. */
int nn_softmax_xent(dlp_err *e, const nn_tensor *logits, const int32_t *labels,
                    const float *w, float smoothing, double *loss,
                    nn_tensor *dlogits) {
  double wsum = 0;
  int rc = xent_check(e, logits, labels, w, smoothing, loss, &wsum);
  if (rc != DLP_OK) return rc;
  nn_shape s = nn_tensor_shape(logits);
  if (dlogits &&
      (rc = nn_grad_check(e, "softmax_xent", "dlogits", dlogits, &s)) != DLP_OK)
    return rc;
  int64_t n = s.dims[0], k = s.dims[1];
  double total = 0, sk = smoothing / (double)k;
  for (int64_t i = 0; i < n; i++) {
    const float *z = logits->data + i * k;
    double mx = z[0], se = 0, sumlp = 0;
    for (int64_t j = 1; j < k; j++)
      mx = z[j] > mx ? z[j] : mx;
    for (int64_t j = 0; j < k; j++)
      se += exp(z[j] - mx);
    double lse = mx + log(se); /* log p_j = z_j - lse */
    for (int64_t j = 0; j < k; j++)
      sumlp += z[j] - lse;
    double li = -(1 - smoothing) * (z[labels[i]] - lse) - sk * sumlp;
    double wi = (w ? w[i] : 1.0) / wsum;
    total += wi * li;
    if (!dlogits) continue;
    float *d = dlogits->data + i * k; /* may alias logits only if unread */
    for (int64_t j = 0; j < k; j++) {
      double q = sk + (j == labels[i] ? 1 - smoothing : 0);
      d[j] = (float)(wi * (exp(z[j] - lse) - q));
    }
  }
  *loss = total;
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Dropout
 * ------------------------------------------------------------------------ */

static int dropout_check(dlp_err *e, const char *op, float rate,
                         const void *mask, const nn_tensor *in,
                         const nn_tensor *out) {
  if (!(rate >= 0 && rate < 1))
    return dlp_err_set(e, DLP_ERR_ARG, "%s: rate %g is not in [0, 1)", op,
                       (double)rate);
  if (!mask) return dlp_err_set(e, DLP_ERR_ARG, "%s: mask missing", op);
  int rc = check_present(e, op, "input", in);
  if (rc != DLP_OK) return rc;
  nn_shape s = nn_tensor_shape(in);
  return nn_grad_check(e, op, "output", out, &s);
}

int nn_dropout_train(dlp_err *e, float rate, dlp_rng *rng, const nn_tensor *x,
                     nn_tensor *y, uint8_t *mask) {
  int rc = dropout_check(e, "dropout_train", rate, mask, x, y);
  if (rc != DLP_OK) return rc;
  if (!rng) return dlp_err_set(e, DLP_ERR_ARG, "dropout_train: no rng");
  float scale = 1.0f / (1.0f - rate);
  int64_t n = nn_tensor_numel(x);
  for (int64_t i = 0; i < n; i++) {
    mask[i] = dlp_rng_uniform(rng) >= rate;
    y->data[i] = mask[i] ? x->data[i] * scale : 0.0f;
  }
  return DLP_OK;
}

int nn_dropout_backward(dlp_err *e, float rate, const uint8_t *mask,
                        const nn_tensor *dy, nn_tensor *dx) {
  int rc = dropout_check(e, "dropout_backward", rate, mask, dy, dx);
  if (rc != DLP_OK) return rc;
  float scale = 1.0f / (1.0f - rate);
  int64_t n = nn_tensor_numel(dy);
  for (int64_t i = 0; i < n; i++)
    dx->data[i] = mask[i] ? dy->data[i] * scale : 0.0f;
  return DLP_OK;
}
