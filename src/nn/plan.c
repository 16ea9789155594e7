/* plan.c - nn_plan: a finalized graph planned for one batch size on one
 * backend (backend.h), run many times. */
#include "backend.h"
#include "dnnl_backend.h"

#include <stdlib.h>

struct nn_plan {
  const nn_backend_ops *ops;
  void *state;
};

int nn_plan_new(dlp_err *e, const nn_graph *g, nn_backend backend,
                int64_t batch, int threads, nn_plan **out) {
  *out = NULL;
  if (!g || !g->finalized)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "plan: the graph is not finalized (call "
                       "nn_graph_finalize first)");
  if (batch < 1 || batch > NN_MAX_NUMEL)
    return dlp_err_set(e, DLP_ERR_ARG, "plan: batch size %lld must be >= 1",
                       (long long)batch);
  const nn_backend_ops *ops;
  switch (backend) {
  case NN_BACKEND_REF:
    ops = &nn_backend_ref;
    break;
  case NN_BACKEND_DNNL:
    ops = &nn_backend_dnnl;
    break;
  case NN_BACKEND_DNNL_BF16:
    ops = &nn_backend_dnnl_bf16;
    break;
  default:
    return dlp_err_set(e, DLP_ERR_ARG, "plan: unknown backend %d",
                       (int)backend);
  }
  nn_plan *p = calloc(1, sizeof *p);
  if (!p) return dlp_err_set(e, DLP_ERR_NOMEM, "plan: out of memory");
  p->ops = ops;
  int rc = ops->plan(e, g, batch, threads < 1 ? 1 : threads, &p->state);
  if (rc != DLP_OK) {
    free(p);
    return rc;
  }
  *out = p;
  return DLP_OK;
}

void nn_plan_free(nn_plan *p) {
  if (!p) return;
  if (p->state) p->ops->free(p->state);
  free(p);
}

int nn_plan_run(dlp_err *e, nn_plan *p, const float *const *inputs,
                float *const *outputs) {
  if (!p) return dlp_err_set(e, DLP_ERR_ARG, "plan: NULL plan");
  return p->ops->run(e, p->state, inputs, outputs);
}

size_t nn_plan_arena_bytes(const nn_plan *p) {
  return p ? p->ops->arena_bytes(p->state) : 0;
}
