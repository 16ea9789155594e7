/* io_sqlite.c - frames as SQLite tables (libsqlite3).
 *
 * One table per frame; scalars map to TEXT / INTEGER / REAL, vectors to a
 * BLOB of little-endian float32, image columns to seven columns <name>_origin,
 * _height, _width, _nChannels, _mode, _error, _bytes. The table _dlp_columns
 * (tbl, pos, name, type, dim) records the dlp types, so a frame reads back
 * exactly. Writing happens in one transaction (atomic by SQLite's journal),
 * adding a table to an existing database without touching its others.
 * Tables not written by dlp are read by declared type: INTEGER -> int64,
 * REAL/FLOAT/DOUBLE/NUMERIC -> double, TEXT -> string, BLOB -> vector when
 * every blob has the same length, a multiple of 4. */
#include "frame.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char *const sq_img_suffix[7] = {
    "origin", "height", "width", "nChannels", "mode", "error", "bytes"};

typedef struct sq_conn {
  dlp_ctx *ctx;
  sqlite3 *db;
  const char *path;
} sq_conn;

/* Fails with SQLite's message; a file that is not a database is
 * DLP_ERR_FORMAT, a full disk or I/O trouble DLP_ERR_IO. */
static int sq_fail(sq_conn *c, const char *what) {
  int ec = c->db ? sqlite3_errcode(c->db) : SQLITE_NOMEM;
  const char *msg = c->db ? sqlite3_errmsg(c->db) : "out of memory";
  int code = ec == SQLITE_NOTADB    ? DLP_ERR_FORMAT
             : ec == SQLITE_CORRUPT ? DLP_ERR_CORRUPT
             : ec == SQLITE_NOMEM   ? DLP_ERR_NOMEM
             : ec == SQLITE_CANTOPEN || ec == SQLITE_IOERR ||
                     ec == SQLITE_FULL || ec == SQLITE_READONLY ||
                     ec == SQLITE_PERM
                 ? DLP_ERR_IO
                 : DLP_ERR_SCHEMA;
  return dlp_fail(c->ctx, code, "%s: %s: %s", c->path, what, msg);
}

static int sq_exec(sq_conn *c, const char *sql) {
  if (!sql) return dlp_fail(c->ctx, DLP_ERR_NOMEM, "no memory for SQL");
  char *err = NULL;
  int rc = sqlite3_exec(c->db, sql, NULL, NULL, &err);
  sqlite3_free(err);
  return rc == SQLITE_OK ? DLP_OK : sq_fail(c, "SQL failed");
}

static int sq_prepare(sq_conn *c, const char *sql, sqlite3_stmt **st) {
  *st = NULL;
  if (!sql) return dlp_fail(c->ctx, DLP_ERR_NOMEM, "no memory for SQL");
  if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK)
    return sq_fail(c, "cannot prepare a statement");
  return DLP_OK;
}

static int sq_alpha(char ch) {
  return ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* [A-Za-z_][A-Za-z0-9_]*, and not one of SQLite's or dlp's own tables. */
static int sq_table_ok(const char *t) {
  if (!t || !sq_alpha(t[0])) return 0;
  for (const char *p = t; *p; p++)
    if (!sq_alpha(*p) && !(*p >= '0' && *p <= '9')) return 0;
  return strcasecmp(t, "_dlp_columns") != 0 &&
         strncasecmp(t, "sqlite_", 7) != 0;
}

/* 1 when table t exists, 0 when not, -1 on error. */
static int sq_has_table(sq_conn *c, const char *t) {
  sqlite3_stmt *st;
  if (sq_prepare(c,
                 "SELECT 1 FROM sqlite_master WHERE type IN "
                 "('table','view') AND name = ?1",
                 &st) != DLP_OK)
    return -1;
  sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc == SQLITE_ROW) return 1;
  if (rc == SQLITE_DONE) return 0;
  sq_fail(c, "cannot list tables");
  return -1;
}

static int sq_open(sq_conn *c, int flags) {
  if (sqlite3_open_v2(c->path, &c->db, flags, NULL) != SQLITE_OK)
    return sq_fail(c, "cannot open");
  sqlite3_busy_timeout(c->db, 5000);
  return DLP_OK;
}

/* ---- writing ----------------------------------------------------------- */

/* "CREATE TABLE t (...)" with quoted identifiers (sqlite3's %w). */
static char *sq_create_sql(const dlp_frame *f, const char *t) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendf(s, "CREATE TABLE \"%w\" (", t);
  for (size_t i = 0; i < f->ncols; i++) {
    const dlp_column *c = &f->cols[i];
    const char *sep = i ? ", " : "";
    if (c->type == DLP_TYPE_IMAGE) {
      for (int k = 0; k < 7; k++)
        sqlite3_str_appendf(s, "%s\"%w_%w\" %s", k ? ", " : sep, c->name,
                            sq_img_suffix[k],
                            k == 0 || k == 5 ? "TEXT"
                            : k == 6         ? "BLOB"
                                             : "INTEGER");
      continue;
    }
    const char *decl = c->type == DLP_TYPE_STRING   ? "TEXT"
                       : c->type == DLP_TYPE_INT64  ? "INTEGER"
                       : c->type == DLP_TYPE_DOUBLE ? "REAL"
                                                    : "BLOB";
    sqlite3_str_appendf(s, "%s\"%w\" %s", sep, c->name, decl);
  }
  sqlite3_str_appendf(s, ")");
  return sqlite3_str_finish(s);
}

static size_t sq_width(const dlp_frame *f) {
  size_t n = 0;
  for (size_t i = 0; i < f->ncols; i++)
    n += f->cols[i].type == DLP_TYPE_IMAGE ? 7 : 1;
  return n;
}

static char *sq_insert_sql(const dlp_frame *f, const char *t) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendf(s, "INSERT INTO \"%w\" VALUES (", t);
  for (size_t i = 0, n = sq_width(f); i < n; i++)
    sqlite3_str_appendf(s, i ? ",?" : "?");
  sqlite3_str_appendf(s, ")");
  return sqlite3_str_finish(s);
}

/* Drops an old table when overwriting, else refuses to replace it. */
static int sq_make_room(sq_conn *c, const char *t, int overwrite) {
  int has = sq_has_table(c, t);
  if (has < 0) return dlp_errcode(c->ctx);
  if (has && !overwrite)
    return dlp_fail(c->ctx, DLP_ERR_ARG,
                    "table '%s' already exists in %s (use overwrite)", t,
                    c->path);
  char *sql = sqlite3_mprintf(
      "CREATE TABLE IF NOT EXISTS _dlp_columns (tbl TEXT, pos INTEGER, "
      "name TEXT, type TEXT, dim INTEGER); DELETE FROM _dlp_columns WHERE "
      "tbl = %Q; DROP TABLE IF EXISTS \"%w\"",
      t, t);
  int rc = sq_exec(c, sql);
  sqlite3_free(sql);
  return rc;
}

static int sq_write_schema(sq_conn *c, const dlp_frame *f, const char *t) {
  char *sql = sq_create_sql(f, t);
  int rc = sq_exec(c, sql);
  sqlite3_free(sql);
  sqlite3_stmt *st = NULL;
  if (rc == DLP_OK)
    rc = sq_prepare(c, "INSERT INTO _dlp_columns VALUES (?1, ?2, ?3, ?4, ?5)",
                    &st);
  for (size_t i = 0; rc == DLP_OK && i < f->ncols; i++) {
    sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
    sqlite3_bind_text(st, 3, f->cols[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, dlp_type_name(f->cols[i].type), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)f->cols[i].dim);
    if (sqlite3_step(st) != SQLITE_DONE) rc = sq_fail(c, "cannot write schema");
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return rc;
}

static void sq_bind_opt_text(sqlite3_stmt *st, int k, const char *s) {
  if (s)
    sqlite3_bind_text(st, k, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, k);
}

/* Binds column c's cell of row r from parameter *k on; vec is scratch of
 * dim*4 bytes for the little-endian float32 blob. */
static void sq_bind_cell(sqlite3_stmt *st, int *k, const dlp_column *c,
                         size_t r, uint8_t *vec) {
  if (c->type == DLP_TYPE_IMAGE) {
    const dlp_img_cell *ic = &c->u.img[r];
    int v = c->valid[r];
    sq_bind_opt_text(st, (*k)++, v ? ic->origin : NULL);
    int32_t num[4] = {ic->height, ic->width, ic->n_channels, ic->mode};
    for (int i = 0; i < 4; i++, (*k)++)
      v ? sqlite3_bind_int(st, *k, num[i]) : sqlite3_bind_null(st, *k);
    sq_bind_opt_text(st, (*k)++, v ? ic->error : NULL);
    if (v && ic->bytes)
      sqlite3_bind_blob64(st, *k, ic->bytes, ic->n_bytes, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, *k);
    (*k)++;
    return;
  }
  int p = (*k)++;
  if (!c->valid[r]) {
    sqlite3_bind_null(st, p);
    return;
  }
  switch (c->type) {
  case DLP_TYPE_STRING:
    sqlite3_bind_text(st, p, c->u.s[r], -1, SQLITE_STATIC);
    break;
  case DLP_TYPE_INT64:
    sqlite3_bind_int64(st, p, c->u.i[r]);
    break;
  case DLP_TYPE_DOUBLE:
    sqlite3_bind_double(st, p, c->u.d[r]);
    break;
  case DLP_TYPE_VECTOR:
    for (size_t i = 0; i < c->dim; i++) {
      uint32_t u;
      memcpy(&u, &c->u.v[r * c->dim + i], 4);
      for (int b = 0; b < 4; b++)
        vec[4 * i + (size_t)b] = (uint8_t)(u >> (8 * b));
    }
    sqlite3_bind_blob64(st, p, vec, c->dim * 4, SQLITE_TRANSIENT);
    break;
  default:
    break;
  }
}

static int sq_write_rows(sq_conn *c, const dlp_frame *f, const char *t) {
  size_t maxdim = 1;
  for (size_t i = 0; i < f->ncols; i++)
    if (f->cols[i].dim > maxdim) maxdim = f->cols[i].dim;
  uint8_t *vec = dlp_malloc_array(maxdim, 4);
  if (!vec) return dlp_fail(c->ctx, DLP_ERR_NOMEM, "no memory for a vector");
  char *sql = sq_insert_sql(f, t);
  sqlite3_stmt *st;
  int rc = sq_prepare(c, sql, &st);
  sqlite3_free(sql);
  for (size_t r = 0; rc == DLP_OK && r < f->nrows; r++) {
    int k = 1;
    for (size_t i = 0; i < f->ncols; i++)
      sq_bind_cell(st, &k, &f->cols[i], r, vec);
    if (sqlite3_step(st) != SQLITE_DONE) rc = sq_fail(c, "cannot insert a row");
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  free(vec);
  return rc;
}

int dlp_sqlite_write(dlp_ctx *ctx, const dlp_frame *f, const char *path,
                     const dlp_io_opts *o) {
  const char *t = o->table ? o->table : "frame";
  if (!sq_table_ok(t))
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "bad table name '%s' (want letters, digits and _, not "
                    "starting with a digit)",
                    t);
  sq_conn c = {ctx, NULL, path};
  int rc = sq_open(&c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (rc == DLP_OK) rc = sq_exec(&c, "BEGIN IMMEDIATE");
  if (rc == DLP_OK) {
    rc = sq_make_room(&c, t, o->overwrite);
    if (rc == DLP_OK) rc = sq_write_schema(&c, f, t);
    if (rc == DLP_OK) rc = sq_write_rows(&c, f, t);
    if (rc == DLP_OK) rc = sq_exec(&c, "COMMIT");
    if (rc != DLP_OK) sqlite3_exec(c.db, "ROLLBACK", NULL, NULL, NULL);
  }
  sqlite3_close(c.db);
  return rc;
}

/* ---- reading ----------------------------------------------------------- */

/* The table to read: the one named, else the only one dlp wrote, else
 * "frame". The name is copied into buf. */
static int sq_pick_table(sq_conn *c, const dlp_io_opts *o, char *buf,
                         size_t cap) {
  const char *t = o->table;
  sqlite3_stmt *st = NULL;
  int has = t ? 1 : sq_has_table(c, "_dlp_columns");
  if (has < 0) return dlp_errcode(c->ctx);
  char only[256] = "frame";
  if (!t && has) {
    int rc = sq_prepare(c,
                        "SELECT DISTINCT tbl FROM _dlp_columns WHERE tbl IN "
                        "(SELECT name FROM sqlite_master WHERE type='table')",
                        &st);
    if (rc != DLP_OK) return rc;
    int n = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
      if (n++ == 0)
        snprintf(only, sizeof only, "%s",
                 (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) return sq_fail(c, "cannot list tables");
    if (n != 1) snprintf(only, sizeof only, "frame");
  }
  snprintf(buf, cap, "%s", t ? t : only);
  has = sq_has_table(c, buf);
  if (has < 0) return dlp_errcode(c->ctx);
  if (!has)
    return dlp_fail(c->ctx, DLP_ERR_NOT_FOUND, "%s: no table '%s'%s", c->path,
                    buf, t ? "" : " (name the table to read)");
  return DLP_OK;
}

/* Frame columns from _dlp_columns; none when the table is not dlp's. */
static int sq_schema_dlp(sq_conn *c, const char *t, dlp_frame *f) {
  int has = sq_has_table(c, "_dlp_columns");
  if (has <= 0) return has < 0 ? dlp_errcode(c->ctx) : DLP_OK;
  sqlite3_stmt *st;
  int rc = sq_prepare(c,
                      "SELECT name, type, dim FROM _dlp_columns WHERE tbl = ?1 "
                      "ORDER BY pos",
                      &st);
  if (rc != DLP_OK) return rc;
  sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
  int step;
  while (rc == DLP_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *type = (const char *)sqlite3_column_text(st, 1);
    sqlite3_int64 dim = sqlite3_column_int64(st, 2);
    dlp_type ty = 0;
    for (int k = DLP_TYPE_STRING; k <= DLP_TYPE_IMAGE; k++)
      if (type && strcmp(type, dlp_type_name((dlp_type)k)) == 0)
        ty = (dlp_type)k;
    if (!name || !ty || dim < 0)
      rc = dlp_fail(c->ctx, DLP_ERR_CORRUPT,
                    "%s: bad _dlp_columns row for '%s'", c->path, t);
    else
      rc = dlp_frame_add_column(c->ctx, f, name, ty, (size_t)dim);
  }
  if (rc == DLP_OK && step != SQLITE_DONE)
    rc = sq_fail(c, "cannot read schema");
  sqlite3_finalize(st);
  return rc;
}

/* The dimension of a BLOB column read as a vector: every blob of one
 * length, a positive multiple of 4. 0 when the column holds no blob. */
static int sq_blob_dim(sq_conn *c, const char *t, const char *col,
                       size_t *dim) {
  char *sql = sqlite3_mprintf(
      "SELECT min(length(\"%w\")), max(length(\"%w\")) FROM \"%w\" WHERE "
      "\"%w\" IS NOT NULL",
      col, col, t, col);
  sqlite3_stmt *st;
  int rc = sq_prepare(c, sql, &st);
  sqlite3_free(sql);
  if (rc != DLP_OK) return rc;
  *dim = 0;
  if (sqlite3_step(st) == SQLITE_ROW &&
      sqlite3_column_type(st, 0) != SQLITE_NULL) {
    sqlite3_int64 lo = sqlite3_column_int64(st, 0);
    sqlite3_int64 hi = sqlite3_column_int64(st, 1);
    if (lo != hi || lo <= 0 || lo % 4)
      rc = dlp_fail(c->ctx, DLP_ERR_UNSUPPORTED,
                    "%s: column '%s' of '%s' holds blobs of %lld to %lld "
                    "bytes; only blobs of one length (a multiple of 4, "
                    "float32) read as vectors",
                    c->path, col, t, (long long)lo, (long long)hi);
    *dim = (size_t)lo / 4;
  }
  sqlite3_finalize(st);
  return rc;
}

/* The frame type for a declared SQL type, SQLite's affinity rules. */
static dlp_type sq_affinity(const char *decl) {
  char u[64];
  size_t n = 0;
  for (; decl && decl[n] && n + 1 < sizeof u; n++)
    u[n] = (char)(decl[n] >= 'a' && decl[n] <= 'z' ? decl[n] - 32 : decl[n]);
  u[n] = '\0';
  if (strstr(u, "INT")) return DLP_TYPE_INT64;
  if (strstr(u, "CHAR") || strstr(u, "CLOB") || strstr(u, "TEXT"))
    return DLP_TYPE_STRING;
  if (n == 0 || strstr(u, "BLOB")) return DLP_TYPE_VECTOR;
  return DLP_TYPE_DOUBLE;
}

/* Frame columns of a table dlp did not write, from its declared types. */
static int sq_schema_foreign(sq_conn *c, const char *t, dlp_frame *f) {
  char *sql = sqlite3_mprintf("PRAGMA table_info(\"%w\")", t);
  sqlite3_stmt *st;
  int rc = sq_prepare(c, sql, &st);
  sqlite3_free(sql);
  while (rc == DLP_OK && sqlite3_step(st) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 1);
    dlp_type ty = sq_affinity((const char *)sqlite3_column_text(st, 2));
    size_t dim = 0;
    if (ty == DLP_TYPE_VECTOR) rc = sq_blob_dim(c, t, name, &dim);
    if (ty == DLP_TYPE_VECTOR && dim == 0) ty = DLP_TYPE_STRING; /* all null */
    if (rc == DLP_OK)
      rc = dlp_frame_add_column(c->ctx, f, name ? name : "?", ty, dim);
  }
  sqlite3_finalize(st);
  return rc;
}

static char *sq_select_sql(const dlp_frame *f, const char *t, int by_rowid) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendf(s, "SELECT ");
  for (size_t i = 0, k = 0; i < f->ncols; i++) {
    const dlp_column *c = &f->cols[i];
    int n = c->type == DLP_TYPE_IMAGE ? 7 : 1;
    for (int j = 0; j < n; j++, k++) {
      if (n == 7)
        sqlite3_str_appendf(s, "%s\"%w_%w\"", k ? ", " : "", c->name,
                            sq_img_suffix[j]);
      else
        sqlite3_str_appendf(s, "%s\"%w\"", k ? ", " : "", c->name);
    }
  }
  if (f->ncols == 0) sqlite3_str_appendf(s, "NULL");
  sqlite3_str_appendf(s, " FROM \"%w\"%s", t,
                      by_rowid ? " ORDER BY rowid" : "");
  return sqlite3_str_finish(s);
}

static int sq_read_image(sq_conn *c, sqlite3_stmt *st, int k, dlp_frame *f,
                         size_t col, size_t row) {
  int all_null = 1;
  for (int j = 0; j < 7; j++)
    all_null &= sqlite3_column_type(st, k + j) == SQLITE_NULL;
  if (all_null) return DLP_OK;
  dlp_image_meta m = {0};
  m.origin = (const char *)sqlite3_column_text(st, k);
  int32_t *num[4] = {&m.height, &m.width, &m.n_channels, &m.mode};
  for (int j = 0; j < 4; j++)
    *num[j] = sqlite3_column_type(st, k + 1 + j) == SQLITE_NULL
                  ? -1
                  : sqlite3_column_int(st, k + 1 + j);
  m.error = (const char *)sqlite3_column_text(st, k + 5);
  m.bytes = sqlite3_column_blob(st, k + 6);
  m.n_bytes = (size_t)sqlite3_column_bytes(st, k + 6);
  if (!m.bytes) m.n_bytes = 0;
  return dlp_frame_set_image_meta(c->ctx, f, col, row, &m);
}

static int sq_read_vector(sq_conn *c, sqlite3_stmt *st, int k, dlp_frame *f,
                          size_t col, size_t row) {
  dlp_column *d = &f->cols[col];
  const uint8_t *b = sqlite3_column_blob(st, k);
  size_t n = (size_t)sqlite3_column_bytes(st, k);
  if (!b || n != d->dim * 4)
    return dlp_fail(c->ctx, DLP_ERR_CORRUPT,
                    "%s: row %zu, column '%s': a blob of %zu bytes, not %zu",
                    c->path, row + 1, d->name, n, d->dim * 4);
  for (size_t i = 0; i < d->dim; i++) {
    uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                 (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
    memcpy(&d->u.v[row * d->dim + i], &u, 4);
  }
  d->valid[row] = 1;
  return DLP_OK;
}

/* Reads the statement's current row into a new frame row. */
static int sq_read_row(sq_conn *c, sqlite3_stmt *st, dlp_frame *f) {
  size_t row;
  int rc = dlp_frame_add_row(c->ctx, f, &row);
  for (size_t i = 0, k = 0; rc == DLP_OK && i < f->ncols; i++) {
    dlp_type ty = f->cols[i].type;
    int kk = (int)k;
    k += ty == DLP_TYPE_IMAGE ? 7 : 1;
    if (ty == DLP_TYPE_IMAGE) {
      rc = sq_read_image(c, st, kk, f, i, row);
      continue;
    }
    if (sqlite3_column_type(st, kk) == SQLITE_NULL) continue;
    switch (ty) {
    case DLP_TYPE_STRING:
      rc = dlp_frame_set_string(c->ctx, f, i, row,
                                (const char *)sqlite3_column_text(st, kk));
      break;
    case DLP_TYPE_INT64:
      rc = dlp_frame_set_int64(c->ctx, f, i, row, sqlite3_column_int64(st, kk));
      break;
    case DLP_TYPE_DOUBLE:
      rc = dlp_frame_set_double(c->ctx, f, i, row,
                                sqlite3_column_double(st, kk));
      break;
    default:
      rc = sq_read_vector(c, st, kk, f, i, row);
    }
  }
  return rc;
}

int dlp_sqlite_read(dlp_ctx *ctx, const char *path, const dlp_io_opts *o,
                    dlp_frame **out) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    return dlp_fail(ctx, errno == ENOENT ? DLP_ERR_NOT_FOUND : DLP_ERR_IO,
                    "%s: %s", path, strerror(errno));
  sq_conn c = {ctx, NULL, path};
  char t[256];
  sqlite3_stmt *st = NULL;
  int rc = sq_open(&c, SQLITE_OPEN_READONLY);
  if (rc == DLP_OK) rc = sq_pick_table(&c, o, t, sizeof t);
  if (rc == DLP_OK) rc = dlp_frame_new(ctx, out);
  if (rc == DLP_OK) rc = sq_schema_dlp(&c, t, *out);
  int dlp_owned = rc == DLP_OK && (*out)->ncols > 0;
  if (rc == DLP_OK && !dlp_owned) rc = sq_schema_foreign(&c, t, *out);
  if (rc == DLP_OK) {
    char *sql = sq_select_sql(*out, t, dlp_owned);
    rc = sq_prepare(&c, sql, &st);
    sqlite3_free(sql);
  }
  int step = SQLITE_DONE;
  while (rc == DLP_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
    rc = sq_read_row(&c, st, *out);
  if (rc == DLP_OK && step != SQLITE_DONE) rc = sq_fail(&c, "cannot read rows");
  sqlite3_finalize(st);
  sqlite3_close(c.db);
  return rc;
}
