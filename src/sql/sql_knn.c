/* sql_knn.c - the table-valued function dlp_knn(table, column, query, k
 * [, metric]): the k rows of table whose vector in column is nearest to
 * query (cosine similarity, highest first, or L2 distance, lowest first),
 * found in one pass with a bounded heap of k entries: O(n log k) time and
 * O(k) memory, no full sort. Written by hand: a heap is a few lines and
 * SQLite offers none to an extension. */
#define DLPSQL_INTERNAL
#include "sql.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
  C_ID,
  C_SCORE,
  C_RANK,
  C_TABLE,
  C_COLUMN,
  C_QUERY,
  C_K,
  C_METRIC,
  N_HIDDEN = 5
};

#define KNN_MAX_K 1000000

typedef struct knn_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
} knn_vtab;

typedef struct hit {
  double good; /* higher is nearer: cosine, or -distance */
  sqlite3_int64 id;
} hit;

typedef struct knn_cursor {
  sqlite3_vtab_cursor base;
  hit *hits;
  size_t n, pos;
  int l2;
} knn_cursor;

static int knn_connect(sqlite3 *db, void *aux, int argc,
                       const char *const *argv, sqlite3_vtab **out,
                       char **err) {
  int rc = sqlite3_declare_vtab(
      db, "CREATE TABLE x(id INTEGER, score REAL, rank INTEGER, tbl HIDDEN, "
          "col HIDDEN, query HIDDEN, k HIDDEN, metric HIDDEN)");
  if (rc != SQLITE_OK) return rc;
  knn_vtab *v = sqlite3_malloc(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->db = db;
  *out = &v->base;
  return SQLITE_OK;
}

static int knn_disconnect(sqlite3_vtab *v) {
  sqlite3_free(v);
  return SQLITE_OK;
}

static int knn_best_index(sqlite3_vtab *tab, sqlite3_index_info *info) {
  int idx[N_HIDDEN] = {-1, -1, -1, -1, -1};
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (c->iColumn < C_TABLE) continue;
    if (!c->usable) return SQLITE_CONSTRAINT;
    if (c->op == SQLITE_INDEX_CONSTRAINT_EQ) idx[c->iColumn - C_TABLE] = i;
  }
  for (int j = 0; j < 4; j++)
    if (idx[j] < 0) {
      sqlite3_free(tab->zErrMsg);
      tab->zErrMsg = sqlite3_mprintf(
          "dlp_knn: needs 4 arguments: dlp_knn(table, column, query_vector, "
          "k [, 'cosine' | 'l2'])");
      return SQLITE_ERROR;
    }
  int n = 0;
  for (int j = 0; j < N_HIDDEN; j++)
    if (idx[j] >= 0) {
      info->aConstraintUsage[idx[j]].argvIndex = ++n;
      info->aConstraintUsage[idx[j]].omit = 1;
    }
  info->estimatedCost = 1e6;
  /* Rows come out best first: rank order, so ORDER BY rank costs nothing. */
  if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == C_RANK &&
      !info->aOrderBy[0].desc)
    info->orderByConsumed = 1;
  return SQLITE_OK;
}

static int knn_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out) {
  knn_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}

static int knn_close(sqlite3_vtab_cursor *cur) {
  knn_cursor *c = (knn_cursor *)cur;
  free(c->hits);
  sqlite3_free(c);
  return SQLITE_OK;
}

/* a is worse than b: lower goodness, ties to the larger id. */
static int worse(const hit *a, const hit *b) {
  return a->good < b->good || (a->good == b->good && a->id > b->id);
}

static void sift_down(hit *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && worse(&h[l], &h[m])) m = l;
    if (r < n && worse(&h[r], &h[m])) m = r;
    if (m == i) return;
    hit t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static void sift_up(hit *h, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!worse(&h[i], &h[p])) return;
    hit t = h[i];
    h[i] = h[p];
    h[p] = t;
    i = p;
  }
}

static int cmp_best_first(const void *pa, const void *pb) {
  const hit *a = pa, *b = pb;
  return worse(a, b) ? 1 : worse(b, a) ? -1 : 0;
}

static double load(const unsigned char *p, size_t i) {
  float f;
  memcpy(&f, p + 4 * i, 4);
  return f;
}

static int fail(knn_vtab *v, char *msg) {
  sqlite3_free(v->base.zErrMsg);
  v->base.zErrMsg = msg;
  return SQLITE_ERROR;
}

static int knn_filter(sqlite3_vtab_cursor *cur, int idx_num,
                      const char *idx_str, int argc, sqlite3_value **argv) {
  knn_cursor *c = (knn_cursor *)cur;
  knn_vtab *v = (knn_vtab *)cur->pVtab;
  free(c->hits);
  c->hits = NULL;
  c->n = c->pos = 0;
  for (int i = 0; i < 4; i++)
    if (sqlite3_value_type(argv[i]) == SQLITE_NULL) return SQLITE_OK;
  const char *table = (const char *)sqlite3_value_text(argv[0]);
  const char *column = (const char *)sqlite3_value_text(argv[1]);
  if (sqlite3_value_type(argv[2]) != SQLITE_BLOB ||
      sqlite3_value_bytes(argv[2]) % 4 != 0 ||
      sqlite3_value_bytes(argv[2]) == 0)
    return fail(v, sqlite3_mprintf("dlp_knn: the query must be a float32 "
                                   "vector BLOB (see dlp_vec)"));
  if (sqlite3_value_numeric_type(argv[3]) != SQLITE_INTEGER ||
      sqlite3_value_int64(argv[3]) < 1 ||
      sqlite3_value_int64(argv[3]) > KNN_MAX_K)
    return fail(v, sqlite3_mprintf("dlp_knn: k must be an integer from 1 to "
                                   "%d",
                                   KNN_MAX_K));
  c->l2 = 0;
  if (argc > 4 && sqlite3_value_type(argv[4]) != SQLITE_NULL) {
    const char *m = (const char *)sqlite3_value_text(argv[4]);
    if (m && strcmp(m, "l2") == 0)
      c->l2 = 1;
    else if (!m || strcmp(m, "cosine") != 0)
      return fail(v, sqlite3_mprintf("dlp_knn: unknown metric '%s' (cosine "
                                     "or l2)",
                                     m ? m : ""));
  }
  size_t k = (size_t)sqlite3_value_int64(argv[3]);
  size_t dim = (size_t)sqlite3_value_bytes(argv[2]) / 4;
  /* A private copy: argv values are not guaranteed past the next step. */
  unsigned char *q = malloc(dim * 4);
  if (!q) return SQLITE_NOMEM;
  memcpy(q, sqlite3_value_blob(argv[2]), dim * 4);
  double qq = 0;
  for (size_t i = 0; i < dim; i++)
    qq += load(q, i) * load(q, i);
  char *sql =
      sqlite3_mprintf("SELECT rowid, \"%w\" FROM \"%w\"", column, table);
  sqlite3_stmt *st = NULL;
  int rc = sql ? sqlite3_prepare_v2(v->db, sql, -1, &st, NULL) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (rc != SQLITE_OK) {
    free(q);
    return rc == SQLITE_NOMEM
               ? rc
               : fail(v, sqlite3_mprintf("dlp_knn: %s", sqlite3_errmsg(v->db)));
  }
  size_t cap = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_type(st, 1) == SQLITE_NULL) continue;
    const unsigned char *p = sqlite3_column_blob(st, 1);
    size_t nb = (size_t)sqlite3_column_bytes(st, 1);
    sqlite3_int64 id = sqlite3_column_int64(st, 0);
    if (sqlite3_column_type(st, 1) != SQLITE_BLOB || nb != dim * 4) {
      rc = fail(v, sqlite3_mprintf(
                       "dlp_knn: %s.%s of row %lld is not a %lld-d vector (%s "
                       "of %lld bytes)",
                       table, column, (long long)id, (long long)dim,
                       sqlite3_column_type(st, 1) == SQLITE_BLOB ? "a BLOB"
                                                                 : "a value",
                       (long long)nb));
      break;
    }
    double dot = 0, pp = 0;
    for (size_t i = 0; i < dim; i++) {
      double a = load(p, i), b = load(q, i);
      dot += c->l2 ? (a - b) * (a - b) : a * b;
      pp += a * a;
    }
    if (!c->l2 && (pp == 0 || qq == 0)) continue; /* cosine undefined */
    hit h = {c->l2 ? -sqrt(dot) : dot / (sqrt(pp) * sqrt(qq)), id};
    if (c->n < k) {
      if (c->n == cap) {
        size_t ncap = cap ? cap * 2 : 64;
        if (ncap > k) ncap = k;
        hit *nh = realloc(c->hits, ncap * sizeof *nh);
        if (!nh) {
          rc = SQLITE_NOMEM;
          break;
        }
        c->hits = nh;
        cap = ncap;
      }
      c->hits[c->n] = h;
      sift_up(c->hits, c->n++);
    } else if (worse(&c->hits[0], &h)) {
      c->hits[0] = h;
      sift_down(c->hits, c->n, 0);
    }
  }
  if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else if (rc != SQLITE_ERROR && rc != SQLITE_NOMEM) {
    rc = fail(v, sqlite3_mprintf("dlp_knn: %s", sqlite3_errmsg(v->db)));
  }
  sqlite3_finalize(st);
  free(q);
  if (rc == SQLITE_OK && c->n > 1)
    qsort(c->hits, c->n, sizeof *c->hits, cmp_best_first);
  if (rc != SQLITE_OK) c->n = 0;
  return rc;
}

static int knn_next(sqlite3_vtab_cursor *cur) {
  ((knn_cursor *)cur)->pos++;
  return SQLITE_OK;
}

static int knn_eof(sqlite3_vtab_cursor *cur) {
  knn_cursor *c = (knn_cursor *)cur;
  return c->pos >= c->n;
}

static int knn_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col) {
  knn_cursor *c = (knn_cursor *)cur;
  const hit *h = &c->hits[c->pos];
  if (col == C_ID)
    sqlite3_result_int64(ctx, h->id);
  else if (col == C_SCORE)
    sqlite3_result_double(ctx, c->l2 ? -h->good : h->good);
  else if (col == C_RANK)
    sqlite3_result_int64(ctx, (sqlite3_int64)c->pos + 1);
  return SQLITE_OK;
}

static int knn_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = (sqlite3_int64)((knn_cursor *)cur)->pos + 1;
  return SQLITE_OK;
}

static const sqlite3_module knn_module = {
    .iVersion = 0,
    .xCreate = NULL,
    .xConnect = knn_connect,
    .xBestIndex = knn_best_index,
    .xDisconnect = knn_disconnect,
    .xDestroy = knn_disconnect,
    .xOpen = knn_open,
    .xClose = knn_close,
    .xFilter = knn_filter,
    .xNext = knn_next,
    .xEof = knn_eof,
    .xColumn = knn_column,
    .xRowid = knn_rowid,
};

int dlpsql_register_knn(sqlite3 *db) {
  return sqlite3_create_module_v2(db, "dlp_knn", &knn_module, NULL, NULL);
}
