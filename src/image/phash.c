/* phash.c - perceptual hashes (pHash, dHash) of images and files, and the
 * nearest-neighbour match between two sets of them.
 *
 * Why by hand: the hashes must be reproducible against a Python reference
 * (PIL + scipy) so that the dedup of the pretraining set can be checked;
 * every step is PIL-exact (luma as PIL's "L", resize by resize.c) except
 * the DCT, done here in double precision; the reference's FFT-based DCT
 * differs in the last bits, which flips a hash bit only when a coefficient
 * ties with the median.
 */
#include "image.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define PH_N 32 /* the DCT's input size: 8 x 8 hash, 4 x high-frequency */
#define PH_K 8  /* kept frequencies per axis */

/* ---- luma at hash size -------------------------------------------------- */

/* PIL's RGB -> L (ITU-R 601-2 in 16-bit fixed point, round half up). */
static uint8_t ph_luma(const uint8_t *px) {
  return (
      uint8_t)((px[0] * 19595u + px[1] * 38470u + px[2] * 7471u + 0x8000u) >>
               16);
}

typedef struct ph_rows {
  uint8_t *dst;
  int32_t w;
} ph_rows;

static void ph_take_row(void *user, int32_t y, const uint8_t *row) {
  ph_rows *r = user;
  memcpy(r->dst + (size_t)y * (size_t)r->w, row, (size_t)r->w);
}

/* A luma plane: w x h bytes, rows `stride` apart; own when allocated. */
typedef struct ph_plane {
  const uint8_t *px;
  int32_t w, h;
  size_t stride;
  uint8_t *own;
} ph_plane;

/* The luma of img (alpha ignored); gray images are used in place. */
static int ph_plane_make(dlp_err *e, const dlp_image *img, ph_plane *pl) {
  memset(pl, 0, sizeof *pl);
  if (!img || !img->data || img->width <= 0 || img->height <= 0)
    return dlp_err_set(e, DLP_ERR_ARG, "hash: no image or empty image");
  int32_t c = img->n_channels;
  if (c != 1 && c != 3 && c != 4)
    return dlp_err_set(e, DLP_ERR_ARG, "hash: image has %d channels", (int)c);
  size_t n = (size_t)img->width * (size_t)img->height;
  pl->px = img->data;
  pl->w = img->width;
  pl->h = img->height;
  pl->stride = (size_t)img->width;
  if (c == 1) return DLP_OK;
  pl->own = malloc(n);
  if (!pl->own)
    return dlp_err_set(e, DLP_ERR_NOMEM, "hash: no memory for %zu pixels", n);
  for (size_t i = 0; i < n; i++)
    pl->own[i] = ph_luma(img->data + i * (size_t)c);
  pl->px = pl->own;
  return DLP_OK;
}

/* BOX-resizes the plane to w x h into out[w * h]. */
static int ph_small(dlp_err *e, const ph_plane *pl, int32_t w, int32_t h,
                    uint8_t *out) {
  ph_rows r = {out, w};
  return dlp_img_resample_rows(e, pl->px, pl->w, pl->h, 1, pl->stride, w, h,
                               DLP_FILTER_BOX, ph_take_row, &r);
}

/* Luma under this is drawing, above it background: clip art composited
 * on white keeps a few levels of antialiasing noise in its margins. */
#define PH_WHITE 247

/* The plane cut to the bounding box of its non-white pixels (the whole
 * plane when there are none): the same drawing on a larger canvas then
 * hashes alike. */
static ph_plane ph_plane_trim(const ph_plane *pl) {
  int32_t x0 = pl->w, x1 = -1, y0 = pl->h, y1 = -1;
  for (int32_t y = 0; y < pl->h; y++) {
    const uint8_t *row = pl->px + (size_t)y * pl->stride;
    int32_t first = -1, last = -1;
    for (int32_t x = 0; x < pl->w; x++)
      if (row[x] < PH_WHITE) {
        if (first < 0) first = x;
        last = x;
      }
    if (first < 0) continue;
    if (y0 > y) y0 = y;
    y1 = y;
    if (x0 > first) x0 = first;
    if (x1 < last) x1 = last;
  }
  ph_plane t = *pl;
  t.own = NULL;
  if (y1 < 0) return t;
  t.px = pl->px + (size_t)y0 * pl->stride + (size_t)x0;
  t.w = x1 - x0 + 1;
  t.h = y1 - y0 + 1;
  return t;
}

/* ---- pHash --------------------------------------------------------------- */

/* The top-left 8x8 block of scipy's unnormalised DCT-II along both axes:
 * X[u][v] = 4 sum_y sum_x p[y][x] cos(pi u (2y+1) / 2N) cos(pi v (2x+1) / 2N).
 */
static void ph_dct8(const uint8_t *p, double out[PH_K][PH_K]) {
  double cs[PH_K][PH_N], t[PH_K][PH_N];
  for (int u = 0; u < PH_K; u++)
    for (int n = 0; n < PH_N; n++)
      cs[u][n] = cos(M_PI * u * (2 * n + 1) / (2.0 * PH_N));
  for (int u = 0; u < PH_K; u++)
    for (int x = 0; x < PH_N; x++) {
      double s = 0;
      for (int y = 0; y < PH_N; y++)
        s += p[y * PH_N + x] * cs[u][y];
      t[u][x] = 2.0 * s;
    }
  for (int u = 0; u < PH_K; u++)
    for (int v = 0; v < PH_K; v++) {
      double s = 0;
      for (int x = 0; x < PH_N; x++)
        s += t[u][x] * cs[v][x];
      out[u][v] = 2.0 * s;
    }
}

static int ph_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Bits of c > median(c) (numpy's median: the mean of the two middle values),
 * coefficient (0,0) in bit 63. mirror negates the odd columns first. */
static uint64_t ph_bits(const double c[PH_K][PH_K], int mirror) {
  double v[PH_K * PH_K], s[PH_K * PH_K];
  for (int u = 0; u < PH_K; u++)
    for (int k = 0; k < PH_K; k++)
      v[u * PH_K + k] = (mirror && (k & 1)) ? -c[u][k] : c[u][k];
  memcpy(s, v, sizeof s);
  qsort(s, PH_K * PH_K, sizeof s[0], ph_cmp_double);
  double med = (s[31] + s[32]) / 2.0;
  uint64_t h = 0;
  for (int i = 0; i < PH_K * PH_K; i++)
    h = (h << 1) | (v[i] > med);
  return h;
}

/* Coefficients smaller than this are zero: the DCT of integer pixels is
 * exact up to ~1e-10 of rounding noise, and an exactly symmetric or flat
 * image has true zeros whose noise would otherwise decide bits (and differ
 * between implementations). Real coefficients are at least ~1e-3. */
#define PH_ZERO 1e-6

/* pHash of a plane; *flat = 1 when every AC coefficient is zero (a uniform
 * image: its hash, 0x8000000000000000, says nothing about content). */
static int ph_phash(dlp_err *e, const ph_plane *pl, uint64_t *h,
                    uint64_t *mirror, int *flat) {
  uint8_t small[PH_N * PH_N];
  int rc = ph_small(e, pl, PH_N, PH_N, small);
  if (rc != DLP_OK) return rc;
  double c[PH_K][PH_K];
  ph_dct8(small, c);
  int ac = 0;
  for (int u = 0; u < PH_K; u++)
    for (int v = 0; v < PH_K; v++) {
      if (fabs(c[u][v]) < PH_ZERO) c[u][v] = 0.0;
      ac |= (u || v) && c[u][v] != 0.0;
    }
  if (h) *h = ph_bits(c, 0);
  if (mirror) *mirror = ph_bits(c, 1);
  if (flat) *flat = !ac;
  return DLP_OK;
}

static int ph_dhash(dlp_err *e, const ph_plane *pl, uint64_t *h) {
  uint8_t small[9 * 8];
  int rc = ph_small(e, pl, 9, 8, small);
  if (rc != DLP_OK) return rc;
  uint64_t v = 0;
  for (int y = 0; y < 8; y++)
    for (int x = 0; x < 8; x++)
      v = (v << 1) | (small[y * 9 + x + 1] > small[y * 9 + x]);
  *h = v;
  return DLP_OK;
}

/* What the public per-image calls compute. */
enum { PH_PLAIN, PH_MIRROR, PH_DHASH };

static int ph_image(dlp_ctx *ctx, const dlp_image *img, int what,
                    uint64_t *out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "hash: out is NULL");
  dlp_err *e = ctx ? &ctx->err : NULL;
  ph_plane pl;
  int rc = ph_plane_make(e, img, &pl);
  if (rc == DLP_OK)
    rc = what == PH_DHASH    ? ph_dhash(e, &pl, out)
         : what == PH_MIRROR ? ph_phash(e, &pl, NULL, out, NULL)
                             : ph_phash(e, &pl, out, NULL, NULL);
  free(pl.own);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}

int dlp_image_phash(dlp_ctx *ctx, const dlp_image *img, uint64_t *out) {
  return ph_image(ctx, img, PH_PLAIN, out);
}

int dlp_image_phash_mirror(dlp_ctx *ctx, const dlp_image *img, uint64_t *out) {
  return ph_image(ctx, img, PH_MIRROR, out);
}

int dlp_image_dhash(dlp_ctx *ctx, const dlp_image *img, uint64_t *out) {
  return ph_image(ctx, img, PH_DHASH, out);
}

/* ---- files --------------------------------------------------------------- */

int dlp_img_hash_image(dlp_err *e, const dlp_image *img, dlp_file_hash *out) {
  ph_plane pl;
  int rc = ph_plane_make(e, img, &pl);
  if (rc == DLP_OK)
    rc = ph_phash(e, &pl, &out->phash, &out->phash_mirror, &out->flat);
  if (rc == DLP_OK) rc = ph_dhash(e, &pl, &out->dhash);
  ph_plane t = ph_plane_trim(&pl);
  if (rc == DLP_OK)
    rc = ph_phash(e, &t, &out->phash_trim, &out->phash_trim_mirror,
                  &out->flat_trim);
  out->width = img ? img->width : 0;
  out->height = img ? img->height : 0;
  free(pl.own);
  out->status = rc;
  return rc;
}

int dlp_img_hash_file(dlp_err *e, const dlp_limits *lim, const char *path,
                      dlp_img_scratch *s, dlp_file_hash *out) {
  memset(out, 0, sizeof *out);
  size_t len = 0;
  int rc = dlp_read_file_into(e, path, lim->max_file_bytes, &s->file,
                              &s->file_cap, &len);
  if (rc == DLP_OK &&
      EVP_Digest(s->file, len, out->sha256, NULL, EVP_sha256(), NULL) != 1)
    rc = dlp_err_set(e, DLP_ERR_INTERNAL, "SHA-256 failed");
  dlp_image view;
  if (rc == DLP_OK)
    rc = dlp_img_decode_scratch(e, lim, s->file, len, NULL, s, &view);
  if (rc == DLP_OK) rc = dlp_img_hash_image(e, &view, out);
  out->status = rc;
  if (rc != DLP_OK && e) {
    char old[DLP_ERRMSG_MAX];
    memcpy(old, e->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    dlp_err_set(e, rc, "%s: %s", path, old);
  }
  return rc;
}

typedef struct ph_batch {
  const char *const *paths;
  dlp_limits lim;
  dlp_file_hash *out;
  char **errmsg;
  dlp_img_scratch *scratch; /* one per worker */
} ph_batch;

static void ph_batch_one(size_t i, void *user, int worker) {
  ph_batch *b = user;
  dlp_err e = {0};
  int rc = DLP_OK;
  if (b->paths[i])
    rc = dlp_img_hash_file(&e, &b->lim, b->paths[i], &b->scratch[worker],
                           &b->out[i]);
  else
    b->out[i].status = rc = dlp_err_set(&e, DLP_ERR_ARG, "path %zu is NULL", i);
  if (b->errmsg && rc != DLP_OK) b->errmsg[i] = dlp_strdup(e.msg);
}

int dlp_hash_files(dlp_ctx *ctx, const char *const *paths, size_t n,
                   dlp_file_hash *out, char **errmsg) {
  if (n == 0) return dlp_ok(ctx);
  if (!paths || !out)
    return dlp_fail(ctx, DLP_ERR_ARG, "hash files: paths or out is NULL");
  for (size_t i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].status = DLP_ERR_ARG; /* until done (cancellation) */
    if (errmsg) errmsg[i] = NULL;
  }
  int threads = dlp_ctx_threads(ctx);
  dlp_img_scratch *scratch = calloc((size_t)threads, sizeof *scratch);
  if (!scratch) return dlp_fail(ctx, DLP_ERR_NOMEM, "hash files: no memory");
  ph_batch b = {paths, dlp_ctx_limits(ctx), out, errmsg, scratch};
  bool done = dlp_parallel_for(n, threads, ph_batch_one, &b, ctx, "hashing");
  for (int t = 0; t < threads; t++)
    dlp_img_scratch_release(&scratch[t]);
  free(scratch);
  if (!done) return dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  return dlp_ok(ctx);
}

/* ---- matching ------------------------------------------------------------ */

void dlp_hash_cmp_init(dlp_hash_cmp *c) {
  memset(c, 0, sizeof *c);
  c->kind = DLP_HASH_PHASH;
  c->threshold = 8;
}

static int ph_same_bytes(const dlp_file_hash *a, const dlp_file_hash *b) {
  uint64_t ha, hb; /* the first 8 bytes of the SHA-256 rule out most pairs */
  memcpy(&ha, a->sha256, sizeof ha);
  memcpy(&hb, b->sha256, sizeof hb);
  return ha == hb && memcmp(a->sha256, b->sha256, sizeof a->sha256) == 0;
}

/* The comparison loops are compiled twice on x86-64, with and without the
 * POPCNT instruction (picked when the library loads): without it every
 * popcount is a libgcc call and a pair costs several times more. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PH_HOT __attribute__((target_clones("popcnt", "default")))
#else
#define PH_HOT
#endif

static inline int ph_ham(uint64_t a, uint64_t b) {
  return __builtin_popcountll(a ^ b);
}

int dlp_hamming64(uint64_t a, uint64_t b) { return ph_ham(a, b); }

/* dlp_hash_distance into *m (all but m->ref), inlined in the loops. With
 * both, also b's mirror against a (the mirrored hashes make the distance
 * one-sided: the median of the mirrored coefficients is not the other
 * image's); the order of the candidates decides ties. */
static inline int ph_distance(const dlp_hash_cmp *c, const dlp_file_hash *a,
                              const dlp_file_hash *b, int both,
                              dlp_hash_match *m) {
  m->distance = 65;
  m->mirrored = m->trimmed = m->same_bytes = 0;
  if (a->status != DLP_OK || b->status != DLP_OK) return 65;
  if (ph_same_bytes(a, b)) {
    m->same_bytes = 1;
    return m->distance = 0;
  }
  if (a->flat || b->flat) return 65;
  if (c->kind == DLP_HASH_DHASH)
    return m->distance = ph_ham(a->dhash, b->dhash);
  int trim = c->trim && !a->flat_trim && !b->flat_trim;
  int mir = c->mirror ? 1 + both : 0; /* mirrored candidates per hash */
  /* direct, mirrored, trimmed, trimmed and mirrored, then b's mirrors */
  const int d[6] = {
      ph_ham(a->phash, b->phash),
      mir ? ph_ham(a->phash_mirror, b->phash) : 65,
      trim ? ph_ham(a->phash_trim, b->phash_trim) : 65,
      trim && mir ? ph_ham(a->phash_trim_mirror, b->phash_trim) : 65,
      mir > 1 ? ph_ham(b->phash_mirror, a->phash) : 65,
      trim && mir > 1 ? ph_ham(b->phash_trim_mirror, a->phash_trim) : 65};
  static const unsigned char mirrored[6] = {0, 1, 0, 1, 1, 1};
  static const unsigned char trimmed[6] = {0, 0, 1, 1, 0, 1};
  for (int k = 0; k < 6; k++)
    if (d[k] < m->distance) {
      m->distance = d[k];
      m->mirrored = mirrored[k];
      m->trimmed = trimmed[k];
    }
  return m->distance;
}

int dlp_hash_distance(const dlp_hash_cmp *c, const dlp_file_hash *a,
                      const dlp_file_hash *b, dlp_hash_match *how) {
  dlp_hash_match m = {how ? how->ref : SIZE_MAX, 65, 0, 0, 0};
  ph_distance(c, a, b, 0, &m);
  if (how) *how = m;
  return m.distance;
}

/* Brute force: a few ns per pair (XOR + popcount, 8 bytes of SHA-256), so
 * 8,000 x 800 pairs take tens of milliseconds next to the minute spent
 * decoding the files; an index (BK-tree, multi-index hashing) would only
 * pay off for sets a hundred times larger. */
PH_HOT static dlp_hash_match ph_nearest(const dlp_hash_cmp *c,
                                        const dlp_file_hash *refs, size_t n_ref,
                                        const dlp_file_hash *q) {
  dlp_hash_match best = {SIZE_MAX, 65, 0, 0, 0};
  for (size_t r = 0; r < n_ref && q->status == DLP_OK; r++) {
    dlp_hash_match m = {r, 65, 0, 0, 0};
    ph_distance(c, q, &refs[r], 0, &m);
    if (m.same_bytes) return m;
    if (m.distance <= c->threshold && m.distance < best.distance) best = m;
  }
  return best;
}

typedef struct ph_near_job {
  const dlp_hash_cmp *c;
  const dlp_file_hash *refs, *queries;
  size_t n_ref;
  dlp_hash_match *out;
} ph_near_job;

static void ph_near_one(size_t i, void *user, int worker) {
  (void)worker;
  ph_near_job *j = user;
  j->out[i] = ph_nearest(j->c, j->refs, j->n_ref, &j->queries[i]);
}

static int ph_cmp_check(dlp_ctx *ctx, const dlp_hash_cmp *c) {
  if (!c) return dlp_fail(ctx, DLP_ERR_ARG, "hash compare: options are NULL");
  if (c->kind != DLP_HASH_PHASH && c->kind != DLP_HASH_DHASH)
    return dlp_fail(ctx, DLP_ERR_ARG, "hash compare: unknown hash kind %d",
                    (int)c->kind);
  if (c->threshold < 0 || c->threshold > 64)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "hash compare: threshold %d is not in 0..64", c->threshold);
  if (c->kind == DLP_HASH_DHASH && (c->mirror || c->trim))
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "hash compare: the mirror and trim "
                    "variants are pHash's only");
  return DLP_OK;
}

int dlp_hash_nearest(dlp_ctx *ctx, const dlp_file_hash *refs, size_t n_ref,
                     const dlp_file_hash *queries, size_t n_query,
                     const dlp_hash_cmp *c, dlp_hash_match *out) {
  if ((n_ref && !refs) || (n_query && (!queries || !out)))
    return dlp_fail(ctx, DLP_ERR_ARG, "hash match: an array is NULL");
  int rc = ph_cmp_check(ctx, c);
  if (rc != DLP_OK) return rc;
  ph_near_job j = {c, refs, queries, n_ref, out};
  if (!dlp_parallel_for(n_query, dlp_ctx_threads(ctx), ph_near_one, &j, ctx,
                        "matching"))
    return dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  return dlp_ok(ctx);
}

int dlp_hash_match_nearest(dlp_ctx *ctx, const dlp_file_hash *refs,
                           size_t n_ref, const dlp_file_hash *queries,
                           size_t n_query, dlp_hash_match *out) {
  dlp_hash_cmp c;
  dlp_hash_cmp_init(&c);
  c.mirror = c.trim = 1;
  c.threshold = 64;
  return dlp_hash_nearest(ctx, refs, n_ref, queries, n_query, &c, out);
}

/* ---- pairs within one set ------------------------------------------------ */

/* The pairs (i, j > i) of each i, gathered per row so that the workers
 * never share a buffer and the result comes out sorted. */
typedef struct ph_row_pairs {
  dlp_hash_pair *p;
  size_t n, cap;
  int nomem;
} ph_row_pairs;

typedef struct ph_pairs_job {
  const dlp_hash_cmp *c;
  const dlp_file_hash *h;
  size_t n;
  ph_row_pairs *rows;
} ph_pairs_job;

PH_HOT static void ph_pairs_row(size_t i, void *user, int worker) {
  (void)worker;
  ph_pairs_job *j = user;
  ph_row_pairs *r = &j->rows[i];
  if (j->h[i].status != DLP_OK) return;
  for (size_t k = i + 1; k < j->n; k++) {
    dlp_hash_match m = {k, 65, 0, 0, 0};
    if (ph_distance(j->c, &j->h[i], &j->h[k], 1, &m) > j->c->threshold)
      continue;
    if (r->n == r->cap) {
      size_t cap = r->cap ? 2 * r->cap : 4;
      dlp_hash_pair *p = realloc(r->p, cap * sizeof *p);
      if (!p) {
        r->nomem = 1;
        return;
      }
      r->p = p;
      r->cap = cap;
    }
    r->p[r->n++] = (dlp_hash_pair){i, k, m};
  }
}

/* Concatenates the rows into one array (freeing them). */
static int ph_pairs_join(dlp_ctx *ctx, ph_row_pairs *rows, size_t n,
                         dlp_hash_pair **out, size_t *n_out) {
  size_t total = 0;
  int nomem = 0;
  for (size_t i = 0; i < n; i++) {
    total += rows[i].n;
    nomem |= rows[i].nomem;
  }
  dlp_hash_pair *all = !nomem && total ? malloc(total * sizeof *all) : NULL;
  if (total && !all) nomem = 1;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    if (all && rows[i].n) memcpy(all + at, rows[i].p, rows[i].n * sizeof *all);
    at += rows[i].n;
    free(rows[i].p);
  }
  if (nomem)
    return dlp_fail(ctx, DLP_ERR_NOMEM, "hash pairs: no memory for %zu pairs",
                    total);
  *out = all;
  *n_out = total;
  return DLP_OK;
}

int dlp_hash_pairs(dlp_ctx *ctx, const dlp_file_hash *h, size_t n,
                   const dlp_hash_cmp *c, dlp_hash_pair **out, size_t *n_out) {
  if (!out || !n_out || (n && !h))
    return dlp_fail(ctx, DLP_ERR_ARG, "hash pairs: an argument is NULL");
  *out = NULL;
  *n_out = 0;
  int rc = ph_cmp_check(ctx, c);
  if (rc != DLP_OK || n == 0) return rc == DLP_OK ? dlp_ok(ctx) : rc;
  ph_row_pairs *rows = calloc(n, sizeof *rows);
  if (!rows) return dlp_fail(ctx, DLP_ERR_NOMEM, "hash pairs: no memory");
  ph_pairs_job j = {c, h, n, rows};
  int done = dlp_parallel_for(n, dlp_ctx_threads(ctx), ph_pairs_row, &j, ctx,
                              "comparing");
  rc = ph_pairs_join(ctx, rows, n, out, n_out);
  free(rows);
  if (rc == DLP_OK && !done) {
    free(*out);
    *out = NULL;
    *n_out = 0;
    return dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  }
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}
