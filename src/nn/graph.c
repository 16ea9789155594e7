/* graph.c - the graph IR: builders, lookup, and nn_graph_finalize (checks,
 * dead-node removal, topological order, shape inference with a symbolic
 * batch). */
#include "graph.h"
#include "graph_util.h"
#include "transpose.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Guards against hostile model files (see also NN_GRAPH_MAX_CONST_BYTES). */
#define NN_GRAPH_MAX_NODE_INPUTS 4096
#define NN_GRAPH_MAX_NAME 4096

static const char *const op_names[NN_OP_COUNT] = {
    [NN_OP_CONV2D] = "conv2d",
    [NN_OP_DENSE] = "dense",
    [NN_OP_BATCHNORM] = "batchnorm",
    [NN_OP_ACT] = "activation",
    [NN_OP_CLIP] = "clip",
    [NN_OP_SOFTMAX] = "softmax",
    [NN_OP_MAXPOOL] = "maxpool",
    [NN_OP_AVGPOOL] = "avgpool",
    [NN_OP_GLOBAL_AVGPOOL] = "global_avgpool",
    [NN_OP_GLOBAL_MAXPOOL] = "global_maxpool",
    [NN_OP_ADD] = "add",
    [NN_OP_MUL] = "mul",
    [NN_OP_CONCAT] = "concat",
    [NN_OP_FLATTEN] = "flatten",
    [NN_OP_RESHAPE] = "reshape",
    [NN_OP_TRANSPOSE] = "transpose",
    [NN_OP_PAD] = "pad",
    [NN_OP_IDENTITY] = "identity",
};

const char *nn_op_name(nn_op op) {
  if ((int)op <= 0 || op >= NN_OP_COUNT) return "unknown-op";
  return op_names[op];
}

void nn_node_attr_init(nn_op op, nn_node_attr *a) {
  memset(a, 0, sizeof *a);
  nn_conv2d_attr_init(&a->conv);
  nn_dense_attr_init(&a->dense);
  nn_pool2d_attr_init(&a->pool);
  nn_pad_attr_init(&a->pad);
  a->act = NN_ACT_NONE;
  a->alpha = 0.01f;
  a->clip_lo = -INFINITY;
  a->clip_hi = INFINITY;
  a->eps = 1e-3f;
  a->axis = op == NN_OP_SOFTMAX ? -1 : 1;
  a->keepdims = true;
  for (int i = 0; i < NN_MAX_DIMS; i++)
    a->shape[i] = 0;
}

int nn_graph_new(dlp_err *e, nn_graph **out) {
  *out = calloc(1, sizeof **out);
  if (!*out) return dlp_err_set(e, DLP_ERR_NOMEM, "graph: out of memory");
  return DLP_OK;
}

void nn_graph_free(nn_graph *g) {
  if (!g) return;
  for (int i = 0; i < g->n_values; i++) {
    free(g->values[i].name);
    free(g->values[i].data);
  }
  for (int i = 0; i < g->n_nodes; i++) {
    free(g->nodes[i].name);
    free(g->nodes[i].in);
  }
  free(g->values);
  free(g->nodes);
  free(g->inputs);
  free(g->outputs);
  free(g->name);
  free(g);
}

/* Records the first builder failure; returns -1 for the builder to return. */
static int build_fail(nn_graph *g, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int build_fail(nn_graph *g, int code, const char *fmt, ...) {
  if (g && g->build_err.code == DLP_OK) {
    va_list ap;
    va_start(ap, fmt);
    dlp_err_vset(&g->build_err, code, fmt, ap);
    va_end(ap);
  }
  return -1;
}

int nn_graph_find_value(const nn_graph *g, const char *name) {
  if (!g || !name) return -1;
  for (int i = 0; i < g->n_values; i++)
    if (strcmp(g->values[i].name, name) == 0) return i;
  return -1;
}

int nn_graph_find_node(const nn_graph *g, const char *name) {
  if (!g || !name) return -1;
  for (int i = 0; i < g->n_nodes; i++)
    if (strcmp(g->nodes[i].name, name) == 0) return i;
  return -1;
}

static bool name_ok(nn_graph *g, const char *what, const char *name) {
  if (!name || !name[0]) {
    build_fail(g, DLP_ERR_ARG, "graph: %s without a name", what);
    return false;
  }
  if (strlen(name) > NN_GRAPH_MAX_NAME) {
    build_fail(g, DLP_ERR_ARG, "graph: %s name longer than %d bytes", what,
               NN_GRAPH_MAX_NAME);
    return false;
  }
  return true;
}

/* Appends a value (name copied); -1 on failure. */
static int push_value(nn_graph *g, const char *name, nn_value_kind kind,
                      int ndim, const int64_t *dims, float *data) {
  if (g->n_values == g->cap_values) {
    int cap = g->cap_values ? 2 * g->cap_values : 64;
    nn_value *v = dlp_realloc_array(g->values, (size_t)cap, sizeof *v);
    if (!v) return build_fail(g, DLP_ERR_NOMEM, "graph: out of memory");
    g->values = v;
    g->cap_values = cap;
  }
  char *nm = dlp_strdup(name);
  if (!nm) return build_fail(g, DLP_ERR_NOMEM, "graph: out of memory");
  nn_value *v = &g->values[g->n_values];
  memset(v, 0, sizeof *v);
  v->name = nm;
  v->kind = kind;
  v->producer = -1;
  v->data = data;
  v->shape.ndim = ndim;
  for (int i = 0; i < NN_MAX_DIMS; i++)
    v->shape.dims[i] = i < ndim ? dims[i] : 1;
  g->finalized = false;
  return g->n_values++;
}

static int push_id(int **arr, int *n, int id) {
  for (int i = 0; i < *n; i++)
    if ((*arr)[i] == id) return 0;
  int *a = dlp_realloc_array(*arr, (size_t)*n + 1, sizeof *a);
  if (!a) return -1;
  a[(*n)++] = id;
  *arr = a;
  return 0;
}

int nn_graph_add_input(nn_graph *g, const char *name, int ndim,
                       const int64_t *dims) {
  if (!g) return -1;
  if (!name_ok(g, "input", name)) return -1;
  if (ndim < 1 || ndim > NN_MAX_DIMS || !dims)
    return build_fail(g, DLP_ERR_ARG,
                      "graph: input '%s' has rank %d, outside 1..%d", name,
                      ndim, NN_MAX_DIMS);
  int64_t d1[NN_MAX_DIMS];
  for (int i = 0; i < ndim; i++) {
    d1[i] = (i == 0 && dims[0] == -1) ? 1 : dims[i];
    if (d1[i] < 1)
      return build_fail(g, DLP_ERR_ARG,
                        "graph: input '%s' dim %d is %lld (only the first "
                        "dim may be -1, the batch)",
                        name, i, (long long)dims[i]);
  }
  if (nn_shape_numel(ndim, d1) < 0)
    return build_fail(g, DLP_ERR_TOO_LARGE,
                      "graph: input '%s' has more than %lld elements", name,
                      (long long)NN_MAX_NUMEL);
  if (nn_graph_find_value(g, name) >= 0)
    return build_fail(g, DLP_ERR_ARG, "graph: duplicate value name '%s'", name);
  int id = push_value(g, name, NN_VALUE_INPUT, ndim, dims, NULL);
  if (id < 0) return -1;
  if (push_id(&g->inputs, &g->n_inputs, id) < 0)
    return build_fail(g, DLP_ERR_NOMEM, "graph: out of memory");
  return id;
}

static int64_t const_bytes(const nn_graph *g) {
  int64_t sum = 0;
  for (int i = 0; i < g->n_values; i++)
    if (g->values[i].kind == NN_VALUE_CONST)
      sum += nn_shape_numel(g->values[i].shape.ndim, g->values[i].shape.dims) *
             (int64_t)sizeof(float);
  return sum;
}

int nn_graph_add_const_owned(nn_graph *g, const char *name, int ndim,
                             const int64_t *dims, float *data) {
  if (!g) {
    free(data);
    return -1;
  }
  int64_t n = nn_shape_numel(ndim, dims);
  int id = -1;
  if (!name_ok(g, "constant", name)) {
  } else if (ndim < 0 || ndim > NN_MAX_DIMS || (ndim > 0 && !dims)) {
    build_fail(g, DLP_ERR_ARG,
               "graph: constant '%s' has rank %d, outside 0..%d", name, ndim,
               NN_MAX_DIMS);
  } else if (n < 0) {
    build_fail(g, DLP_ERR_TOO_LARGE,
               "graph: constant '%s' has a negative dim or more than %lld "
               "elements",
               name, (long long)NN_MAX_NUMEL);
  } else if (!data && n > 0) {
    build_fail(g, DLP_ERR_ARG, "graph: constant '%s' has no data", name);
  } else if (const_bytes(g) + n * (int64_t)sizeof(float) >
             NN_GRAPH_MAX_CONST_BYTES) {
    build_fail(g, DLP_ERR_TOO_LARGE,
               "graph: constant '%s' takes the weights past %lld bytes", name,
               (long long)NN_GRAPH_MAX_CONST_BYTES);
  } else if (nn_graph_find_value(g, name) >= 0) {
    build_fail(g, DLP_ERR_ARG, "graph: duplicate value name '%s'", name);
  } else {
    id = push_value(g, name, NN_VALUE_CONST, ndim, dims, data);
  }
  if (id < 0) free(data);
  return id;
}

int nn_graph_add_const(nn_graph *g, const char *name, int ndim,
                       const int64_t *dims, const float *data) {
  if (!g) return -1;
  int64_t n = nn_shape_numel(ndim, dims);
  float *copy = NULL;
  if (n > 0 && data) {
    copy = dlp_malloc_array((size_t)n, sizeof *copy);
    if (!copy)
      return build_fail(g, DLP_ERR_NOMEM,
                        "graph: no memory for constant '%s' (%lld floats)",
                        name ? name : "?", (long long)n);
    memcpy(copy, data, (size_t)n * sizeof *copy);
  }
  return nn_graph_add_const_owned(g, name, ndim, dims, copy);
}

/* "name", or "name:1", "name:2", ... when taken; malloc'd. */
static char *free_value_name(const nn_graph *g, const char *name) {
  if (nn_graph_find_value(g, name) < 0) return dlp_strdup(name);
  size_t n = strlen(name) + 16;
  char *buf = malloc(n);
  if (!buf) return NULL;
  for (int k = 1;; k++) {
    snprintf(buf, n, "%s:%d", name, k);
    if (nn_graph_find_value(g, buf) < 0) return buf;
  }
}

int nn_graph_add_node(nn_graph *g, nn_op op, const char *name, const int *in,
                      int n_in, const nn_node_attr *attr) {
  if (!g) return -1;
  if (!name_ok(g, "node", name)) return -1;
  if ((int)op <= 0 || op >= NN_OP_COUNT)
    return build_fail(g, DLP_ERR_ARG, "graph: node '%s' has unknown op %d",
                      name, (int)op);
  if (n_in < 0 || n_in > NN_GRAPH_MAX_NODE_INPUTS || (n_in > 0 && !in))
    return build_fail(g, DLP_ERR_ARG, "graph: node '%s' has %d inputs", name,
                      n_in);
  for (int i = 0; i < n_in; i++)
    if (in[i] < 0 || in[i] >= g->n_values)
      return build_fail(g, DLP_ERR_ARG,
                        "graph: node '%s' (%s): input %d is not a value (id "
                        "%d)",
                        name, nn_op_name(op), i, in[i]);
  if (nn_graph_find_node(g, name) >= 0)
    return build_fail(g, DLP_ERR_ARG, "graph: duplicate node name '%s'", name);
  nn_node nd;
  memset(&nd, 0, sizeof nd);
  if (attr) /* before the arrays move: attr may point into them */
    nd.attr = *attr;
  else
    nn_node_attr_init(op, &nd.attr);
  if (g->n_nodes == g->cap_nodes) {
    int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
    nn_node *nodes = dlp_realloc_array(g->nodes, (size_t)cap, sizeof *nodes);
    if (!nodes) return build_fail(g, DLP_ERR_NOMEM, "graph: out of memory");
    g->nodes = nodes;
    g->cap_nodes = cap;
  }
  nd.op = op;
  nd.n_in = n_in;
  nd.name = dlp_strdup(name);
  nd.in = dlp_malloc_array(n_in > 0 ? (size_t)n_in : 1, sizeof *nd.in);
  char *vname = free_value_name(g, name);
  int out = -1;
  if (nd.name && nd.in && vname)
    out = push_value(g, vname, NN_VALUE_NODE, 0, NULL, NULL);
  free(vname);
  if (out < 0) {
    free(nd.name);
    free(nd.in);
    return build_fail(g, DLP_ERR_NOMEM, "graph: out of memory");
  }
  if (n_in > 0) memcpy(nd.in, in, (size_t)n_in * sizeof *nd.in);
  nd.out = out;
  g->values[out].producer = g->n_nodes;
  g->nodes[g->n_nodes++] = nd;
  return out;
}

void nn_graph_mark_output(nn_graph *g, int value) {
  if (!g) return;
  if (value < 0 || value >= g->n_values) {
    build_fail(g, DLP_ERR_ARG, "graph: output %d is not a value", value);
    return;
  }
  if (push_id(&g->outputs, &g->n_outputs, value) < 0)
    build_fail(g, DLP_ERR_NOMEM, "graph: out of memory");
  g->finalized = false;
}

nn_shape nn_graph_value_shape(const nn_graph *g, int v, int64_t batch) {
  nn_shape s = g->values[v].shape;
  if (s.ndim > 0 && s.dims[0] == -1) s.dims[0] = batch;
  return s;
}

/* ------------------------------------------------------------------------
 * Finalize
 * ------------------------------------------------------------------------ */

static int min_arity(nn_op op) {
  switch (op) {
  case NN_OP_CONV2D:
  case NN_OP_DENSE:
  case NN_OP_ADD:
  case NN_OP_MUL:
    return 2;
  case NN_OP_BATCHNORM:
    return 5;
  default:
    return 1;
  }
}

static int max_arity(nn_op op) {
  switch (op) {
  case NN_OP_CONV2D:
  case NN_OP_DENSE:
    return 3;
  case NN_OP_ADD:
  case NN_OP_MUL:
    return 2;
  case NN_OP_BATCHNORM:
    return 5;
  case NN_OP_CONCAT:
    return NN_GRAPH_MAX_NODE_INPUTS;
  default:
    return 1;
  }
}

/* Ids, arity, one producer per node value. */
static int check_structure(dlp_err *e, nn_graph *g) {
  if (g->n_outputs < 1)
    return dlp_err_set(e, DLP_ERR_ARG, "graph: no output marked");
  for (int i = 0; i < g->n_outputs; i++)
    if (g->outputs[i] < 0 || g->outputs[i] >= g->n_values)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "graph: output %d is not a value",
                         g->outputs[i]);
  for (int i = 0; i < g->n_inputs; i++)
    if (g->inputs[i] < 0 || g->inputs[i] >= g->n_values ||
        g->values[g->inputs[i]].kind != NN_VALUE_INPUT)
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "graph: input %d is not an input value", i);
  for (int v = 0; v < g->n_values; v++) {
    nn_value *val = &g->values[v];
    val->producer = -1;
    if (val->kind == NN_VALUE_CONST && !val->data &&
        nn_shape_numel(val->shape.ndim, val->shape.dims) > 0)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "graph: constant '%s' has no data",
                         val->name);
  }
  for (int i = 0; i < g->n_nodes; i++) {
    nn_node *n = &g->nodes[i];
    if ((int)n->op <= 0 || n->op >= NN_OP_COUNT)
      return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                         "graph: node '%s' has unknown op %d", n->name,
                         (int)n->op);
    if (n->n_in < min_arity(n->op) || n->n_in > max_arity(n->op)) {
      int lo = min_arity(n->op), hi = max_arity(n->op);
      char want[48];
      if (lo == hi)
        snprintf(want, sizeof want, "%d", lo);
      else if (hi == NN_GRAPH_MAX_NODE_INPUTS)
        snprintf(want, sizeof want, "at least %d", lo);
      else
        snprintf(want, sizeof want, "%d to %d", lo, hi);
      return dlp_err_set(e, DLP_ERR_ARG,
                         "node '%s' (%s): has %d inputs, expects %s", n->name,
                         nn_op_name(n->op), n->n_in, want);
    }
    for (int k = 0; k < n->n_in; k++)
      if (n->in[k] < 0 || n->in[k] >= g->n_values)
        return dlp_err_set(e, DLP_ERR_CORRUPT,
                           "node '%s' (%s): input %d is not a value (id %d)",
                           n->name, nn_op_name(n->op), k, n->in[k]);
    if (n->out < 0 || n->out >= g->n_values ||
        g->values[n->out].kind != NN_VALUE_NODE)
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "node '%s' (%s): its output is not a node value",
                         n->name, nn_op_name(n->op));
    if (g->values[n->out].producer >= 0)
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "graph: value '%s' is produced by two nodes",
                         g->values[n->out].name);
    g->values[n->out].producer = i;
  }
  return DLP_OK;
}

/* Marks the nodes some output depends on; a node value nobody produces is
 * an error. */
static int mark_live(dlp_err *e, const nn_graph *g, bool *live) {
  int *stack = dlp_malloc_array((size_t)g->n_values + 1, sizeof *stack);
  bool *seen = calloc((size_t)g->n_values + 1, sizeof *seen);
  int rc = DLP_OK, top = 0;
  if (!stack || !seen)
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "graph: out of memory");
  for (int i = 0; rc == DLP_OK && i < g->n_outputs; i++)
    if (!seen[g->outputs[i]]) {
      seen[g->outputs[i]] = true;
      stack[top++] = g->outputs[i];
    }
  while (rc == DLP_OK && top > 0) {
    const nn_value *v = &g->values[stack[--top]];
    if (v->kind != NN_VALUE_NODE) continue;
    if (v->producer < 0) {
      rc = dlp_err_set(e, DLP_ERR_CORRUPT, "graph: no node produces value '%s'",
                       v->name);
      break;
    }
    const nn_node *n = &g->nodes[v->producer];
    live[v->producer] = true;
    for (int k = 0; k < n->n_in; k++)
      if (!seen[n->in[k]]) {
        seen[n->in[k]] = true;
        stack[top++] = n->in[k];
      }
  }
  free(stack);
  free(seen);
  return rc;
}

static void node_clear(nn_node *n) {
  free(n->name);
  free(n->in);
  n->name = NULL;
  n->in = NULL;
}

/* Kahn's algorithm over the live nodes: *order gets node indices. */
static int topo_sort(dlp_err *e, const nn_graph *g, int *order) {
  int nn = g->n_nodes, rc = DLP_OK;
  int *indeg = calloc((size_t)nn + 1, sizeof *indeg);
  int *ncons = calloc((size_t)nn + 1, sizeof *ncons);
  int *cstart = calloc((size_t)nn + 2, sizeof *cstart);
  int n_edges = 0;
  for (int i = 0; i < nn; i++)
    n_edges += g->nodes[i].n_in;
  int *cons = dlp_malloc_array((size_t)n_edges + 1, sizeof *cons);
  if (!indeg || !ncons || !cstart || !cons) {
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "graph: out of memory");
    goto done;
  }
  /* Consumers of each node as a CSR list; an edge per input slot. */
  for (int i = 0; i < nn; i++)
    for (int k = 0; k < g->nodes[i].n_in; k++) {
      int p = g->values[g->nodes[i].in[k]].producer;
      if (p >= 0) {
        ncons[p]++;
        indeg[i]++;
      }
    }
  for (int i = 0; i < nn; i++)
    cstart[i + 1] = cstart[i] + ncons[i];
  memset(ncons, 0, (size_t)nn * sizeof *ncons);
  for (int i = 0; i < nn; i++)
    for (int k = 0; k < g->nodes[i].n_in; k++) {
      int p = g->values[g->nodes[i].in[k]].producer;
      if (p >= 0) cons[cstart[p] + ncons[p]++] = i;
    }
  int head = 0, tail = 0;
  for (int i = 0; i < nn; i++)
    if (indeg[i] == 0) order[tail++] = i;
  while (head < tail) {
    int p = order[head++];
    for (int c = cstart[p]; c < cstart[p + 1]; c++)
      if (--indeg[cons[c]] == 0) order[tail++] = cons[c];
  }
  if (tail < nn) {
    /* Every unsorted node has an unsorted predecessor: walking back nn
     * steps from one of them ends on a cycle. */
    int cur = -1;
    for (int i = 0; i < nn && cur < 0; i++)
      if (indeg[i] > 0) cur = i;
    for (int step = 0; step < nn; step++) {
      const nn_node *n = &g->nodes[cur];
      for (int k = 0; k < n->n_in; k++) {
        int p = g->values[n->in[k]].producer;
        if (p >= 0 && indeg[p] > 0) {
          cur = p;
          break;
        }
      }
    }
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "graph has a cycle through node '%s'",
                     g->nodes[cur].name);
  }
done:
  free(indeg);
  free(ncons);
  free(cstart);
  free(cons);
  return rc;
}

/* Removes dead nodes, then their output values and the constants nobody
 * reads (graph inputs always stay), renumbering value ids in order. */
static int compact(dlp_err *e, nn_graph *g, const bool *live) {
  int k = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    if (live[i])
      g->nodes[k++] = g->nodes[i];
    else
      node_clear(&g->nodes[i]);
  }
  g->n_nodes = k;
  int *remap = dlp_malloc_array((size_t)g->n_values + 1, sizeof *remap);
  bool *used = calloc((size_t)g->n_values + 1, sizeof *used);
  if (!remap || !used) {
    free(remap);
    free(used);
    return dlp_err_set(e, DLP_ERR_NOMEM, "graph: out of memory");
  }
  for (int i = 0; i < g->n_nodes; i++) {
    used[g->nodes[i].out] = true;
    for (int j = 0; j < g->nodes[i].n_in; j++)
      used[g->nodes[i].in[j]] = true;
  }
  for (int i = 0; i < g->n_outputs; i++)
    used[g->outputs[i]] = true;
  for (int i = 0; i < g->n_inputs; i++)
    used[g->inputs[i]] = true;
  int nv = 0;
  for (int v = 0; v < g->n_values; v++) {
    if (used[v]) {
      remap[v] = nv;
      g->values[nv++] = g->values[v];
    } else {
      remap[v] = -1;
      free(g->values[v].name);
      free(g->values[v].data);
    }
  }
  g->n_values = nv;
  for (int i = 0; i < g->n_nodes; i++) {
    g->nodes[i].out = remap[g->nodes[i].out];
    for (int j = 0; j < g->nodes[i].n_in; j++)
      g->nodes[i].in[j] = remap[g->nodes[i].in[j]];
  }
  for (int i = 0; i < g->n_outputs; i++)
    g->outputs[i] = remap[g->outputs[i]];
  for (int i = 0; i < g->n_inputs; i++)
    g->inputs[i] = remap[g->inputs[i]];
  for (int v = 0; v < g->n_values; v++)
    g->values[v].producer = -1;
  for (int i = 0; i < g->n_nodes; i++)
    g->values[g->nodes[i].out].producer = i;
  free(remap);
  free(used);
  return DLP_OK;
}

int nn_graph_shape_tensor(const nn_shape *s, nn_tensor *t) {
  memset(t, 0, sizeof *t);
  t->ndim = s->ndim;
  for (int i = 0; i < NN_MAX_DIMS; i++)
    t->dims[i] = i < s->ndim ? s->dims[i] : 1;
  return DLP_OK;
}

int nn_graph_node_out_shape(dlp_err *e, const nn_node *n,
                            const nn_shape *const *ins, nn_shape *out) {
  nn_tensor t[3];
  dlp_err ke = {0};
  int rc = DLP_OK;
  for (int k = 0; k < n->n_in && k < 3; k++)
    nn_graph_shape_tensor(ins[k], &t[k]);
  const nn_node_attr *a = &n->attr;
  char sbuf[96];
  switch (n->op) {
  case NN_OP_CONV2D:
    rc = nn_conv2d_out_shape(&ke, &a->conv, &t[0], &t[1], out);
    if (rc == DLP_OK && n->n_in == 3 &&
        nn_shape_numel(ins[2]->ndim, ins[2]->dims) != out->dims[1])
      rc = dlp_err_set(
          &ke, DLP_ERR_ARG, "conv2d: bias has shape %s, expects %lld elements",
          nn_shape_str(ins[2]->ndim, ins[2]->dims, sbuf, sizeof sbuf),
          (long long)out->dims[1]);
    break;
  case NN_OP_DENSE:
    rc = nn_dense_out_shape(&ke, &a->dense, &t[0], &t[1], out);
    if (rc == DLP_OK && n->n_in == 3 &&
        nn_shape_numel(ins[2]->ndim, ins[2]->dims) != out->dims[out->ndim - 1])
      rc = dlp_err_set(
          &ke, DLP_ERR_ARG, "dense: bias has shape %s, expects %lld elements",
          nn_shape_str(ins[2]->ndim, ins[2]->dims, sbuf, sizeof sbuf),
          (long long)out->dims[out->ndim - 1]);
    break;
  case NN_OP_BATCHNORM:
    if (ins[0]->ndim < 2) {
      rc = dlp_err_set(
          &ke, DLP_ERR_ARG, "batchnorm: input has shape %s, needs (N, C, ...)",
          nn_shape_str(ins[0]->ndim, ins[0]->dims, sbuf, sizeof sbuf));
      break;
    }
    if (!(a->eps > 0)) {
      rc = dlp_err_set(&ke, DLP_ERR_ARG, "batchnorm: eps %g must be > 0",
                       (double)a->eps);
      break;
    }
    for (int k = 1; k < 5 && rc == DLP_OK; k++)
      if (nn_shape_numel(ins[k]->ndim, ins[k]->dims) != ins[0]->dims[1])
        rc = dlp_err_set(
            &ke, DLP_ERR_ARG,
            "batchnorm: parameter %d has shape %s, expects %lld "
            "elements (the channels)",
            k, nn_shape_str(ins[k]->ndim, ins[k]->dims, sbuf, sizeof sbuf),
            (long long)ins[0]->dims[1]);
    *out = *ins[0];
    break;
  case NN_OP_ACT:
    if ((int)a->act < 0 || a->act >= NN_ACT_COUNT)
      rc = dlp_err_set(&ke, DLP_ERR_ARG, "activation: unknown activation %d",
                       (int)a->act);
    *out = *ins[0];
    break;
  case NN_OP_CLIP:
    if (!(a->clip_lo <= a->clip_hi))
      rc = dlp_err_set(&ke, DLP_ERR_ARG, "clip: min %g is above max %g",
                       (double)a->clip_lo, (double)a->clip_hi);
    *out = *ins[0];
    break;
  case NN_OP_SOFTMAX:
    if (a->axis < -ins[0]->ndim || a->axis >= ins[0]->ndim)
      rc = dlp_err_set(&ke, DLP_ERR_ARG,
                       "softmax: axis %d is outside the rank %d", a->axis,
                       ins[0]->ndim);
    *out = *ins[0];
    break;
  case NN_OP_MAXPOOL:
  case NN_OP_AVGPOOL:
    rc = nn_pool2d_out_shape(&ke, &a->pool, &t[0], out);
    break;
  case NN_OP_GLOBAL_AVGPOOL:
  case NN_OP_GLOBAL_MAXPOOL:
    rc = nn_global_pool_out_shape(&ke, &t[0], out);
    if (rc == DLP_OK && !a->keepdims) out->ndim = 2;
    break;
  case NN_OP_ADD:
  case NN_OP_MUL:
    rc = nn_broadcast_shape(&ke, &t[0], &t[1], out);
    break;
  case NN_OP_CONCAT: {
    nn_tensor *ts = dlp_malloc_array((size_t)n->n_in, sizeof *ts);
    const nn_tensor **tp = dlp_malloc_array((size_t)n->n_in, sizeof *tp);
    if (!ts || !tp) {
      rc = dlp_err_set(&ke, DLP_ERR_NOMEM, "concat: out of memory");
    } else {
      for (int k = 0; k < n->n_in; k++) {
        nn_graph_shape_tensor(ins[k], &ts[k]);
        tp[k] = &ts[k];
      }
      rc = nn_concat_out_shape(&ke, tp, n->n_in, a->axis, out);
    }
    free(ts);
    free(tp);
    break;
  }
  case NN_OP_FLATTEN:
    rc = nn_flatten_out_shape(&ke, &t[0], a->axis, out);
    break;
  case NN_OP_RESHAPE:
    if (a->n_shape < 0 || a->n_shape > NN_MAX_DIMS)
      rc = dlp_err_set(&ke, DLP_ERR_ARG,
                       "reshape: target rank %d is outside "
                       "0..%d",
                       a->n_shape, NN_MAX_DIMS);
    else
      rc = nn_reshape_out_shape(&ke, &t[0], a->shape, a->n_shape, out);
    break;
  case NN_OP_TRANSPOSE:
    rc = nn_transpose_out_shape(&ke, &t[0], a->perm, a->n_perm, out);
    break;
  case NN_OP_PAD:
    rc = nn_pad_out_shape(&ke, &a->pad, &t[0], out);
    break;
  case NN_OP_IDENTITY:
    *out = *ins[0];
    break;
  default:
    rc = dlp_err_set(&ke, DLP_ERR_UNSUPPORTED, "unknown op %d", (int)n->op);
  }
  if (rc == DLP_OK) {
    for (int i = out->ndim; i < NN_MAX_DIMS; i++)
      out->dims[i] = 1;
    if (nn_shape_numel(out->ndim, out->dims) < 0)
      rc = dlp_err_set(&ke, DLP_ERR_TOO_LARGE,
                       "output %s has more than %lld elements",
                       nn_shape_str(out->ndim, out->dims, sbuf, sizeof sbuf),
                       (long long)NN_MAX_NUMEL);
  }
  if (rc != DLP_OK)
    return dlp_err_set(e, rc, "node '%s' (%s): %s", n->name, nn_op_name(n->op),
                       ke.msg);
  return DLP_OK;
}

int nn_graph_infer_shapes(dlp_err *e, const nn_graph *g, int64_t batch,
                          nn_shape *shapes, bool *batched) {
  int rc = DLP_OK;
  for (int v = 0; v < g->n_values; v++) {
    const nn_value *val = &g->values[v];
    shapes[v] = val->shape;
    if (batched) batched[v] = false;
    if (val->kind == NN_VALUE_INPUT && val->shape.dims[0] == -1) {
      shapes[v].dims[0] = batch;
      if (batched) batched[v] = true;
    }
  }
  int cap = 8;
  const nn_shape **ins = dlp_malloc_array((size_t)cap, sizeof *ins);
  if (!ins) return dlp_err_set(e, DLP_ERR_NOMEM, "graph: out of memory");
  for (int i = 0; i < g->n_nodes && rc == DLP_OK; i++) {
    const nn_node *n = &g->nodes[i];
    if (n->n_in > cap) {
      cap = n->n_in;
      const nn_shape **p = dlp_realloc_array(ins, (size_t)cap, sizeof *ins);
      if (!p) {
        rc = dlp_err_set(e, DLP_ERR_NOMEM, "graph: out of memory");
        break;
      }
      ins = p;
    }
    bool b = false;
    for (int k = 0; k < n->n_in; k++) {
      ins[k] = &shapes[n->in[k]];
      if (batched && batched[n->in[k]]) b = true;
    }
    rc = nn_graph_node_out_shape(e, n, ins, &shapes[n->out]);
    if (batched) batched[n->out] = b;
  }
  free(ins);
  return rc;
}

int nn_graph_finalize(dlp_err *e, nn_graph *g) {
  if (!g) return dlp_err_set(e, DLP_ERR_ARG, "graph: NULL graph");
  if (g->build_err.code != DLP_OK)
    return dlp_err_set(e, g->build_err.code, "%s", g->build_err.msg);
  int rc = check_structure(e, g);
  if (rc != DLP_OK) return rc;
  int nn = g->n_nodes;
  bool *live = calloc((size_t)nn + 1, sizeof *live);
  int *order = dlp_malloc_array((size_t)nn + 1, sizeof *order);
  nn_node *sorted = dlp_malloc_array((size_t)nn + 1, sizeof *sorted);
  if (!live || !order || !sorted) {
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "graph: out of memory");
    goto done;
  }
  rc = mark_live(e, g, live);
  if (rc == DLP_OK) rc = compact(e, g, live);
  if (rc == DLP_OK) rc = topo_sort(e, g, order);
  if (rc != DLP_OK) goto done;
  for (int i = 0; i < g->n_nodes; i++)
    sorted[i] = g->nodes[order[i]];
  memcpy(g->nodes, sorted, (size_t)g->n_nodes * sizeof *sorted);
  for (int i = 0; i < g->n_nodes; i++)
    g->values[g->nodes[i].out].producer = i;
  rc = nn_graph_reshape_all(e, g);
done:
  free(live);
  free(order);
  free(sorted);
  g->finalized = rc == DLP_OK;
  return rc;
}

int nn_graph_reshape_all(dlp_err *e, nn_graph *g) {
  int nv = g->n_values;
  nn_shape *shapes = dlp_malloc_array((size_t)nv + 1, sizeof *shapes);
  bool *batched = calloc((size_t)nv + 1, sizeof *batched);
  int rc = DLP_OK;
  if (!shapes || !batched)
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "graph: out of memory");
  if (rc == DLP_OK) rc = nn_graph_infer_shapes(e, g, 1, shapes, batched);
  for (int i = 0; rc == DLP_OK && i < g->n_nodes; i++) {
    const nn_node *n = &g->nodes[i];
    nn_shape s = shapes[n->out];
    if (batched[n->out]) {
      if (s.ndim < 1 || s.dims[0] != 1) {
        char sb[96];
        rc = dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                         "node '%s' (%s): output %s does not keep the batch as "
                         "its first axis",
                         n->name, nn_op_name(n->op),
                         nn_shape_str(s.ndim, s.dims, sb, sizeof sb));
        break;
      }
      s.dims[0] = -1;
    }
    g->values[n->out].shape = s;
  }
  free(shapes);
  free(batched);
  return rc;
}
