/* decode_bmp.c - BMP through stb_image (libstb; only BMP goes through stb).
 *
 * stb reads past the end of a short buffer as zeros, so a truncated file
 * would decode as a black-bottomed image. To report truncation, the header
 * fields that fix the pixel array's size (offset, width, height, bit depth,
 * compression) are read here by hand and checked against the file length
 * before stb runs. RLE-compressed BMPs, which stb does not read, are
 * DLP_ERR_UNSUPPORTED. 32-bit BMPs keep their fourth byte as alpha unless
 * it is 0 everywhere (stb's rule), and palette images come out as RGB.
 */
#include "decoders.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

static uint32_t bmp_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint32_t bmp_u16(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

/* Checks that the file is long enough for its uncompressed pixel array. */
static int bmp_check_length(dlp_err *e, const uint8_t *b, size_t len) {
  if (len < 26) return dlp_err_set(e, DLP_ERR_CORRUPT, "truncated BMP header");
  uint32_t dib = bmp_u32(b + 14), offset = bmp_u32(b + 10);
  uint64_t w, h, bpp, comp = 0;
  if (dib == 12) { /* OS/2 BITMAPCOREHEADER */
    w = bmp_u16(b + 18);
    h = bmp_u16(b + 20);
    bpp = bmp_u16(b + 24);
  } else {
    if (len < 34)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "truncated BMP header");
    int32_t sw = (int32_t)bmp_u32(b + 18), sh = (int32_t)bmp_u32(b + 22);
    w = sw < 0 ? 0 : (uint64_t)sw;
    h = sh < 0 ? (uint64_t)0 - (uint64_t)(int64_t)sh : (uint64_t)sh;
    bpp = bmp_u16(b + 28);
    comp = bmp_u32(b + 30);
  }
  if (comp == 1 || comp == 2)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "BMP: RLE compression is not supported");
  /* Other compressions and depths: stb decides (and refuses). */
  if ((comp != 0 && comp != 3 && comp != 6) || bpp > 32) return DLP_OK;
  /* w, h < 2^31 and bpp <= 32: no overflow in 64 bits. */
  uint64_t need = (uint64_t)offset + (w * bpp + 31) / 32 * 4 * h;
  if (need <= len) return DLP_OK;
  return dlp_err_set(e, DLP_ERR_CORRUPT,
                     "truncated BMP data: the header needs %llu bytes, the "
                     "file has %zu",
                     (unsigned long long)need, len);
}

static int bmp_info(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h) {
  if (len > INT_MAX)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE, "BMP file over 2 GiB");
  int w, ht, comp;
  if (!stbi_info_from_memory(buf, (int)len, &w, &ht, &comp)) {
    const char *why = stbi_failure_reason();
    return dlp_err_set(e, DLP_ERR_CORRUPT, "BMP: bad header (%s)",
                       why ? why : "unknown reason");
  }
  *h = (dlp_hdr){w, ht, comp, 1};
  return DLP_OK;
}

int dlp_bmp_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h) {
  return bmp_info(e, buf, len, h);
}

int dlp_bmp_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                   size_t len, dlp_raw *out) {
  dlp_raw_reset(out);
  dlp_hdr h = {0};
  int rc = bmp_info(e, buf, len, &h);
  if (rc == DLP_OK)
    rc = dlp_img_check_pixels(e, lim, (uint64_t)h.width, (uint64_t)h.height);
  if (rc == DLP_OK) rc = bmp_check_length(e, buf, len);
  if (rc != DLP_OK) return rc;
  int w, ht, comp;
  stbi_uc *px = stbi_load_from_memory(buf, (int)len, &w, &ht, &comp, 0);
  if (!px) {
    const char *why = stbi_failure_reason();
    return dlp_err_set(e, DLP_ERR_CORRUPT, "BMP: %s",
                       why ? why : "cannot decode");
  }
  if (w != h.width || ht != h.height || comp < 1 || comp > 4) {
    stbi_image_free(px);
    return dlp_err_set(e, DLP_ERR_INTERNAL, "BMP: header and pixels disagree");
  }
  /* stb's buffer must go back through stbi_image_free, ours through free():
   * copy once (BMP decoding is itself little more than a copy). */
  uint8_t *dst = dlp_img_raw_alloc(e, out, w, ht, comp);
  if (dst) memcpy(dst, px, (size_t)w * (size_t)ht * (size_t)comp);
  stbi_image_free(px);
  if (!dst) return DLP_ERR_NOMEM;
  out->width = w;
  out->height = ht;
  out->channels = comp;
  out->orientation = 1;
  return DLP_OK;
}
