"""The step contract: what the one Trainer asks of a model, and the batches it hands over.

    class TrainingModule(Protocol):
        def training_step(self, batch, group: str = "main") -> StepOutput   # batch: tensor, tuple or dict
        def validation_step(self, batch) -> StepOutput
        def optimizer_groups(self) -> list[OptimizerGroup]                  # default: one group, every parameter

Optional per-step hooks, called for each optimizer step of a group (name as above):

        def before_optimizer_step(self, group: str) -> None   # after backward (and clipping), before the step
        def after_optimizer_step(self, group: str) -> None    # after the step: re-impose a constraint

(a sparse autoencoder removes the gradient along its decoder columns before the step and scales
them back to unit norm after it; Bricken et al. 2023, Towards Monosemanticity).

A batch is a tensor x, a tuple (x, y, ...) or a dict {"x": x, "y": y, ...}; labels travel in it.
The Trainer never looks inside a batch except to move it to the device, to slice every tensor
of in-memory data by the same permutation indices (`index_batch`) and to count its rows
(`batch_rows`: the first tensor's first dimension).

Several optimizer groups (an AAE's or FactorVAE's discriminator, an entropy model's auxiliary
parameters) each get their own optimizer, learning-rate schedule and `steps` optimizer steps per
batch; groups are stepped in list order, and `training_step(batch, group=name)` returns the loss
that group minimises (Makhzani et al. 2016, Adversarial autoencoders; Kim & Mnih 2018,
Disentangling by factorising; Balle et al. 2018, Variational image compression with a scale
hyperprior). A single-group module is called as `training_step(batch)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, runtime_checkable

import torch
from torch import nn

from .errors import ConfigError

Batch = Any  # torch.Tensor | tuple[torch.Tensor, ...] | dict[str, torch.Tensor]


@dataclass
class StepOutput:
    """One step's result: loss == sum_k weights[k] * terms[k] (terms are batch means, unweighted)."""

    loss: torch.Tensor  # () scalar the group's optimizer minimises
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> () batch mean, logged per epoch
    weights: dict[str, float] = field(default_factory=dict)  # name -> multiplier (1.0 where absent)
    batch_size: int | None = None  # rows the means are over (None: the batch's first dimension)


@dataclass
class OptimizerGroup:
    """Parameters stepped together by one optimizer with one schedule.

    name: passed to training_step(batch, group=name) when a module has several groups.
    params: the parameters (each in one group only).
    steps: optimizer steps per batch (e.g. k discriminator updates per model update).
    optimizer: f(params) -> torch.optim.Optimizer; None: the TrainConfig's optimizer, lr, decay.
    schedule: f(optimizer, total_steps) -> LR scheduler or None; None: the TrainConfig's schedule
        over this group's total steps (batches x steps). Give `lambda opt, total: None` for a constant lr.
    """

    name: str
    params: list
    steps: int = 1
    optimizer: Callable[[list], torch.optim.Optimizer] | None = None
    schedule: Callable[[torch.optim.Optimizer, int], Any] | None = None

    def __post_init__(self) -> None:
        self.params = [p for p in self.params if p.requires_grad]
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"OptimizerGroup name must be a non-empty string; got {self.name!r}.")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"OptimizerGroup {self.name!r}: steps must be a positive integer; got {self.steps!r}.")


@runtime_checkable
class TrainingModule(Protocol):
    def training_step(self, batch: Batch) -> StepOutput: ...

    def validation_step(self, batch: Batch) -> StepOutput: ...

    def optimizer_groups(self) -> list[OptimizerGroup]: ...


def optimizer_groups_of(model: nn.Module) -> list[OptimizerGroup]:
    """The module's groups (checked: distinct names, no parameter in two groups); default one group 'main'."""
    make = getattr(model, "optimizer_groups", None)
    groups = list(make()) if callable(make) else [OptimizerGroup("main", list(model.parameters()))]
    if not groups:
        raise ConfigError("optimizer_groups() returned no group; return at least one OptimizerGroup.")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ConfigError(f"optimizer group names must be distinct; got {names}.")
    seen: set[int] = set()
    for g in groups:
        for p in g.params:
            if id(p) in seen:
                raise ConfigError(f"a parameter is in two optimizer groups (the second is {g.name!r}).")
            seen.add(id(p))
    return groups


def split_xy(batch: Batch):
    """(x, y) of a batch: x alone (y None), (x, y, ...) or {"x": x, "y": y}."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, dict):
        return batch["x"], batch.get("y")
    return batch[0], (batch[1] if len(batch) > 1 else None)


def _tensors(batch: Batch) -> Iterable[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return (batch,)
    return batch.values() if isinstance(batch, dict) else batch


def batch_rows(batch: Batch) -> int:
    """Rows of a batch: the first dimension of its first tensor."""
    return next(iter(_tensors(batch))).shape[0]


def map_batch(batch: Batch, f: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
    """f applied to every tensor of the batch, the structure kept (non-tensors pass through)."""
    if isinstance(batch, torch.Tensor):
        return f(batch)
    if isinstance(batch, dict):
        return {k: f(v) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return type(batch)(f(v) if isinstance(v, torch.Tensor) else v for v in batch)


def index_batch(batch: Batch, idx: torch.Tensor) -> Batch:
    """The rows idx of every tensor of the batch: (N, ...) -> (len(idx), ...)."""
    if isinstance(batch, torch.Tensor):
        return batch.index_select(0, idx)
    return map_batch(batch, lambda t: t.index_select(0, idx))


def slice_batch(batch: Batch, start: int, stop: int) -> Batch:
    return map_batch(batch, lambda t: t[start:stop])


def check_batch(data: Batch, name: str) -> int:
    """Rows of an in-memory data set (a tensor, a tuple or a dict of tensors with equal first dimensions)."""
    if isinstance(data, torch.Tensor):
        return data.shape[0]
    if not isinstance(data, (tuple, dict)) or not data:
        raise ConfigError(f"{name} must be a tensor, a tuple or a dict of tensors, or a torch Dataset; "
                          f"got {type(data).__name__}.")
    rows = set()
    for key, t in (data.items() if isinstance(data, dict) else enumerate(data)):
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            raise ConfigError(f"{name}[{key!r}] must be a tensor with a first (sample) dimension; got {type(t).__name__}.")
        rows.add(t.shape[0])
    if len(rows) != 1:
        raise ConfigError(f"{name}'s tensors must have the same number of rows (samples); got {sorted(rows)}.")
    return rows.pop()


__all__ = ["Batch", "OptimizerGroup", "StepOutput", "TrainingModule", "batch_rows", "check_batch", "index_batch",
           "map_batch", "optimizer_groups_of", "slice_batch", "split_xy"]
