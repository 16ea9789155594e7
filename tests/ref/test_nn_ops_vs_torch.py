"""test_nn_ops_vs_torch.py - dlp's reference nn kernels against PyTorch.

Reference: torch 1.13 (torch.nn.functional) and numpy, on seeded random
shapes and values. Every case writes float32 .npy inputs, runs the nnop tool
(one kernel per process) and compares its output with the reference:
shapes must be equal and max |dlp - ref| <= 1e-5 * max |ref| (float32
accumulation order differs); pure data-movement ops (pad, concat, reshape,
max pooling, relu, clip) must match exactly.

Covered: conv2d (groups, depthwise, stride, dilation, asymmetric pads via
F.pad, fused activations), max/avg pooling (ceil_mode, count_include_pad both
ways, TF 'same' average pooling emulated as sum / count of valid elements),
global pooling, dense (Keras and transposed weight layouts), batchnorm
(eval), softmax (incl. large inputs), activations, clip, broadcasting add/mul,
concat, pad (constant/reflect/edge, torch and numpy), flatten/reshape, and
bad inputs (nonzero exit with a clear message).

Run with /usr/bin/python3; env DLP_TOOLS = folder holding the nnop tool.
"""
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

TOOL = os.path.join(os.environ.get("DLP_TOOLS", "."), "nnop")
TMP = tempfile.mkdtemp(prefix="dlp_nnop_")
RNG = np.random.default_rng(20240613)
TOL = 1e-5
passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL " + name + (" " + detail if detail else ""))


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def save(arrays):
    paths = []
    for i, a in enumerate(arrays):
        p = os.path.join(TMP, "in%d.npy" % i)
        np.save(p, np.ascontiguousarray(a, dtype=np.float32))
        paths.append(p)
    return paths


def nnop(op, opts, inputs, expect_fail=False):
    """Runs nnop; returns (output array or None, stderr)."""
    out = os.path.join(TMP, "out.npy")
    if os.path.exists(out):
        os.remove(out)
    cmd = [TOOL, op] + [str(o) for o in opts] + save(inputs) + [out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        # exactly 1: a sanitizer report (leak, UB) exits with another code
        if not expect_fail or r.returncode != 1:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode,
                                                       r.stderr.strip()))
        return None, r.stderr
    return np.load(out), r.stderr


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def compare(name, op, opts, inputs, ref, exact=False):
    try:
        got, _ = nnop(op, opts, inputs)
    except RuntimeError as e:
        report(False, name, str(e))
        return
    ref = np.asarray(ref, dtype=np.float32)
    if got.shape != ref.shape:
        report(False, name, "shape %s vs torch %s" % (got.shape, ref.shape))
        return
    if ref.size == 0:
        report(True, name)
        return
    err = float(np.max(np.abs(got.astype(np.float64) - ref)))
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    ok = err == 0 if exact else err <= TOL * scale
    report(ok, name, "max err %.3g (max |ref| %.3g) opts %s" % (err, scale, opts))


def csv(*v):
    return ",".join(str(int(x)) for x in v)


# ---------------------------------------------------------------- conv2d

ACTS = {
    "none": lambda y: y,
    "relu": F.relu,
    "relu6": lambda y: F.hardtanh(y, 0.0, 6.0),
    "leaky_relu": lambda y: F.leaky_relu(y, 0.01),
}


def conv_case(i):
    n = int(RNG.integers(1, 3))
    kind = RNG.choice(["plain", "depthwise", "grouped", "pointwise"])
    c = int(RNG.integers(1, 9))
    groups = 1
    if kind == "depthwise":
        groups = c
    elif kind == "grouped":
        groups = int(RNG.choice([g for g in (1, 2, 3, 4) if c % g == 0]))
    o = groups * int(RNG.integers(1, 4))
    kh, kw = (1, 1) if kind == "pointwise" else RNG.integers(1, 6, 2).tolist()
    sh, sw = RNG.integers(1, 4, 2).tolist()
    dh, dw = RNG.integers(1, 4, 2).tolist()
    pads = RNG.integers(0, 4, 4).tolist()  # top, left, bottom, right
    h = int(RNG.integers((kh - 1) * dh + 1, 18))
    w = int(RNG.integers((kw - 1) * dw + 1, 20))
    act = RNG.choice(list(ACTS))
    x, wt, b = rand(n, c, h, w), rand(o, c // groups, kh, kw), rand(o)
    with_bias = RNG.random() < 0.8
    ref = F.conv2d(F.pad(t(x), (pads[1], pads[3], pads[0], pads[2])), t(wt),
                   t(b) if with_bias else None, stride=(sh, sw),
                   dilation=(dh, dw), groups=groups)
    ref = ACTS[act](ref).numpy()
    opts = ["--stride", csv(sh, sw), "--dilation", csv(dh, dw), "--pads",
            csv(*pads), "--groups", groups, "--act", act]
    inputs = [x, wt, b] if with_bias else [x, wt]
    compare("conv2d[%d] %s x%s w%s g%d" % (i, kind, x.shape, wt.shape, groups),
            "conv2d", opts, inputs, ref)


def tf_same(size, k, s, d=1):
    """Keras/TF 'same' padding, written out from TF's documentation."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def conv_same_case(i):
    """A Keras-style 'same' conv: pads from TF's rule, result from torch."""
    c, o, k, s = 3, 4, int(RNG.choice([3, 5])), int(RNG.choice([1, 2]))
    h, w = int(RNG.integers(6, 17)), int(RNG.integers(6, 17))
    t0, b0 = tf_same(h, k, s)
    l0, r0 = tf_same(w, k, s)
    x, wt = rand(1, c, h, w), rand(o, c, k, k)
    ref = F.conv2d(F.pad(t(x), (l0, r0, t0, b0)), t(wt), stride=s).numpy()
    assert ref.shape[2:] == (math.ceil(h / s), math.ceil(w / s))
    compare("conv2d same[%d] %dx%d k%d s%d" % (i, h, w, k, s), "conv2d",
            ["--stride", csv(s, s), "--pads", csv(t0, l0, b0, r0)], [x, wt], ref)


# ---------------------------------------------------------------- pooling

def pool_case(i, is_max):
    n, c = int(RNG.integers(1, 3)), int(RNG.integers(1, 5))
    kh, kw = RNG.integers(1, 5, 2).tolist()
    sh, sw = RNG.integers(1, 4, 2).tolist()
    ph, pw = int(RNG.integers(0, kh // 2 + 1)), int(RNG.integers(0, kw // 2 + 1))
    h, w = int(RNG.integers(kh, 17)), int(RNG.integers(kw, 19))
    ceil = bool(RNG.random() < 0.5)
    incl = bool(RNG.random() < 0.5)
    x = rand(n, c, h, w)
    opts = ["--kernel", csv(kh, kw), "--stride", csv(sh, sw), "--pads",
            csv(ph, pw, ph, pw)] + (["--ceil"] if ceil else [])
    if is_max:
        ref = F.max_pool2d(t(x), (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil)
    else:
        ref = F.avg_pool2d(t(x), (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil,
                           count_include_pad=incl)
        opts += ["--count-include-pad"] if incl else []
    name = "%s[%d] x%s k%dx%d s%dx%d p%dx%d ceil=%d incl=%d" % (
        "maxpool" if is_max else "avgpool", i, x.shape, kh, kw, sh, sw, ph, pw,
        ceil, incl)
    compare(name, "maxpool" if is_max else "avgpool", opts, [x], ref.numpy(),
            exact=is_max)


def pool_asym_case(i, is_max):
    """Asymmetric pads (as from Keras 'same'): torch pads first, then pools;
    exclusive average = zero-padded sum / zero-padded count of ones."""
    k, s = int(RNG.choice([2, 3, 4])), int(RNG.choice([1, 2, 3]))
    h, w = int(RNG.integers(k, 16)), int(RNG.integers(k, 16))
    t0, b0 = tf_same(h, k, s)
    l0, r0 = tf_same(w, k, s)
    if max(t0, b0, l0, r0) >= k:
        return
    x = rand(2, 3, h, w)
    pad = (l0, r0, t0, b0)
    opts = ["--kernel", csv(k, k), "--stride", csv(s, s), "--pads",
            csv(t0, l0, b0, r0)]
    if is_max:
        ref = F.max_pool2d(F.pad(t(x), pad, value=-math.inf), k, s).numpy()
        compare("maxpool same[%d] %dx%d k%d s%d" % (i, h, w, k, s), "maxpool",
                opts, [x], ref, exact=True)
        return
    sums = F.avg_pool2d(F.pad(t(x), pad), k, s, divisor_override=1)
    counts = F.avg_pool2d(F.pad(torch.ones_like(t(x)), pad), k, s,
                          divisor_override=1)
    compare("avgpool tf-same[%d] %dx%d k%d s%d" % (i, h, w, k, s), "avgpool",
            opts, [x], (sums / counts).numpy())
    incl = F.avg_pool2d(F.pad(t(x), pad), k, s).numpy()
    compare("avgpool same incl[%d] %dx%d k%d s%d" % (i, h, w, k, s), "avgpool",
            opts + ["--count-include-pad"], [x], incl)


def global_cases():
    for i, shape in enumerate([(2, 3, 5, 7), (1, 8, 1, 1), (3, 2, 13), (1, 2, 3, 4, 5)]):
        x = rand(*shape)
        dims = tuple(range(2, len(shape)))
        compare("gap[%d] %s" % (i, shape), "gap", [], [x],
                t(x).mean(dim=dims, keepdim=True).numpy())
        compare("gmp[%d] %s" % (i, shape), "gmp", [], [x],
                t(x).amax(dim=dims, keepdim=True).numpy(), exact=True)


# ---------------------------------------------------------------- dense, bn

def dense_case(i):
    lead = [int(v) for v in RNG.integers(1, 5, int(RNG.integers(1, 3)))]
    fin, fout = int(RNG.integers(1, 40)), int(RNG.integers(1, 30))
    transb = bool(RNG.random() < 0.5)
    act = RNG.choice(list(ACTS))
    x, wt, b = rand(*lead, fin), rand(fout, fin), rand(fout)  # torch layout
    ref = ACTS[act](F.linear(t(x), t(wt), t(b))).numpy()
    w_in = wt if transb else np.ascontiguousarray(wt.T)
    opts = (["--transb"] if transb else []) + ["--act", act]
    compare("dense[%d] x%s w%s transb=%d" % (i, x.shape, w_in.shape, transb),
            "dense", opts, [x, w_in, b], ref)


def batchnorm_case(i):
    shape = [int(RNG.integers(1, 3)), int(RNG.integers(1, 9))]
    shape += [int(v) for v in RNG.integers(1, 9, int(RNG.integers(0, 3)))]
    c = shape[1]
    x, g, b, m = rand(*shape), rand(c), rand(c), rand(c)
    v = (RNG.random(c) * 2 + 0.05).astype(np.float32)
    eps = float(RNG.choice([1e-5, 1e-3]))
    ref = F.batch_norm(t(x), t(m), t(v), t(g), t(b), training=False, eps=eps)
    compare("batchnorm[%d] x%s eps %g" % (i, tuple(shape), eps), "batchnorm",
            ["--eps", repr(eps)], [x, g, b, m, v], ref.numpy())


# ---------------------------------------------------------------- softmax, act

def softmax_case(i):
    nd = int(RNG.integers(1, 5))
    shape = [int(v) for v in RNG.integers(1, 8, nd)]
    axis = int(RNG.integers(-nd, nd))
    scale, shift = (100.0, 1000.0) if i % 3 == 0 else (3.0, 0.0)
    x = rand(*shape, scale=scale) + np.float32(shift)
    ref = F.softmax(t(x), dim=axis).numpy()
    compare("softmax[%d] x%s axis %d" % (i, tuple(shape), axis), "softmax",
            ["--axis", axis], [x], ref)


def act_cases():
    x = np.concatenate([rand(200, scale=4.0), rand(20, scale=50.0),
                        np.array([0, -0.0, 6, -6, 2.5, -2.5, 88, -88, 1e-8],
                                 np.float32)]).reshape(1, -1)
    refs = {
        "relu": (F.relu(t(x)), True),
        "relu6": (F.hardtanh(t(x), 0.0, 6.0), True),
        "leaky_relu": (F.leaky_relu(t(x), 0.2), False),
        "sigmoid": (torch.sigmoid(t(x)), False),
        "tanh": (torch.tanh(t(x)), False),
        "swish": (F.silu(t(x)), False),
        "hard_sigmoid": (torch.clamp(0.2 * t(x) + 0.5, 0, 1), False),
    }
    for name, (ref, exact) in refs.items():
        # the tool takes NAME as its first positional argument
        compare("act %s" % name, "act", ["--alpha", "0.2", name], [x],
                ref.numpy(), exact=exact)
    x2 = rand(3, 4, 5, scale=3.0)
    compare("clip", "clip", ["--min", "-1.5", "--max", "2"], [x2],
            torch.clamp(t(x2), -1.5, 2.0).numpy(), exact=True)


# ---------------------------------------------------------------- add, mul

def bcast_pair():
    nd = int(RNG.integers(1, 7))
    out = [int(v) for v in RNG.integers(1, 5, nd)]
    shapes = []
    for _ in range(2):
        keep = int(RNG.integers(0, nd + 1))
        s = out[nd - keep:]
        s = [1 if RNG.random() < 0.3 else d for d in s]
        shapes.append(s)
    return shapes


def binary_case(i):
    sa, sb = bcast_pair()
    a, b = rand(*sa), rand(*sb)
    for op in ("add", "mul"):
        ref = (t(a) + t(b)) if op == "add" else (t(a) * t(b))
        compare("%s[%d] %s %s" % (op, i, sa, sb), op, [], [a, b], ref.numpy(),
                exact=True)


# ---------------------------------------------------------------- concat, pad

def concat_case(i):
    nd = int(RNG.integers(1, 6))
    base = [int(v) for v in RNG.integers(1, 5, nd)]
    axis = int(RNG.integers(-nd, nd))
    xs = []
    for _ in range(int(RNG.integers(1, 5))):
        s = list(base)
        s[axis] = int(RNG.integers(0 if i % 4 == 0 else 1, 5))
        xs.append(rand(*s))
    ref = torch.cat([t(x) for x in xs], dim=axis).numpy()
    compare("concat[%d] %s axis %d" % (i, [x.shape for x in xs], axis), "concat",
            ["--axis", axis], xs, ref, exact=True)


def pad_case(i):
    # torch: 4-D input, pads on H and W (T,L,B,R)
    x = rand(int(RNG.integers(1, 3)), int(RNG.integers(1, 4)),
             int(RNG.integers(2, 9)), int(RNG.integers(2, 9)))
    mode = ["constant", "reflect", "edge"][i % 3]
    hmax, wmax = (x.shape[2] - 1, x.shape[3] - 1) if mode == "reflect" else (4, 4)
    pt, pb = RNG.integers(0, hmax + 1, 2).tolist()
    pl, pr = RNG.integers(0, wmax + 1, 2).tolist()
    tmode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[mode]
    kw = {"value": 1.5} if mode == "constant" else {}
    ref = F.pad(t(x), (pl, pr, pt, pb), mode=tmode, **kw).numpy()
    compare("pad torch %s[%d] x%s" % (mode, i, x.shape), "pad",
            ["--pads", csv(pt, pl, pb, pr), "--mode", mode, "--value", "1.5"],
            [x], ref, exact=True)
    # numpy: any rank 1..6, ONNX order pads on every axis
    nd = int(RNG.integers(1, 7))
    shape = [int(v) for v in RNG.integers(2, 5, nd)]
    x = rand(*shape)
    lim = [d - 1 if mode == "reflect" else 3 for d in shape]
    pb_ = [int(RNG.integers(0, m + 1)) for m in lim]
    pe_ = [int(RNG.integers(0, m + 1)) for m in lim]
    npmode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}[mode]
    kw = {"constant_values": -2.0} if mode == "constant" else {}
    ref = np.pad(x, list(zip(pb_, pe_)), mode=npmode, **kw)
    compare("pad numpy %s[%d] %s" % (mode, i, shape), "pad",
            ["--pads", csv(*(pb_ + pe_)), "--mode", mode, "--value", "-2"], [x],
            ref, exact=True)


def reshape_cases():
    x = rand(2, 3, 4, 5)
    for axis in (-4, -1, 0, 1, 2, 4):
        ax = axis + 4 if axis < 0 else axis
        ref = x.reshape(int(np.prod(x.shape[:ax])), -1)
        compare("flatten axis %d" % axis, "flatten", ["--axis", axis], [x], ref,
                exact=True)
    for spec, np_shape in [("0,-1", (2, 60)), ("6,-1,5", (6, 4, 5)),
                           ("0,0,20", (2, 3, 20)), ("-1", (120,)),
                           ("2,3,2,2,5,1", (2, 3, 2, 2, 5, 1))]:
        compare("reshape %s" % spec, "reshape", ["--shape", spec], [x],
                x.reshape(np_shape), exact=True)


# ---------------------------------------------------------------- bad input

def expect_error(name, op, opts, inputs, needle):
    try:
        got, err = nnop(op, opts, inputs, expect_fail=True)
    except RuntimeError as ex:
        got, err = "crashed", str(ex)
    ok = got is None and needle in err and "nnop:" in err
    report(ok, "error " + name, "stderr: %r" % err.strip())


def error_cases():
    x = rand(1, 3, 8, 8)
    expect_error("conv channels", "conv2d", [], [x, rand(2, 4, 3, 3)],
                 "input has 3 channels but the weight expects 4 (groups 1)")
    expect_error("conv kernel too big", "conv2d", [], [x, rand(2, 3, 9, 9)],
                 "larger than the padded")
    expect_error("conv groups", "conv2d", ["--groups", "2"], [rand(1, 4, 5, 5),
                 rand(3, 2, 3, 3)], "do not split into 2 groups")
    expect_error("conv bias", "conv2d", [], [x, rand(2, 3, 3, 3), rand(3)],
                 "bias has 3 values")
    expect_error("conv stride 0", "conv2d", ["--stride", "0,1"],
                 [x, rand(2, 3, 3, 3)], "at least 1")
    expect_error("broadcast", "add", [], [rand(2, 3), rand(4, 3, 2)],
                 "neither is 1")
    expect_error("dense features", "dense", [], [rand(2, 5), rand(4, 3)],
                 "input has 5 features")
    expect_error("pool pads", "maxpool", ["--kernel", "2,2", "--pads", "2,0,0,0"],
                 [x], "pads (2, 0)")
    expect_error("reflect too wide", "pad", ["--pads", "0,0,8,0", "--mode",
                 "reflect"], [x], "must be smaller")
    expect_error("softmax axis", "softmax", ["--axis", "4"], [x], "axis 4")
    expect_error("concat dims", "concat", ["--axis", "1"], [rand(1, 2, 3),
                 rand(1, 2, 4)], "input 1 has 4 at dim 2")
    expect_error("reshape count", "reshape", ["--shape", "7,-1"], [x],
                 "cannot infer -1")
    expect_error("batchnorm var", "batchnorm", [], [x, rand(3), rand(3), rand(3),
                 -np.ones(3, np.float32)], "not positive")
    # .npy files the minimal reader must refuse, not misread
    p = os.path.join(TMP, "f64.npy")
    np.save(p, np.ones((2, 2)))
    r = subprocess.run([TOOL, "act", "relu", p, os.path.join(TMP, "o.npy")],
                       capture_output=True, text=True)
    report(r.returncode == 1 and "'<f4'" in r.stderr, "error float64 npy", r.stderr)
    np.save(p, np.asfortranarray(rand(3, 4)))
    r = subprocess.run([TOOL, "act", "relu", p, os.path.join(TMP, "o.npy")],
                       capture_output=True, text=True)
    report(r.returncode == 1 and "C-order" in r.stderr, "error fortran npy", r.stderr)
    with open(p, "wb") as f:
        np.save(f, rand(4, 4))
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) - 4)
    r = subprocess.run([TOOL, "act", "relu", p, os.path.join(TMP, "o.npy")],
                       capture_output=True, text=True)
    report(r.returncode == 1 and "data bytes" in r.stderr, "error truncated npy",
           r.stderr)


def main():
    if not os.access(TOOL, os.X_OK):
        print("nnop tool not found at " + TOOL)
        return 1
    torch.manual_seed(0)
    for i in range(60):
        conv_case(i)
    for i in range(12):
        conv_same_case(i)
    for i in range(30):
        pool_case(i, True)
        pool_case(i, False)
    for i in range(12):
        pool_asym_case(i, True)
        pool_asym_case(i, False)
    global_cases()
    for i in range(20):
        dense_case(i)
        batchnorm_case(i)
        softmax_case(i)
    act_cases()
    for i in range(25):
        binary_case(i)
    for i in range(15):
        concat_case(i)
    for i in range(12):
        pad_case(i)
    reshape_cases()
    error_cases()
    print("%d passed, %d failed" % (passed, failed))
    shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
