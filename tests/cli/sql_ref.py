#!/usr/bin/python3
# sql_ref.py - the independent side of the SQL extension tests: folder
# listings from os/PIL, brute-force nearest neighbours and cosine/L2 with
# numpy, and exact comparisons between tables (read with Python's sqlite3).
#   sql_ref.py check-catalog DB TABLE DIR
#   sql_ref.py same DB1 SQL1 DB2 SQL2        (key -> value maps are equal)
#   sql_ref.py make-vectors DB N DIM SEED    (table vecs(id, features), q(v))
#   sql_ref.py check-knn DB CSV K METRIC     (CSV: id,score,rank from dlp_knn)
#   sql_ref.py check-pairs DB CSV            (CSV: id,cosine,l2)
import csv
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


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    {"check-catalog": check_catalog, "same": same,
     "make-vectors": make_vectors, "check-knn": check_knn,
     "check-pairs": check_pairs}[cmd](*a)


if __name__ == "__main__":
    main()
