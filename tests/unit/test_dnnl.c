/* test_dnnl.c - the oneDNN backend against the reference backend (the
 * oracle) on small random graphs: every op kind, fused post-ops, blocked and
 * plain layouts mixed, fallbacks, batch 1 and 7. */
#include "dnnl_backend.h"
#include "graph.h"
#include "test.h"
#include "zoo.h"

#include <dnnl.h>

#include <stdint.h>

static dlp_rng rng;

static float urand(void) { return (float)(dlp_rng_uniform(&rng) * 2.0 - 1.0); }

/* A constant of uniform values in [-scale, scale]. */
static int rconst(nn_graph *g, const char *name, int ndim, const int64_t *dims,
                  float scale) {
  int64_t n = nn_shape_numel(ndim, dims);
  float *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  for (int64_t i = 0; i < n; i++) d[i] = scale * urand();
  return nn_graph_add_const_owned(g, name, ndim, dims, d);
}

static int input4(nn_graph *g, const char *name, int64_t c, int64_t h,
                  int64_t w) {
  return nn_graph_add_input(g, name, 4, (int64_t[]){-1, c, h, w});
}

/* conv with a random OIHW weight (scaled by 1/sqrt(fan in)) and bias. */
static int conv(nn_graph *g, const char *name, int x, int64_t cin, int64_t cout,
                int kh, int kw, const nn_conv2d_attr *ca) {
  char wn[64], bn[64];
  snprintf(wn, sizeof wn, "%s/kernel", name);
  snprintf(bn, sizeof bn, "%s/bias", name);
  int64_t groups = ca ? ca->groups : 1;
  float sc = 1.0f / sqrtf((float)(cin / groups * kh * kw));
  int w = rconst(g, wn, 4, (int64_t[]){cout, cin / groups, kh, kw}, sc);
  int b = rconst(g, bn, 1, (int64_t[]){cout}, 0.5f);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  if (ca) a.conv = *ca;
  return nn_graph_add_node(g, NN_OP_CONV2D, name, (int[]){x, w, b}, 3, &a);
}

static int unary(nn_graph *g, nn_op op, const char *name, int x,
                 const nn_node_attr *a) {
  return nn_graph_add_node(g, op, name, (int[]){x}, 1, a);
}

static int act(nn_graph *g, const char *name, int x, nn_act k) {
  nn_node_attr a;
  nn_node_attr_init(NN_OP_ACT, &a);
  a.act = k;
  return unary(g, NN_OP_ACT, name, x, &a);
}

static int binary(nn_graph *g, nn_op op, const char *name, int a, int b) {
  return nn_graph_add_node(g, op, name, (int[]){a, b}, 2, NULL);
}

/* nn_dnnl_fused_dw_count of the last plan run_both made. */
static int last_fused_dw;

/* Max over outputs of max|dnnl - ref| / max|ref|. */
static double run_both(nn_graph *g, int64_t batch, const nn_backend_ops *fast,
                       int threads, bool *ok) {
  dlp_err e = {0};
  *ok = false;
  nn_plan *pr = NULL;
  void *st = NULL;
  double worst = 0;
  float *in[4] = {0}, *o_ref[4] = {0}, *o_fast[4] = {0};
  if (nn_plan_new(&e, g, NN_BACKEND_REF, batch, 1, &pr) != DLP_OK) {
    fprintf(stderr, "ref plan: %s\n", e.msg);
    goto done;
  }
  if (fast->plan(&e, g, batch, threads, &st) != DLP_OK) {
    fprintf(stderr, "%s plan: %s\n", fast->name, e.msg);
    goto done;
  }
  for (int k = 0; k < g->n_inputs; k++) {
    nn_shape s = nn_graph_value_shape(g, g->inputs[k], batch);
    int64_t n = nn_shape_numel(s.ndim, s.dims);
    in[k] = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) in[k][i] = urand();
  }
  for (int k = 0; k < g->n_outputs; k++) {
    nn_shape s = nn_graph_value_shape(g, g->outputs[k], batch);
    int64_t n = nn_shape_numel(s.ndim, s.dims);
    o_ref[k] = calloc((size_t)n, sizeof(float));
    o_fast[k] = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) o_fast[k][i] = NAN;
  }
  if (nn_plan_run(&e, pr, (const float *const *)in, o_ref) != DLP_OK ||
      fast->run(&e, st, (const float *const *)in, o_fast) != DLP_OK) {
    fprintf(stderr, "run: %s\n", e.msg);
    goto done;
  }
  for (int k = 0; k < g->n_outputs; k++) {
    nn_shape s = nn_graph_value_shape(g, g->outputs[k], batch);
    int64_t n = nn_shape_numel(s.ndim, s.dims);
    double mx = 1e-30, md = 0;
    for (int64_t i = 0; i < n; i++) {
      double r = o_ref[k][i], d = fabs((double)o_fast[k][i] - r);
      if (fabs(r) > mx) mx = fabs(r);
      if (!(d <= md)) md = d; /* NaN propagates */
    }
    double rel = md / mx;
    if (!(rel <= worst)) worst = rel;
  }
  *ok = fast->arena_bytes(st) > 0;
  last_fused_dw = nn_dnnl_fused_dw_count(st);
done:
  for (int k = 0; k < 4; k++) {
    free(in[k]);
    free(o_ref[k]);
    free(o_fast[k]);
  }
  if (st) fast->free(st);
  nn_plan_free(pr);
  return worst;
}

/* Finalizes g and checks dnnl against ref at batch 1 and 7. */
static void check_graph(nn_graph *g, const char *what, double tol) {
  dlp_err e = {0};
  int rc = nn_graph_finalize(&e, g);
  if (rc != DLP_OK) fprintf(stderr, "%s: finalize: %s\n", what, e.msg);
  CHECK_EQ_INT(rc, DLP_OK);
  if (rc != DLP_OK) return;
  static const int64_t batches[2] = {1, 7};
  for (int b = 0; b < 2; b++) {
    bool ok;
    double rel = run_both(g, batches[b], &nn_backend_dnnl, 2, &ok);
    if (!ok || !(rel <= tol))
      fprintf(stderr, "%s (batch %lld): max rel error %.3g (tol %.g)\n", what,
              (long long)batches[b], rel, tol);
    CHECK(ok);
    CHECK(rel <= tol);
  }
}

#define TOL 1e-4

TEST(conv_padding_stride_dilation_groups_and_fused_acts) {
  static const nn_act acts[] = {NN_ACT_NONE,    NN_ACT_RELU,  NN_ACT_RELU6,
                                NN_ACT_LEAKY_RELU, NN_ACT_SIGMOID,
                                NN_ACT_TANH,    NN_ACT_SWISH,
                                NN_ACT_HARD_SIGMOID};
  for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
    nn_graph *g = NULL;
    nn_graph_new(NULL, &g);
    int x = input4(g, "x", 8, 13, 11);
    nn_conv2d_attr ca;
    nn_conv2d_attr_init(&ca);
    ca.stride[0] = 2;
    ca.dilation[1] = 2;
    ca.pads[0] = 1; /* asymmetric */
    ca.pads[1] = 0;
    ca.pads[2] = 2;
    ca.pads[3] = 1;
    ca.groups = 2;
    ca.act = acts[k];
    ca.alpha = 0.1f;
    int y = conv(g, "conv", x, 8, 12, 3, 3, &ca);
    nn_graph_mark_output(g, y);
    char what[64];
    snprintf(what, sizeof what, "conv act %s", nn_act_name(acts[k]));
    check_graph(g, what, TOL);
    nn_graph_free(g);
  }
}

TEST(conv_3x3_same_chain_keeps_blocked_layout) {
  /* 3 -> 32 -> 32 -> 16 channels: the first conv takes the plain input, the
   * others blocked activations; the 3x3 stride-1 convs may use Winograd. */
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 3, 20, 17);
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = 1;
  ca.act = NN_ACT_RELU;
  int y = conv(g, "c1", x, 3, 32, 3, 3, &ca);
  y = conv(g, "c2", y, 32, 32, 3, 3, &ca);
  ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = 0;
  ca.act = NN_ACT_NONE;
  y = conv(g, "c3", y, 32, 16, 1, 1, &ca);
  nn_graph_mark_output(g, y);
  check_graph(g, "conv chain", TOL);
  nn_graph_free(g);
}

TEST(depthwise_with_multiplier_and_pointwise) {
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 16, 15, 15);
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  ca.groups = 16;
  ca.stride[0] = ca.stride[1] = 2;
  nn_pad_same_tf(15, 3, 2, 1, &ca.pads[0], &ca.pads[2]);
  nn_pad_same_tf(15, 3, 2, 1, &ca.pads[1], &ca.pads[3]);
  ca.act = NN_ACT_RELU6;
  int y = conv(g, "dw", x, 16, 32, 3, 3, &ca); /* multiplier 2 */
  nn_conv2d_attr_init(&ca);
  y = conv(g, "pw", y, 32, 24, 1, 1, &ca);
  nn_graph_mark_output(g, y);
  check_graph(g, "depthwise", TOL);
  nn_graph_free(g);
}

/* MobileNetV2's inverted residual: 1x1 expand (relu6) -> 3x3 depthwise
 * (relu6) -> 1x1 project (+ shortcut when the shape allows), on a side x
 * side input; pads are (top/left, bottom/right) of the depthwise conv. */
static int inverted_residual(nn_graph *g, int x, int64_t cin, int64_t cexp,
                             int side, int stride, int pad_lo, int pad_hi,
                             bool dw_act, const char *tag) {
  char nm[64];
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  ca.act = NN_ACT_RELU6;
  snprintf(nm, sizeof nm, "%s_expand", tag);
  int y = conv(g, nm, x, cin, cexp, 1, 1, &ca);
  nn_conv2d_attr_init(&ca);
  ca.groups = (int)cexp;
  ca.stride[0] = ca.stride[1] = stride;
  ca.pads[0] = ca.pads[1] = pad_lo;
  ca.pads[2] = ca.pads[3] = pad_hi;
  ca.act = dw_act ? NN_ACT_RELU6 : NN_ACT_NONE;
  snprintf(nm, sizeof nm, "%s_dw", tag);
  y = conv(g, nm, y, cexp, cexp, 3, 3, &ca);
  nn_conv2d_attr_init(&ca);
  snprintf(nm, sizeof nm, "%s_project", tag);
  y = conv(g, nm, y, cexp, cin, 1, 1, &ca);
  (void)side;
  if (stride == 1) {
    snprintf(nm, sizeof nm, "%s_add", tag);
    y = binary(g, NN_OP_ADD, nm, y, x);
  }
  return y;
}

TEST(expand_and_depthwise_fused_in_one_primitive) {
  /* MobileNetV2's pairs as they come at 224x224 (Keras' pads (0, 1) and
   * PyTorch's (1, 1) at stride 2, stride 1, 24 channels that are not a
   * multiple of 16, a depthwise conv without activation) at batch 7: each
   * matches the reference in fp32 and bf16. On avx512_core oneDNN 2.6 has a
   * jit kernel for these pairs (jit_1x1 with the depthwise conv as a
   * post-op), so each pair is one primitive there; on smaller maps or
   * batches it offers only its reference two-step one, and dlp plans them
   * apart (expand_pairs_on_small_maps_planned_apart). */
  static const struct {
    int64_t cin, cexp;
    int side, stride, lo, hi;
    bool act;
  } cases[] = {
      {16, 96, 112, 2, 0, 1, true}, {24, 144, 56, 2, 1, 1, true},
      {24, 144, 56, 1, 1, 1, true}, {32, 192, 28, 1, 1, 1, false},
      {16, 96, 48, 2, 0, 1, true},
  };
  /* oneDNN's ISA values are cumulative bit masks */
  bool avx512 = (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) ==
                dnnl_cpu_isa_avx512_core;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    nn_graph *g = NULL;
    nn_graph_new(NULL, &g);
    int x = input4(g, "x", cases[c].cin, cases[c].side, cases[c].side);
    int y = inverted_residual(g, x, cases[c].cin, cases[c].cexp,
                              cases[c].side, cases[c].stride, cases[c].lo,
                              cases[c].hi, cases[c].act, "b");
    nn_graph_mark_output(g, y);
    char what[64];
    snprintf(what, sizeof what, "expand+dw case %zu", c);
    check_graph(g, what, TOL);
    if (avx512 && last_fused_dw != 1)
      fprintf(stderr, "%s: %d fused pairs, expected 1\n", what, last_fused_dw);
    if (avx512) CHECK_EQ_INT(last_fused_dw, 1);
    bool ok;
    double rel = run_both(g, 3, &nn_backend_dnnl_bf16, 2, &ok);
    if (ok) {
      if (!(rel <= 1e-2)) fprintf(stderr, "%s bf16: %.3g\n", what, rel);
      CHECK(rel <= 1e-2);
    }
    nn_graph_free(g);
  }
}

TEST(expand_pairs_on_small_maps_planned_apart) {
  /* The expanded tensor is also a graph output, or read by a second node,
   * or the depthwise kernel is 5x5, or the map is small (8x8, where oneDNN
   * has only its reference fused kernel): planned apart, same results. The
   * first three at 56x56, where the pair alone would be fused. */
  for (int c = 0; c < 4; c++) {
    nn_graph *g = NULL;
    nn_graph_new(NULL, &g);
    int side = c == 3 ? 8 : 56;
    int x = input4(g, "x", 16, side, side);
    nn_conv2d_attr ca;
    nn_conv2d_attr_init(&ca);
    ca.act = NN_ACT_RELU6;
    int e = conv(g, "expand", x, 16, 96, 1, 1, &ca);
    nn_conv2d_attr_init(&ca);
    ca.groups = 96;
    int k = c == 2 ? 5 : 3;
    ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = k / 2;
    int y = conv(g, "dw", e, 96, 96, k, k, &ca);
    if (c == 0) nn_graph_mark_output(g, e);
    if (c == 1) y = binary(g, NN_OP_ADD, "add", y, e);
    nn_graph_mark_output(g, y);
    check_graph(g, "expand pair planned apart", TOL);
    CHECK_EQ_INT(last_fused_dw, 0);
    nn_graph_free(g);
  }
}

/* One pooling node of each flavour on an odd-sized blocked input. */
static void pool_case(nn_op op, int k, int s, int pad, bool ceil_mode,
                      bool include_pad) {
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 4, 12, 11);
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  int y = conv(g, "c", x, 4, 16, 1, 1, &ca); /* blocked input to the pool */
  nn_node_attr a;
  nn_node_attr_init(op, &a);
  a.pool.kernel[0] = a.pool.kernel[1] = k;
  a.pool.stride[0] = a.pool.stride[1] = s;
  a.pool.pads[0] = a.pool.pads[1] = a.pool.pads[2] = a.pool.pads[3] = pad;
  a.pool.ceil_mode = ceil_mode;
  a.pool.count_include_pad = include_pad;
  y = unary(g, op, "pool", y, &a);
  nn_graph_mark_output(g, y);
  char what[96];
  snprintf(what, sizeof what, "%s k%d s%d p%d ceil %d incl %d",
           nn_op_name(op), k, s, pad, ceil_mode, include_pad);
  check_graph(g, what, TOL);
  nn_graph_free(g);
}

TEST(pooling_padding_modes_and_ceil_mode) {
  for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
    pool_case(NN_OP_MAXPOOL, 3, 2, 0, ceil_mode, false);
    pool_case(NN_OP_MAXPOOL, 3, 2, 1, ceil_mode, false);
    for (int incl = 0; incl < 2; incl++) {
      pool_case(NN_OP_AVGPOOL, 3, 2, 1, ceil_mode, incl);
      pool_case(NN_OP_AVGPOOL, 2, 2, 0, ceil_mode, incl);
      pool_case(NN_OP_AVGPOOL, 3, 1, 1, ceil_mode, incl);
    }
  }
}

TEST(global_pool_flatten_dense_softmax) {
  for (int keep = 0; keep < 2; keep++) {
    nn_graph *g = NULL;
    nn_graph_new(NULL, &g);
    int x = input4(g, "x", 5, 9, 7);
    nn_conv2d_attr ca;
    nn_conv2d_attr_init(&ca);
    ca.act = NN_ACT_RELU;
    int y = conv(g, "c", x, 5, 32, 3, 3, &ca);
    nn_node_attr a;
    nn_node_attr_init(NN_OP_GLOBAL_AVGPOOL, &a);
    a.keepdims = keep;
    y = unary(g, keep ? NN_OP_GLOBAL_MAXPOOL : NN_OP_GLOBAL_AVGPOOL, "gp", y,
              &a);
    if (keep) y = unary(g, NN_OP_FLATTEN, "flat", y, NULL);
    int w = rconst(g, "fc/kernel", 2, (int64_t[]){32, 10}, 0.3f);
    int b = rconst(g, "fc/bias", 1, (int64_t[]){10}, 0.3f);
    nn_node_attr_init(NN_OP_DENSE, &a);
    a.dense.act = keep ? NN_ACT_RELU : NN_ACT_NONE;
    y = nn_graph_add_node(g, NN_OP_DENSE, "fc", (int[]){y, w, b}, 3, &a);
    /* ONNX Gemm style: transposed (out, in) weight, no bias */
    int w2 = rconst(g, "fc2/kernel", 2, (int64_t[]){6, 10}, 0.3f);
    nn_node_attr_init(NN_OP_DENSE, &a);
    a.dense.transb = true;
    y = nn_graph_add_node(g, NN_OP_DENSE, "fc2", (int[]){y, w2}, 2, &a);
    y = unary(g, NN_OP_SOFTMAX, "prob", y, NULL);
    nn_graph_mark_output(g, y);
    check_graph(g, keep ? "global max, flatten, dense" : "global avg, dense",
                TOL);
    nn_graph_free(g);
  }
}

TEST(concat_of_blocked_and_plain_inputs) {
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 3, 10, 9);
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = 1;
  int a = conv(g, "a", x, 3, 16, 3, 3, &ca);
  int b = conv(g, "b", x, 3, 24, 3, 3, &ca);
  int c = conv(g, "c", x, 3, 5, 3, 3, &ca); /* not a multiple of 16 */
  int y = nn_graph_add_node(g, NN_OP_CONCAT, "cat", (int[]){a, b, c, x}, 4,
                            NULL);
  nn_conv2d_attr_init(&ca);
  y = conv(g, "after", y, 48, 8, 1, 1, &ca);
  nn_graph_mark_output(g, y);
  nn_graph_mark_output(g, a); /* also an output while consumed */
  check_graph(g, "concat", TOL);
  nn_graph_free(g);
}

TEST(residual_add_fused_into_conv) {
  /* ResNet blocks: conv -> conv + shortcut -> relu, with an identity
   * shortcut (the conv accumulates into it in place) and with a projection
   * shortcut computed after the main branch. */
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 16, 8, 8);
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  ca.act = NN_ACT_RELU;
  int s0 = conv(g, "stem", x, 16, 32, 1, 1, &ca);
  ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = 1;
  int y = conv(g, "b1c1", s0, 32, 32, 3, 3, &ca);
  ca.act = NN_ACT_NONE;
  y = conv(g, "b1c2", y, 32, 32, 3, 3, &ca);
  y = binary(g, NN_OP_ADD, "b1add", y, s0);
  int r1 = act(g, "b1relu", y, NN_ACT_RELU);
  int m = conv(g, "b2c1", r1, 32, 48, 3, 3, &ca);
  nn_conv2d_attr_init(&ca);
  int p = conv(g, "b2proj", r1, 32, 48, 1, 1, &ca);
  y = binary(g, NN_OP_ADD, "b2add", m, p);
  y = act(g, "b2relu", y, NN_ACT_RELU);
  /* shortcut still needed after the add: must not be overwritten */
  int q = conv(g, "b3c", y, 48, 48, 1, 1, &ca);
  int z = binary(g, NN_OP_ADD, "b3add", q, y);
  z = binary(g, NN_OP_MUL, "b3mul", z, y);
  nn_graph_mark_output(g, z);
  check_graph(g, "residual", TOL);
  nn_graph_free(g);
}

TEST(broadcast_mul_add_and_fallback) {
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 16, 6, 5);
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  int y = conv(g, "c", x, 16, 16, 1, 1, &ca);
  int s3 = rconst(g, "scale3", 3, (int64_t[]){16, 1, 1}, 1.0f);
  y = binary(g, NN_OP_MUL, "mul_c11", y, s3); /* rank 3 against rank 4 */
  int s4 = rconst(g, "shift4", 4, (int64_t[]){1, 16, 1, 1}, 1.0f);
  y = binary(g, NN_OP_ADD, "add_1c11", s4, y); /* broadcast operand first */
  int row = rconst(g, "row", 1, (int64_t[]){5}, 1.0f);
  y = binary(g, NN_OP_MUL, "mul_w", y, row);
  /* both operands broadcast: (N,16,6,5) pooled to (N,16,1,1) times a
   * (1,1,6,5) constant -> the reference kernel */
  nn_node_attr a;
  nn_node_attr_init(NN_OP_GLOBAL_AVGPOOL, &a);
  int gp = unary(g, NN_OP_GLOBAL_AVGPOOL, "gp", y, &a);
  int hw = rconst(g, "hw", 4, (int64_t[]){1, 1, 6, 5}, 1.0f);
  int z = binary(g, NN_OP_MUL, "outer", gp, hw);
  z = binary(g, NN_OP_ADD, "sum", z, y);
  nn_graph_mark_output(g, z);
  check_graph(g, "broadcast", TOL);
  nn_graph_free(g);
}

TEST(transpose_and_pad_fall_back_between_blocked_ops) {
  static const nn_pad_mode modes[3] = {NN_PAD_CONSTANT, NN_PAD_REFLECT,
                                       NN_PAD_EDGE};
  for (int k = 0; k < 3; k++) {
    nn_graph *g = NULL;
    nn_graph_new(NULL, &g);
    int x = input4(g, "x", 3, 9, 8);
    nn_node_attr a;
    nn_node_attr_init(NN_OP_PAD, &a);
    a.pad.mode = modes[k];
    a.pad.value = 0.5f;
    a.pad.pads[2] = 1;
    a.pad.pads[3] = 2;
    a.pad.pads[6] = 2;
    a.pad.pads[7] = 1;
    int y = unary(g, NN_OP_PAD, "pad", x, &a);
    nn_conv2d_attr ca;
    nn_conv2d_attr_init(&ca);
    ca.act = NN_ACT_RELU;
    y = conv(g, "c", y, 3, 16, 3, 3, &ca);
    nn_node_attr_init(NN_OP_MAXPOOL, &a);
    a.pool.kernel[0] = a.pool.kernel[1] = 2;
    a.pool.stride[0] = a.pool.stride[1] = 2;
    y = unary(g, NN_OP_MAXPOOL, "pool", y, &a);
    /* Keras Flatten: NHWC order, then a dense layer */
    nn_node_attr_init(NN_OP_TRANSPOSE, &a);
    a.n_perm = 4;
    a.perm[0] = 0;
    a.perm[1] = 2;
    a.perm[2] = 3;
    a.perm[3] = 1;
    y = unary(g, NN_OP_TRANSPOSE, "nhwc", y, &a);
    y = unary(g, NN_OP_FLATTEN, "flat", y, NULL);
    int w = rconst(g, "fc/kernel", 2, (int64_t[]){16 * 5 * 4, 7}, 0.05f);
    y = nn_graph_add_node(g, NN_OP_DENSE, "fc", (int[]){y, w}, 2, NULL);
    nn_graph_mark_output(g, y);
    check_graph(g, "pad, transpose, flatten", TOL);
    nn_graph_free(g);
  }
}

TEST(unfused_batchnorm_acts_clip_softmax_reshape) {
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 6, 7, 7);
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  int y = conv(g, "c", x, 6, 16, 3, 3, &ca);
  int64_t c16[1] = {16};
  int gm = rconst(g, "bn/gamma", 1, c16, 1.0f);
  int bt = rconst(g, "bn/beta", 1, c16, 1.0f);
  int mu = rconst(g, "bn/moving_mean", 1, c16, 0.5f);
  float var[16];
  for (int k = 0; k < 16; k++) var[k] = 0.5f + 0.5f * (urand() + 1.0f);
  int vr = nn_graph_add_const(g, "bn/moving_variance", 1, c16, var);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_BATCHNORM, &a);
  a.eps = 1e-3f;
  y = nn_graph_add_node(g, NN_OP_BATCHNORM, "bn", (int[]){y, gm, bt, mu, vr},
                        5, &a);
  int y_bn = y;
  y = act(g, "swish", y, NN_ACT_SWISH);
  y = act(g, "hsig", y, NN_ACT_HARD_SIGMOID);
  int t = act(g, "tanh", y_bn, NN_ACT_TANH);
  y = binary(g, NN_OP_ADD, "sum", y, t);
  nn_node_attr_init(NN_OP_CLIP, &a);
  a.clip_lo = -0.25f;
  a.clip_hi = 0.75f;
  y = unary(g, NN_OP_CLIP, "clip", y, &a);
  nn_node_attr_init(NN_OP_SOFTMAX, &a);
  a.axis = 1; /* over channels of a 4-D tensor */
  y = unary(g, NN_OP_SOFTMAX, "sm", y, &a);
  y = unary(g, NN_OP_IDENTITY, "drop", y, NULL);
  nn_node_attr_init(NN_OP_RESHAPE, &a);
  a.n_shape = 3;
  a.shape[0] = 0;
  a.shape[1] = 16;
  a.shape[2] = -1;
  y = unary(g, NN_OP_RESHAPE, "rs", y, &a);
  nn_graph_mark_output(g, y);
  nn_graph_mark_output(g, y_bn);
  check_graph(g, "bn/act/clip/softmax", TOL);
  nn_graph_free(g);
}

/* Runs the reference backend on finalized g, then optimizes g (zero pads
 * folded, ...) and runs oneDNN on it: max |dnnl - ref| / max |ref| over the
 * first output; *pads_left gets the Pad nodes that survived. */
static double ref_then_optimized_dnnl(nn_graph *g, int64_t batch,
                                      int *pads_left) {
  dlp_err e = {0};
  double rel = INFINITY;
  nn_shape si = nn_graph_value_shape(g, g->inputs[0], batch);
  nn_shape so = nn_graph_value_shape(g, g->outputs[0], batch);
  int64_t ni = nn_shape_numel(si.ndim, si.dims),
          no = nn_shape_numel(so.ndim, so.dims);
  float *in = malloc((size_t)ni * sizeof *in);
  float *ref = calloc((size_t)no, sizeof *ref), *got = calloc((size_t)no, 4);
  for (int64_t i = 0; i < ni; i++) in[i] = urand();
  nn_plan *p = NULL;
  bool ok = nn_plan_new(&e, g, NN_BACKEND_REF, batch, 1, &p) == DLP_OK &&
            nn_plan_run(&e, p, (const float *const[]){in},
                        (float *const[]){ref}) == DLP_OK;
  nn_plan_free(p);
  p = NULL;
  ok = ok && nn_graph_optimize(&e, g) == DLP_OK &&
       nn_plan_new(&e, g, NN_BACKEND_DNNL, batch, 2, &p) == DLP_OK &&
       nn_plan_run(&e, p, (const float *const[]){in},
                   (float *const[]){got}) == DLP_OK;
  nn_plan_free(p);
  if (!ok) fprintf(stderr, "ref_then_optimized_dnnl: %s\n", e.msg);
  if (ok) {
    double mx = 1e-30, md = 0;
    for (int64_t i = 0; i < no; i++) {
      double d = fabs((double)got[i] - ref[i]);
      if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
      if (!(d <= md)) md = d;
    }
    rel = md / mx;
  }
  *pads_left = 0;
  for (int i = 0; i < g->n_nodes; i++) *pads_left += g->nodes[i].op == NN_OP_PAD;
  free(in);
  free(ref);
  free(got);
  return rel;
}

TEST(zero_pad_folded_into_avgpool_and_conv) {
  /* ONNX exports of avg_pool2d(padding=1) are Pad + AveragePool:
   * nn_graph_optimize folds a zero Pad into its reader; a Pad that cannot
   * fold (non-zero value, two readers, a ceil-mode pool) stays and runs on
   * its own. Both forms must give the reference's numbers on oneDNN. */
  const int want_pads[4] = {0, 1, 1, 1}; /* pad2 before the conv always goes */
  for (int variant = 0; variant < 4; variant++) {
    nn_graph *g = NULL;
    nn_graph_new(NULL, &g);
    int x = input4(g, "x", 4, 12, 11);
    nn_conv2d_attr ca;
    nn_conv2d_attr_init(&ca);
    ca.act = NN_ACT_RELU;
    int y = conv(g, "c", x, 4, 32, 1, 1, &ca); /* blocked pool input */
    nn_node_attr a;
    nn_node_attr_init(NN_OP_PAD, &a);
    a.pad.pads[2] = a.pad.pads[3] = a.pad.pads[6] = a.pad.pads[7] = 1;
    if (variant == 1) a.pad.value = 0.5f;
    int p = unary(g, NN_OP_PAD, "pad", y, &a);
    nn_node_attr_init(NN_OP_AVGPOOL, &a);
    a.pool.kernel[0] = a.pool.kernel[1] = 3;
    if (variant == 3) { /* ceil mode needs uncounted right padding */
      a.pool.stride[0] = a.pool.stride[1] = 2;
      a.pool.ceil_mode = true;
    }
    int q = unary(g, NN_OP_AVGPOOL, "pool", p, &a);
    if (variant == 2) q = binary(g, NN_OP_ADD, "pool_plus_pad", q,
                                 unary(g, NN_OP_AVGPOOL, "pool2", p, &a));
    /* asymmetric zero pad before a 3x3 conv */
    nn_node_attr_init(NN_OP_PAD, &a);
    a.pad.pads[2] = 2;
    a.pad.pads[3] = 0;
    a.pad.pads[6] = 1;
    a.pad.pads[7] = 3;
    int p2 = unary(g, NN_OP_PAD, "pad2", q, &a);
    nn_conv2d_attr_init(&ca);
    ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = 1;
    int z = conv(g, "c2", p2, 32, 16, 3, 3, &ca);
    nn_graph_mark_output(g, z);
    char what[64];
    snprintf(what, sizeof what, "pad folding variant %d", variant);
    check_graph(g, what, TOL);
    int left = -1;
    double rel = ref_then_optimized_dnnl(g, 3, &left);
    if (!(rel <= TOL))
      fprintf(stderr, "%s optimized: rel %.3g\n", what, rel);
    CHECK(rel <= TOL);
    CHECK_EQ_INT(left, want_pads[variant]);
    nn_graph_free(g);
  }
}

TEST(optimized_graph_matches_unoptimized_reference) {
  /* conv + unfused BN + relu, optimized (BN folded, relu fused) and run on
   * dnnl, against the reference on the same graph before optimizing. */
  dlp_rng_seed(&rng, 42);
  nn_graph *g[2];
  for (int k = 0; k < 2; k++) {
    dlp_rng_seed(&rng, 7);
    nn_graph_new(NULL, &g[k]);
    int x = input4(g[k], "x", 8, 9, 9);
    nn_conv2d_attr ca;
    nn_conv2d_attr_init(&ca);
    int y = conv(g[k], "c", x, 8, 16, 3, 3, &ca);
    int64_t c16[1] = {16};
    int gm = rconst(g[k], "bn/gamma", 1, c16, 1.0f);
    int bt = rconst(g[k], "bn/beta", 1, c16, 1.0f);
    int mu = rconst(g[k], "bn/mean", 1, c16, 0.5f);
    float var[16];
    for (int i = 0; i < 16; i++) var[i] = 1.0f + urand() * 0.5f;
    int vr = nn_graph_add_const(g[k], "bn/var", 1, c16, var);
    y = nn_graph_add_node(g[k], NN_OP_BATCHNORM, "bn",
                          (int[]){y, gm, bt, mu, vr}, 5, NULL);
    y = act(g[k], "relu", y, NN_ACT_RELU6);
    nn_graph_mark_output(g[k], y);
  }
  dlp_err e = {0};
  CHECK_EQ_INT(nn_graph_finalize(&e, g[0]), DLP_OK);
  CHECK_EQ_INT(nn_graph_finalize(&e, g[1]), DLP_OK);
  CHECK_EQ_INT(nn_graph_optimize(&e, g[1]), DLP_OK);
  int64_t n = 3 * 16 * 7 * 7;
  float *in = malloc(3 * 8 * 9 * 9 * sizeof(float));
  for (int i = 0; i < 3 * 8 * 9 * 9; i++) in[i] = urand();
  float *o0 = calloc((size_t)n, sizeof(float)), *o1 = calloc((size_t)n, 4);
  nn_plan *p0 = NULL, *p1 = NULL;
  CHECK_EQ_INT(nn_plan_new(&e, g[0], NN_BACKEND_REF, 3, 1, &p0), DLP_OK);
  CHECK_EQ_INT(nn_plan_new(&e, g[1], NN_BACKEND_DNNL, 3, 2, &p1), DLP_OK);
  if (p0 && p1) {
    const float *ins[1] = {in};
    CHECK_EQ_INT(nn_plan_run(&e, p0, ins, &o0), DLP_OK);
    CHECK_EQ_INT(nn_plan_run(&e, p1, ins, &o1), DLP_OK);
    double mx = 1e-30, md = 0;
    for (int64_t i = 0; i < n; i++) {
      mx = fmax(mx, fabs(o0[i]));
      md = fmax(md, fabs(o0[i] - o1[i]));
    }
    CHECK(md / mx <= TOL);
    CHECK(nn_plan_arena_bytes(p1) > 0);
  }
  nn_plan_free(p0);
  nn_plan_free(p1);
  free(in);
  free(o0);
  free(o1);
  nn_graph_free(g[0]);
  nn_graph_free(g[1]);
}

TEST(repeated_runs_and_thread_counts_agree) {
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 3, 16, 16);
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = 1;
  ca.act = NN_ACT_RELU;
  int y = conv(g, "c1", x, 3, 16, 3, 3, &ca);
  y = conv(g, "c2", y, 16, 16, 3, 3, &ca);
  nn_graph_mark_output(g, y);
  dlp_err e = {0};
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_OK);
  int64_t n_in = 2 * 3 * 16 * 16, n_out = 2 * 16 * 16 * 16;
  float *in = malloc((size_t)n_in * 4), *o[3];
  for (int64_t i = 0; i < n_in; i++) in[i] = urand();
  const float *ins[1] = {in};
  void *st1 = NULL, *st2 = NULL;
  CHECK_EQ_INT(nn_backend_dnnl.plan(&e, g, 2, 1, &st1), DLP_OK);
  CHECK_EQ_INT(nn_backend_dnnl.plan(&e, g, 2, 2, &st2), DLP_OK);
  for (int k = 0; k < 3; k++) o[k] = calloc((size_t)n_out, 4);
  if (st1 && st2) {
    CHECK_EQ_INT(nn_backend_dnnl.run(&e, st1, ins, &o[0]), DLP_OK);
    CHECK_EQ_INT(nn_backend_dnnl.run(&e, st1, ins, &o[1]), DLP_OK);
    CHECK_EQ_INT(nn_backend_dnnl.run(&e, st2, ins, &o[2]), DLP_OK);
    CHECK(memcmp(o[0], o[1], (size_t)n_out * 4) == 0);
    double md = 0;
    for (int64_t i = 0; i < n_out; i++) md = fmax(md, fabs(o[0][i] - o[2][i]));
    CHECK(md < 1e-4);
  }
  nn_backend_dnnl.free(st1);
  nn_backend_dnnl.free(st2);
  nn_backend_dnnl.free(NULL);
  for (int k = 0; k < 3; k++) free(o[k]);
  free(in);
  nn_graph_free(g);
}

TEST(bf16_stays_within_1e2_of_fp32) {
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 3, 18, 18);
  nn_conv2d_attr ca;
  nn_conv2d_attr_init(&ca);
  ca.pads[0] = ca.pads[1] = ca.pads[2] = ca.pads[3] = 1;
  ca.act = NN_ACT_RELU;
  int y = conv(g, "c1", x, 3, 32, 3, 3, &ca);
  y = conv(g, "c2", y, 32, 32, 3, 3, &ca);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_GLOBAL_AVGPOOL, &a);
  a.keepdims = false;
  y = unary(g, NN_OP_GLOBAL_AVGPOOL, "gp", y, &a);
  int w = rconst(g, "fc/kernel", 2, (int64_t[]){32, 10}, 0.3f);
  y = nn_graph_add_node(g, NN_OP_DENSE, "fc", (int[]){y, w}, 2, NULL);
  nn_graph_mark_output(g, y);
  dlp_err e = {0};
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_OK);
  bool ok;
  double rel = run_both(g, 4, &nn_backend_dnnl_bf16, 2, &ok);
  if (!ok) fprintf(stderr, "bf16 not run (CPU without AVX-512?)\n");
  else fprintf(stderr, "bf16 max rel error %.3g\n", rel);
  CHECK(!ok || rel <= 1e-2);
  nn_graph_free(g);
}

TEST(zoo_networks_at_small_sizes_match_reference) {
  /* Whole architectures (random He weights, optimized as dlp runs them) at
   * small inputs so the reference stays quick, also under ASan. */
  for (size_t k = 0; k < nn_zoo_count(); k++) {
    const nn_zoo_entry *z = nn_zoo_at(k);
    /* the four networks; Xception and VGG19 add only time */
    if (strcmp(z->name, "Xception") == 0 || strcmp(z->name, "VGG19") == 0)
      continue;
    int side = strcmp(z->name, "InceptionV3") == 0 ? 75
               : strcmp(z->name, "Xception") == 0  ? 71
               : strncmp(z->name, "VGG", 3) == 0   ? 32
                                                   : 64;
    dlp_err e = {0};
    nn_graph *g = NULL;
    int rc = nn_zoo_build_sized(&e, z, true, side, side, &g);
    if (rc == DLP_OK) rc = nn_zoo_init_random(&e, g, 3);
    if (rc == DLP_OK) rc = nn_graph_optimize(&e, g);
    if (rc != DLP_OK) fprintf(stderr, "%s: %s\n", z->name, e.msg);
    CHECK_EQ_INT(rc, DLP_OK);
    if (rc == DLP_OK) {
      bool ok;
      double t0 = dlp_now();
      double rel = run_both(g, 2, &nn_backend_dnnl, 2, &ok);
      fprintf(stderr, "%s %dx%d: max rel error %.3g (%.1f s)\n", z->name,
              side, side, rel, dlp_now() - t0);
      CHECK(ok && rel <= TOL);
    }
    nn_graph_free(g);
  }
}

TEST(refuses_unfinalized_graph) {
  nn_graph *g = NULL;
  nn_graph_new(NULL, &g);
  int x = input4(g, "x", 3, 4, 4);
  nn_graph_mark_output(g, act(g, "r", x, NN_ACT_RELU));
  dlp_err e = {0};
  void *st = (void *)&e;
  CHECK_EQ_INT(nn_backend_dnnl.plan(&e, g, 1, 1, &st), DLP_ERR_ARG);
  CHECK(st == NULL && strstr(e.msg, "finalized"));
  nn_graph_free(g);
}

int main(void) {
  dlp_rng_seed(&rng, 1);
  RUN(conv_padding_stride_dilation_groups_and_fused_acts);
  RUN(conv_3x3_same_chain_keeps_blocked_layout);
  RUN(depthwise_with_multiplier_and_pointwise);
  RUN(expand_and_depthwise_fused_in_one_primitive);
  RUN(expand_pairs_on_small_maps_planned_apart);
  RUN(pooling_padding_modes_and_ceil_mode);
  RUN(global_pool_flatten_dense_softmax);
  RUN(concat_of_blocked_and_plain_inputs);
  RUN(residual_add_fused_into_conv);
  RUN(broadcast_mul_add_and_fallback);
  RUN(transpose_and_pad_fall_back_between_blocked_ops);
  RUN(unfused_batchnorm_acts_clip_softmax_reshape);
  RUN(zero_pad_folded_into_avgpool_and_conv);
  RUN(optimized_graph_matches_unoptimized_reference);
  RUN(repeated_runs_and_thread_counts_agree);
  RUN(bf16_stays_within_1e2_of_fp32);
  RUN(zoo_networks_at_small_sizes_match_reference);
  RUN(refuses_unfinalized_graph);
  return test_summary();
}
