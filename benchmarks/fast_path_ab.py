"""Side-by-side timing of the single-group fast path: `aekit.fit` of the 784-512-256-32 MLP autoencoder on
MNIST-sized random data (in-memory tensor, index slices), for two source trees, alternating runs, one thread.

    python benchmarks/fast_path_ab.py OLD_SRC NEW_SRC [--rows 20000] [--epochs 2] [--rounds 3]

Each run is a fresh process (PYTHONPATH=SRC, OMP_NUM_THREADS=1); it reports the trainer's own epoch time
(TrainResult.seconds: the training loop, not the import or the build) and the CPU seconds of the fit call
(process time: steadier than wall time on a shared machine). Prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

RUN = r"""
import json, sys, time, torch, aekit
torch.set_num_threads(1)
rows, epochs = int(sys.argv[1]), int(sys.argv[2])
x = torch.rand(rows, 784, generator=torch.Generator().manual_seed(0))
model = aekit.build("ae", input_shape=(784,), hidden=[512, 256], latent_dim=32, seed=0)
cpu = time.process_time()
r = aekit.fit(model, x, epochs=epochs, batch_size=128, progress=False, device="cpu", checkpoint_every=None)
cpu = time.process_time() - cpu
print(json.dumps({"seconds": r.seconds, "cpu": cpu, "loss": r.history[-1]["train_loss"]}))
"""


def run(src: str, rows: int, epochs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", RUN, str(rows), str(epochs)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    times: dict[str, list[float]] = {"old": [], "new": []}
    cpus: dict[str, list[float]] = {"old": [], "new": []}
    for i in range(a.rounds):
        for name, src in (("old", a.old), ("new", a.new)) if i % 2 == 0 else (("new", a.new), ("old", a.old)):
            r = run(src, a.rows, a.epochs)
            times[name].append(r["seconds"])
            cpus[name].append(r["cpu"])
            print(f"round {i + 1} {name}: {r['seconds']:.3f} s wall, {r['cpu']:.3f} s cpu "
                  f"(final train loss {r['loss']:.6g})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    cmed = {k: statistics.median(v) for k, v in cpus.items()}
    print(json.dumps({"median_wall": med, "wall_new_over_old": med["new"] / med["old"], "median_cpu": cmed,
                      "cpu_new_over_old": cmed["new"] / cmed["old"], "rows": a.rows, "epochs": a.epochs,
                      "wall": times, "cpu": cpus}))


if __name__ == "__main__":
    main()
