"""Training checkpoints: everything needed to resume a run bit-exactly, written atomically.

Each checkpoint (model weights, optimizer, scheduler, every RNG, counters and history) goes into
a new folder `checkpoints/.NAME.partial`, which is renamed to NAME when complete;
`checkpoints/last.json` is then switched to it by an atomic rename. NAME is `epoch-NNNNN` at the
end of epoch NNNNN, and `epoch-NNNNN-step-SSSSSSSSSS` for a checkpoint taken inside epoch
NNNNN + 1 (`checkpoint_every`), so names sort in the order they were written. The newest
`keep_checkpoints` folders are kept, so a corrupted newest checkpoint (detected by the checksums
in its safetensors headers and state.json) falls back to the previous one.

Nothing is read or deleted through a link: a `checkpoints/` that is a symbolic link, a checkpoint
folder that is one, or a last.json naming anything but a checkpoint folder of this run is refused.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from .. import checkpoint as ckpt
from ..errors import CheckpointError, ConfigError

OLD_PRECISION = {"precision": "32", "scaler": None}  # checkpoints written before precision existed


class PrecisionMismatch(CheckpointError):
    """A checkpoint trained with another precision than the resuming run's: a choice to correct, not damage
    (not skipped for an older checkpoint)."""


NAME_PATTERN = re.compile(r"epoch-\d{5,}(-step-\d{10,})?")


def checkpoint_name(epoch: int, step: int | None = None) -> str:
    """epoch-NNNNN (end of an epoch) or epoch-NNNNN-step-SSSSSSSSSS (inside the next epoch)."""
    return f"epoch-{epoch:05d}" if step is None else f"epoch-{epoch:05d}-step-{step:010d}"


def check_root(root: Path) -> None:
    """Refuse a checkpoints/ folder that is a link (it could point anywhere: its files would be deleted)."""
    if root.is_symlink():
        raise CheckpointError(f"{str(root)!r} is a symbolic link; aekit never follows links out of a run folder. "
                              "Remove the link (or pass --overwrite, which removes the link itself, not its target).")


def remove_path(path: Path) -> None:
    """Delete a file, a link (never its target) or a folder tree (links inside are unlinked, not followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def checkpoint_folders(root: Path) -> list[Path]:
    """The checkpoint folders of root, oldest first; links and stray names are ignored."""
    if not root.is_dir() or root.is_symlink():
        return []
    return sorted(p for p in root.iterdir() if NAME_PATTERN.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def write_checkpoint(root: Path, epoch: int, *, write_model: Callable[[Path], None], state: dict, meta: dict,
                     keep: int, step: int | None = None, before_switch: Callable[[], None] | None = None) -> Path:
    """One checkpoint folder under root, complete or absent; last.json switched to it; `keep` newest kept.

    write_model(folder) writes the weights; state (tensors and plain values, nested) goes to
    state.safetensors, meta (JSON) to state.json with the checksums of both. step: a checkpoint
    inside epoch `epoch` + 1 (None: the end of epoch `epoch`). before_switch() runs once the folder
    is complete and before last.json names it (the run's kept model is written there, so a crash
    never leaves last.json ahead of the kept model).
    """
    check_root(root)
    name = checkpoint_name(epoch, step)
    tmp = root / f".{name}.partial"
    remove_path(tmp)
    tmp.mkdir(parents=True)
    write_model(tmp)
    skeleton, tensors = ckpt.flatten_state(state)
    data = ckpt.tensors_to_bytes(tensors)
    ckpt.atomic_write_bytes(tmp / "state.safetensors", data)
    meta = {"format_version": 1, "state": skeleton, "state_sha256": ckpt.sha256(data), "epoch": epoch, **meta}
    meta["meta_sha256"] = ckpt.sha256(json.dumps(meta, sort_keys=True).encode())  # state.json checks itself
    ckpt.atomic_write_json(tmp / "state.json", meta)
    final = root / name
    remove_path(final)
    os.replace(tmp, final)
    if before_switch is not None:
        before_switch()
    pointer = {"dir": name, "epoch": epoch, "step": meta.get("step")}
    if step is not None:
        pointer["epoch_step"] = meta.get("epoch_step")
    ckpt.atomic_write_json(root / "last.json", pointer)
    for old in checkpoint_folders(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """(meta, state) of one checkpoint folder, both checksums verified (CheckpointError otherwise)."""
    meta = ckpt.read_json(path / "state.json")
    recorded = meta.pop("meta_sha256", None)  # absent in checkpoints written before it existed
    if recorded is not None and ckpt.sha256(json.dumps(meta, sort_keys=True).encode()) != recorded:
        raise CheckpointError(f"{str(path / 'state.json')!r} is corrupted: its contents do not match its checksum.")
    tensors = ckpt.read_tensors(path / "state.safetensors", expected_sha256=meta.get("state_sha256"))
    return meta, ckpt.unflatten_state(meta["state"], tensors)


def last_checkpoint(root: Path) -> Path | None:
    """The folder last.json points to, or None (also when it names anything but a checkpoint folder of root)."""
    pointer = root / "last.json"
    if root.is_symlink() or not pointer.is_file() or pointer.is_symlink():
        return None
    try:
        name = json.loads(pointer.read_text())["dir"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        print(f"aekit: {str(pointer)!r} names {name!r}, not a checkpoint folder of this run; ignored.", file=sys.stderr)
        return None
    return root / name


def has_checkpoint(out_dir: Path | None) -> bool:
    """Whether out_dir/checkpoints holds any checkpoint folder (readable or not)."""
    return out_dir is not None and bool(checkpoint_folders(Path(out_dir) / "checkpoints"))


def restore_newest(out_dir: Path | None, restore: Callable[[Path], None]) -> Path:
    """restore(folder) on the newest readable checkpoint of out_dir; a corrupted one falls back to the previous."""
    if out_dir is None:
        raise ConfigError("resume needs an output directory (out_dir).")
    root = Path(out_dir) / "checkpoints"
    check_root(root)
    last = last_checkpoint(root)
    candidates = [last] if last is not None and last.is_dir() and not last.is_symlink() else []
    candidates += [p for p in reversed(checkpoint_folders(root)) if p not in candidates]
    if not candidates:
        raise CheckpointError(f"nothing to resume in {str(out_dir)!r}: no checkpoints/ folder with a checkpoint.")
    errors = []
    for path in candidates:
        try:
            restore(path)
            if errors:
                print(f"aekit: skipped unreadable checkpoint(s): {'; '.join(errors)}; resumed from {path}", file=sys.stderr)
            return path
        except PrecisionMismatch:
            raise
        except CheckpointError as exc:
            errors.append(str(exc))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, OverflowError) as exc:
            errors.append(f"{str(path)!r} holds an unreadable training state ({type(exc).__name__}: {exc})")
    raise CheckpointError("no readable checkpoint to resume from: " + "; ".join(errors))


def check_meta(meta: dict, path: Path) -> None:
    """Types and ranges of the counters in state.json (its checksum can be recomputed by anyone)."""
    def bad(key, want):
        raise CheckpointError(f"{str(path / 'state.json')!r}: {key} must be {want}; got {meta.get(key)!r}.")

    def count(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53

    for key in ("epoch", "step", "bad_epochs"):
        if not count(meta.get(key)):
            bad(key, "an integer >= 0")
    if not count(meta.get("epoch_step", 0)) or not count(meta.get("epoch_count", 0)):
        bad("epoch_step", "an integer >= 0")
    elapsed = meta.get("elapsed")
    if not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool) or not math.isfinite(elapsed) or elapsed < 0:
        bad("elapsed", "a finite number of seconds >= 0")
    if meta.get("best_val") is not None and (not isinstance(meta["best_val"], (int, float))
                                             or isinstance(meta["best_val"], bool)):
        bad("best_val", "a number or null")
    if meta.get("best_epoch") is not None and not count(meta["best_epoch"]):
        bad("best_epoch", "an integer >= 0 or null")
    history = meta.get("history")
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        bad("history", "a list of per-epoch records (objects)")
    for record in history:
        if not all(isinstance(k, str) and (v is None or isinstance(v, (int, float, str))) for k, v in record.items()):
            bad("history", "a list of records of numbers")


def upgrade_segment_checkpoint(meta: dict, state: dict) -> tuple[dict, dict]:
    """A checkpoint of the first release's segmentation trainer (one generator 'rng' for shuffling, crops and
    augmentation; 'best_dice') in the one trainer's terms: the run continues from its weights, Adam state,
    counters and history; its shuffling and crops draw from the old generator's state, and the global RNG
    (unused by the U-Net) stays as it is."""
    if "rng" not in state or "rng_shuffle" in state:
        return meta, state
    state = {**state, "rng_shuffle": state["rng"], "rng_transform": state["rng"]}
    state.pop("rng")
    meta = {"bad_epochs": 0, **meta, "best_val": meta.get("best_dice")}
    return meta, state


class CheckpointMixin:
    """Checkpoint methods of the Trainer (expects model, optimizer, scheduler, generators, counters, cfg)."""

    @property
    def checkpoint_root(self) -> Path:
        assert self.out_dir is not None
        return self.out_dir / "checkpoints"

    def last_checkpoint_dir(self) -> Path | None:
        return None if self.out_dir is None else last_checkpoint(self.checkpoint_root)

    def save_checkpoint(self, *, best: bool = False, inside: dict | None = None) -> Path:
        """Write model + optimizer + scheduler + RNG + counters into a new folder, then switch last.json to it.

        best: also write the run's kept model (before last.json is switched). inside: a checkpoint
        taken between two steps of an epoch: {"epoch_step": steps of this epoch done, "sums": the
        epoch's running sums (tensors), "count": samples so far, "shuffle": the shuffling
        generator's state at the start of the epoch, "elapsed": seconds including this epoch's}.
        """
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "rng_shuffle": self.shuffle_gen.get_state() if inside is None else inside["shuffle"],
            "rng_binarize": self.binarize_gen.get_state(),
            "rng_transform": self.transform_gen.get_state(),
        }
        if len(self.groups) > 1:  # the other optimizer groups (the first keeps the one-optimizer layout)
            state["groups"] = {g.name: {"optimizer": o.state_dict(), "scheduler": s.state_dict() if s is not None else None}
                               for g, o, s in zip(self.groups[1:], self.optimizers[1:], self.schedulers[1:])}
        meta = {"step": self.step, "best_val": self.best_val, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "elapsed": self.elapsed, "history": self.history,
                "train": asdict(self.cfg), "precision": self.precision.state_dict()}
        if len(self.groups) > 1:  # the other groups' loss scales (16-mixed; each group has its own)
            meta["precision_groups"] = {g.name: p.state_dict() for g, p in zip(self.groups[1:], self.precisions[1:])}
        if inside is not None:
            state["epoch_sums"] = dict(inside["sums"])
            meta.update(epoch_step=inside["epoch_step"], epoch_count=inside["count"], elapsed=inside["elapsed"])
        keep_model = (lambda: self._save_model(self.model, self.out_dir)) if best else None
        return write_checkpoint(self.checkpoint_root, self.epoch, write_model=lambda folder: self._save_model(self.model, folder),
                                state=state, meta=meta, keep=self.cfg.keep_checkpoints,
                                step=None if inside is None else self.step, before_switch=keep_model)

    def load_checkpoint(self) -> Path:
        """Restore the newest readable checkpoint; a corrupted newest one falls back to the previous."""
        return restore_newest(self.out_dir, self._restore)

    def _restore(self, path: Path) -> None:
        meta, state = read_checkpoint(path)
        meta, state = upgrade_segment_checkpoint(meta, state)
        check_meta(meta, path)
        self._restore_precision(meta, path)
        weights = ckpt.read_tensors(path / ckpt.WEIGHTS_NAME)
        ckpt.load_state_into(self.model, weights, source=path / ckpt.WEIGHTS_NAME)
        sums = state.get("epoch_sums") or {}
        if not isinstance(sums, dict) or not all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in sums.values()):
            raise CheckpointError(f"{str(path)!r}: the running sums of the epoch are damaged.")
        groups = state.get("groups") or {}
        pairs = [(state.get("optimizer"), state.get("scheduler"))]
        for g in self.groups[1:]:
            if g.name not in groups:
                raise CheckpointError(f"{str(path)!r} holds no state for optimizer group {g.name!r} of this model.")
            pairs.append((groups[g.name].get("optimizer"), groups[g.name].get("scheduler")))
        try:
            for opt, sched, (opt_state, sched_state) in zip(self.optimizers, self.schedulers, pairs):
                opt.load_state_dict(opt_state)
                if sched is not None and sched_state is not None:
                    fresh = {k: getattr(sched, k) for k in ("total_steps", "_schedule_phases") if hasattr(sched, k)}
                    sched.load_state_dict(sched_state)
                    for k, v in fresh.items():  # OneCycleLR: keep the length of this run (epochs may have grown)
                        setattr(sched, k, v)
        except (ValueError, KeyError, RuntimeError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{str(path)!r}: optimizer state does not match this model ({exc}).") from None
        if state.get("rng_torch") is not None:  # absent in the first release's segmentation checkpoints
            torch.set_rng_state(state["rng_torch"].cpu())
        if self.device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.device)
        self.shuffle_gen.set_state(state["rng_shuffle"].cpu())
        if state.get("rng_binarize") is not None:
            self.binarize_gen.set_state(state["rng_binarize"].cpu())
        if state.get("rng_transform") is not None:  # absent in checkpoints of the first release
            self.transform_gen.set_state(state["rng_transform"].cpu())
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        self.best_val, self.best_epoch = meta["best_val"], meta["best_epoch"]
        self.bad_epochs, self.elapsed = int(meta["bad_epochs"]), float(meta["elapsed"])
        self.history = list(meta["history"])
        self._epoch_step, self._epoch_count = int(meta.get("epoch_step", 0)), int(meta.get("epoch_count", 0))
        self._epoch_sums = {k: v.to(self.device) for k, v in sums.items()}

    def _restore_precision(self, meta: dict, path: Path) -> None:
        """Each group's precision state (the GradScaler's loss scale and growth counter for 16-mixed); a checkpoint
        without one was trained in float32 ("32"). Another precision than this run's is refused."""
        saved = meta.get("precision", OLD_PRECISION)
        trained = saved.get("precision") if isinstance(saved, dict) else None
        if trained in ("32", "bf16-mixed", "16-mixed") and trained != self.precision.name:
            raise PrecisionMismatch(f"{str(path)!r} was trained with precision={trained!r}; resume it with that "
                                    f"precision, not {self.precision.name!r} (the numerics and loss scale would differ).")
        self.precision.load_state_dict(saved, source=path)
        others = meta.get("precision_groups") or {}
        if not isinstance(others, dict):
            raise CheckpointError(f"{str(path)!r}: precision_groups must be an object; got {others!r:.80}.")
        for g, prec in zip(self.groups[1:], self.precisions[1:]):
            prec.load_state_dict(others.get(g.name, {"precision": trained, "scaler": None}), source=path)

    def _check_kept_model(self) -> None:
        """On resume: the run's kept model must be whole; a damaged one is restored from its epoch's checkpoint.

        The kept model (out_dir/config.json + model.safetensors) is what evaluate, compress, explore
        and export read. Damaged and its epoch's checkpoint still kept: restored from it, with a
        note. Damaged with no validation (the final model is kept, rewritten at the end): a note.
        Otherwise a CheckpointError: resuming would end with a run whose kept model is not its best.
        """
        out = self.out_dir
        if not (out / ckpt.WEIGHTS_NAME).exists() and not (out / ckpt.CONFIG_NAME).exists():
            return  # no epoch kept a model yet
        try:
            with torch.random.fork_rng(devices=[]):  # building the model draws initial weights: the run's RNG stays
                self._load_model(out)
            return
        except CheckpointError as exc:
            damage = str(exc)
        if self.best_epoch is None:
            print(f"aekit: the kept model in {str(out)!r} is damaged ({damage}); the final model replaces it at the end.",
                  file=sys.stderr)
            return
        source = self.checkpoint_root / checkpoint_name(self.best_epoch)
        try:
            with torch.random.fork_rng(devices=[]):
                self._load_model(source)
        except CheckpointError:
            raise CheckpointError(f"the kept model in {str(out)!r} is damaged ({damage}) and the checkpoint of its epoch "
                                  f"({self.best_epoch}) is no longer kept; retrain with --overwrite.") from None
        for name in (ckpt.WEIGHTS_NAME, ckpt.CONFIG_NAME):
            ckpt.atomic_write_bytes(out / name, (source / name).read_bytes())
        print(f"aekit: the kept model in {str(out)!r} was damaged ({damage}); restored it from {str(source)!r}.",
              file=sys.stderr)
