/* cmd_finetune.c - 'dlp finetune': options to dlp_finetune_opts, the
 * labelled input (shared with fit), one line per epoch, the summary and the
 * optional CSV of validation predictions. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    fprintf(stderr,
            "%zu classes; %zu training and %zu validation images; %lld "
            "trainable parameters; features from %s\n",
            r.n_classes, r.n_train, r.n_val, (long long)r.n_trainable,
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

int cli_cmd_finetune(const cli_args *a) {
  cli_ml_data d;
  int rc = cli_ml_data_init(a, &d);
  if (rc != CLI_PARSED) return rc;
  dlp_finetune_opts o;
  if ((rc = ft_opts(a, &o)) != CLI_PARSED) return rc;
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  rc = ft_run(a, ctx, &d, &o);
  cli_ml_data_free(&d);
  dlp_ctx_free(ctx);
  return rc;
}
