/* decode_png.c - PNG through libpng's full read API: every colour type and
 * bit depth to 8-bit gray / gray+alpha / RGB / RGBA.
 *
 * 16-bit samples keep their high byte (png_set_strip_16), as PIL does;
 * 1/2/4-bit gray is scaled to 8 bits; palette and tRNS become RGB(A).
 * libpng reports errors by longjmp; a CRC error in a critical chunk or a
 * truncated file is DLP_ERR_CORRUPT. Trailing chunks after the image data
 * are not read (like PIL), so a file that only lacks IEND still decodes.
 */
#include "decoders.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct png_job {
  dlp_err *e;
  const dlp_limits *lim;
  const uint8_t *buf;
  size_t len, pos;
  png_structp png;
  png_infop info;
  int probe_only;
  dlp_hdr hdr;
  dlp_raw *out;
  png_bytep *rows;
  int too_large; /* libpng refused the size (png_set_user_limits) */
  char msg[256];
} png_job;

static void png_on_error(png_structp png, png_const_charp msg) {
  png_job *j = png_get_error_ptr(png);
  snprintf(j->msg, sizeof j->msg, "PNG: %s", msg);
  j->too_large = strstr(msg, "exceeds user limit") != NULL;
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png; /* benign (bad ancillary chunk, ...): PIL ignores them too */
  (void)msg;
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n) {
  png_job *j = png_get_io_ptr(png);
  if (n > j->len - j->pos)
    png_error(png, "truncated data (premature end of file)");
  memcpy(dst, j->buf + j->pos, n);
  j->pos += n;
}

/* Channels after the expansions set up by png_set_transforms. */
static int png_channels_for(png_structp png, png_infop info) {
  int ct = png_get_color_type(png, info);
  int trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  if (ct == PNG_COLOR_TYPE_GRAY) return trns ? 2 : 1;
  if (ct == PNG_COLOR_TYPE_GRAY_ALPHA) return 2;
  if (ct == PNG_COLOR_TYPE_RGB_ALPHA) return 4;
  return trns ? 4 : 3; /* RGB, palette */
}

static void png_set_transforms(png_structp png, png_infop info) {
  int ct = png_get_color_type(png, info);
  if (png_get_bit_depth(png, info) == 16) png_set_strip_16(png);
  if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (ct == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
}

static int png_read_pixels(png_job *j) {
  dlp_raw *r = j->out;
  r->width = j->hdr.width;
  r->height = j->hdr.height;
  r->channels = j->hdr.channels;
  r->orientation = 1;
  png_set_transforms(j->png, j->info);
  if (png_get_channels(j->png, j->info) != r->channels ||
      png_get_rowbytes(j->png, j->info) != (size_t)r->width * r->channels)
    return dlp_err_set(j->e, DLP_ERR_INTERNAL,
                       "PNG: unexpected row layout after transforms");
  r->data = dlp_img_raw_alloc(j->e, r, r->width, r->height, r->channels);
  if (!r->data) return DLP_ERR_NOMEM;
  j->rows = dlp_malloc_array((size_t)r->height, sizeof *j->rows);
  if (!j->rows) return dlp_err_set(j->e, DLP_ERR_NOMEM, "no memory for rows");
  size_t stride = (size_t)r->width * (size_t)r->channels;
  for (int32_t y = 0; y < r->height; y++)
    j->rows[y] = r->data + y * stride;
  png_read_image(j->png, j->rows); /* handles interlacing in place */
  return DLP_OK;
}

/* The part that runs under setjmp; j lives in the caller's frame. */
static int png_run(png_job *j) {
  if (setjmp(png_jmpbuf(j->png)))
    return dlp_err_set(j->e, j->too_large ? DLP_ERR_TOO_LARGE : DLP_ERR_CORRUPT,
                       "%s", j->msg);
  png_set_read_fn(j->png, j, png_read_mem);
  /* A dimension alone over the pixel budget is refused while reading IHDR. */
  uint64_t maxp = j->lim && j->lim->max_pixels ? j->lim->max_pixels
                                               : DLP_DEFAULT_MAX_PIXELS;
  png_uint_32 maxd =
      maxp < PNG_UINT_31_MAX ? (png_uint_32)maxp : PNG_UINT_31_MAX;
  png_set_user_limits(j->png, maxd, maxd);
  png_read_info(j->png, j->info);
  j->hdr.width = (int32_t)png_get_image_width(j->png, j->info);
  j->hdr.height = (int32_t)png_get_image_height(j->png, j->info);
  j->hdr.channels = png_channels_for(j->png, j->info);
  j->hdr.orientation = 1;
  if (j->probe_only) return DLP_OK;
  int rc = dlp_img_check_pixels(j->e, j->lim, (uint64_t)j->hdr.width,
                                (uint64_t)j->hdr.height);
  return rc != DLP_OK ? rc : png_read_pixels(j);
}

static int png_go(png_job *j) {
  j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_on_error,
                                  png_on_warning);
  if (j->png) j->info = png_create_info_struct(j->png);
  int rc =
      j->info ? png_run(j)
              : dlp_err_set(j->e, DLP_ERR_NOMEM, "no memory for a PNG decoder");
  png_destroy_read_struct(&j->png, &j->info, NULL);
  free(j->rows);
  return rc;
}

int dlp_png_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h) {
  png_job j = {.e = e, .buf = buf, .len = len, .probe_only = 1};
  int rc = png_go(&j);
  if (rc == DLP_OK) *h = j.hdr;
  return rc;
}

static uint32_t png_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

int dlp_png_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                   size_t len, dlp_raw *out) {
  dlp_raw_reset(out);
  /* IHDR must come first; its size is checked before libpng reads further
   * (png_read_info goes on to the first IDAT), so a huge header alone is
   * reported as too large, not as truncated. */
  if (len >= 24 && memcmp(buf + 12, "IHDR", 4) == 0) {
    int rc =
        dlp_img_check_pixels(e, lim, png_be32(buf + 16), png_be32(buf + 20));
    if (rc != DLP_OK) return rc;
  }
  png_job j = {.e = e, .lim = lim, .buf = buf, .len = len, .out = out};
  int rc = png_go(&j);
  if (rc != DLP_OK) {
    free(out->data);
    out->data = NULL;
    out->cap = 0;
  }
  return rc;
}
