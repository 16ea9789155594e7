#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages dlp needs. Idempotent: quiet
# and quick when everything is present.
#   scripts/install-deps.sh           build + tests + demo
#   scripts/install-deps.sh --bench   also the peers the benchmarks compare with
#   scripts/install-deps.sh --pretrain  also the pretraining images (131 MB;
#                                     scripts/pretrain-data.sh; not for CI)
# Runs apt-get as root (directly, or through sudo when available).
set -euo pipefail

build=(build-essential cmake pkg-config
       libjpeg62-turbo-dev libpng-dev libwebp-dev libgif-dev libexif-dev
       libstb-dev libsqlite3-dev libcjson-dev
       libdnnl-dev libhdf5-dev libcurl4-openssl-dev libssl-dev)
tests=(sqlite3 python3 python3-numpy python3-pil
       python3-torch python3-torchvision python3-onnx python3-h5py
       python3-sklearn chromium)
demo=(tuxpaint-stamps-default)
bench=(python3-opencv python3-torchvision python3-skimage
       libopenblas0-pthread) # numpy's BLAS for the sklearn peer
pretrain=(openclipart-png) # ~8,000 clip-art PNGs in category folders

want=("${build[@]}" "${tests[@]}" "${demo[@]}")
for arg in "$@"; do
  case "$arg" in
    --bench) want+=("${bench[@]}") ;;
    --pretrain) want+=("${pretrain[@]}") ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-deps: not root and no sudo; please run as root:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
