/* cmd_read_images.c - 'dlp read-images': a folder of images into a table
 * file, with a summary (and the first few unreadable files) on stderr. */
#include "cli.h"

#define SHOW_INVALID 5 /* invalid files listed in the summary */

static int fill_scan_opts(const cli_args *a, dlp_scan_opts *so) {
  dlp_scan_opts_init(so);
  if (cli_given(a, "labels-from-dirs") && cli_given(a, "label"))
    return cli_usage_error(a->cmd, "use either '--labels-from-dirs' or "
                                   "'--label', not both");
  so->recursive = cli_flag(a, "recursive");
  so->labels_from_dirs = cli_flag(a, "labels-from-dirs");
  so->label_literal = cli_str(a, "label");
  so->extensions = cli_str(a, "extensions");
  so->sample_ratio = cli_real(a, "sample-ratio");
  so->seed = cli_u64(a, "seed");
  so->verify = !cli_flag(a, "no-verify");
  /* Invalid rows are dropped after counting them, for the summary. */
  so->drop_invalid = 0;
  so->embed_bytes = cli_flag(a, "embed");
  return CLI_PARSED;
}

static void print_invalid(const dlp_frame *f, long col, size_t n_invalid,
                          const char *out, int dropped) {
  size_t shown = 0;
  for (size_t r = 0; r < dlp_frame_nrows(f) && shown < SHOW_INVALID; r++) {
    dlp_image_meta m;
    if (dlp_frame_get_image_meta(f, (size_t)col, r, &m) && m.error) {
      fprintf(stderr, "  invalid: %s: %s\n", m.origin ? m.origin : "?",
              m.error);
      shown++;
    }
  }
  if (n_invalid > shown)
    fprintf(stderr, "  ... and %zu more\n", n_invalid - shown);
  if (!dropped)
    fprintf(stderr, "  see them all with: dlp show %s --errors\n", out);
}

static void print_summary(const cli_args *a, const dlp_frame *f, long col,
                          size_t n_invalid, size_t n_dropped, double secs) {
  size_t n = dlp_frame_nrows(f);
  fprintf(stderr,
          "read %zu image%s (%zu invalid, %zu dropped) from %s in %.1f s "
          "(%.0f img/s) -> %s\n",
          n, n == 1 ? "" : "s", n_invalid, n_dropped, a->pos[0], secs,
          secs > 0 ? (double)n / secs : 0.0, cli_str(a, "out"));
  if (n_invalid > 0)
    print_invalid(f, col, n_invalid, cli_str(a, "out"), n_dropped > 0);
}

/* Writes f (less its invalid rows with --drop-invalid) to --out. */
static int write_frame(const cli_args *a, dlp_ctx *ctx, const dlp_frame *f,
                       long col, size_t *n_dropped) {
  dlp_frame *kept = NULL;
  *n_dropped = 0;
  if (cli_flag(a, "drop-invalid") && col >= 0) {
    if (dlp_frame_drop_invalid(ctx, f, (size_t)col, &kept) != DLP_OK)
      return cli_lib_error(ctx);
    *n_dropped = dlp_frame_nrows(f) - dlp_frame_nrows(kept);
  }
  dlp_io_opts io;
  dlp_io_opts_init(&io);
  io.table = cli_str(a, "table");
  io.overwrite = cli_flag(a, "overwrite");
  int rc = dlp_frame_write(ctx, kept ? kept : f, cli_str(a, "out"), &io);
  dlp_frame_free(kept);
  return rc == DLP_OK ? CLI_EXIT_OK : cli_lib_error(ctx);
}

static int read_and_write(const cli_args *a, dlp_ctx *ctx,
                          const dlp_scan_opts *so) {
  cli_progress prog;
  double t0 = cli_now();
  dlp_frame *f = NULL;
  cli_progress_start(&prog, ctx, "reading images", cli_flag(a, "quiet"));
  int rc = dlp_read_images(ctx, a->pos[0], so, &f);
  cli_progress_end(&prog, ctx);
  if (rc != DLP_OK) return cli_lib_error(ctx);
  long col = dlp_frame_col_index(f, "image");
  size_t n_invalid = col >= 0 ? dlp_frame_count_errors(f, (size_t)col) : 0;
  size_t n_dropped = 0;
  rc = write_frame(a, ctx, f, col, &n_dropped);
  if (rc == CLI_EXIT_OK && !cli_flag(a, "quiet"))
    print_summary(a, f, col, n_invalid, n_dropped, cli_now() - t0);
  dlp_frame_free(f);
  if (rc == CLI_EXIT_OK && n_invalid > 0 && cli_flag(a, "fail-on-error")) {
    fprintf(stderr,
            "dlp: %zu invalid image%s (--fail-on-error); the table "
            "was written to %s\n",
            n_invalid, n_invalid == 1 ? "" : "s", cli_str(a, "out"));
    return CLI_EXIT_INVALID;
  }
  return rc;
}

int cli_cmd_read_images(const cli_args *a) {
  dlp_scan_opts so;
  int rc = fill_scan_opts(a, &so);
  if (rc != CLI_PARSED) return rc;
  if (cli_given(a, "max-pixels") && cli_u64(a, "max-pixels") == 0)
    return cli_usage_error(a->cmd, "invalid value '0' for '--max-pixels': "
                                   "expected a whole number >= 1");
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  rc = read_and_write(a, ctx, &so);
  dlp_ctx_free(ctx);
  return rc;
}
