"""Representation quality of 32-dimensional MNIST codes: linear-probe (logistic regression) and
k-NN (k = 5) test accuracy for ae, dae, sparse_l1, sparse_kl, cae and vae, against PCA-32 and raw
pixels. Every model trains first; the scikit-learn probes run afterwards, never between steps.
Probes are fitted on the first --probe-train training images and scored on the 10k test images.

    python benchmarks/representation.py --epochs 20
    python benchmarks/representation.py --quick
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
from aekit.metrics import knn_accuracy, linear_probe_accuracy  # noqa: E402
from aekit.train import TrainConfig, Trainer  # noqa: E402

VARIANTS = ("ae", "dae", "sparse_l1", "sparse_kl", "cae", "vae")


@torch.no_grad()
def codes(model, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model.encode(x[i:i + 2000]) for i in range(0, x.shape[0], 2000)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--probe-train", type=int, default=20000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_data("mnist", data_dir=mnist_dir(args.data_dir), val_fraction=0.0)
    x_tr, y_tr, x_te, y_te = ds.train, ds.y_train, ds.test, ds.y_test
    if args.quick:
        x_tr, y_tr, x_te, y_te = x_tr[:2000], y_tr[:2000], x_te[:500], y_te[:500]
        args.epochs, args.probe_train = 1, 2000
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
    n = args.probe_train
    rows = []
    for name, (model, seconds) in trained.items():
        z_tr, z_te = codes(model, x_tr[:n]), codes(model, x_te)
        rows.append({"representation": f"aekit {name} ({args.latent_dim})", "probe acc": linear_probe_accuracy(z_tr, y_tr[:n], z_te, y_te),
                     "5-NN acc": knn_accuracy(z_tr, y_tr[:n], z_te, y_te), "train s": round(seconds, 1)})
    a_tr, a_te = x_tr[:n].flatten(1).double(), x_te.flatten(1).double()
    mean = a_tr.mean(0)
    _, _, v = torch.linalg.svd(a_tr - mean, full_matrices=False)
    w = v[:args.latent_dim].T
    p_tr, p_te = ((a_tr - mean) @ w).float(), ((a_te - mean) @ w).float()
    rows.append({"representation": f"PCA-{args.latent_dim}", "probe acc": linear_probe_accuracy(p_tr, y_tr[:n], p_te, y_te),
                 "5-NN acc": knn_accuracy(p_tr, y_tr[:n], p_te, y_te), "train s": None})
    rows.append({"representation": "raw pixels (784)", "probe acc": linear_probe_accuracy(a_tr.float(), y_tr[:n], a_te.float(), y_te),
                 "5-NN acc": knn_accuracy(a_tr.float(), y_tr[:n], a_te.float(), y_te), "train s": None})
    table = markdown(rows, ["representation", "probe acc", "5-NN acc", "train s"])
    print(table)
    if not args.quick:
        print(f"wrote {write_results('representation', {'args': vars(args), 'rows': rows, 'table': table})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
