#!/usr/bin/python3
"""nn_models.py - network benchmark: dlp (bench_nn, oneDNN backend) vs PyTorch
(TorchScript + optimize_for_inference) vs ONNX Runtime (node, ort_run.js) vs
OpenCV DNN on torchvision inception_v3 / resnet50 / vgg16 / mobilenet_v2 with
random weights, exported to ONNX here. Run with Debian's /usr/bin/python3:

  BENCH_NN=build/bench/bench_nn /usr/bin/python3 bench/nn_models.py \
      [--models resnet50,...] [--threads 1,2] [--batches 1,16] [--iters N]

Prints a Markdown table (img/s) and the max relative error of dlp's logits
against PyTorch's on the same input."""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {"inception_v3": 299, "resnet50": 224, "vgg16": 224, "mobilenet_v2": 224}


def build(name):
    kw = {"weights": None}
    if name == "inception_v3":
        kw.update(aux_logits=False, init_weights=True)
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(**kw).eval()


def export(model, name, path):
    hw = SIZES[name]
    x = torch.randn(1, 3, hw, hw)
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})


def t_torch(model, hw, b, t, iters):
    torch.set_num_threads(t)
    x = torch.randn(b, 3, hw, hw)
    with torch.no_grad():
        m = torch.jit.optimize_for_inference(torch.jit.script(model))
        m(x)
        m(x)
        t0 = time.perf_counter()
        for _ in range(iters):
            m(x)
        return b * iters / (time.perf_counter() - t0)


def t_dlp(path, b, t, iters, extra=()):
    out = subprocess.run([os.environ.get("BENCH_NN", "build/bench/bench_nn"),
                          path, "--batch", str(b), "--threads", str(t),
                          "--iters", str(iters), *extra],
                         capture_output=True, text=True)
    if out.returncode:
        return None, out.stderr.strip()
    return json.loads(out.stdout)["ips"], ""


def t_ort(path, hw, b, t, iters):
    js = os.path.join(HERE, "ort_run.js")
    if not os.path.isdir(os.path.join(HERE, "ort", "node_modules")):
        return None, "onnxruntime-node not installed in bench/ort"
    out = subprocess.run(["node", js, path, str(b), str(t), str(iters)],
                         capture_output=True, text=True,
                         env=dict(os.environ, BENCH_HW=str(hw)))
    if out.returncode:
        return None, out.stderr.strip()
    r = json.loads(out.stdout)
    return r["ips"], r["version"]


def t_cv(path, hw, b, t, iters):
    import cv2
    cv2.setNumThreads(t)
    net = cv2.dnn.readNetFromONNX(path)
    x = np.random.rand(b, 3, hw, hw).astype(np.float32)
    net.setInput(x)
    net.forward()
    t0 = time.perf_counter()
    for _ in range(iters):
        net.setInput(x)
        net.forward()
    return b * iters / (time.perf_counter() - t0)


def numerics(model, path, hw, tmp, extra=()):
    """dlp vs PyTorch eager on 2 random images: max |d| / max |torch|."""
    x = torch.rand(2, 3, hw, hw) * 2 - 1
    with torch.no_grad():
        ref = model(x).numpy()
    inp = os.path.join(tmp, "in.f32")
    outp = os.path.join(tmp, "out.f32")
    x.permute(0, 2, 3, 1).contiguous().numpy().tofile(inp)  # NHWC for dlp
    _, err = t_dlp(path, 2, 2, 1, ("--input", inp, "--output", outp, *extra))
    if err:
        return None
    got = np.fromfile(outp, dtype=np.float32).reshape(ref.shape)
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="inception_v3,resnet50,vgg16,mobilenet_v2")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dlp-bench-")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print("| model | threads | batch | dlp img/s | dlp bf16 img/s | PyTorch img/s "
          "| ORT img/s | OpenCV img/s | dlp/PyTorch | dlp/ORT | bf16/ORT |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    errs, errs16 = {}, {}
    for name in a.models.split(","):
        model = build(name)
        hw = SIZES[name]
        path = os.path.join(tmp, name + ".onnx")
        export(model, name, path)
        errs[name] = numerics(model, path, hw, tmp)
        errs16[name] = numerics(model, path, hw, tmp, ("--precision", "bf16"))
        for t in map(int, a.threads.split(",")):
            for b in map(int, a.batches.split(",")):
                it = max(1, a.iters if b > 1 else a.iters * 4)
                d, derr = t_dlp(path, b, t, it)
                d16, _ = t_dlp(path, b, t, it, ("--precision", "bf16"))
                p = t_torch(model, hw, b, t, it)
                o, over = t_ort(path, hw, b, t, it)
                try:
                    c = t_cv(path, hw, b, t, it)
                except Exception as e:  # OpenCV may refuse an op
                    c = None
                f = lambda v: f"{v:.1f}" if v else "-"
                r = lambda u, v: f"{u / v:.2f}" if u and v else "-"
                print(f"| {name} | {t} | {b} | {f(d)} | {f(d16)} | {f(p)} | {f(o)} "
                      f"| {f(c)} | {r(d, p)} | {r(d, o)} | {r(d16, o)} |",
                      flush=True)
                if derr:
                    print(f"dlp error: {derr}", file=sys.stderr)
    print()
    for name, e in errs.items():
        e16 = errs16[name]
        print(f"- {name}: dlp vs PyTorch max rel error "
              f"{'failed' if e is None else f'{e:.2e}'} (fp32), "
              f"{'failed' if e16 is None else f'{e16:.2e}'} (bf16)")


if __name__ == "__main__":
    main()
