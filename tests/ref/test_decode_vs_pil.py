"""test_decode_vs_pil.py - dlp's decoders against PIL (Pillow) and numpy.

Every case writes an image with PIL (or raw PNG chunks via zlib), decodes it
with $DLP_TOOLS/imgdecode into a .npy file and compares with what PIL decodes,
or with a numpy computation of the documented rule:
  - alpha composited on white: (c*a + 255*(255-a) + 127) // 255
  - 16-bit PNG samples: value >> 8
  - Adobe CMYK JPEG: with inverted samples i = 255 - PIL's CMYK,
    R = (iC*iK + 127) // 255 (likewise G, B)
PNG / GIF / BMP / lossless WebP must be exact; JPEG within 1 (both use
libjpeg-turbo with ISLOW and fancy upsampling); lossy WebP within 2.
Run with /usr/bin/python3. Prints a line per case, then "N passed, N failed".
"""
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image, ImageOps

TOOLS = os.environ.get("DLP_TOOLS", "")
IMGDECODE = os.path.join(TOOLS, "imgdecode")
TMP = tempfile.mkdtemp(prefix="dlp_decode_")
RESULTS = {"passed": 0, "failed": 0}


def report(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print("%s %s%s" % ("ok  " if ok else "FAIL", name,
                       " (" + detail + ")" if detail else ""))


def dlp_decode(path, *flags):
    """Returns (array or None, exit code, stderr)."""
    out = os.path.join(TMP, "out.npy")
    if os.path.exists(out):
        os.remove(out)
    p = subprocess.run([IMGDECODE, *flags, path, out], capture_output=True,
                       text=True)
    arr = np.load(out) if p.returncode == 0 else None
    return arr, p.returncode, p.stderr


def composite_white(rgba):
    """The documented compositing rule, from 2 (LA) or 4 (RGBA) channels."""
    a = rgba[..., -1:].astype(np.int64)
    c = rgba[..., :-1].astype(np.int64)
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def as_hwc(a):
    return a[:, :, None] if a.ndim == 2 else a


def compare(name, path, ref, flags=(), tol=0):
    got, rc, err = dlp_decode(path, *flags)
    if rc != 0:
        return report(name, False, "imgdecode failed: " + err.strip())
    ref = as_hwc(np.asarray(ref))
    if got.shape != ref.shape:
        return report(name, False, "shape %s, PIL %s" % (got.shape, ref.shape))
    diff = int(np.abs(got.astype(np.int16) - ref.astype(np.int16)).max())
    report(name, diff <= tol, "max abs diff %d, allowed %d" % (diff, tol))


def test_image(w, h, channels, seed):
    """A smooth gradient with mild noise: realistic for JPEG, varied for
    lossless formats."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for c in range(channels):
        v = (x * (97 + 31 * c) / max(w, 1) + y * (151 - 29 * c) / max(h, 1)
             + 40 * np.sin((x + 3 * y + 17 * c) / 9.0))
        planes.append(v + rng.randint(-6, 7, size=(h, w)))
    a = np.stack(planes, axis=-1)
    return np.clip(a, 0, 255).astype(np.uint8)


def alpha_plane(w, h, seed):
    """Alpha with fully transparent, fully opaque and partial values."""
    rng = np.random.RandomState(seed)
    a = rng.randint(0, 256, size=(h, w)).astype(np.uint8)
    a[: h // 4] = 0
    a[h // 4: h // 2] = 255
    return a


def save(img, name, **kw):
    path = os.path.join(TMP, name)
    img.save(path, **kw)
    return path


# --- PNG -------------------------------------------------------------------

def png_chunk(kind, data):
    c = kind + data
    return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c))


def raw_png(width, height, bit_depth, color_type, rows):
    """A PNG from raw scanlines (bytes, without filter bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0,
                       0)
    data = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(data)) + png_chunk(b"IEND", b""))


def write_bytes(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_png():
    w, h = 61, 37
    rgb = test_image(w, h, 3, 1)
    alpha = alpha_plane(w, h, 2)
    gray = rgb[..., 0]
    p = save(Image.fromarray(gray, "L"), "l.png")
    compare("png L", p, Image.open(p))
    compare("png L --force-rgb", p, Image.open(p).convert("RGB"),
            ["--force-rgb"])
    la = np.dstack([gray, alpha])
    p = save(Image.fromarray(la, "LA"), "la.png")
    pil = np.asarray(Image.open(p))
    compare("png LA composited on white", p, composite_white(pil))
    compare("png LA --keep-alpha", p, Image.open(p).convert("RGBA"),
            ["--keep-alpha"])
    p = save(Image.fromarray(rgb).quantize(200), "p.png")
    compare("png P", p, Image.open(p).convert("RGB"))
    pimg = Image.fromarray(rgb).quantize(64)
    p = save(pimg, "p_trns.png", transparency=5)
    pil = np.asarray(Image.open(p).convert("RGBA"))
    compare("png P + tRNS composited", p, composite_white(pil))
    compare("png P + tRNS --keep-alpha", p, pil, ["--keep-alpha"])
    p = save(Image.fromarray(rgb), "rgb.png")
    compare("png RGB", p, Image.open(p))
    rgba = np.dstack([rgb, alpha])
    p = save(Image.fromarray(rgba, "RGBA"), "rgba.png")
    pil = np.asarray(Image.open(p))
    compare("png RGBA composited on white", p, composite_white(pil))
    compare("png RGBA --keep-alpha", p, pil, ["--keep-alpha"])
    bits = (gray > 128)
    p = save(Image.fromarray(bits), "bit1.png")
    compare("png 1-bit", p, Image.open(p).convert("L"))
    rng = np.random.RandomState(5)
    g16 = rng.randint(0, 65536, size=(h, w)).astype(">u2")
    p = write_bytes("g16.png", raw_png(w, h, 16, 0, [r.tobytes() for r in g16]))
    compare("png 16-bit gray (>> 8)", p, (g16 >> 8).astype(np.uint8))
    rgb16 = rng.randint(0, 65536, size=(h, w, 3)).astype(">u2")
    p = write_bytes("rgb16.png",
                    raw_png(w, h, 16, 2, [r.tobytes() for r in rgb16]))
    compare("png 48-bit RGB (>> 8)", p, (rgb16 >> 8).astype(np.uint8))
    for depth in (2, 4):
        vals = rng.randint(0, 1 << depth, size=(h, w))
        rows = []
        per = 8 // depth
        for r in vals:
            padded = np.concatenate([r, np.zeros((-len(r)) % per, int)])
            packed = bytearray()
            for i in range(0, len(padded), per):
                b = 0
                for v in padded[i:i + per]:
                    b = (b << depth) | int(v)
                packed.append(b)
            rows.append(bytes(packed))
        p = write_bytes("g%d.png" % depth, raw_png(w, h, depth, 0, rows))
        scale = 255 // ((1 << depth) - 1)
        compare("png %d-bit gray" % depth, p, (vals * scale).astype(np.uint8))
        compare("png %d-bit gray vs PIL" % depth, p,
                Image.open(p).convert("L"))


# --- JPEG ------------------------------------------------------------------

def test_jpeg():
    w, h = 160, 120
    rgb = test_image(w, h, 3, 11)
    p = save(Image.fromarray(rgb), "base.jpg", quality=90)
    compare("jpeg RGB baseline 4:2:0", p, Image.open(p), tol=1)
    p = save(Image.fromarray(rgb), "q444.jpg", quality=95, subsampling=0)
    compare("jpeg RGB 4:4:4", p, Image.open(p), tol=1)
    p = save(Image.fromarray(rgb), "prog.jpg", quality=85, progressive=True)
    compare("jpeg progressive", p, Image.open(p), tol=1)
    p = save(Image.fromarray(rgb[..., 1]), "gray.jpg", quality=90)
    compare("jpeg grayscale", p, Image.open(p), tol=1)
    compare("jpeg grayscale --force-rgb", p, Image.open(p).convert("RGB"),
            ["--force-rgb"], tol=1)
    cmyk = test_image(w, h, 4, 12)
    p = save(Image.fromarray(cmyk, "CMYK"), "cmyk.jpg", quality=95)
    pil = Image.open(p)
    ok = pil.mode == "CMYK"
    inv = 255 - np.asarray(pil).astype(np.int64)  # libjpeg's Adobe samples
    ref = ((inv[..., :3] * inv[..., 3:4] + 127) // 255).astype(np.uint8)
    if ok:
        compare("jpeg CMYK (Adobe) -> RGB", p, ref, tol=1)
    else:
        report("jpeg CMYK (Adobe) -> RGB", False, "PIL opened " + pil.mode)
    test_jpeg_exif(rgb)
    test_jpeg_scaling()


def test_jpeg_exif(rgb):
    # Non-square and asymmetric so every transform is distinguishable.
    base = rgb[:48, :80].copy()
    base[:8, :8] = 255
    for k in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = k
        p = save(Image.fromarray(base), "exif%d.jpg" % k, quality=95,
                 exif=exif.tobytes())
        ref = ImageOps.exif_transpose(Image.open(p))
        compare("jpeg EXIF orientation %d" % k, p, ref, tol=1)
        compare("jpeg EXIF orientation %d --no-orient" % k, p, Image.open(p),
                ["--no-orient"], tol=1)
        probe = subprocess.run([IMGDECODE, "--probe", p,
                                os.path.join(TMP, "o.npy")],
                               capture_output=True, text=True)
        want = "jpeg %d %d 3 0 %d" % (ref.size[0], ref.size[1], k)
        got = probe.stdout.strip()
        report("jpeg EXIF orientation %d probe" % k, got == want,
               "got '%s', want '%s'" % (got, want))


def draft_ref(path, target, orientation=1):
    """PIL's DCT-scaled decode (Image.draft) at the size dlp should pick."""
    im = Image.open(path)
    tw, th = target
    if orientation >= 5:
        tw, th = th, tw
    im.draft("RGB", (tw, th))
    im.load()
    return ImageOps.exif_transpose(im) if orientation > 1 else im


def test_jpeg_scaling():
    cases = [((1024, 768), (299, 299), (512, 384), 1),
             ((1600, 1200), (150, 150), (200, 150), 1),
             ((1600, 1200), (300, 300), (400, 300), 1),
             ((1600, 1200), (1600, 1200), (1600, 1200), 1),
             ((1024, 768), (300, 400), (384, 512), 6)]
    for (w, h), target, want, orient in cases:
        img = Image.fromarray(test_image(w, h, 3, w + orient))
        kw = {}
        if orient > 1:
            exif = Image.Exif()
            exif[0x0112] = orient
            kw["exif"] = exif.tobytes()
        p = save(img, "scale_%dx%d_%d.jpg" % (w, h, orient), quality=90, **kw)
        ref = draft_ref(p, target, orient)
        name = "jpeg %dx%d orient %d target %dx%d -> %dx%d" % (
            w, h, orient, target[0], target[1], want[0], want[1])
        if ref.size != want:
            report(name, False, "PIL draft gave %s" % (ref.size,))
            continue
        compare(name, p, ref, ["--target", "%dx%d" % target], tol=1)


# --- GIF, BMP, WebP --------------------------------------------------------

def test_gif():
    w, h = 53, 41
    rgb = test_image(w, h, 3, 21)
    pimg = Image.fromarray(rgb).quantize(100)
    for interlace in (False, True):
        p = save(pimg, "i%d.gif" % interlace, interlace=interlace)
        compare("gif P interlace=%s" % interlace, p,
                Image.open(p).convert("RGB"))
    p = save(pimg, "trns.gif", transparency=7)
    pil = np.asarray(Image.open(p).convert("RGBA"))
    has_t = bool((pil[..., 3] == 0).any())
    compare("gif transparent index composited", p, composite_white(pil))
    compare("gif transparent index --keep-alpha", p, pil, ["--keep-alpha"])
    report("gif test image has transparent pixels", has_t)


def test_bmp():
    w, h = 45, 33
    rgb = test_image(w, h, 3, 31)
    p = save(Image.fromarray(rgb), "rgb.bmp")
    compare("bmp 24-bit RGB", p, Image.open(p))
    p = save(Image.fromarray(rgb).quantize(150), "p.bmp")
    compare("bmp 8-bit palette", p, Image.open(p).convert("RGB"))
    p = save(Image.fromarray(rgb[..., 0]), "l.bmp")
    compare("bmp 8-bit gray palette -> RGB", p, Image.open(p).convert("RGB"))
    rgba = np.dstack([rgb, alpha_plane(w, h, 32)])
    p = save(Image.fromarray(rgba, "RGBA"), "rgba.bmp")
    # PIL writes the alpha byte but reads 32-bit BI_RGB as RGB (BGRX); dlp
    # (stb) keeps it as alpha, so the reference is the array we wrote.
    compare("bmp 32-bit RGBA colours vs PIL", p,
            np.dstack([np.asarray(Image.open(p).convert("RGB")),
                       rgba[..., 3]]), ["--keep-alpha"])
    compare("bmp 32-bit RGBA composited", p, composite_white(rgba))


def test_webp():
    w, h = 64, 48
    rgb = test_image(w, h, 3, 41)
    rgba = np.dstack([rgb, alpha_plane(w, h, 42)])
    p = save(Image.fromarray(rgb), "ll.webp", lossless=True)
    compare("webp lossless RGB", p, Image.open(p).convert("RGB"))
    p = save(Image.fromarray(rgba, "RGBA"), "lla.webp", lossless=True,
             exact=True)
    pil = np.asarray(Image.open(p).convert("RGBA"))
    compare("webp lossless RGBA --keep-alpha", p, pil, ["--keep-alpha"])
    compare("webp lossless RGBA composited", p, composite_white(pil))
    p = save(Image.fromarray(rgb), "lossy.webp", quality=80)
    compare("webp lossy RGB", p, Image.open(p).convert("RGB"), tol=2)
    p = save(Image.fromarray(rgba, "RGBA"), "lossya.webp", quality=80)
    pil = np.asarray(Image.open(p).convert("RGBA"))
    compare("webp lossy RGBA --keep-alpha", p, pil, ["--keep-alpha"], tol=2)
    frames = [Image.fromarray(rgba, "RGBA"),
              Image.fromarray(255 - rgba, "RGBA")]
    p = save(frames[0], "anim.webp", save_all=True,
             append_images=frames[1:], lossless=True, duration=100)
    im = Image.open(p)
    im.seek(0)
    pil = np.asarray(im.convert("RGBA"))
    report("webp animated file is animated", getattr(im, "n_frames", 1) == 2)
    compare("webp animated first frame --keep-alpha", p, pil, ["--keep-alpha"])


# --- bad input -------------------------------------------------------------

def expect_error(name, path, code_name, needle):
    got, rc, err = dlp_decode(path)
    ok = rc == 1 and got is None and ("error: %s:" % code_name) in err and \
        needle in err
    report(name, ok, err.strip())


def test_bad_input():
    rgb = test_image(200, 150, 3, 51)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    for frac in (0.3, 0.7, 0.95):
        p = write_bytes("trunc.jpg", data[:int(len(data) * frac)])
        expect_error("jpeg truncated at %d%%" % (frac * 100), p,
                     "corrupt data", "truncated JPEG data")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    data = buf.getvalue()
    p = write_bytes("trunc.png", data[:len(data) // 2])
    expect_error("png truncated", p, "corrupt data", "truncated")
    bad = bytearray(data)
    idat = bytes(bad).index(b"IDAT")
    n = struct.unpack(">I", bytes(bad[idat - 4:idat]))[0]
    bad[idat + 4 + n] ^= 0xFF  # first byte of IDAT's CRC
    p = write_bytes("crc.png", bytes(bad))
    expect_error("png CRC error", p, "corrupt data", "CRC")
    p = write_bytes("text.jpg", b"hello, this is not an image\n")
    expect_error("text named .jpg", p, "unknown format",
                 "unknown signature '68 65 6c 6c'")
    p = write_bytes("empty.png", b"")
    expect_error("zero-byte file", p, "corrupt data", "empty file")
    expect_error("missing file", os.path.join(TMP, "nope.png"), "not found",
                 "nope.png")


def main():
    if not os.path.exists(IMGDECODE):
        print("imgdecode not found in DLP_TOOLS=%r" % TOOLS)
        return 1
    try:
        for t in (test_png, test_jpeg, test_gif, test_bmp, test_webp,
                  test_bad_input):
            t()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (RESULTS["passed"], RESULTS["failed"]))
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
