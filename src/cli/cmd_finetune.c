/* cmd_finetune.c - 'dlp finetune': options to dlp_finetune_opts, the
 * labelled input (shared with fit), one line per epoch, the summary and the
 * optional CSV of validation predictions; with --grid, the parameter maps
 * of dlp_finetune_grid from the spec, their table and JSON. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct ft_print {
  const cli_args *a;
  dlp_ctx *ctx;
  cli_progress *prog;
  int epochs;
} ft_print;

static int ft_quiet(const cli_args *a) { return cli_flag(a, "quiet"); }

/* One line per epoch on stdout; the progress line is redrawn after it. */
static int ft_epoch_line(void *user, const dlp_finetune_epoch *s) {
  ft_print *p = user;
  cli_progress_end(p->prog, p->ctx);
  printf("epoch %3d/%d  train_loss %.4f  train_acc %.4f", s->epoch + 1,
         p->epochs, s->train_loss, s->train_acc);
  if (!isnan(s->val_loss))
    printf("  val_loss %.4f  val_acc %.4f", s->val_loss, s->val_acc);
  printf("  lr %.6g  %.1fs\n", s->lr, s->seconds);
  fflush(stdout);
  cli_progress_start(p->prog, p->ctx, NULL, ft_quiet(p->a));
  return 0;
}

/* The value of option `name` if it is one of ok[] (NULL-terminated);
 * otherwise prints the usage error and returns 0. */
static int ft_choice(const cli_args *a, const char *name, const char *const *ok,
                     const char **out) {
  const char *v = cli_str(a, name);
  char list[128] = "";
  for (int i = 0; ok[i]; i++) {
    if (strcmp(v, ok[i]) == 0) {
      *out = v;
      return 1;
    }
    size_t n = strlen(list);
    snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", ok[i]);
  }
  cli_usage_error(a->cmd, "invalid value '%s' for '--%s': expected one of %s",
                  v, name, list);
  return 0;
}

/* Options that need more than the parser's checks. */
static int ft_opts(const cli_args *a, dlp_finetune_opts *o) {
  const cli_cmd *c = a->cmd;
  dlp_finetune_opts_init(o);
  o->model = cli_str(a, "model");
  o->model_file = cli_str(a, "model-file");
  if (!o->model == !o->model_file)
    return cli_usage_error(c, "give either '--model NAME' or '--model-file "
                              "FILE'");
  o->random_weights = cli_flag(a, "random-weights");
  if (o->random_weights && !o->model)
    return cli_usage_error(c, "'--random-weights' goes with '--model NAME' "
                              "(a zoo architecture)");
  o->model_dir = cli_str(a, "model-dir");
  o->weights_seed = cli_u64(a, "weights-seed");
  const char *v = cli_str(a, "input-size");
  if (v && !dlp_parse_size(v, &o->input_height, &o->input_width))
    return cli_usage_error(c,
                           "invalid value '%s' for '--input-size': "
                           "expected HxW, e.g. 224x224",
                           v);
  if ((v = cli_str(a, "preprocess"))) {
    if (!dlp_norm_from_name(v, &o->norm))
      return cli_usage_error(c,
                             "invalid value '%s' for '--preprocess': "
                             "expected tf, caffe, torch or none",
                             v);
    o->norm_set = 1;
  }
  static const char *const optims[] = {"adam", "adamw", "sgd", NULL};
  static const char *const scheds[] = {"cosine", "constant", "step", NULL};
  if (!ft_choice(a, "optimizer", optims, &o->optimizer) ||
      !ft_choice(a, "schedule", scheds, &o->schedule))
    return CLI_EXIT_USAGE;
  o->checkpoint_dir = cli_str(a, "checkpoint-dir");
  o->resume = cli_flag(a, "resume");
  if (o->resume && !o->checkpoint_dir)
    return cli_usage_error(c, "'--resume' needs '--checkpoint-dir DIR'");
  o->feature_layer = cli_str(a, "feature-layer");
  o->head = cli_str(a, "head");
  o->freeze_until = cli_str(a, "freeze-until");
  o->epochs = (int)cli_int(a, "epochs");
  o->batch_size = (size_t)cli_int(a, "batch-size");
  o->lr = cli_real(a, "lr");
  o->weight_decay = cli_real(a, "weight-decay");
  o->val_split = cli_real(a, "val-split");
  o->seed = cli_u64(a, "seed");
  o->augment = !cli_flag(a, "no-augment");
  if ((v = cli_str(a, "crop-scale"))) {
    double lo, hi;
    char tail;
    if (sscanf(v, "%lf,%lf%c", &lo, &hi, &tail) != 2 || !(lo > 0) ||
        !(lo <= hi) || !(hi <= 1))
      return cli_usage_error(c,
                             "invalid value '%s' for '--crop-scale': "
                             "expected MIN,MAX with 0 < MIN <= MAX <= 1",
                             v);
    o->aug.scale[0] = lo;
    o->aug.scale[1] = hi;
  }
  o->patience = (int)cli_int(a, "patience");
  o->restore_best = !cli_flag(a, "no-restore-best");
  o->overwrite = cli_flag(a, "overwrite");
  return CLI_PARSED;
}

/* A CSV field, quoted when it needs to be. */
static void ft_csv(FILE *fp, const char *s) {
  if (!strpbrk(s, ",\"\n\r")) {
    fputs(s, fp);
    return;
  }
  fputc('"', fp);
  for (; *s; s++) {
    if (*s == '"') fputc('"', fp);
    fputc(*s, fp);
  }
  fputc('"', fp);
}

/* origin,label,predicted,<class>... : one row per validation image. */
static int ft_write_val(const char *path, const cli_ml_data *d,
                        const dlp_finetune_result *r) {
  FILE *fp = fopen(path, "w");
  if (!fp) return cli_fail("cannot write %s", path);
  long ic = dlp_frame_col_index(d->all, d->image_col);
  long lc = dlp_frame_col_index(d->all, d->label_col);
  fputs("origin,label,predicted", fp);
  for (size_t c = 0; c < r->n_classes; c++) {
    fputc(',', fp);
    ft_csv(fp, r->classes[c]);
  }
  fputc('\n', fp);
  for (size_t i = 0; i < r->n_val; i++) {
    dlp_image_meta m;
    const char *label = "";
    size_t row = r->val_rows[i], best = 0;
    const float *p = r->val_probs + i * r->n_classes;
    int ok = dlp_frame_get_image_meta(d->all, (size_t)ic, row, &m);
    (void)dlp_frame_get_string(d->all, (size_t)lc, row, &label);
    for (size_t c = 1; c < r->n_classes; c++)
      if (p[c] > p[best]) best = c;
    ft_csv(fp, ok && m.origin ? m.origin : "");
    fputc(',', fp);
    ft_csv(fp, label);
    fputc(',', fp);
    ft_csv(fp, r->classes[best]);
    for (size_t c = 0; c < r->n_classes; c++)
      fprintf(fp, ",%.9g", p[c]);
    fputc('\n', fp);
  }
  if (fclose(fp) != 0) return cli_fail("cannot write %s", path);
  return CLI_EXIT_OK;
}

/* " (blue 3, green 2, red 3)": the validation images per class, when that
 * is short (else ""). */
static void ft_per_class(const dlp_finetune_result *r, char *out, size_t cap) {
  size_t len = (size_t)snprintf(out, cap, " (");
  for (size_t c = 0; r->n_val && c < r->n_classes && len < cap; c++)
    len += (size_t)snprintf(out + len, cap - len, "%s%s %zu", c ? ", " : "",
                            r->classes[c], r->n_val_class[c]);
  if (r->n_val && len + 2 <= cap)
    memcpy(out + len, ")", 2);
  else
    out[0] = 0;
}

static void ft_summary(const cli_args *a, const dlp_finetune_result *r) {
  const dlp_finetune_epoch *b = r->best_epoch >= r->first_epoch
                                    ? &r->epochs[r->best_epoch - r->first_epoch]
                                    : NULL;
  if (b && !isnan(b->val_loss))
    printf("best epoch %d: val_loss %.4f val_acc %.4f\n", b->epoch + 1,
           b->val_loss, b->val_acc);
  else if (b)
    printf("best epoch %d: train_loss %.4f (no validation images)\n",
           b->epoch + 1, b->train_loss);
  if (r->stopped_early) printf("stopped early (--patience)\n");
  if (r->saved_epoch >= 0)
    printf("saved weights: epoch %d (%s)\n", r->saved_epoch + 1,
           r->n_val && cli_flag(a, "no-restore-best") == 0 ? "lowest val loss"
                                                           : "last epoch");
  if (ft_quiet(a)) return;
  fprintf(stderr,
          "saved %s (classes in %s); run it with --model-file %s "
          "--preprocess %s (input %dx%d)\n",
          cli_str(a, "out"), r->labels_path, cli_str(a, "out"),
          dlp_norm_name(r->norm), r->input_height, r->input_width);
}

static int ft_run(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d,
                  dlp_finetune_opts *o) {
  int rc = cli_ml_read_labelled(a, ctx, d);
  if (rc != CLI_EXIT_OK) return rc;
  o->image_col = d->image_col;
  o->label_col = d->label_col;
  cli_progress prog;
  ft_print pr = {a, ctx, &prog, o->epochs};
  o->on_epoch = ft_epoch_line;
  o->on_epoch_user = &pr;
  dlp_finetune_result r;
  cli_progress_start(&prog, ctx, NULL, ft_quiet(a));
  int lrc = dlp_finetune(ctx, d->all, o, cli_str(a, "out"), &r);
  cli_progress_end(&prog, ctx);
  if (lrc != DLP_OK) return cli_lib_error(ctx);
  if (!ft_quiet(a)) {
    char per[64];
    ft_per_class(&r, per, sizeof per);
    fprintf(stderr,
            "%zu classes; %zu training and %zu validation images%s; %lld "
            "trainable parameters; features from %s\n",
            r.n_classes, r.n_train, r.n_val, per, (long long)r.n_trainable,
            r.feature_layer);
    if (r.n_skipped)
      fprintf(stderr, "warning: %zu image%s left out%s%s\n", r.n_skipped,
              r.n_skipped == 1 ? "" : "s", r.skip_example ? ": " : "",
              r.skip_example ? r.skip_example : "");
  }
  ft_summary(a, &r);
  const char *vp = cli_str(a, "val-predictions");
  rc = vp ? ft_write_val(vp, d, &r) : CLI_EXIT_OK;
  dlp_finetune_result_clear(&r);
  return rc;
}

/* --- --grid ----------------------------------------------------------------
 */

#define FT_GRID_MAX_KEYS 16
#define FT_GRID_MAX_COMBOS 1000

/* One key of the spec and its values (pointers into the spec's copy). */
typedef struct ft_gparam {
  const char *key;
  const char **vals;
  size_t n;
} ft_gparam;

typedef struct ft_gspec {
  char *buf; /* the spec, cut in place */
  ft_gparam p[FT_GRID_MAX_KEYS];
  size_t np, ncombos;
} ft_gspec;

static const char *const ft_grid_keys[] = {
    "lr",           "batch",        "epochs", "optimizer",
    "weight-decay", "momentum",     "head",   "schedule",
    "patience",     "freeze-until", NULL};

static int ft_parse_real(const char *v, double lo, double hi, double *out) {
  char *end = NULL;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || end == v || *end || !(x >= lo && x <= hi)) return 0;
  *out = x;
  return 1;
}

static int ft_parse_int(const char *v, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) return 0;
  *out = x;
  return 1;
}

/* A head spec's syntax: dense:N[:linear|:relu] and dropout:R items. */
static int ft_head_ok(const char *v) {
  if (strcmp(v, "none") == 0) return 1;
  char buf[256];
  if (strlen(v) >= sizeof buf) return 0;
  strcpy(buf, v);
  char *save = NULL;
  int n = 0;
  for (char *it = strtok_r(buf, ",", &save); it;
       it = strtok_r(NULL, ",", &save), n++) {
    double r;
    long u;
    char *c = strrchr(it, ':');
    if (strncmp(it, "dropout:", 8) == 0) {
      if (!ft_parse_real(it + 8, 0, 0.999999, &r)) return 0;
    } else if (strncmp(it, "dense:", 6) == 0) {
      if (c != it + 5 && (strcmp(c, ":linear") == 0 || strcmp(c, ":relu") == 0))
        *c = 0;
      if (!ft_parse_int(it + 6, 1, 65536, &u)) return 0;
    } else {
      return 0;
    }
  }
  return n > 0;
}

/* Sets key to v in o; 0 when v is not a valid value of key. */
static int ft_grid_apply(dlp_finetune_opts *o, const char *key, const char *v) {
  double x;
  long k;
  if (strcmp(key, "lr") == 0) return ft_parse_real(v, 1e-12, 100, &o->lr);
  if (strcmp(key, "weight-decay") == 0)
    return ft_parse_real(v, 0, 10, &o->weight_decay);
  if (strcmp(key, "momentum") == 0) {
    if (!ft_parse_real(v, 0, 0.999999, &x)) return 0;
    o->momentum = x;
    return 1;
  }
  if (strcmp(key, "batch") == 0 || strcmp(key, "epochs") == 0 ||
      strcmp(key, "patience") == 0) {
    int batch = key[0] == 'b', pat = key[0] == 'p';
    if (!ft_parse_int(v, pat ? 0 : 1, batch ? 4096 : 100000, &k)) return 0;
    if (batch)
      o->batch_size = (size_t)k;
    else if (pat)
      o->patience = (int)k;
    else
      o->epochs = (int)k;
    return 1;
  }
  if (strcmp(key, "optimizer") == 0 || strcmp(key, "schedule") == 0) {
    static const char *const opt[] = {"adam", "adamw", "sgd", NULL};
    static const char *const sch[] = {"cosine", "constant", "step", NULL};
    const char *const *ok = key[0] == 'o' ? opt : sch;
    for (int i = 0; ok[i]; i++)
      if (strcmp(v, ok[i]) == 0) {
        *(key[0] == 'o' ? &o->optimizer : &o->schedule) = ok[i];
        return 1;
      }
    return 0;
  }
  if (strcmp(key, "head") == 0) {
    if (!ft_head_ok(v)) return 0;
    o->head = strcmp(v, "none") == 0 ? "" : v;
    return 1;
  }
  /* freeze-until: checked against the model when that map trains. */
  o->freeze_until = strcmp(v, "none") == 0 ? "" : v;
  return 1;
}

/* s without surrounding white space (cut in place). */
static char *ft_trim(char *s) {
  while (isspace((unsigned char)*s))
    s++;
  size_t len = strlen(s);
  while (len && isspace((unsigned char)s[len - 1]))
    s[--len] = 0;
  return s;
}

/* Cuts s at sep into trimmed parts (in place); returns the count, or -1
 * when more than max. */
static int ft_cut_list(char *s, char sep, char **parts, int max) {
  int n = 0;
  for (char *p = s;; n++) {
    if (n == max) return -1;
    char *end = strchr(p, sep);
    if (end) *end = 0;
    parts[n] = ft_trim(p);
    if (!end) return n + 1;
    p = end + 1;
  }
}

/* One "key=v1,v2" part (values of head separated by '|', since a head has
 * commas). */
static int ft_grid_part(const cli_args *a, ft_gspec *g, char *part) {
  const cli_cmd *c = a->cmd;
  char *eq = strchr(part, '=');
  if (!eq)
    return cli_usage_error(c, "invalid '--grid': '%s' is not key=value,...",
                           part);
  *eq = 0;
  char *key = ft_trim(part), *vals[256];
  if (strcmp(key, "batch-size") == 0) key = "batch";
  int known = 0;
  for (int i = 0; ft_grid_keys[i]; i++)
    known |= strcmp(key, ft_grid_keys[i]) == 0;
  if (!known)
    return cli_usage_error(c,
                           "invalid '--grid': unknown key '%s' (known: lr, "
                           "batch, epochs, optimizer, weight-decay, momentum, "
                           "head, schedule, patience, freeze-until)",
                           key);
  for (size_t i = 0; i < g->np; i++)
    if (strcmp(g->p[i].key, key) == 0)
      return cli_usage_error(c, "invalid '--grid': key '%s' is given twice",
                             key);
  if (g->np == FT_GRID_MAX_KEYS)
    return cli_usage_error(c, "invalid '--grid': too many keys");
  int nv = ft_cut_list(eq + 1, strcmp(key, "head") == 0 ? '|' : ',', vals, 256);
  if (nv < 0)
    return cli_usage_error(c, "invalid '--grid': %s has over 256 values", key);
  ft_gparam *gp = &g->p[g->np];
  gp->key = key;
  gp->vals = calloc((size_t)nv, sizeof *gp->vals);
  if (!gp->vals) return cli_fail("no memory");
  g->np++;
  dlp_finetune_opts scratch;
  dlp_finetune_opts_init(&scratch);
  for (int i = 0; i < nv; i++) {
    if (!*vals[i] || !ft_grid_apply(&scratch, key, vals[i]))
      return cli_usage_error(c, "invalid '--grid': bad value '%s' for %s",
                             vals[i], key);
    gp->vals[gp->n++] = vals[i];
  }
  if (g->ncombos * (size_t)nv > FT_GRID_MAX_COMBOS)
    return cli_usage_error(c, "invalid '--grid': more than %d combinations",
                           FT_GRID_MAX_COMBOS);
  g->ncombos *= (size_t)nv;
  return CLI_PARSED;
}

static void ft_gspec_free(ft_gspec *g) {
  for (size_t i = 0; i < g->np; i++)
    free(g->p[i].vals);
  free(g->buf);
}

static int ft_grid_parse(const cli_args *a, ft_gspec *g) {
  memset(g, 0, sizeof *g);
  g->ncombos = 1;
  g->buf = strdup(cli_str(a, "grid"));
  if (!g->buf) return cli_fail("no memory");
  char *parts[FT_GRID_MAX_KEYS + 1];
  int np = ft_cut_list(g->buf, ';', parts, FT_GRID_MAX_KEYS + 1);
  if (np < 0) return cli_usage_error(a->cmd, "invalid '--grid': too many keys");
  for (int i = 0; i < np; i++) {
    if (!*parts[i])
      return cli_usage_error(a->cmd, "invalid '--grid': part %d is empty",
                             i + 1);
    int rc = ft_grid_part(a, g, parts[i]);
    if (rc != CLI_PARSED) return rc;
  }
  return CLI_PARSED;
}

/* Value index of key i in combination c: the last key varies fastest
 * (ParamGridBuilder's order, as 'dlp tune'). */
static size_t ft_combo_value(const ft_gspec *g, size_t c, size_t i) {
  size_t stride = 1;
  for (size_t k = g->np; k-- > i + 1;)
    stride *= g->p[k].n;
  return (c / stride) % g->p[i].n;
}

/* "lr=1e-3 batch=16" into out. */
static void ft_combo_text(const ft_gspec *g, size_t c, char *out, size_t cap) {
  size_t len = 0;
  out[0] = 0;
  for (size_t i = 0; i < g->np && len < cap; i++)
    len += (size_t)snprintf(out + len, cap - len, "%s%s=%s", i ? " " : "",
                            g->p[i].key, g->p[i].vals[ft_combo_value(g, c, i)]);
}

/* "DIR/02_lr=1e-3_batch=16.h5": characters other than letters, digits and
 * ".=-" become '_'. */
static char *ft_combo_path(const ft_gspec *g, size_t c, const char *dir) {
  char text[400], *path = malloc(strlen(dir) + sizeof text + 16);
  if (!path) return NULL;
  ft_combo_text(g, c, text, sizeof text);
  for (char *t = text; *t; t++)
    if (!isalnum((unsigned char)*t) && !strchr(".=-", *t)) *t = '_';
  sprintf(path, "%s/%02zu_%s.h5", dir, c + 1, text);
  return path;
}

typedef struct ft_gprint {
  const ft_gspec *g;
  const dlp_finetune_opts *maps;
  FILE *out; /* epoch lines; NULL: none */
} ft_gprint;

/* One epoch line of combination `map`, prefixed by it (whole lines: the
 * library never calls this from two threads at once). */
static int ft_grid_epoch(void *user, size_t map, const dlp_finetune_epoch *s) {
  ft_gprint *p = user;
  if (!p->out) return 0;
  char text[400];
  ft_combo_text(p->g, map, text, sizeof text);
  fprintf(p->out, "[%zu/%zu %s] epoch %3d/%d  train_loss %.4f  train_acc %.4f",
          map + 1, p->g->ncombos, text, s->epoch + 1, p->maps[map].epochs,
          s->train_loss, s->train_acc);
  if (!isnan(s->val_loss))
    fprintf(p->out, "  val_loss %.4f  val_acc %.4f", s->val_loss, s->val_acc);
  fprintf(p->out, "  lr %.6g  %.1fs\n", s->lr, s->seconds);
  fflush(p->out);
  return 0;
}

static void ft_json_str(const char *s, FILE *out) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(out, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(out, "\\u%04x", ch);
    else
      fputc(ch, out);
  }
  fputc('"', out);
}

static void ft_json_num(double x, FILE *out) {
  if (isfinite(x))
    fprintf(out, "%.17g", x);
  else
    fputs("null", out);
}

/* The saved epoch of a trained map, or NULL. */
static const dlp_finetune_epoch *ft_saved(const dlp_finetune_result *r) {
  int k = r->saved_epoch - r->first_epoch;
  return r->epochs && k >= 0 && k < r->n_epochs ? &r->epochs[k] : NULL;
}

static void ft_json_map(const ft_gspec *g, const dlp_finetune_grid_result *r,
                        size_t c, char *const *paths, FILE *out) {
  const dlp_finetune_result *run = &r->runs[c];
  const dlp_finetune_epoch *s = ft_saved(run);
  fprintf(out, "%s\n  {\"index\": %zu, \"params\": {", c ? "," : "", c);
  for (size_t i = 0; i < g->np; i++) {
    fputs(i ? ", " : "", out);
    ft_json_str(g->p[i].key, out);
    fputs(": ", out);
    ft_json_str(g->p[i].vals[ft_combo_value(g, c, i)], out);
  }
  fprintf(out, "}, \"status\": \"%s\", \"error\": ",
          r->status[c] == DLP_OK ? "ok" : "failed");
  if (r->errors[c])
    ft_json_str(r->errors[c], out);
  else
    fputs("null", out);
  fprintf(out, ", \"saved_epoch\": ");
  if (s)
    fprintf(out, "%d", s->epoch + 1);
  else
    fputs("null", out);
  fputs(", \"val_loss\": ", out);
  ft_json_num(s ? s->val_loss : NAN, out);
  fputs(", \"val_acc\": ", out);
  ft_json_num(s ? s->val_acc : NAN, out);
  fputs(", \"metric\": ", out);
  ft_json_num(r->metric[c], out);
  fprintf(out, ", \"seconds\": %.3f, \"path\": ", r->seconds[c]);
  if (paths && paths[c] && r->status[c] == DLP_OK)
    ft_json_str(paths[c], out);
  else
    fputs("null", out);
  fputs(", \"epochs\": [", out);
  for (int e = 0; e < run->n_epochs; e++) {
    const dlp_finetune_epoch *x = &run->epochs[e];
    fprintf(out, "%s{\"epoch\": %d, \"train_loss\": ", e ? ", " : "",
            x->epoch + 1);
    ft_json_num(x->train_loss, out);
    fputs(", \"train_acc\": ", out);
    ft_json_num(x->train_acc, out);
    fputs(", \"val_loss\": ", out);
    ft_json_num(x->val_loss, out);
    fputs(", \"val_acc\": ", out);
    ft_json_num(x->val_acc, out);
    fputs(", \"lr\": ", out);
    ft_json_num(x->lr, out);
    fputs("}", out);
  }
  fputs("]}", out);
}

static void ft_grid_json(const cli_args *a, const ft_gspec *g,
                         const dlp_finetune_grid_result *r,
                         char *const *paths) {
  FILE *out = stdout;
  fprintf(out, "{\"metric\": ");
  ft_json_str(cli_str(a, "metric"), out);
  fprintf(out, ", \"parallelism\": %d, \"kernel_threads\": %d, \"best\": ",
          r->parallelism, r->kernel_threads);
  if (r->best < r->n_maps)
    fprintf(out, "%zu", r->best);
  else
    fputs("null", out);
  fputs(", \"out\": ", out);
  if (r->best < r->n_maps)
    ft_json_str(cli_str(a, "out"), out);
  else
    fputs("null", out);
  fputs(", \"combinations\": [", out);
  for (size_t c = 0; c < r->n_maps; c++)
    ft_json_map(g, r, c, paths, out);
  fputs("\n]}\n", out);
}

/* The table of every combination on stderr, the best marked. */
static int ft_grid_table(const ft_gspec *g, const dlp_finetune_grid_result *r) {
  static const char *const names[] = {
      "", "#", "params", "saved ep", "val_loss", "val_acc", "time"};
  static const int flags[] = {0,
                              CLI_COL_RIGHT,
                              0,
                              CLI_COL_RIGHT,
                              CLI_COL_RIGHT,
                              CLI_COL_RIGHT,
                              CLI_COL_RIGHT};
  cli_table t;
  if (cli_table_init_cols(&t, 7, names, flags) != 0) return -1;
  int rc = 0;
  for (size_t c = 0; c < r->n_maps && rc == 0; c++) {
    char num[24], text[400], ep[24] = "", vl[32] = "", va[32] = "", tm[32];
    const dlp_finetune_epoch *s = ft_saved(&r->runs[c]);
    snprintf(num, sizeof num, "%zu", c + 1);
    ft_combo_text(g, c, text, sizeof text);
    if (s) {
      snprintf(ep, sizeof ep, "%d", s->epoch + 1);
      snprintf(vl, sizeof vl, "%.4f", s->val_loss);
      snprintf(va, sizeof va, "%.4f", s->val_acc);
    } else {
      snprintf(vl, sizeof vl, "failed");
    }
    snprintf(tm, sizeof tm, "%.1fs", r->seconds[c]);
    const char *row[] = {c == r->best ? "*" : "", num, text, ep, vl, va, tm};
    rc = cli_table_row(&t, row);
  }
  if (rc == 0) rc = cli_table_print(&t, stderr, 0);
  cli_table_free(&t);
  for (size_t c = 0; c < r->n_maps; c++)
    if (r->errors[c]) fprintf(stderr, "#%zu failed: %s\n", c + 1, r->errors[c]);
  return rc;
}

/* The maps: the command line's options with each combination's values. */
static int ft_grid_maps(const ft_gspec *g, const dlp_finetune_opts *base,
                        dlp_finetune_opts **out) {
  dlp_finetune_opts *maps = calloc(g->ncombos, sizeof *maps);
  if (!maps) return cli_fail("no memory");
  for (size_t c = 0; c < g->ncombos; c++) {
    maps[c] = *base;
    maps[c].on_epoch = NULL;
    for (size_t i = 0; i < g->np; i++)
      (void)ft_grid_apply(&maps[c], g->p[i].key,
                          g->p[i].vals[ft_combo_value(g, c, i)]);
  }
  *out = maps;
  return CLI_EXIT_OK;
}

/* --grid-out DIR: made when missing; one path per combination. */
static int ft_grid_paths(const cli_args *a, const ft_gspec *g, char ***out) {
  const char *dir = cli_str(a, "grid-out");
  *out = NULL;
  if (!dir) return CLI_EXIT_OK;
  struct stat st;
  if (stat(dir, &st) != 0 && mkdir(dir, 0777) != 0)
    return cli_fail("cannot make the folder %s: %s", dir, strerror(errno));
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return cli_fail("%s is not a folder", dir);
  char **p = calloc(g->ncombos, sizeof *p);
  if (!p) return cli_fail("no memory");
  *out = p;
  for (size_t c = 0; c < g->ncombos; c++)
    if (!(p[c] = ft_combo_path(g, c, dir))) return cli_fail("no memory");
  return CLI_EXIT_OK;
}

static void ft_grid_summary(const cli_args *a, const ft_gspec *g,
                            const dlp_finetune_grid_result *r) {
  const dlp_finetune_result *b = &r->runs[r->best];
  const dlp_finetune_epoch *s = ft_saved(b);
  char text[400];
  ft_combo_text(g, r->best, text, sizeof text);
  FILE *out = cli_flag(a, "json") ? stderr : stdout;
  fprintf(out, "best: #%zu %s (saved epoch %d: val_loss %.4f val_acc %.4f)\n",
          r->best + 1, text, s->epoch + 1, s->val_loss, s->val_acc);
  if (ft_quiet(a)) return;
  char per[64];
  ft_per_class(b, per, sizeof per);
  fprintf(stderr,
          "%zu combinations, %d at a time on %d thread%s each; %zu classes; "
          "%zu training and %zu validation images%s\n",
          r->n_maps, r->parallelism, r->kernel_threads,
          r->kernel_threads == 1 ? "" : "s", b->n_classes, b->n_train, b->n_val,
          per);
  if (b->n_skipped)
    fprintf(stderr, "warning: %zu image%s left out%s%s\n", b->n_skipped,
            b->n_skipped == 1 ? "" : "s", b->skip_example ? ": " : "",
            b->skip_example ? b->skip_example : "");
  fprintf(stderr,
          "saved %s (classes in %s); run it with --model-file %s "
          "--preprocess %s (input %dx%d)\n",
          cli_str(a, "out"), r->labels_path, cli_str(a, "out"),
          dlp_norm_name(b->norm), b->input_height, b->input_width);
}

/* The usage checks of --grid and its companions. */
static int ft_grid_usage(const cli_args *a) {
  const cli_cmd *c = a->cmd;
  int grid = cli_str(a, "grid") != NULL;
  const char *only[] = {"parallelism", "grid-out", "json"};
  for (int i = 0; i < 3 && !grid; i++)
    if ((i == 0   ? cli_int(a, only[i]) != 0
         : i == 1 ? cli_str(a, only[i]) != NULL
                  : cli_flag(a, only[i])))
      return cli_usage_error(c, "'--%s' goes with '--grid SPEC'", only[i]);
  const char *m = cli_str(a, "metric");
  if (strcmp(m, "val_loss") != 0 && strcmp(m, "val_acc") != 0)
    return cli_usage_error(c,
                           "invalid value '%s' for '--metric': expected "
                           "val_loss or val_acc",
                           m);
  if (grid && cli_str(a, "checkpoint-dir"))
    return cli_usage_error(c, "'--checkpoint-dir' does not go with '--grid'");
  if (grid && cli_real(a, "val-split") <= 0)
    return cli_usage_error(c, "'--grid' compares validation metrics: give "
                              "'--val-split' > 0");
  return CLI_PARSED;
}

static int ft_grid_run(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d,
                       const ft_gspec *g, dlp_finetune_opts *base) {
  int rc = cli_ml_read_labelled(a, ctx, d);
  if (rc != CLI_EXIT_OK) return rc;
  base->image_col = d->image_col;
  base->label_col = d->label_col;
  dlp_finetune_opts *maps = NULL;
  char **paths = NULL;
  rc = ft_grid_maps(g, base, &maps);
  if (rc == CLI_EXIT_OK) rc = ft_grid_paths(a, g, &paths);
  ft_gprint pr = {g, maps,
                  cli_flag(a, "json") ? (ft_quiet(a) ? NULL : stderr) : stdout};
  dlp_finetune_grid_opts go;
  dlp_finetune_grid_opts_init(&go);
  go.parallelism = (int)cli_int(a, "parallelism");
  go.metric = cli_str(a, "metric");
  go.map_paths = (const char *const *)paths;
  go.on_epoch = ft_grid_epoch;
  go.on_epoch_user = &pr;
  dlp_finetune_grid_result r;
  memset(&r, 0, sizeof r);
  int lrc = rc == CLI_EXIT_OK ? dlp_finetune_grid(ctx, d->all, maps, g->ncombos,
                                                  &go, cli_str(a, "out"), &r)
                              : DLP_OK;
  if (rc == CLI_EXIT_OK && r.n_maps) {
    if (!ft_quiet(a)) ft_grid_table(g, &r);
    if (cli_flag(a, "json")) ft_grid_json(a, g, &r, paths);
  }
  if (rc == CLI_EXIT_OK && lrc != DLP_OK) rc = cli_lib_error(ctx);
  if (rc == CLI_EXIT_OK) {
    ft_grid_summary(a, g, &r);
    const char *vp = cli_str(a, "val-predictions");
    if (vp) rc = ft_write_val(vp, d, &r.runs[r.best]);
  }
  dlp_finetune_grid_result_clear(&r);
  for (size_t c = 0; paths && c < g->ncombos; c++)
    free(paths[c]);
  free(paths);
  free(maps);
  return rc;
}

int cli_cmd_finetune(const cli_args *a) {
  cli_ml_data d;
  int rc = cli_ml_data_init(a, &d);
  if (rc != CLI_PARSED) return rc;
  dlp_finetune_opts o;
  ft_gspec g;
  memset(&g, 0, sizeof g);
  if ((rc = ft_opts(a, &o)) == CLI_PARSED) rc = ft_grid_usage(a);
  if (rc == CLI_PARSED && cli_str(a, "grid")) rc = ft_grid_parse(a, &g);
  dlp_ctx *ctx = rc == CLI_PARSED ? cli_ctx_new(a) : NULL;
  if (rc == CLI_PARSED && !ctx) rc = CLI_EXIT_FAIL;
  if (rc == CLI_PARSED)
    rc = cli_str(a, "grid") ? ft_grid_run(a, ctx, &d, &g, &o)
                            : ft_run(a, ctx, &d, &o);
  ft_gspec_free(&g);
  cli_ml_data_free(&d);
  dlp_ctx_free(ctx);
  return rc;
}
