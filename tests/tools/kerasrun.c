/* kerasrun.c - test tool: loads a Keras .h5 model with the importer and runs
 * it on a float32 .npy batch, so tests/ref/test_keras_vs_torch.py can
 * compare it with PyTorch.
 *
 *   kerasrun MODEL.h5 IN.npy OUT.npy [--optimize] [--layer NAME]
 *            [--backend ref|dnnl] [--size HxW] [--weights WEIGHTS.h5]
 *   kerasrun --names FILE.h5        (prints the file's layer_names)
 *
 * IN is NHWC like Keras (transposed to NCHW here) or 2-D; OUT is written
 * NHWC when 4-D. --weights loads a weights-only file into the loaded
 * model's consts (nn_keras_load_weights) before running. .npy files go
 * through the library's reader/writer; only float32 input is taken.
 * Exit status 0 on success, 1 with "kerasrun: message" on stderr. */
#include "keras.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *msg) {
  fprintf(stderr, "kerasrun: %s\n", msg);
  return 1;
}

/* Reads a float32 .npy of at most NN_MAX_DIMS dims into a (data owned). */
static int npy_read(const char *path, dlp_npy_array *a) {
  dlp_err e = {0};
  if (dlp_npy_load_array(&e, path, (uint64_t)1 << 34, a) != DLP_OK) return -1;
  if (a->dtype == 'f' && a->ndim <= NN_MAX_DIMS) return 0;
  dlp_npy_array_free(a);
  return -1;
}

/* (N, A, B, C) -> (N, B, C, A) when to_last, else the inverse. */
static void permute4(const float *x, float *y, const int64_t *d, int to_last) {
  int64_t n = d[0], a = d[1], b = d[2], c = d[3];
  for (int64_t i = 0; i < n; i++)
    for (int64_t p = 0; p < a; p++)
      for (int64_t q = 0; q < b; q++)
        for (int64_t r = 0; r < c; r++) {
          int64_t src = ((i * a + p) * b + q) * c + r;
          int64_t dst = to_last ? ((i * b + q) * c + r) * a + p
                                : ((i * c + r) * a + p) * b + q;
          y[dst] = x[src];
        }
}

int main(int argc, char **argv) {
  const char *pos[3], *layer = NULL, *weights = NULL, *backend = "ref";
  int npos = 0, optimize = 0, h = 0, w = 0;
  dlp_err e = {0};
  if (argc == 3 && strcmp(argv[1], "--names") == 0) {
    char **names;
    int n;
    if (nn_keras_file_layer_names(&e, argv[2], 0, &names, &n) != DLP_OK)
      return die(e.msg);
    for (int i = 0; i < n; i++)
      printf("%s\n", names[i]);
    nn_keras_names_free(names, n);
    return 0;
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--optimize") == 0)
      optimize = 1;
    else if (strcmp(argv[i], "--layer") == 0 && i + 1 < argc)
      layer = argv[++i];
    else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc)
      weights = argv[++i];
    else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
      backend = argv[++i];
    else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
      if (sscanf(argv[++i], "%dx%d", &h, &w) != 2) return die("bad --size");
    } else if (npos < 3)
      pos[npos++] = argv[i];
    else
      return die("usage: kerasrun MODEL.h5 IN.npy OUT.npy [options]");
  }
  if (npos != 3)
    return die("usage: kerasrun MODEL.h5 IN.npy OUT.npy [options]");
  nn_graph *g = NULL;
  nn_plan *p = NULL;
  float *in = NULL, *x = NULL, *out = NULL, *o2 = NULL;
  int rc = 1;
  if (nn_keras_load_file_sized(&e, pos[0], 0, h, w, &g) != DLP_OK ||
      (weights && nn_keras_load_weights(&e, weights, 0, g) != DLP_OK) ||
      (layer && nn_graph_cut(&e, g, layer) != DLP_OK) ||
      (optimize && nn_graph_optimize(&e, g) != DLP_OK)) {
    die(e.msg);
    goto done;
  }
  dlp_npy_array ia;
  if (npy_read(pos[1], &ia) != 0) {
    die("cannot read the input .npy (float32, C order)");
    goto done;
  }
  int nd = ia.ndim;
  const int64_t *dims = ia.dims;
  in = ia.data;
  int64_t numel = 1;
  for (int i = 0; i < nd; i++)
    numel *= dims[i];
  x = in;
  if (nd == 4) {
    x = malloc((size_t)numel * sizeof(float) + 1);
    if (!x) goto done;
    permute4(in, x, dims, 0); /* NHWC -> NCHW */
  }
  nn_backend be =
      strcmp(backend, "dnnl") == 0 ? NN_BACKEND_DNNL : NN_BACKEND_REF;
  if (nn_plan_new(&e, g, be, dims[0], 1, &p) != DLP_OK) {
    die(e.msg);
    goto done;
  }
  nn_shape os = nn_graph_value_shape(g, g->outputs[0], dims[0]);
  int64_t on = nn_shape_numel(os.ndim, os.dims);
  out = malloc((size_t)on * sizeof(float) + 1);
  if (!out) goto done;
  const float *ins[1] = {x};
  float *outs[1] = {out};
  if (nn_plan_run(&e, p, ins, outs) != DLP_OK) {
    die(e.msg);
    goto done;
  }
  const float *res = out;
  int64_t od[NN_MAX_DIMS];
  memcpy(od, os.dims, sizeof od);
  if (os.ndim == 4) {
    o2 = malloc((size_t)on * sizeof(float) + 1);
    if (!o2) goto done;
    permute4(out, o2, os.dims, 1); /* NCHW -> NHWC */
    od[1] = os.dims[2], od[2] = os.dims[3], od[3] = os.dims[1];
    res = o2;
  }
  dlp_npy_array oa = {.dtype = 'f',
                      .ndim = os.ndim,
                      .data = (void *)res,
                      .nbytes = (size_t)on * sizeof(float)};
  memcpy(oa.dims, od, sizeof od);
  if (dlp_npy_save_array(&e, pos[2], &oa) != DLP_OK) {
    die("cannot write the output .npy");
    goto done;
  }
  rc = 0;
done:
  nn_plan_free(p);
  nn_graph_free(g);
  if (x != in) free(x);
  free(in);
  free(out);
  free(o2);
  return rc;
}
