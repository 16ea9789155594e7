/* image.h - the image layer's internal interface: context-free versions of
 * the public dlp_image_* calls, safe to call from worker threads (they report
 * into a dlp_err and read limits from a dlp_limits copy).
 *
 *     dlp_err e = {0};
 *     dlp_limits lim = dlp_ctx_limits(ctx);
 *     dlp_image *img;
 *     if (dlp_img_decode(&e, &lim, buf, len, NULL, &img) != DLP_OK) ...e.msg...
 *
 * Files:
 *   decode.c        format sniffing, probe, dispatch, alpha compositing
 *   decode_jpeg.c   libjpeg-turbo: scaling, CMYK/YCCK, EXIF (libexif)
 *   decode_png.c    libpng
 *   decode_gif.c    giflib, first frame
 *   decode_bmp.c    stb_image (BMP only)
 *   decode_webp.c   libwebp + demux, first frame
 *   orient.c        EXIF orientation transforms
 *   decoders.h      private: per-format decoder interface (dlp_raw,
 *                   dlp_jpeg_pick_scale, dlp_img_orient)
 *   resize.c        antialiased separable resampling (PIL-compatible)
 *   preprocess.c    crop, normalise, layout: image -> float tensor
 *                   and the batch loop over files (dlp_img_batch_files)
 *   augment.c       random resized crop, flip, colour jitter (training)
 *   phash.c         perceptual hashes (pHash, dHash), file hashing, matching
 */
#ifndef DLP_IMAGE_H
#define DLP_IMAGE_H

#include "core.h"

/* Header facts. Fails DLP_ERR_FORMAT / DLP_ERR_CORRUPT. */
int dlp_img_probe(dlp_err *e, const uint8_t *buf, size_t len,
                  dlp_image_info *info);

/* Decodes; opts may be NULL (defaults). Checks lim->max_pixels against the
 * declared size before allocating pixels. */
int dlp_img_decode(dlp_err *e, const dlp_limits *lim, const uint8_t *buf,
                   size_t len, const dlp_decode_opts *opts, dlp_image **out);

/* Buffers a worker reuses from one image to the next, so that a batch does
 * not allocate (and page-fault in) fresh megabytes per file: with glibc,
 * freeing blocks this size trims the heap and the next image faults the
 * pages back in, a quarter of the time of a 1024x768 JPEG. Zero-initialise;
 * release with dlp_img_scratch_release. */
typedef struct dlp_img_scratch {
  uint8_t *file; /* encoded bytes of the last file */
  size_t file_cap;
  uint8_t *pix; /* decoded pixels */
  size_t pix_cap;
} dlp_img_scratch;
void dlp_img_scratch_release(dlp_img_scratch *s);

/* dlp_img_decode into s->pix (grown as needed). *view describes the pixels:
 * its data points into s and stays valid until s is used again; do not
 * free it (origin NULL). */
int dlp_img_decode_scratch(dlp_err *e, const dlp_limits *lim,
                           const uint8_t *buf, size_t len,
                           const dlp_decode_opts *opts, dlp_img_scratch *s,
                           dlp_image *view);

/* Allocates an image (data zeroed, origin NULL). */
int dlp_img_alloc(dlp_err *e, int32_t width, int32_t height, int32_t channels,
                  dlp_image **out);

int dlp_img_resize(dlp_err *e, const dlp_image *src, int32_t width,
                   int32_t height, dlp_filter filter, dlp_image **out);

/* Resamples a w x h view (c = 1, 3 or 4 channels, rows `stride` bytes apart)
 * to out_w x out_h with PIL's arithmetic, calling sink(user, y, row) once per
 * output row in order (row valid during the call only). Channels are
 * resized independently (no alpha premultiplication). */
int dlp_img_resample_rows(
    dlp_err *e, const uint8_t *data, int32_t w, int32_t h, int32_t c,
    size_t stride, int32_t out_w, int32_t out_h, dlp_filter filter,
    void (*sink)(void *user, int32_t y, const uint8_t *row), void *user);

int dlp_img_center_crop(dlp_err *e, const dlp_image *src, int32_t width,
                        int32_t height, double fraction, dlp_image **out);

int dlp_img_to_tensor(dlp_err *e, const dlp_image *img,
                      const dlp_preprocess *p, float *out);

/* Read + decode at reduced scale + preprocess. */
int dlp_img_file_to_tensor(dlp_err *e, const dlp_limits *lim, const char *path,
                           const dlp_preprocess *p, float *out);
/* The same with buffers s lends, reused across calls (s may be NULL): the
 * form for loops over many files. */
int dlp_img_file_to_tensor_s(dlp_err *e, const dlp_limits *lim,
                             const char *path, const dlp_preprocess *p,
                             float *out, dlp_img_scratch *s);

/* One image of a batch: img (file i's pixels, valid during the call only)
 * into out, the slot's floats, reporting into e. Runs on worker threads. */
typedef int (*dlp_img_batch_fn)(dlp_err *e, const dlp_image *img, size_t i,
                                const void *user, float *out);

/* The loop behind the dlp_batch_files_*_to_tensor calls: on the context's
 * threads, each worker reusing one dlp_img_scratch, reads and decodes
 * paths[i] (opts may be NULL: full size) and calls fn into out + i * slot.
 * A failed slot is zeroed, status[i] gets its result and errmsg[i] a
 * malloc'd "path: message" (either array may be NULL); slots a cancellation
 * skipped keep DLP_ERR_ARG. The caller has checked its options, that paths
 * and out are set and that n * slot fits. what labels progress reports.
 * Fails DLP_ERR_NOMEM, or DLP_ERR_ARG when cancelled. */
int dlp_img_batch_files(dlp_ctx *ctx, const char *const *paths, size_t n,
                        size_t slot, const dlp_decode_opts *opts,
                        dlp_img_batch_fn fn, const void *user, const char *what,
                        float *out, int *status, char **errmsg);

/* OpenCV type code for a channel count (1 -> 0, 3 -> 16, 4 -> 24), -1 else. */
int32_t dlp_mode_for_channels(int32_t channels);

/* ---- augmentation and perceptual hashes (augment.c, phash.c) ------------ */

/* dlp_image_augment_to_tensor reporting into e (worker-thread form). */
int dlp_img_augment_to_tensor(dlp_err *e, const dlp_image *img,
                              const dlp_augment *a, uint64_t seed,
                              const dlp_preprocess *p, float *out);

/* The perceptual hashes of img into *out (sha256 untouched), status too. */
int dlp_img_hash_image(dlp_err *e, const dlp_image *img, dlp_file_hash *out);

/* Reads, SHA-256s, decodes (alpha on white) and hashes one file into *out
 * (out->status = the result), with buffers s lends. */
int dlp_img_hash_file(dlp_err *e, const dlp_limits *lim, const char *path,
                      dlp_img_scratch *s, dlp_file_hash *out);

#endif /* DLP_IMAGE_H */
