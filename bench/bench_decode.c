/* bench_decode.c - dlp's side of bench/image_pipeline.py: read + decode +
 * resize + normalise a list of image files into float tensors, timed.
 *
 *   bench_decode [--threads N] [--size S] [--repeat R] [--batch B] FILE...
 *
 * Prints one line: "dlp threads=N images=K best_s=T img_per_s=X". Uses only
 * the public API (dlp_batch_files_to_tensor), as a user would.
 */
#define _POSIX_C_SOURCE 200809L
#include "dlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int threads = 1, size = 299, repeat = 3, batch = 32;
  int first = 1;
  while (first < argc && strncmp(argv[first], "--", 2) == 0) {
    if (first + 1 >= argc) {
      fprintf(stderr, "bench_decode: %s needs a value\n", argv[first]);
      return 2;
    }
    int v = atoi(argv[first + 1]);
    if (strcmp(argv[first], "--threads") == 0) threads = v;
    else if (strcmp(argv[first], "--size") == 0) size = v;
    else if (strcmp(argv[first], "--repeat") == 0) repeat = v;
    else if (strcmp(argv[first], "--batch") == 0) batch = v;
    else {
      fprintf(stderr, "bench_decode: unknown option %s\n", argv[first]);
      return 2;
    }
    first += 2;
  }
  size_t n = (size_t)(argc - first);
  if (n == 0 || threads < 1 || size < 1 || repeat < 1 || batch < 1) {
    fprintf(stderr, "usage: bench_decode [--threads N] [--size S] "
                    "[--repeat R] [--batch B] FILE...\n");
    return 2;
  }
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  dlp_ctx_set_threads(ctx, threads);
  dlp_preprocess p;
  dlp_preprocess_init(&p);
  p.width = p.height = size;
  p.norm = DLP_NORM_TF;
  size_t per = dlp_preprocess_size(&p);
  float *out = malloc(per * (size_t)batch * sizeof *out);
  int *status = malloc((size_t)batch * sizeof *status);
  if (!out || !status) return 1;
  const char *const *paths = (const char *const *)(argv + first);
  double best = 1e30;
  int bad = 0;
  for (int r = 0; r < repeat; r++) {
    double t0 = now_s();
    for (size_t i = 0; i < n; i += (size_t)batch) {
      size_t m = n - i < (size_t)batch ? n - i : (size_t)batch;
      if (dlp_batch_files_to_tensor(ctx, paths + i, m, &p, out, status,
                                    NULL) != DLP_OK) {
        fprintf(stderr, "bench_decode: %s\n", dlp_errmsg(ctx));
        return 1;
      }
      for (size_t k = 0; k < m; k++) bad += status[k] != DLP_OK;
    }
    double t = now_s() - t0;
    if (t < best) best = t;
  }
  if (bad) fprintf(stderr, "bench_decode: %d files failed\n", bad);
  printf("dlp threads=%d images=%zu best_s=%.4f img_per_s=%.1f\n", threads, n,
         best, (double)n / best);
  free(out);
  free(status);
  dlp_ctx_free(ctx);
  return bad ? 1 : 0;
}
