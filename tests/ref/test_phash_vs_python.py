"""test_phash_vs_python.py - dlp's perceptual hashes and dedup against Python.

Reference, written here: luma as PIL's convert('L'), PIL's BOX resize to
32x32 (pHash) or 9x8 (dHash), scipy.fftpack.dct (type II, unnormalised)
along axis 0 then axis 1, the top-left 8x8 block with |c| < 1e-6 set to 0,
bit = c > numpy.median (DC included), coefficient (0,0) first (bit 63);
the mirror hash negates the odd columns; the trimmed hash is the pHash of
the bounding box of the pixels whose luma is under 247 (not compared when
that box is uniform). Files with alpha
are composited on white with the decoder's integer formula first.

What is compared: the 64-bit pHash, its mirror, the trimmed pHash and its
mirror, and the dHash, bit for bit.
The DCTs differ in the last bits (direct sums here vs FFT in scipy), which
can flip a bit only when a coefficient ties with the median, so pHash must
be equal for the large majority and within Hamming distance 2 for all; the
exact rate is printed. dHash is integer arithmetic: equal for all. Inputs:
generated arrays (smooth, random, symmetric, flat, tiny, 1/3/4 channels),
generated PNG files with alpha, and the real tuxpaint stamps when installed.
Then `phash dedup` on a small generated collection, checked against the
nearest neighbours computed here.

Run with /usr/bin/python3; env DLP_TOOLS = folder holding the phash tool.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import scipy.fftpack
from PIL import Image

TOOL = os.path.join(os.environ.get("DLP_TOOLS", "."), "phash")
SANITIZED = os.environ.get("DLP_SANITIZED", "0") in ("1", "ON", "TRUE", "true")
STAMPS = "/usr/share/tuxpaint/stamps"
TMP = tempfile.mkdtemp(prefix="dlp_phash_")
passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(("ok   " if ok else "FAIL ") + name + (" " + detail if detail else ""))


# ---- the reference ---------------------------------------------------------

def luma(rgb_or_gray):
    a = np.ascontiguousarray(rgb_or_gray)
    if a.ndim == 2:
        return a
    return np.asarray(Image.fromarray(a[:, :, :3]).convert("L"))


def box(gray, w, h):
    return np.asarray(Image.fromarray(gray).resize((w, h), Image.BOX,
                                                   reducing_gap=None))


def bits_of(c, mirror):
    c = c.copy()
    if mirror:
        c[:, 1::2] = -c[:, 1::2]
    med = np.median(c)
    h = 0
    for b in (c > med).reshape(-1):
        h = (h << 1) | int(b)
    return h


def phash_pair(gray):
    small = box(gray, 32, 32).astype(np.float64)
    d = scipy.fftpack.dct(scipy.fftpack.dct(small, axis=0), axis=1)[:8, :8]
    d[np.abs(d) < 1e-6] = 0.0
    flat = int(not np.any(d.reshape(-1)[1:] != 0))
    return bits_of(d, False), bits_of(d, True), flat


def trim(gray):
    ink = gray < 247
    if not ink.any():
        return gray
    ys, xs = np.where(ink.any(axis=1))[0], np.where(ink.any(axis=0))[0]
    return np.ascontiguousarray(gray[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1])


def ref_hashes(gray):
    """(pHash, mirror, dHash, flat, trimmed pHash, trimmed mirror,
    trimmed flat)."""
    h, hm, flat = phash_pair(gray)
    th, thm, tflat = phash_pair(trim(gray))
    s9 = box(gray, 9, 8).astype(np.int32)
    dh = 0
    for b in (s9[:, 1:] > s9[:, :-1]).reshape(-1):
        dh = (dh << 1) | int(b)
    return h, hm, dh, flat, th, thm, tflat


def decode_like_dlp(path):
    """RGB or gray uint8 as dlp's decoder returns it by default."""
    im = Image.open(path)
    im.load()
    alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    if alpha:
        a = np.asarray(im.convert("RGBA")).astype(np.uint32)
        al = a[:, :, 3:4]
        return ((a[:, :, :3] * al + 255 * (255 - al) + 127) // 255).astype(
            np.uint8)
    if im.mode in ("L", "1"):
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))


# ---- the tool --------------------------------------------------------------

def tool_hashes(paths):
    r = subprocess.run([TOOL, "hash"] + paths, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("phash hash failed: " + r.stderr.strip())
    out = {}
    for line in r.stdout.splitlines():
        f = line.split(" ", 8)
        if f[0] == "ERROR":
            out[line.rsplit(" ", 1)[-1]] = None
        else:
            out[f[8]] = (int(f[0], 16), int(f[1], 16), int(f[2], 16),
                         int(f[3]), int(f[4], 16), int(f[5], 16), int(f[6]))
    return out


def popcount(x):
    return bin(x).count("1")


def compare(name, items):
    """items: list of (path for the tool, reference hashes)."""
    got = {}
    for i in range(0, len(items), 200):
        got.update(tool_hashes([p for p, _ in items[i:i + 200]]))
    n = len(items)
    exact = exact_m = exact_d = flat_ok = exact_t = 0
    worst = 0
    for p, ref in items:
        g = got.get(p)
        if g is None:
            report(False, name + " hashed " + p)
            continue
        exact += g[0] == ref[0]
        exact_m += g[1] == ref[1]
        exact_d += g[2] == ref[2]
        flat_ok += g[3] == ref[3] and g[6] == ref[6]
        exact_t += g[4] == ref[4] and g[5] == ref[5]
        worst = max([worst] + [popcount(g[k] ^ ref[k]) for k in (0, 1, 4, 5)])
    detail = "(%d images: pHash equal %d = %.1f%%, mirror equal %d, " \
             "trimmed pair equal %d, dHash equal %d, max distance %d)" % (
                 n, exact, 100.0 * exact / n, exact_m, exact_t, exact_d,
                 worst)
    report(worst <= 2 and min(exact, exact_m, exact_t) >= 0.9 * n,
           name + " pHash within 2 bits, >= 90% equal", detail)
    return exact_d, flat_ok, n


def smooth(h, w, c, rng):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for _ in range(c):
        fy, fx = rng.uniform(0.3, 5, 2)
        ph = rng.uniform(0, 6)
        v = 127.5 + 110 * np.sin(fy * np.pi * y / h + ph) * np.cos(
            fx * np.pi * x / w) + 15 * (x / w - 0.5)
        chans.append(np.clip(np.rint(v), 0, 255))
    a = np.stack(chans, axis=-1).astype(np.uint8)
    return a[:, :, 0] if c == 1 else a


def generated_arrays(rng):
    out = []
    for i in range(160):
        c = [1, 3, 4][i % 3]
        h, w = (int(v) for v in rng.integers(8, 300, 2))
        kind = i % 5
        if kind == 0:
            shape = (h, w) if c == 1 else (h, w, c)
            a = rng.integers(0, 256, size=shape, dtype=np.uint8)
        elif kind == 3:  # left-right symmetric: true zeros in odd columns
            a = smooth(h, w, c, rng)
            a = np.concatenate([a, a[:, ::-1]], axis=1)
        elif kind == 4 and i % 20 == 4:  # uniform
            shape = (h, w) if c == 1 else (h, w, c)
            a = np.full(shape, int(rng.integers(0, 256)), dtype=np.uint8)
        else:
            a = smooth(h, w, c, rng)
        out.append(a)
    for i in range(12):  # drawings on white margins: the trimmed hash
        h, w = (int(v) for v in rng.integers(20, 120, 2))
        canvas = np.full((h + 40, w + 60, 3), 255, np.uint8)
        y, x = int(rng.integers(0, 40)), int(rng.integers(0, 60))
        ink = np.minimum(smooth(h, w, 3, rng), 246)
        if i % 4 == 0:  # a filled rectangle: uniform bounding box
            ink[:] = (200, 30, 30)
        canvas[y:y + h, x:x + w] = ink
        out.append(canvas)
    out.append(np.full((40, 50, 3), 255, np.uint8))
    out.append(smooth(5, 7, 3, rng))  # smaller than the hash: BOX upsamples
    return out


def test_arrays(rng):
    items = []
    for i, a in enumerate(generated_arrays(rng)):
        p = os.path.join(TMP, "gen%03d.npy" % i)
        np.save(p, a)
        items.append((p, ref_hashes(luma(a))))
    exact_d, flat_ok, n = compare("generated arrays", items)
    report(exact_d == n, "generated arrays dHash equal", "(%d/%d)" % (exact_d,
                                                                     n))
    report(flat_ok == n, "generated arrays flat flag equal")
    flats = [p for p, r in items if r[3]]
    got = tool_hashes(flats)
    report(len(flats) >= 2 and all(got[p][0] == 1 << 63 for p in flats),
           "uniform images hash to 0x8000000000000000",
           "(%d uniform)" % len(flats))


def test_png_files(rng):
    items = []
    for i in range(24):
        h, w = (int(v) for v in rng.integers(20, 200, 2))
        a = smooth(h, w, 4 if i % 2 == 0 else 3, rng)
        if i % 2 == 0:
            a[:, :, 3] = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        p = os.path.join(TMP, "file%02d.png" % i)
        Image.fromarray(a).save(p)
        items.append((p, ref_hashes(luma(decode_like_dlp(p)))))
    exact_d, _, n = compare("generated PNG files (alpha on white)", items)
    report(exact_d == n, "generated PNG files dHash equal")


def test_stamps():
    paths = sorted(glob.glob(os.path.join(STAMPS, "**", "*.png"),
                             recursive=True))
    if not paths:
        print("skip real stamps: %s not installed" % STAMPS)
        return
    if SANITIZED:
        paths = paths[::10]
    items = [(p, ref_hashes(luma(decode_like_dlp(p)))) for p in paths]
    exact_d, _, n = compare("tuxpaint stamps", items)
    report(exact_d >= 0.99 * n, "tuxpaint stamps dHash equal",
           "(%d/%d)" % (exact_d, n))


# ---- dedup -----------------------------------------------------------------

def save_png(a, path, level=6):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(a).save(path, compress_level=level)


def make_collection(rng):
    """A reference folder and a source folder of generated pictures: copies
    (same bytes), resized, mirrored, padded with white and unrelated images,
    a blank one, a symlink and a file that is not an image."""
    ref, src = os.path.join(TMP, "ref"), os.path.join(TMP, "src")
    # Drawings never whiter than 240, so their bounding box is the image.
    bases = [np.minimum(smooth(120, 160, 3, rng), 240) for _ in range(6)]
    for i, b in enumerate(bases):
        save_png(b, os.path.join(ref, "cat%d" % (i % 2), "r%d.png" % i))
    shutil.copy(os.path.join(ref, "cat0", "r0.png"),
                os.path.join(TMP, "copy.png"))
    resaved = bases[1].copy()
    resaved[::7, ::5] //= 2  # a few darker pixels, other bytes too
    save_png(resaved, os.path.join(src, "a", "resaved.png"), level=1)
    os.replace(os.path.join(TMP, "copy.png"), os.path.join(src, "a",
                                                           "copy.png"))
    small = np.asarray(Image.fromarray(bases[2]).resize((80, 60),
                                                        Image.BILINEAR))
    save_png(small, os.path.join(src, "b", "smaller.png"))
    save_png(np.ascontiguousarray(bases[3][:, ::-1]),
             os.path.join(src, "b", "mirrored.png"))
    canvas = np.full((200, 260, 3), 255, np.uint8)
    canvas[30:150, 50:210] = bases[4]
    save_png(canvas, os.path.join(src, "b", "padded.png"))
    for i in range(8):
        save_png(smooth(100, 100, 3, rng), os.path.join(src, "c",
                                                        "new%d.png" % i))
    save_png(np.full((50, 50, 3), 255, np.uint8),
             os.path.join(src, "c", "blank.png"))
    os.symlink(os.path.join(src, "c", "new0.png"),
               os.path.join(src, "a", "link.png"))
    with open(os.path.join(src, "a", "notes.txt"), "w") as f:
        f.write("not an image\n")
    return ref, src


def nearest_ref(src_paths, ref_paths):
    refs = [ref_hashes(luma(decode_like_dlp(p))) for p in ref_paths]
    out = {}
    for p in src_paths:
        h, hm, _, flat, th, thm, tflat = ref_hashes(luma(decode_like_dlp(p)))
        best = 65
        for r in refs:
            if flat or r[3]:
                continue
            best = min(best, popcount(h ^ r[0]), popcount(hm ^ r[0]))
            if not tflat and not r[6]:
                best = min(best, popcount(th ^ r[4]), popcount(thm ^ r[4]))
        out[p] = (best, flat)
    return out


def test_dedup(rng):
    ref, src = make_collection(rng)
    kept_f, rem_f = os.path.join(TMP, "kept.txt"), os.path.join(TMP, "rm.txt")
    threshold = 8
    r = subprocess.run([TOOL, "dedup", "--against", ref, "--threshold",
                        str(threshold), src, "--out", kept_f, "--removed",
                        rem_f, "--stats"], capture_output=True, text=True)
    report(r.returncode == 0, "dedup runs", r.stderr.strip().splitlines()[-1])
    if r.returncode != 0:
        return
    kept = open(kept_f).read().split()
    removed = {}
    for line in open(rem_f):
        f = line.rstrip("\n").split("\t")
        removed[f[0]] = f[1:]
    src_imgs = sorted(glob.glob(os.path.join(src, "*", "*.png")))
    src_imgs = [p for p in src_imgs if not os.path.islink(p)]
    ref_imgs = sorted(glob.glob(os.path.join(ref, "*", "*.png")))
    near = nearest_ref(src_imgs, ref_imgs)
    want_removed = {p for p, (d, flat) in near.items()
                    if d <= threshold or flat}
    report(set(kept) == set(src_imgs) - want_removed and
           set(removed) == want_removed,
           "dedup keeps exactly the files the Python reference keeps",
           "(kept %d, removed %d)" % (len(kept), len(removed)))
    expect = {"a/copy.png": "same-bytes", "a/resaved.png": "direct",
              "b/smaller.png": "direct", "b/mirrored.png": "mirrored",
              "b/padded.png": "trimmed",
              "c/blank.png": "uniform"}
    for rel, how in expect.items():
        got = removed.get(os.path.join(src, rel))
        report(got is not None and got[1] == how, "dedup removes %s as %s"
               % (rel, how), str(got))
    report(not any("link.png" in p or "notes.txt" in p for p in kept),
           "dedup skips symlinks and non-images")
    bad = subprocess.run([TOOL, "dedup", "--against", os.path.join(TMP, "no"),
                          "--threshold", "4", src, "--out", kept_f],
                         capture_output=True, text=True)
    report(bad.returncode != 0 and "cannot list" in bad.stderr,
           "dedup reports a missing folder", bad.stderr.strip())


def main():
    if not os.path.exists(TOOL):
        print("FAIL phash tool not found at " + TOOL)
        return 1
    rng = np.random.default_rng(20261124)
    try:
        test_arrays(rng)
        test_png_files(rng)
        test_stamps()
        test_dedup(rng)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
