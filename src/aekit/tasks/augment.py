"""Data augmentation with a pretrained VAE: labelled synthetic samples.

Two ways to make a labelled sample, both decoding a code to the likelihood's mean:

- prior (conditional VAEs, variant 'cvae'): z ~ N(0, T^2 I) decoded with a chosen label y, so
  x ~ p(x | z, y) is a new sample of class y. Labels are balanced over the classes (every class
  count within one of the others) unless one label is asked for.
- posterior (any VAE): a real labelled sample x_i is encoded, its code perturbed within its own
  posterior, z = mu_i + T * sigma_i * eps with eps ~ N(0, I), and decoded; the sample keeps y_i.
  The posterior says how far a code can move before it stops explaining x_i, so the variations
  stay near x_i (T < 1 keeps them closer). Sources are used in turn from a seeded permutation, so
  every real sample is the source of floor(n / N) or ceil(n / N) synthetic ones.

Both are deterministic given the generator. The same idea underlies generative augmentation for
few-label learning (Kingma et al. 2014, Semi-supervised learning with deep generative models);
whether it helps a given classifier is an empirical question: see benchmarks/augmentation.py.
"""

from __future__ import annotations

import torch

from ..conditioning import balanced_labels, label_tensor
from ..errors import ConfigError, DataError, check_choice

METHODS = ("auto", "prior", "posterior")


def _check(model, n, temperature, method) -> str:
    check_choice("method", method, METHODS)
    if not (hasattr(model, "provides") and model.provides("posterior")):
        raise ConfigError("augmentation needs a VAE (a bottleneck that provides 'posterior', e.g. 'gaussian'): "
                          "a posterior to perturb or a prior to sample; "
                          f"this model is {getattr(model, 'variant', None)!r} with bottleneck "
                          f"{model.ingredient('bottleneck') if hasattr(model, 'ingredient') else None!r}.")
    if getattr(model, "uses_skips", False):
        raise ConfigError("augmentation decodes codes alone, which a U-Net decoder with skips cannot; build it with skips=False.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer; got {n!r}.")
    if not (isinstance(temperature, (int, float)) and temperature >= 0 and temperature == temperature):
        raise ConfigError(f"temperature must be a number >= 0; got {temperature!r}.")
    if method == "auto":
        method = "prior" if model.num_classes else "posterior"
    if method == "prior" and not model.num_classes:
        raise ConfigError("method 'prior' makes labelled samples only with a conditional VAE (num_classes, variant "
                          f"'cvae'); this model is {model.variant!r}. Use method 'posterior' with labelled data.")
    return method


@torch.no_grad()
def augment(model, n: int, *, x: torch.Tensor | None = None, y: torch.Tensor | None = None, label: int | None = None,
            method: str = "auto", temperature: float = 1.0, generator: torch.Generator | None = None,
            batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """n labelled synthetic samples: (x_syn (n, *input_shape) in model units, y_syn (n,) int64).

    method: 'prior' (conditional VAEs; the default for them), 'posterior' (any VAE, needs labelled
    x, y; the default otherwise) or 'auto'. label: make every sample of this class. temperature
    scales the prior's or the posterior's standard deviation (0: decode the means only).
    """
    method = _check(model, n, temperature, method)
    was = model.training
    model.eval()
    try:
        if method == "prior":
            return _from_prior(model, n, label=label, temperature=temperature, generator=generator, batch_size=batch_size)
        return _from_posterior(model, n, x=x, y=y, label=label, temperature=temperature, generator=generator,
                               batch_size=batch_size)
    finally:
        model.train(was)


def _from_prior(model, n, *, label, temperature, generator, batch_size):
    k = model.num_classes
    labels = balanced_labels(n, k) if label is None else label_tensor(label, num_classes=k, n=n, name="label")  # (n,)
    z = model.bottleneck.sample_prior(n, generator=generator) * float(temperature)  # (n, D) ~ N(0, T^2 I)
    device = z.device
    labels = labels.to(device)
    x = torch.cat([model.decode(z[i:i + batch_size], y=labels[i:i + batch_size]) for i in range(0, n, batch_size)])
    return x, labels.cpu()


def _from_posterior(model, n, *, x, y, label, temperature, generator, batch_size):
    if x is None or y is None:
        missing = "labels y" if x is not None else "samples x and their labels y"
        raise DataError(f"method 'posterior' perturbs real labelled samples and keeps their labels: it needs {missing}.")
    model.check_input(x, name="x")  # the whole shape in any message
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"y must hold one label per sample: expected shape ({x.shape[0]},); got {tuple(y.shape)}.")
    y = y.to(torch.int64)
    pool = torch.arange(x.shape[0])
    if label is not None:
        pool = pool[y == int(label)]
        if pool.numel() == 0:
            present = sorted({int(v) for v in y.tolist()})
            raise DataError(f"label {label!r} has no samples in the data to perturb; labels present: {present}.")
    if pool.numel() == 0:
        raise DataError("the data has no samples to perturb.")
    reps = -(-n // pool.numel())  # ceil: every source used floor(n/N) or ceil(n/N) times
    order = torch.cat([pool[torch.randperm(pool.numel(), generator=generator)] for _ in range(reps)])[:n]  # (n,)
    device = next(model.parameters()).device
    outs = []
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        xb = x[idx].to(device)
        yb = y[idx].to(device) if model.num_classes else None
        code, _ = model.encode_code(xb, yb)
        post = code.posterior  # q(z | x[, y]) = N(mu, diag(sigma^2))
        eps = torch.randn(post.mu.shape, generator=generator, dtype=post.mu.dtype).to(device)
        z = post.mu + float(temperature) * post.std * eps  # (B, D)
        outs.append(model.decode(z, y=yb))
    return torch.cat(outs), y[order]


__all__ = ["METHODS", "augment"]


def augment_run(run_dir, *, n: int, data=None, data_dir=None, split=None, label=None, method: str = "auto",
                temperature: float = 1.0, seed: int = 0) -> tuple:
    """Synthetic samples from a run: (x (n, *shape) in the data's units, y (n,) int64, a description of the source)."""
    import numpy as np

    from ..data.load import NAMED_SOURCES
    from ..training.runs import load_run, run_data
    from ..units import OutputUnits

    model, info = load_run(run_dir)
    if split is None and (data is None or str(data).strip().lower() in NAMED_SOURCES):
        split = "train"  # perturb training samples, never test ones, unless asked
    x, y, ds, what = run_data(info, source=data, data_dir=data_dir, split=split, model=model)
    if label is not None and model.num_classes and not 0 <= label < model.num_classes:
        raise ConfigError(f"--label must be a class index in 0..{model.num_classes - 1}; got {label}.")
    if y is None and method != "prior" and not (method == "auto" and model.num_classes):
        raise DataError(f"perturbing real samples keeps their labels, but {what} has none; use labelled data "
                        "or a conditional run (cvae).")
    x_syn, y_syn = augment(model, n, x=x, y=y, label=label, method=method, temperature=temperature,
                           generator=torch.Generator().manual_seed(seed))
    x_raw = OutputUnits.from_dataset(ds, model).to_raw(x_syn).numpy().astype(np.float32)  # the data's units
    return x_raw, y_syn.numpy().astype(np.int64), what
