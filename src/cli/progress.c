/* progress.c - a one-line progress display on stderr, drawn only when
 * stderr is a terminal, fed by the library's progress callback. */
#include "cli.h"

#include <time.h>
#include <unistd.h>

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void format_eta(double seconds, char *buf, size_t n) {
  if (seconds < 0 || seconds > 1e7)
    snprintf(buf, n, "?");
  else if (seconds < 60)
    snprintf(buf, n, "%.0fs", seconds);
  else if (seconds < 3600)
    snprintf(buf, n, "%dm%02ds", (int)seconds / 60, (int)seconds % 60);
  else
    snprintf(buf, n, "%dh%02dm", (int)seconds / 3600, (int)seconds / 60 % 60);
}

/* "reading images  1234/5000  24%  410 img/s  eta 9s", redrawn in place;
 * without a label (the ML commands), the library's step and its count:
 * "fitting LogisticRegression  2/4". Never cancels (returns 0). */
static int draw(void *user, const char *what, uint64_t done, uint64_t total) {
  cli_progress *p = user;
  double elapsed = cli_now() - p->start;
  double rate = elapsed > 0 ? (double)done / elapsed : 0;
  const char *label = p->label ? p->label : what;
  if (!p->label && total > 0) { /* steps named by the library, not images */
    fprintf(stderr, "\r\033[K%s  %llu/%llu", what ? what : "",
            (unsigned long long)done, (unsigned long long)total);
  } else if (total > 0) {
    char eta[32];
    format_eta(rate > 0 ? (double)(total - (done < total ? done : total)) / rate
                        : -1,
               eta, sizeof eta);
    fprintf(stderr, "\r\033[K%s  %llu/%llu  %d%%  %.0f img/s  eta %s", label,
            (unsigned long long)done, (unsigned long long)total,
            (int)(100.0 * (double)done / (double)total), rate, eta);
  } else {
    fprintf(stderr, "\r\033[K%s (%s)  %llu", label, what ? what : "",
            (unsigned long long)done);
  }
  fflush(stderr);
  p->drawn = 1;
  return 0;
}

void cli_progress_start(cli_progress *p, dlp_ctx *ctx, const char *label,
                        int quiet) {
  p->label = label;
  p->start = cli_now();
  p->drawn = 0;
  if (!quiet && isatty(STDERR_FILENO)) dlp_ctx_set_progress(ctx, draw, p);
}

void cli_progress_end(cli_progress *p, dlp_ctx *ctx) {
  dlp_ctx_set_progress(ctx, NULL, NULL);
  if (p->drawn) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = 0;
  }
}
