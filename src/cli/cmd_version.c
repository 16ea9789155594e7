/* cmd_version.c - 'dlp version': the command's and the library's versions. */
#include "cli.h"

int cli_cmd_version(const cli_args *a) {
  (void)a;
  /* DLP_VERSION is the header this command was built with; dlp_version()
   * the library actually loaded, which differs after a partial upgrade. */
  printf("dlp %s (libdlp %s)\n", DLP_VERSION, dlp_version());
  return CLI_EXIT_OK;
}
