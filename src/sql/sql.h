/* sql.h - the dlp SQLite extension: models, images and vectors as SQL
 * functions and table-valued functions (docs/sql.md). A front: it uses
 * include/dlp.h only.
 *
 *     sqlite3 *db; sqlite3_open(":memory:", &db);
 *     char *err = NULL;
 *     if (dlpsql_register(db, &err) != SQLITE_OK) ... sqlite3_free(err);
 *     // SELECT dlp_featurize('MobileNetV2', path) FROM pics
 *
 * Built twice from the same files: as the loadable module libdlpsql (entry
 * point sqlite3_dlpsql_init, SQLite API through sqlite3ext.h) and, with
 * SQLITE_CORE, into the dlp command for 'dlp sql'. Files of the extension
 * define DLPSQL_INTERNAL before including this header; other callers (the
 * CLI) see dlpsql_register only.
 */
#ifndef DLP_SQL_H
#define DLP_SQL_H

#ifdef DLPSQL_INTERNAL
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
#include "dlp.h"
#include <stddef.h>
#else
#include <sqlite3.h>
#endif

/* Registers every dlp function and module on db. Returns SQLITE_OK, or an
 * SQLite code with *errmsg set (sqlite3_malloc'd; the caller frees it with
 * sqlite3_free). Resources are freed when db is closed. */
int dlpsql_register(sqlite3 *db, char **errmsg);

#ifdef DLPSQL_INTERNAL

/* Per-connection state: one dlp context and the models opened so far,
 * keyed by name + options text. Shared by every function and module of the
 * connection through a reference count (each registration holds one). */
typedef struct dlpsql_model {
  char *key;
  dlp_model *m;
  int on_error_null; /* options: "on_error": "null" */
  int top_k;         /* options: "k" (dlp_predict_rows; default 5) */
  int batch_size;    /* options: "batch_size" (the *_rows functions) */
  struct dlpsql_model *next;
} dlpsql_model;

typedef struct dlpsql_state {
  dlp_ctx *ctx;
  dlpsql_model *models;
  int refs;
} dlpsql_state;

/* Takes a reference (for a new registration). */
dlpsql_state *dlpsql_ref(dlpsql_state *s);
/* Drops a reference; the last one frees the state and its models. A
 * sqlite3 xDestroy callback. */
void dlpsql_unref(void *s);

/* The model named `name` (zoo name, imported name, or a .onnx/.h5 path)
 * with the JSON options text `opts` (may be NULL), opened once per
 * connection. On failure returns NULL and writes a message to err. */
dlpsql_model *dlpsql_model_get(dlpsql_state *s, const char *name,
                               const char *opts, char *err, size_t errlen);

/* The image argument (path TEXT, or encoded image BLOB) as an image cell of
 * a one-column frame; used by the scalar functions and dlp_featurize_rows.
 * Sets the cell of row `row` of column 0 of f. Returns a dlp status. */
int dlpsql_set_image(dlp_ctx *ctx, dlp_frame *f, size_t row, sqlite3_value *v);

/* Registration of each part (sql_funcs.c, sql_vec.c, sql_images.c,
 * sql_knn.c, sql_batch.c). */
int dlpsql_register_funcs(sqlite3 *db, dlpsql_state *s);
int dlpsql_register_vec(sqlite3 *db);
int dlpsql_register_images(sqlite3 *db, dlpsql_state *s);
int dlpsql_register_knn(sqlite3 *db);
int dlpsql_register_batch(sqlite3 *db, dlpsql_state *s);

#endif /* DLPSQL_INTERNAL */
#endif /* DLP_SQL_H */
