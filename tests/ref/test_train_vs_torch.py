"""test_train_vs_torch.py - optimizer steps of the trainer (tests/tools/
trainrun.c) against the same steps in PyTorch: a small conv net (conv-BN-relu,
maxpool, a conv with a fused relu plus a 1x1 shortcut, global average pool,
linear) with the same initial weights, the same batches in the same order,
batch norm in training mode; after the steps the weights, the batch-norm
running statistics and every step's loss must equal PyTorch's. SGD with
momentum (and nesterov, with label smoothing), Adam with L2 weight decay,
AdamW, fine-tuning with the first layers frozen (their batch norm in
inference mode), and the trainer's own epoch loop with a partial last batch
and linear warmup then cosine annealing (torch's LR schedulers)."""
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
import torch.nn.functional as F

TOOLS = os.environ.get("DLP_TOOLS", "build/tests")
SANITIZED = os.environ.get("DLP_SANITIZED", "0") == "1"
C1, C2, K, HW = 6, 8, 5, 12
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}", file=sys.stderr)


def init_weights(rng):
    r = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)
    return {
        "conv1_w": r(C1, 3, 3, 3), "conv1_b": r(C1),
        "bn1_g": (1 + r(C1)).astype(np.float32), "bn1_b": r(C1),
        "bn1_m": r(C1), "bn1_v": (0.5 + rng.random(C1)).astype(np.float32),
        "conv2_w": r(C2, C1, 3, 3), "conv2_b": r(C2),
        "conv3_w": r(C2, C1, 1, 1),
        "fc_w": r(K, C2), "fc_b": r(K),
    }


class Net(torch.nn.Module):
    """The network of trainrun.c, written with torch modules."""

    def __init__(self, w, bn_momentum):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, C1, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(C1, eps=1e-3, momentum=bn_momentum)
        self.conv2 = torch.nn.Conv2d(C1, C2, 3, stride=2, padding=1)
        self.conv3 = torch.nn.Conv2d(C1, C2, 1, stride=2, bias=False)
        self.fc = torch.nn.Linear(C2, K)
        t = lambda k: torch.from_numpy(w[k].copy())
        with torch.no_grad():
            self.conv1.weight.copy_(t("conv1_w"))
            self.conv1.bias.copy_(t("conv1_b"))
            self.bn1.weight.copy_(t("bn1_g"))
            self.bn1.bias.copy_(t("bn1_b"))
            self.bn1.running_mean.copy_(t("bn1_m"))
            self.bn1.running_var.copy_(t("bn1_v"))
            self.conv2.weight.copy_(t("conv2_w"))
            self.conv2.bias.copy_(t("conv2_b"))
            self.conv3.weight.copy_(t("conv3_w"))
            self.fc.weight.copy_(t("fc_w"))
            self.fc.bias.copy_(t("fc_b"))

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        s = F.relu(self.conv2(h)) + self.conv3(h)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(s, 1), 1))

    def state(self):
        return {
            "conv1_w": self.conv1.weight, "conv1_b": self.conv1.bias,
            "bn1_g": self.bn1.weight, "bn1_b": self.bn1.bias,
            "bn1_m": self.bn1.running_mean, "bn1_v": self.bn1.running_var,
            "conv2_w": self.conv2.weight, "conv2_b": self.conv2.bias,
            "conv3_w": self.conv3.weight,
            "fc_w": self.fc.weight, "fc_b": self.fc.bias,
        }


def torch_run(w, x, y, order, opt, lr, mom, nesterov, wd, bn_mom, frozen,
              eps, smoothing):
    net = Net(w, bn_mom)
    net.train()
    if frozen:  # Keras fine-tuning: frozen BN uses its running statistics
        for p in list(net.conv1.parameters()) + list(net.bn1.parameters()):
            p.requires_grad_(False)
        net.bn1.eval()
    params = [p for p in net.parameters() if p.requires_grad]
    if opt == "sgd":
        o = torch.optim.SGD(params, lr=lr, momentum=mom, nesterov=nesterov,
                            weight_decay=wd)
    elif opt == "adam":
        o = torch.optim.Adam(params, lr=lr, weight_decay=wd, eps=eps)
    else:
        o = torch.optim.AdamW(params, lr=lr, weight_decay=wd, eps=eps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    for idx in order:
        ix = torch.from_numpy(idx)
        o.zero_grad()
        loss = F.cross_entropy(net(xt[ix]), yt[ix],
                               label_smoothing=smoothing)
        loss.backward()
        o.step()
        losses.append(loss.item())
    return {k: v.detach().numpy() for k, v in net.state().items()}, losses


def dlp_run(d, opt, lr, mom, nesterov, wd, bn_mom, frozen, eps, smoothing):
    cmd = [os.path.join(TOOLS, "trainrun"), d, opt, str(lr), str(mom),
           str(int(nesterov)), str(wd), str(bn_mom), "--eps", repr(eps),
           "--smoothing", repr(smoothing)]
    if frozen:
        cmd += ["--freeze-until", "relu1"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr
    out = {k: np.load(os.path.join(d, f"out_{k}.npy")) for k in KEYS}
    return out, np.load(os.path.join(d, "losses.npy"))


KEYS = ["conv1_w", "conv1_b", "bn1_g", "bn1_b", "bn1_m", "bn1_v", "conv2_w",
        "conv2_b", "conv3_w", "fc_w", "fc_b"]


def case(name, opt, lr, mom=0.0, nesterov=False, wd=0.0, bn_mom=0.1,
         frozen=False, steps=8, batch=8, seed=0, eps=1e-8, smoothing=0.0):
    rng = np.random.default_rng(seed)
    n = 40
    w = init_weights(rng)
    x = rng.standard_normal((n, 3, HW, HW)).astype(np.float32)
    y = rng.integers(0, K, n).astype(np.int64)
    # give the classes some signal so the steps move the loss
    for i in range(n):
        x[i, y[i] % 3] += 0.5 * (y[i] + 1)
    order = np.stack([rng.permutation(n)[:batch] for _ in range(steps)])
    with tempfile.TemporaryDirectory() as d:
        for k, v in w.items():
            np.save(os.path.join(d, f"{k}.npy"), v)
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "y.npy"), y)
        np.save(os.path.join(d, "order.npy"), order.astype(np.int64))
        got, got_losses = dlp_run(d, opt, lr, mom, nesterov, wd, bn_mom,
                                  frozen, eps, smoothing)
    if got is None:
        check(name, False, got_losses)
        return
    want, want_losses = torch_run(w, x, y, order, opt, lr, mom, nesterov, wd,
                                  bn_mom, frozen, eps, smoothing)
    worst_rel = 0.0
    for k in KEYS:
        a, b = got[k], want[k]
        ok = a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=2e-5)
        rel = float(np.max(np.abs(a - b) / (np.abs(b) + 1e-3)))
        worst_rel = max(worst_rel, rel)
        check(f"{name} {k}", ok, f"max abs diff {np.max(np.abs(a - b)):.3g}")
        moved = not np.array_equal(b, w[k])
        if frozen and k.startswith(("conv1", "bn1")):
            check(f"{name} {k} frozen", np.array_equal(a, w[k]))
        else:
            check(f"{name} {k} moved", moved)
    check(f"{name} losses",
          np.allclose(got_losses, want_losses, rtol=1e-4, atol=1e-6),
          f"{got_losses} vs {want_losses}")
    check(f"{name} loss fell", want_losses[-1] < want_losses[0])
    print(f"{name}: {steps} steps, worst relative weight diff {worst_rel:.2e}, "
          f"loss {want_losses[0]:.4f} -> {want_losses[-1]:.4f}")


def torch_fit(w, x, y, batch, epochs, warmup, lr, mom):
    """Epochs over x in order, SGD with momentum, linear warmup then cosine
    annealing to 0 over the remaining steps (torch's LR schedulers)."""
    net = Net(w, 0.1)
    net.train()
    o = torch.optim.SGD(net.parameters(), lr=lr, momentum=mom)
    n = len(x)
    per_epoch = -(-n // batch)
    total = per_epoch * epochs
    sched = torch.optim.lr_scheduler.SequentialLR(o, [
        torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / warmup,
                                          end_factor=1.0,
                                          total_iters=warmup - 1),
        torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total - warmup,
                                                   eta_min=0.0),
    ], milestones=[warmup])
    # SequentialLR steps its schedulers with an epoch argument, which torch
    # 1.13 warns about while using the closed form, as intended here
    warnings.filterwarnings("ignore", category=UserWarning,
                            module="torch.optim.lr_scheduler")
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    for _ in range(epochs):
        total_loss = 0.0
        for b in range(per_epoch):
            sl = slice(b * batch, min(n, (b + 1) * batch))
            o.zero_grad()
            loss = F.cross_entropy(net(xt[sl]), yt[sl])
            loss.backward()
            o.step()
            sched.step()
            total_loss += loss.item() * len(xt[sl])
        losses.append(total_loss / n)
    return {k: v.detach().numpy() for k, v in net.state().items()}, losses


def fit_case(name, epochs, warmup, batch, lr=0.05, mom=0.9, seed=5):
    """The trainer's own loop: epochs, a partial last batch, the schedule."""
    rng = np.random.default_rng(seed)
    n = 40
    w = init_weights(rng)
    x = rng.standard_normal((n, 3, HW, HW)).astype(np.float32)
    y = rng.integers(0, K, n).astype(np.int64)
    order = np.zeros((1, batch), np.int64)  # only its width is used
    with tempfile.TemporaryDirectory() as d:
        for k, v in w.items():
            np.save(os.path.join(d, f"{k}.npy"), v)
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "y.npy"), y)
        np.save(os.path.join(d, "order.npy"), order)
        cmd = [os.path.join(TOOLS, "trainrun"), d, "sgd", str(lr), str(mom),
               "0", "0", "0.1", "--fit", str(epochs), "--cosine-warmup",
               str(warmup)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            check(name, False, r.stderr)
            return
        got = {k: np.load(os.path.join(d, f"out_{k}.npy")) for k in KEYS}
        got_losses = np.load(os.path.join(d, "losses.npy"))
    want, want_losses = torch_fit(w, x, y, batch, epochs, warmup, lr, mom)
    for k in KEYS:
        check(f"{name} {k}", np.allclose(got[k], want[k], rtol=1e-4, atol=2e-5),
              f"max abs diff {np.max(np.abs(got[k] - want[k])):.3g}")
    check(f"{name} epoch losses",
          np.allclose(got_losses, want_losses, rtol=1e-4, atol=1e-6),
          f"{got_losses} vs {want_losses}")
    print(f"{name}: epoch losses {np.round(want_losses, 4)}")


def main():
    torch.manual_seed(0)
    steps = 4 if SANITIZED else 10
    case("sgd momentum", "sgd", 0.05, mom=0.9, wd=1e-3, steps=steps)
    case("sgd nesterov smoothing", "sgd", 0.05, mom=0.9, nesterov=True,
         steps=steps, seed=1, smoothing=0.1)
    case("adam weight decay", "adam", 0.01, wd=1e-2, bn_mom=0.01,
         steps=steps, seed=2)
    # conv1_b feeds a training batch norm, so its true gradient is 0 and
    # both sides hold float noise there; without L2 in the gradient, Adam's
    # normalisation would turn that noise into full steps (differently in
    # each), so AdamW runs with an eps above the noise.
    case("adamw", "adamw", 0.01, wd=0.1, steps=steps, seed=3, eps=1e-4)
    case("sgd frozen prefix", "sgd", 0.05, mom=0.9, frozen=True, steps=steps,
         seed=4)
    fit_case("fit cosine warmup", epochs=2 if SANITIZED else 3, warmup=3,
             batch=12)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
