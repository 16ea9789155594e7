/* dnnl_ref.c - the oneDNN backend's fallback: one graph node run by the
 * reference kernels on plain float buffers (transpose, reflect/edge pad and
 * whatever oneDNN refuses). */
#include "dnnl_backend.h"
#include "transpose.h"

static int ref_global_pool(dlp_err *e, const nn_node *n, const nn_tensor *x,
                           nn_tensor *y) {
  nn_tensor y4 = *y; /* keepdims false: (N, C) is (N, C, 1, ...) in memory */
  if (y->ndim != x->ndim) {
    y4.ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++)
      y4.dims[d] = d < 2 ? x->dims[d] : 1;
  }
  y4.is_view = true;
  return n->op == NN_OP_GLOBAL_AVGPOOL ? nn_global_avgpool(e, x, &y4)
                                       : nn_global_maxpool(e, x, &y4);
}

int nn_dnnl_ref_node(dlp_err *e, const nn_node *n, const nn_tensor *const *ins,
                     nn_tensor *y) {
  const nn_node_attr *a = &n->attr;
  const nn_tensor *x = ins[0];
  switch (n->op) {
  case NN_OP_CONV2D:
    return nn_conv2d(e, &a->conv, x, ins[1], n->n_in > 2 ? ins[2] : NULL, y);
  case NN_OP_DENSE:
    return nn_dense(e, &a->dense, x, ins[1], n->n_in > 2 ? ins[2] : NULL, y);
  case NN_OP_BATCHNORM:
    return nn_batchnorm(e, a->eps, x, ins[1], ins[2], ins[3], ins[4], y);
  case NN_OP_ACT: return nn_act_apply(e, a->act, a->alpha, x, y);
  case NN_OP_CLIP: return nn_clip(e, a->clip_lo, a->clip_hi, x, y);
  case NN_OP_SOFTMAX: return nn_softmax(e, a->axis, x, y);
  case NN_OP_MAXPOOL: return nn_maxpool2d(e, &a->pool, x, y);
  case NN_OP_AVGPOOL: return nn_avgpool2d(e, &a->pool, x, y);
  case NN_OP_GLOBAL_AVGPOOL:
  case NN_OP_GLOBAL_MAXPOOL: return ref_global_pool(e, n, x, y);
  case NN_OP_ADD: return nn_add(e, x, ins[1], y);
  case NN_OP_MUL: return nn_mul(e, x, ins[1], y);
  case NN_OP_CONCAT: return nn_concat(e, ins, n->n_in, a->axis, y);
  case NN_OP_FLATTEN:
  case NN_OP_RESHAPE:
  case NN_OP_IDENTITY: return nn_reshape(e, x, y);
  case NN_OP_TRANSPOSE: return nn_transpose(e, x, a->perm, a->n_perm, y);
  case NN_OP_PAD: return nn_pad(e, &a->pad, x, y);
  default:
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED, "node '%s': op %d is unknown",
                       n->name ? n->name : "?", (int)n->op);
  }
}
