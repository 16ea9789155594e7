"""test_zoo_vs_torch.py - the zoo architectures against PyTorch: VGG16/VGG19
from torchvision (random weights, fc1 permuted from NCHW to Keras' NHWC
flatten order); ResNet50, MobileNetV2, Xception and InceptionV3 written here
in PyTorch from the Keras application sources (TF 'same' padding by F.pad,
average pools that exclude padding), since torchvision's twins pad
differently. Every weight is created here under its Keras name and written
as <layer>__<weight>.npy; tests/tools/zoorun loads them by name into the zoo
graph (failing on any missing or misshapen one) and runs it. Features (and
VGG's logits) must agree within 1e-4 relative (max abs error / max abs).

MobileNetV2 also runs at the widths Keras publishes weights for (zoo names
"MobileNetV2_<alpha>"), its channel counts derived here from Keras' rules
(_make_divisible), and each width's parameter count (the with-top graph's
consts, from zoorun --list) must equal the count of the weights this file
creates plus the 1000-way Dense, and Keras' published totals where known."""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

TOOLS = os.environ.get("DLP_TOOLS", "build/tests")
SANITIZED = os.environ.get("DLP_SANITIZED", "0") == "1"
TOL = 1e-4
torch.set_grad_enabled(False)


class W:
    """Random weights created on first use, in the graph layouts."""

    def __init__(self, seed):
        self.g = np.random.default_rng(seed)
        self.w = {}

    def get(self, name, shape, kind):
        if name not in self.w:
            if kind == "kernel":
                fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
                a = self.g.normal(0, math.sqrt(2.0 / fan_in), shape)
            elif kind == "gamma":
                a = self.g.uniform(0.5, 1.5, shape)
            elif kind == "var":
                a = self.g.uniform(0.5, 1.5, shape)
            elif kind == "one":
                a = np.ones(shape)
            else:  # beta, mean, bias
                a = self.g.normal(0, 0.1, shape)
            self.w[name] = a.astype(np.float32)
        return torch.from_numpy(self.w[name].astype(np.float64))

    def save(self, d):
        for k, v in self.w.items():
            np.save(os.path.join(d, k.replace("/", "__") + ".npy"), v)


def same_pads(n, k, s):
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


class K:
    """Keras layers, functional, NCHW float64."""

    def __init__(self, w):
        self.w = w

    def pad_same(self, x, kh, kw, s, value=0.0):
        t, b = same_pads(x.shape[2], kh, s)
        l, r = same_pads(x.shape[3], kw, s)
        return F.pad(x, (l, r, t, b), value=value)

    def conv(self, x, name, f, kh, kw=None, s=1, same=False, bias=True, relu=False):
        kw = kw or kh
        k = self.w.get(name + "/kernel", (f, x.shape[1], kh, kw), "kernel")
        b = self.w.get(name + "/bias", (f,), "bias") if bias else None
        if same:
            x = self.pad_same(x, kh, kw, s)
        y = F.conv2d(x, k, b, stride=s)
        return F.relu(y) if relu else y

    def dw(self, x, name, s=1, same=True, node=None):
        c = x.shape[1]
        k = self.w.get(name + "/depthwise_kernel", (c, 1, 3, 3), "kernel")
        if same:
            x = self.pad_same(x, 3, 3, s)
        return F.conv2d(x, k, None, stride=s, groups=c)

    def sep(self, x, name, f):
        x = self.dw(x, name)
        k = self.w.get(name + "/pointwise_kernel", (f, x.shape[1], 1, 1), "kernel")
        return F.conv2d(x, k)

    def bn(self, x, name, eps, scale=True):
        c = x.shape[1]
        g = self.w.get(name + "/gamma", (c,), "gamma" if scale else "one")
        b = self.w.get(name + "/beta", (c,), "beta")
        m = self.w.get(name + "/moving_mean", (c,), "mean")
        v = self.w.get(name + "/moving_variance", (c,), "var")
        return F.batch_norm(x, m, v, g, b, False, 0.0, eps)

    def maxpool(self, x, k, s, same=False):
        if same:
            x = self.pad_same(x, k, k, s, value=-math.inf)
        return F.max_pool2d(x, k, s)

    def avgpool_same(self, x, k, s):
        ones = torch.ones_like(x[:, :1])
        num = F.avg_pool2d(self.pad_same(x, k, k, s), k, s)
        den = F.avg_pool2d(self.pad_same(ones, k, k, s), k, s)
        return num / den

    def dense(self, x, name, n):
        k = self.w.get(name + "/kernel", (x.shape[1], n), "kernel")
        b = self.w.get(name + "/bias", (n,), "bias")
        return x @ k + b


def resnet50(k, x):
    eps = 1.001e-5

    def block(x, f, s, short, name):
        sc = x
        if short:
            sc = k.bn(k.conv(x, name + "_0_conv", 4 * f, 1, s=s), name + "_0_bn", eps)
        x = F.relu(k.bn(k.conv(x, name + "_1_conv", f, 1, s=s), name + "_1_bn", eps))
        x = F.relu(k.bn(k.conv(x, name + "_2_conv", f, 3, same=True), name + "_2_bn", eps))
        x = k.bn(k.conv(x, name + "_3_conv", 4 * f, 1), name + "_3_bn", eps)
        return F.relu(sc + x)

    x = F.pad(x, (3, 3, 3, 3))
    x = F.relu(k.bn(k.conv(x, "conv1_conv", 64, 7, s=2), "conv1_bn", eps))
    x = F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)
    for name, f, n, s in (("conv2", 64, 3, 1), ("conv3", 128, 4, 2),
                          ("conv4", 256, 6, 2), ("conv5", 512, 3, 2)):
        for i in range(1, n + 1):
            x = block(x, f, s if i == 1 else 1, i == 1, "%s_block%d" % (name, i))
    return x.mean((2, 3))


def make_divisible(v, d=8):
    """keras.applications.mobilenet_v2._make_divisible, written out."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def mbv2_last(alpha):
    return make_divisible(1280 * alpha) if alpha > 1.0 else 1280


def mobilenet_v2(k, x, alpha=1.0):
    eps = 1e-3
    x = k.conv(x, "Conv1", make_divisible(32 * alpha), 3, s=2, same=True, bias=False)
    x = F.relu6(k.bn(x, "bn_Conv1", eps))
    cfg = [(1, 1, 16), (6, 2, 24), (6, 1, 24), (6, 2, 32), (6, 1, 32), (6, 1, 32),
           (6, 2, 64), (6, 1, 64), (6, 1, 64), (6, 1, 64), (6, 1, 96), (6, 1, 96),
           (6, 1, 96), (6, 2, 160), (6, 1, 160), (6, 1, 160), (6, 1, 320)]
    for i, (t, s, f) in enumerate(cfg):
        f = make_divisible(int(f * alpha))
        inp, p = x, ("block_%d_" % i if i else "expanded_conv_")
        if i:
            x = k.conv(x, p + "expand", t * x.shape[1], 1, bias=False)
            x = F.relu6(k.bn(x, p + "expand_BN", eps))
        if s == 2:  # imagenet_utils.correct_pad
            x = F.pad(x, (x.shape[3] % 2, 1, x.shape[2] % 2, 1))
        x = k.dw(x, p + "depthwise", s=s, same=(s == 1))
        x = F.relu6(k.bn(x, p + "depthwise_BN", eps))
        x = k.bn(k.conv(x, p + "project", f, 1, bias=False), p + "project_BN", eps)
        if s == 1 and inp.shape[1] == f:
            x = inp + x
    x = F.relu6(k.bn(k.conv(x, "Conv_1", mbv2_last(alpha), 1, bias=False), "Conv_1_bn", eps))
    return x.mean((2, 3))


def xception(k, x):
    eps = 1e-3
    auto = {"conv2d": 0, "batch_normalization": 0}

    def nm(p):
        n = auto[p]
        auto[p] += 1
        return p if n == 0 else "%s_%d" % (p, n)

    def residual(x, f):
        r = k.conv(x, nm("conv2d"), f, 1, s=2, same=True, bias=False)
        return k.bn(r, nm("batch_normalization"), eps)

    def sb(x, blk, i, f):
        n = "block%d_sepconv%d" % (blk, i)
        return k.bn(k.sep(x, n, f), n + "_bn", eps)

    x = F.relu(k.bn(k.conv(x, "block1_conv1", 32, 3, s=2, bias=False), "block1_conv1_bn", eps))
    x = F.relu(k.bn(k.conv(x, "block1_conv2", 64, 3, bias=False), "block1_conv2_bn", eps))
    r = residual(x, 128)
    x = sb(F.relu(sb(x, 2, 1, 128)), 2, 2, 128)
    x = k.maxpool(x, 3, 2, same=True) + r
    for blk, f in ((3, 256), (4, 728)):
        r = residual(x, f)
        x = sb(F.relu(sb(F.relu(x), blk, 1, f)), blk, 2, f)
        x = k.maxpool(x, 3, 2, same=True) + r
    for blk in range(5, 13):
        r = x
        for i in (1, 2, 3):
            x = sb(F.relu(x), blk, i, 728)
        x = x + r
    r = residual(x, 1024)
    x = sb(F.relu(sb(F.relu(x), 13, 1, 728)), 13, 2, 1024)
    x = k.maxpool(x, 3, 2, same=True) + r
    x = F.relu(sb(x, 14, 1, 1536))
    x = F.relu(sb(x, 14, 2, 2048))
    return x.mean((2, 3))


def inception_v3(k, x):
    n = [0]

    def cb(x, f, r, c, s=1, same=True):
        i = n[0]
        n[0] += 1
        suf = "" if i == 0 else "_%d" % i
        x = k.conv(x, "conv2d" + suf, f, r, c, s=s, same=same, bias=False)
        return F.relu(k.bn(x, "batch_normalization" + suf, 1e-3, scale=False))

    def avg(x):
        return k.avgpool_same(x, 3, 1)

    x = cb(x, 32, 3, 3, 2, False)
    x = cb(x, 32, 3, 3, 1, False)
    x = cb(x, 64, 3, 3)
    x = F.max_pool2d(x, 3, 2)
    x = cb(x, 80, 1, 1, 1, False)
    x = cb(x, 192, 3, 3, 1, False)
    x = F.max_pool2d(x, 3, 2)
    for pf in (32, 64, 64):
        b1 = cb(x, 64, 1, 1)
        b5 = cb(cb(x, 48, 1, 1), 64, 5, 5)
        b3 = cb(cb(cb(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
        bp = cb(avg(x), pf, 1, 1)
        x = torch.cat([b1, b5, b3, bp], 1)
    b3 = cb(x, 384, 3, 3, 2, False)
    bd = cb(cb(cb(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, 2, False)
    x = torch.cat([b3, bd, F.max_pool2d(x, 3, 2)], 1)
    for c in (128, 160, 160, 192):
        b1 = cb(x, 192, 1, 1)
        b7 = cb(cb(cb(x, c, 1, 1), c, 1, 7), 192, 7, 1)
        bd = cb(cb(cb(cb(cb(x, c, 1, 1), c, 7, 1), c, 1, 7), c, 7, 1), 192, 1, 7)
        bp = cb(avg(x), 192, 1, 1)
        x = torch.cat([b1, b7, bd, bp], 1)
    b3 = cb(cb(x, 192, 1, 1), 320, 3, 3, 2, False)
    b7 = cb(cb(cb(cb(x, 192, 1, 1), 192, 1, 7), 192, 7, 1), 192, 3, 3, 2, False)
    x = torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)
    for _ in range(2):
        b1 = cb(x, 320, 1, 1)
        t = cb(x, 384, 1, 1)
        b3 = torch.cat([cb(t, 384, 1, 3), cb(t, 384, 3, 1)], 1)
        t = cb(cb(x, 448, 1, 1), 384, 3, 3)
        bd = torch.cat([cb(t, 384, 1, 3), cb(t, 384, 3, 1)], 1)
        bp = cb(avg(x), 192, 1, 1)
        x = torch.cat([b1, b3, bd, bp], 1)
    return x.mean((2, 3))


def vgg(depth, w, x, size):
    """torchvision's VGG with random weights, copied under Keras names.
    Returns (fc2 features, logits)."""
    torch.manual_seed(depth)
    m = (torchvision.models.vgg16 if depth == 16 else torchvision.models.vgg19)(
        weights=None).double().eval()
    side = size // 32
    if side != 7:  # Keras flattens block5_pool as is: no adaptive pool
        m.avgpool = torch.nn.Identity()
        m.classifier[0] = torch.nn.Linear(512 * side * side, 4096).double()
    convs = [l for l in m.features if isinstance(l, torch.nn.Conv2d)]
    per = [2, 2, 3, 3, 3] if depth == 16 else [2, 2, 4, 4, 4]
    names = ["block%d_conv%d" % (b + 1, i + 1) for b in range(5) for i in range(per[b])]
    for n, c in zip(names, convs):
        w.w[n + "/kernel"] = c.weight.numpy().astype(np.float32)
        w.w[n + "/bias"] = c.bias.numpy().astype(np.float32)
    fc1 = m.classifier[0].weight.numpy()  # (4096, C*h*w) in NCHW order
    fc1 = fc1.reshape(4096, 512, side, side).transpose(2, 3, 1, 0).reshape(-1, 4096)
    w.w["fc1/kernel"] = np.ascontiguousarray(fc1).astype(np.float32)
    for n, l in (("fc1", 0), ("fc2", 3), ("predictions", 6)):
        if n != "fc1":
            w.w[n + "/kernel"] = np.ascontiguousarray(
                m.classifier[l].weight.numpy().T).astype(np.float32)
        w.w[n + "/bias"] = m.classifier[l].bias.numpy().astype(np.float32)
    # Run on exactly the float32 weights dlp gets.
    for n, c in zip(names, convs):
        c.weight.copy_(torch.from_numpy(w.w[n + "/kernel"].astype(np.float64)))
        c.bias.copy_(torch.from_numpy(w.w[n + "/bias"].astype(np.float64)))
    for n, l in (("fc2", 3), ("predictions", 6)):
        m.classifier[l].weight.copy_(torch.from_numpy(w.w[n + "/kernel"].T.astype(np.float64)))
        m.classifier[l].bias.copy_(torch.from_numpy(w.w[n + "/bias"].astype(np.float64)))
    m.classifier[0].weight.copy_(torch.from_numpy(
        w.w["fc1/kernel"].reshape(side, side, 512, 4096).transpose(3, 2, 0, 1)
        .reshape(4096, -1).astype(np.float64)))
    m.classifier[0].bias.copy_(torch.from_numpy(w.w["fc1/bias"].astype(np.float64)))
    feats = m.features(x)
    flat = torch.flatten(m.avgpool(feats), 1)
    fc2 = m.classifier[:5](flat)  # fc1, relu, dropout, fc2, relu
    return fc2, m.classifier(flat)


def zoorun(model, d, x, out, *extra):
    inp = os.path.join(d, "in.npy")
    np.save(inp, x.numpy().astype(np.float32))
    r = subprocess.run([os.path.join(TOOLS, "zoorun"), model, d, inp, out] + list(extra),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("zoorun %s failed: %s" % (model, r.stderr))
    return np.load(out)


# Keras' model.summary() totals with the top (keras.io/api/applications for
# 1.0; the others as tf.keras prints them for MobileNetV2(alpha=...)).
KERAS_MBV2_PARAMS = {1.0: 3538984, 0.35: 1691208, 0.5: 1987224, 1.4: 6156712}


def zoo_consts(model):
    """{name: shape} of the with-top graph's consts, from zoorun --list."""
    r = subprocess.run([os.path.join(TOOLS, "zoorun"), model, "--list"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("zoorun %s --list failed: %s" % (model, r.stderr))
    out = {}
    for line in r.stdout.splitlines():
        name, dims = line.split()
        out[name] = tuple(int(d) for d in dims.split("x"))
    return out


def check_mbv2_params(model, alpha, w, failures):
    """The graph holds exactly the weights made here (plus the Dense head),
    shaped alike, and as many parameters as Keras counts."""
    last = mbv2_last(alpha)
    want = {n: a.shape for n, a in w.w.items()}
    want["predictions/kernel"] = (last, 1000)
    want["predictions/bias"] = (1000,)
    got = zoo_consts(model)
    n_want = sum(int(np.prod(s)) for s in want.values())
    n_got = sum(int(np.prod(s)) for s in got.values())
    print("%-28s %d params (rules: %d, Keras: %s)" % (
        model, n_got, n_want, KERAS_MBV2_PARAMS.get(alpha, "-")))
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))[:4]
        failures.append("%s: consts differ from the Keras rules: %s" % (model, diff))
    if n_got != n_want or n_got != KERAS_MBV2_PARAMS.get(alpha, n_got):
        failures.append("%s: %d params, rules %d, Keras %s" % (
            model, n_got, n_want, KERAS_MBV2_PARAMS.get(alpha)))


def rel_err(got, want):
    want = want.numpy() if torch.is_tensor(want) else want
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def check(label, got, want, failures):
    e = rel_err(got, want)
    print("%-28s max rel err %.2e" % (label, e))
    if not (got.shape == tuple(want.shape) and e <= TOL):
        failures.append("%s: shape %s vs %s, rel err %.3g" % (
            label, got.shape, tuple(want.shape), e))


def main():
    failures = []
    # Full size where it is affordable; the smallest Keras accepts under ASan.
    sizes = {"VGG16": 64 if SANITIZED else 224, "VGG19": 32 if SANITIZED else 64,
             "ResNet50": 32 if SANITIZED else 224,
             "MobileNetV2": 32 if SANITIZED else 224,
             "Xception": 71 if SANITIZED else 150,
             "InceptionV3": 75 if SANITIZED else 299}
    builders = {"ResNet50": resnet50, "MobileNetV2": mobilenet_v2,
                "Xception": xception, "InceptionV3": inception_v3}
    alphas = {"MobileNetV2": 1.0}
    # 0.5 at full size; the others smaller (one odd, for correct_pad's odd
    # branch) to keep the test short; under ASan only the extremes.
    for a, size in ((0.35, 96), (0.5, 224), (0.75, 96), (1.3, 97), (1.4, 128)):
        if SANITIZED and a not in (0.35, 1.4):
            continue
        name = "MobileNetV2_%s" % a
        alphas[name] = a
        sizes[name] = 32 if SANITIZED else size
        builders[name] = lambda k, x, a=a: mobilenet_v2(k, x, a)
    for model, size in sizes.items():
        g = torch.Generator().manual_seed(size)
        x = torch.rand((1, 3, size, size), generator=g, dtype=torch.float64) * 2 - 1
        x = x.float().double()
        with tempfile.TemporaryDirectory() as d:
            w = W(len(model) * 1000 + size)
            if model.startswith("VGG"):
                fc2, logits = vgg(int(model[3:]), w, x, size)
                w.save(d)
                check("%s fc2 %dx%d" % (model, size, size),
                      zoorun(model, d, x, os.path.join(d, "f.npy"), "--notop"), fc2, failures)
                check("%s logits %dx%d" % (model, size, size),
                      zoorun(model, d, x, os.path.join(d, "l.npy"), "--layer",
                             "predictions/logits"), logits, failures)
                p = zoorun(model, d, x, os.path.join(d, "p.npy"))
                check("%s predictions" % model, p, torch.softmax(logits, 1), failures)
            else:
                want = builders[model](K(w), x)
                w.save(d)
                check("%s features %dx%d" % (model, size, size),
                      zoorun(model, d, x, os.path.join(d, "f.npy"), "--notop"), want, failures)
                if model in alphas:
                    check_mbv2_params(model, alphas[model], w, failures)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
