/* pool.c - parallel-for over indices on short-lived pthreads, and progress.
 *
 * Threads are created per call: the work units here (decoding a file) cost
 * milliseconds, so thread start-up (~20 us) is noise, and nothing lingers
 * between calls (no global state to shut down).
 */
#include "core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

typedef struct pool_job {
  size_t n;
  atomic_size_t next;
  atomic_size_t done;
  atomic_bool cancel;
  dlp_task_fn fn;
  void *user;
} pool_job;

typedef struct pool_arg {
  pool_job *job;
  int worker;
} pool_arg;

static void *pool_worker(void *p) {
  pool_arg *a = p;
  pool_job *j = a->job;
  for (;;) {
    if (atomic_load(&j->cancel)) break;
    size_t i = atomic_fetch_add(&j->next, 1);
    if (i >= j->n) break;
    j->fn(i, j->user, a->worker);
    atomic_fetch_add(&j->done, 1);
  }
  return NULL;
}

bool dlp_parallel_for(size_t n, int threads, dlp_task_fn fn, void *user,
                      dlp_ctx *pctx, const char *what) {
  if (n == 0) return true;
  if (threads < 1) threads = 1;
  if ((size_t)threads > n) threads = (int)n;
  pool_job job = {.n = n, .fn = fn, .user = user};
  atomic_init(&job.next, 0);
  atomic_init(&job.done, 0);
  atomic_init(&job.cancel, false);
  bool want_progress = pctx && pctx->progress;

  /* With progress wanted, the calling thread only watches, and `threads`
   * helpers do the work; otherwise the caller is one of the workers. */
  int spawn = want_progress ? threads : threads - 1;
  pthread_t *tid = calloc((size_t)spawn + 1, sizeof *tid);
  pool_arg *args = calloc((size_t)threads + 1, sizeof *args);
  int started = 0;
  if (tid && args) {
    for (int t = 0; t < spawn; t++) {
      args[t].job = &job;
      args[t].worker = t;
      if (pthread_create(&tid[t], NULL, pool_worker, &args[t]) != 0) break;
      started++;
    }
  }
  if (want_progress && started > 0) {
    struct timespec nap = {0, 20 * 1000 * 1000};
    while (atomic_load(&job.done) < n) {
      if (dlp_progress(pctx, what, atomic_load(&job.done), n, false)) {
        atomic_store(&job.cancel, true);
        break;
      }
      nanosleep(&nap, NULL);
    }
  } else {
    pool_arg self = {&job, started};
    pool_worker(&self); /* also covers the case where no thread started */
  }
  for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
  free(tid);
  free(args);
  if (atomic_load(&job.cancel)) return false;
  if (want_progress) dlp_progress(pctx, what, n, n, true);
  return true;
}

int dlp_progress(dlp_ctx *ctx, const char *what, uint64_t done, uint64_t total,
                 bool force) {
  if (!ctx || !ctx->progress) return 0;
  double now = dlp_now();
  if (!force && now - ctx->progress_last < 0.2) return 0;
  ctx->progress_last = now;
  return ctx->progress(ctx->progress_user, what, done, total);
}
