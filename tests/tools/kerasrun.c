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
 * model's consts (nn_keras_load_weights) before running. The .npy
 * reader/writer is minimal by design: little-endian float32, C order.
 * Exit status 0 on success, 1 with "kerasrun: message" on stderr. */
#include "keras.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *msg) {
  fprintf(stderr, "kerasrun: %s\n", msg);
  return 1;
}

static int npy_read(const char *path, int *nd, int64_t *dims, float **data) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  unsigned char h[10];
  char hdr[4096];
  int rc = -1;
  if (fread(h, 1, 10, f) != 10 || memcmp(h, "\x93NUMPY", 6) != 0) goto out;
  size_t hl = h[8] | (h[9] << 8);
  if (h[6] != 1 || hl >= sizeof hdr || fread(hdr, 1, hl, f) != hl) goto out;
  hdr[hl] = '\0';
  if (!strstr(hdr, "'<f4'") || strstr(hdr, "'fortran_order': True")) goto out;
  const char *s = strstr(hdr, "'shape':");
  if (!s || !(s = strchr(s, '('))) goto out;
  s++;
  *nd = 0;
  int64_t n = 1;
  for (;;) {
    while (*s == ' ' || *s == ',')
      s++;
    if (*s == ')') break;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0 || *nd >= NN_MAX_DIMS) goto out;
    dims[(*nd)++] = v;
    n *= v;
    s = end;
  }
  *data = malloc((size_t)n * sizeof(float) + 1);
  if (*data && fread(*data, sizeof(float), (size_t)n, f) == (size_t)n) rc = 0;
out:
  fclose(f);
  return rc;
}

static int npy_write(const char *path, int nd, const int64_t *dims,
                     const float *data) {
  char hdr[256], shape[160] = "";
  int64_t n = 1;
  for (int i = 0; i < nd; i++) {
    snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%lld%s",
             (long long)dims[i], nd == 1 ? "," : (i + 1 < nd ? ", " : ""));
    n *= dims[i];
  }
  int len = snprintf(
      hdr, sizeof hdr,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape);
  int total = 10 + len + 1;
  int pad = (64 - total % 64) % 64;
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  unsigned short hl = (unsigned short)(len + pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fputc(hl & 0xff, f);
  fputc(hl >> 8, f);
  fwrite(hdr, 1, (size_t)len, f);
  for (int i = 0; i < pad; i++)
    fputc(' ', f);
  fputc('\n', f);
  size_t w = fwrite(data, sizeof(float), (size_t)n, f);
  return fclose(f) == 0 && w == (size_t)n ? 0 : -1;
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
  int nd;
  int64_t dims[NN_MAX_DIMS];
  if (npy_read(pos[1], &nd, dims, &in) != 0) {
    die("cannot read the input .npy (float32, C order)");
    goto done;
  }
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
  if (npy_write(pos[2], os.ndim, od, res) != 0) {
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
