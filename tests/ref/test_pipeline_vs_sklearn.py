"""test_pipeline_vs_sklearn.py - a fitted StringIndexer + LogisticRegression
pipeline, saved by one process (pipetool fit) and loaded by another
(pipetool predict), checked against independent references:

* the reloaded model's predictions equal the in-process model's exactly;
* the StringIndexer's label order is MLlib's frequencyDesc (ties broken
  alphabetically), computed here with collections.Counter;
* the saved .npy arrays load with numpy.load, their SHA-256 matches the
  manifest, and scikit-learn's LogisticRegression given those coefficients
  computes the same probabilities (predict_proba), margins and predictions:
  an independent check of the transform's math (outputs are float32).
"""
import collections
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.linear_model import LogisticRegression

TOOLS = os.environ["DLP_TOOLS"]
SANITIZED = os.environ.get("DLP_SANITIZED", "0") in ("1", "ON", "TRUE", "true")


def pipetool(*args):
    r = subprocess.run([os.path.join(TOOLS, "pipetool"), *args],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("pipetool %s failed (%d): %s" % (" ".join(args),
                                                  r.returncode, r.stderr))


def make_table(path, n, d, names, weights, seed):
    """Blobs: class c shifted on feature c % d; labels with uneven counts
    (and a tie between two of them, to exercise the alphabetical rule)."""
    rng = np.random.default_rng(seed)
    counts = [int(round(w * n)) for w in weights]
    labels = [names[c] for c, k in enumerate(counts) for _ in range(k)]
    rng.shuffle(labels)
    X = rng.normal(size=(len(labels), d)).astype(np.float32)
    for i, lab in enumerate(labels):
        X[i, names.index(lab) % d] += np.float32(1.5)
    with open(path, "w") as f:
        for x, lab in zip(X, labels):
            f.write(json.dumps({"features": [float(v) for v in x],
                                "label": lab}) + "\n")
    return X, labels


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def check(tmp, name, names, weights, params):
    n = 120 if SANITIZED else 1500
    d = 7
    table = os.path.join(tmp, name + ".jsonl")
    X, labels = make_table(table, n, d, names, weights, seed=len(names))
    model = os.path.join(tmp, name + ".dlp")
    out_fit = os.path.join(tmp, name + "-fit.jsonl")
    out_load = os.path.join(tmp, name + "-load.jsonl")
    pipetool("fit", table, model, out_fit, *params)
    pipetool("predict", model, table, out_load)  # a separate process

    a, b = read_jsonl(out_fit), read_jsonl(out_load)
    assert len(a) == len(b) == len(labels)
    for ra, rb in zip(a, b):
        for col in ("rawPrediction", "probability", "prediction",
                    "predictedLabel"):
            assert ra[col] == rb[col], (name, col, ra[col], rb[col])

    with open(os.path.join(model, "pipeline.json")) as f:
        manifest = json.load(f)
    assert manifest["format"] == "dlp-pipeline" and manifest["version"] == 1
    stages = manifest["stages"]
    assert [s["class"] for s in stages] == [
        "StringIndexerModel", "LogisticRegressionModel", "IndexToString"]

    counts = collections.Counter(labels)
    want = sorted(counts, key=lambda s: (-counts[s], s))
    assert stages[0]["labels"] == want, (stages[0]["labels"], want)

    lr = stages[1]
    arrays = {}
    for key in ("coefficients", "intercepts"):
        path = os.path.join(model, lr["arrays"][key]["file"])
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == \
                lr["arrays"][key]["sha256"]
        arrays[key] = np.load(path)
        assert arrays[key].dtype == np.float64
    coef, icpt = arrays["coefficients"], arrays["intercepts"]
    K = lr["n_classes"]
    assert K == len(names)
    multinomial = lr["summary"]["multinomial"]
    assert coef.shape == ((K if multinomial else 1), d)
    assert icpt.shape == (coef.shape[0],)
    for key, value in params_dict(params).items():
        saved = lr["params"][key]
        if isinstance(saved, bool):
            assert saved == (value == "true"), key
        elif isinstance(saved, str):
            assert saved == value, key
        else:
            assert float(saved) == float(value), key

    sk = LogisticRegression(
        multi_class="multinomial" if multinomial else "ovr")
    sk.coef_, sk.intercept_, sk.classes_ = coef, icpt, np.arange(K)
    proba = sk.predict_proba(X.astype(np.float64))
    margins = X.astype(np.float64) @ coef.T + icpt
    got_p = np.array([r["probability"] for r in a])
    got_raw = np.array([r["rawPrediction"] for r in a])
    got_pred = np.array([r["prediction"] for r in a])
    assert np.allclose(got_p, proba, rtol=0, atol=2e-6), \
        np.abs(got_p - proba).max()
    want_raw = margins if multinomial else np.hstack([-margins, margins])
    assert np.allclose(got_raw, want_raw, rtol=1e-6, atol=1e-5), \
        np.abs(got_raw - want_raw).max()
    if multinomial:
        want_pred = proba.argmax(axis=1)
    else:
        want_pred = (proba[:, 1] > float(lr["params"]["threshold"])).astype(int)
    # rows within float32 noise of the decision boundary may go either way
    margin_gap = np.sort(proba, axis=1)[:, -1] - np.sort(proba, axis=1)[:, -2]
    sure = margin_gap > 1e-5
    assert (got_pred[sure] == want_pred[sure]).all()
    assert [r["predictedLabel"] for r in a] == \
        [want[int(p)] for p in got_pred]
    acc = np.mean([r["predictedLabel"] == y for r, y in zip(a, labels)])
    assert acc > 0.7, acc
    print("%s: %d rows, K=%d, accuracy %.3f, max |p - sklearn| %.2g" % (
        name, len(a), K, acc, np.abs(got_p - proba).max()))


def params_dict(params):
    return dict(p.split("=", 1) for p in params if not p.startswith("si."))


def main():
    with tempfile.TemporaryDirectory(prefix="dlp_pipe_ref_") as tmp:
        check(tmp, "binomial", ["yes", "no"], [0.6, 0.4],
              ["regParam=0.01"])
        check(tmp, "multinomial", ["b", "a", "c", "dd"],
              [0.35, 0.25, 0.25, 0.15],
              ["regParam=0.02", "elasticNetParam=0.5", "maxIter=200"])
        check(tmp, "unregularised", ["x", "y", "z"], [0.2, 0.5, 0.3],
              ["family=multinomial", "standardization=false", "tol=1e-9"])
    print("ok")


if __name__ == "__main__":
    main()
