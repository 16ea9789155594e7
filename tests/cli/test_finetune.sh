#!/usr/bin/env bash
# test_finetune.sh - 'dlp finetune': a head (dense 32, dropout) trained on
# the zoo MobileNetV2 with random weights at 32x32 over three colour classes
# made by PIL (plus one corrupt PNG, which is reported and left out). Checks
# that learning happens (train loss falls, val accuracy above chance), that
# the saved .h5 runs in 'dlp apply' and 'dlp predict' and gives the
# validation probabilities finetune computed, that numpy recomputing the head
# from the .h5 weights (h5py) on 'dlp featurize' features agrees, that the
# saved weights are the best val loss epoch's (--no-restore-best: the
# last's), that a
# resumed run equals an uninterrupted one, and the usage and input errors.
source "$(dirname "$0")/common.sh"

REF=("$DLP_PYTHON" "$CLI_TESTS/finetune_ref.py")
IMG="$WORK/imgs"
export DLP_MODEL_DIR="$WORK/cache" # never the user's cache
N=16
EPOCHS=3
if [ "${DLP_SANITIZED:-0}" = 1 ]; then # ASan: fewer images, one epoch
  N=5
  EPOCHS=1
fi
"${REF[@]}" make "$IMG" "$N" --corrupt
NET=(--model MobileNetV2 --random-weights --input-size 32x32)
TRAIN=(--head dense:32,dropout:0.2 --batch-size 4 --lr 0.001 --seed 42)

# --- help and usage errors ------------------------------------------------------
expect_rc "'dlp finetune --help' exits 0" 0 finetune --help
check "--help has usage, options and an example" bash -c \
  'grep -q "usage: dlp finetune" "$1" && grep -q -- "--freeze-until L" "$1" &&
   grep -q "example:" "$1"' _ "$WORK/out"
check "docs/cli.md documents finetune" grep -q "^## dlp finetune" \
  "$DLP_SRC/docs/cli.md"

usage_error() {
  local name=$1 needle=$2
  shift 2
  expect_rc "$name exits 2" 2 "$@"
  check "$name: message names $needle" contains "$WORK/err" "$needle"
}
usage_error "no input" "no input" finetune "${NET[@]}" --out "$WORK/m.h5"
usage_error "no --out" "--out" finetune --images "$IMG" "${NET[@]}"
usage_error "no model" "--model NAME" finetune --images "$IMG" \
  --out "$WORK/m.h5"
usage_error "--model and --model-file" "--model-file" finetune --images \
  "$IMG" --model MobileNetV2 --model-file x.h5 --out "$WORK/m.h5"
usage_error "bad --optimizer" "--optimizer" finetune --images "$IMG" \
  "${NET[@]}" --optimizer rmsprop --out "$WORK/m.h5"
usage_error "bad --schedule" "--schedule" finetune --images "$IMG" \
  "${NET[@]}" --schedule linear --out "$WORK/m.h5"
usage_error "--resume without --checkpoint-dir" "--checkpoint-dir" finetune \
  --images "$IMG" "${NET[@]}" --resume --out "$WORK/m.h5"
usage_error "bad --input-size" "--input-size" finetune --images "$IMG" \
  --model MobileNetV2 --random-weights --input-size 32 --out "$WORK/m.h5"
usage_error "--val-split out of range" "--val-split" finetune --images \
  "$IMG" "${NET[@]}" --val-split 1.5 --out "$WORK/m.h5"

# --- input and option errors (exit 1, nothing written) -------------------------
lib_error() {
  local name=$1 needle=$2
  shift 2
  expect_rc "$name exits 1" 1 "$@"
  check "$name: message says '$needle'" contains "$WORK/err" "$needle"
}
lib_error "bad head spec" "head: bad layer 'dense:abc'" finetune --images \
  "$IMG" "${NET[@]}" --head dense:abc --out "$WORK/e.h5"
lib_error "dropout rate of 1" "dropout rate 1 is not in [0, 1)" finetune \
  --images "$IMG" "${NET[@]}" --head dropout:1 --out "$WORK/e.h5"
lib_error "unknown --freeze-until" "no layer 'block_99_add' to freeze until" \
  finetune --images "$IMG" "${NET[@]}" --freeze-until block_99_add \
  --out "$WORK/e.h5"
lib_error "unknown --feature-layer" "no layer 'nope' to take features from" \
  finetune --images "$IMG" "${NET[@]}" --feature-layer nope \
  --out "$WORK/e.h5"
mkdir -p "$WORK/one/cats" "$WORK/few/cats" "$WORK/few/dogs"
cp "$IMG"/red/red_0[0-2].png "$WORK/one/cats/"
lib_error "a single class" "1 class among 3 labelled images; at least 2" \
  finetune --images "$WORK/one" "${NET[@]}" --out "$WORK/e.h5"
cp "$IMG"/red/red_0[0-3].png "$WORK/few/cats/"
cp "$IMG"/blue/blue_00.png "$WORK/few/dogs/"
# The split is stratified and leaves every class a training image; a class
# whose only image cannot be decoded (gone since the table was written)
# still has none.
expect_rc "read-images writes the few-images table" 0 read-images \
  "$WORK/few" --labels-from-dirs --out "$WORK/few.jsonl"
rm "$WORK/few/dogs/blue_00.png"
lib_error "a class without training images" \
  "class 'dogs' has no training image" finetune "$WORK/few.jsonl" \
  "${NET[@]}" --out "$WORK/e.h5"
check "nothing was written by the failures" bash -c '! ls "$1"/e.* 2>/dev/null' \
  _ "$WORK"

# --- training ------------------------------------------------------------------
expect_rc "finetune trains and saves" 0 finetune --images "$IMG" "${NET[@]}" \
  "${TRAIN[@]}" --epochs "$EPOCHS" --out "$WORK/m.h5" \
  --val-predictions "$WORK/val.csv"
cp "$WORK/out" "$WORK/train.log"
cp "$WORK/err" "$WORK/train.err"
check "the corrupt image is reported and left out" grep -q \
  "invalid image left out (e.g. .*zz_broken.png" "$WORK/train.err"
check "one line per epoch and the best epoch" bash -c \
  '[ "$(grep -c "^epoch " "$1")" = "$2" ] && grep -q "^best epoch " "$1"' _ \
  "$WORK/train.log" "$EPOCHS"
check "the class names are saved in output order" bash -c \
  '"$1" -c "import json,sys; c = json.load(open(sys.argv[1]))[\"classes\"]
assert c == [\"blue\", \"green\", \"red\"], c" "$2"' _ "$DLP_PYTHON" \
  "$WORK/m.labels.json"
read -r first_loss last_loss val_loss val_acc < <("${REF[@]}" epochs \
  "$WORK/train.log")
if [ "$EPOCHS" -gt 1 ]; then
  check "training loss fell ($first_loss -> $last_loss)" "$DLP_PYTHON" -c \
    "assert $last_loss < $first_loss"
  check "validation accuracy $val_acc is above chance (>= 0.6)" \
    "$DLP_PYTHON" -c "assert $val_acc >= 0.6"
fi

# The saved model, run by dlp itself and recomputed by numpy.
expect_rc "dlp apply runs the saved model" 0 apply "$IMG" --model-file \
  "$WORK/m.h5" --preprocess tf --out "$WORK/apply.jsonl"
expect_rc "dlp featurize gives its features" 0 featurize "$IMG" \
  --model-file "$WORK/m.h5" --preprocess tf --layer global_average_pooling2d \
  --out "$WORK/feat.jsonl"
check "apply, numpy's head and finetune agree on the validation images" \
  "${REF[@]}" check "$WORK/val.csv" "$WORK/apply.jsonl" "$WORK/feat.jsonl" \
  "$WORK/m.h5" "$WORK/m.labels.json" "$WORK/train.log"

# restore-best: a learning rate high enough that the val loss rises after the
# first epoch; the saved model is the best epoch's, as numpy recomputes it,
# and --no-restore-best keeps the last epoch's.
HOT=(finetune --images "$IMG" "${NET[@]}" --head dense:32,dropout:0.2
  --batch-size 4 --lr 0.2 --seed 42 --schedule constant --epochs 3)
expect_rc "a high-lr run saves its best epoch" 0 "${HOT[@]}" \
  --out "$WORK/hot.h5" --val-predictions "$WORK/hot.csv"
cp "$WORK/out" "$WORK/hot.log"
read -r saved best last < <("${REF[@]}" best "$WORK/hot.log")
check "the saved epoch ($saved) is the lowest val loss's ($best)" \
  test "$saved" = "$best"
if [ "${DLP_SANITIZED:-0}" != 1 ]; then # the images of the full run
  check "the best epoch ($best) is not the last ($last)" test "$best" != "$last"
fi
expect_rc "dlp apply runs the best-epoch model" 0 apply "$IMG" --model-file \
  "$WORK/hot.h5" --preprocess tf --out "$WORK/hot_apply.jsonl"
expect_rc "dlp featurize runs the best-epoch model" 0 featurize "$IMG" \
  --model-file "$WORK/hot.h5" --preprocess tf \
  --layer global_average_pooling2d --out "$WORK/hot_feat.jsonl"
check "the saved model's val loss is the best epoch's printed one" \
  "${REF[@]}" check "$WORK/hot.csv" "$WORK/hot_apply.jsonl" \
  "$WORK/hot_feat.jsonl" "$WORK/hot.h5" "$WORK/hot.labels.json" \
  "$WORK/hot.log"
expect_rc "--no-restore-best saves the last epoch" 0 "${HOT[@]}" \
  --no-restore-best --out "$WORK/hot_last.h5"
check "it says so" grep -q "^saved weights: epoch $last (last epoch)" \
  "$WORK/out"
check "and its weights differ from the best epoch's" bash -c \
  '[ "$1" = "$2" ] || ! cmp -s "$3" "$4"' _ "$best" "$last" "$WORK/hot.h5" \
  "$WORK/hot_last.h5"

expect_rc "dlp predict runs the saved model" 0 predict "$IMG" --model-file \
  "$WORK/m.h5" --preprocess tf --top-k 1 --out "$WORK/pred.jsonl"

# A fine-tuned model is a base too: cut before its last dense layer, the new
# head's names made unique.
expect_rc "fine-tuning a Keras file (--model-file)" 0 finetune --images \
  "$IMG" --model-file "$WORK/m.h5" --preprocess tf "${TRAIN[@]}" --epochs 1 \
  --out "$WORK/m2.h5"
check "its features come from the old head's dropout" contains "$WORK/err" \
  "features from dropout"
expect_rc "the re-tuned model runs" 0 apply "$IMG" --model-file \
  "$WORK/m2.h5" --preprocess tf --out "$WORK/apply2.jsonl"
check "the re-tuned model has both heads" bash -c '"$1" -c "import h5py,sys
n = [l.decode() for l in h5py.File(sys.argv[1])[\"model_weights\"].attrs[\"layer_names\"]]
assert \"head_dense\" in n and \"head_dense_1\" in n and \"predictions\" in n, n" "$2"' \
  _ "$DLP_PYTHON" "$WORK/m2.h5"

lib_error "an existing output without --overwrite" "exists" finetune \
  --images "$IMG" "${NET[@]}" --epochs 1 --out "$WORK/m.h5"

# Freezing less trains more: the last block too, or every layer.
count() { sed -n 's/.* \([0-9]*\) trainable parameters.*/\1/p' "$1"; }
head_only=$(count "$WORK/train.err")
expect_rc "--freeze-until a layer of the base" 0 finetune --images "$IMG" \
  "${NET[@]}" "${TRAIN[@]}" --freeze-until block_16_project_BN --epochs 1 \
  --out "$WORK/p.h5"
part=$(count "$WORK/err")
expect_rc "--freeze-until '' (train every layer)" 0 finetune --images \
  "$IMG" "${NET[@]}" "${TRAIN[@]}" --freeze-until '' --epochs 1 \
  --out "$WORK/all.h5"
all=$(count "$WORK/err")
check "trainable parameters: head $head_only < block $part < all $all" \
  test "$head_only" -lt "$part" -a "$part" -lt "$all"

# A table IN (image and label columns); an image gone since the table was
# written is skipped by the library with its error.
cp -r "$IMG" "$WORK/tab"
rm "$WORK/tab/red/zz_broken.png"
expect_rc "read-images writes a labelled table" 0 read-images "$WORK/tab" \
  --labels-from-dirs --out "$WORK/tab.jsonl"
rm "$WORK/tab/green/green_01.png"
expect_rc "finetune reads a table" 0 finetune "$WORK/tab.jsonl" "${NET[@]}" \
  "${TRAIN[@]}" --epochs 1 --val-split 0 --out "$WORK/tab.h5"
check "the vanished image is reported and left out" grep -q \
  "1 image left out: .*green_01.png: cannot open" "$WORK/err"
check "the other images trained, none validated" contains "$WORK/err" \
  "3 classes; $((3 * N - 1)) training and 0 validation images"

# --- checkpoints: stopping after E-1 epochs and resuming gives the same model -----
RES=(finetune --images "$IMG" "${NET[@]}" "${TRAIN[@]}" --schedule constant)
E2=$((EPOCHS + 1))
expect_rc "an uninterrupted run" 0 "${RES[@]}" --epochs "$E2" \
  --out "$WORK/a.h5" --val-predictions "$WORK/a.csv"
expect_rc "a run stopped early with checkpoints" 0 "${RES[@]}" --epochs \
  "$EPOCHS" --checkpoint-dir "$WORK/ck" --out "$WORK/b.h5"
expect_rc "the resumed run" 0 "${RES[@]}" --epochs "$E2" --checkpoint-dir \
  "$WORK/ck" --resume --out "$WORK/b.h5" --overwrite \
  --val-predictions "$WORK/b.csv"
check "the resumed run ran only the last epoch" bash -c \
  '[ "$(grep -c "^epoch " "$1")" = 1 ] && grep -q "^epoch *$2/$2 " "$1"' _ \
  "$WORK/out" "$E2"
check "resumed = uninterrupted (same validation probabilities)" cmp \
  "$WORK/a.csv" "$WORK/b.csv"

finish
