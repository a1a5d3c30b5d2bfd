"""Evaluate a trained SAE: L0, FVU, dead and dense fractions on a store, and the downstream effect on its host.

The downstream effect (metrics.downstream_effect) runs the host with the captured layer's output
replaced by the SAE's reconstruction, as is and zero-ablated: the host's own loss for an aekit run
(its AEOutput.loss), cross-entropy and accuracy against the labels for a Python host (a classifier);
fraction of loss recovered = (L_zero - L_sae) / (L_zero - L_orig) (Bricken et al. 2023).
"""

from __future__ import annotations

import torch

from ...errors import ConfigError
from .capture import LAYOUTS
from .metrics import downstream_effect, reconstruction_metrics
from .model import SparseAutoencoder
from .train import open_store


def evaluate_sae(sae: SparseAutoencoder, store, *, host=None, inputs: torch.Tensor | None = None,
                 labels: torch.Tensor | None = None, layer: str | None = None, layout: str | None = None,
                 max_rows: int | None = None, batch_size: int = 1024, dense_threshold: float = 0.1) -> dict:
    """{'rows', 'l0', 'fvu', 'dead_fraction', 'dense_fraction'} over the store's rows (the first max_rows), and with a
    host module and its inputs the downstream effect of splicing the SAE into `layer` (default: the store's layer)."""
    store = open_store(store)
    if store.d != sae.d:
        raise ConfigError(f"the store holds rows of d={store.d} activations but the SAE reads d={sae.d}.")
    sae = sae.eval()
    out = reconstruction_metrics(store, encode=sae.encode, decode=sae.decode, batch_size=batch_size, max_rows=max_rows,
                                 dense_threshold=dense_threshold)
    if host is None:
        return out
    if inputs is None:
        raise ConfigError("the downstream effect needs the host's inputs.")
    layer = layer or store.meta.get("layer")
    if layout is None:  # the layout capture resolved ('flat' for (B, d) outputs: 'auto' finds it again)
        layout = store.meta.get("layout") if store.meta.get("layout") in LAYOUTS else "auto"
    if not layer:
        raise ConfigError("the store records no layer; pass layer=.")
    batches = [(inputs[i:i + 256], None if labels is None else labels[i:i + 256]) for i in range(0, inputs.shape[0], 256)]
    if labels is None:
        batches = [b[0] for b in batches]
    with torch.no_grad():
        effect = downstream_effect(host, layer=layer, reconstruct=lambda rows: sae(rows), data=batches, layout=layout)
    return {**out, **effect, "downstream_inputs": int(inputs.shape[0])}


__all__ = ["evaluate_sae"]
