/* test_npy.c - whole .npy arrays (dlp_npy_load_array / dlp_npy_save_array):
 * every dtype round-trips at 0, 1 and 4 dimensions with the header numpy
 * writes, and files the reader must not misread are refused with the path
 * in the message. */
#include "npy.h"
#include "test.h"

#include <stdint.h>
#include <unistd.h>

static char dir[256];

static char *tmp(const char *name) {
  static char buf[4][512];
  static int k;
  char *b = buf[k++ % 4];
  snprintf(b, sizeof buf[0], "%s/%s", dir, name);
  return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  CHECK(fp != NULL);
  if (!fp) return;
  fwrite(data, 1, n, fp);
  fclose(fp);
}

/* A version 1.0 .npy file: dict text, then n data bytes of 0x01. */
static void write_npy(const char *path, const char *dict, size_t n) {
  uint8_t buf[2048] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  size_t dl = strlen(dict);
  buf[8] = (uint8_t)dl;
  buf[9] = 0;
  memcpy(buf + 10, dict, dl);
  memset(buf + 10 + dl, 1, n);
  write_bytes(path, buf, 10 + dl + n);
}

/* Saves ndim/dims of dtype with item-byte values 0, 1, 2, ... (as bytes
 * varying per value), loads it back and compares. */
static void round_trip(char dtype, size_t item, int ndim, const int64_t *dims) {
  dlp_npy_array a = {.dtype = dtype, .ndim = ndim};
  size_t n = 1;
  for (int i = 0; i < ndim; i++) {
    a.dims[i] = dims[i];
    n *= (size_t)dims[i];
  }
  a.nbytes = n * item;
  a.data = malloc(a.nbytes + 1);
  CHECK(a.data != NULL);
  if (!a.data) return;
  for (size_t i = 0; i < n; i++) {
    float f = (float)i * 0.5f - 3;
    double d = (double)i / 3 - 1e300;
    int64_t q = (int64_t)i * -1000003 + INT64_MAX;
    uint8_t b = (uint8_t)(i * 7);
    const void *v = dtype == 'f'   ? (const void *)&f
                    : dtype == 'd' ? (const void *)&d
                    : dtype == 'q' ? (const void *)&q
                                   : (const void *)&b;
    memcpy((uint8_t *)a.data + i * item, v, item);
  }
  dlp_err e = {0};
  const char *p = tmp("rt.npy");
  CHECK_EQ_INT(dlp_npy_save_array(&e, p, &a), DLP_OK);
  dlp_npy_array b;
  int rc = dlp_npy_load_array(&e, p, 1 << 20, &b);
  CHECK_EQ_INT(rc, DLP_OK);
  if (rc != DLP_OK) fprintf(stderr, "load: %s\n", e.msg);
  CHECK_EQ_INT(b.dtype, dtype);
  CHECK_EQ_INT(b.ndim, ndim);
  for (int i = 0; i < ndim && rc == DLP_OK; i++)
    CHECK_EQ_INT(b.dims[i], dims[i]);
  CHECK_EQ_INT(b.nbytes, a.nbytes);
  CHECK(rc != DLP_OK || b.nbytes != a.nbytes ||
        memcmp(a.data, b.data, a.nbytes) == 0);
  dlp_npy_array_free(&b);
  CHECK(b.data == NULL);
  free(a.data);
}

TEST(npy_array_round_trips_every_dtype) {
  const int64_t d1[] = {5}, d4[] = {2, 3, 1, 4}, e4[] = {2, 0, 3, 1};
  const char dtypes[] = {'f', 'd', 'q', 'B'};
  const size_t items[] = {4, 8, 8, 1};
  for (int k = 0; k < 4; k++) {
    round_trip(dtypes[k], items[k], 0, NULL);
    round_trip(dtypes[k], items[k], 1, d1);
    round_trip(dtypes[k], items[k], 4, d4);
    round_trip(dtypes[k], items[k], 4, e4); /* no data at all */
  }
}

TEST(npy_array_writes_what_numpy_writes) {
  dlp_npy_array a = {.dtype = 'f', .ndim = 1, .dims = {3}};
  float v[3] = {1, 2, 3};
  a.data = v;
  a.nbytes = sizeof v;
  CHECK_EQ_INT(dlp_npy_save_array(NULL, tmp("w.npy"), &a), DLP_OK);
  FILE *fp = fopen(tmp("w.npy"), "rb");
  uint8_t buf[256] = {0};
  size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
  if (fp) fclose(fp);
  CHECK_EQ_INT(n, 128 + sizeof v); /* np.save: data at a multiple of 64 */
  CHECK(memcmp(buf, "\x93NUMPY\x01\x00\x76\x00", 10) == 0);
  const char *dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  CHECK(memcmp(buf + 10, dict, strlen(dict)) == 0);
  CHECK_EQ_INT(buf[127], '\n');
  CHECK_EQ_INT(buf[128 + 4], 0x00); /* 2.0f little-endian: 00 00 00 40 */
  CHECK_EQ_INT(buf[128 + 7], 0x40);
  CHECK(access(tmp("w.npy"), F_OK) == 0);
  /* uint8 is '|u1', 0-d is () */
  uint8_t u = 7;
  dlp_npy_array s = {.dtype = 'B', .ndim = 0, .data = &u, .nbytes = 1};
  CHECK_EQ_INT(dlp_npy_save_array(NULL, tmp("u.npy"), &s), DLP_OK);
  fp = fopen(tmp("u.npy"), "rb");
  n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
  if (fp) fclose(fp);
  CHECK_EQ_INT(n, 129);
  dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (), }";
  CHECK(memcmp(buf + 10, dict, strlen(dict)) == 0);
  CHECK_EQ_INT(buf[127], '\n');
  CHECK_EQ_INT(buf[128], 7);
}

TEST(npy_array_save_refuses_a_size_that_does_not_fit) {
  float v[6] = {0};
  dlp_npy_array a = {.dtype = 'f', .ndim = 2, .dims = {2, 3}, .data = v};
  a.nbytes = 5 * sizeof(float);
  dlp_err e = {0};
  const char *p = tmp("nofit.npy");
  CHECK_EQ_INT(dlp_npy_save_array(&e, p, &a), DLP_ERR_ARG);
  CHECK(strstr(e.msg, "nofit.npy") != NULL);
  CHECK(access(p, F_OK) != 0);
  a.nbytes = sizeof v;
  a.dtype = 'i';
  CHECK_EQ_INT(dlp_npy_save_array(&e, p, &a), DLP_ERR_ARG);
  a.dtype = 'f';
  a.dims[1] = -3;
  CHECK_EQ_INT(dlp_npy_save_array(&e, p, &a), DLP_ERR_ARG);
  CHECK(access(p, F_OK) != 0);
}

/* Loading path fails with code, a message naming the file and containing
 * want, and leaves out empty. */
static void check_refused(const char *path, int code, const char *want) {
  dlp_npy_array a;
  dlp_err e = {0};
  int rc = dlp_npy_load_array(&e, path, 1 << 20, &a);
  CHECK_EQ_INT(rc, code);
  CHECK(a.data == NULL && a.nbytes == 0);
  if (!strstr(e.msg, want) || !strstr(e.msg, "bad.npy")) {
    fprintf(stderr, "message '%s' lacks '%s' or the file\n", e.msg, want);
    CHECK(0);
  }
}

TEST(npy_array_refuses_what_it_cannot_read) {
  const char *p = tmp("bad.npy");
  write_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
            20);
  check_refused(p, DLP_ERR_CORRUPT, "declares 24 data bytes");
  write_npy(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\n",
            0); /* header only */
  check_refused(p, DLP_ERR_CORRUPT, "holds 0");
  write_npy(p,
            "{'descr': '<f4', 'fortran_order': False, 'shape': "
            "(4611686018427387904, 4611686018427387904), }\n",
            8);
  check_refused(p, DLP_ERR_CORRUPT, "too large");
  write_npy(p,
            "{'descr': '<f4', 'fortran_order': False, 'shape': "
            "(0, 9223372036854775808), }\n",
            0);
  check_refused(p, DLP_ERR_CORRUPT, "too large");
  write_npy(p, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n",
            8);
  check_refused(p, DLP_ERR_UNSUPPORTED, "big-endian");
  write_npy(p, "{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }\n",
            8);
  check_refused(p, DLP_ERR_UNSUPPORTED, ">i8");
  write_npy(p, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }\n",
            8);
  check_refused(p, DLP_ERR_UNSUPPORTED, "C-order");
  write_npy(p, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n",
            8);
  check_refused(p, DLP_ERR_UNSUPPORTED, "'<i4'");
  write_npy(p,
            "{'descr': '<f4', 'fortran_order': False, 'shape': "
            "(1, 1, 1, 1, 1, 1, 1, 1, 1), }\n",
            4); /* nine dimensions */
  check_refused(p, DLP_ERR_CORRUPT, "header");
  write_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2 }\n",
            8);
  check_refused(p, DLP_ERR_CORRUPT, "header");
  uint8_t hdr[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0xff};
  write_bytes(p, hdr, sizeof hdr); /* header length past the end */
  check_refused(p, DLP_ERR_CORRUPT, "past the end");
  write_bytes(p, hdr, 7); /* truncated inside the preamble */
  check_refused(p, DLP_ERR_FORMAT, "magic");
  write_bytes(p, "hello", 5);
  check_refused(p, DLP_ERR_FORMAT, "magic");
  check_refused(tmp("missing/bad.npy"), DLP_ERR_NOT_FOUND, "cannot open");
  write_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (300,), }\n",
            1200);
  dlp_npy_array a;
  dlp_err e = {0};
  CHECK_EQ_INT(dlp_npy_load_array(&e, p, 1000, &a), DLP_ERR_TOO_LARGE);
  CHECK(strstr(e.msg, "bad.npy") != NULL);
  dlp_npy_array_free(NULL);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/dlp_test_npy.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  RUN(npy_array_round_trips_every_dtype);
  RUN(npy_array_writes_what_numpy_writes);
  RUN(npy_array_save_refuses_a_size_that_does_not_fit);
  RUN(npy_array_refuses_what_it_cannot_read);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary();
}
