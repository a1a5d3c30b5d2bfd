"""The Trainer: one small, model-agnostic loop for every variant.

Every model trains through the step contract (aekit.step): `training_step(batch)`
returns the loss and its named terms, `validation_step(batch)` scores held-out data, and
`optimizer_groups()` says which parameters each optimizer steps (one group by default; several
for adversarial priors, discriminators, auxiliary parameters: each with its own optimizer,
schedule and steps per batch). A batch is a tensor, a tuple or a dict, labels included; the
trainer logs every term without knowing which model it trains and never looks inside a batch
beyond moving it, slicing it and counting its rows (and preparing the input x of in-memory data:
shape check, binarization). Tasks add a batch transform (random crops, augmentation) or a
validation function, never a loop.

Fast path for data that fits in memory (MNIST-sized): the training set is one tensor (or a
tuple / dict of tensors) and each batch is an index slice of a per-epoch permutation drawn from
a seeded generator; no DataLoader, no collation. A torch Dataset that does not fit in memory
goes through a DataLoader instead (the streaming path).

Reproducible and resumable: every random stream (weights' init via build's seed, the shuffling
generator, the binarization generator, torch's global RNG used by corruptions and
reparameterisation, a task's batch transform) is seeded and saved in each checkpoint with the
model and every group's optimizer and scheduler, so `resume=True` ends at the same result as an uninterrupted run. Checkpoints
are written atomically into a new folder per epoch (and every `checkpoint_every` steps or
seconds inside one); `checkpoints/last.json` is switched to it by an atomic rename, and the
previous folder is kept as a fallback. A checkpoint inside an epoch also holds the shuffling
generator's state at the epoch's start and the epoch's running sums, so a run resumed from it
redraws the same permutation, skips the batches already done and ends bit-identical.
`out_dir` is locked for the duration of `fit` (aekit.training.run_lock): one writer per run folder.

Validation uses the training objective with corruption off and, for Gaussian posteriors, one
posterior sample with a fixed seed (an unbiased ELBO estimate, not the optimistic z = mu).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..errors import AekitWarning, CheckpointError, ConfigError, ShortRunWarning, TrainingError, check_choice, did_you_mean
from ..inputs import as_float_tensor, is_array_like
from .loggers import LOGGERS, Logger, loggers_record, make_loggers
from .precision import PRECISIONS, make_precision
from .denormals import flushed_denormals
from .run_lock import RunLock
from .checkpoints import CheckpointMixin, check_root, has_checkpoint, remove_path
from ..step import (OptimizerGroup, batch_rows, check_batch, index_batch, map_batch, optimizer_groups_of,
                   slice_batch)

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "onecycle", "step")
BINARIZE = ("none", "dynamic", "threshold")
AUGMENT = ("none", "dihedral")
MIN_STEPS = 50  # fewer optimizer steps than this: a ShortRunWarning
ADVISED_STEPS = 200  # what the warning advises: the models here need a few hundred steps


EPOCH_CHECKPOINTS = 100  # end-of-epoch checkpoints a long run writes at most (about; see epoch_checkpoint_every)

@dataclass
class TrainConfig:
    """Every training hyperparameter, recorded in run.json and in each checkpoint."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 4e-3  # with the warm-up and cosine decay below (measured: benchmarks/README.md)
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    betas: tuple[float, float] = (0.9, 0.99)  # adam / adamw
    schedule: str = "cosine"  # none | cosine (with warmup, to 2% of lr) | onecycle | step (x0.1 at 1/2 and 3/4)
    warmup_fraction: float = 0.4  # linear warm-up over this share of the run's total steps ...
    warmup_max_steps: int | None = 200  # ... but at most this many (a long run warms up as it always did)
    warmup_steps: int | None = None  # an absolute warm-up instead (runs recorded before warmup_fraction: 200)
    grad_clip: float | None = None  # max global gradient norm
    seed: int = 0
    early_stopping: int | None = None  # patience in epochs on the validation loss
    binarize: str = "none"  # none | dynamic (resampled each batch) | threshold (x > 0.5, fixed)
    augment: str = "none"  # none | dihedral (each training image turned/flipped at random: training/dihedral.py)
    max_time: float | None = None  # seconds; stops after the epoch that crosses it
    progress: bool | None = None  # None: a bar only when stderr is a terminal
    tensorboard: bool = False
    keep_checkpoints: int = 2
    num_workers: int = 0  # streaming path only
    device: str = "auto"  # auto (cuda when available, else cpu) | cpu | cuda | cuda:N
    deterministic: bool = False  # GPU: deterministic cuDNN kernels, so resume is bit-exact for conv models too
    checkpoint_every: int | str | None = "10m"  # also checkpoint inside epochs: every N steps, or a duration; None: off
    precision: str = "32"  # "32" | "bf16-mixed" | "16-mixed" (aekit.training.precision; checked against the device)
    loggers: tuple = ()  # experiment loggers besides the CSV history: tensorboard, mlflow, wandb (training/loggers.py)

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("binarize", self.binarize, BINARIZE)
        check_choice("augment", self.augment, AUGMENT)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number; got {self.lr!r}.")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be a positive number or None; got {self.grad_clip!r}.")
        if self.early_stopping is not None and (not isinstance(self.early_stopping, int) or self.early_stopping < 1):
            raise ConfigError(f"early_stopping must be a positive integer (epochs) or None; got {self.early_stopping!r}.")
        if not isinstance(self.device, str) or self.device.split(":")[0] not in ("auto", "cpu", "cuda", "mps"):
            raise ConfigError(f"device must be one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'; got {self.device!r}.")
        for name in ("weight_decay", "momentum"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0; got {value!r}.")
        betas = tuple(self.betas) if isinstance(self.betas, (list, tuple)) else ()
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
            raise ConfigError(f"betas must be two numbers in [0, 1); got {self.betas!r}.")
        self.betas = (float(betas[0]), float(betas[1]))
        if not (isinstance(self.warmup_fraction, (int, float)) and not isinstance(self.warmup_fraction, bool)
                and 0.0 <= self.warmup_fraction < 1.0):
            raise ConfigError(f"warmup_fraction must be a number in [0, 1) (a share of the run's steps); "
                              f"got {self.warmup_fraction!r}.")
        for name in ("warmup_steps", "warmup_max_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"{name} must be an integer >= 0 or None; got {value!r}.")
        if self.keep_checkpoints < 1:
            raise ConfigError(f"keep_checkpoints must be >= 1; got {self.keep_checkpoints!r}.")
        parse_checkpoint_every(self.checkpoint_every)
        check_choice("precision", self.precision, PRECISIONS)
        names = self.loggers.split(",") if isinstance(self.loggers, str) else self.loggers
        if not isinstance(names, (list, tuple)):
            raise ConfigError(f"loggers must be a list of logger names {LOGGERS}; got {self.loggers!r}.")
        self.loggers = tuple(n.strip() if isinstance(n, str) else n for n in names if n != "")
        for name in self.loggers:
            check_choice("logger", name, LOGGERS)

    def logger_names(self) -> list[str]:
        """The loggers a run with an out_dir opens: csv (its history), then `loggers`, and tensorboard when
        tensorboard=True (the older switch, an alias), each once."""
        names = ["csv", *self.loggers] + (["tensorboard"] if self.tensorboard else [])
        return list(dict.fromkeys(names))

    def warmup_for(self, total_steps: int) -> int:
        """Warm-up steps of a run of total_steps: warmup_steps when set, else warmup_fraction of the run,
        at most warmup_max_steps."""
        warm = self.warmup_steps
        if warm is None:
            warm = round(self.warmup_fraction * total_steps)
            if self.warmup_max_steps is not None:
                warm = min(warm, self.warmup_max_steps)
        return max(0, min(int(warm), max(1, total_steps) - 1))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = [f.name for f in fields(cls)]  # in declaration order, so error messages list them the same way
        for key in d:
            check_choice("training option", key, names)
        return cls(**d)


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_checkpoint_every(value) -> tuple[int | None, float | None]:
    """checkpoint_every -> (steps, seconds): N (an int or a string of digits) steps, '250ms', '90s', '10m', '2h', or 'off'."""
    def bad():
        raise ConfigError(f"checkpoint_every must be a positive number of steps (e.g. 500), a duration such as "
                          f"'90s', '10m' or '1h', or 'off'; got {value!r}.")

    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none")):
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        bad()
    if isinstance(value, int) or value.strip().isdigit():
        steps = int(value)
        return (steps, None) if steps > 0 else bad()
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        bad()
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return (None, seconds) if 0 < seconds < 1e12 else bad()


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_val: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The TrainConfig's optimizer over params (a module's trainable parameters, or a list of parameters)."""
    params = [p for p in (params.parameters() if isinstance(params, nn.Module) else params) if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    betas = tuple(cfg.betas)
    try:  # fused (multi-tensor, one kernel) Adam: a large share of a small model's step time
        return cls(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay, foreach=True)


def make_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    total = max(1, total_steps)
    warm = cfg.warmup_for(total)
    if cfg.schedule == "none" and warm == 0:
        return None
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "cosine":
            t = (step - warm) / max(1, total - warm)
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        if cfg.schedule == "step":
            return 1.0 if step < total // 2 else (0.1 if step < 3 * total // 4 else 0.01)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def is_batch_source(data) -> bool:
    """A batch source gives whole batches itself: `epoch(e)` -> an iterator of batches (its order depends on e and
    its own seed), `len()` batches per epoch, `rows` samples per epoch and `batch_size`."""
    return callable(getattr(data, "epoch", None)) and hasattr(data, "rows") and hasattr(data, "batch_size") \
        and hasattr(data, "__len__")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {name!r}."
                          + did_you_mean(str(name), ["auto", "cpu", "cuda", "mps"])) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but this torch has no CUDA device available; use device='cpu'.")
    return device


def _rng_devices(device: torch.device) -> list:
    return [device.index or 0] if device.type == "cuda" else []


@contextlib.contextmanager
def validation_mode(model: nn.Module, seed: int, device: torch.device | None = None):
    """Eval mode (no corruption, no KL step count), but a sampled posterior; fixed noise, RNG untouched."""
    was = model.training
    model.eval()
    bottleneck = getattr(model, "bottleneck", None)
    if bottleneck is not None and getattr(model, "provides", lambda cap: False)("posterior"):
        bottleneck.train()
    with torch.random.fork_rng(devices=_rng_devices(device or torch.device("cpu"))):
        torch.manual_seed(seed)
        try:
            yield
        finally:
            model.train(was)


def _composed(first: Callable, then: Callable) -> Callable:
    """The batch transform then(first(batch, g), g)."""
    return lambda batch, generator: then(first(batch, generator), generator)


class Trainer(CheckpointMixin):
    """Train any module that implements the step contract (aekit.step), or whose forward returns
    .loss and .terms.

    batch_transform: f(batch, generator) -> batch, applied to each training batch after slicing (a task's
    random crops and augmentation); its generator is seeded from the run's seed and checkpointed.
    monitor, monitor_mode: the validation record that selects the best epoch ('val_loss', 'min').
    save_model(model, folder) / load_model(folder): how the kept model and each checkpoint's weights are
    written and read (default: aekit.checkpoint.save / load).
    validate: f(model) -> {name: number}, a task's own validation of the whole held-out set (e.g. Dice pooled
    over tiled whole images), used instead of validation_step over val; its keys are logged as val_{name}.
    """

    def __init__(self, model: nn.Module, config: TrainConfig | None = None, *, out_dir: str | os.PathLike | None = None,
                 run_info: dict | None = None, callbacks: list[Callable[[dict, "Trainer"], None]] | None = None,
                 batch_transform: Callable | None = None, monitor: str = "val_loss", monitor_mode: str = "min",
                 save_model: Callable | None = None, load_model: Callable | None = None,
                 validate: Callable[[nn.Module], dict] | None = None) -> None:
        self.cfg = config or TrainConfig()
        self.device = resolve_device(self.cfg.device)
        self.precision = make_precision(self.cfg.precision, self.device)  # an impossible choice fails before any work
        if self.cfg.deterministic and self.device.type == "cuda":
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        self.model = model.to(self.device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_info = dict(run_info or {})
        self.callbacks = list(callbacks or [])
        check_choice("monitor_mode", monitor_mode, ("min", "max"))
        self.monitor, self.monitor_mode = monitor, monitor_mode
        self.batch_transform = batch_transform
        if self.cfg.augment == "dihedral":  # before a task's own transform (e.g. crops), if it has one
            from .dihedral import RandomDihedral

            self.batch_transform = RandomDihedral() if batch_transform is None else _composed(RandomDihedral(),
                                                                                              batch_transform)
        self.validate = validate
        self._save_model = save_model or ckpt.save
        self._load_model = load_model or ckpt.load
        self.groups: list[OptimizerGroup] = optimizer_groups_of(self.model)
        self.optimizers = [g.optimizer(g.params) if g.optimizer is not None else make_optimizer(g.params, self.cfg)
                           for g in self.groups]
        self.schedulers: list = [None] * len(self.groups)
        # one Precision per group: each group's loss has its own GradScaler (16-mixed); the first is self.precision
        self.precisions = [self.precision] + [self.precision.fresh() for _ in self.groups[1:]]
        self._cast_terms = self.precision.dtype is not None  # bf16 / fp16 terms are summed in float32
        self._step_fn = getattr(self.model, "training_step", None)
        self._before_opt = getattr(self.model, "before_optimizer_step", None)  # optional hooks of the step contract
        self._after_opt = getattr(self.model, "after_optimizer_step", None)
        self.shuffle_gen = torch.Generator().manual_seed(self.cfg.seed)
        self.binarize_gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 1)
        self.transform_gen = torch.Generator().manual_seed(self.cfg.seed + 4)  # batch_transform's random stream
        self.epoch = 0  # epochs completed
        self.step = 0  # batches trained (each group's optimizer steps `steps` times per batch)
        self.best_val: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.history: list[dict] = []
        self.elapsed = 0.0
        self._loggers: list[Logger] = []
        self._epoch_samples = 0  # samples trained in the epoch in progress since it (re)started: throughput
        self._epoch_step, self._epoch_count, self._epoch_sums = 0, 0, {}  # a checkpoint inside an epoch, restored
        self._epoch_shuffle = None  # the shuffling generator's state at the start of the epoch in progress
        self._epoch_t0 = 0.0
        self._last_save = time.monotonic()

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The first (main) group's optimizer."""
        return self.optimizers[0]

    @property
    def scheduler(self):
        """The first (main) group's learning-rate schedule (None: constant)."""
        return self.schedulers[0]

    @scheduler.setter
    def scheduler(self, value) -> None:
        self.schedulers[0] = value

    # ------------------------------------------------------------------ data
    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if is_array_like(x):
            x = as_float_tensor(x, name=name)  # a NumPy array or a pandas DataFrame
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"{name} must be a torch.Tensor, a NumPy array, a pandas DataFrame or a torch Dataset; "
                              f"got {type(x).__name__}.")
        if hasattr(self.model, "as_input"):
            x = self.model.as_input(x, name=name)  # flattened images are reshaped; a bad shape is named in full
        elif hasattr(self.model, "check_input"):
            self.model.check_input(x, name=name)
        x = x.float().contiguous().to(self.device)  # the whole split lives on the device: batches are slices
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise ConfigError(f"{name} contains {bad} NaN or inf values.")
        if self.cfg.binarize == "dynamic":  # pixel values are used as probabilities
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 1:
                raise ConfigError(f"binarize={self.cfg.binarize!r} needs {name} in [0, 1]; got values in [{lo:.4g}, {hi:.4g}].")
        if self.cfg.binarize == "threshold":
            x = (x > 0.5).float()
        likelihood = getattr(self.model, "likelihood", None)
        if likelihood is not None:
            likelihood.check_target(x, name=name)
        return x

    def _labels(self, y, n: int, name: str) -> torch.Tensor | None:
        """Labels (n,) int64 on the device for a conditional model (num_classes, e.g. 'cvae'); None for others."""
        k = int(getattr(self.model, "num_classes", 0) or 0)
        if not k:
            if y is not None:
                raise ConfigError(f"{name} was given, but the model is not conditional (num_classes=None); "
                                  "labels are used only by conditional models such as 'cvae'.")
            return None
        if y is None:
            raise ConfigError(f"the model is conditional (num_classes={k}): pass {name}, one class index per sample.")
        from ..conditioning import label_tensor

        return label_tensor(y, num_classes=k, n=n, name=name).to(self.device)

    def _prepare_data(self, data, name: str):
        """An in-memory split on the device: a tensor (the model's input x), or a tuple / dict of tensors whose
        input (element 0, or key "x") is prepared like a tensor and whose other tensors (labels, ...) are moved."""
        if isinstance(data, torch.Tensor) or is_array_like(data):
            return self._prepare(data, name)
        if isinstance(data, list):
            data = tuple(data)
        if isinstance(data, tuple):
            data = tuple(as_float_tensor(t, name=f"{name}[{i}]") if i == 0 and is_array_like(t)
                         else (torch.as_tensor(t) if is_array_like(t) else t) for i, t in enumerate(data))
        elif isinstance(data, dict):
            data = {k: torch.as_tensor(t) if is_array_like(t) else t for k, t in data.items()}
        check_batch(data, name)
        key = 0 if isinstance(data, tuple) else ("x" if "x" in data else None)
        if isinstance(data, tuple):
            return tuple(self._prepare(t, name) if i == key else t.to(self.device) for i, t in enumerate(data))
        return {k: self._prepare(t, name) if k == key else t.to(self.device) for k, t in data.items()}

    def _binarize(self, batch, gen: torch.Generator | None = None):
        """Dynamic binarization of the batch's input (the tensor, element 0 or key "x"); the rest untouched."""
        gen = gen or self.binarize_gen
        if isinstance(batch, torch.Tensor):
            return torch.bernoulli(batch, generator=gen)
        if isinstance(batch, dict):
            return {k: torch.bernoulli(v, generator=gen) if k == "x" else v for k, v in batch.items()}
        return (torch.bernoulli(batch[0], generator=gen), *batch[1:])

    def _batches(self, data, y: torch.Tensor | None = None, *, skip: int = 0):
        """Batches of in-memory data: every tensor of data (a tensor, tuple or dict) sliced by the same
        indices of a per-epoch permutation; y (labels) given separately is packed as (xb, yb).

        skip: batches of this epoch already trained (a resume inside the epoch); passed over
        without touching any random stream but the permutation's."""
        if y is not None:
            data = (data, y)
        n, b = batch_rows(data), self.cfg.batch_size
        perm = torch.randperm(n, generator=self.shuffle_gen).to(self.device)
        dynamic, transform = self.cfg.binarize == "dynamic", self.batch_transform
        plain = isinstance(data, torch.Tensor)
        for i in range(skip * b, n, b):
            idx = perm[i:i + b]
            batch = data.index_select(0, idx) if plain else index_batch(data, idx)  # a slice of the permutation
            if dynamic:
                batch = self._binarize(batch)
            if transform is not None:
                batch = transform(batch, self.transform_gen)
            yield batch

    def _stream_batches(self, dataset, *, skip: int = 0):
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.cfg.batch_size, shuffle=True,
                                             generator=self.shuffle_gen, num_workers=self.cfg.num_workers)
        conditional = bool(getattr(self.model, "num_classes", 0))
        device = self.device
        for index, item in enumerate(loader):
            if index < skip:  # done before the checkpoint this run resumed from
                continue
            if isinstance(item, list):
                item = tuple(item)  # the default collation turns a Dataset's tuples into lists
            if conditional and not (isinstance(item, (tuple, dict)) and len(item) >= 2):
                raise ConfigError("the model is conditional (num_classes): the training Dataset must yield (x, y) pairs.")
            item = map_batch(item, lambda t: t.to(device, non_blocking=True))
            x = item if isinstance(item, torch.Tensor) else (item.get("x") if isinstance(item, dict) else item[0])
            if self.cfg.binarize != "none" and isinstance(x, torch.Tensor):
                x = x.float()
                if self.cfg.binarize == "dynamic" and (float(x.min()) < 0 or float(x.max()) > 1):
                    raise ConfigError(f"binarize={self.cfg.binarize!r} needs data in [0, 1]; got a batch with values in "
                                      f"[{float(x.min()):.4g}, {float(x.max()):.4g}].")
                x = torch.bernoulli(x, generator=self.binarize_gen) if self.cfg.binarize == "dynamic" else (x > 0.5).float()
                item = x if isinstance(item, torch.Tensor) else (
                    {**item, "x": x} if isinstance(item, dict) else (x, *item[1:]))
            elif isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != torch.float32:
                item = map_batch(item, lambda t: t.float() if t is x else t)
            elif isinstance(x, torch.Tensor) and not x.is_floating_point() and hasattr(self.model, "as_input"):
                item = map_batch(item, lambda t: t.float() if t is x else t)  # integer pixels: the model takes floats
            if self.batch_transform is not None:
                item = self.batch_transform(item, self.transform_gen)
            yield item

    def _source_batches(self, source, *, skip: int = 0):
        """The batches of a batch source for the epoch in progress: source.epoch(e) depends only on its own seed and
        e, so a run resumed inside an epoch regenerates the same order and passes over the batches already done."""
        for index, item in enumerate(source.epoch(self.epoch)):
            if index < skip:
                continue
            item = map_batch(item, lambda t: t.to(self.device, non_blocking=True))
            if self.batch_transform is not None:
                item = self.batch_transform(item, self.transform_gen)
            yield item

    # ------------------------------------------------------------------ loop
    def fit(self, train, val=None, *, resume: bool = False, y_train=None, y_val=None) -> TrainResult:
        """Train on train and validate on val each epoch.

        train: in-memory data (a tensor x, a tuple (x, y, ...) or a dict {"x": x, ...} of tensors with equal
        rows; NumPy arrays and pandas frames are converted), a map-style Dataset (streamed) or a batch source
        (`is_batch_source`: e.g. a ShufflingBuffer over an on-disk activation store, streamed). val: in-memory
        data of the same structure. y_train, y_val: labels (N,) of a conditional model given apart from x;
        they are packed into (x, y) batches (a Dataset yields (x, y) itself).
        """
        if isinstance(train, list):
            train = tuple(train)
        streaming = not (isinstance(train, (torch.Tensor, tuple, dict)) or is_array_like(train))
        source = streaming and is_batch_source(train)
        if source:  # a batch source (e.g. aekit.tasks.sae.ShufflingBuffer over an on-disk store): its own batches
            if y_train is not None:
                raise ConfigError("y_train applies to tensor training data; a batch source yields whole batches itself.")
            if train.batch_size != self.cfg.batch_size:
                raise ConfigError(f"the batch source gives batches of {train.batch_size} rows but batch_size is "
                                  f"{self.cfg.batch_size}; make them equal.")
            n_train = int(train.rows)
        elif streaming:
            if not hasattr(train, "__len__") or not hasattr(train, "__getitem__"):
                raise ConfigError(f"train must be a tensor or a map-style torch Dataset; got {type(train).__name__}.")
            if y_train is not None:
                raise ConfigError("y_train applies to tensor training data; a Dataset yields (x, y) pairs itself.")
            n_train = len(train)
        else:
            train = self._prepare_data(train, "train")
            n_train = batch_rows(train)
            if isinstance(train, torch.Tensor):
                y = self._labels(y_train, n_train, "y_train")
                train = train if y is None else (train, y)  # labels travel in the batch
            elif y_train is not None:
                raise ConfigError("y_train was given, but train already is a tuple or dict: put the labels in it.")
        if n_train == 0:
            raise ConfigError("train has no samples.")
        self._check_loggers()
        if val is not None:
            val = self._prepare_data(val, "val")
            if batch_rows(val) == 0:
                val = None
            elif self.cfg.binarize == "dynamic":  # one fixed binarization: comparable across epochs
                val = self._binarize(val, torch.Generator(device=self.device).manual_seed(self.cfg.seed + 2))
        if isinstance(val, torch.Tensor):
            y = self._labels(y_val, val.shape[0], "y_val")
            val = val if y is None else (val, y)
        steps_per_epoch = len(train) if source else math.ceil(n_train / self.cfg.batch_size)
        self._warn_about_size(n_train, steps_per_epoch)
        total = steps_per_epoch * self.cfg.epochs
        for i, (group, opt) in enumerate(zip(self.groups, self.optimizers)):
            steps = total * group.steps  # this group's optimizer steps over the run
            self.schedulers[i] = (group.schedule(opt, steps) if group.schedule is not None
                                  else make_schedule(opt, self.cfg, steps))
        # CPU: subnormal floats flushed to zero on every thread while training (training/denormals.py: a
        # saturated sigmoid's gradients are subnormal and slow an epoch by half); the previous mode after
        with self._run_lock(), flushed_denormals(enabled=self.device.type == "cpu"):
            return self._fit_locked(train, val, resume=resume, streaming=streaming, steps_per_epoch=steps_per_epoch)

    def _run_lock(self):
        """One writer per run folder: an exclusive lock on out_dir (none without an out_dir)."""
        return RunLock(self.out_dir) if self.out_dir is not None else contextlib.nullcontext()

    def _resume_folder(self) -> Path | None:
        return self.out_dir

    def _fit_locked(self, train, val, *, resume: bool, streaming: bool, steps_per_epoch: int):
        folder = self._resume_folder()
        if resume and folder is not None:
            check_root(folder / "checkpoints")
        if resume and folder is not None and not has_checkpoint(folder) and (folder / "run.json").is_file():
            # started, killed before its first checkpoint: the run starts over, from the same seed
            if self._is_main():
                print(f"aekit: no checkpoint in {str(folder)!r} yet: starting the run from the beginning.",
                      file=sys.stderr)
            resume = False
        held = []
        if resume:
            self.load_checkpoint()
            held = self._solved_layers()
            if self.out_dir is not None:
                self._check_kept_model()
        else:
            held = self._init_from_data(train, streaming)
            torch.manual_seed(self.cfg.seed)  # corruption noise and posterior samples: reproducible from the seed
            if self.out_dir is not None:
                if self.checkpoint_root.is_symlink() or self.checkpoint_root.exists():
                    remove_path(self.checkpoint_root)  # a fresh run never resumes an old one's state; a link goes, not its target
        if self.out_dir is not None:
            self._open_loggers(resume)
            try:
                self._write_run_info()  # with the loggers' record; on resume: the (possibly extended) epochs
                if not resume:
                    info = self._run_info_dict()
                    for lg in self._loggers:
                        lg.log_hparams(info)
            except BaseException:
                self._close_loggers(failed=True)
                raise
        result = TrainResult()
        steps_every, seconds_every = parse_checkpoint_every(self.cfg.checkpoint_every)
        self._every = (steps_every, seconds_every)
        self._last_save = time.monotonic()
        for layer in held:  # PCA's exact minimum of this objective: steps could only leave it (pca_init.py)
            layer.requires_grad_(False)
        failed = True
        try:
            while self.epoch < self.cfg.epochs:
                t0 = self._epoch_t0 = time.perf_counter()
                skip = self._epoch_step
                self._epoch_shuffle = self.shuffle_gen.get_state()  # a checkpoint inside this epoch redraws from here
                if is_batch_source(train):
                    batches = self._source_batches(train, skip=skip)
                else:
                    batches = self._stream_batches(train, skip=skip) if streaming else self._batches(train, skip=skip)
                record = self._train_epoch(batches, steps_per_epoch)
                train_seconds = time.perf_counter() - t0
                samples = self._global_samples(self._epoch_samples)
                if val is not None or self.validate is not None:
                    record.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
                self.elapsed += time.perf_counter() - t0
                self.epoch += 1
                record = {"epoch": self.epoch, "step": self.step, "time": round(self.elapsed, 4),
                          "lr": self.optimizer.param_groups[0]["lr"], **record}
                for group, opt in zip(self.groups[1:], self.optimizers[1:]):
                    record[f"lr_{group.name}"] = opt.param_groups[0]["lr"]
                # throughput of this epoch's training steps (validation excluded), since it (re)started
                record["samples_per_s"] = round(samples / train_seconds, 2) if train_seconds > 0 else None
                self.history.append(record)
                improved = self._track_best(record)
                self._log(record)
                stop_early = bool(self.cfg.early_stopping and self.bad_epochs >= self.cfg.early_stopping)
                out_of_time = self.cfg.max_time is not None and self.elapsed >= self.cfg.max_time
                if self.out_dir is not None:
                    if (self.epoch % self.epoch_checkpoint_every == 0 or self.epoch >= self.cfg.epochs
                            or stop_early or out_of_time):
                        self.save_checkpoint(best=improved)
                        self._last_save = time.monotonic()
                    elif improved:
                        self._save_model(self.model, self.out_dir)  # the kept model, between two checkpoints
                for cb in self.callbacks:
                    cb(record, self)
                if stop_early:
                    result.stopped_early = True
                    break
                if out_of_time:
                    break
            self._log_final()
            failed = False
        finally:
            for layer in held:
                layer.requires_grad_(True)
            self._close_loggers(failed=failed)
        if self.out_dir is not None and self.best_epoch is None:
            self._save_model(self.model, self.out_dir)  # no validation data: the final model is the one kept
        result.history, result.best_epoch, result.best_val = self.history, self.best_epoch, self.best_val
        result.seconds = self.elapsed
        return result

    def _init_from_data(self, train, streaming: bool) -> list:
        """A model built with init='pca' (the 'linear' recipe) starts at PCA's solution on its first training data;
        config['init_from'] records it, so a later fit (resumed or continued) keeps the trained weights.
        Returns the layers PCA solved exactly for the whole objective (held during this run), else []."""
        config = getattr(self.model, "config", None)
        if not isinstance(config, dict) or config.get("init") != "pca" or config.get("init_from"):
            return []
        from ..pca_init import init_from_pca, sample_rows

        if not streaming and not isinstance(train, torch.Tensor):
            train = train[0] if isinstance(train, tuple) else train["x"]  # the input x of (x, y) or {"x": x, ...}
        init_from_pca(self.model, sample_rows(train, seed=self.cfg.seed) if streaming else train)
        return self._solved_layers()

    def _solved_layers(self) -> list:
        config = getattr(self.model, "config", None)
        if not isinstance(config, dict) or not (config.get("init_from") or {}).get("solved"):
            return []
        from ..pca_init import solved_layers

        return solved_layers(self.model)

    def _warn_about_size(self, n_train: int, steps_per_epoch: int) -> None:
        """An AekitWarning when the batch exceeds the data; a ShortRunWarning when the run has too few steps."""
        cfg = self.cfg
        if cfg.batch_size > n_train:
            warnings.warn(AekitWarning(
                f"batch_size={cfg.batch_size} is larger than the {n_train} training samples: every step uses "
                f"all {n_train} (one batch per epoch)."), stacklevel=3)
        total = steps_per_epoch * cfg.epochs
        if total < MIN_STEPS:
            hint = max(1, math.ceil(ADVISED_STEPS / steps_per_epoch))
            warnings.warn(ShortRunWarning(
                f"this run takes only {total} optimizer steps ({cfg.epochs} epochs of {steps_per_epoch} batches of "
                f"up to {cfg.batch_size} from {n_train} samples), too few to learn much (fewer than {MIN_STEPS}); "
                f"raise epochs (to about {hint}, {ADVISED_STEPS} steps) or lower batch_size."), stacklevel=3)
        for module in self.model.modules():  # a schedule longer than the run (kl_prior's capacity_steps)
            note = getattr(module, "schedule_note", None)
            message = note(total) if callable(note) else None
            if message:
                warnings.warn(AekitWarning(message), stacklevel=3)

    def _call_step(self, batch, group: str | None = None):
        """model.training_step(batch[, group=...]); a module without the contract: forward(x) or forward(*batch)."""
        if self._step_fn is not None:
            return self._step_fn(batch) if group is None else self._step_fn(batch, group=group)
        return self.model(batch) if isinstance(batch, torch.Tensor) else (
            self.model(**batch) if isinstance(batch, dict) else self.model(*batch))

    def _check_finite(self, loss: torch.Tensor, i: int, group: str | None = None) -> None:
        checked = self._agreed_loss(loss)  # DDP: the global batch's loss, so every rank stops together
        if not torch.isfinite(checked):
            where = f"epoch {self.epoch + 1}, step {i + 1} (global step {self.step + 1})"
            where += f", optimizer group {group!r}" if group is not None else ""
            last = self.last_checkpoint_dir()
            kept = f"; the last good checkpoint is {str(last)!r}" if last else ""
            raise TrainingError(f"the loss became {float(checked)} at {where}{kept}. Try a lower --lr or --grad-clip.")

    def _optimize(self, loss: torch.Tensor, index: int) -> None:
        """One optimizer step of group `index` on loss: its gradients only, its schedule advanced."""
        if not loss.requires_grad:  # not when every weight is held at a solved optimum (pca_init.py)
            return
        opt, params, prec = self.optimizers[index], self.groups[index].params, self.precisions[index]
        opt.zero_grad(set_to_none=True)
        prec.backward(loss)  # 16-mixed: the scaled loss; else loss.backward()
        self._sync_gradients(params)  # DDP: all-reduce (of the scaled gradients); single process: nothing
        if self.cfg.grad_clip:
            prec.unscale_(opt)  # 16-mixed: the true gradients before their norm is clipped; else nothing
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip, foreach=True)
        name = self.groups[index].name
        if self._before_opt is not None:  # the module's own gradient edit (an SAE: no change along decoder columns)
            self._before_opt(name)
        prec.step(opt)  # 16-mixed: skipped when a gradient overflowed, the loss scale updated; else opt.step()
        if self._after_opt is not None:  # the module's constraint after every step (an SAE: unit-norm columns)
            self._after_opt(name)
        if self.schedulers[index] is not None:  # the schedule follows this group's optimizer steps
            self.schedulers[index].step()

    def _train_epoch(self, batches, steps_per_epoch: int) -> dict:
        model = self.model
        model.train()
        done = self._epoch_step  # steps of this epoch restored from a checkpoint inside it (else 0)
        sums: dict[str, torch.Tensor] = dict(self._epoch_sums)
        count = start = self._epoch_count
        autocast, cast = self.precision.autocast, self._cast_terms
        self._epoch_step, self._epoch_count, self._epoch_sums = 0, 0, {}
        bar = self._progress(steps_per_epoch)
        if bar is not None and done:
            bar.update(done)
        several = len(self.groups) > 1 or self.groups[0].steps > 1
        for i, batch in enumerate(batches, start=done):
            self._before_step()
            if not several:  # the fast path: one group, one step per batch
                with autocast():  # "32": a null context
                    out = self._call_step(batch)
                loss = out.loss
                self._check_finite(loss, i)
                self._optimize(loss, 0)
                extra = None
            else:
                out, extra = self._several_groups(batch, i)
                loss = out.loss
            self.step += 1
            n = getattr(out, "batch_size", None) or batch_rows(batch)
            count += n
            with torch.no_grad():  # accumulate as tensors: one sync per epoch, not per term per step
                sums["loss"] = sums.get("loss", 0) + (loss.detach().float() if cast else loss.detach()) * n
                for k, v in out.terms.items():
                    sums[k] = sums.get(k, 0) + (v.detach().float() if cast else v.detach()) * n
                for k, v in (extra or {}).items():
                    sums[k] = sums.get(k, 0) + (v.detach().float() if cast else v.detach()) * n
            if bar is not None:
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix({k: f"{float(v) / count:.4g}" for k, v in sums.items()})
            if i + 1 < steps_per_epoch and self._checkpoint_due():
                self.save_checkpoint(inside={"epoch_step": i + 1, "sums": sums, "count": count,
                                             "shuffle": self._epoch_shuffle,
                                             "elapsed": self.elapsed + time.perf_counter() - self._epoch_t0})
                self._last_save = time.monotonic()
        if bar is not None:
            bar.close()
        self._epoch_samples = count - start
        return self._epoch_means(sums, count)

    def _several_groups(self, batch, i: int):
        """Each group in turn, `steps` optimizer steps each, on its own loss training_step(batch, group=name).

        Returns the first group's last output and the other groups' last losses and terms, named
        '{group}_loss' and '{group}_{term}'."""
        first, extra = None, {}
        for index, group in enumerate(self.groups):
            for _ in range(group.steps):
                with self.precisions[index].autocast():
                    out = self._call_step(batch, group.name)
                self._check_finite(out.loss, i, group.name)
                self._optimize(out.loss, index)
            if index == 0:
                first = out
            else:
                extra[f"{group.name}_loss"] = out.loss
                extra.update({f"{group.name}_{k}": v for k, v in out.terms.items()})
        return first, extra

    def _checkpoint_due(self) -> bool:
        """checkpoint_every: N steps (counted over the whole run) or a duration since the last checkpoint."""
        steps, seconds = getattr(self, "_every", (None, None))
        if self.out_dir is None or (steps is None and seconds is None):
            return False
        if steps is not None:
            return self.step % steps == 0
        return time.monotonic() - self._last_save >= seconds

    def _is_main(self) -> bool:
        return True

    def _before_step(self) -> None:
        """Hook run before each step (aekit.training.distributed seeds each rank's noise here)."""

    # hooks for data-parallel training (aekit.training.distributed overrides them; one process: these)
    def _agreed_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss.detach()

    def _sync_gradients(self, params=None) -> None:
        pass

    def _epoch_means(self, sums: dict, count: int) -> dict:
        return {f"train_{k}": float(v) / max(count, 1) for k, v in sums.items()}

    @torch.no_grad()
    def evaluate(self, data, y=None, *, batch_size: int = 1024) -> dict:
        """The module's validation_step on data (validation mode); means per sample of the loss and every term.

        data: in-memory data as fit takes it (a tensor, a tuple or a dict, on any device); y: the labels (N,)
        of a conditional model given apart from a tensor x, else None. With a `validate` function: its scores."""
        if self.validate is not None:
            with torch.enable_grad(), self.precision.autocast():  # the task's function decides
                return {k: float(v) for k, v in self.validate(self.model).items()}
        if isinstance(data, torch.Tensor):
            data = data.to(self.device)
            y = self._labels(y, data.shape[0], "y")
            if y is not None:
                data = (data, y)
        else:
            data = map_batch(tuple(data) if isinstance(data, list) else data, lambda t: t.to(self.device))
        step = getattr(self.model, "validation_step", None)
        sums: dict[str, float] = {}
        n_all = batch_rows(data)
        with validation_mode(self.model, self.cfg.seed + 3, self.device), self.precision.autocast():
            for i in range(0, n_all, batch_size):
                batch = slice_batch(data, i, i + batch_size)
                out = step(batch) if step is not None else self._call_step(batch)
                n = getattr(out, "batch_size", None) or batch_rows(batch)
                sums["loss"] = sums.get("loss", 0.0) + float(out.loss) * n
                for k, v in out.terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * n
        return {k: v / n_all for k, v in sums.items()}

    def _track_best(self, record: dict) -> bool:
        val = record.get(self.monitor)
        if val is None:
            return False
        better = self.best_val is None or (val < self.best_val if self.monitor_mode == "min" else val > self.best_val)
        if better:
            self.best_val, self.best_epoch, self.bad_epochs = val, self.epoch, 0
            return True
        self.bad_epochs += 1
        return False

    # ------------------------------------------------------------------ logging
    def _progress(self, total: int):
        from .progress import wanted

        if not wanted(self.cfg.progress):  # None: a terminal or a notebook
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False, file=sys.stderr)

    def _check_loggers(self) -> None:
        """Loggers other than the CSV history write into the run folder: refused without one."""
        extra = [n for n in self.cfg.logger_names() if n != "csv"]
        if extra and self._resume_folder() is None:
            raise ConfigError(f"loggers={extra!r} write into the run folder: pass out_dir (--out) or no loggers.")

    def _open_loggers(self, resume: bool) -> None:
        """csv (history.json / .csv) and the configured loggers, writing into out_dir (the main rank only).

        A resumed run continues the MLflow / W&B runs recorded in run.json and purges TensorBoard's events
        from the first epoch trained again."""
        previous = None
        if resume:
            try:
                previous = ckpt.read_json(self.out_dir / "run.json").get("loggers")
            except (CheckpointError, OSError, AttributeError, ValueError):
                previous = None  # no or unreadable run.json: new tracker runs
        self._loggers = make_loggers(self.cfg.logger_names(), self.out_dir, history=self.history,
                                     resume=previous if isinstance(previous, list) else None,
                                     purge_step=self.epoch + 1, run_name=self.out_dir.name,
                                     write_every=self.epoch_checkpoint_every)

    @property
    def epoch_checkpoint_every(self) -> int:
        """Epochs between two end-of-epoch checkpoints: 1 up to EPOCH_CHECKPOINTS epochs, then enough that a run
        writes about EPOCH_CHECKPOINTS of them (a 1,000-epoch run on a small table: every 10th epoch), since a
        checkpoint costs more than an epoch of a few steps. The last epoch, an early stop and max_time always
        checkpoint; an improved model is kept at once (model.safetensors) between checkpoints."""
        return max(1, math.ceil(self.cfg.epochs / EPOCH_CHECKPOINTS))

    def _log(self, record: dict) -> None:
        """One epoch's record to every logger (the CSV logger rewrites history.json and history.csv)."""
        for lg in self._loggers:
            lg.log_metrics(record["epoch"], record)

    def _log_final(self) -> None:
        if not self._loggers:
            return
        last = self.history[-1] if self.history else {}
        final = {"best_epoch": self.best_epoch, f"best_{self.monitor}": self.best_val, "seconds": round(self.elapsed, 4),
                 **{k: v for k, v in last.items() if k.startswith(("train_", "val_"))}}
        for lg in self._loggers:
            lg.log_final(final)

    def _close_loggers(self, *, failed: bool) -> None:
        loggers, self._loggers = self._loggers, []
        for lg in loggers:
            lg.close(failed=failed)

    def _global_samples(self, n: int) -> int:
        """Samples trained in this epoch over every process (data-parallel training overrides it)."""
        return n

    def _run_info_dict(self) -> dict:
        # a task may record its own training options under "train" (segmentation: its SegmentConfig)
        info = {**{k: v for k, v in self.run_info.items() if k != "loggers"},  # a resumed run's is rewritten
                "train": self.run_info.get("train", asdict(self.cfg)),
                "model": getattr(self.model, "config", {})}
        from ..build import _jsonable

        return _jsonable(info)

    def _write_run_info(self) -> None:
        info = self._run_info_dict()
        if self._loggers:
            info["loggers"] = loggers_record(self._loggers)  # which loggers wrote, where, and their run ids
        ckpt.atomic_write_json(self.out_dir / "run.json", info)


def fit(model: nn.Module, train_data, val_data=None, *, epochs: int = 10, batch_size: int = 128, lr: float = 4e-3,
        optimizer: str = "adam", weight_decay: float = 0.0, momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.99), schedule: str = "cosine", warmup_fraction: float = 0.4,
        warmup_max_steps: int | None = 200, warmup_steps: int | None = None, grad_clip: float | None = None, seed: int = 0,
        early_stopping: int | None = None, binarize: str = "none", augment: str = "none",
        max_time: float | None = None, progress: bool | None = None, tensorboard: bool = False, keep_checkpoints: int = 2, num_workers: int = 0,
        device: str = "auto", deterministic: bool = False, checkpoint_every: int | str | None = "10m",
        precision: str = "32", loggers=(), out_dir=None, resume: bool = False, callbacks=None, y_train=None, y_val=None, **unknown) -> TrainResult:
    """Train `model` in one call and return a TrainResult (history, best epoch and validation loss, seconds).

        result = aekit.fit(model, x_train, x_val, epochs=5, lr=1e-3, out_dir="run")

    Data
        train_data, val_data : (N, *input_shape) torch.Tensor, NumPy array or pandas DataFrame (tables), or a
            map-style torch Dataset for train_data (streamed through a DataLoader). Flattened images (N, C*H*W)
            are reshaped for image models. val_data (optional) is scored every epoch; the best epoch is kept.
            train_data may also be a tuple (x, y, ...) or a dict {"x": x, "y": y, ...} of tensors: labels travel
            in the batches (the model's training_step unpacks them).
        y_train, y_val : (N,) class labels of a conditional model (num_classes, e.g. 'cvae'), packed into
            (x, y) batches; else None.
    Optimisation
        epochs : passes over train_data (default 10).     batch_size : samples per step (default 128).
        lr : peak learning rate (default 4e-3).           optimizer : 'adam' (default), 'adamw' or 'sgd'.
        weight_decay : L2 / decoupled decay (default 0).   momentum : SGD momentum (default 0.9).
        betas : Adam's (beta1, beta2) (default (0.9, 0.99)).
        schedule : 'cosine' (default; decays to 2 % of lr), 'onecycle', 'step' (x0.1 at 1/2 and 3/4) or 'none'.
        warmup_fraction : linear warm-up over this share of all steps (default 0.4) ...
        warmup_max_steps : ... but at most this many steps (default 200; None: no cap).
        warmup_steps : an absolute warm-up length instead (default None: use warmup_fraction).
        grad_clip : clip the global gradient norm to this (default None: off).
        early_stopping : stop after this many epochs without a better validation loss (default None: off).
        max_time : stop after the epoch that passes this many seconds (default None).
        binarize : 'none' (default), 'dynamic' (resample Bernoulli inputs every batch) or 'threshold' (x > 0.5).
        augment : 'none' (default) or 'dihedral': each training image (N, C, H, W) turned and flipped at random, one of
            the 8 symmetries of a square (4 of a rectangle) per image (aekit.training.dihedral).
        seed : seeds shuffling, binarization, corruption noise and posterior samples (default 0).
    Output and machinery
        progress : a tqdm bar per epoch: True, False, or None (default) for a terminal or notebook only.
        out_dir : a run directory for checkpoints, history and the kept model (default None: nothing written).
        resume : continue the run in out_dir from its last checkpoint.   callbacks : f(record, trainer) per epoch.
        loggers : experiment loggers writing into out_dir besides its CSV history: 'tensorboard', 'mlflow' (a local
            file store), 'wandb' (offline), e.g. loggers=["mlflow"] (each an optional extra: pip install 'aekit[mlflow]').
            Each epoch's losses, learning rates and samples_per_s, then the final metrics; run.json["loggers"] says
            where they wrote.
        tensorboard : True is the same as adding 'tensorboard' to loggers (default False).
        keep_checkpoints : epoch checkpoints kept (default 2).   num_workers : DataLoader workers (Dataset only).
        device : 'auto' (default: cuda when available), 'cpu', 'cuda', 'cuda:N'.
        deterministic : deterministic GPU kernels (bit-exact resume of conv models on GPU).
        precision : '32' (default), 'bf16-mixed' (CUDA with bf16, or a CPU with AMX) or '16-mixed' (CUDA, with a
            dynamic loss scale); refused where the device cannot run it or would run it slower. A resumed run keeps
            its precision.
        checkpoint_every : also checkpoint inside epochs (with out_dir): every N steps (an int), or a duration
            such as '90s', '10m', '2h' (default '10m'); 'off' or None: at epoch ends only.

    A run of fewer than 50 optimizer steps gets a ShortRunWarning (too short to learn much), like
    scikit-learn's ConvergenceWarning. An option name that does not exist is a ConfigError with a did-you-mean.
    """
    if unknown:
        names = [f.name for f in fields(TrainConfig)]
        bad = next(iter(unknown))
        check_choice("training option", bad, names)
    options = dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                   momentum=momentum, betas=betas, schedule=schedule, warmup_fraction=warmup_fraction,
                   warmup_max_steps=warmup_max_steps, warmup_steps=warmup_steps, grad_clip=grad_clip, seed=seed, early_stopping=early_stopping,
                   binarize=binarize, augment=augment, max_time=max_time, progress=progress, tensorboard=tensorboard,
                   keep_checkpoints=keep_checkpoints, num_workers=num_workers, device=device,
                   deterministic=deterministic, checkpoint_every=checkpoint_every, precision=precision,
                   loggers=loggers)
    trainer = Trainer(model, TrainConfig(**options), out_dir=out_dir, callbacks=callbacks)
    return trainer.fit(train_data, val_data, resume=resume, y_train=y_train, y_val=y_val)
