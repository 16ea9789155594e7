/* phash.c - test tool: perceptual hashes, a dedup driver over the library
 * functions, and an augmentation driver, so Python tests can run the
 * library's code directly. (Users and scripts/pretrain-data.sh use `dlp
 * dedup`.)
 *
 *   phash hash FILE|IN.npy...
 *       one line per input: "PHASH PHASH_MIRROR DHASH FLAT PHASH_TRIM
 *       PHASH_TRIM_MIRROR FLAT_TRIM SHA256 PATH" (hex; FLATs 0 or 1),
 *       or "ERROR message PATH"; a uint8 (H, W[, C]) .npy is hashed as an
 *       image (no decoder involved)
 *   phash dedup --against DIR --threshold T SRC_DIR --out KEPT
 *               [--removed LIST] [--threads N] [--stats]
 *       hashes every image under DIR and SRC_DIR (recursive, symlinks to
 *       files skipped in SRC_DIR so each image has one folder), writes the
 *       SRC_DIR files whose nearest DIR image is farther than T (pHash bits,
 *       mirror included) and not byte-identical to KEPT, one path a line,
 *       and the others to LIST as "path<TAB>distance<TAB>how<TAB>match"
 *       (how: direct, mirrored, trimmed, trimmed-mirrored, same-bytes; or
 * "-<TAB>uniform<TAB>-" for a blank image, useless for training, which is
 * dropped too);
 *       --stats prints how many would go at each threshold 0..16
 *   phash augment IN.npy OUT.npy --size WxH [--seed S] [--no-crop]
 *               [--scale a,b] [--ratio a,b] [--hflip p] [--jitter b,c,s]
 *               [--params x,y,w,h,flip,fb,fc,fs] [--filter NAME]
 *               [--tensor NORM [--nchw]]
 *       draws (or takes --params) and applies an augmentation to a uint8
 *       image; prints the parameters "x y w h flip fb fc fs" (factors %.17g)
 *       and writes uint8 (H, W, C), or with --tensor the float32 tensor of
 *       dlp_image_augment_to_tensor
 */
#include "dlp.h"
#include "image/image.h"
#include "npy.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(const char *msg, const char *arg) {
  fprintf(stderr, "phash: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  return 1;
}

/* A uint8 (H, W) or (H, W, C) .npy as an image; NULL when it is not one. */
static dlp_image *npy_image(dlp_ctx *ctx, const char *path) {
  dlp_npy_array a;
  dlp_image *img = NULL;
  if (dlp_npy_load_array(NULL, path, (uint64_t)1 << 32, &a) != DLP_OK)
    return NULL;
  const int64_t *d = a.dims;
  int64_t c = a.ndim == 3 ? d[2] : 1;
  int ok = a.dtype == 'B' && (a.ndim == 2 || a.ndim == 3) && d[0] > 0 &&
           d[1] > 0 && d[0] <= 1 << 16 && d[1] <= 1 << 16 && c <= 4;
  if (ok && dlp_image_new(ctx, (int32_t)d[1], (int32_t)d[0], (int32_t)c,
                          &img) == DLP_OK)
    memcpy(img->data, a.data, a.nbytes);
  dlp_npy_array_free(&a);
  return img;
}

/* ---- hash ---------------------------------------------------------------- */

static void print_hash(const dlp_file_hash *h, const char *path) {
  printf("%016llx %016llx %016llx %d %016llx %016llx %d ",
         (unsigned long long)h->phash, (unsigned long long)h->phash_mirror,
         (unsigned long long)h->dhash, h->flat,
         (unsigned long long)h->phash_trim,
         (unsigned long long)h->phash_trim_mirror, h->flat_trim);
  for (int i = 0; i < 32; i++)
    printf("%02x", h->sha256[i]);
  printf(" %s\n", path);
}

static int hash_npy(dlp_ctx *ctx, const char *path) {
  dlp_image *img = npy_image(ctx, path);
  if (!img) return fail("not a uint8 image array", path);
  dlp_file_hash h = {0};
  dlp_err e = {0};
  int rc = dlp_img_hash_image(&e, img, &h);
  dlp_image_free(img);
  if (rc != DLP_OK) return fail(e.msg, path);
  print_hash(&h, path);
  return 0;
}

static int cmd_hash(dlp_ctx *ctx, int argc, char **argv) {
  int bad = 0;
  for (int i = 0; i < argc; i++) {
    if (dlp_ends_with_ci(argv[i], ".npy")) {
      bad |= hash_npy(ctx, argv[i]);
      continue;
    }
    dlp_file_hash h;
    char *msg = NULL;
    const char *p = argv[i];
    if (dlp_hash_files(ctx, &p, 1, &h, &msg) != DLP_OK)
      return fail(dlp_errmsg(ctx), p);
    if (h.status == DLP_OK)
      print_hash(&h, p);
    else
      printf("ERROR %s %s\n", msg ? msg : "?", p);
    free(msg);
  }
  return bad;
}

/* ---- listing folders ----------------------------------------------------- */

typedef struct file_list {
  char **paths;
  size_t n, cap;
} file_list;

static int is_image_name(const char *p) {
  static const char *ext[] = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"};
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
    if (dlp_ends_with_ci(p, ext[i])) return 1;
  return 0;
}

static int list_add(file_list *l, const char *path) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 1024;
    char **p = realloc(l->paths, cap * sizeof *p);
    if (!p) return -1;
    l->paths = p;
    l->cap = cap;
  }
  l->paths[l->n] = strdup(path);
  return l->paths[l->n++] ? 0 : -1;
}

/* Adds the image files under dir. Symlinks to folders are not followed
 * (no cycles); links to files are listed unless skip_links. */
static int walk(const char *dir, int skip_links, int depth, file_list *l) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int rc = 0;
  struct dirent *ent;
  char path[4096];
  while (rc == 0 && (ent = readdir(d)) != NULL) {
    if (ent->d_name[0] == '.') continue;
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, ent->d_name) >=
            (int)sizeof path ||
        lstat(path, &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode) && depth < 32) {
      rc = walk(path, skip_links, depth + 1, l);
    } else if (is_image_name(path)) {
      int link = S_ISLNK(st.st_mode);
      if (link && (skip_links || stat(path, &st) != 0)) continue;
      if (S_ISREG(st.st_mode)) rc = list_add(l, path);
    }
  }
  closedir(d);
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_free(file_list *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->paths[i]);
  free(l->paths);
}

/* Image files under dir, sorted. */
static int list_images(const char *dir, int skip_links, file_list *l) {
  memset(l, 0, sizeof *l);
  if (walk(dir, skip_links, 0, l) != 0) {
    list_free(l);
    return -1;
  }
  qsort(l->paths, l->n, sizeof *l->paths, cmp_str);
  return 0;
}

/* ---- dedup --------------------------------------------------------------- */

typedef struct dedup_opts {
  const char *against, *src, *out, *removed;
  int threshold, threads, stats;
} dedup_opts;

/* Hashes a list; reports files that fail on stderr. */
static dlp_file_hash *hash_list(dlp_ctx *ctx, const file_list *l,
                                size_t *failed) {
  dlp_file_hash *h = calloc(l->n ? l->n : 1, sizeof *h);
  char **msg = calloc(l->n ? l->n : 1, sizeof *msg);
  *failed = 0;
  if (!h || !msg ||
      dlp_hash_files(ctx, (const char *const *)l->paths, l->n, h, msg) !=
          DLP_OK) {
    fprintf(stderr, "phash: hashing failed: %s\n", dlp_errmsg(ctx));
    free(h);
    h = NULL;
  }
  size_t flat = 0;
  for (size_t i = 0; h && i < l->n; i++)
    flat += h[i].flat;
  if (h && flat)
    fprintf(stderr,
            "phash: %zu uniform images (they match only identical "
            "files)\n",
            flat);
  for (size_t i = 0; i < l->n; i++) {
    if (msg && msg[i]) {
      fprintf(stderr, "phash: skipped %s\n", msg[i]);
      (*failed)++;
    }
    if (msg) free(msg[i]);
  }
  free(msg);
  return h;
}

static const char *how(const dlp_hash_match *m) {
  static const char *names[4] = {"direct", "mirrored", "trimmed",
                                 "trimmed-mirrored"};
  return m->same_bytes ? "same-bytes" : names[m->trimmed * 2 + m->mirrored];
}

static int write_lists(const dedup_opts *o, const file_list *src,
                       const file_list *ref, const dlp_file_hash *sh,
                       const dlp_hash_match *m, size_t *kept) {
  FILE *out = fopen(o->out, "w");
  FILE *rem = o->removed ? fopen(o->removed, "w") : NULL;
  if (!out || (o->removed && !rem)) {
    if (out) fclose(out);
    if (rem) fclose(rem);
    return fail("cannot write", o->removed && !rem ? o->removed : o->out);
  }
  *kept = 0;
  for (size_t i = 0; i < src->n; i++) {
    if (sh[i].status != DLP_OK) continue;
    int dup = m[i].ref != SIZE_MAX && m[i].distance <= o->threshold;
    if (!dup && sh[i].flat) {
      if (rem) fprintf(rem, "%s\t-\tuniform\t-\n", src->paths[i]);
    } else if (!dup) {
      fprintf(out, "%s\n", src->paths[i]);
      (*kept)++;
    } else if (rem) {
      fprintf(rem, "%s\t%d\t%s\t%s\n", src->paths[i], m[i].distance, how(&m[i]),
              ref->paths[m[i].ref]);
    }
  }
  int bad = ferror(out) || (rem && ferror(rem));
  bad |= fclose(out) != 0;
  if (rem) bad |= fclose(rem) != 0;
  return bad ? fail("write error", o->out) : 0;
}

static void print_stats(const dlp_hash_match *m, size_t n) {
  size_t same = 0, at[17] = {0};
  for (size_t i = 0; i < n; i++) {
    if (m[i].ref == SIZE_MAX) continue;
    same += m[i].same_bytes;
    for (int t = m[i].distance; t <= 16; t++)
      at[t]++;
  }
  fprintf(stderr, "phash: byte-identical: %zu\n", same);
  for (int t = 0; t <= 16; t++)
    fprintf(stderr, "phash: within %2d bits: %zu\n", t, at[t]);
}

static int run_dedup(dlp_ctx *ctx, const dedup_opts *o) {
  file_list ref, src;
  int rc = 1;
  if (list_images(o->against, 0, &ref) != 0)
    return fail("cannot list", o->against);
  if (list_images(o->src, 1, &src) != 0) {
    list_free(&ref);
    return fail("cannot list", o->src);
  }
  size_t ref_bad = 0, src_bad = 0, kept = 0;
  dlp_file_hash *rh = hash_list(ctx, &ref, &ref_bad);
  dlp_file_hash *sh = rh ? hash_list(ctx, &src, &src_bad) : NULL;
  dlp_hash_match *m = calloc(src.n ? src.n : 1, sizeof *m);
  if (sh && m &&
      dlp_hash_match_nearest(ctx, rh, ref.n, sh, src.n, m) == DLP_OK) {
    if (o->stats) print_stats(m, src.n);
    rc = write_lists(o, &src, &ref, sh, m, &kept);
    fprintf(stderr,
            "phash: %zu reference images (%zu unreadable), %zu source images "
            "(%zu unreadable): kept %zu, removed %zu at threshold %d\n",
            ref.n, ref_bad, src.n, src_bad, kept, src.n - src_bad - kept,
            o->threshold);
  }
  free(m);
  free(sh);
  free(rh);
  list_free(&ref);
  list_free(&src);
  return rc;
}

static int cmd_dedup(dlp_ctx *ctx, int argc, char **argv) {
  dedup_opts o = {0};
  o.threshold = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--stats") == 0) {
      o.stats = 1;
      continue;
    }
    if (a[0] != '-') {
      o.src = a;
      continue;
    }
    if (!v) return fail("missing value for", a);
    i++;
    if (strcmp(a, "--against") == 0)
      o.against = v;
    else if (strcmp(a, "--threshold") == 0)
      o.threshold = atoi(v);
    else if (strcmp(a, "--out") == 0)
      o.out = v;
    else if (strcmp(a, "--removed") == 0)
      o.removed = v;
    else if (strcmp(a, "--threads") == 0)
      o.threads = atoi(v);
    else
      return fail("unknown option", a);
  }
  if (!o.against || !o.src || !o.out || o.threshold < 0 || o.threshold > 64)
    return fail("usage: phash dedup --against DIR --threshold 0..64 SRC_DIR "
                "--out KEPT [--removed LIST] [--threads N] [--stats]",
                NULL);
  if (o.threads > 0) dlp_ctx_set_threads(ctx, o.threads);
  return run_dedup(ctx, &o);
}

/* ---- augment ------------------------------------------------------------- */

typedef struct aug_cli {
  dlp_augment a;
  dlp_augment_params prm;
  int have_params, have_tensor;
  uint64_t seed;
  dlp_preprocess pp;
} aug_cli;

static int parse_aug_opt(aug_cli *c, const char *a, const char *v) {
  double *j[3] = {&c->a.brightness, &c->a.contrast, &c->a.saturation};
  dlp_augment_params *p = &c->prm;
  if (strcmp(a, "--size") == 0)
    return sscanf(v, "%dx%d", &c->pp.width, &c->pp.height) == 2 ? 0 : -1;
  if (strcmp(a, "--seed") == 0)
    return sscanf(v, "%llu", (unsigned long long *)&c->seed) == 1 ? 0 : -1;
  if (strcmp(a, "--scale") == 0)
    return sscanf(v, "%lf,%lf", &c->a.scale[0], &c->a.scale[1]) == 2 ? 0 : -1;
  if (strcmp(a, "--ratio") == 0)
    return sscanf(v, "%lf,%lf", &c->a.ratio[0], &c->a.ratio[1]) == 2 ? 0 : -1;
  if (strcmp(a, "--hflip") == 0)
    return sscanf(v, "%lf", &c->a.hflip) == 1 ? 0 : -1;
  if (strcmp(a, "--jitter") == 0)
    return sscanf(v, "%lf,%lf,%lf", j[0], j[1], j[2]) == 3 ? 0 : -1;
  if (strcmp(a, "--params") == 0) {
    c->have_params = 1;
    return sscanf(v, "%d,%d,%d,%d,%d,%lf,%lf,%lf", &p->x, &p->y, &p->width,
                  &p->height, &p->flip, &p->brightness, &p->contrast,
                  &p->saturation) == 8
               ? 0
               : -1;
  }
  if (strcmp(a, "--filter") == 0) {
    static const char *names[] = {"bilinear", "box", "bicubic", "lanczos"};
    for (int f = 0; f < 4; f++)
      if (strcmp(v, names[f]) == 0) c->pp.filter = (dlp_filter)f;
    return 0;
  }
  if (strcmp(a, "--tensor") == 0) {
    c->have_tensor = 1;
    return dlp_norm_from_name(v, &c->pp.norm) ? 0 : -1;
  }
  return -1;
}

static int aug_write(const char *path, const dlp_image *img) {
  dlp_npy_array a = {.dtype = 'B',
                     .ndim = 3,
                     .dims = {img->height, img->width, img->n_channels},
                     .data = img->data,
                     .nbytes = (size_t)img->width * (size_t)img->height *
                               (size_t)img->n_channels};
  return dlp_npy_save_array(NULL, path, &a) == DLP_OK ? 0 : 1;
}

static int aug_tensor(dlp_ctx *ctx, const aug_cli *c, const dlp_image *img,
                      const char *path) {
  size_t n = dlp_preprocess_size(&c->pp);
  float *x = malloc((n ? n : 1) * sizeof *x);
  if (!x) return fail("no memory", NULL);
  int rc = dlp_image_augment_to_tensor(ctx, img, &c->a, c->seed, &c->pp, x);
  if (rc == DLP_OK) {
    int nchw = c->pp.layout == DLP_LAYOUT_NCHW;
    int64_t h = c->pp.height, w = c->pp.width;
    dlp_npy_array a = {.dtype = 'f',
                       .ndim = 3,
                       .dims = {nchw ? 3 : h, nchw ? h : w, nchw ? w : 3},
                       .data = x,
                       .nbytes = n * sizeof *x};
    rc = dlp_npy_save_array(NULL, path, &a);
  }
  free(x);
  return rc == DLP_OK ? 0 : fail(dlp_errmsg(ctx), path);
}

static int cmd_augment(dlp_ctx *ctx, int argc, char **argv) {
  if (argc < 2) return fail("usage: phash augment IN.npy OUT.npy ...", NULL);
  aug_cli c = {0};
  dlp_augment_init(&c.a);
  dlp_preprocess_init(&c.pp);
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--no-crop") == 0) {
      c.a.random_crop = 0;
    } else if (strcmp(argv[i], "--nchw") == 0) {
      c.pp.layout = DLP_LAYOUT_NCHW;
    } else if (i + 1 >= argc || parse_aug_opt(&c, argv[i], argv[i + 1])) {
      return fail("bad option", argv[i]);
    } else {
      i++;
    }
  }
  dlp_image *img = npy_image(ctx, argv[0]);
  if (!img) return fail("not a uint8 image array", argv[0]);
  int rc = DLP_OK;
  if (!c.have_params)
    rc = dlp_augment_draw(ctx, &c.a, img->width, img->height, c.seed, &c.prm);
  const dlp_augment_params *p = &c.prm;
  if (rc == DLP_OK)
    printf("%d %d %d %d %d %.17g %.17g %.17g\n", p->x, p->y, p->width,
           p->height, p->flip, p->brightness, p->contrast, p->saturation);
  int bad = rc != DLP_OK ? fail(dlp_errmsg(ctx), NULL) : 0;
  if (!bad && c.have_tensor) {
    bad = aug_tensor(ctx, &c, img, argv[1]);
  } else if (!bad) {
    dlp_image *out = NULL;
    rc = dlp_augment_apply(ctx, img, p, c.pp.width, c.pp.height, c.pp.filter,
                           &out);
    bad = rc != DLP_OK ? fail(dlp_errmsg(ctx), NULL) : aug_write(argv[1], out);
    dlp_image_free(out);
  }
  dlp_image_free(img);
  return bad;
}

int main(int argc, char **argv) {
  if (argc < 2)
    return fail("usage: phash hash|dedup|augment ... (see the file header)",
                NULL);
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) return fail("no memory", NULL);
  int rc;
  if (strcmp(argv[1], "hash") == 0)
    rc = cmd_hash(ctx, argc - 2, argv + 2);
  else if (strcmp(argv[1], "dedup") == 0)
    rc = cmd_dedup(ctx, argc - 2, argv + 2);
  else if (strcmp(argv[1], "augment") == 0)
    rc = cmd_augment(ctx, argc - 2, argv + 2);
  else
    rc = fail("unknown mode", argv[1]);
  dlp_ctx_free(ctx);
  return rc;
}
