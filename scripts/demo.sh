#!/usr/bin/env bash
# demo.sh - the offline demo: reads the ~800 Tux Paint stamps (PNG files in
# category folders, Debian package tuxpaint-stamps-default) into a table
# labelled by folder, shows it, counts images per label, and splits it into
# train/test files, then featurizes the test part with a zoo CNN (random
# weights) and predicts with a cached model if there is one. Then the sparkdl
# story: fit a featurizer + logistic regression pipeline on the labelled
# folder, print its test accuracy, save it, reload it to predict a few
# images, evaluate it with an HTML report, and tune it on cached features.
# Output goes to demo-out/.
#   scripts/demo.sh [PATH/TO/dlp]      (default: build/dlp; 'make demo' runs it)
set -euo pipefail

BIN=${1:-build/dlp}
STAMPS=${DLP_DEMO_IMAGES:-/usr/share/tuxpaint/stamps}
OUT=demo-out

if [ ! -x "$BIN" ]; then
  echo "demo: no dlp binary at '$BIN'; build first (make build)" >&2
  exit 1
fi
if [ ! -d "$STAMPS" ]; then
  echo "demo: '$STAMPS' is missing; run scripts/install-deps.sh" \
    "(package tuxpaint-stamps-default)" >&2
  exit 1
fi
mkdir -p "$OUT"

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
section() { printf '\n%s== %s ==%s\n\n' "$bold" "$1" "$plain"; }
# say_run ARGS...: shows the dlp command line, then runs it.
say_run() {
  local shown='' arg
  for arg in "$@"; do # quote what a shell would split: --grid 'a=1;b=2'
    if [[ $arg =~ ^[A-Za-z0-9_./,=:+-]+$ ]]; then shown+=" $arg"; else shown+=" '$arg'"; fi
  done
  printf '$ dlp%s\n' "$shown"
  "$BIN" "$@"
}

section "1. Read a folder of images into a table (labels = sub-folder names)"
say_run read-images "$STAMPS" --labels-from-dirs --overwrite \
  --out "$OUT/stamps.db"

section "2. The first rows"
say_run show "$OUT/stamps.db" -n 8

section "3. The table's columns"
say_run show "$OUT/stamps.db" --schema

section "4. Images per label"
say_run show "$OUT/stamps.db" --counts label

section "5. Images that could not be read (if any)"
say_run show "$OUT/stamps.db" --errors -n 5

section "6. A reproducible 80/20 train/test split"
say_run split "$OUT/stamps.db" --weights 0.8,0.2 --seed 42 --overwrite \
  --out "$OUT/train.db,$OUT/test.db"
say_run show "$OUT/train.db" --counts label -n 5

section "7. The same table as JSON Lines and CSV, for other tools"
say_run convert "$OUT/test.db" "$OUT/test.jsonl" --overwrite
say_run convert "$OUT/test.db" "$OUT/test.csv" --overwrite
printf '\nfirst line of %s:\n' "$OUT/test.jsonl"
head -n 1 "$OUT/test.jsonl"

section "8. featurize + predict"
echo "No pretrained weights ship with dlp yet (issue 6 brings a pretrained"
echo "network). Real Keras weights can be imported with 'dlp models import FILE'."
echo "Here: the zoo's MobileNetV2 with RANDOM weights (--random-weights), so the"
echo "vectors mean nothing, but their size and the speed are real."
echo
say_run featurize "$OUT/test.db" --model MobileNetV2 --random-weights \
  --overwrite --out "$OUT/test_features.db"
say_run show "$OUT/test_features.db" --schema
# A model in the cache (imported or fetched) can predict for real.
cached=$("$BIN" models list 2>/dev/null | awk -F'│' '$5 ~ /yes/ {gsub(/ /, "", $2); print $2; exit}')
if [ -n "$cached" ]; then
  say_run predict "$OUT/test.db" --model "$cached" --top-k 3 --show \
    --overwrite --out "$OUT/test_predictions.db"
else
  echo
  echo "predict: skipped, no model is in the cache ('dlp models list'; add one"
  echo "with 'dlp models import FILE' or 'dlp models fetch MobileNetV2')."
fi

section "9. Transfer learning: featurizer + logistic regression, one command"
echo "sparkdl's example: DeepImageFeaturizer -> LogisticRegression, fitted on a"
echo "labelled folder, scored on a held-out 20%. With RANDOM weights (no"
echo "pretrained network until issue 6), so the accuracy above chance comes from"
echo "random convolutional features; with imported Keras weights ('dlp models"
echo "import FILE', then --model NAME without --random-weights) it is the real"
echo "thing. The largest class decides what always guessing it would score:"
"$BIN" show "$OUT/stamps.db" --counts label -n 1
echo
say_run fit --images "$STAMPS" --labels-from-dirs --model MobileNetV2 \
  --random-weights --max-iter 100 --reg 0.01 --split 0.8,0.2 --seed 42 \
  --overwrite --out "$OUT/stamps.dlp"
echo
echo "The saved pipeline: a JSON manifest and .npy arrays."
ls -l "$OUT/stamps.dlp"

section "10. Reload the pipeline in a new process and predict a few images"
rm -rf "$OUT/new" && mkdir -p "$OUT/new"
for c in animals food vehicles plants; do
  find "$STAMPS/$c" -name '*.png' | sort | head -n 2 | xargs -I{} cp {} "$OUT/new/"
done
say_run transform --pipeline "$OUT/stamps.dlp" "$OUT/new" --show --overwrite \
  --out "$OUT/new_predictions.jsonl"

section "11. Featurize once, evaluate on the held-out part, HTML report"
echo "Features written once serve every later experiment (--features-from, or"
echo "a table that has the features: the pipeline's featurizer is then skipped)."
echo "'dlp split' with the same weights and seed gives fit's test part."
say_run featurize "$OUT/stamps.db" --model MobileNetV2 --random-weights \
  --overwrite --out "$OUT/features.db"
say_run split "$OUT/features.db" --weights 0.8,0.2 --seed 42 --overwrite \
  --out "$OUT/features_train.db,$OUT/features_test.db"
say_run evaluate --pipeline "$OUT/stamps.dlp" "$OUT/features_test.db" \
  --report "$OUT/report.html"

section "12. Tune the regularisation by 3-fold cross-validation (cached features)"
say_run tune --features-from "$OUT/features.db" --model MobileNetV2 \
  --random-weights --grid 'reg=0.01,0.1;elastic-net=0,0.5' --folds 3 \
  --parallelism 2 --split 0.8,0.2 --seed 42 --overwrite --out "$OUT/best.dlp"

section "Done"
echo "Files in $OUT/:"
ls -l "$OUT"
echo
echo "Open $OUT/report.html in a browser for the evaluation report."
echo "Next: 'dlp help' lists the commands; docs/cli.md explains each one, and"
echo "docs/ml.md is the transfer-learning guide."
