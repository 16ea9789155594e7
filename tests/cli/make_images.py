#!/usr/bin/python3
"""make_images.py - writes a labelled image folder for the CLI tests.

usage: /usr/bin/python3 make_images.py DIR

DIR gets cats/ and dogs/ (with a nested dogs/puppies/), a top-level image
(no label), JPEG/PNG/GIF/BMP/WebP files of known sizes written by PIL, a file
that is not an image by extension (notes.txt: not scanned), and bad files:
a zero-byte .jpg, text saved as .jpg, a truncated JPEG, a truncated PNG, a
PNG whose IHDR claims 60000x60000 (built by hand with a correct CRC) and a
broken symbolic link.

DIR/manifest.json lists every file dlp should scan, with the expected
label, width, height, channels (what dlp returns by default: alpha composited
on white, gray kept as 1 channel, EXIF orientation applied), whether it is
valid, and for invalid files the words one of which the reason should
contain. Sizes come from PIL re-opening the written files, not from dlp.
"""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

# dlp's default channel count by the PIL mode of the file as stored.
CHANNELS = {"1": 1, "L": 1, "LA": 1, "I;16": 1, "I": 1, "RGB": 3,
            "RGBA": 3, "P": 3, "CMYK": 3, "YCbCr": 3}


def noise(w, h, c, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if c == 1 else (h, w, c)
    # A smooth gradient plus noise: realistic enough for every codec.
    base = np.linspace(0, 200, w, dtype=np.float64)[None, :]
    base = np.repeat(base, h, axis=0)
    if c > 1:
        base = np.repeat(base[:, :, None], c, axis=2)
    return np.clip(base + rng.integers(0, 55, shape), 0, 255).astype(np.uint8)


def expect_valid(path, label):
    """The manifest entry of a good image, from PIL's view of the file."""
    with Image.open(path) as im:
        mode = im.mode
        upright = ImageOps.exif_transpose(im) if im.format == "JPEG" else im
        w, h = upright.size
    return {"label": label, "width": w, "height": h,
            "channels": CHANNELS[mode], "valid": True}


def write_good(root):
    """(relative path, label, PIL image, format, save options) per file."""
    rgb = lambda w, h, s: Image.fromarray(noise(w, h, 3, s), "RGB")
    gray = lambda w, h, s: Image.fromarray(noise(w, h, 1, s), "L")
    rgba = Image.fromarray(noise(33, 20, 4, 3), "RGBA")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    g16 = Image.fromarray((noise(21, 13, 1, 9).astype(np.uint16) * 257),
                          "I;16")
    files = [
        ("cats/cat_rgb.jpg", "cats", rgb(64, 48, 1), "JPEG", {"quality": 90}),
        ("cats/cat_gray.png", "cats", gray(40, 30, 2), "PNG", {}),
        ("cats/cat_rgba.png", "cats", rgba, "PNG", {}),
        ("cats/cat_palette.gif", "cats",
         rgb(25, 17, 4).convert("P", palette=Image.Palette.ADAPTIVE), "GIF",
         {}),
        ("cats/cat.bmp", "cats", rgb(19, 23, 5), "BMP", {}),
        ("cats/cat.webp", "cats", rgb(31, 21, 6), "WEBP", {"lossless": True}),
        ("cats/UPPER.JPG", "cats", rgb(17, 11, 7), "JPEG", {}),
        ("cats/cat_cmyk.jpg", "cats", rgb(24, 16, 8).convert("CMYK"), "JPEG",
         {}),
        ("dogs/dog_gray.jpg", "dogs", gray(50, 40, 10), "JPEG", {}),
        ("dogs/dog_rotated.jpg", "dogs", rgb(60, 40, 11), "JPEG",
         {"exif": exif.tobytes()}),
        ("dogs/puppies/puppy.png", "dogs", rgb(45, 35, 12), "PNG", {}),
        ("dogs/puppies/puppy16.png", "dogs", g16, "PNG", {}),
        ("dogs/puppies/puppy.jpeg", "dogs", rgb(29, 31, 13), "JPEG", {}),
        ("top.png", None, rgb(12, 10, 14), "PNG", {}),
    ]
    out = {}
    for rel, label, im, fmt, opts in files:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        im.save(path, fmt, **opts)
        out[rel] = expect_valid(path, label)
    return out


def png_chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def huge_png():
    """A valid PNG header claiming 60000x60000 RGB, with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


def encoded(im, fmt):
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def write_bad(root):
    """Files dlp must report as invalid, with words the reason may use."""
    photo = Image.fromarray(noise(160, 120, 3, 20), "RGB")
    jpeg, png = encoded(photo, "JPEG"), encoded(photo, "PNG")
    bad = {
        "cats/zero.jpg": (b"", ["empty", "0 bytes", "signature", "truncated",
                                "too short"]),
        "cats/text.jpg": (b"this is not an image, just text\n" * 4,
                          ["signature", "unknown", "not a"]),
        "dogs/truncated.jpg": (jpeg[: len(jpeg) // 2],
                               ["truncated", "premature", "corrupt"]),
        "dogs/truncated.png": (png[: len(png) // 2],
                               ["truncated", "premature", "corrupt"]),
        "dogs/huge.png": (huge_png(), ["pixels", "too large", "limit"]),
    }
    out = {}
    for rel, (data, words) in bad.items():
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        out[rel] = {"label": rel.split("/")[0], "valid": False,
                    "reason_any": words}
    os.symlink("does-not-exist.png", os.path.join(root, "cats/broken_link.png"))
    out["cats/broken_link.png"] = {
        "label": "cats", "valid": False,
        "reason_any": ["symbolic link", "symlink", "broken link"]}
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_images.py DIR")
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    files = write_good(root)
    files.update(write_bad(root))
    with open(os.path.join(root, "notes.txt"), "w") as f:
        f.write("not an image; dlp skips it by extension\n")
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump({"files": files}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
