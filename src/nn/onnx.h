/* onnx.h - the ONNX importer: a ModelProto (opset 9-17, the CNN op set)
 * into a finalized nn_graph.
 *
 *     nn_graph *g = NULL;
 *     if (nn_onnx_load_file(&e, "resnet50.onnx", max_bytes, &g) != DLP_OK)
 *       ... e.msg, e.g. "ONNX node 'n3' (Foo): op 'Foo' is not supported
 *           (supported: Conv, Gemm, ...)"
 *     nn_plan_new(&e, g, NN_BACKEND_DNNL, batch, threads, &plan); ...
 *
 * The graph: the first graph input that is not an initializer is the input
 * (first dim = the batch, -1; other dims must be fixed or given through
 * the _sized variants); every graph output is marked. Node names are the
 * ONNX node names (or the first output's name when a node has none), so
 * nn_graph_cut takes them for --layer; consts keep the initializer names.
 * Activations NCHW; Conv weights OIHW as in ONNX; Gemm with transB = 1 keeps
 * (out, in) with attr.dense.transb. input_spec: channels, height, width of a
 * 4-D input; norm DLP_NORM_NONE (the caller knows the preprocessing).
 *
 * Ops: Conv, Gemm (transA = 0), MatMul (constant 2-D right side),
 * BatchNormalization, Relu, LeakyRelu, Sigmoid, Tanh, HardSigmoid, Clip,
 * Softmax, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Add, Mul,
 * Concat, Flatten, Reshape, Transpose, Pad, Dropout, Identity, Constant,
 * Sub, Div (by a constant), HardSwish. Nodes whose inputs are all constants
 * (Add, Sub, Mul, Div, Concat, Reshape, Transpose, Cast, Slice, Gather,
 * Unsqueeze, Squeeze, ConstantOfShape) and Shape are evaluated at import
 * (onnx_fold.h), so computed pad amounts and reshape(x.shape[0], -1) work;
 * a target shape whose first entry is the batch becomes -1.
 * Weights: float32 (float64 converted), raw_data or float_data.
 */
#ifndef DLP_NN_ONNX_H
#define DLP_NN_ONNX_H

#include "graph.h"

/* Parses an ONNX model held in memory into a new finalized graph (*out;
 * free with nn_graph_free). buf is not kept. Errors: DLP_ERR_CORRUPT
 * (malformed or truncated bytes, a tensor whose data does not match its
 * dims, a cycle, a dangling name, inconsistent shapes), DLP_ERR_UNSUPPORTED
 * (an op, attribute, data type or opset dlp does not run; external data),
 * DLP_ERR_TOO_LARGE (a tensor above NN_MAX_NUMEL), DLP_ERR_ARG (a symbolic
 * input size not given), DLP_ERR_NOMEM. *out is NULL on failure. */
int nn_onnx_load(dlp_err *e, const uint8_t *buf, size_t len, nn_graph **out);
/* Same, with the input's height and width given (h, w > 0 fill symbolic
 * dims 2 and 3 of a 4-D input, and must equal them where the file fixes
 * them; 0 keeps the file's). */
int nn_onnx_load_sized(dlp_err *e, const uint8_t *buf, size_t len, int h, int w,
                       nn_graph **out);
/* The same from a file of at most max_bytes (0 = no limit;
 * DLP_ERR_TOO_LARGE above), with DLP_ERR_NOT_FOUND / DLP_ERR_IO for the
 * file; messages start with the path. */
int nn_onnx_load_file(dlp_err *e, const char *path, uint64_t max_bytes,
                      nn_graph **out);
int nn_onnx_load_file_sized(dlp_err *e, const char *path, uint64_t max_bytes,
                            int h, int w, nn_graph **out);

#endif /* DLP_NN_ONNX_H */
