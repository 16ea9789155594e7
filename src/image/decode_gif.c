/* decode_gif.c - GIF through giflib 5.2: the first frame only, composed on
 * the logical screen.
 *
 * The record loop is walked by hand (not DGifSlurp, which decodes every
 * frame of an animation) up to the first image: its graphics control block
 * gives the transparent index. Pixels the frame does not cover, and
 * transparent pixels, get alpha 0 (so the default policy shows white); a
 * frame reaching past the screen is clipped. Interlaced rows come in the
 * GIF pass order (every 8th from 0, every 8th from 4, every 4th from 2,
 * every 2nd from 1).
 */
#include "decoders.h"

#include <gif_lib.h>
#include <stdlib.h>
#include <string.h>

typedef struct gif_src {
  const uint8_t *buf;
  size_t len, pos;
} gif_src;

static int gif_read_mem(GifFileType *g, GifByteType *dst, int n) {
  gif_src *s = g->UserData;
  size_t left = s->len - s->pos;
  size_t k = n < 0 ? 0 : (size_t)n < left ? (size_t)n : left;
  memcpy(dst, s->buf + s->pos, k);
  s->pos += k;
  return (int)k;
}

static int gif_fail(dlp_err *e, int code) {
  if (code == D_GIF_ERR_READ_FAILED || code == D_GIF_ERR_EOF_TOO_SOON)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "truncated GIF data (premature end of file)");
  if (code == D_GIF_ERR_NOT_ENOUGH_MEM)
    return dlp_err_set(e, DLP_ERR_NOMEM, "GIF: out of memory");
  const char *s = GifErrorString(code);
  return dlp_err_set(e, DLP_ERR_CORRUPT, "GIF: %s", s ? s : "malformed data");
}

/* Reads records up to and including the first image descriptor. */
static int gif_seek_first_image(dlp_err *e, GifFileType *g, int *transparent) {
  *transparent = NO_TRANSPARENT_COLOR;
  for (;;) {
    GifRecordType t;
    if (DGifGetRecordType(g, &t) == GIF_ERROR) return gif_fail(e, g->Error);
    if (t == IMAGE_DESC_RECORD_TYPE)
      return DGifGetImageDesc(g) == GIF_ERROR ? gif_fail(e, g->Error) : DLP_OK;
    if (t == TERMINATE_RECORD_TYPE)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "GIF: no image in the file");
    if (t != EXTENSION_RECORD_TYPE)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "GIF: unknown record type");
    int code;
    GifByteType *ext;
    if (DGifGetExtension(g, &code, &ext) == GIF_ERROR)
      return gif_fail(e, g->Error);
    GraphicsControlBlock gcb;
    if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] == 4 &&
        DGifExtensionToGCB(4, ext + 1, &gcb) == GIF_OK)
      *transparent = gcb.TransparentColor;
    while (ext)
      if (DGifGetExtensionNext(g, &ext) == GIF_ERROR)
        return gif_fail(e, g->Error);
  }
}

/* Whether the first frame leaves some screen pixel transparent. */
static int gif_has_alpha(const GifFileType *g, int transparent) {
  const GifImageDesc *d = &g->Image;
  return transparent != NO_TRANSPARENT_COLOR || d->Left > 0 || d->Top > 0 ||
         (long)d->Left + d->Width < g->SWidth ||
         (long)d->Top + d->Height < g->SHeight;
}

/* Writes one decoded frame row at screen row y, clipped to the screen. */
static void gif_put_row(const GifFileType *g, const ColorMapObject *cm,
                        int transparent, const GifByteType *line, int y,
                        dlp_raw *r) {
  int c = r->channels, left = g->Image.Left;
  if (y < 0 || y >= r->height || left >= r->width) return;
  int n = g->Image.Width < r->width - left ? g->Image.Width : r->width - left;
  uint8_t *d = r->data + ((size_t)y * (size_t)r->width + (size_t)left) * c;
  for (int x = 0; x < n; x++, d += c) {
    int i = line[x];
    if (i < cm->ColorCount) {
      d[0] = cm->Colors[i].Red;
      d[1] = cm->Colors[i].Green;
      d[2] = cm->Colors[i].Blue;
    } /* an index past the palette is black, as in PIL's padded palette */
    /* A transparent pixel keeps its palette colour under alpha 0 (as PIL's
     * RGBA conversion does); only uncovered screen stays 0,0,0,0. */
    if (c == 4) d[3] = i == transparent ? 0 : 255;
  }
}

static int gif_read_frame(dlp_err *e, GifFileType *g, int transparent,
                          dlp_raw *r) {
  const ColorMapObject *cm =
      g->Image.ColorMap ? g->Image.ColorMap : g->SColorMap;
  if (!cm) return dlp_err_set(e, DLP_ERR_CORRUPT, "GIF: no colour map");
  int w = g->Image.Width, h = g->Image.Height;
  if (w <= 0 || h <= 0) return DLP_OK; /* an empty frame: all transparent */
  GifByteType *line = malloc((size_t)w);
  if (!line) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory for a GIF row");
  static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
  int passes = g->Image.Interlace ? 4 : 1;
  int rc = DLP_OK;
  for (int p = 0; p < passes && rc == DLP_OK; p++) {
    int y0 = passes == 1 ? 0 : start[p], dy = passes == 1 ? 1 : step[p];
    for (int y = y0; y < h; y += dy) {
      if (DGifGetLine(g, line, w) == GIF_ERROR) {
        rc = gif_fail(e, g->Error);
        break;
      }
      gif_put_row(g, cm, transparent, line, g->Image.Top + y, r);
    }
  }
  free(line);
  return rc;
}

static int gif_decode_open(dlp_err *e, const dlp_limits *lim, GifFileType *g,
                           dlp_hdr *hdr, dlp_raw *out) {
  int transparent;
  if (g->SWidth <= 0 || g->SHeight <= 0)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "GIF: empty logical screen %dx%d",
                       g->SWidth, g->SHeight);
  int rc = lim ? dlp_img_check_pixels(e, lim, (uint64_t)g->SWidth,
                                      (uint64_t)g->SHeight)
               : DLP_OK;
  if (rc == DLP_OK) rc = gif_seek_first_image(e, g, &transparent);
  if (rc != DLP_OK) return rc;
  *hdr = (dlp_hdr){g->SWidth, g->SHeight, gif_has_alpha(g, transparent) ? 4 : 3,
                   1};
  if (!out) return DLP_OK;
  /* The frame's own size bounds the rows we decode, even if clipped. */
  rc = dlp_img_check_pixels(e, lim, (uint64_t)g->Image.Width,
                            (uint64_t)g->Image.Height);
  if (rc != DLP_OK) return rc;
  out->width = hdr->width;
  out->height = hdr->height;
  out->channels = hdr->channels;
  out->orientation = 1;
  out->data = dlp_img_raw_alloc(e, out, out->width, out->height, out->channels);
  if (!out->data) return DLP_ERR_NOMEM;
  memset(out->data, 0, (size_t)out->width * out->height * out->channels);
  return gif_read_frame(e, g, transparent, out);
}

/* out == NULL: probe only. */
static int gif_go(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                  size_t len, dlp_hdr *hdr, dlp_raw *out) {
  gif_src src = {buf, len, 0};
  int err = 0;
  GifFileType *g = DGifOpen(&src, gif_read_mem, &err);
  if (!g) return gif_fail(e, err);
  int rc = gif_decode_open(e, lim, g, hdr, out);
  DGifCloseFile(g, &err);
  return rc;
}

int dlp_gif_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h) {
  return gif_go(e, NULL, buf, len, h, NULL);
}

int dlp_gif_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                   size_t len, dlp_raw *out) {
  dlp_raw_reset(out);
  dlp_hdr h;
  int rc = gif_go(e, lim, buf, len, &h, out);
  if (rc != DLP_OK) {
    free(out->data);
    out->data = NULL;
    out->cap = 0;
  }
  return rc;
}
