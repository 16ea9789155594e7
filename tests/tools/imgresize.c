/* imgresize.c - test tool: resize / preprocess an image or a uint8 .npy with
 * dlp and write the result as .npy, so Python tests can compare against PIL.
 *
 *   imgresize IN.npy|IMAGEFILE OUT.npy --size WxH
 *             [--filter bilinear|box|bicubic|lanczos]
 *             [--tensor tf|caffe|torch|none|custom] [--nchw] [--bgr]
 *             [--mean a,b,c] [--std a,b,c] [--crop F] [--direct]
 *             [--repeat N]
 *
 * Without --tensor: (crop then) dlp_image_resize, output uint8 (H, W, C).
 * With --tensor: dlp_image_to_tensor, output float32 (H, W, 3) or (3, H, W);
 * --direct uses dlp_image_file_to_tensor on the file (reduced-scale decode).
 * --repeat N runs the work N times and prints the mean seconds to stderr.
 * The .npy reader/writer is minimal: uint8 C-order arrays of 2 or 3 dims in,
 * uint8 / float32 out.
 */
#include "dlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *msg, const char *arg) {
  fprintf(stderr, "imgresize: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  return 1;
}

/* Parses "(H, W)" or "(H, W, C)" after 'shape': in a .npy header. */
static int npy_shape(const char *hdr, long dims[3], int *nd) {
  const char *s = strstr(hdr, "'shape':");
  if (!s || !(s = strchr(s, '('))) return -1;
  s++;
  *nd = 0;
  while (*nd < 3) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s) break;
    dims[(*nd)++] = v;
    s = end;
    while (*s == ' ' || *s == ',')
      s++;
  }
  return (*nd == 2 || *nd == 3) && *s == ')' ? 0 : -1;
}

static dlp_image *npy_read_u8(dlp_ctx *ctx, const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  unsigned char pre[12];
  dlp_image *img = NULL;
  if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) goto out;
  size_t hl = pre[8] | (size_t)pre[9] << 8;
  if (pre[6] >= 2) { /* version 2+: 4-byte header length */
    if (fread(pre + 10, 1, 2, fp) != 2) goto out;
    hl = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
         (size_t)pre[11] << 24;
  }
  if (hl > 65536) goto out;
  char *hdr = calloc(hl + 1, 1);
  if (!hdr || fread(hdr, 1, hl, fp) != hl) {
    free(hdr);
    goto out;
  }
  long d[3] = {0, 0, 1};
  int nd = 0;
  int ok = strstr(hdr, "u1'") && strstr(hdr, "'fortran_order': False") &&
           npy_shape(hdr, d, &nd) == 0;
  free(hdr);
  if (!ok || d[0] <= 0 || d[1] <= 0 || d[0] > 1 << 20 || d[1] > 1 << 20)
    goto out;
  if (nd == 2) d[2] = 1;
  if (dlp_image_new(ctx, (int32_t)d[1], (int32_t)d[0], (int32_t)d[2], &img) !=
      DLP_OK)
    goto out;
  size_t n = (size_t)d[0] * (size_t)d[1] * (size_t)d[2];
  if (fread(img->data, 1, n, fp) != n) {
    dlp_image_free(img);
    img = NULL;
  }
out:
  fclose(fp);
  return img;
}

static int npy_write(const char *path, const char *descr, const long *dims,
                     int nd, const void *data, size_t bytes) {
  char hdr[256], shape[96];
  if (nd == 3)
    snprintf(shape, sizeof shape, "(%ld, %ld, %ld)", dims[0], dims[1], dims[2]);
  else
    snprintf(shape, sizeof shape, "(%ld, %ld)", dims[0], dims[1]);
  int n = snprintf(hdr, sizeof hdr,
                   "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                   descr, shape);
  int total = 10 + n + 1, pad = (64 - total % 64) % 64;
  FILE *fp = fopen(path, "wb");
  if (!fp) return -1;
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
  pre[8] = (unsigned char)((n + pad + 1) & 0xff);
  pre[9] = (unsigned char)((n + pad + 1) >> 8);
  fwrite(pre, 1, 10, fp);
  fwrite(hdr, 1, (size_t)n, fp);
  for (int i = 0; i < pad; i++)
    fputc(' ', fp);
  fputc('\n', fp);
  size_t w = fwrite(data, 1, bytes, fp);
  return (fclose(fp) == 0 && w == bytes) ? 0 : -1;
}

static int parse3(const char *s, float v[3]) {
  return sscanf(s, "%f,%f,%f", &v[0], &v[1], &v[2]) == 3 ? 0 : -1;
}

typedef struct args {
  const char *in, *out, *filter, *tensor;
  int w, h, nchw, bgr, direct, repeat;
  double crop;
  float mean[3], std[3];
  int has_mean, has_std;
} args;

static int parse_args(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  a->filter = "bilinear";
  a->repeat = 1;
  if (argc < 3) return -1;
  a->in = argv[1];
  a->out = argv[2];
  for (int i = 3; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--nchw"))
      a->nchw = 1;
    else if (!strcmp(o, "--bgr"))
      a->bgr = 1;
    else if (!strcmp(o, "--direct"))
      a->direct = 1;
    else if (!v)
      return -1;
    else if (!strcmp(o, "--size") && (i++, 1)) {
      if (sscanf(v, "%dx%d", &a->w, &a->h) != 2) return -1;
    } else if (!strcmp(o, "--filter") && (i++, 1))
      a->filter = v;
    else if (!strcmp(o, "--tensor") && (i++, 1))
      a->tensor = v;
    else if (!strcmp(o, "--crop") && (i++, 1))
      a->crop = atof(v);
    else if (!strcmp(o, "--repeat") && (i++, 1))
      a->repeat = atoi(v);
    else if (!strcmp(o, "--mean") && (i++, 1)) {
      if (parse3(v, a->mean)) return -1;
      a->has_mean = 1;
    } else if (!strcmp(o, "--std") && (i++, 1)) {
      if (parse3(v, a->std)) return -1;
      a->has_std = 1;
    } else
      return -1;
  }
  return a->w > 0 && a->h > 0 && a->repeat > 0 ? 0 : -1;
}

static int filter_of(const char *s, dlp_filter *f) {
  static const char *names[] = {"bilinear", "box", "bicubic", "lanczos"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(s, names[i])) return *f = (dlp_filter)i, 0;
  return -1;
}

static int norm_of(const char *s, dlp_norm *n) {
  static const char *names[] = {"none", "tf", "caffe", "torch", "custom"};
  for (int i = 0; i < 5; i++)
    if (!strcmp(s, names[i])) return *n = (dlp_norm)i, 0;
  return -1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run_tensor(dlp_ctx *ctx, const args *a, const dlp_image *img,
                      dlp_filter f) {
  dlp_preprocess p;
  dlp_preprocess_init(&p);
  p.width = a->w;
  p.height = a->h;
  p.filter = f;
  p.center_crop = a->crop;
  p.layout = a->nchw ? DLP_LAYOUT_NCHW : DLP_LAYOUT_NHWC;
  p.bgr = a->bgr;
  if (norm_of(a->tensor, &p.norm)) return fail("bad --tensor", a->tensor);
  if (a->has_mean) memcpy(p.mean, a->mean, sizeof p.mean);
  if (a->has_std) memcpy(p.std, a->std, sizeof p.std);
  size_t n = dlp_preprocess_size(&p);
  float *out = malloc(n * sizeof *out);
  if (!out) return fail("no memory", NULL);
  double t0 = now_s();
  for (int r = 0; r < a->repeat; r++) {
    int rc = a->direct ? dlp_image_file_to_tensor(ctx, a->in, &p, out)
                       : dlp_image_to_tensor(ctx, img, &p, out);
    if (rc != DLP_OK) {
      free(out);
      return fail(dlp_errmsg(ctx), NULL);
    }
  }
  if (a->repeat > 1)
    fprintf(stderr, "seconds per call: %.6f\n", (now_s() - t0) / a->repeat);
  long dims[3] = {a->h, a->w, 3};
  if (a->nchw) dims[0] = 3, dims[1] = a->h, dims[2] = a->w;
  int rc = npy_write(a->out, "<f4", dims, 3, out, n * sizeof *out);
  free(out);
  return rc ? fail("cannot write", a->out) : 0;
}

static int run_resize(dlp_ctx *ctx, const args *a, const dlp_image *img,
                      dlp_filter f) {
  dlp_image *cropped = NULL, *res = NULL;
  if (a->crop > 0 &&
      dlp_image_center_crop(ctx, img, a->w, a->h, a->crop, &cropped) != DLP_OK)
    return fail(dlp_errmsg(ctx), NULL);
  const dlp_image *src = cropped ? cropped : img;
  double t0 = now_s();
  for (int r = 0; r < a->repeat; r++) {
    dlp_image_free(res);
    res = NULL;
    if (dlp_image_resize(ctx, src, a->w, a->h, f, &res) != DLP_OK) {
      dlp_image_free(cropped);
      return fail(dlp_errmsg(ctx), NULL);
    }
  }
  if (a->repeat > 1)
    fprintf(stderr, "seconds per call: %.6f\n", (now_s() - t0) / a->repeat);
  long dims[3] = {res->height, res->width, res->n_channels};
  int rc = npy_write(a->out, "|u1", dims, 3, res->data,
                     (size_t)res->height * res->width * res->n_channels);
  dlp_image_free(res);
  dlp_image_free(cropped);
  return rc ? fail("cannot write", a->out) : 0;
}

int main(int argc, char **argv) {
  args a;
  if (parse_args(argc, argv, &a))
    return fail("usage: imgresize IN OUT.npy --size WxH [options]", NULL);
  dlp_filter f;
  if (filter_of(a.filter, &f)) return fail("bad --filter", a.filter);
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return fail("no memory", NULL);
  dlp_image *img = NULL;
  int rc = 1;
  if (a.direct) {
    rc = a.tensor ? run_tensor(ctx, &a, NULL, f)
                  : fail("--direct needs --tensor", NULL);
  } else {
    size_t l = strlen(a.in);
    if (l > 4 && !strcmp(a.in + l - 4, ".npy")) {
      img = npy_read_u8(ctx, a.in);
      if (!img) rc = fail("cannot read uint8 .npy", a.in);
    } else if (dlp_image_read(ctx, a.in, NULL, &img) != DLP_OK) {
      rc = fail(dlp_errmsg(ctx), NULL);
    }
    if (img)
      rc = a.tensor ? run_tensor(ctx, &a, img, f) : run_resize(ctx, &a, img, f);
  }
  dlp_image_free(img);
  dlp_ctx_free(ctx);
  return rc;
}
