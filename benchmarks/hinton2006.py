"""Hinton & Salakhutdinov (2006) MNIST protocol: a 30-dimensional code, test error = squared error
summed over the 784 pixels (pixels / 255, no binarization), averaged over the 10,000 test images.

Published: PCA 13.87, logistic PCA 8.01, deep autoencoder 784-1000-500-250-30 with RBM
pretraining 3.00. aekit trains the same 784-1000-500-250-30 architecture (mirrored) from random
initialisation with Adam and reports the test error against training time; PCA-30 is computed
after training (never inside the training process's loop).

    python benchmarks/hinton2006.py --minutes 15            # the full run on this CPU
    python benchmarks/hinton2006.py --quick                  # a smoke test, seconds
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import markdown, mnist_dir, write_results  # noqa: E402

import aekit  # noqa: E402
from aekit.data import load_data  # noqa: E402
from aekit.train import TrainConfig, Trainer  # noqa: E402

PUBLISHED = {"PCA": 13.87, "logistic PCA": 8.01, "deep autoencoder (RBM pretraining)": 3.00}


@torch.no_grad()
def test_sse(model, x: torch.Tensor) -> float:
    model.eval()
    total = 0.0
    for i in range(0, x.shape[0], 2000):
        xb = x[i:i + 2000]
        total += float((model.reconstruct(xb) - xb).pow(2).flatten(1).sum(1).sum())
    model.train()
    return total / x.shape[0]


def pca_sse(x_train: torch.Tensor, x_test: torch.Tensor, k: int = 30) -> float:
    a, b = x_train.flatten(1).double(), x_test.flatten(1).double()
    mean = a.mean(0)
    _, _, v = torch.linalg.svd(a - mean, full_matrices=False)
    w = v[:k].T  # (784, k) top-k principal directions
    rec = (b - mean) @ w @ w.T + mean
    return float((rec - b).pow(2).sum(1).mean())


def score(curve: list[dict], *, target: float = 3.00, budget_s: float = 15 * 60) -> dict:
    """From the per-epoch curve: when the target was first reached, and the error at the time budget."""
    hit = next((c for c in curve if c["test_sse"] <= target), None)
    within = [c for c in curve if c["train_seconds"] <= budget_s]
    return {"first_at_target": hit, "sse_at_budget": within[-1]["test_sse"] if within else None,
            "met": hit is not None and hit["train_seconds"] <= budget_s}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--minutes", type=float, default=15.0, help="training-time budget (evaluation excluded)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--likelihood", default="bernoulli", help="training objective: bernoulli (cross-entropy) or gaussian (MSE)")
    p.add_argument("--activation", default="elu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--tag", default="hinton2006")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_data("mnist", data_dir=mnist_dir(args.data_dir), val_fraction=0.0)
    x_train, x_test = ds.train, ds.test
    if args.quick:
        x_train, x_test, args.epochs, args.minutes = x_train[:2000], x_test[:500], 2, 0.5
    model = aekit.build("deep", input_shape=(1, 28, 28), hidden=[1000, 500, 250], latent_dim=30,
                        activation=args.activation, likelihood=args.likelihood, seed=0)
    curve = []
    device = torch.device(args.device)
    x_test_dev = x_test.to(device)

    def on_epoch(record, trainer):
        t0 = time.perf_counter()
        sse = test_sse(trainer.model, x_test_dev)
        curve.append({"epoch": record["epoch"], "train_seconds": round(record["time"], 2), "test_sse": round(sse, 4)})
        print(f"epoch {record['epoch']:>3}  train {record['time']:7.1f}s  test SSE {sse:.3f}  (eval {time.perf_counter() - t0:.1f}s)", flush=True)

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule="cosine",
                      warmup_steps=200, max_time=args.minutes * 60, seed=0, progress=False, device=args.device)
    result = Trainer(model, cfg, callbacks=[on_epoch]).fit(x_train, None)
    final = curve[-1]["test_sse"]
    pca = pca_sse(x_train, x_test)
    rows = [
        {"model": "PCA-30 (aekit, SVD)", "test SSE": pca, "published": PUBLISHED["PCA"], "train min": None},
        {"model": "logistic PCA (published)", "test SSE": None, "published": PUBLISHED["logistic PCA"], "train min": None},
        {"model": f"aekit deep 784-1000-500-250-30 ({args.likelihood}, {args.activation}, Adam, {len(curve)} epochs)",
         "test SSE": final, "published": PUBLISHED["deep autoencoder (RBM pretraining)"],
         "train min": round(result.seconds / 60, 2)},
    ]
    table = markdown(rows, ["model", "test SSE", "published", "train min"])
    s = score(curve)
    if s["first_at_target"]:
        hit = s["first_at_target"]
        table += (f"\n\nTest SSE <= 3.00 first reached after epoch {hit['epoch']} at {hit['train_seconds'] / 60:.1f} min "
                  f"of training (SSE {hit['test_sse']}); SSE at the 15-minute budget: {s['sse_at_budget']}.")
    print(table)
    if not args.quick:
        path = write_results(args.tag, {"args": vars(args), "rows": rows, "curve": curve, "target": 3.00,
                                        **score(curve), "table": table})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
