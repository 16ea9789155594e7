/* frametool.c - a small driver of the frame API for the reference tests
 * (tests/ref/test_io_vs_python.py), independent of the CLI:
 *   frametool scan DIR OUT [--labels] [--embed] [--no-verify] [--all]
 *   frametool convert IN OUT [--table T]
 *   frametool npy IN OUT.npy COLUMN
 *   frametool make-vectors OUT N DIM SEED
 * Exit status 0 on success; on failure the library's message on stderr. */
#include "core.h"
#include "dlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(dlp_ctx *ctx, int rc) {
  fprintf(stderr, "frametool: %s (%s)\n", dlp_errmsg(ctx), dlp_errstr(rc));
  return 1;
}

static int has_flag(int argc, char **argv, const char *flag) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], flag) == 0) return 1;
  return 0;
}

static int write_out(dlp_ctx *ctx, dlp_frame *f, const char *path,
                     const char *column) {
  dlp_io_opts o;
  dlp_io_opts_init(&o);
  o.overwrite = 1;
  o.column = column;
  int rc = dlp_frame_write(ctx, f, path, &o);
  dlp_frame_free(f);
  return rc == DLP_OK ? 0 : fail(ctx, rc);
}

static int cmd_scan(dlp_ctx *ctx, int argc, char **argv) {
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  o.labels_from_dirs = has_flag(argc, argv, "--labels");
  o.recursive = 1;
  o.embed_bytes = has_flag(argc, argv, "--embed");
  o.verify = !has_flag(argc, argv, "--no-verify");
  if (has_flag(argc, argv, "--all")) o.extensions = "*";
  dlp_frame *f = NULL;
  int rc = dlp_read_images(ctx, argv[2], &o, &f);
  return rc == DLP_OK ? write_out(ctx, f, argv[3], NULL) : fail(ctx, rc);
}

static int cmd_convert(dlp_ctx *ctx, int argc, char **argv, const char *col) {
  dlp_io_opts o;
  dlp_io_opts_init(&o);
  for (int i = 4; i + 1 < argc; i++)
    if (strcmp(argv[i], "--table") == 0) o.table = argv[i + 1];
  dlp_frame *f = NULL;
  int rc = dlp_frame_read(ctx, argv[2], &o, &f);
  return rc == DLP_OK ? write_out(ctx, f, argv[3], col) : fail(ctx, rc);
}

/* id int64 = row, v vector[dim] of seeded uniform floats in [-1, 1). */
static int cmd_make_vectors(dlp_ctx *ctx, char **argv) {
  size_t n = strtoul(argv[3], NULL, 10), dim = strtoul(argv[4], NULL, 10);
  dlp_rng rng;
  dlp_rng_seed(&rng, strtoull(argv[5], NULL, 10));
  float *v = dlp_malloc_array(dim ? dim : 1, sizeof *v);
  dlp_frame *f = NULL;
  int rc = v ? dlp_frame_new(ctx, &f) : DLP_ERR_NOMEM;
  if (rc == DLP_OK) rc = dlp_frame_add_column(ctx, f, "id", DLP_TYPE_INT64, 0);
  if (rc == DLP_OK)
    rc = dlp_frame_add_column(ctx, f, "v", DLP_TYPE_VECTOR, dim);
  for (size_t r = 0; rc == DLP_OK && r < n; r++) {
    for (size_t k = 0; k < dim; k++)
      v[k] = (float)(dlp_rng_uniform(&rng) * 2 - 1);
    rc = dlp_frame_add_row(ctx, f, NULL);
    if (rc == DLP_OK) rc = dlp_frame_set_int64(ctx, f, 0, r, (int64_t)r);
    if (rc == DLP_OK) rc = dlp_frame_set_vector(ctx, f, 1, r, v);
  }
  free(v);
  if (rc != DLP_OK) {
    dlp_frame_free(f);
    return fail(ctx, rc);
  }
  return write_out(ctx, f, argv[2], NULL);
}

int main(int argc, char **argv) {
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  int st = 2;
  const char *cmd = argc > 1 ? argv[1] : "";
  if (strcmp(cmd, "scan") == 0 && argc >= 4)
    st = cmd_scan(ctx, argc, argv);
  else if (strcmp(cmd, "convert") == 0 && argc >= 4)
    st = cmd_convert(ctx, argc, argv, NULL);
  else if (strcmp(cmd, "npy") == 0 && argc == 5)
    st = cmd_convert(ctx, argc, argv, argv[4]);
  else if (strcmp(cmd, "make-vectors") == 0 && argc == 6)
    st = cmd_make_vectors(ctx, argv);
  else
    fprintf(stderr, "usage: frametool scan|convert|npy|make-vectors ...\n");
  dlp_ctx_free(ctx);
  return st;
}
