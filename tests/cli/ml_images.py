#!/usr/bin/python3
"""ml_images.py - a small labelled image folder for the transfer-learning
tests, and the checks that read dlp's outputs back.

usage:
  ml_images.py make DIR N [--corrupt]   N images per class in DIR/CLASS/
  ml_images.py accuracy PRED.jsonl      accuracy of predictedLabel against
                                        the class folder of each path
  ml_images.py same PRED1.jsonl PRED2.jsonl   identical predictions/probs
  ml_images.py sklearn PRED.jsonl EVAL.json   evaluate's numbers = sklearn
  ml_images.py coef DIR1 DIR2           two saved pipelines: same LR arrays

Classes differ by colour and shape (red discs, green bars, blue squares),
with random positions, sizes and noise, so even random convolutional
features separate them. The images are PNG files made with PIL.
"""
import glob
import json
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

CLASSES = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def make(root, n, corrupt):
    rng = np.random.default_rng(7)
    for name, colour in CLASSES.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(n):
            w, h = int(rng.integers(36, 56)), int(rng.integers(36, 56))
            bg = rng.integers(0, 256, (h, w, 3)).astype(np.uint8) // 3 + 60
            im = Image.fromarray(bg, "RGB")
            d = ImageDraw.Draw(im)
            c = tuple(int(v + rng.integers(-25, 25)) for v in colour)
            x, y = int(rng.integers(2, w // 3)), int(rng.integers(2, h // 3))
            s = int(rng.integers(w // 3, w // 2))
            if name == "red":
                d.ellipse([x, y, x + s, y + s], fill=c)
            elif name == "green":
                d.rectangle([x, 0, x + s // 3, h - 1], fill=c)
            else:
                d.rectangle([x, y, x + s, y + s], fill=c)
            im.save(os.path.join(root, name, "%s_%02d.png" % (name, i)))
    if corrupt:
        with open(os.path.join(root, "red", "zz_broken.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def true_label(row):
    return os.path.basename(os.path.dirname(row["image"]["origin"]))


def accuracy(pred):
    r = [x for x in rows(pred) if x.get("predictedLabel") is not None]
    acc = sum(true_label(x) == x["predictedLabel"] for x in r) / len(r)
    print("%.4f" % acc)


def same(p1, p2):
    a, b = rows(p1), rows(p2)
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        assert x["image"]["origin"] == y["image"]["origin"]
        assert x["predictedLabel"] == y["predictedLabel"], (x, y)
        assert x["probability"] == y["probability"], (x, y)
    print("%d rows identical" % len(a))


def sklearn_check(pred, evaljson):
    from sklearn import metrics
    r = [x for x in rows(pred) if x.get("prediction") is not None]
    ev = json.load(open(evaljson))
    labels = ev["labels"]
    y = np.array([labels.index(true_label(x)) for x in r])
    p = np.array([x["prediction"] for x in r])
    prob = np.array([x["probability"] for x in r])
    want = {
        "accuracy": metrics.accuracy_score(y, p),
        "f1": metrics.f1_score(y, p, average="weighted"),
        "weightedPrecision": metrics.precision_score(
            y, p, average="weighted", zero_division=0),
        "weightedRecall": metrics.recall_score(y, p, average="weighted"),
        # By hand: sklearn 1.2 renormalises each row, and the float32
        # probabilities sum to 1 only within ~1e-7.
        "logLoss": float(np.mean(-np.log(np.clip(prob[np.arange(len(y)), y],
                                                 1e-15, 1 - 1e-15)))),
        "hammingLoss": metrics.hamming_loss(y, p),
    }
    for k, v in want.items():
        got = ev["metrics"][k]
        assert abs(got - v) <= 1e-9 * max(1, abs(v)), (k, got, v)
    cm = metrics.confusion_matrix(y, p, labels=list(range(len(labels))))
    assert np.array_equal(np.array(ev["confusion"]), cm), (ev["confusion"], cm)
    assert ev["rows"] == len(r)
    print("evaluate = sklearn.metrics on %d rows" % len(r))


def coef(d1, d2):
    # Array files are named stage-I-NAME.npy; the stage index differs when
    # one pipeline has a featurizer and the other not.
    def arrays(d):
        fs = glob.glob(os.path.join(d, "*.npy"))
        return sorted(fs, key=lambda f: os.path.basename(f).split("-", 2)[2])
    f1, f2 = arrays(d1), arrays(d2)
    assert [os.path.basename(f).split("-", 2)[2] for f in f1] == \
        [os.path.basename(f).split("-", 2)[2] for f in f2], (f1, f2)
    assert f1, "no arrays in %s" % d1
    worst = 0.0
    for a, b in zip(f1, f2):
        x, y = np.load(a), np.load(b)
        assert x.shape == y.shape, (a, x.shape, y.shape)
        if x.size:
            worst = max(worst, float(np.max(np.abs(x - y)) /
                                     max(1e-12, float(np.max(np.abs(x))))))
    assert worst <= 1e-9, worst
    print("%d arrays equal (max rel. diff %.3g)" % (len(f1), worst))


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], int(sys.argv[3]), "--corrupt" in sys.argv)
    elif cmd == "accuracy":
        accuracy(sys.argv[2])
    elif cmd == "same":
        same(sys.argv[2], sys.argv[3])
    elif cmd == "sklearn":
        sklearn_check(sys.argv[2], sys.argv[3])
    elif cmd == "coef":
        coef(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
