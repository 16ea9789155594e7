/* train.c - the trainer: parameter discovery and freezing, the training
 * forward pass, backward in reverse topological order (gradients of a value
 * read by several nodes are summed), the optimizer step, the epoch loop and
 * checkpoints. Buffers for the configured batch are allocated once; smaller
 * batches use their prefix. With cfg.fast, convolutions run on oneDNN and
 * batch norm, activations, sums and the update on the threaded kernels of
 * dnnl_train.h; otherwise everything runs on the reference kernels (the
 * oracle). DLP_TRAIN_PROFILE=1 prints per-op time totals to stderr when the
 * trainer is freed. */
#include "train.h"

#include "dnnl_train.h"
#include "grad.h"
#include "graph_util.h"
#include "npy.h"
#include "plan_ref.h"
#include "transpose.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Where the gradient of input k of a node goes: straight into grad[v] the
 * first time v gets one, else into a scratch buffer added afterwards. */
typedef struct grad_target {
  int v;
  float *data; /* NULL: no gradient wanted */
  bool sum;    /* data is scratch, to be added into grad[v] */
} grad_target;

struct nn_trainer {
  nn_graph *g;
  int nv, nn; /* the graph's value and node counts, fixed at creation */
  nn_train_cfg cfg;
  int64_t cap; /* batch the buffers hold */
  int in_v, out_v;
  int64_t sample_numel, classes;
  nn_shape *shapes; /* at batch shapes_n */
  bool *batched;
  int64_t shapes_n;
  float **act;    /* per value: node outputs (owned), consts (the graph's) */
  float **owned;  /* per value: the buffer act points to when owned */
  float **grad;   /* per value: node outputs and parameters (owned) */
  bool *grad_set; /* this backward pass wrote grad[v] */
  bool *needs_grad;
  bool *is_param, *is_state, *trainable;
  float **pre; /* per node: conv/dense output before a fused activation */
  float **bn_mean, **bn_invstd; /* per batch-norm node, C floats each */
  bool *frozen;                 /* per node */
  float *drop_rate;    /* per node: dropout at an identity node, 0 = none */
  uint8_t **drop_mask; /* per node with dropout: kept elements */
  dlp_rng drop_rng;
  int *params, n_params; /* value ids of parameters, graph order */
  int *states, n_states; /* batch-norm running mean/var value ids */
  float **m, **v;        /* optimizer moments per parameter (index in params) */
  float *dw_scratch;     /* dw of a conv whose bias alone trains */
  float **sum_scratch;   /* per input index: gradients to be summed */
  nn_tensor *in_t;       /* max_in headers: a node's inputs, forward and back */
  const nn_tensor **in_p;
  nn_tensor **din_p;
  grad_target *tg; /* max_in gradient targets */
  int max_in;
  int64_t max_numel;
  bool prepared;
  int64_t step; /* optimizer updates done */
  int epoch;    /* epochs done */
  dlp_rng rng;
  double best_val;
  int bad_epochs;
  bool stopped;
  /* restore_best: copies of the parameters and running statistics at the
   * epoch with the best val loss (best_epoch, -1 = none yet) */
  float **best_p, **best_s;
  int best_epoch;
  float *xbuf;
  int32_t *ybuf;
  int64_t *perm;
  int threads;
  nn_dnnl_train *dn;      /* fast: oneDNN engine and scratch */
  nn_dnnl_conv **dconv;   /* fast: per conv node, made on first use */
  bool *dn_off;           /* per node: oneDNN refused it, the reference runs */
  bool profile, prof_cpu; /* prof_cpu: process CPU time, not wall time */
  bool prof_first;        /* the first step is done */
  double prof[NN_OP_COUNT + 2][2]; /* seconds per op kind, fwd and bwd;
                                      + loss, update */
  int64_t prof_steps;
};

enum { PROF_LOSS = NN_OP_COUNT, PROF_UPDATE = NN_OP_COUNT + 1 };

static bool has_bias(const nn_node *n) {
  return (n->op == NN_OP_CONV2D || n->op == NN_OP_DENSE) && n->n_in > 2;
}

/* Inputs 1..param_inputs(n) of n are its trainable parameters. */
static int param_inputs(const nn_node *n) {
  if (n->op == NN_OP_CONV2D || n->op == NN_OP_DENSE) return has_bias(n) ? 2 : 1;
  return n->op == NN_OP_BATCHNORM ? 2 : 0;
}

static nn_act fused_act(const nn_node *n, float *alpha) {
  if (n->op == NN_OP_CONV2D) {
    *alpha = n->attr.conv.alpha;
    return n->attr.conv.act;
  }
  if (n->op == NN_OP_DENSE) {
    *alpha = n->attr.dense.alpha;
    return n->attr.dense.act;
  }
  *alpha = 0;
  return NN_ACT_NONE;
}

void nn_train_cfg_init(nn_train_cfg *c) {
  memset(c, 0, sizeof *c);
  nn_optim_cfg_init(&c->optim);
  nn_sched_cfg_init(&c->sched);
  c->epochs = 10;
  c->batch = 32;
  c->shuffle = true;
  c->bn_momentum = 0.1f;
  c->threads = 1;
  c->fast = true;
}

static int check_cfg(dlp_err *e, const nn_train_cfg *c) {
  int rc = nn_optim_cfg_check(e, &c->optim);
  if (rc != DLP_OK) return rc;
  if (c->epochs < 0 || c->batch < 1)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: epochs (%d) must be >= 0 and batch (%lld) >= 1",
                       c->epochs, (long long)c->batch);
  if (!(c->bn_momentum >= 0 && c->bn_momentum <= 1))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: bn_momentum %g must be in [0, 1]",
                       c->bn_momentum);
  if (!(c->label_smoothing >= 0 && c->label_smoothing < 1))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: label_smoothing %g must be in [0, 1)",
                       c->label_smoothing);
  if (c->patience < 0 || c->sched.step_epochs < 0 || c->sched.warmup < 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: patience, step_epochs and warmup must be >= 0");
  return DLP_OK;
}

/* The graph must be finalized, not optimized, with one batched input and
 * one batched 2-D output. */
static int check_graph(dlp_err *e, const nn_graph *g) {
  if (!g->finalized)
    return dlp_err_set(e, DLP_ERR_ARG, "train: the graph is not finalized");
  if (g->n_inputs != 1 || g->n_outputs != 1)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: the graph needs one input and one output "
                       "(the logits), not %d and %d",
                       g->n_inputs, g->n_outputs);
  const nn_value *in = &g->values[g->inputs[0]];
  const nn_value *out = &g->values[g->outputs[0]];
  if (in->shape.dims[0] != -1 || out->shape.dims[0] != -1)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: input '%s' and output '%s' must have a batch "
                       "dimension",
                       in->name, out->name);
  int prod = out->producer;
  if (prod >= 0 && g->nodes[prod].op == NN_OP_SOFTMAX)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: output '%s' is a softmax; train on the logits "
                       "before it (nn_graph_cut to '%s')",
                       out->name, g->values[g->nodes[prod].in[0]].name);
  if (out->shape.ndim != 2)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: output '%s' must be logits (N, K), not rank %d",
                       out->name, out->shape.ndim);
  return DLP_OK;
}

/* Adds input k of n, which must be a constant, to the parameters or (for
 * batch-norm running statistics) to the state arrays, once. */
static int mark_const(dlp_err *e, nn_trainer *t, const nn_node *n, int k,
                      bool state) {
  int v = n->in[k];
  if (t->g->values[v].kind != NN_VALUE_CONST)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "train: node '%s' (%s): input %d ('%s') must be a "
                       "constant to train",
                       n->name, nn_op_name(n->op), k, t->g->values[v].name);
  if (t->is_param[v] || t->is_state[v]) return DLP_OK;
  if (state) {
    t->is_state[v] = true;
    t->states[t->n_states++] = v;
  } else {
    t->is_param[v] = true;
    t->params[t->n_params++] = v;
  }
  return DLP_OK;
}

/* Parameters: conv/dense weight and bias, batch-norm gamma and beta. */
static int find_params(dlp_err *e, nn_trainer *t) {
  const nn_graph *g = t->g;
  for (int i = 0; i < g->n_nodes; i++) {
    const nn_node *n = &g->nodes[i];
    int rc = DLP_OK;
    for (int k = 1; rc == DLP_OK && k <= param_inputs(n); k++)
      rc = mark_const(e, t, n, k, false);
    for (int k = 3; rc == DLP_OK && n->op == NN_OP_BATCHNORM && k <= 4; k++)
      rc = mark_const(e, t, n, k, true);
    if (n->n_in > t->max_in) t->max_in = n->n_in;
    if (rc != DLP_OK) return rc;
  }
  return DLP_OK;
}

static int64_t value_numel(const nn_trainer *t, int v) {
  return nn_shape_numel(t->shapes[v].ndim, t->shapes[v].dims);
}

static int set_shapes(dlp_err *e, nn_trainer *t, int64_t n) {
  if (t->shapes_n == n) return DLP_OK;
  int rc = nn_graph_infer_shapes(e, t->g, n, t->shapes, t->batched);
  t->shapes_n = rc == DLP_OK ? n : -1;
  return rc;
}

static float *alloc_floats(int64_t n) {
  return dlp_calloc_array((size_t)(n > 0 ? n : 1), sizeof(float));
}

static int alloc_value_buffers(dlp_err *e, nn_trainer *t) {
  const nn_graph *g = t->g;
  for (int v = 0; v < g->n_values; v++) {
    int64_t numel = value_numel(t, v);
    if (numel > t->max_numel) t->max_numel = numel;
    if (g->values[v].kind == NN_VALUE_CONST)
      t->act[v] = g->values[v].data;
    else if (g->values[v].kind == NN_VALUE_NODE &&
             !(t->act[v] = t->owned[v] = alloc_floats(numel)))
      return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory for '%s'",
                         g->values[v].name);
    if ((g->values[v].kind == NN_VALUE_NODE || t->is_param[v]) &&
        !(t->grad[v] = alloc_floats(numel)))
      return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory for gradients");
  }
  return DLP_OK;
}

static int alloc_node_buffers(dlp_err *e, nn_trainer *t) {
  const nn_graph *g = t->g;
  for (int i = 0; i < g->n_nodes; i++) {
    const nn_node *n = &g->nodes[i];
    float alpha;
    if (fused_act(n, &alpha) != NN_ACT_NONE &&
        !(t->pre[i] = alloc_floats(value_numel(t, n->out))))
      return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
    if (n->op == NN_OP_BATCHNORM) {
      int64_t c = value_numel(t, n->in[1]);
      t->bn_mean[i] = alloc_floats(c);
      t->bn_invstd[i] = alloc_floats(c);
      if (!t->bn_mean[i] || !t->bn_invstd[i])
        return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
    }
  }
  for (int i = 0; i < t->n_params; i++) {
    int64_t numel = value_numel(t, t->params[i]);
    t->m[i] = alloc_floats(numel);
    t->v[i] = alloc_floats(numel);
    if (!t->m[i] || !t->v[i])
      return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory for moments");
  }
  return DLP_OK;
}

static int alloc_all(dlp_err *e, nn_trainer *t) {
  int nv = t->nv, nn = t->nn;
  t->shapes = dlp_calloc_array((size_t)nv, sizeof *t->shapes);
  t->batched = dlp_calloc_array((size_t)nv, sizeof *t->batched);
  t->act = dlp_calloc_array((size_t)nv, sizeof *t->act);
  t->owned = dlp_calloc_array((size_t)nv, sizeof *t->owned);
  t->grad = dlp_calloc_array((size_t)nv, sizeof *t->grad);
  t->grad_set = dlp_calloc_array((size_t)nv, sizeof *t->grad_set);
  t->needs_grad = dlp_calloc_array((size_t)nv, sizeof *t->needs_grad);
  t->is_param = dlp_calloc_array((size_t)nv, sizeof *t->is_param);
  t->is_state = dlp_calloc_array((size_t)nv, sizeof *t->is_state);
  t->trainable = dlp_calloc_array((size_t)nv, sizeof *t->trainable);
  t->params = dlp_calloc_array((size_t)nv, sizeof *t->params);
  t->states = dlp_calloc_array((size_t)nv, sizeof *t->states);
  t->m = dlp_calloc_array((size_t)nv, sizeof *t->m);
  t->v = dlp_calloc_array((size_t)nv, sizeof *t->v);
  t->pre = dlp_calloc_array((size_t)nn + 1, sizeof *t->pre);
  t->bn_mean = dlp_calloc_array((size_t)nn + 1, sizeof *t->bn_mean);
  t->bn_invstd = dlp_calloc_array((size_t)nn + 1, sizeof *t->bn_invstd);
  t->frozen = dlp_calloc_array((size_t)nn + 1, sizeof *t->frozen);
  t->drop_rate = dlp_calloc_array((size_t)nn + 1, sizeof *t->drop_rate);
  t->drop_mask = dlp_calloc_array((size_t)nn + 1, sizeof *t->drop_mask);
  t->dconv = dlp_calloc_array((size_t)nn + 1, sizeof *t->dconv);
  t->dn_off = dlp_calloc_array((size_t)nn + 1, sizeof *t->dn_off);
  if (!t->dconv || !t->dn_off || !t->shapes || !t->batched || !t->act ||
      !t->owned || !t->grad || !t->grad_set || !t->needs_grad || !t->is_param ||
      !t->is_state || !t->trainable || !t->params || !t->states || !t->m ||
      !t->v || !t->pre || !t->bn_mean || !t->bn_invstd || !t->frozen ||
      !t->drop_rate || !t->drop_mask)
    return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
  int rc = find_params(e, t);
  if (rc == DLP_OK) rc = set_shapes(e, t, t->cap);
  if (rc == DLP_OK) rc = alloc_value_buffers(e, t);
  if (rc == DLP_OK) rc = alloc_node_buffers(e, t);
  if (rc != DLP_OK) return rc;
  size_t k = (size_t)t->max_in + 1;
  t->sum_scratch = dlp_calloc_array(k, sizeof(float *));
  t->in_t = dlp_calloc_array(k, sizeof *t->in_t);
  t->in_p = dlp_calloc_array(k, sizeof *t->in_p);
  t->din_p = dlp_calloc_array(k, sizeof *t->din_p);
  t->tg = dlp_calloc_array(k, sizeof *t->tg);
  t->xbuf = alloc_floats(t->cap * t->sample_numel);
  t->ybuf = dlp_calloc_array((size_t)t->cap, sizeof(int32_t));
  if (!t->sum_scratch || !t->in_t || !t->in_p || !t->din_p || !t->tg ||
      !t->xbuf || !t->ybuf)
    return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
  return DLP_OK;
}

int nn_trainer_new(dlp_err *e, nn_graph *g, const nn_train_cfg *cfg,
                   nn_trainer **out) {
  *out = NULL;
  if (!g || !cfg)
    return dlp_err_set(e, DLP_ERR_ARG, "train: no graph or config");
  int rc = check_cfg(e, cfg);
  if (rc == DLP_OK) rc = check_graph(e, g);
  if (rc != DLP_OK) return rc;
  nn_trainer *t = calloc(1, sizeof *t);
  if (!t) return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
  t->g = g;
  t->nv = g->n_values;
  t->nn = g->n_nodes;
  t->cfg = *cfg;
  t->cap = cfg->batch;
  t->in_v = g->inputs[0];
  t->out_v = g->outputs[0];
  t->shapes_n = -1;
  t->best_val = INFINITY;
  t->best_epoch = -1;
  t->threads = cfg->threads > 0 ? cfg->threads : 1;
  const char *prof = getenv("DLP_TRAIN_PROFILE");
  t->profile = prof && *prof && strcmp(prof, "0") != 0;
  t->prof_cpu = t->profile && strcmp(prof, "cpu") == 0;
  dlp_rng_seed(&t->rng, cfg->seed);
  /* a stream of its own, so dropout does not change the shuffles */
  dlp_rng_seed(&t->drop_rng, cfg->seed ^ 0x9e3779b97f4a7c15ull);
  nn_shape is = nn_graph_value_shape(g, t->in_v, 1);
  t->sample_numel = nn_shape_numel(is.ndim, is.dims);
  t->classes = g->values[t->out_v].shape.dims[1];
  rc = alloc_all(e, t);
  if (rc == DLP_OK && cfg->fast) rc = nn_dnnl_train_new(e, t->threads, &t->dn);
  if (rc != DLP_OK) {
    nn_trainer_free(t);
    return rc;
  }
  *out = t;
  return DLP_OK;
}

/* Wall seconds, or with DLP_TRAIN_PROFILE=cpu the process's CPU seconds
 * (on a loaded machine, a cleaner measure of single-threaded work). */
static double prof_now(const nn_trainer *t) {
  if (!t->prof_cpu) return dlp_now();
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_profile(const nn_trainer *t) {
  double total = 0;
  for (int k = 0; k < NN_OP_COUNT + 2; k++)
    total += t->prof[k][0] + t->prof[k][1];
  int64_t steps = t->prof_steps > 0 ? t->prof_steps : 1;
  fprintf(
      stderr,
      "train profile: %lld steps after the first, %.1f %s ms a step (%s, %d "
      "threads)\n%-16s %10s %10s %6s\n",
      (long long)t->prof_steps, 1e3 * total / (double)steps,
      t->prof_cpu ? "CPU" : "wall", t->dn ? "fast" : "reference", t->threads,
      "op", "fwd ms", "bwd ms", "%");
  for (int k = 1; k < NN_OP_COUNT + 2; k++) {
    double f = t->prof[k][0], b = t->prof[k][1];
    if (f + b <= 0) continue;
    const char *name = k == PROF_LOSS     ? "loss"
                       : k == PROF_UPDATE ? "update"
                                          : nn_op_name((nn_op)k);
    fprintf(stderr, "%-16s %10.2f %10.2f %6.1f\n", name,
            1e3 * f / (double)steps, 1e3 * b / (double)steps,
            100 * (f + b) / (total > 0 ? total : 1));
  }
}

void nn_trainer_free(nn_trainer *t) {
  if (!t) return;
  if (t->profile && t->prof_steps > 0) print_profile(t);
  for (int i = 0; t->dconv && i < t->nn; i++)
    nn_dnnl_conv_free(t->dconv[i]);
  free(t->dconv);
  free(t->dn_off);
  nn_dnnl_train_free(t->dn);
  /* t->nv and t->nn, not the graph's counts: this must not read the graph,
   * which may already have changed */
  for (int v = 0; v < t->nv; v++) {
    if (t->owned) free(t->owned[v]);
    if (t->grad) free(t->grad[v]);
  }
  for (int i = 0; i < t->nn; i++) {
    if (t->pre) free(t->pre[i]);
    if (t->bn_mean) free(t->bn_mean[i]);
    if (t->bn_invstd) free(t->bn_invstd[i]);
    if (t->drop_mask) free(t->drop_mask[i]);
  }
  for (int i = 0; i < t->n_params; i++) {
    free(t->m[i]);
    free(t->v[i]);
    if (t->best_p) free(t->best_p[i]);
  }
  for (int i = 0; t->best_s && i < t->n_states; i++)
    free(t->best_s[i]);
  free(t->best_p);
  free(t->best_s);
  for (int i = 0; t->sum_scratch && i <= t->max_in; i++)
    free(t->sum_scratch[i]);
  free(t->sum_scratch);
  free(t->in_t);
  free(t->in_p);
  free(t->din_p);
  free(t->tg);
  free(t->dw_scratch);
  free(t->shapes);
  free(t->batched);
  free(t->act);
  free(t->owned);
  free(t->grad);
  free(t->grad_set);
  free(t->needs_grad);
  free(t->is_param);
  free(t->is_state);
  free(t->trainable);
  free(t->params);
  free(t->states);
  free(t->m);
  free(t->v);
  free(t->pre);
  free(t->bn_mean);
  free(t->bn_invstd);
  free(t->frozen);
  free(t->drop_rate);
  free(t->drop_mask);
  free(t->xbuf);
  free(t->ybuf);
  free(t->perm);
  free(t);
}

/* ------------------------------------------------------------------------
 * Freezing and what needs a gradient
 * ------------------------------------------------------------------------ */

int nn_trainer_freeze_until(dlp_err *e, nn_trainer *t, const char *name) {
  int idx = name ? nn_graph_find_node(t->g, name) : -1;
  if (idx < 0)
    return dlp_err_set(e, DLP_ERR_NOT_FOUND,
                       "train: no node named '%s' to freeze until",
                       name ? name : "(null)");
  for (int i = 0; i <= idx; i++)
    t->frozen[i] = true;
  t->prepared = false;
  return DLP_OK;
}

int nn_trainer_freeze_if(dlp_err *e, nn_trainer *t, nn_node_pred pred,
                         void *user) {
  if (!pred)
    return dlp_err_set(e, DLP_ERR_ARG, "train: no predicate to freeze by");
  for (int i = 0; i < t->g->n_nodes; i++)
    if (pred(t->g, i, user)) t->frozen[i] = true;
  t->prepared = false;
  return DLP_OK;
}

int nn_trainer_set_dropout(dlp_err *e, nn_trainer *t, const char *name,
                           float rate) {
  int i = name ? nn_graph_find_node(t->g, name) : -1;
  if (i < 0)
    return dlp_err_set(e, DLP_ERR_NOT_FOUND,
                       "train: no node named '%s' for dropout",
                       name ? name : "(null)");
  const nn_node *n = &t->g->nodes[i];
  if (n->op != NN_OP_IDENTITY)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: dropout goes on an identity node, and '%s' is "
                       "%s",
                       name, nn_op_name(n->op));
  if (!(rate >= 0 && rate < 1))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: dropout rate %g must be in [0, 1)", rate);
  nn_shape s = nn_graph_value_shape(t->g, n->out, t->cap);
  int64_t numel = nn_shape_numel(s.ndim, s.dims);
  if (!t->drop_mask[i] &&
      !(t->drop_mask[i] = calloc((size_t)(numel > 0 ? numel : 1), 1)))
    return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
  t->drop_rate[i] = rate;
  return DLP_OK;
}

/* Ops with a backward pass here; the rest only in a frozen prefix. */
static bool has_backward(const nn_node *n) {
  if (n->op == NN_OP_PAD) return n->attr.pad.mode == NN_PAD_CONSTANT;
  return n->op > 0 && n->op < NN_OP_COUNT;
}

static int prepare(dlp_err *e, nn_trainer *t) {
  const nn_graph *g = t->g;
  memset(t->trainable, 0, (size_t)g->n_values * sizeof *t->trainable);
  for (int i = 0; i < g->n_nodes; i++) {
    const nn_node *n = &g->nodes[i];
    for (int k = 1; !t->frozen[i] && k <= param_inputs(n); k++)
      t->trainable[n->in[k]] = true;
  }
  for (int v = 0; v < g->n_values; v++)
    t->needs_grad[v] = t->trainable[v];
  for (int i = 0; i < g->n_nodes; i++) {
    const nn_node *n = &g->nodes[i];
    bool any = false;
    for (int k = 0; k < n->n_in; k++)
      any = any || t->needs_grad[n->in[k]];
    t->needs_grad[n->out] = any;
    bool through = false; /* a gradient must pass to a node input */
    for (int k = 0; k < n->n_in; k++)
      through = through || (t->needs_grad[n->in[k]] &&
                            g->values[n->in[k]].kind == NN_VALUE_NODE);
    if (through && !has_backward(n))
      return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                         "train: node '%s' (%s) has no backward pass; freeze "
                         "the layers up to it",
                         n->name, nn_op_name(n->op));
  }
  t->prepared = true;
  return DLP_OK;
}

int nn_trainer_trainable(const nn_trainer *t, int64_t *n_elems) {
  int count = 0;
  int64_t elems = 0;
  for (int i = 0; i < t->g->n_nodes; i++) {
    const nn_node *n = &t->g->nodes[i];
    for (int k = 1; !t->frozen[i] && k <= param_inputs(n); k++) {
      const nn_shape *s = &t->g->values[n->in[k]].shape;
      count++;
      elems += nn_shape_numel(s->ndim, s->dims);
    }
  }
  if (n_elems) *n_elems = elems;
  return count;
}

/* ------------------------------------------------------------------------
 * Forward
 * ------------------------------------------------------------------------ */

static nn_tensor view(const nn_trainer *t, int v, float *data) {
  nn_tensor x;
  nn_graph_shape_tensor(&t->shapes[v], &x);
  x.data = data;
  x.is_view = true;
  return x;
}

/* The oneDNN convolution of node i, or NULL (with *rc DLP_OK) when it runs
 * on the reference kernels. */
static nn_dnnl_conv *dconv_of(dlp_err *e, nn_trainer *t, int i, int *rc) {
  *rc = DLP_OK;
  if (!t->dn || t->dn_off[i]) return NULL;
  if (!t->dconv[i]) {
    const nn_node *n = &t->g->nodes[i];
    nn_conv2d_attr a = n->attr.conv;
    a.act = NN_ACT_NONE;
    *rc = nn_dnnl_conv_new(e, t->dn, &a, has_bias(n), &t->dconv[i]);
  }
  return t->dconv[i];
}

/* A oneDNN failure for lack of an implementation sends node i to the
 * reference kernels for good. */
static bool dn_fallback(nn_trainer *t, int i, int rc) {
  if (rc != DLP_ERR_UNSUPPORTED) return false;
  t->dn_off[i] = true;
  return true;
}

static int fwd_conv(dlp_err *e, nn_trainer *t, int i, const nn_conv2d_attr *a,
                    const nn_tensor *x, const nn_tensor *b, nn_tensor *y) {
  int rc;
  nn_dnnl_conv *c = dconv_of(e, t, i, &rc);
  if (c) rc = nn_dnnl_conv_forward(e, c, &x[0], &x[1], b, y);
  if (c && !dn_fallback(t, i, rc)) return rc;
  return rc == DLP_OK || c ? nn_conv2d(e, a, &x[0], &x[1], b, y) : rc;
}

static int fwd_conv_dense(dlp_err *e, nn_trainer *t, int i, nn_tensor *x,
                          nn_tensor *y) {
  const nn_node *n = &t->g->nodes[i];
  float alpha;
  nn_act act = fused_act(n, &alpha);
  nn_tensor pre = *y;
  if (act != NN_ACT_NONE) pre.data = t->pre[i];
  const nn_tensor *b = has_bias(n) ? &x[2] : NULL;
  int rc;
  if (n->op == NN_OP_CONV2D) {
    nn_conv2d_attr a = n->attr.conv;
    a.act = NN_ACT_NONE;
    rc = fwd_conv(e, t, i, &a, x, b, &pre);
  } else {
    nn_dense_attr a = n->attr.dense;
    a.act = NN_ACT_NONE;
    rc = nn_dense(e, &a, &x[0], &x[1], b, &pre);
  }
  if (rc == DLP_OK && act != NN_ACT_NONE)
    rc = t->dn ? nn_fast_act(e, act, alpha, &pre, y, t->threads)
               : nn_act_apply(e, act, alpha, &pre, y);
  return rc;
}

/* Conv and dense keep their pre-activation for backward; training-mode
 * batchnorm and dropout have kernels of their own; everything else runs as
 * inference does. */
static int fwd_node(dlp_err *e, nn_trainer *t, int i, bool train) {
  const nn_node *n = &t->g->nodes[i];
  nn_tensor *x = t->in_t;
  for (int k = 0; k < n->n_in; k++) {
    x[k] = view(t, n->in[k], t->act[n->in[k]]);
    t->in_p[k] = &x[k];
  }
  nn_tensor y = view(t, n->out, t->act[n->out]);
  if (n->op == NN_OP_CONV2D || n->op == NN_OP_DENSE)
    return fwd_conv_dense(e, t, i, x, &y);
  if (n->op == NN_OP_BATCHNORM && train && !t->frozen[i] && t->dn)
    return nn_fast_batchnorm_train(e, n->attr.eps, t->cfg.bn_momentum, &x[0],
                                   &x[1], &x[2], &x[3], &x[4], &y,
                                   t->bn_mean[i], t->bn_invstd[i], t->threads);
  if (n->op == NN_OP_BATCHNORM && train && !t->frozen[i])
    return nn_batchnorm_train(e, n->attr.eps, t->cfg.bn_momentum, &x[0], &x[1],
                              &x[2], &x[3], &x[4], &y, t->bn_mean[i],
                              t->bn_invstd[i]);
  if (n->op == NN_OP_PAD && t->dn) {
    int rc = nn_fast_pad(NULL, &n->attr.pad, &x[0], &y, t->threads);
    if (rc != DLP_ERR_UNSUPPORTED) return rc;
  }
  if (n->op == NN_OP_ACT && t->dn)
    return nn_fast_act(e, n->attr.act, n->attr.alpha, &x[0], &y, t->threads);
  if (n->op == NN_OP_CLIP && t->dn)
    return nn_fast_clip(e, n->attr.clip_lo, n->attr.clip_hi, &x[0], &y,
                        t->threads);
  if (n->op == NN_OP_IDENTITY && train && t->drop_rate[i] > 0)
    return nn_dropout_train(e, t->drop_rate[i], &t->drop_rng, &x[0], &y,
                            t->drop_mask[i]);
  return nn_ref_run_node(e, n, t->in_p, &y);
}

static int forward(dlp_err *e, nn_trainer *t, const float *x, int64_t n,
                   bool train) {
  if (n < 1 || n > t->cap)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: batch of %lld samples; 1 to %lld allowed",
                       (long long)n, (long long)t->cap);
  if (!x) return dlp_err_set(e, DLP_ERR_ARG, "train: no input data");
  int rc = set_shapes(e, t, n);
  if (rc != DLP_OK) return rc;
  t->act[t->in_v] = (float *)x; /* read only: no kernel writes an input */
  for (int i = 0; i < t->g->n_nodes; i++) {
    double t0 = t->profile ? prof_now(t) : 0;
    rc = fwd_node(e, t, i, train);
    if (t->profile && train) t->prof[t->g->nodes[i].op][0] += prof_now(t) - t0;
    if (rc != DLP_OK) {
      const nn_node *nd = &t->g->nodes[i];
      char msg[DLP_ERRMSG_MAX];
      snprintf(msg, sizeof msg, "%s", e ? e->msg : "");
      return dlp_err_set(e, rc, "train: node '%s' (%s): %s", nd->name,
                         nn_op_name(nd->op), msg);
    }
  }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Backward
 * ------------------------------------------------------------------------ */

static float *scratch_buf(nn_trainer *t, int k) {
  if (!t->sum_scratch[k]) t->sum_scratch[k] = alloc_floats(t->max_numel);
  return t->sum_scratch[k];
}

static int targets_for(dlp_err *e, nn_trainer *t, const nn_node *n,
                       grad_target *tg) {
  for (int k = 0; k < n->n_in; k++) {
    int v = n->in[k];
    tg[k] = (grad_target){.v = v};
    if (!t->needs_grad[v]) continue;
    if (!t->grad_set[v]) {
      tg[k].data = t->grad[v];
      t->grad_set[v] = true;
    } else {
      tg[k].data = scratch_buf(t, k);
      tg[k].sum = true;
      if (!tg[k].data) return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
    }
  }
  return DLP_OK;
}

static void sum_targets(nn_trainer *t, const nn_node *n,
                        const grad_target *tg) {
  for (int k = 0; k < n->n_in; k++) {
    if (!tg[k].sum) continue;
    nn_fast_accumulate(t->grad[tg[k].v], tg[k].data, value_numel(t, tg[k].v),
                       true, t->threads);
  }
}

/* A tensor over target k, or NULL when no gradient is wanted. */
static nn_tensor *tview(const nn_trainer *t, const grad_target *tg, int k,
                        nn_tensor *buf) {
  if (!tg[k].data) return NULL;
  *buf = view(t, tg[k].v, tg[k].data);
  return buf;
}

static int bwd_conv(dlp_err *e, nn_trainer *t, int i, const nn_tensor *x,
                    const nn_tensor *dy, const grad_target *tg) {
  const nn_node *n = &t->g->nodes[i];
  nn_conv2d_attr a = n->attr.conv;
  a.act = NN_ACT_NONE;
  nn_tensor dxb, dwb, dbb;
  nn_tensor *dx = tview(t, tg, 0, &dxb);
  nn_tensor *dw = tview(t, tg, 1, &dwb);
  nn_tensor *db = has_bias(n) ? tview(t, tg, 2, &dbb) : NULL;
  if (!dw && db) { /* only the bias trains (a shared weight): dw to scratch */
    if (!t->dw_scratch && !(t->dw_scratch = alloc_floats(t->max_numel)))
      return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
    dwb = view(t, n->in[1], t->dw_scratch);
    dw = &dwb;
  }
  int rc;
  nn_dnnl_conv *c = dconv_of(e, t, i, &rc);
  if (c) rc = nn_dnnl_conv_backward(e, c, &x[0], &x[1], dy, dx, dw, db);
  if (c && !dn_fallback(t, i, rc)) return rc;
  if (rc != DLP_OK && !c) return rc;
  rc = DLP_OK;
  if (dx) rc = nn_conv2d_backward_data_mt(e, &a, &x[1], dy, dx, t->threads);
  if (rc != DLP_OK || !dw) return rc;
  return nn_conv2d_backward_weights_mt(e, &a, &x[0], dy, dw, db, t->threads);
}

/* Batch norm that ran in inference mode (frozen): dx = dy * gamma /
 * sqrt(running_var + eps), per channel. */
static void bwd_bn_frozen(const nn_node *n, const nn_tensor *x,
                          const nn_tensor *dy, nn_tensor *dx) {
  int64_t N = x[0].dims[0], C = x[0].dims[1];
  int64_t inner = nn_tensor_numel(&x[0]) / (N > 0 && C > 0 ? N * C : 1);
  for (int64_t c = 0; c < C; c++) {
    float s = x[1].data[c] / sqrtf(x[4].data[c] + n->attr.eps);
    for (int64_t b = 0; b < N; b++) {
      int64_t off = (b * C + c) * inner;
      for (int64_t j = 0; j < inner; j++)
        dx->data[off + j] = dy->data[off + j] * s;
    }
  }
}

static int bwd_batchnorm(dlp_err *e, nn_trainer *t, int i, const nn_tensor *x,
                         const nn_tensor *dy, const grad_target *tg) {
  const nn_node *n = &t->g->nodes[i];
  nn_tensor dxb, dgb, dbb;
  nn_tensor *dx = tview(t, tg, 0, &dxb);
  if (t->frozen[i]) {
    if (dx) bwd_bn_frozen(n, x, dy, dx);
    return DLP_OK;
  }
  if (t->dn)
    return nn_fast_batchnorm_backward(
        e, &x[0], &x[1], t->bn_mean[i], t->bn_invstd[i], dy, dx,
        tview(t, tg, 1, &dgb), tview(t, tg, 2, &dbb), t->threads);
  return nn_batchnorm_backward(e, &x[0], &x[1], t->bn_mean[i], t->bn_invstd[i],
                               dy, dx, tview(t, tg, 1, &dgb),
                               tview(t, tg, 2, &dbb));
}

static int bwd_concat(dlp_err *e, nn_trainer *t, const nn_node *n,
                      const nn_tensor *dy, const grad_target *tg) {
  for (int k = 0; k < n->n_in; k++)
    t->din_p[k] = tview(t, tg, k, &t->in_t[k]);
  return nn_concat_backward(e, dy, n->attr.axis, t->din_p, n->n_in);
}

/* The gradient of a transpose is dy transposed back: by the inverse
 * permutation (reversing the axes is its own inverse). */
static int bwd_transpose(dlp_err *e, const nn_node_attr *a, const nn_tensor *dy,
                         nn_tensor *dx) {
  int inv[NN_MAX_DIMS];
  if (a->n_perm == 0) return nn_transpose(e, dy, NULL, 0, dx);
  if (a->n_perm > NN_MAX_DIMS)
    return dlp_err_set(e, DLP_ERR_ARG, "transpose: bad permutation");
  for (int i = 0; i < a->n_perm; i++) {
    if (a->perm[i] < 0 || a->perm[i] >= a->n_perm)
      return dlp_err_set(e, DLP_ERR_ARG, "transpose: bad permutation");
    inv[a->perm[i]] = i;
  }
  return nn_transpose(e, dy, inv, a->n_perm, dx);
}

static bool same_shape(const nn_tensor *a, const nn_tensor *b) {
  if (a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->dims[d] != b->dims[d]) return false;
  return true;
}

/* Without broadcasting both gradients are copies of dy. */
static int bwd_add(dlp_err *e, nn_trainer *t, const nn_tensor *dy,
                   nn_tensor *da, nn_tensor *db) {
  if (!t->dn || (da && !same_shape(da, dy)) || (db && !same_shape(db, dy)))
    return nn_add_backward(e, dy, da, db);
  nn_tensor *out[2] = {da, db};
  for (int k = 0; k < 2; k++)
    if (out[k])
      nn_fast_accumulate(out[k]->data, dy->data, nn_tensor_numel(dy), false,
                         t->threads);
  return DLP_OK;
}

static int bwd_dispatch(dlp_err *e, nn_trainer *t, int i, const nn_tensor *x,
                        const nn_tensor *y, const nn_tensor *dy,
                        const grad_target *tg) {
  const nn_node *n = &t->g->nodes[i];
  const nn_node_attr *a = &n->attr;
  nn_tensor b0, b1, b2;
  nn_tensor *dx = tview(t, tg, 0, &b0);
  switch (n->op) {
  case NN_OP_CONV2D:
    return bwd_conv(e, t, i, x, dy, tg);
  case NN_OP_DENSE: {
    nn_dense_attr da = a->dense;
    da.act = NN_ACT_NONE;
    return nn_dense_backward(e, &da, &x[0], &x[1], dy, dx, tview(t, tg, 1, &b1),
                             has_bias(n) ? tview(t, tg, 2, &b2) : NULL);
  }
  case NN_OP_BATCHNORM:
    return bwd_batchnorm(e, t, i, x, dy, tg);
  case NN_OP_ACT:
    if (dx && t->dn)
      return nn_fast_act_backward(e, a->act, a->alpha, &x[0], y, dy, dx,
                                  t->threads);
    return dx ? nn_act_backward(e, a->act, a->alpha, &x[0], y, dy, dx) : 0;
  case NN_OP_CLIP:
    if (dx && t->dn)
      return nn_fast_clip_backward(e, a->clip_lo, a->clip_hi, &x[0], dy, dx,
                                   t->threads);
    return dx ? nn_clip_backward(e, a->clip_lo, a->clip_hi, &x[0], dy, dx) : 0;
  case NN_OP_SOFTMAX:
    return dx ? nn_softmax_backward(e, a->axis, y, dy, dx) : 0;
  case NN_OP_MAXPOOL:
    return dx ? nn_maxpool2d_backward(e, &a->pool, &x[0], dy, dx) : 0;
  case NN_OP_AVGPOOL:
    return dx ? nn_avgpool2d_backward(e, &a->pool, dy, dx) : 0;
  case NN_OP_GLOBAL_AVGPOOL:
    return dx ? nn_global_avgpool_backward(e, dy, dx) : 0;
  case NN_OP_GLOBAL_MAXPOOL:
    return dx ? nn_global_maxpool_backward(e, &x[0], dy, dx) : 0;
  case NN_OP_ADD:
    return bwd_add(e, t, dy, dx, tview(t, tg, 1, &b1));
  case NN_OP_MUL:
    return nn_mul_backward(e, &x[0], &x[1], dy, dx, tview(t, tg, 1, &b1));
  case NN_OP_CONCAT:
    return bwd_concat(e, t, n, dy, tg);
  case NN_OP_IDENTITY:
    if (dx && t->drop_rate[i] > 0)
      return nn_dropout_backward(e, t->drop_rate[i], t->drop_mask[i], dy, dx);
    /* fall through */
  case NN_OP_FLATTEN:
  case NN_OP_RESHAPE:
    if (dx)
      nn_fast_accumulate(dx->data, dy->data, nn_tensor_numel(dy), false,
                         t->threads);
    return DLP_OK;
  case NN_OP_PAD:
    if (dx && t->dn &&
        nn_fast_pad_backward(NULL, &a->pad, dy, dx, t->threads) == DLP_OK)
      return DLP_OK;
    return dx ? nn_pad_backward(e, &a->pad, dy, dx) : 0;
  case NN_OP_TRANSPOSE:
    return dx ? bwd_transpose(e, a, dy, dx) : 0;
  default:
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED, "no backward pass");
  }
}

static int bwd_node(dlp_err *e, nn_trainer *t, int i, grad_target *tg) {
  const nn_node *n = &t->g->nodes[i];
  if (!t->needs_grad[n->out] || !t->grad_set[n->out]) return DLP_OK;
  nn_tensor x[5];
  for (int k = 0; k < n->n_in && k < 5; k++)
    x[k] = view(t, n->in[k], t->act[n->in[k]]);
  nn_tensor y = view(t, n->out, t->act[n->out]);
  nn_tensor dy = view(t, n->out, t->grad[n->out]);
  float alpha;
  nn_act act = fused_act(n, &alpha);
  int rc = DLP_OK;
  if (act != NN_ACT_NONE) { /* dy becomes d(pre-activation), in place */
    nn_tensor pre = view(t, n->out, t->pre[i]);
    rc = t->dn ? nn_fast_act_backward(e, act, alpha, &pre, &y, &dy, &dy,
                                      t->threads)
               : nn_act_backward(e, act, alpha, &pre, &y, &dy, &dy);
  }
  if (rc == DLP_OK) rc = targets_for(e, t, n, tg);
  if (rc == DLP_OK) rc = bwd_dispatch(e, t, i, x, &y, &dy, tg);
  if (rc == DLP_OK) sum_targets(t, n, tg);
  return rc;
}

static int backward(dlp_err *e, nn_trainer *t) {
  int rc = DLP_OK;
  for (int i = t->g->n_nodes - 1; i >= 0 && rc == DLP_OK; i--) {
    double t0 = t->profile ? prof_now(t) : 0;
    rc = bwd_node(e, t, i, t->tg);
    if (t->profile) t->prof[t->g->nodes[i].op][1] += prof_now(t) - t0;
    if (rc != DLP_OK) {
      const nn_node *nd = &t->g->nodes[i];
      char msg[DLP_ERRMSG_MAX];
      snprintf(msg, sizeof msg, "%s", e ? e->msg : "");
      rc = dlp_err_set(e, rc, "train: backward of node '%s' (%s): %s", nd->name,
                       nn_op_name(nd->op), msg);
    }
  }
  return rc;
}

/* ------------------------------------------------------------------------
 * Steps
 * ------------------------------------------------------------------------ */

static int64_t count_correct(const float *logits, const int32_t *labels,
                             int64_t n, int64_t k) {
  int64_t hits = 0;
  for (int64_t i = 0; i < n; i++) {
    const float *r = logits + i * k;
    int64_t best = 0;
    for (int64_t j = 1; j < k; j++)
      if (r[j] > r[best]) best = j;
    hits += best == labels[i];
  }
  return hits;
}

static int loss_and_grad(dlp_err *e, nn_trainer *t, const int32_t *labels,
                         int64_t n, bool want_grad, double *loss,
                         int64_t *correct) {
  nn_tensor logits = view(t, t->out_v, t->act[t->out_v]);
  nn_tensor dl = view(t, t->out_v, t->grad[t->out_v]);
  double l = 0;
  int rc = nn_softmax_xent(e, &logits, labels, NULL, t->cfg.label_smoothing, &l,
                           want_grad ? &dl : NULL);
  if (rc != DLP_OK) return rc;
  if (loss) *loss = l;
  if (correct) *correct = count_correct(logits.data, labels, n, t->classes);
  return DLP_OK;
}

typedef struct update_job {
  const nn_trainer *t;
  float lr;
  float *w, *m, *v;
  const float *g;
} update_job;

/* The update is elementwise: ranges of a parameter update independently. */
static void update_range(void *user, int64_t lo, int64_t hi) {
  const update_job *j = user;
  nn_optim_update(&j->t->cfg.optim, j->lr, j->t->step, j->w + lo, j->g + lo,
                  j->m + lo, j->v + lo, hi - lo);
}

static void update(nn_trainer *t, double lr) {
  t->step++;
  for (int i = 0; i < t->n_params; i++) {
    int v = t->params[i];
    if (!t->trainable[v] || !t->grad_set[v]) continue;
    update_job j = {t,       (float)lr, t->g->values[v].data,
                    t->m[i], t->v[i],   t->grad[v]};
    nn_par_range(value_numel(t, v), 16384, t->threads, update_range, &j);
  }
}

static int check_labels(dlp_err *e, const nn_trainer *t, const int32_t *labels,
                        int64_t n) {
  if (!labels) return dlp_err_set(e, DLP_ERR_ARG, "train: no labels");
  if (n < 1 || n > t->cap) return DLP_OK; /* forward() reports it */
  for (int64_t i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= t->classes)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "train: label %d of sample %lld is outside [0, %lld)",
                         (int)labels[i], (long long)i, (long long)t->classes);
  return DLP_OK;
}

int nn_trainer_step(dlp_err *e, nn_trainer *t, const float *x,
                    const int32_t *labels, int64_t n, double lr, double *loss,
                    int64_t *correct) {
  /* checked before the forward pass, which moves running statistics */
  int rc = check_labels(e, t, labels, n);
  if (rc == DLP_OK && !(lr >= 0 && isfinite(lr)))
    rc = dlp_err_set(e, DLP_ERR_ARG, "train: learning rate %g", lr);
  if (rc == DLP_OK && !t->prepared) rc = prepare(e, t);
  if (rc == DLP_OK && !t->needs_grad[t->out_v])
    rc = dlp_err_set(e, DLP_ERR_ARG, "train: nothing to train (all frozen)");
  if (rc == DLP_OK) rc = forward(e, t, x, n, true);
  double t0 = t->profile ? prof_now(t) : 0;
  if (rc == DLP_OK) rc = loss_and_grad(e, t, labels, n, true, loss, correct);
  if (t->profile) t->prof[PROF_LOSS][0] += prof_now(t) - t0;
  if (rc != DLP_OK) return rc;
  memset(t->grad_set, 0, (size_t)t->g->n_values * sizeof *t->grad_set);
  t->grad_set[t->out_v] = true;
  rc = backward(e, t);
  t0 = t->profile ? prof_now(t) : 0;
  if (rc == DLP_OK) update(t, lr);
  if (t->profile) {
    t->prof[PROF_UPDATE][1] += prof_now(t) - t0;
    /* the first step makes the oneDNN primitives: not counted */
    if (t->prof_first)
      t->prof_steps++;
    else
      memset(t->prof, 0, sizeof t->prof);
    t->prof_first = true;
  }
  return rc;
}

int nn_trainer_eval(dlp_err *e, nn_trainer *t, const float *x,
                    const int32_t *labels, int64_t n, float *logits,
                    double *loss, int64_t *correct) {
  int rc = labels ? check_labels(e, t, labels, n) : DLP_OK;
  if (rc == DLP_OK) rc = forward(e, t, x, n, false);
  if (rc == DLP_OK && labels)
    rc = loss_and_grad(e, t, labels, n, false, loss, correct);
  if (rc == DLP_OK && logits)
    memcpy(logits, t->act[t->out_v], (size_t)(n * t->classes) * sizeof(float));
  return rc;
}

/* ------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------ */

static int fill_batch(dlp_err *e, nn_trainer *t, const nn_train_data *d,
                      const int64_t *idx, int64_t n) {
  if (d->fill) return d->fill(d->user, idx, n, t->xbuf, t->ybuf, e);
  for (int64_t i = 0; i < n; i++) {
    memcpy(t->xbuf + i * t->sample_numel, d->x + idx[i] * d->sample_numel,
           (size_t)t->sample_numel * sizeof(float));
    t->ybuf[i] = d->labels[idx[i]];
  }
  return DLP_OK;
}

static int check_data(dlp_err *e, const nn_trainer *t, const nn_train_data *d,
                      const char *what) {
  if (d->n < 1)
    return dlp_err_set(e, DLP_ERR_ARG, "train: %s data has no samples", what);
  if (!d->fill && (!d->x || !d->labels || d->sample_numel != t->sample_numel))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "train: %s data: arrays missing or %lld values a "
                       "sample where the input has %lld",
                       what, (long long)d->sample_numel,
                       (long long)t->sample_numel);
  return DLP_OK;
}

/* Whether a batch of one sample leaves a training batch norm with one
 * value per channel, whose batch variance is undefined (PyTorch refuses
 * such a batch; the loop skips it). */
static bool one_sample_breaks_bn(const nn_trainer *t) {
  for (int i = 0; i < t->g->n_nodes; i++) {
    const nn_node *n = &t->g->nodes[i];
    if (n->op != NN_OP_BATCHNORM || t->frozen[i]) continue;
    nn_shape s = nn_graph_value_shape(t->g, n->in[0], 1);
    if (s.ndim >= 2 && nn_shape_numel(s.ndim, s.dims) == s.dims[1]) return true;
  }
  return false;
}

static int64_t steps_per_epoch(const nn_trainer *t, int64_t n) {
  int64_t b = t->cap, s = n / b, rest = n % b;
  if (rest > 0 && !t->cfg.drop_last && !(rest == 1 && one_sample_breaks_bn(t)))
    s++;
  return s;
}

static void shuffle(nn_trainer *t, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    t->perm[i] = i;
  if (t->cfg.shuffle)
    dlp_rng_shuffle(&t->rng, t->perm, (size_t)n, sizeof *t->perm);
}

static int train_epoch(dlp_err *e, nn_trainer *t, const nn_train_data *d,
                       nn_epoch_stats *st) {
  int64_t steps = steps_per_epoch(t, d->n);
  int64_t total = steps * t->cfg.epochs, seen = 0, hits = 0;
  double loss_sum = 0;
  shuffle(t, d->n);
  for (int64_t s = 0; s < steps; s++) {
    int64_t nb = d->n - s * t->cap < t->cap ? d->n - s * t->cap : t->cap;
    double lr =
        nn_sched_lr(&t->cfg.sched, t->cfg.optim.lr, t->step, t->epoch, total);
    double loss = 0;
    int64_t c = 0;
    int rc = fill_batch(e, t, d, t->perm + s * t->cap, nb);
    if (rc == DLP_OK)
      rc = nn_trainer_step(e, t, t->xbuf, t->ybuf, nb, lr, &loss, &c);
    if (rc != DLP_OK) return rc;
    loss_sum += loss * (double)nb;
    hits += c;
    seen += nb;
    st->lr = lr;
    if (t->cfg.progress && dlp_progress(t->cfg.progress, "train",
                                        (uint64_t)(t->epoch * steps + s + 1),
                                        (uint64_t)total, s + 1 == steps))
      return dlp_err_set(e, DLP_ERR_ARG, "train: cancelled");
  }
  st->train_loss = seen ? loss_sum / (double)seen : NAN;
  st->train_acc = seen ? (double)hits / (double)seen : NAN;
  return DLP_OK;
}

static int validate(dlp_err *e, nn_trainer *t, const nn_train_data *d,
                    nn_epoch_stats *st) {
  double loss_sum = 0;
  int64_t hits = 0;
  for (int64_t s = 0; s < d->n; s += t->cap) {
    int64_t nb = d->n - s < t->cap ? d->n - s : t->cap;
    double loss = 0;
    int64_t c = 0;
    for (int64_t i = 0; i < nb; i++)
      t->perm[i] = s + i;
    int rc = fill_batch(e, t, d, t->perm, nb);
    if (rc == DLP_OK)
      rc = nn_trainer_eval(e, t, t->xbuf, t->ybuf, nb, NULL, &loss, &c);
    if (rc != DLP_OK) return rc;
    loss_sum += loss * (double)nb;
    hits += c;
  }
  st->val_loss = loss_sum / (double)d->n;
  st->val_acc = (double)hits / (double)d->n;
  return DLP_OK;
}

static void early_stopping(nn_trainer *t, nn_epoch_stats *st) {
  if (isnan(st->val_loss)) return;
  if (st->val_loss < t->best_val) {
    t->best_val = st->val_loss;
    t->bad_epochs = 0;
    st->improved = true;
  } else {
    t->bad_epochs++;
  }
  if (t->cfg.patience > 0 && t->bad_epochs >= t->cfg.patience)
    t->stopped = true;
}

static int64_t const_numel(const nn_trainer *t, int v) {
  const nn_value *val = &t->g->values[v];
  return nn_shape_numel(val->shape.ndim, val->shape.dims);
}

/* The best-epoch copies, allocated on first use (restore_best only). */
static int best_alloc(dlp_err *e, nn_trainer *t) {
  if (t->best_p) return DLP_OK;
  t->best_p = dlp_calloc_array((size_t)t->n_params + 1, sizeof *t->best_p);
  t->best_s = dlp_calloc_array((size_t)t->n_states + 1, sizeof *t->best_s);
  bool ok = t->best_p && t->best_s;
  for (int i = 0; ok && i < t->n_params; i++)
    ok = (t->best_p[i] = alloc_floats(const_numel(t, t->params[i]))) != NULL;
  for (int i = 0; ok && i < t->n_states; i++)
    ok = (t->best_s[i] = alloc_floats(const_numel(t, t->states[i]))) != NULL;
  return ok ? DLP_OK : dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
}

/* Copies the parameters and running statistics into the best-epoch copies
 * (save) or back into the graph. */
static int best_copy(dlp_err *e, nn_trainer *t, bool save) {
  int rc = best_alloc(e, t);
  for (int i = 0; rc == DLP_OK && i < t->n_params + t->n_states; i++) {
    bool p = i < t->n_params;
    int v = p ? t->params[i] : t->states[i - t->n_params];
    float *b = p ? t->best_p[i] : t->best_s[i - t->n_params];
    size_t bytes = (size_t)const_numel(t, v) * sizeof(float);
    if (save)
      memcpy(b, t->g->values[v].data, bytes);
    else
      memcpy(t->g->values[v].data, b, bytes);
  }
  return rc;
}

static int run_epoch(dlp_err *e, nn_trainer *t, const nn_train_data *train,
                     const nn_train_data *val, nn_epoch_stats *st) {
  *st = (nn_epoch_stats){.epoch = t->epoch, .val_loss = NAN, .val_acc = NAN};
  int rc = train_epoch(e, t, train, st);
  if (rc == DLP_OK && val) rc = validate(e, t, val, st);
  if (rc != DLP_OK) return rc;
  early_stopping(t, st);
  if (st->improved && t->cfg.restore_best) rc = best_copy(e, t, true);
  if (rc != DLP_OK) return rc;
  if (st->improved && t->cfg.restore_best) t->best_epoch = st->epoch;
  t->epoch++;
  if (t->cfg.checkpoint_dir) rc = nn_trainer_save(e, t, t->cfg.checkpoint_dir);
  return rc;
}

int nn_trainer_fit(dlp_err *e, nn_trainer *t, const nn_train_data *train,
                   const nn_train_data *val, nn_epoch_stats *history) {
  if (!train) return dlp_err_set(e, DLP_ERR_ARG, "train: no training data");
  int rc = check_data(e, t, train, "training");
  if (rc == DLP_OK && val) rc = check_data(e, t, val, "validation");
  if (rc != DLP_OK) return rc;
  int64_t need = train->n > t->cap ? train->n : t->cap;
  free(t->perm);
  t->perm = dlp_calloc_array((size_t)need, sizeof *t->perm);
  if (!t->perm) return dlp_err_set(e, DLP_ERR_NOMEM, "train: no memory");
  while (t->epoch < t->cfg.epochs && !t->stopped) {
    nn_epoch_stats st;
    rc = run_epoch(e, t, train, val, &st);
    if (rc != DLP_OK) return rc;
    if (history) history[st.epoch] = st;
    if (t->cfg.on_epoch && t->cfg.on_epoch(t->cfg.on_epoch_user, &st)) break;
  }
  /* Keras' restore_best_weights; the optimizer state stays the last
   * epoch's, so a later fit continues from the best weights */
  if (t->cfg.restore_best && t->best_epoch >= 0) return best_copy(e, t, false);
  return DLP_OK;
}

int nn_trainer_epoch(const nn_trainer *t) { return t->epoch; }
bool nn_trainer_stopped_early(const nn_trainer *t) { return t->stopped; }
int nn_trainer_best_epoch(const nn_trainer *t) { return t->best_epoch; }

/* ------------------------------------------------------------------------
 * Checkpoints: checkpoint.json + one .npy per array
 * ------------------------------------------------------------------------ */

static int save_array(dlp_err *e, const char *dir, const char *file,
                      const nn_value *val, const float *data) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
    return dlp_err_set(e, DLP_ERR_ARG, "checkpoint: path too long");
  dlp_npy_array a = {
      .dtype = 'f', .ndim = val->shape.ndim, .data = (void *)data};
  for (int d = 0; d < a.ndim; d++)
    a.dims[d] = val->shape.dims[d];
  a.nbytes = (size_t)nn_shape_numel(a.ndim, a.dims) * sizeof(float);
  return dlp_npy_save_array(e, path, &a);
}

static int load_array(dlp_err *e, const char *dir, const char *file,
                      const nn_value *val, float *data) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
    return dlp_err_set(e, DLP_ERR_ARG, "checkpoint: path too long");
  dlp_npy_array a = {0};
  int rc = dlp_npy_load_array(e, path, (uint64_t)1 << 34, &a);
  if (rc != DLP_OK) return rc;
  bool ok = a.dtype == 'f' && a.ndim == val->shape.ndim;
  for (int d = 0; ok && d < a.ndim; d++)
    ok = a.dims[d] == val->shape.dims[d];
  if (ok) memcpy(data, a.data, a.nbytes);
  dlp_npy_array_free(&a);
  if (!ok)
    return dlp_err_set(e, DLP_ERR_SCHEMA,
                       "checkpoint: %s does not have the shape of '%s'", path,
                       val->name);
  return DLP_OK;
}

/* Array i of a kind ("param", "m", "v", "state") is "<kind>_<i>.npy". */
static void array_file(char *buf, size_t n, const char *kind, int i) {
  snprintf(buf, n, "%s_%04d.npy", kind, i);
}

/* The restore_best copies: "best_param_<i>.npy", "best_state_<i>.npy". */
static int best_arrays(dlp_err *e, const nn_trainer *t, const char *dir,
                       bool save) {
  char file[64];
  int rc = DLP_OK;
  for (int i = 0; rc == DLP_OK && i < t->n_params + t->n_states; i++) {
    bool p = i < t->n_params;
    int k = p ? i : i - t->n_params;
    int v = p ? t->params[k] : t->states[k];
    float *b = p ? t->best_p[k] : t->best_s[k];
    array_file(file, sizeof file, p ? "best_param" : "best_state", k);
    rc = save ? save_array(e, dir, file, &t->g->values[v], b)
              : load_array(e, dir, file, &t->g->values[v], b);
  }
  return rc;
}

static int save_arrays(dlp_err *e, const nn_trainer *t, const char *dir,
                       cJSON *params, cJSON *states) {
  char file[64];
  bool adam = t->cfg.optim.kind == NN_OPTIM_ADAM;
  for (int i = 0; i < t->n_params; i++) {
    const nn_value *val = &t->g->values[t->params[i]];
    int rc;
    array_file(file, sizeof file, "param", i);
    rc = save_array(e, dir, file, val, val->data);
    array_file(file, sizeof file, "m", i);
    if (rc == DLP_OK) rc = save_array(e, dir, file, val, t->m[i]);
    array_file(file, sizeof file, "v", i);
    if (rc == DLP_OK && adam) rc = save_array(e, dir, file, val, t->v[i]);
    if (rc != DLP_OK) return rc;
    cJSON_AddItemToArray(params, cJSON_CreateString(val->name));
  }
  for (int i = 0; i < t->n_states; i++) {
    const nn_value *val = &t->g->values[t->states[i]];
    array_file(file, sizeof file, "state", i);
    int rc = save_array(e, dir, file, val, val->data);
    if (rc != DLP_OK) return rc;
    cJSON_AddItemToArray(states, cJSON_CreateString(val->name));
  }
  return t->best_epoch >= 0 ? best_arrays(e, t, dir, true) : DLP_OK;
}

static void add_u64(cJSON *o, const char *key, uint64_t x) {
  char buf[32];
  snprintf(buf, sizeof buf, "%016llx", (unsigned long long)x);
  cJSON_AddStringToObject(o, key, buf);
}

static cJSON *manifest(const nn_trainer *t) {
  cJSON *j = cJSON_CreateObject();
  uint64_t best;
  memcpy(&best, &t->best_val, sizeof best);
  cJSON_AddStringToObject(j, "format", "dlp-train-checkpoint");
  cJSON_AddNumberToObject(j, "version", 1);
  cJSON_AddStringToObject(j, "optimizer",
                          t->cfg.optim.kind == NN_OPTIM_ADAM ? "adam" : "sgd");
  cJSON_AddNumberToObject(j, "epoch", t->epoch);
  cJSON_AddNumberToObject(j, "step", (double)t->step);
  add_u64(j, "rng", t->rng.s);
  add_u64(j, "dropout_rng", t->drop_rng.s);
  add_u64(j, "best_val_loss_bits", best); /* exact, also for infinity */
  cJSON_AddNumberToObject(j, "bad_epochs", t->bad_epochs);
  cJSON_AddBoolToObject(j, "stopped", t->stopped);
  /* -1: no best-epoch copies in the checkpoint (restore_best off or no
   * validation loss yet) */
  cJSON_AddNumberToObject(j, "best_epoch", t->best_epoch);
  return j;
}

int nn_trainer_save(dlp_err *e, const nn_trainer *t, const char *dir) {
  if (!dir) return dlp_err_set(e, DLP_ERR_ARG, "checkpoint: no directory");
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return dlp_err_set(e, DLP_ERR_IO, "checkpoint: cannot create %s: %s", dir,
                       strerror(errno));
  cJSON *j = manifest(t);
  cJSON *params = cJSON_AddArrayToObject(j, "params");
  cJSON *states = cJSON_AddArrayToObject(j, "states");
  int rc = params && states ? save_arrays(e, t, dir, params, states)
                            : dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  char *text = rc == DLP_OK ? cJSON_Print(j) : NULL;
  cJSON_Delete(j);
  if (rc != DLP_OK) return rc;
  if (!text) return dlp_err_set(e, DLP_ERR_NOMEM, "checkpoint: no memory");
  char path[4096];
  snprintf(path, sizeof path, "%s/checkpoint.json", dir);
  rc = dlp_write_file_atomic(e, path, text, strlen(text));
  free(text);
  return rc;
}

static bool get_u64(const cJSON *j, const char *key, uint64_t *out) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, key);
  if (!cJSON_IsString(it)) return false;
  char *end = NULL;
  errno = 0;
  unsigned long long x = strtoull(it->valuestring, &end, 16);
  if (errno || !end || *end || end == it->valuestring) return false;
  *out = x;
  return true;
}

/* The names in the manifest must be the trainer's, in order. */
static int check_names(dlp_err *e, const nn_trainer *t, const cJSON *arr,
                       const int *ids, int n, const char *what) {
  if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n)
    return dlp_err_set(e, DLP_ERR_SCHEMA,
                       "checkpoint: %d %s expected, the manifest lists %d", n,
                       what, cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0);
  for (int i = 0; i < n; i++) {
    const cJSON *it = cJSON_GetArrayItem(arr, i);
    const char *name = t->g->values[ids[i]].name;
    if (!cJSON_IsString(it) || strcmp(it->valuestring, name) != 0)
      return dlp_err_set(e, DLP_ERR_SCHEMA,
                         "checkpoint: %s %d is '%s' here but '%s' there", what,
                         i, name, cJSON_IsString(it) ? it->valuestring : "?");
  }
  return DLP_OK;
}

static int load_arrays(dlp_err *e, nn_trainer *t, const char *dir) {
  char file[64];
  bool adam = t->cfg.optim.kind == NN_OPTIM_ADAM;
  for (int i = 0; i < t->n_params; i++) {
    nn_value *val = &t->g->values[t->params[i]];
    int rc;
    array_file(file, sizeof file, "param", i);
    rc = load_array(e, dir, file, val, val->data);
    array_file(file, sizeof file, "m", i);
    if (rc == DLP_OK) rc = load_array(e, dir, file, val, t->m[i]);
    array_file(file, sizeof file, "v", i);
    if (rc == DLP_OK && adam) rc = load_array(e, dir, file, val, t->v[i]);
    if (rc != DLP_OK) return rc;
  }
  for (int i = 0; i < t->n_states; i++) {
    nn_value *val = &t->g->values[t->states[i]];
    array_file(file, sizeof file, "state", i);
    int rc = load_array(e, dir, file, val, val->data);
    if (rc != DLP_OK) return rc;
  }
  return DLP_OK;
}

static int read_manifest(dlp_err *e, nn_trainer *t, const cJSON *j,
                         const char *path) {
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
  const cJSON *opt = cJSON_GetObjectItemCaseSensitive(j, "optimizer");
  const cJSON *ep = cJSON_GetObjectItemCaseSensitive(j, "epoch");
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "step");
  const cJSON *bad = cJSON_GetObjectItemCaseSensitive(j, "bad_epochs");
  const char *want = t->cfg.optim.kind == NN_OPTIM_ADAM ? "adam" : "sgd";
  uint64_t rng, drop_rng, best;
  if (!cJSON_IsString(fmt) ||
      strcmp(fmt->valuestring, "dlp-train-checkpoint") != 0 ||
      !cJSON_IsNumber(ep) || !cJSON_IsNumber(st) || !cJSON_IsNumber(bad) ||
      !get_u64(j, "rng", &rng) || !get_u64(j, "dropout_rng", &drop_rng) ||
      !get_u64(j, "best_val_loss_bits", &best))
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "checkpoint: %s is not a dlp training checkpoint", path);
  if (!cJSON_IsString(opt) || strcmp(opt->valuestring, want) != 0)
    return dlp_err_set(e, DLP_ERR_SCHEMA,
                       "checkpoint: %s was written by optimizer '%s', not "
                       "'%s'",
                       path, cJSON_IsString(opt) ? opt->valuestring : "?",
                       want);
  int rc = check_names(e, t, cJSON_GetObjectItemCaseSensitive(j, "params"),
                       t->params, t->n_params, "parameter");
  if (rc == DLP_OK)
    rc = check_names(e, t, cJSON_GetObjectItemCaseSensitive(j, "states"),
                     t->states, t->n_states, "state array");
  if (rc != DLP_OK) return rc;
  t->epoch = ep->valueint;
  t->step = (int64_t)st->valuedouble;
  t->bad_epochs = bad->valueint;
  t->stopped = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stopped"));
  t->rng.s = rng;
  t->drop_rng.s = drop_rng;
  memcpy(&t->best_val, &best, sizeof best);
  /* older checkpoints have no best_epoch: no copies */
  const cJSON *be = cJSON_GetObjectItemCaseSensitive(j, "best_epoch");
  t->best_epoch = cJSON_IsNumber(be) ? be->valueint : -1;
  if (t->best_epoch < -1 || t->best_epoch >= t->epoch)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "checkpoint: %s: best_epoch %d is not below epoch %d",
                       path, t->best_epoch, t->epoch);
  if (t->cfg.restore_best && t->best_epoch < 0 && isfinite(t->best_val))
    return dlp_err_set(e, DLP_ERR_SCHEMA,
                       "checkpoint: %s has no best-epoch weights to restore "
                       "(written without restore_best)",
                       path);
  if (!t->cfg.restore_best) t->best_epoch = -1;
  return DLP_OK;
}

int nn_trainer_load(dlp_err *e, nn_trainer *t, const char *dir) {
  char path[4096];
  if (!dir || snprintf(path, sizeof path, "%s/checkpoint.json", dir) >=
                  (int)sizeof path)
    return dlp_err_set(e, DLP_ERR_ARG, "checkpoint: bad directory");
  uint8_t *text = NULL;
  size_t len = 0;
  int rc = dlp_read_file(e, path, (uint64_t)64 << 20, &text, &len);
  if (rc != DLP_OK) {
    char msg[DLP_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", e ? e->msg : "");
    return dlp_err_set(e, rc, "checkpoint: %s: %s", path, msg);
  }
  cJSON *j = cJSON_ParseWithLength((const char *)text, len);
  free(text);
  if (!j)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "checkpoint: %s is not valid JSON",
                       path);
  rc = read_manifest(e, t, j, path);
  cJSON_Delete(j);
  if (rc == DLP_OK) rc = load_arrays(e, t, dir);
  if (rc == DLP_OK && t->best_epoch >= 0) rc = best_alloc(e, t);
  if (rc == DLP_OK && t->best_epoch >= 0) rc = best_arrays(e, t, dir, false);
  return rc;
}
