#!/usr/bin/env bash
# test_finetune_grid.sh - 'dlp finetune --grid' (one model per parameter
# map, the best kept) and the stratified validation split. Python (h5py,
# json) checks, independently of dlp: that the grid's best model has the
# weights of a plain 'dlp finetune' with the winning parameters, that the
# reported metrics are the plain runs' and do not change with the
# parallelism, that the ranking is the one the reported metrics imply, and
# that the validation images per class follow the documented rule computed
# from the folder listing.
source "$(dirname "$0")/common.sh"

REF=("$DLP_PYTHON" "$CLI_TESTS/finetune_ref.py")
IMG="$WORK/imgs"
export DLP_MODEL_DIR="$WORK/cache" # never the user's cache
N=6
EPOCHS=2
if [ "${DLP_SANITIZED:-0}" = 1 ]; then # ASan: fewer images, one epoch
  N=4
  EPOCHS=1
fi
"${REF[@]}" make "$IMG" "$N"
NET=(--model MobileNetV2 --random-weights --input-size 32x32)
TRAIN=(--batch-size 4 --epochs "$EPOCHS" --seed 7)
GRID='lr=1e-3,1e-2;head=dense:16|none'
PY=("$DLP_PYTHON" -c)

# --- usage errors ---------------------------------------------------------------
usage_error() {
  local name=$1 needle=$2
  shift 2
  expect_rc "$name exits 2" 2 finetune --images "$IMG" "${NET[@]}" \
    --out "$WORK/u.h5" "$@"
  check "$name: message names $needle" contains "$WORK/err" "$needle"
}
usage_error "an unknown key" "unknown key 'rate'" --grid 'rate=1,2'
usage_error "a bad lr" "bad value 'abc' for lr" --grid 'lr=1e-3,abc'
usage_error "an lr out of range" "bad value '1000' for lr" --grid 'lr=1000'
usage_error "a bad batch" "bad value '0' for batch" --grid 'batch=0,4'
usage_error "a bad optimizer" "bad value 'rmsprop' for optimizer" \
  --grid 'optimizer=adam,rmsprop'
usage_error "a bad head" "bad value 'dense:x' for head" \
  --grid 'head=dense:8|dense:x'
usage_error "a key given twice" "key 'lr' is given twice" --grid 'lr=1;lr=2'
usage_error "an empty part" "part 2 is empty" --grid 'lr=1e-3;;batch=4'
usage_error "a part without '='" "'lr' is not key=value" --grid 'lr'
usage_error "an empty value" "bad value '' for lr" --grid 'lr=1e-3,'
usage_error "--parallelism without --grid" "'--parallelism' goes with" \
  --parallelism 2
usage_error "--grid-out without --grid" "'--grid-out' goes with" \
  --grid-out "$WORK/x"
usage_error "a bad --metric" "--metric" --grid 'lr=1e-3' --metric f1
usage_error "--grid without validation" "--val-split" --grid 'lr=1e-3' \
  --val-split 0
usage_error "--grid with checkpoints" "--checkpoint-dir" --grid 'lr=1e-3' \
  --checkpoint-dir "$WORK/ck"
check "the usage errors wrote nothing" bash -c '! ls "$1"/u.* 2>/dev/null' \
  _ "$WORK"
expect_rc "--help lists --grid" 0 finetune --help
check "--help has --grid and a grid example" bash -c \
  'grep -q -- "--grid SPEC" "$1" && grep -q "finetune .*--grid" "$1"' _ \
  "$WORK/out"
check "docs/cli.md documents --grid" grep -q -- "--grid" \
  "$DLP_SRC/docs/cli.md"
check "docs/ml.md documents dlp_finetune_grid" grep -q "dlp_finetune_grid" \
  "$DLP_SRC/docs/ml.md"

# --- the grid at two parallelisms (one kernel thread per model each time) -------
expect_rc "the grid, 2 at a time" 0 finetune --images "$IMG" "${NET[@]}" \
  "${TRAIN[@]}" --grid "$GRID" --threads 2 --parallelism 2 --json \
  --grid-out "$WORK/runs2" --out "$WORK/best2.h5" \
  --val-predictions "$WORK/best2.csv"
cp "$WORK/out" "$WORK/g2.json"
cp "$WORK/err" "$WORK/g2.err"
expect_rc "the grid, one at a time" 0 finetune --images "$IMG" "${NET[@]}" \
  "${TRAIN[@]}" --grid "$GRID" --threads 1 --parallelism 1 --json \
  --grid-out "$WORK/runs1" --out "$WORK/best1.h5"
cp "$WORK/out" "$WORK/g1.json"
check "the table on stderr lists the 4 combinations" bash -c \
  '[ "$(grep -c "lr=1e-[23] head=" "$1")" -ge 4 ] && grep -q "val_loss" "$1"' \
  _ "$WORK/g2.err"
check "epoch lines are prefixed by their combination, whole" bash -c \
  'n=$(grep -c "^\[[1-4]/4 lr=1e-[23] head=[a-z:0-9]*\] epoch *[0-9]/$2  train_loss [0-9.]*  train_acc [0-9.]*  val_loss [0-9.]*  val_acc [0-9.]*  lr [0-9.e-]*  [0-9.]*s$" "$1")
   [ "$n" = $((4 * $2)) ]' _ "$WORK/g2.err" "$EPOCHS"
check "every model is saved under a name that shows its params" bash -c \
  'for f in 01_lr=1e-3_head=dense_16 02_lr=1e-3_head=none \
            03_lr=1e-2_head=dense_16 04_lr=1e-2_head=none; do
     [ -f "$1/$f.h5" ] && [ -f "$1/$f.labels.json" ] || exit 1; done' _ \
  "$WORK/runs2"

# compare.py: helpers on the JSON and the .h5 files.
cat >"$WORK/grid.py" <<'EOF'
import json, math, sys
import h5py, numpy as np

def load(p):
    with open(p) as f:
        return json.load(f)

def weights(path):
    out = {}
    with h5py.File(path, "r") as f:
        g = f["model_weights"]
        g.visititems(lambda n, o: out.__setitem__(n, np.array(o))
                     if isinstance(o, h5py.Dataset) else None)
    return out

def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys(), (sorted(wa), sorted(wb))
    for k in wa:
        assert wa[k].tobytes() == wb[k].tobytes(), "%s differs in %s" % (k, b)

def ranking(g, metric):
    """The best index the reported metrics imply (ties: the earlier)."""
    best = None
    for c in g["combinations"]:
        if c["status"] != "ok":
            continue
        m = c[metric]
        if best is None or (m > best[1] if metric == "val_acc" else m < best[1]):
            best = (c["index"], m)
    return None if best is None else best[0]

cmd = sys.argv[1]
if cmd == "same":  # two runs of the grid: identical numbers and models
    a, b = load(sys.argv[2]), load(sys.argv[3])
    strip = lambda g: [{k: v for k, v in c.items() if k not in ("seconds", "path")}
                       for c in g["combinations"]]
    assert strip(a) == strip(b), "the metrics differ"
    assert a["best"] == b["best"]
    for ca, cb in zip(a["combinations"], b["combinations"]):
        same_weights(ca["path"], cb["path"])
elif cmd == "rank":  # the best is what the metrics say; metric = saved epoch's
    g, metric = load(sys.argv[2]), sys.argv[3]
    assert g["metric"] == metric
    for c in g["combinations"]:
        if c["status"] != "ok":
            continue
        saved = c["epochs"][c["saved_epoch"] - 1]
        assert c["val_loss"] == saved["val_loss"] and c["val_acc"] == saved["val_acc"]
        assert c["metric"] == c[metric]
        # restore-best: the saved epoch has the lowest val loss (first of ties)
        losses = [e["val_loss"] for e in c["epochs"]]
        assert c["saved_epoch"] == 1 + losses.index(min(losses)), c
    assert g["best"] == ranking(g, metric), (g["best"], ranking(g, metric))
elif cmd == "pick":  # "index lr head" of the best, or of the first other
    g, which = load(sys.argv[2]), sys.argv[3]
    i = g["best"] if which == "best" else (1 if g["best"] == 0 else 0)
    p = g["combinations"][i]["params"]
    print(i, p["lr"], p["head"])
elif cmd == "line":  # the line a plain run prints for combination i
    g, i = load(sys.argv[2]), int(sys.argv[3])
    c = g["combinations"][i]
    print("best epoch %d: val_loss %.4f val_acc %.4f"
          % (c["saved_epoch"], c["val_loss"], c["val_acc"]))
elif cmd == "path":
    print(load(sys.argv[2])["combinations"][int(sys.argv[3])]["path"])
elif cmd == "weights":
    same_weights(sys.argv[2], sys.argv[3])
elif cmd == "failed":  # index i failed with text, the others are ok
    g, i, text = load(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    for c in g["combinations"]:
        bad = c["index"] == i
        assert (c["status"] == "failed") == bad, c
        assert (text in c["error"]) if bad else c["error"] is None, c
        assert (c["metric"] is None) == bad
    assert g["best"] == ranking(g, "val_loss") and g["best"] != i
elif cmd == "quota":  # per-class validation counts vs the folder listing
    import csv, os
    root, frac, csvp, err = sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
    want = {}
    for c in sorted(os.listdir(root)):
        n = len(os.listdir(os.path.join(root, c)))
        k = 0 if n < 2 or frac <= 0 else min(n - 1, max(1, math.floor(frac * n + 0.5)))
        want[c] = k
    got = {c: 0 for c in want}
    with open(csvp) as f:
        for row in csv.DictReader(f):
            got[row["label"]] += 1
    assert got == want, (got, want)
    assert all(got[c] >= 1 for c in want
               if len(os.listdir(os.path.join(root, c))) >= 2)
    text = open(err).read()
    per = ", ".join("%s %d" % (c, want[c]) for c in want)
    assert "(%s)" % per in text, (per, text)
else:
    sys.exit("unknown command " + cmd)
EOF
G=("$DLP_PYTHON" "$WORK/grid.py")

check "parallelism 1 and 2 give the same metrics and models" "${G[@]}" same \
  "$WORK/g1.json" "$WORK/g2.json"
check "the best is the lowest val_loss of the saved epochs" "${G[@]}" rank \
  "$WORK/g2.json" val_loss
read -r best_i best_lr best_head < <("${G[@]}" pick "$WORK/g2.json" best)
check "the best model saved to --out is the best combination's" "${G[@]}" \
  weights "$WORK/best2.h5" "$("${G[@]}" path "$WORK/g2.json" "$best_i")"

# Plain runs with a combination's parameters give the same model and numbers:
# the winner's, and another's.
[ "$best_head" = none ] && best_head=""
expect_rc "a plain run with the winning params ($best_lr ${best_head:-none})" \
  0 finetune --images "$IMG" "${NET[@]}" "${TRAIN[@]}" --lr "$best_lr" \
  --head "$best_head" --threads 1 --out "$WORK/plain.h5" \
  --val-predictions "$WORK/plain.csv"
check "the plain run's model has the grid's best weights" "${G[@]}" weights \
  "$WORK/plain.h5" "$WORK/best2.h5"
check "and the same validation probabilities" cmp "$WORK/plain.csv" \
  "$WORK/best2.csv"
check "and the val metrics the grid reported" contains "$WORK/out" \
  "$("${G[@]}" line "$WORK/g2.json" "$best_i")"
read -r o_i o_lr o_head < <("${G[@]}" pick "$WORK/g2.json" other)
[ "$o_head" = none ] && o_head=""
expect_rc "a plain run with another combination's params" 0 finetune \
  --images "$IMG" "${NET[@]}" "${TRAIN[@]}" --lr "$o_lr" --head "$o_head" \
  --threads 1 --out "$WORK/other.h5"
check "it has that combination's weights" "${G[@]}" weights \
  "$WORK/other.h5" "$("${G[@]}" path "$WORK/g2.json" "$o_i")"
check "and the val metrics the grid reported for it" contains "$WORK/out" \
  "$("${G[@]}" line "$WORK/g2.json" "$o_i")"

# --metric val_acc ranks by accuracy (ties: the earlier combination).
expect_rc "the grid by val_acc" 0 finetune --images "$IMG" "${NET[@]}" \
  "${TRAIN[@]}" --grid "$GRID" --metric val_acc --json --out "$WORK/acc.h5"
cp "$WORK/out" "$WORK/acc.json"
check "the best by val_acc is what the metrics imply" "${G[@]}" rank \
  "$WORK/acc.json" val_acc

# A combination that fails (the loss overflows: plain SGD at lr 100 through
# two linear layers, so no ReLU can die and stop it) is reported; the others
# go on.
expect_rc "a grid with a diverging combination" 0 finetune --images "$IMG" \
  "${NET[@]}" --batch-size 4 --epochs 2 --seed 7 --schedule constant \
  --head dense:64:linear,dense:64:linear --grid 'lr=1e-3,100;optimizer=sgd' \
  --json --out "$WORK/nan.h5"
cp "$WORK/out" "$WORK/nan.json"
check "it is reported as failed, the best is another" "${G[@]}" failed \
  "$WORK/nan.json" 1 "loss is not finite"
check "the table says it failed" grep -q "#2 failed: .*not finite" \
  "$WORK/err"
expect_rc "a grid whose combinations all fail" 1 finetune --images "$IMG" \
  "${NET[@]}" "${TRAIN[@]}" --grid 'freeze-until=nope,zzz' \
  --out "$WORK/none.h5"
check "the error gives every reason" bash -c \
  'grep -q "all 2 maps failed: 1: .*no layer .nope.*; 2: .*no layer .zzz." "$1"' \
  _ "$WORK/err"
check "and nothing was saved" test ! -e "$WORK/none.h5"
expect_rc "an existing --out without --overwrite" 1 finetune --images \
  "$IMG" "${NET[@]}" "${TRAIN[@]}" --grid "lr=1e-3" --out "$WORK/best2.h5"
check "it says so" contains "$WORK/err" "exists"

# --- the stratified validation split -------------------------------------------
S="$WORK/strat"
mkdir -p "$S/red" "$S/green" "$S/blue" "$S/one"
cp "$IMG"/red/red_0[0-5].png "$S/red/"
cp "$IMG"/green/green_0[0-2].png "$S/green/"
cp "$IMG"/blue/blue_0[0-1].png "$S/blue/"
cp "$IMG"/red/red_00.png "$S/one/"
for split in 0.25 0.5 0.8; do
  expect_rc "a split of $split" 0 finetune --images "$S" "${NET[@]}" \
    --batch-size 4 --epochs 1 --val-split "$split" \
    --out "$WORK/s$split.h5" --val-predictions "$WORK/s$split.csv"
  check "validation per class at $split is the documented rule" "${G[@]}" \
    quota "$S" "$split" "$WORK/s$split.csv" "$WORK/err"
done
expect_rc "--val-split 0 holds out nothing" 0 finetune --images "$S" \
  "${NET[@]}" --batch-size 4 --epochs 1 --val-split 0 --out "$WORK/s0.h5"
n_strat=$(find "$S" -name '*.png' | wc -l)
check "it says 0 validation images" contains "$WORK/err" \
  "$n_strat training and 0 validation images;"

finish
