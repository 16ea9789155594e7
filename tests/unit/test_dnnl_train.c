/* test_dnnl_train.c - the oneDNN training convolution (dnnl_train.h)
 * against the reference kernels (nn_conv2d, nn_conv2d_backward_data,
 * nn_conv2d_backward_weights of nn.h / grad.h) over many shapes: 1x1, 3x3,
 * 5x5, depthwise with multiplier 1 and 2, groups 2, strides 1 and 2,
 * dilation 2, asymmetric padding, with and without bias, batch 1 and 3.
 * The tolerance is fp32 summation-order noise: 1e-4 of the largest
 * magnitude of the reference output (sums of up to a few thousand O(1)
 * products). Also: run-to-run bit identity, two batch sizes on one conv,
 * and shape errors. Then the threaded kernels of the rest of a step (batch
 * norm, activations, clip, pad) against their reference kernels. */
#include "dnnl_train.h"
#include "grad.h"
#include "test.h"

#include <math.h>
#include <string.h>

static dlp_rng rng;

/* Asserts a call on the local dlp_err e succeeded, printing its message. */
#define OK(call)                                                               \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != DLP_OK) {                                                       \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, e.msg);    \
      test_failed_checks_++;                                                   \
    }                                                                          \
  } while (0)

static nn_tensor *rnd(int ndim, const int64_t *dims) {
  nn_tensor *t = NULL;
  if (nn_tensor_new(NULL, ndim, dims, &t) != DLP_OK) return NULL;
  for (int64_t i = 0; i < nn_tensor_numel(t); i++)
    t->data[i] = (float)(2 * dlp_rng_uniform(&rng) - 1);
  return t;
}

static nn_tensor *zeros(int ndim, const int64_t *dims) {
  nn_tensor *t = NULL;
  nn_tensor_new(NULL, ndim, dims, &t);
  return t;
}

/* max |a - b| <= 1e-4 * max(1, max |b|) */
static bool close(const nn_tensor *a, const nn_tensor *b, const char *what,
                  int id) {
  double worst = 0, scale = 1;
  int64_t n = nn_tensor_numel(b);
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a->data[i] - b->data[i]);
    if (!(d <= worst)) worst = d; /* NaN sticks */
    if (fabs(b->data[i]) > scale) scale = fabs(b->data[i]);
  }
  bool ok = worst <= 1e-4 * scale;
  if (!ok)
    fprintf(stderr, "case %d %s: max diff %g (scale %g)\n", id, what, worst,
            scale);
  return ok;
}

typedef struct conv_case {
  int64_t n, c, h, w, o, kh, kw;
  int groups, sh, sw, dil, pads[4];
  bool bias;
} conv_case;

static const conv_case cases[] = {
    {1, 8, 7, 9, 16, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true},    /* 1x1 */
    {3, 16, 6, 6, 8, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, false},   /* 1x1 */
    {3, 5, 9, 8, 7, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, true},     /* 3x3 */
    {2, 3, 11, 10, 16, 3, 3, 1, 2, 2, 1, {0, 0, 1, 1}, false}, /* stem pad */
    {1, 4, 10, 10, 6, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, true},   /* 5x5 */
    {3, 16, 8, 8, 16, 3, 3, 16, 1, 1, 1, {1, 1, 1, 1}, false}, /* dw */
    {2, 24, 9, 9, 24, 3, 3, 24, 2, 2, 1, {0, 0, 1, 1}, true},  /* dw s2 */
    {1, 8, 7, 7, 16, 3, 3, 8, 1, 1, 1, {1, 1, 1, 1}, true},    /* dw x2 */
    {3, 6, 8, 8, 4, 3, 3, 2, 1, 1, 1, {1, 1, 1, 1}, true},     /* groups 2 */
    {2, 5, 12, 12, 6, 3, 3, 1, 1, 1, 2, {2, 2, 2, 2}, false},  /* dil 2 */
    {1, 16, 9, 9, 16, 3, 3, 16, 1, 1, 2, {2, 1, 2, 3}, true},  /* dw dil */
    {3, 7, 9, 11, 5, 3, 2, 1, 2, 1, 1, {1, 0, 2, 1}, true},    /* asym */
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static void attr_of(const conv_case *k, nn_conv2d_attr *a) {
  nn_conv2d_attr_init(a);
  a->stride[0] = k->sh;
  a->stride[1] = k->sw;
  a->dilation[0] = a->dilation[1] = k->dil;
  memcpy(a->pads, k->pads, sizeof a->pads);
  a->groups = k->groups;
}

/* One case: forward, dx, dw, db against the reference. */
static void run_case(nn_dnnl_train *d, const conv_case *k, int id) {
  dlp_err e = {0};
  nn_conv2d_attr a;
  attr_of(k, &a);
  int64_t xd[4] = {k->n, k->c, k->h, k->w};
  int64_t wd[4] = {k->o, k->c / k->groups, k->kh, k->kw};
  int64_t bd[1] = {k->o};
  nn_tensor *x = rnd(4, xd), *w = rnd(4, wd), *b = k->bias ? rnd(1, bd) : NULL;
  nn_shape ys;
  OK(nn_conv2d_out_shape(&e, &a, x, w, &ys));
  nn_tensor *y0 = zeros(4, ys.dims), *y1 = zeros(4, ys.dims);
  nn_tensor *dy = rnd(4, ys.dims);
  nn_tensor *dx0 = zeros(4, xd), *dx1 = zeros(4, xd);
  nn_tensor *dw0 = zeros(4, wd), *dw1 = zeros(4, wd);
  nn_tensor *db0 = zeros(1, bd), *db1 = zeros(1, bd);
  OK(nn_conv2d(&e, &a, x, w, b, y0));
  OK(nn_conv2d_backward_data(&e, &a, w, dy, dx0));
  OK(nn_conv2d_backward_weights(&e, &a, x, dy, dw0, k->bias ? db0 : NULL));
  nn_dnnl_conv *c = NULL;
  OK(nn_dnnl_conv_new(&e, d, &a, k->bias, &c));
  OK(nn_dnnl_conv_forward(&e, c, x, w, b, y1));
  OK(nn_dnnl_conv_backward(&e, c, x, w, dy, dx1, dw1, k->bias ? db1 : NULL));
  CHECK(close(y1, y0, "forward", id));
  CHECK(close(dx1, dx0, "backward data", id));
  CHECK(close(dw1, dw0, "backward weights", id));
  if (k->bias) CHECK(close(db1, db0, "backward bias", id));
  /* dw alone (no dx): the path that reorders dy itself */
  memset(dw1->data, 0, (size_t)nn_tensor_numel(dw1) * sizeof(float));
  OK(nn_dnnl_conv_backward(&e, c, x, w, dy, NULL, dw1, NULL));
  CHECK(close(dw1, dw0, "backward weights alone", id));
  nn_dnnl_conv_free(c);
  nn_tensor *all[] = {x, w, b, y0, y1, dy, dx0, dx1, dw0, dw1, db0, db1};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    nn_tensor_free(all[i]);
}

TEST(conv_matches_the_reference_kernels) {
  for (int threads = 1; threads <= 2; threads++) {
    nn_dnnl_train *d = NULL;
    dlp_err e = {0};
    OK(nn_dnnl_train_new(&e, threads, &d));
    for (int i = 0; d && i < N_CASES; i++)
      run_case(d, &cases[i], i);
    nn_dnnl_train_free(d);
  }
}

/* Two runs of the same conv (and a second batch size in between) give
 * bit-identical results. */
TEST(conv_is_deterministic_and_serves_two_batch_sizes) {
  dlp_err e = {0};
  nn_dnnl_train *d = NULL;
  OK(nn_dnnl_train_new(&e, 2, &d));
  nn_conv2d_attr a;
  attr_of(&cases[6], &a);
  int64_t xd[4] = {4, 24, 9, 9}, xd1[4] = {1, 24, 9, 9};
  int64_t wd[4] = {24, 1, 3, 3}, bd[1] = {24};
  int64_t yd[4] = {4, 24, 4, 4}, yd1[4] = {1, 24, 4, 4};
  nn_tensor *x = rnd(4, xd), *w = rnd(4, wd), *b = rnd(1, bd), *dy = rnd(4, yd);
  nn_tensor *y[2] = {zeros(4, yd), zeros(4, yd)};
  nn_tensor *dw[2] = {zeros(4, wd), zeros(4, wd)};
  nn_tensor *dx[2] = {zeros(4, xd), zeros(4, xd)};
  nn_tensor *db[2] = {zeros(1, bd), zeros(1, bd)};
  nn_tensor *x1 = rnd(4, xd1), *y1 = zeros(4, yd1), *y1r = zeros(4, yd1);
  nn_dnnl_conv *c = NULL;
  OK(nn_dnnl_conv_new(&e, d, &a, true, &c));
  for (int r = 0; c && r < 2; r++) {
    OK(nn_dnnl_conv_forward(&e, c, x, w, b, y[r]));
    OK(nn_dnnl_conv_backward(&e, c, x, w, dy, dx[r], dw[r], db[r]));
    OK(nn_dnnl_conv_forward(&e, c, x1, w, b, y1));
  }
  size_t bytes = (size_t)nn_tensor_numel(y[0]) * sizeof(float);
  CHECK(memcmp(y[0]->data, y[1]->data, bytes) == 0);
  CHECK(memcmp(dx[0]->data, dx[1]->data,
               (size_t)nn_tensor_numel(x) * sizeof(float)) == 0);
  CHECK(memcmp(dw[0]->data, dw[1]->data,
               (size_t)nn_tensor_numel(w) * sizeof(float)) == 0);
  CHECK(memcmp(db[0]->data, db[1]->data, 24 * sizeof(float)) == 0);
  OK(nn_conv2d(&e, &a, x1, w, b, y1r));
  CHECK(close(y1, y1r, "batch 1 after batch 4", 0));
  /* shape errors: a wrong output, a bias on a conv made without one */
  CHECK_EQ_INT(nn_dnnl_conv_forward(&e, c, x, w, b, y1), DLP_ERR_ARG);
  CHECK_EQ_INT(nn_dnnl_conv_backward(&e, c, x, w, dy, x1, NULL, NULL),
               DLP_ERR_ARG);
  nn_dnnl_conv *nb = NULL;
  OK(nn_dnnl_conv_new(&e, d, &a, false, &nb));
  CHECK_EQ_INT(nn_dnnl_conv_forward(&e, nb, x, w, b, y[0]), DLP_ERR_ARG);
  a.act = NN_ACT_RELU;
  nn_dnnl_conv *bad = NULL;
  CHECK_EQ_INT(nn_dnnl_conv_new(&e, d, &a, false, &bad), DLP_ERR_ARG);
  CHECK(bad == NULL);
  nn_dnnl_conv_free(nb);
  nn_dnnl_conv_free(c);
  nn_dnnl_train_free(d);
  nn_tensor *all[] = {x,     w,     b,     dy,    y[0], y[1], dw[0], dw[1],
                      dx[0], dx[1], db[0], db[1], x1,   y1,   y1r};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    nn_tensor_free(all[i]);
}

/* Fills t with uniform values in [-8, 8) and plants the edge cases of the
 * activations' branches: -0, 0, 6, NaN. */
static void fill_edges(nn_tensor *t) {
  int64_t n = nn_tensor_numel(t);
  for (int64_t i = 0; i < n; i++)
    t->data[i] = (float)(16 * dlp_rng_uniform(&rng) - 8);
  float edge[4] = {-0.0f, 0.0f, 6.0f, NAN};
  for (int k = 0; k < 4 && n > 40; k++)
    t->data[7 + 11 * k] = edge[k];
}

static bool same_bits(const nn_tensor *a, const nn_tensor *b) {
  return memcmp(a->data, b->data, (size_t)nn_tensor_numel(a) * sizeof(float)) ==
         0;
}

/* Equal as numbers (-0 == 0, NaN where the other has NaN). */
static bool same_numbers(const nn_tensor *a, const nn_tensor *b) {
  for (int64_t i = 0; i < nn_tensor_numel(a); i++)
    if (!(a->data[i] == b->data[i] || (isnan(a->data[i]) && isnan(b->data[i]))))
      return false;
  return true;
}

/* The threaded elementwise and pad kernels against the reference ones:
 * bit-identical (the pad gradient equal as numbers), on 1 and 3 threads, for a
 * small tensor (one range) and a large one (many). */
TEST(threaded_elementwise_kernels_equal_the_reference) {
  int64_t shapes[2][4] = {{3, 5, 7, 9}, {2, 40, 64, 64}};
  nn_act acts[3] = {NN_ACT_RELU6, NN_ACT_RELU, NN_ACT_SIGMOID};
  for (int si = 0; si < 2; si++) {
    int64_t *d = shapes[si];
    nn_tensor *x = zeros(4, d), *dy = zeros(4, d), *want = zeros(4, d),
              *got = zeros(4, d);
    fill_edges(x);
    fill_edges(dy);
    for (int threads = 1; threads <= 3; threads += 2) {
      dlp_err e = {0};
      for (int k = 0; k < 3; k++) {
        OK(nn_act_apply(&e, acts[k], 0, x, want));
        OK(nn_fast_act(&e, acts[k], 0, x, got, threads));
        CHECK(same_bits(got, want));
        OK(nn_act_backward(&e, acts[k], 0, x, NULL, dy, want));
        OK(nn_fast_act_backward(&e, acts[k], 0, x, NULL, dy, got, threads));
        CHECK(same_bits(got, want));
      }
      OK(nn_clip(&e, -1, 2, x, want));
      OK(nn_fast_clip(&e, -1, 2, x, got, threads));
      CHECK(same_bits(got, want));
      OK(nn_clip_backward(&e, -1, 2, x, dy, want));
      OK(nn_fast_clip_backward(&e, -1, 2, x, dy, got, threads));
      CHECK(same_bits(got, want));
      CHECK_EQ_INT(nn_fast_clip_backward(&e, 2, -1, x, dy, got, threads),
                   DLP_ERR_ARG);
      /* spatial constant pad (1, 2, 0, 3), value 0.5, and its gradient */
      nn_pad_attr pa;
      nn_pad_attr_init(&pa);
      pa.pads[2] = 1, pa.pads[3] = 2, pa.pads[7] = 3;
      pa.value = 0.5f;
      int64_t pd[4] = {d[0], d[1], d[2] + 1, d[3] + 5};
      nn_tensor *pw = zeros(4, pd), *pg = zeros(4, pd);
      OK(nn_pad(&e, &pa, x, pw));
      OK(nn_fast_pad(&e, &pa, x, pg, threads));
      CHECK(same_bits(pg, pw));
      OK(nn_pad_backward(&e, &pa, pw, want));
      OK(nn_fast_pad_backward(&e, &pa, pw, got, threads));
      /* the reference sums into zeros, turning -0 into 0; here it is a copy */
      CHECK(same_numbers(got, want));
      pa.pads[1] = 1; /* a channel pad: not the fast kernel's case */
      CHECK_EQ_INT(nn_fast_pad(&e, &pa, x, pg, threads), DLP_ERR_UNSUPPORTED);
      nn_tensor_free(pw);
      nn_tensor_free(pg);
    }
    nn_tensor *all[] = {x, dy, want, got};
    for (size_t i = 0; i < 4; i++)
      nn_tensor_free(all[i]);
  }
}

/* Batch norm: the fast kernels against nn_batchnorm_train / _backward
 * within fp32 rounding (the sums are ordered differently), and bit-
 * identical between 1 and 3 threads. */
TEST(threaded_batchnorm_matches_the_reference) {
  int64_t d[4] = {4, 24, 30, 30}, cd[1] = {24};
  nn_tensor *x = rnd(4, d), *dy = rnd(4, d), *g = rnd(1, cd), *b = rnd(1, cd);
  for (int64_t i = 0; i < nn_tensor_numel(x); i++)
    x->data[i] = 3 + 2 * x->data[i]; /* mean 3: centring matters */
  nn_tensor *y[3], *dx[3], *dg[3], *db[3], *rm[3], *rv[3];
  float mean[3][24], inv[3][24];
  for (int r = 0; r < 3; r++) {
    y[r] = zeros(4, d);
    dx[r] = zeros(4, d);
    dg[r] = zeros(1, cd);
    db[r] = zeros(1, cd);
    rm[r] = zeros(1, cd);
    rv[r] = zeros(1, cd);
    for (int c = 0; c < 24; c++)
      rv[r]->data[c] = 1;
  }
  dlp_err e = {0};
  OK(nn_batchnorm_train(&e, 1e-3f, 0.1f, x, g, b, rm[0], rv[0], y[0], mean[0],
                        inv[0]));
  OK(nn_batchnorm_backward(&e, x, g, mean[0], inv[0], dy, dx[0], dg[0], db[0]));
  for (int r = 1; r < 3; r++) {
    int threads = r == 1 ? 1 : 3;
    OK(nn_fast_batchnorm_train(&e, 1e-3f, 0.1f, x, g, b, rm[r], rv[r], y[r],
                               mean[r], inv[r], threads));
    OK(nn_fast_batchnorm_backward(&e, x, g, mean[r], inv[r], dy, dx[r], dg[r],
                                  db[r], threads));
    CHECK(close(y[r], y[0], "bn y", r));
    CHECK(close(dx[r], dx[0], "bn dx", r));
    CHECK(close(dg[r], dg[0], "bn dgamma", r));
    CHECK(close(db[r], db[0], "bn dbeta", r));
    CHECK(close(rm[r], rm[0], "bn running mean", r));
    CHECK(close(rv[r], rv[0], "bn running var", r));
    for (int c = 0; c < 24; c++) {
      CHECK_NEAR(mean[r][c], mean[0][c], 1e-5);
      CHECK_NEAR(inv[r][c], inv[0][c], 1e-5 * inv[0][c]);
    }
  }
  CHECK(same_bits(y[1], y[2]) && same_bits(dx[1], dx[2]));
  CHECK(same_bits(dg[1], dg[2]) && same_bits(rv[1], rv[2]));
  nn_tensor *bad = zeros(1, (int64_t[]){23});
  CHECK_EQ_INT(nn_fast_batchnorm_train(&e, 1e-3f, 0.1f, x, bad, b, NULL, NULL,
                                       y[1], mean[1], inv[1], 1),
               DLP_ERR_ARG);
  nn_tensor_free(bad);
  for (int r = 0; r < 3; r++) {
    nn_tensor *all[] = {y[r], dx[r], dg[r], db[r], rm[r], rv[r]};
    for (size_t i = 0; i < 6; i++)
      nn_tensor_free(all[i]);
  }
  nn_tensor *all[] = {x, dy, g, b};
  for (size_t i = 0; i < 4; i++)
    nn_tensor_free(all[i]);
}

int main(void) {
  dlp_rng_seed(&rng, 20261124);
  RUN(conv_matches_the_reference_kernels);
  RUN(conv_is_deterministic_and_serves_two_batch_sizes);
  RUN(threaded_elementwise_kernels_equal_the_reference);
  RUN(threaded_batchnorm_matches_the_reference);
  return test_summary();
}
