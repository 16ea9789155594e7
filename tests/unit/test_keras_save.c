/* test_keras_save.c - the Keras HDF5 writer, checked through the loader:
 * saved graphs reload (nn_keras_load_file) and compute what the original
 * computes, weights-only files load back bit for bit, and bad requests fail
 * cleanly without leaving files behind. */
#include "keras.h"
#include "test.h"
#include "zoo.h"

#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[128];

#define OK(e, call)                                                            \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != DLP_OK) {                                                       \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,     \
              (e)->msg);                                                       \
      test_failed_checks_++;                                                   \
    }                                                                          \
  } while (0)

static bool sanitized(void) {
  const char *s = getenv("DLP_SANITIZED");
  return s && strcmp(s, "1") == 0;
}

static bool has(const dlp_err *e, const char *s) {
  return strstr(e->msg, s) != NULL;
}

static void path_of(char *p, size_t n, const char *name) {
  snprintf(p, n, "%s/%s", dir, name);
}

/* Files in the test folder whose name contains s. */
static int files_with(const char *s) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *de; d && (de = readdir(d));)
    n += strstr(de->d_name, s) != NULL;
  if (d) closedir(d);
  return n;
}

/* Uniform values in [-0.5, 0.5) in every const; variances in [0.5, 1.5)
 * so batch norms stay finite. */
static void fill_random(nn_graph *g, uint64_t seed) {
  dlp_rng r;
  dlp_rng_seed(&r, seed);
  for (int v = 0; v < g->n_values; v++) {
    nn_value *x = &g->values[v];
    if (x->kind != NN_VALUE_CONST) continue;
    bool var = strstr(x->name, "variance") != NULL;
    int64_t n = nn_shape_numel(x->shape.ndim, x->shape.dims);
    for (int64_t i = 0; i < n; i++)
      x->data[i] = (float)(dlp_rng_uniform(&r) - 0.5 + (var ? 1.0 : 0.0));
  }
}

/* Output 0 of g on a seeded random batch (ref backend); malloc'd. */
static float *run(const nn_graph *g, int64_t batch, int64_t *n) {
  dlp_err e = {0};
  nn_shape is = nn_graph_value_shape(g, g->inputs[0], batch);
  nn_shape os = nn_graph_value_shape(g, g->outputs[0], batch);
  int64_t ni = nn_shape_numel(is.ndim, is.dims);
  *n = nn_shape_numel(os.ndim, os.dims);
  float *in = malloc((size_t)ni * sizeof *in);
  float *out = calloc((size_t)*n, sizeof *out);
  dlp_rng r;
  dlp_rng_seed(&r, 99);
  for (int64_t i = 0; i < ni; i++)
    in[i] = (float)(2 * dlp_rng_uniform(&r) - 1);
  nn_plan *p = NULL;
  OK(&e, nn_plan_new(&e, g, NN_BACKEND_REF, batch, 1, &p));
  if (p)
    OK(&e,
       nn_plan_run(&e, p, (const float *const[]){in}, (float *const[]){out}));
  nn_plan_free(p);
  free(in);
  return out;
}

/* Saves g, reloads it and compares outputs on a batch of 2; returns the
 * reloaded graph for further checks. */
static nn_graph *round_trip(const nn_graph *g, const char *name) {
  dlp_err e = {0};
  char p[256];
  path_of(p, sizeof p, name);
  OK(&e, nn_keras_save_file(&e, g, p, NULL));
  nn_graph *r = NULL;
  OK(&e, nn_keras_load_file(&e, p, 0, &r));
  if (!r) return NULL;
  int64_t na, nb;
  float *a = run(g, 2, &na), *b = run(r, 2, &nb);
  CHECK_EQ_INT(na, nb);
  double md = 0, mag = 0;
  for (int64_t i = 0; i < na && na == nb; i++) {
    md = fmax(md, fabs((double)a[i] - b[i]));
    mag = fmax(mag, fabs((double)a[i]));
  }
  CHECK(md <= 1e-5);
  CHECK(mag > 1e-3); /* a real signal, not all zeros */
  free(a);
  free(b);
  return r;
}

TEST(mobilenet_v2_round_trip) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  int size = sanitized() ? 32 : 64;
  OK(&e,
     nn_zoo_build_sized(&e, nn_zoo_find("mobilenet_v2"), true, size, size, &g));
  if (!g) return;
  OK(&e, nn_zoo_init_random(&e, g, 3));
  /* zoo_init_random leaves BN beta/mean at 0: vary them, so their
   * layouts matter. */
  fill_random(g, 5);
  nn_graph *r = round_trip(g, "mbv2.h5");
  if (r) {
    CHECK_EQ_INT(r->input_spec.height, size);
    CHECK_STR(r->name, "MobileNetV2");
    /* The Keras layers keep the zoo's names. */
    CHECK(nn_graph_find_node(r, "block_16_project_BN") >= 0);
    CHECK(nn_graph_find_value(r, "block_3_depthwise/depthwise_kernel") >= 0);
    CHECK(nn_graph_find_value(r, "predictions/kernel") >= 0);
  }
  nn_graph_free(r);
  nn_graph_free(g);
}

TEST(weights_only_loads_back_bit_for_bit) {
  dlp_err e = {0};
  const nn_zoo_entry *z = nn_zoo_find("mobilenet_v2");
  nn_graph *g = NULL, *f = NULL;
  OK(&e, nn_zoo_build_sized(&e, z, true, 32, 32, &g));
  OK(&e, nn_zoo_build_sized(&e, z, true, 32, 32, &f));
  if (!g || !f) goto done;
  fill_random(g, 11);
  char p[256];
  path_of(p, sizeof p, "mbv2_weights.h5");
  nn_keras_save_opts o;
  nn_keras_save_opts_init(&o);
  o.weights_only = true;
  OK(&e, nn_keras_save_file(&e, g, p, &o));
  /* It is a weights file, not a model. */
  nn_graph *m = NULL;
  CHECK_EQ_INT(nn_keras_load_file(&e, p, 0, &m), DLP_ERR_FORMAT);
  OK(&e, nn_keras_load_weights(&e, p, 0, f));
  int n_consts = 0, same = 0;
  for (int v = 0; v < g->n_values; v++) {
    const nn_value *a = &g->values[v];
    if (a->kind != NN_VALUE_CONST) continue;
    n_consts++;
    int b = nn_graph_find_value(f, a->name);
    int64_t n = nn_shape_numel(a->shape.ndim, a->shape.dims);
    same += b >= 0 && memcmp(a->data, f->values[b].data, (size_t)n * 4) == 0;
  }
  CHECK(n_consts > 200);
  CHECK_EQ_INT(same, n_consts);
  char **names = NULL;
  int nn = 0;
  OK(&e, nn_keras_file_layer_names(&e, p, 0, &names, &nn));
  CHECK(nn > 100 && strcmp(names[1], "Conv1") == 0);
  nn_keras_names_free(names, nn);
done:
  nn_graph_free(g);
  nn_graph_free(f);
}

/* A zero const (fill_random fills it once the graph is built). */
static int zconst(nn_graph *g, const char *name, int ndim,
                  const int64_t *dims) {
  int64_t n = nn_shape_numel(ndim, dims);
  return nn_graph_add_const_owned(g, name, ndim, dims,
                                  calloc(n > 0 ? (size_t)n : 1, 4));
}

static int conv(nn_graph *g, int x, const char *name, int64_t o, int64_t i,
                int k, int stride, const int pads[4], int groups, bool bias,
                nn_act act) {
  char n[128];
  snprintf(n, sizeof n, "%s/%s", name,
           groups > 1 && i == 1 ? "depthwise_kernel" : "kernel");
  int w = zconst(g, n, 4, (int64_t[]){o, i, k, k});
  int b = -1;
  if (bias) {
    snprintf(n, sizeof n, "%s/bias", name);
    b = zconst(g, n, 1, &o);
  }
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  a.conv.stride[0] = a.conv.stride[1] = stride;
  memcpy(a.conv.pads, pads, sizeof a.conv.pads);
  a.conv.groups = groups;
  a.conv.act = act;
  a.conv.alpha = 0.2f;
  return nn_graph_add_node(g, NN_OP_CONV2D, name, (int[]){x, w, b},
                           bias ? 3 : 2, &a);
}

static int bn(nn_graph *g, int x, const char *name, int64_t c) {
  static const char *r[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
  int in[5] = {x};
  for (int i = 0; i < 4; i++) {
    char n[128];
    snprintf(n, sizeof n, "%s/%s", name, r[i]);
    in[1 + i] = zconst(g, n, 1, &c);
  }
  nn_node_attr a;
  nn_node_attr_init(NN_OP_BATCHNORM, &a);
  a.eps = 1e-5f;
  return nn_graph_add_node(g, NN_OP_BATCHNORM, name, in, 5, &a);
}

static int unary(nn_graph *g, nn_op op, int x, const char *name,
                 const nn_node_attr *a) {
  return nn_graph_add_node(g, op, name, &x, 1, a);
}

static int act(nn_graph *g, int x, const char *name, nn_act k) {
  nn_node_attr a;
  nn_node_attr_init(NN_OP_ACT, &a);
  a.act = k;
  a.alpha = 0.1f;
  return unary(g, NN_OP_ACT, x, name, &a);
}

/* A ResNet-style block and head over odd sizes, using what Keras can say
 * only with care: asymmetric explicit pads (ZeroPadding2D), TF 'same',
 * pooling with padding that counts, groups, depth multipliers, fused and
 * separate activations, clip, concat over channels, dropout, NHWC flatten
 * and a transposed dense weight. */
static nn_graph *block_graph(void) {
  nn_graph *g = NULL;
  dlp_err e = {0};
  OK(&e, nn_graph_new(&e, &g));
  if (!g) return NULL;
  const int none[4] = {0}, p1[4] = {1, 1, 1, 1}, odd[4] = {1, 0, 2, 1};
  int same[4];
  nn_pad_same_tf(9, 3, 1, 1, &same[0], &same[2]);
  nn_pad_same_tf(7, 3, 1, 1, &same[1], &same[3]);
  int x = nn_graph_add_input(g, "image", 4, (int64_t[]){-1, 3, 17, 15});
  x = conv(g, x, "stem", 8, 3, 3, 2, odd, 1, true, NN_ACT_NONE); /* 9x7 */
  x = bn(g, x, "stem_bn", 8);
  x = act(g, x, "stem_relu", NN_ACT_RELU);
  int y = conv(g, x, "b1_conv", 8, 4, 3, 1, same, 2, false, NN_ACT_NONE);
  y = bn(g, y, "b1_bn", 8);
  nn_node_attr c;
  nn_node_attr_init(NN_OP_CLIP, &c);
  c.clip_lo = 0.0f;
  c.clip_hi = 6.0f;
  y = unary(g, NN_OP_CLIP, y, "b1_clip", &c);
  y = conv(g, y, "b1_dw", 16, 1, 3, 1, same, 8, true, NN_ACT_NONE);
  y = conv(g, y, "b1_pw", 8, 16, 1, 1, none, 1, true, NN_ACT_LEAKY_RELU);
  x = nn_graph_add_node(g, NN_OP_ADD, "b1_add", (int[]){x, y}, 2, NULL);
  nn_node_attr pa;
  nn_node_attr_init(NN_OP_AVGPOOL, &pa);
  pa.pool.kernel[0] = pa.pool.kernel[1] = 3;
  pa.pool.stride[0] = pa.pool.stride[1] = 2;
  memcpy(pa.pool.pads, p1, sizeof pa.pool.pads);
  pa.pool.count_include_pad = true;
  int u = unary(g, NN_OP_AVGPOOL, x, "avg", &pa); /* 5x4 */
  nn_node_attr ma = pa;
  ma.pool.kernel[0] = ma.pool.kernel[1] = 2;
  nn_pad_same_tf(9, 2, 2, 1, &ma.pool.pads[0], &ma.pool.pads[2]);
  nn_pad_same_tf(7, 2, 2, 1, &ma.pool.pads[1], &ma.pool.pads[3]);
  int v = unary(g, NN_OP_MAXPOOL, x, "max", &ma); /* 5x4 */
  v = act(g, v, "max_sig", NN_ACT_SIGMOID);
  nn_node_attr ca;
  nn_node_attr_init(NN_OP_CONCAT, &ca);
  ca.axis = 1;
  x = nn_graph_add_node(g, NN_OP_CONCAT, "cat", (int[]){u, v}, 2, &ca);
  x = act(g, x, "cat_leaky", NN_ACT_LEAKY_RELU);
  /* Head 1: NHWC flatten, dense with a (out, in) weight, fused relu. */
  nn_node_attr ta;
  nn_node_attr_init(NN_OP_TRANSPOSE, &ta);
  ta.n_perm = 4;
  memcpy(ta.perm, (int[]){0, 2, 3, 1}, sizeof(int) * 4);
  int h = unary(g, NN_OP_TRANSPOSE, x, "flat/nhwc", &ta);
  h = unary(g, NN_OP_FLATTEN, h, "flat", NULL);
  int64_t fd = 16 * 5 * 4, units = 10;
  int w = zconst(g, "fc/kernel", 2, (int64_t[]){units, fd});
  int b = zconst(g, "fc/bias", 1, &units);
  nn_node_attr da;
  nn_node_attr_init(NN_OP_DENSE, &da);
  da.dense.transb = true;
  da.dense.act = NN_ACT_TANH;
  h = nn_graph_add_node(g, NN_OP_DENSE, "fc", (int[]){h, w, b}, 3, &da);
  h = unary(g, NN_OP_IDENTITY, h, "dropout", NULL);
  /* Head 2: global pooling kept 4-D, then flatten (1x1: orders agree). */
  nn_node_attr ga;
  nn_node_attr_init(NN_OP_GLOBAL_AVGPOOL, &ga);
  int q = unary(g, NN_OP_GLOBAL_AVGPOOL, x, "gap", &ga);
  q = unary(g, NN_OP_FLATTEN, q, "gap_flat", NULL);
  q = bn(g, q, "gap_bn", 16);
  int w2 = zconst(g, "q/kernel", 2, (int64_t[]){16, units});
  nn_node_attr_init(NN_OP_DENSE, &da);
  q = nn_graph_add_node(g, NN_OP_DENSE, "q/logits", (int[]){q, w2}, 2, &da);
  int s = nn_graph_add_node(g, NN_OP_ADD, "head/sum", (int[]){h, q}, 2, NULL);
  nn_node_attr sa;
  nn_node_attr_init(NN_OP_SOFTMAX, &sa);
  s = unary(g, NN_OP_SOFTMAX, s, "probs", &sa);
  nn_graph_mark_output(g, s);
  OK(&e, nn_graph_finalize(&e, g));
  fill_random(g, 21);
  return g;
}

TEST(resnet_style_block_round_trip) {
  nn_graph *g = block_graph();
  if (!g) return;
  nn_graph *r = round_trip(g, "block.h5");
  if (r) {
    /* Keras names: '/' is not allowed in them. */
    CHECK(nn_graph_find_node(r, "head_sum") >= 0);
    CHECK(nn_graph_find_node(r, "q") >= 0); /* named by its weights */
    CHECK(nn_graph_find_value(r, "b1_conv/kernel") >= 0);
  }
  nn_graph_free(r);
  /* The same graph with batch norms folded and activations fused. */
  dlp_err e = {0};
  OK(&e, nn_graph_optimize(&e, g));
  r = round_trip(g, "block_folded.h5");
  nn_graph_free(r);
  nn_graph_free(g);
}

/* Weights-only files of a hand-built graph: transposed dense weights,
 * grouped and multiplier-2 depthwise kernels go back where they were. */
TEST(block_weights_only_round_trip) {
  nn_graph *g = block_graph(), *f = block_graph();
  if (!g || !f) goto done;
  for (int v = 0; v < f->n_values; v++)
    if (f->values[v].kind == NN_VALUE_CONST)
      memset(f->values[v].data, 0,
             (size_t)nn_shape_numel(f->values[v].shape.ndim,
                                    f->values[v].shape.dims) *
                 4);
  dlp_err e = {0};
  char p[256];
  path_of(p, sizeof p, "block_weights.h5");
  nn_keras_save_opts o;
  nn_keras_save_opts_init(&o);
  o.weights_only = true;
  OK(&e, nn_keras_save_file(&e, g, p, &o));
  OK(&e, nn_keras_load_weights(&e, p, 0, f));
  int n = 0, same = 0;
  for (int v = 0; v < g->n_values; v++) {
    const nn_value *a = &g->values[v];
    if (a->kind != NN_VALUE_CONST) continue;
    n++;
    int b = nn_graph_find_value(f, a->name);
    int64_t k = nn_shape_numel(a->shape.ndim, a->shape.dims);
    same += b >= 0 && memcmp(a->data, f->values[b].data, (size_t)k * 4) == 0;
  }
  CHECK(n >= 20);
  CHECK_EQ_INT(same, n);
done:
  nn_graph_free(g);
  nn_graph_free(f);
}

TEST(refuses_to_overwrite_unless_asked) {
  nn_graph *g = block_graph();
  if (!g) return;
  dlp_err e = {0};
  char p[256];
  path_of(p, sizeof p, "exists.h5");
  FILE *f = fopen(p, "w");
  if (f) {
    fputs("keep me", f);
    fclose(f);
  }
  CHECK_EQ_INT(nn_keras_save_file(&e, g, p, NULL), DLP_ERR_IO);
  CHECK(has(&e, "exists.h5") && has(&e, "already exists"));
  struct stat st;
  CHECK(stat(p, &st) == 0 && st.st_size == 7);
  nn_keras_save_opts o;
  nn_keras_save_opts_init(&o);
  o.overwrite = true;
  o.model_name = "fine_tuned";
  OK(&e, nn_keras_save_file(&e, g, p, &o));
  nn_graph *r = NULL;
  OK(&e, nn_keras_load_file(&e, p, 0, &r));
  CHECK(r && r->name && strcmp(r->name, "fine_tuned") == 0);
  nn_graph_free(r);
  CHECK_EQ_INT(files_with(".tmp"), 0);
  nn_graph_free(g);
}

TEST(refuses_ops_without_keras_layers) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  OK(&e, nn_graph_new(&e, &g));
  if (!g) return;
  int x = nn_graph_add_input(g, "in", 4, (int64_t[]){-1, 2, 4, 4});
  nn_node_attr a;
  nn_node_attr_init(NN_OP_RESHAPE, &a);
  a.n_shape = 2;
  a.shape[0] = 0;
  a.shape[1] = -1;
  x = nn_graph_add_node(g, NN_OP_RESHAPE, "odd_reshape", &x, 1, &a);
  nn_graph_mark_output(g, x);
  OK(&e, nn_graph_finalize(&e, g));
  char p[256];
  path_of(p, sizeof p, "unsupported.h5");
  CHECK_EQ_INT(nn_keras_save_file(&e, g, p, NULL), DLP_ERR_UNSUPPORTED);
  CHECK(has(&e, "odd_reshape") && has(&e, "Keras"));
  CHECK(access(p, F_OK) != 0);
  nn_graph_free(g);
  /* Flattening NCHW data in the graph's order has no Keras layer either,
   * nor has a max pool with padding that is not TF 'same'. */
  OK(&e, nn_graph_new(&e, &g));
  if (!g) return;
  x = nn_graph_add_input(g, "in", 4, (int64_t[]){-1, 2, 4, 4});
  int y = nn_graph_add_node(g, NN_OP_FLATTEN, "nchw_flat", &x, 1, NULL);
  nn_graph_mark_output(g, y);
  nn_node_attr_init(NN_OP_MAXPOOL, &a);
  a.pool.kernel[0] = a.pool.kernel[1] = 2;
  a.pool.pads[0] = 1;
  y = nn_graph_add_node(g, NN_OP_MAXPOOL, "padded_max", &x, 1, &a);
  nn_graph_mark_output(g, y);
  OK(&e, nn_graph_finalize(&e, g));
  CHECK_EQ_INT(nn_keras_save_file(&e, g, p, NULL), DLP_ERR_UNSUPPORTED);
  CHECK(has(&e, "nchw_flat") || has(&e, "padded_max"));
  CHECK(access(p, F_OK) != 0);
  CHECK_EQ_INT(files_with(".tmp"), 0);
  nn_graph_free(g);
}

TEST(reports_unwritable_places) {
  nn_graph *g = block_graph();
  if (!g) return;
  dlp_err e = {0};
  CHECK_EQ_INT(nn_keras_save_file(&e, g, "/nonexistent-dlp-dir/m.h5", NULL),
               DLP_ERR_IO);
  CHECK(has(&e, "/nonexistent-dlp-dir/m.h5"));
  char p[256];
  path_of(p, sizeof p, "ro");
  mkdir(p, 0500);
  strcat(p, "/m.h5");
  int rc = nn_keras_save_file(&e, g, p, NULL);
  if (geteuid() != 0) { /* root writes anywhere */
    CHECK_EQ_INT(rc, DLP_ERR_IO);
    CHECK(has(&e, "ro/m.h5"));
  }
  CHECK_EQ_INT(nn_keras_save_file(&e, NULL, p, NULL), DLP_ERR_ARG);
  nn_graph *raw = NULL;
  OK(&e, nn_graph_new(&e, &raw));
  CHECK_EQ_INT(nn_keras_save_file(&e, raw, p, NULL), DLP_ERR_ARG);
  CHECK(has(&e, "finalized"));
  nn_graph_free(raw);
  nn_graph_free(g);
}

/* Class names, preprocessing and input size travel in root attributes: the
 * meta reader returns what the saver was given, the loader takes the
 * preprocessing, and names that are not one per output are refused before
 * anything is written. */
TEST(class_names_and_preprocessing_round_trip) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  OK(&e,
     nn_zoo_build_sized(&e, nn_zoo_find("MobileNetV2_0.35"), true, 32, 40, &g));
  if (!g) return;
  enum { K = 1000 };
  char *names[K + 1];
  char buf[K + 1][24];
  for (int i = 0; i <= K; i++) {
    snprintf(buf[i], sizeof buf[i], i == 7 ? "caf\xc3\xa9 \"%d\"" : "c%d", i);
    names[i] = buf[i];
  }
  char p[256], q[256];
  path_of(p, sizeof p, "named.h5");
  path_of(q, sizeof q, "plain.h5");
  nn_keras_save_opts o;
  nn_keras_save_opts_init(&o);
  nn_keras_save_opts_labels(&o, names, K, DLP_NORM_CAFFE);
  OK(&e, nn_keras_save_file(&e, g, p, &o));
  nn_keras_meta m;
  OK(&e, nn_keras_file_meta(&e, p, 0, &m));
  CHECK_EQ_INT(m.n_class_names, K);
  for (int i = 0; i < m.n_class_names && i < K; i++)
    CHECK_STR(m.class_names[i], names[i]);
  CHECK(m.has_norm);
  CHECK_EQ_INT(m.norm, DLP_NORM_CAFFE);
  CHECK_EQ_INT(m.height, 32);
  CHECK_EQ_INT(m.width, 40);
  nn_keras_meta_clear(&m);
  CHECK(m.class_names == NULL && m.n_class_names == 0);
  nn_graph *r = NULL;
  OK(&e, nn_keras_load_file(&e, p, 0, &r));
  if (r) CHECK_EQ_INT(r->input_spec.norm, DLP_NORM_CAFFE);
  nn_graph_free(r);
  /* Without names: the zoo graph's own preprocessing (tf), no names. */
  OK(&e, nn_keras_save_file(&e, g, q, NULL));
  OK(&e, nn_keras_file_meta(&e, q, 0, &m));
  CHECK(m.class_names == NULL && m.has_norm && m.norm == DLP_NORM_TF);
  nn_keras_meta_clear(&m);
  /* One name short, or one too many: refused, nothing written. */
  path_of(p, sizeof p, "short.h5");
  nn_keras_save_opts_labels(&o, names, K - 1, DLP_NORM_TF);
  CHECK_EQ_INT(nn_keras_save_file(&e, g, p, &o), DLP_ERR_ARG);
  CHECK(has(&e, "999 class names for a model with 1000 outputs"));
  nn_keras_save_opts_labels(&o, names, K + 1, DLP_NORM_TF);
  CHECK_EQ_INT(nn_keras_save_file(&e, g, p, &o), DLP_ERR_ARG);
  CHECK_EQ_INT(files_with("short.h5"), 0);
  CHECK_EQ_INT(nn_keras_file_meta(&e, "/nonexistent-dlp/x.h5", 0, &m),
               DLP_ERR_NOT_FOUND);
  CHECK(m.class_names == NULL);
  nn_graph_free(g);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/dlp_test_keras_save_XXXXXX");
  if (!mkdtemp(dir)) return 1;
  RUN(mobilenet_v2_round_trip);
  RUN(weights_only_loads_back_bit_for_bit);
  RUN(resnet_style_block_round_trip);
  RUN(block_weights_only_round_trip);
  RUN(refuses_to_overwrite_unless_asked);
  RUN(refuses_ops_without_keras_layers);
  RUN(reports_unwritable_places);
  RUN(class_names_and_preprocessing_round_trip);
  char cmd[300];
  if (getenv("KEEP")) return test_summary();
  snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", dir, dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary();
}
