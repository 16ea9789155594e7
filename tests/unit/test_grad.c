/* test_grad.c - the reference backward kernels (grad.h) against central
 * finite differences of the forward reference kernels (nn.h).
 *
 * Every case draws small random inputs, takes the scalar loss
 * L = sum(p * y) for a random projection p (so dL/dy = p is the dy handed
 * to the backward kernel), and compares each analytic gradient element
 * with (L(v + h) - L(v - h)) / 2h, L summed in double over the float
 * forward output. With h = 1e-2 and O(1) inputs the truncation error is
 * about h^2 |f'''| / 6 ~ 2e-5 and the float rounding of the forward pass
 * about 1e-7 * |L| / h ~ 1e-5 (|L| ~ 10), so a bound of 1e-3 times the
 * largest gradient (at least 1) is loose for smooth ops yet tight enough
 * to catch any wrong term (those are O(0.1) or more). Kinks (relu, clip,
 * max pooling's choice) are kept more than 2h away from every input.
 * Also: shape-mismatch errors, thread-count invariance of the convolution
 * gradients, batch-norm running statistics, the loss value, dropout. */
#include "grad.h"
#include "test.h"

#include <stdint.h>

#define FD_H 1e-2
#define FD_TOL 1e-3

static dlp_rng rng;

/* A new tensor of shape dims with uniform values in [lo, hi). */
static nn_tensor *rnd(int ndim, const int64_t *dims, float lo, float hi) {
  nn_tensor *t = NULL;
  if (nn_tensor_new(NULL, ndim, dims, &t) != DLP_OK) return NULL;
  for (int64_t i = 0; i < nn_tensor_numel(t); i++)
    t->data[i] = lo + (hi - lo) * (float)dlp_rng_uniform(&rng);
  return t;
}

static nn_tensor *zeros_like_shape(const nn_shape *s) {
  nn_tensor *t = NULL;
  nn_tensor_new(NULL, s->ndim, s->dims, &t);
  return t;
}

static nn_tensor *zeros_like(const nn_tensor *x) {
  nn_shape s = nn_tensor_shape(x);
  return zeros_like_shape(&s);
}

/* Moves every value at least `gap` away from each kink in ks[0..nk). */
static void avoid(nn_tensor *t, const float *ks, int nk, float gap) {
  for (int64_t i = 0; i < nn_tensor_numel(t); i++)
    for (int k = 0; k < nk; k++) {
      float d = t->data[i] - ks[k];
      if (fabsf(d) < gap) t->data[i] = ks[k] + (d < 0 ? -gap : gap);
    }
}

static bool starts(const dlp_err *e, const char *prefix) {
  if (strncmp(e->msg, prefix, strlen(prefix)) != 0) {
    fprintf(stderr, "message \"%s\" does not start with \"%s\"\n", e->msg,
            prefix);
    return false;
  }
  return true;
}

/* ------------------------------------------------------------------------
 * The finite-difference harness
 * ------------------------------------------------------------------------ */

/* A forward pass: y = f(in[0..]) with parameters p. */
typedef int (*fwd_fn)(const void *p, nn_tensor *const *in, nn_tensor *y);

static double loss_of(fwd_fn f, const void *p, nn_tensor *const *in,
                      nn_tensor *y, const nn_tensor *proj) {
  if (f(p, in, y) != DLP_OK) return NAN;
  double l = 0;
  for (int64_t i = 0; i < nn_tensor_numel(y); i++)
    l += (double)proj->data[i] * y->data[i];
  return l;
}

/* Compares grad (the analytic dL/d in[which]) with central differences. */
static void fd_check(const char *name, fwd_fn f, const void *p,
                     nn_tensor *const *in, int which, nn_tensor *y,
                     const nn_tensor *proj, const nn_tensor *grad) {
  nn_tensor *t = in[which];
  CHECK(grad && nn_tensor_numel(grad) == nn_tensor_numel(t));
  if (!grad) return;
  double worst = 0, scale = 1;
  for (int64_t i = 0; i < nn_tensor_numel(t); i++)
    scale = fmax(scale, fabs(grad->data[i]));
  for (int64_t i = 0; i < nn_tensor_numel(t); i++) {
    float v = t->data[i];
    t->data[i] = (float)(v + FD_H);
    double lp = loss_of(f, p, in, y, proj);
    t->data[i] = (float)(v - FD_H);
    double lm = loss_of(f, p, in, y, proj);
    t->data[i] = v;
    double num = (lp - lm) / (2 * FD_H);
    double err = fabs(num - grad->data[i]);
    if (!(err <= worst)) worst = err;
  }
  if (!(worst <= FD_TOL * scale))
    fprintf(stderr, "%s: input %d max error %.3g (scale %.3g)\n", name, which,
            worst, scale);
  CHECK(worst <= FD_TOL * scale);
  f(p, in, y); /* leave y consistent with the inputs */
}

/* ------------------------------------------------------------------------
 * Activations, clip, softmax
 * ------------------------------------------------------------------------ */

typedef struct act_p {
  nn_act act;
  float alpha, lo, hi;
  int axis;
} act_p;

static int fwd_act(const void *p, nn_tensor *const *in, nn_tensor *y) {
  const act_p *a = p;
  return nn_act_apply(NULL, a->act, a->alpha, in[0], y);
}

static int fwd_clip(const void *p, nn_tensor *const *in, nn_tensor *y) {
  const act_p *a = p;
  return nn_clip(NULL, a->lo, a->hi, in[0], y);
}

static int fwd_softmax(const void *p, nn_tensor *const *in, nn_tensor *y) {
  return nn_softmax(NULL, ((const act_p *)p)->axis, in[0], y);
}

TEST(act_backward_matches_finite_differences) {
  static const float kinks[] = {0, 6, -2.5f, 2.5f};
  int64_t d[3] = {2, 3, 5};
  for (int act = 0; act < NN_ACT_COUNT; act++)
    for (int with_y = 0; with_y < 2; with_y++) {
      act_p p = {(nn_act)act, 0.1f, 0, 0, 0};
      nn_tensor *x = rnd(3, d, -8, 8), *y = zeros_like(x);
      nn_tensor *dy = rnd(3, d, -1, 1), *dx = zeros_like(x);
      avoid(x, kinks, 4, 0.05f);
      nn_tensor *in[1] = {x};
      CHECK_EQ_INT(fwd_act(&p, in, y), DLP_OK);
      CHECK_EQ_INT(
          nn_act_backward(NULL, p.act, p.alpha, x, with_y ? y : NULL, dy, dx),
          DLP_OK);
      fd_check(nn_act_name(p.act), fwd_act, &p, in, 0, y, dy, dx);
      /* in place: dx may be dy */
      CHECK_EQ_INT(nn_act_backward(NULL, p.act, p.alpha, x, NULL, dy, dy),
                   DLP_OK);
      CHECK(memcmp(dx->data, dy->data, 30 * sizeof(float)) == 0);
      nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(dy);
      nn_tensor_free(dx);
    }
}

TEST(clip_backward_is_zero_at_and_beyond_the_bounds) {
  int64_t d[2] = {4, 6};
  act_p p = {0, 0, -0.5f, 0.7f, 0};
  static const float kinks[] = {-0.5f, 0.7f};
  nn_tensor *x = rnd(2, d, -2, 2), *y = zeros_like(x);
  nn_tensor *dy = rnd(2, d, -1, 1), *dx = zeros_like(x);
  avoid(x, kinks, 2, 0.05f);
  nn_tensor *in[1] = {x};
  CHECK_EQ_INT(nn_clip_backward(NULL, p.lo, p.hi, x, dy, dx), DLP_OK);
  fd_check("clip", fwd_clip, &p, in, 0, y, dy, dx);
  x->data[0] = -0.5f; /* PyTorch's hardtanh: 0 at the bound itself */
  x->data[1] = 0.7f;
  CHECK_EQ_INT(nn_clip_backward(NULL, p.lo, p.hi, x, dy, dx), DLP_OK);
  CHECK(dx->data[0] == 0 && dx->data[1] == 0);
  nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(dy), nn_tensor_free(dx);
}

TEST(softmax_backward_matches_finite_differences) {
  int64_t d[3] = {2, 4, 3};
  for (int axis = -3; axis < 3; axis++) {
    act_p p = {0, 0, 0, 0, axis};
    nn_tensor *x = rnd(3, d, -3, 3), *y = zeros_like(x);
    nn_tensor *dy = rnd(3, d, -1, 1), *dx = zeros_like(x);
    nn_tensor *in[1] = {x};
    CHECK_EQ_INT(fwd_softmax(&p, in, y), DLP_OK);
    CHECK_EQ_INT(nn_softmax_backward(NULL, axis, y, dy, dx), DLP_OK);
    fd_check("softmax", fwd_softmax, &p, in, 0, y, dy, dx);
    nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(dy);
    nn_tensor_free(dx);
  }
}

/* ------------------------------------------------------------------------
 * Dense and convolution
 * ------------------------------------------------------------------------ */

typedef struct layer_p {
  nn_dense_attr dense;
  nn_conv2d_attr conv;
} layer_p;

static int fwd_dense(const void *p, nn_tensor *const *in, nn_tensor *y) {
  return nn_dense(NULL, &((const layer_p *)p)->dense, in[0], in[1], in[2], y);
}

static int fwd_conv(const void *p, nn_tensor *const *in, nn_tensor *y) {
  return nn_conv2d(NULL, &((const layer_p *)p)->conv, in[0], in[1], in[2], y);
}

TEST(dense_backward_matches_finite_differences) {
  for (int transb = 0; transb < 2; transb++) {
    layer_p p;
    nn_dense_attr_init(&p.dense);
    p.dense.transb = transb;
    int64_t dx_[3] = {2, 3, 5}, dw_[2] = {transb ? 4 : 5, transb ? 5 : 4};
    int64_t db_[1] = {4};
    nn_tensor *x = rnd(3, dx_, -1, 1), *w = rnd(2, dw_, -1, 1);
    nn_tensor *b = rnd(1, db_, -1, 1);
    nn_shape s;
    CHECK_EQ_INT(nn_dense_out_shape(NULL, &p.dense, x, w, &s), DLP_OK);
    nn_tensor *y = zeros_like_shape(&s), *dy = rnd(s.ndim, s.dims, -1, 1);
    nn_tensor *gx = zeros_like(x), *gw = zeros_like(w), *gb = zeros_like(b);
    nn_tensor *in[3] = {x, w, b};
    CHECK_EQ_INT(nn_dense_backward(NULL, &p.dense, x, w, dy, gx, gw, gb),
                 DLP_OK);
    fd_check("dense x", fwd_dense, &p, in, 0, y, dy, gx);
    fd_check("dense w", fwd_dense, &p, in, 1, y, dy, gw);
    fd_check("dense b", fwd_dense, &p, in, 2, y, dy, gb);
    /* optional outputs: each alone gives the same values */
    nn_tensor *gw2 = zeros_like(w);
    CHECK_EQ_INT(nn_dense_backward(NULL, &p.dense, x, w, dy, NULL, gw2, NULL),
                 DLP_OK);
    CHECK(memcmp(gw->data, gw2->data, 20 * sizeof(float)) == 0);
    nn_tensor *all[] = {x, w, b, y, dy, gx, gw, gb, gw2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
      nn_tensor_free(all[i]);
  }
}

typedef struct conv_case {
  int64_t n, c, h, w, o, kh, kw;
  int stride[2], dilation[2], pads[4], groups;
} conv_case;

static const conv_case conv_cases[] = {
    {2, 3, 6, 5, 4, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, 1},
    {1, 4, 7, 8, 6, 3, 2, {2, 2}, {1, 1}, {0, 1, 2, 0}, 2}, /* groups, asym */
    {2, 3, 9, 7, 2, 3, 3, {1, 2}, {2, 1}, {2, 1, 0, 2}, 1}, /* dilation */
    {2, 5, 6, 6, 5, 3, 3, {2, 2}, {1, 1}, {1, 1, 1, 1}, 5}, /* depthwise */
    {1, 6, 5, 4, 3, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, 1}, /* pointwise */
    {1, 2, 5, 5, 4, 2, 2, {3, 3}, {1, 1}, {1, 1, 1, 1}, 1}, /* skips */
    {2, 4, 9, 8, 6, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, 2}, /* large plane */
    {2, 6, 3, 2, 9, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, 3}, /* small, grouped */
    {1, 3, 6, 5, 2, 1, 1, {2, 1}, {1, 1}, {0, 1, 0, 0}, 1}, /* 1x1, strided */
};

static void conv_setup(const conv_case *k, layer_p *p) {
  nn_conv2d_attr_init(&p->conv);
  memcpy(p->conv.stride, k->stride, sizeof k->stride);
  memcpy(p->conv.dilation, k->dilation, sizeof k->dilation);
  memcpy(p->conv.pads, k->pads, sizeof k->pads);
  p->conv.groups = k->groups;
}

TEST(conv2d_backward_matches_finite_differences) {
  for (size_t ci = 0; ci < sizeof conv_cases / sizeof *conv_cases; ci++) {
    const conv_case *k = &conv_cases[ci];
    layer_p p;
    conv_setup(k, &p);
    int64_t dx_[4] = {k->n, k->c, k->h, k->w};
    int64_t dw_[4] = {k->o, k->c / k->groups, k->kh, k->kw}, db_[1] = {k->o};
    nn_tensor *x = rnd(4, dx_, -1, 1), *w = rnd(4, dw_, -1, 1);
    nn_tensor *b = rnd(1, db_, -1, 1);
    nn_shape s;
    CHECK_EQ_INT(nn_conv2d_out_shape(NULL, &p.conv, x, w, &s), DLP_OK);
    nn_tensor *y = zeros_like_shape(&s), *dy = rnd(4, s.dims, -1, 1);
    nn_tensor *gx = zeros_like(x), *gw = zeros_like(w), *gb = zeros_like(b);
    nn_tensor *in[3] = {x, w, b};
    CHECK_EQ_INT(nn_conv2d_backward_data(NULL, &p.conv, w, dy, gx), DLP_OK);
    CHECK_EQ_INT(nn_conv2d_backward_weights(NULL, &p.conv, x, dy, gw, gb),
                 DLP_OK);
    char name[32];
    snprintf(name, sizeof name, "conv case %zu", ci);
    fd_check(name, fwd_conv, &p, in, 0, y, dy, gx);
    fd_check(name, fwd_conv, &p, in, 1, y, dy, gw);
    fd_check(name, fwd_conv, &p, in, 2, y, dy, gb);
    nn_tensor *all[] = {x, w, b, y, dy, gx, gw, gb};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
      nn_tensor_free(all[i]);
  }
}

/* Each dx plane and each output channel's dw is summed by one thread in a
 * fixed order: the bits must not change with the thread count. */
static void thread_invariance(conv_case k) {
  layer_p p;
  conv_setup(&k, &p);
  int64_t dx_[4] = {k.n, k.c, k.h, k.w}, db_[1] = {k.o};
  int64_t dw_[4] = {k.o, k.c / k.groups, k.kh, k.kw};
  nn_tensor *x = rnd(4, dx_, -1, 1), *w = rnd(4, dw_, -1, 1);
  nn_shape s;
  CHECK_EQ_INT(nn_conv2d_out_shape(NULL, &p.conv, x, w, &s), DLP_OK);
  nn_tensor *dy = rnd(4, s.dims, -1, 1);
  nn_tensor *gx1 = zeros_like(x), *gw1 = zeros_like(w), *gb1 = NULL;
  nn_tensor_new(NULL, 1, db_, &gb1);
  CHECK_EQ_INT(nn_conv2d_backward_data_mt(NULL, &p.conv, w, dy, gx1, 1),
               DLP_OK);
  CHECK_EQ_INT(nn_conv2d_backward_weights_mt(NULL, &p.conv, x, dy, gw1, gb1, 1),
               DLP_OK);
  static const int threads[] = {2, 3, 5, 64};
  for (int t = 0; t < 4; t++) {
    nn_tensor *gx = zeros_like(x), *gw = zeros_like(w), *gb = zeros_like(gb1);
    CHECK_EQ_INT(
        nn_conv2d_backward_data_mt(NULL, &p.conv, w, dy, gx, threads[t]),
        DLP_OK);
    CHECK_EQ_INT(
        nn_conv2d_backward_weights_mt(NULL, &p.conv, x, dy, gw, gb, threads[t]),
        DLP_OK);
    CHECK(memcmp(gx->data, gx1->data,
                 (size_t)nn_tensor_numel(x) * sizeof(float)) == 0);
    CHECK(memcmp(gw->data, gw1->data,
                 (size_t)nn_tensor_numel(w) * sizeof(float)) == 0);
    CHECK(memcmp(gb->data, gb1->data, (size_t)k.o * sizeof(float)) == 0);
    nn_tensor_free(gx), nn_tensor_free(gw), nn_tensor_free(gb);
  }
  nn_tensor *all[] = {x, w, dy, gx1, gw1, gb1};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    nn_tensor_free(all[i]);
}

TEST(conv2d_backward_is_thread_count_invariant) {
  thread_invariance(
      (conv_case){3, 8, 13, 11, 12, 3, 3, {2, 1}, {1, 1}, {1, 1, 1, 0}, 4});
  thread_invariance(/* pointwise on a small plane: the transposed path */
                    (conv_case){4,
                                24,
                                3,
                                3,
                                40,
                                1,
                                1,
                                {1, 1},
                                {1, 1},
                                {0, 0, 0, 0},
                                1});
}

/* ------------------------------------------------------------------------
 * Batch norm (training mode)
 * ------------------------------------------------------------------------ */

/* The training forward pass built independently: batch mean and biased
 * variance computed here in double, then nn.h's inference kernel. */
static int fwd_bn(const void *p, nn_tensor *const *in, nn_tensor *y) {
  const nn_tensor *x = in[0];
  int64_t n = x->dims[0], c = x->dims[1], inner = nn_tensor_numel(x) / n / c;
  int64_t d1[1] = {c};
  nn_tensor *mean = NULL, *var = NULL;
  nn_tensor_new(NULL, 1, d1, &mean);
  nn_tensor_new(NULL, 1, d1, &var);
  for (int64_t ch = 0; ch < c; ch++) {
    double s = 0, sq = 0;
    for (int64_t b = 0; b < n; b++)
      for (int64_t i = 0; i < inner; i++)
        s += x->data[(b * c + ch) * inner + i];
    double m = s / (double)(n * inner);
    for (int64_t b = 0; b < n; b++)
      for (int64_t i = 0; i < inner; i++) {
        double v = x->data[(b * c + ch) * inner + i] - m;
        sq += v * v;
      }
    mean->data[ch] = (float)m;
    var->data[ch] = (float)(sq / (double)(n * inner));
  }
  int rc = nn_batchnorm(NULL, *(const float *)p, x, in[1], in[2], mean, var, y);
  nn_tensor_free(mean), nn_tensor_free(var);
  return rc;
}

TEST(batchnorm_backward_matches_finite_differences) {
  int64_t shapes[2][4] = {{3, 4, 2, 3}, {6, 5, 1, 1}};
  int ranks[2] = {4, 2};
  for (int k = 0; k < 2; k++) {
    float eps = 1e-3f;
    int64_t c = shapes[k][1], dc[1] = {c};
    nn_tensor *x = rnd(ranks[k], shapes[k], -2, 2), *y = zeros_like(x);
    nn_tensor *g = rnd(1, dc, 0.5f, 1.5f), *bt = rnd(1, dc, -1, 1);
    nn_tensor *rm = rnd(1, dc, -1, 1), *rv = rnd(1, dc, 0.5f, 2);
    nn_tensor *rm0 = zeros_like(rm), *rv0 = zeros_like(rv);
    memcpy(rm0->data, rm->data, (size_t)c * sizeof(float));
    memcpy(rv0->data, rv->data, (size_t)c * sizeof(float));
    nn_tensor *dy = rnd(ranks[k], shapes[k], -1, 1), *gx = zeros_like(x);
    nn_tensor *gg = zeros_like(g), *gb = zeros_like(bt), *yref = zeros_like(x);
    float sm[8], si[8];
    nn_tensor *in[3] = {x, g, bt};
    CHECK_EQ_INT(
        nn_batchnorm_train(NULL, eps, 0.1f, x, g, bt, rm, rv, y, sm, si),
        DLP_OK);
    CHECK_EQ_INT(fwd_bn(&eps, in, yref), DLP_OK);
    for (int64_t i = 0; i < nn_tensor_numel(x); i++)
      CHECK_NEAR(y->data[i], yref->data[i], 1e-5);
    /* running stats: 0.9 old + 0.1 batch, the variance unbiased */
    int64_t m = nn_tensor_numel(x) / c;
    for (int64_t ch = 0; ch < c; ch++) {
      double mu = 0, v = 0;
      for (int64_t i = 0; i < nn_tensor_numel(x); i++)
        if ((i / (nn_tensor_numel(x) / shapes[k][0] / c)) % c == ch)
          mu += x->data[i];
      mu /= (double)m;
      for (int64_t i = 0; i < nn_tensor_numel(x); i++)
        if ((i / (nn_tensor_numel(x) / shapes[k][0] / c)) % c == ch)
          v += (x->data[i] - mu) * (x->data[i] - mu);
      CHECK_NEAR(rm->data[ch], 0.9 * rm0->data[ch] + 0.1 * mu, 1e-6);
      CHECK_NEAR(rv->data[ch], 0.9 * rv0->data[ch] + 0.1 * v / (double)(m - 1),
                 1e-5);
      CHECK_NEAR(sm[ch], mu, 1e-6);
      CHECK_NEAR(si[ch], 1 / sqrt(v / (double)m + eps), 1e-4 * si[ch]);
    }
    CHECK_EQ_INT(nn_batchnorm_backward(NULL, x, g, sm, si, dy, gx, gg, gb),
                 DLP_OK);
    fd_check("batchnorm x", fwd_bn, &eps, in, 0, y, dy, gx);
    fd_check("batchnorm gamma", fwd_bn, &eps, in, 1, y, dy, gg);
    fd_check("batchnorm beta", fwd_bn, &eps, in, 2, y, dy, gb);
    nn_tensor *all[] = {x, y, g, bt, rm, rv, rm0, rv0, dy, gx, gg, gb, yref};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
      nn_tensor_free(all[i]);
  }
}

/* ------------------------------------------------------------------------
 * Pooling
 * ------------------------------------------------------------------------ */

typedef struct pool_p {
  nn_pool2d_attr a;
  int kind; /* 0 max, 1 avg, 2 global avg, 3 global max */
} pool_p;

static int fwd_pool(const void *pp, nn_tensor *const *in, nn_tensor *y) {
  const pool_p *p = pp;
  switch (p->kind) {
  case 0:
    return nn_maxpool2d(NULL, &p->a, in[0], y);
  case 1:
    return nn_avgpool2d(NULL, &p->a, in[0], y);
  case 2:
    return nn_global_avgpool(NULL, in[0], y);
  default:
    return nn_global_maxpool(NULL, in[0], y);
  }
}

/* Distinct values spaced 0.1 apart in random order: no ties within 2h. */
static void shuffle_distinct(nn_tensor *x) {
  int64_t n = nn_tensor_numel(x);
  for (int64_t i = 0; i < n; i++)
    x->data[i] = 0.1f * (float)(i - n / 2);
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)dlp_rng_below(&rng, (uint64_t)i + 1);
    float t = x->data[i];
    x->data[i] = x->data[j];
    x->data[j] = t;
  }
}

typedef struct pool_case {
  int k[2], s[2], pads[4];
  bool ceil, incl;
} pool_case;

static const pool_case pool_cases[] = {
    {{2, 2}, {2, 2}, {0, 0, 0, 0}, false, false},
    {{3, 3}, {2, 2}, {1, 1, 1, 1}, false, true}, /* overlapping, padded */
    {{3, 2}, {2, 1}, {1, 0, 0, 1}, true, false}, /* ceil, asymmetric */
    {{3, 3}, {2, 2}, {1, 1, 1, 1}, true, true},
    {{2, 3}, {3, 2}, {1, 1, 0, 2}, true, true},
};

TEST(pool_backward_matches_finite_differences) {
  int64_t d[4] = {2, 2, 7, 6};
  for (size_t ci = 0; ci < sizeof pool_cases / sizeof *pool_cases; ci++)
    for (int kind = 0; kind < 2; kind++) {
      const pool_case *k = &pool_cases[ci];
      pool_p p = {.kind = kind};
      nn_pool2d_attr_init(&p.a);
      memcpy(p.a.kernel, k->k, sizeof k->k);
      memcpy(p.a.stride, k->s, sizeof k->s);
      memcpy(p.a.pads, k->pads, sizeof k->pads);
      p.a.ceil_mode = k->ceil;
      p.a.count_include_pad = k->incl;
      nn_tensor *x = rnd(4, d, -1, 1), *gx = zeros_like(x);
      shuffle_distinct(x);
      nn_shape s;
      CHECK_EQ_INT(nn_pool2d_out_shape(NULL, &p.a, x, &s), DLP_OK);
      nn_tensor *y = zeros_like_shape(&s), *dy = rnd(4, s.dims, -1, 1);
      nn_tensor *in[1] = {x};
      CHECK_EQ_INT(kind ? nn_avgpool2d_backward(NULL, &p.a, dy, gx)
                        : nn_maxpool2d_backward(NULL, &p.a, x, dy, gx),
                   DLP_OK);
      fd_check(kind ? "avgpool" : "maxpool", fwd_pool, &p, in, 0, y, dy, gx);
      nn_tensor_free(x), nn_tensor_free(gx), nn_tensor_free(y);
      nn_tensor_free(dy);
    }
}

TEST(maxpool_backward_sends_ties_to_the_first_maximum) {
  int64_t d[4] = {1, 1, 2, 2}, d1[4] = {1, 1, 1, 1};
  pool_p p = {.kind = 0};
  nn_pool2d_attr_init(&p.a);
  p.a.kernel[0] = p.a.kernel[1] = 2;
  nn_tensor *x = rnd(4, d, 0, 1), *gx = zeros_like(x), *dy = rnd(4, d1, 1, 2);
  x->data[0] = 0.5f, x->data[1] = 3, x->data[2] = 3, x->data[3] = 3;
  CHECK_EQ_INT(nn_maxpool2d_backward(NULL, &p.a, x, dy, gx), DLP_OK);
  CHECK(gx->data[1] == dy->data[0] && gx->data[0] == 0 && gx->data[2] == 0 &&
        gx->data[3] == 0);
  CHECK_EQ_INT(nn_global_maxpool_backward(NULL, x, dy, gx), DLP_OK);
  CHECK(gx->data[1] == dy->data[0] && gx->data[2] == 0 && gx->data[3] == 0);
  nn_tensor_free(x), nn_tensor_free(gx), nn_tensor_free(dy);
}

TEST(global_pool_backward_matches_finite_differences) {
  int64_t d4[4] = {2, 3, 4, 5}, d3[3] = {3, 2, 7};
  for (int k = 0; k < 4; k++) {
    pool_p p = {.kind = 2 + k % 2};
    nn_tensor *x = k < 2 ? rnd(4, d4, -1, 1) : rnd(3, d3, -1, 1);
    shuffle_distinct(x);
    nn_shape s;
    CHECK_EQ_INT(nn_global_pool_out_shape(NULL, x, &s), DLP_OK);
    nn_tensor *y = zeros_like_shape(&s), *dy = rnd(s.ndim, s.dims, -1, 1);
    nn_tensor *gx = zeros_like(x), *in[1] = {x};
    CHECK_EQ_INT(p.kind == 2 ? nn_global_avgpool_backward(NULL, dy, gx)
                             : nn_global_maxpool_backward(NULL, x, dy, gx),
                 DLP_OK);
    fd_check("global pool", fwd_pool, &p, in, 0, y, dy, gx);
    /* dy flattened to (N, C) gives the same */
    nn_tensor *dy2 = NULL, *gx2 = zeros_like(x);
    nn_tensor_view(NULL, dy->data, 2, s.dims, &dy2);
    CHECK_EQ_INT(p.kind == 2 ? nn_global_avgpool_backward(NULL, dy2, gx2)
                             : nn_global_maxpool_backward(NULL, x, dy2, gx2),
                 DLP_OK);
    CHECK(memcmp(gx->data, gx2->data,
                 (size_t)nn_tensor_numel(x) * sizeof(float)) == 0);
    nn_tensor *all[] = {x, y, dy, gx, dy2, gx2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
      nn_tensor_free(all[i]);
  }
}

/* ------------------------------------------------------------------------
 * Broadcasting add/mul, concat, pad
 * ------------------------------------------------------------------------ */

typedef struct misc_p {
  int kind; /* 0 add, 1 mul, 2 concat, 3 pad */
  int axis, n;
  nn_pad_attr pad;
} misc_p;

static int fwd_misc(const void *pp, nn_tensor *const *in, nn_tensor *y) {
  const misc_p *p = pp;
  switch (p->kind) {
  case 0:
    return nn_add(NULL, in[0], in[1], y);
  case 1:
    return nn_mul(NULL, in[0], in[1], y);
  case 2:
    return nn_concat(NULL, (const nn_tensor *const *)in, p->n, p->axis, y);
  default:
    return nn_pad(NULL, &p->pad, in[0], y);
  }
}

TEST(add_mul_backward_sum_over_broadcast_axes) {
  static const int64_t sa[][4] = {{2, 3, 4}, {4}, {2, 1, 4}, {3, 1}};
  static const int64_t sb[][4] = {{3, 1}, {2, 3, 4}, {1, 3, 1}, {3, 1}};
  static const int ra[] = {3, 1, 3, 2}, rb[] = {2, 3, 3, 2};
  for (int k = 0; k < 4; k++)
    for (int kind = 0; kind < 2; kind++) {
      misc_p p = {.kind = kind};
      nn_tensor *a = rnd(ra[k], sa[k], -1, 1), *b = rnd(rb[k], sb[k], -1, 1);
      nn_shape s;
      CHECK_EQ_INT(nn_broadcast_shape(NULL, a, b, &s), DLP_OK);
      nn_tensor *y = zeros_like_shape(&s), *dy = rnd(s.ndim, s.dims, -1, 1);
      nn_tensor *ga = zeros_like(a), *gb = zeros_like(b), *in[2] = {a, b};
      CHECK_EQ_INT(kind ? nn_mul_backward(NULL, a, b, dy, ga, gb)
                        : nn_add_backward(NULL, dy, ga, gb),
                   DLP_OK);
      fd_check(kind ? "mul a" : "add a", fwd_misc, &p, in, 0, y, dy, ga);
      fd_check(kind ? "mul b" : "add b", fwd_misc, &p, in, 1, y, dy, gb);
      nn_tensor *all[] = {a, b, y, dy, ga, gb};
      for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        nn_tensor_free(all[i]);
    }
}

TEST(concat_backward_splits_dy) {
  int64_t d[3][3] = {{2, 1, 3}, {2, 4, 3}, {2, 2, 3}};
  misc_p p = {.kind = 2, .axis = -2, .n = 3};
  nn_tensor *xs[3], *gs[3];
  for (int k = 0; k < 3; k++) {
    xs[k] = rnd(3, d[k], -1, 1);
    gs[k] = zeros_like(xs[k]);
  }
  nn_shape s;
  CHECK_EQ_INT(
      nn_concat_out_shape(NULL, (const nn_tensor *const *)xs, 3, -2, &s),
      DLP_OK);
  nn_tensor *y = zeros_like_shape(&s), *dy = rnd(3, s.dims, -1, 1);
  CHECK_EQ_INT(nn_concat_backward(NULL, dy, -2, gs, 3), DLP_OK);
  for (int k = 0; k < 3; k++)
    fd_check("concat", fwd_misc, &p, xs, k, y, dy, gs[k]);
  /* one piece may be NULL: the others still get their parts */
  nn_tensor *g0 = zeros_like(xs[0]), *g2 = zeros_like(xs[2]);
  nn_tensor *part[3] = {g0, NULL, g2};
  CHECK_EQ_INT(nn_concat_backward(NULL, dy, 1, part, 3), DLP_OK);
  CHECK(memcmp(g0->data, gs[0]->data, 6 * sizeof(float)) == 0);
  CHECK(memcmp(g2->data, gs[2]->data, 12 * sizeof(float)) == 0);
  dlp_err e = {0};
  nn_tensor *two_null[3] = {g0, NULL, NULL};
  CHECK_EQ_INT(nn_concat_backward(&e, dy, 1, two_null, 3), DLP_ERR_ARG);
  CHECK(starts(&e, "concat_backward:"));
  for (int k = 0; k < 3; k++)
    nn_tensor_free(xs[k]), nn_tensor_free(gs[k]);
  nn_tensor_free(y), nn_tensor_free(dy), nn_tensor_free(g0);
  nn_tensor_free(g2);
}

TEST(pad_backward_matches_finite_differences) {
  int64_t d[4] = {2, 2, 4, 5};
  for (int mode = 0; mode < 3; mode++) {
    misc_p p = {.kind = 3};
    nn_pad_attr_init(&p.pad);
    p.pad.mode = (nn_pad_mode)mode;
    p.pad.value = 0.5f;
    int64_t pads[8] = {0, 1, 2, 3, 1, 0, 1, 2};
    memcpy(p.pad.pads, pads, sizeof pads);
    nn_tensor *x = rnd(4, d, -1, 1), *gx = zeros_like(x);
    nn_shape s;
    CHECK_EQ_INT(nn_pad_out_shape(NULL, &p.pad, x, &s), DLP_OK);
    nn_tensor *y = zeros_like_shape(&s), *dy = rnd(4, s.dims, -1, 1);
    nn_tensor *in[1] = {x};
    CHECK_EQ_INT(nn_pad_backward(NULL, &p.pad, dy, gx), DLP_OK);
    fd_check("pad", fwd_misc, &p, in, 0, y, dy, gx);
    nn_tensor_free(x), nn_tensor_free(gx), nn_tensor_free(y);
    nn_tensor_free(dy);
  }
}

/* ------------------------------------------------------------------------
 * Loss and dropout
 * ------------------------------------------------------------------------ */

typedef struct xent_p {
  const int32_t *labels;
  const float *w;
  float s;
} xent_p;

/* The loss written out here in double, independently of the kernel. */
static double xent_ref(const xent_p *p, const nn_tensor *z) {
  int64_t n = z->dims[0], k = z->dims[1];
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double mx = -INFINITY, se = 0;
    for (int64_t j = 0; j < k; j++)
      mx = fmax(mx, z->data[i * k + j]);
    for (int64_t j = 0; j < k; j++)
      se += exp(z->data[i * k + j] - mx);
    double li = 0;
    for (int64_t j = 0; j < k; j++) {
      double q = p->s / (double)k + (j == p->labels[i] ? 1 - p->s : 0);
      li -= q * (z->data[i * k + j] - mx - log(se));
    }
    double wi = p->w ? p->w[i] : 1;
    num += wi * li;
    den += wi;
  }
  return num / den;
}

TEST(softmax_xent_matches_its_definition_and_finite_differences) {
  int64_t d[2] = {5, 4};
  static const int32_t labels[5] = {0, 3, 1, 1, 2};
  static const float w[5] = {1, 0.5f, 2, 0, 1.5f};
  for (int k = 0; k < 4; k++) {
    xent_p p = {labels, k & 1 ? w : NULL, k & 2 ? 0.2f : 0};
    nn_tensor *z = rnd(2, d, -3, 3), *g = zeros_like(z);
    double loss = 0;
    CHECK_EQ_INT(nn_softmax_xent(NULL, z, labels, p.w, p.s, &loss, g), DLP_OK);
    CHECK_NEAR(loss, xent_ref(&p, z), 1e-6);
    double worst = 0;
    for (int64_t i = 0; i < 20; i++) {
      float v = z->data[i];
      z->data[i] = (float)(v + FD_H);
      double lp = xent_ref(&p, z);
      z->data[i] = (float)(v - FD_H);
      double lm = xent_ref(&p, z);
      z->data[i] = v;
      worst = fmax(worst, fabs((lp - lm) / (2 * FD_H) - g->data[i]));
    }
    CHECK(worst <= FD_TOL);
    double l2 = 0; /* no gradient asked: the same loss */
    CHECK_EQ_INT(nn_softmax_xent(NULL, z, labels, p.w, p.s, &l2, NULL), DLP_OK);
    CHECK(l2 == loss);
    nn_tensor_free(z), nn_tensor_free(g);
  }
  /* huge logits: finite, and the right answer */
  nn_tensor *z = rnd(2, d, -1, 1), *g = zeros_like(z);
  for (int64_t i = 0; i < 20; i++)
    z->data[i] *= 1e4f;
  xent_p p = {labels, NULL, 0.1f};
  double loss = 0;
  CHECK_EQ_INT(nn_softmax_xent(NULL, z, labels, NULL, 0.1f, &loss, g), DLP_OK);
  CHECK(isfinite(loss));
  CHECK_NEAR(loss, xent_ref(&p, z), 1e-6 * fabs(loss));
  for (int64_t i = 0; i < 20; i++)
    CHECK(isfinite(g->data[i]));
  nn_tensor_free(z), nn_tensor_free(g);
}

TEST(dropout_keeps_the_right_fraction_and_uses_its_mask) {
  int64_t d[1] = {100000};
  float rate = 0.3f;
  nn_tensor *x = rnd(1, d, 0.5f, 1.5f), *y = zeros_like(x);
  nn_tensor *dy = rnd(1, d, -1, 1), *dx = zeros_like(x);
  uint8_t *mask = malloc(100000);
  dlp_rng r;
  dlp_rng_seed(&r, 7);
  CHECK_EQ_INT(nn_dropout_train(NULL, rate, &r, x, y, mask), DLP_OK);
  int64_t kept = 0;
  double sx = 0, sy = 0;
  for (int64_t i = 0; i < d[0]; i++) {
    kept += mask[i];
    CHECK(mask[i] ? fabsf(y->data[i] - x->data[i] / 0.7f) <= 1e-6f
                  : y->data[i] == 0);
    sx += x->data[i];
    sy += y->data[i];
  }
  /* binomial(1e5, 0.7): sd 145; 5 sd */
  CHECK(fabs((double)kept - 70000) < 725);
  CHECK(fabs(sy / sx - 1) < 0.01); /* inverted dropout keeps the mean */
  CHECK_EQ_INT(nn_dropout_backward(NULL, rate, mask, dy, dx), DLP_OK);
  for (int64_t i = 0; i < d[0]; i++)
    CHECK(mask[i] ? fabsf(dx->data[i] - dy->data[i] / 0.7f) <= 1e-6f
                  : dx->data[i] == 0);
  /* the same seed, the same mask; in place allowed */
  uint8_t *mask2 = malloc(100000);
  dlp_rng_seed(&r, 7);
  CHECK_EQ_INT(nn_dropout_train(NULL, rate, &r, x, x, mask2), DLP_OK);
  CHECK(memcmp(mask, mask2, 100000) == 0);
  CHECK(memcmp(x->data, y->data, 100000 * sizeof(float)) == 0);
  dlp_err e = {0};
  CHECK_EQ_INT(nn_dropout_train(&e, 1.0f, &r, x, y, mask), DLP_ERR_ARG);
  CHECK(starts(&e, "dropout_train:"));
  free(mask), free(mask2);
  nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(dy), nn_tensor_free(dx);
}

/* ------------------------------------------------------------------------
 * A small network, end to end
 * ------------------------------------------------------------------------ */

/* conv(s2) -> batchnorm(train) -> tanh -> depthwise conv -> global average
 * pool -> dense -> softmax cross-entropy: the kernels chained the way a
 * training engine chains them (the (N, C, 1, 1) pool gradient read as the
 * dense layer's (N, C)). */
typedef struct net {
  nn_tensor *x, *w1, *b1, *g, *bt, *w2, *w3, *b3;
  nn_tensor *h1, *h2, *h3, *h4, *h5, *z; /* activations */
  int32_t labels[3];
  float sm[4], si[4];
  nn_conv2d_attr c1, c2;
  nn_dense_attr d;
} net;

static nn_tensor *flat2(nn_tensor *t) { /* (N, C, 1, 1) seen as (N, C) */
  nn_tensor *v = NULL;
  nn_tensor_view(NULL, t->data, 2, t->dims, &v);
  return v;
}

static double net_loss(net *m) {
  double loss = NAN;
  nn_tensor *h5 = flat2(m->h4);
  if (nn_conv2d(NULL, &m->c1, m->x, m->w1, m->b1, m->h1) != DLP_OK ||
      nn_batchnorm_train(NULL, 1e-5f, 0.1f, m->h1, m->g, m->bt, NULL, NULL,
                         m->h2, m->sm, m->si) != DLP_OK ||
      nn_act_apply(NULL, NN_ACT_TANH, 0, m->h2, m->h3) != DLP_OK ||
      nn_conv2d(NULL, &m->c2, m->h3, m->w2, NULL, m->h5) != DLP_OK ||
      nn_global_avgpool(NULL, m->h5, m->h4) != DLP_OK ||
      nn_dense(NULL, &m->d, h5, m->w3, m->b3, m->z) != DLP_OK ||
      nn_softmax_xent(NULL, m->z, m->labels, NULL, 0.1f, &loss, NULL) != DLP_OK)
    loss = NAN;
  nn_tensor_free(h5);
  return loss;
}

/* The analytic gradients of w1 and gamma and x, by the backward kernels. */
static bool net_backward(net *m, nn_tensor *gx, nn_tensor *gw1, nn_tensor *gg) {
  double loss;
  nn_tensor *dz = zeros_like(m->z), *dh4 = zeros_like(m->h4);
  nn_tensor *dh5 = zeros_like(m->h5), *dh3 = zeros_like(m->h3);
  nn_tensor *dh2 = zeros_like(m->h2), *dh1 = zeros_like(m->h1);
  nn_tensor *gw3 = zeros_like(m->w3), *h4f = flat2(m->h4), *dh4f = flat2(dh4);
  bool ok =
      !isnan(net_loss(m)) &&
      nn_softmax_xent(NULL, m->z, m->labels, NULL, 0.1f, &loss, dz) == DLP_OK &&
      nn_dense_backward(NULL, &m->d, h4f, m->w3, dz, dh4f, gw3, NULL) ==
          DLP_OK &&
      nn_global_avgpool_backward(NULL, dh4, dh5) == DLP_OK &&
      nn_conv2d_backward_data(NULL, &m->c2, m->w2, dh5, dh3) == DLP_OK &&
      nn_act_backward(NULL, NN_ACT_TANH, 0, m->h2, m->h3, dh3, dh2) == DLP_OK &&
      nn_batchnorm_backward(NULL, m->h1, m->g, m->sm, m->si, dh2, dh1, gg,
                            NULL) == DLP_OK &&
      nn_conv2d_backward_data(NULL, &m->c1, m->w1, dh1, gx) == DLP_OK &&
      nn_conv2d_backward_weights(NULL, &m->c1, m->x, dh1, gw1, NULL) == DLP_OK;
  nn_tensor *all[] = {dz, dh4, dh5, dh3, dh2, dh1, gw3, h4f, dh4f};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    nn_tensor_free(all[i]);
  return ok;
}

/* max |numeric - analytic| over t, against the largest analytic value. */
static void net_fd(net *m, nn_tensor *t, const nn_tensor *grad,
                   const char *name) {
  double worst = 0, scale = 1e-2;
  for (int64_t i = 0; i < nn_tensor_numel(t); i++) {
    float v = t->data[i];
    t->data[i] = (float)(v + FD_H);
    double lp = net_loss(m);
    t->data[i] = (float)(v - FD_H);
    double lm = net_loss(m);
    t->data[i] = v;
    worst = fmax(worst, fabs((lp - lm) / (2 * FD_H) - grad->data[i]));
    scale = fmax(scale, fabs(grad->data[i]));
  }
  if (!(worst <= 2e-3 * scale))
    fprintf(stderr, "net %s: max error %.3g (scale %.3g)\n", name, worst,
            scale);
  CHECK(worst <= 2e-3 * scale);
}

TEST(small_network_gradients_match_finite_differences) {
  net m = {.labels = {2, 0, 4}};
  int64_t dx[4] = {3, 2, 7, 6}, dw1[4] = {4, 2, 3, 3}, d4[1] = {4};
  int64_t dw2[4] = {4, 1, 3, 3}, dw3[2] = {4, 5}, d5[1] = {5};
  nn_conv2d_attr_init(&m.c1);
  m.c1.stride[0] = m.c1.stride[1] = 2;
  m.c1.pads[0] = m.c1.pads[1] = m.c1.pads[2] = m.c1.pads[3] = 1;
  nn_conv2d_attr_init(&m.c2);
  m.c2.groups = 4;
  m.c2.pads[0] = m.c2.pads[1] = m.c2.pads[2] = m.c2.pads[3] = 1;
  nn_dense_attr_init(&m.d);
  m.x = rnd(4, dx, -1, 1), m.w1 = rnd(4, dw1, -1, 1), m.b1 = rnd(1, d4, -1, 1);
  m.g = rnd(1, d4, 0.5f, 1.5f), m.bt = rnd(1, d4, -1, 1);
  m.w2 = rnd(4, dw2, -1, 1), m.w3 = rnd(2, dw3, -2, 2);
  m.b3 = rnd(1, d5, -1, 1);
  nn_shape s1, s4;
  CHECK_EQ_INT(nn_conv2d_out_shape(NULL, &m.c1, m.x, m.w1, &s1), DLP_OK);
  m.h1 = zeros_like_shape(&s1), m.h2 = zeros_like(m.h1);
  m.h3 = zeros_like(m.h1), m.h5 = zeros_like(m.h1);
  CHECK_EQ_INT(nn_global_pool_out_shape(NULL, m.h5, &s4), DLP_OK);
  m.h4 = zeros_like_shape(&s4);
  int64_t dz[2] = {3, 5};
  m.z = rnd(2, dz, 0, 1);
  nn_tensor *gx = zeros_like(m.x), *gw1 = zeros_like(m.w1);
  nn_tensor *gg = zeros_like(m.g);
  CHECK(net_backward(&m, gx, gw1, gg));
  net_fd(&m, m.x, gx, "x");
  net_fd(&m, m.w1, gw1, "w1");
  net_fd(&m, m.g, gg, "gamma");
  nn_tensor *all[] = {m.x,  m.w1, m.b1, m.g,  m.bt, m.w2, m.w3, m.b3, m.h1,
                      m.h2, m.h3, m.h4, m.h5, m.z,  gx,   gw1,  gg};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    nn_tensor_free(all[i]);
}

/* ------------------------------------------------------------------------
 * Bad input
 * ------------------------------------------------------------------------ */

TEST(backward_kernels_refuse_mismatched_shapes) {
  dlp_err e = {0};
  int64_t d4[4] = {2, 3, 5, 5}, dw[4] = {4, 3, 3, 3}, dy4[4] = {2, 4, 3, 3};
  int64_t bad[4] = {2, 4, 3, 4}, d1[1] = {5};
  nn_tensor *x = rnd(4, d4, -1, 1), *w = rnd(4, dw, -1, 1);
  nn_tensor *dy = rnd(4, dy4, -1, 1), *dyb = rnd(4, bad, -1, 1);
  nn_tensor *gx = zeros_like(x), *gw = zeros_like(w), *b5 = rnd(1, d1, 0, 1);
  nn_conv2d_attr a;
  nn_conv2d_attr_init(&a);
  CHECK_EQ_INT(nn_conv2d_backward_data(&e, &a, w, dyb, gx), DLP_ERR_ARG);
  CHECK(starts(&e, "conv2d_backward_data: dy has shape 2x4x3x4 but 2x4x3x3"));
  CHECK_EQ_INT(nn_conv2d_backward_weights(&e, &a, x, dy, gw, b5), DLP_ERR_ARG);
  CHECK(starts(&e, "conv2d_backward_weights: db has 5 values"));
  a.act = NN_ACT_RELU;
  CHECK_EQ_INT(nn_conv2d_backward_data(&e, &a, w, dy, gx), DLP_ERR_ARG);
  CHECK(starts(&e, "conv2d_backward_data: fused activation relu"));
  a.act = NN_ACT_NONE;
  a.groups = 2;
  CHECK_EQ_INT(nn_conv2d_backward_weights(&e, &a, x, dy, gw, NULL),
               DLP_ERR_ARG);
  CHECK(starts(&e, "conv2d_backward_weights: conv2d: input has 3 channels"));
  CHECK_EQ_INT(nn_act_backward(&e, NN_ACT_TANH, 0, x, NULL, dy, gx),
               DLP_ERR_ARG);
  CHECK(starts(&e, "act_backward: dy has shape"));
  CHECK_EQ_INT(
      nn_batchnorm_backward(&e, x, b5, b5->data, b5->data, x, gx, NULL, NULL),
      DLP_ERR_ARG);
  CHECK(starts(&e, "batchnorm_backward: gamma has 5 values but the input has "
                   "3 channels"));
  int64_t one[2] = {1, 3};
  nn_tensor *x1 = rnd(2, one, 0, 1), *y1 = zeros_like(x1);
  float sm[3], si[3];
  CHECK_EQ_INT(
      nn_batchnorm_train(&e, 1e-5f, 0.1f, x1, b5, b5, NULL, NULL, y1, sm, si),
      DLP_ERR_ARG);
  CHECK(starts(&e, "batchnorm_train: 1 value(s) per channel"));
  nn_pool2d_attr pa;
  nn_pool2d_attr_init(&pa);
  pa.kernel[0] = pa.kernel[1] = 2;
  CHECK_EQ_INT(nn_maxpool2d_backward(&e, &pa, x, dy, gx), DLP_ERR_ARG);
  CHECK(starts(&e, "maxpool2d_backward: dy has shape"));
  CHECK_EQ_INT(nn_avgpool2d_backward(&e, &pa, dy, gw), DLP_ERR_ARG);
  CHECK(starts(&e, "avgpool2d_backward: dy has shape"));
  CHECK_EQ_INT(nn_global_avgpool_backward(&e, dy, gx), DLP_ERR_ARG);
  CHECK(starts(&e, "global_avgpool_backward: dy has shape"));
  CHECK_EQ_INT(nn_add_backward(&e, dy, b5, NULL), DLP_ERR_ARG);
  CHECK(starts(&e, "add_backward: "));
  CHECK_EQ_INT(nn_mul_backward(&e, x, dy, dy, NULL, NULL), DLP_ERR_ARG);
  CHECK(starts(&e, "mul_backward: broadcast:"));
  CHECK_EQ_INT(nn_softmax_backward(&e, 4, dy, dy, dy), DLP_ERR_ARG);
  CHECK(starts(&e, "softmax_backward: axis 4"));
  nn_dense_attr da;
  nn_dense_attr_init(&da);
  CHECK_EQ_INT(nn_dense_backward(&e, &da, x, w, dy, NULL, NULL, NULL),
               DLP_ERR_ARG);
  CHECK(starts(&e, "dense_backward: dense:"));
  nn_pad_attr pd;
  nn_pad_attr_init(&pd);
  pd.pads[3] = 1;
  CHECK_EQ_INT(nn_pad_backward(&e, &pd, x, gx), DLP_ERR_ARG);
  CHECK(starts(&e, "pad_backward: dy has shape 2x3x5x5 but 2x3x5x6"));
  int64_t dl[2] = {2, 3};
  nn_tensor *z = rnd(2, dl, 0, 1);
  int32_t labels[2] = {0, 3};
  double loss;
  CHECK_EQ_INT(nn_softmax_xent(&e, z, labels, NULL, 0, &loss, NULL),
               DLP_ERR_ARG);
  CHECK(starts(&e, "softmax_xent: label 3 of row 1 is not in [0, 3)"));
  labels[1] = 1;
  float wz[2] = {0, 0};
  CHECK_EQ_INT(nn_softmax_xent(&e, z, labels, wz, 0, &loss, NULL), DLP_ERR_ARG);
  CHECK(starts(&e, "softmax_xent: the weights sum to 0"));
  CHECK_EQ_INT(nn_softmax_xent(&e, z, labels, NULL, 1.0f, &loss, NULL),
               DLP_ERR_ARG);
  nn_tensor *all[] = {x, w, dy, dyb, gx, gw, b5, x1, y1, z};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    nn_tensor_free(all[i]);
}

int main(void) {
  dlp_rng_seed(&rng, 20261124);
  RUN(act_backward_matches_finite_differences);
  RUN(clip_backward_is_zero_at_and_beyond_the_bounds);
  RUN(softmax_backward_matches_finite_differences);
  RUN(dense_backward_matches_finite_differences);
  RUN(conv2d_backward_matches_finite_differences);
  RUN(conv2d_backward_is_thread_count_invariant);
  RUN(batchnorm_backward_matches_finite_differences);
  RUN(pool_backward_matches_finite_differences);
  RUN(maxpool_backward_sends_ties_to_the_first_maximum);
  RUN(global_pool_backward_matches_finite_differences);
  RUN(add_mul_backward_sum_over_broadcast_axes);
  RUN(concat_backward_splits_dy);
  RUN(pad_backward_matches_finite_differences);
  RUN(softmax_xent_matches_its_definition_and_finite_differences);
  RUN(dropout_keeps_the_right_fraction_and_uses_its_mask);
  RUN(small_network_gradients_match_finite_differences);
  RUN(backward_kernels_refuse_mismatched_shapes);
  return test_summary();
}
