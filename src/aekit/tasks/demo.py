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


def runs_or_variants(items, *, data: str | None, data_dir: str | None = None, epochs: int, latent_dim: int | None = None,
                     max_samples: int | None = None, seed: int = 0, workdir=None, overwrite: bool = False,
                     log: Callable[[str], None] = lambda line: None) -> tuple[list[Path], bool]:
    """(run directories, whether any was trained): run directories as given, variant names trained into workdir.

    A folder holding a run wins over a variant of the same name; every name is checked before anything is
    trained. workdir defaults to a new temporary folder; runs already there are refused unless overwrite."""
    import shutil
    import tempfile

    from ..errors import ConfigError, did_you_mean
    from ..variants import VARIANTS

    def is_run_dir(item: str) -> bool:
        path = Path(item)
        return (path / "config.json").is_file() or (path.is_dir() and item not in VARIANTS)

    for item in items:  # every name checked before anything is trained
        if is_run_dir(item):
            continue
        if item not in VARIANTS:
            raise ConfigError(f"{item!r} is neither a run directory nor a variant ({', '.join(VARIANTS)})."
                              + did_you_mean(item, VARIANTS))
        if data is None:
            raise ConfigError(f"--data is required to train variant {item!r} (e.g. --data digits).")
    run_dirs, folder = [], None
    for item in items:
        if is_run_dir(item):
            if item in VARIANTS:
                log(f"aekit: using the run directory {item!r}, not the variant of that name")
            run_dirs.append(Path(item))  # load_run names what is missing in a folder that holds no run
            continue
        if folder is None:
            folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="aekit-compare-"))
        out = folder / item
        if (out / "run.json").exists():
            if not overwrite:
                raise ConfigError(f"{str(out)!r} already holds a run; pass it as a RUN_DIR to reuse it, "
                                  "or --overwrite to train it again.")
            shutil.rmtree(out)
        log(f"training {item} on {data} for {epochs} epochs into {out}")
        data_info = {"source": data, "data_dir": data_dir, "val_fraction": _val_fraction(), "seed": seed,
                     "max_samples": max_samples}
        run_dirs.append(train_quick(item, data=data_info, out=out, epochs=epochs, latent_dim=latent_dim, seed=seed))
    return run_dirs, folder is not None


def _val_fraction() -> float:
    """load_data's default held-out share, recorded with each run."""
    import inspect

    return inspect.signature(load_data).parameters["val_fraction"].default
