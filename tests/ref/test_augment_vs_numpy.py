"""test_augment_vs_numpy.py - dlp's training augmentation against numpy + PIL.

References, computed here:
- geometry: the crop box dlp drew (printed by the tool) cut with numpy
  slicing, resized with Pillow's Image.resize(reducing_gap=None) and flipped
  with [:, ::-1] must equal dlp's uint8 output bit for bit (1, 3 and 4
  channels; alpha is dropped, colour channels resized independently);
- colour: numpy versions of torchvision's functional adjust_brightness,
  adjust_contrast and adjust_saturation on uint8 tensors: in float32,
  f * img + float32(1 - f) * other, clipped to [0, 255], truncated to uint8;
  grayscale = trunc(0.2989 R + 0.587 G + 0.114 B) in float32 left to right;
  the contrast mean is the exact mean of the grayscale rounded to float32.
  dlp must match bit for bit. When torchvision is importable the numpy
  versions are also checked against it (brightness and saturation equal;
  contrast may differ by 1 where torch's float32 mean differs in its last
  bit, reported);
- the one-call tensor (dlp_image_augment_to_tensor, torch normalisation,
  NCHW): the same uint8 reference normalised in numpy, atol 1e-6.

Run with /usr/bin/python3; env DLP_TOOLS = folder holding the phash tool.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

TOOL = os.path.join(os.environ.get("DLP_TOOLS", "."), "phash")
TMP = tempfile.mkdtemp(prefix="dlp_augment_")
FILTERS = {"bilinear": Image.BILINEAR, "box": Image.BOX,
           "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(("ok   " if ok else "FAIL ") + name + (" " + detail if detail else ""))


def run(a, args):
    inp, out = os.path.join(TMP, "in.npy"), os.path.join(TMP, "out.npy")
    np.save(inp, np.ascontiguousarray(a))
    r = subprocess.run([TOOL, "augment", inp, out] + args,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("phash augment failed: " + r.stderr.strip())
    f = r.stdout.split()
    prm = [int(v) for v in f[:5]] + [float(v) for v in f[5:8]]
    return prm, np.load(out)


def smooth(h, w, c, rng):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for _ in range(c):
        fy, fx = rng.uniform(0.5, 4, 2)
        ph = rng.uniform(0, 6)
        v = 127.5 + 120 * np.sin(fy * np.pi * y / h + ph) * np.cos(
            fx * np.pi * x / w)
        chans.append(np.clip(np.rint(v), 0, 255))
    a = np.stack(chans, axis=-1).astype(np.uint8)
    return a[:, :, 0] if c == 1 else a


# ---- numpy references ------------------------------------------------------

def crop_resize_flip(a, prm, w, h, filt):
    x, y, cw, ch, flip = prm[:5]
    box = np.ascontiguousarray(a[y:y + ch, x:x + cw])
    if box.ndim == 2:
        out = np.asarray(Image.fromarray(box).resize((w, h), FILTERS[filt],
                                                     reducing_gap=None))
    else:  # channels independently (no premultiplied alpha), alpha dropped
        out = np.stack([np.asarray(Image.fromarray(
            np.ascontiguousarray(box[:, :, k])).resize(
                (w, h), FILTERS[filt], reducing_gap=None)) for k in range(3)],
            axis=-1)
    return out[:, ::-1] if flip else out


def blend(img, other, f):
    a = np.float32(f) * img.astype(np.float32)
    b = np.float32(1.0 - f) * (other.astype(np.float32)
                               if isinstance(other, np.ndarray)
                               else np.float32(other))
    return np.clip(a + b, 0, 255).astype(np.uint8)


def grayscale(img):
    r, g, b = (img[:, :, k].astype(np.float32) for k in range(3))
    return (np.float32(0.2989) * r + np.float32(0.587) * g +
            np.float32(0.114) * b).astype(np.uint8)


def adjust_brightness(img, f):
    return blend(img, 0.0, f)


def adjust_contrast(img, f):
    g = img if img.ndim == 2 else grayscale(img)
    mean = np.float32(int(g.sum(dtype=np.int64)) / g.size)
    return blend(img, mean, f)


def adjust_saturation(img, f):
    if img.ndim == 2:
        return img
    return blend(img, grayscale(img)[:, :, None], f)


def jitter(img, fb, fc, fs):
    if fb != 1.0:
        img = adjust_brightness(img, fb)
    if fc != 1.0:
        img = adjust_contrast(img, fc)
    if fs != 1.0:
        img = adjust_saturation(img, fs)
    return img


# ---- tests -----------------------------------------------------------------

def test_geometry(rng):
    bad = 0
    n = 0
    for i in range(60):
        c = [1, 3, 4][i % 3]
        h, w = (int(v) for v in rng.integers(20, 260, 2))
        a = smooth(h, w, c, rng)
        ow, oh = (int(v) for v in rng.integers(8, 140, 2))
        filt = list(FILTERS)[i % 4]
        scale = ["0.08,1", "0.5,1", "0.9,1", "1,1"][i % 4]
        ratio = ["0.75,1.3333333333333333", "0.2,5", "1,1"][i % 3]
        prm, got = run(a, ["--size", "%dx%d" % (ow, oh), "--seed", str(i),
                           "--filter", filt, "--scale", scale, "--ratio",
                           ratio, "--jitter", "0,0,0"])
        x, y, cw, ch = prm[:4]
        inside = 0 <= x and 0 <= y and x + cw <= w and y + ch <= h
        ref = crop_resize_flip(a, prm, ow, oh, filt)
        n += 1
        if not inside or got.shape != ref.reshape(oh, ow, -1).shape or \
                not np.array_equal(got.reshape(ref.shape), ref):
            bad += 1
            print("  mismatch: %dx%dx%d seed %d params %s" % (w, h, c, i, prm))
    report(bad == 0, "crop box + PIL resize + flip equal dlp",
           "(%d cases, %d bad)" % (n, bad))


def test_fallback():
    # A 400x10 strip cannot hold any box of ratio 0.75..1.33 and area >= 8%
    # of it... except small ones; force the fallback with scale near 1.
    a = np.zeros((10, 400, 3), np.uint8)
    prm, _ = run(a, ["--size", "8x8", "--scale", "0.9,1", "--seed", "3",
                     "--jitter", "0,0,0"])
    # torchvision: in_ratio 40 > 4/3: h = 10, w = round(10 * 4/3) = 13,
    # centred: x = (400 - 13) // 2 = 193, y = 0.
    report(prm[:4] == [193, 0, 13, 10], "centre-crop fallback as torchvision",
           str(prm[:4]))


def test_jitter(rng):
    cases = 0
    bad = []
    for i in range(48):
        c = [3, 1][i % 2] if i % 6 else 3
        h, w = (int(v) for v in rng.integers(5, 90, 2))
        a = (rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
             if i % 3 == 0 else smooth(h, w, c, rng))
        if c == 1:
            a = a.reshape(h, w)
        f = [float(v) for v in rng.uniform(0.0, 2.0, 3)]
        if i % 8 == 1:
            f = [0.0, 0.0, 0.0]
        if i % 8 == 2:
            f = [1.0, 1.7, 1.0]
        prm = "0,0,%d,%d,0,%.17g,%.17g,%.17g" % (w, h, f[0], f[1], f[2])
        _, got = run(a, ["--size", "%dx%d" % (w, h), "--params", prm])
        ref = jitter(a, *f)
        cases += 1
        if not np.array_equal(got.reshape(ref.shape), ref):
            diff = np.abs(got.reshape(ref.shape).astype(int) - ref)
            bad.append((i, f, int(diff.max()), int((diff > 0).sum())))
    report(not bad, "colour jitter equals the numpy torchvision formulas",
           "(%d cases) %s" % (cases, bad[:3]))


def test_numpy_vs_torchvision(rng):
    try:
        import torch
        import torchvision.transforms.functional as TF
    except Exception as e:  # noqa: BLE001 - optional cross-check
        print("skip torchvision cross-check: %s" % e)
        return
    same = {"brightness": 0, "saturation": 0, "contrast": 0}
    pix_diff = 0
    n = 0
    for i in range(40):
        h, w = (int(v) for v in rng.integers(5, 90, 2))
        a = smooth(h, w, 3, rng)
        f = float(rng.uniform(0.0, 2.0))
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
        tv = {"brightness": TF.adjust_brightness(t, f),
              "contrast": TF.adjust_contrast(t, f),
              "saturation": TF.adjust_saturation(t, f)}
        mine = {"brightness": adjust_brightness(a, f),
                "contrast": adjust_contrast(a, f),
                "saturation": adjust_saturation(a, f)}
        for k in same:
            ref = tv[k].numpy().transpose(1, 2, 0)
            same[k] += np.array_equal(ref, mine[k])
            if k == "contrast":
                pix_diff = max(pix_diff, int(np.abs(ref.astype(int) -
                                                    mine[k]).max()))
        n += 1
    report(same["brightness"] == n and same["saturation"] == n and
           same["contrast"] >= 0.9 * n and pix_diff <= 1,
           "numpy references equal torchvision.transforms.functional",
           "(%d images: brightness %d, saturation %d, contrast %d equal, "
           "contrast max diff %d)" % (n, same["brightness"],
                                      same["saturation"], same["contrast"],
                                      pix_diff))


def test_tensor(rng):
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    worst = 0.0
    for i in range(12):
        c = [3, 1, 4][i % 3]
        a = smooth(int(rng.integers(30, 200)), int(rng.integers(30, 200)), c,
                   rng)
        prm, got = run(a, ["--size", "48x40", "--seed", str(100 + i),
                           "--jitter", "0.4,0.4,0.4", "--tensor", "torch",
                           "--nchw"])
        u8 = jitter(crop_resize_flip(a, prm, 48, 40, "bilinear"), *prm[5:8])
        if u8.ndim == 2:
            u8 = np.stack([u8] * 3, axis=-1)
        ref = ((u8 / 255.0 - mean) / std).astype(np.float32).transpose(2, 0,
                                                                        1)
        if got.shape != ref.shape:
            worst = float("inf")
            break
        worst = max(worst, float(np.abs(got - ref).max()))
    report(worst <= 1e-6, "augmented torch NCHW tensor equals numpy",
           "(max error %.3g)" % worst)


def test_seeded(rng):
    a = smooth(100, 120, 3, rng)
    p1, o1 = run(a, ["--size", "32x32", "--seed", "5"])
    p2, o2 = run(a, ["--size", "32x32", "--seed", "5"])
    p3, _ = run(a, ["--size", "32x32", "--seed", "6"])
    report(p1 == p2 and np.array_equal(o1, o2) and p1 != p3,
           "same seed, same draw; another seed, another draw")


def test_errors():
    a = np.zeros((10, 10, 3), np.uint8)
    np.save(os.path.join(TMP, "in.npy"), a)
    checks = [(["--params", "5,5,10,10,0,1,1,1"], "not inside"),
              (["--scale", "0.5,0.2"], "scale"),
              (["--hflip", "1.5"], "hflip"),
              (["--jitter", "-1,0,0"], "brightness")]
    for args, word in checks:
        r = subprocess.run([TOOL, "augment", os.path.join(TMP, "in.npy"),
                            os.path.join(TMP, "o.npy"), "--size", "4x4"] +
                           args, capture_output=True, text=True)
        report(r.returncode != 0 and word in r.stderr,
               "bad %s is refused" % word, r.stderr.strip())


def main():
    if not os.path.exists(TOOL):
        print("FAIL phash tool not found at " + TOOL)
        return 1
    rng = np.random.default_rng(6)
    test_geometry(rng)
    test_fallback()
    test_jitter(rng)
    test_numpy_vs_torchvision(rng)
    test_tensor(rng)
    test_seeded(rng)
    test_errors()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
