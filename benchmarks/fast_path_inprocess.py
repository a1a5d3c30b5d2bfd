"""The single-group fast path, old and new trainer in ONE process, alternating (steadier than separate runs on
a shared machine): the old source tree is imported under another name (a copy of its aekit package named
aekit_old), both build the same 784-512-256-32 MLP autoencoder from the same seed, and each round times
`fit` of both on the same MNIST-sized random data (rows x 784, batch 128), one thread.

    python benchmarks/fast_path_inprocess.py OLD_SRC [--rows 20000] [--epochs 1] [--rounds 5]

Prints per-round wall and CPU seconds of each fit call and their medians (new / old).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("old_src")
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--old-label", default=None, help="what the old tree is, for the table (default: its path)")
    p.add_argument("--overhead", action="store_true", help="a 16-8-2 network, so the trainer's per-step Python overhead "
                                                       "dominates the step (reported in microseconds per step)")
    p.add_argument("--out", default=None, help="results name under benchmarks/results/ (e.g. fast_path); "
                                               "fewer than 4 rounds count as a smoke run and write to scratch")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(Path(a.old_src) / "aekit", tmp / "aekit_old")
    sys.path.insert(0, str(tmp))
    import torch

    torch.set_num_threads(1)
    new = importlib.import_module("aekit")
    old = importlib.import_module("aekit_old")
    assert Path(new.__file__).resolve() != Path(old.__file__).resolve()
    width, hidden, latent = (16, [8], 2) if a.overhead else (784, [512, 256], 32)
    x = torch.rand(a.rows, width, generator=torch.Generator().manual_seed(0))
    steps = -(-a.rows // 128) * a.epochs
    wall: dict[str, list[float]] = {"old": [], "new": []}
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    losses = {}
    for i in range(a.rounds):
        order = (("old", old), ("new", new)) if i % 2 == 0 else (("new", new), ("old", old))
        for name, pkg in order:
            model = pkg.build("ae", input_shape=(width,), hidden=hidden, latent_dim=latent, seed=0)
            c, w = time.process_time(), time.perf_counter()
            r = pkg.fit(model, x, epochs=a.epochs, batch_size=128, progress=False, device="cpu",
                        checkpoint_every=None, warmup_steps=10)
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
            losses[name] = r.history[-1]["train_loss"]
            print(f"round {i + 1} {name}: {wall[name][-1]:.3f} s wall, {cpu[name][-1]:.3f} s cpu", flush=True)
    mw = {k: statistics.median(v) for k, v in wall.items()}
    mc = {k: statistics.median(v) for k, v in cpu.items()}
    result = {"median_wall": mw, "wall_new_over_old": mw["new"] / mw["old"], "median_cpu": mc,
              "cpu_new_over_old": mc["new"] / mc["old"], "final_loss": losses, "rows": a.rows,
              "network": f"{width}-{'-'.join(map(str, hidden))}-{latent}", "steps_per_fit": steps,
              "median_cpu_us_per_step": {k: v / steps * 1e6 for k, v in mc.items()},
              "epochs": a.epochs, "rounds": a.rounds, "old": a.old_label or str(a.old_src), "wall": wall, "cpu": cpu}
    print(json.dumps({k: result[k] for k in ("median_wall", "wall_new_over_old", "median_cpu", "cpu_new_over_old")}))
    if a.out:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from common import write_results

        table = "\n".join([
            "| network | rounds | median CPU s old | median CPU s new | CPU new/old | us/step old | us/step new | wall new/old |",
            "|---|---|---|---|---|---|---|---|",
            f"| {result['network']} | {a.rounds} | {mc['old']:.3f} | {mc['new']:.3f} | {mc['new'] / mc['old']:.3f} | "
            f"{result['median_cpu_us_per_step']['old']:.1f} | {result['median_cpu_us_per_step']['new']:.1f} | "
            f"{mw['new'] / mw['old']:.3f} |"])
        title = (f"Single-group fast path, this tree vs {a.old_label or a.old_src} in one process, alternating "
                 f"({result['network']}, 1 thread)")
        print("wrote", write_results(a.out, {**result, "title": title, "table": table, "threads": 1,
                                             "loadavg_1m_at_end": os.getloadavg()[0]}, quick=a.rounds < 4))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
