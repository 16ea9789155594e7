/* dlp.h - the public API of libdlp, Deep Learning Pipelines in C.
 *
 * Everything public is declared here; what is not here is not API.
 *
 * The whole flow, in the manner of SQLite: open a context, make or read a
 * table (a "frame") of images, look at it, write it somewhere.
 *
 *     dlp_ctx *ctx = NULL;
 *     if (dlp_ctx_new(&ctx) != DLP_OK) return 1;          // out of memory
 *     dlp_scan_opts so;
 *     dlp_scan_opts_init(&so);
 *     so.recursive = 1;
 *     so.labels_from_dirs = 1;
 *     dlp_frame *f = NULL;
 *     if (dlp_read_images(ctx, "photos", &so, &f) != DLP_OK)
 *         fprintf(stderr, "dlp: %s\n", dlp_errmsg(ctx));
 *     double w[2] = {0.8, 0.2};
 *     dlp_frame *parts[2];                                 // train, test
 *     if (dlp_frame_random_split(ctx, f, w, 2, 42, parts) == DLP_OK &&
 *         dlp_frame_write(ctx, parts[0], "train.db", NULL) == DLP_OK) ...
 *     dlp_frame_free(parts[0]); dlp_frame_free(parts[1]);
 *     dlp_frame_free(f);
 *     dlp_ctx_free(ctx);
 *
 * Conventions (they hold for every function below unless its comment says
 * otherwise):
 *  - Fallible functions return an int status, DLP_OK (0) on success. On
 *    failure the context keeps a human-readable message, dlp_errmsg(ctx),
 *    valid until the next call on that context. Out-pointers are set to NULL
 *    on failure.
 *  - A context is used by one thread at a time (like an SQLite connection in
 *    multi-thread mode). Use one context per thread; the library's own worker
 *    threads are managed internally and sized by dlp_ctx_set_threads().
 *  - Every *_free accepts NULL and does nothing.
 *  - Objects returned through an out-pointer belong to the caller, who frees
 *    them with the matching *_free. Pointers returned directly (const char *,
 *    const dlp_image_meta *) are borrowed from the object they came from.
 *  - The library never prints and never exits. Progress, when wanted, goes to
 *    a callback (dlp_ctx_set_progress).
 */
#ifndef DLP_H
#define DLP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DLP_VERSION_MAJOR 0
#define DLP_VERSION_MINOR 1
#define DLP_VERSION_PATCH 0
#define DLP_VERSION "0.1.0"
/* DLP_VERSION_NUMBER is MAJOR*10000 + MINOR*100 + PATCH. */
#define DLP_VERSION_NUMBER                                                     \
  (DLP_VERSION_MAJOR * 10000 + DLP_VERSION_MINOR * 100 + DLP_VERSION_PATCH)

#if defined(__GNUC__) || defined(__clang__)
#define DLP_MUST_CHECK __attribute__((warn_unused_result))
/* The library is built with hidden visibility; only these names export. */
#define DLP_API __attribute__((visibility("default")))
#else
#define DLP_MUST_CHECK
#define DLP_API
#endif

/* The version of the library actually linked, e.g. "0.1.0". */
DLP_API const char *dlp_version(void);

/* ------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------ */

typedef enum dlp_status {
  DLP_OK = 0,
  DLP_ERR_ARG = 1,         /* a bad argument from the caller */
  DLP_ERR_NOMEM = 2,       /* an allocation failed */
  DLP_ERR_IO = 3,          /* a file could not be opened, read or written */
  DLP_ERR_FORMAT = 4,      /* not a format dlp reads (unknown signature) */
  DLP_ERR_CORRUPT = 5,     /* the data is malformed or truncated */
  DLP_ERR_TOO_LARGE = 6,   /* the input exceeds a configured limit */
  DLP_ERR_NOT_FOUND = 7,   /* a file, column or table does not exist */
  DLP_ERR_UNSUPPORTED = 8, /* valid input that dlp cannot handle (yet) */
  DLP_ERR_SCHEMA = 9,      /* column types or names do not fit */
  DLP_ERR_INTERNAL = 10    /* a bug in dlp; please report it */
} dlp_status;

/* A short name for a status code ("ok", "io error", ...). Never NULL. */
DLP_API const char *dlp_errstr(int rc);

/* ------------------------------------------------------------------------
 * Context: limits, threads, progress and the last error message
 * ------------------------------------------------------------------------ */

typedef struct dlp_ctx dlp_ctx;

/* Creates a context with default settings: threads = number of online CPUs,
 * max_pixels = DLP_DEFAULT_MAX_PIXELS, max_file_bytes =
 * DLP_DEFAULT_MAX_FILE_BYTES, no progress callback. Fails only with
 * DLP_ERR_NOMEM. */
DLP_API DLP_MUST_CHECK int dlp_ctx_new(dlp_ctx **out);
DLP_API void dlp_ctx_free(dlp_ctx *ctx);

/* The message of the last failed call on ctx ("not an error" after a
 * success). With ctx == NULL returns a fixed message. Never NULL. */
DLP_API const char *dlp_errmsg(const dlp_ctx *ctx);
/* The status of the last call on ctx. */
DLP_API int dlp_errcode(const dlp_ctx *ctx);

/* Worker threads used for parallel work (decoding a folder, ...).
 * n <= 0 means the number of online CPUs. */
DLP_API void dlp_ctx_set_threads(dlp_ctx *ctx, int n);
DLP_API int dlp_ctx_threads(const dlp_ctx *ctx);

/* Images whose header declares more than max_pixels (width*height) are
 * refused with DLP_ERR_TOO_LARGE before any pixel memory is allocated; the
 * guard against decompression bombs. 0 restores the default. */
#define DLP_DEFAULT_MAX_PIXELS 178956970ULL /* same threshold as PIL */
DLP_API void dlp_ctx_set_max_pixels(dlp_ctx *ctx, uint64_t max_pixels);
DLP_API uint64_t dlp_ctx_max_pixels(const dlp_ctx *ctx);

/* Files larger than this are refused with DLP_ERR_TOO_LARGE before they are
 * read. 0 restores the default. */
#define DLP_DEFAULT_MAX_FILE_BYTES (1ULL << 30) /* 1 GiB */
DLP_API void dlp_ctx_set_max_file_bytes(dlp_ctx *ctx, uint64_t max_bytes);
DLP_API uint64_t dlp_ctx_max_file_bytes(const dlp_ctx *ctx);

/* Progress of long work: called from the calling thread with the units done
 * so far and the total (0 when unknown), at most a few times per second and
 * once at the end. `what` names the work ("decoding"). Return nonzero to
 * cancel: the running call then fails with DLP_ERR_ARG and "cancelled". */
typedef int (*dlp_progress_fn)(void *user, const char *what, uint64_t done,
                               uint64_t total);
DLP_API void dlp_ctx_set_progress(dlp_ctx *ctx, dlp_progress_fn fn, void *user);

/* ------------------------------------------------------------------------
 * Images
 *
 * A decoded image is Spark's image struct (ImageSchema): origin, height,
 * width, nChannels, mode, data. dlp's data is 8 bits per sample, row-major,
 * channels interleaved, rows packed (stride = width * n_channels), in RGB
 * order: 1 channel = gray, 3 = R,G,B, 4 = R,G,B,A.
 * NOTE: Spark's ImageSchema stores BGR(A); dlp_image_swap_rb() converts in
 * place when an exact Spark layout is wanted. `mode` is the OpenCV type code
 * Spark uses: DLP_MODE_8UC1, DLP_MODE_8UC3, DLP_MODE_8UC4.
 * ------------------------------------------------------------------------ */

#define DLP_MODE_8UC1 0
#define DLP_MODE_8UC3 16
#define DLP_MODE_8UC4 24

typedef struct dlp_image {
  char *origin;       /* path or URI it came from; may be NULL; owned */
  int32_t height;     /* rows */
  int32_t width;      /* columns */
  int32_t n_channels; /* 1, 3 or 4 */
  int32_t mode;       /* DLP_MODE_8UC1/3/4, matching n_channels */
  uint8_t *data;      /* height * width * n_channels bytes; owned */
} dlp_image;

typedef enum dlp_format {
  DLP_FORMAT_UNKNOWN = 0,
  DLP_FORMAT_JPEG,
  DLP_FORMAT_PNG,
  DLP_FORMAT_GIF,
  DLP_FORMAT_BMP,
  DLP_FORMAT_WEBP
} dlp_format;

/* "jpeg", "png", "gif", "bmp", "webp" or "unknown". */
DLP_API const char *dlp_format_name(dlp_format f);
/* Identifies a format from its first bytes (signature, not file name). */
DLP_API dlp_format dlp_format_sniff(const void *buf, size_t len);

/* Decoding options. Call dlp_decode_opts_init() first, then change fields. */
typedef struct dlp_decode_opts {
  /* Alpha: 0 (default) composites transparent images on white and returns
   * 1 or 3 channels; 1 keeps alpha and returns 4 channels (RGBA; a gray+alpha
   * image is expanded to RGBA). Images without alpha keep 1 or 3 channels
   * either way. */
  int keep_alpha;
  /* 1 (default): apply the EXIF orientation of JPEG files, so the pixels are
   * upright; width/height are those after rotation. 0: raw stored order. */
  int apply_exif_orientation;
  /* 1: always return 3 channels (gray expanded to RGB). Default 0: gray
   * images stay 1 channel, as in Spark. */
  int force_rgb;
  /* When > 0: the caller will resize to (at least) this size, so the decoder
   * may return a smaller image whose width >= target_width and height >=
   * target_height (JPEG: libjpeg-turbo's DCT-domain scaling, several times
   * faster on large photos). The sizes are those after EXIF rotation.
   * Default 0: full size. */
  int target_width;
  int target_height;
} dlp_decode_opts;

DLP_API void dlp_decode_opts_init(dlp_decode_opts *o);

/* What a header says, without decoding pixels. */
typedef struct dlp_image_info {
  dlp_format format;
  int32_t width;      /* after EXIF orientation when it is applied */
  int32_t height;
  int32_t n_channels; /* channels dlp_image_decode would return by default */
  int32_t has_alpha;
  int32_t orientation; /* EXIF orientation 1..8 (1 when absent) */
} dlp_image_info;

/* Reads the header of an encoded image in memory. Fails with DLP_ERR_FORMAT
 * for an unknown format and DLP_ERR_CORRUPT for a malformed header. */
DLP_API DLP_MUST_CHECK int dlp_image_probe(dlp_ctx *ctx, const void *buf, size_t len,
                                   dlp_image_info *info);

/* Decodes an encoded image held in memory (JPEG, PNG, GIF first frame, BMP,
 * WebP first frame). opts may be NULL for defaults. The new image's origin is
 * NULL. Errors: DLP_ERR_FORMAT (unknown signature), DLP_ERR_CORRUPT
 * (malformed or truncated data), DLP_ERR_TOO_LARGE (more pixels than the
 * context allows), DLP_ERR_UNSUPPORTED, DLP_ERR_NOMEM. */
DLP_API DLP_MUST_CHECK int dlp_image_decode(dlp_ctx *ctx, const void *buf, size_t len,
                                    const dlp_decode_opts *opts,
                                    dlp_image **out);

/* Reads a file and decodes it; origin is set to path. Errors as
 * dlp_image_decode plus DLP_ERR_IO / DLP_ERR_NOT_FOUND for the file. */
DLP_API DLP_MUST_CHECK int dlp_image_read(dlp_ctx *ctx, const char *path,
                                  const dlp_decode_opts *opts, dlp_image **out);

/* A new image of the given size, zero-filled, origin NULL. */
DLP_API DLP_MUST_CHECK int dlp_image_new(dlp_ctx *ctx, int32_t width, int32_t height,
                                 int32_t n_channels, dlp_image **out);
DLP_API void dlp_image_free(dlp_image *img);

/* Swaps the first and third channel in place (RGB <-> BGR). No-op for gray. */
DLP_API void dlp_image_swap_rb(dlp_image *img);

/* Resampling filter for dlp_image_resize. All filters antialias when
 * downscaling: the filter support grows with the scale factor, as in PIL. */
typedef enum dlp_filter {
  DLP_FILTER_BILINEAR = 0, /* triangle filter, PIL's Image.BILINEAR */
  DLP_FILTER_BOX,          /* area average, PIL's Image.BOX */
  DLP_FILTER_BICUBIC,      /* a = -0.5, PIL's Image.BICUBIC */
  DLP_FILTER_LANCZOS       /* 3 lobes, PIL's Image.LANCZOS */
} dlp_filter;

/* Resizes src to width x height (any aspect ratio). Same channels.
 * 4-channel images are resized with premultiplied alpha, as PIL does. The
 * output may hold at most the context's max_pixels (DLP_ERR_TOO_LARGE). */
DLP_API DLP_MUST_CHECK int dlp_image_resize(dlp_ctx *ctx, const dlp_image *src,
                                    int32_t width, int32_t height,
                                    dlp_filter filter, dlp_image **out);

/* Cuts the centre of src: the largest region with the aspect ratio
 * width:height scaled by `fraction` (0 < fraction <= 1; 1 = the largest). */
DLP_API DLP_MUST_CHECK int dlp_image_center_crop(dlp_ctx *ctx, const dlp_image *src,
                                         int32_t width, int32_t height,
                                         double fraction, dlp_image **out);

/* Normalisation applied when an image becomes a float tensor. */
typedef enum dlp_norm {
  DLP_NORM_NONE = 0, /* x as 0..255 floats, channel order as requested */
  DLP_NORM_TF,       /* x / 127.5 - 1, RGB (Keras "tf" mode) */
  DLP_NORM_CAFFE,    /* BGR, minus ImageNet mean [103.939, 116.779, 123.68] */
  DLP_NORM_TORCH,    /* RGB, x/255 then (x - mean) / std, ImageNet stats */
  DLP_NORM_CUSTOM    /* (x - mean[c]) / std[c] with the given mean/std */
} dlp_norm;

typedef enum dlp_layout { DLP_LAYOUT_NHWC = 0, DLP_LAYOUT_NCHW = 1 } dlp_layout;

/* From decoded image to the float input of a network. */
typedef struct dlp_preprocess {
  int32_t width, height; /* output size; both required (> 0) */
  dlp_filter filter;     /* default DLP_FILTER_BILINEAR */
  /* Default 0: resize the whole image to width x height (aspect ratio not
   * kept, as sparkdl does). In (0, 1]: first cut the centre with that
   * fraction at the output's aspect ratio, then resize (1 = no border lost
   * beyond what the aspect ratio needs; 0.875 = the classic ImageNet crop). */
  double center_crop;
  dlp_norm norm;    /* default DLP_NORM_TF */
  dlp_layout layout; /* default DLP_LAYOUT_NHWC */
  /* DLP_NORM_NONE and DLP_NORM_CUSTOM only: 1 = BGR output. */
  int bgr;
  float mean[3]; /* DLP_NORM_CUSTOM: in 0..255 units, in output order */
  float std[3];  /* DLP_NORM_CUSTOM: in 0..255 units; default 1 */
} dlp_preprocess;

DLP_API void dlp_preprocess_init(dlp_preprocess *p);

/* The normalisation called "tf", "caffe", "torch" or "none" (the spelling of
 * the CLI's --preprocess and the SQL functions' options). Returns 1 and sets
 * *out, or 0 for any other name. */
DLP_API int dlp_norm_from_name(const char *name, dlp_norm *out);
/* "tf", "caffe", "torch", "none", "custom"; "unknown" for other values. */
DLP_API const char *dlp_norm_name(dlp_norm n);
/* Parses an image size "HxW" ('x' or 'X', e.g. "299x299"; each 1..65535)
 * into *height and *width. Returns 1, or 0 (outputs untouched) when
 * malformed. */
DLP_API int dlp_parse_size(const char *s, int32_t *height, int32_t *width);

/* Floats dlp_image_to_tensor writes: 3 * width * height. */
DLP_API size_t dlp_preprocess_size(const dlp_preprocess *p);

/* Converts one image (1, 3 or 4 channels; gray is repeated, alpha dropped)
 * into out[dlp_preprocess_size(p)], resizing and cropping as p says. */
DLP_API DLP_MUST_CHECK int dlp_image_to_tensor(dlp_ctx *ctx, const dlp_image *img,
                                       const dlp_preprocess *p, float *out);

/* Reads, decodes (at the smallest JPEG scale that still covers the target)
 * and preprocesses one file in one call: the fast path for inference. */
DLP_API DLP_MUST_CHECK int dlp_image_file_to_tensor(dlp_ctx *ctx, const char *path,
                                            const dlp_preprocess *p,
                                            float *out);

/* Preprocesses n files in parallel on the context's threads into
 * out[n * dlp_preprocess_size(p)]. status[i] gets each file's status (the
 * batch goes on past bad files, whose slot is zero-filled); errmsg, when not
 * NULL, receives n strings (NULL for successes) the caller frees with free().
 * Returns DLP_OK unless the call itself could not run. */
DLP_API DLP_MUST_CHECK int dlp_batch_files_to_tensor(dlp_ctx *ctx,
                                             const char *const *paths,
                                             size_t n, const dlp_preprocess *p,
                                             float *out, int *status,
                                             char **errmsg);

/* ------------------------------------------------------------------------
 * Frames: tables of typed columns
 *
 * A frame has named, typed columns and rows. Every cell may be null. Image
 * cells are lazy: they keep the origin (path), the header facts and an error
 * message when the image could not be read; pixels are decoded on demand
 * (dlp_frame_get_image), optionally from encoded bytes held in the cell.
 * Frames are immutable once built; operations return new frames.
 * ------------------------------------------------------------------------ */

typedef enum dlp_type {
  DLP_TYPE_STRING = 1,
  DLP_TYPE_INT64 = 2,
  DLP_TYPE_DOUBLE = 3,
  DLP_TYPE_VECTOR = 4, /* float32[dim], dim fixed per column */
  DLP_TYPE_IMAGE = 5
} dlp_type;

/* "string", "int64", "double", "vector", "image". */
DLP_API const char *dlp_type_name(dlp_type t);

/* The facts an image cell holds without its pixels. -1 where unknown
 * (e.g. the image could not be read: then error is set). */
typedef struct dlp_image_meta {
  const char *origin;  /* path or URI */
  int32_t height;
  int32_t width;
  int32_t n_channels;
  int32_t mode;
  const char *error;   /* NULL when readable, else why not */
  const uint8_t *bytes; /* encoded file bytes when embedded, else NULL */
  size_t n_bytes;
} dlp_image_meta;

typedef struct dlp_frame dlp_frame;

/* An empty frame with no columns. */
DLP_API DLP_MUST_CHECK int dlp_frame_new(dlp_ctx *ctx, dlp_frame **out);
DLP_API void dlp_frame_free(dlp_frame *f);

DLP_API size_t dlp_frame_nrows(const dlp_frame *f);
DLP_API size_t dlp_frame_ncols(const dlp_frame *f);
/* Column facts, or NULL / 0 when col is out of range. */
DLP_API const char *dlp_frame_col_name(const dlp_frame *f, size_t col);
DLP_API dlp_type dlp_frame_col_type(const dlp_frame *f, size_t col);
/* The vector dimension of a DLP_TYPE_VECTOR column, else 0. */
DLP_API size_t dlp_frame_col_dim(const dlp_frame *f, size_t col);
/* The index of the column called name, or -1. */
DLP_API long dlp_frame_col_index(const dlp_frame *f, const char *name);

/* Adds an empty column (all rows null). dim is used by DLP_TYPE_VECTOR only.
 * Fails with DLP_ERR_SCHEMA if the name exists. */
DLP_API DLP_MUST_CHECK int dlp_frame_add_column(dlp_ctx *ctx, dlp_frame *f,
                                        const char *name, dlp_type type,
                                        size_t dim);
/* Appends one row of nulls; returns its index through *row (may be NULL). */
DLP_API DLP_MUST_CHECK int dlp_frame_add_row(dlp_ctx *ctx, dlp_frame *f, size_t *row);

/* Cell setters: copy their arguments. A type mismatch is DLP_ERR_SCHEMA. */
DLP_API DLP_MUST_CHECK int dlp_frame_set_null(dlp_ctx *ctx, dlp_frame *f, size_t col,
                                      size_t row);
DLP_API DLP_MUST_CHECK int dlp_frame_set_string(dlp_ctx *ctx, dlp_frame *f, size_t col,
                                        size_t row, const char *s);
DLP_API DLP_MUST_CHECK int dlp_frame_set_int64(dlp_ctx *ctx, dlp_frame *f, size_t col,
                                       size_t row, int64_t v);
DLP_API DLP_MUST_CHECK int dlp_frame_set_double(dlp_ctx *ctx, dlp_frame *f, size_t col,
                                        size_t row, double v);
/* v has the column's dim floats. */
DLP_API DLP_MUST_CHECK int dlp_frame_set_vector(dlp_ctx *ctx, dlp_frame *f, size_t col,
                                        size_t row, const float *v);
/* Copies meta's strings and bytes into the cell. */
DLP_API DLP_MUST_CHECK int dlp_frame_set_image_meta(dlp_ctx *ctx, dlp_frame *f,
                                            size_t col, size_t row,
                                            const dlp_image_meta *meta);

/* Cell getters: return 1 and fill *out when the cell holds a value, 0 when
 * it is null, the column has another type, or row/col is out of range.
 * Strings, vectors and meta point into the frame (valid until it is
 * freed). */
DLP_API int dlp_frame_is_null(const dlp_frame *f, size_t col, size_t row);
DLP_API int dlp_frame_get_string(const dlp_frame *f, size_t col, size_t row,
                         const char **out);
DLP_API int dlp_frame_get_int64(const dlp_frame *f, size_t col, size_t row,
                        int64_t *out);
DLP_API int dlp_frame_get_double(const dlp_frame *f, size_t col, size_t row,
                         double *out);
DLP_API int dlp_frame_get_vector(const dlp_frame *f, size_t col, size_t row,
                         const float **out);
DLP_API int dlp_frame_get_image_meta(const dlp_frame *f, size_t col, size_t row,
                             dlp_image_meta *out);

/* Decodes the image of an image cell: from its embedded bytes when it has
 * them, else from its origin path. Fails with the cell's stored error
 * (DLP_ERR_CORRUPT) when the cell records one. */
DLP_API DLP_MUST_CHECK int dlp_frame_get_image(dlp_ctx *ctx, const dlp_frame *f,
                                       size_t col, size_t row,
                                       const dlp_decode_opts *opts,
                                       dlp_image **out);

/* --- Building a frame from folders of images ---------------------------- */

typedef struct dlp_scan_opts {
  int recursive;        /* descend into sub-folders; default 0 */
  /* 1: a "label" string column holds the name of the first sub-folder under
   * the root the file lies in (root/cat/x.jpg and root/cat/a/y.jpg are both
   * "cat"; files directly in root get null). Keras' image_dataset_from_directory
   * convention. Implies recursive. Default 0. */
  int labels_from_dirs;
  /* When not NULL: a "label" column with this literal for every row, int64
   * when the text is an integer, else string (sparkdl's lit(1)). Cannot be
   * combined with labels_from_dirs. Default NULL. */
  const char *label_literal;
  /* Comma-separated extensions to take, case-insensitive, without dots.
   * Default NULL = "jpg,jpeg,png,gif,bmp,webp". "*" takes every file. */
  const char *extensions;
  /* Keep each file with this probability, decided by a hash of the seed and
   * the file's relative path (so a file's fate does not depend on the other
   * files). Default 1.0 (keep all). */
  double sample_ratio;
  uint64_t seed; /* default 0 */
  /* 1: decode every image fully to validate it (truncated data is found);
   * default 1. 0: read headers only (faster; errors surface later). */
  int verify;
  /* 1: drop unreadable images instead of keeping error rows. Default 0. */
  int drop_invalid;
  /* 1: keep each file's encoded bytes in its cell (self-contained tables).
   * Default 0: cells keep the path only. */
  int embed_bytes;
  /* 1: follow symbolic links to folders. Default 0 (links to files are
   * always followed; a broken link becomes an error row). */
  int follow_dir_links;
} dlp_scan_opts;

DLP_API void dlp_scan_opts_init(dlp_scan_opts *o);

/* Scans dir (a folder, or a single file) into a frame with the columns
 *   image (DLP_TYPE_IMAGE)  origin = path, header facts, or the error
 *   label (string or int64) only with labels_from_dirs or label_literal
 * Rows are sorted by path, so the same folder gives the same frame. Each
 * file that cannot be read is an image cell with error set (or is dropped
 * with drop_invalid); the rest of the folder is processed. Fails only when
 * dir itself cannot be read, or on bad options / NOMEM / cancellation. */
DLP_API DLP_MUST_CHECK int dlp_read_images(dlp_ctx *ctx, const char *dir,
                                   const dlp_scan_opts *opts, dlp_frame **out);

/* Number of image cells in column col that hold an error. */
DLP_API size_t dlp_frame_count_errors(const dlp_frame *f, size_t col);

/* --- Frame operations (each returns a new frame) ------------------------ */

/* The first n rows (all when n >= nrows). */
DLP_API DLP_MUST_CHECK int dlp_frame_head(dlp_ctx *ctx, const dlp_frame *f, size_t n,
                                  dlp_frame **out);
/* The rows listed in idx (any order, repeats allowed). */
DLP_API DLP_MUST_CHECK int dlp_frame_take(dlp_ctx *ctx, const dlp_frame *f,
                                  const size_t *idx, size_t n,
                                  dlp_frame **out);
/* All rows in a random order fixed by seed. */
DLP_API DLP_MUST_CHECK int dlp_frame_shuffle(dlp_ctx *ctx, const dlp_frame *f,
                                     uint64_t seed, dlp_frame **out);
/* Splits the rows into k frames of sizes proportional to weights (which need
 * not sum to 1), by a seeded shuffle; each part keeps the original row order.
 * Sizes are exact (largest remainder), unlike Spark's per-row sampling, so a
 * 10-row frame split 0.8/0.2 always gives 8 and 2. Same seed, same parts.
 * out must have room for k frames. */
DLP_API DLP_MUST_CHECK int dlp_frame_random_split(dlp_ctx *ctx, const dlp_frame *f,
                                          const double *weights, size_t k,
                                          uint64_t seed, dlp_frame **out);
/* Keeps each row with probability ratio, by a seeded hash of the row index. */
DLP_API DLP_MUST_CHECK int dlp_frame_sample(dlp_ctx *ctx, const dlp_frame *f,
                                    double ratio, uint64_t seed,
                                    dlp_frame **out);
/* Rows of a then rows of b. Columns must match by name and type
 * (DLP_ERR_SCHEMA otherwise); b's columns may be in another order. */
DLP_API DLP_MUST_CHECK int dlp_frame_union(dlp_ctx *ctx, const dlp_frame *a,
                                   const dlp_frame *b, dlp_frame **out);
/* Rows whose image column col has no error (dropInvalid after the fact). */
DLP_API DLP_MUST_CHECK int dlp_frame_drop_invalid(dlp_ctx *ctx, const dlp_frame *f,
                                          size_t col, dlp_frame **out);

/* --- Sinks and sources -------------------------------------------------- */

typedef enum dlp_file_kind {
  DLP_FILE_AUTO = 0, /* from the extension: .db/.sqlite/.sqlite3, .jsonl/.ndjson,
                        .csv, .npy */
  DLP_FILE_SQLITE,
  DLP_FILE_JSONL,
  DLP_FILE_CSV,
  DLP_FILE_NPY
} dlp_file_kind;

typedef struct dlp_io_opts {
  dlp_file_kind kind; /* default DLP_FILE_AUTO */
  /* SQLite: the table to write or read. Default NULL = "frame" when writing;
   * when reading, the only table dlp wrote, else "frame". */
  const char *table;
  /* Writing: 1 replaces an existing file / SQLite table, 0 (default) fails
   * with DLP_ERR_ARG if it exists. */
  int overwrite;
  /* .npy: the column to write (default: the only vector column), and the
   * column name given to the array when reading (default "features"). */
  const char *column;
} dlp_io_opts;

DLP_API void dlp_io_opts_init(dlp_io_opts *o);

/* Writes a frame.
 *  SQLite: one table; string TEXT, int64 INTEGER, double REAL, vector BLOB of
 *    little-endian float32, image as columns <name>_origin, _height, _width,
 *    _nChannels, _mode, _error, _bytes (BLOB, NULL unless embedded). A
 *    table _dlp_columns records the dlp types so the frame reads back exactly.
 *  JSON Lines: one object per row; vector = array of numbers; image = object
 *    {"origin","height","width","nChannels","mode","error"[,"bytes": base64]}.
 *  CSV (RFC 4180): header row; image flattened to <name>.origin, .height,
 *    .width, .nChannels, .mode, .error; vector as "[a,b,...]"; null = empty.
 *    Embedded image bytes are not written to CSV.
 *  .npy: one vector column as a float32 array (rows x dim), or one int64 /
 *    double column as a 1-D array.
 * The file is written to a temporary name and renamed, so a failed write
 * leaves no half file. */
DLP_API DLP_MUST_CHECK int dlp_frame_write(dlp_ctx *ctx, const dlp_frame *f,
                                   const char *path, const dlp_io_opts *opts);

/* Reads a frame written by dlp_frame_write (or any compatible file: a SQLite
 * table of plain columns, JSON Lines / CSV whose column types are inferred:
 * int64 if every value is an integer, else double if every value is a
 * number, else string; arrays of numbers are vectors). */
DLP_API DLP_MUST_CHECK int dlp_frame_read(dlp_ctx *ctx, const char *path,
                                  const dlp_io_opts *opts, dlp_frame **out);

/* ------------------------------------------------------------------------
 * Models: pretrained CNNs and model files (sparkdl's DeepImageFeaturizer,
 * DeepImagePredictor, KerasImageFileTransformer, KerasTransformer)
 *
 *     dlp_model *m = NULL;
 *     if (dlp_model_open(ctx, "InceptionV3", NULL, &m) != DLP_OK) ...
 *         // "InceptionV3 weights are not in the model cache: get
 *         //  inception_v3_weights_tf_dim_ordering_tf_kernels.h5 and run
 *         //  'dlp models import FILE' (or 'dlp models fetch InceptionV3')"
 *     dlp_frame *feat = NULL;
 *     dlp_transform_opts to; dlp_transform_opts_init(&to);
 *     dlp_model_featurize(ctx, m, images, "image", &to, &feat);  // + "features"
 *     dlp_model_predict(ctx, m, images, "image", 5, &to, &pred); // + "predictions"
 *     dlp_model_free(m);
 * ------------------------------------------------------------------------ */

typedef struct dlp_model dlp_model;

typedef enum dlp_precision {
  DLP_PRECISION_FP32 = 0, /* exact float32 arithmetic (default) */
  DLP_PRECISION_BF16      /* bfloat16 matrix math where the CPU has it */
} dlp_precision;

typedef struct dlp_model_opts {
  /* Keras/ONNX file to load instead of a zoo name (the name is then only a
   * label). Default NULL. */
  const char *model_file;
  /* For a file without its own preprocessing facts: input size and
   * normalisation. 0 / DLP_NORM_NONE = from the file or the zoo entry. */
  int32_t input_width, input_height;
  dlp_norm norm;
  int norm_set; /* 1 when norm was given explicitly */
  float mean[3], std[3]; /* DLP_NORM_CUSTOM */
  int bgr;               /* DLP_NORM_NONE/CUSTOM: feed BGR */
  /* Layer whose output featurize returns. Default NULL = the model's
   * feature layer (the pooled penultimate vector, 2048-d for InceptionV3). */
  const char *layer;
  /* 1 (default): the oneDNN backend; 0: the plain C reference backend. */
  int fast;
  dlp_precision precision; /* default DLP_PRECISION_FP32 */
  /* Where cached models live. Default NULL = $DLP_MODEL_DIR, else
   * ~/.cache/dlp/models. */
  const char *model_dir;
  /* 1: a zoo architecture with seeded random weights instead of cached
   * ones (for benchmarks and tests: its outputs mean nothing). Default 0. */
  int random_weights;
  uint64_t seed; /* for random_weights; default 0 */
} dlp_model_opts;

DLP_API void dlp_model_opts_init(dlp_model_opts *o);

/* Opens a model: a zoo name ("InceptionV3", "Xception", "ResNet50", "VGG16",
 * "VGG19", "MobileNetV2", case-insensitive) whose weights are in the cache, a
 * name registered with 'dlp models import --as', or opts->model_file (.h5
 * Keras full model or .onnx). DLP_ERR_NOT_FOUND says which file to get and
 * where to put it. opts may be NULL. */
DLP_API DLP_MUST_CHECK int dlp_model_open(dlp_ctx *ctx, const char *name,
                                          const dlp_model_opts *opts,
                                          dlp_model **out);
DLP_API void dlp_model_free(dlp_model *m);

/* Facts: the model's name, input size and channels, normalisation, the
 * dimension featurize returns and the number of classes predict knows
 * (0 when the model has no classifier). */
typedef struct dlp_model_info {
  const char *name;
  int32_t input_width, input_height, input_channels;
  dlp_norm norm;
  int64_t feature_dim;
  int64_t n_classes;
  const char *feature_layer;
  int64_t n_params;
} dlp_model_info;
DLP_API void dlp_model_get_info(const dlp_model *m, dlp_model_info *info);

/* Runs the model on n preprocessed inputs (n * input_height * input_width *
 * 3 floats, NHWC as dlp_image_to_tensor writes with the model's
 * preprocessing) and writes n * dim floats of the feature layer (or of the
 * final output with which = 1) into out. The low-level entry for callers
 * that preprocess themselves. */
DLP_API DLP_MUST_CHECK int dlp_model_run(dlp_ctx *ctx, dlp_model *m,
                                         const float *in, size_t n, int which,
                                         float *out, size_t *dim);

typedef struct dlp_transform_opts {
  size_t batch_size;   /* default 16 */
  const char *output_col; /* default "features" / "predictions" / "output" */
  /* 1: rows whose image cannot be read are dropped; 0 (default): they get a
   * null output (and keep their error). */
  int drop_invalid;
} dlp_transform_opts;
DLP_API void dlp_transform_opts_init(dlp_transform_opts *o);

/* Adds a DLP_TYPE_VECTOR column with the feature vector of each image of
 * image_col. Images are decoded, resized and normalised as the model needs,
 * in batches, decoding overlapped with compute. */
DLP_API DLP_MUST_CHECK int dlp_model_featurize(dlp_ctx *ctx, dlp_model *m,
                                               const dlp_frame *in,
                                               const char *image_col,
                                               const dlp_transform_opts *o,
                                               dlp_frame **out);

/* Adds a string column holding, per image, a JSON array of the top k
 * classes: [{"class": 281, "description": "tabby", "probability": 0.91},
 * ...] (ImageNet descriptions for ImageNet models). */
DLP_API DLP_MUST_CHECK int dlp_model_predict(dlp_ctx *ctx, dlp_model *m,
                                             const dlp_frame *in,
                                             const char *image_col, int k,
                                             const dlp_transform_opts *o,
                                             dlp_frame **out);

/* The model's final output for each row as a vector column; the input
 * column is an image column (preprocessed as the model says) or a vector
 * column whose dim matches the model's input (KerasTransformer). */
DLP_API DLP_MUST_CHECK int dlp_model_apply(dlp_ctx *ctx, dlp_model *m,
                                           const dlp_frame *in,
                                           const char *input_col,
                                           const dlp_transform_opts *o,
                                           dlp_frame **out);

/* The ImageNet class description of index 0..999, or NULL (when out of
 * range or when the class index data is not installed). */
DLP_API const char *dlp_imagenet_class(int index);

/* --- The model cache ---------------------------------------------------- */

typedef struct dlp_model_entry {
  const char *name;        /* "InceptionV3" */
  const char *file_name;   /* the Keras weights file the zoo entry needs */
  const char *url;         /* its canonical address */
  int cached;              /* 1 when a verified file is in the cache */
  const char *path;        /* cached file, or NULL */
  const char *sha256;      /* of the cached file, or NULL */
  int32_t input_width, input_height;
  const char *preprocessing; /* "tf", "caffe", "torch", "none" */
} dlp_model_entry;

/* Lists the zoo and imported models. *entries is owned by the returned
 * list; free with dlp_model_list_free. model_dir as in dlp_model_opts. */
typedef struct dlp_model_list dlp_model_list;
DLP_API DLP_MUST_CHECK int dlp_model_list_get(dlp_ctx *ctx,
                                              const char *model_dir,
                                              dlp_model_list **out);
DLP_API size_t dlp_model_list_count(const dlp_model_list *l);
DLP_API const dlp_model_entry *dlp_model_list_at(const dlp_model_list *l,
                                                 size_t i);
DLP_API void dlp_model_list_free(dlp_model_list *l);

/* Registers a local file in the cache: a weights-only Keras file for a zoo
 * architecture (recognised by its layer names, or named by `as`), or a full
 * Keras/ONNX model file under the name `as`. The file is copied in,
 * identified by SHA-256 and verified to load. name_out (may be NULL)
 * receives the name it is registered under, malloc'd: free() it. */
DLP_API DLP_MUST_CHECK int dlp_model_import(dlp_ctx *ctx, const char *model_dir,
                                            const char *path, const char *as,
                                            char **name_out);

/* Downloads a zoo model's weights from url (default: its canonical address;
 * file:// and http://127.0.0.1 work for tests), checks the published hash,
 * and registers it as dlp_model_import does. Needs libcurl and a network. */
DLP_API DLP_MUST_CHECK int dlp_model_fetch(dlp_ctx *ctx, const char *model_dir,
                                           const char *name, const char *url);

/* ========================================================================
 * Machine learning: stages, pipelines, logistic regression, evaluation,
 * persistence and tuning (Spark MLlib's model: an estimator is fitted to a
 * table and gives a transformer; a pipeline of stages is fitted to a
 * pipeline model).
 *
 *     dlp_pipeline *p = NULL;
 *     dlp_stage *s = NULL;
 *     dlp_pipeline_new(ctx, &p);
 *     dlp_stage_new(ctx, "DeepImageFeaturizer", &s);
 *     dlp_stage_set(ctx, s, "modelName", "InceptionV3");
 *     dlp_pipeline_add(ctx, p, s);                     // p owns s now
 *     dlp_stage_new(ctx, "StringIndexer", &s);         // label -> indexedLabel
 *     dlp_pipeline_add(ctx, p, s);
 *     dlp_stage_new(ctx, "LogisticRegression", &s);
 *     dlp_stage_set(ctx, s, "labelCol", "indexedLabel");
 *     dlp_stage_set(ctx, s, "regParam", "0.05");       // or "reg" (CLI name)
 *     dlp_stage_set(ctx, s, "elasticNetParam", "0.3");
 *     dlp_pipeline_add(ctx, p, s);
 *     dlp_stage_new(ctx, "IndexToString", &s);         // -> predictedLabel
 *     dlp_pipeline_add(ctx, p, s);
 *     dlp_pipeline_model *pm = NULL;
 *     if (dlp_pipeline_fit(ctx, p, train, &pm) != DLP_OK) ...
 *     dlp_frame *pred = NULL;
 *     dlp_pipeline_model_transform(ctx, pm, test, &pred);
 *     dlp_eval_opts eo; dlp_eval_opts_init(&eo);
 *     eo.label_col = "indexedLabel";
 *     double acc;
 *     dlp_evaluate(ctx, pred, "accuracy", &eo, &acc);
 *     dlp_pipeline_model_save(ctx, pm, "flowers.dlp", 1);
 * ======================================================================== */

/* --- Parameters, described as data -------------------------------------- */

typedef enum dlp_param_type {
  DLP_PARAM_INT = 0,
  DLP_PARAM_DOUBLE,
  DLP_PARAM_BOOL,   /* "true"/"false" (also 1/0, yes/no) */
  DLP_PARAM_STRING, /* free text; "" = unset (e.g. no weight column) */
  DLP_PARAM_ENUM    /* one of choices */
} dlp_param_type;

/* One parameter of a stage class. The CLI's options, validation, the tuning
 * grid and persistence all read this one description. */
typedef struct dlp_param_desc {
  const char *name;     /* MLlib's name: "regParam" */
  const char *cli_name; /* the command-line/grid name: "reg" */
  dlp_param_type type;
  const char *def;      /* default, as text */
  double min, max;      /* INT/DOUBLE: inclusive range, checked if min < max */
  const char *choices;  /* ENUM: "auto|binomial|multinomial"; else NULL */
  const char *doc;      /* one line */
} dlp_param_desc;

/* The stage classes dlp knows, by index (NULL past the end):
 * "DeepImageFeaturizer", "StringIndexer", "LogisticRegression",
 * "IndexToString" (and the fitted "StringIndexerModel",
 * "LogisticRegressionModel", which only come from fit or load). */
DLP_API const char *dlp_stage_class_at(size_t i);
/* The parameters of a class: *n descriptions, borrowed (static); NULL and
 * *n = 0 for an unknown class. */
DLP_API const dlp_param_desc *dlp_stage_class_params(const char *class_name,
                                                     size_t *n);

/* --- Stages and pipelines ------------------------------------------------ */

/* A stage: a class and its parameter values (every parameter starts at its
 * default). */
typedef struct dlp_stage dlp_stage;
DLP_API DLP_MUST_CHECK int dlp_stage_new(dlp_ctx *ctx, const char *class_name,
                                         dlp_stage **out);
DLP_API void dlp_stage_free(dlp_stage *s);
DLP_API const char *dlp_stage_class(const dlp_stage *s);
/* Sets a parameter by its MLlib or CLI name from text, validated against
 * its description (type, range, choices): DLP_ERR_ARG says what is wrong. */
DLP_API DLP_MUST_CHECK int dlp_stage_set(dlp_ctx *ctx, dlp_stage *s,
                                         const char *param, const char *value);
/* The current value of a parameter as text (borrowed, valid until the next
 * set), or NULL when the class has no such parameter. */
DLP_API const char *dlp_stage_get(const dlp_stage *s, const char *param);

typedef struct dlp_pipeline dlp_pipeline;
DLP_API DLP_MUST_CHECK int dlp_pipeline_new(dlp_ctx *ctx, dlp_pipeline **out);
DLP_API void dlp_pipeline_free(dlp_pipeline *p);
/* Appends a stage; the pipeline owns it from then on (also on failure). */
DLP_API DLP_MUST_CHECK int dlp_pipeline_add(dlp_ctx *ctx, dlp_pipeline *p,
                                            dlp_stage *s);
DLP_API size_t dlp_pipeline_nstages(const dlp_pipeline *p);
/* Stage i (borrowed, may be changed with dlp_stage_set), NULL past the end. */
DLP_API dlp_stage *dlp_pipeline_stage(dlp_pipeline *p, size_t i);

/* A fitted pipeline: transformers only. */
typedef struct dlp_pipeline_model dlp_pipeline_model;

/* Fits the stages in order on train: an estimator is fitted to the table as
 * transformed by the stages before it, and its fitted model takes its place.
 * Progress ("featurizing", "fitting LogisticRegression") goes to the
 * context's callback. */
DLP_API DLP_MUST_CHECK int dlp_pipeline_fit(dlp_ctx *ctx, const dlp_pipeline *p,
                                            const dlp_frame *train,
                                            dlp_pipeline_model **out);
/* Runs every stage over in and returns a new frame with their output
 * columns added. Two conveniences make one fitted pipeline serve images,
 * feature tables and unlabelled data: a DeepImageFeaturizer whose output
 * column is already there is skipped (the features were computed before),
 * and a StringIndexerModel whose input column is absent is skipped (rows
 * without labels are only predicted). */
DLP_API DLP_MUST_CHECK int dlp_pipeline_model_transform(
    dlp_ctx *ctx, const dlp_pipeline_model *pm, const dlp_frame *in,
    dlp_frame **out);
DLP_API void dlp_pipeline_model_free(dlp_pipeline_model *pm);
DLP_API size_t dlp_pipeline_model_nstages(const dlp_pipeline_model *pm);
/* Stage i of the model (borrowed): a transformer whose parameters can be
 * read with dlp_stage_get (and set, e.g. a featurizer's batchSize). */
DLP_API dlp_stage *dlp_pipeline_model_stage(dlp_pipeline_model *pm, size_t i);
/* The class labels of the model's StringIndexerModel in index order
 * (borrowed), or NULL and *n = 0 when it has none. */
DLP_API const char *const *dlp_pipeline_model_labels(
    const dlp_pipeline_model *pm, size_t *n);

/* Saves to a directory: pipeline.json (format "dlp-pipeline", a version
 * number, every stage's class and parameters) plus .npy arrays (the fitted
 * coefficients as float64) whose SHA-256 the manifest records. Written to a
 * temporary directory, then renamed; an existing dir is replaced only when
 * overwrite is 1. */
DLP_API DLP_MUST_CHECK int dlp_pipeline_model_save(
    dlp_ctx *ctx, const dlp_pipeline_model *pm, const char *dir,
    int overwrite);
/* Loads a saved pipeline model; every number comes back bit-identical. A
 * newer format version, a missing or altered array, or a malformed manifest
 * fails with a message naming the file (DLP_ERR_UNSUPPORTED /
 * DLP_ERR_CORRUPT). */
DLP_API DLP_MUST_CHECK int dlp_pipeline_model_load(dlp_ctx *ctx,
                                                   const char *dir,
                                                   dlp_pipeline_model **out);

/* --- Logistic regression, directly --------------------------------------- */

/* What a LogisticRegression fit learnt, for callers and reports: K rows of
 * dim coefficients (K = 1 for binomial, n_classes for multinomial), K
 * intercepts, in the original feature scale. Borrowed from the model. */
typedef struct dlp_lr_summary {
  int multinomial;
  int64_t n_classes;
  size_t n_rows_coef, dim;
  const double *coefficients; /* n_rows_coef * dim, row-major */
  const double *intercepts;   /* n_rows_coef */
  int iterations;
  double objective;           /* MLlib's objective at the solution */
  const double *objective_history; /* iterations + 1 values */
} dlp_lr_summary;

/* The summary of the model's first LogisticRegressionModel stage; DLP_ERR_
 * NOT_FOUND when there is none. */
DLP_API DLP_MUST_CHECK int dlp_pipeline_model_lr_summary(
    dlp_ctx *ctx, const dlp_pipeline_model *pm, dlp_lr_summary *out);

/* --- Evaluation ---------------------------------------------------------- */

typedef struct dlp_eval_opts {
  const char *label_col;          /* default "label" (int64 or double) */
  const char *prediction_col;     /* default "prediction" */
  const char *probability_col;    /* default "probability" (logLoss) */
  const char *raw_prediction_col; /* default "rawPrediction" (binary) */
  const char *weight_col;         /* default NULL: every row weighs 1 */
  double eps;                     /* logLoss clipping, default 1e-15 */
} dlp_eval_opts;
DLP_API void dlp_eval_opts_init(dlp_eval_opts *o);

/* The metric names dlp_evaluate knows, by index (NULL past the end):
 * multiclass "accuracy", "f1", "weightedPrecision", "weightedRecall",
 * "weightedFMeasure", "logLoss", "hammingLoss"; binary "areaUnderROC",
 * "areaUnderPR". */
DLP_API const char *dlp_metric_at(size_t i);
/* 1 when larger values of the metric are better (0 for logLoss and
 * hammingLoss), -1 for an unknown name. */
DLP_API int dlp_metric_larger_is_better(const char *metric);

/* One metric over a transformed frame, with MLlib's definitions. Rows with a
 * null label or prediction are skipped. The binary metrics need labels in
 * {0, 1} and score with rawPrediction[1] (or probability[1] when there is no
 * raw column). */
DLP_API DLP_MUST_CHECK int dlp_evaluate(dlp_ctx *ctx, const dlp_frame *f,
                                        const char *metric,
                                        const dlp_eval_opts *o, double *value);

/* Every multiclass metric at once, and the confusion matrix. */
typedef struct dlp_multiclass_metrics {
  double accuracy, f1, weighted_precision, weighted_recall, log_loss,
      hamming_loss;
  int has_log_loss;    /* 0 when there is no probability column */
  size_t n_classes;    /* K: the largest label or prediction + 1 */
  double *confusion;   /* K*K weights, [true * K + predicted] (malloc'd) */
  double *precision, *recall, *f1_by_class; /* K each (malloc'd) */
  double total_weight;
  size_t n_rows;       /* rows counted */
} dlp_multiclass_metrics;
DLP_API DLP_MUST_CHECK int dlp_evaluate_multiclass(dlp_ctx *ctx,
                                                   const dlp_frame *f,
                                                   const dlp_eval_opts *o,
                                                   dlp_multiclass_metrics *out);
/* Frees the arrays of m (not m itself); safe on a zeroed struct. */
DLP_API void dlp_multiclass_metrics_clear(dlp_multiclass_metrics *m);

/* A self-contained HTML page (no external files, data: URIs): the metrics,
 * the confusion matrix with the class labels, and thumbnails of up to
 * max_examples misclassified images with true and predicted labels. f is a
 * transformed frame with an image column (origins are read for the
 * thumbnails; unreadable ones are shown as such). */
typedef struct dlp_report_opts {
  const char *title;          /* default "dlp evaluation" */
  const char *image_col;      /* default "image" */
  const char *const *labels;  /* class names by index, or NULL (numbers) */
  size_t n_labels;
  size_t max_examples;        /* default 60 */
  int thumb_size;             /* longest side in pixels, default 128 */
  const char *pipeline_desc;  /* a line about the pipeline, or NULL */
} dlp_report_opts;
DLP_API void dlp_report_opts_init(dlp_report_opts *o);
DLP_API DLP_MUST_CHECK int dlp_report_write_html(
    dlp_ctx *ctx, const dlp_frame *f, const dlp_eval_opts *eo,
    const dlp_report_opts *ro, const char *path);

/* --- Tuning --------------------------------------------------------------- */

/* A grid of parameter values (ParamGridBuilder): every combination of the
 * values given for each parameter. */
typedef struct dlp_param_grid dlp_param_grid;
DLP_API DLP_MUST_CHECK int dlp_param_grid_new(dlp_ctx *ctx,
                                              dlp_param_grid **out);
DLP_API void dlp_param_grid_free(dlp_param_grid *g);
/* Adds a parameter (MLlib or CLI name; it applies to the first stage of the
 * pipeline that has it) with n values as text. */
DLP_API DLP_MUST_CHECK int dlp_param_grid_add(dlp_ctx *ctx, dlp_param_grid *g,
                                              const char *param,
                                              const char *const *values,
                                              size_t n);
/* Adds from text: "reg=0.01,0.05,0.1;elastic-net=0,0.3". */
DLP_API DLP_MUST_CHECK int dlp_param_grid_parse(dlp_ctx *ctx,
                                                dlp_param_grid *g,
                                                const char *spec);
/* Number of combinations (1 for an empty grid). */
DLP_API size_t dlp_param_grid_count(const dlp_param_grid *g);

typedef struct dlp_tune_opts {
  int folds;             /* >= 2: CrossValidator with k folds; 0:
                            TrainValidationSplit (default 3) */
  double train_ratio;    /* TrainValidationSplit, default 0.75 */
  uint64_t seed;         /* fold assignment, default 42 */
  int parallelism;       /* models fitted at once, default 1 */
  const char *metric;    /* default "accuracy" (f1 in MLlib; accuracy is
                            what the sparkdl examples report) */
  dlp_eval_opts eval;    /* columns for the metric */
  int refit;             /* 1 (default): fit the best combination on all the
                            data for dlp_tune_result_best_model */
} dlp_tune_opts;
DLP_API void dlp_tune_opts_init(dlp_tune_opts *o);

typedef struct dlp_tune_result dlp_tune_result;
/* Fits the pipeline for every grid combination on every fold and scores it
 * on the held-out part. The leading stages that are transformers and whose
 * parameters are not in the grid (the featurizer) run once over the whole
 * table; the folds and combinations reuse that cached table. */
DLP_API DLP_MUST_CHECK int dlp_tune(dlp_ctx *ctx, const dlp_pipeline *p,
                                    const dlp_param_grid *g,
                                    const dlp_frame *data,
                                    const dlp_tune_opts *o,
                                    dlp_tune_result **out);
DLP_API void dlp_tune_result_free(dlp_tune_result *r);
DLP_API size_t dlp_tune_result_count(const dlp_tune_result *r);
/* Combination i: its settings as text ("regParam=0.05 elasticNetParam=0.3",
 * borrowed), the metric's mean and standard deviation over the folds. */
DLP_API const char *dlp_tune_result_params(const dlp_tune_result *r, size_t i);
DLP_API double dlp_tune_result_mean(const dlp_tune_result *r, size_t i);
DLP_API double dlp_tune_result_std(const dlp_tune_result *r, size_t i);
DLP_API size_t dlp_tune_result_best(const dlp_tune_result *r);
/* The best combination refitted on all the data; ownership moves to the
 * caller (NULL when refit was 0 or it was already taken). */
DLP_API dlp_pipeline_model *dlp_tune_result_take_model(dlp_tune_result *r);

/* ------------------------------------------------------------------------
 * Augmentation and perceptual hashes
 *
 * Training-time augmentation in the manner of torchvision's
 * RandomResizedCrop + RandomHorizontalFlip + ColorJitter, drawn from a seed
 * per image so that a run is reproducible whatever the thread count:
 *
 *     dlp_augment a;
 *     dlp_augment_init(&a);                       // torchvision defaults
 *     uint64_t s = dlp_augment_seed(42, epoch, i); // one seed per image
 *     if (dlp_image_augment_to_tensor(ctx, img, &a, s, &pp, x) != DLP_OK) ...
 *
 * Perceptual hashes find the same picture at another size or in another
 * file: pHash (DCT) and dHash (gradient), 64 bits each, compared by Hamming
 * distance; dlp_hash_files hashes many files in parallel,
 * dlp_hash_nearest finds, for each file of one set, its nearest in another
 * (how scripts/pretrain-data.sh removes the demo's images from the
 * pretraining set) and dlp_hash_pairs the near-duplicates within one set;
 * `dlp dedup` is their command.
 * ------------------------------------------------------------------------ */

/* What to randomise. dlp_augment_init sets the defaults given. */
typedef struct dlp_augment {
  /* 1 (default): random resized crop: a box of area scale[0..1] times the
   * image's and aspect ratio (w/h) ratio[0..1] (log-uniform), 10 tries, then
   * the centre crop torchvision falls back to. 0: the whole image. */
  int random_crop;
  double scale[2]; /* default {0.08, 1.0}; 0 < scale[0] <= scale[1] */
  double ratio[2]; /* default {3/4, 4/3}; 0 < ratio[0] <= ratio[1] */
  double hflip;    /* probability of a left-right flip, default 0.5 */
  /* Colour jitter j >= 0: factor uniform in [max(0, 1 - j), 1 + j], applied
   * in the fixed order brightness, contrast, saturation. Default 0.2 each;
   * 0 turns one off. */
  double brightness, contrast, saturation;
} dlp_augment;

DLP_API void dlp_augment_init(dlp_augment *a);

/* One draw: the crop box in source pixels, the flip and the factors. */
typedef struct dlp_augment_params {
  int32_t x, y, width, height; /* crop box (left, top, size) */
  int flip;                    /* 1: mirror left-right after the crop */
  double brightness, contrast, saturation; /* factors; 1 = unchanged */
} dlp_augment_params;

/* A seed for image `index` in epoch `epoch` of a run seeded `seed`: a hash,
 * so neighbouring indices get unrelated streams. */
DLP_API uint64_t dlp_augment_seed(uint64_t seed, uint64_t epoch,
                                  uint64_t index);

/* Draws the parameters for a width x height image from seed. Fails with
 * DLP_ERR_ARG for a bad size or bad options (the message names the field). */
DLP_API DLP_MUST_CHECK int dlp_augment_draw(dlp_ctx *ctx,
                                            const dlp_augment *a,
                                            int32_t width, int32_t height,
                                            uint64_t seed,
                                            dlp_augment_params *out);

/* Applies drawn parameters: cuts the box, resizes it to width x height with
 * filter (PIL-exact, as dlp_image_resize without premultiplied alpha), flips,
 * then adjusts brightness, contrast and saturation on 8 bits as
 * torchvision's functional adjust_* do on uint8 tensors: in float32,
 * blend = f * img + (1 - f) * other, clamped to [0, 255] and truncated;
 * other is 0 (brightness), the mean of the grayscale image (contrast; the
 * grayscale is trunc(0.2989 R + 0.587 G + 0.114 B), its mean exact in
 * double then rounded to float) or the grayscale image (saturation; no-op
 * for gray). Gray images stay gray; a fourth (alpha) channel is dropped, so
 * the result has 1 or 3 channels. *out is new and the caller's. */
DLP_API DLP_MUST_CHECK int dlp_augment_apply(dlp_ctx *ctx,
                                             const dlp_image *src,
                                             const dlp_augment_params *prm,
                                             int32_t width, int32_t height,
                                             dlp_filter filter,
                                             dlp_image **out);

/* Draw + apply + normalise in one call: writes dlp_preprocess_size(p) floats
 * to out with p's size, filter, normalisation and layout (p->center_crop
 * must be 0: the augmentation chooses the crop). */
DLP_API DLP_MUST_CHECK int dlp_image_augment_to_tensor(
    dlp_ctx *ctx, const dlp_image *img, const dlp_augment *a, uint64_t seed,
    const dlp_preprocess *p, float *out);

/* dlp_batch_files_to_tensor with augmentation: file i is decoded (full
 * size, alpha composited on white) and augmented with seeds[i]. */
DLP_API DLP_MUST_CHECK int dlp_batch_files_augment_to_tensor(
    dlp_ctx *ctx, const char *const *paths, size_t n, const dlp_augment *a,
    const uint64_t *seeds, const dlp_preprocess *p, float *out, int *status,
    char **errmsg);

/* pHash of an image: luma (PIL's "L": ITU-R 601-2, (19595 R + 38470 G +
 * 7471 B + 32768) >> 16), PIL-exact BOX resize to 32x32, 2-D DCT-II, the
 * top-left 8x8 block, bit = coefficient > median of those 64 (DC included,
 * as imagehash does). Bit 63 is coefficient (0,0), then row by row, so
 * "%016llx" prints imagehash's hex order. Coefficients under 1e-6 in
 * magnitude count as 0 (rounding noise of true zeros), so a uniform image
 * hashes to 0x8000000000000000. Alpha is ignored: decode with
 * keep_alpha = 0 (the default) to composite on white first. */
DLP_API DLP_MUST_CHECK int dlp_image_phash(dlp_ctx *ctx, const dlp_image *img,
                                           uint64_t *out);
/* pHash of the left-right mirror of img (computed from the same DCT, the
 * odd horizontal frequencies negated). */
DLP_API DLP_MUST_CHECK int dlp_image_phash_mirror(dlp_ctx *ctx,
                                                  const dlp_image *img,
                                                  uint64_t *out);
/* dHash: luma, BOX resize to 9x8, bit = pixel > its left neighbour, bit 63
 * first (row by row). */
DLP_API DLP_MUST_CHECK int dlp_image_dhash(dlp_ctx *ctx, const dlp_image *img,
                                           uint64_t *out);
/* Number of differing bits. */
DLP_API int dlp_hamming64(uint64_t a, uint64_t b);

/* The hashes of one file. */
typedef struct dlp_file_hash {
  int status;            /* DLP_OK, or why the file could not be hashed */
  uint64_t phash;        /* dlp_image_phash of the decoded image */
  uint64_t phash_mirror; /* dlp_image_phash_mirror */
  uint64_t dhash;        /* dlp_image_dhash */
  int flat;              /* 1: the image is uniform (no AC coefficient), so
                            its pHash carries no information */
  /* pHash (and its mirror) of the bounding box of the drawing: the pixels
   * whose luma is under 247 (not white), so that clip art cropped tight and
   * the same drawing on a larger canvas hash alike. */
  uint64_t phash_trim, phash_trim_mirror;
  int flat_trim;       /* 1: that box is uniform (a filled rectangle, a
                          line), so the trimmed hashes are not compared */
  uint8_t sha256[32];  /* of the file's bytes */
  int32_t width, height; /* of the decoded image */
} dlp_file_hash;

/* Hashes n files in parallel on the context's threads into out[n]. A file
 * that cannot be read or decoded gets its status in out[i].status (and its
 * message in errmsg[i] when errmsg is not NULL; the caller frees each with
 * free()); the call goes on. Returns DLP_OK unless it could not run. */
DLP_API DLP_MUST_CHECK int dlp_hash_files(dlp_ctx *ctx,
                                          const char *const *paths, size_t n,
                                          dlp_file_hash *out, char **errmsg);

/* The nearest reference of one query. */
typedef struct dlp_hash_match {
  size_t ref;      /* index into the references; SIZE_MAX when none */
  int distance;    /* pHash Hamming distance, the smallest of direct,
                      mirrored, trimmed and trimmed-mirrored; 0 for
                      identical bytes; 65 when none */
  int mirrored;    /* 1: the distance is to the mirrored image */
  int trimmed;     /* 1: the distance is between the trimmed hashes */
  int same_bytes;  /* 1: the files are byte-identical (SHA-256) */
} dlp_hash_match;

/* For each query i, the reference nearest by pHash (lowest index on ties;
 * a byte-identical reference wins). Entries whose status is not DLP_OK are
 * skipped (a failed query gets ref SIZE_MAX); flat images match only
 * byte-identical files (their hashes all look alike). Brute force:
 * n_query x n_ref x 4 popcounts, about 45 ms for 8,000 x 800 on one core. */
DLP_API DLP_MUST_CHECK int dlp_hash_match_nearest(
    dlp_ctx *ctx, const dlp_file_hash *refs, size_t n_ref,
    const dlp_file_hash *queries, size_t n_query, dlp_hash_match *out);

/* Which hash and which of its variants a comparison uses, and how far
 * apart two files may be to count as the same picture. */
typedef enum dlp_hash_kind {
  DLP_HASH_PHASH = 0, /* dlp_file_hash.phash (default) */
  DLP_HASH_DHASH = 1  /* dlp_file_hash.dhash (no variants) */
} dlp_hash_kind;

typedef struct dlp_hash_cmp {
  dlp_hash_kind kind; /* default DLP_HASH_PHASH */
  int mirror; /* pHash: also compare with the mirrored picture; default 0 */
  int trim;   /* pHash: also compare the trimmed hashes; default 0 */
  int threshold; /* the largest distance that matches, 0..64; default 8 */
} dlp_hash_cmp;

DLP_API void dlp_hash_cmp_init(dlp_hash_cmp *c);

/* The distance of two hashed files under c, the smallest over the variants
 * c turns on (direct first on ties): 0 for byte-identical files (SHA-256),
 * 65 when they cannot be compared (either failed, or either is uniform and
 * the bytes differ). *how (may be NULL) gets the distance and the variant;
 * its ref is left alone. */
DLP_API int dlp_hash_distance(const dlp_hash_cmp *c, const dlp_file_hash *a,
                              const dlp_file_hash *b, dlp_hash_match *how);

/* dlp_hash_match_nearest under c: for each query, the nearest reference
 * within c->threshold (ref SIZE_MAX and distance 65 when none), the
 * byte-identical one first, then the lowest distance, then the lowest
 * index. Runs on the context's threads. */
DLP_API DLP_MUST_CHECK int dlp_hash_nearest(
    dlp_ctx *ctx, const dlp_file_hash *refs, size_t n_ref,
    const dlp_file_hash *queries, size_t n_query, const dlp_hash_cmp *c,
    dlp_hash_match *out);

/* Two files of one set within the threshold of each other. */
typedef struct dlp_hash_pair {
  size_t a, b;    /* indices, a < b */
  dlp_hash_match m; /* distance and variant (m.ref = b) */
} dlp_hash_pair;

/* Every pair of the n files within c->threshold (the smaller of
 * dlp_hash_distance(a, b) and (b, a): with the mirror they can differ),
 * sorted by a then b, in
 * *out (malloc'd, NULL when there is none; the caller frees it) and its
 * length in *n_out. Brute force (n^2 / 2 comparisons of a few ns each:
 * about 2 s for 30,000 files on one core, 3-5 times that with the mirror
 * and trim variants) on the context's threads. */
DLP_API DLP_MUST_CHECK int dlp_hash_pairs(dlp_ctx *ctx,
                                          const dlp_file_hash *h, size_t n,
                                          const dlp_hash_cmp *c,
                                          dlp_hash_pair **out, size_t *n_out);

/* ------------------------------------------------------------------------
 * Fine-tuning
 *
 * Trains a new classifier head on a zoo architecture or a Keras model file
 * from a frame of labelled images, and saves the result as a Keras full
 * model that dlp_model_open (model_file), 'dlp predict/apply --model-file'
 * and the SQL functions read:
 *
 *     dlp_finetune_opts o;
 *     dlp_finetune_opts_init(&o);       // head only, 5 epochs of Adam
 *     o.model = "MobileNetV2";
 *     o.head = "dense:256,dropout:0.5";
 *     dlp_finetune_result r;
 *     if (dlp_finetune(ctx, frame, &o, "flowers.h5", &r) != DLP_OK) ...
 *     // r.epochs[i]: losses and accuracies; r.classes: the label order
 *     dlp_finetune_result_clear(&r);
 *
 * The model is cut at its feature layer (the pooled vector), the head's
 * layers and a final Dense(K) are appended, and the graph trains with
 * oneDNN's convolution primitives and dlp's threaded kernels (bit-identical
 * run to run for a given thread count). Images are decoded once: training images are kept a
 * little larger than the input (aspect kept) and augmented from that cache
 * every epoch; validation images are resized to the input exactly as
 * inference does, so the validation predictions equal what the saved model
 * gives for those files. The saved model ends in a softmax; it keeps no
 * normalisation, so run it with the same preprocessing (result.norm, e.g.
 * '--preprocess tf'). The class names, in output order, go to
 * <out without .h5>.labels.json.
 * ------------------------------------------------------------------------ */

/* One epoch's numbers. */
typedef struct dlp_finetune_epoch {
  int epoch;                 /* 0-based */
  double lr;                 /* learning rate of the epoch's last step */
  double train_loss, train_acc;
  double val_loss, val_acc;  /* NAN without validation images */
  double seconds;            /* wall time of the epoch, validation included */
} dlp_finetune_epoch;

/* Called after every epoch; returning nonzero stops training early (not an
 * error). */
typedef int (*dlp_finetune_epoch_fn)(void *user, const dlp_finetune_epoch *s);

typedef struct dlp_finetune_opts {
  /* The base model: a zoo name or a cached model (model), or a Keras/ONNX
   * file (model_file); exactly one. random_weights (zoo only, default 0)
   * uses seeded random weights (weights_seed, default 0) instead of cached
   * ones: for tests, the features then mean little. */
  const char *model, *model_file;
  const char *model_dir; /* cache folder; NULL = $DLP_MODEL_DIR or default */
  int random_weights;
  uint64_t weights_seed;
  int32_t input_width, input_height; /* 0 (default): the model's size */
  /* Normalisation; default (norm_set 0): the zoo's, else the file's (none
   * for a Keras file). */
  dlp_norm norm;
  int norm_set;
  /* Where the base is cut: default NULL = the zoo's feature layer, or for a
   * file the input of its last dense layer. Its output must be (N, C). */
  const char *feature_layer;
  /* Layers between the features and the final Dense(K), comma-separated:
   * "dense:N" (ReLU), "dense:N:linear", "dropout:R" (0 <= R < 1; the saved
   * file records the first rate). Default NULL or "": none. */
  const char *head;
  /* Layers up to and including this one keep their weights (Keras'
   * trainable=False; frozen batch norms run in inference mode). Default
   * NULL: the feature layer, so only the head trains; "": nothing frozen. */
  const char *freeze_until;
  const char *image_col, *label_col; /* default "image", "label" (strings) */
  int epochs;           /* default 5 */
  size_t batch_size;    /* default 16 */
  double lr;            /* default 1e-3 */
  const char *optimizer; /* "adam" (default), "adamw" or "sgd" */
  double momentum;      /* sgd, default 0.9 */
  double weight_decay;  /* default 0 (L2; decoupled for adamw) */
  const char *schedule; /* "cosine" (default), "constant" or "step" (x0.1
                           every epoch) */
  double val_split;     /* fraction held out for validation, default 0.2;
                           0 = none. Stratified: a class of n >= 2 labelled
                           rows gives min(n - 1, max(1, round(val_split *
                           n))) of them (halves round up), a class of one
                           row none; which rows is a seeded shuffle's
                           choice */
  uint64_t seed;        /* split, head initialisation, shuffles, augmentation
                           and dropout; default 0 */
  int augment;          /* 1 (default): random resized crop, flip and jitter
                           as aug says; 0: the whole image, resized */
  dlp_augment aug;      /* default dlp_augment_init's */
  int patience;         /* early stopping on val loss; default 0 = off */
  int restore_best;     /* 1 (default): the saved model has the weights of
                           the epoch with the lowest val loss (Keras'
                           restore_best_weights), resumed epochs included;
                           0, or without validation images: the last
                           epoch's */
  const char *checkpoint_dir; /* a checkpoint after every epoch; NULL =
                                 none */
  int resume;           /* 1: continue from checkpoint_dir's checkpoint when
                           there is one (same data and options); default 0 */
  int overwrite;        /* replace existing output files; default 0 */
  dlp_finetune_epoch_fn on_epoch; /* may be NULL */
  void *on_epoch_user;
} dlp_finetune_opts;

DLP_API void dlp_finetune_opts_init(dlp_finetune_opts *o);

/* What a run did. Every pointer is owned by the result: release with
 * dlp_finetune_result_clear. */
typedef struct dlp_finetune_result {
  char **classes;       /* n_classes names, sorted: output i is classes[i] */
  size_t n_classes;
  size_t n_train, n_val;
  size_t *n_val_class;  /* validation images of each class (n_classes) */
  size_t n_skipped;     /* rows left out: no label, or an undecodable
                           image */
  char *skip_example;   /* the first undecodable image's error, or NULL */
  dlp_finetune_epoch *epochs; /* the epochs run in this call */
  int n_epochs;
  int first_epoch;      /* > 0 when resumed from a checkpoint */
  int best_epoch;       /* lowest val loss (train loss without validation)
                           among the epochs of this call; -1 when none
                           ran */
  int saved_epoch;      /* whose weights were saved: the best val loss's
                           with restore_best and validation images, else
                           the last epoch's; 0-based */
  int stopped_early;
  int64_t n_trainable;  /* trainable parameters */
  char *feature_layer;
  int32_t input_width, input_height;
  dlp_norm norm;        /* the preprocessing the saved model needs */
  char *labels_path;    /* where the class names were written */
  /* The saved model's outputs on the validation images: n_val rows of
   * n_classes probabilities, row i being frame row val_rows[i]. */
  size_t *val_rows;
  float *val_probs;
} dlp_finetune_result;

DLP_API void dlp_finetune_result_clear(dlp_finetune_result *r);

/* Fine-tunes as opts says (required: it names the model) on the rows of f
 * and writes the model to out_path (.h5) and the class names next to it.
 * *result (may be NULL) is filled on success and cleared on failure.
 * Reports progress as "decoding" (images) and "fine-tuning" (batches done,
 * batches in all); a cancel fails with DLP_ERR_ARG. Rows without a label,
 * or whose image cannot be decoded, are skipped (counted in n_skipped).
 * Errors: DLP_ERR_ARG (bad options, a bad head spec, fewer than 2 classes,
 * a class with no training image, a training or validation loss that is
 * not finite (training stops there, as Keras' TerminateOnNaN), cancelled), DLP_ERR_NOT_FOUND (model,
 * column, or a freeze_until / feature_layer no layer has), DLP_ERR_IO
 * (out_path or the labels file exists without overwrite),
 * DLP_ERR_UNSUPPORTED (a layer that cannot train or be saved),
 * DLP_ERR_NOMEM. */
DLP_API DLP_MUST_CHECK int dlp_finetune(dlp_ctx *ctx, const dlp_frame *f,
                                        const dlp_finetune_opts *opts,
                                        const char *out_path,
                                        dlp_finetune_result *result);

/* Tuning many models (sparkdl's fitMultiple + selection): one model per
 * parameter map, trained in parallel on the same decoded images and the
 * same train/validation split, the best one saved:
 *
 *     dlp_finetune_opts maps[2];
 *     dlp_finetune_opts_init(&maps[0]);
 *     maps[0].model = "MobileNetV2";
 *     maps[1] = maps[0];
 *     maps[1].lr = 1e-4;                       // the map's own settings
 *     dlp_finetune_grid_opts go;
 *     dlp_finetune_grid_opts_init(&go);        // by val_loss
 *     dlp_finetune_grid_result r;
 *     if (dlp_finetune_grid(ctx, frame, maps, 2, &go, "best.h5", &r) ...
 *     // r.runs[r.best]: the saved model's numbers; r.metric[i] each map's
 *     dlp_finetune_grid_result_clear(&r);
 *
 * Every map is a whole dlp_finetune_opts. What decides the images and the
 * split must be the same in all of them: model, model_file, model_dir,
 * random_weights, weights_seed, input size, norm, feature_layer, image_col,
 * label_col, val_split (> 0), seed, overwrite; checkpoints are refused.
 * Any other field may vary (lr, batch_size, epochs, optimizer, momentum,
 * weight_decay, schedule, head, freeze_until, augment, aug, patience,
 * restore_best). A map's model is bit-identical to what dlp_finetune makes
 * with those options and the same kernel threads, whatever the parallelism
 * (each map runs on its own context; images are shared read-only). */

/* Called after every epoch of map `map`, never by two threads at once;
 * nonzero stops that map's training (not an error). */
typedef int (*dlp_finetune_grid_epoch_fn)(void *user, size_t map,
                                          const dlp_finetune_epoch *s);

typedef struct dlp_finetune_grid_opts {
  int parallelism;    /* maps trained at once; 0 (default): min(n_maps,
                         threads of ctx). Each gets max(1, threads /
                         parallelism) kernel threads */
  const char *metric; /* "val_loss" (default, lowest wins) or "val_acc"
                         (highest wins), of each map's saved epoch; ties go
                         to the earlier map */
  const char *const *map_paths; /* NULL, or n_maps paths (entries may be
                                   NULL): map i's model is also saved there,
                                   with its labels file */
  dlp_finetune_grid_epoch_fn on_epoch; /* may be NULL; the maps' own
                                          on_epoch are not called */
  void *on_epoch_user;
} dlp_finetune_grid_opts;

DLP_API void dlp_finetune_grid_opts_init(dlp_finetune_grid_opts *o);

/* One entry per map. Release with dlp_finetune_grid_result_clear. */
typedef struct dlp_finetune_grid_result {
  size_t n_maps;
  dlp_finetune_result *runs; /* as dlp_finetune fills it; empty when the
                                map failed. labels_path: map_paths[i]'s
                                labels file, or NULL */
  int *status;               /* DLP_OK or the map's error code */
  char **errors;             /* NULL or why the map failed */
  double *metric;            /* the selection metric; NAN when failed */
  double *seconds;           /* wall time of the map */
  size_t best;               /* the saved map; n_maps when all failed */
  char *labels_path;         /* where the best model's class names went */
  int parallelism;           /* as run */
  int kernel_threads;        /* per map */
} dlp_finetune_grid_result;

DLP_API void dlp_finetune_grid_result_clear(dlp_finetune_grid_result *r);

/* Trains maps[0..n_maps) (see above) and writes the best model to out_path
 * (.h5) and its class names next to it. A map that fails (an error, or a
 * loss that is not finite) is recorded in result and the others go on.
 * Returns DLP_OK when at least one map trained; when all failed, the first
 * failure's code with every map's reason in the message, and *result
 * (may be NULL) still says what each map did. Errors before any training
 * (bad arguments, maps that disagree on shared fields, a bad map's
 * options naming the map, the data errors of dlp_finetune, existing output
 * files without overwrite) leave *result cleared. Progress: "decoding",
 * then "fine-tuning grid" (maps done, maps in all). */
DLP_API DLP_MUST_CHECK int dlp_finetune_grid(
    dlp_ctx *ctx, const dlp_frame *f, const dlp_finetune_opts *maps,
    size_t n_maps, const dlp_finetune_grid_opts *go, const char *out_path,
    dlp_finetune_grid_result *result);

#ifdef __cplusplus
}
#endif
#endif /* DLP_H */
