/* decode_jpeg.c - JPEG through the libjpeg API (libjpeg-turbo): DCT-domain
 * scaling, gray / RGB / YCbCr / CMYK / YCCK, EXIF orientation (libexif).
 *
 * Errors: libjpeg reports through a setjmp error manager; corrupt data is
 * DLP_ERR_CORRUPT with libjpeg's message. The "premature end of file"
 * warning (JWRN_JPEG_EOF: libjpeg pads a truncated file with gray) is made
 * an error, since it means pixels are missing; other warnings (e.g.
 * extraneous bytes before a marker) are tolerated, as PIL does.
 *
 * CMYK: Adobe files (the common case, and what PIL writes) store inverted
 * samples, and libjpeg returns them as stored, so with c, m, y, k as
 * returned:  R = (c * k + 127) / 255  (likewise G from m, B from y),
 * the multiplicative formula of TurboJPEG and OpenCV, rounded half up.
 * Files without an Adobe marker hold plain CMYK and are inverted first.
 */
#include "decoders.h"

#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <libexif/exif-data.h>

/* A progressive file may hold any number of scans, each a pass over the
 * whole coefficient buffer; more than this is a decoding bomb (TurboJPEG
 * offers the same guard). */
#define JPEG_MAX_SCANS 1000

typedef struct jpeg_errmgr {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX + 8];
} jpeg_errmgr;

typedef struct jpeg_job {
  struct jpeg_decompress_struct cinfo;
  jpeg_errmgr err;
  struct jpeg_progress_mgr progress;
  dlp_err *e;
  const dlp_limits *lim;
  const uint8_t *buf;
  size_t len;
  const dlp_decode_opts *o; /* NULL: probe only */
  dlp_hdr hdr;
  dlp_raw *out;
  uint8_t *cmyk_row;
} jpeg_job;

static void jpeg_on_error(j_common_ptr c) {
  jpeg_errmgr *m = (jpeg_errmgr *)c->err;
  char text[JMSG_LENGTH_MAX];
  m->pub.format_message(c, text);
  snprintf(m->msg, sizeof m->msg, "JPEG: %s", text);
  longjmp(m->jb, 1);
}

static void jpeg_on_message(j_common_ptr c, int level) {
  jpeg_errmgr *m = (jpeg_errmgr *)c->err;
  if (level != -1) return; /* trace messages */
  if (m->pub.msg_code == JWRN_JPEG_EOF) {
    snprintf(m->msg, sizeof m->msg,
             "truncated JPEG data (premature end of file)");
    longjmp(m->jb, 1);
  }
  m->pub.num_warnings++;
}

static void jpeg_on_output(j_common_ptr c) { (void)c; }

static void jpeg_on_progress(j_common_ptr c) {
  j_decompress_ptr d = (j_decompress_ptr)c;
  if (d->is_decompressor && d->input_scan_number > JPEG_MAX_SCANS) {
    jpeg_errmgr *m = (jpeg_errmgr *)c->err;
    snprintf(m->msg, sizeof m->msg,
             "JPEG: more than %d progressive scans (a decoding bomb?)",
             JPEG_MAX_SCANS);
    longjmp(m->jb, 1);
  }
}

/* EXIF orientation from the first APP1 "Exif" segment (IFD0, as PIL's
 * getexif reads it); 1 when absent or out of range. */
static int jpeg_exif_orientation(j_decompress_ptr c) {
  for (jpeg_saved_marker_ptr m = c->marker_list; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 ||
        memcmp(m->data, "Exif\0\0", 6) != 0)
      continue;
    ExifData *ed = exif_data_new();
    if (!ed) return 1;
    /* Don't let libexif "fix" the data (add entries): we only read. */
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(ed, m->data, m->data_length);
    int o = 1;
    ExifEntry *en =
        exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (en && en->format == EXIF_FORMAT_SHORT && en->components >= 1 &&
        en->data && en->size >= 2)
      o = exif_get_short(en->data, exif_data_get_byte_order(ed));
    exif_data_unref(ed);
    return o >= 1 && o <= 8 ? o : 1;
  }
  return 1;
}

int dlp_jpeg_pick_scale(int32_t width, int32_t height, int orientation,
                        int target_w, int target_h) {
  if (target_w <= 0 && target_h <= 0) return 8;
  uint64_t w = (uint64_t)(width > 0 ? width : 0);
  uint64_t h = (uint64_t)(height > 0 ? height : 0);
  if (orientation >= 5 && orientation <= 8) {
    uint64_t t = w;
    w = h;
    h = t;
  }
  /* Only 1/8, 2/8, 4/8 have SIMD IDCTs in libjpeg-turbo; 3/8, 5/8, ... are
   * slower than decoding at full size and resizing. libjpeg rounds the
   * scaled size up, hence the ceil. */
  static const int nums[] = {1, 2, 4};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    uint64_t sw = (w * (uint64_t)nums[i] + 7) / 8;
    uint64_t sh = (h * (uint64_t)nums[i] + 7) / 8;
    if ((target_w <= 0 || sw >= (uint64_t)target_w) &&
        (target_h <= 0 || sh >= (uint64_t)target_h))
      return nums[i];
  }
  return 8;
}

static void jpeg_cmyk_to_rgb(const uint8_t *s, uint8_t *d, JDIMENSION w,
                             int adobe) {
  unsigned flip = adobe ? 0u : 255u; /* plain CMYK: invert to Adobe form */
  for (JDIMENSION x = 0; x < w; x++, s += 4, d += 3) {
    unsigned k = s[3] ^ flip;
    d[0] = (uint8_t)(((s[0] ^ flip) * k + 127u) / 255u);
    d[1] = (uint8_t)(((s[1] ^ flip) * k + 127u) / 255u);
    d[2] = (uint8_t)(((s[2] ^ flip) * k + 127u) / 255u);
  }
}

/* Chooses the output colour space; returns the channels dlp will get. */
static int jpeg_set_color(jpeg_job *j) {
  switch (j->cinfo.jpeg_color_space) {
  case JCS_GRAYSCALE:
    j->cinfo.out_color_space = JCS_GRAYSCALE;
    return 1;
  case JCS_CMYK:
  case JCS_YCCK:
    j->cinfo.out_color_space = JCS_CMYK;
    return 3;
  default:
    j->cinfo.out_color_space = JCS_RGB;
    return 3;
  }
}

/* Decodes all scanlines, straight into the output rows (CMYK through one
 * row buffer). */
static int jpeg_read_pixels(jpeg_job *j) {
  struct jpeg_decompress_struct *c = &j->cinfo;
  int cmyk = c->out_color_space == JCS_CMYK;
  int ch = c->out_color_space == JCS_GRAYSCALE ? 1 : 3;
  dlp_raw *r = j->out;
  r->width = (int32_t)c->output_width;
  r->height = (int32_t)c->output_height;
  r->channels = ch;
  r->data = dlp_img_raw_alloc(j->e, r, r->width, r->height, ch);
  if (!r->data) return DLP_ERR_NOMEM;
  size_t stride = (size_t)c->output_width * (size_t)ch;
  if (cmyk && !(j->cmyk_row = dlp_malloc_array(c->output_width, 4)))
    return dlp_err_set(j->e, DLP_ERR_NOMEM, "no memory for a JPEG row");
  while (c->output_scanline < c->output_height) {
    uint8_t *dst = r->data + (size_t)c->output_scanline * stride;
    JSAMPROW row = cmyk ? j->cmyk_row : dst;
    if (jpeg_read_scanlines(c, &row, 1) != 1)
      return dlp_err_set(j->e, DLP_ERR_CORRUPT, "JPEG: no scanline decoded");
    if (cmyk)
      jpeg_cmyk_to_rgb(j->cmyk_row, dst, c->output_width, c->saw_Adobe_marker);
  }
  /* No jpeg_finish_decompress: every pixel is in; what follows the last
   * scan (often a missing EOI in the wild) does not change them. */
  return DLP_OK;
}

/* The part that runs under setjmp. j lives in the caller's frame, so its
 * fields are valid after a longjmp. */
static int jpeg_run(jpeg_job *j) {
  struct jpeg_decompress_struct *c = &j->cinfo;
  if (setjmp(j->err.jb))
    return dlp_err_set(j->e, DLP_ERR_CORRUPT, "%s", j->err.msg);
  jpeg_create_decompress(c);
  jpeg_mem_src(c, j->buf, (unsigned long)j->len);
  jpeg_save_markers(c, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(c, TRUE);
  j->hdr.width = (int32_t)c->image_width;
  j->hdr.height = (int32_t)c->image_height;
  j->hdr.orientation = jpeg_exif_orientation(c);
  if (c->jpeg_color_space == JCS_UNKNOWN)
    return dlp_err_set(j->e, DLP_ERR_UNSUPPORTED,
                       "JPEG with an unknown colour space (%d components)",
                       c->num_components);
  j->hdr.channels = jpeg_set_color(j);
  if (!j->o) return DLP_OK;
  int rc = dlp_img_check_pixels(j->e, j->lim, c->image_width, c->image_height);
  if (rc != DLP_OK) return rc;
  int orient = j->o->apply_exif_orientation ? j->hdr.orientation : 1;
  c->scale_num =
      (unsigned)dlp_jpeg_pick_scale(j->hdr.width, j->hdr.height, orient,
                                    j->o->target_width, j->o->target_height);
  c->scale_denom = 8;
  c->dct_method = JDCT_ISLOW; /* as PIL: bit-exact results */
  c->do_fancy_upsampling = TRUE;
  j->progress.progress_monitor = jpeg_on_progress;
  c->progress = &j->progress;
  jpeg_start_decompress(c);
  j->out->orientation = j->hdr.orientation;
  return jpeg_read_pixels(j);
}

static void jpeg_job_init(jpeg_job *j, dlp_err *e, const dlp_limits *lim,
                          const uint8_t *buf, size_t len,
                          const dlp_decode_opts *o, dlp_raw *out) {
  memset(j, 0, sizeof *j);
  j->e = e;
  j->lim = lim;
  j->buf = buf;
  j->len = len;
  j->o = o;
  j->out = out;
  j->hdr.orientation = 1;
  j->cinfo.err = jpeg_std_error(&j->err.pub);
  j->err.pub.error_exit = jpeg_on_error;
  j->err.pub.emit_message = jpeg_on_message;
  j->err.pub.output_message = jpeg_on_output;
}

int dlp_jpeg_probe(dlp_err *e, const uint8_t *buf, size_t len, dlp_hdr *h) {
  jpeg_job *j = malloc(sizeof *j);
  if (!j) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory for a JPEG decoder");
  jpeg_job_init(j, e, NULL, buf, len, NULL, NULL);
  int rc = jpeg_run(j);
  jpeg_destroy_decompress(&j->cinfo);
  if (rc == DLP_OK) *h = j->hdr;
  free(j);
  return rc;
}

int dlp_jpeg_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                    size_t len, const dlp_decode_opts *o, dlp_raw *out) {
  jpeg_job *j = malloc(sizeof *j);
  if (!j) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory for a JPEG decoder");
  dlp_raw_reset(out);
  jpeg_job_init(j, e, lim, buf, len, o, out);
  int rc = jpeg_run(j);
  jpeg_destroy_decompress(&j->cinfo);
  free(j->cmyk_row);
  free(j);
  if (rc != DLP_OK) {
    free(out->data);
    out->data = NULL;
    out->cap = 0;
  }
  return rc;
}
