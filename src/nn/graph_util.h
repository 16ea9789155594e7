/* graph_util.h - internals shared by graph.c, passes.c and the planners:
 * shape inference of one node and of a whole graph at a concrete batch. */
#ifndef DLP_NN_GRAPH_UTIL_H
#define DLP_NN_GRAPH_UTIL_H

#include "graph.h"

/* A data-less tensor header with shape s (unused dims 1). */
int nn_graph_shape_tensor(const nn_shape *s, nn_tensor *t);
/* Output shape of node n given its input shapes (n->n_in of them). Errors
 * read "node 'name' (op): <kernel message>". */
int nn_graph_node_out_shape(dlp_err *e, const nn_node *n,
                            const nn_shape *const *ins, nn_shape *out);
/* Shapes of every value (shapes[n_values]) with the graph's nodes in
 * topological order and symbolic batches set to `batch`; batched (may be
 * NULL) says which values depend on a batched input. */
int nn_graph_infer_shapes(dlp_err *e, const nn_graph *g, int64_t batch,
                          nn_shape *shapes, bool *batched);
/* Re-infers and stores every node value's shape (dims[0] = -1 when it
 * depends on a batched input). Nodes must be in topological order. */
int nn_graph_reshape_all(dlp_err *e, nn_graph *g);

#endif /* DLP_NN_GRAPH_UTIL_H */
