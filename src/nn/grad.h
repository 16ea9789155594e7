/* grad.h - backward (gradient) kernels of the reference backend, and the
 * training-time forms of the ops whose behaviour differs from inference
 * (batch norm with batch statistics, dropout). The readable definition of
 * every gradient, and the oracle a fast backend's is tested against.
 *
 *     // forward:  y = conv2d(x, w, b)         (a.act must be NN_ACT_NONE)
 *     // backward: given dy = dL/dy
 *     nn_conv2d_backward_data(&e, &a, w, dy, dx);        // dL/dx
 *     nn_conv2d_backward_weights(&e, &a, x, dy, dw, db); // dL/dw, dL/db
 *
 * Conventions (beyond nn.h's):
 *  - Gradient outputs are OVERWRITTEN, never accumulated; a caller that
 *    needs a sum (a value read by two nodes) adds them itself.
 *  - Every gradient tensor has the shape of the value it is the gradient
 *    of, checked like an op's output (nn_check_out).
 *  - Optional outputs (db, dx of an input that needs no gradient) may be
 *    NULL; the kernel then skips that work.
 *  - Fused activations are not part of these kernels: an op's attr.act must
 *    be NN_ACT_NONE (train on graphs that were not nn_graph_optimize'd, or
 *    apply nn_act_backward first).
 */
#ifndef DLP_NN_GRAD_H
#define DLP_NN_GRAD_H

#include "nn.h"

/* Checks that t (named `what` in the message) exists with data and has
 * exactly shape s: "<op>: <what> has shape A but B is expected". Shared by
 * the backward kernels, whose inputs and outputs are all checked so. */
int nn_grad_check(dlp_err *e, const char *op, const char *what,
                  const nn_tensor *t, const nn_shape *s);

/* dx = dy * act'(x). Uses x (the activation's input) and, where cheaper,
 * y = act(x) (may be NULL: recomputed). dx may be dy. */
int nn_act_backward(dlp_err *e, nn_act act, float alpha, const nn_tensor *x,
                    const nn_tensor *y, const nn_tensor *dy, nn_tensor *dx);
/* dx = dy where lo < x < hi, else 0 (PyTorch's hardtanh/relu6 rule: the
 * gradient is 0 at the bounds). dx may be dy. */
int nn_clip_backward(dlp_err *e, float lo, float hi, const nn_tensor *x,
                     const nn_tensor *dy, nn_tensor *dx);

/* Convolution (any stride, dilation, padding, groups incl. depthwise).
 * backward_data: dx (shape of x) from w and dy. backward_weights: dw (shape
 * of w) and db (O values, may be NULL) from x and dy. */
int nn_conv2d_backward_data(dlp_err *e, const nn_conv2d_attr *a,
                            const nn_tensor *w, const nn_tensor *dy,
                            nn_tensor *dx);
int nn_conv2d_backward_weights(dlp_err *e, const nn_conv2d_attr *a,
                               const nn_tensor *x, const nn_tensor *dy,
                               nn_tensor *dw, nn_tensor *db);
/* The same on `threads` threads (dlp_parallel_for; the plain forms use
 * one). Each input plane of dx, and each output channel of dw, is summed
 * by one thread in a fixed order: results do not depend on threads. */
int nn_conv2d_backward_data_mt(dlp_err *e, const nn_conv2d_attr *a,
                               const nn_tensor *w, const nn_tensor *dy,
                               nn_tensor *dx, int threads);
int nn_conv2d_backward_weights_mt(dlp_err *e, const nn_conv2d_attr *a,
                                  const nn_tensor *x, const nn_tensor *dy,
                                  nn_tensor *dw, nn_tensor *db, int threads);

/* Dense over the last axis (weight (in, out), or (out, in) with transb).
 * dx, dw, db may each be NULL. */
int nn_dense_backward(dlp_err *e, const nn_dense_attr *a, const nn_tensor *x,
                      const nn_tensor *w, const nn_tensor *dy, nn_tensor *dx,
                      nn_tensor *dw, nn_tensor *db);

/* Batch norm in training mode over axis 1 of x (N, C, ...): normalises with
 * the batch's mean and biased variance, writes y, saves mean and 1/sqrt(var
 * + eps) per channel (C floats each) for the backward pass, and updates the
 * running statistics as PyTorch does: running = (1 - momentum) * running +
 * momentum * batch (running_var with the UNBIASED batch variance).
 * running_mean/var may be NULL (not updated). momentum in [0, 1]. */
int nn_batchnorm_train(dlp_err *e, float eps, float momentum,
                       const nn_tensor *x, const nn_tensor *gamma,
                       const nn_tensor *beta, nn_tensor *running_mean,
                       nn_tensor *running_var, nn_tensor *y, float *save_mean,
                       float *save_invstd);
/* Gradients of nn_batchnorm_train: dx (may be NULL), dgamma and dbeta (C
 * each, may be NULL). */
int nn_batchnorm_backward(dlp_err *e, const nn_tensor *x,
                          const nn_tensor *gamma, const float *save_mean,
                          const float *save_invstd, const nn_tensor *dy,
                          nn_tensor *dx, nn_tensor *dgamma,
                          nn_tensor *dbeta);

/* Pooling. Max: the gradient goes to the first maximum of each window (row-
 * major order within the window, PyTorch's choice). Average: spread evenly
 * with the same divisor as the forward pass. */
int nn_maxpool2d_backward(dlp_err *e, const nn_pool2d_attr *a,
                          const nn_tensor *x, const nn_tensor *dy,
                          nn_tensor *dx);
int nn_avgpool2d_backward(dlp_err *e, const nn_pool2d_attr *a,
                          const nn_tensor *dy, nn_tensor *dx);
/* dy (N, C, 1, ...) or (N, C) -> dx (N, C, d2, ...). */
int nn_global_avgpool_backward(dlp_err *e, const nn_tensor *dy,
                               nn_tensor *dx);
int nn_global_maxpool_backward(dlp_err *e, const nn_tensor *x,
                               const nn_tensor *dy, nn_tensor *dx);

/* Broadcasting elementwise ops: da/db are dy summed over the broadcast
 * axes (shapes of a and b). mul needs a and b. Either output may be NULL. */
int nn_add_backward(dlp_err *e, const nn_tensor *dy, nn_tensor *da,
                    nn_tensor *db);
int nn_mul_backward(dlp_err *e, const nn_tensor *a, const nn_tensor *b,
                    const nn_tensor *dy, nn_tensor *da, nn_tensor *db);
/* Splits dy along axis into dxs[0..n) (at most one entry may be NULL: its
 * size along axis is what the others leave). */
int nn_concat_backward(dlp_err *e, const nn_tensor *dy, int axis,
                       nn_tensor *const *dxs, int n);
/* Constant-mode pad: dx is dy's interior. */
int nn_pad_backward(dlp_err *e, const nn_pad_attr *a, const nn_tensor *dy,
                    nn_tensor *dx);
/* Softmax over axis: dx = y * (dy - sum(dy * y)) with y the softmax output. */
int nn_softmax_backward(dlp_err *e, int axis, const nn_tensor *y,
                        const nn_tensor *dy, nn_tensor *dx);

/* Softmax cross-entropy on logits (N, K) with integer labels (N, each in
 * [0, K)), the mean over the batch weighted by w (N, may be NULL = 1;
 * divided by sum w), with label smoothing s in [0, 1) (PyTorch's
 * CrossEntropyLoss(label_smoothing=s)). Writes *loss and, when dlogits is
 * not NULL, its gradient (N, K). Stable for any logit magnitude. */
int nn_softmax_xent(dlp_err *e, const nn_tensor *logits, const int32_t *labels,
                    const float *w, float smoothing, double *loss,
                    nn_tensor *dlogits);

/* Inverted dropout: keeps each element with probability 1 - rate and scales
 * it by 1 / (1 - rate); mask (numel bytes) records the kept ones for the
 * backward pass. rate in [0, 1). y may be x. */
int nn_dropout_train(dlp_err *e, float rate, dlp_rng *rng, const nn_tensor *x,
                     nn_tensor *y, uint8_t *mask);
int nn_dropout_backward(dlp_err *e, float rate, const uint8_t *mask,
                        const nn_tensor *dy, nn_tensor *dx);

#endif /* DLP_NN_GRAD_H */
