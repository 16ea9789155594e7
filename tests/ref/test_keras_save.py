"""test_keras_save.py - the Keras HDF5 writer, read back by h5py and numpy.

tests/tools/kerassave builds zoo networks (MobileNetV2, ResNet50,
InceptionV3, Xception; seeded random weights; small inputs), writes them with
nn_keras_save_file and dumps every graph weight (OIHW kernels) and a seeded
input batch with the graph's output as .npy. No Keras and no dlp reader here:

- layout: root attributes keras_version/backend/model_config, the JSON
  parses as a "Functional" model whose inbound nodes refer only to earlier
  layers, input/output layers exist, model_weights/layer_names lists the
  config's layers in order, each group's weight_names agree with its
  datasets at <layer>/<layer>/<role>:0;
- Keras conventions: an independent channels_last shape inference over the
  config gives every layer's input, from which the expected Keras weight
  shapes follow (Conv2D (kh, kw, in/groups, filters), DepthwiseConv2D
  (kh, kw, C, M), SeparableConv2D, BatchNormalization (C,) x4, Dense
  (in, units)); the final shape is the graph's output shape;
- values: every dataset equals the dumped graph weight after the numpy
  transposition Keras implies (OIHW -> HWIO etc.), exactly;
- meaning: the saved file alone, interpreted layer by layer with
  torch.nn.functional in float64, reproduces the graph's output on the
  dumped input (max error <= 1e-4 of the output's scale);
- a BN-folded graph (ResNet50 after nn_graph_optimize) likewise;
- the weights-only layout (root layer_names, no model_config) and that
  dlp's own loaders read both files back (kerassave --check: identical
  outputs, bit-identical weights), a file re-saved from a loaded file keeps
  the same Keras model, and an existing file is not replaced.

Run with /usr/bin/python3; env DLP_TOOLS = folder holding kerassave.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F

TOOL = os.path.join(os.environ.get("DLP_TOOLS", "."), "kerassave")
SANITIZED = os.environ.get("DLP_SANITIZED") == "1"
TMP = tempfile.mkdtemp(prefix="dlp_keras_save_")
passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL " + name + (" " + detail if detail else ""))


def tool(*args, fail=False):
    p = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=600)
    if (p.returncode != 0) != fail:
        raise RuntimeError("kerassave %s: rc %d %s" % (" ".join(map(str, args)),
                                                       p.returncode, p.stderr))
    return p


def s(v):
    return v.decode() if isinstance(v, bytes) else str(v)


# --------------------------------------------------------------------------
# Structure and Keras shape conventions
# --------------------------------------------------------------------------

def conv_out(n, k, st, d, padding):
    if padding == "same":
        return -(-n // st)
    return (n - (k - 1) * d - 1) // st + 1


def infer(cls, cfg, ins):
    """Output shape (no batch, channels_last) and expected Keras weights
    [(role, shape)] of one layer given its input shapes."""
    x = ins[0] if ins else None
    if cls == "InputLayer":
        return tuple(cfg["batch_input_shape"][1:]), []
    if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        h, w, c = x
        kh, kw = cfg["kernel_size"]
        sh, sw = cfg["strides"]
        dh, dw = cfg.get("dilation_rate", [1, 1])
        oh = conv_out(h, kh, sh, dh, cfg["padding"])
        ow = conv_out(w, kw, sw, dw, cfg["padding"])
        wts = []
        if cls == "Conv2D":
            g = cfg.get("groups", 1)
            out = cfg["filters"]
            wts.append(("kernel", (kh, kw, c // g, out)))
        else:
            m = cfg["depth_multiplier"]
            wts.append(("depthwise_kernel", (kh, kw, c, m)))
            out = c * m
            if cls == "SeparableConv2D":
                wts.append(("pointwise_kernel", (1, 1, c * m, cfg["filters"])))
                out = cfg["filters"]
        if cfg["use_bias"]:
            wts.append(("bias", (out,)))
        return (oh, ow, out), wts
    if cls == "BatchNormalization":
        assert cfg["axis"] in (-1, len(x) - 0), cfg["axis"]
        c = x[-1]
        roles = (["gamma"] if cfg["scale"] else []) + \
            (["beta"] if cfg["center"] else []) + \
            ["moving_mean", "moving_variance"]
        return x, [(r, (c,)) for r in roles]
    if cls in ("Activation", "ReLU", "LeakyReLU", "Softmax", "Dropout"):
        return x, []
    if cls == "ZeroPadding2D":
        (t, b), (l, r) = cfg["padding"]
        return (x[0] + t + b, x[1] + l + r, x[2]), []
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        (kh, kw), (sh, sw) = cfg["pool_size"], cfg["strides"]
        return (conv_out(x[0], kh, sh, 1, cfg["padding"]),
                conv_out(x[1], kw, sw, 1, cfg["padding"]), x[2]), []
    if cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return ((1, 1, x[2]) if cfg.get("keepdims") else (x[2],)), []
    if cls in ("Add", "Multiply"):
        assert all(i == x for i in ins), ins
        return x, []
    if cls == "Concatenate":
        ax = cfg["axis"] % (len(x) + 1) - 1  # without the batch
        out = list(x)
        out[ax] = sum(i[ax] for i in ins)
        return tuple(out), []
    if cls == "Flatten":
        return (int(np.prod(x)),), []
    if cls == "Dense":
        wts = [("kernel", (x[-1], cfg["units"]))]
        if cfg["use_bias"]:
            wts.append(("bias", (cfg["units"],)))
        return tuple(x[:-1]) + (cfg["units"],), wts
    raise ValueError("unexpected layer class " + cls)


def check_layout(name, path, out_shape):
    """Checks a full-model file; returns (config layers, shapes)."""
    f = h5py.File(path, "r")
    ok = s(f.attrs["backend"]) == "tensorflow" and \
        s(f.attrs["keras_version"]).startswith("2.")
    report(ok, name + " root attributes")
    cfg = json.loads(s(f.attrs["model_config"]))
    report(cfg["class_name"] == "Functional", name + " class_name")
    layers = cfg["config"]["layers"]
    names = [L["name"] for L in layers]
    report(len(set(names)) == len(names), name + " unique layer names")
    seen, shapes, bad_ref, bad_w = set(), {}, [], []
    for L in layers:
        assert L["config"]["name"] == L["name"]
        ins = []
        for call in L["inbound_nodes"]:
            for ref in call:
                if ref[0] not in seen or ref[1:3] != [0, 0]:
                    bad_ref.append((L["name"], ref))
                else:
                    ins.append(shapes[ref[0]])
        if L["class_name"] != "InputLayer" and len(L["inbound_nodes"]) != 1:
            bad_ref.append((L["name"], "calls"))
        if L["config"].get("data_format", "channels_last") != "channels_last":
            bad_ref.append((L["name"], "data_format"))
        shapes[L["name"]], want = infer(L["class_name"], L["config"], ins)
        seen.add(L["name"])
        grp = f["model_weights"][L["name"]]
        wn = [s(n) for n in grp.attrs["weight_names"]]
        got = [(n, grp[n].shape) for n in wn]
        exp = [("%s/%s:0" % (L["name"], r), sh) for r, sh in want]
        if got != exp:
            bad_w.append((L["name"], got, exp))
    report(not bad_ref, name + " inbound refs", str(bad_ref[:3]))
    report(not bad_w, name + " Keras weight shapes", str(bad_w[:3]))
    lnames = [s(n) for n in f["model_weights"].attrs["layer_names"]]
    report(lnames == names, name + " layer_names = config order")
    report(sorted(f["model_weights"].keys()) == sorted(names),
           name + " one group per layer")
    io = cfg["config"]
    ok = all(r[0] in seen for r in io["input_layers"] + io["output_layers"])
    report(ok and len(io["output_layers"]) == 1, name + " input/output layers")
    last = shapes[io["output_layers"][0][0]]
    report(tuple(last) == tuple(out_shape), name + " output shape",
           "%s vs %s" % (last, out_shape))
    return f, layers


def keras_from_graph(role, a, kshape):
    """The Keras layout of graph weight a, by the conventions."""
    if role == "depthwise_kernel":  # (C*M, 1, KH, KW) -> (KH, KW, C, M)
        kh, kw, c, m = kshape
        return a.reshape(c * m, kh, kw).transpose(1, 2, 0).reshape(kh, kw, c, m)
    if a.ndim == 4:  # OIHW -> HWIO
        return a.transpose(2, 3, 1, 0)
    if a.ndim == 2 and a.shape != tuple(kshape):  # (out, in) -> (in, out)
        return a.T
    return a


def check_values(name, grp_root, layers, dump):
    """Every dataset against the dumped graph const of the same name."""
    n = bad = 0
    for L in layers:
        grp = grp_root[L["name"]]
        for wn in (s(x) for x in grp.attrs["weight_names"]):
            role = wn.split("/")[-1].split(":")[0]
            npy = os.path.join(dump, "%s__%s.npy" % (L["name"], role))
            if not os.path.exists(npy):
                continue  # a folded graph's renamed consts
            want = keras_from_graph(role, np.load(npy), grp[wn].shape)
            n += 1
            if want.shape != grp[wn].shape or \
                    not np.array_equal(want, grp[wn][...]):
                bad += 1
    report(n > 0 and bad == 0, name + " weight values",
           "%d of %d differ" % (bad, n))


# --------------------------------------------------------------------------
# The file's meaning: a float64 torch interpreter of the Keras config
# (4-D tensors kept NCHW inside, channel = Keras axis -1)
# --------------------------------------------------------------------------

def same_pads(n, k, st, d=1):
    total = max((-(-n // st) - 1) * st + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def pad_same(x, k, st, d, value=0.0):
    t, b = same_pads(x.shape[2], k[0], st[0], d[0])
    l, r = same_pads(x.shape[3], k[1], st[1], d[1])
    return F.pad(x, (l, r, t, b), value=value)


def activation(x, a):
    return {"linear": lambda v: v, "relu": F.relu,
            "relu6": lambda v: v.clamp(0, 6), "sigmoid": torch.sigmoid,
            "tanh": torch.tanh, "swish": lambda v: v * torch.sigmoid(v),
            "hard_sigmoid": lambda v: (0.2 * v + 0.5).clamp(0, 1),
            "softmax": lambda v: torch.softmax(v, dim=1)}[a](x)


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def interpret_layer(cls, c, ins, w):
    x = ins[0] if ins else None
    if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        k, st = c["kernel_size"], c["strides"]
        d = c.get("dilation_rate", [1, 1])
        if c["padding"] == "same":
            x = pad_same(x, k, st, d)
        if cls == "Conv2D":
            y = F.conv2d(x, t64(w[0]).permute(3, 2, 0, 1), stride=st,
                         dilation=d, groups=c.get("groups", 1))
        else:
            kh, kw, ch, m = w[0].shape
            dk = t64(w[0]).reshape(kh, kw, ch * m).permute(2, 0, 1)[:, None]
            y = F.conv2d(x, dk, stride=st, dilation=d, groups=ch)
            if cls == "SeparableConv2D":
                y = F.conv2d(y, t64(w[1]).permute(3, 2, 0, 1))
        if c["use_bias"]:
            y = y + t64(w[-1]).reshape(1, -1, 1, 1)
        return activation(y, c["activation"])
    if cls == "BatchNormalization":
        w = list(w)
        if not c["scale"]:
            w.insert(0, np.ones_like(w[-1]))
        if not c["center"]:
            w.insert(1, np.zeros_like(w[-1]))
        g, b, mu, var = (t64(v) for v in w)
        sh = (1, -1) + (1,) * (x.dim() - 2)
        return (x - mu.reshape(sh)) / torch.sqrt(var.reshape(sh) +
                                                 c["epsilon"]) * \
            g.reshape(sh) + b.reshape(sh)
    if cls == "Activation":
        return activation(x, c["activation"])
    if cls == "ReLU":
        y = F.relu(x)
        return y if c["max_value"] is None else y.clamp(max=c["max_value"])
    if cls == "LeakyReLU":
        return F.leaky_relu(x, c["alpha"])
    if cls == "Softmax":
        return torch.softmax(x, dim=1 if c["axis"] == -1 else c["axis"])
    if cls == "Dropout":
        return x
    if cls == "ZeroPadding2D":
        (t, b), (l, r) = c["padding"]
        return F.pad(x, (l, r, t, b))
    if cls == "MaxPooling2D":
        k, st = c["pool_size"], c["strides"]
        if c["padding"] == "same":
            x = pad_same(x, k, st, [1, 1], value=-math.inf)
        return F.max_pool2d(x, k, st)
    if cls == "AveragePooling2D":
        k, st = c["pool_size"], c["strides"]
        if c["padding"] != "same":
            return F.avg_pool2d(x, k, st)
        ones = torch.ones_like(x[:, :1])
        num = F.avg_pool2d(pad_same(x, k, st, [1, 1]), k, st)
        den = F.avg_pool2d(pad_same(ones, k, st, [1, 1]), k, st)
        return num / den  # Keras 'same' averages the valid elements
    if cls == "GlobalAveragePooling2D":
        return x.mean(dim=(2, 3), keepdim=bool(c.get("keepdims")))
    if cls == "GlobalMaxPooling2D":
        return x.amax(dim=(2, 3), keepdim=bool(c.get("keepdims")))
    if cls == "Add":
        return sum(ins[1:], ins[0])
    if cls == "Multiply":
        y = ins[0]
        for v in ins[1:]:
            y = y * v
        return y
    if cls == "Concatenate":
        return torch.cat(ins, dim=1 if c["axis"] == -1 else
                         {1: 2, 2: 3, 3: 1}[c["axis"]])
    if cls == "Flatten":
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)  # Keras flattens NHWC
        return x.reshape(x.shape[0], -1)
    if cls == "Dense":
        y = x @ t64(w[0])
        if c["use_bias"]:
            y = y + t64(w[1])
        return activation(y, c["activation"])
    raise ValueError(cls)


def interpret(f, layers, x_nchw):
    vals = {}
    mw = f["model_weights"]
    for L in layers:
        cls, c = L["class_name"], L["config"]
        if cls == "InputLayer":
            vals[L["name"]] = t64(x_nchw)
            continue
        ins = [vals[r[0]] for call in L["inbound_nodes"] for r in call]
        grp = mw[L["name"]]
        w = [grp[s(n)][...] for n in grp.attrs["weight_names"]]
        vals[L["name"]] = interpret_layer(cls, c, ins, w)
    out = json.loads(s(f.attrs["model_config"]))["config"]["output_layers"]
    return vals[out[0][0]].numpy()


# --------------------------------------------------------------------------

def check_model(name, zoo, size, *extra):
    d = os.path.join(TMP, name)
    os.makedirs(d)
    path = os.path.join(d, "m.h5")
    p = tool(path, "--zoo", zoo, "--size", size, "--dump", d, "--io", d,
             "--check", *extra)
    md = float(p.stdout.split("maxdiff")[1].split()[0])
    report(md <= 1e-5, name + " dlp reloads it identically", "maxdiff %g" % md)
    x, y = np.load(os.path.join(d, "in.npy")), np.load(os.path.join(d, "out.npy"))
    f, layers = check_layout(name, path, y.shape[1:] if y.ndim == 2 else
                             (y.shape[2], y.shape[3], y.shape[1]))
    check_values(name, f["model_weights"], layers, d)
    ref = interpret(f, layers, x)
    if ref.ndim == 4:
        ref = ref  # NCHW inside, as dlp's output
    err = np.abs(ref - y).max() / max(np.abs(ref).max(), 1e-6)
    report(ref.shape == y.shape and err <= 1e-4,
           name + " the file computes the graph's output", "rel err %g" % err)
    f.close()
    return path


def check_weights_only(name, zoo, size):
    d = os.path.join(TMP, name)
    os.makedirs(d)
    path = os.path.join(d, "w.h5")
    p = tool(path, "--zoo", zoo, "--size", size, "--dump", d,
             "--weights-only", "--check")
    report("consts_equal 1" in p.stdout, name + " loads back bit for bit")
    f = h5py.File(path, "r")
    report("model_config" not in f.attrs and "model_weights" not in f,
           name + " no model in a weights file")
    names = [s(n) for n in f.attrs["layer_names"]]
    report(sorted(names) == sorted(f.keys()) and "Conv1" in names,
           name + " root layer_names")
    layers = [{"name": n} for n in names]
    check_values(name, f, layers, d)
    k = f["Conv1"]["Conv1/kernel:0"]
    report(k.shape == (3, 3, 3, 32), name + " HWIO kernel", str(k.shape))
    f.close()


def check_resave(name, src):
    """A loaded file saved again is the same Keras model (the loader's
    split layers fuse back)."""
    out = os.path.join(TMP, name + ".h5")
    p = tool(out, "--from", src, "--check")
    md = float(p.stdout.split("maxdiff")[1].split()[0])
    report(md == 0, name + " re-saved file computes the same", str(md))
    a = json.loads(s(h5py.File(src, "r").attrs["model_config"]))
    b = json.loads(s(h5py.File(out, "r").attrs["model_config"]))
    report(a["config"]["layers"] == b["config"]["layers"],
           name + " same config after load + save")
    # and an existing file is refused, then replaced on request
    p = tool(out, "--from", src, fail=True)
    report("already exists" in p.stderr, name + " refuses to overwrite")
    tool(out, "--from", src, "--overwrite")


def main():
    if not os.path.exists(TOOL):
        print("kerassave not built at " + TOOL)
        return 1
    try:
        mb = check_model("mobilenet_v2", "mobilenet_v2",
                         "48x40" if SANITIZED else "96x80")
        check_weights_only("mobilenet_v2_weights", "mobilenet_v2", "32x32")
        check_resave("mobilenet_v2_resave", mb)
        if not SANITIZED:
            # BN folded into the convs, activations fused (nn_graph_optimize)
            check_model("resnet50_folded", "resnet50", "32x40", "--optimize")
            f = h5py.File(check_model("inception_v3", "inception_v3", "75x75",
                                      "--notop"), "r")
            # BatchNormalization(scale=False) as in Keras: no gamma
            wn = f["model_weights"]["batch_normalization"].attrs["weight_names"]
            report([x.decode() for x in wn] == [
                "batch_normalization/" + r + ":0"
                for r in ("beta", "moving_mean", "moving_variance")],
                "inception_v3 BN without scale", str(wn))
            check_model("xception", "xception", "71x71")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
