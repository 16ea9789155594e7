/* decode.c - decoding front: format dispatch, the pixel limit, the alpha
 * policy (composite on white / keep / expand), gray->RGB, orientation.
 *
 * Compositing on white, per channel, in integers (round half up):
 *     out = (c * a + 255 * (255 - a) + 127) / 255
 * i.e. c * a/255 + 255 * (1 - a/255) rounded to the nearest integer.
 */
#include "decoders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dlp_img_check_pixels(dlp_err *e, const dlp_limits *lim, uint64_t width,
                         uint64_t height) {
  uint64_t max =
      lim && lim->max_pixels ? lim->max_pixels : DLP_DEFAULT_MAX_PIXELS;
  /* Header sizes are at most 32 bits each, so the product fits 64 bits. */
  uint64_t n = width * height;
  if (n <= max) return DLP_OK;
  return dlp_err_set(e, DLP_ERR_TOO_LARGE,
                     "image is %llux%llu = %llu pixels, over the limit of %llu "
                     "(dlp_ctx_set_max_pixels / --max-pixels)",
                     (unsigned long long)width, (unsigned long long)height,
                     (unsigned long long)n, (unsigned long long)max);
}

uint8_t *dlp_img_alloc_pixels(dlp_err *e, int32_t width, int32_t height,
                              int32_t channels) {
  size_t n;
  uint8_t *p = NULL;
  if (width > 0 && height > 0 && channels > 0 &&
      dlp_mul_size((size_t)width, (size_t)height, &n))
    p = dlp_malloc_array(n, (size_t)channels);
  if (!p)
    dlp_err_set(e, DLP_ERR_NOMEM, "no memory for a %dx%d image of %d channels",
                (int)width, (int)height, (int)channels);
  return p;
}

uint8_t *dlp_img_raw_alloc(dlp_err *e, dlp_raw *raw, int32_t width,
                           int32_t height, int32_t channels) {
  size_t n = 0;
  bool ok = width > 0 && height > 0 && channels > 0 &&
            dlp_mul_size((size_t)width, (size_t)height, &n) &&
            dlp_mul_size(n, (size_t)channels, &n);
  if (ok && raw->data && raw->cap >= n) return raw->data;
  free(raw->data);
  raw->data = ok ? malloc(n) : NULL;
  raw->cap = raw->data ? n : 0;
  if (!raw->data)
    dlp_err_set(e, DLP_ERR_NOMEM, "no memory for a %dx%d image of %d channels",
                (int)width, (int)height, (int)channels);
  return raw->data;
}

/* Composites n pixels of (channels - 1) colours + alpha on white, in place
 * (the output is never ahead of the input). */
static void composite_on_white(uint8_t *p, size_t n, int channels) {
  int nc = channels - 1;
  const uint8_t *s = p;
  uint8_t *d = p;
  for (size_t i = 0; i < n; i++, s += channels, d += nc) {
    unsigned a = s[nc], bg = 255u * (255u - a) + 127u;
    for (int c = 0; c < nc; c++)
      d[c] = (uint8_t)((s[c] * a + bg) / 255u);
  }
}

/* Gray (1) -> RGB (3) or gray+alpha (2) -> RGBA (4) in a buffer that already
 * has room for the result; walks backwards so nothing is overwritten early. */
static void expand_gray(uint8_t *p, size_t n, int channels) {
  int alpha = channels == 2;
  int oc = alpha ? 4 : 3;
  for (size_t i = n; i-- > 0;) {
    const uint8_t *s = p + i * (size_t)channels;
    uint8_t g = s[0], a = alpha ? s[1] : 0;
    uint8_t *d = p + i * (size_t)oc;
    d[0] = d[1] = d[2] = g;
    if (alpha) d[3] = a;
  }
}

/* Applies keep_alpha / force_rgb to raw's pixels; raw->channels becomes 1,
 * 3 or 4. */
static int apply_channel_policy(dlp_err *e, dlp_raw *raw,
                                const dlp_decode_opts *o) {
  size_t n = (size_t)raw->width * (size_t)raw->height;
  int c = raw->channels;
  int has_alpha = c == 2 || c == 4;
  if (has_alpha && !o->keep_alpha) {
    composite_on_white(raw->data, n, c);
    c -= 1;
    /* Give back the alpha plane's memory; keeping the block is fine too. */
    /* The buffer keeps its size: a reused scratch buffer stays big. */
  }
  int want = c;
  if (c == 2) want = 4; /* gray+alpha kept: RGBA */
  if (c == 1 && o->force_rgb) want = 3;
  if (want != c) {
    size_t need;
    if (!dlp_mul_size(n, (size_t)want, &need))
      return dlp_err_set(e, DLP_ERR_NOMEM, "no memory to expand a %dx%d image",
                         (int)raw->width, (int)raw->height);
    if (need > raw->cap) {
      uint8_t *p = realloc(raw->data, need);
      if (!p)
        return dlp_err_set(e, DLP_ERR_NOMEM,
                           "no memory to expand a %dx%d image",
                           (int)raw->width, (int)raw->height);
      raw->data = p;
      raw->cap = need;
    }
    expand_gray(raw->data, n, c);
    c = want;
  }
  raw->channels = c;
  return DLP_OK;
}

static int decode_raw(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                      size_t len, const dlp_decode_opts *o, dlp_raw *raw) {
  switch (dlp_format_sniff(buf, len)) {
  case DLP_FORMAT_JPEG:
    return dlp_jpeg_decode(e, lim, buf, len, o, raw);
  case DLP_FORMAT_PNG:
    return dlp_png_decode(e, lim, buf, len, raw);
  case DLP_FORMAT_GIF:
    return dlp_gif_decode(e, lim, buf, len, raw);
  case DLP_FORMAT_BMP:
    return dlp_bmp_decode(e, lim, buf, len, raw);
  case DLP_FORMAT_WEBP:
    return dlp_webp_decode(e, lim, buf, len, raw);
  default:
    return DLP_ERR_INTERNAL; /* excluded by check_signature */
  }
}

/* Empty input and unknown signatures, with the message users see. */
static int check_signature(dlp_err *e, const uint8_t *buf, size_t len) {
  if (!buf || len == 0) return dlp_err_set(e, DLP_ERR_CORRUPT, "empty file");
  if (dlp_format_sniff(buf, len) != DLP_FORMAT_UNKNOWN) return DLP_OK;
  char hex[4 * 3 + 1] = "";
  size_t k = len < 4 ? len : 4, n = 0;
  for (size_t i = 0; i < k; i++)
    n +=
        (size_t)snprintf(hex + n, sizeof hex - n, i ? " %02x" : "%02x", buf[i]);
  return dlp_err_set(e, DLP_ERR_FORMAT, "not an image: unknown signature '%s'",
                     hex);
}

/* Rotates raw's pixels upright when asked (a new buffer replaces the old). */
static int orient_raw(dlp_err *e, dlp_raw *raw, int orient) {
  if (!orient || raw->orientation <= 1 || raw->orientation > 8) return DLP_OK;
  uint8_t *rot;
  int32_t w, h;
  int rc = dlp_img_orient(e, raw->data, raw->width, raw->height, raw->channels,
                          raw->orientation, &rot, &w, &h);
  if (rc != DLP_OK) return rc;
  free(raw->data);
  raw->data = rot;
  raw->cap = (size_t)w * (size_t)h * (size_t)raw->channels;
  raw->width = w;
  raw->height = h;
  return DLP_OK;
}

/* Moves raw's pixels into a new dlp_image, rotating when asked. */
static int finish_image(dlp_err *e, dlp_raw *raw, int orient, dlp_image **out) {
  int rc = orient_raw(e, raw, orient);
  if (rc != DLP_OK) return rc;
  dlp_image *img = calloc(1, sizeof *img);
  if (!img) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory for an image");
  img->width = raw->width;
  img->height = raw->height;
  img->n_channels = raw->channels;
  img->mode = dlp_mode_for_channels(raw->channels);
  img->data = raw->data;
  raw->data = NULL;
  *out = img;
  return DLP_OK;
}

int dlp_img_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                   size_t len, const dlp_decode_opts *opts, dlp_image **out) {
  if (!out) return dlp_err_set(e, DLP_ERR_ARG, "out is NULL");
  *out = NULL;
  dlp_decode_opts defaults;
  dlp_decode_opts_init(&defaults);
  const dlp_decode_opts *o = opts ? opts : &defaults;
  int rc = check_signature(e, buf, len);
  if (rc != DLP_OK) return rc;
  dlp_raw raw = {0};
  rc = decode_raw(e, lim, buf, len, o, &raw);
  if (rc == DLP_OK) rc = apply_channel_policy(e, &raw, o);
  if (rc == DLP_OK) rc = finish_image(e, &raw, o->apply_exif_orientation, out);
  free(raw.data);
  return rc;
}

void dlp_img_scratch_release(dlp_img_scratch *s) {
  if (!s) return;
  free(s->file);
  free(s->pix);
  *s = (dlp_img_scratch){0};
}

int dlp_img_decode_scratch(dlp_err *e, const dlp_limits *lim,
                           const uint8_t *buf, size_t len,
                           const dlp_decode_opts *opts, dlp_img_scratch *s,
                           dlp_image *view) {
  if (!s || !view) return dlp_err_set(e, DLP_ERR_ARG, "scratch or view is NULL");
  *view = (dlp_image){0};
  dlp_decode_opts defaults;
  dlp_decode_opts_init(&defaults);
  const dlp_decode_opts *o = opts ? opts : &defaults;
  int rc = check_signature(e, buf, len);
  if (rc != DLP_OK) return rc;
  /* The scratch buffer travels through raw (which may grow, replace or free
   * it) and comes back, whatever happened. */
  dlp_raw raw = {.data = s->pix, .cap = s->pix_cap};
  rc = decode_raw(e, lim, buf, len, o, &raw);
  if (rc == DLP_OK) rc = apply_channel_policy(e, &raw, o);
  if (rc == DLP_OK) rc = orient_raw(e, &raw, o->apply_exif_orientation);
  s->pix = raw.data;
  s->pix_cap = raw.data ? raw.cap : 0;
  if (rc != DLP_OK) return rc;
  view->width = raw.width;
  view->height = raw.height;
  view->n_channels = raw.channels;
  view->mode = dlp_mode_for_channels(raw.channels);
  view->data = raw.data;
  return DLP_OK;
}

static int probe_hdr(dlp_err *e, dlp_format f, const uint8_t *buf, size_t len,
                     dlp_hdr *h) {
  switch (f) {
  case DLP_FORMAT_JPEG:
    return dlp_jpeg_probe(e, buf, len, h);
  case DLP_FORMAT_PNG:
    return dlp_png_probe(e, buf, len, h);
  case DLP_FORMAT_GIF:
    return dlp_gif_probe(e, buf, len, h);
  case DLP_FORMAT_BMP:
    return dlp_bmp_probe(e, buf, len, h);
  case DLP_FORMAT_WEBP:
    return dlp_webp_probe(e, buf, len, h);
  default:
    return DLP_ERR_INTERNAL;
  }
}

int dlp_img_probe(dlp_err *e, const uint8_t *buf, size_t len,
                  dlp_image_info *info) {
  if (!info) return dlp_err_set(e, DLP_ERR_ARG, "info is NULL");
  memset(info, 0, sizeof *info);
  int rc = check_signature(e, buf, len);
  if (rc != DLP_OK) return rc;
  dlp_format f = dlp_format_sniff(buf, len);
  dlp_hdr h = {0, 0, 0, 1};
  rc = probe_hdr(e, f, buf, len, &h);
  if (rc != DLP_OK) return rc;
  int swap = h.orientation >= 5 && h.orientation <= 8;
  info->format = f;
  info->width = swap ? h.height : h.width;
  info->height = swap ? h.width : h.height;
  info->has_alpha = h.channels == 2 || h.channels == 4;
  info->n_channels = h.channels <= 2 ? 1 : 3;
  info->orientation =
      h.orientation >= 1 && h.orientation <= 8 ? h.orientation : 1;
  return DLP_OK;
}
