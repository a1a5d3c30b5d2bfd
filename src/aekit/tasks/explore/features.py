"""The explorer's feature browser: a sparse autoencoder's latents on the explorer's own samples.

For each latent of an SAE trained on a layer of the explored model (aekit.tasks.sae): its firing
rate (share of the layer's positions where it is non-zero) and the samples that activate it most
(Bricken et al. 2023, "Towards Monosemanticity": a feature is read by its activation density and its
top-activating dataset examples). A sample's activation of a latent is its largest over the
sample's positions (one position for a dense layer, H*W for a conv map).

Computed once when the explorer starts: the layer's activations of the explorer's samples (a
forward hook, as aekit.tasks.sae.capture flattens them), the SAE's codes, then per latent the rate
and the top k samples. The server exposes `summary()` (GET /api/features) and `feature(i)` (POST
/api/feature {"latent": i}); the samples' images go through ExploreState.image.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import ConfigError
from ..sae.capture import find_layer, flatten, resolve_layout, select_output

TOP_K = 8  # samples shown per latent


class FeatureBrowser:
    """Firing rates (m,) and top samples (m, k) of an SAE's latents over an ExploreState's samples."""

    def __init__(self, state, sae, *, layer: str, layout: str = "auto", k: int = TOP_K, name: str = "") -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be a positive integer; got {k!r}.")
        self.state, self.layer, self.name = state, layer, name
        module = find_layer(state.model, layer)
        caught = []

        def hook(_module, _inputs, output):
            act = select_output(output)
            kind = resolve_layout(act, module, layout if layout in ("channels_last", "channels_first") else "auto")
            caught.append(flatten(act.detach(), kind).float().clone())  # (B * positions, d); a copy: a later in-place op (ReLU(inplace=True)) must not change it

        handle = module.register_forward_hook(hook)
        sae = sae.to("cpu").float().eval()
        n = state.x.shape[0]
        fired = 0
        per_sample = []  # (b, m) largest activation over each sample's positions
        try:
            with torch.no_grad():
                for chunk in state.x.split(256):
                    caught.clear()
                    state.model(chunk)  # the explored model's forward: the hook reads the layer
                    if not caught:
                        raise ConfigError(f"layer {layer!r} did not run in the model's forward pass.")
                    rows = caught[0]
                    if rows.shape[1] != sae.d:
                        raise ConfigError(f"layer {layer!r} gives rows of {rows.shape[1]} activations but the SAE reads "
                                          f"d={sae.d}; pick the layer the SAE was trained on.")
                    z = sae.encode(rows)  # (b * P, m)
                    fired = fired + (z != 0).sum(0, dtype=torch.float64)  # (m,)
                    positions = rows.shape[0] // chunk.shape[0]
                    per_sample.append(z.view(chunk.shape[0], positions, -1).amax(1))  # (b, m)
        finally:
            handle.remove()
        acts = torch.cat(per_sample)  # (N, m)
        self.rows = int(n * positions)
        self.firing_rate = (fired / self.rows).numpy()  # (m,)
        k = min(k, n)
        values, index = acts.topk(k, dim=0)  # (k, m) each
        self.top_values = values.T.double().numpy()  # (m, k) descending
        self.top_index = index.T.numpy()  # (m, k) sample numbers of the explorer's data
        self.n_latents = int(acts.shape[1])

    def summary(self) -> dict:
        """Every latent's firing rate and its largest activation (the list the page shows)."""
        return {"name": self.name, "layer": self.layer, "n_latents": self.n_latents, "rows": self.rows,
                "firing_rate": np.round(self.firing_rate, 6).tolist(),
                "max_activation": np.round(np.maximum(self.top_values[:, 0], 0.0), 5).tolist()}

    def feature(self, latent: int) -> dict:
        """Latent `latent`: its firing rate and the samples that activate it most (only those where it fires)."""
        top = []
        for value, i in zip(self.top_values[latent], self.top_index[latent]):
            if value <= 0:
                break
            top.append({"index": int(i), "value": round(float(value), 5),
                        "label": None if self.state.labels is None else self.state.labels[int(i)],
                        "image": self.state.image(self.state.x[int(i)].double().numpy())})
        return {"latent": int(latent), "firing_rate": round(float(self.firing_rate[latent]), 6), "top": top}


__all__ = ["FeatureBrowser", "TOP_K"]
