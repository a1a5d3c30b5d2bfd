"""Start a linear autoencoder at PCA's solution: init='pca' (the 'linear' recipe's default).

A linear autoencoder x_hat = W_d (W_e x + b_e) + b_d trained on squared error has its optimum at
the top-k principal subspace (Baldi & Hornik 1989), and by Eckart-Young no rank-k affine map
reconstructs better. Gradient descent reaches it slowly when the spectrum is flat (the issue's
face data: 11% above PCA after 300 epochs), so the trainer solves for it once, before the first
step, from the training data:

    mu = mean(x)                      (D,)
    V  = top-k right singular vectors of x - mu    (k, D), orthonormal rows
    encoder: z = V x - V mu           weight (k, D), bias (k,)
    decoder: x_hat = V^T z + mu       weight (D, k), bias (D,)

so the model reconstructs exactly as PCA does from step 0. When the objective is that squared
error and nothing else (fixed sigma, no corruption, no regularizer, no quantization noise), PCA
is its minimum over all weights, and gradient steps could only move away from it (Adam's steps
have a fixed size in weight units: on raw-scale tables they drift the code measurably), so the
two solved layers are held for that run (init_from['solved'] = True) and the epochs only log the
loss. Otherwise (a learned sigma, a denoising corruption, a regularizer) training refines the
start as usual. The model's config records the start (config['init_from']), so a saved run is
never re-initialised when training resumes or continues, and it rebuilds from its weights like
any other run.
"""

from __future__ import annotations

import torch

INITS = ("random", "pca")
EXACT_MAX_FEATURES = 4096  # up to this D: an exact eigendecomposition of the D x D covariance
MAX_SAMPLES = 20000  # a Dataset (streamed) contributes a seeded random subset of at most this many items


PCA_REQUIRES = ("linear_backbone", "linear_code", "gaussian_mean")  # x_hat = W_d (W_e x + b_e) + b_d, squared error


def pca_eligible(cfg: dict, provided) -> str | None:
    """None when init='pca' applies to a configuration providing these capabilities, else the reason it does not."""
    from .registry import AXES

    missing = []
    for cap in PCA_REQUIRES:
        if cap not in provided:
            offers = [o for reg in AXES.values() for o in reg.providers(cap)]
            missing.append(f"'{cap}' (provided by {', '.join(offers) or 'nothing registered'})")
    if cfg.get("num_classes"):
        missing.append(f"num_classes=None (got {cfg.get('num_classes')!r})")
    return None if not missing else "init='pca' needs a linear model: " + ", ".join(missing)


def solved_layers(model) -> list:
    """The layers PCA solves exactly for this model's whole objective (encoder and decoder), or [] when the
    objective holds more than the squared error (learned sigma, corruption, regularizers, quantization noise)."""
    pure = (model.provides("fixed_sigma") and not model.regularizers and not model.provides("noisy_code")
            and model.corruption.is_identity)
    return [model.bottleneck.linear, model.decoder.net[-1]] if pure else []


def principal_subspace(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), components (r, D)) of x (N, D) in float64; r = min(k, D, N - 1), rows orthonormal,
    ordered by decreasing variance."""
    x = x.detach().to("cpu", torch.float64).flatten(1)  # (N, D)
    n, d = x.shape
    mean = x.mean(0)  # (D,)
    xc = x - mean  # (N, D)
    r = max(0, min(k, d, n - 1))
    if r == 0:
        return mean, x.new_zeros((0, d))
    if d <= EXACT_MAX_FEATURES:
        cov = xc.T @ xc  # (D, D), symmetric PSD
        _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        comps = vecs[:, -r:].flip(1).T  # (r, D), largest first
    else:  # randomized SVD with power iterations: the top-r subspace of a wide matrix
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(0)
        try:
            _, _, v = torch.svd_lowrank(xc, q=min(r + 10, d, n), niter=8)  # v (D, q)
        finally:
            torch.random.set_rng_state(gen_state)
        comps = v[:, :r].T
    return mean, comps.contiguous()


def sample_rows(dataset, *, seed: int = 0) -> torch.Tensor:
    """(M, *shape) up to MAX_SAMPLES items of a map-style Dataset, a seeded random subset."""
    n = len(dataset)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:MAX_SAMPLES].tolist()
    items = [dataset[i] for i in idx]
    return torch.stack([torch.as_tensor(it[0] if isinstance(it, (list, tuple)) else it).float() for it in items])


@torch.no_grad()
def init_from_pca(model, x: torch.Tensor) -> dict:
    """Set a linear model's encoder and decoder to PCA's solution on x (N, *input_shape); returns the record
    stored as model.config['init_from']."""
    k = int(model.bottleneck.latent_dim)
    enc = model.bottleneck.linear  # (k, D) weight
    dec = model.decoder.net[-1]  # (D, k) weight
    mean, comps = principal_subspace(x, k)  # (D,), (r, D)
    r, d = comps.shape
    w = torch.zeros(k, d, dtype=torch.float64)
    w[:r] = comps  # rows beyond the data's rank stay zero (they carry nothing)
    enc.weight.copy_(w.to(enc.weight))
    enc.bias.copy_((-(w @ mean)).to(enc.bias))
    dec.weight.copy_(w.T.to(dec.weight))
    dec.bias.copy_(mean.to(dec.bias))
    record = {"method": "pca", "samples": int(x.shape[0]), "components": int(r), "solved": bool(solved_layers(model))}
    model.config["init_from"] = record
    return record

