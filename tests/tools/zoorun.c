/* zoorun.c - test tool: builds a zoo architecture at the input's size, loads
 * its weights by name from .npy files, runs it and writes the output, so
 * tests/ref/test_zoo_vs_torch.py can compare it with PyTorch.
 *
 *   zoorun NAME WEIGHTS_DIR IN.npy OUT.npy [--notop] [--layer L]
 *          [--backend ref|dnnl] [--threads N]
 *   zoorun NAME --list [--notop] [--size HxW]
 *
 * IN.npy is (N, 3, H, W) float32. Every const of the graph named
 * "<layer>/<weight>" is read from WEIGHTS_DIR/<layer>__<weight>.npy in the
 * graph's layout (conv OIHW, depthwise (C,1,KH,KW), dense (in, out)); a
 * missing file or a shape mismatch is an error, so the test must name every
 * weight the way Keras does. --list prints "name d0xd1x..." per const.
 * .npy files go through the library's reader/writer (C-order '<f4' only
 * taken): the tools link nothing but libdlp. */
#include "npy.h"
#include "zoo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *msg) {
  fprintf(stderr, "zoorun: %s\n", msg);
  return 1;
}

/* Reads a C-order '<f4' .npy file: *data malloc'd, shape in nd/dims. */
static int npy_load(dlp_err *e, const char *path, int *nd, int64_t *dims,
                    float **data) {
  dlp_npy_array a;
  *data = NULL;
  *nd = 0;
  int rc = dlp_npy_load_array(e, path, (uint64_t)1 << 34, &a);
  if (rc != DLP_OK) return rc;
  if (a.dtype != 'f')
    rc = dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                     "%s: only C-order '<f4' arrays are read", path);
  else if (a.ndim > NN_MAX_DIMS)
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "%s: bad shape", path);
  if (rc != DLP_OK) {
    dlp_npy_array_free(&a);
    return rc;
  }
  *nd = a.ndim;
  memcpy(dims, a.dims, (size_t)a.ndim * sizeof *dims);
  *data = a.data;
  return DLP_OK;
}

static int npy_save(dlp_err *e, const char *path, int nd, const int64_t *dims,
                    const float *data) {
  dlp_npy_array a = {.dtype = 'f', .ndim = nd, .data = (void *)data};
  memcpy(a.dims, dims, (size_t)nd * sizeof *dims);
  a.nbytes = (size_t)nn_shape_numel(nd, dims) * sizeof(float);
  return dlp_npy_save_array(e, path, &a);
}

/* Fills every const of g from dir/<layer>__<weight>.npy. */
static int load_weights(dlp_err *e, nn_graph *g, const char *dir) {
  for (int i = 0; i < g->n_values; i++) {
    nn_value *v = &g->values[i];
    if (v->kind != NN_VALUE_CONST) continue;
    char path[1024];
    int n = snprintf(path, sizeof path, "%s/", dir);
    for (const char *s = v->name; *s && n + 3 < (int)sizeof path; s++) {
      if (*s == '/') {
        path[n++] = '_';
        path[n++] = '_';
      } else {
        path[n++] = *s;
      }
    }
    path[n] = '\0';
    if (n + 5 >= (int)sizeof path) return dlp_err_set(e, DLP_ERR_ARG, "path");
    strcat(path, ".npy");
    int nd;
    int64_t dims[NN_MAX_DIMS];
    float *data;
    int rc = npy_load(e, path, &nd, dims, &data);
    if (rc != DLP_OK) return rc;
    bool same = nd == v->shape.ndim;
    for (int k = 0; same && k < nd; k++) same = dims[k] == v->shape.dims[k];
    if (!same) {
      char a[64], b[64];
      free(data);
      return dlp_err_set(e, DLP_ERR_SCHEMA, "%s: shape %s, the graph wants %s",
                         path, nn_shape_str(nd, dims, a, sizeof a),
                         nn_shape_str(v->shape.ndim, v->shape.dims, b,
                                      sizeof b));
    }
    memcpy(v->data, data,
           (size_t)nn_shape_numel(nd, dims) * sizeof(float));
    free(data);
  }
  return DLP_OK;
}

int main(int argc, char **argv) {
  const char *pos[4] = {0}, *layer = NULL, *backend = "ref", *size = NULL;
  int npos = 0, threads = 1;
  bool notop = false, list = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--notop")) notop = true;
    else if (!strcmp(argv[i], "--list")) list = true;
    else if (!strcmp(argv[i], "--layer") && i + 1 < argc) layer = argv[++i];
    else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
    else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = argv[++i];
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (npos < 4) pos[npos++] = argv[i];
    else return die("too many arguments");
  }
  if (npos < 1 || (!list && npos != 4))
    return die("usage: zoorun NAME WEIGHTS_DIR IN.npy OUT.npy [--notop] "
               "[--layer L] [--backend ref|dnnl] | zoorun NAME --list");
  const nn_zoo_entry *z = nn_zoo_find(pos[0]);
  if (!z) return die("unknown model");
  dlp_err e = {0};
  nn_graph *g = NULL;
  int h = 0, w = 0, nd = 0, rc;
  int64_t dims[NN_MAX_DIMS];
  float *in = NULL;
  if (list) {
    if (size && sscanf(size, "%dx%d", &h, &w) != 2) return die("bad --size");
  } else {
    if (npy_load(&e, pos[2], &nd, dims, &in) != DLP_OK) return die(e.msg);
    if (nd != 4 || dims[1] != 3) {
      free(in);
      return die("IN.npy must be (N, 3, H, W)");
    }
    h = (int)dims[2];
    w = (int)dims[3];
  }
  rc = nn_zoo_build_sized(&e, z, !notop, h, w, &g);
  if (rc == DLP_OK && list) {
    for (int i = 0; i < g->n_values; i++) {
      const nn_value *v = &g->values[i];
      char b[64];
      if (v->kind == NN_VALUE_CONST)
        printf("%s %s\n", v->name,
               nn_shape_str(v->shape.ndim, v->shape.dims, b, sizeof b));
    }
    nn_graph_free(g);
    return 0;
  }
  if (rc == DLP_OK) rc = load_weights(&e, g, pos[1]);
  if (rc == DLP_OK && layer) rc = nn_graph_cut(&e, g, layer);
  nn_plan *p = NULL;
  nn_backend be = strcmp(backend, "dnnl") == 0 ? NN_BACKEND_DNNL : NN_BACKEND_REF;
  if (rc == DLP_OK) rc = nn_plan_new(&e, g, be, dims[0], threads, &p);
  float *out = NULL;
  nn_shape os = {0};
  if (rc == DLP_OK) {
    os = nn_graph_value_shape(g, g->outputs[0], dims[0]);
    int64_t n = nn_shape_numel(os.ndim, os.dims);
    out = n > 0 ? malloc((size_t)n * sizeof(float)) : NULL;
    if (!out) rc = dlp_err_set(&e, DLP_ERR_NOMEM, "no memory for the output");
  }
  if (rc == DLP_OK) {
    const float *ins[1] = {in};
    float *outs[1] = {out};
    rc = nn_plan_run(&e, p, ins, outs);
  }
  if (rc == DLP_OK) rc = npy_save(&e, pos[3], os.ndim, os.dims, out);
  nn_plan_free(p);
  nn_graph_free(g);
  free(in);
  free(out);
  return rc == DLP_OK ? 0 : die(e.msg);
}
