/* zoo.h - the built-in model zoo: the Keras applications InceptionV3,
 * Xception, ResNet50, VGG16, VGG19 and MobileNetV2 (alpha 1.0, and
 * "MobileNetV2_0.35", "_0.5", "_0.75", "_1.3", "_1.4" for Keras' other
 * widths) built as nn_graphs with the Keras layer names, so the official
 * weight files load by name.
 *
 *     const nn_zoo_entry *z = nn_zoo_find("inception_v3");   // or "InceptionV3"
 *     nn_graph *g = NULL;
 *     if (nn_zoo_build(&e, z, true, &g) != DLP_OK) ...      // zero weights
 *     nn_keras_load_weights(&e, z->weights_file, 0, g);      // or:
 *     nn_zoo_init_random(&e, g, 42);                         // benchmarks
 *
 * Graph conventions (shared with the Keras and ONNX importers): input
 * "input" (-1, 3, H, W); node names = Keras layer names; consts named
 * "<layer>/kernel" (OIHW), "<layer>/bias", "<layer>/depthwise_kernel"
 * ((C*M, 1, KH, KW)), "<layer>/pointwise_kernel", "<layer>/gamma", "/beta",
 * "/moving_mean", "/moving_variance"; dense kernels (in, out).
 *
 * Where a Keras layer becomes more than one node:
 *  - SeparableConv2D "L": depthwise node "L/depthwise", pointwise node "L".
 *  - Dense "predictions" with softmax: dense node "predictions/logits", then
 *    the softmax node "predictions" (the Keras layer's output).
 *  - Flatten "flatten": transpose to NHWC "flatten/nhwc", then "flatten", so
 *    the (in, out) fc1 kernel of the Keras file applies unchanged.
 * Activations given to Conv2D/Dense layers (VGG's relu) are fused into that
 * node. Auto-generated Keras names ("conv2d", "conv2d_1", ...,
 * "batch_normalization", "activation_3", "add_2") follow tf.keras 2.x (the
 * first is unsuffixed) in the creation order of the Keras sources.
 *
 * include_top = false: the output is the pooled feature vector (N, C), the
 * Keras pooling='avg' model, with the global pooling node named as in the
 * with-top model ("avg_pool"; MobileNetV2's "global_average_pooling2d"), so
 * entry->feature_layer names it in both graphs. VGG has no pooled notion in
 * sparkdl: its features are "fc2" (4096), so for VGG16/VGG19 the "notop"
 * graph is the with-top graph cut at "fc2" (it keeps fc1/fc2; it is not the
 * Keras include_top=False model, whose weights file lacks them).
 */
#ifndef DLP_NN_ZOO_H
#define DLP_NN_ZOO_H

#include "graph.h"

typedef struct nn_zoo_entry {
  const char *name;  /* Keras application name, e.g. "InceptionV3" */
  int height, width; /* default input size */
  dlp_norm norm;     /* DLP_NORM_TF or DLP_NORM_CAFFE */
  const char *weights_file;       /* keras-applications file names */
  const char *weights_file_notop;
  const char *url;                /* canonical Keras download addresses */
  const char *url_notop;
  /* The file_hash Keras' get_file() checks: 32 hex digits, which get_file's
   * hash_algorithm='auto' treats as MD5 (64 would be SHA-256). NULL where
   * Keras publishes none (MobileNetV2). */
  const char *md5;
  const char *md5_notop;
  const char *feature_layer; /* sparkdl's featurizer layer */
  int64_t feature_dim;
  int n_classes;             /* 1000 */
} nn_zoo_entry;

/* The entry whose name matches, ignoring case and '_'/'-' ("InceptionV3",
 * "inception_v3", "resnet50", "mobilenet_v2"); NULL if none. */
const nn_zoo_entry *nn_zoo_find(const char *name);
size_t nn_zoo_count(void);
/* Entry i < nn_zoo_count(), else NULL. */
const nn_zoo_entry *nn_zoo_at(size_t i);

/* Builds z's architecture at its default input size into a new finalized
 * graph (*out; free with nn_graph_free) with zero-filled weights (consts of
 * the full Keras shapes; zero pages cost no memory until written). Sets
 * g->name and g->input_spec. Errors: DLP_ERR_ARG (NULL z), DLP_ERR_NOMEM,
 * and whatever nn_graph_finalize reports. */
int nn_zoo_build(dlp_err *e, const nn_zoo_entry *z, bool include_top,
                 nn_graph **out);
/* Same at input size height x width (0, 0 = the default). Smaller than the
 * Keras minimum (InceptionV3 75, Xception 71, others 32) or above 4096 is
 * DLP_ERR_ARG. VGG's fc1 kernel then has the size's flatten width. */
int nn_zoo_build_sized(dlp_err *e, const nn_zoo_entry *z, bool include_top,
                       int height, int width, nn_graph **out);

/* Fills g's consts by their names with seeded random values: kernels
 * He-normal (std sqrt(2 / fan_in)), biases and BN beta/mean 0, BN
 * gamma/variance 1, so activations stay finite and varied through the whole
 * network. Same seed, same weights. */
int nn_zoo_init_random(dlp_err *e, nn_graph *g, uint64_t seed);

/* Whether the const named `name` of a graph built for z is a weight the
 * Keras model (and its weights file) has. False for the synthetic consts the
 * graph adds: gamma of BatchNormalization(scale=False) (InceptionV3). */
bool nn_zoo_is_keras_weight(const nn_zoo_entry *z, const char *name);

/* ------------------------------------------------------------------------
 * Builder helpers, for the zoo_*.c files only.
 * ------------------------------------------------------------------------ */

/* A tensor while building: value id and its NCHW shape without the batch
 * (h = w = 0 once pooled to (N, C)). v < 0 after a failure. */
typedef struct nn_zt {
  int v;
  int64_t c, h, w;
} nn_zt;

/* Per-class counters of tf.keras auto names, in creation order. */
enum {
  NN_ZB_CONV2D, NN_ZB_BN, NN_ZB_ACT, NN_ZB_MAXPOOL, NN_ZB_AVGPOOL,
  NN_ZB_CONCAT, NN_ZB_ADD, NN_ZB_NAMES
};

typedef struct nn_zb {
  nn_graph *g;
  int status;   /* first failure, DLP_OK while none */
  dlp_err err;
  int counter[NN_ZB_NAMES];
  char auto_name[64];
  bool graph_failed_once; /* the graph's build error is reported */
} nn_zb;

typedef enum nn_zb_pad { NN_ZB_VALID = 0, NN_ZB_SAME } nn_zb_pad;

nn_zt nn_zb_input(nn_zb *b, int height, int width);
/* Conv2D: kernel (filters, c, kh, kw), bias when use_bias; act fused. name
 * NULL = the next auto name "conv2d[_N]". */
nn_zt nn_zb_conv(nn_zb *b, nn_zt x, const char *name, int filters, int kh,
                 int kw, int stride, nn_zb_pad pad, bool use_bias, nn_act act);
/* DepthwiseConv2D, depth multiplier 1, no bias. */
nn_zt nn_zb_dwconv(nn_zb *b, nn_zt x, const char *name, int k, int stride,
                   nn_zb_pad pad);
/* SeparableConv2D ('same', stride 1, depth multiplier 1, no bias). */
nn_zt nn_zb_sepconv(nn_zb *b, nn_zt x, const char *name, int filters, int k);
/* BatchNormalization over channels; NULL name = auto. scale=false still
 * adds a gamma const of ones (see nn_zoo_is_keras_weight). */
nn_zt nn_zb_bn(nn_zb *b, nn_zt x, const char *name, float eps, bool scale);
/* Activation / ReLU layer; NULL name = auto "activation[_N]". */
nn_zt nn_zb_act(nn_zb *b, nn_zt x, const char *name, nn_act act);
/* MaxPooling2D / AveragePooling2D (count excludes padding, as TF). */
nn_zt nn_zb_pool(nn_zb *b, nn_zt x, const char *name, bool is_max, int k,
                 int stride, nn_zb_pad pad);
nn_zt nn_zb_zeropad(nn_zb *b, nn_zt x, const char *name, int top, int bottom,
                    int left, int right);
nn_zt nn_zb_add(nn_zb *b, nn_zt x, nn_zt y, const char *name);
nn_zt nn_zb_concat(nn_zb *b, const nn_zt *xs, int n, const char *name);
/* GlobalAveragePooling2D: (N, C). */
nn_zt nn_zb_gap(nn_zb *b, nn_zt x, const char *name);
/* Keras Flatten of NHWC data (transpose then flatten). */
nn_zt nn_zb_flatten(nn_zb *b, nn_zt x, const char *name);
/* Dense on (N, C): kernel (c, units) and bias; relu fused or none. */
nn_zt nn_zb_dense(nn_zb *b, nn_zt x, const char *name, int units, nn_act act);
/* Dense(units, activation='softmax') as "<name>/logits" then "<name>". */
nn_zt nn_zb_predictions(nn_zb *b, nn_zt x, const char *name, int units);

/* The architectures (zoo_*.c): the output tensor, include_top or not. */
nn_zt nn_zoo_inception_v3(nn_zb *b, nn_zt x, bool include_top);
nn_zt nn_zoo_xception(nn_zb *b, nn_zt x, bool include_top);
nn_zt nn_zoo_resnet50(nn_zb *b, nn_zt x, bool include_top);
nn_zt nn_zoo_vgg(nn_zb *b, nn_zt x, int depth, bool include_top);
/* MobileNetV2 at width multiplier alpha (Keras': 0.35, 0.5, 0.75, 1.0, 1.3,
 * 1.4 have weight files; any alpha > 0 builds). */
nn_zt nn_zoo_mobilenet_v2(nn_zb *b, nn_zt x, double alpha, bool include_top);
/* Keras' _make_divisible(v, divisor): v rounded to the nearest multiple of
 * divisor, at least divisor, never more than 10% below v. */
int nn_zoo_make_divisible(double v, int divisor);
/* MobileNetV2's Conv_1 filters (its feature width) at alpha. */
int nn_zoo_mobilenet_v2_last_filters(double alpha);

#endif /* DLP_NN_ZOO_H */
