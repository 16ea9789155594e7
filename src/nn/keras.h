/* keras.h - Keras HDF5 importer: full-model files (model.save()) into an
 * nn_graph, and weights-only files (keras-applications layout) into the
 * consts of a graph built with Keras layer names (the zoo).
 *
 *     nn_graph *g = NULL;
 *     if (nn_keras_load_file(&e, "model.h5", max_bytes, &g) != DLP_OK) ...
 *     // or, for a zoo graph whose consts follow the "<layer>/kernel" names:
 *     if (nn_keras_load_weights(&e, "resnet50_weights_tf_dim_ordering_tf_"
 *                               "kernels.h5", max_bytes, g) != DLP_OK) ...
 *
 * The files are read with libhdf5; the model config JSON with cJSON. A model
 * file never runs code: Lambda/TFOpLambda and unknown layer classes are
 * refused with DLP_ERR_UNSUPPORTED naming the layer. channels_first is
 * refused. Weights are float32 (float16/float64 are converted). Calls may
 * come from any thread: they are serialised inside (libhdf5 is built
 * without thread safety).
 *
 * dlp's own facts about a model travel in root attributes that Keras
 * ignores (keras_save.c writes them into full-model files):
 *   dlp_class_names  a JSON list of strings, the class of each output in
 *                    order ('["cat", "dog"]')
 *   dlp_preprocess   "tf", "caffe", "torch" or "none"
 *   dlp_input_size   "HxW", the input size the model was trained at
 * The loader takes dlp_preprocess as g->input_spec.norm and dlp_input_size
 * as the size of a model whose input size is unknown (None), and checks the
 * class names against the output width; nn_keras_file_meta reads them all.
 * A malformed one is an error naming the file and the attribute.
 */
#ifndef DLP_NN_KERAS_H
#define DLP_NN_KERAS_H

#include "graph.h"

/* Loads a full-model Keras 2.x / tf.keras 2.x HDF5 file (root attribute
 * `model_config` + group `model_weights`; Sequential or functional) into a
 * new finalized graph (*out, free with nn_graph_free). The input size comes
 * from the InputLayer's batch_input_shape; a model with unknown spatial
 * dims fails with DLP_ERR_ARG asking for a size (use the _sized variant).
 * Files over max_bytes (0 = no limit) are refused with DLP_ERR_TOO_LARGE.
 * Errors: DLP_ERR_NOT_FOUND/IO (file), DLP_ERR_FORMAT (not HDF5 / not a
 * Keras model), DLP_ERR_CORRUPT (bad config or datasets), DLP_ERR_SCHEMA
 * (weight shapes), DLP_ERR_UNSUPPORTED (layer or option dlp cannot run),
 * DLP_ERR_TOO_LARGE, DLP_ERR_NOMEM. */
int nn_keras_load_file(dlp_err *e, const char *path, uint64_t max_bytes,
                       nn_graph **out);

/* Same, with the input spatial size given (h, w > 0 override the file's
 * height and width, which must then be unknown (None) or equal; 0 keeps the
 * file's). */
int nn_keras_load_file_sized(dlp_err *e, const char *path, uint64_t max_bytes,
                             int h, int w, nn_graph **out);

/* dlp's attributes of a Keras file (see above). */
typedef struct nn_keras_meta {
  char **class_names; /* n_class_names malloc'd strings; NULL when absent */
  int n_class_names;
  bool has_norm; /* dlp_preprocess present */
  dlp_norm norm;
  int height, width; /* dlp_input_size; 0 when absent */
} nn_keras_meta;

/* The most class names a file may list, and the longest name (bytes). */
#define NN_KERAS_MAX_CLASSES (1 << 20)
#define NN_KERAS_MAX_CLASS_NAME 4096

/* Reads dlp's root attributes of the HDF5 file at path into *m (all absent
 * is fine: *m is then zeroed); free with nn_keras_meta_clear. Errors:
 * DLP_ERR_NOT_FOUND/IO/FORMAT/TOO_LARGE (the file), DLP_ERR_CORRUPT (an
 * attribute that is not what the list above says: not one JSON string, not
 * a list of strings, more than NN_KERAS_MAX_CLASSES names or one longer
 * than NN_KERAS_MAX_CLASS_NAME, an unknown preprocessing, a bad size),
 * naming the file and the attribute; DLP_ERR_NOMEM. */
int nn_keras_file_meta(dlp_err *e, const char *path, uint64_t max_bytes,
                       nn_keras_meta *m);
void nn_keras_meta_clear(nn_keras_meta *m);

/* Loads a weights-only file (root attribute `layer_names`, per layer group
 * attribute `weight_names`; a full-model file's model_weights also works)
 * into the consts of g named "<layer>/<weight>" (kernel, bias,
 * depthwise_kernel, pointwise_kernel, gamma, beta, moving_mean,
 * moving_variance), matched by the weight names, converting Keras layouts
 * to the graph's (conv HWIO -> OIHW, depthwise (KH,KW,C,M) -> (C*M,1,KH,KW),
 * pointwise -> (O,C*M,1,1), dense (in,out) kept, or transposed for a dense
 * node with transb). Call it before nn_graph_optimize (folding changes the
 * consts). Every graph layer with weights must be in the file
 * (DLP_ERR_NOT_FOUND naming the first missing layer; a missing classifier
 * suggests a _notop file); a batch norm's gamma/beta may be absent from the
 * file (scale/center off: the graph's 1/0 stay). Shapes must match before
 * anything is read (DLP_ERR_SCHEMA naming layer, weight, found and expected
 * Keras shapes). File layers the graph lacks are ignored when they only
 * hold dense (rank <= 2) weights, i.e. a classifier top the graph omits;
 * any other is DLP_ERR_SCHEMA (weights for another architecture). On
 * failure some consts may already hold the file's values. */
int nn_keras_load_weights(dlp_err *e, const char *path, uint64_t max_bytes,
                          nn_graph *g);

/* The names in a weights-only or full-model file's layer list (root
 * `layer_names`, or `model_weights/layer_names`), for recognising which
 * architecture a file belongs to. *names is a malloc'd array of malloc'd
 * strings; free with nn_keras_names_free. */
int nn_keras_file_layer_names(dlp_err *e, const char *path, uint64_t max_bytes,
                              char ***names, int *n);
void nn_keras_names_free(char **names, int n);

/* ------------------------------------------------------------------------
 * Writing (keras_save.c): the inverse of the loaders above.
 * ------------------------------------------------------------------------ */

typedef struct nn_keras_save_opts {
  bool overwrite;         /* replace an existing file; default false */
  bool weights_only;      /* write the keras-applications weights layout
                             (root layer_names) instead of a full model;
                             default false */
  const char *model_name; /* the config's model name; default NULL =
                             g->name, else "model" */
  float dropout_rate;     /* rate written for Dropout layers (identity nodes
                             named "dropout..."; the graph keeps no rate);
                             default 0.5 */
  /* dlp's attributes (full models only; see the top of this file): */
  char *const *class_names; /* n_class_names names in output order, written
                               as dlp_class_names; default NULL = none */
  size_t n_class_names;
  dlp_norm norm; /* written as dlp_preprocess when norm_set; */
  bool norm_set; /* default false: g->input_spec.norm unless it is NONE.
                    DLP_NORM_CUSTOM is never written (no name says its
                    mean and std). dlp_input_size is the graph's input
                    size, when known. */
} nn_keras_save_opts;

/* Fills o with the defaults above. */
void nn_keras_save_opts_init(nn_keras_save_opts *o);
/* Sets the class names (n of them, in output order; o keeps the pointers)
 * and the preprocessing a saved classifier takes. */
void nn_keras_save_opts_labels(nn_keras_save_opts *o, char *const *names,
                               size_t n, dlp_norm norm);

/* Writes finalized graph g (o NULL = defaults) to path as a tf.keras 2.x
 * HDF5 file: root attributes keras_version, backend, model_config (a
 * "Functional" channels_last model) and group model_weights, weights in
 * Keras layouts (conv HWIO, depthwise (KH,KW,C,M), dense (in,out)); or,
 * with weights_only, the layout nn_keras_load_weights reads (which still
 * needs every node to have a Keras layer: the layer list is the model's).
 * Ops become Conv2D/DepthwiseConv2D/SeparableConv2D ('valid', TF 'same', or
 * a ZeroPadding2D before 'valid' for other pads), Dense, BatchNormalization
 * (a zoo's all-ones scale=False gamma is left out, as in Keras), Activation,
 * ReLU, LeakyReLU, Softmax, pooling, Add, Multiply, Concatenate, Flatten (of
 * NHWC data, after the graph's transpose), ZeroPadding2D, Dropout; anything
 * else (Reshape, a broadcasting Add, NCHW flatten, ...) is refused. BN-folded
 * graphs (nn_graph_optimize) save too. Keras layer names come from the
 * weights' "<layer>/<role>" names, else the node names, made valid
 * (letters, digits, '_', '.', '-') and unique; an activation node named as
 * its conv/dense layer (how the zoo and the loader split a Keras layer) is
 * fused back into it. The file is written under a temporary name in the
 * same folder, synced and renamed, so nothing half written is ever at path.
 * Errors: DLP_ERR_ARG (NULL argument, graph not finalized),
 * DLP_ERR_ARG also when the class names are not one per output,
 * DLP_ERR_UNSUPPORTED (a node with no Keras equivalent, named), DLP_ERR_IO
 * (path exists and overwrite is off, folder not writable, HDF5 failure),
 * DLP_ERR_NOMEM. */
int nn_keras_save_file(dlp_err *e, const nn_graph *g, const char *path,
                       const nn_keras_save_opts *o);

#endif /* DLP_NN_KERAS_H */
