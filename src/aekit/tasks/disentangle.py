"""Score a model's code against the generative factors of dSprites (the `aekit disentangle` core).

    from aekit.tasks.disentangle import evaluate_disentanglement
    scores = evaluate_disentanglement(model, resolution=32)   # {'mig': ..., 'dci': ..., ...}

MIG and DCI use the codes of `n_samples` fresh random grid images (seeded; a different seed
from the training subset's). The beta-VAE and FactorVAE scores use the paper protocol: the
metric draws factor combinations with one factor held fixed and this module renders and
encodes them (`encode_factors`), so no finite pool limits the batches.
Codes are posterior means (model.encode), computed in batches under torch.no_grad().
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data import dsprites
from ..errors import DataError
from ..metrics.disentanglement import betavae_score, dci, factorvae_score, mig

EVAL_SEED_OFFSET = 7919  # evaluation images come from seed + this: not the training subset's draw


def factor_encoder(model, *, resolution: int, batch_size: int = 1024):
    """encode_factors(classes (n, 5) int64) -> codes (n, D) float64: render, then encode the batch."""
    device = next(model.parameters()).device

    @torch.no_grad()
    def encode_factors(classes: np.ndarray) -> np.ndarray:
        model.eval()
        out = []
        for i in range(0, len(classes), batch_size):
            x = dsprites.render_classes(classes[i:i + batch_size], resolution=resolution).to(device)
            out.append(model.encode(x).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, model.latent_dim))

    return encode_factors


def source_resolution(model, source: str | None) -> int:
    """The dSprites resolution of a run's data source; DataError when it has no factors."""
    name = (source or "").strip().lower()
    if name not in dsprites.SOURCES:
        raise DataError(f"disentanglement metrics need data with known generative factors; this run's data source "
                        f"is {source!r}. Train on one of: {', '.join(dsprites.SOURCES)}.")
    resolution = dsprites.SOURCES[name]
    shape = tuple(getattr(model, "input_shape", ()))
    if shape != (1, resolution, resolution):
        raise DataError(f"the model expects inputs of shape {shape}, but {name!r} renders (1, {resolution}, "
                        f"{resolution}); was the run trained with --image-size? Score it on data of its own shape.")
    return resolution


def evaluate_disentanglement(model, *, resolution: int, n_samples: int = 10_000, n_votes: int = 800,
                             batch_size: int = 64, seed: int = 0) -> dict:
    """{'mig', 'factorvae_score', 'betavae_score', 'dci', 'dci_completeness', 'dci_informativeness',
    'mig_per_factor', 'n_samples', 'seconds'} for a model whose input is a dSprites image.

    n_votes training points for the two classifier scores (half as many held out), each from
    batch_size images sharing one factor.
    """
    t0 = time.perf_counter()
    encode = factor_encoder(model, resolution=resolution)
    idx = dsprites.random_indices(n_samples, seed=seed + EVAL_SEED_OFFSET)
    factors = dsprites.index_to_classes(idx)                                    # (N, 5)
    codes = encode(factors)                                                      # (N, D)
    score, gaps = mig(codes, factors, per_factor=True)
    d = dci(codes, factors, seed=seed)
    n_eval = max(1, n_votes // 2)
    common = dict(encode_factors=encode, factor_sizes=dsprites.FACTOR_SIZES, batch_size=batch_size,
                  n_train=n_votes, n_eval=n_eval, seed=seed)
    return {
        "mig": score,
        "factorvae_score": factorvae_score(**common),
        "betavae_score": betavae_score(**common),
        "dci": d["dci"],
        "dci_completeness": d["completeness"],
        "dci_informativeness": d["informativeness"],
        "mig_per_factor": dict(zip(dsprites.FACTOR_NAMES, (float(g) for g in gaps))),
        "n_samples": int(n_samples),
        "seconds": round(time.perf_counter() - t0, 2),
    }


__all__ = ["evaluate_disentanglement", "factor_encoder", "source_resolution"]
