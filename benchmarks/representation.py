"""Representation quality of 32-dimensional MNIST codes: linear-probe (logistic regression) and
k-NN (k = 5) test accuracy for ae, dae, sparse_l1, sparse_kl, cae and vae, against PCA-32 and raw
pixels. Every model trains first; the scikit-learn probes run afterwards, never between steps.
Probes are fitted on the first --probe-train training images and scored on the 10k test images.

Linear probe, tuned the same way for every representation (raw pixels, PCA and every code): the
inverse regularization C (--probe-cs) and whether to standardize the features are chosen by the
accuracy on --probe-val training images the probe does not fit (the last ones of the training
split; never the test set); the chosen probe (fitted on the --probe-train images) is scored once
on the test set. k-NN has no tuning (k = 5, raw features).

    python benchmarks/representation.py --epochs 10 --threads 1
    python benchmarks/representation.py --quick          # writes no published results file
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown, mnist_dir, write_results  # noqa: E402

import aekit  # noqa: E402
from aekit.data import load_data  # noqa: E402
from aekit.metrics import knn_accuracy  # noqa: E402
from aekit.training.trainer import TrainConfig, Trainer  # noqa: E402

VARIANTS = ("ae", "dae", "sparse_l1", "sparse_kl", "cae", "vae")


@torch.no_grad()
def codes(model, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model.encode(x[i:i + 2000]) for i in range(0, x.shape[0], 2000)])


def tuned_probe(z_tr, y_tr, z_va, y_va, z_te, y_te, cs) -> dict:
    """Logistic regression with C and standardization chosen on the validation features; test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a = [t.numpy() if hasattr(t, "numpy") else t for t in (z_tr, y_tr, z_va, y_va, z_te, y_te)]
    grid, best = [], None
    for std in (False, True):
        for c in cs:
            clf = LogisticRegression(C=c, max_iter=1000, random_state=0)
            clf = make_pipeline(StandardScaler(), clf) if std else clf
            acc = float(clf.fit(a[0], a[1]).score(a[2], a[3]))
            grid.append({"standardize": std, "C": c, "val_acc": round(acc, 4)})
            if best is None or acc > best[0]:
                best = (acc, std, c, clf)
    return {"test_acc": float(best[3].score(a[4], a[5])), "standardize": best[1], "C": best[2],
            "val_acc": round(best[0], 4), "grid": grid}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--probe-train", type=int, default=20000)
    p.add_argument("--probe-val", type=int, default=10000, help="last training images: the probe's validation set")
    p.add_argument("--probe-cs", default="0.01,0.1,1,10", help="inverse regularization strengths tried")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_data("mnist", data_dir=mnist_dir(args.data_dir), val_fraction=0.0)
    x_tr, y_tr, x_te, y_te = ds.train, ds.y_train, ds.test, ds.y_test
    if args.quick:
        x_tr, y_tr, x_te, y_te = x_tr[:2000], y_tr[:2000], x_te[:500], y_te[:500]
        args.epochs, args.probe_train, args.probe_val = 1, 1500, 500
    trained = {}
    for name in args.variants.split(","):
        overrides = {"hidden": [512, 256], "latent_dim": args.latent_dim}
        if name == "cae":
            overrides = {"hidden": [], "latent_dim": args.latent_dim}  # Rifai's one sigmoid layer (closed-form penalty)
        model = aekit.build(name, input_shape=(1, 28, 28), seed=0, **overrides)
        cfg = TrainConfig(epochs=args.epochs, seed=0, progress=False,
                          binarize="dynamic" if model.is_generative else "none")
        t0 = time.perf_counter()
        Trainer(model, cfg).fit(x_tr, None)
        trained[name] = (model, time.perf_counter() - t0)
        print(f"trained {name} in {trained[name][1]:.0f}s", flush=True)
    n, nv = args.probe_train, args.probe_val
    cs = [float(c) for c in args.probe_cs.split(",")]
    y_va = y_tr[-nv:]
    feats = {}
    for name, (model, seconds) in trained.items():
        feats[f"aekit {name} ({args.latent_dim})"] = (codes(model, x_tr[:n]), codes(model, x_tr[-nv:]),
                                                     codes(model, x_te), round(seconds, 1))
    a_tr, a_va, a_te = x_tr[:n].flatten(1).double(), x_tr[-nv:].flatten(1).double(), x_te.flatten(1).double()
    mean = a_tr.mean(0)
    _, _, v = torch.linalg.svd(a_tr - mean, full_matrices=False)
    w = v[:args.latent_dim].T
    feats[f"PCA-{args.latent_dim}"] = tuple(((t - mean) @ w).float() for t in (a_tr, a_va, a_te)) + (None,)
    feats["raw pixels (784)"] = (a_tr.float(), a_va.float(), a_te.float(), None)
    rows, tuning = [], {}
    for name, (z_tr, z_va, z_te, seconds) in feats.items():
        t0 = time.perf_counter()
        pr = tuned_probe(z_tr, y_tr[:n], z_va, y_va, z_te, y_te, cs)
        tuning[name] = pr
        rows.append({"representation": name, "probe acc": round(pr["test_acc"], 4),
                     "probe C": pr["C"], "standardized": "yes" if pr["standardize"] else "no",
                     "5-NN acc": round(knn_accuracy(z_tr, y_tr[:n], z_te, y_te), 4), "train s": seconds})
        print(f"{name}: probe {pr['test_acc']:.4f} (C {pr['C']}, standardize {pr['standardize']}, "
              f"{time.perf_counter() - t0:.0f}s)", flush=True)
    raw = rows[-1]["probe acc"]
    beat = [r["representation"] for r in rows[:-1] if r["probe acc"] > raw]
    table = markdown(rows, ["representation", "probe acc", "probe C", "standardized", "5-NN acc", "train s"])
    table += (f"\n\nProbes fitted on the first {n:,} training images; C in {{{args.probe_cs}}} and standardization "
              f"on/off chosen on the last {nv:,} training images (validation), the chosen probe scored once on the "
              f"{x_te.shape[0]:,} test images; the same grid for every representation. Linear-probe accuracy above raw "
              f"pixels ({raw}): {', '.join(beat) if beat else 'none'}. Models: MLP 512-256-{args.latent_dim} (cae: one "
              f"sigmoid layer, Rifai et al.), {args.epochs} epochs each, aekit defaults, trained on all training images. "
              f"'train s' is wall time at {args.threads} thread(s) on a shared 2-core machine, not a speed figure.")
    print(table)
    print(f"wrote {write_results('representation', {'args': vars(args), 'rows': rows, 'tuning': tuning, 'table': table, 'beat_raw_pixels_probe': beat, 'loadavg_end': list(__import__('os').getloadavg())}, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
