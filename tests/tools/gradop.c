/* gradop.c - test tool: runs ONE op's reference forward pass and its
 * backward kernel (grad.h) on float32 .npy files in a folder, so
 * tests/ref/test_grad_vs_torch.py can compare the gradients with PyTorch
 * autograd.
 *
 *   gradop OP [options] DIR
 *
 * reads DIR/<input>.npy and writes DIR/<output>.npy:
 *   conv2d  [--stride H,W] [--dilation H,W] [--pads T,L,B,R] [--groups G]
 *           [--threads T]      x w [b] dy      -> y dx dw [db]
 *   dense   [--transb]         x w [b] dy      -> y dx dw [db]
 *   batchnorm [--eps E] [--momentum M]
 *           x gamma beta running_mean running_var dy
 *           -> y dx dgamma dbeta running_mean_out running_var_out
 *   maxpool|avgpool --kernel H,W [--stride H,W] [--pads T,L,B,R] [--ceil]
 *           [--count-include-pad]  x dy        -> y dx
 *   gap|gmp                    x dy            -> y dx
 *   act NAME [--alpha A]       x dy            -> y dx
 *   clip --min A --max B       x dy            -> y dx
 *   softmax --axis A           x dy            -> y dx
 *   xent [--smoothing S]       logits labels (int64) [weights] -> loss
 *           (float64 scalar) dlogits
 *   concat --axis A --n N      x0 .. x{N-1} dy -> y dx0 .. dx{N-1}
 *   pad --pads P,... [--mode constant|reflect|edge] [--value V] x dy -> y dx
 *   add|mul                    a b dy          -> y da db
 *
 * Exit status 0 on success, 1 with "gradop: message" on stderr otherwise. */
#include "grad.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_T 24

typedef struct opts {
  const char *dir, *name;
  const char *stride, *dilation, *pads, *kernel, *mode;
  int groups, axis, ceil, incl_pad, transb, threads, n;
  float eps, momentum, alpha, value, lo, hi, smoothing;
} opts;

/* One run: the tensors it loaded or made, freed together at the end. */
typedef struct job {
  dlp_err e;
  const opts *o;
  nn_tensor *t[MAX_T];
  int nt;
} job;

/* ------------------------------------------------------------------------
 * .npy in and out
 * ------------------------------------------------------------------------ */

static void path_of(const job *j, const char *name, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s.npy", j->o->dir, name);
}

static nn_tensor *keep(job *j, nn_tensor *t) {
  if (t && j->nt < MAX_T)
    j->t[j->nt++] = t;
  return t;
}

/* DIR/name.npy as a new float32 tensor; NULL (with e set unless optional
 * and absent) on failure. */
static nn_tensor *load(job *j, const char *name, bool optional) {
  char path[4096];
  path_of(j, name, path, sizeof path);
  if (optional) {
    FILE *f = fopen(path, "rb");
    if (!f)
      return NULL;
    fclose(f);
  }
  dlp_npy_array a;
  nn_tensor *t = NULL;
  if (dlp_npy_load_array(&j->e, path, (uint64_t)1 << 32, &a) != DLP_OK)
    return NULL;
  if (a.dtype != 'f' || a.ndim > NN_MAX_DIMS)
    dlp_err_set(&j->e, DLP_ERR_UNSUPPORTED, "%s: not float32 of rank <= 6",
                path);
  else if (nn_tensor_new(&j->e, a.ndim, a.dims, &t) == DLP_OK)
    memcpy(t->data, a.data, a.nbytes);
  dlp_npy_array_free(&a);
  return keep(j, t);
}

static nn_tensor *make(job *j, const nn_shape *s) {
  nn_tensor *t = NULL;
  nn_tensor_new(&j->e, s->ndim, s->dims, &t);
  return keep(j, t);
}

static nn_tensor *make_like(job *j, const nn_tensor *x) {
  nn_shape s = nn_tensor_shape(x);
  return make(j, &s);
}

static int save(job *j, const char *name, const nn_tensor *t) {
  char path[4096];
  path_of(j, name, path, sizeof path);
  dlp_npy_array a = {.dtype = 'f', .ndim = t->ndim, .data = t->data};
  memcpy(a.dims, t->dims, sizeof t->dims);
  a.nbytes = (size_t)nn_tensor_numel(t) * sizeof(float);
  return dlp_npy_save_array(&j->e, path, &a);
}

/* Saves name/tensor pairs, stopping at the first NULL name; NULL tensors
 * are skipped (optional outputs). */
static int save_all(job *j, const char *const *names, nn_tensor *const *ts) {
  for (int i = 0; names[i]; i++)
    if (ts[i] && save(j, names[i], ts[i]) != DLP_OK)
      return j->e.code;
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------------ */

static int parse_ints(const char *s, int *v, int want) {
  for (int i = 0; s && i < want; i++) {
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || x < -1000000 || x > 1000000)
      return -1;
    v[i] = (int)x;
    if (i + 1 < want && *end != ',')
      return -1;
    if (i + 1 == want && *end)
      return -1;
    s = end + 1;
  }
  return 0;
}

static const char *const value_opts[] = {
    "--stride",   "--dilation",  "--pads",    "--kernel", "--mode", "--groups",
    "--axis",     "--eps",       "--alpha",   "--value",  "--min",  "--max",
    "--momentum", "--smoothing", "--threads", "--n",      NULL};

static void set_value(opts *o, int k, const char *v) {
  const char **strs[] = {&o->stride, &o->dilation, &o->pads, &o->kernel,
                         &o->mode};
  int *ints[] = {&o->groups, &o->axis};
  float *floats[] = {&o->eps, &o->alpha,    &o->value,    &o->lo,
                     &o->hi,  &o->momentum, &o->smoothing};
  if (k < 5)
    *strs[k] = v;
  else if (k < 7)
    *ints[k - 5] = atoi(v);
  else if (k < 14)
    *floats[k - 7] = strtof(v, NULL);
  else if (k == 14)
    o->threads = atoi(v);
  else
    o->n = atoi(v);
}

static int parse_opts(int argc, char **argv, opts *o) {
  *o = (opts){.groups = 1,
              .eps = 1e-5f,
              .momentum = 0.1f,
              .alpha = 0.01f,
              .threads = 1};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--ceil"))
      o->ceil = 1;
    else if (!strcmp(a, "--count-include-pad"))
      o->incl_pad = 1;
    else if (!strcmp(a, "--transb"))
      o->transb = 1;
    else if (!strncmp(a, "--", 2)) {
      int k = 0;
      while (value_opts[k] && strcmp(value_opts[k], a))
        k++;
      if (!value_opts[k] || i + 1 >= argc)
        return -1;
      set_value(o, k, argv[++i]);
    } else if (!o->name && !strcmp(argv[1], "act")) {
      o->name = a;
    } else if (!o->dir) {
      o->dir = a;
    } else {
      return -1;
    }
  }
  return o->dir ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * Ops
 * ------------------------------------------------------------------------ */

static int op_conv2d(job *j) {
  const opts *o = j->o;
  nn_conv2d_attr a;
  nn_conv2d_attr_init(&a);
  if (parse_ints(o->stride, a.stride, 2) ||
      parse_ints(o->dilation, a.dilation, 2) || parse_ints(o->pads, a.pads, 4))
    return dlp_err_set(&j->e, DLP_ERR_ARG, "conv2d: bad arguments");
  a.groups = o->groups;
  nn_tensor *x = load(j, "x", false), *w = x ? load(j, "w", false) : NULL;
  nn_tensor *b = w ? load(j, "b", true) : NULL;
  nn_tensor *dy = w ? load(j, "dy", false) : NULL;
  nn_shape s;
  if (!dy || nn_conv2d_out_shape(&j->e, &a, x, w, &s) != DLP_OK)
    return j->e.code;
  nn_tensor *y = make(j, &s), *dx = make_like(j, x), *dw = make_like(j, w);
  nn_tensor *db = b ? make_like(j, b) : NULL;
  if (!y || !dx || !dw || (b && !db) ||
      nn_conv2d(&j->e, &a, x, w, b, y) != DLP_OK ||
      nn_conv2d_backward_data_mt(&j->e, &a, w, dy, dx, o->threads) != DLP_OK ||
      nn_conv2d_backward_weights_mt(&j->e, &a, x, dy, dw, db, o->threads) !=
          DLP_OK)
    return j->e.code;
  const char *names[] = {"y", "dx", "dw", "db", NULL};
  nn_tensor *ts[] = {y, dx, dw, db};
  return save_all(j, names, ts);
}

static int op_dense(job *j) {
  nn_dense_attr a;
  nn_dense_attr_init(&a);
  a.transb = j->o->transb;
  nn_tensor *x = load(j, "x", false), *w = x ? load(j, "w", false) : NULL;
  nn_tensor *b = w ? load(j, "b", true) : NULL;
  nn_tensor *dy = w ? load(j, "dy", false) : NULL;
  nn_shape s;
  if (!dy || nn_dense_out_shape(&j->e, &a, x, w, &s) != DLP_OK)
    return j->e.code;
  nn_tensor *y = make(j, &s), *dx = make_like(j, x), *dw = make_like(j, w);
  nn_tensor *db = b ? make_like(j, b) : NULL;
  if (!y || !dx || !dw || (b && !db) ||
      nn_dense(&j->e, &a, x, w, b, y) != DLP_OK ||
      nn_dense_backward(&j->e, &a, x, w, dy, dx, dw, db) != DLP_OK)
    return j->e.code;
  const char *names[] = {"y", "dx", "dw", "db", NULL};
  nn_tensor *ts[] = {y, dx, dw, db};
  return save_all(j, names, ts);
}

static int op_batchnorm(job *j) {
  static const char *const in_names[] = {
      "x", "gamma", "beta", "running_mean", "running_var", "dy"};
  nn_tensor *in[6];
  for (int i = 0; i < 6; i++)
    if (!(in[i] = load(j, in_names[i], false)))
      return j->e.code;
  int64_t c = in[0]->ndim >= 2 ? in[0]->dims[1] : 0;
  float *sm = calloc((size_t)c + 1, sizeof *sm);
  float *si = calloc((size_t)c + 1, sizeof *si);
  nn_tensor *y = make_like(j, in[0]), *dx = make_like(j, in[0]);
  nn_tensor *dg = make_like(j, in[1]), *db = make_like(j, in[2]);
  int rc = sm && si && y && dx && dg && db ? DLP_OK : DLP_ERR_NOMEM;
  if (rc == DLP_OK)
    rc = nn_batchnorm_train(&j->e, j->o->eps, j->o->momentum, in[0], in[1],
                            in[2], in[3], in[4], y, sm, si);
  if (rc == DLP_OK)
    rc = nn_batchnorm_backward(&j->e, in[0], in[1], sm, si, in[5], dx, dg, db);
  free(sm);
  free(si);
  if (rc != DLP_OK)
    return rc;
  const char *names[] = {
      "y", "dx", "dgamma", "dbeta", "running_mean_out", "running_var_out",
      NULL};
  nn_tensor *ts[] = {y, dx, dg, db, in[3], in[4]};
  return save_all(j, names, ts);
}

static int op_pool(job *j, bool is_max) {
  const opts *o = j->o;
  nn_pool2d_attr a;
  nn_pool2d_attr_init(&a);
  if (!o->kernel || parse_ints(o->kernel, a.kernel, 2) ||
      parse_ints(o->stride, a.stride, 2) || parse_ints(o->pads, a.pads, 4))
    return dlp_err_set(&j->e, DLP_ERR_ARG, "pool: bad arguments");
  a.ceil_mode = o->ceil;
  a.count_include_pad = o->incl_pad;
  nn_tensor *x = load(j, "x", false), *dy = x ? load(j, "dy", false) : NULL;
  nn_shape s;
  if (!dy || nn_pool2d_out_shape(&j->e, &a, x, &s) != DLP_OK)
    return j->e.code;
  nn_tensor *y = make(j, &s), *dx = make_like(j, x);
  if (!y || !dx)
    return j->e.code;
  int rc =
      is_max ? nn_maxpool2d(&j->e, &a, x, y) : nn_avgpool2d(&j->e, &a, x, y);
  if (rc == DLP_OK)
    rc = is_max ? nn_maxpool2d_backward(&j->e, &a, x, dy, dx)
                : nn_avgpool2d_backward(&j->e, &a, dy, dx);
  const char *names[] = {"y", "dx", NULL};
  nn_tensor *ts[] = {y, dx};
  return rc ? rc : save_all(j, names, ts);
}

/* The one-input ops whose output has the input's shape (and global pools),
 * told apart by name. */
static int op_unary(job *j, const char *op) {
  const opts *o = j->o;
  nn_tensor *x = load(j, "x", false), *dy = x ? load(j, "dy", false) : NULL;
  if (!dy)
    return j->e.code;
  nn_shape s = nn_tensor_shape(x);
  bool global = !strcmp(op, "gap") || !strcmp(op, "gmp");
  if (global && nn_global_pool_out_shape(&j->e, x, &s) != DLP_OK)
    return j->e.code;
  nn_tensor *y = make(j, &s), *dx = make_like(j, x);
  if (!y || !dx)
    return j->e.code;
  int rc, act = o->name ? nn_act_from_name(o->name) : -1;
  if (!strcmp(op, "gap"))
    rc = nn_global_avgpool(&j->e, x, y) ||
         nn_global_avgpool_backward(&j->e, dy, dx);
  else if (!strcmp(op, "gmp"))
    rc = nn_global_maxpool(&j->e, x, y) ||
         nn_global_maxpool_backward(&j->e, x, dy, dx);
  else if (!strcmp(op, "clip"))
    rc = nn_clip(&j->e, o->lo, o->hi, x, y) ||
         nn_clip_backward(&j->e, o->lo, o->hi, x, dy, dx);
  else if (!strcmp(op, "softmax"))
    rc = nn_softmax(&j->e, o->axis, x, y) ||
         nn_softmax_backward(&j->e, o->axis, y, dy, dx);
  else if (act >= 0)
    rc = nn_act_apply(&j->e, (nn_act)act, o->alpha, x, y) ||
         nn_act_backward(&j->e, (nn_act)act, o->alpha, x, y, dy, dx);
  else
    return dlp_err_set(&j->e, DLP_ERR_ARG, "act: unknown activation %s",
                       o->name ? o->name : "(none)");
  const char *names[] = {"y", "dx", NULL};
  nn_tensor *ts[] = {y, dx};
  return rc ? j->e.code : save_all(j, names, ts);
}

static int op_xent(job *j) {
  char path[4096];
  nn_tensor *z = load(j, "logits", false),
            *w = z ? load(j, "weights", true) : NULL;
  if (!z)
    return j->e.code;
  dlp_npy_array la;
  path_of(j, "labels", path, sizeof path);
  if (dlp_npy_load_array(&j->e, path, (uint64_t)1 << 30, &la) != DLP_OK)
    return j->e.code;
  int64_t n = la.ndim == 1 ? la.dims[0] : -1;
  int32_t *labels = calloc((size_t)(n > 0 ? n : 1), sizeof *labels);
  int rc = DLP_OK;
  if (la.dtype != 'q' || n != (z->ndim == 2 ? z->dims[0] : -2) || !labels)
    rc = dlp_err_set(&j->e, DLP_ERR_ARG, "xent: labels must be int64 (N)");
  for (int64_t i = 0; rc == DLP_OK && i < n; i++)
    labels[i] = (int32_t)((const int64_t *)la.data)[i];
  dlp_npy_array_free(&la);
  nn_tensor *dz = make_like(j, z);
  double loss = 0;
  if (rc == DLP_OK && dz)
    rc = nn_softmax_xent(&j->e, z, labels, w ? w->data : NULL, j->o->smoothing,
                         &loss, dz);
  free(labels);
  if (rc != DLP_OK || !dz)
    return j->e.code ? j->e.code : rc;
  dlp_npy_array a = {
      .dtype = 'd', .ndim = 0, .data = &loss, .nbytes = sizeof loss};
  path_of(j, "loss", path, sizeof path);
  if (dlp_npy_save_array(&j->e, path, &a) != DLP_OK)
    return j->e.code;
  return save(j, "dlogits", dz);
}

static int op_concat(job *j) {
  int n = j->o->n;
  if (n < 1 || n > 8)
    return dlp_err_set(&j->e, DLP_ERR_ARG, "concat: --n must be in [1, 8]");
  nn_tensor *xs[8], *dxs[8];
  char name[16];
  for (int k = 0; k < n; k++) {
    snprintf(name, sizeof name, "x%d", k);
    if (!(xs[k] = load(j, name, false)) || !(dxs[k] = make_like(j, xs[k])))
      return j->e.code;
  }
  nn_tensor *dy = load(j, "dy", false);
  nn_shape s;
  const nn_tensor *const *cx = (const nn_tensor *const *)xs;
  if (!dy || nn_concat_out_shape(&j->e, cx, n, j->o->axis, &s) != DLP_OK)
    return j->e.code;
  nn_tensor *y = make(j, &s);
  if (!y || nn_concat(&j->e, cx, n, j->o->axis, y) != DLP_OK ||
      nn_concat_backward(&j->e, dy, j->o->axis, dxs, n) != DLP_OK ||
      save(j, "y", y) != DLP_OK)
    return j->e.code;
  for (int k = 0; k < n; k++) {
    snprintf(name, sizeof name, "dx%d", k);
    if (save(j, name, dxs[k]) != DLP_OK)
      return j->e.code;
  }
  return DLP_OK;
}

static int op_pad(job *j) {
  const opts *o = j->o;
  nn_pad_attr a;
  nn_pad_attr_init(&a);
  const char *m = o->mode ? o->mode : "constant";
  a.mode = !strcmp(m, "reflect") ? NN_PAD_REFLECT
           : !strcmp(m, "edge")  ? NN_PAD_EDGE
                                 : NN_PAD_CONSTANT;
  a.value = o->value;
  nn_tensor *x = load(j, "x", false), *dy = x ? load(j, "dy", false) : NULL;
  if (!dy)
    return j->e.code;
  int p[2 * NN_MAX_DIMS];
  if (parse_ints(o->pads, p, 2 * x->ndim) || !o->pads)
    return dlp_err_set(&j->e, DLP_ERR_ARG, "pad: --pads wants %d values",
                       2 * x->ndim);
  for (int i = 0; i < 2 * x->ndim; i++)
    a.pads[i] = p[i];
  nn_shape s;
  if (nn_pad_out_shape(&j->e, &a, x, &s) != DLP_OK)
    return j->e.code;
  nn_tensor *y = make(j, &s), *dx = make_like(j, x);
  if (!y || !dx || nn_pad(&j->e, &a, x, y) != DLP_OK ||
      nn_pad_backward(&j->e, &a, dy, dx) != DLP_OK)
    return j->e.code;
  const char *names[] = {"y", "dx", NULL};
  nn_tensor *ts[] = {y, dx};
  return save_all(j, names, ts);
}

static int op_binary(job *j, bool is_mul) {
  nn_tensor *a = load(j, "a", false), *b = a ? load(j, "b", false) : NULL;
  nn_tensor *dy = b ? load(j, "dy", false) : NULL;
  nn_shape s;
  if (!dy || nn_broadcast_shape(&j->e, a, b, &s) != DLP_OK)
    return j->e.code;
  nn_tensor *y = make(j, &s), *da = make_like(j, a), *db = make_like(j, b);
  if (!y || !da || !db)
    return j->e.code;
  int rc =
      is_mul
          ? nn_mul(&j->e, a, b, y) || nn_mul_backward(&j->e, a, b, dy, da, db)
          : nn_add(&j->e, a, b, y) || nn_add_backward(&j->e, dy, da, db);
  const char *names[] = {"y", "da", "db", NULL};
  nn_tensor *ts[] = {y, da, db};
  return rc ? j->e.code : save_all(j, names, ts);
}

static int dispatch(job *j, const char *op) {
  if (!strcmp(op, "conv2d"))
    return op_conv2d(j);
  if (!strcmp(op, "dense"))
    return op_dense(j);
  if (!strcmp(op, "batchnorm"))
    return op_batchnorm(j);
  if (!strcmp(op, "maxpool") || !strcmp(op, "avgpool"))
    return op_pool(j, op[1] == 'a');
  if (!strcmp(op, "gap") || !strcmp(op, "gmp") || !strcmp(op, "clip") ||
      !strcmp(op, "softmax") || !strcmp(op, "act"))
    return op_unary(j, op);
  if (!strcmp(op, "xent"))
    return op_xent(j);
  if (!strcmp(op, "concat"))
    return op_concat(j);
  if (!strcmp(op, "pad"))
    return op_pad(j);
  if (!strcmp(op, "add") || !strcmp(op, "mul"))
    return op_binary(j, op[0] == 'm');
  return dlp_err_set(&j->e, DLP_ERR_ARG, "unknown op %s", op);
}

int main(int argc, char **argv) {
  opts o;
  if (argc < 3 || parse_opts(argc, argv, &o) != 0) {
    fprintf(stderr, "gradop: usage: gradop OP [options] DIR (see gradop.c)\n");
    return 1;
  }
  job j = {.o = &o};
  int rc = dispatch(&j, argv[1]);
  for (int i = 0; i < j.nt; i++)
    nn_tensor_free(j.t[i]);
  if (rc == DLP_OK)
    return 0;
  fprintf(stderr, "gradop: %s\n", j.e.msg[0] ? j.e.msg : "failed");
  return 1;
}
