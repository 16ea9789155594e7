/* cli.h - the dlp command's shared pieces: sub-command and option tables,
 * the table-driven option parser, error reporting and progress.
 *
 * Each sub-command is data (struct cli_cmd in args.c: name, usage, options,
 * example) plus a run function (cmd_*.c). The same option table drives the
 * parser, the defaults and the --help text, so they cannot drift apart:
 *
 *     cli_args a;
 *     int rc = cli_parse(cmd, argc, argv, &a);   // argv[0] = command name
 *     if (rc != CLI_PARSED) return rc;           // help shown or usage error
 *     const char *out = cli_str(&a, "out");
 *
 * The CLI is a front: it uses include/dlp.h only.
 */
#ifndef DLP_CLI_H
#define DLP_CLI_H

#include "dlp.h"

#include <stdint.h>
#include <stdio.h>

/* Exit codes of every sub-command. */
enum {
  CLI_EXIT_OK = 0,      /* success */
  CLI_EXIT_FAIL = 1,    /* an error; nothing (or nothing new) written */
  CLI_EXIT_USAGE = 2,   /* bad command line */
  CLI_EXIT_INVALID = 3, /* --fail-on-error and some images were invalid */
  CLI_PARSED = -1       /* cli_parse: go on and run the command */
};

typedef enum cli_kind {
  CLI_FLAG, /* no value; set or not */
  CLI_STR,  /* any text */
  CLI_INT,  /* signed integer within [min, max] */
  CLI_U64,  /* unsigned 64-bit integer (seeds, pixel counts) */
  CLI_REAL  /* finite number within [min, max] */
} cli_kind;

typedef struct cli_opt {
  const char *name; /* long name without the dashes: "out" */
  char short_name;  /* 'n' for -n, or 0 */
  cli_kind kind;
  const char *metavar; /* shown in help: "FILE", "N" */
  const char *def;  /* default, parsed like a command-line value; NULL: none */
  double min, max;  /* CLI_INT / CLI_REAL range, checked when min < max */
  int required;     /* 1: the command fails with exit 2 without it */
  const char *help; /* one line */
} cli_opt;

#define CLI_MAX_OPTS 64
#define CLI_MAX_POS 4

typedef struct cli_val {
  int given;     /* on the command line (not just the default) */
  int has;       /* a value: given or defaulted */
  const char *s; /* the text of the value, whatever the kind */
  int64_t i;
  uint64_t u;
  double d;
} cli_val;

struct cli_args;
typedef int (*cli_run_fn)(const struct cli_args *a);

typedef struct cli_cmd {
  const char *name;    /* "read-images" */
  const char *summary; /* one line for 'dlp help' */
  const char *usage;   /* after "usage: dlp NAME " */
  const char *description;
  const char *positional[CLI_MAX_POS]; /* names of positional arguments */
  int npos_min, npos_max;
  const cli_opt *opts; /* terminated by an entry with name NULL */
  const char *example;
  const char *exit_codes; /* extra exit-code lines beyond 0/1/2, or NULL */
  cli_run_fn run;
} cli_cmd;

typedef struct cli_args {
  const cli_cmd *cmd;
  cli_val vals[CLI_MAX_OPTS]; /* parallel to cmd->opts */
  const char *pos[CLI_MAX_POS];
  int npos;
} cli_args;

/* --- args.c ----------------------------------------------------------- */

/* The sub-commands, terminated by an entry with name NULL. */
extern const cli_cmd cli_commands[];
const cli_cmd *cli_find_command(const char *name);

/* Parses argv[1..argc) for cmd. Returns CLI_PARSED to go on, CLI_EXIT_OK
 * after printing --help, or CLI_EXIT_USAGE after printing the problem. */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_args *a);
void cli_print_help(const cli_cmd *cmd, FILE *out);
void cli_print_commands(FILE *out);

/* Values by option name (the name must exist in the command's table). */
int cli_given(const cli_args *a, const char *name);
int cli_flag(const cli_args *a, const char *name);
const char *cli_str(const cli_args *a, const char *name); /* NULL: none */
int64_t cli_int(const cli_args *a, const char *name);
uint64_t cli_u64(const cli_args *a, const char *name);
double cli_real(const cli_args *a, const char *name);

/* Prints "dlp CMD: <message> (see 'dlp CMD --help')" and returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "dlp: <message of ctx>" and returns CLI_EXIT_FAIL. */
int cli_lib_error(dlp_ctx *ctx);
/* Prints "dlp: <message>" and returns CLI_EXIT_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Splits "a,b,c" into at most max numbers > 0; returns the count or -1. */
int cli_parse_weights(const char *s, double *w, int max);
/* Splits "a,b,c" into at most max strings (malloc'd copy in *buf, which the
 * caller frees); returns the count or -1. */
int cli_split_list(const char *s, char **buf, const char **items, int max);

/* A new context with the --threads and --max-pixels values applied when the
 * command has them (given);
 * prints the error and returns NULL on failure. */
dlp_ctx *cli_ctx_new(const cli_args *a);

/* --- progress.c -------------------------------------------------------- */

typedef struct cli_progress {
  const char *label; /* "reading images"; NULL: the library's step names */
  double start;      /* cli_now() when it began */
  int drawn;         /* a line is on the terminal */
} cli_progress;

/* Seconds from a monotonic clock. */
double cli_now(void);
/* Installs a one-line progress display on ctx when stderr is a terminal
 * (and quiet is 0); otherwise leaves ctx without a callback. */
void cli_progress_start(cli_progress *p, dlp_ctx *ctx, const char *label,
                        int quiet);
/* Erases the progress line, if one was drawn. */
void cli_progress_end(cli_progress *p, dlp_ctx *ctx);

/* --- table.c ---------------------------------------------------------- */

/* Column flags. */
enum {
  CLI_COL_RIGHT = 1,    /* right-align (numbers) */
  CLI_COL_CUT_LEFT = 2, /* cut long cells at the left (paths) */
  CLI_COL_NO_CUT = 4    /* never cut (full error messages) */
};

/* A text table built row by row, then printed box-drawn. Every function
 * returns 0, or -1 when out of memory; cli_table_free is always safe after
 * cli_table_init. */
typedef struct cli_table {
  size_t ncols, nrows, cap;
  char **header; /* ncols names; owned */
  char **cells;  /* nrows * ncols texts, row-major; owned */
  int *flags;    /* per column */
} cli_table;

int cli_table_init(cli_table *t, size_t ncols);
int cli_table_column(cli_table *t, size_t col, const char *name, int flags);
/* cli_table_init, then names[c] and flags[c] for every column. */
int cli_table_init_cols(cli_table *t, size_t ncols, const char *const *names,
                        const int *flags);
/* Appends a row of ncols texts (copied; NULL is an empty cell). */
int cli_table_row(cli_table *t, const char *const *texts);
/* Prints the table, cutting cells wider than limit (0: no limit). */
int cli_table_print(const cli_table *t, FILE *out, size_t limit);
void cli_table_free(cli_table *t);

/* --- cmd_*.c ----------------------------------------------------------- */

int cli_cmd_read_images(const cli_args *a);
int cli_cmd_show(const cli_args *a);
int cli_cmd_convert(const cli_args *a);
int cli_cmd_split(const cli_args *a);
int cli_cmd_version(const cli_args *a);
int cli_cmd_help(const cli_args *a);
int cli_cmd_featurize(const cli_args *a);
int cli_cmd_predict(const cli_args *a);
int cli_cmd_apply(const cli_args *a);
int cli_cmd_models(const cli_args *a);
int cli_cmd_sql(const cli_args *a);
int cli_cmd_fit(const cli_args *a);
int cli_cmd_transform(const cli_args *a);
int cli_cmd_evaluate(const cli_args *a);
int cli_cmd_tune(const cli_args *a);
int cli_cmd_finetune(const cli_args *a);
int cli_cmd_dedup(const cli_args *a);

/* args.c: builds the options of fit and tune from the parameter
 * descriptions of LogisticRegression (dlp_stage_class_params), once, before
 * any command is parsed or its help printed. Returns 0, or -1 when the
 * table does not fit (a bug). */
int cli_ml_opts_init(void);
/* 1 when option o of a fit/tune command was generated from a
 * LogisticRegression parameter; *param gets the parameter's MLlib name. */
int cli_ml_opt_param(const cli_opt *o, const char **param);

/* cmd_featurize.c: the steps featurize, predict and apply share (model
 * options, input table or folder, transform, output, summary). */
typedef enum cli_model_mode {
  CLI_FEATURIZE = 0,
  CLI_PREDICT = 1,
  CLI_APPLY = 2
} cli_model_mode;
int cli_model_command(const cli_args *a, cli_model_mode mode);

/* ml_common.c: what fit, tune, transform and evaluate share. */
typedef struct cli_ml_data {
  const char *path; /* the input: a folder or a table file */
  int folder;       /* path is a folder (labels from sub-folders) */
  dlp_frame *all;   /* the labelled rows that can be used */
  const char *label_col, *image_col, *features_col;
  int from_features; /* --features-from: a table of feature vectors */
  int featurized;    /* cli_ml_featurize added the features column */
  size_t n_read, n_invalid, n_unlabelled; /* before dropping */
} cli_ml_data;
/* Which input and columns the options name (no reading yet): usage errors
 * (exit 2) come before any work. */
int cli_ml_data_init(const cli_args *a, cli_ml_data *d);
/* Reads the input of fit/tune/evaluate (--images DIR, IN, --features-from
 * FILE), drops invalid images and rows without a label (with a warning);
 * returns CLI_EXIT_INVALID with --fail-on-error when some were invalid. */
int cli_ml_read_labelled(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d);
void cli_ml_data_free(cli_ml_data *d);
/* The pipeline of fit/tune from the options: [DeepImageFeaturizer] ->
 * StringIndexer -> LogisticRegression -> IndexToString. */
int cli_ml_build_pipeline(const cli_args *a, dlp_ctx *ctx, const cli_ml_data *d,
                          dlp_pipeline **out);
/* Transforms f with pm and prints the multiclass metrics, the confusion
 * matrix (K <= 12) under the heading `what` ("train", "test"). */
int cli_ml_report_metrics(const cli_args *a, dlp_ctx *ctx,
                          const dlp_pipeline_model *pm, const dlp_frame *f,
                          const char *label_col, const char *what,
                          dlp_frame **transformed);
/* Prints the LR summary line (iterations, objective). */
void cli_ml_print_lr(dlp_ctx *ctx, const dlp_pipeline_model *pm);
/* Prints a K x K confusion matrix with class names. */
void cli_ml_print_confusion(const dlp_multiclass_metrics *m,
                            const char *const *labels, size_t n_labels,
                            FILE *out);
/* Rows of f whose label is not one of the pipeline's classes: their count,
 * the first such label in bad, and the other rows' indices in *keep
 * (malloc'd; NULL when out of memory). */
size_t cli_ml_unknown_labels(const dlp_frame *f, const char *label_col,
                             const char *const *labels, size_t n, char *bad,
                             size_t bad_size, size_t **keep, size_t *nkeep);
/* Reads an IN of transform/evaluate: a table file, or a folder (labels from
 * sub-folders when labels is 1). */
int cli_ml_read_input(const cli_args *a, dlp_ctx *ctx, const char *in,
                      int labels, dlp_frame **out);
/* Featurizes d->all once (unless it came with features) so that fitting,
 * scoring train and test and tuning reuse one feature column. */
int cli_ml_featurize(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d);
/* Parses --split into w[0..*k) (k = 1: no test part), or a usage error. */
int cli_ml_parse_split(const cli_args *a, double *w, int *k);
/* Splits by --split and --seed; *test is NULL when there is no test part. */
int cli_ml_split(const cli_args *a, dlp_ctx *ctx, const dlp_frame *all,
                 dlp_frame **train, dlp_frame **test);
/* Writes the HTML report of a transformed frame. */
int cli_ml_write_report(const cli_args *a, dlp_ctx *ctx,
                        const dlp_pipeline_model *pm, const dlp_frame *pred,
                        const char *path, const char *title);

/* cmd_fit.c: the steps fit and tune share. */
int cli_ml_check_out(const cli_args *a);
/* --out, --split, the input and the pipeline from the options: every usage
 * error before any work. */
int cli_ml_prepare(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d,
                   dlp_pipeline **p);
void cli_ml_note_random(const cli_args *a);
void cli_ml_print_data(const cli_args *a, const cli_ml_data *d,
                       const dlp_frame *train, const dlp_frame *test);
/* Featurizes once, splits by --split and prints where the rows went. */
int cli_ml_train_test(const cli_args *a, dlp_ctx *ctx, cli_ml_data *d,
                      dlp_frame **train, dlp_frame **test);
/* Prints classes, the LR summary, train and test metrics (either may be
 * NULL), saves to --out, then writes --report (when given). */
int cli_ml_finish(const cli_args *a, dlp_ctx *ctx, const cli_ml_data *d,
                  const dlp_pipeline_model *pm, const dlp_frame *train,
                  const dlp_frame *test);

/* cmd_transform.c: loads --pipeline (and applies --batch-size to its
 * featurizer). */
int cli_ml_load(const cli_args *a, dlp_ctx *ctx, dlp_pipeline_model **pm);
int cli_ml_set_batch(const cli_args *a, dlp_ctx *ctx, dlp_pipeline_model *pm);

/* show_counts.c: 'dlp show --counts COLUMN' (rows per value). */
int cli_show_counts(const cli_args *a, const dlp_frame *f, size_t limit);

#endif /* DLP_CLI_H */
