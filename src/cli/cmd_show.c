/* cmd_show.c - 'dlp show': a table file as a text table (like Spark's
 * show() / sparkdl's display()), or its schema, value counts or error rows. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#define CELL_MAX 160 /* one formatted cell (vectors show 3 values) */
#define IMG_FACTS 5  /* mode, height, width, nChannels, error */
#define MAX_COLS 256 /* displayed columns */

/* --- formatting one cell ---------------------------------------------- */

static const char *mode_name(int32_t mode) {
  switch (mode) {
  case DLP_MODE_8UC1:
    return "gray";
  case DLP_MODE_8UC3:
    return "RGB";
  case DLP_MODE_8UC4:
    return "RGBA";
  default:
    return "?";
  }
}

static void format_int32(int32_t v, char *buf, size_t n) {
  if (v < 0)
    snprintf(buf, n, "null");
  else
    snprintf(buf, n, "%d", (int)v);
}

static void format_vector(const float *v, size_t dim, char *buf, size_t n) {
  size_t shown = dim <= 4 ? dim : 3;
  int len = snprintf(buf, n, "[");
  for (size_t i = 0; i < shown && len > 0 && (size_t)len < n; i++)
    len += snprintf(buf + len, n - (size_t)len, "%s%.4g", i ? ", " : "",
                    (double)v[i]);
  if (len > 0 && (size_t)len < n) {
    if (shown < dim)
      snprintf(buf + len, n - (size_t)len, ", ... ] (dim %zu)", dim);
    else
      snprintf(buf + len, n - (size_t)len, "]");
  }
}

/* The text of a non-image cell: a string points into the frame, other
 * values are formatted into buf. */
static const char *format_cell(const dlp_frame *f, size_t col, size_t row,
                               char *buf, size_t n) {
  const char *s;
  int64_t i;
  double d;
  const float *v;
  switch (dlp_frame_col_type(f, col)) {
  case DLP_TYPE_STRING:
    if (dlp_frame_get_string(f, col, row, &s)) return s;
    break;
  case DLP_TYPE_INT64:
    if (dlp_frame_get_int64(f, col, row, &i)) {
      snprintf(buf, n, "%lld", (long long)i);
      return buf;
    }
    break;
  case DLP_TYPE_DOUBLE:
    if (dlp_frame_get_double(f, col, row, &d)) {
      snprintf(buf, n, "%.6g", d);
      return buf;
    }
    break;
  case DLP_TYPE_VECTOR:
    if (dlp_frame_get_vector(f, col, row, &v)) {
      format_vector(v, dlp_frame_col_dim(f, col), buf, n);
      return buf;
    }
    break;
  default:
    break;
  }
  return "null";
}

/* --- the row view: image columns become path + facts ------------------ */

typedef struct view {
  size_t ncols;   /* displayed columns */
  long image_col; /* the first image column, or -1 */
  char buf[MAX_COLS][CELL_MAX];
  const char *text[MAX_COLS];
} view;

static int is_numeric(dlp_type t) {
  return t == DLP_TYPE_INT64 || t == DLP_TYPE_DOUBLE;
}

/* The columns in frame order, an image column shown as its path, then the
 * facts of the first image column: path, label, mode, height, ... for a
 * read-images table. */
static int view_columns(const dlp_frame *f, view *v, cli_table *t) {
  size_t nc = dlp_frame_ncols(f), k = 0;
  v->image_col = -1;
  for (size_t c = 0; c < nc; c++)
    if (dlp_frame_col_type(f, c) == DLP_TYPE_IMAGE && v->image_col < 0)
      v->image_col = (long)c;
  v->ncols = nc + (v->image_col >= 0 ? IMG_FACTS : 0);
  if (v->ncols > MAX_COLS)
    return cli_fail("too many columns to show (%zu)", nc);
  if (cli_table_init(t, v->ncols) != 0) return cli_fail("out of memory");
  static const char *facts[IMG_FACTS] = {"mode", "height", "width", "nChannels",
                                         "error"};
  int rc = 0;
  for (size_t c = 0; c < nc; c++) {
    dlp_type ty = dlp_frame_col_type(f, c);
    const char *name = dlp_frame_col_name(f, c);
    if (ty == DLP_TYPE_IMAGE && (long)c == v->image_col) name = "path";
    rc |= cli_table_column(t, k++, name,
                           ty == DLP_TYPE_IMAGE ? CLI_COL_CUT_LEFT
                           : is_numeric(ty)     ? CLI_COL_RIGHT
                                                : 0);
  }
  for (size_t j = 0; v->image_col >= 0 && j < IMG_FACTS; j++)
    rc |= cli_table_column(t, k++, facts[j],
                           j >= 1 && j <= 3 ? CLI_COL_RIGHT : 0);
  return rc == 0 ? 0 : cli_fail("out of memory");
}

static void view_image_facts(const dlp_image_meta *m, int ok, view *v,
                             size_t k) {
  for (size_t j = 0; j < IMG_FACTS; j++)
    v->text[k + j] = "null";
  if (!ok) return;
  if (m->mode >= 0) {
    snprintf(v->buf[k], CELL_MAX, "%s (%d)", mode_name(m->mode), (int)m->mode);
    v->text[k] = v->buf[k];
  }
  format_int32(m->height, v->buf[k + 1], CELL_MAX);
  format_int32(m->width, v->buf[k + 2], CELL_MAX);
  format_int32(m->n_channels, v->buf[k + 3], CELL_MAX);
  for (size_t j = 1; j <= 3; j++)
    v->text[k + j] = v->buf[k + j];
  if (m->error) v->text[k + 4] = m->error;
}

static int view_row(const dlp_frame *f, size_t row, view *v, cli_table *t) {
  size_t nc = dlp_frame_ncols(f);
  dlp_image_meta first;
  int first_ok = 0;
  memset(&first, 0, sizeof first);
  for (size_t c = 0; c < nc; c++) {
    v->text[c] = "null";
    if (dlp_frame_col_type(f, c) == DLP_TYPE_IMAGE) {
      dlp_image_meta m;
      memset(&m, 0, sizeof m); /* left unset for a null cell */
      int ok = dlp_frame_get_image_meta(f, c, row, &m);
      if (ok && m.origin) v->text[c] = m.origin;
      if ((long)c == v->image_col) {
        first = m;
        first_ok = ok;
      }
    } else {
      v->text[c] = format_cell(f, c, row, v->buf[c], CELL_MAX);
    }
  }
  if (v->image_col >= 0) view_image_facts(&first, first_ok, v, nc);
  return cli_table_row(t, v->text);
}

/* --- the modes --------------------------------------------------------- */

static size_t limit_of(const cli_args *a) {
  return cli_flag(a, "no-truncate") ? 0 : (size_t)cli_int(a, "truncate");
}

/* Prints the rows listed in idx[0..n) of f. */
static int print_rows(const cli_args *a, const dlp_frame *f, const size_t *idx,
                      size_t n) {
  cli_table t = {0}; /* freeable even if view_columns fails before init */
  view *v = malloc(sizeof *v);
  if (!v) return cli_fail("out of memory");
  int rc = view_columns(f, v, &t);
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (view_row(f, idx[i], v, &t) != 0) rc = cli_fail("out of memory");
  if (rc == 0) cli_table_print(&t, stdout, limit_of(a));
  cli_table_free(&t);
  free(v);
  return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int show_rows(const cli_args *a, const dlp_frame *f) {
  size_t total = dlp_frame_nrows(f);
  size_t n = cli_flag(a, "all") ? total : (size_t)cli_int(a, "rows");
  if (n > total) n = total;
  size_t *idx = malloc((n ? n : 1) * sizeof *idx);
  if (!idx) return cli_fail("out of memory");
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  int rc = print_rows(a, f, idx, n);
  free(idx);
  if (rc == CLI_EXIT_OK)
    printf("showing %zu of %zu row%s\n", n, total, total == 1 ? "" : "s");
  return rc;
}

static int show_errors(const cli_args *a, const dlp_frame *f) {
  long col = -1;
  for (size_t c = 0; c < dlp_frame_ncols(f) && col < 0; c++)
    if (dlp_frame_col_type(f, c) == DLP_TYPE_IMAGE) col = (long)c;
  if (col < 0) return cli_fail("%s has no image column", a->pos[0]);
  size_t total = dlp_frame_nrows(f), nerr = 0;
  size_t max = cli_given(a, "rows") ? (size_t)cli_int(a, "rows") : total;
  size_t *idx = malloc((total ? total : 1) * sizeof *idx);
  if (!idx) return cli_fail("out of memory");
  for (size_t r = 0; r < total; r++) {
    dlp_image_meta m;
    if (dlp_frame_get_image_meta(f, (size_t)col, r, &m) && m.error)
      idx[nerr++] = r;
  }
  size_t n = nerr < max ? nerr : max;
  static const char *names[2] = {"path", "error"};
  static const int flags[2] = {CLI_COL_CUT_LEFT, CLI_COL_NO_CUT};
  cli_table t;
  int rc = cli_table_init_cols(&t, 2, names, flags);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    dlp_image_meta m;
    if (!dlp_frame_get_image_meta(f, (size_t)col, idx[i], &m)) continue;
    const char *row[2] = {m.origin ? m.origin : "null", m.error};
    rc = cli_table_row(&t, row);
  }
  if (rc == 0 && n > 0) cli_table_print(&t, stdout, limit_of(a));
  cli_table_free(&t);
  free(idx);
  if (rc != 0) return cli_fail("out of memory");
  printf("%zu of %zu image%s ha%s errors%s\n", nerr, total,
         total == 1 ? "" : "s", nerr == 1 ? "s" : "ve",
         n < nerr ? " (use --all or a larger -n to see more)" : "");
  return CLI_EXIT_OK;
}

static int show_schema(const cli_args *a, const dlp_frame *f) {
  static const char *names[3] = {"column", "type", "dim"};
  static const int flags[3] = {0, 0, CLI_COL_RIGHT};
  cli_table t;
  int rc = cli_table_init_cols(&t, 3, names, flags);
  for (size_t c = 0; rc == 0 && c < dlp_frame_ncols(f); c++) {
    char dim[32] = "";
    if (dlp_frame_col_type(f, c) == DLP_TYPE_VECTOR)
      snprintf(dim, sizeof dim, "%zu", dlp_frame_col_dim(f, c));
    const char *row[3] = {dlp_frame_col_name(f, c),
                          dlp_type_name(dlp_frame_col_type(f, c)), dim};
    rc = cli_table_row(&t, row);
  }
  if (rc == 0) cli_table_print(&t, stdout, limit_of(a));
  cli_table_free(&t);
  if (rc != 0) return cli_fail("out of memory");
  printf("%zu column%s, %zu row%s\n", dlp_frame_ncols(f),
         dlp_frame_ncols(f) == 1 ? "" : "s", dlp_frame_nrows(f),
         dlp_frame_nrows(f) == 1 ? "" : "s");
  return CLI_EXIT_OK;
}

static int check_modes(const cli_args *a) {
  int modes =
      cli_given(a, "schema") + cli_given(a, "errors") + cli_given(a, "counts");
  if (modes > 1)
    return cli_usage_error(a->cmd, "use one of '--schema', '--errors' and "
                                   "'--counts' at a time");
  if (cli_given(a, "all") && cli_given(a, "rows"))
    return cli_usage_error(a->cmd, "use either '-n' or '--all', not both");
  if (cli_given(a, "truncate") && cli_given(a, "no-truncate"))
    return cli_usage_error(a->cmd, "use either '--truncate' or "
                                   "'--no-truncate', not both");
  return CLI_PARSED;
}

int cli_cmd_show(const cli_args *a) {
  int rc = check_modes(a);
  if (rc != CLI_PARSED) return rc;
  dlp_ctx *ctx = cli_ctx_new(a);
  if (!ctx) return CLI_EXIT_FAIL;
  dlp_io_opts io;
  dlp_io_opts_init(&io);
  io.table = cli_str(a, "table");
  dlp_frame *f = NULL;
  if (dlp_frame_read(ctx, a->pos[0], &io, &f) != DLP_OK) {
    rc = cli_lib_error(ctx);
  } else if (cli_flag(a, "schema")) {
    rc = show_schema(a, f);
  } else if (cli_flag(a, "errors")) {
    rc = show_errors(a, f);
  } else if (cli_str(a, "counts")) {
    rc = cli_show_counts(a, f, limit_of(a));
  } else {
    rc = show_rows(a, f);
  }
  dlp_frame_free(f);
  dlp_ctx_free(ctx);
  return rc;
}
