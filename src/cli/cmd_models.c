/* cmd_models.c - 'dlp models list|info|import|fetch': the model cache. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The folder the library will use (the same rule as dlp_model_opts). */
static void cache_dir(const cli_args *a, char *buf, size_t n) {
  const char *d = cli_str(a, "model-dir");
  const char *env = getenv("DLP_MODEL_DIR");
  const char *home = getenv("HOME");
  if (d && *d)
    snprintf(buf, n, "%s", d);
  else if (env && *env)
    snprintf(buf, n, "%s", env);
  else
    snprintf(buf, n, "%s/.cache/dlp/models", home ? home : "~");
}

static int list_models(const cli_args *a, dlp_ctx *ctx) {
  dlp_model_list *l = NULL;
  if (dlp_model_list_get(ctx, cli_str(a, "model-dir"), &l) != DLP_OK)
    return cli_lib_error(ctx);
  cli_table t;
  static const char *names[] = {"name",   "input",  "preprocessing",
                                "cached", "sha256", "file"};
  static const int flags[] = {0, CLI_COL_RIGHT, 0, 0, 0, CLI_COL_CUT_LEFT};
  int bad = cli_table_init_cols(&t, 6, names, flags);
  for (size_t i = 0; !bad && i < dlp_model_list_count(l); i++) {
    const dlp_model_entry *e = dlp_model_list_at(l, i);
    char input[32] = "?", sha[16] = "";
    if (e->input_width > 0)
      snprintf(input, sizeof input, "%dx%d", e->input_height, e->input_width);
    if (e->sha256) snprintf(sha, sizeof sha, "%.12s", e->sha256);
    const char *row[6] = {e->name, input, e->preprocessing,
                          e->cached ? "yes" : "no", sha, e->file_name};
    bad = cli_table_row(&t, row);
  }
  if (!bad) {
    char dir[4096];
    cache_dir(a, dir, sizeof dir);
    printf("model cache: %s\n", dir);
    cli_table_print(&t, stdout, 70);
  }
  cli_table_free(&t);
  dlp_model_list_free(l);
  return bad ? cli_fail("out of memory") : CLI_EXIT_OK;
}

static const dlp_model_entry *find_entry(const dlp_model_list *l,
                                         const char *name) {
  for (size_t i = 0; i < dlp_model_list_count(l); i++)
    if (strcasecmp(dlp_model_list_at(l, i)->name, name) == 0)
      return dlp_model_list_at(l, i);
  return NULL;
}

static const char *norm_name(dlp_norm n) {
  switch (n) {
  case DLP_NORM_TF: return "tf (RGB, x/127.5 - 1)";
  case DLP_NORM_CAFFE: return "caffe (BGR, minus ImageNet mean)";
  case DLP_NORM_TORCH: return "torch (RGB, ImageNet mean/std)";
  case DLP_NORM_CUSTOM: return "custom mean/std";
  default: return "none (0..255)";
  }
}

static void print_info(const dlp_model_entry *e, const dlp_model_info *in,
                       int zoo) {
  printf("name:           %s\n", in->name);
  if (in->input_channels > 0)
    printf("input:          %dx%dx%d (height x width x channels)\n",
           in->input_height, in->input_width, in->input_channels);
  printf("preprocessing:  %s\n", norm_name(in->norm));
  printf("parameters:     %lld\n", (long long)in->n_params);
  printf("feature layer:  %s (%lld-d)\n",
         in->feature_layer ? in->feature_layer : "(the output)",
         (long long)in->feature_dim);
  printf("classes:        %lld\n", (long long)in->n_classes);
  printf("file:           %s\n", e->file_name ? e->file_name : "-");
  if (e->url) printf("url:            %s\n", e->url);
  if (e->cached)
    printf("cached:         yes: %s\nsha256:         %s\n", e->path,
           e->sha256);
  else if (zoo)
    printf("cached:         no: get %s and run 'dlp models import FILE' "
           "(or 'dlp models fetch %s')\n", e->file_name, e->name);
  else
    printf("cached:         no: the file is missing; import it again\n");
}

static int info_model(const cli_args *a, dlp_ctx *ctx, const char *name) {
  dlp_model_list *l = NULL;
  if (dlp_model_list_get(ctx, cli_str(a, "model-dir"), &l) != DLP_OK)
    return cli_lib_error(ctx);
  const dlp_model_entry *e = find_entry(l, name);
  int rc = CLI_EXIT_OK;
  if (!e) {
    dlp_model_list_free(l);
    return cli_fail("no model named '%s' ('dlp models list' shows them)",
                    name);
  }
  /* Zoo architectures are described from their graph (random weights:
   * no download needed); imported models are opened from the cache. */
  int zoo = e->url != NULL;
  dlp_model_opts mo;
  dlp_model_opts_init(&mo);
  mo.model_dir = cli_str(a, "model-dir");
  mo.random_weights = zoo;
  mo.fast = 0;
  dlp_model *m = NULL;
  if (dlp_model_open(ctx, e->name, &mo, &m) != DLP_OK) {
    rc = cli_lib_error(ctx);
  } else {
    dlp_model_info info;
    dlp_model_get_info(m, &info);
    print_info(e, &info, zoo);
  }
  dlp_model_free(m);
  dlp_model_list_free(l);
  return rc;
}

static int import_model(const cli_args *a, dlp_ctx *ctx, const char *file) {
  char *name = NULL;
  if (dlp_model_import(ctx, cli_str(a, "model-dir"), file, cli_str(a, "as"),
                       &name) != DLP_OK)
    return cli_lib_error(ctx);
  if (!cli_flag(a, "quiet")) {
    char dir[4096];
    cache_dir(a, dir, sizeof dir);
    fprintf(stderr, "imported %s as %s into %s\n", file, name, dir);
  }
  free(name);
  return CLI_EXIT_OK;
}

static int fetch_model(const cli_args *a, dlp_ctx *ctx, const char *name) {
  cli_progress prog;
  cli_progress_start(&prog, ctx, "downloading", cli_flag(a, "quiet"));
  int rc = dlp_model_fetch(ctx, cli_str(a, "model-dir"), name,
                           cli_str(a, "url"));
  cli_progress_end(&prog, ctx);
  if (rc != DLP_OK) return cli_lib_error(ctx);
  if (!cli_flag(a, "quiet"))
    fprintf(stderr, "fetched %s%s%s and added it to the model cache\n", name,
            cli_str(a, "url") ? " from " : "",
            cli_str(a, "url") ? cli_str(a, "url") : "");
  return CLI_EXIT_OK;
}

int cli_cmd_models(const cli_args *a) {
  const char *action = a->pos[0];
  const char *arg = a->npos > 1 ? a->pos[1] : NULL;
  int needs_arg = strcmp(action, "list") != 0;
  if (strcmp(action, "list") != 0 && strcmp(action, "info") != 0 &&
      strcmp(action, "import") != 0 && strcmp(action, "fetch") != 0)
    return cli_usage_error(a->cmd, "unknown action '%s': expected list, "
                                   "info, import or fetch", action);
  if (needs_arg && !arg)
    return cli_usage_error(a->cmd, "'%s' needs %s", action,
                           strcmp(action, "import") == 0 ? "a FILE" : "a NAME");
  if (!needs_arg && arg)
    return cli_usage_error(a->cmd, "unexpected argument '%s'", arg);
  if (cli_given(a, "as") && strcmp(action, "import") != 0)
    return cli_usage_error(a->cmd, "'--as' goes with 'import'");
  if (cli_given(a, "url") && strcmp(action, "fetch") != 0)
    return cli_usage_error(a->cmd, "'--url' goes with 'fetch'");
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  int rc;
  if (strcmp(action, "list") == 0)
    rc = list_models(a, ctx);
  else if (strcmp(action, "info") == 0)
    rc = info_model(a, ctx, arg);
  else if (strcmp(action, "import") == 0)
    rc = import_model(a, ctx, arg);
  else
    rc = fetch_model(a, ctx, arg);
  dlp_ctx_free(ctx);
  return rc;
}
