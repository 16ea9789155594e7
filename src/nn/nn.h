/* nn.h - internal interface of the nn layer: the tensor type and the plain C
 * reference kernels (the readable definition of every op, and the oracle the
 * fast backends are tested against).
 *
 * The flow, in the manner of ggml: define, plan, compute. Shape inference is
 * separate from compute, so a planner can size every buffer before any data
 * exists; a tensor whose data is NULL serves as a shape-only description.
 *
 *     dlp_err e = {0};
 *     nn_conv2d_attr a;
 *     nn_conv2d_attr_init(&a);                    // stride 1, no pads, ...
 *     a.stride[0] = a.stride[1] = 2;
 *     nn_pad_same_tf(x->dims[2], 3, 2, 1, &a.pads[0], &a.pads[2]);
 *     nn_pad_same_tf(x->dims[3], 3, 2, 1, &a.pads[1], &a.pads[3]);
 *     a.act = NN_ACT_RELU;                         // fused activation
 *     nn_shape s;                                  // plan
 *     nn_tensor *y = NULL;
 *     if (nn_conv2d_out_shape(&e, &a, x, w, &s) != DLP_OK ||
 *         nn_tensor_new(&e, s.ndim, s.dims, &y) != DLP_OK ||
 *         nn_conv2d(&e, &a, x, w, bias, y) != DLP_OK)   // compute
 *       ... e.msg says what is wrong, e.g. "conv2d: input has 3 channels but
 *           the weight expects 4 (groups 1)"
 *     nn_tensor_free(y);
 *
 * Conventions:
 *  - float32 only; tensors are contiguous row-major, 4-D activations NCHW,
 *    conv weights OIHW (O, I/groups, KH, KW).
 *  - Every op validates its shapes and attributes and returns DLP_OK or a
 *    status with a message in *e (which may be NULL) beginning with the op's
 *    name. The output tensor must already have the shape the op's
 *    *_out_shape function gives; the op checks it and never allocates it.
 *  - Unless an op says otherwise, its output must not overlap its inputs.
 *    Elementwise ops (activations, clip, add, mul, batchnorm) may run in
 *    place (y == x).
 *  - Tensors hold at most NN_MAX_NUMEL elements, so every index fits in an
 *    int64_t and in a size_t without further checks inside the kernels.
 *  - Dropout is the identity at inference; there is no op for it.
 */
#ifndef DLP_NN_H
#define DLP_NN_H

#include "core.h"

#include <stdbool.h>
#include <stdint.h>

#define NN_MAX_DIMS 6
#define NN_MAX_NUMEL ((int64_t)1 << 31)

/* ------------------------------------------------------------------------
 * Tensors (tensor.c)
 * ------------------------------------------------------------------------ */

typedef struct nn_shape {
  int ndim;
  int64_t dims[NN_MAX_DIMS];
} nn_shape;

typedef struct nn_tensor {
  int ndim;                  /* 0..NN_MAX_DIMS; 0 is a scalar (1 element) */
  int64_t dims[NN_MAX_DIMS]; /* each >= 0; unused entries are 1 */
  float *data;               /* numel floats, row-major */
  bool is_view;              /* data is borrowed: nn_tensor_free keeps it */
} nn_tensor;

/* A new zero-filled tensor that owns its data. Fails with DLP_ERR_ARG for a
 * bad rank or a negative dim, DLP_ERR_TOO_LARGE above NN_MAX_NUMEL
 * elements, DLP_ERR_NOMEM. *out is NULL on failure; free with
 * nn_tensor_free. */
int nn_tensor_new(dlp_err *e, int ndim, const int64_t *dims, nn_tensor **out);
/* A tensor header over a buffer the caller owns (numel floats, which must
 * outlive the view). Same checks as nn_tensor_new; data may be NULL for a
 * shape-only description. */
int nn_tensor_view(dlp_err *e, float *data, int ndim, const int64_t *dims,
                   nn_tensor **out);
void nn_tensor_free(nn_tensor *t);
int64_t nn_tensor_numel(const nn_tensor *t);
nn_shape nn_tensor_shape(const nn_tensor *t);
/* Number of elements of a shape, or -1 when the rank or a dim is invalid or
 * the count exceeds NN_MAX_NUMEL. */
int64_t nn_shape_numel(int ndim, const int64_t *dims);
/* "2x3x4" into buf (for messages); returns buf. */
const char *nn_shape_str(int ndim, const int64_t *dims, char *buf, size_t n);
/* Checks that t has exactly shape s; otherwise sets "<op>: output has shape
 * A but B is expected" and returns DLP_ERR_ARG. Also refuses NULL data. */
int nn_check_out(dlp_err *e, const char *op, const nn_tensor *t,
                 const nn_shape *s);

/* ------------------------------------------------------------------------
 * Activations and elementwise ops (ref_ops.c)
 * ------------------------------------------------------------------------ */

typedef enum nn_act {
  NN_ACT_NONE = 0,     /* identity */
  NN_ACT_RELU,         /* max(x, 0) */
  NN_ACT_RELU6,        /* min(max(x, 0), 6) */
  NN_ACT_LEAKY_RELU,   /* x < 0 ? alpha*x : x */
  NN_ACT_SIGMOID,      /* 1 / (1 + exp(-x)) */
  NN_ACT_TANH,         /* tanh(x) */
  NN_ACT_SWISH,        /* x * sigmoid(x) */
  NN_ACT_HARD_SIGMOID, /* Keras: clip(0.2x + 0.5, 0, 1) */
  NN_ACT_COUNT
} nn_act;

/* The activation named "relu", "relu6", "leaky_relu", "sigmoid", "tanh",
 * "swish", "hard_sigmoid" or "none"; -1 when unknown. */
int nn_act_from_name(const char *name);
const char *nn_act_name(nn_act act);
/* One activation applied to one value (alpha is used by leaky relu). */
float nn_act_scalar(nn_act act, float alpha, float x);
/* y = act(x) elementwise; y may be x. */
int nn_act_apply(dlp_err *e, nn_act act, float alpha, const nn_tensor *x,
                 nn_tensor *y);
/* y = min(max(x, lo), hi); lo <= hi required. y may be x. */
int nn_clip(dlp_err *e, float lo, float hi, const nn_tensor *x, nn_tensor *y);

/* Softmax over one axis (negative counts from the end), numerically stable
 * (the max along the axis is subtracted first). Same shape in and out. */
int nn_softmax(dlp_err *e, int axis, const nn_tensor *x, nn_tensor *y);

/* Numpy broadcasting of two shapes: right-aligned, each dim equal or 1. */
int nn_broadcast_shape(dlp_err *e, const nn_tensor *a, const nn_tensor *b,
                       nn_shape *out);
/* y = a + b, y = a * b with broadcasting; y may be a or b when it has the
 * same shape as that input. */
int nn_add(dlp_err *e, const nn_tensor *a, const nn_tensor *b, nn_tensor *y);
int nn_mul(dlp_err *e, const nn_tensor *a, const nn_tensor *b, nn_tensor *y);

/* Dense / fully connected over the last axis: x (..., in) -> y (..., out).
 * The weight is (in, out) as in Keras, or (out, in) with transb as in ONNX
 * Gemm(transB=1) and torch.nn.Linear. bias (out) may be NULL. */
typedef struct nn_dense_attr {
  bool transb; /* default false */
  nn_act act;  /* fused activation, default NN_ACT_NONE */
  float alpha; /* for NN_ACT_LEAKY_RELU, default 0.01 */
} nn_dense_attr;
void nn_dense_attr_init(nn_dense_attr *a);
int nn_dense_out_shape(dlp_err *e, const nn_dense_attr *a, const nn_tensor *x,
                       const nn_tensor *w, nn_shape *out);
int nn_dense(dlp_err *e, const nn_dense_attr *a, const nn_tensor *x,
             const nn_tensor *w, const nn_tensor *bias, nn_tensor *y);

/* Batch normalisation at inference over axis 1 of x (N, C, ...):
 * y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel; each of
 * gamma, beta, mean, var has C elements. eps > 0 (Keras default 1e-3, ONNX
 * and PyTorch 1e-5). y may be x. */
int nn_batchnorm(dlp_err *e, float eps, const nn_tensor *x,
                 const nn_tensor *gamma, const nn_tensor *beta,
                 const nn_tensor *mean, const nn_tensor *var, nn_tensor *y);

/* Concatenation of n tensors of equal rank along axis (negative from end);
 * all other dims must match. */
int nn_concat_out_shape(dlp_err *e, const nn_tensor *const *xs, int n, int axis,
                        nn_shape *out);
int nn_concat(dlp_err *e, const nn_tensor *const *xs, int n, int axis,
              nn_tensor *y);

/* ONNX Flatten: (d0 .. d{axis-1}) x (d{axis} ..) as a 2-D shape; axis in
 * [-ndim, ndim]. */
int nn_flatten_out_shape(dlp_err *e, const nn_tensor *x, int axis,
                         nn_shape *out);
/* ONNX Reshape (allowzero = 0): 0 copies the input's dim at that index,
 * one -1 is inferred from the element count. */
int nn_reshape_out_shape(dlp_err *e, const nn_tensor *x, const int64_t *shape,
                         int n, nn_shape *out);
/* Flatten and Reshape compute: copies the data when y does not share it
 * (a planner can instead make y a view of x and skip the call). y must have
 * x's element count. */
int nn_reshape(dlp_err *e, const nn_tensor *x, nn_tensor *y);

/* Pad: pads[] in ONNX order, the begins of every axis then the ends
 * (x1_begin, x2_begin, ..., x1_end, x2_end, ...), 2*ndim values, each >= 0.
 * REFLECT mirrors without repeating the edge (numpy 'reflect', requires
 * pad < dim); EDGE repeats the edge (requires dim >= 1 where padded). */
typedef enum nn_pad_mode {
  NN_PAD_CONSTANT = 0,
  NN_PAD_REFLECT,
  NN_PAD_EDGE
} nn_pad_mode;
typedef struct nn_pad_attr {
  int64_t pads[2 * NN_MAX_DIMS]; /* default all 0 */
  nn_pad_mode mode;              /* default NN_PAD_CONSTANT */
  float value;                   /* for NN_PAD_CONSTANT, default 0 */
} nn_pad_attr;
void nn_pad_attr_init(nn_pad_attr *a);
int nn_pad_out_shape(dlp_err *e, const nn_pad_attr *a, const nn_tensor *x,
                     nn_shape *out);
int nn_pad(dlp_err *e, const nn_pad_attr *a, const nn_tensor *x, nn_tensor *y);

/* ------------------------------------------------------------------------
 * Convolution (ref_conv.c)
 * ------------------------------------------------------------------------ */

/* Padding modes of the importers. VALID: no padding. SAME_UPPER: Keras/TF
 * 'same' and ONNX SAME_UPPER, the odd extra pixel at the end. SAME_LOWER:
 * ONNX SAME_LOWER, the extra pixel at the beginning. */
typedef enum nn_auto_pad {
  NN_AUTOPAD_VALID = 0,
  NN_AUTOPAD_SAME_UPPER,
  NN_AUTOPAD_SAME_LOWER
} nn_auto_pad;

/* Padding of one spatial axis of size `in` for kernel k, stride s and
 * dilation d: total = max((ceil(in/s) - 1)*s + (k - 1)*d + 1 - in, 0),
 * begin = total/2 (SAME_UPPER) or total - total/2 (SAME_LOWER), end the
 * rest. Returns false (and zeros) when in < 0 or k, s, d < 1. */
bool nn_pad_auto(nn_auto_pad mode, int64_t in, int k, int s, int d, int *begin,
                 int *end);
/* Keras/TF 'same': nn_pad_auto(NN_AUTOPAD_SAME_UPPER, ...). */
bool nn_pad_same_tf(int64_t in, int k, int s, int d, int *begin, int *end);

typedef struct nn_conv2d_attr {
  int stride[2];   /* h, w; default 1, 1 */
  int dilation[2]; /* h, w; default 1, 1 */
  int pads[4];     /* top, left, bottom, right; default 0 */
  int groups;      /* default 1; depthwise is groups == C */
  nn_act act;      /* fused activation, default NN_ACT_NONE */
  float alpha;     /* for NN_ACT_LEAKY_RELU, default 0.01 */
} nn_conv2d_attr;
void nn_conv2d_attr_init(nn_conv2d_attr *a);
/* x (N, C, H, W), w (O, C/groups, KH, KW) -> (N, O, OH, OW) with
 * OH = floor((H + top + bottom - ((KH - 1)*dh + 1)) / sh) + 1. */
int nn_conv2d_out_shape(dlp_err *e, const nn_conv2d_attr *a, const nn_tensor *x,
                        const nn_tensor *w, nn_shape *out);
/* bias (O) may be NULL. */
int nn_conv2d(dlp_err *e, const nn_conv2d_attr *a, const nn_tensor *x,
              const nn_tensor *w, const nn_tensor *bias, nn_tensor *y);

/* ------------------------------------------------------------------------
 * Pooling (ref_pool.c)
 * ------------------------------------------------------------------------ */

typedef struct nn_pool2d_attr {
  int kernel[2];          /* h, w; no default (must be set, >= 1) */
  int stride[2];          /* h, w; default 1, 1 */
  int pads[4];            /* top, left, bottom, right; default 0; < kernel */
  bool ceil_mode;         /* ONNX/PyTorch ceil_mode; default false */
  bool count_include_pad; /* average: divide by the whole window (PyTorch
                             default, ONNX count_include_pad=1) instead of
                             the valid elements only (TF/Keras 'same',
                             ONNX default); default false */
} nn_pool2d_attr;
void nn_pool2d_attr_init(nn_pool2d_attr *a);
/* x (N, C, H, W) -> (N, C, OH, OW) with OH = floor or ceil of
 * (H + top + bottom - KH) / sh, plus 1; with ceil_mode a last window that
 * would start in the bottom padding is dropped (PyTorch's rule). */
int nn_pool2d_out_shape(dlp_err *e, const nn_pool2d_attr *a, const nn_tensor *x,
                        nn_shape *out);
/* Max ignores padding. Average divides by the window clipped to the padded
 * input (count_include_pad) or to the input (otherwise). */
int nn_maxpool2d(dlp_err *e, const nn_pool2d_attr *a, const nn_tensor *x,
                 nn_tensor *y);
int nn_avgpool2d(dlp_err *e, const nn_pool2d_attr *a, const nn_tensor *x,
                 nn_tensor *y);
/* x (N, C, d2, ...) -> (N, C, 1, ...): mean or max over all dims after the
 * second (ONNX GlobalAveragePool / GlobalMaxPool). Needs ndim >= 3 and at
 * least one element per channel. */
int nn_global_pool_out_shape(dlp_err *e, const nn_tensor *x, nn_shape *out);
int nn_global_avgpool(dlp_err *e, const nn_tensor *x, nn_tensor *y);
int nn_global_maxpool(dlp_err *e, const nn_tensor *x, nn_tensor *y);

#endif /* DLP_NN_H */
