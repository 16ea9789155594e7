/* test_phash.c - perceptual hashes: Hamming distance, invariance to size,
 * the mirror hash, uniform images, hashing files (SHA-256 against a known
 * vector, errors per file, thread independence) and nearest matching.
 * (Bit-exactness against PIL + scipy: tests/ref/test_phash_vs_python.py.) */
#include "image/image.h"
#include "test.h"

#include <unistd.h>

/* A smooth w x h RGB picture: a few waves, different for each seed. */
static dlp_image *picture(int32_t w, int32_t h, int seed) {
  dlp_image *img = NULL;
  if (dlp_image_new(NULL, w, h, 3, &img) != DLP_OK) return NULL;
  for (int32_t y = 0; y < h; y++)
    for (int32_t x = 0; x < w; x++)
      for (int k = 0; k < 3; k++) {
        double u = (double)x / w, v = (double)y / h;
        double s = sin(6.0 * u * (1 + seed % 3) + seed) *
                       cos(4.0 * v * (1 + k) + 0.7 * seed) +
                   0.6 * u - 0.3 * v * (seed % 2);
        int val = (int)(128 + 100 * s);
        img->data[((size_t)y * w + x) * 3 + k] = (uint8_t)(val < 0     ? 0
                                                           : val > 255 ? 255
                                                                       : val);
      }
  return img;
}

static dlp_image *mirror(const dlp_image *src) {
  dlp_image *m = NULL;
  if (dlp_image_new(NULL, src->width, src->height, src->n_channels, &m))
    return NULL;
  size_t c = (size_t)src->n_channels, w = (size_t)src->width;
  for (size_t y = 0; y < (size_t)src->height; y++)
    for (size_t x = 0; x < w; x++)
      memcpy(m->data + (y * w + x) * c, src->data + (y * w + (w - 1 - x)) * c,
             c);
  return m;
}

static uint64_t phash(const dlp_image *img) {
  uint64_t h = 0;
  CHECK_OK(NULL, dlp_image_phash(NULL, img, &h));
  return h;
}

TEST(hamming_counts_differing_bits) {
  uint64_t a = 0x0123456789abcdefULL, b = 0xfedcba9876543210ULL;
  int naive = 0;
  for (int i = 0; i < 64; i++)
    naive += ((a >> i) & 1) != ((b >> i) & 1);
  CHECK_EQ_INT(dlp_hamming64(a, b), naive);
  CHECK_EQ_INT(dlp_hamming64(a, a), 0);
  CHECK_EQ_INT(dlp_hamming64(0, ~0ULL), 64);
}

TEST(phash_survives_resizing_and_separates_pictures) {
  int worst_same = 0, best_other = 64;
  for (int s = 0; s < 6; s++) {
    dlp_image *a = picture(160, 120, s), *b = NULL;
    CHECK_OK(NULL, dlp_image_resize(NULL, a, 71, 53, DLP_FILTER_BICUBIC, &b));
    uint64_t ha = phash(a), hb = b ? phash(b) : 0;
    /* 32 of 64 bits set: the median splits the block in halves. */
    CHECK_EQ_INT(__builtin_popcountll(ha), 32);
    int d = dlp_hamming64(ha, hb);
    worst_same = d > worst_same ? d : worst_same;
    for (int t = 0; t < s; t++) {
      dlp_image *o = picture(160, 120, t);
      int dd = dlp_hamming64(ha, phash(o));
      best_other = dd < best_other ? dd : best_other;
      dlp_image_free(o);
    }
    dlp_image_free(a);
    dlp_image_free(b);
  }
  CHECK(worst_same <= 4);
  CHECK(best_other >= 12);
}

TEST(mirror_hash_is_the_hash_of_the_mirrored_image) {
  for (int s = 0; s < 6; s++) {
    dlp_image *a = picture(128 + 32 * (s % 2), 96, s), *m = mirror(a);
    uint64_t hm = 0, hmm = 0;
    CHECK_OK(NULL, dlp_image_phash_mirror(NULL, a, &hm));
    CHECK_OK(NULL, dlp_image_phash_mirror(NULL, m, &hmm));
    /* Exactly equal when the resampling is symmetric (widths that are a
     * multiple of 32); within a few bits otherwise. */
    int d = dlp_hamming64(hm, phash(m));
    CHECK(s % 2 ? d <= 4 : d == 0);
    CHECK(dlp_hamming64(hmm, phash(a)) <= (s % 2 ? 4 : 0));
    dlp_image_free(a);
    dlp_image_free(m);
  }
}

TEST(uniform_images_hash_to_dc_only) {
  dlp_image *img = NULL;
  CHECK_OK(NULL, dlp_image_new(NULL, 33, 17, 1, &img));
  memset(img->data, 200, 33 * 17);
  uint64_t h = 0, d = 1;
  CHECK_OK(NULL, dlp_image_phash(NULL, img, &h));
  CHECK_OK(NULL, dlp_image_dhash(NULL, img, &d));
  CHECK(h == (uint64_t)1 << 63);
  CHECK(d == 0);
  dlp_image_free(img);
}

TEST(gray_and_rgb_of_the_same_luma_agree) {
  dlp_image *rgb = picture(90, 70, 4), *gray = NULL;
  CHECK_OK(NULL, dlp_image_new(NULL, 90, 70, 1, &gray));
  for (size_t i = 0; i < 90 * 70; i++) {
    const uint8_t *p = rgb->data + 3 * i;
    gray->data[i] =
        (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 32768u) >>
                  16);
  }
  uint64_t a = 0, b = 1, c = 0, d = 1;
  CHECK_OK(NULL, dlp_image_dhash(NULL, rgb, &a));
  CHECK_OK(NULL, dlp_image_dhash(NULL, gray, &b));
  CHECK(a == b);
  c = phash(rgb);
  d = phash(gray);
  CHECK(c == d);
  dlp_image_free(rgb);
  dlp_image_free(gray);
}

TEST(files_hash_like_their_images_on_any_thread_count) {
  /* Real PNGs (with alpha) from the demo's package when installed, a file
   * that is not an image, and one that does not exist. */
  enum { N = 5 };
  const char *p[N] = {"/usr/share/tuxpaint/stamps/animals/mammals/badger.png",
                      "/usr/share/tuxpaint/stamps/food/fruit/cartoon/apple.png",
                      "/usr/share/tuxpaint/stamps/animals/mammals/elephant.png",
                      NULL, "/nonexistent/dir/f.png"};
  int have = access(p[0], R_OK) == 0 && access(p[1], R_OK) == 0 &&
             access(p[2], R_OK) == 0;
  if (!have) fprintf(stderr, "note: tuxpaint stamps not installed\n");
  char abc[] = "/tmp/dlp_test_phash_XXXXXX";
  int fd = mkstemp(abc);
  CHECK(fd >= 0 && write(fd, "abc", 3) == 3);
  if (fd >= 0) close(fd);
  p[3] = abc;
  const char *const *paths = have ? p : p + 3;
  size_t n = have ? N : 2, off = have ? 0 : 3;
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  dlp_file_hash one[N], many[N];
  char *msg[N];
  dlp_ctx_set_threads(ctx, 1);
  CHECK_OK(ctx, dlp_hash_files(ctx, paths, n, one, NULL));
  dlp_ctx_set_threads(ctx, 3);
  CHECK_OK(ctx, dlp_hash_files(ctx, paths, n, many, msg));
  CHECK(memcmp(one, many, n * sizeof one[0]) == 0);
  for (size_t i = 0; i + off < 3; i++) { /* as the image read in one call */
    dlp_image *img = NULL;
    CHECK_EQ_INT(one[i].status, DLP_OK);
    CHECK(msg[i] == NULL);
    CHECK_OK(ctx, dlp_image_read(ctx, paths[i], NULL, &img));
    uint64_t d = 0;
    CHECK(img && one[i].phash == phash(img));
    CHECK_OK(ctx, dlp_image_dhash(ctx, img, &d));
    CHECK(d == one[i].dhash);
    dlp_image_free(img);
  }
  dlp_file_hash *bad = one + (3 - off), *missing = one + (4 - off);
  CHECK_EQ_INT(bad->status, DLP_ERR_FORMAT);
  CHECK(msg[3 - off] && strstr(msg[3 - off], abc));
  CHECK_EQ_INT(missing->status, DLP_ERR_NOT_FOUND);
  CHECK(msg[4 - off] && strstr(msg[4 - off], "/nonexistent/dir/f.png"));
  /* SHA-256("abc"), FIPS 180-2 appendix B.1. */
  static const uint8_t want[32] = {
      0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
      0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
      0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
  CHECK(memcmp(bad->sha256, want, 32) == 0);
  for (size_t i = 0; i < n; i++)
    free(msg[i]);
  unlink(abc);
  CHECK_EQ_INT(dlp_hash_files(ctx, NULL, 2, one, NULL), DLP_ERR_ARG);
  dlp_ctx_free(ctx);
}

static dlp_file_hash fh(uint64_t h, uint64_t m, int flat, uint8_t sha) {
  dlp_file_hash f;
  memset(&f, 0, sizeof f);
  f.phash = h;
  f.phash_mirror = m;
  f.phash_trim = h; /* as if the drawing filled its canvas */
  f.phash_trim_mirror = m;
  f.flat = flat;
  memset(f.sha256, sha, sizeof f.sha256);
  return f;
}

TEST(nearest_match_prefers_identical_bytes_then_fewest_bits) {
  dlp_file_hash refs[5] = {
      fh(0xff00ff00ff00ff00ULL, 0, 0, 1), fh(0x0f0f0f0f0f0f0f0fULL, 0, 0, 2),
      fh(0xff00ff00ff00ff03ULL, 0, 0, 3), fh((uint64_t)1 << 63, 0, 1, 4),
      fh(0xaaaaaaaaaaaaaaaaULL, 0, 0, 5)};
  refs[4].status = DLP_ERR_CORRUPT; /* a failed reference is never matched */
  dlp_file_hash q[7] = {
      fh(0xff00ff00ff00ff01ULL, 0x1234, 0, 9), /* 1 bit from refs 0 and 2 */
      fh(0x1234, 0x0f0f0f0f0f0f0f0eULL, 0, 9), /* mirror: 1 bit from 1 */
      fh(0x5555, 0x5555, 0, 3),                /* bytes equal ref 2 */
      fh((uint64_t)1 << 63, 0, 1, 8),          /* flat: no match */
      fh(0xaaaaaaaaaaaaaaaaULL, 0, 0, 7),      /* only the failed ref */
      fh(0, 0, 0, 9),
      fh(0x1111, 0x2222, 0, 9)}; /* trimmed: 2 bits from ref 1 */
  q[5].status = DLP_ERR_IO;
  q[6].phash_trim = 0x0f0f0f0f0f0f0f0cULL;
  dlp_hash_match m[7];
  CHECK_OK(NULL, dlp_hash_match_nearest(NULL, refs, 5, q, 7, m));
  dlp_hash_match m6 = m[6];
  q[6].flat_trim = 1; /* a uniform box: trimmed hashes not compared */
  CHECK_OK(NULL, dlp_hash_match_nearest(NULL, refs, 5, q + 6, 1, m + 6));
  CHECK(!m[6].trimmed && m[6].distance > 2);
  m[6] = m6;
  CHECK(m[0].ref == 0 && m[0].distance == 1 && !m[0].mirrored);
  CHECK(m[1].ref == 1 && m[1].distance == 1 && m[1].mirrored);
  CHECK(m[2].ref == 2 && m[2].distance == 0 && m[2].same_bytes);
  CHECK(m[3].ref == SIZE_MAX && m[3].distance == 65);
  CHECK(m[4].ref != 4 && m[4].distance > 0);
  CHECK(m[5].ref == SIZE_MAX);
  CHECK(m[6].ref == 1 && m[6].distance == 2 && m[6].trimmed && !m[6].mirrored);
  CHECK(!m[0].trimmed && !m[1].trimmed);
  CHECK_EQ_INT(dlp_hash_match_nearest(NULL, NULL, 2, q, 1, m), DLP_ERR_ARG);
  CHECK_OK(NULL, dlp_hash_match_nearest(NULL, refs, 0, q, 1, m));
  CHECK(m[0].ref == SIZE_MAX);
}

TEST(bad_images_are_refused) {
  dlp_ctx *ctx = NULL;
  CHECK_OK(ctx, dlp_ctx_new(&ctx));
  uint64_t h;
  CHECK_EQ_INT(dlp_image_phash(ctx, NULL, &h), DLP_ERR_ARG);
  dlp_image *img = picture(8, 8, 0);
  CHECK_EQ_INT(dlp_image_phash(ctx, img, NULL), DLP_ERR_ARG);
  img->n_channels = 2;
  CHECK_EQ_INT(dlp_image_dhash(ctx, img, &h), DLP_ERR_ARG);
  CHECK(strstr(dlp_errmsg(ctx), "2 channels"));
  img->n_channels = 3;
  dlp_image_free(img);
  dlp_ctx_free(ctx);
}

int main(void) {
  RUN(hamming_counts_differing_bits);
  RUN(phash_survives_resizing_and_separates_pictures);
  RUN(mirror_hash_is_the_hash_of_the_mirrored_image);
  RUN(uniform_images_hash_to_dc_only);
  RUN(gray_and_rgb_of_the_same_luma_agree);
  RUN(files_hash_like_their_images_on_any_thread_count);
  RUN(nearest_match_prefers_identical_bytes_then_fewest_bits);
  RUN(bad_images_are_refused);
  return test_summary();
}
