"""Anomaly detection with a trained autoencoder: scores, a calibrated threshold, error maps.

A model trained on normal data reconstructs (or explains) normal inputs well and anomalies
badly, so a per-sample badness of fit is an anomaly score (higher = more anomalous):

- ``nll``: the reconstruction negative log-likelihood -log p(x | z = encode(x)) in nats, with
  the deterministic code (mu for a VAE). For a fixed-sigma Gaussian decoder this is
  0.5 * SSE / sigma^2 plus a constant, so it ranks samples exactly as the squared error does;
  for a Bernoulli decoder it is the summed binary cross-entropy.
- ``sse``: the summed squared error sum_i (x_i - x_hat_i)^2 of the reconstruction mean.
- ``elbo``: the negative evidence lower bound of a VAE (Kingma & Welling 2014; An & Cho 2015,
  "Variational autoencoder based anomaly detection using reconstruction probability"),
      -ELBO(x) = E_q(z|x)[-log p(x | z)] + KL(q(z | x) || N(0, I)),
  the expectation estimated with `samples` posterior draws under a fixed seed (the KL is in
  closed form, and it is the true ELBO: beta = 1 whatever beta the model was trained with).
- ``auto``: ``elbo`` for models with a Gaussian posterior, ``nll`` otherwise.

The threshold is either the `quantile` q of the scores of held-out normal data (the training
run's validation split, or calibration data given): a false-alarm rate of 1 - q on normal data;
or, with `contamination` c, the expected share of outliers (the scikit-learn convention), the
1 - c quantile of the scores of the data being scored (of the calibration data, when given). A
sample is an outlier (label 1) when its score is strictly above the threshold.

    scores = score_samples(model, x)                       # (N,)
    t = calibrate_threshold(score_samples(model, x_val), quantile=0.99)
    labels = scores > t
    maps = error_maps(model, x)                            # (N, *input_shape), sums to the SSE
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError, check_choice
from ..axes.likelihoods import LOG_2PI, BernoulliLikelihood, GaussianLikelihood

SCORES = ("auto", "nll", "sse", "elbo")
MAP_KINDS = ("squared", "nll")
DEFAULT_QUANTILE = 0.99
DEFAULT_SAMPLES = 8


def resolve_score(model, score: str = "auto") -> str:
    """The concrete score name for `model`: 'auto' becomes 'elbo' for VAEs and 'nll' otherwise."""
    check_choice("score", score, SCORES)
    generative = bool(hasattr(model, "provides") and model.provides("posterior"))
    if score == "auto":
        return "elbo" if generative else "nll"
    if score == "elbo" and not generative:
        raise ConfigError(
            f"score='elbo' needs a model with a Gaussian posterior (a VAE: a bottleneck that provides 'posterior'); "
            f"this model's bottleneck is "
            f"{model.ingredient('bottleneck')!r}. Allowed here: 'auto', 'nll', 'sse'."
        )
    return score


def _check_samples(samples) -> int:
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ConfigError(f"samples must be a positive integer (posterior draws per input); got {samples!r}.")
    return int(samples)


def _check_batch(x, model) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    x = model.as_input(x, name="x") if hasattr(model, "as_input") else x  # flattened images reshaped
    if not hasattr(model, "as_input"):
        model.check_input(x, name="x")
    if x.shape[0] == 0:
        raise DataError("x has no samples; anomaly scores need at least one input.")
    return x.float()


def _model_device(model) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _sum_nonbatch(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)  # (B, ...) -> (B,)


@torch.no_grad()
def score_samples(model, x, *, score: str = "auto", samples: int = DEFAULT_SAMPLES, seed: int = 0,
                  batch_size: int = 1000) -> torch.Tensor:
    """Per-sample anomaly scores, higher = more anomalous: x (N, *input_shape) -> (N,) float64 on the CPU.

    score: 'auto' | 'nll' | 'sse' | 'elbo' (see the module docstring). samples and seed apply to
    'elbo': the posterior noise is drawn once for all N inputs from a generator seeded with
    `seed`, so a sample's score does not depend on the batch size.
    """
    name = resolve_score(model, score)
    samples = _check_samples(samples)
    x = _check_batch(x, model)
    was = model.training
    model.eval()  # no corruption, z = mu for the deterministic scores
    device = _model_device(model)
    eps = None
    if name == "elbo":  # (K, N, D) standard-normal noise for every input, fixed by the seed
        gen = torch.Generator().manual_seed(int(seed))
        eps = torch.randn((samples, x.shape[0], model.latent_dim), generator=gen)
    out = []
    try:
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device)  # (B, *shape)
            code, skips = model.encode_code(xb)
            if name == "elbo":
                post = code.posterior
                rec = torch.zeros(xb.shape[0], dtype=torch.float64, device=device)
                for k in range(samples):
                    z = post.mu + post.std * eps[k, i:i + batch_size].to(device)  # (B, D) z ~ q(z | x)
                    rec += model.likelihood.nll(xb, model.decoder(z, skips)).double()
                out.append((rec / samples + post.kl().double()).cpu())  # E_q[-log p(x|z)] + KL
                continue
            params = model.decoder(code.mean, skips)  # (B, *shape) decoder output at the deterministic code
            if name == "nll":
                out.append(model.likelihood.nll(xb, params).double().cpu())
            else:  # sse of the reconstruction mean
                out.append(_sum_nonbatch((xb - model.likelihood.mean(params)).double().pow(2)).cpu())
    finally:
        model.train(was)
    return torch.cat(out)


def _elementwise_nll(likelihood, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Per-element -log p(x_i | params_i), (B, *shape); summed over non-batch dims it is likelihood.nll."""
    if isinstance(likelihood, BernoulliLikelihood):
        return F.binary_cross_entropy_with_logits(params, x, reduction="none")
    if isinstance(likelihood, GaussianLikelihood):
        log_sigma = likelihood.log_sigma
        return 0.5 * (x - params).pow(2) * torch.exp(-2.0 * log_sigma) + log_sigma + 0.5 * LOG_2PI
    raise ConfigError(f"error maps of kind 'nll' know the bernoulli and gaussian likelihoods; got {type(likelihood).__name__}.")


@torch.no_grad()
def error_maps(model, x, *, kind: str = "squared", batch_size: int = 1000) -> torch.Tensor:
    """Per-element reconstruction errors, same shape as x: (N, *input_shape) float32 on the CPU.

    kind='squared': (x - x_hat)^2 with x_hat the reconstruction at the deterministic code; each map
    sums to score_samples(..., score='sse'). kind='nll': the per-element negative log-likelihood;
    each map sums to score_samples(..., score='nll'). For images these are per-pixel error maps.
    """
    check_choice("kind", kind, MAP_KINDS)
    x = _check_batch(x, model)
    was = model.training
    model.eval()
    device = _model_device(model)
    out = []
    try:
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device)
            code, skips = model.encode_code(xb)
            params = model.decoder(code.mean, skips)  # (B, *shape)
            if kind == "squared":
                out.append((xb - model.likelihood.mean(params)).pow(2).cpu())
            else:
                out.append(_elementwise_nll(model.likelihood, xb, params).cpu())
    finally:
        model.train(was)
    return torch.cat(out).float()


def _as_scores(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise DataError(f"{name} is empty; calibrating a threshold needs at least one score.")
    if not np.all(np.isfinite(s)):
        raise DataError(f"{name} holds {int((~np.isfinite(s)).sum())} NaN or inf value(s); expected finite scores.")
    return s


def check_level(*, quantile: float | None = None, contamination: float | None = None) -> tuple[str, float]:
    """('quantile', q) or ('contamination', c) after range checks; quantile 0.99 when neither is given."""
    if quantile is not None and contamination is not None:
        raise ConfigError(
            f"give quantile or contamination, not both; got quantile={quantile!r} and contamination={contamination!r}."
        )
    if contamination is not None:
        if isinstance(contamination, bool) or not isinstance(contamination, (int, float)) or not 0 < contamination <= 0.5:
            raise ConfigError(
                f"contamination must be a number in (0, 0.5] (the fraction of outliers in the calibration data); "
                f"got {contamination!r}."
            )
        return "contamination", float(contamination)
    q = DEFAULT_QUANTILE if quantile is None else quantile
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q <= 1:
        raise ConfigError(f"quantile must be a number in (0, 1] (the share of normal calibration scores at or "
                          f"below the threshold); got {q!r}.")
    return "quantile", float(q)


def calibrate_threshold(scores, *, quantile: float | None = None, contamination: float | None = None) -> float:
    """Threshold from calibration scores: their `quantile` (default 0.99), or their 1 - `contamination` quantile.

    The quantile is numpy's default (linear interpolation between order statistics), so for
    scores 0, 1, ..., 100 and quantile 0.9 the threshold is 90.0 and 10 of the 101 lie above it.
    """
    method, level = check_level(quantile=quantile, contamination=contamination)
    s = _as_scores(scores, "calibration scores")
    q = level if method == "quantile" else 1.0 - level
    return float(np.quantile(s, q))


def binary_truth(y, *, normal_classes=None) -> np.ndarray | None:
    """Ground truth 1 = outlier from labels: y itself when it holds only 0/1 (the ODDS .mat form), or
    1 where y is not in `normal_classes`. None when neither applies (e.g. digit labels 0-9 with no
    normal class named)."""
    if y is None:
        return None
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).reshape(-1)
    if normal_classes is not None:
        return (~np.isin(y, np.asarray(list(normal_classes)))).astype(np.int64)
    if set(np.unique(y).tolist()) <= {0, 1}:
        return y.astype(np.int64)
    return None


def detection_metrics(scores, truth) -> dict:
    """AUROC and average precision of `scores` against truth (1 = outlier), with counts; needs both classes."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = _as_scores(scores)
    t = np.asarray(truth).reshape(-1).astype(np.int64)
    if t.shape != s.shape:
        raise DataError(f"truth has {t.size} labels but there are {s.size} scores; expected one label per score.")
    n_out = int(t.sum())
    if n_out == 0 or n_out == t.size:
        raise DataError(f"AUROC needs both normal and outlier samples; the labels hold {n_out} outliers of {t.size}.")
    return {"auroc": float(roc_auc_score(t, s)), "average_precision": float(average_precision_score(t, s)),
            "n_outliers": n_out, "n_samples": int(t.size), "outlier_fraction": n_out / t.size}


@dataclass
class Detection:
    """What `detect` returns: scores, labels and how the threshold was set."""

    scores: np.ndarray  # (N,) float64, higher = more anomalous
    labels: np.ndarray  # (N,) int64, 1 = outlier (score > threshold)
    threshold: float
    score: str  # 'nll' | 'sse' | 'elbo'
    method: str  # 'quantile' | 'contamination'
    level: float  # the quantile q or the contamination c
    n_calibration: int
    samples: int | None = None  # posterior draws per input for 'elbo'
    metrics: dict = field(default_factory=dict)  # AUROC / AP when ground truth was given
    calibrated_on: str = "held-out data"  # or "scored data": contamination applied to x itself

    def summary(self) -> dict:
        out = {"score": self.score, "threshold": self.threshold, "method": self.method, "level": self.level,
               "calibrated_on": self.calibrated_on,
               "n_calibration": self.n_calibration, "n_samples": int(self.scores.size),
               "n_flagged": int(self.labels.sum()), "flagged_fraction": float(self.labels.mean())}
        if self.samples is not None:
            out["samples"] = self.samples
        return {**out, **self.metrics}


def detect(model, x, calibration=None, *, score: str = "auto", quantile: float | None = None,
           contamination: float | None = None, samples: int = DEFAULT_SAMPLES, seed: int = 0, truth=None,
           batch_size: int = 1000) -> Detection:
    """Score x, calibrate the threshold, label x (1 = outlier: score above the threshold).

    The threshold comes from the scores of `calibration` (held-out normal data) when it is given.
    Without it, `contamination` applies to x itself, as in scikit-learn (the expected share of
    outliers in the data being scored: the 1 - contamination quantile of x's scores); a `quantile`
    needs calibration data. Detection.calibrated_on says which was used.
    truth: optional (N,) 0/1 ground truth (1 = outlier); adds AUROC and average precision.
    """
    method, level = check_level(quantile=quantile, contamination=contamination)
    name = resolve_score(model, score)
    options = dict(score=name, samples=samples, seed=seed, batch_size=batch_size)
    s = score_samples(model, x, **options).numpy()
    if calibration is None:
        if method != "contamination":
            raise ConfigError("a quantile threshold needs held-out normal data (calibration); without it, give "
                              "contamination, the expected share of outliers in the scored data.")
        cal, calibrated_on = s, "scored data"
    else:
        cal, calibrated_on = score_samples(model, calibration, **options).numpy(), "held-out data"
    threshold = calibrate_threshold(cal, **{method: level})
    labels = (s > threshold).astype(np.int64)
    metrics = detection_metrics(s, truth) if truth is not None else {}
    return Detection(scores=s, labels=labels, threshold=threshold, score=name, method=method, level=level,
                     n_calibration=int(cal.size), samples=samples if name == "elbo" else None, metrics=metrics,
                     calibrated_on=calibrated_on)


def _normalize(maps: np.ndarray) -> np.ndarray:
    """Scale error maps to [0, 1] by their common maximum (one scale for a whole grid)."""
    top = float(maps.max()) if maps.size else 0.0
    return maps / top if top > 0 and math.isfinite(top) else np.zeros_like(maps)


def map_grid(x: np.ndarray, x_hat: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Rows of (input, reconstruction, error map) for images (N, C, H, W) in [0, 1] -> (N*3, C, H, W).

    The error map is averaged over channels and scaled by the grid's largest error, so brighter
    means worse and maps compare across rows.
    """
    m = _normalize(maps.mean(axis=1, keepdims=True))  # (N, 1, H, W)
    m = np.repeat(m, x.shape[1], axis=1)
    rows = np.stack([np.clip(x, 0, 1), np.clip(x_hat, 0, 1), m], axis=1)  # (N, 3, C, H, W)
    return rows.reshape(-1, *x.shape[1:])


__all__ = ["DEFAULT_QUANTILE", "Detection", "MAP_KINDS", "SCORES", "binary_truth", "calibrate_threshold",
           "check_level", "detect", "detection_metrics", "error_maps", "map_grid", "resolve_score", "score_samples"]
