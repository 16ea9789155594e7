/* zoo_inception_v3.c - InceptionV3 as in keras/applications/inception_v3.py:
 * conv2d_bn blocks (Conv2D without bias, BatchNormalization(scale=False,
 * eps 1e-3), relu), all auto-named by tf.keras in creation order ("conv2d",
 * "conv2d_1", ..., "batch_normalization_93", "activation_93"), pools
 * "max_pooling2d*"/"average_pooling2d*", concatenations "mixed0".."mixed10",
 * "mixed9_0", "mixed9_1" and the unnamed "concatenate", "concatenate_1". */
#include "zoo.h"

#include <stdio.h>

/* Keras conv2d_bn with name=None. */
static nn_zt cbn(nn_zb *b, nn_zt x, int filters, int rows, int cols,
                 int stride, nn_zb_pad pad) {
  x = nn_zb_conv(b, x, NULL, filters, rows, cols, stride, pad, false,
                 NN_ACT_NONE);
  x = nn_zb_bn(b, x, NULL, 1e-3f, false);
  return nn_zb_act(b, x, NULL, NN_ACT_RELU);
}

static nn_zt cbs(nn_zb *b, nn_zt x, int filters, int rows, int cols) {
  return cbn(b, x, filters, rows, cols, 1, NN_ZB_SAME);
}

static nn_zt avg3(nn_zb *b, nn_zt x) {
  return nn_zb_pool(b, x, NULL, false, 3, 1, NN_ZB_SAME);
}

static nn_zt max3s2(nn_zb *b, nn_zt x) {
  return nn_zb_pool(b, x, NULL, true, 3, 2, NN_ZB_VALID);
}

/* mixed0..mixed2 (35x35): pool_filters 32, 64, 64. */
static nn_zt block35(nn_zb *b, nn_zt x, int pool_filters, const char *name) {
  nn_zt br[4];
  br[0] = cbs(b, x, 64, 1, 1);
  br[1] = cbs(b, x, 48, 1, 1);
  br[1] = cbs(b, br[1], 64, 5, 5);
  br[2] = cbs(b, x, 64, 1, 1);
  br[2] = cbs(b, br[2], 96, 3, 3);
  br[2] = cbs(b, br[2], 96, 3, 3);
  br[3] = avg3(b, x);
  br[3] = cbs(b, br[3], pool_filters, 1, 1);
  return nn_zb_concat(b, br, 4, name);
}

/* mixed4..mixed7 (17x17) with c filters in the 7x7 branches. */
static nn_zt block17(nn_zb *b, nn_zt x, int c, const char *name) {
  nn_zt br[4];
  br[0] = cbs(b, x, 192, 1, 1);
  br[1] = cbs(b, x, c, 1, 1);
  br[1] = cbs(b, br[1], c, 1, 7);
  br[1] = cbs(b, br[1], 192, 7, 1);
  br[2] = cbs(b, x, c, 1, 1);
  br[2] = cbs(b, br[2], c, 7, 1);
  br[2] = cbs(b, br[2], c, 1, 7);
  br[2] = cbs(b, br[2], c, 7, 1);
  br[2] = cbs(b, br[2], 192, 1, 7);
  br[3] = avg3(b, x);
  br[3] = cbs(b, br[3], 192, 1, 1);
  return nn_zb_concat(b, br, 4, name);
}

/* mixed9, mixed10 (8x8); i = 0, 1. */
static nn_zt block8(nn_zb *b, nn_zt x, int i) {
  char n[32];
  nn_zt br[4], pair[2];
  br[0] = cbs(b, x, 320, 1, 1);
  nn_zt t = cbs(b, x, 384, 1, 1);
  pair[0] = cbs(b, t, 384, 1, 3);
  pair[1] = cbs(b, t, 384, 3, 1);
  snprintf(n, sizeof n, "mixed9_%d", i);
  br[1] = nn_zb_concat(b, pair, 2, n);
  t = cbs(b, x, 448, 1, 1);
  t = cbs(b, t, 384, 3, 3);
  pair[0] = cbs(b, t, 384, 1, 3);
  pair[1] = cbs(b, t, 384, 3, 1);
  br[2] = nn_zb_concat(b, pair, 2, NULL);
  br[3] = avg3(b, x);
  br[3] = cbs(b, br[3], 192, 1, 1);
  snprintf(n, sizeof n, "mixed%d", 9 + i);
  return nn_zb_concat(b, br, 4, n);
}

nn_zt nn_zoo_inception_v3(nn_zb *b, nn_zt x, bool include_top) {
  x = cbn(b, x, 32, 3, 3, 2, NN_ZB_VALID);
  x = cbn(b, x, 32, 3, 3, 1, NN_ZB_VALID);
  x = cbs(b, x, 64, 3, 3);
  x = max3s2(b, x);
  x = cbn(b, x, 80, 1, 1, 1, NN_ZB_VALID);
  x = cbn(b, x, 192, 3, 3, 1, NN_ZB_VALID);
  x = max3s2(b, x);

  x = block35(b, x, 32, "mixed0");
  x = block35(b, x, 64, "mixed1");
  x = block35(b, x, 64, "mixed2");

  /* mixed3: 17x17x768 */
  nn_zt br[3];
  br[0] = cbn(b, x, 384, 3, 3, 2, NN_ZB_VALID);
  br[1] = cbs(b, x, 64, 1, 1);
  br[1] = cbs(b, br[1], 96, 3, 3);
  br[1] = cbn(b, br[1], 96, 3, 3, 2, NN_ZB_VALID);
  br[2] = max3s2(b, x);
  x = nn_zb_concat(b, br, 3, "mixed3");

  x = block17(b, x, 128, "mixed4");
  x = block17(b, x, 160, "mixed5");
  x = block17(b, x, 160, "mixed6");
  x = block17(b, x, 192, "mixed7");

  /* mixed8: 8x8x1280 */
  br[0] = cbs(b, x, 192, 1, 1);
  br[0] = cbn(b, br[0], 320, 3, 3, 2, NN_ZB_VALID);
  br[1] = cbs(b, x, 192, 1, 1);
  br[1] = cbs(b, br[1], 192, 1, 7);
  br[1] = cbs(b, br[1], 192, 7, 1);
  br[1] = cbn(b, br[1], 192, 3, 3, 2, NN_ZB_VALID);
  br[2] = max3s2(b, x);
  x = nn_zb_concat(b, br, 3, "mixed8");

  x = block8(b, x, 0);
  x = block8(b, x, 1);

  x = nn_zb_gap(b, x, "avg_pool");
  if (!include_top) return x;
  return nn_zb_predictions(b, x, "predictions", 1000);
}
