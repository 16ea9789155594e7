/* params.c - the stage classes and their parameters, described as data:
 * the CLI's options, validation, tuning grids and persistence all read
 * these tables (MLlib's names, defaults and ranges). */
#include "stage.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NPARAMS(t) (sizeof(t) / sizeof((t)[0]))

static const dlp_param_desc featurizer_params[] = {
    {"inputCol", "input-col", DLP_PARAM_STRING, "image", 0, 0, NULL,
     "image column to featurize"},
    {"outputCol", "output-col", DLP_PARAM_STRING, "features", 0, 0, NULL,
     "vector column to add (the stage is skipped when it exists)"},
    {"modelName", "model", DLP_PARAM_STRING, "InceptionV3", 0, 0, NULL,
     "zoo model name or a name registered with 'dlp models import'"},
    {"modelFile", "model-file", DLP_PARAM_STRING, "", 0, 0, NULL,
     "Keras .h5 or .onnx file to use instead of the named model"},
    {"layer", "layer", DLP_PARAM_STRING, "", 0, 0, NULL,
     "layer whose output is the feature vector (default: the model's)"},
    {"batchSize", "batch-size", DLP_PARAM_INT, "16", 1, 4096, NULL,
     "images per batch"},
    {"precision", "precision", DLP_PARAM_ENUM, "fp32", 0, 0, "fp32|bf16",
     "matrix arithmetic"},
    {"randomWeights", "random-weights", DLP_PARAM_BOOL, "false", 0, 0, NULL,
     "seeded random weights instead of the cached ones (tests, demos)"},
    {"seed", "seed", DLP_PARAM_INT, "0", 0, 9007199254740992.0, NULL,
     "seed of the random weights"},
    {"dropInvalid", "drop-invalid", DLP_PARAM_BOOL, "false", 0, 0, NULL,
     "drop rows whose image cannot be read (else their features are null)"},
};

static const dlp_param_desc indexer_params[] = {
    {"inputCol", "label-col", DLP_PARAM_STRING, "label", 0, 0, NULL,
     "string or int64 label column"},
    {"outputCol", "indexed-col", DLP_PARAM_STRING, "indexedLabel", 0, 0, NULL,
     "double column of label indices to add"},
    {"stringOrderType", "string-order", DLP_PARAM_ENUM, "frequencyDesc", 0, 0,
     "frequencyDesc|frequencyAsc|alphabetDesc|alphabetAsc",
     "label order (frequency ties are broken alphabetically)"},
    {"handleInvalid", "handle-invalid", DLP_PARAM_ENUM, "error", 0, 0,
     "error|skip|keep",
     "unseen or null labels: fail, drop the row, or index numLabels"},
};

static const dlp_param_desc lr_params[] = {
    {"featuresCol", "features-col", DLP_PARAM_STRING, "features", 0, 0, NULL,
     "vector column of features"},
    {"labelCol", "label-col", DLP_PARAM_STRING, "label", 0, 0, NULL,
     "label column (int64 or double class indices)"},
    {"predictionCol", "prediction-col", DLP_PARAM_STRING, "prediction", 0, 0,
     NULL, "double column of predicted class indices"},
    {"probabilityCol", "probability-col", DLP_PARAM_STRING, "probability", 0, 0,
     NULL, "vector column of class probabilities"},
    {"rawPredictionCol", "raw-prediction-col", DLP_PARAM_STRING,
     "rawPrediction", 0, 0, NULL, "vector column of margins"},
    {"maxIter", "max-iter", DLP_PARAM_INT, "100", 0, 1e6, NULL,
     "maximum optimiser iterations"},
    {"regParam", "reg", DLP_PARAM_DOUBLE, "0", 0, HUGE_VAL, NULL,
     "regularisation strength (>= 0)"},
    {"elasticNetParam", "elastic-net", DLP_PARAM_DOUBLE, "0", 0, 1, NULL,
     "0: L2 ... 1: L1"},
    {"tol", "tol", DLP_PARAM_DOUBLE, "1e-06", 0, HUGE_VAL, NULL,
     "convergence tolerance (>= 0)"},
    {"fitIntercept", "fit-intercept", DLP_PARAM_BOOL, "true", 0, 0, NULL,
     "fit intercept terms"},
    {"standardization", "standardization", DLP_PARAM_BOOL, "true", 0, 0, NULL,
     "penalise standardized coefficients"},
    {"family", "family", DLP_PARAM_ENUM, "auto", 0, 0,
     "auto|binomial|multinomial", "auto: binomial for 2 classes"},
    {"threshold", "threshold", DLP_PARAM_DOUBLE, "0.5", 0, 1, NULL,
     "binomial decision threshold on probability[1]"},
    {"weightCol", "weight-col", DLP_PARAM_STRING, "", 0, 0, NULL,
     "row weight column (empty: every row weighs 1)"},
};

static const dlp_param_desc i2s_params[] = {
    {"inputCol", "prediction-col", DLP_PARAM_STRING, "prediction", 0, 0, NULL,
     "double column of class indices"},
    {"outputCol", "predicted-label-col", DLP_PARAM_STRING, "predictedLabel", 0,
     0, NULL, "string column to add (null for an index out of range)"},
    {"labels", "labels", DLP_PARAM_STRING, "", 0, 0, NULL,
     "JSON array of label names (empty: the pipeline's StringIndexer's)"},
};

static const ml_class classes[] = {
    {"DeepImageFeaturizer", ML_FEATURIZER, 0, 1, featurizer_params,
     NPARAMS(featurizer_params)},
    {"StringIndexer", ML_INDEXER, 1, 1, indexer_params,
     NPARAMS(indexer_params)},
    {"LogisticRegression", ML_LR, 1, 1, lr_params, NPARAMS(lr_params)},
    {"IndexToString", ML_INDEX_TO_STRING, 0, 1, i2s_params,
     NPARAMS(i2s_params)},
    {"StringIndexerModel", ML_INDEXER_MODEL, 0, 0, indexer_params,
     NPARAMS(indexer_params)},
    {"LogisticRegressionModel", ML_LR_MODEL, 0, 0, lr_params,
     NPARAMS(lr_params)},
};

const char *dlp_stage_class_at(size_t i) {
  return i < 4 ? classes[i].name : NULL;
}

const ml_class *ml_class_find(const char *name) {
  for (size_t i = 0; name && i < NPARAMS(classes); i++)
    if (strcmp(classes[i].name, name) == 0) return &classes[i];
  return NULL;
}

const dlp_param_desc *dlp_stage_class_params(const char *class_name,
                                             size_t *n) {
  const ml_class *c = ml_class_find(class_name);
  if (n) *n = c ? c->nparams : 0;
  return c ? c->params : NULL;
}

long ml_class_param_index(const ml_class *cls, const char *name) {
  if (!name) return -1;
  for (size_t i = 0; i < cls->nparams; i++)
    if (strcmp(cls->params[i].name, name) == 0) return (long)i;
  for (size_t i = 0; i < cls->nparams; i++)
    if (strcmp(cls->params[i].cli_name, name) == 0) return (long)i;
  return -1;
}

/* A whole-string number: finite, nothing after it. */
static int parse_double(const char *t, double *v) {
  char *end;
  errno = 0;
  *v = strtod(t, &end);
  while (*end == ' ')
    end++;
  return *t && *t != ' ' && !*end && isfinite(*v); /* underflow is fine */
}

static int parse_bool(const char *t, int *v) {
  static const char *yes[] = {"true", "1", "yes"}, *no[] = {"false", "0", "no"};
  for (size_t i = 0; i < 3; i++) {
    if (strcasecmp(t, yes[i]) == 0) return *v = 1, 1;
    if (strcasecmp(t, no[i]) == 0) return *v = 0, 1;
  }
  return 0;
}

/* 1 when t is one of d's '|'-separated choices. */
static int in_choices(const dlp_param_desc *d, const char *t) {
  size_t len = strlen(t);
  for (const char *p = d->choices; p && *p;) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n == len && strncmp(p, t, n) == 0) return 1;
    p = bar ? bar + 1 : p + n;
  }
  return 0;
}

static int check_range(dlp_ctx *ctx, const char *cls, const dlp_param_desc *d,
                       const char *text, double v) {
  if (d->min < d->max && (v < d->min || v > d->max)) {
    if (isinf(d->max))
      return dlp_fail(ctx, DLP_ERR_ARG, "%s.%s = '%s': must be >= %g", cls,
                      d->name, text, d->min);
    return dlp_fail(ctx, DLP_ERR_ARG, "%s.%s = '%s': must be in [%g, %g]", cls,
                    d->name, text, d->min, d->max);
  }
  return DLP_OK;
}

static int canon_number(dlp_ctx *ctx, const char *cls, const dlp_param_desc *d,
                        const char *text, char *buf, size_t cap) {
  double v;
  if (!parse_double(text, &v))
    return dlp_fail(ctx, DLP_ERR_ARG, "%s.%s = '%s': not a finite number", cls,
                    d->name, text);
  if (d->type == DLP_PARAM_INT && v != floor(v))
    return dlp_fail(ctx, DLP_ERR_ARG, "%s.%s = '%s': not an integer", cls,
                    d->name, text);
  int rc = check_range(ctx, cls, d, text, v);
  if (rc != DLP_OK) return rc;
  if (d->type == DLP_PARAM_INT) {
    snprintf(buf, cap, "%.0f", v);
    return DLP_OK;
  }
  /* The shortest text that reads back as the same double. */
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, cap, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  return DLP_OK;
}

/* The labels parameter must be a JSON array of strings (or empty). */
static int check_labels(dlp_ctx *ctx, const char *cls, const char *text) {
  char **l = NULL;
  size_t n = 0;
  int rc = ml_labels_parse(ctx, text, &l, &n);
  ml_labels_free(l, n);
  if (rc != DLP_OK) dlp_fail_prefix(ctx, cls);
  return rc;
}

int ml_param_validate(dlp_ctx *ctx, const char *cls, const dlp_param_desc *d,
                      const char *text, char **canon) {
  char buf[64];
  const char *out = text;
  int rc = DLP_OK, b;
  *canon = NULL;
  if (!text)
    return dlp_fail(ctx, DLP_ERR_ARG, "%s.%s: no value given", cls, d->name);
  switch (d->type) {
  case DLP_PARAM_INT:
  case DLP_PARAM_DOUBLE:
    rc = canon_number(ctx, cls, d, text, buf, sizeof buf);
    out = buf;
    break;
  case DLP_PARAM_BOOL:
    if (!parse_bool(text, &b))
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "%s.%s = '%s': not a boolean (true/false, 1/0, yes/no)",
                      cls, d->name, text);
    out = b ? "true" : "false";
    break;
  case DLP_PARAM_ENUM:
    if (!in_choices(d, text))
      return dlp_fail(ctx, DLP_ERR_ARG, "%s.%s = '%s': must be one of %s", cls,
                      d->name, text, d->choices);
    break;
  case DLP_PARAM_STRING:
    if (strcmp(d->name, "labels") == 0) rc = check_labels(ctx, cls, text);
    break;
  }
  if (rc != DLP_OK) return rc;
  *canon = dlp_strdup(out);
  if (!*canon) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for a value");
  return DLP_OK;
}

void ml_labels_free(char **labels, size_t n) {
  for (size_t i = 0; labels && i < n; i++)
    free(labels[i]);
  free(labels);
}

int ml_labels_parse(dlp_ctx *ctx, const char *text, char ***labels, size_t *n) {
  *labels = NULL;
  *n = 0;
  if (!text || !*text) return DLP_OK;
  cJSON *a = cJSON_Parse(text);
  if (!cJSON_IsArray(a)) {
    cJSON_Delete(a);
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "labels must be a JSON array of strings, not '%.60s'",
                    text);
  }
  size_t k = (size_t)cJSON_GetArraySize(a), i = 0;
  char **l = dlp_calloc_array(k ? k : 1, sizeof *l);
  int rc = l ? DLP_OK : dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for labels");
  for (cJSON *e = a->child; rc == DLP_OK && e; e = e->next, i++) {
    if (!cJSON_IsString(e))
      rc = dlp_fail(ctx, DLP_ERR_ARG, "labels[%zu] is not a string", i);
    else if (!(l[i] = dlp_strdup(e->valuestring)))
      rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for labels");
  }
  cJSON_Delete(a);
  if (rc != DLP_OK) {
    ml_labels_free(l, k);
    return rc;
  }
  *labels = l;
  *n = k;
  return DLP_OK;
}

char *ml_labels_json(char *const *labels, size_t n) {
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; a && i < n; i++) {
    cJSON *s = cJSON_CreateString(labels[i]);
    if (!s || !cJSON_AddItemToArray(a, s)) {
      cJSON_Delete(s);
      cJSON_Delete(a);
      return NULL;
    }
  }
  char *txt = a ? cJSON_PrintUnformatted(a) : NULL;
  cJSON_Delete(a);
  /* cJSON allocates with malloc by default, so free() releases it. */
  return txt;
}
