#!/usr/bin/env bash
# demo.sh - the offline demo: reads the ~800 Tux Paint stamps (PNG files in
# category folders, Debian package tuxpaint-stamps-default) into a table
# labelled by folder, shows it, counts images per label, and splits it into
# train/test files. Output goes to demo-out/.
#   scripts/demo.sh [PATH/TO/dlp]      (default: build/dlp; 'make demo' runs it)
set -euo pipefail

BIN=${1:-build/dlp}
STAMPS=${DLP_DEMO_IMAGES:-/usr/share/tuxpaint/stamps}
OUT=demo-out

if [ ! -x "$BIN" ]; then
  echo "demo: no dlp binary at '$BIN'; build first (make build)" >&2
  exit 1
fi
if [ ! -d "$STAMPS" ]; then
  echo "demo: '$STAMPS' is missing; run scripts/install-deps.sh" \
    "(package tuxpaint-stamps-default)" >&2
  exit 1
fi
mkdir -p "$OUT"

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
section() { printf '\n%s== %s ==%s\n\n' "$bold" "$1" "$plain"; }
# say_run ARGS...: shows the dlp command line, then runs it.
say_run() {
  printf '$ dlp %s\n' "$*"
  "$BIN" "$@"
}

section "1. Read a folder of images into a table (labels = sub-folder names)"
say_run read-images "$STAMPS" --labels-from-dirs --overwrite \
  --out "$OUT/stamps.db"

section "2. The first rows"
say_run show "$OUT/stamps.db" -n 8

section "3. The table's columns"
say_run show "$OUT/stamps.db" --schema

section "4. Images per label"
say_run show "$OUT/stamps.db" --counts label

section "5. Images that could not be read (if any)"
say_run show "$OUT/stamps.db" --errors -n 5

section "6. A reproducible 80/20 train/test split"
say_run split "$OUT/stamps.db" --weights 0.8,0.2 --seed 42 --overwrite \
  --out "$OUT/train.db,$OUT/test.db"
say_run show "$OUT/train.db" --counts label -n 5

section "7. The same table as JSON Lines and CSV, for other tools"
say_run convert "$OUT/test.db" "$OUT/test.jsonl" --overwrite
say_run convert "$OUT/test.db" "$OUT/test.csv" --overwrite
printf '\nfirst line of %s:\n' "$OUT/test.jsonl"
head -n 1 "$OUT/test.jsonl"

section "Done"
echo "Files in $OUT/:"
ls -l "$OUT"
echo
echo "Next: 'dlp help' lists the commands; docs/cli.md explains each one."
