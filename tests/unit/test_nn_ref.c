/* test_nn_ref.c - the nn reference kernels on tiny hand-computed cases. */
#include "nn.h"
#include "test.h"

#include <stdint.h>

/* A tensor of the given shape filled from vals (or 1, 2, 3, ... if NULL). */
static nn_tensor *mk(int ndim, const int64_t *dims, const float *vals) {
  nn_tensor *t = NULL;
  dlp_err e = {0};
  if (nn_tensor_new(&e, ndim, dims, &t) != DLP_OK) return NULL;
  for (int64_t i = 0; i < nn_tensor_numel(t); i++)
    t->data[i] = vals ? vals[i] : (float)(i + 1);
  return t;
}

/* Allocates the output of shape s. */
static nn_tensor *out_of(const nn_shape *s) {
  return mk(s->ndim, s->dims, NULL);
}

static bool has(const dlp_err *e, const char *needle) {
  if (!strstr(e->msg, needle)) {
    fprintf(stderr, "message \"%s\" lacks \"%s\"\n", e->msg, needle);
    return false;
  }
  return true;
}

TEST(tensor_new_checks_shape_and_size) {
  dlp_err e = {0};
  nn_tensor *t = NULL;
  int64_t d[6] = {2, 3, 4, 1, 1, 1};
  CHECK_EQ_INT(nn_tensor_new(&e, 3, d, &t), DLP_OK);
  CHECK_EQ_INT(nn_tensor_numel(t), 24);
  CHECK(t && t->data[23] == 0.0f && !t->is_view);
  nn_tensor_free(t);
  int64_t big[2] = {65536, 32769}; /* 2^31 + 2^16 elements */
  CHECK_EQ_INT(nn_tensor_new(&e, 2, big, &t), DLP_ERR_TOO_LARGE);
  CHECK(t == NULL && has(&e, "more than 2^31"));
  int64_t huge[3] = {INT64_MAX, INT64_MAX, 2};
  CHECK_EQ_INT(nn_tensor_new(&e, 3, huge, &t), DLP_ERR_TOO_LARGE);
  int64_t neg[2] = {2, -1};
  CHECK_EQ_INT(nn_tensor_new(&e, 2, neg, &t), DLP_ERR_ARG);
  CHECK(has(&e, "negative"));
  CHECK_EQ_INT(nn_tensor_new(&e, 7, d, &t), DLP_ERR_ARG);
  int64_t empty[2] = {0, 5};
  CHECK_EQ_INT(nn_tensor_new(NULL, 2, empty, &t), DLP_OK);
  CHECK_EQ_INT(nn_tensor_numel(t), 0);
  nn_tensor_free(t);
  CHECK_EQ_INT(nn_tensor_new(NULL, 0, NULL, &t), DLP_OK); /* a scalar */
  CHECK_EQ_INT(nn_tensor_numel(t), 1);
  nn_tensor_free(t);
  nn_tensor_free(NULL);
}

TEST(tensor_view_borrows_data) {
  float buf[6] = {1, 2, 3, 4, 5, 6};
  int64_t d[2] = {2, 3};
  nn_tensor *v = NULL;
  CHECK_EQ_INT(nn_tensor_view(NULL, buf, 2, d, &v), DLP_OK);
  CHECK(v && v->is_view && v->data == buf && nn_tensor_numel(v) == 6);
  nn_tensor_free(v); /* must not free buf (ASan would say so) */
  CHECK(buf[5] == 6);
}

/* x = 1..16 as a 4x4 image; the 3x3 all-ones kernel sums each window. */
TEST(conv2d_3x3_on_4x4_by_hand) {
  dlp_err e = {0};
  int64_t dx[4] = {1, 1, 4, 4}, dw[4] = {1, 1, 3, 3}, db[1] = {1};
  float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, bias = -60;
  nn_tensor *x = mk(4, dx, NULL), *w = mk(4, dw, ones), *b = mk(1, db, &bias);
  nn_conv2d_attr a;
  nn_conv2d_attr_init(&a);
  nn_shape s;
  CHECK_EQ_INT(nn_conv2d_out_shape(&e, &a, x, w, &s), DLP_OK);
  CHECK(s.ndim == 4 && s.dims[2] == 2 && s.dims[3] == 2);
  nn_tensor *y = out_of(&s);
  CHECK_EQ_INT(nn_conv2d(&e, &a, x, w, NULL, y), DLP_OK);
  /* 1+2+3+5+6+7+9+10+11 = 54, then each step right adds 9, down adds 36 */
  CHECK(y->data[0] == 54 && y->data[1] == 63 && y->data[2] == 90 &&
        y->data[3] == 99);
  a.act = NN_ACT_RELU; /* bias -60 then relu: 0, 3, 30, 39 */
  CHECK_EQ_INT(nn_conv2d(&e, &a, x, w, b, y), DLP_OK);
  CHECK(y->data[0] == 0 && y->data[1] == 3 && y->data[2] == 30 &&
        y->data[3] == 39);
  nn_tensor_free(y);
  /* pad 1 all round, stride 2: windows centred on (0,0), (0,2), (2,0),
   * (2,2): 1+2+5+6 = 14, 2+3+4+6+7+8 = 30, 5+6+9+10+13+14 = 57, and
   * 6+7+8+10+11+12+14+15+16 = 99 */
  nn_conv2d_attr_init(&a);
  a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
  a.stride[0] = a.stride[1] = 2;
  CHECK_EQ_INT(nn_conv2d_out_shape(&e, &a, x, w, &s), DLP_OK);
  y = out_of(&s);
  CHECK_EQ_INT(nn_conv2d(&e, &a, x, w, NULL, y), DLP_OK);
  CHECK(s.dims[2] == 2 && s.dims[3] == 2 && y->data[0] == 14 &&
        y->data[1] == 30 && y->data[2] == 57 && y->data[3] == 99);
  nn_tensor_free(y);
  /* dilation 2 on 4x4 with a 2x2 kernel of ones: x[0,0]+x[0,2]+x[2,0]+x[2,2]
   * = 1+3+9+11 = 24, then 28, 40, 44 */
  int64_t dw2[4] = {1, 1, 2, 2};
  nn_tensor *w2 = mk(4, dw2, ones);
  nn_conv2d_attr_init(&a);
  a.dilation[0] = a.dilation[1] = 2;
  CHECK_EQ_INT(nn_conv2d_out_shape(&e, &a, x, w2, &s), DLP_OK);
  y = out_of(&s);
  CHECK_EQ_INT(nn_conv2d(&e, &a, x, w2, NULL, y), DLP_OK);
  CHECK(y->data[0] == 24 && y->data[1] == 28 && y->data[2] == 40 &&
        y->data[3] == 44);
  nn_tensor_free(y);
  nn_tensor_free(w2);
  nn_tensor_free(x);
  nn_tensor_free(w);
  nn_tensor_free(b);
}

/* Depthwise: each channel convolved with its own 1x1 weight. */
TEST(conv2d_depthwise_scales_each_channel) {
  dlp_err e = {0};
  int64_t dx[4] = {1, 2, 2, 2}, dw[4] = {2, 1, 1, 1};
  float wv[2] = {10, -1};
  nn_tensor *x = mk(4, dx, NULL), *w = mk(4, dw, wv);
  nn_conv2d_attr a;
  nn_conv2d_attr_init(&a);
  a.groups = 2;
  nn_shape s;
  CHECK_EQ_INT(nn_conv2d_out_shape(&e, &a, x, w, &s), DLP_OK);
  nn_tensor *y = out_of(&s);
  CHECK_EQ_INT(nn_conv2d(&e, &a, x, w, NULL, y), DLP_OK);
  float want[8] = {10, 20, 30, 40, -5, -6, -7, -8};
  for (int i = 0; i < 8; i++)
    CHECK(y->data[i] == want[i]);
  nn_tensor_free(y);
  nn_tensor_free(x);
  nn_tensor_free(w);
}

/* The formula from TF's documentation, restated here for the check. */
static void tf_same(int in, int k, int s, int d, int *b, int *e) {
  int out = (in + s - 1) / s;
  int total = (out - 1) * s + (k - 1) * d + 1 - in;
  if (total < 0) total = 0;
  *b = total / 2;
  *e = total - total / 2;
}

TEST(same_padding_matches_tf_formula) {
  int b, e;
  /* k=3, s=2: even input 8 -> 4 outputs, total 1, the extra at the end */
  CHECK(nn_pad_same_tf(8, 3, 2, 1, &b, &e) && b == 0 && e == 1);
  /* odd input 7 -> 4 outputs, total 2 */
  CHECK(nn_pad_same_tf(7, 3, 2, 1, &b, &e) && b == 1 && e == 1);
  CHECK(nn_pad_same_tf(224, 3, 2, 1, &b, &e) && b == 0 && e == 1);
  CHECK(nn_pad_same_tf(10, 3, 1, 2, &b, &e) && b == 2 && e == 2);
  CHECK(nn_pad_same_tf(8, 1, 2, 1, &b, &e) && b == 0 && e == 0);
  CHECK(nn_pad_auto(NN_AUTOPAD_SAME_LOWER, 8, 3, 2, 1, &b, &e) && b == 1 &&
        e == 0);
  CHECK(nn_pad_auto(NN_AUTOPAD_VALID, 8, 3, 2, 1, &b, &e) && b == 0 && e == 0);
  CHECK(!nn_pad_same_tf(8, 0, 2, 1, &b, &e));
  CHECK(!nn_pad_same_tf(8, 3, 0, 1, &b, &e));
  for (int in = 1; in <= 20; in++)
    for (int k = 1; k <= 7; k++)
      for (int s = 1; s <= 4; s++)
        for (int d = 1; d <= 3; d++) {
          int rb, re;
          tf_same(in, k, s, d, &rb, &re);
          CHECK(nn_pad_same_tf(in, k, s, d, &b, &e) && b == rb && e == re);
          CHECK(nn_pad_auto(NN_AUTOPAD_SAME_LOWER, in, k, s, d, &b, &e) &&
                b == re && e == rb);
        }
}

/* x = 1..25 as 5x5. */
TEST(maxpool_ceil_mode_by_hand) {
  dlp_err e = {0};
  int64_t dx[4] = {1, 1, 5, 5};
  nn_tensor *x = mk(4, dx, NULL);
  nn_pool2d_attr a;
  nn_pool2d_attr_init(&a);
  a.kernel[0] = a.kernel[1] = 2;
  a.stride[0] = a.stride[1] = 2;
  nn_shape s;
  CHECK_EQ_INT(nn_pool2d_out_shape(&e, &a, x, &s), DLP_OK);
  CHECK(s.dims[2] == 2 && s.dims[3] == 2); /* floor: the last column is lost */
  a.ceil_mode = true;
  CHECK_EQ_INT(nn_pool2d_out_shape(&e, &a, x, &s), DLP_OK);
  CHECK(s.dims[2] == 3 && s.dims[3] == 3);
  nn_tensor *y = out_of(&s);
  CHECK_EQ_INT(nn_maxpool2d(&e, &a, x, y), DLP_OK);
  float want[9] = {7, 9, 10, 17, 19, 20, 22, 24, 25};
  for (int i = 0; i < 9; i++)
    CHECK(y->data[i] == want[i]);
  CHECK_EQ_INT(nn_avgpool2d(&e, &a, x, y), DLP_OK);
  CHECK(y->data[0] == 4 && y->data[2] == 7.5f && y->data[8] == 25);
  nn_tensor_free(y);
  /* k=3, s=2, pad 1, ceil: ceil(5/2)+1 = 4 windows, but the 4th would start
   * at 6 - 1 = 5, in the bottom padding, so it is dropped (PyTorch gives 3) */
  a.kernel[0] = a.kernel[1] = 3;
  a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
  CHECK_EQ_INT(nn_pool2d_out_shape(&e, &a, x, &s), DLP_OK);
  CHECK(s.dims[2] == 3 && s.dims[3] == 3);
  nn_tensor_free(x);
}

TEST(avgpool_counts_padding_only_when_asked) {
  dlp_err e = {0};
  int64_t dx[4] = {1, 1, 3, 3};
  float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  nn_tensor *x = mk(4, dx, ones);
  nn_pool2d_attr a;
  nn_pool2d_attr_init(&a);
  a.kernel[0] = a.kernel[1] = 3;
  a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
  nn_shape s;
  CHECK_EQ_INT(nn_pool2d_out_shape(&e, &a, x, &s), DLP_OK);
  nn_tensor *y = out_of(&s);
  CHECK_EQ_INT(nn_avgpool2d(&e, &a, x, y), DLP_OK); /* TF: valid only */
  for (int i = 0; i < 9; i++)
    CHECK(y->data[i] == 1);
  a.count_include_pad = true; /* corner: 4 ones over 9, edge: 6 over 9 */
  CHECK_EQ_INT(nn_avgpool2d(&e, &a, x, y), DLP_OK);
  CHECK_NEAR(y->data[0], 4.0 / 9, 1e-7);
  CHECK_NEAR(y->data[1], 6.0 / 9, 1e-7);
  CHECK_NEAR(y->data[4], 1.0, 1e-7);
  a.pads[0] = 3; /* pads must stay below the kernel */
  CHECK_EQ_INT(nn_avgpool2d(&e, &a, x, y), DLP_ERR_ARG);
  CHECK(has(&e, "pads (3, 1)"));
  nn_tensor_free(y);
  nn_tensor_free(x);
}

TEST(global_pool_reduces_spatial_dims) {
  dlp_err e = {0};
  int64_t dx[4] = {1, 2, 2, 2};
  nn_tensor *x = mk(4, dx, NULL);
  nn_shape s;
  CHECK_EQ_INT(nn_global_pool_out_shape(&e, x, &s), DLP_OK);
  CHECK(s.ndim == 4 && s.dims[1] == 2 && s.dims[2] == 1 && s.dims[3] == 1);
  nn_tensor *y = out_of(&s);
  CHECK_EQ_INT(nn_global_avgpool(&e, x, y), DLP_OK);
  CHECK(y->data[0] == 2.5f && y->data[1] == 6.5f);
  CHECK_EQ_INT(nn_global_maxpool(&e, x, y), DLP_OK);
  CHECK(y->data[0] == 4 && y->data[1] == 8);
  nn_tensor_free(y);
  nn_tensor_free(x);
}

TEST(softmax_sums_to_one_and_is_stable) {
  dlp_err e = {0};
  int64_t d[2] = {2, 3};
  float v[6] = {1000, 1001, 1002, 0, 1, 2};
  nn_tensor *x = mk(2, d, v), *y = mk(2, d, NULL);
  CHECK_EQ_INT(nn_softmax(&e, -1, x, y), DLP_OK);
  double z = 1 + exp(1) + exp(2);
  for (int r = 0; r < 2; r++) {
    CHECK(isfinite(y->data[r * 3]));
    CHECK_NEAR(y->data[r * 3] + y->data[r * 3 + 1] + y->data[r * 3 + 2], 1,
               1e-6);
    CHECK_NEAR(y->data[r * 3], 1 / z, 1e-7);
    CHECK_NEAR(y->data[r * 3 + 2], exp(2) / z, 1e-7);
  }
  CHECK_EQ_INT(nn_softmax(&e, 0, x, y), DLP_OK); /* down the columns */
  CHECK_NEAR(y->data[0], 1.0, 1e-7);
  CHECK_NEAR(y->data[3], 0.0, 1e-7);
  CHECK_EQ_INT(nn_softmax(&e, 2, x, y), DLP_ERR_ARG);
  CHECK(has(&e, "softmax: axis 2"));
  nn_tensor_free(x);
  nn_tensor_free(y);
}

TEST(activations_by_hand) {
  CHECK(nn_act_scalar(NN_ACT_RELU6, 0, 7) == 6);
  CHECK(nn_act_scalar(NN_ACT_RELU6, 0, -1) == 0);
  CHECK_NEAR(nn_act_scalar(NN_ACT_HARD_SIGMOID, 0, 1), 0.7, 1e-6);
  CHECK(nn_act_scalar(NN_ACT_HARD_SIGMOID, 0, 3) == 1);
  CHECK(nn_act_scalar(NN_ACT_HARD_SIGMOID, 0, -3) == 0);
  CHECK(nn_act_scalar(NN_ACT_LEAKY_RELU, 0.1f, -2) == -0.2f);
  CHECK(nn_act_scalar(NN_ACT_SIGMOID, 0, 0) == 0.5f);
  CHECK(nn_act_scalar(NN_ACT_SIGMOID, 0, -200) == 0); /* no NaN, no inf */
  CHECK(nn_act_scalar(NN_ACT_SIGMOID, 0, 200) == 1);
  CHECK(nn_act_scalar(NN_ACT_SWISH, 0, 0) == 0);
  CHECK_NEAR(nn_act_scalar(NN_ACT_SWISH, 0, 2), 2 / (1 + exp(-2)), 1e-6);
  CHECK_EQ_INT(nn_act_from_name("hard_sigmoid"), NN_ACT_HARD_SIGMOID);
  CHECK_EQ_INT(nn_act_from_name("gelu"), -1);
  int64_t d[1] = {4};
  float v[4] = {-2, -0.5f, 0.5f, 8};
  nn_tensor *x = mk(1, d, v);
  CHECK_EQ_INT(nn_act_apply(NULL, NN_ACT_RELU6, 0, x, x),
               DLP_OK); /* in place */
  CHECK(x->data[0] == 0 && x->data[2] == 0.5f && x->data[3] == 6);
  CHECK_EQ_INT(nn_clip(NULL, 1, 2, x, x), DLP_OK);
  CHECK(x->data[0] == 1 && x->data[3] == 2);
  CHECK_EQ_INT(nn_clip(NULL, 2, 1, x, x), DLP_ERR_ARG);
  nn_tensor_free(x);
}

TEST(broadcasting_shapes_and_values) {
  dlp_err e = {0};
  int64_t da[3] = {2, 1, 3}, db[2] = {4, 1};
  nn_tensor *a = mk(3, da, NULL), *b = mk(2, db, NULL);
  nn_shape s;
  CHECK_EQ_INT(nn_broadcast_shape(&e, a, b, &s), DLP_OK);
  CHECK(s.ndim == 3 && s.dims[0] == 2 && s.dims[1] == 4 && s.dims[2] == 3);
  nn_tensor *y = out_of(&s);
  CHECK_EQ_INT(nn_add(&e, a, b, y), DLP_OK);
  /* y[i][j][k] = a[i][0][k] + b[j][0] = (3i + k + 1) + (j + 1) */
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++)
      for (int k = 0; k < 3; k++)
        CHECK(y->data[(i * 4 + j) * 3 + k] == (float)(3 * i + k + 1 + j + 1));
  CHECK_EQ_INT(nn_mul(&e, a, b, y), DLP_OK);
  CHECK(y->data[(1 * 4 + 3) * 3 + 2] == 6.0f * 4.0f);
  nn_tensor_free(y);
  nn_tensor *sc = mk(0, NULL, NULL); /* scalar 1 */
  CHECK_EQ_INT(nn_broadcast_shape(&e, sc, a, &s), DLP_OK);
  CHECK(s.ndim == 3 && s.dims[1] == 1);
  CHECK_EQ_INT(nn_add(&e, a, sc, a), DLP_OK); /* in place, same shape */
  CHECK(a->data[0] == 2 && a->data[5] == 7);
  int64_t dc[1] = {2};
  nn_tensor *c = mk(1, dc, NULL);
  CHECK_EQ_INT(nn_broadcast_shape(&e, a, c, &s), DLP_ERR_ARG);
  CHECK(has(&e, "shapes 2x1x3 and 2 differ at dim 1 from the end"));
  CHECK_EQ_INT(nn_add(&e, b, sc, a), DLP_ERR_ARG); /* wrong output shape */
  CHECK(has(&e, "add: output has shape 2x1x3 but 4x1 is expected"));
  nn_tensor_free(a);
  nn_tensor_free(b);
  nn_tensor_free(c);
  nn_tensor_free(sc);
}

TEST(dense_and_batchnorm_by_hand) {
  dlp_err e = {0};
  int64_t dx[2] = {1, 2}, dw[2] = {2, 3}, dwt[2] = {3, 2}, dbias[1] = {3};
  float wv[6] = {1, 0, 1, 0, 1, 1}, wtv[6] = {1, 0, 0, 1, 1, 1};
  float bv[3] = {10, 20, -9};
  nn_tensor *x = mk(2, dx, NULL), *w = mk(2, dw, wv), *wt = mk(2, dwt, wtv);
  nn_tensor *b = mk(1, dbias, bv);
  nn_dense_attr a;
  nn_dense_attr_init(&a);
  nn_shape s;
  CHECK_EQ_INT(nn_dense_out_shape(&e, &a, x, w, &s), DLP_OK);
  nn_tensor *y = out_of(&s);
  a.act = NN_ACT_RELU;
  CHECK_EQ_INT(nn_dense(&e, &a, x, w, b, y), DLP_OK); /* [1,2,3] + bias */
  CHECK(y->data[0] == 11 && y->data[1] == 22 && y->data[2] == 0);
  a.transb = true;
  CHECK_EQ_INT(nn_dense(&e, &a, x, wt, b, y), DLP_OK);
  CHECK(y->data[0] == 11 && y->data[1] == 22 && y->data[2] == 0);
  CHECK_EQ_INT(nn_dense(&e, &a, x, w, b, y), DLP_ERR_ARG);
  CHECK(has(&e, "dense: input has 2 features but the weight 2x3 (transposed) "
                "expects 3"));
  nn_tensor_free(y);
  /* batchnorm: gamma 2, beta 1, mean 1, var 3, eps 1: 2(x-1)/2 + 1 = x */
  int64_t dn[4] = {1, 1, 2, 2}, dc[1] = {1};
  float g = 2, bt = 1, m = 1, v = 3;
  nn_tensor *xn = mk(4, dn, NULL), *yn = mk(4, dn, NULL);
  nn_tensor *tg = mk(1, dc, &g), *tb = mk(1, dc, &bt), *tm = mk(1, dc, &m),
            *tv = mk(1, dc, &v);
  CHECK_EQ_INT(nn_batchnorm(&e, 1.0f, xn, tg, tb, tm, tv, yn), DLP_OK);
  for (int i = 0; i < 4; i++)
    CHECK(yn->data[i] == xn->data[i]);
  CHECK_EQ_INT(nn_batchnorm(&e, 1.0f, xn, tg, b, tm, tv, yn), DLP_ERR_ARG);
  CHECK(has(&e, "batchnorm: beta has 3 values but the input has 1 channels"));
  nn_tensor_free(xn);
  nn_tensor_free(yn);
  nn_tensor_free(tg);
  nn_tensor_free(tb);
  nn_tensor_free(tm);
  nn_tensor_free(tv);
  nn_tensor_free(x);
  nn_tensor_free(w);
  nn_tensor_free(wt);
  nn_tensor_free(b);
}

TEST(concat_reshape_flatten_pad_by_hand) {
  dlp_err e = {0};
  int64_t d1[2] = {2, 1}, d2[2] = {2, 2};
  float v1[2] = {1, 2}, v2[4] = {3, 4, 5, 6};
  nn_tensor *a = mk(2, d1, v1), *b = mk(2, d2, v2);
  const nn_tensor *xs[2] = {a, b};
  nn_shape s;
  CHECK_EQ_INT(nn_concat_out_shape(&e, xs, 2, -1, &s), DLP_OK);
  nn_tensor *y = out_of(&s);
  CHECK_EQ_INT(nn_concat(&e, xs, 2, 1, y), DLP_OK);
  float want[6] = {1, 3, 4, 2, 5, 6};
  for (int i = 0; i < 6; i++)
    CHECK(y->data[i] == want[i]);
  CHECK_EQ_INT(nn_concat_out_shape(&e, xs, 2, 0, &s), DLP_ERR_ARG);
  CHECK(has(&e, "concat: input 1 has 2 at dim 1 but input 0 has 1"));
  int64_t shape[3] = {0, -1, 1};
  CHECK_EQ_INT(nn_reshape_out_shape(&e, y, shape, 3, &s), DLP_OK);
  CHECK(s.ndim == 3 && s.dims[0] == 2 && s.dims[1] == 3 && s.dims[2] == 1);
  int64_t bad[2] = {-1, -1};
  CHECK_EQ_INT(nn_reshape_out_shape(&e, y, bad, 2, &s), DLP_ERR_ARG);
  CHECK(has(&e, "more than one -1"));
  CHECK_EQ_INT(nn_flatten_out_shape(&e, y, 0, &s), DLP_OK);
  CHECK(s.ndim == 2 && s.dims[0] == 1 && s.dims[1] == 6);
  CHECK_EQ_INT(nn_flatten_out_shape(&e, y, 3, &s), DLP_ERR_ARG);
  nn_tensor_free(y);
  /* [1 2 3] padded by 2 each side */
  int64_t d3[1] = {3};
  nn_tensor *x = mk(1, d3, NULL);
  nn_pad_attr pa;
  nn_pad_attr_init(&pa);
  pa.pads[0] = pa.pads[1] = 2;
  pa.mode = NN_PAD_REFLECT;
  CHECK_EQ_INT(nn_pad_out_shape(&e, &pa, x, &s), DLP_OK);
  y = out_of(&s);
  float refl[7] = {3, 2, 1, 2, 3, 2, 1}, edge[7] = {1, 1, 1, 2, 3, 3, 3};
  CHECK_EQ_INT(nn_pad(&e, &pa, x, y), DLP_OK);
  for (int i = 0; i < 7; i++)
    CHECK(y->data[i] == refl[i]);
  pa.mode = NN_PAD_EDGE;
  CHECK_EQ_INT(nn_pad(&e, &pa, x, y), DLP_OK);
  for (int i = 0; i < 7; i++)
    CHECK(y->data[i] == edge[i]);
  pa.mode = NN_PAD_REFLECT;
  pa.pads[1] = 3;
  CHECK_EQ_INT(nn_pad_out_shape(&e, &pa, x, &s), DLP_ERR_ARG);
  nn_tensor_free(y);
  nn_tensor_free(x);
  nn_tensor_free(a);
  nn_tensor_free(b);
}

TEST(bad_shapes_give_clear_errors) {
  dlp_err e = {0};
  int64_t dx[4] = {1, 3, 5, 5}, dw[4] = {2, 4, 3, 3}, d3[3] = {3, 5, 5};
  nn_tensor *x = mk(4, dx, NULL), *w = mk(4, dw, NULL), *x3 = mk(3, d3, NULL);
  nn_conv2d_attr a;
  nn_conv2d_attr_init(&a);
  nn_shape s;
  CHECK_EQ_INT(nn_conv2d_out_shape(&e, &a, x, w, &s), DLP_ERR_ARG);
  CHECK_STR(e.msg, "conv2d: input has 3 channels but the weight expects 4 "
                   "(groups 1)");
  CHECK_EQ_INT(nn_conv2d_out_shape(&e, &a, x3, w, &s), DLP_ERR_ARG);
  CHECK(has(&e, "conv2d: input has shape 3x5x5, not NCHW"));
  CHECK_EQ_INT(nn_conv2d(NULL, &a, x, w, NULL, x), DLP_ERR_ARG); /* no err */
  a.pads[2] = -1;
  CHECK_EQ_INT(nn_conv2d_out_shape(&e, &a, x, w, &s), DLP_ERR_ARG);
  CHECK(has(&e, "pad 2 is negative"));
  nn_pool2d_attr p;
  nn_pool2d_attr_init(&p); /* kernel unset */
  CHECK_EQ_INT(nn_pool2d_out_shape(&e, &p, x, &s), DLP_ERR_ARG);
  CHECK(has(&e, "kernel (0, 0)"));
  p.kernel[0] = p.kernel[1] = 6;
  CHECK_EQ_INT(nn_pool2d_out_shape(&e, &p, x, &s), DLP_ERR_ARG);
  CHECK(has(&e, "larger than the padded 5x5 input"));
  int64_t d2[2] = {2, 3};
  nn_tensor *x2 = mk(2, d2, NULL);
  CHECK_EQ_INT(nn_global_pool_out_shape(&e, x2, &s), DLP_ERR_ARG);
  CHECK(has(&e, "global pool: input has shape 2x3"));
  nn_tensor_free(x2);
  nn_tensor_free(x);
  nn_tensor_free(w);
  nn_tensor_free(x3);
}

int main(void) {
  RUN(tensor_new_checks_shape_and_size);
  RUN(tensor_view_borrows_data);
  RUN(conv2d_3x3_on_4x4_by_hand);
  RUN(conv2d_depthwise_scales_each_channel);
  RUN(same_padding_matches_tf_formula);
  RUN(maxpool_ceil_mode_by_hand);
  RUN(avgpool_counts_padding_only_when_asked);
  RUN(global_pool_reduces_spatial_dims);
  RUN(softmax_sums_to_one_and_is_stable);
  RUN(activations_by_hand);
  RUN(broadcasting_shapes_and_values);
  RUN(dense_and_batchnorm_by_hand);
  RUN(concat_reshape_flatten_pad_by_hand);
  RUN(bad_shapes_give_clear_errors);
  return test_summary();
}
