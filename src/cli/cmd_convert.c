/* cmd_convert.c - 'dlp convert IN OUT': a table from one file format to
 * another (SQLite, JSON Lines, CSV, .npy), chosen by the file extensions. */
#include "cli.h"

int cli_cmd_convert(const cli_args *a) {
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  dlp_io_opts in, out;
  dlp_io_opts_init(&in);
  dlp_io_opts_init(&out);
  in.table = out.table = cli_str(a, "table");
  in.column = out.column = cli_str(a, "column");
  out.overwrite = cli_flag(a, "overwrite");
  dlp_frame *f = NULL;
  int rc = CLI_EXIT_OK;
  if (dlp_frame_read(ctx, a->pos[0], &in, &f) != DLP_OK ||
      dlp_frame_write(ctx, f, a->pos[1], &out) != DLP_OK)
    rc = cli_lib_error(ctx);
  else if (!cli_flag(a, "quiet"))
    fprintf(stderr, "wrote %zu row%s: %s -> %s\n", dlp_frame_nrows(f),
            dlp_frame_nrows(f) == 1 ? "" : "s", a->pos[0], a->pos[1]);
  dlp_frame_free(f);
  dlp_ctx_free(ctx);
  return rc;
}
