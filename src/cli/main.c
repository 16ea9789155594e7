/* main.c - the dlp command: picks the sub-command and runs it; handles the
 * global --help / --version and 'dlp help [COMMAND]'. */
#include "cli.h"

#include <string.h>

int cli_cmd_help(const cli_args *a) {
  if (a->npos == 0) {
    cli_print_commands(stdout);
    return CLI_EXIT_OK;
  }
  const cli_cmd *cmd = cli_find_command(a->pos[0]);
  if (!cmd) return cli_usage_error(a->cmd, "unknown command '%s'", a->pos[0]);
  cli_print_help(cmd, stdout);
  return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    /* No command is a usage error, but the list is what the user needs. */
    cli_print_commands(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
    name = "help";
  else if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
    name = "version";
  const cli_cmd *cmd = cli_find_command(name);
  if (!cmd) {
    fprintf(stderr, "dlp: unknown command '%s' (see 'dlp help')\n", argv[1]);
    return CLI_EXIT_USAGE;
  }
  cli_args args;
  int rc = cli_parse(cmd, argc - 1, argv + 1, &args);
  if (rc != CLI_PARSED) return rc;
  rc = cmd->run(&args);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "dlp: cannot write to standard output\n");
    return CLI_EXIT_FAIL;
  }
  return rc;
}
