#!/usr/bin/python3
"""image_pipeline.py - read + decode + resize to 299x299 + normalise, side by side.

Peers, all in this one run, on the same files, same thread counts:
  dlp                 bench_decode (dlp_batch_files_to_tensor: libjpeg-turbo
                      DCT-scaled decode, PIL-exact antialiased bilinear resize)
  pil                 Image.open + convert RGB + resize(BILINEAR) (antialiased)
  pil-draft           the same with Image.draft('RGB', (299, 299)) first
  opencv              cv2.imdecode + resize(INTER_AREA) + BGR->RGB
  opencv-reduced      cv2.imdecode(IMREAD_REDUCED_COLOR_k), k the largest of
                      2/4/8 that keeps >= 299 px, + resize(INTER_AREA)
  torchvision         torchvision.io.decode_jpeg + resize(antialias=True)
Each ends with float32 x/127.5-1. Python peers run on a thread pool of N
threads (all of them release the GIL in decode and resize; their own internal
threading is pinned to 1 per call). Figures are the best of --repeat rounds,
every tool running once per round in turn, so load drifts hit all alike.

Test photos are made from scikit-image's sample photographs (Debian
python3-skimage), resized with LANCZOS to 500x375, 1024x768 and 4000x3000
plus mild noise so they compress like camera photos, saved as JPEG q=90.

Usage: /usr/bin/python3 bench/image_pipeline.py --dlp build/bench/bench_decode
       [--threads 1,2] [--repeat 5]
"""
import argparse
import io
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

SIZES = [(500, 375, 48), (1024, 768, 32), (4000, 3000, 8)]
TARGET = 299
HERE = os.path.dirname(os.path.abspath(__file__))


def make_photos(root):
    from skimage import data as skdata
    sources = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(),
               skdata.rocket(), skdata.motorcycle_left()
               if hasattr(skdata, "motorcycle_left") else skdata.astronaut()]
    rng = np.random.default_rng(7)
    sets = {}
    for w, h, count in SIZES:
        d = os.path.join(root, f"{w}x{h}")
        os.makedirs(d, exist_ok=True)
        files = []
        for i in range(count):
            path = os.path.join(d, f"photo_{i:03d}.jpg")
            files.append(path)
            if os.path.exists(path):
                continue
            src = Image.fromarray(sources[i % len(sources)][..., :3])
            # a different crop of the source each time, then resize
            sw, sh = src.size
            cw, ch = int(sw * 0.8), int(sh * 0.8)
            x0 = int(rng.integers(0, sw - cw + 1))
            y0 = int(rng.integers(0, sh - ch + 1))
            img = src.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.LANCZOS)
            a = np.asarray(img).astype(np.int16)
            a = a + rng.normal(0, 4, a.shape).astype(np.int16)
            img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
            img.save(path, quality=90)
        sets[(w, h)] = files
    return sets


def normalise(a):
    return a.astype(np.float32) / 127.5 - 1.0


def pil_plain(path):
    with Image.open(path) as im:
        im = im.convert("RGB").resize((TARGET, TARGET), Image.BILINEAR)
        return normalise(np.asarray(im))


def pil_draft(path):
    with Image.open(path) as im:
        im.draft("RGB", (TARGET, TARGET))
        im = im.convert("RGB").resize((TARGET, TARGET), Image.BILINEAR)
        return normalise(np.asarray(im))


def reduced_flag(cv2, w, h):
    for k, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                    (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if w // k >= TARGET and h // k >= TARGET:
            return flag
    return cv2.IMREAD_COLOR


def make_opencv(reduced):
    import cv2
    cv2.setNumThreads(1)

    def run(path):
        buf = np.fromfile(path, dtype=np.uint8)
        flag = cv2.IMREAD_COLOR
        if reduced:
            with Image.open(path) as im:  # header only, as a user would
                w, h = im.size
            flag = reduced_flag(cv2, w, h)
        a = cv2.imdecode(buf, flag)
        a = cv2.resize(a, (TARGET, TARGET), interpolation=cv2.INTER_AREA)
        a = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
        return normalise(a)
    return run


def make_torchvision():
    import torch
    import torchvision
    from torchvision.io import decode_jpeg, read_file
    import torchvision.transforms.functional as F
    torch.set_num_threads(1)

    def run(path):
        t = decode_jpeg(read_file(path))
        t = F.resize(t, [TARGET, TARGET], antialias=True)
        return t.float().div_(127.5).sub_(1.0)
    return run, torchvision.__version__


def time_python_once(pool, fn, files):
    t0 = time.perf_counter()
    list(pool.map(fn, files))
    return time.perf_counter() - t0


def time_dlp_once(binary, files, threads):
    out = subprocess.run([binary, "--threads", str(threads), "--size", str(TARGET),
                          "--repeat", "1"] + files,
                         check=True, capture_output=True, text=True).stdout
    fields = dict(kv.split("=") for kv in out.split()[1:])
    return float(fields["best_s"])


def measure(peers, dlp_bin, files, threads, repeat):
    """Best time of each tool over `repeat` rounds; within a round every tool
    runs once, in turn, so slow drifts of the machine's load hit all alike."""
    best = {name: float("inf") for name, _ in peers}
    best["dlp"] = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _, fn in peers:
            list(pool.map(fn, files[:2]))  # warm-up (imports, caches)
        for _ in range(repeat):
            for name, fn in peers:
                best[name] = min(best[name], time_python_once(pool, fn, files))
            best["dlp"] = min(best["dlp"], time_dlp_once(dlp_bin, files, threads))
    return {name: len(files) / t for name, t in best.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dlp", required=True, help="path to build/bench_decode")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    args = ap.parse_args()

    import cv2
    sets = make_photos(args.data)
    tv_run, tv_version = make_torchvision()
    peers = [("pil", pil_plain), ("pil-draft", pil_draft),
             ("opencv", make_opencv(False)), ("opencv-reduced", make_opencv(True)),
             ("torchvision", tv_run)]
    print(f"# versions: Pillow {Image.__version__}, OpenCV {cv2.__version__}, "
          f"torchvision {tv_version}, numpy {np.__version__}")
    print(f"# OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          "(no BLAS in this pipeline)")
    print("| size | threads | dlp img/s | best peer | peer img/s | dlp / best | "
          + " | ".join(p for p, _ in peers) + " |")
    print("|---" * (6 + len(peers)) + "|")
    for (w, h), files in sets.items():
        for threads in (int(t) for t in args.threads.split(",")):
            rates = measure(peers, args.dlp, files, threads, args.repeat)
            d = rates.pop("dlp")
            best_name = max(rates, key=rates.get)
            print(f"| {w}x{h} | {threads} | {d:.0f} | {best_name} | "
                  f"{rates[best_name]:.0f} | {d / rates[best_name]:.2f}x | "
                  + " | ".join(f"{rates[p]:.0f}" for p, _ in peers) + " |",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
