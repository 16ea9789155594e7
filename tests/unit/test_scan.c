/* test_scan.c - dlp_read_images over a folder built here: valid images
 * (tiny files whose bytes are embedded below), broken ones (empty, text,
 * truncated, broken link, unreadable), hidden entries, sub-folders for
 * labels, symlinked folders; plus sampling, filtering and embedding.
 *
 * The image bytes were made once with PIL (/usr/bin/python3):
 *   png = Image.new("RGB", (1, 1), (255, 0, 0)).save(b, "PNG")
 *   g = Image.new("P", (2, 2), 0); g.putpalette([0, 0, 0, 255, 255, 255])
 *   g.putpixel((1, 1), 1); g.save(b, "GIF", optimize=True)
 *   Image.new("RGB", (3, 2), (0, 128, 255)).save(b, "BMP")
 * and printed as C arrays. */
#include "dlp.h"
#include "test.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char png_1x1[69] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d,
    0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00,
    0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
static const unsigned char gif_2x2[45] = {
    0x47, 0x49, 0x46, 0x38, 0x37, 0x61, 0x02, 0x00, 0x02, 0x00, 0x81, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x08,
    0x06, 0x00, 0x01, 0x08, 0x0c, 0x10, 0x10, 0x00, 0x3b};
static const unsigned char bmp_3x2[78] = {
    0x42, 0x4d, 0x4e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x36, 0x00,
    0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00,
    0x00, 0x00, 0xc4, 0x0e, 0x00, 0x00, 0xc4, 0x0e, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x80, 0x00, 0xff, 0x80, 0x00,
    0xff, 0x80, 0x00, 0x00, 0x00, 0x00, 0xff, 0x80, 0x00, 0xff, 0x80, 0x00,
    0xff, 0x80, 0x00, 0x00, 0x00, 0x00};

static dlp_ctx *ctx;
static char top[256];  /* holds root/ and ext/ */
static char root[300]; /* the scanned folder */

static void put(const char *rel, const void *data, size_t n) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", top, rel);
  FILE *fp = fopen(p, "wb");
  CHECK(fp != NULL);
  if (!fp) return;
  fwrite(data, 1, n, fp);
  fclose(fp);
}

static void mk(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", top, rel);
  CHECK(mkdir(p, 0755) == 0);
}

static void link_to(const char *target, const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", top, rel);
  CHECK(symlink(target, p) == 0);
}

static void build_tree(void) {
  mk("root");
  mk("root/cat");
  mk("root/cat/sub");
  mk("root/dog");
  mk("root/.hdir");
  mk("root/loop");
  mk("ext");
  put("root/a.png", png_1x1, sizeof png_1x1);
  put("root/b.gif", gif_2x2, sizeof gif_2x2);
  put("root/c.BMP", bmp_3x2, sizeof bmp_3x2);
  put("root/empty.jpg", "", 0);
  put("root/text.jpg", "hello, not a jpeg\n", 18);
  put("root/trunc.png", png_1x1, 50); /* cut inside IDAT */
  put("root/notes.txt", "notes", 5);
  put("root/locked.png", png_1x1, sizeof png_1x1);
  put("root/.hidden.png", png_1x1, sizeof png_1x1);
  put("root/.hdir/x.png", png_1x1, sizeof png_1x1);
  put("root/cat/x.png", png_1x1, sizeof png_1x1);
  put("root/cat/sub/y.gif", gif_2x2, sizeof gif_2x2);
  put("root/dog/z.bmp", bmp_3x2, sizeof bmp_3x2);
  put("ext/e.png", png_1x1, sizeof png_1x1);
  link_to("nowhere.png", "root/broken.png");
  link_to("../ext", "root/extlink");
  link_to("..", "root/loop/self");
  char p[512];
  snprintf(p, sizeof p, "%s/root/locked.png", top);
  CHECK(chmod(p, 0) == 0);
}

static dlp_frame *scan(const dlp_scan_opts *o) {
  dlp_frame *f = NULL;
  CHECK_OK(ctx, dlp_read_images(ctx, root, o, &f));
  return f;
}

/* The row whose origin ends with "/rel", or -1. */
static long row_of(const dlp_frame *f, const char *rel) {
  char want[512];
  snprintf(want, sizeof want, "%s/%s", root, rel);
  for (size_t r = 0; r < dlp_frame_nrows(f); r++) {
    dlp_image_meta m;
    if (dlp_frame_get_image_meta(f, 0, r, &m) && m.origin &&
        strcmp(m.origin, want) == 0)
      return (long)r;
  }
  return -1;
}

static dlp_image_meta meta(const dlp_frame *f, const char *rel) {
  dlp_image_meta m = {0};
  long r = row_of(f, rel);
  CHECK(r >= 0);
  if (r >= 0) CHECK(dlp_frame_get_image_meta(f, 0, (size_t)r, &m));
  return m;
}

static void check_size(const dlp_frame *f, const char *rel, int w, int h) {
  dlp_image_meta m = meta(f, rel);
  if (m.error) fprintf(stderr, "%s: unexpected error %s\n", rel, m.error);
  CHECK(m.error == NULL);
  CHECK_EQ_INT(m.width, w);
  CHECK_EQ_INT(m.height, h);
}

static void check_error(const dlp_frame *f, const char *rel, const char *want) {
  dlp_image_meta m = meta(f, rel);
  CHECK(m.error != NULL);
  if (m.error && want && !strstr(m.error, want)) {
    fprintf(stderr, "%s: error '%s' lacks '%s'\n", rel, m.error, want);
    CHECK(0);
  }
}

static int as_root(void) { return geteuid() == 0; }

TEST(flat_folder) {
  dlp_frame *f = scan(NULL);
  CHECK_EQ_INT(dlp_frame_ncols(f), 1);
  CHECK_STR(dlp_frame_col_name(f, 0), "image");
  CHECK(dlp_frame_col_type(f, 0) == DLP_TYPE_IMAGE);
  /* a.png b.gif broken.png c.BMP empty.jpg locked.png text.jpg trunc.png */
  CHECK_EQ_INT(dlp_frame_nrows(f), 8);
  const char *order[8] = {"a.png",     "b.gif",      "broken.png", "c.BMP",
                          "empty.jpg", "locked.png", "text.jpg",   "trunc.png"};
  for (int i = 0; i < 8; i++)
    CHECK_EQ_INT(row_of(f, order[i]), i);
  check_size(f, "a.png", 1, 1);
  dlp_image_meta m = meta(f, "a.png");
  CHECK_EQ_INT(m.n_channels, 3);
  CHECK_EQ_INT(m.mode, DLP_MODE_8UC3);
  CHECK(m.bytes == NULL);
  check_size(f, "b.gif", 2, 2);
  check_size(f, "c.BMP", 3, 2);
  check_error(f, "broken.png", "broken symbolic link");
  check_error(f, "empty.jpg", NULL);
  check_error(f, "text.jpg", NULL);
  check_error(f, "trunc.png", NULL);
  if (as_root()) {
    check_size(f, "locked.png", 1, 1);
  } else {
    check_error(f, "locked.png", "Permission denied");
  }
  CHECK_EQ_INT(dlp_frame_count_errors(f, 0), as_root() ? 4 : 5);
  m = meta(f, "empty.jpg");
  CHECK_EQ_INT(m.width, -1);
  dlp_frame_free(f);
}

TEST(labels_from_dirs) {
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  o.labels_from_dirs = 1;
  o.drop_invalid = 1;
  dlp_frame *f = scan(&o);
  CHECK_EQ_INT(dlp_frame_ncols(f), 2);
  CHECK_STR(dlp_frame_col_name(f, 1), "label");
  CHECK(dlp_frame_col_type(f, 1) == DLP_TYPE_STRING);
  /* a, b, c, (locked as root), cat/x, cat/sub/y, dog/z: no hidden, no links */
  CHECK_EQ_INT(dlp_frame_nrows(f), as_root() ? 7 : 6);
  CHECK_EQ_INT(dlp_frame_count_errors(f, 0), 0);
  const char *s;
  long r = row_of(f, "cat/sub/y.gif");
  CHECK(r >= 0 && dlp_frame_get_string(f, 1, (size_t)r, &s));
  if (r >= 0) CHECK_STR(s, "cat");
  r = row_of(f, "dog/z.bmp");
  CHECK(r >= 0 && dlp_frame_get_string(f, 1, (size_t)r, &s));
  if (r >= 0) CHECK_STR(s, "dog");
  r = row_of(f, "a.png");
  CHECK(r >= 0 && dlp_frame_is_null(f, 1, (size_t)r));
  CHECK(row_of(f, "extlink/e.png") < 0);
  CHECK(row_of(f, ".hdir/x.png") < 0);
  check_size(f, "cat/sub/y.gif", 2, 2);
  dlp_frame_free(f);
}

TEST(follow_dir_links) {
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  o.recursive = 1;
  o.follow_dir_links = 1;
  dlp_frame *f = scan(&o); /* loop/self -> root must not loop forever */
  CHECK(row_of(f, "extlink/e.png") >= 0);
  CHECK(row_of(f, "loop/self/a.png") < 0);
  CHECK(row_of(f, "cat/x.png") >= 0);
  dlp_frame_free(f);
}

TEST(sample_is_per_file) {
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  o.recursive = 1;
  o.sample_ratio = 0.5;
  o.seed = 3;
  o.extensions = "*";
  dlp_frame *a = scan(&o), *b = scan(&o);
  o.recursive = 0;
  dlp_frame *flat = scan(&o); /* same relative paths for the root's files */
  CHECK_EQ_INT(dlp_frame_nrows(a), dlp_frame_nrows(b));
  CHECK(dlp_frame_nrows(a) > 0);
  for (size_t r = 0; r < dlp_frame_nrows(flat); r++) {
    dlp_image_meta m;
    CHECK(dlp_frame_get_image_meta(flat, 0, r, &m));
    CHECK(row_of(a, m.origin + strlen(root) + 1) >= 0);
  }
  size_t in_root = 0;
  for (size_t r = 0; r < dlp_frame_nrows(a); r++) {
    dlp_image_meta m, n;
    CHECK(dlp_frame_get_image_meta(a, 0, r, &m));
    CHECK(dlp_frame_get_image_meta(b, 0, r, &n));
    CHECK_STR(m.origin, n.origin);
    in_root += strchr(m.origin + strlen(root) + 1, '/') == NULL;
  }
  CHECK_EQ_INT(in_root, dlp_frame_nrows(flat));
  dlp_frame_free(a);
  dlp_frame_free(b);
  dlp_frame_free(flat);
  o.sample_ratio = 0;
  a = scan(&o);
  CHECK_EQ_INT(dlp_frame_nrows(a), 0);
  dlp_frame_free(a);
  o.sample_ratio = 1.5;
  CHECK_EQ_INT(dlp_read_images(ctx, root, &o, &a), DLP_ERR_ARG);
  CHECK(a == NULL);
}

TEST(extension_filter) {
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  o.extensions = "PNG";
  dlp_frame *f = scan(&o);
  /* a.png broken.png locked.png trunc.png */
  CHECK_EQ_INT(dlp_frame_nrows(f), 4);
  dlp_frame_free(f);
  o.extensions = "gif, bmp";
  f = scan(&o);
  CHECK_EQ_INT(dlp_frame_nrows(f), 2);
  CHECK(row_of(f, "c.BMP") >= 0);
  dlp_frame_free(f);
  o.extensions = "*";
  f = scan(&o);
  CHECK_EQ_INT(dlp_frame_nrows(f), 9);
  check_error(f, "notes.txt", NULL);
  dlp_frame_free(f);
}

TEST(embed_and_decode) {
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  o.embed_bytes = 1;
  o.extensions = "png,bmp";
  dlp_frame *f = scan(&o);
  dlp_image_meta m = meta(f, "a.png");
  CHECK_EQ_INT(m.n_bytes, sizeof png_1x1);
  CHECK(m.bytes && memcmp(m.bytes, png_1x1, sizeof png_1x1) == 0);
  CHECK(meta(f, "trunc.png").bytes == NULL); /* error rows keep no bytes */
  dlp_image *img = NULL;
  long r = row_of(f, "a.png");
  CHECK(r >= 0);
  CHECK_OK(ctx, dlp_frame_get_image(ctx, f, 0, (size_t)r, NULL, &img));
  if (img) {
    CHECK_EQ_INT(img->width, 1);
    CHECK_EQ_INT(img->data[0], 255); /* red */
    CHECK_EQ_INT(img->data[1], 0);
    CHECK(img->origin && strstr(img->origin, "a.png"));
  }
  dlp_image_free(img);
  img = NULL;
  r = row_of(f, "trunc.png");
  CHECK_EQ_INT(dlp_frame_get_image(ctx, f, 0, (size_t)r, NULL, &img),
               DLP_ERR_CORRUPT);
  CHECK(strstr(dlp_errmsg(ctx), "trunc.png") != NULL);
  dlp_frame_free(f);
  /* Without embedding, decoding reads the origin path. */
  o.embed_bytes = 0;
  f = scan(&o);
  r = row_of(f, "c.BMP");
  CHECK_OK(ctx, dlp_frame_get_image(ctx, f, 0, (size_t)r, NULL, &img));
  if (img) CHECK_EQ_INT(img->height, 2);
  dlp_image_free(img);
  dlp_frame_free(f);
}

TEST(verify_off_reads_headers) {
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  o.verify = 0;
  o.extensions = "png";
  dlp_frame *f = scan(&o);
  check_size(f, "a.png", 1, 1);
  /* The header of the truncated PNG is intact (50 of 69 bytes). */
  check_size(f, "trunc.png", 1, 1);
  dlp_frame_free(f);
}

TEST(threads_agree) {
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  o.recursive = 1;
  dlp_ctx_set_threads(ctx, 1);
  dlp_frame *a = scan(&o);
  dlp_ctx_set_threads(ctx, 4);
  dlp_frame *b = scan(&o);
  CHECK_EQ_INT(dlp_frame_nrows(a), dlp_frame_nrows(b));
  for (size_t r = 0; r < dlp_frame_nrows(a) && r < dlp_frame_nrows(b); r++) {
    dlp_image_meta m, n;
    CHECK(dlp_frame_get_image_meta(a, 0, r, &m));
    CHECK(dlp_frame_get_image_meta(b, 0, r, &n));
    CHECK_STR(m.origin, n.origin);
    CHECK_EQ_INT(m.width, n.width);
    CHECK((m.error == NULL) == (n.error == NULL));
  }
  dlp_frame_free(a);
  dlp_frame_free(b);
}

TEST(labels_literal_and_single_file) {
  dlp_scan_opts o;
  dlp_scan_opts_init(&o);
  o.label_literal = "7";
  char p[512];
  snprintf(p, sizeof p, "%s/a.png", root);
  dlp_frame *f = NULL;
  CHECK_OK(ctx, dlp_read_images(ctx, p, &o, &f));
  CHECK_EQ_INT(dlp_frame_nrows(f), 1);
  CHECK(dlp_frame_col_type(f, 1) == DLP_TYPE_INT64);
  int64_t v = 0;
  CHECK(dlp_frame_get_int64(f, 1, 0, &v) && v == 7);
  check_size(f, "a.png", 1, 1);
  dlp_frame_free(f);
  o.label_literal = "7a";
  f = scan(&o);
  CHECK(dlp_frame_col_type(f, 1) == DLP_TYPE_STRING);
  dlp_frame_free(f);
  o.labels_from_dirs = 1;
  CHECK_EQ_INT(dlp_read_images(ctx, root, &o, &f), DLP_ERR_ARG);
}

TEST(bad_root) {
  char p[512];
  dlp_frame *f = NULL;
  snprintf(p, sizeof p, "%s/no_such_dir", top);
  CHECK_EQ_INT(dlp_read_images(ctx, p, NULL, &f), DLP_ERR_NOT_FOUND);
  CHECK(strstr(dlp_errmsg(ctx), "no_such_dir") != NULL);
  CHECK(f == NULL);
  if (!as_root()) {
    snprintf(p, sizeof p, "%s/ext", top);
    CHECK(chmod(p, 0) == 0);
    CHECK_EQ_INT(dlp_read_images(ctx, p, NULL, &f), DLP_ERR_IO);
    CHECK(strstr(dlp_errmsg(ctx), "ext") != NULL);
    CHECK(chmod(p, 0755) == 0);
  }
}

int main(void) {
  snprintf(top, sizeof top, "/tmp/dlp_test_scan.XXXXXX");
  if (!mkdtemp(top) || dlp_ctx_new(&ctx) != DLP_OK) return 1;
  snprintf(root, sizeof root, "%s/root", top);
  build_tree();
  RUN(flat_folder);
  RUN(labels_from_dirs);
  RUN(follow_dir_links);
  RUN(sample_is_per_file);
  RUN(extension_filter);
  RUN(embed_and_decode);
  RUN(verify_off_reads_headers);
  RUN(threads_agree);
  RUN(labels_literal_and_single_file);
  RUN(bad_root);
  dlp_ctx_free(ctx);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'", top, top);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", top);
  return test_summary();
}
