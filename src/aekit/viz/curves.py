"""Charts of numbers: loss curves, KL per latent unit, code-activation histograms.

- plot_loss_curves: one panel per loss term of RUN_DIR/history.json (train_<term> and
  val_<term> keys, per epoch), train solid and validation dashed.
- plot_loss_comparison: validation loss of several runs on one axis.
- plot_kl_per_unit: KL(q(z_u | x) || N(0, 1)) per unit, mean over images (nats); units below
  0.01 nats are collapsed onto the prior (posterior collapse, see DESIGN.md).
- plot_code_histogram: the distribution of all code activations, for sparse models: a tall bar
  at 0 (ReLU codes) or near 0 (sigmoid codes) is the sparsity the penalty asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .figures import new_figure

COLLAPSED_NATS = 0.01


def read_history(run_dir) -> list[dict]:
    """RUN_DIR/history.json as a list of per-epoch dicts ([] when absent)."""
    path = Path(run_dir) / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []


def loss_terms(history: list[dict]) -> list[str]:
    """Term names in first-seen order: 'loss' first, then e.g. 'nll', 'kl_prior'."""
    names: list[str] = []
    for record in history:
        for key in record:
            for prefix in ("train_", "val_"):
                if key.startswith(prefix) and key[len(prefix):] not in names:
                    names.append(key[len(prefix):])
    return sorted(names, key=lambda t: (t != "loss", names.index(t)))


def plot_loss_curves(history: list[dict], *, title: str | None = "Loss per term"):
    """history: [{'epoch': 1, 'train_loss': ..., 'val_loss': ..., 'train_nll': ...}, ...] -> figure."""
    terms = loss_terms(history)
    if not terms:
        raise ValueError("the history holds no train_* or val_* values")
    cols = min(3, len(terms))
    rows = int(np.ceil(len(terms) / cols))
    fig = new_figure(width=3.4 * cols, height=2.7 * rows + 0.3)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
    for i, term in enumerate(terms):
        ax = fig.add_subplot(rows, cols, i + 1)
        for prefix, style, label in (("train_", "-", "train"), ("val_", "--", "validation")):
            points = [(e, r[prefix + term]) for e, r in zip(epochs, history) if r.get(prefix + term) is not None]
            if points:
                ax.plot(*zip(*points), style, marker="o" if len(points) < 15 else None, ms=3, label=label)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_loss_comparison(histories: dict, *, key: str = "val_loss", title: str | None = None):
    """histories: name -> history list. One line per run of `key` (falls back to train_loss)."""
    fig = new_figure(width=5.6, height=3.6)
    ax = fig.add_subplot()
    for name, history in histories.items():
        k = key if any(key in r for r in history) else "train_loss"
        points = [(r.get("epoch", i + 1), r[k]) for i, r in enumerate(history) if r.get(k) is not None]
        if points:
            ax.plot(*zip(*points), label=f"{name} ({k})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per sample")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "Validation loss per run", fontsize=10)
    return fig


def plot_kl_per_unit(kl_per_unit, *, title: str | None = "KL per latent unit"):
    """kl_per_unit: D floats (nats, mean over images) -> bar chart; collapsed units in grey."""
    kl = np.asarray(kl_per_unit, dtype=np.float64)
    fig = new_figure(width=max(4.0, 0.22 * len(kl) + 1.5), height=3.2)
    ax = fig.add_subplot()
    colors = ["tab:blue" if v >= COLLAPSED_NATS else "tab:gray" for v in kl]
    ax.bar(np.arange(len(kl)), kl, color=colors)
    ax.set_xlabel("latent unit")
    ax.set_ylabel("KL (nats)")
    active = int((kl >= COLLAPSED_NATS).sum())
    ax.set_title(f"{title} ({active} of {len(kl)} units above {COLLAPSED_NATS} nats)" if title else None, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(kl) <= 32:
        ax.set_xticks(np.arange(len(kl)))
        ax.tick_params(axis="x", labelsize=7)
    return fig


def plot_code_histogram(codes, *, bins: int = 60, title: str | None = "Code activations"):
    """codes (N, D) -> histogram of all N*D activations (log counts) with the share near zero."""
    z = codes.detach().cpu().double().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes, np.float64)
    values = z.reshape(-1)
    spread = float(np.abs(values).max()) or 1.0
    near_zero = float((np.abs(values) <= 0.05 * spread).mean())
    fig = new_figure(width=5.0, height=3.2)
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, color="tab:purple", log=True)
    ax.set_xlabel("activation")
    ax.set_ylabel("count (log)")
    ax.grid(alpha=0.3)
    mean_active = float((np.abs(z) > 0.05 * spread).sum(1).mean())
    ax.set_title(f"{title}: {near_zero:.0%} within 5% of max |z| of 0\n~{mean_active:.1f} of {z.shape[1]} "
                 "units active per input" if title else None, fontsize=9)
    return fig
