"""test_keras_meta.py - dlp's root attributes in saved Keras files: the
class names (dlp_class_names, a JSON list), the preprocessing
(dlp_preprocess) and the input size (dlp_input_size). tests/tools/kerassave
writes a MobileNetV2_0.35 classifier with them; h5py reads them back and
finds the Keras layout itself unchanged (the same datasets, layer lists and
model_config as a file saved without them); `dlp apply`/`dlp predict
--model-file` take the file's preprocessing by default and describe each
predicted class by its name; a model whose input size is None takes
dlp_input_size. Hostile attributes written with h5py (not JSON, not a list,
non-strings, the wrong count, too many, too long, too deep, the wrong HDF5
type, an unknown preprocessing, a bad size) make dlp exit 1 with a message
naming the file and the attribute, never crash (also under ASan).

Run with /usr/bin/python3; env DLP_BIN, DLP_TOOLS."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from PIL import Image

DLP = os.environ.get("DLP_BIN", "build/dlp")
TOOLS = os.environ.get("DLP_TOOLS", "build/tests")
K = 1000
failures = []


def check(label, ok, detail=""):
    print("%s %s%s" % ("ok  " if ok else "FAIL", label, (": " + detail) if detail and not ok else ""))
    if not ok:
        failures.append(label)


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


def dlp(*args):
    return run(DLP, *args)


def make_images(d):
    rng = np.random.default_rng(4)
    os.makedirs(d)
    for i in range(5):
        a = rng.integers(0, 256, (20 + i, 30 - i, 3), dtype=np.uint8)
        Image.fromarray(a).save(os.path.join(d, "img%d.png" % i))


def all_datasets(f):
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def check_layout(good, plain):
    """good carries the attributes; plain is the same model saved without."""
    with h5py.File(good, "r") as f, h5py.File(plain, "r") as g:
        names = json.loads(f.attrs["dlp_class_names"])
        check("dlp_class_names holds the names in order", names == NAMES)
        check("dlp_preprocess is 'caffe'", f.attrs["dlp_preprocess"] == b"caffe")
        check("dlp_input_size is '32x32'", f.attrs["dlp_input_size"] == b"32x32")
        keras = {"keras_version", "backend", "model_config"}
        dlp_attrs = {"dlp_class_names", "dlp_preprocess", "dlp_input_size"}
        check("the root holds Keras' attributes and dlp's", set(f.attrs) == keras | dlp_attrs,
              str(set(f.attrs)))
        check("saved without names: the zoo's preprocessing (tf) and size",
              set(g.attrs) == keras | dlp_attrs - {"dlp_class_names"}
              and g.attrs["dlp_preprocess"] == b"tf" and g.attrs["dlp_input_size"] == b"32x32")
        for a in ("keras_version", "backend", "model_config"):
            check("root attribute %s unchanged" % a, f.attrs[a] == g.attrs[a])
        cfg = json.loads(f.attrs["model_config"])
        check("model_config is a Functional model",
              cfg["class_name"] == "Functional")
        fw, gw = f["model_weights"], g["model_weights"]
        check("model_weights layer_names unchanged",
              list(fw.attrs["layer_names"]) == list(gw.attrs["layer_names"]))
        a, b = all_datasets(fw), all_datasets(gw)
        check("the same datasets, bit for bit",
              a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a))


def check_predict(d, good, imgs):
    r = dlp("apply", "--model-file", good, imgs, "--out", os.path.join(d, "a.npy"))
    check("dlp apply --model-file (file's preprocessing) exits 0", r.returncode == 0, r.stderr)
    r2 = dlp("apply", "--model-file", good, "--preprocess", "caffe", imgs,
             "--out", os.path.join(d, "c.npy"))
    r3 = dlp("apply", "--model-file", good, "--preprocess", "tf", imgs,
             "--out", os.path.join(d, "t.npy"))
    if r.returncode or r2.returncode or r3.returncode:
        check("apply runs", False, r2.stderr + r3.stderr)
        return
    a, c, t = (np.load(os.path.join(d, n)) for n in ("a.npy", "c.npy", "t.npy"))
    check("the default preprocessing is the file's (caffe)", np.array_equal(a, c))
    check("... and not tf", not np.allclose(a, t))
    out = os.path.join(d, "p.jsonl")
    r = dlp("predict", "--model-file", good, "-k", "3", imgs, "--out", out)
    check("dlp predict --model-file exits 0", r.returncode == 0, r.stderr)
    if r.returncode:
        return
    rows = [json.loads(json.loads(line)["predictions"]) for line in open(out)]
    ok = len(rows) == len(a)
    for p, probs in zip(rows, a):
        top = list(np.argsort(-probs, kind="stable")[:3])
        ok = ok and [x["class"] for x in p] == top
        ok = ok and all(x["description"] == NAMES[x["class"]] for x in p)
        ok = ok and np.allclose([x["probability"] for x in p], probs[top], rtol=1e-5)
    check("predictions: apply's top 3, described by the file's names", ok,
          json.dumps(rows[0])[:300])


def check_none_size(d, good, imgs):
    """A model whose input size is None takes dlp_input_size."""
    free = os.path.join(d, "free.h5")
    shutil.copy(good, free)
    with h5py.File(free, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        for layer in cfg["config"]["layers"]:
            if layer["class_name"] == "InputLayer":
                layer["config"]["batch_input_shape"] = [None, None, None, 3]
        f.attrs["model_config"] = np.bytes_(json.dumps(cfg))
    r = dlp("apply", "--model-file", free, imgs, "--out", os.path.join(d, "f.npy"))
    check("input None + dlp_input_size: apply exits 0", r.returncode == 0, r.stderr)
    if r.returncode == 0:
        check("... at the file's 32x32 (same outputs)",
              np.array_equal(np.load(os.path.join(d, "f.npy")), np.load(os.path.join(d, "a.npy"))))
    with h5py.File(free, "r+") as f:
        del f.attrs["dlp_input_size"]
    r = dlp("apply", "--model-file", free, imgs, "--out", os.path.join(d, "g.npy"))
    check("input None without dlp_input_size asks for a size",
          r.returncode == 1 and "input size" in r.stderr, r.stderr)


def hostile_cases():
    names = list(NAMES)
    s = lambda v: np.bytes_(v.encode() if isinstance(v, str) else v)
    return [
        ("not JSON", "dlp_class_names", s("[\"a\", oops"), "not JSON"),
        ("a JSON object", "dlp_class_names", s(json.dumps({"a": 1})), "not a list"),
        ("a number among the names", "dlp_class_names",
         s(json.dumps(names[:-1] + [5])), "item 999"),
        ("one name short", "dlp_class_names", s(json.dumps(names[:-1])),
         "999 class names but the model gives 1000"),
        ("one name too many", "dlp_class_names", s(json.dumps(names + ["x"])),
         "1001 class names"),
        ("an empty list", "dlp_class_names", s("[]"), "empty"),
        ("over a million names", "dlp_class_names",
         s(json.dumps([""] * ((1 << 20) + 1))), "too many"),
        ("a 5000-byte name", "dlp_class_names",
         s(json.dumps(names[:-1] + ["x" * 5000])), "too long"),
        ("nested 100000 deep", "dlp_class_names", s("[" * 100000 + "]" * 100000),
         "not JSON"),
        ("an integer array", "dlp_class_names", np.arange(3), "not a string"),
        ("a list of strings", "dlp_class_names",
         np.array([b"a", b"b"]), "must be one string"),
        ("an unknown preprocessing", "dlp_preprocess", s("magic"), "dlp_preprocess"),
        ("a bad size", "dlp_input_size", s("0x-1"), "dlp_input_size"),
    ]


def check_hostile(d, good, imgs):
    for i, (what, attr, value, says) in enumerate(hostile_cases()):
        bad = os.path.join(d, "bad%d.h5" % i)
        shutil.copy(good, bad)
        with h5py.File(bad, "r+") as f:
            del f.attrs[attr]
            f.attrs[attr] = value
        r = dlp("predict", "--model-file", bad, imgs, "--out", os.path.join(d, "x%d.jsonl" % i))
        ok = (r.returncode == 1 and bad in r.stderr and attr in r.stderr and says in r.stderr
              and "Sanitizer" not in r.stderr)
        check("hostile %s: predict exits 1 naming the file and %s" % (what, attr), ok,
              "rc %d: %s" % (r.returncode, r.stderr[-400:]))
    r = dlp("apply", "--model-file", os.path.join(d, "bad0.h5"), imgs,
            "--out", os.path.join(d, "y.npy"))
    check("apply refuses a hostile file too", r.returncode == 1 and "dlp_class_names" in r.stderr,
          r.stderr)


NAMES = ["class %03d" % i for i in range(K)]
NAMES[1] = "caf\u00e9 \u2615"
NAMES[2] = 'a "quoted", comma\\name'


def main():
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "names.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(NAMES) + "\n")
        good, plain = os.path.join(d, "good.h5"), os.path.join(d, "plain.h5")
        base = [good, "--zoo", "MobileNetV2_0.35", "--size", "32x32", "--seed", "3"]
        r = run(os.path.join(TOOLS, "kerassave"), *base, "--classes",
                os.path.join(d, "names.txt"), "--preprocess", "caffe")
        r2 = run(os.path.join(TOOLS, "kerassave"), plain, *base[1:])
        if r.returncode or r2.returncode:
            print("kerassave failed: " + r.stderr + r2.stderr)
            sys.exit(1)
        imgs = os.path.join(d, "imgs")
        make_images(imgs)
        check_layout(good, plain)
        check_predict(d, good, imgs)
        check_none_size(d, good, imgs)
        check_hostile(d, good, imgs)
        wo = os.path.join(d, "wo.h5")
        r = run(os.path.join(TOOLS, "kerassave"), wo, *base[1:], "--weights-only",
                "--classes", os.path.join(d, "names.txt"))
        with h5py.File(wo, "r") as f:
            check("weights-only files carry no dlp attributes",
                  r.returncode == 0 and not any(k.startswith("dlp_") for k in f.attrs))
    if failures:
        print("FAILED: " + ", ".join(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
