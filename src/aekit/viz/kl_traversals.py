"""Latent traversals of a VAE, one row per unit, ordered by the unit's KL (most informative first).

In a disentangled code (beta-VAE, capacity-annealed VAE on dSprites) each informative unit
moves one factor (x, y, scale, ...) and the units with KL near 0 have collapsed to the prior
and decode to the same image along the row. Ordering the rows by KL(q(z_u | x) || N(0, 1))
puts the units that carry information on top, as in Burgess et al. 2018, fig. 3.

    fig = plot_traversals_by_kl(model, codes, kl_per_unit)    # codes (N, D), kl_per_unit (D,)
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .figures import image_grid_figure
from .images import _check_decoder, _check_image_model


def kl_order(kl_per_unit) -> np.ndarray:
    """Unit indices sorted by KL, largest first (ties by index): (D,) int."""
    kl = np.asarray(kl_per_unit, dtype=np.float64).reshape(-1)
    return np.lexsort((np.arange(kl.size), -kl))


@torch.no_grad()
def plot_traversals_by_kl(model, codes, kl_per_unit, *, steps: int = 9, span: float = 2.5, max_dims: int = 16,
                          title: str | None = None):
    """Rows: the max_dims units of largest KL, each moved over [-span, span] prior sd around a typical code."""
    _check_image_model(model, "plot_traversals_by_kl")
    _check_decoder(model, "plot_traversals_by_kl")
    z = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)   # (N, D)
    kl = np.asarray(kl_per_unit, dtype=np.float64).reshape(-1)
    if z.ndim != 2 or kl.size != z.shape[1]:
        raise ConfigError(f"kl_per_unit must have one value per code unit ({z.shape[-1]}); got {kl.size}.")
    model.eval()
    d = z.shape[1]
    base = z[np.argmin(((z - np.median(z, axis=0)) ** 2).sum(1))]     # (D,) a real, typical code
    dims = kl_order(kl)[:max_dims]
    t = np.linspace(-span, span, steps)                                # (steps,) offsets in prior sd
    grid = np.repeat(base[None], len(dims) * steps, axis=0).reshape(len(dims), steps, d)
    for r, u in enumerate(dims):
        grid[r, :, u] = base[u] + t
    device = next(model.parameters()).device
    images = model.decode(torch.as_tensor(grid.reshape(-1, d), dtype=torch.float32, device=device)).cpu()
    return image_grid_figure(images, cols=steps, title=title or f"Traversals ordered by KL (prior sd -{span:g} to +{span:g})",
                             x_labels=[f"{v:+.1f}" for v in t],
                             y_labels=[f"z[{u}] {kl[u]:.2f} nats" for u in dims], x_name="offset in prior sd",
                             cell=0.5)


__all__ = ["kl_order", "plot_traversals_by_kl"]
