#!/usr/bin/python3
"""train.py - training throughput, dlp vs PyTorch, side by side.

MobileNetV2 (Keras' architecture in dlp, torchvision's mobilenet_v2 with the
same width_mult in PyTorch), random weights, train mode (batch norm with
batch statistics), softmax cross-entropy over K = 18 classes on a new Dense
head, Adam lr 1e-3, the same batch, input size and thread count. Images/s of
full steps (forward, loss, backward, update) after warm-up steps, best of
--repeat rounds; in each round dlp and PyTorch run in turn, so load drifts
hit both.

  dlp      tests/tools/trainbench (nn_trainer with cfg.fast: oneDNN conv
           forward/backward, threaded batch norm and elementwise kernels)
  pytorch  torch 1.13 (Debian), mkldnn enabled, torch.set_num_threads(T)

Usage: /usr/bin/python3 bench/train.py --trainbench build/tests/trainbench
       [--alphas 0.5,1.0] [--sizes 96] [--threads 1,2] [--batch 32]
       [--steps 5] [--warmup 2] [--repeat 2]
"""
import argparse
import re
import subprocess
import time

import torch
import torchvision

CLASSES = 18


def dlp_run(tool, alpha, size, batch, threads, steps, warmup):
    name = "MobileNetV2" if alpha == 1.0 else "MobileNetV2_%g" % alpha
    cmd = [tool, name, "--size", str(size), "--batch", str(batch),
           "--threads", str(threads), "--steps", str(steps),
           "--warmup", str(warmup), "--classes", str(CLASSES)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    m = re.search(r"([0-9.]+) img/s", out.stdout)
    if not m:
        raise RuntimeError("trainbench printed: " + out.stdout + out.stderr)
    return float(m.group(1))


def torch_run(alpha, size, batch, threads, steps, warmup):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = torchvision.models.mobilenet_v2(width_mult=alpha,
                                        num_classes=CLASSES)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, CLASSES, (batch,))
    lossf = torch.nn.CrossEntropyLoss()
    m.train()

    def step():
        opt.zero_grad()
        lossf(m(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trainbench", default="build/tests/trainbench")
    ap.add_argument("--alphas", default="0.5,1.0")
    ap.add_argument("--sizes", default="96")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    print("torch %s, torchvision %s, mkldnn %s" %
          (torch.__version__, torchvision.__version__,
           torch.backends.mkldnn.is_available()))
    print("| alpha | size | batch | threads | dlp img/s | pytorch img/s "
          "| dlp / pytorch |")
    print("|---|---|---|---|---|---|---|")
    for alpha in [float(v) for v in a.alphas.split(",")]:
        for size in [int(v) for v in a.sizes.split(",")]:
            for th in [int(v) for v in a.threads.split(",")]:
                d = p = 0.0
                for _ in range(a.repeat):
                    d = max(d, dlp_run(a.trainbench, alpha, size, a.batch, th,
                                       a.steps, a.warmup))
                    p = max(p, torch_run(alpha, size, a.batch, th, a.steps,
                                         a.warmup))
                print("| %g | %d | %d | %d | %.1f | %.1f | %.2fx |" %
                      (alpha, size, a.batch, th, d, p, d / p), flush=True)


if __name__ == "__main__":
    main()
