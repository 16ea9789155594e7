/* ref_conv.c - reference 2-D convolution (NCHW input, OIHW weight, groups,
 * stride, dilation, asymmetric pads, fused activation) and the padding
 * helpers the importers use ('valid', Keras/TF 'same', ONNX SAME_*).
 *
 * Written by hand because this is the oracle the fast backends are checked
 * against: direct loops, readability first. The innermost loop runs along an
 * output row over a precomputed in-bounds range, so it has no branches and
 * the compiler can vectorise it; that keeps the oracle usable on real
 * models without im2col buffers. */
#include "nn.h"
#include "ref_util.h"

#include <limits.h>

bool nn_pad_auto(nn_auto_pad mode, int64_t in, int k, int s, int d, int *begin,
                 int *end) {
  *begin = *end = 0;
  if (in < 0 || k < 1 || s < 1 || d < 1) return false;
  if (mode == NN_AUTOPAD_VALID) return true;
  if (mode != NN_AUTOPAD_SAME_UPPER && mode != NN_AUTOPAD_SAME_LOWER)
    return false;
  int64_t out = (in + s - 1) / s; /* ceil(in / s) */
  int64_t total = (out - 1) * s + (int64_t)(k - 1) * d + 1 - in;
  if (total < 0) total = 0;
  if (total > INT_MAX) return false;
  int small = (int)(total / 2), big = (int)(total - total / 2);
  *begin = mode == NN_AUTOPAD_SAME_UPPER ? small : big;
  *end = mode == NN_AUTOPAD_SAME_UPPER ? big : small;
  return true;
}

bool nn_pad_same_tf(int64_t in, int k, int s, int d, int *begin, int *end) {
  return nn_pad_auto(NN_AUTOPAD_SAME_UPPER, in, k, s, d, begin, end);
}

void nn_conv2d_attr_init(nn_conv2d_attr *a) {
  *a = (nn_conv2d_attr){.stride = {1, 1},
                        .dilation = {1, 1},
                        .groups = 1,
                        .act = NN_ACT_NONE,
                        .alpha = 0.01f};
}

static int check_attr(dlp_err *e, const nn_conv2d_attr *a) {
  for (int i = 0; i < 2; i++)
    if (a->stride[i] < 1 || a->dilation[i] < 1)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "conv2d: stride (%d, %d) and dilation (%d, %d) must "
                         "be at least 1",
                         a->stride[0], a->stride[1], a->dilation[0],
                         a->dilation[1]);
  for (int i = 0; i < 4; i++)
    if (a->pads[i] < 0)
      return dlp_err_set(e, DLP_ERR_ARG, "conv2d: pad %d is negative (%d)", i,
                         a->pads[i]);
  if (a->groups < 1)
    return dlp_err_set(e, DLP_ERR_ARG, "conv2d: groups is %d", a->groups);
  if ((unsigned)a->act >= NN_ACT_COUNT)
    return dlp_err_set(e, DLP_ERR_ARG, "conv2d: unknown activation %d",
                       (int)a->act);
  return DLP_OK;
}

/* Output size of one spatial axis, or -1 when the kernel does not fit. */
static int64_t out_size(int64_t in, int p0, int p1, int64_t k, int s, int d) {
  int64_t ek = (k - 1) * d + 1, padded = in + p0 + p1;
  return padded < ek ? -1 : (padded - ek) / s + 1;
}

static int check_shapes(dlp_err *e, const nn_conv2d_attr *a, const nn_tensor *x,
                        const nn_tensor *w) {
  char sx[128], sw[128];
  if (x->ndim != 4)
    return dlp_err_set(e, DLP_ERR_ARG, "conv2d: input has shape %s, not NCHW",
                       nn_shape_str(x->ndim, x->dims, sx, sizeof sx));
  if (w->ndim != 4)
    return dlp_err_set(e, DLP_ERR_ARG, "conv2d: weight has shape %s, not OIHW",
                       nn_shape_str(w->ndim, w->dims, sw, sizeof sw));
  int64_t c = x->dims[1], o = w->dims[0], expect = w->dims[1] * a->groups;
  if (c != expect)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "conv2d: input has %lld channels but the weight "
                       "expects %lld (groups %d)",
                       (long long)c, (long long)expect, a->groups);
  if (o % a->groups != 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "conv2d: %lld output channels do not split into %d "
                       "groups",
                       (long long)o, a->groups);
  if (w->dims[2] < 1 || w->dims[3] < 1 || c < 1)
    return dlp_err_set(e, DLP_ERR_ARG, "conv2d: empty weight %s",
                       nn_shape_str(4, w->dims, sw, sizeof sw));
  return DLP_OK;
}

int nn_conv2d_out_shape(dlp_err *e, const nn_conv2d_attr *a, const nn_tensor *x,
                        const nn_tensor *w, nn_shape *out) {
  int rc = check_attr(e, a);
  if (rc == DLP_OK) rc = check_shapes(e, a, x, w);
  if (rc != DLP_OK) return rc;
  int64_t oh = out_size(x->dims[2], a->pads[0], a->pads[2], w->dims[2],
                        a->stride[0], a->dilation[0]);
  int64_t ow = out_size(x->dims[3], a->pads[1], a->pads[3], w->dims[3],
                        a->stride[1], a->dilation[1]);
  if (oh < 0 || ow < 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "conv2d: the %lldx%lld kernel (dilation %d, %d) is "
                       "larger than the padded %lldx%lld input",
                       (long long)w->dims[2], (long long)w->dims[3],
                       a->dilation[0], a->dilation[1],
                       (long long)(x->dims[2] + a->pads[0] + a->pads[2]),
                       (long long)(x->dims[3] + a->pads[1] + a->pads[3]));
  *out = (nn_shape){4, {x->dims[0], w->dims[0], oh, ow, 1, 1}};
  if (nn_shape_numel(4, out->dims) < 0)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE, "conv2d: the output is too large");
  return DLP_OK;
}

/* Sizes of one convolution, gathered so the loops read plainly. */
typedef struct conv_dims {
  int64_t h, w, kh, kw, oh, ow;
} conv_dims;

void nn_conv_valid_cols(int64_t off, int s, int64_t w, int64_t ow_n,
                        int64_t *first, int64_t *last) {
  *first = off >= 0 ? 0 : (-off + s - 1) / s;
  *last = off > w - 1 ? 0 : (w - 1 - off) / s + 1;
  if (*last > ow_n) *last = ow_n;
  if (*first > *last) *first = *last;
}

/* y += conv(x, k): one input channel (h x w) into one output plane, with
 * one kernel slice (kh x kw). */
static void conv_plane(const nn_conv2d_attr *a, const conv_dims *d,
                       const float *x, const float *k, float *y) {
  int sh = a->stride[0], sw = a->stride[1];
  for (int64_t i = 0; i < d->kh; i++)
    for (int64_t j = 0; j < d->kw; j++) {
      float wv = k[i * d->kw + j];
      int64_t off = j * a->dilation[1] - a->pads[1], c0, c1;
      nn_conv_valid_cols(off, sw, d->w, d->ow, &c0, &c1);
      for (int64_t oh = 0; oh < d->oh; oh++) {
        int64_t ih = oh * sh - a->pads[0] + i * a->dilation[0];
        if (ih < 0 || ih >= d->h) continue;
        const float *row = x + ih * d->w;
        float *out = y + oh * d->ow;
        for (int64_t ow = c0; ow < c1; ow++)
          out[ow] += wv * row[ow * sw + off];
      }
    }
}

int nn_conv2d(dlp_err *e, const nn_conv2d_attr *a, const nn_tensor *x,
              const nn_tensor *w, const nn_tensor *bias, nn_tensor *y) {
  nn_shape s;
  if (!x || !x->data || !w || !w->data)
    return dlp_err_set(e, DLP_ERR_ARG, "conv2d: input or weight is missing");
  int rc = nn_conv2d_out_shape(e, a, x, w, &s);
  if (rc == DLP_OK) rc = nn_check_out(e, "conv2d", y, &s);
  if (rc != DLP_OK) return rc;
  int64_t n = x->dims[0], c = x->dims[1], o = w->dims[0];
  if (bias && (!bias->data || nn_tensor_numel(bias) != o))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "conv2d: bias has %lld values but there are %lld output "
                       "channels",
                       (long long)nn_tensor_numel(bias), (long long)o);
  conv_dims d = {x->dims[2], x->dims[3], w->dims[2],
                 w->dims[3], s.dims[2],  s.dims[3]};
  int64_t cg = c / a->groups, og = o / a->groups; /* per group */
  int64_t plane = d.oh * d.ow, in_plane = d.h * d.w, ksize = d.kh * d.kw;
  for (int64_t b = 0; b < n; b++)
    for (int64_t oc = 0; oc < o; oc++) {
      float *out = y->data + (b * o + oc) * plane;
      for (int64_t p = 0; p < plane; p++)
        out[p] = bias ? bias->data[oc] : 0.0f;
      int64_t g = oc / og;
      for (int64_t ic = 0; ic < cg; ic++)
        conv_plane(a, &d, x->data + (b * c + g * cg + ic) * in_plane,
                   w->data + (oc * cg + ic) * ksize, out);
      for (int64_t p = 0; p < plane; p++)
        out[p] = nn_act_scalar(a->act, a->alpha, out[p]);
    }
  return DLP_OK;
}
