"""test_eval_vs_sklearn.py - the evaluators against scikit-learn.

Every metric dlp computes (through tests/tools/evaltool, over a JSON Lines
table written here) must equal sklearn.metrics on the same labels,
predictions, probabilities and sample weights to 1e-9.

MLlib's definitions and sklearn's agree on these when sklearn is asked the
right way:
  accuracy, hammingLoss      accuracy_score, hamming_loss
  weightedPrecision/Recall   precision_score/recall_score(average='weighted',
  f1 (= weightedFMeasure)    zero_division=0): both weigh each class by its
                             share of the true labels, so a class that is
                             only predicted weighs 0 and a class never
                             predicted has precision 0
  logLoss                    log_loss(labels=range(K)). sklearn clips to
                             [eps, 1-eps] and renormalises each row; the
                             probabilities here are multiples of 1/1024, at
                             least 1/1024, that sum to exactly 1 in float32
                             and float64, so neither step changes a value
                             and both sides see the same numbers
  confusion matrix           confusion_matrix(labels=range(K))
  areaUnderROC               roc_auc_score (trapezoid over distinct scores)
  areaUnderPR                see pr_area_mllib below
Rows with a null label or prediction are dropped before sklearn sees them.

Run with /usr/bin/python3; env DLP_TOOLS = folder holding evaltool.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn import metrics as skm

TOOLS = os.environ.get("DLP_TOOLS", "build/tests")
EVALTOOL = os.path.join(TOOLS, "evaltool")
TOL = 1e-9
FAILED = []


def check(cond, what):
    if not cond:
        FAILED.append(what)
        print("FAIL:", what, file=sys.stderr)


def near(a, b, what):
    check(abs(a - b) <= TOL, "%s: dlp %.17g vs sklearn %.17g" % (what, a, b))


def run_tool(tmp, rows, *args):
    path = os.path.join(tmp, "t.jsonl")
    with open(path, "w") as fp:
        for r in rows:
            fp.write(json.dumps(r) + "\n")
    out = subprocess.run([EVALTOOL, path, *args], capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError("evaltool failed: " + out.stderr)
    return json.loads(out.stdout)


def pr_area_mllib(y, s, w):
    """MLlib's areaUnderPR from sklearn's curve.

    MLlib (BinaryClassificationMetrics.pr) takes one (recall, precision)
    point per distinct score, highest first, and prepends (0, precision at
    the highest score); the area is the trapezoid rule over those points.
    sklearn's precision_recall_curve gives the same points (lowest score
    first) but ends with (recall 0, precision 1) instead, so that point is
    replaced before sklearn.metrics.auc takes the trapezoids.

    This is not average_precision_score: that is the step sum
    sum_n (R_n - R_{n-1}) P_n, which takes each precision over the whole
    recall step instead of interpolating linearly, and starts from
    precision 1 rather than the first precision, so it generally differs.
    """
    precision, recall, _ = skm.precision_recall_curve(y, s, sample_weight=w)
    precision = precision.copy()
    precision[-1] = precision[-2]
    return skm.auc(recall, precision)


def make_rows(rng, n, K, weighted, int_labels, with_nulls):
    """Labels use classes 0..K-2 (class K-1 is only ever predicted) and
    predictions never use class 1 (for K >= 3), the two corner cases of the
    weighted averages."""
    y = rng.integers(0, K - 1, n) if K >= 3 else rng.integers(0, K, n)
    allowed = [c for c in range(K) if not (K >= 3 and c == 1)]
    pred = np.where(rng.random(n) < 0.6, y, rng.choice(allowed, n))
    pred = np.where((K >= 3) & (pred == 1), 0, pred)
    counts = rng.integers(1, 60, (n, K)).astype(np.int64)
    counts[:, -1] += 1024 - counts.sum(axis=1)  # rows sum to 1024 exactly
    bad = counts[:, -1] < 1
    while bad.any():  # keep every entry >= 1/1024 (away from sklearn's clip)
        counts[bad] = 1
        counts[bad, -1] = 1024 - (K - 1)
        bad = counts[:, -1] < 1
    prob = counts / 1024.0
    w = None
    if weighted == "double":
        w = rng.uniform(0.0, 3.0, n)
        w[rng.random(n) < 0.1] = 0.0
    elif weighted == "int":
        w = rng.integers(0, 4, n).astype(np.float64)
    keep = np.ones(n, bool)
    rows = []
    for i in range(n):
        r = {"label": int(y[i]) if int_labels else float(y[i]),
             "prediction": float(pred[i]),
             "probability": [float(v) for v in prob[i]],
             "other": "x"}
        if w is not None:
            r["w"] = int(w[i]) if weighted == "int" else float(w[i])
        if with_nulls and rng.random() < 0.08:
            r["label" if rng.random() < 0.5 else "prediction"] = None
            keep[i] = False
        rows.append(r)
    if w is not None and not (w[keep] > 0).any():
        w[np.flatnonzero(keep)[0]] = 1.0
        rows[np.flatnonzero(keep)[0]]["w"] = 1 if weighted == "int" else 1.0
    return rows, y[keep], pred[keep], prob[keep], None if w is None else w[keep]


def check_multiclass(tmp, rng, n, K, weighted, int_labels, with_nulls):
    rows, y, p, prob, w = make_rows(rng, n, K, weighted, int_labels,
                                    with_nulls)
    args = ["--weight", "w"] if w is not None else []
    got = run_tool(tmp, rows, *args)
    tag = "n=%d K=%d weights=%s int_labels=%s nulls=%s" % (
        n, K, weighted, int_labels, with_nulls)
    mc = got["multiclass"]
    if "error" in mc:
        check(False, tag + ": " + mc["error"])
        return
    K_eff = int(max(y.max(), p.max())) + 1
    check(mc["n_classes"] == K_eff, tag + ": n_classes %d vs %d" % (
        mc["n_classes"], K_eff))
    check(mc["n_rows"] == len(y), tag + ": n_rows")
    kw = {"sample_weight": w}
    ref = {
        "accuracy": skm.accuracy_score(y, p, **kw),
        "weightedPrecision": skm.precision_score(
            y, p, average="weighted", zero_division=0, **kw),
        "weightedRecall": skm.recall_score(
            y, p, average="weighted", zero_division=0, **kw),
        "f1": skm.f1_score(y, p, average="weighted", zero_division=0, **kw),
        "hammingLoss": skm.hamming_loss(y, p, **kw),
        "logLoss": skm.log_loss(y, prob, labels=list(range(K)), **kw),
    }
    ref["weightedFMeasure"] = ref["f1"]
    for name, v in ref.items():
        if name != "weightedFMeasure":
            near(mc[name], v, tag + " multiclass " + name)
        m = got["metrics"][name]
        if isinstance(m, dict):
            check(False, tag + " dlp_evaluate " + name + ": " + m["error"])
        else:
            near(m, v, tag + " dlp_evaluate " + name)
    cm = skm.confusion_matrix(y, p, labels=list(range(K_eff)), **kw)
    got_cm = np.array(mc["confusion"]).reshape(K_eff, K_eff)
    check(np.allclose(got_cm, cm, rtol=0, atol=TOL), tag + " confusion")
    pr, rc, f1, _ = skm.precision_recall_fscore_support(
        y, p, labels=list(range(K_eff)), zero_division=0, **kw)
    check(np.allclose(mc["precision"], pr, rtol=0, atol=TOL), tag + " prec")
    check(np.allclose(mc["recall"], rc, rtol=0, atol=TOL), tag + " recall")
    check(np.allclose(mc["f1_by_class"], f1, rtol=0, atol=TOL), tag + " f1s")
    total = len(y) if w is None else w.sum()
    near(mc["total_weight"], total, tag + " total weight")
    if any(r["label"] is not None and r["label"] >= 2 for r in rows):
        check(got["metrics"]["areaUnderROC"].get("code") == "bad argument"
              if isinstance(got["metrics"]["areaUnderROC"], dict) else False,
              tag + ": areaUnderROC must refuse labels outside {0, 1}")


def check_binary(tmp, rng, n, weighted, levels, use_raw):
    """Scores on a coarse grid (many ties); raw or probability column."""
    y = rng.integers(0, 2, n)
    # Overlapping classes, clipped to [0, 1]: ties everywhere, and the
    # highest score is shared by both classes (first precision below 1).
    s = np.clip(rng.normal(0.5 + 0.15 * (2 * y - 1), 0.3), 0.0, 1.0)
    s = np.round(s * levels) / levels
    s = s.astype(np.float32).astype(np.float64)
    w = None
    if weighted:
        w = rng.uniform(0.0, 2.0, n)
        w[rng.random(n) < 0.1] = 0.0
        # sklearn drops zero-weight rows before finding the thresholds;
        # MLlib keeps them, which only matters when the highest score has
        # nothing but zero weights (the curve's first precision): avoid it.
        w[s == s.max()] = 1.0
    rows = []
    for i in range(n):
        r = {"label": int(y[i]), "prediction": float(s[i] > 0.5)}
        vec = [float(-s[i]), float(s[i])]
        r["rawPrediction" if use_raw else "probability"] = vec
        if w is not None:
            r["w"] = float(w[i])
        rows.append(r)
    args = ["--weight", "w"] if w is not None else []
    got = run_tool(tmp, rows, *args)["metrics"]
    tag = "binary n=%d levels=%d weighted=%s raw=%s" % (n, levels, weighted,
                                                       use_raw)
    for name, ref in (("areaUnderROC", skm.roc_auc_score(y, s,
                                                         sample_weight=w)),
                      ("areaUnderPR", pr_area_mllib(y, s, w))):
        if isinstance(got[name], dict):
            check(False, tag + " " + name + ": " + got[name]["error"])
        else:
            near(got[name], ref, tag + " " + name)
    ap = skm.average_precision_score(y, s, sample_weight=w)
    return abs(got["areaUnderPR"] - ap) if not isinstance(
        got["areaUnderPR"], dict) else 0


def expect_error(tmp, rows, code, words, *args):
    got = run_tool(tmp, rows, *args)
    m = got["multiclass"]
    ok = isinstance(m, dict) and m.get("code") == code and all(
        w in m.get("error", "") for w in words)
    check(ok, "expected %s mentioning %s, got %s" % (code, words, m))


def check_errors(tmp):
    base = [{"label": 0, "prediction": 0, "probability": [0.5, 0.5]},
            {"label": 1, "prediction": 0, "probability": [0.5, 0.5]}]
    expect_error(tmp, base + [{"label": 1.5, "prediction": 0}], "bad argument",
                 ["row 2", "1.5"])
    expect_error(tmp, base + [{"label": -1, "prediction": 0}], "bad argument",
                 ["row 2", "-1"])
    expect_error(tmp, base + [{"label": 2, "prediction": 0,
                               "probability": [0.5, 0.5]}],
                 "bad argument", ["row 2", "probability"])
    expect_error(tmp, base, "not found", ["nope"], "--label", "nope")
    expect_error(tmp, base, "not found", ["wcol"], "--weight", "wcol")
    got = run_tool(tmp, base, "--probability", "other")["metrics"]
    check(got["accuracy"] == 0.5, "accuracy does not need probabilities")
    check(isinstance(got["logLoss"], dict) and
          got["logLoss"]["code"] == "not found", "logLoss without column")


def main():
    if not os.path.exists(EVALTOOL):
        print("evaltool not built at", EVALTOOL, file=sys.stderr)
        return 1
    rng = np.random.default_rng(20261124)
    sanitized = os.environ.get("DLP_SANITIZED") in ("1", "ON", "TRUE")
    sizes = (7, 60, 500) if sanitized else (7, 60, 500, 3000)
    cases = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for K in range(2, 7):
                for weighted in (None, "double", "int"):
                    check_multiclass(tmp, rng, n, K, weighted,
                                     int_labels=(K % 2 == 0),
                                     with_nulls=(n > 7))
                    cases += 1
        ap_gap = 0.0
        for n in sizes:
            for levels in (4, 20, 1000):
                for weighted in (False, True):
                    ap_gap = max(ap_gap, check_binary(
                        tmp, rng, n, weighted, levels, use_raw=(levels != 20)))
                    cases += 1
        # The comment in pr_area_mllib claims the two areas differ: show it.
        check(ap_gap > 1e-3, "areaUnderPR should differ from average "
              "precision somewhere (largest gap %.3g)" % ap_gap)
        check_errors(tmp)
    print("%d cases, %d failures" % (cases, len(FAILED)))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
