/* backend.h - the interface between nn_plan (plan.c) and the backends that
 * execute a finalized graph: the reference kernels (plan_ref.c) and oneDNN
 * (dnnl.c). A backend plans once for a batch size, then runs many times. */
#ifndef DLP_NN_BACKEND_H
#define DLP_NN_BACKEND_H

#include "graph.h"

typedef struct nn_backend_ops {
  const char *name; /* "ref", "dnnl" */
  /* Plans g (finalized, optimized or not) for `batch`; *state is the
   * backend's plan. */
  int (*plan)(dlp_err *e, const nn_graph *g, int64_t batch, int threads,
              void **state);
  /* inputs/outputs as nn_plan_run. */
  int (*run)(dlp_err *e, void *state, const float *const *inputs,
             float *const *outputs);
  size_t (*arena_bytes)(const void *state);
  void (*free)(void *state);
} nn_backend_ops;

extern const nn_backend_ops nn_backend_ref;
extern const nn_backend_ops nn_backend_dnnl;

#endif /* DLP_NN_BACKEND_H */
