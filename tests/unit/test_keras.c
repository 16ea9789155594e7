/* test_keras.c - unit tests of the Keras HDF5 importer on small files written
 * here with libhdf5 in the Keras 2.x layouts: layout conversions checked
 * element by element against the Keras kernel, a tiny Dense model checked
 * against a hand computation, and the error paths (each must fail with the
 * right code and a message naming the culprit, never crash or leak). */
#include "keras.h"
#include "test.h"

#include <hdf5.h>
#include <unistd.h>

static char dir[256];

static const char *tpath(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

/* ---- writing Keras-layout files with libhdf5 ---- */

static void attr_str(hid_t loc, const char *name, const char *s) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(s) + 1);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, s);
  H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
}

/* A variable-length string attribute, as h5py writes a Python str. */
static void attr_vstr(hid_t loc, const char *name, const char *s) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, &s);
  H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
}

/* An array of fixed-length byte strings (np.array([b"..", ..])); n == 0
 * writes an empty float64 array as np.asarray([]) does. */
static void attr_strs(hid_t loc, const char *name, int n, const char **s) {
  hsize_t dn = (hsize_t)n;
  hid_t sp = H5Screate_simple(1, &dn, NULL);
  if (n == 0) {
    hid_t a =
        H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Aclose(a);
    H5Sclose(sp);
    return;
  }
  size_t w = 1;
  for (int i = 0; i < n; i++)
    if (strlen(s[i]) > w) w = strlen(s[i]);
  char *buf = calloc((size_t)n, w);
  for (int i = 0; i < n; i++)
    memcpy(buf + (size_t)i * w, s[i], strlen(s[i]));
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, w);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, buf);
  H5Aclose(a);
  H5Tclose(t);
  H5Sclose(sp);
  free(buf);
}

static void dset(hid_t loc, const char *path, int nd, const hsize_t *dims,
                 const float *data) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t sp = H5Screate_simple(nd, dims, NULL);
  hid_t d =
      H5Dcreate2(loc, path, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(d);
  H5Sclose(sp);
  H5Pclose(lcpl);
}

typedef struct wdef {
  const char *layer;
  const char *role;
  int nd;
  hsize_t dims[4];
  const float *data; /* NULL: filled with 0.01 * index */
} wdef;

/* Writes layer groups with weight_names and datasets under loc. */
static void write_layers(hid_t loc, int nl, const char **layers, int nw,
                         const wdef *w) {
  attr_strs(loc, "layer_names", nl, layers);
  for (int i = 0; i < nl; i++) {
    hid_t g = H5Gcreate2(loc, layers[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[8];
    char bufs[8][128];
    int n = 0;
    for (int j = 0; j < nw; j++) {
      if (strcmp(w[j].layer, layers[i]) != 0) continue;
      snprintf(bufs[n], sizeof bufs[n], "%s/%s:0", layers[i], w[j].role);
      names[n] = bufs[n];
      hsize_t numel = 1;
      for (int k = 0; k < w[j].nd; k++)
        numel *= w[j].dims[k];
      float *tmpd = malloc(numel * sizeof(float) + 1);
      for (hsize_t k = 0; k < numel; k++)
        tmpd[k] = w[j].data ? w[j].data[k] : 0.01f * (float)k;
      dset(g, bufs[n], w[j].nd, w[j].dims, tmpd);
      free(tmpd);
      n++;
    }
    attr_strs(g, "weight_names", n, names);
    H5Gclose(g);
  }
}

static void write_model(const char *path, const char *config, bool vlen, int nl,
                        const char **layers, int nw, const wdef *w) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  attr_str(f, "keras_version", "2.4.0");
  if (vlen)
    attr_vstr(f, "model_config", config);
  else
    attr_str(f, "model_config", config);
  hid_t g =
      H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  write_layers(g, nl, layers, nw, w);
  H5Gclose(g);
  H5Fclose(f);
}

static void write_weights(const char *path, int nl, const char **layers, int nw,
                          const wdef *w) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  write_layers(f, nl, layers, nw, w);
  H5Fclose(f);
}

/* A Sequential config: an InputLayer of the given shape, then `layers`
 * (comma-separated JSON objects). */
static char *seq_config(const char *shape, const char *layers) {
  static char buf[8192];
  snprintf(buf, sizeof buf,
           "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
           "\"layers\": [{\"class_name\": \"InputLayer\", \"config\": "
           "{\"batch_input_shape\": %s, \"dtype\": \"float32\", \"name\": "
           "\"in\"}}%s%s]}}",
           shape, layers[0] ? ", " : "", layers);
  return buf;
}

static int load(const char *path, nn_graph **g, dlp_err *e) {
  memset(e, 0, sizeof *e);
  *g = NULL;
  return nn_keras_load_file(e, path, 0, g);
}

/* Loads p expecting success; NULL (a failed check) otherwise. */
static nn_graph *load_ok(const char *p) {
  nn_graph *g;
  dlp_err e;
  int rc = load(p, &g, &e);
  CHECK_EQ_INT(rc, DLP_OK);
  if (rc != DLP_OK) fprintf(stderr, "  %s\n", e.msg);
  return g;
}

static bool has(const dlp_err *e, const char *word) {
  bool ok = strstr(e->msg, word) != NULL;
  if (!ok) fprintf(stderr, "  message lacks \"%s\": %s\n", word, e->msg);
  return ok;
}

#define CONV(name, extra)                                                      \
  "{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"" name "\", "         \
  "\"filters\": 3, \"kernel_size\": [2, 2], \"strides\": [1, 1], "             \
  "\"padding\": \"valid\", \"data_format\": \"channels_last\", "               \
  "\"activation\": \"linear\", \"use_bias\": true" extra "}}"

/* ---- tests ---- */

TEST(conv_kernel_becomes_oihw) {
  float k[2 * 2 * 2 * 3];
  for (int h = 0; h < 2; h++)
    for (int w = 0; w < 2; w++)
      for (int i = 0; i < 2; i++)
        for (int o = 0; o < 3; o++)
          k[((h * 2 + w) * 2 + i) * 3 + o] =
              (float)(h * 1000 + w * 100 + i * 10 + o);
  const char *layers[] = {"c"};
  wdef w[] = {{"c", "kernel", 4, {2, 2, 2, 3}, k}, {"c", "bias", 1, {3}, NULL}};
  const char *p = tpath("conv.h5");
  write_model(p, seq_config("[null, 5, 4, 2]", CONV("c", "")), false, 1, layers,
              2, w);
  nn_graph *g = load_ok(p);
  if (!g) return;
  int v = nn_graph_find_value(g, "c/kernel");
  CHECK(v >= 0);
  if (v >= 0) {
    const nn_value *kv = &g->values[v];
    CHECK_EQ_INT(kv->shape.ndim, 4);
    CHECK_EQ_INT(kv->shape.dims[0], 3);
    CHECK_EQ_INT(kv->shape.dims[1], 2);
    CHECK_EQ_INT(kv->shape.dims[2], 2);
    CHECK_EQ_INT(kv->shape.dims[3], 2);
    int bad = 0;
    for (int o = 0; o < 3; o++)
      for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++)
          for (int ww = 0; ww < 2; ww++)
            if (kv->data[((o * 2 + i) * 2 + h) * 2 + ww] !=
                (float)(h * 1000 + ww * 100 + i * 10 + o))
              bad++;
    CHECK_EQ_INT(bad, 0);
  }
  /* graph input is NCHW, output (N, 3, 4, 3) */
  CHECK_EQ_INT(g->n_inputs, 1);
  nn_shape s = nn_graph_value_shape(g, g->outputs[0], 1);
  CHECK_EQ_INT(s.ndim, 4);
  CHECK_EQ_INT(s.dims[1], 3);
  CHECK_EQ_INT(s.dims[2], 4);
  CHECK_EQ_INT(s.dims[3], 3);
  CHECK_EQ_INT(g->input_spec.height, 5);
  CHECK_EQ_INT(g->input_spec.width, 4);
  CHECK_EQ_INT(g->input_spec.channels, 2);
  nn_graph_free(g);
}

TEST(depthwise_kernel_becomes_grouped_conv) {
  float k[2 * 2 * 3 * 2];
  for (int h = 0; h < 2; h++)
    for (int w = 0; w < 2; w++)
      for (int c = 0; c < 3; c++)
        for (int m = 0; m < 2; m++)
          k[((h * 2 + w) * 3 + c) * 2 + m] =
              (float)(h * 1000 + w * 100 + c * 10 + m);
  const char *layers[] = {"d"};
  wdef w[] = {{"d", "depthwise_kernel", 4, {2, 2, 3, 2}, k}};
  const char *p = tpath("dw.h5");
  write_model(p,
              seq_config("[null, 4, 4, 3]",
                         "{\"class_name\": \"DepthwiseConv2D\", \"config\": "
                         "{\"name\": \"d\", \"kernel_size\": [2, 2], "
                         "\"depth_multiplier\": 2, \"padding\": \"same\", "
                         "\"use_bias\": false, \"activation\": \"relu6\"}}"),
              true, 1, layers, 1, w);
  nn_graph *g = load_ok(p);
  if (!g) return;
  int v = nn_graph_find_value(g, "d/depthwise_kernel");
  CHECK(v >= 0);
  if (v >= 0) {
    const nn_value *kv = &g->values[v];
    CHECK_EQ_INT(kv->shape.dims[0], 6);
    CHECK_EQ_INT(kv->shape.dims[1], 1);
    int bad = 0;
    for (int c = 0; c < 3; c++)
      for (int m = 0; m < 2; m++)
        for (int h = 0; h < 2; h++)
          for (int ww = 0; ww < 2; ww++)
            if (kv->data[((c * 2 + m) * 2 + h) * 2 + ww] !=
                (float)(h * 1000 + ww * 100 + c * 10 + m))
              bad++;
    CHECK_EQ_INT(bad, 0);
  }
  int n = nn_graph_find_node(g, "d/conv");
  CHECK(n >= 0);
  if (n >= 0) {
    CHECK_EQ_INT(g->nodes[n].attr.conv.groups, 3);
    /* 'same' on 4 with k 2: total 1, all at the end */
    CHECK_EQ_INT(g->nodes[n].attr.conv.pads[0], 0);
    CHECK_EQ_INT(g->nodes[n].attr.conv.pads[2], 1);
  }
  nn_graph_free(g);
}

TEST(dense_model_runs) {
  /* y = relu(x W + b), x (2, 3), W (3, 2): computed by hand here. */
  const float W[6] = {1, -2, 0.5f, 3, -1, 1}, B[2] = {0.25f, -0.5f};
  const float X[6] = {1, 2, 3, -1, 0.5f, 2};
  const char *layers[] = {"fc", "drop"};
  wdef w[] = {{"fc", "kernel", 2, {3, 2}, W}, {"fc", "bias", 1, {2}, B}};
  const char *p = tpath("dense.h5");
  write_model(p,
              seq_config("[null, 3]",
                         "{\"class_name\": \"Dense\", \"config\": {\"name\": "
                         "\"fc\", \"units\": 2, \"activation\": \"relu\", "
                         "\"use_bias\": true}}, {\"class_name\": \"Dropout\", "
                         "\"config\": {\"name\": \"drop\", \"rate\": 0.5}}"),
              false, 2, layers, 2, w);
  nn_graph *g = load_ok(p);
  if (!g) return;
  nn_plan *pl = NULL;
  float y[4] = {0};
  dlp_err e = {0};
  CHECK_EQ_INT(nn_plan_new(&e, g, NN_BACKEND_REF, 2, 1, &pl), DLP_OK);
  if (pl) {
    const float *ins[1] = {X};
    float *outs[1] = {y};
    CHECK_EQ_INT(nn_plan_run(&e, pl, ins, outs), DLP_OK);
    for (int r = 0; r < 2; r++)
      for (int c = 0; c < 2; c++) {
        float acc = B[c];
        for (int k = 0; k < 3; k++)
          acc += X[r * 3 + k] * W[k * 2 + c];
        CHECK_NEAR(y[r * 2 + c], acc > 0 ? acc : 0, 1e-6);
      }
  }
  nn_plan_free(pl);
  nn_graph_free(g);
}

TEST(batchnorm_without_scale_gets_unit_gamma) {
  const char *layers[] = {"bn"};
  wdef w[] = {{"bn", "beta", 1, {2}, NULL},
              {"bn", "moving_mean", 1, {2}, NULL},
              {"bn", "moving_variance", 1, {2}, NULL}};
  const char *p = tpath("bn.h5");
  write_model(p,
              seq_config("[null, 3, 3, 2]",
                         "{\"class_name\": \"BatchNormalization\", "
                         "\"config\": {\"name\": \"bn\", \"axis\": [3], "
                         "\"epsilon\": 0.01, \"center\": true, \"scale\": "
                         "false}}"),
              false, 1, layers, 3, w);
  nn_graph *g = load_ok(p);
  if (!g) return;
  int v = nn_graph_find_value(g, "bn/gamma");
  CHECK(v >= 0);
  if (v >= 0)
    CHECK(g->values[v].data[0] == 1.0f && g->values[v].data[1] == 1.0f);
  int n = nn_graph_find_node(g, "bn");
  CHECK(n >= 0);
  if (n >= 0) CHECK_NEAR(g->nodes[n].attr.eps, 0.01, 1e-9);
  nn_graph_free(g);
}

/* Loads p expecting failure with code and every word in the message. */
static void expect_fail(const char *p, int code, const char *w1,
                        const char *w2) {
  nn_graph *g;
  dlp_err e;
  int rc = load(p, &g, &e);
  CHECK_EQ_INT(rc, code);
  CHECK(g == NULL);
  if (w1) CHECK(has(&e, w1));
  if (w2) CHECK(has(&e, w2));
  nn_graph_free(g);
}

TEST(refuses_code_and_unknown_layers) {
  const char *p = tpath("lambda.h5");
  write_model(p,
              seq_config("[null, 4, 4, 3]",
                         "{\"class_name\": \"Lambda\", \"config\": {\"name\": "
                         "\"lam\", \"function\": [\"abc\", null, null]}}"),
              false, 0, NULL, 0, NULL);
  expect_fail(p, DLP_ERR_UNSUPPORTED, "'lam' (Lambda)", "never runs code");
  write_model(p,
              seq_config("[null, 4, 4, 3]",
                         "{\"class_name\": \"Wobble\", \"config\": {\"name\": "
                         "\"wob\"}}"),
              false, 0, NULL, 0, NULL);
  expect_fail(p, DLP_ERR_UNSUPPORTED, "'wob'", "Wobble");
  write_model(p,
              seq_config("[null, 4, 4, 3]",
                         "{\"class_name\": \"MaxPooling2D\", \"config\": "
                         "{\"name\": \"mp\", \"data_format\": "
                         "\"channels_first\"}}"),
              false, 0, NULL, 0, NULL);
  expect_fail(p, DLP_ERR_UNSUPPORTED, "'mp'", "channels_first");
}

TEST(refuses_bad_weights) {
  const char *layers[] = {"c"};
  const char *p = tpath("badw.h5");
  const char *cfg = seq_config("[null, 5, 4, 2]", CONV("c", ""));
  char cfgcopy[8192];
  snprintf(cfgcopy, sizeof cfgcopy, "%s", cfg);
  /* wrong kernel shape */
  wdef w1[] = {{"c", "kernel", 4, {2, 2, 2, 4}, NULL},
               {"c", "bias", 1, {3}, NULL}};
  write_model(p, cfgcopy, false, 1, layers, 2, w1);
  expect_fail(p, DLP_ERR_SCHEMA, "2x2x2x4", "2x2x2x3");
  /* bias missing from weight_names */
  write_model(p, cfgcopy, false, 1, layers, 1, w1 + 0);
  expect_fail(p, DLP_ERR_SCHEMA, "'c'", "needs 2");
  /* no group for the layer */
  write_model(p, cfgcopy, false, 0, layers, 0, NULL);
  expect_fail(p, DLP_ERR_NOT_FOUND, "'c'", "missing");
  /* kernel and bias swapped in the list */
  wdef w2[] = {{"c", "bias", 1, {3}, NULL},
               {"c", "kernel", 4, {2, 2, 2, 3}, NULL}};
  write_model(p, cfgcopy, false, 1, layers, 2, w2);
  expect_fail(p, DLP_ERR_SCHEMA, "'c'", "kernel");
  /* a declared size far beyond memory: refused by the shape check */
  write_model(p,
              seq_config("[null, 5, 4, 2]",
                         "{\"class_name\": \"Conv2D\", \"config\": {\"name\": "
                         "\"c\", \"filters\": 16777216, \"kernel_size\": "
                         "65536}}"),
              false, 1, layers, 2, w1);
  expect_fail(p, DLP_ERR_SCHEMA, "'c'", "kernel");
}

TEST(refuses_bad_files) {
  nn_graph *g = NULL;
  dlp_err e = {0};
  CHECK_EQ_INT(nn_keras_load_file(&e, tpath("nope.h5"), 0, &g),
               DLP_ERR_NOT_FOUND);
  const char *p = tpath("junk.h5");
  FILE *f = fopen(p, "wb");
  fputs("definitely not HDF5, just some text that goes on for a while", f);
  fclose(f);
  expect_fail(p, DLP_ERR_FORMAT, "not an HDF5 file", NULL);
  /* max_bytes */
  const char *layers[] = {"c"};
  wdef w[] = {{"c", "kernel", 4, {2, 2, 2, 3}, NULL},
              {"c", "bias", 1, {3}, NULL}};
  const char *good = tpath("good.h5");
  write_model(good, seq_config("[null, 5, 4, 2]", CONV("c", "")), false, 1,
              layers, 2, w);
  memset(&e, 0, sizeof e);
  CHECK_EQ_INT(nn_keras_load_file(&e, good, 100, &g), DLP_ERR_TOO_LARGE);
  CHECK(g == NULL);
  /* truncated copies */
  FILE *in = fopen(good, "rb");
  fseek(in, 0, SEEK_END);
  long n = ftell(in);
  fseek(in, 0, SEEK_SET);
  char *buf = malloc((size_t)n);
  CHECK(fread(buf, 1, (size_t)n, in) == (size_t)n);
  fclose(in);
  for (int k = 1; k < 10; k++) {
    const char *tp = tpath("trunc.h5");
    FILE *o = fopen(tp, "wb");
    fwrite(buf, 1, (size_t)(n * k / 10), o);
    fclose(o);
    nn_graph *tg = NULL;
    memset(&e, 0, sizeof e);
    int rc = nn_keras_load_file(&e, tp, 0, &tg);
    CHECK(rc != DLP_OK && tg == NULL && strstr(e.msg, "trunc.h5"));
    nn_graph_free(tg);
  }
  free(buf);
  /* an HDF5 file without a config */
  const char *wo = tpath("wonly.h5");
  write_weights(wo, 1, layers, 2, w);
  expect_fail(wo, DLP_ERR_FORMAT, "model_config", "weights-only");
  /* bad JSON */
  write_model(p, "{\"class_name\": \"Sequential\", \"config\": ", false, 0,
              NULL, 0, NULL);
  expect_fail(p, DLP_ERR_CORRUPT, "JSON", NULL);
  /* wrong types in the config */
  write_model(p,
              seq_config("[null, 5, 4, 2]",
                         "{\"class_name\": \"Conv2D\", \"config\": {\"name\": "
                         "\"c\", \"filters\": \"many\", \"kernel_size\": 3}}"),
              false, 1, layers, 2, w);
  expect_fail(p, DLP_ERR_CORRUPT, "'c'", "filters");
  write_model(p,
              "{\"class_name\": \"Sequential\", \"config\": {\"layers\": "
              "[{\"class_name\": 5}]}}",
              false, 0, NULL, 0, NULL);
  expect_fail(p, DLP_ERR_CORRUPT, "layer 0", NULL);
}

TEST(functional_graph_errors) {
  const char *p = tpath("func.h5");
  const char *cyc =
      "{\"class_name\": \"Functional\", \"config\": {\"name\": \"m\", "
      "\"layers\": [{\"class_name\": \"InputLayer\", \"name\": \"in\", "
      "\"config\": {\"name\": \"in\", \"batch_input_shape\": [null, 4]}, "
      "\"inbound_nodes\": []}, {\"class_name\": \"Add\", \"name\": \"a\", "
      "\"config\": {\"name\": \"a\"}, \"inbound_nodes\": [[[\"in\", 0, 0, {}], "
      "[\"b\", 0, 0, {}]]]}, {\"class_name\": \"Add\", \"name\": \"b\", "
      "\"config\": {\"name\": \"b\"}, \"inbound_nodes\": [[[\"a\", 0, 0, {}], "
      "[\"in\", 0, 0, {}]]]}], \"input_layers\": [[\"in\", 0, 0]], "
      "\"output_layers\": [[\"b\", 0, 0]]}}";
  write_model(p, cyc, false, 0, NULL, 0, NULL);
  expect_fail(p, DLP_ERR_CORRUPT, "'b'", "cycle");
  const char *dangling =
      "{\"class_name\": \"Functional\", \"config\": {\"name\": \"m\", "
      "\"layers\": [{\"class_name\": \"InputLayer\", \"name\": \"in\", "
      "\"config\": {\"name\": \"in\", \"batch_input_shape\": [null, 4]}, "
      "\"inbound_nodes\": []}, {\"class_name\": \"Activation\", \"name\": "
      "\"a\", \"config\": {\"name\": \"a\", \"activation\": \"relu\"}, "
      "\"inbound_nodes\": [[[\"ghost\", 0, 0, {}]]]}], \"input_layers\": "
      "[[\"in\", 0, 0]], \"output_layers\": [[\"a\", 0, 0]]}}";
  write_model(p, dangling, false, 0, NULL, 0, NULL);
  expect_fail(p, DLP_ERR_CORRUPT, "ghost", NULL);
  const char *none_dims = "{\"class_name\": \"Functional\", \"config\": "
                          "{\"name\": \"m\", \"layers\": [{\"class_name\": "
                          "\"InputLayer\", \"name\": \"in\", \"config\": "
                          "{\"name\": \"in\", \"batch_input_shape\": [null, "
                          "null, null, 3]}, \"inbound_nodes\": []}, "
                          "{\"class_name\": \"ReLU\", \"name\": \"r\", "
                          "\"config\": {\"name\": \"r\", \"max_value\": 6.0}, "
                          "\"inbound_nodes\": [[[\"in\", 0, 0, {}]]]}], "
                          "\"input_layers\": [[\"in\", 0, 0]], "
                          "\"output_layers\": [[\"r\", 0, 0]]}}";
  write_model(p, none_dims, false, 0, NULL, 0, NULL);
  expect_fail(p, DLP_ERR_ARG, "'in'", "input size");
  nn_graph *g = NULL;
  dlp_err e = {0};
  CHECK_EQ_INT(nn_keras_load_file_sized(&e, p, 0, 7, 9, &g), DLP_OK);
  if (g) {
    nn_shape s = nn_graph_value_shape(g, g->outputs[0], 2);
    CHECK_EQ_INT(s.dims[0], 2);
    CHECK_EQ_INT(s.dims[1], 3);
    CHECK_EQ_INT(s.dims[2], 7);
    CHECK_EQ_INT(s.dims[3], 9);
  } else {
    fprintf(stderr, "  %s\n", e.msg);
  }
  nn_graph_free(g);
}

/* A zoo-style graph: conv "conv" (2 <- 3, 1x1) then dense "fc" (2 -> 4)
 * after global pooling, consts named "<layer>/<weight>" filled with 0. */
static nn_graph *zoo_like(void) {
  nn_graph *g = NULL;
  dlp_err e = {0};
  if (nn_graph_new(&e, &g) != DLP_OK) return NULL;
  float z[64] = {0};
  int x = nn_graph_add_input(g, "in", 4, (int64_t[]){-1, 3, 4, 4});
  int k = nn_graph_add_const(g, "conv/kernel", 4, (int64_t[]){2, 3, 1, 1}, z);
  int b = nn_graph_add_const(g, "conv/bias", 1, (int64_t[]){2}, z);
  int c = nn_graph_add_node(g, NN_OP_CONV2D, "conv", (int[]){x, k, b}, 3, NULL);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_GLOBAL_AVGPOOL, &a);
  a.keepdims = false;
  int p = nn_graph_add_node(g, NN_OP_GLOBAL_AVGPOOL, "gap", &c, 1, &a);
  int fk = nn_graph_add_const(g, "fc/kernel", 2, (int64_t[]){2, 4}, z);
  int fb = nn_graph_add_const(g, "fc/bias", 1, (int64_t[]){4}, z);
  int y = nn_graph_add_node(g, NN_OP_DENSE, "fc", (int[]){p, fk, fb}, 3, NULL);
  nn_graph_mark_output(g, y);
  return g;
}

TEST(weights_only_file) {
  float k[6] = {1, 2, 3, 4, 5, 6}; /* (1, 1, 3, 2) HWIO */
  const char *p = tpath("w.h5");
  const char *all[] = {"in", "conv", "gap", "fc"};
  wdef w[] = {{"conv", "kernel", 4, {1, 1, 3, 2}, k},
              {"conv", "bias", 1, {2}, NULL},
              {"fc", "kernel", 2, {2, 4}, NULL},
              {"fc", "bias", 1, {4}, NULL}};
  write_weights(p, 4, all, 4, w);
  nn_graph *g = zoo_like();
  CHECK(g != NULL);
  if (!g) return;
  dlp_err e = {0};
  CHECK_EQ_INT(nn_keras_load_weights(&e, p, 0, g), DLP_OK);
  int v = nn_graph_find_value(g, "conv/kernel");
  /* graph (O=2, I=3): [o][i] = k[i][o] = k[i*2 + o] */
  if (v >= 0)
    for (int o = 0; o < 2; o++)
      for (int i = 0; i < 3; i++)
        CHECK(g->values[v].data[o * 3 + i] == k[i * 2 + o]);
  v = nn_graph_find_value(g, "fc/bias");
  if (v >= 0) CHECK_NEAR(g->values[v].data[3], 0.03, 1e-7);
  char **names;
  int n;
  CHECK_EQ_INT(nn_keras_file_layer_names(&e, p, 0, &names, &n), DLP_OK);
  CHECK_EQ_INT(n, 4);
  if (n == 4) CHECK_STR(names[3], "fc");
  if (n > 0) nn_keras_names_free(names, n);

  /* notop: the file lacks fc */
  write_weights(p, 3, all, 2, w);
  memset(&e, 0, sizeof e);
  CHECK_EQ_INT(nn_keras_load_weights(&e, p, 0, g), DLP_ERR_NOT_FOUND);
  CHECK(has(&e, "'fc'") && has(&e, "notop"));
  /* an extra dense (top) layer is fine, an extra conv is not */
  const char *more[] = {"in", "conv", "gap", "fc", "predictions"};
  wdef w2[] = {w[0],
               w[1],
               w[2],
               w[3],
               {"predictions", "kernel", 2, {4, 10}, NULL},
               {"predictions", "bias", 1, {10}, NULL}};
  write_weights(p, 5, more, 6, w2);
  memset(&e, 0, sizeof e);
  CHECK_EQ_INT(nn_keras_load_weights(&e, p, 0, g), DLP_OK);
  wdef w3[] = {w[0],
               w[1],
               w[2],
               w[3],
               {"predictions", "kernel", 4, {3, 3, 4, 10}, NULL}};
  write_weights(p, 5, more, 5, w3);
  memset(&e, 0, sizeof e);
  CHECK_EQ_INT(nn_keras_load_weights(&e, p, 0, g), DLP_ERR_SCHEMA);
  CHECK(has(&e, "predictions"));
  /* wrong shape */
  wdef w4[] = {{"conv", "kernel", 4, {1, 1, 3, 5}, NULL}, w[1], w[2], w[3]};
  write_weights(p, 4, all, 4, w4);
  memset(&e, 0, sizeof e);
  CHECK_EQ_INT(nn_keras_load_weights(&e, p, 0, g), DLP_ERR_SCHEMA);
  CHECK(has(&e, "conv") && has(&e, "1x1x3x5") && has(&e, "1x1x3x2"));
  /* a full-model file works as a weights source too (model_weights) */
  nn_graph_free(g);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/dlp_test_keras_XXXXXX");
  if (!mkdtemp(dir)) return 1;
  RUN(conv_kernel_becomes_oihw);
  RUN(depthwise_kernel_becomes_grouped_conv);
  RUN(dense_model_runs);
  RUN(batchnorm_without_scale_gets_unit_gamma);
  RUN(refuses_code_and_unknown_layers);
  RUN(refuses_bad_weights);
  RUN(refuses_bad_files);
  RUN(functional_graph_errors);
  RUN(weights_only_file);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary();
}
