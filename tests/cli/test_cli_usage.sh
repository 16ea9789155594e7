#!/usr/bin/env bash
# test_cli_usage.sh - the dlp command's interface: help texts, usage errors
# (exit 2, naming the option), failures (exit 1, naming the path), exit 3 of
# --fail-on-error, and show / convert / split on a folder made with PIL
# (make_images.py), checked with Python's sqlite3 / json / csv readers.
source "$(dirname "$0")/common.sh"

IMG="$WORK/images"
"$DLP_PYTHON" "$CLI_TESTS/make_images.py" "$IMG"
manifest() { "$DLP_PYTHON" -c "import json,sys; m=json.load(open('$IMG/manifest.json'))['files']; print($1)"; }
n_all=$(manifest 'len(m)')

# --- help -------------------------------------------------------------------
expect_rc "'dlp' alone is a usage error" 2
check "'dlp' alone lists the commands" contains "$WORK/err" "read-images"
expect_rc "'dlp help' exits 0" 0 help
for c in read-images show convert split version help; do
  check "'dlp help' lists $c" grep -qE "^  $c " "$WORK/out"
done
expect_rc "'dlp --help' exits 0" 0 --help
expect_rc "'dlp help show' exits 0" 0 help show
check "'dlp help show' is show's help" contains "$WORK/out" "usage: dlp show"
expect_rc "an unknown command exits 2" 2 frobnicate
check "... naming it" contains "$WORK/err" "unknown command 'frobnicate'"

declare -A OPTIONS=(
  [read-images]="--out --recursive --labels-from-dirs --label --extensions
    --sample-ratio --seed --drop-invalid --fail-on-error --no-verify --embed
    --threads --max-pixels --table --overwrite --quiet"
  [show]="-n --all --table --errors --truncate --no-truncate --schema --counts"
  [convert]="--table --overwrite --column"
  [split]="--weights --seed --out --table --overwrite"
  [version]=""
  [help]=""
)
for c in "${!OPTIONS[@]}"; do
  expect_rc "'dlp $c --help' exits 0" 0 "$c" --help
  check "$c --help has a usage line" contains "$WORK/out" "usage: dlp $c"
  check "$c --help has an example" contains "$WORK/out" "example:"
  check "$c --help lists exit codes" contains "$WORK/out" "exit codes:"
  for o in ${OPTIONS[$c]}; do
    check "$c --help mentions $o" grep -qE -- "(^|[ ,])$o( |,|$)" "$WORK/out"
  done
done
for c in "${!OPTIONS[@]}"; do
  for o in ${OPTIONS[$c]}; do
    check "docs/cli.md documents $c $o" grep -qE -- "(^|[ ,\`])$o([ ,\`]|$)" \
      "$DLP_SRC/docs/cli.md"
  done
done
check "read-images --help documents exit 3" grep -qE "^  3 " \
  <("$DLP_BIN" read-images --help)
check "read-images --help shows defaults" contains \
  <("$DLP_BIN" read-images --help) "[default: 1]"

version=$(sed -n 's/^#define DLP_VERSION "\(.*\)"$/\1/p' "$DLP_SRC/include/dlp.h")
expect_rc "'dlp version' exits 0" 0 version
check "'dlp version' prints dlp $version" grep -q "^dlp $version " "$WORK/out"
check "... and the library version" contains "$WORK/out" "libdlp $version"
expect_rc "'dlp --version' exits 0" 0 --version
check "'dlp --version' prints dlp $version" grep -q "^dlp $version " "$WORK/out"

# --- usage errors: exit 2, the option named --------------------------------
usage_error() {
  local name=$1 needle=$2
  shift 2
  expect_rc "$name exits 2" 2 "$@"
  check "$name: message names $needle" contains "$WORK/err" "$needle"
}
expect_rc "unknown option exits 2" 2 read-images "$IMG" --foo --out "$WORK/x.db"
check "unknown option: the exact message" test "$(cat "$WORK/err")" = \
  "dlp read-images: unknown option '--foo' (see 'dlp read-images --help')"
usage_error "unknown option with =value" "'--foo'" \
  read-images "$IMG" --foo=1 --out "$WORK/x.db"
usage_error "unknown short option" "'-Z'" show "$WORK/x.db" -Z
usage_error "missing --out" "--out" read-images "$IMG"
usage_error "--out without a value" "--out" read-images "$IMG" --out
usage_error "missing DIR" "DIR" read-images --out "$WORK/x.db"
usage_error "an extra argument" "'extra'" read-images "$IMG" extra \
  --out "$WORK/x.db"
usage_error "a value for a flag" "--recursive" read-images "$IMG" \
  --recursive=yes --out "$WORK/x.db"
usage_error "--labels-from-dirs with --label" "--label" read-images "$IMG" \
  --labels-from-dirs --label 1 --out "$WORK/x.db"
for bad in "--threads 0" "--threads abc" "--threads 1.5" "--threads ''" \
  "--sample-ratio 1.5" "--sample-ratio -0.1" "--sample-ratio nan" \
  "--sample-ratio 0.5x" "--seed -1" "--seed 12x" "--seed 1e3" \
  "--max-pixels 0" "--max-pixels -5" "--threads ' 2'" "--sample-ratio ' .5'"; do
  eval "set -- $bad"
  usage_error "read-images $bad" "'$1'" read-images "$IMG" "$@" \
    --out "$WORK/x.db"
done
check "no output file after usage errors" test ! -e "$WORK/x.db"
usage_error "show -n -1" "'--rows'" show "$WORK/x.db" -n -1
usage_error "show --truncate x" "'--truncate'" show "$WORK/x.db" --truncate x
usage_error "show -n with --all" "--all" show "$WORK/x.db" -n 3 --all
usage_error "split --weights 0.8,x" "--weights" split "$WORK/x.db" \
  --weights 0.8,x --out "$WORK/a.db,$WORK/b.db"
usage_error "split --weights 0,1" "--weights" split "$WORK/x.db" \
  --weights 0,1 --out "$WORK/a.db,$WORK/b.db"
usage_error "split with 2 weights and 3 files" "--out" split "$WORK/x.db" \
  --weights 0.5,0.5 --out "$WORK/a.db,$WORK/b.db,$WORK/c.db"
usage_error "split without --weights" "--weights" split "$WORK/x.db" \
  --out "$WORK/a.db"

# --- failures: exit 1, the path named ----------------------------------------
expect_rc "a missing input folder exits 1" 1 \
  read-images "$WORK/no-such-dir" --out "$WORK/x.db"
check "... naming the path" contains "$WORK/err" "$WORK/no-such-dir"
check "... in the form 'dlp: ...'" grep -q "^dlp: " "$WORK/err"
check "... and writes nothing" test ! -e "$WORK/x.db"
expect_rc "an unwritable output exits 1" 1 \
  read-images "$IMG" --out "$WORK/no-such-dir/x.db"
check "... naming the path" contains "$WORK/err" "$WORK/no-such-dir/x.db"
expect_rc "show of a missing file exits 1" 1 show "$WORK/missing.db"
check "... naming the path" contains "$WORK/err" "$WORK/missing.db"

expect_rc "--fail-on-error with invalid images exits 3" 3 \
  read-images "$IMG" --labels-from-dirs --fail-on-error --out "$WORK/all.db"
check "... saying why" contains "$WORK/err" "--fail-on-error"
check "... and the table is written" test -s "$WORK/all.db"

# --- show ---------------------------------------------------------------------
first3=$(manifest "'\n'.join(sorted(m)[:3])")
fourth=$(manifest "sorted(m)[3]")
expect_rc "show -n 3 exits 0" 0 show "$WORK/all.db" -n 3 --no-truncate
for col in path label mode height width nChannels error; do
  check "show header has '$col'" grep -qE "│ $col +│|│ +$col │" "$WORK/out"
done
for p in $first3; do
  check "show -n 3 shows $p" contains "$WORK/out" "$IMG/$p"
done
check "show -n 3 stops before $fourth" bash -c '! grep -qF "$1" "$2"' _ \
  "$IMG/$fourth" "$WORK/out"
check "show says 'showing 3 of $n_all rows'" \
  contains "$WORK/out" "showing 3 of $n_all rows"
expect_rc "show --all exits 0" 0 show "$WORK/all.db" --all
check "show --all: 'showing $n_all of $n_all rows'" \
  contains "$WORK/out" "showing $n_all of $n_all rows"
check "show: RGB images as 'RGB (16)'" grep -qE "cat_rgb.jpg .*RGB \(16\)" \
  "$WORK/out"
check "show: gray images as 'gray (0)'" grep -qE "cat_gray.png .*gray \(0\)" \
  "$WORK/out"
check "show: long paths keep their file name" grep -qE \
  "^│ \.\.\..*puppies/puppy16.png │" "$WORK/out"
expect_rc "show --errors exits 0" 0 show "$WORK/all.db" --errors --no-truncate
n_bad=$(manifest 'sum(not f["valid"] for f in m.values())')
for p in $(manifest "'\n'.join(k for k, f in m.items() if not f['valid'])"); do
  check "show --errors lists $p" contains "$WORK/out" "$(basename "$p")"
done
for p in $(manifest "'\n'.join(k for k, f in m.items() if f['valid'])"); do
  check "show --errors leaves out $p" bash -c '! grep -qF "/$1 " "$2"' _ \
    "$p" "$WORK/out"
done
check "show --errors counts them" contains "$WORK/out" \
  "$n_bad of $n_all images have errors"
expect_rc "show --schema exits 0" 0 show "$WORK/all.db" --schema
check "--schema: image column" grep -qE "│ image +│ image +│" "$WORK/out"
check "--schema: label column" grep -qE "│ label +│ string +│" "$WORK/out"
check "--schema: row count" contains "$WORK/out" "$n_all rows"
expect_rc "show --counts label exits 0" 0 show "$WORK/all.db" --counts label
for label in cats dogs; do
  n=$(manifest "sum(f['label'] == '$label' for f in m.values())")
  check "--counts: $n $label" grep -qE "│ $label +│ +$n │" "$WORK/out"
done
check "--counts: 1 null (the top-level file)" grep -qE "│ null +│ +1 │" \
  "$WORK/out"
usage_error "show --counts with --schema" "--schema" show "$WORK/all.db" \
  --counts label --schema
expect_rc "show --counts nope exits 1" 1 show "$WORK/all.db" --counts nope
check "... naming the column" contains "$WORK/err" "'nope'"

# --- convert: db -> jsonl -> csv -> db keeps the rows ---------------------------
expect_rc "convert db -> jsonl" 0 convert "$WORK/all.db" "$WORK/c.jsonl"
expect_rc "convert jsonl -> csv" 0 convert "$WORK/c.jsonl" "$WORK/c.csv"
expect_rc "convert csv -> db" 0 convert "$WORK/c.csv" "$WORK/c.db"
for f in c.jsonl c.csv c.db; do
  check "$f has the rows of all.db" "$DLP_PYTHON" "$CLI_TESTS/check_table.py" \
    same-rows "$WORK/all.db" "$IMG" "$WORK/$f"
done
for f in c.jsonl c.csv; do
  expect_rc "show $f exits 0" 0 show "$WORK/$f" -n 2
  check "show $f: 'showing 2 of $n_all rows'" contains "$WORK/out" \
    "showing 2 of $n_all rows"
done
expect_rc "convert to an existing file exits 1" 1 \
  convert "$WORK/all.db" "$WORK/c.jsonl"
expect_rc "... and with --overwrite exits 0" 0 \
  convert "$WORK/all.db" "$WORK/c.jsonl" --overwrite
expect_rc "convert to .npy without a vector column exits 1" 1 \
  convert "$WORK/all.db" "$WORK/c.npy"
check "... and leaves no file" test ! -e "$WORK/c.npy"

# --- a general table: strings, numbers, vectors (written by Python) ----------
"$DLP_PYTHON" - "$WORK/gen.jsonl" <<'EOF'
import json, sys
rows = [{"name": "a", "n": 1, "x": 0.5, "features": [0.5, -1.25, 2.0, 3.0, 4.5]},
        {"name": "b", "n": 2, "x": 1.5, "features": [1, 2, 3, 4, 5]},
        {"name": None, "n": 3, "x": -2.0, "features": [0, 0, 0, 0, 0.25]}]
with open(sys.argv[1], "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
EOF
expect_rc "show of a table with a vector column" 0 show "$WORK/gen.jsonl"
check "vectors shown as '[0.5, -1.25, 2, ... ] (dim 5)'" contains "$WORK/out" \
  "[0.5, -1.25, 2, ... ] (dim 5)"
check "null strings shown as null" grep -qE "│ null +│ +3 │" "$WORK/out"
expect_rc "show --schema of it" 0 show "$WORK/gen.jsonl" --schema
for t in "name +│ string" "n +│ int64" "x +│ double" "features +│ vector +│ +5"; do
  check "--schema: $t" grep -qE "│ $t" "$WORK/out"
done
expect_rc "--counts of a vector column exits 1" 1 show "$WORK/gen.jsonl" \
  --counts features
expect_rc "convert jsonl -> npy (the vector column)" 0 \
  convert "$WORK/gen.jsonl" "$WORK/gen.npy"
expect_rc "convert jsonl -> npy --column n" 0 \
  convert "$WORK/gen.jsonl" "$WORK/n.npy" --column n
check "the .npy files hold the values (numpy)" "$DLP_PYTHON" -c '
import json, sys, numpy as np
rows = [json.loads(l) for l in open(sys.argv[1])]
a, n = np.load(sys.argv[2]), np.load(sys.argv[3])
assert a.dtype == np.float32 and a.shape == (3, 5), (a.dtype, a.shape)
assert np.array_equal(a, np.array([r["features"] for r in rows], np.float32))
assert n.dtype == np.int64 and list(n) == [1, 2, 3], n' \
  "$WORK/gen.jsonl" "$WORK/gen.npy" "$WORK/n.npy"

# --- split ------------------------------------------------------------------------
count() { sqlite3 "$1" "SELECT count(*) FROM frame"; }
expect_rc "split 0.8,0.2 exits 0" 0 split "$WORK/all.db" --weights 0.8,0.2 \
  --seed 42 --out "$WORK/train.db,$WORK/test.db"
n_train=$((n_all * 8 / 10))
check "split: $n_train train rows" test "$(count "$WORK/train.db")" -eq "$n_train"
check "split: $((n_all - n_train)) test rows" \
  test "$(count "$WORK/test.db")" -eq "$((n_all - n_train))"
check "split: the parts are disjoint and cover all rows" bash -c '
  a=$(sqlite3 "$1" "SELECT image_origin FROM frame" | sort)
  b=$(sqlite3 "$2" "SELECT image_origin FROM frame" | sort)
  c=$(sqlite3 "$3" "SELECT image_origin FROM frame" | sort)
  [ "$(printf "%s\n%s\n" "$a" "$b" | sort)" = "$c" ]' _ \
  "$WORK/train.db" "$WORK/test.db" "$WORK/all.db"
expect_rc "split again with the same seed" 0 split "$WORK/all.db" \
  --weights 0.8,0.2 --seed 42 --out "$WORK/train2.jsonl,$WORK/test2.jsonl"
check "same seed, same parts" "$DLP_PYTHON" "$CLI_TESTS/check_table.py" \
  same-rows "$WORK/test.db" "$IMG" "$WORK/test2.jsonl"
expect_rc "split with another seed" 0 split "$WORK/all.db" \
  --weights 0.8,0.2 --seed 43 --out "$WORK/train3.db,$WORK/test3.db"
check "another seed, other parts" bash -c '
  [ "$(sqlite3 "$1" "SELECT image_origin FROM frame ORDER BY 1")" != \
    "$(sqlite3 "$2" "SELECT image_origin FROM frame ORDER BY 1")" ]' _ \
  "$WORK/test.db" "$WORK/test3.db"

finish
