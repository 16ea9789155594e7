/* ref_ops.c - reference kernels of the nn layer's non-convolution ops:
 * activations, clip, softmax, broadcasting add/mul, dense, batchnorm,
 * concat, flatten/reshape and pad.
 *
 * Written by hand because these kernels ARE the definition of each op that
 * the fast backends (oneDNN) are tested against: plain loops, readability
 * first, speed second. Shapes are checked before any data is touched. */
#include "nn.h"
#include "ref_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static int check_in(dlp_err *e, const char *op, const char *what,
                    const nn_tensor *t) {
  if (!t || !t->data || nn_tensor_numel(t) < 0)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: %s is missing or invalid", op,
                       what);
  return DLP_OK;
}

int nn_axis_split(dlp_err *e, const char *op, const nn_tensor *t, int axis,
                  int *ax, int64_t *outer, int64_t *inner) {
  *ax = nn_norm_axis(axis, t->ndim);
  if (*ax < 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s: axis %d is out of range for rank %d", op, axis,
                       t->ndim);
  *outer = nn_dims_prod(t->dims, 0, *ax);
  *inner = nn_dims_prod(t->dims, *ax + 1, t->ndim);
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Activations
 * ------------------------------------------------------------------------ */

static const char *const act_names[NN_ACT_COUNT] = {
    "none",    "relu", "relu6", "leaky_relu",
    "sigmoid", "tanh", "swish", "hard_sigmoid"};

int nn_act_from_name(const char *name) {
  for (int i = 0; name && i < NN_ACT_COUNT; i++)
    if (strcmp(name, act_names[i]) == 0) return i;
  return -1;
}

const char *nn_act_name(nn_act act) {
  return (unsigned)act < NN_ACT_COUNT ? act_names[act] : "unknown";
}

float nn_act_scalar(nn_act act, float alpha, float x) {
  switch (act) {
  case NN_ACT_RELU:
    return x > 0 ? x : 0.0f;
  case NN_ACT_RELU6:
    return x < 0 ? 0.0f : (x > 6 ? 6.0f : x);
  case NN_ACT_LEAKY_RELU:
    return x < 0 ? alpha * x : x;
  case NN_ACT_SIGMOID:
    return nn_sigmoid(x);
  case NN_ACT_TANH:
    return tanhf(x);
  case NN_ACT_SWISH:
    return x * nn_sigmoid(x);
  case NN_ACT_HARD_SIGMOID: {
    float v = 0.2f * x + 0.5f;
    return v < 0 ? 0.0f : (v > 1 ? 1.0f : v);
  }
  default:
    return x;
  }
}

/* Checks that y has x's shape, for the elementwise ops. */
static int same_shape_out(dlp_err *e, const char *op, const nn_tensor *x,
                          nn_tensor *y) {
  int rc = check_in(e, op, "input", x);
  if (rc != DLP_OK) return rc;
  nn_shape s = nn_tensor_shape(x);
  return nn_check_out(e, op, y, &s);
}

int nn_act_apply(dlp_err *e, nn_act act, float alpha, const nn_tensor *x,
                 nn_tensor *y) {
  if ((unsigned)act >= NN_ACT_COUNT)
    return dlp_err_set(e, DLP_ERR_ARG, "activation: unknown kind %d", (int)act);
  int rc = same_shape_out(e, nn_act_name(act), x, y);
  if (rc != DLP_OK) return rc;
  int64_t n = nn_tensor_numel(x);
  for (int64_t i = 0; i < n; i++)
    y->data[i] = nn_act_scalar(act, alpha, x->data[i]);
  return DLP_OK;
}

int nn_clip(dlp_err *e, float lo, float hi, const nn_tensor *x, nn_tensor *y) {
  if (!(lo <= hi))
    return dlp_err_set(e, DLP_ERR_ARG, "clip: min %g is above max %g",
                       (double)lo, (double)hi);
  int rc = same_shape_out(e, "clip", x, y);
  if (rc != DLP_OK) return rc;
  int64_t n = nn_tensor_numel(x);
  for (int64_t i = 0; i < n; i++) {
    float v = x->data[i];
    y->data[i] = v < lo ? lo : (v > hi ? hi : v);
  }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Softmax
 * ------------------------------------------------------------------------ */

/* One softmax over n values spaced `step` apart. */
static void softmax_line(const float *x, float *y, int64_t n, int64_t step) {
  float mx = -INFINITY;
  for (int64_t k = 0; k < n; k++)
    if (x[k * step] > mx) mx = x[k * step];
  double sum = 0;
  for (int64_t k = 0; k < n; k++) {
    float z = expf(x[k * step] - mx);
    y[k * step] = z;
    sum += z;
  }
  for (int64_t k = 0; k < n; k++)
    y[k * step] = (float)(y[k * step] / sum);
}

int nn_softmax(dlp_err *e, int axis, const nn_tensor *x, nn_tensor *y) {
  int ax = 0, rc = same_shape_out(e, "softmax", x, y);
  int64_t outer = 0, inner = 0;
  if (rc == DLP_OK)
    rc = nn_axis_split(e, "softmax", x, axis, &ax, &outer, &inner);
  if (rc != DLP_OK) return rc;
  int64_t n = x->dims[ax];
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * n * inner + i;
      softmax_line(x->data + base, y->data + base, n, inner);
    }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Broadcasting add / mul
 * ------------------------------------------------------------------------ */

int nn_broadcast_shape(dlp_err *e, const nn_tensor *a, const nn_tensor *b,
                       nn_shape *out) {
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  out->ndim = nd;
  for (int i = 0; i < NN_MAX_DIMS; i++)
    out->dims[i] = 1;
  for (int i = 0; i < nd; i++) { /* i counts from the right */
    int ia = a->ndim - 1 - i, ib = b->ndim - 1 - i;
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      char sa[128], sb[128];
      return dlp_err_set(
          e, DLP_ERR_ARG,
          "broadcast: shapes %s and %s differ at dim %d from the end "
          "(%lld vs %lld) and neither is 1",
          nn_shape_str(a->ndim, a->dims, sa, sizeof sa),
          nn_shape_str(b->ndim, b->dims, sb, sizeof sb), i + 1, (long long)da,
          (long long)db);
    }
    out->dims[nd - 1 - i] = da == 1 ? db : da;
  }
  return DLP_OK;
}

void nn_bcast_strides(const nn_tensor *t, const nn_shape *s,
                      int64_t st[NN_MAX_DIMS]) {
  int64_t stride = 1;
  for (int i = s->ndim - 1; i >= 0; i--) {
    int it = t->ndim - (s->ndim - i);
    int64_t d = it >= 0 ? t->dims[it] : 1;
    st[i] = d == 1 ? 0 : stride;
    stride *= d;
  }
}

static int binary(dlp_err *e, const char *op, int is_mul, const nn_tensor *a,
                  const nn_tensor *b, nn_tensor *y) {
  nn_shape s;
  int rc = check_in(e, op, "first input", a);
  if (rc == DLP_OK) rc = check_in(e, op, "second input", b);
  if (rc == DLP_OK) rc = nn_broadcast_shape(e, a, b, &s);
  if (rc == DLP_OK) rc = nn_check_out(e, op, y, &s);
  if (rc != DLP_OK) return rc;
  int64_t sa[NN_MAX_DIMS] = {0}, sb[NN_MAX_DIMS] = {0};
  nn_bcast_strides(a, &s, sa);
  nn_bcast_strides(b, &s, sb);
  int64_t n = nn_tensor_numel(y), idx[NN_MAX_DIMS] = {0}, ia = 0, ib = 0;
  for (int64_t i = 0; i < n; i++) {
    float va = a->data[ia], vb = b->data[ib];
    y->data[i] = is_mul ? va * vb : va + vb;
    nn_bcast_next(&s, idx, sa, sb, &ia, &ib);
  }
  return DLP_OK;
}

int nn_add(dlp_err *e, const nn_tensor *a, const nn_tensor *b, nn_tensor *y) {
  return binary(e, "add", 0, a, b, y);
}

int nn_mul(dlp_err *e, const nn_tensor *a, const nn_tensor *b, nn_tensor *y) {
  return binary(e, "mul", 1, a, b, y);
}

/* ------------------------------------------------------------------------
 * Dense
 * ------------------------------------------------------------------------ */

void nn_dense_attr_init(nn_dense_attr *a) {
  a->transb = false;
  a->act = NN_ACT_NONE;
  a->alpha = 0.01f;
}

int nn_dense_out_shape(dlp_err *e, const nn_dense_attr *a, const nn_tensor *x,
                       const nn_tensor *w, nn_shape *out) {
  char sw[128];
  if (x->ndim < 1)
    return dlp_err_set(e, DLP_ERR_ARG, "dense: the input is a scalar");
  if (w->ndim != 2)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "dense: the weight has shape %s, not 2-D",
                       nn_shape_str(w->ndim, w->dims, sw, sizeof sw));
  int64_t in = x->dims[x->ndim - 1];
  int64_t w_in = a->transb ? w->dims[1] : w->dims[0];
  int64_t w_out = a->transb ? w->dims[0] : w->dims[1];
  if (in != w_in)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "dense: input has %lld features but the weight %s%s "
                       "expects %lld",
                       (long long)in, nn_shape_str(2, w->dims, sw, sizeof sw),
                       a->transb ? " (transposed)" : "", (long long)w_in);
  *out = nn_tensor_shape(x);
  out->dims[x->ndim - 1] = w_out;
  if (nn_shape_numel(out->ndim, out->dims) < 0)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE, "dense: the output is too large");
  return DLP_OK;
}

/* One output row: y = x W (+ bias). */
static void dense_row(const nn_dense_attr *a, const float *x, const float *w,
                      const float *bias, int64_t in, int64_t out, float *y) {
  for (int64_t o = 0; o < out; o++)
    y[o] = bias ? bias[o] : 0.0f;
  if (a->transb) { /* w is (out, in): a dot product per output */
    for (int64_t o = 0; o < out; o++) {
      float acc = 0;
      for (int64_t i = 0; i < in; i++)
        acc += x[i] * w[o * in + i];
      y[o] += acc;
    }
  } else { /* w is (in, out): the inner loop runs along a row of w */
    for (int64_t i = 0; i < in; i++)
      for (int64_t o = 0; o < out; o++)
        y[o] += x[i] * w[i * out + o];
  }
  for (int64_t o = 0; o < out; o++)
    y[o] = nn_act_scalar(a->act, a->alpha, y[o]);
}

int nn_dense(dlp_err *e, const nn_dense_attr *a, const nn_tensor *x,
             const nn_tensor *w, const nn_tensor *bias, nn_tensor *y) {
  nn_shape s;
  int rc = check_in(e, "dense", "input", x);
  if (rc == DLP_OK) rc = check_in(e, "dense", "weight", w);
  if (rc == DLP_OK && bias) rc = check_in(e, "dense", "bias", bias);
  if (rc == DLP_OK) rc = nn_dense_out_shape(e, a, x, w, &s);
  if (rc == DLP_OK) rc = nn_check_out(e, "dense", y, &s);
  if (rc != DLP_OK) return rc;
  if ((unsigned)a->act >= NN_ACT_COUNT)
    return dlp_err_set(e, DLP_ERR_ARG, "dense: unknown activation %d",
                       (int)a->act);
  int64_t in = x->dims[x->ndim - 1], out = s.dims[s.ndim - 1];
  if (bias && nn_tensor_numel(bias) != out)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "dense: bias has %lld values but there are %lld outputs",
                       (long long)nn_tensor_numel(bias), (long long)out);
  int64_t rows = nn_dims_prod(x->dims, 0, x->ndim - 1);
  for (int64_t r = 0; r < rows; r++)
    dense_row(a, x->data + r * in, w->data, bias ? bias->data : NULL, in, out,
              y->data + r * out);
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Batch normalisation (inference)
 * ------------------------------------------------------------------------ */

static int check_bn_param(dlp_err *e, const char *name, const nn_tensor *p,
                          int64_t c) {
  int rc = check_in(e, "batchnorm", name, p);
  if (rc != DLP_OK) return rc;
  if (nn_tensor_numel(p) != c)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "batchnorm: %s has %lld values but the input has %lld "
                       "channels",
                       name, (long long)nn_tensor_numel(p), (long long)c);
  return DLP_OK;
}

int nn_batchnorm(dlp_err *e, float eps, const nn_tensor *x,
                 const nn_tensor *gamma, const nn_tensor *beta,
                 const nn_tensor *mean, const nn_tensor *var, nn_tensor *y) {
  int rc = same_shape_out(e, "batchnorm", x, y);
  if (rc != DLP_OK) return rc;
  if (x->ndim < 2)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "batchnorm: input has rank %d, needs (N, C, ...)",
                       x->ndim);
  int64_t c = x->dims[1];
  if ((rc = check_bn_param(e, "gamma", gamma, c)) != DLP_OK ||
      (rc = check_bn_param(e, "beta", beta, c)) != DLP_OK ||
      (rc = check_bn_param(e, "mean", mean, c)) != DLP_OK ||
      (rc = check_bn_param(e, "var", var, c)) != DLP_OK)
    return rc;
  for (int64_t ch = 0; ch < c; ch++)
    if (!(var->data[ch] + eps > 0))
      return dlp_err_set(e, DLP_ERR_ARG,
                         "batchnorm: var + eps is not positive for channel "
                         "%lld (%g)",
                         (long long)ch, (double)(var->data[ch] + eps));
  int64_t n = x->dims[0], inner = nn_dims_prod(x->dims, 2, x->ndim);
  for (int64_t b = 0; b < n; b++)
    for (int64_t ch = 0; ch < c; ch++) {
      float g = gamma->data[ch], bt = beta->data[ch], m = mean->data[ch];
      float inv = 1.0f / sqrtf(var->data[ch] + eps);
      int64_t base = (b * c + ch) * inner;
      for (int64_t i = 0; i < inner; i++)
        y->data[base + i] = g * (x->data[base + i] - m) * inv + bt;
    }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Concat, flatten, reshape
 * ------------------------------------------------------------------------ */

int nn_concat_out_shape(dlp_err *e, const nn_tensor *const *xs, int n, int axis,
                        nn_shape *out) {
  if (n < 1 || !xs) return dlp_err_set(e, DLP_ERR_ARG, "concat: no inputs");
  const nn_tensor *x0 = xs[0];
  int ax = nn_norm_axis(axis, x0->ndim);
  if (ax < 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "concat: axis %d is out of range for rank %d", axis,
                       x0->ndim);
  *out = nn_tensor_shape(x0);
  out->dims[ax] = 0;
  for (int k = 0; k < n; k++) {
    const nn_tensor *x = xs[k];
    if (x->ndim != x0->ndim)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "concat: input %d has rank %d but input 0 has %d", k,
                         x->ndim, x0->ndim);
    for (int d = 0; d < x->ndim; d++)
      if (d != ax && x->dims[d] != x0->dims[d])
        return dlp_err_set(e, DLP_ERR_ARG,
                           "concat: input %d has %lld at dim %d but input 0 "
                           "has %lld (axis %d)",
                           k, (long long)x->dims[d], d, (long long)x0->dims[d],
                           ax);
    out->dims[ax] += x->dims[ax]; /* each <= 2^31, n small: no overflow */
  }
  if (nn_shape_numel(out->ndim, out->dims) < 0)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE, "concat: the output is too large");
  return DLP_OK;
}

int nn_concat(dlp_err *e, const nn_tensor *const *xs, int n, int axis,
              nn_tensor *y) {
  nn_shape s;
  for (int k = 0; xs && k < n; k++) {
    char what[32];
    snprintf(what, sizeof what, "input %d", k);
    int rc = check_in(e, "concat", what, xs[k]);
    if (rc != DLP_OK) return rc;
  }
  int rc = nn_concat_out_shape(e, xs, n, axis, &s);
  if (rc == DLP_OK) rc = nn_check_out(e, "concat", y, &s);
  if (rc != DLP_OK) return rc;
  int ax = nn_norm_axis(axis, s.ndim);
  int64_t outer = nn_dims_prod(s.dims, 0, ax),
          inner = nn_dims_prod(s.dims, ax + 1, s.ndim);
  float *dst = y->data;
  for (int64_t o = 0; o < outer; o++)
    for (int k = 0; k < n; k++) {
      int64_t len = xs[k]->dims[ax] * inner;
      memcpy(dst, xs[k]->data + o * len, (size_t)len * sizeof *dst);
      dst += len;
    }
  return DLP_OK;
}

int nn_flatten_out_shape(dlp_err *e, const nn_tensor *x, int axis,
                         nn_shape *out) {
  if (axis < -x->ndim || axis > x->ndim)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "flatten: axis %d is out of range for rank %d", axis,
                       x->ndim);
  int ax = axis < 0 ? axis + x->ndim : axis;
  *out = (nn_shape){2, {1, 1, 1, 1, 1, 1}};
  out->dims[0] = nn_dims_prod(x->dims, 0, ax);
  out->dims[1] = nn_dims_prod(x->dims, ax, x->ndim);
  return DLP_OK;
}

/* The dim reshape asks for at index i, before -1 is inferred. */
static int reshape_dim(dlp_err *e, const nn_tensor *x, const int64_t *shape,
                       int i, int64_t *d) {
  *d = shape[i];
  if (*d == 0) {
    if (i >= x->ndim)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "reshape: 0 at index %d copies a dim the rank-%d "
                         "input does not have",
                         i, x->ndim);
    *d = x->dims[i];
  } else if (*d < -1) {
    return dlp_err_set(e, DLP_ERR_ARG, "reshape: dim %d is %lld", i,
                       (long long)*d);
  }
  return DLP_OK;
}

int nn_reshape_out_shape(dlp_err *e, const nn_tensor *x, const int64_t *shape,
                         int n, nn_shape *out) {
  if (n < 0 || n > NN_MAX_DIMS || (n > 0 && !shape))
    return dlp_err_set(e, DLP_ERR_ARG, "reshape: rank %d is outside 0..%d", n,
                       NN_MAX_DIMS);
  *out = (nn_shape){n, {1, 1, 1, 1, 1, 1}};
  int infer = -1;
  int64_t known = 1, total = nn_tensor_numel(x);
  for (int i = 0; i < n; i++) {
    int rc = reshape_dim(e, x, shape, i, &out->dims[i]);
    if (rc != DLP_OK) return rc;
    if (out->dims[i] == -1) {
      if (infer >= 0)
        return dlp_err_set(e, DLP_ERR_ARG, "reshape: more than one -1");
      infer = i;
    } else if (out->dims[i] > 0 && known > NN_MAX_NUMEL / out->dims[i]) {
      return dlp_err_set(e, DLP_ERR_ARG, "reshape: the shape is too large");
    } else {
      known *= out->dims[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || total % known != 0)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "reshape: cannot infer -1 for %lld elements from the "
                         "other dims (product %lld)",
                         (long long)total, (long long)known);
    out->dims[infer] = total / known;
    known = total;
  }
  if (known != total)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "reshape: the input has %lld elements but the shape "
                       "holds %lld",
                       (long long)total, (long long)known);
  return DLP_OK;
}

int nn_reshape(dlp_err *e, const nn_tensor *x, nn_tensor *y) {
  int rc = check_in(e, "reshape", "input", x);
  if (rc == DLP_OK) rc = check_in(e, "reshape", "output", y);
  if (rc != DLP_OK) return rc;
  int64_t n = nn_tensor_numel(x);
  if (nn_tensor_numel(y) != n)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "reshape: the output has %lld elements, the input %lld",
                       (long long)nn_tensor_numel(y), (long long)n);
  if (y->data != x->data) memmove(y->data, x->data, (size_t)n * sizeof(float));
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Pad
 * ------------------------------------------------------------------------ */

void nn_pad_attr_init(nn_pad_attr *a) {
  memset(a->pads, 0, sizeof a->pads);
  a->mode = NN_PAD_CONSTANT;
  a->value = 0;
}

int nn_pad_out_shape(dlp_err *e, const nn_pad_attr *a, const nn_tensor *x,
                     nn_shape *out) {
  static const char *const modes[] = {"constant", "reflect", "edge"};
  if ((unsigned)a->mode > NN_PAD_EDGE)
    return dlp_err_set(e, DLP_ERR_ARG, "pad: unknown mode %d", (int)a->mode);
  *out = nn_tensor_shape(x);
  for (int d = 0; d < x->ndim; d++) {
    int64_t b = a->pads[d], en = a->pads[d + x->ndim], dim = x->dims[d];
    if (b < 0 || en < 0)
      return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                         "pad: negative pads (cropping) on axis %d", d);
    if (b > NN_MAX_NUMEL || en > NN_MAX_NUMEL)
      return dlp_err_set(e, DLP_ERR_TOO_LARGE,
                         "pad: pads on axis %d are too large", d);
    if (a->mode == NN_PAD_REFLECT && (b >= dim || en >= dim) && (b || en))
      return dlp_err_set(e, DLP_ERR_ARG,
                         "pad: reflect pads (%lld, %lld) on axis %d must be "
                         "smaller than its size %lld",
                         (long long)b, (long long)en, d, (long long)dim);
    if (a->mode != NN_PAD_CONSTANT && dim == 0 && (b || en))
      return dlp_err_set(e, DLP_ERR_ARG, "pad: %s padding of empty axis %d",
                         modes[a->mode], d);
    out->dims[d] = dim + b + en;
  }
  if (nn_shape_numel(out->ndim, out->dims) < 0)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE, "pad: the output is too large");
  return DLP_OK;
}

/* The input coordinate that feeds padded coordinate c (already shifted by
 * the begin pad) on an axis of size n, or -1 when it comes from the
 * constant. */
static int64_t pad_source(nn_pad_mode mode, int64_t c, int64_t n) {
  if (c >= 0 && c < n) return c;
  switch (mode) {
  case NN_PAD_REFLECT:
    return c < 0 ? -c : 2 * (n - 1) - c;
  case NN_PAD_EDGE:
    return c < 0 ? 0 : n - 1;
  default:
    return -1;
  }
}

int64_t nn_pad_source_index(const nn_pad_attr *a, const nn_tensor *x,
                            const int64_t idx[NN_MAX_DIMS]) {
  int64_t src = 0;
  for (int d = 0; d < x->ndim && src >= 0; d++) {
    int64_t c = pad_source(a->mode, idx[d] - a->pads[d], x->dims[d]);
    src = c < 0 ? -1 : src * x->dims[d] + c;
  }
  return src;
}

int nn_pad(dlp_err *e, const nn_pad_attr *a, const nn_tensor *x, nn_tensor *y) {
  nn_shape s;
  int rc = check_in(e, "pad", "input", x);
  if (rc == DLP_OK) rc = nn_pad_out_shape(e, a, x, &s);
  if (rc == DLP_OK) rc = nn_check_out(e, "pad", y, &s);
  if (rc != DLP_OK) return rc;
  int64_t n = nn_tensor_numel(y), idx[NN_MAX_DIMS] = {0};
  for (int64_t i = 0; i < n; i++) {
    int64_t src = nn_pad_source_index(a, x, idx);
    y->data[i] = src < 0 ? a->value : x->data[src];
    for (int d = s.ndim - 1; d >= 0; d--) { /* odometer over the output */
      if (++idx[d] < s.dims[d]) break;
      idx[d] = 0;
    }
  }
  return DLP_OK;
}
