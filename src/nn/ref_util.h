/* ref_util.h - index helpers shared by the forward and backward kernels. */
#ifndef DLP_NN_REF_UTIL_H
#define DLP_NN_REF_UTIL_H

#include "nn.h"

#include <math.h>

/* Maps a possibly negative axis into [0, ndim); -1 when out of range. */
static inline int nn_norm_axis(int axis, int ndim) {
  if (axis < -ndim || axis >= ndim) return -1;
  return axis < 0 ? axis + ndim : axis;
}

/* The product of dims[from..to). */
static inline int64_t nn_dims_prod(const int64_t *dims, int from, int to) {
  int64_t n = 1;
  for (int i = from; i < to; i++)
    n *= dims[i];
  return n;
}

/* Stable for large |x|: exp() only ever sees a non-positive argument.
 * Inline because the activation loops call it once per element. */
static inline float nn_sigmoid(float x) {
  if (x >= 0) return 1.0f / (1.0f + expf(-x));
  float z = expf(x);
  return z / (1.0f + z);
}

/* Normalises axis for t into *ax and splits t's dims around it: *outer
 * values before it, *inner after it. Fails with "<op>: axis A is out of
 * range for rank R" (ref_ops.c). */
int nn_axis_split(dlp_err *e, const char *op, const nn_tensor *t, int axis,
                  int *ax, int64_t *outer, int64_t *inner);

/* Element strides of t seen through the broadcast shape s: 0 along every
 * dim that t repeats (ref_ops.c). */
void nn_bcast_strides(const nn_tensor *t, const nn_shape *s,
                      int64_t st[NN_MAX_DIMS]);

/* Advances idx, an index into shape s, to the next element in row-major
 * order, moving the offsets *ia and *ib by the strides sa and sb (from
 * nn_bcast_strides). Inline: the broadcast loops call it per element. */
static inline void nn_bcast_next(const nn_shape *s, int64_t idx[NN_MAX_DIMS],
                                 const int64_t sa[NN_MAX_DIMS],
                                 const int64_t sb[NN_MAX_DIMS], int64_t *ia,
                                 int64_t *ib) {
  for (int d = s->ndim - 1; d >= 0; d--) {
    *ia += sa[d];
    *ib += sb[d];
    if (++idx[d] < s->dims[d]) break;
    *ia -= sa[d] * s->dims[d];
    *ib -= sb[d] * s->dims[d];
    idx[d] = 0;
  }
}

/* The flat index in x of the element that nn_pad copies to output index idx
 * (mirrored or repeated for reflect and edge mode), or -1 when that output
 * is the constant (ref_ops.c). */
int64_t nn_pad_source_index(const nn_pad_attr *a, const nn_tensor *x,
                            const int64_t idx[NN_MAX_DIMS]);

/* One pooling window on one axis: [lo, hi) clipped to the input, and the
 * length of the window clipped to the padded input instead (for
 * count_include_pad). The attr checks guarantee lo < hi. */
typedef struct nn_pool_win {
  int64_t lo, hi, padded_len;
} nn_pool_win;

/* The window of output index o on axis (0 height, 1 width) of an input of
 * size in (ref_pool.c). */
nn_pool_win nn_pool_window(const nn_pool2d_attr *a, int axis, int64_t o,
                           int64_t in);
/* How many values average pooling divides the window (wh x ww) by. */
int64_t nn_pool_divisor(const nn_pool2d_attr *a, const nn_pool_win *wh,
                        const nn_pool_win *ww);

/* The output columns [*first, *last) whose input column ow*s + off lies in
 * [0, w), for ow in [0, ow_n); an empty range has *first == *last
 * (ref_conv.c). */
void nn_conv_valid_cols(int64_t off, int s, int64_t w, int64_t ow_n,
                        int64_t *first, int64_t *last);

#endif
