/* sql_batch.c - the batched table-valued functions dlp_featurize_rows,
 * dlp_predict_rows and dlp_apply_rows(model, 'SELECT image [, key] ...'
 * [, options]). A scalar function sees one row at a time; these run the
 * query themselves and feed its rows to the model in chunks, so decoding
 * runs on all threads and overlaps the network as in 'dlp featurize'.
 * Unreadable images are data here: a NULL output and the reason in the
 * error column. */
#define DLPSQL_INTERNAL
#include "sql.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_ROWS 256

typedef enum { B_FEATURIZE, B_PREDICT, B_APPLY } bmode;

enum { C_IMAGE, C_KEY, C_OUT, C_ERROR, C_MODEL, C_QUERY, C_OPTIONS };

typedef struct batch_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
  dlpsql_state *s;
  bmode mode;
} batch_vtab;

typedef struct batch_cursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt *st;
  dlpsql_model *mm;
  int done;       /* the query has no more rows */
  dlp_frame *out; /* the current chunk's results */
  sqlite3_value *img[CHUNK_ROWS], *key[CHUNK_ROWS];
  size_t n, pos;
  sqlite3_int64 rowid;
} batch_cursor;

typedef struct batch_aux {
  dlpsql_state *s;
  bmode mode;
} batch_aux;

static const char *fname[] = {"dlp_featurize_rows", "dlp_predict_rows",
                              "dlp_apply_rows"};

static int batch_connect(sqlite3 *db, void *aux, int argc,
                         const char *const *argv, sqlite3_vtab **out,
                         char **err) {
  batch_aux *a = aux;
  static const char *schema[] = {
      "CREATE TABLE x(image, key, features BLOB, error TEXT, model HIDDEN, "
      "query HIDDEN, options HIDDEN)",
      "CREATE TABLE x(image, key, predictions TEXT, error TEXT, model HIDDEN, "
      "query HIDDEN, options HIDDEN)",
      "CREATE TABLE x(image, key, output BLOB, error TEXT, model HIDDEN, "
      "query HIDDEN, options HIDDEN)"};
  int rc = sqlite3_declare_vtab(db, schema[a->mode]);
  /* Reads files: not from triggers or views (as readfile()). */
  if (rc == SQLITE_OK) rc = sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  if (rc != SQLITE_OK) return rc;
  batch_vtab *v = sqlite3_malloc(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->db = db;
  v->s = a->s;
  v->mode = a->mode;
  *out = &v->base;
  return SQLITE_OK;
}

static int batch_disconnect(sqlite3_vtab *v) {
  sqlite3_free(v);
  return SQLITE_OK;
}

static int set_error(batch_vtab *v, char *msg) {
  sqlite3_free(v->base.zErrMsg);
  v->base.zErrMsg = msg;
  return msg ? SQLITE_ERROR : SQLITE_NOMEM;
}

static int batch_best_index(sqlite3_vtab *tab, sqlite3_index_info *info) {
  int idx[3] = {-1, -1, -1};
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (c->iColumn < C_MODEL) continue;
    if (!c->usable) return SQLITE_CONSTRAINT;
    if (c->op == SQLITE_INDEX_CONSTRAINT_EQ) idx[c->iColumn - C_MODEL] = i;
  }
  batch_vtab *v = (batch_vtab *)tab;
  if (idx[0] < 0 || idx[1] < 0)
    return set_error(v, sqlite3_mprintf("%s: needs a model and a query: "
                                        "%s(model, 'SELECT image [, key] "
                                        "FROM ...' [, options])",
                                        fname[v->mode], fname[v->mode]));
  int n = 0;
  for (int j = 0; j < 3; j++)
    if (idx[j] >= 0) {
      info->aConstraintUsage[idx[j]].argvIndex = ++n;
      info->aConstraintUsage[idx[j]].omit = 1;
    }
  info->estimatedCost = 1e9;
  return SQLITE_OK;
}

static int batch_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out) {
  batch_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}

static void chunk_clear(batch_cursor *c) {
  for (size_t i = 0; i < c->n; i++) {
    sqlite3_value_free(c->img[i]);
    sqlite3_value_free(c->key[i]);
    c->img[i] = c->key[i] = NULL;
  }
  dlp_frame_free(c->out);
  c->out = NULL;
  c->n = c->pos = 0;
}

static void cursor_reset(batch_cursor *c) {
  chunk_clear(c);
  sqlite3_finalize(c->st);
  c->st = NULL;
  c->done = 1;
  c->rowid = 0;
}

static int batch_close(sqlite3_vtab_cursor *cur) {
  cursor_reset((batch_cursor *)cur);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* Reads up to CHUNK_ROWS rows of the query and runs the model over them. */
static int next_chunk(batch_cursor *c) {
  batch_vtab *v = (batch_vtab *)c->base.pVtab;
  dlp_ctx *ctx = v->s->ctx;
  chunk_clear(c);
  int two = sqlite3_column_count(c->st) == 2;
  int rc = SQLITE_OK;
  while (c->n < CHUNK_ROWS && !c->done) {
    rc = sqlite3_step(c->st);
    if (rc == SQLITE_DONE) {
      c->done = 1;
      rc = SQLITE_OK;
      break;
    }
    if (rc != SQLITE_ROW)
      return set_error(v,
                       sqlite3_mprintf("%s: the query failed: %s",
                                       fname[v->mode], sqlite3_errmsg(v->db)));
    rc = SQLITE_OK;
    c->img[c->n] = sqlite3_value_dup(sqlite3_column_value(c->st, 0));
    c->key[c->n] =
        two ? sqlite3_value_dup(sqlite3_column_value(c->st, 1)) : NULL;
    c->n++;
    if (!c->img[c->n - 1] || (two && !c->key[c->n - 1])) return SQLITE_NOMEM;
  }
  if (c->n == 0) return SQLITE_OK;
  dlp_frame *in = NULL;
  int drc = dlp_frame_new(ctx, &in);
  if (drc == DLP_OK)
    drc = dlp_frame_add_column(ctx, in, "image", DLP_TYPE_IMAGE, 0);
  for (size_t i = 0; drc == DLP_OK && i < c->n; i++) {
    drc = dlp_frame_add_row(ctx, in, NULL);
    if (drc == DLP_OK && sqlite3_value_type(c->img[i]) != SQLITE_NULL)
      drc = dlpsql_set_image(ctx, in, i, c->img[i]);
  }
  dlp_transform_opts to;
  dlp_transform_opts_init(&to);
  to.batch_size = (size_t)c->mm->batch_size;
  to.output_col = "out";
  if (drc == DLP_OK)
    drc = v->mode == B_FEATURIZE
              ? dlp_model_featurize(ctx, c->mm->m, in, "image", &to, &c->out)
          : v->mode == B_PREDICT
              ? dlp_model_predict(ctx, c->mm->m, in, "image", c->mm->top_k, &to,
                                  &c->out)
              : dlp_model_apply(ctx, c->mm->m, in, "image", &to, &c->out);
  dlp_frame_free(in);
  if (drc != DLP_OK)
    return set_error(
        v, sqlite3_mprintf("%s: %s", fname[v->mode], dlp_errmsg(ctx)));
  return SQLITE_OK;
}

static int only_space(const char *s) {
  while (s && *s && isspace((unsigned char)*s))
    s++;
  return !s || !*s;
}

static int batch_filter(sqlite3_vtab_cursor *cur, int idx_num,
                        const char *idx_str, int argc, sqlite3_value **argv) {
  batch_cursor *c = (batch_cursor *)cur;
  batch_vtab *v = (batch_vtab *)cur->pVtab;
  const char *fn = fname[v->mode];
  cursor_reset(c);
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL ||
      sqlite3_value_type(argv[1]) == SQLITE_NULL)
    return SQLITE_OK; /* NULL in, no rows out */
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  const char *opts = argc > 2 && sqlite3_value_type(argv[2]) != SQLITE_NULL
                         ? (const char *)sqlite3_value_text(argv[2])
                         : NULL;
  char err[512];
  c->mm = dlpsql_model_get(v->s, name, opts, err, sizeof err);
  if (!c->mm) return set_error(v, sqlite3_mprintf("%s: %s", fn, err));
  if (c->mm->pm)
    return set_error(v, sqlite3_mprintf("%s: '%s' is a fitted pipeline: "
                                        "use dlp_classify or dlp_apply",
                                        fn, name));
  const char *sql = (const char *)sqlite3_value_text(argv[1]);
  const char *tail = NULL;
  if (sqlite3_prepare_v2(v->db, sql, -1, &c->st, &tail) != SQLITE_OK)
    return set_error(
        v, sqlite3_mprintf("%s: bad query: %s", fn, sqlite3_errmsg(v->db)));
  int ncol = c->st ? sqlite3_column_count(c->st) : 0;
  if (!c->st || !only_space(tail) || !sqlite3_stmt_readonly(c->st) ||
      ncol < 1 || ncol > 2) {
    sqlite3_finalize(c->st);
    c->st = NULL;
    return set_error(
        v, sqlite3_mprintf("%s: the query must be one SELECT returning the "
                           "image (path or blob) and optionally a key",
                           fn));
  }
  c->done = 0;
  return next_chunk(c);
}

static int batch_next(sqlite3_vtab_cursor *cur) {
  batch_cursor *c = (batch_cursor *)cur;
  c->rowid++;
  if (++c->pos < c->n) return SQLITE_OK;
  return c->done ? (chunk_clear(c), SQLITE_OK) : next_chunk(c);
}

static int batch_eof(sqlite3_vtab_cursor *cur) {
  batch_cursor *c = (batch_cursor *)cur;
  return c->pos >= c->n;
}

static int batch_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                        int col) {
  batch_cursor *c = (batch_cursor *)cur;
  size_t r = c->pos;
  if (col == C_IMAGE) {
    sqlite3_result_value(ctx, c->img[r]);
  } else if (col == C_KEY) {
    if (c->key[r]) sqlite3_result_value(ctx, c->key[r]);
  } else if (col == C_OUT) {
    const float *v = NULL;
    const char *s = NULL;
    if (dlp_frame_get_vector(c->out, 1, r, &v))
      sqlite3_result_blob(ctx, v, (int)(dlp_frame_col_dim(c->out, 1) * 4),
                          SQLITE_TRANSIENT);
    else if (dlp_frame_get_string(c->out, 1, r, &s))
      sqlite3_result_text(ctx, s, -1, SQLITE_TRANSIENT);
  } else if (col == C_ERROR) {
    dlp_image_meta m;
    if (dlp_frame_is_null(c->out, 1, r) &&
        dlp_frame_get_image_meta(c->out, 0, r, &m) && m.error)
      sqlite3_result_text(ctx, m.error, -1, SQLITE_TRANSIENT);
  }
  return SQLITE_OK;
}

static int batch_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = ((batch_cursor *)cur)->rowid + 1;
  return SQLITE_OK;
}

static const sqlite3_module batch_module = {
    .iVersion = 0,
    .xCreate = NULL,
    .xConnect = batch_connect,
    .xBestIndex = batch_best_index,
    .xDisconnect = batch_disconnect,
    .xDestroy = batch_disconnect,
    .xOpen = batch_open,
    .xClose = batch_close,
    .xFilter = batch_filter,
    .xNext = batch_next,
    .xEof = batch_eof,
    .xColumn = batch_column,
    .xRowid = batch_rowid,
};

static void aux_free(void *p) {
  batch_aux *a = p;
  if (!a) return;
  dlpsql_unref(a->s);
  free(a);
}

int dlpsql_register_batch(sqlite3 *db, dlpsql_state *s) {
  for (int m = B_FEATURIZE; m <= B_APPLY; m++) {
    batch_aux *a = malloc(sizeof *a);
    if (!a) return SQLITE_NOMEM;
    a->s = dlpsql_ref(s);
    a->mode = (bmode)m;
    int rc = sqlite3_create_module_v2(db, fname[m], &batch_module, a, aux_free);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}
