"""Train a sparse autoencoder on captured activations, through the one Trainer.

    sae, result = train_sae("acts", n_latents=512, activation="topk", k=16, epochs=2, out_dir="sae_run")

The rows stream from the memory-mapped store through a ShufflingBuffer (a batch source of the
Trainer: every row once per epoch, in an order fixed by (seed, epoch), so resume is exact); a
tensor of rows trains in memory instead. Before the first step the SAE is initialised from a
seeded sample of init_rows rows (scale, variance, geometric-median pre-bias; see model.py). The
run folder holds the trainer's checkpoints, history and run.json and the kept SAE (save_sae:
the training state and the folded weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...errors import ConfigError
from ...training.trainer import TrainConfig, Trainer, TrainResult
from .model import SparseAutoencoder, load_sae, save_sae
from .store import ActivationStore, ShufflingBuffer

SAE_OPTIONS = ("activation", "k", "l1", "sparsity", "threshold", "bandwidth", "aux_k", "aux_weight", "dead_window")


def open_store(data) -> ActivationStore:
    if isinstance(data, ActivationStore):
        return data
    if isinstance(data, (str, os.PathLike)):
        return ActivationStore(data)
    raise ConfigError(f"data must be an ActivationStore, a store folder or a (N, d) tensor; got {type(data).__name__}.")


def train_sae(data, *, n_latents: int, activation: str = "topk", k: int | None = None, l1: float = 1e-3,
              sparsity: float = 1e-3, threshold: float = 0.001, bandwidth: float = 0.001, aux_k: int | None = None,
              aux_weight: float = 1 / 32, dead_window: int = 1_000_000, epochs: int = 1, batch_size: int = 1024,
              lr: float = 1e-3, betas=(0.9, 0.999), schedule: str = "cosine", seed: int = 0, init_rows: int = 8192,
              buffer_rows: int = 65536, chunk_rows: int = 4096, drop_last: bool = False, out_dir=None, resume: bool = False,
              val_data=None, progress: bool | None = False, run_info: dict | None = None,
              **train_options) -> tuple[SparseAutoencoder, TrainResult]:
    """Train an SAE of n_latents latents on data (an ActivationStore, its folder, or a (N, d) tensor of rows).

    drop_last: a store's epoch ends with whole batches only (the last rows, fewer than a batch, skipped).
    The SAE options are SparseAutoencoder's; epochs, batch_size, lr, betas, schedule, seed and any
    other TrainConfig option (warmup_steps, max_time, device, checkpoint_every, ...) go to the Trainer.
    Returns (the SAE in eval mode, the TrainResult)."""
    if isinstance(data, torch.Tensor):
        if data.dim() != 2:
            raise ConfigError(f"data as a tensor must be (N, d) rows of activations; got shape {tuple(data.shape)}.")
        d, store, train = int(data.shape[1]), None, data.float()
    else:
        store = open_store(data)
        if len(store) == 0:
            raise ConfigError(f"the store {str(store.path)!r} holds no rows.")
        d = store.d
        buffer_rows = max(min(buffer_rows, len(store)), batch_size, chunk_rows)
        train = ShufflingBuffer(store, batch_size=batch_size, buffer_rows=buffer_rows, chunk_rows=chunk_rows,
                                seed=seed, drop_last=drop_last)
    if not isinstance(init_rows, int) or isinstance(init_rows, bool) or init_rows < 1:
        raise ConfigError(f"init_rows must be a positive integer; got {init_rows!r}.")
    sae = SparseAutoencoder(d=d, n_latents=n_latents, activation=activation, k=k, l1=l1, sparsity=sparsity,
                            threshold=threshold, bandwidth=bandwidth, aux_k=aux_k, aux_weight=aux_weight,
                            dead_window=dead_window, seed=seed)
    if not resume:
        if store is not None:
            sample = torch.from_numpy(store.sample(init_rows, seed=seed))
        else:
            rows = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[:init_rows]
            sample = train[rows]
        sae.init_from_sample(sample)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, betas=tuple(betas), schedule=schedule, seed=seed,
                      progress=progress, **train_options)
    info = {"task": "sae", **(run_info or {})}
    if store is not None:
        info.setdefault("store", {"path": str(Path(store.path).resolve()), "rows": len(store), "d": d,
                                  "meta": store.meta})
    trainer = Trainer(sae, cfg, out_dir=out_dir, run_info=info, save_model=save_sae, load_model=load_sae)
    result = trainer.fit(train, val_data, resume=resume)
    if out_dir is not None and result.best_epoch is not None:  # the best epoch's SAE, as kept
        sae = load_sae(out_dir)
    return sae.eval(), result


__all__ = ["SAE_OPTIONS", "open_store", "train_sae"]
