/* report.c - the self-contained HTML evaluation report: metrics, per-class
 * table, confusion-matrix heat map and thumbnails of the misclassified
 * images, in one file with no external resources (inline CSS, JPEG
 * thumbnails as base64 data: URIs), readable without JavaScript.
 *
 * Written by hand: the page is a few tables and a grid, simpler to print
 * than to template. Thumbnails are encoded with the libjpeg compression API
 * (libjpeg-turbo is already a dependency), in parallel on the context's
 * threads, each worker on a context of its own. */
#include "ml.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jpeglib.h>

/* A heat map of more classes than this is unreadable and megabytes long. */
#define RP_MAX_MATRIX_CLASSES 60
#define RP_MAX_THUMB 1024
#define RP_JPEG_QUALITY 85

void dlp_report_opts_init(dlp_report_opts *o) {
  o->title = "dlp evaluation";
  o->image_col = "image";
  o->labels = NULL;
  o->n_labels = 0;
  o->max_examples = 60;
  o->thumb_size = 128;
  o->pipeline_desc = NULL;
}

/* --- a growing text buffer ----------------------------------------------- */

typedef struct rp_buf {
  char *s;
  size_t len, cap;
  int oom; /* an append failed: the text is incomplete */
} rp_buf;

static int rp_reserve(rp_buf *b, size_t more) {
  if (b->oom) return 0;
  if (b->len + more + 1 <= b->cap) return 1;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more + 1)
    cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->oom = 1;
    return 0;
  }
  b->s = s;
  b->cap = cap;
  return 1;
}

static void rp_putn(rp_buf *b, const char *s, size_t n) {
  if (!rp_reserve(b, n)) return;
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

static void rp_put(rp_buf *b, const char *s) { rp_putn(b, s, strlen(s)); }

static void rp_printf(rp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void rp_printf(rp_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !rp_reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Text for element content and quoted attribute values alike. */
static void rp_esc(rp_buf *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '&':
      rp_put(b, "&amp;");
      break;
    case '<':
      rp_put(b, "&lt;");
      break;
    case '>':
      rp_put(b, "&gt;");
      break;
    case '"':
      rp_put(b, "&quot;");
      break;
    case '\'':
      rp_put(b, "&#39;");
      break;
    default:
      rp_putn(b, s, 1);
    }
  }
}

static char *rp_base64(const uint8_t *d, size_t n) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16;
    if (i + 1 < n) v |= (uint32_t)d[i + 1] << 8;
    if (i + 2 < n) v |= d[i + 2];
    *o++ = tab[v >> 18];
    *o++ = tab[(v >> 12) & 63];
    *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    *o++ = i + 2 < n ? tab[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

/* --- thumbnails ---------------------------------------------------------- */

typedef struct rp_jerr {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
} rp_jerr;

static void rp_jpeg_on_error(j_common_ptr c) {
  longjmp(((rp_jerr *)c->err)->jb, 1);
}

/* The part under setjmp; everything it touches lives in the caller. */
static int rp_jpeg_run(struct jpeg_compress_struct *c, rp_jerr *err,
                       const dlp_image *img, unsigned char **out,
                       unsigned long *len) {
  if (setjmp(err->jb)) return 0;
  jpeg_create_compress(c);
  jpeg_mem_dest(c, out, len);
  c->image_width = (JDIMENSION)img->width;
  c->image_height = (JDIMENSION)img->height;
  c->input_components = img->n_channels == 1 ? 1 : 3;
  c->in_color_space = img->n_channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(c);
  jpeg_set_quality(c, RP_JPEG_QUALITY, TRUE);
  jpeg_start_compress(c, TRUE);
  size_t stride = (size_t)img->width * (size_t)img->n_channels;
  while (c->next_scanline < c->image_height) {
    JSAMPROW row = img->data + c->next_scanline * stride;
    jpeg_write_scanlines(c, &row, 1);
  }
  jpeg_finish_compress(c);
  return 1;
}

/* JPEG bytes of a 1- or 3-channel image (malloc'd by libjpeg: free()). */
static int rp_jpeg_encode(dlp_err *e, const dlp_image *img, unsigned char **out,
                          unsigned long *len) {
  struct jpeg_compress_struct c;
  rp_jerr err;
  memset(&c, 0, sizeof c);
  c.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = rp_jpeg_on_error;
  *out = NULL;
  *len = 0;
  int ok = rp_jpeg_run(&c, &err, img, out, len);
  jpeg_destroy_compress(&c);
  if (ok) return DLP_OK;
  free(*out);
  *out = NULL;
  return dlp_err_set(e, DLP_ERR_INTERNAL,
                     "JPEG encoding of a thumbnail "
                     "failed");
}

/* Size of a thumbnail: the longest side at most `size`, never enlarged. */
static void rp_thumb_dims(int32_t w, int32_t h, int size, int32_t *tw,
                          int32_t *th) {
  double s = (double)size / (w > h ? w : h);
  if (s > 1) s = 1;
  *tw = (int32_t)lround(w * s);
  *th = (int32_t)lround(h * s);
  if (*tw < 1) *tw = 1;
  if (*th < 1) *th = 1;
}

/* Decodes, shrinks and encodes one cell; a 4-channel image (only when the
 * decoder keeps alpha, which it does not by default) loses its alpha. */
static int rp_thumb_make(dlp_ctx *c, const dlp_frame *f, size_t col, size_t row,
                         int size, char **b64) {
  dlp_image_meta meta;
  dlp_decode_opts o;
  dlp_decode_opts_init(&o);
  if (dlp_frame_get_image_meta(f, col, row, &meta) && meta.width > 0 &&
      meta.height > 0)
    rp_thumb_dims(meta.width, meta.height, size, &o.target_width,
                  &o.target_height);
  dlp_image *img = NULL, *small = NULL;
  int rc = dlp_frame_get_image(c, f, col, row, &o, &img);
  int32_t tw = 0, th = 0;
  if (rc == DLP_OK) {
    rp_thumb_dims(img->width, img->height, size, &tw, &th);
    rc = dlp_image_resize(c, img, tw, th, DLP_FILTER_BILINEAR, &small);
  }
  if (rc == DLP_OK && small->n_channels == 4) {
    for (size_t i = 0, n = (size_t)tw * (size_t)th; i < n; i++)
      memmove(small->data + 3 * i, small->data + 4 * i, 3);
    small->n_channels = 3;
  }
  unsigned char *jpg = NULL;
  unsigned long len = 0;
  if (rc == DLP_OK) {
    rc = rp_jpeg_encode(&c->err, small, &jpg, &len);
    if (rc == DLP_OK && !(*b64 = rp_base64(jpg, len)))
      rc = dlp_fail(c, DLP_ERR_NOMEM, "no memory for a thumbnail");
  }
  free(jpg);
  dlp_image_free(small);
  dlp_image_free(img);
  return rc;
}

/* One misclassified row to show. */
typedef struct rp_example {
  size_t row;
  size_t label, pred;
  double prob; /* of the predicted class; -1 when unknown */
  char *b64;   /* thumbnail JPEG, or NULL */
  char *error; /* why there is no thumbnail, or NULL */
} rp_example;

typedef struct rp_thumb_job {
  const dlp_frame *f;
  size_t col;
  int size;
  uint64_t max_pixels, max_file_bytes;
  rp_example *ex;
} rp_thumb_job;

static void rp_thumb_task(size_t i, void *user, int worker) {
  (void)worker;
  rp_thumb_job *j = user;
  rp_example *x = &j->ex[i];
  dlp_ctx *c = NULL;
  if (dlp_ctx_new(&c) != DLP_OK) {
    x->error = dlp_strdup("out of memory");
    return;
  }
  dlp_ctx_set_max_pixels(c, j->max_pixels);
  dlp_ctx_set_max_file_bytes(c, j->max_file_bytes);
  dlp_ctx_set_threads(c, 1);
  if (rp_thumb_make(c, j->f, j->col, x->row, j->size, &x->b64) != DLP_OK)
    x->error = dlp_strdup(dlp_errmsg(c));
  dlp_ctx_free(c);
}

static int rp_thumbs(dlp_ctx *ctx, const dlp_frame *f, size_t col,
                     const dlp_report_opts *ro, rp_example *ex, size_t n) {
  int size = ro->thumb_size > 0 ? ro->thumb_size : 128;
  rp_thumb_job j = {f,
                    col,
                    size > RP_MAX_THUMB ? RP_MAX_THUMB : size,
                    dlp_ctx_max_pixels(ctx),
                    dlp_ctx_max_file_bytes(ctx),
                    ex};
  if (!dlp_parallel_for(n, dlp_ctx_threads(ctx), rp_thumb_task, &j, ctx,
                        "thumbnails"))
    return dlp_fail(ctx, DLP_ERR_ARG, "cancelled");
  return DLP_OK;
}

/* --- the misclassified rows ---------------------------------------------- */

static int rp_number(const dlp_frame *f, long col, size_t row, double *v) {
  int64_t i;
  if (col < 0) return 0;
  if (dlp_frame_get_double(f, (size_t)col, row, v)) return 1;
  if (!dlp_frame_get_int64(f, (size_t)col, row, &i)) return 0;
  *v = (double)i;
  return 1;
}

/* Most confident mistakes first; row order among equals (and without
 * probabilities), so the choice is deterministic. */
static int rp_by_confidence(const void *a, const void *b) {
  const rp_example *x = a, *y = b;
  if (x->prob != y->prob) return x->prob < y->prob ? 1 : -1;
  return (x->row > y->row) - (x->row < y->row);
}

/* Every counted row whose prediction is wrong, sorted. The metrics were
 * computed first, so labels and predictions are valid class indices. */
static int rp_mistakes(dlp_ctx *ctx, const dlp_frame *f,
                       const dlp_eval_opts *eo, rp_example **out, size_t *n) {
  long lc = dlp_frame_col_index(f, eo->label_col);
  long pc = dlp_frame_col_index(f, eo->prediction_col);
  long qc =
      eo->probability_col ? dlp_frame_col_index(f, eo->probability_col) : -1;
  size_t dim = qc >= 0 && dlp_frame_col_type(f, (size_t)qc) == DLP_TYPE_VECTOR
                   ? dlp_frame_col_dim(f, (size_t)qc)
                   : 0;
  *n = 0;
  *out = dlp_calloc_array(dlp_frame_nrows(f) + 1, sizeof **out);
  if (!*out) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the report");
  for (size_t r = 0; r < dlp_frame_nrows(f); r++) {
    double y, p;
    const float *v;
    if (!rp_number(f, lc, r, &y) || !rp_number(f, pc, r, &p) || y == p)
      continue;
    rp_example *x = &(*out)[(*n)++];
    x->row = r;
    x->label = (size_t)y;
    x->pred = (size_t)p;
    x->prob = -1;
    if (x->pred < dim && dlp_frame_get_vector(f, (size_t)qc, r, &v))
      x->prob = v[x->pred];
  }
  qsort(*out, *n, sizeof **out, rp_by_confidence);
  return DLP_OK;
}

/* --- the page ------------------------------------------------------------ */

static const char rp_css[] =
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "margin:0;background:#f4f5f7;color:#1f2933}"
    "header{background:#1f3a5f;color:#fff;padding:24px 32px}"
    "header h1{margin:0 0 6px;font-size:26px}"
    "header .meta{margin:2px 0;opacity:.85;font-size:14px}"
    ".tiles{display:flex;gap:14px;margin-top:16px;flex-wrap:wrap}"
    ".tile{background:rgba(255,255,255,.12);border-radius:8px;"
    "padding:8px 16px;min-width:110px}"
    ".tile .v{font-size:24px;font-weight:600}.tile .k{font-size:12px;"
    "opacity:.8;text-transform:uppercase;letter-spacing:.05em}"
    "main{padding:8px 32px 32px;max-width:1400px}"
    "section{background:#fff;border-radius:10px;padding:16px 22px;"
    "margin:20px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}"
    "h2{font-size:18px;margin:0 0 12px}"
    "table{border-collapse:collapse}"
    "th,td{padding:5px 10px;text-align:left}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "table.list tr:nth-child(even){background:#f7f8fa}"
    "table.list tr.h th{border-bottom:2px solid #d9dee4}"
    "table.kv th{font-weight:500;padding-right:28px}"
    "table.cm td{width:48px;height:34px;text-align:center;"
    "border:1px solid #fff;font-variant-numeric:tabular-nums}"
    "table.cm th{font-weight:500;font-size:13px;max-width:140px;"
    "overflow-wrap:break-word}"
    "table.cm th.axis{color:#52606d;font-size:12px;white-space:nowrap}"
    "table.cm th.rh{white-space:nowrap;text-align:right;max-width:none}"
    ".scroll{overflow-x:auto}"
    ".note{color:#52606d;font-size:13px}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,"
    "minmax(%dpx,1fr));gap:14px}"
    "figure{margin:0;background:#f7f8fa;border-radius:8px;padding:8px;"
    "border:1px solid #e4e7eb}"
    "figure .pic{height:%dpx;display:flex;align-items:center;"
    "justify-content:center}"
    "figure img{max-width:100%%;max-height:100%%;border-radius:4px}"
    ".placeholder{width:100%%;height:100%%;box-sizing:border-box;"
    "border:2px dashed #c2410c;border-radius:4px;color:#9a3412;"
    "font-size:11px;padding:6px;overflow:hidden;overflow-wrap:anywhere;"
    "display:flex;align-items:center;justify-content:center;text-align:center}"
    "figcaption{font-size:13px;margin-top:6px}"
    "figcaption .t{color:#166534}figcaption .p{color:#b91c1c}"
    "figcaption .f{color:#52606d;font-size:12px;overflow-wrap:anywhere}"
    "footer{color:#7b8794;font-size:12px;padding:0 32px 24px}";

/* Counts the thumbnails that decoded; only adds attributes, so the page
 * reads the same without it. */
static const char rp_script[] =
    "<script>window.addEventListener('load',function(){"
    "var im=document.querySelectorAll('img.thumb'),n=0;"
    "for(var i=0;i<im.length;i++)if(im[i].complete&&im[i].naturalWidth>0)n++;"
    "document.body.setAttribute('data-thumbs-loaded',n);"
    "document.body.setAttribute('data-thumbs-total',im.length);});"
    "</script>\n";

typedef struct rp_page {
  rp_buf b;
  const dlp_frame *f;
  const dlp_eval_opts *eo;
  const dlp_report_opts *ro;
  const dlp_multiclass_metrics *m;
  int has_binary;
  double auc_roc, auc_pr;
} rp_page;

static void rp_class_name(rp_page *pg, size_t c) {
  if (pg->ro->labels && c < pg->ro->n_labels && pg->ro->labels[c])
    rp_esc(&pg->b, pg->ro->labels[c]);
  else
    rp_printf(&pg->b, "%zu", c);
}

/* A weight as a count when it is one. */
static void rp_weight(rp_buf *b, double w) {
  if (w == floor(w) && fabs(w) < 1e15)
    rp_printf(b, "%.0f", w);
  else
    rp_printf(b, "%.3f", w);
}

static void rp_head(rp_page *pg) {
  rp_buf *b = &pg->b;
  int size = pg->ro->thumb_size > 0 ? pg->ro->thumb_size : 128;
  if (size > RP_MAX_THUMB) size = RP_MAX_THUMB;
  rp_put(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
            "<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width\">\n"
            /* nothing may load from outside the file */
            "<meta http-equiv=\"Content-Security-Policy\" content=\""
            "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'\">\n<title>");
  rp_esc(b, pg->ro->title ? pg->ro->title : "dlp evaluation");
  rp_put(b, "</title>\n<style>");
  rp_printf(b, rp_css, size + 20, size);
  rp_put(b, "</style>\n</head>\n");
}

static void rp_tile(rp_buf *b, const char *name, double v) {
  rp_printf(b,
            "<div class=\"tile\"><div class=\"v\">%.4f</div>"
            "<div class=\"k\">%s</div></div>",
            v, name);
}

static void rp_header(rp_page *pg) {
  rp_buf *b = &pg->b;
  const dlp_multiclass_metrics *m = pg->m;
  char date[64] = "";
  time_t now = time(NULL);
  struct tm tm;
  if (gmtime_r(&now, &tm))
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
  rp_put(b, "<body>\n<header>\n<h1>");
  rp_esc(b, pg->ro->title ? pg->ro->title : "dlp evaluation");
  rp_printf(b, "</h1>\n<p class=\"meta\">Generated %s by dlp %s</p>\n", date,
            dlp_version());
  if (pg->ro->pipeline_desc) {
    rp_put(b, "<p class=\"meta\">Pipeline: ");
    rp_esc(b, pg->ro->pipeline_desc);
    rp_put(b, "</p>\n");
  }
  rp_printf(b,
            "<p class=\"meta\">Rows evaluated: <span id=\"n-rows\">%zu"
            "</span> of %zu; %zu classes",
            m->n_rows, dlp_frame_nrows(pg->f), m->n_classes);
  if (pg->eo->weight_col) {
    rp_put(b, "; total weight ");
    rp_weight(b, m->total_weight);
  }
  rp_put(b, "</p>\n<div class=\"tiles\">");
  rp_tile(b, "accuracy", m->accuracy);
  rp_tile(b, "F1 (weighted)", m->f1);
  if (m->has_log_loss) rp_tile(b, "log loss", m->log_loss);
  rp_put(b, "</div>\n</header>\n<main>\n");
}

static void rp_metric_row(rp_buf *b, const char *label, const char *key,
                          double v) {
  rp_printf(b,
            "<tr><th>%s</th><td class=\"num\" data-metric=\"%s\" "
            "data-value=\"%.17g\">%.4f</td></tr>\n",
            label, key, v, v);
}

static void rp_metrics(rp_page *pg) {
  rp_buf *b = &pg->b;
  const dlp_multiclass_metrics *m = pg->m;
  rp_put(b, "<section id=\"metrics\">\n<h2>Metrics</h2>\n"
            "<table class=\"list kv\">\n");
  rp_metric_row(b, "Accuracy", "accuracy", m->accuracy);
  rp_metric_row(b, "F1 (weighted)", "f1", m->f1);
  rp_metric_row(b, "Weighted precision", "weightedPrecision",
                m->weighted_precision);
  rp_metric_row(b, "Weighted recall", "weightedRecall", m->weighted_recall);
  if (m->has_log_loss) rp_metric_row(b, "Log loss", "logLoss", m->log_loss);
  rp_metric_row(b, "Hamming loss", "hammingLoss", m->hamming_loss);
  if (pg->has_binary) {
    rp_metric_row(b, "Area under ROC", "areaUnderROC", pg->auc_roc);
    rp_metric_row(b, "Area under PR", "areaUnderPR", pg->auc_pr);
  }
  rp_put(b, "</table>\n<p class=\"note\">Spark MLlib's definitions: the "
            "weighted averages weigh each class by its share of the true "
            "labels.</p>\n</section>\n");
}

static double rp_row_sum(const dlp_multiclass_metrics *m, size_t c) {
  double s = 0;
  for (size_t j = 0; j < m->n_classes; j++)
    s += m->confusion[c * m->n_classes + j];
  return s;
}

static void rp_per_class(rp_page *pg) {
  rp_buf *b = &pg->b;
  const dlp_multiclass_metrics *m = pg->m;
  rp_put(b, "<section id=\"classes\">\n<h2>Per class</h2>\n<table "
            "class=\"list\">\n<tr class=\"h\"><th>class</th><th>precision</th>"
            "<th>recall</th><th>F1</th><th>support</th></tr>\n");
  for (size_t c = 0; c < m->n_classes; c++) {
    rp_printf(b, "<tr data-class=\"%zu\"><td>", c);
    rp_class_name(pg, c);
    rp_printf(b,
              "</td><td class=\"num\" data-value=\"%.17g\">%.4f</td>"
              "<td class=\"num\" data-value=\"%.17g\">%.4f</td>"
              "<td class=\"num\" data-value=\"%.17g\">%.4f</td>"
              "<td class=\"num\">",
              m->precision[c], m->precision[c], m->recall[c], m->recall[c],
              m->f1_by_class[c], m->f1_by_class[c]);
    rp_weight(b, rp_row_sum(m, c));
    rp_put(b, "</td></tr>\n");
  }
  rp_put(b, "</table>\n</section>\n");
}

/* One heat-map cell: shade by the share of the true class's row; blue on
 * the diagonal (right), red off it (confusions). */
static void rp_cm_cell(rp_page *pg, size_t t, size_t p, double row_sum) {
  rp_buf *b = &pg->b;
  double v = pg->m->confusion[t * pg->m->n_classes + p];
  double share = row_sum > 0 ? v / row_sum : 0;
  const char *rgb = t == p ? "37,99,235" : "220,38,38";
  rp_printf(b,
            "<td data-true=\"%zu\" data-pred=\"%zu\" data-count=\"%.17g\" "
            "style=\"background:rgba(%s,%.3f);color:%s\" title=\"",
            t, p, v, rgb, share, share > 0.55 ? "#fff" : "#1f2933");
  rp_put(b, "true ");
  rp_class_name(pg, t);
  rp_put(b, ", predicted ");
  rp_class_name(pg, p);
  rp_printf(b, ": %.1f%% of the row\">", 100 * share);
  rp_weight(b, v);
  rp_put(b, "</td>");
}

static void rp_confusion(rp_page *pg) {
  rp_buf *b = &pg->b;
  size_t K = pg->m->n_classes;
  rp_put(b, "<section id=\"confusion\">\n<h2>Confusion matrix</h2>\n");
  if (K > RP_MAX_MATRIX_CLASSES) {
    rp_printf(b,
              "<p class=\"note\">%zu classes: too many to draw (at most "
              "%d).</p>\n</section>\n",
              K, RP_MAX_MATRIX_CLASSES);
    return;
  }
  rp_printf(b,
            "<div class=\"scroll\"><table class=\"cm\">\n<tr><th></th><th "
            "class=\"axis\" "
            "colspan=\"%zu\">predicted &rarr;</th></tr>\n"
            "<tr><th class=\"axis\">true &darr;</th>",
            K);
  for (size_t p = 0; p < K; p++) {
    rp_put(b, "<th>");
    rp_class_name(pg, p);
    rp_put(b, "</th>");
  }
  rp_put(b, "</tr>\n");
  for (size_t t = 0; t < K; t++) {
    rp_put(b, "<tr><th class=\"rh\">");
    rp_class_name(pg, t);
    rp_put(b, "</th>");
    double rs = rp_row_sum(pg->m, t);
    for (size_t p = 0; p < K; p++)
      rp_cm_cell(pg, t, p, rs);
    rp_put(b, "</tr>\n");
  }
  rp_put(b, "</table></div>\n<p class=\"note\">Rows are the true classes, "
            "columns "
            "the predicted ones; each cell is shaded by its share of its "
            "row.</p>\n</section>\n");
}

static const char *rp_basename(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static void rp_card(rp_page *pg, const rp_example *x, int has_images) {
  rp_buf *b = &pg->b;
  dlp_image_meta meta;
  long ic = dlp_frame_col_index(pg->f, pg->ro->image_col);
  const char *origin =
      has_images && dlp_frame_get_image_meta(pg->f, (size_t)ic, x->row, &meta)
          ? meta.origin
          : NULL;
  rp_printf(b, "<figure data-row=\"%zu\">", x->row);
  if (has_images) {
    rp_put(b, "<div class=\"pic\">");
    if (x->b64) {
      rp_put(b, "<img class=\"thumb\" alt=\"");
      rp_esc(b, origin ? rp_basename(origin) : "");
      rp_printf(b, "\" src=\"data:image/jpeg;base64,%s\">", x->b64);
    } else {
      rp_put(b, "<div class=\"placeholder\">");
      rp_esc(b, x->error ? x->error : "no image");
      rp_put(b, "</div>");
    }
    rp_put(b, "</div>");
  }
  rp_put(b, "<figcaption><div class=\"t\">true: ");
  rp_class_name(pg, x->label);
  rp_put(b, "</div><div class=\"p\">predicted: ");
  rp_class_name(pg, x->pred);
  if (x->prob >= 0) rp_printf(b, " (p = %.3f)", x->prob);
  rp_put(b, "</div><div class=\"f\"");
  if (origin) {
    rp_put(b, " title=\"");
    rp_esc(b, origin);
    rp_put(b, "\">");
    rp_esc(b, rp_basename(origin));
  } else {
    rp_printf(b, ">row %zu", x->row);
  }
  rp_put(b, "</div></figcaption></figure>\n");
}

static void rp_examples(rp_page *pg, const rp_example *ex, size_t shown,
                        size_t total, int has_images) {
  rp_buf *b = &pg->b;
  rp_put(b, "<section id=\"mistakes\">\n<h2>Misclassified</h2>\n");
  if (total == 0) {
    rp_put(b, "<p class=\"note\">No misclassified rows.</p>\n</section>\n");
    return;
  }
  rp_printf(b,
            "<p class=\"note\">Showing %zu of %zu misclassified rows, "
            "%s.</p>\n<div class=\"grid\">\n",
            shown, total,
            ex[0].prob >= 0 ? "most confident mistakes first" : "in row order");
  for (size_t i = 0; i < shown; i++)
    rp_card(pg, &ex[i], has_images);
  rp_put(b, "</div>\n</section>\n");
}

/* The binary areas, shown when there are two classes and a score. */
static void rp_binary(dlp_ctx *ctx, rp_page *pg) {
  if (pg->m->n_classes != 2) return;
  pg->has_binary =
      dlp_evaluate(ctx, pg->f, "areaUnderROC", pg->eo, &pg->auc_roc) ==
          DLP_OK &&
      dlp_evaluate(ctx, pg->f, "areaUnderPR", pg->eo, &pg->auc_pr) == DLP_OK;
}

static int rp_image_col(const dlp_frame *f, const dlp_report_opts *ro,
                        size_t *col) {
  long c = ro->image_col ? dlp_frame_col_index(f, ro->image_col) : -1;
  if (c < 0 || dlp_frame_col_type(f, (size_t)c) != DLP_TYPE_IMAGE) return 0;
  *col = (size_t)c;
  return 1;
}

static int rp_build(dlp_ctx *ctx, rp_page *pg, rp_example *ex, size_t n_ex,
                    const char *path) {
  size_t col = 0,
         shown = n_ex < pg->ro->max_examples ? n_ex : pg->ro->max_examples;
  int has_images = rp_image_col(pg->f, pg->ro, &col);
  int rc = has_images ? rp_thumbs(ctx, pg->f, col, pg->ro, ex, shown) : DLP_OK;
  if (rc != DLP_OK) return rc;
  rp_binary(ctx, pg);
  rp_head(pg);
  rp_header(pg);
  rp_metrics(pg);
  rp_per_class(pg);
  rp_confusion(pg);
  rp_examples(pg, ex, shown, n_ex, has_images);
  rp_printf(&pg->b, "</main>\n<footer>dlp %s</footer>\n%s</body>\n</html>\n",
            dlp_version(), rp_script);
  if (pg->b.oom)
    return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory for the report");
  dlp_err e = {0};
  if (dlp_write_file_atomic(&e, path, pg->b.s, pg->b.len) != DLP_OK)
    return dlp_fail_from(ctx, &e);
  return DLP_OK;
}

int dlp_report_write_html(dlp_ctx *ctx, const dlp_frame *f,
                          const dlp_eval_opts *eo, const dlp_report_opts *ro,
                          const char *path) {
  dlp_eval_opts edef;
  dlp_report_opts rdef;
  if (!eo) dlp_eval_opts_init(&edef);
  if (!ro) dlp_report_opts_init(&rdef);
  if (!f || !path || !*path)
    return dlp_fail(ctx, DLP_ERR_ARG, "dlp_report_write_html: no %s",
                    f ? "output path" : "frame");
  dlp_multiclass_metrics m;
  int rc = dlp_evaluate_multiclass(ctx, f, eo ? eo : &edef, &m);
  if (rc != DLP_OK) return dlp_fail_prefix(ctx, "report");
  rp_page pg = {{0}, f, eo ? eo : &edef, ro ? ro : &rdef, &m, 0, 0, 0};
  rp_example *ex = NULL;
  size_t n_ex = 0;
  rc = rp_mistakes(ctx, f, pg.eo, &ex, &n_ex);
  if (rc == DLP_OK) rc = rp_build(ctx, &pg, ex, n_ex, path);
  for (size_t i = 0; ex && i < n_ex; i++) {
    free(ex[i].b64);
    free(ex[i].error);
  }
  free(ex);
  free(pg.b.s);
  dlp_multiclass_metrics_clear(&m);
  return rc == DLP_OK ? dlp_ok(ctx) : rc;
}
