/* imgdecode.c - test tool: decodes one image with dlp and writes its pixels
 * as a uint8 .npy array (H x W x C) for comparison with PIL.
 *
 *   imgdecode [--keep-alpha] [--no-orient] [--force-rgb] [--target WxH]
 *             [--probe] IN OUT.npy
 *
 * --probe also prints the probe result: "format W H C alpha orientation".
 * Exit 0 on success; on error prints "error: <code name>: <msg>" and exits 1.
 */
#include "dlp.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_npy(const char *path, const dlp_image *img) {
  dlp_npy_array a = {.dtype = 'B',
                     .ndim = 3,
                     .dims = {img->height, img->width, img->n_channels},
                     .data = img->data};
  a.nbytes = (size_t)img->height * img->width * img->n_channels;
  return dlp_npy_save_array(NULL, path, &a) != DLP_OK;
}

static int fail(dlp_ctx *ctx, int rc) {
  fprintf(stderr, "error: %s: %s\n", dlp_errstr(rc), dlp_errmsg(ctx));
  return 1;
}

/* Reads the file and prints dlp_image_probe's view of it. */
static int probe_file(dlp_ctx *ctx, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "error: i/o error: cannot open %s\n", path);
    return 1;
  }
  size_t cap = 1 << 16, len = 0;
  unsigned char *buf = malloc(cap);
  size_t k;
  while (buf && (k = fread(buf + len, 1, cap - len, f)) > 0) {
    len += k;
    if (len == cap) {
      unsigned char *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  fclose(f);
  if (!buf) return 1;
  dlp_image_info info;
  int rc = dlp_image_probe(ctx, buf, len, &info);
  free(buf);
  if (rc != DLP_OK) return fail(ctx, rc);
  printf("%s %d %d %d %d %d\n", dlp_format_name(info.format), (int)info.width,
         (int)info.height, (int)info.n_channels, (int)info.has_alpha,
         (int)info.orientation);
  return 0;
}

int main(int argc, char **argv) {
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  int probe = 0, i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (!strcmp(argv[i], "--keep-alpha"))
      o.keep_alpha = 1;
    else if (!strcmp(argv[i], "--no-orient"))
      o.apply_exif_orientation = 0;
    else if (!strcmp(argv[i], "--force-rgb"))
      o.force_rgb = 1;
    else if (!strcmp(argv[i], "--probe"))
      probe = 1;
    else if (!strcmp(argv[i], "--target") && i + 1 < argc &&
             sscanf(argv[++i], "%dx%d", &o.target_width, &o.target_height) == 2)
      ;
    else {
      fprintf(stderr, "imgdecode: bad option %s\n", argv[i]);
      dlp_ctx_free(ctx);
      return 2;
    }
  }
  if (argc - i != 2) {
    fprintf(stderr, "usage: imgdecode [--keep-alpha] [--no-orient] "
                    "[--force-rgb] [--target WxH] [--probe] IN OUT.npy\n");
    dlp_ctx_free(ctx);
    return 2;
  }
  dlp_image *img = NULL;
  int rc = probe ? probe_file(ctx, argv[i]) : 0;
  if (rc == 0 && (rc = dlp_image_read(ctx, argv[i], &o, &img)) != DLP_OK)
    rc = fail(ctx, rc);
  else if (rc == 0 && write_npy(argv[i + 1], img) != 0) {
    fprintf(stderr, "error: i/o error: cannot write %s\n", argv[i + 1]);
    rc = 1;
  }
  dlp_image_free(img);
  dlp_ctx_free(ctx);
  return rc ? 1 : 0;
}
