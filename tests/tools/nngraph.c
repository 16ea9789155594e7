/* nngraph.c - test tool: builds a fixed small inception-like network through
 * the graph IR with weights from .npy files and runs it on the reference
 * backend, so tests/ref/test_graph_vs_torch.py can compare it with the same
 * network written in PyTorch.
 *
 *   nngraph tinynet WEIGHTS_DIR IN.npy OUT.npy [--optimize] [--cut NAME]
 *
 * IN.npy is (N, 3, H, W) float32; the network (names = weight files
 * WEIGHTS_DIR/<name>.npy):
 *   stem  conv 3x3/2 TF-'same' 3->16, no bias (stem_w); BN (bn_g, bn_b,
 *         bn_m, bn_v, eps 1e-3); relu
 *   a     conv 1x1 16->8 (a_w, a_b); relu
 *   b     conv 3x3 pad 1 16->8 (b_w, b_b); BN (bnb_*, eps 1e-5); clip 0..6
 *   c     maxpool 3x3/1 pad 1; conv 1x1 16->8 (c_w, c_b)
 *   concat(a, b, c) -> 24; avgpool 3x3/1 pad 1 without padding in the count
 *   res   conv 1x1 24->16 (r_w, r_b); add stem; relu; maxpool 2x2/2
 *   dw    depthwise conv 3x3 pad 1 groups 16 (dw_w (16,1,3,3), dw_b); relu
 *   gap   global average pool -> (N, 16); dropout (identity)
 *   fc    dense 16->10 (fc_w (16, 10), fc_b); softmax
 * Node names: stem, stem_bn, stem_relu, a, a_relu, b, b_bn, b_relu6, c_pool,
 * c, concat, avgpool, res, add, add_relu, pool, dw, dw_relu, gap, dropout,
 * fc, softmax. --cut NAME makes that value the output.
 *
 * .npy files go through the library's reader/writer; only float32 arrays
 * are taken. Exit status 0, or 1 with a message. */
#include "graph.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a float32 .npy: *data (malloc'd) and its shape. */
static int npy_load(dlp_err *e, const char *path, nn_shape *s, float **data) {
  dlp_npy_array a;
  *data = NULL;
  int rc = dlp_npy_load_array(e, path, (uint64_t)1 << 32, &a);
  if (rc != DLP_OK) return rc;
  if (a.dtype != 'f')
    rc = dlp_err_set(e, DLP_ERR_UNSUPPORTED, "%s: not a C-order <f4 array",
                     path);
  else if (a.ndim > NN_MAX_DIMS)
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "%s: bad shape or size", path);
  if (rc != DLP_OK) {
    dlp_npy_array_free(&a);
    return rc;
  }
  s->ndim = a.ndim;
  memcpy(s->dims, a.dims, sizeof s->dims);
  *data = a.data;
  return DLP_OK;
}

static int npy_save(dlp_err *e, const char *path, const nn_shape *s,
                    const float *data) {
  dlp_npy_array a = {.dtype = 'f', .ndim = s->ndim, .data = (void *)data};
  memcpy(a.dims, s->dims, sizeof s->dims);
  a.nbytes = (size_t)nn_shape_numel(s->ndim, s->dims) * sizeof(float);
  return dlp_npy_save_array(e, path, &a);
}

typedef struct builder {
  nn_graph *g;
  const char *dir;
  dlp_err *e;
  int rc;
} builder;

/* The weight WEIGHTS_DIR/name.npy as a graph constant. */
static int weight(builder *b, const char *name) {
  if (b->rc != DLP_OK) return -1;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.npy", b->dir, name);
  nn_shape s;
  float *data;
  b->rc = npy_load(b->e, path, &s, &data);
  if (b->rc != DLP_OK) return -1;
  return nn_graph_add_const_owned(b->g, name, s.ndim, s.dims, data);
}

static int conv(builder *b, const char *name, int x, const char *w,
                const char *bias, int k, int stride, int pad, int groups,
                int64_t in_hw) {
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  a.conv.stride[0] = a.conv.stride[1] = stride;
  a.conv.groups = groups;
  if (pad < 0) { /* TF 'same' */
    nn_pad_same_tf(in_hw, k, stride, 1, &a.conv.pads[0], &a.conv.pads[2]);
    nn_pad_same_tf(in_hw, k, stride, 1, &a.conv.pads[1], &a.conv.pads[3]);
  } else {
    for (int i = 0; i < 4; i++)
      a.conv.pads[i] = pad;
  }
  int in[3] = {x, weight(b, w), bias ? weight(b, bias) : -1};
  return nn_graph_add_node(b->g, NN_OP_CONV2D, name, in, bias ? 3 : 2, &a);
}

static int bn(builder *b, const char *name, int x, const char *pfx, float eps) {
  const char *sfx[4] = {"g", "b", "m", "v"};
  int in[5] = {x};
  for (int k = 0; k < 4; k++) {
    char n[64];
    snprintf(n, sizeof n, "%s_%s", pfx, sfx[k]);
    in[k + 1] = weight(b, n);
  }
  nn_node_attr a;
  nn_node_attr_init(NN_OP_BATCHNORM, &a);
  a.eps = eps;
  return nn_graph_add_node(b->g, NN_OP_BATCHNORM, name, in, 5, &a);
}

static int act(builder *b, const char *name, int x, nn_act f) {
  nn_node_attr a;
  nn_node_attr_init(NN_OP_ACT, &a);
  a.act = f;
  return nn_graph_add_node(b->g, NN_OP_ACT, name, &x, 1, &a);
}

static int pool(builder *b, nn_op op, const char *name, int x, int k, int s,
                int pad) {
  nn_node_attr a;
  nn_node_attr_init(op, &a);
  a.pool.kernel[0] = a.pool.kernel[1] = k;
  a.pool.stride[0] = a.pool.stride[1] = s;
  for (int i = 0; i < 4; i++)
    a.pool.pads[i] = pad;
  a.pool.count_include_pad = false;
  return nn_graph_add_node(b->g, op, name, &x, 1, &a);
}

static int tinynet(builder *b, int64_t h) {
  nn_graph *g = b->g;
  int x = nn_graph_add_input(g, "input", 4, (int64_t[]){-1, 3, h, h});
  int stem = conv(b, "stem", x, "stem_w", NULL, 3, 2, -1, 1, h);
  stem = act(b, "stem_relu", bn(b, "stem_bn", stem, "bn", 1e-3f), NN_ACT_RELU);
  int64_t h2 = (h + 1) / 2;
  int ba = act(b, "a_relu", conv(b, "a", stem, "a_w", "a_b", 1, 1, 0, 1, h2),
               NN_ACT_RELU);
  int bb = bn(b, "b_bn", conv(b, "b", stem, "b_w", "b_b", 3, 1, 1, 1, h2),
              "bnb", 1e-5f);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CLIP, &a);
  a.clip_lo = 0, a.clip_hi = 6;
  bb = nn_graph_add_node(g, NN_OP_CLIP, "b_relu6", &bb, 1, &a);
  int bc = pool(b, NN_OP_MAXPOOL, "c_pool", stem, 3, 1, 1);
  bc = conv(b, "c", bc, "c_w", "c_b", 1, 1, 0, 1, h2);
  nn_node_attr_init(NN_OP_CONCAT, &a);
  int cat =
      nn_graph_add_node(g, NN_OP_CONCAT, "concat", (int[]){ba, bb, bc}, 3, &a);
  int ap = pool(b, NN_OP_AVGPOOL, "avgpool", cat, 3, 1, 1);
  int res = conv(b, "res", ap, "r_w", "r_b", 1, 1, 0, 1, h2);
  int add = nn_graph_add_node(g, NN_OP_ADD, "add", (int[]){res, stem}, 2, NULL);
  add = act(b, "add_relu", add, NN_ACT_RELU);
  int p = pool(b, NN_OP_MAXPOOL, "pool", add, 2, 2, 0);
  int dw = conv(b, "dw", p, "dw_w", "dw_b", 3, 1, 1, 16, h2 / 2);
  dw = act(b, "dw_relu", dw, NN_ACT_RELU);
  nn_node_attr_init(NN_OP_GLOBAL_AVGPOOL, &a);
  a.keepdims = false;
  int gp = nn_graph_add_node(g, NN_OP_GLOBAL_AVGPOOL, "gap", &dw, 1, &a);
  gp = nn_graph_add_node(g, NN_OP_IDENTITY, "dropout", &gp, 1, NULL);
  int fc = nn_graph_add_node(g, NN_OP_DENSE, "fc",
                             (int[]){gp, weight(b, "fc_w"), weight(b, "fc_b")},
                             3, NULL);
  int sm = nn_graph_add_node(g, NN_OP_SOFTMAX, "softmax", &fc, 1, NULL);
  nn_graph_mark_output(g, sm);
  return b->rc;
}

static int run(dlp_err *e, int argc, char **argv) {
  if (argc < 5 || strcmp(argv[1], "tinynet") != 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "usage: nngraph tinynet WEIGHTS_DIR IN.npy OUT.npy "
                       "[--optimize] [--cut NAME]");
  bool optimize = false;
  const char *cut = NULL;
  for (int i = 5; i < argc; i++) {
    if (strcmp(argv[i], "--optimize") == 0)
      optimize = true;
    else if (strcmp(argv[i], "--cut") == 0 && i + 1 < argc)
      cut = argv[++i];
    else
      return dlp_err_set(e, DLP_ERR_ARG, "unknown option %s", argv[i]);
  }
  nn_shape is;
  float *in = NULL, *out = NULL;
  nn_graph *g = NULL;
  nn_plan *p = NULL;
  int rc = npy_load(e, argv[3], &is, &in);
  if (rc == DLP_OK &&
      (is.ndim != 4 || is.dims[1] != 3 || is.dims[2] != is.dims[3]))
    rc = dlp_err_set(e, DLP_ERR_ARG, "%s: expected (N, 3, H, H)", argv[3]);
  if (rc == DLP_OK) rc = nn_graph_new(e, &g);
  if (rc == DLP_OK) {
    builder b = {g, argv[2], e, DLP_OK};
    rc = tinynet(&b, is.dims[2]);
  }
  if (rc == DLP_OK) rc = nn_graph_finalize(e, g);
  if (rc == DLP_OK && cut) rc = nn_graph_cut(e, g, cut);
  if (rc == DLP_OK && optimize) rc = nn_graph_optimize(e, g);
  if (rc == DLP_OK) rc = nn_plan_new(e, g, NN_BACKEND_REF, is.dims[0], 1, &p);
  nn_shape os = {0};
  if (rc == DLP_OK) {
    os = nn_graph_value_shape(g, g->outputs[0], is.dims[0]);
    out = malloc((size_t)nn_shape_numel(os.ndim, os.dims) * sizeof *out + 1);
    if (!out) rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  }
  if (rc == DLP_OK)
    rc = nn_plan_run(e, p, (const float *const[]){in}, (float *const[]){out});
  if (rc == DLP_OK) rc = npy_save(e, argv[4], &os, out);
  if (rc == DLP_OK)
    printf("nodes %d arena_bytes %zu\n", g->n_nodes, nn_plan_arena_bytes(p));
  nn_plan_free(p);
  nn_graph_free(g);
  free(in);
  free(out);
  return rc;
}

int main(int argc, char **argv) {
  dlp_err e = {0};
  if (run(&e, argc, argv) != DLP_OK) {
    fprintf(stderr, "nngraph: %s\n", e.msg);
    return 1;
  }
  return 0;
}
