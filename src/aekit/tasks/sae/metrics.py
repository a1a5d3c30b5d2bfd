"""How good a sparse dictionary is: sparsity, reconstruction, latent health and the effect downstream.

- L0: mean number of non-zero latents per row (Bricken et al. 2023; Gao et al. 2024).
- FVU, fraction of variance unexplained: sum ||x - x_hat||^2 / sum ||x - mean(x)||^2, where
  mean(x) is the per-dimension mean over the rows; 0 is perfect, 1 is the mean predictor's score
  (Gao et al. 2024, "Scaling and evaluating sparse autoencoders", normalized MSE).
- Dead and dense latents: a latent is dead when it has not fired in the last `window` samples
  (Gao et al. 2024 use 10M tokens), dense when it fires on more than a threshold share of them
  (Rajamanoharan et al. 2024 report latents above 10%); `FiringTracker` keeps the counts.
- The downstream splice: the host model is run with the layer's output replaced by the SAE's
  reconstruction, and its loss compared with the original and with zero-ablation. Fraction of
  loss recovered = (L_zero - L_sae) / (L_zero - L_orig) (Bricken et al. 2023; SAELens'
  "ce_loss_score"); 1 when the splice changes nothing, 0 when it is as bad as zeroing the layer.
"""

from __future__ import annotations

import os
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from ...errors import ConfigError, DataError
from .capture import LAYOUTS, find_layer, flatten, resolve_layout, unflatten


def l0(codes: torch.Tensor) -> float:
    """Mean number of non-zero entries per row of codes (N, m)."""
    if codes.dim() != 2 or codes.shape[0] == 0:
        raise DataError(f"codes must have shape (N, m) with N >= 1; got {tuple(codes.shape)}.")
    return float((codes != 0).sum(dim=1, dtype=torch.float64).mean())


class FVU:
    """Streaming fraction of variance unexplained over any number of (x, x_hat) batches (float64 sums).

    sum ||x - mean||^2 = sum x^2 - N * mean^2 per dimension, so one pass over a store suffices."""

    def __init__(self):
        self.n, self.sq_err, self.sum_x, self.sum_x2 = 0, 0.0, None, None

    def update(self, x: torch.Tensor, x_hat: torch.Tensor) -> "FVU":
        if x.shape != x_hat.shape or x.dim() != 2:
            raise DataError(f"x and x_hat must have the same (N, d) shape; got {tuple(x.shape)} and {tuple(x_hat.shape)}.")
        x, x_hat = x.detach().double(), x_hat.detach().double()
        self.n += x.shape[0]
        self.sq_err += float((x - x_hat).pow(2).sum())
        sx, sx2 = x.sum(0), x.pow(2).sum(0)  # (d,)
        self.sum_x = sx if self.sum_x is None else self.sum_x + sx
        self.sum_x2 = sx2 if self.sum_x2 is None else self.sum_x2 + sx2
        return self

    def value(self) -> float:
        if self.n == 0:
            raise DataError("FVU of no rows is undefined.")
        total = float((self.sum_x2 - self.sum_x.pow(2) / self.n).sum())
        return self.sq_err / total if total > 0 else float("nan")


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Fraction of variance unexplained of x_hat for x, both (N, d) (see the module docstring)."""
    if x.shape != x_hat.shape or x.dim() != 2:
        raise DataError(f"x and x_hat must have the same (N, d) shape; got {tuple(x.shape)} and {tuple(x_hat.shape)}.")
    x, x_hat = x.detach().double(), x_hat.detach().double()
    total = float((x - x.mean(0)).pow(2).sum())
    return float((x - x_hat).pow(2).sum()) / total if total > 0 else float("nan")


class FiringTracker:
    """Counts, for each of m latents, the samples since it last fired and its firing rate over the last window samples.

    update(codes) with (N, m) codes, in order. `dead_mask()` is True for a latent that has not
    fired in the last `window` samples (none is dead before `window` samples were seen);
    `firing_rate()` is each latent's share of firing rows over the most recent batches that cover
    the window (exact when the window is a whole number of batches).
    """

    def __init__(self, n_latents: int, *, window: int):
        for name, value in (("n_latents", n_latents), ("window", window)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
        self.n_latents, self.window = n_latents, window
        self.since_fired = torch.zeros(n_latents, dtype=torch.long)  # (m,) samples since the last firing
        self.seen = 0
        self._batches: deque[tuple[int, torch.Tensor]] = deque()  # (rows, (m,) firing counts) per batch
        self._rows_held = 0

    def update(self, codes: torch.Tensor) -> None:
        if codes.dim() != 2 or codes.shape[1] != self.n_latents:
            raise DataError(f"codes must have shape (N, {self.n_latents}); got {tuple(codes.shape)}.")
        fired = codes.detach() != 0  # (N, m)
        n = fired.shape[0]
        if n == 0:
            return
        any_fired = fired.any(0)  # (m,)
        last = (n - 1) - torch.flip(fired, dims=[0]).to(torch.int8).argmax(0)  # (m,) last row that fired
        self.since_fired = torch.where(any_fired, n - 1 - last, self.since_fired + n)
        self.seen += n
        self._batches.append((n, fired.sum(0)))
        self._rows_held += n
        while self._rows_held - self._batches[0][0] >= self.window:  # drop batches older than the window
            self._rows_held -= self._batches.popleft()[0]

    def dead_mask(self) -> torch.Tensor:
        """(m,) bool: no firing in the last `window` samples."""
        return self.since_fired >= self.window

    def dead_fraction(self) -> float:
        return float(self.dead_mask().float().mean())

    def firing_rate(self) -> torch.Tensor:
        """(m,) float64 share of the recent rows on which each latent fired (zeros before any update)."""
        if not self._batches:
            return torch.zeros(self.n_latents, dtype=torch.float64)
        return torch.stack([c for _, c in self._batches]).sum(0).double() / self._rows_held

    def dense_fraction(self, threshold: float = 0.1) -> float:
        """Share of latents firing on more than `threshold` of the recent rows."""
        if not 0 <= threshold <= 1:
            raise ConfigError(f"threshold must be in [0, 1]; got {threshold!r}.")
        return float((self.firing_rate() > threshold).double().mean())


def reconstruction_metrics(store, *, encode: Callable[[torch.Tensor], torch.Tensor],
                           decode: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 4096,
                           max_rows: int | None = None, dense_threshold: float = 0.1) -> dict:
    """L0, FVU, dead and dense fractions of an SAE (encode: (N, d) -> (N, m) codes, decode: codes -> (N, d))
    over the first max_rows rows of an ActivationStore (all by default), read in order by index ranges.

    Here the window is the evaluated rows: a latent is dead when it fires on none of them, dense when
    it fires on more than dense_threshold of them."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}.")
    n = len(store) if max_rows is None else min(int(max_rows), len(store))
    if n < 1:
        raise DataError("no rows to evaluate (the store is empty or max_rows < 1).")
    acc, tracker, nonzero = FVU(), None, 0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x = torch.from_numpy(store.read(start, min(start + batch_size, n)))  # (b, d)
            codes = encode(x)  # (b, m)
            if tracker is None:
                tracker = FiringTracker(int(codes.shape[1]), window=n)
            tracker.update(codes)
            nonzero += int((codes != 0).sum())
            acc.update(x, decode(codes))
    rate = tracker.firing_rate()
    return {"rows": n, "l0": nonzero / n, "fvu": acc.value(), "dead_fraction": float((rate == 0).double().mean()),
            "dense_fraction": float((rate > dense_threshold).double().mean())}


@contextmanager
def splice(model: nn.Module, *, layer: str, fn: Callable[[torch.Tensor], torch.Tensor], layout: str = "auto"):
    """Within the block, the output of `layer` is replaced by fn applied to its rows.

    fn maps (N, d) rows (flattened as capture does) to (N, d); the result is put back in the
    layer's output shape. A tuple output has its first element replaced."""
    module = find_layer(model, layer)
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(map(repr, LAYOUTS))}; got {layout!r}.")

    def hook(_module, _inputs, output):
        act = output[0] if isinstance(output, tuple) else output
        if not isinstance(act, torch.Tensor):
            raise ConfigError(f"layer {layer!r} returns a {type(output).__name__}; splice needs a tensor or a tuple of them.")
        kind = resolve_layout(act, module, layout)
        rows = flatten(act, kind)
        new_rows = fn(rows)
        if not isinstance(new_rows, torch.Tensor) or new_rows.shape != rows.shape:
            raise DataError(f"the splice function must return rows of shape {tuple(rows.shape)}; "
                            f"got {tuple(getattr(new_rows, 'shape', ()))}.")
        new = unflatten(new_rows.to(act.dtype), act, kind)
        return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new

    handle = module.register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


def _default_loss(outputs, targets) -> torch.Tensor:
    """An aekit model's own loss (AEOutput.loss) when it gives one, else cross-entropy of logits against targets."""
    if isinstance(getattr(outputs, "loss", None), torch.Tensor):
        return outputs.loss
    if targets is None or not isinstance(outputs, torch.Tensor):
        raise ConfigError("the model's outputs carry no .loss and no targets were given: pass loss_fn(outputs, targets) "
                          "and batches of (inputs, targets).")
    return nn.functional.cross_entropy(outputs, targets)


def downstream_effect(model, *, layer: str, reconstruct: Callable[[torch.Tensor], torch.Tensor],
                      data: Iterable, loss_fn: Callable | None = None, layout: str = "auto",
                      forward: Callable | None = None, batch_size: int = 256) -> dict:
    """The host model's loss (and accuracy) with the layer's output as is, replaced by reconstruct(rows), and zeroed.

    model: an nn.Module or an aekit run folder. data: a tensor of inputs (split into batch_size
    rows), or an iterable of batches, each (inputs, targets) or inputs alone. loss_fn(outputs,
    targets) -> scalar mean loss of a batch; default: the model's own loss when its output has one
    (an aekit Autoencoder's AEOutput.loss), else cross-entropy on logits. Accuracy (argmax of
    (N, C) outputs against integer targets) is reported when every batch has it. Losses are
    averaged over inputs. Returns {loss_original, loss_sae, loss_zero, fraction_loss_recovered,
    [accuracy_original, accuracy_sae, accuracy_zero]}.
    """
    if isinstance(model, (str, os.PathLike)):
        from ...training.runs import load_run

        model, _ = load_run(Path(model))
    find_layer(model, layer)
    loss_fn = loss_fn or _default_loss
    forward = forward or (lambda m, inputs: m(inputs))
    if isinstance(data, torch.Tensor):
        data = [data[i:i + batch_size] for i in range(0, data.shape[0], batch_size)]
    sums = {k: 0.0 for k in ("original", "sae", "zero")}
    correct = {k: 0 for k in sums}
    rows, has_accuracy = 0, True
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in data:
                if isinstance(batch, (tuple, list)):
                    if not batch:
                        raise DataError("an empty batch was given to downstream_effect.")
                    inputs, targets = batch[0], (batch[1] if len(batch) > 1 else None)
                else:
                    inputs, targets = batch, None
                n = int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) else int(targets.shape[0])
                for key, fn in (("original", None), ("sae", reconstruct), ("zero", torch.zeros_like)):
                    if fn is None:
                        outputs = forward(model, inputs)
                    else:
                        with splice(model, layer=layer, fn=fn, layout=layout):
                            outputs = forward(model, inputs)
                    sums[key] += float(loss_fn(outputs, targets)) * n
                    if (isinstance(outputs, torch.Tensor) and outputs.dim() == 2 and targets is not None
                            and not targets.is_floating_point() and targets.dim() == 1):
                        correct[key] += int((outputs.argmax(1) == targets).sum())
                    else:
                        has_accuracy = False
                rows += n
    finally:
        model.train(was_training)
    if rows == 0:
        raise DataError("no batches were given to downstream_effect.")
    out = {f"loss_{k}": v / rows for k, v in sums.items()}
    out["fraction_loss_recovered"] = fraction_loss_recovered(loss_original=out["loss_original"], loss_sae=out["loss_sae"],
                                                             loss_zero=out["loss_zero"])
    if has_accuracy:
        out.update({f"accuracy_{k}": v / rows for k, v in correct.items()})
    return out


def fraction_loss_recovered(*, loss_original: float, loss_sae: float, loss_zero: float) -> float:
    """(L_zero - L_sae) / (L_zero - L_orig); NaN when zero-ablation does not change the loss."""
    gap = loss_zero - loss_original
    return (loss_zero - loss_sae) / gap if gap != 0 else float("nan")


__all__ = ["FVU", "FiringTracker", "downstream_effect", "fraction_loss_recovered", "fvu", "l0", "reconstruction_metrics",
           "splice"]
