/* plan_ref.h - running one graph node on the reference kernels, shared by
 * the reference backend (plan_ref.c) and the trainer's forward pass
 * (train.c) so that both dispatch a node the same way. */
#ifndef DLP_NN_PLAN_REF_H
#define DLP_NN_PLAN_REF_H

#include "graph.h"

/* Runs node n with inference semantics (batchnorm on its running
 * statistics, identity a copy; conv and dense apply their fused
 * activation): x holds n->n_in pointers to its inputs, y is its output.
 * A flatten, reshape or identity whose y already shares x[0]'s data does
 * nothing. */
int nn_ref_run_node(dlp_err *e, const nn_node *n, const nn_tensor *const *x,
                    nn_tensor *y);

#endif /* DLP_NN_PLAN_REF_H */
