/* decode_webp.c - WebP through libwebp: still images (lossy, lossless,
 * with or without alpha) straight into the output buffer; animations give
 * their first frame composed on the canvas by libwebpdemux's
 * WebPAnimDecoder (uncovered canvas = transparent). */
#include "decoders.h"

#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

static int webp_fail(dlp_err *e, VP8StatusCode st) {
  switch (st) {
  case VP8_STATUS_NOT_ENOUGH_DATA:
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "truncated WebP data (premature end of file)");
  case VP8_STATUS_OUT_OF_MEMORY:
    return dlp_err_set(e, DLP_ERR_NOMEM, "WebP: out of memory");
  case VP8_STATUS_UNSUPPORTED_FEATURE:
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED, "WebP: unsupported feature");
  default:
    return dlp_err_set(e, DLP_ERR_CORRUPT, "WebP: bitstream error (status %d)",
                       (int)st);
  }
}

/* Header facts. A truncated file whose VP8X header still names the canvas
 * size sets *st to NOT_ENOUGH_DATA but fills f, so the size limit can be
 * checked first. */
static int webp_features(dlp_err *e, const uint8_t *buf, size_t len,
                         WebPBitstreamFeatures *f, VP8StatusCode *st) {
  *st = WebPGetFeatures(buf, len, f);
  if (*st == VP8_STATUS_OK ||
      (*st == VP8_STATUS_NOT_ENOUGH_DATA && f->width > 0 && f->height > 0))
    return DLP_OK;
  return webp_fail(e, *st);
}

int dlp_webp_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h) {
  WebPBitstreamFeatures f;
  VP8StatusCode st;
  int rc = webp_features(e, buf, len, &f, &st);
  if (rc != DLP_OK) return rc;
  if (st != VP8_STATUS_OK) return webp_fail(e, st);
  *h = (dlp_hdr){f.width, f.height, f.has_alpha || f.has_animation ? 4 : 3, 1};
  return DLP_OK;
}

static int webp_decode_still(dlp_err *e, const uint8_t *buf, size_t len,
                             dlp_raw *r) {
  WebPDecoderConfig cfg;
  if (!WebPInitDecoderConfig(&cfg))
    return dlp_err_set(e, DLP_ERR_INTERNAL, "WebP: library version mismatch");
  cfg.output.colorspace = r->channels == 4 ? MODE_RGBA : MODE_RGB;
  cfg.output.is_external_memory = 1;
  cfg.output.u.RGBA.rgba = r->data;
  cfg.output.u.RGBA.stride = r->width * r->channels;
  cfg.output.u.RGBA.size = (size_t)r->width * r->height * r->channels;
  VP8StatusCode st = WebPDecode(buf, len, &cfg);
  WebPFreeDecBuffer(&cfg.output); /* nothing to free: memory is ours */
  return st == VP8_STATUS_OK ? DLP_OK : webp_fail(e, st);
}

static int webp_decode_first_frame(dlp_err *e, const uint8_t *buf, size_t len,
                                   dlp_raw *r) {
  WebPAnimDecoderOptions ao;
  if (!WebPAnimDecoderOptionsInit(&ao))
    return dlp_err_set(e, DLP_ERR_INTERNAL, "WebP: library version mismatch");
  ao.color_mode = MODE_RGBA;
  ao.use_threads = 0;
  WebPData wd = {buf, len};
  WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &ao);
  if (!dec) return dlp_err_set(e, DLP_ERR_CORRUPT, "WebP: malformed animation");
  WebPAnimInfo info;
  uint8_t *frame = NULL;
  int ts, rc = DLP_OK;
  if (!WebPAnimDecoderGetInfo(dec, &info) ||
      info.canvas_width != (uint32_t)r->width ||
      info.canvas_height != (uint32_t)r->height)
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "WebP: inconsistent canvas size");
  else if (!WebPAnimDecoderGetNext(dec, &frame, &ts))
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "WebP: cannot decode the first frame");
  else
    memcpy(r->data, frame, (size_t)r->width * r->height * 4);
  WebPAnimDecoderDelete(dec);
  return rc;
}

int dlp_webp_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                    size_t len, dlp_raw *out) {
  dlp_raw_reset(out);
  WebPBitstreamFeatures f;
  VP8StatusCode st;
  int rc = webp_features(e, buf, len, &f, &st);
  if (rc == DLP_OK)
    rc = dlp_img_check_pixels(e, lim, (uint64_t)f.width, (uint64_t)f.height);
  if (rc == DLP_OK && st != VP8_STATUS_OK) rc = webp_fail(e, st);
  if (rc != DLP_OK) return rc;
  out->width = f.width;
  out->height = f.height;
  out->channels = f.has_alpha || f.has_animation ? 4 : 3;
  out->orientation = 1;
  out->data = dlp_img_raw_alloc(e, out, out->width, out->height, out->channels);
  if (!out->data) return DLP_ERR_NOMEM;
  rc = f.has_animation ? webp_decode_first_frame(e, buf, len, out)
                       : webp_decode_still(e, buf, len, out);
  if (rc != DLP_OK) {
    free(out->data);
    out->data = NULL;
    out->cap = 0;
  }
  return rc;
}
