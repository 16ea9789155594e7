/* onnx_fold.c - constant folding of small int64/float ONNX computations
 * (Shape arithmetic, PyTorch's pad amounts); hand-written because no
 * library evaluates ONNX ops on host tensors from C, and these few ops on
 * a handful of elements need only plain loops. */
#include "onnx_fold.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ox_ft_free(ox_ft *t) {
  if (!t) return;
  free(t->i);
  free(t->f);
  free(t->batch);
  memset(t, 0, sizeof *t);
}

bool ox_ft_has_batch(const ox_ft *t) {
  if (!t->batch) return false;
  for (int64_t k = 0; k < t->numel; k++)
    if (t->batch[k]) return true;
  return false;
}

int ox_ft_alloc(dlp_err *e, ox_ft *t, bool is_float, int ndim,
                const int64_t *dims, bool marks, int64_t *budget) {
  memset(t, 0, sizeof *t);
  if (ndim < 0 || ndim > NN_MAX_DIMS)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "a folded tensor of rank %d (dlp handles at most %d)",
                       ndim, NN_MAX_DIMS);
  for (int k = 0; k < ndim; k++)
    if (dims[k] < 0)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "dim %d is negative (%lld)", k,
                         (long long)dims[k]);
  int64_t n = nn_shape_numel(ndim, dims);
  char sb[96];
  if (n < 0 || n > *budget)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE,
                       "a constant of shape %s is more than dlp folds (at "
                       "most %lld elements in all, %lld left)",
                       nn_shape_str(ndim, dims, sb, sizeof sb),
                       (long long)OX_FOLD_BUDGET, (long long)*budget);
  size_t cnt = n > 0 ? (size_t)n : 1;
  if (is_float)
    t->f = dlp_calloc_array(cnt, sizeof *t->f);
  else
    t->i = dlp_calloc_array(cnt, sizeof *t->i);
  if (marks && !is_float) t->batch = dlp_calloc_array(cnt, 1);
  if ((is_float ? !t->f : !t->i) || (marks && !is_float && !t->batch)) {
    ox_ft_free(t);
    return dlp_err_set(e, DLP_ERR_NOMEM, "out of memory folding constants");
  }
  t->is_float = is_float;
  t->ndim = ndim;
  for (int k = 0; k < NN_MAX_DIMS; k++)
    t->dims[k] = k < ndim ? dims[k] : 1;
  t->numel = n;
  *budget -= n;
  return DLP_OK;
}

/* Allocates out like in (kind and marks) with new dims. */
static int alloc_like(dlp_err *e, const ox_ft *in, int ndim,
                      const int64_t *dims, ox_ft *out, int64_t *budget) {
  return ox_ft_alloc(e, out, in->is_float, ndim, dims, in->batch != NULL,
                     budget);
}

static void put(ox_ft *o, int64_t k, const ox_ft *s, int64_t j) {
  if (o->is_float)
    o->f[k] = s->f[j];
  else
    o->i[k] = s->i[j];
  if (o->batch) o->batch[k] = s->batch ? s->batch[j] : 0;
}

static void unravel(int64_t k, int nd, const int64_t *dims, int64_t *idx) {
  for (int a = nd - 1; a >= 0; a--) {
    idx[a] = dims[a] ? k % dims[a] : 0;
    k = dims[a] ? k / dims[a] : 0;
  }
}

static int64_t ravel(int nd, const int64_t *dims, const int64_t *idx) {
  int64_t k = 0;
  for (int a = 0; a < nd; a++)
    k = k * dims[a] + idx[a];
  return k;
}

static int norm_axis(dlp_err *e, int64_t axis, int rank, int64_t *out) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (axis < -(int64_t)rank || a < 0 || a >= rank)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "axis %lld is outside rank %d",
                       (long long)axis, rank);
  *out = a;
  return DLP_OK;
}

static int no_batch(dlp_err *e, const ox_ft *t) {
  if (ox_ft_has_batch(t))
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "arithmetic on the symbolic batch size is not "
                       "supported (export with a fixed batch, or use "
                       "reshape(x.shape[0], -1) / flatten)");
  return DLP_OK;
}

/* One integer operation with overflow and division checks. */
static int int_op(dlp_err *e, char op, int64_t a, int64_t b, int64_t *r) {
  bool ovf = false;
  switch (op) {
  case '+':
    ovf = __builtin_add_overflow(a, b, r);
    break;
  case '-':
    ovf = __builtin_sub_overflow(a, b, r);
    break;
  case '*':
    ovf = __builtin_mul_overflow(a, b, r);
    break;
  default:
    if (b == 0)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "integer division by zero");
    ovf = a == INT64_MIN && b == -1;
    if (!ovf) *r = a / b;
    break;
  }
  if (ovf)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "integer overflow in %lld %c %lld",
                       (long long)a, op, (long long)b);
  return DLP_OK;
}

int ox_fold_binary(dlp_err *e, char op, const ox_ft *a, const ox_ft *b,
                   ox_ft *out, int64_t *budget) {
  memset(out, 0, sizeof *out);
  int rc;
  if (a->is_float != b->is_float)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "the inputs have different types (float32 and int64)");
  if ((rc = no_batch(e, a)) || (rc = no_batch(e, b))) return rc;
  int r = a->ndim > b->ndim ? a->ndim : b->ndim;
  int64_t dims[NN_MAX_DIMS], da[NN_MAX_DIMS], db[NN_MAX_DIMS];
  for (int k = 0; k < r; k++) {
    int ka = k - (r - a->ndim), kb = k - (r - b->ndim);
    da[k] = ka >= 0 ? a->dims[ka] : 1;
    db[k] = kb >= 0 ? b->dims[kb] : 1;
    if (da[k] != db[k] && da[k] != 1 && db[k] != 1)
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "shapes do not broadcast (dim %d: %lld and %lld)", k,
                         (long long)da[k], (long long)db[k]);
    dims[k] = da[k] == 1 ? db[k] : da[k];
  }
  if ((rc = ox_ft_alloc(e, out, a->is_float, r, dims, false, budget)))
    return rc;
  int64_t idx[NN_MAX_DIMS], ia[NN_MAX_DIMS], ib[NN_MAX_DIMS];
  for (int64_t k = 0; k < out->numel; k++) {
    unravel(k, r, dims, idx);
    for (int d = 0; d < r; d++) {
      ia[d] = da[d] == 1 ? 0 : idx[d];
      ib[d] = db[d] == 1 ? 0 : idx[d];
    }
    int64_t ja = ravel(r, da, ia), jb = ravel(r, db, ib);
    if (out->is_float) {
      float x = a->f[ja], y = b->f[jb];
      out->f[k] = op == '+'   ? x + y
                  : op == '-' ? x - y
                  : op == '*' ? x * y
                              : x / y;
    } else if ((rc = int_op(e, op, a->i[ja], b->i[jb], &out->i[k]))) {
      ox_ft_free(out);
      return rc;
    }
  }
  return DLP_OK;
}

int ox_fold_cast(dlp_err *e, const ox_ft *in, bool to_float, ox_ft *out,
                 int64_t *budget) {
  memset(out, 0, sizeof *out);
  int rc;
  if (to_float && !in->is_float && (rc = no_batch(e, in))) return rc;
  bool marks = !to_float && in->batch;
  if ((rc = ox_ft_alloc(e, out, to_float, in->ndim, in->dims, marks, budget)))
    return rc;
  for (int64_t k = 0; k < in->numel; k++) {
    if (to_float) {
      out->f[k] = in->is_float ? in->f[k] : (float)in->i[k];
    } else if (!in->is_float) {
      put(out, k, in, k);
    } else {
      float v = in->f[k];
      /* 2^63 is exactly representable: anything below it fits. */
      if (!(v > -9223372036854775808.0f && v < 9223372036854775808.0f)) {
        ox_ft_free(out);
        return dlp_err_set(e, DLP_ERR_CORRUPT,
                           "cannot cast %g to int64 (not finite or out of "
                           "range)",
                           (double)v);
      }
      out->i[k] = (int64_t)v;
    }
  }
  return DLP_OK;
}

int ox_fold_concat(dlp_err *e, const ox_ft *const *ins, int n, int64_t axis,
                   ox_ft *out, int64_t *budget) {
  memset(out, 0, sizeof *out);
  if (n < 1) return dlp_err_set(e, DLP_ERR_CORRUPT, "no inputs");
  const ox_ft *f = ins[0];
  if (f->ndim < 1)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "cannot concatenate scalars");
  int64_t ax;
  int rc = norm_axis(e, axis, f->ndim, &ax);
  if (rc) return rc;
  int64_t dims[NN_MAX_DIMS] = {0};
  memcpy(dims, f->dims, sizeof dims);
  dims[ax] = 0;
  bool marks = false;
  for (int j = 0; j < n; j++) {
    const ox_ft *t = ins[j];
    if (t->is_float != f->is_float || t->ndim != f->ndim)
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "input %d has another type or rank than input 1",
                         j + 1);
    for (int d = 0; d < f->ndim; d++)
      if (d != ax && t->dims[d] != f->dims[d])
        return dlp_err_set(e, DLP_ERR_CORRUPT,
                           "input %d: dim %d is %lld, input 1 has %lld", j + 1,
                           d, (long long)t->dims[d], (long long)f->dims[d]);
    if (t->dims[ax] > OX_FOLD_BUDGET)
      return dlp_err_set(e, DLP_ERR_TOO_LARGE, "input %d is too large", j + 1);
    dims[ax] += t->dims[ax];
    marks = marks || t->batch;
  }
  if ((rc = ox_ft_alloc(e, out, f->is_float, f->ndim, dims, marks, budget)))
    return rc;
  if (out->numel == 0) return DLP_OK; /* (the products below need dims > 0) */
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; d++)
    outer *= dims[d];
  for (int d = (int)ax + 1; d < f->ndim; d++)
    inner *= dims[d];
  int64_t k = 0;
  for (int64_t o = 0; o < outer; o++)
    for (int j = 0; j < n; j++) {
      int64_t run = ins[j]->dims[ax] * inner;
      for (int64_t q = 0; q < run; q++)
        put(out, k++, ins[j], o * run + q);
    }
  return DLP_OK;
}

/* A copy of in's data under new dims (the element count already equal). */
static int redim(dlp_err *e, const ox_ft *in, int ndim, const int64_t *dims,
                 ox_ft *out, int64_t *budget) {
  int rc = alloc_like(e, in, ndim, dims, out, budget);
  if (rc) return rc;
  for (int64_t k = 0; k < in->numel; k++)
    put(out, k, in, k);
  return DLP_OK;
}

int ox_fold_reshape(dlp_err *e, const ox_ft *in, const int64_t *shape, int n,
                    ox_ft *out, int64_t *budget) {
  memset(out, 0, sizeof *out);
  if (n < 0 || n > NN_MAX_DIMS)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "target rank %d (dlp handles at most %d)", n,
                       NN_MAX_DIMS);
  int64_t dims[NN_MAX_DIMS] = {0};
  int infer = -1;
  for (int k = 0; k < n; k++) {
    dims[k] = shape[k];
    if (shape[k] == 0) {
      if (k >= in->ndim)
        return dlp_err_set(e, DLP_ERR_CORRUPT,
                           "target dim %d is 0 (copy) but the input has rank "
                           "%d",
                           k, in->ndim);
      dims[k] = in->dims[k];
    } else if (shape[k] == -1) {
      if (infer >= 0)
        return dlp_err_set(e, DLP_ERR_CORRUPT,
                           "the target shape has more than one -1");
      infer = k;
      dims[k] = 1;
    } else if (shape[k] < -1) {
      return dlp_err_set(e, DLP_ERR_CORRUPT, "target dim %d is %lld", k,
                         (long long)shape[k]);
    }
  }
  int64_t known = nn_shape_numel(n, dims);
  char sa[96], sb[96];
  if (infer >= 0 && known > 0 && in->numel % known == 0)
    dims[infer] = in->numel / known;
  if (known < 0 || nn_shape_numel(n, dims) != in->numel ||
      (infer >= 0 && known == 0))
    return dlp_err_set(
        e, DLP_ERR_CORRUPT, "cannot reshape %s (%lld elements) to %s",
        nn_shape_str(in->ndim, in->dims, sa, sizeof sa), (long long)in->numel,
        nn_shape_str(n, shape, sb, sizeof sb));
  return redim(e, in, n, dims, out, budget);
}

int ox_fold_transpose(dlp_err *e, const ox_ft *in, const int64_t *perm,
                      int nperm, ox_ft *out, int64_t *budget) {
  memset(out, 0, sizeof *out);
  int r = in->ndim;
  int64_t p[NN_MAX_DIMS], dims[NN_MAX_DIMS];
  bool seen[NN_MAX_DIMS] = {false};
  if (perm && nperm != r)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "perm has %d entries for rank %d",
                       nperm, r);
  for (int k = 0; k < r; k++) {
    p[k] = perm ? perm[k] : r - 1 - k;
    if (p[k] < 0 || p[k] >= r || seen[p[k]])
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "perm is not a permutation of 0..%d", r - 1);
    seen[p[k]] = true;
    dims[k] = in->dims[p[k]];
  }
  int rc = alloc_like(e, in, r, dims, out, budget);
  if (rc) return rc;
  int64_t idx[NN_MAX_DIMS], src[NN_MAX_DIMS];
  for (int64_t k = 0; k < out->numel; k++) {
    unravel(k, r, dims, idx);
    for (int d = 0; d < r; d++)
      src[p[d]] = idx[d];
    put(out, k, in, ravel(r, in->dims, src));
  }
  return DLP_OK;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

int ox_fold_slice(dlp_err *e, const ox_ft *in, const int64_t *starts,
                  const int64_t *ends, const int64_t *axes,
                  const int64_t *steps, int n, ox_ft *out, int64_t *budget) {
  memset(out, 0, sizeof *out);
  int r = in->ndim;
  int64_t start[NN_MAX_DIMS], step[NN_MAX_DIMS], dims[NN_MAX_DIMS];
  bool seen[NN_MAX_DIMS] = {false};
  if (n > r)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "%d axes to slice for rank %d", n,
                       r);
  for (int d = 0; d < r; d++) {
    start[d] = 0;
    step[d] = 1;
    dims[d] = in->dims[d];
  }
  for (int k = 0; k < n; k++) {
    int64_t ax = k;
    int rc = axes ? norm_axis(e, axes[k], r, &ax) : DLP_OK;
    if (rc) return rc;
    if (seen[ax])
      return dlp_err_set(e, DLP_ERR_CORRUPT, "axis %lld is sliced twice",
                         (long long)ax);
    seen[ax] = true;
    int64_t dim = in->dims[ax], st = steps ? steps[k] : 1;
    if (st == 0) return dlp_err_set(e, DLP_ERR_CORRUPT, "a step is 0");
    /* A step longer than the axis takes at most the first element. */
    st = clamp64(st, -(dim + 1), dim + 1);
    int64_t s = starts[k], en = ends[k];
    if (s < 0) s += dim;
    if (en < 0) en += dim;
    int64_t cnt = 0;
    if (dim > 0 && st > 0) {
      s = clamp64(s, 0, dim);
      en = clamp64(en, 0, dim);
      cnt = en > s ? (en - s + st - 1) / st : 0;
    } else if (dim > 0) {
      s = clamp64(s, 0, dim - 1);
      en = clamp64(en, -1, dim - 1);
      cnt = s > en ? (s - en - st - 1) / -st : 0;
    }
    start[ax] = s;
    step[ax] = st;
    dims[ax] = cnt;
  }
  int rc = alloc_like(e, in, r, dims, out, budget);
  if (rc) return rc;
  int64_t idx[NN_MAX_DIMS];
  for (int64_t k = 0; k < out->numel; k++) {
    unravel(k, r, dims, idx);
    for (int d = 0; d < r; d++)
      idx[d] = start[d] + idx[d] * step[d];
    put(out, k, in, ravel(r, in->dims, idx));
  }
  return DLP_OK;
}

int ox_fold_gather(dlp_err *e, const ox_ft *data, const ox_ft *indices,
                   int64_t axis, ox_ft *out, int64_t *budget) {
  memset(out, 0, sizeof *out);
  int rc;
  if (indices->is_float)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "the indices are not integers");
  if ((rc = no_batch(e, indices))) return rc;
  if (data->ndim < 1)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "cannot gather from a scalar");
  int64_t ax;
  if ((rc = norm_axis(e, axis, data->ndim, &ax))) return rc;
  int r = data->ndim - 1 + indices->ndim;
  if (r > NN_MAX_DIMS)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "the result has rank %d (dlp handles at most %d)", r,
                       NN_MAX_DIMS);
  int64_t dims[NN_MAX_DIMS], d = data->dims[ax];
  int k = 0;
  for (int a = 0; a < ax; a++)
    dims[k++] = data->dims[a];
  for (int a = 0; a < indices->ndim; a++)
    dims[k++] = indices->dims[a];
  for (int a = (int)ax + 1; a < data->ndim; a++)
    dims[k++] = data->dims[a];
  for (int64_t j = 0; j < indices->numel; j++)
    if (indices->i[j] < -d || indices->i[j] >= d)
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "index %lld is outside an axis of %lld",
                         (long long)indices->i[j], (long long)d);
  if ((rc = alloc_like(e, data, r, dims, out, budget))) return rc;
  if (out->numel == 0) return DLP_OK;
  int64_t outer = 1, inner = 1, m = indices->numel;
  for (int a = 0; a < ax; a++)
    outer *= data->dims[a];
  for (int a = (int)ax + 1; a < data->ndim; a++)
    inner *= data->dims[a];
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < m; j++) {
      int64_t ix = indices->i[j] < 0 ? indices->i[j] + d : indices->i[j];
      for (int64_t q = 0; q < inner; q++)
        put(out, (o * m + j) * inner + q, data, (o * d + ix) * inner + q);
    }
  return DLP_OK;
}

int ox_fold_unsqueeze(dlp_err *e, const ox_ft *in, const int64_t *axes, int n,
                      ox_ft *out, int64_t *budget) {
  memset(out, 0, sizeof *out);
  int r = in->ndim + n;
  if (n < 0 || r > NN_MAX_DIMS)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "the result has rank %d (dlp handles at most %d)", r,
                       NN_MAX_DIMS);
  bool ins[NN_MAX_DIMS] = {false};
  for (int k = 0; k < n; k++) {
    int64_t ax = 0;
    int rc = norm_axis(e, axes[k], r, &ax);
    if (rc) return rc;
    if (ins[ax])
      return dlp_err_set(e, DLP_ERR_CORRUPT, "axis %lld is repeated",
                         (long long)axes[k]);
    ins[ax] = true;
  }
  int64_t dims[NN_MAX_DIMS];
  for (int d = 0, j = 0; d < r; d++)
    dims[d] = ins[d] ? 1 : in->dims[j++];
  return redim(e, in, r, dims, out, budget);
}

int ox_fold_squeeze(dlp_err *e, const ox_ft *in, const int64_t *axes, int n,
                    ox_ft *out, int64_t *budget) {
  memset(out, 0, sizeof *out);
  bool drop[NN_MAX_DIMS] = {false};
  if (!axes)
    for (int d = 0; d < in->ndim; d++)
      drop[d] = in->dims[d] == 1;
  for (int k = 0; axes && k < n; k++) {
    int64_t ax = 0;
    int rc = norm_axis(e, axes[k], in->ndim, &ax);
    if (rc) return rc;
    if (in->dims[ax] != 1)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "axis %lld has size %lld, not 1",
                         (long long)axes[k], (long long)in->dims[ax]);
    drop[ax] = true;
  }
  int64_t dims[NN_MAX_DIMS];
  int r = 0;
  for (int d = 0; d < in->ndim; d++)
    if (!drop[d]) dims[r++] = in->dims[d];
  return redim(e, in, r, dims, out, budget);
}

int ox_fold_fill(dlp_err *e, const int64_t *dims, int n, const ox_ft *value,
                 ox_ft *out, int64_t *budget) {
  memset(out, 0, sizeof *out);
  if (value->numel != 1)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "the value has %lld elements, not 1",
                       (long long)value->numel);
  int rc = ox_ft_alloc(e, out, value->is_float, n, dims, false, budget);
  if (rc) return rc;
  for (int64_t k = 0; k < out->numel; k++)
    put(out, k, value, 0);
  return DLP_OK;
}
