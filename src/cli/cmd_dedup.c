/* cmd_dedup.c - 'dlp dedup': near-duplicate images by perceptual hash,
 * within one set (groups, and which file of each to keep) or between two
 * (which files of the first set also appear in the second: the
 * pretraining-leak check), written as a table and as lists of paths.
 *
 * The matching itself is the library's (dlp_hash_files, dlp_hash_pairs,
 * dlp_hash_nearest), so the CLI only gathers files, groups pairs and writes
 * results; its options are in args.c with every command's.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHOW_UNREADABLE 20 /* unreadable files named on stderr */

/* ---- options ------------------------------------------------------------ */

typedef struct dd_cfg {
  dlp_hash_cmp cmp;
  int largest;      /* --keep largest */
  int remove_blank; /* --remove-blank */
  const char *against;
} dd_cfg;

static int parse_variants(const cli_args *a, dlp_hash_cmp *c) {
  const char *v = cli_str(a, "variants");
  if (strcmp(v, "none") == 0) return CLI_PARSED;
  char *buf;
  const char *items[4];
  int n = cli_split_list(v, &buf, items, 4);
  int ok = n > 0;
  for (int i = 0; ok && i < n; i++) {
    if (strcmp(items[i], "mirror") == 0)
      c->mirror = 1;
    else if (strcmp(items[i], "trim") == 0)
      c->trim = 1;
    else
      ok = 0;
  }
  free(buf);
  if (!ok)
    return cli_usage_error(a->cmd,
                           "invalid value '%s' for '--variants': "
                           "expected mirror, trim, mirror,trim or "
                           "none",
                           v);
  return CLI_PARSED;
}

static int is_table_name(const char *path) {
  static const char *ext[] = {".db",    ".sqlite", ".sqlite3",
                              ".jsonl", ".ndjson", ".csv"};
  size_t n = strlen(path);
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
    size_t k = strlen(ext[i]);
    if (n > k && strcasecmp(path + n - k, ext[i]) == 0) return 1;
  }
  return 0;
}

static int parse_cfg(const cli_args *a, dd_cfg *c) {
  memset(c, 0, sizeof *c);
  dlp_hash_cmp_init(&c->cmp);
  c->cmp.threshold = (int)cli_int(a, "threshold");
  const char *h = cli_str(a, "hash");
  if (strcmp(h, "phash") == 0)
    c->cmp.kind = DLP_HASH_PHASH;
  else if (strcmp(h, "dhash") == 0)
    c->cmp.kind = DLP_HASH_DHASH;
  else
    return cli_usage_error(a->cmd,
                           "invalid value '%s' for '--hash': "
                           "expected phash or dhash",
                           h);
  int rc = parse_variants(a, &c->cmp);
  if (rc != CLI_PARSED) return rc;
  if (c->cmp.kind == DLP_HASH_DHASH && (c->cmp.mirror || c->cmp.trim))
    return cli_usage_error(a->cmd, "'--variants' goes with '--hash phash' "
                                   "only");
  const char *k = cli_str(a, "keep");
  if (strcmp(k, "first") != 0 && strcmp(k, "largest") != 0)
    return cli_usage_error(a->cmd,
                           "invalid value '%s' for '--keep': "
                           "expected first or largest",
                           k);
  c->largest = strcmp(k, "largest") == 0;
  c->against = cli_str(a, "against");
  if (c->against && cli_given(a, "keep"))
    return cli_usage_error(a->cmd, "'--keep' chooses within groups of IN; "
                                   "with '--against' every match is removed");
  c->remove_blank = cli_flag(a, "remove-blank");
  const char *out = cli_str(a, "out");
  if (out && !is_table_name(out))
    return cli_usage_error(a->cmd,
                           "invalid value '%s' for '--out': expected "
                           "a .csv, .jsonl or .db/.sqlite file",
                           out);
  return CLI_PARSED;
}

/* ---- the files of a set ------------------------------------------------- */

typedef struct dd_set {
  const char *name;   /* as given on the command line */
  dlp_frame *f;       /* what was read; paths point into it */
  const char **paths; /* the files to hash */
  size_t n;
  size_t n_links;   /* symbolic links left out */
  size_t n_bad;     /* unreadable (listed, or failed to hash) */
  size_t n_flat;    /* uniform images */
  dlp_file_hash *h; /* n hashes */
} dd_set;

static void set_free(dd_set *s) {
  dlp_frame_free(s->f);
  free(s->paths);
  free(s->h);
  memset(s, 0, sizeof *s);
}

static void warn_unreadable(dd_set *s, const char *path, const char *why) {
  if (s->n_bad++ < SHOW_UNREADABLE)
    fprintf(stderr, "dlp dedup: warning: skipped unreadable %s: %s\n",
            path ? path : "(no path)", why);
}

/* The paths of column col (image cells or strings), links dropped unless
 * follow. Cells that say they are unreadable are warned about here. */
static int set_take_paths(dd_set *s, size_t col, int follow) {
  size_t rows = dlp_frame_nrows(s->f);
  s->paths = malloc((rows ? rows : 1) * sizeof *s->paths);
  if (!s->paths) return cli_fail("out of memory");
  int image = dlp_frame_col_type(s->f, col) == DLP_TYPE_IMAGE;
  for (size_t r = 0; r < rows; r++) {
    dlp_image_meta m;
    const char *p = NULL;
    if (image && dlp_frame_get_image_meta(s->f, col, r, &m)) {
      if (m.error) {
        warn_unreadable(s, m.origin, m.error);
        continue;
      }
      p = m.origin;
    } else if (!image) {
      dlp_frame_get_string(s->f, col, r, &p);
    }
    if (!p) {
      warn_unreadable(s, NULL, "the cell is empty");
      continue;
    }
    struct stat st;
    if (!follow && lstat(p, &st) == 0 && S_ISLNK(st.st_mode)) {
      s->n_links++;
      continue;
    }
    s->paths[s->n++] = p;
  }
  return CLI_EXIT_OK;
}

static int set_read_table(const cli_args *a, dlp_ctx *ctx, dd_set *s) {
  dlp_io_opts io;
  dlp_io_opts_init(&io);
  if (dlp_frame_read(ctx, s->name, &io, &s->f) != DLP_OK)
    return cli_lib_error(ctx);
  const char *name = cli_str(a, "input-col");
  long col = dlp_frame_col_index(s->f, name);
  dlp_type t = col >= 0 ? dlp_frame_col_type(s->f, (size_t)col) : 0;
  if (t != DLP_TYPE_IMAGE && t != DLP_TYPE_STRING)
    return cli_fail("%s has no image or path column '%s' (choose one with "
                    "--input-col)",
                    s->name, name);
  return set_take_paths(s, (size_t)col, 1);
}

static int set_read_dir(const cli_args *a, dlp_ctx *ctx, dd_set *s) {
  dlp_scan_opts so;
  dlp_scan_opts_init(&so);
  so.recursive = cli_flag(a, "recursive");
  so.extensions = cli_str(a, "extensions");
  so.verify = 0; /* hashing decodes every file anyway */
  if (dlp_read_images(ctx, s->name, &so, &s->f) != DLP_OK)
    return cli_lib_error(ctx);
  return set_take_paths(s, 0, cli_flag(a, "follow-links"));
}

/* Reads the file list of a folder, a single image or a table. */
static int set_read(const cli_args *a, dlp_ctx *ctx, const char *name,
                    dd_set *s) {
  memset(s, 0, sizeof *s);
  s->name = name;
  struct stat st;
  if (stat(name, &st) != 0)
    return cli_fail("cannot read %s: no such file or folder", name);
  if (!S_ISDIR(st.st_mode) && is_table_name(name))
    return set_read_table(a, ctx, s);
  return set_read_dir(a, ctx, s);
}

static int set_hash(const cli_args *a, dlp_ctx *ctx, dd_set *s) {
  s->h = calloc(s->n ? s->n : 1, sizeof *s->h);
  char **msg = calloc(s->n ? s->n : 1, sizeof *msg);
  if (!s->h || !msg) {
    free(msg);
    return cli_fail("out of memory");
  }
  cli_progress prog;
  cli_progress_start(&prog, ctx, "hashing", cli_flag(a, "quiet"));
  int rc = dlp_hash_files(ctx, s->paths, s->n, s->h, msg);
  cli_progress_end(&prog, ctx);
  for (size_t i = 0; i < s->n; i++) {
    if (rc == DLP_OK && s->h[i].status != DLP_OK) {
      s->n_bad++;
      if (s->n_bad <= SHOW_UNREADABLE)
        fprintf(stderr, "dlp dedup: warning: skipped unreadable %s\n",
                msg[i] ? msg[i] : s->paths[i]);
    }
    s->n_flat += s->h[i].status == DLP_OK && s->h[i].flat;
    free(msg[i]);
  }
  free(msg);
  if (rc != DLP_OK) return cli_lib_error(ctx);
  if (s->n_bad > SHOW_UNREADABLE)
    fprintf(stderr,
            "dlp dedup: warning: ... and %zu more unreadable files "
            "in %s\n",
            s->n_bad - SHOW_UNREADABLE, s->name);
  return CLI_EXIT_OK;
}

/* ---- results ------------------------------------------------------------ */

/* One row of the output: a file of IN and what it matched. */
typedef struct dd_row {
  size_t file;       /* index into IN */
  const char *match; /* the file it duplicates; NULL: none (kept, blank) */
  dlp_hash_match m;  /* distance to match and the variant */
  int64_t group;     /* 1-based; 0: none (a blank file) */
  int keep;
  int blank;
} dd_row;

typedef struct dd_result {
  dd_row *rows;
  size_t n, n_pairs, n_groups;
  unsigned char *remove; /* per file of IN */
} dd_result;

static void result_free(dd_result *r) {
  free(r->rows);
  free(r->remove);
  memset(r, 0, sizeof *r);
}

static int blank_row(const dd_set *s, size_t i, dd_result *r) {
  if (!s->h[i].flat || s->h[i].status != DLP_OK) return 0;
  r->rows[r->n++] =
      (dd_row){.file = i, .m = {SIZE_MAX, 65, 0, 0, 0}, .blank = 1};
  r->remove[i] = 1;
  return 1;
}

/* Union-find with path halving: the root of i. */
static size_t uf_find(size_t *up, size_t i) {
  while (up[i] != i)
    i = up[i] = up[up[i]];
  return i;
}

static int64_t pixels(const dlp_file_hash *h) {
  return (int64_t)h->width * (int64_t)h->height;
}

/* The file each group keeps, in keep[root]: the first, or the largest. */
static void choose_keepers(const dd_cfg *c, const dd_set *s, size_t *up,
                           size_t *keep) {
  for (size_t i = 0; i < s->n; i++)
    keep[i] = SIZE_MAX;
  for (size_t i = 0; i < s->n; i++) {
    size_t root = uf_find(up, i);
    size_t *k = &keep[root];
    if (*k == SIZE_MAX || (c->largest && pixels(&s->h[i]) > pixels(&s->h[*k])))
      *k = i;
  }
}

/* The row of file j of a group kept as k: its distance to k, the smaller of
 * both sides as dlp_hash_pairs takes it. */
static dd_row member_row(const dd_cfg *c, const dd_set *s, size_t j, size_t k,
                         int64_t group) {
  dd_row row = {.file = j, .match = s->paths[k], .group = group};
  row.m.ref = k;
  dlp_hash_match back = row.m;
  dlp_hash_distance(&c->cmp, &s->h[j], &s->h[k], &row.m);
  if (dlp_hash_distance(&c->cmp, &s->h[k], &s->h[j], &back) < row.m.distance)
    row.m = back;
  return row;
}

/* Rows of the groups in the order of their first files: each group's
 * keeper, then its other files. nx[i] links the members of a group in
 * order (SIZE_MAX ends it); done[] marks the roots already written. */
static void group_rows(const dd_cfg *c, const dd_set *s, size_t *up,
                       const size_t *size, const size_t *keep, const size_t *nx,
                       unsigned char *done, dd_result *r) {
  for (size_t i = 0; i < s->n; i++) {
    size_t root = uf_find(up, i);
    if (size[root] < 2 || done[root]) continue;
    done[root] = 1;
    int64_t g = (int64_t)++r->n_groups;
    size_t k = keep[root];
    r->rows[r->n++] = (dd_row){
        .file = k, .m = {SIZE_MAX, 65, 0, 0, 0}, .group = g, .keep = 1};
    for (size_t j = i; j != SIZE_MAX; j = nx[j]) {
      if (j == k) continue;
      r->rows[r->n++] = member_row(c, s, j, k, g);
      r->remove[j] = 1;
    }
  }
}

/* Links the members of each group in file order: nx[i] is the next file of
 * i's group; tail is scratch. */
static void link_groups(const dd_set *s, size_t *up, size_t *nx, size_t *tail) {
  for (size_t i = 0; i < s->n; i++) {
    nx[i] = tail[i] = SIZE_MAX;
  }
  for (size_t i = 0; i < s->n; i++) {
    size_t root = uf_find(up, i);
    if (tail[root] != SIZE_MAX) nx[tail[root]] = i;
    tail[root] = i;
  }
}

/* Union-find over the pairs; a group's root stays its first file. */
static void join_pairs(size_t n, const dlp_hash_pair *p, size_t n_pairs,
                       size_t *up, size_t *size) {
  for (size_t i = 0; i < n; i++) {
    up[i] = i;
    size[i] = 1;
  }
  for (size_t k = 0; k < n_pairs; k++) {
    size_t x = uf_find(up, p[k].a), y = uf_find(up, p[k].b);
    if (x == y) continue;
    if (x > y) {
      size_t t = x;
      x = y;
      y = t;
    }
    up[y] = x;
    size[x] += size[y];
  }
}

/* Within one set: pairs, groups (connected components), keepers. */
static int find_within(dlp_ctx *ctx, const dd_cfg *c, dd_set *s, dd_result *r) {
  dlp_file_hash *h = s->h;
  if (c->remove_blank) { /* blanks are removed, not grouped */
    h = malloc((s->n ? s->n : 1) * sizeof *h);
    if (!h) return cli_fail("out of memory");
    memcpy(h, s->h, s->n * sizeof *h);
    for (size_t i = 0; i < s->n; i++)
      if (h[i].flat) h[i].status = DLP_ERR_ARG;
  }
  dlp_hash_pair *p = NULL;
  int rc = dlp_hash_pairs(ctx, h, s->n, &c->cmp, &p, &r->n_pairs);
  if (h != s->h) free(h);
  if (rc != DLP_OK) return cli_lib_error(ctx);
  size_t n = s->n ? s->n : 1;
  size_t *up = malloc(5 * n * sizeof *up);
  unsigned char *done = calloc(n, 1);
  if (!up || !done) {
    free(p);
    free(up);
    free(done);
    return cli_fail("out of memory");
  }
  size_t *size = up + n, *keep = size + n, *nx = keep + n, *tail = nx + n;
  join_pairs(s->n, p, r->n_pairs, up, size);
  free(p);
  choose_keepers(c, s, up, keep);
  link_groups(s, up, nx, tail);
  group_rows(c, s, up, size, keep, nx, done, r);
  for (size_t i = 0; c->remove_blank && i < s->n; i++)
    blank_row(s, i, r);
  free(up);
  free(done);
  return CLI_EXIT_OK;
}

/* Against a second set: each file of IN and its nearest match. */
static int find_against(dlp_ctx *ctx, const dd_cfg *c, dd_set *s,
                        const dd_set *ref, dd_result *r) {
  dlp_hash_match *m = malloc((s->n ? s->n : 1) * sizeof *m);
  int64_t *gid = calloc(ref->n ? ref->n : 1, sizeof *gid);
  if (!m || !gid) {
    free(m);
    free(gid);
    return cli_fail("out of memory");
  }
  int rc = dlp_hash_nearest(ctx, ref->h, ref->n, s->h, s->n, &c->cmp, m);
  for (size_t i = 0; rc == DLP_OK && i < s->n; i++) {
    if (m[i].ref == SIZE_MAX) {
      if (c->remove_blank) blank_row(s, i, r);
      continue;
    }
    if (!gid[m[i].ref]) gid[m[i].ref] = (int64_t)++r->n_groups;
    r->rows[r->n++] = (dd_row){.file = i,
                               .match = ref->paths[m[i].ref],
                               .m = m[i],
                               .group = gid[m[i].ref]};
    r->remove[i] = 1;
    r->n_pairs++;
  }
  free(m);
  free(gid);
  return rc == DLP_OK ? CLI_EXIT_OK : cli_lib_error(ctx);
}

/* ---- output ------------------------------------------------------------- */

static const char *how_name(const dd_row *w) {
  static const char *names[4] = {"direct", "mirrored", "trimmed",
                                 "trimmed-mirrored"};
  if (w->blank) return "blank";
  if (!w->match) return NULL;
  if (w->m.same_bytes) return "same-bytes";
  return names[w->m.trimmed * 2 + w->m.mirrored];
}

enum { COL_PATH, COL_MATCH, COL_DIST, COL_HOW, COL_GROUP, COL_KEEP, NCOL };

static int add_columns(dlp_ctx *ctx, dlp_frame *f) {
  static const char *names[NCOL] = {"path", "match_path", "distance",
                                    "how",  "group",      "keep"};
  static const dlp_type types[NCOL] = {DLP_TYPE_STRING, DLP_TYPE_STRING,
                                       DLP_TYPE_INT64,  DLP_TYPE_STRING,
                                       DLP_TYPE_INT64,  DLP_TYPE_INT64};
  for (int c = 0; c < NCOL; c++)
    if (dlp_frame_add_column(ctx, f, names[c], types[c], 0) != DLP_OK)
      return -1;
  return 0;
}

static int add_row(dlp_ctx *ctx, dlp_frame *f, const dd_set *s,
                   const dd_row *w) {
  size_t r;
  const char *how = how_name(w);
  if (dlp_frame_add_row(ctx, f, &r) != DLP_OK ||
      dlp_frame_set_string(ctx, f, COL_PATH, r, s->paths[w->file]) != DLP_OK ||
      dlp_frame_set_int64(ctx, f, COL_KEEP, r, w->keep) != DLP_OK ||
      (how && dlp_frame_set_string(ctx, f, COL_HOW, r, how) != DLP_OK) ||
      (w->group &&
       dlp_frame_set_int64(ctx, f, COL_GROUP, r, w->group) != DLP_OK))
    return -1;
  if (!w->match) return 0;
  if (dlp_frame_set_string(ctx, f, COL_MATCH, r, w->match) != DLP_OK ||
      dlp_frame_set_int64(ctx, f, COL_DIST, r, w->m.distance) != DLP_OK)
    return -1;
  return 0;
}

static int write_table(const cli_args *a, dlp_ctx *ctx, const dd_set *s,
                       const dd_result *r) {
  dlp_frame *f = NULL;
  int ok = dlp_frame_new(ctx, &f) == DLP_OK && add_columns(ctx, f) == 0;
  for (size_t i = 0; ok && i < r->n; i++)
    ok = add_row(ctx, f, s, &r->rows[i]) == 0;
  dlp_io_opts io;
  dlp_io_opts_init(&io);
  io.table = cli_str(a, "table");
  io.overwrite = cli_flag(a, "overwrite");
  ok = ok && dlp_frame_write(ctx, f, cli_str(a, "out"), &io) == DLP_OK;
  dlp_frame_free(f);
  return ok ? CLI_EXIT_OK : cli_lib_error(ctx);
}

/* Writes the readable files of s whose remove flag equals want, to a
 * temporary name renamed into place (or to stdout for "-"). */
static int write_list(const cli_args *a, const char *path, const dd_set *s,
                      const dd_result *r, int want) {
  int to_stdout = strcmp(path, "-") == 0;
  struct stat st;
  if (!to_stdout && !cli_flag(a, "overwrite") && lstat(path, &st) == 0)
    return cli_fail("%s exists (use --overwrite to replace it)", path);
  size_t len = strlen(path) + 16;
  char *tmp = malloc(len);
  if (!tmp) return cli_fail("out of memory");
  snprintf(tmp, len, "%s.tmp%ld", path, (long)getpid());
  FILE *fp = to_stdout ? stdout : fopen(tmp, "w");
  if (!fp) {
    free(tmp);
    return cli_fail("cannot write %s", path);
  }
  for (size_t i = 0; i < s->n; i++)
    if (s->h[i].status == DLP_OK && r->remove[i] == want)
      fprintf(fp, "%s\n", s->paths[i]);
  int bad = ferror(fp);
  if (!to_stdout) {
    bad |= fclose(fp) != 0;
    bad = bad || rename(tmp, path) != 0;
    if (bad) unlink(tmp);
  }
  free(tmp);
  return bad ? cli_fail("cannot write %s", path) : CLI_EXIT_OK;
}

/* The rows as a text table on stdout (when no other output was asked). */
static int print_rows(const dd_set *s, const dd_result *r) {
  static const char *names[] = {"group", "keep", "distance",
                                "how",   "path", "match_path"};
  static const int flags[] = {CLI_COL_RIGHT,    CLI_COL_RIGHT,
                              CLI_COL_RIGHT,    0,
                              CLI_COL_CUT_LEFT, CLI_COL_CUT_LEFT};
  cli_table t;
  int ok = cli_table_init_cols(&t, 6, names, flags) == 0;
  for (size_t i = 0; ok && i < r->n; i++) {
    const dd_row *w = &r->rows[i];
    char g[24] = "", d[16] = "";
    if (w->group) snprintf(g, sizeof g, "%lld", (long long)w->group);
    if (w->match) snprintf(d, sizeof d, "%d", w->m.distance);
    const char *how = how_name(w);
    const char *row[6] = {g,
                          w->keep ? "yes" : "no",
                          d,
                          how ? how : "",
                          s->paths[w->file],
                          w->match ? w->match : ""};
    ok = cli_table_row(&t, row) == 0;
  }
  if (ok && r->n) cli_table_print(&t, stdout, 60);
  cli_table_free(&t);
  if (!ok) return cli_fail("out of memory");
  if (!r->n) printf("no near-duplicates\n");
  return CLI_EXIT_OK;
}

/* ---- summary ------------------------------------------------------------ */

static size_t n_hashed(const dd_set *s) {
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++)
    n += s->h[i].status == DLP_OK;
  return n;
}

static size_t n_removed(const dd_set *s, const dd_result *r) {
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++)
    n += s->h[i].status == DLP_OK && r->remove[i];
  return n;
}

static void variants_text(const dlp_hash_cmp *c, char *buf, size_t n) {
  snprintf(buf, n, "%s%s%s", c->mirror ? "mirror" : "",
           c->mirror && c->trim ? "," : "", c->trim ? "trim" : "");
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

static void json_set(const char *key, const dd_set *s) {
  printf("\"%s\": {\"path\": ", key);
  json_string(s->name);
  printf(", \"hashed\": %zu, \"unreadable\": %zu, \"links_skipped\": %zu, "
         "\"uniform\": %zu}",
         n_hashed(s), s->n_bad, s->n_links, s->n_flat);
}

static void print_json(const dd_cfg *c, const dd_set *s, const dd_set *ref,
                       const dd_result *r, double secs) {
  char var[32];
  variants_text(&c->cmp, var, sizeof var);
  size_t rm = n_removed(s, r);
  printf("{\"mode\": \"%s\", ", ref ? "against" : "within");
  json_set("in", s);
  if (ref) {
    printf(", ");
    json_set("against", ref);
  }
  printf(", \"hash\": \"%s\", \"variants\": \"%s\", \"threshold\": %d, "
         "\"pairs\": %zu, \"groups\": %zu, \"remove\": %zu, \"keep\": %zu, "
         "\"seconds\": %.3f}\n",
         c->cmp.kind == DLP_HASH_DHASH ? "dhash" : "phash", var,
         c->cmp.threshold, r->n_pairs, r->n_groups, rm, n_hashed(s) - rm, secs);
}

static void print_summary(const cli_args *a, const dd_cfg *c, const dd_set *s,
                          const dd_set *ref, const dd_result *r, double secs) {
  char var[32];
  variants_text(&c->cmp, var, sizeof var);
  size_t rm = n_removed(s, r);
  fprintf(stderr, "dedup: hashed %zu files of %s", n_hashed(s), s->name);
  if (ref) fprintf(stderr, " and %zu of %s", n_hashed(ref), ref->name);
  fprintf(stderr,
          " in %.1f s (%zu unreadable, %zu links skipped; %zu "
          "uniform)\n",
          secs, s->n_bad + (ref ? ref->n_bad : 0),
          s->n_links + (ref ? ref->n_links : 0), s->n_flat);
  fprintf(stderr,
          "dedup: within %d bits (%s%s%s): %zu %s, %zu groups; %zu "
          "files to remove, %zu to keep",
          c->cmp.threshold, c->cmp.kind == DLP_HASH_DHASH ? "dHash" : "pHash",
          *var ? " + " : "", var, r->n_pairs,
          ref ? "files match the second set" : "pairs", r->n_groups, rm,
          n_hashed(s) - rm);
  if (cli_str(a, "out")) fprintf(stderr, " -> %s", cli_str(a, "out"));
  fputc('\n', stderr);
}

/* ---- the command -------------------------------------------------------- */

static int find(dlp_ctx *ctx, int quiet, const dd_cfg *c, dd_set *s,
                const dd_set *ref, dd_result *r) {
  r->rows = calloc(s->n ? s->n : 1, sizeof *r->rows);
  r->remove = calloc(s->n ? s->n : 1, 1);
  if (!r->rows || !r->remove) return cli_fail("out of memory");
  cli_progress prog;
  cli_progress_start(&prog, ctx, ref ? "matching" : "comparing", quiet);
  int rc = ref ? find_against(ctx, c, s, ref, r) : find_within(ctx, c, s, r);
  cli_progress_end(&prog, ctx);
  return rc;
}

static int write_outputs(const cli_args *a, dlp_ctx *ctx, const dd_set *s,
                         const dd_result *r) {
  int rc = CLI_EXIT_OK;
  if (cli_str(a, "out")) rc = write_table(a, ctx, s, r);
  if (rc == CLI_EXIT_OK && cli_str(a, "list-remove"))
    rc = write_list(a, cli_str(a, "list-remove"), s, r, 1);
  if (rc == CLI_EXIT_OK && cli_str(a, "list-keep"))
    rc = write_list(a, cli_str(a, "list-keep"), s, r, 0);
  if (rc == CLI_EXIT_OK && !cli_str(a, "out") && !cli_str(a, "list-remove") &&
      !cli_str(a, "list-keep") && !cli_flag(a, "json"))
    rc = print_rows(s, r);
  return rc;
}

static int run(const cli_args *a, dlp_ctx *ctx, const dd_cfg *c, dd_set *s,
               dd_set *ref) {
  double t0 = cli_now();
  int rc = set_read(a, ctx, a->pos[0], s);
  if (rc == CLI_EXIT_OK && c->against) rc = set_read(a, ctx, c->against, ref);
  if (rc == CLI_EXIT_OK) rc = set_hash(a, ctx, s);
  if (rc == CLI_EXIT_OK && c->against) rc = set_hash(a, ctx, ref);
  dd_result r = {0};
  if (rc == CLI_EXIT_OK)
    rc = find(ctx, cli_flag(a, "quiet"), c, s, c->against ? ref : NULL, &r);
  if (rc == CLI_EXIT_OK) rc = write_outputs(a, ctx, s, &r);
  double secs = cli_now() - t0;
  if (rc == CLI_EXIT_OK && cli_flag(a, "json"))
    print_json(c, s, c->against ? ref : NULL, &r, secs);
  else if (rc == CLI_EXIT_OK && !cli_flag(a, "quiet"))
    print_summary(a, c, s, c->against ? ref : NULL, &r, secs);
  result_free(&r);
  return rc;
}

int cli_cmd_dedup(const cli_args *a) {
  dd_cfg c;
  int rc = parse_cfg(a, &c);
  if (rc != CLI_PARSED) return rc;
  if (cli_given(a, "max-pixels") && cli_u64(a, "max-pixels") == 0)
    return cli_usage_error(a->cmd, "invalid value '0' for '--max-pixels': "
                                   "expected a whole number >= 1");
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  dd_set s, ref;
  memset(&ref, 0, sizeof ref);
  rc = run(a, ctx, &c, &s, &ref);
  set_free(&s);
  set_free(&ref);
  dlp_ctx_free(ctx);
  return rc;
}
