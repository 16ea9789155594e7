/* stage.h - the structs behind dlp_stage, dlp_pipeline and
 * dlp_pipeline_model, shared by the files that build or read stages
 * (params.c, stage.c, pipeline.c, persist.c, tune.c).
 *
 * A stage is a class (static: its name, kind and parameter table) plus one
 * canonical text per parameter, plus the state a fit leaves behind:
 *
 *     dlp_stage *s;
 *     dlp_stage_new(ctx, "StringIndexer", &s);     // values = defaults
 *     dlp_stage_set(ctx, s, "handle-invalid", "skip");
 *     ml_stage_param(s, "inputCol")               // "label"
 */
#ifndef DLP_ML_STAGE_H
#define DLP_ML_STAGE_H

#include "ml.h"

typedef enum ml_kind {
  ML_FEATURIZER = 0,  /* DeepImageFeaturizer (transformer) */
  ML_INDEXER,         /* StringIndexer (estimator) */
  ML_LR,              /* LogisticRegression (estimator) */
  ML_INDEX_TO_STRING, /* IndexToString (transformer) */
  ML_INDEXER_MODEL,   /* StringIndexerModel (fitted) */
  ML_LR_MODEL         /* LogisticRegressionModel (fitted) */
} ml_kind;

typedef struct ml_class {
  const char *name;
  ml_kind kind;
  int estimator;
  int user_made; /* 1: dlp_stage_new accepts it; 0: only fit/load make it */
  const dlp_param_desc *params;
  size_t nparams;
} ml_class;

struct dlp_stage {
  const ml_class *cls;
  char **values; /* cls->nparams canonical texts (malloc'd) */
  /* StringIndexerModel: the labels in index order (fitted). */
  char **labels;
  size_t n_labels;
  /* LogisticRegressionModel: what ml_lr_train learnt. */
  ml_lr_fit lr;
  int has_lr;
  /* DeepImageFeaturizer: the model opened on first use, kept for reuse
   * within the process (never copied by clone, never saved). */
  dlp_model *model;
};

struct dlp_pipeline {
  dlp_stage **stages;
  size_t n, cap;
};

struct dlp_pipeline_model {
  dlp_stage **stages;
  size_t n, cap;
};

/* params.c: the class called name (any of the six), or NULL. */
const ml_class *ml_class_find(const char *name);
/* Index of the parameter called name (MLlib or CLI name) in cls, or -1. */
long ml_class_param_index(const ml_class *cls, const char *name);
/* Validates text against d; on success *canon (malloc'd) is the canonical
 * text. DLP_ERR_ARG with the class, parameter and reason otherwise. */
int ml_param_validate(dlp_ctx *ctx, const char *cls, const dlp_param_desc *d,
                      const char *text, char **canon);
/* Parses a labels JSON array text ("" -> 0 labels). */
int ml_labels_parse(dlp_ctx *ctx, const char *text, char ***labels, size_t *n);
/* The labels as a JSON array text (malloc'd), NULL on no memory. */
char *ml_labels_json(char *const *labels, size_t n);
void ml_labels_free(char **labels, size_t n);

/* stage.c */
/* A stage of any class (fitted ones included) with default values. */
int ml_stage_make(dlp_ctx *ctx, const ml_class *cls, dlp_stage **out);
/* The value of a parameter by MLlib name (the class must have it). */
const char *ml_stage_param(const dlp_stage *s, const char *name);
double ml_stage_param_double(const dlp_stage *s, const char *name);
int ml_stage_param_bool(const dlp_stage *s, const char *name);
/* Copies the parameter values of src into dst (same parameter names). */
int ml_stage_copy_params(dlp_ctx *ctx, dlp_stage *dst, const dlp_stage *src);

/* pipeline.c */
/* A deep copy of f. */
int ml_frame_copy(dlp_ctx *ctx, const dlp_frame *f, dlp_frame **out);
/* Runs transformer s over *f, which the caller owns: columns are added in
 * place, or *f is replaced by a new frame (the old one freed) when rows are
 * dropped. A skipped stage leaves *f as it is. */
int ml_stage_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f);
/* Fits estimator s on data; *out is its fitted model stage. prev/nprev are
 * the fitted stages before it (for the label count). */
int ml_stage_fit(dlp_ctx *ctx, const dlp_stage *s, const dlp_frame *data,
                 dlp_stage *const *prev, size_t nprev, dlp_stage **out);

/* The stage kinds (stage_featurizer.c, stage_indexer.c, stage_lr.c). */
int ml_featurizer_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f);
int ml_indexer_fit(dlp_ctx *ctx, const dlp_stage *s, const dlp_frame *data,
                   dlp_stage **out);
int ml_indexer_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f);
int ml_i2s_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f);
int ml_lr_stage_fit(dlp_ctx *ctx, const dlp_stage *s, const dlp_frame *data,
                    dlp_stage *const *prev, size_t nprev, dlp_stage **out);
int ml_lr_apply(dlp_ctx *ctx, dlp_stage *s, dlp_frame **f);

/* Column lookup for the stage kinds: the index of name in f, or a
 * DLP_ERR_NOT_FOUND failure naming the stage, parameter and the columns
 * there are (returns -1 then). */
long ml_need_column(dlp_ctx *ctx, const dlp_stage *s, const dlp_frame *f,
                    const char *param);
/* Adds an empty output column named by param and returns its index, or -1
 * (DLP_ERR_SCHEMA when it exists already). */
long ml_add_output(dlp_ctx *ctx, const dlp_stage *s, dlp_frame *f,
                   const char *param, dlp_type type, size_t dim);

/* Appends to a model's stage list (the model owns s, also on failure). */
int ml_model_append(dlp_ctx *ctx, dlp_pipeline_model *pm, dlp_stage *s);

#endif /* DLP_ML_STAGE_H */
