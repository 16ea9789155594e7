/* frame.h - the frame layer's internal interface: column storage shared by
 * the table code, the operations, the folder scanner and the sinks/sources.
 *
 *     dlp_frame *out;
 *     if (dlp_frame_clone_schema(ctx, f, &out) != DLP_OK) return ...;
 *     for (...) if (dlp_frame_append_row_from(ctx, out, f, row) != DLP_OK) ...
 *
 * Files:
 *   frame.c      columns, cells, setters/getters, nulls, type names
 *   ops.c        head, take, shuffle, random_split, sample, union, drop_invalid
 *   scan.c       folder scanning into an image frame (parallel probe/decode)
 *   io.c         write/read dispatch by kind or file extension
 *   io_sqlite.c  SQLite tables (libsqlite3)
 *   io_jsonl.c   JSON Lines (cJSON)
 *   io_csv.c     CSV, RFC 4180 (by hand)
 *   io_npy.c     NumPy .npy columns (the format itself: core/npy.c)
 */
#ifndef DLP_FRAME_H
#define DLP_FRAME_H

#include "core.h"
#include "npy.h" /* .npy headers and whole arrays */

#include <stdio.h>

/* One image cell: owned strings and bytes; -1 where a number is unknown. */
typedef struct dlp_img_cell {
  char *origin;
  int32_t height, width, n_channels, mode;
  char *error;
  uint8_t *bytes;
  size_t n_bytes;
} dlp_img_cell;

/* A typed column. valid[row] is 1 when the cell holds a value. Vector
 * values live in one contiguous array of cap * dim floats. */
typedef struct dlp_column {
  char *name;
  dlp_type type;
  size_t dim;
  uint8_t *valid;
  union {
    char **s;
    int64_t *i;
    double *d;
    float *v;
    dlp_img_cell *img;
  } u;
} dlp_column;

struct dlp_frame {
  dlp_column *cols;
  size_t ncols;
  size_t nrows;
  size_t cap; /* rows allocated in every column */
};

/* A new empty frame with the same columns as src. */
int dlp_frame_clone_schema(dlp_ctx *ctx, const dlp_frame *src, dlp_frame **out);

/* Appends a deep copy of row srow of src to dst. src_col[i] is the column of
 * src that feeds dst's column i (NULL: the same index). */
int dlp_frame_append_row_from(dlp_ctx *ctx, dlp_frame *dst,
                              const dlp_frame *src, size_t srow,
                              const size_t *src_col);

/* A new frame of the rows idx[0..n) of f (deep copies). */
int dlp_frame_take_rows(dlp_ctx *ctx, const dlp_frame *f, const size_t *idx,
                        size_t n, dlp_frame **out);

/* Moves an image cell into place (taking ownership of its pointers). */
int dlp_frame_put_img_cell(dlp_ctx *ctx, dlp_frame *f, size_t col, size_t row,
                           dlp_img_cell *cell);
void dlp_img_cell_clear(dlp_img_cell *c);

/* A file being written under a temporary name ("path.tmp.<pid>"). */
typedef struct dlp_io_tmp {
  FILE *fp;
  char tmp[4096];
} dlp_io_tmp;
int dlp_io_tmp_open(dlp_ctx *ctx, const char *path, dlp_io_tmp *t);
/* Closes; when rc is DLP_OK and every write succeeded, renames the temp
 * file to path, else removes it. Returns the final status. */
int dlp_io_tmp_close(dlp_ctx *ctx, dlp_io_tmp *t, const char *path, int rc);
/* Reads a whole file within the context's max_file_bytes, the path in the
 * message on failure. */
int dlp_io_slurp(dlp_ctx *ctx, const char *path, uint8_t **data, size_t *len);

/* Sinks and sources, by kind (io.c dispatches). */
int dlp_sqlite_write(dlp_ctx *ctx, const dlp_frame *f, const char *path,
                     const dlp_io_opts *o);
int dlp_sqlite_read(dlp_ctx *ctx, const char *path, const dlp_io_opts *o,
                    dlp_frame **out);
int dlp_jsonl_write(dlp_ctx *ctx, const dlp_frame *f, const char *path,
                    const dlp_io_opts *o);
int dlp_jsonl_read(dlp_ctx *ctx, const char *path, const dlp_io_opts *o,
                   dlp_frame **out);
int dlp_csv_write(dlp_ctx *ctx, const dlp_frame *f, const char *path,
                  const dlp_io_opts *o);
int dlp_csv_read(dlp_ctx *ctx, const char *path, const dlp_io_opts *o,
                 dlp_frame **out);
int dlp_npy_write(dlp_ctx *ctx, const dlp_frame *f, const char *path,
                  const dlp_io_opts *o);
int dlp_npy_read(dlp_ctx *ctx, const char *path, const dlp_io_opts *o,
                 dlp_frame **out);

#endif /* DLP_FRAME_H */
