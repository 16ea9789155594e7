/* optim.c - L-BFGS (two-loop recursion, strong Wolfe line search) and
 * OWL-QN (Andrew & Gao 2007) for f(x) + sum_i l1_i |x_i|.
 *
 * Hand-written because the layer needs exactly what Breeze gives MLlib: the
 * same stopping rule (relative change of the objective below tol), the
 * orthant-wise treatment of the L1 part so that coefficients become exactly
 * zero, and a history of objective values. The smooth case uses a
 * bracketing line search with cubic interpolation (Nocedal & Wright,
 * algorithms 3.5 and 3.6); OWL-QN backtracks along the projected path with
 * the Armijo test on the pseudo-gradient, as the paper does.
 *
 * Stopping, as Breeze does for MLlib: the relative change of the objective
 * between iterations below tol, or the largest pseudo-gradient component
 * below tol * max(1, |f|) (at least 1e-12 of it), or max_iter, or no step
 * that decreases f even along the steepest descent (converged = 0).
 */
#include "ml.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LS_C1 1e-4
#define LS_C2 0.9
#define LS_MAX_EVALS 30

/* The correction pairs (s, y) kept in a ring of `cap` slots. */
typedef struct lbfgs_mem {
  size_t n;
  int cap, len, head; /* head: the slot the next pair goes to */
  double *s, *y, *rho, *alpha;
} lbfgs_mem;

/* State shared by the line searches: the point, its values, scratch. */
typedef struct optim_state {
  dlp_ctx *ctx;
  ml_objective_fn fn;
  void *user;
  const double *l1; /* NULL: smooth */
  size_t n;
  double *x, *g, *pg; /* current point, smooth gradient, pseudo-gradient */
  double f, F;        /* smooth part, with the L1 part */
  double *d;          /* search direction */
  double *xt, *gt;    /* trial point */
  double *xb, *gb;    /* best accepted trial */
  double fb, Fb;
} optim_state;

static double dotv(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

static double l1_part(const double *l1, const double *x, size_t n) {
  if (!l1) return 0;
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += l1[i] * fabs(x[i]);
  return s;
}

/* The pseudo-gradient of f + l1|x| (the gradient itself without L1): the
 * one-sided derivative that decreases most where |x_i| is not smooth. */
static void pseudo_gradient(const double *l1, const double *x, const double *g,
                            double *pg, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double c = l1 ? l1[i] : 0;
    if (c == 0) {
      pg[i] = g[i];
    } else if (x[i] > 0) {
      pg[i] = g[i] + c;
    } else if (x[i] < 0) {
      pg[i] = g[i] - c;
    } else if (g[i] + c < 0) {
      pg[i] = g[i] + c;
    } else if (g[i] - c > 0) {
      pg[i] = g[i] - c;
    } else {
      pg[i] = 0;
    }
  }
}

/* d = -H pg by the two-loop recursion; H0 = (s'y / y'y) I of the newest
 * pair. */
static void two_loop(lbfgs_mem *m, const double *pg, double *d) {
  size_t n = m->n;
  for (size_t i = 0; i < n; i++)
    d[i] = -pg[i];
  for (int k = 0; k < m->len; k++) {
    int slot = (m->head - 1 - k + 2 * m->cap) % m->cap;
    double *s = m->s + (size_t)slot * n, *y = m->y + (size_t)slot * n;
    double a = m->rho[slot] * dotv(s, d, n);
    m->alpha[slot] = a;
    for (size_t i = 0; i < n; i++)
      d[i] -= a * y[i];
  }
  if (m->len > 0) {
    int slot = (m->head - 1 + m->cap) % m->cap;
    double *y = m->y + (size_t)slot * n;
    double gamma = 1.0 / (m->rho[slot] * dotv(y, y, n));
    for (size_t i = 0; i < n; i++)
      d[i] *= gamma;
  }
  for (int k = m->len - 1; k >= 0; k--) {
    int slot = (m->head - 1 - k + 2 * m->cap) % m->cap;
    double *s = m->s + (size_t)slot * n, *y = m->y + (size_t)slot * n;
    double b = m->rho[slot] * dotv(y, d, n);
    for (size_t i = 0; i < n; i++)
      d[i] += (m->alpha[slot] - b) * s[i];
  }
}

/* Keeps the pair when its curvature is positive enough to keep H positive
 * definite (always so under the Wolfe conditions; OWL-QN may not be). */
static void mem_push(lbfgs_mem *m, const double *xnew, const double *xold,
                     const double *gnew, const double *gold) {
  size_t n = m->n;
  double *s = m->s + (size_t)m->head * n, *y = m->y + (size_t)m->head * n;
  for (size_t i = 0; i < n; i++) {
    s[i] = xnew[i] - xold[i];
    y[i] = gnew[i] - gold[i];
  }
  double sy = dotv(s, y, n), yy = dotv(y, y, n);
  if (!(sy > 1e-12 * sqrt(dotv(s, s, n) * yy)) || !(yy > 0)) return;
  m->rho[m->head] = 1.0 / sy;
  m->head = (m->head + 1) % m->cap;
  if (m->len < m->cap) m->len++;
}

/* Evaluates the trial point xt into gt; returns the total objective in *F. */
static int eval_trial(optim_state *st, double *f, double *F) {
  int rc = st->fn(st->user, st->xt, f, st->gt);
  if (rc != DLP_OK) return rc;
  *F = *f + l1_part(st->l1, st->xt, st->n);
  if (!isfinite(*F)) *F = INFINITY;
  return DLP_OK;
}

static void keep_trial(optim_state *st, double f, double F) {
  memcpy(st->xb, st->xt, st->n * sizeof *st->xb);
  memcpy(st->gb, st->gt, st->n * sizeof *st->gb);
  st->fb = f;
  st->Fb = F;
}

/* Minimiser of the cubic through (a, fa, da) and (b, fb, db), kept inside
 * the middle 80% of [a, b]; bisection when the cubic is unusable. */
static double cubic_step(double a, double fa, double da, double b, double fb,
                         double db) {
  double lo = fmin(a, b), hi = fmax(a, b), w = hi - lo;
  double d1 = da + db - 3 * (fa - fb) / (a - b);
  double disc = d1 * d1 - da * db;
  double t = 0.5 * (a + b);
  if (disc >= 0 && isfinite(disc)) {
    double d2 = copysign(sqrt(disc), b - a);
    double den = db - da + 2 * d2;
    if (den != 0) t = b - (b - a) * (db + d2 - d1) / den;
  }
  if (!isfinite(t) || t < lo + 0.1 * w || t > hi - 0.1 * w) t = 0.5 * (a + b);
  return t;
}

/* Strong Wolfe line search along st->d from st->x: extrapolate until the
 * minimum is bracketed, then zoom in by cubic interpolation. The accepted
 * point is left in xb/gb/fb/Fb; returns 1, or 0 when no point with
 * sufficient decrease was found. */
static int line_search_wolfe(optim_state *st, double a, int *rc) {
  size_t n = st->n;
  double f0 = st->F, dphi0 = dotv(st->g, st->d, n);
  double a_lo = 0, f_lo = f0, d_lo = dphi0;
  double a_hi = 0, f_hi = 0, d_hi = 0;
  int bracketed = 0, found = 0;
  for (int it = 0; it < LS_MAX_EVALS; it++) {
    for (size_t i = 0; i < n; i++)
      st->xt[i] = st->x[i] + a * st->d[i];
    double f, F;
    if ((*rc = eval_trial(st, &f, &F)) != DLP_OK) return 0;
    double dphi = dotv(st->gt, st->d, n);
    int armijo = F <= f0 + LS_C1 * a * dphi0 && isfinite(F);
    if (armijo && (!found || F < st->Fb)) {
      keep_trial(st, f, F);
      found = 1;
    }
    if (!armijo || F >= f_lo) {
      a_hi = a, f_hi = F, d_hi = dphi;
      bracketed = 1;
    } else {
      if (fabs(dphi) <= -LS_C2 * dphi0) return 1;
      if (bracketed ? dphi * (a_hi - a_lo) >= 0 : dphi >= 0) {
        a_hi = a_lo, f_hi = f_lo, d_hi = d_lo;
        bracketed = 1;
      }
      a_lo = a, f_lo = F, d_lo = dphi;
    }
    if (!bracketed) {
      a *= 4; /* still descending steeply: extrapolate */
      continue;
    }
    if (fabs(a_hi - a_lo) <= 1e-15 * fmax(a_lo, a_hi)) break;
    a = isfinite(f_hi) ? cubic_step(a_lo, f_lo, d_lo, a_hi, f_hi, d_hi)
                       : 0.5 * (a_lo + a_hi);
  }
  return found;
}

/* OWL-QN: backtracking along the orthant-projected path. */
static int line_search_owlqn(optim_state *st, double a, int *rc) {
  size_t n = st->n;
  for (int it = 0; it < LS_MAX_EVALS; it++, a *= 0.5) {
    for (size_t i = 0; i < n; i++) {
      double xi = st->x[i] + a * st->d[i];
      if (st->l1[i] > 0) {
        double orth = st->x[i] != 0 ? st->x[i] : -st->pg[i];
        if (xi * orth <= 0) xi = 0;
      }
      st->xt[i] = xi;
    }
    double f, F;
    if ((*rc = eval_trial(st, &f, &F)) != DLP_OK) return 0;
    double dec = 0;
    for (size_t i = 0; i < n; i++)
      dec += st->pg[i] * (st->xt[i] - st->x[i]);
    if (F <= st->F + LS_C1 * dec && isfinite(F)) {
      keep_trial(st, f, F);
      return 1;
    }
  }
  return 0;
}

/* OWL-QN keeps the direction in the orthant of steepest descent. */
static void constrain_direction(optim_state *st) {
  for (size_t i = 0; i < st->n; i++)
    if (st->d[i] * st->pg[i] >= 0) st->d[i] = 0;
}

static double max_abs(const double *v, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fmax(m, fabs(v[i]));
  return m;
}

/* One iteration: direction, line search, memory update. Returns 1 when a
 * step was taken, 0 when no progress is possible, -1 on error (*rc). */
static int optim_step(optim_state *st, lbfgs_mem *mem, int iter, int *rc) {
  size_t n = st->n;
  for (int attempt = 0; attempt < 2; attempt++) {
    two_loop(mem, st->pg, st->d);
    if (st->l1) constrain_direction(st);
    double slope = dotv(st->d, st->pg, n);
    if (!(slope < 0)) { /* not a descent direction: forget the curvature */
      mem->len = 0;
      for (size_t i = 0; i < n; i++)
        st->d[i] = -st->pg[i];
      slope = dotv(st->d, st->pg, n);
      if (!(slope < 0)) return 0;
    }
    double dn = sqrt(dotv(st->d, st->d, n));
    double a1 = (iter == 0 || mem->len == 0) ? fmin(1.0, 1.0 / dn) : 1.0;
    int ok =
        st->l1 ? line_search_owlqn(st, a1, rc) : line_search_wolfe(st, a1, rc);
    if (*rc != DLP_OK) return -1;
    if (ok) {
      mem_push(mem, st->xb, st->x, st->gb, st->g);
      memcpy(st->x, st->xb, n * sizeof *st->x);
      memcpy(st->g, st->gb, n * sizeof *st->g);
      st->f = st->fb;
      st->F = st->Fb;
      pseudo_gradient(st->l1, st->x, st->g, st->pg, n);
      return 1;
    }
    if (mem->len == 0) return 0;
    mem->len = 0; /* retry once along the steepest descent */
  }
  return 0;
}

int ml_minimize(dlp_ctx *ctx, ml_objective_fn fn, void *user, double *x,
                size_t n, const ml_optim_opts *o, ml_optim_result *res) {
  memset(res, 0, sizeof *res);
  if (n == 0 || !o || o->max_iter < 0)
    return dlp_fail(ctx, DLP_ERR_ARG, "ml_minimize: bad arguments");
  int cap = o->memory > 0 ? o->memory : 10;
  optim_state st = {
      .ctx = ctx, .fn = fn, .user = user, .l1 = o->l1, .n = n, .x = x};
  lbfgs_mem mem = {.n = n, .cap = cap};
  double *buf = dlp_malloc_array(n, sizeof(double) * (7 + 2 * (size_t)cap));
  double *rho = dlp_calloc_array((size_t)cap, 2 * sizeof(double));
  double *hist = dlp_malloc_array((size_t)o->max_iter + 1, sizeof(double));
  if (!buf || !rho || !hist) {
    free(buf), free(rho), free(hist);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the optimiser");
  }
  st.g = buf, st.pg = buf + n, st.d = buf + 2 * n, st.xt = buf + 3 * n;
  st.gt = buf + 4 * n, st.xb = buf + 5 * n, st.gb = buf + 6 * n;
  mem.s = buf + 7 * n, mem.y = mem.s + (size_t)cap * n;
  mem.rho = rho, mem.alpha = rho + cap;

  int rc = fn(user, x, &st.f, st.g);
  if (rc == DLP_OK && !isfinite(st.f))
    rc = dlp_fail(ctx, DLP_ERR_ARG, "the objective is not finite at the start");
  int iter = 0, converged = 0;
  if (rc == DLP_OK) {
    st.F = st.f + l1_part(o->l1, x, n);
    pseudo_gradient(o->l1, x, st.g, st.pg, n);
    hist[0] = st.F;
    while (iter < o->max_iter) {
      /* Breeze's gradient test, which MLlib also stops on */
      if (max_abs(st.pg, n) <= fmax(o->tol, 1e-12) * fmax(1.0, fabs(st.F))) {
        converged = 1;
        break;
      }
      double Fold = st.F;
      int step = optim_step(&st, &mem, iter, &rc);
      if (step < 0) break;
      if (step == 0) break;
      hist[++iter] = st.F;
      double scale = fmax(fmax(fabs(Fold), fabs(st.F)), 1e-300);
      if (fabs(Fold - st.F) / scale < o->tol) {
        converged = 1;
        break;
      }
    }
  }
  free(buf);
  free(rho);
  if (rc != DLP_OK) {
    free(hist);
    return rc;
  }
  res->iterations = iter;
  res->f = st.F;
  res->history = hist;
  res->converged = converged;
  return dlp_ok(ctx);
}
