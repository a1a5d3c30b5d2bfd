"""aekit's family members against pythae's on the same network, data and budget (MNIST), side by side.

pythae (Chadebec et al. 2022, 0.1.2) runs in a side environment, /tmp/venv-pythae with torch pinned to
the main environment's version, through benchmarks/family_pythae_worker.py as a subprocess; aekit runs in
this process. For each pair, alternately:

- network: MLP 784-512-256 (ReLU), linear code heads, mirrored decoder (aekit's `--backbone mlp` with
  hidden 512,256; the worker builds the same layers for pythae), the recipe's latent width;
- data: MNIST in [0, 1], --train-size training images, all 10,000 test images;
- budget: --epochs epochs, batch 128, Adam lr 1e-3 betas (0.9, 0.999), constant lr, on both sides
  (aekit's cosine schedule is switched off to match pythae's trainer); 1 thread each;
- hyper-parameters mapped from the aekit recipe to pythae's config (listed in the results file);
  each side keeps its own loss scaling where the two define it differently (noted per row).

Measured: training wall seconds (pythae: its BaseTrainer's train(), which also writes its final model),
test squared error per image of the decoded deterministic code, and test NLL (-IWAE bound, same K,
images and estimator) for models with a Gaussian posterior and a Bernoulli decoder.

    python benchmarks/family_anchors.py --epochs 3           # the recorded table (results/family_anchors.json)
    python benchmarks/family_anchors.py --quick              # smoke; writes no results file
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_family_options, markdown, mnist_dir, write_results  # noqa: E402

import aekit  # noqa: E402
from aekit.data import load_data  # noqa: E402
from aekit.metrics import iwae_bound  # noqa: E402
from aekit.registry import VARIANTS  # noqa: E402
from aekit.training.trainer import TrainConfig, Trainer  # noqa: E402

PYTHAE_PYTHON = "/tmp/venv-pythae/bin/python"
# aekit recipe -> (pythae class, its config, loss, aekit overrides that align the objective, note)
PAIRS = {
    "vae": ("VAE", {}, "bce", {}, ""),
    "ae": ("AE", {}, "mse", {}, "aekit: Gaussian NLL (0.5 SE + const); pythae: summed SE"),
    "wae_mmd": ("WAE_MMD", {"kernel_choice": "imq", "reg_weight": 10.0, "kernel_bandwidth": 1.0, "scales": None},
                "mse", {}, "IMQ C = 2 D s^2 both; aekit: 0.5 SE + 10 MMD, pythae: SE + 10 MMD"),
    "vq_vae": ("VQVAE", {"num_embeddings": 512, "commitment_loss_factor": 0.25, "use_ema": True, "decay": 0.99},
               "mse", {"likelihood": "gaussian"}, "NOT like for like: pythae quantizes each of the 16 code scalars "
                                                  "on its own (16 indices per image), aekit the 16-d vector (one index); "
                                                  "see family_anchors_vq for the one-code pairing. Both squared error; "
                                                  "aekit also restarts dead codes"),
    "rae": ("RAE_L2", {"embedding_weight": 1e-4, "reg_weight": 1e-7}, "mse", {},
            "pythae: decoder penalty as the decoder optimizer's weight decay"),
    "iwae": ("IWAE", {"number_samples": 5}, "bce", {}, "K = 5"),
    "beta_vae": ("BetaVAE", {"beta": 4.0}, "bce", {}, "beta = 4"),
    "vampprior": ("VAMP", {"number_components": 500}, "bce", {}, "500 pseudo-inputs"),
    "beta_tc_vae": ("BetaTCVAE", {"alpha": 1.0, "beta": 6.0, "gamma": 1.0, "use_mss": True}, "bce", {},
                    "minibatch-stratified (pythae) vs minibatch-weighted (aekit) sampling"),
    "info_vae": ("INFOVAE_MMD", {"alpha": 0.0, "lbd": 1000.0, "kernel_choice": "imq", "kernel_bandwidth": 1.0,
                                 "scales": None}, "bce", {}, "alpha 0, lambda 1000"),
}


def aekit_side(name: str, overrides: dict, args, x, x_test) -> dict:
    kw = {"backbone": {"mlp": {"hidden": [512, 256]}}, **overrides}
    if name == "beta_tc_vae":
        kw["regularizers"] = {"tc": {"dataset_size": int(x.shape[0])}}
    model = aekit.build(name, input_shape=(1, 28, 28), seed=args.seed, **kw)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule="none", betas=(0.9, 0.999),
                      seed=args.seed, progress=False, device="cpu", checkpoint_every=None)
    t0 = time.perf_counter()
    Trainer(model, cfg).fit(x, None)
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        se = sum(float((model.reconstruct(x_test[i:i + 1000]) - x_test[i:i + 1000]).pow(2).flatten(1).sum())
                 for i in range(0, x_test.shape[0], 1000)) / x_test.shape[0]
    res = {"train_seconds": seconds, "test_se": se, "params": sum(p.numel() for p in model.parameters()),
           "latent": model.latent_dim}
    if model.provides("posterior") and model.ingredient("likelihood") == "bernoulli":
        res["nll"] = -iwae_bound(model, x_test[:args.nll_images], k=args.iwae_k, progress=False)
    return res


def pythae_side(name: str, latent: int, args, data_path: Path, tmp: Path) -> dict:
    cls, config, loss, _, _ = PAIRS[name]
    job = {"pythae": cls, "config": config, "loss": loss, "latent": latent, "epochs": args.epochs,
           "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "threads": args.threads,
           "iwae_k": args.iwae_k, "nll_images": args.nll_images, "one_code": name == "vq_vae" and args.vq_one_code}
    job_path, out_path = tmp / f"{name}.json", tmp / f"{name}.out.json"
    job_path.write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": ""}
    proc = subprocess.run([args.pythae_python, str(Path(__file__).parent / "family_pythae_worker.py"), str(data_path),
                           str(job_path), str(out_path)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["(no stderr)"])[-1][:300])
    return json.loads(out_path.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_family_options(p)
    p.add_argument("--models", default=",".join(PAIRS))
    p.add_argument("--pythae-python", default=PYTHAE_PYTHON)
    p.add_argument("--vq-one-code", action="store_true",
                   help="pythae's VQ-VAE quantizes the whole code as one vector (as aekit), not scalar by scalar")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--tag", default="family_anchors")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    ds = load_data("mnist", data_dir=mnist_dir(args.data_dir), val_fraction=0.0)
    x, x_test = ds.train[:args.train_size], ds.test
    if args.quick:
        x, x_test, args.epochs, args.iwae_k, args.nll_images = x[:2000], x_test[:500], 1, 10, 200
    x, x_test = x.reshape(-1, 1, 28, 28).contiguous(), x_test.reshape(-1, 1, 28, 28).contiguous()
    pythae_version = subprocess.run([args.pythae_python, "-c", "import importlib.metadata as m, torch; "
                                     "print(m.version('pythae'), torch.__version__)"],
                                    capture_output=True, text=True).stdout.strip() if Path(args.pythae_python).exists() else None
    rows, notes, failed = [], {}, {}
    t_start = time.perf_counter()
    # untimed warm-up of this process (lazy imports, first kernels), as the worker's imports precede its clock
    Trainer(aekit.build("ae", input_shape=(1, 28, 28), seed=0),
            TrainConfig(epochs=1, batch_size=128, progress=False, device="cpu", checkpoint_every=None)).fit(x[:512], None)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        data_path = tmp / "data.npz"
        np.savez(data_path, x_train=x.numpy(), x_test=x_test.numpy())
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            if name not in VARIANTS or name not in PAIRS:
                failed[name] = "not a registered aekit recipe with a pythae pair"
                print(f"skipped {name}: {failed[name]}", flush=True)
                continue
            cls, config, loss, overrides, note = PAIRS[name]
            a = aekit_side(name, overrides, args, x, x_test)
            try:
                b = pythae_side(name, a["latent"], args, data_path, tmp) if pythae_version else None
            except RuntimeError as e:
                failed[name] = f"pythae {cls}: {e}"
                print(f"pythae {cls} failed: {e}", flush=True)
                b = None
            if name == "vq_vae" and args.vq_one_code:
                note = ("one code per image on both sides (pythae's encoder returns (B, 16, 1, 1): embedding_dim 16); "
                        "both squared error; aekit also restarts dead codes")
            notes[name] = note
            rows.append({"model": name, "pythae": cls, "latent": a["latent"], "loss": loss,
                         "aekit SE": round(a["test_se"], 2), "pythae SE": None if b is None else round(b["test_se"], 2),
                         "aekit NLL": round(a["nll"], 2) if "nll" in a else None,
                         "pythae NLL": round(b["nll"], 2) if b and "nll" in b else None,
                         "aekit s": round(a["train_seconds"], 1), "pythae s": None if b is None else round(b["train_seconds"], 1),
                         "time ratio": None if b is None else round(a["train_seconds"] / b["train_seconds"], 2),
                         "aekit params": a["params"], "pythae params": None if b is None else b["params"],
                         "note": note})
            print(rows[-1], flush=True)
    cols = ["model", "pythae", "latent", "loss", "aekit SE", "pythae SE", "aekit NLL", "pythae NLL", "aekit s", "pythae s",
            "time ratio", "note"]
    table = markdown(rows, cols)
    table += (f"\n\npythae {pythae_version or '(not installed)'} in a side environment. MNIST in [0, 1], "
              f"{x.shape[0]:,} training images, {args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr:g} "
              f"constant, seed {args.seed}, {args.threads} thread(s) per side, the same MLP 784-512-256-latent. SE: test "
              f"squared error per image ({x_test.shape[0]:,} images) of the decoded deterministic code. NLL: -IWAE bound, "
              f"K = {args.iwae_k}, first {args.nll_images:,} test images, the same estimator on both sides (Bernoulli "
              "decoder on grey pixels). Time ratio: aekit / pythae training seconds (below 1: aekit faster); the two "
              "sides run alternately under the load recorded in the results file.")
    both = [r for r in rows if r["pythae SE"] is not None]
    if both:
        faster = [r["model"] for r in both if r["time ratio"] < 1]
        better_se = [r["model"] for r in both if r["aekit SE"] < r["pythae SE"]]
        nll = [r for r in both if r["aekit NLL"] is not None and r["pythae NLL"] is not None]
        better_nll = [r["model"] for r in nll if r["aekit NLL"] < r["pythae NLL"]]
        table += (f" Summary: aekit trains faster on {len(faster)} of {len(both)} ({', '.join(faster) or 'none'}); "
                  f"lower test SE on {len(better_se)} of {len(both)} ({', '.join(better_se) or 'none'}); lower test NLL on "
                  f"{len(better_nll)} of {len(nll)} ({', '.join(better_nll) or 'none'}). One seed per side: differences of a few "
                  "tenths of SE or NLL are not significant (the seed-to-seed spread was not measured).")
    load_end = os.getloadavg()
    table += (f" Load average (1 min) {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end, on "
              f"{os.cpu_count()} cores shared with other work.")
    if failed:
        table += " Not run: " + "; ".join(f"{k} ({v})" for k, v in failed.items()) + "."
    print(table)
    path = write_results(args.tag, {
        "title": "Anchors: aekit vs pythae on the same network, data and budget (MNIST)"
                 + (", VQ-VAE with one code per image on both sides" if args.vq_one_code else ""),
        "args": vars(args), "pythae": pythae_version, "pairs": {k: list(v[:4]) for k, v in PAIRS.items()},
        "rows": rows, "failed": failed, "loadavg_start": list(load_start), "loadavg_end": list(load_end),
        "total_seconds": round(time.perf_counter() - t_start, 1), "table": table}, quick=args.quick)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
