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

#define CLI_MAX_OPTS 24
#define CLI_MAX_POS 4

typedef struct cli_val {
  int given; /* on the command line (not just the default) */
  int has;   /* a value: given or defaulted */
  const char *s;
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

/* A new context with the --threads value applied when the command has one;
 * prints the error and returns NULL on failure. */
dlp_ctx *cli_ctx_new(const cli_args *a);

/* --- progress.c -------------------------------------------------------- */

typedef struct cli_progress {
  const char *label; /* "reading images" */
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

/* cmd_featurize.c: the steps featurize, predict and apply share (model
 * options, input table or folder, transform, output, summary). */
typedef enum cli_model_mode {
  CLI_FEATURIZE = 0,
  CLI_PREDICT = 1,
  CLI_APPLY = 2
} cli_model_mode;
int cli_model_command(const cli_args *a, cli_model_mode mode);

/* show_counts.c: 'dlp show --counts COLUMN' (rows per value). */
int cli_show_counts(const cli_args *a, const dlp_frame *f, size_t limit);

#endif /* DLP_CLI_H */
