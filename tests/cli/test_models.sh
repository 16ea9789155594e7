#!/usr/bin/env bash
# test_models.sh - 'dlp models list|info|import|fetch': the cache in a fresh
# $DLP_MODEL_DIR; hashes checked with coreutils' sha256sum; fetch served from
# a loopback python3 http.server started here (and from file:// URLs); no
# test touches the internet.
source "$(dirname "$0")/common.sh"

REF="$CLI_TESTS/model_ref.py"
export DLP_MODEL_DIR="$WORK/cache"
"$DLP_PYTHON" "$REF" make-onnx "$WORK/tiny.onnx" 2>/dev/null
"$DLP_PYTHON" "$REF" make-images "$WORK/images"
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- list / info -------------------------------------------------------------
expect_rc "models list on an empty cache exits 0" 0 models list
for m in InceptionV3 Xception ResNet50 VGG16 VGG19 MobileNetV2 \
  MobileNetV2_0.35 MobileNetV2_0.5 MobileNetV2_0.75 MobileNetV2_1.3 \
  MobileNetV2_1.4; do
  check "list shows $m" grep -qE "│ ${m//./\\.} +│" "$WORK/out"
done
check "list: MobileNetV2_0.35 with Keras' 0.35 weights file" grep -qE \
  "MobileNetV2_0\.35 +│ +224x224 │ tf +│ no .*kernels_0\.35_224\.h5" "$WORK/out"
check "list: InceptionV3 299x299 tf, not cached" grep -qE \
  "InceptionV3 +│ +299x299 │ tf +│ no " "$WORK/out"
check "list: ResNet50 224x224 caffe" grep -qE "ResNet50 +│ +224x224 │ caffe " \
  "$WORK/out"
check "list names the cache folder" contains "$WORK/out" "model cache: $DLP_MODEL_DIR"
expect_rc "models info MobileNetV2 exits 0" 0 models info mobilenetv2
# Keras' documented total parameters of MobileNetV2 (keras.io/api/applications).
check "info: 3538984 parameters (as Keras documents)" \
  contains "$WORK/out" "parameters:     3538984"
check "info: feature layer 1280-d" grep -qE "feature layer: .*\(1280-d\)" "$WORK/out"
check "info: input 224x224x3, tf" bash -c \
  'grep -qF "224x224x3" "$1" && grep -qF "preprocessing:  tf" "$1"' _ "$WORK/out"
check "info: the weights file and its URL" bash -c \
  'grep -qF "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5" "$1" && grep -qF "https://storage.googleapis.com/" "$1"' \
  _ "$WORK/out"
# MobileNetV2's widths: tf.keras' model.summary() totals for
# MobileNetV2(alpha=0.5) and (alpha=1.4); Conv_1 widens to 1792 above 1.
expect_rc "models info MobileNetV2_0.5 exits 0" 0 models info mobilenetv2_0.5
check "info 0.5: 1987224 parameters, 1280-d features" bash -c \
  'grep -qF "parameters:     1987224" "$1" && grep -qE "feature layer: .*\(1280-d\)" "$1"' \
  _ "$WORK/out"
check "info 0.5: Keras' file name and address" contains "$WORK/out" \
  "keras-applications/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224.h5"
expect_rc "models info MobileNetV2_1.4 exits 0" 0 models info MobileNetV2_1.4
check "info 1.4: 6156712 parameters, 1792-d features" bash -c \
  'grep -qF "parameters:     6156712" "$1" && grep -qE "feature layer: .*\(1792-d\)" "$1"' \
  _ "$WORK/out"
expect_rc "info of an unknown model: exit 1" 1 models info NoSuchNet
expect_rc "unknown action: exit 2" 2 models frobnicate
expect_rc "import without a file: exit 2" 2 models import

# --- import --------------------------------------------------------------------
expect_rc "import tiny.onnx --as tiny exits 0" 0 \
  models import "$WORK/tiny.onnx" --as tiny
check "the file is in the cache, byte for byte" \
  cmp -s "$WORK/tiny.onnx" "$DLP_MODEL_DIR/tiny.onnx"
expect_rc "list after import" 0 models list
check "list: tiny is cached with its SHA-256 (as sha256sum)" grep -qE \
  "tiny +│ +32x32 │ none +│ yes +│ $(sha "$WORK/tiny.onnx" | cut -c1-12) " "$WORK/out"
check "index.json records the full SHA-256" \
  contains "$DLP_MODEL_DIR/index.json" "$(sha "$WORK/tiny.onnx")"
expect_rc "featurize --model tiny (from the cache) exits 0" 0 \
  featurize --model tiny --preprocess tf "$WORK/images" --out "$WORK/f.db"
check "cached model = PyTorch" "$DLP_PYTHON" "$REF" check-features \
  "$WORK/f.db" features 32x32 tf
expect_rc "info tiny exits 0" 0 models info tiny
check "info tiny: cached, 10 classes" bash -c \
  'grep -qF "cached:         yes" "$1" && grep -qF "classes:        10" "$1"' \
  _ "$WORK/out"
cp "$WORK/tiny.onnx" "$WORK/other_name.onnx"
expect_rc "import without --as takes the file's name" 0 \
  models import "$WORK/other_name.onnx"
check "... other_name is listed" bash -c \
  '"$1" models list | grep -q "other_name"' _ "$DLP_BIN"
expect_rc "import a missing file: exit 1" 1 models import "$WORK/nope.onnx"
printf 'garbage' >"$WORK/garbage.onnx"
expect_rc "import a file that is no model: exit 1" 1 \
  models import "$WORK/garbage.onnx" --as garbage
check "... and it is not listed" bash -c \
  '! "$1" models list | grep -q garbage' _ "$DLP_BIN"
expect_rc "import an ONNX file as a zoo architecture: exit 1" 1 \
  models import "$WORK/tiny.onnx" --as VGG16
expect_rc "import under a bad name: exit 1" 1 \
  models import "$WORK/tiny.onnx" --as "../evil"
# A cached file that changed is refused (SHA-256 check at open).
printf 'x' >>"$DLP_MODEL_DIR/other_name.onnx"
expect_rc "a cached file that changed: exit 1" 1 \
  featurize --model other_name "$WORK/images" --out "$WORK/x.db"
check "... saying it changed" contains "$WORK/err" "has changed"

# A MobileNetV2_0.5 weights file under Keras' name (written by the Keras
# writer from seeded random weights) imports as that width, and the cached
# model computes what the same seed computes without the file.
W05="$WORK/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224.h5"
if [ "${DLP_SANITIZED:-0}" = 1 ]; then SIZE=(--input-size 96x96); else SIZE=(); fi
check "kerassave writes MobileNetV2_0.5 weights" \
  "$DLP_TOOLS/kerassave" "$W05" --zoo MobileNetV2_0.5 --seed 5 --weights-only
expect_rc "import the 0.5 weights file exits 0" 0 models import "$W05"
check "... recognised as MobileNetV2_0.5 by its Keras name" contains \
  "$WORK/err" "as MobileNetV2_0.5 into"
expect_rc "featurize --model MobileNetV2_0.5 (cached weights) exits 0" 0 \
  featurize --model MobileNetV2_0.5 "${SIZE[@]}" "$WORK/images" \
  --out "$WORK/w05.npy" --drop-invalid
expect_rc "featurize --model MobileNetV2_0.5 --random-weights --seed 5 exits 0" 0 \
  featurize --model MobileNetV2_0.5 --random-weights --seed 5 "${SIZE[@]}" \
  "$WORK/images" --out "$WORK/r05.npy" --drop-invalid
check "cached 0.5 weights give the seed's 1280-d features" "$DLP_PYTHON" -c '
import numpy as np, sys
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.shape == b.shape and a.shape[1] == 1280, (a.shape, b.shape)
assert np.isfinite(a).all() and np.abs(a).max() > 0
assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max(), np.abs(a - b).max()' \
  "$WORK/w05.npy" "$WORK/r05.npy"

# --- fetch -----------------------------------------------------------------------
mkdir -p "$WORK/srv"
cp "$WORK/tiny.onnx" "$WORK/srv/served.onnx"
PORT=$("$DLP_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$WORK/srv" && exec "$DLP_PYTHON" -m http.server "$PORT" --bind 127.0.0.1 \
  >/dev/null 2>&1) &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do
  "$DLP_PYTHON" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$PORT" 2>/dev/null && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT"
expect_rc "fetch web --url http://127.0.0.1/... exits 0" 0 \
  models fetch web --url "$URL/served.onnx"
check "fetched file is cached byte for byte" \
  cmp -s "$WORK/tiny.onnx" "$DLP_MODEL_DIR/web.onnx"
expect_rc "fetch with the right #sha256 exits 0" 0 \
  models fetch pinned --url "$URL/served.onnx#sha256=$(sha "$WORK/tiny.onnx")"
expect_rc "fetch file:// exits 0" 0 \
  models fetch local --url "file://$WORK/srv/served.onnx"
check "file:// fetch is cached" cmp -s "$WORK/tiny.onnx" "$DLP_MODEL_DIR/local.onnx"
ls -A "$DLP_MODEL_DIR" | sort >"$WORK/before.txt"
expect_rc "fetch a 404: exit 1" 1 models fetch gone --url "$URL/missing.onnx"
check "... saying HTTP 404" contains "$WORK/err" "HTTP 404"
expect_rc "fetch with a wrong #sha256: exit 1" 1 \
  models fetch badhash --url "$URL/served.onnx#sha256=0000"
check "... saying the hash differs" contains "$WORK/err" "nothing was added"
expect_rc "fetch a zoo model from a file that is not it: exit 1" 1 \
  models fetch MobileNetV2 --url "$URL/served.onnx"
# (the Keras MD5 when the zoo records one, else the weights do not load)
check "... saying the file cannot be used" grep -qE \
  "md5|cannot be used" "$WORK/err"
expect_rc "fetch file:// of a missing file: exit 1" 1 \
  models fetch nofile --url "file://$WORK/srv/none.onnx"
ls -A "$DLP_MODEL_DIR" | sort >"$WORK/after.txt"
check "failed fetches leave nothing in the cache" \
  cmp -s "$WORK/before.txt" "$WORK/after.txt"
expect_rc "fetch of a non-zoo name without --url: exit 1" 1 models fetch web2
finish
