#!/usr/bin/python3
"""logreg.py - logistic regression fit time: dlp (tests/tools/lrfit, MLlib
semantics) vs scikit-learn on the same synthetic feature table, 5,000 train
x 2,048 float features (+ 1,000 test rows), 2 and 5 classes, L2 (sklearn
lbfgs) and elastic-net (sklearn saga). Run with Debian's /usr/bin/python3:

  /usr/bin/python3 bench/logreg.py --lrfit build/tests/lrfit [--threads 2]
      [--reg 0.05] [--enet 0.3] [--repeat 3]

regParam/elasticNetParam map to sklearn as MLlib defines its objective:
C = 1 / (regParam * n), l1_ratio = elasticNetParam; MLlib's standardization
is emulated by fitting sklearn on X / sigma (the scaling is timed with it).
Both sides get the same threads (sklearn through threadpoolctl; saga is
single-threaded by design) and their own default tolerances (dlp: MLlib's
tol 1e-6, maxIter 100; sklearn: tol 1e-4, max_iter 100); both objectives
(MLlib's, in float64) are printed so the solutions can be compared.
Prints a Markdown table: best-of-N fit seconds, ratio, test accuracy."""
import argparse, json, os, subprocess, sys, tempfile, time, warnings

# The environment presets OPENBLAS_CORETYPE=Haswell for other tools; give
# the peer OpenBLAS's own choice of kernels for this CPU.
if "OPENBLAS_CORETYPE" in os.environ and not os.environ.get("LOGREG_REEXEC"):
    env = dict(os.environ, LOGREG_REEXEC="1")
    del env["OPENBLAS_CORETYPE"]
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import numpy as np
import sklearn
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_info, threadpool_limits


def make_data(k, seed):
    X, y = make_classification(n_samples=6000, n_features=2048,
                               n_informative=64, n_redundant=32,
                               n_classes=k, n_clusters_per_class=1,
                               class_sep=0.8, random_state=seed)
    scales = np.random.default_rng(seed).uniform(0.1, 10, 2048)
    X = (X * scales).astype(np.float32)
    return X[:5000], y[:5000], X[5000:], y[5000:]


def mllib_objective(X, y, B, b, reg, a):
    X = X.astype(np.float64)
    M = X @ B.T + b
    if B.shape[0] == 1:
        m = M[:, 0]
        loss = np.logaddexp(0, m) - y * m
    else:
        loss = np.logaddexp.reduce(M, axis=1) - M[np.arange(len(y)), y]
    Bs = B * X.std(axis=0, ddof=1)
    return loss.mean() + reg * ((1 - a) / 2 * (Bs ** 2).sum() +
                                a * np.abs(Bs).sum())


def predict(X, B, b):
    M = X.astype(np.float64) @ B.T + b
    return (M[:, 0] > 0).astype(int) if B.shape[0] == 1 else M.argmax(axis=1)


def run_dlp(lrfit, tmp, reg, a, threads):
    out = os.path.join(tmp, "fit")
    cmd = [lrfit, os.path.join(tmp, "X.npy"), os.path.join(tmp, "y.npy"),
           "--reg", str(reg), "--enet", str(a), "--threads", str(threads),
           "--out", out]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    info = json.loads(r.stdout)
    return (info["fit_seconds"], np.load(out + "_coef.npy"),
            np.load(out + "_intercept.npy"), info["iterations"])


def run_sklearn(X, y, reg, a, threads):
    t0 = time.perf_counter()
    Xd = X.astype(np.float64)
    sigma = Xd.std(axis=0, ddof=1)
    sigma[sigma == 0] = 1
    if a == 0:
        m = LogisticRegression(C=1 / (reg * len(y)), solver="lbfgs")
    else:
        m = LogisticRegression(C=1 / (reg * len(y)), solver="saga",
                               penalty="elasticnet", l1_ratio=a)
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(Xd / sigma, y)
    secs = time.perf_counter() - t0
    return secs, m.coef_ / sigma, m.intercept_, int(m.n_iter_.max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lrfit", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reg", type=float, default=0.05)
    ap.add_argument("--enet", type=float, default=0.3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--classes", default="2,5")
    args = ap.parse_args()
    blas = [(i["internal_api"], i.get("version"), i.get("architecture"))
            for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
          f"BLAS {blas}, OPENBLAS_CORETYPE "
          f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}, "
          f"threads {args.threads}, best of {args.repeat}")
    print("| classes | setting | dlp s (iters) | sklearn s (iters) | "
          "sklearn/dlp | dlp acc | sklearn acc | dlp obj | sklearn obj |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k in [int(c) for c in args.classes.split(",")]:
            X, y, Xt, yt = make_data(k, 7 + k)
            np.save(os.path.join(tmp, "X.npy"), X)
            np.save(os.path.join(tmp, "y.npy"), y.astype(np.float64))
            for name, a in (("L2 (lbfgs)", 0.0),
                            (f"elastic-net {args.enet} (saga)", args.enet)):
                res = {}
                for side in ("dlp", "sklearn"):
                    best = None
                    for _ in range(args.repeat):
                        r = (run_dlp(args.lrfit, tmp, args.reg, a, args.threads)
                             if side == "dlp" else
                             run_sklearn(X, y, args.reg, a, args.threads))
                        if best is None or r[0] < best[0]:
                            best = r
                    res[side] = best
                row = [str(k), name]
                for side in ("dlp", "sklearn"):
                    row.append(f"{res[side][0]:.3f} ({res[side][3]})")
                row.append(f"{res['sklearn'][0] / res['dlp'][0]:.1f}x")
                for side in ("dlp", "sklearn"):
                    acc = (predict(Xt, res[side][1], res[side][2]) == yt).mean()
                    row.append(f"{100 * acc:.1f}%")
                for side in ("dlp", "sklearn"):
                    row.append(f"{mllib_objective(X, y, res[side][1], res[side][2], args.reg, a):.6f}")
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
