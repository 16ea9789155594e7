/* zoo_mobilenet_v2.c - MobileNetV2 at any width multiplier alpha as in
 * keras/applications/mobilenet_v2.py: Conv1 (3x3/2 'same'), 17 inverted
 * residual blocks ("expanded_conv_*", "block_N_*"; stride-2 depthwise convs
 * after a ZeroPadding2D "block_N_pad" of imagenet_utils.correct_pad), Conv_1
 * 1x1 to 1280 (more when alpha > 1), ReLU6 everywhere, BN eps 1e-3. Channel
 * counts follow Keras' _make_divisible in double arithmetic, as Python's
 * floats, so every alpha gives Keras' exact shapes. */
#include "zoo.h"

#include <stdio.h>

#define MBV2_EPS 1e-3f

int nn_zoo_make_divisible(double v, int divisor) {
  int nv = (int)(v + divisor / 2.0) / divisor * divisor;
  if (nv < divisor) nv = divisor;
  if (nv < 0.9 * v) nv += divisor; /* never round down by more than 10% */
  return nv;
}

int nn_zoo_mobilenet_v2_last_filters(double alpha) {
  /* Keras widens the last conv only above 1 (the paper's rule). */
  return alpha > 1.0 ? nn_zoo_make_divisible(1280 * alpha, 8) : 1280;
}

static nn_zt inverted_res_block(nn_zb *b, nn_zt in, int expansion, int stride,
                                int filters, double alpha, int block_id) {
  char prefix[32], n[64];
  nn_zt x = in;
  /* int() before rounding, as Keras' pointwise_conv_filters. */
  filters = nn_zoo_make_divisible((double)(int)(filters * alpha), 8);
  if (block_id) {
    snprintf(prefix, sizeof prefix, "block_%d_", block_id);
    snprintf(n, sizeof n, "%sexpand", prefix);
    x = nn_zb_conv(b, x, n, expansion * (int)in.c, 1, 1, 1, NN_ZB_SAME, false,
                   NN_ACT_NONE);
    snprintf(n, sizeof n, "%sexpand_BN", prefix);
    x = nn_zb_bn(b, x, n, MBV2_EPS, true);
    snprintf(n, sizeof n, "%sexpand_relu", prefix);
    x = nn_zb_act(b, x, n, NN_ACT_RELU6);
  } else {
    snprintf(prefix, sizeof prefix, "expanded_conv_");
  }
  if (stride == 2) {
    /* correct_pad(x, 3): one pixel at the end; one at the start too when
     * the size is odd. */
    snprintf(n, sizeof n, "%spad", prefix);
    x = nn_zb_zeropad(b, x, n, (int)(x.h % 2), 1, (int)(x.w % 2), 1);
  }
  snprintf(n, sizeof n, "%sdepthwise", prefix);
  x = nn_zb_dwconv(b, x, n, 3, stride, stride == 1 ? NN_ZB_SAME : NN_ZB_VALID);
  snprintf(n, sizeof n, "%sdepthwise_BN", prefix);
  x = nn_zb_bn(b, x, n, MBV2_EPS, true);
  snprintf(n, sizeof n, "%sdepthwise_relu", prefix);
  x = nn_zb_act(b, x, n, NN_ACT_RELU6);
  snprintf(n, sizeof n, "%sproject", prefix);
  x = nn_zb_conv(b, x, n, filters, 1, 1, 1, NN_ZB_SAME, false, NN_ACT_NONE);
  snprintf(n, sizeof n, "%sproject_BN", prefix);
  x = nn_zb_bn(b, x, n, MBV2_EPS, true);
  if (in.c == filters && stride == 1) {
    snprintf(n, sizeof n, "%sadd", prefix);
    x = nn_zb_add(b, in, x, n);
  }
  return x;
}

nn_zt nn_zoo_mobilenet_v2(nn_zb *b, nn_zt x, double alpha, bool include_top) {
  /* (expansion, stride, filters) of blocks 0..16, as in the Keras source. */
  static const int blocks[17][3] = {
      {1, 1, 16}, {6, 2, 24},  {6, 1, 24},  {6, 2, 32},  {6, 1, 32}, {6, 1, 32},
      {6, 2, 64}, {6, 1, 64},  {6, 1, 64},  {6, 1, 64},  {6, 1, 96}, {6, 1, 96},
      {6, 1, 96}, {6, 2, 160}, {6, 1, 160}, {6, 1, 160}, {6, 1, 320}};
  x = nn_zb_conv(b, x, "Conv1", nn_zoo_make_divisible(32 * alpha, 8), 3, 3, 2,
                 NN_ZB_SAME, false, NN_ACT_NONE);
  x = nn_zb_bn(b, x, "bn_Conv1", MBV2_EPS, true);
  x = nn_zb_act(b, x, "Conv1_relu", NN_ACT_RELU6);
  for (int i = 0; i < 17; i++)
    x = inverted_res_block(b, x, blocks[i][0], blocks[i][1], blocks[i][2],
                           alpha, i);
  x = nn_zb_conv(b, x, "Conv_1", nn_zoo_mobilenet_v2_last_filters(alpha), 1, 1,
                 1, NN_ZB_VALID, false, NN_ACT_NONE);
  x = nn_zb_bn(b, x, "Conv_1_bn", MBV2_EPS, true);
  x = nn_zb_act(b, x, "out_relu", NN_ACT_RELU6);
  /* Keras leaves this layer unnamed: tf.keras calls it
   * "global_average_pooling2d". */
  x = nn_zb_gap(b, x, "global_average_pooling2d");
  if (!include_top) return x;
  return nn_zb_predictions(b, x, "predictions", 1000);
}
