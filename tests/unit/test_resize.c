/* test_resize.c - unit tests of resize, centre crop and image -> tensor.
 *
 * Expected values come from the documented formulas, computed here by hand;
 * bit-exactness against PIL is checked by tests/ref/test_resize_vs_pil.py. */
#include "dlp.h"
#include "test.h"

#include <stdint.h>
#include <unistd.h>

static const dlp_filter FILTERS[4] = {DLP_FILTER_BILINEAR, DLP_FILTER_BOX,
                                      DLP_FILTER_BICUBIC, DLP_FILTER_LANCZOS};

/* A w x h image with channels c, pixel bytes from a simple hash. */
static dlp_image *make_image(dlp_ctx *ctx, int w, int h, int c, unsigned seed) {
  dlp_image *img = NULL;
  if (dlp_image_new(ctx, w, h, c, &img) != DLP_OK) return NULL;
  size_t n = (size_t)w * h * c;
  for (size_t i = 0; i < n; i++)
    img->data[i] = (uint8_t)((i * 2654435761u + seed * 40503u) >> 13);
  return img;
}

TEST(identity_resize_keeps_pixels) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  for (int c = 1; c <= 4; c++) {
    if (c == 2) continue;
    dlp_image *src = make_image(ctx, 13, 7, c, (unsigned)c);
    CHECK(src != NULL);
    for (int f = 0; f < 4 && src; f++) {
      dlp_image *out = NULL;
      CHECK_OK(ctx, dlp_image_resize(ctx, src, 13, 7, FILTERS[f], &out));
      CHECK(out && memcmp(out->data, src->data, (size_t)13 * 7 * c) == 0);
      dlp_image_free(out);
    }
    dlp_image_free(src);
  }
  dlp_ctx_free(ctx);
}

/* Weights are normalised to sum 1, so a flat image stays flat (RGBA with
 * alpha 255: premultiplication is then the identity). */
TEST(constant_image_stays_constant) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  static const int sizes[][2] = {{1, 1}, {3, 2}, {10, 10}, {40, 7}, {97, 61}};
  static const int chans[3] = {1, 3, 4};
  for (int ci = 0; ci < 3; ci++) {
    int c = chans[ci];
    dlp_image *src = NULL;
    CHECK_OK(ctx, dlp_image_new(ctx, 23, 17, c, &src));
    if (!src) continue;
    for (size_t i = 0; i < (size_t)23 * 17 * c; i++)
      src->data[i] =
          (c == 4 && i % 4 == 3) ? 255 : (uint8_t)(37 + 50 * (i % c));
    for (int f = 0; f < 4; f++)
      for (int s = 0; s < 5; s++) {
        dlp_image *out = NULL;
        CHECK_OK(ctx, dlp_image_resize(ctx, src, sizes[s][0], sizes[s][1],
                                       FILTERS[f], &out));
        if (!out) continue;
        size_t n = (size_t)out->width * out->height * c, bad = 0;
        for (size_t i = 0; i < n; i++)
          bad += out->data[i] != src->data[i % c];
        CHECK_EQ_INT(bad, 0);
        dlp_image_free(out);
      }
    dlp_image_free(src);
  }
  dlp_ctx_free(ctx);
}

/* BOX at exactly 1/2: each pass averages two values with weights 1/2 and
 * rounds half up, horizontal pass first:
 *   out = (((a + b + 1) >> 1) + ((c + d + 1) >> 1) + 1) >> 1
 * where a, b are the top pair and c, d the bottom pair. */
TEST(box_half_is_two_by_two_mean) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  for (int c = 1; c <= 4; c++) {
    if (c == 2) continue;
    dlp_image *src = make_image(ctx, 20, 14, c, 99), *out = NULL;
    if (c == 4)
      for (size_t i = 3; i < (size_t)20 * 14 * 4; i += 4)
        src->data[i] = 255;
    CHECK_OK(ctx, dlp_image_resize(ctx, src, 10, 7, DLP_FILTER_BOX, &out));
    if (!out) {
      dlp_image_free(src);
      continue;
    }
    CHECK_EQ_INT(out->n_channels, c);
    int bad = 0;
    for (int y = 0; y < 7; y++)
      for (int x = 0; x < 10; x++)
        for (int k = 0; k < c; k++) {
          const uint8_t *p = src->data;
          int a = p[((2 * y) * 20 + 2 * x) * c + k];
          int b = p[((2 * y) * 20 + 2 * x + 1) * c + k];
          int cc = p[((2 * y + 1) * 20 + 2 * x) * c + k];
          int d = p[((2 * y + 1) * 20 + 2 * x + 1) * c + k];
          int want = (((a + b + 1) >> 1) + ((cc + d + 1) >> 1) + 1) >> 1;
          bad += out->data[(y * 10 + x) * c + k] != want;
        }
    CHECK_EQ_INT(bad, 0);
    dlp_image_free(out);
    dlp_image_free(src);
  }
  dlp_ctx_free(ctx);
}

TEST(channels_and_mode_kept) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  static const int chans[3] = {1, 3, 4};
  static const int modes[3] = {DLP_MODE_8UC1, DLP_MODE_8UC3, DLP_MODE_8UC4};
  for (int i = 0; i < 3; i++) {
    dlp_image *src = make_image(ctx, 31, 9, chans[i], 3), *out = NULL;
    CHECK_OK(ctx, dlp_image_resize(ctx, src, 12, 40, DLP_FILTER_BICUBIC, &out));
    CHECK(out && out->width == 12 && out->height == 40 &&
          out->n_channels == chans[i] && out->mode == modes[i]);
    dlp_image_free(out);
    dlp_image_free(src);
  }
  dlp_ctx_free(ctx);
}

/* Pixel (x, y) of a pattern image holds x + 7 y (mod 256), so a crop shows
 * where it was cut from. */
static void check_crop(dlp_ctx *ctx, const dlp_image *src, int w, int h,
                       double f, int cw, int ch, int x0, int y0) {
  dlp_image *out = NULL;
  CHECK_OK(ctx, dlp_image_center_crop(ctx, src, w, h, f, &out));
  if (!out) return;
  CHECK_EQ_INT(out->width, cw);
  CHECK_EQ_INT(out->height, ch);
  if (out->width == cw && out->height == ch) {
    CHECK_EQ_INT(out->data[0], (x0 + 7 * y0) & 255);
    CHECK_EQ_INT(out->data[(size_t)(ch - 1) * cw + cw - 1],
                 (x0 + cw - 1 + 7 * (y0 + ch - 1)) & 255);
  }
  dlp_image_free(out);
}

TEST(center_crop_geometry) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  dlp_image *src = NULL;
  CHECK_OK(ctx, dlp_image_new(ctx, 100, 50, 1, &src));
  if (!src) return;
  for (int y = 0; y < 50; y++)
    for (int x = 0; x < 100; x++)
      src->data[y * 100 + x] = (uint8_t)(x + 7 * y);
  /* Square of a 100x50: 50x50 at left (100 - 50) / 2 = 25. */
  check_crop(ctx, src, 1, 1, 1.0, 50, 50, 25, 0);
  /* 16:9 of 100x50: height full, width floor(50 * 16 / 9) = 88, left 6. */
  check_crop(ctx, src, 16, 9, 1.0, 88, 50, 6, 0);
  /* Half of that: 44x25 at (28, 12). */
  check_crop(ctx, src, 16, 9, 0.5, 44, 25, 28, 12);
  /* Tall 1:3 of 100x50: width floor(50 / 3) = 16, left 42. */
  check_crop(ctx, src, 1, 3, 1.0, 16, 50, 42, 0);
  /* 0.875 of the square: floor(43.75) = 43 at ((100-43)/2, (50-43)/2). */
  check_crop(ctx, src, 224, 224, 0.875, 43, 43, 28, 3);
  /* Tiny fractions still give a pixel. */
  check_crop(ctx, src, 1, 1, 0.001, 1, 1, 49, 24);
  dlp_image_free(src);
  dlp_ctx_free(ctx);
}

/* A 2x1 RGB image at output size 2x1 (no resampling): every mode's value at
 * every index is the documented formula applied by hand. */
TEST(normalisation_modes_on_known_pixels) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  dlp_image *img = NULL;
  CHECK_OK(ctx, dlp_image_new(ctx, 2, 1, 3, &img));
  if (!img) return;
  const uint8_t px[2][3] = {{10, 100, 200}, {255, 0, 51}};
  memcpy(img->data, px, 6);
  dlp_preprocess p;
  dlp_preprocess_init(&p);
  p.width = 2;
  p.height = 1;
  CHECK_EQ_INT(dlp_preprocess_size(&p), 6);
  float out[6];
  const double caffe[3] = {103.939, 116.779, 123.68}; /* B, G, R */
  const double tm[3] = {0.485, 0.456, 0.406}, ts[3] = {0.229, 0.224, 0.225};
  for (int mode = 0; mode < 6; mode++) {
    for (int layout = 0; layout < 2; layout++) {
      dlp_preprocess_init(&p);
      p.width = 2;
      p.height = 1;
      p.layout = layout ? DLP_LAYOUT_NCHW : DLP_LAYOUT_NHWC;
      p.norm = mode == 5 ? DLP_NORM_CUSTOM : (dlp_norm)mode;
      if (mode == 5) { /* custom with BGR order */
        p.bgr = 1;
        p.mean[0] = 1, p.mean[1] = 2, p.mean[2] = 3;
        p.std[0] = 2, p.std[1] = 4, p.std[2] = 8;
      }
      CHECK_OK(ctx, dlp_image_to_tensor(ctx, img, &p, out));
      for (int x = 0; x < 2; x++)
        for (int c = 0; c < 3; c++) {
          double r = px[x][0], g = px[x][1], b = px[x][2];
          double rgb[3] = {r, g, b}, bgr[3] = {b, g, r}, want = 0;
          switch (p.norm) {
          case DLP_NORM_NONE:
            want = rgb[c];
            break;
          case DLP_NORM_TF:
            want = rgb[c] / 127.5 - 1;
            break;
          case DLP_NORM_CAFFE:
            want = bgr[c] - caffe[c];
            break;
          case DLP_NORM_TORCH:
            want = (rgb[c] / 255 - tm[c]) / ts[c];
            break;
          case DLP_NORM_CUSTOM:
            want = ((p.bgr ? bgr : rgb)[c] - p.mean[c]) / p.std[c];
            break;
          }
          int idx = layout ? c * 2 + x : x * 3 + c; /* C x H(1) x W(2) */
          CHECK_NEAR(out[idx], want, 1e-5 * (1 + fabs(want)));
        }
    }
  }
  /* Gray repeats, RGBA drops alpha. */
  dlp_image *g = NULL, *a = NULL;
  CHECK_OK(ctx, dlp_image_new(ctx, 1, 1, 1, &g));
  CHECK_OK(ctx, dlp_image_new(ctx, 1, 1, 4, &a));
  if (g && a) {
    g->data[0] = 51;
    memcpy(a->data, (uint8_t[4]){0, 255, 51, 7}, 4);
    dlp_preprocess_init(&p);
    p.width = p.height = 1;
    p.norm = DLP_NORM_NONE;
    CHECK_OK(ctx, dlp_image_to_tensor(ctx, g, &p, out));
    CHECK(out[0] == 51 && out[1] == 51 && out[2] == 51);
    CHECK_OK(ctx, dlp_image_to_tensor(ctx, a, &p, out));
    CHECK(out[0] == 0 && out[1] == 255 && out[2] == 51);
  }
  dlp_image_free(g);
  dlp_image_free(a);
  dlp_image_free(img);
  dlp_ctx_free(ctx);
}

TEST(preprocess_defaults) {
  dlp_preprocess p;
  memset(&p, 0x5a, sizeof p);
  dlp_preprocess_init(&p);
  CHECK(p.width == 0 && p.height == 0 && p.filter == DLP_FILTER_BILINEAR &&
        p.center_crop == 0.0 && p.norm == DLP_NORM_TF &&
        p.layout == DLP_LAYOUT_NHWC && p.bgr == 0);
  for (int c = 0; c < 3; c++)
    CHECK(p.mean[c] == 0.0f && p.std[c] == 1.0f);
  CHECK_EQ_INT(dlp_preprocess_size(&p), 0);
  p.width = 299;
  p.height = 224;
  CHECK_EQ_INT(dlp_preprocess_size(&p), 299 * 224 * 3);
}

TEST(bad_arguments_are_refused) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  dlp_image *img = make_image(ctx, 8, 8, 3, 1), *out = (dlp_image *)1;
  CHECK_EQ_INT(dlp_image_resize(ctx, img, 0, 5, DLP_FILTER_BOX, &out),
               DLP_ERR_ARG);
  CHECK(out == NULL);
  CHECK_EQ_INT(dlp_image_resize(ctx, img, 5, -1, DLP_FILTER_BOX, &out),
               DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_resize(ctx, NULL, 5, 5, DLP_FILTER_BOX, &out),
               DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_resize(ctx, img, 5, 5, (dlp_filter)42, &out),
               DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_resize(ctx, img, 5, 5, DLP_FILTER_BOX, NULL),
               DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_center_crop(ctx, img, 1, 1, 0.0, &out), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_center_crop(ctx, img, 1, 1, 1.5, &out), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_center_crop(ctx, img, 1, 1, NAN, &out), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_center_crop(ctx, img, 0, 1, 0.5, &out), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_center_crop(ctx, NULL, 1, 1, 0.5, &out), DLP_ERR_ARG);
  dlp_preprocess p;
  dlp_preprocess_init(&p);
  float t[3 * 4 * 4];
  CHECK_EQ_INT(dlp_image_to_tensor(ctx, img, &p, t), DLP_ERR_ARG); /* 0 size */
  CHECK(strstr(dlp_errmsg(ctx), "size") != NULL);
  p.width = p.height = 4;
  CHECK_OK(ctx, dlp_image_to_tensor(ctx, img, &p, t));
  CHECK_EQ_INT(dlp_image_to_tensor(ctx, NULL, &p, t), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_to_tensor(ctx, img, NULL, t), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_to_tensor(ctx, img, &p, NULL), DLP_ERR_ARG);
  p.center_crop = 1.5;
  CHECK_EQ_INT(dlp_image_to_tensor(ctx, img, &p, t), DLP_ERR_ARG);
  p.center_crop = -0.5;
  CHECK_EQ_INT(dlp_image_to_tensor(ctx, img, &p, t), DLP_ERR_ARG);
  p.center_crop = 0;
  p.norm = DLP_NORM_CUSTOM;
  p.std[1] = 0;
  CHECK_EQ_INT(dlp_image_to_tensor(ctx, img, &p, t), DLP_ERR_ARG);
  dlp_preprocess_init(&p);
  p.width = p.height = 4;
  p.layout = (dlp_layout)7;
  CHECK_EQ_INT(dlp_image_to_tensor(ctx, img, &p, t), DLP_ERR_ARG);
  dlp_image_free(img);
  dlp_ctx_free(ctx);
}

/* A 24-bit bottom-up BMP of w x h pixels px (RGB, top row first). */
static int write_bmp(const char *path, int w, int h, const uint8_t *px) {
  int row = (w * 3 + 3) & ~3, size = 54 + row * h;
  uint8_t hdr[54] = {'B', 'M'};
  hdr[2] = (uint8_t)size, hdr[3] = (uint8_t)(size >> 8);
  hdr[10] = 54, hdr[14] = 40;
  hdr[18] = (uint8_t)w, hdr[22] = (uint8_t)h, hdr[26] = 1, hdr[28] = 24;
  FILE *fp = fopen(path, "wb");
  if (!fp) return -1;
  fwrite(hdr, 1, 54, fp);
  for (int y = h - 1; y >= 0; y--) {
    uint8_t line[64] = {0};
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++)
        line[x * 3 + c] = px[(y * w + x) * 3 + 2 - c];
    fwrite(line, 1, (size_t)row, fp);
  }
  return fclose(fp);
}

TEST(batch_goes_on_past_a_missing_file) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  dlp_ctx_set_threads(ctx, 2);
  char dir[] = "/tmp/dlp_test_resize_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char good1[128], good2[128], missing[128];
  snprintf(good1, sizeof good1, "%s/a.bmp", dir);
  snprintf(good2, sizeof good2, "%s/b.bmp", dir);
  snprintf(missing, sizeof missing, "%s/missing.bmp", dir);
  uint8_t px1[4 * 3 * 3], px2[4 * 3 * 3];
  for (int i = 0; i < 36; i++)
    px1[i] = (uint8_t)(i * 7), px2[i] = (uint8_t)(250 - i * 5);
  CHECK(write_bmp(good1, 4, 3, px1) == 0 && write_bmp(good2, 4, 3, px2) == 0);
  const char *paths[3] = {good1, missing, good2};
  dlp_preprocess p;
  dlp_preprocess_init(&p);
  p.width = 4; /* same size: values are exactly the tf formula of the pixels */
  p.height = 3;
  size_t slot = dlp_preprocess_size(&p);
  float *out = malloc(3 * slot * sizeof *out);
  for (size_t i = 0; i < 3 * slot; i++)
    out[i] = 123.0f;
  int status[3] = {-1, -1, -1};
  char *msgs[3] = {(char *)1, (char *)1, (char *)1};
  CHECK_OK(ctx,
           dlp_batch_files_to_tensor(ctx, paths, 3, &p, out, status, msgs));
  CHECK_EQ_INT(status[0], DLP_OK);
  CHECK_EQ_INT(status[1], DLP_ERR_NOT_FOUND);
  CHECK_EQ_INT(status[2], DLP_OK);
  CHECK(msgs[0] == NULL && msgs[2] == NULL);
  CHECK(msgs[1] && strstr(msgs[1], missing) == msgs[1]);
  int bad = 0;
  for (size_t i = 0; i < slot; i++) {
    bad += fabs(out[i] - (px1[i] / 127.5 - 1)) > 1e-6;
    bad += out[slot + i] != 0.0f;
    bad += fabs(out[2 * slot + i] - (px2[i] / 127.5 - 1)) > 1e-6;
  }
  CHECK_EQ_INT(bad, 0);
  for (int i = 0; i < 3; i++)
    free(msgs[i]);
  /* The single-file call reports the path too. */
  CHECK_EQ_INT(dlp_image_file_to_tensor(ctx, missing, &p, out),
               DLP_ERR_NOT_FOUND);
  CHECK(strstr(dlp_errmsg(ctx), missing) != NULL);
  /* Bad options fail the call itself. */
  p.width = 0;
  CHECK_EQ_INT(dlp_batch_files_to_tensor(ctx, paths, 3, &p, out, status, NULL),
               DLP_ERR_ARG);
  free(out);
  unlink(good1);
  unlink(good2);
  rmdir(dir);
  dlp_ctx_free(ctx);
}

TEST(size_and_norm_names_parse_strictly) {
  int32_t h = 7, w = 7;
  CHECK(dlp_parse_size("299x224", &h, &w) && h == 299 && w == 224);
  CHECK(dlp_parse_size("1X1", &h, &w) && h == 1 && w == 1);
  const char *bad[] = {"", "x", "299", "299x", "x299", "0x5", "5x0", "-3x3",
                       " 3x3", "3x 3", "3x3 ", "65536x1", "3x3x3", "+3x3"};
  h = w = 7;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(!dlp_parse_size(bad[i], &h, &w));
  CHECK(h == 7 && w == 7); /* untouched on failure */
  CHECK(!dlp_parse_size(NULL, &h, &w));
  const char *names[] = {"tf", "caffe", "torch", "none"};
  for (int i = 0; i < 4; i++) {
    dlp_norm n = DLP_NORM_CUSTOM;
    CHECK(dlp_norm_from_name(names[i], &n));
    CHECK_STR(dlp_norm_name(n), names[i]);
  }
  dlp_norm n = DLP_NORM_TF;
  CHECK(!dlp_norm_from_name("TF", &n) && !dlp_norm_from_name("custom", &n));
  CHECK(!dlp_norm_from_name(NULL, &n) && n == DLP_NORM_TF);
  CHECK_STR(dlp_norm_name(DLP_NORM_CUSTOM), "custom");
  CHECK_STR(dlp_norm_name((dlp_norm)99), "unknown");
}

int main(void) {
  RUN(identity_resize_keeps_pixels);
  RUN(constant_image_stays_constant);
  RUN(box_half_is_two_by_two_mean);
  RUN(channels_and_mode_kept);
  RUN(center_crop_geometry);
  RUN(normalisation_modes_on_known_pixels);
  RUN(preprocess_defaults);
  RUN(bad_arguments_are_refused);
  RUN(batch_goes_on_past_a_missing_file);
  RUN(size_and_norm_names_parse_strictly);
  return test_summary();
}
