/* sql_funcs.c - scalar SQL functions over models and images: dlp_image,
 * dlp_featurize, dlp_predict, dlp_apply, dlp_register (and the functions it
 * creates; fitted pipelines are run by sql_pipeline.c). One row at a time
 * through the same dlp_model_* calls as the CLI, so results equal 'dlp
 * featurize/predict/apply'; dlp_featurize_rows (sql_batch.c) is the batched
 * form. */
#define DLPSQL_INTERNAL
#include "sql.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_FEATURIZE, F_PREDICT, F_APPLY } fmode;

static const char *fname[] = {"dlp_featurize", "dlp_predict", "dlp_apply"};

/* A user function made by dlp_register: the model key it applies. */
typedef struct reg_udf {
  dlpsql_state *s;
  char *name, *model, *opts;
} reg_udf;

static void reg_udf_free(void *p) {
  reg_udf *u = p;
  if (!u) return;
  dlpsql_unref(u->s);
  free(u->name);
  free(u->model);
  free(u->opts);
  free(u);
}

static const char *text_or_null(sqlite3_value *v) {
  return sqlite3_value_type(v) == SQLITE_NULL
             ? NULL
             : (const char *)sqlite3_value_text(v);
}

/* What to call the image in messages: its path, or "a blob of N bytes". */
static void image_label(sqlite3_value *v, char *buf, size_t n) {
  if (sqlite3_value_type(v) == SQLITE_BLOB)
    snprintf(buf, n, "a blob of %d bytes", sqlite3_value_bytes(v));
  else
    snprintf(buf, n, "'%s'", (const char *)sqlite3_value_text(v));
}

void dlpsql_image_error(sqlite3_context *c, const char *fn,
                        const dlpsql_model *mm, const dlp_frame *out,
                        size_t img_col, sqlite3_value *img) {
  if (mm->on_error_null) {
    sqlite3_result_null(c);
    return;
  }
  dlp_image_meta meta;
  char label[300];
  image_label(img, label, sizeof label);
  const char *why =
      dlp_frame_get_image_meta(out, img_col, 0, &meta) && meta.error
          ? meta.error
          : "unknown error";
  /* The reason often starts with the path already. */
  const char *path = sqlite3_value_type(img) == SQLITE_BLOB
                         ? NULL
                         : (const char *)sqlite3_value_text(img);
  int named = path && *path && strncmp(why, path, strlen(path)) == 0;
  char *msg =
      named ? sqlite3_mprintf("%s: cannot read image %s", fn, why)
            : sqlite3_mprintf("%s: cannot read image %s: %s", fn, label, why);
  sqlite3_result_error(c, msg ? msg : fn, -1);
  sqlite3_free(msg);
}

/* Runs model mm on the one image in img; sets the SQL result. */
static void run_one(sqlite3_context *c, const char *fn, dlpsql_state *s,
                    dlpsql_model *mm, sqlite3_value *img, fmode mode, int k) {
  dlp_ctx *ctx = s->ctx;
  dlp_frame *in = NULL, *out = NULL;
  int rc = dlp_frame_new(ctx, &in);
  if (rc == DLP_OK)
    rc = dlp_frame_add_column(ctx, in, "image", DLP_TYPE_IMAGE, 0);
  if (rc == DLP_OK) rc = dlp_frame_add_row(ctx, in, NULL);
  if (rc == DLP_OK) rc = dlpsql_set_image(ctx, in, 0, img);
  dlp_transform_opts to;
  dlp_transform_opts_init(&to);
  to.batch_size = 1;
  to.output_col = "out";
  if (rc == DLP_OK)
    rc = mode == F_PREDICT
             ? dlp_model_predict(ctx, mm->m, in, "image", k, &to, &out)
         : mode == F_FEATURIZE
             ? dlp_model_featurize(ctx, mm->m, in, "image", &to, &out)
             : dlp_model_apply(ctx, mm->m, in, "image", &to, &out);
  if (rc != DLP_OK) {
    char *msg = sqlite3_mprintf("%s: %s", fn, dlp_errmsg(ctx));
    sqlite3_result_error(c, msg ? msg : fn, -1);
    sqlite3_free(msg);
  } else if (dlp_frame_is_null(out, 1, 0)) {
    dlpsql_image_error(c, fn, mm, out, 0, img);
  } else if (mode == F_PREDICT) {
    const char *json = NULL;
    if (dlp_frame_get_string(out, 1, 0, &json))
      sqlite3_result_text(c, json, -1, SQLITE_TRANSIENT);
    else
      sqlite3_result_null(c);
  } else {
    const float *v = NULL;
    size_t dim = dlp_frame_col_dim(out, 1);
    if (dlp_frame_get_vector(out, 1, 0, &v))
      sqlite3_result_blob(c, v, (int)(dim * sizeof(float)), SQLITE_TRANSIENT);
    else
      sqlite3_result_null(c);
  }
  dlp_frame_free(out);
  dlp_frame_free(in);
}

void dlpsql_error(sqlite3_context *c, const char *fn, const char *err) {
  char *msg = sqlite3_mprintf("%s: %s", fn, err);
  sqlite3_result_error(c, msg ? msg : fn, -1);
  sqlite3_free(msg);
}

/* dlp_featurize(model, image [, options]), dlp_apply(model, image
 * [, options]), dlp_predict(model, image [, k [, options]]). */
static void model_func(sqlite3_context *c, int argc, sqlite3_value **argv,
                       fmode mode) {
  dlpsql_state *s = sqlite3_user_data(c);
  const char *fn = fname[mode];
  const char *name = text_or_null(argv[0]);
  if (!name || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
    sqlite3_result_null(c);
    return;
  }
  int k = 5, opt_arg = 2;
  if (mode == F_PREDICT && argc >= 3) {
    opt_arg = 3;
    if (sqlite3_value_type(argv[2]) != SQLITE_NULL) {
      if (sqlite3_value_numeric_type(argv[2]) != SQLITE_INTEGER ||
          sqlite3_value_int64(argv[2]) < 1 ||
          sqlite3_value_int64(argv[2]) > 100000) {
        dlpsql_error(c, fn, "k must be an integer from 1 to 100000");
        return;
      }
      k = sqlite3_value_int(argv[2]);
    }
  }
  const char *opts = argc > opt_arg ? text_or_null(argv[opt_arg]) : NULL;
  char err[512];
  dlpsql_model *mm = dlpsql_model_get(s, name, opts, err, sizeof err);
  if (!mm) {
    dlpsql_error(c, fn, err);
  } else if (mm->pm && mode == F_APPLY) {
    dlpsql_pipeline_run(c, fn, s, mm, argv[1], DLPSQL_PIPE_PROBABILITY);
  } else if (mm->pm) {
    char *msg = sqlite3_mprintf("'%s' is a fitted pipeline: use dlp_apply "
                                "(probabilities) or dlp_classify (the label)",
                                name);
    dlpsql_error(c, fn, msg ? msg : "a fitted pipeline");
    sqlite3_free(msg);
  } else {
    run_one(c, fn, s, mm, argv[1], mode, k);
  }
}

static void featurize_func(sqlite3_context *c, int argc, sqlite3_value **argv) {
  model_func(c, argc, argv, F_FEATURIZE);
}
static void predict_func(sqlite3_context *c, int argc, sqlite3_value **argv) {
  model_func(c, argc, argv, F_PREDICT);
}
static void apply_func(sqlite3_context *c, int argc, sqlite3_value **argv) {
  model_func(c, argc, argv, F_APPLY);
}

/* name(image): the model dlp_register bound, applied to one image; for a
 * fitted pipeline, its predicted label. */
static void registered_func(sqlite3_context *c, int argc,
                            sqlite3_value **argv) {
  reg_udf *u = sqlite3_user_data(c);
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
    sqlite3_result_null(c);
    return;
  }
  char err[512];
  dlpsql_model *mm = dlpsql_model_get(u->s, u->model, u->opts, err, sizeof err);
  if (!mm)
    dlpsql_error(c, u->name, err);
  else if (mm->pm)
    dlpsql_pipeline_run(c, u->name, u->s, mm, argv[0], DLPSQL_PIPE_LABEL);
  else
    run_one(c, u->name, u->s, mm, argv[0], F_APPLY, 0);
}

static int valid_name(const char *s) {
  if (!s || !(isalpha((unsigned char)*s) || *s == '_')) return 0;
  size_t n = 0;
  for (; *s; s++, n++)
    if (!isalnum((unsigned char)*s) && *s != '_') return 0;
  return n <= 64;
}

static char *dup_or_null(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* dlp_register(name, model [, options]): opens the model (or fitted
 * pipeline) now, so a wrong name fails here, and creates the SQL function
 * name(image). Returns name. */
static void register_func(sqlite3_context *c, int argc, sqlite3_value **argv) {
  dlpsql_state *s = sqlite3_user_data(c);
  const char *name = text_or_null(argv[0]);
  const char *model = text_or_null(argv[1]);
  const char *opts = argc > 2 ? text_or_null(argv[2]) : NULL;
  if (!name || !model) {
    sqlite3_result_null(c);
    return;
  }
  if (!valid_name(name)) {
    dlpsql_error(c, "dlp_register",
                 "the function name must be letters, digits and '_' (at most "
                 "64, not starting with a digit)");
    return;
  }
  char err[512];
  if (!dlpsql_model_get(s, model, opts, err, sizeof err)) {
    dlpsql_error(c, "dlp_register", err);
    return;
  }
  reg_udf *u = calloc(1, sizeof *u);
  if (u) {
    u->name = dup_or_null(name);
    u->model = dup_or_null(model);
    u->opts = dup_or_null(opts);
  }
  if (!u || !u->name || !u->model || (opts && !u->opts)) {
    if (u) {
      free(u->name);
      free(u->model);
      free(u->opts);
      free(u);
    }
    sqlite3_result_error_nomem(c);
    return;
  }
  u->s = dlpsql_ref(s);
  sqlite3 *db = sqlite3_context_db_handle(c);
  int rc = sqlite3_create_function_v2(
      db, name, 1, SQLITE_UTF8 | SQLITE_DIRECTONLY | SQLITE_DETERMINISTIC, u,
      registered_func, NULL, NULL, reg_udf_free);
  if (rc != SQLITE_OK) {
    char *msg = sqlite3_mprintf("dlp_register: cannot create %s(): %s", name,
                                sqlite3_errmsg(db));
    sqlite3_result_error(c, msg ? msg : "dlp_register", -1);
    sqlite3_free(msg);
    return;
  }
  sqlite3_result_text(c, name, -1, SQLITE_TRANSIENT);
}

/* dlp_image(path): the file's encoded bytes as a BLOB, after checking that
 * it decodes; a BLOB argument is checked and returned as is. */
static void image_func(sqlite3_context *c, int argc, sqlite3_value **argv) {
  dlpsql_state *s = sqlite3_user_data(c);
  int t = sqlite3_value_type(argv[0]);
  if (t == SQLITE_NULL) {
    sqlite3_result_null(c);
    return;
  }
  dlp_image *img = NULL;
  int rc;
  char label[300];
  image_label(argv[0], label, sizeof label);
  if (t == SQLITE_BLOB) {
    rc = dlp_image_decode(s->ctx, sqlite3_value_blob(argv[0]),
                          (size_t)sqlite3_value_bytes(argv[0]), NULL, &img);
    if (rc == DLP_OK) sqlite3_result_value(c, argv[0]);
  } else {
    const char *path = (const char *)sqlite3_value_text(argv[0]);
    rc = dlp_image_read(s->ctx, path, NULL, &img);
    if (rc == DLP_OK) {
      /* Decoded fine: now hand back the file's own bytes. */
      FILE *fp = fopen(path, "rb");
      long n = -1;
      void *buf = NULL;
      if (fp && fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
          n < 0x7fffffff && fseek(fp, 0, SEEK_SET) == 0 &&
          (buf = sqlite3_malloc64((sqlite3_uint64)n + 1)) &&
          fread(buf, 1, (size_t)n, fp) == (size_t)n) {
        sqlite3_result_blob(c, buf, (int)n, sqlite3_free);
        buf = NULL;
      } else {
        char *msg = sqlite3_mprintf("dlp_image: cannot read %s", label);
        sqlite3_result_error(c, msg ? msg : "dlp_image", -1);
        sqlite3_free(msg);
      }
      sqlite3_free(buf);
      if (fp) fclose(fp);
    }
  }
  if (rc != DLP_OK) {
    char *msg = sqlite3_mprintf("dlp_image: cannot read image %s: %s", label,
                                dlp_errmsg(s->ctx));
    sqlite3_result_error(c, msg ? msg : "dlp_image", -1);
    sqlite3_free(msg);
  }
  dlp_image_free(img);
}

int dlpsql_register_funcs(sqlite3 *db, dlpsql_state *s) {
  static const struct {
    const char *name;
    int nmin, nmax;
    void (*fn)(sqlite3_context *, int, sqlite3_value **);
    int det;
  } t[] = {{"dlp_image", 1, 1, image_func, 0},
           {"dlp_featurize", 2, 3, featurize_func, 1},
           {"dlp_predict", 2, 4, predict_func, 1},
           {"dlp_apply", 2, 3, apply_func, 1},
           {"dlp_register", 2, 3, register_func, 0}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    for (int n = t[i].nmin; n <= t[i].nmax; n++) {
      /* They read files: not callable from triggers or views of a
       * database's schema, as SQLite's own readfile(). */
      int flags = SQLITE_UTF8 | SQLITE_DIRECTONLY |
                  (t[i].det ? SQLITE_DETERMINISTIC : 0);
      int rc =
          sqlite3_create_function_v2(db, t[i].name, n, flags, dlpsql_ref(s),
                                     t[i].fn, NULL, NULL, dlpsql_unref);
      if (rc != SQLITE_OK) return rc;
    }
  return SQLITE_OK;
}
