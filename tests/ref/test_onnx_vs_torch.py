#!/usr/bin/python3
"""test_onnx_vs_torch.py - the ONNX importer end to end against PyTorch.

Models get random weights (torch.manual_seed; torchvision weights=None),
are exported by this test with torch.onnx.export (or written with
onnx.helper for what PyTorch never exports: auto_pad, the Keras
HardSigmoid, opset < 13 Softmax), and run by tests/tools/nnrun on the
reference backend, with and without --optimize. The oracle is PyTorch's
own forward pass on the same input: max|dlp - torch| / max|torch| <= 1e-4
on logits, and on features taken with --layer at the ONNX node feeding
the classifier (compared with the classifier's input in PyTorch).

Under ASan (DLP_SANITIZED=1) only mobilenet_v2 at 96x96 and the small nets
run. Run with Debian's /usr/bin/python3; needs DLP_TOOLS.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

TOOLS = os.environ.get("DLP_TOOLS")
SANITIZED = os.environ.get("DLP_SANITIZED", "0") == "1"
TOL = 1e-4
failures = []
tmp = tempfile.mkdtemp(prefix="dlp_onnx_")
torch.set_num_threads(2)


def nnrun(model, x, *flags, extra=None):
    """Runs nnrun; with extra = a node name, returns (output, that node's)."""
    inp = os.path.join(tmp, "in.npy")
    out = os.path.join(tmp, "out.npy")
    out2 = os.path.join(tmp, "extra.npy")
    np.save(inp, np.ascontiguousarray(x, dtype=np.float32))
    for f in (out, out2):
        if os.path.exists(f):
            os.remove(f)
    cmd = [os.path.join(TOOLS, "nnrun"), model, inp, out, "--threads", "2"] + list(flags)
    if extra:
        cmd += ["--extra", extra, out2]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("nnrun %s failed: %s" % (" ".join(flags), r.stderr.strip()))
    return (np.load(out), np.load(out2)) if extra else np.load(out)


def rel_err(a, b):
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def report(label, got, want):
    err = rel_err(got, want)
    ok = err <= TOL
    print("%s %-56s rel err %.2e shape %s" % ("ok  " if ok else "FAIL", label, err, got.shape))
    if not ok:
        failures.append("%s: rel err %g (shape %s vs %s)" % (label, err, got.shape, want.shape))


def check(name, model_path, x, want, flags_list=((), ("--optimize",))):
    for flags in flags_list:
        label = "%s %s" % (name, " ".join(flags))
        try:
            report(label, nnrun(model_path, x, *flags), want)
        except RuntimeError as ex:
            failures.append("%s: %s" % (label, ex))
            print("FAIL", label, ex)


def export(model, x, name, opset=13):
    path = os.path.join(tmp, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=opset, do_constant_folding=True,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    return path


def classifier_input_node(path):
    """The ONNX node whose output feeds the last Gemm/MatMul."""
    g = onnx.load(path).graph
    last = [n for n in g.node if n.op_type in ("Gemm", "MatMul")][-1]
    for n in g.node:
        if last.input[0] in n.output:
            return n.name
    raise RuntimeError("no producer for the classifier input")


# ---------------------------------------------------------------------------
# Whole torchvision networks
# ---------------------------------------------------------------------------

def whole_network(name, ctor, head, size, flag_sets, cut):
    torch.manual_seed(0)
    model = ctor().eval()
    x = torch.randn(1, 3, size, size)
    feats = {}
    hook = head(model).register_forward_hook(lambda m, i, o: feats.update(f=i[0]))
    with torch.no_grad():
        logits = model(x).numpy()
    hook.remove()
    path = export(model, x, name)
    layer = classifier_input_node(path)
    t0 = time.time()
    for flags in flag_sets:
        label = "%s %s" % (name, " ".join(flags))
        try:
            got, got_feats = nnrun(path, x.numpy(), *flags, extra=layer)
        except RuntimeError as ex:
            failures.append("%s: %s" % (label, ex))
            print("FAIL", label, ex)
            continue
        report(label + " logits", got, logits)
        report(label + " features@" + layer, got_feats, feats["f"].numpy())
    # --layer cuts the graph there: the features alone
    label = "%s --layer %s --optimize" % (name, layer)
    try:
        if cut:
            report(label, nnrun(path, x.numpy(), "--layer", layer, "--optimize"),
                   feats["f"].numpy())
    except RuntimeError as ex:
        failures.append("%s: %s" % (label, ex))
        print("FAIL", label, ex)
    print("   %s: %.1f s in nnrun" % (name, time.time() - t0))


# The reference backend is slow on purpose (readable loops): VGG16 (15
# GFLOP) runs once, optimized, with the features taken from the same run;
# the unoptimized graph and --layer are covered by the cheaper networks.
BOTH = ((), ("--optimize",))
nets = [
    ("mobilenet_v2", lambda: torchvision.models.mobilenet_v2(weights=None),
     lambda m: m.classifier[-1], 96 if SANITIZED else 224, BOTH, True),
]
if not SANITIZED:
    nets += [
        ("resnet50", lambda: torchvision.models.resnet50(weights=None), lambda m: m.fc, 224,
         BOTH, True),
        ("inception_v3", lambda: torchvision.models.inception_v3(
            weights=None, aux_logits=False, init_weights=True), lambda m: m.fc, 299, BOTH, False),
        ("vgg16", lambda: torchvision.models.vgg16(weights=None), lambda m: m.classifier[-1], 224,
         (("--optimize",),), False),
    ]

# ---------------------------------------------------------------------------
# Small nets, one family of ops each
# ---------------------------------------------------------------------------


class ConvNet(nn.Module):
    """depthwise, dilation, groups, stride, asymmetric kernel, BN standalone"""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 16, 3, padding=1, groups=8)  # depthwise, multiplier 2
        self.dil = nn.Conv2d(16, 8, 3, padding=2, dilation=2)
        self.grp = nn.Conv2d(8, 8, (1, 3), padding=(0, 1), groups=2, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 2.0)
        self.bn.weight.data.uniform_(0.5, 1.5)
        self.bn.bias.data.uniform_(-0.5, 0.5)

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = F.relu6(self.dw(x))
        x = F.leaky_relu(self.dil(x), 0.2)
        x = self.grp(x)
        x = F.max_pool2d(x, 2, ceil_mode=True)
        return torch.tanh(self.bn(x))  # BN after a pool: not foldable


class PoolNet(nn.Module):
    """ceil_mode, count_include_pad both ways, global pools, concat"""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        x = self.c(x)
        a = F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
        b = F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        c = F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
        y = torch.cat([a, b, c], 1)
        g1 = F.adaptive_avg_pool2d(y, 1)
        g2 = F.adaptive_max_pool2d(y, 1)
        return torch.cat([torch.flatten(g1, 1), torch.flatten(g2, 1), torch.flatten(y, 1)], 1)


class ActNet(nn.Module):
    """sigmoid, tanh, hardsigmoid (1/6), clip (hardtanh), swish via Mul,
    Add with a constant, Linear (Gemm) and Linear on 3-D (MatMul + Add),
    transpose, reshape, softmax"""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 6, 3, padding=1)
        self.scale = nn.Parameter(torch.randn(1, 6, 1, 1))
        self.fc3 = nn.Linear(6, 5)
        self.fc = nn.Linear(5 * 7 * 9, 10)

    def forward(self, x):
        x = self.c(x)
        x = x * torch.sigmoid(x) + F.hardsigmoid(x)
        x = F.hardtanh(x, -0.5, 0.7) * self.scale + torch.tanh(x)
        x = x.permute(0, 2, 3, 1)  # N, H, W, C
        x = self.fc3(x)            # MatMul + Add on 4-D
        x = x.reshape(-1, 5 * 7 * 9)
        return F.softmax(self.fc(x), dim=-1)


class PadNet(nn.Module):
    """asymmetric constant, reflect and edge pads (opset 9/10 Pad attrs)"""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        x = F.pad(x, (0, 1, 2, 0))  # left, right, top, bottom
        x = self.c(x)
        x = F.pad(x, (1, 2, 2, 1), mode="reflect")
        x = F.pad(x, (2, 0, 0, 3), mode="replicate")
        return F.pad(x, (1, 1, 0, 2), value=0.5)


class FoldNet(nn.Module):
    """opset >= 11 pads (F.pad constant/reflect/replicate, ZeroPad2d) whose
    amounts PyTorch computes with ConstantOfShape/Concat/Slice/Cast/...,
    x - c, x / c, c - x, Hardswish (HardSigmoid + Mul before opset 14),
    and reshape(x.shape[0], -1): Shape -> Gather -> Unsqueeze -> Concat"""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.z = nn.ZeroPad2d((1, 2, 0, 1))
        self.hs = nn.Hardswish()

    def forward(self, x):
        x = F.pad(x, (0, 1, 2, 0))
        x = self.c(x)
        x = F.pad(x, (1, 2, 2, 1), mode="reflect")
        x = F.pad(x, (2, 0, 0, 3), mode="replicate")
        x = F.pad(x, (1, 1, 0, 2), value=0.5)
        x = self.z(x)
        x = (x - 0.3) / 2.5
        x = 1.5 - self.hs(x * 3.0)
        return x.reshape(x.shape[0], -1)


def fold_nets():
    """FoldNet at opsets 11, 13, 17; exported at batch 2 with a symbolic
    batch, run at batch 1 and 3."""
    torch.manual_seed(2)
    model = FoldNet().eval()
    for opset in (11, 13, 17):
        path = export(model, torch.randn(2, 3, 7, 9), "foldnet_%d" % opset, opset)
        ops = {n.op_type for n in onnx.load(path).graph.node}
        if opset >= 11 and "ConstantOfShape" not in ops:
            failures.append("foldnet opset %d: no computed pads to fold (%s)" % (opset, ops))
        for batch in (1, 3):
            x = torch.randn(batch, 3, 7, 9)
            with torch.no_grad():
                want = model(x).numpy()
            check("foldnet opset %d batch %d" % (opset, batch), path, x.numpy(), want)


def small_nets():
    x = torch.randn(2, 3, 7, 9)
    for name, cls, opsets in [("convnet", ConvNet, (9, 11, 13, 17)),
                              ("poolnet", PoolNet, (10, 13, 17)),
                              ("actnet", ActNet, (9, 11, 13, 17)),
                              ("padnet", PadNet, (9, 10))]:
        torch.manual_seed(1)
        model = cls().eval()
        with torch.no_grad():
            want = model(x).numpy()
        for opset in opsets:
            path = export(model, x, "%s_%d" % (name, opset), opset)
            check("%s opset %d" % (name, opset), path, x.numpy(), want)


# ---------------------------------------------------------------------------
# Hand-written ONNX for what PyTorch does not export
# ---------------------------------------------------------------------------

def helper_model(nodes, inits, in_shape, opset, name):
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + list(in_shape[1:]))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    path = os.path.join(tmp, name + ".onnx")
    onnx.save(m, path)
    return path


def same_pads(n, k, s, d, lower):
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def handmade():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    xt = torch.from_numpy(x)
    for mode in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        lower = mode == "SAME_LOWER"
        conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", auto_pad=mode,
                                strides=[2, 3], dilations=[2, 1])
        pool = helper.make_node("MaxPool", ["c"], ["y"], name="pool", auto_pad=mode,
                                kernel_shape=[2, 3], strides=[1, 2])
        path = helper_model([conv, pool], {"w": w, "b": b}, x.shape, 13, "autopad_" + mode)
        if mode == "VALID":
            c = F.conv2d(xt, torch.from_numpy(w), torch.from_numpy(b), stride=(2, 3), dilation=(2, 1))
            want = F.max_pool2d(c, (2, 3), stride=(1, 2))
        else:
            ph = same_pads(9, 3, 2, 2, lower)
            pw = same_pads(10, 2, 3, 1, lower)
            c = F.conv2d(F.pad(xt, (pw[0], pw[1], ph[0], ph[1])), torch.from_numpy(w),
                         torch.from_numpy(b), stride=(2, 3), dilation=(2, 1))
            ph = same_pads(c.shape[2], 2, 1, 1, lower)
            pw = same_pads(c.shape[3], 3, 2, 1, lower)
            want = F.max_pool2d(F.pad(c, (pw[0], pw[1], ph[0], ph[1]), value=-np.inf),
                                (2, 3), stride=(1, 2))
        check("auto_pad " + mode, path, x, want.numpy())
    # AveragePool SAME_UPPER without the padding in the count (Keras 'same')
    node = helper.make_node("AveragePool", ["x"], ["y"], name="avg", auto_pad="SAME_UPPER",
                            kernel_shape=[3, 3], strides=[2, 2])
    path = helper_model([node], {}, x.shape, 11, "avg_same")
    ph, pw = same_pads(9, 3, 2, 1, False), same_pads(10, 3, 2, 1, False)
    pad = (pw[0], pw[1], ph[0], ph[1])
    s = F.avg_pool2d(F.pad(xt, pad), 3, 2, divisor_override=1)
    cnt = F.avg_pool2d(F.pad(torch.ones_like(xt), pad), 3, 2, divisor_override=1)
    check("avgpool SAME_UPPER", path, x, (s / cnt).numpy())
    # Keras HardSigmoid (0.2, 0.5), Clip by attributes (opset 9), and the
    # opset 11 Softmax over the last axis of a 4-D tensor
    nodes = [helper.make_node("HardSigmoid", ["x"], ["h"], name="hs"),
             helper.make_node("Clip", ["h"], ["c"], name="clip", min=0.3, max=0.8),
             helper.make_node("Softmax", ["c"], ["y"], name="sm", axis=3)]
    path = helper_model(nodes, {}, x.shape, 9, "keras_acts")
    want = F.softmax(torch.clamp(torch.clamp(0.2 * xt + 0.5, 0, 1), 0.3, 0.8), dim=3)
    check("hardsigmoid/clip/softmax opset 9", path, x, want.numpy())
    # Softmax opset 11 with axis 1 on 4-D flattens C*H*W: refused clearly
    nodes = [helper.make_node("Softmax", ["x"], ["y"], name="sm1", axis=1)]
    path = helper_model(nodes, {}, x.shape, 11, "softmax_flatten")
    try:
        nnrun(path, x)
        failures.append("opset 11 Softmax(axis=1) on 4-D was accepted")
    except RuntimeError as ex:
        ok = "sm1" in str(ex) and "last axis" in str(ex)
        print("ok  " if ok else "FAIL", "softmax flatten refused:", str(ex)[:120])
        if not ok:
            failures.append("unclear Softmax refusal: %s" % ex)
    # Gemm with alpha/beta and a scalar C; MatMul by a constant
    a = rng.standard_normal((2, 6)).astype(np.float32)
    bm = rng.standard_normal((6, 5)).astype(np.float32)
    m2 = rng.standard_normal((5, 3)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "B", "C"], ["g"], name="gemm", alpha=0.5, beta=2.0),
             helper.make_node("MatMul", ["g", "M"], ["y"], name="mm")]
    path = helper_model(nodes, {"B": bm, "C": np.array([0.25], np.float32), "M": m2},
                        a.shape, 13, "gemm_alpha")
    want = ((0.5 * (torch.from_numpy(a) @ torch.from_numpy(bm)) + 0.5) @ torch.from_numpy(m2))
    check("gemm alpha/beta + matmul", path, a, want.numpy())


def main():
    if not TOOLS or not os.path.exists(os.path.join(TOOLS, "nnrun")):
        print("DLP_TOOLS must name the directory holding nnrun")
        return 1
    t0 = time.time()
    small_nets()
    fold_nets()
    handmade()
    for net in nets:
        whole_network(*net)
    print("total %.1f s" % (time.time() - t0))
    if failures:
        print("%d failures:" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
