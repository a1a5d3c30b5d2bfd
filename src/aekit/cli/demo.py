"""`aekit demo`: the main job on the bundled digits in about a minute.

Trains several variants side by side on scikit-learn's 8x8 digits (offline), evaluates each on
the test split, adds a PCA baseline at the same code size, and prints one table (also written as
Markdown and JSON into the output folder).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..build import build
from ..checkpoint import atomic_write_bytes, atomic_write_json
from ..data import load_data
from ..metrics import elbo_terms, reconstruction_metrics
from ..training.trainer import TrainConfig, Trainer
from .parser import markdown_table, positive_int, print_table

DEMO_VARIANTS = ("linear", "ae", "dae", "sparse_kl", "cae", "vae")
COLUMNS = ["model", "latent", "params", "train_s", "mse_per_pixel", "sse_per_image", "psnr", "probe_acc", "elbo"]


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="train several variants on digits and print a comparison table",
                       description="Train linear, ae, dae, sparse_kl, cae and vae on the bundled digits and compare them.")
    p.add_argument("--out", default="aekit-demo", help="folder for the runs and the table (default: ./aekit-demo)")
    p.add_argument("--epochs", type=positive_int, default=60, help="epochs per variant (default: 60)")
    p.add_argument("--latent-dim", type=positive_int, default=8, help="code size of every model (default: 8)")
    p.add_argument("--variants", default=",".join(DEMO_VARIANTS), help="comma-separated variants to train")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.set_defaults(func=run_demo)


def probe_accuracy(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray) -> float:
    """Logistic-regression accuracy of codes (fitted on train, scored on test); run after training."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(clf.fit(z_train, y_train).score(z_test, y_test))


def run_demo(args) -> int:
    from ..variants import VARIANTS
    from ..errors import check_choice

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        check_choice("variant", v, VARIANTS)
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # 8x8 models are too small for a second thread to pay off
    out = Path(args.out)
    ds = load_data("digits", seed=args.seed)
    x_tr, y_tr = ds.train, ds.y_train
    x_te, y_te = ds.test, ds.y_test
    print(f"aekit demo: {len(variants)} variants on digits {tuple(ds.shape)} "
          f"({x_tr.shape[0]} train / {ds.val.shape[0]} val / {x_te.shape[0]} test), latent {args.latent_dim}",
          file=sys.stderr)
    rows = []
    for name in variants:
        model = build(name, input_shape=ds.shape, latent_dim=args.latent_dim, seed=args.seed,
                      **({"hidden": [128]} if name in ("ae", "dae", "sparse_kl", "vae") else {}))
        cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3, schedule="cosine", seed=args.seed, progress=False)
        t0 = time.perf_counter()
        Trainer(model, cfg, out_dir=out / name, run_info={"variant": name, "data": {"source": "digits", "seed": args.seed}}).fit(x_tr, ds.val)
        seconds = time.perf_counter() - t0
        from ..checkpoint import load

        model = load(out / name)
        with torch.no_grad():
            metrics = reconstruction_metrics(x_te, model.reconstruct(x_te))
            z_tr, z_te = model.encode(x_tr).numpy(), model.encode(x_te).numpy()
        row = {"model": name, "latent": args.latent_dim, "params": sum(p.numel() for p in model.parameters()),
               "train_s": round(seconds, 1), **metrics, "probe_acc": probe_accuracy(z_tr, y_tr.numpy(), z_te, y_te.numpy())}
        if model.is_generative:
            row["elbo"] = elbo_terms(model, x_te)["elbo"]
        rows.append(row)
        print(f"  trained {name:<10} in {seconds:5.1f}s  test mse/pixel {metrics['mse_per_pixel']:.4f}", file=sys.stderr)
    rows.append(pca_row(x_tr, y_tr, x_te, y_te, args.latent_dim))
    print()
    print_table(rows, COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    atomic_write_bytes(out / "results.md", (markdown_table(rows, COLUMNS) + "\n").encode())
    print(f"\nruns, results.json and results.md are in {out}/", file=sys.stderr)
    from ..viz.compare import write_comparison

    report, _ = write_comparison([out / name for name in variants], out=out / "compare.html", seed=args.seed)
    print(f"comparison report: {report}", file=sys.stderr)
    return 0


def pca_row(x_tr, y_tr, x_te, y_te, k: int) -> dict:
    from sklearn.decomposition import PCA

    a_tr, a_te = x_tr.flatten(1).double().numpy(), x_te.flatten(1).double().numpy()
    t0 = time.perf_counter()
    pca = PCA(n_components=k).fit(a_tr)
    seconds = time.perf_counter() - t0
    rec = torch.from_numpy(pca.inverse_transform(pca.transform(a_te))).view_as(x_te).float()
    return {"model": "PCA (baseline)", "latent": k, "params": int(pca.components_.size + pca.mean_.size),
            "train_s": round(seconds, 2), **reconstruction_metrics(x_te, rec),
            "probe_acc": probe_accuracy(pca.transform(a_tr), y_tr.numpy(), pca.transform(a_te), y_te.numpy())}


__all__ = ["add_demo_parser", "json"]
