/* finetune.c - dlp_finetune: a zoo or Keras model cut at its feature layer,
 * a new head trained on labelled images (nn_trainer), saved as a Keras
 * model. Images are decoded once into a cache (training ones a little larger
 * than the input, for augmentation; validation ones at the input size,
 * exactly as inference resizes) because decoding would otherwise cost more
 * than training the head. dlp_finetune_grid trains one model per parameter
 * map on one such cache (read-only, shared by the worker threads) and keeps
 * the best in memory, so that only the winner is written to the output. */
#include "image/image.h"
#include "keras.h"
#include "models.h"
#include "train.h"
#include "zoo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FT_MAX_HEAD 16
#define FT_CACHE_MARGIN 1.15 /* training cache side / input side */

/* One head layer of the spec. */
typedef struct ft_layer {
  bool dropout;
  int units;  /* dense */
  nn_act act; /* dense */
  float rate; /* dropout */
} ft_layer;

/* The decoded images and the split: made once, read by every run (of a
 * grid too, from several threads at once). Training samples first. */
typedef struct ft_data {
  dlp_image **img;
  int32_t *label;
  size_t *row;
  size_t n_train, n_val;
  char **classes; /* sorted */
  size_t n_classes;
  size_t *n_val_class;
  size_t n_skipped;
  char *skip_example;
  dlp_preprocess pp; /* the size the cache was made for */
} ft_data;

/* One model's state. */
typedef struct ft_run {
  dlp_ctx *ctx; /* errors and progress: the caller's, or a grid worker's */
  const dlp_finetune_opts *o;
  dlp_finetune_result *r;
  const ft_data *d;
  nn_graph *g;
  const nn_zoo_entry *zoo;
  dlp_preprocess pp;   /* input size, norm, NCHW */
  int64_t numel;       /* floats per sample */
  int feat_value;      /* value id of the features (before the head) */
  char feat_node[256]; /* its producer's name */
  ft_layer head[FT_MAX_HEAD];
  int n_head;
  char dropout_names[FT_MAX_HEAD][32];
  char pred_name[32]; /* the final layer: "predictions" unless taken */
  int n_dropout;
  nn_trainer *t;
  uint64_t steps_done, steps_total;
  double epoch_start;
  int bad_epoch; /* the first epoch whose loss was not finite, or -1 */
  int threads;   /* kernel threads */
  /* In a grid: the map's index and the grid (for the epoch callback). */
  size_t map;
  struct ft_grid *grid;
} ft_run;

void dlp_finetune_opts_init(dlp_finetune_opts *o) {
  memset(o, 0, sizeof *o);
  o->image_col = "image";
  o->label_col = "label";
  o->epochs = 5;
  o->batch_size = 16;
  o->lr = 1e-3;
  o->optimizer = "adam";
  o->momentum = 0.9;
  o->schedule = "cosine";
  o->val_split = 0.2;
  o->augment = 1;
  o->restore_best = 1;
  dlp_augment_init(&o->aug);
}

void dlp_finetune_result_clear(dlp_finetune_result *r) {
  if (!r) return;
  for (size_t i = 0; r->classes && i < r->n_classes; i++)
    free(r->classes[i]);
  free(r->classes);
  free(r->skip_example);
  free(r->epochs);
  free(r->feature_layer);
  free(r->labels_path);
  free(r->val_rows);
  free(r->val_probs);
  free(r->n_val_class);
  memset(r, 0, sizeof *r);
}

/* --- options and the head spec ------------------------------------------- */

static int ft_parse_item(dlp_err *e, const char *item, ft_layer *l) {
  char kind[16] = "", act[16] = "";
  double v = 0;
  int n = 0;
  memset(l, 0, sizeof *l);
  if (sscanf(item, "%15[a-z]:%lf%n", kind, &v, &n) < 2)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "head: bad layer '%s' (expected dense:N, "
                       "dense:N:linear or dropout:R)",
                       item);
  const char *rest = item + n;
  if (strcmp(kind, "dropout") == 0 && *rest == '\0') {
    if (!(v >= 0 && v < 1))
      return dlp_err_set(e, DLP_ERR_ARG,
                         "head: dropout rate %g is not in [0, 1)", v);
    l->dropout = true;
    l->rate = (float)v;
    return DLP_OK;
  }
  if (strcmp(kind, "dense") != 0 || v < 1 || v > 65536 || v != floor(v) ||
      (*rest && (sscanf(rest, ":%15[a-z]", act) != 1 ||
                 (strcmp(act, "linear") != 0 && strcmp(act, "relu") != 0) ||
                 strlen(rest) != strlen(act) + 1)))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "head: bad layer '%s' (expected dense:N with N in "
                       "1..65536, dense:N:linear or dropout:R)",
                       item);
  l->units = (int)v;
  l->act = strcmp(act, "linear") == 0 ? NN_ACT_NONE : NN_ACT_RELU;
  return DLP_OK;
}

static int ft_parse_head(dlp_err *e, const char *spec, ft_run *run) {
  run->n_head = 0;
  if (!spec || !*spec) return DLP_OK;
  char *buf = dlp_strdup(spec);
  if (!buf) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  int rc = DLP_OK;
  char *save = NULL;
  for (char *it = strtok_r(buf, ",", &save); it && rc == DLP_OK;
       it = strtok_r(NULL, ",", &save)) {
    if (run->n_head == FT_MAX_HEAD)
      rc =
          dlp_err_set(e, DLP_ERR_ARG, "head: more than %d layers", FT_MAX_HEAD);
    else
      rc = ft_parse_item(e, it, &run->head[run->n_head++]);
  }
  if (rc == DLP_OK && run->n_head == 0)
    rc = dlp_err_set(e, DLP_ERR_ARG, "head: bad spec '%s'", spec);
  free(buf);
  return rc;
}

static int ft_check_opts(dlp_err *e, const dlp_finetune_opts *o) {
  if (!o->model == !o->model_file)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: give a model name or a model file");
  if (o->random_weights && !o->model)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: random weights need a zoo model name");
  if (o->epochs < 1 || o->epochs > 100000)
    return dlp_err_set(e, DLP_ERR_ARG, "fine-tune: epochs %d not in 1..100000",
                       o->epochs);
  if (o->batch_size < 1 || o->batch_size > 65536)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: batch size %zu not in "
                       "1..65536",
                       o->batch_size);
  if (!(o->lr > 0 && o->lr < 1e3))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: learning rate %g must be "
                       "> 0",
                       o->lr);
  if (!(o->val_split >= 0 && o->val_split < 1))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: validation split %g not in [0, 1)",
                       o->val_split);
  if (o->patience < 0)
    return dlp_err_set(e, DLP_ERR_ARG, "fine-tune: patience must be >= 0");
  if (o->resume && !o->checkpoint_dir)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: resuming needs a checkpoint folder");
  if ((o->input_width > 0) != (o->input_height > 0) || o->input_width < 0 ||
      o->input_height < 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: give both input width and height, or "
                       "neither");
  return DLP_OK;
}

static int ft_train_cfg(dlp_err *e, const dlp_finetune_opts *o,
                        nn_train_cfg *c) {
  nn_train_cfg_init(c);
  const char *opt = o->optimizer ? o->optimizer : "adam";
  const char *sch = o->schedule ? o->schedule : "cosine";
  if (strcmp(opt, "sgd") == 0) {
    c->optim.kind = NN_OPTIM_SGD;
    c->optim.momentum = (float)o->momentum;
  } else if (strcmp(opt, "adam") == 0 || strcmp(opt, "adamw") == 0) {
    c->optim.kind = NN_OPTIM_ADAM;
    c->optim.decoupled = strcmp(opt, "adamw") == 0;
  } else {
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: unknown optimizer '%s' "
                       "(expected adam, adamw or sgd)",
                       opt);
  }
  if (strcmp(sch, "cosine") == 0)
    c->sched.kind = NN_SCHED_COSINE;
  else if (strcmp(sch, "constant") == 0)
    c->sched.kind = NN_SCHED_CONSTANT;
  else if (strcmp(sch, "step") == 0)
    c->sched.kind = NN_SCHED_STEP;
  else
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: unknown schedule '%s' "
                       "(expected cosine, constant or step)",
                       sch);
  c->optim.lr = (float)o->lr;
  c->optim.weight_decay = (float)o->weight_decay;
  c->epochs = o->epochs;
  c->batch = (int64_t)o->batch_size;
  c->seed = o->seed;
  c->patience = o->patience;
  c->checkpoint_dir = o->checkpoint_dir;
  return nn_optim_cfg_check(e, &c->optim);
}

/* --- the base model ------------------------------------------------------ */

static int ft_load_zoo(dlp_err *e, ft_run *run, const char *weights) {
  const dlp_finetune_opts *o = run->o;
  int rc = nn_zoo_build_sized(e, run->zoo, false, o->input_height,
                              o->input_width, &run->g);
  if (rc == DLP_OK)
    rc = weights ? nn_keras_load_weights(
                       e, weights, dlp_ctx_max_file_bytes(run->ctx), run->g)
                 : nn_zoo_init_random(e, run->g, o->weights_seed);
  return rc;
}

/* The base graph: a zoo architecture (random or cached weights) or a file. */
static int ft_load_base(dlp_err *e, ft_run *run) {
  const dlp_finetune_opts *o = run->o;
  uint64_t max = dlp_ctx_max_file_bytes(run->ctx);
  if (o->model_file)
    return nn_model_load_file(e, o->model_file, max, o->input_height,
                              o->input_width, &run->g);
  run->zoo = nn_zoo_find_ci(o->model);
  if (o->random_weights) {
    if (!run->zoo)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "fine-tune: '%s' is not a zoo "
                         "architecture (random weights need one)",
                         o->model);
    return ft_load_zoo(e, run, NULL);
  }
  char dir[4096], path[4096];
  nn_cache_item it;
  int rc = nn_cache_dir(e, o->model_dir, dir, sizeof dir);
  if (rc != DLP_OK) return rc;
  rc = nn_cache_lookup(e, dir, o->model, &it);
  if (rc == DLP_ERR_NOT_FOUND)
    return dlp_err_set(e, DLP_ERR_NOT_FOUND,
                       "fine-tune: no model '%s' in the cache %s ('dlp "
                       "models list' shows them; a zoo name with random "
                       "weights needs none)",
                       o->model, dir);
  if (rc != DLP_OK) return rc;
  rc = nn_cache_path(e, dir, it.file, path, sizeof path);
  bool weights = it.kind && strncmp(it.kind, NN_CACHE_KIND_WEIGHTS,
                                    strlen(NN_CACHE_KIND_WEIGHTS)) == 0;
  nn_cache_item_clear(&it);
  if (rc != DLP_OK) return rc;
  if (!weights) {
    run->zoo = NULL;
    return nn_model_load_file(e, path, max, o->input_height, o->input_width,
                              &run->g);
  }
  if (!run->zoo)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "fine-tune: the cache lists %s "
                       "as weights of an unknown architecture",
                       o->model);
  return ft_load_zoo(e, run, path);
}

/* A file model's features: the input of its last dense node. */
static int ft_default_layer(dlp_err *e, const nn_graph *g, char *out,
                            size_t n) {
  for (int i = g->n_nodes - 1; i >= 0; i--) {
    if (g->nodes[i].op != NN_OP_DENSE) continue;
    const char *name = g->values[g->nodes[i].in[0]].name;
    snprintf(out, n, "%s", name ? name : "");
    return DLP_OK;
  }
  return dlp_err_set(e, DLP_ERR_ARG,
                     "fine-tune: the model has no dense "
                     "layer; name the feature layer to cut at");
}

/* Cuts the base at the feature layer and reads its facts. */
static int ft_cut(dlp_err *e, ft_run *run) {
  nn_graph *g = run->g;
  char layer[256];
  const char *want = run->o->feature_layer;
  int rc = DLP_OK;
  if (!want && run->zoo) want = run->zoo->feature_layer;
  if (!want && (rc = ft_default_layer(e, g, layer, sizeof layer)) != DLP_OK)
    return rc;
  if (!want) want = layer;
  rc = nn_graph_finalize(e, g);
  if (rc == DLP_OK) rc = nn_graph_cut(e, g, want);
  if (rc == DLP_ERR_NOT_FOUND)
    return dlp_err_set(e, DLP_ERR_NOT_FOUND,
                       "fine-tune: the model has no layer '%s' to take "
                       "features from",
                       want);
  if (rc != DLP_OK) return rc;
  if (g->n_inputs != 1 || g->n_outputs != 1)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "fine-tune: the model needs one input and one output");
  nn_shape in = g->values[g->inputs[0]].shape;
  nn_shape fs = g->values[g->outputs[0]].shape;
  if (in.ndim != 4 || in.dims[1] != 3 || in.dims[2] <= 0 || in.dims[3] <= 0)
    return dlp_err_set(e, DLP_ERR_UNSUPPORTED,
                       "fine-tune: the model must take RGB images of a "
                       "known size (give an input size)");
  if (fs.ndim != 2)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: layer '%s' gives a rank-%d tensor; cut "
                       "at a pooled (N, C) layer",
                       want, fs.ndim);
  run->feat_value = g->outputs[0];
  int prod = g->values[run->feat_value].producer;
  snprintf(run->feat_node, sizeof run->feat_node, "%s",
           prod >= 0 ? g->nodes[prod].name : want);
  dlp_preprocess_init(&run->pp);
  run->pp.height = (int32_t)in.dims[2];
  run->pp.width = (int32_t)in.dims[3];
  run->pp.layout = DLP_LAYOUT_NCHW;
  run->pp.norm = run->o->norm_set ? run->o->norm
                 : run->zoo       ? run->zoo->norm
                                  : g->input_spec.norm;
  run->numel = 3 * in.dims[2] * in.dims[3];
  return DLP_OK;
}

/* --- the head ------------------------------------------------------------ */

/* Glorot-uniform kernel (in, out) and zero bias, as Keras initialises Dense. */
static int ft_dense(ft_run *run, dlp_rng *rng, int x, int64_t in, int units,
                    nn_act act, const char *layer, const char *name) {
  nn_graph *g = run->g;
  char kn[300], bn[300];
  snprintf(kn, sizeof kn, "%s/kernel", layer);
  snprintf(bn, sizeof bn, "%s/bias", layer);
  float *w = dlp_malloc_array((size_t)(in * units), sizeof(float));
  float *b = dlp_calloc_array((size_t)units, sizeof(float));
  if (!w || !b) {
    free(w);
    free(b);
    return -1;
  }
  double lim = sqrt(6.0 / (double)(in + units));
  for (int64_t i = 0; i < in * units; i++)
    w[i] = (float)((2 * dlp_rng_uniform(rng) - 1) * lim);
  int ins[3] = {x,
                nn_graph_add_const_owned(g, kn, 2, (int64_t[]){in, units}, w),
                nn_graph_add_const_owned(g, bn, 1, (int64_t[]){units}, b)};
  if (ins[1] < 0 || ins[2] < 0) return -1;
  nn_node_attr a;
  nn_node_attr_init(NN_OP_DENSE, &a);
  a.dense.act = act;
  return nn_graph_add_node(g, NN_OP_DENSE, name, ins, 3, &a);
}

/* The first of base, base_1, base_2, ... that names no value of g, as a
 * layer ("X") or its weights and logits ("X/kernel", "X/logits"): a base
 * model that was itself fine-tuned already has a head_dense. */
static void ft_free_name(const nn_graph *g, const char *base, char *out,
                         size_t n) {
  static const char *const suffix[] = {"", "/kernel", "/bias", "/logits"};
  for (int k = 0;; k++) {
    if (k)
      snprintf(out, n, "%s_%d", base, k);
    else
      snprintf(out, n, "%s", base);
    bool taken = false;
    for (size_t i = 0; i < 4 && !taken; i++) {
      char full[300];
      snprintf(full, sizeof full, "%s%s", out, suffix[i]);
      taken = nn_graph_find_value(g, full) >= 0;
    }
    if (!taken) return;
  }
}

/* Appends the head and the logits Dense(K) "<pred>/logits". */
static int ft_add_head(dlp_err *e, ft_run *run, int n_classes) {
  nn_graph *g = run->g;
  dlp_rng rng;
  dlp_rng_seed(&rng, run->o->seed ^ 0x68656164ULL); /* "head" */
  int x = run->feat_value;
  int64_t width = g->values[x].shape.dims[1];
  g->n_outputs = 0;
  for (int i = 0; i < run->n_head && x >= 0; i++) {
    const ft_layer *l = &run->head[i];
    char name[32];
    if (l->dropout) {
      ft_free_name(g, "dropout", name, sizeof name);
      x = nn_graph_add_node(g, NN_OP_IDENTITY, name, &x, 1, NULL);
      memcpy(run->dropout_names[run->n_dropout++], name, sizeof name);
    } else {
      ft_free_name(g, "head_dense", name, sizeof name);
      x = ft_dense(run, &rng, x, width, l->units, l->act, name, name);
      width = l->units;
    }
  }
  char logits[48];
  ft_free_name(g, "predictions", run->pred_name, sizeof run->pred_name);
  snprintf(logits, sizeof logits, "%s/logits", run->pred_name);
  if (x >= 0)
    x = ft_dense(run, &rng, x, width, n_classes, NN_ACT_NONE, run->pred_name,
                 logits);
  if (x < 0)
    return dlp_err_set(e, DLP_ERR_NOMEM, "fine-tune: no memory for the head");
  nn_graph_mark_output(g, x);
  return nn_graph_finalize(e, g);
}

/* --- labels, split and the image cache ----------------------------------- */

static int ft_cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted distinct labels of the rows that have an image and a label. */
static int ft_classes(dlp_ctx *ctx, const dlp_frame *f, size_t ic, size_t lc,
                      ft_data *d, size_t **rows, size_t *n_rows) {
  size_t n = dlp_frame_nrows(f), k = 0;
  *rows = dlp_malloc_array(n + 1, sizeof **rows);
  char **names = dlp_malloc_array(n + 1, sizeof *names);
  if (!*rows || !names) {
    free(names);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "fine-tune: no memory");
  }
  for (size_t i = 0; i < n; i++) {
    const char *s;
    if (dlp_frame_is_null(f, ic, i) || !dlp_frame_get_string(f, lc, i, &s)) {
      d->n_skipped++;
      continue;
    }
    names[k] = (char *)s;
    (*rows)[k++] = i;
  }
  *n_rows = k;
  qsort(names, k, sizeof *names, ft_cmp_str);
  size_t u = 0;
  for (size_t i = 0; i < k; i++)
    if (u == 0 || strcmp(names[u - 1], names[i]) != 0) names[u++] = names[i];
  int rc = DLP_OK;
  d->classes = dlp_calloc_array(u + 1, sizeof *d->classes);
  d->n_val_class = dlp_calloc_array(u + 1, sizeof *d->n_val_class);
  for (size_t i = 0; d->classes && i < u; i++)
    if (!(d->classes[d->n_classes++] = dlp_strdup(names[i])))
      rc = dlp_fail(ctx, DLP_ERR_NOMEM, "fine-tune: no memory");
  free(names);
  if (!d->classes || !d->n_val_class)
    return dlp_fail(ctx, DLP_ERR_NOMEM, "fine-tune: no memory");
  if (rc == DLP_OK && u < 2)
    rc = dlp_fail(ctx, DLP_ERR_ARG,
                  "fine-tune: %zu class%s among %zu "
                  "labelled images; at least 2 are needed",
                  u, u == 1 ? "" : "es", k);
  return rc;
}

static int32_t ft_class_of(const ft_data *d, const char *s) {
  size_t lo = 0, hi = d->n_classes;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(d->classes[mid], s);
    if (c == 0) return (int32_t)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

/* Decodes row `row` into the cache: a training image scaled (never up) so
 * that it still covers FT_CACHE_MARGIN times the input with its aspect
 * kept; a validation image resized to the input as inference does. */
static int ft_decode(dlp_ctx *ctx, const dlp_preprocess *pp, const dlp_frame *f,
                     size_t ic, size_t row, bool val, dlp_image **out) {
  dlp_image *img = NULL;
  *out = NULL;
  int rc = dlp_frame_get_image(ctx, f, ic, row, NULL, &img);
  if (rc != DLP_OK) return rc;
  int32_t w = pp->width, h = pp->height;
  if (!val) {
    double s = fmax(FT_CACHE_MARGIN * w / img->width,
                    FT_CACHE_MARGIN * h / img->height);
    if (s >= 1) {
      *out = img;
      return DLP_OK;
    }
    w = (int32_t)ceil(img->width * s);
    h = (int32_t)ceil(img->height * s);
  }
  rc = dlp_image_resize(ctx, img, w, h, pp->filter, out);
  dlp_image_free(img);
  return rc;
}

/* Validation rows per class: none for a class of one row, else
 * round(frac * n) (halves up) but at least one and at most n - 1, so every
 * class keeps a training row and shows up in validation. */
static size_t ft_val_quota(double frac, size_t n) {
  if (frac <= 0 || n < 2) return 0;
  size_t k = (size_t)floor(frac * (double)n + 0.5);
  return k < 1 ? 1 : k > n - 1 ? n - 1 : k;
}

/* Stratified split of the labelled rows: a seeded shuffle, then in that
 * order the first quota rows of each class validate. rows becomes the
 * training rows (shuffled order) followed by the *n_val validation rows;
 * cls[i] is the class of rows[i]. */
static int ft_split(dlp_ctx *ctx, ft_data *d, double frac, uint64_t seed,
                    size_t *rows, int32_t *cls, size_t n, size_t *n_val) {
  size_t *want = dlp_calloc_array(d->n_classes, sizeof *want);
  size_t *tmp = dlp_malloc_array(n + 1, sizeof *tmp);
  int32_t *tcls = dlp_malloc_array(n + 1, sizeof *tcls);
  int rc = want && tmp && tcls
               ? DLP_OK
               : dlp_fail(ctx, DLP_ERR_NOMEM, "fine-tune: no memory");
  /* The shuffle moves (row, class) pairs together: shuffle indices. */
  for (size_t i = 0; rc == DLP_OK && i < n; i++)
    tmp[i] = i;
  if (rc == DLP_OK) dlp_shuffle(tmp, n, sizeof *tmp, seed);
  for (size_t i = 0; rc == DLP_OK && i < n; i++)
    want[cls[i]]++;
  for (size_t c = 0; rc == DLP_OK && c < d->n_classes; c++)
    want[c] = ft_val_quota(frac, want[c]);
  size_t nt = 0, nv = 0;
  size_t *order = rc == DLP_OK ? dlp_malloc_array(n + 1, sizeof *order) : NULL;
  if (rc == DLP_OK && !order)
    rc = dlp_fail(ctx, DLP_ERR_NOMEM, "fine-tune: no memory");
  for (size_t c = 0; rc == DLP_OK && c < d->n_classes; c++)
    nv += want[c];
  for (size_t k = 0; rc == DLP_OK && k < n; k++) {
    size_t i = tmp[k];
    bool val = want[cls[i]] > 0;
    if (val) want[cls[i]]--;
    order[val ? (n - nv) + (k - nt) : nt] = i;
    nt += !val;
  }
  for (size_t k = 0; rc == DLP_OK && k < n; k++) {
    tmp[k] = rows[order[k]];
    tcls[k] = cls[order[k]];
  }
  if (rc == DLP_OK) {
    memcpy(rows, tmp, n * sizeof *rows);
    memcpy(cls, tcls, n * sizeof *cls);
    *n_val = nv;
  }
  free(order);
  free(want);
  free(tmp);
  free(tcls);
  return rc;
}

/* Splits the labelled rows and fills the cache; undecodable images are
 * skipped. */
static int ft_load_images(dlp_ctx *ctx, ft_data *d, const dlp_finetune_opts *o,
                          const dlp_frame *f, size_t ic, size_t lc,
                          size_t *rows, size_t n) {
  int32_t *cls = dlp_malloc_array(n + 1, sizeof *cls);
  d->img = dlp_calloc_array(n + 1, sizeof *d->img);
  d->label = dlp_malloc_array(n + 1, sizeof *d->label);
  d->row = dlp_malloc_array(n + 1, sizeof *d->row);
  if (!cls || !d->img || !d->label || !d->row) {
    free(cls);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "fine-tune: no memory");
  }
  for (size_t i = 0; i < n; i++) {
    const char *s = NULL;
    (void)dlp_frame_get_string(f, lc, rows[i], &s);
    cls[i] = ft_class_of(d, s);
  }
  size_t n_val = 0;
  int rc = ft_split(ctx, d, o->val_split, o->seed, rows, cls, n, &n_val);
  for (size_t k = 0; rc == DLP_OK && k < n; k++) {
    bool val = k >= n - n_val;
    size_t at = d->n_train + d->n_val;
    rc = ft_decode(ctx, &d->pp, f, ic, rows[k], val, &d->img[at]);
    if (rc == DLP_ERR_NOMEM) break;
    if (rc != DLP_OK) {
      d->n_skipped++;
      if (!d->skip_example) d->skip_example = dlp_strdup(dlp_errmsg(ctx));
      rc = DLP_OK;
    } else {
      d->label[at] = cls[k];
      d->row[at] = rows[k];
      *(val ? &d->n_val : &d->n_train) += 1;
      if (val) d->n_val_class[cls[k]]++;
    }
    if (dlp_progress(ctx, "decoding", k + 1, n, k + 1 == n))
      rc = dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  }
  free(cls);
  return rc;
}

/* Every class needs a training image. */
static int ft_check_train_classes(dlp_ctx *ctx, const ft_data *d,
                                  double val_split) {
  for (size_t c = 0; c < d->n_classes; c++) {
    size_t k = 0;
    while (k < d->n_train && d->label[k] != (int32_t)c)
      k++;
    if (k == d->n_train)
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "fine-tune: class '%s' has no training image (after "
                      "the %g validation split and %zu skipped row%s); add "
                      "images or lower the validation split",
                      d->classes[c], val_split, d->n_skipped,
                      d->n_skipped == 1 ? "" : "s");
  }
  return DLP_OK;
}

static void ft_data_clear(ft_data *d) {
  for (size_t i = 0; d->img && i < d->n_train + d->n_val; i++)
    dlp_image_free(d->img[i]);
  free(d->img);
  free(d->label);
  free(d->row);
  for (size_t i = 0; d->classes && i < d->n_classes; i++)
    free(d->classes[i]);
  free(d->classes);
  free(d->n_val_class);
  free(d->skip_example);
  memset(d, 0, sizeof *d);
}

/* --- batches ------------------------------------------------------------- */

static int ft_copy_err(dlp_err *e, dlp_ctx *ctx) {
  return dlp_err_set(e, dlp_errcode(ctx), "%s", dlp_errmsg(ctx));
}

/* Training batches: augmented (or resized) from the cache. */
static int ft_fill_train(void *user, const int64_t *idx, int64_t n, float *x,
                         int32_t *labels, dlp_err *e) {
  ft_run *run = user;
  const dlp_finetune_opts *o = run->o;
  const ft_data *d = run->d;
  uint64_t epoch = (uint64_t)nn_trainer_epoch(run->t);
  for (int64_t i = 0; i < n; i++) {
    size_t k = (size_t)idx[i];
    float *dst = x + i * run->numel;
    int rc = o->augment
                 ? dlp_image_augment_to_tensor(
                       run->ctx, d->img[k], &o->aug,
                       dlp_augment_seed(o->seed, epoch, k), &run->pp, dst)
                 : dlp_image_to_tensor(run->ctx, d->img[k], &run->pp, dst);
    if (rc != DLP_OK) return ft_copy_err(e, run->ctx);
    labels[i] = d->label[k];
  }
  run->steps_done++;
  if (dlp_progress(run->ctx, "fine-tuning", run->steps_done, run->steps_total,
                   run->steps_done == run->steps_total))
    return dlp_err_set(e, DLP_ERR_ARG, "cancelled");
  return DLP_OK;
}

/* Validation samples: the input-sized cache, normalised. */
static int ft_fill_val(void *user, const int64_t *idx, int64_t n, float *x,
                       int32_t *labels, dlp_err *e) {
  ft_run *run = user;
  const ft_data *d = run->d;
  for (int64_t i = 0; i < n; i++) {
    size_t k = d->n_train + (size_t)idx[i];
    if (dlp_image_to_tensor(run->ctx, d->img[k], &run->pp,
                            x + i * run->numel) != DLP_OK)
      return ft_copy_err(e, run->ctx);
    labels[i] = d->label[k];
  }
  return DLP_OK;
}

/* The grid's state (the part the runs see). */
typedef struct ft_grid {
  const dlp_finetune_grid_opts *go;
  pthread_mutex_t mu; /* epoch callbacks and the best model */
} ft_grid;

static int ft_user_epoch(ft_run *run, const dlp_finetune_epoch *ep) {
  if (!run->grid)
    return run->o->on_epoch ? run->o->on_epoch(run->o->on_epoch_user, ep) : 0;
  const dlp_finetune_grid_opts *go = run->grid->go;
  if (!go->on_epoch) return 0;
  pthread_mutex_lock(&run->grid->mu);
  int stop = go->on_epoch(go->on_epoch_user, run->map, ep);
  pthread_mutex_unlock(&run->grid->mu);
  return stop;
}

static int ft_on_epoch(void *user, const nn_epoch_stats *s) {
  ft_run *run = user;
  dlp_finetune_result *r = run->r;
  dlp_finetune_epoch *ep = &r->epochs[r->n_epochs++];
  bool has_val = run->d->n_val > 0;
  double now = dlp_now();
  ep->epoch = s->epoch;
  ep->lr = s->lr;
  ep->train_loss = s->train_loss;
  ep->train_acc = s->train_acc;
  ep->val_loss = has_val ? s->val_loss : NAN;
  ep->val_acc = has_val ? s->val_acc : NAN;
  ep->seconds = now - run->epoch_start;
  run->epoch_start = now;
  const dlp_finetune_epoch *best =
      r->best_epoch >= r->first_epoch
          ? &r->epochs[r->best_epoch - r->first_epoch]
          : NULL;
  double l = has_val ? ep->val_loss : ep->train_loss;
  if (!best || l < (has_val ? best->val_loss : best->train_loss))
    r->best_epoch = ep->epoch;
  int stop = ft_user_epoch(run, ep);
  /* Keras' TerminateOnNaN: the weights are garbage from here on. */
  if (!isfinite(ep->train_loss) || (has_val && !isfinite(ep->val_loss))) {
    run->bad_epoch = ep->epoch;
    return 1;
  }
  return stop;
}

/* --- training ------------------------------------------------------------ */

static bool ft_file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static int ft_make_trainer(dlp_err *e, ft_run *run, nn_train_cfg *c) {
  const dlp_finetune_opts *o = run->o;
  int rc = nn_trainer_new(e, run->g, c, &run->t);
  const char *fz = o->freeze_until ? o->freeze_until : run->feat_node;
  if (rc == DLP_OK && *fz) {
    rc = nn_trainer_freeze_until(e, run->t, fz);
    if (rc == DLP_ERR_NOT_FOUND)
      rc = dlp_err_set(e, DLP_ERR_NOT_FOUND,
                       "fine-tune: no layer '%s' to "
                       "freeze until",
                       fz);
  }
  for (int i = 0, d = 0; rc == DLP_OK && i < run->n_head; i++)
    if (run->head[i].dropout)
      rc = nn_trainer_set_dropout(e, run->t, run->dropout_names[d++],
                                  run->head[i].rate);
  if (rc == DLP_OK) (void)nn_trainer_trainable(run->t, &run->r->n_trainable);
  if (rc == DLP_OK && o->resume) {
    char p[4200];
    snprintf(p, sizeof p, "%s/checkpoint.json", o->checkpoint_dir);
    if (ft_file_exists(p)) rc = nn_trainer_load(e, run->t, o->checkpoint_dir);
  }
  return rc;
}

/* Softmax of the final validation logits into the result. */
static int ft_val_predictions(dlp_err *e, ft_run *run, int64_t batch) {
  dlp_finetune_result *r = run->r;
  size_t K = run->d->n_classes, n = run->d->n_val;
  float *x = dlp_malloc_array((size_t)(batch * run->numel), sizeof(float));
  int32_t *lab = dlp_malloc_array((size_t)batch, sizeof(int32_t));
  r->val_probs = dlp_malloc_array(n * K + 1, sizeof(float));
  r->val_rows = dlp_malloc_array(n + 1, sizeof(size_t));
  int rc = x && lab && r->val_probs && r->val_rows
               ? DLP_OK
               : dlp_err_set(e, DLP_ERR_NOMEM, "fine-tune: no memory");
  int64_t *idx = dlp_malloc_array((size_t)batch, sizeof(int64_t));
  if (!idx && rc == DLP_OK)
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "fine-tune: no memory");
  for (size_t i = 0; rc == DLP_OK && i < n; i += (size_t)batch) {
    int64_t k = (int64_t)(n - i) < batch ? (int64_t)(n - i) : batch;
    for (int64_t j = 0; j < k; j++)
      idx[j] = (int64_t)i + j;
    float *out = r->val_probs + i * K;
    rc = ft_fill_val(run, idx, k, x, lab, e);
    if (rc == DLP_OK)
      rc = nn_trainer_eval(e, run->t, x, NULL, k, out, NULL, NULL);
    for (int64_t j = 0; rc == DLP_OK && j < k; j++) {
      float *p = out + j * (int64_t)K, mx = p[0];
      double sum = 0;
      for (size_t c = 1; c < K; c++)
        mx = fmaxf(mx, p[c]);
      for (size_t c = 0; c < K; c++)
        sum += (p[c] = expf(p[c] - mx));
      for (size_t c = 0; c < K; c++)
        p[c] = (float)(p[c] / sum);
    }
  }
  for (size_t i = 0; r->val_rows && i < n; i++)
    r->val_rows[i] = run->d->row[run->d->n_train + i];
  free(idx);
  free(x);
  free(lab);
  return rc;
}

static int ft_train(dlp_err *e, ft_run *run) {
  nn_train_cfg c;
  int rc = ft_train_cfg(e, run->o, &c);
  if (rc != DLP_OK) return rc;
  const ft_data *d = run->d;
  c.on_epoch = ft_on_epoch;
  c.on_epoch_user = run;
  c.restore_best = run->o->restore_best && d->n_val > 0;
  c.threads = run->threads;
  run->bad_epoch = -1;
  run->r->epochs = dlp_calloc_array((size_t)c.epochs, sizeof *run->r->epochs);
  if (!run->r->epochs) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  rc = ft_make_trainer(e, run, &c);
  if (rc != DLP_OK) return rc;
  int first = nn_trainer_epoch(run->t);
  run->r->first_epoch = first;
  run->r->best_epoch = -1;
  int64_t per_epoch = ((int64_t)d->n_train + c.batch - 1) / c.batch;
  run->steps_total = (uint64_t)(per_epoch * (c.epochs - first));
  nn_train_data tr = {.n = (int64_t)d->n_train,
                      .fill = ft_fill_train,
                      .user = run,
                      .sample_numel = run->numel};
  nn_train_data va = tr;
  va.n = (int64_t)d->n_val;
  va.fill = ft_fill_val;
  run->epoch_start = dlp_now();
  rc = nn_trainer_fit(e, run->t, &tr, d->n_val ? &va : NULL, NULL);
  if (rc == DLP_OK && run->bad_epoch >= 0)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: the loss is not finite after epoch %d "
                       "(the learning rate %g is likely too high)",
                       run->bad_epoch + 1, run->o->lr);
  run->r->stopped_early = nn_trainer_stopped_early(run->t);
  int best = nn_trainer_best_epoch(run->t); /* -1 without restore_best */
  run->r->saved_epoch = best >= 0 ? best : nn_trainer_epoch(run->t) - 1;
  if (rc == DLP_OK) rc = ft_val_predictions(e, run, c.batch);
  return rc;
}

/* --- saving -------------------------------------------------------------- */

/* Appends the softmax (the Keras layer's output, named as the layer) after
 * the logits: the graph becomes the model that is saved. */
static int ft_add_softmax(dlp_err *e, ft_run *run) {
  nn_graph *g = run->g;
  int logits = g->outputs[0];
  nn_node_attr a;
  nn_node_attr_init(NN_OP_SOFTMAX, &a);
  a.axis = -1;
  int sm = nn_graph_add_node(g, NN_OP_SOFTMAX, run->pred_name, &logits, 1, &a);
  if (sm < 0) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  g->n_outputs = 0;
  nn_graph_mark_output(g, sm);
  return nn_graph_finalize(e, g);
}

/* What saving a trained graph needs besides the graph. */
typedef struct ft_saveinfo {
  float dropout_rate; /* the first dropout's, for the Keras file */
  dlp_norm norm;
  int32_t width, height;
  char feat_node[256];
} ft_saveinfo;

static void ft_saveinfo_of(const ft_run *run, ft_saveinfo *si) {
  memset(si, 0, sizeof *si);
  for (int i = 0; i < run->n_head; i++)
    if (run->head[i].dropout) {
      si->dropout_rate = run->head[i].rate;
      break;
    }
  si->norm = run->pp.norm;
  si->width = run->pp.width;
  si->height = run->pp.height;
  snprintf(si->feat_node, sizeof si->feat_node, "%s", run->feat_node);
}

/* "<path without .h5>.labels.json". */
static char *ft_labels_path(const char *path) {
  size_t n = strlen(path);
  if (n > 3 && strcmp(path + n - 3, ".h5") == 0)
    n -= 3;
  else if (n > 5 && strcmp(path + n - 5, ".hdf5") == 0)
    n -= 5;
  char *s = malloc(n + sizeof ".labels.json");
  if (s) {
    memcpy(s, path, n);
    strcpy(s + n, ".labels.json");
  }
  return s;
}

static int ft_save_labels(dlp_err *e, const ft_data *d, const ft_saveinfo *si,
                          const char *path) {
  cJSON *o = cJSON_CreateObject();
  cJSON *c = cJSON_AddArrayToObject(o, "classes");
  for (size_t i = 0; c && i < d->n_classes; i++)
    cJSON_AddItemToArray(c, cJSON_CreateString(d->classes[i]));
  cJSON_AddStringToObject(o, "preprocess", dlp_norm_name(si->norm));
  char size[32];
  snprintf(size, sizeof size, "%dx%d", si->height, si->width);
  cJSON_AddStringToObject(o, "input_size", size);
  cJSON_AddStringToObject(o, "feature_layer", si->feat_node);
  char *text = cJSON_Print(o);
  cJSON_Delete(o);
  if (!text) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  FILE *fp = fopen(path, "w");
  int rc = DLP_OK;
  if (!fp || fprintf(fp, "%s\n", text) < 0)
    rc = dlp_err_set(e, DLP_ERR_IO, "cannot write %s", path);
  if (fp && fclose(fp) != 0 && rc == DLP_OK)
    rc = dlp_err_set(e, DLP_ERR_IO, "cannot write %s", path);
  free(text);
  return rc;
}

/* The model (graph with its softmax) and its labels file. */
static int ft_save(dlp_err *e, const nn_graph *g, const ft_data *d,
                   const ft_saveinfo *si, bool overwrite, const char *path) {
  nn_keras_save_opts so;
  nn_keras_save_opts_init(&so);
  so.overwrite = overwrite;
  so.model_name = "finetuned";
  so.dropout_rate = si->dropout_rate;
  nn_keras_save_opts_labels(&so, d->classes, d->n_classes, si->norm);
  int rc = nn_keras_save_file(e, g, path, &so);
  char *lp = rc == DLP_OK ? ft_labels_path(path) : NULL;
  if (rc == DLP_OK && !lp) rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  if (rc == DLP_OK) rc = ft_save_labels(e, d, si, lp);
  free(lp);
  return rc;
}

/* DLP_ERR_IO when path or its labels file exists. */
static int ft_check_free(dlp_ctx *ctx, const char *path) {
  char *lp = ft_labels_path(path);
  if (!lp) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory");
  const char *which = ft_file_exists(path) ? path
                      : ft_file_exists(lp) ? lp
                                           : NULL;
  int rc = which ? dlp_fail(ctx, DLP_ERR_IO,
                            "fine-tune: %s exists (overwrite it with "
                            "--overwrite)",
                            which)
                 : DLP_OK;
  free(lp);
  return rc;
}

/* --- one run ------------------------------------------------------------- */

static int ft_columns(dlp_ctx *ctx, const dlp_frame *f,
                      const dlp_finetune_opts *o, size_t *ic, size_t *lc) {
  const char *in = o->image_col ? o->image_col : "image";
  const char *ln = o->label_col ? o->label_col : "label";
  long i = dlp_frame_col_index(f, in), l = dlp_frame_col_index(f, ln);
  if (i < 0 || dlp_frame_col_type(f, (size_t)i) != DLP_TYPE_IMAGE)
    return dlp_fail(ctx, i < 0 ? DLP_ERR_NOT_FOUND : DLP_ERR_ARG,
                    "fine-tune: no image column '%s'", in);
  if (l < 0 || dlp_frame_col_type(f, (size_t)l) != DLP_TYPE_STRING)
    return dlp_fail(ctx, l < 0 ? DLP_ERR_NOT_FOUND : DLP_ERR_ARG,
                    "fine-tune: no string label column '%s'", ln);
  *ic = (size_t)i;
  *lc = (size_t)l;
  return DLP_OK;
}

/* Options checked and the head parsed: what every run starts with. */
static int ft_run_init(dlp_err *e, ft_run *run, dlp_ctx *ctx,
                       const dlp_finetune_opts *o, dlp_finetune_result *r) {
  memset(run, 0, sizeof *run);
  run->ctx = ctx;
  run->o = o;
  run->r = r;
  run->threads = dlp_ctx_threads(ctx);
  nn_train_cfg c;
  int rc = ft_check_opts(e, o);
  if (rc == DLP_OK) rc = ft_train_cfg(e, o, &c);
  if (rc == DLP_OK) rc = ft_parse_head(e, o->head, run);
  return rc;
}

/* The base model, cut at its feature layer. */
static int ft_base(dlp_err *e, ft_run *run) {
  int rc = ft_load_base(e, run);
  return rc == DLP_OK ? ft_cut(e, run) : rc;
}

/* The decoded images and the split, for the input size of run's model. */
static int ft_data_load(const ft_run *run, const dlp_frame *f, ft_data *d) {
  size_t ic = 0, lc = 0, n = 0, *rows = NULL;
  int rc = ft_columns(run->ctx, f, run->o, &ic, &lc);
  if (rc == DLP_OK) rc = ft_classes(run->ctx, f, ic, lc, d, &rows, &n);
  d->pp = run->pp;
  if (rc == DLP_OK)
    rc = ft_load_images(run->ctx, d, run->o, f, ic, lc, rows, n);
  free(rows);
  if (rc == DLP_OK) rc = ft_check_train_classes(run->ctx, d, run->o->val_split);
  return rc;
}

/* The result's copy of the data's facts. */
static int ft_result_data(dlp_finetune_result *r, const ft_data *d) {
  r->classes = dlp_calloc_array(d->n_classes + 1, sizeof *r->classes);
  r->n_val_class = dlp_malloc_array(d->n_classes + 1, sizeof *r->n_val_class);
  if (!r->classes || !r->n_val_class) return DLP_ERR_NOMEM;
  for (size_t i = 0; i < d->n_classes; i++, r->n_classes++)
    if (!(r->classes[i] = dlp_strdup(d->classes[i]))) return DLP_ERR_NOMEM;
  memcpy(r->n_val_class, d->n_val_class, d->n_classes * sizeof(size_t));
  if (d->skip_example && !(r->skip_example = dlp_strdup(d->skip_example)))
    return DLP_ERR_NOMEM;
  r->n_skipped = d->n_skipped;
  r->n_train = d->n_train;
  r->n_val = d->n_val;
  return DLP_OK;
}

/* From the cut base to the trained graph with its softmax: the head, the
 * training, the result's facts. */
static int ft_head_and_train(dlp_err *e, ft_run *run) {
  const ft_data *d = run->d;
  dlp_finetune_result *r = run->r;
  if (run->pp.width != d->pp.width || run->pp.height != d->pp.height)
    return dlp_err_set(e, DLP_ERR_ARG,
                       "fine-tune: the model takes %dx%d images, the "
                       "grid's others %dx%d",
                       run->pp.height, run->pp.width, d->pp.height,
                       d->pp.width);
  int rc = ft_add_head(e, run, (int)d->n_classes);
  if (rc == DLP_OK && ft_result_data(r, d) != DLP_OK)
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  if (rc != DLP_OK) return rc;
  r->feature_layer = dlp_strdup(run->feat_node);
  r->input_width = run->pp.width;
  r->input_height = run->pp.height;
  r->norm = run->pp.norm;
  if (!r->feature_layer) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  rc = ft_train(e, run);
  nn_trainer_free(run->t);
  run->t = NULL;
  return rc == DLP_OK ? ft_add_softmax(e, run) : rc;
}

static void ft_run_free(ft_run *run) {
  nn_trainer_free(run->t);
  nn_graph_free(run->g);
  run->t = NULL;
  run->g = NULL;
}

int dlp_finetune(dlp_ctx *ctx, const dlp_frame *f,
                 const dlp_finetune_opts *opts, const char *out_path,
                 dlp_finetune_result *result) {
  dlp_finetune_result local;
  dlp_finetune_result *r = result ? result : &local;
  memset(r, 0, sizeof *r);
  if (!f || !opts || !out_path)
    return dlp_fail(ctx, DLP_ERR_ARG, "fine-tune: NULL argument");
  ft_run run;
  ft_data d;
  memset(&d, 0, sizeof d);
  dlp_err e = {0};
  int rc = ft_run_init(&e, &run, ctx, opts, r);
  if (rc == DLP_OK) rc = ft_base(&e, &run);
  if (rc != DLP_OK) rc = dlp_fail_from(ctx, &e);
  if (rc == DLP_OK) rc = ft_data_load(&run, f, &d);
  if (rc == DLP_OK && !opts->overwrite) rc = ft_check_free(ctx, out_path);
  run.d = &d;
  if (rc == DLP_OK) {
    ft_saveinfo si;
    ft_saveinfo_of(&run, &si);
    rc = ft_head_and_train(&e, &run);
    if (rc == DLP_OK)
      rc = ft_save(&e, run.g, &d, &si, opts->overwrite, out_path);
    if (rc == DLP_OK && !(r->labels_path = ft_labels_path(out_path)))
      rc = dlp_err_set(&e, DLP_ERR_NOMEM, "no memory");
    if (rc != DLP_OK) rc = dlp_fail_from(ctx, &e);
  }
  ft_run_free(&run);
  ft_data_clear(&d);
  if (rc != DLP_OK || !result) dlp_finetune_result_clear(r);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

/* --- many runs: the grid ------------------------------------------------- */

void dlp_finetune_grid_opts_init(dlp_finetune_grid_opts *o) {
  memset(o, 0, sizeof *o);
  o->metric = "val_loss";
}

void dlp_finetune_grid_result_clear(dlp_finetune_grid_result *r) {
  if (!r) return;
  for (size_t i = 0; r->runs && i < r->n_maps; i++)
    dlp_finetune_result_clear(&r->runs[i]);
  for (size_t i = 0; r->errors && i < r->n_maps; i++)
    free(r->errors[i]);
  free(r->runs);
  free(r->status);
  free(r->errors);
  free(r->metric);
  free(r->seconds);
  free(r->labels_path);
  memset(r, 0, sizeof *r);
}

/* Everything a grid call works with. */
typedef struct ft_gridrun {
  ft_grid grid;
  dlp_ctx *ctx;
  const dlp_finetune_opts *maps;
  size_t n;
  const char *out;
  bool by_acc;
  ft_data d;
  dlp_finetune_grid_result *r;
  dlp_ctx **wctx; /* per worker */
  /* The best model so far (under grid.mu): kept in memory, saved at the
   * end, so that only the winner is written to out. */
  nn_graph *best_g;
  ft_saveinfo best_si;
  size_t best;
} ft_gridrun;

static bool ft_same_str(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* The fields that decide the images and the split agree with map 0's. */
static int ft_check_shared(dlp_ctx *ctx, const dlp_finetune_opts *a,
                           const dlp_finetune_opts *b, size_t i) {
  const char *bad =
      !ft_same_str(a->model, b->model)             ? "model"
      : !ft_same_str(a->model_file, b->model_file) ? "model_file"
      : !ft_same_str(a->model_dir, b->model_dir)   ? "model_dir"
      : a->random_weights != b->random_weights     ? "random_weights"
      : a->weights_seed != b->weights_seed         ? "weights_seed"
      : a->input_width != b->input_width || a->input_height != b->input_height
          ? "input size"
      : a->norm_set != b->norm_set || (a->norm_set && a->norm != b->norm)
          ? "norm"
      : !ft_same_str(a->feature_layer, b->feature_layer) ? "feature_layer"
      : !ft_same_str(a->image_col, b->image_col)         ? "image_col"
      : !ft_same_str(a->label_col, b->label_col)         ? "label_col"
      : a->val_split != b->val_split                     ? "val_split"
      : a->seed != b->seed                               ? "seed"
      : a->overwrite != b->overwrite                     ? "overwrite"
                                                         : NULL;
  if (bad)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "fine-tune grid: map %zu has another %s than map 1 "
                    "(every map must share the data's settings)",
                    i + 1, bad);
  if (b->checkpoint_dir || b->resume)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "fine-tune grid: map %zu asks for checkpoints, which a "
                    "grid does not keep",
                    i + 1);
  return DLP_OK;
}

/* Every map's options, before any work. */
static int ft_grid_check(ft_gridrun *gr) {
  const dlp_finetune_grid_opts *go = gr->grid.go;
  const char *m = go->metric ? go->metric : "val_loss";
  if (strcmp(m, "val_loss") != 0 && strcmp(m, "val_acc") != 0)
    return dlp_fail(gr->ctx, DLP_ERR_ARG,
                    "fine-tune grid: unknown metric '%s' (expected val_loss "
                    "or val_acc)",
                    m);
  gr->by_acc = strcmp(m, "val_acc") == 0;
  if (go->parallelism < 0)
    return dlp_fail(gr->ctx, DLP_ERR_ARG,
                    "fine-tune grid: parallelism %d must be >= 0",
                    go->parallelism);
  if (!(gr->maps[0].val_split > 0))
    return dlp_fail(gr->ctx, DLP_ERR_ARG,
                    "fine-tune grid: the maps are compared on validation "
                    "images: give a validation split > 0");
  for (size_t i = 0; i < gr->n; i++) {
    int rc = ft_check_shared(gr->ctx, &gr->maps[0], &gr->maps[i], i);
    if (rc != DLP_OK) return rc;
    ft_run run;
    dlp_err e = {0};
    if (ft_run_init(&e, &run, gr->ctx, &gr->maps[i], NULL) != DLP_OK)
      return dlp_fail(gr->ctx, e.code, "fine-tune grid: map %zu: %s", i + 1,
                      e.msg);
  }
  return DLP_OK;
}

static int ft_grid_alloc(ft_gridrun *gr, int p) {
  dlp_finetune_grid_result *r = gr->r;
  size_t n = gr->n;
  r->n_maps = n;
  r->runs = dlp_calloc_array(n, sizeof *r->runs);
  r->status = dlp_calloc_array(n, sizeof *r->status);
  r->errors = dlp_calloc_array(n, sizeof *r->errors);
  r->metric = dlp_malloc_array(n, sizeof *r->metric);
  r->seconds = dlp_calloc_array(n, sizeof *r->seconds);
  gr->wctx = dlp_calloc_array((size_t)p, sizeof *gr->wctx);
  if (!r->runs || !r->status || !r->errors || !r->metric || !r->seconds ||
      !gr->wctx)
    return dlp_fail(gr->ctx, DLP_ERR_NOMEM, "no memory for %zu maps", n);
  for (size_t i = 0; i < n; i++)
    r->metric[i] = NAN;
  for (int w = 0; w < p; w++) {
    if (dlp_ctx_new(&gr->wctx[w]) != DLP_OK)
      return dlp_fail(gr->ctx, DLP_ERR_NOMEM, "no memory for a context");
    dlp_ctx_set_threads(gr->wctx[w], r->kernel_threads);
    dlp_ctx_set_max_pixels(gr->wctx[w], dlp_ctx_max_pixels(gr->ctx));
    dlp_ctx_set_max_file_bytes(gr->wctx[w], dlp_ctx_max_file_bytes(gr->ctx));
  }
  return DLP_OK;
}

/* The existing-file checks for out and every map path. */
static int ft_grid_check_outputs(ft_gridrun *gr) {
  if (gr->maps[0].overwrite) return DLP_OK;
  int rc = ft_check_free(gr->ctx, gr->out);
  const char *const *mp = gr->grid.go->map_paths;
  for (size_t i = 0; rc == DLP_OK && mp && i < gr->n; i++)
    if (mp[i]) rc = ft_check_free(gr->ctx, mp[i]);
  return rc;
}

/* The saved epoch's metric of a trained run. */
static double ft_run_metric(const dlp_finetune_result *r, bool by_acc) {
  int k = r->saved_epoch - r->first_epoch;
  if (k < 0 || k >= r->n_epochs) return NAN;
  return by_acc ? r->epochs[k].val_acc : r->epochs[k].val_loss;
}

/* Keeps run's graph when it beats the best so far (ties: the lower map). */
static void ft_grid_offer(ft_gridrun *gr, ft_run *run, double m) {
  pthread_mutex_lock(&gr->grid.mu);
  bool first = gr->best == gr->n;
  double b = first ? 0 : gr->r->metric[gr->best];
  bool better =
      first || (gr->by_acc ? m > b : m < b) || (m == b && run->map < gr->best);
  if (better) {
    nn_graph_free(gr->best_g);
    gr->best_g = run->g;
    run->g = NULL;
    gr->best = run->map;
    ft_saveinfo_of(run, &gr->best_si);
  }
  gr->r->metric[run->map] = m;
  pthread_mutex_unlock(&gr->grid.mu);
}

/* Map i on worker context wc: train, save to its map path, offer. */
static int ft_grid_one(ft_gridrun *gr, dlp_ctx *wc, size_t i, dlp_err *e) {
  dlp_finetune_result *r = &gr->r->runs[i];
  ft_run run;
  int rc = ft_run_init(e, &run, wc, &gr->maps[i], r);
  run.d = &gr->d;
  run.map = i;
  run.grid = &gr->grid;
  if (rc == DLP_OK) rc = ft_base(e, &run);
  if (rc == DLP_OK) rc = ft_head_and_train(e, &run);
  const char *const *mp = gr->grid.go->map_paths;
  if (rc == DLP_OK && mp && mp[i]) {
    ft_saveinfo si;
    ft_saveinfo_of(&run, &si);
    rc = ft_save(e, run.g, &gr->d, &si, gr->maps[i].overwrite, mp[i]);
    if (rc == DLP_OK && !(r->labels_path = ft_labels_path(mp[i])))
      rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  }
  if (rc == DLP_OK) {
    double m = ft_run_metric(r, gr->by_acc);
    if (isnan(m))
      rc = dlp_err_set(e, DLP_ERR_ARG, "fine-tune: no validation metric");
    else
      ft_grid_offer(gr, &run, m);
  }
  ft_run_free(&run);
  return rc;
}

static void ft_grid_task(size_t i, void *user, int worker) {
  ft_gridrun *gr = user;
  dlp_err e = {0};
  double t0 = dlp_now();
  int rc = ft_grid_one(gr, gr->wctx[worker], i, &e);
  gr->r->seconds[i] = dlp_now() - t0;
  gr->r->status[i] = rc;
  if (rc == DLP_OK) return;
  gr->r->errors[i] = dlp_strdup(e.msg[0] ? e.msg : "failed");
  dlp_finetune_result_clear(&gr->r->runs[i]);
}

/* "all 3 maps failed: 1: why; 2: why; ..." as the context's error. */
static int ft_grid_all_failed(ft_gridrun *gr) {
  char msg[900];
  size_t len = (size_t)snprintf(msg, sizeof msg, "all %zu map%s failed", gr->n,
                                gr->n == 1 ? "" : "s");
  for (size_t i = 0; i < gr->n && len < sizeof msg; i++)
    len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%zu: %s",
                            i ? "; " : ": ", i + 1,
                            gr->r->errors[i] ? gr->r->errors[i] : "?");
  return dlp_fail(gr->ctx, gr->r->status[0], "fine-tune grid: %s", msg);
}

/* The steps after the arguments are known good. */
static int ft_grid_steps(ft_gridrun *gr, const dlp_frame *f) {
  dlp_ctx *ctx = gr->ctx;
  int rc = ft_grid_check(gr);
  if (rc != DLP_OK) return rc;
  /* A probe of map 0's base gives the input size the cache is made for. */
  ft_run probe;
  dlp_err e = {0};
  rc = ft_run_init(&e, &probe, ctx, &gr->maps[0], NULL);
  if (rc == DLP_OK) rc = ft_base(&e, &probe);
  if (rc != DLP_OK) rc = dlp_fail_from(ctx, &e);
  if (rc == DLP_OK) rc = ft_data_load(&probe, f, &gr->d);
  ft_run_free(&probe);
  if (rc == DLP_OK) rc = ft_grid_check_outputs(gr);
  if (rc != DLP_OK) return rc;
  int threads = dlp_ctx_threads(ctx);
  int p = gr->grid.go->parallelism;
  if (p == 0) p = threads;
  if ((size_t)p > gr->n) p = (int)gr->n;
  gr->r->parallelism = p;
  gr->r->kernel_threads = threads / p > 1 ? threads / p : 1;
  if ((rc = ft_grid_alloc(gr, p)) != DLP_OK) return rc;
  gr->best = gr->n;
  if (!dlp_parallel_for(gr->n, p, ft_grid_task, gr, ctx, "fine-tuning grid"))
    return dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  gr->r->best = gr->best;
  if (gr->best == gr->n) return ft_grid_all_failed(gr);
  rc = ft_save(&e, gr->best_g, &gr->d, &gr->best_si, gr->maps[0].overwrite,
               gr->out);
  if (rc == DLP_OK && !(gr->r->labels_path = ft_labels_path(gr->out)))
    rc = dlp_err_set(&e, DLP_ERR_NOMEM, "no memory");
  return rc == DLP_OK ? DLP_OK : dlp_fail_from(ctx, &e);
}

int dlp_finetune_grid(dlp_ctx *ctx, const dlp_frame *f,
                      const dlp_finetune_opts *maps, size_t n_maps,
                      const dlp_finetune_grid_opts *go, const char *out_path,
                      dlp_finetune_grid_result *result) {
  dlp_finetune_grid_result local;
  dlp_finetune_grid_result *r = result ? result : &local;
  memset(r, 0, sizeof *r);
  if (!f || !maps || !out_path)
    return dlp_fail(ctx, DLP_ERR_ARG, "fine-tune grid: NULL argument");
  if (n_maps == 0)
    return dlp_fail(ctx, DLP_ERR_ARG, "fine-tune grid: no parameter maps");
  dlp_finetune_grid_opts defaults;
  dlp_finetune_grid_opts_init(&defaults);
  ft_gridrun gr;
  memset(&gr, 0, sizeof gr);
  gr.grid.go = go ? go : &defaults;
  gr.ctx = ctx;
  gr.maps = maps;
  gr.n = n_maps;
  gr.out = out_path;
  gr.r = r;
  pthread_mutex_init(&gr.grid.mu, NULL);
  int rc = ft_grid_steps(&gr, f);
  bool ran = r->runs && (rc == DLP_OK || r->best == n_maps);
  for (int w = 0; gr.wctx && w < r->parallelism; w++)
    dlp_ctx_free(gr.wctx[w]);
  free(gr.wctx);
  nn_graph_free(gr.best_g);
  ft_data_clear(&gr.d);
  pthread_mutex_destroy(&gr.grid.mu);
  if (!ran || !result) dlp_finetune_grid_result_clear(r);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}
