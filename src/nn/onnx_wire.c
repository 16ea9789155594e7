/* onnx_wire.c - a strict protobuf wire-format reader, written by hand: dlp
 * reads about fifteen fields of onnx.proto, and a generated parser plus a
 * protobuf runtime would be a larger dependency than this file. Every
 * length is checked against the bytes actually left, varints are at most
 * ten bytes, groups are refused, and nesting is bounded (PB_MAX_DEPTH). */
#include "onnx_wire.h"

#include <string.h>

void pb_reader_init(pb_reader *r, const uint8_t *p, size_t len) {
  r->p = p;
  r->end = p ? p + len : p; /* no arithmetic on NULL (an empty view) */
  r->depth = 0;
}

bool pb_reader_done(const pb_reader *r) { return r->p >= r->end; }

int pb_read_varint(dlp_err *e, pb_reader *r, const char *what, uint64_t *v) {
  uint64_t x = 0;
  for (int i = 0; i < 10; i++) {
    if (r->p >= r->end)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "%s: truncated varint", what);
    uint8_t b = *r->p++;
    if (i == 9 && b > 1)
      return dlp_err_set(e, DLP_ERR_CORRUPT, "%s: varint overflows 64 bits",
                         what);
    x |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *v = x;
      return DLP_OK;
    }
  }
  return dlp_err_set(e, DLP_ERR_CORRUPT, "%s: varint longer than 10 bytes",
                     what);
}

uint32_t pb_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

uint64_t pb_le64(const uint8_t *p) {
  return (uint64_t)pb_le32(p) | (uint64_t)pb_le32(p + 4) << 32;
}

float pb_float_bits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static int need(dlp_err *e, const pb_reader *r, size_t n, const char *what,
                const char *thing) {
  if ((size_t)(r->end - r->p) < n)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: truncated %s (%zu bytes declared, %zu left)", what,
                       thing, n, (size_t)(r->end - r->p));
  return DLP_OK;
}

int pb_next(dlp_err *e, pb_reader *r, const char *what, pb_field *f) {
  uint64_t key;
  int rc = pb_read_varint(e, r, what, &key);
  if (rc != DLP_OK) return rc;
  uint64_t num = key >> 3;
  f->wire = (int)(key & 7);
  if (num == 0 || num > 0x1fffffff)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "%s: bad field number %llu", what,
                       (unsigned long long)num);
  f->num = (uint32_t)num;
  f->v = 0;
  f->data = NULL;
  f->len = 0;
  switch (f->wire) {
  case PB_VARINT:
    return pb_read_varint(e, r, what, &f->v);
  case PB_I64:
    if ((rc = need(e, r, 8, what, "fixed64 field")) != DLP_OK) return rc;
    f->v = pb_le64(r->p);
    r->p += 8;
    return DLP_OK;
  case PB_I32:
    if ((rc = need(e, r, 4, what, "fixed32 field")) != DLP_OK) return rc;
    f->v = pb_le32(r->p);
    r->p += 4;
    return DLP_OK;
  case PB_LEN: {
    uint64_t n;
    if ((rc = pb_read_varint(e, r, what, &n)) != DLP_OK) return rc;
    if (n > (uint64_t)(r->end - r->p))
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "%s: field %u declares %llu bytes but only %zu are "
                         "left",
                         what, f->num, (unsigned long long)n,
                         (size_t)(r->end - r->p));
    f->data = r->p;
    f->len = (size_t)n;
    r->p += n;
    return DLP_OK;
  }
  default:
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: field %u has unsupported wire type %d", what,
                       f->num, f->wire);
  }
}

int pb_sub(dlp_err *e, const pb_reader *parent, const pb_field *f,
           const char *what, pb_reader *sub) {
  if (f->wire != PB_LEN)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: field %u should be a message but has wire type %d",
                       what, f->num, f->wire);
  if (parent->depth + 1 > PB_MAX_DEPTH)
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s: messages nested deeper than %d levels", what,
                       PB_MAX_DEPTH);
  pb_reader_init(sub, f->data, f->len);
  sub->depth = parent->depth + 1;
  return DLP_OK;
}

/* Visits the values of one packed run. */
static int each_packed(dlp_err *e, const pb_field *f, int wire,
                       const char *what, pb_value_fn fn, void *user,
                       size_t *n) {
  pb_reader r;
  pb_reader_init(&r, f->data, f->len);
  if (wire == PB_I32 || wire == PB_I64) {
    size_t w = wire == PB_I32 ? 4 : 8;
    if (f->len % w != 0)
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "%s: packed field %u has %zu bytes, not a multiple "
                         "of %zu",
                         what, f->num, f->len, w);
    for (size_t k = 0; k < f->len / w; k++, (*n)++)
      if (fn)
        fn(user, *n,
           w == 4 ? pb_le32(f->data + 4 * k) : pb_le64(f->data + 8 * k));
    return DLP_OK;
  }
  while (!pb_reader_done(&r)) {
    uint64_t v;
    int rc = pb_read_varint(e, &r, what, &v);
    if (rc != DLP_OK) return rc;
    if (fn) fn(user, *n, v);
    (*n)++;
  }
  return DLP_OK;
}

int pb_each_repeated(dlp_err *e, const uint8_t *msg, size_t len, uint32_t num,
                     int wire, const char *what, pb_value_fn fn, void *user,
                     size_t *count) {
  pb_reader r;
  pb_reader_init(&r, msg, len);
  size_t n = 0;
  while (!pb_reader_done(&r)) {
    pb_field f;
    int rc = pb_next(e, &r, what, &f);
    if (rc != DLP_OK) return rc;
    if (f.num != num) continue;
    if (f.wire == PB_LEN) {
      if ((rc = each_packed(e, &f, wire, what, fn, user, &n)) != DLP_OK)
        return rc;
    } else if (f.wire == wire) {
      if (fn) fn(user, n, f.v);
      n++;
    } else {
      return dlp_err_set(e, DLP_ERR_CORRUPT,
                         "%s: field %u has wire type %d, expected %d", what,
                         f.num, f.wire, wire);
    }
  }
  *count = n;
  return DLP_OK;
}
