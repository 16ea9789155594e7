/* keras.c - Keras HDF5 importer: model.save() files and keras-applications
 * weights files into the graph IR (libhdf5 reads the container, cJSON the
 * model config; the layer-by-layer translation is ours, as no C library
 * reads Keras configs). */
#include "keras.h"
#include "h5_session.h"

#include <cjson/cJSON.h>
#include <hdf5.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define K_MAX_LAYERS 20000
#define K_MAX_CALLS 1024     /* inbound nodes of one layer */
#define K_MAX_INPUTS 1024    /* tensors into one call */
#define K_MAX_STR (64 << 20) /* one attribute string */

/* ------------------------------------------------------------------------
 * HDF5 access. Every entry point of the reader (and of the writer,
 * keras_save.c) runs inside one session: under one lock, so dlp does not
 * depend on how libhdf5 was built (Debian's happens to be thread-safe), and
 * with HDF5's automatic error printing switched off (and restored
 * afterwards): the library never prints.
 * ------------------------------------------------------------------------ */

static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

void nn_h5_begin(nn_h5_session *s) {
  pthread_mutex_lock(&h5_lock);
  H5Eget_auto2(H5E_DEFAULT, &s->old_fn, &s->old_data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void nn_h5_end(nn_h5_session *s) {
  H5Eclear2(H5E_DEFAULT);
  H5Eset_auto2(H5E_DEFAULT, s->old_fn, s->old_data);
  pthread_mutex_unlock(&h5_lock);
}

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *err, void *data) {
  char *buf = data;
  if (n == 0 && err && err->desc) snprintf(buf, 200, "%s", err->desc);
  return 0;
}

/* The most specific message on HDF5's error stack, for our messages. */
static const char *h5_why(char buf[200]) {
  buf[0] = '\0';
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, buf);
  if (!buf[0]) snprintf(buf, 200, "HDF5 error");
  H5Eclear2(H5E_DEFAULT);
  return buf;
}

/* Opens path read-only after checking it exists, is a regular file within
 * max_bytes (0 = no limit) and carries the HDF5 signature. *size gets the
 * file size. */
static int h5_open(dlp_err *e, const char *path, uint64_t max_bytes, hid_t *out,
                   uint64_t *size) {
  struct stat st;
  *out = -1;
  if (stat(path, &st) != 0)
    return dlp_err_set(e, errno == ENOENT ? DLP_ERR_NOT_FOUND : DLP_ERR_IO,
                       "%s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return dlp_err_set(e, DLP_ERR_IO, "%s: not a regular file", path);
  if (max_bytes && (uint64_t)st.st_size > max_bytes)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE,
                       "%s: the model file has %lld bytes, more than the "
                       "limit of %llu",
                       path, (long long)st.st_size,
                       (unsigned long long)max_bytes);
  *size = (uint64_t)st.st_size;
  if (H5Fis_hdf5(path) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return dlp_err_set(e, DLP_ERR_FORMAT,
                       "%s: not an HDF5 file (a Keras .h5 model or weights "
                       "file was expected)",
                       path);
  }
  /* CLOSE_STRONG: closing the file also closes anything an error path
   * left open. */
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
    if (fapl >= 0) H5Pclose(fapl);
    return dlp_err_set(e, DLP_ERR_INTERNAL, "%s: HDF5 setup failed", path);
  }
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0) {
    char why[200];
    return dlp_err_set(e, DLP_ERR_CORRUPT, "%s: cannot open the HDF5 file: %s",
                       path, h5_why(why));
  }
  *out = f;
  return DLP_OK;
}

typedef struct strlist {
  char **s;
  int n, cap;
} strlist;

static void strlist_free(strlist *l) {
  for (int i = 0; i < l->n; i++)
    free(l->s[i]);
  free(l->s);
  l->s = NULL;
  l->n = l->cap = 0;
}

static bool strlist_push(strlist *l, const char *s, size_t len) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 16;
    char **p = dlp_realloc_array(l->s, (size_t)cap, sizeof *p);
    if (!p) return false;
    l->s = p;
    l->cap = cap;
  }
  char *c = malloc(len + 1);
  if (!c) return false;
  memcpy(c, s, len);
  c[len] = '\0';
  l->s[l->n++] = c;
  return true;
}

/* Appends the strings of attribute `name` of loc to l. Keras stores names
 * as arrays of fixed-length byte strings, h5py str values as variable-length
 * strings, and an empty list as an empty float array: all are accepted. */
static int h5_attr_read_strings(dlp_err *e, hid_t loc, const char *where,
                                const char *name, strlist *l) {
  char why[200];
  int rc = DLP_OK;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "%s: cannot open attribute '%s': %s",
                       where, name, h5_why(why));
  hid_t sp = H5Aget_space(a);
  hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  if (sp >= 0) H5Sclose(sp);
  hid_t ft = H5Aget_type(a);
  if (np < 0 || ft < 0) {
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "%s: attribute '%s' is unreadable: %s",
                     where, name, h5_why(why));
    goto done;
  }
  if (np == 0) goto done;
  if (np > 1000000) {
    rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: attribute '%s' lists %lld names, too many", where,
                     name, (long long)np);
    goto done;
  }
  if (H5Tget_class(ft) != H5T_STRING) {
    rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: attribute '%s' is not a string or list of strings",
                     where, name);
    goto done;
  }
  htri_t vl = H5Tis_variable_str(ft);
  if (vl > 0) {
    char **v = dlp_calloc_array((size_t)np, sizeof *v);
    hid_t mt = H5Tcopy(H5T_C_S1);
    if (!v || mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
        H5Tset_cset(mt, H5Tget_cset(ft)) < 0) {
      rc = dlp_err_set(e, DLP_ERR_NOMEM, "%s: no memory for '%s'", where, name);
    } else if (H5Aread(a, mt, v) < 0) {
      rc = dlp_err_set(e, DLP_ERR_CORRUPT, "%s: cannot read attribute '%s': %s",
                       where, name, h5_why(why));
    } else {
      for (hssize_t i = 0; i < np && rc == DLP_OK; i++) {
        size_t len = v[i] ? strlen(v[i]) : 0;
        if (len > K_MAX_STR)
          rc = dlp_err_set(e, DLP_ERR_TOO_LARGE,
                           "%s: attribute '%s' is too long", where, name);
        else if (!strlist_push(l, v[i] ? v[i] : "", len))
          rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
      }
      hid_t sp2 = H5Aget_space(a);
      H5Dvlen_reclaim(mt, sp2, H5P_DEFAULT, v);
      H5Sclose(sp2);
    }
    if (mt >= 0) H5Tclose(mt);
    free(v);
    goto done;
  }
  size_t sz = H5Tget_size(ft);
  size_t total;
  if (vl < 0 || sz == 0 || sz > K_MAX_STR ||
      !dlp_mul_size((size_t)np, sz, &total) || total > 4 * (size_t)K_MAX_STR) {
    rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: attribute '%s' has a bad string size", where, name);
    goto done;
  }
  char *buf = malloc(total);
  if (!buf) {
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory for attribute '%s'", name);
    goto done;
  }
  if (H5Aread(a, ft, buf) < 0) {
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "%s: cannot read attribute '%s': %s",
                     where, name, h5_why(why));
  } else {
    for (hssize_t i = 0; i < np && rc == DLP_OK; i++) {
      const char *s = buf + (size_t)i * sz;
      size_t len = 0;
      while (len < sz && s[len])
        len++;
      if (!strlist_push(l, s, len))
        rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
    }
  }
  free(buf);
done:
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

/* Reads the list attribute `name`, or Keras's chunked form name0, name1,
 * ... (used when the list exceeds HDF5's 64 KiB header limit). *found is
 * false when neither exists. */
static int h5_attr_strings(dlp_err *e, hid_t loc, const char *where,
                           const char *name, strlist *l, bool *found) {
  *found = false;
  if (H5Aexists(loc, name) > 0) {
    *found = true;
    return h5_attr_read_strings(e, loc, where, name, l);
  }
  H5Eclear2(H5E_DEFAULT);
  for (int k = 0; k < 100000; k++) {
    char nm[128];
    snprintf(nm, sizeof nm, "%s%d", name, k);
    if (H5Aexists(loc, nm) <= 0) break;
    *found = true;
    int rc = h5_attr_read_strings(e, loc, where, nm, l);
    if (rc != DLP_OK) return rc;
  }
  H5Eclear2(H5E_DEFAULT);
  return DLP_OK;
}

/* The part of a Keras weight name that says what it is: "conv1/kernel:0"
 * -> "kernel". Writes at most n-1 chars. */
static void weight_role(const char *wname, char *out, size_t n) {
  const char *s = strrchr(wname, '/');
  s = s ? s + 1 : wname;
  size_t len = strcspn(s, ":");
  if (len >= n) len = n - 1;
  memcpy(out, s, len);
  out[len] = '\0';
}

/* Reads dataset `name` (relative to grp, whose path is gpath) as float32
 * after checking its shape equals want (ndim dims, the Keras layout) before
 * any allocation. *budget is the count of bytes still allowed. On success
 * *out is malloc'd. `who` prefixes messages. */
static int h5_read_weight(dlp_err *e, const char *who, hid_t grp,
                          const char *gpath, const char *name, int ndim,
                          const int64_t *want, uint64_t *budget, float **out) {
  char why[200], a[96], b[96];
  int rc = DLP_OK;
  *out = NULL;
  hid_t d = H5Dopen2(grp, name, H5P_DEFAULT);
  if (d < 0)
    return dlp_err_set(e, DLP_ERR_NOT_FOUND,
                       "%s: weight '%s' is missing from the file (no dataset "
                       "%s/%s)",
                       who, name, gpath, name);
  hid_t sp = H5Dget_space(d), ft = H5Dget_type(d);
  int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  hsize_t hd[NN_MAX_DIMS];
  int64_t got[NN_MAX_DIMS];
  if (nd < 0 || ft < 0) {
    rc = dlp_err_set(e, DLP_ERR_CORRUPT, "%s: weight '%s' is unreadable: %s",
                     who, name, h5_why(why));
    goto done;
  }
  if (nd > NN_MAX_DIMS) {
    rc = dlp_err_set(e, DLP_ERR_SCHEMA,
                     "%s: weight '%s' has rank %d, %d is expected", who, name,
                     nd, ndim);
    goto done;
  }
  H5Sget_simple_extent_dims(sp, hd, NULL);
  bool same = nd == ndim;
  for (int i = 0; i < nd; i++) {
    got[i] = hd[i] > (hsize_t)INT64_MAX ? INT64_MAX : (int64_t)hd[i];
    if (i < ndim && got[i] != want[i]) same = false;
  }
  if (!same) {
    rc = dlp_err_set(e, DLP_ERR_SCHEMA,
                     "%s: weight '%s' has shape %s in the file, but %s is "
                     "expected",
                     who, name, nn_shape_str(nd, got, a, sizeof a),
                     nn_shape_str(ndim, want, b, sizeof b));
    goto done;
  }
  if (H5Tget_class(ft) != H5T_FLOAT) {
    rc = dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                     "%s: weight '%s' is not floating point", who, name);
    goto done;
  }
  int64_t numel = nn_shape_numel(ndim, want);
  if (numel < 0) {
    rc = dlp_err_set(e, DLP_ERR_TOO_LARGE, "%s: weight '%s' is too large", who,
                     name);
    goto done;
  }
  uint64_t bytes = (uint64_t)numel * sizeof(float);
  if (bytes > *budget) {
    rc = dlp_err_set(e, DLP_ERR_TOO_LARGE,
                     "%s: weight '%s' would take the weights past 4x the file "
                     "size; the file is inconsistent",
                     who, name);
    goto done;
  }
  float *buf = dlp_malloc_array(numel ? (size_t)numel : 1, sizeof(float));
  if (!buf) {
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "%s: no memory for weight '%s'", who,
                     name);
    goto done;
  }
  /* HDF5 converts float16/float64 and byte order to native float32. */
  if (numel &&
      H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    free(buf);
    rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: cannot read weight '%s' (%s/%s): %s", who, name,
                     gpath, name, h5_why(why));
    goto done;
  }
  *budget -= bytes;
  *out = buf;
done:
  if (ft >= 0) H5Tclose(ft);
  if (sp >= 0) H5Sclose(sp);
  H5Dclose(d);
  return rc;
}

/* Keras (KH, KW, I, O) -> graph (O, I, KH, KW). Also serves depthwise
 * kernels, (KH, KW, C, M) read as I = 1, O = C*M, and pointwise kernels. */
static float *hwio_to_oihw(const float *src, int64_t kh, int64_t kw, int64_t ci,
                           int64_t co) {
  float *dst = dlp_malloc_array((size_t)(kh * kw * ci * co) + 1, sizeof *dst);
  if (!dst) return NULL;
  for (int64_t h = 0; h < kh; h++)
    for (int64_t w = 0; w < kw; w++)
      for (int64_t i = 0; i < ci; i++)
        for (int64_t o = 0; o < co; o++)
          dst[((o * ci + i) * kh + h) * kw + w] =
              src[((h * kw + w) * ci + i) * co + o];
  return dst;
}

/* ------------------------------------------------------------------------
 * Model config -> graph
 * ------------------------------------------------------------------------ */

/* A Keras tensor: a graph value and its shape in graph layout (4-D is NCHW,
 * other ranks keep the Keras order), with dims[0] = 1 standing for the
 * batch. */
typedef struct ktensor {
  int v;
  nn_shape s;
} ktensor;

typedef struct klayer {
  const cJSON *cfg;
  const cJSON *inbound; /* array of calls, or NULL (Sequential) */
  const char *name, *cls;
  int n_calls;
  ktensor *outs; /* one per call; v = -1 until built */
  int w[4];      /* const ids of its weights once loaded (shared calls) */
  int n_w;
} klayer;

typedef struct kbuild {
  dlp_err *e;
  const char *path;
  hid_t wroot; /* the model_weights group */
  nn_graph *g;
  klayer *layers;
  int n_layers;
  int in_h, in_w;   /* the caller's input size, or 0 */
  int def_h, def_w; /* dlp_input_size: the size where the file says None */
  uint64_t budget;
  int call; /* call index of the layer being built (shared layers) */
} kbuild;

static int lfail(kbuild *b, const klayer *L, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int lfail(kbuild *b, const klayer *L, int code, const char *fmt, ...) {
  char msg[DLP_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return dlp_err_set(b->e, code, "%s: Keras layer '%s' (%s): %s", b->path,
                     L->name, L->cls, msg);
}

static const cJSON *jget(const cJSON *o, const char *k) {
  return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = jget(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jnum_int(const cJSON *v, int lo, int hi, int *out) {
  if (!cJSON_IsNumber(v)) return false;
  double d = v->valuedouble;
  if (!(d >= lo && d <= hi) || d != floor(d)) return false;
  *out = (int)d;
  return true;
}

/* Integer field k in [lo, hi]; def when absent or null (def < lo: required). */
static int cfg_int(kbuild *b, const klayer *L, const char *k, int def, int lo,
                   int hi, int *out) {
  const cJSON *v = jget(L->cfg, k);
  if (!v || cJSON_IsNull(v)) {
    if (def < lo)
      return lfail(b, L, DLP_ERR_CORRUPT, "the config has no '%s'", k);
    *out = def;
    return DLP_OK;
  }
  if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1)
    v = cJSON_GetArrayItem(v, 0);
  if (!jnum_int(v, lo, hi, out))
    return lfail(b, L, DLP_ERR_CORRUPT, "'%s' must be an integer in [%d, %d]",
                 k, lo, hi);
  return DLP_OK;
}

/* A pair like kernel_size: an int or a list of two ints in [lo, hi]. */
static int cfg_pair(kbuild *b, const klayer *L, const char *k, int def, int lo,
                    int hi, int out[2]) {
  const cJSON *v = jget(L->cfg, k);
  if (!v || cJSON_IsNull(v)) {
    if (def < lo)
      return lfail(b, L, DLP_ERR_CORRUPT, "the config has no '%s'", k);
    out[0] = out[1] = def;
    return DLP_OK;
  }
  if (jnum_int(v, lo, hi, &out[0])) {
    out[1] = out[0];
    return DLP_OK;
  }
  if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2 &&
      jnum_int(cJSON_GetArrayItem(v, 0), lo, hi, &out[0]) &&
      jnum_int(cJSON_GetArrayItem(v, 1), lo, hi, &out[1]))
    return DLP_OK;
  return lfail(b, L, DLP_ERR_CORRUPT,
               "'%s' must be an integer or two integers in [%d, %d]", k, lo,
               hi);
}

static int cfg_bool(kbuild *b, const klayer *L, const char *k, bool def,
                    bool *out) {
  const cJSON *v = jget(L->cfg, k);
  if (!v || cJSON_IsNull(v)) {
    *out = def;
    return DLP_OK;
  }
  if (!cJSON_IsBool(v))
    return lfail(b, L, DLP_ERR_CORRUPT, "'%s' must be true or false", k);
  *out = cJSON_IsTrue(v);
  return DLP_OK;
}

/* A float field; *present false when absent or null (then def). */
static int cfg_float(kbuild *b, const klayer *L, const char *k, double def,
                     double *out, bool *present) {
  const cJSON *v = jget(L->cfg, k);
  if (present) *present = false;
  if (!v || cJSON_IsNull(v)) {
    *out = def;
    return DLP_OK;
  }
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    return lfail(b, L, DLP_ERR_CORRUPT, "'%s' must be a number", k);
  *out = v->valuedouble;
  if (present) *present = true;
  return DLP_OK;
}

static int check_channels_last(kbuild *b, const klayer *L) {
  const cJSON *v = jget(L->cfg, "data_format");
  if (!v || cJSON_IsNull(v)) return DLP_OK;
  if (!cJSON_IsString(v))
    return lfail(b, L, DLP_ERR_CORRUPT, "'data_format' must be a string");
  if (strcmp(v->valuestring, "channels_last") != 0)
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "data_format '%s' is not supported; only channels_last "
                 "models can be loaded",
                 v->valuestring);
  return DLP_OK;
}

/* Keras axis of a rank-r tensor -> graph axis (4-D: NHWC -> NCHW). */
static int map_axis(int axis, int r, int *out) {
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) return -1;
  static const int nhwc_to_nchw[4] = {0, 2, 3, 1};
  *out = r == 4 ? nhwc_to_nchw[axis] : axis;
  return 0;
}

/* The name of a node of layer L: the layer's name for its final node,
 * "<layer>/<suffix>" for the others; a shared layer's later calls add
 * ":<call>". */
static void node_name(const kbuild *b, const klayer *L, const char *suffix,
                      char *buf, size_t n) {
  if (b->call > 0 && suffix)
    snprintf(buf, n, "%s:%d/%s", L->name, b->call, suffix);
  else if (b->call > 0)
    snprintf(buf, n, "%s:%d", L->name, b->call);
  else if (suffix)
    snprintf(buf, n, "%s/%s", L->name, suffix);
  else
    snprintf(buf, n, "%s", L->name);
}

static int graph_fail(kbuild *b, const klayer *L) {
  if (b->g->build_err.code)
    return lfail(b, L, b->g->build_err.code, "%s", b->g->build_err.msg);
  return lfail(b, L, DLP_ERR_NOMEM, "cannot add to the graph");
}

/* Adds a node with output shape s (computed by the caller with the nn.h
 * shape functions); suffix NULL names it after the layer. */
static int emit(kbuild *b, const klayer *L, const char *suffix, nn_op op,
                const int *in, int n_in, const nn_node_attr *a,
                const nn_shape *s, ktensor *out) {
  char name[600];
  if (nn_shape_numel(s->ndim, s->dims) < 0)
    return lfail(b, L, DLP_ERR_TOO_LARGE,
                 "its output is too large (or has an empty dimension)");
  node_name(b, L, suffix, name, sizeof name);
  int v = nn_graph_add_node(b->g, op, name, in, n_in, a);
  if (v < 0) return graph_fail(b, L);
  out->v = v;
  out->s = *s;
  return DLP_OK;
}

static nn_tensor tview(const nn_shape *s) {
  nn_tensor t;
  memset(&t, 0, sizeof t);
  t.ndim = s->ndim;
  for (int i = 0; i < NN_MAX_DIMS; i++)
    t.dims[i] = i < s->ndim ? s->dims[i] : 1;
  t.is_view = true;
  return t;
}

/* Shape errors from nn.h's shape functions, attributed to the layer. */
static int shape_fail(kbuild *b, const klayer *L, dlp_err *se) {
  return lfail(b, L, se->code ? se->code : DLP_ERR_SCHEMA, "%s", se->msg);
}

static int transpose(kbuild *b, const klayer *L, const char *suffix,
                     const ktensor *x, const int perm[4], ktensor *out) {
  nn_node_attr a;
  nn_node_attr_init(NN_OP_TRANSPOSE, &a);
  a.n_perm = 4;
  nn_shape s = x->s;
  for (int i = 0; i < 4; i++) {
    a.perm[i] = perm[i];
    s.dims[i] = x->s.dims[perm[i]];
  }
  return emit(b, L, suffix, NN_OP_TRANSPOSE, &x->v, 1, &a, &s, out);
}

static const int PERM_TO_NHWC[4] = {0, 2, 3, 1};
static const int PERM_TO_NCHW[4] = {0, 3, 1, 2};

/* Activations by Keras name. kind: 0 linear, 1 an nn_act, 2 softmax. */
static int act_lookup(const char *name, int *kind, nn_act *act) {
  static const struct {
    const char *k;
    int kind;
    nn_act a;
  } t[] = {{"linear", 0, NN_ACT_NONE}, {"relu", 1, NN_ACT_RELU},
           {"relu6", 1, NN_ACT_RELU6}, {"sigmoid", 1, NN_ACT_SIGMOID},
           {"tanh", 1, NN_ACT_TANH},   {"swish", 1, NN_ACT_SWISH},
           {"silu", 1, NN_ACT_SWISH},  {"hard_sigmoid", 1, NN_ACT_HARD_SIGMOID},
           {"softmax", 2, NN_ACT_NONE}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp(name, t[i].k) == 0) {
      *kind = t[i].kind;
      *act = t[i].a;
      return 0;
    }
  return -1;
}

static int cfg_activation(kbuild *b, const klayer *L, int *kind, nn_act *act) {
  const cJSON *v = jget(L->cfg, "activation");
  if (!v || cJSON_IsNull(v)) {
    *kind = 0;
    *act = NN_ACT_NONE;
    return DLP_OK;
  }
  if (!cJSON_IsString(v))
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "'activation' must be the name of a built-in activation");
  if (act_lookup(v->valuestring, kind, act) != 0)
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "activation '%s' is not supported (relu, relu6, sigmoid, "
                 "tanh, softmax, swish, hard_sigmoid, linear are)",
                 v->valuestring);
  return DLP_OK;
}

/* Emits activation (kind, act) on x as the layer's final node (suffix). */
static int emit_act(kbuild *b, const klayer *L, const char *suffix, int kind,
                    nn_act act, const ktensor *x, ktensor *out) {
  nn_node_attr a;
  if (kind == 2) {
    nn_node_attr_init(NN_OP_SOFTMAX, &a);
    if (map_axis(-1, x->s.ndim, &a.axis) != 0)
      return lfail(b, L, DLP_ERR_SCHEMA, "softmax on a rank-0 tensor");
    return emit(b, L, suffix, NN_OP_SOFTMAX, &x->v, 1, &a, &x->s, out);
  }
  if (kind == 0) {
    nn_node_attr_init(NN_OP_IDENTITY, &a);
    return emit(b, L, suffix, NN_OP_IDENTITY, &x->v, 1, &a, &x->s, out);
  }
  nn_node_attr_init(NN_OP_ACT, &a);
  a.act = act;
  return emit(b, L, suffix, NN_OP_ACT, &x->v, 1, &a, &x->s, out);
}

/* The weights a layer class keeps, in Keras order. */
typedef struct wspec {
  const char *role;
  int ndim;
  int64_t dims[4]; /* Keras layout */
} wspec;

/* Reads the layer's weights from model_weights/<layer> by position (as
 * Keras does), checking each role name and shape, into ws[i] (malloc'd). */
static int read_layer_weights(kbuild *b, const klayer *L, const wspec *spec,
                              int n, float **ws) {
  char gpath[600], who[700];
  snprintf(gpath, sizeof gpath, "/model_weights/%s", L->name);
  snprintf(who, sizeof who, "%s: Keras layer '%s' (%s)", b->path, L->name,
           L->cls);
  for (int i = 0; i < n; i++)
    ws[i] = NULL;
  if (H5Lexists(b->wroot, L->name, H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return lfail(b, L, DLP_ERR_NOT_FOUND,
                 "its weights are missing (no group %s)", gpath);
  }
  hid_t grp = H5Gopen2(b->wroot, L->name, H5P_DEFAULT);
  if (grp < 0) {
    char why[200];
    return lfail(b, L, DLP_ERR_CORRUPT, "cannot open %s: %s", gpath,
                 h5_why(why));
  }
  strlist names = {0};
  bool found;
  int rc = h5_attr_strings(b->e, grp, gpath, "weight_names", &names, &found);
  if (rc == DLP_OK && !found)
    rc = lfail(b, L, DLP_ERR_CORRUPT, "%s has no 'weight_names' attribute",
               gpath);
  if (rc == DLP_OK && names.n != n) {
    char want[200] = "";
    for (int i = 0; i < n; i++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s",
               i ? ", " : "", spec[i].role);
    rc = lfail(b, L, DLP_ERR_SCHEMA,
               "the file has %d weights for it but its config needs %d (%s)",
               names.n, n, want);
  }
  for (int i = 0; i < n && rc == DLP_OK; i++) {
    char role[64];
    weight_role(names.s[i], role, sizeof role);
    static const char *known[] = {
        "kernel", "bias", "depthwise_kernel", "pointwise_kernel",
        "gamma",  "beta", "moving_mean",      "moving_variance"};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
      if (strcmp(role, known[k]) == 0 && strcmp(role, spec[i].role) != 0) {
        rc = lfail(b, L, DLP_ERR_SCHEMA,
                   "weight %d is '%s' in the file, but '%s' is expected there",
                   i, names.s[i], spec[i].role);
        break;
      }
    if (rc == DLP_OK)
      rc = h5_read_weight(b->e, who, grp, gpath, names.s[i], spec[i].ndim,
                          spec[i].dims, &b->budget, &ws[i]);
  }
  strlist_free(&names);
  H5Gclose(grp);
  if (rc != DLP_OK)
    for (int i = 0; i < n; i++) {
      free(ws[i]);
      ws[i] = NULL;
    }
  return rc;
}

/* Adds weight data (owned) as const "<layer>/<role>". */
static int add_const(kbuild *b, klayer *L, const char *role, int ndim,
                     const int64_t *dims, float *data) {
  char name[600];
  snprintf(name, sizeof name, "%s/%s", L->name, role);
  int v = nn_graph_add_const_owned(b->g, name, ndim, dims, data);
  if (v < 0) return graph_fail(b, L);
  L->w[L->n_w++] = v;
  return DLP_OK;
}

/* Conv2D, DepthwiseConv2D, SeparableConv2D. */
static int build_conv(kbuild *b, klayer *L, const ktensor *x, ktensor *out,
                      int kind /* 0 conv, 1 depthwise, 2 separable */) {
  int rc, k[2], st[2], dil[2], filters = 0, groups = 1, mult = 1, akind;
  bool bias;
  nn_act act;
  if (x->s.ndim != 4)
    return lfail(b, L, DLP_ERR_SCHEMA, "needs a 4-D input, got rank %d",
                 x->s.ndim);
  if ((rc = check_channels_last(b, L)) ||
      (rc = cfg_pair(b, L, "kernel_size", 0, 1, 1 << 16, k)) ||
      (rc = cfg_pair(b, L, "strides", 1, 1, 1 << 16, st)) ||
      (rc = cfg_pair(b, L, "dilation_rate", 1, 1, 1 << 16, dil)) ||
      (rc = cfg_bool(b, L, "use_bias", true, &bias)) ||
      (rc = cfg_activation(b, L, &akind, &act)))
    return rc;
  if (kind != 1 && (rc = cfg_int(b, L, "filters", 0, 1, 1 << 24, &filters)))
    return rc;
  if (kind == 0 && (rc = cfg_int(b, L, "groups", 1, 1, 1 << 24, &groups)))
    return rc;
  if (kind != 0 &&
      (rc = cfg_int(b, L, "depth_multiplier", 1, 1, 1 << 16, &mult)))
    return rc;
  const char *pad = jstr(L->cfg, "padding");
  if (!pad) pad = "valid";
  bool same = strcmp(pad, "same") == 0;
  if (!same && strcmp(pad, "valid") != 0)
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "padding '%s' is not supported (valid, same are)", pad);
  int64_t C = x->s.dims[1], H = x->s.dims[2], W = x->s.dims[3];
  if (kind == 0 && (C % groups || filters % groups))
    return lfail(b, L, DLP_ERR_SCHEMA,
                 "groups %d does not divide %lld input channels and %d "
                 "filters",
                 groups, (long long)C, filters);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  for (int i = 0; i < 2; i++) {
    a.conv.stride[i] = st[i];
    a.conv.dilation[i] = dil[i];
  }
  if (same) {
    nn_pad_same_tf(H, k[0], st[0], dil[0], &a.conv.pads[0], &a.conv.pads[2]);
    nn_pad_same_tf(W, k[1], st[1], dil[1], &a.conv.pads[1], &a.conv.pads[3]);
  }
  /* Keras shapes of the weights, in file order. */
  wspec spec[3];
  int n = 0;
  if (kind == 0)
    spec[n++] = (wspec){"kernel", 4, {k[0], k[1], C / groups, filters}};
  else
    spec[n++] = (wspec){"depthwise_kernel", 4, {k[0], k[1], C, mult}};
  if (kind == 2)
    spec[n++] = (wspec){"pointwise_kernel", 4, {1, 1, C * mult, filters}};
  int64_t nout = kind == 1 ? C * mult : filters;
  if (bias) spec[n++] = (wspec){"bias", 1, {nout}};
  if (L->n_w == 0) {
    float *ws[3];
    if ((rc = read_layer_weights(b, L, spec, n, ws))) return rc;
    for (int i = 0; i < n; i++) {
      float *conv = ws[i];
      int64_t gd[4] = {spec[i].dims[0]};
      int nd = spec[i].ndim;
      if (nd == 4) {
        const int64_t *d = spec[i].dims;
        bool dw = strcmp(spec[i].role, "depthwise_kernel") == 0;
        int64_t ci = dw ? 1 : d[2], co = dw ? d[2] * d[3] : d[3];
        conv = hwio_to_oihw(ws[i], d[0], d[1], ci, co);
        free(ws[i]);
        ws[i] = NULL;
        gd[0] = co, gd[1] = ci, gd[2] = d[0], gd[3] = d[1];
        if (!conv) {
          for (int j = i + 1; j < n; j++)
            free(ws[j]);
          return lfail(b, L, DLP_ERR_NOMEM, "no memory for its weights");
        }
      }
      ws[i] = NULL;
      if ((rc = add_const(b, L, spec[i].role, nd, gd, conv))) {
        for (int j = i + 1; j < n; j++)
          free(ws[j]);
        return rc;
      }
    }
  }
  /* L->w: [kernel or depthwise][, pointwise][, bias] */
  dlp_err se = {0};
  nn_shape s;
  nn_tensor xt = tview(&x->s);
  ktensor cur = *x;
  bool lin = akind == 0;
  if (kind == 2) { /* depthwise step, no bias */
    nn_node_attr da = a;
    da.conv.groups = (int)C;
    nn_tensor wt = tview(&b->g->values[L->w[0]].shape);
    if (nn_conv2d_out_shape(&se, &da.conv, &xt, &wt, &s) != DLP_OK)
      return shape_fail(b, L, &se);
    int in[2] = {x->v, L->w[0]};
    if ((rc = emit(b, L, "depthwise", NN_OP_CONV2D, in, 2, &da, &s, &cur)))
      return rc;
    xt = tview(&cur.s);
    nn_node_attr_init(NN_OP_CONV2D, &a); /* pointwise: 1x1, stride 1 */
  } else {
    a.conv.groups = kind == 1 ? (int)C : groups;
  }
  int wi = kind == 2 ? 1 : 0;
  nn_tensor wt = tview(&b->g->values[L->w[wi]].shape);
  if (nn_conv2d_out_shape(&se, &a.conv, &xt, &wt, &s) != DLP_OK)
    return shape_fail(b, L, &se);
  int in[3] = {cur.v, L->w[wi], bias ? L->w[wi + 1] : -1};
  if ((rc = emit(b, L, lin ? NULL : "conv", NN_OP_CONV2D, in, bias ? 3 : 2, &a,
                 &s, &cur)))
    return rc;
  if (lin) {
    *out = cur;
    return DLP_OK;
  }
  return emit_act(b, L, NULL, akind, act, &cur, out);
}

static int build_dense(kbuild *b, klayer *L, const ktensor *x, ktensor *out) {
  int rc, units, akind;
  bool bias;
  nn_act act;
  if ((rc = cfg_int(b, L, "units", 0, 1, 1 << 30, &units)) ||
      (rc = cfg_bool(b, L, "use_bias", true, &bias)) ||
      (rc = cfg_activation(b, L, &akind, &act)))
    return rc;
  if (x->s.ndim != 2 && x->s.ndim != 4)
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "Dense on a rank-%d input is not supported", x->s.ndim);
  bool four = x->s.ndim == 4;
  int64_t in_dim = four ? x->s.dims[1] : x->s.dims[1];
  if (L->n_w == 0) {
    wspec spec[2] = {{"kernel", 2, {in_dim, units}}, {"bias", 1, {units}}};
    float *ws[2];
    if ((rc = read_layer_weights(b, L, spec, bias ? 2 : 1, ws))) return rc;
    rc = add_const(b, L, "kernel", 2, spec[0].dims, ws[0]);
    if (rc == DLP_OK && bias)
      rc = add_const(b, L, "bias", 1, spec[1].dims, ws[1]);
    else if (bias)
      free(ws[1]);
    if (rc) return rc;
  }
  ktensor cur = *x;
  if (four && (rc = transpose(b, L, "nhwc", x, PERM_TO_NHWC, &cur))) return rc;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_DENSE, &a);
  nn_shape s = cur.s;
  s.dims[s.ndim - 1] = units;
  int in[3] = {cur.v, L->w[0], bias ? L->w[1] : -1};
  bool last = !four && akind == 0;
  if ((rc = emit(b, L, last ? NULL : "dense", NN_OP_DENSE, in, bias ? 3 : 2, &a,
                 &s, &cur)))
    return rc;
  if (akind != 0 || four) {
    if (akind != 0) {
      ktensor t = cur;
      /* cur is NHWC here when four: softmax over its last axis. */
      nn_node_attr sa;
      if (akind == 2) {
        nn_node_attr_init(NN_OP_SOFTMAX, &sa);
        sa.axis = -1;
        rc = emit(b, L, four ? "act" : NULL, NN_OP_SOFTMAX, &t.v, 1, &sa, &t.s,
                  &cur);
      } else {
        rc = emit_act(b, L, four ? "act" : NULL, akind, act, &t, &cur);
      }
      if (rc) return rc;
    }
    if (four) return transpose(b, L, NULL, &cur, PERM_TO_NCHW, out);
  }
  *out = cur;
  return DLP_OK;
}

static int build_bn(kbuild *b, klayer *L, const ktensor *x, ktensor *out) {
  int rc, axis;
  double eps;
  bool center, scale;
  if ((rc = cfg_int(b, L, "axis", -1, -8, 8, &axis)) ||
      (rc = cfg_float(b, L, "epsilon", 1e-3, &eps, NULL)) ||
      (rc = cfg_bool(b, L, "center", true, &center)) ||
      (rc = cfg_bool(b, L, "scale", true, &scale)))
    return rc;
  int gaxis;
  if (map_axis(axis, x->s.ndim, &gaxis) != 0 || gaxis != 1)
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "batch normalisation over axis %d of a rank-%d tensor is "
                 "not supported (only the channel axis is)",
                 axis, x->s.ndim);
  if (!(eps > 0))
    return lfail(b, L, DLP_ERR_CORRUPT, "epsilon must be positive");
  int64_t C = x->s.dims[1];
  if (L->n_w == 0) {
    wspec spec[4];
    const char *roles[4];
    int n = 0;
    if (scale) roles[n++] = "gamma";
    if (center) roles[n++] = "beta";
    roles[n++] = "moving_mean";
    roles[n++] = "moving_variance";
    for (int i = 0; i < n; i++)
      spec[i] = (wspec){roles[i], 1, {C}};
    float *ws[4];
    if ((rc = read_layer_weights(b, L, spec, n, ws))) return rc;
    /* Always four consts in graph order; absent gamma = 1, beta = 0. */
    const char *all[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    int j = 0;
    for (int i = 0; i < 4; i++) {
      float *d = NULL;
      if (j < n && strcmp(roles[j], all[i]) == 0) {
        d = ws[j];
        ws[j++] = NULL;
      } else {
        d = dlp_malloc_array((size_t)C, sizeof *d);
        if (d)
          for (int64_t c = 0; c < C; c++)
            d[c] = i == 0 ? 1.0f : 0.0f;
      }
      if (!d) rc = lfail(b, L, DLP_ERR_NOMEM, "no memory");
      if (rc == DLP_OK) rc = add_const(b, L, all[i], 1, &C, d);
      if (rc) {
        for (int k = j; k < n; k++)
          free(ws[k]);
        return rc;
      }
    }
  }
  nn_node_attr a;
  nn_node_attr_init(NN_OP_BATCHNORM, &a);
  a.eps = (float)eps;
  int in[5] = {x->v, L->w[0], L->w[1], L->w[2], L->w[3]};
  return emit(b, L, NULL, NN_OP_BATCHNORM, in, 5, &a, &x->s, out);
}

static int build_relu(kbuild *b, klayer *L, const ktensor *x, ktensor *out) {
  int rc;
  double maxv, slope, thr;
  bool has_max;
  if ((rc = cfg_float(b, L, "max_value", 0, &maxv, &has_max)) ||
      (rc = cfg_float(b, L, "negative_slope", 0, &slope, NULL)) ||
      (rc = cfg_float(b, L, "threshold", 0, &thr, NULL)))
    return rc;
  if (thr != 0)
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "threshold %g is not supported (only 0)", thr);
  nn_node_attr a;
  if (slope == 0 && (!has_max || maxv == 6)) {
    nn_node_attr_init(NN_OP_ACT, &a);
    a.act = has_max ? NN_ACT_RELU6 : NN_ACT_RELU;
    return emit(b, L, NULL, NN_OP_ACT, &x->v, 1, &a, &x->s, out);
  }
  ktensor cur = *x;
  if (slope != 0) {
    nn_node_attr_init(NN_OP_ACT, &a);
    a.act = NN_ACT_LEAKY_RELU;
    a.alpha = (float)slope;
    a.dense.alpha = a.conv.alpha = (float)slope;
    if ((rc = emit(b, L, has_max ? "leaky" : NULL, NN_OP_ACT, &x->v, 1, &a,
                   &x->s, &cur)))
      return rc;
    if (!has_max) {
      *out = cur;
      return DLP_OK;
    }
  }
  nn_node_attr_init(NN_OP_CLIP, &a);
  a.clip_lo = slope != 0 ? -FLT_MAX : 0.0f;
  a.clip_hi = (float)maxv;
  if (a.clip_hi < a.clip_lo)
    return lfail(b, L, DLP_ERR_UNSUPPORTED, "max_value %g is negative", maxv);
  return emit(b, L, NULL, NN_OP_CLIP, &cur.v, 1, &a, &cur.s, out);
}

static int build_pool(kbuild *b, klayer *L, const ktensor *x, ktensor *out,
                      bool avg) {
  int rc, k[2], st[2];
  if (x->s.ndim != 4) return lfail(b, L, DLP_ERR_SCHEMA, "needs a 4-D input");
  if ((rc = check_channels_last(b, L)) ||
      (rc = cfg_pair(b, L, "pool_size", 2, 1, 1 << 16, k)))
    return rc;
  const cJSON *sv = jget(L->cfg, "strides");
  if (!sv || cJSON_IsNull(sv)) {
    st[0] = k[0];
    st[1] = k[1];
  } else if ((rc = cfg_pair(b, L, "strides", 1, 1, 1 << 16, st))) {
    return rc;
  }
  const char *pad = jstr(L->cfg, "padding");
  if (!pad) pad = "valid";
  bool same = strcmp(pad, "same") == 0;
  if (!same && strcmp(pad, "valid") != 0)
    return lfail(b, L, DLP_ERR_UNSUPPORTED, "padding '%s' is not supported",
                 pad);
  nn_op op = avg ? NN_OP_AVGPOOL : NN_OP_MAXPOOL;
  nn_node_attr a;
  nn_node_attr_init(op, &a);
  for (int i = 0; i < 2; i++) {
    a.pool.kernel[i] = k[i];
    a.pool.stride[i] = st[i];
  }
  a.pool.count_include_pad = false;
  if (same) {
    nn_pad_same_tf(x->s.dims[2], k[0], st[0], 1, &a.pool.pads[0],
                   &a.pool.pads[2]);
    nn_pad_same_tf(x->s.dims[3], k[1], st[1], 1, &a.pool.pads[1],
                   &a.pool.pads[3]);
  }
  dlp_err se = {0};
  nn_shape s;
  nn_tensor xt = tview(&x->s);
  if (nn_pool2d_out_shape(&se, &a.pool, &xt, &s) != DLP_OK)
    return shape_fail(b, L, &se);
  return emit(b, L, NULL, op, &x->v, 1, &a, &s, out);
}

static int build_global_pool(kbuild *b, klayer *L, const ktensor *x,
                             ktensor *out, bool avg) {
  int rc;
  bool keep;
  if (x->s.ndim != 4) return lfail(b, L, DLP_ERR_SCHEMA, "needs a 4-D input");
  if ((rc = check_channels_last(b, L)) ||
      (rc = cfg_bool(b, L, "keepdims", false, &keep)))
    return rc;
  nn_op op = avg ? NN_OP_GLOBAL_AVGPOOL : NN_OP_GLOBAL_MAXPOOL;
  nn_node_attr a;
  nn_node_attr_init(op, &a);
  a.keepdims = keep;
  nn_shape s = {keep ? 4 : 2, {1, x->s.dims[1], 1, 1}};
  return emit(b, L, NULL, op, &x->v, 1, &a, &s, out);
}

static int build_zeropad(kbuild *b, klayer *L, const ktensor *x, ktensor *out) {
  int rc, p[4]; /* top, bottom, left, right */
  if (x->s.ndim != 4) return lfail(b, L, DLP_ERR_SCHEMA, "needs a 4-D input");
  if ((rc = check_channels_last(b, L))) return rc;
  const cJSON *v = jget(L->cfg, "padding");
  const int hi = 1 << 16;
  if (jnum_int(v, 0, hi, &p[0])) {
    p[1] = p[2] = p[3] = p[0];
  } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2 &&
             jnum_int(cJSON_GetArrayItem(v, 0), 0, hi, &p[0]) &&
             jnum_int(cJSON_GetArrayItem(v, 1), 0, hi, &p[2])) {
    p[1] = p[0];
    p[3] = p[2];
  } else {
    const cJSON *r0 = cJSON_GetArrayItem(v, 0), *r1 = cJSON_GetArrayItem(v, 1);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 ||
        cJSON_GetArraySize(r0) != 2 || cJSON_GetArraySize(r1) != 2 ||
        !jnum_int(cJSON_GetArrayItem(r0, 0), 0, hi, &p[0]) ||
        !jnum_int(cJSON_GetArrayItem(r0, 1), 0, hi, &p[1]) ||
        !jnum_int(cJSON_GetArrayItem(r1, 0), 0, hi, &p[2]) ||
        !jnum_int(cJSON_GetArrayItem(r1, 1), 0, hi, &p[3]))
      return lfail(b, L, DLP_ERR_CORRUPT,
                   "'padding' must be an int, two ints or two pairs of ints");
  }
  nn_node_attr a;
  nn_node_attr_init(NN_OP_PAD, &a);
  a.pad.pads[2] = p[0];     /* H begin */
  a.pad.pads[3] = p[2];     /* W begin */
  a.pad.pads[4 + 2] = p[1]; /* H end */
  a.pad.pads[4 + 3] = p[3]; /* W end */
  nn_shape s = x->s;
  s.dims[2] += p[0] + p[1];
  s.dims[3] += p[2] + p[3];
  return emit(b, L, NULL, NN_OP_PAD, &x->v, 1, &a, &s, out);
}

static int build_flatten(kbuild *b, klayer *L, const ktensor *x, ktensor *out) {
  int rc;
  if ((rc = check_channels_last(b, L))) return rc;
  nn_node_attr a;
  ktensor cur = *x;
  if (x->s.ndim == 4 && (rc = transpose(b, L, "nhwc", x, PERM_TO_NHWC, &cur)))
    return rc;
  nn_node_attr_init(NN_OP_FLATTEN, &a);
  a.axis = 1;
  nn_shape s = {2, {1, nn_shape_numel(cur.s.ndim, cur.s.dims)}};
  return emit(b, L, NULL, NN_OP_FLATTEN, &cur.v, 1, &a, &s, out);
}

static int build_reshape(kbuild *b, klayer *L, const ktensor *x, ktensor *out) {
  int rc;
  const cJSON *t = jget(L->cfg, "target_shape");
  int n = cJSON_GetArraySize(t);
  if (!cJSON_IsArray(t) || n < 1 || n > 3)
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "'target_shape' must list 1 to 3 dimensions");
  int64_t per = nn_shape_numel(x->s.ndim, x->s.dims), known = 1;
  int64_t dims[4] = {1};
  int infer = -1;
  for (int i = 0; i < n; i++) {
    int d;
    if (!jnum_int(cJSON_GetArrayItem(t, i), -1, 1 << 30, &d) || d == 0 ||
        (d == -1 && infer >= 0))
      return lfail(b, L, DLP_ERR_CORRUPT, "bad 'target_shape'");
    if (d == -1)
      infer = i + 1;
    else
      known *= d;
    dims[i + 1] = d;
    if (known > per) break;
  }
  if (infer >= 0 && known > 0 && per % known == 0) dims[infer] = per / known;
  nn_shape s = {n + 1, {0}};
  memcpy(s.dims, dims, sizeof dims);
  if (nn_shape_numel(s.ndim, s.dims) != per)
    return lfail(b, L, DLP_ERR_SCHEMA,
                 "cannot reshape %lld values per sample to the target shape",
                 (long long)per);
  ktensor cur = *x;
  if (x->s.ndim == 4 && (rc = transpose(b, L, "nhwc", x, PERM_TO_NHWC, &cur)))
    return rc;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_RESHAPE, &a);
  a.n_shape = s.ndim;
  a.shape[0] = 0; /* the batch, copied */
  for (int i = 1; i < s.ndim; i++)
    a.shape[i] = s.dims[i];
  bool four = s.ndim == 4;
  if ((rc = emit(b, L, four ? "reshape" : NULL, NN_OP_RESHAPE, &cur.v, 1, &a,
                 &s, &cur)))
    return rc;
  if (four) return transpose(b, L, NULL, &cur, PERM_TO_NCHW, out);
  *out = cur;
  return DLP_OK;
}

/* Add, Multiply: a chain of binary nodes over inputs of one shape. */
static int build_merge(kbuild *b, klayer *L, const ktensor *xs, int n,
                       ktensor *out, nn_op op) {
  if (n < 2)
    return lfail(b, L, DLP_ERR_CORRUPT, "needs at least 2 inputs, got %d", n);
  for (int i = 1; i < n; i++)
    if (xs[i].s.ndim != xs[0].s.ndim ||
        memcmp(xs[i].s.dims, xs[0].s.dims, sizeof(int64_t) * xs[0].s.ndim)) {
      char a[96], c[96];
      return lfail(b, L, DLP_ERR_SCHEMA, "input shapes differ: %s and %s",
                   nn_shape_str(xs[0].s.ndim, xs[0].s.dims, a, sizeof a),
                   nn_shape_str(xs[i].s.ndim, xs[i].s.dims, c, sizeof c));
    }
  ktensor cur = xs[0];
  for (int i = 1; i < n; i++) {
    char suffix[32];
    snprintf(suffix, sizeof suffix, "%d", i);
    int in[2] = {cur.v, xs[i].v};
    int rc =
        emit(b, L, i == n - 1 ? NULL : suffix, op, in, 2, NULL, &xs[0].s, &cur);
    if (rc) return rc;
  }
  *out = cur;
  return DLP_OK;
}

static int build_concat(kbuild *b, klayer *L, const ktensor *xs, int n,
                        ktensor *out) {
  int rc, axis;
  if (n < 1 || n > K_MAX_INPUTS)
    return lfail(b, L, DLP_ERR_CORRUPT, "bad number of inputs %d", n);
  if ((rc = cfg_int(b, L, "axis", -1, -8, 8, &axis))) return rc;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONCAT, &a);
  if (map_axis(axis, xs[0].s.ndim, &a.axis) != 0 || a.axis == 0)
    return lfail(b, L, DLP_ERR_UNSUPPORTED, "cannot concatenate on axis %d",
                 axis);
  nn_tensor *tv = dlp_calloc_array((size_t)n, sizeof *tv);
  const nn_tensor **tp = dlp_calloc_array((size_t)n, sizeof *tp);
  int *in = dlp_calloc_array((size_t)n, sizeof *in);
  if (!tv || !tp || !in) {
    rc = lfail(b, L, DLP_ERR_NOMEM, "no memory");
  } else {
    for (int i = 0; i < n; i++) {
      tv[i] = tview(&xs[i].s);
      tp[i] = &tv[i];
      in[i] = xs[i].v;
    }
    dlp_err se = {0};
    nn_shape s;
    if (nn_concat_out_shape(&se, tp, n, a.axis, &s) != DLP_OK)
      rc = shape_fail(b, L, &se);
    else
      rc = emit(b, L, NULL, NN_OP_CONCAT, in, n, &a, &s, out);
  }
  free(tv);
  free(tp);
  free(in);
  return rc;
}

static int build_rescaling(kbuild *b, klayer *L, const ktensor *x,
                           ktensor *out) {
  int rc;
  double scale, offset;
  if ((rc = cfg_float(b, L, "scale", 1, &scale, NULL)) ||
      (rc = cfg_float(b, L, "offset", 0, &offset, NULL)))
    return rc;
  const int64_t one = 1;
  char name[600];
  float sv = (float)scale, ov = (float)offset;
  snprintf(name, sizeof name, "%s/scale", L->name);
  int cs = nn_graph_find_value(b->g, name);
  if (cs < 0 && (cs = nn_graph_add_const(b->g, name, 1, &one, &sv)) < 0)
    return graph_fail(b, L);
  ktensor cur;
  int in[2] = {x->v, cs};
  if ((rc = emit(b, L, offset != 0 ? "scale" : NULL, NN_OP_MUL, in, 2, NULL,
                 &x->s, &cur)))
    return rc;
  if (offset == 0) {
    *out = cur;
    return DLP_OK;
  }
  snprintf(name, sizeof name, "%s/offset", L->name);
  int co = nn_graph_find_value(b->g, name);
  if (co < 0 && (co = nn_graph_add_const(b->g, name, 1, &one, &ov)) < 0)
    return graph_fail(b, L);
  int in2[2] = {cur.v, co};
  return emit(b, L, NULL, NN_OP_ADD, in2, 2, NULL, &x->s, out);
}

static int build_simple_act(kbuild *b, klayer *L, const ktensor *x,
                            ktensor *out) {
  const char *cls = L->cls;
  nn_node_attr a;
  int rc;
  if (strcmp(cls, "Activation") == 0) {
    int kind;
    nn_act act;
    if (!jget(L->cfg, "activation"))
      return lfail(b, L, DLP_ERR_CORRUPT, "the config has no 'activation'");
    if ((rc = cfg_activation(b, L, &kind, &act))) return rc;
    return emit_act(b, L, NULL, kind, act, x, out);
  }
  if (strcmp(cls, "LeakyReLU") == 0) {
    double alpha;
    if (jget(L->cfg, "negative_slope"))
      rc = cfg_float(b, L, "negative_slope", 0.3, &alpha, NULL);
    else
      rc = cfg_float(b, L, "alpha", 0.3, &alpha, NULL);
    if (rc) return rc;
    nn_node_attr_init(NN_OP_ACT, &a);
    a.act = NN_ACT_LEAKY_RELU;
    a.alpha = (float)alpha;
    return emit(b, L, NULL, NN_OP_ACT, &x->v, 1, &a, &x->s, out);
  }
  /* Softmax */
  int axis;
  if ((rc = cfg_int(b, L, "axis", -1, -8, 8, &axis))) return rc;
  nn_node_attr_init(NN_OP_SOFTMAX, &a);
  if (map_axis(axis, x->s.ndim, &a.axis) != 0)
    return lfail(b, L, DLP_ERR_SCHEMA, "bad softmax axis %d", axis);
  return emit(b, L, NULL, NN_OP_SOFTMAX, &x->v, 1, &a, &x->s, out);
}

static bool is_input_class(const char *cls) {
  return strcmp(cls, "InputLayer") == 0;
}

/* Builds one call of layer L on inputs xs. */
static int build_layer(kbuild *b, klayer *L, const ktensor *xs, int n,
                       ktensor *out) {
  const char *c = L->cls;
  static const char *code_layers[] = {"Lambda", "TFOpLambda",
                                      "SlicingOpLambda"};
  for (size_t i = 0; i < sizeof code_layers / sizeof code_layers[0]; i++)
    if (strcmp(c, code_layers[i]) == 0)
      return lfail(b, L, DLP_ERR_UNSUPPORTED,
                   "cannot be loaded: a model file never runs code; rebuild "
                   "the model without it");
  if (strcmp(c, "Sequential") == 0 || strcmp(c, "Functional") == 0 ||
      strcmp(c, "Model") == 0)
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "a model nested inside a model is not supported; save the "
                 "flattened model");
  bool multi = strcmp(c, "Add") == 0 || strcmp(c, "Multiply") == 0 ||
               strcmp(c, "Concatenate") == 0;
  if (!multi && n != 1)
    return lfail(b, L, DLP_ERR_CORRUPT, "takes one input, not %d", n);
  const ktensor *x = &xs[0];
  if (strcmp(c, "Conv2D") == 0 || strcmp(c, "Convolution2D") == 0)
    return build_conv(b, L, x, out, 0);
  if (strcmp(c, "DepthwiseConv2D") == 0) return build_conv(b, L, x, out, 1);
  if (strcmp(c, "SeparableConv2D") == 0 ||
      strcmp(c, "SeparableConvolution2D") == 0)
    return build_conv(b, L, x, out, 2);
  if (strcmp(c, "Dense") == 0) return build_dense(b, L, x, out);
  if (strcmp(c, "BatchNormalization") == 0) return build_bn(b, L, x, out);
  if (strcmp(c, "ReLU") == 0) return build_relu(b, L, x, out);
  if (strcmp(c, "Activation") == 0 || strcmp(c, "LeakyReLU") == 0 ||
      strcmp(c, "Softmax") == 0)
    return build_simple_act(b, L, x, out);
  if (strcmp(c, "Dropout") == 0 || strcmp(c, "SpatialDropout2D") == 0 ||
      strcmp(c, "GaussianNoise") == 0 || strcmp(c, "GaussianDropout") == 0 ||
      strcmp(c, "AlphaDropout") == 0 ||
      strcmp(c, "ActivityRegularization") == 0)
    return emit_act(b, L, NULL, 0, NN_ACT_NONE, x, out);
  if (strcmp(c, "Flatten") == 0) return build_flatten(b, L, x, out);
  if (strcmp(c, "Reshape") == 0) return build_reshape(b, L, x, out);
  if (strcmp(c, "GlobalAveragePooling2D") == 0 ||
      strcmp(c, "GlobalAvgPool2D") == 0)
    return build_global_pool(b, L, x, out, true);
  if (strcmp(c, "GlobalMaxPooling2D") == 0 || strcmp(c, "GlobalMaxPool2D") == 0)
    return build_global_pool(b, L, x, out, false);
  if (strcmp(c, "MaxPooling2D") == 0 || strcmp(c, "MaxPool2D") == 0)
    return build_pool(b, L, x, out, false);
  if (strcmp(c, "AveragePooling2D") == 0 || strcmp(c, "AvgPool2D") == 0)
    return build_pool(b, L, x, out, true);
  if (strcmp(c, "ZeroPadding2D") == 0) return build_zeropad(b, L, x, out);
  if (strcmp(c, "Add") == 0) return build_merge(b, L, xs, n, out, NN_OP_ADD);
  if (strcmp(c, "Multiply") == 0)
    return build_merge(b, L, xs, n, out, NN_OP_MUL);
  if (strcmp(c, "Concatenate") == 0) return build_concat(b, L, xs, n, out);
  if (strcmp(c, "Rescaling") == 0) return build_rescaling(b, L, x, out);
  if (is_input_class(c))
    return lfail(b, L, DLP_ERR_CORRUPT, "an InputLayer cannot take inputs");
  return lfail(b, L, DLP_ERR_UNSUPPORTED,
               "cannot be loaded: dlp does not support the layer class '%s'",
               c);
}

/* Creates the graph input of an InputLayer (or of a Sequential model's first
 * layer carrying batch_input_shape). */
static int build_input(kbuild *b, klayer *L, const char *name, ktensor *out) {
  const cJSON *bis = jget(L->cfg, "batch_input_shape");
  if (!bis) bis = jget(L->cfg, "batch_shape"); /* Keras 3 */
  int r = cJSON_GetArraySize(bis);
  if (!cJSON_IsArray(bis) || (r != 2 && r != 4))
    return lfail(b, L, r == 3 || r > 4 ? DLP_ERR_UNSUPPORTED : DLP_ERR_CORRUPT,
                 "the input shape must be (batch, height, width, channels) "
                 "or (batch, features)");
  int d[4] = {0};
  for (int i = 1; i < r; i++) {
    const cJSON *v = cJSON_GetArrayItem(bis, i);
    if (cJSON_IsNull(v)) {
      d[i] = 0;
    } else if (!jnum_int(v, 1, 1 << 24, &d[i])) {
      return lfail(b, L, DLP_ERR_CORRUPT, "bad input dimension %d", i);
    }
  }
  if (r == 4) {
    int want[2] = {b->in_h, b->in_w};
    for (int i = 0; i < 2; i++) {
      if (want[i] > 0 && d[1 + i] > 0 && d[1 + i] != want[i])
        return lfail(b, L, DLP_ERR_ARG,
                     "the model's input is fixed at %dx%d, not %dx%d", d[1],
                     d[2], b->in_h > 0 ? b->in_h : d[1],
                     b->in_w > 0 ? b->in_w : d[2]);
      if (want[i] > 0) d[1 + i] = want[i];
    }
    if (!d[1] && !d[2] && b->def_h > 0) {
      d[1] = b->def_h;
      d[2] = b->def_w;
    }
    if (!d[1] || !d[2])
      return lfail(b, L, DLP_ERR_ARG,
                   "the model's input height/width is not fixed (None); give "
                   "an input size (e.g. --input-size HxW)");
  }
  if (!d[r - 1])
    return lfail(b, L, DLP_ERR_UNSUPPORTED,
                 "the input's channel/feature count is not fixed (None)");
  int64_t gd[4] = {-1, 0, 0, 0};
  if (r == 4) {
    gd[1] = d[3], gd[2] = d[1], gd[3] = d[2];
  } else {
    gd[1] = d[1];
  }
  out->s.ndim = r;
  out->s.dims[0] = 1;
  for (int i = 1; i < r; i++)
    out->s.dims[i] = gd[i];
  if (nn_shape_numel(r, out->s.dims) < 0)
    return lfail(b, L, DLP_ERR_TOO_LARGE, "the input is too large");
  int v = nn_graph_add_input(b->g, name, r, gd);
  if (v < 0) return graph_fail(b, L);
  out->v = v;
  if (r == 4 && b->g->n_inputs == 1) {
    b->g->input_spec.height = d[1];
    b->g->input_spec.width = d[2];
    b->g->input_spec.channels = d[3];
  }
  return DLP_OK;
}

/* Fills L's name/cls/cfg from a layers[] entry. */
static int parse_layer_entry(kbuild *b, const cJSON *j, int idx, klayer *L) {
  L->cls = jstr(j, "class_name");
  L->cfg = jget(j, "config");
  L->name = jstr(j, "name");
  if (!L->name) L->name = jstr(L->cfg, "name");
  for (int i = 0; i < 4; i++)
    L->w[i] = -1;
  if (!L->cls || !cJSON_IsObject(L->cfg) || !L->name || !L->name[0] ||
      strlen(L->name) > 256)
    return dlp_err_set(b->e, DLP_ERR_CORRUPT,
                       "%s: model config: layer %d lacks a class_name, a "
                       "name or a config",
                       b->path, idx);
  return DLP_OK;
}

static int alloc_outs(kbuild *b, klayer *L, int n) {
  L->n_calls = n;
  L->outs = dlp_calloc_array((size_t)(n ? n : 1), sizeof *L->outs);
  if (!L->outs) return dlp_err_set(b->e, DLP_ERR_NOMEM, "no memory");
  for (int i = 0; i < n; i++)
    L->outs[i].v = -1;
  return DLP_OK;
}

static int find_layer(const kbuild *b, const char *name) {
  for (int i = 0; i < b->n_layers; i++)
    if (strcmp(b->layers[i].name, name) == 0) return i;
  return -1;
}

static int load_layers(kbuild *b, const cJSON *arr) {
  int n = cJSON_GetArraySize(arr);
  if (!cJSON_IsArray(arr) || n < 1)
    return dlp_err_set(b->e, DLP_ERR_CORRUPT, "%s: model config has no layers",
                       b->path);
  if (n > K_MAX_LAYERS)
    return dlp_err_set(b->e, DLP_ERR_TOO_LARGE,
                       "%s: model config has %d layers, more than %d", b->path,
                       n, K_MAX_LAYERS);
  b->layers = dlp_calloc_array((size_t)n, sizeof *b->layers);
  if (!b->layers) return dlp_err_set(b->e, DLP_ERR_NOMEM, "no memory");
  int i = 0;
  for (const cJSON *j = arr->child; j; j = j->next, i++) {
    int rc = parse_layer_entry(b, j, i, &b->layers[i]);
    b->n_layers = i + 1;
    if (rc) return rc;
    for (int k = 0; k < i; k++)
      if (strcmp(b->layers[k].name, b->layers[i].name) == 0)
        return dlp_err_set(b->e, DLP_ERR_CORRUPT,
                           "%s: model config: two layers are named '%s'",
                           b->path, b->layers[i].name);
  }
  return DLP_OK;
}

static int build_sequential(kbuild *b, const cJSON *cfg) {
  /* Keras <= 2.2.2 wrote the layer list itself; later a {name, layers}. */
  const cJSON *arr = cJSON_IsArray(cfg) ? cfg : jget(cfg, "layers");
  int rc = load_layers(b, arr);
  if (rc) return rc;
  ktensor x = {-1, {0}};
  int first = 0;
  klayer *L0 = &b->layers[0];
  if ((rc = alloc_outs(b, L0, 1))) return rc;
  if (is_input_class(L0->cls)) {
    if ((rc = build_input(b, L0, L0->name, &x))) return rc;
    first = 1;
  } else {
    char nm[300];
    snprintf(nm, sizeof nm, "%s_input", L0->name);
    if ((rc = build_input(b, L0, nm, &x))) return rc;
  }
  for (int i = first; i < b->n_layers; i++) {
    klayer *L = &b->layers[i];
    if (!L->outs && (rc = alloc_outs(b, L, 1))) return rc;
    if (is_input_class(L->cls))
      return lfail(b, L, DLP_ERR_CORRUPT,
                   "an InputLayer in the middle of a Sequential model");
    b->call = 0;
    if ((rc = build_layer(b, L, &x, 1, &x))) return rc;
  }
  nn_graph_mark_output(b->g, x.v);
  return DLP_OK;
}

/* A [name, node_index, tensor_index(, kwargs)] reference. */
static int parse_ref(kbuild *b, const klayer *who, const cJSON *r, int *layer,
                     int *node) {
  int tensor = 0;
  const cJSON *nm = cJSON_GetArrayItem(r, 0);
  if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) < 3 || !cJSON_IsString(nm) ||
      !jnum_int(cJSON_GetArrayItem(r, 1), 0, K_MAX_CALLS, node) ||
      !jnum_int(cJSON_GetArrayItem(r, 2), 0, 1 << 20, &tensor))
    return dlp_err_set(b->e, DLP_ERR_CORRUPT,
                       "%s: model config: a bad tensor reference%s%s%s",
                       b->path, who ? " in layer '" : "", who ? who->name : "",
                       who ? "'" : "");
  *layer = find_layer(b, nm->valuestring);
  if (*layer < 0)
    return dlp_err_set(b->e, DLP_ERR_CORRUPT,
                       "%s: model config: %s%s%suses layer '%s', which is "
                       "not in the model",
                       b->path, who ? "layer '" : "", who ? who->name : "",
                       who ? "' " : "", nm->valuestring);
  if (tensor != 0)
    return dlp_err_set(b->e, DLP_ERR_UNSUPPORTED,
                       "%s: model config: output %d of layer '%s': layers "
                       "with several outputs are not supported",
                       b->path, tensor, nm->valuestring);
  const klayer *src = &b->layers[*layer];
  if (*node >= src->n_calls)
    return dlp_err_set(b->e, DLP_ERR_CORRUPT,
                       "%s: model config: layer '%s' has no node %d", b->path,
                       nm->valuestring, *node);
  return DLP_OK;
}

/* Tries to build call k of L; *ready false when an input is not built. */
static int try_call(kbuild *b, klayer *L, int k, bool *ready) {
  const cJSON *call = cJSON_GetArrayItem(L->inbound, k);
  int n = cJSON_GetArraySize(call);
  *ready = false;
  if (!cJSON_IsArray(call) || n < 1 || n > K_MAX_INPUTS)
    return lfail(b, L, DLP_ERR_CORRUPT, "inbound node %d is malformed", k);
  ktensor *xs = dlp_calloc_array((size_t)n, sizeof *xs);
  if (!xs) return dlp_err_set(b->e, DLP_ERR_NOMEM, "no memory");
  int i = 0, rc = DLP_OK;
  for (const cJSON *r = call->child; r && rc == DLP_OK; r = r->next, i++) {
    int li, node;
    if ((rc = parse_ref(b, L, r, &li, &node))) break;
    xs[i] = b->layers[li].outs[node];
    if (xs[i].v < 0) {
      free(xs);
      return DLP_OK;
    }
  }
  if (rc == DLP_OK) {
    *ready = true;
    b->call = k;
    rc = build_layer(b, L, xs, n, &L->outs[k]);
  }
  free(xs);
  return rc;
}

static int build_functional(kbuild *b, const cJSON *cfg) {
  int rc = load_layers(b, jget(cfg, "layers"));
  if (rc) return rc;
  for (int i = 0; i < b->n_layers; i++) {
    klayer *L = &b->layers[i];
    const cJSON *j = cJSON_GetArrayItem(jget(cfg, "layers"), i);
    L->inbound = jget(j, "inbound_nodes");
    int n = is_input_class(L->cls) ? 1 : cJSON_GetArraySize(L->inbound);
    if (!is_input_class(L->cls) && L->inbound && !cJSON_IsArray(L->inbound))
      return lfail(b, L, DLP_ERR_CORRUPT, "'inbound_nodes' is not a list");
    if (n > K_MAX_CALLS)
      return lfail(b, L, DLP_ERR_TOO_LARGE, "is called %d times", n);
    if ((rc = alloc_outs(b, L, n))) return rc;
  }
  /* Inputs first, in input_layers order, so graph inputs follow it. */
  const cJSON *ins = jget(cfg, "input_layers"),
              *outs = jget(cfg, "output_layers");
  if (!cJSON_IsArray(ins) || cJSON_GetArraySize(ins) < 1 ||
      !cJSON_IsArray(outs) || cJSON_GetArraySize(outs) < 1)
    return dlp_err_set(b->e, DLP_ERR_CORRUPT,
                       "%s: model config lacks input_layers/output_layers",
                       b->path);
  for (const cJSON *r = ins->child; r; r = r->next) {
    int li, node;
    if ((rc = parse_ref(b, NULL, r, &li, &node))) return rc;
    klayer *L = &b->layers[li];
    if (!is_input_class(L->cls))
      return lfail(b, L, DLP_ERR_UNSUPPORTED,
                   "a model input that is not an InputLayer");
    if (L->outs[0].v >= 0) continue;
    if ((rc = build_input(b, L, L->name, &L->outs[0]))) return rc;
  }
  /* Build calls as their inputs become ready (config order is usually
   * topological already; this also copes with any other order). */
  int64_t pending = 0;
  for (int i = 0; i < b->n_layers; i++)
    if (!is_input_class(b->layers[i].cls)) pending += b->layers[i].n_calls;
  bool progress = true;
  while (pending > 0 && progress) {
    progress = false;
    for (int i = 0; i < b->n_layers; i++) {
      klayer *L = &b->layers[i];
      if (is_input_class(L->cls)) continue;
      for (int k = 0; k < L->n_calls; k++) {
        if (L->outs[k].v >= 0) continue;
        bool ready;
        if ((rc = try_call(b, L, k, &ready))) return rc;
        if (ready) {
          pending--;
          progress = true;
        }
      }
    }
  }
  for (const cJSON *r = outs->child; r; r = r->next) {
    int li, node;
    if ((rc = parse_ref(b, NULL, r, &li, &node))) return rc;
    klayer *L = &b->layers[li];
    if (L->outs[node].v < 0)
      return dlp_err_set(b->e, DLP_ERR_CORRUPT,
                         "%s: model config: output layer '%s' cannot be "
                         "computed from the inputs (a cycle or a missing "
                         "input layer)",
                         b->path, L->name);
    nn_graph_mark_output(b->g, L->outs[node].v);
  }
  return DLP_OK;
}

/* ------------------------------------------------------------------------
 * dlp's root attributes (keras.h): class names, preprocessing, input size
 * ------------------------------------------------------------------------ */

#define K_META_MAX_TEXT (64 << 20) /* the class names' JSON text */

void nn_keras_meta_clear(nn_keras_meta *m) {
  if (!m) return;
  for (int i = 0; i < m->n_class_names; i++)
    free(m->class_names[i]);
  free(m->class_names);
  memset(m, 0, sizeof *m);
}

/* The single string of attribute `name` of f into *out (malloc'd), or NULL
 * when the file has no such attribute. */
static int meta_string(dlp_err *e, const char *path, hid_t f, const char *name,
                       char **out) {
  *out = NULL;
  if (H5Aexists(f, name) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return DLP_OK;
  }
  strlist l = {0};
  int rc = h5_attr_read_strings(e, f, path, name, &l);
  if (rc == DLP_OK && l.n != 1)
    rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: attribute '%s' must be one string, not a list of "
                     "%d",
                     path, name, l.n);
  if (rc == DLP_OK) {
    *out = l.s[0];
    l.s[0] = NULL;
  }
  strlist_free(&l);
  return rc;
}

/* item < 0: the attribute as a whole. */
static int meta_fail(dlp_err *e, const char *path, const char *why, int item) {
  char at[32] = "";
  if (item >= 0) snprintf(at, sizeof at, " (item %d)", item);
  return dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: attribute 'dlp_class_names' must be a JSON list of "
                     "class names: %s%s",
                     path, why, at);
}

static int meta_names(dlp_err *e, const char *path, const char *text,
                      nn_keras_meta *m) {
  if (strlen(text) > K_META_MAX_TEXT)
    return meta_fail(e, path, "it is too long", -1);
  cJSON *a = cJSON_Parse(text);
  int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
  int rc = DLP_OK;
  if (n < 1 || n > NN_KERAS_MAX_CLASSES)
    rc = meta_fail(e, path,
                   !a      ? "it is not JSON"
                   : n < 0 ? "it is not a list"
                   : n < 1 ? "it is empty"
                           : "it lists too many",
                   -1);
  if (rc == DLP_OK &&
      !(m->class_names = dlp_calloc_array((size_t)n, sizeof(char *))))
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory for %d class names", n);
  int i = 0;
  for (const cJSON *it = a ? a->child : NULL; rc == DLP_OK && it;
       it = it->next, i++) {
    if (!cJSON_IsString(it) || !it->valuestring)
      rc = meta_fail(e, path, "not a string", i);
    else if (strlen(it->valuestring) > NN_KERAS_MAX_CLASS_NAME)
      rc = meta_fail(e, path, "a name too long", i);
    else if (!(m->class_names[i] = dlp_strdup(it->valuestring)))
      rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory for class names");
    else
      m->n_class_names = i + 1;
  }
  cJSON_Delete(a);
  return rc;
}

static int read_meta(dlp_err *e, const char *path, hid_t f, nn_keras_meta *m) {
  char *names = NULL, *pre = NULL, *size = NULL;
  memset(m, 0, sizeof *m);
  int rc = meta_string(e, path, f, "dlp_class_names", &names);
  if (rc == DLP_OK) rc = meta_string(e, path, f, "dlp_preprocess", &pre);
  if (rc == DLP_OK) rc = meta_string(e, path, f, "dlp_input_size", &size);
  if (rc == DLP_OK && names) rc = meta_names(e, path, names, m);
  if (rc == DLP_OK && pre) {
    m->has_norm = true;
    if (!dlp_norm_from_name(pre, &m->norm))
      rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: attribute 'dlp_preprocess' is '%.40s', not tf, "
                       "caffe, torch or none",
                       path, pre);
  }
  int32_t h = 0, w = 0;
  if (rc == DLP_OK && size &&
      (!dlp_parse_size(size, &h, &w) || h < 1 || w < 1 || h > (1 << 16) ||
       w > (1 << 16)))
    rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: attribute 'dlp_input_size' is '%.40s', not "
                     "HEIGHTxWIDTH",
                     path, size);
  m->height = h;
  m->width = w;
  free(names);
  free(pre);
  free(size);
  if (rc != DLP_OK) nn_keras_meta_clear(m);
  return rc;
}

/* The loaded graph against the file's attributes: its preprocessing, and
 * one class name per output. */
static int apply_meta(dlp_err *e, const char *path, const nn_keras_meta *m,
                      nn_graph *g) {
  if (m->has_norm) g->input_spec.norm = m->norm;
  if (!m->class_names) return DLP_OK;
  nn_shape os =
      g->n_outputs == 1 ? g->values[g->outputs[0]].shape : (nn_shape){0};
  if (os.ndim != 2 || os.dims[1] != m->n_class_names)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: attribute 'dlp_class_names' lists %d class names "
                       "but the model gives %lld outputs",
                       path, m->n_class_names,
                       os.ndim == 2 ? (long long)os.dims[1] : 0LL);
  return DLP_OK;
}

int nn_keras_file_meta(dlp_err *e, const char *path, uint64_t max_bytes,
                       nn_keras_meta *m) {
  if (!m) return dlp_err_set(e, DLP_ERR_ARG, "keras: meta is NULL");
  memset(m, 0, sizeof *m);
  if (!path) return dlp_err_set(e, DLP_ERR_ARG, "keras: path is NULL");
  nn_h5_session s;
  nn_h5_begin(&s);
  hid_t f;
  uint64_t fsize = 0;
  int rc = h5_open(e, path, max_bytes, &f, &fsize);
  if (rc == DLP_OK) {
    rc = read_meta(e, path, f, m);
    H5Fclose(f);
  }
  nn_h5_end(&s);
  return rc;
}

static int read_config(dlp_err *e, const char *path, hid_t f, cJSON **out) {
  strlist l = {0};
  bool found;
  *out = NULL;
  int rc = h5_attr_strings(e, f, path, "model_config", &l, &found);
  if (rc == DLP_OK && (!found || l.n != 1))
    rc = dlp_err_set(e, DLP_ERR_FORMAT,
                     "%s: not a Keras model file (no 'model_config' "
                     "attribute%s)",
                     path,
                     H5Aexists(f, "layer_names") > 0
                         ? "; this is a weights-only file: load it into a zoo "
                           "architecture"
                         : "");
  if (rc == DLP_OK) {
    *out = cJSON_Parse(l.s[0]);
    if (!*out)
      rc =
          dlp_err_set(e, DLP_ERR_CORRUPT,
                      "%s: the model_config attribute is not valid JSON", path);
  }
  strlist_free(&l);
  return rc;
}

static void kbuild_free(kbuild *b) {
  for (int i = 0; i < b->n_layers; i++)
    free(b->layers[i].outs);
  free(b->layers);
}

static int load_model(dlp_err *e, const char *path, hid_t f, uint64_t fsize,
                      int h, int w, nn_graph **out) {
  cJSON *root = NULL;
  nn_keras_meta meta;
  int rc = read_config(e, path, f, &root);
  if (rc == DLP_OK) rc = read_meta(e, path, f, &meta);
  if (rc) {
    cJSON_Delete(root);
    return rc;
  }
  kbuild b = {.e = e, .path = path, .wroot = -1, .in_h = h, .in_w = w};
  b.def_h = meta.height;
  b.def_w = meta.width;
  b.budget = 4 * fsize + (1u << 20);
  const char *cls = jstr(root, "class_name");
  const cJSON *cfg = jget(root, "config");
  if (!cls || !cfg) {
    rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: model_config lacks class_name/config", path);
    goto done;
  }
  if (H5Lexists(f, "model_weights", H5P_DEFAULT) <= 0 ||
      (b.wroot = H5Gopen2(f, "model_weights", H5P_DEFAULT)) < 0) {
    H5Eclear2(H5E_DEFAULT);
    rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                     "%s: the file has a model config but no model_weights "
                     "group (saved without weights?)",
                     path);
    goto done;
  }
  if ((rc = nn_graph_new(e, &b.g))) goto done;
  if (strcmp(cls, "Sequential") == 0)
    rc = build_sequential(&b, cfg);
  else if (strcmp(cls, "Functional") == 0 || strcmp(cls, "Model") == 0)
    rc = build_functional(&b, cfg);
  else
    rc = dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                     "%s: model class '%s' is not supported (Sequential, "
                     "Functional and Model are)",
                     path, cls);
  if (rc == DLP_OK) {
    const char *mname = jstr(cfg, "name");
    if (mname && !(b.g->name = dlp_strdup(mname)))
      rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  }
  if (rc == DLP_OK && (rc = nn_graph_finalize(e, b.g)) != DLP_OK) {
    char msg[DLP_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", e ? e->msg : "");
    dlp_err_set(e, rc, "%s: %s", path, msg);
  }
  if (rc == DLP_OK) rc = apply_meta(e, path, &meta, b.g);
done:
  nn_keras_meta_clear(&meta);
  if (b.wroot >= 0) H5Gclose(b.wroot);
  kbuild_free(&b);
  cJSON_Delete(root);
  if (rc != DLP_OK) {
    nn_graph_free(b.g);
    b.g = NULL;
  }
  *out = b.g;
  return rc;
}

int nn_keras_load_file_sized(dlp_err *e, const char *path, uint64_t max_bytes,
                             int h, int w, nn_graph **out) {
  if (!out) return dlp_err_set(e, DLP_ERR_ARG, "keras: out is NULL");
  *out = NULL;
  if (!path) return dlp_err_set(e, DLP_ERR_ARG, "keras: path is NULL");
  if (h < 0 || w < 0 || h > (1 << 24) || w > (1 << 24))
    return dlp_err_set(e, DLP_ERR_ARG, "keras: bad input size %dx%d", h, w);
  nn_h5_session s;
  nn_h5_begin(&s);
  hid_t f;
  uint64_t fsize = 0;
  int rc = h5_open(e, path, max_bytes, &f, &fsize);
  if (rc == DLP_OK) {
    rc = load_model(e, path, f, fsize, h, w, out);
    H5Fclose(f);
  }
  nn_h5_end(&s);
  return rc;
}

int nn_keras_load_file(dlp_err *e, const char *path, uint64_t max_bytes,
                       nn_graph **out) {
  return nn_keras_load_file_sized(e, path, max_bytes, 0, 0, out);
}

/* ------------------------------------------------------------------------
 * Weights-only files into a graph built with Keras layer names
 * ------------------------------------------------------------------------ */

static const char *const WEIGHT_ROLES[] = {
    "kernel", "bias", "depthwise_kernel", "pointwise_kernel",
    "gamma",  "beta", "moving_mean",      "moving_variance"};

/* The role of a const named "<layer>/<role>", or NULL; *llen gets the
 * length of <layer>. */
static const char *const_role(const char *name, size_t *llen) {
  const char *s = strrchr(name, '/');
  if (!s || s == name) return NULL;
  for (size_t i = 0; i < sizeof WEIGHT_ROLES / sizeof WEIGHT_ROLES[0]; i++)
    if (strcmp(s + 1, WEIGHT_ROLES[i]) == 0) {
      *llen = (size_t)(s - name);
      return WEIGHT_ROLES[i];
    }
  return NULL;
}

/* The node that reads value v as input `slot`, or -1. */
static int consumer(const nn_graph *g, int v, int slot) {
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i].n_in > slot && g->nodes[i].in[slot] == v) return i;
  return -1;
}

/* The Keras file shape of graph const v with role r; *kind: 0 copy,
 * 1 HWIO->OIHW (ci, co in *ci, *co), 2 transpose a 2-D (out,in) weight. */
static void file_shape(const nn_graph *g, int v, const char *r, int *nd,
                       int64_t *d, int *kind, int64_t *ci, int64_t *co) {
  const nn_shape *s = &g->values[v].shape;
  *kind = 0;
  *nd = s->ndim;
  memcpy(d, s->dims, sizeof(int64_t) * (size_t)s->ndim);
  if (s->ndim == 4 && strcmp(r, "depthwise_kernel") == 0) {
    int n = consumer(g, v, 1);
    int64_t C = n >= 0 && g->nodes[n].op == NN_OP_CONV2D
                    ? g->nodes[n].attr.conv.groups
                    : s->dims[0];
    if (C < 1 || s->dims[0] % C) C = s->dims[0];
    d[0] = s->dims[2], d[1] = s->dims[3], d[2] = C, d[3] = s->dims[0] / C;
    *kind = 1, *ci = 1, *co = s->dims[0];
  } else if (s->ndim == 4) {
    d[0] = s->dims[2], d[1] = s->dims[3], d[2] = s->dims[1], d[3] = s->dims[0];
    *kind = 1, *ci = s->dims[1], *co = s->dims[0];
  } else if (s->ndim == 2) {
    int n = consumer(g, v, 1);
    if (n >= 0 && g->nodes[n].op == NN_OP_DENSE &&
        g->nodes[n].attr.dense.transb) {
      d[0] = s->dims[1], d[1] = s->dims[0];
      *kind = 2;
    }
  }
}

typedef struct wload {
  dlp_err *e;
  const char *path;
  nn_graph *g;
  hid_t f;
  uint64_t budget;
  bool *filled; /* per value: loaded from the file */
} wload;

static int load_one_weight(wload *w, hid_t grp, const char *gpath,
                           const char *lname, const char *wname, int v,
                           const char *role) {
  nn_graph *g = w->g;
  int nd, kind;
  int64_t d[NN_MAX_DIMS], ci = 0, co = 0;
  char who[700];
  snprintf(who, sizeof who, "%s: layer '%s'", w->path, lname);
  file_shape(g, v, role, &nd, d, &kind, &ci, &co);
  float *buf;
  int rc =
      h5_read_weight(w->e, who, grp, gpath, wname, nd, d, &w->budget, &buf);
  if (rc) return rc;
  float *dst = g->values[v].data;
  int64_t numel = nn_shape_numel(nd, d);
  if (kind == 1) {
    float *t = hwio_to_oihw(buf, d[0], d[1], ci, co);
    free(buf);
    if (!t) return dlp_err_set(w->e, DLP_ERR_NOMEM, "no memory");
    buf = t;
  } else if (kind == 2) {
    float *t = dlp_malloc_array((size_t)numel + 1, sizeof *t);
    if (!t) {
      free(buf);
      return dlp_err_set(w->e, DLP_ERR_NOMEM, "no memory");
    }
    for (int64_t i = 0; i < d[0]; i++)
      for (int64_t j = 0; j < d[1]; j++)
        t[j * d[0] + i] = buf[i * d[1] + j];
    free(buf);
    buf = t;
  }
  if (!dst) {
    free(buf);
    return dlp_err_set(w->e, DLP_ERR_INTERNAL, "const '%s' has no data",
                       g->values[v].name);
  }
  memcpy(dst, buf, (size_t)numel * sizeof(float));
  free(buf);
  w->filled[v] = true;
  return DLP_OK;
}

/* Loads the weights of file layer lname into the consts of graph layer
 * gname (the same name unless renumbered, see map_auto_names); *extra set
 * when the graph has no const for it at all; *dense_only when every weight
 * of it is rank <= 2. */
static int load_file_layer(wload *w, const char *lname, const char *gname,
                           bool *extra, bool *dense_only) {
  char gpath[600], why[200];
  snprintf(gpath, sizeof gpath, "/%s", lname);
  *extra = false;
  *dense_only = true;
  if (H5Lexists(w->f, lname, H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return dlp_err_set(w->e, DLP_ERR_CORRUPT,
                       "%s: layer_names lists '%s' but the file has no such "
                       "group",
                       w->path, lname);
  }
  hid_t grp = H5Gopen2(w->f, lname, H5P_DEFAULT);
  if (grp < 0)
    return dlp_err_set(w->e, DLP_ERR_CORRUPT, "%s: cannot open %s: %s", w->path,
                       gpath, h5_why(why));
  strlist names = {0};
  bool found;
  int rc = h5_attr_strings(w->e, grp, gpath, "weight_names", &names, &found);
  if (rc == DLP_OK && !found)
    rc = dlp_err_set(w->e, DLP_ERR_CORRUPT,
                     "%s: %s has no 'weight_names' attribute", w->path, gpath);
  int matched = 0;
  for (int i = 0; i < names.n && rc == DLP_OK; i++) {
    char role[64], cname[700];
    weight_role(names.s[i], role, sizeof role);
    snprintf(cname, sizeof cname, "%s/%s", gname, role);
    int v = nn_graph_find_value(w->g, cname);
    if (v < 0 || w->g->values[v].kind != NN_VALUE_CONST) continue;
    matched++;
    if (w->filled[v]) {
      rc = dlp_err_set(w->e, DLP_ERR_CORRUPT,
                       "%s: layer '%s' lists weight '%s' twice", w->path, lname,
                       role);
      break;
    }
    rc = load_one_weight(w, grp, gpath, lname, names.s[i], v, role);
  }
  if (rc == DLP_OK && matched < names.n) {
    /* Some weights have no const: fine only if none of the layer does. */
    if (matched > 0) {
      for (int i = 0; i < names.n; i++) {
        char role[64], cname[700];
        weight_role(names.s[i], role, sizeof role);
        snprintf(cname, sizeof cname, "%s/%s", gname, role);
        if (nn_graph_find_value(w->g, cname) < 0) {
          rc = dlp_err_set(w->e, DLP_ERR_SCHEMA,
                           "%s: layer '%s' has weight '%s' in the file, "
                           "which the graph's layer does not have",
                           w->path, lname, names.s[i]);
          break;
        }
      }
    } else {
      *extra = true;
      for (int i = 0; i < names.n && *dense_only; i++) {
        hid_t d = H5Dopen2(grp, names.s[i], H5P_DEFAULT);
        hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
        int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        if (nd < 0 || nd > 2) *dense_only = false;
        if (sp >= 0) H5Sclose(sp);
        if (d >= 0) H5Dclose(d);
      }
      H5Eclear2(H5E_DEFAULT);
    }
  }
  strlist_free(&names);
  H5Gclose(grp);
  return rc;
}

/* Splits an auto name "conv2d_12" into base "conv2d" and 12 ("conv2d" alone
 * is index 0, as tf.keras numbers). Returns the base length. */
static size_t auto_name(const char *s, long *idx) {
  size_t n = strlen(s), k = n;
  while (k > 0 && s[k - 1] >= '0' && s[k - 1] <= '9')
    k--;
  *idx = 0;
  if (k == n || k < 2 || s[k - 1] != '_' || n - k > 6) return n;
  *idx = strtol(s + k, NULL, 10);
  return k - 1;
}

/* The graph layer names that own layer weights, in first-const order. */
static int graph_layers(dlp_err *e, const nn_graph *g, strlist *out) {
  for (int v = 0; v < g->n_values; v++) {
    size_t llen;
    if (g->values[v].kind != NN_VALUE_CONST ||
        !const_role(g->values[v].name, &llen))
      continue;
    bool seen = false;
    for (int i = out->n - 1; i >= 0 && !seen; i--)
      seen = strlen(out->s[i]) == llen &&
             memcmp(out->s[i], g->values[v].name, llen) == 0;
    if (!seen && !strlist_push(out, g->values[v].name, llen))
      return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  }
  return DLP_OK;
}

/* The names in list l with auto-name base b (blen chars), sorted by their
 * number, into out[] (room for l->n); returns how many. */
static int base_members(const strlist *l, const char *b, size_t blen,
                        const char **out) {
  int n = 0;
  for (int i = 0; i < l->n; i++) {
    long idx;
    if (auto_name(l->s[i], &idx) != blen || strncmp(l->s[i], b, blen) != 0)
      continue;
    int k = n++;
    for (; k > 0; k--) { /* insertion by number */
      long prev;
      auto_name(out[k - 1], &prev);
      if (prev <= idx) break;
      out[k] = out[k - 1];
    }
    out[k] = l->s[i];
  }
  return n;
}

/* The official keras-applications files were written by Keras 2.0/2.1,
 * whose automatic layer names count from 1 ("conv2d_1" .. "conv2d_94"),
 * while tf.keras (and so the zoo) counts from 0 ("conv2d", "conv2d_1" ..);
 * Keras itself loads them by layer order. So for each auto-name base
 * ("conv2d", "batch_normalization", ...) whose graph and file names differ
 * as sets but agree in count, the k-th graph layer of that base (by number)
 * takes the k-th file layer's weights. Name matches alone would pair file
 * "conv2d_1" with the wrong graph layer. map[i] gets the graph name for file
 * layer i (NULL: as named). Shapes are still checked weight by weight. */
static int map_auto_names(dlp_err *e, const strlist *file, const strlist *gl,
                          const char **map) {
  for (int i = 0; i < file->n; i++)
    map[i] = NULL;
  const char **gb = dlp_calloc_array((size_t)gl->n + 1, sizeof *gb);
  const char **fb = dlp_calloc_array((size_t)file->n + 1, sizeof *fb);
  if (!gb || !fb) {
    free(gb);
    free(fb);
    return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  }
  for (int gi = 0; gi < gl->n; gi++) {
    long idx;
    size_t blen = auto_name(gl->s[gi], &idx);
    int ng = base_members(gl, gl->s[gi], blen, gb);
    if (gb[0] != gl->s[gi]) continue; /* each base once, from its first */
    int nf = base_members(file, gl->s[gi], blen, fb);
    bool same = ng == nf;
    for (int k = 0; k < ng && same; k++)
      same = strcmp(gb[k], fb[k]) == 0;
    if (same || ng != nf) continue; /* by name, or reported as missing */
    for (int k = 0; k < nf; k++)
      for (int i = 0; i < file->n; i++)
        if (file->s[i] == fb[k]) map[i] = gb[k];
  }
  free(gb);
  free(fb);
  return DLP_OK;
}

static int load_weights(wload *w) {
  nn_graph *g = w->g;
  strlist layers = {0};
  bool found;
  hid_t root = w->f;
  int rc = DLP_OK;
  hid_t mw = -1;
  /* A full-model file keeps them under model_weights. */
  if (H5Aexists(root, "layer_names") <= 0 &&
      H5Lexists(root, "model_weights", H5P_DEFAULT) > 0 &&
      (mw = H5Gopen2(root, "model_weights", H5P_DEFAULT)) >= 0)
    w->f = mw;
  H5Eclear2(H5E_DEFAULT);
  rc = h5_attr_strings(w->e, w->f, w->path, "layer_names", &layers, &found);
  if (rc == DLP_OK && !found)
    rc = dlp_err_set(w->e, DLP_ERR_FORMAT,
                     "%s: not a Keras weights file (no 'layer_names' "
                     "attribute)",
                     w->path);
  strlist gl = {0};
  const char **map = NULL;
  if (rc == DLP_OK) rc = graph_layers(w->e, g, &gl);
  if (rc == DLP_OK &&
      !(map = dlp_calloc_array((size_t)layers.n + 1, sizeof *map)))
    rc = dlp_err_set(w->e, DLP_ERR_NOMEM, "no memory");
  if (rc == DLP_OK) rc = map_auto_names(w->e, &layers, &gl, map);
  const char *first_extra = NULL;
  bool extra_not_top = false;
  for (int i = 0; i < layers.n && rc == DLP_OK; i++) {
    bool extra, dense_only;
    rc = load_file_layer(w, layers.s[i], map[i] ? map[i] : layers.s[i], &extra,
                         &dense_only);
    if (rc == DLP_OK && extra) {
      if (!first_extra || (!dense_only && !extra_not_top))
        first_extra = layers.s[i];
      if (!dense_only) extra_not_top = true;
    }
  }
  if (rc == DLP_OK && extra_not_top)
    rc = dlp_err_set(w->e, DLP_ERR_SCHEMA,
                     "%s: the file has weights for layer '%s', which the "
                     "graph does not have (weights for another "
                     "architecture?)",
                     w->path, first_extra);
  /* Every layer weight of the graph must have been filled, except a batch
   * norm's gamma/beta when its file layer lacks them (scale/center off). */
  for (int v = 0; v < g->n_values && rc == DLP_OK; v++) {
    size_t llen;
    const char *role;
    if (g->values[v].kind != NN_VALUE_CONST || w->filled[v] ||
        !(role = const_role(g->values[v].name, &llen)))
      continue;
    char lname[600];
    snprintf(lname, sizeof lname, "%.*s", (int)llen, g->values[v].name);
    bool in_file = false;
    for (int i = 0; i < layers.n && !in_file; i++)
      in_file = strcmp(map[i] ? map[i] : layers.s[i], lname) == 0;
    if (in_file && (strcmp(role, "gamma") == 0 || strcmp(role, "beta") == 0))
      continue;
    if (!in_file)
      rc = dlp_err_set(w->e, DLP_ERR_NOT_FOUND,
                       "%s: layer '%s' of the graph is not in the file%s",
                       w->path, lname,
                       g->values[v].shape.ndim == 2
                           ? " (a _notop weights file? it has no classifier: "
                             "use the architecture without its top)"
                           : "");
    else
      rc = dlp_err_set(w->e, DLP_ERR_NOT_FOUND,
                       "%s: layer '%s' has no weight '%s' in the file", w->path,
                       lname, role);
  }
  strlist_free(&layers);
  strlist_free(&gl);
  free(map);
  if (mw >= 0) H5Gclose(mw);
  w->f = root;
  return rc;
}

int nn_keras_load_weights(dlp_err *e, const char *path, uint64_t max_bytes,
                          nn_graph *g) {
  if (!path || !g) return dlp_err_set(e, DLP_ERR_ARG, "keras: NULL argument");
  wload w = {.e = e, .path = path, .g = g};
  w.filled = dlp_calloc_array((size_t)g->n_values + 1, sizeof *w.filled);
  if (!w.filled) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  nn_h5_session s;
  nn_h5_begin(&s);
  uint64_t fsize = 0;
  int rc = h5_open(e, path, max_bytes, &w.f, &fsize);
  if (rc == DLP_OK) {
    w.budget = 4 * fsize + (1u << 20);
    rc = load_weights(&w);
    H5Fclose(w.f);
  }
  nn_h5_end(&s);
  free(w.filled);
  return rc;
}

int nn_keras_file_layer_names(dlp_err *e, const char *path, uint64_t max_bytes,
                              char ***names, int *n) {
  if (!names || !n || !path)
    return dlp_err_set(e, DLP_ERR_ARG, "keras: NULL argument");
  *names = NULL;
  *n = 0;
  nn_h5_session s;
  nn_h5_begin(&s);
  hid_t f, loc = -1;
  uint64_t fsize;
  strlist l = {0};
  bool found = false;
  int rc = h5_open(e, path, max_bytes, &f, &fsize);
  if (rc == DLP_OK) {
    loc = f;
    if (H5Aexists(f, "layer_names") <= 0 &&
        H5Lexists(f, "model_weights", H5P_DEFAULT) > 0)
      loc = H5Gopen2(f, "model_weights", H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    if (loc >= 0) rc = h5_attr_strings(e, loc, path, "layer_names", &l, &found);
    if (rc == DLP_OK && !found)
      rc = dlp_err_set(e, DLP_ERR_FORMAT,
                       "%s: not a Keras file (no 'layer_names')", path);
    if (loc >= 0 && loc != f) H5Gclose(loc);
    H5Fclose(f);
  }
  nn_h5_end(&s);
  if (rc == DLP_OK) {
    *names = l.s;
    *n = l.n;
  } else {
    strlist_free(&l);
  }
  return rc;
}

void nn_keras_names_free(char **names, int n) {
  for (int i = 0; i < n; i++)
    free(names[i]);
  free(names);
}
