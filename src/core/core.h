/* core.h - internals shared by every layer: the context, error reporting,
 * allocation helpers, file reading, a seeded RNG, a thread pool, progress.
 *
 * Error reporting inside the library: a function that can fail takes a
 * dlp_ctx* (or, inside worker threads, a dlp_err*), and on failure calls
 * dlp_fail(ctx, code, fmt, ...) which stores the message and returns code:
 *
 *     if (!buf) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for %zu bytes", n);
 *
 * Worker threads must not touch the caller's context: they fill a dlp_err
 * of their own and the caller copies it back with dlp_fail_from().
 */
#ifndef DLP_CORE_H
#define DLP_CORE_H

#include "dlp.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DLP_ERRMSG_MAX 512

/* An error value for code that runs without a context (worker threads). */
typedef struct dlp_err {
  int code;
  char msg[DLP_ERRMSG_MAX];
} dlp_err;

struct dlp_ctx {
  dlp_err err;
  int threads;
  uint64_t max_pixels;
  uint64_t max_file_bytes;
  dlp_progress_fn progress;
  void *progress_user;
  double progress_last; /* dlp_now() of the last progress call */
};

/* Records an error on ctx (which may be NULL) and returns code. */
int dlp_fail(dlp_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same for a dlp_err (which may be NULL). */
int dlp_err_set(dlp_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int dlp_err_vset(dlp_err *e, int code, const char *fmt, va_list ap);
/* Copies e into ctx and returns e->code. */
int dlp_fail_from(dlp_ctx *ctx, const dlp_err *e);
/* Marks the last call on ctx as successful and returns DLP_OK. */
int dlp_ok(dlp_ctx *ctx);
/* Prefixes the current message of ctx with "prefix: ". Returns its code. */
int dlp_fail_prefix(dlp_ctx *ctx, const char *prefix);

/* Limits a worker sees, copied from the context before work starts. */
typedef struct dlp_limits {
  uint64_t max_pixels;
  uint64_t max_file_bytes;
} dlp_limits;
dlp_limits dlp_ctx_limits(const dlp_ctx *ctx);

/* Allocation: checked size arithmetic. Return NULL on overflow or failure. */
void *dlp_malloc_array(size_t n, size_t size);
void *dlp_calloc_array(size_t n, size_t size);
void *dlp_realloc_array(void *p, size_t n, size_t size);
char *dlp_strdup(const char *s); /* NULL in, NULL out */
/* a*b*c with overflow check; returns false on overflow. */
bool dlp_mul_size(size_t a, size_t b, size_t *out);

/* Reads a whole file into a malloc'd buffer. Refuses files over max_bytes
 * (DLP_ERR_TOO_LARGE), reports missing files as DLP_ERR_NOT_FOUND, other
 * failures as DLP_ERR_IO, with strerror in the message (the caller adds
 * the path, which it knows how to shorten or quote). */
int dlp_read_file(dlp_err *e, const char *path, uint64_t max_bytes,
                  uint8_t **data, size_t *len);
/* The same into a reusable buffer: *buf (may be NULL) of *cap bytes is
 * grown when the file is larger; it stays the caller's on failure too. */
int dlp_read_file_into(dlp_err *e, const char *path, uint64_t max_bytes,
                       uint8_t **buf, size_t *cap, size_t *len);

/* Writes a file atomically: to "path.tmp.<pid>", then rename(). */
int dlp_write_file_atomic(dlp_err *e, const char *path, const void *data,
                          size_t len);

/* splitmix64: a tiny, well-studied seeded generator (deterministic across
 * platforms). */
typedef struct dlp_rng {
  uint64_t s;
} dlp_rng;
void dlp_rng_seed(dlp_rng *r, uint64_t seed);
uint64_t dlp_rng_next(dlp_rng *r);
double dlp_rng_uniform(dlp_rng *r);          /* [0, 1) */
uint64_t dlp_rng_below(dlp_rng *r, uint64_t n); /* [0, n), unbiased */
/* Fisher-Yates over n elements of `size` bytes each, drawing from r: the
 * same generator state gives the same permutation whatever the element
 * type. dlp_shuffle does it with a generator seeded with seed. */
void dlp_rng_shuffle(dlp_rng *r, void *a, size_t n, size_t size);
void dlp_shuffle(void *a, size_t n, size_t size, uint64_t seed);
/* A 64-bit hash of bytes mixed with a seed (FNV-1a then splitmix finaliser). */
uint64_t dlp_hash64(const void *data, size_t len, uint64_t seed);
/* The same hash mapped to [0, 1). */
double dlp_hash_uniform(const void *data, size_t len, uint64_t seed);

/* Thread pool: runs fn(i, user, worker) for i in [0, n) on `threads`
 * threads (the calling thread included), handing out indices in order.
 * Blocks until all are done. progress (may be NULL) is polled on the calling
 * thread; if it returns nonzero, remaining indices are skipped and the call
 * returns false. worker is in [0, threads). */
typedef void (*dlp_task_fn)(size_t i, void *user, int worker);
bool dlp_parallel_for(size_t n, int threads, dlp_task_fn fn, void *user,
                      dlp_ctx *progress_ctx, const char *what);

/* Number of online CPUs (at least 1). */
int dlp_cpu_count(void);

/* Calls the context's progress callback, rate-limited to ~5 per second
 * unless force. Returns nonzero when the caller should cancel. */
int dlp_progress(dlp_ctx *ctx, const char *what, uint64_t done, uint64_t total,
                 bool force);

/* Monotonic seconds. */
double dlp_now(void);

/* Case-insensitive ASCII compare helpers. */
bool dlp_ends_with_ci(const char *s, const char *suffix);

#endif /* DLP_CORE_H */
