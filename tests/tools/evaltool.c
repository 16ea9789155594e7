/* evaltool.c - runs the evaluators over a table file (JSON Lines written by
 * tests/ref/test_eval_vs_sklearn.py) and prints every metric as JSON:
 *   evaltool FILE [--label C] [--prediction C] [--probability C] [--raw C]
 *                 [--weight C] [--eps E]
 * Output: {"multiclass": {...every field of dlp_multiclass_metrics...} or
 * {"error": MSG, "code": NAME}, "metrics": {NAME: value or {"error", "code"}
 * for each name dlp_metric_at gives}}. Numbers print with %.17g so the test
 * compares the exact doubles. Exit status 0 unless the file cannot be read. */
#include "dlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void put_error(dlp_ctx *ctx, int rc) {
  printf("{\"error\": ");
  put_str(dlp_errmsg(ctx));
  printf(", \"code\": ");
  put_str(dlp_errstr(rc));
  printf("}");
}

static void put_array(const char *name, const double *v, size_t n) {
  printf(", \"%s\": [", name);
  for (size_t i = 0; i < n; i++)
    printf("%s%.17g", i ? ", " : "", v[i]);
  printf("]");
}

static void put_multiclass(dlp_ctx *ctx, const dlp_frame *f,
                           const dlp_eval_opts *o) {
  dlp_multiclass_metrics m;
  int rc = dlp_evaluate_multiclass(ctx, f, o, &m);
  if (rc != DLP_OK) {
    put_error(ctx, rc);
    return;
  }
  printf("{\"accuracy\": %.17g, \"f1\": %.17g, \"weightedPrecision\": %.17g, "
         "\"weightedRecall\": %.17g, \"hammingLoss\": %.17g, "
         "\"has_log_loss\": %d, \"logLoss\": %.17g, \"n_classes\": %zu, "
         "\"total_weight\": %.17g, \"n_rows\": %zu",
         m.accuracy, m.f1, m.weighted_precision, m.weighted_recall,
         m.hamming_loss, m.has_log_loss, m.log_loss, m.n_classes,
         m.total_weight, m.n_rows);
  put_array("confusion", m.confusion, m.n_classes * m.n_classes);
  put_array("precision", m.precision, m.n_classes);
  put_array("recall", m.recall, m.n_classes);
  put_array("f1_by_class", m.f1_by_class, m.n_classes);
  printf("}");
  dlp_multiclass_metrics_clear(&m);
}

static void put_metrics(dlp_ctx *ctx, const dlp_frame *f,
                        const dlp_eval_opts *o) {
  printf("{");
  for (size_t i = 0; dlp_metric_at(i); i++) {
    double v = 0;
    printf("%s\"%s\": ", i ? ", " : "", dlp_metric_at(i));
    int rc = dlp_evaluate(ctx, f, dlp_metric_at(i), o, &v);
    if (rc == DLP_OK)
      printf("%.17g", v);
    else
      put_error(ctx, rc);
  }
  printf("}");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: evaltool FILE [--label C] [--prediction C] "
                    "[--probability C] [--raw C] [--weight C] [--eps E]\n");
    return 2;
  }
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  dlp_eval_opts o;
  dlp_eval_opts_init(&o);
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (strcmp(k, "--label") == 0)
      o.label_col = v;
    else if (strcmp(k, "--prediction") == 0)
      o.prediction_col = v;
    else if (strcmp(k, "--probability") == 0)
      o.probability_col = v;
    else if (strcmp(k, "--raw") == 0)
      o.raw_prediction_col = v;
    else if (strcmp(k, "--weight") == 0)
      o.weight_col = v;
    else if (strcmp(k, "--eps") == 0)
      o.eps = strtod(v, NULL);
    else {
      fprintf(stderr, "evaltool: unknown option %s\n", k);
      dlp_ctx_free(ctx);
      return 2;
    }
  }
  dlp_frame *f = NULL;
  int rc = dlp_frame_read(ctx, argv[1], NULL, &f);
  if (rc != DLP_OK) {
    fprintf(stderr, "evaltool: %s\n", dlp_errmsg(ctx));
    dlp_ctx_free(ctx);
    return 1;
  }
  printf("{\"multiclass\": ");
  put_multiclass(ctx, f, &o);
  printf(", \"metrics\": ");
  put_metrics(ctx, f, &o);
  printf("}\n");
  dlp_frame_free(f);
  dlp_ctx_free(ctx);
  return 0;
}
