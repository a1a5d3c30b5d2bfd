"""Shared helpers for the benchmark scripts: data location, machine facts, results files, tables."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# Smoke runs (--quick / --smoke) write here, never into RESULTS: a smoke run's numbers are not results.
SMOKE = Path(os.environ.get("AEKIT_BENCH_SMOKE_DIR") or Path(tempfile.gettempdir()) / "aekit-bench-smoke")
SMOKE_FLAGS = ("--quick", "--smoke")


def is_smoke(argv: list[str] | None = None) -> bool:
    """True when the command line asks for a smoke run (--quick or --smoke)."""
    return any(a in SMOKE_FLAGS for a in (sys.argv[1:] if argv is None else argv))


def is_published(path: Path) -> bool:
    """True when `path` lies in benchmarks/results/, where only full runs may write."""
    try:
        Path(path).resolve().relative_to(RESULTS.resolve())
        return True
    except ValueError:
        return False


def results_path(name: str, quick: bool | None = None) -> Path:
    """benchmarks/results/NAME.json for a full run; the smoke folder for a smoke run (default: read argv)."""
    return (SMOKE if (is_smoke() if quick is None else quick) else RESULTS) / f"{name}.json"


def mnist_dir(arg: str | None = None) -> str:
    return arg or os.environ.get("AEKIT_MNIST_DIR") or str(ROOT.parent / "shared" / "data" / "mnist")


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}


def write_results(name: str, payload: dict, quick: bool | None = None) -> Path:
    """Write NAME.json with the command, date and machine; a smoke run goes to SMOKE, never to RESULTS."""
    path = results_path(name, quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": "python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute() else sys.argv[0], *sys.argv[1:]]),
               "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def markdown(rows: list[dict], columns: list[str]) -> str:
    from aekit.cli.parser import markdown_table

    return markdown_table(rows, columns)


def train_mnist_classifier(x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int = 0) -> torch.nn.Module:
    """The fixed MNIST classifier the benchmarks score with: mlp 784-256-10 (ReLU), Adam 1e-3, batch 128, seeded
    (initial weights by torch.manual_seed(seed), shuffling by its own generator); returned in eval mode."""
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], 128):
            idx = perm[i:i + 128]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def add_family_options(p) -> None:
    """The training and scoring options the family benchmarks share (family.py, family_anchors.py): MNIST folder,
    epochs, batch size, learning rate, training images, IWAE samples and images for the test NLL."""
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-size", type=int, default=60000)
    p.add_argument("--iwae-k", type=int, default=100)
    p.add_argument("--nll-images", type=int, default=2000)
