#!/usr/bin/env bash
# pretrain-data.sh - builds the pretraining set: the clip art of Debian's
# openclipart-png with every image that also appears among the demo's
# tuxpaint stamps removed (same bytes, or a perceptual hash within the
# threshold, mirrored copies included), so the demo's accuracy is honest.
#
#   scripts/pretrain-data.sh [--out DIR] [--threshold T] [--min-count N]
#                            [--depth D] [--max-per-class N]
#                            [--src DIR] [--against DIR] [--build DIR]
#
#   --out DIR        the set: DIR/<category>/<file> symlinks (default
#                    pretrain-data); DIR/kept.txt and DIR/removed.txt list
#                    what was kept and what was removed (one path a line),
#                    DIR/removed.csv why (dlp dedup's table: path,
#                    match_path, distance, how, group, keep)
#   --threshold T    pHash bits (of 64) for "the same picture" (default 8;
#                    see below)
#   --min-count N    leave out categories with fewer kept images (default 20)
#   --depth D        labels from the first D folders (default 1: 22 top
#                    folders; 2 gives the ~50 sub-categories with 20 images
#                    or more, such as animals_birds, food_fruit)
#   --max-per-class N  at most N images per category, spread evenly over
#                    the names (default 0: all; two sub-categories, icons
#                    and stars, hold 40% of the package); DIR/labels.tsv
#                    lists what was taken
#   --src DIR        default /usr/share/openclipart/png
#                    (scripts/install-deps.sh --pretrain installs it)
#   --against DIR    default /usr/share/tuxpaint/stamps (the demo's images)
#   --build DIR      CMake build folder of the dlp command (default build)
#
# Labels are the first --depth folders under --src ("animals/birds/x.png" is
# an animal at depth 1, animals_birds at depth 2, and "animals/x.png" an
# animal at any depth); the file name keeps the rest of the path
# ("birds__x.png" at depth 1), so names are unique. Symbolic links in --src (the package files an image
# under a second category that way) are skipped: each image gets one label.
# Blank images (uniform after compositing on white) are removed too.
#
# Matching: pHash of the whole image and of the drawing's bounding box
# (clip art is often the same drawing on a larger canvas), each also
# mirrored; the smallest distance counts. Threshold: on this data (802
# stamps, 6,900 clip-art files) distances 0-4 were nearly all the same
# drawings (houses, fruit, hats, cakes, a kangaroo; the false ones were
# flags against the letters I and l), 6-8 mixed (ladybug, orange, top hat,
# igloo, against unrelated shapes), 9-10 a sample of 48 all unrelated. A
# false match only costs one pretraining image, so 8 errs on the side of
# removing (108 files, 1.6%).
#
# Idempotent: it rebuilds DIR's symlinks and lists, and touches nothing else
# in DIR. The matching is `dlp dedup SRC -r --against STAMPS --variants
# mirror,trim --remove-blank` (docs/cli.md); symbolic links are skipped in
# both sets (the stamps have none).
set -euo pipefail

out=pretrain-data
threshold=8
min_count=20
depth=1
max_per_class=0
src=/usr/share/openclipart/png
against=/usr/share/tuxpaint/stamps
build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --threshold) threshold=$2; shift 2 ;;
    --min-count) min_count=$2; shift 2 ;;
    --depth) depth=$2; shift 2 ;;
    --max-per-class) max_per_class=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --against) against=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,52p' "$0"; exit 0 ;;
    *) echo "pretrain-data.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
src=${src%/}
against=${against%/}
for d in "$src" "$against"; do
  if [ ! -d "$d" ]; then
    echo "pretrain-data: $d is missing; run scripts/install-deps.sh --pretrain" >&2
    exit 1
  fi
done
case "$threshold$min_count$depth$max_per_class" in
  *[!0-9]*) echo "pretrain-data: --threshold, --min-count, --depth and" \
              "--max-per-class take numbers" >&2
            exit 2 ;;
esac

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target dlp_cli -j "$(nproc)" >/dev/null
dlp="$build/dlp"

mkdir -p "$out"
"$dlp" dedup "$src" --recursive --against "$against" \
  --threshold "$threshold" --variants mirror,trim --remove-blank \
  --list-keep "$out/kept.txt" --list-remove "$out/removed.txt" \
  --out "$out/removed.csv" --overwrite

if [ "$depth" -lt 1 ]; then
  echo "pretrain-data: --depth is at least 1" >&2
  exit 2
fi

# Rebuild the tree: remove our symlinks and the folders they leave empty.
find "$out" -mindepth 2 -maxdepth 2 -type l -delete
find "$out" -mindepth 1 -maxdepth 1 -type d -empty -delete

src_abs=$(cd "$src" && pwd)
# label<TAB>relative path of every kept file under a category folder, then
# the categories with at least --min-count files, each cut to at most
# --max-per-class files spread evenly over its name order (file i of n is
# kept when floor((i+1)*cap/n) > floor(i*cap/n)).
while IFS= read -r f; do
  rel=${f#"$src"/}
  dir=${rel%/*}
  [ "$dir" = "$rel" ] && continue # a file directly under --src: no label
  IFS=/ read -r -a parts <<< "$dir"
  label=$(IFS=_; echo "${parts[*]:0:depth}")
  printf '%s\t%s\n' "$label" "$rel"
done < "$out/kept.txt" | LC_ALL=C sort -t "$(printf '\t')" -k1,1 -k2,2 |
  awk -F'\t' -v min="$min_count" -v cap="$max_per_class" '
    { label[NR] = $1; rel[NR] = $2; n[$1]++ }
    END {
      for (i = 1; i <= NR; i++) {
        l = label[i]; if (n[l] < min) continue
        k = idx[l]++
        if (cap > 0 && n[l] > cap &&
            int((k + 1) * cap / n[l]) <= int(k * cap / n[l])) continue
        print l "\t" rel[i]
      }
    }' > "$out/labels.tsv"

while IFS=$'\t' read -r label rel; do
  name=${rel#*/}
  for ((d = 1; d < depth; d++)); do
    [ "${name#*/}" != "$name" ] && name=${name#*/}
  done
  [ -d "$out/$label" ] || mkdir "$out/$label"
  ln -s "$src_abs/$rel" "$out/$label/${name//\//__}"
done < "$out/labels.tsv"
images=$(wc -l < "$out/labels.tsv")
classes=$(cut -f1 "$out/labels.tsv" | uniq | wc -l)
removed=$(wc -l < "$out/removed.txt")
echo "pretrain-data: $images images in $classes categories under $out" \
     "($removed removed as duplicates of $against or blank; categories" \
     "under $min_count images left out)" >&2
