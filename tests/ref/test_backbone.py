"""test_backbone.py - the pretrained backbone that ships with dlp
(models/clipart_mobilenet_v2_0.5_96.h5, made by `make pretrain`) is what
models/README.md says it is, and dlp runs it as an independent
implementation does.

The file is read with h5py only: its weights (Keras layouts) go into the
PyTorch MobileNetV2 of test_zoo_vs_torch.py, written from the Keras
sources, at alpha 0.5, followed by the file's Dense 'predictions' and a
softmax. Tux Paint stamps composited on white and resized to 96x96 by PIL
(so dlp does no resizing of its own) go through `dlp apply` with the file's
own preprocessing (its dlp_preprocess attribute, 'tf': x / 127.5 - 1) and
through PyTorch in float64: the probabilities must agree within 1e-4, and
`dlp predict` must name the same top class with the file's class names,
which must also equal models/...labels.json and the README's count.
`dlp featurize --layer global_average_pooling2d` must give PyTorch's pooled
features, and a pipeline fitted on them with `dlp fit --model-file ...
--layer ...` must featurize images the same way (`dlp transform` on the
image folder == on the feature table)."""
import json
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_zoo_vs_torch as zt  # noqa: E402  (the Keras MobileNetV2 in PyTorch)

SRC = os.environ.get("DLP_SRC", ".")
DLP = os.environ.get("DLP_BIN", "build/dlp")
MODEL = os.path.join(SRC, "models", "clipart_mobilenet_v2_0.5_96.h5")
STAMPS = "/usr/share/tuxpaint/stamps"
torch.set_grad_enabled(False)
failures = []


def check(label, ok, detail=""):
    print("%s %s%s" % ("ok  " if ok else "FAIL", label, (": " + detail) if detail and not ok else ""))
    if not ok:
        failures.append(label)


class H5W:
    """zt.W's interface over the file's weights, converted from Keras'
    layouts (conv HWIO, depthwise HWC1) to the graph's (OIHW, C1HW)."""

    def __init__(self, f):
        self.mw = f["model_weights"]
        self.used = set()

    def get(self, name, shape, kind):
        layer, role = name.split("/")
        a = self.mw[layer][layer][role + ":0"][()].astype(np.float64)
        if role == "kernel" and a.ndim == 4:
            a = a.transpose(3, 2, 0, 1)
        elif role == "depthwise_kernel":
            a = a.transpose(2, 3, 0, 1)
        if tuple(a.shape) != tuple(shape):
            raise ValueError("%s: shape %s, expected %s" % (name, a.shape, shape))
        self.used.add(layer)
        return torch.from_numpy(np.ascontiguousarray(a))


def make_inputs(d):
    """Six stamps from different folders as 96x96 RGB PNGs; their pixels."""
    picks = []
    for cat in sorted(os.listdir(STAMPS))[:6]:
        for root, _, files in sorted(os.walk(os.path.join(STAMPS, cat))):
            pngs = sorted(f for f in files if f.endswith(".png"))
            if pngs:
                picks.append(os.path.join(root, pngs[0]))
                break
    os.makedirs(d)
    pixels = []
    for i, p in enumerate(picks):
        im = Image.open(p).convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, im).convert("RGB").resize((96, 96), Image.BILINEAR)
        rgb.save(os.path.join(d, "img%d.png" % i))
        pixels.append(np.asarray(rgb, dtype=np.float64))
    return np.stack(pixels)


def dlp(*args):
    return subprocess.run([DLP] + list(args), capture_output=True, text=True)


def transform_probs(pipe, src, out):
    r = dlp("transform", "--pipeline", pipe, src, "--out", out)
    if r.returncode:
        return None, r.stderr
    rows = [json.loads(line) for line in open(out)]
    key = lambda row: os.path.basename(row["image"]["origin"])
    return {key(row): np.array(row["probability"]) for row in rows}, ""


def check_features(d, imgs, want):
    """featurize --layer == PyTorch's pooled features; fit --layer records
    the layer, so transform on images equals transform on features."""
    layer = "global_average_pooling2d"
    feats = os.path.join(d, "f.jsonl")
    r = dlp("featurize", "--model-file", MODEL, "--layer", layer, imgs, "--out", feats)
    check("featurize --layer runs", r.returncode == 0, r.stderr)
    if r.returncode:
        return
    rows = [json.loads(line) for line in open(feats)]
    got = np.array([row["features"] for row in sorted(rows, key=lambda x: x["image"]["origin"])])
    err = float(np.abs(got - want).max() / np.abs(want).max()) if got.shape == want.shape else 1.0
    check("featurize --layer %s == PyTorch's pooled features (rel %.2g)" % (layer, err),
          err < 1e-4)
    # Two labels by file name; a pipeline fitted on every row.
    table = os.path.join(d, "f_labelled.jsonl")
    with open(table, "w") as fp:
        for i, row in enumerate(sorted(rows, key=lambda x: x["image"]["origin"])):
            row["label"] = "ab"[i % 2]
            fp.write(json.dumps(row) + "\n")
    pipe = os.path.join(d, "p.dlp")
    r = dlp("fit", "--features-from", table, "--model-file", MODEL, "--layer", layer,
            "--split", "1", "--max-iter", "20", "--out", pipe)
    check("fit --features-from --model-file --layer runs", r.returncode == 0, r.stderr)
    if r.returncode:
        return
    manifest = open(os.path.join(pipe, "pipeline.json")).read()
    check("the saved pipeline records the layer", '"%s"' % layer in manifest)
    a, err_a = transform_probs(pipe, imgs, os.path.join(d, "ti.jsonl"))
    b, err_b = transform_probs(pipe, table, os.path.join(d, "tf.jsonl"))
    check("transform runs on images and on features", a is not None and b is not None,
          err_a + err_b)
    if a is not None and b is not None:
        diff = max(float(np.abs(a[k] - b[k]).max()) for k in a) if a.keys() == b.keys() else 1.0
        check("transform on images == on the feature table (max abs %.2g)" % diff, diff < 1e-5)


def main():
    if not os.path.exists(MODEL):
        check("the shipped backbone exists at " + MODEL, False)
        return
    if not os.path.isdir(STAMPS):
        print("skip: %s is missing (scripts/install-deps.sh installs it)" % STAMPS)
        return
    with h5py.File(MODEL, "r") as f:
        names = json.loads(f.attrs["dlp_class_names"])
        check("dlp_preprocess is tf", f.attrs["dlp_preprocess"] == b"tf")
        check("dlp_input_size is 96x96", f.attrs["dlp_input_size"] == b"96x96")
        w = H5W(f)
        with tempfile.TemporaryDirectory() as d:
            imgs = os.path.join(d, "imgs")
            px = make_inputs(imgs)
            x = torch.from_numpy(px.transpose(0, 3, 1, 2) / 127.5 - 1.0)
            feats = zt.mobilenet_v2(zt.K(w), x, alpha=0.5)
            k = w.get("predictions/kernel", (feats.shape[1], len(names)), "kernel")
            b = w.get("predictions/bias", (len(names),), "bias")
            want = torch.softmax(feats @ k + b, dim=1).numpy()
            layers = [n.decode() for n in f["model_weights"].attrs["layer_names"]]
            with_weights = {n for n in layers if len(f["model_weights"][n].keys())}
            check("every weighted layer of the file was used", with_weights == w.used,
                  str(sorted(with_weights ^ w.used)[:5]))

            out = os.path.join(d, "a.npy")
            r = subprocess.run([DLP, "apply", "--model-file", MODEL, imgs, "--out", out],
                               capture_output=True, text=True)
            check("dlp apply runs the backbone", r.returncode == 0, r.stderr)
            if r.returncode == 0:
                got = np.load(out)
                err = float(np.abs(got - want).max()) if got.shape == want.shape else 1.0
                check("dlp apply == PyTorch on the file's weights (max abs %.2g)" % err,
                      err < 1e-4)
            check_features(d, imgs, feats.numpy())
            pred = os.path.join(d, "p.jsonl")
            r = subprocess.run([DLP, "predict", "--model-file", MODEL, "-k", "1", imgs,
                                "--out", pred], capture_output=True, text=True)
            check("dlp predict runs", r.returncode == 0, r.stderr)
            if r.returncode == 0:
                rows = [json.loads(json.loads(line)["predictions"])[0] for line in open(pred)]
                top = [names[i] for i in want.argmax(1)]
                check("predict's top classes are PyTorch's, named from the file",
                      [p["description"] for p in rows] == top, "%s vs %s" % (rows, top))

    sidecar = MODEL[:-3] + ".labels.json"
    with open(sidecar) as fp:
        side = json.load(fp)
    side_names = side["classes"] if isinstance(side, dict) else side
    check("the .labels.json lists the same classes", side_names == names)
    readme = open(os.path.join(SRC, "models", "README.md")).read()
    m = re.search(r"(\d+) categories", readme)
    check("models/README.md states the number of categories (%d)" % len(names),
          m is not None and int(m.group(1)) == len(names))


if __name__ == "__main__":
    main()
    print("%d failure(s)" % len(failures))
    sys.exit(1 if failures else 0)
