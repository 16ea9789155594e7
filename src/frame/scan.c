/* scan.c - reading a folder of images into a frame: walk the tree (sorted,
 * hidden entries skipped, symlinked folders only on request and guarded
 * against loops), filter by extension and seeded sample, then read and
 * probe or decode the files in parallel. Unreadable files become rows with
 * an error; only a bad root, bad options, NOMEM or cancellation fail. */
#include "frame.h"

#include "image/image.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define SCAN_DEFAULT_EXTS "jpg,jpeg,png,gif,bmp,webp"

void dlp_scan_opts_init(dlp_scan_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->sample_ratio = 1.0;
  o->verify = 1;
}

/* A file found by the walk. error is set when it is known to be unreadable
 * before reading it (broken link, not a regular file, folder not readable). */
typedef struct scan_entry {
  char *path;
  char *label;
  char *error;
} scan_entry;

typedef struct scan_dir_id {
  dev_t dev;
  ino_t ino;
} scan_dir_id;

typedef struct scan_walk {
  const dlp_scan_opts *o;
  const char *exts;
  scan_entry *v;
  size_t n, cap;
  scan_dir_id *seen; /* folders entered, against symlink loops */
  size_t nseen, capseen;
  int root_errno; /* set when the root folder itself cannot be listed */
} scan_walk;

static void entry_free(scan_entry *e) {
  free(e->path);
  free(e->label);
  free(e->error);
}

/* Whether name's extension is in the comma-separated list (or it is "*"). */
static int ext_ok(const char *exts, const char *name) {
  if (strcmp(exts, "*") == 0) return 1;
  const char *dot = strrchr(name, '.');
  if (!dot || dot == name) return 0;
  const char *ext = dot + 1;
  size_t el = strlen(ext);
  for (const char *p = exts; *p;) {
    while (*p == ',' || *p == ' ' || *p == '.')
      p++;
    size_t l = strcspn(p, ", ");
    if (l && l == el && strncasecmp(p, ext, l) == 0) return 1;
    p += l;
  }
  return 0;
}

static char *path_join(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  int slash = la > 0 && a[la - 1] != '/';
  char *s = malloc(la + slash + lb + 1);
  if (!s) return NULL;
  memcpy(s, a, la);
  if (slash) s[la] = '/';
  memcpy(s + la + slash, b, lb + 1);
  return s;
}

/* Adds one file unless the sample drops it. rel is the path under the root,
 * whose first component is the label when labels come from folders. */
static int walk_add(scan_walk *w, const char *path, const char *rel,
                    const char *error) {
  if (w->o->sample_ratio < 1.0 &&
      !(dlp_hash_uniform(rel, strlen(rel), w->o->seed) < w->o->sample_ratio))
    return DLP_OK;
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 64;
    scan_entry *v = dlp_realloc_array(w->v, cap, sizeof *v);
    if (!v) return DLP_ERR_NOMEM;
    w->v = v;
    w->cap = cap;
  }
  scan_entry e = {dlp_strdup(path), NULL, dlp_strdup(error)};
  const char *slash = strchr(rel, '/');
  if (w->o->labels_from_dirs && slash)
    e.label = strndup(rel, (size_t)(slash - rel));
  if (!e.path || (error && !e.error) ||
      (w->o->labels_from_dirs && slash && !e.label)) {
    entry_free(&e);
    return DLP_ERR_NOMEM;
  }
  w->v[w->n++] = e;
  return DLP_OK;
}

/* Records a folder as entered; returns 1 if it was entered before. */
static int walk_seen(scan_walk *w, const struct stat *st, int *rc) {
  for (size_t i = 0; i < w->nseen; i++)
    if (w->seen[i].dev == st->st_dev && w->seen[i].ino == st->st_ino) return 1;
  if (w->nseen == w->capseen) {
    size_t cap = w->capseen ? 2 * w->capseen : 16;
    scan_dir_id *s = dlp_realloc_array(w->seen, cap, sizeof *s);
    if (!s) {
      *rc = DLP_ERR_NOMEM;
      return 1;
    }
    w->seen = s;
    w->capseen = cap;
  }
  w->seen[w->nseen].dev = st->st_dev;
  w->seen[w->nseen].ino = st->st_ino;
  w->nseen++;
  return 0;
}

static int walk_dir(scan_walk *w, const char *path, const char *rel);

/* One directory entry: a file to take, a folder to enter, or an error. */
static int walk_entry(scan_walk *w, const char *path, const char *rel,
                      const char *name) {
  struct stat lst, st;
  if (lstat(path, &lst) != 0) return DLP_OK; /* vanished meanwhile */
  int is_link = S_ISLNK(lst.st_mode);
  if (is_link && stat(path, &st) != 0)
    return ext_ok(w->exts, name)
               ? walk_add(w, path, rel, "broken symbolic link")
               : DLP_OK;
  if (!is_link) st = lst;
  if (S_ISDIR(st.st_mode)) {
    if (!w->o->recursive || (is_link && !w->o->follow_dir_links)) return DLP_OK;
    int rc = DLP_OK;
    if (walk_seen(w, &st, &rc)) return rc;
    return walk_dir(w, path, rel);
  }
  if (!ext_ok(w->exts, name)) return DLP_OK;
  /* Opening a FIFO would block: refuse anything but regular files here. */
  return walk_add(w, path, rel,
                  S_ISREG(st.st_mode) ? NULL : "not a regular file");
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The visible names in a folder, sorted; NULL with *err on failure. */
static char **dir_names(const char *path, size_t *n, int *err) {
  *n = 0;
  DIR *d = opendir(path);
  if (!d) {
    *err = errno;
    return NULL;
  }
  char **v = NULL;
  size_t cap = 0;
  struct dirent *de;
  *err = 0;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue; /* hidden, "." and ".." */
    if (*n == cap) {
      cap = cap ? 2 * cap : 32;
      char **nv = dlp_realloc_array(v, cap, sizeof *nv);
      if (!nv) break;
      v = nv;
    }
    if (!(v[*n] = strdup(de->d_name))) break;
    (*n)++;
  }
  if (de) *err = ENOMEM;
  closedir(d);
  if (*err) {
    for (size_t i = 0; i < *n; i++)
      free(v[i]);
    free(v);
    return NULL;
  }
  if (*n) qsort(v, *n, sizeof *v, cmp_str);
  return v ? v : calloc(1, sizeof *v);
}

static int walk_dir(scan_walk *w, const char *path, const char *rel) {
  size_t n;
  int err;
  char **names = dir_names(path, &n, &err);
  if (!names) {
    if (err == ENOMEM) return DLP_ERR_NOMEM;
    if (!*rel) {
      w->root_errno = err;
      return DLP_ERR_IO;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "cannot open folder: %s", strerror(err));
    return walk_add(w, path, rel, msg); /* a sub-folder: an error row */
  }
  int rc = DLP_OK;
  for (size_t i = 0; i < n; i++) {
    char *p = path_join(path, names[i]);
    char *r = *rel ? path_join(rel, names[i]) : dlp_strdup(names[i]);
    rc = p && r ? walk_entry(w, p, r, names[i]) : DLP_ERR_NOMEM;
    free(p);
    free(r);
    if (rc != DLP_OK) break;
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return rc;
}

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const scan_entry *)a)->path, ((const scan_entry *)b)->path);
}

/* Lists the files under dir (or dir itself when it is a file). */
static int scan_list(dlp_ctx *ctx, const char *dir, scan_walk *w) {
  struct stat st;
  if (stat(dir, &st) != 0) {
    int en = errno;
    return dlp_fail(ctx, en == ENOENT ? DLP_ERR_NOT_FOUND : DLP_ERR_IO,
                    "%s: %s", dir, strerror(en));
  }
  int rc;
  if (!S_ISDIR(st.st_mode)) {
    const char *base = strrchr(dir, '/');
    rc = walk_add(w, dir, base ? base + 1 : dir,
                  S_ISREG(st.st_mode) ? NULL : "not a regular file");
  } else {
    int dummy = DLP_OK;
    walk_seen(w, &st, &dummy);
    rc = dummy != DLP_OK ? dummy : walk_dir(w, dir, "");
  }
  if (rc == DLP_ERR_NOMEM)
    return dlp_fail(ctx, rc, "no memory while listing %s", dir);
  if (rc != DLP_OK)
    return dlp_fail(ctx, rc, "%s: cannot open folder: %s", dir,
                    strerror(w->root_errno));
  if (w->n) qsort(w->v, w->n, sizeof *w->v, cmp_entry);
  return DLP_OK;
}

/* Shared by the reading tasks; each task writes only its own cell. */
typedef struct scan_job {
  const scan_entry *v;
  dlp_img_cell *cells;
  uint8_t *oom; /* oom[i]: the error text of cell i could not be stored */
  dlp_limits lim;
  int verify, embed;
} scan_job;

static void cell_set_error(scan_job *j, size_t i, const char *msg) {
  dlp_img_cell *c = &j->cells[i];
  c->height = c->width = c->n_channels = c->mode = -1;
  c->error = dlp_strdup(msg);
  j->oom[i] = c->error == NULL;
}

/* Fills cell c from the encoded bytes: a full decode (pixels freed at once,
 * so memory is bounded by the number of threads) or a header probe. */
static int scan_facts(scan_job *j, dlp_err *e, const uint8_t *buf, size_t len,
                      dlp_img_cell *c) {
  if (!j->verify) {
    dlp_image_info info;
    int rc = dlp_img_probe(e, buf, len, &info);
    if (rc == DLP_OK) {
      c->height = info.height;
      c->width = info.width;
      c->n_channels = info.n_channels;
      c->mode = dlp_mode_for_channels(info.n_channels);
    }
    return rc;
  }
  dlp_image *img = NULL;
  int rc = dlp_img_decode(e, &j->lim, buf, len, NULL, &img);
  if (rc == DLP_OK) {
    c->height = img->height;
    c->width = img->width;
    c->n_channels = img->n_channels;
    c->mode = img->mode;
  }
  dlp_image_free(img);
  return rc;
}

static void scan_task(size_t i, void *user, int worker) {
  scan_job *j = user;
  dlp_img_cell *c = &j->cells[i];
  if (j->v[i].error) {
    cell_set_error(j, i, j->v[i].error);
    return;
  }
  dlp_err e = {0};
  uint8_t *buf;
  size_t len;
  if (dlp_read_file(&e, j->v[i].path, j->lim.max_file_bytes, &buf, &len) ||
      scan_facts(j, &e, buf, len, c)) {
    free(buf);
    cell_set_error(j, i, e.msg);
  } else if (j->embed) {
    c->bytes = buf;
    c->n_bytes = len;
  } else {
    free(buf);
  }
}

/* The label column: string from folders, or the literal as int64 when it
 * is a whole integer, else string. Returns its column index or -1. */
static int scan_label_column(dlp_ctx *ctx, dlp_frame *f, const dlp_scan_opts *o,
                             int64_t *lit_int, int *is_int) {
  *is_int = 0;
  if (!o->labels_from_dirs && !o->label_literal) return DLP_OK;
  if (o->label_literal && *o->label_literal) {
    char *end;
    errno = 0;
    long long v = strtoll(o->label_literal, &end, 10);
    *is_int = errno == 0 && *end == '\0';
    *lit_int = v;
  }
  return dlp_frame_add_column(ctx, f, "label",
                              *is_int ? DLP_TYPE_INT64 : DLP_TYPE_STRING, 0);
}

/* Builds the frame from the listed files and their filled cells. */
static int scan_build(dlp_ctx *ctx, const dlp_scan_opts *o, scan_walk *w,
                      scan_job *j, dlp_frame **out) {
  int64_t lit = 0;
  int is_int;
  int rc = dlp_frame_new(ctx, out);
  if (rc == DLP_OK)
    rc = dlp_frame_add_column(ctx, *out, "image", DLP_TYPE_IMAGE, 0);
  if (rc == DLP_OK) rc = scan_label_column(ctx, *out, o, &lit, &is_int);
  for (size_t i = 0; rc == DLP_OK && i < w->n; i++) {
    if (j->oom[i])
      return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for an error message");
    if (o->drop_invalid && j->cells[i].error) continue;
    size_t row;
    rc = dlp_frame_add_row(ctx, *out, &row);
    if (rc != DLP_OK) break;
    j->cells[i].origin = w->v[i].path; /* moved into the frame */
    w->v[i].path = NULL;
    rc = dlp_frame_put_img_cell(ctx, *out, 0, row, &j->cells[i]);
    if (rc != DLP_OK || (*out)->ncols < 2) continue;
    if (o->label_literal)
      rc = is_int ? dlp_frame_set_int64(ctx, *out, 1, row, lit)
                  : dlp_frame_set_string(ctx, *out, 1, row, o->label_literal);
    else
      rc = dlp_frame_set_string(ctx, *out, 1, row, w->v[i].label);
  }
  return rc;
}

static int scan_check(dlp_ctx *ctx, const char *dir, const dlp_scan_opts *o) {
  if (!dir) return dlp_fail(ctx, DLP_ERR_ARG, "read_images: dir is NULL");
  if (o->labels_from_dirs && o->label_literal)
    return dlp_fail(ctx, DLP_ERR_ARG,
                    "labels from folders and a literal label exclude each "
                    "other");
  if (!(o->sample_ratio >= 0 && o->sample_ratio <= 1))
    return dlp_fail(ctx, DLP_ERR_ARG, "sample ratio %g is outside [0, 1]",
                    o->sample_ratio);
  return DLP_OK;
}

int dlp_read_images(dlp_ctx *ctx, const char *dir, const dlp_scan_opts *opts,
                    dlp_frame **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "read_images: out is NULL");
  *out = NULL;
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  if (opts) o = *opts;
  if (o.labels_from_dirs) o.recursive = 1;
  int rc = scan_check(ctx, dir, &o);
  if (rc != DLP_OK) return rc;
  scan_walk w = {.o = &o,
                 .exts = o.extensions ? o.extensions : SCAN_DEFAULT_EXTS};
  scan_job j = {
      .lim = dlp_ctx_limits(ctx), .verify = o.verify, .embed = o.embed_bytes};
  rc = scan_list(ctx, dir, &w);
  if (rc == DLP_OK) {
    j.v = w.v;
    j.cells = dlp_calloc_array(w.n, sizeof *j.cells);
    j.oom = dlp_calloc_array(w.n, 1);
    if (!j.cells || !j.oom)
      rc = dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu files", w.n);
  }
  if (rc == DLP_OK && !dlp_parallel_for(w.n, dlp_ctx_threads(ctx), scan_task,
                                        &j, ctx, "reading images"))
    rc = dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  if (rc == DLP_OK) rc = scan_build(ctx, &o, &w, &j, out);
  for (size_t i = 0; i < w.n; i++) {
    entry_free(&w.v[i]);
    if (j.cells) dlp_img_cell_clear(&j.cells[i]);
  }
  free(w.v);
  free(w.seen);
  free(j.cells);
  free(j.oom);
  if (rc != DLP_OK) {
    dlp_frame_free(*out);
    *out = NULL;
    return rc;
  }
  return dlp_ok(ctx);
}
