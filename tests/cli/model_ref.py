#!/usr/bin/python3
# model_ref.py - the PyTorch/PIL side of the model CLI tests: makes a tiny CNN
# with seeded random weights (exported to ONNX), test images, and checks the
# tables dlp wrote (read with sqlite3) against PyTorch run on images that PIL
# preprocessed the same way.
#   model_ref.py make-onnx OUT.onnx | make-vec-onnx OUT.onnx VEC.jsonl
#   model_ref.py make-images DIR
#   model_ref.py check-features TABLE.db COLUMN HxW NORM
#   model_ref.py check-predict TABLE.db COLUMN HxW NORM K
#   model_ref.py check-vec TABLE.db
import json
import os
import sqlite3
import sys

import numpy as np
from PIL import Image

TOL = 1e-4  # max |dlp - torch| / max |torch|, per row


def tiny_cnn():
    import torch
    from torch import nn
    torch.manual_seed(1234)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, groups=16, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():  # BN statistics that are not the identity
        bn = m[3]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
        m[-1].weight.mul_(20)  # spread the logits: no near-ties in top-k
    return m.eval()


def vec_net():
    import torch
    from torch import nn
    torch.manual_seed(99)
    return nn.Sequential(nn.Linear(10, 6), nn.Tanh(), nn.Linear(6, 3)).eval()


def export(model, shape, out):
    import torch
    x = torch.zeros(*shape)
    torch.onnx.export(model, x, out, input_names=["input"],
                      output_names=["output"], opset_version=13,
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})


def make_images(d):
    rng = np.random.default_rng(7)
    os.makedirs(os.path.join(d, "cats"), exist_ok=True)
    os.makedirs(os.path.join(d, "dogs"), exist_ok=True)
    for i in range(5):
        h, w = 20 + 9 * i, 70 - 7 * i
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        # smooth structure so the network sees more than noise
        a[: h // 2] //= 2
        Image.fromarray(a).save(os.path.join(d, "cats" if i % 2 else "dogs",
                                             f"img{i}.png"))
    g = rng.integers(0, 256, (33, 41), dtype=np.uint8)
    Image.fromarray(g, "L").save(os.path.join(d, "cats", "gray.png"))
    with open(os.path.join(d, "dogs", "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # truncated


def preprocess(path, h, w, norm):
    im = Image.open(path).convert("RGB").resize((w, h), Image.BILINEAR)
    x = np.asarray(im, dtype=np.float32)
    if norm == "tf":
        x = x / np.float32(127.5) - np.float32(1)
    elif norm == "caffe":
        x = x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    elif norm != "none":
        sys.exit("norm " + norm)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def rows(db, col):
    con = sqlite3.connect(db)
    out = con.execute(f'SELECT image_origin, image_error, "{col}" FROM frame'
                      ).fetchall()
    con.close()
    return out


def torch_out(model, paths, h, w, norm):
    import torch
    x = np.stack([preprocess(p, h, w, norm) for p in paths])
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def check_rows(db, col):
    """Valid images have a value, invalid ones null (and an error)."""
    r = rows(db, col)
    bad = [o for o, e, v in r if v is None]
    good = [(o, v) for o, e, v in r if v is not None]
    assert any(o.endswith("broken.png") for o in bad), bad
    assert all(o.endswith("broken.png") for o in bad), bad
    assert all(e is not None for o, e, v in r if v is None)
    assert len(good) == 6, len(good)
    return good


def check_features(db, col, size, norm, tol=TOL):
    tol = float(tol)
    h, w = map(int, size.split("x"))
    good = check_rows(db, col)
    ref = torch_out(tiny_cnn(), [o for o, _ in good], h, w, norm)
    for (o, blob), t in zip(good, ref):
        v = np.frombuffer(blob, "<f4")
        assert v.shape == t.shape, (v.shape, t.shape)
        err = np.abs(v - t).max() / max(np.abs(t).max(), 1e-6)
        assert err <= tol, f"{o}: relative error {err:.2e}"
    print(f"{len(good)} rows within {tol} of PyTorch")


def check_predict(db, col, size, norm, k):
    import torch
    h, w = map(int, size.split("x"))
    good = check_rows(db, col)
    logits = torch.from_numpy(torch_out(tiny_cnn(), [o for o, _ in good],
                                        h, w, norm))
    p, idx = torch.topk(torch.softmax(logits, 1), int(k))
    for (o, text), pr, ix in zip(good, p.numpy(), idx.numpy()):
        got = json.loads(text)
        assert [g["class"] for g in got] == list(ix), (o, got, ix)
        assert np.allclose([g["probability"] for g in got], pr, atol=1e-5), \
            (o, got, pr)
        assert all("description" not in g for g in got)  # 10 classes: no names
    print(f"{len(good)} rows: top-{k} classes and probabilities as PyTorch")


def make_vec(out, jsonl):
    export(vec_net(), (1, 10), out)
    rng = np.random.default_rng(3)
    with open(jsonl, "w") as f:
        for i in range(7):
            f.write(json.dumps({"id": i, "x": [float(np.float32(v)) for v in
                                               rng.normal(size=10)]}) + "\n")
        f.write(json.dumps({"id": 7, "x": None}) + "\n")


def check_vec(db, jsonl):
    import torch
    con = sqlite3.connect(db)
    got = dict(con.execute("SELECT id, output FROM frame").fetchall())
    con.close()
    src = [json.loads(line) for line in open(jsonl)]
    for r in src:
        if r["x"] is None:
            assert got[r["id"]] is None, "null input -> null output"
            continue
        with torch.no_grad():
            t = vec_net()(torch.tensor([r["x"]], dtype=torch.float32))[0].numpy()
        v = np.frombuffer(got[r["id"]], "<f4")
        err = np.abs(v - t).max() / max(np.abs(t).max(), 1e-6)
        assert err <= TOL, f"row {r['id']}: relative error {err:.2e}"
    print(f"{len(src)} vector rows as PyTorch")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make-onnx":
        export(tiny_cnn(), (1, 3, 32, 32), args[0])
    elif cmd == "make-vec-onnx":
        make_vec(*args)
    elif cmd == "make-images":
        make_images(args[0])
    elif cmd == "check-features":
        check_features(*args)
    elif cmd == "check-predict":
        check_predict(*args)
    elif cmd == "check-vec":
        check_vec(*args)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
