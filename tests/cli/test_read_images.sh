#!/usr/bin/env bash
# test_read_images.sh - 'dlp read-images' end to end: a folder made by
# make_images.py (PIL) is read into .db, .jsonl and .csv, and each table is
# checked by check_table.py with Python's sqlite3/json/csv against the
# manifest (sizes from PIL, expected errors from how the bad files were made).
source "$(dirname "$0")/common.sh"

IMG="$WORK/images"
"$DLP_PYTHON" "$CLI_TESTS/make_images.py" "$IMG"

# table_ok NAME CHECK FILE [ARG]: check_table.py agrees.
table_ok() {
  local name=$1 what=$2 file=$3
  shift 3
  check "$name" "$DLP_PYTHON" "$CLI_TESTS/check_table.py" "$what" "$file" \
    "$IMG" "$@"
}

# --- every format, every file -------------------------------------------
for ext in db jsonl csv; do
  expect_rc "read-images --labels-from-dirs -> .$ext exits 0" 0 \
    read-images "$IMG" --labels-from-dirs --out "$WORK/all.$ext"
  table_ok ".$ext: every file has a right row (labels, sizes, errors)" \
    full "$WORK/all.$ext"
done

# The summary: counts from the manifest, and a pointer to the error rows.
run read-images "$IMG" --labels-from-dirs --out "$WORK/sum.db"
n_all=$("$DLP_PYTHON" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["files"]))' "$IMG/manifest.json")
n_bad=$("$DLP_PYTHON" -c 'import json,sys; print(sum(not f["valid"] for f in json.load(open(sys.argv[1]))["files"].values()))' "$IMG/manifest.json")
check "summary says 'read $n_all images ($n_bad invalid, 0 dropped)'" \
  contains "$WORK/err" "read $n_all images ($n_bad invalid, 0 dropped) from $IMG"
check "summary names the output file" contains "$WORK/err" "-> $WORK/sum.db"
check "summary lists an invalid file with its reason" \
  grep -qE "invalid: .*(zero|text|truncated|huge|broken_link).*: ." "$WORK/err"
check "summary says how to see all errors" \
  contains "$WORK/err" "dlp show $WORK/sum.db --errors"
no_cr() { ! grep -q $'\r' "$1"; }
check "no progress output when stderr is not a terminal" no_cr "$WORK/err"
# On a terminal (script(1) provides one, where pseudo-terminals work) a
# progress line is drawn, then erased before the summary.
if script -qec true /dev/null >/dev/null 2>&1; then
  script -qec "$(printf '%q ' "$DLP_BIN" read-images "$IMG" \
    --labels-from-dirs --out "$WORK/tty.db")" /dev/null >"$WORK/tty.txt" || true
  check "on a terminal: a progress line" grep -qE \
    "reading images +[0-9]+/$n_all +[0-9]+%" "$WORK/tty.txt"
  check "on a terminal: the progress line is erased" grep -qF \
    $'\r\033[Kread '"$n_all images" "$WORK/tty.txt"
fi
expect_rc "--quiet prints nothing" 0 \
  read-images "$IMG" --labels-from-dirs --quiet --out "$WORK/quiet.db"
check "--quiet: stderr empty" test ! -s "$WORK/err"

# --- options ---------------------------------------------------------------
expect_rc "--drop-invalid exits 0" 0 \
  read-images "$IMG" --labels-from-dirs --drop-invalid --out "$WORK/valid.db"
table_ok "--drop-invalid keeps exactly the valid files" \
  valid-only "$WORK/valid.db"
check "--drop-invalid summary counts the dropped rows" \
  contains "$WORK/err" "($n_bad invalid, $n_bad dropped)"

expect_rc "--drop-invalid -> .jsonl exits 0" 0 \
  read-images "$IMG" --labels-from-dirs --drop-invalid --out "$WORK/valid.jsonl"
table_ok ".jsonl --drop-invalid keeps exactly the valid files" \
  valid-only "$WORK/valid.jsonl"

for s in 7a 7b 8; do
  seed=${s%[ab]}
  expect_rc "--sample-ratio 0.5 --seed $seed exits 0" 0 read-images "$IMG" \
    --labels-from-dirs --sample-ratio 0.5 --seed "$seed" --out "$WORK/s$s.jsonl"
  table_ok "sample (seed $seed) rows are right" subset "$WORK/s$s.jsonl"
  "$DLP_PYTHON" "$CLI_TESTS/check_table.py" paths "$WORK/s$s.jsonl" "$IMG" \
    >"$WORK/s$s.txt" || true
done
check "same seed, same rows" cmp -s "$WORK/s7a.txt" "$WORK/s7b.txt"
check "another seed, other rows" bash -c '! cmp -s "$1" "$2"' _ \
  "$WORK/s7a.txt" "$WORK/s8.txt"
check "a 0.5 sample keeps some rows, not all" bash -c \
  'n=$(wc -l <"$1"); [ "$n" -gt 0 ] && [ "$n" -lt "$2" ]' _ "$WORK/s7a.txt" \
  "$n_all"
expect_rc "--sample-ratio 0 exits 0" 0 \
  read-images "$IMG" --labels-from-dirs --sample-ratio 0 --out "$WORK/s0.jsonl"
check "--sample-ratio 0 keeps no rows" test ! -s "$WORK/s0.jsonl"

for ext in db jsonl; do
  expect_rc "--label 1 -> .$ext exits 0" 0 \
    read-images "$IMG" --recursive --label 1 --out "$WORK/lit.$ext"
  table_ok "--label 1 gives the integer label 1 (.$ext)" label-int \
    "$WORK/lit.$ext" 1
done
check "--label 1: SQLite stores INTEGER" bash -c \
  '[ "$(sqlite3 "$1" "SELECT DISTINCT typeof(label) FROM frame")" = integer ]' \
  _ "$WORK/lit.db"

expect_rc "--extensions png exits 0" 0 \
  read-images "$IMG" --labels-from-dirs --extensions png --out "$WORK/png.csv"
table_ok "--extensions png takes exactly the .png files" ext-png "$WORK/png.csv"

expect_rc "without --recursive exits 0" 0 \
  read-images "$IMG" --out "$WORK/top.jsonl"
check "without --recursive only the top-level image is read" bash -c \
  '[ "$(wc -l <"$1")" -eq 1 ] && grep -q "top.png" "$1"' _ "$WORK/top.jsonl"

for ext in db jsonl; do
  expect_rc "--embed -> .$ext exits 0" 0 \
    read-images "$IMG" --labels-from-dirs --embed --out "$WORK/embed.$ext"
  table_ok "--embed stores each file's exact bytes (.$ext)" embedded \
    "$WORK/embed.$ext"
done

expect_rc "--max-pixels 1000 exits 0" 0 read-images "$IMG" \
  --labels-from-dirs --max-pixels 1000 --threads 1 --out "$WORK/maxpix.csv"
table_ok "--max-pixels 1000 refuses exactly the larger images" max-pixels \
  "$WORK/maxpix.csv" 1000

expect_rc "--table pics writes that SQLite table" 0 \
  read-images "$IMG" --labels-from-dirs --table pics --out "$WORK/named.db"
check "table 'pics' has a row per file" bash -c \
  '[ "$(sqlite3 "$1" "SELECT count(*) FROM pics")" -eq "$2" ]' _ \
  "$WORK/named.db" "$n_all"

# --- existing output, failures ---------------------------------------------
cp "$WORK/all.jsonl" "$WORK/keep.jsonl"
expect_rc "an existing output without --overwrite exits 1" 1 \
  read-images "$IMG" --labels-from-dirs --out "$WORK/keep.jsonl"
check "... and leaves the file as it was" cmp -s "$WORK/all.jsonl" \
  "$WORK/keep.jsonl"
expect_rc "--overwrite replaces it" 0 read-images "$IMG" --drop-invalid \
  --labels-from-dirs --overwrite --out "$WORK/keep.jsonl"
table_ok "... with the new rows" valid-only "$WORK/keep.jsonl"

expect_rc "--fail-on-error with invalid images exits 3" 3 \
  read-images "$IMG" --labels-from-dirs --fail-on-error --out "$WORK/foe.db"
table_ok "--fail-on-error still writes the whole table" full "$WORK/foe.db"
expect_rc "--fail-on-error on good images exits 0" 0 read-images \
  "$IMG/dogs/puppies" --fail-on-error --out "$WORK/good.db"

finish
