/* test_onnx.c - the ONNX importer and its wire reader, on ModelProtos
 * encoded by a small protobuf writer here: results against naive loops
 * written in the test, and hostile files (truncated at every byte, huge
 * dims, wrong data sizes, cycles, unknown ops, random corruption). */
#include "test.h"

#include "graph.h"
#include "onnx.h"
#include "onnx_wire.h"

#include <stdint.h>

/* ------------------------------------------------------------------------
 * A protobuf writer (the test's own encoder, independent of the reader)
 * ------------------------------------------------------------------------ */

typedef struct pbw {
  uint8_t *p;
  size_t n, cap;
} pbw;

static void w_byte(pbw *b, uint8_t c) {
  if (b->n == b->cap) {
    b->cap = b->cap ? 2 * b->cap : 256;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  b->p[b->n++] = c;
}
static void w_raw(pbw *b, const void *d, size_t n) {
  for (size_t i = 0; i < n; i++)
    w_byte(b, ((const uint8_t *)d)[i]);
}
static void w_varint(pbw *b, uint64_t v) {
  while (v >= 0x80) {
    w_byte(b, (uint8_t)(v | 0x80));
    v >>= 7;
  }
  w_byte(b, (uint8_t)v);
}
static void w_key(pbw *b, uint32_t num, int wire) {
  w_varint(b, (uint64_t)num << 3 | (uint64_t)wire);
}
static void w_int(pbw *b, uint32_t num, int64_t v) {
  w_key(b, num, 0);
  w_varint(b, (uint64_t)v);
}
static void w_bytes(pbw *b, uint32_t num, const void *d, size_t n) {
  w_key(b, num, 2);
  w_varint(b, n);
  w_raw(b, d, n);
}
static void w_str(pbw *b, uint32_t num, const char *s) {
  w_bytes(b, num, s, strlen(s));
}
static void w_f32(pbw *b, uint32_t num, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  w_key(b, num, 5);
  for (int i = 0; i < 4; i++)
    w_byte(b, (uint8_t)(u >> (8 * i)));
}
/* Appends sub as an embedded message and frees it. */
static void w_msg(pbw *b, uint32_t num, pbw *sub) {
  w_bytes(b, num, sub->p, sub->n);
  free(sub->p);
  memset(sub, 0, sizeof *sub);
}

/* TensorProto: float32 by raw_data (raw = 1) or packed float_data. */
static pbw tensor_f(const char *name, int nd, const int64_t *dims,
                    const float *v, int64_t n, int raw) {
  pbw t = {0};
  for (int i = 0; i < nd; i++)
    w_int(&t, 1, dims[i]); /* dims, unpacked as proto2 writes them */
  w_int(&t, 2, 1);
  w_str(&t, 8, name);
  pbw d = {0};
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    for (int k = 0; k < 4; k++)
      w_byte(&d, (uint8_t)(u >> (8 * k)));
  }
  w_msg(&t, raw ? 9 : 4, &d);
  return t;
}

static pbw tensor_i64(const char *name, const int64_t *v, int n) {
  pbw t = {0};
  w_int(&t, 1, n);
  w_int(&t, 2, 7);
  w_str(&t, 8, name);
  pbw d = {0};
  for (int i = 0; i < n; i++)
    w_varint(&d, (uint64_t)v[i]);
  w_msg(&t, 7, &d); /* packed int64_data */
  return t;
}

static pbw attr_int(const char *name, int64_t v) {
  pbw a = {0};
  w_str(&a, 1, name);
  w_int(&a, 20, 2);
  w_int(&a, 3, v);
  return a;
}
static pbw attr_ints(const char *name, const int64_t *v, int n) {
  pbw a = {0};
  w_str(&a, 1, name);
  w_int(&a, 20, 7);
  for (int i = 0; i < n; i++)
    w_int(&a, 8, v[i]);
  return a;
}
static pbw attr_str(const char *name, const char *s) {
  pbw a = {0};
  w_str(&a, 1, name);
  w_int(&a, 20, 3);
  w_str(&a, 4, s);
  return a;
}

/* NodeProto with inputs/outputs as NULL-terminated lists; attrs appended
 * by the caller with w_msg(&node, 5, &attr). */
static pbw node(const char *op, const char *name, const char *const *in,
                const char *const *out) {
  pbw n = {0};
  for (; *in; in++)
    w_str(&n, 1, *in);
  for (; *out; out++)
    w_str(&n, 2, *out);
  w_str(&n, 3, name);
  w_str(&n, 4, op);
  return n;
}

/* ValueInfoProto of a float tensor; dims < 0 are written as dim_param. */
static pbw value_info(const char *name, int nd, const int64_t *dims) {
  pbw shape = {0};
  for (int i = 0; i < nd; i++) {
    pbw d = {0};
    if (dims[i] < 0)
      w_str(&d, 2, "N");
    else
      w_int(&d, 1, dims[i]);
    w_msg(&shape, 1, &d);
  }
  pbw tt = {0};
  w_int(&tt, 1, 1);
  w_msg(&tt, 2, &shape);
  pbw type = {0};
  w_msg(&type, 1, &tt);
  pbw vi = {0};
  w_str(&vi, 1, name);
  w_msg(&vi, 2, &type);
  return vi;
}

/* ModelProto around a finished GraphProto; the graph comes last so that
 * every truncation cuts into it. */
static pbw model(pbw *graph, int64_t opset) {
  pbw m = {0};
  w_int(&m, 1, 8);
  pbw op = {0};
  w_str(&op, 1, "");
  w_int(&op, 2, opset);
  w_msg(&m, 8, &op);
  w_str(&m, 2, "dlp-test");
  w_msg(&m, 7, graph);
  return m;
}

/* ------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------ */

static float wconv[3 * 2 * 3 * 3], bconv[3];

/* x (N, 2, 5, 6) -> Conv(W 3x2x3x3, b, strides 2,1, pads 1,0,1,2) -> y */
static pbw conv_model(int raw) {
  for (int i = 0; i < 54; i++)
    wconv[i] = (float)((i * 7) % 11) / 11.0f - 0.4f;
  for (int i = 0; i < 3; i++)
    bconv[i] = 0.25f * (float)i - 0.1f;
  pbw g = {0};
  pbw n = node("Conv", "conv1", (const char *[]){"x", "W", "B", 0},
               (const char *[]){"y", 0});
  pbw a = attr_ints("strides", (int64_t[]){2, 1}, 2);
  w_msg(&n, 5, &a);
  a = attr_ints("pads", (int64_t[]){1, 0, 1, 2}, 4);
  w_msg(&n, 5, &a);
  a = attr_ints("kernel_shape", (int64_t[]){3, 3}, 2);
  w_msg(&n, 5, &a);
  w_msg(&g, 1, &n);
  w_str(&g, 2, "convnet");
  pbw t = tensor_f("W", 4, (int64_t[]){3, 2, 3, 3}, wconv, 54, raw);
  w_msg(&g, 5, &t);
  t = tensor_f("B", 1, (int64_t[]){3}, bconv, 3, !raw);
  w_msg(&g, 5, &t);
  pbw vi = value_info("x", 4, (int64_t[]){-1, 2, 5, 6});
  w_msg(&g, 11, &vi);
  vi = value_info("W", 4, (int64_t[]){3, 2, 3, 3}); /* also an initializer */
  w_msg(&g, 11, &vi);
  vi = value_info("y", 4, (int64_t[]){-1, 3, 3, 6});
  w_msg(&g, 12, &vi);
  return model(&g, 13);
}

/* Runs g (finalized) on the reference backend. */
static int run_ref(nn_graph *g, int64_t batch, const float *in, float *out) {
  dlp_err e = {0};
  nn_plan *p = NULL;
  int rc = nn_plan_new(&e, g, NN_BACKEND_REF, batch, 1, &p);
  if (rc == DLP_OK)
    rc = nn_plan_run(&e, p, (const float *[]){in}, (float *[]){out});
  if (rc != DLP_OK) fprintf(stderr, "run: %s\n", e.msg);
  nn_plan_free(p);
  return rc;
}

static void check_conv(int raw) {
  pbw m = conv_model(raw);
  dlp_err e = {0};
  nn_graph *g = NULL;
  int rc = nn_onnx_load(&e, m.p, m.n, &g);
  if (rc != DLP_OK) fprintf(stderr, "load: %s\n", e.msg);
  CHECK_EQ_INT(rc, DLP_OK);
  free(m.p);
  if (!g) return;
  CHECK_EQ_INT(g->n_inputs, 1);
  CHECK_EQ_INT(g->input_spec.channels, 2);
  CHECK_EQ_INT(g->input_spec.height, 5);
  CHECK_EQ_INT(g->input_spec.width, 6);
  int ni = nn_graph_find_node(g, "conv1");
  CHECK(ni >= 0);
  if (ni >= 0) {
    const nn_node *n = &g->nodes[ni];
    CHECK_EQ_INT(n->op, NN_OP_CONV2D);
    CHECK_EQ_INT(n->attr.conv.stride[0], 2);
    CHECK_EQ_INT(n->attr.conv.stride[1], 1);
    CHECK_EQ_INT(n->attr.conv.pads[0], 1);
    CHECK_EQ_INT(n->attr.conv.pads[3], 2);
  }
  int wv = nn_graph_find_value(g, "W");
  CHECK(wv >= 0 && g->values[wv].kind == NN_VALUE_CONST);
  if (wv >= 0) CHECK(memcmp(g->values[wv].data, wconv, sizeof wconv) == 0);
  /* batch 2 against a naive convolution */
  enum { N = 2, C = 2, H = 5, W = 6, O = 3, OH = 3, OW = 6 };
  float x[N * C * H * W], y[N * O * OH * OW], ref[N * O * OH * OW];
  for (int i = 0; i < N * C * H * W; i++)
    x[i] = (float)((i * 13) % 17) / 8.0f - 1.0f;
  for (int b = 0; b < N; b++)
    for (int o = 0; o < O; o++)
      for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
          double s = bconv[o];
          for (int c = 0; c < C; c++)
            for (int ky = 0; ky < 3; ky++)
              for (int kx = 0; kx < 3; kx++) {
                int iy = oy * 2 - 1 + ky, ix = ox - 0 + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                s += (double)x[((b * C + c) * H + iy) * W + ix] *
                     wconv[((o * C + c) * 3 + ky) * 3 + kx];
              }
          ref[((b * O + o) * OH + oy) * OW + ox] = (float)s;
        }
  nn_shape os = nn_graph_value_shape(g, g->outputs[0], N);
  CHECK_EQ_INT(os.ndim, 4);
  CHECK_EQ_INT(os.dims[2], OH);
  CHECK_EQ_INT(os.dims[3], OW);
  if (run_ref(g, N, x, y) == DLP_OK) {
    double err = 0;
    for (int i = 0; i < N * O * OH * OW; i++)
      err = fmax(err, fabs((double)y[i] - ref[i]));
    CHECK(err < 1e-5);
  } else {
    CHECK(0);
  }
  nn_graph_free(g);
}

TEST(conv_raw_data) { check_conv(1); }
TEST(conv_float_data) { check_conv(0); }

/* x (N, 4) -> Gemm(B (3, 4), C, transB = 1) -> LeakyRelu(0.125) -> y */
TEST(gemm_transb_leaky_relu) {
  float b[12], c[3];
  for (int i = 0; i < 12; i++)
    b[i] = (float)(i % 5) - 2.0f;
  for (int i = 0; i < 3; i++)
    c[i] = 0.5f * (float)i;
  pbw g = {0};
  pbw n = node("Gemm", "fc", (const char *[]){"x", "B", "C", 0},
               (const char *[]){"h", 0});
  pbw a = attr_int("transB", 1);
  w_msg(&n, 5, &a);
  w_msg(&g, 1, &n);
  n = node("LeakyRelu", "act", (const char *[]){"h", 0},
           (const char *[]){"y", 0});
  a = (pbw){0};
  w_str(&a, 1, "alpha");
  w_int(&a, 20, 1);
  w_f32(&a, 2, 0.125f);
  w_msg(&n, 5, &a);
  w_msg(&g, 1, &n);
  pbw t = tensor_f("B", 2, (int64_t[]){3, 4}, b, 12, 1);
  w_msg(&g, 5, &t);
  t = tensor_f("C", 1, (int64_t[]){3}, c, 3, 1);
  w_msg(&g, 5, &t);
  pbw vi = value_info("x", 2, (int64_t[]){-1, 4});
  w_msg(&g, 11, &vi);
  vi = value_info("y", 2, (int64_t[]){-1, 3});
  w_msg(&g, 12, &vi);
  pbw m = model(&g, 11);
  dlp_err e = {0};
  nn_graph *gr = NULL;
  CHECK_EQ_INT(nn_onnx_load(&e, m.p, m.n, &gr), DLP_OK);
  free(m.p);
  if (!gr) return;
  int ni = nn_graph_find_node(gr, "fc");
  CHECK(ni >= 0 && gr->nodes[ni].op == NN_OP_DENSE &&
        gr->nodes[ni].attr.dense.transb);
  float x[2 * 4] = {1, -2, 3, 0.5f, -1, 0, 2, 4}, y[6];
  if (run_ref(gr, 2, x, y) == DLP_OK) {
    for (int r = 0; r < 2; r++)
      for (int o = 0; o < 3; o++) {
        double s = c[o];
        for (int k = 0; k < 4; k++)
          s += (double)x[r * 4 + k] * b[o * 4 + k];
        CHECK_NEAR(y[r * 3 + o], s > 0 ? s : 0.125 * s, 1e-5);
      }
  } else {
    CHECK(0);
  }
  nn_graph_free(gr);
}

/* Reshape by an int64 Constant node and Pad (opset 11 inputs). */
TEST(constant_reshape_and_pad) {
  pbw g = {0};
  pbw n = node("Constant", "shape_const", (const char *[]){0},
               (const char *[]){"shape", 0});
  pbw st = tensor_i64("", (int64_t[]){0, -1}, 2);
  pbw a = {0};
  w_str(&a, 1, "value");
  w_int(&a, 20, 4);
  w_msg(&a, 5, &st);
  w_msg(&n, 5, &a);
  w_msg(&g, 1, &n);
  n = node("Pad", "pad", (const char *[]){"x", "pads", 0},
           (const char *[]){"p", 0});
  a = attr_str("mode", "edge");
  w_msg(&n, 5, &a);
  w_msg(&g, 1, &n);
  n = node("Reshape", "flat", (const char *[]){"p", "shape", 0},
           (const char *[]){"y", 0});
  w_msg(&g, 1, &n);
  pbw t = tensor_i64("pads", (int64_t[]){0, 0, 1, 0, 0, 0, 0, 2}, 8);
  w_msg(&g, 5, &t);
  pbw vi = value_info("x", 4, (int64_t[]){-1, 1, 2, 2});
  w_msg(&g, 11, &vi);
  vi = value_info("y", 2, (int64_t[]){-1, 12});
  w_msg(&g, 12, &vi);
  pbw m = model(&g, 13);
  dlp_err e = {0};
  nn_graph *gr = NULL;
  int rc = nn_onnx_load(&e, m.p, m.n, &gr);
  if (rc != DLP_OK) fprintf(stderr, "load: %s\n", e.msg);
  CHECK_EQ_INT(rc, DLP_OK);
  free(m.p);
  if (!gr) return;
  nn_shape s = nn_graph_value_shape(gr, gr->outputs[0], 1);
  CHECK_EQ_INT(s.ndim, 2);
  CHECK_EQ_INT(s.dims[1], 12); /* (1, 1, 3, 4) flattened */
  float x[4] = {1, 2, 3, 4}, y[12];
  /* numpy.pad([[1,2],[3,4]], ((1,0),(0,2)), 'edge') */
  const float want[12] = {1, 2, 2, 2, 1, 2, 2, 2, 3, 4, 4, 4};
  if (run_ref(gr, 1, x, y) == DLP_OK)
    CHECK(memcmp(y, want, sizeof want) == 0);
  else
    CHECK(0);
  nn_graph_free(gr);
}

/* A two-node model: x -> Relu(a) -> Relu(b) -> y, with names settable. */
static pbw chain_model(const char *op_b, const char *a_in, int64_t opset) {
  pbw g = {0};
  pbw n =
      node("Relu", "a", (const char *[]){a_in, 0}, (const char *[]){"t", 0});
  w_msg(&g, 1, &n);
  n = node(op_b, "b", (const char *[]){"t", 0}, (const char *[]){"y", 0});
  w_msg(&g, 1, &n);
  pbw vi = value_info("x", 2, (int64_t[]){-1, 3});
  w_msg(&g, 11, &vi);
  vi = value_info("y", 2, (int64_t[]){-1, 3});
  w_msg(&g, 12, &vi);
  return model(&g, opset);
}

static int load_err(pbw *m, dlp_err *e) {
  nn_graph *g = NULL;
  memset(e, 0, sizeof *e);
  int rc = nn_onnx_load(e, m->p, m->n, &g);
  CHECK(rc == DLP_OK ? g != NULL : g == NULL);
  nn_graph_free(g);
  free(m->p);
  m->p = NULL;
  return rc;
}

TEST(cycle_is_refused) {
  pbw m = chain_model("Relu", "y", 13); /* a reads y, b reads a's output */
  dlp_err e;
  CHECK_EQ_INT(load_err(&m, &e), DLP_ERR_CORRUPT);
  CHECK(strstr(e.msg, "cycle") != NULL);
  CHECK(strstr(e.msg, "'a'") || strstr(e.msg, "'b'"));
}

TEST(unknown_op_is_named) {
  pbw m = chain_model("Foo", "x", 13);
  dlp_err e;
  CHECK_EQ_INT(load_err(&m, &e), DLP_ERR_UNSUPPORTED);
  CHECK(strstr(e.msg, "ONNX node 'b'") != NULL);
  CHECK(strstr(e.msg, "op 'Foo' is not supported") != NULL);
  CHECK(strstr(e.msg, "supported: Conv") != NULL);
}

TEST(dangling_input_and_opset) {
  pbw m = chain_model("Relu", "nothing", 13);
  dlp_err e;
  CHECK_EQ_INT(load_err(&m, &e), DLP_ERR_CORRUPT);
  CHECK(strstr(e.msg, "'nothing'") != NULL);
  m = chain_model("Relu", "x", 8);
  CHECK_EQ_INT(load_err(&m, &e), DLP_ERR_UNSUPPORTED);
  CHECK(strstr(e.msg, "opset 8") != NULL);
  m = chain_model("Relu", "x", 13);
  CHECK_EQ_INT(load_err(&m, &e), DLP_OK);
}

TEST(truncated_at_every_offset) {
  pbw m = conv_model(1);
  int bad = 0;
  for (size_t len = 0; len < m.n; len++) {
    dlp_err e = {0};
    nn_graph *g = NULL;
    /* a copy of exactly len bytes, so ASan sees any read past the end */
    uint8_t *cut = malloc(len ? len : 1);
    memcpy(cut, m.p, len);
    int rc = nn_onnx_load(&e, cut, len, &g);
    if (rc != DLP_ERR_CORRUPT || g || !e.msg[0]) {
      if (!bad) fprintf(stderr, "length %zu: rc %d: %s\n", len, rc, e.msg);
      bad++;
    }
    free(cut);
    nn_graph_free(g);
  }
  CHECK_EQ_INT(bad, 0);
  free(m.p);
}

/* One initializer W with the given dims and raw bytes, used by an Add. */
static pbw init_model(int nd, const int64_t *dims, size_t raw_bytes,
                      int external) {
  pbw g = {0};
  pbw n = node("Add", "add", (const char *[]){"x", "W", 0},
               (const char *[]){"y", 0});
  w_msg(&g, 1, &n);
  pbw t = {0};
  for (int i = 0; i < nd; i++)
    w_int(&t, 1, dims[i]);
  w_int(&t, 2, 1);
  w_str(&t, 8, "W");
  uint8_t *zeros = calloc(raw_bytes + 1, 1);
  w_bytes(&t, 9, zeros, raw_bytes);
  free(zeros);
  if (external) {
    pbw kv = {0};
    w_str(&kv, 1, "location");
    w_str(&kv, 2, "weights.bin");
    w_msg(&t, 13, &kv);
    w_int(&t, 14, 1);
  }
  w_msg(&g, 5, &t);
  pbw vi = value_info("x", 2, (int64_t[]){-1, 3});
  w_msg(&g, 11, &vi);
  vi = value_info("y", 2, (int64_t[]){-1, 3});
  w_msg(&g, 12, &vi);
  return model(&g, 13);
}

TEST(initializer_sizes_are_checked) {
  dlp_err e;
  pbw m = init_model(1, (int64_t[]){3}, 12, 0);
  CHECK_EQ_INT(load_err(&m, &e), DLP_OK);
  /* raw_data shorter than the dims say */
  m = init_model(1, (int64_t[]){3}, 8, 0);
  CHECK_EQ_INT(load_err(&m, &e), DLP_ERR_CORRUPT);
  CHECK(strstr(e.msg, "'W'") && strstr(e.msg, "raw_data"));
  /* 2^30 elements declared, 12 bytes present: refused before allocating */
  m = init_model(2, (int64_t[]){1 << 20, 1 << 10}, 12, 0);
  CHECK_EQ_INT(load_err(&m, &e), DLP_ERR_CORRUPT);
  CHECK(strstr(e.msg, "'W'") != NULL);
  /* beyond NN_MAX_NUMEL, and overflowing int64 */
  m = init_model(2, (int64_t[]){(int64_t)1 << 40, (int64_t)1 << 40}, 12, 0);
  CHECK_EQ_INT(load_err(&m, &e), DLP_ERR_TOO_LARGE);
  CHECK(strstr(e.msg, "'W'") != NULL);
  m = init_model(1, (int64_t[]){-3}, 12, 0);
  CHECK_EQ_INT(load_err(&m, &e), DLP_ERR_CORRUPT);
  CHECK(strstr(e.msg, "negative") != NULL);
  m = init_model(1, (int64_t[]){3}, 12, 1);
  CHECK_EQ_INT(load_err(&m, &e), DLP_ERR_UNSUPPORTED);
  CHECK(strstr(e.msg, "external") != NULL);
}

TEST(wire_reader_is_strict) {
  dlp_err e = {0};
  pb_reader r;
  pb_field f;
  /* a length that runs past the end */
  const uint8_t longlen[] = {0x0a, 0x05, 1, 2};
  pb_reader_init(&r, longlen, sizeof longlen);
  CHECK_EQ_INT(pb_next(&e, &r, "t", &f), DLP_ERR_CORRUPT);
  /* a varint of 11 bytes */
  const uint8_t longvar[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  pb_reader_init(&r, longvar, sizeof longvar);
  CHECK_EQ_INT(pb_next(&e, &r, "t", &f), DLP_ERR_CORRUPT);
  /* a group (wire type 3) and field number 0 */
  const uint8_t group[] = {0x0b, 0x0c};
  pb_reader_init(&r, group, sizeof group);
  CHECK_EQ_INT(pb_next(&e, &r, "t", &f), DLP_ERR_CORRUPT);
  const uint8_t zero[] = {0x00, 0x01};
  pb_reader_init(&r, zero, sizeof zero);
  CHECK_EQ_INT(pb_next(&e, &r, "t", &f), DLP_ERR_CORRUPT);
  /* fields decode: varint 150, fixed32, then bytes */
  const uint8_t ok[] = {0x08, 0x96, 0x01, 0x15, 1, 0, 0, 0, 0x1a, 2, 'h', 'i'};
  pb_reader_init(&r, ok, sizeof ok);
  CHECK_EQ_INT(pb_next(&e, &r, "t", &f), DLP_OK);
  CHECK(f.num == 1 && f.wire == PB_VARINT && f.v == 150);
  CHECK_EQ_INT(pb_next(&e, &r, "t", &f), DLP_OK);
  CHECK(f.num == 2 && f.wire == PB_I32 && f.v == 1);
  CHECK_EQ_INT(pb_next(&e, &r, "t", &f), DLP_OK);
  CHECK(f.num == 3 && f.len == 2 && memcmp(f.data, "hi", 2) == 0);
  CHECK(pb_reader_done(&r));
  /* packed and unpacked repeated varints mixed: 3, 270, 7 */
  const uint8_t rep[] = {0x08, 0x03, 0x0a, 0x03, 0x8e, 0x02, 0x07};
  size_t n = 0;
  CHECK_EQ_INT(
      pb_each_repeated(&e, rep, sizeof rep, 1, PB_VARINT, "t", NULL, NULL, &n),
      DLP_OK);
  CHECK_EQ_INT(n, 3);
  /* a packed fixed32 run whose length is not a multiple of 4 */
  const uint8_t badpk[] = {0x0a, 0x03, 0, 0, 0};
  CHECK_EQ_INT(
      pb_each_repeated(&e, badpk, sizeof badpk, 1, PB_I32, "t", NULL, NULL, &n),
      DLP_ERR_CORRUPT);
  /* nesting is bounded */
  pb_reader deep;
  pb_reader_init(&deep, ok, sizeof ok);
  deep.depth = PB_MAX_DEPTH;
  pb_field lf = {.num = 1, .wire = PB_LEN, .data = ok, .len = 0};
  pb_reader sub;
  CHECK_EQ_INT(pb_sub(&e, &deep, &lf, "t", &sub), DLP_ERR_CORRUPT);
}

/* Random byte corruptions of a valid model: any status, never a crash or
 * a leak (run under ASan). */
TEST(random_corruption_never_crashes) {
  pbw m = conv_model(1);
  dlp_rng rng;
  dlp_rng_seed(&rng, 7);
  uint8_t *buf = malloc(m.n);
  int ok = 0;
  for (int it = 0; it < 3000; it++) {
    memcpy(buf, m.p, m.n);
    int flips = 1 + (int)dlp_rng_below(&rng, 4);
    for (int k = 0; k < flips; k++)
      buf[dlp_rng_below(&rng, m.n)] = (uint8_t)dlp_rng_next(&rng);
    dlp_err e = {0};
    nn_graph *g = NULL;
    int rc = nn_onnx_load(&e, buf, m.n, &g);
    CHECK(rc == DLP_OK || e.msg[0]);
    ok += rc == DLP_OK;
    nn_graph_free(g);
  }
  CHECK(ok < 3000); /* the corruptions were noticed at least sometimes */
  free(buf);
  free(m.p);
}

/* ------------------------------------------------------------------------
 * Constant folding (Shape arithmetic, computed pads) and its hostile cases
 * ------------------------------------------------------------------------ */

static void g_i64(pbw *g, const char *name, const int64_t *v, int n) {
  pbw t = tensor_i64(name, v, n);
  w_msg(g, 5, &t);
}

/* A rank-0 int64 initializer (PyTorch's Gather index). */
static void g_scalar(pbw *g, const char *name, int64_t v) {
  pbw t = {0};
  w_int(&t, 2, 7);
  w_str(&t, 8, name);
  pbw d = {0};
  w_varint(&d, (uint64_t)v);
  w_msg(&t, 7, &d);
  w_msg(g, 5, &t);
}

static void g_node(pbw *g, const char *op, const char *name,
                   const char *const *in, const char *out) {
  pbw n = node(op, name, in, (const char *[]){out, 0});
  w_msg(g, 1, &n);
}

/* Finishes g with input x (N, in_dims...) and output y. */
static pbw xy_model(pbw *g, int nd, const int64_t *dims, int64_t opset) {
  pbw vi = value_info("x", nd, dims);
  w_msg(g, 11, &vi);
  vi = value_info("y", 1, (int64_t[]){-1});
  w_msg(g, 12, &vi);
  return model(g, opset);
}

/* Loads m, expecting y of shape want (batch 1) and y == x (a reshape). */
static void check_reshaped(pbw *m, int nd, const int64_t *want, int64_t n) {
  dlp_err e = {0};
  nn_graph *g = NULL;
  int rc = nn_onnx_load(&e, m->p, m->n, &g);
  free(m->p);
  if (rc != DLP_OK) fprintf(stderr, "load: %s\n", e.msg);
  CHECK_EQ_INT(rc, DLP_OK);
  if (!g) return;
  nn_shape s = nn_graph_value_shape(g, g->outputs[0], 1);
  CHECK_EQ_INT(s.ndim, nd);
  for (int i = 0; i < nd && i < s.ndim; i++)
    CHECK_EQ_INT(s.dims[i], want[i]);
  s = nn_graph_value_shape(g, g->outputs[0], 3); /* the batch still varies */
  CHECK_EQ_INT(s.dims[0], 3 * want[0]);
  float x[64], y[64];
  for (int i = 0; i < 3 * n; i++)
    x[i] = (float)i - 7.5f;
  CHECK_EQ_INT(run_ref(g, 3, x, y), DLP_OK);
  CHECK(memcmp(x, y, (size_t)(3 * n) * sizeof *x) == 0);
  nn_graph_free(g);
}

/* Slice with indices far outside the axis clamps as ONNX (and Python)
 * say: [2, 7, -1, 7, 0][INT64_MAX:INT64_MIN:INT64_MIN] == [0] and
 * [3, 8, 8, -1][INT64_MIN:INT64_MAX:3] == [3, -1]; Concat gives the
 * target shape [0, 3, -1] for Reshape. Opset 9 (attributes) too. */
TEST(fold_slice_clamps_absurd_indices) {
  for (int opset = 9; opset <= 13; opset += 4) {
    pbw g = {0};
    g_i64(&g, "da", (int64_t[]){2, 7, -1, 7, 0}, 5);
    g_i64(&g, "db", (int64_t[]){3, 8, 8, -1}, 4);
    if (opset >= 10) {
      g_i64(&g, "big", (int64_t[]){INT64_MAX}, 1);
      g_i64(&g, "small", (int64_t[]){INT64_MIN}, 1);
      g_i64(&g, "ax", (int64_t[]){0}, 1);
      g_i64(&g, "three", (int64_t[]){3}, 1);
      g_node(&g, "Slice", "sa",
             (const char *[]){"da", "big", "small", "ax", "small", 0}, "a");
      g_node(&g, "Slice", "sb",
             (const char *[]){"db", "small", "big", "ax", "three", 0}, "b");
    } else { /* opset 9: no steps; [3, 8, 8, -1][INT64_MIN:INT64_MAX] */
      pbw n = node("Slice", "sa", (const char *[]){"da", 0},
                   (const char *[]){"a", 0});
      pbw at = attr_ints("starts", (int64_t[]){-1}, 1);
      w_msg(&n, 5, &at);
      at = attr_ints("ends", (int64_t[]){INT64_MAX}, 1);
      w_msg(&n, 5, &at);
      w_msg(&g, 1, &n);
      n = node("Slice", "sb", (const char *[]){"db", 0},
               (const char *[]){"b", 0});
      at = attr_ints("starts", (int64_t[]){INT64_MIN}, 1);
      w_msg(&n, 5, &at);
      at = attr_ints("ends", (int64_t[]){INT64_MAX}, 1);
      w_msg(&n, 5, &at);
      at = attr_ints("axes", (int64_t[]){-1}, 1);
      w_msg(&n, 5, &at);
      w_msg(&g, 1, &n);
      /* [3, 8, 8, -1] whole: [0, 3, 8, 8, -1] is 5-D; take [0] + [3, -1]
       * by a Gather instead */
      g_i64(&g, "idx", (int64_t[]){0, 3}, 2);
      pbw gn = node("Gather", "gb", (const char *[]){"b", "idx", 0},
                    (const char *[]){"b2", 0});
      w_msg(&g, 1, &gn);
    }
    pbw n = node("Concat", "cat",
                 (const char *[]){"a", opset >= 10 ? "b" : "b2", 0},
                 (const char *[]){"shape", 0});
    pbw at = attr_int("axis", 0);
    w_msg(&n, 5, &at);
    w_msg(&g, 1, &n);
    g_node(&g, "Reshape", "r", (const char *[]){"x", "shape", 0}, "y");
    pbw m = xy_model(&g, 2, (int64_t[]){-1, 6}, opset);
    check_reshaped(&m, 3, (int64_t[]){1, 3, 2}, 6);
  }
}

/* x.reshape(x.shape[0], -1) as PyTorch exports it at opset 13: Shape ->
 * Gather(0) -> Unsqueeze -> Concat([-1]) -> Reshape, with a symbolic batch. */
TEST(fold_shape_of_symbolic_batch) {
  pbw g = {0};
  g_node(&g, "Shape", "shape", (const char *[]){"x", 0}, "s");
  g_scalar(&g, "zero", 0);
  g_node(&g, "Gather", "gather", (const char *[]){"s", "zero", 0}, "n");
  g_i64(&g, "axes", (int64_t[]){0}, 1);
  g_node(&g, "Unsqueeze", "unsq", (const char *[]){"n", "axes", 0}, "n1");
  g_i64(&g, "minus1", (int64_t[]){-1}, 1);
  pbw n = node("Concat", "cat", (const char *[]){"n1", "minus1", 0},
               (const char *[]){"target", 0});
  pbw at = attr_int("axis", 0);
  w_msg(&n, 5, &at);
  w_msg(&g, 1, &n);
  g_node(&g, "Reshape", "r", (const char *[]){"x", "target", 0}, "y");
  pbw m = xy_model(&g, 3, (int64_t[]){-1, 2, 3}, 13);
  check_reshaped(&m, 2, (int64_t[]){1, 6}, 6);
}

/* One-node-plus-Reshape models for the folder's refusals. */
static int fold_err(int which, dlp_err *e) {
  pbw g = {0};
  pbw n, at;
  const char *target = "t";
  switch (which) {
  case 0: /* ConstantOfShape asking for 2^40 floats */
    g_i64(&g, "dims", (int64_t[]){1 << 20, 1 << 20}, 2);
    g_node(&g, "ConstantOfShape", "huge", (const char *[]){"dims", 0}, "t");
    break;
  case 1: /* Slice with a zero step */
    g_i64(&g, "d", (int64_t[]){1, 6}, 2);
    g_i64(&g, "st", (int64_t[]){0}, 1);
    g_i64(&g, "en", (int64_t[]){INT64_MAX}, 1);
    g_i64(&g, "z", (int64_t[]){0}, 1);
    g_node(&g, "Slice", "zero_step",
           (const char *[]){"d", "st", "en", "z", "z", 0}, "t");
    break;
  case 2: /* Slice on an axis the data does not have */
    g_i64(&g, "d", (int64_t[]){1, 6}, 2);
    g_i64(&g, "st", (int64_t[]){0}, 1);
    g_i64(&g, "ax", (int64_t[]){INT64_MIN}, 1);
    g_node(&g, "Slice", "bad_axis", (const char *[]){"d", "st", "st", "ax", 0},
           "t");
    break;
  case 3: /* a folded target shape with a wrong element count */
    g_i64(&g, "a", (int64_t[]){0}, 1);
    g_i64(&g, "b", (int64_t[]){4}, 1);
    n = node("Concat", "cat", (const char *[]){"a", "b", 0},
             (const char *[]){"t", 0});
    at = attr_int("axis", 0);
    w_msg(&n, 5, &at);
    w_msg(&g, 1, &n);
    break;
  case 4: /* a folded Reshape of constants with a wrong element count */
    g_i64(&g, "five", (int64_t[]){1, 2, 3, 4, 5}, 5);
    g_i64(&g, "s23", (int64_t[]){2, 3}, 2);
    g_node(&g, "Reshape", "bad_reshape", (const char *[]){"five", "s23", 0},
           "t");
    break;
  case 5: /* Gather out of range */
    g_i64(&g, "d", (int64_t[]){1, 6}, 2);
    g_scalar(&g, "i", 7);
    g_node(&g, "Gather", "far", (const char *[]){"d", "i", 0}, "t");
    break;
  default: /* the batch size as the second entry of a target shape */
    g_node(&g, "Shape", "shape", (const char *[]){"x", 0}, "s");
    g_i64(&g, "i", (int64_t[]){0}, 1);
    g_node(&g, "Gather", "gather", (const char *[]){"s", "i", 0}, "nb");
    g_i64(&g, "one", (int64_t[]){6}, 1);
    n = node("Concat", "cat", (const char *[]){"one", "nb", 0},
             (const char *[]){"t", 0});
    at = attr_int("axis", 0);
    w_msg(&n, 5, &at);
    w_msg(&g, 1, &n);
    break;
  }
  g_node(&g, "Reshape", "r", (const char *[]){"x", target, 0}, "y");
  pbw m = xy_model(&g, 2, (int64_t[]){-1, 6}, 13);
  return load_err(&m, e);
}

TEST(fold_refuses_hostile_constants) {
  static const struct {
    int code;
    const char *node, *text;
  } want[] = {
      {DLP_ERR_TOO_LARGE, "'huge' (ConstantOfShape)", "more than dlp folds"},
      {DLP_ERR_CORRUPT, "'zero_step' (Slice)", "step is 0"},
      {DLP_ERR_CORRUPT, "'bad_axis' (Slice)", "outside rank 1"},
      {DLP_ERR_CORRUPT, "'r' (Reshape)", "reshape"},
      {DLP_ERR_CORRUPT, "'bad_reshape' (Reshape)", "cannot reshape"},
      {DLP_ERR_CORRUPT, "'far' (Gather)", "index 7"},
      {DLP_ERR_UNSUPPORTED, "'r' (Reshape)", "batch size"},
  };
  for (int i = 0; i < (int)(sizeof want / sizeof want[0]); i++) {
    dlp_err e;
    int rc = fold_err(i, &e);
    if (rc != want[i].code || !strstr(e.msg, want[i].node) ||
        !strstr(e.msg, want[i].text))
      fprintf(stderr, "case %d: rc %d: %s\n", i, rc, e.msg);
    CHECK_EQ_INT(rc, want[i].code);
    CHECK(strstr(e.msg, want[i].node) != NULL);
    CHECK(strstr(e.msg, want[i].text) != NULL);
  }
}

int main(void) {
  RUN(wire_reader_is_strict);
  RUN(conv_raw_data);
  RUN(conv_float_data);
  RUN(gemm_transb_leaky_relu);
  RUN(constant_reshape_and_pad);
  RUN(cycle_is_refused);
  RUN(unknown_op_is_named);
  RUN(dangling_input_and_opset);
  RUN(truncated_at_every_offset);
  RUN(initializer_sizes_are_checked);
  RUN(random_corruption_never_crashes);
  RUN(fold_slice_clamps_absurd_indices);
  RUN(fold_shape_of_symbolic_batch);
  RUN(fold_refuses_hostile_constants);
  return test_summary();
}
