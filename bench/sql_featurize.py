#!/usr/bin/python3
"""sql_featurize.py - featurizing through SQL vs the dlp featurize CLI.

The same N images (JPEG 500x375 made from scikit-image's sample photographs,
or seeded noise when skimage is missing), the same model (the zoo's
MobileNetV2 with random weights at 224x224 by default), the same thread
count, back to back, best of --repeat rounds:

  cli             dlp featurize DIR --model M --random-weights --out f.db
  sql-rows        dlp sql f.db "CREATE TABLE f AS SELECT image, features FROM
                  dlp_featurize_rows(M, 'SELECT path FROM dlp_images(DIR)',
                  '{"random_weights":true}')"       (batched)
  sql-scalar      dlp sql f.db "CREATE TABLE f AS SELECT path,
                  dlp_featurize(M, path, '{...}') FROM dlp_images(DIR)"
                  (one image per network call)
  shell-rows      the stock sqlite3 shell with .load libdlpsql, as sql-rows

Wall times include opening the model and writing the table on every side.
Throughput ratios vs cli are the figures to compare (the machine is shared).

Usage: /usr/bin/python3 bench/sql_featurize.py --build build [--n 1000]
       [--model MobileNetV2] [--repeat 2]
Every run uses all CPUs (the CLI's default; the extension's context too).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image


def make_images(d, n):
    os.makedirs(d, exist_ok=True)
    try:
        from skimage import data as sk
        srcs = [sk.astronaut(), sk.chelsea(), sk.coffee(), sk.rocket()]
    except Exception:
        srcs = None
    rng = np.random.default_rng(11)
    for i in range(n):
        p = os.path.join(d, f"img{i:05d}.jpg")
        if os.path.exists(p):
            continue
        if srcs:
            im = Image.fromarray(srcs[i % len(srcs)]).convert("RGB")
            im = im.resize((500, 375), Image.LANCZOS)
            a = np.asarray(im, dtype=np.int16)
            a = a + rng.integers(-8, 9, a.shape)
            im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
        else:
            im = Image.fromarray(rng.integers(0, 256, (375, 500, 3),
                                              dtype=np.uint8))
        im.save(p, quality=90)


def timed(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--model", default="MobileNetV2")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "data", "sql"))
    ap.add_argument("--skip", default="", help="comma-separated runs to skip")
    a = ap.parse_args()
    dlp = os.path.abspath(os.path.join(a.build, "dlp"))
    ext = os.path.abspath(os.path.join(a.build, "libdlpsql"))
    imgs = os.path.abspath(os.path.join(a.data, f"n{a.n}"))
    make_images(imgs, a.n)
    tmp = tempfile.mkdtemp(prefix="dlp-sql-bench.")
    env = dict(os.environ, DLP_MODEL_DIR=os.path.join(tmp, "cache"))
    opts = '{"random_weights":true}'
    m = a.model
    src = f"SELECT path FROM dlp_images(''{imgs}'')"
    rows_sql = (f"CREATE TABLE f AS SELECT image, features FROM "
                f"dlp_featurize_rows('{m}', '{src}', '{opts}')")
    scalar_sql = (f"CREATE TABLE f AS SELECT path, dlp_featurize('{m}', path, "
                  f"'{opts}') AS features FROM dlp_images('{imgs}')")
    runs = {
        "cli": lambda o: [dlp, "featurize", imgs, "--model", m,
                          "--random-weights", "--out", o, "-q"],
        "sql-rows": lambda o: [dlp, "sql", o, rows_sql],
        "sql-scalar": lambda o: [dlp, "sql", o, scalar_sql],
        "shell-rows": lambda o: ["sqlite3", "-cmd", f".load {ext}", o,
                                 rows_sql],
    }
    skip = set(filter(None, a.skip.split(",")))
    best = {k: float("inf") for k in runs if k not in skip}
    for rnd in range(a.repeat):
        for k in best:
            out = os.path.join(tmp, f"{k}.db")
            if os.path.exists(out):
                os.remove(out)
            t = timed(runs[k](out), env)
            best[k] = min(best[k], t)
            print(f"round {rnd + 1} {k:11s} {a.n / t:7.1f} img/s",
                  file=sys.stderr)
    shutil.rmtree(tmp)
    base = best.get("cli")
    print(f"{a.n} JPEG 500x375 images, {m} (random weights), "
          f"best of {a.repeat}")
    print("| run | seconds | images/s | vs CLI |")
    print("|---|---|---|---|")
    for k, t in best.items():
        ratio = f"{base / t:.0%}" if base else "-"
        print(f"| {k} | {t:.2f} | {a.n / t:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
