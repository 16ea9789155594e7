/* test_scratch.c - buffers reused across files (dlp_img_scratch) give the
 * same tensors as fresh buffers, whatever the order of sizes and formats. */
#include "image/image.h"
#include "test.h"

#include <unistd.h>

/* Writes a w x h BMP: 24-bit, or 32-bit with an alpha ramp. Pixel values
 * follow a formula of (x, y, seed). */
static void write_bmp(const char *path, int w, int h, int alpha, int seed) {
  int bpp = alpha ? 4 : 3;
  int stride = (w * bpp + 3) & ~3;
  int hdr = alpha ? 14 + 108 : 14 + 40;
  uint32_t size = (uint32_t)(hdr + stride * h);
  uint8_t *f = calloc(1, size);
  f[0] = 'B';
  f[1] = 'M';
  memcpy(f + 2, &size, 4);
  uint32_t off = (uint32_t)hdr, dib = (uint32_t)(hdr - 14);
  memcpy(f + 10, &off, 4);
  memcpy(f + 14, &dib, 4);
  int32_t iw = w, ih = h;
  memcpy(f + 18, &iw, 4);
  memcpy(f + 22, &ih, 4);
  f[26] = 1;
  f[28] = (uint8_t)(bpp * 8);
  if (alpha) { /* BI_BITFIELDS with an alpha mask (BITMAPV4HEADER) */
    uint32_t comp = 3, masks[4] = {0x00ff0000, 0x0000ff00, 0x000000ff,
                                   0xff000000};
    memcpy(f + 30, &comp, 4);
    memcpy(f + 54, masks, 16);
  }
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t *p = f + hdr + (h - 1 - y) * stride + x * bpp;
      p[0] = (uint8_t)(x * 7 + seed);
      p[1] = (uint8_t)(y * 5 + seed * 3);
      p[2] = (uint8_t)((x + y) * 3);
      if (alpha) p[3] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
    }
  FILE *fp = fopen(path, "wb");
  fwrite(f, 1, size, fp);
  fclose(fp);
  free(f);
}

TEST(batch_with_reused_buffers_equals_fresh_decodes) {
  char dir[] = "/tmp/dlp_scratch_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  struct { int w, h, alpha; } spec[] = {{640, 480, 0}, {17, 9, 0},
                                        {300, 200, 1}, {1000, 30, 0},
                                        {5, 700, 1},   {64, 64, 0}};
  enum { N = sizeof spec / sizeof spec[0] + 1 };
  char paths[N][64];
  const char *pp[N];
  for (int i = 0; i < N - 1; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/%d.bmp", dir, i);
    write_bmp(paths[i], spec[i].w, spec[i].h, spec[i].alpha, i);
    pp[i] = paths[i];
  }
  /* a corrupt file in the middle of the run must not disturb the next */
  snprintf(paths[N - 1], sizeof paths[N - 1], "%s/bad.bmp", dir);
  FILE *fp = fopen(paths[N - 1], "wb");
  fputs("BM this is not a bitmap", fp);
  fclose(fp);
  pp[N - 1] = paths[N - 1];
  const char *order[N + 1] = {pp[0], pp[1], pp[2], pp[6], pp[3], pp[4], pp[5],
                              pp[0]};

  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  dlp_ctx_set_threads(ctx, 1); /* one worker: every file reuses its buffers */
  dlp_preprocess p;
  dlp_preprocess_init(&p);
  p.width = 37;
  p.height = 29;
  size_t slot = dlp_preprocess_size(&p);
  float *batch = calloc(slot * (N + 1), sizeof *batch);
  float *one = calloc(slot, sizeof *one);
  int status[N + 1];
  CHECK_OK(ctx, dlp_batch_files_to_tensor(ctx, order, N + 1, &p, batch,
                                          status, NULL));
  for (int i = 0; i < N + 1; i++) {
    int rc = dlp_image_file_to_tensor(ctx, order[i], &p, one);
    CHECK_EQ_INT(status[i], rc);
    if (rc == DLP_OK)
      CHECK(memcmp(one, batch + (size_t)i * slot, slot * sizeof *one) == 0);
  }
  CHECK(status[3] != DLP_OK);
  free(batch);
  free(one);
  dlp_ctx_free(ctx);
  for (int i = 0; i < N; i++) unlink(paths[i]);
  rmdir(dir);
}

TEST(read_file_into_grows_and_keeps_buffer) {
  char path[] = "/tmp/dlp_scratch_file_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  char big[5000];
  memset(big, 'x', sizeof big);
  CHECK(write(fd, big, sizeof big) == (ssize_t)sizeof big);
  close(fd);
  dlp_err e = {0};
  uint8_t *buf = NULL;
  size_t cap = 0, len = 0;
  CHECK_EQ_INT(dlp_read_file_into(&e, path, 1 << 20, &buf, &cap, &len), DLP_OK);
  CHECK(len == sizeof big && cap >= len);
  uint8_t *kept = buf;
  CHECK_EQ_INT(dlp_read_file_into(&e, path, 1 << 20, &buf, &cap, &len), DLP_OK);
  CHECK(buf == kept); /* no new allocation for a file that fits */
  CHECK_EQ_INT(dlp_read_file_into(&e, "/nonexistent", 1 << 20, &buf, &cap, &len),
               DLP_ERR_NOT_FOUND);
  CHECK(buf == kept && len == 0); /* still the caller's */
  free(buf);
  unlink(path);
}

int main(void) {
  RUN(batch_with_reused_buffers_equals_fresh_decodes);
  RUN(read_file_into_grows_and_keeps_buffer);
  return test_summary();
}
