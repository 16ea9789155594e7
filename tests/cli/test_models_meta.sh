#!/usr/bin/env bash
# test_models_meta.sh - a Keras classifier saved with its class names and
# preprocessing inside the .h5 (tests/tools/kerassave --classes/--preprocess,
# the writer 'dlp finetune' uses): 'dlp predict --model-file' and '--show'
# print the file's names, the same after 'dlp models import' and in SQL,
# the cache records the file's preprocessing, and a hostile name list is
# refused with a message naming the file.
source "$(dirname "$0")/common.sh"

"$DLP_PYTHON" "$CLI_TESTS/make_images.py" "$WORK/img" >/dev/null
export DLP_MODEL_DIR="$WORK/cache"
M="$WORK/ft.h5"
"$DLP_PYTHON" -c 'for i in range(1000): print("label-%d" % i)' >"$WORK/names.txt"
check "kerassave writes a classifier with 1000 names, torch preprocessing" \
  "$DLP_TOOLS/kerassave" "$M" --zoo MobileNetV2_0.35 --size 32x32 --seed 9 \
  --classes "$WORK/names.txt" --preprocess torch

expect_rc "predict --model-file --show exits 0" 0 \
  predict --model-file "$M" -k 2 --show "$WORK/img" --out "$WORK/p.jsonl" \
  --drop-invalid
check "--show prints the file's class names as top-1" "$DLP_PYTHON" -c '
import json, re, sys
rows = [json.loads(json.loads(l)["predictions"]) for l in open(sys.argv[2])]
shown = re.findall(r"│ (\d+) (label-\d+) +│", open(sys.argv[1]).read())
assert len(shown) == len(rows) > 0, (len(shown), len(rows))
for (c, name), p in zip(shown, rows):
    assert name == "label-" + c == p[0]["description"] and int(c) == p[0]["class"], (c, name, p)
    assert all(x["description"] == "label-%d" % x["class"] for x in p), p' \
  "$WORK/out" "$WORK/p.jsonl"

expect_rc "models import ft.h5 --as ftnet exits 0" 0 models import "$M" --as ftnet
expect_rc "models list exits 0" 0 models list
check "the cache records the file's size and preprocessing" grep -qE \
  "ftnet +│ +32x32 │ torch +│ yes" "$WORK/out"
expect_rc "predict --model ftnet exits 0" 0 \
  predict --model ftnet -k 1 "$WORK/img" --out "$WORK/q.jsonl" --drop-invalid
check "... the same named predictions" "$DLP_PYTHON" -c '
import json, sys
a = [json.loads(l)["predictions"] for l in open(sys.argv[1])]
b = [json.loads(l)["predictions"] for l in open(sys.argv[2])]
assert [json.loads(x)[0] for x in a] == [json.loads(x)[0] for x in b]' \
  "$WORK/p.jsonl" "$WORK/q.jsonl"

expect_rc "read-images for SQL exits 0" 0 read-images "$WORK/img" --out "$WORK/pics.db"
expect_rc "SQL dlp_predict with the file exits 0" 0 sql "$WORK/pics.db" \
  "SELECT dlp_predict('$M', image_origin, 1) AS p FROM frame WHERE image_error IS NULL LIMIT 1"
check "... names the class" grep -qE '"description":"label-[0-9]+"' "$WORK/out"

cp "$M" "$WORK/bad.h5"
"$DLP_PYTHON" -c '
import h5py, sys
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["dlp_class_names"] = b"[\"only\", \"two\"]"' "$WORK/bad.h5"
expect_rc "a file with 2 names for 1000 outputs: exit 1" 1 \
  predict --model-file "$WORK/bad.h5" "$WORK/img" --out "$WORK/x.jsonl"
check "... naming the file and the attribute" bash -c \
  'grep -qF "$2" "$1" && grep -qF "dlp_class_names" "$1" && grep -qF "2 class names" "$1"' \
  _ "$WORK/err" "$WORK/bad.h5"
finish
