/* transpose.h - the transpose reference kernel (ONNX Transpose), kept apart
 * from nn.h because that header belongs to the kernel set of another module. */
#ifndef DLP_NN_TRANSPOSE_H
#define DLP_NN_TRANSPOSE_H

#include "nn.h"

/* perm (n entries, n == x->ndim) is a permutation of 0..n-1; n == 0 means
 * reverse the axes (ONNX default). out dims[i] = x dims[perm[i]]. */
int nn_transpose_out_shape(dlp_err *e, const nn_tensor *x, const int *perm,
                           int n, nn_shape *out);
int nn_transpose(dlp_err *e, const nn_tensor *x, const int *perm, int n,
                 nn_tensor *y);

#endif /* DLP_NN_TRANSPOSE_H */
