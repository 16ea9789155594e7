"""test_report_chromium.py - the HTML evaluation report, rendered by headless
Chromium (Debian `chromium`).

A small labelled image set is made here with PIL (three classes, one of them
named with HTML metacharacters, a file called a<b>&"c".png, a grey image, an
RGBA PNG, a large JPEG, a tiny one and a corrupt file). tests/tools/reporttool
builds the transformed frame (predictions faked from the file names given on
its command line) and writes the report. Then:
  - the file references nothing outside itself (no http:, every src= is a
    data: URI, no <link>, no url());
  - Chromium's DOM after load says every thumbnail decoded
    (data-thumbs-loaded == data-thumbs-total > 0);
  - the metrics, per-class numbers and confusion-matrix counts in the DOM
    equal this test's own computation (scikit-learn, numpy);
  - the shown mistakes are the most confident ones, in order, with the
    escaped names reading back exactly, and the corrupt file as a
    placeholder that gives the decoder's error;
  - each thumbnail is a JPEG whose longest side is the thumbnail size (never
    enlarged) and that looks like its source shrunk by PIL;
  - the screenshot is not blank.
A second report without an image column (a features table) still renders.

Run with /usr/bin/python3; env DLP_TOOLS = folder holding reporttool.
"""
import base64
import html.parser
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
from sklearn import metrics as skm

TOOL = os.path.join(os.environ.get("DLP_TOOLS", "."), "reporttool")
THUMB = 96
FAILED = []

CLASSES = sorted(["cat", "dog", 'f<i>sh & "chips"'])
SPECIAL = 'a<b>&"c".png'
# file -> (class folder, size (w, h), kind); kinds: rgb, gray, rgba, corrupt
FILES = {
    "c0.jpg": ("cat", (160, 120), "rgb"),
    "c1.jpg": ("cat", (1600, 1200), "rgb"),
    "c2.png": ("cat", (150, 200), "gray"),
    "bad.jpg": ("cat", None, "corrupt"),
    "d0.jpg": ("dog", (120, 120), "rgb"),
    "d1.png": ("dog", (100, 70), "rgba"),
    SPECIAL: ("dog", (80, 64), "rgb"),
    "d3.jpg": ("dog", (20, 10), "rgb"),
    "f0.jpg": ('f<i>sh & "chips"', (90, 140), "rgb"),
    "f1.jpg": ('f<i>sh & "chips"', (130, 100), "rgb"),
}
# faked predictions: file -> (predicted class, its probability)
PREDS = {
    "c1.jpg": ("dog", 0.75),
    "c2.png": ("dog", 0.5625),
    "d1.png": ("cat", 0.75),  # ties with c1.jpg: row order decides
    "bad.jpg": ('f<i>sh & "chips"', 0.625),
    SPECIAL: ("cat", 0.875),
    "d3.jpg": ('f<i>sh & "chips"', 0.5),
    "f1.jpg": ("cat", 0.9375),
}


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILED.append(what)


def make_images(root):
    rng = np.random.default_rng(7)
    sources = {}
    for name, (cls, size, kind) in FILES.items():
        d = os.path.join(root, cls)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        if kind == "corrupt":
            with open(path, "wb") as fp:  # a JPEG header, then nothing
                fp.write(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00")
            continue
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w]
        base = rng.integers(40, 200, 3)
        img = np.stack([(base[c] + 50 * np.sin(xx / (w / 3.0) + c) +
                         40 * np.cos(yy / (h / 2.0))) for c in range(3)], -1)
        img = np.clip(img, 0, 255).astype(np.uint8)
        im = Image.fromarray(img)
        if kind == "gray":
            im = im.convert("L")
        elif kind == "rgba":
            im = im.convert("RGBA")
            a = np.array(im)
            a[..., 3] = 255  # opaque, so the composite on white is a no-op
            im = Image.fromarray(a)
        im.save(path, quality=95) if name.endswith(".jpg") else im.save(path)
        sources[name] = path
    return sources


def expected():
    """Rows in the frame's order (sorted by path); y, p, probabilities."""
    K = len(CLASSES)
    rows = sorted(FILES, key=lambda n: os.path.join(FILES[n][0], n))
    y, p, prob = [], [], []
    for n in rows:
        t = CLASSES.index(FILES[n][0])
        pc, pp = PREDS.get(n, (FILES[n][0], 0.9))
        k = CLASSES.index(pc)
        v = np.full(K, (1 - pp) / (K - 1), np.float32)
        v[k] = np.float32(pp)
        y.append(t)
        p.append(k)
        prob.append(v.astype(np.float64))
    return rows, np.array(y), np.array(p), np.array(prob)


class Dom(html.parser.HTMLParser):
    """Collects what the checks read: body attributes, metric cells,
    per-class rows, confusion cells, figures with their texts, <img> srcs."""

    def __init__(self):
        super().__init__()
        self.body = {}
        self.metrics = {}
        self.cells = {}
        self.classes = {}
        self.figures = []
        self.srcs = []
        self.stack = []
        self.cur_class = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        text = []
        if tag == "body":
            self.body = a
        if "src" in a:
            self.srcs.append(a["src"])
        if tag == "figure":
            self.figures.append({"row": a.get("data-row"), "text": "",
                                 "img": None, "placeholder": "", "title": ""})
        if tag == "img" and self.figures:
            self.figures[-1]["img"] = a.get("src")
        if tag == "div" and a.get("class") == "f" and self.figures:
            self.figures[-1]["title"] = a.get("title", "")
        if tag == "tr" and "data-class" in a:
            self.cur_class = int(a["data-class"])
            self.classes[self.cur_class] = {"values": [], "texts": []}
        self.stack.append((tag, a, text))

    def handle_endtag(self, tag):
        while self.stack:
            t, a, text = self.stack.pop()
            s = "".join(text)
            if self.stack:
                self.stack[-1][2].append(s)
            if t == "td" and "data-metric" in a:
                self.metrics[a["data-metric"]] = (float(a["data-value"]), s)
            if t == "td" and "data-true" in a:
                self.cells[(int(a["data-true"]), int(a["data-pred"]))] = (
                    float(a["data-count"]), s)
            if t == "td" and self.cur_class is not None:
                c = self.classes[self.cur_class]
                c["texts"].append(s)
                c["values"].append(a.get("data-value"))
            if t == "tr":
                self.cur_class = None
            if t == "div" and a.get("class") == "placeholder" and self.figures:
                self.figures[-1]["placeholder"] = s
            if t == "figure" and self.figures:
                self.figures[-1]["text"] = s
            if t == tag:
                break

    def handle_data(self, data):
        if self.stack:
            self.stack[-1][2].append(data)


def chromium(args, tmp, timeout=120):
    env = dict(os.environ, HOME=tmp)
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
           "--user-data-dir=" + os.path.join(tmp, "profile")] + args
    return subprocess.run(cmd, capture_output=True, env=env, timeout=timeout)


def check_self_contained(text, name):
    check("http:" not in text and "https:" not in text,
          name + ": no http: or https: anywhere")
    srcs = re.findall(r'src\s*=\s*"([^"]*)"', text)
    check(all(s.startswith("data:") for s in srcs),
          name + ": every src= is a data: URI (%d)" % len(srcs))
    check("<link" not in text and "url(" not in text and "@import" not in text,
          name + ": no <link>, url() or @import")


def check_metrics(dom, y, p, prob):
    K = len(CLASSES)
    ref = {
        "accuracy": skm.accuracy_score(y, p),
        "f1": skm.f1_score(y, p, average="weighted", zero_division=0),
        "weightedPrecision": skm.precision_score(y, p, average="weighted",
                                                 zero_division=0),
        "weightedRecall": skm.recall_score(y, p, average="weighted",
                                           zero_division=0),
        "hammingLoss": skm.hamming_loss(y, p),
        # the float32 probabilities the frame holds, no renormalisation
        "logLoss": float(-np.mean(np.log(prob[np.arange(len(y)), y]))),
    }
    for k, v in ref.items():
        got = dom.metrics.get(k)
        check(got is not None and abs(got[0] - v) < 1e-12 and
              got[1] == "%.4f" % v, "metric %s = %.6f (DOM %s)" % (k, v, got))
    check("areaUnderROC" not in dom.metrics, "no binary areas for 3 classes")
    cm = skm.confusion_matrix(y, p, labels=list(range(K)))
    got = np.zeros((K, K))
    for (t, q), (v, s) in dom.cells.items():
        got[t, q] = v
        check(s == str(int(v)), "cell (%d,%d) shows its count %s" % (t, q, s))
    check(len(dom.cells) == K * K and (got == cm).all(),
          "confusion matrix %s == %s" % (got.tolist(), cm.tolist()))
    pr, rc, f1, sup = skm.precision_recall_fscore_support(
        y, p, labels=list(range(K)), zero_division=0)
    for c in range(K):
        row = dom.classes.get(c, {"texts": [], "values": []})
        want = [CLASSES[c], "%.4f" % pr[c], "%.4f" % rc[c], "%.4f" % f1[c],
                str(sup[c])]
        check(row["texts"] == want, "class row %d: %s == %s" % (
            c, row["texts"], want))


def check_examples(dom, rows, y, p, prob, sources):
    wrong = [i for i in range(len(rows)) if y[i] != p[i]]
    conf = {i: prob[i][p[i]] for i in wrong}
    order = sorted(wrong, key=lambda i: (-conf[i], i))
    got = [int(f["row"]) for f in dom.figures]
    check(got == order, "mistakes, most confident first: %s == %s" % (
        got, order))
    for f in dom.figures:
        i = int(f["row"])
        name = rows[i]
        want = "true: %s" % CLASSES[y[i]]
        check(want in f["text"], "figure %s says %r" % (name, want))
        want = "predicted: %s (p = %.3f)" % (CLASSES[p[i]], prob[i][p[i]])
        check(want in f["text"], "figure %s says %r" % (name, want))
        check(f["text"].endswith(name), "figure shows the file name %r" % name)
        check(f["title"].endswith("/" + FILES[name][0] + "/" + name),
              "figure title is the full path of %r" % name)
        if FILES[name][2] == "corrupt":
            check(f["img"] is None and "JPEG" in f["placeholder"],
                  "corrupt file is a placeholder with the error: %r" %
                  f["placeholder"])
            continue
        check(f["img"] is not None and f["img"].startswith(
            "data:image/jpeg;base64,"), "thumbnail of %s is a JPEG" % name)
        if f["img"]:
            check_thumbnail(name, f["img"], sources[name])


def check_thumbnail(name, src, path):
    thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    orig = Image.open(path)
    w, h = orig.size
    s = min(1.0, THUMB / max(w, h))
    want = (max(1, round(w * s)), max(1, round(h * s)))
    check(thumb.size == want, "thumbnail of %s is %s (want %s)" % (
        name, thumb.size, want))
    mode = "L" if orig.mode == "L" else "RGB"
    ref = np.asarray(orig.convert(mode).resize(thumb.size, Image.BILINEAR),
                     np.float64)
    got = np.asarray(thumb.convert(mode), np.float64)
    err = np.abs(ref - got).mean()
    check(err < 6, "thumbnail of %s looks like PIL's (mean error %.2f)" % (
        name, err))


def check_screenshot(path):
    im = Image.open(path).convert("RGB")
    a = np.asarray(im)
    colours = len(np.unique(a.reshape(-1, 3), axis=0))
    check(im.size == (1200, 2000) and a.std() > 20 and colours > 100,
          "screenshot is not blank (%s, std %.1f, %d colours)" % (
              im.size, a.std(), colours))


def main():
    if shutil.which("chromium") is None:
        print("FAIL: chromium is not installed; run scripts/install-deps.sh "
              "(it installs Debian's chromium with the test dependencies)")
        return 1
    tmp = tempfile.mkdtemp(prefix="dlp_report_")
    try:
        return run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    root = os.path.join(tmp, "images")
    sources = make_images(root)
    out = os.path.join(tmp, "report.html")
    args = [TOOL, root, out, "--thumb", str(THUMB), "--title",
            "Flowers <test> & co", "--desc", 'featurizer "X" -> LR']
    for n, (c, pr) in PREDS.items():
        args += ["--pred", "%s=%s:%r" % (n, c, pr)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        print("FAIL: reporttool:", r.stderr)
        return 1
    text = open(out, encoding="utf-8").read()
    check_self_contained(text, "report")
    check(not any(f.startswith("report.html.tmp") for f in os.listdir(tmp)),
          "no temporary file left behind")

    r = chromium(["--dump-dom", "file://" + out], tmp)
    check(r.returncode == 0, "chromium --dump-dom ran (%d)" % r.returncode)
    dom = Dom()
    dom.feed(r.stdout.decode("utf-8"))
    loaded = dom.body.get("data-thumbs-loaded")
    total = dom.body.get("data-thumbs-total")
    check(loaded is not None and loaded == total and int(total) > 0,
          "every thumbnail decoded in Chromium (%s of %s)" % (loaded, total))
    check(all(s.startswith("data:") for s in dom.srcs), "DOM srcs are data:")
    rows, y, p, prob = expected()
    check_metrics(dom, y, p, prob)
    check_examples(dom, rows, y, p, prob, sources)
    title = re.search(r"<h1>(.*?)</h1>", r.stdout.decode("utf-8"))
    check(title is not None and title.group(1) ==
          "Flowers &lt;test&gt; &amp; co", "title escaped once")

    shot = os.path.join(tmp, "shot.png")
    r = chromium(["--screenshot=" + shot, "--window-size=1200,2000",
                  "file://" + out], tmp)
    check(r.returncode == 0 and os.path.exists(shot), "screenshot taken")
    if os.path.exists(shot):
        check_screenshot(shot)

    # A features table: no image column, the same numbers, no thumbnails.
    out2 = os.path.join(tmp, "features.html")
    args2 = [a if a != out else out2 for a in args] + ["--no-images",
                                                       "--max", "3"]
    r = subprocess.run(args2, capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "report without images: " + r.stderr)
    if r.returncode == 0:
        check_self_contained(open(out2, encoding="utf-8").read(), "features")
        r = chromium(["--dump-dom", "file://" + out2], tmp)
        dom2 = Dom()
        dom2.feed(r.stdout.decode("utf-8"))
        check(dom2.body.get("data-thumbs-total") == "0" and
              dom2.metrics == dom.metrics and
              [f["row"] for f in dom2.figures] ==
              [f["row"] for f in dom.figures][:3] and
              all(f["img"] is None and f["text"].endswith("row " + f["row"])
                  for f in dom2.figures),
              "features-table report: same metrics, the first 3 mistakes "
              "by row number, no images")
        n_wrong = int((y != p).sum())
        check("Showing 3 of %d misclassified rows" % n_wrong in r.stdout.decode(
            "utf-8"), "says how many mistakes it leaves out")
    print("%d failures" % len(FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
