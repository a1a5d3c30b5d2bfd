"""`aekit report RUN_DIR`: one self-contained HTML page of what a run's model learned.

Sections (HTML ids): metrics, config (the key settings; every recorded option folded), diagnostics, then every plot that applies to the variant:
reconstructions, loss-curves, latent-space (+ latent-space-tsne), manifold, traversals, traversals-by-kl (VAEs),
interpolations, samples, kl-per-unit, code-histogram, denoising, compression (a rate-trained run: its
rate-distortion point beside JPEG and WebP, viz/compression.py), and not-shown (what was left out and why). Image plots need an image model; decoding plots a decoder without U-Net skips;
samples and KL a VAE; the histogram a sparse model; denoising a corruption.

    from aekit.viz.report import write_report
    path = write_report("runs/vae")            # runs/vae/report.html
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..checkpoint import atomic_write_bytes
from ..training.runs import load_run, run_data
from . import templates as T
from .curves import plot_code_histogram, plot_kl_per_unit, plot_loss_curves, read_history
from .diagnostics import GROUPS, diagnose, encode_codes
from .compression import TITLE
from .figures import png_bytes
from .images import (has_corruption, is_image_model, plot_denoising, plot_interpolations, plot_reconstructions,
                     plot_samples)
from .latent import plot_latent_scatter, plot_manifold, plot_traversals
from .kl_traversals import plot_traversals_by_kl



@dataclass
class Context:
    """What the plots of one run need. x: (N, *shape) test inputs, y: (N,) or None, z: (N, D) codes."""

    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor | None
    z: object
    history: list
    kl_per_unit: list | None
    tsne: bool
    seed: int


def is_sparse(model) -> bool:
    return model.provides("sparse_code")  # a sparse bottleneck or a sparsity penalty (l1_activity, kl_sparsity)


def _why_not(c: Context, *, image: bool = False, decoder: bool = False) -> str | None:
    if image and not is_image_model(c.model):
        return f"needs an image model; this one has input_shape={c.model.input_shape}"
    if decoder and c.model.uses_skips:
        return "decodes codes alone, which a U-Net with skips cannot do"
    return None


def _why_not_tsne(c: Context) -> str | None:
    if not c.tsne:
        return "not requested (--tsne)"
    return None if c.z.shape[1] > 2 else "the code has 2 units or fewer: the latent-space plot shows it as is"


def _why_not_manifold(c: Context) -> str | None:
    return _why_not(c, image=True, decoder=True) or (None if c.z.shape[1] >= 2 else "needs at least 2 latent units")


def _why_not_samples(c: Context) -> str | None:
    return _why_not(c, image=True, decoder=True) or (None if c.model.provides("posterior") else "only VAEs have a prior")


def _why_not_denoising(c: Context) -> str | None:
    return _why_not(c, image=True) or (None if has_corruption(c.model) else "the model has no input corruption")


# (id, title, caption, why-not(ctx) -> reason or None, make(ctx) -> Figure), in page order
PLOTS: list[tuple[str, str, str, Callable, Callable]] = [
    ("reconstructions", "Reconstructions", "Test inputs (top) and their reconstructions from the code mean.",
     lambda c: _why_not(c, image=True),
     lambda c: plot_reconstructions(c.model, c.x, n=12)),
    ("loss-curves", "Loss curves", "Each loss term per epoch from history.json: training solid, validation dashed.",
     lambda c: None if c.history else "the run has no history.json",
     lambda c: plot_loss_curves(c.history)),
    ("latent-space", "Latent space", "Test codes coloured by label (PCA when the code has more than 2 units).",
     lambda c: None,
     lambda c: plot_latent_scatter(c.z, c.y, method="pca", seed=c.seed, prior_circles=c.model.provides("posterior"))),
    ("latent-space-tsne", "Latent space (t-SNE)", "t-SNE of the test codes: neighbourhoods, not distances, matter.",
     _why_not_tsne,
     lambda c: plot_latent_scatter(c.z, c.y, method="tsne", seed=c.seed, max_points=1000)),
    ("manifold", "Decoded manifold", "Images decoded on a 2-D grid of codes; holes decode to blends or blur.",
     _why_not_manifold,
     lambda c: plot_manifold(c.model, c.z)),
    ("traversals", "Latent traversals", "One latent unit varied per row around a typical code, the others fixed.",
     lambda c: _why_not(c, image=True, decoder=True),
     lambda c: plot_traversals(c.model, c.z)),
    ("traversals-by-kl", "Traversals by KL", "VAE: every latent unit varied per row, highest KL (most informative) "
     "first; collapsed units (KL near 0) decode to one image along their row.",
     lambda c: _why_not(c, image=True, decoder=True) or (None if c.kl_per_unit is not None else "only VAEs have a posterior"),
     lambda c: plot_traversals_by_kl(c.model, c.z, c.kl_per_unit)),
    ("interpolations", "Interpolations", "Decoded straight lines between the codes of two test inputs.",
     lambda c: _why_not(c, image=True, decoder=True),
     lambda c: plot_interpolations(c.model, c.x, seed=c.seed)),
    ("samples", "Samples from the prior", "Decoded draws z ~ N(0, I).",
     _why_not_samples,
     lambda c: plot_samples(c.model, seed=c.seed)),
    ("kl-per-unit", "KL per latent unit", "Units near 0 nats carry no information (posterior collapse).",
     lambda c: None if c.kl_per_unit is not None else "only VAEs have a posterior",
     lambda c: plot_kl_per_unit(c.kl_per_unit)),
    ("code-histogram", "Code activations", "All code activations of the test inputs; sparse codes pile up at zero.",
     lambda c: None if is_sparse(c.model) else "only sparse models (l1_activity, kl_sparsity)",
     lambda c: plot_code_histogram(c.z)),
    ("denoising", "Denoising", "Clean inputs, the model's own corruption of them, and the noisy input reconstructed.",
     _why_not_denoising,
     lambda c: plot_denoising(c.model, c.x, n=12, seed=c.seed)),
]


def plot_sections(ctx: Context) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """([(id, title, body html)] for the plots that apply, {title: reason} for those left out)."""
    from ..training.progress import progress

    shown, skipped = [], {}
    for sid, title, caption, why_not, make in progress(PLOTS, desc="report: plots"):
        reason = why_not(ctx)
        if reason:
            skipped[title] = reason
            continue
        shown.append((sid, title, T.figure_html(png_bytes(make(ctx)), alt=title, caption=caption)))
    return shown, skipped


def compression_section(model, x: torch.Tensor) -> tuple[str, str, str] | str:
    """(id, title, body) of the compression section, or the reason it is left out."""
    from ..tasks.compression.rd_points import rate_distortion
    from .compression import SECTION_ID, compression_html, why_not_compression

    reason = why_not_compression(model, x)
    if reason:
        return reason
    return SECTION_ID, TITLE, compression_html(rate_distortion(model, x))


def diagnostics_html(diag: dict) -> str:
    if not diag:
        return '<p class="note">No diagnostics.</p>'
    rows = [{"group": d["group"], "diagnostic": name, "value": d["value"], "reading": d["interpretation"]}
            for g in GROUPS for name, d in diag.items() if d["group"] == g]
    return T.table(rows, ["group", "diagnostic", "value", "reading"])


KEY_MODEL = ("variant", "input_shape", "latent_dim", "backbone", "bottleneck", "likelihood", "corruption",
             "regularizers", "num_classes")
KEY_TRAIN = ("epochs", "batch_size", "lr", "optimizer", "schedule", "warmup_fraction", "binarize", "seed")
KEY_DATA = ("source", "data_dir", "max_samples", "standardize", "image_size")


def key_settings(model, info: dict) -> dict:
    """The settings that tell runs apart, in reading order; the rest stays in the full configuration."""
    from ..build import migrate_config

    try:
        cfg = migrate_config(info.get("model") or model.config)
    except Exception:  # noqa: BLE001 - a damaged run.json: the loaded model's own config
        cfg = dict(model.config)
    train, data = dict(info.get("train") or {}), dict(info.get("data") or {})
    out = {"variant": info.get("variant") or cfg.get("variant") or model.variant}
    out.update({k: cfg[k] for k in KEY_MODEL[1:] if cfg.get(k) not in (None, {}, [], "none", {"none": {}})})
    out.update({k: train[k] for k in KEY_TRAIN if train.get(k) is not None})
    out.update({f"data {k}" if k != "source" else "data": data[k] for k in KEY_DATA if data.get(k) not in (None, False)})
    return out


def config_html(model, info: dict) -> str:
    """The key settings, then every recorded option folded away (a long table nobody reads first)."""
    from ..build import migrate_config

    try:
        cfg = migrate_config(info.get("model") or model.config)
    except Exception:  # noqa: BLE001 - a damaged run.json: the loaded model's own config
        cfg = dict(model.config)
    parts = [f"<h3>Model</h3>{T.kv_table(cfg)}"]
    if info.get("train"):
        parts.append(f"<h3>Training options</h3>{T.kv_table(info['train'])}")
    if info.get("data"):
        parts.append(f"<h3>Data</h3>{T.kv_table(info['data'])}")
    return (T.kv_table(key_settings(model, info))
            + "<details><summary>Every recorded option</summary>" + "\n".join(parts) + "</details>")


def build_report(run_dir, *, data: str | None = None, data_dir: str | None = None, tsne: bool = False,
                 seed: int = 0, max_points: int = 2000, max_samples: int | None = None) -> dict:
    """{'html', 'metrics', 'diagnostics', 'sections', 'skipped'} for a run directory."""
    from ..evaluation import evaluate_run

    from ..training.progress import stages

    with stages(["load", "metrics", "diagnostics"], desc="report") as stage:
        stage("load")
        model, info = load_run(run_dir)
        x, y, ds, what = run_data(info, source=data, data_dir=data_dir, model=model, max_samples=max_samples)
        stage("metrics")
        metrics = evaluate_run(run_dir, data=data, data_dir=data_dir, max_samples=max_samples)
        stage("diagnostics")
        diag = diagnose(model, ds.train, x, y_train=ds.y_train, y_test=y, seed=seed)
    if x.shape[0] > max_points:
        keep = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:max_points]
        x, y = x[keep], (None if y is None else y[keep])
    ctx = Context(model=model, x=x, y=y, z=encode_codes(model, x), history=read_history(run_dir),
                  kl_per_unit=metrics.get("kl_per_unit"), tsne=tsne, seed=seed)
    shown, skipped = plot_sections(ctx)
    compression = compression_section(model, x)  # a rate-trained run: its R-D point beside JPEG and WebP
    if isinstance(compression, str):
        skipped[TITLE] = compression
    else:
        shown.append(compression)
    metric_items = {k: v for k, v in metrics.items() if k != "kl_per_unit"}
    sections = [("metrics", "Metrics", f"<p class='note'>On {T.esc(what)}.</p>{T.kv_table(metric_items)}"),
                ("config", "Configuration", config_html(model, info)),
                ("diagnostics", "Latent-space diagnostics", diagnostics_html(diag))] + shown
    if skipped:
        items = "".join(f"<li><b>{T.esc(k)}</b>: {T.esc(v)}</li>" for k, v in skipped.items())
        sections.append(("not-shown", "Not shown", f"<ul class='note'>{items}</ul>"))
    name = info.get("variant") or model.variant or "custom"
    subtitle = f"{Path(run_dir)} | latent_dim {model.latent_dim} | input {tuple(model.input_shape)} | {what}"
    html = T.page(title=f"aekit report: {name}", subtitle=subtitle, sections=sections)
    return {"html": html, "metrics": metrics, "diagnostics": diag, "sections": [s[0] for s in sections],
            "skipped": skipped}


def write_report(run_dir, *, out=None, data: str | None = None, data_dir: str | None = None,
                 tsne: bool = False, seed: int = 0, max_samples: int | None = None) -> Path:
    """Write the report (default RUN_DIR/report.html) and return its path."""
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    report = build_report(run_dir, data=data, data_dir=data_dir, tsne=tsne, seed=seed, max_samples=max_samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, report["html"].encode("utf-8"))
    return out
