/* test_graph.c - graph IR: builders and their errors, cycles, topological
 * order, shape inference against hand-computed shapes, dead nodes, cut,
 * optimisation equivalence, buffer reuse, reference execution vs loops. */
#include "graph.h"
#include "test.h"
#include "transpose.h"

#include <stdint.h>

static dlp_rng rng_;

static float *rand_floats(int64_t n, float lo, float hi) {
  float *p = malloc((size_t)n * sizeof *p);
  for (int64_t i = 0; i < n; i++)
    p[i] = lo + (hi - lo) * (float)dlp_rng_uniform(&rng_);
  return p;
}

static int add_rand_const(nn_graph *g, const char *name, int ndim,
                          const int64_t *dims, float lo, float hi) {
  int64_t n = nn_shape_numel(ndim, dims);
  return nn_graph_add_const_owned(g, name, ndim, dims, rand_floats(n, lo, hi));
}

static bool shape_is(const nn_graph *g, int v, int ndim, const int64_t *d) {
  if (v < 0 || g->values[v].shape.ndim != ndim) return false;
  for (int i = 0; i < ndim; i++)
    if (g->values[v].shape.dims[i] != d[i]) return false;
  return true;
}

static int conv(nn_graph *g, const char *name, int x, int cin, int cout, int k,
                int stride, int64_t in_hw, bool bias) {
  char wn[64], bn[64];
  snprintf(wn, sizeof wn, "%s/kernel", name);
  snprintf(bn, sizeof bn, "%s/bias", name);
  int w = add_rand_const(g, wn, 4, (int64_t[]){cout, cin, k, k}, -0.5f, 0.5f);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  a.conv.stride[0] = a.conv.stride[1] = stride;
  nn_pad_same_tf(in_hw, k, stride, 1, &a.conv.pads[0], &a.conv.pads[2]);
  nn_pad_same_tf(in_hw, k, stride, 1, &a.conv.pads[1], &a.conv.pads[3]);
  if (!bias)
    return nn_graph_add_node(g, NN_OP_CONV2D, name, (int[]){x, w}, 2, &a);
  int b = add_rand_const(g, bn, 1, (int64_t[]){cout}, -0.5f, 0.5f);
  return nn_graph_add_node(g, NN_OP_CONV2D, name, (int[]){x, w, b}, 3, &a);
}

static int simple(nn_graph *g, nn_op op, const char *name, int x) {
  return nn_graph_add_node(g, op, name, (int[]){x}, 1, NULL);
}

static int batchnorm(nn_graph *g, const char *name, int x, int64_t c) {
  char n[4][64];
  const char *sfx[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
  int id[4];
  for (int k = 0; k < 4; k++) {
    snprintf(n[k], sizeof n[k], "%s/%s", name, sfx[k]);
    id[k] = add_rand_const(g, n[k], 1, &c, k == 3 ? 0.5f : -1.0f,
                           k == 0 ? 2.0f : 1.0f);
  }
  nn_node_attr a;
  nn_node_attr_init(NN_OP_BATCHNORM, &a);
  a.eps = 1e-3f;
  return nn_graph_add_node(g, NN_OP_BATCHNORM, name,
                           (int[]){x, id[0], id[1], id[2], id[3]}, 5, &a);
}

/* Runs g at `batch` on the reference backend; returns the first output. */
static float *run_ref(nn_graph *g, int64_t batch, const float *in,
                      size_t *arena) {
  dlp_err e = {0};
  nn_plan *p = NULL;
  if (nn_plan_new(&e, g, NN_BACKEND_REF, batch, 1, &p) != DLP_OK) {
    fprintf(stderr, "plan: %s\n", e.msg);
    return NULL;
  }
  nn_shape s = nn_graph_value_shape(g, g->outputs[0], batch);
  float *out = calloc((size_t)nn_shape_numel(s.ndim, s.dims), sizeof *out);
  int rc =
      nn_plan_run(&e, p, (const float *const[]){in}, (float *const[]){out});
  if (rc != DLP_OK) {
    fprintf(stderr, "run: %s\n", e.msg);
    free(out);
    out = NULL;
  }
  if (arena) *arena = nn_plan_arena_bytes(p);
  nn_plan_free(p);
  return out;
}

TEST(builders_refuse_duplicates_bad_ids_and_arity) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  CHECK_OK(NULL, nn_graph_new(&e, &g));
  int x = nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 4});
  CHECK_EQ_INT(x, 0);
  CHECK_EQ_INT(nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 4}), -1);
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_ARG);
  CHECK(strstr(e.msg, "duplicate value name 'x'") != NULL);
  nn_graph_free(g);

  /* A bad input id is refused when the node is added. */
  nn_graph_new(&e, &g);
  x = nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 4});
  CHECK_EQ_INT(simple(g, NN_OP_ACT, "relu", 7), -1);
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_ARG);
  CHECK(strstr(e.msg, "node 'relu'") && strstr(e.msg, "id 7"));
  nn_graph_free(g);

  /* Wrong arity is caught by finalize and names the node. */
  nn_graph_new(&e, &g);
  x = nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 4});
  int y = nn_graph_add_node(g, NN_OP_ADD, "sum", (int[]){x}, 1, NULL);
  CHECK(y > 0);
  nn_graph_mark_output(g, y);
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_ARG);
  CHECK_STR(e.msg, "node 'sum' (add): has 1 inputs, expects 2");
  nn_graph_free(g);

  /* The node name is reused for the output value, or "name:1". */
  nn_graph_new(&e, &g);
  x = nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 4});
  nn_graph_add_const(g, "r", 1, (int64_t[]){4}, (float[]){1, 2, 3, 4});
  y = simple(g, NN_OP_ACT, "r", x);
  CHECK_STR(g->values[y].name, "r:1");
  CHECK_EQ_INT(simple(g, NN_OP_ACT, "r", x), -1); /* duplicate node name */
  nn_graph_free(g);

  /* Hostile shapes: rank above the limit, huge dims, unknown op. */
  nn_graph_new(&e, &g);
  CHECK_EQ_INT(nn_graph_add_input(g, "x", 7, (int64_t[]){1, 1, 1, 1, 1, 1, 1}),
               -1);
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_ARG);
  nn_graph_free(g);
  nn_graph_new(&e, &g);
  CHECK_EQ_INT(nn_graph_add_const(g, "w", 2, (int64_t[]){1 << 30, 1 << 30},
                                  (float[]){0}),
               -1);
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_TOO_LARGE);
  CHECK(strstr(e.msg, "'w'") != NULL);
  nn_graph_free(g);
  nn_graph_new(&e, &g);
  x = nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 4});
  CHECK_EQ_INT(nn_graph_add_node(g, (nn_op)99, "weird", &x, 1, NULL), -1);
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_ARG);
  CHECK(strstr(e.msg, "unknown op 99") != NULL);
  nn_graph_free(g);

  /* No output marked. */
  nn_graph_new(&e, &g);
  nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 4});
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_ARG);
  CHECK(strstr(e.msg, "no output") != NULL);
  nn_graph_free(g);
  nn_graph_free(NULL);
}

TEST(cycle_is_reported_with_a_node_on_it) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  nn_graph_new(&e, &g);
  int x = nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 4});
  int a = simple(g, NN_OP_ACT, "a", x);
  int b = simple(g, NN_OP_ACT, "b", a);
  int c = simple(g, NN_OP_ACT, "c", b);
  int d = simple(g, NN_OP_ACT, "d", c);
  nn_graph_mark_output(g, d);
  g->nodes[1].in[0] = c; /* b reads c: b -> c -> b */
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_CORRUPT);
  CHECK(strncmp(e.msg, "graph has a cycle through node '", 32) == 0);
  CHECK(strstr(e.msg, "'b'") || strstr(e.msg, "'c'"));
  nn_graph_free(g);

  /* A node reading its own output. */
  nn_graph_new(&e, &g);
  x = nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 4});
  a = nn_graph_add_node(g, NN_OP_ADD, "self", (int[]){x, x}, 2, NULL);
  nn_graph_mark_output(g, a);
  g->nodes[0].in[1] = a;
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_CORRUPT);
  CHECK_STR(e.msg, "graph has a cycle through node 'self'");
  nn_graph_free(g);
}

TEST(nodes_out_of_order_are_sorted) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  nn_graph_new(&e, &g);
  int x = nn_graph_add_input(g, "x", 2, (int64_t[]){-1, 3});
  int a = simple(g, NN_OP_ACT, "a", x);
  int b = simple(g, NN_OP_IDENTITY, "b", a);
  int c = nn_graph_add_node(g, NN_OP_ADD, "c", (int[]){a, b}, 2, NULL);
  nn_graph_mark_output(g, c);
  g->nodes[0].attr.act = NN_ACT_RELU;
  /* Reverse the node array: consumers now come before producers. */
  nn_node t = g->nodes[0];
  g->nodes[0] = g->nodes[2];
  g->nodes[2] = t;
  CHECK_OK(NULL, nn_graph_finalize(&e, g));
  CHECK_STR(g->nodes[0].name, "a");
  CHECK_STR(g->nodes[1].name, "b");
  CHECK_STR(g->nodes[2].name, "c");
  for (int i = 0; i < g->n_nodes; i++)
    CHECK_EQ_INT(g->values[g->nodes[i].out].producer, i);
  /* relu(x) + relu(x), by hand. */
  float in[6] = {-1, 2, 3, -4, 0.5f, 0};
  float *out = run_ref(g, 2, in, NULL);
  float want[6] = {0, 4, 6, 0, 1, 0};
  CHECK(out != NULL);
  for (int i = 0; out && i < 6; i++)
    CHECK_NEAR(out[i], want[i], 0);
  free(out);
  nn_graph_free(g);
}

/* input (-1,3,32,32) -> conv 3x3/2 same (8) -> maxpool 2/2 -> [pool, conv
 * 1x1 (4)] concat -> global avgpool -> flatten -> dense 5 -> softmax. */
static nn_graph *small_cnn(void) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  nn_graph_new(&e, &g);
  int x = nn_graph_add_input(g, "input", 4, (int64_t[]){-1, 3, 32, 32});
  int c1 = conv(g, "conv1", x, 3, 8, 3, 2, 32, true);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_MAXPOOL, &a);
  a.pool.kernel[0] = a.pool.kernel[1] = 2;
  a.pool.stride[0] = a.pool.stride[1] = 2;
  int p1 = nn_graph_add_node(g, NN_OP_MAXPOOL, "pool1", &c1, 1, &a);
  int c2 = conv(g, "conv2", p1, 8, 4, 1, 1, 8, true);
  nn_node_attr_init(NN_OP_CONCAT, &a);
  int cat =
      nn_graph_add_node(g, NN_OP_CONCAT, "concat", (int[]){p1, c2}, 2, &a);
  int gp = simple(g, NN_OP_GLOBAL_AVGPOOL, "gap", cat);
  int fl = simple(g, NN_OP_FLATTEN, "flatten", gp);
  int w = add_rand_const(g, "fc/kernel", 2, (int64_t[]){12, 5}, -1, 1);
  int b = add_rand_const(g, "fc/bias", 1, (int64_t[]){5}, -1, 1);
  int fc = nn_graph_add_node(g, NN_OP_DENSE, "fc", (int[]){fl, w, b}, 3, NULL);
  int sm = simple(g, NN_OP_SOFTMAX, "softmax", fc);
  nn_graph_mark_output(g, sm);
  return g;
}

TEST(shapes_of_a_small_cnn_match_hand_computation) {
  dlp_err e = {0};
  nn_graph *g = small_cnn();
  CHECK_OK(NULL, nn_graph_finalize(&e, g));
  /* conv 3x3 stride 2 'same' on 32: ceil(32/2) = 16; pool 2/2: 8. */
  CHECK(shape_is(g, nn_graph_find_value(g, "conv1"), 4,
                 (int64_t[]){-1, 8, 16, 16}));
  CHECK(shape_is(g, nn_graph_find_value(g, "pool1"), 4,
                 (int64_t[]){-1, 8, 8, 8}));
  CHECK(shape_is(g, nn_graph_find_value(g, "conv2"), 4,
                 (int64_t[]){-1, 4, 8, 8}));
  CHECK(shape_is(g, nn_graph_find_value(g, "concat"), 4,
                 (int64_t[]){-1, 12, 8, 8}));
  CHECK(
      shape_is(g, nn_graph_find_value(g, "gap"), 4, (int64_t[]){-1, 12, 1, 1}));
  CHECK(shape_is(g, nn_graph_find_value(g, "flatten"), 2, (int64_t[]){-1, 12}));
  CHECK(shape_is(g, nn_graph_find_value(g, "softmax"), 2, (int64_t[]){-1, 5}));
  CHECK(
      shape_is(g, nn_graph_find_value(g, "fc/kernel"), 2, (int64_t[]){12, 5}));
  nn_shape s = nn_graph_value_shape(g, g->outputs[0], 3);
  CHECK_EQ_INT(s.ndim, 2);
  CHECK_EQ_INT(s.dims[0], 3);
  CHECK_EQ_INT(s.dims[1], 5);
  CHECK_OK(NULL, nn_graph_finalize(&e, g)); /* idempotent */
  CHECK_EQ_INT(g->n_nodes, 8);

  /* Softmax rows sum to 1 at batch 1 and 3; batch rows equal single runs. */
  int64_t per = 3 * 32 * 32;
  float *in = rand_floats(3 * per, -1, 1);
  float *o3 = run_ref(g, 3, in, NULL);
  CHECK(o3 != NULL);
  for (int n = 0; o3 && n < 3; n++) {
    float *o1 = run_ref(g, 1, in + n * per, NULL);
    double sum = 0;
    for (int k = 0; o1 && k < 5; k++) {
      CHECK_NEAR(o1[k], o3[n * 5 + k], 1e-6);
      sum += o1[k];
    }
    CHECK_NEAR(sum, 1.0, 1e-5);
    free(o1);
  }
  free(o3);
  free(in);
  nn_graph_free(g);
}

TEST(shape_mismatch_names_the_node) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  nn_graph_new(&e, &g);
  int x = nn_graph_add_input(g, "input", 4, (int64_t[]){-1, 3, 8, 8});
  int c = conv(g, "block1_conv1", x, 4, 8, 3, 1, 8, true); /* expects 4 in */
  nn_graph_mark_output(g, c);
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_ARG);
  CHECK(strncmp(e.msg, "node 'block1_conv1' (conv2d): conv2d", 36) == 0);
  nn_graph_free(g);

  /* An op that moves the batch off axis 0 is refused. */
  nn_graph_new(&e, &g);
  x = nn_graph_add_input(g, "input", 3, (int64_t[]){-1, 3, 5});
  nn_node_attr a;
  nn_node_attr_init(NN_OP_TRANSPOSE, &a);
  a.n_perm = 3;
  a.perm[0] = 1, a.perm[1] = 0, a.perm[2] = 2;
  int t = nn_graph_add_node(g, NN_OP_TRANSPOSE, "swap", &x, 1, &a);
  nn_graph_mark_output(g, t);
  CHECK_EQ_INT(nn_graph_finalize(&e, g), DLP_ERR_UNSUPPORTED);
  CHECK(strstr(e.msg, "node 'swap' (transpose)") != NULL);
  nn_graph_free(g);
}

TEST(dead_nodes_and_their_weights_are_dropped) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  nn_graph_new(&e, &g);
  int x = nn_graph_add_input(g, "input", 4, (int64_t[]){-1, 2, 4, 4});
  int c1 = conv(g, "used", x, 2, 2, 1, 1, 4, true);
  int c2 = conv(g, "unused", x, 2, 2, 1, 1, 4, true);
  simple(g, NN_OP_ACT, "unused_act", c2);
  nn_graph_mark_output(g, c1);
  CHECK_OK(NULL, nn_graph_finalize(&e, g));
  CHECK_EQ_INT(g->n_nodes, 1);
  CHECK_EQ_INT(nn_graph_find_node(g, "unused"), -1);
  CHECK_EQ_INT(nn_graph_find_value(g, "unused/kernel"), -1);
  CHECK_EQ_INT(nn_graph_find_value(g, "unused_act"), -1);
  CHECK(nn_graph_find_value(g, "used/kernel") >= 0);
  CHECK_EQ_INT(g->n_values, 4); /* input, kernel, bias, output */
  CHECK_EQ_INT(g->values[g->outputs[0]].producer, 0);
  CHECK_STR(g->values[g->outputs[0]].name, "used");
  nn_graph_free(g);
}

TEST(cut_keeps_what_the_chosen_value_needs) {
  dlp_err e = {0};
  nn_graph *g = small_cnn();
  CHECK_OK(NULL, nn_graph_finalize(&e, g));
  CHECK_EQ_INT(nn_graph_cut(&e, g, "no_such_layer"), DLP_ERR_NOT_FOUND);
  CHECK(strstr(e.msg, "'no_such_layer'") != NULL);
  CHECK_OK(NULL, nn_graph_cut(&e, g, "gap"));
  CHECK_EQ_INT(g->n_nodes, 5);
  CHECK_EQ_INT(g->n_outputs, 1);
  CHECK_STR(g->values[g->outputs[0]].name, "gap");
  CHECK_EQ_INT(nn_graph_find_value(g, "fc/kernel"), -1);
  CHECK(shape_is(g, g->outputs[0], 4, (int64_t[]){-1, 12, 1, 1}));
  CHECK_OK(NULL, nn_graph_cut(&e, g, "pool1"));
  CHECK_EQ_INT(g->n_nodes, 2);
  CHECK_EQ_INT(nn_graph_find_value(g, "conv2/kernel"), -1);
  nn_graph_free(g);
}

static double max_rel_err(const float *a, const float *b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    num = d > num ? d : num;
    den = fabs((double)b[i]) > den ? fabs((double)b[i]) : den;
  }
  return den > 0 ? num / den : num;
}

/* conv(no bias)-bn-relu, conv-bn-clip(0,6), dropout, a shared-input
 * conv-bn whose weights another conv also reads, dense-bn-relu, dense
 * output through an identity named "logits". */
static nn_graph *foldable_net(void) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  nn_graph_new(&e, &g);
  int x = nn_graph_add_input(g, "input", 4, (int64_t[]){-1, 3, 12, 12});
  int c1 = conv(g, "c1", x, 3, 6, 3, 1, 12, false);
  int b1 = batchnorm(g, "bn1", c1, 6);
  int r1 = simple(g, NN_OP_ACT, "relu1", b1);
  g->nodes[g->n_nodes - 1].attr.act = NN_ACT_RELU;
  int d1 = simple(g, NN_OP_IDENTITY, "dropout", r1);
  int c2 = conv(g, "c2", d1, 6, 6, 3, 2, 12, true);
  int b2 = batchnorm(g, "bn2", c2, 6);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CLIP, &a);
  a.clip_lo = 0, a.clip_hi = 6;
  int r2 = nn_graph_add_node(g, NN_OP_CLIP, "relu6", &b2, 1, &a);
  /* c3 and c4 share one weight tensor; c3 is folded, c4 must not change. */
  int c3 = nn_graph_add_node(g, NN_OP_CONV2D, "c3",
                             (int[]){r2, nn_graph_find_value(g, "c2/kernel")},
                             2, &g->nodes[nn_graph_find_node(g, "c2")].attr);
  int b3 = batchnorm(g, "bn3", c3, 6);
  int c4 = nn_graph_add_node(g, NN_OP_CONV2D, "c4",
                             (int[]){r2, nn_graph_find_value(g, "c2/kernel")},
                             2, &g->nodes[nn_graph_find_node(g, "c2")].attr);
  int sum = nn_graph_add_node(g, NN_OP_ADD, "sum", (int[]){b3, c4}, 2, NULL);
  int gp = simple(g, NN_OP_GLOBAL_AVGPOOL, "gap", sum);
  g->nodes[g->n_nodes - 1].attr.keepdims = false;
  int w = add_rand_const(g, "fc/kernel", 2, (int64_t[]){6, 4}, -1, 1);
  int fc = nn_graph_add_node(g, NN_OP_DENSE, "fc", (int[]){gp, w}, 2, NULL);
  int b4 = batchnorm(g, "bn4", fc, 4);
  int r4 = simple(g, NN_OP_ACT, "relu4", b4);
  g->nodes[g->n_nodes - 1].attr.act = NN_ACT_RELU;
  int out = simple(g, NN_OP_IDENTITY, "logits", r4);
  nn_graph_mark_output(g, out);
  return g;
}

TEST(optimize_folds_and_fuses_with_the_same_results) {
  dlp_err e = {0};
  nn_graph *g = foldable_net();
  CHECK_OK(NULL, nn_graph_finalize(&e, g));
  int n_before = g->n_nodes;
  int64_t per = 3 * 12 * 12;
  float *in = rand_floats(2 * per, -2, 2);
  float *want = run_ref(g, 2, in, NULL);
  CHECK_OK(NULL, nn_graph_optimize(&e, g));
  float *got = run_ref(g, 2, in, NULL);
  CHECK(want && got);
  if (want && got) CHECK(max_rel_err(got, want, 2 * 4) <= 1e-5);
  /* Everything foldable went: 4 bn, 3 acts/clips, 2 identities. */
  CHECK_EQ_INT(g->n_nodes, n_before - 9);
  for (int i = 0; i < g->n_nodes; i++) {
    CHECK(g->nodes[i].op != NN_OP_BATCHNORM);
    CHECK(g->nodes[i].op != NN_OP_IDENTITY);
    CHECK(g->nodes[i].op != NN_OP_ACT && g->nodes[i].op != NN_OP_CLIP);
  }
  int c1 = nn_graph_find_node(g, "c1"), c2 = nn_graph_find_node(g, "c2");
  CHECK(c1 >= 0 && g->nodes[c1].attr.conv.act == NN_ACT_RELU);
  CHECK(c1 >= 0 && g->nodes[c1].n_in == 3); /* a bias was created */
  CHECK(c2 >= 0 && g->nodes[c2].attr.conv.act == NN_ACT_RELU6);
  int fc = nn_graph_find_node(g, "fc");
  CHECK(fc >= 0 && g->nodes[fc].attr.dense.act == NN_ACT_RELU);
  CHECK_STR(g->values[g->outputs[0]].name, "logits");
  CHECK_EQ_INT(nn_graph_find_value(g, "bn1/gamma"), -1);
  CHECK(g->finalized);
  /* Idempotent. */
  CHECK_OK(NULL, nn_graph_optimize(&e, g));
  float *again = run_ref(g, 2, in, NULL);
  if (want && again) CHECK(max_rel_err(again, want, 2 * 4) <= 1e-5);
  free(again);
  free(want);
  free(got);
  free(in);
  nn_graph_free(g);
}

TEST(zero_pad_folds_into_the_next_conv_but_not_other_pads) {
  dlp_err e = {0};
  for (int variant = 0; variant < 3; variant++) {
    /* 0: zero pad -> conv (folds); 1: value 1 (must stay); 2: reflect */
    nn_graph *g = NULL;
    CHECK_OK(NULL, nn_graph_new(&e, &g));
    int x = nn_graph_add_input(g, "in", 4, (int64_t[]){-1, 3, 9, 9});
    nn_node_attr a;
    nn_node_attr_init(NN_OP_PAD, &a);
    int64_t p4[8] = {0, 0, 0, 1, 0, 0, 1, 2}; /* top 0 left 1 bottom 1 right 2 */
    memcpy(a.pad.pads, p4, sizeof p4);
    a.pad.value = variant == 1 ? 1.0f : 0.0f;
    a.pad.mode = variant == 2 ? NN_PAD_REFLECT : NN_PAD_CONSTANT;
    int pd = nn_graph_add_node(g, NN_OP_PAD, "zero_pad", (int[]){x}, 1, &a);
    int w = add_rand_const(g, "c/kernel", 4, (int64_t[]){4, 3, 3, 3}, -1, 1);
    nn_node_attr ca;
    nn_node_attr_init(NN_OP_CONV2D, &ca);
    ca.conv.stride[0] = ca.conv.stride[1] = 2;
    ca.conv.pads[0] = 1; /* pads of its own add up with the folded ones */
    int y = nn_graph_add_node(g, NN_OP_CONV2D, "c", (int[]){pd, w}, 2, &ca);
    nn_graph_mark_output(g, y);
    CHECK_OK(NULL, nn_graph_finalize(&e, g));
    float *in = rand_floats(2 * 3 * 9 * 9, -2, 2);
    float *want = run_ref(g, 2, in, NULL);
    CHECK_OK(NULL, nn_graph_optimize(&e, g));
    float *got = run_ref(g, 2, in, NULL);
    nn_shape s = nn_graph_value_shape(g, g->outputs[0], 2);
    CHECK(want && got);
    if (want && got)
      CHECK(max_rel_err(got, want, nn_shape_numel(s.ndim, s.dims)) <= 1e-6);
    int c = nn_graph_find_node(g, "c");
    CHECK_EQ_INT(g->n_nodes, variant == 0 ? 1 : 2);
    if (variant == 0 && c >= 0) {
      CHECK_EQ_INT(g->nodes[c].attr.conv.pads[0], 1);
      CHECK_EQ_INT(g->nodes[c].attr.conv.pads[1], 1);
      CHECK_EQ_INT(g->nodes[c].attr.conv.pads[2], 1);
      CHECK_EQ_INT(g->nodes[c].attr.conv.pads[3], 2);
    }
    free(in);
    free(want);
    free(got);
    nn_graph_free(g);
  }
}

TEST(arena_reuses_dead_buffers) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  nn_graph_new(&e, &g);
  int x = nn_graph_add_input(g, "input", 4, (int64_t[]){-1, 8, 16, 16});
  int v = x;
  for (int i = 0; i < 12; i++) {
    char name[32];
    snprintf(name, sizeof name, "conv%d", i);
    v = conv(g, name, v, 8, 8, 3, 1, 16, true);
    snprintf(name, sizeof name, "relu%d", i);
    v = simple(g, NN_OP_ACT, name, v);
    g->nodes[g->n_nodes - 1].attr.act = NN_ACT_RELU;
  }
  int f = simple(g, NN_OP_FLATTEN, "flat", v);
  nn_graph_mark_output(g, f);
  CHECK_OK(NULL, nn_graph_finalize(&e, g));
  size_t act = 8 * 16 * 16 * sizeof(float), arena = 0;
  float *in = rand_floats(8 * 16 * 16, -1, 1);
  float *out = run_ref(g, 1, in, &arena);
  CHECK(out != NULL);
  /* 24 activations of `act` bytes; two live at a time (flatten is a view). */
  CHECK(arena >= 2 * act);
  CHECK(arena <= 2 * act + 256);
  free(out);
  free(in);
  nn_graph_free(g);
}

/* A tiny net checked against plain loops: conv 1x1 (2->3) + bias + relu,
 * global average, dense (3, 2) + bias, softmax. */
TEST(reference_run_matches_plain_loops_at_batch_1_and_3) {
  dlp_err e = {0};
  float w1[6] = {0.5f, -1, 0.25f, 0.75f, -0.5f, 1.5f}, b1[3] = {0.1f, -0.2f, 0};
  float w2[6] = {1, -1, 0.5f, 2, -0.3f, 0.7f}, b2[2] = {0.05f, -0.05f};
  nn_graph *g = NULL;
  nn_graph_new(&e, &g);
  int x = nn_graph_add_input(g, "in", 4, (int64_t[]){-1, 2, 3, 3});
  int wc = nn_graph_add_const(g, "w1", 4, (int64_t[]){3, 2, 1, 1}, w1);
  int bc = nn_graph_add_const(g, "b1", 1, (int64_t[]){3}, b1);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  a.conv.act = NN_ACT_RELU;
  int c = nn_graph_add_node(g, NN_OP_CONV2D, "c", (int[]){x, wc, bc}, 3, &a);
  nn_node_attr_init(NN_OP_GLOBAL_AVGPOOL, &a);
  a.keepdims = false;
  int gp = nn_graph_add_node(g, NN_OP_GLOBAL_AVGPOOL, "gap", &c, 1, &a);
  int wd = nn_graph_add_const(g, "w2", 2, (int64_t[]){3, 2}, w2);
  int bd = nn_graph_add_const(g, "b2", 1, (int64_t[]){2}, b2);
  int d = nn_graph_add_node(g, NN_OP_DENSE, "d", (int[]){gp, wd, bd}, 3, NULL);
  int sm = simple(g, NN_OP_SOFTMAX, "sm", d);
  nn_graph_mark_output(g, sm);
  CHECK_OK(NULL, nn_graph_finalize(&e, g));
  float *in = rand_floats(3 * 18, -2, 2);
  for (int batch = 1; batch <= 3; batch += 2) {
    float *out = run_ref(g, batch, in, NULL);
    CHECK(out != NULL);
    for (int n = 0; out && n < batch; n++) {
      double feat[3], logit[2];
      for (int o = 0; o < 3; o++) {
        double s = 0;
        for (int p = 0; p < 9; p++) {
          double v = b1[o] + w1[o * 2] * in[n * 18 + p] +
                     w1[o * 2 + 1] * in[n * 18 + 9 + p];
          s += v > 0 ? v : 0;
        }
        feat[o] = s / 9;
      }
      for (int k = 0; k < 2; k++)
        logit[k] =
            b2[k] + feat[0] * w2[k] + feat[1] * w2[2 + k] + feat[2] * w2[4 + k];
      double m = logit[0] > logit[1] ? logit[0] : logit[1];
      double z = exp(logit[0] - m) + exp(logit[1] - m);
      for (int k = 0; k < 2; k++)
        CHECK_NEAR(out[n * 2 + k], exp(logit[k] - m) / z, 1e-6);
    }
    free(out);
  }
  /* Missing input buffer and unfinalized graph are refused. */
  nn_plan *p = NULL;
  CHECK_OK(NULL, nn_plan_new(&e, g, NN_BACKEND_REF, 1, 1, &p));
  float out[2];
  CHECK_EQ_INT(
      nn_plan_run(&e, p, (const float *const[]){NULL}, (float *const[]){out}),
      DLP_ERR_ARG);
  CHECK(strstr(e.msg, "'in'") != NULL);
  nn_plan_free(p);
  CHECK_EQ_INT(nn_plan_new(&e, g, NN_BACKEND_REF, 0, 1, &p), DLP_ERR_ARG);
  free(in);
  nn_graph_free(g);
}

TEST(transpose_moves_elements_by_the_index_formula) {
  dlp_err e = {0};
  nn_tensor *x = NULL, *y = NULL;
  nn_tensor_new(&e, 4, (int64_t[]){2, 3, 4, 5}, &x);
  for (int i = 0; i < 120; i++)
    x->data[i] = (float)i;
  int perm[4] = {0, 2, 3, 1}; /* NCHW -> NHWC */
  nn_shape s;
  CHECK_OK(NULL, nn_transpose_out_shape(&e, x, perm, 4, &s));
  CHECK_EQ_INT(s.dims[1], 4);
  CHECK_EQ_INT(s.dims[3], 3);
  nn_tensor_new(&e, s.ndim, s.dims, &y);
  CHECK_OK(NULL, nn_transpose(&e, x, perm, 4, y));
  int bad = 0;
  for (int n = 0; n < 2; n++)
    for (int h = 0; h < 4; h++)
      for (int w = 0; w < 5; w++)
        for (int c = 0; c < 3; c++)
          bad += y->data[((n * 4 + h) * 5 + w) * 3 + c] !=
                 (float)(((n * 3 + c) * 4 + h) * 5 + w);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(nn_transpose_out_shape(&e, x, (int[]){0, 1, 1, 2}, 4, &s),
               DLP_ERR_ARG);
  nn_tensor_free(x);
  nn_tensor_free(y);
}

int main(void) {
  dlp_rng_seed(&rng_, 1234);
  RUN(builders_refuse_duplicates_bad_ids_and_arity);
  RUN(cycle_is_reported_with_a_node_on_it);
  RUN(nodes_out_of_order_are_sorted);
  RUN(shapes_of_a_small_cnn_match_hand_computation);
  RUN(shape_mismatch_names_the_node);
  RUN(dead_nodes_and_their_weights_are_dropped);
  RUN(cut_keeps_what_the_chosen_value_needs);
  RUN(optimize_folds_and_fuses_with_the_same_results);
  RUN(zero_pad_folds_into_the_next_conv_but_not_other_pads);
  RUN(arena_reuses_dead_buffers);
  RUN(reference_run_matches_plain_loops_at_batch_1_and_3);
  RUN(transpose_moves_elements_by_the_index_formula);
  return test_summary();
}
