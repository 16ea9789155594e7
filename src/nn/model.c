/* model.c - the public model API (dlp_model_*): opens a zoo architecture
 * (cached Keras weights or seeded random ones) or a model file, plans it
 * lazily per batch size, and runs featurize / predict / apply over frames,
 * decoding batch i+1 on the context's threads while batch i computes. */
#include "models.h"

#include "image/image.h"
#include "keras.h"
#include "zoo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PLAN_SLOTS 2        /* a full batch and the last, shorter one */
#define RUN_CHUNK 16        /* dlp_model_run's batch */
#define PATH_MAX_LEN 4096

typedef struct model_net {
  nn_graph *g;     /* finalized and optimized */
  int64_t dim;     /* output floats per sample */
  nn_plan *plan[PLAN_SLOTS];
  int64_t plan_batch[PLAN_SLOTS];
  int plan_threads[PLAN_SLOTS];
  int next_slot;
} model_net;

typedef enum model_src {
  SRC_ZOO_RANDOM = 1, /* zoo architecture, seeded random weights */
  SRC_ZOO_WEIGHTS,    /* zoo architecture + a Keras weights-only file */
  SRC_FILE            /* a full Keras or ONNX model file */
} model_src;

struct dlp_model {
  char *name;
  model_src src;
  const nn_zoo_entry *zoo;
  bool top;      /* zoo graph built with its classifier */
  char *path;    /* weights or model file */
  uint64_t seed;
  int req_h, req_w; /* input size asked for; 0 = the model's */
  uint64_t max_bytes;
  nn_backend backend;
  char *layer;   /* featurize's layer; NULL = the final output */
  model_net full, feat;
  model_net *featp; /* &full, &feat, or NULL until built */
  /* Input: an image (N,3,H,W) or a vector (N,D). */
  bool image_input;
  int64_t in_numel, fixed_batch; /* fixed_batch 0: any batch size */
  int32_t in_h, in_w;
  dlp_preprocess pp;
  bool softmax_out;
  int64_t n_params;
  /* A Keras file's class names (dlp_class_names), one per output; else
   * NULL and predictions name ImageNet classes when there are 1000. */
  nn_keras_meta meta;
};

/* --- options ------------------------------------------------------------ */

void dlp_model_opts_init(dlp_model_opts *o) {
  memset(o, 0, sizeof *o);
  o->fast = 1;
  o->precision = DLP_PRECISION_FP32;
  for (int c = 0; c < 3; c++) o->std[c] = 1;
}

void dlp_transform_opts_init(dlp_transform_opts *o) {
  memset(o, 0, sizeof *o);
  o->batch_size = 16;
}

/* --- nets: a graph with its plans ---------------------------------------- */

static void net_free(model_net *n) {
  for (int i = 0; i < PLAN_SLOTS; i++) nn_plan_free(n->plan[i]);
  nn_graph_free(n->g);
  memset(n, 0, sizeof *n);
}

void dlp_model_free(dlp_model *m) {
  if (!m) return;
  net_free(&m->full);
  net_free(&m->feat);
  free(m->name);
  free(m->path);
  free(m->layer);
  nn_keras_meta_clear(&m->meta);
  free(m);
}

static int64_t count_params(const nn_graph *g) {
  int64_t n = 0;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == NN_VALUE_CONST)
      n += nn_shape_numel(g->values[v].shape.ndim, g->values[v].shape.dims);
  return n;
}

/* Builds the model's graph, cut at `cut` when not NULL; finalized, not yet
 * optimized. */
static int build_graph(dlp_err *e, const dlp_model *m, const char *cut,
                       nn_graph **out) {
  nn_graph *g = NULL;
  int rc;
  *out = NULL;
  if (m->src == SRC_FILE) {
    rc = nn_model_load_file(e, m->path, m->max_bytes, m->req_h, m->req_w, &g);
  } else {
    rc = m->req_h > 0 ? nn_zoo_build_sized(e, m->zoo, m->top, m->req_h,
                                           m->req_w, &g)
                      : nn_zoo_build(e, m->zoo, m->top, &g);
    if (rc == DLP_OK)
      rc = m->src == SRC_ZOO_RANDOM
               ? nn_zoo_init_random(e, g, m->seed)
               : nn_keras_load_weights(e, m->path, m->max_bytes, g);
    if (rc == DLP_OK) rc = nn_graph_finalize(e, g);
  }
  if (rc == DLP_OK && cut) {
    bool is_out = g->n_outputs == 1 && g->values[g->outputs[0]].name &&
                  strcmp(g->values[g->outputs[0]].name, cut) == 0;
    if (!is_out) rc = nn_graph_cut(e, g, cut);
    if (rc == DLP_OK) rc = nn_graph_finalize(e, g);
  }
  if (rc != DLP_OK) {
    nn_graph_free(g);
    return rc;
  }
  *out = g;
  return DLP_OK;
}

/* Optimizes g and takes it into n (which then owns it). */
static int net_init(dlp_err *e, const char *model, nn_graph *g, model_net *n) {
  int rc = nn_graph_optimize(e, g);
  if (rc == DLP_OK && g->n_outputs != 1)
    rc = dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                     "%s has %d outputs; dlp runs models with one output",
                     model, g->n_outputs);
  if (rc != DLP_OK) {
    nn_graph_free(g);
    return rc;
  }
  nn_shape s = nn_graph_value_shape(g, g->outputs[0], 1);
  int64_t numel = nn_shape_numel(s.ndim, s.dims);
  int64_t b = s.ndim > 0 && s.dims[0] > 0 ? s.dims[0] : 1;
  n->g = g;
  n->dim = numel > 0 ? numel / b : 0;
  return DLP_OK;
}

static int net_plan(dlp_err *e, const dlp_model *m, model_net *n,
                    int64_t batch, int threads, nn_plan **p) {
  for (int i = 0; i < PLAN_SLOTS; i++)
    if (n->plan[i] && n->plan_batch[i] == batch &&
        n->plan_threads[i] == threads) {
      *p = n->plan[i];
      return DLP_OK;
    }
  int s = n->next_slot;
  n->next_slot = (s + 1) % PLAN_SLOTS;
  nn_plan_free(n->plan[s]);
  n->plan[s] = NULL;
  int rc = nn_plan_new(e, n->g, m->backend, batch, threads, &n->plan[s]);
  if (rc != DLP_OK) return rc;
  n->plan_batch[s] = batch;
  n->plan_threads[s] = threads;
  *p = n->plan[s];
  return DLP_OK;
}

/* Runs nb samples (graph layout) through n into out (nb * n->dim floats).
 * Models with a fixed batch size run in pieces of it, the last padded. */
static int net_run(dlp_err *e, const dlp_model *m, model_net *n,
                   const float *in, int64_t nb, int threads, float *out) {
  nn_plan *p = NULL;
  int64_t fb = m->fixed_batch;
  if (fb <= 0) {
    int rc = net_plan(e, m, n, nb, threads, &p);
    if (rc != DLP_OK) return rc;
    const float *ins[1] = {in};
    float *outs[1] = {out};
    return nn_plan_run(e, p, ins, outs);
  }
  int rc = net_plan(e, m, n, fb, threads, &p);
  float *xin = dlp_calloc_array((size_t)(fb * m->in_numel), sizeof(float));
  float *xout = dlp_calloc_array((size_t)(fb * n->dim), sizeof(float));
  if (rc == DLP_OK && (!xin || !xout))
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory for a batch");
  for (int64_t i = 0; rc == DLP_OK && i < nb; i += fb) {
    int64_t k = nb - i < fb ? nb - i : fb;
    memset(xin, 0, (size_t)(fb * m->in_numel) * sizeof(float));
    memcpy(xin, in + i * m->in_numel, (size_t)(k * m->in_numel) * sizeof(float));
    const float *ins[1] = {xin};
    float *outs[1] = {xout};
    rc = nn_plan_run(e, p, ins, outs);
    if (rc == DLP_OK)
      memcpy(out + i * n->dim, xout, (size_t)(k * n->dim) * sizeof(float));
  }
  free(xin);
  free(xout);
  return rc;
}

/* The net featurize uses, built on first use. */
static int feat_net(dlp_err *e, dlp_model *m, model_net **out) {
  if (!m->featp) {
    nn_graph *g = NULL;
    int rc = build_graph(e, m, m->layer, &g);
    if (rc == DLP_OK) rc = net_init(e, m->name, g, &m->feat);
    if (rc != DLP_OK) return rc;
    m->featp = &m->feat;
  }
  *out = m->featp;
  return DLP_OK;
}

/* --- opening ------------------------------------------------------------ */

static void zoo_names(char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < nn_zoo_count() && used < n; i++) {
    int k = snprintf(buf + used, n - used, "%s%s", i ? ", " : "",
                     nn_zoo_at(i)->name);
    if (k < 0) break;
    used += (size_t)k;
  }
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* A cached file: present and with the SHA-256 the index recorded. */
static int verify_cached(dlp_err *e, const char *path, const char *name,
                         const char *sha) {
  char got[65];
  int rc = nn_sha256_file(e, path, got);
  if (rc == DLP_ERR_NOT_FOUND)
    return dlp_err_set(e, DLP_ERR_NOT_FOUND,
                       "%s: the cached file %s is missing; import it again "
                       "with 'dlp models import FILE'", name, path);
  if (rc != DLP_OK) return rc;
  if (strcasecmp(got, sha) != 0)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: the cached file %s has changed since it was "
                       "imported (sha256 %s, expected %s); import it again",
                       name, path, got, sha);
  return DLP_OK;
}

static int not_cached(dlp_err *e, const nn_zoo_entry *z, const char *name,
                      const char *dir) {
  if (z)
    return dlp_err_set(
        e, DLP_ERR_NOT_FOUND,
        "%s weights are not in the model cache (%s): get %s (from %s) and "
        "run 'dlp models import FILE' (or 'dlp models fetch %s')",
        z->name, dir, z->weights_file, z->url ? z->url : "the Keras releases",
        z->name);
  char names[256];
  zoo_names(names, sizeof names);
  return dlp_err_set(e, DLP_ERR_NOT_FOUND,
                     "no model named '%s': it is neither a zoo architecture "
                     "(%s) nor imported into %s ('dlp models list' shows "
                     "them; 'dlp models import FILE --as %s' adds a file)",
                     name, names, dir, name);
}

/* Decides where the model comes from: a file, the zoo with random weights,
 * or the cache. */
static int resolve_source(dlp_err *e, dlp_model *m, const char *name,
                          const dlp_model_opts *o) {
  if (o->model_file) {
    m->src = SRC_FILE;
    m->path = dlp_strdup(o->model_file);
    m->name = dlp_strdup(name ? name : base_name(o->model_file));
    return m->path && m->name ? DLP_OK
                              : dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  }
  const nn_zoo_entry *z = nn_zoo_find_ci(name);
  m->zoo = z;
  m->name = dlp_strdup(z ? z->name : name);
  if (!m->name) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  if (o->random_weights) {
    if (!z) {
      char names[256];
      zoo_names(names, sizeof names);
      return dlp_err_set(e, DLP_ERR_ARG,
                         "random weights need a zoo architecture (%s), not "
                         "'%s'", names, name);
    }
    m->src = SRC_ZOO_RANDOM;
    m->top = true;
    m->seed = o->seed;
    return DLP_OK;
  }
  char dir[PATH_MAX_LEN], path[PATH_MAX_LEN];
  nn_cache_item it;
  int rc = nn_cache_dir(e, o->model_dir, dir, sizeof dir);
  if (rc != DLP_OK) return rc;
  rc = nn_cache_lookup(e, dir, name, &it);
  if (rc == DLP_ERR_NOT_FOUND) return not_cached(e, z, name, dir);
  if (rc != DLP_OK) return rc;
  rc = nn_cache_path(e, dir, it.file, path, sizeof path);
  if (rc == DLP_OK) rc = verify_cached(e, path, m->name, it.sha256);
  if (rc == DLP_OK) {
    bool weights = strcmp(it.kind, NN_CACHE_KIND_WEIGHTS) == 0;
    bool notop = strcmp(it.kind, NN_CACHE_KIND_WEIGHTS_NOTOP) == 0;
    if ((weights || notop) && !z)
      rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                       "the cache lists %s as weights of an unknown "
                       "architecture", it.name);
    m->src = (weights || notop) ? SRC_ZOO_WEIGHTS : SRC_FILE;
    m->top = weights;
    m->path = dlp_strdup(path);
    if (rc == DLP_OK && !m->path)
      rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  }
  nn_cache_item_clear(&it);
  return rc;
}

/* Reads the input's facts from the full graph and sets the preprocessing. */
static int setup_input(dlp_err *e, dlp_model *m, const dlp_model_opts *o) {
  const nn_graph *g = m->full.g;
  if (g->n_inputs != 1)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "%s has %d inputs; dlp feeds models with one input",
                       m->name, g->n_inputs);
  nn_shape s = g->values[g->inputs[0]].shape;
  m->fixed_batch = s.dims[0] > 0 ? s.dims[0] : 0;
  if (s.ndim == 4) {
    if (s.dims[1] != 3)
      return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                         "%s takes %lld-channel images; dlp feeds RGB (3 "
                         "channels)", m->name, (long long)s.dims[1]);
    if (s.dims[2] <= 0 || s.dims[3] <= 0)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "%s does not say its input size; give one "
                         "(--input-size HxW)", m->name);
    if (m->req_h > 0 && (s.dims[2] != m->req_h || s.dims[3] != m->req_w))
      return dlp_err_set(e, DLP_ERR_ARG,
                         "%s takes %lldx%lld images, not the %dx%d asked for",
                         m->name, (long long)s.dims[2], (long long)s.dims[3],
                         m->req_h, m->req_w);
    m->image_input = true;
    m->in_h = (int32_t)s.dims[2];
    m->in_w = (int32_t)s.dims[3];
    m->in_numel = 3 * s.dims[2] * s.dims[3];
  } else if (s.ndim == 2 && s.dims[1] > 0) {
    m->in_numel = s.dims[1];
  } else {
    char buf[64];
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "%s takes inputs of shape %s; dlp feeds images "
                       "(N,3,H,W) or vectors (N,D)", m->name,
                       nn_shape_str(s.ndim, s.dims, buf, sizeof buf));
  }
  dlp_preprocess_init(&m->pp);
  m->pp.width = m->in_w > 0 ? m->in_w : 1;
  m->pp.height = m->in_h > 0 ? m->in_h : 1;
  m->pp.layout = DLP_LAYOUT_NCHW;
  m->pp.norm = o->norm_set ? o->norm
               : m->zoo    ? m->zoo->norm
                           : g->input_spec.norm;
  m->pp.bgr = o->bgr;
  for (int c = 0; c < 3; c++) {
    m->pp.mean[c] = o->mean[c];
    m->pp.std[c] = o->std[c] != 0 ? o->std[c] : 1;
  }
  const nn_node *last = NULL;
  int prod = g->values[g->outputs[0]].producer;
  if (prod >= 0) last = &g->nodes[prod];
  m->softmax_out = last && last->op == NN_OP_SOFTMAX;
  return DLP_OK;
}

/* The class names a Keras model file carries (the loader has checked them
 * against the graph; the count is checked again against the net, as the
 * file is read twice). */
static int read_class_names(dlp_err *e, dlp_model *m) {
  nn_file_kind kind;
  dlp_err ignored = {0}; /* the loader has read the file already */
  if (m->src != SRC_FILE ||
      nn_model_file_kind(&ignored, m->path, &kind) != DLP_OK ||
      kind != NN_FILE_KERAS)
    return DLP_OK;
  int rc = nn_keras_file_meta(e, m->path, m->max_bytes, &m->meta);
  if (rc == DLP_OK && m->meta.class_names &&
      m->meta.n_class_names != m->full.dim)
    rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: attribute 'dlp_class_names' lists %d class names "
                     "but the model gives %lld outputs",
                     m->path, m->meta.n_class_names, (long long)m->full.dim);
  return rc;
}

static int open_model(dlp_err *e, dlp_model *m, const char *name,
                      const dlp_model_opts *o) {
  int rc = resolve_source(e, m, name, o);
  if (rc != DLP_OK) return rc;
  nn_graph *g = NULL;
  rc = build_graph(e, m, NULL, &g);
  if (rc != DLP_OK) return rc;
  m->n_params = count_params(g);
  rc = net_init(e, m->name, g, &m->full);
  if (rc == DLP_OK) rc = setup_input(e, m, o);
  if (rc == DLP_OK) rc = read_class_names(e, m);
  if (rc != DLP_OK) return rc;
  const char *layer = o->layer;
  if (!layer && m->zoo && m->src != SRC_FILE) layer = m->zoo->feature_layer;
  if (!layer) {
    m->featp = &m->full;
    return DLP_OK;
  }
  m->layer = dlp_strdup(layer);
  if (!m->layer) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  /* An explicit layer is checked now, so a typo fails at open. */
  model_net *n;
  return o->layer ? feat_net(e, m, &n) : DLP_OK;
}

int dlp_model_open(dlp_ctx *ctx, const char *name, const dlp_model_opts *opts,
                   dlp_model **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "model open: out is NULL");
  *out = NULL;
  dlp_model_opts defaults;
  if (!opts) {
    dlp_model_opts_init(&defaults);
    opts = &defaults;
  }
  if (!name && !opts->model_file)
    return dlp_fail(ctx, DLP_ERR_ARG, "model open: give a model name or file");
  if (opts->precision == DLP_PRECISION_BF16 && !opts->fast)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "bf16 precision needs the oneDNN backend (drop "
                    "--reference, or use --precision fp32)");
  if ((opts->input_width > 0) != (opts->input_height > 0) ||
      opts->input_width < 0 || opts->input_height < 0)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "model open: give both input width and height, or neither");
  dlp_model *m = calloc(1, sizeof *m);
  if (!m) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a model");
  m->backend = !opts->fast ? NN_BACKEND_REF
               : opts->precision == DLP_PRECISION_BF16 ? NN_BACKEND_DNNL_BF16
                                                       : NN_BACKEND_DNNL;
  m->max_bytes = dlp_ctx_max_file_bytes(ctx);
  m->req_h = opts->input_height;
  m->req_w = opts->input_width;
  dlp_err e = {0};
  int rc = open_model(&e, m, name, opts);
  if (rc != DLP_OK) {
    dlp_model_free(m);
    return dlp_fail_from(ctx, &e);
  }
  *out = m;
  return dlp_ok(ctx);
}

void dlp_model_get_info(const dlp_model *m, dlp_model_info *info) {
  memset(info, 0, sizeof *info);
  if (!m) return;
  info->name = m->name;
  info->input_width = m->in_w;
  info->input_height = m->in_h;
  info->input_channels = m->image_input ? 3 : 0;
  info->norm = m->pp.norm;
  if (m->featp)
    info->feature_dim = m->featp->dim;
  else if (m->zoo && m->req_h <= 0)
    info->feature_dim = m->zoo->feature_dim;
  /* A zoo model without its classifier has no classes to predict. */
  bool classifier = m->src == SRC_FILE || m->top;
  nn_shape s = nn_graph_value_shape(m->full.g, m->full.g->outputs[0], 1);
  info->n_classes = classifier && s.ndim == 2 ? m->full.dim : 0;
  info->feature_layer = m->layer;
  info->n_params = m->n_params;
}

/* --- dlp_model_run ------------------------------------------------------ */

/* NHWC (dlp_image_to_tensor's default) to the graph's NCHW. */
static void nhwc_to_nchw(const float *in, int64_t n, int32_t h, int32_t w,
                         float *out) {
  int64_t hw = (int64_t)h * w;
  for (int64_t i = 0; i < n; i++) {
    const float *src = in + i * hw * 3;
    float *dst = out + i * hw * 3;
    for (int64_t p = 0; p < hw; p++)
      for (int c = 0; c < 3; c++) dst[c * hw + p] = src[p * 3 + c];
  }
}

int dlp_model_run(dlp_ctx *ctx, dlp_model *m, const float *in, size_t n,
                  int which, float *out, size_t *dim) {
  if (!m || (!in && n) || (!out && n))
    return dlp_fail(ctx, DLP_ERR_ARG, "model run: NULL argument");
  dlp_err e = {0};
  model_net *net = &m->full;
  int rc = which ? DLP_OK : feat_net(&e, m, &net);
  float *buf = NULL;
  if (rc == DLP_OK && m->image_input) {
    buf = dlp_malloc_array((size_t)(RUN_CHUNK * m->in_numel), sizeof(float));
    if (!buf) rc = dlp_err_set(&e, DLP_ERR_NOMEM, "no memory for a batch");
  }
  int threads = dlp_ctx_threads(ctx);
  for (size_t i = 0; rc == DLP_OK && i < n; i += RUN_CHUNK) {
    int64_t k = (int64_t)(n - i < RUN_CHUNK ? n - i : RUN_CHUNK);
    const float *x = in + i * (size_t)m->in_numel;
    if (buf) {
      nhwc_to_nchw(x, k, m->in_h, m->in_w, buf);
      x = buf;
    }
    rc = net_run(&e, m, net, x, k, threads, out + i * (size_t)net->dim);
  }
  free(buf);
  if (rc != DLP_OK) return dlp_fail_from(ctx, &e);
  if (dim) *dim = (size_t)net->dim;
  return dlp_ok(ctx);
}

/* --- transforms over frames --------------------------------------------- */

typedef enum tmode { T_FEATURIZE, T_PREDICT, T_APPLY } tmode;

/* One batch: its rows, their inputs, per-row decode errors, its outputs. */
typedef struct batch {
  size_t *rows;
  size_t n;
  float *in, *out;
  char **err; /* per slot, NULL when the input is good */
} batch;

typedef struct decode_job {
  const dlp_frame *f;
  size_t col;
  bool vector_col;
  const dlp_model *m;
  dlp_limits lim;
  batch *b;
} decode_job;

static int decode_image(dlp_err *e, const decode_job *j, size_t row,
                        float *dst) {
  dlp_image_meta meta;
  if (!dlp_frame_get_image_meta(j->f, j->col, row, &meta))
    return dlp_err_set(e, DLP_ERR_ARG, "no image");
  if (meta.error) return dlp_err_set(e, DLP_ERR_CORRUPT, "%s", meta.error);
  if (!meta.bytes) {
    if (!meta.origin) return dlp_err_set(e, DLP_ERR_ARG, "no image path");
    return dlp_img_file_to_tensor(e, &j->lim, meta.origin, &j->m->pp, dst);
  }
  dlp_decode_opts d;
  dlp_decode_opts_init(&d);
  d.target_width = j->m->pp.width;
  d.target_height = j->m->pp.height;
  dlp_image *img = NULL;
  int rc = dlp_img_decode(e, &j->lim, meta.bytes, meta.n_bytes, &d, &img);
  if (rc == DLP_OK) rc = dlp_img_to_tensor(e, img, &j->m->pp, dst);
  dlp_image_free(img);
  return rc;
}

static void decode_one(size_t i, void *user, int worker) {
  (void)worker;
  decode_job *j = user;
  batch *b = j->b;
  float *dst = b->in + i * (size_t)j->m->in_numel;
  dlp_err e = {0};
  int rc;
  if (j->vector_col) {
    const float *v = NULL;
    rc = dlp_frame_get_vector(j->f, j->col, b->rows[i], &v)
             ? DLP_OK
             : dlp_err_set(&e, DLP_ERR_ARG, "null vector");
    if (rc == DLP_OK)
      memcpy(dst, v, (size_t)j->m->in_numel * sizeof(float));
  } else {
    rc = decode_image(&e, j, b->rows[i], dst);
  }
  if (rc != DLP_OK) {
    memset(dst, 0, (size_t)j->m->in_numel * sizeof(float));
    b->err[i] = dlp_strdup(e.msg[0] ? e.msg : dlp_errstr(rc));
    if (!b->err[i]) b->err[i] = dlp_strdup("out of memory");
  }
}

typedef struct compute_job {
  const dlp_model *m;
  model_net *net;
  batch *b;
  int threads;
  dlp_err e;
  int rc;
} compute_job;

static void *compute(void *user) {
  compute_job *c = user;
  c->rc = net_run(&c->e, c->m, c->net, c->b->in, (int64_t)c->b->n, c->threads,
                  c->b->out);
  return NULL;
}

/* The per-row results collected before the output frame is built. */
typedef struct results {
  tmode mode;
  int k;
  int64_t dim;       /* floats per row (vector modes) */
  float *vec;        /* nrows * dim */
  char **json;       /* predict: nrows strings */
  char **err;        /* rows whose input failed: why */
  uint8_t *ok;
} results;

typedef struct scored {
  float p;
  int i;
} scored;

static int by_prob(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->p != y->p) return x->p < y->p ? 1 : -1;
  return x->i - y->i;
}

/* The top k of probabilities p[0..nc) as dlp_model_predict's JSON; each
 * class described by names[class] when given, else by its ImageNet name
 * when there are 1000. */
static char *topk_json(const float *logits, int64_t nc, int k, bool softmax,
                       char *const *names, scored *tmp) {
  double mx = -INFINITY, sum = 0;
  for (int64_t c = 0; c < nc; c++)
    if (logits[c] > mx) mx = logits[c];
  if (!softmax)
    for (int64_t c = 0; c < nc; c++) sum += exp((double)logits[c] - mx);
  for (int64_t c = 0; c < nc; c++) {
    tmp[c].i = (int)c;
    tmp[c].p = softmax ? logits[c] : (float)(exp((double)logits[c] - mx) / sum);
  }
  qsort(tmp, (size_t)nc, sizeof *tmp, by_prob);
  cJSON *arr = cJSON_CreateArray();
  for (int r = 0; arr && r < k && r < nc; r++) {
    cJSON *o = cJSON_CreateObject();
    const char *d = names        ? names[tmp[r].i]
                    : nc == 1000 ? dlp_imagenet_class(tmp[r].i)
                                 : NULL;
    if (!o || !cJSON_AddNumberToObject(o, "class", tmp[r].i) ||
        (d && !cJSON_AddStringToObject(o, "description", d)) ||
        !cJSON_AddNumberToObject(o, "probability", tmp[r].p) ||
        !cJSON_AddItemToArray(arr, o)) {
      cJSON_Delete(o);
      cJSON_Delete(arr);
      return NULL;
    }
  }
  char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
  cJSON_Delete(arr);
  return s;
}

static int collect(dlp_err *e, const dlp_model *m, const model_net *net,
                   batch *b, results *r) {
  scored *tmp = NULL;
  if (r->mode == T_PREDICT) {
    tmp = dlp_malloc_array((size_t)net->dim, sizeof *tmp);
    if (!tmp) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  }
  for (size_t i = 0; i < b->n; i++) {
    size_t row = b->rows[i];
    if (b->err[i]) {
      r->err[row] = b->err[i];
      b->err[i] = NULL;
      continue;
    }
    const float *o = b->out + i * (size_t)net->dim;
    if (r->mode == T_PREDICT) {
      r->json[row] = topk_json(o, net->dim, r->k, m->softmax_out,
                               m->meta.class_names, tmp);
      if (!r->json[row]) {
        free(tmp);
        return dlp_err_set(e, DLP_ERR_NOMEM, "no memory for predictions");
      }
    } else {
      memcpy(r->vec + row * (size_t)r->dim, o, (size_t)r->dim * sizeof(float));
    }
    r->ok[row] = 1;
  }
  free(tmp);
  return DLP_OK;
}

static void batch_free(batch *b) {
  if (b->err)
    for (size_t i = 0; i < b->n; i++) free(b->err[i]);
  free(b->rows);
  free(b->in);
  free(b->out);
  free(b->err);
}

static int batch_alloc(dlp_err *e, batch *b, size_t cap, int64_t in_numel,
                       int64_t out_dim) {
  memset(b, 0, sizeof *b);
  b->rows = dlp_malloc_array(cap, sizeof *b->rows);
  b->err = dlp_calloc_array(cap, sizeof *b->err);
  b->in = dlp_malloc_array(cap, (size_t)in_numel * sizeof(float));
  b->out = dlp_malloc_array(cap, (size_t)out_dim * sizeof(float));
  if (!b->rows || !b->err || !b->in || !b->out)
    return dlp_err_set(e, DLP_ERR_NOMEM, "no memory for a batch of %zu", cap);
  return DLP_OK;
}

/* Fills b with the next rows of cand from *pos and decodes them. */
static void fill_batch(decode_job *j, batch *b, const size_t *cand,
                       size_t ncand, size_t *pos, size_t cap, int threads) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->err[i]);
    b->err[i] = NULL;
  }
  b->n = ncand - *pos < cap ? ncand - *pos : cap;
  memcpy(b->rows, cand + *pos, b->n * sizeof *b->rows);
  *pos += b->n;
  j->b = b;
  dlp_parallel_for(b->n, threads, decode_one, j, NULL, NULL);
}

typedef struct run_ctx {
  dlp_ctx *ctx;
  dlp_model *m;
  model_net *net;
  decode_job job;
  const char *what;
  size_t batch_size;
} run_ctx;

/* Runs every candidate row in batches. Decoding batch i+1 overlaps the
 * computation of batch i only on cores the network does not use: oneDNN's
 * OpenMP team spins at a barrier after every layer, so a decoding thread that
 * takes one of its cores stalls the whole team (measured on 2 cores:
 * MobileNetV2 featurize fell from ~100 to 9 img/s). With every core given to
 * the network (the default), decode (on all cores) and compute alternate. */
static int run_rows(dlp_err *e, run_ctx *rc_, const size_t *cand,
                    size_t ncand, results *r) {
  size_t cap = rc_->batch_size < ncand ? rc_->batch_size : ncand;
  if (cap == 0) return DLP_OK;
  int threads = dlp_ctx_threads(rc_->ctx);
  int spare = dlp_cpu_count() - threads;
  bool overlap = spare >= 1;
  int dthreads = overlap ? spare : threads;
  batch bufs[2];
  int rc = batch_alloc(e, &bufs[0], cap, rc_->m->in_numel, rc_->net->dim);
  if (rc == DLP_OK)
    rc = batch_alloc(e, &bufs[1], cap, rc_->m->in_numel, rc_->net->dim);
  size_t pos = 0, done = 0;
  if (rc == DLP_OK)
    fill_batch(&rc_->job, &bufs[0], cand, ncand, &pos, cap, threads);
  for (int cur = 0; rc == DLP_OK && bufs[cur].n > 0; cur ^= 1) {
    compute_job cj = {rc_->m, rc_->net, &bufs[cur], threads, {0}, DLP_OK};
    pthread_t th;
    bool threaded = overlap && pthread_create(&th, NULL, compute, &cj) == 0;
    if (!threaded) compute(&cj);
    batch *next = &bufs[cur ^ 1];
    if (pos < ncand)
      fill_batch(&rc_->job, next, cand, ncand, &pos, cap, dthreads);
    else
      next->n = 0;
    if (threaded) pthread_join(th, NULL);
    if (cj.rc != DLP_OK) {
      *e = cj.e;
      rc = cj.rc;
      break;
    }
    rc = collect(e, rc_->m, rc_->net, &bufs[cur], r);
    done += bufs[cur].n;
    if (rc == DLP_OK && dlp_progress(rc_->ctx, rc_->what, done, ncand, false))
      rc = dlp_err_set(e, DLP_ERR_ARG, "cancelled");
  }
  if (rc == DLP_OK) dlp_progress(rc_->ctx, rc_->what, done, ncand, true);
  batch_free(&bufs[0]);
  batch_free(&bufs[1]);
  return rc;
}

static void results_free(results *r, size_t nrows) {
  for (size_t i = 0; i < nrows; i++) {
    if (r->json) free(r->json[i]);
    if (r->err) free(r->err[i]);
  }
  free(r->json);
  free(r->err);
  free(r->vec);
  free(r->ok);
}

/* The output frame: the input's rows (less the failed ones with
 * drop_invalid), the new column, and decode errors recorded in the image
 * cells of rows that failed only now. */
static int build_output(dlp_ctx *ctx, const dlp_frame *in, size_t col,
                        bool image_col, const results *r, const char *name,
                        bool drop, dlp_frame **out) {
  size_t nrows = dlp_frame_nrows(in), nkeep = 0;
  size_t *keep = dlp_malloc_array(nrows + 1, sizeof *keep);
  if (!keep) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory");
  for (size_t i = 0; i < nrows; i++)
    if (!drop || r->ok[i]) keep[nkeep++] = i;
  dlp_frame *f = NULL;
  int rc = dlp_frame_take(ctx, in, keep, nkeep, &f);
  if (rc == DLP_OK)
    rc = dlp_frame_add_column(ctx, f, name,
                              r->mode == T_PREDICT ? DLP_TYPE_STRING
                                                   : DLP_TYPE_VECTOR,
                              r->mode == T_PREDICT ? 0 : (size_t)r->dim);
  size_t oc = dlp_frame_ncols(f) - 1;
  for (size_t k = 0; rc == DLP_OK && k < nkeep; k++) {
    size_t row = keep[k];
    if (r->ok[row]) {
      rc = r->mode == T_PREDICT
               ? dlp_frame_set_string(ctx, f, oc, k, r->json[row])
               : dlp_frame_set_vector(ctx, f, oc, k,
                                      r->vec + row * (size_t)r->dim);
    } else if (image_col && r->err[row]) {
      dlp_image_meta meta;
      if (dlp_frame_get_image_meta(f, col, k, &meta) && !meta.error) {
        meta.error = r->err[row];
        rc = dlp_frame_set_image_meta(ctx, f, col, k, &meta);
      }
    }
  }
  free(keep);
  if (rc != DLP_OK) {
    dlp_frame_free(f);
    return rc;
  }
  *out = f;
  return DLP_OK;
}

static int transform(dlp_ctx *ctx, dlp_model *m, const dlp_frame *in,
                     const char *col_name, tmode mode, int k,
                     const dlp_transform_opts *o, dlp_frame **out) {
  static const char *what[] = {"featurizing", "predicting", "applying"};
  static const char *def_col[] = {"features", "predictions", "output"};
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "%s: out is NULL", what[mode]);
  *out = NULL;
  if (!m || !in) return dlp_fail(ctx, DLP_ERR_ARG, "%s: NULL argument",
                                 what[mode]);
  dlp_transform_opts defaults;
  if (!o) {
    dlp_transform_opts_init(&defaults);
    o = &defaults;
  }
  if (!col_name) col_name = "image";
  long col = dlp_frame_col_index(in, col_name);
  if (col < 0)
    return dlp_fail(ctx, DLP_ERR_NOT_FOUND, "the table has no column '%s'",
                    col_name);
  dlp_type t = dlp_frame_col_type(in, (size_t)col);
  bool vector_col = t == DLP_TYPE_VECTOR;
  if (t != DLP_TYPE_IMAGE && !(mode == T_APPLY && vector_col))
    return dlp_fail(ctx, DLP_ERR_SCHEMA,
                    "column '%s' holds %s values, not images%s", col_name,
                    dlp_type_name(t), mode == T_APPLY ? " or vectors" : "");
  if (vector_col && (m->image_input ||
                     (int64_t)dlp_frame_col_dim(in, (size_t)col) != m->in_numel))
    return dlp_fail(ctx, DLP_ERR_SCHEMA,
                    "column '%s' holds %zu-d vectors but %s takes %s",
                    col_name, dlp_frame_col_dim(in, (size_t)col), m->name,
                    m->image_input ? "images" : "another size");
  if (!vector_col && !m->image_input)
    return dlp_fail(ctx, DLP_ERR_SCHEMA,
                    "%s takes %lld-d vectors, not images: give a vector column",
                    m->name, (long long)m->in_numel);
  if (mode == T_PREDICT && m->zoo && m->src != SRC_FILE && !m->top)
    return dlp_fail(ctx, DLP_ERR_UNSUPPORTED,
                    "%s was imported without its classifier (notop weights), "
                    "so it cannot predict: import %s for that (featurize "
                    "works)", m->name, m->zoo->weights_file);
  if (mode == T_PREDICT && k < 1)
    return dlp_fail(ctx, DLP_ERR_ARG, "predict: k must be at least 1");
  dlp_err e = {0};
  run_ctx rx = {ctx, m, &m->full, {0}, what[mode], o->batch_size ? o->batch_size : 16};
  int rc = mode == T_FEATURIZE ? feat_net(&e, m, &rx.net) : DLP_OK;
  if (rc != DLP_OK) return dlp_fail_from(ctx, &e);
  rx.job = (decode_job){in, (size_t)col, vector_col, m, dlp_ctx_limits(ctx), NULL};
  size_t nrows = dlp_frame_nrows(in), ncand = 0;
  results r = {mode, k, rx.net->dim, NULL, NULL, NULL, NULL};
  size_t *cand = dlp_malloc_array(nrows + 1, sizeof *cand);
  r.ok = calloc(nrows + 1, 1);
  r.err = dlp_calloc_array(nrows + 1, sizeof *r.err);
  if (mode == T_PREDICT)
    r.json = dlp_calloc_array(nrows + 1, sizeof *r.json);
  else
    r.vec = dlp_calloc_array(nrows + 1, (size_t)r.dim * sizeof(float));
  if (!cand || !r.ok || !r.err || (!r.json && !r.vec)) {
    rc = dlp_err_set(&e, DLP_ERR_NOMEM, "no memory for %zu rows", nrows);
  } else {
    for (size_t i = 0; i < nrows; i++) {
      dlp_image_meta meta;
      bool usable = vector_col ? !dlp_frame_is_null(in, (size_t)col, i)
                               : dlp_frame_get_image_meta(in, (size_t)col, i,
                                                          &meta) &&
                                     !meta.error;
      if (usable) cand[ncand++] = i;
    }
    rc = run_rows(&e, &rx, cand, ncand, &r);
  }
  free(cand);
  if (rc == DLP_OK) {
    rc = build_output(ctx, in, (size_t)col, !vector_col, &r,
                      o->output_col ? o->output_col : def_col[mode],
                      o->drop_invalid != 0, out);
  } else {
    rc = dlp_fail_from(ctx, &e);
  }
  results_free(&r, nrows);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

int dlp_model_featurize(dlp_ctx *ctx, dlp_model *m, const dlp_frame *in,
                        const char *image_col, const dlp_transform_opts *o,
                        dlp_frame **out) {
  return transform(ctx, m, in, image_col, T_FEATURIZE, 0, o, out);
}

int dlp_model_predict(dlp_ctx *ctx, dlp_model *m, const dlp_frame *in,
                      const char *image_col, int k, const dlp_transform_opts *o,
                      dlp_frame **out) {
  return transform(ctx, m, in, image_col, T_PREDICT, k, o, out);
}

int dlp_model_apply(dlp_ctx *ctx, dlp_model *m, const dlp_frame *in,
                    const char *input_col, const dlp_transform_opts *o,
                    dlp_frame **out) {
  return transform(ctx, m, in, input_col, T_APPLY, 0, o, out);
}
