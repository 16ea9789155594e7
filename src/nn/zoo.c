/* zoo.c - the model zoo's registry, the builder helpers that turn Keras
 * layers into graph nodes with Keras names, build and random init. */
#include "zoo.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KERAS_BASE "https://storage.googleapis.com/tensorflow/keras-applications/"

typedef struct zoo_def {
  nn_zoo_entry e;
  int min_size;     /* Keras' obtain_input_shape min_size */
  bool bn_no_scale; /* BatchNormalization(scale=False) throughout */
  nn_zt (*build)(nn_zb *b, nn_zt x, bool include_top);
} zoo_def;

static nn_zt build_vgg16(nn_zb *b, nn_zt x, bool top) {
  return nn_zoo_vgg(b, x, 16, top);
}
static nn_zt build_vgg19(nn_zb *b, nn_zt x, bool top) {
  return nn_zoo_vgg(b, x, 19, top);
}
/* MobileNetV2 at the alphas Keras publishes weights for. */
#define MBV2_BUILDER(fn, alpha)                                                \
  static nn_zt fn(nn_zb *b, nn_zt x, bool top) {                               \
    return nn_zoo_mobilenet_v2(b, x, alpha, top);                              \
  }
MBV2_BUILDER(build_mbv2_035, 0.35)
MBV2_BUILDER(build_mbv2_050, 0.5)
MBV2_BUILDER(build_mbv2_075, 0.75)
MBV2_BUILDER(build_mbv2_100, 1.0)
MBV2_BUILDER(build_mbv2_130, 1.3)
MBV2_BUILDER(build_mbv2_140, 1.4)

// clang-format off
/* Keras names MobileNetV2's files 'mobilenet_v2_weights_tf_dim_ordering_
 * tf_kernels_' + str(alpha) + '_' + str(rows) [+ '_no_top'] + '.h5' and
 * publishes no hashes for them. feature_dim is
 * nn_zoo_mobilenet_v2_last_filters(alpha) (test_zoo checks). */
#define MBV2_FILE(a, suffix)                                                   \
  "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_" a "_224" suffix ".h5"
#define MBV2_ENTRY(name, a, dim, fn)                                           \
  {{name, 224, 224, DLP_NORM_TF, MBV2_FILE(a, ""), MBV2_FILE(a, "_no_top"),   \
    KERAS_BASE "mobilenet_v2/" MBV2_FILE(a, ""),                               \
    KERAS_BASE "mobilenet_v2/" MBV2_FILE(a, "_no_top"), NULL, NULL,           \
    "global_average_pooling2d", dim, 1000},                                    \
   32, false, fn}

/* Names, files, addresses and hashes as in the Keras 2.x application
 * sources (keras/applications/NAME.py). "MobileNetV2" is alpha 1.0; the
 * other widths are "MobileNetV2_<alpha>". */
static const zoo_def ZOO[] = {
    {{"InceptionV3", 299, 299, DLP_NORM_TF,
      "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
      "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
      KERAS_BASE "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
      KERAS_BASE "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
      "9a0d58056eeedaa3f26cb7ebd46da564", "bcbd6486424b2319ff4ef7d526e38f63",
      "avg_pool", 2048, 1000},
     75, true, nn_zoo_inception_v3},
    {{"Xception", 299, 299, DLP_NORM_TF,
      "xception_weights_tf_dim_ordering_tf_kernels.h5",
      "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
      KERAS_BASE "xception/xception_weights_tf_dim_ordering_tf_kernels.h5",
      KERAS_BASE "xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
      "0a58e3b7378bc2990ea3b43d5981f1f6", "b0042744bf5b25fce3cb969f33bebb97",
      "avg_pool", 2048, 1000},
     71, false, nn_zoo_xception},
    {{"ResNet50", 224, 224, DLP_NORM_CAFFE,
      "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
      "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
      KERAS_BASE "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
      KERAS_BASE "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
      "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626",
      "avg_pool", 2048, 1000},
     32, false, nn_zoo_resnet50},
    {{"VGG16", 224, 224, DLP_NORM_CAFFE,
      "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
      "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
      KERAS_BASE "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
      KERAS_BASE "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
      "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc",
      "fc2", 4096, 1000},
     32, false, build_vgg16},
    {{"VGG19", 224, 224, DLP_NORM_CAFFE,
      "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
      "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
      KERAS_BASE "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5",
      KERAS_BASE "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
      "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6",
      "fc2", 4096, 1000},
     32, false, build_vgg19},
    MBV2_ENTRY("MobileNetV2", "1.0", 1280, build_mbv2_100),
    MBV2_ENTRY("MobileNetV2_0.35", "0.35", 1280, build_mbv2_035),
    MBV2_ENTRY("MobileNetV2_0.5", "0.5", 1280, build_mbv2_050),
    MBV2_ENTRY("MobileNetV2_0.75", "0.75", 1280, build_mbv2_075),
    MBV2_ENTRY("MobileNetV2_1.3", "1.3", 1664, build_mbv2_130),
    MBV2_ENTRY("MobileNetV2_1.4", "1.4", 1792, build_mbv2_140),
};
// clang-format on
#define ZOO_N (sizeof(ZOO) / sizeof(ZOO[0]))

/* ------------------------------------------------------------------------
 * Registry
 * ------------------------------------------------------------------------ */

/* Lower case without '_' and '-', so "inception_v3" matches "InceptionV3". */
static void zoo_key(const char *s, char *out, size_t cap) {
  size_t n = 0;
  for (; *s && n + 1 < cap; s++)
    if (*s != '_' && *s != '-') out[n++] = (char)tolower((unsigned char)*s);
  out[n] = '\0';
}

const nn_zoo_entry *nn_zoo_find(const char *name) {
  if (!name || strlen(name) >= 64) return NULL;
  char want[64], have[64];
  zoo_key(name, want, sizeof want);
  /* Keras' default width, spelled out. */
  if (strcmp(want, "mobilenetv21.0") == 0) want[strlen("mobilenetv2")] = '\0';
  for (size_t i = 0; i < ZOO_N; i++) {
    zoo_key(ZOO[i].e.name, have, sizeof have);
    if (strcmp(want, have) == 0) return &ZOO[i].e;
  }
  return NULL;
}

size_t nn_zoo_count(void) { return ZOO_N; }

const nn_zoo_entry *nn_zoo_at(size_t i) { return i < ZOO_N ? &ZOO[i].e : NULL; }

/* The definition behind an entry (z may be a caller's copy: match by name). */
static const zoo_def *zoo_def_of(const nn_zoo_entry *z) {
  if (!z || !z->name) return NULL;
  for (size_t i = 0; i < ZOO_N; i++)
    if (&ZOO[i].e == z || strcmp(ZOO[i].e.name, z->name) == 0) return &ZOO[i];
  return NULL;
}

bool nn_zoo_is_keras_weight(const nn_zoo_entry *z, const char *name) {
  const zoo_def *d = zoo_def_of(z);
  if (!d || !name) return false;
  size_t n = strlen(name);
  if (d->bn_no_scale && n > 6 && strcmp(name + n - 6, "/gamma") == 0)
    return false;
  return true;
}

/* ------------------------------------------------------------------------
 * Builder helpers
 * ------------------------------------------------------------------------ */

static const nn_zt ZT_FAIL = {-1, 0, 0, 0};

static nn_zt zb_fail(nn_zb *b, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static nn_zt zb_fail(nn_zb *b, int code, const char *fmt, ...) {
  if (b->status == DLP_OK) {
    va_list ap;
    va_start(ap, fmt);
    dlp_err_vset(&b->err, code, fmt, ap);
    va_end(ap);
    b->status = code;
  }
  return ZT_FAIL;
}

/* Checks a builder result: a negative id means the graph refused it. */
static nn_zt zb_done(nn_zb *b, int v, int64_t c, int64_t h, int64_t w,
                     const char *name) {
  if (v < 0) {
    if (b->graph_failed_once) return ZT_FAIL;
    b->graph_failed_once = true;
    if (b->g->build_err.code != DLP_OK)
      return zb_fail(b, b->g->build_err.code, "zoo: layer %s: %s", name,
                     b->g->build_err.msg);
    return zb_fail(b, DLP_ERR_NOMEM, "zoo: layer %s: graph builder failed",
                   name);
  }
  return (nn_zt){v, c, h, w};
}

static const char *const AUTO_PREFIX[NN_ZB_NAMES] = {
    "conv2d", "batch_normalization", "activation", "max_pooling2d",
    "average_pooling2d", "concatenate", "add"};

/* name, or the next tf.keras auto name of that class ("conv2d", then
 * "conv2d_1", ...). Valid until the next call. */
static const char *zb_name(nn_zb *b, int kind, const char *name) {
  if (name) return name;
  int k = b->counter[kind]++;
  if (k == 0)
    snprintf(b->auto_name, sizeof b->auto_name, "%s", AUTO_PREFIX[kind]);
  else
    snprintf(b->auto_name, sizeof b->auto_name, "%s_%d", AUTO_PREFIX[kind], k);
  return b->auto_name;
}

/* A const "<layer>/<what>" of the given shape, every element `fill`. */
static int zb_const(nn_zb *b, const char *layer, const char *what, int nd,
                    const int64_t *dims, float fill) {
  char name[256];
  snprintf(name, sizeof name, "%s/%s", layer, what);
  int64_t n = nn_shape_numel(nd, dims);
  if (n < 0) {
    zb_fail(b, DLP_ERR_TOO_LARGE, "zoo: weight %s is too large", name);
    return -1;
  }
  float *data = dlp_calloc_array((size_t)(n ? n : 1), sizeof(float));
  if (!data) {
    zb_fail(b, DLP_ERR_NOMEM, "zoo: no memory for weight %s (%lld floats)",
            name, (long long)n);
    return -1;
  }
  if (fill != 0.0f)
    for (int64_t i = 0; i < n; i++) data[i] = fill;
  int v = nn_graph_add_const_owned(b->g, name, nd, dims, data);
  if (v < 0) zb_done(b, v, 0, 0, 0, name);
  return v;
}

/* Output size and pads of one spatial axis; false when the input is too
 * small for a valid window. */
static bool zb_axis(int64_t in, int k, int s, nn_zb_pad pad, int64_t *out,
                    int *p0, int *p1) {
  *p0 = *p1 = 0;
  if (pad == NN_ZB_SAME) {
    if (!nn_pad_same_tf(in, k, s, 1, p0, p1)) return false;
    *out = (in + s - 1) / s;
  } else {
    if (in < k) return false;
    *out = (in - k) / s + 1;
  }
  return *out >= 1;
}

static bool zb_spatial(nn_zb *b, nn_zt x, const char *name, int kh, int kw,
                       int s, nn_zb_pad pad, int64_t *oh, int64_t *ow,
                       int pads[4]) {
  if (x.h < 1 || x.w < 1 || !zb_axis(x.h, kh, s, pad, oh, &pads[0], &pads[2]) ||
      !zb_axis(x.w, kw, s, pad, ow, &pads[1], &pads[3])) {
    zb_fail(b, DLP_ERR_ARG,
            "zoo: the input is too small: layer %s gets %lldx%lld, needs at "
            "least %dx%d", name, (long long)x.h, (long long)x.w, kh, kw);
    return false;
  }
  return true;
}

nn_zt nn_zb_input(nn_zb *b, int height, int width) {
  int64_t dims[4] = {-1, 3, height, width};
  int v = nn_graph_add_input(b->g, "input", 4, dims);
  return zb_done(b, v, 3, height, width, "input");
}

nn_zt nn_zb_conv(nn_zb *b, nn_zt x, const char *name, int filters, int kh,
                 int kw, int stride, nn_zb_pad pad, bool use_bias,
                 nn_act act) {
  if (x.v < 0) return ZT_FAIL;
  name = zb_name(b, NN_ZB_CONV2D, name);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  int64_t oh, ow;
  if (!zb_spatial(b, x, name, kh, kw, stride, pad, &oh, &ow, a.conv.pads))
    return ZT_FAIL;
  a.conv.stride[0] = a.conv.stride[1] = stride;
  a.conv.act = act;
  int in[3], n = 2;
  in[0] = x.v;
  in[1] = zb_const(b, name, "kernel", 4,
                   (int64_t[]){filters, x.c, kh, kw}, 0.0f);
  if (use_bias) in[n++] = zb_const(b, name, "bias", 1, (int64_t[]){filters}, 0.0f);
  if (b->status != DLP_OK) return ZT_FAIL;
  int v = nn_graph_add_node(b->g, NN_OP_CONV2D, name, in, n, &a);
  return zb_done(b, v, filters, oh, ow, name);
}

/* Depthwise conv node `node` with kernel const "<layer>/depthwise_kernel". */
static nn_zt zb_depthwise(nn_zb *b, nn_zt x, const char *layer,
                          const char *node, int k, int stride, nn_zb_pad pad) {
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  int64_t oh, ow;
  if (!zb_spatial(b, x, node, k, k, stride, pad, &oh, &ow, a.conv.pads))
    return ZT_FAIL;
  a.conv.stride[0] = a.conv.stride[1] = stride;
  a.conv.groups = (int)x.c;
  int in[2] = {x.v, zb_const(b, layer, "depthwise_kernel", 4,
                             (int64_t[]){x.c, 1, k, k}, 0.0f)};
  if (b->status != DLP_OK) return ZT_FAIL;
  int v = nn_graph_add_node(b->g, NN_OP_CONV2D, node, in, 2, &a);
  return zb_done(b, v, x.c, oh, ow, node);
}

nn_zt nn_zb_dwconv(nn_zb *b, nn_zt x, const char *name, int k, int stride,
                   nn_zb_pad pad) {
  if (x.v < 0) return ZT_FAIL;
  return zb_depthwise(b, x, name, name, k, stride, pad);
}

nn_zt nn_zb_sepconv(nn_zb *b, nn_zt x, const char *name, int filters, int k) {
  if (x.v < 0) return ZT_FAIL;
  char dw[256];
  snprintf(dw, sizeof dw, "%s/depthwise", name);
  nn_zt d = zb_depthwise(b, x, name, dw, k, 1, NN_ZB_SAME);
  if (d.v < 0) return ZT_FAIL;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  int in[2] = {d.v, zb_const(b, name, "pointwise_kernel", 4,
                             (int64_t[]){filters, d.c, 1, 1}, 0.0f)};
  if (b->status != DLP_OK) return ZT_FAIL;
  int v = nn_graph_add_node(b->g, NN_OP_CONV2D, name, in, 2, &a);
  return zb_done(b, v, filters, d.h, d.w, name);
}

nn_zt nn_zb_bn(nn_zb *b, nn_zt x, const char *name, float eps, bool scale) {
  if (x.v < 0) return ZT_FAIL;
  (void)scale; /* the gamma const exists either way (ones) */
  name = zb_name(b, NN_ZB_BN, name);
  int64_t c[1] = {x.c};
  int in[5] = {x.v, zb_const(b, name, "gamma", 1, c, 1.0f),
               zb_const(b, name, "beta", 1, c, 0.0f),
               zb_const(b, name, "moving_mean", 1, c, 0.0f),
               zb_const(b, name, "moving_variance", 1, c, 1.0f)};
  if (b->status != DLP_OK) return ZT_FAIL;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_BATCHNORM, &a);
  a.eps = eps;
  int v = nn_graph_add_node(b->g, NN_OP_BATCHNORM, name, in, 5, &a);
  return zb_done(b, v, x.c, x.h, x.w, name);
}

nn_zt nn_zb_act(nn_zb *b, nn_zt x, const char *name, nn_act act) {
  if (x.v < 0) return ZT_FAIL;
  name = zb_name(b, NN_ZB_ACT, name);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_ACT, &a);
  a.act = act;
  int v = nn_graph_add_node(b->g, NN_OP_ACT, name, &x.v, 1, &a);
  return zb_done(b, v, x.c, x.h, x.w, name);
}

nn_zt nn_zb_pool(nn_zb *b, nn_zt x, const char *name, bool is_max, int k,
                 int stride, nn_zb_pad pad) {
  if (x.v < 0) return ZT_FAIL;
  name = zb_name(b, is_max ? NN_ZB_MAXPOOL : NN_ZB_AVGPOOL, name);
  nn_op op = is_max ? NN_OP_MAXPOOL : NN_OP_AVGPOOL;
  nn_node_attr a;
  nn_node_attr_init(op, &a);
  int64_t oh, ow;
  if (!zb_spatial(b, x, name, k, k, stride, pad, &oh, &ow, a.pool.pads))
    return ZT_FAIL;
  a.pool.kernel[0] = a.pool.kernel[1] = k;
  a.pool.stride[0] = a.pool.stride[1] = stride;
  a.pool.count_include_pad = false;
  int v = nn_graph_add_node(b->g, op, name, &x.v, 1, &a);
  return zb_done(b, v, x.c, oh, ow, name);
}

nn_zt nn_zb_zeropad(nn_zb *b, nn_zt x, const char *name, int top, int bottom,
                    int left, int right) {
  if (x.v < 0) return ZT_FAIL;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_PAD, &a);
  /* ONNX order over NCHW: begins of N, C, H, W then the ends. */
  a.pad.pads[2] = top;
  a.pad.pads[3] = left;
  a.pad.pads[6] = bottom;
  a.pad.pads[7] = right;
  int v = nn_graph_add_node(b->g, NN_OP_PAD, name, &x.v, 1, &a);
  return zb_done(b, v, x.c, x.h + top + bottom, x.w + left + right, name);
}

nn_zt nn_zb_add(nn_zb *b, nn_zt x, nn_zt y, const char *name) {
  if (x.v < 0 || y.v < 0) return ZT_FAIL;
  name = zb_name(b, NN_ZB_ADD, name);
  if (x.c != y.c || x.h != y.h || x.w != y.w)
    return zb_fail(b, DLP_ERR_INTERNAL, "zoo: layer %s adds different shapes",
                   name);
  int in[2] = {x.v, y.v};
  int v = nn_graph_add_node(b->g, NN_OP_ADD, name, in, 2, NULL);
  return zb_done(b, v, x.c, x.h, x.w, name);
}

nn_zt nn_zb_concat(nn_zb *b, const nn_zt *xs, int n, const char *name) {
  int in[8];
  int64_t c = 0;
  if (n < 1 || n > 8) return zb_fail(b, DLP_ERR_INTERNAL, "zoo: concat of %d", n);
  for (int i = 0; i < n; i++) {
    if (xs[i].v < 0) return ZT_FAIL;
    in[i] = xs[i].v;
    c += xs[i].c;
  }
  name = zb_name(b, NN_ZB_CONCAT, name);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONCAT, &a);
  a.axis = 1;
  int v = nn_graph_add_node(b->g, NN_OP_CONCAT, name, in, n, &a);
  return zb_done(b, v, c, xs[0].h, xs[0].w, name);
}

nn_zt nn_zb_gap(nn_zb *b, nn_zt x, const char *name) {
  if (x.v < 0) return ZT_FAIL;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_GLOBAL_AVGPOOL, &a);
  a.keepdims = false;
  int v = nn_graph_add_node(b->g, NN_OP_GLOBAL_AVGPOOL, name, &x.v, 1, &a);
  return zb_done(b, v, x.c, 0, 0, name);
}

nn_zt nn_zb_flatten(nn_zb *b, nn_zt x, const char *name) {
  if (x.v < 0) return ZT_FAIL;
  char tn[256];
  snprintf(tn, sizeof tn, "%s/nhwc", name);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_TRANSPOSE, &a);
  a.n_perm = 4;
  a.perm[0] = 0, a.perm[1] = 2, a.perm[2] = 3, a.perm[3] = 1;
  int t = nn_graph_add_node(b->g, NN_OP_TRANSPOSE, tn, &x.v, 1, &a);
  nn_zt tt = zb_done(b, t, x.c, x.h, x.w, tn);
  if (tt.v < 0) return ZT_FAIL;
  nn_node_attr_init(NN_OP_FLATTEN, &a);
  a.axis = 1;
  int v = nn_graph_add_node(b->g, NN_OP_FLATTEN, name, &t, 1, &a);
  return zb_done(b, v, x.c * x.h * x.w, 0, 0, name);
}

nn_zt nn_zb_dense(nn_zb *b, nn_zt x, const char *name, int units, nn_act act) {
  if (x.v < 0) return ZT_FAIL;
  int in[3] = {x.v, zb_const(b, name, "kernel", 2, (int64_t[]){x.c, units}, 0.0f),
               zb_const(b, name, "bias", 1, (int64_t[]){units}, 0.0f)};
  if (b->status != DLP_OK) return ZT_FAIL;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_DENSE, &a);
  a.dense.act = act;
  int v = nn_graph_add_node(b->g, NN_OP_DENSE, name, in, 3, &a);
  return zb_done(b, v, units, 0, 0, name);
}

nn_zt nn_zb_predictions(nn_zb *b, nn_zt x, const char *name, int units) {
  if (x.v < 0) return ZT_FAIL;
  char ln[256];
  snprintf(ln, sizeof ln, "%s/logits", name);
  int in[3] = {x.v, zb_const(b, name, "kernel", 2, (int64_t[]){x.c, units}, 0.0f),
               zb_const(b, name, "bias", 1, (int64_t[]){units}, 0.0f)};
  if (b->status != DLP_OK) return ZT_FAIL;
  int d = nn_graph_add_node(b->g, NN_OP_DENSE, ln, in, 3, NULL);
  nn_zt dt = zb_done(b, d, units, 0, 0, ln);
  if (dt.v < 0) return ZT_FAIL;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_SOFTMAX, &a);
  a.axis = -1;
  int v = nn_graph_add_node(b->g, NN_OP_SOFTMAX, name, &d, 1, &a);
  return zb_done(b, v, units, 0, 0, name);
}

/* ------------------------------------------------------------------------
 * Build
 * ------------------------------------------------------------------------ */

int nn_zoo_build(dlp_err *e, const nn_zoo_entry *z, bool include_top,
                 nn_graph **out) {
  return nn_zoo_build_sized(e, z, include_top, 0, 0, out);
}

int nn_zoo_build_sized(dlp_err *e, const nn_zoo_entry *z, bool include_top,
                       int height, int width, nn_graph **out) {
  if (out) *out = NULL;
  const zoo_def *d = zoo_def_of(z);
  if (!out || !d)
    return dlp_err_set(e, DLP_ERR_ARG, "zoo: unknown model %s",
                       z && z->name ? z->name : "(null)");
  if (height == 0 && width == 0) {
    height = d->e.height;
    width = d->e.width;
  }
  if (height < d->min_size || width < d->min_size || height > 4096 ||
      width > 4096)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "zoo: %s needs an input size from %dx%d to 4096x4096, "
                       "not %dx%d", d->e.name, d->min_size, d->min_size,
                       height, width);
  nn_graph *g = NULL;
  int rc = nn_graph_new(e, &g);
  if (rc != DLP_OK) return rc;
  nn_zb b;
  memset(&b, 0, sizeof b);
  b.g = g;
  nn_zt y = d->build(&b, nn_zb_input(&b, height, width), include_top);
  if (b.status == DLP_OK && y.v < 0)
    zb_fail(&b, DLP_ERR_INTERNAL, "zoo: %s: build failed", d->e.name);
  if (b.status != DLP_OK) {
    nn_graph_free(g);
    if (e) *e = b.err;
    return b.status;
  }
  nn_graph_mark_output(g, y.v);
  g->name = dlp_strdup(d->e.name);
  g->input_spec.height = height;
  g->input_spec.width = width;
  g->input_spec.channels = 3;
  g->input_spec.norm = d->e.norm;
  if (!g->name) rc = dlp_err_set(e, DLP_ERR_NOMEM, "zoo: no memory");
  else rc = nn_graph_finalize(e, g);
  if (rc != DLP_OK) {
    nn_graph_free(g);
    return rc;
  }
  *out = g;
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Random weights
 * ------------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suf) {
  size_t n = strlen(s), m = strlen(suf);
  return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Standard normal by Box-Muller from the seeded generator. */
static double rng_normal(dlp_rng *r) {
  double u1 = dlp_rng_uniform(r), u2 = dlp_rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

int nn_zoo_init_random(dlp_err *e, nn_graph *g, uint64_t seed) {
  if (!g) return dlp_err_set(e, DLP_ERR_ARG, "zoo: no graph");
  for (int i = 0; i < g->n_values; i++) {
    nn_value *v = &g->values[i];
    if (v->kind != NN_VALUE_CONST || !v->data || !v->name) continue;
    int64_t n = nn_shape_numel(v->shape.ndim, v->shape.dims);
    if (n <= 0) continue;
    const char *nm = v->name;
    if (ends_with(nm, "kernel")) { /* kernel, depthwise_, pointwise_ */
      int64_t fan_in = v->shape.ndim == 4
                           ? v->shape.dims[1] * v->shape.dims[2] * v->shape.dims[3]
                           : v->shape.dims[0];
      double sd = sqrt(2.0 / (double)(fan_in > 0 ? fan_in : 1));
      dlp_rng r;
      dlp_rng_seed(&r, dlp_hash64(nm, strlen(nm), seed));
      for (int64_t k = 0; k < n; k++) v->data[k] = (float)(sd * rng_normal(&r));
    } else {
      float fill = (ends_with(nm, "/gamma") || ends_with(nm, "/moving_variance"))
                       ? 1.0f : 0.0f;
      for (int64_t k = 0; k < n; k++) v->data[k] = fill;
    }
  }
  return DLP_OK;
}
