"""Image plots of what a model does to inputs: reconstructions, interpolations, samples, denoising.

All take an image model (input_shape (C, H, W)) and clean inputs in [0, 1]; they run under
torch.no_grad() in eval mode and return a `matplotlib.figure.Figure` (save it with
`aekit.viz.save_figure(fig, "x.png")` or ".svg").

- plot_reconstructions: originals over reconstructions (model.reconstruct: clean input, code mean).
- plot_reconstruction_comparison: one row of originals, then one row per model.
- plot_interpolations: model.interpolate between pairs of inputs, one strip per pair.
- plot_samples: decoded draws from the prior N(0, I) (VAEs only: model.sample).
- plot_denoising: clean / noisy / denoised triples. The noise is the model's own corruption
  module run in training mode on clean inputs (eval mode makes it the identity); the noisy
  input then goes through model.reconstruct, which encodes its argument as given.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .figures import image_grid_figure, image_rows


def is_image_model(model) -> bool:
    return len(model.input_shape) == 3


def _check_image_model(model, what: str) -> None:
    if not is_image_model(model):
        raise ConfigError(f"{what} needs an image model (input_shape (C, H, W)); got input_shape={model.input_shape}.")


def _check_decoder(model, what: str) -> None:
    if model.uses_skips:
        raise ConfigError(f"{what} decodes codes alone, which a U-Net with skips cannot do; build it with skips=False.")


@torch.no_grad()
def plot_reconstructions(model, x: torch.Tensor, *, n: int = 10, title: str | None = "Reconstructions"):
    """x: (N, C, H, W) clean inputs -> figure with rows 'input' and 'reconstruction' of the first n."""
    _check_image_model(model, "plot_reconstructions")
    model.eval()
    xb = x[:n]  # (n, C, H, W)
    return image_rows([("input", xb), ("reconstruction", model.reconstruct(xb))], title=title)


@torch.no_grad()
def plot_reconstruction_comparison(x: torch.Tensor, reconstructions: dict, *, title: str | None = None):
    """x: (n, C, H, W); reconstructions: name -> (n, C, H, W). Rows: input, then one per model."""
    return image_rows([("input", x)] + [(name, x_hat) for name, x_hat in reconstructions.items()], title=title)


@torch.no_grad()
def plot_interpolations(model, x: torch.Tensor, *, pairs: int = 4, steps: int = 10, seed: int = 0,
                        title: str | None = "Interpolations between the codes of two inputs"):
    """Strips model.interpolate(a, b, steps) for `pairs` random pairs of rows of x: (steps, C, H, W) each."""
    _check_image_model(model, "plot_interpolations")
    _check_decoder(model, "plot_interpolations")
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(x.shape[0], generator=gen)[:2 * pairs].view(-1, 2)  # (pairs, 2)
    rows = [(f"pair {i + 1}", model.interpolate(x[a], x[b], steps=steps)) for i, (a, b) in enumerate(idx.tolist())]
    return image_rows(rows, title=title, col_labels=[f"{t:.2f}" for t in torch.linspace(0, 1, steps).tolist()])


@torch.no_grad()
def plot_samples(model, *, n: int = 64, seed: int = 0, title: str | None = "Samples from the prior N(0, I)"):
    """n decoded draws z ~ N(0, I) in a square-ish grid; VAEs only."""
    _check_image_model(model, "plot_samples")
    if not model.provides("posterior"):
        raise ConfigError("plot_samples needs a VAE (a bottleneck that provides 'posterior', e.g. 'gaussian'); "
                          f"this model's is {model.ingredient('bottleneck')!r}.")
    model.eval()
    samples = model.sample(n, generator=torch.Generator().manual_seed(seed))  # (n, C, H, W)
    cols = int(round(n ** 0.5))
    return image_grid_figure(samples.cpu(), cols=cols, title=title)


def has_corruption(model) -> bool:
    corruption = model.corruption
    return not corruption.is_identity


@torch.no_grad()
def corrupt(model, x: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """The model's own corruption applied to clean x (training mode, seeded; global RNG untouched)."""
    was = model.corruption.training
    model.corruption.train()  # eval mode makes the corruption the identity
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return model.corruption(x)
    finally:
        model.corruption.train(was)


@torch.no_grad()
def plot_denoising(model, x: torch.Tensor, *, n: int = 10, seed: int = 0, title: str | None = None):
    """Rows clean / noisy / denoised for the first n of x; models with a corruption only."""
    _check_image_model(model, "plot_denoising")
    if not has_corruption(model):
        raise ConfigError("plot_denoising needs a model trained with a corruption (e.g. corruption='masking:0.25').")
    model.eval()
    clean = x[:n]  # (n, C, H, W)
    noisy = corrupt(model, clean, seed=seed)
    denoised = model.reconstruct(noisy)  # encodes the noisy input as given: no second corruption in eval
    title = title if title is not None else f"Denoising ({model.corruption.spec()})"
    return image_rows([("clean", clean), ("noisy", noisy), ("denoised", denoised)], title=title)
