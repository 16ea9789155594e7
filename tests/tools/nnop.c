/* nnop.c - test tool: runs ONE reference nn kernel on float32 .npy files, so
 * tests/ref/test_nn_ops_vs_torch.py can compare it with PyTorch.
 *
 *   nnop conv2d [--stride H,W] [--dilation H,W] [--pads T,L,B,R] [--groups G]
 *               [--act NAME] X.npy W.npy [B.npy] OUT.npy
 *   nnop maxpool|avgpool --kernel H,W [--stride H,W] [--pads T,L,B,R] [--ceil]
 *               [--count-include-pad] X.npy OUT.npy
 *   nnop dense [--transb] [--act NAME] X W [B] OUT
 *   nnop batchnorm [--eps E] X GAMMA BETA MEAN VAR OUT
 *   nnop softmax --axis A X OUT
 *   nnop act NAME [--alpha A] X OUT        (relu, relu6, leaky_relu, ...)
 *   nnop clip --min A --max B X OUT
 *   nnop add|mul A B OUT
 *   nnop concat --axis A X1 X2 [...] OUT
 *   nnop pad --pads P,... [--mode constant|reflect|edge] [--value V] X OUT
 *        (2*ndim pads in ONNX order, or 4 = T,L,B,R on the last two axes)
 *   nnop flatten --axis A X OUT
 *   nnop reshape --shape D,D,... X OUT
 *   nnop gap|gmp X OUT                     (global average / max pool)
 *
 * .npy files go through the library's reader/writer; only float32 ('<f4')
 * arrays of rank 0..6 are taken, anything else is refused with a message.
 * Exit status 0 on success, 1 with "nnop: message" on stderr otherwise. */
#include "nn.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POS 16

typedef struct opts {
  const char *pos[MAX_POS];
  int npos;
  const char *stride, *dilation, *pads, *kernel, *act, *mode, *shape;
  int groups, axis, ceil, incl_pad, transb;
  float eps, alpha, value, lo, hi;
} opts;

static int die(const char *msg) {
  fprintf(stderr, "nnop: %s\n", msg);
  return 1;
}

/* ------------------------------------------------------------------------
 * .npy
 * ------------------------------------------------------------------------ */

/* Reads a float32 .npy of rank <= NN_MAX_DIMS into a new tensor. */
static int npy_load(dlp_err *e, const char *path, nn_tensor **out) {
  dlp_npy_array a;
  *out = NULL;
  int rc = dlp_npy_load_array(e, path, (uint64_t)1 << 33, &a);
  if (rc != DLP_OK) return rc;
  if (a.dtype != 'f' || a.ndim > NN_MAX_DIMS)
    rc = dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                     "%s: only C-order '<f4' arrays of rank <= 6 are read",
                     path);
  if (rc == DLP_OK) rc = nn_tensor_new(e, a.ndim, a.dims, out);
  if (rc == DLP_OK) memcpy((*out)->data, a.data, a.nbytes);
  dlp_npy_array_free(&a);
  return rc;
}

static int npy_save(dlp_err *e, const char *path, const nn_tensor *t) {
  dlp_npy_array a = {.dtype = 'f', .ndim = t->ndim, .data = t->data};
  memcpy(a.dims, t->dims, sizeof t->dims);
  a.nbytes = (size_t)nn_tensor_numel(t) * sizeof(float);
  return dlp_npy_save_array(e, path, &a);
}

/* ------------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------------ */

/* "a,b,c" into exactly want ints (want < 0: any count up to max, the count
 * returned). Returns -1 on a malformed list. */
static int parse_list(const char *s, int64_t *v, int want, int max) {
  int n = 0;
  while (s && *s && n < max) {
    char *end;
    v[n++] = strtoll(s, &end, 10);
    if (end == s || (*end && *end != ',')) return -1;
    s = *end ? end + 1 : end;
  }
  if (s && *s) return -1;
  return want < 0 || n == want ? n : -1;
}

static int parse_ints(const char *s, int *v, int want) {
  int64_t t[2 * NN_MAX_DIMS];
  if (!s) return 0; /* not given: keep the defaults */
  if (parse_list(s, t, want, 2 * NN_MAX_DIMS) < 0) return -1;
  for (int i = 0; i < want; i++) {
    if (t[i] < -1000000 || t[i] > 1000000) return -1;
    v[i] = (int)t[i];
  }
  return 0;
}

static const char *const value_opts[] = {
    "--stride", "--dilation", "--pads",   "--kernel", "--act",
    "--mode",   "--shape",    "--groups", "--axis",   "--eps",
    "--alpha",  "--value",    "--min",    "--max",    NULL};

static void set_value(opts *o, int k, const char *v) {
  const char **strs[] = {&o->stride, &o->dilation, &o->pads, &o->kernel,
                         &o->act,    &o->mode,     &o->shape};
  if (k < 7)
    *strs[k] = v;
  else if (k == 7)
    o->groups = atoi(v);
  else if (k == 8)
    o->axis = atoi(v);
  else if (k == 9)
    o->eps = strtof(v, NULL);
  else if (k == 10)
    o->alpha = strtof(v, NULL);
  else if (k == 11)
    o->value = strtof(v, NULL);
  else if (k == 12)
    o->lo = strtof(v, NULL);
  else
    o->hi = strtof(v, NULL);
}

static int parse_opts(int argc, char **argv, opts *o) {
  *o = (opts){.groups = 1, .eps = 1e-5f, .alpha = 0.01f};
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
      if (!value_opts[k] || i + 1 >= argc) return -1;
      set_value(o, k, argv[++i]);
    } else if (o->npos < MAX_POS) {
      o->pos[o->npos++] = a;
    } else {
      return -1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Ops: each loads its inputs, computes the output shape, runs the kernel.
 * ------------------------------------------------------------------------ */

typedef struct job {
  dlp_err e;
  nn_tensor *in[MAX_POS];
  int nin;
  nn_shape s; /* the output's shape, set by the op's shape function */
  nn_tensor *y;
} job;

/* Loads positional files [first, first + n) as inputs. */
static int load_inputs(job *j, const opts *o, int first, int n) {
  for (int i = 0; i < n; i++) {
    int rc = npy_load(&j->e, o->pos[first + i], &j->in[j->nin]);
    if (rc != DLP_OK) return rc;
    j->nin++;
  }
  return DLP_OK;
}

/* The fused activation named by --act (none when absent). */
static int parse_act(dlp_err *e, const char *name, nn_act *act) {
  int k = name ? nn_act_from_name(name) : NN_ACT_NONE;
  if (k < 0) return dlp_err_set(e, DLP_ERR_ARG, "unknown activation %s", name);
  *act = (nn_act)k;
  return DLP_OK;
}

static int alloc_out(job *j) {
  return nn_tensor_new(&j->e, j->s.ndim, j->s.dims, &j->y);
}

static int op_conv2d(job *j, const opts *o) {
  nn_conv2d_attr a;
  nn_conv2d_attr_init(&a);
  if (o->npos < 3 || o->npos > 4 || parse_ints(o->stride, a.stride, 2) ||
      parse_ints(o->dilation, a.dilation, 2) || parse_ints(o->pads, a.pads, 4))
    return dlp_err_set(&j->e, DLP_ERR_ARG, "conv2d: bad arguments");
  a.groups = o->groups;
  if (parse_act(&j->e, o->act, &a.act) != DLP_OK) return j->e.code;
  a.alpha = o->alpha;
  int rc = load_inputs(j, o, 0, o->npos - 1);
  if (rc == DLP_OK)
    rc = nn_conv2d_out_shape(&j->e, &a, j->in[0], j->in[1], &j->s);
  if (rc == DLP_OK) rc = alloc_out(j);
  if (rc == DLP_OK)
    rc = nn_conv2d(&j->e, &a, j->in[0], j->in[1], j->nin > 2 ? j->in[2] : NULL,
                   j->y);
  return rc;
}

static int op_pool(job *j, const opts *o, bool is_max) {
  nn_pool2d_attr a;
  nn_pool2d_attr_init(&a);
  if (o->npos != 2 || !o->kernel || parse_ints(o->kernel, a.kernel, 2) ||
      parse_ints(o->stride, a.stride, 2) || parse_ints(o->pads, a.pads, 4))
    return dlp_err_set(&j->e, DLP_ERR_ARG, "pool: bad arguments");
  a.ceil_mode = o->ceil;
  a.count_include_pad = o->incl_pad;
  int rc = load_inputs(j, o, 0, 1);
  if (rc == DLP_OK) rc = nn_pool2d_out_shape(&j->e, &a, j->in[0], &j->s);
  if (rc == DLP_OK) rc = alloc_out(j);
  if (rc == DLP_OK)
    rc = is_max ? nn_maxpool2d(&j->e, &a, j->in[0], j->y)
                : nn_avgpool2d(&j->e, &a, j->in[0], j->y);
  return rc;
}

static int op_dense(job *j, const opts *o) {
  nn_dense_attr a;
  nn_dense_attr_init(&a);
  a.transb = o->transb;
  a.alpha = o->alpha;
  if (o->npos < 3 || o->npos > 4)
    return dlp_err_set(&j->e, DLP_ERR_ARG, "dense: bad arguments");
  if (parse_act(&j->e, o->act, &a.act) != DLP_OK) return j->e.code;
  int rc = load_inputs(j, o, 0, o->npos - 1);
  if (rc == DLP_OK)
    rc = nn_dense_out_shape(&j->e, &a, j->in[0], j->in[1], &j->s);
  if (rc == DLP_OK) rc = alloc_out(j);
  if (rc == DLP_OK)
    rc = nn_dense(&j->e, &a, j->in[0], j->in[1], j->nin > 2 ? j->in[2] : NULL,
                  j->y);
  return rc;
}

/* Ops whose output has the first input's shape. */
static int op_same_shape(job *j, const opts *o, const char *op, int nin) {
  if (o->npos != nin + 1)
    return dlp_err_set(&j->e, DLP_ERR_ARG, "%s: wants %d inputs and an output",
                       op, nin);
  int rc = load_inputs(j, o, 0, nin);
  if (rc != DLP_OK) return rc;
  j->s = nn_tensor_shape(j->in[0]);
  rc = alloc_out(j);
  if (rc != DLP_OK) return rc;
  if (!strcmp(op, "batchnorm"))
    return nn_batchnorm(&j->e, o->eps, j->in[0], j->in[1], j->in[2], j->in[3],
                        j->in[4], j->y);
  if (!strcmp(op, "softmax")) return nn_softmax(&j->e, o->axis, j->in[0], j->y);
  return nn_clip(&j->e, o->lo, o->hi, j->in[0], j->y);
}

static int op_act(job *j, const opts *o) {
  int act = o->npos == 3 ? nn_act_from_name(o->pos[0]) : -1;
  if (act < 0)
    return dlp_err_set(&j->e, DLP_ERR_ARG, "act: wants a known NAME X OUT");
  int rc = load_inputs(j, o, 1, 1);
  if (rc != DLP_OK) return rc;
  j->s = nn_tensor_shape(j->in[0]);
  rc = alloc_out(j);
  return rc ? rc : nn_act_apply(&j->e, (nn_act)act, o->alpha, j->in[0], j->y);
}

static int op_binary(job *j, const opts *o, bool is_mul) {
  if (o->npos != 3)
    return dlp_err_set(&j->e, DLP_ERR_ARG, "add/mul: wants A B OUT");
  int rc = load_inputs(j, o, 0, 2);
  if (rc == DLP_OK) rc = nn_broadcast_shape(&j->e, j->in[0], j->in[1], &j->s);
  if (rc == DLP_OK) rc = alloc_out(j);
  if (rc != DLP_OK) return rc;
  return is_mul ? nn_mul(&j->e, j->in[0], j->in[1], j->y)
                : nn_add(&j->e, j->in[0], j->in[1], j->y);
}

static int op_concat(job *j, const opts *o) {
  if (o->npos < 2)
    return dlp_err_set(&j->e, DLP_ERR_ARG, "concat: wants X1 [X2 ...] OUT");
  int rc = load_inputs(j, o, 0, o->npos - 1);
  const nn_tensor *const *xs = (const nn_tensor *const *)j->in;
  if (rc == DLP_OK) rc = nn_concat_out_shape(&j->e, xs, j->nin, o->axis, &j->s);
  if (rc == DLP_OK) rc = alloc_out(j);
  return rc ? rc : nn_concat(&j->e, xs, j->nin, o->axis, j->y);
}

static int op_pad(job *j, const opts *o) {
  nn_pad_attr a;
  nn_pad_attr_init(&a);
  int64_t p[2 * NN_MAX_DIMS];
  int np = o->pads ? parse_list(o->pads, p, -1, 2 * NN_MAX_DIMS) : -1;
  if (o->npos != 2 || np < 0)
    return dlp_err_set(&j->e, DLP_ERR_ARG, "pad: wants --pads and X OUT");
  const char *m = o->mode ? o->mode : "constant";
  a.mode = !strcmp(m, "reflect") ? NN_PAD_REFLECT
           : !strcmp(m, "edge")  ? NN_PAD_EDGE
                                 : NN_PAD_CONSTANT;
  if (a.mode == NN_PAD_CONSTANT && strcmp(m, "constant"))
    return dlp_err_set(&j->e, DLP_ERR_ARG, "pad: unknown mode %s", m);
  a.value = o->value;
  int rc = load_inputs(j, o, 0, 1);
  if (rc != DLP_OK) return rc;
  int nd = j->in[0]->ndim;
  if (np == 2 * nd)
    memcpy(a.pads, p, sizeof(int64_t) * (size_t)np);
  else if (np == 4 && nd >= 2) /* T,L,B,R on the last two axes */
    for (int k = 0; k < 2; k++) {
      a.pads[nd - 2 + k] = p[k];
      a.pads[2 * nd - 2 + k] = p[2 + k];
    }
  else
    return dlp_err_set(&j->e, DLP_ERR_ARG, "pad: %d pads for rank %d", np, nd);
  rc = nn_pad_out_shape(&j->e, &a, j->in[0], &j->s);
  if (rc == DLP_OK) rc = alloc_out(j);
  return rc ? rc : nn_pad(&j->e, &a, j->in[0], j->y);
}

static int op_reshape(job *j, const opts *o, bool flatten) {
  int64_t shape[NN_MAX_DIMS];
  int n = flatten ? 0 : parse_list(o->shape, shape, -1, NN_MAX_DIMS);
  if (o->npos != 2 || n < 0)
    return dlp_err_set(&j->e, DLP_ERR_ARG, "reshape/flatten: bad arguments");
  int rc = load_inputs(j, o, 0, 1);
  if (rc != DLP_OK) return rc;
  rc = flatten ? nn_flatten_out_shape(&j->e, j->in[0], o->axis, &j->s)
               : nn_reshape_out_shape(&j->e, j->in[0], shape, n, &j->s);
  if (rc == DLP_OK) rc = alloc_out(j);
  return rc ? rc : nn_reshape(&j->e, j->in[0], j->y);
}

static int op_global(job *j, const opts *o, bool is_max) {
  if (o->npos != 2) return dlp_err_set(&j->e, DLP_ERR_ARG, "gap/gmp: X OUT");
  int rc = load_inputs(j, o, 0, 1);
  if (rc == DLP_OK) rc = nn_global_pool_out_shape(&j->e, j->in[0], &j->s);
  if (rc == DLP_OK) rc = alloc_out(j);
  if (rc != DLP_OK) return rc;
  return is_max ? nn_global_maxpool(&j->e, j->in[0], j->y)
                : nn_global_avgpool(&j->e, j->in[0], j->y);
}

static int dispatch(job *j, const char *op, const opts *o) {
  if (!strcmp(op, "conv2d")) return op_conv2d(j, o);
  if (!strcmp(op, "maxpool")) return op_pool(j, o, true);
  if (!strcmp(op, "avgpool")) return op_pool(j, o, false);
  if (!strcmp(op, "dense")) return op_dense(j, o);
  if (!strcmp(op, "batchnorm")) return op_same_shape(j, o, op, 5);
  if (!strcmp(op, "softmax") || !strcmp(op, "clip"))
    return op_same_shape(j, o, op, 1);
  if (!strcmp(op, "act")) return op_act(j, o);
  if (!strcmp(op, "add") || !strcmp(op, "mul"))
    return op_binary(j, o, op[0] == 'm');
  if (!strcmp(op, "concat")) return op_concat(j, o);
  if (!strcmp(op, "pad")) return op_pad(j, o);
  if (!strcmp(op, "flatten") || !strcmp(op, "reshape"))
    return op_reshape(j, o, op[0] == 'f');
  if (!strcmp(op, "gap") || !strcmp(op, "gmp"))
    return op_global(j, o, op[1] == 'm');
  return dlp_err_set(&j->e, DLP_ERR_ARG, "unknown op %s", op);
}

int main(int argc, char **argv) {
  opts o;
  if (argc < 2 || parse_opts(argc, argv, &o) != 0 || o.npos < 1)
    return die("usage: nnop OP [options] INPUTS... OUT.npy (see nnop.c)");
  job j = {0};
  int rc = dispatch(&j, argv[1], &o);
  if (rc == DLP_OK) rc = npy_save(&j.e, o.pos[o.npos - 1], j.y);
  for (int i = 0; i < j.nin; i++)
    nn_tensor_free(j.in[i]);
  nn_tensor_free(j.y);
  return rc == DLP_OK ? 0 : die(j.e.msg);
}
