"""Training checkpoints: everything needed to resume a run bit-exactly, written atomically.

Each epoch's state (model weights, optimizer, scheduler, every RNG, counters and history) goes
into a new folder `checkpoints/.epoch-NNNNN.partial`, which is renamed to `epoch-NNNNN` when
complete; `checkpoints/last.json` is then switched to it by an atomic rename. The newest
`keep_checkpoints` folders are kept, so a corrupted newest checkpoint (detected by the checksums
in its safetensors headers) falls back to the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from . import checkpoint as ckpt
from .errors import CheckpointError, ConfigError


def write_checkpoint(root: Path, epoch: int, *, write_model: Callable[[Path], None], state: dict, meta: dict,
                     keep: int) -> Path:
    """One checkpoint folder root/epoch-NNNNN, complete or absent; last.json switched to it; `keep` newest kept.

    write_model(folder) writes the weights; state (tensors and plain values, nested) goes to
    state.safetensors, meta (JSON) to state.json with the checksums of both.
    """
    name = f"epoch-{epoch:05d}"
    tmp = root / f".{name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_model(tmp)
    skeleton, tensors = ckpt.flatten_state(state)
    data = ckpt.tensors_to_bytes(tensors)
    ckpt.atomic_write_bytes(tmp / "state.safetensors", data)
    meta = {"format_version": 1, "state": skeleton, "state_sha256": ckpt.sha256(data), "epoch": epoch, **meta}
    meta["meta_sha256"] = ckpt.sha256(json.dumps(meta, sort_keys=True).encode())  # state.json checks itself
    ckpt.atomic_write_json(tmp / "state.json", meta)
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    ckpt.atomic_write_json(root / "last.json", {"dir": name, "epoch": epoch})
    for old in sorted(p for p in root.glob("epoch-*") if p.is_dir())[:-keep]:
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
    """The folder last.json points to, or None."""
    pointer = root / "last.json"
    if not pointer.is_file():
        return None
    try:
        return root / json.loads(pointer.read_text())["dir"]
    except (ValueError, KeyError, TypeError):
        return None


def restore_newest(out_dir: Path | None, restore: Callable[[Path], None]) -> Path:
    """restore(folder) on the newest readable checkpoint of out_dir; a corrupted one falls back to the previous."""
    if out_dir is None:
        raise ConfigError("resume needs an output directory (out_dir).")
    root = Path(out_dir) / "checkpoints"
    last = last_checkpoint(root)
    candidates = [last] if last is not None else []
    candidates += [p for p in sorted(root.glob("epoch-*"), reverse=True) if p not in candidates]
    if not candidates:
        raise CheckpointError(f"nothing to resume in {str(out_dir)!r}: no checkpoints/ folder with a checkpoint.")
    errors = []
    for path in candidates:
        try:
            restore(path)
            if errors:
                print(f"aekit: skipped unreadable checkpoint(s): {'; '.join(errors)}; resumed from {path}", file=sys.stderr)
            return path
        except CheckpointError as exc:
            errors.append(str(exc))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:  # hostile state.json
            errors.append(f"{str(path)!r} holds an unreadable training state ({type(exc).__name__}: {exc})")
    raise CheckpointError("no readable checkpoint to resume from: " + "; ".join(errors))


class CheckpointMixin:
    """Checkpoint methods of the Trainer (expects model, optimizer, scheduler, generators, counters, cfg)."""

    @property
    def checkpoint_root(self) -> Path:
        assert self.out_dir is not None
        return self.out_dir / "checkpoints"

    def last_checkpoint_dir(self) -> Path | None:
        return None if self.out_dir is None else last_checkpoint(self.checkpoint_root)

    def save_checkpoint(self, *, best: bool = False) -> Path:
        """Write model + optimizer + scheduler + RNG + counters into a new folder, then switch last.json to it."""
        final = write_checkpoint(self.checkpoint_root, self.epoch, write_model=lambda folder: ckpt.save(self.model, folder),
                                 state={
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "rng_shuffle": self.shuffle_gen.get_state(),
            "rng_binarize": self.binarize_gen.get_state(),
        }, meta={"step": self.step, "best_val": self.best_val, "best_epoch": self.best_epoch,
                 "bad_epochs": self.bad_epochs, "elapsed": self.elapsed, "history": self.history,
                 "train": asdict(self.cfg)}, keep=self.cfg.keep_checkpoints)
        if best:
            ckpt.save(self.model, self.out_dir)
        return final

    def load_checkpoint(self) -> Path:
        """Restore the newest readable checkpoint; a corrupted newest one falls back to the previous."""
        return restore_newest(self.out_dir, self._restore)

    def _restore(self, path: Path) -> None:
        meta, state = read_checkpoint(path)
        weights = ckpt.read_tensors(path / ckpt.WEIGHTS_NAME)
        ckpt.load_state_into(self.model, weights, source=path / ckpt.WEIGHTS_NAME)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"] is not None:
                fresh = {k: getattr(self.scheduler, k) for k in ("total_steps", "_schedule_phases") if hasattr(self.scheduler, k)}
                self.scheduler.load_state_dict(state["scheduler"])
                for k, v in fresh.items():  # OneCycleLR: keep the length of this run (epochs may have grown)
                    setattr(self.scheduler, k, v)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{str(path)!r}: optimizer state does not match this model ({exc}).") from None
        torch.set_rng_state(state["rng_torch"].cpu())
        if self.device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.device)
        self.shuffle_gen.set_state(state["rng_shuffle"].cpu())
        self.binarize_gen.set_state(state["rng_binarize"].cpu())
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        self.best_val, self.best_epoch = meta["best_val"], meta["best_epoch"]
        self.bad_epochs, self.elapsed = int(meta["bad_epochs"]), float(meta["elapsed"])
        self.history = list(meta["history"])
