"""Sparse autoencoders of an MNIST classifier's hidden layer, aekit beside dictionary-learning and sae-lens (issue 21, b).

A 784-256-10 ReLU classifier is trained here (seeded, 3 epochs, Adam); its hidden layer's ReLU output
(d = 256) is captured with aekit's hooks into on-disk stores (60,000 training rows, 10,000 test rows).
Every SAE has 1,024 latents and trains on the same rows for the same number of steps (epochs x
floor(60,000 / batch) batches of `batch` rows: equal training tokens), Adam at the same learning rate
with the same warm-up, constant after it:

- aekit (train_sae, streamed from the store through the shuffling buffer): TopK and BatchTopK at
  k = 8, 16, 32; JumpReLU and ReLU + L1 at two sparsity coefficients each;
- dictionary-learning (its trainSAE with TopKTrainer / BatchTopKTrainer, normalize_activations) and
  sae-lens (its SAETrainer with a TopKTrainingSAE, normalize_activations='expected_average_only_in')
  at the same k, each in its own environment (/tmp/venv-NAME, torch 2.13.0) through
  benchmarks/sae_external_worker.py.

On the test rows: L0, FVU (1 - explained variance), dead fraction (no firing on any test row); and
the downstream effect: the classifier's test cross-entropy and accuracy with the hidden layer replaced by
the reconstruction, against the original and zero-ablation (fraction of loss recovered). Samples per
second of training (1 thread). Machine load is recorded.

    OMP_NUM_THREADS=1 python benchmarks/sae_mnist.py            # the published run (about 15 CPU-minutes)
    OMP_NUM_THREADS=1 python benchmarks/sae_mnist.py --quick    # a smoke run (written outside results/)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import markdown, mnist_dir, train_mnist_classifier, write_results  # noqa: E402

from aekit.data.load import load_data  # noqa: E402
from aekit.errors import ShortRunWarning  # noqa: E402
from aekit.tasks.sae import capture, downstream_effect, fvu, train_sae  # noqa: E402

WORKER = Path(__file__).resolve().parent / "sae_external_worker.py"
VENVS = {"dictionary_learning": "/tmp/venv-dictionary-learning", "sae_lens": "/tmp/venv-sae-lens"}


def splice_rows(x_hat: torch.Tensor):
    """A reconstruct function that hands out the precomputed rows in order (downstream_effect's batches are in order)."""
    state = {"at": 0}

    def fn(rows):
        out = x_hat[state["at"]:state["at"] + rows.shape[0]]
        state["at"] += rows.shape[0]
        return out

    return fn


def score(name: str, x_hat: torch.Tensor, test_acts, host, x_test, y_test, extra: dict) -> dict:
    effect = downstream_effect(host, layer="2", reconstruct=splice_rows(x_hat), data=[(x_test, y_test)])
    return {"sae": name, **extra, "fvu": round(fvu(test_acts, x_hat), 4),
            "loss_recovered": round(effect["fraction_loss_recovered"], 4),
            "ce_sae": round(effect["loss_sae"], 4), "acc_sae": round(effect["accuracy_sae"], 4),
            "_effect": effect}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, written outside benchmarks/results")
    ap.add_argument("--mnist-dir", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ShortRunWarning)
    t_all, load = time.perf_counter(), [os.getloadavg()]
    if args.quick:
        n_train, n_test, clf_epochs, latents, ks, epochs, batch = 4000, 1000, 1, 128, [8], 1, 256
        coeffs = {"jumprelu": [0.01], "relu": [0.01]}
    else:
        n_train, n_test, clf_epochs, latents, ks, epochs, batch = 60000, 10000, 3, 1024, [8, 16, 32], 5, 512
        coeffs = {"jumprelu": [0.003, 0.03], "relu": [0.003, 0.03]}
    lr, warmup, seed = 1e-3, (5 if args.quick else 50), 0
    ds = load_data("mnist", data_dir=mnist_dir(args.mnist_dir), val_fraction=0.0)
    x_train, y_train = ds.split("train")
    x_test, y_test = ds.split("test")
    x_train, y_train, x_test, y_test = x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]
    t0 = time.perf_counter()
    host = train_mnist_classifier(x_train, y_train, epochs=clf_epochs, seed=seed)
    with torch.no_grad():
        acc = float((host(x_test).argmax(1) == y_test).double().mean())
    print(f"classifier: test accuracy {acc:.4f} ({time.perf_counter() - t0:.1f} s)", flush=True)
    rows, external_errors = [], {}
    with tempfile.TemporaryDirectory(prefix="aekit-sae-mnist-") as tmp:
        tmp = Path(tmp)
        train_store = capture(host, layer="2", data=x_train, store=tmp / "train")
        test_store = capture(host, layer="2", data=x_test, store=tmp / "test")
        test_acts = torch.from_numpy(test_store.read(0, len(test_store)))
        np.save(tmp / "train.npy", train_store.read(0, len(train_store)))
        np.save(tmp / "test.npy", test_acts.numpy())
        steps = (n_train // batch) * epochs
        settings = [("topk", {"k": k}) for k in ks] + [("batch_topk", {"k": k}) for k in ks]
        settings += [("jumprelu", {"sparsity": c, "threshold": 0.1, "bandwidth": 0.05}) for c in coeffs["jumprelu"]]
        settings += [("relu", {"l1": c}) for c in coeffs["relu"]]
        for activation, options in settings:
            t0 = time.perf_counter()
            sae, result = train_sae(train_store, n_latents=latents, activation=activation, epochs=epochs,
                                    batch_size=batch, lr=lr, schedule="none", warmup_steps=warmup, seed=seed,
                                    dead_window=n_train, drop_last=True, **options)
            seconds = time.perf_counter() - t0
            with torch.no_grad():
                z = sae.encode(test_acts)
                x_hat = sae.decode(z)
            trained = result.history[-1]["step"] * batch
            extra = {"library": "aekit", "k": options.get("k"),
                     "coefficient": options.get("sparsity", options.get("l1")),
                     "l0": round(float((z != 0).sum(1).double().mean()), 2),
                     "dead": round(float((~(z != 0).any(0)).double().mean()), 4),
                     "samples": trained, "samples_per_s": round(trained / seconds, 1)}
            rows.append(score(activation, x_hat, test_acts, host, x_test, y_test, extra))
            print({k: v for k, v in rows[-1].items() if k != "_effect"}, flush=True)
        load.append(os.getloadavg())
        for lib, kinds in (("dictionary_learning", ("topk", "batch_topk")), ("sae_lens", ("topk",))):
            python = Path(VENVS[lib]) / "bin" / "python"
            if not python.is_file():
                external_errors[lib] = f"no environment at {VENVS[lib]}"
                continue
            for kind in kinds:
                for k in ks:
                    out = tmp / f"{lib}_{kind}_{k}"
                    cmd = [str(python), str(WORKER), "--lib", lib, "--kind", kind, "--train", str(tmp / "train.npy"),
                           "--test", str(tmp / "test.npy"), "--k", str(k), "--latents", str(latents), "--epochs",
                           str(epochs), "--batch-size", str(batch), "--lr", str(lr), "--warmup", str(warmup),
                           "--seed", str(seed), "--out", str(out)]
                    proc = subprocess.run(cmd, capture_output=True, text=True,
                                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""})
                    if proc.returncode != 0:
                        last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["(no message)"]
                        external_errors[f"{lib} {kind} k={k}"] = last[0]
                        print(lib, kind, k, "failed:", last[0], flush=True)
                        continue
                    info = json.loads(Path(str(out) + ".json").read_text())
                    x_hat = torch.from_numpy(np.load(str(out) + "_xhat.npy"))
                    extra = {"library": lib.replace("_", "-"), "k": k, "coefficient": None,
                             "l0": round(info["l0"], 2), "dead": round(info["dead_fraction"], 4),
                             "samples": info["samples"], "samples_per_s": info["samples_per_s"]}
                    rows.append(score(kind, x_hat, test_acts, host, x_test, y_test, extra))
                    print({k2: v for k2, v in rows[-1].items() if k2 != "_effect"}, flush=True)
        load.append(os.getloadavg())
    base = rows[0]["_effect"]
    for r in rows:
        r.pop("_effect")
    columns = ["library", "sae", "k", "coefficient", "l0", "fvu", "loss_recovered", "acc_sae", "dead", "samples",
               "samples_per_s"]
    rows.sort(key=lambda r: (r["sae"], r["k"] or 0, r["library"], r["coefficient"] or 0))
    table = (f"Classifier 784-256-10 (ReLU), test accuracy {acc:.4f}, test cross-entropy {base['loss_original']:.4f}; "
             f"zero-ablating its hidden layer: cross-entropy {base['loss_zero']:.4f}, accuracy "
             f"{base['accuracy_zero']:.4f}. SAEs of {latents} latents on d = 256, {steps} steps of {batch} rows each "
             f"(lr {lr}, {warmup} warm-up steps, then constant). Test rows: {n_test}.\n\n" + markdown(rows, columns))
    if external_errors:
        table += "\n\nNot run: " + "; ".join(f"{k}: {v}" for k, v in external_errors.items())
    path = write_results("sae_mnist", {
        "title": "Sparse autoencoders of an MNIST classifier's hidden layer: L0 vs FVU and loss recovered, aekit beside "
                 "dictionary-learning and sae-lens (equal k, equal training rows, 1 thread)",
        "setup": {"n_train": n_train, "n_test": n_test, "classifier_epochs": clf_epochs, "classifier_accuracy": acc,
                  "latents": latents, "ks": ks, "epochs": epochs, "batch_size": batch, "lr": lr, "warmup_steps": warmup,
                  "coefficients": coeffs, "seed": seed},
        "downstream_baseline": base, "external_errors": external_errors, "loadavg": load,
        "seconds": round(time.perf_counter() - t_all, 1), "rows": rows, "table": table}, quick=args.quick)
    print(table)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
