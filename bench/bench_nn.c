/* bench_nn.c - times dlp on one model file (ONNX or Keras) through the
 * public API (dlp_model_open + dlp_model_run, i.e. nn_graph_optimize and the
 * oneDNN plan), for bench/nn_models.py:
 *   bench_nn MODEL.onnx [--batch B] [--threads T] [--iters N] [--size S]
 *            [--precision fp32|bf16] [--input F] [--output F]
 * --input: raw float32 NHWC input of B images (default: a fixed pattern);
 * --output: writes the B outputs as raw float32. Prints one JSON line. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "dlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(dlp_ctx *ctx, const char *what) {
  fprintf(stderr, "bench_nn: %s: %s\n", what, dlp_errmsg(ctx));
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_nn MODEL [--batch B] [--threads T] "
                    "[--iters N] [--size S] [--precision fp32|bf16] "
                    "[--input F] [--output F]\n");
    return 2;
  }
  const char *model = argv[1], *in_path = NULL, *out_path = NULL;
  int batch = 1, threads = 1, iters = 5, size = 0, bf16 = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--precision")) bf16 = !strcmp(argv[i + 1], "bf16");
    else if (!strcmp(argv[i], "--input")) in_path = argv[i + 1];
    else if (!strcmp(argv[i], "--output")) out_path = argv[i + 1];
    else {
      fprintf(stderr, "bench_nn: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (batch < 1 || threads < 1 || iters < 1) return 2;
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  dlp_ctx_set_threads(ctx, threads);
  dlp_model_opts o;
  dlp_model_opts_init(&o);
  o.model_file = model;
  o.input_width = o.input_height = size;
  o.precision = bf16 ? DLP_PRECISION_BF16 : DLP_PRECISION_FP32;
  dlp_model *m = NULL;
  double t_open = now();
  if (dlp_model_open(ctx, "bench", &o, &m) != DLP_OK) return fail(ctx, "open");
  t_open = now() - t_open;
  dlp_model_info info;
  dlp_model_get_info(m, &info);
  size_t per = (size_t)info.input_width * info.input_height * 3;
  float *in = malloc(per * batch * sizeof(float));
  if (!in) return 1;
  for (size_t i = 0; i < per * batch; i++)
    in[i] = (float)((double)(i * 7919 % 1000) / 1000.0 - 0.5);
  if (in_path) {
    FILE *f = fopen(in_path, "rb");
    if (!f || fread(in, sizeof(float), per * batch, f) != per * batch) {
      fprintf(stderr, "bench_nn: cannot read %s\n", in_path);
      return 1;
    }
    fclose(f);
  }
  size_t dim = 0;
  if (dlp_model_run(ctx, m, in, 0, 1, NULL, &dim) != DLP_OK) /* dim only */
    return fail(ctx, "run");
  float *out = malloc((size_t)batch * (dim ? dim : 1) * sizeof(float));
  if (!out) return 1;
  /* The first run plans (oneDNN primitive creation, weight reorders). */
  double t_first = now();
  if (dlp_model_run(ctx, m, in, batch, 1, out, &dim) != DLP_OK)
    return fail(ctx, "run");
  t_first = now() - t_first;
  double t0 = now();
  for (int k = 0; k < iters; k++)
    if (dlp_model_run(ctx, m, in, batch, 1, out, &dim) != DLP_OK)
      return fail(ctx, "run");
  double s = now() - t0;
  if (out_path) {
    FILE *f = fopen(out_path, "wb");
    if (!f || fwrite(out, sizeof(float), dim * batch, f) != dim * batch) {
      fprintf(stderr, "bench_nn: cannot write %s\n", out_path);
      return 1;
    }
    fclose(f);
  }
  printf("{\"ips\": %.3f, \"batch\": %d, \"threads\": %d, \"iters\": %d, "
         "\"dim\": %zu, \"open_s\": %.3f, \"first_run_s\": %.3f}\n",
         batch * iters / s, batch, threads, iters, dim, t_open, t_first);
  free(in);
  free(out);
  dlp_model_free(m);
  dlp_ctx_free(ctx);
  return 0;
}
