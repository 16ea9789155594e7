/* zoo_resnet50.c - ResNet50 (v1) as in keras/applications/resnet.py:
 * conv1 (7x7/2 after 3-pixel zero padding), pool1, stacks conv2..conv5 of
 * bottleneck blocks with the stride on the first 1x1 conv (Keras' v1, unlike
 * torchvision's v1.5), biased convs, BN eps 1.001e-5. */
#include "zoo.h"

#include <stdio.h>

#define RESNET_EPS 1.001e-5f

/* Keras block1: "<name>_{0..3}_conv/_bn", "_N_relu", "_add", "_out". */
static nn_zt block1(nn_zb *b, nn_zt x, int filters, int stride,
                    bool conv_shortcut, const char *name) {
  char n[64];
  nn_zt sc = x;
  if (conv_shortcut) {
    snprintf(n, sizeof n, "%s_0_conv", name);
    sc = nn_zb_conv(b, x, n, 4 * filters, 1, 1, stride, NN_ZB_VALID, true,
                    NN_ACT_NONE);
    snprintf(n, sizeof n, "%s_0_bn", name);
    sc = nn_zb_bn(b, sc, n, RESNET_EPS, true);
  }
  snprintf(n, sizeof n, "%s_1_conv", name);
  x = nn_zb_conv(b, x, n, filters, 1, 1, stride, NN_ZB_VALID, true, NN_ACT_NONE);
  snprintf(n, sizeof n, "%s_1_bn", name);
  x = nn_zb_bn(b, x, n, RESNET_EPS, true);
  snprintf(n, sizeof n, "%s_1_relu", name);
  x = nn_zb_act(b, x, n, NN_ACT_RELU);
  snprintf(n, sizeof n, "%s_2_conv", name);
  x = nn_zb_conv(b, x, n, filters, 3, 3, 1, NN_ZB_SAME, true, NN_ACT_NONE);
  snprintf(n, sizeof n, "%s_2_bn", name);
  x = nn_zb_bn(b, x, n, RESNET_EPS, true);
  snprintf(n, sizeof n, "%s_2_relu", name);
  x = nn_zb_act(b, x, n, NN_ACT_RELU);
  snprintf(n, sizeof n, "%s_3_conv", name);
  x = nn_zb_conv(b, x, n, 4 * filters, 1, 1, 1, NN_ZB_VALID, true, NN_ACT_NONE);
  snprintf(n, sizeof n, "%s_3_bn", name);
  x = nn_zb_bn(b, x, n, RESNET_EPS, true);
  snprintf(n, sizeof n, "%s_add", name);
  x = nn_zb_add(b, sc, x, n);
  snprintf(n, sizeof n, "%s_out", name);
  return nn_zb_act(b, x, n, NN_ACT_RELU);
}

static nn_zt stack1(nn_zb *b, nn_zt x, int filters, int blocks, int stride1,
                    const char *name) {
  char n[64];
  snprintf(n, sizeof n, "%s_block1", name);
  x = block1(b, x, filters, stride1, true, n);
  for (int i = 2; i <= blocks; i++) {
    snprintf(n, sizeof n, "%s_block%d", name, i);
    x = block1(b, x, filters, 1, false, n);
  }
  return x;
}

nn_zt nn_zoo_resnet50(nn_zb *b, nn_zt x, bool include_top) {
  x = nn_zb_zeropad(b, x, "conv1_pad", 3, 3, 3, 3);
  x = nn_zb_conv(b, x, "conv1_conv", 64, 7, 7, 2, NN_ZB_VALID, true,
                 NN_ACT_NONE);
  x = nn_zb_bn(b, x, "conv1_bn", RESNET_EPS, true);
  x = nn_zb_act(b, x, "conv1_relu", NN_ACT_RELU);
  x = nn_zb_zeropad(b, x, "pool1_pad", 1, 1, 1, 1);
  x = nn_zb_pool(b, x, "pool1_pool", true, 3, 2, NN_ZB_VALID);
  x = stack1(b, x, 64, 3, 1, "conv2");
  x = stack1(b, x, 128, 4, 2, "conv3");
  x = stack1(b, x, 256, 6, 2, "conv4");
  x = stack1(b, x, 512, 3, 2, "conv5");
  x = nn_zb_gap(b, x, "avg_pool");
  if (!include_top) return x;
  return nn_zb_predictions(b, x, "predictions", 1000);
}
