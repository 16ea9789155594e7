/* onnx_fold.h - evaluation of the small int64/float computations on
 * constants that exporters leave in ONNX graphs (PyTorch's pad amounts,
 * Shape -> Gather -> Concat target shapes), with ONNX semantics.
 *
 * Every function checks its arguments against the tensors it is given (bad
 * axes, indices, counts) and charges the elements it creates to *budget,
 * failing with DLP_ERR_TOO_LARGE before allocating past it, so a hostile
 * file cannot make the importer allocate more than the budget. Messages
 * name the problem, not the node (the importer adds that). On failure *out
 * is left empty (ox_ft_free-able). */
#ifndef DLP_NN_ONNX_FOLD_H
#define DLP_NN_ONNX_FOLD_H

#include "nn.h"

#include <stdbool.h>
#include <stdint.h>

/* The folder's limit on the elements of all folded tensors of one model. */
#define OX_FOLD_BUDGET ((int64_t)1 << 20)

/* A folded tensor: float32 values (f) or int64 values (i). batch, for
 * int64 tensors only and NULL when none, marks elements that stand for the
 * symbolic batch size (taken from a Shape; their value in i is 1). */
typedef struct ox_ft {
  bool is_float;
  int ndim;
  int64_t dims[NN_MAX_DIMS];
  int64_t numel;
  int64_t *i;
  float *f;
  uint8_t *batch;
} ox_ft;

/* Allocates *t for the given shape (values zero, no batch marks unless
 * marks is set). */
int ox_ft_alloc(dlp_err *e, ox_ft *t, bool is_float, int ndim,
                const int64_t *dims, bool marks, int64_t *budget);
void ox_ft_free(ox_ft *t);
/* True when some element of t stands for the batch size. */
bool ox_ft_has_batch(const ox_ft *t);

/* Elementwise a op b with multidirectional broadcasting; op is one of
 * '+', '-', '*', '/'. Both of the same kind; integer division truncates and
 * refuses zero divisors and overflow. */
int ox_fold_binary(dlp_err *e, char op, const ox_ft *a, const ox_ft *b,
                   ox_ft *out, int64_t *budget);
/* Cast to float32 (to_float) or int64 (float -> int truncates; NaN and out
 * of range values are refused). */
int ox_fold_cast(dlp_err *e, const ox_ft *in, bool to_float, ox_ft *out,
                 int64_t *budget);
int ox_fold_concat(dlp_err *e, const ox_ft *const *ins, int n, int64_t axis,
                   ox_ft *out, int64_t *budget);
/* Reshape with ONNX's 0 (copy) and -1 (infer) entries (allowzero = 0). */
int ox_fold_reshape(dlp_err *e, const ox_ft *in, const int64_t *shape, int n,
                    ox_ft *out, int64_t *budget);
/* perm NULL reverses the axes. */
int ox_fold_transpose(dlp_err *e, const ox_ft *in, const int64_t *perm,
                      int nperm, ox_ft *out, int64_t *budget);
/* ONNX Slice: axes and steps may be NULL (all axes in order; steps 1);
 * negative starts/ends count from the end, both are clamped. */
int ox_fold_slice(dlp_err *e, const ox_ft *in, const int64_t *starts,
                  const int64_t *ends, const int64_t *axes,
                  const int64_t *steps, int n, ox_ft *out, int64_t *budget);
int ox_fold_gather(dlp_err *e, const ox_ft *data, const ox_ft *indices,
                   int64_t axis, ox_ft *out, int64_t *budget);
int ox_fold_unsqueeze(dlp_err *e, const ox_ft *in, const int64_t *axes, int n,
                      ox_ft *out, int64_t *budget);
/* axes NULL removes every dim of size 1. */
int ox_fold_squeeze(dlp_err *e, const ox_ft *in, const int64_t *axes, int n,
                    ox_ft *out, int64_t *budget);
/* ConstantOfShape: a tensor of the given dims filled with value's only
 * element. */
int ox_fold_fill(dlp_err *e, const int64_t *dims, int n, const ox_ft *value,
                 ox_ft *out, int64_t *budget);

#endif /* DLP_NN_ONNX_FOLD_H */
