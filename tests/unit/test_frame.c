/* test_frame.c - frames: building, types, nulls, getters, and the row
 * operations (head, take, shuffle, random_split, sample, union,
 * drop_invalid). */
#include "dlp.h"
#include "test.h"

#include <stdint.h>

static dlp_ctx *ctx;

/* A frame of n rows: id int64 = row, name string "r<row>", x double
 * row/2, v vector[2] = {row, -row}, every 5th name null. */
static dlp_frame *make(size_t n) {
  dlp_frame *f = NULL;
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "id", DLP_TYPE_INT64, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "name", DLP_TYPE_STRING, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "x", DLP_TYPE_DOUBLE, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "v", DLP_TYPE_VECTOR, 2));
  for (size_t r = 0; r < n; r++) {
    size_t row;
    char name[32];
    float v[2] = {(float)r, -(float)r};
    snprintf(name, sizeof name, "r%zu", r);
    CHECK_OK(ctx, dlp_frame_add_row(ctx, f, &row));
    CHECK_EQ_INT(row, r);
    CHECK_OK(ctx, dlp_frame_set_int64(ctx, f, 0, row, (int64_t)r));
    if (r % 5) CHECK_OK(ctx, dlp_frame_set_string(ctx, f, 1, row, name));
    CHECK_OK(ctx, dlp_frame_set_double(ctx, f, 2, row, (double)r / 2));
    CHECK_OK(ctx, dlp_frame_set_vector(ctx, f, 3, row, v));
  }
  return f;
}

static int64_t id_at(const dlp_frame *f, size_t row) {
  int64_t v = -1;
  CHECK(dlp_frame_get_int64(f, 0, row, &v));
  return v;
}

TEST(build_and_read_back) {
  dlp_frame *f = make(40); /* more than one capacity doubling */
  CHECK_EQ_INT(dlp_frame_nrows(f), 40);
  CHECK_EQ_INT(dlp_frame_ncols(f), 4);
  CHECK_STR(dlp_frame_col_name(f, 1), "name");
  CHECK(dlp_frame_col_type(f, 3) == DLP_TYPE_VECTOR);
  CHECK_EQ_INT(dlp_frame_col_dim(f, 3), 2);
  CHECK_EQ_INT(dlp_frame_col_dim(f, 0), 0);
  CHECK_EQ_INT(dlp_frame_col_index(f, "x"), 2);
  CHECK_EQ_INT(dlp_frame_col_index(f, "nope"), -1);
  CHECK(dlp_frame_col_name(f, 9) == NULL);
  const char *s;
  CHECK(dlp_frame_get_string(f, 1, 37, &s));
  CHECK_STR(s, "r37");
  CHECK(!dlp_frame_get_string(f, 1, 35, &s)); /* null */
  CHECK(dlp_frame_is_null(f, 1, 35));
  CHECK(!dlp_frame_is_null(f, 1, 36));
  double d;
  CHECK(dlp_frame_get_double(f, 2, 39, &d));
  CHECK_NEAR(d, 19.5, 0);
  const float *v;
  CHECK(dlp_frame_get_vector(f, 3, 39, &v));
  CHECK_NEAR(v[0], 39, 0);
  CHECK_NEAR(v[1], -39, 0);
  CHECK_EQ_INT(id_at(f, 17), 17);
  dlp_frame_free(f);
}

TEST(type_names) {
  CHECK_STR(dlp_type_name(DLP_TYPE_STRING), "string");
  CHECK_STR(dlp_type_name(DLP_TYPE_INT64), "int64");
  CHECK_STR(dlp_type_name(DLP_TYPE_DOUBLE), "double");
  CHECK_STR(dlp_type_name(DLP_TYPE_VECTOR), "vector");
  CHECK_STR(dlp_type_name(DLP_TYPE_IMAGE), "image");
}

TEST(wrong_types_and_ranges) {
  dlp_frame *f = make(3);
  int64_t i;
  double d;
  const char *s;
  CHECK(!dlp_frame_get_int64(f, 2, 0, &i));  /* double column */
  CHECK(!dlp_frame_get_double(f, 0, 0, &d)); /* int column */
  CHECK(!dlp_frame_get_string(f, 0, 1, &s));
  CHECK(!dlp_frame_get_int64(f, 0, 3, &i)); /* row out of range */
  CHECK(!dlp_frame_get_int64(f, 7, 0, &i)); /* col out of range */
  dlp_image_meta m;
  CHECK(!dlp_frame_get_image_meta(f, 0, 0, &m));
  CHECK_EQ_INT(dlp_frame_set_string(ctx, f, 0, 0, "x"), DLP_ERR_SCHEMA);
  CHECK_EQ_INT(dlp_frame_set_double(ctx, f, 0, 0, 1), DLP_ERR_SCHEMA);
  CHECK(strstr(dlp_errmsg(ctx), "'id'") != NULL);
  CHECK_EQ_INT(dlp_frame_set_int64(ctx, f, 0, 3, 1), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_frame_add_column(ctx, f, "id", DLP_TYPE_STRING, 0),
               DLP_ERR_SCHEMA);
  CHECK_EQ_INT(dlp_frame_add_column(ctx, f, "w", DLP_TYPE_VECTOR, 0),
               DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_frame_add_column(ctx, f, "", DLP_TYPE_STRING, 0),
               DLP_ERR_ARG);
  /* The failed calls changed nothing. */
  CHECK_EQ_INT(id_at(f, 0), 0);
  CHECK_EQ_INT(dlp_frame_ncols(f), 4);
  /* set_null frees and nulls; a later column starts all-null. */
  CHECK_OK(ctx, dlp_frame_set_null(ctx, f, 1, 1));
  CHECK(dlp_frame_is_null(f, 1, 1));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "late", DLP_TYPE_STRING, 0));
  CHECK(dlp_frame_is_null(f, 4, 2));
  CHECK_OK(ctx, dlp_frame_set_string(ctx, f, 4, 2, "ok"));
  CHECK(dlp_frame_get_string(f, 4, 2, &s));
  CHECK_STR(s, "ok");
  dlp_frame_free(f);
  dlp_frame_free(NULL);
}

TEST(image_cells) {
  dlp_frame *f = NULL;
  CHECK_OK(ctx, dlp_frame_new(ctx, &f));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, f, "image", DLP_TYPE_IMAGE, 0));
  size_t r;
  CHECK_OK(ctx, dlp_frame_add_row(ctx, f, &r));
  CHECK_OK(ctx, dlp_frame_add_row(ctx, f, &r));
  CHECK_OK(ctx, dlp_frame_add_row(ctx, f, &r));
  uint8_t bytes[3] = {1, 2, 3};
  dlp_image_meta in = {"a.png", 4, 5, 3, DLP_MODE_8UC3, NULL, bytes, 3};
  CHECK_OK(ctx, dlp_frame_set_image_meta(ctx, f, 0, 0, &in));
  dlp_image_meta bad = {"b.jpg", -1, -1, -1, -1, "truncated", NULL, 0};
  CHECK_OK(ctx, dlp_frame_set_image_meta(ctx, f, 0, 1, &bad));
  bytes[0] = 9; /* the cell holds its own copy */
  dlp_image_meta m;
  CHECK(dlp_frame_get_image_meta(f, 0, 0, &m));
  CHECK_STR(m.origin, "a.png");
  CHECK_EQ_INT(m.height, 4);
  CHECK_EQ_INT(m.width, 5);
  CHECK(m.error == NULL);
  CHECK_EQ_INT(m.n_bytes, 3);
  CHECK_EQ_INT(m.bytes[0], 1);
  CHECK(!dlp_frame_get_image_meta(f, 0, 2, &m)); /* null */
  CHECK_EQ_INT(dlp_frame_count_errors(f, 0), 1);
  dlp_image *img = NULL;
  CHECK_EQ_INT(dlp_frame_get_image(ctx, f, 0, 1, NULL, &img), DLP_ERR_CORRUPT);
  CHECK(strstr(dlp_errmsg(ctx), "b.jpg") &&
        strstr(dlp_errmsg(ctx), "truncated"));
  CHECK(img == NULL);
  dlp_frame *ok = NULL;
  CHECK_OK(ctx, dlp_frame_drop_invalid(ctx, f, 0, &ok));
  CHECK_EQ_INT(dlp_frame_nrows(ok), 2); /* null rows are not errors */
  CHECK_EQ_INT(dlp_frame_count_errors(ok, 0), 0);
  dlp_frame_free(ok);
  CHECK_EQ_INT(dlp_frame_drop_invalid(ctx, f, 3, &ok), DLP_ERR_ARG);
  dlp_frame_free(f);
}

TEST(head_and_take) {
  dlp_frame *f = make(10), *h = NULL, *t = NULL;
  CHECK_OK(ctx, dlp_frame_head(ctx, f, 3, &h));
  CHECK_EQ_INT(dlp_frame_nrows(h), 3);
  CHECK_EQ_INT(id_at(h, 2), 2);
  dlp_frame_free(h);
  CHECK_OK(ctx, dlp_frame_head(ctx, f, 100, &h));
  CHECK_EQ_INT(dlp_frame_nrows(h), 10);
  size_t idx[4] = {9, 0, 9, 5};
  CHECK_OK(ctx, dlp_frame_take(ctx, f, idx, 4, &t));
  CHECK_EQ_INT(dlp_frame_nrows(t), 4);
  CHECK_EQ_INT(id_at(t, 0), 9);
  CHECK_EQ_INT(id_at(t, 2), 9);
  CHECK(dlp_frame_is_null(t, 1, 1)); /* row 0 had a null name */
  CHECK(dlp_frame_is_null(t, 1, 3)); /* row 5 too */
  const char *s;
  CHECK(dlp_frame_get_string(t, 1, 0, &s));
  CHECK_STR(s, "r9");
  /* Deep copies: freeing the source leaves the copy intact. */
  dlp_frame_free(f);
  CHECK(dlp_frame_get_string(t, 1, 2, &s));
  CHECK_STR(s, "r9");
  dlp_frame_free(t);
  size_t bad[1] = {10};
  CHECK_EQ_INT(dlp_frame_take(ctx, h, bad, 1, &t), DLP_ERR_ARG);
  CHECK(t == NULL);
  dlp_frame_free(h);
}

/* Rows of f as their ids, in order; also checks it is a permutation. */
static int is_permutation(const dlp_frame *f, size_t n) {
  int seen[256] = {0};
  if (dlp_frame_nrows(f) != n) return 0;
  for (size_t r = 0; r < n; r++) {
    int64_t v = id_at(f, r);
    if (v < 0 || v >= (int64_t)n || seen[v]++) return 0;
  }
  return 1;
}

TEST(shuffle_is_seeded) {
  dlp_frame *f = make(100), *a = NULL, *b = NULL, *c = NULL;
  CHECK_OK(ctx, dlp_frame_shuffle(ctx, f, 7, &a));
  CHECK_OK(ctx, dlp_frame_shuffle(ctx, f, 7, &b));
  CHECK_OK(ctx, dlp_frame_shuffle(ctx, f, 8, &c));
  CHECK(is_permutation(a, 100) && is_permutation(c, 100));
  int same_ab = 1, same_ac = 1, moved = 0;
  for (size_t r = 0; r < 100; r++) {
    same_ab &= id_at(a, r) == id_at(b, r);
    same_ac &= id_at(a, r) == id_at(c, r);
    moved += id_at(a, r) != (int64_t)r;
  }
  CHECK(same_ab);
  CHECK(!same_ac);
  CHECK(moved > 50);
  /* Cells travel with their rows. */
  for (size_t r = 0; r < 100; r++) {
    const float *v;
    CHECK(dlp_frame_get_vector(a, 3, r, &v));
    CHECK_NEAR(v[0], (double)id_at(a, r), 0);
  }
  dlp_frame_free(a);
  dlp_frame_free(b);
  dlp_frame_free(c);
  dlp_frame_free(f);
}

TEST(random_split_exact) {
  dlp_frame *f = make(10), *p[3] = {0}, *q[3] = {0};
  double w[2] = {0.8, 0.2};
  CHECK_OK(ctx, dlp_frame_random_split(ctx, f, w, 2, 1, p));
  CHECK_EQ_INT(dlp_frame_nrows(p[0]), 8);
  CHECK_EQ_INT(dlp_frame_nrows(p[1]), 2);
  dlp_frame_free(p[0]);
  dlp_frame_free(p[1]);
  dlp_frame_free(f);

  f = make(101);
  double w3[3] = {1, 1, 1}; /* 33.67 each: largest remainder gives 34,34,33 */
  CHECK_OK(ctx, dlp_frame_random_split(ctx, f, w3, 3, 5, p));
  CHECK_OK(ctx, dlp_frame_random_split(ctx, f, w3, 3, 5, q));
  CHECK_EQ_INT(dlp_frame_nrows(p[0]), 34);
  CHECK_EQ_INT(dlp_frame_nrows(p[1]), 34);
  CHECK_EQ_INT(dlp_frame_nrows(p[2]), 33);
  int count[101] = {0};
  for (int k = 0; k < 3; k++)
    for (size_t r = 0; r < dlp_frame_nrows(p[k]); r++) {
      int64_t id = id_at(p[k], r);
      CHECK(id >= 0 && id < 101);
      if (id >= 0 && id < 101) count[id]++;
      if (r) CHECK(id_at(p[k], r - 1) < id); /* original order kept */
      CHECK_EQ_INT(id_at(q[k], r), id);      /* same seed, same parts */
    }
  for (int i = 0; i < 101; i++)
    CHECK_EQ_INT(count[i], 1); /* disjoint, complete */
  for (int k = 0; k < 3; k++) {
    dlp_frame_free(p[k]);
    dlp_frame_free(q[k]);
  }
  double bad[2] = {-1, 2}, zero[2] = {0, 0};
  CHECK_EQ_INT(dlp_frame_random_split(ctx, f, bad, 2, 1, p), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_frame_random_split(ctx, f, zero, 2, 1, p), DLP_ERR_ARG);
  CHECK_EQ_INT(dlp_frame_random_split(ctx, f, w, 0, 1, p), DLP_ERR_ARG);
  CHECK(p[0] == NULL);
  dlp_frame_free(f);
}

TEST(sample_ratio) {
  dlp_frame *f = make(2000), *a = NULL, *b = NULL, *all = NULL, *none = NULL;
  CHECK_OK(ctx, dlp_frame_sample(ctx, f, 0.3, 11, &a));
  CHECK_OK(ctx, dlp_frame_sample(ctx, f, 0.3, 11, &b));
  size_t n = dlp_frame_nrows(a);
  /* Binomial(2000, 0.3): mean 600, sd ~20.5; 5 sd either side. */
  CHECK(n > 497 && n < 703);
  CHECK_EQ_INT(dlp_frame_nrows(b), n);
  for (size_t r = 0; r < n && r < dlp_frame_nrows(b); r++)
    CHECK_EQ_INT(id_at(a, r), id_at(b, r));
  CHECK_OK(ctx, dlp_frame_sample(ctx, f, 1.0, 3, &all));
  CHECK_OK(ctx, dlp_frame_sample(ctx, f, 0.0, 3, &none));
  CHECK_EQ_INT(dlp_frame_nrows(all), 2000);
  CHECK_EQ_INT(dlp_frame_nrows(none), 0);
  CHECK_EQ_INT(dlp_frame_ncols(none), 4);
  dlp_frame *x = NULL;
  CHECK_EQ_INT(dlp_frame_sample(ctx, f, 1.5, 3, &x), DLP_ERR_ARG);
  dlp_frame_free(a);
  dlp_frame_free(b);
  dlp_frame_free(all);
  dlp_frame_free(none);
  dlp_frame_free(f);
}

TEST(union_schema) {
  dlp_frame *a = make(3), *b = NULL, *u = NULL;
  /* b: the same columns in another order. */
  CHECK_OK(ctx, dlp_frame_new(ctx, &b));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, b, "v", DLP_TYPE_VECTOR, 2));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, b, "x", DLP_TYPE_DOUBLE, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, b, "name", DLP_TYPE_STRING, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, b, "id", DLP_TYPE_INT64, 0));
  size_t r;
  CHECK_OK(ctx, dlp_frame_add_row(ctx, b, &r));
  CHECK_OK(ctx, dlp_frame_set_int64(ctx, b, 3, r, 77));
  CHECK_OK(ctx, dlp_frame_set_string(ctx, b, 2, r, "seventy-seven"));
  CHECK_OK(ctx, dlp_frame_union(ctx, a, b, &u));
  CHECK_EQ_INT(dlp_frame_nrows(u), 4);
  CHECK_STR(dlp_frame_col_name(u, 0), "id"); /* a's order */
  CHECK_EQ_INT(id_at(u, 3), 77);
  const char *s;
  CHECK(dlp_frame_get_string(u, 1, 3, &s));
  CHECK_STR(s, "seventy-seven");
  CHECK(dlp_frame_is_null(u, 3, 3));
  dlp_frame_free(u);
  /* A type mismatch and a missing column are schema errors. */
  dlp_frame *c = NULL;
  CHECK_OK(ctx, dlp_frame_new(ctx, &c));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, c, "id", DLP_TYPE_STRING, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, c, "name", DLP_TYPE_STRING, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, c, "x", DLP_TYPE_DOUBLE, 0));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, c, "v", DLP_TYPE_VECTOR, 2));
  CHECK_EQ_INT(dlp_frame_union(ctx, a, c, &u), DLP_ERR_SCHEMA);
  CHECK(strstr(dlp_errmsg(ctx), "'id'") != NULL);
  CHECK(u == NULL);
  dlp_frame_free(c);
  CHECK_OK(ctx, dlp_frame_new(ctx, &c));
  CHECK_OK(ctx, dlp_frame_add_column(ctx, c, "id", DLP_TYPE_INT64, 0));
  CHECK_EQ_INT(dlp_frame_union(ctx, a, c, &u), DLP_ERR_SCHEMA);
  dlp_frame_free(c);
  dlp_frame_free(a);
  dlp_frame_free(b);
}

int main(void) {
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  RUN(build_and_read_back);
  RUN(type_names);
  RUN(wrong_types_and_ranges);
  RUN(image_cells);
  RUN(head_and_take);
  RUN(shuffle_is_seeded);
  RUN(random_split_exact);
  RUN(sample_ratio);
  RUN(union_schema);
  dlp_ctx_free(ctx);
  return test_summary();
}
