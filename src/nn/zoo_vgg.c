/* zoo_vgg.c - VGG16 and VGG19 as in keras/applications/vgg16.py and
 * vgg19.py: five blocks of 3x3 'same' relu convs ("blockB_convK") and 2x2
 * max pools ("blockB_pool"), then flatten, fc1, fc2, predictions. */
#include "zoo.h"

#include <stdio.h>

nn_zt nn_zoo_vgg(nn_zb *b, nn_zt x, int depth, bool include_top) {
  static const int filters[5] = {64, 128, 256, 512, 512};
  const int convs16[5] = {2, 2, 3, 3, 3}, convs19[5] = {2, 2, 4, 4, 4};
  const int *convs = depth == 19 ? convs19 : convs16;
  char name[32];
  for (int blk = 0; blk < 5; blk++) {
    for (int k = 0; k < convs[blk]; k++) {
      snprintf(name, sizeof name, "block%d_conv%d", blk + 1, k + 1);
      x = nn_zb_conv(b, x, name, filters[blk], 3, 3, 1, NN_ZB_SAME, true,
                     NN_ACT_RELU);
    }
    snprintf(name, sizeof name, "block%d_pool", blk + 1);
    x = nn_zb_pool(b, x, name, true, 2, 2, NN_ZB_VALID);
  }
  /* sparkdl's VGG features are fc2: the feature graph keeps fc1 and fc2. */
  x = nn_zb_flatten(b, x, "flatten");
  x = nn_zb_dense(b, x, "fc1", 4096, NN_ACT_RELU);
  x = nn_zb_dense(b, x, "fc2", 4096, NN_ACT_RELU);
  if (!include_top) return x;
  return nn_zb_predictions(b, x, "predictions", 1000);
}
