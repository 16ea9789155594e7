/* keras_save.c - Keras HDF5 writer: a finalized graph as a tf.keras 2.x
 * full-model file or a keras-applications weights file, the inverse of
 * keras.c (NCHW graph values become channels_last Keras tensors, OIHW
 * kernels HWIO). Hand-written: no C library writes Keras configs. */
#include "h5_session.h"
#include "keras.h"
#include "zoo.h"

#include <cjson/cJSON.h>
#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KS_KERAS_VERSION "2.11.0" /* the tf.keras 2.x layout we write */
#define KS_MAX_NAME 200

/* How a graph value stands for a Keras tensor. */
enum {
  KL_NONE = 0, /* not (yet) a Keras tensor */
  KL_NCHW,     /* 4-D NCHW value of an NHWC Keras tensor */
  KL_NHWC,     /* 4-D value already in the Keras order (after a transpose) */
  KL_FLAT      /* rank 2: same order in both */
};

/* Graph const -> Keras dataset conversions. */
enum {
  KW_COPY = 0, /* same layout */
  KW_HWIO,     /* (O, I, KH, KW) -> (KH, KW, I, O); also depthwise */
  KW_T         /* dense (out, in) with transb -> (in, out) */
};

typedef struct ks_weight {
  const char *role; /* "kernel", ... */
  int v;            /* graph const */
  int kind;         /* KW_* */
  int ndim;
  int64_t dims[4]; /* Keras shape */
} ks_weight;

typedef struct ks_layer {
  char *name;
  cJSON *cfg; /* owned by the layer's entry in s->jlayers */
  cJSON *json;
  ks_weight w[4];
  int n_w;
} ks_layer;

typedef struct ks_ref {
  int layer; /* index in s->layers, -1 when none */
  int layout;
} ks_ref;

typedef struct ks_state {
  dlp_err *e;
  const nn_graph *g;
  nn_keras_save_opts o;
  ks_layer *layers;
  int n_layers, cap_layers;
  cJSON *jlayers; /* the config's "layers" */
  ks_ref *ref;    /* per value */
  int *uses;      /* per value: node inputs and graph outputs reading it */
  int *reader;    /* per value: the last node reading it */
  bool *done;     /* per node: translated with an earlier node */
  bool oom;       /* a cJSON allocation failed */
} ks_state;

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static int nfail(ks_state *s, int ni, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int nfail(ks_state *s, int ni, int code, const char *fmt, ...) {
  char msg[DLP_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const nn_node *n = &s->g->nodes[ni];
  return dlp_err_set(s->e, code, "keras save: node '%s' (%s): %s", n->name,
                     nn_op_name(n->op), msg);
}

static int unsupported(ks_state *s, int ni, const char *why) {
  return nfail(s, ni, DLP_ERR_UNSUPPORTED, "has no Keras equivalent: %s", why);
}

static void jnum(ks_state *s, cJSON *o, const char *k, double v) {
  if (!cJSON_AddNumberToObject(o, k, v)) s->oom = true;
}
static void jstr(ks_state *s, cJSON *o, const char *k, const char *v) {
  if (!cJSON_AddStringToObject(o, k, v)) s->oom = true;
}
static void jbool(ks_state *s, cJSON *o, const char *k, bool v) {
  if (!cJSON_AddBoolToObject(o, k, v)) s->oom = true;
}
static void jnull(ks_state *s, cJSON *o, const char *k) {
  if (!cJSON_AddNullToObject(o, k)) s->oom = true;
}
static void jadd(ks_state *s, cJSON *o, const char *k, cJSON *v) {
  if (!v || !cJSON_AddItemToObject(o, k, v)) {
    cJSON_Delete(v);
    s->oom = true;
  }
}
static cJSON *jints(const int *v, int n) { return cJSON_CreateIntArray(v, n); }
static void jpair(ks_state *s, cJSON *o, const char *k, int a, int b) {
  jadd(s, o, k, jints((int[]){a, b}, 2));
}

/* The shortest decimal that reads back as f, as a double for cJSON, so
 * configs say 0.001 rather than 0.0010000000474974513. */
static double short_float(float f) {
  char buf[32];
  for (int p = 1; p <= 9; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, (double)f);
    if (strtof(buf, NULL) == f) return strtod(buf, NULL);
  }
  return (double)f;
}

static const char *const ROLES[] = {
    "kernel", "bias", "depthwise_kernel", "pointwise_kernel",
    "gamma",  "beta", "moving_mean",      "moving_variance"};

/* The role of a const named "<layer>/<role>" (NULL if not so named); the
 * layer part goes to prefix. */
static const char *const_role(const char *name, char *prefix, size_t n) {
  const char *sl = strrchr(name, '/');
  if (!sl || sl == name) return NULL;
  for (size_t i = 0; i < sizeof ROLES / sizeof ROLES[0]; i++)
    if (strcmp(sl + 1, ROLES[i]) == 0) {
      snprintf(prefix, n, "%.*s", (int)(sl - name), name);
      return ROLES[i];
    }
  return NULL;
}

/* The Keras name a layer would have from base: invalid characters become
 * '_' (a '/' would nest HDF5 groups, a ':' break weight names). */
static void clean_name(const char *base, char *out) {
  size_t n = 0;
  if (!((base[0] >= 'a' && base[0] <= 'z') ||
        (base[0] >= 'A' && base[0] <= 'Z') || base[0] == '_'))
    out[n++] = 'l', out[n++] = '_';
  for (const char *p = base; *p && n < KS_MAX_NAME; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    out[n++] = ok ? c : '_';
  }
  out[n] = '\0';
}

static bool name_taken(const ks_state *s, const char *name) {
  for (int i = 0; i < s->n_layers; i++)
    if (strcmp(s->layers[i].name, name) == 0) return true;
  return false;
}

/* ------------------------------------------------------------------------
 * Layers
 * ------------------------------------------------------------------------ */

/* Starts a layer of class cls named after base (made valid and unique) with
 * the common config keys; *out gets its index. Inbound nodes come from
 * set_inbound. */
static int layer_new(ks_state *s, const char *cls, const char *base, int *out) {
  char clean[KS_MAX_NAME + 8], name[KS_MAX_NAME + 32];
  clean_name(base, clean);
  snprintf(name, sizeof name, "%s", clean);
  for (int k = 1; name_taken(s, name); k++)
    snprintf(name, sizeof name, "%s_%d", clean, k);
  if (s->n_layers == s->cap_layers) {
    int cap = s->cap_layers ? 2 * s->cap_layers : 64;
    ks_layer *l = dlp_realloc_array(s->layers, (size_t)cap, sizeof *l);
    if (!l) return dlp_err_set(s->e, DLP_ERR_NOMEM, "keras save: no memory");
    s->layers = l;
    s->cap_layers = cap;
  }
  cJSON *json = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
  bool attached = json && cfg &&
                  cJSON_AddStringToObject(json, "class_name", cls) &&
                  cJSON_AddItemToObject(json, "config", cfg);
  if (!attached) cJSON_Delete(cfg);
  char *nm = dlp_strdup(name);
  if (!attached || !nm || !cJSON_AddItemToArray(s->jlayers, json)) {
    cJSON_Delete(json); /* and cfg, once attached */
    free(nm);
    return dlp_err_set(s->e, DLP_ERR_NOMEM, "keras save: no memory");
  }
  ks_layer *L = &s->layers[s->n_layers++];
  memset(L, 0, sizeof *L);
  L->name = nm;
  L->json = json;
  L->cfg = cfg;
  jstr(s, L->json, "name", name);
  jstr(s, L->cfg, "name", name);
  jbool(s, L->cfg, "trainable", true);
  jstr(s, L->cfg, "dtype", "float32");
  *out = s->n_layers - 1;
  return DLP_OK;
}

/* Appends item to array arr (deleting it when that fails). */
static void jpush(ks_state *s, cJSON *arr, cJSON *item) {
  if (!arr || !item || !cJSON_AddItemToArray(arr, item)) {
    cJSON_Delete(item);
    s->oom = true;
  }
}

/* [name, 0, 0(, {})]: a reference to the first output of a layer. */
static cJSON *tensor_ref(ks_state *s, const char *name, bool kwargs) {
  cJSON *r = cJSON_CreateArray();
  jpush(s, r, cJSON_CreateString(name));
  jpush(s, r, cJSON_CreateNumber(0));
  jpush(s, r, cJSON_CreateNumber(0));
  if (kwargs) jpush(s, r, cJSON_CreateObject());
  return r;
}

/* inbound_nodes of layer li: one call on the Keras tensors of values in[]. */
static void set_inbound(ks_state *s, int li, const int *in, int n) {
  cJSON *calls = cJSON_CreateArray(), *call = cJSON_CreateArray();
  for (int i = 0; i < n && call; i++)
    jpush(s, call, tensor_ref(s, s->layers[s->ref[in[i]].layer].name, true));
  jpush(s, calls, call);
  jadd(s, s->layers[li].json, "inbound_nodes", calls);
}

/* A layer fed by value x whose output stands for value out. */
static int layer_on(ks_state *s, const char *cls, const char *base, int x,
                    int out, int layout, int *li) {
  int rc = layer_new(s, cls, base, li);
  if (rc) return rc;
  set_inbound(s, *li, &x, 1);
  s->ref[out] = (ks_ref){*li, layout};
  return DLP_OK;
}

static void add_weight(ks_state *s, int li, const char *role, int v, int kind,
                       int ndim, const int64_t *dims) {
  ks_layer *L = &s->layers[li];
  ks_weight *w = &L->w[L->n_w++];
  w->role = role;
  w->v = v;
  w->kind = kind;
  w->ndim = ndim;
  memcpy(w->dims, dims, sizeof(int64_t) * (size_t)ndim);
}

/* Keras axis of graph axis a of a value with layout l and rank r; -1 for
 * the last (as Keras writes channel axes). */
static int keras_axis(int l, int r, int a) {
  static const int nchw_to_nhwc[4] = {0, 3, 1, 2};
  if (a < 0) a += r;
  int k = l == KL_NCHW ? nchw_to_nhwc[a] : a;
  return k == r - 1 ? -1 : k;
}

static const nn_shape *vshape(const ks_state *s, int v) {
  return &s->g->values[v].shape;
}

/* Checks that every data input of node ni is a Keras tensor. */
static int need_refs(ks_state *s, int ni, int n_data) {
  const nn_node *n = &s->g->nodes[ni];
  for (int i = 0; i < n_data; i++) {
    int v = n->in[i];
    if (s->g->values[v].kind == NN_VALUE_CONST)
      return unsupported(s, ni,
                         "a constant data input (only weights may be "
                         "constants)");
    if (s->ref[v].layer < 0)
      return nfail(s, ni, DLP_ERR_INTERNAL, "input '%s' was not translated",
                   s->g->values[v].name);
  }
  return DLP_OK;
}

static int need_const(ks_state *s, int ni, int slot) {
  const nn_node *n = &s->g->nodes[ni];
  if (slot >= n->n_in) return DLP_OK;
  if (s->g->values[n->in[slot]].kind != NN_VALUE_CONST)
    return unsupported(s, ni, "a weight computed at run time");
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Activations (own layers, or fused into conv/dense)
 * ------------------------------------------------------------------------ */

/* The Keras 2.x activation string of act, NULL when it has none (leaky
 * relu; relu6, which only tf.nn has: Keras models use ReLU(6.)). */
static const char *act_string(nn_act a) {
  static const char *const names[NN_ACT_COUNT] = {
      [NN_ACT_NONE] = "linear",     [NN_ACT_RELU] = "relu",
      [NN_ACT_SIGMOID] = "sigmoid", [NN_ACT_TANH] = "tanh",
      [NN_ACT_SWISH] = "swish",     [NN_ACT_HARD_SIGMOID] = "hard_sigmoid"};
  return (unsigned)a < NN_ACT_COUNT ? names[a] : NULL;
}

/* The activation string node ni computes on its input alone, or NULL. */
static const char *node_act_string(const ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  if (n->op == NN_OP_ACT) return act_string(n->attr.act);
  if (n->op == NN_OP_CLIP && n->attr.clip_lo == 0.0f)
    return isinf(n->attr.clip_hi) != 0 ? "relu" : NULL;
  if (n->op == NN_OP_SOFTMAX) {
    int r = vshape(s, n->out)->ndim, a = n->attr.axis;
    return r == 2 && (a == 1 || a == -1) ? "softmax" : NULL;
  }
  return NULL;
}

/* The node that alone reads value v when it is an activation named as
 * layer `lname` (how the zoo and the loader split one Keras layer into
 * nodes), else -1. */
static int fusable_act(const ks_state *s, int v, const char *lname) {
  if (s->uses[v] != 1) return -1;
  int k = s->reader[v];
  if (k < 0 || strcmp(s->g->nodes[k].name, lname) != 0) return -1;
  return node_act_string(s, k) ? k : -1;
}

/* Sets layer li's "activation" from the fused act of node ni (attr), or
 * from the activation node that follows it under the layer's name; out is
 * the value the layer's output stands for. A fused relu6 or leaky relu,
 * which Keras 2.x has no activation string for, becomes a layer of its
 * own. */
static int finish_activation(ks_state *s, int li, const char *base, int ni,
                             nn_act fused, float alpha, int layout) {
  const nn_node *n = &s->g->nodes[ni];
  int out = n->out;
  const char *act = act_string(fused);
  if (fused == NN_ACT_NONE) {
    int k = fusable_act(s, out, base);
    if (k >= 0) {
      act = node_act_string(s, k);
      s->done[k] = true;
      out = s->g->nodes[k].out;
    }
  }
  jstr(s, s->layers[li].cfg, "activation", act ? act : "linear");
  s->ref[out] = (ks_ref){li, layout};
  if (act) return DLP_OK;
  bool six = fused == NN_ACT_RELU6;
  char nm[KS_MAX_NAME + 16];
  snprintf(nm, sizeof nm, "%s_%s", base, six ? "relu6" : "act");
  int la,
      rc = layer_on(s, six ? "ReLU" : "LeakyReLU", nm, out, out, layout, &la);
  if (rc) return rc;
  cJSON *c = s->layers[la].cfg;
  if (!six) {
    jnum(s, c, "alpha", short_float(alpha));
    return DLP_OK;
  }
  jnum(s, c, "max_value", 6.0);
  jnum(s, c, "negative_slope", 0.0);
  jnum(s, c, "threshold", 0.0);
  return DLP_OK;
}

static int tr_act(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int x = n->in[0], li, rc, l = s->ref[x].layout;
  bool clip = n->op == NN_OP_CLIP;
  bool relu6 = (!clip && n->attr.act == NN_ACT_RELU6) ||
               (clip && n->attr.clip_lo == 0.0f && n->attr.clip_hi == 6.0f);
  bool relu = clip && !relu6 && node_act_string(s, ni);
  if (clip && !relu6 && !relu)
    return unsupported(s, ni, "only clip(0, 6) and clip(0, inf) are (ReLU)");
  if (relu6 || relu) {
    if ((rc = layer_on(s, "ReLU", n->name, x, n->out, l, &li))) return rc;
    cJSON *c = s->layers[li].cfg;
    if (relu6)
      jnum(s, c, "max_value", 6.0);
    else
      jnull(s, c, "max_value");
    jnum(s, c, "negative_slope", 0.0);
    jnum(s, c, "threshold", 0.0);
    return DLP_OK;
  }
  if (n->attr.act == NN_ACT_LEAKY_RELU) {
    if ((rc = layer_on(s, "LeakyReLU", n->name, x, n->out, l, &li))) return rc;
    jnum(s, s->layers[li].cfg, "alpha", short_float(n->attr.alpha));
    return DLP_OK;
  }
  const char *a = act_string(n->attr.act);
  if (!a) return unsupported(s, ni, "an unknown activation");
  if ((rc = layer_on(s, "Activation", n->name, x, n->out, l, &li))) return rc;
  jstr(s, s->layers[li].cfg, "activation", a);
  return DLP_OK;
}

static int tr_softmax(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int x = n->in[0], li, l = s->ref[x].layout, r = vshape(s, x)->ndim;
  if (n->attr.axis < -r || n->attr.axis >= r)
    return nfail(s, ni, DLP_ERR_ARG, "bad axis %d", n->attr.axis);
  int rc = layer_on(s, "Softmax", n->name, x, n->out, l, &li);
  if (rc == DLP_OK)
    jnum(s, s->layers[li].cfg, "axis", keras_axis(l, r, n->attr.axis));
  return rc;
}

static int tr_identity(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int x = n->in[0], li, rc, l = s->ref[x].layout;
  bool drop = strncmp(n->name, "dropout", 7) == 0;
  if ((rc = layer_on(s, drop ? "Dropout" : "Activation", n->name, x, n->out, l,
                     &li)))
    return rc;
  cJSON *c = s->layers[li].cfg;
  if (!drop) {
    jstr(s, c, "activation", "linear");
    return DLP_OK;
  }
  jnum(s, c, "rate", short_float(s->o.dropout_rate));
  jnull(s, c, "noise_shape");
  jnull(s, c, "seed");
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Convolution, dense, batch norm
 * ------------------------------------------------------------------------ */

/* The layer name of a node with weights: the "<layer>" of its kernel's
 * "<layer>/<role>" name, else the node's name. */
static void weight_layer(const ks_state *s, int ni, char *out, size_t n,
                         const char **role) {
  const nn_node *nd = &s->g->nodes[ni];
  *role = const_role(s->g->values[nd->in[1]].name, out, n);
  if (!*role) snprintf(out, n, "%s", nd->name);
}

/* The 1x1 pointwise conv that alone reads depthwise node ni's output and
 * shares its layer name (a split SeparableConv2D), else -1. */
static int separable_partner(const ks_state *s, int ni, const char *base) {
  const nn_node *n = &s->g->nodes[ni];
  if (n->n_in > 2 || n->attr.conv.act != NN_ACT_NONE || s->uses[n->out] != 1)
    return -1;
  int k = s->reader[n->out];
  const nn_node *p = &s->g->nodes[k];
  if (p->op != NN_OP_CONV2D || p->in[0] != n->out || p->attr.conv.groups != 1)
    return -1;
  const nn_conv2d_attr *a = &p->attr.conv;
  const nn_shape *w = vshape(s, p->in[1]);
  for (int i = 0; i < 4; i++)
    if (a->pads[i]) return -1;
  if (w->dims[2] != 1 || w->dims[3] != 1 || a->stride[0] != 1 ||
      a->stride[1] != 1 || s->g->values[p->in[1]].kind != NN_VALUE_CONST)
    return -1;
  char pre[600];
  const char *role = const_role(s->g->values[p->in[1]].name, pre, sizeof pre);
  return role && strcmp(role, "pointwise_kernel") == 0 && strcmp(pre, base) == 0
             ? k
             : -1;
}

/* How pads (top, left, bottom, right) of a conv/pool on value x read in
 * Keras: 0 'valid' (none), 1 'same' (TF's), 2 neither. */
static int pad_kind(const ks_state *s, int x, const int k[2], const int st[2],
                    const int dil[2], const int pads[4]) {
  const nn_shape *xs = vshape(s, x);
  int same[4];
  nn_pad_same_tf(xs->dims[2], k[0], st[0], dil[0], &same[0], &same[2]);
  nn_pad_same_tf(xs->dims[3], k[1], st[1], dil[1], &same[1], &same[3]);
  bool zero = true, tf = true;
  for (int i = 0; i < 4; i++) {
    zero = zero && pads[i] == 0;
    tf = tf && pads[i] == same[i];
  }
  return zero ? 0 : tf ? 1 : 2;
}

/* A ZeroPadding2D layer on x (pads: top, left, bottom, right) that a
 * 'valid' conv/pool then reads; *li gets it. */
static int zeropad_layer(ks_state *s, const char *base, int x,
                         const int pads[4], int *li) {
  char nm[KS_MAX_NAME + 16];
  snprintf(nm, sizeof nm, "%s_pad", base);
  int rc = layer_new(s, "ZeroPadding2D", nm, li);
  if (rc) return rc;
  set_inbound(s, *li, &x, 1);
  cJSON *p = cJSON_CreateArray();
  jpush(s, p, jints((int[]){pads[0], pads[2]}, 2));
  jpush(s, p, jints((int[]){pads[1], pads[3]}, 2));
  jadd(s, s->layers[*li].cfg, "padding", p);
  jstr(s, s->layers[*li].cfg, "data_format", "channels_last");
  return DLP_OK;
}

/* Sets the inbound node of layer li to the output of layer src. */
static void inbound_from_layer(ks_state *s, int li, int src, int x) {
  ks_ref keep = s->ref[x];
  s->ref[x].layer = src;
  set_inbound(s, li, &x, 1);
  s->ref[x] = keep;
}

static int tr_conv(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int rc, x = n->in[0];
  if ((rc = need_const(s, ni, 1)) || (rc = need_const(s, ni, 2))) return rc;
  if (s->ref[x].layout != KL_NCHW)
    return unsupported(s, ni, "a convolution of a non-NCHW value");
  const nn_conv2d_attr *a = &n->attr.conv;
  const nn_shape *xs = vshape(s, x), *ws = vshape(s, n->in[1]);
  int64_t C = xs->dims[1], O = ws->dims[0];
  char base[600];
  const char *role;
  weight_layer(s, ni, base, sizeof base, &role);
  bool dw_named = role && strcmp(role, "depthwise_kernel") == 0;
  bool dw = a->groups == C && O % C == 0 && (C > 1 || dw_named);
  if (a->groups != 1 && !dw && (C % a->groups || O % a->groups))
    return nfail(s, ni, DLP_ERR_ARG, "groups %d do not divide the channels",
                 a->groups);
  int pw = dw ? separable_partner(s, ni, base) : -1;
  const nn_node *last = pw >= 0 ? &s->g->nodes[pw] : n;
  int k[2] = {(int)ws->dims[2], (int)ws->dims[3]}, li;
  int feed = s->ref[x].layer;
  int pk = pad_kind(s, x, k, a->stride, a->dilation, a->pads);
  if (pk == 2 && (rc = zeropad_layer(s, base, x, a->pads, &feed))) return rc;
  const char *mode = pk == 1 ? "same" : "valid";
  const char *cls = pw >= 0 ? "SeparableConv2D"
                    : dw    ? "DepthwiseConv2D"
                            : "Conv2D";
  if ((rc = layer_new(s, cls, base, &li))) return rc;
  inbound_from_layer(s, li, feed, x);
  cJSON *c = s->layers[li].cfg;
  int64_t cout = pw >= 0 ? vshape(s, last->in[1])->dims[0] : O;
  if (!dw || pw >= 0) jnum(s, c, "filters", (double)cout);
  jpair(s, c, "kernel_size", k[0], k[1]);
  jpair(s, c, "strides", a->stride[0], a->stride[1]);
  jstr(s, c, "padding", mode);
  jstr(s, c, "data_format", "channels_last");
  jpair(s, c, "dilation_rate", a->dilation[0], a->dilation[1]);
  if (!dw) jnum(s, c, "groups", a->groups);
  if (dw) jnum(s, c, "depth_multiplier", (double)(O / C));
  bool bias = last->n_in > 2;
  jbool(s, c, "use_bias", bias);
  if (dw) {
    add_weight(s, li, "depthwise_kernel", n->in[1], KW_HWIO, 4,
               (int64_t[]){k[0], k[1], C, O / C});
  } else {
    add_weight(s, li, "kernel", n->in[1], KW_HWIO, 4,
               (int64_t[]){k[0], k[1], ws->dims[1], O});
  }
  if (pw >= 0) {
    add_weight(s, li, "pointwise_kernel", last->in[1], KW_HWIO, 4,
               (int64_t[]){1, 1, O, cout});
    s->done[pw] = true;
  }
  if (bias) add_weight(s, li, "bias", last->in[2], KW_COPY, 1, &cout);
  int lni = pw >= 0 ? pw : ni;
  return finish_activation(s, li, s->layers[li].name, lni, last->attr.conv.act,
                           last->attr.conv.alpha, KL_NCHW);
}

static int tr_dense(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int rc, x = n->in[0], l = s->ref[x].layout, li;
  if ((rc = need_const(s, ni, 1)) || (rc = need_const(s, ni, 2))) return rc;
  if (l != KL_FLAT && l != KL_NHWC)
    return unsupported(s, ni,
                       "a dense layer over the channel-first axis of "
                       "a 4-D value");
  const nn_shape *ws = vshape(s, n->in[1]);
  bool tb = n->attr.dense.transb;
  int64_t units = tb ? ws->dims[0] : ws->dims[1],
          in = tb ? ws->dims[1] : ws->dims[0];
  char base[600];
  const char *role;
  weight_layer(s, ni, base, sizeof base, &role);
  if ((rc = layer_new(s, "Dense", base, &li))) return rc;
  set_inbound(s, li, &x, 1);
  cJSON *c = s->layers[li].cfg;
  jnum(s, c, "units", (double)units);
  bool bias = n->n_in > 2;
  jbool(s, c, "use_bias", bias);
  add_weight(s, li, "kernel", n->in[1], tb ? KW_T : KW_COPY, 2,
             (int64_t[]){in, units});
  if (bias) add_weight(s, li, "bias", n->in[2], KW_COPY, 1, &units);
  return finish_activation(s, li, s->layers[li].name, ni, n->attr.dense.act,
                           n->attr.dense.alpha, l);
}

/* Whether const v is the all-ones gamma the zoo adds for a Keras
 * BatchNormalization(scale=False) (InceptionV3), which the Keras model and
 * its weight files do not have. */
static bool synthetic_gamma(const ks_state *s, int v) {
  const nn_zoo_entry *z = s->g->name ? nn_zoo_find(s->g->name) : NULL;
  const nn_value *g = &s->g->values[v];
  if (!z || nn_zoo_is_keras_weight(z, g->name)) return false;
  int64_t n = nn_shape_numel(g->shape.ndim, g->shape.dims);
  for (int64_t i = 0; i < n; i++)
    if (g->data[i] != 1.0f) return false;
  return true;
}

static int tr_bn(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int rc, x = n->in[0], l = s->ref[x].layout, li;
  for (int i = 1; i < 5; i++)
    if ((rc = need_const(s, ni, i))) return rc;
  if (l != KL_NCHW && l != KL_FLAT)
    return unsupported(s, ni, "batch normalisation of a transposed value");
  char base[600];
  const char *role = const_role(s->g->values[n->in[1]].name, base, sizeof base);
  if (!role) snprintf(base, sizeof base, "%s", n->name);
  if ((rc = layer_on(s, "BatchNormalization", base, x, n->out, l, &li)))
    return rc;
  cJSON *c = s->layers[li].cfg;
  jnum(s, c, "axis", -1);
  jnum(s, c, "momentum", 0.99);
  jnum(s, c, "epsilon", short_float(n->attr.eps));
  bool scale = !synthetic_gamma(s, n->in[1]);
  jbool(s, c, "center", true);
  jbool(s, c, "scale", scale);
  int64_t C = vshape(s, x)->dims[1];
  static const char *r[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
  for (int i = scale ? 0 : 1; i < 4; i++)
    add_weight(s, li, r[i], n->in[1 + i], KW_COPY, 1, &C);
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Pooling, padding, merges, reshapes
 * ------------------------------------------------------------------------ */

static int tr_pool(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int rc, x = n->in[0], li;
  bool max = n->op == NN_OP_MAXPOOL;
  const nn_pool2d_attr *a = &n->attr.pool;
  if (s->ref[x].layout != KL_NCHW)
    return unsupported(s, ni, "pooling of a non-NCHW value");
  if (a->ceil_mode) {
    nn_pool2d_attr fl = *a;
    fl.ceil_mode = false;
    nn_shape fs;
    nn_tensor t = {.ndim = 4, .is_view = true};
    memcpy(t.dims, vshape(s, x)->dims, sizeof t.dims);
    t.dims[0] = 1;
    if (nn_pool2d_out_shape(NULL, &fl, &t, &fs) != DLP_OK ||
        fs.dims[2] != vshape(s, n->out)->dims[2] ||
        fs.dims[3] != vshape(s, n->out)->dims[3])
      return unsupported(s, ni, "ceil_mode pooling");
  }
  const int one[2] = {1, 1};
  int feed = s->ref[x].layer;
  int pk = pad_kind(s, x, a->kernel, a->stride, one, a->pads);
  if (!max && a->count_include_pad && pk != 0) {
    /* Zeros that count: padding layer, then 'valid'. (Keras 'same' average
     * pooling divides by the valid elements only.) */
    if ((rc = zeropad_layer(s, n->name, x, a->pads, &feed))) return rc;
    pk = 0;
  } else if (pk == 2) {
    return unsupported(s, ni,
                       "explicit padding that is neither 'valid' nor "
                       "TF 'same' (padded elements are ignored, so no "
                       "ZeroPadding2D can stand in)");
  }
  const char *mode = pk == 1 ? "same" : "valid";
  if ((rc = layer_new(s, max ? "MaxPooling2D" : "AveragePooling2D", n->name,
                      &li)))
    return rc;
  inbound_from_layer(s, li, feed, x);
  cJSON *c = s->layers[li].cfg;
  jpair(s, c, "pool_size", a->kernel[0], a->kernel[1]);
  jstr(s, c, "padding", mode);
  jpair(s, c, "strides", a->stride[0], a->stride[1]);
  jstr(s, c, "data_format", "channels_last");
  s->ref[n->out] = (ks_ref){li, KL_NCHW};
  return DLP_OK;
}

static int tr_global_pool(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int x = n->in[0], li;
  if (s->ref[x].layout != KL_NCHW || vshape(s, x)->ndim != 4)
    return unsupported(s, ni, "global pooling of a non-NCHW value");
  bool avg = n->op == NN_OP_GLOBAL_AVGPOOL, keep = n->attr.keepdims;
  int rc = layer_on(s, avg ? "GlobalAveragePooling2D" : "GlobalMaxPooling2D",
                    n->name, x, n->out, keep ? KL_NCHW : KL_FLAT, &li);
  if (rc) return rc;
  jstr(s, s->layers[li].cfg, "data_format", "channels_last");
  jbool(s, s->layers[li].cfg, "keepdims", keep);
  return DLP_OK;
}

static int tr_pad(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int x = n->in[0], li;
  const int64_t *p = n->attr.pad.pads;
  if (s->ref[x].layout != KL_NCHW || vshape(s, x)->ndim != 4 ||
      n->attr.pad.mode != NN_PAD_CONSTANT || n->attr.pad.value != 0.0f ||
      p[0] || p[1] || p[4] || p[5])
    return unsupported(s, ni,
                       "only zero padding of height and width is "
                       "(ZeroPadding2D)");
  int rc = layer_on(s, "ZeroPadding2D", n->name, x, n->out, KL_NCHW, &li);
  if (rc) return rc;
  cJSON *pa = cJSON_CreateArray();
  jpush(s, pa, jints((int[]){(int)p[2], (int)p[6]}, 2));
  jpush(s, pa, jints((int[]){(int)p[3], (int)p[7]}, 2));
  jadd(s, s->layers[li].cfg, "padding", pa);
  jstr(s, s->layers[li].cfg, "data_format", "channels_last");
  return DLP_OK;
}

static int tr_merge(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int rc, li;
  if ((rc = need_refs(s, ni, n->n_in))) return rc;
  int l = s->ref[n->in[0]].layout;
  const nn_shape *s0 = vshape(s, n->in[0]);
  for (int i = 1; i < n->n_in; i++) {
    const nn_shape *si = vshape(s, n->in[i]);
    if (s->ref[n->in[i]].layout != l)
      return unsupported(s, ni, "inputs of different layouts");
    if (n->op != NN_OP_CONCAT &&
        (si->ndim != s0->ndim ||
         memcmp(si->dims, s0->dims, sizeof(int64_t) * (size_t)s0->ndim)))
      return unsupported(s, ni,
                         "broadcasting (Keras merges need equal "
                         "shapes)");
  }
  const char *cls = n->op == NN_OP_ADD   ? "Add"
                    : n->op == NN_OP_MUL ? "Multiply"
                                         : "Concatenate";
  if (n->op == NN_OP_CONCAT) {
    int a = n->attr.axis < 0 ? n->attr.axis + s0->ndim : n->attr.axis;
    if (a <= 0 || a >= s0->ndim)
      return unsupported(s, ni, "concatenation over the batch axis");
  }
  if ((rc = layer_new(s, cls, n->name, &li))) return rc;
  set_inbound(s, li, n->in, n->n_in);
  if (n->op == NN_OP_CONCAT)
    jnum(s, s->layers[li].cfg, "axis", keras_axis(l, s0->ndim, n->attr.axis));
  s->ref[n->out] = (ks_ref){li, l};
  return DLP_OK;
}

static int tr_flatten(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int x = n->in[0], l = s->ref[x].layout, li;
  const nn_shape *xs = vshape(s, x);
  int a = n->attr.axis < 0 ? n->attr.axis + xs->ndim : n->attr.axis;
  /* NCHW and NHWC flatten alike when C or H*W is 1. */
  bool same_order = l != KL_NCHW || xs->dims[1] == 1 ||
                    (xs->dims[2] == 1 && xs->dims[3] == 1);
  if (a != 1 || !same_order)
    return unsupported(s, ni,
                       "flattening NCHW data (Keras flattens NHWC; "
                       "transpose to NHWC first)");
  int rc = layer_on(s, "Flatten", n->name, x, n->out, KL_FLAT, &li);
  if (rc == DLP_OK) jstr(s, s->layers[li].cfg, "data_format", "channels_last");
  return rc;
}

/* NCHW <-> NHWC transposes only relabel the Keras tensor. */
static int tr_transpose(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int x = n->in[0], l = s->ref[x].layout;
  static const int to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
  if (n->attr.n_perm == 4 && l == KL_NCHW &&
      memcmp(n->attr.perm, to_nhwc, sizeof to_nhwc) == 0) {
    s->ref[n->out] = (ks_ref){s->ref[x].layer, KL_NHWC};
    return DLP_OK;
  }
  if (n->attr.n_perm == 4 && l == KL_NHWC &&
      memcmp(n->attr.perm, to_nchw, sizeof to_nchw) == 0) {
    s->ref[n->out] = (ks_ref){s->ref[x].layer, KL_NCHW};
    return DLP_OK;
  }
  return unsupported(s, ni, "only NCHW <-> NHWC transposes are");
}

static int tr_node(ks_state *s, int ni) {
  const nn_node *n = &s->g->nodes[ni];
  int rc = need_refs(s, ni,
                     n->op == NN_OP_CONCAT || n->op == NN_OP_ADD ||
                             n->op == NN_OP_MUL
                         ? n->n_in
                         : 1);
  if (rc) return rc;
  typedef int (*translator)(ks_state *, int);
  static const translator by_op[NN_OP_COUNT] = {
      [NN_OP_CONV2D] = tr_conv,
      [NN_OP_DENSE] = tr_dense,
      [NN_OP_BATCHNORM] = tr_bn,
      [NN_OP_ACT] = tr_act,
      [NN_OP_CLIP] = tr_act,
      [NN_OP_SOFTMAX] = tr_softmax,
      [NN_OP_MAXPOOL] = tr_pool,
      [NN_OP_AVGPOOL] = tr_pool,
      [NN_OP_GLOBAL_AVGPOOL] = tr_global_pool,
      [NN_OP_GLOBAL_MAXPOOL] = tr_global_pool,
      [NN_OP_ADD] = tr_merge,
      [NN_OP_MUL] = tr_merge,
      [NN_OP_CONCAT] = tr_merge,
      [NN_OP_FLATTEN] = tr_flatten,
      [NN_OP_TRANSPOSE] = tr_transpose,
      [NN_OP_PAD] = tr_pad,
      [NN_OP_IDENTITY] = tr_identity};
  translator f = (unsigned)n->op < NN_OP_COUNT ? by_op[n->op] : NULL;
  return f ? f(s, ni) : unsupported(s, ni, "dlp writes no layer for this op");
}

static int tr_input(ks_state *s, int v) {
  const nn_shape *sh = vshape(s, v);
  int li, rc;
  if (sh->ndim != 4 && sh->ndim != 2)
    return dlp_err_set(s->e, DLP_ERR_UNSUPPORTED,
                       "keras save: input '%s' has rank %d; Keras inputs "
                       "here are images (N, C, H, W) or vectors (N, F)",
                       s->g->values[v].name, sh->ndim);
  if ((rc = layer_new(s, "InputLayer", s->g->values[v].name, &li))) return rc;
  cJSON *c = s->layers[li].cfg, *bis = cJSON_CreateArray();
  int64_t d[3] = {sh->dims[1], 0, 0};
  if (sh->ndim == 4) d[0] = sh->dims[2], d[1] = sh->dims[3], d[2] = sh->dims[1];
  jpush(s, bis, cJSON_CreateNull());
  for (int i = 0; i < sh->ndim - 1; i++)
    jpush(s, bis, cJSON_CreateNumber((double)d[i]));
  jadd(s, c, "batch_input_shape", bis);
  jbool(s, c, "sparse", false);
  jbool(s, c, "ragged", false);
  jadd(s, s->layers[li].json, "inbound_nodes", cJSON_CreateArray());
  s->ref[v] = (ks_ref){li, sh->ndim == 4 ? KL_NCHW : KL_FLAT};
  return DLP_OK;
}

/* [[name, 0, 0], ...] of the layers standing for values vs[]. */
static int io_list(ks_state *s, cJSON *cfg, const char *key, const int *vs,
                   int n) {
  for (int i = 0; i < n; i++) {
    const ks_ref *r = &s->ref[vs[i]];
    if (r->layer < 0 || (r->layout != KL_NCHW && r->layout != KL_FLAT))
      return dlp_err_set(s->e, DLP_ERR_UNSUPPORTED,
                         "keras save: graph output '%s' is %s",
                         s->g->values[vs[i]].name,
                         r->layer < 0 ? "a constant"
                                      : "a transposed value Keras would "
                                        "return in another layout");
  }
  cJSON *arr = cJSON_CreateArray();
  for (int i = 0; i < n; i++)
    jpush(s, arr, tensor_ref(s, s->layers[s->ref[vs[i]].layer].name, false));
  jadd(s, cfg, key, arr);
  return DLP_OK;
}

/* Builds the Keras model config of s->g into *root. */
static int translate(ks_state *s, cJSON **root) {
  const nn_graph *g = s->g;
  int rc = DLP_OK;
  const char *mname = s->o.model_name ? s->o.model_name
                      : g->name       ? g->name
                                      : "model";
  /* root, config and layers attach first: later pieces hang off them. */
  cJSON *r = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
  cJSON *ls = cJSON_CreateArray();
  bool cfg_in = r && cfg &&
                cJSON_AddStringToObject(r, "class_name", "Functional") &&
                cJSON_AddItemToObject(r, "config", cfg);
  if (!cfg_in) cJSON_Delete(cfg);
  bool ls_in = cfg_in && ls && cJSON_AddItemToObject(cfg, "layers", ls);
  if (!ls_in) cJSON_Delete(ls);
  *root = r;
  if (!ls_in) return dlp_err_set(s->e, DLP_ERR_NOMEM, "keras save: no memory");
  s->jlayers = ls;
  jstr(s, cfg, "name", mname);
  for (int i = 0; i < g->n_inputs && rc == DLP_OK; i++)
    rc = tr_input(s, g->inputs[i]);
  for (int i = 0; i < g->n_nodes && rc == DLP_OK; i++)
    if (!s->done[i]) rc = tr_node(s, i);
  if (rc == DLP_OK)
    rc = io_list(s, cfg, "input_layers", g->inputs, g->n_inputs);
  if (rc == DLP_OK)
    rc = io_list(s, cfg, "output_layers", g->outputs, g->n_outputs);
  if (rc == DLP_OK && s->oom)
    rc = dlp_err_set(s->e, DLP_ERR_NOMEM, "keras save: no memory");
  return rc;
}

/* ------------------------------------------------------------------------
 * HDF5 output, inside the session reader and writer share (h5_session.h):
 * one lock, HDF5's error printing off while we write.
 * ------------------------------------------------------------------------ */

static herr_t walk_cb(unsigned n, const H5E_error2_t *err, void *data) {
  if (n == 0 && err && err->desc) snprintf(data, 200, "%s", err->desc);
  return 0;
}

static int h5fail(dlp_err *e, const char *path, const char *what) {
  char why[200] = "";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, why);
  H5Eclear2(H5E_DEFAULT);
  return dlp_err_set(e, DLP_ERR_IO, "keras save: %s: cannot write %s: %s", path,
                     what, why[0] ? why : "HDF5 error");
}

/* A fixed-length string type of size n (>= 1) as h5py writes bytes. */
static hid_t str_type(size_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t >= 0 && (H5Tset_size(t, n ? n : 1) < 0 ||
                 H5Tset_strpad(t, H5T_STR_NULLPAD) < 0)) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

static int attr_write(hid_t loc, const char *name, hid_t type, hid_t space,
                      const void *buf) {
  hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int bad = a < 0 || H5Awrite(a, type, buf) < 0;
  if (a >= 0) H5Aclose(a);
  return bad ? -1 : 0;
}

static int attr_str(hid_t loc, const char *name, const char *v) {
  hid_t t = str_type(strlen(v)), sp = H5Screate(H5S_SCALAR);
  char one = '\0';
  int bad = t < 0 || sp < 0 || attr_write(loc, name, t, sp, *v ? v : &one);
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  return bad ? -1 : 0;
}

/* A list of strings as an array of fixed-length strings (what Keras writes
 * through h5py); an empty list as an empty float array, as Keras does. */
static int attr_strs(hid_t loc, const char *name, char **v, int n) {
  hsize_t dim = (hsize_t)n;
  hid_t sp = H5Screate_simple(1, &dim, NULL);
  if (sp < 0) return -1;
  if (n == 0) {
    int bad = attr_write(loc, name, H5T_IEEE_F64LE, sp, &dim);
    H5Sclose(sp);
    return bad ? -1 : 0;
  }
  size_t w = 1;
  for (int i = 0; i < n; i++)
    if (strlen(v[i]) > w) w = strlen(v[i]);
  char *buf = calloc((size_t)n, w);
  hid_t t = str_type(w);
  int bad = !buf || t < 0;
  for (int i = 0; i < n && !bad; i++)
    memcpy(buf + (size_t)i * w, v[i], strlen(v[i]));
  bad = bad || attr_write(loc, name, t, sp, buf);
  free(buf);
  if (t >= 0) H5Tclose(t);
  H5Sclose(sp);
  return bad ? -1 : 0;
}

static int attrs_common(hid_t loc) {
  return attr_str(loc, "keras_version", KS_KERAS_VERSION) ||
                 attr_str(loc, "backend", "tensorflow")
             ? -1
             : 0;
}

/* Weight w of the graph in its Keras layout; malloc'd, or NULL. */
static float *keras_data(const nn_graph *g, const ks_weight *w) {
  const nn_value *v = &g->values[w->v];
  int64_t numel = nn_shape_numel(w->ndim, w->dims);
  float *d = dlp_malloc_array((size_t)numel + 1, sizeof *d);
  if (!d || !v->data) {
    free(d);
    return NULL;
  }
  const float *src = v->data;
  if (w->kind == KW_COPY) {
    memcpy(d, src, (size_t)numel * sizeof *d);
  } else if (w->kind == KW_T) { /* (out, in) -> (in, out) */
    int64_t in = w->dims[0], out = w->dims[1];
    for (int64_t o = 0; o < out; o++)
      for (int64_t i = 0; i < in; i++)
        d[i * out + o] = src[o * in + i];
  } else { /* OIHW -> HWIO, with (C, M) of a depthwise kernel as I = 1 */
    int64_t kh = v->shape.dims[2], kw = v->shape.dims[3];
    int64_t ci = v->shape.dims[1], co = v->shape.dims[0];
    for (int64_t o = 0; o < co; o++)
      for (int64_t i = 0; i < ci; i++)
        for (int64_t h = 0; h < kh; h++)
          for (int64_t x = 0; x < kw; x++)
            d[((h * kw + x) * ci + i) * co + o] =
                src[((o * ci + i) * kh + h) * kw + x];
  }
  return d;
}

/* Creation properties of class cls (H5P_GROUP_CREATE, H5P_DATASET_CREATE,
 * H5P_FILE_CREATE) without modification times, so that saving the same
 * weights twice gives the same bytes (the pretrained backbone's recipe is
 * checked that way). -1 on failure. */
static hid_t no_times(hid_t cls) {
  hid_t p = H5Pcreate(cls);
  if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
    H5Pclose(p);
    return -1;
  }
  return p;
}

/* Group `name` under loc, without times; -1 on failure. */
static hid_t make_group(hid_t loc, const char *name) {
  hid_t gcpl = no_times(H5P_GROUP_CREATE);
  if (gcpl < 0) return -1;
  hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
  H5Pclose(gcpl);
  return g;
}

static int write_weight(ks_state *s, hid_t grp, const char *lname,
                        const ks_weight *w, const char *path) {
  char dname[KS_MAX_NAME + 64];
  snprintf(dname, sizeof dname, "%s/%s:0", lname, w->role);
  float *d = keras_data(s->g, w);
  if (!d)
    return dlp_err_set(s->e, DLP_ERR_NOMEM,
                       "keras save: no memory for weight %s", dname);
  hsize_t dims[4];
  for (int i = 0; i < w->ndim; i++)
    dims[i] = (hsize_t)w->dims[i];
  hid_t sp = H5Screate_simple(w->ndim, dims, NULL);
  /* Keras' layout: LAYER/LAYER/ROLE:0; the inner group is made (without
   * times) by write_layers. */
  hid_t dcpl = no_times(H5P_DATASET_CREATE);
  int bad = sp < 0 || dcpl < 0;
  hid_t ds = bad ? -1
                 : H5Dcreate2(grp, dname, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl,
                              H5P_DEFAULT);
  bad = bad || ds < 0 ||
        H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, d) < 0;
  if (ds >= 0) H5Dclose(ds);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  free(d);
  return bad ? h5fail(s->e, path, dname) : DLP_OK;
}

/* One group per layer under loc, with weight_names and datasets, and loc's
 * layer_names listing them. */
static int write_layers(ks_state *s, hid_t loc, const char *path) {
  char **names = dlp_calloc_array((size_t)s->n_layers + 1, sizeof *names);
  if (!names) return dlp_err_set(s->e, DLP_ERR_NOMEM, "keras save: no memory");
  for (int i = 0; i < s->n_layers; i++)
    names[i] = s->layers[i].name;
  int rc =
      attr_strs(loc, "layer_names", names, s->n_layers) || attrs_common(loc)
          ? h5fail(s->e, path, "layer_names")
          : DLP_OK;
  free(names);
  for (int i = 0; i < s->n_layers && rc == DLP_OK; i++) {
    const ks_layer *L = &s->layers[i];
    hid_t grp = make_group(loc, L->name);
    if (grp < 0) return h5fail(s->e, path, L->name);
    hid_t inner = L->n_w > 0 ? make_group(grp, L->name) : grp;
    if (inner < 0) {
      H5Gclose(grp);
      return h5fail(s->e, path, L->name);
    }
    if (inner != grp) H5Gclose(inner);
    char wn[4][KS_MAX_NAME + 64], *wp[4];
    for (int k = 0; k < L->n_w; k++) {
      snprintf(wn[k], sizeof wn[k], "%s/%s:0", L->name, L->w[k].role);
      wp[k] = wn[k];
    }
    if (attr_strs(grp, "weight_names", wp, L->n_w) < 0)
      rc = h5fail(s->e, path, "weight_names");
    for (int k = 0; k < L->n_w && rc == DLP_OK; k++)
      rc = write_weight(s, grp, L->name, &L->w[k], path);
    H5Gclose(grp);
  }
  return rc;
}

/* dlp's root attributes (keras.h): class names, preprocessing, size. */
static int write_meta(ks_state *s, hid_t f, const char *path) {
  const nn_graph *g = s->g;
  if (s->o.class_names) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < s->o.n_class_names; i++)
      if (!cJSON_AddItemToArray(a, cJSON_CreateString(s->o.class_names[i]))) {
        cJSON_Delete(a);
        a = NULL;
      }
    char *json = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    if (!json) return dlp_err_set(s->e, DLP_ERR_NOMEM, "keras save: no memory");
    int bad = attr_str(f, "dlp_class_names", json);
    free(json);
    if (bad) return h5fail(s->e, path, "dlp_class_names");
  }
  dlp_norm norm = s->o.norm_set ? s->o.norm : g->input_spec.norm;
  if ((s->o.norm_set || norm != DLP_NORM_NONE) && norm != DLP_NORM_CUSTOM &&
      attr_str(f, "dlp_preprocess", dlp_norm_name(norm)))
    return h5fail(s->e, path, "dlp_preprocess");
  const nn_shape *in = g->n_inputs == 1 ? vshape(s, g->inputs[0]) : NULL;
  if (in && in->ndim == 4 && in->dims[2] > 0 && in->dims[3] > 0) {
    char size[48];
    snprintf(size, sizeof size, "%lldx%lld", (long long)in->dims[2],
             (long long)in->dims[3]);
    if (attr_str(f, "dlp_input_size", size))
      return h5fail(s->e, path, "dlp_input_size");
  }
  return DLP_OK;
}

static int write_file(ks_state *s, const char *tmp, const char *path,
                      const cJSON *root) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  /* The 1.8 format stores attributes over 64 KiB (a large model_config)
   * densely; every h5py reads it. */
  if (fapl < 0 ||
      H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
      H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
    if (fapl >= 0) H5Pclose(fapl);
    return h5fail(s->e, path, "the file (HDF5 setup)");
  }
  hid_t fcpl = no_times(H5P_FILE_CREATE);
  hid_t f = fcpl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
  H5Pclose(fapl);
  if (fcpl >= 0) H5Pclose(fcpl);
  if (f < 0) return h5fail(s->e, path, "the file");
  int rc = DLP_OK;
  if (s->o.weights_only) {
    rc = write_layers(s, f, path);
  } else {
    char *json = cJSON_PrintUnformatted(root);
    if (!json)
      rc = dlp_err_set(s->e, DLP_ERR_NOMEM, "keras save: no memory");
    else if (attrs_common(f) || attr_str(f, "model_config", json))
      rc = h5fail(s->e, path, "model_config");
    free(json);
    if (rc == DLP_OK) rc = write_meta(s, f, path);
    hid_t mw = rc ? -1 : make_group(f, "model_weights");
    if (rc == DLP_OK && mw < 0) rc = h5fail(s->e, path, "model_weights");
    if (rc == DLP_OK) rc = write_layers(s, mw, path);
    if (mw >= 0) H5Gclose(mw);
  }
  if (H5Fclose(f) < 0 && rc == DLP_OK) rc = h5fail(s->e, path, "the file");
  return rc;
}

static int write_locked(ks_state *s, const char *tmp, const char *path,
                        const cJSON *root) {
  nn_h5_session hs;
  nn_h5_begin(&hs);
  int rc = write_file(s, tmp, path, root);
  nn_h5_end(&hs);
  return rc;
}

/* ------------------------------------------------------------------------
 * Publishing the file
 * ------------------------------------------------------------------------ */

static int sync_file(const char *p) {
  int fd = open(p, O_RDONLY);
  if (fd < 0) return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

/* Moves tmp to path: rename when overwriting, else link() so that a file
 * created meanwhile is never replaced (rename after a check where the file
 * system has no hard links). */
static int publish(dlp_err *e, const char *tmp, const char *path,
                   bool overwrite) {
  if (sync_file(tmp) != 0)
    return dlp_err_set(e, DLP_ERR_IO, "keras save: %s: %s", path,
                       strerror(errno));
  if (!overwrite) {
    if (link(tmp, path) == 0) {
      unlink(tmp);
      return DLP_OK;
    }
    if (errno == EEXIST)
      return dlp_err_set(e, DLP_ERR_IO,
                         "keras save: %s already exists (allow overwriting "
                         "to replace it)",
                         path);
    struct stat st;
    if (lstat(path, &st) == 0)
      return dlp_err_set(e, DLP_ERR_IO, "keras save: %s already exists", path);
  }
  if (rename(tmp, path) != 0)
    return dlp_err_set(e, DLP_ERR_IO, "keras save: %s: %s", path,
                       strerror(errno));
  return DLP_OK;
}

static int save(ks_state *s, const char *path) {
  struct stat st;
  if (!s->o.overwrite && lstat(path, &st) == 0)
    return dlp_err_set(s->e, DLP_ERR_IO,
                       "keras save: %s already exists (allow overwriting to "
                       "replace it)",
                       path);
  cJSON *root = NULL;
  int rc = translate(s, &root);
  size_t n = strlen(path) + 16;
  char *tmp = rc ? NULL : malloc(n);
  if (rc == DLP_OK && !tmp)
    rc = dlp_err_set(s->e, DLP_ERR_NOMEM, "keras save: no memory");
  if (rc == DLP_OK) {
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
      rc = dlp_err_set(s->e, DLP_ERR_IO,
                       "keras save: %s: cannot create a file there: %s", path,
                       strerror(errno));
    } else {
      (void)fchmod(fd, 0644); /* mkstemp's 0600 is stricter than Keras' */
      close(fd);
      rc = write_locked(s, tmp, path, root);
      if (rc == DLP_OK) rc = publish(s->e, tmp, path, s->o.overwrite);
      if (rc != DLP_OK) unlink(tmp);
    }
  }
  free(tmp);
  cJSON_Delete(root);
  return rc;
}

void nn_keras_save_opts_init(nn_keras_save_opts *o) {
  memset(o, 0, sizeof *o);
  o->dropout_rate = 0.5f;
}

void nn_keras_save_opts_labels(nn_keras_save_opts *o, char *const *names,
                               size_t n, dlp_norm norm) {
  o->class_names = names;
  o->n_class_names = n;
  o->norm = norm;
  o->norm_set = true;
}

/* The class names must be what the reader accepts: one per output. */
static int check_class_names(dlp_err *e, const nn_graph *g,
                             const nn_keras_save_opts *o) {
  if (!o->class_names || o->weights_only) return DLP_OK;
  nn_shape os =
      g->n_outputs == 1 ? g->values[g->outputs[0]].shape : (nn_shape){0};
  if (os.ndim != 2)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "keras save: class names for a model whose output is "
                       "not (N, classes)");
  if (os.dims[1] != (int64_t)o->n_class_names ||
      o->n_class_names > NN_KERAS_MAX_CLASSES)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "keras save: %zu class names for a model with %lld "
                       "outputs: give one name per output",
                       o->n_class_names, (long long)os.dims[1]);
  for (size_t i = 0; i < o->n_class_names; i++)
    if (!o->class_names[i] ||
        strlen(o->class_names[i]) > NN_KERAS_MAX_CLASS_NAME)
      return dlp_err_set(e, DLP_ERR_ARG, "keras save: class name %zu is %s", i,
                         o->class_names[i] ? "too long" : "NULL");
  return DLP_OK;
}

int nn_keras_save_file(dlp_err *e, const nn_graph *g, const char *path,
                       const nn_keras_save_opts *o) {
  if (!g || !path || !path[0])
    return dlp_err_set(e, DLP_ERR_ARG, "keras save: NULL graph or path");
  if (!g->finalized)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "keras save: the graph is not finalized");
  ks_state s = {.e = e, .g = g};
  if (o)
    s.o = *o;
  else
    nn_keras_save_opts_init(&s.o);
  int crc = check_class_names(e, g, &s.o);
  if (crc != DLP_OK) return crc;
  size_t nv = (size_t)g->n_values + 1;
  s.ref = dlp_malloc_array(nv, sizeof *s.ref);
  s.uses = dlp_calloc_array(nv, sizeof *s.uses);
  s.reader = dlp_malloc_array(nv, sizeof *s.reader);
  s.done = dlp_calloc_array((size_t)g->n_nodes + 1, sizeof *s.done);
  int rc = DLP_OK;
  if (!s.ref || !s.uses || !s.reader || !s.done) {
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "keras save: no memory");
  } else {
    for (int v = 0; v < g->n_values; v++) {
      s.ref[v] = (ks_ref){-1, KL_NONE};
      s.reader[v] = -1;
    }
    for (int i = 0; i < g->n_nodes; i++)
      for (int k = 0; k < g->nodes[i].n_in; k++) {
        int v = g->nodes[i].in[k];
        if (v < 0) continue;
        s.uses[v]++;
        s.reader[v] = i;
      }
    for (int i = 0; i < g->n_outputs; i++)
      s.uses[g->outputs[i]]++;
    rc = save(&s, path);
  }
  for (int i = 0; i < s.n_layers; i++)
    free(s.layers[i].name);
  free(s.layers);
  free(s.ref);
  free(s.uses);
  free(s.reader);
  free(s.done);
  return rc;
}
