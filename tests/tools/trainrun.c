/* trainrun.c - test tool: builds a fixed small conv net through the graph
 * IR with initial weights from .npy files, takes optimizer steps on the
 * batches a test chose, and writes the weights, batch-norm running
 * statistics and losses, so tests/ref/test_train_vs_torch.py can compare
 * them with the same steps in PyTorch.
 *
 *   trainrun DIR OPTIM LR MOMENTUM NESTEROV WEIGHT_DECAY BN_MOMENTUM
 *            [--freeze-until NODE] [--eps EPS] [--smoothing S]
 *            [--fit EPOCHS [--cosine-warmup W]]
 *
 * OPTIM is sgd, adam or adamw. DIR holds x.npy (N, 3, H, W) float32,
 * y.npy (N) int64, order.npy (STEPS, B) int64 sample indices, and the
 * initial weights <name>.npy (float32):
 *   conv1  conv 3x3 pad 1 3->C1 (conv1_w, conv1_b)
 *   bn1    batch norm eps 1e-3 (bn1_g, bn1_b, bn1_m, bn1_v); relu1
 *   pool   maxpool 2x2/2
 *   conv2  conv 3x3/2 pad 1 C1->C2 with a fused relu (conv2_w, conv2_b)
 *   conv3  conv 1x1/2 C1->C2, no bias (conv3_w); add = conv2 + conv3
 *   gap    global average pool (keepdims); flat = flatten
 *   fc     dense C2->K, torch.nn.Linear layout (fc_w (K, C2), fc_b)
 * Writes DIR/out_<name>.npy for every weight and running statistic and
 * DIR/losses.npy (STEPS, float64). With --fit the trainer's own loop runs
 * EPOCHS epochs over x in order (no shuffle) in batches of order's width
 * (the last one partial), with a cosine schedule after W warmup steps when
 * asked; losses.npy then has each epoch's mean training loss. Exit status 0, or
 * 1 with a message. */
#include "graph.h"
#include "npy.h"
#include "train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kWeights[] = {
    "conv1_w", "conv1_b", "bn1_g",   "bn1_b", "bn1_m", "bn1_v",
    "conv2_w", "conv2_b", "conv3_w", "fc_w",  "fc_b"};
#define N_WEIGHTS (int)(sizeof kWeights / sizeof kWeights[0])

static int load(dlp_err *e, const char *dir, const char *name,
                dlp_npy_array *a) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.npy", dir, name);
  return dlp_npy_load_array(e, path, (uint64_t)1 << 30, a);
}

static int add_weight(dlp_err *e, nn_graph *g, const char *dir,
                      const char *name, int *id) {
  dlp_npy_array a;
  int rc = load(e, dir, name, &a);
  if (rc != DLP_OK) return rc;
  if (a.dtype != 'f') {
    dlp_npy_array_free(&a);
    return dlp_err_set(e, DLP_ERR_ARG, "%s: not float32", name);
  }
  *id = nn_graph_add_const(g, name, a.ndim, a.dims, a.data);
  dlp_npy_array_free(&a);
  return DLP_OK;
}

static int conv(nn_graph *g, const char *name, const int *in, int n_in,
                int stride, int pad, nn_act act) {
  nn_node_attr a;
  nn_node_attr_init(NN_OP_CONV2D, &a);
  a.conv.stride[0] = a.conv.stride[1] = stride;
  for (int k = 0; k < 4; k++)
    a.conv.pads[k] = pad;
  a.conv.act = act;
  return nn_graph_add_node(g, NN_OP_CONV2D, name, in, n_in, &a);
}

static int build(dlp_err *e, const char *dir, int64_t h, int64_t w,
                 nn_graph **out) {
  nn_graph *g = NULL;
  int rc = nn_graph_new(e, &g), id[N_WEIGHTS];
  for (int i = 0; rc == DLP_OK && i < N_WEIGHTS; i++)
    rc = add_weight(e, g, dir, kWeights[i], &id[i]);
  if (rc != DLP_OK) {
    nn_graph_free(g);
    return rc;
  }
  int x = nn_graph_add_input(g, "x", 4, (int64_t[]){-1, 3, h, w});
  int c1 = conv(g, "conv1", (int[]){x, id[0], id[1]}, 3, 1, 1, NN_ACT_NONE);
  nn_node_attr a;
  nn_node_attr_init(NN_OP_BATCHNORM, &a);
  a.eps = 1e-3f;
  int b1 = nn_graph_add_node(g, NN_OP_BATCHNORM, "bn1",
                             (int[]){c1, id[2], id[3], id[4], id[5]}, 5, &a);
  nn_node_attr_init(NN_OP_ACT, &a);
  a.act = NN_ACT_RELU;
  int r1 = nn_graph_add_node(g, NN_OP_ACT, "relu1", (int[]){b1}, 1, &a);
  nn_node_attr_init(NN_OP_MAXPOOL, &a);
  a.pool.kernel[0] = a.pool.kernel[1] = 2;
  a.pool.stride[0] = a.pool.stride[1] = 2;
  int p = nn_graph_add_node(g, NN_OP_MAXPOOL, "pool", (int[]){r1}, 1, &a);
  int c2 = conv(g, "conv2", (int[]){p, id[6], id[7]}, 3, 2, 1, NN_ACT_RELU);
  int c3 = conv(g, "conv3", (int[]){p, id[8]}, 2, 2, 0, NN_ACT_NONE);
  int s = nn_graph_add_node(g, NN_OP_ADD, "add", (int[]){c2, c3}, 2, NULL);
  int gp =
      nn_graph_add_node(g, NN_OP_GLOBAL_AVGPOOL, "gap", (int[]){s}, 1, NULL);
  int f = nn_graph_add_node(g, NN_OP_FLATTEN, "flat", (int[]){gp}, 1, NULL);
  nn_node_attr_init(NN_OP_DENSE, &a);
  a.dense.transb = true;
  int y =
      nn_graph_add_node(g, NN_OP_DENSE, "fc", (int[]){f, id[9], id[10]}, 3, &a);
  nn_graph_mark_output(g, y);
  rc = nn_graph_finalize(e, g);
  if (rc != DLP_OK) {
    nn_graph_free(g);
    return rc;
  }
  *out = g;
  return DLP_OK;
}

typedef struct run_data {
  dlp_npy_array x, y, order;
  float *xb;
  int32_t *yb;
} run_data;

static void run_data_free(run_data *d) {
  dlp_npy_array_free(&d->x);
  dlp_npy_array_free(&d->y);
  dlp_npy_array_free(&d->order);
  free(d->xb);
  free(d->yb);
}

static int load_data(dlp_err *e, const char *dir, run_data *d) {
  int rc = load(e, dir, "x", &d->x);
  if (rc == DLP_OK) rc = load(e, dir, "y", &d->y);
  if (rc == DLP_OK) rc = load(e, dir, "order", &d->order);
  if (rc != DLP_OK) return rc;
  if (d->x.dtype != 'f' || d->x.ndim != 4 || d->y.dtype != 'q' ||
      d->order.dtype != 'q' || d->order.ndim != 2 ||
      d->y.dims[0] != d->x.dims[0])
    return dlp_err_set(e, DLP_ERR_ARG,
                       "x (N,3,H,W) f4, y (N) i8, order (S,B) i8 expected");
  int64_t b = d->order.dims[1],
          sample = d->x.dims[1] * d->x.dims[2] * d->x.dims[3];
  d->xb = malloc((size_t)(b * sample) * sizeof(float));
  d->yb = malloc((size_t)b * sizeof(int32_t));
  if (!d->xb || !d->yb) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  return DLP_OK;
}

/* Gathers batch s of the order into xb/yb. */
static int gather(dlp_err *e, run_data *d, int64_t s) {
  int64_t b = d->order.dims[1], n = d->x.dims[0];
  int64_t sample = d->x.dims[1] * d->x.dims[2] * d->x.dims[3];
  const int64_t *idx = (const int64_t *)d->order.data + s * b;
  for (int64_t i = 0; i < b; i++) {
    if (idx[i] < 0 || idx[i] >= n)
      return dlp_err_set(e, DLP_ERR_ARG, "order: index %lld out of range",
                         (long long)idx[i]);
    memcpy(d->xb + i * sample, (const float *)d->x.data + idx[i] * sample,
           (size_t)sample * sizeof(float));
    d->yb[i] = (int32_t)((const int64_t *)d->y.data)[idx[i]];
  }
  return DLP_OK;
}

static int save_outputs(dlp_err *e, const char *dir, const nn_graph *g,
                        double *losses, int64_t steps) {
  char path[4096];
  for (int i = 0; i < N_WEIGHTS; i++) {
    const nn_value *v = &g->values[nn_graph_find_value(g, kWeights[i])];
    dlp_npy_array a = {.dtype = 'f', .ndim = v->shape.ndim, .data = v->data};
    memcpy(a.dims, v->shape.dims, sizeof v->shape.dims);
    a.nbytes = (size_t)nn_shape_numel(a.ndim, a.dims) * sizeof(float);
    snprintf(path, sizeof path, "%s/out_%s.npy", dir, kWeights[i]);
    int rc = dlp_npy_save_array(e, path, &a);
    if (rc != DLP_OK) return rc;
  }
  dlp_npy_array l = {.dtype = 'd',
                     .ndim = 1,
                     .dims = {steps},
                     .data = losses,
                     .nbytes = (size_t)steps * sizeof(double)};
  snprintf(path, sizeof path, "%s/losses.npy", dir);
  return dlp_npy_save_array(e, path, &l);
}

static int parse_cfg(int argc, char **argv, nn_train_cfg *c) {
  nn_train_cfg_init(c);
  c->epochs = 0;
  const char *o = argv[2];
  c->optim.kind = strcmp(o, "sgd") == 0 ? NN_OPTIM_SGD : NN_OPTIM_ADAM;
  c->optim.decoupled = strcmp(o, "adamw") == 0;
  c->optim.lr = strtof(argv[3], NULL);
  c->optim.momentum = strtof(argv[4], NULL);
  c->optim.nesterov = atoi(argv[5]) != 0;
  c->optim.weight_decay = strtof(argv[6], NULL);
  c->bn_momentum = strtof(argv[7], NULL);
  for (int i = 8; i + 1 < argc; i += 2)
    if (strcmp(argv[i], "--eps") == 0)
      c->optim.eps = strtof(argv[i + 1], NULL);
    else if (strcmp(argv[i], "--smoothing") == 0)
      c->label_smoothing = strtof(argv[i + 1], NULL);
    else if (strcmp(argv[i], "--fit") == 0)
      c->epochs = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--cosine-warmup") == 0) {
      c->sched.kind = NN_SCHED_COSINE;
      c->sched.warmup = atoi(argv[i + 1]);
    }
  return strcmp(o, "sgd") == 0 || strcmp(o, "adam") == 0 ||
         strcmp(o, "adamw") == 0;
}

/* --fit: the trainer's own loop over x in order (no shuffle), batches of
 * order's width; losses are the epochs' mean training losses. */
static int fit(dlp_err *e, nn_trainer *t, const nn_train_cfg *c, run_data *d,
               double *losses) {
  int64_t n = d->x.dims[0], sample = d->x.dims[1] * d->x.dims[2] * d->x.dims[3];
  int32_t *y = malloc((size_t)n * sizeof *y);
  nn_epoch_stats *h = calloc((size_t)c->epochs, sizeof *h);
  int rc = y && h ? DLP_OK : dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  for (int64_t i = 0; rc == DLP_OK && i < n; i++)
    y[i] = (int32_t)((const int64_t *)d->y.data)[i];
  nn_train_data td = nn_train_data_arrays(d->x.data, y, n, sample);
  if (rc == DLP_OK) rc = nn_trainer_fit(e, t, &td, NULL, h);
  for (int i = 0; rc == DLP_OK && i < c->epochs; i++)
    losses[i] = h[i].train_loss;
  free(y);
  free(h);
  return rc;
}

static int run(dlp_err *e, int argc, char **argv) {
  nn_train_cfg c;
  if (!parse_cfg(argc, argv, &c))
    return dlp_err_set(e, DLP_ERR_ARG, "unknown optimizer %s", argv[2]);
  run_data d = {0};
  nn_graph *g = NULL;
  nn_trainer *t = NULL;
  double *losses = NULL;
  int rc = load_data(e, argv[1], &d);
  if (rc == DLP_OK) rc = build(e, argv[1], d.x.dims[2], d.x.dims[3], &g);
  int64_t steps = d.order.dims[0], b = d.order.dims[1];
  c.batch = b > 0 ? b : 1;
  bool fitting = c.epochs > 0;
  c.shuffle = false;
  if (fitting) steps = c.epochs;
  if (rc == DLP_OK) rc = nn_trainer_new(e, g, &c, &t);
  for (int i = 8; rc == DLP_OK && i + 1 < argc; i += 2)
    if (strcmp(argv[i], "--freeze-until") == 0)
      rc = nn_trainer_freeze_until(e, t, argv[i + 1]);
  if (rc == DLP_OK && !(losses = calloc((size_t)steps + 1, sizeof *losses)))
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  if (rc == DLP_OK && fitting) rc = fit(e, t, &c, &d, losses);
  for (int64_t s = 0; rc == DLP_OK && !fitting && s < steps; s++) {
    rc = gather(e, &d, s);
    if (rc == DLP_OK)
      rc = nn_trainer_step(e, t, d.xb, d.yb, b, c.optim.lr, &losses[s], NULL);
  }
  if (rc == DLP_OK) rc = save_outputs(e, argv[1], g, losses, steps);
  free(losses);
  nn_trainer_free(t);
  nn_graph_free(g);
  run_data_free(&d);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 8 || argc % 2 != 0) {
    fprintf(stderr, "usage: trainrun DIR sgd|adam|adamw LR MOMENTUM NESTEROV "
                    "WEIGHT_DECAY BN_MOMENTUM [--freeze-until NODE] "
                    "[--eps EPS] [--smoothing S] [--fit EPOCHS "
                    "[--cosine-warmup W]]\n");
    return 1;
  }
  dlp_err e = {0};
  if (run(&e, argc, argv) != DLP_OK) {
    fprintf(stderr, "trainrun: %s\n", e.msg);
    return 1;
  }
  return 0;
}
