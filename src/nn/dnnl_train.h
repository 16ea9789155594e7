/* dnnl_train.h - the trainer's fast kernels (nn_train_cfg.fast). First,
 * oneDNN convolution for training: forward_training,
 * backward-data and backward-weights (+ bias) primitives per conv node,
 * created once per batch size and cached, over the trainer's plain NCHW
 * activations and OIHW weights (reordered to and from the layouts oneDNN
 * prefers where they differ).
 *
 *     nn_dnnl_train *d = NULL;
 *     nn_dnnl_train_new(&e, threads, &d);        // engine, stream, scratch
 *     nn_dnnl_conv *c = NULL;
 *     nn_dnnl_conv_new(&e, d, &attr, true, &c);  // one per conv node
 *     nn_dnnl_conv_forward(&e, c, &x, &w, b, &y);            // y = conv(x)
 *     nn_dnnl_conv_backward(&e, c, &x, &w, &dy, dx, dw, db); // gradients
 *     nn_dnnl_conv_free(c);
 *     nn_dnnl_train_free(d);
 *
 * Same shapes and conventions as nn_conv2d / nn_conv2d_backward_* (grad.h):
 * attr.act must be NN_ACT_NONE, gradients are overwritten, dx/dw/db may be
 * NULL. Results agree with the reference kernels within fp32 rounding (the
 * summation order differs) and are bit-identical run to run for a given
 * thread count (not across thread counts: oneDNN splits reductions by
 * thread).
 */
#ifndef DLP_NN_DNNL_TRAIN_H
#define DLP_NN_DNNL_TRAIN_H

#include "nn.h"

typedef struct nn_dnnl_train nn_dnnl_train;
typedef struct nn_dnnl_conv nn_dnnl_conv;

/* Engine and stream for oneDNN's CPU runtime on `threads` threads (>= 1),
 * and scratch buffers shared by the convolutions made from it (they run
 * one at a time). */
int nn_dnnl_train_new(dlp_err *e, int threads, nn_dnnl_train **out);
void nn_dnnl_train_free(nn_dnnl_train *d);

/* A convolution with attributes a (copied; act must be NN_ACT_NONE), with
 * or without a bias (then forward needs b, and backward computes db even
 * when the caller passes NULL, to scratch). Its
 * primitives are made on first use for each batch size (four sizes are
 * kept: a fit's full batch and its last training and validation batches). */
int nn_dnnl_conv_new(dlp_err *e, nn_dnnl_train *d, const nn_conv2d_attr *a,
                     bool has_bias, nn_dnnl_conv **out);
void nn_dnnl_conv_free(nn_dnnl_conv *c);

/* y = conv(x, w) + b (b may be NULL). DLP_ERR_UNSUPPORTED when oneDNN has no
 * implementation for the shapes (the caller then uses the reference). */
int nn_dnnl_conv_forward(dlp_err *e, nn_dnnl_conv *c, const nn_tensor *x,
                         const nn_tensor *w, const nn_tensor *b, nn_tensor *y);
/* dx (from w, dy), dw and db (from x, dy); any of dx, dw, db may be NULL,
 * but db needs dw. */
int nn_dnnl_conv_backward(dlp_err *e, nn_dnnl_conv *c, const nn_tensor *x,
                          const nn_tensor *w, const nn_tensor *dy,
                          nn_tensor *dx, nn_tensor *dw, nn_tensor *db);


#endif /* DLP_NN_DNNL_TRAIN_H */

/* ------------------------------------------------------------------------
 * Threaded kernels for the rest of a training step. Work is split in a
 * fixed way (contiguous ranges, or one channel per task) and every output
 * element is computed by one thread in a fixed order, so results do not
 * depend on the thread count or on scheduling.
 * ------------------------------------------------------------------------ */

/* Calls fn(user, lo, hi) over [0, n) in ranges of about `grain` elements
 * on up to `threads` threads (one call on the caller when n <= grain). */
typedef void (*nn_range_fn)(void *user, int64_t lo, int64_t hi);
void nn_par_range(int64_t n, int64_t grain, int threads, nn_range_fn fn,
                  void *user);

/* nn_batchnorm_train and nn_batchnorm_backward (grad.h) with the same
 * arguments and results up to summation order: per-channel sums in 16
 * float lanes per row of x, rows added in double (the reference adds every
 * element in double), channels spread over threads. */
int nn_fast_batchnorm_train(dlp_err *e, float eps, float momentum,
                            const nn_tensor *x, const nn_tensor *gamma,
                            const nn_tensor *beta, nn_tensor *running_mean,
                            nn_tensor *running_var, nn_tensor *y,
                            float *save_mean, float *save_invstd, int threads);
int nn_fast_batchnorm_backward(dlp_err *e, const nn_tensor *x,
                               const nn_tensor *gamma, const float *save_mean,
                               const float *save_invstd, const nn_tensor *dy,
                               nn_tensor *dx, nn_tensor *dgamma,
                               nn_tensor *dbeta, int threads);

/* Elementwise reference kernels run on ranges of their tensors in
 * parallel: results bit-identical to the plain calls. x, y, dy, dx all have
 * the same number of elements (y may be NULL where the kernel allows). */
int nn_fast_act(dlp_err *e, nn_act act, float alpha, const nn_tensor *x,
                nn_tensor *y, int threads);
int nn_fast_act_backward(dlp_err *e, nn_act act, float alpha,
                         const nn_tensor *x, const nn_tensor *y,
                         const nn_tensor *dy, nn_tensor *dx, int threads);
int nn_fast_clip(dlp_err *e, float lo, float hi, const nn_tensor *x,
                 nn_tensor *y, int threads);
int nn_fast_clip_backward(dlp_err *e, float lo, float hi, const nn_tensor *x,
                          const nn_tensor *dy, nn_tensor *dx, int threads);
/* dst[i] += src[i] (add = true) or dst[i] = src[i], i < n. */
void nn_fast_accumulate(float *dst, const float *src, int64_t n, bool add,
                        int threads);
/* nn_pad / nn_pad_backward for constant padding of the spatial axes of a
 * (N, C, H, W) tensor (other pads: DLP_ERR_UNSUPPORTED, use the
 * reference), one plane a task. */
int nn_fast_pad(dlp_err *e, const nn_pad_attr *a, const nn_tensor *x,
                nn_tensor *y, int threads);
int nn_fast_pad_backward(dlp_err *e, const nn_pad_attr *a, const nn_tensor *dy,
                         nn_tensor *dx, int threads);
