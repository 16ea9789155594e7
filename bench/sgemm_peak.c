/* sgemm_peak.c - this machine's practical FP32 peak: oneDNN's dnnl_sgemm on
 * large matrices, on the threads OpenMP is given. bench/RESULTS.md sets the
 * networks' GFLOP/s against it.
 *   OMP_NUM_THREADS=T sgemm_peak [M K N] [--iters N]
 * Prints one JSON line. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  long dims[3] = {4096, 4096, 1024};
  int iters = 5, nd = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--iters") && i + 1 < argc)
      iters = atoi(argv[++i]);
    else if (nd < 3)
      dims[nd++] = atol(argv[i]);
  }
  long M = dims[0], K = dims[1], N = dims[2];
  if (M < 1 || K < 1 || N < 1 || iters < 1) {
    fprintf(stderr, "usage: sgemm_peak [M K N] [--iters N]\n");
    return 2;
  }
  float *a = malloc((size_t)(M * K) * sizeof *a);
  float *b = malloc((size_t)(K * N) * sizeof *b);
  float *c = malloc((size_t)(M * N) * sizeof *c);
  if (!a || !b || !c) return 1;
  for (long i = 0; i < M * K; i++)
    a[i] = (float)(i % 7) * 0.1f;
  for (long i = 0; i < K * N; i++)
    b[i] = (float)(i % 5) * 0.1f;
  dnnl_sgemm('N', 'N', M, N, K, 1.f, a, K, b, N, 0.f, c, N); /* warm-up */
  double t0 = now();
  for (int i = 0; i < iters; i++)
    dnnl_sgemm('N', 'N', M, N, K, 1.f, a, K, b, N, 0.f, c, N);
  double t = (now() - t0) / iters;
  printf("{\"M\": %ld, \"K\": %ld, \"N\": %ld, \"ms\": %.2f, \"gflops\": %.1f}\n",
         M, K, N, t * 1e3, 2.0 * (double)M * (double)K * (double)N / t / 1e9);
  free(a);
  free(b);
  free(c);
  return 0;
}
