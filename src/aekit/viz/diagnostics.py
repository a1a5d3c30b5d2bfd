"""Latent-space diagnostics: gaps, separability and continuity, each a number with a reading.

These are the weaknesses of plain autoencoders that VAEs were designed to address
(Kingma & Welling 2014; Goodfellow, Bengio & Courville 2016, ch. 20.10.3).

Gaps. The reference set R is the codes the decoder is trained on: the encoder applied to the
training inputs with the corruption and the bottleneck in training mode (so a VAE contributes
one reparameterised sample z ~ q(z | x) per input and a denoising model the code of a corrupted
input; a plain AE its deterministic codes). Let d_R(r) be the Euclidean distance from r in R to
its nearest other point of R and tau the `quantile` (0.95) of d_R over R. Draw `n_queries`
query codes q and report the fraction with min_r ||q - r|| > tau:
  - gap_fraction: q ~ N(mean(R), cov(R)), the Gaussian fitted to R (for a VAE close to the prior
    it samples from; for an AE the usual way to sample it). About 1 - quantile = 5% when R fills
    that Gaussian evenly; larger means holes the decoder is asked about but never saw.
  - gap_fraction_box: q uniform in the axis-aligned box of R's 1st-99th percentiles per unit.
Both are invariant to rescaling, rotating and shifting the codes, so AE and VAE compare.
(Measured on the deterministic code means instead, AE and VAE are not told apart: the VAE's
posterior noise, which trains its decoder on the space between the means, is what fills holes.)

Separability. probe_accuracy (logistic regression) and knn_accuracy (k = 5) fitted on training
codes and scored on test codes (aekit.metrics), and the silhouette score of test codes by label
(Rousseeuw 1987; -1..1, sklearn).

Continuity. For `pairs` random pairs of test codes (a, b), decode the 17 codes a + t (b - a),
t = 0, 1/16, ..., 1, and take the L2 steps s_i between consecutive decoded outputs:
  - jump_ratio: max_i s_i / mean_i s_i, averaged over pairs (1 = even change; large = jumps);
  - path_ratio: sum_i s_i / ||x(b) - x(a)||, averaged over pairs (1 = a straight path in data
    space; large = a detour through other images).
"""

from __future__ import annotations

import numpy as np
import torch

GROUPS = ("gaps", "separability", "continuity")


def _entry(group: str, value: float, interpretation: str) -> dict:
    return {"group": group, "value": float(value), "interpretation": interpretation}


@torch.no_grad()
def encode_codes(model, x: torch.Tensor, *, batch_size: int = 1000) -> np.ndarray:
    """Deterministic codes (code means) of x in eval mode: (N, D) float64 (a spatial code flattened to C * H * W)."""
    model.eval()
    device = next(model.parameters()).device
    parts = [model.encode(x[i:i + batch_size].to(device)).cpu().flatten(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts).double().numpy()


@torch.no_grad()
def training_codes(model, x: torch.Tensor, *, seed: int = 0, batch_size: int = 1000) -> np.ndarray:
    """The codes the decoder is trained on: corruption and bottleneck in training mode, seeded. (N, D)."""
    model.eval()
    model.corruption.train()
    model.bottleneck.train()
    device = next(model.parameters()).device
    parts = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for i in range(0, x.shape[0], batch_size):
                h, _ = model.encoder(model.corruption(x[i:i + batch_size].to(device)))
                parts.append(model.bottleneck(h).z.cpu().flatten(1))  # (B, D): a posterior sample for VAEs
    finally:
        model.eval()
    return torch.cat(parts).double().numpy()


def gap_fractions(reference: np.ndarray, *, n_queries: int = 2000, quantile: float = 0.95, seed: int = 0) -> dict:
    """{'gap_fraction', 'gap_fraction_box', 'threshold'} of reference codes (N, D); see the module docstring."""
    from sklearn.neighbors import NearestNeighbors

    r = np.asarray(reference, dtype=np.float64)
    rng = np.random.default_rng(seed)
    nn = NearestNeighbors(n_neighbors=2).fit(r)
    own = nn.kneighbors(r, n_neighbors=2, return_distance=True)[0][:, 1]  # (N,) distance to nearest other code
    tau = float(np.quantile(own, quantile))
    cov = np.atleast_2d(np.cov(r, rowvar=False))
    gauss = rng.multivariate_normal(r.mean(0), cov, size=n_queries, method="eigh")  # (Q, D)
    lo, hi = np.percentile(r, [1, 99], axis=0)
    box = rng.uniform(lo, hi, size=(n_queries, r.shape[1]))  # (Q, D)
    out = {"threshold": tau}
    for name, queries in (("gap_fraction", gauss), ("gap_fraction_box", box)):
        dist = nn.kneighbors(queries, n_neighbors=1, return_distance=True)[0][:, 0]  # (Q,)
        out[name] = float((dist > tau).mean())
    return out


def separability(z_train, y_train, z_test, y_test, *, max_silhouette: int = 2000, seed: int = 0) -> dict:
    """{'probe_accuracy', 'knn_accuracy', 'silhouette'} of codes by label."""
    from sklearn.metrics import silhouette_score

    from ..metrics import knn_accuracy, linear_probe_accuracy

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    out = {"probe_accuracy": linear_probe_accuracy(z_train, y_train, z_test, y_test, seed=seed),
           "knn_accuracy": knn_accuracy(z_train, y_train, z_test, y_test, k=min(5, len(y_train)))}
    if 2 <= len(np.unique(y_test)) < len(y_test):
        n = min(max_silhouette, len(y_test))
        out["silhouette"] = float(silhouette_score(z_test, y_test, sample_size=n, random_state=seed))
    return out


@torch.no_grad()
def continuity(model, codes: np.ndarray, *, pairs: int = 32, steps: int = 16, seed: int = 0) -> dict:
    """{'jump_ratio', 'path_ratio'} along straight lines between random pairs of codes (N, D)."""
    model.eval()
    z = torch.as_tensor(np.asarray(codes), dtype=torch.float32)
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.choice(z.shape[0], size=2, replace=False) for _ in range(pairs)])  # (P, 2)
    a, b = z[idx[:, 0]], z[idx[:, 1]]  # (P, D) each
    t = torch.linspace(0, 1, steps + 1).view(1, -1, 1)  # (1, S+1, 1)
    line = (1 - t) * a[:, None] + t * b[:, None]  # (P, S+1, D)
    device = next(model.parameters()).device
    x = model.decode(line.reshape(-1, z.shape[1]).to(device)).cpu().double().reshape(pairs, steps + 1, -1)
    step = (x[:, 1:] - x[:, :-1]).norm(dim=2)  # (P, S)
    ends = (x[:, -1] - x[:, 0]).norm(dim=1)  # (P,)
    ok = (step.mean(1) > 1e-12) & (ends > 1e-12)  # pairs whose decodings differ at all
    if not bool(ok.any()):
        return {"jump_ratio": 1.0, "path_ratio": 1.0}
    return {"jump_ratio": float((step.max(1).values / step.mean(1))[ok].mean()),
            "path_ratio": float((step.sum(1) / ends)[ok].mean())}


def _subset(x: torch.Tensor, y, n: int, seed: int):
    if x.shape[0] <= n:
        return x, y
    keep = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return x[keep], (None if y is None else y[keep])


def diagnose(model, x_train: torch.Tensor, x_test: torch.Tensor, *, y_train=None, y_test=None, seed: int = 0,
             max_train: int = 5000, max_test: int = 2000) -> dict:
    """name -> {'group', 'value', 'interpretation'}; separability needs labels, continuity a decoder without skips."""
    x_train, y_train = _subset(x_train, y_train, max_train, seed)
    x_test, y_test = _subset(x_test, y_test, max_test, seed + 1)
    out = {}
    gaps = gap_fractions(training_codes(model, x_train, seed=seed), seed=seed)
    g, gb = gaps["gap_fraction"], gaps["gap_fraction_box"]
    level = "few holes" if g <= 0.1 else ("some holes" if g <= 0.25 else "many holes")
    out["gap_fraction"] = _entry("gaps", g, (
        f"{level}: {g:.0%} of codes drawn from a Gaussian fitted to the decoder's training codes lie farther from all "
        f"of them than 95% of those codes lie from their nearest neighbour (about 5% = no holes)"))
    out["gap_fraction_box"] = _entry("gaps", gb, (
        f"{gb:.0%} of the box spanned by the codes (1st-99th percentiles per unit) is such a hole; "
        "the decoder has never been trained there"))
    z_train, z_test = encode_codes(model, x_train), encode_codes(model, x_test)
    if y_train is not None and y_test is not None and len(np.unique(np.asarray(y_train))) >= 2:
        sep = separability(z_train, y_train, z_test, y_test, seed=seed)
        chance = 1.0 / max(1, len(np.unique(np.asarray(y_test))))
        out["probe_accuracy"] = _entry("separability", sep["probe_accuracy"], (
            f"a linear classifier reads the label from the code {sep['probe_accuracy']:.0%} of the time "
            f"(chance {chance:.0%}): how linearly the classes are laid out"))
        out["knn_accuracy"] = _entry("separability", sep["knn_accuracy"], (
            f"the 5 nearest training codes vote the right label {sep['knn_accuracy']:.0%} of the time: "
            "how locally the classes cluster"))
        if "silhouette" in sep:
            s = sep["silhouette"]
            word = "clear clusters" if s > 0.5 else ("some cluster structure" if s > 0.1 else "classes overlap")
            out["silhouette"] = _entry("separability", s, f"{word} (silhouette of test codes by label, -1..1; "
                                                          "above 0.5 clear clusters, near 0 overlapping)")
    if not model.uses_skips and len(z_test) >= 2:  # lines between two test codes: one code has none
        cont = continuity(model, z_test, seed=seed)
        j, p = cont["jump_ratio"], cont["path_ratio"]
        out["jump_ratio"] = _entry("continuity", j, (
            f"along straight lines between test codes the largest of 16 decoded steps is {j:.1f}x the mean step "
            f"(1 = even change; {'smooth' if j < 2 else 'abrupt jumps'})"))
        out["path_ratio"] = _entry("continuity", p, (
            f"decoded interpolation paths are {p:.2f}x as long as the straight line between their end images "
            f"(1 = direct; {'direct' if p < 1.5 else 'detours through other images'})"))
    return out
