#!/usr/bin/env bash
# demo.sh - the offline demo: reads the ~800 Tux Paint stamps (PNG files in
# category folders, Debian package tuxpaint-stamps-default) into a table
# labelled by folder, shows it, counts images per label, and splits it into
# train/test files, then featurizes the test part with a zoo CNN (random
# weights) and predicts with a cached model if there is one. Output goes to
# demo-out/.
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
  printf '$ dlp %s\n' "$*"
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

section "Done"
echo "Files in $OUT/:"
ls -l "$OUT"
echo
echo "Next: 'dlp help' lists the commands; docs/cli.md explains each one."
