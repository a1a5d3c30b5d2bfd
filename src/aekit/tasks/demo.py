"""A quick comparison of named variants on one data set: what `aekit demo` and `aekit compare VARIANT ...` train.

    rows = compare_variants(["linear", "ae", "vae"], out="aekit-demo", epochs=60, latent_dim=8)

Each variant is trained with the same short schedule (QUICK_TRAIN: batch 64, peak lr 3e-3,
cosine), evaluated on the test split (reconstruction metrics, the linear-probe accuracy of its
codes, the ELBO of VAEs) and set beside PCA at the same code size (Pearson 1901; the optimum of a
linear autoencoder, Baldi & Hornik 1989). Probes run after training, never inside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..build import build
from ..checkpoint import atomic_write_bytes, atomic_write_json
from ..data import load_data
from ..errors import check_choice
from ..metrics import elbo_terms, reconstruction_metrics
from ..training.trainer import TrainConfig, Trainer

DEMO_VARIANTS = ("linear", "ae", "dae", "sparse_kl", "cae", "vae")
COLUMNS = ["model", "latent", "params", "train_s", "mse_per_pixel", "sse_per_image", "psnr", "probe_acc", "elbo"]
QUICK_TRAIN = {"batch_size": 64, "lr": 3e-3, "schedule": "cosine"}  # the short schedule of every quick comparison
NARROW_HIDDEN = {"ae": [128], "dae": [128], "sparse_kl": [128], "vae": [128]}  # the demo's 8x8 digits


def probe_accuracy(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray) -> float:
    """Logistic-regression accuracy of codes (fitted on train, scored on test); run after training."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(clf.fit(z_train, y_train).score(z_test, y_test))


def train_quick(name: str, *, data: dict, out, epochs: int, latent_dim: int | None = None, seed: int = 0,
                ds=None, run_info: dict | None = None, **model) -> Path:
    """Train variant `name` with the quick schedule into out; data: load_data's keywords plus 'source'.

    run_info (default: the variant, data and the loaded dataset's description) goes to run.json."""
    if ds is None:
        ds = load_data(data["source"], **{k: v for k, v in data.items() if k != "source" and v is not None})
    net = build(name, input_shape=ds.shape, latent_dim=latent_dim, seed=seed, **model)
    cfg = TrainConfig(epochs=epochs, seed=seed, progress=False, **QUICK_TRAIN)
    if run_info is None:
        run_info = {"variant": name, "data": data, "dataset": ds.to_dict()}
    Trainer(net, cfg, out_dir=out, run_info=run_info).fit(ds.train, ds.val)
    return Path(out)


def pca_row(x_tr, y_tr, x_te, y_te, k: int) -> dict:
    """PCA at code size k, scored like the trained models."""
    from sklearn.decomposition import PCA

    a_tr, a_te = x_tr.flatten(1).double().numpy(), x_te.flatten(1).double().numpy()
    t0 = time.perf_counter()
    pca = PCA(n_components=k).fit(a_tr)
    seconds = time.perf_counter() - t0
    rec = torch.from_numpy(pca.inverse_transform(pca.transform(a_te))).view_as(x_te).float()
    return {"model": "PCA (baseline)", "latent": k, "params": int(pca.components_.size + pca.mean_.size),
            "train_s": round(seconds, 2), **reconstruction_metrics(x_te, rec),
            "probe_acc": probe_accuracy(pca.transform(a_tr), y_tr.numpy(), pca.transform(a_te), y_te.numpy())}


def compare_variants(variants, *, out, epochs: int, latent_dim: int, seed: int = 0, source: str = "digits",
                     log: Callable[[str], None] = lambda line: None, markdown: Callable | None = None) -> list[dict]:
    """Train each variant on source, score it on the test split; rows (PCA last), also out/results.json|md."""
    from ..variants import VARIANTS

    for v in variants:
        check_choice("variant", v, VARIANTS)
    out = Path(out)
    ds = load_data(source, seed=seed)
    x_tr, y_tr, x_te, y_te = ds.train, ds.y_train, ds.test, ds.y_test
    log(f"aekit demo: {len(variants)} variants on {source} {tuple(ds.shape)} "
        f"({x_tr.shape[0]} train / {ds.val.shape[0]} val / {x_te.shape[0]} test), latent {latent_dim}")
    rows = []
    for name in variants:
        t0 = time.perf_counter()
        hidden = {"hidden": NARROW_HIDDEN[name]} if name in NARROW_HIDDEN and source == "digits" else {}
        data = {"source": source, "seed": seed}  # the demo's runs record no dataset: their units are [0, 1]
        train_quick(name, data=data, out=out / name, epochs=epochs, latent_dim=latent_dim, seed=seed, ds=ds,
                    run_info={"variant": name, "data": data}, **hidden)
        seconds = time.perf_counter() - t0
        from ..checkpoint import load

        model = load(out / name)
        with torch.no_grad():
            metrics = reconstruction_metrics(x_te, model.reconstruct(x_te))
            z_tr, z_te = model.encode(x_tr).numpy(), model.encode(x_te).numpy()
        row = {"model": name, "latent": latent_dim, "params": sum(p.numel() for p in model.parameters()),
               "train_s": round(seconds, 1), **metrics, "probe_acc": probe_accuracy(z_tr, y_tr.numpy(), z_te, y_te.numpy())}
        if model.is_generative:
            row["elbo"] = elbo_terms(model, x_te)["elbo"]
        rows.append(row)
        log(f"  trained {name:<10} in {seconds:5.1f}s  test mse/pixel {metrics['mse_per_pixel']:.4f}")
    rows.append(pca_row(x_tr, y_tr, x_te, y_te, latent_dim))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    if markdown is not None:
        atomic_write_bytes(out / "results.md", (markdown(rows, COLUMNS) + "\n").encode())
    return rows
