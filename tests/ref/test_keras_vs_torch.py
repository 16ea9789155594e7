"""test_keras_vs_torch.py - the Keras HDF5 importer against PyTorch.

No Keras here: the test writes .h5 files with h5py in the exact layouts
Keras 2.x / tf.keras 2.x write (root attribute model_config = the JSON of
{"class_name", "config"}, group model_weights with attribute layer_names,
one group per layer with attribute weight_names, datasets at
model_weights/<layer>/<layer>/<weight>:0; weights-only files as the
keras-applications *_weights_tf_dim_ordering_tf_kernels.h5 ones, the same
without model_weights), with seeded random weights. The reference is the
same network written with torch.nn.functional in float64 from the same numpy
weights (HWIO -> OIHW kernels, TF 'same' padding emulated with F.pad, NHWC
input, Flatten in NHWC order). dlp runs through tests/tools/kerasrun on the
reference backend (and oneDNN after --optimize); max |dlp - torch| <=
1e-5 * max |torch|.

Covered: (a) a Sequential model: Conv2D same + BatchNormalization + ReLU +
MaxPooling2D same + DepthwiseConv2D (multiplier 2, stride 2, relu6) +
SeparableConv2D (relu) + Dropout + Reshape (to 4-D) + Conv2D 1x1 +
Flatten + Dense(softmax); (b) a
functional model with two branches (ZeroPadding2D, BN without scale,
Activation, AveragePooling2D same, LeakyReLU), Concatenate, Add, Multiply,
GlobalAveragePooling2D, Dense; (b) again with a variable-length model_config
string, float64 weights and None spatial dims given --size; (c) a
weights-only file for (b) loaded over the model's weights; --layer and
--optimize. Errors: Lambda, unknown class, channels_first, truncated file,
wrong dataset shape, missing weight, weight count mismatch, non-HDF5 file,
huge declared dims, a cycle, None input size, weights files missing a layer,
with a foreign layer, or with only extra top layers (accepted).

Run with /usr/bin/python3; env DLP_TOOLS = folder holding kerasrun.
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

TOOL = os.path.join(os.environ.get("DLP_TOOLS", "."), "kerasrun")
TMP = tempfile.mkdtemp(prefix="dlp_keras_")
RNG = np.random.default_rng(20240614)
TOL = 1e-5
passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL " + name + (" " + detail if detail else ""))


def rand(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def tmp(name):
    return os.path.join(TMP, name)


# ---------------------------------------------------------------------------
# Keras 2.x layouts
# ---------------------------------------------------------------------------

def layer(cls, name, inbound=None, **cfg):
    """A layer entry as tf.keras 2.x get_config() writes it."""
    c = {"name": name, "trainable": True, "dtype": "float32"}
    c.update(cfg)
    e = {"class_name": cls, "config": c}
    if inbound is not None:  # functional models
        e["name"] = name
        e["inbound_nodes"] = [[[n, 0, 0, {}] for n in inbound]] if inbound else []
    return e


def conv_cfg(filters, k, strides=1, padding="valid", act="linear", bias=True,
             dil=1):
    return dict(filters=filters, kernel_size=[k, k], strides=[strides, strides],
                padding=padding, data_format="channels_last",
                dilation_rate=[dil, dil], groups=1, activation=act,
                use_bias=bias,
                kernel_initializer={"class_name": "GlorotUniform",
                                    "config": {"seed": None}},
                bias_initializer={"class_name": "Zeros", "config": {}},
                kernel_regularizer=None, bias_regularizer=None,
                activity_regularizer=None, kernel_constraint=None,
                bias_constraint=None)


def bn_cfg(center=True, scale=True, eps=1e-3):
    return dict(axis=[3], momentum=0.99, epsilon=eps, center=center,
                scale=scale)


def write_layers(grp, order, weights, dtype=None):
    """save_weights_to_hdf5_group: layer_names, then per layer weight_names
    (fixed-length bytes; an empty list is an empty float array, as
    np.asarray([]) gives) and datasets <layer>/<layer>/<w>:0."""
    grp.attrs["layer_names"] = np.array([n.encode() for n in order])
    grp.attrs["backend"] = b"tensorflow"
    grp.attrs["keras_version"] = b"2.4.0"
    for n in order:
        g = grp.create_group(n)
        ws = weights.get(n, [])
        names = [("%s/%s:0" % (n, role)).encode() for role, _ in ws]
        g.attrs["weight_names"] = np.array(names) if names else np.asarray([])
        for (role, arr), wn in zip(ws, names):
            a = arr if dtype is None else arr.astype(dtype)
            d = g.create_dataset(wn.decode(), a.shape, dtype=a.dtype)
            d[()] = a


def write_model(path, cls, config, order, weights, vlen=False, dtype=None):
    mc = json.dumps({"class_name": cls, "config": config})
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.4.0"
        f.attrs["backend"] = b"tensorflow"
        # tf.keras writes bytes (a fixed-length string); h5py str is vlen.
        f.attrs["model_config"] = mc if vlen else mc.encode("utf8")
        write_layers(f.create_group("model_weights"), order, weights, dtype)


def write_weights(path, order, weights):
    with h5py.File(path, "w") as f:
        write_layers(f, order, weights)


def run(model, x, *opts, expect_fail=False):
    """Runs kerasrun; returns the output array, or the error text."""
    xin, out = tmp("x.npy"), tmp("out.npy")
    np.save(xin, np.ascontiguousarray(x, dtype=np.float32))
    if os.path.exists(out):
        os.remove(out)
    p = subprocess.run([TOOL, model, xin, out] + list(opts),
                       capture_output=True, text=True, timeout=300)
    crashed = p.returncode < 0 or "Sanitizer" in p.stderr or \
        "runtime error" in p.stderr
    if crashed:
        return None, "CRASH rc=%d %s" % (p.returncode, p.stderr[-2000:])
    if expect_fail:
        if p.returncode == 0:
            return None, "UNEXPECTED SUCCESS"
        return None, p.stderr.strip()
    if p.returncode != 0:
        return None, p.stderr.strip()
    return np.load(out), ""


def compare(name, got, ref, err=""):
    if got is None:
        report(False, name, err)
        return
    ref = ref.detach().numpy() if torch.is_tensor(ref) else ref
    if got.shape != ref.shape:
        report(False, name, "shape %s vs %s" % (got.shape, ref.shape))
        return
    scale = max(float(np.abs(ref).max()), 1e-30)
    rel = float(np.abs(got.astype(np.float64) - ref).max()) / scale
    report(rel <= TOL, name, "max rel err %.3g" % rel)


def run_variants(name, model, x, ref):
    """As loaded, after --optimize, and on oneDNN after --optimize."""
    for opts, label in (((), ""), (("--optimize",), " --optimize"),
                        (("--optimize", "--backend", "dnnl"),
                         " --optimize oneDNN")):
        got, err = run(model, x, *opts)
        compare(name + label, got, ref, err)


def expect_error(name, model, x, words, *opts):
    _, msg = run(model, x, *opts, expect_fail=True)
    ok = msg.startswith("kerasrun:") and all(w in msg for w in words)
    report(ok, name, repr(msg))


# ---------------------------------------------------------------------------
# Reference ops (float64 torch, NCHW inside)
# ---------------------------------------------------------------------------

def T(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def same_pads(size, k, s, d=1):
    """TF 'same': total = max((ceil(in/s)-1)*s + (k-1)*d + 1 - in, 0), the
    odd pixel at the end."""
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def tf_pad(x, k, s, d=1, value=0.0):
    t, b = same_pads(x.shape[2], k, s, d)
    l, r = same_pads(x.shape[3], k, s, d)
    return F.pad(x, (l, r, t, b), value=value)


def conv(x, kern, bias, s=1, padding="valid", d=1, groups=1):
    w = T(kern).permute(3, 2, 0, 1)  # HWIO -> OIHW
    if padding == "same":
        x = tf_pad(x, kern.shape[0], s, d)
    return F.conv2d(x, w, None if bias is None else T(bias), stride=s,
                    dilation=d, groups=groups)


def depthwise(x, kern, bias, s=1, padding="valid"):
    kh, kw, c, m = kern.shape
    w = T(kern).permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    if padding == "same":
        x = tf_pad(x, kh, s)
    return F.conv2d(x, w, None if bias is None else T(bias), stride=s,
                    groups=c)


def bn(x, gamma, beta, mean, var, eps):
    sh = (1, -1, 1, 1)
    return (x - T(mean).view(sh)) / torch.sqrt(T(var).view(sh) + eps) * \
        T(gamma).view(sh) + T(beta).view(sh)


def maxpool_same(x, k, s):
    return F.max_pool2d(tf_pad(x, k, s, value=-math.inf), k, s)


def avgpool_same(x, k, s):
    """Keras 'same' average: the mean of the valid elements only."""
    ones = torch.ones_like(x[:, :1])
    return F.avg_pool2d(tf_pad(x, k, s), k, s) / \
        F.avg_pool2d(tf_pad(ones, k, s), k, s)


def nhwc(x):
    return x.permute(0, 2, 3, 1)


# ---------------------------------------------------------------------------
# (a) Sequential
# ---------------------------------------------------------------------------

def model_a(hw):
    cin = 3
    w = {
        "conv2d": [("kernel", rand(3, 3, cin, 8)), ("bias", rand(8))],
        "batch_normalization": [("gamma", rand(8) + 1), ("beta", rand(8)),
                                ("moving_mean", rand(8)),
                                ("moving_variance", np.abs(rand(8)) + 0.5)],
        "depthwise_conv2d": [("depthwise_kernel", rand(3, 3, 8, 2)),
                             ("bias", rand(16))],
        "separable_conv2d": [("depthwise_kernel", rand(3, 3, 16, 1)),
                             ("pointwise_kernel", rand(1, 1, 16, 12)),
                             ("bias", rand(12))],
    }
    # spatial: hw -> pool same s2 -> dw s2 same
    p = math.ceil(math.ceil(hw / 2) / 2)
    w["conv_r"] = [("kernel", rand(1, 1, 4, 5)), ("bias", rand(5))]
    w["dense"] = [("kernel", rand(p * p * 3 * 5, 10, scale=0.1)),
                  ("bias", rand(10))]
    dwc = dict(kernel_size=[3, 3], strides=[2, 2], padding="same",
               depth_multiplier=2, data_format="channels_last",
               dilation_rate=[1, 1], activation="relu6", use_bias=True)
    spc = dict(conv_cfg(12, 3, padding="same", act="relu"), depth_multiplier=1)
    del spc["groups"]
    layers = [
        layer("InputLayer", "conv2d_input", batch_input_shape=[None, hw, hw, cin],
              sparse=False, ragged=False),
        layer("Conv2D", "conv2d", batch_input_shape=[None, hw, hw, cin],
              **conv_cfg(8, 3, padding="same")),
        layer("BatchNormalization", "batch_normalization", **bn_cfg()),
        layer("ReLU", "re_lu", max_value=None, negative_slope=0.0,
              threshold=0.0),
        layer("MaxPooling2D", "max_pooling2d", pool_size=[2, 2],
              padding="same", strides=[2, 2], data_format="channels_last"),
        layer("DepthwiseConv2D", "depthwise_conv2d", **dwc),
        layer("SeparableConv2D", "separable_conv2d", **spc),
        layer("Dropout", "dropout", rate=0.5, noise_shape=None, seed=None),
        layer("Reshape", "reshape", target_shape=[p * p, -1, 4]),
        layer("Conv2D", "conv_r", **conv_cfg(5, 1)),
        layer("Flatten", "flatten", data_format="channels_last"),
        layer("Dense", "dense", units=10, activation="softmax", use_bias=True),
    ]
    config = {"name": "sequential", "layers": layers}
    order = [l["config"]["name"] for l in layers[1:]]
    return config, order, w


def ref_a(w, x):
    y = conv(nhwc_in(x), w["conv2d"][0][1], w["conv2d"][1][1], padding="same")
    y = bn(y, *[a for _, a in w["batch_normalization"]], 1e-3)
    y = F.relu(y)
    y = maxpool_same(y, 2, 2)
    y = depthwise(y, w["depthwise_conv2d"][0][1], w["depthwise_conv2d"][1][1],
                  s=2, padding="same")
    y = torch.clamp(y, 0, 6)
    sp = w["separable_conv2d"]
    y = depthwise(y, sp[0][1], None, padding="same")
    y = conv(y, sp[1][1], sp[2][1])
    y = F.relu(y)
    y = nhwc(y).reshape(y.shape[0], -1, 3, 4).permute(0, 3, 1, 2)
    y = conv(y, w["conv_r"][0][1], w["conv_r"][1][1])
    y = nhwc(y).reshape(y.shape[0], -1)
    y = y @ T(w["dense"][0][1]) + T(w["dense"][1][1])
    return torch.softmax(y, dim=1)


def nhwc_in(x):
    return T(x).permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------
# (b) functional with branches
# ---------------------------------------------------------------------------

def model_b(hw, none_dims=False):
    w = {
        "conv_a": [("kernel", rand(3, 3, 3, 6)), ("bias", rand(6))],
        "b1_conv": [("kernel", rand(1, 1, 6, 4))],
        "b1_bn": [("beta", rand(4)), ("moving_mean", rand(4)),
                  ("moving_variance", np.abs(rand(4)) + 0.5)],
        "b2_conv": [("kernel", rand(3, 3, 6, 4)), ("bias", rand(4))],
        "proj": [("kernel", rand(1, 1, 8, 8)), ("bias", rand(8))],
        "logits": [("kernel", rand(8, 5)), ("bias", rand(5))],
    }
    dim = None if none_dims else hw
    L = [
        layer("InputLayer", "input_1", [], batch_input_shape=[None, dim, dim, 3],
              sparse=False, ragged=False),
        layer("Conv2D", "conv_a", ["input_1"],
              **conv_cfg(6, 3, strides=2, padding="same", act="relu")),
        layer("Conv2D", "b1_conv", ["conv_a"], **conv_cfg(4, 1, bias=False)),
        layer("BatchNormalization", "b1_bn", ["b1_conv"],
              **bn_cfg(scale=False, eps=1e-3)),
        layer("Activation", "b1_act", ["b1_bn"], activation="relu"),
        layer("ZeroPadding2D", "b2_pad", ["conv_a"], padding=[[1, 1], [1, 1]],
              data_format="channels_last"),
        layer("Conv2D", "b2_conv", ["b2_pad"], **conv_cfg(4, 3)),
        layer("AveragePooling2D", "b2_pool", ["b2_conv"], pool_size=[3, 3],
              padding="same", strides=[2, 2], data_format="channels_last"),
        layer("LeakyReLU", "b2_leaky", ["b2_pool"], alpha=0.1),
        layer("MaxPooling2D", "b1_pool", ["b1_act"], pool_size=[3, 3],
              padding="same", strides=[2, 2], data_format="channels_last"),
        layer("Concatenate", "concat", ["b1_pool", "b2_leaky"], axis=-1),
        layer("Conv2D", "proj", ["concat"], **conv_cfg(8, 1, act="tanh")),
        layer("Add", "add", ["concat", "proj"]),
        layer("Multiply", "mul", ["add", "concat"]),
        layer("GlobalAveragePooling2D", "gap", ["mul"],
              data_format="channels_last", keepdims=False),
        layer("Dense", "logits", ["gap"], units=5, activation="linear",
              use_bias=True),
    ]
    config = {"name": "model", "layers": L,
              "input_layers": [["input_1", 0, 0]],
              "output_layers": [["logits", 0, 0]]}
    order = [l["name"] for l in L]
    return config, order, w


def ref_b(w, x, upto=None):
    xa = nhwc_in(x)
    a = F.relu(conv(xa, w["conv_a"][0][1], w["conv_a"][1][1], s=2,
                    padding="same"))
    b1 = conv(a, w["b1_conv"][0][1], None)
    beta, mean, var = [v for _, v in w["b1_bn"]]
    b1 = F.relu(bn(b1, np.ones(4), beta, mean, var, 1e-3))
    b1 = maxpool_same(b1, 3, 2)
    b2 = F.pad(a, (1, 1, 1, 1))
    b2 = conv(b2, w["b2_conv"][0][1], w["b2_conv"][1][1])
    b2 = F.leaky_relu(avgpool_same(b2, 3, 2), 0.1)
    c = torch.cat([b1, b2], dim=1)
    if upto == "concat":
        return nhwc(c)
    p = torch.tanh(conv(c, w["proj"][0][1], w["proj"][1][1]))
    y = (c + p) * c
    y = y.mean(dim=(2, 3))
    return y @ T(w["logits"][0][1]) + T(w["logits"][1][1])


def fresh_weights(w):
    return {k: [(r, rand(*a.shape) + (1.0 if r == "moving_variance" else 0.0))
                for r, a in v] for k, v in w.items()}


def main():
    if not os.path.exists(TOOL):
        print("kerasrun not built at " + TOOL)
        return 1
    small = os.environ.get("DLP_SANITIZED") == "1"
    n = 2

    # (a) Sequential, odd size so 'same' pads are asymmetric.
    hw = 11 if small else 15
    cfg, order, w = model_a(hw)
    pa = tmp("seq.h5")
    write_model(pa, "Sequential", cfg, order, w)
    x = rand(n, hw, hw, 3, scale=1.0)
    run_variants("sequential", pa, x, ref_a(w, x))

    # (b) functional, fixed-length config, float32 weights.
    hw = 13 if small else 17
    cfg_b, order_b, wb = model_b(hw)
    pb = tmp("func.h5")
    write_model(pb, "Functional", cfg_b, order_b, wb)
    x = rand(n, hw, hw, 3, scale=1.0)
    run_variants("functional", pb, x, ref_b(wb, x))
    got, err = run(pb, x, "--layer", "concat")
    compare("functional --layer concat", got, ref_b(wb, x, upto="concat"), err)

    # (b) with a vlen config string, float64 weights, None dims + --size,
    # and the old "Model" class name.
    cfg_n, order_n, _ = model_b(hw, none_dims=True)
    pn = tmp("func_none.h5")
    write_model(pn, "Model", cfg_n, order_n, wb, vlen=True, dtype=np.float64)
    got, err = run(pn, x, "--size", "%dx%d" % (hw, hw))
    compare("functional vlen/float64/None dims --size", got, ref_b(wb, x), err)
    expect_error("None dims without a size", pn, x, ["input_1", "input size"])

    # (c) weights-only file for (b), loaded over the model's weights.
    wc = fresh_weights(wb)
    pc = tmp("func_weights.h5")
    write_weights(pc, order_b, wc)
    got, err = run(pb, x, "--weights", pc)
    compare("weights-only file", got, ref_b(wc, x), err)
    pfc = tmp("func_c.h5")
    write_model(pfc, "Functional", cfg_b, order_b, wc)
    got, err = run(pb, x, "--weights", pfc)
    compare("full-model file as a weights source", got, ref_b(wc, x), err)
    # Official keras-applications files come from Keras 2.0, whose auto
    # names count from 1 (conv2d_1 ..), while tf.keras (the zoo) counts from
    # 0 (conv2d, conv2d_1 ..): the same weights must load by number within
    # each auto-name base, not by the colliding names.
    tf_names = {"conv_a": "conv2d", "b1_conv": "conv2d_1", "b2_conv": "conv2d_2",
                "proj": "conv2d_3", "b1_bn": "batch_normalization",
                "logits": "dense"}
    k2_names = {"conv_a": "conv2d_1", "b1_conv": "conv2d_2", "b2_conv": "conv2d_3",
                "proj": "conv2d_4", "b1_bn": "batch_normalization_1",
                "logits": "dense_1"}

    def renamed(names):
        text = json.dumps(cfg_b)
        for old, new in names.items():
            text = text.replace('"%s"' % old, '"%s"' % new)
        return (json.loads(text), [names.get(o, o) for o in order_b],
                lambda w: {names.get(k, k): v for k, v in w.items()})
    cfg_t, order_t, ren_t = renamed(tf_names)
    _, order_k, ren_k = renamed(k2_names)
    pt = tmp("func_tfnames.h5")
    write_model(pt, "Functional", cfg_t, order_t, ren_t(wb))
    pk = tmp("weights_keras20.h5")
    write_weights(pk, order_k, ren_k(wc))
    got, err = run(pt, x, "--weights", pk)
    compare("Keras 2.0 auto names (conv2d_1..) into tf.keras names (conv2d..)",
            got, ref_b(wc, x), err)
    p = subprocess.run([TOOL, "--names", pc], capture_output=True, text=True)
    report(p.returncode == 0 and p.stdout.split() == order_b, "layer names",
           p.stdout + p.stderr)
    # a _notop-like file (no classifier) into the model with its top
    pnt = tmp("notop.h5")
    write_weights(pnt, [o for o in order_b if o != "logits"],
                  {k: v for k, v in wc.items() if k != "logits"})
    expect_error("notop weights into a model with top", pb, x,
                 ["logits", "not in the file"], "--weights", pnt)
    # extra top layers in the file (a with-top file) are accepted
    pxt = tmp("extratop.h5")
    wx = dict(wc)
    wx["predictions"] = [("kernel", rand(5, 7)), ("bias", rand(7))]
    write_weights(pxt, order_b + ["predictions"], wx)
    got, err = run(pb, x, "--weights", pxt)
    compare("weights with extra top layer", got, ref_b(wc, x), err)
    # an extra conv layer: weights for another architecture
    pxc = tmp("extraconv.h5")
    wx = dict(wc)
    wx["other_conv"] = [("kernel", rand(3, 3, 3, 4)), ("bias", rand(4))]
    write_weights(pxc, order_b + ["other_conv"], wx)
    expect_error("weights with a foreign conv layer", pb, x,
                 ["other_conv", "does not have"], "--weights", pxc)
    # wrong shape in a weights file
    pws = tmp("wshape.h5")
    wx = dict(wc)
    wx["proj"] = [("kernel", rand(1, 1, 8, 9)), ("bias", rand(8))]
    write_weights(pws, order_b, wx)
    expect_error("weights file wrong shape", pb, x,
                 ["proj", "kernel", "1x1x8x9", "1x1x8x8"], "--weights", pws)

    # ---- errors ----
    xs = rand(1, 8, 8, 3)
    base = [layer("InputLayer", "inp", [], batch_input_shape=[None, 8, 8, 3])]

    def func(path, layers, out, weights=None):
        cfg = {"name": "m", "layers": base + layers,
               "input_layers": [["inp", 0, 0]], "output_layers": [[out, 0, 0]]}
        write_model(path, "Functional", cfg,
                    [l["name"] for l in base + layers], weights or {})

    func(tmp("lambda.h5"), [layer("Lambda", "my_lambda", ["inp"],
                                  function=["4wEAAAAA", None, None],
                                  function_type="lambda")], "my_lambda")
    expect_error("Lambda refused", tmp("lambda.h5"), xs,
                 ["my_lambda", "Lambda", "never runs code"])
    func(tmp("tfop.h5"), [layer("TFOpLambda", "tf.math.add", ["inp"],
                                function="math.add")], "tf.math.add")
    expect_error("TFOpLambda refused", tmp("tfop.h5"), xs,
                 ["tf.math.add", "TFOpLambda", "never runs code"])
    func(tmp("unknown.h5"), [layer("FancyLayer", "fancy", ["inp"])], "fancy")
    expect_error("unknown class", tmp("unknown.h5"), xs, ["fancy", "FancyLayer"])
    cf = conv_cfg(4, 3)
    cf["data_format"] = "channels_first"
    func(tmp("cfirst.h5"), [layer("Conv2D", "c", ["inp"], **cf)], "c",
         {"c": [("kernel", rand(3, 3, 3, 4)), ("bias", rand(4))]})
    expect_error("channels_first", tmp("cfirst.h5"), xs, ["'c'", "channels_first"])
    func(tmp("cycle.h5"), [
        layer("Add", "p", ["inp", "q"]), layer("Add", "q", ["p", "inp"])], "q")
    expect_error("cycle", tmp("cycle.h5"), xs, ["'q'", "cycle"])
    func(tmp("huge.h5"), [layer("Flatten", "f", ["inp"]),
                          layer("Dense", "d", ["f"], units=1 << 30,
                                activation="linear", use_bias=True)], "d",
         {"d": [("kernel", rand(192, 4)), ("bias", rand(4))]})
    expect_error("huge declared units", tmp("huge.h5"), xs,
                 ["'d'", "kernel", "192x4"])
    cfg_h = {"name": "m", "layers": [layer("InputLayer", "inp", [],
             batch_input_shape=[None, 1 << 20, 1 << 20, 3]),
             layer("Conv2D", "c", ["inp"], **conv_cfg(4, 3))],
             "input_layers": [["inp", 0, 0]], "output_layers": [["c", 0, 0]]}
    write_model(tmp("hugein.h5"), "Functional", cfg_h, ["inp", "c"], {})
    expect_error("huge input dims", tmp("hugein.h5"), xs, ["inp", "too large"])

    # corrupted copies of (a)
    cfg, order, w = model_a(8)
    good = tmp("seq8.h5")
    write_model(good, "Sequential", cfg, order, w)
    data = open(good, "rb").read()
    for frac in (0.3, 0.7, 0.95):
        tr = tmp("trunc.h5")
        open(tr, "wb").write(data[:int(len(data) * frac)])
        _, msg = run(tr, xs, expect_fail=True)
        report(msg.startswith("kerasrun:") and "trunc.h5" in msg,
               "truncated %.2f" % frac, repr(msg))
    w2 = dict(w)
    w2["conv2d"] = [("kernel", rand(3, 3, 3, 9)), ("bias", rand(8))]
    write_model(tmp("shape.h5"), "Sequential", cfg, order, w2)
    expect_error("wrong dataset shape", tmp("shape.h5"), xs,
                 ["conv2d", "kernel", "3x3x3x9", "3x3x3x8"])
    write_model(tmp("missing.h5"), "Sequential", cfg, order, w)
    with h5py.File(tmp("missing.h5"), "a") as f:
        del f["model_weights/dense/dense/bias:0"]
    expect_error("missing weight dataset", tmp("missing.h5"), xs,
                 ["dense", "bias", "missing"])
    w3 = dict(w)
    w3["dense"] = w["dense"][:1]
    write_model(tmp("count.h5"), "Sequential", cfg, order, w3)
    expect_error("weight count mismatch", tmp("count.h5"), xs,
                 ["dense", "1 weights", "needs 2"])
    with open(tmp("junk.h5"), "wb") as f:
        f.write(b"this is not an HDF5 file" * 10)
    expect_error("not HDF5", tmp("junk.h5"), xs, ["not an HDF5 file"])
    expect_error("weights-only file as a model", pc, xs, ["weights-only"])
    with h5py.File(tmp("badjson.h5"), "w") as f:
        f.attrs["model_config"] = b"{not json"
        f.create_group("model_weights")
    expect_error("bad JSON", tmp("badjson.h5"), xs, ["JSON"])

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
