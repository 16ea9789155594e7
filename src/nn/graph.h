/* graph.h - the graph IR every importer produces and every backend runs.
 *
 * Define, plan, compute (ggml's order):
 *
 *     nn_graph *g = NULL;
 *     nn_graph_new(&e, &g);
 *     int x = nn_graph_add_input(g, "input", 4, (int64_t[]){-1, 3, 224, 224});
 *     int w = nn_graph_add_const(g, "conv1/kernel", 4, wdims, wdata);  // copied
 *     nn_node_attr a; nn_node_attr_init(NN_OP_CONV2D, &a);
 *     a.conv.stride[0] = a.conv.stride[1] = 2;
 *     int y = nn_graph_add_node(g, NN_OP_CONV2D, "conv1", (int[]){x, w}, 2, &a);
 *     nn_graph_mark_output(g, y);
 *     if (nn_graph_finalize(&e, g) != DLP_OK) ...   // checks, sorts, shapes
 *     nn_graph_optimize(&e, g);                     // fold BN, fuse acts
 *     nn_plan *p; nn_plan_new(&e, g, NN_BACKEND_REF, batch, threads, &p);
 *     nn_plan_run(&e, p, inputs, outputs);          // many times
 *
 * Values are tensors: graph inputs (data NULL, first dim -1 = the batch),
 * constants (weights; data owned by the graph) and node outputs. Each node
 * has one output value. Activations are NCHW; conv weights OIHW; dense
 * weights (in, out) unless attr.dense.transb. Ops carry Keras/ONNX layer
 * names so errors and --layer can name them.
 *
 * Importers (Keras HDF5, ONNX, the zoo) call only this header and nn.h.
 * Functions returning int report DLP_OK or a status with e->msg set; the
 * add_* builders return a value id >= 0, or -1 when out of memory or given
 * bad arguments (nn_graph_finalize then reports the first such failure).
 */
#ifndef DLP_NN_GRAPH_H
#define DLP_NN_GRAPH_H

#include "nn.h"

typedef enum nn_op {
  NN_OP_CONV2D = 1,   /* in: x, w[, b]          attr: conv */
  NN_OP_DENSE,        /* in: x, w[, b]          attr: dense */
  NN_OP_BATCHNORM,    /* in: x, gamma, beta, mean, var   attr: eps */
  NN_OP_ACT,          /* in: x                  attr: act, alpha */
  NN_OP_CLIP,         /* in: x                  attr: clip */
  NN_OP_SOFTMAX,      /* in: x                  attr: axis */
  NN_OP_MAXPOOL,      /* in: x                  attr: pool */
  NN_OP_AVGPOOL,      /* in: x                  attr: pool */
  NN_OP_GLOBAL_AVGPOOL, /* in: x; (N,C,H,W) -> (N,C,1,1) unless attr.keepdims
                           is false: then (N,C) (Keras GlobalAveragePooling2D) */
  NN_OP_GLOBAL_MAXPOOL, /* as GLOBAL_AVGPOOL */
  NN_OP_ADD,          /* in: a, b (broadcast)   */
  NN_OP_MUL,          /* in: a, b (broadcast)   */
  NN_OP_CONCAT,       /* in: x1..xn             attr: axis */
  NN_OP_FLATTEN,      /* in: x                  attr: axis (ONNX Flatten) */
  NN_OP_RESHAPE,      /* in: x                  attr: reshape (0 and -1 as ONNX) */
  NN_OP_TRANSPOSE,    /* in: x                  attr: perm */
  NN_OP_PAD,          /* in: x                  attr: pad */
  NN_OP_IDENTITY,     /* in: x  (Dropout, and what passes leave behind) */
  NN_OP_COUNT
} nn_op;

/* "conv2d", "dense", ... for messages. */
const char *nn_op_name(nn_op op);

typedef struct nn_node_attr {
  nn_conv2d_attr conv;
  nn_dense_attr dense;
  nn_pool2d_attr pool;
  nn_pad_attr pad;
  nn_act act;      /* NN_OP_ACT */
  float alpha;     /* NN_OP_ACT leaky relu */
  float clip_lo, clip_hi; /* NN_OP_CLIP */
  float eps;       /* NN_OP_BATCHNORM; default 1e-3 (Keras) */
  int axis;        /* SOFTMAX (default -1), CONCAT (default 1), FLATTEN (1) */
  bool keepdims;   /* GLOBAL_*POOL; default true */
  int n_shape;     /* RESHAPE */
  int64_t shape[NN_MAX_DIMS];
  int n_perm;      /* TRANSPOSE */
  int perm[NN_MAX_DIMS];
} nn_node_attr;

/* Defaults for op (every sub-struct initialised). */
void nn_node_attr_init(nn_op op, nn_node_attr *a);

typedef enum nn_value_kind {
  NN_VALUE_INPUT = 1, /* fed at run time */
  NN_VALUE_CONST,     /* weights: data owned by the graph */
  NN_VALUE_NODE       /* computed by node `producer` */
} nn_value_kind;

typedef struct nn_value {
  char *name;
  nn_value_kind kind;
  nn_shape shape; /* inputs: dims[0] may be -1 (batch); node outputs: known
                     after nn_graph_finalize with dims[0] = -1 if batched */
  float *data;    /* NN_VALUE_CONST only */
  int producer;   /* node index for NN_VALUE_NODE, else -1 */
} nn_value;

typedef struct nn_node {
  nn_op op;
  char *name;
  int *in;   /* value ids */
  int n_in;
  int out;   /* value id */
  nn_node_attr attr;
} nn_node;

/* How images become the model's input: size, order, normalisation. */
typedef struct nn_input_spec {
  int height, width, channels; /* 0 when unknown */
  dlp_norm norm;               /* default DLP_NORM_NONE */
} nn_input_spec;

typedef struct nn_graph {
  nn_value *values;
  int n_values, cap_values;
  nn_node *nodes; /* in topological order after nn_graph_finalize */
  int n_nodes, cap_nodes;
  int *inputs, n_inputs;
  int *outputs, n_outputs;
  nn_input_spec input_spec;
  char *name;     /* model name, e.g. "InceptionV3"; may be NULL */
  dlp_err build_err; /* first failure of an add_* builder */
  bool finalized;
} nn_graph;

int nn_graph_new(dlp_err *e, nn_graph **out);
void nn_graph_free(nn_graph *g);

/* Builders. Names are copied; must be unique among values (a second value
 * with the same name fails). dims are copied. For inputs only dims[0] may be
 * -1 (the batch); other dims must be >= 1. */
#define NN_GRAPH_MAX_CONST_BYTES ((int64_t)8 << 30) /* all weights together */
int nn_graph_add_input(nn_graph *g, const char *name, int ndim,
                       const int64_t *dims);
/* data (numel floats) is copied. */
int nn_graph_add_const(nn_graph *g, const char *name, int ndim,
                       const int64_t *dims, const float *data);
/* Same, taking ownership of data (malloc'd), which is freed on failure. */
int nn_graph_add_const_owned(nn_graph *g, const char *name, int ndim,
                             const int64_t *dims, float *data);
/* Adds a node; its output value is named `name` (or "name:N" if taken).
 * attr NULL = defaults. Returns the output value id. */
int nn_graph_add_node(nn_graph *g, nn_op op, const char *name, const int *in,
                      int n_in, const nn_node_attr *attr);
void nn_graph_mark_output(nn_graph *g, int value);

/* Value id by name, or -1. */
int nn_graph_find_value(const nn_graph *g, const char *name);
/* Node index whose name is `name`, or -1. */
int nn_graph_find_node(const nn_graph *g, const char *name);

/* Checks arity and ids, orders nodes topologically (DLP_ERR_CORRUPT on a
 * cycle, naming a node on it), infers every shape with batch -1 kept
 * symbolic (DLP_ERR_ARG/SCHEMA naming the node on a mismatch), and drops
 * nodes no output depends on. Nodes no output depends on are dropped with
 * their output values and with constants no node reads (graph inputs always
 * stay); the remaining value ids are renumbered in order when anything is
 * dropped, so look values up by name after finalize/optimize/cut.
 * Idempotent. */
int nn_graph_finalize(dlp_err *e, nn_graph *g);

/* Shape of value v for a concrete batch size (dims[0] == -1 replaced). */
nn_shape nn_graph_value_shape(const nn_graph *g, int v, int64_t batch);

/* Rewrites that keep the results (within float rounding): batch norm after a
 * convolution or dense folded into its weights; a following activation node
 * (any nn_act, so backends must handle every value in conv/dense attr.act)
 * or clip(0,6) / clip(0,inf) fused into conv/dense; identities removed. Call after
 * finalize; the graph stays finalized. */
int nn_graph_optimize(dlp_err *e, nn_graph *g);

/* Makes, in place, g's single output the value named `name` (else the
 * output of the node of that name), and re-finalizes (for --layer): nodes
 * after it are dropped. DLP_ERR_NOT_FOUND when no value or
 * node has that name. */
int nn_graph_cut(dlp_err *e, nn_graph *g, const char *name);

/* ------------------------------------------------------------------------
 * Execution
 * ------------------------------------------------------------------------ */

typedef enum nn_backend {
  NN_BACKEND_REF = 0, /* plain C reference kernels (nn.h) */
  NN_BACKEND_DNNL,    /* oneDNN, fp32 */
  NN_BACKEND_DNNL_BF16 /* oneDNN, bf16 activations between layers (AVX-512) */
} nn_backend;

typedef struct nn_plan nn_plan;

/* Plans g for a fixed batch size: resolves shapes and assigns every
 * intermediate value a buffer, reusing memory once a value is dead. The
 * graph must stay alive and unchanged while the plan exists. */
int nn_plan_new(dlp_err *e, const nn_graph *g, nn_backend backend,
                int64_t batch, int threads, nn_plan **out);
void nn_plan_free(nn_plan *p);
/* inputs[i] feeds g->inputs[i] (numel of its shape at the plan's batch);
 * outputs[i] receives g->outputs[i]. */
int nn_plan_run(dlp_err *e, nn_plan *p, const float *const *inputs,
                float *const *outputs);
/* Bytes of activation memory the plan holds (for tests and --verbose). */
size_t nn_plan_arena_bytes(const nn_plan *p);

#endif /* DLP_NN_GRAPH_H */
