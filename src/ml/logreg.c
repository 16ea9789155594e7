/* logreg.c - LogisticRegression with Spark MLlib's semantics: binomial and
 * multinomial (softmax) families, weighted rows, elastic-net penalty on the
 * standardized coefficients, fitted by L-BFGS or OWL-QN (optim.c).
 *
 * Why it is written this way:
 * - Like MLlib, the optimiser works on standardized coefficients
 *   (theta_j = b_j sigma_j) for conditioning, with per-feature penalty
 *   weights when standardization is off. The features are never copied or
 *   scaled: a pass turns theta into raw coefficients b_j = theta_j / sigma_j,
 *   computes margins on the float rows as given and scales the gradient
 *   back, so memory stays at X plus O(chunks * K * d).
 * - One pass over X per evaluation: each row's K margins (dot products of
 *   float features with double coefficients, accumulated in double), then
 *   the residuals of two rows are added into the gradient in one sweep
 *   while the rows are in cache. Hand-vectorised with AVX2/FMA when the CPU
 *   has it (chosen at run time), plain C otherwise. dnnl_sgemm was the
 *   alternative, not taken: float margins and gradients carry rounding
 *   of the order of float's epsilon (6e-8) into f, which would stall the
 *   line search long before the 1e-10 tolerances of the scikit-learn
 *   comparison, and a double copy of X would double the memory. The pass
 *   takes about 5 ms per evaluation on one core for 5,000 x 2,048 binomial
 *   and 15 ms for 5 classes, and the fits beat scikit-learn on OpenBLAS by
 *   3-4x (bench/RESULTS.md).
 * - Rows are split into chunks whose boundaries depend only on n, K and d;
 *   each chunk sums into its own buffer and the buffers are added in chunk
 *   order, so the fit is bit-identical for any number of threads.
 */
#include "ml.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* -DDLP_LR_PORTABLE builds only the plain C kernels (to test them on a
 * machine that has AVX2). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(DLP_LR_PORTABLE)
#include <immintrin.h>
#define LR_HAVE_AVX2_PATH 1
#endif

void ml_lr_params_init(ml_lr_params *p) {
  memset(p, 0, sizeof *p);
  p->max_iter = 100;
  p->tol = 1e-6;
  p->fit_intercept = 1;
  p->standardization = 1;
  p->family = ML_FAMILY_AUTO;
  p->threshold = 0.5;
}

/* --- row kernels ---------------------------------------------------------- */

/* m[k] = sum_j x[j] B[k*d + j] for k < K. */
static void margins_c(const float *x, const double *B, size_t K, size_t d,
                      double *m) {
  for (size_t k = 0; k < K; k++) {
    const double *b = B + k * d;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = 0;
    for (; j + 4 <= d; j += 4) {
      s0 += x[j] * b[j];
      s1 += x[j + 1] * b[j + 1];
      s2 += x[j + 2] * b[j + 2];
      s3 += x[j + 3] * b[j + 3];
    }
    for (; j < d; j++)
      s0 += x[j] * b[j];
    m[k] = (s0 + s1) + (s2 + s3);
  }
}

/* Margins of two rows: m0 and m1 (K values each). */
static void margins2_c(const float *x0, const float *x1, const double *B,
                       size_t K, size_t d, double *m0, double *m1) {
  margins_c(x0, B, K, d, m0);
  margins_c(x1, B, K, d, m1);
}

/* G[k*d + j] += r0[k] x0[j] + r1[k] x1[j]: two rows per pass over G. */
static void accum2_c(const float *x0, const double *r0, const float *x1,
                     const double *r1, size_t K, size_t d, double *G) {
  for (size_t k = 0; k < K; k++) {
    double a = r0[k], b = r1[k];
    double *g = G + k * d;
    for (size_t j = 0; j < d; j++)
      g[j] += a * x0[j] + b * x1[j];
  }
}

#ifdef LR_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) static double hsum_avx2(__m256d v) {
  __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
  lo = _mm_add_pd(lo, hi);
  return _mm_cvtsd_f64(lo) + _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo));
}

__attribute__((target("avx2,fma"))) static void
margins_avx2(const float *x, const double *B, size_t K, size_t d, double *m) {
  size_t k = 0, d4 = d & ~(size_t)3;
  for (; k + 4 <= K; k += 4) { /* four classes share each load of x */
    const double *b0 = B + k * d, *b1 = b0 + d, *b2 = b1 + d, *b3 = b2 + d;
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t j = 0; j < d4; j += 4) {
      __m256d xv = _mm256_cvtps_pd(_mm_loadu_ps(x + j));
      a0 = _mm256_fmadd_pd(xv, _mm256_loadu_pd(b0 + j), a0);
      a1 = _mm256_fmadd_pd(xv, _mm256_loadu_pd(b1 + j), a1);
      a2 = _mm256_fmadd_pd(xv, _mm256_loadu_pd(b2 + j), a2);
      a3 = _mm256_fmadd_pd(xv, _mm256_loadu_pd(b3 + j), a3);
    }
    double s[4] = {hsum_avx2(a0), hsum_avx2(a1), hsum_avx2(a2), hsum_avx2(a3)};
    for (size_t j = d4; j < d; j++) {
      s[0] += x[j] * b0[j], s[1] += x[j] * b1[j];
      s[2] += x[j] * b2[j], s[3] += x[j] * b3[j];
    }
    memcpy(m + k, s, sizeof s);
  }
  size_t d16 = d & ~(size_t)15;
  for (; k < K; k++) { /* one class: four chains hide the FMA latency */
    const double *b = B + k * d;
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    size_t j = 0;
    for (; j < d16; j += 16) {
      a0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j)),
                           _mm256_loadu_pd(b + j), a0);
      a1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j + 4)),
                           _mm256_loadu_pd(b + j + 4), a1);
      a2 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j + 8)),
                           _mm256_loadu_pd(b + j + 8), a2);
      a3 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j + 12)),
                           _mm256_loadu_pd(b + j + 12), a3);
    }
    for (; j < d4; j += 4)
      a0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j)),
                           _mm256_loadu_pd(b + j), a0);
    double s =
        hsum_avx2(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
    for (; j < d; j++)
      s += x[j] * b[j];
    m[k] = s;
  }
}

/* Four classes by two rows: each coefficient load serves two rows. */
__attribute__((target("avx2,fma"))) static void
margins2_avx2(const float *x0, const float *x1, const double *B, size_t K,
              size_t d, double *m0, double *m1) {
  size_t k = 0, d4 = d & ~(size_t)3;
  for (; k + 4 <= K; k += 4) { /* named accumulators stay in registers */
    const double *b0 = B + k * d, *b1 = b0 + d, *b2 = b1 + d, *b3 = b2 + d;
    __m256d p0 = _mm256_setzero_pd(), p1 = p0, p2 = p0, p3 = p0;
    __m256d q0 = p0, q1 = p0, q2 = p0, q3 = p0;
    for (size_t j = 0; j < d4; j += 4) {
      __m256d u = _mm256_cvtps_pd(_mm_loadu_ps(x0 + j));
      __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x1 + j));
      __m256d c0 = _mm256_loadu_pd(b0 + j), c1 = _mm256_loadu_pd(b1 + j);
      p0 = _mm256_fmadd_pd(u, c0, p0), q0 = _mm256_fmadd_pd(v, c0, q0);
      p1 = _mm256_fmadd_pd(u, c1, p1), q1 = _mm256_fmadd_pd(v, c1, q1);
      __m256d c2 = _mm256_loadu_pd(b2 + j), c3 = _mm256_loadu_pd(b3 + j);
      p2 = _mm256_fmadd_pd(u, c2, p2), q2 = _mm256_fmadd_pd(v, c2, q2);
      p3 = _mm256_fmadd_pd(u, c3, p3), q3 = _mm256_fmadd_pd(v, c3, q3);
    }
    __m256d pa[4] = {p0, p1, p2, p3}, qa[4] = {q0, q1, q2, q3};
    for (int t = 0; t < 4; t++) {
      const double *bt = B + (k + (size_t)t) * d;
      double s0 = hsum_avx2(pa[t]), s1 = hsum_avx2(qa[t]);
      for (size_t j = d4; j < d; j++)
        s0 += x0[j] * bt[j], s1 += x1[j] * bt[j];
      m0[k + t] = s0, m1[k + t] = s1;
    }
  }
  if (k < K) { /* the last K % 4 classes, one row at a time */
    margins_avx2(x0, B + k * d, K - k, d, m0 + k);
    margins_avx2(x1, B + k * d, K - k, d, m1 + k);
  }
}

__attribute__((target("avx2,fma"))) static void
accum2_avx2(const float *x0, const double *r0, const float *x1,
            const double *r1, size_t K, size_t d, double *G) {
  size_t d4 = d & ~(size_t)3, k = 0;
  for (; k + 2 <= K; k += 2) { /* two classes share the converted rows */
    double *g0 = G + k * d, *g1 = g0 + d;
    __m256d a0 = _mm256_set1_pd(r0[k]), b0 = _mm256_set1_pd(r1[k]);
    __m256d a1 = _mm256_set1_pd(r0[k + 1]), b1 = _mm256_set1_pd(r1[k + 1]);
    for (size_t j = 0; j < d4; j += 4) {
      __m256d u = _mm256_cvtps_pd(_mm_loadu_ps(x0 + j));
      __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x1 + j));
      __m256d t0 = _mm256_fmadd_pd(a0, u, _mm256_loadu_pd(g0 + j));
      __m256d t1 = _mm256_fmadd_pd(a1, u, _mm256_loadu_pd(g1 + j));
      _mm256_storeu_pd(g0 + j, _mm256_fmadd_pd(b0, v, t0));
      _mm256_storeu_pd(g1 + j, _mm256_fmadd_pd(b1, v, t1));
    }
    for (size_t j = d4; j < d; j++) {
      g0[j] = fma(r1[k], x1[j], fma(r0[k], x0[j], g0[j]));
      g1[j] = fma(r1[k + 1], x1[j], fma(r0[k + 1], x0[j], g1[j]));
    }
  }
  for (; k < K; k++) {
    double *g = G + k * d;
    __m256d a = _mm256_set1_pd(r0[k]), b = _mm256_set1_pd(r1[k]);
    for (size_t j = 0; j < d4; j += 4) {
      __m256d u = _mm256_cvtps_pd(_mm_loadu_ps(x0 + j));
      __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x1 + j));
      __m256d t = _mm256_fmadd_pd(a, u, _mm256_loadu_pd(g + j));
      _mm256_storeu_pd(g + j, _mm256_fmadd_pd(b, v, t));
    }
    for (size_t j = d4; j < d; j++)
      g[j] = fma(r1[k], x1[j], fma(r0[k], x0[j], g[j]));
  }
}
#endif

typedef void (*lr_margins_fn)(const float *, const double *, size_t, size_t,
                              double *);
typedef void (*lr_margins2_fn)(const float *, const float *, const double *,
                               size_t, size_t, double *, double *);
typedef void (*lr_accum2_fn)(const float *, const double *, const float *,
                             const double *, size_t, size_t, double *);

/* The kernels for this CPU (a pure function of the CPU, so every call in a
 * process uses the same arithmetic). */
static void lr_kernels(lr_margins_fn *mf, lr_accum2_fn *af) {
  *mf = margins_c;
  *af = accum2_c;
#ifdef LR_HAVE_AVX2_PATH
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *mf = margins_avx2;
    *af = accum2_avx2;
  }
#endif
}

static lr_margins2_fn lr_margins2_kernel(void) {
#ifdef LR_HAVE_AVX2_PATH
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return margins2_avx2;
#endif
  return margins2_c;
}

/* --- loss of one row ------------------------------------------------------ */

/* log(1 + exp(m)) without overflow. */
static double softplus(double m) {
  return m > 0 ? m + log1p(exp(-m)) : log1p(exp(m));
}

static double sigmoid(double m) {
  if (m >= 0) return 1.0 / (1.0 + exp(-m));
  double e = exp(m);
  return e / (1.0 + e);
}

/* Turns margins m (K values) into residuals r = w (p - onehot(y)) and
 * returns w * loss. Binomial: K == 1, m is the margin of class 1. */
static double row_loss(double *m, size_t K, int multinomial, size_t label,
                       double w, double *r) {
  if (!multinomial) { /* log(1 + e^m) - y m, written without inf - inf */
    r[0] = w * (sigmoid(m[0]) - (double)label);
    return w * softplus(label ? -m[0] : m[0]);
  }
  double mx = m[0];
  for (size_t k = 1; k < K; k++)
    mx = fmax(mx, m[k]);
  double z = 0;
  for (size_t k = 0; k < K; k++)
    z += exp(m[k] - mx);
  double lse = mx + log(z);
  double loss = w * (lse - m[label]);
  for (size_t k = 0; k < K; k++)
    r[k] = w * exp(m[k] - lse);
  r[label] -= w;
  return loss;
}

/* --- the objective -------------------------------------------------------- */

typedef struct lr_problem {
  const float *X;
  size_t n, d, K;
  const double *y, *w;
  int multinomial, fit_intercept;
  double wsum;
  double *inv_sigma; /* d: 1 / sigma_j, 0 where sigma_j == 0 */
  double *l2w;       /* d: L2 weight of theta_j (reg (1-a) [/ sigma^2]) */
  double *braw;      /* K*d raw coefficients of the point being evaluated */
  double *icpt;      /* K */
  size_t chunk, nchunks, stride; /* per chunk: G (K*d), intercepts (K),
                                    loss, out-of-memory flag */
  double *part;
  int threads;
  lr_margins_fn margins;
  lr_margins2_fn margins2;
  lr_accum2_fn accum2;
  dlp_ctx *ctx;
  int evals, max_iter;
} lr_problem;

static size_t row_label(const lr_problem *pb, size_t i) {
  return (size_t)pb->y[i];
}

/* Chunk c: its loss, coefficient gradient and intercept gradient (raw
 * scale, not yet divided by sum w) into its own slice of part. Rows go in
 * pairs (of rows with weight), so that each pass over G serves two. */
static void lr_chunk(size_t c, void *user, int worker) {
  lr_problem *pb = user;
  size_t K = pb->K, d = pb->d;
  double *out = pb->part + c * pb->stride;
  memset(out, 0, pb->stride * sizeof *out);
  double *G = out, *gi = out + K * d, loss = 0;
  double buf[4 * 32];
  double *m = K <= 32 ? buf : malloc(4 * K * sizeof *m);
  if (!m) { /* only for a huge K: flag it for lr_eval */
    out[K * d + K + 1] = 1;
    return;
  }
  double *r = m + 2 * K; /* m: margins of 2 rows, r: their residuals */
  size_t i = c * pb->chunk;
  size_t i1 = (c + 1) * pb->chunk < pb->n ? (c + 1) * pb->chunk : pb->n;
  while (i < i1) {
    const float *x[2];
    size_t row[2];
    int got = 0;
    for (; i < i1 && got < 2; i++)
      if (!pb->w || pb->w[i] != 0) row[got++] = i;
    for (int t = 0; t < got; t++)
      x[t] = pb->X + row[t] * d;
    if (got == 2)
      pb->margins2(x[0], x[1], pb->braw, K, d, m, m + K);
    else if (got == 1)
      pb->margins(x[0], pb->braw, K, d, m);
    for (int t = 0; t < got; t++) {
      double *mr = m + (size_t)t * K;
      for (size_t k = 0; k < K; k++)
        mr[k] += pb->icpt[k];
      loss += row_loss(mr, K, pb->multinomial, row_label(pb, row[t]),
                       pb->w ? pb->w[row[t]] : 1.0, r + (size_t)t * K);
    }
    if (got == 0) break;
    if (got == 1) { /* a lone last row: pair it with itself at weight 0 */
      x[1] = x[0];
      for (size_t k = 0; k < K; k++)
        r[K + k] = 0;
    }
    pb->accum2(x[0], r, x[1], r + K, K, d, G);
    for (size_t k = 0; k < K; k++)
      gi[k] += r[k] + r[K + k];
  }
  out[K * d + K] = loss;
  if (m != buf) free(m);
}

/* f and gradient in theta space: the data term over all chunks (summed in
 * chunk order), then the L2 part. The L1 part is OWL-QN's. */
static int lr_eval(void *user, const double *theta, double *f, double *g) {
  lr_problem *pb = user;
  size_t K = pb->K, d = pb->d, kd = K * d;
  /* evaluations, a little more than iterations: capped at the total */
  int done = ++pb->evals < pb->max_iter ? pb->evals : pb->max_iter;
  if (dlp_progress(pb->ctx, "logistic regression", (uint64_t)done,
                   (uint64_t)pb->max_iter, false))
    return dlp_fail(pb->ctx, DLP_ERR_ARG, "cancelled");
  for (size_t k = 0; k < K; k++)
    for (size_t j = 0; j < d; j++)
      pb->braw[k * d + j] = theta[k * d + j] * pb->inv_sigma[j];
  for (size_t k = 0; k < K; k++)
    pb->icpt[k] = pb->fit_intercept ? theta[kd + k] : 0;
  dlp_parallel_for(pb->nchunks, pb->threads, lr_chunk, pb, NULL, NULL);
  double *sum = pb->part; /* chunk 0 collects the others, in order */
  for (size_t c = 1; c < pb->nchunks; c++) {
    const double *p = pb->part + c * pb->stride;
    for (size_t i = 0; i < pb->stride; i++)
      sum[i] += p[i];
  }
  double inv_w = 1.0 / pb->wsum, pen = 0;
  for (size_t k = 0; k < K; k++) {
    for (size_t j = 0; j < d; j++) {
      double t = theta[k * d + j];
      pen += pb->l2w[j] * t * t;
      g[k * d + j] = sum[k * d + j] * inv_w * pb->inv_sigma[j] + pb->l2w[j] * t;
    }
  }
  if (pb->fit_intercept)
    for (size_t k = 0; k < K; k++)
      g[kd + k] = sum[kd + k] * inv_w;
  *f = sum[kd + K] * inv_w + 0.5 * pen;
  if (sum[kd + K + 1] != 0)
    return dlp_fail(pb->ctx, DLP_ERR_NOMEM, "no memory in the gradient pass");
  return DLP_OK;
}

/* --- checks and feature statistics ---------------------------------------- */

/* Labels and weights; sets the class count and the weighted histogram
 * (hist, K values, the caller's). */
static int lr_check_rows(dlp_ctx *ctx, const double *y, const double *w,
                         size_t n, int64_t declared, int64_t *n_classes) {
  double maxl = 0;
  for (size_t i = 0; i < n; i++) {
    double v = y[i];
    if (!isfinite(v) || v < 0 || v != floor(v) || v > 2147483647.0)
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "label %g at row %zu is not a class index (labels must "
                      "be integers 0, 1, ..., K-1)",
                      v, i);
    if (declared > 0 && v >= (double)declared)
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "label %g at row %zu is not below the declared number "
                      "of classes %lld",
                      v, i, (long long)declared);
    if (w && !(isfinite(w[i]) && w[i] >= 0))
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "weight %g at row %zu is not a finite number >= 0", w[i],
                      i);
    if (v > maxl) maxl = v;
  }
  int64_t k = declared > 0 ? declared : (int64_t)maxl + 1;
  *n_classes = k < 2 ? 2 : k;
  return DLP_OK;
}

typedef struct lr_stats_job {
  const float *X;
  const double *w;
  size_t n, d, chunk;
  const double *mean; /* NULL: first pass (sums); else squared deviations */
  double *part;       /* per chunk: sums (d), min (d), max (d), W, W2 */
  size_t *bad;        /* per chunk: first row with a non-finite value, or n */
} lr_stats_job;

/* 1 when no value is Inf or NaN (all exponent bits set), by an integer OR
 * that vectorises. */
static int row_finite(const float *x, size_t d) {
  uint32_t any = 0;
  for (size_t j = 0; j < d; j++) {
    uint32_t u;
    memcpy(&u, x + j, sizeof u);
    any |= (u & 0x7f800000u) == 0x7f800000u;
  }
  return !any;
}

static void lr_stats_chunk(size_t c, void *user, int worker) {
  lr_stats_job *s = user;
  size_t d = s->d;
  double *acc = s->part + c * (3 * d + 2);
  memset(acc, 0, (3 * d + 2) * sizeof *acc);
  double *lo = acc + d, *hi = lo + d;
  for (size_t j = 0; j < d; j++)
    lo[j] = INFINITY, hi[j] = -INFINITY;
  size_t i1 = (c + 1) * s->chunk < s->n ? (c + 1) * s->chunk : s->n;
  if (!s->mean) s->bad[c] = s->n;
  for (size_t i = c * s->chunk; i < i1; i++) {
    const float *x = s->X + i * d;
    double w = s->w ? s->w[i] : 1.0;
    if (s->mean) {
      for (size_t j = 0; j < d; j++) {
        double t = x[j] - s->mean[j];
        acc[j] += w * t * t;
      }
      continue;
    }
    if (!row_finite(x, d) && s->bad[c] == s->n) s->bad[c] = i;
    for (size_t j = 0; j < d; j++)
      acc[j] += w * x[j];
    if (w > 0) /* the ternaries (not fmin) let the compiler vectorise */
      for (size_t j = 0; j < d; j++) {
        double v = x[j];
        lo[j] = v < lo[j] ? v : lo[j];
        hi[j] = v > hi[j] ? v : hi[j];
      }
    acc[3 * d] += w;
    acc[3 * d + 1] += w * w;
  }
}

/* Weighted mean and unbiased std of every feature (MLlib's summarizer:
 * variance = sum w (x - mean)^2 / (W - sum w^2 / W)); fails on a
 * non-finite feature value. sigma gets d values, exactly 0 for a feature
 * that is constant over the weighted rows (the rounding of a weighted mean
 * would otherwise leave ~1e-16 and a huge 1/sigma); *wsum the weights. */
static int lr_feature_stats(dlp_ctx *ctx, const float *X, size_t n, size_t d,
                            const double *w, size_t chunk, size_t nchunks,
                            double *part, int threads, double *sigma,
                            double *wsum) {
  size_t *bad = dlp_malloc_array(nchunks, sizeof *bad);
  double *mean = dlp_calloc_array(d ? 3 * d : 1, sizeof *mean);
  double *lo = mean + d, *hi = lo + d;
  if (!bad || !mean) {
    free(bad), free(mean);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for feature statistics");
  }
  lr_stats_job s = {X, w, n, d, chunk, NULL, part, bad};
  dlp_parallel_for(nchunks, threads, lr_stats_chunk, &s, NULL, NULL);
  double W = 0, W2 = 0;
  for (size_t j = 0; j < d; j++)
    lo[j] = INFINITY, hi[j] = -INFINITY;
  for (size_t c = 0; c < nchunks; c++) {
    const double *a = part + c * (3 * d + 2);
    if (bad[c] < n) {
      size_t i = bad[c], j = 0;
      while (j < d && isfinite(X[i * d + j]))
        j++;
      free(bad), free(mean);
      return dlp_fail(ctx, DLP_ERR_ARG,
                      "feature %zu at row %zu is %g (features must be finite)",
                      j, i, (double)X[i * d + j]);
    }
    for (size_t j = 0; j < d; j++) {
      mean[j] += a[j];
      lo[j] = fmin(lo[j], a[d + j]), hi[j] = fmax(hi[j], a[2 * d + j]);
    }
    W += a[3 * d], W2 += a[3 * d + 1];
  }
  free(bad);
  if (!(W > 0)) {
    free(mean);
    return dlp_fail(ctx, DLP_ERR_ARG, "the row weights sum to 0");
  }
  for (size_t j = 0; j < d; j++)
    mean[j] /= W;
  s.mean = mean;
  dlp_parallel_for(nchunks, threads, lr_stats_chunk, &s, NULL, NULL);
  double den = W - W2 / W;
  for (size_t j = 0; j < d; j++) {
    double m2 = 0;
    for (size_t c = 0; c < nchunks; c++)
      m2 += part[c * (3 * d + 2) + j];
    sigma[j] = den > 0 && hi[j] > lo[j] ? sqrt(m2 / den) : 0;
  }
  free(mean);
  *wsum = W;
  return DLP_OK;
}

/* Fixed chunking: a function of n and the per-chunk buffer size only. */
static void lr_chunking(size_t n, size_t stride, size_t *chunk,
                        size_t *nchunks) {
  size_t max_chunks = ((size_t)1 << 24) / (stride ? stride : 1);
  if (max_chunks > 64) max_chunks = 64;
  if (max_chunks < 1) max_chunks = 1;
  size_t c = 256;
  if ((n + c - 1) / c > max_chunks) c = (n + max_chunks - 1) / max_chunks;
  *chunk = c;
  *nchunks = (n + c - 1) / c;
}

/* --- training ------------------------------------------------------------- */

static int lr_resolve_family(dlp_ctx *ctx, const ml_lr_params *p,
                             int64_t n_classes, int *multinomial) {
  if (p->family == ML_FAMILY_BINOMIAL && n_classes > 2)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "family binomial needs 2 classes but the labels have "
                    "%lld; use family multinomial (or auto)",
                    (long long)n_classes);
  *multinomial = p->family == ML_FAMILY_MULTINOMIAL ||
                 (p->family == ML_FAMILY_AUTO && n_classes > 2);
  return DLP_OK;
}

static int lr_check_params(dlp_ctx *ctx, const ml_lr_params *p) {
  if (!(p->reg_param >= 0) || !isfinite(p->reg_param))
    return dlp_fail(ctx, DLP_ERR_ARG, "regParam %g must be >= 0", p->reg_param);
  if (!(p->elastic_net >= 0 && p->elastic_net <= 1))
    return dlp_fail(ctx, DLP_ERR_ARG, "elasticNetParam %g must be in [0, 1]",
                    p->elastic_net);
  if (p->max_iter < 0)
    return dlp_fail(ctx, DLP_ERR_ARG, "maxIter %d must be >= 0", p->max_iter);
  if (!(p->tol >= 0))
    return dlp_fail(ctx, DLP_ERR_ARG, "tol %g must be >= 0", p->tol);
  if (!(p->threshold >= 0 && p->threshold <= 1))
    return dlp_fail(ctx, DLP_ERR_ARG, "threshold %g must be in [0, 1]",
                    p->threshold);
  if (p->family < ML_FAMILY_AUTO || p->family > ML_FAMILY_MULTINOMIAL)
    return dlp_fail(ctx, DLP_ERR_ARG, "unknown family %d", (int)p->family);
  return DLP_OK;
}

/* The weighted class histogram; fails when fewer than two classes have
 * weight. */
static int lr_histogram(dlp_ctx *ctx, const double *y, const double *w,
                        size_t n, int64_t n_classes, double *hist) {
  for (size_t i = 0; i < n; i++)
    hist[(size_t)y[i]] += w ? w[i] : 1.0;
  int present = 0;
  int64_t only = 0;
  for (int64_t k = 0; k < n_classes; k++)
    if (hist[k] > 0) present++, only = k;
  if (present < 2)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "all %zu rows (with weight) have the label %lld; logistic "
                    "regression needs at least two classes",
                    n, (long long)only);
  return DLP_OK;
}

/* MLlib's starting intercepts: the log-odds (binomial) or the centred
 * log counts, smoothed by one (multinomial). */
static void lr_init_intercepts(const lr_problem *pb, const double *hist,
                               double *theta) {
  size_t kd = pb->K * pb->d;
  if (!pb->fit_intercept) return;
  if (!pb->multinomial) {
    theta[kd] = log(hist[1] / hist[0]);
    return;
  }
  double mean = 0;
  for (size_t k = 0; k < pb->K; k++)
    mean += log(hist[k] + 1);
  mean /= (double)pb->K;
  for (size_t k = 0; k < pb->K; k++)
    theta[kd + k] = log(hist[k] + 1) - mean;
}

/* theta -> fit: raw-scale coefficients; multinomial intercepts centred (and
 * coefficients too when unpenalised, where only differences are fixed). */
static void lr_finish(const lr_problem *pb, const double *theta, double reg,
                      ml_lr_fit *out) {
  size_t K = pb->K, d = pb->d;
  for (size_t k = 0; k < K; k++) {
    for (size_t j = 0; j < d; j++)
      out->coef[k * d + j] = theta[k * d + j] * pb->inv_sigma[j];
    out->intercept[k] = pb->fit_intercept ? theta[K * d + k] : 0;
  }
  if (!pb->multinomial) return;
  if (pb->fit_intercept) {
    double m = 0;
    for (size_t k = 0; k < K; k++)
      m += out->intercept[k];
    for (size_t k = 0; k < K; k++)
      out->intercept[k] -= m / (double)K;
  }
  if (reg == 0) {
    for (size_t j = 0; j < d; j++) {
      double m = 0;
      for (size_t k = 0; k < K; k++)
        m += out->coef[k * d + j];
      for (size_t k = 0; k < K; k++)
        out->coef[k * d + j] -= m / (double)K;
    }
  }
}

/* Penalty weights per feature: the L2 weight of theta_j in lr_problem and
 * the L1 weight of every coordinate for OWL-QN (NULL when there is none). */
static void lr_penalty(lr_problem *pb, const ml_lr_params *p,
                       const double *sigma, double *l1) {
  double l2 = p->reg_param * (1 - p->elastic_net);
  double a1 = p->reg_param * p->elastic_net;
  size_t K = pb->K, d = pb->d;
  for (size_t j = 0; j < d; j++) {
    int live = sigma[j] > 0;
    pb->inv_sigma[j] = live ? 1.0 / sigma[j] : 0;
    double s = p->standardization ? 1.0 : pb->inv_sigma[j];
    pb->l2w[j] = live ? l2 * s * s : 0;
    if (l1)
      for (size_t k = 0; k < K; k++)
        l1[k * d + j] = live ? a1 * s : 0;
  }
  if (l1 && pb->fit_intercept)
    for (size_t k = 0; k < K; k++)
      l1[K * d + k] = 0;
}

static int lr_alloc_fit(dlp_ctx *ctx, ml_lr_fit *out, size_t K, size_t d) {
  out->coef = dlp_calloc_array(K * d + 1, sizeof *out->coef);
  out->intercept = dlp_calloc_array(K, sizeof *out->intercept);
  if (!out->coef || !out->intercept) {
    ml_lr_fit_clear(out);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the coefficients");
  }
  return DLP_OK;
}

/* The buffers of a problem: sigma-derived weights, coefficients, chunk
 * partial sums. */
static int lr_alloc_problem(dlp_ctx *ctx, lr_problem *pb) {
  size_t K = pb->K, d = pb->d, kd;
  if (!dlp_mul_size(K, d + 3, &kd) || kd > ((size_t)1 << 40) / sizeof(double))
    return dlp_fail(ctx, DLP_ERR_TOO_LARGE,
                    "%zu classes x %zu features is too many coefficients", K,
                    d);
  pb->stride = K * d + K + 2;
  if (pb->stride < 3 * d + 2) pb->stride = 3 * d + 2; /* shared with stats */
  lr_chunking(pb->n, pb->stride, &pb->chunk, &pb->nchunks);
  pb->inv_sigma = dlp_calloc_array(d ? d : 1, sizeof(double));
  pb->l2w = dlp_calloc_array(d ? d : 1, sizeof(double));
  pb->braw = dlp_calloc_array(K * d + K, sizeof(double));
  pb->part = dlp_malloc_array(pb->nchunks, pb->stride * sizeof(double));
  if (!pb->inv_sigma || !pb->l2w || !pb->braw || !pb->part)
    return dlp_fail(ctx, DLP_ERR_NOMEM,
                    "no memory for logistic regression (%zu chunks of %zu "
                    "values)",
                    pb->nchunks, pb->stride);
  pb->icpt = pb->braw + K * d;
  return DLP_OK;
}

static void lr_free_problem(lr_problem *pb) {
  free(pb->inv_sigma);
  free(pb->l2w);
  free(pb->braw);
  free(pb->part);
}

/* Runs the optimiser on a prepared problem and fills out. */
static int lr_optimise(dlp_ctx *ctx, lr_problem *pb, const ml_lr_params *p,
                       const double *sigma, const double *hist,
                       ml_lr_fit *out) {
  size_t K = pb->K, d = pb->d;
  size_t np = K * d + (pb->fit_intercept ? K : 0);
  double *theta = dlp_calloc_array(np, sizeof *theta);
  double *l1 = NULL;
  int want_l1 = p->reg_param > 0 && p->elastic_net > 0;
  if (want_l1) l1 = dlp_calloc_array(np, sizeof *l1);
  if (!theta || (want_l1 && !l1)) {
    free(theta), free(l1);
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu parameters", np);
  }
  lr_penalty(pb, p, sigma, l1);
  lr_init_intercepts(pb, hist, theta);
  ml_optim_opts o = {
      .max_iter = p->max_iter, .tol = p->tol, .memory = 10, .l1 = l1};
  ml_optim_result res;
  int rc = ml_minimize(ctx, lr_eval, pb, theta, np, &o, &res);
  if (rc == DLP_OK) { /* on failure ml_minimize kept no history */
    rc = lr_alloc_fit(ctx, out, K, d);
    if (rc == DLP_OK) {
      lr_finish(pb, theta, p->reg_param, out);
      out->iterations = res.iterations;
      out->objective = res.f;
      out->history = res.history;
    } else {
      free(res.history);
    }
  }
  free(theta);
  free(l1);
  return rc;
}

int ml_lr_train(dlp_ctx *ctx, const float *X, size_t n, size_t d,
                const double *y, const double *w, const ml_lr_params *p,
                ml_lr_fit *out) {
  memset(out, 0, sizeof *out);
  if (n == 0) return dlp_fail(ctx, DLP_ERR_ARG, "no rows to fit");
  if (!X || !y || !p) return dlp_fail(ctx, DLP_ERR_ARG, "ml_lr_train: NULL");
  int rc = lr_check_params(ctx, p);
  int64_t n_classes = 0;
  int multinomial = 0;
  if (rc == DLP_OK) rc = lr_check_rows(ctx, y, w, n, p->n_classes, &n_classes);
  if (rc == DLP_OK) rc = lr_resolve_family(ctx, p, n_classes, &multinomial);
  if (rc != DLP_OK) return rc;
  double *hist = dlp_calloc_array((size_t)n_classes, sizeof *hist);
  double *sigma = dlp_calloc_array(d ? d : 1, sizeof *sigma);
  lr_problem pb = {.X = X,
                   .n = n,
                   .d = d,
                   .y = y,
                   .w = w,
                   .K = multinomial ? (size_t)n_classes : 1,
                   .multinomial = multinomial,
                   .fit_intercept = p->fit_intercept != 0,
                   .ctx = ctx,
                   .max_iter = p->max_iter};
  pb.threads = p->threads > 0 ? p->threads : dlp_ctx_threads(ctx);
  lr_kernels(&pb.margins, &pb.accum2);
  pb.margins2 = lr_margins2_kernel();
  if (!hist || !sigma)
    rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %lld classes",
                  (long long)n_classes);
  if (rc == DLP_OK) rc = lr_histogram(ctx, y, w, n, n_classes, hist);
  if (rc == DLP_OK) rc = lr_alloc_problem(ctx, &pb);
  if (rc == DLP_OK)
    rc = lr_feature_stats(ctx, X, n, d, w, pb.chunk, pb.nchunks, pb.part,
                          pb.threads, sigma, &pb.wsum);
  if (rc == DLP_OK) rc = lr_optimise(ctx, &pb, p, sigma, hist, out);
  lr_free_problem(&pb);
  free(hist);
  free(sigma);
  if (rc != DLP_OK) return rc;
  out->multinomial = multinomial;
  out->n_classes = n_classes;
  out->k = pb.K;
  out->dim = d;
  out->threshold = p->threshold;
  return dlp_ok(ctx);
}

/* --- prediction ----------------------------------------------------------- */

size_t ml_lr_n_outputs(const ml_lr_fit *fit) {
  return fit->multinomial ? (size_t)fit->n_classes : 2;
}

void ml_lr_predict_row(const ml_lr_fit *fit, const float *x, double *raw,
                       double *prob, double *pred) {
  lr_margins_fn mf;
  lr_accum2_fn af;
  lr_kernels(&mf, &af);
  size_t K = fit->k;
  if (!fit->multinomial) {
    double m;
    mf(x, fit->coef, 1, fit->dim, &m);
    m += fit->intercept[0];
    double s = sigmoid(m);
    raw[0] = -m, raw[1] = m;
    if (prob) prob[0] = 1 - s, prob[1] = s;
    *pred = s > fit->threshold ? 1 : 0;
    return;
  }
  mf(x, fit->coef, K, fit->dim, raw);
  size_t best = 0;
  for (size_t k = 0; k < K; k++) {
    raw[k] += fit->intercept[k];
    if (raw[k] > raw[best]) best = k;
  }
  *pred = (double)best;
  if (!prob) return;
  double z = 0;
  for (size_t k = 0; k < K; k++)
    z += (prob[k] = exp(raw[k] - raw[best]));
  for (size_t k = 0; k < K; k++)
    prob[k] /= z;
}

void ml_lr_fit_clear(ml_lr_fit *fit) {
  if (!fit) return;
  free(fit->coef);
  free(fit->intercept);
  free(fit->history);
  memset(fit, 0, sizeof *fit);
}

double ml_lr_objective(const ml_lr_fit *fit, const float *X, size_t n, size_t d,
                       const double *y, const double *w,
                       const ml_lr_params *p) {
  size_t K = fit->k;
  double *buf = dlp_malloc_array(2 * K + 2 * d + 2, sizeof *buf);
  if (!buf || d != fit->dim) {
    free(buf);
    return NAN;
  }
  double *m = buf, *r = buf + K, *mean = r + K, *m2 = mean + d + 1;
  lr_margins_fn mf;
  lr_accum2_fn af;
  lr_kernels(&mf, &af);
  double loss = 0, W = 0, W2 = 0;
  memset(mean, 0, (2 * d + 2) * sizeof *mean);
  for (size_t i = 0; i < n; i++) {
    double wi = w ? w[i] : 1.0;
    const float *x = X + i * d;
    W += wi, W2 += wi * wi;
    for (size_t j = 0; j < d; j++)
      mean[j] += wi * x[j];
    if (wi == 0) continue;
    mf(x, fit->coef, K, d, m);
    for (size_t k = 0; k < K; k++)
      m[k] += fit->intercept[k];
    loss += row_loss(m, K, fit->multinomial, (size_t)y[i], wi, r);
  }
  for (size_t j = 0; j < d; j++)
    mean[j] /= W;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < d; j++) {
      double t = X[i * d + j] - mean[j];
      m2[j] += (w ? w[i] : 1.0) * t * t;
    }
  double l2 = 0, l1 = 0, den = W - W2 / W;
  for (size_t j = 0; j < d; j++) {
    double s = p->standardization ? (den > 0 ? sqrt(m2[j] / den) : 0) : 1.0;
    for (size_t k = 0; k < K; k++) {
      double b = fit->coef[k * d + j] * s;
      l2 += b * b, l1 += fabs(b);
    }
  }
  free(buf);
  return loss / W +
         p->reg_param * ((1 - p->elastic_net) / 2 * l2 + p->elastic_net * l1);
}
