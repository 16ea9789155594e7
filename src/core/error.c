/* error.c - status codes, the context and its error message. */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dlp_version(void) { return DLP_VERSION; }

const char *dlp_errstr(int rc) {
  switch (rc) {
  case DLP_OK: return "ok";
  case DLP_ERR_ARG: return "bad argument";
  case DLP_ERR_NOMEM: return "out of memory";
  case DLP_ERR_IO: return "i/o error";
  case DLP_ERR_FORMAT: return "unknown format";
  case DLP_ERR_CORRUPT: return "corrupt data";
  case DLP_ERR_TOO_LARGE: return "too large";
  case DLP_ERR_NOT_FOUND: return "not found";
  case DLP_ERR_UNSUPPORTED: return "unsupported";
  case DLP_ERR_SCHEMA: return "schema mismatch";
  case DLP_ERR_INTERNAL: return "internal error";
  default: return "unknown status";
  }
}

int dlp_err_vset(dlp_err *e, int code, const char *fmt, va_list ap) {
  if (e) {
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  }
  return code;
}

int dlp_err_set(dlp_err *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dlp_err_vset(e, code, fmt, ap);
  va_end(ap);
  return code;
}

int dlp_fail(dlp_ctx *ctx, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dlp_err_vset(ctx ? &ctx->err : NULL, code, fmt, ap);
  va_end(ap);
  return code;
}

int dlp_fail_from(dlp_ctx *ctx, const dlp_err *e) {
  if (ctx && e && &ctx->err != e) ctx->err = *e;
  return e ? e->code : DLP_ERR_INTERNAL;
}

int dlp_fail_prefix(dlp_ctx *ctx, const char *prefix) {
  if (!ctx) return DLP_ERR_INTERNAL;
  char old[DLP_ERRMSG_MAX];
  memcpy(old, ctx->err.msg, sizeof old);
  /* Messages are cut at DLP_ERRMSG_MAX - 1 bytes; the prefix comes first. */
  size_t cap = sizeof ctx->err.msg;
  size_t pl = strnlen(prefix, cap - 3);
  memcpy(ctx->err.msg, prefix, pl);
  memcpy(ctx->err.msg + pl, ": ", 2);
  size_t rest = cap - pl - 3;
  size_t ol = strnlen(old, rest);
  memcpy(ctx->err.msg + pl + 2, old, ol);
  ctx->err.msg[pl + 2 + ol] = '\0';
  return ctx->err.code;
}

int dlp_ok(dlp_ctx *ctx) {
  if (ctx) {
    ctx->err.code = DLP_OK;
    strcpy(ctx->err.msg, "not an error");
  }
  return DLP_OK;
}

int dlp_ctx_new(dlp_ctx **out) {
  if (!out) return DLP_ERR_ARG;
  dlp_ctx *c = calloc(1, sizeof *c);
  *out = c;
  if (!c) return DLP_ERR_NOMEM;
  c->threads = dlp_cpu_count();
  c->max_pixels = DLP_DEFAULT_MAX_PIXELS;
  c->max_file_bytes = DLP_DEFAULT_MAX_FILE_BYTES;
  return dlp_ok(c);
}

void dlp_ctx_free(dlp_ctx *ctx) { free(ctx); }

const char *dlp_errmsg(const dlp_ctx *ctx) {
  return ctx ? ctx->err.msg : "no context (out of memory?)";
}

int dlp_errcode(const dlp_ctx *ctx) {
  return ctx ? ctx->err.code : DLP_ERR_NOMEM;
}

void dlp_ctx_set_threads(dlp_ctx *ctx, int n) {
  if (ctx) ctx->threads = n > 0 ? n : dlp_cpu_count();
}

int dlp_ctx_threads(const dlp_ctx *ctx) { return ctx ? ctx->threads : 1; }

void dlp_ctx_set_max_pixels(dlp_ctx *ctx, uint64_t max_pixels) {
  if (ctx) ctx->max_pixels = max_pixels ? max_pixels : DLP_DEFAULT_MAX_PIXELS;
}

uint64_t dlp_ctx_max_pixels(const dlp_ctx *ctx) {
  return ctx ? ctx->max_pixels : DLP_DEFAULT_MAX_PIXELS;
}

void dlp_ctx_set_max_file_bytes(dlp_ctx *ctx, uint64_t max_bytes) {
  if (ctx)
    ctx->max_file_bytes = max_bytes ? max_bytes : DLP_DEFAULT_MAX_FILE_BYTES;
}

uint64_t dlp_ctx_max_file_bytes(const dlp_ctx *ctx) {
  return ctx ? ctx->max_file_bytes : DLP_DEFAULT_MAX_FILE_BYTES;
}

void dlp_ctx_set_progress(dlp_ctx *ctx, dlp_progress_fn fn, void *user) {
  if (ctx) {
    ctx->progress = fn;
    ctx->progress_user = user;
  }
}

dlp_limits dlp_ctx_limits(const dlp_ctx *ctx) {
  dlp_limits l = {dlp_ctx_max_pixels(ctx), dlp_ctx_max_file_bytes(ctx)};
  return l;
}
