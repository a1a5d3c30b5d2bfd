"""What the explorer serves: a model, the codes of some data, and the 2-D map of those codes.

Images travel as base64 float32 (see image()); codes and map points as JSON numbers.

The map is the code itself when latent_dim <= 2 (a 1-D code is drawn on the x axis) and its
first two principal components otherwise: map = (z - mean) @ V.T with V (2, D) the top right
singular vectors of the centred codes. A point p of the map decodes through the inverse
projection z = mean + p @ V, the code in the principal plane that projects onto p.

Everything here is plain computation (no HTTP); server.py exposes it and validate.py checks
what clients send before it gets here.
"""

from __future__ import annotations

import base64

import numpy as np
import torch

from ...errors import ConfigError

MAX_POINTS = 2000  # points drawn on the map by default: enough to see clusters, light for the page
ROUND = 5  # decimals of the numbers sent to the page


def _plain(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype=np.float64), ROUND).tolist()


class ExploreState:
    """Holds the model (eval mode, float32, CPU), the data codes and the projection; thread-safe reads."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None, *,
                 max_points: int = MAX_POINTS, seed: int = 0, title: str = "") -> None:
        if getattr(model, "uses_skips", False):
            raise ConfigError("this model is a U-Net with skip connections (skips=True): its decoder needs the "
                              "encoder's feature maps, so a code alone cannot be decoded or explored.")
        if x.shape[0] == 0:
            raise ConfigError("the data to explore has no samples.")
        self.model = model.to("cpu").float().eval()
        self.title = title
        n = x.shape[0]
        if n > max_points:  # a seeded subset keeps the map light
            idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_points].sort().values
            x = x[idx]
            labels = labels[idx] if labels is not None else None
        self.x = x.float().contiguous()  # (N, *shape)
        self.labels = None if labels is None else [int(v) for v in labels.reshape(-1).tolist()]
        with torch.no_grad():
            self.codes = torch.cat([self.model.encode(c) for c in self.x.split(512)]).double().numpy()  # (N, D)
        self.latent_dim = int(self.model.latent_dim)
        self.input_shape = tuple(int(s) for s in self.model.input_shape)
        self._fit_projection()
        lo, hi = self.codes.min(axis=0), self.codes.max(axis=0)  # (D,) each
        span = np.maximum(hi - lo, 1e-3)
        self.slider_lo, self.slider_hi = lo - 0.25 * span, hi + 0.25 * span  # room to move past the data
        self.value_range = (float(self.x.min()), float(self.x.max()))
        self.features = None  # a FeatureBrowser (features.py) when the explorer shows a sparse autoencoder

    # ------------------------------------------------------------------ projection
    def _fit_projection(self) -> None:
        d = self.latent_dim
        if d <= 2:
            self.projection = "identity"
            self.mean = np.zeros(d)
            self.components = np.eye(d)  # (d, d)
            self.explained = [1.0]
        else:
            self.projection = "pca"
            self.mean = self.codes.mean(axis=0)  # (D,)
            _, s, vt = np.linalg.svd(self.codes - self.mean, full_matrices=False)
            self.components = vt[:2]  # (2, D), orthonormal rows
            var = s**2
            self.explained = (var[:2] / max(var.sum(), 1e-300)).tolist()
        self.points = self.project(self.codes)  # (N, 2)

    def project(self, z: np.ndarray) -> np.ndarray:
        """(n, D) codes -> (n, 2) map coordinates (y = 0 for a 1-D code)."""
        p = (np.atleast_2d(z) - self.mean) @ self.components.T  # (n, k), k = min(2, D)
        return p if p.shape[1] == 2 else np.concatenate([p, np.zeros((p.shape[0], 1))], axis=1)

    def unproject(self, point) -> np.ndarray:
        """(2,) map coordinates -> (D,) code in the plane of the projection (exact inverse for D <= 2)."""
        p = np.asarray(point, dtype=np.float64)[: self.components.shape[0]]
        return self.mean + p @ self.components

    # ------------------------------------------------------------------ model calls
    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """(n, D) codes -> (n, *input_shape) reconstruction means."""
        return self.model.decode(torch.as_tensor(np.atleast_2d(z), dtype=torch.float32)).double().numpy()

    def image(self, values: np.ndarray) -> dict:
        """An image (or vector) for the page: little-endian float32 values in base64, C order of `shape`.

        Base64 rather than a JSON list of numbers: formatting 784 floats as text cost more than the
        decoder itself (measured: benchmarks/explore_load.py).
        """
        raw = np.ascontiguousarray(values, dtype="<f4").tobytes()
        return {"shape": list(self.input_shape), "dtype": "float32", "data": base64.b64encode(raw).decode("ascii")}

    def decode_response(self, z: np.ndarray) -> dict:
        x = self.decode(z[None])[0]
        return {"z": _plain(z), "point": _plain(self.project(z[None])[0]), "image": self.image(x)}

    def interpolate(self, a: int, b: int, steps: int) -> dict:
        """Decode the straight line between the codes of samples a and b: `steps` images."""
        t = np.linspace(0.0, 1.0, steps)[:, None]  # (steps, 1)
        z = (1 - t) * self.codes[a] + t * self.codes[b]  # (steps, D)
        x = self.decode(z)
        return {"a": a, "b": b, "z": _plain(z), "points": _plain(self.project(z)),
                "images": [self.image(v) for v in x],
                "originals": [self.image(self.x[i].double().numpy()) for i in (a, b)]}

    def info(self) -> dict:
        return {
            "title": self.title, "latent_dim": self.latent_dim, "input_shape": list(self.input_shape),
            "projection": self.projection, "explained_variance": _plain(self.explained),
            "n_points": len(self.points), "points": _plain(self.points), "labels": self.labels,
            "slider_min": _plain(self.slider_lo), "slider_max": _plain(self.slider_hi),
            "center": _plain(self.mean if self.projection == "pca" else self.codes.mean(axis=0)),
            "value_range": [round(v, ROUND) for v in self.value_range],
            "variant": (getattr(self.model, "config", {}) or {}).get("variant"),
            "features": None if self.features is None else {"name": self.features.name, "layer": self.features.layer,
                                                             "n_latents": self.features.n_latents},
        }


__all__ = ["ExploreState", "MAX_POINTS"]
