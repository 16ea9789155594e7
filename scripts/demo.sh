#!/usr/bin/env bash
# demo.sh - the offline demo: reads the ~800 Tux Paint stamps (PNG files in
# category folders, Debian package tuxpaint-stamps-default) into a table
# labelled by folder, shows it, counts images per label, and splits it into
# train/test files. Then the sparkdl story with the backbone that ships with
# dlp (models/clipart_mobilenet_v2_0.5_96.h5): featurize, fit logistic
# regression on 80% and print the test accuracy next to what the same
# network with random weights gives, save, reload in a new process and
# predict, evaluate with an HTML report, tune on cached features, and
# fine-tune the backbone. Output goes to demo-out/.
#   scripts/demo.sh [PATH/TO/dlp]      (default: build/dlp; 'make demo' runs it)
set -euo pipefail

BIN=${1:-build/dlp}
STAMPS=${DLP_DEMO_IMAGES:-/usr/share/tuxpaint/stamps}
OUT=demo-out
BACKBONE=${DLP_DEMO_BACKBONE:-models/clipart_mobilenet_v2_0.5_96.h5}
FT_EPOCHS=${DLP_DEMO_FT_EPOCHS:-4}
LAYER=global_average_pooling2d # the backbone's pooled features

if [ ! -x "$BIN" ]; then
  echo "demo: no dlp binary at '$BIN'; build first (make build)" >&2
  exit 1
fi
if [ ! -d "$STAMPS" ]; then
  echo "demo: '$STAMPS' is missing; run scripts/install-deps.sh" \
    "(package tuxpaint-stamps-default)" >&2
  exit 1
fi
if [ ! -f "$BACKBONE" ]; then
  echo "demo: the pretrained backbone '$BACKBONE' is missing (it is committed;" \
    "'make pretrain' rebuilds it)" >&2
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

section "8. Featurize with the pretrained backbone that ships with dlp"
echo "$BACKBONE: Keras' MobileNetV2 (alpha 0.5, 96x96 input),"
echo "pretrained by dlp's own trainer on Debian's openclipart-png with every"
echo "near-duplicate of these stamps removed ('make pretrain', models/README.md)."
echo "Features are its pooled 1280-d layer ($LAYER; without --layer a model"
echo "file gives its output, here the 54 clip-art class probabilities)."
echo
say_run featurize "$OUT/stamps.db" --model-file "$BACKBONE" \
  --layer "$LAYER" --overwrite --out "$OUT/features.db"
say_run show "$OUT/features.db" --schema
echo
echo "The same network with random weights, for comparison:"
say_run featurize "$OUT/stamps.db" --model MobileNetV2_0.5 --random-weights \
  --seed 1 --input-size 96x96 --overwrite --out "$OUT/features_random.db"

section "9. Transfer learning: logistic regression on the features"
echo "sparkdl's DeepImageFeaturizer -> LogisticRegression, fitted on 80% of the"
echo "stamps and scored on the other 20% (the same split for both feature sets)."
echo "The largest class decides what always guessing it would score:"
"$BIN" show "$OUT/stamps.db" --counts label -n 1
echo
say_run fit --features-from "$OUT/features.db" --model-file "$BACKBONE" \
  --layer "$LAYER" --max-iter 200 --reg 0.01 --split 0.8,0.2 --seed 42 --overwrite \
  --out "$OUT/stamps.dlp" 2>&1 | tee "$OUT/fit.log"
echo
say_run fit --features-from "$OUT/features_random.db" --max-iter 200 \
  --reg 0.01 --split 0.8,0.2 --seed 42 --overwrite \
  --out "$OUT/stamps_random.dlp" 2>&1 | tee "$OUT/fit_random.log"
acc() { sed -n 's/^test .*accuracy \([0-9.]*\).*/\1/p' "$1"; }
printf '\n%stest accuracy, pretrained backbone:       %s%s\n' "$bold" \
  "$(acc "$OUT/fit.log")" "$plain"
printf '%stest accuracy, same network, random init: %s%s\n' "$bold" \
  "$(acc "$OUT/fit_random.log")" "$plain"
echo
echo "The saved pipeline (featurizer + model): a JSON manifest and .npy arrays."
ls -l "$OUT/stamps.dlp"

section "10. Reload the pipeline in a new process and predict a few images"
rm -rf "$OUT/new" && mkdir -p "$OUT/new"
for c in animals food vehicles plants; do
  find "$STAMPS/$c" -name '*.png' | sort | head -n 2 | xargs -I{} cp {} "$OUT/new/"
done
say_run transform --pipeline "$OUT/stamps.dlp" "$OUT/new" --show --overwrite \
  --out "$OUT/new_predictions.jsonl"

section "11. Evaluate on the held-out part, with an HTML report"
echo "'dlp split' with the same weights and seed gives fit's test part; the"
echo "table has the features, so the pipeline's featurizer is skipped."
say_run split "$OUT/features.db" --weights 0.8,0.2 --seed 42 --overwrite \
  --out "$OUT/features_train.db,$OUT/features_test.db"
say_run evaluate --pipeline "$OUT/stamps.dlp" "$OUT/features_test.db" \
  --report "$OUT/report.html"

section "12. Tune the regularisation by 3-fold cross-validation (cached features)"
say_run tune --features-from "$OUT/features.db" --model-file "$BACKBONE" \
  --layer "$LAYER" --grid 'reg=0.001,0.01,0.1;elastic-net=0,0.5' --folds 3 --max-iter 200 \
  --parallelism 2 --split 0.8,0.2 --seed 42 --overwrite --out "$OUT/best.dlp"

section "13. Fine-tune the backbone itself"
echo "KerasImageFileEstimator's job: a new head on the backbone, its last"
echo "blocks unfrozen, trained with augmentation; 20% of the stamps validate."
say_run finetune --images "$STAMPS" --model-file "$BACKBONE" \
  --freeze-until block_15_add --epochs $FT_EPOCHS --batch-size 32 --lr 0.001 \
  --seed 42 --overwrite --out "$OUT/stamps_finetuned.h5"
say_run predict "$OUT/new" --model-file "$OUT/stamps_finetuned.h5" --top-k 2 \
  --show --overwrite --out "$OUT/new_finetuned.jsonl"

section "Done"
echo "Files in $OUT/:"
ls -l "$OUT"
echo
echo "Open $OUT/report.html in a browser for the evaluation report."
echo "Next: 'dlp help' lists the commands; docs/cli.md explains each one, and"
echo "docs/ml.md is the transfer-learning guide."
