/* zoo_xception.c - Xception as in keras/applications/xception.py: entry
 * flow (block1..block4 with strided 1x1 residual convs, auto-named "conv2d",
 * "batch_normalization", "add" ... by tf.keras), middle flow block5..block12,
 * exit flow block13..block14. Separable convs have no bias; BN eps 1e-3. */
#include "zoo.h"

#include <stdio.h>

#define XC_EPS 1e-3f

/* sepconv "blockB_sepconvK" + its BN "blockB_sepconvK_bn". */
static nn_zt sep_bn(nn_zb *b, nn_zt x, int blk, int k, int filters) {
  char n[64];
  snprintf(n, sizeof n, "block%d_sepconv%d", blk, k);
  x = nn_zb_sepconv(b, x, n, filters, 3);
  snprintf(n, sizeof n, "block%d_sepconv%d_bn", blk, k);
  return nn_zb_bn(b, x, n, XC_EPS, true);
}

static nn_zt act(nn_zb *b, nn_zt x, int blk, int k) {
  char n[64];
  snprintf(n, sizeof n, "block%d_sepconv%d_act", blk, k);
  return nn_zb_act(b, x, n, NN_ACT_RELU);
}

/* The strided auto-named residual: Conv2D 1x1/2 'same' then BN. */
static nn_zt residual(nn_zb *b, nn_zt x, int filters) {
  x = nn_zb_conv(b, x, NULL, filters, 1, 1, 2, NN_ZB_SAME, false, NN_ACT_NONE);
  return nn_zb_bn(b, x, NULL, XC_EPS, true);
}

static nn_zt pool(nn_zb *b, nn_zt x, int blk) {
  char n[32];
  snprintf(n, sizeof n, "block%d_pool", blk);
  return nn_zb_pool(b, x, n, true, 3, 2, NN_ZB_SAME);
}

nn_zt nn_zoo_xception(nn_zb *b, nn_zt x, bool include_top) {
  x = nn_zb_conv(b, x, "block1_conv1", 32, 3, 3, 2, NN_ZB_VALID, false,
                 NN_ACT_NONE);
  x = nn_zb_bn(b, x, "block1_conv1_bn", XC_EPS, true);
  x = nn_zb_act(b, x, "block1_conv1_act", NN_ACT_RELU);
  x = nn_zb_conv(b, x, "block1_conv2", 64, 3, 3, 1, NN_ZB_VALID, false,
                 NN_ACT_NONE);
  x = nn_zb_bn(b, x, "block1_conv2_bn", XC_EPS, true);
  x = nn_zb_act(b, x, "block1_conv2_act", NN_ACT_RELU);

  /* block2: no activation before the first sepconv. */
  nn_zt res = residual(b, x, 128);
  x = sep_bn(b, x, 2, 1, 128);
  x = act(b, x, 2, 2);
  x = sep_bn(b, x, 2, 2, 128);
  x = pool(b, x, 2);
  x = nn_zb_add(b, x, res, NULL);

  static const int entry[2] = {256, 728};
  for (int i = 0; i < 2; i++) {
    int blk = 3 + i;
    res = residual(b, x, entry[i]);
    x = act(b, x, blk, 1);
    x = sep_bn(b, x, blk, 1, entry[i]);
    x = act(b, x, blk, 2);
    x = sep_bn(b, x, blk, 2, entry[i]);
    x = pool(b, x, blk);
    x = nn_zb_add(b, x, res, NULL);
  }

  for (int blk = 5; blk <= 12; blk++) {
    res = x;
    for (int k = 1; k <= 3; k++) {
      x = act(b, x, blk, k);
      x = sep_bn(b, x, blk, k, 728);
    }
    x = nn_zb_add(b, x, res, NULL);
  }

  res = residual(b, x, 1024);
  x = act(b, x, 13, 1);
  x = sep_bn(b, x, 13, 1, 728);
  x = act(b, x, 13, 2);
  x = sep_bn(b, x, 13, 2, 1024);
  x = pool(b, x, 13);
  x = nn_zb_add(b, x, res, NULL);

  x = sep_bn(b, x, 14, 1, 1536);
  x = act(b, x, 14, 1);
  x = sep_bn(b, x, 14, 2, 2048);
  x = act(b, x, 14, 2);

  x = nn_zb_gap(b, x, "avg_pool");
  if (!include_top) return x;
  return nn_zb_predictions(b, x, "predictions", 1000);
}
