/* util.c - checked allocation, whole-file I/O, seeded RNG and hashing. */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

bool dlp_mul_size(size_t a, size_t b, size_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}

void *dlp_malloc_array(size_t n, size_t size) {
  size_t total;
  if (!dlp_mul_size(n, size, &total)) return NULL;
  return malloc(total ? total : 1);
}

void *dlp_calloc_array(size_t n, size_t size) {
  size_t total;
  if (!dlp_mul_size(n, size, &total)) return NULL;
  return calloc(total ? n : 1, total ? size : 1);
}

void *dlp_realloc_array(void *p, size_t n, size_t size) {
  size_t total;
  if (!dlp_mul_size(n, size, &total)) return NULL;
  return realloc(p, total ? total : 1);
}

char *dlp_strdup(const char *s) { return s ? strdup(s) : NULL; }

int dlp_read_file_into(dlp_err *e, const char *path, uint64_t max_bytes,
                       uint8_t **buf, size_t *cap, size_t *len) {
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int en = errno;
    return dlp_err_set(e, en == ENOENT ? DLP_ERR_NOT_FOUND : DLP_ERR_IO,
                       "cannot open: %s", strerror(en));
  }
  struct stat st;
  int rc = DLP_OK;
  if (fstat(fd, &st) != 0)
    rc = dlp_err_set(e, DLP_ERR_IO, "cannot stat: %s", strerror(errno));
  else if (S_ISDIR(st.st_mode))
    rc = dlp_err_set(e, DLP_ERR_IO, "is a directory");
  else if (!S_ISREG(st.st_mode))
    rc = dlp_err_set(e, DLP_ERR_IO, "not a regular file");
  else if ((uint64_t)st.st_size > max_bytes)
    rc = dlp_err_set(e, DLP_ERR_TOO_LARGE,
                     "file is %lld bytes, over the limit of %llu",
                     (long long)st.st_size, (unsigned long long)max_bytes);
  size_t want = rc == DLP_OK ? (size_t)st.st_size : 0;
  if (rc == DLP_OK && (!*buf || *cap < want)) {
    uint8_t *p = realloc(*buf, want ? want : 1);
    if (!p)
      rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory for %zu bytes", want);
    else {
      *buf = p;
      *cap = want ? want : 1;
    }
  }
  size_t got = 0;
  while (rc == DLP_OK && got < want) {
    ssize_t r = read(fd, *buf + got, want - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      rc = dlp_err_set(e, DLP_ERR_IO, "read failed: %s", strerror(errno));
    if (r <= 0) break; /* 0: the file shrank while reading; keep what we got */
    got += (size_t)r;
  }
  close(fd);
  *len = got;
  return rc;
}

int dlp_read_file(dlp_err *e, const char *path, uint64_t max_bytes,
                  uint8_t **data, size_t *len) {
  uint8_t *buf = NULL;
  size_t cap = 0;
  int rc = dlp_read_file_into(e, path, max_bytes, &buf, &cap, len);
  if (rc != DLP_OK) {
    free(buf);
    buf = NULL;
    *len = 0;
  }
  *data = buf;
  return rc;
}

int dlp_write_file_atomic(dlp_err *e, const char *path, const void *data,
                          size_t len) {
  char tmp[4096];
  int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof tmp)
    return dlp_err_set(e, DLP_ERR_ARG, "path too long: %s", path);
  FILE *fp = fopen(tmp, "wb");
  if (!fp)
    return dlp_err_set(e, DLP_ERR_IO, "cannot create %s: %s", tmp,
                       strerror(errno));
  bool ok = fwrite(data, 1, len, fp) == len;
  ok = (fclose(fp) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    int en = errno;
    unlink(tmp);
    return dlp_err_set(e, DLP_ERR_IO, "cannot write %s: %s", path,
                       strerror(en));
  }
  return DLP_OK;
}

void dlp_rng_seed(dlp_rng *r, uint64_t seed) { r->s = seed; }

uint64_t dlp_rng_next(dlp_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double dlp_rng_uniform(dlp_rng *r) {
  return (double)(dlp_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t dlp_rng_below(dlp_rng *r, uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do
    x = dlp_rng_next(r);
  while (x >= limit);
  return x % n;
}

void dlp_rng_shuffle(dlp_rng *r, void *a, size_t n, size_t size) {
  unsigned char *b = a;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)dlp_rng_below(r, i);
    unsigned char *x = b + (i - 1) * size, *y = b + j * size;
    for (size_t k = 0; k < size; k++) {
      unsigned char t = x[k];
      x[k] = y[k];
      y[k] = t;
    }
  }
}

void dlp_shuffle(void *a, size_t n, size_t size, uint64_t seed) {
  dlp_rng r;
  dlp_rng_seed(&r, seed);
  dlp_rng_shuffle(&r, a, n, size);
}

uint64_t dlp_hash64(const void *data, size_t len, uint64_t seed) {
  const uint8_t *p = data;
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  dlp_rng r = {h};
  return dlp_rng_next(&r);
}

double dlp_hash_uniform(const void *data, size_t len, uint64_t seed) {
  return (double)(dlp_hash64(data, len, seed) >> 11) * 0x1.0p-53;
}

int dlp_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

double dlp_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool dlp_ends_with_ci(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcasecmp(s + a - b, suffix) == 0;
}
