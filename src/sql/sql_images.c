/* sql_images.c - the table-valued function dlp_images(dir [, recursive]):
 * one row per image file (path, label, width, height, size, mtime, error),
 * from dlp_read_images with headers only (verify = 0) plus stat(2). */
#define DLPSQL_INTERNAL
#include "sql.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
  C_PATH,
  C_LABEL,
  C_WIDTH,
  C_HEIGHT,
  C_SIZE,
  C_MTIME,
  C_ERROR,
  C_DIR,
  C_RECURSIVE
};

typedef struct images_vtab {
  sqlite3_vtab base;
  dlpsql_state *s;
} images_vtab;

typedef struct images_cursor {
  sqlite3_vtab_cursor base;
  dlp_frame *f;
  size_t row, nrows;
  long label_col;
} images_cursor;

static int images_connect(sqlite3 *db, void *aux, int argc,
                          const char *const *argv, sqlite3_vtab **out,
                          char **err) {
  int rc = sqlite3_declare_vtab(
      db, "CREATE TABLE x(path TEXT, label TEXT, width INTEGER, height "
          "INTEGER, size INTEGER, mtime INTEGER, error TEXT, dir HIDDEN, "
          "recursive HIDDEN)");
  /* Reads files: not from triggers or views (as readfile()). */
  if (rc == SQLITE_OK) rc = sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  if (rc != SQLITE_OK) return rc;
  images_vtab *v = sqlite3_malloc(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->s = aux;
  *out = &v->base;
  return SQLITE_OK;
}

static int images_disconnect(sqlite3_vtab *v) {
  sqlite3_free(v);
  return SQLITE_OK;
}

/* The folder must be given (argument 1); recursive is optional. */
static int images_best_index(sqlite3_vtab *tab, sqlite3_index_info *info) {
  int idx[2] = {-1, -1};
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (c->iColumn < C_DIR) continue;
    if (!c->usable) return SQLITE_CONSTRAINT;
    if (c->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    idx[c->iColumn - C_DIR] = i;
  }
  if (idx[0] < 0) {
    sqlite3_free(tab->zErrMsg);
    tab->zErrMsg = sqlite3_mprintf("dlp_images: give a folder: "
                                   "dlp_images('photos' [, recursive])");
    return SQLITE_ERROR;
  }
  info->aConstraintUsage[idx[0]].argvIndex = 1;
  info->aConstraintUsage[idx[0]].omit = 1;
  info->idxNum = 0;
  if (idx[1] >= 0) {
    info->aConstraintUsage[idx[1]].argvIndex = 2;
    info->aConstraintUsage[idx[1]].omit = 1;
    info->idxNum = 1;
  }
  info->estimatedCost = 1e6;
  return SQLITE_OK;
}

static int images_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out) {
  images_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}

static int images_close(sqlite3_vtab_cursor *cur) {
  images_cursor *c = (images_cursor *)cur;
  dlp_frame_free(c->f);
  sqlite3_free(c);
  return SQLITE_OK;
}

static int images_filter(sqlite3_vtab_cursor *cur, int idx_num,
                         const char *idx_str, int argc, sqlite3_value **argv) {
  images_cursor *c = (images_cursor *)cur;
  images_vtab *v = (images_vtab *)cur->pVtab;
  dlp_frame_free(c->f);
  c->f = NULL;
  c->row = c->nrows = 0;
  if (argc < 1 || sqlite3_value_type(argv[0]) == SQLITE_NULL)
    return SQLITE_OK; /* NULL folder: no rows */
  const char *dir = (const char *)sqlite3_value_text(argv[0]);
  int recursive = 1;
  if (argc > 1 && sqlite3_value_type(argv[1]) != SQLITE_NULL)
    recursive = sqlite3_value_int(argv[1]) != 0;
  dlp_scan_opts so;
  dlp_scan_opts_init(&so);
  so.verify = 0;
  so.labels_from_dirs = recursive;
  if (dlp_read_images(v->s->ctx, dir, &so, &c->f) != DLP_OK) {
    sqlite3_free(v->base.zErrMsg);
    v->base.zErrMsg = sqlite3_mprintf("dlp_images: %s", dlp_errmsg(v->s->ctx));
    return SQLITE_ERROR;
  }
  c->nrows = dlp_frame_nrows(c->f);
  c->label_col = dlp_frame_col_index(c->f, "label");
  return SQLITE_OK;
}

static int images_next(sqlite3_vtab_cursor *cur) {
  ((images_cursor *)cur)->row++;
  return SQLITE_OK;
}

static int images_eof(sqlite3_vtab_cursor *cur) {
  images_cursor *c = (images_cursor *)cur;
  return c->row >= c->nrows;
}

static int images_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                         int col) {
  images_cursor *c = (images_cursor *)cur;
  dlp_image_meta m;
  if (!dlp_frame_get_image_meta(c->f, 0, c->row, &m)) return SQLITE_OK;
  struct stat st;
  const char *label = NULL;
  switch (col) {
  case C_PATH:
    if (m.origin) sqlite3_result_text(ctx, m.origin, -1, SQLITE_TRANSIENT);
    break;
  case C_LABEL:
    if (c->label_col >= 0 &&
        dlp_frame_get_string(c->f, (size_t)c->label_col, c->row, &label))
      sqlite3_result_text(ctx, label, -1, SQLITE_TRANSIENT);
    break;
  case C_WIDTH:
  case C_HEIGHT:
    if (!m.error) sqlite3_result_int(ctx, col == C_WIDTH ? m.width : m.height);
    break;
  case C_SIZE:
  case C_MTIME:
    if (m.origin && stat(m.origin, &st) == 0)
      sqlite3_result_int64(ctx, col == C_SIZE ? (sqlite3_int64)st.st_size
                                              : (sqlite3_int64)st.st_mtime);
    break;
  case C_ERROR:
    if (m.error) sqlite3_result_text(ctx, m.error, -1, SQLITE_TRANSIENT);
    break;
  default:
    break;
  }
  return SQLITE_OK;
}

static int images_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = (sqlite3_int64)((images_cursor *)cur)->row + 1;
  return SQLITE_OK;
}

static const sqlite3_module images_module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous only: dlp_images(...) */
    .xConnect = images_connect,
    .xBestIndex = images_best_index,
    .xDisconnect = images_disconnect,
    .xDestroy = images_disconnect,
    .xOpen = images_open,
    .xClose = images_close,
    .xFilter = images_filter,
    .xNext = images_next,
    .xEof = images_eof,
    .xColumn = images_column,
    .xRowid = images_rowid,
};

int dlpsql_register_images(sqlite3 *db, dlpsql_state *s) {
  return sqlite3_create_module_v2(db, "dlp_images", &images_module,
                                  dlpsql_ref(s), dlpsql_unref);
}
