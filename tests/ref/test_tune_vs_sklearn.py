"""dlp_tune (CrossValidator, TrainValidationSplit) against scikit-learn.

tunetool runs dlp_tune on a synthetic feature table and prints the fold of
every row, each grid combination's per-fold accuracies and mean, the best
combination and the refitted model's predictions on a held-out set. Here
every combination is fitted again with sklearn's LogisticRegression on the
same folds, with MLlib's objective mapped onto sklearn's:

    MLlib: (1/n) sum loss + reg * ((1 - a)/2 ||b*sigma||^2 + a ||b*sigma||_1)
    sklearn on X/sigma: C sum loss + (1 - l1_ratio)/2 ||w||^2 + l1_ratio ||w||_1
    => C = 1 / (reg * n_train), l1_ratio = a, w = b * sigma

(sigma: the training rows' sample standard deviation, as MLlib's
standardization). Asserted: the same best combination, every mean within
0.01, and the refit's held-out accuracy within 0.5 points of sklearn's refit.
"""
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

TOOLS = os.environ.get("DLP_TOOLS", "build/tests")
SANITIZED = os.environ.get("DLP_SANITIZED", "0") in ("1", "ON", "TRUE", "true")
GRID = "reg=0.3,0.03,0.003;elastic-net=0,0.6"


def make_data(rng, n, d=24, informative=4, classes=3):
    """Classes from a linear score on a few informative features plus noise
    features, so that regularisation decides how well a model does."""
    w = rng.normal(size=(informative, classes)) * 1.5
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d)
    scores = X[:, :informative] / X[:, :informative].std(0) @ w
    y = np.argmax(scores + rng.gumbel(size=(n, classes)), axis=1)
    return X.astype(np.float32), y.astype(np.int64)


def sk_fit(X, y, reg, enet):
    sigma = X.std(axis=0, ddof=1)
    sigma[sigma == 0] = 1
    C = 1.0 / (reg * len(y))
    if enet == 0:
        m = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=20000)
    else:
        m = LogisticRegression(C=C, penalty="elasticnet", l1_ratio=enet,
                               solver="saga", tol=1e-9, max_iter=200000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(X.astype(np.float64) / sigma, y)
    return lambda Z: m.predict(Z.astype(np.float64) / sigma)


def parse_params(text):
    kv = dict(t.split("=") for t in text.split())
    return float(kv["regParam"]), float(kv["elasticNetParam"])


def run_tool(args):
    out = subprocess.run([os.path.join(TOOLS, "tunetool")] + args,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit("tunetool failed: " + out.stderr)
    return json.loads(out.stdout)


def check(res, X, y, Xt, yt, k):
    n = len(y)
    fold = np.array(res["fold_of_row"])
    nfolds = k if k >= 2 else 1
    sizes = np.bincount(fold, minlength=max(nfolds, 2))
    if k >= 2:
        assert sizes.max() - sizes.min() <= 1, sizes
        assert sizes.sum() == n
    combos = res["combos"]
    assert len(combos) == 6
    # ParamGridBuilder order: the last parameter varies fastest.
    want = [(r, a) for r in (0.3, 0.03, 0.003) for a in (0, 0.6)]
    assert [parse_params(c["params"]) for c in combos] == want, combos
    sk_means = []
    worst = 0
    for c in combos:
        reg, enet = parse_params(c["params"])
        accs = []
        for f in range(nfolds):
            tr, va = fold != f, fold == f
            pred = sk_fit(X[tr], y[tr], reg, enet)(X[va])
            accs.append(float(np.mean(pred == y[va])))
        sk_means.append(np.mean(accs))
        worst = max(worst, abs(np.mean(accs) - c["mean"]))
        assert abs(np.mean(accs) - c["mean"]) <= 0.01, (c, accs)
        if nfolds > 1:
            assert abs(np.std(c["folds"], ddof=1) - c["std"]) < 1e-12
    best_sk = int(np.argmax(sk_means))
    assert res["best"] == best_sk, (res["best"], best_sk, sk_means)
    reg, enet = parse_params(combos[best_sk]["params"])
    sk_acc = float(np.mean(sk_fit(X, y, reg, enet)(Xt) == yt))
    dlp_acc = float(np.mean(np.array(res["test_pred"]) == yt))
    assert abs(sk_acc - dlp_acc) <= 0.005, (sk_acc, dlp_acc)
    print("folds=%d: means within %.4f of sklearn; best %s; held-out "
          "accuracy dlp %.4f sklearn %.4f; tune %.2f s"
          % (k, worst, combos[best_sk]["params"], dlp_acc, sk_acc,
             res["seconds"]))


def main():
    rng = np.random.default_rng(7)
    n = 240 if SANITIZED else 360
    X, y = make_data(rng, n + 3000)
    X, Xt, y, yt = X[:n], X[n:], y[:n], y[n:]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f) for f in ("X.npy", "y.npy", "Xt.npy")]
        for p, a in zip(paths, (X, y, Xt)):
            np.save(p, a)
        base = paths[:2] + ["--grid", GRID, "--max-iter", "2000", "--tol",
                            "1e-12", "--test", paths[2], "--seed", "3"]
        cv = run_tool(base + ["--folds", "3"])
        check(cv, X, y, Xt, yt, 3)
        # Any parallelism gives the very same numbers.
        cv2 = run_tool(base + ["--folds", "3", "--parallelism", "3"])
        cv.pop("seconds"), cv2.pop("seconds")
        assert cv == cv2
        tvs = run_tool(base + ["--folds", "0", "--train-ratio", "0.7"])
        assert sum(1 for f in tvs["fold_of_row"] if f == 0) == round(n * 0.3)
        check(tvs, X, y, Xt, yt, 0)
    print("ok")


if __name__ == "__main__":
    main()
