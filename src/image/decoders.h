/* decoders.h - the per-format decoders behind decode.c (private to the
 * image layer; callers use dlp_img_probe / dlp_img_decode from image.h).
 *
 * Each format file fills a dlp_raw with the pixels as the file stores them:
 * 8-bit, packed rows, 1 = gray, 2 = gray+alpha, 3 = RGB, 4 = RGBA. decode.c
 * then applies the caller's alpha / force_rgb policy and the EXIF
 * orientation, so every format shares one definition of those rules.
 */
#ifndef DLP_DECODERS_H
#define DLP_DECODERS_H

#include "image.h"

/* Pixels as decoded, before the alpha policy and orientation. */
typedef struct dlp_raw {
  int32_t width, height;
  int32_t channels;    /* 1, 2, 3 or 4 */
  int32_t orientation; /* EXIF 1..8; 1 for formats without EXIF */
  uint8_t *data;       /* malloc'd, width * height * channels bytes */
  size_t cap;          /* bytes allocated at data (>= the pixels) */
} dlp_raw;

/* Header facts as stored (not rotated). channels as dlp_raw would have. */
typedef struct dlp_hdr {
  int32_t width, height;
  int32_t channels;
  int32_t orientation;
} dlp_hdr;

/* Fails with DLP_ERR_TOO_LARGE (and a message naming the limit) when
 * width * height exceeds lim->max_pixels; every decoder calls it on the
 * header's size before allocating pixels. */
int dlp_img_check_pixels(dlp_err *e, const dlp_limits *lim, uint64_t width,
                         uint64_t height);

/* Allocates width * height * channels bytes (overflow-checked) or fails with
 * DLP_ERR_NOMEM. */
uint8_t *dlp_img_alloc_pixels(dlp_err *e, int32_t width, int32_t height,
                              int32_t channels);

/* Clears raw's facts but keeps the buffer it holds (data, cap) for reuse. */
static inline void dlp_raw_reset(dlp_raw *raw) {
  uint8_t *data = raw->data;
  size_t cap = raw->cap;
  *raw = (dlp_raw){0};
  raw->data = data;
  raw->cap = cap;
}

/* Points raw->data at width * height * channels bytes: the buffer raw
 * already holds when it is large enough (a reused scratch buffer), else a
 * grown one; raw->cap follows. Fails with DLP_ERR_NOMEM, and then raw's
 * old buffer is freed (data NULL, cap 0). Returns raw->data. */
uint8_t *dlp_img_raw_alloc(dlp_err *e, dlp_raw *raw, int32_t width,
                           int32_t height, int32_t channels);
/* Per format: probe reads the header only; decode fills out (out->data is
 * NULL on failure). */
int dlp_jpeg_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h);
int dlp_jpeg_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                    size_t len, const dlp_decode_opts *o, dlp_raw *out);
int dlp_png_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h);
int dlp_png_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                   size_t len, dlp_raw *out);
int dlp_gif_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h);
int dlp_gif_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                   size_t len, dlp_raw *out);
int dlp_bmp_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h);
int dlp_bmp_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                   size_t len, dlp_raw *out);
int dlp_webp_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h);
int dlp_webp_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                    size_t len, dlp_raw *out);

/* The JPEG DCT scale numerator (of 8) for a target size: the smallest of
 * 1, 2, 4, 8 whose output, after orientation (w/h swapped for 5..8), covers
 * target_w x target_h. Targets <= 0 do not constrain. */
int dlp_jpeg_pick_scale(int32_t width, int32_t height, int orientation,
                        int target_w, int target_h);

/* EXIF orientation: a new buffer with the pixels of src (w x h, channels
 * 1..4) transformed as the tag says (2 mirror, 3 rotate 180, 4 flip, 5
 * transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
 * counter-clockwise); *ow / *oh receive the new size. Orientation 1 or an
 * out-of-range value copies. Fails only with DLP_ERR_NOMEM. */
int dlp_img_orient(dlp_err *e, const uint8_t *src, int32_t w, int32_t h,
                   int32_t channels, int orientation, uint8_t **dst,
                   int32_t *ow, int32_t *oh);

#endif /* DLP_DECODERS_H */
