#!/usr/bin/env bash
# test_sql.sh - the dlp SQLite extension, from the stock sqlite3 shell
# (.load libdlpsql) and from 'dlp sql': a folder catalogue checked against
# os.walk/PIL, features and predictions equal to 'dlp featurize/predict' on
# the same images (exactly) and to PyTorch (model_ref.py), dlp_knn and
# cosine/L2 against numpy brute force, NULLs, and malformed arguments that
# must give SQL errors while the shell keeps running.
source "$(dirname "$0")/common.sh"

REF="$CLI_TESTS/model_ref.py"
SREF="$CLI_TESTS/sql_ref.py"
EXT=${DLP_SQL_EXT:-$(dirname "$DLP_BIN")/libdlpsql}
IMG="$WORK/images"
export DLP_MODEL_DIR="$WORK/cache" # never the user's cache
cd "$WORK"
"$DLP_PYTHON" "$REF" make-images images
"$DLP_PYTHON" "$REF" make-onnx tiny.onnx 2>/dev/null
OPTS='{"input_size":"32x32","preprocess":"tf"}'
OPTS_NULL='{"input_size":"32x32","preprocess":"tf","on_error":"null"}'
ref_ok() { check "$1" "$DLP_PYTHON" "${@:2}"; }

# The stock shell. An ASan-instrumented module needs the ASan runtime
# loaded first in the (uninstrumented) shell; leaks are checked by the
# instrumented 'dlp sql' runs below, not in the shell's own allocations.
SHELL_ENV=()
if [ "${DLP_SANITIZED:-0}" = 1 ]; then
  SHELL_ENV=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so)"
             "ASAN_OPTIONS=detect_leaks=0")
fi
# shell DB SQL...: runs sqlite3 with the extension loaded; stdout in
# $WORK/out, stderr in $WORK/err, status in $rc.
shell() {
  local db=$1
  shift
  set +e
  "${SHELL_ENV[@]}" sqlite3 -csv -cmd ".load $EXT" "$db" "$@" \
    >"$WORK/out" 2>"$WORK/err"
  rc=$?
  set -e
}
expect_shell() {
  local name=$1 want=$2
  shift 2
  shell "$@"
  if [ "$rc" -eq "$want" ]; then pass "$name"; else
    fail "$name (exit $rc, expected $want)" "$(cat "$WORK/err" "$WORK/out")"
  fi
}

if ! command -v sqlite3 >/dev/null; then
  fail "the sqlite3 shell is installed (Debian package sqlite3)"
  finish
fi

# --- catalogue -------------------------------------------------------------
expect_shell "CREATE TABLE pics AS SELECT * FROM dlp_images(dir)" 0 pics.db \
  "CREATE TABLE pics AS SELECT * FROM dlp_images('images')"
ref_ok "catalogue = os.walk + os.stat + PIL (labels, sizes, mtimes, errors)" \
  "$SREF" check-catalog pics.db pics images
expect_shell "dlp_images(dir, 0): top level only" 0 :memory: \
  "SELECT count(*) FROM dlp_images('images', 0)"
check "... finds no files above the sub-folders" grep -qx 0 "$WORK/out"

# --- featurize / predict vs the CLI and PyTorch ----------------------------
expect_rc "dlp featurize (the CLI) on the same folder" 0 featurize \
  --model-file tiny.onnx --input-size 32x32 --preprocess tf images --out cli_f.db
expect_rc "dlp predict -k 3 (the CLI) on the same folder" 0 predict \
  --model-file tiny.onnx --input-size 32x32 --preprocess tf -k 3 images \
  --out cli_p.db
expect_shell "scalar dlp_featurize into a table (frame schema)" 0 s_f.db \
  "ATTACH 'pics.db' AS p; CREATE TABLE frame AS SELECT path AS image_origin,
   error AS image_error,
   dlp_featurize('tiny.onnx', path, '$OPTS_NULL') AS features FROM p.pics"
ref_ok "scalar dlp_featurize = PyTorch (1e-4), broken image -> NULL" \
  "$REF" check-features s_f.db features 32x32 tf
ref_ok "scalar dlp_featurize BLOBs = dlp featurize BLOBs, exactly" \
  "$SREF" same s_f.db "SELECT image_origin, features FROM frame" \
  cli_f.db "SELECT image_origin, features FROM frame"
expect_shell "batched dlp_featurize_rows into a table" 0 r_f.db \
  "ATTACH 'pics.db' AS p; CREATE TABLE frame AS SELECT image AS image_origin,
   error AS image_error, features FROM dlp_featurize_rows('tiny.onnx',
   'SELECT path FROM p.pics', '$OPTS')"
ref_ok "dlp_featurize_rows = PyTorch, broken image -> NULL + error" \
  "$REF" check-features r_f.db features 32x32 tf
ref_ok "dlp_featurize_rows BLOBs = dlp featurize BLOBs, exactly" \
  "$SREF" same r_f.db "SELECT image_origin, features FROM frame" \
  cli_f.db "SELECT image_origin, features FROM frame"
expect_shell "dlp_featurize on dlp_image() BLOBs" 0 b_f.db \
  "ATTACH 'pics.db' AS p; CREATE TABLE frame AS SELECT path AS image_origin,
   dlp_featurize('tiny.onnx', dlp_image(path), '$OPTS') AS features
   FROM p.pics WHERE error IS NULL"
ref_ok "features of encoded BLOBs = features of paths, exactly" \
  "$SREF" same b_f.db "SELECT image_origin, features FROM frame" \
  cli_f.db "SELECT image_origin, features FROM frame WHERE features NOT NULL"
expect_shell "scalar dlp_predict(model, image, 3, options)" 0 s_p.db \
  "ATTACH 'pics.db' AS p; CREATE TABLE frame AS SELECT path AS image_origin,
   error AS image_error,
   dlp_predict('tiny.onnx', path, 3, '$OPTS_NULL') AS predictions FROM p.pics"
ref_ok "dlp_predict = torch.topk(softmax)" \
  "$REF" check-predict s_p.db predictions 32x32 tf 3
ref_ok "dlp_predict JSON = dlp predict JSON, exactly" \
  "$SREF" same s_p.db "SELECT image_origin, predictions FROM frame" \
  cli_p.db "SELECT image_origin, predictions FROM frame"
expect_shell "dlp_predict_rows with k in the options" 0 r_p.db \
  "CREATE TABLE frame AS SELECT image AS image_origin, error AS image_error,
   predictions FROM dlp_predict_rows('tiny.onnx', 'SELECT path FROM
   dlp_images(''images'')', '{\"input_size\":\"32x32\",\"preprocess\":\"tf\",\"k\":3}')"
ref_ok "dlp_predict_rows JSON = dlp predict JSON, exactly" \
  "$SREF" same r_p.db "SELECT image_origin, predictions FROM frame" \
  cli_p.db "SELECT image_origin, predictions FROM frame"
expect_shell "dlp_register + the new function (registerKerasImageUDF)" 0 \
  reg.db "ATTACH 'pics.db' AS p; SELECT dlp_register('tiny', 'tiny.onnx',
   '$OPTS'); CREATE TABLE frame AS SELECT path AS image_origin,
   tiny(path) AS features FROM p.pics WHERE error IS NULL"
ref_ok "name(image) = dlp featurize of the same model, exactly" \
  "$SREF" same reg.db "SELECT image_origin, features FROM frame" \
  cli_f.db "SELECT image_origin, features FROM frame WHERE features NOT NULL"
expect_shell "dlp_apply = the model's output" 0 :memory: \
  "SELECT dlp_apply('tiny.onnx', 'images/cats/img1.png', '$OPTS') =
   dlp_featurize('tiny.onnx', 'images/cats/img1.png', '$OPTS')"
check "... (tiny's output layer is its feature layer)" grep -qx 1 "$WORK/out"

# --- vectors: knn, cosine, l2 against numpy ---------------------------------
NV=2000
[ "${DLP_SANITIZED:-0}" = 1 ] && NV=300
"$DLP_PYTHON" "$SREF" make-vectors vec.db "$NV" 64 5
for metric in cosine l2; do
  expect_shell "dlp_knn(..., 7, '$metric')" 0 vec.db \
    "SELECT id, score, rank FROM dlp_knn('vecs', 'features',
     (SELECT v FROM q), 7, '$metric')"
  cp "$WORK/out" "knn_$metric.csv"
  ref_ok "dlp_knn $metric top-7 = numpy brute force" \
    "$SREF" check-knn vec.db "knn_$metric.csv" 7 "$metric"
done
expect_shell "dlp_knn with k larger than the table" 0 vec.db \
  "SELECT id, score, rank FROM dlp_knn('vecs', 'features', (SELECT v FROM q),
   100000)"
cp "$WORK/out" knn_all.csv
ref_ok "... returns every non-NULL row, in order" \
  "$SREF" check-knn vec.db knn_all.csv 100000 cosine
expect_shell "ORDER BY dlp_cosine DESC LIMIT = dlp_knn" 0 vec.db \
  "SELECT (SELECT group_concat(id) FROM (SELECT id FROM vecs ORDER BY
   dlp_cosine(features, (SELECT v FROM q)) DESC LIMIT 10)) = (SELECT
   group_concat(id) FROM (SELECT id FROM dlp_knn('vecs', 'features',
   (SELECT v FROM q), 10)))"
check "... same ids in the same order" grep -qx 1 "$WORK/out"
expect_shell "dlp_cosine and dlp_l2 over the table" 0 vec.db \
  "SELECT id, dlp_cosine(features, (SELECT v FROM q)), dlp_l2(features,
   (SELECT v FROM q)) FROM vecs"
cp "$WORK/out" pairs.csv
ref_ok "dlp_cosine / dlp_l2 = numpy, NULL vector -> NULL" \
  "$SREF" check-pairs vec.db pairs.csv
expect_shell "dlp_vec_dim, dlp_vec_json, dlp_vec" 0 :memory: \
  "SELECT dlp_vec_dim(dlp_vec('[1,2.5,-3]')), dlp_vec_json(dlp_vec('[1,2.5,-3]')),
   hex(dlp_vec('[1]'))"
check "... give 3, [1,2.5,-3] and float32 LE bytes" \
  grep -qx '3,"\[1,2.5,-3\]",0000803F' "$WORK/out"

# --- NULL in, NULL out -------------------------------------------------------
expect_shell "NULL arguments" 0 :memory: \
  "SELECT dlp_featurize('tiny.onnx', NULL) IS NULL, dlp_predict(NULL, 'x')
   IS NULL, dlp_image(NULL) IS NULL, dlp_cosine(NULL, dlp_vec('[1]')) IS NULL,
   dlp_l2(dlp_vec('[1]'), NULL) IS NULL, dlp_vec_dim(NULL) IS NULL,
   dlp_vec_json(NULL) IS NULL, dlp_apply(NULL, NULL) IS NULL,
   (SELECT count(*) FROM dlp_knn('t', 'c', NULL, 3)) = 0"
check "... all give NULL (or no rows)" grep -qx '1,1,1,1,1,1,1,1,1' "$WORK/out"

# --- malformed arguments: SQL errors, the shell goes on ----------------------
printf 'not an image at all' >junk.png
cat >bad.sql <<EOF
SELECT dlp_cosine(dlp_vec('[1,2,3]'), dlp_vec('[1,2]'));
SELECT 'after-1';
SELECT dlp_featurize('NoSuchNet', 'images/cats/img1.png');
SELECT 'after-2';
SELECT dlp_featurize('tiny.onnx', 'no/such/file.png', '$OPTS');
SELECT 'after-3';
SELECT dlp_featurize('tiny.onnx', x'0011223344', '$OPTS');
SELECT 'after-4';
SELECT * FROM dlp_knn('vecs', 'features', dlp_vec('[1,2,3]'), 3);
SELECT 'after-5';
SELECT dlp_featurize('tiny.onnx', 'junk.png', '$OPTS');
SELECT 'after-6';
SELECT dlp_featurize('tiny.onnx', 'images/cats/img1.png', '{"bogus": 1}');
SELECT 'after-7';
SELECT dlp_l2(x'0000', x'0000');
SELECT 'after-8';
SELECT * FROM dlp_images('no/such/dir');
SELECT 'after-9';
SELECT * FROM dlp_knn('no_table', 'features', dlp_vec('[1]'), 3);
SELECT 'after-10';
SELECT * FROM dlp_featurize_rows('tiny.onnx', 'DELETE FROM vecs', '$OPTS');
SELECT 'after-11';
SELECT dlp_predict('tiny.onnx', 'images/cats/img1.png', 0, '$OPTS');
SELECT 'after-12';
SELECT dlp_featurize('tiny.onnx', 'images/dogs/broken.png', '$OPTS');
SELECT 'after-13';
EOF
shell vec.db <bad.sql
check "the shell ran every statement after the errors" grep -qx after-13 "$WORK/out"
check "13 statements failed, 13 went on" bash -c \
  '[ "$(grep -c "^after-" "$1")" = 13 ] && [ "$(grep -c "Runtime error\|Parse error" "$2")" = 13 ]' \
  _ "$WORK/out" "$WORK/err"
for want in "dlp_cosine: vectors of different dimensions (3 and 2)" \
  "dlp_featurize: no model named 'NoSuchNet'" \
  "dlp_featurize: cannot read image no/such/file.png" \
  "dlp_featurize: cannot read image a blob of 5 bytes" \
  "dlp_knn: vecs.features of row 1 is not a 3-d vector" \
  "cannot read image junk.png" \
  "unknown option 'bogus'" \
  "dlp_l2: a BLOB of 2 bytes is not a float32 vector" \
  "dlp_images: no/such/dir" \
  "dlp_knn: no such table: no_table" \
  "dlp_featurize_rows: the query must be one SELECT" \
  "dlp_predict: k must be an integer" \
  "cannot read image images/dogs/broken.png"; do
  check "error says: $want" contains "$WORK/err" "$want"
done
check "the table the rejected DELETE named is untouched" bash -c \
  '[ "$(sqlite3 "$1" "SELECT count(*) FROM vecs")" = "$2" ]' _ vec.db "$((NV + 1))"

expect_shell "file-reading functions are direct-only (not in a view)" 1 \
  pics.db "CREATE VIEW v AS SELECT dlp_image(path) FROM pics; SELECT * FROM v"
check "... refused as unsafe" contains "$WORK/err" "unsafe use of dlp_image()"

# --- the dlp sql front ----------------------------------------------------------
expect_rc "dlp sql: featurize into a table" 0 sql d_f.db \
  "ATTACH 'pics.db' AS p; CREATE TABLE frame AS SELECT image AS image_origin,
   error AS image_error, features FROM dlp_featurize_rows('tiny.onnx',
   'SELECT path FROM p.pics', '$OPTS')"
ref_ok "dlp sql features = dlp featurize, exactly" \
  "$SREF" same d_f.db "SELECT image_origin, features FROM frame" \
  cli_f.db "SELECT image_origin, features FROM frame"
expect_rc "dlp sql --csv prints a header and rows" 0 sql pics.db \
  "SELECT path, label FROM pics ORDER BY path LIMIT 2" --csv
check "... as CSV" bash -c '[ "$(head -1 "$1")" = "path,label" ] &&
  [ "$(sed -n 2p "$1")" = "images/cats/gray.png,cats" ]' _ "$WORK/out"
expect_rc "dlp sql --json" 0 sql pics.db \
  "SELECT path, width FROM pics WHERE path LIKE '%img1%'" --json
check "... one JSON object per row" grep -qx \
  '{"path":"images/cats/img1.png","width":63}' "$WORK/out"
expect_rc "dlp sql (table): predict" 0 sql pics.db \
  "SELECT path, dlp_predict('tiny.onnx', path, 1, '$OPTS') AS top FROM pics
   WHERE error IS NULL"
check "... prints a table with the paths" contains "$WORK/out" "images/dogs/img4.png"
expect_rc "dlp sql: knn with the query image's features" 0 sql d_f.db \
  "SELECT f.image_origin, round(k.score, 6) FROM dlp_knn('frame', 'features',
   (SELECT features FROM frame WHERE image_origin LIKE '%img3%'), 2) k
   JOIN frame f ON f.rowid = k.id" --csv
check "... the query image comes first with similarity 1" \
  grep -qx 'images/cats/img3.png,1.0' "$WORK/out"
expect_rc "dlp sql: SQL error -> exit 1" 1 sql pics.db \
  "SELECT dlp_featurize('NoSuchNet', path) FROM pics"
check "... with the message" contains "$WORK/err" "dlp: dlp_featurize: no model named 'NoSuchNet'"
expect_rc "dlp sql: a bad row stops only that statement (exit 1)" 1 sql \
  pics.db "SELECT dlp_featurize('tiny.onnx', path, '$OPTS') FROM pics"
check "... naming the broken file" contains "$WORK/err" "broken.png"
expect_rc "dlp sql: syntax error -> exit 1" 1 sql :memory: "SELEC 1"
expect_rc "dlp sql: --csv and --json together -> exit 2" 2 sql :memory: \
  "SELECT 1" --csv --json
expect_rc "dlp sql without a query -> exit 2" 2 sql pics.db

# --- fitted pipelines: dlp_apply, dlp_classify, dlp_register --------------
# DeepImageFeaturizer (MobileNetV2, random weights) + StringIndexer +
# LogisticRegression + IndexToString fitted by 'dlp fit' on the test images;
# SQL must answer what 'dlp transform' writes for the same images.
PN='{"on_error":"null"}'
RW='{"random_weights":true}'
expect_rc "dlp fit: a pipeline to use from SQL" 0 fit --images images \
  --model MobileNetV2 --random-weights --split 1.0 --max-iter 20 --out pipe \
  --quiet
expect_rc "dlp transform --pipeline on the same images" 0 transform \
  --pipeline pipe images --out tr.db
PIPE_SQL="ATTACH 'pics.db' AS p;
  SELECT dlp_register('petclass', 'pipe', '$PN');
  CREATE TABLE frame AS SELECT path AS image_origin,
  dlp_apply('pipe', path, '$PN') AS probability,
  dlp_classify('pipe', path, '$PN') AS classified,
  petclass(path) AS label FROM p.pics"
expect_shell "dlp_apply / dlp_classify / dlp_register on a pipeline dir" 0 \
  pipe_s.db "$PIPE_SQL"
ref_ok "... = dlp transform: probability bytes, index, label; bad -> NULL" \
  "$SREF" check-classify pipe_s.db tr.db
expect_rc "dlp sql: the same with the built-in extension" 0 sql pipe_d.db \
  "$PIPE_SQL"
ref_ok "... = dlp transform too" "$SREF" check-classify pipe_d.db tr.db
expect_shell "image BLOBs and feature vector BLOBs (featurizer skipped)" 0 \
  :memory: "SELECT count(*), sum(dlp_classify('pipe', dlp_image(path)) =
  dlp_classify('pipe', path)), sum(dlp_classify('pipe',
  dlp_featurize('MobileNetV2', path, '$RW')) = dlp_classify('pipe', path)),
  sum(dlp_apply('pipe', dlp_featurize('MobileNetV2', path, '$RW')) =
  dlp_apply('pipe', path)) FROM dlp_images('images') WHERE error IS NULL"
check "... give the same answers for all 6 images" grep -qx '6,6,6,6' \
  "$WORK/out"
expect_shell "NULL in, NULL out (pipelines)" 0 :memory: \
  "SELECT dlp_classify('pipe', NULL) IS NULL, dlp_classify(NULL, 'x') IS NULL,
   dlp_apply('pipe', NULL) IS NULL"
check "... all NULL" grep -qx '1,1,1' "$WORK/out"

# A pipeline without labels or featurizer (LogisticRegression alone, fitted
# through the C API by tunetool): features in, class numbers out.
"$DLP_PYTHON" "$SREF" make-lr . 60 5 3 4
check "tunetool saves a LogisticRegression-only pipeline" bash -c \
  '"$1" X.npy y.npy --grid "reg=0.01,0.1" --folds 2 --test X.npy \
   --save lrpipe >tune.json' _ "$DLP_TOOLS/tunetool"
expect_shell "dlp_classify / dlp_register of a pipeline without labels" 0 \
  lr.db "SELECT dlp_register('lrclass', 'lrpipe'); SELECT id,
  dlp_classify('lrpipe', features), lrclass(features) FROM vecs ORDER BY id"
tail -n +2 "$WORK/out" >unlabelled.csv
ref_ok "... index = the C API's prediction, probabilities as an array" \
  "$SREF" check-unlabelled unlabelled.csv tune.json

mkdir -p badpipe
printf '{"format": "dlp-pipeline", "version": ' >badpipe/pipeline.json
cat >bad_pipe.sql <<SQL
SELECT dlp_classify('pipe', 'images/dogs/broken.png');
SELECT 'after-1';
SELECT dlp_classify('tiny.onnx', 'images/cats/img1.png');
SELECT 'after-2';
SELECT dlp_featurize('pipe', 'images/cats/img1.png');
SELECT 'after-3';
SELECT dlp_classify('pipe', 'images/cats/img1.png', '{"k": 3}');
SELECT 'after-4';
SELECT dlp_classify('lrpipe', 'images/cats/img1.png');
SELECT 'after-5';
SELECT dlp_classify('lrpipe', x'00000000');
SELECT 'after-6';
SELECT * FROM dlp_apply_rows('pipe', 'SELECT path FROM dlp_images(''images'')');
SELECT 'after-7';
SELECT dlp_classify('badpipe', 'images/cats/img1.png');
SELECT 'after-8';
SQL
shell :memory: <bad_pipe.sql
check "pipelines: the shell ran every statement after the errors" bash -c \
  '[ "$(grep -c "^after-" "$1")" = 8 ] &&
   [ "$(grep -c "Runtime error\|Parse error" "$2")" = 8 ]' \
  _ "$WORK/out" "$WORK/err"
for want in "dlp_classify: cannot read image images/dogs/broken.png" \
  "dlp_classify: 'tiny.onnx' is not a fitted pipeline" \
  "dlp_featurize: 'pipe' is a fitted pipeline: use dlp_apply" \
  "option 'k' does not apply to a fitted pipeline" \
  "the pipeline has no DeepImageFeaturizer: give its 5-d features" \
  "a BLOB of 4 bytes is neither an image nor the 5-d float32 feature vector" \
  "dlp_apply_rows: 'pipe' is a fitted pipeline" \
  "dlp_classify: badpipe/pipeline.json"; do
  check "error says: $want" contains "$WORK/err" "$want"
done

# --- installed: LIBDIR/dlp/libdlpsql.so finds libdlp.so by itself ----------
BUILD=$(cd "$(dirname "$DLP_BIN")" && pwd)
if cmake --install "$BUILD" --prefix "$WORK/prefix" >"$WORK/install.log" 2>&1; then
  mod=$(find "$WORK/prefix" -path "*/dlp/libdlpsql.so" | head -n 1)
  check "cmake --install puts libdlpsql.so in LIBDIR/dlp/" test -n "$mod"
  EXT=${mod%.so}
  expect_shell "the installed module loads in the stock shell" 0 :memory: \
    "SELECT dlp_vec_json(dlp_vec('[1,2]'))"
  check "... and works" grep -qx '"\[1,2\]"' "$WORK/out"
else
  fail "cmake --install into a fresh prefix" "$(cat "$WORK/install.log")"
fi
finish
