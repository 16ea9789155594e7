#!/usr/bin/python3
"""finetune_ref.py - images and independent checks for test_finetune.sh.

usage:
  finetune_ref.py make DIR N [--corrupt]   N noisy solid-colour PNGs per class
  finetune_ref.py epochs LOG               "first_train_loss last_train_loss
                                            last_val_loss last_val_acc"
  finetune_ref.py check VAL.csv APPLY.jsonl FEAT.jsonl MODEL.h5 LABELS.json LOG
      VAL.csv: dlp finetune --val-predictions; APPLY.jsonl: 'dlp apply' of
      the saved model on the images; FEAT.jsonl: 'dlp featurize --layer
      <feature layer>' of the saved model. Recomputes the head (dense, relu,
      softmax) from the .h5 weights read with h5py, and checks that it, the
      apply output and finetune's own validation probabilities agree within
      1e-4, and that the printed val loss and accuracy of the epoch whose
      weights were saved ("saved weights: epoch N") are those of the
      probabilities.
  finetune_ref.py best LOG                 "saved best last" (1-based epochs:
                                            the saved one, the lowest printed
                                            val loss, the last)
"""
import csv
import json
import os
import re
import sys

import h5py
import numpy as np
from PIL import Image

CLASSES = {"red": (200, 50, 50), "green": (50, 180, 60), "blue": (50, 60, 220)}


def make(root, n, corrupt):
    rng = np.random.default_rng(3)
    for name, colour in CLASSES.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(n):
            w, h = int(rng.integers(48, 65)), int(rng.integers(48, 65))
            a = np.array(colour)[None, None, :] + rng.normal(0, 30, (h, w, 3))
            im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
            im.save(os.path.join(root, name, "%s_%02d.png" % (name, i)))
    if corrupt:
        with open(os.path.join(root, "red", "zz_broken.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"truncated" * 4)


EPOCH = re.compile(r"^epoch +\d+/\d+ +train_loss ([0-9.]+) +train_acc "
                   r"([0-9.]+)(?: +val_loss ([0-9.]+) +val_acc ([0-9.]+))?")


def epochs(log):
    out = []
    with open(log) as f:
        for line in f:
            m = EPOCH.match(line)
            if m:
                out.append([float(v) if v else float("nan")
                            for v in m.groups()])
    if not out:
        sys.exit("no epoch lines in " + log)
    return out


def saved_epoch(log):
    """1-based epoch of "saved weights: epoch N" in the log."""
    with open(log) as f:
        for line in f:
            m = re.match(r"^saved weights: epoch (\d+) ", line)
            if m:
                return int(m.group(1))
    sys.exit("no 'saved weights' line in " + log)


def best(log):
    e = epochs(log)
    losses = [r[2] for r in e]
    low = min(range(len(e)), key=lambda i: (losses[i], i))  # first minimum
    print("%d %d %d" % (saved_epoch(log), low + 1, len(e)))


def jsonl(path, col):
    rows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows[r["image"]["origin"]] = np.array(r[col], dtype=np.float64)
    return rows


def head_probs(h5, feats):
    """Dense layers of the saved head, in the order the config lists them."""
    with h5py.File(h5, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        layers = cfg["config"]["layers"]
        start = [i for i, l in enumerate(layers)
                 if l["config"]["name"] == "global_average_pooling2d"][0]
        x = feats
        for l in layers[start + 1:]:
            cls, c = l["class_name"], l["config"]
            if cls == "Dropout":
                continue
            assert cls == "Dense", cls
            g = f["model_weights"][c["name"]][c["name"]]
            w = np.array(g["kernel:0"], dtype=np.float64)
            b = np.array(g["bias:0"], dtype=np.float64)
            x = x @ w + b
            if c["activation"] == "relu":
                x = np.maximum(x, 0)
            elif c["activation"] == "softmax":
                x = np.exp(x - x.max(1, keepdims=True))
                x /= x.sum(1, keepdims=True)
            else:
                assert c["activation"] == "linear", c["activation"]
        return x


def check(val_csv, apply_jsonl, feat_jsonl, h5, labels_json, log):
    with open(val_csv) as f:
        rows = list(csv.reader(f))
    classes = json.load(open(labels_json))["classes"]
    assert rows[0][3:] == classes, (rows[0], classes)
    origins = [r[0] for r in rows[1:]]
    labels = [classes.index(r[1]) for r in rows[1:]]
    ft = np.array([[float(v) for v in r[3:]] for r in rows[1:]])
    ap = jsonl(apply_jsonl, "output")
    fe = jsonl(feat_jsonl, "features")
    ap = np.array([ap[o] for o in origins])
    ref = head_probs(h5, np.array([fe[o] for o in origins]))
    err_ap = np.abs(ap - ft).max()
    err_ref = np.abs(ref - ft).max()
    print("validation images: %d; max |apply - finetune| %.2e, max "
          "|numpy head - finetune| %.2e" % (len(origins), err_ap, err_ref))
    ok = err_ap <= 1e-4 and err_ref <= 1e-4
    e = epochs(log)
    k = saved_epoch(log)
    saved = e[k - 1]
    loss = -np.mean(np.log(ref[np.arange(len(labels)), labels]))
    acc = np.mean(ref.argmax(1) == np.array(labels))
    print("saved epoch %d of %d: val_loss %.4f val_acc %.4f; numpy %.4f %.4f"
          % (k, len(e), saved[2], saved[3], loss, acc))
    ok = ok and abs(loss - saved[2]) <= 1e-3 and abs(acc - saved[3]) <= 1e-3
    sys.exit(0 if ok else 1)


def main():
    a = sys.argv[1:]
    if a[0] == "make":
        make(a[1], int(a[2]), "--corrupt" in a)
    elif a[0] == "epochs":
        e = epochs(a[1])
        print("%.4f %.4f %.4f %.4f" % (e[0][0], e[-1][0], e[-1][2], e[-1][3]))
    elif a[0] == "best":
        best(a[1])
    elif a[0] == "check":
        check(*a[1:7])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
