/* orient.c - EXIF orientation transforms for 1..4-channel 8-bit images.
 *
 * Every orientation is one walk over the output with the source position
 * advancing by fixed pixel steps: source = base + x * dx + y * dy, where
 * (x, y) is the output pixel. The table below is the EXIF 2.3 definition
 * (the same as PIL's ImageOps.exif_transpose):
 *   2 mirror left-right        5 transpose (swap x and y)
 *   3 rotate 180               6 rotate 90 clockwise
 *   4 flip top-bottom          7 transverse
 *                              8 rotate 90 counter-clockwise
 */
#include "decoders.h"

#include <stdlib.h>
#include <string.h>

typedef struct orient_walk {
  ptrdiff_t base, dx, dy; /* in pixels of the source */
  int swap;               /* output is h x w */
} orient_walk;

static orient_walk orient_walk_for(int o, ptrdiff_t w, ptrdiff_t h) {
  ptrdiff_t last_row = (h - 1) * w, last = last_row + w - 1;
  switch (o) {
  case 2:
    return (orient_walk){w - 1, -1, w, 0};
  case 3:
    return (orient_walk){last, -1, -w, 0};
  case 4:
    return (orient_walk){last_row, 1, -w, 0};
  case 5:
    return (orient_walk){0, w, 1, 1};
  case 6:
    return (orient_walk){last_row, -w, 1, 1};
  case 7:
    return (orient_walk){last, -w, -1, 1};
  case 8:
    return (orient_walk){w - 1, w, -1, 1};
  default:
    return (orient_walk){0, 1, w, 0};
  }
}

/* The inner loop, specialised per channel count so the copy is a move. */
#define ORIENT_LOOP(C)                                                         \
  for (int32_t y = 0; y < oh; y++) {                                           \
    const uint8_t *s = src + (wk.base + y * wk.dy) * (C);                      \
    uint8_t *d = out + (size_t)y * (size_t)ow * (C);                           \
    for (int32_t x = 0; x < ow; x++, d += (C), s += wk.dx * (C))               \
      memcpy(d, s, (C));                                                       \
  }

int dlp_img_orient(dlp_err *e, const uint8_t *src, int32_t w, int32_t h,
                   int32_t channels, int orientation, uint8_t **dst,
                   int32_t *ow_out, int32_t *oh_out) {
  *dst = NULL;
  orient_walk wk = orient_walk_for(orientation, w, h);
  int32_t ow = wk.swap ? h : w, oh = wk.swap ? w : h;
  uint8_t *out = dlp_img_alloc_pixels(e, ow, oh, channels);
  if (!out) return DLP_ERR_NOMEM;
  switch (channels) {
  case 1:
    ORIENT_LOOP(1) break;
  case 2:
    ORIENT_LOOP(2) break;
  case 3:
    ORIENT_LOOP(3) break;
  default:
    ORIENT_LOOP(4) break;
  }
  *dst = out;
  *ow_out = ow;
  *oh_out = oh;
  return DLP_OK;
}
