/* pipetool.c - fits, saves, loads and applies pipelines for the reference
 * tests (tests/ref/test_pipeline_vs_sklearn.py):
 *
 *   pipetool fit TABLE MODEL_DIR OUT [name=value ...]
 *       StringIndexer(label -> indexedLabel) + LogisticRegression
 *       (labelCol=indexedLabel) + IndexToString fitted on TABLE (any
 *       format dlp_frame_read takes, e.g. JSON Lines with a "features"
 *       array and a "label"); name=value sets a LogisticRegression
 *       parameter, si.name=value a StringIndexer one. Saves the model to
 *       MODEL_DIR (replacing it) and writes its predictions on TABLE to OUT.
 *   pipetool predict MODEL_DIR TABLE OUT
 *       loads MODEL_DIR and writes its predictions on TABLE to OUT.
 *
 * Exit status 0 on success; 1 with "pipetool: message" on stderr. */
#include "dlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(dlp_ctx *ctx, const char *what) {
  fprintf(stderr, "pipetool: %s: %s\n", what, dlp_errmsg(ctx));
  return 1;
}

static int add(dlp_ctx *ctx, dlp_pipeline *p, const char *cls,
               dlp_stage **out) {
  dlp_stage *s = NULL;
  if (dlp_stage_new(ctx, cls, &s) != DLP_OK) return DLP_ERR_ARG;
  *out = s;
  return dlp_pipeline_add(ctx, p, s);
}

static int build(dlp_ctx *ctx, int argc, char **argv, dlp_pipeline **out) {
  dlp_pipeline *p = NULL;
  dlp_stage *si, *lr, *i2s;
  if (dlp_pipeline_new(ctx, &p) != DLP_OK) return DLP_ERR_NOMEM;
  *out = p;
  if (add(ctx, p, "StringIndexer", &si) != DLP_OK ||
      add(ctx, p, "LogisticRegression", &lr) != DLP_OK ||
      add(ctx, p, "IndexToString", &i2s) != DLP_OK ||
      dlp_stage_set(ctx, lr, "labelCol", "indexedLabel") != DLP_OK)
    return DLP_ERR_ARG;
  for (int i = 0; i < argc; i++) {
    char name[128];
    const char *eq = strchr(argv[i], '=');
    if (!eq || (size_t)(eq - argv[i]) >= sizeof name) {
      fprintf(stderr, "pipetool: expected name=value, got '%s'\n", argv[i]);
      return DLP_ERR_ARG;
    }
    memcpy(name, argv[i], (size_t)(eq - argv[i]));
    name[eq - argv[i]] = '\0';
    int to_si = strncmp(name, "si.", 3) == 0;
    if (dlp_stage_set(ctx, to_si ? si : lr, name + (to_si ? 3 : 0), eq + 1) !=
        DLP_OK)
      return DLP_ERR_ARG;
  }
  return DLP_OK;
}

static int predict(dlp_ctx *ctx, dlp_pipeline_model *pm, const dlp_frame *f,
                   const char *out) {
  dlp_frame *t = NULL;
  dlp_io_opts o;
  dlp_io_opts_init(&o);
  o.overwrite = 1;
  int rc = dlp_pipeline_model_transform(ctx, pm, f, &t);
  if (rc == DLP_OK) rc = dlp_frame_write(ctx, t, out, &o);
  dlp_frame_free(t);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 5 || (strcmp(argv[1], "fit") && strcmp(argv[1], "predict"))) {
    fprintf(stderr, "usage: pipetool fit TABLE MODEL_DIR OUT [name=value...]\n"
                    "       pipetool predict MODEL_DIR TABLE OUT\n");
    return 2;
  }
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  int fitting = strcmp(argv[1], "fit") == 0, status = 0;
  const char *table = fitting ? argv[2] : argv[3];
  const char *dir = fitting ? argv[3] : argv[2];
  dlp_frame *f = NULL;
  dlp_pipeline *p = NULL;
  dlp_pipeline_model *pm = NULL;
  if (dlp_frame_read(ctx, table, NULL, &f) != DLP_OK)
    status = fail(ctx, table);
  else if (fitting && build(ctx, argc - 5, argv + 5, &p) != DLP_OK)
    status = fail(ctx, "pipeline");
  else if (fitting && dlp_pipeline_fit(ctx, p, f, &pm) != DLP_OK)
    status = fail(ctx, "fit");
  else if (fitting && dlp_pipeline_model_save(ctx, pm, dir, 1) != DLP_OK)
    status = fail(ctx, "save");
  else if (!fitting && dlp_pipeline_model_load(ctx, dir, &pm) != DLP_OK)
    status = fail(ctx, "load");
  else if (predict(ctx, pm, f, argv[4]) != DLP_OK)
    status = fail(ctx, "predict");
  dlp_pipeline_model_free(pm);
  dlp_pipeline_free(p);
  dlp_frame_free(f);
  dlp_ctx_free(ctx);
  return status;
}
