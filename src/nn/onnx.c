/* onnx.c - the ONNX importer: ModelProto (opset 9-17) -> nn_graph, read with
 * the strict wire reader of onnx_wire.c; tensors are decoded only after
 * their declared size has been checked against the bytes present. */
#include "onnx.h"

#include "graph_util.h"
#include "onnx_fold.h"
#include "onnx_wire.h"
#include "transpose.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds against hostile files (real CNNs have a few thousand nodes). */
#define OX_MAX_NODES 32768
#define OX_MAX_TENSORS 65536
#define OX_MAX_IO 4096
#define OX_MAX_NODE_IO 4096
#define OX_MAX_ATTRS 64
#define OX_NAME_SHOW 160 /* bytes of a name shown in messages */

/* ONNX TensorProto.DataType values dlp decodes. */
enum { OX_FLOAT = 1, OX_INT32 = 6, OX_INT64 = 7, OX_DOUBLE = 11 };
/* AttributeProto.AttributeType values. */
enum {
  OX_A_FLOAT = 1,
  OX_A_INT = 2,
  OX_A_STRING = 3,
  OX_A_TENSOR = 4,
  OX_A_FLOATS = 6,
  OX_A_INTS = 7
};

/* A string inside the file (not NUL-terminated). */
typedef struct ox_str {
  const uint8_t *p;
  size_t n;
} ox_str;

#define OXS(s)                                                                 \
  (int)((s).n > OX_NAME_SHOW ? OX_NAME_SHOW : (s).n), (const char *)(s).p

static bool ox_eq(ox_str s, const char *c) {
  size_t n = strlen(c);
  return s.n == n && memcmp(s.p, c, n) == 0;
}

/* A TensorProto seen in the file: dims checked, data still in the file. */
typedef struct ox_tensor {
  ox_str name;
  int dtype;
  int ndim;
  int64_t dims[NN_MAX_DIMS];
  int64_t numel;
  const uint8_t *msg; /* the whole TensorProto, for the typed data fields */
  size_t len;
  bool has_raw;
  ox_str raw;
  int value; /* graph const made from it, or -1 */
  ox_ft *ft; /* its values as folded or decoded for folding (owned), or NULL */
} ox_tensor;

typedef struct ox_attr {
  ox_str name;
  int type;
  float f;
  int64_t i;
  ox_str s;
  pb_field t;         /* TENSOR: the TensorProto bytes */
  const uint8_t *msg; /* the AttributeProto, for ints/floats */
  size_t len;
} ox_attr;

typedef struct ox_node {
  ox_str name, op, domain;
  ox_str *in, *out;
  int n_in, n_out;
  ox_attr *attr;
  int n_attr;
  int depth; /* nesting of the NodeProto */
} ox_node;

/* One name of the ONNX graph. */
typedef struct ox_sym {
  ox_str name;
  int tensor;   /* constant: index in ox.tensors, or -1 */
  int value;    /* graph value, or -1 */
  int producer; /* node producing it, or -1 */
  int out_index;
} ox_sym;

typedef struct ox {
  dlp_err *e;
  int64_t opset;
  ox_str graph_name;
  ox_tensor *tensors;
  int n_tensors, cap_tensors;
  ox_node *nodes;
  int n_nodes;
  pb_field *in_vi, *out_vi; /* ValueInfoProto bytes of inputs/outputs */
  int n_in_vi, n_out_vi;
  int graph_depth;
  ox_sym *syms;
  int n_syms, cap_syms;
  int *hash; /* open addressing: sym index + 1, 0 = empty */
  size_t hash_cap;
  nn_graph *g;
  nn_shape *vshape;  /* per graph value: its shape with the batch as 1 */
  nn_shape *vshape2; /* the same with the batch as 2 (what grows with it) */
  int cap_vshape;
  int64_t fold_budget; /* elements the constant folder may still create */
  bool have_input;
} ox;

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

static ox_str node_label(const ox_node *n) {
  if (n->name.n) return n->name;
  if (n->n_out > 0 && n->out[0].n) return n->out[0];
  return (ox_str){(const uint8_t *)"?", 1};
}

/* "ONNX node 'name' (Op): ..." */
static int nfail(ox *x, const ox_node *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int nfail(ox *x, const ox_node *n, int code, const char *fmt, ...) {
  char msg[DLP_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ox_str l = node_label(n);
  return dlp_err_set(x->e, code, "ONNX node '%.*s' (%.*s): %s", OXS(l),
                     OXS(n->op), msg);
}

/* Copies s into a fresh C string (NUL bytes inside end it early). */
static char *ox_cstr(ox_str s) {
  char *c = malloc(s.n + 1);
  if (!c) return NULL;
  memcpy(c, s.p, s.n);
  c[s.n] = 0;
  return c;
}

static int nomem(ox *x) {
  return dlp_err_set(x->e, DLP_ERR_NOMEM, "ONNX: out of memory");
}

/* The graph's first builder failure (the builders return -1). */
static int build_err(ox *x) {
  if (x->g->build_err.code != DLP_OK)
    return dlp_err_set(x->e, x->g->build_err.code, "ONNX: %s",
                       x->g->build_err.msg);
  return nomem(x);
}

/* ------------------------------------------------------------------------
 * Symbols: a hash of the graph's names
 * ------------------------------------------------------------------------ */

static uint64_t str_hash(ox_str s) { return dlp_hash64(s.p, s.n, 0x6f6e6e78); }

static int sym_find(const ox *x, ox_str name) {
  if (!x->hash_cap) return -1;
  size_t mask = x->hash_cap - 1;
  for (size_t h = (size_t)str_hash(name) & mask;; h = (h + 1) & mask) {
    int k = x->hash[h];
    if (k == 0) return -1;
    const ox_sym *s = &x->syms[k - 1];
    if (s->name.n == name.n && memcmp(s->name.p, name.p, name.n) == 0)
      return k - 1;
  }
}

/* Adds a new name; -1 if it exists (the caller says why that is wrong). */
static int sym_add(ox *x, ox_str name) {
  if (sym_find(x, name) >= 0 || x->n_syms >= x->cap_syms) return -1;
  int k = x->n_syms++;
  ox_sym *s = &x->syms[k];
  memset(s, 0, sizeof *s);
  s->name = name;
  s->tensor = s->value = s->producer = -1;
  size_t mask = x->hash_cap - 1;
  size_t h = (size_t)str_hash(name) & mask;
  while (x->hash[h])
    h = (h + 1) & mask;
  x->hash[h] = k + 1;
  return k;
}

static int syms_alloc(ox *x, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n + 2)
    cap *= 2;
  x->syms = dlp_calloc_array(n + 1, sizeof *x->syms);
  x->hash = dlp_calloc_array(cap, sizeof *x->hash);
  if (!x->syms || !x->hash) return nomem(x);
  x->cap_syms = (int)n + 1;
  x->hash_cap = cap;
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * TensorProto
 * ------------------------------------------------------------------------ */

static const char *dtype_name(int t) {
  static const char *const names[] = {
      "undefined", "float32", "uint8",     "int8",       "uint16",  "int16",
      "int32",     "int64",   "string",    "bool",       "float16", "float64",
      "uint32",    "uint64",  "complex64", "complex128", "bfloat16"};
  if (t >= 0 && t < (int)(sizeof names / sizeof names[0])) return names[t];
  return "unknown";
}

static int64_t dtype_size(int t) {
  switch (t) {
  case OX_FLOAT:
  case OX_INT32:
    return 4;
  case OX_INT64:
  case OX_DOUBLE:
    return 8;
  default:
    return 0;
  }
}

/* The typed field holding a dtype's values and its element wire type. */
static void dtype_field(int t, uint32_t *num, int *wire) {
  switch (t) {
  case OX_FLOAT:
    *num = 4, *wire = PB_I32;
    break;
  case OX_INT32:
    *num = 5, *wire = PB_VARINT;
    break;
  case OX_INT64:
    *num = 7, *wire = PB_VARINT;
    break;
  default:
    *num = 10, *wire = PB_I64;
    break; /* double */
  }
}

typedef struct dims_acc {
  int64_t *dims;
} dims_acc;

static void dims_put(void *user, size_t i, uint64_t v) {
  dims_acc *a = user;
  if (i < NN_MAX_DIMS) a->dims[i] = (int64_t)v;
}

/* Parses a TensorProto (what names it for messages: "initializer",
 * "Constant output"; name, when not empty, replaces the tensor's) and checks
 * its dims and data size. */
static int parse_tensor(ox *x, const pb_reader *parent, const pb_field *tf,
                        const char *what, ox_str name, ox_tensor *t) {
  dlp_err *e = x->e;
  pb_reader r;
  int rc = pb_sub(e, parent, tf, "ONNX tensor", &r);
  if (rc != DLP_OK) return rc;
  memset(t, 0, sizeof *t);
  t->value = -1;
  t->msg = tf->data;
  t->len = tf->len;
  bool external = false, segment = false;
  while (!pb_reader_done(&r)) {
    pb_field f;
    if ((rc = pb_next(e, &r, "ONNX tensor", &f)) != DLP_OK) return rc;
    if (f.num == 2 && f.wire == PB_VARINT)
      t->dtype = (int)f.v;
    else if (f.num == 8 && f.wire == PB_LEN)
      t->name = (ox_str){f.data, f.len};
    else if (f.num == 9 && f.wire == PB_LEN) {
      t->has_raw = true;
      t->raw = (ox_str){f.data, f.len};
    } else if (f.num == 13)
      external = true;
    else if (f.num == 14 && f.wire == PB_VARINT && f.v == 1)
      external = true;
    else if (f.num == 3)
      segment = true;
  }
  if (name.n) t->name = name;
  if (external)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "ONNX %s '%.*s': the data is stored in an external "
                       "file, which dlp does not read (save the model with "
                       "the weights inside)",
                       what, OXS(t->name));
  if (segment)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "ONNX %s '%.*s': segmented tensors are not supported",
                       what, OXS(t->name));
  size_t nd = 0;
  dims_acc acc = {t->dims};
  rc = pb_each_repeated(e, tf->data, tf->len, 1, PB_VARINT, "ONNX tensor dims",
                        dims_put, &acc, &nd);
  if (rc != DLP_OK) return rc;
  if (nd > NN_MAX_DIMS)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "ONNX %s '%.*s' has %zu dims; dlp handles at most %d",
                       what, OXS(t->name), nd, NN_MAX_DIMS);
  t->ndim = (int)nd;
  for (int i = 0; i < t->ndim; i++)
    if (t->dims[i] < 0)
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "ONNX %s '%.*s': dim %d is negative (%lld)", what,
                         OXS(t->name), i, (long long)t->dims[i]);
  t->numel = nn_shape_numel(t->ndim, t->dims);
  char sb[96];
  if (t->numel < 0)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE,
                       "ONNX %s '%.*s': dims %s hold more than %lld elements",
                       what, OXS(t->name),
                       nn_shape_str(t->ndim, t->dims, sb, sizeof sb),
                       (long long)NN_MAX_NUMEL);
  int64_t es = dtype_size(t->dtype);
  if (!es) return DLP_OK; /* refused when used (dtype named then) */
  if (t->has_raw) {
    if ((uint64_t)t->raw.n != (uint64_t)(t->numel * es))
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "ONNX %s '%.*s': raw_data holds %zu bytes but dims "
                         "%s of %s need %lld",
                         what, OXS(t->name), t->raw.n,
                         nn_shape_str(t->ndim, t->dims, sb, sizeof sb),
                         dtype_name(t->dtype), (long long)(t->numel * es));
    return DLP_OK;
  }
  uint32_t num;
  int wire;
  dtype_field(t->dtype, &num, &wire);
  size_t count = 0;
  rc = pb_each_repeated(e, tf->data, tf->len, num, wire, "ONNX tensor data",
                        NULL, NULL, &count);
  if (rc != DLP_OK) return rc;
  if ((uint64_t)count != (uint64_t)t->numel)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "ONNX %s '%.*s': holds %zu values but dims %s need "
                       "%lld",
                       what, OXS(t->name), count,
                       nn_shape_str(t->ndim, t->dims, sb, sizeof sb),
                       (long long)t->numel);
  return DLP_OK;
}

typedef struct conv_acc {
  int dtype;
  float *f;
  int64_t *i;
} conv_acc;

static void conv_put(void *user, size_t k, uint64_t v) {
  conv_acc *a = user;
  double d;
  switch (a->dtype) {
  case OX_FLOAT:
    d = pb_float_bits((uint32_t)v);
    break;
  case OX_INT32:
    d = (double)(int32_t)(uint32_t)v;
    break;
  case OX_INT64:
    d = (double)(int64_t)v;
    break;
  default:
    memcpy(&d, &v, sizeof d);
    break;
  }
  if (a->f) a->f[k] = (float)d;
  if (a->i)
    a->i[k] = a->dtype == OX_INT64   ? (int64_t)v
              : a->dtype == OX_INT32 ? (int64_t)(int32_t)(uint32_t)v
                                     : (int64_t)d;
}

/* Decodes t's values into f (floats) and/or i (integers); numel of each. */
static void tensor_decode(const ox_tensor *t, float *f, int64_t *i) {
  if (t->ft) {
    for (int64_t k = 0; k < t->numel; k++) {
      if (f) f[k] = t->ft->is_float ? t->ft->f[k] : (float)t->ft->i[k];
      if (i) i[k] = t->ft->is_float ? (int64_t)t->ft->f[k] : t->ft->i[k];
    }
    return;
  }
  conv_acc a = {t->dtype, f, i};
  if (t->has_raw) {
    int64_t es = dtype_size(t->dtype);
    for (int64_t k = 0; k < t->numel; k++) {
      const uint8_t *p = t->raw.p + k * es;
      conv_put(&a, (size_t)k, es == 4 ? pb_le32(p) : pb_le64(p));
    }
    return;
  }
  uint32_t num;
  int wire;
  size_t n;
  dtype_field(t->dtype, &num, &wire);
  /* Already checked whole by parse_tensor. */
  (void)pb_each_repeated(NULL, t->msg, t->len, num, wire, "", conv_put, &a, &n);
}

/* A malloc'd float copy of t: float32 or float64 (converted), and integer
 * types when allow_int (scalars such as Clip bounds). */
static int tensor_floats(ox *x, const ox_tensor *t, bool allow_int,
                         float **out) {
  *out = NULL;
  if (t->ft && ox_ft_has_batch(t->ft))
    return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                       "ONNX tensor '%.*s' holds the symbolic batch size; "
                       "dlp cannot use it as data",
                       OXS(t->name));
  bool ok = t->dtype == OX_FLOAT || t->dtype == OX_DOUBLE ||
            (allow_int && (t->dtype == OX_INT32 || t->dtype == OX_INT64));
  if (!ok)
    return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                       "ONNX tensor '%.*s' has data type %s; dlp reads "
                       "float32 here",
                       OXS(t->name), dtype_name(t->dtype));
  float *f = dlp_malloc_array(t->numel > 0 ? (size_t)t->numel : 1, sizeof *f);
  if (!f) return nomem(x);
  tensor_decode(t, f, NULL);
  *out = f;
  return DLP_OK;
}

/* The integers of t (int64 or int32), at most max of them. */
static int tensor_ints(ox *x, const ox_node *n, const ox_tensor *t,
                       int64_t *out, int max, int *count) {
  if (t->dtype != OX_INT64 && t->dtype != OX_INT32)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "tensor '%.*s' has data type %s, expected int64", OXS(t->name),
                 dtype_name(t->dtype));
  if (t->ft && ox_ft_has_batch(t->ft))
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "tensor '%.*s' holds the symbolic batch size, which dlp "
                 "cannot use here",
                 OXS(t->name));
  if (t->numel > max)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "tensor '%.*s' has %lld values; at most %d are supported",
                 OXS(t->name), (long long)t->numel, max);
  tensor_decode(t, NULL, out);
  *count = (int)t->numel;
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * NodeProto and AttributeProto
 * ------------------------------------------------------------------------ */

static int parse_attr(ox *x, const pb_reader *parent, const pb_field *af,
                      ox_attr *a) {
  pb_reader r;
  int rc = pb_sub(x->e, parent, af, "ONNX attribute", &r);
  if (rc != DLP_OK) return rc;
  memset(a, 0, sizeof *a);
  a->msg = af->data;
  a->len = af->len;
  int seen = 0; /* the type implied by the fields present (old writers) */
  while (!pb_reader_done(&r)) {
    pb_field f;
    if ((rc = pb_next(x->e, &r, "ONNX attribute", &f)) != DLP_OK) return rc;
    switch (f.num) {
    case 1:
      if (f.wire == PB_LEN) a->name = (ox_str){f.data, f.len};
      break;
    case 20:
      if (f.wire == PB_VARINT) a->type = (int)f.v;
      break;
    case 2:
      if (f.wire == PB_I32)
        a->f = pb_float_bits((uint32_t)f.v), seen = OX_A_FLOAT;
      break;
    case 3:
      if (f.wire == PB_VARINT) a->i = (int64_t)f.v, seen = OX_A_INT;
      break;
    case 4:
      if (f.wire == PB_LEN) a->s = (ox_str){f.data, f.len}, seen = OX_A_STRING;
      break;
    case 5:
      if (f.wire == PB_LEN) a->t = f, seen = OX_A_TENSOR;
      break;
    case 7:
      seen = OX_A_FLOATS;
      break;
    case 8:
      seen = OX_A_INTS;
      break;
    default:
      break;
    }
  }
  if (!a->type) a->type = seen;
  return DLP_OK;
}

/* Counts fields 1 (input), 2 (output), 5 (attribute) of a NodeProto. */
static int parse_node(ox *x, const pb_reader *parent, const pb_field *nf,
                      ox_node *n) {
  pb_reader r;
  int rc = pb_sub(x->e, parent, nf, "ONNX node", &r);
  if (rc != DLP_OK) return rc;
  n->depth = r.depth;
  pb_reader r0 = r;
  int ni = 0, no = 0, na = 0;
  while (!pb_reader_done(&r)) {
    pb_field f;
    if ((rc = pb_next(x->e, &r, "ONNX node", &f)) != DLP_OK) return rc;
    if ((f.num == 1 || f.num == 2 || f.num == 3 || f.num == 4 || f.num == 5 ||
         f.num == 7) &&
        f.wire != PB_LEN)
      return dlp_err_set(x->e, DLP_ERR_CORRUPT,
                         "ONNX node: field %u has wire type %d", f.num, f.wire);
    if (f.num == 1) ni++;
    if (f.num == 2) no++;
    if (f.num == 5) na++;
    if (f.num == 3) n->name = (ox_str){f.data, f.len};
    if (f.num == 4) n->op = (ox_str){f.data, f.len};
    if (f.num == 7) n->domain = (ox_str){f.data, f.len};
  }
  if (ni > OX_MAX_NODE_IO || no > OX_MAX_NODE_IO || na > OX_MAX_ATTRS)
    return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                       "ONNX node '%.*s': %d inputs, %d outputs, %d "
                       "attributes; dlp handles at most %d, %d, %d",
                       OXS(n->name), ni, no, na, OX_MAX_NODE_IO, OX_MAX_NODE_IO,
                       OX_MAX_ATTRS);
  n->in = dlp_calloc_array((size_t)ni + 1, sizeof *n->in);
  n->out = dlp_calloc_array((size_t)no + 1, sizeof *n->out);
  n->attr = dlp_calloc_array((size_t)na + 1, sizeof *n->attr);
  if (!n->in || !n->out || !n->attr) return nomem(x);
  r = r0;
  while (!pb_reader_done(&r)) {
    pb_field f;
    (void)pb_next(x->e, &r, "ONNX node", &f); /* checked above */
    if (f.num == 1) n->in[n->n_in++] = (ox_str){f.data, f.len};
    if (f.num == 2) n->out[n->n_out++] = (ox_str){f.data, f.len};
    if (f.num == 5 &&
        (rc = parse_attr(x, &r0, &f, &n->attr[n->n_attr++])) != DLP_OK)
      return rc;
  }
  if (n->op.n == 0)
    return dlp_err_set(x->e, DLP_ERR_CORRUPT, "ONNX node '%.*s' has no op_type",
                       OXS(n->name));
  if (n->n_out < 1 || n->out[0].n == 0)
    return dlp_err_set(x->e, DLP_ERR_CORRUPT,
                       "ONNX node '%.*s' (%.*s) has no output", OXS(n->name),
                       OXS(n->op));
  return DLP_OK;
}

static void node_free(ox_node *n) {
  free(n->in);
  free(n->out);
  free(n->attr);
}

static const ox_attr *attr_find(const ox_node *n, const char *name) {
  for (int i = n->n_attr - 1; i >= 0; i--)
    if (ox_eq(n->attr[i].name, name)) return &n->attr[i];
  return NULL;
}

static int attr_type(ox *x, const ox_node *n, const ox_attr *a, int type,
                     const char *tname) {
  if (a->type != type)
    return nfail(x, n, DLP_ERR_CORRUPT,
                 "attribute '%.*s' should be %s (type %d) but has type %d",
                 OXS(a->name), tname, type, a->type);
  return DLP_OK;
}

static int attr_int(ox *x, const ox_node *n, const char *name, int64_t def,
                    int64_t *v) {
  const ox_attr *a = attr_find(n, name);
  *v = def;
  if (!a) return DLP_OK;
  int rc = attr_type(x, n, a, OX_A_INT, "an int");
  if (rc == DLP_OK) *v = a->i;
  return rc;
}

static int attr_float(ox *x, const ox_node *n, const char *name, float def,
                      float *v) {
  const ox_attr *a = attr_find(n, name);
  *v = def;
  if (!a) return DLP_OK;
  int rc = attr_type(x, n, a, OX_A_FLOAT, "a float");
  if (rc == DLP_OK) *v = a->f;
  return rc;
}

/* *s = the string, or def (a C string) when absent. */
static int attr_str(ox *x, const ox_node *n, const char *name, const char *def,
                    ox_str *s) {
  const ox_attr *a = attr_find(n, name);
  *s = (ox_str){(const uint8_t *)def, strlen(def)};
  if (!a) return DLP_OK;
  int rc = attr_type(x, n, a, OX_A_STRING, "a string");
  if (rc == DLP_OK) *s = a->s;
  return rc;
}

static void ints_put(void *user, size_t i, uint64_t v) {
  int64_t *out = user;
  out[i] = (int64_t)v;
}

/* A list of ints of length in [lo, hi]; *count = -1 when absent. */
static int attr_ints(ox *x, const ox_node *n, const char *name, int lo, int hi,
                     int64_t *out, int *count) {
  const ox_attr *a = attr_find(n, name);
  *count = -1;
  if (!a) return DLP_OK;
  int rc = attr_type(x, n, a, OX_A_INTS, "a list of ints");
  if (rc != DLP_OK) return rc;
  size_t c = 0;
  rc = pb_each_repeated(x->e, a->msg, a->len, 8, PB_VARINT, "ONNX attribute",
                        NULL, NULL, &c);
  if (rc != DLP_OK) return rc;
  if (c < (size_t)lo || c > (size_t)hi)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "attribute '%s' has %zu values; expected %d%s%d", name, c, lo,
                 lo == hi ? "" : " to ", hi);
  (void)pb_each_repeated(x->e, a->msg, a->len, 8, PB_VARINT, "", ints_put, out,
                         &c);
  *count = (int)c;
  return DLP_OK;
}

/* Attributes outside `known` (comma-separated) are refused: ignoring one
 * could silently change the results. */
static int check_attrs(ox *x, const ox_node *n, const char *known) {
  for (int i = 0; i < n->n_attr; i++) {
    ox_str nm = n->attr[i].name;
    bool ok = false;
    for (const char *p = known; *p && !ok;) {
      const char *c = strchr(p, ',');
      size_t l = c ? (size_t)(c - p) : strlen(p);
      ok = l == nm.n && memcmp(p, nm.p, l) == 0;
      p += l + (c ? 1 : 0);
    }
    if (!ok)
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "attribute '%.*s' is not supported", OXS(nm));
  }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * ModelProto and GraphProto
 * ------------------------------------------------------------------------ */

static int parse_model(ox *x, const uint8_t *buf, size_t len, pb_field *graph,
                       pb_reader *model) {
  pb_reader_init(model, buf, len);
  pb_reader r = *model;
  bool have_graph = false, have_opset = false;
  int rc;
  while (!pb_reader_done(&r)) {
    pb_field f;
    if ((rc = pb_next(x->e, &r, "ONNX model", &f)) != DLP_OK) return rc;
    if (f.num == 7) {
      if (f.wire != PB_LEN)
        return dlp_err_set(x->e, DLP_ERR_CORRUPT,
                           "ONNX model: the graph field is not a message");
      *graph = f;
      have_graph = true;
    } else if (f.num == 8) {
      pb_reader o;
      if ((rc = pb_sub(x->e, model, &f, "ONNX opset_import", &o)) != DLP_OK)
        return rc;
      ox_str domain = {(const uint8_t *)"", 0};
      int64_t version = 0;
      while (!pb_reader_done(&o)) {
        pb_field g;
        if ((rc = pb_next(x->e, &o, "ONNX opset_import", &g)) != DLP_OK)
          return rc;
        if (g.num == 1 && g.wire == PB_LEN) domain = (ox_str){g.data, g.len};
        if (g.num == 2 && g.wire == PB_VARINT) version = (int64_t)g.v;
      }
      if (domain.n == 0 || ox_eq(domain, "ai.onnx")) {
        x->opset = version;
        have_opset = true;
      }
    }
  }
  if (!have_graph)
    return dlp_err_set(x->e, DLP_ERR_CORRUPT,
                       "ONNX model has no graph (is this an ONNX file?)");
  if (!have_opset)
    return dlp_err_set(x->e, DLP_ERR_CORRUPT,
                       "ONNX model declares no opset for the default domain");
  if (x->opset < 9 || x->opset > 17)
    return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                       "ONNX opset %lld is not supported (dlp reads opsets 9 "
                       "to 17; convert the model with "
                       "onnx.version_converter)",
                       (long long)x->opset);
  return DLP_OK;
}

static int parse_graph(ox *x, const pb_reader *model, const pb_field *gf) {
  pb_reader r;
  int rc = pb_sub(x->e, model, gf, "ONNX graph", &r);
  if (rc != DLP_OK) return rc;
  x->graph_depth = r.depth;
  pb_reader r0 = r;
  size_t nn = 0, nt = 0, ni = 0, no = 0;
  while (!pb_reader_done(&r)) {
    pb_field f;
    if ((rc = pb_next(x->e, &r, "ONNX graph", &f)) != DLP_OK) return rc;
    bool msg = f.num == 1 || f.num == 5 || f.num == 11 || f.num == 12 ||
               f.num == 15 || f.num == 2;
    if (msg && f.wire != PB_LEN)
      return dlp_err_set(x->e, DLP_ERR_CORRUPT,
                         "ONNX graph: field %u has wire type %d", f.num,
                         f.wire);
    if (f.num == 1) nn++;
    if (f.num == 5) nt++;
    if (f.num == 11) ni++;
    if (f.num == 12) no++;
    if (f.num == 2) x->graph_name = (ox_str){f.data, f.len};
    if (f.num == 15)
      return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                         "ONNX graph: sparse initializers are not supported");
  }
  if (nn > OX_MAX_NODES || nt > OX_MAX_TENSORS || ni > OX_MAX_IO ||
      no > OX_MAX_IO)
    return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                       "ONNX graph: %zu nodes, %zu initializers, %zu inputs, "
                       "%zu outputs; dlp handles at most %d, %d, %d, %d",
                       nn, nt, ni, no, OX_MAX_NODES, OX_MAX_TENSORS, OX_MAX_IO,
                       OX_MAX_IO);
  x->nodes = dlp_calloc_array(nn + 1, sizeof *x->nodes);
  /* Constant nodes add a tensor each. */
  /* Constant, folded and ConstantOfShape value tensors: two per node. */
  x->tensors = dlp_calloc_array(nt + 2 * nn + 1, sizeof *x->tensors);
  x->in_vi = dlp_calloc_array(ni + 1, sizeof *x->in_vi);
  x->out_vi = dlp_calloc_array(no + 1, sizeof *x->out_vi);
  if (!x->nodes || !x->tensors || !x->in_vi || !x->out_vi) return nomem(x);
  x->cap_tensors = (int)(nt + 2 * nn);
  r = r0;
  while (!pb_reader_done(&r)) {
    pb_field f;
    (void)pb_next(x->e, &r, "ONNX graph", &f); /* checked above */
    if (f.num == 1) {
      ox_node *n = &x->nodes[x->n_nodes++];
      if ((rc = parse_node(x, &r0, &f, n)) != DLP_OK) return rc;
    } else if (f.num == 5) {
      ox_tensor *t = &x->tensors[x->n_tensors];
      if ((rc = parse_tensor(x, &r0, &f, "initializer", (ox_str){NULL, 0},
                             t)) != DLP_OK)
        return rc;
      x->n_tensors++;
    } else if (f.num == 11) {
      x->in_vi[x->n_in_vi++] = f;
    } else if (f.num == 12) {
      x->out_vi[x->n_out_vi++] = f;
    }
  }
  if (x->n_nodes == 0)
    return dlp_err_set(x->e, DLP_ERR_CORRUPT, "ONNX graph has no nodes");
  if (x->n_out_vi == 0)
    return dlp_err_set(x->e, DLP_ERR_CORRUPT, "ONNX graph has no outputs");
  return DLP_OK;
}

/* The name of a ValueInfoProto. */
static int vi_name(ox *x, const pb_field *vf, ox_str *name) {
  pb_reader r, top;
  pb_reader_init(&top, NULL, 0);
  top.depth = x->graph_depth;
  int rc = pb_sub(x->e, &top, vf, "ONNX value info", &r);
  *name = (ox_str){(const uint8_t *)"", 0};
  while (rc == DLP_OK && !pb_reader_done(&r)) {
    pb_field f;
    rc = pb_next(x->e, &r, "ONNX value info", &f);
    if (rc == DLP_OK && f.num == 1 && f.wire == PB_LEN)
      *name = (ox_str){f.data, f.len};
  }
  return rc;
}

/* The element type and dims of a ValueInfoProto's tensor type: dims[i] =
 * -1 for a symbolic dim (sym[i] its name), -2 when missing. */
static int vi_shape(ox *x, const pb_field *vf, int *elem, int *ndim,
                    int64_t *dims, ox_str *syms) {
  pb_reader top, r, tr, tt, sh, dm;
  pb_reader_init(&top, NULL, 0);
  top.depth = x->graph_depth;
  const char *w = "ONNX input type";
  pb_field f, g, h, k, l;
  bool have_type = false, have_tensor = false, have_shape = false;
  *elem = 0;
  *ndim = 0;
  int rc = pb_sub(x->e, &top, vf, w, &r);
  while (rc == DLP_OK && !pb_reader_done(&r))
    if ((rc = pb_next(x->e, &r, w, &f)) == DLP_OK && f.num == 2)
      have_type = (rc = pb_sub(x->e, &r, &f, w, &tr)) == DLP_OK;
  while (rc == DLP_OK && have_type && !pb_reader_done(&tr))
    if ((rc = pb_next(x->e, &tr, w, &g)) == DLP_OK && g.num == 1)
      have_tensor = (rc = pb_sub(x->e, &tr, &g, w, &tt)) == DLP_OK;
  while (rc == DLP_OK && have_tensor && !pb_reader_done(&tt)) {
    if ((rc = pb_next(x->e, &tt, w, &h)) != DLP_OK) break;
    if (h.num == 1 && h.wire == PB_VARINT) *elem = (int)h.v;
    if (h.num == 2) have_shape = (rc = pb_sub(x->e, &tt, &h, w, &sh)) == DLP_OK;
  }
  while (rc == DLP_OK && have_shape && !pb_reader_done(&sh)) {
    if ((rc = pb_next(x->e, &sh, w, &k)) != DLP_OK || k.num != 1) continue;
    if (*ndim >= NN_MAX_DIMS)
      return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                         "ONNX graph input has more than %d dims", NN_MAX_DIMS);
    if ((rc = pb_sub(x->e, &sh, &k, w, &dm)) != DLP_OK) break;
    int d = (*ndim)++;
    dims[d] = -2;
    syms[d] = (ox_str){(const uint8_t *)"?", 1};
    while (rc == DLP_OK && !pb_reader_done(&dm)) {
      if ((rc = pb_next(x->e, &dm, w, &l)) != DLP_OK) break;
      if (l.num == 1 && l.wire == PB_VARINT) dims[d] = (int64_t)l.v;
      if (l.num == 2 && l.wire == PB_LEN) {
        dims[d] = -1;
        syms[d] = (ox_str){l.data, l.len};
      }
    }
  }
  if (rc == DLP_OK && !have_shape) *ndim = -1;
  return rc;
}

/* ------------------------------------------------------------------------
 * Names: initializers, graph inputs, node outputs
 * ------------------------------------------------------------------------ */

/* Records the shape (batch as 1) of graph value v. */
static int set_vshape(ox *x, int v, const nn_shape *s) {
  if (v >= x->cap_vshape) {
    int cap = x->cap_vshape ? 2 * x->cap_vshape : 256;
    while (cap <= v)
      cap *= 2;
    nn_shape *p = dlp_realloc_array(x->vshape, (size_t)cap, sizeof *p);
    if (!p) return nomem(x);
    x->vshape = p;
    nn_shape *p2 = dlp_realloc_array(x->vshape2, (size_t)cap, sizeof *p2);
    if (!p2) return nomem(x);
    x->vshape2 = p2;
    x->cap_vshape = cap;
  }
  x->vshape[v] = *s;
  x->vshape2[v] = *s;
  return DLP_OK;
}

static int add_graph_input(ox *x, const pb_field *vf, ox_str name, int h,
                           int w) {
  int elem, ndim;
  int64_t dims[NN_MAX_DIMS];
  ox_str syms[NN_MAX_DIMS];
  int rc = vi_shape(x, vf, &elem, &ndim, dims, syms);
  if (rc != DLP_OK) return rc;
  if (elem != OX_FLOAT)
    return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                       "ONNX graph input '%.*s' has element type %s; dlp "
                       "feeds float32",
                       OXS(name), dtype_name(elem));
  if (ndim < 1)
    return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                       "ONNX graph input '%.*s' has %s; dlp needs a tensor "
                       "with a known rank (batch first)",
                       OXS(name), ndim < 0 ? "no shape" : "rank 0");
  dims[0] = -1; /* the batch, whatever the file says */
  for (int i = 1; i < ndim; i++) {
    int want = ndim == 4 && i == 2 ? h : ndim == 4 && i == 3 ? w : 0;
    if (want > 0 && (dims[i] < 0 || dims[i] == want)) dims[i] = want;
    if (want > 0 && dims[i] != want)
      return dlp_err_set(x->e, DLP_ERR_ARG,
                         "ONNX graph input '%.*s': dim %d is fixed at %lld, "
                         "not the requested %d",
                         OXS(name), i, (long long)dims[i], want);
    if (dims[i] == -1)
      return dlp_err_set(x->e, DLP_ERR_ARG,
                         "ONNX graph input '%.*s': dim %d is symbolic "
                         "('%.*s'); give the input size",
                         OXS(name), i, OXS(syms[i]));
    if (dims[i] < 1)
      return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                         "ONNX graph input '%.*s': dim %d is %s", OXS(name), i,
                         dims[i] == -2 ? "missing" : "not positive");
  }
  char *cname = ox_cstr(name);
  if (!cname) return nomem(x);
  int v = nn_graph_add_input(x->g, cname, ndim, dims);
  free(cname);
  if (v < 0) return build_err(x);
  int k = sym_add(x, name);
  if (k < 0)
    return dlp_err_set(x->e, DLP_ERR_CORRUPT,
                       "ONNX graph input '%.*s' is listed twice", OXS(name));
  x->syms[k].value = v;
  nn_shape s = {ndim, {1, 1, 1, 1, 1, 1}};
  for (int i = 1; i < ndim; i++)
    s.dims[i] = dims[i];
  if ((rc = set_vshape(x, v, &s)) != DLP_OK) return rc;
  x->vshape2[v].dims[0] = 2;
  if (!x->have_input && ndim == 4) {
    x->g->input_spec.channels = (int)dims[1];
    x->g->input_spec.height = (int)dims[2];
    x->g->input_spec.width = (int)dims[3];
  }
  x->have_input = true;
  return DLP_OK;
}

static int build_names(ox *x, int h, int w) {
  size_t total = (size_t)x->cap_tensors + (size_t)x->n_in_vi;
  for (int i = 0; i < x->n_nodes; i++)
    total += (size_t)x->nodes[i].n_out;
  int rc = syms_alloc(x, total);
  if (rc != DLP_OK) return rc;
  for (int i = 0; i < x->n_tensors; i++) {
    ox_tensor *t = &x->tensors[i];
    int k = t->name.n ? sym_add(x, t->name) : -1;
    if (k < 0)
      return dlp_err_set(x->e, DLP_ERR_CORRUPT, "ONNX initializer '%.*s' is %s",
                         OXS(t->name), t->name.n ? "defined twice" : "unnamed");
    x->syms[k].tensor = i;
  }
  for (int i = 0; i < x->n_in_vi; i++) {
    ox_str name;
    if ((rc = vi_name(x, &x->in_vi[i], &name)) != DLP_OK) return rc;
    int k = sym_find(x, name);
    if (k >= 0 && x->syms[k].tensor >= 0) continue; /* a constant */
    if ((rc = add_graph_input(x, &x->in_vi[i], name, h, w)) != DLP_OK)
      return rc;
  }
  if (!x->have_input)
    return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                       "ONNX graph has no input besides its initializers");
  for (int i = 0; i < x->n_nodes; i++) {
    ox_node *n = &x->nodes[i];
    for (int j = 0; j < n->n_out; j++) {
      if (n->out[j].n == 0) continue; /* an omitted optional output */
      int k = sym_add(x, n->out[j]);
      if (k < 0) {
        ox_str l = node_label(n);
        return dlp_err_set(x->e, DLP_ERR_CORRUPT,
                           "ONNX node '%.*s' (%.*s): output '%.*s' is already "
                           "defined elsewhere in the graph",
                           OXS(l), OXS(n->op), OXS(n->out[j]));
      }
      x->syms[k].producer = i;
      x->syms[k].out_index = j;
    }
  }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Node order (Kahn), with cycles and dangling inputs reported by name
 * ------------------------------------------------------------------------ */

static int order_nodes(ox *x, int *order) {
  int nn = x->n_nodes, rc = DLP_OK;
  int *indeg = dlp_calloc_array((size_t)nn + 1, sizeof *indeg);
  int *start = dlp_calloc_array((size_t)nn + 2, sizeof *start);
  size_t edges = 0;
  for (int i = 0; i < nn; i++)
    edges += (size_t)x->nodes[i].n_in;
  int *cons = dlp_malloc_array(edges + 1, sizeof *cons);
  if (!indeg || !start || !cons) {
    rc = nomem(x);
    goto done;
  }
  for (int i = 0; i < nn && rc == DLP_OK; i++) {
    ox_node *n = &x->nodes[i];
    for (int j = 0; j < n->n_in; j++) {
      if (n->in[j].n == 0) continue; /* an omitted optional input */
      int k = sym_find(x, n->in[j]);
      if (k < 0) {
        rc = nfail(x, n, DLP_ERR_CORRUPT,
                   "input '%.*s' is not a graph input, an initializer or "
                   "the output of any node",
                   OXS(n->in[j]));
        break;
      }
      int p = x->syms[k].producer;
      if (p >= 0) {
        indeg[i]++;
        start[p + 1]++;
      }
    }
  }
  if (rc != DLP_OK) goto done;
  for (int i = 0; i < nn; i++)
    start[i + 1] += start[i];
  int *fill = indeg; /* reuse: count consumers as they are placed */
  int *pos = dlp_malloc_array((size_t)nn + 1, sizeof *pos);
  if (!pos) {
    rc = nomem(x);
    goto done;
  }
  for (int i = 0; i < nn; i++)
    pos[i] = start[i];
  for (int i = 0; i < nn; i++) {
    ox_node *n = &x->nodes[i];
    for (int j = 0; j < n->n_in; j++) {
      int k = n->in[j].n ? sym_find(x, n->in[j]) : -1;
      if (k >= 0 && x->syms[k].producer >= 0)
        cons[pos[x->syms[k].producer]++] = i;
    }
  }
  free(pos);
  int head = 0, tail = 0;
  for (int i = 0; i < nn; i++)
    if (fill[i] == 0) order[tail++] = i;
  while (head < tail) {
    int p = order[head++];
    for (int c = start[p]; c < start[p + 1]; c++)
      if (--fill[cons[c]] == 0) order[tail++] = cons[c];
  }
  if (tail < nn) {
    /* Walk back from a node left over: after nn steps we are on a cycle. */
    int v = -1;
    for (int i = 0; i < nn && v < 0; i++)
      if (fill[i] > 0) v = i;
    for (int s = 0; s < nn; s++) {
      ox_node *n = &x->nodes[v];
      int next = -1;
      for (int j = 0; j < n->n_in && next < 0; j++) {
        int k = n->in[j].n ? sym_find(x, n->in[j]) : -1;
        int p = k >= 0 ? x->syms[k].producer : -1;
        if (p >= 0 && fill[p] > 0) next = p;
      }
      if (next < 0) break;
      v = next;
    }
    rc = nfail(x, &x->nodes[v], DLP_ERR_CORRUPT,
               "the graph has a cycle through this node");
  }
done:
  free(indeg);
  free(start);
  free(cons);
  return rc;
}

/* ------------------------------------------------------------------------
 * Values for the op converters
 * ------------------------------------------------------------------------ */

/* "name", or "name:1", ... when a value or node already has it. */
static char *unique_name(ox *x, const char *base) {
  if (nn_graph_find_value(x->g, base) < 0 && nn_graph_find_node(x->g, base) < 0)
    return dlp_strdup(base);
  size_t n = strlen(base) + 24;
  char *buf = malloc(n);
  if (!buf) return NULL;
  for (int k = 1;; k++) {
    snprintf(buf, n, "%s:%d", base, k);
    if (nn_graph_find_value(x->g, buf) < 0 && nn_graph_find_node(x->g, buf) < 0)
      return buf;
  }
}

/* Adds a const (taking data) under a unique name built from base. */
static int add_const(ox *x, const char *base, int ndim, const int64_t *dims,
                     float *data, int *value) {
  char *nm = unique_name(x, base);
  if (!nm) {
    free(data);
    return nomem(x);
  }
  *value = nn_graph_add_const_owned(x->g, nm, ndim, dims, data);
  free(nm);
  return *value < 0 ? build_err(x) : DLP_OK;
}

static const ox_tensor *sym_tensor(const ox *x, int k) {
  return k >= 0 && x->syms[k].tensor >= 0 ? &x->tensors[x->syms[k].tensor]
                                          : NULL;
}

/* Input j of n as a constant tensor, or NULL when absent/empty. */
static int in_const(ox *x, const ox_node *n, int j, bool required,
                    const ox_tensor **t) {
  *t = NULL;
  if (j >= n->n_in || n->in[j].n == 0) {
    if (required)
      return nfail(x, n, DLP_ERR_CORRUPT, "input %d is missing", j + 1);
    return DLP_OK;
  }
  *t = sym_tensor(x, sym_find(x, n->in[j]));
  if (!*t)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "input %d ('%.*s') must be a constant (an initializer or a "
                 "Constant node)",
                 j + 1, OXS(n->in[j]));
  return DLP_OK;
}

/* Input j of n as a graph value (constants become graph consts once). */
static int in_value(ox *x, const ox_node *n, int j, int *v, nn_shape *shape) {
  if (j >= n->n_in || n->in[j].n == 0)
    return nfail(x, n, DLP_ERR_CORRUPT, "input %d is missing", j + 1);
  int k = sym_find(x, n->in[j]);
  ox_sym *s = &x->syms[k]; /* order_nodes checked that it exists */
  if (s->value < 0 && s->tensor >= 0) {
    ox_tensor *t = &x->tensors[s->tensor];
    if (t->value < 0) {
      float *data;
      int rc = tensor_floats(x, t, false, &data);
      if (rc != DLP_OK) return nfail(x, n, rc, "%s", x->e->msg);
      char *nm = ox_cstr(t->name);
      if (!nm) {
        free(data);
        return nomem(x);
      }
      rc = add_const(x, nm, t->ndim, t->dims, data, &t->value);
      free(nm);
      if (rc != DLP_OK) return rc;
      nn_shape cs = {t->ndim, {1, 1, 1, 1, 1, 1}};
      for (int i = 0; i < t->ndim; i++)
        cs.dims[i] = t->dims[i];
      if ((rc = set_vshape(x, t->value, &cs)) != DLP_OK) return rc;
    }
    s->value = t->value;
  }
  if (s->value < 0) {
    const ox_node *p = &x->nodes[s->producer];
    ox_str pl = node_label(p);
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "input '%.*s' is output %d of node '%.*s' (%.*s), which dlp "
                 "does not compute",
                 OXS(n->in[j]), s->out_index + 1, OXS(pl), OXS(p->op));
  }
  *v = s->value;
  if (shape) *shape = x->vshape[s->value];
  return DLP_OK;
}

/* Adds graph node `op` for ONNX node n (a helper node named
 * "<node>/<suffix>" when suffix is set), after inferring its shape; without
 * suffix it binds n's first output to the node's value (*out_v). */
static int emit(ox *x, const ox_node *n, const char *suffix, nn_op op,
                const int *in, int n_in, const nn_node_attr *a, int *out_v) {
  const nn_shape *ins[OX_MAX_NODE_IO], *ins2[OX_MAX_NODE_IO];
  for (int i = 0; i < n_in; i++) {
    ins[i] = &x->vshape[in[i]];
    ins2[i] = &x->vshape2[in[i]];
  }
  ox_str l = node_label(n);
  char *base = ox_cstr(l);
  if (!base) return nomem(x);
  if (suffix) {
    size_t m = strlen(base) + strlen(suffix) + 2;
    char *b2 = malloc(m);
    if (!b2) {
      free(base);
      return nomem(x);
    }
    snprintf(b2, m, "%s/%s", base, suffix);
    free(base);
    base = b2;
  }
  nn_node tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.op = op;
  tmp.name = base;
  tmp.n_in = n_in;
  tmp.attr = *a;
  nn_shape shape, shape2;
  dlp_err se = {0};
  /* At batch 2 too, to know which dims grow with the batch (Shape); a
   * graph that only runs at batch 1 keeps the batch-1 shape there. */
  if (nn_graph_node_out_shape(&se, &tmp, ins2, &shape2) != DLP_OK)
    shape2.ndim = -1;
  int rc = nn_graph_node_out_shape(&se, &tmp, ins, &shape);
  if (rc != DLP_OK) {
    free(base);
    /* se reads "node 'base' (op): ..."; the ONNX prefix says the rest */
    const char *m = strstr(se.msg, "): ");
    return nfail(x, n, rc == DLP_ERR_NOMEM ? rc : DLP_ERR_CORRUPT, "%s",
                 m ? m + 3 : se.msg);
  }
  char *nm = unique_name(x, base);
  free(base);
  if (!nm) return nomem(x);
  int v = nn_graph_add_node(x->g, op, nm, in, n_in, a);
  free(nm);
  if (v < 0) return build_err(x);
  if ((rc = set_vshape(x, v, &shape)) != DLP_OK) return rc;
  if (shape2.ndim == shape.ndim) x->vshape2[v] = shape2;
  if (!suffix) {
    int k = sym_find(x, n->out[0]);
    x->syms[k].value = v;
  }
  *out_v = v;
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Op converters
 * ------------------------------------------------------------------------ */

#define OX_MAX_SPATIAL (1 << 20) /* kernel, stride, pad, dilation bound */

static int small_int(ox *x, const ox_node *n, const char *what, int64_t v,
                     int64_t lo, int *out) {
  if (v < lo || v > OX_MAX_SPATIAL)
    return nfail(x, n, DLP_ERR_UNSUPPORTED, "%s %lld is outside %lld..%d", what,
                 (long long)v, (long long)lo, OX_MAX_SPATIAL);
  *out = (int)v;
  return DLP_OK;
}

/* strides, dilations, pads and auto_pad of a Conv or pooling node over input
 * xs (N, C, H, W) with kernel k. */
static int spatial_attrs(ox *x, const ox_node *n, const nn_shape *xs,
                         const int k[2], bool dilations, int stride[2],
                         int dil[2], int pads[4]) {
  int64_t v[4];
  int c, rc;
  if ((rc = attr_ints(x, n, "strides", 2, 2, v, &c)) != DLP_OK) return rc;
  for (int i = 0; i < 2; i++)
    if ((rc = small_int(x, n, "stride", c < 0 ? 1 : v[i], 1, &stride[i])))
      return rc;
  if ((rc = attr_ints(x, n, "dilations", 2, 2, v, &c)) != DLP_OK) return rc;
  for (int i = 0; i < 2; i++) {
    if ((rc = small_int(x, n, "dilation", c < 0 ? 1 : v[i], 1, &dil[i])))
      return rc;
    if (!dilations && dil[i] != 1)
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "dilated pooling is not supported");
  }
  if ((rc = attr_ints(x, n, "pads", 4, 4, v, &c)) != DLP_OK) return rc;
  for (int i = 0; i < 4; i++)
    if ((rc = small_int(x, n, "pad", c < 0 ? 0 : v[i], 0, &pads[i]))) return rc;
  bool have_pads = c >= 0;
  ox_str ap;
  if ((rc = attr_str(x, n, "auto_pad", "NOTSET", &ap)) != DLP_OK) return rc;
  if (ox_eq(ap, "NOTSET")) return DLP_OK;
  bool nonzero = pads[0] || pads[1] || pads[2] || pads[3];
  if (have_pads && nonzero)
    return nfail(x, n, DLP_ERR_CORRUPT,
                 "auto_pad '%.*s' and explicit pads are both set", OXS(ap));
  if (ox_eq(ap, "VALID")) return DLP_OK;
  nn_auto_pad mode;
  if (ox_eq(ap, "SAME_UPPER"))
    mode = NN_AUTOPAD_SAME_UPPER;
  else if (ox_eq(ap, "SAME_LOWER"))
    mode = NN_AUTOPAD_SAME_LOWER;
  else
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "auto_pad '%.*s' is not supported (NOTSET, SAME_UPPER, "
                 "SAME_LOWER, VALID)",
                 OXS(ap));
  for (int i = 0; i < 2; i++)
    if (!nn_pad_auto(mode, xs->dims[2 + i], k[i], stride[i], dil[i], &pads[i],
                     &pads[2 + i]))
      return nfail(x, n, DLP_ERR_CORRUPT, "auto_pad: bad sizes");
  return DLP_OK;
}

static int need_4d(ox *x, const ox_node *n, const nn_shape *s) {
  if (s->ndim != 4)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "only 2-D (N, C, H, W) inputs are supported; the input has "
                 "rank %d",
                 s->ndim);
  return DLP_OK;
}

static int op_conv(ox *x, const ox_node *n) {
  int rc, in[3], out;
  nn_shape xs;
  const ox_tensor *wt, *bt;
  if ((rc = in_value(x, n, 0, &in[0], &xs)) || (rc = need_4d(x, n, &xs)) ||
      (rc = in_const(x, n, 1, true, &wt)) ||
      (rc = in_const(x, n, 2, false, &bt)))
    return rc;
  if (wt->ndim != 4)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "the weight has rank %d; only 2-D convolutions are supported",
                 wt->ndim);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  int k[2];
  int64_t ks[4], group;
  int c;
  for (int i = 0; i < 2; i++)
    if ((rc = small_int(x, n, "kernel size", wt->dims[2 + i], 1, &k[i])))
      return rc;
  if ((rc = attr_ints(x, n, "kernel_shape", 2, 2, ks, &c))) return rc;
  if (c >= 0 && (ks[0] != k[0] || ks[1] != k[1]))
    return nfail(x, n, DLP_ERR_CORRUPT,
                 "kernel_shape %lldx%lld does not match the weight's %dx%d",
                 (long long)ks[0], (long long)ks[1], k[0], k[1]);
  if ((rc = attr_int(x, n, "group", 1, &group)) ||
      (rc = small_int(x, n, "group", group, 1, &a.conv.groups)) ||
      (rc = spatial_attrs(x, n, &xs, k, true, a.conv.stride, a.conv.dilation,
                          a.conv.pads)) ||
      (rc = in_value(x, n, 1, &in[1], NULL)) ||
      (bt && (rc = in_value(x, n, 2, &in[2], NULL))))
    return rc;
  return emit(x, n, NULL, NN_OP_CONV2D, in, bt ? 3 : 2, &a, &out);
}

static int op_pool(ox *x, const ox_node *n) {
  bool avg = ox_eq(n->op, "AveragePool");
  int rc, in, out, c, dil[2];
  nn_shape xs;
  int64_t ks[2], ceil_mode, cip = 0, order;
  if ((rc = in_value(x, n, 0, &in, &xs)) || (rc = need_4d(x, n, &xs)) ||
      (rc = attr_ints(x, n, "kernel_shape", 2, 2, ks, &c)))
    return rc;
  if (c < 0) return nfail(x, n, DLP_ERR_CORRUPT, "kernel_shape is missing");
  nn_node_attr a;
  nn_node_attr_init(avg ? NN_OP_AVGPOOL : NN_OP_MAXPOOL, &a);
  for (int i = 0; i < 2; i++)
    if ((rc = small_int(x, n, "kernel size", ks[i], 1, &a.pool.kernel[i])))
      return rc;
  if ((rc = spatial_attrs(x, n, &xs, a.pool.kernel, false, a.pool.stride, dil,
                          a.pool.pads)) ||
      (rc = attr_int(x, n, "ceil_mode", 0, &ceil_mode)) ||
      (avg && (rc = attr_int(x, n, "count_include_pad", 0, &cip))) ||
      (rc = attr_int(x, n, "storage_order", 0, &order)))
    return rc;
  a.pool.ceil_mode = ceil_mode != 0;
  a.pool.count_include_pad = cip != 0;
  return emit(x, n, NULL, avg ? NN_OP_AVGPOOL : NN_OP_MAXPOOL, &in, 1, &a,
              &out);
}

static int op_global_pool(ox *x, const ox_node *n) {
  int rc, in, out;
  if ((rc = in_value(x, n, 0, &in, NULL))) return rc;
  nn_op op = ox_eq(n->op, "GlobalMaxPool") ? NN_OP_GLOBAL_MAXPOOL
                                           : NN_OP_GLOBAL_AVGPOOL;
  nn_node_attr a;
  nn_node_attr_init(op, &a);
  return emit(x, n, NULL, op, &in, 1, &a, &out);
}

/* A float copy of t scaled by s (a fresh weight for Gemm alpha/beta). */
static int scaled_const(ox *x, const ox_node *n, const ox_tensor *t, float s,
                        int ndim, const int64_t *dims, const char *suffix,
                        int *v) {
  float *d;
  int rc = tensor_floats(x, t, false, &d);
  if (rc != DLP_OK) return nfail(x, n, rc, "%s", x->e->msg);
  for (int64_t i = 0; i < t->numel; i++)
    d[i] *= s;
  char *tn = ox_cstr(t->name);
  size_t m = t->name.n + strlen(suffix) + 2;
  char *nm = malloc(m);
  if (!tn || !nm) {
    free(tn);
    free(nm);
    free(d);
    return nomem(x);
  }
  snprintf(nm, m, "%s/%s", tn, suffix);
  free(tn);
  rc = add_const(x, nm, ndim, dims, d, v);
  free(nm);
  if (rc != DLP_OK) return rc;
  nn_shape cs = {ndim, {1, 1, 1, 1, 1, 1}};
  for (int i = 0; i < ndim; i++)
    cs.dims[i] = dims[i];
  return set_vshape(x, *v, &cs);
}

/* Gemm(A, B, C) with transA = 0: a dense layer (transB keeps B as (out,
 * in)); alpha and beta are folded into copies of B and C. */
static int op_gemm(ox *x, const ox_node *n) {
  int rc, in[3], out;
  const ox_tensor *bt, *ct;
  int64_t ta, tb;
  float alpha, beta;
  if ((rc = in_value(x, n, 0, &in[0], NULL)) ||
      (rc = in_const(x, n, 1, true, &bt)) ||
      (rc = in_const(x, n, 2, false, &ct)) ||
      (rc = attr_int(x, n, "transA", 0, &ta)) ||
      (rc = attr_int(x, n, "transB", 0, &tb)) ||
      (rc = attr_float(x, n, "alpha", 1.0f, &alpha)) ||
      (rc = attr_float(x, n, "beta", 1.0f, &beta)))
    return rc;
  if (ta != 0)
    return nfail(x, n, DLP_ERR_UNSUPPORTED, "transA = 1 is not supported");
  if (bt->ndim != 2)
    return nfail(x, n, DLP_ERR_CORRUPT, "B has rank %d, not 2", bt->ndim);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_DENSE, &a);
  a.dense.transb = tb != 0;
  int64_t nout = a.dense.transb ? bt->dims[0] : bt->dims[1];
  if (alpha == 1.0f)
    rc = in_value(x, n, 1, &in[1], NULL);
  else
    rc = scaled_const(x, n, bt, alpha, 2, bt->dims, "alpha", &in[1]);
  if (rc != DLP_OK) return rc;
  int n_in = 2;
  if (ct) {
    /* C broadcasts to (N, out): a bias of out values, or one scalar. */
    if (ct->numel != nout && ct->numel != 1)
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "C has %lld values; only a bias of %lld (the outputs) or "
                   "a scalar is supported",
                   (long long)ct->numel, (long long)nout);
    if (ct->numel == nout && ct->ndim == 1 && beta == 1.0f) {
      rc = in_value(x, n, 2, &in[2], NULL);
    } else if (ct->numel == nout) {
      rc = scaled_const(x, n, ct, beta, 1, &nout, "bias", &in[2]);
    } else {
      float *d;
      if ((rc = tensor_floats(x, ct, false, &d)) != DLP_OK)
        return nfail(x, n, rc, "%s", x->e->msg);
      float c0 = d[0] * beta;
      free(d);
      d = dlp_malloc_array(nout > 0 ? (size_t)nout : 1, sizeof *d);
      if (!d) return nomem(x);
      for (int64_t i = 0; i < nout; i++)
        d[i] = c0;
      ox_str l = node_label(n);
      char nm[OX_NAME_SHOW + 16];
      snprintf(nm, sizeof nm, "%.*s/bias", OXS(l));
      if ((rc = add_const(x, nm, 1, &nout, d, &in[2])) != DLP_OK) return rc;
      nn_shape cs = {1, {nout, 1, 1, 1, 1, 1}};
      rc = set_vshape(x, in[2], &cs);
    }
    if (rc != DLP_OK) return rc;
    n_in = 3;
  }
  return emit(x, n, NULL, NN_OP_DENSE, in, n_in, &a, &out);
}

static int op_matmul(ox *x, const ox_node *n) {
  int rc, in[2], out;
  const ox_tensor *bt = NULL;
  if ((rc = in_value(x, n, 0, &in[0], NULL))) return rc;
  int k = n->n_in > 1 ? sym_find(x, n->in[1]) : -1;
  bt = sym_tensor(x, k);
  if (!bt || bt->ndim != 2)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "only a constant 2-D right-hand side is supported");
  nn_node_attr a;
  nn_node_attr_init(NN_OP_DENSE, &a);
  if ((rc = in_value(x, n, 1, &in[1], NULL))) return rc;
  return emit(x, n, NULL, NN_OP_DENSE, in, 2, &a, &out);
}

static int op_batchnorm(ox *x, const ox_node *n) {
  int rc, in[5], out;
  int64_t training = 0, spatial = 1;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_BATCHNORM, &a);
  if ((rc = attr_float(x, n, "epsilon", 1e-5f, &a.eps)) ||
      (rc = attr_int(x, n, "training_mode", 0, &training)) ||
      (rc = attr_int(x, n, "spatial", 1, &spatial)))
    return rc;
  if (training != 0 || spatial != 1)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "training_mode and spatial = 0 are not supported");
  for (int j = 0; j < 5; j++) {
    const ox_tensor *t;
    if ((j > 0 && (rc = in_const(x, n, j, true, &t))) ||
        (rc = in_value(x, n, j, &in[j], NULL)))
      return rc;
  }
  return emit(x, n, NULL, NN_OP_BATCHNORM, in, 5, &a, &out);
}

static int op_act(ox *x, const ox_node *n) {
  int rc, in, out;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_ACT, &a);
  if (ox_eq(n->op, "Relu"))
    a.act = NN_ACT_RELU;
  else if (ox_eq(n->op, "Sigmoid"))
    a.act = NN_ACT_SIGMOID;
  else if (ox_eq(n->op, "Tanh"))
    a.act = NN_ACT_TANH;
  else {
    a.act = NN_ACT_LEAKY_RELU;
    if ((rc = attr_float(x, n, "alpha", 0.01f, &a.alpha))) return rc;
  }
  if ((rc = in_value(x, n, 0, &in, NULL))) return rc;
  return emit(x, n, NULL, NN_OP_ACT, &in, 1, &a, &out);
}

/* A one-element const holding f. */
static int scalar_const(ox *x, const ox_node *n, const char *suffix, float f,
                        int *v) {
  float *d = malloc(sizeof *d);
  if (!d) return nomem(x);
  *d = f;
  ox_str l = node_label(n);
  char nm[OX_NAME_SHOW + 32];
  snprintf(nm, sizeof nm, "%.*s/%s", OXS(l), suffix);
  int64_t one = 1;
  int rc = add_const(x, nm, 1, &one, d, v);
  nn_shape cs = {1, {1, 1, 1, 1, 1, 1}};
  return rc != DLP_OK ? rc : set_vshape(x, *v, &cs);
}

/* HardSigmoid: the Keras one (0.2, 0.5) is an activation; any other slope
 * becomes clip(alpha*x + beta, 0, 1) (PyTorch exports alpha = 1/6). */
static int op_hardsigmoid(ox *x, const ox_node *n) {
  int rc, in[2], out;
  float alpha, beta;
  if ((rc = attr_float(x, n, "alpha", 0.2f, &alpha)) ||
      (rc = attr_float(x, n, "beta", 0.5f, &beta)) ||
      (rc = in_value(x, n, 0, &in[0], NULL)))
    return rc;
  nn_node_attr a;
  if (alpha == 0.2f && beta == 0.5f) {
    nn_node_attr_init(NN_OP_ACT, &a);
    a.act = NN_ACT_HARD_SIGMOID;
    return emit(x, n, NULL, NN_OP_ACT, in, 1, &a, &out);
  }
  nn_node_attr_init(NN_OP_MUL, &a);
  if ((rc = scalar_const(x, n, "alpha", alpha, &in[1])) ||
      (rc = emit(x, n, "mul", NN_OP_MUL, in, 2, &a, &in[0])) ||
      (rc = scalar_const(x, n, "beta", beta, &in[1])))
    return rc;
  nn_node_attr_init(NN_OP_ADD, &a);
  if ((rc = emit(x, n, "add", NN_OP_ADD, in, 2, &a, &in[0]))) return rc;
  nn_node_attr_init(NN_OP_CLIP, &a);
  a.clip_lo = 0.0f;
  a.clip_hi = 1.0f;
  return emit(x, n, NULL, NN_OP_CLIP, in, 1, &a, &out);
}

/* Optional scalar constant input j (Clip bounds, Pad value). */
static int in_scalar(ox *x, const ox_node *n, int j, float *v) {
  const ox_tensor *t;
  int rc = in_const(x, n, j, false, &t);
  if (rc != DLP_OK || !t) return rc;
  if (t->numel != 1)
    return nfail(x, n, DLP_ERR_CORRUPT,
                 "input %d ('%.*s') should be a scalar but has %lld values",
                 j + 1, OXS(t->name), (long long)t->numel);
  float *d;
  if ((rc = tensor_floats(x, t, true, &d)) != DLP_OK)
    return nfail(x, n, rc, "%s", x->e->msg);
  *v = d[0];
  free(d);
  return DLP_OK;
}

static int op_clip(ox *x, const ox_node *n) {
  int rc, in, out;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CLIP, &a);
  a.clip_lo = -INFINITY;
  a.clip_hi = INFINITY;
  if (x->opset < 11) {
    if ((rc = attr_float(x, n, "min", -INFINITY, &a.clip_lo)) ||
        (rc = attr_float(x, n, "max", INFINITY, &a.clip_hi)))
      return rc;
  } else if ((rc = in_scalar(x, n, 1, &a.clip_lo)) ||
             (rc = in_scalar(x, n, 2, &a.clip_hi))) {
    return rc;
  }
  if (!(a.clip_lo <= a.clip_hi))
    return nfail(x, n, DLP_ERR_UNSUPPORTED, "min %g is above max %g",
                 (double)a.clip_lo, (double)a.clip_hi);
  if ((rc = in_value(x, n, 0, &in, NULL))) return rc;
  return emit(x, n, NULL, NN_OP_CLIP, &in, 1, &a, &out);
}

static int norm_axis(ox *x, const ox_node *n, int64_t axis, int rank,
                     bool inclusive, int *out) {
  int64_t hi = inclusive ? rank : rank - 1;
  int64_t ax = axis < 0 ? axis + rank : axis;
  *out = 0;
  if (ax < 0 || ax > hi)
    return nfail(x, n, DLP_ERR_CORRUPT, "axis %lld is outside the rank %d",
                 (long long)axis, rank);
  *out = (int)ax;
  return DLP_OK;
}

/* Softmax: opset 13 normalises one axis; before, the input was flattened to
 * 2-D from `axis`, the same only when nothing but ones follow the axis. */
static int op_softmax(ox *x, const ox_node *n) {
  int rc, in, out, ax = 0;
  nn_shape s;
  int64_t axis;
  if ((rc = in_value(x, n, 0, &in, &s)) ||
      (rc = attr_int(x, n, "axis", x->opset < 13 ? 1 : -1, &axis)) ||
      (rc = norm_axis(x, n, axis, s.ndim, false, &ax)))
    return rc;
  if (x->opset < 13) {
    int64_t rest = 1;
    for (int i = ax + 1; i < s.ndim; i++)
      rest *= s.dims[i];
    if (rest != 1 || ax == 0)
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "opset %lld Softmax over axis %d flattens the %d "
                   "following axes; only the last axis is supported",
                   (long long)x->opset, ax, s.ndim - 1 - ax);
  }
  nn_node_attr a;
  nn_node_attr_init(NN_OP_SOFTMAX, &a);
  a.axis = ax;
  return emit(x, n, NULL, NN_OP_SOFTMAX, &in, 1, &a, &out);
}

static int op_binary(ox *x, const ox_node *n) {
  int rc, in[2], out;
  nn_op op = ox_eq(n->op, "Add") ? NN_OP_ADD : NN_OP_MUL;
  if ((rc = in_value(x, n, 0, &in[0], NULL)) ||
      (rc = in_value(x, n, 1, &in[1], NULL)))
    return rc;
  nn_node_attr a;
  nn_node_attr_init(op, &a);
  return emit(x, n, NULL, op, in, 2, &a, &out);
}

static int op_concat(ox *x, const ox_node *n) {
  int rc, out, ax = 0;
  int64_t axis;
  if (n->n_in < 1) return nfail(x, n, DLP_ERR_CORRUPT, "no inputs");
  int *in = dlp_malloc_array((size_t)n->n_in, sizeof *in);
  if (!in) return nomem(x);
  nn_shape s;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONCAT, &a);
  rc = attr_find(n, "axis") ? attr_int(x, n, "axis", 1, &axis)
                            : nfail(x, n, DLP_ERR_CORRUPT, "axis is missing");
  for (int j = 0; rc == DLP_OK && j < n->n_in; j++)
    rc = in_value(x, n, j, &in[j], j == 0 ? &s : NULL);
  if (rc == DLP_OK) rc = norm_axis(x, n, axis, s.ndim, false, &ax);
  if (rc == DLP_OK) {
    a.axis = ax;
    rc = emit(x, n, NULL, NN_OP_CONCAT, in, n->n_in, &a, &out);
  }
  free(in);
  return rc;
}

static int op_flatten(ox *x, const ox_node *n) {
  int rc, in, out, ax = 0;
  nn_shape s;
  int64_t axis;
  if ((rc = in_value(x, n, 0, &in, &s)) ||
      (rc = attr_int(x, n, "axis", 1, &axis)) ||
      (rc = norm_axis(x, n, axis, s.ndim, true, &ax)))
    return rc;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_FLATTEN, &a);
  a.axis = ax;
  return emit(x, n, NULL, NN_OP_FLATTEN, &in, 1, &a, &out);
}

/* A target shape whose first entry is the symbolic batch (Shape -> Gather
 * -> Concat): that entry becomes -1, the others concrete (0 copied from
 * the input, a -1 computed per image), so the batch alone is inferred. */
static int batch_shape(ox *x, const ox_node *n, const ox_ft *ft,
                       const nn_shape *s, nn_node_attr *a) {
  if (ft->ndim != 1 || ft->numel > NN_MAX_DIMS)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "the target shape has %lld entries; at most %d are "
                 "supported",
                 (long long)ft->numel, NN_MAX_DIMS);
  a->n_shape = (int)ft->numel;
  int infer = -1;
  int64_t known = 1, per = nn_shape_numel(s->ndim, s->dims); /* batch 1 */
  for (int i = 0; i < a->n_shape; i++) {
    int64_t d = ft->i[i];
    if (ft->batch[i] != (i == 0))
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "entry %d of the target shape is %s; dlp supports the "
                   "batch size only as the first entry",
                   i, ft->batch[i] ? "the batch size" : "fixed");
    if (i == 0) continue;
    if (d == 0 && i < s->ndim) d = s->dims[i];
    if (d == -1 && infer < 0) {
      infer = i;
      continue;
    }
    if (d < 1 || known > NN_MAX_NUMEL / d)
      return nfail(x, n, DLP_ERR_CORRUPT,
                   "entry %d of the target shape is "
                   "%lld",
                   i, (long long)ft->i[i]);
    known *= d;
    a->shape[i] = d;
  }
  a->shape[0] = -1;
  if (infer >= 0) {
    if (per % known != 0)
      return nfail(x, n, DLP_ERR_CORRUPT,
                   "%lld elements per image do not split into rows of "
                   "%lld",
                   (long long)per, (long long)known);
    a->shape[infer] = per / known;
  }
  return DLP_OK;
}

static int op_reshape(ox *x, const ox_node *n) {
  int rc, in, out;
  const ox_tensor *t;
  int64_t allowzero;
  nn_shape s;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_RESHAPE, &a);
  if ((rc = in_value(x, n, 0, &in, &s)) || (rc = in_const(x, n, 1, true, &t)) ||
      (rc = attr_int(x, n, "allowzero", 0, &allowzero)))
    return rc;
  if (allowzero != 0)
    return nfail(x, n, DLP_ERR_UNSUPPORTED, "allowzero = 1 is not supported");
  if (t->ft && ox_ft_has_batch(t->ft))
    rc = batch_shape(x, n, t->ft, &s, &a);
  else
    rc = tensor_ints(x, n, t, a.shape, NN_MAX_DIMS, &a.n_shape);
  if (rc != DLP_OK) return rc;
  return emit(x, n, NULL, NN_OP_RESHAPE, &in, 1, &a, &out);
}

static int op_transpose(ox *x, const ox_node *n) {
  int rc, in, out, c;
  nn_shape s;
  int64_t perm[NN_MAX_DIMS];
  nn_node_attr a;
  nn_node_attr_init(NN_OP_TRANSPOSE, &a);
  if ((rc = in_value(x, n, 0, &in, &s)) ||
      (rc = attr_ints(x, n, "perm", 0, NN_MAX_DIMS, perm, &c)))
    return rc;
  a.n_perm = s.ndim;
  for (int i = 0; i < s.ndim; i++)
    a.perm[i] = c < 0 ? s.ndim - 1 - i
                      : (perm[i] < 0 || perm[i] >= s.ndim ? -1 : (int)perm[i]);
  if (c >= 0 && c != s.ndim)
    return nfail(x, n, DLP_ERR_CORRUPT, "perm has %d entries for rank %d", c,
                 s.ndim);
  return emit(x, n, NULL, NN_OP_TRANSPOSE, &in, 1, &a, &out);
}

static int op_pad(ox *x, const ox_node *n) {
  int rc, in, out, c;
  nn_shape s;
  ox_str mode;
  int64_t pads[2 * NN_MAX_DIMS];
  nn_node_attr a;
  nn_node_attr_init(NN_OP_PAD, &a);
  if ((rc = in_value(x, n, 0, &in, &s)) ||
      (rc = attr_str(x, n, "mode", "constant", &mode)))
    return rc;
  if (x->opset < 11) {
    if ((rc = attr_ints(x, n, "pads", 0, 2 * NN_MAX_DIMS, pads, &c)) ||
        (rc = attr_float(x, n, "value", 0.0f, &a.pad.value)))
      return rc;
    if (c < 0) return nfail(x, n, DLP_ERR_CORRUPT, "pads is missing");
  } else {
    const ox_tensor *t;
    if ((rc = in_const(x, n, 1, true, &t)) ||
        (rc = tensor_ints(x, n, t, pads, 2 * NN_MAX_DIMS, &c)) ||
        (rc = in_scalar(x, n, 2, &a.pad.value)))
      return rc;
    if (n->n_in > 3 && n->in[3].n)
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "the axes input is not "
                   "supported");
  }
  if (c != 2 * s.ndim)
    return nfail(x, n, DLP_ERR_CORRUPT, "%d pads for rank %d (expects %d)", c,
                 s.ndim, 2 * s.ndim);
  for (int i = 0; i < c; i++) {
    if (pads[i] < 0)
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "negative pads (cropping) are not supported");
    if (pads[i] > OX_MAX_SPATIAL)
      return nfail(x, n, DLP_ERR_UNSUPPORTED, "pad %lld is too large",
                   (long long)pads[i]);
    a.pad.pads[i] = pads[i];
  }
  if (ox_eq(mode, "constant"))
    a.pad.mode = NN_PAD_CONSTANT;
  else if (ox_eq(mode, "reflect"))
    a.pad.mode = NN_PAD_REFLECT;
  else if (ox_eq(mode, "edge"))
    a.pad.mode = NN_PAD_EDGE;
  else
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "mode '%.*s' is not supported (constant, reflect, edge)",
                 OXS(mode));
  return emit(x, n, NULL, NN_OP_PAD, &in, 1, &a, &out);
}

/* Identity, and Dropout (the identity at inference). */
static int op_identity(ox *x, const ox_node *n) {
  int rc, in, out;
  if (ox_eq(n->op, "Dropout") && x->opset >= 12 && n->n_in > 2 && n->in[2].n) {
    float training = 0;
    if ((rc = in_scalar(x, n, 2, &training))) return rc;
    if (training != 0)
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "training_mode = true is not supported");
  }
  /* Identity of a constant stays a constant (PyTorch aliases shared
   * weights this way), so Conv and friends still see an initializer. */
  int k = n->n_in > 0 && n->in[0].n ? sym_find(x, n->in[0]) : -1;
  if (k >= 0 && x->syms[k].tensor >= 0) {
    x->syms[sym_find(x, n->out[0])].tensor = x->syms[k].tensor;
    return DLP_OK;
  }
  if ((rc = in_value(x, n, 0, &in, NULL))) return rc;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_IDENTITY, &a);
  return emit(x, n, NULL, NN_OP_IDENTITY, &in, 1, &a, &out);
}

/* Constant: its tensor becomes a constant of the graph's names. */
static int op_constant(ox *x, const ox_node *n) {
  const ox_attr *at = attr_find(n, "value");
  if (!at || n->n_attr != 1)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "only the 'value' (tensor) form is supported");
  int rc = attr_type(x, n, at, OX_A_TENSOR, "a tensor");
  if (rc != DLP_OK) return rc;
  if (x->n_tensors >= x->cap_tensors) return nomem(x);
  pb_reader top;
  pb_reader_init(&top, NULL, 0);
  top.depth = n->depth + 1; /* the AttributeProto's level */
  ox_tensor *t = &x->tensors[x->n_tensors];
  rc = parse_tensor(x, &top, &at->t, "Constant output", n->out[0], t);
  if (rc != DLP_OK) return rc;
  int k = sym_find(x, n->out[0]);
  x->syms[k].tensor = x->n_tensors++;
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Constant folding: nodes whose inputs are all constants (and Shape, whose
 * result the importer knows) are evaluated here with onnx_fold.c, so the
 * ops that need constants (Pad, Reshape, ...) see the values exporters
 * compute at run time.
 * ------------------------------------------------------------------------ */

/* Tensor k's values as an ox_ft (decoded once, charged to the budget). */
static int tensor_ft(ox *x, const ox_node *n, ox_tensor *t, const ox_ft **out) {
  *out = NULL;
  if (!t->ft) {
    bool is_float = t->dtype == OX_FLOAT || t->dtype == OX_DOUBLE;
    if (!is_float && t->dtype != OX_INT64 && t->dtype != OX_INT32)
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "tensor '%.*s' has data type %s; dlp computes on float32 "
                   "and int64 constants",
                   OXS(t->name), dtype_name(t->dtype));
    ox_ft *ft = calloc(1, sizeof *ft);
    if (!ft) return nomem(x);
    dlp_err fe = {0};
    int rc = ox_ft_alloc(&fe, ft, is_float, t->ndim, t->dims, false,
                         &x->fold_budget);
    if (rc != DLP_OK) {
      free(ft);
      return nfail(x, n, rc, "tensor '%.*s': %s", OXS(t->name), fe.msg);
    }
    tensor_decode(t, ft->f, ft->i);
    t->ft = ft;
  }
  *out = t->ft;
  return DLP_OK;
}

/* Input j (constant, present) as an ox_ft. */
static int in_ft(ox *x, const ox_node *n, int j, const ox_ft **out) {
  const ox_tensor *t;
  int rc = in_const(x, n, j, true, &t);
  if (rc != DLP_OK) return rc;
  return tensor_ft(x, n, (ox_tensor *)t, out);
}

/* Input j as at most max integers (indices, axes, a shape): *count = -1
 * when the optional input is absent. */
static int in_ints(ox *x, const ox_node *n, int j, int64_t *v, int max,
                   int *count) {
  const ox_tensor *t;
  *count = -1;
  int rc = in_const(x, n, j, false, &t);
  if (rc != DLP_OK || !t) return rc;
  if (t->ndim > 1)
    return nfail(x, n, DLP_ERR_CORRUPT, "input %d ('%.*s') has rank %d, not 1",
                 j + 1, OXS(t->name), t->ndim);
  return tensor_ints(x, n, t, v, max, count);
}

/* The ints of attribute `name` (opsets before 10/13) or of input j. */
static int ints_arg(ox *x, const ox_node *n, bool from_attr, const char *name,
                    int j, int64_t *v, int *count) {
  if (from_attr) return attr_ints(x, n, name, 0, NN_MAX_DIMS, v, count);
  return in_ints(x, n, j, v, NN_MAX_DIMS, count);
}

static int fold_shape(ox *x, const ox_node *n, ox_ft *res) {
  int k = sym_find(x, n->in[0]), rc, v;
  const ox_tensor *t = sym_tensor(x, k);
  nn_shape s1, s2;
  if (t) {
    s1.ndim = t->ndim;
    memcpy(s1.dims, t->dims, sizeof s1.dims);
    s2 = s1;
  } else {
    if ((rc = in_value(x, n, 0, &v, &s1))) return rc;
    s2 = x->vshape2[v];
  }
  int64_t start, end, r = s1.ndim;
  if ((rc = attr_int(x, n, "start", 0, &start)) ||
      (rc = attr_int(x, n, "end", r, &end)))
    return rc;
  start = start < 0 ? (start < -r ? 0 : start + r) : (start > r ? r : start);
  end = end < 0 ? (end < -r ? 0 : end + r) : (end > r ? r : end);
  int64_t cnt = end > start ? end - start : 0;
  dlp_err fe = {0};
  if ((rc = ox_ft_alloc(&fe, res, false, 1, &cnt, true, &x->fold_budget)))
    return nfail(x, n, rc, "%s", fe.msg);
  for (int64_t i = 0; i < cnt; i++) {
    int64_t d = s1.dims[start + i], d2 = s2.dims[start + i];
    res->i[i] = d;
    if (d2 == d) continue;
    if (d != 1 || d2 != 2) {
      ox_ft_free(res);
      return nfail(x, n, DLP_ERR_UNSUPPORTED,
                   "dim %lld of '%.*s' is %lld times the batch size; dlp "
                   "folds a Shape only where each dim is fixed or the batch",
                   (long long)(start + i), OXS(n->in[0]), (long long)d);
    }
    res->batch[i] = 1;
  }
  return DLP_OK;
}

static int fold_cast(ox *x, const ox_node *n, const ox_ft *in, ox_ft *res,
                     dlp_err *fe) {
  int64_t to;
  int rc = attr_int(x, n, "to", 0, &to);
  if (rc != DLP_OK) return rc;
  if (to != OX_FLOAT && to != OX_DOUBLE && to != OX_INT64 && to != OX_INT32)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "a cast to %s (dlp computes on float32 and int64)",
                 dtype_name((int)to));
  rc = ox_fold_cast(fe, in, to == OX_FLOAT || to == OX_DOUBLE, res,
                    &x->fold_budget);
  for (int64_t i = 0; rc == DLP_OK && to == OX_INT32 && i < res->numel; i++)
    if (res->i[i] != (int32_t)res->i[i]) {
      ox_ft_free(res);
      rc = dlp_err_set(fe, DLP_ERR_CORRUPT, "%lld does not fit in int32",
                       (long long)res->i[i]);
    }
  return rc;
}

static int fold_slice(ox *x, const ox_node *n, const ox_ft *in, ox_ft *res,
                      dlp_err *fe) {
  int64_t st[NN_MAX_DIMS], en[NN_MAX_DIMS], ax[NN_MAX_DIMS], sp[NN_MAX_DIMS];
  int cs, ce, ca, cp = -1, rc;
  bool attrs = x->opset < 10;
  if ((rc = ints_arg(x, n, attrs, "starts", 1, st, &cs)) ||
      (rc = ints_arg(x, n, attrs, "ends", 2, en, &ce)) ||
      (rc = ints_arg(x, n, attrs, "axes", 3, ax, &ca)) ||
      (!attrs && (rc = in_ints(x, n, 4, sp, NN_MAX_DIMS, &cp))))
    return rc;
  if (cs < 0 || ce < 0)
    return nfail(x, n, DLP_ERR_CORRUPT, "starts or ends is missing");
  if (ce != cs || (ca >= 0 && ca != cs) || (cp >= 0 && cp != cs))
    return nfail(x, n, DLP_ERR_CORRUPT,
                 "starts, ends, axes and steps have different lengths "
                 "(%d, %d, %d, %d)",
                 cs, ce, ca, cp);
  return ox_fold_slice(fe, in, st, en, ca >= 0 ? ax : NULL, cp >= 0 ? sp : NULL,
                       cs, res, &x->fold_budget);
}

/* Unsqueeze and Squeeze: axes as an attribute before opset 13. */
static int fold_squeeze(ox *x, const ox_node *n, const ox_ft *in, ox_ft *res,
                        dlp_err *fe) {
  bool un = ox_eq(n->op, "Unsqueeze");
  int64_t axes[NN_MAX_DIMS];
  int c, rc = ints_arg(x, n, x->opset < 13, "axes", 1, axes, &c);
  if (rc != DLP_OK) return rc;
  if (un && c < 0) return nfail(x, n, DLP_ERR_CORRUPT, "axes is missing");
  if (un) return ox_fold_unsqueeze(fe, in, axes, c, res, &x->fold_budget);
  return ox_fold_squeeze(fe, in, c < 0 ? NULL : axes, c, res, &x->fold_budget);
}

static int fold_fill(ox *x, const ox_node *n, ox_ft *res, dlp_err *fe) {
  int64_t dims[NN_MAX_DIMS];
  int c, rc;
  const ox_tensor *st;
  if ((rc = in_const(x, n, 0, true, &st))) return rc;
  if (st->numel > NN_MAX_DIMS)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "the shape has %lld dims; dlp handles at most %d",
                 (long long)st->numel, NN_MAX_DIMS);
  if ((rc = in_ints(x, n, 0, dims, NN_MAX_DIMS, &c))) return rc;
  const ox_attr *at = attr_find(n, "value");
  float z = 0.0f;
  ox_ft zero = {.is_float = true, .ndim = 1, .numel = 1, .f = &z};
  const ox_ft *value = &zero;
  if (at) {
    if ((rc = attr_type(x, n, at, OX_A_TENSOR, "a tensor"))) return rc;
    if (x->n_tensors >= x->cap_tensors) return nomem(x);
    pb_reader top;
    pb_reader_init(&top, NULL, 0);
    top.depth = n->depth + 1;
    ox_tensor *t = &x->tensors[x->n_tensors];
    rc = parse_tensor(x, &top, &at->t, "ConstantOfShape value", n->out[0], t);
    if (rc != DLP_OK) return nfail(x, n, rc, "%s", x->e->msg);
    x->n_tensors++; /* kept for ox_free; its name is not a symbol */
    if ((rc = tensor_ft(x, n, t, &value))) return rc;
  }
  return ox_fold_fill(fe, dims, c, value, res, &x->fold_budget);
}

static int fold_multi(ox *x, const ox_node *n, ox_ft *res, dlp_err *fe) {
  int rc;
  int64_t axis;
  if ((rc = attr_find(n, "axis")
                ? attr_int(x, n, "axis", 0, &axis)
                : nfail(x, n, DLP_ERR_CORRUPT, "axis is missing")))
    return rc;
  const ox_ft **ins = dlp_calloc_array((size_t)n->n_in + 1, sizeof *ins);
  if (!ins) return nomem(x);
  for (int j = 0; rc == DLP_OK && j < n->n_in; j++)
    rc = in_ft(x, n, j, &ins[j]);
  if (rc == DLP_OK)
    rc = ox_fold_concat(fe, ins, n->n_in, axis, res, &x->fold_budget);
  free(ins);
  return rc;
}

/* Evaluates n into res; errors from onnx_fold.c are left in fe (rc
 * returned) for the caller to prefix, others are already prefixed (then
 * fe->code stays DLP_OK). */
static int fold_eval(ox *x, const ox_node *n, ox_ft *res, dlp_err *fe) {
  const ox_ft *a = NULL, *b = NULL;
  int rc, c;
  int64_t v[NN_MAX_DIMS], axis;
  if (ox_eq(n->op, "Shape")) return fold_shape(x, n, res);
  if (ox_eq(n->op, "ConstantOfShape")) return fold_fill(x, n, res, fe);
  if (ox_eq(n->op, "Concat")) return fold_multi(x, n, res, fe);
  if ((rc = in_ft(x, n, 0, &a))) return rc;
  if (ox_eq(n->op, "Cast")) return fold_cast(x, n, a, res, fe);
  if (ox_eq(n->op, "Slice")) return fold_slice(x, n, a, res, fe);
  if (ox_eq(n->op, "Unsqueeze") || ox_eq(n->op, "Squeeze"))
    return fold_squeeze(x, n, a, res, fe);
  if (ox_eq(n->op, "Transpose")) {
    if ((rc = attr_ints(x, n, "perm", 0, NN_MAX_DIMS, v, &c))) return rc;
    return ox_fold_transpose(fe, a, c < 0 ? NULL : v, c, res, &x->fold_budget);
  }
  if (ox_eq(n->op, "Reshape")) {
    int64_t allowzero;
    if ((rc = attr_int(x, n, "allowzero", 0, &allowzero))) return rc;
    if (allowzero != 0)
      return nfail(x, n, DLP_ERR_UNSUPPORTED, "allowzero = 1 is not supported");
    if ((rc = in_ints(x, n, 1, v, NN_MAX_DIMS, &c))) return rc;
    if (c < 0) return nfail(x, n, DLP_ERR_CORRUPT, "input 2 is missing");
    return ox_fold_reshape(fe, a, v, c, res, &x->fold_budget);
  }
  if ((rc = in_ft(x, n, 1, &b))) return rc;
  if (ox_eq(n->op, "Gather")) {
    if ((rc = attr_int(x, n, "axis", 0, &axis))) return rc;
    return ox_fold_gather(fe, a, b, axis, res, &x->fold_budget);
  }
  char op = ox_eq(n->op, "Add")   ? '+'
            : ox_eq(n->op, "Sub") ? '-'
            : ox_eq(n->op, "Mul") ? '*'
                                  : '/';
  return ox_fold_binary(fe, op, a, b, res, &x->fold_budget);
}

/* Folds n when its inputs are constants (*done). Ops the graph also runs
 * (convertible) fall back to graph nodes when an input is computed or the
 * folder's budget is short; the others must fold. */
static int try_fold(ox *x, const ox_node *n, bool convertible, bool *done) {
  *done = false;
  bool shape = ox_eq(n->op, "Shape");
  int64_t need = 0;
  for (int j = 0; j < n->n_in; j++) {
    if (n->in[j].n == 0) continue;
    const ox_tensor *t = sym_tensor(x, sym_find(x, n->in[j]));
    if (t) need += t->ft ? 0 : t->numel;
    if (t || (shape && j == 0)) continue;
    if (convertible) return DLP_OK;
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "input %d ('%.*s') is computed from the network's input; "
                 "dlp evaluates %.*s only on constants",
                 j + 1, OXS(n->in[j]), OXS(n->op));
  }
  if (n->n_in < 1) return nfail(x, n, DLP_ERR_CORRUPT, "no inputs");
  if (convertible && need > x->fold_budget) return DLP_OK;
  if (x->n_tensors >= x->cap_tensors) return nomem(x);
  ox_ft res;
  memset(&res, 0, sizeof res);
  dlp_err fe = {0};
  int rc = fold_eval(x, n, &res, &fe);
  if (rc == DLP_ERR_TOO_LARGE && fe.code == rc && convertible) {
    ox_ft_free(&res);
    return DLP_OK; /* the graph computes it */
  }
  if (rc != DLP_OK && fe.code != DLP_OK) rc = nfail(x, n, rc, "%s", fe.msg);
  if (rc != DLP_OK) return rc;
  ox_ft *keep = malloc(sizeof *keep);
  if (!keep || x->n_tensors >= x->cap_tensors) {
    free(keep);
    ox_ft_free(&res);
    return nomem(x);
  }
  *keep = res;
  ox_tensor *t = &x->tensors[x->n_tensors];
  memset(t, 0, sizeof *t);
  t->name = n->out[0];
  t->dtype = res.is_float ? OX_FLOAT : OX_INT64;
  t->ndim = res.ndim;
  memcpy(t->dims, res.dims, sizeof t->dims);
  t->numel = res.numel;
  t->value = -1;
  t->ft = keep;
  x->syms[sym_find(x, n->out[0])].tensor = x->n_tensors++;
  *done = true;
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * Sub, Div, HardSwish on activations, with the graph's Add, Mul and Clip
 * ------------------------------------------------------------------------ */

/* A const of t's shape holding f(t) (-t or 1/t), named "<node>/suffix". */
static int mapped_const(ox *x, const ox_node *n, const ox_tensor *t, bool recip,
                        const char *suffix, int *v) {
  float *d;
  int rc = tensor_floats(x, t, true, &d);
  if (rc != DLP_OK) return nfail(x, n, rc, "%s", x->e->msg);
  for (int64_t i = 0; i < t->numel; i++)
    d[i] = recip ? 1.0f / d[i] : -d[i];
  ox_str l = node_label(n);
  char nm[OX_NAME_SHOW + 32];
  snprintf(nm, sizeof nm, "%.*s/%s", OXS(l), suffix);
  if ((rc = add_const(x, nm, t->ndim, t->dims, d, v)) != DLP_OK) return rc;
  nn_shape cs = {t->ndim, {1, 1, 1, 1, 1, 1}};
  for (int i = 0; i < t->ndim; i++)
    cs.dims[i] = t->dims[i];
  return set_vshape(x, *v, &cs);
}

/* a - b: Add(a, -b) for a constant b, else Add(Mul(b, -1), a). */
static int op_sub(ox *x, const ox_node *n) {
  int rc, in[2], out;
  const ox_tensor *bt =
      n->n_in > 1 && n->in[1].n ? sym_tensor(x, sym_find(x, n->in[1])) : NULL;
  nn_node_attr a;
  if (bt) {
    if ((rc = in_value(x, n, 0, &in[0], NULL)) ||
        (rc = mapped_const(x, n, bt, false, "neg", &in[1])))
      return rc;
  } else {
    nn_node_attr_init(NN_OP_MUL, &a);
    if ((rc = in_value(x, n, 1, &in[0], NULL)) ||
        (rc = scalar_const(x, n, "minus_one", -1.0f, &in[1])) ||
        (rc = emit(x, n, "neg", NN_OP_MUL, in, 2, &a, &in[0])) ||
        (rc = in_value(x, n, 0, &in[1], NULL)))
      return rc;
  }
  nn_node_attr_init(NN_OP_ADD, &a);
  return emit(x, n, NULL, NN_OP_ADD, in, 2, &a, &out);
}

/* a / b for a constant b: Mul(a, 1/b). */
static int op_div(ox *x, const ox_node *n) {
  int rc, in[2], out;
  const ox_tensor *bt =
      n->n_in > 1 && n->in[1].n ? sym_tensor(x, sym_find(x, n->in[1])) : NULL;
  if (!bt)
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "only division by a constant is supported");
  if ((rc = in_value(x, n, 0, &in[0], NULL)) ||
      (rc = mapped_const(x, n, bt, true, "reciprocal", &in[1])))
    return rc;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_MUL, &a);
  return emit(x, n, NULL, NN_OP_MUL, in, 2, &a, &out);
}

/* HardSwish: x * clip(x/6 + 1/2, 0, 1). */
static int op_hardswish(ox *x, const ox_node *n) {
  int rc, xin, in[2], out;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_MUL, &a);
  if ((rc = in_value(x, n, 0, &xin, NULL))) return rc;
  in[0] = xin;
  if ((rc = scalar_const(x, n, "alpha", 1.0f / 6.0f, &in[1])) ||
      (rc = emit(x, n, "mul", NN_OP_MUL, in, 2, &a, &in[0])) ||
      (rc = scalar_const(x, n, "beta", 0.5f, &in[1])))
    return rc;
  nn_node_attr_init(NN_OP_ADD, &a);
  if ((rc = emit(x, n, "add", NN_OP_ADD, in, 2, &a, &in[0]))) return rc;
  nn_node_attr_init(NN_OP_CLIP, &a);
  a.clip_lo = 0.0f;
  a.clip_hi = 1.0f;
  if ((rc = emit(x, n, "clip", NN_OP_CLIP, in, 1, &a, &in[1]))) return rc;
  in[0] = xin;
  nn_node_attr_init(NN_OP_MUL, &a);
  return emit(x, n, NULL, NN_OP_MUL, in, 2, &a, &out);
}

typedef int (*ox_conv_fn)(ox *x, const ox_node *n);

static const struct ox_op {
  const char *name;
  ox_conv_fn fn;     /* NULL: only folded */
  const char *attrs; /* the attributes it understands */
} ox_ops[] = {
    {"Conv", op_conv, "auto_pad,dilations,group,kernel_shape,pads,strides"},
    {"Gemm", op_gemm, "alpha,beta,transA,transB"},
    {"MatMul", op_matmul, ""},
    {"BatchNormalization", op_batchnorm,
     "epsilon,momentum,training_mode,spatial"},
    {"Relu", op_act, ""},
    {"LeakyRelu", op_act, "alpha"},
    {"Sigmoid", op_act, ""},
    {"Tanh", op_act, ""},
    {"HardSigmoid", op_hardsigmoid, "alpha,beta"},
    {"Clip", op_clip, "min,max"},
    {"Softmax", op_softmax, "axis"},
    {"MaxPool", op_pool,
     "auto_pad,ceil_mode,dilations,kernel_shape,pads,storage_order,strides"},
    {"AveragePool", op_pool,
     "auto_pad,ceil_mode,count_include_pad,kernel_shape,pads,strides"},
    {"GlobalAveragePool", op_global_pool, ""},
    {"GlobalMaxPool", op_global_pool, ""},
    {"HardSwish", op_hardswish, ""},
    {"Add", op_binary, ""},
    {"Sub", op_sub, ""},
    {"Mul", op_binary, ""},
    {"Div", op_div, ""},
    {"Concat", op_concat, "axis"},
    {"Flatten", op_flatten, "axis"},
    {"Reshape", op_reshape, "allowzero"},
    {"Transpose", op_transpose, "perm"},
    {"Pad", op_pad, "mode,pads,value"},
    {"Dropout", op_identity, "ratio,seed"},
    {"Identity", op_identity, ""},
    {"Constant", op_constant,
     "value,sparse_value,value_float,value_floats,"
     "value_int,value_ints,value_string,"
     "value_strings"},
    {"Shape", NULL, "start,end"},
    {"ConstantOfShape", NULL, "value"},
    {"Gather", NULL, "axis"},
    {"Slice", NULL, "starts,ends,axes"},
    {"Cast", NULL, "to"},
    {"Unsqueeze", NULL, "axes"},
    {"Squeeze", NULL, "axes"},
};

/* Ops evaluated at import when their inputs are constants. */
static bool foldable(ox_str op) {
  static const char *const ops[] = {
      "Add",     "Sub",       "Mul",     "Div",      "Concat",
      "Reshape", "Shape",     "Cast",    "Slice",    "ConstantOfShape",
      "Gather",  "Unsqueeze", "Squeeze", "Transpose"};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (ox_eq(op, ops[i])) return true;
  return false;
}

static int convert_node(ox *x, const ox_node *n) {
  if (n->domain.n && !ox_eq(n->domain, "ai.onnx"))
    return nfail(x, n, DLP_ERR_UNSUPPORTED,
                 "op domain '%.*s' is not supported (only ai.onnx)",
                 OXS(n->domain));
  size_t nops = sizeof ox_ops / sizeof ox_ops[0];
  for (size_t i = 0; i < nops; i++) {
    if (!ox_eq(n->op, ox_ops[i].name)) continue;
    int rc = check_attrs(x, n, ox_ops[i].attrs);
    bool done = false;
    if (rc == DLP_OK && foldable(n->op))
      rc = try_fold(x, n, ox_ops[i].fn != NULL, &done);
    if (rc != DLP_OK || done) return rc;
    return ox_ops[i].fn(x, n);
  }
  char list[DLP_ERRMSG_MAX / 2];
  size_t used = 0;
  list[0] = 0;
  for (size_t i = 0; i < nops && used < sizeof list; i++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                             i ? ", " : "", ox_ops[i].name);
  ox_str l = node_label(n);
  return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                     "ONNX node '%.*s': op '%.*s' is not supported "
                     "(supported: %s)",
                     OXS(l), OXS(n->op), list);
}

/* ------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------ */

static int mark_outputs(ox *x) {
  for (int i = 0; i < x->n_out_vi; i++) {
    ox_str name;
    int rc = vi_name(x, &x->out_vi[i], &name);
    if (rc != DLP_OK) return rc;
    int k = sym_find(x, name);
    if (k < 0)
      return dlp_err_set(x->e, DLP_ERR_CORRUPT,
                         "ONNX graph output '%.*s' is not produced by any "
                         "node",
                         OXS(name));
    if (x->syms[k].value < 0 || x->syms[k].producer < 0)
      return dlp_err_set(x->e, DLP_ERR_UNSUPPORTED,
                         "ONNX graph output '%.*s' is %s", OXS(name),
                         x->syms[k].producer < 0 ? "a constant or an input"
                                                 : "not computed by dlp");
    nn_graph_mark_output(x->g, x->syms[k].value);
  }
  return DLP_OK;
}

static void ox_free(ox *x) {
  for (int i = 0; i < x->n_tensors; i++) {
    ox_ft_free(x->tensors[i].ft);
    free(x->tensors[i].ft);
  }
  for (int i = 0; i < x->n_nodes; i++)
    node_free(&x->nodes[i]);
  free(x->nodes);
  free(x->tensors);
  free(x->in_vi);
  free(x->out_vi);
  free(x->syms);
  free(x->hash);
  free(x->vshape);
  free(x->vshape2);
}

int nn_onnx_load_sized(dlp_err *e, const uint8_t *buf, size_t len, int h, int w,
                       nn_graph **out) {
  *out = NULL;
  if (!buf && len) return dlp_err_set(e, DLP_ERR_ARG, "ONNX: NULL buffer");
  ox x;
  memset(&x, 0, sizeof x);
  x.e = e;
  x.fold_budget = OX_FOLD_BUDGET;
  pb_reader model;
  pb_field gf;
  int *order = NULL;
  int rc = parse_model(&x, buf, len, &gf, &model);
  if (rc == DLP_OK) rc = parse_graph(&x, &model, &gf);
  if (rc == DLP_OK) rc = nn_graph_new(e, &x.g);
  if (rc == DLP_OK) rc = build_names(&x, h, w);
  if (rc == DLP_OK) {
    order = dlp_malloc_array((size_t)x.n_nodes + 1, sizeof *order);
    rc = order ? order_nodes(&x, order) : nomem(&x);
  }
  for (int i = 0; rc == DLP_OK && i < x.n_nodes; i++)
    rc = convert_node(&x, &x.nodes[order[i]]);
  if (rc == DLP_OK) rc = mark_outputs(&x);
  if (rc == DLP_OK && x.graph_name.n) {
    x.g->name = ox_cstr(x.graph_name);
    if (!x.g->name) rc = nomem(&x);
  }
  if (rc == DLP_OK) {
    x.g->input_spec.norm = DLP_NORM_NONE;
    rc = nn_graph_finalize(e, x.g);
  }
  free(order);
  ox_free(&x);
  if (rc != DLP_OK) {
    nn_graph_free(x.g);
    return rc;
  }
  *out = x.g;
  return DLP_OK;
}

int nn_onnx_load(dlp_err *e, const uint8_t *buf, size_t len, nn_graph **out) {
  return nn_onnx_load_sized(e, buf, len, 0, 0, out);
}

int nn_onnx_load_file_sized(dlp_err *e, const char *path, uint64_t max_bytes,
                            int h, int w, nn_graph **out) {
  *out = NULL;
  uint8_t *data = NULL;
  size_t len = 0;
  int rc =
      dlp_read_file(e, path, max_bytes ? max_bytes : UINT64_MAX, &data, &len);
  if (rc != DLP_OK) return rc;
  dlp_err le = {0};
  rc = nn_onnx_load_sized(&le, data, len, h, w, out);
  free(data);
  if (rc != DLP_OK) return dlp_err_set(e, rc, "%s: %s", path, le.msg);
  return DLP_OK;
}

int nn_onnx_load_file(dlp_err *e, const char *path, uint64_t max_bytes,
                      nn_graph **out) {
  return nn_onnx_load_file_sized(e, path, max_bytes, 0, 0, out);
}
