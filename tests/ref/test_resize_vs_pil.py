"""test_resize_vs_pil.py - dlp's resize and preprocessing against Pillow.

Reference: Pillow 9.4 Image.resize(size, resample, reducing_gap=None) on the
same uint8 arrays (random and smooth, 1/3/4 channels, up and down, all four
filters): dlp must match to the last bit. Tensor modes are compared with
numpy applied to PIL's resized uint8 (allclose, atol 1e-6). A JPEG goes
through dlp_image_file_to_tensor and through PIL's own pipeline (open + draft
+ resize + normalise); the decoders may pick different DCT scales, so that
comparison has a tolerance and prints the max error.

Run with /usr/bin/python3; env DLP_TOOLS = folder holding the imgresize tool.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

TOOL = os.path.join(os.environ.get("DLP_TOOLS", "."), "imgresize")
FILTERS = {
    "bilinear": Image.BILINEAR,
    "box": Image.BOX,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}
TMP = tempfile.mkdtemp(prefix="dlp_resize_")
passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(("ok   " if ok else "FAIL ") + name + (" " + detail if detail else ""))


def run_tool(inp, args):
    out = os.path.join(TMP, "out.npy")
    r = subprocess.run([TOOL, inp, out] + args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("imgresize failed: " + r.stderr.strip())
    return np.load(out)


def save_input(a):
    path = os.path.join(TMP, "in.npy")
    np.save(path, np.ascontiguousarray(a))
    return path


def smooth(h, w, c, rng):
    """Gradients plus a few low-frequency waves: typical photo content."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for _ in range(c):
        fy, fx, ph = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 6)]
        v = 127.5 + 100 * np.sin(fy * np.pi * y / max(h, 1) + ph) * np.cos(
            fx * np.pi * x / max(w, 1)) + 20 * (x / max(w, 1) - 0.5)
        chans.append(np.clip(np.rint(v), 0, 255))
    a = np.stack(chans, axis=-1).astype(np.uint8)
    return a[:, :, 0] if c == 1 else a


def random_img(h, w, c, rng):
    shape = (h, w) if c == 1 else (h, w, c)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def pil_resize(a, w, h, filt):
    return np.asarray(Image.fromarray(a).resize((w, h), FILTERS[filt],
                                                reducing_gap=None))


def check_resize(a, w, h, filt, label):
    got = run_tool(save_input(a), ["--size", "%dx%d" % (w, h), "--filter", filt])
    ref = pil_resize(a, w, h, filt)
    if a.ndim == 2:
        got = got[:, :, 0]
    if got.shape != ref.shape:
        report(False, label, "shape %s vs %s" % (got.shape, ref.shape))
        return
    diff = np.abs(got.astype(int) - ref.astype(int))
    report(diff.max() == 0, label,
           "" if diff.max() == 0 else "max diff %d in %d px" % (diff.max(), (diff > 0).sum()))


SIZE_PAIRS = [
    ((750, 1000), (299, 299)),  # big downscale, aspect change
    ((384, 512), (299, 299)),
    ((480, 640), (224, 224)),
    ((64, 48), (32, 24)),      # exactly 2x
    ((17, 31), (90, 100)),     # upscale
    ((40, 60), (60, 23)),      # width unchanged
    ((40, 60), (11, 40)),      # height unchanged
    ((1, 1), (5, 4)),
    ((7, 5), (1, 1)),
    ((400, 3), (2, 50)),       # tall and thin
    ((2, 333), (77, 9)),       # wide and flat
    ((101, 99), (100, 98)),    # tiny change
]


def test_resize_exact():
    rng = np.random.default_rng(20240601)
    for (ih, iw), (ow, oh) in SIZE_PAIRS:
        for c in (1, 3, 4):
            for kind in ("random", "smooth"):
                make = random_img if kind == "random" else smooth
                a = make(ih, iw, c, rng)
                for filt in FILTERS:
                    check_resize(a, ow, oh, filt, "resize %s %dx%dx%d -> %dx%d %s" %
                                 (kind, iw, ih, c, ow, oh, filt))


def test_rgba_transparency():
    """PIL resizes RGBA premultiplied; partly transparent pixels test that."""
    rng = np.random.default_rng(7)
    a = random_img(50, 70, 4, rng)
    a[:, :, 3] = rng.choice([0, 1, 128, 254, 255], size=(50, 70))
    for filt in FILTERS:
        check_resize(a, 33, 21, filt, "resize rgba alpha mix 70x50 -> 33x21 " + filt)
        check_resize(a, 101, 80, filt, "resize rgba alpha mix 70x50 -> 101x80 " + filt)


MEANS = {"caffe": [103.939, 116.779, 123.68]}


def ref_norm(rgb, mode, bgr=False, mean=None, std=None):
    x = rgb.astype(np.float64)
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "caffe":
        return x[..., ::-1] - np.array(MEANS["caffe"])
    if mode == "torch":
        return (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array(
            [0.229, 0.224, 0.225])
    if bgr:
        x = x[..., ::-1]
    if mode == "none":
        return x
    return (x - np.array(mean, dtype=np.float32).astype(np.float64)) / np.array(
        std, dtype=np.float32).astype(np.float64)


def crop_box(W, H, w, h, f):
    """The documented centre crop: largest w:h region (floor), times f
    (floor), placed at floor((W - cw) / 2), floor((H - ch) / 2)."""
    if W * h >= H * w:
        bh, bw = H, H * w // h
    else:
        bw, bh = W, W * h // w
    cw = min(bw, max(1, int(f * bw + 1e-9)))
    ch = min(bh, max(1, int(f * bh + 1e-9)))
    x0, y0 = (W - cw) // 2, (H - ch) // 2
    return (x0, y0, x0 + cw, y0 + ch)


def ref_tensor(a, w, h, filt, mode, nchw=False, crop=0.0, **kw):
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]  # documented: alpha dropped, colours resized as is
    im = Image.fromarray(np.ascontiguousarray(a))
    if crop > 0:
        im = im.crop(crop_box(im.width, im.height, w, h, crop))
    rgb = np.asarray(im.resize((w, h), FILTERS[filt], reducing_gap=None))
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    t = ref_norm(rgb, mode, **kw)
    return t.transpose(2, 0, 1) if nchw else t


def check_tensor(a, w, h, filt, mode, label, nchw=False, crop=0.0, bgr=False,
                 mean=None, std=None):
    args = ["--size", "%dx%d" % (w, h), "--filter", filt, "--tensor", mode]
    if nchw:
        args.append("--nchw")
    if crop:
        args += ["--crop", repr(crop)]
    if bgr:
        args.append("--bgr")
    if mean is not None:
        args += ["--mean", ",".join(map(repr, mean)), "--std", ",".join(map(repr, std))]
    got = run_tool(save_input(a), args)
    kw = {"bgr": bgr, "mean": mean, "std": std} if mode in ("none", "custom") else {}
    ref = ref_tensor(a, w, h, filt, mode, nchw, crop, **kw)
    if got.dtype != np.float32 or got.shape != ref.shape:
        report(False, label, "got %s %s, want float32 %s" % (got.dtype, got.shape, ref.shape))
        return
    # The reference is computed in float64 and rounded to float32 once, as
    # the documented formula would be by any float32 consumer.
    ref32 = ref.astype(np.float32)
    err = np.abs(got.astype(np.float64) - ref32).max()
    report(np.allclose(got, ref32, rtol=0, atol=1e-6), label, "max err %.2e" % err)


def test_tensor_modes():
    rng = np.random.default_rng(99)
    rgb = smooth(120, 160, 3, rng)
    for mode in ("tf", "caffe", "torch", "none"):
        for nchw in (False, True):
            check_tensor(rgb, 64, 48, "bilinear", mode,
                         "tensor %s %s" % (mode, "nchw" if nchw else "nhwc"), nchw=nchw)
    check_tensor(rgb, 64, 48, "bicubic", "none", "tensor none bgr", bgr=True)
    check_tensor(rgb, 64, 48, "lanczos", "custom", "tensor custom",
                 mean=[10.5, 20.0, 30.25], std=[2.0, 0.5, 64.0])
    check_tensor(rgb, 64, 48, "box", "custom", "tensor custom bgr nchw", nchw=True,
                 bgr=True, mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0])
    check_tensor(rgb, 160, 120, "bilinear", "tf", "tensor same size (no resize)")
    check_tensor(rgb, 160, 60, "bilinear", "tf", "tensor width unchanged")
    for f in (1.0, 0.875, 0.5, 0.3):
        check_tensor(rgb, 50, 50, "bilinear", "torch", "tensor crop %g square" % f, crop=f)
        check_tensor(rgb, 30, 60, "bicubic", "tf", "tensor crop %g tall nchw" % f,
                     crop=f, nchw=True)
    check_tensor(smooth(90, 70, 1, rng), 40, 30, "bilinear", "caffe", "tensor gray caffe")
    check_tensor(random_img(90, 70, 4, rng), 40, 30, "bilinear", "tf",
                 "tensor rgba drops alpha")
    check_tensor(random_img(90, 70, 1, rng), 40, 30, "lanczos", "torch",
                 "tensor gray torch nchw", nchw=True)


def test_center_crop_then_resize():
    rng = np.random.default_rng(5)
    a = random_img(77, 131, 3, rng)
    for (w, h, f) in ((10, 10, 0.875), (40, 20, 1.0), (7, 30, 0.5)):
        got = run_tool(save_input(a), ["--size", "%dx%d" % (w, h), "--crop", repr(f)])
        im = Image.fromarray(a).crop(crop_box(131, 77, w, h, f))
        ref = np.asarray(im.resize((w, h), Image.BILINEAR, reducing_gap=None))
        report(got.shape == ref.shape and (got == ref).all(),
               "center crop %g %dx%d then resize" % (f, w, h))


def test_jpeg_file_to_tensor():
    rng = np.random.default_rng(11)
    path = os.path.join(TMP, "photo.jpg")
    Image.fromarray(smooth(900, 1200, 3, rng)).save(path, quality=92)
    for (w, h, crop) in ((299, 299, 0.0), (224, 224, 0.875), (100, 150, 0.0)):
        args = ["--size", "%dx%d" % (w, h), "--tensor", "tf", "--direct"]
        if crop:
            args += ["--crop", repr(crop)]
        got = run_tool(path, args)
        im = Image.open(path)
        if crop:
            need = (int(np.ceil(w / crop)), int(np.ceil(h / crop)))
        else:
            need = (w, h)
        im.draft("RGB", need)
        im = im.convert("RGB")
        if crop:
            im = im.crop(crop_box(im.width, im.height, w, h, crop))
        rgb = np.asarray(im.resize((w, h), Image.BILINEAR, reducing_gap=None))
        ref = ref_norm(rgb, "tf")
        err = np.abs(got - ref)
        # Different DCT scales / IDCTs give small differences; 0.08 in tf
        # units is about 5 grey levels.
        report(err.max() < 0.08 and err.mean() < 0.01,
               "jpeg file_to_tensor %dx%d crop %g vs PIL draft pipeline" % (w, h, crop),
               "max err %.4f (%.1f levels), mean %.5f" % (err.max(), err.max() * 127.5,
                                                          err.mean()))


def test_bad_inputs():
    r = subprocess.run([TOOL, os.path.join(TMP, "missing.jpg"), os.path.join(TMP, "o.npy"),
                        "--size", "10x10", "--tensor", "tf", "--direct"],
                       capture_output=True, text=True)
    report(r.returncode != 0 and "missing.jpg" in r.stderr,
           "missing file fails with its path in the message", r.stderr.strip())


def main():
    if not os.path.exists(TOOL):
        print("imgresize tool not found at " + TOOL)
        return 1
    for t in (test_resize_exact, test_rgba_transparency, test_tensor_modes,
              test_center_crop_then_resize, test_jpeg_file_to_tensor, test_bad_inputs):
        try:
            t()
        except Exception as ex:  # a crash of the tool is a failure, not a stop
            report(False, t.__name__, "raised %r" % ex)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
