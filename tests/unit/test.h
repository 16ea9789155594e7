/* test.h - a minimal unit-test harness: CHECK macros and a runner that
 * prints "N passed, N failed" and exits nonzero on any failure.
 *
 *     TEST(resize_keeps_channels) { CHECK(1 + 1 == 2); }
 *     int main(void) { RUN(resize_keeps_channels); return test_summary(); }
 */
#ifndef DLP_TEST_H
#define DLP_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_checks_ __attribute__((unused));
static int test_passed_ __attribute__((unused));
static int test_failed_ __attribute__((unused));

#define TEST(name) static void name(void)

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      test_failed_checks_++;                                                   \
    }                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_) {                                                            \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n",        \
              __FILE__, __LINE__, #a, #b, a_, b_);                             \
      test_failed_checks_++;                                                   \
    }                                                                          \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                  \
  do {                                                                         \
    double a_ = (double)(a), b_ = (double)(b);                                 \
    if (!(fabs(a_ - b_) <= (tol))) {                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s ~= %s (%.9g vs %.9g)\n",        \
              __FILE__, __LINE__, #a, #b, a_, b_);                             \
      test_failed_checks_++;                                                   \
    }                                                                          \
  } while (0)

#define CHECK_STR(a, b)                                                        \
  do {                                                                         \
    const char *a_ = (a), *b_ = (b);                                           \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" vs \"%s\")\n",    \
              __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)",                  \
              b_ ? b_ : "(null)");                                             \
      test_failed_checks_++;                                                   \
    }                                                                          \
  } while (0)

/* Asserts a dlp call succeeded, printing the context's message if not. */
#define CHECK_OK(ctx, call)                                                    \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != DLP_OK) {                                                       \
      fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__,       \
              #call, dlp_errstr(rc_), dlp_errmsg(ctx));                        \
      test_failed_checks_++;                                                   \
    }                                                                          \
  } while (0)

#define RUN(name)                                                              \
  do {                                                                         \
    int before_ = test_failed_checks_;                                         \
    name();                                                                    \
    if (test_failed_checks_ == before_) {                                      \
      test_passed_++;                                                          \
    } else {                                                                   \
      test_failed_++;                                                          \
      fprintf(stderr, "FAIL %s\n", #name);                                     \
    }                                                                          \
  } while (0)

static inline int test_summary(void) {
  printf("%d passed, %d failed\n", test_passed_, test_failed_);
  return test_failed_ ? 1 : 0;
}

#endif /* DLP_TEST_H */
