#!/usr/bin/env bash
# pretrain.sh - the recipe of the backbone that ships with dlp
# (models/clipart_mobilenet_v2_0.5_96.h5): Keras' MobileNetV2 at alpha 0.5
# and 96x96 input, trained from seeded random weights by dlp's own trainer
# (`dlp finetune` with nothing frozen) on the clip art of Debian's
# openclipart-png, with the demo's Tux Paint stamps removed from it
# (scripts/pretrain-data.sh). `make pretrain` runs it.
#
#   scripts/pretrain.sh [--epochs N] [--out FILE] [--data DIR] [--bin DLP]
#                       [--threads N] [--resume]
#
#   --epochs N   passes over the training images (default: the recipe's)
#   --out FILE   the model to write (default models/clipart_mobilenet_v2_0.5_96.h5)
#   --data DIR   the pretraining set (default pretrain-data, rebuilt by
#                scripts/pretrain-data.sh when missing)
#   --threads N  kernel threads (default 2: the thread count the committed
#                weights were trained with; training is bit-identical run to
#                run for a given count)
#   --resume     continue from the checkpoint in pretrain-out/ckpt
#
# Everything is seeded: the random initial weights (--weights-seed), the
# validation split, shuffles, augmentation and dropout (--seed). The run's
# log goes to pretrain-out/train.log; models/README.md records the command,
# its accuracy and the time it took.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
epochs=80
out=models/clipart_mobilenet_v2_0.5_96.h5
data=pretrain-data
bin=build/dlp
threads=2
resume=()
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --resume) resume=(--resume); shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "pretrain.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
cd "$root"
if [ ! -x "$bin" ]; then
  echo "pretrain: no dlp binary at '$bin'; run 'make build' first" >&2
  exit 1
fi
# The set: 54 sub-categories (depth 2) of at least 20 images, at most 300
# each (icons and stars would otherwise be 40% of it): about 4,060 images.
scripts/pretrain-data.sh --out "$data" --depth 2 --min-count 20 \
  --max-per-class 300 --build "$(dirname "$bin")"
# OpenMP threads that spin at barriers collapse when anything else shares
# the cores (bench/RESULTS.md, Training); passive waiting after a short spin
# costs nothing measurable on a quiet machine.
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-1000}
mkdir -p pretrain-out "$(dirname "$out")"
cmd=("$bin" finetune --images "$data" --model MobileNetV2_0.5 --random-weights
  --weights-seed 1 --input-size 96x96 --freeze-until ''
  --epochs "$epochs" --batch-size 64 --optimizer adamw --lr 0.004
  --weight-decay 0.01 --schedule cosine --crop-scale 0.25,1
  --val-split 0.1 --seed 1
  --checkpoint-dir pretrain-out/ckpt "${resume[@]}" -j "$threads"
  --val-predictions pretrain-out/val_predictions.csv --overwrite --out "$out")
printf 'pretrain:'; printf ' %q' "${cmd[@]}"; printf '\n'
start=$(date +%s)
"${cmd[@]}" 2>&1 | tee pretrain-out/train.log
echo "pretrain: $(( $(date +%s) - start )) s; wrote $out"
