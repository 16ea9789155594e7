/* test_io.c - sinks and sources: a frame with every column type, nulls,
 * awkward strings, vectors and image cells round-trips through SQLite,
 * JSON Lines, CSV and .npy; corrupt inputs fail with clear errors. */
#include "dlp.h"
#include "test.h"

#include <sqlite3.h>
#include <stdint.h>
#include <unistd.h>

static dlp_ctx *ctx;
static char dir[256];

static const char *const strs[] = {"plain",
                                   "",
                                   "with,comma",
                                   "quote\"s \"\"",
                                   "new\nline\r\nand cr",
                                   "ünïcødé ☃ 日本",
                                   "123",
                                   "[1,2]",
                                   "  spaces  "};
#define NROWS 10 /* rows 0..8 use strs; row 9 is all nulls */

static char *tmp(const char *name) {
  static char buf[4][512];
  static int k;
  char *b = buf[k++ % 4];
  snprintf(b, sizeof buf[0], "%s/%s", dir, name);
  return b;
}

static void put_row(dlp_frame *f, size_t r) {
  int64_t ints[] = {INT64_MAX, INT64_MIN, 0, -5, 9007199254740993LL,
                    1,         2,         3, 4};
  double dbls[] = {0.1, 1e300, -2.0, 3.0, 1.0 / 3, -1e-300, 5e-324, 42, 0};
  float vec[3] = {(float)r * 0.1f, 3.4e38f, -1e-38f};
  CHECK_OK(ctx, dlp_frame_set_string(ctx, f, 0, r, strs[r]));
  if (r != 3) CHECK_OK(ctx, dlp_frame_set_int64(ctx, f, 1, r, ints[r]));
  if (r != 4) CHECK_OK(ctx, dlp_frame_set_double(ctx, f, 2, r, dbls[r]));
  if (r != 5) CHECK_OK(ctx, dlp_frame_set_vector(ctx, f, 3, r, vec));
  static const uint8_t bytes[5] = {0x89, 0, 'P', '\n', 0xff};
  dlp_image_meta m = {"dir/a,b \"q\".png", 2,    3,    3,
                      DLP_MODE_8UC3,       NULL, NULL, 0};
  if (r % 3 == 1)
    m = (dlp_image_meta){
        "x/bad.jpg", -1, -1, -1, -1, "truncated: premature end", NULL, 0};
  if (r % 3 == 2) m.bytes = bytes, m.n_bytes = sizeof bytes;
  if (r != 6) CHECK_OK(ctx, dlp_frame_set_image_meta(ctx, f, 4, r, &m));
}

static dlp_frame *make_all(void) {
  dlp_frame *f = NULL;
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx,
           dlp_frame_add_column(ctx, f, "s \"str\", col", DLP_TYPE_STRING, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "i", DLP_TYPE_INT64, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "d", DLP_TYPE_DOUBLE, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "v", DLP_TYPE_VECTOR, 3));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "img", DLP_TYPE_IMAGE, 0));
  for (size_t r = 0; r < NROWS; r++) {
    CHECK_OK(ctx, dlp_frame_add_row(ctx, f, NULL));
    if (r < NROWS - 1) put_row(f, r);
  }
  return f;
}

static int str_eq(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Cell-by-cell equality; with_bytes = 0 ignores embedded image bytes. */
static int cell_eq(const dlp_frame *a, const dlp_frame *b, size_t c, size_t r,
                   int with_bytes) {
  if (dlp_frame_is_null(a, c, r) != dlp_frame_is_null(b, c, r)) return 0;
  if (dlp_frame_is_null(a, c, r)) return 1;
  const char *s, *t;
  int64_t i, j;
  double x, y;
  const float *v, *w;
  dlp_image_meta m, n;
  switch (dlp_frame_col_type(a, c)) {
  case DLP_TYPE_STRING:
    return dlp_frame_get_string(a, c, r, &s) &&
           dlp_frame_get_string(b, c, r, &t) && str_eq(s, t);
  case DLP_TYPE_INT64:
    return dlp_frame_get_int64(a, c, r, &i) &&
           dlp_frame_get_int64(b, c, r, &j) && i == j;
  case DLP_TYPE_DOUBLE:
    return dlp_frame_get_double(a, c, r, &x) &&
           dlp_frame_get_double(b, c, r, &y) && memcmp(&x, &y, sizeof x) == 0;
  case DLP_TYPE_VECTOR:
    return dlp_frame_get_vector(a, c, r, &v) &&
           dlp_frame_get_vector(b, c, r, &w) &&
           memcmp(v, w, dlp_frame_col_dim(a, c) * sizeof *v) == 0;
  case DLP_TYPE_IMAGE:
    if (!dlp_frame_get_image_meta(a, c, r, &m) ||
        !dlp_frame_get_image_meta(b, c, r, &n))
      return 0;
    if (!str_eq(m.origin, n.origin) || !str_eq(m.error, n.error) ||
        m.height != n.height || m.width != n.width ||
        m.n_channels != n.n_channels || m.mode != n.mode)
      return 0;
    if (!with_bytes) return n.bytes == NULL;
    return m.n_bytes == n.n_bytes &&
           (m.n_bytes == 0 || memcmp(m.bytes, n.bytes, m.n_bytes) == 0);
  }
  return 0;
}

static void check_same(const dlp_frame *a, const dlp_frame *b, int with_bytes,
                       const char *what) {
  CHECK(b != NULL);
  if (!b) return;
  CHECK_EQ_INT(dlp_frame_ncols(b), dlp_frame_ncols(a));
  CHECK_EQ_INT(dlp_frame_nrows(b), dlp_frame_nrows(a));
  for (size_t c = 0; c < dlp_frame_ncols(a) && c < dlp_frame_ncols(b); c++) {
    CHECK_STR(dlp_frame_col_name(b, c), dlp_frame_col_name(a, c));
    CHECK(dlp_frame_col_type(b, c) == dlp_frame_col_type(a, c));
    CHECK_EQ_INT(dlp_frame_col_dim(b, c), dlp_frame_col_dim(a, c));
    for (size_t r = 0; r < dlp_frame_nrows(a) && r < dlp_frame_nrows(b); r++)
      if (!cell_eq(a, b, c, r, with_bytes)) {
        fprintf(stderr, "%s: cell (%zu, %zu) differs\n", what, c, r);
        CHECK(0);
      }
  }
}

static void round_trip(const char *name, int with_bytes) {
  dlp_frame *f = make_all(), *g = NULL;
  const char *p = tmp(name);
  CHECK_OK(ctx, dlp_frame_write(ctx, f, p, NULL));
  CHECK_OK(ctx, dlp_frame_read(ctx, p, NULL, &g));
  check_same(f, g, with_bytes, name);
  /* A second write without overwrite is refused, with overwrite works. */
  CHECK_EQ_INT(dlp_frame_write(ctx, f, p, NULL), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "overwrite") != NULL);
  dlp_io_opts o;
  dlp_io_opts_init(&o);
  o.overwrite = 1;
  CHECK_OK(ctx, dlp_frame_write(ctx, f, p, &o));
  dlp_frame_free(g);
  dlp_frame_free(f);
}

TEST(round_trip_sqlite) { round_trip("all.db", 1); }
TEST(round_trip_jsonl) { round_trip("all.jsonl", 1); }
TEST(round_trip_csv) { round_trip("all.csv", 0); }

TEST(round_trip_npy) {
  dlp_frame *f = make_all(), *g = NULL, *h = NULL, *v = NULL;
  dlp_io_opts o;
  dlp_io_opts_init(&o);
  /* Nulls cannot go into .npy. */
  CHECK_EQ_INT(dlp_frame_write(ctx, f, tmp("v.npy"), NULL), DLP_ERR_SCHEMA);
  CHECK(strstr(dlp_errmsg(ctx), "null") != NULL);
  size_t keep[6] = {0, 1, 2, 6, 7, 8}; /* no nulls in i, d, v */
  CHECK_OK(ctx, dlp_frame_take(ctx, f, keep, 6, &g));
  CHECK_OK(ctx, dlp_frame_write(ctx, g, tmp("v.npy"), NULL)); /* the vector */
  o.column = "emb";
  CHECK_OK(ctx, dlp_frame_read(ctx, tmp("v.npy"), &o, &h));
  CHECK_STR(dlp_frame_col_name(h, 0), "emb");
  CHECK_EQ_INT(dlp_frame_col_dim(h, 0), 3);
  CHECK_EQ_INT(dlp_frame_nrows(h), 6);
  for (size_t r = 0; r < 6; r++) {
    const float *a, *b;
    CHECK(dlp_frame_get_vector(g, 3, r, &a) &&
          dlp_frame_get_vector(h, 0, r, &b));
    CHECK(memcmp(a, b, 3 * sizeof *a) == 0);
  }
  o.column = "i"; /* int64 and double columns as 1-D arrays */
  CHECK_OK(ctx, dlp_frame_write(ctx, g, tmp("i.npy"), &o));
  o.column = "d";
  CHECK_OK(ctx, dlp_frame_write(ctx, g, tmp("d.npy"), &o));
  dlp_frame_free(h);
  CHECK_OK(ctx, dlp_frame_read(ctx, tmp("i.npy"), NULL, &h));
  CHECK_OK(ctx, dlp_frame_read(ctx, tmp("d.npy"), NULL, &v));
  CHECK(dlp_frame_col_type(h, 0) == DLP_TYPE_INT64);
  CHECK(dlp_frame_col_type(v, 0) == DLP_TYPE_DOUBLE);
  CHECK_STR(dlp_frame_col_name(h, 0), "features");
  for (size_t r = 0; r < 6; r++) {
    int64_t a, b;
    double x, y;
    CHECK(dlp_frame_get_int64(g, 1, r, &a) &&
          dlp_frame_get_int64(h, 0, r, &b) && a == b);
    CHECK(dlp_frame_get_double(g, 2, r, &x) &&
          dlp_frame_get_double(v, 0, r, &y) && memcmp(&x, &y, 8) == 0);
  }
  o.column = "img";
  CHECK_EQ_INT(dlp_frame_write(ctx, g, tmp("x.npy"), &o), DLP_ERR_SCHEMA);
  CHECK(access(tmp("x.npy"), F_OK) != 0); /* no half file left */
  dlp_frame_free(f);
  dlp_frame_free(g);
  dlp_frame_free(h);
  dlp_frame_free(v);
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  CHECK(fp != NULL);
  if (!fp) return;
  fwrite(data, 1, n, fp);
  fclose(fp);
}

/* Reading path fails with code and a message containing want. */
static void check_fails(const char *path, int code, const char *want) {
  dlp_frame *g = (dlp_frame *)1;
  int rc = dlp_frame_read(ctx, path, NULL, &g);
  CHECK_EQ_INT(rc, code);
  CHECK(g == NULL);
  if (!strstr(dlp_errmsg(ctx), want)) {
    fprintf(stderr, "message '%s' lacks '%s'\n", dlp_errmsg(ctx), want);
    CHECK(0);
  }
}

/* A .npy file: header dict text, then n data bytes. */
static void write_npy(const char *path, const char *dict, size_t n) {
  uint8_t buf[512] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  size_t dl = strlen(dict);
  buf[8] = (uint8_t)dl;
  buf[9] = 0;
  memcpy(buf + 10, dict, dl);
  write_bytes(path, buf, 10 + dl + n);
}

TEST(corrupt_npy) {
  const char *p = tmp("bad.npy");
  write_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
            20);
  check_fails(p, DLP_ERR_CORRUPT, "24"); /* wants 24 bytes, has 20 */
  write_npy(p,
            "{'descr': '<f4', 'fortran_order': False, 'shape': "
            "(4611686018427387904, 4611686018427387904), }\n",
            8);
  check_fails(p, DLP_ERR_CORRUPT, "bad.npy");
  write_npy(p, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n",
            8);
  check_fails(p, DLP_ERR_UNSUPPORTED, ">f4");
  write_npy(p, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }\n",
            8);
  check_fails(p, DLP_ERR_UNSUPPORTED, "fortran");
  write_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2 }\n",
            8);
  check_fails(p, DLP_ERR_CORRUPT, "header");
  uint8_t hdr[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0xff};
  write_bytes(p, hdr, sizeof hdr); /* header length past the end */
  check_fails(p, DLP_ERR_CORRUPT, "past the end");
  write_bytes(p, "hello", 5);
  check_fails(p, DLP_ERR_FORMAT, "magic");
}

TEST(corrupt_jsonl) {
  const char *p = tmp("bad.jsonl");
  const char *t = "{\"a\": 1}\n{\"a\": 2\n";
  write_bytes(p, t, strlen(t));
  check_fails(p, DLP_ERR_CORRUPT, "bad.jsonl:2:");
  t = "{\"a\": 1}\n\n[1, 2]\n";
  write_bytes(p, t, strlen(t));
  check_fails(p, DLP_ERR_CORRUPT, "bad.jsonl:3: not a JSON object");
  t = "{\"a\": [1, 2]}\n{\"a\": [1]}\n";
  write_bytes(p, t, strlen(t));
  check_fails(p, DLP_ERR_SCHEMA, "'a'");
  t = "{\"img\": {\"origin\": \"a\", \"bytes\": \"not base64!\"}}\n";
  write_bytes(p, t, strlen(t));
  check_fails(p, DLP_ERR_CORRUPT, "base64");
}

TEST(jsonl_inference) {
  const char *p = tmp("infer.jsonl");
  const char *t = "{\"n\": 1, \"x\": 1, \"s\": \"a\", \"b\": true}\r\n"
                  "{\"x\": 2.5, \"n\": 9223372036854775807, \"s\": 3}\n"
                  "   \n{\"z\": null}";
  write_bytes(p, t, strlen(t));
  dlp_frame *g = NULL;
  CHECK_OK(ctx, dlp_frame_read(ctx, p, NULL, &g));
  CHECK_EQ_INT(dlp_frame_nrows(g), 3);
  CHECK_EQ_INT(dlp_frame_ncols(g), 5);
  CHECK(dlp_frame_col_type(g, 0) == DLP_TYPE_INT64);
  CHECK(dlp_frame_col_type(g, 1) == DLP_TYPE_DOUBLE);
  CHECK(dlp_frame_col_type(g, 2) == DLP_TYPE_STRING);
  CHECK(dlp_frame_col_type(g, 3) == DLP_TYPE_INT64);
  int64_t n;
  CHECK(dlp_frame_get_int64(g, 0, 1, &n) && n == INT64_MAX);
  const char *s;
  CHECK(dlp_frame_get_string(g, 2, 1, &s));
  CHECK_STR(s, "3");
  CHECK(dlp_frame_is_null(g, 0, 2) && dlp_frame_is_null(g, 4, 0));
  dlp_frame_free(g);
}

TEST(corrupt_csv) {
  const char *p = tmp("bad.csv");
  const char *t = "a,b\n1,\"open\n2,3\n";
  write_bytes(p, t, strlen(t));
  check_fails(p, DLP_ERR_CORRUPT, "bad.csv:2: unterminated");
  t = "a,b\n1,\"x\"y\n";
  write_bytes(p, t, strlen(t));
  check_fails(p, DLP_ERR_CORRUPT, "bad.csv:2:");
  t = "a,b\n1,2\n3\n";
  write_bytes(p, t, strlen(t));
  check_fails(p, DLP_ERR_CORRUPT, "bad.csv:3: 1 fields");
  write_bytes(p, "", 0);
  check_fails(p, DLP_ERR_CORRUPT, "empty");
}

TEST(csv_inference) {
  const char *p = tmp("infer.csv");
  const char *t = "n,x,s,v\n1,1,a,\"[1, 2.5]\"\n-3,2.5e3,7,\"[3,4]\"\n,,,\n";
  write_bytes(p, t, strlen(t));
  dlp_frame *g = NULL;
  CHECK_OK(ctx, dlp_frame_read(ctx, p, NULL, &g));
  CHECK_EQ_INT(dlp_frame_nrows(g), 3);
  CHECK(dlp_frame_col_type(g, 0) == DLP_TYPE_INT64);
  CHECK(dlp_frame_col_type(g, 1) == DLP_TYPE_DOUBLE);
  CHECK(dlp_frame_col_type(g, 2) == DLP_TYPE_STRING);
  CHECK(dlp_frame_col_type(g, 3) == DLP_TYPE_VECTOR);
  CHECK_EQ_INT(dlp_frame_col_dim(g, 3), 2);
  double x;
  CHECK(dlp_frame_get_double(g, 1, 1, &x));
  CHECK_NEAR(x, 2500, 0);
  const float *v = NULL;
  CHECK(dlp_frame_get_vector(g, 3, 0, &v));
  if (v) CHECK_NEAR(v[1], 2.5, 0);
  for (size_t c = 0; c < 4; c++)
    CHECK(dlp_frame_is_null(g, c, 2));
  dlp_frame_free(g);
}

TEST(not_sqlite) {
  const char *p = tmp("notdb.db");
  char junk[4096];
  memset(junk, 'x', sizeof junk);
  write_bytes(p, junk, sizeof junk);
  check_fails(p, DLP_ERR_FORMAT, "notdb.db");
  dlp_frame *f = make_all();
  CHECK_EQ_INT(dlp_frame_write(ctx, f, p, NULL), DLP_ERR_FORMAT);
  check_fails(tmp("missing.db"), DLP_ERR_NOT_FOUND, "missing.db");
  check_fails(tmp("x.unknown"), DLP_ERR_ARG, "extension");
  dlp_frame_free(f);
}

TEST(sqlite_tables) {
  const char *p = tmp("multi.db");
  dlp_frame *f = make_all(), *g = NULL;
  dlp_io_opts o;
  dlp_io_opts_init(&o);
  o.table = "bad name";
  CHECK_EQ_INT(dlp_frame_write(ctx, f, p, &o), DLP_ERR_ARG);
  o.table = "train";
  CHECK_OK(ctx, dlp_frame_write(ctx, f, p, &o));
  CHECK_OK(ctx, dlp_frame_read(ctx, p, NULL, &g)); /* the only dlp table */
  check_same(f, g, 1, "only table");
  dlp_frame_free(g);
  o.table = "test";
  dlp_frame *h = NULL;
  CHECK_OK(ctx, dlp_frame_head(ctx, f, 2, &h));
  CHECK_OK(ctx, dlp_frame_write(ctx, h, p, &o)); /* adds, keeps "train" */
  CHECK_EQ_INT(dlp_frame_write(ctx, h, p, &o), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "table 'test' already exists") != NULL);
  check_fails(p, DLP_ERR_NOT_FOUND, "'frame'"); /* two tables: ambiguous */
  CHECK_OK(ctx, dlp_frame_read(ctx, p, &o, &g));
  check_same(h, g, 1, "test table");
  dlp_frame_free(g);
  o.table = "train";
  CHECK_OK(ctx, dlp_frame_read(ctx, p, &o, &g));
  check_same(f, g, 1, "train table");
  dlp_frame_free(g);
  dlp_frame_free(h);
  dlp_frame_free(f);
}

TEST(sqlite_foreign_table) {
  const char *p = tmp("foreign.db");
  sqlite3 *db;
  CHECK(sqlite3_open(p, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db,
                     "CREATE TABLE t (id INTEGER, name VARCHAR(10), score "
                     "DOUBLE, emb BLOB);"
                     "INSERT INTO t VALUES (1, 'a', 0.5, x'0000803f00000040');"
                     "INSERT INTO t VALUES (2, NULL, NULL, NULL);",
                     NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  dlp_frame *g = NULL;
  check_fails(p, DLP_ERR_NOT_FOUND, "'frame'");
  dlp_io_opts o;
  dlp_io_opts_init(&o);
  o.table = "t";
  CHECK_OK(ctx, dlp_frame_read(ctx, p, &o, &g));
  CHECK_EQ_INT(dlp_frame_nrows(g), 2);
  CHECK(dlp_frame_col_type(g, 0) == DLP_TYPE_INT64);
  CHECK(dlp_frame_col_type(g, 1) == DLP_TYPE_STRING);
  CHECK(dlp_frame_col_type(g, 2) == DLP_TYPE_DOUBLE);
  CHECK(dlp_frame_col_type(g, 3) == DLP_TYPE_VECTOR);
  const float *v;
  CHECK(dlp_frame_get_vector(g, 3, 0, &v));
  CHECK_NEAR(v[0], 1.0, 0); /* 0x3f800000 little-endian */
  CHECK_NEAR(v[1], 2.0, 0);
  CHECK(dlp_frame_is_null(g, 3, 1));
  dlp_frame_free(g);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/dlp_test_io.XXXXXX");
  if (!mkdtemp(dir) || dlp_ctx_new(&ctx) != DLP_OK) return 1;
  RUN(round_trip_sqlite);
  RUN(round_trip_jsonl);
  RUN(round_trip_csv);
  RUN(round_trip_npy);
  RUN(corrupt_npy);
  RUN(corrupt_jsonl);
  RUN(jsonl_inference);
  RUN(corrupt_csv);
  RUN(csv_inference);
  RUN(not_sqlite);
  RUN(sqlite_tables);
  RUN(sqlite_foreign_table);
  dlp_ctx_free(ctx);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary();
}
