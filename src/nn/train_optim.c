/* train_optim.c - optimizers and learning-rate schedules of the trainer,
 * following PyTorch's update rules (torch.optim.SGD, Adam, AdamW) so that a
 * run can be checked step by step against PyTorch. */
#include "train.h"

#include <math.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

void nn_optim_cfg_init(nn_optim_cfg *c) {
  *c = (nn_optim_cfg){.kind = NN_OPTIM_SGD,
                      .lr = 0.01f,
                      .beta1 = 0.9f,
                      .beta2 = 0.999f,
                      .eps = 1e-8f};
}

int nn_optim_cfg_check(dlp_err *e, const nn_optim_cfg *c) {
  if (c->kind != NN_OPTIM_SGD && c->kind != NN_OPTIM_ADAM)
    return dlp_err_set(e, DLP_ERR_ARG, "optimizer: unknown kind %d",
                       (int)c->kind);
  if (!(c->lr >= 0 && isfinite(c->lr)))
    return dlp_err_set(e, DLP_ERR_ARG, "optimizer: lr %g must be >= 0", c->lr);
  if (!(c->weight_decay >= 0 && isfinite(c->weight_decay)))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "optimizer: weight_decay %g must be >= 0",
                       c->weight_decay);
  if (c->kind == NN_OPTIM_SGD) {
    if (!(c->momentum >= 0 && c->momentum < 1))
      return dlp_err_set(e, DLP_ERR_ARG,
                         "optimizer: momentum %g must be in [0, 1)",
                         c->momentum);
    if (c->nesterov && c->momentum == 0)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "optimizer: nesterov needs momentum > 0");
    if (c->decoupled)
      return dlp_err_set(e, DLP_ERR_ARG,
                         "optimizer: decoupled weight decay is Adam's (AdamW)");
    return DLP_OK;
  }
  if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "optimizer: Adam betas (%g, %g) must be in [0, 1)",
                       c->beta1, c->beta2);
  if (!(c->eps > 0))
    return dlp_err_set(e, DLP_ERR_ARG, "optimizer: Adam eps %g must be > 0",
                       c->eps);
  return DLP_OK;
}

/* torch.optim.SGD with dampening 0: the buffer starts as the first
 * gradient, nesterov looks one momentum step ahead. */
static void sgd_update(const nn_optim_cfg *c, float lr, int64_t step, float *w,
                       const float *g, float *m, int64_t n) {
  const float mom = c->momentum, wd = c->weight_decay;
  for (int64_t i = 0; i < n; i++) {
    float d = g[i];
    if (wd != 0) d += wd * w[i];
    if (mom != 0) {
      m[i] = step <= 1 ? d : m[i] * mom + d;
      d = c->nesterov ? d + mom * m[i] : m[i];
    }
    w[i] -= lr * d;
  }
}

/* torch.optim.Adam / AdamW (the single-tensor path): bias corrections in
 * double as Python computes them, the rest in float. */
static void adam_update(const nn_optim_cfg *c, float lr, int64_t step, float *w,
                        const float *g, float *m, float *v, int64_t n) {
  const float b1 = c->beta1, b2 = c->beta2, wd = c->weight_decay;
  const double bc1 = 1.0 - pow(b1, (double)step);
  const double bc2 = 1.0 - pow(b2, (double)step);
  const float step_size = (float)(lr / bc1);
  const float bc2_sqrt = (float)sqrt(bc2);
  const float keep = c->decoupled ? (float)(1.0 - (double)lr * wd) : 1.0f;
  for (int64_t i = 0; i < n; i++) {
    float d = g[i];
    if (c->decoupled)
      w[i] *= keep;
    else if (wd != 0)
      d += wd * w[i];
    m[i] = m[i] * b1 + d * (1 - b1);
    v[i] = v[i] * b2 + d * d * (1 - b2);
    float denom = sqrtf(v[i]) / bc2_sqrt + c->eps;
    w[i] -= step_size * (m[i] / denom);
  }
}

void nn_optim_update(const nn_optim_cfg *c, float lr, int64_t step, float *w,
                     const float *g, float *m, float *v, int64_t n) {
  if (c->kind == NN_OPTIM_ADAM)
    adam_update(c, lr, step, w, g, m, v, n);
  else
    sgd_update(c, lr, step, w, g, m, n);
}

void nn_sched_cfg_init(nn_sched_cfg *c) {
  *c = (nn_sched_cfg){
      .kind = NN_SCHED_CONSTANT, .step_epochs = 1, .gamma = 0.1f};
}

double nn_sched_lr(const nn_sched_cfg *c, double base_lr, int64_t step,
                   int epoch, int64_t total) {
  if (c->warmup > 0 && step < c->warmup)
    return base_lr * (double)(step + 1) / (double)c->warmup;
  switch (c->kind) {
  case NN_SCHED_STEP: {
    int k = c->step_epochs > 0 ? c->step_epochs : 1;
    return base_lr * pow(c->gamma, (double)(epoch / k));
  }
  case NN_SCHED_COSINE: {
    int64_t span = total - (c->warmup > 0 ? c->warmup : 0);
    int64_t t = step - (c->warmup > 0 ? c->warmup : 0);
    if (span <= 0) return base_lr;
    if (t > span) t = span;
    return base_lr * 0.5 * (1.0 + cos(M_PI * (double)t / (double)span));
  }
  default:
    return base_lr;
  }
}

nn_train_data nn_train_data_arrays(const float *x, const int32_t *labels,
                                   int64_t n, int64_t sample_numel) {
  return (nn_train_data){
      .n = n, .x = x, .labels = labels, .sample_numel = sample_numel};
}
