"""Epochs-to-target sweep behind the aekit-tuned settings of benchmarks/train_throughput.py.

    python benchmarks/train_throughput_sweep.py --device cuda --workers 14      # ~5 min on one GPU
    python benchmarks/train_throughput_sweep.py --device cpu --workers 2 --grid small

Scored on VALIDATION only: each run trains on the first 50,000 MNIST training images and is
scored after each epoch on the last 10,000 (squared error per image); the test set is never
read. (An earlier version scored the test set; its results file was withdrawn.)

Convergence per epoch depends on the hyperparameters, not on the hardware, so the grid can run wherever it is fastest (many
processes on one GPU; fp32 matmuls with TF32 off). Each run trains the 784-512-256-32 MLP AE
with aekit's loop semantics: per-epoch randperm from a seeded generator, index_select batches,
loss 0.5 * SSE / B (aekit's Gaussian NLL with sigma=1 minus its constant; "mean" = nn.MSELoss,
the tutorial loop), torch.optim.Adam, and aekit.training.trainer.make_schedule for the schedule.
Results: benchmarks/results/train_throughput_sweep.json (one row per run, its validation SE curve).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VAL_N = 10_000  # last training images: the validation split


def grid(name: str) -> list[dict]:
    g = []
    if name in ("full", "small"):
        for s in ([0, 1, 2] if name == "full" else [0]):
            g.append({"name": "tutorial", "loss": "mean", "batch_size": 128, "lr": 1e-3, "epochs": 80,
                      "stop_at": 5.0, "seed": s})
        g.append({"name": "aekit-default", "batch_size": 128, "lr": 1e-3, "epochs": 60, "stop_at": 5.0})
    if name == "full":
        for e in [6, 9, 12, 16, 20]:
            for b in [128, 256, 512]:
                for lr in [1e-3, 2e-3, 4e-3, 8e-3]:
                    for s in ["cosine", "onecycle"]:
                        g.append({"batch_size": b, "lr": lr * {128: 1, 256: 1.5, 512: 2}[b], "epochs": e, "schedule": s,
                                  "warmup_steps": 200 if s == "cosine" else 0})
        for b in [64, 96, 128, 192]:
            for lr in [3e-3, 4e-3, 5e-3, 6e-3]:
                for e in [12, 14, 16, 18]:
                    g.append({"batch_size": b, "lr": lr, "epochs": e, "schedule": "cosine", "warmup_steps": 200})
        for e in [12, 14, 16]:
            g.append({"batch_size": 128, "lr": 4e-3, "epochs": e, "schedule": "cosine", "warmup_steps": 200,
                      "betas": [0.9, 0.99]})
        for w in [0, 500, 1000]:
            g.append({"batch_size": 128, "lr": 4e-3, "epochs": 16, "schedule": "cosine", "warmup_steps": w})
        for s in [1, 2]:
            for e in [12, 14, 16]:
                for lr in [4e-3, 5e-3]:
                    g.append({"batch_size": 128, "lr": lr, "epochs": e, "schedule": "cosine", "warmup_steps": 200, "seed": s})
    else:  # small
        for e in [14, 16]:
            g.append({"batch_size": 128, "lr": 4e-3, "epochs": e, "schedule": "cosine", "warmup_steps": 200})
            g.append({"batch_size": 128, "lr": 4e-3, "epochs": e, "schedule": "cosine", "warmup_steps": 200,
                      "betas": [0.9, 0.99]})
    return g


def run(cfg, dev, xtr, xva):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from aekit.training.trainer import TrainConfig, make_schedule

    torch.manual_seed(cfg.get("seed", 0))
    m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 32),
                      nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784)).to(dev)
    b, e = cfg["batch_size"], cfg["epochs"]
    tc = TrainConfig(epochs=e, batch_size=b, lr=cfg["lr"], schedule=cfg.get("schedule", "none"),
                     warmup_steps=cfg.get("warmup_steps", 0))
    opt = torch.optim.Adam(m.parameters(), lr=tc.lr, betas=tuple(cfg.get("betas", (0.9, 0.999))))
    n = xtr.shape[0]
    sch = make_schedule(opt, tc, math.ceil(n / b) * e)
    g = torch.Generator().manual_seed(cfg.get("seed", 0))
    curve = []
    for _ in range(e):
        perm = torch.randperm(n, generator=g).to(dev)
        for i in range(0, n, b):
            xb = xtr.index_select(0, perm[i:i + b])
            out = m(xb)
            if cfg.get("loss", "sse_half") == "mean":
                loss = F.mse_loss(out, xb)
            else:
                loss = F.mse_loss(out, xb, reduction="sum") * (0.5 / xb.shape[0])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sch is not None:
                sch.step()
        with torch.no_grad():
            m.eval()
            se = float(((m(xva) - xva) ** 2).sum()) / xva.shape[0]
            m.train()
        curve.append(round(se, 4))
        if cfg.get("stop_at") and se <= cfg["stop_at"]:
            break
    return curve


def worker(args):
    cfgs, dev_name, data_dir = args
    import torch

    from aekit.data import load_data

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.set_num_threads(1)
    ds = load_data("mnist", data_dir=data_dir, val_fraction=0.0)
    dev = torch.device(dev_name)
    x = ds.train.reshape(-1, 784)
    xtr, xva = x[:-VAL_N].to(dev), x[-VAL_N:].to(dev)  # the test split is not used
    res = []
    for cfg in cfgs:
        t = time.time()
        res.append({"cfg": cfg, "curve": run(cfg, dev, xtr, xva), "s": round(time.time() - t, 1)})
        print(json.dumps(res[-1]), flush=True)
    return res


def epochs_to(curve, target):
    return next((i + 1 for i, v in enumerate(curve) if v <= target), None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--grid", default="full", choices=["full", "small"])
    p.add_argument("--target", type=float, default=5.0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/train_throughput_sweep.json)")
    a = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import results_path

    a.out = a.out or str(results_path("train_throughput_sweep"))
    sys.path.insert(0, str(ROOT / "src"))
    data_dir = a.data_dir or os.environ.get("AEKIT_MNIST_DIR") or str(ROOT.parent / "shared" / "data" / "mnist")
    import multiprocessing as mp

    g = grid(a.grid)
    chunks = [g[i::a.workers] for i in range(a.workers)]
    t0 = time.time()
    with mp.get_context("spawn").Pool(a.workers) as pool:
        out = [r for rs in pool.map(worker, [(c, a.device, data_dir) for c in chunks if c]) for r in rs]
    for r in out:
        r["epochs_to_target"] = epochs_to(r["curve"], a.target)
    import torch

    info = {"command": " ".join([sys.executable, *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "device": torch.cuda.get_device_name(0) if a.device.startswith("cuda") else a.device,
            "torch": torch.__version__, "scored_on": f"validation: last {VAL_N} training images", "target_val_se": a.target, "wall_s": round(time.time() - t0, 1), "runs": out}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(info, indent=1) + "\n")
    best = sorted((r for r in out if r["epochs_to_target"]), key=lambda r: (r["epochs_to_target"], r["curve"][-1]))
    for r in best[:10]:
        print(r["epochs_to_target"], r["curve"][-1], r["cfg"])
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
