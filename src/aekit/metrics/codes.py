"""Statistics of discrete and sparse codes over a data set.

- codebook_usage: how many of a discrete model's K codes the data uses, and the perplexity
  exp(H(p)) of the empirical code distribution (1: one code; K: all equally; van den Oord et al.
  2017 and most VQ work report it).
- code_sparsity: mean L0 (non-zero units per input) and the fraction of dead units (never
  non-zero on the data), the figures of k-sparse and sparse autoencoders (Makhzani & Frey 2013;
  Gao et al. 2024; Bussmann et al. 2024).
"""

from __future__ import annotations

import torch

from ..axes.quantizers import perplexity
from ..errors import ConfigError


@torch.no_grad()
def code_indices(model, x: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """The integer code of each input of a discrete model (eval mode): (N,)."""
    if not model.provides("indices"):
        raise ConfigError(f"code indices need a discrete bottleneck ('vq', 'fsq'); got bottleneck="
                          f"{model.ingredient('bottleneck')!r}.")
    was = model.training
    model.eval()
    try:
        out = [model.encode_code(x[i:i + batch_size])[0].indices for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was)
    return torch.cat(out)


@torch.no_grad()
def codebook_usage(model, x: torch.Tensor, *, batch_size: int = 1000) -> dict:
    """x (N, *shape) -> {'num_codes', 'used_codes', 'usage' (fraction of codes used), 'perplexity'}."""
    idx = code_indices(model, model.as_input(x), batch_size=batch_size)  # (N,)
    k = int(model.bottleneck.num_codes)
    used = int((torch.bincount(idx, minlength=k) > 0).sum())
    return {"num_codes": k, "used_codes": used, "usage": used / k, "perplexity": float(perplexity(idx, k))}


@torch.no_grad()
def eval_codes(model, x: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """The deterministic codes of x in eval mode, in batches, the model's mode restored: (N, D)."""
    was = model.training
    model.eval()
    try:
        return torch.cat([model.encode(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was)


@torch.no_grad()
def code_sparsity(model, x: torch.Tensor, *, batch_size: int = 1000) -> dict:
    """x (N, *shape) -> {'l0' (mean non-zero units per input), 'dead_fraction' (units zero on every input)}."""
    active = eval_codes(model, x, batch_size=batch_size) != 0  # (N, D)
    return {"l0": float(active.sum(dim=1).double().mean()), "dead_fraction": float((~active.any(dim=0)).double().mean())}
