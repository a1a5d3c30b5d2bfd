"""MNIST one-class anomaly detection: AUROC per digit, aekit against PCA and IsolationForest.

Protocol (Ruff et al. 2018, "Deep one-class classification", ICML): for each digit d, train on
the training images of d only, score the whole MNIST test set (10,000 images: digit d normal,
the other nine anomalous) and report the AUROC; the mean over the ten digits is the headline.
Published (Ruff et al. 2018, Table 1): One-Class Deep SVDD mean AUROC 94.8, its deep convolutional
autoencoder baseline DCAE 89.6 (mean of its per-digit AUROCs). Target: >= 95 with the strict one-class score.

Model selection uses the normal class only, never test anomalies: each digit's training images
are split 90/10 (the seed-0 validation split of aekit's mnist loader, restricted to digit d).
- aekit: the 'vae' recipe (MLP 784-512-256-LATENT, Gaussian posterior, Bernoulli decoder), score
  = -ELBO with --samples posterior draws (a model's own objective; fixed in advance). The latent
  size was chosen by the validation -ELBO of normal images (see --latent-dim). This strict
  one-class number is the headline. The reconstruction error (SSE at z = mu) is reported
  alongside for information only. The "semi-supervised" column picks, per digit, the score (-ELBO
  or SSE) with the higher AUROC on held-out training images of all ten digits: it uses labelled
  anomalies of exactly the classes that are the test anomalies, and it was added after the strict
  result was known, so it is not a one-class result.
- PCA: reconstruction error with k components, k in {1, 2, 4, ..., 256, 384, 512} chosen per digit by the
  largest probabilistic-PCA log-likelihood (Tipping & Bishop 1999) of the normal validation
  images; the model is fitted on the same training images as aekit.
- IsolationForest (Liu et al. 2008; scikit-learn defaults, 100 trees, seed 0) on raw pixels.
Pixels are in [0, 1], no contrast normalization (Deep SVDD used global contrast normalization).

    python benchmarks/anomaly.py                       # 10 digits, ~1 minute of training each at 1 thread
    python benchmarks/anomaly.py --digits 0,1 --epochs 2 --quick
    python benchmarks/anomaly.py --retable benchmarks/results/anomaly.json   # re-render a run's table
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown, mnist_dir, write_results  # noqa: E402

import aekit  # noqa: E402
from aekit.tasks.anomaly import score_samples  # noqa: E402
from aekit.data import load_data  # noqa: E402

DEEP_SVDD = {0: 98.0, 1: 99.7, 2: 91.7, 3: 91.9, 4: 94.9, 5: 88.5, 6: 98.3, 7: 94.6, 8: 93.9, 9: 96.5}  # One-Class Deep SVDD
# DCAE (deep convolutional autoencoder, reconstruction error), the autoencoder baseline of the same table
DCAE = {0: 97.6, 1: 98.3, 2: 85.4, 3: 86.7, 4: 86.5, 5: 78.2, 6: 94.6, 7: 92.3, 8: 86.5, 9: 90.4}
PCA_KS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512)


def auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return 100.0 * float(roc_auc_score(truth, scores))


def pca_scores(x_tr: np.ndarray, x_va: np.ndarray, x_te: np.ndarray) -> tuple[np.ndarray, int, dict]:
    """Reconstruction SSE of x_te with k principal components, k chosen by the PPCA log-likelihood of x_va.

    PPCA with k components: C = U_k diag(l_1..l_k) U_k^T + s2 (I - U_k U_k^T), s2 = mean of the other
    eigenvalues; log p(x) = -0.5 [D log 2 pi + log det C + sum_{i<k} p_i^2 / l_i + r^2 / s2], with
    p = U^T (x - mean) and r^2 = |x - mean|^2 - sum_{i<k} p_i^2 (the reconstruction SSE).
    """
    x_tr, x_va, x_te = (a.astype(np.float64) for a in (x_tr, x_va, x_te))
    mean = x_tr.mean(axis=0)  # (D,)
    cov = np.cov(x_tr - mean, rowvar=False, bias=True)  # (D, D)
    lam, vec = np.linalg.eigh(cov)
    lam, vec = np.clip(lam[::-1], 0, None), vec[:, ::-1]  # descending
    d = x_tr.shape[1]

    def parts(x):
        c = x - mean
        p = c @ vec  # (N, D) coordinates in the eigenbasis
        return (c ** 2).sum(1), np.cumsum(p ** 2, axis=1)  # |x - mean|^2, sum_{i<k} p_i^2 for every k

    va_norm, va_cum = parts(x_va)
    va_p2 = (((x_va - mean) @ vec) ** 2)
    loglik = {}
    for k in PCA_KS:
        s2 = lam[k:].mean()
        if not s2 > 0:
            continue
        logdet = np.log(lam[:k]).sum() + (d - k) * np.log(s2)
        maha = (va_p2[:, :k] / lam[:k]).sum(1) + (va_norm - va_cum[:, k - 1]) / s2
        loglik[k] = float(np.mean(-0.5 * (d * np.log(2 * np.pi) + logdet + maha)))
    k = max(loglik, key=loglik.get)
    te_norm, te_cum = parts(x_te)
    return te_norm - te_cum[:, k - 1], k, loglik


def isolation_forest_scores(x_tr: np.ndarray, x_te: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=100, random_state=seed, n_jobs=1).fit(x_tr)
    return -forest.score_samples(x_te)  # higher = more anomalous


def run_digit(d: int, ds, args) -> dict:
    x_tr, x_va = ds.train[ds.y_train == d], ds.val[ds.y_val == d]  # normals only: (N_d, 1, 28, 28)
    x_te, truth = ds.test, (ds.y_test != d).numpy().astype(np.int64)  # all 10k test images, 1 = anomaly
    row = {"digit": d, "n_train": int(x_tr.shape[0]), "n_val": int(x_va.shape[0])}

    t0, c0 = time.perf_counter(), time.process_time()
    model = aekit.build("vae", input_shape=(1, 28, 28), hidden=args.hidden, latent_dim=args.latent_dim, seed=args.seed)
    aekit.fit(model, x_tr, x_va, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
              progress=False, device="cpu")
    row["train_s"], row["train_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    elbo = score_samples(model, x_te, score="elbo", samples=args.samples, seed=0).numpy()
    sse = score_samples(model, x_te, score="sse").numpy()
    row["val_neg_elbo"] = float(score_samples(model, x_va, score="elbo", samples=args.samples, seed=0).mean())
    row["score_s"] = time.perf_counter() - t0
    row["aekit"], row["aekit_sse"] = auroc(elbo, truth), auroc(sse, truth)
    # score selection without the test set: normal validation images against the other digits' validation
    # images (held out from the training split; labelled anomalies the strict one-class protocol never sees)
    x_vsel = ds.val[:2000]
    vtruth = (ds.y_val[:2000] != d).numpy().astype(np.int64)
    val_auroc = {"elbo": auroc(score_samples(model, x_vsel, score="elbo", samples=args.samples, seed=0).numpy(), vtruth),
                 "sse": auroc(score_samples(model, x_vsel, score="sse").numpy(), vtruth)}
    row["val_auroc"] = val_auroc
    row["selected_score"] = max(val_auroc, key=val_auroc.get)
    row["aekit_selected"] = row["aekit"] if row["selected_score"] == "elbo" else row["aekit_sse"]

    flat = lambda x: x.reshape(x.shape[0], -1).numpy()  # noqa: E731
    t0 = time.perf_counter()
    pca, k, loglik = pca_scores(flat(x_tr), flat(x_va), flat(x_te))
    row["pca"], row["pca_k"], row["pca_val_loglik"] = auroc(pca, truth), k, loglik
    row["pca_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    row["iforest"] = auroc(isolation_forest_scores(flat(x_tr), flat(x_te), seed=args.seed), truth)
    row["iforest_s"] = time.perf_counter() - t0
    row["deep_svdd"] = DEEP_SVDD[d]
    return row


def summarize(rows: list[dict], options: dict, *, wall: float, cpu: float) -> dict:
    """Table (with its notes under it), means and whether the target is met, from the per-digit rows."""
    cols = ["aekit", "aekit_sse", "aekit_selected", "pca", "iforest", "deep_svdd"]
    mean = {c: float(np.mean([r[c] for r in rows])) for c in cols}
    mean["dcae"] = float(np.mean([DCAE[r["digit"]] for r in rows]))
    strict, semi = "aekit VAE -ELBO (strict one-class)", "aekit, score picked with labelled anomalies (semi-supervised)"
    table_rows = [{"digit": r["digit"], strict: round(r["aekit"], 1), "Deep SVDD (published)": r["deep_svdd"],
                   "DCAE (published)": DCAE[r["digit"]], "PCA (k)": f"{r['pca']:.1f} ({r['pca_k']})",
                   "IsolationForest": round(r["iforest"], 1), "aekit VAE SSE (not declared)": round(r["aekit_sse"], 1),
                   semi: f"{r['aekit_selected']:.1f} ({r['selected_score']})"} for r in rows]
    table_rows.append({"digit": "mean", strict: round(mean["aekit"], 1), "Deep SVDD (published)": round(mean["deep_svdd"], 1),
                       "DCAE (published)": round(mean["dcae"], 1), "PCA (k)": f"{mean['pca']:.1f}",
                       "IsolationForest": round(mean["iforest"], 1),
                       "aekit VAE SSE (not declared)": round(mean["aekit_sse"], 1), semi: f"{mean['aekit_selected']:.1f}"})
    met = len(rows) == 10 and mean["aekit"] >= 95.0
    met_selected = len(rows) == 10 and mean["aekit_selected"] >= 95.0
    chosen = (" (chosen by the normal-validation -ELBO among 8, 16, 32 on digit 2: 126.4, 124.4, 127.6 nats)"
              if options["latent_dim"] == 16 and list(options["hidden"]) == [512, 256] else "")
    post_hoc = "."
    if mean["aekit_sse"] > mean["aekit"]:
        post_hoc = (f": {mean['aekit_sse']:.1f}. It was not the declared one-class score, so it does not count "
                    "toward the strict target (a known effect: a Bernoulli likelihood on grey-level digits tracks the "
                    "amount of ink; Nalisnick et al. 2019).")
    notes = (
        f"Train on one digit's training images (90% of them; the other 10% are the normal validation set), score all "
        f"10,000 test images (that digit normal, the rest anomalous), AUROC in %. aekit: the 'vae' recipe, MLP "
        f"{options['hidden']}, latent {options['latent_dim']}{chosen}, "
        f"{options['epochs']} epochs; the declared score is -ELBO with {options['samples']} posterior samples: the strict "
        f"one-class result, the headline, judged against the target. The SSE column (squared error of the same models' reconstructions) comes from "
        f"the same run{post_hoc} Semi-supervised column: per digit, the score (-ELBO or SSE) "
        f"with the higher AUROC on the training split's held-out images (that digit normal, the other nine digits "
        f"anomalous, i.e. labelled anomalies of exactly the test anomaly classes; never the test set); added after the "
        f"strict result was known, so it is not a one-class result and does not count toward the target. PCA: k chosen per digit by "
        f"the probabilistic-PCA log-likelihood of the normal validation images. IsolationForest: scikit-learn defaults. "
        f"Deep SVDD and DCAE: Ruff et al. 2018, Table 1 (global contrast normalization; ours uses raw [0, 1] pixels). "
        f"Wall {wall:.0f} s, CPU {cpu:.0f} s at {options['threads']} thread(s) on a shared 2-core machine.")
    table = markdown(table_rows, list(table_rows[0])) + "\n\n" + notes
    return {"title": "Anomaly detection: MNIST one-class AUROC (%)", "table": table,
            "target": ("mean AUROC >= 95 (published One-Class Deep SVDD: 94.8, DCAE 89.6) with the strict one-class "
                       "protocol and the declared -ELBO score: met; the semi-supervised selection (labelled anomalies of "
                       "the test anomaly classes) is reported as met_with_validation_selection and is not a one-class "
                       "result"), "met": met,
            "met_with_validation_selection": met_selected, "notes": notes, "mean": mean}


def retable(path: Path) -> int:
    """Rewrite a results file's table and summary from its own rows (the numbers of that run, unchanged)."""
    import json

    data = json.loads(path.read_text())
    summary = summarize(data["rows"], {**data["options"], "threads": data["threads"]},
                        wall=data["wall_seconds"], cpu=data["cpu_seconds"])
    data.update(summary)
    data["note"] = ("Table re-rendered by `python benchmarks/anomaly.py --retable` from this run's per-digit rows: "
                    "the strict one-class column leads, the DCAE baseline is added, the selected score is labelled "
                    "semi-supervised. No number of the run changed.")
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(summary["table"])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", default="512,256")
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--samples", type=int, default=8, help="posterior draws per image for -ELBO")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="smoke test: no results file")
    p.add_argument("--tag", default="anomaly")
    p.add_argument("--retable", default=None, metavar="RESULTS_JSON",
                   help="re-render the table of an existing results file from its per-digit rows (no training)")
    args = p.parse_args()
    if args.retable:
        return retable(Path(args.retable))
    args.hidden = [int(h) for h in args.hidden.split(",")]
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)  # numpy / scikit-learn BLAS too
    except ImportError:
        pass
    digits = [int(d) for d in args.digits.split(",")]
    ds = load_data("mnist", data_dir=mnist_dir(args.data_dir), val_fraction=0.1, seed=0)
    start, cpu0 = time.perf_counter(), time.process_time()
    rows = []
    for d in digits:
        row = run_digit(d, ds, args)
        rows.append(row)
        print(f"digit {d}: aekit {row['aekit']:.2f} (sse {row['aekit_sse']:.2f})  PCA {row['pca']:.2f} (k={row['pca_k']})  "
              f"IForest {row['iforest']:.2f}  DeepSVDD {row['deep_svdd']}  train {row['train_s']:.0f}s "
              f"(cpu {row['train_cpu_s']:.0f}s)", flush=True)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    summary = summarize(rows, vars(args), wall=wall, cpu=cpu)
    print(summary["table"])
    mean = summary["mean"]
    print(f"mean AUROC aekit {mean['aekit']:.2f} (target >= 95: {'met' if summary['met'] else 'not met'}); "
          f"wall {wall:.0f}s, cpu {cpu:.0f}s at {args.threads} thread(s)")
    if args.quick:
        return 0  # a smoke run writes no results file
    write_results(args.tag, {**summary, "rows": rows, "wall_seconds": wall, "cpu_seconds": cpu, "threads": args.threads,
                             "options": {k: v for k, v in vars(args).items() if k not in ("quick",)}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
