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
  dlp_model *m;           /* a network, or NULL for a fitted pipeline */
  dlp_pipeline_model *pm; /* a fitted pipeline directory (sql_pipeline.c) */
  int on_error_null;      /* options: "on_error": "null" */
  int top_k;              /* options: "k" (dlp_predict_rows; default 5) */
  int batch_size;         /* options: "batch_size" (the *_rows functions) */
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

/* The model named `name` (zoo name, imported name, a .onnx/.h5 path, or a
 * fitted pipeline directory) with the JSON options text `opts` (may be
 * NULL), opened once per connection. On failure returns NULL and writes a
 * message to err. */
dlpsql_model *dlpsql_model_get(dlpsql_state *s, const char *name,
                               const char *opts, char *err, size_t errlen);

/* The image argument (path TEXT, or encoded image BLOB) as an image cell of
 * a one-column frame; used by the scalar functions and dlp_featurize_rows.
 * Sets the cell of row `row` of column 0 of f. Returns a dlp status. */
int dlpsql_set_image(dlp_ctx *ctx, dlp_frame *f, size_t row, sqlite3_value *v);

/* Sets the SQL result for an image that could not be read (the image cell
 * of column img_col, row 0 of out, holds the reason): NULL with the
 * "on_error": "null" option, else an error naming fn and the image. */
void dlpsql_image_error(sqlite3_context *c, const char *fn,
                        const dlpsql_model *mm, const dlp_frame *out,
                        size_t img_col, sqlite3_value *img);
/* Sets the SQL error "fn: msg". */
void dlpsql_error(sqlite3_context *c, const char *fn, const char *msg);

/* sql_pipeline.c: fitted pipelines (a directory holding pipeline.json). */
int dlpsql_is_pipeline(const char *name);
/* Loads the pipeline at dir into mm->pm; 0 with err set on failure. */
int dlpsql_open_pipeline(dlpsql_state *s, const char *dir, dlpsql_model *mm,
                         char *err, size_t errlen);
typedef enum dlpsql_pipe_out {
  DLPSQL_PIPE_PROBABILITY, /* dlp_apply: the probability vector BLOB */
  DLPSQL_PIPE_CLASSIFY,    /* dlp_classify: JSON text */
  DLPSQL_PIPE_LABEL        /* a dlp_register function: the label */
} dlpsql_pipe_out;
/* Runs the pipeline of mm on one image (path, image BLOB, or a float32
 * feature vector BLOB) and sets the SQL result. */
void dlpsql_pipeline_run(sqlite3_context *c, const char *fn, dlpsql_state *s,
                         dlpsql_model *mm, sqlite3_value *img,
                         dlpsql_pipe_out what);

/* Registration of each part (sql_funcs.c, sql_vec.c, sql_images.c,
 * sql_knn.c, sql_batch.c, sql_pipeline.c). */
int dlpsql_register_funcs(sqlite3 *db, dlpsql_state *s);
int dlpsql_register_vec(sqlite3 *db);
int dlpsql_register_images(sqlite3 *db, dlpsql_state *s);
int dlpsql_register_knn(sqlite3 *db);
int dlpsql_register_batch(sqlite3 *db, dlpsql_state *s);
int dlpsql_register_pipeline(sqlite3 *db, dlpsql_state *s);

#endif /* DLPSQL_INTERNAL */
#endif /* DLP_SQL_H */
