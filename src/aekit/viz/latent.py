"""Plots of the latent space: scatter of codes, the decoded manifold, and per-unit traversals.

- plot_latent_scatter: codes (N, D) in 2-D coloured by label; D > 2 is projected with PCA, or
  t-SNE (method="tsne", van der Maaten & Hinton 2008) on at most 2000 points.
- manifold_grid / plot_manifold: images decoded on an n x n grid of codes. D = 2: the code axes;
  D > 2: the plane of the codes' first two principal directions. Deterministic codes span the
  1st-99th percentiles of the (projected) codes around their mean; VAEs span the prior's 5%-95%
  quantiles (Kingma & Welling 2014, fig. 4), centred at the prior mean 0.
- plot_traversals: one row per latent unit: a base code (the encoded input nearest to the
  codes' median) with that unit moved from -3 to +3 standard deviations (the codes' per-unit sd;
  the prior's sd 1 for VAEs), decoded. At most max_dims units, those whose codes vary most.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.lines import Line2D

from .figures import image_grid_figure, new_figure
from .images import _check_decoder, _check_image_model


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)


def project_2d(codes, *, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """codes (N, D) -> ((N, 2) coordinates, axis names). D <= 2 is shown as is (D = 1 with jitter)."""
    z = _numpy(codes)
    n, d = z.shape
    if d == 1:
        jitter = np.random.default_rng(seed).uniform(-0.5, 0.5, size=n)
        return np.stack([z[:, 0], jitter], axis=1), ("z[0]", "jitter")
    if d == 2:
        return z, ("z[0]", "z[1]")
    if n < 2:  # one code: no direction of variance to project on; its first two units
        return z[:, :2], ("z[0]", "z[1]")
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(5.0, (n - 1) / 3)))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
        return xy, ("t-SNE 1", "t-SNE 2")
    if method != "pca":
        raise ValueError(f"method must be 'pca' or 'tsne'; got {method!r}")
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed).fit(z)
    ratio = pca.explained_variance_ratio_
    return pca.transform(z), (f"PC 1 ({ratio[0]:.0%} of variance)", f"PC 2 ({ratio[1]:.0%})")


def plot_latent_scatter(codes, labels=None, *, method: str = "pca", seed: int = 0, max_points: int = 2000,
                        prior_circles: bool = False, title: str | None = None):
    """codes (N, D), labels (N,) or None -> scatter figure (a random max_points subset)."""
    z = _numpy(codes)
    y = None if labels is None else _numpy(labels).astype(int)
    if z.shape[0] > max_points:
        keep = np.random.default_rng(seed).choice(z.shape[0], size=max_points, replace=False)
        z, y = z[keep], (None if y is None else y[keep])
    xy, (xname, yname) = project_2d(z, method=method, seed=seed)
    fig = new_figure(width=5.6, height=4.6)
    ax = fig.add_subplot()
    if y is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.7, color="tab:blue", linewidths=0)
    else:
        classes = np.unique(y)
        cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
        if len(classes) <= 20:  # one scatter call (fast), a legend of proxy markers
            index = {c: i for i, c in enumerate(classes)}
            ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.8, c=[cmap(index[v] % cmap.N) for v in y], linewidths=0)
            handles = [Line2D([], [], ls="", marker="o", ms=5, color=cmap(i % cmap.N), label=str(c))
                       for i, c in enumerate(classes)]
            ax.legend(handles=handles, title="label", fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        else:
            sc = ax.scatter(xy[:, 0], xy[:, 1], s=8, c=y, cmap="viridis", linewidths=0)
            fig.colorbar(sc, ax=ax, label="label")
    if prior_circles and z.shape[1] == 2:
        t = np.linspace(0, 2 * np.pi, 200)
        for r in (1.0, 2.0):
            ax.plot(r * np.cos(t), r * np.sin(t), "k--", lw=0.7, alpha=0.5)
    ax.set_xlabel(xname)
    ax.set_ylabel(yname)
    what = {"pca": "PCA", "tsne": "t-SNE"}.get(method, method) if z.shape[1] > 2 else "codes"
    ax.set_title(title or f"Latent space ({what}, {z.shape[0]} points, D = {z.shape[1]})", fontsize=10)
    return fig


def manifold_grid(model, codes, *, n: int = 15) -> tuple[torch.Tensor, np.ndarray, np.ndarray, str]:
    """(n*n, D) codes on the grid (row-major, top row = largest second coordinate), the two axes' values, a note."""
    from scipy.stats import norm

    z = _numpy(codes)
    d = z.shape[1]
    generative = bool(model.provides("posterior"))
    if d == 1:
        raise ValueError("a 2-D manifold needs latent_dim >= 2")
    if d == 2:  # the code axes themselves, in absolute coordinates
        center, axes = np.zeros(2), np.eye(2)
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2).fit(z)
        center, axes = (np.zeros(d) if generative else pca.mean_), pca.components_  # (D,), (2, D)
    if generative:  # the prior is isotropic: every unit direction has N(0, 1) marginals
        u = v = norm.ppf(np.linspace(0.05, 0.95, n))
        note = "prior quantiles 5%-95%" + (" in the codes' top 2 principal directions" if d > 2 else "")
    else:
        proj = (z - center) @ axes.T  # (N, 2)
        lo, hi = np.percentile(proj, [1, 99], axis=0)
        u, v = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
        note = "1st-99th percentiles of the codes" + (" in their top 2 principal directions" if d > 2 else "")
    vv, uu = np.meshgrid(v[::-1], u, indexing="ij")  # (n, n): rows go down in v, columns right in u
    grid = center + uu.reshape(-1, 1) * axes[0] + vv.reshape(-1, 1) * axes[1]  # (n*n, D)
    return torch.as_tensor(grid, dtype=torch.float32), u, v, note


@torch.no_grad()
def plot_manifold(model, codes, *, n: int = 15, title: str | None = None):
    """Decode manifold_grid(model, codes, n=n) and show it as an n x n grid of images."""
    _check_image_model(model, "plot_manifold")
    _check_decoder(model, "plot_manifold")
    model.eval()
    grid, u, v, note = manifold_grid(model, codes, n=n)
    device = next(model.parameters()).device
    images = model.decode(grid.to(device)).cpu()  # (n*n, C, H, W)
    d = _numpy(codes).shape[1]
    names = ("z[0]", "z[1]") if d == 2 else ("PC 1", "PC 2")
    ticks = lambda a: [f"{t:.2g}" if i % max(1, n // 5) == 0 else "" for i, t in enumerate(a)]  # noqa: E731
    return image_grid_figure(images, cols=n, title=title or f"Decoded manifold ({note})",
                             x_labels=ticks(u), y_labels=ticks(v[::-1]), x_name=names[0], y_name=names[1])


@torch.no_grad()
def plot_traversals(model, codes, *, steps: int = 9, span: float = 3.0, max_dims: int = 10, title: str | None = None):
    """Rows: one latent unit each, moved over [-span, span] sd around a base code; columns: the values."""
    _check_image_model(model, "plot_traversals")
    _check_decoder(model, "plot_traversals")
    model.eval()
    z = _numpy(codes)  # (N, D)
    d = z.shape[1]
    base = z[np.argmin(((z - np.median(z, axis=0)) ** 2).sum(1))]  # (D,) a real, typical code
    sd = np.ones(d) if model.provides("posterior") else z.std(0)
    dims = np.sort(np.argsort(-z.var(0))[:max_dims])
    t = np.linspace(-span, span, steps)  # (steps,)
    grid = np.repeat(base[None], len(dims) * steps, axis=0).reshape(len(dims), steps, d)
    for r, u in enumerate(dims):
        grid[r, :, u] = base[u] + t * sd[u]
    device = next(model.parameters()).device
    images = model.decode(torch.as_tensor(grid.reshape(-1, d), dtype=torch.float32, device=device)).cpu()
    which = "prior sd" if model.provides("posterior") else "code sd"
    title = title or f"Latent traversals ({which} from -{span:g} to +{span:g})"
    return image_grid_figure(images, cols=steps, title=title,
                             x_labels=[f"{v:+.1f}" for v in t], y_labels=[f"z[{u}]" for u in dims],
                             x_name=f"offset in {which}", cell=0.5)
