/* dnnl_train.c - the trainer's fast kernels: oneDNN convolution
 * forward_training / backward_data / backward_weights, and threaded batch
 * norm, elementwise and pad kernels for the rest of a step. Hand-written
 * over oneDNN's C API because the inference planner (dnnl.c) owns its
 * activations in its own layouts, while the trainer keeps every activation
 * and gradient in plain NCHW: here each primitive picks its preferred
 * layouts (format `any`) and "ports" reorder our buffers into shared
 * scratch and back where the layouts differ. Measured on MobileNetV2: plain
 * nchw descriptors are 3-10x slower for every conv kind (1x1, depthwise,
 * the 3x3/2 stem), as oneDNN's fast kernels need blocked layouts, so
 * `any` is used for all. */
#include "dnnl_train.h"

#include "dnnl_backend.h"
#include "grad.h"

#include <dlfcn.h>
#include <dnnl.h>
#include <dnnl_debug.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Shared scratch roles: x-sized (src, diff_src), y-sized (dst, diff_dst),
 * weights, diff weights. */
enum { BUF_X, BUF_Y, BUF_W, BUF_DW, N_BUF };

#define N_VARIANTS 4

struct nn_dnnl_train {
  dnnl_engine_t eng;
  dnnl_stream_t strm;
  int threads;
  void *buf[N_BUF];
  size_t cap[N_BUF];
};

/* One operand of a primitive: our plain layout, the primitive's, and the
 * reorder between them (NULL when they are the same). */
typedef struct dt_port {
  dnnl_memory_desc_t user, prim;
  dnnl_primitive_t reorder;
} dt_port;

/* The primitives for one batch size. */
typedef struct dt_variant {
  int64_t batch; /* 0: empty */
  dnnl_primitive_t fwd, bwd_d, bwd_w;
  dt_port f_src, f_w, f_dst;
  dt_port d_dy, d_w, d_dx;
  dt_port w_src, w_dy, w_dw;
  dnnl_memory_desc_t bias; /* plain (O) */
  bool has_bias;
} dt_variant;

struct nn_dnnl_conv {
  nn_dnnl_train *d;
  nn_conv2d_attr a;
  bool has_bias;
  float *db_scratch; /* diff bias nobody wants (a frozen bias) */
  /* a fit sees up to 3 batch sizes (the full batch, the last training and
   * the last validation batch): kept apart, none evicts another */
  dt_variant var[N_VARIANTS];
  int next; /* the slot a new batch size replaces */
};

static int dt_fail(dlp_err *e, dnnl_status_t st, const char *what) {
  if (st == dnnl_unimplemented)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "dnnl train: %s: no oneDNN implementation", what);
  int code = st == dnnl_out_of_memory ? DLP_ERR_NOMEM : DLP_ERR_INTERNAL;
  return dlp_err_set(e, code, "dnnl train: %s failed: %s", what,
                     dnnl_status2str(st));
}

int nn_dnnl_train_new(dlp_err *e, int threads, nn_dnnl_train **out) {
  *out = NULL;
  nn_dnnl_train *d = calloc(1, sizeof *d);
  if (!d) return dlp_err_set(e, DLP_ERR_NOMEM, "dnnl train: no memory");
  d->threads = threads > 0 ? threads : 1;
  int prev = nn_dnnl_threads_set(d->threads);
  dnnl_status_t st = dnnl_engine_create(&d->eng, dnnl_cpu, 0);
  if (st == dnnl_success)
    st = dnnl_stream_create(&d->strm, d->eng, dnnl_stream_default_flags);
  nn_dnnl_threads_set(prev);
  if (st != dnnl_success) {
    nn_dnnl_train_free(d);
    return dt_fail(e, st, "engine setup");
  }
  *out = d;
  return DLP_OK;
}

void nn_dnnl_train_free(nn_dnnl_train *d) {
  if (!d) return;
  for (int i = 0; i < N_BUF; i++)
    free(d->buf[i]);
  if (d->strm) dnnl_stream_destroy(d->strm);
  if (d->eng) dnnl_engine_destroy(d->eng);
  free(d);
}

/* Scratch buffer i with at least `bytes`, 64-byte aligned. */
static void *scratch(nn_dnnl_train *d, int i, size_t bytes) {
  if (d->cap[i] >= bytes) return d->buf[i];
  free(d->buf[i]);
  size_t sz = (bytes + 63) / 64 * 64;
  d->buf[i] = aligned_alloc(64, sz);
  d->cap[i] = d->buf[i] ? sz : 0;
  return d->buf[i];
}

/* ------------------------------------------------------------------------
 * Descriptors
 * ------------------------------------------------------------------------ */

static void md_tag(dnnl_memory_desc_t *md, int nd, const int64_t *dims,
                   dnnl_format_tag_t tag) {
  dnnl_dims_t dd;
  for (int k = 0; k < nd; k++)
    dd[k] = dims[k];
  dnnl_memory_desc_init_by_tag(md, nd, dd, dnnl_f32, tag);
}

/* Weights (O, I/G, KH, KW) as oneDNN sees them: oihw, or goihw with the
 * group split off (depthwise (C*M, 1, KH, KW) is g = C, o = M). */
static void md_weights(dnnl_memory_desc_t *md, const nn_tensor *w, int G,
                       dnnl_format_tag_t plain) {
  int64_t d5[5] = {G, w->dims[0] / G, w->dims[1], w->dims[2], w->dims[3]};
  if (G > 1)
    md_tag(md, 5, d5, plain == dnnl_format_tag_any ? plain : dnnl_goihw);
  else
    md_tag(md, 4, w->dims, plain == dnnl_format_tag_any ? plain : dnnl_oihw);
}

static void port_free(dt_port *p) {
  if (p->reorder) dnnl_primitive_destroy(p->reorder);
  p->reorder = NULL;
}

/* The port between user layout u and the layout primitive pd queries for
 * `what`; to_user: the primitive writes it and we read it back. */
static dnnl_status_t port_init(nn_dnnl_train *d, dt_port *p,
                               const dnnl_memory_desc_t *u,
                               const_dnnl_primitive_desc_t pd,
                               dnnl_query_t what, bool to_user) {
  p->user = *u;
  p->prim = *dnnl_primitive_desc_query_md(pd, what, 0);
  p->reorder = NULL;
  if (dnnl_memory_desc_equal(&p->user, &p->prim)) return dnnl_success;
  dnnl_primitive_desc_t rpd = NULL;
  const dnnl_memory_desc_t *from = to_user ? &p->prim : &p->user;
  const dnnl_memory_desc_t *to = to_user ? &p->user : &p->prim;
  dnnl_status_t st =
      dnnl_reorder_primitive_desc_create(&rpd, from, d->eng, to, d->eng, NULL);
  if (st == dnnl_success) st = dnnl_primitive_create(&p->reorder, rpd);
  if (rpd) dnnl_primitive_desc_destroy(rpd);
  return st;
}

static void variant_free(dt_variant *v) {
  dnnl_primitive_t *prims[] = {&v->fwd, &v->bwd_d, &v->bwd_w};
  for (int i = 0; i < 3; i++)
    if (*prims[i]) dnnl_primitive_destroy(*prims[i]);
  dt_port *ports[] = {&v->f_src, &v->f_w,   &v->f_dst, &v->d_dy, &v->d_w,
                      &v->d_dx,  &v->w_src, &v->w_dy,  &v->w_dw};
  for (int i = 0; i < 9; i++)
    port_free(ports[i]);
  memset(v, 0, sizeof *v);
}

/* The user layouts of x, w, y and the `any` ones the primitives choose
 * from. */
typedef struct dt_mds {
  dnnl_memory_desc_t x, w, y, xa, wa, ya;
  dnnl_dims_t stride, dil, pl, pr;
} dt_mds;

/* Whether this conv runs on plain NCHW / OIHW layouts instead of oneDNN's
 * choice. DLP_DNNL_TRAIN_PLAIN lists kinds to force plain ("1x1", "dw",
 * "full"), for measuring. */
static bool plain_layouts(const nn_conv2d_attr *a, const nn_tensor *x,
                          const nn_tensor *w) {
  const char *env = getenv("DLP_DNNL_TRAIN_PLAIN");
  if (!env) return false;
  bool dw = a->groups > 1 && a->groups == x->dims[1];
  bool k1 = w->dims[2] == 1 && w->dims[3] == 1 && a->groups == 1;
  const char *kind = dw ? "dw" : k1 ? "1x1" : "full";
  return strstr(env, kind) != NULL;
}

static void mds_init(dt_mds *m, const nn_conv2d_attr *a, const nn_tensor *x,
                     const nn_tensor *w, const nn_tensor *y) {
  int G = a->groups;
  md_tag(&m->x, 4, x->dims, dnnl_nchw);
  md_tag(&m->y, 4, y->dims, dnnl_nchw);
  md_tag(&m->xa, 4, x->dims, dnnl_format_tag_any);
  md_tag(&m->ya, 4, y->dims, dnnl_format_tag_any);
  md_weights(&m->w, w, G, dnnl_oihw);
  md_weights(&m->wa, w, G, dnnl_format_tag_any);
  if (plain_layouts(a, x, w)) {
    m->xa = m->x;
    m->ya = m->y;
    m->wa = m->w;
  }
  for (int k = 0; k < 2; k++) {
    m->stride[k] = a->stride[k];
    m->dil[k] = a->dilation[k] - 1;
    m->pl[k] = a->pads[k];
    m->pr[k] = a->pads[k + 2];
  }
}

static dnnl_status_t make_prim(nn_dnnl_train *d, const void *desc,
                               const_dnnl_primitive_desc_t hint,
                               dnnl_primitive_desc_t *pd,
                               dnnl_primitive_t *prim) {
  dnnl_status_t st = dnnl_primitive_desc_create(pd, desc, NULL, d->eng, hint);
  if (st == dnnl_success) st = dnnl_primitive_create(prim, *pd);
  return st;
}

static dnnl_status_t variant_fwd(nn_dnnl_train *d, dt_variant *v, dt_mds *m,
                                 dnnl_primitive_desc_t *fpd) {
  dnnl_convolution_desc_t cd;
  dnnl_status_t st = dnnl_dilated_convolution_forward_desc_init(
      &cd, dnnl_forward_training, dnnl_convolution_direct, &m->xa, &m->wa,
      v->has_bias ? &v->bias : NULL, &m->ya, m->stride, m->dil, m->pl, m->pr);
  if (st == dnnl_success) st = make_prim(d, &cd, NULL, fpd, &v->fwd);
  if (st == dnnl_success)
    st = port_init(d, &v->f_src, &m->x, *fpd, dnnl_query_src_md, false);
  if (st == dnnl_success)
    st = port_init(d, &v->f_w, &m->w, *fpd, dnnl_query_weights_md, false);
  if (st == dnnl_success)
    st = port_init(d, &v->f_dst, &m->y, *fpd, dnnl_query_dst_md, true);
  return st;
}

static dnnl_status_t variant_bwd_d(nn_dnnl_train *d, dt_variant *v, dt_mds *m,
                                   const_dnnl_primitive_desc_t fpd) {
  dnnl_convolution_desc_t cd;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st = dnnl_dilated_convolution_backward_data_desc_init(
      &cd, dnnl_convolution_direct, &m->xa, &m->wa, &m->ya, m->stride, m->dil,
      m->pl, m->pr);
  if (st == dnnl_success) st = make_prim(d, &cd, fpd, &pd, &v->bwd_d);
  if (st == dnnl_success)
    st = port_init(d, &v->d_dy, &m->y, pd, dnnl_query_diff_dst_md, false);
  if (st == dnnl_success)
    st = port_init(d, &v->d_w, &m->w, pd, dnnl_query_weights_md, false);
  if (st == dnnl_success)
    st = port_init(d, &v->d_dx, &m->x, pd, dnnl_query_diff_src_md, true);
  if (pd) dnnl_primitive_desc_destroy(pd);
  return st;
}

static dnnl_status_t variant_bwd_w(nn_dnnl_train *d, dt_variant *v, dt_mds *m,
                                   const_dnnl_primitive_desc_t fpd) {
  dnnl_convolution_desc_t cd;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st = dnnl_dilated_convolution_backward_weights_desc_init(
      &cd, dnnl_convolution_direct, &m->xa, &m->wa,
      v->has_bias ? &v->bias : NULL, &m->ya, m->stride, m->dil, m->pl, m->pr);
  if (st == dnnl_success) st = make_prim(d, &cd, fpd, &pd, &v->bwd_w);
  if (st == dnnl_success)
    st = port_init(d, &v->w_src, &m->x, pd, dnnl_query_src_md, false);
  if (st == dnnl_success)
    st = port_init(d, &v->w_dy, &m->y, pd, dnnl_query_diff_dst_md, false);
  if (st == dnnl_success)
    st = port_init(d, &v->w_dw, &m->w, pd, dnnl_query_diff_weights_md, true);
  if (pd) dnnl_primitive_desc_destroy(pd);
  return st;
}

/* The primitives for x's batch size, made on first use. */
static int variant_get(dlp_err *e, nn_dnnl_conv *c, const nn_tensor *x,
                       const nn_tensor *w, const nn_tensor *y,
                       dt_variant **out) {
  for (int i = 0; i < N_VARIANTS; i++)
    if (c->var[i].batch == x->dims[0]) {
      *out = &c->var[i];
      return DLP_OK;
    }
  dt_variant *v = &c->var[c->next];
  c->next = (c->next + 1) % N_VARIANTS;
  variant_free(v);
  v->has_bias = c->has_bias;
  int64_t O = w->dims[0];
  md_tag(&v->bias, 1, &O, dnnl_a);
  dt_mds m;
  mds_init(&m, &c->a, x, w, y);
  dnnl_primitive_desc_t fpd = NULL;
  dnnl_status_t st = variant_fwd(c->d, v, &m, &fpd);
  if (st == dnnl_success) st = variant_bwd_d(c->d, v, &m, fpd);
  if (st == dnnl_success) st = variant_bwd_w(c->d, v, &m, fpd);
  if (fpd) dnnl_primitive_desc_destroy(fpd);
  if (st != dnnl_success) {
    variant_free(v);
    return dt_fail(e, st, "convolution primitives");
  }
  v->batch = x->dims[0];
  *out = v;
  return DLP_OK;
}

int nn_dnnl_conv_new(dlp_err *e, nn_dnnl_train *d, const nn_conv2d_attr *a,
                     bool has_bias, nn_dnnl_conv **out) {
  *out = NULL;
  if (!d || !a || a->act != NN_ACT_NONE || a->groups < 1)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "dnnl train: a conv needs an engine, groups >= 1 and "
                       "no fused activation");
  nn_dnnl_conv *c = calloc(1, sizeof *c);
  if (!c) return dlp_err_set(e, DLP_ERR_NOMEM, "dnnl train: no memory");
  c->d = d;
  c->a = *a;
  c->has_bias = has_bias;
  *out = c;
  return DLP_OK;
}

void nn_dnnl_conv_free(nn_dnnl_conv *c) {
  if (!c) return;
  for (int i = 0; i < N_VARIANTS; i++)
    variant_free(&c->var[i]);
  free(c->db_scratch);
  free(c);
}

/* ------------------------------------------------------------------------
 * Execution
 * ------------------------------------------------------------------------ */

typedef struct dt_arg {
  int kind; /* DNNL_ARG_* */
  const dnnl_memory_desc_t *md;
  void *ptr;
} dt_arg;

static int exec(dlp_err *e, nn_dnnl_train *d, dnnl_primitive_t prim,
                const dt_arg *a, int n, const char *what) {
  dnnl_memory_t mem[6] = {0};
  dnnl_exec_arg_t args[6];
  dnnl_status_t st = dnnl_success;
  int made = 0;
  for (; made < n && st == dnnl_success; made++) {
    st = dnnl_memory_create(&mem[made], a[made].md, d->eng, a[made].ptr);
    args[made] = (dnnl_exec_arg_t){a[made].kind, mem[made]};
  }
  if (st == dnnl_success) st = dnnl_primitive_execute(prim, d->strm, n, args);
  if (st == dnnl_success) st = dnnl_stream_wait(d->strm);
  for (int i = 0; i < made; i++)
    if (mem[i]) dnnl_memory_destroy(mem[i]);
  return st == dnnl_success ? DLP_OK : dt_fail(e, st, what);
}

static int run_reorder(dlp_err *e, nn_dnnl_train *d, const dt_port *p,
                       bool to_user, void *user, void *prim) {
  dt_arg a[2] = {
      {DNNL_ARG_FROM, to_user ? &p->prim : &p->user, to_user ? prim : user},
      {DNNL_ARG_TO, to_user ? &p->user : &p->prim, to_user ? user : prim}};
  return exec(e, d, p->reorder, a, 2, "reorder");
}

/* The primitive's copy of an input: user itself, or user reordered into
 * scratch buffer b. */
static int port_in(dlp_err *e, nn_dnnl_train *d, const dt_port *p, int b,
                   const float *user, void **out) {
  if (!p->reorder) {
    *out = (void *)user;
    return DLP_OK;
  }
  if (!(*out = scratch(d, b, dnnl_memory_desc_get_size(&p->prim))))
    return dlp_err_set(e, DLP_ERR_NOMEM, "dnnl train: no memory");
  return run_reorder(e, d, p, false, (void *)user, *out);
}

/* Where the primitive writes an output: user, or scratch buffer b. */
static int port_out(dlp_err *e, nn_dnnl_train *d, const dt_port *p, int b,
                    float *user, void **out) {
  *out = p->reorder ? scratch(d, b, dnnl_memory_desc_get_size(&p->prim))
                    : (void *)user;
  return *out ? DLP_OK : dlp_err_set(e, DLP_ERR_NOMEM, "dnnl train: no memory");
}

static int port_done(dlp_err *e, nn_dnnl_train *d, const dt_port *p,
                     float *user, void *prim) {
  return p->reorder ? run_reorder(e, d, p, true, user, prim) : DLP_OK;
}

static int check_shapes(dlp_err *e, const nn_dnnl_conv *c, const nn_tensor *x,
                        const nn_tensor *w, const nn_tensor *y) {
  nn_shape s;
  int rc = nn_conv2d_out_shape(e, &c->a, x, w, &s);
  if (rc != DLP_OK) return rc;
  bool ok = y->ndim == 4 && x->data && w->data && y->data;
  for (int k = 0; ok && k < 4; k++)
    ok = y->dims[k] == s.dims[k];
  return ok ? DLP_OK
            : dlp_err_set(e, DLP_ERR_ARG,
                          "dnnl conv: output or gradient shape does not match "
                          "the convolution");
}

int nn_dnnl_conv_forward(dlp_err *e, nn_dnnl_conv *c, const nn_tensor *x,
                         const nn_tensor *w, const nn_tensor *b, nn_tensor *y) {
  int rc = check_shapes(e, c, x, w, y);
  if (rc == DLP_OK && (b != NULL) != c->has_bias)
    rc = dlp_err_set(e, DLP_ERR_ARG, "dnnl conv: bias %s",
                     c->has_bias ? "missing" : "not expected");
  if (rc == DLP_OK && b && (b->ndim != 1 || b->dims[0] != w->dims[0]))
    rc = dlp_err_set(e, DLP_ERR_ARG, "dnnl conv: bias must have O values");
  if (rc != DLP_OK) return rc;
  /* set before the primitives are made too: oneDNN fixes a primitive's
   * thread count (its work split) when it creates it */
  nn_dnnl_train *d = c->d;
  int prev = nn_dnnl_threads_set(d->threads);
  dt_variant *v = NULL;
  rc = variant_get(e, c, x, w, y, &v);
  void *px = NULL, *pw = NULL, *py = NULL;
  if (rc == DLP_OK) rc = port_in(e, d, &v->f_src, BUF_X, x->data, &px);
  if (rc == DLP_OK) rc = port_in(e, d, &v->f_w, BUF_W, w->data, &pw);
  if (rc == DLP_OK) rc = port_out(e, d, &v->f_dst, BUF_Y, y->data, &py);
  if (rc == DLP_OK) {
    dt_arg a[4] = {{DNNL_ARG_SRC, &v->f_src.prim, px},
                   {DNNL_ARG_WEIGHTS, &v->f_w.prim, pw},
                   {DNNL_ARG_DST, &v->f_dst.prim, py},
                   {DNNL_ARG_BIAS, &v->bias, b ? b->data : NULL}};
    rc = exec(e, d, v->fwd, a, b ? 4 : 3, "conv forward");
  }
  if (rc == DLP_OK) rc = port_done(e, d, &v->f_dst, y->data, py);
  nn_dnnl_threads_set(prev);
  return rc;
}

static int run_bwd_data(dlp_err *e, nn_dnnl_train *d, const dt_variant *v,
                        const nn_tensor *w, const nn_tensor *dy,
                        nn_tensor *dx) {
  void *pdy = NULL, *pw = NULL, *pdx = NULL;
  int rc = port_in(e, d, &v->d_dy, BUF_Y, dy->data, &pdy);
  if (rc == DLP_OK) rc = port_in(e, d, &v->d_w, BUF_W, w->data, &pw);
  if (rc == DLP_OK) rc = port_out(e, d, &v->d_dx, BUF_X, dx->data, &pdx);
  dt_arg a[3] = {{DNNL_ARG_DIFF_DST, &v->d_dy.prim, pdy},
                 {DNNL_ARG_WEIGHTS, &v->d_w.prim, pw},
                 {DNNL_ARG_DIFF_SRC, &v->d_dx.prim, pdx}};
  if (rc == DLP_OK) rc = exec(e, d, v->bwd_d, a, 3, "conv backward data");
  if (rc == DLP_OK) rc = port_done(e, d, &v->d_dx, dx->data, pdx);
  return rc;
}

/* dy_ready: BUF_Y already holds dy in the layout w_dy wants (the backward-
 * data pass reordered it so). */
static int run_bwd_weights(dlp_err *e, nn_dnnl_train *d, const dt_variant *v,
                           const nn_tensor *x, const nn_tensor *dy,
                           bool dy_ready, nn_tensor *dw, float *db) {
  void *px = NULL, *pdy = d->buf[BUF_Y], *pdw = NULL;
  int rc = port_in(e, d, &v->w_src, BUF_X, x->data, &px);
  if (rc == DLP_OK && !dy_ready)
    rc = port_in(e, d, &v->w_dy, BUF_Y, dy->data, &pdy);
  if (rc == DLP_OK) rc = port_out(e, d, &v->w_dw, BUF_DW, dw->data, &pdw);
  dt_arg a[4] = {{DNNL_ARG_SRC, &v->w_src.prim, px},
                 {DNNL_ARG_DIFF_DST, &v->w_dy.prim, pdy},
                 {DNNL_ARG_DIFF_WEIGHTS, &v->w_dw.prim, pdw},
                 {DNNL_ARG_DIFF_BIAS, &v->bias, db}};
  if (rc == DLP_OK)
    rc = exec(e, d, v->bwd_w, a, v->has_bias ? 4 : 3, "conv backward weights");
  if (rc == DLP_OK) rc = port_done(e, d, &v->w_dw, dw->data, pdw);
  return rc;
}

static bool same_dims(const nn_tensor *a, const nn_tensor *b) {
  if (!a || !b || a->ndim != b->ndim || !a->data) return false;
  for (int k = 0; k < a->ndim; k++)
    if (a->dims[k] != b->dims[k]) return false;
  return true;
}

int nn_dnnl_conv_backward(dlp_err *e, nn_dnnl_conv *c, const nn_tensor *x,
                          const nn_tensor *w, const nn_tensor *dy,
                          nn_tensor *dx, nn_tensor *dw, nn_tensor *db) {
  int rc = check_shapes(e, c, x, w, dy);
  if (rc != DLP_OK) return rc;
  int64_t O = w->dims[0];
  if ((dx && !same_dims(dx, x)) || (dw && !same_dims(dw, w)) ||
      (db &&
       (!dw || !c->has_bias || db->ndim != 1 || db->dims[0] != O || !db->data)))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "dnnl conv backward: a gradient does not have its "
                       "value's shape (or db without dw)");
  float *pdb = db ? db->data : NULL;
  if (dw && c->has_bias && !pdb) {
    if (!c->db_scratch && !(c->db_scratch = calloc((size_t)O, sizeof(float))))
      return dlp_err_set(e, DLP_ERR_NOMEM, "dnnl train: no memory");
    pdb = c->db_scratch;
  }
  nn_dnnl_train *d = c->d;
  int prev = nn_dnnl_threads_set(d->threads);
  dt_variant *v = NULL;
  rc = variant_get(e, c, x, w, dy, &v);
  if (rc == DLP_OK && dx) rc = run_bwd_data(e, d, v, w, dy, dx);
  bool ready = rc == DLP_OK && dx && v->d_dy.reorder && v->w_dy.reorder &&
               dnnl_memory_desc_equal(&v->d_dy.prim, &v->w_dy.prim);
  if (rc == DLP_OK && dw) rc = run_bwd_weights(e, d, v, x, dy, ready, dw, pdb);
  nn_dnnl_threads_set(prev);
  return rc;
}

/* ------------------------------------------------------------------------
 * Threaded kernels of a training step
 * ------------------------------------------------------------------------ */

typedef struct par_job {
  nn_range_fn fn;
  void *user;
  int64_t n, chunk;
  size_t ranges;
} par_job;

static void par_task(size_t i, void *user, int worker) {
  (void)worker;
  const par_job *j = user;
  int64_t lo = (int64_t)i * j->chunk;
  int64_t hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
  j->fn(j->user, lo, hi);
}

/* libgomp, oneDNN's runtime here, looked up once: GOMP_parallel runs a
 * function on a team of threads. Running our kernels on the same team as
 * oneDNN's matters on a small machine: its threads spin for a while after
 * each primitive, and a second pool of threads would compete with them for
 * the cores. */
typedef struct omp_api {
  void (*parallel)(void (*fn)(void *), void *data, unsigned n, unsigned flags);
  int (*thread_num)(void);
  int (*num_threads)(void);
} omp_api;

static const omp_api *omp(void) {
  static omp_api api;
  static _Atomic int state; /* 0 unknown, 1 found, 2 missing */
  if (state == 0) {
    api.parallel = (void (*)(void (*)(void *), void *, unsigned,
                             unsigned))dlsym(RTLD_DEFAULT, "GOMP_parallel");
    api.thread_num = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_thread_num");
    api.num_threads = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_num_threads");
    state = api.parallel && api.thread_num && api.num_threads ? 1 : 2;
  }
  return state == 1 ? &api : NULL;
}

/* Each team member takes ranges tid, tid + nt, ...: a fixed split. */
static void par_omp(void *user) {
  const par_job *j = user;
  const omp_api *o = omp();
  size_t nt = (size_t)o->num_threads(), ranges = j->ranges;
  for (size_t i = (size_t)o->thread_num(); i < ranges; i += nt)
    par_task(i, (void *)j, 0);
}

void nn_par_range(int64_t n, int64_t grain, int threads, nn_range_fn fn,
                  void *user) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (threads <= 1 || n <= grain) {
    fn(user, 0, n);
    return;
  }
  /* about 4 ranges a thread, none below grain; each output has one
   * writer whichever thread runs its range */
  int64_t chunk = (n + 4 * threads - 1) / (4 * threads);
  if (chunk < grain) chunk = grain;
  par_job j = {fn, user, n, chunk, (size_t)((n + chunk - 1) / chunk)};
  const omp_api *o = omp();
  if (o)
    o->parallel(par_omp, &j, (unsigned)threads, 0);
  else
    dlp_parallel_for(j.ranges, threads, par_task, &j, NULL, NULL);
}

/* Elementwise kernels are memory-bound: ranges below this are not worth a
 * thread. */
#define EW_GRAIN 16384
/* Per-channel batch-norm work below this many elements stays on one
 * thread. */
#define BN_GRAIN 32768

/* 4-float vectors (GCC vector extensions, SSE on any x86-64): the build's
 * -O2 does not vectorize loops that need alias checks, and these kernels
 * often run in place. Bitwise selects give exactly the reference's values,
 * NaN and -0 included. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f ld4(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void st4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

static inline v4f splat(float f) { return (v4f){f, f, f, f}; }

/* m ? a : b with m all-ones or all-zeros per lane */
static inline v4f sel(v4i m, v4f a, v4f b) {
  return (v4f)(((v4i)a & m) | ((v4i)b & ~m));
}

/* Sum of p[0..n) in 16 float lanes, the lanes then added in double. */
static double lane_sum(const float *p, int64_t n) {
  v4f a[4] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 4; k++)
      a[k] += ld4(p + i + 4 * k);
  double s = 0;
  for (int k = 0; k < 16; k++)
    s += a[k / 4][k % 4];
  for (; i < n; i++)
    s += p[i];
  return s;
}

/* Sum of (p - mu)^2, the same way. */
static double lane_sq(const float *p, int64_t n, float mu) {
  v4f a[4] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 4; k++) {
      v4f d = ld4(p + i + 4 * k) - splat(mu);
      a[k] += d * d;
    }
  double s = 0;
  for (int k = 0; k < 16; k++)
    s += a[k / 4][k % 4];
  for (; i < n; i++)
    s += (double)(p[i] - mu) * (p[i] - mu);
  return s;
}

/* Sums of g and of g * (x - mu) * inv. */
static void lane_dot(const float *g, const float *x, int64_t n, float mu,
                     float inv, double *sg, double *sgx) {
  v4f a[4] = {0}, b[4] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 4; k++) {
      v4f gv = ld4(g + i + 4 * k);
      a[k] += gv;
      b[k] += gv * ((ld4(x + i + 4 * k) - splat(mu)) * splat(inv));
    }
  double s = 0, t = 0;
  for (int k = 0; k < 16; k++) {
    s += a[k / 4][k % 4];
    t += b[k / 4][k % 4];
  }
  for (; i < n; i++) {
    s += g[i];
    t += g[i] * ((x[i] - mu) * inv);
  }
  *sg += s;
  *sgx += t;
}

typedef struct bn_job {
  float eps, momentum;
  const float *x, *gamma, *beta, *dy, *mean, *invstd;
  float *rm, *rv, *y, *dx, *dgamma, *dbeta, *save_mean, *save_invstd;
  int64_t n, c, inner;
} bn_job;

static void bn_train_range(void *user, int64_t lo, int64_t hi) {
  const bn_job *j = user;
  int64_t m = j->n * j->inner;
  for (int64_t ch = lo; ch < hi; ch++) {
    double sum = 0, sq = 0;
    for (int64_t b = 0; b < j->n; b++)
      sum += lane_sum(j->x + (b * j->c + ch) * j->inner, j->inner);
    double mean = sum / (double)m;
    float mu = (float)mean;
    for (int64_t b = 0; b < j->n; b++)
      sq += lane_sq(j->x + (b * j->c + ch) * j->inner, j->inner, mu);
    double var = sq / (double)m;
    float inv = (float)(1.0 / sqrt(var + j->eps));
    float g = j->gamma[ch] * inv, bt = j->beta[ch];
    for (int64_t b = 0; b < j->n; b++) {
      const float *p = j->x + (b * j->c + ch) * j->inner;
      float *q = j->y + (b * j->c + ch) * j->inner;
      int64_t i = 0;
      for (; i + 4 <= j->inner; i += 4)
        st4(q + i, (ld4(p + i) - splat(mu)) * splat(g) + splat(bt));
      for (; i < j->inner; i++)
        q[i] = (p[i] - mu) * g + bt;
    }
    j->save_mean[ch] = mu;
    j->save_invstd[ch] = inv;
    double mo = j->momentum;
    if (j->rm) j->rm[ch] = (float)((1 - mo) * j->rm[ch] + mo * mean);
    if (j->rv) /* PyTorch keeps the unbiased variance */
      j->rv[ch] = (float)((1 - mo) * j->rv[ch] +
                          mo * var * (double)m / (double)(m - 1));
  }
}

static void bn_back_range(void *user, int64_t lo, int64_t hi) {
  const bn_job *j = user;
  double m = (double)(j->n * j->inner);
  for (int64_t ch = lo; ch < hi; ch++) {
    float mu = j->mean[ch], inv = j->invstd[ch];
    double sdy = 0, sdyxh = 0;
    for (int64_t b = 0; b < j->n; b++) {
      int64_t base = (b * j->c + ch) * j->inner;
      lane_dot(j->dy + base, j->x + base, j->inner, mu, inv, &sdy, &sdyxh);
    }
    if (j->dgamma) j->dgamma[ch] = (float)sdyxh;
    if (j->dbeta) j->dbeta[ch] = (float)sdy;
    if (!j->dx) continue;
    float k = j->gamma[ch] * inv, mdy = (float)(sdy / m);
    float mdx = (float)(sdyxh / m);
    for (int64_t b = 0; b < j->n; b++) {
      int64_t base = (b * j->c + ch) * j->inner;
      const float *x = j->x + base, *g = j->dy + base;
      float *d = j->dx + base;
      int64_t i = 0;
      for (; i + 4 <= j->inner; i += 4)
        st4(d + i,
            splat(k) * (ld4(g + i) - splat(mdy) -
                        ((ld4(x + i) - splat(mu)) * splat(inv)) * splat(mdx)));
      for (; i < j->inner; i++)
        d[i] = k * (g[i] - mdy - ((x[i] - mu) * inv) * mdx);
    }
  }
}

/* x (N, C, ...) and per-channel tensors of C values (those not NULL). */
static int bn_dims(dlp_err *e, const nn_tensor *x, const nn_tensor *const *pc,
                   int npc, bn_job *j) {
  if (!x || !x->data || x->ndim < 2)
    return dlp_err_set(e, DLP_ERR_ARG, "fast batchnorm: x must be (N, C, ...)");
  j->n = x->dims[0];
  j->c = x->dims[1];
  j->inner = nn_tensor_numel(x) / (j->n * j->c > 0 ? j->n * j->c : 1);
  for (int k = 0; k < npc; k++)
    if (pc[k] && (!pc[k]->data || nn_tensor_numel(pc[k]) != j->c))
      return dlp_err_set(e, DLP_ERR_ARG,
                         "fast batchnorm: a per-channel tensor does not have "
                         "%lld values",
                         (long long)j->c);
  return DLP_OK;
}

static int64_t bn_grain(const bn_job *j) {
  int64_t per = j->n * j->inner;
  return per >= BN_GRAIN ? 1 : (BN_GRAIN + per - 1) / (per > 0 ? per : 1);
}

int nn_fast_batchnorm_train(dlp_err *e, float eps, float momentum,
                            const nn_tensor *x, const nn_tensor *gamma,
                            const nn_tensor *beta, nn_tensor *running_mean,
                            nn_tensor *running_var, nn_tensor *y,
                            float *save_mean, float *save_invstd, int threads) {
  bn_job j = {.eps = eps, .momentum = momentum};
  const nn_tensor *pc[] = {gamma, beta, running_mean, running_var};
  int rc = bn_dims(e, x, pc, 4, &j);
  if (rc != DLP_OK) return rc;
  if (!gamma || !beta || !y || !y->data || !save_mean || !save_invstd ||
      nn_tensor_numel(y) != nn_tensor_numel(x) || !(eps > 0) ||
      !(momentum >= 0 && momentum <= 1))
    return dlp_err_set(e, DLP_ERR_ARG, "fast batchnorm: bad arguments");
  j.x = x->data;
  j.gamma = gamma->data;
  j.beta = beta->data;
  j.rm = running_mean ? running_mean->data : NULL;
  j.rv = running_var ? running_var->data : NULL;
  j.y = y->data;
  j.save_mean = save_mean;
  j.save_invstd = save_invstd;
  nn_par_range(j.c, bn_grain(&j), threads, bn_train_range, &j);
  return DLP_OK;
}

int nn_fast_batchnorm_backward(dlp_err *e, const nn_tensor *x,
                               const nn_tensor *gamma, const float *save_mean,
                               const float *save_invstd, const nn_tensor *dy,
                               nn_tensor *dx, nn_tensor *dgamma,
                               nn_tensor *dbeta, int threads) {
  bn_job j = {0};
  const nn_tensor *pc[] = {gamma, dgamma, dbeta};
  int rc = bn_dims(e, x, pc, 3, &j);
  if (rc != DLP_OK) return rc;
  int64_t n = nn_tensor_numel(x);
  if (!gamma || !save_mean || !save_invstd || !dy || !dy->data ||
      nn_tensor_numel(dy) != n ||
      (dx && (!dx->data || nn_tensor_numel(dx) != n)))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fast batchnorm backward: bad "
                       "arguments");
  j.x = x->data;
  j.gamma = gamma->data;
  j.mean = save_mean;
  j.invstd = save_invstd;
  j.dy = dy->data;
  j.dx = dx ? dx->data : NULL;
  j.dgamma = dgamma ? dgamma->data : NULL;
  j.dbeta = dbeta ? dbeta->data : NULL;
  nn_par_range(j.c, bn_grain(&j), threads, bn_back_range, &j);
  return DLP_OK;
}

/* An elementwise call on a range: 1-D views of its tensors. */
typedef struct ew_job {
  int kind; /* EW_* */
  nn_act act;
  float alpha, lo, hi;
  const float *x, *y, *dy;
  float *out;
  _Atomic int rc;
} ew_job;

enum { EW_ACT, EW_ACT_BACK, EW_CLIP, EW_CLIP_BACK };

static nn_tensor view1(const float *p, int64_t lo, int64_t hi) {
  nn_tensor t = {.ndim = 1, .dims = {hi - lo}, .is_view = true};
  t.data = p ? (float *)p + lo : NULL;
  return t;
}

/* nn_act_scalar's relu / relu6 and act_slope's, 4 at a time. */
static inline v4f relu_fwd4(v4f x, bool six) {
  if (!six) return sel(x > splat(0), x, splat(0));
  return sel(x < splat(0), splat(0), sel(x > splat(6), splat(6), x));
}

static inline v4f relu_slope4(v4f x, bool six) {
  v4i m = six ? (x > splat(0)) & (x < splat(6)) : x > splat(0);
  return sel(m, splat(1), splat(0));
}

/* relu and relu6 and their gradients (the reference goes through a
 * per-element switch). */
static bool ew_relu(const ew_job *j, int64_t lo, int64_t hi) {
  bool six = j->act == NN_ACT_RELU6;
  if (j->act != NN_ACT_RELU && !six) return false;
  const float *x = j->x, *dy = j->dy;
  float *o = j->out; /* may be dy: each element is read, then written */
  bool fwd = j->kind == EW_ACT;
  int64_t i = lo;
  for (; i + 4 <= hi; i += 4) {
    v4f v = ld4(x + i);
    st4(o + i, fwd ? relu_fwd4(v, six) : ld4(dy + i) * relu_slope4(v, six));
  }
  for (; i < hi; i++) {
    float v = x[i];
    if (fwd)
      o[i] = six ? (v < 0 ? 0.0f : (v > 6 ? 6.0f : v)) : (v > 0 ? v : 0.0f);
    else
      o[i] = dy[i] * (v > 0 && (!six || v < 6) ? 1.0f : 0.0f);
  }
  return true;
}

static void ew_range(void *user, int64_t lo, int64_t hi) {
  ew_job *j = user;
  if ((j->kind == EW_ACT || j->kind == EW_ACT_BACK) && ew_relu(j, lo, hi))
    return;
  if (j->kind == EW_CLIP_BACK) { /* as nn_clip_backward */
    const float *x = j->x, *dy = j->dy, l = j->lo, h = j->hi;
    float *o = j->out;
    int64_t i = lo;
    for (; i + 4 <= hi; i += 4) {
      v4f v = ld4(x + i);
      st4(o + i, sel((v > splat(l)) & (v < splat(h)), ld4(dy + i), splat(0)));
    }
    for (; i < hi; i++)
      o[i] = x[i] > l && x[i] < h ? dy[i] : 0.0f;
    return;
  }
  nn_tensor x = view1(j->x, lo, hi), y = view1(j->y, lo, hi);
  nn_tensor dy = view1(j->dy, lo, hi), out = view1(j->out, lo, hi);
  int rc = DLP_OK;
  switch (j->kind) {
  case EW_ACT:
    rc = nn_act_apply(NULL, j->act, j->alpha, &x, &out);
    break;
  case EW_ACT_BACK:
    rc = nn_act_backward(NULL, j->act, j->alpha, &x, j->y ? &y : NULL, &dy,
                         &out);
    break;
  case EW_CLIP:
    rc = nn_clip(NULL, j->lo, j->hi, &x, &out);
    break;
  default:
    rc = nn_clip_backward(NULL, j->lo, j->hi, &x, &dy, &out);
  }
  if (rc != DLP_OK) j->rc = rc;
}

static bool same_numel(const nn_tensor *a, const nn_tensor *b) {
  return !b || (b->data && nn_tensor_numel(a) == nn_tensor_numel(b));
}

static int ew_run(dlp_err *e, ew_job *j, const nn_tensor *x, const nn_tensor *y,
                  const nn_tensor *dy, nn_tensor *out, int threads) {
  if (!x || !x->data || !out || !same_numel(x, y) || !same_numel(x, dy) ||
      !same_numel(x, out))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fast elementwise: tensors missing or of different "
                       "sizes");
  j->x = x->data;
  j->y = y ? y->data : NULL;
  j->dy = dy ? dy->data : NULL;
  j->out = out->data;
  j->rc = DLP_OK;
  nn_par_range(nn_tensor_numel(x), EW_GRAIN, threads, ew_range, j);
  return j->rc == DLP_OK ? DLP_OK
                         : dlp_err_set(e, j->rc,
                                       "fast elementwise: bad "
                                       "arguments");
}

int nn_fast_act(dlp_err *e, nn_act act, float alpha, const nn_tensor *x,
                nn_tensor *y, int threads) {
  ew_job j = {.kind = EW_ACT, .act = act, .alpha = alpha};
  return ew_run(e, &j, x, NULL, NULL, y, threads);
}

int nn_fast_act_backward(dlp_err *e, nn_act act, float alpha,
                         const nn_tensor *x, const nn_tensor *y,
                         const nn_tensor *dy, nn_tensor *dx, int threads) {
  ew_job j = {.kind = EW_ACT_BACK, .act = act, .alpha = alpha};
  if (!dy) return dlp_err_set(e, DLP_ERR_ARG, "fast act backward: no dy");
  return ew_run(e, &j, x, y, dy, dx, threads);
}

int nn_fast_clip(dlp_err *e, float lo, float hi, const nn_tensor *x,
                 nn_tensor *y, int threads) {
  ew_job j = {.kind = EW_CLIP, .lo = lo, .hi = hi};
  return ew_run(e, &j, x, NULL, NULL, y, threads);
}

int nn_fast_clip_backward(dlp_err *e, float lo, float hi, const nn_tensor *x,
                          const nn_tensor *dy, nn_tensor *dx, int threads) {
  ew_job j = {.kind = EW_CLIP_BACK, .lo = lo, .hi = hi};
  if (!dy || !(lo <= hi))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fast clip backward: no dy, or min "
                       "above max");
  return ew_run(e, &j, x, NULL, dy, dx, threads);
}

typedef struct acc_job {
  float *dst;
  const float *src;
  bool add;
} acc_job;

static void acc_range(void *user, int64_t lo, int64_t hi) {
  const acc_job *j = user;
  if (!j->add) {
    memcpy(j->dst + lo, j->src + lo, (size_t)(hi - lo) * sizeof(float));
    return;
  }
  for (int64_t i = lo; i < hi; i++)
    j->dst[i] += j->src[i];
}

void nn_fast_accumulate(float *dst, const float *src, int64_t n, bool add,
                        int threads) {
  acc_job j = {dst, src, add};
  nn_par_range(n, EW_GRAIN, threads, acc_range, &j);
}

/* Constant padding of the two spatial axes of (N, C, H, W), one plane a
 * task: the reference pad walks every output element through index
 * arithmetic; here rows are copies. */
typedef struct pad_job {
  const float *src;
  float *dst;
  int64_t h, w, top, left, oh, ow;
  float value;
  bool back;
} pad_job;

static void pad_range(void *user, int64_t lo, int64_t hi) {
  const pad_job *j = user;
  for (int64_t p = lo; p < hi; p++) {
    const float *s = j->src + p * (j->back ? j->oh * j->ow : j->h * j->w);
    float *d = j->dst + p * (j->back ? j->h * j->w : j->oh * j->ow);
    for (int64_t r = 0; r < j->oh && !j->back; r++) {
      float *row = d + r * j->ow;
      int64_t ir = r - j->top;
      if (ir < 0 || ir >= j->h) {
        for (int64_t c = 0; c < j->ow; c++)
          row[c] = j->value;
        continue;
      }
      for (int64_t c = 0; c < j->ow; c++)
        row[c] = j->value;
      memcpy(row + j->left, s + ir * j->w, (size_t)j->w * sizeof(float));
    }
    for (int64_t r = 0; r < j->h && j->back; r++)
      memcpy(d + r * j->w, s + (r + j->top) * j->ow + j->left,
             (size_t)j->w * sizeof(float));
  }
}

/* x (N, C, H, W) small, y (N, C, OH, OW) padded; back: dx from dy. */
static int pad_run(dlp_err *e, const nn_pad_attr *a, const nn_tensor *x,
                   const nn_tensor *y, bool back, int threads) {
  const int64_t *p = a->pads;
  if (x->ndim != 4 || y->ndim != 4 || a->mode != NN_PAD_CONSTANT || p[0] ||
      p[1] || p[4] || p[5] || !x->data || !y->data)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "fast pad: only spatial constant padding of 4-D");
  pad_job j = {.h = x->dims[2],
               .w = x->dims[3],
               .top = p[2],
               .left = p[3],
               .value = a->value,
               .back = back};
  j.oh = j.h + p[2] + p[6];
  j.ow = j.w + p[3] + p[7];
  if (y->dims[0] != x->dims[0] || y->dims[1] != x->dims[1] ||
      y->dims[2] != j.oh || y->dims[3] != j.ow)
    return dlp_err_set(e, DLP_ERR_ARG, "fast pad: shapes do not match");
  j.src = back ? y->data : x->data;
  j.dst = back ? x->data : y->data;
  int64_t planes = x->dims[0] * x->dims[1];
  int64_t grain = EW_GRAIN / (j.oh * j.ow > 0 ? j.oh * j.ow : 1) + 1;
  nn_par_range(planes, grain, threads, pad_range, &j);
  return DLP_OK;
}

int nn_fast_pad(dlp_err *e, const nn_pad_attr *a, const nn_tensor *x,
                nn_tensor *y, int threads) {
  return pad_run(e, a, x, y, false, threads);
}

int nn_fast_pad_backward(dlp_err *e, const nn_pad_attr *a, const nn_tensor *dy,
                         nn_tensor *dx, int threads) {
  return pad_run(e, a, dx, dy, true, threads);
}
