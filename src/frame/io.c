/* io.c - dlp_frame_write / dlp_frame_read: picks the sink or source by kind
 * or file extension, and the temp-file-then-rename pattern the text and
 * .npy writers share. */
#include "frame.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void dlp_io_opts_init(dlp_io_opts *o) {
  if (o) memset(o, 0, sizeof *o);
}

static dlp_file_kind kind_of(const char *path, const dlp_io_opts *o) {
  if (o && o->kind != DLP_FILE_AUTO) return o->kind;
  if (dlp_ends_with_ci(path, ".db") || dlp_ends_with_ci(path, ".sqlite") ||
      dlp_ends_with_ci(path, ".sqlite3"))
    return DLP_FILE_SQLITE;
  if (dlp_ends_with_ci(path, ".jsonl") || dlp_ends_with_ci(path, ".ndjson"))
    return DLP_FILE_JSONL;
  if (dlp_ends_with_ci(path, ".csv")) return DLP_FILE_CSV;
  if (dlp_ends_with_ci(path, ".npy")) return DLP_FILE_NPY;
  return DLP_FILE_AUTO;
}

static int kind_fail(dlp_ctx *ctx, const char *path) {
  return dlp_fail(ctx, DLP_ERR_ARG,
                  "%s: cannot tell the file kind from the extension (use .db, "
                  ".sqlite, .jsonl, .ndjson, .csv or .npy)",
                  path);
}

int dlp_frame_write(dlp_ctx *ctx, const dlp_frame *f, const char *path,
                    const dlp_io_opts *opts) {
  if (!f || !path || !*path)
    return dlp_fail(ctx, DLP_ERR_ARG, "frame_write needs a frame and a path");
  dlp_io_opts o;
  dlp_io_opts_init(&o);
  if (opts) o = *opts;
  dlp_file_kind k = kind_of(path, &o);
  if (k == DLP_FILE_AUTO) return kind_fail(ctx, path);
  struct stat st;
  /* SQLite adds a table to an existing file; it checks the table itself. */
  if (k != DLP_FILE_SQLITE && !o.overwrite && stat(path, &st) == 0)
    return dlp_fail(ctx, DLP_ERR_ARG, "%s already exists (use overwrite)",
                    path);
  switch (k) {
  case DLP_FILE_SQLITE:
    return dlp_sqlite_write(ctx, f, path, &o);
  case DLP_FILE_JSONL:
    return dlp_jsonl_write(ctx, f, path, &o);
  case DLP_FILE_CSV:
    return dlp_csv_write(ctx, f, path, &o);
  case DLP_FILE_NPY:
    return dlp_npy_write(ctx, f, path, &o);
  default:
    return dlp_fail(ctx, DLP_ERR_ARG, "unknown file kind %d", (int)k);
  }
}

int dlp_frame_read(dlp_ctx *ctx, const char *path, const dlp_io_opts *opts,
                   dlp_frame **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "frame_read: out is NULL");
  *out = NULL;
  if (!path || !*path)
    return dlp_fail(ctx, DLP_ERR_ARG, "frame_read needs a path");
  dlp_io_opts o;
  dlp_io_opts_init(&o);
  if (opts) o = *opts;
  dlp_file_kind k = kind_of(path, &o);
  if (k == DLP_FILE_AUTO) return kind_fail(ctx, path);
  int rc;
  switch (k) {
  case DLP_FILE_SQLITE:
    rc = dlp_sqlite_read(ctx, path, &o, out);
    break;
  case DLP_FILE_JSONL:
    rc = dlp_jsonl_read(ctx, path, &o, out);
    break;
  case DLP_FILE_CSV:
    rc = dlp_csv_read(ctx, path, &o, out);
    break;
  case DLP_FILE_NPY:
    rc = dlp_npy_read(ctx, path, &o, out);
    break;
  default:
    rc = dlp_fail(ctx, DLP_ERR_ARG, "unknown file kind %d", (int)k);
  }
  if (rc != DLP_OK) {
    dlp_frame_free(*out);
    *out = NULL;
    return rc;
  }
  return dlp_ok(ctx);
}

int dlp_io_tmp_open(dlp_ctx *ctx, const char *path, dlp_io_tmp *t) {
  t->fp = NULL;
  int n = snprintf(t->tmp, sizeof t->tmp, "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof t->tmp)
    return dlp_fail(ctx, DLP_ERR_ARG, "path too long: %s", path);
  if (!(t->fp = fopen(t->tmp, "wb")))
    return dlp_fail(ctx, DLP_ERR_IO, "cannot create %s: %s", t->tmp,
                    strerror(errno));
  return DLP_OK;
}

int dlp_io_tmp_close(dlp_ctx *ctx, dlp_io_tmp *t, const char *path, int rc) {
  if (!t->fp) return rc;
  int werr = ferror(t->fp) ? EIO : 0;
  if (fclose(t->fp) != 0 && !werr) werr = errno;
  t->fp = NULL;
  if (rc == DLP_OK && werr)
    rc = dlp_fail(ctx, DLP_ERR_IO, "cannot write %s: %s", path, strerror(werr));
  if (rc == DLP_OK && rename(t->tmp, path) != 0)
    rc = dlp_fail(ctx, DLP_ERR_IO, "cannot rename %s to %s: %s", t->tmp, path,
                  strerror(errno));
  if (rc != DLP_OK) unlink(t->tmp);
  return rc;
}

int dlp_io_slurp(dlp_ctx *ctx, const char *path, uint8_t **data, size_t *len) {
  dlp_err e = {0};
  if (dlp_read_file(&e, path, dlp_ctx_max_file_bytes(ctx), data, len) != DLP_OK)
    return dlp_fail(ctx, e.code, "%s: %s", path, e.msg);
  return DLP_OK;
}
