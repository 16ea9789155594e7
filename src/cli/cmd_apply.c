/* cmd_apply.c - 'dlp apply': any Keras/ONNX model file over an image or
 * vector column (the steps are shared with featurize: cmd_featurize.c). */
#include "cli.h"

int cli_cmd_apply(const cli_args *a) { return cli_model_command(a, CLI_APPLY); }
