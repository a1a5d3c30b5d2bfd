"""Supervised fine-tuning of a stacked autoencoder: a linear softmax head on the top code.

    logits = head(encode(x)),  loss = mean cross-entropy(logits, y)        (B, w_L) -> (B, C)

Two phases, as in the UFLDL "stacked autoencoders" exercise: the head alone on the frozen
pretrained codes (softmax regression), then the head and the encoder together. Both run in the
one aekit Trainer through the step contract (aekit.step): the labels travel in (x, y) batches.

A run directory keeps the fine-tuned encoder inside the usual autoencoder files (config.json,
model.safetensors) and the head in classifier.safetensors (weight (C, w_L), bias (C,); no pickle),
so `aekit.training.runs.load_run`, `aekit encode` and `aekit evaluate` work unchanged and
`aekit.tasks.stacked.layerwise.predict(RUN_DIR, x)` gives class ids.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ... import checkpoint as ckpt
from ...errors import ConfigError, DataError
from ...training.trainer import TrainConfig, Trainer

CLASSIFIER_NAME = "classifier.safetensors"


@dataclass
class ClassifierOutput:
    loss: torch.Tensor  # () mean cross-entropy
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # cross_entropy, accuracy (batch means)
    weights: dict[str, float] = field(default_factory=dict)  # loss = sum_k weights[k] * terms[k]
    batch_size: int | None = None


class StackedClassifier(nn.Module):
    """An autoencoder's encoder (shared, not copied) and a linear head on its top code."""

    def __init__(self, autoencoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ConfigError(f"n_classes must be an integer >= 2; got {n_classes!r}.")
        self.autoencoder = autoencoder
        self.head = nn.Linear(autoencoder.latent_dim, n_classes)  # (B, w_L) -> (B, C)
        self.n_classes = n_classes
        self.d = int(torch.Size(autoencoder.input_shape).numel())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.autoencoder.encode(x))  # (B, *shape) -> (B, C)

    def as_input(self, x, *, name: str = "x") -> torch.Tensor:
        """x as the encoder takes it (flattened images reshaped); see Autoencoder.as_input."""
        return self.autoencoder.as_input(x, name=name)

    def training_step(self, batch, group: str = "main") -> ClassifierOutput:
        """Cross-entropy of the head on a batch (x, y) or {"x": x, "y": y}: x (B, *shape), y (B,) class ids."""
        x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else (batch[0], batch[1])
        logits = self.logits(x)  # (B, C)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        return ClassifierOutput(loss=loss, terms={"cross_entropy": loss, "accuracy": acc},
                                weights={"cross_entropy": 1.0, "accuracy": 0.0})

    def validation_step(self, batch) -> ClassifierOutput:
        return self.training_step(batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) of x (B, *shape)."""
        return self.logits(x)


def _check_labels(y: torch.Tensor | None, n: int, name: str) -> torch.Tensor:
    if y is None:
        raise DataError(f"the classifier fine-tune needs labels for {name}; this data source has none. "
                        "Use finetune='reconstruction' or 'none', or data with labels.")
    y = torch.as_tensor(y).long().reshape(-1)
    if y.shape[0] != n:
        raise DataError(f"{name} has {n} samples but {y.shape[0]} labels.")
    if y.numel() and int(y.min()) < 0:
        raise DataError(f"labels of {name} must be class ids >= 0; got {int(y.min())}.")
    return y


@torch.no_grad()
def _batched_logits(clf: StackedClassifier, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    was = clf.training
    clf.eval()
    device = clf.head.weight.device
    out = torch.cat([clf.logits(x[i:i + batch_size].to(device)).cpu() for i in range(0, x.shape[0], batch_size)])
    clf.train(was)
    return out


def finetune_classifier(autoencoder: nn.Module, x_train: torch.Tensor, y_train, x_val=None, y_val=None, *,
                        n_classes: int | None = None, config: TrainConfig | None = None, head_epochs: int = 5,
                        callbacks=None) -> tuple[StackedClassifier, list[dict], dict]:
    """Train a softmax head on frozen codes (head_epochs), then head + encoder (config.epochs).

    Returns (classifier, history records tagged with their phase, summary with the validation
    accuracy after each phase). The autoencoder's encoder is updated in place; its decoder is not.
    """
    y_train = _check_labels(y_train, x_train.shape[0], "the training split")
    has_val = x_val is not None and x_val.shape[0] > 0
    y_val = _check_labels(y_val, x_val.shape[0], "the validation split") if has_val else None
    if n_classes is None:
        n_classes = int(max(int(y_train.max()), int(y_val.max()) if has_val else 0)) + 1
    if int(y_train.max()) >= n_classes:
        raise DataError(f"labels go up to {int(y_train.max())} but n_classes={n_classes}.")
    base = dataclasses.replace(config or TrainConfig(), binarize="none")  # the classifier sees the inputs as given
    clf = StackedClassifier(autoencoder, n_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(base.seed)
        clf.head.reset_parameters()
    train_xy = (x_train, y_train)  # labels travel in the batch
    val_xy = (x_val, y_val) if has_val else None
    probe_x, probe_y = (x_val, y_val) if has_val else (x_train, y_train)
    history: list[dict] = []
    summary = {"n_classes": n_classes, "accuracy_pretrained": None, "accuracy_finetuned": None,
               "accuracy_on": "val" if has_val else "train"}

    def run(phase: str, epochs: int) -> None:
        def tag(record, trainer):
            history.append({"phase": phase, **record})
            for cb in callbacks or []:
                cb(history[-1], trainer)

        cfg = dataclasses.replace(base, epochs=epochs)
        Trainer(clf, cfg, callbacks=[tag]).fit(train_xy, val_xy)

    if head_epochs > 0:
        for p in autoencoder.parameters():
            p.requires_grad_(False)
        try:
            run("classifier_head", head_epochs)
        finally:
            for p in autoencoder.parameters():
                p.requires_grad_(True)
    summary["accuracy_pretrained"] = accuracy(clf, probe_x, probe_y)
    if base.epochs > 0:
        run("classifier_finetune", base.epochs)
    summary["accuracy_finetuned"] = accuracy(clf, probe_x, probe_y)
    clf.eval()
    return clf, history, summary


def accuracy(clf: StackedClassifier, x: torch.Tensor, y) -> float:
    """Share of x whose predicted class is y."""
    y = torch.as_tensor(y).long().reshape(-1)
    return float((_batched_logits(clf, x).argmax(dim=1) == y).float().mean())


def save_classifier(clf: StackedClassifier, run_dir) -> Path:
    """The head only (the encoder lives in the run's model.safetensors): RUN_DIR/classifier.safetensors."""
    path = Path(run_dir) / CLASSIFIER_NAME
    ckpt.atomic_write_bytes(path, ckpt.tensors_to_bytes({"weight": clf.head.weight, "bias": clf.head.bias}))
    return path


def load_classifier(run_dir) -> StackedClassifier:
    """The classifier of a stacked run fine-tuned with finetune='classifier' (eval mode, CPU)."""
    from ...training.runs import load_run

    model, _ = load_run(run_dir)
    path = Path(run_dir) / CLASSIFIER_NAME
    if not path.is_file():
        raise ConfigError(f"{str(run_dir)!r} has no classifier head ({CLASSIFIER_NAME}); only stacked runs trained "
                          "with --finetune classifier have one.")
    state = ckpt.read_tensors(path)
    if set(state) != {"weight", "bias"} or state["weight"].dim() != 2 or state["weight"].shape[1] != model.latent_dim:
        raise ConfigError(f"{str(path)!r} does not match the run's model (latent_dim {model.latent_dim}).")
    clf = StackedClassifier(model, int(state["weight"].shape[0]))
    ckpt.load_state_into(clf.head, state, source=path)
    return clf.eval()


def predict(source, x: torch.Tensor) -> torch.Tensor:
    """Class ids (N,) int64 for x (N, *shape); source: a StackedClassifier or a run directory."""
    clf = source if isinstance(source, StackedClassifier) else load_classifier(source)
    return _batched_logits(clf, x).argmax(dim=1)
