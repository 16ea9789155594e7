/* test_core.c - the context, error messages, RNG, hashing and parallel-for. */
#include "core.h"
#include "test.h"

#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

TEST(version_macros_match_runtime) {
  CHECK_STR(dlp_version(), DLP_VERSION);
  char buf[32];
  snprintf(buf, sizeof buf, "%d.%d.%d", DLP_VERSION_MAJOR, DLP_VERSION_MINOR,
           DLP_VERSION_PATCH);
  CHECK_STR(buf, DLP_VERSION);
}

TEST(context_keeps_last_error_message) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  CHECK_EQ_INT(dlp_errcode(ctx), DLP_OK);
  CHECK_EQ_INT(dlp_fail(ctx, DLP_ERR_IO, "cannot open %s", "x.jpg"), DLP_ERR_IO);
  CHECK_STR(dlp_errmsg(ctx), "cannot open x.jpg");
  CHECK_EQ_INT(dlp_errcode(ctx), DLP_ERR_IO);
  dlp_fail_prefix(ctx, "a/b.png");
  CHECK_STR(dlp_errmsg(ctx), "a/b.png: cannot open x.jpg");
  dlp_ok(ctx);
  CHECK_EQ_INT(dlp_errcode(ctx), DLP_OK);
  CHECK(dlp_errmsg(NULL) != NULL);
  dlp_ctx_free(ctx);
  dlp_ctx_free(NULL);
}

TEST(every_status_has_a_name) {
  for (int rc = DLP_OK; rc <= DLP_ERR_INTERNAL; rc++)
    CHECK(strcmp(dlp_errstr(rc), "unknown status") != 0);
  CHECK_STR(dlp_errstr(999), "unknown status");
}

TEST(context_limits_have_defaults) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  CHECK(dlp_ctx_max_pixels(ctx) == DLP_DEFAULT_MAX_PIXELS);
  dlp_ctx_set_max_pixels(ctx, 100);
  CHECK(dlp_ctx_max_pixels(ctx) == 100);
  dlp_ctx_set_max_pixels(ctx, 0);
  CHECK(dlp_ctx_max_pixels(ctx) == DLP_DEFAULT_MAX_PIXELS);
  CHECK(dlp_ctx_threads(ctx) >= 1);
  dlp_ctx_set_threads(ctx, 3);
  CHECK_EQ_INT(dlp_ctx_threads(ctx), 3);
  dlp_ctx_free(ctx);
}

TEST(rng_is_deterministic_and_uniform) {
  dlp_rng a, b;
  dlp_rng_seed(&a, 42);
  dlp_rng_seed(&b, 42);
  for (int i = 0; i < 100; i++) CHECK(dlp_rng_next(&a) == dlp_rng_next(&b));
  /* mean of 100k uniforms is 0.5 within ~4 standard errors */
  double s = 0;
  for (int i = 0; i < 100000; i++) s += dlp_rng_uniform(&a);
  CHECK_NEAR(s / 100000, 0.5, 4 * 0.2887 / sqrt(100000.0));
  int counts[7] = {0};
  for (int i = 0; i < 70000; i++) counts[dlp_rng_below(&a, 7)]++;
  for (int k = 0; k < 7; k++) CHECK(abs(counts[k] - 10000) < 500);
}

TEST(hash_depends_on_seed_and_bytes) {
  CHECK(dlp_hash64("abc", 3, 1) == dlp_hash64("abc", 3, 1));
  CHECK(dlp_hash64("abc", 3, 1) != dlp_hash64("abc", 3, 2));
  CHECK(dlp_hash64("abc", 3, 1) != dlp_hash64("abd", 3, 1));
  double u = dlp_hash_uniform("x", 1, 0);
  CHECK(u >= 0 && u < 1);
}

static void add_square(size_t i, void *user, int worker) {
  atomic_llong *sum = user;
  (void)worker;
  atomic_fetch_add(sum, (long long)(i * i));
}

TEST(parallel_for_visits_every_index_once) {
  for (int threads = 1; threads <= 4; threads++) {
    atomic_llong sum;
    atomic_init(&sum, 0);
    CHECK(dlp_parallel_for(1000, threads, add_square, &sum, NULL, "x"));
    CHECK(atomic_load(&sum) == 332833500LL);
  }
}

static int cancel_at_once(void *user, const char *what, uint64_t done,
                          uint64_t total) {
  (void)user; (void)what; (void)done; (void)total;
  return 1;
}

static void slow_task(size_t i, void *user, int worker) {
  (void)i; (void)user; (void)worker;
  struct timespec ms = {0, 1000000};
  nanosleep(&ms, NULL);
}

TEST(parallel_for_can_be_cancelled_by_progress) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  dlp_ctx_set_progress(ctx, cancel_at_once, NULL);
  CHECK(!dlp_parallel_for(100000, 2, slow_task, NULL, ctx, "sleeping"));
  dlp_ctx_free(ctx);
}

TEST(read_file_reports_missing_and_too_large) {
  dlp_err e = {0};
  uint8_t *d;
  size_t n;
  CHECK_EQ_INT(dlp_read_file(&e, "/nonexistent/x", 100, &d, &n),
               DLP_ERR_NOT_FOUND);
  CHECK(strstr(e.msg, "No such file") != NULL);
  char path[] = "/tmp/dlp_test_core_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK(write(fd, "hello", 5) == 5);
  close(fd);
  CHECK_EQ_INT(dlp_read_file(&e, path, 4, &d, &n), DLP_ERR_TOO_LARGE);
  CHECK_EQ_INT(dlp_read_file(&e, path, 5, &d, &n), DLP_OK);
  CHECK(n == 5 && memcmp(d, "hello", 5) == 0);
  free(d);
  CHECK_EQ_INT(dlp_read_file(&e, "/tmp", 5, &d, &n), DLP_ERR_IO);
  unlink(path);
}

int main(void) {
  RUN(version_macros_match_runtime);
  RUN(context_keeps_last_error_message);
  RUN(every_status_has_a_name);
  RUN(context_limits_have_defaults);
  RUN(rng_is_deterministic_and_uniform);
  RUN(hash_depends_on_seed_and_bytes);
  RUN(parallel_for_visits_every_index_once);
  RUN(parallel_for_can_be_cancelled_by_progress);
  RUN(read_file_reports_missing_and_too_large);
  return test_summary();
}
