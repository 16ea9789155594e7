/* nnrun.c - test tool: loads a model file (.onnx, or Keras .h5), plans it for
 * the batch of a float32 .npy input and writes its (first) output as .npy,
 * so tests/ref scripts can compare whole networks with PyTorch.
 *
 *   nnrun MODEL.{onnx,h5} IN.npy OUT.npy [--backend ref|dnnl] [--optimize]
 *         [--layer NAME] [--extra NAME EXTRA.npy] [--threads N]
 *
 * IN.npy is (N, C, H, W) float32 for image models (H, W fill symbolic
 * sizes), or (N, ...) for others. --layer cuts the graph at the node or
 * value NAME before --optimize runs; --extra also marks node or value NAME as
 * an output and writes it to EXTRA.npy from the same run (features and
 * logits of a big network for the price of one run). Exit 0 on success, 1 with
 * "nnrun: message" on stderr otherwise. .npy files go through the library's
 * reader/writer; the input must be float32 of rank 1..6. */
#include "graph.h"
#include "keras.h"
#include "npy.h"
#include "onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const dlp_err *e) {
  fprintf(stderr, "nnrun: %s%s%s\n", what, e ? ": " : "", e ? e->msg : "");
  return 1;
}

/* Reads a '<f4' C-order .npy: *data (malloc'd), shape. */
static int npy_read(const char *path, float **data, nn_shape *s) {
  dlp_npy_array a;
  dlp_err e = {0};
  if (dlp_npy_load_array(&e, path, (uint64_t)1 << 34, &a) != DLP_OK)
    return fail("reading the input", &e);
  if (a.dtype == 'f' && a.ndim >= 1 && a.ndim <= NN_MAX_DIMS) {
    s->ndim = a.ndim;
    memcpy(s->dims, a.dims, sizeof s->dims);
    *data = a.data;
    return 0;
  }
  if (a.dtype != 'f')
    fprintf(stderr, "nnrun: %s: need a C-order '<f4' array\n", path);
  else
    fprintf(stderr, "nnrun: %s: bad shape\n", path);
  dlp_npy_array_free(&a);
  return 1;
}

static int npy_write(const char *path, const float *data, const nn_shape *s) {
  dlp_npy_array a = {.dtype = 'f', .ndim = s->ndim, .data = (void *)data};
  memcpy(a.dims, s->dims, sizeof s->dims);
  a.nbytes = (size_t)nn_shape_numel(s->ndim, s->dims) * sizeof(float);
  dlp_err e = {0};
  if (dlp_npy_save_array(&e, path, &a) == DLP_OK) return 0;
  fprintf(stderr, "nnrun: %s: write failed (%s)\n", path, e.msg);
  return 1;
}

static int load_model(dlp_err *e, const char *path, const nn_shape *in,
                      nn_graph **g) {
  int h = in->ndim == 4 ? (int)in->dims[2] : 0;
  int w = in->ndim == 4 ? (int)in->dims[3] : 0;
  if (dlp_ends_with_ci(path, ".h5") || dlp_ends_with_ci(path, ".hdf5") ||
      dlp_ends_with_ci(path, ".keras"))
    return nn_keras_load_file_sized(e, path, 0, h, w, g);
  return nn_onnx_load_file_sized(e, path, 0, h, w, g);
}

int main(int argc, char **argv) {
  const char *pos[3] = {0}, *layer = NULL, *extra = NULL, *extra_out = NULL;
  int npos = 0, optimize = 0, threads = 1;
  nn_backend backend = NN_BACKEND_REF;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--optimize") == 0) {
      optimize = 1;
    } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      const char *b = argv[++i];
      if (strcmp(b, "ref") == 0)
        backend = NN_BACKEND_REF;
      else if (strcmp(b, "dnnl") == 0)
        backend = NN_BACKEND_DNNL;
      else
        return fail("--backend takes ref or dnnl", NULL);
    } else if (strcmp(argv[i], "--layer") == 0 && i + 1 < argc) {
      layer = argv[++i];
    } else if (strcmp(argv[i], "--extra") == 0 && i + 2 < argc) {
      extra = argv[++i];
      extra_out = argv[++i];
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (argv[i][0] != '-' && npos < 3) {
      pos[npos++] = argv[i];
    } else {
      return fail("usage: nnrun MODEL IN.npy OUT.npy [--backend ref|dnnl] "
                  "[--optimize] [--layer NAME] [--threads N]",
                  NULL);
    }
  }
  if (npos != 3) return fail("need MODEL IN.npy OUT.npy", NULL);
  float *in = NULL, *out = NULL;
  nn_shape ins;
  if (npy_read(pos[1], &in, &ins)) return 1;
  dlp_err e = {0};
  nn_graph *g = NULL;
  nn_plan *p = NULL;
  int rc = 1;
  if (load_model(&e, pos[0], &ins, &g) != DLP_OK) {
    fail("loading the model", &e);
    goto done;
  }
  if (nn_graph_finalize(&e, g) != DLP_OK) {
    fail("finalize", &e);
    goto done;
  }
  if (layer && nn_graph_cut(&e, g, layer) != DLP_OK) {
    fail("--layer", &e);
    goto done;
  }
  if (extra) {
    int v = nn_graph_find_value(g, extra);
    int ni = v < 0 ? nn_graph_find_node(g, extra) : -1;
    if (ni >= 0) v = g->nodes[ni].out;
    if (v < 0) {
      fprintf(stderr, "nnrun: --extra: no node or value '%s'\n", extra);
      goto done;
    }
    nn_graph_mark_output(g, v);
    if (nn_graph_finalize(&e, g) != DLP_OK || g->n_outputs != 2) {
      fail("--extra", &e);
      goto done;
    }
  }
  if (optimize && nn_graph_optimize(&e, g) != DLP_OK) {
    fail("optimize", &e);
    goto done;
  }
  if (g->n_inputs != 1) {
    fprintf(stderr, "nnrun: the model has %d inputs; nnrun feeds one\n",
            g->n_inputs);
    goto done;
  }
  nn_shape want = nn_graph_value_shape(g, g->inputs[0], ins.dims[0]);
  if (want.ndim != ins.ndim ||
      memcmp(want.dims, ins.dims, (size_t)ins.ndim * sizeof ins.dims[0])) {
    char a[96], b[96];
    fprintf(stderr, "nnrun: the input has shape %s but the model takes %s\n",
            nn_shape_str(ins.ndim, ins.dims, a, sizeof a),
            nn_shape_str(want.ndim, want.dims, b, sizeof b));
    goto done;
  }
  if (nn_plan_new(&e, g, backend, ins.dims[0], threads, &p) != DLP_OK) {
    fail("plan", &e);
    goto done;
  }
  nn_shape os = nn_graph_value_shape(g, g->outputs[0], ins.dims[0]);
  int64_t on = nn_shape_numel(os.ndim, os.dims);
  float **outs = calloc((size_t)g->n_outputs, sizeof *outs);
  bool ok = outs != NULL;
  for (int i = 0; ok && i < g->n_outputs; i++) {
    nn_shape s = nn_graph_value_shape(g, g->outputs[i], ins.dims[0]);
    outs[i] = malloc((size_t)nn_shape_numel(s.ndim, s.dims) * 4 + 4);
    ok = outs[i] != NULL;
  }
  const float *inputs[1] = {in};
  if (!ok) {
    fprintf(stderr, "nnrun: out of memory\n");
  } else if (nn_plan_run(&e, p, inputs, outs) != DLP_OK) {
    fail("run", &e);
  } else {
    out = outs[0];
    outs[0] = NULL;
    rc = on >= 0 ? npy_write(pos[2], out, &os) : 1;
    if (rc == 0 && extra) {
      nn_shape xs = nn_graph_value_shape(g, g->outputs[1], ins.dims[0]);
      rc = npy_write(extra_out, outs[1], &xs);
    }
  }
  for (int i = 0; outs && i < g->n_outputs; i++)
    free(outs[i]);
  free(outs);
done:
  nn_plan_free(p);
  nn_graph_free(g);
  free(in);
  free(out);
  return rc;
}
