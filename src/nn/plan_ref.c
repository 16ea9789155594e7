/* plan_ref.c - the reference backend: every intermediate value gets a slice
 * of one float arena (first fit over the blocks freed by dead values), then
 * nodes run in order on the nn.h kernels (nn_ref_run_node, which the
 * trainer's forward pass shares). Flatten, reshape and identity are views of
 * their input. Single-threaded on purpose: this is the oracle. */
#include "plan_ref.h"

#include "backend.h"
#include "graph_util.h"
#include "transpose.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16 /* floats: 64-byte aligned slices */

typedef enum loc_kind {
  LOC_INPUT = 0, /* caller's input buffer */
  LOC_CONST,     /* graph constant */
  LOC_ARENA      /* arena + off */
} loc_kind;

typedef struct ref_loc {
  loc_kind kind;
  int index;   /* LOC_INPUT: position in g->inputs */
  int64_t off; /* LOC_ARENA: float offset */
} ref_loc;

typedef struct ref_state {
  const nn_graph *g;
  int64_t batch;
  nn_shape *shapes; /* per value, at this batch */
  ref_loc *loc;     /* per value */
  bool *is_view;    /* per node: output aliases input 0 */
  float *arena;
  int64_t arena_floats;
  const nn_tensor **in; /* the running node's inputs: max_in + 1 */
  nn_tensor *in_t;
  int max_in;
} ref_state;

static bool view_op(nn_op op) {
  return op == NN_OP_FLATTEN || op == NN_OP_RESHAPE || op == NN_OP_IDENTITY;
}

typedef struct block {
  int64_t off, size;
} block;

/* Live arena blocks sorted by offset; first fit into the gaps. */
typedef struct arena_alloc {
  block *b;
  int n;
  int64_t peak;
} arena_alloc;

static int64_t arena_take(arena_alloc *a, int64_t size) {
  int64_t at = 0;
  int pos = 0;
  for (; pos < a->n; pos++) {
    if (a->b[pos].off - at >= size) break;
    at = a->b[pos].off + a->b[pos].size;
  }
  memmove(a->b + pos + 1, a->b + pos, (size_t)(a->n - pos) * sizeof *a->b);
  a->b[pos] = (block){at, size};
  a->n++;
  if (at + size > a->peak) a->peak = at + size;
  return at;
}

static void arena_give(arena_alloc *a, int64_t off) {
  for (int i = 0; i < a->n; i++)
    if (a->b[i].off == off) {
      memmove(a->b + i, a->b + i + 1, (size_t)(a->n - i - 1) * sizeof *a->b);
      a->n--;
      return;
    }
}

static void ref_free(void *state) {
  ref_state *s = state;
  if (!s) return;
  free(s->shapes);
  free(s->loc);
  free(s->is_view);
  free(s->arena);
  free(s->in);
  free(s->in_t);
  free(s);
}

/* Each node value's root: itself, or for a view the root of its input. */
static void find_roots(const nn_graph *g, const bool *is_view, int *root) {
  for (int v = 0; v < g->n_values; v++)
    root[v] = v;
  for (int i = 0; i < g->n_nodes; i++) /* topological: inputs resolved */
    if (is_view[i]) root[g->nodes[i].out] = root[g->nodes[i].in[0]];
}

/* Lifetimes of arena roots, then first-fit offsets. */
static int assign_offsets(dlp_err *e, ref_state *s, const int *root) {
  const nn_graph *g = s->g;
  int nv = g->n_values, nn = g->n_nodes;
  int *last = dlp_malloc_array((size_t)nv + 1, sizeof *last);
  int *n_free = calloc((size_t)nn + 1, sizeof *n_free);
  int *free_at = dlp_malloc_array((size_t)nv + 1, sizeof *free_at);
  int *fstart = calloc((size_t)nn + 2, sizeof *fstart);
  arena_alloc a = {dlp_malloc_array((size_t)nv + 1, sizeof(block)), 0, 0};
  int rc = DLP_OK;
  if (!last || !n_free || !free_at || !fstart || !a.b) {
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "ref plan: out of memory");
    goto done;
  }
  for (int v = 0; v < nv; v++)
    last[v] = -1;
  for (int i = 0; i < nn; i++) {
    const nn_node *n = &g->nodes[i];
    for (int k = 0; k < n->n_in; k++)
      last[root[n->in[k]]] = i;
    if (last[root[n->out]] < i) last[root[n->out]] = i;
  }
  for (int k = 0; k < g->n_outputs; k++)
    last[root[g->outputs[k]]] = nn; /* copied out after the last node */
  /* Buckets: roots to release after node i. */
  for (int v = 0; v < nv; v++)
    if (s->loc[v].kind == LOC_ARENA && root[v] == v && last[v] < nn)
      n_free[last[v]]++;
  for (int i = 0; i < nn; i++)
    fstart[i + 1] = fstart[i] + n_free[i];
  memset(n_free, 0, (size_t)nn * sizeof *n_free);
  for (int v = 0; v < nv; v++)
    if (s->loc[v].kind == LOC_ARENA && root[v] == v && last[v] < nn)
      free_at[fstart[last[v]] + n_free[last[v]]++] = v;
  for (int i = 0; i < nn; i++) {
    int out = g->nodes[i].out;
    if (!s->is_view[i]) {
      int64_t numel = nn_shape_numel(s->shapes[out].ndim, s->shapes[out].dims);
      int64_t size = (numel + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
      s->loc[out].off = arena_take(&a, size > 0 ? size : ARENA_ALIGN);
    }
    for (int f = fstart[i]; f < fstart[i + 1]; f++)
      arena_give(&a, s->loc[free_at[f]].off);
  }
  s->arena_floats = a.peak;
done:
  free(last);
  free(n_free);
  free(free_at);
  free(fstart);
  free(a.b);
  return rc;
}

/* Shapes at this batch, checked against what the graph promises callers. */
static int plan_shapes(dlp_err *e, ref_state *s) {
  const nn_graph *g = s->g;
  int rc = nn_graph_infer_shapes(e, g, s->batch, s->shapes, NULL);
  for (int i = 0; rc == DLP_OK && i < g->n_nodes; i++) {
    int v = g->nodes[i].out;
    nn_shape want = nn_graph_value_shape(g, v, s->batch);
    const nn_shape *got = &s->shapes[v];
    bool same = want.ndim == got->ndim;
    for (int d = 0; same && d < got->ndim; d++)
      same = want.dims[d] == got->dims[d];
    if (!same) {
      char a[96], b[96];
      rc = dlp_err_set(
          e, DLP_ERR_UNSUPPORTED,
          "node '%s' (%s): at batch %lld the output is %s, not %s (the op "
          "does not scale with the batch)",
          g->nodes[i].name, nn_op_name(g->nodes[i].op), (long long)s->batch,
          nn_shape_str(got->ndim, got->dims, a, sizeof a),
          nn_shape_str(want.ndim, want.dims, b, sizeof b));
    }
  }
  return rc;
}

static int ref_plan(dlp_err *e, const nn_graph *g, int64_t batch, int threads,
                    void **state) {
  (void)threads;
  *state = NULL;
  ref_state *s = calloc(1, sizeof *s);
  if (!s) return dlp_err_set(e, DLP_ERR_NOMEM, "ref plan: out of memory");
  s->g = g;
  s->batch = batch;
  int nv = g->n_values, nn = g->n_nodes;
  s->shapes = dlp_malloc_array((size_t)nv + 1, sizeof *s->shapes);
  s->loc = calloc((size_t)nv + 1, sizeof *s->loc);
  s->is_view = calloc((size_t)nn + 1, sizeof *s->is_view);
  int *root = dlp_malloc_array((size_t)nv + 1, sizeof *root);
  int rc = DLP_OK;
  if (!s->shapes || !s->loc || !s->is_view || !root)
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "ref plan: out of memory");
  if (rc == DLP_OK) rc = plan_shapes(e, s);
  if (rc != DLP_OK) goto fail;
  for (int v = 0; v < nv; v++) {
    s->loc[v].kind = g->values[v].kind == NN_VALUE_CONST   ? LOC_CONST
                     : g->values[v].kind == NN_VALUE_INPUT ? LOC_INPUT
                                                           : LOC_ARENA;
    s->loc[v].index = -1;
  }
  for (int i = 0; i < g->n_inputs; i++)
    s->loc[g->inputs[i]].index = i;
  for (int i = 0; i < nn; i++) {
    s->is_view[i] = view_op(g->nodes[i].op);
    if (g->nodes[i].n_in > s->max_in) s->max_in = g->nodes[i].n_in;
  }
  find_roots(g, s->is_view, root);
  rc = assign_offsets(e, s, root);
  if (rc != DLP_OK) goto fail;
  /* Views point where their root lives. */
  for (int i = 0; i < nn; i++)
    if (s->is_view[i]) {
      int out = g->nodes[i].out;
      ref_loc l = s->loc[root[out]];
      s->loc[out] = l;
    }
  s->arena = dlp_malloc_array((size_t)(s->arena_floats + ARENA_ALIGN),
                              sizeof *s->arena);
  s->in = dlp_malloc_array((size_t)s->max_in + 1, sizeof *s->in);
  s->in_t = dlp_malloc_array((size_t)s->max_in + 1, sizeof *s->in_t);
  if (!s->arena || !s->in || !s->in_t) {
    rc = dlp_err_set(e, DLP_ERR_NOMEM,
                     "ref plan: no memory for a %lld-byte activation arena",
                     (long long)(s->arena_floats * (int64_t)sizeof(float)));
    goto fail;
  }
  free(root);
  *state = s;
  return DLP_OK;
fail:
  free(root);
  ref_free(s);
  return rc;
}

static float *value_data(const ref_state *s, const float *const *inputs,
                         int v) {
  const ref_loc *l = &s->loc[v];
  switch (l->kind) {
  case LOC_INPUT:
    return (float *)inputs[l->index];
  case LOC_CONST:
    return s->g->values[v].data;
  default:
    return s->arena + l->off;
  }
}

static void tensor_at(const ref_state *s, const float *const *inputs, int v,
                      nn_tensor *t) {
  nn_graph_shape_tensor(&s->shapes[v], t);
  t->data = value_data(s, inputs, v);
  t->is_view = true;
}

int nn_ref_run_node(dlp_err *e, const nn_node *n, const nn_tensor *const *x,
                    nn_tensor *y) {
  const nn_node_attr *a = &n->attr;
  const nn_tensor *b = n->n_in > 2 ? x[2] : NULL;
  nn_tensor g;
  switch (n->op) {
  case NN_OP_CONV2D:
    return nn_conv2d(e, &a->conv, x[0], x[1], b, y);
  case NN_OP_DENSE:
    return nn_dense(e, &a->dense, x[0], x[1], b, y);
  case NN_OP_BATCHNORM:
    return nn_batchnorm(e, a->eps, x[0], x[1], x[2], x[3], x[4], y);
  case NN_OP_ACT:
    return nn_act_apply(e, a->act, a->alpha, x[0], y);
  case NN_OP_CLIP:
    return nn_clip(e, a->clip_lo, a->clip_hi, x[0], y);
  case NN_OP_SOFTMAX:
    return nn_softmax(e, a->axis, x[0], y);
  case NN_OP_MAXPOOL:
    return nn_maxpool2d(e, &a->pool, x[0], y);
  case NN_OP_AVGPOOL:
    return nn_avgpool2d(e, &a->pool, x[0], y);
  case NN_OP_GLOBAL_AVGPOOL:
  case NN_OP_GLOBAL_MAXPOOL:
    /* The kernel writes (N, C, 1, ...); keepdims = false is the same data. */
    g = *y;
    g.ndim = x[0]->ndim;
    for (int d = 2; d < g.ndim; d++)
      g.dims[d] = 1;
    return n->op == NN_OP_GLOBAL_AVGPOOL ? nn_global_avgpool(e, x[0], &g)
                                         : nn_global_maxpool(e, x[0], &g);
  case NN_OP_ADD:
    return nn_add(e, x[0], x[1], y);
  case NN_OP_MUL:
    return nn_mul(e, x[0], x[1], y);
  case NN_OP_CONCAT:
    return nn_concat(e, x, n->n_in, a->axis, y);
  case NN_OP_FLATTEN:
  case NN_OP_RESHAPE:
  case NN_OP_IDENTITY:
    return y->data == x[0]->data ? DLP_OK : nn_reshape(e, x[0], y);
  case NN_OP_TRANSPOSE:
    return nn_transpose(e, x[0], a->perm, a->n_perm, y);
  case NN_OP_PAD:
    return nn_pad(e, &a->pad, x[0], y);
  default:
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED, "unknown op %d", (int)n->op);
  }
}

static int run_node(dlp_err *e, ref_state *s, const float *const *inputs,
                    int i) {
  const nn_node *n = &s->g->nodes[i];
  for (int k = 0; k < n->n_in; k++) {
    tensor_at(s, inputs, n->in[k], &s->in_t[k]);
    s->in[k] = &s->in_t[k];
  }
  nn_tensor y;
  tensor_at(s, inputs, n->out, &y);
  return nn_ref_run_node(e, n, s->in, &y);
}

static int ref_run(dlp_err *e, void *state, const float *const *inputs,
                   float *const *outputs) {
  ref_state *s = state;
  const nn_graph *g = s->g;
  for (int i = 0; i < g->n_inputs; i++)
    if (!inputs || !inputs[i])
      return dlp_err_set(e, DLP_ERR_ARG, "run: no data for input '%s'",
                         g->values[g->inputs[i]].name);
  for (int i = 0; i < g->n_outputs; i++)
    if (!outputs || !outputs[i])
      return dlp_err_set(e, DLP_ERR_ARG, "run: no buffer for output '%s'",
                         g->values[g->outputs[i]].name);
  for (int i = 0; i < g->n_nodes; i++) {
    dlp_err ke = {0};
    int rc = run_node(&ke, s, inputs, i);
    if (rc != DLP_OK)
      return dlp_err_set(e, rc, "node '%s' (%s): %s", g->nodes[i].name,
                         nn_op_name(g->nodes[i].op), ke.msg);
  }
  for (int i = 0; i < g->n_outputs; i++) {
    int v = g->outputs[i];
    int64_t numel = nn_shape_numel(s->shapes[v].ndim, s->shapes[v].dims);
    const float *src = value_data(s, inputs, v);
    if (numel > 0 && src != outputs[i])
      memmove(outputs[i], src, (size_t)numel * sizeof(float));
  }
  return DLP_OK;
}

static size_t ref_arena_bytes(const void *state) {
  const ref_state *s = state;
  return s ? (size_t)s->arena_floats * sizeof(float) : 0;
}

const nn_backend_ops nn_backend_ref = {"ref", ref_plan, ref_run,
                                       ref_arena_bytes, ref_free};
