/* augment.c - training-time augmentation: random resized crop, horizontal
 * flip and colour jitter, drawn per image from a seed.
 *
 * The draws follow torchvision (RandomResizedCrop.get_params with its ten
 * tries and centre-crop fallback, RandomHorizontalFlip, ColorJitter's
 * factor ranges) so recipes written for it carry over; the colour formulas
 * are those of torchvision's functional adjust_* on uint8 tensors, in
 * float32 through tables (a product looked up, then one addition) so that
 * no compiler can fuse them into an FMA and change the rounding. Each image
 * gets its own generator, seeded by the caller (dlp_augment_seed), which
 * makes a batch the same on any number of threads.
 */
#include "image.h"

#include <math.h>
#include <string.h>

void dlp_augment_init(dlp_augment *a) {
  if (!a) return;
  memset(a, 0, sizeof *a);
  a->random_crop = 1;
  a->scale[0] = 0.08;
  a->scale[1] = 1.0;
  a->ratio[0] = 3.0 / 4.0;
  a->ratio[1] = 4.0 / 3.0;
  a->hflip = 0.5;
  a->brightness = a->contrast = a->saturation = 0.2;
}

uint64_t dlp_augment_seed(uint64_t seed, uint64_t epoch, uint64_t index) {
  uint64_t v[3] = {seed, epoch, index};
  return dlp_hash64(v, sizeof v, 0x61756730u);
}

/* ---- options and parameters ---------------------------------------------- */

static int aug_check(dlp_err *e, const dlp_augment *a) {
  if (!a) return dlp_err_set(e, DLP_ERR_ARG, "augment: options are NULL");
  if (a->random_crop &&
      !(a->scale[0] > 0 && a->scale[0] <= a->scale[1] && isfinite(a->scale[1])))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "augment: scale [%g, %g] (want 0 < min <= max)",
                       a->scale[0], a->scale[1]);
  if (a->random_crop &&
      !(a->ratio[0] > 0 && a->ratio[0] <= a->ratio[1] && isfinite(a->ratio[1])))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "augment: ratio [%g, %g] (want 0 < min <= max)",
                       a->ratio[0], a->ratio[1]);
  if (!(a->hflip >= 0 && a->hflip <= 1))
    return dlp_err_set(e, DLP_ERR_ARG, "augment: hflip %g (want 0..1)",
                       a->hflip);
  const double j[3] = {a->brightness, a->contrast, a->saturation};
  static const char *names[3] = {"brightness", "contrast", "saturation"};
  for (int i = 0; i < 3; i++)
    if (!(j[i] >= 0 && isfinite(j[i])))
      return dlp_err_set(e, DLP_ERR_ARG, "augment: %s %g (want >= 0)", names[i],
                         j[i]);
  return DLP_OK;
}

static double aug_uniform(dlp_rng *r, double lo, double hi) {
  return lo + (hi - lo) * dlp_rng_uniform(r);
}

/* torchvision's fallback: the centre crop at the nearest allowed ratio. */
static void aug_center_box(const dlp_augment *a, int32_t W, int32_t H,
                           dlp_augment_params *p) {
  double in_ratio = (double)W / (double)H;
  int64_t w = W, h = H;
  if (in_ratio < a->ratio[0])
    h = (int64_t)rint((double)W / a->ratio[0]);
  else if (in_ratio > a->ratio[1])
    w = (int64_t)rint((double)H * a->ratio[1]);
  h = h < 1 ? 1 : h > H ? H : h;
  w = w < 1 ? 1 : w > W ? W : w;
  p->width = (int32_t)w;
  p->height = (int32_t)h;
  p->y = (int32_t)((H - h) / 2);
  p->x = (int32_t)((W - w) / 2);
}

/* RandomResizedCrop.get_params: area and log-ratio uniform, sides rounded
 * half to even (Python's round), ten tries. */
static void aug_crop_box(const dlp_augment *a, int32_t W, int32_t H, dlp_rng *r,
                         dlp_augment_params *p) {
  double area = (double)W * (double)H;
  double lr0 = log(a->ratio[0]), lr1 = log(a->ratio[1]);
  for (int t = 0; t < 10; t++) {
    double target = area * aug_uniform(r, a->scale[0], a->scale[1]);
    double ar = exp(aug_uniform(r, lr0, lr1));
    double w = rint(sqrt(target * ar)), h = rint(sqrt(target / ar));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      p->width = (int32_t)w;
      p->height = (int32_t)h;
      p->y = (int32_t)dlp_rng_below(r, (uint64_t)(H - p->height) + 1);
      p->x = (int32_t)dlp_rng_below(r, (uint64_t)(W - p->width) + 1);
      return;
    }
  }
  aug_center_box(a, W, H, p);
}

/* Draw order: crop box, flip, then the three factors (always drawn, so
 * turning one part off does not shift the others' streams). */
static int aug_draw(dlp_err *e, const dlp_augment *a, int32_t W, int32_t H,
                    uint64_t seed, dlp_augment_params *p) {
  int rc = aug_check(e, a);
  if (rc != DLP_OK) return rc;
  if (W <= 0 || H <= 0)
    return dlp_err_set(e, DLP_ERR_ARG, "augment: image size %dx%d", (int)W,
                       (int)H);
  dlp_rng r;
  dlp_rng_seed(&r, seed);
  memset(p, 0, sizeof *p);
  p->width = W;
  p->height = H;
  if (a->random_crop) aug_crop_box(a, W, H, &r, p);
  p->flip = dlp_rng_uniform(&r) < a->hflip;
  const double j[3] = {a->brightness, a->contrast, a->saturation};
  double f[3];
  for (int i = 0; i < 3; i++) {
    double lo = 1.0 - j[i] < 0 ? 0 : 1.0 - j[i];
    double u = dlp_rng_uniform(&r);
    f[i] = j[i] > 0 ? lo + (1.0 + j[i] - lo) * u : 1.0;
  }
  p->brightness = f[0];
  p->contrast = f[1];
  p->saturation = f[2];
  return DLP_OK;
}

int dlp_augment_draw(dlp_ctx *ctx, const dlp_augment *a, int32_t width,
                     int32_t height, uint64_t seed, dlp_augment_params *out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "augment: out is NULL");
  int rc = aug_draw(ctx ? &ctx->err : NULL, a, width, height, seed, out);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

/* ---- colour: torchvision's adjust_* on uint8 ----------------------------- */

/* trunc(clamp(x, 0, 255)), as torch's clamp then .to(uint8). */
static uint8_t aug_u8(float x) {
  return x <= 0.0f ? 0 : x >= 255.0f ? 255 : (uint8_t)x;
}

/* fl(k * v) for every 8-bit v. */
static void aug_table(float k, float t[256]) {
  for (int v = 0; v < 256; v++)
    t[v] = k * (float)v;
}

/* torchvision's rgb_to_grayscale on uint8: trunc(0.2989 R + 0.587 G +
 * 0.114 B) in float32, summed left to right. */
typedef struct aug_gray {
  float r[256], g[256], b[256];
} aug_gray;

static void aug_gray_init(aug_gray *t) {
  aug_table(0.2989f, t->r);
  aug_table(0.587f, t->g);
  aug_table(0.114f, t->b);
}

static uint8_t aug_gray_px(const aug_gray *t, const uint8_t *px) {
  float s = t->r[px[0]] + t->g[px[1]];
  return aug_u8(s + t->b[px[2]]);
}

/* One float product, kept out of line so that it cannot be fused with the
 * addition that follows (torch rounds the product, then adds). */
static __attribute__((noinline)) float aug_mul(float a, float b) {
  return a * b;
}

/* _blend(img, other, f) with a constant other: f * v + (1 - f) * other. */
static void aug_blend_const(uint8_t *px, size_t n, double f, float other) {
  float a[256];
  aug_table((float)f, a);
  float add = aug_mul((float)(1.0 - f), other);
  for (size_t i = 0; i < n; i++)
    px[i] = aug_u8(a[px[i]] + add);
}

/* Contrast: blend with the mean of the grayscale image, computed exactly
 * (int64 sum, double division) then rounded to float. */
static void aug_contrast(uint8_t *px, size_t n, int c, double f) {
  uint64_t sum = 0;
  if (c == 1) {
    for (size_t i = 0; i < n; i++)
      sum += px[i];
  } else {
    aug_gray g;
    aug_gray_init(&g);
    for (size_t i = 0; i < n; i++)
      sum += aug_gray_px(&g, px + i * 3);
  }
  float mean = (float)((double)sum / (double)n);
  aug_blend_const(px, n * (size_t)c, f, mean);
}

/* Saturation: blend each pixel with its own grayscale value. */
static void aug_saturation(uint8_t *px, size_t n, double f) {
  aug_gray g;
  aug_gray_init(&g);
  float a[256], b[256];
  aug_table((float)f, a);
  aug_table((float)(1.0 - f), b);
  for (size_t i = 0; i < n; i++, px += 3) {
    float gb = b[aug_gray_px(&g, px)];
    for (int k = 0; k < 3; k++)
      px[k] = aug_u8(a[px[k]] + gb);
  }
}

/* Brightness, contrast, saturation in that order on n pixels of c = 1 or 3
 * channels; factor 1 skips a step (blend with f = 1 is the identity). */
static void aug_colour(uint8_t *px, size_t n, int c,
                       const dlp_augment_params *p) {
  if (p->brightness != 1.0)
    aug_blend_const(px, n * (size_t)c, p->brightness, 0);
  if (p->contrast != 1.0) aug_contrast(px, n, c, p->contrast);
  if (p->saturation != 1.0 && c == 3) aug_saturation(px, n, p->saturation);
}

/* ---- geometry ------------------------------------------------------------ */

typedef struct aug_sink {
  uint8_t *dst;
  int32_t w, c_in, c_out; /* c_out = 1 or 3; alpha dropped */
  int flip;
} aug_sink;

static void aug_take_row(void *user, int32_t y, const uint8_t *row) {
  const aug_sink *s = user;
  uint8_t *d = s->dst + (size_t)y * (size_t)s->w * (size_t)s->c_out;
  for (int32_t x = 0; x < s->w; x++) {
    int32_t sx = s->flip ? s->w - 1 - x : x;
    const uint8_t *px = row + (size_t)sx * (size_t)s->c_in;
    for (int32_t k = 0; k < s->c_out; k++)
      d[(size_t)x * s->c_out + k] = px[k];
  }
}

static int aug_apply(dlp_err *e, const dlp_image *src,
                     const dlp_augment_params *p, int32_t w, int32_t h,
                     dlp_filter filter, dlp_image **out) {
  *out = NULL;
  if (!src || !src->data || src->width <= 0 || src->height <= 0)
    return dlp_err_set(e, DLP_ERR_ARG, "augment: no image or empty image");
  int32_t c = src->n_channels;
  if (c != 1 && c != 3 && c != 4)
    return dlp_err_set(e, DLP_ERR_ARG, "augment: image has %d channels",
                       (int)c);
  if (!p) return dlp_err_set(e, DLP_ERR_ARG, "augment: parameters are NULL");
  if (p->x < 0 || p->y < 0 || p->width <= 0 || p->height <= 0 ||
      p->width > src->width - p->x || p->height > src->height - p->y)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "augment: crop box %dx%d at (%d, %d) is not inside the "
                       "%dx%d image",
                       (int)p->width, (int)p->height, (int)p->x, (int)p->y,
                       (int)src->width, (int)src->height);
  const double f[3] = {p->brightness, p->contrast, p->saturation};
  for (int i = 0; i < 3; i++)
    if (!(f[i] >= 0 && isfinite(f[i])))
      return dlp_err_set(e, DLP_ERR_ARG, "augment: colour factor %g", f[i]);
  dlp_image *img = NULL;
  int32_t oc = c == 1 ? 1 : 3;
  int rc = dlp_img_alloc(e, w, h, oc, &img);
  if (rc != DLP_OK) return rc;
  size_t stride = (size_t)src->width * (size_t)c;
  const uint8_t *view =
      src->data + (size_t)p->y * stride + (size_t)p->x * (size_t)c;
  aug_sink s = {img->data, w, c, oc, p->flip != 0};
  rc = dlp_img_resample_rows(e, view, p->width, p->height, c, stride, w, h,
                             filter, aug_take_row, &s);
  if (rc != DLP_OK) {
    dlp_image_free(img);
    return rc;
  }
  aug_colour(img->data, (size_t)w * (size_t)h, oc, p);
  *out = img;
  return DLP_OK;
}

int dlp_augment_apply(dlp_ctx *ctx, const dlp_image *src,
                      const dlp_augment_params *prm, int32_t width,
                      int32_t height, dlp_filter filter, dlp_image **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "augment: out is NULL");
  int rc =
      aug_apply(ctx ? &ctx->err : NULL, src, prm, width, height, filter, out);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

/* ---- to a tensor --------------------------------------------------------- */

int dlp_img_augment_to_tensor(dlp_err *e, const dlp_image *img,
                              const dlp_augment *a, uint64_t seed,
                              const dlp_preprocess *p, float *out) {
  if (!p || !out)
    return dlp_err_set(e, DLP_ERR_ARG, "augment: preprocess or out is NULL");
  if (p->center_crop != 0.0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "augment: center_crop %g (must be 0: the augmentation "
                       "chooses the crop)",
                       p->center_crop);
  if (p->width <= 0 || p->height <= 0)
    return dlp_err_set(e, DLP_ERR_ARG, "augment: output size %dx%d",
                       (int)p->width, (int)p->height);
  if (!img || img->width <= 0 || img->height <= 0)
    return dlp_err_set(e, DLP_ERR_ARG, "augment: no image or empty image");
  dlp_augment_params prm;
  int rc = aug_draw(e, a, img->width, img->height, seed, &prm);
  dlp_image *small = NULL;
  if (rc == DLP_OK)
    rc = aug_apply(e, img, &prm, p->width, p->height, p->filter, &small);
  /* Same size in and out: the resampler passes rows through, so this is
   * only the normalisation and layout of preprocess.c. */
  if (rc == DLP_OK) rc = dlp_img_to_tensor(e, small, p, out);
  dlp_image_free(small);
  return rc;
}

int dlp_image_augment_to_tensor(dlp_ctx *ctx, const dlp_image *img,
                                const dlp_augment *a, uint64_t seed,
                                const dlp_preprocess *p, float *out) {
  int rc =
      dlp_img_augment_to_tensor(ctx ? &ctx->err : NULL, img, a, seed, p, out);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

/* ---- batches of files ---------------------------------------------------- */

typedef struct aug_batch {
  const dlp_augment *a;
  const uint64_t *seeds;
  const dlp_preprocess *p;
} aug_batch;

static int aug_batch_tensor(dlp_err *e, const dlp_image *img, size_t i,
                            const void *user, float *out) {
  const aug_batch *b = user;
  return dlp_img_augment_to_tensor(e, img, b->a, b->seeds[i], b->p, out);
}

int dlp_batch_files_augment_to_tensor(dlp_ctx *ctx, const char *const *paths,
                                      size_t n, const dlp_augment *a,
                                      const uint64_t *seeds,
                                      const dlp_preprocess *p, float *out,
                                      int *status, char **errmsg) {
  dlp_err *e = ctx ? &ctx->err : NULL;
  int rc = aug_check(e, a);
  if (rc != DLP_OK) return rc;
  size_t slot = dlp_preprocess_size(p), total;
  if (slot == 0)
    return dlp_fail(ctx, DLP_ERR_ARG, "augment batch: bad output size");
  if (n == 0) return dlp_ok(ctx);
  if (!paths || !seeds || !out)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "augment batch: paths, seeds or out is NULL");
  if (!dlp_mul_size(slot, n, &total))
    return dlp_fail(ctx, DLP_ERR_TOO_LARGE, "augment batch: %zu images", n);
  /* Full-size decode: the random crop needs the whole image. */
  aug_batch b = {a, seeds, p};
  return dlp_img_batch_files(ctx, paths, n, slot, NULL, aug_batch_tensor, &b,
                             "augmenting", out, status, errmsg);
}
