#!/usr/bin/env bash
# test_featurize.sh - 'dlp featurize | predict | apply' end to end: a tiny CNN
# with random weights exported to ONNX by PyTorch runs over PNG files made by
# PIL; model_ref.py compares the tables (read with sqlite3) with PyTorch on
# the same images resized by PIL (BILINEAR) and normalised the same way.
# The zoo is checked with --random-weights (documented feature sizes).
source "$(dirname "$0")/common.sh"

REF="$CLI_TESTS/model_ref.py"
IMG="$WORK/images"
export DLP_MODEL_DIR="$WORK/cache" # never the user's cache
"$DLP_PYTHON" "$REF" make-images "$IMG"
"$DLP_PYTHON" "$REF" make-onnx "$WORK/tiny.onnx" 2>/dev/null
ref_ok() { check "$1" "$DLP_PYTHON" "$REF" "${@:2}"; }
TINY=(--model-file "$WORK/tiny.onnx" --input-size 32x32 --preprocess tf)

# --- featurize: oneDNN and reference backends vs PyTorch --------------------
expect_rc "featurize a folder with an ONNX model exits 0" 0 \
  featurize "${TINY[@]}" "$IMG" --out "$WORK/f.db"
ref_ok "features = PyTorch (max rel. error 1e-4), invalid image -> null" \
  check-features "$WORK/f.db" features 32x32 tf
check "summary: 6 rows, 1 invalid, 10-d" \
  contains "$WORK/err" "featurized 6 rows (1 invalid, 0 dropped)"
check "summary names the broken file" contains "$WORK/err" "broken.png"
expect_rc "featurize --reference exits 0" 0 \
  featurize "${TINY[@]}" --reference --batch-size 4 "$IMG" --out "$WORK/fr.db"
ref_ok "reference backend, batches of 4 = PyTorch" \
  check-features "$WORK/fr.db" features 32x32 tf
expect_rc "featurize -b 1 -j 1 exits 0" 0 \
  featurize "${TINY[@]}" -b 1 -j 1 "$IMG" --out "$WORK/f1.db"
ref_ok "batch size 1, one thread = PyTorch" \
  check-features "$WORK/f1.db" features 32x32 tf

# bf16 (AVX512-BF16 here; refused with a clear message on CPUs without
# AVX-512): features within 1e-2 of fp32 PyTorch, the issue's bound.
run featurize "${TINY[@]}" --precision bf16 "$IMG" --out "$WORK/fb.db"
if [ "$rc" = 0 ]; then
  pass "featurize --precision bf16 exits 0"
  ref_ok "bf16 features = PyTorch fp32 within 1e-2" \
    check-features "$WORK/fb.db" features 32x32 tf 1e-2
elif grep -q "AVX-512" "$WORK/err"; then
  pass "featurize --precision bf16 refused on a CPU without AVX-512"
else
  fail "featurize --precision bf16" "$(cat "$WORK/err")"
fi
expect_rc "bf16 with --reference is a usage error of the library (exit 1)" 1 \
  featurize "${TINY[@]}" --precision bf16 --reference "$IMG" --out "$WORK/fbr.db"
check "... saying bf16 needs oneDNN" contains "$WORK/err" "needs the oneDNN"

# A table as input (read-images first), output as .npy and .jsonl.
expect_rc "read-images -> table" 0 read-images "$IMG" -r --out "$WORK/in.db"
expect_rc "featurize a table exits 0" 0 \
  featurize "${TINY[@]}" "$WORK/in.db" --out "$WORK/ft.db"
ref_ok "featurize of a table = PyTorch" \
  check-features "$WORK/ft.db" features 32x32 tf
expect_rc "featurize --drop-invalid -> .jsonl exits 0" 0 \
  featurize "${TINY[@]}" --drop-invalid "$IMG" --out "$WORK/f.jsonl"
check "--drop-invalid: 6 rows, the broken file gone" bash -c \
  '[ "$(wc -l <"$1")" -eq 6 ] && ! grep -q broken "$1"' _ "$WORK/f.jsonl"
expect_rc "featurize --drop-invalid -> .npy exits 0" 0 \
  featurize "${TINY[@]}" --drop-invalid "$IMG" --out "$WORK/f.npy"
check ".npy holds 6 x 10 float32" "$DLP_PYTHON" -c \
  'import numpy,sys; a=numpy.load(sys.argv[1]); assert a.shape==(6,10) and a.dtype=="float32", a.shape' \
  "$WORK/f.npy"

# --- predict ---------------------------------------------------------------
expect_rc "predict -k 3 --show exits 0" 0 \
  predict "${TINY[@]}" -k 3 --show "$IMG" --out "$WORK/p.db"
ref_ok "top-3 classes and probabilities = torch.topk(softmax)" \
  check-predict "$WORK/p.db" predictions 32x32 tf 3
check "--show prints a table with the paths" contains "$WORK/out" "img0.png"
check "--show marks the invalid image" contains "$WORK/out" "(invalid:"

# --- apply: images, and a vector column (KerasTransformer) ------------------
expect_rc "apply on images exits 0" 0 \
  apply --model-file "$WORK/tiny.onnx" --input-size 32x32 --preprocess tf \
  "$IMG" --out "$WORK/a.db"
ref_ok "apply output = PyTorch" check-features "$WORK/a.db" output 32x32 tf
"$DLP_PYTHON" "$REF" make-vec-onnx "$WORK/vec.onnx" "$WORK/vec.jsonl" 2>/dev/null
expect_rc "apply on a vector column exits 0" 0 \
  apply --model-file "$WORK/vec.onnx" --input-col x "$WORK/vec.jsonl" \
  --out "$WORK/v.db"
ref_ok "vector apply = PyTorch, null vector -> null" \
  check-vec "$WORK/v.db" "$WORK/vec.jsonl"
expect_rc "apply of an image model to a vector column fails" 1 \
  apply --model-file "$WORK/tiny.onnx" --input-col x "$WORK/vec.jsonl" \
  --out "$WORK/bad.db"
check "... saying why" contains "$WORK/err" "takes images"

# --- the zoo with random weights --------------------------------------------
if [ "${DLP_SANITIZED:-0}" = 1 ]; then SIZE=(--input-size 96x96); else SIZE=(); fi
expect_rc "featurize --model MobileNetV2 --random-weights exits 0" 0 \
  featurize --model MobileNetV2 --random-weights "${SIZE[@]}" "$IMG" \
  --out "$WORK/z.npy" --drop-invalid
check "MobileNetV2 features are 1280-d (6 rows)" "$DLP_PYTHON" -c \
  'import numpy,sys; a=numpy.load(sys.argv[1]); assert a.shape==(6,1280), a.shape; assert numpy.isfinite(a).all()' \
  "$WORK/z.npy"
check "the summary says the weights are random" contains "$WORK/err" \
  "random weights"
if [ "${DLP_SANITIZED:-0}" != 1 ]; then
  expect_rc "featurize --model InceptionV3 --random-weights exits 0" 0 \
    featurize --model inceptionv3 --random-weights "$IMG/cats" \
    --out "$WORK/i.npy" --drop-invalid
  check "InceptionV3 features are 2048-d" "$DLP_PYTHON" -c \
    'import numpy,sys; a=numpy.load(sys.argv[1]); assert a.shape==(3,2048), a.shape' \
    "$WORK/i.npy"
fi
expect_rc "predict with the zoo's MobileNetV2 (random) exits 0" 0 \
  predict --model MobileNetV2 --random-weights "${SIZE[@]}" -k 2 "$IMG/cats" \
  --out "$WORK/zp.jsonl"
check "zoo predictions carry ImageNet descriptions and sum below 1" \
  "$DLP_PYTHON" -c '
import json,sys
for line in open(sys.argv[1]):
    p = json.loads(json.loads(line)["predictions"])
    assert len(p) == 2 and all(isinstance(x["description"], str) for x in p), p
    assert p[0]["probability"] >= p[1]["probability"] > 0, p
    assert 0 <= p[0]["class"] < 1000' "$WORK/zp.jsonl"

# --- errors ---------------------------------------------------------------
expect_rc "zoo model without cached weights: exit 1" 1 \
  featurize --model InceptionV3 "$IMG" --out "$WORK/x.db"
check "... naming the weights file" contains "$WORK/err" \
  "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
check "... and how to import or fetch it" bash -c \
  'grep -qF "dlp models import FILE" "$1" && grep -qF "dlp models fetch InceptionV3" "$1" && grep -qF "$2" "$1"' \
  _ "$WORK/err" "$DLP_MODEL_DIR"
expect_rc "unknown model: exit 1" 1 featurize --model NoSuchNet "$IMG" --out "$WORK/x.db"
check "... saying what exists" contains "$WORK/err" "MobileNetV2"
expect_rc "--model and --model-file together: exit 2" 2 \
  featurize --model VGG16 --model-file "$WORK/tiny.onnx" "$IMG" --out "$WORK/x.db"
expect_rc "bad --input-size: exit 2" 2 \
  featurize "${TINY[@]/32x32/32by32}" "$IMG" --out "$WORK/x.db"
expect_rc "bad --precision: exit 2" 2 \
  featurize "${TINY[@]}" --precision fp64 "$IMG" --out "$WORK/x.db"
expect_rc "--layer that does not exist: exit 1" 1 \
  featurize "${TINY[@]}" --layer no_such_layer "$IMG" --out "$WORK/x.db"
check "... naming the layer" contains "$WORK/err" "no_such_layer"
printf 'not a model' >"$WORK/junk.onnx"
expect_rc "a model file that is not one: exit 1" 1 \
  featurize --model-file "$WORK/junk.onnx" --input-size 8x8 "$IMG" --out "$WORK/x.db"
expect_rc "existing output without --overwrite: exit 1" 1 \
  featurize "${TINY[@]}" "$IMG" --out "$WORK/f.db"
check "no output left behind by failures" test ! -e "$WORK/x.db"
finish
