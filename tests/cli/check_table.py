#!/usr/bin/python3
"""check_table.py - checks a table written by 'dlp read-images' against the
manifest of make_images.py, reading the table with Python's own sqlite3, json
and csv modules (never with dlp), following the column mapping of dlp.h.

usage: check_table.py CHECK TABLE_FILE IMAGE_DIR [ARG]
  full        every scanned file has a row; labels, sizes, channels, modes
              right; invalid files have error rows with a fitting reason;
              rows sorted by path
  valid-only  exactly the valid files, each right (--drop-invalid)
  paths       prints the relative paths of the rows (for comparing runs)
  subset      every row is a manifest file and right; prints the row count
  ext-png     exactly the manifest files ending in .png
  label-int   every row's label is the integer ARG
  embedded    valid rows embed the file's exact bytes (SQLite / JSON Lines)
  max-pixels  images with more than ARG pixels are errors about pixels,
              the others as in the manifest
  same-rows   TABLE_FILE and the table file ARG hold the same rows (any
              format; image columns compared by their flattened fields)
Exits 1 with one line per problem.
"""
import base64
import csv
import json
import os
import sqlite3
import sys

MODES = {1: 0, 3: 16, 4: 24}  # OpenCV codes Spark uses (dlp.h DLP_MODE_*)
IMAGE_FIELDS = ["origin", "height", "width", "nChannels", "mode", "error"]


def load_sqlite(path):
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    rows = []
    for r in con.execute('SELECT * FROM "frame"'):
        d = {f: r["image_" + f] for f in IMAGE_FIELDS}
        d["bytes"] = r["image_bytes"]
        d["label"] = r["label"] if "label" in r.keys() else None
        rows.append(d)
    con.close()
    return rows


def load_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            obj = json.loads(line)
            img = obj["image"]
            d = {f: img.get(f) for f in IMAGE_FIELDS}
            d["bytes"] = base64.b64decode(img["bytes"]) if img.get("bytes") else None
            d["label"] = obj.get("label")
            rows.append(d)
    return rows


def load_csv(path):
    def num(v):
        return None if v == "" else int(v)

    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            d = {f: r["image." + f] for f in IMAGE_FIELDS}
            for f in ("height", "width", "nChannels", "mode"):
                d[f] = num(d[f])
            d["error"] = d["error"] or None
            d["bytes"] = None
            d["label"] = r.get("label") or None
            rows.append(d)
    return rows


def load(path):
    if path.endswith(".db"):
        return load_sqlite(path)
    if path.endswith(".jsonl"):
        return load_jsonl(path)
    if path.endswith(".csv"):
        return load_csv(path)
    raise SystemExit("unknown table type: " + path)


def load_flat(path):
    """Rows as {column: text or None}, image fields flattened to
    image_origin etc. whatever the format, embedded bytes left out."""
    if path.endswith(".db"):
        con = sqlite3.connect(path)
        con.row_factory = sqlite3.Row
        raw = [dict(r) for r in con.execute('SELECT * FROM "frame"')]
        con.close()
    elif path.endswith(".jsonl"):
        raw = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                obj = json.loads(line)
                row = {}
                for k, v in obj.items():
                    if isinstance(v, dict):
                        row.update({k + "_" + f: x for f, x in v.items()})
                    else:
                        row[k] = v
                raw.append(row)
    else:
        with open(path, newline="", encoding="utf-8") as f:
            raw = list(csv.DictReader(f))
    rows = []
    for r in raw:
        norm = {k.replace(".", "_"): (None if v in ("", None) else str(v))
                for k, v in r.items() if not k.endswith("bytes")}
        rows.append(norm)
    return rows


def same_rows(a, b):
    ra, rb = load_flat(a), load_flat(b)
    cols_a = set().union(*ra) if ra else set()
    cols_b = set().union(*rb) if rb else set()
    if cols_a != cols_b:
        return [f"columns differ: {sorted(cols_a)} vs {sorted(cols_b)}"]
    cols = sorted(cols_a)
    ta = sorted(tuple(str(r.get(c)) for c in cols) for r in ra)
    tb = sorted(tuple(str(r.get(c)) for c in cols) for r in rb)
    if len(ta) != len(tb):
        return [f"{len(ta)} rows vs {len(tb)}"]
    return [f"row differs: {x} vs {y}" for x, y in zip(ta, tb) if x != y][:5]


def rel(origin, root):
    return os.path.relpath(os.path.abspath(origin), os.path.abspath(root))


def row_problems(name, row, want):
    """Differences between one row and its manifest entry."""
    probs = []
    if row["label"] != want["label"]:
        probs.append(f"{name}: label {row['label']!r}, expected {want['label']!r}")
    if want["valid"]:
        if row["error"]:
            probs.append(f"{name}: unexpected error {row['error']!r}")
        c = want["channels"]
        got = (row["width"], row["height"], row["nChannels"], row["mode"])
        exp = (want["width"], want["height"], c, MODES[c])
        if got != exp:
            probs.append(f"{name}: (width, height, nChannels, mode) {got}, "
                         f"expected {exp} (PIL)")
    else:
        err = (row["error"] or "").lower()
        if not err:
            probs.append(f"{name}: no error, but the file is invalid")
        elif not any(w in err for w in want["reason_any"]):
            probs.append(f"{name}: reason {row['error']!r} mentions none of "
                         f"{want['reason_any']}")
    return probs


def compare(rows, root, manifest, expected_names):
    probs = []
    names = [rel(r["origin"], root) for r in rows]
    if sorted(names) != sorted(expected_names):
        missing = sorted(set(expected_names) - set(names))
        extra = sorted(set(names) - set(expected_names))
        probs.append(f"rows {len(names)}, expected {len(expected_names)}; "
                     f"missing {missing}, unexpected {extra}")
    if len(set(names)) != len(names):
        probs.append("some files have more than one row")
    for name, row in zip(names, rows):
        if name in manifest:
            probs += row_problems(name, row, manifest[name])
    return probs


def main():
    check, table, root = sys.argv[1:4]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    if check == "same-rows":
        probs = same_rows(table, arg)
        for p in probs:
            print(p)
        sys.exit(1 if probs else 0)
    with open(os.path.join(root, "manifest.json")) as f:
        manifest = json.load(f)["files"]
    rows = load(table)
    names = [rel(r["origin"], root) for r in rows]
    probs = []
    if check == "full":
        probs = compare(rows, root, manifest, list(manifest))
        origins = [r["origin"] for r in rows]
        if origins != sorted(origins):
            probs.append("rows are not sorted by path")
    elif check == "valid-only":
        valid = [n for n, m in manifest.items() if m["valid"]]
        probs = compare(rows, root, manifest, valid)
    elif check == "paths":
        print("\n".join(sorted(names)))
    elif check == "subset":
        probs = compare(rows, root, manifest,
                        [n for n in names if n in manifest])
        print(len(rows))
    elif check == "ext-png":
        probs = compare(rows, root, manifest,
                        [n for n in manifest if n.endswith(".png")])
    elif check == "label-int":
        bad = [r["label"] for r in rows if type(r["label"]) is not int
               or r["label"] != int(arg)]
        if bad or not rows:
            probs.append(f"labels not all int {arg}: {bad[:5]}")
    elif check == "embedded":
        for name, row in zip(names, rows):
            if not manifest[name]["valid"]:
                continue
            with open(os.path.join(root, name), "rb") as f:
                if row["bytes"] != f.read():
                    probs.append(f"{name}: embedded bytes differ from the file")
    elif check == "max-pixels":
        limit = int(arg)
        for name, row in zip(names, rows):
            want = dict(manifest[name])
            too_large = ["pixels", "too large", "limit"]
            if want["valid"] and want["width"] * want["height"] > limit:
                want = {"label": want["label"], "valid": False,
                        "reason_any": too_large}
            elif not want["valid"]:
                # A bad file whose header is intact may be refused for its
                # size before its own defect is found.
                want["reason_any"] = want["reason_any"] + too_large
            probs += row_problems(name, row, want)
    else:
        raise SystemExit("unknown check " + check)
    for p in probs:
        print(p)
    sys.exit(1 if probs else 0)


if __name__ == "__main__":
    main()
