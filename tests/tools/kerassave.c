/* kerassave.c - test tool: writes a graph as a Keras HDF5 file with
 * nn_keras_save_file, so tests/ref/test_keras_save.py can open the file with
 * h5py, compare the datasets with the graph's weights and check the
 * round trip.
 *
 *   kerassave OUT.h5 (--zoo NAME | --from MODEL.h5) [--size HxW] [--notop]
 *             [--seed N] [--weights-only] [--overwrite] [--optimize]
 *             [--dump DIR] [--io DIR] [--check]
 *             [--classes FILE] [--preprocess tf|caffe|torch|none]
 *
 * --zoo builds the architecture with seeded random weights; --from loads a
 * Keras model file instead. --dump writes every const in the graph's own
 * layout (OIHW kernels) as DIR/<name, '/' as '__'>.npy. --io writes a
 * seeded random batch of 2 (NCHW) as DIR/in.npy and what the graph computes
 * from it (ref backend) as DIR/out.npy. --check reloads
 * OUT (a full model with nn_keras_load_file; a weights-only file into a
 * fresh zoo graph) and prints "maxdiff D" between the two graphs' outputs on
 * a seeded random batch of 2 (ref backend) and, for weights-only files,
 * "consts_equal 0|1" (bitwise). --classes FILE (one name per line) and
 * --preprocess give the saver class names and preprocessing (the dlp_*
 * root attributes). Exit status 0, or 1 with "kerassave: message" on
 * stderr. */
#include "keras.h"
#include "npy.h"
#include "zoo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *msg) {
  fprintf(stderr, "kerassave: %s\n", msg);
  return 1;
}

static int dump_consts(const nn_graph *g, const char *dir) {
  dlp_err e = {0};
  for (int v = 0; v < g->n_values; v++) {
    const nn_value *x = &g->values[v];
    if (x->kind != NN_VALUE_CONST) continue;
    char path[1024], name[512];
    size_t k = 0;
    for (const char *p = x->name; *p && k + 3 < sizeof name; p++) {
      if (*p == '/') {
        name[k++] = '_';
        name[k++] = '_';
      } else {
        name[k++] = *p == ':' ? '_' : *p;
      }
    }
    name[k] = '\0';
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    dlp_npy_array a = {.dtype = 'f', .ndim = x->shape.ndim, .data = x->data};
    for (int i = 0; i < x->shape.ndim; i++)
      a.dims[i] = x->shape.dims[i];
    a.nbytes = (size_t)nn_shape_numel(x->shape.ndim, x->shape.dims) * 4;
    if (dlp_npy_save_array(&e, path, &a) != DLP_OK) return die(e.msg);
  }
  return 0;
}

static int save_npy(const char *dir, const char *name, const float *d,
                    nn_shape s) {
  char path[1024];
  dlp_err e = {0};
  snprintf(path, sizeof path, "%s/%s", dir, name);
  dlp_npy_array a = {.dtype = 'f', .ndim = s.ndim, .data = (void *)d};
  for (int i = 0; i < s.ndim; i++)
    a.dims[i] = s.dims[i];
  a.nbytes = (size_t)nn_shape_numel(s.ndim, s.dims) * 4;
  return dlp_npy_save_array(&e, path, &a) == DLP_OK ? 0 : die(e.msg);
}

/* Runs g on a seeded batch of 2; *out (malloc'd) gets output 0. With
 * io_dir, writes the input and output there. */
static int run(const nn_graph *g, float **out, int64_t *n, const char *io_dir) {
  dlp_err e = {0};
  nn_plan *p = NULL;
  nn_shape is = nn_graph_value_shape(g, g->inputs[0], 2);
  nn_shape os = nn_graph_value_shape(g, g->outputs[0], 2);
  int64_t ni = nn_shape_numel(is.ndim, is.dims);
  *n = nn_shape_numel(os.ndim, os.dims);
  float *in = malloc((size_t)ni * sizeof *in);
  *out = malloc((size_t)*n * sizeof **out);
  if (!in || !*out) return die("no memory");
  dlp_rng r;
  dlp_rng_seed(&r, 7);
  for (int64_t i = 0; i < ni; i++)
    in[i] = (float)(2 * dlp_rng_uniform(&r) - 1);
  int rc = nn_plan_new(&e, g, NN_BACKEND_REF, 2, 1, &p);
  if (rc == DLP_OK)
    rc = nn_plan_run(&e, p, (const float *const[]){in}, (float *const[]){*out});
  nn_plan_free(p);
  int st = rc == DLP_OK ? 0 : die(e.msg);
  if (st == 0 && io_dir)
    st = save_npy(io_dir, "in.npy", in, is) ||
         save_npy(io_dir, "out.npy", *out, os);
  free(in);
  return st;
}

static int check(const nn_graph *g, const char *path, bool weights_only,
                 const nn_zoo_entry *z, bool top, int h, int w) {
  dlp_err e = {0};
  nn_graph *r = NULL;
  int rc;
  if (weights_only) {
    if (!z) return die("--check of --weights-only needs --zoo");
    if (nn_zoo_build_sized(&e, z, top, h, w, &r) != DLP_OK ||
        nn_keras_load_weights(&e, path, 0, r) != DLP_OK) {
      nn_graph_free(r);
      return die(e.msg);
    }
    bool same = true;
    for (int v = 0; v < g->n_values; v++) {
      const nn_value *a = &g->values[v];
      if (a->kind != NN_VALUE_CONST) continue;
      int b = nn_graph_find_value(r, a->name);
      int64_t n = nn_shape_numel(a->shape.ndim, a->shape.dims);
      same = same && b >= 0 &&
             memcmp(a->data, r->values[b].data, (size_t)n * 4) == 0;
    }
    printf("consts_equal %d\n", same ? 1 : 0);
  } else if (nn_keras_load_file(&e, path, 0, &r) != DLP_OK) {
    return die(e.msg);
  }
  float *ya = NULL, *yb = NULL;
  int64_t na = 0, nb = 0;
  rc = run(g, &ya, &na, NULL) || run(r, &yb, &nb, NULL);
  if (rc == 0 && na != nb) rc = die("the outputs differ in size");
  double md = 0;
  for (int64_t i = 0; rc == 0 && i < na; i++)
    md = fmax(md, fabs((double)ya[i] - yb[i]));
  if (rc == 0) printf("maxdiff %.9g\n", md);
  free(ya);
  free(yb);
  nn_graph_free(r);
  return rc;
}

/* The lines of path (without their '\n') into *names. */
static int read_lines(const char *path, char ***names, size_t *n) {
  FILE *fp = fopen(path, "r");
  if (!fp) return die("cannot open the classes file");
  char line[8192];
  size_t cap = 0;
  *names = NULL;
  *n = 0;
  while (fgets(line, sizeof line, fp)) {
    line[strcspn(line, "\n")] = '\0';
    if (*n == cap) {
      cap = cap ? 2 * cap : 64;
      char **p = realloc(*names, cap * sizeof *p);
      if (!p) break;
      *names = p;
    }
    if (!((*names)[*n] = strdup(line))) break;
    (*n)++;
  }
  fclose(fp);
  return 0;
}

int main(int argc, char **argv) {
  const char *out = NULL, *zoo = NULL, *from = NULL, *dump = NULL;
  const char *classes = NULL, *pre = NULL;
  const char *io = NULL;
  int h = 0, w = 0, top = 1, optimize = 0, do_check = 0;
  unsigned long long seed = 1;
  nn_keras_save_opts o;
  nn_keras_save_opts_init(&o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--zoo") == 0 && v)
      zoo = argv[++i];
    else if (strcmp(a, "--from") == 0 && v)
      from = argv[++i];
    else if (strcmp(a, "--size") == 0 && v && sscanf(v, "%dx%d", &h, &w) == 2)
      i++;
    else if (strcmp(a, "--seed") == 0 && v && sscanf(v, "%llu", &seed) == 1)
      i++;
    else if (strcmp(a, "--dump") == 0 && v)
      dump = argv[++i];
    else if (strcmp(a, "--io") == 0 && v)
      io = argv[++i];
    else if (strcmp(a, "--notop") == 0)
      top = 0;
    else if (strcmp(a, "--weights-only") == 0)
      o.weights_only = true;
    else if (strcmp(a, "--overwrite") == 0)
      o.overwrite = true;
    else if (strcmp(a, "--optimize") == 0)
      optimize = 1;
    else if (strcmp(a, "--check") == 0)
      do_check = 1;
    else if (strcmp(a, "--classes") == 0 && v)
      classes = argv[++i];
    else if (strcmp(a, "--preprocess") == 0 && v)
      pre = argv[++i];
    else if (a[0] != '-' && !out)
      out = a;
    else
      return die("usage: kerassave OUT.h5 (--zoo NAME | --from FILE.h5) "
                 "[--size HxW] [--notop] [--seed N] [--weights-only] "
                 "[--overwrite] [--optimize] [--dump DIR] [--io DIR] [--check] "
                 "[--classes FILE] [--preprocess NAME]");
  }
  char **names = NULL;
  size_t n_names = 0;
  dlp_norm norm = DLP_NORM_NONE;
  if (pre && !dlp_norm_from_name(pre, &norm)) return die("bad --preprocess");
  if (classes && read_lines(classes, &names, &n_names) != 0) return 1;
  if (classes || pre) nn_keras_save_opts_labels(&o, names, n_names, norm);
  if (!out || !(zoo || from)) return die("give OUT.h5 and --zoo or --from");
  dlp_err e = {0};
  nn_graph *g = NULL;
  const nn_zoo_entry *z = zoo ? nn_zoo_find(zoo) : NULL;
  if (zoo && !z) return die("unknown zoo model");
  int rc = z ? nn_zoo_build_sized(&e, z, top, h, w, &g)
             : nn_keras_load_file_sized(&e, from, 0, h, w, &g);
  if (rc == DLP_OK && z) rc = nn_zoo_init_random(&e, g, seed);
  if (rc == DLP_OK && optimize) rc = nn_graph_optimize(&e, g);
  if (rc == DLP_OK) rc = nn_keras_save_file(&e, g, out, &o);
  int st = rc == DLP_OK ? 0 : die(e.msg);
  if (st == 0 && dump) st = dump_consts(g, dump);
  if (st == 0 && io) {
    float *y = NULL;
    int64_t n;
    st = run(g, &y, &n, io);
    free(y);
  }
  if (st == 0 && do_check) st = check(g, out, o.weights_only, z, top, h, w);
  nn_graph_free(g);
  for (size_t i = 0; i < n_names; i++)
    free(names[i]);
  free(names);
  return st;
}
