/* train.h - training and fine-tuning of a graph (oneDNN convolutions and
 * threaded kernels with cfg.fast, else the reference kernels): forward in
 * training mode, backward by reverse topological order,
 * optimizers (SGD with momentum, Adam, AdamW), learning-rate schedules,
 * the epoch loop with validation, early stopping and checkpoints.
 *
 *     nn_graph_cut(&e, g, "predictions/logits");  // zoo: logits, not softmax
 *     nn_train_cfg c;
 *     nn_train_cfg_init(&c);                      // SGD lr 0.01, 10 epochs
 *     c.optim.kind = NN_OPTIM_ADAM; c.optim.lr = 1e-3f;
 *     nn_trainer *t = NULL;
 *     nn_trainer_new(&e, g, &c, &t);              // g finalized, NOT optimized
 *     nn_trainer_freeze_until(&e, t, "block5_pool");   // optional
 *     nn_train_data tr = nn_train_data_arrays(x, y, n, sample_numel);
 *     nn_trainer_fit(&e, t, &tr, &val, NULL);     // weights updated in g
 *     nn_trainer_free(t);
 *     // g now serves inference: nn_graph_optimize, nn_plan_new, ...
 *
 * The graph's single output must be the logits (N, K); the loss is the
 * softmax cross-entropy of nn_softmax_xent. Trainable parameters are the
 * constants feeding conv2d/dense weights and biases and batch-norm gamma and
 * beta; the running mean and variance are state, updated by the training
 * forward pass with momentum cfg.bn_momentum (PyTorch's convention: 0.1 is
 * PyTorch's default, Keras' momentum=0.99 is 0.01 here). The constants are
 * updated in place, so a plan made after training sees the new weights.
 *
 * Frozen nodes (Keras' trainable=False) keep their parameters bit-identical,
 * and a frozen batch norm runs in inference mode with its running statistics
 * (the Keras fine-tuning convention), also leaving those untouched.
 *
 * Ops with a backward pass: conv2d, dense (a fused activation is split into
 * op + activation), batchnorm, act, clip, softmax, max/avg pool, global
 * pools, add, mul, concat, flatten, reshape, identity, transpose, constant
 * pad. Reflect and edge pads train only where no gradient has to pass
 * through them (in a frozen prefix). Dropout layers are identities in the IR;
 * nn_trainer_set_dropout gives one its rate for training.
 *
 * Deterministic: for a given seed (and thread count) the shuffles, and so
 * the weights, are bit-identical run to run; a run resumed from a
 * checkpoint continues bit-identically. With cfg.fast the weights differ
 * from the reference kernels' by fp32 summation order only, and between
 * thread counts likewise (oneDNN splits its reductions by thread).
 * DLP_TRAIN_PROFILE=1 (or =cpu for CPU time) prints per-op times of the
 * steps after the first to stderr when the trainer is freed.
 */
#ifndef DLP_NN_TRAIN_H
#define DLP_NN_TRAIN_H

#include "graph.h"

/* ------------------------------------------------------------------------
 * Optimizers and schedules (usable on their own)
 * ------------------------------------------------------------------------ */

typedef enum nn_optim_kind {
  NN_OPTIM_SGD = 0, /* PyTorch SGD (momentum, dampening 0, nesterov) */
  NN_OPTIM_ADAM     /* PyTorch Adam with bias correction (AdamW if decoupled) */
} nn_optim_kind;

typedef struct nn_optim_cfg {
  nn_optim_kind kind; /* default NN_OPTIM_SGD */
  float lr;           /* base learning rate, default 0.01 */
  float momentum;     /* SGD, default 0 (plain SGD) */
  bool nesterov;      /* SGD, default false; needs momentum > 0 */
  float beta1, beta2; /* Adam, default 0.9, 0.999 */
  float eps;          /* Adam, default 1e-8 */
  float weight_decay; /* default 0: L2 added to the gradient (PyTorch's
                         weight_decay), or decoupled when `decoupled` */
  bool decoupled;     /* AdamW: w -= lr * weight_decay * w before the step;
                         default false (Adam only) */
} nn_optim_cfg;
void nn_optim_cfg_init(nn_optim_cfg *c);
/* Checks ranges; DLP_ERR_ARG naming the bad field. */
int nn_optim_cfg_check(dlp_err *e, const nn_optim_cfg *c);

/* One update of n parameters w with gradient g at learning rate lr. m and v
 * (n floats each, zero at the start) are the optimizer's moments: SGD's
 * momentum buffer in m (v unused, may be NULL), Adam's first and second
 * moments. step is the 1-based count of updates of these parameters (Adam's
 * bias correction). */
void nn_optim_update(const nn_optim_cfg *c, float lr, int64_t step, float *w,
                     const float *g, float *m, float *v, int64_t n);

typedef enum nn_sched_kind {
  NN_SCHED_CONSTANT = 0,
  NN_SCHED_STEP,  /* lr * gamma^floor(epoch / step_epochs) */
  NN_SCHED_COSINE /* lr * (1 + cos(pi * t / T)) / 2 over the run's steps */
} nn_sched_kind;

typedef struct nn_sched_cfg {
  nn_sched_kind kind; /* default NN_SCHED_CONSTANT */
  int step_epochs;    /* NN_SCHED_STEP, default 1 */
  float gamma;        /* NN_SCHED_STEP, default 0.1 */
  int64_t warmup;     /* linear warmup steps, default 0: step s < warmup uses
                         lr * (s + 1) / warmup; cosine then runs over the
                         remaining steps */
} nn_sched_cfg;
void nn_sched_cfg_init(nn_sched_cfg *c);

/* Learning rate of 0-based optimizer step `step` in 0-based `epoch`, with
 * `total` steps in the whole run. */
double nn_sched_lr(const nn_sched_cfg *c, double base_lr, int64_t step,
                   int epoch, int64_t total);

/* ------------------------------------------------------------------------
 * Data
 * ------------------------------------------------------------------------ */

/* Fills x (n samples, NCHW floats, numel of the graph input per sample each)
 * and labels (n) with the samples idx[0..n). Returns DLP_OK or a status
 * with e set. */
typedef int (*nn_batch_fn)(void *user, const int64_t *idx, int64_t n, float *x,
                           int32_t *labels, dlp_err *e);

typedef struct nn_train_data {
  int64_t n;        /* number of samples */
  nn_batch_fn fill; /* NULL: x/labels arrays below */
  void *user;
  const float *x;        /* n * sample_numel floats, when fill is NULL */
  const int32_t *labels; /* n */
  int64_t sample_numel;
} nn_train_data;
/* A source over arrays the caller keeps alive. */
nn_train_data nn_train_data_arrays(const float *x, const int32_t *labels,
                                   int64_t n, int64_t sample_numel);

/* ------------------------------------------------------------------------
 * The trainer
 * ------------------------------------------------------------------------ */

typedef struct nn_epoch_stats {
  int epoch; /* 0-based */
  double lr; /* learning rate of the epoch's last step */
  double train_loss, train_acc;
  double val_loss, val_acc; /* NAN without validation data */
  bool improved;            /* val loss is a new best */
} nn_epoch_stats;

/* Called after every epoch; returning nonzero stops training (not an
 * error). */
typedef int (*nn_epoch_fn)(void *user, const nn_epoch_stats *s);

typedef struct nn_train_cfg {
  nn_optim_cfg optim;
  nn_sched_cfg sched;
  int epochs;            /* default 10 */
  int64_t batch;         /* default 32 */
  uint64_t seed;         /* shuffling; default 0 */
  bool shuffle;          /* default true */
  bool drop_last;        /* drop a last partial batch; default false (a
                            last batch of one sample is dropped anyway when a
                            training batch norm would see one value per
                            channel, as PyTorch refuses it) */
  float bn_momentum;     /* default 0.1 (PyTorch); Keras 0.99 is 0.01 */
  float label_smoothing; /* default 0 */
  int patience;          /* early stopping on val loss; 0 (default) = off */
  bool restore_best;     /* Keras' restore_best_weights: when the fit ends
                            (all epochs, early stopping or on_epoch), the
                            parameters and batch-norm running statistics
                            go back to the epoch with the lowest val loss;
                            default false (the last epoch's). Needs val
                            data; without a val loss nothing is restored */
  const char *checkpoint_dir; /* saved after every epoch; NULL = none */
  nn_epoch_fn on_epoch;       /* may be NULL */
  void *on_epoch_user;
  int threads;       /* kernel threads; default 1. Results are bit-identical
                        run to run for a given thread count */
  bool fast;         /* default true: oneDNN kernels where they exist (conv
                        forward and backward); false: the reference kernels
                        of nn.h/grad.h only (the oracle in tests) */
  dlp_ctx *progress; /* dlp_progress("train", steps done, steps in the run)
                        per batch when not NULL; a cancel fails the fit with
                        DLP_ERR_ARG "cancelled" */
} nn_train_cfg;
void nn_train_cfg_init(nn_train_cfg *c);

typedef struct nn_trainer nn_trainer;

/* A trainer over g (finalized, not optimized; one batched input (N, ...),
 * one output (N, K)). g must outlive the trainer and keep its structure
 * while the trainer exists (free the trainer before nn_graph_optimize or
 * nn_graph_cut); the trainer changes its parameter constants and batch-norm
 * running statistics in place. Buffers for
 * cfg->batch samples are allocated here, once. cfg is copied, but the
 * pointers in it (checkpoint_dir, users) are borrowed for the trainer's life.
 * DLP_ERR_UNSUPPORTED names a node whose op cannot train; DLP_ERR_ARG a bad
 * config or graph (an output that is a softmax is refused: cut to the
 * logits before it). */
int nn_trainer_new(dlp_err *e, nn_graph *g, const nn_train_cfg *cfg,
                   nn_trainer **out);
void nn_trainer_free(nn_trainer *t);

/* Freezes the parameters of every node up to and including the node named
 * `name` in topological order (Keras "freeze until layer"). Call before
 * training. DLP_ERR_NOT_FOUND when no node has that name. */
int nn_trainer_freeze_until(dlp_err *e, nn_trainer *t, const char *name);
/* Freezes every node for which pred returns true. */
typedef bool (*nn_node_pred)(const nn_graph *g, int node, void *user);
int nn_trainer_freeze_if(dlp_err *e, nn_trainer *t, nn_node_pred pred,
                         void *user);
/* Inverted dropout at rate (in [0, 1)) on the identity node named `name`
 * (where importers leave Keras Dropout and ONNX Dropout) while training;
 * still the identity in nn_trainer_eval and in every plan. Its mask comes
 * from a stream seeded by cfg.seed, saved in checkpoints. */
int nn_trainer_set_dropout(dlp_err *e, nn_trainer *t, const char *name,
                           float rate);
/* Number of trainable (not frozen) parameter tensors and their elements. */
int nn_trainer_trainable(const nn_trainer *t, int64_t *n_elems);

/* One optimizer step on a batch of n <= cfg.batch samples at learning rate
 * lr: training forward, loss, backward, update. *loss (mean over the batch)
 * and *correct (argmax hits) may be NULL. */
int nn_trainer_step(dlp_err *e, nn_trainer *t, const float *x,
                    const int32_t *labels, int64_t n, double lr, double *loss,
                    int64_t *correct);
/* Inference-mode forward (batch norm with running statistics) of n <=
 * cfg.batch samples: logits (n * K floats) and, when labels is not NULL,
 * the loss and argmax hits. logits, loss, correct may each be NULL. */
int nn_trainer_eval(dlp_err *e, nn_trainer *t, const float *x,
                    const int32_t *labels, int64_t n, float *logits,
                    double *loss, int64_t *correct);

/* The loop: from the trainer's current epoch to cfg.epochs, shuffled
 * mini-batches of train, an optimizer step each, the schedule's learning
 * rate; after each epoch the validation metrics (val may be NULL), early
 * stopping, a checkpoint, and on_epoch. history (cfg.epochs entries, may be
 * NULL) receives each run epoch's stats. The schedule counts optimizer steps
 * over the whole run (epochs x batches an epoch). Early stopping ends the
 * run once cfg.patience epochs in a row have not lowered the best
 * validation loss (strictly); the weights are then the last epoch's, unless
 * cfg.restore_best, which puts back the best epoch's parameters and running
 * statistics when the loop ends (the optimizer state stays the last
 * epoch's). An error leaves the weights of the failing point. */
int nn_trainer_fit(dlp_err *e, nn_trainer *t, const nn_train_data *train,
                   const nn_train_data *val, nn_epoch_stats *history);
/* Epochs completed so far; whether early stopping ended the run. */
int nn_trainer_epoch(const nn_trainer *t);
bool nn_trainer_stopped_early(const nn_trainer *t);
/* restore_best: the 0-based epoch whose weights fit restores (the lowest
 * val loss so far, resumed runs included); -1 without restore_best or
 * before any val loss. */
int nn_trainer_best_epoch(const nn_trainer *t);

/* Checkpoints: dir (created if missing; its parent must exist) gets
 * checkpoint.json (epoch, step, RNG state, early-stopping state, the file of
 * each array) and .npy files of the parameters, batch-norm running statistics
 * and optimizer moments, and with restore_best the best epoch's copies of
 * the first two (so a resumed run restores the same weights). nn_trainer_load
 * restores all of it into a trainer over the same graph and config;
 * DLP_ERR_SCHEMA when names or shapes do not match, and then the trainer may
 * hold part of the checkpoint (start over with a new one). */
int nn_trainer_save(dlp_err *e, const nn_trainer *t, const char *dir);
int nn_trainer_load(dlp_err *e, nn_trainer *t, const char *dir);

#endif /* DLP_NN_TRAIN_H */
