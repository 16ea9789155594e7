/* stage_indexer.c - StringIndexer (labels -> indices, MLlib's orders and
 * handleInvalid) and IndexToString (indices -> labels). */
#include "stage.h"

#include "frame/frame.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A label cell as text: strings as they are, int64 as decimal (buf holds
 * it). NULL for a null cell. */
static const char *label_text(const dlp_column *c, size_t row, char buf[24]) {
  if (!c->valid[row]) return NULL;
  if (c->type == DLP_TYPE_STRING) return c->u.s[row];
  snprintf(buf, 24, "%" PRId64, c->u.i[row]);
  return buf;
}

/* The label column (string or int64) named by inputCol, or NULL. */
static const dlp_column *label_column(dlp_ctx *ctx, const dlp_stage *s,
                                      const dlp_frame *f) {
  long c = ml_need_column(ctx, s, f, "inputCol");
  if (c < 0) return NULL;
  const dlp_column *col = &f->cols[c];
  if (col->type == DLP_TYPE_STRING || col->type == DLP_TYPE_INT64) return col;
  dlp_fail(ctx, DLP_ERR_SCHEMA,
           "%s: inputCol '%s' holds %s; labels must be "
           "strings or int64",
           s->cls->name, col->name, dlp_type_name(col->type));
  return NULL;
}

typedef struct lab_count {
  const char *s;
  size_t count;
} lab_count;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}
static int cmp_freq_desc(const void *a, const void *b) {
  const lab_count *x = a, *y = b;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return strcmp(x->s, y->s);
}
static int cmp_freq_asc(const void *a, const void *b) {
  const lab_count *x = a, *y = b;
  if (x->count != y->count) return x->count < y->count ? -1 : 1;
  return strcmp(x->s, y->s);
}
static int cmp_alpha_asc(const void *a, const void *b) {
  return strcmp(((const lab_count *)a)->s, ((const lab_count *)b)->s);
}
static int cmp_alpha_desc(const void *a, const void *b) {
  return -cmp_alpha_asc(a, b);
}

/* The distinct labels of the non-null cells with their counts, in order.
 * texts keeps the int64 labels' decimal text alive. */
static int count_labels(dlp_ctx *ctx, const dlp_stage *s, const dlp_column *c,
                        size_t n, char *texts, lab_count **out, size_t *nout) {
  const char **v = dlp_malloc_array(n ? n : 1, sizeof *v);
  lab_count *lc = dlp_malloc_array(n ? n : 1, sizeof *lc);
  if (!v || !lc) {
    free(v);
    free(lc);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory to count %zu labels", n);
  }
  int skip_null = strcmp(ml_stage_param(s, "handleInvalid"), "error") != 0;
  size_t m = 0, k = 0;
  for (size_t r = 0; r < n; r++) {
    const char *t = label_text(c, r, texts + 24 * r);
    if (t) {
      v[m++] = t;
    } else if (!skip_null) {
      free(v);
      free(lc);
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "StringIndexer: row %zu has a null "
                      "label in '%s' (set handleInvalid to skip or keep)",
                      r, c->name);
    }
  }
  qsort(v, m, sizeof *v, cmp_str);
  for (size_t i = 0; i < m; i++) {
    if (k && strcmp(lc[k - 1].s, v[i]) == 0)
      lc[k - 1].count++;
    else
      lc[k++] = (lab_count){v[i], 1};
  }
  free(v);
  const char *order = ml_stage_param(s, "stringOrderType");
  int (*cmp)(const void *, const void *) =
      strcmp(order, "frequencyAsc") == 0   ? cmp_freq_asc
      : strcmp(order, "alphabetAsc") == 0  ? cmp_alpha_asc
      : strcmp(order, "alphabetDesc") == 0 ? cmp_alpha_desc
                                           : cmp_freq_desc;
  qsort(lc, k, sizeof *lc, cmp);
  *out = lc;
  *nout = k;
  return DLP_OK;
}

static int make_model(dlp_ctx *ctx, const dlp_stage *s, const lab_count *lc,
                      size_t k, dlp_stage **out) {
  dlp_stage *m;
  int rc = ml_stage_make(ctx, ml_class_find("StringIndexerModel"), &m);
  if (rc == DLP_OK) rc = ml_stage_copy_params(ctx, m, s);
  if (rc == DLP_OK) {
    m->labels = dlp_calloc_array(k ? k : 1, sizeof *m->labels);
    if (!m->labels) rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for labels");
  }
  for (size_t i = 0; rc == DLP_OK && i < k; i++, m->n_labels++)
    if (!(m->labels[i] = dlp_strdup(lc[i].s)))
      rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for labels");
  if (rc != DLP_OK) {
    dlp_stage_free(m);
    return rc;
  }
  *out = m;
  return DLP_OK;
}

int ml_indexer_fit(dlp_ctx *ctx, const dlp_stage *s, const dlp_frame *data,
                   dlp_stage **out) {
  const dlp_column *c = label_column(ctx, s, data);
  if (!c) return dlp_errcode(ctx);
  size_t n = data->nrows;
  char *texts = NULL;
  if (c->type == DLP_TYPE_INT64 && !(texts = dlp_malloc_array(n ? n : 1, 24)))
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu labels", n);
  lab_count *lc = NULL;
  size_t k = 0;
  int rc = count_labels(ctx, s, c, n, texts, &lc, &k);
  if (rc == DLP_OK && k == 0)
    rc = dlp_fail(ctx, DLP_ERR_ARG,
                  "StringIndexer: column '%s' has no labels "
                  "to index (%zu rows)",
                  c->name, n);
  if (rc == DLP_OK) rc = make_model(ctx, s, lc, k, out);
  free(lc);
  free(texts);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

/* --- StringIndexerModel.transform: a hash of label -> index -------------- */

typedef struct lab_hash {
  size_t *slot; /* index + 1, 0 = empty */
  size_t mask;
  char *const *labels;
} lab_hash;

static uint64_t hash_str(const char *s) { return dlp_hash64(s, strlen(s), 7); }

static int hash_build(lab_hash *h, char *const *labels, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n)
    cap *= 2;
  h->slot = calloc(cap, sizeof *h->slot);
  if (!h->slot) return DLP_ERR_NOMEM;
  h->mask = cap - 1;
  h->labels = labels;
  for (size_t i = 0; i < n; i++) {
    size_t j = (size_t)hash_str(labels[i]) & h->mask;
    while (h->slot[j])
      j = (j + 1) & h->mask;
    h->slot[j] = i + 1;
  }
  return DLP_OK;
}

/* The index of label t, or -1. */
static long hash_find(const lab_hash *h, const char *t) {
  for (size_t j = (size_t)hash_str(t) & h->mask; h->slot[j];
       j = (j + 1) & h->mask)
    if (strcmp(h->labels[h->slot[j] - 1], t) == 0) return (long)h->slot[j] - 1;
  return -1;
}

/* idx[r] = the label index of row r, or -1 for a null/unseen label (an
 * error unless handleInvalid says otherwise; keep gives n_labels). */
static int index_rows(dlp_ctx *ctx, const dlp_stage *s, const dlp_column *c,
                      size_t n, double *idx, size_t *n_invalid) {
  lab_hash h;
  if (hash_build(&h, s->labels, s->n_labels) != DLP_OK)
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the label index");
  const char *hi = ml_stage_param(s, "handleInvalid");
  int rc = DLP_OK;
  *n_invalid = 0;
  for (size_t r = 0; rc == DLP_OK && r < n; r++) {
    char buf[24];
    const char *t = label_text(c, r, buf);
    long i = t ? hash_find(&h, t) : -1;
    if (i >= 0) {
      idx[r] = (double)i;
    } else if (strcmp(hi, "keep") == 0) {
      idx[r] = (double)s->n_labels;
    } else if (strcmp(hi, "skip") == 0) {
      idx[r] = -1;
      (*n_invalid)++;
    } else if (t) {
      rc = dlp_fail(ctx, DLP_ERR_ARG,
                    "StringIndexerModel: unseen label '%s' "
                    "in row %zu of '%s' (set handleInvalid to skip or keep)",
                    t, r, c->name);
    } else {
      rc = dlp_fail(ctx, DLP_ERR_ARG,
                    "StringIndexerModel: row %zu has a null "
                    "label in '%s' (set handleInvalid to skip or keep)",
                    r, c->name);
    }
  }
  free(h.slot);
  return rc;
}

/* Drops the rows whose idx is -1 (from the frame and from idx). */
static int drop_invalid(dlp_ctx *ctx, dlp_frame **f, double *idx) {
  size_t n = (*f)->nrows, k = 0;
  size_t *keep = dlp_malloc_array(n ? n : 1, sizeof *keep);
  if (!keep) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu rows", n);
  for (size_t r = 0; r < n; r++)
    if (idx[r] >= 0) {
      idx[k] = idx[r];
      keep[k++] = r;
    }
  dlp_frame *out;
  int rc = dlp_frame_take(ctx, *f, keep, k, &out);
  free(keep);
  if (rc != DLP_OK) return rc;
  dlp_frame_free(*f);
  *f = out;
  return DLP_OK;
}

int ml_indexer_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f) {
  /* Unlabelled data: nothing to index, the rows are only predicted. */
  if (dlp_frame_col_index(*f, ml_stage_param(s, "inputCol")) < 0)
    return dlp_ok(ctx);
  const dlp_column *c = label_column(ctx, s, *f);
  if (!c) return dlp_errcode(ctx);
  size_t n = (*f)->nrows, n_invalid = 0;
  double *idx = dlp_malloc_array(n ? n : 1, sizeof *idx);
  if (!idx) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu rows", n);
  int rc = index_rows(ctx, s, c, n, idx, &n_invalid);
  if (rc == DLP_OK && n_invalid) rc = drop_invalid(ctx, f, idx);
  long oc = rc == DLP_OK
                ? ml_add_output(ctx, s, *f, "outputCol", DLP_TYPE_DOUBLE, 0)
                : -1;
  if (oc >= 0) {
    dlp_column *o = &(*f)->cols[oc];
    for (size_t r = 0; r < (*f)->nrows; r++) {
      o->u.d[r] = idx[r];
      o->valid[r] = 1;
    }
  }
  free(idx);
  return oc >= 0 ? dlp_ok(ctx) : dlp_errcode(ctx);
}

/* --- IndexToString -------------------------------------------------------- */

/* The index in row r of an int64/double column, or -1 when null, not an
 * integer or out of [0, n). MLlib fails on an unknown index; dlp writes a
 * null so that one odd row does not lose a whole transform. */
static long row_index(const dlp_column *c, size_t r, size_t n) {
  if (!c->valid[r]) return -1;
  double v = c->type == DLP_TYPE_DOUBLE ? c->u.d[r] : (double)c->u.i[r];
  if (!(v >= 0 && v < (double)n) || v != floor(v)) return -1;
  return (long)v;
}

int ml_i2s_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f) {
  long ic = ml_need_column(ctx, s, *f, "inputCol");
  if (ic < 0) return dlp_errcode(ctx);
  dlp_type t = (*f)->cols[ic].type;
  if (t != DLP_TYPE_DOUBLE && t != DLP_TYPE_INT64)
    return dlp_fail(ctx, DLP_ERR_SCHEMA,
                    "IndexToString: inputCol '%s' holds %s, not indices",
                    (*f)->cols[ic].name, dlp_type_name(t));
  char **labels;
  size_t n;
  int rc = ml_labels_parse(ctx, ml_stage_param(s, "labels"), &labels, &n);
  if (rc != DLP_OK) return rc;
  if (!labels)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "IndexToString has no labels: set labels or put a "
                    "StringIndexer before it in the pipeline");
  long oc = ml_add_output(ctx, s, *f, "outputCol", DLP_TYPE_STRING, 0);
  rc = oc >= 0 ? DLP_OK : dlp_errcode(ctx);
  for (size_t r = 0; rc == DLP_OK && r < (*f)->nrows; r++) {
    long i = row_index(&(*f)->cols[ic], r, n);
    if (i >= 0) rc = dlp_frame_set_string(ctx, *f, (size_t)oc, r, labels[i]);
  }
  ml_labels_free(labels, n);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}
