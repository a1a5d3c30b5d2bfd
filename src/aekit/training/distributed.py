"""Data-parallel training with torch.distributed: `torchrun --nproc_per_node=N -m aekit train ...`.

One process per device (rank). The process group is initialised from torchrun's environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): gloo on CPU, nccl on CUDA (rank r
uses cuda:LOCAL_RANK). Without WORLD_SIZE > 1 nothing here runs and the plain Trainer is used.

How a step is split (so the result matches single-process training with the same global batch):

- Every rank draws the same per-epoch permutation (the shuffling generator is seeded with the
  same seed everywhere), so every rank forms the same global batch of `batch_size` rows and
  keeps its contiguous shard: rows [r*B/W, (r+1)*B/W) (`torch.tensor_split`).
- Each rank's loss is the mean over its shard; its gradient is scaled by n_r / B and the
  gradients are summed over ranks (one flat all-reduce per step). The sum is exactly the
  gradient of the global batch's mean loss, so the optimizer step equals single-process
  training up to float32 summation order (measured: max |w_ddp - w_single| = 6e-8 after 16
  Adam steps; tests/test_distributed.py asserts < 1e-5). The last, smaller batch of an epoch is split unevenly and
  weighted the same way; a last batch with fewer rows than ranks is skipped (at most W-1 rows
  per epoch), which is the one place results differ.
- Batch statistics (the kl_sparsity penalty's mean activation) are computed per shard, as with
  any data-parallel training; per-sample losses (reconstruction, KL to the prior, contractive,
  L1) are unaffected.
- Noise (corruptions, VAE samples) comes from each rank's own stream, reseeded at every step
  from (seed, rank, step): independent across ranks, and resume (inside an epoch too) stays exact.
- The loss checked for NaN/inf is the global batch's (an all-reduce), so all ranks stop together
  with the same TrainingError. Validation runs on every rank and rank 0's numbers are broadcast,
  so early stopping and --max-time decide the same everywhere.
- Only rank 0 writes (run.json, history, checkpoints, the kept model, the loggers) and prints;
  it holds the run folder's lock (aekit.training.run_lock), and a refused lock stops every rank alike.
  --resume: every rank reads the same checkpoint from --out (a folder all nodes share); ranks
  that disagree on the epoch/step they resumed from stop with a CheckpointError.
- batch_size must be divisible by the number of processes (a ConfigError says so).
- Mixed precision (--precision): each rank autocasts its own forward; with 16-mixed the scaled
  gradients are all-reduced, then unscaled (before clipping) and stepped, so every rank sees the
  same gradients and skips the same steps; the loss scale is rank 0's in each checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..errors import AekitError, CheckpointError, ConfigError
from .run_lock import RunLock
from ..step import batch_rows, map_batch
from .trainer import TrainConfig, Trainer

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_MINUTES = 10  # a rank that stops answering fails the others after this long


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job; world_size == 1 means plain single-process training."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(environ, name: str, default: int) -> int:
    value = environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer (set by torchrun); got {value!r}.") from None


def context_from_env(environ=None) -> DistContext:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; no WORLD_SIZE (or 1) means single process."""
    environ = os.environ if environ is None else environ
    world = _env_int(environ, "WORLD_SIZE", 1)
    rank = _env_int(environ, "RANK", 0)
    local = _env_int(environ, "LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}; "
                          "expected 0 <= RANK < WORLD_SIZE.")
    return DistContext(rank=rank, world_size=world, local_rank=local)


def choose_backend(device: str) -> str:
    """gloo for CPU training, nccl for CUDA (device 'auto' picks CUDA when this torch sees a GPU)."""
    kind = str(device or "auto").split(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return "gloo"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} under torchrun, but this torch sees no CUDA device; use --device cpu.")
        return "nccl"
    raise ConfigError(f"distributed training supports device 'auto', 'cpu' or 'cuda'; got {device!r}.")


@contextlib.contextmanager
def distributed_session(device: str = "auto", environ=None):
    """Initialise the process group from torchrun's environment for the duration of a run.

    Yields a DistContext; with WORLD_SIZE unset or 1 it yields the single-process context and
    initialises nothing. The group is always destroyed on the way out (also after an error).
    """
    ctx = context_from_env(environ)
    if not ctx.enabled:
        yield ctx
        return
    backend = choose_backend(device)
    ctx = dataclasses.replace(ctx, backend=backend)
    environ = os.environ if environ is None else environ
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not environ.get(v)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={ctx.world_size} but {', '.join(missing)} is not set: launch with torchrun "
                          "(torchrun --nproc_per_node=N -m aekit train ...), which sets it.")
    if backend == "nccl":
        torch.cuda.set_device(ctx.local_rank)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend=backend, init_method="env://", rank=ctx.rank, world_size=ctx.world_size,
                                timeout=datetime.timedelta(minutes=TIMEOUT_MINUTES))
    finished = False
    try:
        yield ctx
        finished = True
    finally:
        if owned and dist.is_initialized():
            if finished:
                # every rank is done (rank 0 has written its outputs) before any rank tears its
                # connections down: no rank closes a socket a peer still reads from
                with contextlib.suppress(RuntimeError):  # a peer that failed reports its own error
                    dist.barrier()
            dist.destroy_process_group()
            gc.collect()  # free the group's native threads now, not during interpreter shutdown


def rank_device(device: str, ctx: DistContext) -> str:
    """The device of this rank: cuda:LOCAL_RANK under nccl, else cpu."""
    return f"cuda:{ctx.local_rank}" if ctx.backend == "nccl" else "cpu"


class DistributedTrainer(Trainer):
    """A Trainer whose steps are data-parallel over the ranks of an initialised process group.

    Same options, same outputs (written by rank 0 only); see the module docstring for the rules.
    """

    def __init__(self, model: torch.nn.Module, config: TrainConfig | None = None, *, dist_ctx: DistContext,
                 out_dir=None, run_info: dict | None = None, callbacks=None, **options) -> None:
        cfg = config or TrainConfig()
        if not dist.is_initialized():
            raise ConfigError("DistributedTrainer needs an initialised process group: use distributed_session().")
        if cfg.batch_size % dist_ctx.world_size:
            raise ConfigError(f"batch_size ({cfg.batch_size}) must be divisible by the number of processes "
                              f"({dist_ctx.world_size}): every rank takes an equal shard of each global batch; "
                              f"try --batch-size {max(1, cfg.batch_size // dist_ctx.world_size) * dist_ctx.world_size}.")
        self.dist = dist_ctx
        self.shared_out_dir = Path(out_dir) if out_dir is not None else None
        main = dist_ctx.is_main
        super().__init__(model, dataclasses.replace(cfg, device=rank_device(cfg.device, dist_ctx)),
                         out_dir=out_dir if main else None, run_info=run_info, callbacks=callbacks if main else None,
                         **options)
        self.cfg = cfg  # record the options as given (device 'auto', not this rank's cuda:N)
        self.callbacks.insert(0, lambda record, trainer: trainer._agree_on_stopping(record))
        self._global_n = self._local_n = 0
        self._broadcast_model()

    # ------------------------------------------------------------------ collectives
    def _broadcast_model(self) -> None:
        """Start every rank from rank 0's weights (they are equal when seeded alike; this makes sure)."""
        for t in list(self.model.parameters()) + list(self.model.buffers()):
            if t.dtype.is_floating_point or t.dtype in (torch.int32, torch.int64):
                dist.broadcast(t.data, src=0)

    def _all_reduce(self, values: list[float], op=dist.ReduceOp.SUM) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=op)
        return t.tolist()

    # ------------------------------------------------------------------ data: this rank's shard
    def _shard(self, item):
        """This rank's rows of a global batch (every tensor of a tensor, tuple or dict batch, the same rows);
        None when the batch has fewer rows than ranks."""
        n, world = batch_rows(item), self.dist.world_size
        if n < world:  # fewer rows than ranks (the epoch's last batch): skipped on every rank alike
            return None
        self._global_n = n
        shard = map_batch(item, lambda t: torch.tensor_split(t, world)[self.dist.rank])  # contiguous rows
        self._local_n = batch_rows(shard)
        return shard

    def _batches(self, *args, **kwargs):
        for item in super()._batches(*args, **kwargs):
            shard = self._shard(item)
            if shard is not None:
                yield shard

    def _stream_batches(self, *args, **kwargs):
        for item in super()._stream_batches(*args, **kwargs):
            shard = self._shard(item)
            if shard is not None:
                yield shard

    # ------------------------------------------------------------------ hooks of Trainer.fit / _train_epoch
    def _before_step(self) -> None:
        # each rank's noise stream: independent across ranks, a function of the global step, so a
        # resume from any checkpoint (rank 0's, inside an epoch too) redraws the same noise everywhere
        seed = np.random.SeedSequence([self.cfg.seed % 2**32, self.dist.rank, self.step]).generate_state(1)[0]
        torch.manual_seed(int(seed))

    def _is_main(self) -> bool:
        return self.dist.is_main

    def _resume_folder(self):
        return self.shared_out_dir

    @contextlib.contextmanager
    def _run_lock(self):
        """Rank 0 locks the run folder; every rank learns whether it could, so none waits on a failed peer."""
        lock, error = None, None
        if self.dist.is_main and self.out_dir is not None:
            try:
                lock = RunLock(self.out_dir).__enter__()
            except (AekitError, OSError) as exc:
                error = exc
        if self._all_reduce([1.0 if error is not None else 0.0])[0]:
            if error is not None:
                raise error
            raise CheckpointError(f"rank 0 could not lock the run folder {str(self.shared_out_dir)!r} "
                                  "(another training writes there); see rank 0's error.")
        try:
            yield
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)

    def _agreed_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The global batch's mean loss on every rank (NaN anywhere -> NaN everywhere)."""
        t = (loss.detach().float() * (self._local_n / self._global_n)).reshape(1)
        dist.all_reduce(t)
        return t[0]

    def _sync_gradients(self, params=None) -> None:
        """grad = sum_r (n_r / B) * grad_r: the gradient of the global batch's mean loss (of params: one group's)."""
        grads = [p.grad for p in (self.model.parameters() if params is None else params) if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # (P,) one collective per step
        flat.mul_(self._local_n / self._global_n)
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def _epoch_means(self, sums: dict, count: int) -> dict:
        keys = list(sums)
        totals = self._all_reduce([float(sums[k]) for k in keys] + [float(count)])
        total = max(totals[-1], 1.0)
        return {f"train_{k}": v / total for k, v in zip(keys, totals[:-1])}

    def _global_samples(self, n: int) -> int:
        """The epoch's samples over every rank (throughput of the whole job)."""
        return int(self._all_reduce([float(n)])[0])

    def evaluate(self, x, *args, **kwargs) -> dict:
        """Validation on every rank, rank 0's numbers everywhere (so stopping decisions agree)."""
        result = super().evaluate(x, *args, **kwargs)
        keys = list(result)
        t = torch.tensor([result[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return dict(zip(keys, t.tolist()))

    def _agree_on_stopping(self, record: dict) -> None:
        """Callback run on every rank before the stop checks: --max-time uses the slowest rank's clock."""
        self.elapsed = self._all_reduce([self.elapsed], op=dist.ReduceOp.MAX)[0]

    def _progress(self, total: int):
        return super()._progress(total) if self.dist.is_main else None

    # ------------------------------------------------------------------ resume
    def last_checkpoint_dir(self) -> Path | None:
        """Every rank names the same last good checkpoint (in its errors), not only rank 0."""
        own, self.out_dir = self.out_dir, self.shared_out_dir
        try:
            return super().last_checkpoint_dir()
        finally:
            self.out_dir = own

    def load_checkpoint(self) -> Path:
        """Every rank restores from the shared --out folder; all must land on the same epoch and step."""
        own, self.out_dir = self.out_dir, self.shared_out_dir
        error, path = None, None
        try:
            path = super().load_checkpoint()
        except CheckpointError as exc:
            error = exc
        finally:
            self.out_dir = own
        failed = self._all_reduce([1.0 if error is not None else 0.0])[0]
        if failed:
            if error is not None:
                raise error
            raise CheckpointError(f"{int(failed)} other rank(s) could not read a checkpoint in "
                                  f"{str(self.shared_out_dir)!r}: --out must be a folder every node can read.")
        lo = self._all_reduce([-float(self.epoch), -float(self.step)], op=dist.ReduceOp.MAX)
        hi = self._all_reduce([float(self.epoch), float(self.step)], op=dist.ReduceOp.MAX)
        if [-lo[0], -lo[1]] != hi:
            raise CheckpointError(f"ranks resumed from different checkpoints (epochs {-lo[0]:.0f} to {hi[0]:.0f}) in "
                                  f"{str(self.shared_out_dir)!r}; was it written to while resuming?")
        return path


def make_trainer(model: torch.nn.Module, config: TrainConfig, *, dist_ctx: DistContext | None = None, **kwargs) -> Trainer:
    """A DistributedTrainer inside an initialised multi-process session, else the plain Trainer."""
    if dist_ctx is not None and dist_ctx.enabled:
        return DistributedTrainer(model, config, dist_ctx=dist_ctx, **kwargs)
    return Trainer(model, config, **kwargs)


__all__ = ["DistContext", "DistributedTrainer", "choose_backend", "context_from_env", "distributed_session",
           "make_trainer", "rank_device"]
