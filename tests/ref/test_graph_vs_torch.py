"""test_graph_vs_torch.py - a small branched network built through the graph
IR (tests/tools/nngraph.c) against the same network in PyTorch with the same
random weights: whole output, a cut feature layer, optimised and not."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

TOOLS = os.environ.get("DLP_TOOLS", "build/tests")
SANITIZED = os.environ.get("DLP_SANITIZED", "0") == "1"
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}", file=sys.stderr)


def weights(rng):
    r = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)
    w = {
        "stem_w": r(16, 3, 3, 3),
        "a_w": r(8, 16, 1, 1), "a_b": r(8),
        "b_w": r(8, 16, 3, 3), "b_b": r(8),
        "c_w": r(8, 16, 1, 1), "c_b": r(8),
        "r_w": r(16, 24, 1, 1), "r_b": r(16),
        "dw_w": r(16, 1, 3, 3), "dw_b": r(16),
        "fc_w": r(16, 10) * 3, "fc_b": r(10),
    }
    for p in ("bn", "bnb"):
        w[p + "_g"] = (1 + r(16 if p == "bn" else 8)).astype(np.float32)
        w[p + "_b"] = r(16 if p == "bn" else 8)
        w[p + "_m"] = r(16 if p == "bn" else 8)
        w[p + "_v"] = (0.5 + rng.random(16 if p == "bn" else 8)).astype(np.float32)
    return w


def torch_net(w, x):
    """The network of nngraph.c, written independently with torch ops.
    Returns the named intermediate values too."""
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    x = torch.from_numpy(x)
    h = x.shape[2]
    # TF 'same' for 3x3 stride 2: total pad max((ceil(h/2)-1)*2 + 3 - h, 0),
    # the odd pixel at the end.
    total = max((-(-h // 2) - 1) * 2 + 3 - h, 0)
    xs = F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))
    stem = F.conv2d(xs, t["stem_w"], stride=2)
    stem = F.batch_norm(stem, t["bn_m"], t["bn_v"], t["bn_g"], t["bn_b"],
                        training=False, eps=1e-3)
    stem = F.relu(stem)
    a = F.relu(F.conv2d(stem, t["a_w"], t["a_b"]))
    b = F.conv2d(stem, t["b_w"], t["b_b"], padding=1)
    b = F.batch_norm(b, t["bnb_m"], t["bnb_v"], t["bnb_g"], t["bnb_b"],
                     training=False, eps=1e-5)
    b = torch.clamp(b, 0, 6)
    c = F.max_pool2d(stem, 3, 1, 1)
    c = F.conv2d(c, t["c_w"], t["c_b"])
    cat = torch.cat([a, b, c], 1)
    ap = F.avg_pool2d(cat, 3, 1, 1, count_include_pad=False)
    res = F.conv2d(ap, t["r_w"], t["r_b"])
    add = F.relu(res + stem)
    p = F.max_pool2d(add, 2, 2)
    dw = F.relu(F.conv2d(p, t["dw_w"], t["dw_b"], padding=1, groups=16))
    gap = dw.mean(dim=(2, 3))
    fc = F.linear(gap, t["fc_w"].t(), t["fc_b"])
    out = torch.softmax(fc, dim=1)
    return {"softmax": out, "concat": cat, "add_relu": add, "gap": gap,
            "fc": fc}


def rel_err(got, want):
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def run_tool(wdir, inp, out, *extra):
    r = subprocess.run([os.path.join(TOOLS, "nngraph"), "tinynet", wdir, inp,
                        out, *extra], capture_output=True, text=True)
    return r


def main():
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as d:
        w = weights(rng)
        for k, v in w.items():
            np.save(os.path.join(d, k + ".npy"), v)
        sizes = [(1, 17), (3, 32)] if SANITIZED else [(1, 17), (3, 32), (2, 64)]
        for batch, size in sizes:
            x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
            inp = os.path.join(d, "in.npy")
            np.save(inp, x)
            with torch.no_grad():
                ref = {k: v.numpy() for k, v in torch_net(w, x).items()}
            for layer in ("softmax", "fc", "concat", "add_relu", "gap"):
                for opt in ([], ["--optimize"]):
                    out = os.path.join(d, "out.npy")
                    extra = opt + ([] if layer == "softmax" else ["--cut", layer])
                    r = run_tool(d, inp, out, *extra)
                    name = f"{layer} batch {batch} size {size} {' '.join(opt)}"
                    if r.returncode != 0:
                        check(name, False, r.stderr)
                        continue
                    got = np.load(out)
                    want = ref[layer]
                    if got.shape != want.shape:
                        check(name, False, f"shape {got.shape} vs {want.shape}")
                        continue
                    e = rel_err(got, want)
                    check(name, e <= 1e-5, f"max rel err {e:.3g}")
        # The optimised graph lost its batch norms, activations and dropout.
        r = run_tool(d, inp, os.path.join(d, "o.npy"), "--optimize")
        r0 = run_tool(d, inp, os.path.join(d, "o.npy"))
        n_opt = int(r.stdout.split()[1]) if r.returncode == 0 else -1
        n_raw = int(r0.stdout.split()[1]) if r0.returncode == 0 else -1
        check("optimize drops 7 nodes", n_raw == 22 and n_opt == 15,
              f"{n_raw} -> {n_opt}")
        # A missing weight file is an error naming the file, not a crash.
        os.remove(os.path.join(d, "r_w.npy"))
        r = run_tool(d, inp, os.path.join(d, "o.npy"))
        check("missing weight file", r.returncode == 1 and "r_w.npy" in r.stderr,
              r.stderr)
        # A weight of the wrong shape names the node.
        np.save(os.path.join(d, "r_w.npy"), w["r_w"][:, :20])
        r = run_tool(d, inp, os.path.join(d, "o.npy"))
        check("wrong weight shape", r.returncode == 1 and "node 'res' (conv2d)"
              in r.stderr, r.stderr)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
