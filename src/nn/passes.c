/* passes.c - graph rewrites that keep the results: identities removed,
 * zero padding folded into the convolution or average pool after it (Keras
 * ZeroPadding2D, PyTorch F.pad and avg_pool2d exports), batch norm folded into the convolution or dense before it,
 * activations fused into it; and nn_graph_cut (a chosen value becomes the
 * output). */
#include "graph.h"
#include "graph_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pass_ctx {
  nn_graph *g;
  int *uses;  /* per value: node inputs reading it, +1 per output mark */
  bool *dead; /* per node */
} pass_ctx;

static bool is_output(const nn_graph *g, int v) {
  for (int i = 0; i < g->n_outputs; i++)
    if (g->outputs[i] == v) return true;
  return false;
}

/* The conv/dense producing v when v feeds nothing else and is no output. */
static int sole_conv_producer(const pass_ctx *c, int v) {
  const nn_value *val = &c->g->values[v];
  if (val->kind != NN_VALUE_NODE || val->producer < 0) return -1;
  const nn_node *p = &c->g->nodes[val->producer];
  if (p->op != NN_OP_CONV2D && p->op != NN_OP_DENSE) return -1;
  if (c->uses[v] != 1) return -1;
  return val->producer;
}

static nn_act node_act(const nn_node *n) {
  return n->op == NN_OP_CONV2D ? n->attr.conv.act : n->attr.dense.act;
}

/* Node p takes over the output value of node n, which dies. */
static void take_output(pass_ctx *c, int p, int n) {
  nn_graph *g = c->g;
  int old = g->nodes[p].out;
  c->uses[old] = 0;
  g->nodes[p].out = g->nodes[n].out;
  g->values[g->nodes[n].out].producer = p;
  g->values[old].producer = -1;
  c->dead[n] = true;
}

static bool is_const(const nn_graph *g, int v) {
  return g->values[v].kind == NN_VALUE_CONST;
}

/* uses[] grows with the graph's values (each new const has one user). */
static int grow_uses(dlp_err *e, pass_ctx *c, int old_n) {
  if (c->g->n_values == old_n) return DLP_OK;
  int *u = dlp_realloc_array(c->uses, (size_t)c->g->n_values, sizeof *u);
  if (!u) return dlp_err_set(e, DLP_ERR_NOMEM, "optimize: out of memory");
  for (int v = old_n; v < c->g->n_values; v++)
    u[v] = 1;
  c->uses = u;
  return DLP_OK;
}

/* A const that only node `user` reads may be changed in place; otherwise
 * the node gets a private copy. Sets *data to the writable floats. */
static int private_const(dlp_err *e, pass_ctx *c, int user, int slot,
                         float **data) {
  nn_graph *g = c->g;
  int v = g->nodes[user].in[slot];
  if (c->uses[v] == 1) {
    *data = g->values[v].data;
    return DLP_OK;
  }
  char name[256];
  for (int k = 0; k == 0 || nn_graph_find_value(g, name) >= 0; k++)
    snprintf(name, sizeof name, "%s/folded_%d_%d", g->nodes[user].name, slot,
             k);
  int old_n = g->n_values;
  int id = nn_graph_add_const(g, name, g->values[v].shape.ndim,
                              g->values[v].shape.dims, g->values[v].data);
  if (id < 0)
    return dlp_err_set(e, g->build_err.code ? g->build_err.code : DLP_ERR_NOMEM,
                       "optimize: %s", g->build_err.msg);
  int rc = grow_uses(e, c, old_n);
  if (rc != DLP_OK) return rc;
  c->uses[v]--;
  g->nodes[user].in[slot] = id;
  *data = g->values[id].data;
  return DLP_OK;
}

/* Adds a zero bias to conv/dense node p with `count` outputs. */
static int add_zero_bias(dlp_err *e, pass_ctx *c, int p, int64_t count) {
  nn_graph *g = c->g;
  nn_node *n = &g->nodes[p];
  char name[256];
  snprintf(name, sizeof name, "%s/bias", n->name);
  for (int k = 1; nn_graph_find_value(g, name) >= 0; k++)
    snprintf(name, sizeof name, "%s/bias:%d", n->name, k);
  int old_n = g->n_values;
  float *zero = dlp_calloc_array((size_t)count, sizeof *zero);
  int id = zero ? nn_graph_add_const_owned(g, name, 1, &count, zero) : -1;
  int *in = dlp_realloc_array(n->in, 3, sizeof *in);
  if (in) n->in = in;
  if (id < 0 || !in)
    return dlp_err_set(e, DLP_ERR_NOMEM, "optimize: out of memory");
  int rc = grow_uses(e, c, old_n);
  if (rc != DLP_OK) return rc;
  n->in[2] = id;
  n->n_in = 3;
  return DLP_OK;
}

/* Folds BN node b into the conv/dense p that feeds it:
 * s = gamma / sqrt(var + eps), W'[o] = W[o] * s[o],
 * bias'[o] = (bias[o] - mean[o]) * s[o] + beta[o]. */
static int fold_bn(dlp_err *e, pass_ctx *c, int b, int p) {
  nn_graph *g = c->g;
  const nn_node *bn = &g->nodes[b];
  for (int k = 1; k < 5; k++)
    if (!is_const(g, bn->in[k])) return DLP_OK;
  nn_node *n = &g->nodes[p];
  if (!is_const(g, n->in[1]) || (n->n_in > 2 && !is_const(g, n->in[2])))
    return DLP_OK;
  const nn_shape *ws = &g->values[n->in[1]].shape;
  const nn_shape *ys = &g->values[n->out].shape;
  int64_t oc = ys->dims[1], inner;
  bool out_major; /* weight rows are output channels */
  if (n->op == NN_OP_CONV2D) {
    out_major = true;
  } else {
    if (ys->ndim != 2) return DLP_OK; /* BN axis 1 is not the dense axis */
    out_major = n->attr.dense.transb;
  }
  int64_t wn = nn_shape_numel(ws->ndim, ws->dims);
  if (oc <= 0 || wn % oc) return DLP_OK;
  inner = wn / oc;
  float *w = NULL, *bias = NULL;
  int rc = n->n_in == 2 ? add_zero_bias(e, c, p, oc) : DLP_OK;
  if (rc == DLP_OK) rc = private_const(e, c, p, 1, &w);
  if (rc == DLP_OK) rc = private_const(e, c, p, 2, &bias);
  if (rc != DLP_OK) return rc;
  bn = &g->nodes[b];
  const float *gam = g->values[bn->in[1]].data,
              *beta = g->values[bn->in[2]].data,
              *mean = g->values[bn->in[3]].data,
              *var = g->values[bn->in[4]].data;
  for (int64_t o = 0; o < oc; o++) {
    double s = (double)gam[o] / sqrt((double)var[o] + (double)bn->attr.eps);
    if (out_major)
      for (int64_t i = 0; i < inner; i++)
        w[o * inner + i] = (float)((double)w[o * inner + i] * s);
    else /* dense (in, out): column o */
      for (int64_t i = 0; i < inner; i++)
        w[i * oc + o] = (float)((double)w[i * oc + o] * s);
    bias[o] =
        (float)(((double)bias[o] - (double)mean[o]) * s + (double)beta[o]);
  }
  take_output(c, p, b);
  return DLP_OK;
}

/* The activation an ACT or CLIP node applies, or -1 when not fusable. */
static int fusable_act(const nn_node *n, float *alpha) {
  if (n->op == NN_OP_ACT) {
    *alpha = n->attr.alpha;
    return n->attr.act;
  }
  if (n->op == NN_OP_CLIP && n->attr.clip_lo == 0.0f) {
    *alpha = 0.0f;
    if (n->attr.clip_hi == 6.0f) return NN_ACT_RELU6;
    if (isinf(n->attr.clip_hi) && n->attr.clip_hi > 0) return NN_ACT_RELU;
  }
  return -1;
}

static void fuse_act(pass_ctx *c, int a, int p) {
  nn_graph *g = c->g;
  float alpha = 0;
  int act = fusable_act(&g->nodes[a], &alpha);
  if (act < 0 || act == NN_ACT_NONE) return;
  nn_node *n = &g->nodes[p];
  if (n->op == NN_OP_CONV2D) {
    n->attr.conv.act = (nn_act)act;
    n->attr.conv.alpha = alpha;
  } else {
    n->attr.dense.act = (nn_act)act;
    n->attr.dense.alpha = alpha;
  }
  take_output(c, p, a);
}

/* Identity node i: its producer writes the identity's value directly, or
 * consumers read the identity's input instead. */
static void drop_identity(pass_ctx *c, int i) {
  nn_graph *g = c->g;
  nn_node *n = &g->nodes[i];
  int x = n->in[0], y = n->out;
  const nn_value *xv = &g->values[x];
  if (xv->kind == NN_VALUE_NODE && xv->producer >= 0 && c->uses[x] == 1) {
    take_output(c, xv->producer, i);
    return;
  }
  if (is_output(g, y)) {
    /* The output keeps its name: x takes it, when x may be renamed. */
    if (xv->kind != NN_VALUE_NODE || is_output(g, x)) return;
    for (int k = 0; k < g->n_outputs; k++)
      if (g->outputs[k] == y) g->outputs[k] = x;
    char *tmp = g->values[x].name;
    g->values[x].name = g->values[y].name;
    g->values[y].name = tmp;
  }
  for (int j = 0; j < g->n_nodes; j++)
    for (int k = 0; k < g->nodes[j].n_in; k++)
      if (g->nodes[j].in[k] == y) {
        g->nodes[j].in[k] = x;
        c->uses[x]++;
      }
  c->uses[x]--;
  c->uses[y] = 0;
  c->dead[i] = true;
}

/* Conv or average-pool node i reads a constant-zero spatial Pad whose
 * output nothing else reads: the pad amounts move into the node's own
 * padding, which oneDNN handles inside the kernel instead of a copy with a
 * layout change on each side (Keras MobileNetV2 has such a pad before each
 * stride-2 depthwise conv; PyTorch exports avg_pool2d(padding=1) as Pad +
 * AveragePool, 9 times in InceptionV3). An average pool must count padding
 * already, or have none of its own, and then counts the zeros it absorbs;
 * its pads must stay below the kernel, and ceil_mode (whose rule depends on
 * where padding is declared) is left alone. */
static void fold_pad(pass_ctx *c, int i) {
  nn_graph *g = c->g;
  nn_node *conv = &g->nodes[i];
  int x = conv->in[0];
  const nn_value *xv = &g->values[x];
  if (xv->kind != NN_VALUE_NODE || xv->producer < 0 || c->uses[x] != 1 ||
      is_output(g, x))
    return;
  int pi = xv->producer;
  const nn_node *pad = &g->nodes[pi];
  const nn_pad_attr *a = &pad->attr.pad;
  if (pad->op != NN_OP_PAD || c->dead[pi] || a->mode != NN_PAD_CONSTANT ||
      a->value != 0.0f || xv->shape.ndim != 4)
    return;
  const int64_t *b = a->pads, *en = a->pads + 4; /* begins, then ends */
  if (b[0] || b[1] || en[0] || en[1]) return;    /* batch or channels */
  bool pool = conv->op == NN_OP_AVGPOOL;
  nn_pool2d_attr *pl = &conv->attr.pool;
  int *own = pool ? pl->pads : conv->attr.conv.pads;
  if (pool && (pl->ceil_mode ||
               (!pl->count_include_pad && (own[0] | own[1] | own[2] | own[3]))))
    return;
  int64_t sum[4] = {own[0] + b[2], own[1] + b[3], own[2] + en[2],
                    own[3] + en[3]};
  for (int k = 0; k < 4; k++)
    if (sum[k] > INT32_MAX || (pool && sum[k] >= pl->kernel[k % 2])) return;
  for (int k = 0; k < 4; k++) own[k] = (int)sum[k];
  if (pool) pl->count_include_pad = true;
  conv->in[0] = pad->in[0]; /* one reader moves from x to the pad's input */
  c->uses[x] = 0;
  c->dead[pi] = true;
}

static int count_uses(dlp_err *e, pass_ctx *c) {
  nn_graph *g = c->g;
  c->uses = calloc((size_t)g->n_values + 1, sizeof *c->uses);
  c->dead = calloc((size_t)g->n_nodes + 1, sizeof *c->dead);
  if (!c->uses || !c->dead)
    return dlp_err_set(e, DLP_ERR_NOMEM, "optimize: out of memory");
  for (int i = 0; i < g->n_nodes; i++)
    for (int k = 0; k < g->nodes[i].n_in; k++)
      c->uses[g->nodes[i].in[k]]++;
  for (int i = 0; i < g->n_outputs; i++)
    c->uses[g->outputs[i]]++;
  return DLP_OK;
}

static void remove_dead(pass_ctx *c) {
  nn_graph *g = c->g;
  int k = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    if (c->dead[i]) {
      free(g->nodes[i].name);
      free(g->nodes[i].in);
    } else {
      g->nodes[k++] = g->nodes[i];
    }
  }
  g->n_nodes = k;
}

int nn_graph_optimize(dlp_err *e, nn_graph *g) {
  if (!g) return dlp_err_set(e, DLP_ERR_ARG, "optimize: NULL graph");
  int rc = g->finalized ? DLP_OK : nn_graph_finalize(e, g);
  if (rc != DLP_OK) return rc;
  pass_ctx c = {g, NULL, NULL};
  rc = count_uses(e, &c);
  for (int i = 0; rc == DLP_OK && i < g->n_nodes; i++)
    if (g->nodes[i].op == NN_OP_IDENTITY) drop_identity(&c, i);
  for (int i = 0; rc == DLP_OK && i < g->n_nodes; i++)
    if ((g->nodes[i].op == NN_OP_CONV2D || g->nodes[i].op == NN_OP_AVGPOOL) &&
        !c.dead[i])
      fold_pad(&c, i);
  /* Nodes are in topological order, so conv -> bn -> relu folds, then
   * fuses into the same conv. */
  for (int i = 0; rc == DLP_OK && i < g->n_nodes; i++) {
    nn_node *n = &g->nodes[i];
    if (c.dead[i]) continue;
    if (n->op != NN_OP_BATCHNORM && n->op != NN_OP_ACT && n->op != NN_OP_CLIP)
      continue;
    int p = sole_conv_producer(&c, n->in[0]);
    if (p < 0 || node_act(&g->nodes[p]) != NN_ACT_NONE) continue;
    if (n->op == NN_OP_BATCHNORM)
      rc = fold_bn(e, &c, i, p);
    else
      fuse_act(&c, i, p);
  }
  if (rc == DLP_OK) {
    remove_dead(&c);
    g->finalized = false;
    rc = nn_graph_finalize(e, g);
  }
  free(c.uses);
  free(c.dead);
  return rc;
}

int nn_graph_cut(dlp_err *e, nn_graph *g, const char *name) {
  if (!g || !name) return dlp_err_set(e, DLP_ERR_ARG, "cut: no graph or name");
  int v = nn_graph_find_value(g, name);
  if (v < 0) {
    int n = nn_graph_find_node(g, name);
    if (n >= 0) v = g->nodes[n].out;
  }
  if (v < 0)
    return dlp_err_set(e, DLP_ERR_NOT_FOUND,
                       "cut: the model has no layer or value named '%s'", name);
  if (g->n_outputs < 1) {
    int *o = dlp_malloc_array(1, sizeof *o);
    if (!o) return dlp_err_set(e, DLP_ERR_NOMEM, "cut: out of memory");
    free(g->outputs);
    g->outputs = o;
  }
  g->outputs[0] = v;
  g->n_outputs = 1;
  g->finalized = false;
  return nn_graph_finalize(e, g);
}
