/* trainbench.c - bench tool: training throughput of a zoo architecture.
 * Builds MODEL at SIZE x SIZE, cuts it at its pooled feature layer and
 * appends a Dense(K) logits head (what `dlp finetune` trains), random
 * He-normal weights, random inputs and labels, then times STEPS Adam steps
 * (train mode) at batch B on T threads after W warm-up steps (which also
 * create the oneDNN primitives).
 *
 *   trainbench MODEL [--size S] [--batch B] [--threads T] [--steps N]
 *              [--warmup W] [--classes K] [--reference]
 *
 * Prints one line: "MODEL S B T fast|reference: X img/s (Y ms a step)".
 * --reference runs the reference kernels (nn_train_cfg.fast = false).
 * DLP_TRAIN_PROFILE=1 adds the per-op profile of the timed and warm-up
 * steps on stderr. Exit status 0, or 1 with a message. */
#include "graph.h"
#include "train.h"
#include "zoo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_opts {
  const char *model;
  int size, threads, steps, warmup, classes;
  int64_t batch;
  bool reference;
} bench_opts;

static int usage(void) {
  fprintf(stderr, "usage: trainbench MODEL [--size S] [--batch B] "
                  "[--threads T] [--steps N] [--warmup W] [--classes K] "
                  "[--reference]\n");
  return 1;
}

static bool parse(int argc, char **argv, bench_opts *o) {
  *o = (bench_opts){.size = 96,
                    .threads = 1,
                    .steps = 5,
                    .warmup = 2,
                    .classes = 18,
                    .batch = 32};
  if (argc < 2) return false;
  o->model = argv[1];
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--reference") == 0) {
      o->reference = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    long v = strtol(argv[++i], NULL, 10);
    if (strcmp(a, "--size") == 0)
      o->size = (int)v;
    else if (strcmp(a, "--batch") == 0)
      o->batch = v;
    else if (strcmp(a, "--threads") == 0)
      o->threads = (int)v;
    else if (strcmp(a, "--steps") == 0)
      o->steps = (int)v;
    else if (strcmp(a, "--warmup") == 0)
      o->warmup = (int)v;
    else if (strcmp(a, "--classes") == 0)
      o->classes = (int)v;
    else
      return false;
  }
  return o->size > 0 && o->batch > 1 && o->threads > 0 && o->steps > 0 &&
         o->warmup >= 0 && o->classes > 1;
}

/* The zoo graph cut at its pooled features with a Dense(K) head, as
 * `dlp finetune` builds it. */
static int build(dlp_err *e, const bench_opts *o, nn_graph **out) {
  const nn_zoo_entry *z = nn_zoo_find(o->model);
  if (!z)
    return dlp_err_set(e, DLP_ERR_NOT_FOUND, "no zoo model '%s'", o->model);
  nn_graph *g = NULL;
  int rc = nn_zoo_build_sized(e, z, true, o->size, o->size, &g);
  if (rc == DLP_OK) rc = nn_zoo_init_random(e, g, 42);
  if (rc == DLP_OK) rc = nn_graph_cut(e, g, z->feature_layer);
  if (rc != DLP_OK) {
    nn_graph_free(g);
    return rc;
  }
  int64_t in = g->values[g->outputs[0]].shape.dims[1], k = o->classes;
  float *w = calloc((size_t)(in * k), sizeof *w);
  float *b = calloc((size_t)k, sizeof *b);
  dlp_rng r;
  dlp_rng_seed(&r, 7);
  for (int64_t i = 0; w && i < in * k; i++)
    w[i] = (float)((2 * dlp_rng_uniform(&r) - 1) * 0.05);
  int ins[3] = {
      g->outputs[0],
      nn_graph_add_const_owned(g, "head/kernel", 2, (int64_t[]){in, k}, w),
      nn_graph_add_const_owned(g, "head/bias", 1, (int64_t[]){k}, b)};
  nn_node_attr a;
  nn_node_attr_init(NN_OP_DENSE, &a);
  int y = ins[1] >= 0 && ins[2] >= 0
              ? nn_graph_add_node(g, NN_OP_DENSE, "head/logits", ins, 3, &a)
              : -1;
  g->n_outputs = 0;
  if (y >= 0) nn_graph_mark_output(g, y);
  rc = y >= 0 ? nn_graph_finalize(e, g)
              : dlp_err_set(e, DLP_ERR_NOMEM, "no memory for the head");
  if (rc != DLP_OK) {
    nn_graph_free(g);
    return rc;
  }
  *out = g;
  return DLP_OK;
}

static int run(dlp_err *e, const bench_opts *o, nn_graph *g, double *secs) {
  nn_train_cfg c;
  nn_train_cfg_init(&c);
  c.batch = o->batch;
  c.threads = o->threads;
  c.fast = !o->reference;
  c.optim.kind = NN_OPTIM_ADAM;
  c.optim.lr = 1e-3f;
  int64_t numel = o->batch * 3 * o->size * o->size;
  float *x = malloc((size_t)numel * sizeof *x);
  int32_t *y = malloc((size_t)o->batch * sizeof *y);
  nn_trainer *t = NULL;
  int rc = x && y ? nn_trainer_new(e, g, &c, &t)
                  : dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  dlp_rng r;
  dlp_rng_seed(&r, 11);
  for (int64_t i = 0; x && i < numel; i++)
    x[i] = (float)(2 * dlp_rng_uniform(&r) - 1);
  for (int64_t i = 0; y && i < o->batch; i++)
    y[i] = (int32_t)(dlp_rng_next(&r) % (uint64_t)o->classes);
  double t0 = 0;
  for (int s = 0; rc == DLP_OK && s < o->warmup + o->steps; s++) {
    if (s == o->warmup) t0 = dlp_now();
    rc = nn_trainer_step(e, t, x, y, o->batch, c.optim.lr, NULL, NULL);
  }
  *secs = dlp_now() - t0;
  nn_trainer_free(t);
  free(x);
  free(y);
  return rc;
}

int main(int argc, char **argv) {
  bench_opts o;
  if (!parse(argc, argv, &o)) return usage();
  dlp_err e = {0};
  nn_graph *g = NULL;
  double secs = 0;
  int rc = build(&e, &o, &g);
  if (rc == DLP_OK) rc = run(&e, &o, g, &secs);
  nn_graph_free(g);
  if (rc != DLP_OK) {
    fprintf(stderr, "trainbench: %s\n", e.msg);
    return 1;
  }
  printf("%s %d %lld %d %s: %.1f img/s (%.1f ms a step)\n", o.model, o.size,
         (long long)o.batch, o.threads, o.reference ? "reference" : "fast",
         (double)(o.batch * o.steps) / secs, 1e3 * secs / o.steps);
  return 0;
}
