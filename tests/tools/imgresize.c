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
 * .npy files go through the library's reader/writer: uint8 C-order arrays
 * of 2 or 3 dims in, uint8 / float32 out.
 */
#include "dlp.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *msg, const char *arg) {
  fprintf(stderr, "imgresize: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  return 1;
}

/* A uint8 (H, W) or (H, W, C) .npy as an image; NULL when it is not one. */
static dlp_image *npy_read_u8(dlp_ctx *ctx, const char *path) {
  dlp_npy_array a;
  dlp_image *img = NULL;
  if (dlp_npy_load_array(NULL, path, (uint64_t)1 << 34, &a) != DLP_OK)
    return NULL;
  const int64_t *d = a.dims;
  int64_t c = a.ndim == 3 ? d[2] : 1;
  int ok = a.dtype == 'B' && (a.ndim == 2 || a.ndim == 3) && d[0] > 0 &&
           d[1] > 0 && d[0] <= 1 << 20 && d[1] <= 1 << 20 && c <= INT32_MAX;
  if (ok && dlp_image_new(ctx, (int32_t)d[1], (int32_t)d[0], (int32_t)c,
                          &img) == DLP_OK)
    memcpy(img->data, a.data, a.nbytes);
  dlp_npy_array_free(&a);
  return img;
}

static int npy_write(const char *path, char dtype, const long *dims,
                     const void *data, size_t bytes) {
  dlp_npy_array a = {.dtype = dtype,
                     .ndim = 3,
                     .dims = {dims[0], dims[1], dims[2]},
                     .data = (void *)data,
                     .nbytes = bytes};
  return dlp_npy_save_array(NULL, path, &a) == DLP_OK ? 0 : -1;
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
  int rc = npy_write(a->out, 'f', dims, out, n * sizeof *out);
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
  int rc = npy_write(a->out, 'B', dims, res->data,
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
