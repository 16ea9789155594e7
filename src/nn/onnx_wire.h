/* onnx_wire.h - a small, strict protobuf wire-format reader (for ONNX). */
#ifndef DLP_NN_ONNX_WIRE_H
#define DLP_NN_ONNX_WIRE_H

#include "core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protobuf wire types (groups, 3 and 4, are refused as malformed). */
enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

/* Messages nest at most this deep (ONNX needs 6: model, graph, node,
 * attribute, tensor, ...). */
#define PB_MAX_DEPTH 16

/* A bounded view of the bytes of one message. */
typedef struct pb_reader {
  const uint8_t *p, *end;
  int depth; /* nesting level of this message, 0 for the outermost */
} pb_reader;

/* One field. For PB_LEN, data/len is a sub-view of the buffer (already
 * checked to lie inside it); for the others v holds the value (I32/I64 as
 * raw little-endian bits). */
typedef struct pb_field {
  uint32_t num;
  int wire;
  uint64_t v;
  const uint8_t *data;
  size_t len;
} pb_field;

void pb_reader_init(pb_reader *r, const uint8_t *p, size_t len);
bool pb_reader_done(const pb_reader *r);
/* Reads the next field. Returns DLP_OK, or DLP_ERR_CORRUPT with a message
 * naming `what` for a truncated or malformed field. */
int pb_next(dlp_err *e, pb_reader *r, const char *what, pb_field *f);
/* A reader over the embedded message f (a PB_LEN field of parent); fails
 * with DLP_ERR_CORRUPT when f is not length-delimited or nests deeper than
 * PB_MAX_DEPTH. */
int pb_sub(dlp_err *e, const pb_reader *parent, const pb_field *f,
           const char *what, pb_reader *sub);
/* Reads one varint (for packed repeated fields). */
int pb_read_varint(dlp_err *e, pb_reader *r, const char *what, uint64_t *v);

/* Repeated numeric fields may come packed (one PB_LEN field) or one value
 * per field, even mixed. pb_each_repeated visits every value of field `num`
 * with element wire type `wire` (PB_VARINT, PB_I32 or PB_I64) in message
 * msg, in order, calling fn(user, index, value) (fn may be NULL: count
 * only; values as read: varints as decoded, I32/I64 as raw bits); *count
 * receives the number of values. Every packed run is checked whole. */
typedef void (*pb_value_fn)(void *user, size_t i, uint64_t v);
int pb_each_repeated(dlp_err *e, const uint8_t *msg, size_t len, uint32_t num,
                     int wire, const char *what, pb_value_fn fn, void *user,
                     size_t *count);

/* Little-endian loads. */
uint32_t pb_le32(const uint8_t *p);
uint64_t pb_le64(const uint8_t *p);
float pb_float_bits(uint32_t bits);

#endif /* DLP_NN_ONNX_WIRE_H */
