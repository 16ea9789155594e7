/* args.c - the sub-command and option tables, the table-driven option
 * parser, and the --help text generated from the same tables.
 *
 * Written by hand rather than with getopt_long: the tables carry defaults,
 * ranges and help lines too, so one description drives parsing, validation
 * and help (STYLE.md, "parameters as data"), and errors name the command.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Options several commands share. */
#define OPT_OVERWRITE                                                          \
  {                                                                            \
    .name = "overwrite", .short_name = 'f', .kind = CLI_FLAG,                  \
    .help = "replace an existing output file (or SQLite table)"                \
  }
#define OPT_QUIET                                                              \
  {                                                                            \
    .name = "quiet", .short_name = 'q', .kind = CLI_FLAG,                      \
    .help = "no summary on stderr"                                             \
  }
#define OPT_TABLE(text)                                                        \
  { .name = "table", .kind = CLI_STR, .metavar = "NAME", .help = text }

static const cli_opt read_images_opts[] = {
    {.name = "out",
     .short_name = 'o',
     .kind = CLI_STR,
     .metavar = "FILE",
     .required = 1,
     .help = "output table: .db/.sqlite (SQLite), .jsonl (JSON Lines) or .csv"},
    {.name = "recursive",
     .short_name = 'r',
     .kind = CLI_FLAG,
     .help = "descend into sub-folders"},
    {.name = "labels-from-dirs",
     .kind = CLI_FLAG,
     .help = "label each image with its first sub-folder under DIR (implies "
             "--recursive)"},
    {.name = "label",
     .kind = CLI_STR,
     .metavar = "VALUE",
     .help =
         "the same label on every row (an integer column when VALUE is one)"},
    {.name = "extensions",
     .kind = CLI_STR,
     .metavar = "LIST",
     .def = "jpg,jpeg,png,gif,bmp,webp",
     .help = "file extensions to take, comma-separated; '*' takes every file"},
    {.name = "sample-ratio",
     .kind = CLI_REAL,
     .metavar = "R",
     .def = "1",
     .min = 0,
     .max = 1,
     .help = "keep each file with probability R (0..1), fixed by --seed"},
    {.name = "seed",
     .kind = CLI_U64,
     .metavar = "S",
     .def = "0",
     .help = "seed of --sample-ratio"},
    {.name = "drop-invalid",
     .kind = CLI_FLAG,
     .help =
         "leave unreadable images out of the table (default: keep error rows)"},
    {.name = "fail-on-error",
     .kind = CLI_FLAG,
     .help = "exit 3 when any image is invalid (the table is still written)"},
    {.name = "no-verify",
     .kind = CLI_FLAG,
     .help = "read headers only: faster, but truncated data goes unnoticed"},
    {.name = "embed",
     .kind = CLI_FLAG,
     .help = "store each file's bytes in the table (not in .csv)"},
    {.name = "threads",
     .short_name = 'j',
     .kind = CLI_INT,
     .metavar = "N",
     .min = 1,
     .max = 4096,
     .help = "worker threads [default: one per CPU]"},
    {.name = "max-pixels",
     .kind = CLI_U64,
     .metavar = "N",
     .help = "refuse images with more pixels [default: 178956970, as PIL]"},
    OPT_TABLE("SQLite table to write [default: frame]"),
    OPT_OVERWRITE,
    OPT_QUIET,
    {NULL}};

static const cli_opt show_opts[] = {
    {.name = "rows",
     .short_name = 'n',
     .kind = CLI_INT,
     .metavar = "N",
     .def = "20",
     .min = 0,
     .max = 1e15,
     .help = "rows to show"},
    {.name = "all",
     .short_name = 'a',
     .kind = CLI_FLAG,
     .help = "show every row"},
    {.name = "errors",
     .short_name = 'e',
     .kind = CLI_FLAG,
     .help = "only rows whose image has an error, with the full reason (all of "
             "them unless -n is given)"},
    {.name = "schema",
     .short_name = 's',
     .kind = CLI_FLAG,
     .help = "print column names, types and sizes, and the row count"},
    {.name = "counts",
     .short_name = 'c',
     .kind = CLI_STR,
     .metavar = "COLUMN",
     .help = "count the rows of each value of COLUMN (most frequent first; "
             "-n N: the first N)"},
    {.name = "truncate",
     .short_name = 'w',
     .kind = CLI_INT,
     .metavar = "W",
     .def = "40",
     .min = 4,
     .max = 100000,
     .help = "cut cells wider than W characters"},
    {.name = "no-truncate", .kind = CLI_FLAG, .help = "never cut cells"},
    OPT_TABLE("SQLite table to read [default: the table dlp wrote]"),
    {NULL}};

static const cli_opt convert_opts[] = {
    OPT_TABLE("SQLite table to read and to write [default: frame]"),
    {.name = "column",
     .kind = CLI_STR,
     .metavar = "C",
     .help =
         ".npy: the column to write [default: the only vector column], or the "
         "name of the array read [default: features]"},
    OPT_OVERWRITE,
    OPT_QUIET,
    {NULL}};

static const cli_opt split_opts[] = {
    {.name = "weights",
     .kind = CLI_STR,
     .metavar = "W1,W2,...",
     .required = 1,
     .help = "relative part sizes, e.g. 0.8,0.2 (need not sum to 1)"},
    {.name = "out",
     .short_name = 'o',
     .kind = CLI_STR,
     .metavar = "F1,F2,...",
     .required = 1,
     .help = "one output file per weight"},
    {.name = "seed",
     .kind = CLI_U64,
     .metavar = "S",
     .def = "0",
     .help = "seed of the shuffle; the same seed gives the same parts"},
    OPT_TABLE("SQLite table to read and to write [default: frame]"),
    OPT_OVERWRITE,
    OPT_QUIET,
    {NULL}};

/* Options of the model commands (featurize, predict, apply). */
#define OPT_MODEL_COMMON                                                       \
  {.name = "out",                                                              \
   .short_name = 'o',                                                          \
   .kind = CLI_STR,                                                            \
   .metavar = "FILE",                                                          \
   .required = 1,                                                              \
   .help = "output table: .db/.sqlite, .jsonl, .csv (or .npy: the output "     \
           "column only)"},                                                    \
      {.name = "input-col",                                                    \
       .kind = CLI_STR,                                                        \
       .metavar = "C",                                                         \
       .def = "image",                                                         \
       .help = "the image column of IN (apply: or a vector column)"},          \
      {.name = "output-col",                                                   \
       .kind = CLI_STR,                                                        \
       .metavar = "C",                                                         \
       .help = "name of the new column [default: features / predictions / "    \
               "output]"},                                                     \
      {.name = "batch-size",                                                   \
       .short_name = 'b',                                                      \
       .kind = CLI_INT,                                                        \
       .metavar = "N",                                                         \
       .def = "16",                                                            \
       .min = 1,                                                               \
       .max = 4096,                                                            \
       .help = "images per batch"},                                            \
      {.name = "threads",                                                      \
       .short_name = 'j',                                                      \
       .kind = CLI_INT,                                                        \
       .metavar = "N",                                                         \
       .min = 1,                                                               \
       .max = 4096,                                                            \
       .help = "worker threads [default: one per CPU]"},                       \
      {.name = "precision",                                                    \
       .kind = CLI_STR,                                                        \
       .metavar = "P",                                                         \
       .def = "fp32",                                                          \
       .help = "fp32 (exact) or bf16 (faster matrix math where the CPU has "   \
               "it)"},                                                         \
      {.name = "reference",                                                    \
       .kind = CLI_FLAG,                                                       \
       .help = "run on the plain C reference backend (slow; for checking)"},   \
      {.name = "drop-invalid",                                                 \
       .kind = CLI_FLAG,                                                       \
       .help =                                                                 \
           "leave rows with unreadable images out (default: null output)"},    \
      {.name = "model-dir",                                                    \
       .kind = CLI_STR,                                                        \
       .metavar = "DIR",                                                       \
       .help = "model cache [default: $DLP_MODEL_DIR or "                      \
               "~/.cache/dlp/models]"},                                        \
      OPT_TABLE("SQLite table to read and to write [default: frame]"),         \
      OPT_OVERWRITE, OPT_QUIET

#define OPT_ZOO_MODEL                                                          \
  {.name = "model",                                                            \
   .short_name = 'm',                                                          \
   .kind = CLI_STR,                                                            \
   .metavar = "NAME",                                                          \
   .help = "zoo or imported model (see 'dlp models list')"},                   \
      {.name = "model-file",                                                   \
       .kind = CLI_STR,                                                        \
       .metavar = "FILE",                                                      \
       .help = "a Keras .h5 or .onnx model file instead of --model"},          \
      {.name = "random-weights",                                               \
       .kind = CLI_FLAG,                                                       \
       .help = "the zoo architecture with seeded random weights (outputs "     \
               "mean nothing: for tests and benchmarks)"},                     \
  {                                                                            \
    .name = "seed", .kind = CLI_U64, .metavar = "S", .def = "0",               \
    .help = "seed of --random-weights"                                         \
  }

#define OPT_IMAGE_INPUT                                                        \
  {.name = "input-size",                                                       \
   .kind = CLI_STR,                                                            \
   .metavar = "HxW",                                                           \
   .help = "network input size [default: the model's]"},                       \
      {.name = "preprocess",                                                   \
       .kind = CLI_STR,                                                        \
       .metavar = "P",                                                         \
       .help = "tf (x/127.5-1, RGB), caffe (BGR minus ImageNet mean), torch "  \
               "(ImageNet mean/std) or none (0..255) [default: the model's, "  \
               "else none]"},                                                  \
      {.name = "mean",                                                         \
       .kind = CLI_STR,                                                        \
       .metavar = "A,B,C",                                                     \
       .help = "per-channel mean in 0..255 units, instead of --preprocess"},   \
      {.name = "std",                                                          \
       .kind = CLI_STR,                                                        \
       .metavar = "A,B,C",                                                     \
       .help = "per-channel std in 0..255 units, with --mean [default: "       \
               "1,1,1]"},                                                      \
  {                                                                            \
    .name = "channel-order", .kind = CLI_STR, .metavar = "O",                  \
    .help = "RGB or BGR, for --preprocess none or --mean [default: RGB]"       \
  }

static const cli_opt featurize_opts[] = {
    OPT_ZOO_MODEL,
    {.name = "layer",
     .kind = CLI_STR,
     .metavar = "L",
     .help = "the layer whose output to return [default: the pooled "
             "penultimate layer]"},
    OPT_IMAGE_INPUT,
    OPT_MODEL_COMMON,
    {NULL}};

static const cli_opt predict_opts[] = {
    OPT_ZOO_MODEL,
    {.name = "top-k",
     .short_name = 'k',
     .kind = CLI_INT,
     .metavar = "K",
     .def = "5",
     .min = 1,
     .max = 100000,
     .help = "classes per image"},
    {.name = "show",
     .kind = CLI_FLAG,
     .help = "also print a table: path, top class, probability"},
    OPT_IMAGE_INPUT,
    OPT_MODEL_COMMON,
    {NULL}};

static const cli_opt apply_opts[] = {
    {.name = "model-file",
     .kind = CLI_STR,
     .metavar = "FILE",
     .required = 1,
     .help = "a Keras .h5 (full model) or .onnx file"},
    OPT_IMAGE_INPUT,
    {.name = "output",
     .kind = CLI_STR,
     .metavar = "KIND",
     .def = "vector",
     .help = "vector (the only kind so far)"},
    OPT_MODEL_COMMON,
    {NULL}};

static const cli_opt models_opts[] = {
    {.name = "as",
     .kind = CLI_STR,
     .metavar = "NAME",
     .help = "import: register the file under this name"},
    {.name = "url",
     .kind = CLI_STR,
     .metavar = "URL",
     .help = "fetch: download from URL instead of the canonical address"},
    {.name = "model-dir",
     .kind = CLI_STR,
     .metavar = "DIR",
     .help = "model cache [default: $DLP_MODEL_DIR or ~/.cache/dlp/models]"},
    OPT_QUIET,
    {NULL}};

static const cli_opt sql_opts[] = {
    {.name = "csv",
     .short_name = 'c',
     .kind = CLI_FLAG,
     .help = "print rows as CSV with a header (blobs as hex)"},
    {.name = "json",
     .kind = CLI_FLAG,
     .help = "print rows as JSON Lines, one object per row"},
    {.name = "table",
     .kind = CLI_FLAG,
     .help = "print rows as a text table (the default)"},
    {NULL}};

/* --- machine learning: fit, tune, transform, evaluate ------------------- */

/* Where the labelled rows come from (fit, tune, evaluate). */
#define OPT_ML_INPUT                                                           \
  {.name = "images",                                                           \
   .kind = CLI_STR,                                                            \
   .metavar = "DIR",                                                           \
   .help = "a folder of images with one sub-folder per class (labels from "    \
           "the sub-folder names)"},                                           \
      {.name = "labels-from-dirs",                                             \
       .kind = CLI_FLAG,                                                       \
       .help = "label each image with its first sub-folder (always on for a "  \
               "folder: --images DIR or a folder IN)"},                        \
      OPT_TABLE("SQLite table to read [default: the table dlp wrote]"),        \
      {.name = "image-col",                                                    \
       .kind = CLI_STR,                                                        \
       .metavar = "C",                                                         \
       .def = "image",                                                         \
       .help = "the image column of a table"},                                 \
      {.name = "label-col",                                                    \
       .kind = CLI_STR,                                                        \
       .metavar = "C",                                                         \
       .def = "label",                                                         \
       .help = "the label column (text or integers)"},                         \
  {                                                                            \
    .name = "fail-on-error", .kind = CLI_FLAG,                                 \
    .help = "exit 3 when any image is invalid (default: such images are "      \
            "left out with a warning)"                                         \
  }

/* The featurizer of fit and tune. */
#define OPT_ML_MODEL                                                           \
  {.name = "features-from",                                                    \
   .kind = CLI_STR,                                                            \
   .metavar = "FILE",                                                          \
   .help = "a table that already has a feature vector column (from 'dlp "      \
           "featurize') and labels: nothing is featurized"},                   \
      {.name = "features-col",                                                 \
       .kind = CLI_STR,                                                        \
       .metavar = "C",                                                         \
       .def = "features",                                                      \
       .help = "the feature vector column"},                                   \
      {.name = "model",                                                        \
       .short_name = 'm',                                                      \
       .kind = CLI_STR,                                                        \
       .metavar = "NAME",                                                      \
       .help = "the CNN that featurizes (see 'dlp models list') [default: "    \
               "InceptionV3; with --features-from: none, unless given, then "  \
               "the saved pipeline also works on images]"},                    \
      {.name = "model-file",                                                   \
       .kind = CLI_STR,                                                        \
       .metavar = "FILE",                                                      \
       .help = "a Keras .h5 or .onnx model file instead of --model"},          \
      {.name = "layer",                                                        \
       .kind = CLI_STR,                                                        \
       .metavar = "L",                                                         \
       .help = "the layer whose output is the feature vector [default: a "     \
               "zoo model's pooled layer; a file's output]"},                  \
      {.name = "random-weights",                                               \
       .kind = CLI_FLAG,                                                       \
       .help = "the zoo architecture with seeded random weights (for tests "   \
               "and demos without pretrained weights)"},                       \
      {.name = "weights-seed",                                                 \
       .kind = CLI_U64,                                                        \
       .metavar = "S",                                                         \
       .def = "0",                                                             \
       .help = "seed of --random-weights (as 'dlp featurize --seed')"},        \
      {.name = "batch-size",                                                   \
       .short_name = 'b',                                                      \
       .kind = CLI_INT,                                                        \
       .metavar = "N",                                                         \
       .def = "16",                                                            \
       .min = 1,                                                               \
       .max = 4096,                                                            \
       .help = "images per forward pass"},                                     \
  {                                                                            \
    .name = "precision", .kind = CLI_STR, .metavar = "P", .def = "fp32",       \
    .help = "fp32 (exact) or bf16 (faster where the CPU has it)"               \
  }

#define OPT_ML_THREADS                                                         \
  {                                                                            \
    .name = "threads", .short_name = 'j', .kind = CLI_INT, .metavar = "N",     \
    .min = 1, .max = 4096, .help = "worker threads [default: one per CPU]"     \
  }

/* After the LogisticRegression parameters: split, output, report. */
#define OPT_ML_OUTPUT(split_def, split_help, out_required, out_help)           \
  {.name = "split",                                                            \
   .kind = CLI_STR,                                                            \
   .metavar = "TRAIN,TEST",                                                    \
   .def = split_def,                                                           \
   .help = split_help},                                                        \
      {.name = "seed",                                                         \
       .kind = CLI_U64,                                                        \
       .metavar = "S",                                                         \
       .def = "42",                                                            \
       .help = "seed of --split (tune: and of the folds)"},                    \
      {.name = "out",                                                          \
       .short_name = 'o',                                                      \
       .kind = CLI_STR,                                                        \
       .metavar = "DIR",                                                       \
       .required = out_required,                                               \
       .help = out_help},                                                      \
      {.name = "overwrite",                                                    \
       .short_name = 'f',                                                      \
       .kind = CLI_FLAG,                                                       \
       .help = "replace an existing pipeline folder"},                         \
      {.name = "report",                                                       \
       .kind = CLI_STR,                                                        \
       .metavar = "FILE",                                                      \
       .help = "also write the HTML evaluation report of the test part"},      \
      OPT_ML_THREADS, OPT_QUIET

static const cli_opt fit_head[] = {OPT_ML_INPUT, OPT_ML_MODEL, {NULL}};
static const cli_opt fit_tail[] = {
    OPT_ML_OUTPUT("0.8,0.2",
                  "train and test fractions; 1 trains on every row (no test "
                  "metrics)",
                  1, "the folder to save the fitted pipeline to"),
    {NULL}};
static const cli_opt tune_tail[] = {
    {.name = "grid",
     .short_name = 'g',
     .kind = CLI_STR,
     .metavar = "SPEC",
     .required = 1,
     .help = "the values to try: 'reg=0.01,0.1;elastic-net=0,0.5' (the "
             "LogisticRegression options above, by name)"},
    {.name = "folds",
     .short_name = 'k',
     .kind = CLI_INT,
     .metavar = "K",
     .def = "3",
     .min = 0,
     .max = 1000,
     .help = "cross-validation folds (>= 2); 0: one train/validation split "
             "(--train-ratio)"},
    {.name = "train-ratio",
     .kind = CLI_REAL,
     .metavar = "R",
     .def = "0.75",
     .min = 0,
     .max = 1,
     .help = "with --folds 0: the fraction that trains, the rest validates"},
    {.name = "parallelism",
     .short_name = 'p',
     .kind = CLI_INT,
     .metavar = "N",
     .def = "1",
     .min = 1,
     .max = 1024,
     .help = "models fitted at the same time"},
    {.name = "metric",
     .kind = CLI_STR,
     .metavar = "NAME",
     .def = "accuracy",
     .help = "what picks the best: accuracy, f1, weightedPrecision, "
             "weightedRecall, logLoss, hammingLoss, areaUnderROC, areaUnderPR"},
    OPT_ML_OUTPUT("1",
                  "hold out a test part first (e.g. 0.8,0.2): the best "
                  "pipeline is scored on it; 1: tune on every row",
                  0, "save the best pipeline, refitted on the tuning rows"),
    {NULL}};

/* Built by cli_ml_opts_init: head, LogisticRegression parameters, tail. */
static cli_opt fit_opts[CLI_MAX_OPTS + 1];
static cli_opt tune_opts[CLI_MAX_OPTS + 1];

static const cli_opt transform_opts[] = {
    {.name = "pipeline",
     .short_name = 'p',
     .kind = CLI_STR,
     .metavar = "DIR",
     .required = 1,
     .help = "a pipeline saved by 'dlp fit' or 'dlp tune'"},
    {.name = "out",
     .short_name = 'o',
     .kind = CLI_STR,
     .metavar = "FILE",
     .required = 1,
     .help = "output table: .db/.sqlite, .jsonl, .csv (or .npy: one column)"},
    {.name = "labels-from-dirs",
     .kind = CLI_FLAG,
     .help = "a folder IN: label rows with their first sub-folder (then "
             "indexedLabel is added too)"},
    {.name = "show",
     .kind = CLI_FLAG,
     .help = "also print a table: path, predicted label, its probability"},
    {.name = "column",
     .kind = CLI_STR,
     .metavar = "C",
     .def = "probability",
     .help = ".npy output: the column to write"},
    {.name = "batch-size",
     .short_name = 'b',
     .kind = CLI_INT,
     .metavar = "N",
     .min = 1,
     .max = 4096,
     .help = "images per forward pass [default: the saved pipeline's]"},
    OPT_TABLE("SQLite table to read and to write [default: frame]"),
    OPT_ML_THREADS,
    OPT_OVERWRITE,
    OPT_QUIET,
    {NULL}};

static const cli_opt evaluate_opts[] = {
    {.name = "pipeline",
     .short_name = 'p',
     .kind = CLI_STR,
     .metavar = "DIR",
     .required = 1,
     .help = "a pipeline saved by 'dlp fit' or 'dlp tune'"},
    OPT_ML_INPUT,
    {.name = "metric",
     .kind = CLI_STR,
     .metavar = "LIST",
     .help = "comma-separated metrics: accuracy, f1, weightedPrecision, "
             "weightedRecall, weightedFMeasure, logLoss, hammingLoss, and "
             "areaUnderROC, areaUnderPR for two classes [default: accuracy, "
             "f1, weightedPrecision, weightedRecall, logLoss, hammingLoss]"},
    {.name = "json",
     .kind = CLI_FLAG,
     .help = "print one JSON object (metrics, labels, confusion matrix) for "
             "scripts"},
    {.name = "report",
     .kind = CLI_STR,
     .metavar = "FILE",
     .help = "also write a self-contained HTML report (metrics, confusion "
             "matrix, misclassified images)"},
    {.name = "batch-size",
     .short_name = 'b',
     .kind = CLI_INT,
     .metavar = "N",
     .min = 1,
     .max = 4096,
     .help = "images per forward pass [default: the saved pipeline's]"},
    OPT_ML_THREADS,
    OPT_QUIET,
    {NULL}};

/* LogisticRegression parameters the pipeline sets itself (columns). */
static int lr_param_is_internal(const dlp_param_desc *d) {
  size_t n = strlen(d->name);
  return !d->cli_name || (n > 3 && strcmp(d->name + n - 3, "Col") == 0 &&
                          strcmp(d->name, "weightCol") != 0);
}

static const char *param_metavar(const dlp_param_desc *d) {
  switch (d->type) {
  case DLP_PARAM_INT:
    return "N";
  case DLP_PARAM_DOUBLE:
    return "X";
  case DLP_PARAM_BOOL:
    return "B";
  case DLP_PARAM_ENUM:
    return "NAME";
  default:
    return "C";
  }
}

/* Help lines with the choices added, one per parameter (static: the
 * option tables point into them). */
static char param_help[32][256];

/* One cli_opt from parameter i; range-checked numbers. */
static cli_opt opt_from_param(const dlp_param_desc *d, size_t i) {
  cli_opt o = {.name = d->cli_name,
               .metavar = param_metavar(d),
               .def = d->def && *d->def ? d->def : NULL,
               .help = d->doc};
  if (i < sizeof param_help / sizeof param_help[0] &&
      (d->type == DLP_PARAM_BOOL || d->type == DLP_PARAM_ENUM)) {
    snprintf(param_help[i], sizeof param_help[i], "%s (%s)", d->doc,
             d->type == DLP_PARAM_BOOL ? "true or false" : d->choices);
    o.help = param_help[i];
  }
  o.kind = d->type == DLP_PARAM_INT      ? CLI_INT
           : d->type == DLP_PARAM_DOUBLE ? CLI_REAL
                                         : CLI_STR;
  if (o.kind != CLI_STR) {
    o.min = d->min;
    o.max = d->max;
  }
  return o;
}

static int opt_listed(const cli_opt *opts, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(opts[i].name, name) == 0) return 1;
  return 0;
}

static int build_ml_opts(cli_opt *out, const cli_opt *tail) {
  size_t n = 0, np = 0;
  for (const cli_opt *o = fit_head; o->name; o++)
    out[n++] = *o;
  const dlp_param_desc *d = dlp_stage_class_params("LogisticRegression", &np);
  for (size_t i = 0; i < np; i++) {
    if (lr_param_is_internal(&d[i]) || opt_listed(out, n, d[i].cli_name))
      continue;
    if (n >= CLI_MAX_OPTS) return -1;
    out[n++] = opt_from_param(&d[i], i);
  }
  for (const cli_opt *o = tail; o->name; o++) {
    if (n >= CLI_MAX_OPTS) return -1;
    out[n++] = *o;
  }
  out[n] = (cli_opt){0};
  return 0;
}

int cli_ml_opts_init(void) {
  static int done, rc;
  if (!done) {
    done = 1;
    rc = build_ml_opts(fit_opts, fit_tail)
             ? -1
             : build_ml_opts(tune_opts, tune_tail);
  }
  return rc;
}

int cli_ml_opt_param(const cli_opt *o, const char **param) {
  size_t np = 0;
  const dlp_param_desc *d = dlp_stage_class_params("LogisticRegression", &np);
  for (size_t i = 0; i < np; i++)
    if (d[i].cli_name && !lr_param_is_internal(&d[i]) &&
        strcmp(d[i].cli_name, o->name) == 0) {
      *param = d[i].name;
      return 1;
    }
  return 0;
}

/* --- fine-tuning ----------------------------------------------------- */

static const cli_opt dedup_opts[] = {
    {.name = "against",
     .kind = CLI_STR,
     .metavar = "DIR|TABLE",
     .help = "list the files of IN that nearly match a file of this set "
             "(to remove them from IN) instead of grouping IN"},
    {.name = "threshold",
     .short_name = 't',
     .kind = CLI_INT,
     .metavar = "N",
     .def = "8",
     .min = 0,
     .max = 64,
     .help = "the largest Hamming distance (bits of 64) that counts as the "
             "same picture"},
    {.name = "hash",
     .kind = CLI_STR,
     .metavar = "H",
     .def = "phash",
     .help = "phash (DCT, as imagehash) or dhash (gradient)"},
    {.name = "variants",
     .kind = CLI_STR,
     .metavar = "LIST",
     .def = "none",
     .help = "pHash also compared with the left-right mirror (mirror) and "
             "between the drawings' bounding boxes, white margins cut "
             "(trim): mirror, trim, mirror,trim or none"},
    {.name = "recursive",
     .short_name = 'r',
     .kind = CLI_FLAG,
     .help = "descend into sub-folders"},
    {.name = "extensions",
     .kind = CLI_STR,
     .metavar = "LIST",
     .def = "jpg,jpeg,png,gif,bmp,webp",
     .help = "file extensions to take from folders, comma-separated"},
    {.name = "follow-links",
     .kind = CLI_FLAG,
     .help = "take symbolic links to files too (default: skipped, as fdupes "
             "does, so a file linked twice counts once)"},
    {.name = "input-col",
     .kind = CLI_STR,
     .metavar = "COL",
     .def = "image",
     .help = "a table's image column, or a column of file paths"},
    {.name = "keep",
     .kind = CLI_STR,
     .metavar = "RULE",
     .def = "first",
     .help = "which file of a group to keep: first (in path or row order) or "
             "largest (most pixels; the first on ties)"},
    {.name = "remove-blank",
     .kind = CLI_FLAG,
     .help = "also remove uniform images (one colour: their hashes say "
             "nothing, so they otherwise match only identical files)"},
    {.name = "out",
     .short_name = 'o',
     .kind = CLI_STR,
     .metavar = "FILE",
     .help = "the table of duplicates: .csv, .jsonl or .db/.sqlite (path, "
             "match_path, distance, how, group, keep)"},
    {.name = "list-remove",
     .kind = CLI_STR,
     .metavar = "FILE",
     .help = "write the paths to remove, one a line ('-': standard output)"},
    {.name = "list-keep",
     .kind = CLI_STR,
     .metavar = "FILE",
     .help = "write the readable files of IN that are kept, one a line "
             "('-': standard output)"},
    {.name = "json",
     .kind = CLI_FLAG,
     .help = "print the summary as one JSON object on standard output"},
    {.name = "table",
     .kind = CLI_STR,
     .metavar = "NAME",
     .help = "SQLite table of --out [default: frame]"},
    {.name = "overwrite",
     .short_name = 'f',
     .kind = CLI_FLAG,
     .help = "replace existing output files"},
    {.name = "threads",
     .short_name = 'j',
     .kind = CLI_INT,
     .metavar = "N",
     .min = 1,
     .max = 4096,
     .help = "worker threads [default: one per CPU]"},
    {.name = "max-pixels",
     .kind = CLI_U64,
     .metavar = "N",
     .help = "skip larger images as unreadable [default: 178956970, as PIL]"},
    {.name = "quiet",
     .short_name = 'q',
     .kind = CLI_FLAG,
     .help = "no summary or progress on stderr (warnings still)"},
    {NULL}};

static const cli_opt finetune_opts[] = {
    OPT_ML_INPUT,
    {.name = "model",
     .short_name = 'm',
     .kind = CLI_STR,
     .metavar = "NAME",
     .help = "the base model: a zoo or imported model (see 'dlp models "
             "list')"},
    {.name = "model-file",
     .kind = CLI_STR,
     .metavar = "FILE",
     .help = "a Keras .h5 or .onnx model file instead of --model"},
    {.name = "model-dir",
     .kind = CLI_STR,
     .metavar = "DIR",
     .help = "the model cache [default: $DLP_MODEL_DIR or "
             "~/.cache/dlp/models]"},
    {.name = "random-weights",
     .kind = CLI_FLAG,
     .help = "the zoo architecture with seeded random weights (for tests)"},
    {.name = "weights-seed",
     .kind = CLI_U64,
     .metavar = "S",
     .def = "0",
     .help = "seed of --random-weights"},
    {.name = "input-size",
     .kind = CLI_STR,
     .metavar = "HxW",
     .help = "network input size [default: the model's]"},
    {.name = "preprocess",
     .kind = CLI_STR,
     .metavar = "P",
     .help = "tf, caffe, torch or none [default: the model's, else none]"},
    {.name = "feature-layer",
     .kind = CLI_STR,
     .metavar = "L",
     .help = "where the base is cut [default: the zoo's feature layer, or "
             "the input of a file's last dense layer]"},
    {.name = "head",
     .kind = CLI_STR,
     .metavar = "SPEC",
     .def = "",
     .help = "layers before the final dense: dense:N, dense:N:linear, "
             "dropout:R, comma-separated [default: none]"},
    {.name = "freeze-until",
     .kind = CLI_STR,
     .metavar = "L",
     .help = "keep the weights of every layer up to L; '' trains all "
             "[default: the feature layer: the head only]"},
    {.name = "epochs",
     .short_name = 'e',
     .kind = CLI_INT,
     .metavar = "N",
     .def = "5",
     .min = 1,
     .max = 100000,
     .help = "passes over the training images"},
    {.name = "batch-size",
     .short_name = 'b',
     .kind = CLI_INT,
     .metavar = "N",
     .def = "16",
     .min = 1,
     .max = 4096,
     .help = "images per optimizer step"},
    {.name = "lr",
     .kind = CLI_REAL,
     .metavar = "X",
     .def = "0.001",
     .min = 1e-12,
     .max = 100,
     .help = "learning rate"},
    {.name = "optimizer",
     .kind = CLI_STR,
     .metavar = "O",
     .def = "adam",
     .help = "adam, adamw or sgd (momentum 0.9)"},
    {.name = "weight-decay",
     .kind = CLI_REAL,
     .metavar = "X",
     .def = "0",
     .min = 0,
     .max = 10,
     .help = "L2 weight decay (decoupled for adamw)"},
    {.name = "schedule",
     .kind = CLI_STR,
     .metavar = "S",
     .def = "cosine",
     .help = "learning-rate schedule: cosine, constant or step (x0.1 each "
             "epoch)"},
    {.name = "val-split",
     .kind = CLI_REAL,
     .metavar = "F",
     .def = "0.2",
     .min = 0,
     .max = 0.95,
     .help = "fraction of the images held out for validation"},
    {.name = "seed",
     .kind = CLI_U64,
     .metavar = "S",
     .def = "42",
     .help = "seed of the split, head, shuffles, augmentation and dropout"},
    {.name = "no-augment",
     .kind = CLI_FLAG,
     .help = "train on whole resized images (default: random resized crop, "
             "flip, colour jitter)"},
    {.name = "crop-scale",
     .kind = CLI_STR,
     .metavar = "MIN,MAX",
     .def = "0.08,1",
     .help = "the random crop's area as a fraction of the image's "
             "(torchvision's RandomResizedCrop scale; 0 < MIN <= MAX <= 1)"},
    {.name = "patience",
     .kind = CLI_INT,
     .metavar = "N",
     .def = "0",
     .min = 0,
     .max = 100000,
     .help = "stop after N epochs without a lower val loss (0: never)"},
    {.name = "no-restore-best",
     .kind = CLI_FLAG,
     .help = "save the last epoch's weights (default: the epoch with the "
             "lowest val loss)"},
    {.name = "checkpoint-dir",
     .kind = CLI_STR,
     .metavar = "DIR",
     .help = "save a checkpoint there after every epoch"},
    {.name = "resume",
     .kind = CLI_FLAG,
     .help = "continue from the checkpoint in --checkpoint-dir"},
    {.name = "out",
     .short_name = 'o',
     .kind = CLI_STR,
     .metavar = "FILE",
     .required = 1,
     .help = "the Keras .h5 model to write (class names go to "
             "FILE.labels.json)"},
    {.name = "overwrite",
     .short_name = 'f',
     .kind = CLI_FLAG,
     .help = "replace existing output files"},
    {.name = "val-predictions",
     .kind = CLI_STR,
     .metavar = "FILE",
     .help = "write the validation images' class probabilities (CSV)"},
    {.name = "grid",
     .short_name = 'g',
     .kind = CLI_STR,
     .metavar = "SPEC",
     .help = "train one model per combination: 'lr=1e-3,1e-4;batch=16,32' "
             "(keys: lr, batch, epochs, optimizer, weight-decay, momentum, "
             "head, freeze-until, schedule, patience; ';' separates keys, "
             "'|' the values of head); the best is saved to --out"},
    {.name = "parallelism",
     .short_name = 'p',
     .kind = CLI_INT,
     .metavar = "N",
     .min = 1,
     .max = 1024,
     .help = "with --grid: models trained at once, each on threads/N "
             "threads [default: min(combinations, threads)]"},
    {.name = "metric",
     .kind = CLI_STR,
     .metavar = "M",
     .def = "val_loss",
     .help = "with --grid: what picks the best: val_loss (lowest) or val_acc "
             "(highest), of each model's saved epoch"},
    {.name = "grid-out",
     .kind = CLI_STR,
     .metavar = "DIR",
     .help = "with --grid: also save every model there, named by its "
             "parameters"},
    {.name = "json",
     .kind = CLI_FLAG,
     .help = "with --grid: print the results as JSON on stdout (epoch lines "
             "go to stderr)"},
    OPT_ML_THREADS,
    OPT_QUIET,
    {NULL}};

static const cli_opt no_opts[] = {{NULL}};

const cli_cmd cli_commands[] = {
    {.name = "read-images",
     .summary = "read a folder of images into a table",
     .usage = "DIR --out FILE [options]",
     .description =
         "Scans DIR (a folder, or a single image file) and writes one\n"
         "row per image: its path, size, channels and mode, or why it\n"
         "could not be read. Unreadable images are kept as error rows\n"
         "unless --drop-invalid; a summary goes to stderr.",
     .positional = {"DIR"},
     .npos_min = 1,
     .npos_max = 1,
     .opts = read_images_opts,
     .example = "dlp read-images photos --labels-from-dirs --out photos.db",
     .exit_codes =
         "  3  --fail-on-error was given and some images were invalid\n",
     .run = cli_cmd_read_images},
    {.name = "show",
     .summary = "print a table, its schema, value counts or error rows",
     .usage = "FILE [options]",
     .description =
         "Prints the first rows of a table written by dlp (or any SQLite\n"
         "table, .jsonl, .csv or .npy file) as a text table. Image columns\n"
         "show the path, mode, height, width, nChannels and error of\n"
         "each image.",
     .positional = {"FILE"},
     .npos_min = 1,
     .npos_max = 1,
     .opts = show_opts,
     .example = "dlp show photos.db -n 5\n  dlp show photos.db --errors\n"
                "  dlp show photos.db --counts label",
     .run = cli_cmd_show},
    {.name = "convert",
     .summary = "convert a table between .db, .jsonl, .csv and .npy",
     .usage = "IN OUT [options]",
     .description =
         "Reads IN and writes the same rows to OUT; the formats come from the\n"
         "file extensions (.db/.sqlite/.sqlite3, .jsonl/.ndjson, .csv, .npy).",
     .positional = {"IN", "OUT"},
     .npos_min = 2,
     .npos_max = 2,
     .opts = convert_opts,
     .example = "dlp convert photos.db photos.jsonl",
     .run = cli_cmd_convert},
    {.name = "split",
     .summary = "split a table into random parts (train/test)",
     .usage = "IN --weights W1,W2,... --out F1,F2,... [options]",
     .description =
         "Shuffles the rows of IN with --seed and cuts them into parts of "
         "sizes\n"
         "proportional to the weights (exact sizes: 10 rows at 0.8,0.2 give 8\n"
         "and 2). Each part keeps the original row order.",
     .positional = {"IN"},
     .npos_min = 1,
     .npos_max = 1,
     .opts = split_opts,
     .example = "dlp split photos.db --weights 0.8,0.2 --seed 42 --out "
                "train.db,test.db",
     .run = cli_cmd_split},
    {.name = "featurize",
     .summary = "add a column of CNN features for each image",
     .usage = "IN --model NAME --out FILE [options]",
     .description =
         "Runs a CNN over the images of IN (a table with an image column, or\n"
         "a folder of images) and adds a vector column with the pooled\n"
         "penultimate layer (2048-d for InceptionV3), or --layer's output.\n"
         "Rows whose image cannot be read get a null vector.",
     .positional = {"IN"},
     .npos_min = 1,
     .npos_max = 1,
     .opts = featurize_opts,
     .example = "dlp featurize photos.db --model InceptionV3 --out feat.db",
     .run = cli_cmd_featurize},
    {.name = "predict",
     .summary = "add the top-K ImageNet classes of each image",
     .usage = "IN --model NAME --out FILE [options]",
     .description =
         "Runs a classifier over the images of IN (a table or a folder) and\n"
         "adds a string column with a JSON array of the top K classes:\n"
         "[{\"class\": 281, \"description\": \"tabby\", \"probability\": "
         "0.91}, "
         "...].",
     .positional = {"IN"},
     .npos_min = 1,
     .npos_max = 1,
     .opts = predict_opts,
     .example = "dlp predict photos.db --model ResNet50 --top-k 3 --show "
                "--out pred.db",
     .run = cli_cmd_predict},
    {.name = "apply",
     .summary = "run any Keras/ONNX model file over images or vectors",
     .usage = "IN --model-file FILE --out FILE [options]",
     .description =
         "Runs a model file on each row of IN and adds its output as a\n"
         "vector column. The input column is an image column (resized and\n"
         "normalised as --input-size/--preprocess say) or a vector column\n"
         "whose size matches the model's input.",
     .positional = {"IN"},
     .npos_min = 1,
     .npos_max = 1,
     .opts = apply_opts,
     .example = "dlp apply photos.db --model-file net.onnx --input-size "
                "224x224 --preprocess torch --out out.db",
     .run = cli_cmd_apply},
    {.name = "fit",
     .summary = "train a classifier on labelled images (featurizer + LR)",
     .usage = "(--images DIR | IN | --features-from FILE) --out DIR "
              "[options]",
     .description =
         "Transfer learning, as sparkdl's DeepImageFeaturizer +\n"
         "LogisticRegression pipeline: featurizes the images with a CNN\n"
         "(--model), indexes the labels (StringIndexer), fits a logistic\n"
         "regression (the options below come from its parameters), maps\n"
         "predictions back to labels (IndexToString), prints train and test\n"
         "metrics and saves the fitted pipeline to --out.\n"
         "The input is --images DIR (one sub-folder per class, labels from\n"
         "the sub-folder names: --labels-from-dirs is implied), IN (a table\n"
         "with an image column and a label column, or a folder), or\n"
         "--features-from FILE (features computed once by 'dlp featurize').\n"
         "Invalid images are left out with a warning.",
     .positional = {"IN"},
     .npos_min = 0,
     .npos_max = 1,
     .opts = fit_opts,
     .example = "dlp fit --images flowers --labels-from-dirs --model "
                "InceptionV3 --max-iter 20\n    --reg 0.05 --elastic-net 0.3 "
                "--split 0.8,0.2 --seed 42 --out flowers.dlp",
     .exit_codes =
         "  3  --fail-on-error was given and some images were invalid\n",
     .run = cli_cmd_fit},
    {.name = "transform",
     .summary = "run a saved pipeline: add predictions to images or a table",
     .usage = "--pipeline DIR IN --out FILE [options]",
     .description =
         "Runs a pipeline saved by 'dlp fit' or 'dlp tune' over IN (a folder\n"
         "of images, or a table of images or of features) and writes it with\n"
         "the stages' columns added: features, rawPrediction, probability,\n"
         "prediction and predictedLabel (indexedLabel too when IN has\n"
         "labels). A featurizer is skipped when IN already has its column.",
     .positional = {"IN"},
     .npos_min = 1,
     .npos_max = 1,
     .opts = transform_opts,
     .example = "dlp transform --pipeline flowers.dlp new_photos --show --out "
                "predicted.jsonl",
     .run = cli_cmd_transform},
    {.name = "evaluate",
     .summary = "score a saved pipeline on labelled images (metrics, report)",
     .usage = "--pipeline DIR (--images DIR | IN) [options]",
     .description =
         "Runs a saved pipeline over labelled data (--images DIR with one\n"
         "sub-folder per class, or a table IN with a label column), prints\n"
         "the metrics (MLlib's definitions) and the confusion matrix with\n"
         "the class names, and with --report writes an HTML page. Labels are\n"
         "indexed by the pipeline's own StringIndexerModel; a label the\n"
         "pipeline never saw is an error that names it.",
     .positional = {"IN"},
     .npos_min = 0,
     .npos_max = 1,
     .opts = evaluate_opts,
     .example = "dlp evaluate --pipeline flowers.dlp --images flowers_test "
                "--metric accuracy,f1\n    --report report.html",
     .exit_codes =
         "  3  --fail-on-error was given and some images were invalid\n",
     .run = cli_cmd_evaluate},
    {.name = "tune",
     .summary = "pick LR parameters by cross-validation over a grid",
     .usage = "(--images DIR | IN | --features-from FILE) --grid SPEC "
              "[options]",
     .description =
         "Fits the fit pipeline for every combination of --grid on every\n"
         "fold (CrossValidator; --folds 0: TrainValidationSplit), prints the\n"
         "metric's mean and standard deviation for each and marks the best.\n"
         "The images are featurized once and the features reused by every\n"
         "fold and combination. --out saves the best pipeline refitted on\n"
         "all the tuning rows; --split first holds out a test part to score\n"
         "it on. Input, model and LogisticRegression options as 'dlp fit'.",
     .positional = {"IN"},
     .npos_min = 0,
     .npos_max = 1,
     .opts = tune_opts,
     .example = "dlp tune --images flowers --grid 'reg=0.01,0.05,0.1;"
                "elastic-net=0,0.3'\n    --folds 3 --parallelism 2 --out "
                "best.dlp",
     .exit_codes =
         "  3  --fail-on-error was given and some images were invalid\n",
     .run = cli_cmd_tune},
    {.name = "finetune",
     .summary = "fine-tune a CNN on labelled images: a new head, saved as .h5",
     .usage = "(--images DIR | IN) (--model NAME | --model-file FILE) --out "
              "MODEL.h5 [options]",
     .description =
         "Cuts the model at its feature layer, appends --head and a final\n"
         "dense layer with one output per class, and trains on the images\n"
         "(the layers up to --freeze-until keep their weights: by default\n"
         "only the head trains). --val-split holds images out to validate\n"
         "after each epoch. Prints one line per epoch and saves a Keras\n"
         "model ending in a softmax, which 'dlp predict/apply --model-file'\n"
         "run (with the --preprocess it prints), and the class names in\n"
         "output order to MODEL.labels.json. Invalid images are left out\n"
         "with a warning. --grid trains one model per combination of its\n"
         "values, in parallel, on the same decoded images and split, prints\n"
         "a table of their validation metrics and saves the best.",
     .positional = {"IN"},
     .npos_min = 0,
     .npos_max = 1,
     .opts = finetune_opts,
     .example = "dlp finetune --images flowers --model MobileNetV2 --head "
                "dense:256,dropout:0.5\n    --epochs 5 --lr 0.001 --out "
                "flowers.h5\n  dlp finetune --images flowers --model "
                "MobileNetV2 --grid 'lr=1e-3,1e-4;batch=16,32'\n    "
                "--grid-out runs --out best.h5",
     .exit_codes =
         "  3  --fail-on-error was given and some images were invalid\n",
     .run = cli_cmd_finetune},
    {.name = "models",
     .summary = "list, describe, import or fetch models",
     .usage = "list | info NAME | import FILE [--as NAME] | fetch NAME "
              "[--url URL]",
     .description =
         "Manages the model cache ($DLP_MODEL_DIR, default\n"
         "~/.cache/dlp/models): 'list' shows the zoo and imported models,\n"
         "'info' one model's facts, 'import' copies a local file in (Keras\n"
         "weights for a zoo architecture, or a full .h5/.onnx model under\n"
         "--as NAME), 'fetch' downloads a zoo model's weights.",
     .positional = {"ACTION", "ARG"},
     .npos_min = 1,
     .npos_max = 2,
     .opts = models_opts,
     .example = "dlp models import resnet50_weights_tf_dim_ordering_tf_"
                "kernels.h5\n  dlp models info ResNet50",
     .run = cli_cmd_models},
    {.name = "sql",
     .summary = "run SQL on a SQLite database with the dlp functions",
     .usage = "DB 'QUERY' [--csv | --json | --table]",
     .description =
         "Opens DB (created when missing; ':memory:' for none) with the dlp\n"
         "SQLite extension loaded (dlp_images, dlp_featurize, dlp_predict,\n"
         "dlp_knn, dlp_cosine, ...; see docs/sql.md) and runs the statements\n"
         "of QUERY in order, printing the rows of each.",
     .positional = {"DB", "QUERY"},
     .npos_min = 2,
     .npos_max = 2,
     .opts = sql_opts,
     .example = "dlp sql pics.db \"SELECT path, dlp_predict('MobileNetV2', "
                "path, 1) FROM pics\"",
     .run = cli_cmd_sql},
    {.name = "dedup",
     .summary = "find near-duplicate images (perceptual hash)",
     .usage = "IN [--against DIR|TABLE] [options]",
     .description =
         "Hashes every image of IN (a folder, or a table with an image or\n"
         "path column) and pairs those within --threshold bits. Without\n"
         "--against, pairs are joined into groups (A~B and B~C make one\n"
         "group) and --keep picks the one file of each group to keep. With\n"
         "--against, every file of IN whose nearest image in the second set\n"
         "is within the threshold is to be removed. Byte-identical files\n"
         "always match (distance 0). Unreadable files are skipped with a\n"
         "warning. Without --out, --list-remove, --list-keep or --json the\n"
         "table is printed on standard output.",
     .positional = {"IN"},
     .npos_min = 1,
     .npos_max = 1,
     .opts = dedup_opts,
     .example =
         "dlp dedup photos -r\n"
         "  dlp dedup photos -r --keep largest --out dups.csv "
         "--list-remove rm.txt\n"
         "  dlp dedup clipart -r --against stamps --variants mirror,trim "
         "--list-keep clean.txt",
     .run = cli_cmd_dedup},
    {.name = "version",
     .summary = "print the versions of dlp and of the library",
     .usage = "",
     .description =
         "Prints the version of the dlp command and of the libdlp it runs on.",
     .npos_min = 0,
     .npos_max = 0,
     .opts = no_opts,
     .example = "dlp version",
     .run = cli_cmd_version},
    {.name = "help",
     .summary = "list the commands, or show one command's help",
     .usage = "[COMMAND]",
     .description =
         "Without COMMAND lists the commands; with it, prints its --help.",
     .positional = {"COMMAND"},
     .npos_min = 0,
     .npos_max = 1,
     .opts = no_opts,
     .example = "dlp help read-images",
     .run = cli_cmd_help},
    {NULL}};

const cli_cmd *cli_find_command(const char *name) {
  if (cli_ml_opts_init() != 0) {
    cli_fail("internal error: too many options for fit/tune");
    return NULL;
  }
  for (const cli_cmd *c = cli_commands; c->name; c++)
    if (strcmp(c->name, name) == 0) return c;
  return NULL;
}

int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "dlp %s: ", cmd->name);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see 'dlp %s --help')\n", cmd->name);
  va_end(ap);
  return CLI_EXIT_USAGE;
}

int cli_lib_error(dlp_ctx *ctx) {
  fprintf(stderr, "dlp: %s\n", dlp_errmsg(ctx));
  return CLI_EXIT_FAIL;
}

int cli_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("dlp: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_EXIT_FAIL;
}

/* --- number parsing: the whole text must be a number in range ---------- */

/* strto* skip leading blanks; a value must not start with one. */
static int starts_number(const char *s) {
  return *s == '-' || *s == '+' || *s == '.' || (*s >= '0' && *s <= '9');
}

static int parse_int(const char *s, const cli_opt *o, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (!starts_number(s) || *end != '\0' || errno == ERANGE) return 0;
  if (o->min < o->max && (v < o->min || v > o->max)) return 0;
  *out = v;
  return 1;
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  /* strtoull accepts "-1" (as 2^64-1) and leading spaces; refuse both. */
  if (*s < '0' || *s > '9') return 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end != '\0' || errno == ERANGE) return 0;
  *out = v;
  return 1;
}

static int parse_real(const char *s, const cli_opt *o, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!starts_number(s) || *end != '\0' || errno == ERANGE || !isfinite(v))
    return 0;
  if (o->min < o->max && (v < o->min || v > o->max)) return 0;
  *out = v;
  return 1;
}

/* What a value of o must look like, for error messages. */
static void describe_expected(const cli_opt *o, char *buf, size_t n) {
  if (o->kind == CLI_U64)
    snprintf(buf, n, "a whole number >= 0");
  else if (o->kind == CLI_INT && o->min < o->max && o->max >= 1e15)
    snprintf(buf, n, "an integer >= %.0f", o->min);
  else if (o->kind == CLI_INT && o->min < o->max)
    snprintf(buf, n, "an integer from %.0f to %.0f", o->min, o->max);
  else if (o->kind == CLI_REAL && o->min < o->max && o->max >= 1e300)
    snprintf(buf, n, "a number >= %g", o->min);
  else if (o->kind == CLI_REAL && o->min < o->max)
    snprintf(buf, n, "a number from %g to %g", o->min, o->max);
  else
    snprintf(buf, n, "a number");
}

/* Stores text as the value of option o. Returns 1, or 0 if it is invalid. */
static int set_value(const cli_opt *o, const char *text, cli_val *v) {
  v->s = text; /* kept for every kind: fit passes it to dlp_stage_set */
  switch (o->kind) {
  case CLI_FLAG:
    v->i = 1;
    break;
  case CLI_STR:
    break;
  case CLI_INT:
    if (!parse_int(text, o, &v->i)) return 0;
    break;
  case CLI_U64:
    if (!parse_u64(text, &v->u)) return 0;
    break;
  case CLI_REAL:
    if (!parse_real(text, o, &v->d)) return 0;
    break;
  }
  v->has = 1;
  return 1;
}

static int find_long(const cli_opt *opts, const char *name, size_t len) {
  for (int i = 0; opts[i].name; i++)
    if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
      return i;
  return -1;
}

static int find_short(const cli_opt *opts, char c) {
  for (int i = 0; opts[i].name; i++)
    if (opts[i].short_name == c) return i;
  return -1;
}

/* Handles one option at argv[*k]; advances *k past its value. */
static int parse_option(const cli_cmd *cmd, int argc, char **argv, int *k,
                        cli_args *a) {
  const char *arg = argv[*k];
  const char *inline_val = NULL;
  int idx;
  if (arg[1] == '-') {
    const char *eq = strchr(arg + 2, '=');
    size_t len = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
    idx = find_long(cmd->opts, arg + 2, len);
    if (eq) inline_val = eq + 1;
  } else {
    idx = find_short(cmd->opts, arg[1]);
    if (arg[1] && arg[2]) inline_val = arg + 2; /* -n5 */
  }
  if (idx < 0) {
    int len = (int)strcspn(arg, "=");
    return cli_usage_error(cmd, "unknown option '%.*s'", len, arg);
  }
  const cli_opt *o = &cmd->opts[idx];
  const char *text = inline_val;
  if (o->kind == CLI_FLAG) {
    if (inline_val && arg[1] == '-')
      return cli_usage_error(cmd, "option '--%s' takes no value", o->name);
    if (inline_val) return cli_usage_error(cmd, "unknown option '%s'", arg);
  } else if (!text) {
    if (*k + 1 >= argc)
      return cli_usage_error(cmd, "option '--%s' needs a value (%s)", o->name,
                             o->metavar);
    text = argv[++*k];
  }
  if (!set_value(o, text, &a->vals[idx])) {
    char want[96];
    describe_expected(o, want, sizeof want);
    return cli_usage_error(cmd, "invalid value '%s' for '--%s': expected %s",
                           text, o->name, want);
  }
  a->vals[idx].given = 1;
  return CLI_PARSED;
}

static int apply_defaults(const cli_cmd *cmd, cli_args *a) {
  for (int i = 0; cmd->opts[i].name; i++) {
    if (i >= CLI_MAX_OPTS) return cli_fail("internal: too many options");
    if (cmd->opts[i].def &&
        !set_value(&cmd->opts[i], cmd->opts[i].def, &a->vals[i]))
      return cli_fail("internal: bad default for --%s", cmd->opts[i].name);
  }
  return CLI_PARSED;
}

static int check_complete(const cli_cmd *cmd, const cli_args *a) {
  if (a->npos < cmd->npos_min)
    return cli_usage_error(cmd, "missing argument %s",
                           cmd->positional[a->npos]);
  for (int i = 0; cmd->opts[i].name; i++)
    if (cmd->opts[i].required && !a->vals[i].given)
      return cli_usage_error(cmd, "missing required option '--%s'",
                             cmd->opts[i].name);
  return CLI_PARSED;
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_args *a) {
  memset(a, 0, sizeof *a);
  a->cmd = cmd;
  int rc = apply_defaults(cmd, a);
  if (rc != CLI_PARSED) return rc;
  int only_pos = 0;
  for (int k = 1; k < argc; k++) {
    const char *arg = argv[k];
    if (!only_pos && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
      cli_print_help(cmd, stdout);
      return CLI_EXIT_OK;
    }
    if (!only_pos && strcmp(arg, "--") == 0) {
      only_pos = 1;
    } else if (!only_pos && arg[0] == '-' && arg[1] != '\0') {
      rc = parse_option(cmd, argc, argv, &k, a);
      if (rc != CLI_PARSED) return rc;
    } else {
      if (a->npos >= cmd->npos_max)
        return cli_usage_error(cmd, "unexpected argument '%s'", arg);
      a->pos[a->npos++] = arg;
    }
  }
  return check_complete(cmd, a);
}

/* --- help -------------------------------------------------------------- */

#define HELP_WIDTH 79 /* help lines fit an 80-column terminal */
#define HELP_INDENT 29

/* Prints text from column HELP_INDENT, wrapped at spaces (but not at
 * '\1', which prints as a space). */
static void print_wrapped(const char *text, FILE *out) {
  size_t col = HELP_INDENT;
  while (*text) {
    size_t word = strcspn(text, " ");
    if (col > HELP_INDENT && col + 1 + word > HELP_WIDTH) {
      fprintf(out, "\n%*s", HELP_INDENT, "");
      col = HELP_INDENT;
    } else if (col > HELP_INDENT) {
      fputc(' ', out);
      col++;
    }
    for (size_t i = 0; i < word; i++) /* \1: a space that never breaks */
      fputc(text[i] == '\1' ? ' ' : text[i], out);
    col += word;
    text += word;
    while (*text == ' ')
      text++;
  }
  fputc('\n', out);
}

static void print_option(const cli_opt *o, FILE *out) {
  char left[64], text[512];
  int n = 0;
  if (o->short_name) n = snprintf(left, sizeof left, "-%c, ", o->short_name);
  snprintf(left + n, sizeof left - (size_t)n, "--%s%s%s", o->name,
           o->metavar ? " " : "", o->metavar ? o->metavar : "");
  /* An empty default, or a help text that words its own, prints no
   * "[default: ...]" of the table's. */
  int def = o->def && *o->def && !strstr(o->help, "[default");
  snprintf(text, sizeof text, "%s%s%s%s%s", o->help,
           o->required ? " (required)" : "", def ? " [default:\1" : "",
           def ? o->def : "", def ? "]" : "");
  fprintf(out, "  %-*s ", HELP_INDENT - 3, left);
  print_wrapped(text, out);
}

void cli_print_help(const cli_cmd *cmd, FILE *out) {
  fprintf(out, "usage: dlp %s %s\n\n%s\n\n", cmd->name, cmd->usage,
          cmd->description);
  fputs("options:\n", out);
  for (const cli_opt *o = cmd->opts; o->name; o++)
    print_option(o, out);
  fprintf(out, "  %-*s show this help\n", HELP_INDENT - 3, "-h, --help");
  fprintf(out, "\nexample:\n  %s\n", cmd->example);
  fputs("\nexit codes:\n"
        "  0  success\n"
        "  1  failure (the message says what and where; no file is left\n"
        "     half-written)\n"
        "  2  usage error (bad option or argument)\n",
        out);
  if (cmd->exit_codes) fputs(cmd->exit_codes, out);
}

void cli_print_commands(FILE *out) {
  fprintf(out,
          "dlp %s - Deep Learning Pipelines in C\n\n"
          "usage: dlp COMMAND [options]\n\ncommands:\n",
          DLP_VERSION);
  for (const cli_cmd *c = cli_commands; c->name; c++)
    fprintf(out, "  %-12s %s\n", c->name, c->summary);
  fputs("\n'dlp COMMAND --help' shows a command's options; "
        "'dlp --version' the version.\n",
        out);
}

/* --- values by name ---------------------------------------------------- */

static const cli_val *val_of(const cli_args *a, const char *name) {
  for (int i = 0; a->cmd->opts[i].name; i++)
    if (strcmp(a->cmd->opts[i].name, name) == 0) return &a->vals[i];
  /* A name missing from the table is a bug in the CLI itself. */
  fprintf(stderr, "dlp: internal error: no option '--%s' in '%s'\n", name,
          a->cmd->name);
  abort();
}

int cli_given(const cli_args *a, const char *name) {
  return val_of(a, name)->given;
}
int cli_flag(const cli_args *a, const char *name) {
  return val_of(a, name)->has;
}
const char *cli_str(const cli_args *a, const char *name) {
  return val_of(a, name)->s;
}
int64_t cli_int(const cli_args *a, const char *name) {
  return val_of(a, name)->i;
}
uint64_t cli_u64(const cli_args *a, const char *name) {
  return val_of(a, name)->u;
}
double cli_real(const cli_args *a, const char *name) {
  return val_of(a, name)->d;
}

/* --- lists ------------------------------------------------------------- */

int cli_split_list(const char *s, char **buf, const char **items, int max) {
  *buf = malloc(strlen(s) + 1);
  if (!*buf) return -1;
  strcpy(*buf, s);
  int n = 0;
  char *p = *buf;
  for (;;) {
    char *comma = strchr(p, ',');
    if (comma) *comma = '\0';
    if (*p == '\0' || n >= max) return -1;
    items[n++] = p;
    if (!comma) return n;
    p = comma + 1;
  }
}

int cli_parse_weights(const char *s, double *w, int max) {
  char *buf;
  const char *items[16];
  if (max > 16) max = 16;
  int n = cli_split_list(s, &buf, items, max);
  static const cli_opt positive = {.kind = CLI_REAL, .min = 0, .max = 1e300};
  for (int i = 0; i < n; i++)
    if (!parse_real(items[i], &positive, &w[i]) || w[i] <= 0) n = -1;
  free(buf);
  return n;
}

dlp_ctx *cli_ctx_new(const cli_args *a) {
  dlp_ctx *ctx = NULL;
  if (dlp_ctx_new(&ctx) != DLP_OK) {
    cli_fail("out of memory");
    return NULL;
  }
  for (int i = 0; a->cmd->opts[i].name; i++) {
    if (!a->vals[i].given) continue;
    if (strcmp(a->cmd->opts[i].name, "threads") == 0)
      dlp_ctx_set_threads(ctx, (int)a->vals[i].i);
    else if (strcmp(a->cmd->opts[i].name, "max-pixels") == 0)
      dlp_ctx_set_max_pixels(ctx, cli_u64(a, "max-pixels"));
  }
  return ctx;
}
