/* cmd_evaluate.c - 'dlp evaluate': a saved pipeline scored on labelled
 * data: the chosen metrics (MLlib's definitions), the confusion matrix with
 * class names, optionally as JSON and as an HTML report. A label the
 * pipeline never saw is an error naming it: its rows cannot be scored. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#define MAX_METRICS 16

typedef struct eval_plan {
  const char *metric[MAX_METRICS];
  double value[MAX_METRICS];
  int n;
  char *buf;
} eval_plan;

static int plan_metrics(const cli_args *a, eval_plan *p) {
  const char *spec = cli_str(a, "metric");
  if (!spec)
    spec = "accuracy,f1,weightedPrecision,weightedRecall,logLoss,"
           "hammingLoss";
  p->n = cli_split_list(spec, &p->buf, p->metric, MAX_METRICS);
  if (p->n < 1)
    return cli_usage_error(a->cmd,
                           "invalid value '%s' for '--metric': "
                           "expected metric names, comma-separated",
                           spec);
  for (int i = 0; i < p->n; i++)
    if (dlp_metric_larger_is_better(p->metric[i]) < 0)
      return cli_usage_error(a->cmd,
                             "unknown metric '%s' for '--metric' "
                             "(accuracy, f1, weightedPrecision, "
                             "weightedRecall, weightedFMeasure, "
                             "logLoss, hammingLoss, areaUnderROC, "
                             "areaUnderPR)",
                             p->metric[i]);
  return CLI_PARSED;
}

/* Points the pipeline's StringIndexerModel at the data's label column. */
static int use_label_col(const cli_args *a, dlp_ctx *ctx,
                         dlp_pipeline_model *pm, const char *col) {
  for (size_t i = 0; i < dlp_pipeline_model_nstages(pm); i++) {
    dlp_stage *s = dlp_pipeline_model_stage(pm, i);
    if (strcmp(dlp_stage_class(s), "StringIndexerModel") != 0) continue;
    const char *cur = dlp_stage_get(s, "inputCol");
    if (cur && strcmp(cur, col) != 0 &&
        dlp_stage_set(ctx, s, "inputCol", col) != DLP_OK)
      return cli_lib_error(ctx);
    return CLI_EXIT_OK;
  }
  fprintf(stderr,
          "dlp %s: %s has no StringIndexerModel, so it cannot index "
          "labels\n",
          a->cmd->name, cli_str(a, "pipeline"));
  return CLI_EXIT_FAIL;
}

/* Every label of the data must be a class of the pipeline. */
static int check_labels(const cli_args *a, const dlp_pipeline_model *pm,
                        const cli_ml_data *d) {
  size_t nl = 0, *keep = NULL, nkeep = 0;
  const char *const *labels = dlp_pipeline_model_labels(pm, &nl);
  char bad[256];
  size_t unknown = cli_ml_unknown_labels(d->all, d->label_col, labels, nl, bad,
                                         sizeof bad, &keep, &nkeep);
  if (!keep) return cli_fail("out of memory");
  free(keep);
  if (!unknown) return CLI_EXIT_OK;
  fprintf(stderr,
          "dlp %s: label '%s' (%zu row%s with unknown labels) is not "
          "one of the pipeline's %zu classes:",
          a->cmd->name, bad, unknown, unknown == 1 ? "" : "s", nl);
  for (size_t i = 0; i < nl && i < 20; i++)
    fprintf(stderr, "%s %s", i ? "," : "", labels[i]);
  fputs(nl > 20 ? ", ...\n" : "\n", stderr);
  return CLI_EXIT_FAIL;
}

static void json_string(const char *s, FILE *out) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c < 0x20)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

static void print_json(const eval_plan *p, const dlp_multiclass_metrics *m,
                       const char *const *labels, size_t nl) {
  printf("{\"rows\": %zu, \"metrics\": {", m->n_rows);
  for (int i = 0; i < p->n; i++) {
    printf("%s", i ? ", " : "");
    json_string(p->metric[i], stdout);
    printf(": %.17g", p->value[i]);
  }
  printf("}, \"labels\": [");
  for (size_t i = 0; i < nl; i++) {
    printf("%s", i ? ", " : "");
    json_string(labels[i], stdout);
  }
  printf("], \"confusion\": [");
  for (size_t i = 0; i < m->n_classes; i++) {
    printf("%s[", i ? ", " : "");
    for (size_t j = 0; j < m->n_classes; j++)
      printf("%s%.17g", j ? ", " : "", m->confusion[i * m->n_classes + j]);
    printf("]");
  }
  printf("]}\n");
}

static void print_text(const eval_plan *p, const dlp_multiclass_metrics *m,
                       const char *const *labels, size_t nl) {
  printf("%zu rows, %zu classes\n", m->n_rows, nl);
  for (int i = 0; i < p->n; i++)
    printf("%-18s %.6f\n", p->metric[i], p->value[i]);
  if (m->n_classes <= 12)
    cli_ml_print_confusion(m, labels, nl, stdout);
  else
    printf("(%zu classes: the confusion matrix is in --json and --report)\n",
           m->n_classes);
}

/* Scores pred; prints text or JSON. */
static int score(const cli_args *a, dlp_ctx *ctx, eval_plan *p,
                 const dlp_pipeline_model *pm, const dlp_frame *pred) {
  dlp_eval_opts eo;
  dlp_eval_opts_init(&eo);
  eo.label_col = "indexedLabel";
  for (int i = 0; i < p->n; i++)
    if (dlp_evaluate(ctx, pred, p->metric[i], &eo, &p->value[i]) != DLP_OK)
      return cli_lib_error(ctx);
  dlp_multiclass_metrics m;
  memset(&m, 0, sizeof m);
  if (dlp_evaluate_multiclass(ctx, pred, &eo, &m) != DLP_OK)
    return cli_lib_error(ctx);
  size_t nl = 0;
  const char *const *labels = dlp_pipeline_model_labels(pm, &nl);
  if (cli_flag(a, "json"))
    print_json(p, &m, labels, nl);
  else
    print_text(p, &m, labels, nl);
  dlp_multiclass_metrics_clear(&m);
  return CLI_EXIT_OK;
}

static int evaluate(const cli_args *a, dlp_ctx *ctx, eval_plan *p,
                    dlp_pipeline_model *pm, cli_ml_data *d) {
  int rc = use_label_col(a, ctx, pm, d->label_col);
  if (rc == CLI_EXIT_OK) rc = check_labels(a, pm, d);
  dlp_frame *pred = NULL;
  if (rc == CLI_EXIT_OK) {
    cli_progress prog;
    cli_progress_start(&prog, ctx, NULL, cli_flag(a, "quiet"));
    if (dlp_pipeline_model_transform(ctx, pm, d->all, &pred) != DLP_OK)
      rc = cli_lib_error(ctx);
    cli_progress_end(&prog, ctx);
  }
  if (rc == CLI_EXIT_OK) rc = score(a, ctx, p, pm, pred);
  if (rc == CLI_EXIT_OK && cli_str(a, "report"))
    rc = cli_ml_write_report(a, ctx, pm, pred, cli_str(a, "report"),
                             "dlp evaluate");
  dlp_frame_free(pred);
  return rc;
}

int cli_cmd_evaluate(const cli_args *a) {
  eval_plan p = {0};
  int rc = plan_metrics(a, &p);
  if (rc != CLI_PARSED) {
    free(p.buf);
    return rc;
  }
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) {
    free(p.buf);
    return CLI_EXIT_FAIL;
  }
  dlp_pipeline_model *pm = NULL;
  cli_ml_data d;
  memset(&d, 0, sizeof d);
  rc = cli_ml_data_init(a, &d);
  if (rc == CLI_PARSED) rc = cli_ml_load(a, ctx, &pm);
  if (rc == CLI_EXIT_OK) rc = cli_ml_read_labelled(a, ctx, &d);
  if (rc == CLI_EXIT_OK) rc = evaluate(a, ctx, &p, pm, &d);
  cli_ml_data_free(&d);
  dlp_pipeline_model_free(pm);
  dlp_ctx_free(ctx);
  free(p.buf);
  return rc;
}
