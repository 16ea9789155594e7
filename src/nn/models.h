/* models.h - internals shared by the public model API (model.c), the model
 * cache (models_cache.c) and the ImageNet class index (imagenet.c).
 *
 * The cache is a folder ($DLP_MODEL_DIR, default ~/.cache/dlp/models) with
 * the model files and an index.json:
 *
 *     {"version": 1, "models": [{"name": "MobileNetV2", "kind": "keras-weights",
 *       "file": "mobilenet_v2_..._224.h5", "sha256": "...", "bytes": 14536120,
 *       "width": 224, "height": 224, "preprocessing": "tf",
 *       "source": "/home/me/Downloads/..."}]}
 *
 * kind: "keras-weights" / "keras-weights-notop" (a zoo architecture's
 * weights-only file), "keras-model" / "onnx-model" (a full model file
 * registered under a name of its own).
 */
#ifndef DLP_NN_MODELS_H
#define DLP_NN_MODELS_H

#include "graph.h"

#define NN_CACHE_KIND_WEIGHTS "keras-weights"
#define NN_CACHE_KIND_WEIGHTS_NOTOP "keras-weights-notop"
#define NN_CACHE_KIND_KERAS "keras-model"
#define NN_CACHE_KIND_ONNX "onnx-model"

/* One entry of index.json; every string owned (NULL when absent). */
typedef struct nn_cache_item {
  char *name, *kind, *file, *sha256, *preprocessing, *source;
  uint64_t bytes;
  int32_t width, height;
} nn_cache_item;
void nn_cache_item_clear(nn_cache_item *it);

/* The cache folder: model_dir, else $DLP_MODEL_DIR, else
 * $HOME/.cache/dlp/models (DLP_ERR_ARG when none can be found). */
int nn_cache_dir(dlp_err *e, const char *model_dir, char *buf, size_t n);

/* The index entry called name (case-insensitive) into *it.
 * DLP_ERR_NOT_FOUND (no message set) when there is none; DLP_ERR_CORRUPT for
 * a malformed index. */
int nn_cache_lookup(dlp_err *e, const char *dir, const char *name,
                    nn_cache_item *it);

/* "<dir>/<file>" into buf. */
int nn_cache_path(dlp_err *e, const char *dir, const char *file, char *buf,
                  size_t n);

/* SHA-256 of a file as 64 lowercase hex digits (OpenSSL EVP). */
int nn_sha256_file(dlp_err *e, const char *path, char hex[65]);

typedef enum nn_file_kind {
  NN_FILE_KERAS = 1, /* HDF5 signature */
  NN_FILE_ONNX = 2   /* anything else that ends in .onnx or parses as one */
} nn_file_kind;

/* Tells a Keras HDF5 file from an ONNX file by signature (HDF5's 8-byte
 * magic), then by extension. */
int nn_model_file_kind(dlp_err *e, const char *path, nn_file_kind *kind);

/* Loads a full model file (Keras .h5 or ONNX) into a new finalized graph.
 * h, w > 0 fix the input size of a Keras model with unknown spatial dims. */
int nn_model_load_file(dlp_err *e, const char *path, uint64_t max_bytes,
                       int h, int w, nn_graph **out);

/* "tf", "caffe", "torch", "custom" or "none". */
const char *nn_norm_name(dlp_norm norm);

/* The zoo entry named name, compared case-insensitively, or NULL. */
struct nn_zoo_entry;
const struct nn_zoo_entry *nn_zoo_find_ci(const char *name);

#endif /* DLP_NN_MODELS_H */
