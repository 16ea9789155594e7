/* test_augment.c - training augmentation: the statistics of the random
 * draws, exact geometry (crop = slicing, flip = mirror), determinism for a
 * seed whatever the thread count, and errors. (Pixel values against PIL and
 * torchvision's formulas: tests/ref/test_augment_vs_numpy.py.) */
#include "image/image.h"
#include "test.h"

#include <unistd.h>

/* A w x h RGB image whose pixels follow a formula of (x, y, seed). */
static dlp_image *pattern(int32_t w, int32_t h, int32_t c, int seed) {
  dlp_image *img = NULL;
  if (dlp_image_new(NULL, w, h, c, &img) != DLP_OK) return NULL;
  for (int32_t y = 0; y < h; y++)
    for (int32_t x = 0; x < w; x++)
      for (int32_t k = 0; k < c; k++)
        img->data[((size_t)y * w + x) * c + k] =
            (uint8_t)(x * (3 + k) + y * (5 + seed) + k * 40 + seed);
  return img;
}

/* Writes img (3 channels) as a 24-bit BMP. */
static int write_bmp(const char *path, const dlp_image *img) {
  int32_t w = img->width, h = img->height, stride = (w * 3 + 3) & ~3;
  uint32_t size = (uint32_t)(54 + stride * h), off = 54, dib = 40;
  uint8_t *f = calloc(1, size);
  if (!f) return -1;
  f[0] = 'B';
  f[1] = 'M';
  memcpy(f + 2, &size, 4);
  memcpy(f + 10, &off, 4);
  memcpy(f + 14, &dib, 4);
  memcpy(f + 18, &w, 4);
  memcpy(f + 22, &h, 4);
  f[26] = 1;
  f[28] = 24;
  for (int32_t y = 0; y < h; y++)
    for (int32_t x = 0; x < w; x++) {
      const uint8_t *s = img->data + ((size_t)y * w + x) * 3;
      uint8_t *d = f + 54 + (size_t)(h - 1 - y) * stride + (size_t)x * 3;
      d[0] = s[2];
      d[1] = s[1];
      d[2] = s[0];
    }
  FILE *fp = fopen(path, "wb");
  int ok = fp && fwrite(f, 1, size, fp) == size;
  if (fp) ok &= fclose(fp) == 0;
  free(f);
  return ok ? 0 : -1;
}

TEST(draws_stay_in_range_and_flip_half_the_time) {
  dlp_augment a;
  dlp_augment_init(&a);
  const int n = 20000, W = 200, H = 150;
  int flips = 0, fallback = 0, bad_box = 0, bad_shape = 0;
  double fsum[3] = {0}, fsq[3] = {0}, xpos = 0;
  int xcount = 0;
  for (int i = 0; i < n; i++) {
    dlp_augment_params p;
    CHECK_OK(NULL,
             dlp_augment_draw(NULL, &a, W, H, dlp_augment_seed(1, 0, i), &p));
    bad_box += p.x < 0 || p.y < 0 || p.width < 1 || p.height < 1 ||
               p.x + p.width > W || p.y + p.height > H;
    double area = (double)p.width * p.height / (W * H);
    double ratio = (double)p.width / p.height;
    /* Sides are rounded, so area and ratio may stray by a pixel's worth. */
    double slack_r = 1.0 / p.height + 1.0 / p.width;
    int is_fallback = p.width == W && p.height == H;
    fallback += is_fallback;
    if (!is_fallback)
      bad_shape += area < 0.08 - 2.0 * (p.width + p.height) / (W * H) ||
                   ratio < 0.75 * (1 - slack_r) ||
                   ratio > 4.0 / 3 * (1 + slack_r);
    if (p.width < W) {
      xpos += (double)p.x / (W - p.width);
      xcount++;
    }
    flips += p.flip;
    double f[3] = {p.brightness, p.contrast, p.saturation};
    for (int k = 0; k < 3; k++) {
      bad_box += f[k] < 0.8 || f[k] > 1.2;
      fsum[k] += f[k];
      fsq[k] += (f[k] - 1) * (f[k] - 1);
    }
  }
  CHECK_EQ_INT(bad_box, 0);
  CHECK_EQ_INT(bad_shape, 0);
  /* 4 standard deviations of a fair coin over n draws. */
  CHECK_NEAR((double)flips / n, 0.5, 4 * sqrt(0.25 / n));
  /* The position is uniform over the room left: mean 1/2 (sd ~ 0.29). */
  CHECK_NEAR(xpos / xcount, 0.5, 4 * 0.29 / sqrt(xcount));
  for (int k = 0; k < 3; k++) {
    /* Uniform on [0.8, 1.2]: mean 1, variance 0.4^2 / 12. */
    CHECK_NEAR(fsum[k] / n, 1.0, 4 * sqrt(0.16 / 12 / n));
    CHECK_NEAR(fsq[k] / n, 0.16 / 12, 0.16 / 12 * 0.05);
  }
  /* A 4:3 image almost always fits a try; the fallback is rare. */
  CHECK(fallback < n / 100);
}

TEST(flip_probability_and_jitter_bounds_follow_options) {
  dlp_augment a;
  dlp_augment_init(&a);
  a.random_crop = 0;
  a.hflip = 0.0;
  a.brightness = 1.5; /* factor in [max(0, -0.5), 2.5] = [0, 2.5] */
  a.contrast = 0.0;
  int flips = 0, low = 0;
  for (int i = 0; i < 2000; i++) {
    dlp_augment_params p;
    CHECK_OK(NULL, dlp_augment_draw(NULL, &a, 30, 20, i, &p));
    flips += p.flip;
    CHECK(p.x == 0 && p.y == 0 && p.width == 30 && p.height == 20);
    CHECK(p.brightness >= 0.0 && p.brightness <= 2.5);
    CHECK(p.contrast == 1.0);
    low += p.brightness < 1.25;
  }
  CHECK_EQ_INT(flips, 0);
  CHECK_NEAR(low / 2000.0, 0.5, 0.05);
  a.hflip = 1.0;
  dlp_augment_params p;
  CHECK_OK(NULL, dlp_augment_draw(NULL, &a, 30, 20, 9, &p));
  CHECK_EQ_INT(p.flip, 1);
}

TEST(crop_without_resize_is_slicing_and_flip_mirrors) {
  for (int32_t c = 1; c <= 4; c++) {
    if (c == 2) continue;
    dlp_image *img = pattern(37, 29, c, (int)c);
    dlp_augment_params p = {5, 3, 20, 17, 0, 1.0, 1.0, 1.0};
    dlp_image *a = NULL, *b = NULL;
    CHECK_OK(NULL,
             dlp_augment_apply(NULL, img, &p, 20, 17, DLP_FILTER_BILINEAR, &a));
    p.flip = 1;
    CHECK_OK(NULL,
             dlp_augment_apply(NULL, img, &p, 20, 17, DLP_FILTER_BICUBIC, &b));
    int32_t oc = c == 1 ? 1 : 3;
    int bad = !a || !b || a->n_channels != oc || b->n_channels != oc;
    for (int32_t y = 0; !bad && y < 17; y++)
      for (int32_t x = 0; x < 20; x++)
        for (int32_t k = 0; k < oc; k++) {
          uint8_t src = img->data[((size_t)(y + 3) * 37 + x + 5) * c + k];
          bad |= a->data[((size_t)y * 20 + x) * oc + k] != src;
          bad |= b->data[((size_t)y * 20 + (19 - x)) * oc + k] != src;
        }
    CHECK(!bad);
    dlp_image_free(a);
    dlp_image_free(b);
    dlp_image_free(img);
  }
}

TEST(tensor_is_the_augmented_image_normalised) {
  dlp_image *img = pattern(90, 70, 3, 2);
  dlp_augment a;
  dlp_augment_init(&a);
  dlp_preprocess pp;
  dlp_preprocess_init(&pp);
  pp.width = 24;
  pp.height = 20;
  pp.layout = DLP_LAYOUT_NCHW;
  float got[3 * 24 * 20], want[3 * 24 * 20];
  uint64_t seed = dlp_augment_seed(7, 1, 3);
  CHECK_OK(NULL, dlp_image_augment_to_tensor(NULL, img, &a, seed, &pp, got));
  dlp_augment_params p;
  dlp_image *small = NULL;
  CHECK_OK(NULL, dlp_augment_draw(NULL, &a, 90, 70, seed, &p));
  CHECK_OK(NULL, dlp_augment_apply(NULL, img, &p, 24, 20, pp.filter, &small));
  CHECK_OK(NULL, dlp_image_to_tensor(NULL, small, &pp, want));
  CHECK(memcmp(got, want, sizeof got) == 0);
  dlp_image_free(small);
  dlp_image_free(img);
}

TEST(batch_is_the_same_on_any_number_of_threads) {
  enum { N = 9 };
  char dir[] = "/tmp/dlp_test_augment_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char paths[N][128];
  const char *pp_paths[N];
  uint64_t seeds[N];
  dlp_image *imgs[N];
  for (int i = 0; i < N; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/img%d.bmp", dir, i);
    imgs[i] = pattern(40 + 7 * i, 30 + 5 * i, 3, i);
    CHECK(write_bmp(paths[i], imgs[i]) == 0);
    pp_paths[i] = paths[i];
    seeds[i] = dlp_augment_seed(42, 2, (uint64_t)i);
  }
  pp_paths[4] = "/nonexistent/dir/x.png";
  dlp_augment a;
  dlp_augment_init(&a);
  dlp_preprocess pp;
  dlp_preprocess_init(&pp);
  pp.width = pp.height = 16;
  size_t slot = dlp_preprocess_size(&pp);
  float *one = calloc(N * slot, sizeof *one), *many = calloc(N * slot, 4);
  int st1[N], st4[N];
  char *msg[N];
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  dlp_ctx_set_threads(ctx, 1);
  CHECK_OK(ctx, dlp_batch_files_augment_to_tensor(ctx, pp_paths, N, &a, seeds,
                                                  &pp, one, st1, NULL));
  dlp_ctx_set_threads(ctx, 4);
  CHECK_OK(ctx, dlp_batch_files_augment_to_tensor(ctx, pp_paths, N, &a, seeds,
                                                  &pp, many, st4, msg));
  CHECK(memcmp(one, many, N * slot * sizeof *one) == 0);
  for (int i = 0; i < N; i++) {
    CHECK_EQ_INT(st1[i], i == 4 ? DLP_ERR_NOT_FOUND : DLP_OK);
    CHECK_EQ_INT(st4[i], st1[i]);
    CHECK((msg[i] != NULL) == (i == 4));
    if (i == 4 && msg[i]) CHECK(strstr(msg[i], "/nonexistent/dir/x.png"));
    free(msg[i]);
  }
  /* Each slot equals the single-image call with its seed. */
  float *x = calloc(slot, sizeof *x);
  for (int i = 0; i < N; i++) {
    if (i == 4) continue;
    CHECK_OK(ctx,
             dlp_image_augment_to_tensor(ctx, imgs[i], &a, seeds[i], &pp, x));
    CHECK(memcmp(x, one + (size_t)i * slot, slot * sizeof *x) == 0);
  }
  CHECK(memcmp(one + 0 * slot, one + 1 * slot, slot * sizeof *x) != 0);
  free(x);
  for (int i = 0; i < N; i++) {
    dlp_image_free(imgs[i]);
    unlink(paths[i]);
  }
  rmdir(dir);
  free(one);
  free(many);
  dlp_ctx_free(ctx);
}

TEST(seeds_differ_per_image_and_epoch) {
  uint64_t s = dlp_augment_seed(1, 0, 0);
  CHECK(s != dlp_augment_seed(1, 0, 1));
  CHECK(s != dlp_augment_seed(1, 1, 0));
  CHECK(s != dlp_augment_seed(2, 0, 0));
  CHECK(s == dlp_augment_seed(1, 0, 0));
}

TEST(bad_input_is_refused_with_a_message) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  dlp_augment a;
  dlp_augment_init(&a);
  dlp_augment_params p;
  CHECK_EQ_INT(dlp_augment_draw(ctx, &a, 0, 10, 1, &p), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "size"));
  a.ratio[0] = 0;
  CHECK_EQ_INT(dlp_augment_draw(ctx, &a, 10, 10, 1, &p), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "ratio"));
  dlp_augment_init(&a);
  CHECK_EQ_INT(dlp_augment_draw(ctx, NULL, 10, 10, 1, &p), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_augment_draw(ctx, &a, 10, 10, 1, NULL), DLP_ERR_ARG);
  dlp_image *img = pattern(10, 10, 3, 0), *out = (dlp_image *)1;
  dlp_augment_params box = {0, 0, 10, 10, 0, -1.0, 1.0, 1.0};
  CHECK_EQ_INT(dlp_augment_apply(ctx, img, &box, 4, 4, DLP_FILTER_BOX, &out),
               DLP_ERR_ARG);
  CHECK(out == NULL);
  CHECK(strstr(dlp_errmsg(ctx), "colour factor"));
  box.brightness = 1.0;
  CHECK_EQ_INT(dlp_augment_apply(ctx, img, &box, 0, 4, DLP_FILTER_BOX, &out),
               DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_augment_apply(ctx, NULL, &box, 4, 4, DLP_FILTER_BOX, &out),
               DLP_ERR_ARG);
  dlp_preprocess pp;
  dlp_preprocess_init(&pp);
  pp.width = pp.height = 4;
  pp.center_crop = 0.875;
  float t[48];
  CHECK_EQ_INT(dlp_image_augment_to_tensor(ctx, img, &a, 1, &pp, t),
               DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "center_crop"));
  pp.center_crop = 0;
  img->n_channels = 2;
  CHECK_EQ_INT(dlp_image_augment_to_tensor(ctx, img, &a, 1, &pp, t),
               DLP_ERR_ARG);
  img->n_channels = 3;
  CHECK_OK(ctx, dlp_image_augment_to_tensor(ctx, img, &a, 1, &pp, t));
  const char *path = "x";
  uint64_t seed = 0;
  CHECK_EQ_INT(dlp_batch_files_augment_to_tensor(ctx, &path, 1, &a, NULL, &pp,
                                                 t, NULL, NULL),
               DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_batch_files_augment_to_tensor(ctx, &path, 1, &a, &seed, NULL,
                                                 t, NULL, NULL),
               DLP_ERR_ARG);
  dlp_image_free(img);
  dlp_ctx_free(ctx);
}

int main(void) {
  RUN(draws_stay_in_range_and_flip_half_the_time);
  RUN(flip_probability_and_jitter_bounds_follow_options);
  RUN(crop_without_resize_is_slicing_and_flip_mirrors);
  RUN(tensor_is_the_augmented_image_normalised);
  RUN(batch_is_the_same_on_any_number_of_threads);
  RUN(seeds_differ_per_image_and_epoch);
  RUN(bad_input_is_refused_with_a_message);
  return test_summary();
}
