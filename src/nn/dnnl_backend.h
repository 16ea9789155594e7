/* dnnl_backend.h - internals of the oneDNN backend shared by its files: the
 * bf16 variant of the ops table and the reference fallback for single nodes.
 * (Not named dnnl.h: src/nn is on the tests' include path and would shadow
 * oneDNN's own <dnnl.h>.) */
#ifndef DLP_NN_DNNL_BACKEND_H
#define DLP_NN_DNNL_BACKEND_H

#include "backend.h"

/* Same as nn_backend_dnnl, but convolutions and dense layers compute in
 * bfloat16 (weights and activations stored as bf16 between them, f32
 * accumulation, f32 at the graph's inputs and outputs). plan fails with
 * DLP_ERR_UNSUPPORTED on a CPU without AVX-512. */
extern const nn_backend_ops nn_backend_dnnl_bf16;

/* Runs node n of a graph with the reference kernels (nn.h) on plain
 * row-major float tensors: ins[k] feeds n->in[k], y receives n->out (its
 * shape is the value's, e.g. (N, C) for a global pool with keepdims false).
 * The fallback of the oneDNN backend for ops oneDNN does not cover. */
int nn_dnnl_ref_node(dlp_err *e, const nn_node *n, const nn_tensor *const *ins,
                     nn_tensor *y);

/* Sets oneDNN's (OpenMP) thread count for the calling thread, before a
 * primitive is created or run (oneDNN fixes a primitive's team when it is
 * created); returns the previous one (0 when unknown; n <= 0 changes
 * nothing). Used by the inference plans and the trainer. */
int nn_dnnl_threads_set(int n);

/* How many 1x1 convolutions of a plan (a state from nn_backend_dnnl's or
 * nn_backend_dnnl_bf16's plan) compute the depthwise convolution that reads
 * them in the same primitive (MobileNetV2's expand + depthwise pairs). */
int nn_dnnl_fused_dw_count(const void *state);

#endif /* DLP_NN_DNNL_BACKEND_H */
