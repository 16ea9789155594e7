/* cmd_predict.c - 'dlp predict': the top-K classes of each image as a JSON
 * string column (the steps are shared with featurize: cmd_featurize.c). */
#include "cli.h"

int cli_cmd_predict(const cli_args *a) {
  return cli_model_command(a, CLI_PREDICT);
}
