"""Sparse autoencoders on synthetic superposition data with a known dictionary (issue 21, benchmark a).

n_features sparse features on random unit directions in dim < n_features dimensions (Elhage et al.
2022; aekit.tasks.sae.superposition_data), each active with probability p (magnitude uniform(0, 1)).
Each SAE (TopK, Gao et al. 2024; BatchTopK, Bussmann et al. 2024; JumpReLU, Rajamanoharan et al.
2024; ReLU + L1, Bricken et al. 2023) trains through aekit's trainer (train_sae) on the same rows
with the same steps; JumpReLU's and ReLU's sparsity coefficients are swept and every setting is
reported (the row nearest the TopK L0 is marked). Scores (Sharkey et al. 2022): the share of true
features whose nearest decoder column has cosine > 0.9, and the mean max cosine (MMCS); L0 and FVU
on held-out rows.

    OMP_NUM_THREADS=1 python benchmarks/sae_synthetic.py            # the published run
    OMP_NUM_THREADS=1 python benchmarks/sae_synthetic.py --quick    # a smoke run (written outside results/)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import markdown, write_results  # noqa: E402

from aekit.errors import ShortRunWarning  # noqa: E402
from aekit.tasks.sae import feature_recovery, fvu, l0, superposition_data, train_sae  # noqa: E402


def summarize(rows: list[dict], seeds: int) -> tuple[list[dict], str]:
    """Mean over seeds of every (sae, coefficient) setting, and the markdown of it and of every run."""
    summary = []
    for kind in ("topk", "batch_topk", "jumprelu", "relu"):
        for coeff in dict.fromkeys(r["coefficient"] for r in rows if r["sae"] == kind):
            mine = [r for r in rows if r["sae"] == kind and r["coefficient"] == coeff]
            summary.append({"sae": kind, "coefficient": "-" if coeff is None else coeff,
                            **{key: round(sum(r[key] for r in mine) / len(mine), 4)
                               for key in ("l0", "fvu", "recovered_cos_0.9", "mmcs")}})
    columns = ["sae", "coefficient", "l0", "fvu", "recovered_cos_0.9", "mmcs"]
    table = (f"Mean over {seeds} seed(s), every swept coefficient (TopK and BatchTopK: k = 4).\n\n"
             + markdown(summary, columns) + "\n\nEvery run:\n\n"
             + markdown(rows, ["seed", "sae", "coefficient", "l0", "fvu", "recovered_cos_0.9", "mmcs", "samples_per_s"]))
    return summary, table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, written outside benchmarks/results")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=32, help="passes over the 65,536 training rows (128 steps each)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ShortRunWarning)
    if args.quick:
        dim, n_features, p, n_train, latents, k, epochs, seeds = 8, 16, 0.1, 2048, 32, 2, 2, 1
        sweeps = {"jumprelu": [0.05], "relu": [0.05]}
    else:
        dim, n_features, p, n_train, latents, k, epochs, seeds = 32, 128, 0.03, 65536, 256, 4, args.epochs, args.seeds
        sweeps = {"jumprelu": [0.03, 0.1, 0.3], "relu": [0.03, 0.1, 0.3]}
    batch, lr = 512, 3e-3
    rows, t_all = [], time.perf_counter()
    load = [os.getloadavg()]
    for seed in range(seeds):
        x, true, _ = superposition_data(n_train + 8192, n_features=n_features, dim=dim, p=p, seed=seed)
        train, test = x[:n_train], x[n_train:]
        settings = [("topk", {"k": k}, None), ("batch_topk", {"k": k}, None)]
        settings += [("jumprelu", {"sparsity": c, "threshold": 0.1, "bandwidth": 0.05}, c) for c in sweeps["jumprelu"]]
        settings += [("relu", {"l1": c}, c) for c in sweeps["relu"]]
        for activation, options, coeff in settings:
            t0 = time.perf_counter()
            sae, _ = train_sae(train, n_latents=latents, activation=activation, epochs=epochs, batch_size=batch, lr=lr,
                               seed=seed, dead_window=16384, **options)
            seconds = time.perf_counter() - t0
            with torch.no_grad():
                z = sae.encode(test)
                rec = feature_recovery(sae.decoder.weight, true)
                rows.append({"seed": seed, "sae": activation, "coefficient": coeff, "l0": round(l0(z), 3),
                             "fvu": round(fvu(test, sae.decode(z)), 4),
                             "recovered_cos_0.9": round(rec["fraction_recovered"], 4),
                             "mmcs": round(rec["mean_max_cosine"], 4),
                             "samples_per_s": round(n_train * epochs / seconds, 1)})
            print(rows[-1], flush=True)
        load.append(os.getloadavg())
    summary, table = summarize(rows, seeds)
    path = write_results("sae_synthetic", {
        "title": f"Sparse autoencoders on superposition data: {n_features} known features in {dim} dimensions, "
                 f"{latents} latents (feature recovery at cosine > 0.9 and MMCS)",
        "setup": {"dim": dim, "n_features": n_features, "p": p, "magnitude": "uniform", "n_train": n_train,
                  "n_test": 8192, "latents": latents, "k": k, "epochs": epochs, "batch_size": batch, "lr": lr,
                  "seeds": seeds, "sweeps": sweeps},
        "loadavg": load, "seconds": round(time.perf_counter() - t_all, 1), "rows": rows, "summary": summary,
        "table": table}, quick=args.quick)
    print(table)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
