"""`aekit compare RUN_DIR...`: several runs side by side, as one HTML page and a Markdown table.

Per run: metrics (aekit.evaluation.evaluate_run on the run's test split) and the latent
diagnostics (aekit.viz.diagnostics), one row each, plus a PCA baseline row at each code size
(fitted on the first run's training split, scored on the same test inputs) when every run shares
those inputs, as `aekit demo` prints it; then the same test inputs reconstructed by every image
model in one figure, each run's latent space (a grid), and the validation loss curves.

    from aekit.viz.compare import write_comparison
    html_path, md_path = write_comparison(["runs/ae", "runs/vae"], out="compare.html")
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import atomic_write_bytes
from ..training.runs import load_run, run_data
from . import templates as T
from .curves import plot_loss_comparison, read_history
from .diagnostics import diagnose, encode_codes
from .figures import png_bytes
from .images import is_image_model, plot_reconstruction_comparison, plot_reconstructions
from .latent import plot_latent_scatter

COLUMNS = ["run", "variant", "latent", "params", "mse_per_pixel", "psnr", "ssim", "elbo", "kl", "gap_fraction",
           "gap_fraction_box", "probe_accuracy", "knn_accuracy", "silhouette", "jump_ratio", "path_ratio"]
TERMINAL_COLUMNS = ["run", "variant", "latent", "params", "mse_per_pixel", "psnr", "ssim", "elbo", "kl",
                    "probe_accuracy", "gap_fraction"]
PCA_NAME = "PCA (baseline)"
LOWER_IS_BETTER = {"mse_per_pixel", "gap_fraction", "gap_fraction_box", "jump_ratio", "path_ratio"}


def run_names(run_dirs) -> list[str]:
    """Folder names, or the whole paths where two folders share a name."""
    names = [Path(r).name or str(r) for r in run_dirs]
    return [n if names.count(n) == 1 else str(r) for n, r in zip(names, run_dirs)]


@torch.no_grad()
def collect(run_dirs, *, names=None, data: str | None = None, data_dir: str | None = None, n_images: int = 10,
            seed: int = 0) -> list[dict]:
    """One dict per run: name, row (metrics + diagnostics), model, x (test inputs), y, history."""
    from ..evaluation import evaluate_run

    from ..training.progress import progress

    names = list(names) if names is not None else run_names(run_dirs)
    runs = []
    for name, run_dir in progress(list(zip(names, run_dirs)), desc="compare: evaluating runs", unit="run"):
        model, info = load_run(run_dir)
        x, y, ds, what = run_data(info, source=data, data_dir=data_dir, model=model)
        metrics = evaluate_run(run_dir, data=data, data_dir=data_dir)
        diag = diagnose(model, ds.train, x, y_train=ds.y_train, y_test=y, seed=seed)
        row = {"run": name, "variant": info.get("variant") or model.variant, "latent": model.latent_dim,
               "params": sum(p.numel() for p in model.parameters()), "data": what,
               **{k: v for k, v in metrics.items() if k != "kl_per_unit"},
               **{k: d["value"] for k, d in diag.items()}}
        runs.append({"name": name, "row": row, "model": model, "x": x, "y": y, "history": read_history(run_dir),
                     "diagnostics": diag, "run_dir": str(run_dir), "train": ds.train, "info": info})
    return runs


@torch.no_grad()
def pca_rows(runs: list[dict]) -> list[dict]:
    """PCA at each run's code size, fitted on the first run's training split and scored like the runs
    (evaluate_run's inputs, binarized as the run was); [] unless every run is scored on the same inputs."""
    from sklearn.decomposition import PCA

    from ..evaluation import binarized
    from ..metrics import reconstruction_metrics, ssim

    first = runs[0]
    x = first["x"]
    if any(r["x"].shape != x.shape or not torch.equal(r["x"], x) for r in runs[1:]):
        return []
    x_eval, _ = binarized(x, first["info"])
    train = first["train"].flatten(1).double().numpy()  # (N, D)
    rows = []
    for k in sorted({int(r["model"].latent_dim) for r in runs}):
        if k > min(train.shape):
            continue
        pca = PCA(n_components=k, svd_solver="full").fit(train)
        flat = x_eval.flatten(1).double().numpy()
        rec = torch.from_numpy(pca.inverse_transform(pca.transform(flat))).view_as(x_eval).float()
        row = {"run": PCA_NAME, "variant": "pca", "latent": k, "params": int(pca.components_.size + pca.mean_.size),
               "data": first["row"].get("data"), **reconstruction_metrics(x_eval, rec)}
        if first["row"].get("ssim") is not None:
            row["ssim"] = ssim(x_eval, rec)  # unclipped, as evaluate_run scores the runs
        rows.append(row)
    return rows


def terminal_columns(rows: list[dict]) -> list[str]:
    """The columns of the table `aekit compare` prints: the main metrics that any row has."""
    return [c for c in TERMINAL_COLUMNS if any(r.get(c) is not None for r in rows)]


@torch.no_grad()
def reconstruction_figures(runs: list[dict], *, n: int = 10) -> list[tuple[str, object]]:
    """One figure of every image model on the same inputs when they share them; else one per run."""
    image_runs = [r for r in runs if is_image_model(r["model"])]
    if not image_runs:
        return []
    first = image_runs[0]["x"][:n]
    if all(r["x"].shape[1:] == first.shape[1:] and torch.equal(r["x"][:n], first) for r in image_runs):
        recs = {r["name"]: r["model"].reconstruct(first) for r in image_runs}
        title = "Reconstructions of the same test inputs"
        return [("all runs", plot_reconstruction_comparison(first, recs, title=title))]
    return [(r["name"], plot_reconstructions(r["model"], r["x"], n=n, title=r["name"])) for r in image_runs]


def _columns(rows: list[dict]) -> list[str]:
    return [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]


def markdown(rows: list[dict], *, image: str | None = None) -> str:
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(T.fmt(r.get(c)) for c in cols) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    if image:
        text += f"\n![reconstructions of the same test inputs]({image})\n"
    return text


def comparison_html(runs: list[dict], *, recon_pngs: list[tuple[str, bytes]] | None = None, seed: int = 0,
                    pca: list[dict] | None = None) -> str:
    """The page; recon_pngs: [(name, PNG bytes)] of reconstruction_figures (computed when None)."""
    if recon_pngs is None:
        recon_pngs = [(name, png_bytes(fig)) for name, fig in reconstruction_figures(runs)]
    rows = [r["row"] for r in runs]
    baseline = pca_rows(runs) if pca is None else pca
    rows = rows + baseline
    cols = _columns(rows)
    legend = ("<p class='note'>Lower is better for " + ", ".join(sorted(c for c in LOWER_IS_BETTER if c in cols))
              + "; gap_fraction is about 0.05 when the codes have no holes. Metrics on each run's test split."
              + (f" {PCA_NAME}: PCA at the same code size, fitted on the first run's training split." if baseline else "")
              + "</p>")
    sections = [("metrics", "Metrics and diagnostics", T.table(rows, cols) + legend)]
    figs = "".join(T.figure_html(png, alt=f"reconstructions: {name}", caption=name) for name, png in recon_pngs)
    if figs:
        sections.append(("reconstructions", "Reconstructions", f"<div class='grid'>{figs}</div>"))
    scatters = "".join(T.figure_html(png_bytes(plot_latent_scatter(encode_codes(r["model"], r["x"]), r["y"], seed=seed,
                                                                   title=f"{r['name']} (D = {r['model'].latent_dim})",
                                                                   prior_circles=r["model"].provides("posterior"))),
                                     alt=f"latent space: {r['name']}") for r in runs)
    sections.append(("latent-space", "Latent spaces", f"<div class='grid'>{scatters}</div>"))
    histories = {r["name"]: r["history"] for r in runs if r["history"]}
    if histories:
        sections.append(("loss-curves", "Loss curves",
                         T.figure_html(png_bytes(plot_loss_comparison(histories)), alt="validation loss per run")))
    item = "<li><b>{}</b> = {}: {}</li>"
    readings = "".join(f"<h3>{T.esc(r['name'])}</h3><ul class='note'>"
                       + "".join(item.format(T.esc(k), T.esc(T.fmt(d["value"])), T.esc(d["interpretation"]))
                                 for k, d in r["diagnostics"].items()) + "</ul>" for r in runs)
    sections.append(("diagnostics", "What the diagnostics say", readings))
    return T.page(title=f"aekit comparison: {', '.join(r['name'] for r in runs)}",
                  subtitle=f"{len(runs)} runs | {rows[0].get('data', '')}", sections=sections)


def write_comparison(run_dirs, *, out="compare.html", md=None, names=None, data: str | None = None,
                     data_dir: str | None = None, seed: int = 0, return_rows: bool = False):
    """Write the HTML page and the Markdown table (default: out with .md) with its reconstructions PNG.

    Returns (html path, md path), and the table's rows (runs, then the PCA baseline) with return_rows=True."""
    if not run_dirs:
        raise ValueError("compare needs at least one run directory")
    runs = collect(run_dirs, names=names, data=data, data_dir=data_dir, seed=seed)
    out = Path(out)
    md = Path(md) if md is not None else out.with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    md.parent.mkdir(parents=True, exist_ok=True)
    recon_pngs = [(name, png_bytes(fig)) for name, fig in reconstruction_figures(runs)]
    baseline = pca_rows(runs)
    rows = [r["row"] for r in runs] + baseline
    atomic_write_bytes(out, comparison_html(runs, recon_pngs=recon_pngs, seed=seed, pca=baseline).encode("utf-8"))
    image = None
    if len(recon_pngs) == 1:  # one figure of every run on the same inputs: shown under the table
        image = md.with_name(md.stem + "_reconstructions.png")
        atomic_write_bytes(image, recon_pngs[0][1])
    atomic_write_bytes(md, markdown(rows, image=image.name if image else None).encode("utf-8"))
    return (out, md, rows) if return_rows else (out, md)
