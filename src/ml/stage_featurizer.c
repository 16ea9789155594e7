/* stage_featurizer.c - DeepImageFeaturizer: sparkdl's transformer, a
 * pretrained CNN's feature vector per image (dlp_model_featurize). */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

/* Opens the stage's model once; it stays in the stage for reuse. */
static int open_model(dlp_ctx *ctx, dlp_stage *s) {
  if (s->model) return DLP_OK;
  dlp_model_opts o;
  dlp_model_opts_init(&o);
  const char *file = ml_stage_param(s, "modelFile");
  const char *layer = ml_stage_param(s, "layer");
  o.model_file = *file ? file : NULL;
  o.layer = *layer ? layer : NULL;
  o.precision = strcmp(ml_stage_param(s, "precision"), "bf16") == 0
                    ? DLP_PRECISION_BF16
                    : DLP_PRECISION_FP32;
  o.random_weights = ml_stage_param_bool(s, "randomWeights");
  o.seed = (uint64_t)ml_stage_param_double(s, "seed");
  int rc = dlp_model_open(ctx, ml_stage_param(s, "modelName"), &o, &s->model);
  if (rc != DLP_OK) dlp_fail_prefix(ctx, "DeepImageFeaturizer");
  return rc;
}

int ml_featurizer_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f) {
  /* Features computed before (a feature table): nothing to do. */
  if (dlp_frame_col_index(*f, ml_stage_param(s, "outputCol")) >= 0)
    return dlp_ok(ctx);
  long c = ml_need_column(ctx, s, *f, "inputCol");
  if (c < 0) return dlp_errcode(ctx);
  if (dlp_frame_col_type(*f, (size_t)c) != DLP_TYPE_IMAGE)
    return dlp_fail(ctx, DLP_ERR_SCHEMA,
                    "DeepImageFeaturizer: inputCol '%s' holds %s, not images",
                    ml_stage_param(s, "inputCol"),
                    dlp_type_name(dlp_frame_col_type(*f, (size_t)c)));
  int rc = open_model(ctx, s);
  if (rc != DLP_OK) return rc;
  dlp_transform_opts to;
  dlp_transform_opts_init(&to);
  to.batch_size = (size_t)ml_stage_param_double(s, "batchSize");
  to.output_col = ml_stage_param(s, "outputCol");
  to.drop_invalid = ml_stage_param_bool(s, "dropInvalid");
  dlp_frame *out = NULL;
  rc = dlp_model_featurize(ctx, s->model, *f, ml_stage_param(s, "inputCol"),
                           &to, &out);
  if (rc != DLP_OK) return rc;
  dlp_frame_free(*f);
  *f = out;
  return dlp_ok(ctx);
}
