#!/usr/bin/python3
# sql_ref.py - the independent side of the SQL extension tests: folder
# listings from os/PIL, brute-force nearest neighbours and cosine/L2 with
# numpy, and exact comparisons between tables (read with Python's sqlite3).
#   sql_ref.py check-catalog DB TABLE DIR
#   sql_ref.py same DB1 SQL1 DB2 SQL2        (key -> value maps are equal)
#   sql_ref.py make-vectors DB N DIM SEED    (table vecs(id, features), q(v))
#   sql_ref.py check-knn DB CSV K METRIC     (CSV: id,score,rank from dlp_knn)
#   sql_ref.py check-pairs DB CSV            (CSV: id,cosine,l2)
#   sql_ref.py check-classify DB REF_DB      (SQL pipeline answers = 'dlp
#                                             transform' of the same images)
#   sql_ref.py make-lr DIR N DIM K SEED      (X.npy, y.npy, lr.db: vecs(id, features))
#   sql_ref.py check-unlabelled CSV TUNE_JSON (dlp_classify of a pipeline
#                                             without labels = the C API's)
import csv
import json
import os
import sqlite3
import sys

import numpy as np
from PIL import Image


def check_catalog(db, table, d):
    con = sqlite3.connect(db)
    got = {r[0]: r[1:] for r in con.execute(
        f"SELECT path, label, width, height, size, mtime, error FROM {table}")}
    con.close()
    want = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            rel = os.path.relpath(p, d).split(os.sep)
            label = rel[0] if len(rel) > 1 else None
            st = os.stat(p)
            try:
                with Image.open(p) as im:
                    im.load()
                    size = im.size
            except Exception:
                size = None
            want[p] = (label, size, st.st_size, int(st.st_mtime))
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for p, (label, size, nbytes, mtime) in want.items():
        g = got[p]
        assert g[0] == label, (p, g, label)
        assert g[3] == nbytes and g[4] == mtime, (p, g, nbytes, mtime)
        if size is None:
            assert g[5] is not None, f"{p}: PIL cannot read it, dlp no error"
        else:
            assert (g[1], g[2]) == size and g[5] is None, (p, g, size)
    print(f"{len(want)} files as os.walk/os.stat/PIL list them")


def same(db1, q1, db2, q2):
    def load(db, q):
        con = sqlite3.connect(db)
        r = dict(con.execute(q).fetchall())
        con.close()
        return r
    a, b = load(db1, q1), load(db2, q2)
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    diff = [k for k in a if a[k] != b[k]]
    assert not diff, f"values differ for {diff}"
    print(f"{len(a)} rows identical")


def make_vectors(db, n, dim, seed):
    rng = np.random.default_rng(int(seed))
    x = rng.normal(size=(int(n), int(dim))).astype("<f4")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE vecs(id INTEGER PRIMARY KEY, features BLOB)")
    for i, v in enumerate(x):
        con.execute("INSERT INTO vecs VALUES (?, ?)", (i + 1, v.tobytes()))
    con.execute("INSERT INTO vecs VALUES (?, NULL)", (int(n) + 1,))
    q = rng.normal(size=int(dim)).astype("<f4")
    con.execute("CREATE TABLE q(v BLOB)")
    con.execute("INSERT INTO q VALUES (?)", (q.tobytes(),))
    con.commit()
    con.close()


def load_vectors(db):
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT id, features FROM vecs WHERE features IS NOT NULL").fetchall()
    q = np.frombuffer(con.execute("SELECT v FROM q").fetchone()[0], "<f4")
    con.close()
    ids = np.array([r[0] for r in rows])
    x = np.stack([np.frombuffer(r[1], "<f4") for r in rows]).astype(np.float64)
    return ids, x, q.astype(np.float64)


def read_csv(path):
    with open(path, newline="") as f:
        return [r for r in csv.reader(f) if r]


def check_knn(db, out, k, metric):
    ids, x, q = load_vectors(db)
    k = int(k)
    if metric == "l2":
        s = np.sqrt(((x - q) ** 2).sum(1))
        order = np.argsort(s, kind="stable")[:k]
    else:
        s = x @ q / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
        order = np.argsort(-s, kind="stable")[:k]
    got = read_csv(out)
    assert len(got) == min(k, len(ids)), (len(got), k)
    for rank, (r, i) in enumerate(zip(got, order), 1):
        assert int(r[0]) == ids[i], (rank, r, ids[i])
        assert abs(float(r[1]) - s[i]) <= 1e-9 * max(1, abs(s[i])), (r, s[i])
        assert int(r[2]) == rank, r
    print(f"top-{k} by {metric} = numpy brute force")


def check_pairs(db, out):
    ids, x, q = load_vectors(db)
    cos = x @ q / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    l2 = np.sqrt(((x - q) ** 2).sum(1))
    got = {int(r[0]): r[1:] for r in read_csv(out)}
    for i, c, d in zip(ids, cos, l2):
        g = got[int(i)]
        assert abs(float(g[0]) - c) <= 1e-12 and abs(float(g[1]) - d) <= \
            1e-12 * max(1, d), (i, g, c, d)
    assert got[max(got)] == ["", ""], "NULL vector -> NULL"
    print(f"{len(ids)} cosine and L2 values = numpy")


def check_classify(db, ref):
    """DB's frame(image_origin, probability, classified, label) from
    dlp_apply, dlp_classify and a dlp_register function against REF's
    frame from 'dlp transform': the same bytes, index, label, numbers."""
    def rows(path, q):
        con = sqlite3.connect(path)
        r = {x[0]: x[1:] for x in con.execute(q)}
        con.close()
        return r
    got = rows(db, "SELECT image_origin, probability, classified, label "
                   "FROM frame")
    want = rows(ref, "SELECT image_origin, probability, prediction, "
                     "predictedLabel FROM frame")
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    n = 0
    for k, (prob, js, label) in got.items():
        wprob, wpred, wlabel = want[k]
        if wpred is None:  # unreadable image: NULL with on_error null
            assert prob is None and js is None and label is None, (k, got[k])
            continue
        assert prob == wprob, (k, "probability bytes differ")
        p = np.frombuffer(prob, "<f4")
        j = json.loads(js)
        assert j["index"] == int(wpred), (k, j, wpred)
        assert j["label"] == wlabel == label, (k, j, wlabel, label)
        # JSON numbers read back as the very float32 values.
        assert np.float32(j["probability"]) == p[j["index"]], (k, j, p)
        assert [np.float32(x) for x in j["probabilities"].values()] == list(p)
        assert list(j["probabilities"])[j["index"]] == wlabel, j
        n += 1
    print(f"{n} rows: probabilities, index and label = dlp transform")


def make_lr(d, n, dim, k, seed):
    rng = np.random.default_rng(int(seed))
    n, dim, k = int(n), int(dim), int(k)
    centre = rng.normal(size=(k, dim)) * 2
    y = rng.integers(0, k, size=n)
    x = (centre[y] + rng.normal(size=(n, dim))).astype("<f4")
    np.save(os.path.join(d, "X.npy"), x)
    np.save(os.path.join(d, "y.npy"), y.astype(np.int64))
    con = sqlite3.connect(os.path.join(d, "lr.db"))
    con.execute("CREATE TABLE vecs(id INTEGER PRIMARY KEY, features BLOB)")
    for i, v in enumerate(x):
        con.execute("INSERT INTO vecs VALUES (?, ?)", (i + 1, v.tobytes()))
    con.commit()
    con.close()


def check_unlabelled(out, tune_json):
    """CSV id, dlp_classify JSON, registered function value, for a pipeline
    without labels: index = the C API's prediction (tunetool's refit on the
    same rows), no "label", probabilities a plain array."""
    with open(tune_json) as f:
        pred = json.load(f)["test_pred"]
    rows = read_csv(out)
    assert len(rows) == len(pred), (len(rows), len(pred))
    for r in rows:
        i, j, reg = int(r[0]), json.loads(r[1]), r[2]
        assert "label" not in j, j
        p = j["probabilities"]
        assert isinstance(p, list) and abs(sum(p) - 1) < 1e-5, j
        assert j["index"] == pred[i - 1] == int(np.argmax(p)), (i, j)
        assert j["probability"] == p[j["index"]] and int(reg) == j["index"]
    print(f"{len(rows)} rows: index = the C API's prediction, no labels")


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    {"check-catalog": check_catalog, "same": same,
     "make-vectors": make_vectors, "check-knn": check_knn,
     "check-pairs": check_pairs, "check-classify": check_classify,
     "make-lr": make_lr, "check-unlabelled": check_unlabelled}[cmd](*a)


if __name__ == "__main__":
    main()
