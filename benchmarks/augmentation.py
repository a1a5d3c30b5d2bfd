"""Data augmentation with a VAE for few-label MNIST: does adding synthetic samples help a classifier?

Protocol (per seed 0..4 and per m = 10, 50, 100 labels per class):
  1. draw m labelled training images per class from the MNIST training set (seeded);
  2. train a conditional VAE ('cvae', mlp 784-256-[8]-256-784, Bernoulli decoder) on those 10*m
     labelled images ONLY (the fair protocol: no other image, no other label), a fixed 1200 steps of 64;
  3. make 300 synthetic images per class in three ways:
       cvae-prior      z ~ N(0, I) decoded with each class label (balanced)
       cvae-post       the labelled images' codes perturbed within q(z | x, y), labels kept
       vae60k-post     a plain VAE trained once on all 60,000 training images WITHOUT labels
                       (semi-supervised: it sees unlabelled images the baseline never sees; 3 epochs),
                       the labelled images' codes perturbed within q(z | x), labels kept
  4. train logistic regression (scikit-learn, lbfgs, C=1) and a small MLP (torch 784-256-10,
     Adam, 300 steps of 128) on the real labelled images alone and on real + synthetic (synthetic
     samples weighted like real ones, decoder means in [0, 1]), every hyperparameter fixed in
     advance (no tuning on the test set);
  5. report accuracy on the full 10,000-image MNIST test set: mean and std over the 5 seeds.

    python benchmarks/augmentation.py                 # about 6 CPU minutes at --threads 1
    python benchmarks/augmentation.py --labels 10 --temperature 0.5 --synthetic-per-class 100 \
        --tag augmentation_m10_t05 --note "..."        # the gentler variant, 10 labels per class
    python benchmarks/augmentation.py --quick         # smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _threads_from_argv() -> int:
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 1


_T = str(_threads_from_argv())
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # numpy/sklearn BLAS as well as torch
    os.environ[_var] = _T

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import mnist_dir, write_results  # noqa: E402

import aekit  # noqa: E402
from aekit.tasks.augment import augment  # noqa: E402
from aekit.data import load_data  # noqa: E402

CONDITIONS = ("real only", "+ cvae-prior", "+ cvae-post", "+ vae60k-post")


def labelled_subset(y: np.ndarray, m: int, seed: int) -> np.ndarray:
    """m indices per class, drawn without replacement with a seeded generator; (10 m,)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), size=m, replace=False) for c in range(10)])


def train_cvae(x: torch.Tensor, y: torch.Tensor, *, seed: int, steps: int) -> aekit.Autoencoder:
    model = aekit.build("cvae", input_shape=(1, 28, 28), hidden=[256], latent_dim=8, num_classes=10, seed=seed)
    batch = 64
    epochs = max(1, round(steps / -(-x.shape[0] // batch)))
    aekit.fit(model, x, None, y_train=y, epochs=epochs, batch_size=batch, lr=2e-3, seed=seed, progress=False)
    return model.eval()


def train_vae_unlabelled(x: torch.Tensor, *, epochs: int) -> aekit.Autoencoder:
    model = aekit.build("vae", input_shape=(1, 28, 28), hidden=[256], latent_dim=16, seed=0)
    aekit.fit(model, x, None, epochs=epochs, batch_size=128, lr=2e-3, seed=0, progress=False)
    return model.eval()


def logistic_regression(x, y, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, max_iter=300)
    clf.fit(x, y)
    return float((clf.predict(x_test) == y_test).mean())


def mlp(x, y, x_test, y_test, *, seed: int, steps: int) -> float:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = xt.shape[0]
    perm, pos = torch.randperm(n, generator=g), 0
    for _ in range(steps):
        if pos + 128 > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos:pos + 128]
        pos += 128
        loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = net(torch.from_numpy(x_test)).argmax(1).numpy()
    return float((pred == y_test).mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--labels", default="10,50,100", help="labels per class")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--synthetic-per-class", type=int, default=300)
    p.add_argument("--cvae-steps", type=int, default=1200)
    p.add_argument("--vae-epochs", type=int, default=3)
    p.add_argument("--mlp-steps", type=int, default=300)
    p.add_argument("--temperature", type=float, default=1.0, help="prior/posterior standard deviation scale")
    p.add_argument("--tag", default="augmentation", help="results file name (benchmarks/results/TAG.json)")
    p.add_argument("--note", default="", help="a sentence recorded with the results (e.g. how a variant was chosen)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    per_class = [int(v) for v in args.labels.split(",")]
    if args.quick:
        per_class, args.seeds, args.cvae_steps, args.vae_epochs, args.mlp_steps = [10], 1, 200, 1, 100
        args.synthetic_per_class = 50

    ds = load_data("mnist", data_dir=mnist_dir(args.data_dir), val_fraction=0.0)
    x_pool, y_pool = ds.train, ds.y_train.numpy()  # (60000, 1, 28, 28) in [0, 1], (60000,)
    x_test = ds.test.reshape(ds.test.shape[0], -1).numpy()  # (10000, 784)
    y_test = ds.y_test.numpy()
    if args.quick:
        x_test, y_test = x_test[:2000], y_test[:2000]

    t0 = time.perf_counter()
    vae = train_vae_unlabelled(x_pool if not args.quick else x_pool[:5000], epochs=args.vae_epochs)
    vae_seconds = time.perf_counter() - t0
    print(f"vae on {x_pool.shape[0] if not args.quick else 5000} unlabelled images: {vae_seconds:.0f}s", flush=True)

    n_syn = 10 * args.synthetic_per_class
    raw: dict = {}  # (m, classifier, condition) -> [accuracy per seed]
    cvae_seconds = []
    for m in per_class:
        for seed in range(args.seeds):
            idx = labelled_subset(y_pool, m, seed)
            x_lab, y_lab = x_pool[idx], torch.from_numpy(y_pool[idx])
            t0 = time.perf_counter()
            cvae = train_cvae(x_lab, y_lab, seed=seed, steps=args.cvae_steps)
            cvae_seconds.append(time.perf_counter() - t0)
            gen = lambda: torch.Generator().manual_seed(1000 + seed)  # noqa: E731
            t = args.temperature
            synthetic = {
                "+ cvae-prior": augment(cvae, n_syn, method="prior", temperature=t, generator=gen()),
                "+ cvae-post": augment(cvae, n_syn, x=x_lab, y=y_lab, method="posterior", temperature=t, generator=gen()),
                "+ vae60k-post": augment(vae, n_syn, x=x_lab, y=y_lab, method="posterior", temperature=t, generator=gen()),
            }
            xr, yr = x_lab.reshape(len(idx), -1).numpy(), y_lab.numpy()
            for cond in CONDITIONS:
                if cond == "real only":
                    xs, ys = xr, yr
                else:
                    xa, ya = synthetic[cond]
                    xs = np.concatenate([xr, xa.reshape(n_syn, -1).numpy()])
                    ys = np.concatenate([yr, ya.numpy()])
                xs = xs.astype(np.float32)
                raw.setdefault((m, "logistic regression", cond), []).append(logistic_regression(xs, ys, x_test, y_test))
                raw.setdefault((m, "MLP 784-256-10", cond), []).append(
                    mlp(xs, ys, x_test, y_test, seed=seed, steps=args.mlp_steps))
            line = "  ".join(f"{c}: LR {raw[(m, 'logistic regression', c)][-1]:.3f} MLP {raw[(m, 'MLP 784-256-10', c)][-1]:.3f}"
                             for c in CONDITIONS)
            print(f"m={m} seed={seed} ({time.perf_counter() - t_start:.0f}s)  {line}", flush=True)

    rows, table = [], ["| labels/class | classifier | " + " | ".join(CONDITIONS) + " |",
                       "|---|---|" + "---|" * len(CONDITIONS)]
    for m in per_class:
        for clf in ("logistic regression", "MLP 784-256-10"):
            cells, row = [], {"labels_per_class": m, "classifier": clf}
            base = float(np.mean(raw[(m, clf, "real only")]))
            for cond in CONDITIONS:
                acc = np.array(raw[(m, clf, cond)]) * 100
                row[cond] = {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                             "per_seed": acc.round(2).tolist()}
                delta = "" if cond == "real only" else f" ({acc.mean() - base * 100:+.1f})"
                cells.append(f"{acc.mean():.1f} ± {row[cond]['std']:.1f}{delta}")
            rows.append(row)
            table.append(f"| {m} | {clf} | " + " | ".join(cells) + " |")
    table_md = "\n".join(table)
    print(table_md)
    fair = [(r["labels_per_class"], r["classifier"], c) for r in rows for c in ("+ cvae-prior", "+ cvae-post")
            if r[c]["mean"] > r["real only"]["mean"]]
    wall = time.perf_counter() - t_start
    print(f"wall {wall:.0f}s; fair-protocol settings where synthetic samples raised the mean: {fair}")
    write_results(args.tag, {
        "title": "Data augmentation with a (conditional) VAE: few-label MNIST classification"
                 + (f" (temperature {args.temperature:g}, {args.synthetic_per_class} synthetic per class)"
                    if args.tag != "augmentation" else ""),
        "note": args.note,
        "table": table_md,
        "target": "report whether adding VAE samples raises test accuracy (mean over seeds); fair protocol: "
                  "the cvae sees only the labelled images",
        "met": bool(fair),
        "helps_fair_protocol": [list(f) for f in fair],
        "protocol": __doc__.split("Protocol")[1].split("    python")[0].strip(),
        "rows": rows, "threads": args.threads, "temperature": args.temperature, "seeds": args.seeds, "synthetic_per_class": args.synthetic_per_class,
        "cvae_steps": args.cvae_steps, "mlp_steps": args.mlp_steps, "vae_epochs": args.vae_epochs,
        "vae_seconds": round(vae_seconds, 1), "cvae_seconds_mean": round(float(np.mean(cvae_seconds)), 1),
        "wall_seconds": round(wall, 1),
    }, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
