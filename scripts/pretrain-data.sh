#!/usr/bin/env bash
# pretrain-data.sh - builds the pretraining set: the clip art of Debian's
# openclipart-png with every image that also appears among the demo's
# tuxpaint stamps removed (same bytes, or a perceptual hash within the
# threshold, mirrored copies included), so the demo's accuracy is honest.
#
#   scripts/pretrain-data.sh [--out DIR] [--threshold T] [--min-count N]
#                            [--src DIR] [--against DIR] [--build DIR]
#
#   --out DIR        the set: DIR/<category>/<file> symlinks (default
#                    pretrain-data); DIR/kept.txt and DIR/removed.txt list
#                    what was kept and what was removed and why
#   --threshold T    pHash bits (of 64) for "the same picture" (default 8;
#                    see below)
#   --min-count N    leave out categories with fewer kept images (default 20)
#   --src DIR        default /usr/share/openclipart/png
#                    (scripts/install-deps.sh --pretrain installs it)
#   --against DIR    default /usr/share/tuxpaint/stamps (the demo's images)
#   --build DIR      CMake build folder for the phash tool (default build)
#
# Labels are the first folder under --src ("animals/birds/x.png" is an
# animal); the file name keeps the rest of the path ("birds__x.png"), so
# names are unique. Symbolic links in --src (the package files an image
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
# in DIR. Dedup runs in the test tool tests/phash for now (library functions
# dlp_hash_files + dlp_hash_match_nearest; a `dlp` sub-command would be the
# user-facing form later).
set -euo pipefail

out=pretrain-data
threshold=8
min_count=20
src=/usr/share/openclipart/png
against=/usr/share/tuxpaint/stamps
build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --threshold) threshold=$2; shift 2 ;;
    --min-count) min_count=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --against) against=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
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
case "$threshold$min_count" in
  *[!0-9]*) echo "pretrain-data: --threshold and --min-count take numbers" >&2
            exit 2 ;;
esac

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target phash -j "$(nproc)" >/dev/null
tool="$build/tests/phash"

mkdir -p "$out"
"$tool" dedup --against "$against" --threshold "$threshold" "$src" \
  --out "$out/kept.tmp" --removed "$out/removed.tmp" --stats
mv "$out/kept.tmp" "$out/kept.txt"
mv "$out/removed.tmp" "$out/removed.txt"

# Rebuild the tree: remove our symlinks and the folders they leave empty.
find "$out" -mindepth 2 -maxdepth 2 -type l -delete
find "$out" -mindepth 1 -maxdepth 1 -type d -empty -delete

src_abs=$(cd "$src" && pwd)
declare -A count=()
while IFS= read -r f; do
  rel=${f#"$src"/}
  cat=${rel%%/*}
  [ "$cat" = "$rel" ] && continue # a file directly under --src: no label
  count[$cat]=$((${count[$cat]:-0} + 1))
done < "$out/kept.txt"

classes=0
images=0
while IFS= read -r f; do
  rel=${f#"$src"/}
  cat=${rel%%/*}
  [ "$cat" = "$rel" ] && continue
  [ "${count[$cat]}" -lt "$min_count" ] && continue
  name=${rel#*/}
  [ -d "$out/$cat" ] || mkdir "$out/$cat"
  ln -s "$src_abs/$rel" "$out/$cat/${name//\//__}"
  images=$((images + 1))
done < "$out/kept.txt"
for c in "${!count[@]}"; do
  [ "${count[$c]}" -ge "$min_count" ] && classes=$((classes + 1))
done
removed=$(wc -l < "$out/removed.txt")
echo "pretrain-data: $images images in $classes categories under $out" \
     "($removed removed as duplicates of $against or blank; categories" \
     "under $min_count images left out)" >&2
