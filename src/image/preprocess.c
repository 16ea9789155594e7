/* preprocess.c - centre crop, normalisation and layout: image -> float tensor.
 *
 * dlp_img_to_tensor fuses the work: the crop is a view into the source (no
 * copy), the resampler hands over one 8-bit output row at a time, and each row
 * is written straight into the float tensor through a 256-entry table per
 * output channel. So the result equals normalise(resize_uint8(crop(img)))
 * exactly (same 8-bit values as dlp_img_resize, same float per value), with
 * no intermediate image.
 *
 * Channels: gray is repeated into all three; RGBA's alpha is dropped and its
 * colour channels are resized independently (callers who want transparency
 * composited decode with keep_alpha = 0, the default, which composites on
 * white).
 *
 * The batch loop (dlp_img_batch_files: per-worker scratch, per-slot status)
 * lives here too, with the image -> tensor step a callback, so that plain
 * and augmenting batches (augment.c) share it. */
#include "image.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  dlp_norm norm;
} pp_norm_names[] = {{"tf", DLP_NORM_TF},
                     {"caffe", DLP_NORM_CAFFE},
                     {"torch", DLP_NORM_TORCH},
                     {"none", DLP_NORM_NONE},
                     {"custom", DLP_NORM_CUSTOM}};

int dlp_norm_from_name(const char *name, dlp_norm *out) {
  /* "custom" is not a name callers choose: it means explicit mean/std. */
  for (size_t i = 0; name && i < 4; i++)
    if (strcmp(name, pp_norm_names[i].name) == 0) {
      *out = pp_norm_names[i].norm;
      return 1;
    }
  return 0;
}

const char *dlp_norm_name(dlp_norm n) {
  for (size_t i = 0; i < sizeof pp_norm_names / sizeof pp_norm_names[0]; i++)
    if (pp_norm_names[i].norm == n) return pp_norm_names[i].name;
  return "unknown";
}

int dlp_parse_size(const char *s, int32_t *height, int32_t *width) {
  if (!s) return 0;
  char *end;
  long a = strtol(s, &end, 10);
  if (end == s || (*end != 'x' && *end != 'X') || !isdigit((unsigned char)*s))
    return 0;
  const char *p = end + 1;
  if (!isdigit((unsigned char)*p)) return 0;
  long b = strtol(p, &end, 10);
  if (*end || a < 1 || b < 1 || a > 65535 || b > 65535) return 0;
  *height = (int32_t)a;
  *width = (int32_t)b;
  return 1;
}

void dlp_preprocess_init(dlp_preprocess *p) {
  if (!p) return;
  memset(p, 0, sizeof *p);
  p->filter = DLP_FILTER_BILINEAR;
  p->center_crop = 0.0;
  p->norm = DLP_NORM_TF;
  p->layout = DLP_LAYOUT_NHWC;
  for (int c = 0; c < 3; c++)
    p->std[c] = 1.0f;
}

size_t dlp_preprocess_size(const dlp_preprocess *p) {
  size_t n;
  if (!p || p->width <= 0 || p->height <= 0) return 0;
  if (!dlp_mul_size((size_t)p->width, (size_t)p->height, &n) ||
      !dlp_mul_size(n, 3, &n))
    return 0;
  return n;
}

static int pp_check(dlp_err *e, const dlp_preprocess *p) {
  if (!p) return dlp_err_set(e, DLP_ERR_ARG, "preprocess: options are NULL");
  if (p->width <= 0 || p->height <= 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "preprocess: output size %dx%d (both must be > 0)",
                       (int)p->width, (int)p->height);
  if (dlp_preprocess_size(p) == 0)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE, "preprocess: output too large");
  if ((unsigned)p->filter > DLP_FILTER_LANCZOS)
    return dlp_err_set(e, DLP_ERR_ARG, "preprocess: unknown filter %d",
                       (int)p->filter);
  if ((unsigned)p->norm > DLP_NORM_CUSTOM)
    return dlp_err_set(e, DLP_ERR_ARG, "preprocess: unknown norm %d",
                       (int)p->norm);
  if (p->layout != DLP_LAYOUT_NHWC && p->layout != DLP_LAYOUT_NCHW)
    return dlp_err_set(e, DLP_ERR_ARG, "preprocess: unknown layout %d",
                       (int)p->layout);
  if (!(p->center_crop == 0.0 ||
        (p->center_crop > 0.0 && p->center_crop <= 1.0)))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "preprocess: center_crop %g (want 0 or in (0, 1])",
                       p->center_crop);
  for (int c = 0; p->norm == DLP_NORM_CUSTOM && c < 3; c++)
    if (!isfinite(p->mean[c]) || !isfinite(p->std[c]) || p->std[c] == 0.0f)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "preprocess: custom mean/std[%d] = %g/%g (std must "
                         "be finite and nonzero)",
                         c, p->mean[c], p->std[c]);
  return DLP_OK;
}

/* ---- centre crop -------------------------------------------------------- */

typedef struct pp_rect {
  int32_t x, y, w, h;
} pp_rect;

/* The largest w:h region of a W x H image is bw x bh (one side full, the
 * other floor()ed); scaled by fraction and floor()ed (1e-9 of slack so that
 * e.g. 0.7 * 10 gives 7, not 6), at least 1; placed at left = (W - cw) / 2,
 * top = (H - ch) / 2, rounded down. */
static pp_rect pp_crop_rect(int32_t W, int32_t H, int32_t w, int32_t h,
                            double fraction) {
  int64_t bw, bh;
  if ((int64_t)W * h >= (int64_t)H * w) {
    bh = H;
    bw = (int64_t)H * w / h;
  } else {
    bw = W;
    bh = (int64_t)W * h / w;
  }
  int64_t cw = (int64_t)(fraction * (double)bw + 1e-9);
  int64_t ch = (int64_t)(fraction * (double)bh + 1e-9);
  cw = cw < 1 ? 1 : cw > bw ? bw : cw;
  ch = ch < 1 ? 1 : ch > bh ? bh : ch;
  pp_rect r = {(int32_t)((W - cw) / 2), (int32_t)((H - ch) / 2), (int32_t)cw,
               (int32_t)ch};
  return r;
}

static int pp_check_image(dlp_err *e, const dlp_image *img) {
  if (!img || !img->data || img->width <= 0 || img->height <= 0)
    return dlp_err_set(e, DLP_ERR_ARG, "no image or empty image");
  if (img->n_channels != 1 && img->n_channels != 3 && img->n_channels != 4)
    return dlp_err_set(e, DLP_ERR_ARG, "image has %d channels (want 1, 3 or 4)",
                       (int)img->n_channels);
  return DLP_OK;
}

int dlp_img_center_crop(dlp_err *e, const dlp_image *src, int32_t width,
                        int32_t height, double fraction, dlp_image **out) {
  if (!out) return dlp_err_set(e, DLP_ERR_ARG, "center crop: out is NULL");
  *out = NULL;
  int rc = pp_check_image(e, src);
  if (rc != DLP_OK) return rc;
  if (width <= 0 || height <= 0)
    return dlp_err_set(e, DLP_ERR_ARG, "center crop: aspect %dx%d", (int)width,
                       (int)height);
  if (!(fraction > 0.0 && fraction <= 1.0))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "center crop: fraction %g (want 0 < f <= 1)", fraction);
  pp_rect r = pp_crop_rect(src->width, src->height, width, height, fraction);
  dlp_image *img = NULL;
  rc = dlp_img_alloc(e, r.w, r.h, src->n_channels, &img);
  if (rc != DLP_OK) return rc;
  size_t C = (size_t)src->n_channels, len = (size_t)r.w * C;
  for (int32_t y = 0; y < r.h; y++)
    memcpy(img->data + (size_t)y * len,
           src->data +
               ((size_t)(r.y + y) * (size_t)src->width + (size_t)r.x) * C,
           len);
  *out = img;
  return DLP_OK;
}

/* ---- normalisation tables and the fused row sink ------------------------ */

/* lut[oc][v]: the float for 8-bit value v in output channel oc; src[oc]: the
 * RGB index (0..2) feeding output channel oc. */
typedef struct pp_norm {
  float lut[3][256];
  int src[3];
} pp_norm;

static void pp_norm_make(const dlp_preprocess *p, pp_norm *n) {
  static const double caffe_mean[3] = {103.939, 116.779, 123.68}; /* B,G,R */
  static const double torch_mean[3] = {0.485, 0.456, 0.406};
  static const double torch_std[3] = {0.229, 0.224, 0.225};
  int bgr =
      p->norm == DLP_NORM_CAFFE ||
      ((p->norm == DLP_NORM_NONE || p->norm == DLP_NORM_CUSTOM) && p->bgr);
  for (int oc = 0; oc < 3; oc++) {
    n->src[oc] = bgr ? 2 - oc : oc;
    for (int v = 0; v < 256; v++) {
      double x = v, y = x;
      switch (p->norm) {
      case DLP_NORM_NONE:
        y = x;
        break;
      case DLP_NORM_TF:
        y = x / 127.5 - 1.0;
        break;
      case DLP_NORM_CAFFE:
        y = x - caffe_mean[oc];
        break;
      case DLP_NORM_TORCH:
        y = (x / 255.0 - torch_mean[oc]) / torch_std[oc];
        break;
      case DLP_NORM_CUSTOM:
        y = (x - (double)p->mean[oc]) / (double)p->std[oc];
        break;
      }
      n->lut[oc][v] = (float)y;
    }
  }
}

typedef struct pp_sink {
  const pp_norm *norm;
  float *out;
  int32_t w, h, c; /* output size, source channels */
  int nchw;
} pp_sink;

/* Writes one 8-bit row (c channels) as floats; gray feeds every output
 * channel, a fourth (alpha) channel is skipped. */
static void pp_emit_row(void *user, int32_t y, const uint8_t *row) {
  const pp_sink *s = user;
  const pp_norm *n = s->norm;
  int32_t w = s->w, c = s->c;
  int s0 = c == 1 ? 0 : n->src[0], s1 = c == 1 ? 0 : n->src[1],
      s2 = c == 1 ? 0 : n->src[2];
  if (s->nchw) {
    size_t plane = (size_t)w * (size_t)s->h;
    float *o0 = s->out + (size_t)y * (size_t)w, *o1 = o0 + plane,
          *o2 = o1 + plane;
    for (int32_t x = 0; x < w; x++) {
      const uint8_t *px = row + (size_t)x * (size_t)c;
      o0[x] = n->lut[0][px[s0]];
      o1[x] = n->lut[1][px[s1]];
      o2[x] = n->lut[2][px[s2]];
    }
  } else {
    float *o = s->out + (size_t)y * (size_t)w * 3;
    for (int32_t x = 0; x < w; x++, o += 3) {
      const uint8_t *px = row + (size_t)x * (size_t)c;
      o[0] = n->lut[0][px[s0]];
      o[1] = n->lut[1][px[s1]];
      o[2] = n->lut[2][px[s2]];
    }
  }
}

int dlp_img_to_tensor(dlp_err *e, const dlp_image *img, const dlp_preprocess *p,
                      float *out) {
  int rc = pp_check(e, p);
  if (rc == DLP_OK) rc = pp_check_image(e, img);
  if (rc != DLP_OK) return rc;
  if (!out) return dlp_err_set(e, DLP_ERR_ARG, "preprocess: out is NULL");
  pp_rect r = {0, 0, img->width, img->height};
  if (p->center_crop > 0.0)
    r = pp_crop_rect(img->width, img->height, p->width, p->height,
                     p->center_crop);
  pp_norm *norm = malloc(sizeof *norm);
  if (!norm) return dlp_err_set(e, DLP_ERR_NOMEM, "preprocess: no memory");
  pp_norm_make(p, norm);
  pp_sink s = {norm,
               out,
               p->width,
               p->height,
               img->n_channels,
               p->layout == DLP_LAYOUT_NCHW};
  size_t C = (size_t)img->n_channels, stride = (size_t)img->width * C;
  const uint8_t *view = img->data + (size_t)r.y * stride + (size_t)r.x * C;
  rc = dlp_img_resample_rows(e, view, r.w, r.h, img->n_channels, stride,
                             p->width, p->height, p->filter, pp_emit_row, &s);
  free(norm);
  return rc;
}

/* ---- from a file -------------------------------------------------------- */

static int64_t pp_ceil_div(double a, double f) {
  double q = ceil(a / f - 1e-9);
  return q < 1 ? 1 : (int64_t)q;
}

/* The smallest decode size that still covers the output: without a crop,
 * the output size. With crop fraction f the crop base region (the largest
 * w:h region) must be at least ceil(w/f) x ceil(h/f) so that its f-scaled
 * crop covers w x h; the base takes one full side and the other by aspect,
 * floor()ed, so each side must also be large enough for the other side's
 * requirement: W >= ceil(ceil(h/f) * w / h), H >= ceil(ceil(w/f) * h / w). */
static void pp_decode_target(const dlp_preprocess *p, dlp_decode_opts *o) {
  o->target_width = p->width;
  o->target_height = p->height;
  if (p->center_crop <= 0.0) return;
  int64_t tw = pp_ceil_div(p->width, p->center_crop);
  int64_t th = pp_ceil_div(p->height, p->center_crop);
  int64_t tw2 = (th * p->width + p->height - 1) / p->height;
  int64_t th2 = (tw * p->height + p->width - 1) / p->width;
  if (tw2 > tw) tw = tw2;
  if (th2 > th) th = th2;
  o->target_width = tw > INT32_MAX ? INT32_MAX : (int)tw;
  o->target_height = th > INT32_MAX ? INT32_MAX : (int)th;
}

/* Puts "path: " before e's message; returns rc. */
static int pp_err_prefix(dlp_err *e, int rc, const char *path) {
  if (!e) return rc;
  char old[DLP_ERRMSG_MAX];
  memcpy(old, e->msg, sizeof old);
  old[sizeof old - 1] = '\0';
  return dlp_err_set(e, rc, "%s: %s", path, old);
}

/* Reads path into s->file and decodes it into s->pix (*view). */
static int pp_read_decode(dlp_err *e, const dlp_limits *lim, const char *path,
                          const dlp_decode_opts *o, dlp_img_scratch *s,
                          dlp_image *view) {
  size_t len = 0;
  int rc = dlp_read_file_into(e, path, lim->max_file_bytes, &s->file,
                              &s->file_cap, &len);
  if (rc != DLP_OK) return rc;
  return dlp_img_decode_scratch(e, lim, s->file, len, o, s, view);
}

int dlp_img_file_to_tensor(dlp_err *e, const dlp_limits *lim, const char *path,
                           const dlp_preprocess *p, float *out) {
  return dlp_img_file_to_tensor_s(e, lim, path, p, out, NULL);
}

int dlp_img_file_to_tensor_s(dlp_err *e, const dlp_limits *lim,
                             const char *path, const dlp_preprocess *p,
                             float *out, dlp_img_scratch *s) {
  if (!path) return dlp_err_set(e, DLP_ERR_ARG, "preprocess: path is NULL");
  if (!lim || !out)
    return dlp_err_set(e, DLP_ERR_ARG, "%s: limits or out is NULL", path);
  int rc = pp_check(e, p);
  if (rc != DLP_OK) return pp_err_prefix(e, rc, path);
  dlp_img_scratch own = {0};
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  pp_decode_target(p, &o);
  dlp_image view;
  rc = pp_read_decode(e, lim, path, &o, s ? s : &own, &view);
  if (rc == DLP_OK) rc = dlp_img_to_tensor(e, &view, p, out);
  dlp_img_scratch_release(&own);
  return rc == DLP_OK ? DLP_OK : pp_err_prefix(e, rc, path);
}

/* ---- batches ------------------------------------------------------------ */

typedef struct pp_batch {
  const char *const *paths;
  const dlp_decode_opts *opts;
  dlp_img_batch_fn fn;
  const void *user;
  dlp_limits lim;
  size_t slot;
  float *out;
  int *status;
  char **errmsg;
  dlp_img_scratch *scratch; /* one per worker */
} pp_batch;

static int pp_batch_file(dlp_err *e, const pp_batch *b, size_t i,
                         dlp_img_scratch *s, float *dst) {
  const char *path = b->paths[i];
  if (!path) return dlp_err_set(e, DLP_ERR_ARG, "path %zu is NULL", i);
  dlp_image view;
  int rc = pp_read_decode(e, &b->lim, path, b->opts, s, &view);
  if (rc == DLP_OK) rc = b->fn(e, &view, i, b->user, dst);
  return rc == DLP_OK ? DLP_OK : pp_err_prefix(e, rc, path);
}

static void pp_batch_one(size_t i, void *user, int worker) {
  pp_batch *b = user;
  dlp_err e = {0};
  float *dst = b->out + i * b->slot;
  int rc = pp_batch_file(&e, b, i, &b->scratch[worker], dst);
  if (rc != DLP_OK) memset(dst, 0, b->slot * sizeof *dst);
  if (b->status) b->status[i] = rc;
  if (b->errmsg && rc != DLP_OK) b->errmsg[i] = dlp_strdup(e.msg);
}

int dlp_img_batch_files(dlp_ctx *ctx, const char *const *paths, size_t n,
                        size_t slot, const dlp_decode_opts *opts,
                        dlp_img_batch_fn fn, const void *user, const char *what,
                        float *out, int *status, char **errmsg) {
  for (size_t i = 0; i < n; i++) {
    if (status) status[i] = DLP_ERR_ARG; /* until done (cancellation) */
    if (errmsg) errmsg[i] = NULL;
  }
  if (n == 0) return dlp_ok(ctx);
  int threads = dlp_ctx_threads(ctx);
  dlp_img_scratch *scratch = calloc((size_t)threads, sizeof *scratch);
  if (!scratch) return dlp_fail(ctx, DLP_ERR_NOMEM, "batch: no memory");
  pp_batch b = {paths, opts, fn,     user,   dlp_ctx_limits(ctx),
                slot,  out,  status, errmsg, scratch};
  bool done = dlp_parallel_for(n, threads, pp_batch_one, &b, ctx, what);
  for (int t = 0; t < threads; t++)
    dlp_img_scratch_release(&scratch[t]);
  free(scratch);
  if (!done) return dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  return dlp_ok(ctx);
}

static int pp_batch_tensor(dlp_err *e, const dlp_image *img, size_t i,
                           const void *user, float *out) {
  (void)i;
  return dlp_img_to_tensor(e, img, user, out);
}

int dlp_batch_files_to_tensor(dlp_ctx *ctx, const char *const *paths, size_t n,
                              const dlp_preprocess *p, float *out, int *status,
                              char **errmsg) {
  dlp_err *e = ctx ? &ctx->err : NULL;
  int rc = pp_check(e, p);
  if (rc != DLP_OK) return rc;
  if (n == 0) return dlp_ok(ctx);
  if (!paths || !out)
    return dlp_fail(ctx, DLP_ERR_ARG, "batch: paths or out is NULL");
  size_t slot = dlp_preprocess_size(p), total;
  if (!dlp_mul_size(slot, n, &total))
    return dlp_fail(ctx, DLP_ERR_TOO_LARGE, "batch: %zu images too large", n);
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  pp_decode_target(p, &o);
  return dlp_img_batch_files(ctx, paths, n, slot, &o, pp_batch_tensor, p,
                             "preprocessing", out, status, errmsg);
}

/* ---- public wrappers ---------------------------------------------------- */

int dlp_image_center_crop(dlp_ctx *ctx, const dlp_image *src, int32_t width,
                          int32_t height, double fraction, dlp_image **out) {
  int rc = dlp_img_center_crop(ctx ? &ctx->err : NULL, src, width, height,
                               fraction, out);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

int dlp_image_to_tensor(dlp_ctx *ctx, const dlp_image *img,
                        const dlp_preprocess *p, float *out) {
  int rc = dlp_img_to_tensor(ctx ? &ctx->err : NULL, img, p, out);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

int dlp_image_file_to_tensor(dlp_ctx *ctx, const char *path,
                             const dlp_preprocess *p, float *out) {
  dlp_limits lim = dlp_ctx_limits(ctx);
  int rc = dlp_img_file_to_tensor(ctx ? &ctx->err : NULL, &lim, path, p, out);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}
