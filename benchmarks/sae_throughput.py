"""Training throughput of a TopK SAE, aekit beside dictionary-learning and sae-lens, run alternately (issue 21).

The same rows (60,000 x 256 non-negative activations, a seeded ReLU of Gaussians), 1,024 latents, k = 16,
batches of 512, one pass; each library's own training call timed (aekit: train_sae through the one
Trainer, initialisation included; the others: benchmarks/sae_external_worker.py in their side environments,
their normalisation estimate and initialisation included, process start-up and imports not; aekit's lazy
imports happen in an untimed warm-up call). The contenders run in turn,
`rounds` times, so machine load falls on all of them alike; the load is recorded.

    OMP_NUM_THREADS=1 python benchmarks/sae_throughput.py            # the published run
    OMP_NUM_THREADS=1 python benchmarks/sae_throughput.py --quick    # a smoke run (written outside results/)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import markdown, write_results  # noqa: E402
from sae_mnist import VENVS, WORKER  # noqa: E402

from aekit.errors import ShortRunWarning  # noqa: E402
from aekit.tasks.sae import train_sae  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ShortRunWarning)
    n, d, m, k, batch = (16384, 64, 256, 8, 256) if args.quick else (60000, 256, 1024, 16, 512)
    rounds = 1 if args.quick else args.rounds
    x = torch.relu(torch.randn(n, d, generator=torch.Generator().manual_seed(0)))
    rows, load = [], [os.getloadavg()]
    train_sae(x[:1024], n_latents=32, activation="topk", k=2, epochs=1, batch_size=256)  # aekit's lazy imports, untimed
    with tempfile.TemporaryDirectory(prefix="aekit-sae-throughput-") as tmp:
        np.save(Path(tmp) / "x.npy", x.numpy())
        for r in range(rounds):
            t0 = time.perf_counter()
            _, result = train_sae(x, n_latents=m, activation="topk", k=k, epochs=1, batch_size=batch, lr=1e-3,
                                  schedule="none", warmup_steps=50)
            seconds = time.perf_counter() - t0
            samples = n  # one pass over the in-memory rows (the last batch is partial)
            rows.append({"round": r, "library": "aekit", "samples": samples, "seconds": round(seconds, 2),
                         "samples_per_s": round(samples / seconds, 1), "load_1min": round(os.getloadavg()[0], 2)})
            print(rows[-1], flush=True)
            for lib in ("dictionary_learning", "sae_lens"):
                out = Path(tmp) / f"{lib}_{r}"
                cmd = [str(Path(VENVS[lib]) / "bin" / "python"), str(WORKER), "--lib", lib, "--kind", "topk",
                       "--train", str(Path(tmp) / "x.npy"), "--test", str(Path(tmp) / "x.npy"), "--k", str(k),
                       "--latents", str(m), "--epochs", "1", "--batch-size", str(batch), "--lr", "1e-3",
                       "--warmup", "50", "--out", str(out)]
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""})
                if proc.returncode != 0:
                    print(lib, "failed:", proc.stderr.strip().splitlines()[-1:], flush=True)
                    continue
                info = json.loads(Path(str(out) + ".json").read_text())
                rows.append({"round": r, "library": lib.replace("_", "-"), "samples": info["samples"],
                             "seconds": info["seconds"], "samples_per_s": info["samples_per_s"],
                             "load_1min": round(os.getloadavg()[0], 2)})
                print(rows[-1], flush=True)
    load.append(os.getloadavg())
    summary = []
    for lib in ("aekit", "dictionary-learning", "sae-lens"):
        mine = [r["samples_per_s"] for r in rows if r["library"] == lib]
        if mine:
            summary.append({"library": lib, "median_samples_per_s": float(np.median(mine)), "runs": len(mine)})
    table = (f"TopK SAE, d = {d}, {m} latents, k = {k}, batches of {batch}, one pass over {n} rows, 1 thread; "
             f"contenders alternated over {rounds} round(s).\n\n" + markdown(summary, ["library", "median_samples_per_s", "runs"])
             + "\n\nEvery run:\n\n" + markdown(rows, ["round", "library", "samples", "seconds", "samples_per_s", "load_1min"]))
    path = write_results("sae_throughput", {
        "title": "SAE training throughput, aekit beside dictionary-learning and sae-lens (TopK, alternated, 1 thread)",
        "loadavg": load, "rows": rows, "summary": summary, "table": table}, quick=args.quick)
    print(table)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
