#!/usr/bin/env bash
# test_ml.sh - transfer learning from the command line: 'dlp fit',
# 'transform', 'evaluate' and 'tune' on a labelled folder made by PIL
# (ml_images.py: red discs, green bars, blue squares, one corrupt PNG),
# featurized by the zoo's MobileNetV2 with random weights. The numbers dlp
# prints are checked against what Python computes from dlp's own outputs
# (transform's predictions vs the true folders, sklearn.metrics), and the
# --features-from path against the image path (same coefficients).
source "$(dirname "$0")/common.sh"

REF=("$DLP_PYTHON" "$CLI_TESTS/ml_images.py")
IMG="$WORK/imgs"
export DLP_MODEL_DIR="$WORK/cache" # never the user's cache
N=16
[ "${DLP_SANITIZED:-0}" = 1 ] && N=5 # ASan: a few images per class
"${REF[@]}" make "$IMG" "$N" --corrupt
NET=(--model MobileNetV2 --random-weights)
LR=(--reg 0.01 --max-iter 50)

# --- help and usage errors (no images are read) ---------------------------------
for c in fit transform evaluate tune; do
  expect_rc "'dlp $c --help' exits 0" 0 "$c" --help
  check "$c --help has usage, example, exit codes" bash -c \
    'grep -q "usage: dlp $1" "$2" && grep -q "example:" "$2" &&
     grep -q "exit codes:" "$2"' _ "$c" "$WORK/out"
done
run fit --help
check "fit --help lists the LR parameters with defaults" bash -c \
  'grep -q -- "--reg X" "$1" && grep -q -- "--elastic-net X" "$1" &&
   grep -q -- "--max-iter N" "$1" && grep -q -- "--family NAME" "$1"' _ \
  "$WORK/out"
check "docs/cli.md documents fit, transform, evaluate and tune" bash -c \
  'for c in fit transform evaluate tune; do
     grep -q "^## dlp $c" "$1" || exit 1; done' _ "$DLP_SRC/docs/cli.md"

usage_error() {
  local name=$1 needle=$2
  shift 2
  expect_rc "$name exits 2" 2 "$@"
  check "$name: message names $needle" contains "$WORK/err" "$needle"
}
usage_error "fit without --out" "--out" fit --images "$IMG"
usage_error "fit without input" "no input" fit --out "$WORK/p"
usage_error "fit with two inputs" "one input" fit "$IMG" --images "$IMG" \
  --out "$WORK/p"
usage_error "fit --split with 3 parts" "--split" fit --images "$IMG" \
  --split 0.5,0.3,0.2 --out "$WORK/p"
usage_error "fit --reg -1" "'--reg'" fit --images "$IMG" --reg -1 \
  --out "$WORK/p"
usage_error "fit --elastic-net 2" "'--elastic-net'" fit --images "$IMG" \
  --elastic-net 2 --out "$WORK/p"
usage_error "fit --family foo" "family" fit --images "$IMG" --family foo \
  --out "$WORK/p"
usage_error "tune: unknown parameter in --grid" "'bogus'" tune \
  --images "$IMG" --grid 'reg=0.1;bogus=1,2'
usage_error "tune --folds 1" "--folds" tune --images "$IMG" --grid 'reg=0.1' \
  --folds 1
usage_error "tune: unknown --metric" "'nope'" tune --images "$IMG" \
  --grid 'reg=0.1' --metric nope
usage_error "evaluate: unknown --metric" "'nope'" evaluate --pipeline \
  "$WORK/p" --images "$IMG" --metric accuracy,nope
usage_error "transform without --pipeline" "--pipeline" transform "$IMG" \
  --out "$WORK/x.jsonl"
mkdir -p "$WORK/flat"
cp "$IMG"/red/red_00.png "$IMG"/blue/blue_00.png "$WORK/flat/"
expect_rc "fit on a folder without sub-folders exits 1" 1 \
  fit --images "$WORK/flat" "${NET[@]}" --out "$WORK/p"
check "... 'no labels: ... own sub-folder'" bash -c \
  'grep -q "no labels" "$1" && grep -q "own sub-folder" "$1"' _ "$WORK/err"

# --- fit: the issue's command line, with a corrupt image in the folder ------------
expect_rc "fit --images ... --out exits 0" 0 fit --images "$IMG" \
  --labels-from-dirs "${NET[@]}" "${LR[@]}" --elastic-net 0.3 --split 0.8,0.2 \
  --seed 42 --out "$WORK/p1"
cp "$WORK/out" "$WORK/fit.out"
check "fit saved pipeline.json" test -s "$WORK/p1/pipeline.json"
check "fit reports the corrupt image and goes on" contains "$WORK/err" \
  "zz_broken.png"
check "fit says the weights are random" contains "$WORK/err" "RANDOM weights"
check "fit prints train and test metrics and the LR summary" bash -c \
  'grep -q "^train (" "$1" && grep -q "^test (" "$1" &&
   grep -q "^LogisticRegression: multinomial, 3 classes" "$1"' _ \
  "$WORK/fit.out"
check "fit prints a confusion matrix with the class names" bash -c \
  'grep -q "true \\\\ predicted" "$1" && grep -q "green" "$1"' _ \
  "$WORK/fit.out"
expect_rc "fit again without --overwrite exits 1" 1 fit --images "$IMG" \
  "${NET[@]}" --out "$WORK/p1"
check "... saying it exists" contains "$WORK/err" "exists"
expect_rc "fit --fail-on-error exits 3" 3 fit --images "$IMG" "${NET[@]}" \
  --fail-on-error --out "$WORK/p3"
check "... and saves nothing" test ! -e "$WORK/p3"

# The test part, made the same way by hand: the valid images in path order
# (read-images --drop-invalid), split with the same weights and seed.
expect_rc "read-images + split: the same test part" 0 read-images "$IMG" \
  --labels-from-dirs --drop-invalid --out "$WORK/all.db"
expect_rc "split 0.8,0.2 --seed 42" 0 split "$WORK/all.db" --weights 0.8,0.2 \
  --seed 42 --out "$WORK/train.db,$WORK/test.db"
expect_rc "transform the test part (another process)" 0 transform \
  --pipeline "$WORK/p1" "$WORK/test.db" --out "$WORK/test_pred.jsonl"
fit_acc=$(sed -n 's/^test ([0-9]* rows): accuracy \([0-9.]*\) .*/\1/p' \
  "$WORK/fit.out")
py_acc=$("${REF[@]}" accuracy "$WORK/test_pred.jsonl")
check "fit's test accuracy ($fit_acc) = Python's on transform output ($py_acc)" \
  test -n "$fit_acc" -a "$fit_acc" = "$py_acc"

expect_rc "fit a table IN (read-images output) exits 0" 0 fit "$WORK/all.db" \
  "${NET[@]}" "${LR[@]}" --elastic-net 0.3 --seed 42 --out "$WORK/pt"
check "... the same coefficients as from the folder" \
  "${REF[@]}" coef "$WORK/p1" "$WORK/pt"

# --- transform: a folder, twice, other batch size and threads: same numbers -------
expect_rc "transform a folder --show exits 0" 0 transform --pipeline \
  "$WORK/p1" "$IMG" --show --out "$WORK/t1.jsonl"
check "--show prints path, predictedLabel, probability" bash -c \
  'grep -q "predictedLabel" "$1" && grep -q "red_00.png" "$1"' _ "$WORK/out"
check "the corrupt image has no prediction" "$DLP_PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = [r for r in rows if "zz_broken" in r["image"]["origin"]]
assert len(bad) == 1 and bad[0]["prediction"] is None, bad
assert all(r["prediction"] is not None for r in rows if r not in bad)
assert {"rawPrediction", "probability", "prediction",
        "predictedLabel"} <= set(rows[0]), rows[0].keys()' "$WORK/t1.jsonl"
expect_rc "transform -b 3 -j 1 exits 0" 0 transform --pipeline "$WORK/p1" \
  "$IMG" -b 3 -j 1 --out "$WORK/t2.jsonl"
check "two processes, other batches: identical predictions" \
  "${REF[@]}" same "$WORK/t1.jsonl" "$WORK/t2.jsonl"
expect_rc "transform to .db exits 0" 0 transform --pipeline "$WORK/p1" \
  "$WORK/test.db" --out "$WORK/t.db"
check "the .db has predictedLabel" "$DLP_PYTHON" -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
n = c.execute("select count(predictedLabel) from frame").fetchone()[0]
assert n > 0, n' "$WORK/t.db"

# --- evaluate: = sklearn.metrics on transform's output ----------------------------
expect_rc "evaluate --json exits 0" 0 evaluate --pipeline "$WORK/p1" \
  "$WORK/test.db" --json
cp "$WORK/out" "$WORK/eval.json"
check "evaluate's numbers = sklearn.metrics (1e-9)" \
  "${REF[@]}" sklearn "$WORK/test_pred.jsonl" "$WORK/eval.json"
ev_acc=$("$DLP_PYTHON" -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["metrics"]["accuracy"])' "$WORK/eval.json")
check "evaluate's accuracy ($ev_acc) = fit's test accuracy" \
  test "$ev_acc" = "$fit_acc"
expect_rc "evaluate --images --report exits 0" 0 evaluate --pipeline \
  "$WORK/p1" --images "$IMG" --labels-from-dirs --metric accuracy,f1 \
  --report "$WORK/report.html"
check "evaluate prints the metrics asked for" bash -c \
  'grep -q "^accuracy " "$1" && grep -q "^f1 " "$1" &&
   ! grep -q "^logLoss" "$1"' _ "$WORK/out"
check "the report is an HTML page" grep -qi "<html" "$WORK/report.html"
mkdir -p "$WORK/unk/purple" "$WORK/unk/red"
cp "$IMG/red/red_00.png" "$WORK/unk/purple/"
cp "$IMG/red/red_01.png" "$WORK/unk/red/"
expect_rc "evaluate with a label the pipeline never saw exits 1" 1 evaluate \
  --pipeline "$WORK/p1" --images "$WORK/unk"
check "... naming it" contains "$WORK/err" "'purple'"

# --- --features-from: one featurization, the same fit ------------------------------
expect_rc "featurize once" 0 featurize "$IMG" "${NET[@]}" --out "$WORK/feat.db"
expect_rc "fit --features-from exits 0" 0 fit --features-from "$WORK/feat.db" \
  "${LR[@]}" --elastic-net 0.3 --seed 42 --out "$WORK/pf"
check "--features-from: the same test accuracy" contains "$WORK/out" \
  "test ($(sed -n 's/^test (\([0-9]*\) rows.*/\1/p' "$WORK/fit.out") rows): accuracy $fit_acc "
check "--features-from: the same coefficients as from the images" \
  "${REF[@]}" coef "$WORK/p1" "$WORK/pf"
expect_rc "fit --features-from --model (pipeline works on images)" 0 fit \
  --features-from "$WORK/feat.db" "${NET[@]}" "${LR[@]}" --elastic-net 0.3 \
  --out "$WORK/pf2"
expect_rc "transform images with that pipeline" 0 transform --pipeline \
  "$WORK/pf2" "$IMG" --out "$WORK/t3.jsonl"
check "... same predictions as the image-fitted pipeline" \
  "${REF[@]}" same "$WORK/t1.jsonl" "$WORK/t3.jsonl"

# --- tune --------------------------------------------------------------------------
expect_rc "tune --grid --folds 3 --parallelism 2 exits 0" 0 tune \
  --features-from "$WORK/feat.db" "${NET[@]}" --max-iter 30 \
  --grid 'reg=0.01,0.1;elastic-net=0,0.5' --folds 3 --parallelism 2 \
  --split 0.8,0.2 --out "$WORK/best"
cp "$WORK/out" "$WORK/tune.out"
check "tune prints every combination" bash -c \
  '[ "$(grep -c "regParam=" "$1")" -ge 4 ] &&
   grep -q "regParam=0.01 elasticNetParam=0 " "$1" &&
   grep -q "regParam=0.1 elasticNetParam=0.5 " "$1"' _ "$WORK/tune.out"
check "tune marks one best" bash -c \
  '[ "$(grep -c "│ \* " "$1")" -eq 1 ] && grep -q "^best: " "$1"' _ \
  "$WORK/tune.out"
check "tune scores the best on the held-out part" grep -q "^test (" \
  "$WORK/tune.out"
expect_rc "the best pipeline transforms images" 0 transform --pipeline \
  "$WORK/best" "$IMG" --out "$WORK/t4.jsonl"
check "... with a prediction for every valid image" "$DLP_PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert sum(r["predictedLabel"] is not None for r in rows) == len(rows) - 1
' "$WORK/t4.jsonl"
expect_rc "tune --folds 0 (train/validation split) exits 0" 0 tune \
  --features-from "$WORK/feat.db" --grid 'reg=0.01,0.1' --folds 0 \
  --train-ratio 0.7
check "... prints both combinations" bash -c \
  '[ "$(grep -c "regParam=" "$1")" -ge 2 ]' _ "$WORK/out"

# A class too rare for every fold to see it: its validation rows are skipped
# while tuning, and the saved pipeline still refuses unseen labels.
"$DLP_PYTHON" -c '
import shutil, sqlite3, sys
shutil.copy(sys.argv[1], sys.argv[2])
c = sqlite3.connect(sys.argv[2])
c.execute("update frame set label = ? where rowid = 1", ("rare",))
c.commit()' "$WORK/feat.db" "$WORK/rare.db"
expect_rc "tune with a class of one row, 3 folds, exits 0" 0 tune \
  --features-from "$WORK/rare.db" --grid 'reg=0.01,0.1' --folds 3 \
  --out "$WORK/rare.dlp"
check "... the saved indexer fails on unseen labels again" "$DLP_PYTHON" -c '
import json, sys
m = json.load(open(sys.argv[1]))
idx = [s for s in m["stages"] if s["class"] == "StringIndexerModel"]
assert idx[0]["params"]["handleInvalid"] == "error", idx
assert "rare" in idx[0]["labels"], idx' "$WORK/rare.dlp/pipeline.json"

finish
