"""Class conditioning: the label as an extra input to encoder and decoder (the conditional VAE).

A model built with num_classes=K takes a label y with every call: the encoder's features h get the
one-hot label appended before the bottleneck, q(z | x, y), and so does the code before the decoder,
p(x | z, y). With the prior p(z) = N(0, I) unchanged, the ELBO of log p(x | y) is the usual
reconstruction term plus KL(q(z | x, y) || N(0, I)); sampling a class is decoding z ~ N(0, I) with
its label. Sohn, Lee & Yan 2015, Learning structured output representation using deep conditional
generative models; Kingma, Rezende, Mohamed & Welling 2014, Semi-supervised learning with deep
generative models (model M2 without the classifier).

Labels are integer class indices (B,) in [0, K), or a float (B, K) tensor used as given (soft or
mixed labels, e.g. the blended label of an interpolation path).
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import ConfigError, DataError, ShapeError


def label_tensor(labels, *, num_classes: int, n: int | None = None, name: str = "y") -> torch.Tensor:
    """Integer class indices as a (N,) int64 tensor, checked against [0, num_classes); an int repeats n times."""
    if isinstance(labels, bool):
        raise ConfigError(f"{name} must be a class index or a sequence of them; got {labels!r}.")
    if isinstance(labels, (int, np.integer)):
        if n is None:
            raise ConfigError(f"{name} must be a sequence of class indices; got the single value {labels!r}.")
        y = torch.full((n,), int(labels), dtype=torch.int64)
    else:
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
        if y.dim() != 1:
            raise ShapeError(f"{name} has shape {tuple(y.shape)}; expected class indices of shape ({n if n else 'batch'},).")
        if y.is_floating_point():
            if not bool(torch.all(y == torch.round(y))):
                raise ConfigError(f"{name} must hold whole class indices; got non-integer values.")
        elif y.dtype == torch.bool or y.is_complex():
            raise ConfigError(f"{name} must hold integer class indices; got dtype {y.dtype}.")
        y = y.to(torch.int64)
        if n is not None and y.shape[0] != n:
            raise ShapeError(f"{name} has {y.shape[0]} labels; expected {n} (one per sample).")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        raise ConfigError(f"{name} must be class indices in 0..{num_classes - 1} (num_classes={num_classes}); got {bad}.")
    return y


def label_input(y, *, num_classes: int, batch: int, like: torch.Tensor) -> torch.Tensor | None:
    """The conditioning input of a batch: (B, K) float on like's device, or None for an unconditional model.

    Raises when a conditional model gets no label, or an unconditional one gets one.
    """
    if not num_classes:
        if y is not None:
            raise ConfigError("labels (y) were given, but this model is not conditional (num_classes=None); "
                              "build it with num_classes=K (variant 'cvae') to condition on labels.")
        return None
    if y is None:
        raise ConfigError(f"this model is conditional (num_classes={num_classes}): pass the labels y "
                          f"(class indices of shape (batch,)) with the input.")
    if isinstance(y, torch.Tensor) and y.is_floating_point() and y.dim() == 2:
        if tuple(y.shape) != (batch, num_classes):
            raise ShapeError(f"y has shape {tuple(y.shape)}; expected (batch, num_classes) = ({batch}, {num_classes}) "
                             "for soft labels, or class indices of shape (batch,).")
        return y.to(device=like.device, dtype=like.dtype)
    idx = label_tensor(y, num_classes=num_classes, n=batch).to(like.device)
    return torch.nn.functional.one_hot(idx, num_classes).to(like.dtype)  # (B,) -> (B, K)


def num_classes_of(ds, *, variant: str | None = None) -> int:
    """K = largest label + 1 over a Dataset's train and val labels; DataError naming the source if it has none."""
    ys = [y for y in (ds.y_train, ds.y_val) if y is not None and y.numel()]
    if ds.y_train is None or not ys:
        what = f"variant {variant!r}" if variant else "a conditional model"
        raise DataError(
            f"{what} is conditional and trains on labels, but data source {ds.name!r} has none. Use labelled data: "
            "digits, mnist, fashion-mnist, an .npz/.mat with y, a .csv with --label-column, or class subfolders."
        )
    low = min(int(y.min()) for y in ys)
    if low < 0:
        raise DataError(f"data source {ds.name!r} has negative labels (min {low}); a conditional model needs class "
                        "indices 0..K-1.")
    return max(int(y.max()) for y in ys) + 1


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ...: n labels with every class count within one of the others; (n,)."""
    return torch.arange(n, dtype=torch.int64) % num_classes


__all__ = ["balanced_labels", "label_input", "label_tensor", "num_classes_of"]
