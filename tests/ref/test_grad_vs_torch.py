"""test_grad_vs_torch.py - dlp's reference backward kernels against PyTorch
autograd.

Reference: torch 1.13 autograd in float64 on the same float32 inputs. Each
case writes .npy inputs into a folder, runs the gradop tool (one op's
forward pass and its backward kernel per process), and compares every
output with torch: shapes equal and max |dlp - ref| <= 1e-4 * max |ref|
(float32 sums in a different order; the reference is float64). The loss
of cross-entropy is compared the same way.

Covered: conv2d (stride, padding, dilation, groups, depthwise, pointwise,
threads), linear (both weight layouts), batch_norm(training=True) with the
running-stat update, max_pool2d, avg_pool2d (count_include_pad both ways,
ceil_mode, padding), adaptive_avg_pool2d / global max pool, relu, relu6
(hardtanh), leaky_relu, sigmoid, tanh, silu, hardsigmoid (Keras' slope 0.2
written out), clip, softmax, cross_entropy with label smoothing and
per-sample weights (weighted mean computed here: torch's weight= is per
class), concat, pad (constant/reflect/replicate), add/mul with
broadcasting; and a bad input (nonzero exit with a clear message).

Run with /usr/bin/python3; env DLP_TOOLS = folder holding the gradop tool.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

TOOL = os.path.join(os.environ.get("DLP_TOOLS", "."), "gradop")
TMP = tempfile.mkdtemp(prefix="dlp_gradop_")
RNG = np.random.default_rng(20261124)
TOL = 1e-4
SANITIZED = os.environ.get("DLP_SANITIZED", "0") in ("1", "ON", "TRUE")
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


def gradop(op, opts, arrays):
    """Writes arrays (name -> np array), runs gradop; returns (outputs dict
    name -> array, or None on failure; stderr)."""
    for f in os.listdir(TMP):
        os.remove(os.path.join(TMP, f))
    for name, a in arrays.items():
        np.save(os.path.join(TMP, name + ".npy"), np.ascontiguousarray(a))
    cmd = [TOOL, op] + [str(o) for o in opts] + [TMP]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, "exit %d: %s" % (r.returncode, r.stderr.strip())
    out = {}
    for f in os.listdir(TMP):
        name = f[:-4]
        if name not in arrays:
            out[name] = np.load(os.path.join(TMP, f))
    return out, r.stderr


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def compare(name, got, refs):
    """refs: name -> torch tensor or array; every one must be in got."""
    if got is None:
        report(False, name, "tool failed")
        return
    for k, ref in refs.items():
        ref = ref.detach().numpy() if torch.is_tensor(ref) else np.asarray(ref)
        g = got.get(k)
        if g is None or g.shape != ref.shape:
            report(False, name + " " + k, "shape %s vs torch %s" %
                   (None if g is None else g.shape, ref.shape))
            return
        if ref.size == 0:
            continue
        err = float(np.max(np.abs(g.astype(np.float64) - ref)))
        scale = max(float(np.max(np.abs(ref))), 1e-30)
        if not err <= TOL * scale:
            report(False, name + " " + k, "max err %.3g (max |ref| %.3g)" %
                   (err, scale))
            return
    report(True, name)


def run_case(name, op, opts, arrays, ref_fn):
    got, err = gradop(op, opts, arrays)
    if got is None:
        report(False, name, err)
        return
    compare(name, got, ref_fn())


def backward(y, dy, inputs):
    y.backward(t64(dy))
    return [i.grad for i in inputs]


def csv(*v):
    return ",".join(str(int(x)) for x in v)


# ---------------------------------------------------------------- conv2d

def conv_cases():
    # (n, c, h, w, o, kh, kw, stride, dilation, pads T,L,B,R, groups, bias)
    yield 2, 3, 12, 11, 8, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1, True
    yield 2, 4, 13, 10, 6, 3, 3, (2, 2), (1, 1), (0, 1, 2, 1), 2, False
    yield 1, 6, 11, 12, 6, 3, 3, (2, 1), (1, 1), (1, 1, 1, 1), 6, True
    yield 2, 8, 9, 9, 16, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 8, True
    yield 2, 5, 10, 9, 7, 3, 2, (1, 2), (2, 3), (2, 3, 1, 0), 1, True
    yield 3, 16, 6, 6, 24, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1, False
    yield 2, 8, 16, 6, 12, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 2, True
    yield 4, 40, 3, 3, 64, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1, True
    yield 1, 3, 15, 15, 4, 5, 5, (3, 3), (1, 1), (2, 2, 2, 2), 1, True
    for _ in range(4):  # random shapes
        g = int(RNG.integers(1, 4))
        c = g * int(RNG.integers(1, 4))
        o = g * int(RNG.integers(1, 4))
        kh, kw = (int(v) for v in RNG.integers(1, 4, size=2))
        st = tuple(int(v) for v in RNG.integers(1, 3, size=2))
        dl = tuple(int(v) for v in RNG.integers(1, 3, size=2))
        pads = tuple(int(v) for v in RNG.integers(0, 3, size=4))
        yield (int(RNG.integers(1, 3)), c, int(RNG.integers(8, 14)),
               int(RNG.integers(8, 14)), o, kh, kw, st, dl, pads, g,
               bool(RNG.integers(0, 2)))


def test_conv2d():
    for i, (n, c, h, w, o, kh, kw, st, dl, pads, g, bias) in \
            enumerate(conv_cases()):
        x, wt = rand(n, c, h, w), rand(o, c // g, kh, kw)
        b = rand(o)
        t, l, bo, r = pads
        oh = (h + t + bo - (kh - 1) * dl[0] - 1) // st[0] + 1
        ow = (w + l + r - (kw - 1) * dl[1] - 1) // st[1] + 1
        dy = rand(n, o, oh, ow)
        arrays = {"x": x, "w": wt, "dy": dy}
        if bias:
            arrays["b"] = b
        opts = ["--stride", csv(*st), "--dilation", csv(*dl), "--pads",
                csv(*pads), "--groups", g, "--threads", 1 + i % 3]

        def ref():
            tx, tw, tb = t64(x, True), t64(wt, True), t64(b, True)
            xp = F.pad(tx, (l, r, t, bo))
            y = F.conv2d(xp, tw, tb if bias else None, stride=st,
                         dilation=dl, groups=g)
            gx, gw, gb = backward(y, dy, [tx, tw, tb])
            out = {"y": y, "dx": gx, "dw": gw}
            if bias:
                out["db"] = gb
            return out
        run_case("conv2d case %d" % i, "conv2d", opts, arrays, ref)


# ---------------------------------------------------------------- dense

def test_dense():
    for i, (shape, out, transb, bias) in enumerate([
            ((4, 7), 5, False, True), ((4, 7), 5, True, True),
            ((2, 3, 6), 9, True, False), ((1, 33), 10, False, True)]):
        inp = shape[-1]
        x, b = rand(*shape), rand(out)
        w = rand(out, inp) if transb else rand(inp, out)
        dy = rand(*(shape[:-1] + (out,)))
        arrays = {"x": x, "w": w, "dy": dy}
        if bias:
            arrays["b"] = b

        def ref():
            tx, tw, tb = t64(x, True), t64(w, True), t64(b, True)
            wm = tw if transb else tw.t()  # F.linear wants (out, in)
            y = F.linear(tx, wm, tb if bias else None)
            gx, gw, gb = backward(y, dy, [tx, tw, tb])
            d = {"y": y, "dx": gx, "dw": gw}
            if bias:
                d["db"] = gb
            return d
        run_case("dense case %d" % i, "dense", ["--transb"] if transb else [],
                 arrays, ref)


# ---------------------------------------------------------------- batchnorm

def test_batchnorm():
    for i, (shape, eps, mom) in enumerate([
            ((4, 3, 5, 6), 1e-5, 0.1), ((8, 6), 1e-3, 0.01),
            ((2, 5, 3, 4), 1e-3, 1.0), ((3, 2, 7), 1e-5, 0.0)]):
        c = shape[1]
        x = rand(*shape, scale=2.0) + 0.5
        gamma, beta = rand(c), rand(c)
        rm, rv = rand(c), np.abs(rand(c)) + 0.5
        dy = rand(*shape)
        arrays = {"x": x, "gamma": gamma, "beta": beta, "running_mean": rm,
                  "running_var": rv, "dy": dy}

        def ref():
            tx, tg, tb = t64(x, True), t64(gamma, True), t64(beta, True)
            trm, trv = t64(rm), t64(rv)
            y = F.batch_norm(tx, trm, trv, tg, tb, training=True,
                             momentum=mom, eps=eps)
            gx, gg, gb = backward(y, dy, [tx, tg, tb])
            return {"y": y, "dx": gx, "dgamma": gg, "dbeta": gb,
                    "running_mean_out": trm, "running_var_out": trv}
        run_case("batchnorm case %d" % i, "batchnorm",
                 ["--eps", eps, "--momentum", mom], arrays, ref)


# ---------------------------------------------------------------- pooling

def distinct(*shape):
    """Values without ties (max pooling's choice is then unique)."""
    n = int(np.prod(shape))
    return (RNG.permutation(n).astype(np.float32) * 0.01 - n * 0.005) \
        .reshape(shape)


def pool_out(h, k, s, p0, p1, ceil):
    span = h + p0 + p1 - k
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= h + p0:
        o -= 1
    return o


def test_pool():
    cases = [((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), False, False),
             ((1, 2, 9, 7), (3, 3), (2, 2), (1, 1), False, True),
             ((2, 2, 9, 7), (3, 3), (2, 2), (1, 1), True, True),
             ((2, 2, 10, 11), (3, 2), (2, 3), (1, 1), True, False),
             ((1, 3, 6, 6), (3, 3), (1, 1), (1, 1), False, False),
             ((1, 1, 5, 8), (2, 4), (3, 2), (0, 2), True, False)]
    for i, (shape, k, s, p, ceil, incl) in enumerate(cases):
        for kind in ("maxpool", "avgpool"):
            x = distinct(*shape)
            oh = pool_out(shape[2], k[0], s[0], p[0], p[0], ceil)
            ow = pool_out(shape[3], k[1], s[1], p[1], p[1], ceil)
            dy = rand(shape[0], shape[1], oh, ow)
            opts = ["--kernel", csv(*k), "--stride", csv(*s), "--pads",
                    csv(p[0], p[1], p[0], p[1])]
            if ceil:
                opts.append("--ceil")
            if incl:
                opts.append("--count-include-pad")

            def ref():
                tx = t64(x, True)
                if kind == "maxpool":
                    y = F.max_pool2d(tx, k, s, p, ceil_mode=ceil)
                else:
                    y = F.avg_pool2d(tx, k, s, p, ceil_mode=ceil,
                                     count_include_pad=incl)
                (gx,) = backward(y, dy, [tx])
                return {"y": y, "dx": gx}
            run_case("%s case %d" % (kind, i), kind, opts,
                     {"x": x, "dy": dy}, ref)


def test_global_pool():
    for i, shape in enumerate([(2, 3, 5, 4), (3, 4, 1, 1), (1, 6, 7, 9)]):
        for kind in ("gap", "gmp"):
            x = distinct(*shape)
            dy = rand(shape[0], shape[1], 1, 1)

            def ref():
                tx = t64(x, True)
                if kind == "gap":
                    y = F.adaptive_avg_pool2d(tx, 1)
                else:
                    y = F.adaptive_max_pool2d(tx, 1)
                (gx,) = backward(y, dy, [tx])
                return {"y": y, "dx": gx}
            run_case("%s case %d" % (kind, i), kind, [], {"x": x, "dy": dy},
                     ref)


# ---------------------------------------------------------------- elementwise

def away(x, kinks, gap=1e-3):
    """Moves values off the kinks, where torch and dlp pick a side each."""
    for k in kinks:
        x = np.where(np.abs(x - k) < gap, k + gap, x)
    return x.astype(np.float32)


ACTS = {
    "relu": (F.relu, [0.0], []),
    "relu6": (lambda v: F.hardtanh(v, 0.0, 6.0), [0.0, 6.0], []),
    "leaky_relu": (lambda v: F.leaky_relu(v, 0.2), [0.0], ["--alpha", 0.2]),
    "sigmoid": (torch.sigmoid, [], []),
    "tanh": (torch.tanh, [], []),
    "swish": (F.silu, [], []),
    # clamp's gradient counts the bounds in, dlp's (like hardtanh) does
    # not: the exact corners are kept out of this one
    "hard_sigmoid": (lambda v: torch.clamp(0.2 * v + 0.5, 0.0, 1.0),
                     [-2.5, 2.5], []),
    "none": (lambda v: v, [], []),
}


def test_act():
    for name, (fn, kinks, extra) in ACTS.items():
        for i, shape in enumerate([(3, 17), (2, 3, 4, 5)]):
            x = away(rand(*shape, scale=4.0), kinks)
            if name in ("relu", "relu6", "leaky_relu"):
                # exactly at the kinks: torch's relu and hardtanh rules
                x.flat[:len(kinks)] = kinks
            dy = rand(*shape)

            def ref():
                tx = t64(x, True)
                y = fn(tx)
                (gx,) = backward(y, dy, [tx])
                return {"y": y, "dx": gx}
            run_case("act %s case %d" % (name, i), "act", [name] + extra,
                     {"x": x, "dy": dy}, ref)


def test_clip():
    for i, (lo, hi) in enumerate([(-1.0, 1.0), (0.0, 6.0), (-0.5, 0.25)]):
        x = away(rand(4, 9, scale=2.0), [lo, hi])
        x.flat[0], x.flat[1] = lo, hi  # torch: gradient 0 at the bounds
        dy = rand(4, 9)

        def ref():
            tx = t64(x, True)
            y = F.hardtanh(tx, lo, hi)
            (gx,) = backward(y, dy, [tx])
            return {"y": y, "dx": gx}
        run_case("clip case %d" % i, "clip", ["--min", lo, "--max", hi],
                 {"x": x, "dy": dy}, ref)


def test_softmax():
    for i, (shape, axis) in enumerate([((4, 10), 1), ((4, 10), -1),
                                       ((2, 3, 4, 5), 1), ((3, 4, 5), 0),
                                       ((2, 6), -1)]):
        x = rand(*shape, scale=3.0)
        if i == 4:
            x *= 100  # large logits
        dy = rand(*shape)

        def ref():
            tx = t64(x, True)
            y = F.softmax(tx, dim=axis)
            (gx,) = backward(y, dy, [tx])
            return {"y": y, "dx": gx}
        run_case("softmax case %d" % i, "softmax", ["--axis", axis],
                 {"x": x, "dy": dy}, ref)


# ---------------------------------------------------------------- loss

def test_xent():
    for i, (n, k, s, weighted, scale) in enumerate([
            (8, 5, 0.0, False, 1.0), (8, 5, 0.1, False, 1.0),
            (6, 3, 0.0, True, 1.0), (10, 7, 0.2, True, 3.0),
            (4, 4, 0.05, True, 1000.0), (1, 2, 0.0, False, 1.0)]):
        z = rand(n, k, scale=scale)
        labels = RNG.integers(0, k, size=n).astype(np.int64)
        w = (RNG.random(n) + 0.1).astype(np.float32)
        arrays = {"logits": z, "labels": labels}
        if weighted:
            arrays["weights"] = w

        def ref():
            tz = t64(z, True)
            per = F.cross_entropy(tz, torch.from_numpy(labels),
                                  reduction="none", label_smoothing=s)
            tw = t64(w) if weighted else torch.ones(n, dtype=torch.float64)
            loss = (per * tw).sum() / tw.sum()
            loss.backward()
            return {"loss": loss.detach().numpy(), "dlogits": tz.grad}
        run_case("xent case %d" % i, "xent", ["--smoothing", s], arrays, ref)


# ---------------------------------------------------------------- data movement

def test_concat():
    for i, (shapes, axis) in enumerate([
            ([(2, 3, 4, 4), (2, 5, 4, 4)], 1),
            ([(2, 3), (2, 1), (2, 4)], -1),
            ([(1, 2, 3), (4, 2, 3)], 0)]):
        xs = [rand(*s) for s in shapes]
        y_shape = list(shapes[0])
        y_shape[axis] = sum(s[axis] for s in shapes)
        dy = rand(*y_shape)
        arrays = {"x%d" % k: x for k, x in enumerate(xs)}
        arrays["dy"] = dy

        def ref():
            txs = [t64(x, True) for x in xs]
            y = torch.cat(txs, dim=axis)
            gs = backward(y, dy, txs)
            d = {"y": y}
            d.update({"dx%d" % k: g for k, g in enumerate(gs)})
            return d
        run_case("concat case %d" % i, "concat",
                 ["--axis", axis, "--n", len(xs)], arrays, ref)


def test_pad():
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}
    for i, (mode, pads) in enumerate([
            ("constant", (1, 2, 0, 3)), ("reflect", (2, 1, 1, 2)),
            ("edge", (3, 0, 2, 4)), ("constant", (0, 0, 0, 0))]):
        shape = (2, 3, 5, 6)
        x, t_, l, b, r = rand(*shape), pads[0], pads[1], pads[2], pads[3]
        dy = rand(2, 3, 5 + t_ + b, 6 + l + r)
        onnx = [0, 0, t_, l, 0, 0, b, r]

        def ref():
            tx = t64(x, True)
            if mode == "constant":
                y = F.pad(tx, (l, r, t_, b), mode="constant", value=0.5)
            else:
                y = F.pad(tx, (l, r, t_, b), mode=modes[mode])
            (gx,) = backward(y, dy, [tx])
            return {"y": y, "dx": gx}
        run_case("pad %s case %d" % (mode, i), "pad",
                 ["--pads", csv(*onnx), "--mode", mode, "--value", 0.5],
                 {"x": x, "dy": dy}, ref)


def test_add_mul():
    cases = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((3, 1), (2, 1, 5)),
             ((1, 6, 1, 1), (2, 6, 3, 3)), ((5,), (1,)), ((2, 1, 3), (1, 4, 1))]
    for i, (sa, sb) in enumerate(cases):
        for op in ("add", "mul"):
            a, b = rand(*sa), rand(*sb)
            dy = rand(*np.broadcast_shapes(sa, sb))

            def ref():
                ta, tb = t64(a, True), t64(b, True)
                y = ta + tb if op == "add" else ta * tb
                ga, gb = backward(y, dy, [ta, tb])
                return {"y": y, "da": ga, "db": gb}
            run_case("%s case %d" % (op, i), op, [], {"a": a, "b": b, "dy": dy},
                     ref)


def test_bad_input():
    x, w = rand(1, 3, 5, 5), rand(4, 3, 3, 3)
    got, err = gradop("conv2d", [], {"x": x, "w": w, "dy": rand(1, 4, 2, 2)})
    report(got is None and "exit 1:" in err and
           "conv2d_backward_data: dy has shape 1x4x2x2 but 1x4x3x3" in err,
           "bad dy shape is refused", err)
    got, err = gradop("xent", [], {"logits": rand(2, 3),
                                   "labels": np.array([0, 3], np.int64)})
    report(got is None and "label 3 of row 1 is not in [0, 3)" in err,
           "bad label is refused", err)


def main():
    if not os.path.exists(TOOL):
        print("gradop tool not found at " + TOOL)
        return 1
    torch.manual_seed(0)
    try:
        for fn in (test_conv2d, test_dense, test_batchnorm, test_pool,
                   test_global_pool, test_act, test_clip, test_softmax,
                   test_xent, test_concat, test_pad, test_add_mul,
                   test_bad_input):
            fn()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
