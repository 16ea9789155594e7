/* test_zoo.c - the model zoo against the figures Keras documents: parameter
 * counts (keras.io/api/applications), layer names and shapes, layers with
 * weights in the weight files; and random-weight runs that stay finite. */
#include "test.h"
#include "zoo.h"

#include <stdint.h>
#include <string.h>

typedef struct expect {
  const char *name;
  int64_t params;     /* keras.io/api/applications, with the top */
  int layers_weights; /* Keras layers with weights (the weight file's) */
  int small;          /* smallest input Keras accepts */
  int64_t feature_dim;
} expect;

/* MobileNetV2's other widths: the totals tf.keras' model.summary() prints
 * for MobileNetV2(alpha=...) (0.35: 1,691,208; 0.5: 1,987,224; 1.4:
 * 6,156,712, as Keras users report them); tests/ref/test_zoo_vs_torch.py
 * derives every width's count from the Keras rules and checks them all. */
static const expect EXPECT[] = {
    {"Xception", 22910480, 81, 71, 2048},
    {"VGG16", 138357544, 16, 32, 4096},
    {"VGG19", 143667240, 19, 32, 4096},
    {"ResNet50", 25636712, 107, 32, 2048},
    {"InceptionV3", 23851784, 189, 75, 2048},
    {"MobileNetV2", 3538984, 105, 32, 1280},
    {"MobileNetV2_0.35", 1691208, 105, 32, 1280},
    {"MobileNetV2_0.5", 1987224, 105, 32, 1280},
    {"MobileNetV2_1.4", 6156712, 105, 32, 1792},
};

static nn_graph *build(const char *model, bool top, int h, int w) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  int rc = nn_zoo_build_sized(&e, nn_zoo_find(model), top, h, w, &g);
  if (rc != DLP_OK) fprintf(stderr, "build %s: %s\n", model, e.msg);
  return g;
}

/* Shape (without the batch) of the value named `name`, as "CxHxW". */
static const char *shape_of(nn_graph *g, const char *name, char *buf) {
  int v = nn_graph_find_value(g, name);
  if (v < 0) return "(missing)";
  nn_shape s = nn_graph_value_shape(g, v, 1);
  return nn_shape_str(s.ndim - 1, s.dims + 1, buf, 64);
}

TEST(zoo_find_is_case_and_underscore_insensitive) {
  CHECK_EQ_INT(nn_zoo_count(), 11);
  CHECK(nn_zoo_find("InceptionV3") == nn_zoo_find("inception_v3"));
  CHECK(nn_zoo_find("inceptionv3") != NULL);
  CHECK(nn_zoo_find("MOBILENET_V2") == nn_zoo_find("MobileNetV2"));
  CHECK(nn_zoo_find("resnet50") != NULL);
  CHECK(nn_zoo_find("resnet") == NULL);
  CHECK(nn_zoo_find(NULL) == NULL);
  CHECK(nn_zoo_at(11) == NULL);
  /* The widths: each name resolves to its own entry, in every spelling. */
  static const char *const widths[][2] = {
      {"mobilenet_v2_0.35", "MobileNetV2_0.35"},
      {"mobilenet_v2_0.5", "MobileNetV2_0.5"},
      {"MOBILENETV2-0.75", "MobileNetV2_0.75"},
      {"mobilenetv2_1.3", "MobileNetV2_1.3"},
      {"MobileNetV2_1.4", "MobileNetV2_1.4"},
      {"mobilenet_v2_1.0", "MobileNetV2"},
      {"mobilenet_v2", "MobileNetV2"}};
  for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
    const nn_zoo_entry *w = nn_zoo_find(widths[i][0]);
    CHECK(w != NULL);
    if (w) CHECK_STR(w->name, widths[i][1]);
  }
  CHECK(nn_zoo_find("mobilenet_v2_0.50") == NULL); /* not a Keras name */
  CHECK(nn_zoo_find("mobilenet_v2_0.3") == NULL);
  /* Keras' weight file names: str(alpha) and the rows, 224. */
  const nn_zoo_entry *h = nn_zoo_find("MobileNetV2_0.5");
  CHECK_STR(h->weights_file,
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224.h5");
  CHECK_STR(
      h->weights_file_notop,
      "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5");
  CHECK_STR(h->url,
            "https://storage.googleapis.com/tensorflow/"
            "keras-applications/mobilenet_v2/"
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224.h5");
  CHECK_STR(
      nn_zoo_find("MobileNetV2_1.3")->weights_file_notop,
      "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.3_224_no_top.h5");
  CHECK(h->md5 == NULL);
  CHECK_EQ_INT(h->norm, DLP_NORM_TF);
  CHECK_EQ_INT(h->height, 224);
  for (size_t i = 0; i < nn_zoo_count(); i++)
    CHECK(nn_zoo_find(nn_zoo_at(i)->name) == nn_zoo_at(i));
  const nn_zoo_entry *z = nn_zoo_find("InceptionV3");
  CHECK_EQ_INT(z->height, 299);
  CHECK_EQ_INT(z->norm, DLP_NORM_TF);
  CHECK_STR(z->md5, "9a0d58056eeedaa3f26cb7ebd46da564");
  CHECK_EQ_INT(nn_zoo_find("ResNet50")->norm, DLP_NORM_CAFFE);
  CHECK_EQ_INT(nn_zoo_find("VGG19")->norm, DLP_NORM_CAFFE);
  CHECK_EQ_INT(nn_zoo_find("Xception")->norm, DLP_NORM_TF);
  CHECK_EQ_INT(nn_zoo_find("MobileNetV2")->height, 224);
}

TEST(zoo_parameter_counts_match_keras) {
  for (size_t m = 0; m < sizeof EXPECT / sizeof EXPECT[0]; m++) {
    const nn_zoo_entry *z = nn_zoo_find(EXPECT[m].name);
    nn_graph *g = build(EXPECT[m].name, true, 0, 0);
    CHECK(g != NULL);
    if (!g) continue;
    int64_t params = 0;
    int layers = 0;
    char last[256] = "";
    for (int i = 0; i < g->n_values; i++) {
      const nn_value *v = &g->values[i];
      if (v->kind != NN_VALUE_CONST || !nn_zoo_is_keras_weight(z, v->name))
        continue;
      params += nn_shape_numel(v->shape.ndim, v->shape.dims);
      const char *slash = strrchr(v->name, '/');
      CHECK(slash != NULL);
      if (!slash) continue;
      size_t n = (size_t)(slash - v->name);
      if (strlen(last) != n || strncmp(last, v->name, n) != 0) {
        layers++; /* consts of one layer are added together */
        snprintf(last, sizeof last, "%.*s", (int)n, v->name);
      }
    }
    if (params != EXPECT[m].params || layers != EXPECT[m].layers_weights)
      fprintf(stderr, "%s: %lld params, %d layers with weights\n",
              EXPECT[m].name, (long long)params, layers);
    CHECK_EQ_INT(params, EXPECT[m].params);
    CHECK_EQ_INT(layers, EXPECT[m].layers_weights);
    char buf[64];
    CHECK_STR(shape_of(g, "predictions", buf), "1000");
    CHECK_EQ_INT(g->n_outputs, 1);
    CHECK(g->n_outputs == 1 &&
          g->outputs[0] == nn_graph_find_value(g, "predictions"));
    CHECK_STR(g->name, z->name);
    CHECK_EQ_INT(g->input_spec.height, z->height);
    CHECK_EQ_INT(g->input_spec.width, z->width);
    CHECK_EQ_INT(g->input_spec.channels, 3);
    CHECK_EQ_INT(g->input_spec.norm, z->norm);
    nn_graph_free(g);
  }
}

TEST(zoo_feature_graphs_end_at_the_feature_layer) {
  for (size_t m = 0; m < sizeof EXPECT / sizeof EXPECT[0]; m++) {
    const nn_zoo_entry *z = nn_zoo_find(EXPECT[m].name);
    CHECK_EQ_INT(z->feature_dim, EXPECT[m].feature_dim);
    nn_graph *g = build(EXPECT[m].name, false, 0, 0);
    CHECK(g != NULL);
    if (!g) continue;
    CHECK(g->n_outputs == 1 &&
          g->outputs[0] == nn_graph_find_value(g, z->feature_layer));
    nn_shape s = nn_graph_value_shape(g, g->outputs[0], 4);
    CHECK_EQ_INT(s.ndim, 2);
    CHECK_EQ_INT(s.dims[0], 4);
    CHECK_EQ_INT(s.dims[1], z->feature_dim);
    CHECK(nn_graph_find_value(g, "predictions") < 0);
    nn_graph_free(g);
  }
}

TEST(zoo_keras_layer_names_and_shapes) {
  /* Shapes from the Keras model summaries (NHWC there, CxHxW here). */
  static const char *const cases[][3] = {
      {"InceptionV3", "mixed10", "2048x8x8"},
      {"InceptionV3", "mixed7", "768x17x17"},
      {"InceptionV3", "mixed2", "288x35x35"},
      {"InceptionV3", "conv2d", "32x149x149"},
      {"InceptionV3", "conv2d_93", "192x8x8"},
      {"InceptionV3", "batch_normalization_93", "192x8x8"},
      {"InceptionV3", "activation_93", "192x8x8"},
      {"InceptionV3", "max_pooling2d_3", "768x8x8"},
      {"InceptionV3", "average_pooling2d_7", "1280x8x8"},
      {"InceptionV3", "average_pooling2d_8", "2048x8x8"},
      {"InceptionV3", "mixed9_1", "768x8x8"},
      {"InceptionV3", "concatenate_1", "768x8x8"},
      {"InceptionV3", "avg_pool", "2048"},
      {"Xception", "block14_sepconv2_act", "2048x10x10"},
      {"Xception", "block1_conv1", "32x149x149"},
      {"Xception", "block2_pool", "128x74x74"},
      {"Xception", "conv2d_3", "1024x10x10"},
      {"Xception", "batch_normalization_3", "1024x10x10"},
      {"Xception", "add_11", "1024x10x10"},
      {"Xception", "block13_sepconv2/depthwise", "728x19x19"},
      {"ResNet50", "conv5_block3_out", "2048x7x7"},
      {"ResNet50", "conv1_pad", "3x230x230"},
      {"ResNet50", "pool1_pool", "64x56x56"},
      {"ResNet50", "conv4_block6_out", "1024x14x14"},
      {"ResNet50", "conv3_block1_0_conv", "512x28x28"},
      {"VGG16", "block5_pool", "512x7x7"},
      {"VGG16", "block3_conv3", "256x56x56"},
      {"VGG16", "flatten", "25088"},
      {"VGG16", "fc2", "4096"},
      {"VGG19", "block5_conv4", "512x14x14"},
      {"VGG19", "fc1", "4096"},
      {"MobileNetV2", "out_relu", "1280x7x7"},
      {"MobileNetV2", "Conv1_relu", "32x112x112"},
      {"MobileNetV2", "expanded_conv_project_BN", "16x112x112"},
      {"MobileNetV2", "block_1_pad", "96x113x113"},
      {"MobileNetV2", "block_2_add", "24x56x56"},
      {"MobileNetV2", "block_16_project_BN", "320x7x7"},
      {"MobileNetV2", "global_average_pooling2d", "1280"},
      /* Keras' rules by hand: Conv1 _make_divisible(32a, 8), blocks
       * _make_divisible(int(f * a), 8), Conv_1 widened above 1. */
      {"MobileNetV2_0.35", "Conv1_relu", "16x112x112"},
      {"MobileNetV2_0.35", "expanded_conv_project_BN", "8x112x112"},
      {"MobileNetV2_0.35", "block_1_expand", "48x112x112"},
      {"MobileNetV2_0.35", "block_16_project_BN", "112x7x7"},
      {"MobileNetV2_0.35", "out_relu", "1280x7x7"},
      {"MobileNetV2_1.4", "Conv1_relu", "48x112x112"},
      {"MobileNetV2_1.4", "block_2_add", "32x56x56"},
      {"MobileNetV2_1.4", "block_16_project_BN", "448x7x7"},
      {"MobileNetV2_1.4", "out_relu", "1792x7x7"},
  };
  nn_graph *g = NULL;
  const char *cur = "";
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (strcmp(cur, cases[i][0]) != 0) {
      nn_graph_free(g);
      cur = cases[i][0];
      g = build(cur, true, 0, 0);
      CHECK(g != NULL);
    }
    if (!g) continue;
    char buf[64];
    const char *got = shape_of(g, cases[i][1], buf);
    if (strcmp(got, cases[i][2]) != 0)
      fprintf(stderr, "%s %s: %s, expected %s\n", cur, cases[i][1], got,
              cases[i][2]);
    CHECK_STR(got, cases[i][2]);
    CHECK(nn_graph_find_node(g, cases[i][1]) >= 0);
  }
  nn_graph_free(g);
  /* Weights named as in the Keras files. */
  g = build("Xception", true, 0, 0);
  if (g) {
    CHECK(nn_graph_find_value(g, "block2_sepconv1/depthwise_kernel") >= 0);
    CHECK(nn_graph_find_value(g, "block2_sepconv1/pointwise_kernel") >= 0);
    CHECK(nn_graph_find_value(g, "block2_sepconv1/bias") < 0);
    CHECK(nn_graph_find_value(g, "batch_normalization/moving_variance") >= 0);
    CHECK(nn_graph_find_value(g, "predictions/kernel") >= 0);
  }
  nn_graph_free(g);
  g = build("MobileNetV2", true, 0, 0);
  if (g) {
    CHECK(nn_graph_find_value(g, "expanded_conv_depthwise/depthwise_kernel") >= 0);
    CHECK(nn_graph_find_value(g, "block_1_expand/kernel") >= 0);
    CHECK(nn_graph_find_value(g, "expanded_conv_expand/kernel") < 0);
    CHECK(nn_graph_find_value(g, "block_16_add") < 0); /* 160 -> 320 */
  }
  nn_graph_free(g);
}

TEST(zoo_refuses_inputs_below_the_keras_minimum) {
  dlp_err e = {0};
  nn_graph *g = (nn_graph *)1;
  CHECK_EQ_INT(nn_zoo_build_sized(&e, nn_zoo_find("InceptionV3"), true, 74, 299, &g),
               DLP_ERR_ARG);
  CHECK(g == NULL);
  CHECK(strstr(e.msg, "InceptionV3") != NULL);
  CHECK_EQ_INT(nn_zoo_build_sized(&e, nn_zoo_find("Xception"), false, 70, 70, &g),
               DLP_ERR_ARG);
  CHECK_EQ_INT(nn_zoo_build_sized(&e, nn_zoo_find("VGG16"), false, 32, 5000, &g),
               DLP_ERR_ARG);
  CHECK_EQ_INT(nn_zoo_build(&e, NULL, true, &g), DLP_ERR_ARG);
  nn_zoo_entry fake = {0};
  fake.name = "AlexNet";
  CHECK_EQ_INT(nn_zoo_build(&e, &fake, true, &g), DLP_ERR_ARG);
}

/* Runs g (batch 1) on a fixed pseudo-random image; out gets the output. */
static int run(nn_graph *g, float *out) {
  dlp_err e = {0};
  nn_shape is = nn_graph_value_shape(g, g->inputs[0], 1);
  int64_t n = nn_shape_numel(is.ndim, is.dims);
  float *in = malloc((size_t)n * sizeof(float));
  dlp_rng r;
  dlp_rng_seed(&r, 7);
  for (int64_t i = 0; i < n; i++) in[i] = (float)(2 * dlp_rng_uniform(&r) - 1);
  nn_plan *p = NULL;
  int rc = nn_plan_new(&e, g, NN_BACKEND_REF, 1, 2, &p);
  const float *ins[1] = {in};
  float *outs[1] = {out};
  if (rc == DLP_OK) rc = nn_plan_run(&e, p, ins, outs);
  if (rc != DLP_OK) fprintf(stderr, "run %s: %s\n", g->name, e.msg);
  nn_plan_free(p);
  free(in);
  return rc;
}

/* Feature graphs of every model at its smallest input (the whole network
 * runs on the reference backend, also under ASan); the with-top graph and
 * seeding once, on the smallest network. */
TEST(zoo_random_weights_give_finite_varied_outputs) {
  for (size_t m = 0; m < sizeof EXPECT / sizeof EXPECT[0]; m++) {
    const nn_zoo_entry *z = nn_zoo_find(EXPECT[m].name);
    int s = EXPECT[m].small;
    bool full = strcmp(z->name, "MobileNetV2") == 0;
    const char *san = getenv("DLP_SANITIZED");
    if (san && strcmp(san, "1") == 0 && strchr(z->name, '_'))
      continue; /* the widths share MobileNetV2's code; ASan is slow */
    for (int top = 0; top <= (full ? 1 : 0); top++) {
      nn_graph *g = build(z->name, top, s, s);
      CHECK(g != NULL);
      if (!g) continue;
      dlp_err e = {0};
      CHECK_EQ_INT(nn_zoo_init_random(&e, g, 1234), DLP_OK);
      int64_t n = top ? 1000 : z->feature_dim;
      float *a = calloc((size_t)n, sizeof(float));
      float *b = calloc((size_t)n, sizeof(float));
      double t0 = dlp_now();
      CHECK_EQ_INT(run(g, a), DLP_OK);
      if (getenv("ZOO_TIMES"))
        fprintf(stderr, "%s top=%d: %.2f s\n", z->name, top, dlp_now() - t0);
      int finite = 1, distinct = 0;
      double sum = 0;
      for (int64_t i = 0; i < n; i++) {
        finite &= isfinite(a[i]) != 0;
        distinct += a[i] != a[0];
        sum += a[i];
      }
      if (!finite || distinct < n / 4)
        fprintf(stderr, "%s top=%d: finite %d, %d distinct\n", z->name, top,
                finite, distinct);
      CHECK(finite);
      CHECK(distinct >= n / 4); /* relu features: about half are 0 */
      if (top) CHECK_NEAR(sum, 1.0, 1e-4);
      if (full && !top) { /* same seed, same numbers; another, others */
        CHECK_EQ_INT(nn_zoo_init_random(&e, g, 1234), DLP_OK);
        CHECK_EQ_INT(run(g, b), DLP_OK);
        CHECK(memcmp(a, b, (size_t)n * sizeof(float)) == 0);
        CHECK_EQ_INT(nn_zoo_init_random(&e, g, 99), DLP_OK);
        CHECK_EQ_INT(run(g, b), DLP_OK);
        CHECK(memcmp(a, b, (size_t)n * sizeof(float)) != 0);
      }
      free(a);
      free(b);
      nn_graph_free(g);
    }
  }
}

/* An argument runs only the tests whose name contains it. */
#define RUN_IF(t) \
  do { \
    if (argc < 2 || strstr(#t, argv[1])) RUN(t); \
  } while (0)

int main(int argc, char **argv) {
  RUN_IF(zoo_find_is_case_and_underscore_insensitive);
  RUN_IF(zoo_parameter_counts_match_keras);
  RUN_IF(zoo_feature_graphs_end_at_the_feature_layer);
  RUN_IF(zoo_keras_layer_names_and_shapes);
  RUN_IF(zoo_refuses_inputs_below_the_keras_minimum);
  RUN_IF(zoo_random_weights_give_finite_varied_outputs);
  return test_summary();
}
