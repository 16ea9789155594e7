/* cmd_split.c - 'dlp split': a table cut into seeded random parts
 * (train/test), each written to its own file. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 16

typedef struct split_plan {
  double w[MAX_PARTS];
  const char *out[MAX_PARTS];
  char *out_buf; /* storage of out[] */
  int k;
} split_plan;

static int plan_split(const cli_args *a, split_plan *p) {
  p->out_buf = NULL;
  p->k = cli_parse_weights(cli_str(a, "weights"), p->w, MAX_PARTS);
  if (p->k < 1)
    return cli_usage_error(a->cmd,
                           "invalid value '%s' for '--weights': "
                           "expected 1 to %d numbers > 0, "
                           "comma-separated",
                           cli_str(a, "weights"), MAX_PARTS);
  int nout = cli_split_list(cli_str(a, "out"), &p->out_buf, p->out, MAX_PARTS);
  if (nout < 0)
    return cli_usage_error(a->cmd,
                           "invalid value '%s' for '--out': expected "
                           "file names, comma-separated",
                           cli_str(a, "out"));
  if (nout != p->k)
    return cli_usage_error(a->cmd,
                           "'--weights' has %d part%s but '--out' "
                           "names %d file%s",
                           p->k, p->k == 1 ? "" : "s", nout,
                           nout == 1 ? "" : "s");
  for (int i = 0; i < nout; i++)
    for (int j = 0; j < i; j++)
      if (strcmp(p->out[i], p->out[j]) == 0)
        return cli_usage_error(a->cmd, "'--out' names '%s' twice", p->out[i]);
  return CLI_PARSED;
}

static void print_summary(const dlp_frame *f, dlp_frame **parts,
                          const split_plan *p, const char *in) {
  fprintf(stderr, "split %zu rows of %s:", dlp_frame_nrows(f), in);
  for (int i = 0; i < p->k; i++)
    fprintf(stderr, "%s %zu -> %s", i ? "," : "", dlp_frame_nrows(parts[i]),
            p->out[i]);
  fputc('\n', stderr);
}

static int split_and_write(const cli_args *a, dlp_ctx *ctx,
                           const split_plan *p) {
  dlp_io_opts io;
  dlp_io_opts_init(&io);
  io.table = cli_str(a, "table");
  dlp_frame *f = NULL, *parts[MAX_PARTS] = {NULL};
  if (dlp_frame_read(ctx, a->pos[0], &io, &f) != DLP_OK)
    return cli_lib_error(ctx);
  int rc = CLI_EXIT_OK;
  io.overwrite = cli_flag(a, "overwrite");
  if (dlp_frame_random_split(ctx, f, p->w, (size_t)p->k, cli_u64(a, "seed"),
                             parts) != DLP_OK)
    rc = cli_lib_error(ctx);
  for (int i = 0; rc == CLI_EXIT_OK && i < p->k; i++)
    if (dlp_frame_write(ctx, parts[i], p->out[i], &io) != DLP_OK)
      rc = cli_lib_error(ctx);
  if (rc == CLI_EXIT_OK && !cli_flag(a, "quiet"))
    print_summary(f, parts, p, a->pos[0]);
  for (int i = 0; i < p->k; i++)
    dlp_frame_free(parts[i]);
  dlp_frame_free(f);
  return rc;
}

int cli_cmd_split(const cli_args *a) {
  split_plan p;
  int rc = plan_split(a, &p);
  if (rc == CLI_PARSED) {
    dlp_ctx *ctx = cli_ctx_new(a);
    rc = ctx ? split_and_write(a, ctx, &p) : CLI_EXIT_FAIL;
    dlp_ctx_free(ctx);
  }
  free(p.out_buf);
  return rc;
}
