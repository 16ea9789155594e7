"""test_io_vs_python.py - the frame layer's files read by independent
readers: a folder of images made with PIL is scanned by tests/tools/frametool
and the SQLite / JSON Lines / CSV / .npy outputs are checked with Python's
sqlite3, json, csv and numpy against what PIL says about the images; files
written by Python (numpy.save, csv, json) are read back through dlp.

Run with /usr/bin/python3; needs DLP_TOOLS (the directory of frametool)."""
import base64
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import traceback

import numpy as np
from PIL import Image

TOOL = os.path.join(os.environ.get("DLP_TOOLS", "build/tests"), "frametool")
PASSED, FAILED = [], []


def test(fn):
    try:
        fn()
        PASSED.append(fn.__name__)
    except Exception:
        FAILED.append(fn.__name__)
        print(f"FAIL {fn.__name__}", file=sys.stderr)
        traceback.print_exc()
    return fn


def tool(*args, ok=True):
    p = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise AssertionError(f"frametool {args} failed: {p.stderr}")
    if not ok and p.returncode == 0:
        raise AssertionError(f"frametool {args} should have failed")
    return p


TMP = tempfile.mkdtemp(prefix="dlp_ref_io.")
ROOT = os.path.join(TMP, "photos")
IMAGES = {}  # relative path -> (width, height, channels or None)


def make_folder():
    rng = np.random.default_rng(1)

    def save(rel, img, fmt, channels, **kw):
        path = os.path.join(ROOT, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        img.save(path, fmt, **kw)
        IMAGES[rel] = (img.size[0], img.size[1], channels)

    def arr(h, w, c):
        shape = (h, w) if c == 1 else (h, w, c)
        return rng.integers(0, 256, shape, dtype=np.uint8)

    save("cat/a.jpg", Image.fromarray(arr(13, 17, 3)), "JPEG", 3, quality=90)
    save("cat/deep/b.png", Image.fromarray(arr(5, 9, 1), "L"), "PNG", 1)
    save("cat/c.png", Image.fromarray(arr(8, 6, 4), "RGBA"), "PNG", None)
    save("dog/d.gif", Image.fromarray(arr(7, 3, 3)).convert("P"), "GIF", None)
    save("dog/e.bmp", Image.fromarray(arr(4, 11, 3)), "BMP", 3)
    save("dog/f.webp", Image.fromarray(arr(10, 12, 3)), "WEBP", 3, lossless=True)
    save("g.png", Image.fromarray(arr(2, 2, 3)), "PNG", 3)
    with open(os.path.join(ROOT, "dog", "broken.jpg"), "wb") as fp:
        fp.write(b"\xff\xd8\xff\xe0 not really a jpeg")


make_folder()
SCAN_DB = os.path.join(TMP, "scan.db")


def rel_of(origin):
    assert origin.startswith(ROOT + "/"), origin
    return origin[len(ROOT) + 1:]


@test
def scan_to_sqlite_matches_pil():
    tool("scan", ROOT, SCAN_DB, "--labels")
    con = sqlite3.connect(SCAN_DB)
    rows = con.execute(
        "SELECT image_origin, image_height, image_width, image_nChannels, "
        "image_mode, image_error, image_bytes, label FROM frame").fetchall()
    origins = [r[0] for r in rows]
    assert origins == sorted(origins), "rows are sorted by path"
    rels = [rel_of(o) for o in origins]
    assert sorted(rels) == sorted(list(IMAGES) + ["dog/broken.jpg"]), rels
    for (origin, h, w, c, mode, err, blob, label) in rows:
        rel = rel_of(origin)
        want_label = rel.split("/")[0] if "/" in rel else None
        assert label == want_label, (rel, label)
        assert blob is None
        if rel == "dog/broken.jpg":
            assert err and h == -1 and w == -1, (err, h, w)
            continue
        assert err is None, (rel, err)
        with Image.open(os.path.join(ROOT, rel)) as im:
            assert (w, h) == im.size, (rel, (w, h), im.size)
        if IMAGES[rel][2] is not None:
            assert c == IMAGES[rel][2], (rel, c)
        assert mode == {1: 0, 3: 16, 4: 24}[c], (rel, c, mode)
    cols = con.execute(
        "SELECT name, type FROM _dlp_columns WHERE tbl='frame' ORDER BY pos"
    ).fetchall()
    assert cols == [("image", "image"), ("label", "string")], cols


@test
def embedded_bytes_are_the_files():
    db = os.path.join(TMP, "embed.db")
    tool("scan", ROOT, db, "--embed")
    con = sqlite3.connect(db)
    for origin, blob, err in con.execute(
            "SELECT image_origin, image_bytes, image_error FROM frame"):
        if err is None:
            with open(origin, "rb") as fp:
                assert blob == fp.read(), origin
    # The same through JSON Lines: base64 of the file.
    jl = os.path.join(TMP, "embed.jsonl")
    tool("convert", db, jl)
    with open(jl, encoding="utf-8") as fp:
        for line in fp:
            img = json.loads(line)["image"]
            if img["error"] is None:
                with open(img["origin"], "rb") as f2:
                    assert base64.b64decode(img["bytes"]) == f2.read()


@test
def scan_jsonl_and_csv_agree_with_sqlite():
    jl, cs = os.path.join(TMP, "scan.jsonl"), os.path.join(TMP, "scan.csv")
    tool("convert", SCAN_DB, jl)
    tool("convert", SCAN_DB, cs)
    con = sqlite3.connect(SCAN_DB)
    want = con.execute(
        "SELECT image_origin, image_height, image_width, image_nChannels, "
        "image_mode, image_error, label FROM frame ORDER BY rowid").fetchall()
    with open(jl, encoding="utf-8") as fp:
        got = [json.loads(line) for line in fp]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        im = g["image"]
        assert (im["origin"], im["height"], im["width"], im["nChannels"],
                im["mode"], im["error"], g["label"]) == w, (g, w)
        assert "bytes" not in im
    with open(cs, newline="", encoding="utf-8") as fp:
        rows = list(csv.DictReader(fp))
    assert list(rows[0].keys()) == [
        "image.origin", "image.height", "image.width", "image.nChannels",
        "image.mode", "image.error", "label"]
    for r, w in zip(rows, want):
        assert r["image.origin"] == w[0]
        assert int(r["image.height"]) == w[1] and int(r["image.width"]) == w[2]
        assert (r["image.error"] or None) == w[5]
        assert (r["label"] or None) == w[6]


VEC_DB = os.path.join(TMP, "vec.db")
N, DIM = 37, 5


@test
def vectors_agree_across_formats():
    tool("make-vectors", VEC_DB, N, DIM, 42)
    con = sqlite3.connect(VEC_DB)
    rows = con.execute("SELECT id, v FROM frame ORDER BY rowid").fetchall()
    assert [r[0] for r in rows] == list(range(N))
    ref = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows])
    assert ref.shape == (N, DIM)
    assert np.all(ref >= -1) and np.all(ref < 1) and np.unique(ref).size > N
    npy = os.path.join(TMP, "vec.npy")
    tool("npy", VEC_DB, npy, "v")
    arr = np.load(npy)
    assert arr.dtype == np.dtype("<f4") and arr.shape == (N, DIM)
    assert np.array_equal(arr, ref)
    ids = os.path.join(TMP, "ids.npy")
    tool("npy", VEC_DB, ids, "id")
    a = np.load(ids)
    assert a.dtype == np.dtype("<i8") and np.array_equal(a, np.arange(N))
    jl = os.path.join(TMP, "vec.jsonl")
    tool("convert", VEC_DB, jl)
    with open(jl) as fp:
        js = [json.loads(line) for line in fp]
    assert [j["id"] for j in js] == list(range(N))
    assert np.array_equal(np.array([j["v"] for j in js], dtype=np.float32), ref)
    cs = os.path.join(TMP, "vec.csv")
    tool("convert", VEC_DB, cs)
    with open(cs, newline="") as fp:
        rows = list(csv.DictReader(fp))
    got = np.array([json.loads(r["v"]) for r in rows], dtype=np.float32)
    assert np.array_equal(got, ref)
    # And back: the .npy read by dlp gives the same blobs.
    back = os.path.join(TMP, "back.db")
    tool("convert", npy, back)
    con = sqlite3.connect(back)
    blobs = [r[0] for r in con.execute("SELECT features FROM frame")]
    assert np.array_equal(np.stack([np.frombuffer(b, "<f4") for b in blobs]), ref)


@test
def numpy_files_read_by_dlp():
    rng = np.random.default_rng(7)
    cases = {
        "f4.npy": rng.standard_normal((6, 3)).astype("<f4"),
        "i8.npy": rng.integers(-2**62, 2**62, 9, dtype="<i8"),
        "f8.npy": rng.standard_normal(4).astype("<f8"),
    }
    for name, a in cases.items():
        p = os.path.join(TMP, name)
        np.save(p, a)
        out = p + ".jsonl"
        tool("convert", p, out)
        with open(out) as fp:
            vals = [json.loads(line)["features"] for line in fp]
        if a.ndim == 2:
            assert np.array_equal(np.array(vals, dtype=np.float32), a)
        elif a.dtype.kind == "i":
            assert vals == a.tolist()
        else:
            assert vals == a.tolist()  # %.17g round-trips doubles exactly
    p = os.path.join(TMP, "big.npy")
    np.save(p, np.arange(4, dtype=">f4"))
    r = tool("convert", p, p + ".jsonl", ok=False)
    assert ">f4" in r.stderr, r.stderr
    p = os.path.join(TMP, "trunc.npy")
    np.save(p, np.zeros((100, 4), dtype="<f4"))
    with open(p, "r+b") as fp:
        fp.truncate(os.path.getsize(p) - 10)
    r = tool("convert", p, p + ".jsonl", ok=False)
    assert "corrupt" in r.stderr, r.stderr


@test
def python_csv_read_by_dlp():
    rows = [["id", "text", "score"],
            ["1", "plain", "0.5"],
            ["2", 'has "quotes", commas', "1e3"],
            ["3", "multi\nline\r\ntext", ""],
            ["4", "ünïcødé ☃", "-2"]]
    p = os.path.join(TMP, "py.csv")
    with open(p, "w", newline="", encoding="utf-8") as fp:
        csv.writer(fp).writerows(rows)
    out = os.path.join(TMP, "py.db")
    tool("convert", p, out)
    con = sqlite3.connect(out)
    got = con.execute("SELECT id, text, score FROM frame").fetchall()
    want = [(int(r[0]), r[1], float(r[2]) if r[2] else None) for r in rows[1:]]
    assert got == want, (got, want)
    types = con.execute("SELECT type FROM _dlp_columns ORDER BY pos").fetchall()
    assert types == [("int64",), ("string",), ("double",)], types


@test
def python_jsonl_read_by_dlp():
    objs = [{"n": 2**62 + 1, "x": 1.0, "s": "a\u0000b\t", "v": [1, 2.5]},
            {"x": 1e-300, "n": -7, "extra": "late key"},
            {"s": "日本", "v": [3, 4], "n": None}]
    p = os.path.join(TMP, "py.jsonl")
    with open(p, "w", encoding="utf-8") as fp:
        for i, o in enumerate(objs):
            fp.write(json.dumps(o, ensure_ascii=bool(i % 2)) + "\n")
    out = os.path.join(TMP, "py2.db")
    tool("convert", p, out)
    con = sqlite3.connect(out)
    types = dict(con.execute("SELECT name, type FROM _dlp_columns").fetchall())
    assert types == {"n": "int64", "x": "double", "s": "string",
                     "v": "vector", "extra": "string"}, types
    got = con.execute('SELECT n, x, s, v, extra FROM frame').fetchall()
    assert got[0][0] == 2**62 + 1 and got[0][1] == 1.0
    assert got[0][2] == "a\u0000b\t" or got[0][2] == "a", got[0][2]
    assert np.array_equal(np.frombuffer(got[0][3], "<f4"), [1, 2.5])
    assert got[1][:2] == (-7, 1e-300) and got[1][3] is None
    assert got[1][4] == "late key" and got[0][4] is None
    assert got[2][0] is None and got[2][2] == "日本"
    bad = os.path.join(TMP, "bad.jsonl")
    with open(bad, "w") as fp:
        fp.write('{"a": 1}\n{"a": }\n')
    r = tool("convert", bad, bad + ".db", ok=False)
    assert "bad.jsonl:2:" in r.stderr, r.stderr


print(f"{len(PASSED)} passed, {len(FAILED)} failed")
subprocess.run(["rm", "-rf", TMP])
sys.exit(1 if FAILED else 0)
