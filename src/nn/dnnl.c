/* dnnl.c - the oneDNN backend: a finalized graph becomes a list of oneDNN
 * primitives that keep the blocked layouts they choose between layers
 * (reorders only where a consumer needs another layout), weights reordered
 * once at plan time, bias/activation/residual-add fused as post-ops, buffers
 * reused once dead; ops oneDNN lacks run on the reference kernels. */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include "dnnl_backend.h"

#include <dlfcn.h>
#include <dnnl.h>
#include <dnnl_debug.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DN_ALIGN 64
#define DN_KEEP INT_MAX /* last_use of values the caller reads */

enum { SL_BLOCK = 1, SL_CONST, SL_INPUT, SL_OUTPUT, SL_SCRATCH };

/* A memory object: a layout over some storage. Several slots may share a
 * block (views, and blocks reused once their previous slots are dead). */
typedef struct dn_slot {
  dnnl_memory_desc_t md;
  int kind;     /* SL_* */
  int idx;      /* block id, or input/output index */
  void *ptr;    /* SL_CONST */
  int last_use; /* node index after which the slot is dead */
  int nvals;    /* graph values bound to it */
  bool released;
  dnnl_memory_t mem;
} dn_slot;

typedef struct dn_block {
  size_t size, off;
  int refs;
} dn_block;

typedef struct dn_arg {
  int arg, slot;
} dn_arg;

typedef struct dn_step {
  dnnl_primitive_t prim; /* NULL: a reference step */
  dn_arg args[16];
  int nargs;
  dnnl_exec_arg_t exec[16];
  int node; /* reference step: the node, its input slots and output slot */
  int *ins;
  int out;
} dn_step;

typedef struct dn_state {
  const nn_graph *g;
  int64_t batch;
  int threads;
  bool bf16;
  bool wino; /* Winograd for the 3x3 stride-1 convolutions (see wino_graph) */
  bool blocked; /* conv activations in nChw16c (see env_on at setup) */
  bool fuse_dw; /* 1x1 + depthwise pairs in one primitive (see dw_partner) */
  dnnl_data_type_t act_dt; /* data type of conv/dense activations */
  dnnl_engine_t eng;
  dnnl_stream_t strm;
  dnnl_primitive_attr_t attr;      /* scratchpad user */
  dnnl_primitive_attr_t attr_math; /* + fpmath for conv / inner product */
  dn_slot *slots;
  int n_slots, cap_slots;
  dn_block *blocks;
  int n_blocks, cap_blocks;
  dn_step *steps;
  int n_steps, cap_steps;
  int *val_slot;  /* per value: its slot, -1 until computed */
  int *last_use;  /* per value: last node reading it (DN_KEEP: an output) */
  int *uses_left; /* per value: reads not yet planned */
  int *consumer;  /* per value: a node reading it */
  bool *fused;    /* per node: computed by an earlier node's primitive */
  void **owned;   /* reordered weights */
  int n_owned, cap_owned;
  size_t owned_bytes, scratch_size, arena_size;
  void *arena, *scratch;
  int n_fused_dw; /* 1x1 + depthwise pairs run as one primitive */
  dlp_err *e; /* while planning */
  int cur;    /* node being planned */
} dn_state;

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static bool grow(void **p, int *cap, int need, size_t elem) {
  if (need <= *cap) return true;
  int nc = *cap ? *cap * 2 : 16;
  while (nc < need)
    nc *= 2;
  void *q = dlp_realloc_array(*p, (size_t)nc, elem);
  if (!q) return false;
  memset((char *)q + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
  *p = q;
  *cap = nc;
  return true;
}

static const char *node_name(const dn_state *s) {
  if (s->cur < 0 || s->cur >= s->g->n_nodes) return "graph outputs";
  const char *n = s->g->nodes[s->cur].name;
  return n ? n : "?";
}

static int dn_nomem(dn_state *s) {
  return dlp_err_set(s->e, DLP_ERR_NOMEM, "dnnl backend: out of memory at %s",
                     node_name(s));
}

static int dn_fail(dn_state *s, dnnl_status_t st, const char *what) {
  int code = st == dnnl_out_of_memory ? DLP_ERR_NOMEM : DLP_ERR_INTERNAL;
  return dlp_err_set(s->e, code, "dnnl backend: node '%s': %s failed: %s",
                     node_name(s), what, dnnl_status2str(st));
}

/* OpenMP is oneDNN's CPU runtime here (DNNL_CPU_RUNTIME_OMP); its thread
 * count is a per-thread setting, found through dlsym because libdlp does not
 * link libgomp itself. */
int nn_dnnl_threads_set(int n) {
  if (n <= 0) return 0;
  int (*get)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
  void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
  if (!get || !set) return 0;
  int prev = get();
  set(n);
  return prev;
}

static nn_shape vshape(const dn_state *s, int v) {
  return nn_graph_value_shape(s->g, v, s->batch);
}

static bool same_shape(nn_shape a, nn_shape b) {
  if (a.ndim != b.ndim) return false;
  for (int d = 0; d < a.ndim; d++)
    if (a.dims[d] != b.dims[d]) return false;
  return true;
}

/* Row-major layout of shape sh (a scalar as one element). */
static void md_plain(dnnl_memory_desc_t *md, nn_shape sh, dnnl_data_type_t dt) {
  dnnl_dims_t dims, strides;
  int nd = sh.ndim > 0 ? sh.ndim : 1;
  if (sh.ndim == 0) sh.dims[0] = 1;
  dnnl_dim_t st = 1;
  for (int d = nd - 1; d >= 0; d--) {
    dims[d] = sh.dims[d];
    strides[d] = st;
    st *= sh.dims[d] > 0 ? sh.dims[d] : 1;
  }
  dnnl_memory_desc_init_by_strides(md, nd, dims, dt, strides);
}

static void md_tag(dnnl_memory_desc_t *md, int nd, const dnnl_dim_t *dims,
                   dnnl_data_type_t dt, dnnl_format_tag_t tag) {
  dnnl_dims_t d;
  for (int k = 0; k < nd; k++)
    d[k] = dims[k];
  dnnl_memory_desc_init_by_tag(md, nd, d, dt, tag);
}

static void md_any(dnnl_memory_desc_t *md, int nd, const dnnl_dim_t *dims,
                   dnnl_data_type_t dt) {
  md_tag(md, nd, dims, dt, dnnl_format_tag_any);
}

static bool md_eq(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b) {
  return dnnl_memory_desc_equal(a, b) != 0;
}

static bool is_output(const dn_state *s, int v) {
  return s->last_use[v] == DN_KEEP;
}

/* ------------------------------------------------------------------------
 * Slots, blocks and steps
 * ------------------------------------------------------------------------ */

static int slot_new(dn_state *s, const dnnl_memory_desc_t *md, int kind,
                    int idx, void *ptr) {
  if (!grow((void **)&s->slots, &s->cap_slots, s->n_slots + 1, sizeof(dn_slot)))
    return -1;
  dn_slot *sl = &s->slots[s->n_slots];
  memset(sl, 0, sizeof *sl);
  sl->md = *md;
  sl->kind = kind;
  sl->idx = idx;
  sl->ptr = ptr;
  sl->last_use = s->cur;
  return s->n_slots++;
}

/* A new slot with its own (possibly recycled) block: the free block that
 * fits best, else the largest free one grown, else a new one. */
static int slot_alloc(dn_state *s, const dnnl_memory_desc_t *md) {
  size_t need = dnnl_memory_desc_get_size(md);
  need = (need + DN_ALIGN - 1) / DN_ALIGN * DN_ALIGN;
  int best = -1, largest = -1;
  for (int b = 0; b < s->n_blocks; b++) {
    dn_block *bl = &s->blocks[b];
    if (bl->refs) continue;
    if (bl->size >= need && (best < 0 || bl->size < s->blocks[best].size))
      best = b;
    if (largest < 0 || bl->size > s->blocks[largest].size) largest = b;
  }
  if (best < 0 && largest >= 0) {
    best = largest;
    s->blocks[best].size = need;
  }
  if (best < 0) {
    if (!grow((void **)&s->blocks, &s->cap_blocks, s->n_blocks + 1,
              sizeof(dn_block)))
      return -1;
    best = s->n_blocks++;
    s->blocks[best].size = need;
  }
  int id = slot_new(s, md, SL_BLOCK, best, NULL);
  if (id >= 0) s->blocks[best].refs++;
  return id;
}

/* A view of slot `of`'s storage with another descriptor. */
static int slot_alias(dn_state *s, int of, const dnnl_memory_desc_t *md) {
  dn_slot o = s->slots[of];
  int id = slot_new(s, md, o.kind, o.idx, o.ptr);
  if (id >= 0 && o.kind == SL_BLOCK) s->blocks[o.idx].refs++;
  return id;
}

static void bind(dn_state *s, int v, int slot) {
  s->val_slot[v] = slot;
  dn_slot *sl = &s->slots[slot];
  sl->nvals++;
  if (s->last_use[v] > sl->last_use) sl->last_use = s->last_use[v];
}

static void release_dead(dn_state *s, int node) {
  for (int k = 0; k < s->n_slots; k++) {
    dn_slot *sl = &s->slots[k];
    if (sl->released || sl->last_use > node) continue;
    sl->released = true;
    if (sl->kind == SL_BLOCK) s->blocks[sl->idx].refs--;
  }
}

static dn_step *step_new(dn_state *s) {
  if (!grow((void **)&s->steps, &s->cap_steps, s->n_steps + 1, sizeof(dn_step)))
    return NULL;
  dn_step *st = &s->steps[s->n_steps++];
  memset(st, 0, sizeof *st);
  st->node = -1;
  st->out = -1;
  return st;
}

/* Creates the primitive of pd (which it destroys) as a new step; args are
 * (DNNL_ARG_*, slot) pairs; a scratchpad slot is added when needed. */
static int emit_prim(dn_state *s, dnnl_primitive_desc_t pd, const char *what,
                     int nargs, const dn_arg *args) {
  dnnl_primitive_t prim = NULL;
  dnnl_status_t st = dnnl_primitive_create(&prim, pd);
  const dnnl_memory_desc_t *smd =
      dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  dnnl_memory_desc_t scratch_md;
  size_t ssize = smd ? dnnl_memory_desc_get_size(smd) : 0;
  if (ssize) scratch_md = *smd;
  dnnl_primitive_desc_destroy(pd);
  if (st != dnnl_success) return dn_fail(s, st, what);
  dn_step *stp = step_new(s);
  if (!stp) {
    dnnl_primitive_destroy(prim);
    return dn_nomem(s);
  }
  stp->prim = prim;
  for (int k = 0; k < nargs; k++)
    stp->args[stp->nargs++] = args[k];
  if (ssize) {
    int sl = slot_new(s, &scratch_md, SL_SCRATCH, 0, NULL);
    if (sl < 0) return dn_nomem(s);
    stp->args[stp->nargs++] = (dn_arg){DNNL_ARG_SCRATCHPAD, sl};
    if (ssize > s->scratch_size) s->scratch_size = ssize;
  }
  return DLP_OK;
}

static int emit_reorder(dn_state *s, int from, int to) {
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st = dnnl_reorder_primitive_desc_create(
      &pd, &s->slots[from].md, s->eng, &s->slots[to].md, s->eng, s->attr);
  if (st != dnnl_success) return dn_fail(s, st, "reorder");
  dn_arg a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  return emit_prim(s, pd, "reorder", 2, a);
}

/* Reorders the constant data `src` (layout user_md) into a new buffer of
 * layout want, now. */
static int const_reorder(dn_state *s, const dnnl_memory_desc_t *user_md,
                         void *src, const dnnl_memory_desc_t *want,
                         void **out) {
  size_t bytes = dnnl_memory_desc_get_size(want);
  void *buf =
      aligned_alloc(DN_ALIGN, (bytes + DN_ALIGN - 1) / DN_ALIGN * DN_ALIGN);
  if (!buf || !grow((void **)&s->owned, &s->cap_owned, s->n_owned + 1,
                    sizeof(void *))) {
    free(buf);
    return dn_nomem(s);
  }
  s->owned[s->n_owned++] = buf;
  s->owned_bytes += bytes;
  memset(buf, 0, bytes); /* blocked layouts pad with zeros */
  dnnl_memory_t m_src = NULL, m_dst = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t prim = NULL;
  dnnl_status_t st = dnnl_memory_create(&m_src, user_md, s->eng, src);
  if (st == dnnl_success) st = dnnl_memory_create(&m_dst, want, s->eng, buf);
  if (st == dnnl_success)
    st = dnnl_reorder_primitive_desc_create(&pd, user_md, s->eng, want, s->eng,
                                            NULL);
  if (st == dnnl_success) st = dnnl_primitive_create(&prim, pd);
  if (st == dnnl_success) {
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, m_src}, {DNNL_ARG_TO, m_dst}};
    st = dnnl_primitive_execute(prim, s->strm, 2, a);
    if (st == dnnl_success) st = dnnl_stream_wait(s->strm);
  }
  if (prim) dnnl_primitive_destroy(prim);
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (m_src) dnnl_memory_destroy(m_src);
  if (m_dst) dnnl_memory_destroy(m_dst);
  if (st != dnnl_success) return dn_fail(s, st, "weight reorder");
  *out = buf;
  return DLP_OK;
}

/* The slot of value v as it is now (constants and inputs get one on first
 * use: plain float32). -1 on out of memory. */
static int value_slot(dn_state *s, int v) {
  if (s->val_slot[v] >= 0) return s->val_slot[v];
  const nn_value *val = &s->g->values[v];
  dnnl_memory_desc_t md;
  md_plain(&md, vshape(s, v), dnnl_f32);
  int sl = -1;
  if (val->kind == NN_VALUE_CONST)
    sl = slot_new(s, &md, SL_CONST, 0, val->data);
  else if (val->kind == NN_VALUE_INPUT) {
    for (int k = 0; k < s->g->n_inputs; k++)
      if (s->g->inputs[k] == v) sl = slot_new(s, &md, SL_INPUT, k, NULL);
  }
  if (sl >= 0) bind(s, v, sl);
  return sl;
}

/* Slot holding v in layout want: v's own when it matches, else a copy made
 * by a reorder (at plan time for constants, as a step otherwise). */
static int value_as(dn_state *s, int v, const dnnl_memory_desc_t *want,
                    int *out) {
  int sl = value_slot(s, v);
  if (sl < 0) return dn_nomem(s);
  if (md_eq(&s->slots[sl].md, want)) {
    *out = sl;
    return DLP_OK;
  }
  if (s->slots[sl].kind == SL_CONST) {
    void *buf = NULL;
    dnnl_memory_desc_t user = s->slots[sl].md;
    int rc = const_reorder(s, &user, s->slots[sl].ptr, want, &buf);
    if (rc != DLP_OK) return rc;
    *out = slot_new(s, want, SL_CONST, 0, buf);
    return *out < 0 ? dn_nomem(s) : DLP_OK;
  }
  int t = slot_alloc(s, want);
  if (t < 0) return dn_nomem(s);
  *out = t;
  return emit_reorder(s, sl, t);
}

/* Constant v seen with logical layout user (e.g. OIHW as goihw, (in, out)
 * as (out, in) by strides) reordered into want. */
static int const_as(dn_state *s, int v, const dnnl_memory_desc_t *user,
                    const dnnl_memory_desc_t *want, int *out) {
  float *data = s->g->values[v].data;
  void *p = data;
  if (!md_eq(user, want)) {
    int rc = const_reorder(s, user, data, want, &p);
    if (rc != DLP_OK) return rc;
  }
  *out = slot_new(s, want, SL_CONST, 0, p);
  return *out < 0 ? dn_nomem(s) : DLP_OK;
}

/* True when v's storage may be overwritten by the node now planned: nothing
 * reads v after it and no other value shares the slot. */
static bool can_overwrite(const dn_state *s, int v) {
  int sl = s->val_slot[v];
  if (sl < 0 || is_output(s, v) || s->uses_left[v] != 1) return false;
  const dn_slot *o = &s->slots[sl];
  return o->kind == SL_BLOCK && o->nvals == 1 && s->blocks[o->idx].refs == 1;
}

static void uses_done(dn_state *s, const nn_node *n) {
  for (int k = 0; k < n->n_in; k++)
    s->uses_left[n->in[k]]--;
}

/* ------------------------------------------------------------------------
 * Activations as oneDNN eltwise algorithms
 * ------------------------------------------------------------------------ */

typedef struct dn_elt {
  dnnl_alg_kind_t alg;
  float alpha, beta;
} dn_elt;

/* Up to two eltwise operations computing act; returns their number, 0 for
 * none, -1 when oneDNN has no equivalent. */
static int act_elts(nn_act act, float alpha, dn_elt out[2]) {
  switch (act) {
  case NN_ACT_NONE:
    return 0;
  case NN_ACT_RELU:
    out[0] = (dn_elt){dnnl_eltwise_relu, 0, 0};
    return 1;
  case NN_ACT_LEAKY_RELU:
    out[0] = (dn_elt){dnnl_eltwise_relu, alpha, 0};
    return 1;
  case NN_ACT_RELU6:
    out[0] = (dn_elt){dnnl_eltwise_clip, 0, 6};
    return 1;
  case NN_ACT_SIGMOID:
    out[0] = (dn_elt){dnnl_eltwise_logistic, 0, 0};
    return 1;
  case NN_ACT_TANH:
    out[0] = (dn_elt){dnnl_eltwise_tanh, 0, 0};
    return 1;
  case NN_ACT_SWISH:
    out[0] = (dn_elt){dnnl_eltwise_swish, 1, 0};
    return 1;
  case NN_ACT_HARD_SIGMOID:
    out[0] = (dn_elt){dnnl_eltwise_linear, 0.2f, 0.5f};
    out[1] = (dn_elt){dnnl_eltwise_clip, 0, 1};
    return 2;
  default:
    return -1;
  }
}

/* The eltwise form of an ACT or CLIP node, -1 if none. */
static int node_elts(const nn_node *n, dn_elt out[2]) {
  if (n->op == NN_OP_ACT) return act_elts(n->attr.act, n->attr.alpha, out);
  if (n->op == NN_OP_CLIP) {
    out[0] = (dn_elt){dnnl_eltwise_clip, n->attr.clip_lo, n->attr.clip_hi};
    return 1;
  }
  return -1;
}

static bool append_elts(dnnl_post_ops_t po, const dn_elt *el, int n) {
  for (int k = 0; k < n; k++)
    if (dnnl_post_ops_append_eltwise(po, 1.0f, el[k].alg, el[k].alpha,
                                     el[k].beta) != dnnl_success)
      return false;
  return true;
}

/* ------------------------------------------------------------------------
 * Convolution and dense, with fused post-ops
 * ------------------------------------------------------------------------ */

/* What follows a conv/dense output that its primitive can absorb: a
 * residual Add (as a sum post-op: the other operand is copied or already
 * sits in the destination) and an activation after that Add. */
typedef struct dn_fuse {
  int add_node, other, act_node;
  dn_elt act[2];
  int n_act;
} dn_fuse;

static void find_fusion(dn_state *s, int i, dn_fuse *f) {
  const nn_graph *g = s->g;
  int y = g->nodes[i].out;
  f->add_node = f->other = f->act_node = -1;
  f->n_act = 0;
  if (s->uses_left[y] != 1 || is_output(s, y)) return;
  int m = s->consumer[y];
  const nn_node *mn = &g->nodes[m];
  if (mn->op != NN_OP_ADD || mn->n_in != 2 || mn->in[0] == mn->in[1]) return;
  int u = mn->in[0] == y ? mn->in[1] : mn->in[0];
  const nn_value *uv = &g->values[u];
  bool ready = uv->kind != NN_VALUE_NODE || s->val_slot[u] >= 0;
  if (!ready || !same_shape(vshape(s, u), vshape(s, y))) return;
  f->add_node = m;
  f->other = u;
  int w = mn->out;
  if (s->uses_left[w] != 1 || is_output(s, w)) return;
  int r = s->consumer[w];
  int na = node_elts(&g->nodes[r], f->act);
  if (na > 0) {
    f->act_node = r;
    f->n_act = na;
  }
}

/* An attr with the post-ops [act of the node] [sum] [act after the add]. */
static bool make_attr(dn_state *s, const dn_elt *own, int n_own,
                      const dn_fuse *f, dnnl_primitive_attr_t *out) {
  dnnl_primitive_attr_t a = NULL;
  dnnl_post_ops_t po = NULL;
  bool ok = dnnl_primitive_attr_clone(&a, s->attr_math) == dnnl_success &&
            dnnl_post_ops_create(&po) == dnnl_success &&
            append_elts(po, own, n_own);
  if (ok && f && f->add_node >= 0)
    ok = dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
         append_elts(po, f->act, f->n_act);
  if (ok) ok = dnnl_primitive_attr_set_post_ops(a, po) == dnnl_success;
  if (po) dnnl_post_ops_destroy(po);
  if (!ok && a) {
    dnnl_primitive_attr_destroy(a);
    a = NULL;
  }
  *out = a;
  return ok;
}

/* Destination slot of a conv/dense with layout md; with a fused residual
 * add, the other operand is placed there first (in place when it is dead
 * afterwards and already has that layout). Binds the values it computes. */
static int fused_dst(dn_state *s, int i, const dn_fuse *f,
                     const dnnl_memory_desc_t *md, int *dst) {
  const nn_graph *g = s->g;
  int sl;
  if (f && f->add_node >= 0) {
    int u = f->other, us = value_slot(s, u);
    if (us < 0) return dn_nomem(s);
    if (can_overwrite(s, u) && md_eq(&s->slots[us].md, md)) {
      sl = us;
    } else {
      sl = slot_alloc(s, md);
      if (sl < 0) return dn_nomem(s);
      int rc = emit_reorder(s, us, sl);
      if (rc != DLP_OK) return rc;
    }
  } else {
    sl = slot_alloc(s, md);
    if (sl < 0) return dn_nomem(s);
  }
  bind(s, g->nodes[i].out, sl);
  if (f && f->add_node >= 0) {
    const nn_node *mn = &g->nodes[f->add_node];
    bind(s, mn->out, sl);
    s->fused[f->add_node] = true;
    uses_done(s, mn);
    if (f->act_node >= 0) {
      const nn_node *rn = &g->nodes[f->act_node];
      bind(s, rn->out, sl);
      s->fused[f->act_node] = true;
      uses_done(s, rn);
    }
    /* Of the values bound to sl, only the last one computed is read later
     * (the conv's output, the add's when an activation follows, and an
     * operand added in place are dead), so a later add may overwrite it
     * instead of copying it first (MobileNetV2's chained residual blocks). */
    s->slots[sl].nvals = 1;
  }
  *dst = sl;
  return DLP_OK;
}

/* True when oneDNN chose its reference (unoptimised) implementation. */
static bool pd_is_ref(const_dnnl_primitive_desc_t pd) {
  const char *impl = NULL;
  return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) ==
             dnnl_success &&
         impl && strncmp(impl, "ref", 3) == 0;
}

/* The logical dims of conv weights ws with G groups: oihw, or goihw (G,
 * O/G, I, kh, kw) when grouped, as oneDNN takes them. Returns their count. */
static int conv_wdims(nn_shape ws, int64_t G, dnnl_dims_t wd) {
  if (G == 1) {
    for (int k = 0; k < 4; k++)
      wd[k] = ws.dims[k];
    return 4;
  }
  wd[0] = G;
  wd[1] = ws.dims[0] / G;
  for (int k = 1; k < 4; k++)
    wd[k + 1] = ws.dims[k];
  return 5;
}

/* Convolution n's primitive descriptor, with the fused ops of f (the add is
 * dropped, f->add_node = -1, when oneDNN refuses it), its activations in
 * nChw16c when `blocked`, else in the layout oneDNN prefers. NULL when
 * oneDNN has no primitive for it. */
static dnnl_primitive_desc_t conv_pd(dn_state *s, const nn_node *n,
                                     const dn_elt *own, int n_own, dn_fuse *f,
                                     bool blocked) {
  const nn_conv2d_attr *a = &n->attr.conv;
  nn_shape xs = vshape(s, n->in[0]), ws = vshape(s, n->in[1]);
  nn_shape ys = vshape(s, n->out);
  dnnl_memory_desc_t src, wt, bias, dst;
  /* a first layer's few channels stay plain: the kernels read them so */
  md_tag(&src, 4, xs.dims, s->act_dt,
         blocked && xs.dims[1] >= 16 ? dnnl_aBcd16b : dnnl_format_tag_any);
  md_tag(&dst, 4, ys.dims, s->act_dt,
         blocked ? dnnl_aBcd16b : dnnl_format_tag_any);
  dnnl_dims_t wd;
  md_any(&wt, conv_wdims(ws, a->groups, wd), wd, s->act_dt);
  bool has_bias = n->n_in > 2;
  if (has_bias) md_plain(&bias, vshape(s, n->in[2]), dnnl_f32);
  dnnl_dims_t strides = {a->stride[0], a->stride[1]};
  dnnl_dims_t dil = {a->dilation[0] - 1, a->dilation[1] - 1};
  dnnl_dims_t pl = {a->pads[0], a->pads[1]};
  dnnl_dims_t pr = {a->pads[2], a->pads[3]};
  bool wino = s->wino && a->groups == 1;
  dnnl_convolution_desc_t cd, cd_auto;
  if (dnnl_dilated_convolution_forward_desc_init(
          &cd_auto, dnnl_forward_inference, dnnl_convolution_auto, &src, &wt,
          has_bias ? &bias : NULL, &dst, strides, dil, pl, pr) != dnnl_success)
    return NULL;
  cd = cd_auto;
  if (wino &&
      dnnl_dilated_convolution_forward_desc_init(
          &cd, dnnl_forward_inference, dnnl_convolution_winograd, &src, &wt,
          has_bias ? &bias : NULL, &dst, strides, dil, pl, pr) != dnnl_success)
    cd = cd_auto;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st = dnnl_runtime_error;
  if (make_attr(s, own, n_own, f, &attr)) {
    st = dnnl_primitive_desc_create(&pd, &cd, attr, s->eng, NULL);
    if (st != dnnl_success && wino) {
      cd = cd_auto;
      st = dnnl_primitive_desc_create(&pd, &cd, attr, s->eng, NULL);
    }
  }
  if (st != dnnl_success && f->add_node >= 0) { /* retry without the add */
    if (attr) dnnl_primitive_attr_destroy(attr);
    attr = NULL;
    f->add_node = -1;
    if (make_attr(s, own, n_own, NULL, &attr))
      st = dnnl_primitive_desc_create(&pd, &cd, attr, s->eng, NULL);
  }
  if (attr) dnnl_primitive_attr_destroy(attr);
  return st == dnnl_success ? pd : NULL;
}

/* oneDNN 2.6's `any` layout is nhwc (brgconv) on avx512_core, but whole
 * networks run faster here with their activations in nChw16c, where its
 * jit_1x1, jit_dw and Winograd kernels work and the 1x1 + depthwise pairs
 * fuse: at batch 16 on 2 threads fp32 ResNet50 +27%, InceptionV3 +26%,
 * MobileNetV2 +15%, bf16 MobileNetV2 +15%; at batch 1 even (InceptionV3
 * -5%). So convolutions keep their activations blocked at every batch size
 * (one layout: an image's features do not depend on the batch it came in,
 * except through Winograd's batch-dependent tiling, ~1e-6), unless that
 * leaves a shape only oneDNN's reference kernel takes (odd grouped convs),
 * where `any` is used. DLP_DNNL_BLOCKED=0 turns it off (for A/B runs):
 * s->blocked. */

/* A depthwise 3x3 conv (stride 1 or 2, multiplier 1) that is the only reader
 * of a 1x1 stride-1 conv's output: MobileNetV2's expand + depthwise pair.
 * oneDNN's jit_1x1 kernel computes both in one primitive (a depthwise
 * post-op), so the expanded tensor, the network's largest, never goes to
 * memory: MobileNetV2 +6% at batch 16 on 2 threads (bench/RESULTS.md).
 * Returns the depthwise node, -1 when the pattern does not hold.
 * DLP_DNNL_FUSE_DW=0 turns it off (for A/B runs): s->fuse_dw. */
static int dw_partner(const dn_state *s, int i) {
  const nn_graph *g = s->g;
  const nn_node *n = &g->nodes[i];
  const nn_conv2d_attr *a = &n->attr.conv;
  if (!s->fuse_dw || s->wino || a->groups != 1 || a->stride[0] != 1 || a->stride[1] != 1)
    return -1;
  for (int k = 0; k < 4; k++)
    if (a->pads[k]) return -1;
  nn_shape ws = vshape(s, n->in[1]);
  if (ws.ndim != 4 || ws.dims[2] != 1 || ws.dims[3] != 1) return -1;
  int y = n->out;
  if (s->uses_left[y] != 1 || is_output(s, y)) return -1;
  int m = s->consumer[y];
  const nn_node *d = &g->nodes[m];
  if (d->op != NN_OP_CONV2D || d->in[0] != y) return -1;
  const nn_conv2d_attr *b = &d->attr.conv;
  nn_shape ys = vshape(s, y), dws = vshape(s, d->in[1]);
  nn_shape zs = vshape(s, d->out);
  int64_t C = ys.dims[1];
  int st = b->stride[0];
  if (b->groups != C || dws.ndim != 4 || dws.dims[0] != C ||
      dws.dims[1] != 1 || dws.dims[2] != 3 || dws.dims[3] != 3 ||
      b->stride[1] != st || (st != 1 && st != 2) || b->dilation[0] != 1 ||
      b->dilation[1] != 1 || b->pads[0] != b->pads[1] ||
      b->pads[2] != b->pads[3] || b->pads[0] > 1)
    return -1;
  /* oneDNN takes the top/left pad and derives the rest from the output
   * size: a bottom/right pad beyond what the output reads is never used. */
  for (int k = 0; k < 2; k++) {
    int64_t in = ys.dims[2 + k], out = zs.dims[2 + k];
    int64_t need = (out - 1) * st + 3 - in - b->pads[k];
    if (out != (in + b->pads[k] + b->pads[k + 2] - 3) / st + 1 || need < 0 ||
        need > b->pads[k + 2])
      return -1;
  }
  return m;
}

/* Plans conv i with the depthwise conv m fused in (see dw_partner), in
 * nChw16c: oneDNN 2.6.3's fused kernel returns wrong values on nhwc tensors
 * (test_dnnl's cases caught it), and where it declines (small maps or
 * batches) only its reference two-step kernel is left, no faster than two
 * primitives. DLP_ERR_UNSUPPORTED then: the caller plans them apart. */
static int plan_conv_dw(dn_state *s, int i, int m) {
  const nn_node *n = &s->g->nodes[i], *d = &s->g->nodes[m];
  dn_elt own[4];
  int n_own = act_elts(n->attr.conv.act, n->attr.conv.alpha, own);
  if (n_own < 0) return DLP_ERR_UNSUPPORTED;
  int n_dw = act_elts(d->attr.conv.act, d->attr.conv.alpha, own + 2);
  if (n_dw < 0) return DLP_ERR_UNSUPPORTED;
  nn_shape xs = vshape(s, n->in[0]), ws = vshape(s, n->in[1]);
  nn_shape ys = vshape(s, n->out), zs = vshape(s, d->out);
  dnnl_memory_desc_t src, wt, wuser, bias, dst;
  md_tag(&src, 4, xs.dims, s->act_dt, dnnl_aBcd16b);
  md_tag(&dst, 4, ys.dims, s->act_dt, dnnl_aBcd16b);
  md_any(&wt, 4, ws.dims, s->act_dt);
  md_tag(&wuser, 4, ws.dims, dnnl_f32, dnnl_oihw);
  bool has_bias = n->n_in > 2, dw_bias = d->n_in > 2;
  if (has_bias) md_plain(&bias, vshape(s, n->in[2]), dnnl_f32);
  dnnl_dims_t one = {1, 1}, zero = {0, 0};
  dnnl_convolution_desc_t cd;
  if (dnnl_convolution_forward_desc_init(
          &cd, dnnl_forward_inference, dnnl_convolution_direct, &src, &wt,
          has_bias ? &bias : NULL, &dst, one, zero, zero) != dnnl_success)
    return DLP_ERR_UNSUPPORTED;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  dnnl_primitive_desc_t pd = NULL;
  bool ok = dnnl_primitive_attr_clone(&attr, s->attr_math) == dnnl_success &&
            dnnl_post_ops_create(&po) == dnnl_success &&
            append_elts(po, own, n_own) &&
            dnnl_post_ops_append_dw(po, s->act_dt,
                                    dw_bias ? dnnl_f32 : dnnl_data_type_undef,
                                    s->act_dt, 3,
                                    d->attr.conv.stride[0],
                                    d->attr.conv.pads[0], 0, 0,
                                    NULL) == dnnl_success &&
            append_elts(po, own + 2, n_dw) &&
            dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success &&
            dnnl_primitive_desc_create(&pd, &cd, attr, s->eng, NULL) ==
                dnnl_success &&
            !pd_is_ref(pd);
  if (po) dnnl_post_ops_destroy(po);
  if (attr) dnnl_primitive_attr_destroy(attr);
  if (!ok) {
    if (pd) dnnl_primitive_desc_destroy(pd);
    return DLP_ERR_UNSUPPORTED;
  }
  const dnnl_memory_desc_t *pdst =
      dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  const dnnl_memory_desc_t *pdw = dnnl_primitive_desc_query_md(
      pd, dnnl_query_exec_arg_md, DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS);
  bool shape_ok = pdst && pdw && pdst->ndims == 4;
  for (int k = 0; shape_ok && k < 4; k++)
    shape_ok = pdst->dims[k] == zs.dims[k];
  if (!shape_ok) {
    dnnl_primitive_desc_destroy(pd);
    return DLP_ERR_UNSUPPORTED;
  }
  dnnl_dims_t dwd;
  dnnl_memory_desc_t dwuser, dwbias;
  md_tag(&dwuser, conv_wdims(vshape(s, d->in[1]), ys.dims[1], dwd), dwd,
         dnnl_f32, dnnl_goihw);
  if (dw_bias) md_plain(&dwbias, vshape(s, d->in[2]), dnnl_f32);
  int xsl = -1, wsl = -1, bsl = -1, dwsl = -1, dbsl = -1, zsl = -1;
  int rc = value_as(s, n->in[0],
                    dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                    &xsl);
  if (rc == DLP_OK)
    rc = const_as(s, n->in[1], &wuser,
                  dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                  &wsl);
  if (rc == DLP_OK && has_bias) rc = value_as(s, n->in[2], &bias, &bsl);
  if (rc == DLP_OK) rc = const_as(s, d->in[1], &dwuser, pdw, &dwsl);
  if (rc == DLP_OK && dw_bias) rc = value_as(s, d->in[2], &dwbias, &dbsl);
  if (rc == DLP_OK && (zsl = slot_alloc(s, pdst)) < 0) rc = dn_nomem(s);
  if (rc != DLP_OK) {
    dnnl_primitive_desc_destroy(pd);
    return rc;
  }
  bind(s, d->out, zsl);
  s->fused[m] = true;
  s->n_fused_dw++;
  uses_done(s, d);
  dn_arg args[6] = {{DNNL_ARG_SRC, xsl}, {DNNL_ARG_DST, zsl},
                    {DNNL_ARG_WEIGHTS, wsl},
                    {DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS, dwsl}};
  int na = 4;
  if (has_bias) args[na++] = (dn_arg){DNNL_ARG_BIAS, bsl};
  if (dw_bias)
    args[na++] = (dn_arg){DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS, dbsl};
  return emit_prim(s, pd, "convolution + depthwise", na, args);
}

static int plan_conv(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  const nn_conv2d_attr *a = &n->attr.conv;
  int x = n->in[0];
  nn_shape xs = vshape(s, x), ws = vshape(s, n->in[1]);
  nn_shape ys = vshape(s, n->out);
  if (xs.ndim != 4 || ws.ndim != 4 || ys.ndim != 4 || a->groups < 1)
    return DLP_ERR_UNSUPPORTED;
  dn_elt own[2];
  int n_own = act_elts(a->act, a->alpha, own);
  if (n_own < 0) return DLP_ERR_UNSUPPORTED;
  /* the weights as stored */
  dnnl_dims_t wd;
  int wnd = conv_wdims(ws, a->groups, wd);
  dnnl_memory_desc_t wuser, bias;
  md_tag(&wuser, wnd, wd, dnnl_f32, wnd == 5 ? dnnl_goihw : dnnl_oihw);
  bool has_bias = n->n_in > 2;
  if (has_bias) md_plain(&bias, vshape(s, n->in[2]), dnnl_f32);
  int m = s->blocked ? dw_partner(s, i) : -1;
  if (m >= 0) {
    int rc = plan_conv_dw(s, i, m);
    if (rc != DLP_ERR_UNSUPPORTED) return rc;
  }
  dn_fuse f;
  find_fusion(s, i, &f);
  dnnl_primitive_desc_t pd = NULL;
  if (s->blocked) {
    dn_fuse fb = f;
    pd = conv_pd(s, n, own, n_own, &fb, true);
    if (pd && pd_is_ref(pd)) {
      dnnl_primitive_desc_destroy(pd);
      pd = NULL;
    }
    if (pd) f = fb;
  }
  if (!pd) pd = conv_pd(s, n, own, n_own, &f, false);
  if (!pd) return DLP_ERR_UNSUPPORTED;
  const dnnl_memory_desc_t *psrc =
      dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
  const dnnl_memory_desc_t *pw =
      dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  const dnnl_memory_desc_t *pdst =
      dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  int xsl = -1, wsl = -1, bsl = -1, ysl = -1;
  int rc = value_as(s, x, psrc, &xsl);
  if (rc == DLP_OK) rc = const_as(s, n->in[1], &wuser, pw, &wsl);
  if (rc == DLP_OK && has_bias) rc = value_as(s, n->in[2], &bias, &bsl);
  if (rc == DLP_OK) rc = fused_dst(s, i, &f, pdst, &ysl);
  if (rc != DLP_OK) {
    dnnl_primitive_desc_destroy(pd);
    return rc;
  }
  dn_arg args[4] = {{DNNL_ARG_SRC, xsl},
                    {DNNL_ARG_WEIGHTS, wsl},
                    {DNNL_ARG_DST, ysl},
                    {DNNL_ARG_BIAS, bsl}};
  return emit_prim(s, pd, "convolution", has_bias ? 4 : 3, args);
}

static int plan_dense(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  const nn_dense_attr *a = &n->attr.dense;
  nn_shape xs = vshape(s, n->in[0]), ws = vshape(s, n->in[1]);
  nn_shape ys = vshape(s, n->out);
  if (xs.ndim != 2 || ws.ndim != 2 || ys.ndim != 2) return DLP_ERR_UNSUPPORTED;
  dn_elt own[2];
  int n_own = act_elts(a->act, a->alpha, own);
  if (n_own < 0) return DLP_ERR_UNSUPPORTED;
  int64_t in = xs.dims[1], out = ys.dims[1];
  dnnl_memory_desc_t src, wt, wuser, bias, dst;
  md_any(&src, 2, xs.dims, s->act_dt);
  md_any(&dst, 2, ys.dims, s->act_dt);
  dnnl_dims_t wd = {out, in};
  md_any(&wt, 2, wd, s->act_dt);
  /* oneDNN's weights are (out, in): Keras (in, out) is its transpose. */
  dnnl_dims_t wst = {a->transb ? in : 1, a->transb ? 1 : out};
  dnnl_memory_desc_init_by_strides(&wuser, 2, wd, dnnl_f32, wst);
  bool has_bias = n->n_in > 2;
  if (has_bias) md_plain(&bias, vshape(s, n->in[2]), dnnl_f32);
  dnnl_inner_product_desc_t ipd;
  if (dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &src,
                                           &wt, has_bias ? &bias : NULL,
                                           &dst) != dnnl_success)
    return DLP_ERR_UNSUPPORTED;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st = dnnl_runtime_error;
  if (make_attr(s, own, n_own, NULL, &attr))
    st = dnnl_primitive_desc_create(&pd, &ipd, attr, s->eng, NULL);
  if (attr) dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success) return DLP_ERR_UNSUPPORTED;
  int xsl = -1, wsl = -1, bsl = -1, ysl = -1;
  int rc =
      value_as(s, n->in[0],
               dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), &xsl);
  if (rc == DLP_OK)
    rc = const_as(s, n->in[1], &wuser,
                  dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                  &wsl);
  if (rc == DLP_OK && has_bias) rc = value_as(s, n->in[2], &bias, &bsl);
  if (rc == DLP_OK)
    rc =
        fused_dst(s, i, NULL,
                  dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), &ysl);
  if (rc != DLP_OK) {
    dnnl_primitive_desc_destroy(pd);
    return rc;
  }
  dn_arg args[4] = {{DNNL_ARG_SRC, xsl},
                    {DNNL_ARG_WEIGHTS, wsl},
                    {DNNL_ARG_DST, ysl},
                    {DNNL_ARG_BIAS, bsl}};
  return emit_prim(s, pd, "inner product", has_bias ? 4 : 3, args);
}

/* ------------------------------------------------------------------------
 * Pooling, elementwise, normalisation, concat, softmax, views
 * ------------------------------------------------------------------------ */

/* Output slot for a primitive whose dst layout is md: in place over x when
 * allowed (eltwise, binary, batch norm), else a new block. */
static int out_slot(dn_state *s, int x, bool inplace,
                    const dnnl_memory_desc_t *md) {
  int xs = s->val_slot[x];
  if (inplace && xs >= 0 && can_overwrite(s, x) && md_eq(&s->slots[xs].md, md))
    return xs;
  return slot_alloc(s, md);
}

/* Binds v to a view of slot sl reshaped to v's shape: a oneDNN reshape of
 * the layout when possible, else a plain copy first. */
static int bind_view(dn_state *s, int v, int sl) {
  nn_shape vs = vshape(s, v);
  dnnl_dims_t d;
  int nd = vs.ndim > 0 ? vs.ndim : 1;
  for (int k = 0; k < nd; k++)
    d[k] = vs.ndim > 0 ? vs.dims[k] : 1;
  dnnl_memory_desc_t md;
  if (dnnl_memory_desc_reshape(&md, &s->slots[sl].md, nd, d) != dnnl_success) {
    dnnl_memory_desc_t plain, smd = s->slots[sl].md;
    nn_shape src_shape;
    src_shape.ndim = smd.ndims;
    for (int k = 0; k < smd.ndims; k++)
      src_shape.dims[k] = smd.dims[k];
    md_plain(&plain, src_shape, smd.data_type);
    int t = slot_alloc(s, &plain);
    if (t < 0) return dn_nomem(s);
    int rc = emit_reorder(s, sl, t);
    if (rc != DLP_OK) return rc;
    sl = t;
    md_plain(&md, vs, smd.data_type);
  }
  int a = slot_alias(s, sl, &md);
  if (a < 0) return dn_nomem(s);
  bind(s, v, a);
  return DLP_OK;
}

static int plan_view(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  int sl = value_slot(s, n->in[0]);
  if (sl < 0) return dn_nomem(s);
  return bind_view(s, n->out, sl);
}

static int plan_pool(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  int x = n->in[0];
  nn_shape xs = vshape(s, x), ys = vshape(s, n->out);
  if (xs.ndim != 4) return DLP_ERR_UNSUPPORTED;
  bool global = n->op == NN_OP_GLOBAL_AVGPOOL || n->op == NN_OP_GLOBAL_MAXPOOL;
  bool max = n->op == NN_OP_MAXPOOL || n->op == NN_OP_GLOBAL_MAXPOOL;
  nn_pool2d_attr pa;
  if (global) {
    nn_pool2d_attr_init(&pa);
    pa.kernel[0] = (int)xs.dims[2];
    pa.kernel[1] = (int)xs.dims[3];
  } else {
    pa = n->attr.pool;
  }
  dnnl_dims_t y4 = {xs.dims[0], xs.dims[1], global ? 1 : ys.dims[2],
                    global ? 1 : ys.dims[3]};
  dnnl_dims_t k = {pa.kernel[0], pa.kernel[1]};
  dnnl_dims_t st = {pa.stride[0], pa.stride[1]}, dil = {0, 0};
  dnnl_dims_t pl = {pa.pads[0], pa.pads[1]}, pr;
  for (int d = 0; d < 2; d++) {
    /* The right padding that yields the reference's output size (ceil_mode
     * may need more than declared, or less when a window is dropped). */
    pr[d] = (y4[2 + d] - 1) * st[d] + k[d] - xs.dims[2 + d] - pl[d];
    if (pr[d] < 0) return DLP_ERR_UNSUPPORTED;
    /* Counting padding the model did not declare would change averages. */
    if (!max && pa.count_include_pad && pr[d] > pa.pads[2 + d])
      return DLP_ERR_UNSUPPORTED;
  }
  dnnl_alg_kind_t alg = max ? dnnl_pooling_max
                        : pa.count_include_pad
                            ? dnnl_pooling_avg_include_padding
                            : dnnl_pooling_avg_exclude_padding;
  int xsl = value_slot(s, x);
  if (xsl < 0) return dn_nomem(s);
  dnnl_memory_desc_t dst;
  md_any(&dst, 4, y4, s->slots[xsl].md.data_type);
  dnnl_pooling_v2_desc_t pdsc;
  dnnl_primitive_desc_t pd = NULL;
  if (dnnl_pooling_v2_forward_desc_init(&pdsc, dnnl_forward_inference, alg,
                                        &s->slots[xsl].md, &dst, st, k, dil, pl,
                                        pr) != dnnl_success ||
      dnnl_primitive_desc_create(&pd, &pdsc, s->attr, s->eng, NULL) !=
          dnnl_success)
    return DLP_ERR_UNSUPPORTED;
  int ysl =
      slot_alloc(s, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
  if (ysl < 0) {
    dnnl_primitive_desc_destroy(pd);
    return dn_nomem(s);
  }
  dn_arg args[2] = {{DNNL_ARG_SRC, xsl}, {DNNL_ARG_DST, ysl}};
  int rc = emit_prim(s, pd, "pooling", 2, args);
  if (rc != DLP_OK) return rc;
  if (ys.ndim == 4) {
    bind(s, n->out, ysl);
    return DLP_OK;
  }
  s->slots[ysl].last_use = i;
  return bind_view(s, n->out, ysl);
}

/* Standalone activation / clip: 1 or 2 eltwise primitives, in place when
 * the input is dead afterwards. */
static int plan_eltwise(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  dn_elt el[2];
  int ne = node_elts(n, el);
  if (ne < 0) return DLP_ERR_UNSUPPORTED;
  int xsl = value_slot(s, n->in[0]);
  if (xsl < 0) return dn_nomem(s);
  dnnl_memory_desc_t xmd = s->slots[xsl].md; /* slots move as they grow */
  if (ne == 0) {
    int a = slot_alias(s, xsl, &xmd);
    if (a < 0) return dn_nomem(s);
    bind(s, n->out, a);
    return DLP_OK;
  }
  dnnl_primitive_desc_t pd[2] = {NULL, NULL};
  for (int k = 0; k < ne; k++) {
    dnnl_eltwise_desc_t ed;
    if (dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference, el[k].alg,
                                       &xmd, el[k].alpha,
                                       el[k].beta) != dnnl_success ||
        dnnl_primitive_desc_create(&pd[k], &ed, s->attr, s->eng, NULL) !=
            dnnl_success) {
      if (pd[0]) dnnl_primitive_desc_destroy(pd[0]);
      return DLP_ERR_UNSUPPORTED;
    }
  }
  int ysl = out_slot(s, n->in[0], true, &xmd);
  if (ysl < 0) {
    for (int k = 0; k < ne; k++)
      dnnl_primitive_desc_destroy(pd[k]);
    return dn_nomem(s);
  }
  bind(s, n->out, ysl);
  int rc = DLP_OK;
  for (int k = 0; k < ne; k++) {
    dn_arg args[2] = {{DNNL_ARG_SRC, k == 0 ? xsl : ysl}, {DNNL_ARG_DST, ysl}};
    if (rc == DLP_OK)
      rc = emit_prim(s, pd[k], "eltwise", 2, args);
    else
      dnnl_primitive_desc_destroy(pd[k]);
  }
  return rc;
}

static int plan_batchnorm(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  if (n->n_in != 5 || vshape(s, n->in[0]).ndim < 2) return DLP_ERR_UNSUPPORTED;
  for (int k = 1; k < 5; k++)
    if (s->g->values[n->in[k]].kind != NN_VALUE_CONST)
      return DLP_ERR_UNSUPPORTED;
  int xsl = value_slot(s, n->in[0]);
  if (xsl < 0) return dn_nomem(s);
  dnnl_memory_desc_t xmd = s->slots[xsl].md; /* slots move as they grow */
  dnnl_batch_normalization_desc_t bd;
  dnnl_primitive_desc_t pd = NULL;
  unsigned flags = dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift;
  if (dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_inference,
                                                 &xmd, n->attr.eps,
                                                 flags) != dnnl_success ||
      dnnl_primitive_desc_create(&pd, &bd, s->attr, s->eng, NULL) !=
          dnnl_success)
    return DLP_ERR_UNSUPPORTED;
  static const int kinds[4] = {DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN,
                               DNNL_ARG_VARIANCE};
  dn_arg args[6];
  int na = 0, rc = DLP_OK;
  for (int k = 0; k < 4 && rc == DLP_OK; k++) {
    int sl = value_slot(s, n->in[1 + k]);
    if (sl < 0) rc = dn_nomem(s);
    args[na++] = (dn_arg){kinds[k], sl};
  }
  int ysl = rc == DLP_OK ? out_slot(s, n->in[0], true, &xmd) : -1;
  if (rc == DLP_OK && ysl < 0) rc = dn_nomem(s);
  if (rc != DLP_OK) {
    dnnl_primitive_desc_destroy(pd);
    return rc;
  }
  bind(s, n->out, ysl);
  args[na++] = (dn_arg){DNNL_ARG_SRC, xsl};
  args[na++] = (dn_arg){DNNL_ARG_DST, ysl};
  return emit_prim(s, pd, "batch normalization", na, args);
}

/* Add / Mul: oneDNN binary, broadcasting its second operand only. */
static int plan_binary(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  if (n->n_in != 2) return DLP_ERR_UNSUPPORTED;
  nn_shape ys = vshape(s, n->out);
  int a = n->in[0], b = n->in[1];
  if (!same_shape(vshape(s, a), ys)) {
    int t = a;
    a = b;
    b = t;
  }
  nn_shape as = vshape(s, a), bs = vshape(s, b);
  if (!same_shape(as, ys) || bs.ndim > as.ndim || as.ndim == 0)
    return DLP_ERR_UNSUPPORTED;
  int asl = value_slot(s, a);
  if (asl < 0) return dn_nomem(s);
  dnnl_memory_desc_t amdv = s->slots[asl].md; /* slots move as they grow */
  const dnnl_memory_desc_t *amd = &amdv;
  dnnl_memory_desc_t bmd;
  if (same_shape(as, bs)) {
    bmd = *amd;
  } else { /* right-aligned broadcast: pad b's dims with leading ones */
    nn_shape b2 = as;
    int off = as.ndim - bs.ndim;
    for (int d = 0; d < as.ndim; d++)
      b2.dims[d] = d < off ? 1 : bs.dims[d - off];
    md_plain(&bmd, b2, amd->data_type);
  }
  dnnl_binary_desc_t bd;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_alg_kind_t alg = n->op == NN_OP_ADD ? dnnl_binary_add : dnnl_binary_mul;
  if (dnnl_binary_desc_init(&bd, alg, amd, &bmd, amd) != dnnl_success ||
      dnnl_primitive_desc_create(&pd, &bd, s->attr, s->eng, NULL) !=
          dnnl_success)
    return DLP_ERR_UNSUPPORTED;
  int bsl = -1, rc;
  if (same_shape(as, bs)) {
    rc = value_as(s, b, &bmd, &bsl);
  } else { /* b keeps its data, seen with a's rank */
    int raw = value_slot(s, b);
    dnnl_memory_desc_t rawmd;
    md_plain(&rawmd, vshape(s, b), bmd.data_type);
    rc = raw < 0 ? dn_nomem(s) : DLP_OK;
    if (rc == DLP_OK && !md_eq(&s->slots[raw].md, &rawmd))
      rc = value_as(s, b, &rawmd, &raw);
    if (rc == DLP_OK) {
      bsl = slot_alias(s, raw, &bmd);
      if (bsl < 0) rc = dn_nomem(s);
    }
  }
  int ysl = -1;
  if (rc == DLP_OK) {
    ysl = out_slot(s, a, true, amd);
    if (ysl < 0) rc = dn_nomem(s);
  }
  if (rc != DLP_OK) {
    dnnl_primitive_desc_destroy(pd);
    return rc;
  }
  bind(s, n->out, ysl);
  dn_arg args[3] = {
      {DNNL_ARG_SRC_0, asl}, {DNNL_ARG_SRC_1, bsl}, {DNNL_ARG_DST, ysl}};
  return emit_prim(s, pd, "binary", 3, args);
}

static int plan_concat(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  nn_shape ys = vshape(s, n->out);
  if (n->n_in < 1 || n->n_in > 12 || ys.ndim < 1) return DLP_ERR_UNSUPPORTED;
  int axis = n->attr.axis < 0 ? n->attr.axis + ys.ndim : n->attr.axis;
  if (axis < 0 || axis >= ys.ndim) return DLP_ERR_UNSUPPORTED;
  dnnl_memory_desc_t mds[12];
  int sl[12];
  bool blocked_ok = true;
  for (int k = 0; k < n->n_in; k++) {
    sl[k] = value_slot(s, n->in[k]);
    if (sl[k] < 0) return dn_nomem(s);
    mds[k] = s->slots[sl[k]].md;
    if (mds[k].data_type != mds[0].data_type) blocked_ok = false;
  }
  dnnl_primitive_desc_t pd = NULL;
  bool plain = !blocked_ok || dnnl_concat_primitive_desc_create(
                                  &pd, NULL, n->n_in, axis, mds, s->attr,
                                  s->eng) != dnnl_success;
  if (plain) { /* mixed types or layouts oneDNN will not mix: plain f32 */
    for (int k = 0; k < n->n_in; k++)
      md_plain(&mds[k], vshape(s, n->in[k]), dnnl_f32);
    if (dnnl_concat_primitive_desc_create(&pd, NULL, n->n_in, axis, mds,
                                          s->attr, s->eng) != dnnl_success)
      return DLP_ERR_UNSUPPORTED;
  }
  dn_arg args[14];
  int rc = DLP_OK;
  for (int k = 0; k < n->n_in && rc == DLP_OK; k++) {
    rc = value_as(s, n->in[k], &mds[k], &sl[k]);
    args[k] = (dn_arg){DNNL_ARG_MULTIPLE_SRC + k, sl[k]};
  }
  int ysl = -1;
  if (rc == DLP_OK) {
    ysl = slot_alloc(s, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
    if (ysl < 0) rc = dn_nomem(s);
  }
  if (rc != DLP_OK) {
    dnnl_primitive_desc_destroy(pd);
    return rc;
  }
  bind(s, n->out, ysl);
  args[n->n_in] = (dn_arg){DNNL_ARG_DST, ysl};
  return emit_prim(s, pd, "concat", n->n_in + 1, args);
}

static int plan_softmax(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  nn_shape xs = vshape(s, n->in[0]);
  int axis = n->attr.axis < 0 ? n->attr.axis + xs.ndim : n->attr.axis;
  if (xs.ndim < 1 || axis < 0 || axis >= xs.ndim) return DLP_ERR_UNSUPPORTED;
  dnnl_memory_desc_t md;
  md_plain(&md, xs, dnnl_f32);
  dnnl_softmax_v2_desc_t sd;
  dnnl_primitive_desc_t pd = NULL;
  if (dnnl_softmax_v2_forward_desc_init(&sd, dnnl_forward_inference,
                                        dnnl_softmax_accurate, &md, &md,
                                        axis) != dnnl_success ||
      dnnl_primitive_desc_create(&pd, &sd, s->attr, s->eng, NULL) !=
          dnnl_success)
    return DLP_ERR_UNSUPPORTED;
  int xsl = -1, ysl = -1;
  int rc = value_as(s, n->in[0], &md, &xsl);
  if (rc == DLP_OK) {
    ysl = slot_alloc(s, &md);
    if (ysl < 0) rc = dn_nomem(s);
  }
  if (rc != DLP_OK) {
    dnnl_primitive_desc_destroy(pd);
    return rc;
  }
  bind(s, n->out, ysl);
  dn_arg args[2] = {{DNNL_ARG_SRC, xsl}, {DNNL_ARG_DST, ysl}};
  return emit_prim(s, pd, "softmax", 2, args);
}

/* The reference kernel on plain float32 copies of the inputs. */
static int plan_ref(dn_state *s, int i) {
  const nn_node *n = &s->g->nodes[i];
  int *ins = dlp_calloc_array((size_t)n->n_in, sizeof(int));
  if (!ins) return dn_nomem(s);
  int rc = DLP_OK;
  for (int k = 0; k < n->n_in && rc == DLP_OK; k++) {
    dnnl_memory_desc_t md;
    md_plain(&md, vshape(s, n->in[k]), dnnl_f32);
    rc = value_as(s, n->in[k], &md, &ins[k]);
  }
  dnnl_memory_desc_t ymd;
  md_plain(&ymd, vshape(s, n->out), dnnl_f32);
  int ysl = rc == DLP_OK ? slot_alloc(s, &ymd) : -1;
  dn_step *st = rc == DLP_OK && ysl >= 0 ? step_new(s) : NULL;
  if (!st) {
    free(ins);
    return rc != DLP_OK ? rc : dn_nomem(s);
  }
  st->node = i;
  st->ins = ins;
  st->out = ysl;
  bind(s, n->out, ysl);
  return DLP_OK;
}

static int plan_node(dn_state *s, int i) {
  switch (s->g->nodes[i].op) {
  case NN_OP_CONV2D:
    return plan_conv(s, i);
  case NN_OP_DENSE:
    return plan_dense(s, i);
  case NN_OP_BATCHNORM:
    return plan_batchnorm(s, i);
  case NN_OP_ACT:
  case NN_OP_CLIP:
    return plan_eltwise(s, i);
  case NN_OP_SOFTMAX:
    return plan_softmax(s, i);
  case NN_OP_MAXPOOL:
  case NN_OP_AVGPOOL:
  case NN_OP_GLOBAL_AVGPOOL:
  case NN_OP_GLOBAL_MAXPOOL:
    return plan_pool(s, i);
  case NN_OP_ADD:
  case NN_OP_MUL:
    return plan_binary(s, i);
  case NN_OP_CONCAT:
    return plan_concat(s, i);
  case NN_OP_FLATTEN:
  case NN_OP_RESHAPE:
  case NN_OP_IDENTITY:
    return plan_view(s, i);
  default:
    return DLP_ERR_UNSUPPORTED; /* transpose, pad, ... */
  }
}

/* ------------------------------------------------------------------------
 * Plan, run, free
 * ------------------------------------------------------------------------ */

static void dnnl_state_free(void *state) {
  dn_state *s = state;
  if (!s) return;
  for (int k = 0; k < s->n_steps; k++) {
    if (s->steps[k].prim) dnnl_primitive_destroy(s->steps[k].prim);
    free(s->steps[k].ins);
  }
  for (int k = 0; k < s->n_slots; k++)
    if (s->slots[k].mem) dnnl_memory_destroy(s->slots[k].mem);
  for (int k = 0; k < s->n_owned; k++)
    free(s->owned[k]);
  if (s->attr) dnnl_primitive_attr_destroy(s->attr);
  if (s->attr_math) dnnl_primitive_attr_destroy(s->attr_math);
  if (s->strm) dnnl_stream_destroy(s->strm);
  if (s->eng) dnnl_engine_destroy(s->eng);
  free(s->steps);
  free(s->slots);
  free(s->blocks);
  free(s->owned);
  free(s->val_slot);
  free(s->last_use);
  free(s->uses_left);
  free(s->consumer);
  free(s->fused);
  free(s->arena);
  free(s->scratch);
  free(s);
}

/* Plans node i on oneDNN, else on the reference kernel. (Zero pads before a
 * conv or average pool are folded into it by nn_graph_optimize.) */
static int plan_one(dn_state *s, int i) {
  int rc = plan_node(s, i);
  if (rc == DLP_ERR_UNSUPPORTED) rc = plan_ref(s, i);
  return rc;
}

static bool conv_3x3_s1(const dn_state *s, const nn_node *n) {
  const nn_conv2d_attr *a = &n->attr.conv;
  nn_shape ws = vshape(s, n->in[1]);
  return ws.ndim == 4 && ws.dims[2] == 3 && ws.dims[3] == 3 &&
         a->stride[0] == 1 && a->stride[1] == 1 && a->dilation[0] == 1 &&
         a->dilation[1] == 1 && a->groups == 1;
}

/* Winograd F(4x4, 3x3) (oneDNN's jit_wino_4x3, avx512_core, fp32) runs the
 * 3x3 stride-1 convolutions of VGG 2-3x faster than direct convolution
 * here, at ~3e-6 relative error on the whole network. A graph whose every
 * convolution is 3x3 stride-1 asks for it by name; in other graphs
 * oneDNN's `auto` algorithm picks it for the convolutions it suits, which
 * it does since their activations are blocked (s->blocked: ResNet50 and
 * InceptionV3 gain most of their 26-27% there). */
/* False when the environment sets var to 0 (A/B switches). */
static bool env_on(const char *var) {
  const char *v = getenv(var);
  return !(v && !strcmp(v, "0"));
}

static bool wino_graph(const dn_state *s) {
  if (s->bf16) return false;
  int n_conv = 0;
  for (int i = 0; i < s->g->n_nodes; i++) {
    const nn_node *n = &s->g->nodes[i];
    if (n->op != NN_OP_CONV2D) continue;
    if (!conv_3x3_s1(s, n)) return false;
    n_conv++;
  }
  return n_conv > 0;
}

static int setup(dn_state *s) {
  const nn_graph *g = s->g;
  int nv = g->n_values;
  s->val_slot = dlp_malloc_array((size_t)nv, sizeof(int));
  s->last_use = dlp_calloc_array((size_t)nv, sizeof(int));
  s->uses_left = dlp_calloc_array((size_t)nv, sizeof(int));
  s->consumer = dlp_calloc_array((size_t)nv, sizeof(int));
  s->fused = dlp_calloc_array((size_t)g->n_nodes + 1, sizeof(bool));
  if (!s->val_slot || !s->last_use || !s->uses_left || !s->consumer ||
      !s->fused)
    return dn_nomem(s);
  for (int v = 0; v < nv; v++) {
    s->val_slot[v] = -1;
    s->last_use[v] = -1;
  }
  for (int i = 0; i < g->n_nodes; i++)
    for (int k = 0; k < g->nodes[i].n_in; k++) {
      int v = g->nodes[i].in[k];
      s->last_use[v] = i;
      s->uses_left[v]++;
      s->consumer[v] = i;
    }
  for (int k = 0; k < g->n_outputs; k++)
    s->last_use[g->outputs[k]] = DN_KEEP;
  s->wino = wino_graph(s);
  s->blocked = env_on("DLP_DNNL_BLOCKED");
  s->fuse_dw = env_on("DLP_DNNL_FUSE_DW");
  dnnl_status_t st = dnnl_engine_create(&s->eng, dnnl_cpu, 0);
  if (st == dnnl_success)
    st = dnnl_stream_create(&s->strm, s->eng, dnnl_stream_default_flags);
  if (st == dnnl_success) st = dnnl_primitive_attr_create(&s->attr);
  if (st == dnnl_success)
    st = dnnl_primitive_attr_set_scratchpad_mode(s->attr,
                                                 dnnl_scratchpad_mode_user);
  if (st == dnnl_success)
    st = dnnl_primitive_attr_clone(&s->attr_math, s->attr);
  if (st == dnnl_success && s->bf16)
    st = dnnl_primitive_attr_set_fpmath_mode(s->attr_math,
                                             dnnl_fpmath_mode_bf16);
  if (st != dnnl_success) return dn_fail(s, st, "engine setup");
  return DLP_OK;
}

static int plan_outputs(dn_state *s) {
  const nn_graph *g = s->g;
  s->cur = g->n_nodes;
  for (int k = 0; k < g->n_outputs; k++) {
    int v = g->outputs[k];
    int sl = value_slot(s, v);
    if (sl < 0) return dn_nomem(s);
    dnnl_memory_desc_t md;
    md_plain(&md, vshape(s, v), dnnl_f32);
    int o = slot_new(s, &md, SL_OUTPUT, k, NULL);
    if (o < 0) return dn_nomem(s);
    int rc = emit_reorder(s, sl, o);
    if (rc != DLP_OK) return rc;
  }
  return DLP_OK;
}

/* Lays the blocks out in one arena and creates the memory objects. */
static int materialise(dn_state *s) {
  size_t off = 0;
  for (int b = 0; b < s->n_blocks; b++) {
    s->blocks[b].off = off;
    off += s->blocks[b].size;
  }
  s->arena_size = off;
  s->arena = aligned_alloc(DN_ALIGN, off ? off : DN_ALIGN);
  size_t ss = (s->scratch_size + DN_ALIGN - 1) / DN_ALIGN * DN_ALIGN;
  s->scratch = aligned_alloc(DN_ALIGN, ss ? ss : DN_ALIGN);
  if (!s->arena || !s->scratch) return dn_nomem(s);
  memset(s->arena, 0, off); /* blocked layouts pad with zeros */
  for (int k = 0; k < s->n_slots; k++) {
    dn_slot *sl = &s->slots[k];
    void *p = NULL;
    if (sl->kind == SL_BLOCK)
      p = (char *)s->arena + s->blocks[sl->idx].off;
    else if (sl->kind == SL_CONST)
      p = sl->ptr;
    else if (sl->kind == SL_SCRATCH)
      p = s->scratch;
    dnnl_status_t st = dnnl_memory_create(&sl->mem, &sl->md, s->eng, p);
    if (st != dnnl_success) return dn_fail(s, st, "memory creation");
  }
  for (int k = 0; k < s->n_steps; k++) {
    dn_step *st = &s->steps[k];
    for (int a = 0; a < st->nargs; a++)
      st->exec[a] =
          (dnnl_exec_arg_t){st->args[a].arg, s->slots[st->args[a].slot].mem};
  }
  return DLP_OK;
}

static int plan_common(dlp_err *e, const nn_graph *g, int64_t batch,
                       int threads, bool bf16, void **state) {
  *state = NULL;
  if (!g || !g->finalized || batch < 1)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "dnnl backend: needs a finalized graph and batch >= 1");
  if (bf16 && dnnl_get_effective_cpu_isa() < dnnl_cpu_isa_avx512_core)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "dnnl backend: bf16 needs a CPU with AVX-512");
  dn_state *s = calloc(1, sizeof *s);
  if (!s) return dlp_err_set(e, DLP_ERR_NOMEM, "dnnl backend: out of memory");
  s->g = g;
  s->batch = batch;
  s->threads = threads;
  s->bf16 = bf16;
  s->act_dt = bf16 ? dnnl_bf16 : dnnl_f32;
  s->e = e;
  s->cur = -1;
  int prev = nn_dnnl_threads_set(threads);
  int rc = setup(s);
  for (int i = 0; rc == DLP_OK && i < g->n_nodes; i++) {
    s->cur = i;
    if (!s->fused[i]) {
      rc = plan_one(s, i);
      uses_done(s, &g->nodes[i]);
    }
    release_dead(s, i);
  }
  if (rc == DLP_OK) rc = plan_outputs(s);
  if (rc == DLP_OK) rc = materialise(s);
  nn_dnnl_threads_set(prev);
  s->e = NULL;
  if (rc != DLP_OK) {
    dnnl_state_free(s);
    return rc;
  }
  *state = s;
  return DLP_OK;
}

static int dnnl_plan(dlp_err *e, const nn_graph *g, int64_t batch, int threads,
                     void **state) {
  return plan_common(e, g, batch, threads, false, state);
}

static int dnnl_plan_bf16(dlp_err *e, const nn_graph *g, int64_t batch,
                          int threads, void **state) {
  return plan_common(e, g, batch, threads, true, state);
}

static void *slot_ptr(const dn_state *s, const dn_slot *sl,
                      const float *const *inputs, float *const *outputs) {
  switch (sl->kind) {
  case SL_BLOCK:
    return (char *)s->arena + s->blocks[sl->idx].off;
  case SL_CONST:
    return sl->ptr;
  case SL_INPUT:
    return (void *)inputs[sl->idx];
  case SL_OUTPUT:
    return outputs[sl->idx];
  default:
    return s->scratch;
  }
}

static void view_of(const dn_state *s, int v, void *p, nn_tensor *t) {
  nn_shape sh = vshape(s, v);
  memset(t, 0, sizeof *t);
  t->ndim = sh.ndim;
  for (int d = 0; d < NN_MAX_DIMS; d++)
    t->dims[d] = d < sh.ndim ? sh.dims[d] : 1;
  t->data = p;
  t->is_view = true;
}

static int run_ref(dlp_err *e, dn_state *s, const dn_step *st,
                   const float *const *inputs, float *const *outputs) {
  const nn_node *n = &s->g->nodes[st->node];
  nn_tensor tin[16], *pin[16], y;
  nn_tensor *heap = NULL;
  nn_tensor *tv = tin;
  const nn_tensor **pp = (const nn_tensor **)pin;
  const nn_tensor **heapp = NULL;
  if (n->n_in > 16) {
    heap = dlp_calloc_array((size_t)n->n_in, sizeof(nn_tensor));
    heapp = dlp_calloc_array((size_t)n->n_in, sizeof(nn_tensor *));
    if (!heap || !heapp) {
      free(heap);
      free(heapp);
      return dlp_err_set(e, DLP_ERR_NOMEM, "dnnl backend: out of memory");
    }
    tv = heap;
    pp = heapp;
  }
  for (int k = 0; k < n->n_in; k++) {
    view_of(s, n->in[k], slot_ptr(s, &s->slots[st->ins[k]], inputs, outputs),
            &tv[k]);
    pp[k] = &tv[k];
  }
  view_of(s, n->out, slot_ptr(s, &s->slots[st->out], inputs, outputs), &y);
  int rc = nn_dnnl_ref_node(e, n, pp, &y);
  free(heap);
  free(heapp);
  return rc;
}

static int dnnl_run(dlp_err *e, void *state, const float *const *inputs,
                    float *const *outputs) {
  dn_state *s = state;
  if (!s || (!inputs && s->g->n_inputs) || !outputs)
    return dlp_err_set(e, DLP_ERR_ARG, "dnnl backend: no plan or buffers");
  for (int k = 0; k < s->n_slots; k++) {
    dn_slot *sl = &s->slots[k];
    if (sl->kind == SL_INPUT || sl->kind == SL_OUTPUT)
      dnnl_memory_set_data_handle(sl->mem, slot_ptr(s, sl, inputs, outputs));
  }
  int prev = nn_dnnl_threads_set(s->threads);
  int rc = DLP_OK;
  for (int k = 0; k < s->n_steps && rc == DLP_OK; k++) {
    dn_step *st = &s->steps[k];
    if (st->prim) {
      dnnl_status_t ds =
          dnnl_primitive_execute(st->prim, s->strm, st->nargs, st->exec);
      if (ds != dnnl_success)
        rc = dlp_err_set(e, DLP_ERR_INTERNAL,
                         "dnnl backend: executing step %d failed: %s", k,
                         dnnl_status2str(ds));
    } else {
      dnnl_stream_wait(s->strm);
      rc = run_ref(e, s, st, inputs, outputs);
    }
  }
  dnnl_stream_wait(s->strm);
  nn_dnnl_threads_set(prev);
  return rc;
}

static size_t dnnl_arena_bytes(const void *state) {
  const dn_state *s = state;
  return s ? s->arena_size + s->scratch_size + s->owned_bytes : 0;
}

int nn_dnnl_fused_dw_count(const void *state) {
  const dn_state *s = state;
  return s ? s->n_fused_dw : 0;
}

const nn_backend_ops nn_backend_dnnl = {"dnnl", dnnl_plan, dnnl_run,
                                        dnnl_arena_bytes, dnnl_state_free};
const nn_backend_ops nn_backend_dnnl_bf16 = {
    "dnnl-bf16", dnnl_plan_bf16, dnnl_run, dnnl_arena_bytes, dnnl_state_free};
