/* test_decode.c - image decoding: images are encoded in-process with libpng
 * and libjpeg (so the expected pixels are known), hand-made headers probe
 * the limits, and bad input must fail cleanly. */
#include "image/decoders.h"
#include "test.h"

#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>

/* --- encoders --------------------------------------------------------------
 */

typedef struct membuf {
  uint8_t *p;
  size_t len, cap;
} membuf;

static void mb_put(membuf *m, const void *d, size_t n) {
  if (m->len + n > m->cap) {
    m->cap = (m->len + n) * 2;
    m->p = realloc(m->p, m->cap);
  }
  memcpy(m->p + m->len, d, n);
  m->len += n;
}

static void png_mem_write(png_structp png, png_bytep d, size_t n) {
  mb_put(png_get_io_ptr(png), d, n);
}
static void png_mem_flush(png_structp png) { (void)png; }

/* A PNG of w x h with packed rows (libpng format for the depth); palette and
 * trns optional. header_only stops after IHDR. */
typedef struct png_spec {
  int w, h, color_type, depth, interlace;
  const uint8_t *rows; /* h rows of rowbytes each */
  const png_color *palette;
  int n_palette;
  const uint8_t *trns;
  int n_trns;
  int header_only;
} png_spec;

static membuf encode_png(const png_spec *s) {
  membuf m = {0};
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(m.p);
    return (membuf){0};
  }
  png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
  png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth,
               s->color_type,
               s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (s->palette) png_set_PLTE(png, info, s->palette, s->n_palette);
  if (s->trns) png_set_tRNS(png, info, s->trns, s->n_trns, NULL);
  png_write_info(png, info);
  if (!s->header_only) {
    size_t rb = png_get_rowbytes(png, info);
    png_bytep *rows = malloc(sizeof *rows * (size_t)s->h);
    for (int y = 0; y < s->h; y++)
      rows[y] = (png_bytep)s->rows + y * rb;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    free(rows);
  }
  png_destroy_write_struct(&png, &info);
  return m;
}

typedef struct jpeg_spec {
  int w, h, comps; /* 1 gray, 3 RGB, 4 CMYK */
  const uint8_t *pixels;
  int quality, progressive;
  int orientation; /* 0: no EXIF */
  int plain_cmyk;  /* CMYK without the Adobe marker (not inverted) */
} jpeg_spec;

/* A minimal big-endian EXIF APP1 body with one IFD0 entry: Orientation. */
static void exif_orientation_blob(uint8_t out[26], int o) {
  static const uint8_t t[26] = {'E', 'x', 'i', 'f', 0, 0, 'M', 'M',  0,
                                42,  0,   0,   0,   8, 0, 1,   0x01, 0x12,
                                0,   3,   0,   0,   0, 1, 0,   0};
  memcpy(out, t, 26);
  out[24] = 0;
  out[25] = (uint8_t)o; /* SHORT value, left-justified in the 4-byte field */
}

static membuf encode_jpeg(const jpeg_spec *s) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char *out = NULL;
  unsigned long outlen = 0;
  jpeg_mem_dest(&c, &out, &outlen);
  c.image_width = (JDIMENSION)s->w;
  c.image_height = (JDIMENSION)s->h;
  c.input_components = s->comps;
  c.in_color_space = s->comps == 1   ? JCS_GRAYSCALE
                     : s->comps == 4 ? JCS_CMYK
                                     : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, s->quality, TRUE);
  /* 4:4:4, so the only loss is quantisation (no chroma subsampling) */
  for (int i = 0; i < c.num_components; i++)
    c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  c.write_Adobe_marker = s->comps == 4 && !s->plain_cmyk;
  if (s->progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  if (s->orientation) {
    uint8_t blob[26 + 4];
    exif_orientation_blob(blob, s->orientation);
    memset(blob + 26, 0, 4); /* next-IFD offset 0 */
    jpeg_write_marker(&c, JPEG_APP0 + 1, blob, 30);
  }
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = (JSAMPROW)s->pixels +
                   (size_t)c.next_scanline * (size_t)s->w * (size_t)s->comps;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  membuf m = {out, outlen, outlen};
  return m;
}

/* A smooth test pattern (JPEG-friendly). */
static uint8_t *smooth(int w, int h, int comps) {
  uint8_t *p = malloc((size_t)w * h * comps);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < comps; c++)
        p[((size_t)y * w + x) * comps + c] =
            (uint8_t)(30 + (x * (150 + 20 * c)) / w + (y * (60 - 15 * c)) / h);
  return p;
}

static dlp_ctx *new_ctx(void) {
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) abort();
  return ctx;
}

static int decode(dlp_ctx *ctx, membuf m, const dlp_decode_opts *o,
                  dlp_image **img) {
  return dlp_image_decode(ctx, m.p, m.len, o, img);
}

/* --- PNG ---------------------------------------------------------------------
 */

/* Packs sample values (0 .. 2^depth-1) into PNG rows of the given depth. */
static uint8_t *pack_rows(const unsigned *v, int w, int h, int spp, int depth) {
  size_t rb = ((size_t)w * spp * depth + 7) / 8;
  uint8_t *rows = calloc(rb * h, 1);
  for (int y = 0; y < h; y++)
    for (int i = 0; i < w * spp; i++) {
      unsigned s = v[(size_t)y * w * spp + i];
      uint8_t *r = rows + y * rb;
      if (depth == 16) {
        r[2 * i] = (uint8_t)(s >> 8);
        r[2 * i + 1] = (uint8_t)s;
      } else if (depth == 8) {
        r[i] = (uint8_t)s;
      } else {
        int bit = i * depth, shift = 8 - depth - bit % 8;
        r[bit / 8] |= (uint8_t)(s << shift);
      }
    }
  return rows;
}

/* The 8-bit value a decoder must produce for a sample of the given depth. */
static uint8_t to8(unsigned s, int depth) {
  if (depth == 16) return (uint8_t)(s >> 8);
  return (uint8_t)(s * 255u / ((1u << depth) - 1u));
}

static void check_png_case(int ct, int depth, int interlace) {
  enum { W = 13, H = 11 };
  int spp = ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_PALETTE ? 1
            : ct == PNG_COLOR_TYPE_GRAY_ALPHA                         ? 2
            : ct == PNG_COLOR_TYPE_RGB                                ? 3
                                                                      : 4;
  unsigned max = (1u << depth) - 1u, v[W * H * 4];
  for (int i = 0; i < W * H * spp; i++)
    v[i] = (unsigned)(i * 2654435761u >> 7) % (max + 1u);
  png_color pal[256];
  int npal = ct == PNG_COLOR_TYPE_PALETTE ? (int)max + 1 : 0;
  for (int i = 0; i < npal; i++)
    pal[i] =
        (png_color){(uint8_t)(i * 7), (uint8_t)(255 - i), (uint8_t)(i ^ 0x5a)};
  uint8_t *rows = pack_rows(v, W, H, spp, depth);
  png_spec s = {W,    H,    ct, depth, interlace, rows, npal ? pal : NULL,
                npal, NULL, 0,  0};
  membuf m = encode_png(&s);
  dlp_ctx *ctx = new_ctx();
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  o.keep_alpha = 1;
  dlp_image *img = NULL;
  CHECK_OK(ctx, decode(ctx, m, &o, &img));
  int want_c = spp == 1 && npal ? 3 : spp == 2 ? 4 : spp;
  if (img) {
    CHECK_EQ_INT(img->width, W);
    CHECK_EQ_INT(img->height, H);
    CHECK_EQ_INT(img->n_channels, want_c);
    CHECK_EQ_INT(img->mode, want_c == 1 ? 0 : want_c == 3 ? 16 : 24);
    int bad = 0;
    for (int i = 0; i < W * H; i++) {
      const uint8_t *d = img->data + (size_t)i * want_c;
      uint8_t e[4];
      const unsigned *sv = v + (size_t)i * spp;
      if (npal) {
        e[0] = pal[sv[0]].red, e[1] = pal[sv[0]].green, e[2] = pal[sv[0]].blue;
      } else if (spp <= 2) {
        e[0] = e[1] = e[2] = to8(sv[0], depth);
        e[3] = spp == 2 ? to8(sv[1], depth) : 255;
      } else {
        for (int c = 0; c < spp; c++)
          e[c] = to8(sv[c], depth);
      }
      bad += memcmp(d, e, (size_t)want_c) != 0;
    }
    if (bad)
      fprintf(stderr, "png ct %d depth %d interlace %d: %d bad pixels\n", ct,
              depth, interlace, bad);
    CHECK_EQ_INT(bad, 0);
  }
  dlp_image_free(img);
  dlp_ctx_free(ctx);
  free(rows);
  free(m.p);
}

TEST(png_every_color_type_and_depth_exact) {
  static const int cases[][2] = {
      {PNG_COLOR_TYPE_GRAY, 1},        {PNG_COLOR_TYPE_GRAY, 2},
      {PNG_COLOR_TYPE_GRAY, 4},        {PNG_COLOR_TYPE_GRAY, 8},
      {PNG_COLOR_TYPE_GRAY, 16},       {PNG_COLOR_TYPE_GRAY_ALPHA, 8},
      {PNG_COLOR_TYPE_GRAY_ALPHA, 16}, {PNG_COLOR_TYPE_RGB, 8},
      {PNG_COLOR_TYPE_RGB, 16},        {PNG_COLOR_TYPE_RGB_ALPHA, 8},
      {PNG_COLOR_TYPE_RGB_ALPHA, 16},  {PNG_COLOR_TYPE_PALETTE, 1},
      {PNG_COLOR_TYPE_PALETTE, 2},     {PNG_COLOR_TYPE_PALETTE, 4},
      {PNG_COLOR_TYPE_PALETTE, 8}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int il = 0; il < 2; il++)
      check_png_case(cases[i][0], cases[i][1], il);
}

/* The compositing rule, computed in floating point: round half up of
 * c*a/255 + 255*(1 - a/255). */
static uint8_t on_white(int c, int a) {
  return (uint8_t)floor(c * a / 255.0 + 255.0 * (1.0 - a / 255.0) + 0.5);
}

TEST(png_alpha_composited_on_white_by_default) {
  uint8_t px[] = {200, 100, 0, 128, 10, 20,  30,  0,
                  1,   2,   3, 255, 90, 180, 250, 77};
  png_spec s = {4, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, px, NULL, 0, NULL, 0, 0};
  membuf m = encode_png(&s);
  dlp_ctx *ctx = new_ctx();
  dlp_image *img = NULL;
  CHECK_OK(ctx, decode(ctx, m, NULL, &img));
  if (img) {
    CHECK_EQ_INT(img->n_channels, 3);
    CHECK_EQ_INT(img->mode, DLP_MODE_8UC3);
    for (int i = 0; i < 4; i++)
      for (int c = 0; c < 3; c++)
        CHECK_EQ_INT(img->data[i * 3 + c],
                     on_white(px[i * 4 + c], px[i * 4 + 3]));
  }
  dlp_image_free(img);
  /* gray+alpha stays one channel after compositing */
  uint8_t ga[] = {100, 0, 100, 255, 100, 128};
  png_spec s2 = {3, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, ga, NULL, 0, NULL,
                 0, 0};
  membuf m2 = encode_png(&s2);
  CHECK_OK(ctx, decode(ctx, m2, NULL, &img));
  if (img) {
    CHECK_EQ_INT(img->n_channels, 1);
    CHECK_EQ_INT(img->data[0], 255);
    CHECK_EQ_INT(img->data[1], 100);
    CHECK_EQ_INT(img->data[2], on_white(100, 128));
  }
  dlp_image_free(img);
  dlp_ctx_free(ctx);
  free(m.p);
  free(m2.p);
}

TEST(keep_alpha_and_force_rgb) {
  uint8_t ga[] = {10, 20, 30, 40};
  png_spec s = {2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, ga, NULL, 0, NULL, 0, 0};
  membuf m = encode_png(&s);
  uint8_t g[] = {7, 9};
  png_spec s2 = {2, 1, PNG_COLOR_TYPE_GRAY, 8, 0, g, NULL, 0, NULL, 0, 0};
  membuf m2 = encode_png(&s2);
  dlp_ctx *ctx = new_ctx();
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  o.keep_alpha = 1;
  dlp_image *img = NULL;
  CHECK_OK(ctx, decode(ctx, m, &o, &img));
  if (img) {
    static const uint8_t want[] = {10, 10, 10, 20, 30, 30, 30, 40};
    CHECK_EQ_INT(img->n_channels, 4);
    CHECK(memcmp(img->data, want, 8) == 0);
  }
  dlp_image_free(img);
  CHECK_OK(ctx, decode(ctx, m2, NULL, &img)); /* gray stays gray */
  if (img) CHECK_EQ_INT(img->n_channels, 1);
  dlp_image_free(img);
  dlp_decode_opts_init(&o);
  o.force_rgb = 1;
  CHECK_OK(ctx, decode(ctx, m2, &o, &img));
  if (img) {
    static const uint8_t want[] = {7, 7, 7, 9, 9, 9};
    CHECK_EQ_INT(img->n_channels, 3);
    CHECK_EQ_INT(img->mode, DLP_MODE_8UC3);
    CHECK(memcmp(img->data, want, 6) == 0);
  }
  dlp_image_free(img);
  dlp_ctx_free(ctx);
  free(m.p);
  free(m2.p);
}

TEST(png_palette_trns_becomes_alpha) {
  png_color pal[2] = {{255, 0, 0}, {0, 0, 255}};
  uint8_t trns[1] = {0}, idx[] = {0, 1};
  png_spec s = {2, 1, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, pal, 2, trns, 1, 0};
  membuf m = encode_png(&s);
  dlp_ctx *ctx = new_ctx();
  dlp_image_info info;
  CHECK_OK(ctx, dlp_image_probe(ctx, m.p, m.len, &info));
  CHECK_EQ_INT(info.format, DLP_FORMAT_PNG);
  CHECK_EQ_INT(info.has_alpha, 1);
  CHECK_EQ_INT(info.n_channels, 3);
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  o.keep_alpha = 1;
  dlp_image *img = NULL;
  CHECK_OK(ctx, decode(ctx, m, &o, &img));
  if (img) {
    static const uint8_t want[] = {255, 0, 0, 0, 0, 0, 255, 255};
    CHECK(memcmp(img->data, want, 8) == 0);
  }
  dlp_image_free(img);
  dlp_ctx_free(ctx);
  free(m.p);
}

/* --- JPEG --------------------------------------------------------------------
 */

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n) {
  int m = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)a[i] - (int)b[i]);
    if (d > m) m = d;
  }
  return m;
}

TEST(jpeg_smooth_image_close_to_source) {
  for (int comps = 1; comps <= 3; comps += 2)
    for (int prog = 0; prog < 2; prog++) {
      uint8_t *src = smooth(96, 64, comps);
      jpeg_spec s = {96, 64, comps, src, 95, prog, 0, 0};
      membuf m = encode_jpeg(&s);
      dlp_ctx *ctx = new_ctx();
      dlp_image *img = NULL;
      CHECK_OK(ctx, decode(ctx, m, NULL, &img));
      if (img) {
        CHECK_EQ_INT(img->width, 96);
        CHECK_EQ_INT(img->height, 64);
        CHECK_EQ_INT(img->n_channels, comps);
        size_t n = (size_t)96 * 64 * comps;
        int d = max_diff(img->data, src, n);
        double sum = 0;
        for (size_t i = 0; i < n; i++)
          sum += abs(img->data[i] - src[i]);
        /* Gray: within 2. Colour: B = Y + 1.772 Cb amplifies the chroma
         * quantisation error, and libjpeg itself (PIL too) is off by 3 at a
         * few pixels of such gradients at quality 95; the mean stays < 1. */
        int tol = comps == 1 ? 2 : 3;
        if (d > tol)
          fprintf(stderr, "comps %d prog %d: diff %d\n", comps, prog, d);
        CHECK(d <= tol);
        CHECK(sum / (double)n < 1.0);
      }
      dlp_image_free(img);
      dlp_ctx_free(ctx);
      free(src);
      free(m.p);
    }
}

/* CMYK samples as libjpeg stores them. With an Adobe marker (libjpeg's
 * default for CMYK) they are Adobe's inverted samples: R = C*K/255; without
 * one they are plain ink amounts: R = (255-C)(255-K)/255. A flat image keeps
 * the codec error within 1. */
static void check_cmyk(int plain) {
  uint8_t *src = malloc(16 * 16 * 4);
  for (int i = 0; i < 256; i++) {
    src[4 * i] = 40, src[4 * i + 1] = 120, src[4 * i + 2] = 200;
    src[4 * i + 3] = 60;
  }
  jpeg_spec s = {16, 16, 4, src, 100, 0, 0, plain};
  membuf m = encode_jpeg(&s);
  dlp_ctx *ctx = new_ctx();
  dlp_image *img = NULL;
  CHECK_OK(ctx, decode(ctx, m, NULL, &img));
  if (img) {
    CHECK_EQ_INT(img->n_channels, 3);
    for (int c = 0; c < 3; c++) {
      double cv = src[c], k = src[3];
      if (plain) cv = 255 - cv, k = 255 - k;
      CHECK_NEAR(img->data[c], cv * k / 255.0, 1.5);
    }
  }
  dlp_image_free(img);
  dlp_ctx_free(ctx);
  free(src);
  free(m.p);
}

TEST(jpeg_cmyk_uses_multiplicative_formula) {
  check_cmyk(0);
  check_cmyk(1);
}

TEST(jpeg_truncated_anywhere_is_corrupt) {
  uint8_t *src = smooth(64, 48, 3);
  for (int prog = 0; prog < 2; prog++) {
    jpeg_spec s = {64, 48, 3, src, 90, prog, 0, 0};
    membuf m = encode_jpeg(&s);
    dlp_ctx *ctx = new_ctx();
    for (size_t cut = 3; cut < m.len - 2; cut += 1 + m.len / 61) {
      dlp_image *img = NULL;
      int rc = dlp_image_decode(ctx, m.p, cut, NULL, &img);
      if (rc != DLP_ERR_CORRUPT)
        fprintf(stderr, "cut %zu of %zu: rc %d (%s)\n", cut, m.len, rc,
                dlp_errmsg(ctx));
      CHECK_EQ_INT(rc, DLP_ERR_CORRUPT);
      CHECK(img == NULL);
    }
    dlp_image *img = NULL;
    CHECK_EQ_INT(dlp_image_decode(ctx, m.p, m.len / 2, NULL, &img),
                 DLP_ERR_CORRUPT);
    CHECK(strstr(dlp_errmsg(ctx), "truncated JPEG data") != NULL);
    dlp_ctx_free(ctx);
    free(m.p);
  }
  free(src);
}

TEST(png_truncated_anywhere_is_corrupt) {
  uint8_t *src = smooth(40, 30, 3);
  png_spec s = {40, 30, PNG_COLOR_TYPE_RGB, 8, 0, src, NULL, 0, NULL, 0, 0};
  membuf m = encode_png(&s);
  dlp_ctx *ctx = new_ctx();
  size_t iend = m.len - 12; /* everything before IEND is needed */
  for (size_t cut = 8; cut < iend; cut += 1 + iend / 53) {
    dlp_image *img = NULL;
    int rc = dlp_image_decode(ctx, m.p, cut, NULL, &img);
    CHECK_EQ_INT(rc, DLP_ERR_CORRUPT);
    CHECK(img == NULL);
  }
  dlp_ctx_free(ctx);
  free(m.p);
  free(src);
}

TEST(jpeg_dct_scale_choice) {
  CHECK_EQ_INT(dlp_jpeg_pick_scale(1024, 768, 1, 299, 299), 4);
  CHECK_EQ_INT(dlp_jpeg_pick_scale(4000, 3000, 1, 299, 299), 1);
  CHECK_EQ_INT(dlp_jpeg_pick_scale(4000, 3000, 1, 0, 0), 8);
  CHECK_EQ_INT(dlp_jpeg_pick_scale(600, 600, 1, 299, 299), 4); /* 300 >= 299 */
  CHECK_EQ_INT(dlp_jpeg_pick_scale(598, 598, 1, 300, 300), 8); /* 299 < 300 */
  /* orientation 6: upright size is 768x1024 */
  CHECK_EQ_INT(dlp_jpeg_pick_scale(1024, 768, 6, 150, 250), 2);
  CHECK_EQ_INT(dlp_jpeg_pick_scale(1024, 768, 1, 150, 250), 4);
}

static void check_scaled_decode(int w, int h, int ww, int wh) {
  uint8_t *src = smooth(w, h, 3);
  jpeg_spec s = {w, h, 3, src, 80, 0, 0, 0};
  membuf m = encode_jpeg(&s);
  dlp_ctx *ctx = new_ctx();
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  o.target_width = o.target_height = 299;
  dlp_image *img = NULL;
  CHECK_OK(ctx, decode(ctx, m, &o, &img));
  if (img) {
    CHECK_EQ_INT(img->width, ww);
    CHECK_EQ_INT(img->height, wh);
  }
  dlp_image_free(img);
  dlp_ctx_free(ctx);
  free(src);
  free(m.p);
}

TEST(jpeg_reduced_decode_sizes) {
  check_scaled_decode(1024, 768, 512, 384);
  check_scaled_decode(4000, 3000, 500, 375);
}

TEST(jpeg_exif_orientation_applied) {
  enum { W = 32, H = 16 };
  uint8_t *src = smooth(W, H, 3);
  for (int i = 0; i < 8 * 3; i++)
    src[i] = 255; /* a mark in a corner */
  for (int o = 1; o <= 8; o++) {
    jpeg_spec s = {W, H, 3, src, 95, 0, o, 0};
    membuf m = encode_jpeg(&s);
    dlp_ctx *ctx = new_ctx();
    dlp_image_info info;
    CHECK_OK(ctx, dlp_image_probe(ctx, m.p, m.len, &info));
    CHECK_EQ_INT(info.orientation, o);
    CHECK_EQ_INT(info.width, o >= 5 ? H : W);
    dlp_decode_opts raw_o;
    dlp_decode_opts_init(&raw_o);
    raw_o.apply_exif_orientation = 0;
    dlp_image *raw = NULL, *img = NULL;
    CHECK_OK(ctx, decode(ctx, m, &raw_o, &raw));
    CHECK_OK(ctx, decode(ctx, m, NULL, &img));
    if (raw && img) {
      CHECK_EQ_INT(raw->width, W);
      CHECK_EQ_INT(img->width, o >= 5 ? H : W);
      /* pixel (x, y) of the upright image comes from raw per EXIF */
      int bad = 0;
      for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
          int sx, sy, iw = img->width, ih = img->height;
          switch (o) {
          case 2:
            sx = iw - 1 - x, sy = y;
            break;
          case 3:
            sx = iw - 1 - x, sy = ih - 1 - y;
            break;
          case 4:
            sx = x, sy = ih - 1 - y;
            break;
          case 5:
            sx = y, sy = x;
            break;
          case 6:
            sx = y, sy = iw - 1 - x;
            break;
          case 7:
            sx = ih - 1 - y, sy = iw - 1 - x;
            break;
          case 8:
            sx = ih - 1 - y, sy = x;
            break;
          default:
            sx = x, sy = y;
          }
          bad += memcmp(img->data + ((size_t)y * iw + x) * 3,
                        raw->data + ((size_t)sy * W + sx) * 3, 3) != 0;
        }
      CHECK_EQ_INT(bad, 0);
    }
    dlp_image_free(raw);
    dlp_image_free(img);
    dlp_ctx_free(ctx);
    free(m.p);
  }
  free(src);
}

/* --- orientation on a known buffer ------------------------------------------
 */

TEST(orientation_transforms_all_eight) {
  /* 3 wide, 2 high:  1 2 3
   *                  4 5 6   expected results written out per EXIF. */
  static const uint8_t src[6] = {1, 2, 3, 4, 5, 6};
  static const struct {
    int w, h;
    uint8_t px[6];
  } want[9] = {{0, 0, {0}},
               {3, 2, {1, 2, 3, 4, 5, 6}},  /* 1 identity */
               {3, 2, {3, 2, 1, 6, 5, 4}},  /* 2 mirror */
               {3, 2, {6, 5, 4, 3, 2, 1}},  /* 3 rotate 180 */
               {3, 2, {4, 5, 6, 1, 2, 3}},  /* 4 flip */
               {2, 3, {1, 4, 2, 5, 3, 6}},  /* 5 transpose */
               {2, 3, {4, 1, 5, 2, 6, 3}},  /* 6 rotate 90 cw */
               {2, 3, {6, 3, 5, 2, 4, 1}},  /* 7 transverse */
               {2, 3, {3, 6, 2, 5, 1, 4}}}; /* 8 rotate 90 ccw */
  for (int o = 1; o <= 8; o++) {
    uint8_t *dst = NULL;
    int32_t w = 0, h = 0;
    dlp_err e = {0};
    CHECK_EQ_INT(dlp_img_orient(&e, src, 3, 2, 1, o, &dst, &w, &h), DLP_OK);
    CHECK_EQ_INT(w, want[o].w);
    CHECK_EQ_INT(h, want[o].h);
    if (dst && memcmp(dst, want[o].px, 6) != 0)
      fprintf(stderr, "orientation %d wrong\n", o);
    CHECK(dst && memcmp(dst, want[o].px, 6) == 0);
    free(dst);
    /* the same walk with 3 channels: each pixel moves as a whole */
    uint8_t src3[18], want3[18];
    for (int i = 0; i < 18; i++)
      src3[i] = (uint8_t)(src[i / 3] * 10 + i % 3);
    for (int i = 0; i < 18; i++)
      want3[i] = (uint8_t)(want[o].px[i / 3] * 10 + i % 3);
    CHECK_EQ_INT(dlp_img_orient(&e, src3, 3, 2, 3, o, &dst, &w, &h), DLP_OK);
    CHECK(dst && memcmp(dst, want3, 18) == 0);
    free(dst);
  }
}

/* --- limits and bad input ----------------------------------------------------
 */

static void le16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}
static void le32(uint8_t *p, uint32_t v) {
  le16(p, v & 0xffff), le16(p + 2, v >> 16);
}

static void expect_too_large(const char *what, const uint8_t *p, size_t n) {
  dlp_ctx *ctx = new_ctx();
  dlp_image *img = NULL;
  int rc = dlp_image_decode(ctx, p, n, NULL, &img);
  if (rc != DLP_ERR_TOO_LARGE)
    fprintf(stderr, "%s: rc %d (%s)\n", what, rc, dlp_errmsg(ctx));
  CHECK_EQ_INT(rc, DLP_ERR_TOO_LARGE);
  CHECK(img == NULL);
  CHECK(strstr(dlp_errmsg(ctx), "60000x60000 = 3600000000 pixels") != NULL);
  dlp_ctx_free(ctx);
}

TEST(huge_headers_fail_before_allocating) {
  /* PNG: a real IHDR written by libpng, no pixel data */
  png_spec s = {60000, 60000, PNG_COLOR_TYPE_RGB, 8, 0, NULL, NULL, 0, NULL,
                0,     1};
  membuf m = encode_png(&s);
  expect_too_large("png", m.p, m.len);
  free(m.p);
  /* JPEG: SOI, SOF0 60000x60000 gray, SOS, a few bytes, EOI */
  static const uint8_t jpg[] = {0xFF, 0xD8, 0xFF, 0xC0, 0,   11,   8, 0xEA,
                                0x60, 0xEA, 0x60, 1,    1,   0x11, 0, 0xFF,
                                0xDA, 0,    8,    1,    1,   0x00, 0, 63,
                                0,    0x12, 0x34, 0xFF, 0xD9};
  expect_too_large("jpeg", jpg, sizeof jpg);
  /* GIF: logical screen 60000x60000, then the trailer */
  uint8_t gif[14] = "GIF89a";
  le16(gif + 6, 60000), le16(gif + 8, 60000);
  gif[10] = gif[11] = gif[12] = 0;
  gif[13] = ';';
  expect_too_large("gif", gif, sizeof gif);
  /* BMP: BITMAPINFOHEADER, 24-bit, no pixel data */
  uint8_t bmp[54] = {'B', 'M'};
  le32(bmp + 2, 54), le32(bmp + 10, 54), le32(bmp + 14, 40);
  le32(bmp + 18, 60000), le32(bmp + 22, 60000);
  le16(bmp + 26, 1), le16(bmp + 28, 24);
  expect_too_large("bmp", bmp, sizeof bmp);
  /* WebP: RIFF + VP8X chunk naming a 60000x60000 canvas */
  uint8_t webp[30] = {'R', 'I', 'F', 'F', 0,  0, 0, 0, 'W', 'E', 'B', 'P',
                      'V', 'P', '8', 'X', 10, 0, 0, 0, 0,   0,   0,   0};
  le32(webp + 4, 22);
  uint32_t d = 60000 - 1;
  webp[24] = (uint8_t)d, webp[25] = (uint8_t)(d >> 8),
  webp[26] = (uint8_t)(d >> 16);
  webp[27] = (uint8_t)d, webp[28] = (uint8_t)(d >> 8),
  webp[29] = (uint8_t)(d >> 16);
  expect_too_large("webp", webp, sizeof webp);
}

TEST(context_pixel_limit_is_honoured) {
  uint8_t *src = smooth(100, 100, 3);
  png_spec s = {100, 100, PNG_COLOR_TYPE_RGB, 8, 0, src, NULL, 0, NULL, 0, 0};
  membuf m = encode_png(&s);
  dlp_ctx *ctx = new_ctx();
  dlp_ctx_set_max_pixels(ctx, 9999);
  dlp_image *img = NULL;
  CHECK_EQ_INT(decode(ctx, m, NULL, &img), DLP_ERR_TOO_LARGE);
  CHECK_STR(dlp_errmsg(ctx),
            "image is 100x100 = 10000 pixels, over the limit of 9999 "
            "(dlp_ctx_set_max_pixels / --max-pixels)");
  dlp_ctx_set_max_pixels(ctx, 10000);
  CHECK_OK(ctx, decode(ctx, m, NULL, &img));
  dlp_image_free(img);
  dlp_ctx_free(ctx);
  free(m.p);
  free(src);
}

TEST(empty_and_text_input) {
  dlp_ctx *ctx = new_ctx();
  dlp_image *img = (dlp_image *)&img;
  CHECK_EQ_INT(dlp_image_decode(ctx, "", 0, NULL, &img), DLP_ERR_CORRUPT);
  CHECK_STR(dlp_errmsg(ctx), "empty file");
  CHECK(img == NULL);
  CHECK_EQ_INT(dlp_image_decode(ctx, NULL, 0, NULL, &img), DLP_ERR_CORRUPT);
  const char *txt = "hello world, not a picture";
  CHECK_EQ_INT(dlp_image_decode(ctx, txt, strlen(txt), NULL, &img),
               DLP_ERR_FORMAT);
  CHECK_STR(dlp_errmsg(ctx), "not an image: unknown signature '68 65 6c 6c'");
  CHECK_EQ_INT(dlp_image_decode(ctx, "\x01", 1, NULL, &img), DLP_ERR_FORMAT);
  CHECK_STR(dlp_errmsg(ctx), "not an image: unknown signature '01'");
  dlp_image_info info;
  CHECK_EQ_INT(dlp_image_probe(ctx, txt, strlen(txt), &info), DLP_ERR_FORMAT);
  /* a valid signature followed by garbage */
  uint8_t junk[300];
  for (int i = 0; i < 300; i++)
    junk[i] = (uint8_t)(i * 37 + 11);
  static const char *sigs[] = {"\xFF\xD8\xFF", "\x89PNG\r\n\x1a\n", "GIF89a",
                               "RIFF\x10\x01\0\0WEBP"};
  static const size_t sig_len[] = {3, 8, 6, 12};
  for (int k = 0; k < 4; k++) {
    memcpy(junk, sigs[k], sig_len[k]);
    int rc = dlp_image_decode(ctx, junk, sizeof junk, NULL, &img);
    CHECK(rc == DLP_ERR_CORRUPT || rc == DLP_ERR_UNSUPPORTED);
    CHECK(img == NULL);
  }
  dlp_ctx_free(ctx);
}

/* --- GIF frames on the logical screen
 * ----------------------------------------- */

/* A 4x3 screen with one 1x1 frame at (left, top) whose only pixel is palette
 * entry 0 (red); no transparency index. */
static size_t tiny_gif(uint8_t *g, int left, int top) {
  static const uint8_t t[] = {
      'G',  'I', 'F',  '8',  '9', 'a', 4, 0, 3, 0,
      0x80, 0,   0,                                /* screen, GCT 2 */
      255,  0,   0,    0,    0,   255,             /* red, blue */
      ',',  0,   0,    0,    0,   1,   0, 1, 0, 0, /* image desc */
      2,    2,   0x44, 0x01, 0,                    /* LZW: index 0 */
      ';'};
  memcpy(g, t, sizeof t);
  le16(g + 20, (unsigned)left);
  le16(g + 22, (unsigned)top);
  return sizeof t;
}

TEST(gif_frame_is_placed_and_clipped_on_screen) {
  uint8_t g[64];
  dlp_ctx *ctx = new_ctx();
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  o.keep_alpha = 1;
  dlp_image *img = NULL;
  size_t n = tiny_gif(g, 3, 2);
  CHECK_OK(ctx, dlp_image_decode(ctx, g, n, &o, &img));
  if (img) {
    CHECK_EQ_INT(img->width, 4);
    CHECK_EQ_INT(img->height, 3);
    CHECK_EQ_INT(img->n_channels, 4);
    static const uint8_t red[4] = {255, 0, 0, 255}, clear[4] = {0};
    for (int i = 0; i < 12; i++)
      CHECK(memcmp(img->data + 4 * i, i == 11 ? red : clear, 4) == 0);
  }
  dlp_image_free(img);
  /* default: uncovered screen is white */
  CHECK_OK(ctx, dlp_image_decode(ctx, g, n, NULL, &img));
  if (img) {
    CHECK_EQ_INT(img->n_channels, 3);
    CHECK_EQ_INT(img->data[0], 255);
    CHECK_EQ_INT(img->data[1], 255);
    CHECK_EQ_INT(img->data[11 * 3 + 1], 0);
  }
  dlp_image_free(img);
  n = tiny_gif(g, 5000, 9000); /* entirely off screen */
  CHECK_OK(ctx, dlp_image_decode(ctx, g, n, &o, &img));
  if (img) {
    int any = 0;
    for (int i = 0; i < 48; i++)
      any |= img->data[i];
    CHECK_EQ_INT(any, 0);
  }
  dlp_image_free(img);
  for (size_t cut = 6; cut < n - 1; cut++) { /* truncated anywhere */
    int rc = dlp_image_decode(ctx, g, cut, NULL, &img);
    CHECK(rc == DLP_ERR_CORRUPT);
    CHECK(img == NULL);
  }
  dlp_ctx_free(ctx);
}

/* --- small API pieces
 * ----------------------------------------------------------- */

TEST(image_new_swap_and_names) {
  dlp_ctx *ctx = new_ctx();
  dlp_image *img = NULL;
  CHECK_OK(ctx, dlp_image_new(ctx, 2, 1, 3, &img));
  if (img) {
    CHECK_EQ_INT(img->mode, DLP_MODE_8UC3);
    CHECK(img->origin == NULL);
    CHECK_EQ_INT(img->data[0] | img->data[5], 0);
    img->data[0] = 1, img->data[2] = 3, img->data[3] = 4, img->data[5] = 6;
    dlp_image_swap_rb(img);
    CHECK_EQ_INT(img->data[0], 3);
    CHECK_EQ_INT(img->data[2], 1);
    CHECK_EQ_INT(img->data[3], 6);
  }
  dlp_image_free(img);
  CHECK_EQ_INT(dlp_image_new(ctx, 0, 1, 3, &img), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_image_new(ctx, 1, 1, 2, &img), DLP_ERR_ARG);
  CHECK(img == NULL);
  dlp_image_free(NULL);
  CHECK_STR(dlp_format_name(DLP_FORMAT_WEBP), "webp");
  CHECK_STR(dlp_format_name((dlp_format)99), "unknown");
  CHECK_EQ_INT(dlp_format_sniff("GIF87a", 6), DLP_FORMAT_GIF);
  CHECK_EQ_INT(dlp_format_sniff("BM hello world, text", 20),
               DLP_FORMAT_UNKNOWN);
  CHECK_EQ_INT(dlp_mode_for_channels(4), DLP_MODE_8UC4);
  CHECK_EQ_INT(dlp_mode_for_channels(2), -1);
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  CHECK(o.apply_exif_orientation == 1 && o.keep_alpha == 0 &&
        o.force_rgb == 0 && o.target_width == 0);
  dlp_ctx_free(ctx);
}

TEST(read_missing_file_names_it) {
  dlp_ctx *ctx = new_ctx();
  dlp_image *img = NULL;
  CHECK_EQ_INT(dlp_image_read(ctx, "/nonexistent/x.jpg", NULL, &img),
               DLP_ERR_NOT_FOUND);
  CHECK(strstr(dlp_errmsg(ctx), "/nonexistent/x.jpg") != NULL);
  CHECK(img == NULL);
  dlp_ctx_free(ctx);
}

int main(void) {
  RUN(png_every_color_type_and_depth_exact);
  RUN(png_alpha_composited_on_white_by_default);
  RUN(keep_alpha_and_force_rgb);
  RUN(png_palette_trns_becomes_alpha);
  RUN(jpeg_smooth_image_close_to_source);
  RUN(jpeg_cmyk_uses_multiplicative_formula);
  RUN(jpeg_truncated_anywhere_is_corrupt);
  RUN(png_truncated_anywhere_is_corrupt);
  RUN(jpeg_dct_scale_choice);
  RUN(jpeg_reduced_decode_sizes);
  RUN(jpeg_exif_orientation_applied);
  RUN(orientation_transforms_all_eight);
  RUN(huge_headers_fail_before_allocating);
  RUN(context_pixel_limit_is_honoured);
  RUN(empty_and_text_input);
  RUN(gif_frame_is_placed_and_clipped_on_screen);
  RUN(image_new_swap_and_names);
  RUN(read_missing_file_names_it);
  return test_summary();
}
