/* npy.h - NumPy .npy files, by hand (the format is a magic, a version, a
 * Python-literal header dict and raw data, and numpy is not a C library):
 * whole arrays for any layer, and the header code the frame sink/source
 * (frame/io_npy.c) builds on. */
#ifndef DLP_NPY_H
#define DLP_NPY_H

#include "core.h"

/* A whole NumPy array, little-endian in the file and host order in data:
 * dtype 'f' float32 ('<f4'), 'd' float64 ('<f8'), 'q' int64 ('<i8') or
 * 'B' uint8 ('|u1'); C order; 0 (a scalar) to DLP_NPY_MAX_DIMS dims. */
#define DLP_NPY_MAX_DIMS 8
typedef struct dlp_npy_array {
  char dtype;
  int ndim;
  int64_t dims[DLP_NPY_MAX_DIMS];
  void *data;    /* nbytes of values (malloc'd when loaded) */
  size_t nbytes; /* product of dims times the item size */
} dlp_npy_array;

/* Reads the .npy file at path (at most max_bytes) into *out, whose data the
 * caller frees with dlp_npy_array_free. Refuses other dtypes, big-endian
 * or fortran_order arrays, a malformed header and a data size that does
 * not match the shape, with the path in e's message; *out is then empty. */
int dlp_npy_load_array(dlp_err *e, const char *path, uint64_t max_bytes,
                       dlp_npy_array *out);
/* Writes a as a version 1.0 .npy file as numpy would, atomically (a temp
 * file renamed over path). DLP_ERR_ARG when nbytes does not fit the shape. */
int dlp_npy_save_array(dlp_err *e, const char *path, const dlp_npy_array *a);
/* Frees a's data and empties it; NULL does nothing. */
void dlp_npy_array_free(dlp_npy_array *a);

/* ------------------------------------------------------------------------
 * The header, for readers and writers of other layouts
 * ------------------------------------------------------------------------ */

/* Room for the preamble and dict of up to DLP_NPY_MAX_DIMS dimensions. */
#define DLP_NPY_HEADER_MAX 512

/* Magic, version 1.0, and the header dict for descr (e.g. "<f4") and the
 * shape, padded so data starts at a multiple of 64 bytes as numpy does,
 * into out (DLP_NPY_HEADER_MAX bytes). Returns the header's length. */
size_t dlp_npy_format_header(uint8_t *out, const char *descr, int ndim,
                             const uint64_t *shape);

/* What a file's header dict says. */
typedef struct dlp_npy_header {
  char descr[16];
  int fortran; /* -1 until seen */
  size_t shape[DLP_NPY_MAX_DIMS];
  int ndim;     /* -1 until seen */
  int max_ndim; /* a longer shape is malformed */
} dlp_npy_header;

/* Reads path (within max_bytes) and parses its header, which may declare
 * at most max_ndim (<= DLP_NPY_MAX_DIMS) dimensions: *b holds the whole
 * file (*len bytes; the caller frees it, also on failure), the data starts
 * at *at. The parser is strict and bounded: it accepts exactly the dict
 * numpy writes. */
int dlp_npy_open(dlp_err *e, const char *path, uint64_t max_bytes, int max_ndim,
                 uint8_t **b, size_t *len, dlp_npy_header *h, size_t *at);

/* Checks that h's shape times item bytes is exactly the avail data bytes
 * the file holds (DLP_ERR_CORRUPT with path in e's message otherwise). */
int dlp_npy_check_size(dlp_err *e, const char *path, const dlp_npy_header *h,
                       size_t item, size_t avail);

#endif /* DLP_NPY_H */
