/* image.c - the public image calls: thin wrappers over the dlp_img_*
 * internals (which report into a dlp_err), image allocation, format names
 * and signature sniffing. */
#include "image.h"

#include <stdlib.h>
#include <string.h>

int32_t dlp_mode_for_channels(int32_t channels) {
  switch (channels) {
  case 1:
    return DLP_MODE_8UC1;
  case 3:
    return DLP_MODE_8UC3;
  case 4:
    return DLP_MODE_8UC4;
  default:
    return -1;
  }
}

const char *dlp_format_name(dlp_format f) {
  switch (f) {
  case DLP_FORMAT_JPEG:
    return "jpeg";
  case DLP_FORMAT_PNG:
    return "png";
  case DLP_FORMAT_GIF:
    return "gif";
  case DLP_FORMAT_BMP:
    return "bmp";
  case DLP_FORMAT_WEBP:
    return "webp";
  default:
    return "unknown";
  }
}

dlp_format dlp_format_sniff(const void *buf, size_t len) {
  const uint8_t *b = buf;
  if (!b) return DLP_FORMAT_UNKNOWN;
  if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
    return DLP_FORMAT_JPEG;
  if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return DLP_FORMAT_PNG;
  if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
    return DLP_FORMAT_GIF;
  if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
    return DLP_FORMAT_WEBP;
  /* "BM" alone is weak (text can start with it): also require the DIB
   * header size at offset 14 to be one of the sizes BMP versions use. */
  if (len >= 18 && b[0] == 'B' && b[1] == 'M') {
    uint32_t dib = (uint32_t)b[14] | (uint32_t)b[15] << 8 |
                   (uint32_t)b[16] << 16 | (uint32_t)b[17] << 24;
    if (dib == 12 || dib == 40 || dib == 52 || dib == 56 || dib == 64 ||
        dib == 108 || dib == 124)
      return DLP_FORMAT_BMP;
  }
  return DLP_FORMAT_UNKNOWN;
}

void dlp_decode_opts_init(dlp_decode_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->apply_exif_orientation = 1;
}

int dlp_img_alloc(dlp_err *e, int32_t width, int32_t height, int32_t channels,
                  dlp_image **out) {
  if (!out) return dlp_err_set(e, DLP_ERR_ARG, "out is NULL");
  *out = NULL;
  if (width <= 0 || height <= 0 || dlp_mode_for_channels(channels) < 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "bad image size %dx%d with %d channels (want sizes > 0 "
                       "and 1, 3 or 4 channels)",
                       (int)width, (int)height, (int)channels);
  size_t n;
  dlp_image *img = calloc(1, sizeof *img);
  if (img && dlp_mul_size((size_t)width, (size_t)height, &n))
    img->data = dlp_calloc_array(n, (size_t)channels);
  if (!img || !img->data) {
    free(img);
    return dlp_err_set(e, DLP_ERR_NOMEM, "no memory for a %dx%dx%d image",
                       (int)width, (int)height, (int)channels);
  }
  img->width = width;
  img->height = height;
  img->n_channels = channels;
  img->mode = dlp_mode_for_channels(channels);
  *out = img;
  return DLP_OK;
}

int dlp_image_new(dlp_ctx *ctx, int32_t width, int32_t height,
                  int32_t n_channels, dlp_image **out) {
  int rc =
      dlp_img_alloc(ctx ? &ctx->err : NULL, width, height, n_channels, out);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

void dlp_image_free(dlp_image *img) {
  if (!img) return;
  free(img->origin);
  free(img->data);
  free(img);
}

void dlp_image_swap_rb(dlp_image *img) {
  if (!img || !img->data || img->n_channels < 3) return;
  size_t n = (size_t)img->width * (size_t)img->height;
  size_t c = (size_t)img->n_channels;
  for (uint8_t *p = img->data, *end = p + n * c; p < end; p += c) {
    uint8_t t = p[0];
    p[0] = p[2];
    p[2] = t;
  }
}

int dlp_image_probe(dlp_ctx *ctx, const void *buf, size_t len,
                    dlp_image_info *info) {
  int rc = dlp_img_probe(ctx ? &ctx->err : NULL, buf, len, info);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

int dlp_image_decode(dlp_ctx *ctx, const void *buf, size_t len,
                     const dlp_decode_opts *opts, dlp_image **out) {
  dlp_limits lim = dlp_ctx_limits(ctx);
  int rc = dlp_img_decode(ctx ? &ctx->err : NULL, &lim, buf, len, opts, out);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

int dlp_image_read(dlp_ctx *ctx, const char *path, const dlp_decode_opts *opts,
                   dlp_image **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "out is NULL");
  *out = NULL;
  if (!path) return dlp_fail(ctx, DLP_ERR_ARG, "path is NULL");
  dlp_limits lim = dlp_ctx_limits(ctx);
  dlp_err *e = ctx ? &ctx->err : NULL;
  uint8_t *data = NULL;
  size_t len = 0;
  int rc = dlp_read_file(e, path, lim.max_file_bytes, &data, &len);
  dlp_image *img = NULL;
  if (rc == DLP_OK) rc = dlp_img_decode(e, &lim, data, len, opts, &img);
  free(data);
  if (rc == DLP_OK && !(img->origin = dlp_strdup(path)))
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory for a path");
  if (rc != DLP_OK) {
    dlp_image_free(img);
    /* The message names the file: "a/b.jpg: truncated JPEG data ...". */
    return ctx ? dlp_fail_prefix(ctx, path) : rc;
  }
  *out = img;
  return dlp_ok(ctx);
}
