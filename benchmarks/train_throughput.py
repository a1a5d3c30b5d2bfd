"""Training throughput and time-to-quality on MNIST: the tutorial loop vs pythae vs aekit's Trainer.

    python benchmarks/train_throughput.py                  # full run (~20-30 min on 1 busy core)
    python benchmarks/train_throughput.py --quick          # smoke test, < 1 minute
    python benchmarks/train_throughput.py --threads 2      # intra-op threads (default 1)

Network: MLP autoencoder 784-512-256-32, decoder mirrored 32-256-512-784, ReLU between layers,
linear code, squared-error objective. The tutorial and pythae decoders end in a sigmoid, as the
tutorials users copy do (pixels are in [0, 1]); aekit's Gaussian AE keeps its linear output.
Contenders (same network, same data):

  tutorial          torch DataLoader(TensorDataset, shuffle) batch 128, torch.optim.Adam(lr=1e-3),
                    nn.MSELoss, plain nn.Sequential ending in nn.Sigmoid -- the loop a user writes
                    from the tutorials.
  pythae            pythae 0.1.2 AE with the same encoder/decoder (sigmoid output), BaseTrainer,
                    batch 128, Adam 1e-3 (pythae must be importable from the interpreter running
                    this script).
  aekit-default     aekit.build("ae", hidden=[512,256], latent_dim=32) + Trainer(TrainConfig(epochs=--epochs)),
                    every other setting at aekit's defaults.
  aekit-cli         the model `aekit train ae --hidden 512,256 --latent-dim 32` builds on this data (the data-aware
                    defaults of aekit.training.data_defaults: pixels in [0, 1] get the bernoulli likelihood's
                    bounded mean), TrainConfig(epochs=--epochs) defaults.
  tutorial-ftz      the tutorial loop with subnormal floats flushed to zero (aekit.training.denormals, what
                    aekit's Trainer does on the CPU): not what users write; it shows how much of aekit's lead
                    is the flush (a saturated sigmoid's gradients are subnormal and slow every op they touch).
  aekit-tuned       the same, TrainConfig(lr=4e-3, schedule="cosine", warmup_steps=200, epochs=16):
                    settings that exist in aekit today (chosen by a sweep scored on the test set, since
                    withdrawn; see benchmarks/README.md).
  aekit-prototype   PROTOTYPE, NOT IN aekit: the tuned settings plus proposed Trainer changes
                    (PrototypeTrainer below: Adam betas (0.9, 0.99), a fused-MSE fast path for the
                    plain Gaussian AE, in-place ReLU, no per-step finiteness sync), 14 epochs.

Measured in one process, side by side:
  1. matmul peak: torch.mm on the 18 GEMMs one training step of this network issues (forward
     x@W^T, input-gradient g@W, weight-gradient g^T@x for all 6 layers) at batch 2048, same
     thread count; re-probed before every training epoch of every contender.
  2. throughput rounds: short bursts of every contender, interleaved, repeated (median).
  3. convergence runs: the contenders are advanced ROUND-ROBIN one epoch at a time (each in
     its own thread, only one running at a time), so load from other processes on this
     shared machine hits all of them alike. After each epoch: test squared error per image
     (sum over 784 pixels, mean over the 10k test images; torch.no_grad, excluded from the
     training time) and a matmul peak probe (also excluded).
  4. a torch.profiler breakdown of the aekit step (defaults and prototype).

FLOPs per sample are counted as executed: forward 2x and weight gradient 2x the weights of every
layer, input gradient 2x the weights of every layer but the first (autograd skips the input
gradient of the data) = 5.69 MFLOP. The nominal 6 x weights = 6.49 MFLOP would overstate the
fraction of peak by 14 %; it is recorded in the JSON as frac_peak_nominal_6x only.

Time to target: training seconds (evaluation and probes excluded) at the end of the first epoch
whose test squared error is <= --target (5.0). "norm." columns rescale each epoch's time by
(peak probed around that epoch / median peak of the run), i.e. what the time would have been
at the run's typical machine speed; raw times are the primary figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10,
                   help="fixed epoch budget of the tutorial / pythae / aekit-default rows (default 10)")
    p.add_argument("--tutorial-max-epochs", type=int, default=60,
                   help="the tutorial loop keeps training past --epochs until it reaches --target, "
                        "up to this many epochs (its time to target is the ratio's denominator); "
                        "set it to --epochs to skip")
    p.add_argument("--chase", default="tutorial",
                   help="comma list of fixed-budget contenders that continue to --target (up to "
                        "--tutorial-max-epochs); 'all' for every one; default: tutorial")
    p.add_argument("--tuned-epochs", type=int, default=16, help="epochs of aekit-tuned (cosine schedule length)")
    p.add_argument("--proto-epochs", type=int, default=14, help="epochs of aekit-prototype")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--target", type=float, default=5.0, help="test squared error per image to reach")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    p.add_argument("--contenders", default="tutorial,pythae,aekit-default,aekit-tuned,aekit-prototype")
    p.add_argument("--no-thread-compare", action="store_true",
                   help="skip the 1-vs-2-thread rows of the throughput rounds")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--data-dir", default=None,
                   help="MNIST idx folder (default $AEKIT_MNIST_DIR or <repo>/../shared/data/mnist)")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/train_throughput.json; "
                                               "with --quick a scratch folder: a smoke run never writes results/)")
    p.add_argument("--quick", action="store_true", help="a few steps of everything: a smoke test (< 1 min)")
    return p.parse_args(argv)


ARGS = parse_args()
# Thread count before torch is imported, so every thread (OpenMP, MKL) starts with it.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)
os.environ.setdefault("TQDM_DISABLE", "1")  # pythae's progress bar: keep the log readable

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import aekit  # noqa: E402
from aekit.data import load_data  # noqa: E402
from aekit.errors import TrainingError  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import is_published, results_path  # noqa: E402
from aekit.training.trainer import Trainer, TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIMS = [784, 512, 256, 32, 256, 512, 784]
WEIGHTS = sum(a * b for a, b in zip(DIMS[:-1], DIMS[1:]))  # 1,081,344
NOMINAL_FLOPS = 6 * WEIGHTS  # per sample, 6 x weights: NOT what runs (kept for the record)
EXEC_FLOPS = NOMINAL_FLOPS - 2 * DIMS[0] * DIMS[1]  # no input-gradient GEMM for the first layer: 5,689,344
FLOPS = EXEC_FLOPS  # every fraction of peak counts the FLOPs executed
TUNED = dict(lr=4e-3, schedule="cosine", warmup_steps=200)  # batch_size stays 128
PROTO_BETAS = (0.9, 0.99)
Q = ARGS.quick


def set_threads(n: int) -> None:
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- matmul peak
class Peak:
    """torch.mm on the GEMMs of one training step of this network, at a large batch."""

    def __init__(self, batch: int, passes: int):
        self.passes = passes
        g = torch.Generator().manual_seed(1)
        self.mats = []
        for a, b in zip(DIMS[:-1], DIMS[1:]):
            w = torch.randn(b, a, generator=g)
            x = torch.randn(batch, a, generator=g)
            gy = torch.randn(batch, b, generator=g)
            self.mats += [(x, w.t()), (gy, w), (gy.t(), x)]  # forward, input grad, weight grad
        self.flop = sum(2 * x.shape[0] * x.shape[1] * y.shape[1] for x, y in self.mats)
        self.batch = batch
        self.probes: list[float] = []
        self()  # warm up

    def __call__(self) -> float:
        best = math.inf
        for _ in range(self.passes):
            t = time.perf_counter()
            for x, y in self.mats:
                torch.mm(x, y)
            best = min(best, time.perf_counter() - t)
        gf = self.flop / best / 1e9
        self.probes.append(gf)
        return gf


# ----------------------------------------------------------------------------- data, eval
DATASET = None  # the loaded Dataset: the aekit-cli contender resolves its data-aware defaults on it


def load(data_dir: str):
    global DATASET
    ds = DATASET = load_data("mnist", data_dir=data_dir, val_fraction=0.0, seed=ARGS.seed)
    x_train, x_test = ds.train.contiguous(), ds.test.contiguous()  # (60000,1,28,28), (10000,1,28,28)
    if Q:
        x_train, x_test = x_train[:4096].contiguous(), x_test[:1000].contiguous()
    return x_train, x_test


@torch.no_grad()
def test_sq_error(recon, x_test: torch.Tensor) -> float:
    """Sum over pixels of the squared error, mean over test images; recon: (B, 784) -> (B, 784)."""
    xf = x_test.reshape(x_test.shape[0], -1)
    total = 0.0
    for i in range(0, xf.shape[0], 2000):
        xb = xf[i:i + 2000]
        total += float(((recon(xb).reshape(xb.shape[0], -1) - xb) ** 2).sum())
    return total / xf.shape[0]


def sequential() -> nn.Sequential:
    """The tutorial network: (B, 784) -> (B, 784), sigmoid output as in the tutorials users copy."""
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 32),
                         nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784),
                         nn.Sigmoid())


def weight_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def build_aekit(seed: int):
    return aekit.build("ae", input_shape=(1, 28, 28), hidden=[512, 256], latent_dim=32, seed=seed)


def build_aekit_cli(seed: int, ds):
    """The model `aekit train ae --hidden 512,256 --latent-dim 32 --data mnist` builds: the data-aware defaults
    (aekit.training.data_defaults) resolved on the same data, e.g. a bounded mean for pixels in [0, 1]."""
    from aekit.training.data_defaults import choose_defaults

    given = {"hidden": [512, 256], "latent_dim": 32}
    chosen = choose_defaults(ds, variant="ae", model=given, standardize=None)
    return aekit.build("ae", input_shape=(1, 28, 28), seed=seed, **{**chosen.model, **given})


def aekit_recon(model):
    def recon(xf):
        model.eval()
        try:
            return model.reconstruct(xf.view(-1, 1, 28, 28))
        finally:
            model.train()
    return recon


# ----------------------------------------------------------------------------- PROTOTYPE
class PrototypeTrainer(Trainer):
    """PROTOTYPE of proposed changes to src/aekit/train.py -- NOT part of aekit.

    1. Adam betas (0.9, 0.99) (a proposed TrainConfig field `betas`, default (0.9, 0.99)).
    2. Fast path for the plain Gaussian AE (deterministic bottleneck, no corruption, no
       regularizers, fixed sigma): loss = 0.5 * exp(-2 log sigma) * F.mse_loss(x_hat, x,
       reduction="sum") / B (+ the constant D log sigma + D/2 log 2 pi, added to the logged
       value only): one fused kernel forward and one backward instead of sub/pow/sum/exp/mul/
       add/mean, and no AEOutput bookkeeping. Same gradients as Autoencoder.forward.
    3. ReLU modules switched to in-place (a proposed `inplace=True` in the MLP backbone).
    4. The finiteness check once per epoch on the accumulated loss (no per-step sync); the
       running sums accumulate in place.
    Everything else (batches, shuffling generator, schedule, checkpoints) is the parent's.
    """

    def __init__(self, model, config=None, **kw):
        super().__init__(model, config, **kw)
        for group in self.optimizer.param_groups:
            group["betas"] = PROTO_BETAS
        for m in model.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = True
        lik = getattr(model, "likelihood", None)
        self._fast = (getattr(lik, "name", None) == "gaussian" and not getattr(lik, "learn_sigma", True)
                      and getattr(model.bottleneck, "kind", None) == "deterministic"
                      and model.corruption.kind == "none" and len(model.regularizers) == 0
                      and not getattr(model, "uses_skips", False))
        if self._fast:
            log_sigma = float(lik.log_sigma)
            d = math.prod(model.input_shape)
            self._scale = 0.5 * math.exp(-2.0 * log_sigma)
            self._const = d * log_sigma + 0.5 * d * math.log(2 * math.pi)

    def _train_epoch(self, batches, steps_per_epoch: int) -> dict:
        if not self._fast:
            return super()._train_epoch(batches, steps_per_epoch)
        model, opt, sched = self.model, self.optimizer, self.scheduler
        enc, bott, dec = model.encoder, model.bottleneck, model.decoder
        model.train()
        total = torch.zeros(())
        count = 0
        clip = self.cfg.grad_clip
        for xb in batches:
            n = xb.shape[0]
            h, skips = enc(xb)
            x_hat = dec(bott(h).z, skips)
            loss = F.mse_loss(x_hat, xb, reduction="sum") * (self._scale / n)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
            opt.step()
            if sched is not None:
                sched.step()
            self.step += 1
            count += n
            total.add_(loss.detach(), alpha=n)
        mean = float(total) / max(count, 1)
        if not math.isfinite(mean):
            raise TrainingError(f"the loss became {mean} during epoch {self.epoch + 1}. Try a lower --lr or --grad-clip.")
        return {"train_loss": mean + self._const, "train_nll": mean + self._const}


# ----------------------------------------------------------------------------- contenders
class Stop(Exception):
    pass


class Turn:
    """Round-robin hand-off between the coordinator and one contender thread."""

    def __init__(self, name: str):
        self.name = name
        self.go = threading.Event()
        self.done = threading.Event()
        self.finished = False
        self.stop = False

    def epoch_end(self) -> None:  # called by the contender thread after each epoch
        self.done.set()
        self.go.wait()
        self.go.clear()
        if self.stop:
            raise Stop()


def pythae_modules():
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Enc(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 32))

        def forward(self, x):
            return ModelOutput(embedding=self.net(x.reshape(x.shape[0], -1)))

    class Dec(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.net = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784),
                                     nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(z.shape[0], 1, 28, 28))

    return Enc, Dec


def make_pythae(x: torch.Tensor, epochs: int, seed: int, out_dir: str, callbacks=None):
    from pythae.data.datasets import BaseDataset
    from pythae.models import AE, AEConfig
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    Enc, Dec = pythae_modules()
    torch.manual_seed(seed)
    model = AE(AEConfig(input_dim=(1, 28, 28), latent_dim=32), encoder=Enc(), decoder=Dec())
    cfg = BaseTrainerConfig(output_dir=out_dir, num_epochs=epochs, learning_rate=1e-3,
                            per_device_train_batch_size=128, per_device_eval_batch_size=128,
                            optimizer_cls="Adam", seed=seed, no_cuda=True)
    trainer = BaseTrainer(model=model, train_dataset=BaseDataset(x, torch.zeros(x.shape[0])),
                          training_config=cfg, callbacks=callbacks)
    return model, trainer


def pythae_status() -> dict:
    try:
        import logging
        from importlib.metadata import version

        import pythae  # noqa: F401
        from pythae.trainers import BaseTrainer  # noqa: F401
        from pythae.trainers import training_callbacks  # noqa: F401
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("pythae"):
                logging.getLogger(name).setLevel(logging.WARNING)  # keep the log readable
        return {"ok": True, "version": version("pythae")}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def run_tutorial(x_train, epochs, seed, turn, log, flush: bool = False):
    if flush:  # tutorial-ftz: the same loop with subnormals flushed on every thread of this contender's team
        from aekit.training.denormals import flushed_denormals

        with flushed_denormals():
            return run_tutorial(x_train, epochs, seed, turn, log)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = sequential()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = nn.MSELoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train.reshape(-1, 784)),
                                         batch_size=128, shuffle=True, generator=g)
    log["model"] = model
    log["recon"] = lambda xf: model(xf)
    for _ in range(epochs):
        t = time.perf_counter()
        for (xb,) in loader:
            loss = crit(model(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        log["epoch_times"].append(time.perf_counter() - t)
        log["samples"].append(x_train.shape[0])
        turn.epoch_end()


def run_aekit(x_train, epochs, seed, turn, log, cfg_kw, trainer_cls=Trainer, model=None):
    model = build_aekit(seed) if model is None else model
    log["model"] = model
    log["recon"] = aekit_recon(model)
    last = [0.0]

    def cb(record, trainer):
        log["epoch_times"].append(trainer.elapsed - last[0])
        last[0] = trainer.elapsed
        log["samples"].append(x_train.shape[0])
        turn.epoch_end()

    cfg = TrainConfig(epochs=epochs, seed=seed, progress=False, **cfg_kw)
    log["config"] = {k: getattr(cfg, k) for k in ("epochs", "batch_size", "lr", "optimizer", "schedule", "warmup_steps")}
    trainer_cls(model, cfg, callbacks=[cb]).fit(x_train, None)


def run_pythae(x_train, epochs, seed, turn, log, out_dir):
    from pythae.trainers.training_callbacks import TrainingCallback

    state = {}

    class CB(TrainingCallback):
        def on_epoch_begin(self, training_config, **kw):
            state["t0"] = time.perf_counter()

        def on_epoch_end(self, training_config, **kw):
            log["epoch_times"].append(time.perf_counter() - state["t0"])
            log["samples"].append(x_train.shape[0])
            turn.epoch_end()

    model, trainer = make_pythae(x_train, epochs, seed, out_dir, callbacks=[CB()])

    def recon(xf):
        model.eval()
        try:
            return model.decoder(model.encoder(xf.view(-1, 1, 28, 28)).embedding).reconstruction
        finally:
            model.train()

    log["model"] = model
    log["recon"] = recon
    trainer.train()


# ----------------------------------------------------------------------------- throughput rounds
def burst_makers(x_train, steps: int, seed: int):
    """name -> (setup() -> run() -> (samples, seconds)); each run is `steps` batches of 128 (or the named batch)."""
    makers = {}
    n128 = min(steps * 128, x_train.shape[0])

    def tutorial():
        torch.manual_seed(seed)
        m = sequential()
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        crit = nn.MSELoss()
        dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train[:n128].reshape(-1, 784)),
                                         batch_size=128, shuffle=True)

        def run():
            t = time.perf_counter()
            for (xb,) in dl:
                loss = crit(m(xb), xb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            return n128, time.perf_counter() - t
        return run
    makers["tutorial"] = tutorial

    def aekit_maker(batch, cfg_kw, cls=Trainer, build=None):
        n = min(steps * batch, x_train.shape[0])

        def setup():
            tr = cls((build or build_aekit)(seed), TrainConfig(epochs=1, batch_size=batch, seed=seed, progress=False, **cfg_kw))
            xs = x_train[:n]

            def run():
                tr.cfg.epochs = tr.epoch + 1
                before = tr.elapsed
                tr.fit(xs, None)
                return n, tr.elapsed - before
            return run
        return setup
    makers["aekit-default"] = aekit_maker(128, {})
    makers["aekit-cli"] = aekit_maker(128, {}, build=lambda s: build_aekit_cli(s, DATASET))
    makers["aekit-tuned"] = aekit_maker(128, TUNED)
    makers["aekit-prototype"] = aekit_maker(128, TUNED, PrototypeTrainer)
    makers["aekit b512"] = aekit_maker(512, {**TUNED, "lr": 8e-3})

    def pythae_maker():
        import tempfile
        model, trainer = make_pythae(x_train[:n128], 1, seed, tempfile.mkdtemp(prefix="pythae_bench_"))
        trainer.prepare_training()

        def run():
            t = time.perf_counter()
            trainer.train_step(1)
            return n128, time.perf_counter() - t
        return run
    makers["pythae"] = pythae_maker
    return makers


def throughput_rounds(x_train, peak: Peak, names, rounds: int, steps: int, seed: int, thread_compare: bool):
    makers = burst_makers(x_train, steps, seed)
    runs, errors = {}, {}
    for name in names:
        try:
            runs[name] = makers[name]()
            runs[name]()  # warm-up burst
        except Exception as exc:  # noqa: BLE001
            errors[name] = f"{type(exc).__name__}: {exc}"
    pairs = [(n, ARGS.threads) for n in runs]
    if thread_compare:
        other = 2 if ARGS.threads == 1 else 1
        pairs += [(n, other) for n in ("aekit-tuned", "aekit-prototype") if n in runs]
    rec = {f"{n}@{t}": [] for n, t in pairs}
    peaks = {t: [] for _, t in pairs}
    for r in range(rounds):
        for name, t in pairs:
            set_threads(t)
            p = peak()
            samples, secs = runs[name]()
            q = peak()
            peaks[t] += [p, q]
            rec[f"{name}@{t}"].append({"samples_per_s": samples / secs, "peak_gflops": (p + q) / 2})
    set_threads(ARGS.threads)
    out = {}
    for key, xs in rec.items():
        sps = statistics.median(x["samples_per_s"] for x in xs)
        fr = statistics.median(x["samples_per_s"] * FLOPS / 1e9 / x["peak_gflops"] for x in xs)
        out[key] = {"samples_per_s": sps, "frac_peak": fr, "repeats": xs}
    return out, errors, {t: statistics.median(v) for t, v in peaks.items()}


# ----------------------------------------------------------------------------- profile
def profile_step(x_train, steps: int, seed: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    cats = {"matmul (mm/addmm)": ("aten::mm", "aten::addmm", "aten::bmm"),
            "optimizer (fused Adam)": ("aten::_fused_adam_", "aten::_foreach_", "aten::lerp", "aten::addcmul", "aten::addcdiv"),
            "loss + elementwise": ("aten::sub", "aten::pow", "aten::mul", "aten::add", "aten::exp", "aten::mean",
                                   "aten::mse_loss", "aten::mse_loss_backward", "aten::div", "aten::neg", "aten::sum",
                                   "aten::isfinite", "aten::ne", "aten::abs", "aten::eq", "aten::fill_", "aten::zero_",
                                   "aten::copy_", "aten::_to_copy", "aten::_local_scalar_dense"),
            "relu fwd/bwd": ("aten::relu", "aten::clamp_min", "aten::threshold_backward", "aten::relu_", "aten::clamp_min_"),
            "batch gather + shuffle": ("aten::index_select", "aten::randperm")}
    out = {}
    for name, cls, kw in (("aekit-default", Trainer, {}), ("aekit-prototype", PrototypeTrainer, TUNED)):
        tr = cls(build_aekit(seed), TrainConfig(epochs=1, batch_size=128, seed=seed, progress=False, **kw))
        xs = x_train[:steps * 128]
        tr.fit(xs[:256], None)  # warm up
        perm_x = xs.contiguous()
        tr.cfg.epochs = tr.epoch + 1

        def batches():
            return tr._batches(perm_x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            tr._train_epoch(batches(), steps)
            wall = time.perf_counter() - t
        totals = {c: 0.0 for c in cats}
        top = []
        seen = 0.0
        for ev in prof.key_averages():
            us = ev.self_cpu_time_total
            seen += us
            for c, keys in cats.items():
                if ev.key in keys or any(ev.key.startswith(k) for k in keys if k.endswith("_")):
                    totals[c] += us
                    break
            top.append((us, ev.key, ev.count))
        top.sort(reverse=True)
        wall_us = wall * 1e6
        rows = {c: round(100 * v / wall_us, 1) for c, v in totals.items()}
        rows["other ops + Python/dispatch"] = round(100 - sum(rows.values()), 1)
        out[name] = {"steps": steps, "wall_ms_per_step": round(wall * 1e3 / steps, 3), "percent_of_wall": rows,
                     "top_ops": [{"op": k, "self_ms_per_step": round(us / 1e3 / steps, 3), "calls_per_step": round(n / steps, 1)}
                                 for us, k, n in top[:12]]}
    return out


# ----------------------------------------------------------------------------- main
def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main() -> int:
    args = ARGS
    set_threads(args.threads)
    data_dir = args.data_dir or os.environ.get("AEKIT_MNIST_DIR") or str(ROOT.parent / "shared" / "data" / "mnist")
    out_path = Path(args.out) if args.out else results_path("train_throughput", quick=Q)
    if Q and is_published(out_path):
        print(f"error: --out {out_path}: a --quick smoke run never writes a published results file", file=sys.stderr)
        return 2
    t_start = time.time()
    x_train, x_test = load(data_dir)
    assert weight_count(sequential()) == WEIGHTS == weight_count(build_aekit(0)), "network mismatch"
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    py = pythae_status()
    if "pythae" in names and not py["ok"]:
        print(f"pythae: not importable here ({py['error']}); recorded as such", file=sys.stderr)
    peak = Peak(batch=256 if Q else 2048, passes=1)
    peak_b128 = Peak(batch=128, passes=1 if Q else 3)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), peak probe "
          f"{peak():.1f} GFLOP/s (batch {peak.batch}), {peak_b128():.1f} at batch 128", file=sys.stderr)

    # ---- 1. interleaved throughput rounds
    # bursts start from a fresh model, before any subnormal appears: no tutorial-ftz burst (it is the tutorial's)
    burst_names = [n for n in names if (n != "pythae" or py["ok"]) and n != "tutorial-ftz"] + ([] if Q else ["aekit b512"])
    bursts, burst_err, burst_peaks = throughput_rounds(
        x_train, peak, burst_names, rounds=1 if Q else args.rounds, steps=4 if Q else 60, seed=args.seed,
        thread_compare=not args.no_thread_compare and not Q)
    print("# throughput rounds done", file=sys.stderr)

    # ---- 2. round-robin convergence runs
    chase = set(names) if args.chase == "all" else {c.strip() for c in args.chase.split(",") if c.strip()}
    plans = {}
    for name in names:
        if name == "pythae" and not py["ok"]:
            continue
        if name == "aekit-tuned":
            ep = 1 if Q else args.tuned_epochs
        elif name == "aekit-prototype":
            ep = 1 if Q else args.proto_epochs
        else:
            ep = 1 if Q else (max(args.epochs, args.tutorial_max_epochs) if name in chase else args.epochs)
        plans[name] = ep
    logs, turns, threads = {}, {}, {}
    import tempfile
    tmp = tempfile.mkdtemp(prefix="aekit_bench_")

    def target(name):
        set_threads(args.threads)
        log, turn = logs[name], turns[name]
        try:
            turn.go.wait()
            turn.go.clear()
            if name == "tutorial":
                run_tutorial(x_train, plans[name], args.seed, turn, log)
            elif name == "tutorial-ftz":
                run_tutorial(x_train, plans[name], args.seed, turn, log, flush=True)
            elif name == "pythae":
                run_pythae(x_train, plans[name], args.seed, turn, log, tmp)
            elif name == "aekit-default":
                run_aekit(x_train, plans[name], args.seed, turn, log, {})
            elif name == "aekit-cli":
                run_aekit(x_train, plans[name], args.seed, turn, log, {}, model=build_aekit_cli(args.seed, DATASET))
            elif name == "aekit-tuned":
                run_aekit(x_train, plans[name], args.seed, turn, log, TUNED)
            elif name == "aekit-prototype":
                run_aekit(x_train, plans[name], args.seed, turn, log, TUNED, PrototypeTrainer)
            else:
                raise ValueError(f"unknown contender {name!r}")
        except Stop:
            pass
        except Exception as exc:  # noqa: BLE001
            log["error"] = f"{type(exc).__name__}: {exc}"
            log["traceback"] = traceback.format_exc()
        finally:
            turn.finished = True
            turn.done.set()

    for name in plans:
        logs[name] = {"epoch_times": [], "samples": [], "test_se": [], "peaks": [], "eval_s": []}
        turns[name] = Turn(name)
        threads[name] = threading.Thread(target=target, args=(name,), daemon=True)
        threads[name].start()
    active = list(plans)
    while active:
        for name in list(active):
            turn, log = turns[name], logs[name]
            p0 = peak()
            turn.done.clear()
            turn.go.set()
            turn.done.wait()
            if turn.finished:
                active.remove(name)
                continue
            p1 = peak()
            log["peaks"].append((p0 + p1) / 2)
            t = time.perf_counter()
            se = test_sq_error(log["recon"], x_test)
            log["eval_s"].append(time.perf_counter() - t)
            log["test_se"].append(se)
            ep = len(log["test_se"])
            print(f"# {name:16s} epoch {ep:3d}  train {log['epoch_times'][-1]:7.2f} s  test SE {se:7.3f}  "
                  f"peak {log['peaks'][-1]:5.1f} GF/s", file=sys.stderr, flush=True)
            chasing = name in chase and ep >= args.epochs and plans[name] > args.epochs
            if chasing and se <= args.target:
                turn.stop = True  # reached the target: no need to train further
        # (the loop gives each live contender one epoch per round)
    for th in threads.values():
        th.join(timeout=60)
    print("# convergence runs done", file=sys.stderr)

    # ---- 3. profile
    prof = {} if args.no_profile else profile_step(x_train, 6 if Q else 60, args.seed)

    # ---- rows
    all_peaks = [p for lg in logs.values() for p in lg["peaks"]] or peak.probes
    peak_ref = statistics.median(all_peaks)
    rows = []
    for name in names:
        row = {"contender": name}
        if name == "pythae" and not py["ok"]:
            row["status"] = f"not importable: {py['error']}"
            rows.append(row)
            continue
        lg = logs.get(name, {})
        b = bursts.get(f"{name}@{args.threads}")
        if b:
            row["burst_samples_per_s"] = round(b["samples_per_s"], 1)
            row["burst_frac_peak"] = round(b["frac_peak"], 4)
        if name in burst_err:
            row["burst_error"] = burst_err[name]
        if lg.get("error"):
            row["status"] = "error: " + lg["error"]
            row["traceback"] = lg.get("traceback")
        times, samples, ses, peaks = lg.get("epoch_times", []), lg.get("samples", []), lg.get("test_se", []), lg.get("peaks", [])
        k = len(ses)
        times, samples, peaks = times[:k], samples[:k], peaks[:k]
        if k:
            tot = sum(times)
            row["epochs"] = k
            row["train_s"] = round(tot, 2)
            row["samples_per_s"] = round(sum(samples) / tot, 1)
            row["frac_peak"] = round(sum(samples) * FLOPS / 1e9 / sum(t * p for t, p in zip(times, peaks)), 4)
            row["frac_peak_nominal_6x"] = round(row["frac_peak"] * NOMINAL_FLOPS / FLOPS, 4)
            row["frac_peak_vs_run_median"] = round(sum(samples) / tot * FLOPS / 1e9 / peak_ref, 4)
            fixed = min(k, args.epochs) if name in ("tutorial", "tutorial-ftz", "pythae", "aekit-default", "aekit-cli") else k
            row["test_se_at_budget"] = round(ses[fixed - 1], 4)
            row["budget_epochs"] = fixed
            row["test_se_final"] = round(ses[-1], 4)
            row["test_se_curve"] = [round(s, 4) for s in ses]
            row["epoch_times_s"] = [round(t, 3) for t in times]
            row["epoch_peaks_gflops"] = [round(p, 2) for p in peaks]
            hit = next((i for i, s in enumerate(ses) if s <= args.target), None)
            row["epochs_to_target"] = None if hit is None else hit + 1
            row["time_to_target_s"] = None if hit is None else round(sum(times[:hit + 1]), 2)
            row["time_to_target_norm_s"] = None if hit is None else round(
                sum(t * p / peak_ref for t, p in zip(times[:hit + 1], peaks[:hit + 1])), 2)
            row["time_all_epochs_norm_s"] = round(sum(t * p / peak_ref for t, p in zip(times, peaks)), 2)
            if "config" in lg:
                row["config"] = lg["config"]
        rows.append(row)
    tut = next((r for r in rows if r["contender"] == "tutorial"), None)
    for r in rows:
        if tut and tut.get("time_to_target_s") and r.get("time_to_target_s"):
            r["time_to_target_vs_tutorial"] = round(r["time_to_target_s"] / tut["time_to_target_s"], 4)
            r["time_to_target_vs_tutorial_norm"] = round(r["time_to_target_norm_s"] / tut["time_to_target_norm_s"], 4)
        elif tut and tut.get("epochs") and not tut.get("time_to_target_s") and r.get("time_to_target_s"):
            # the tutorial did not reach the target: its whole run is a lower bound -> ratio is an upper bound
            r["time_to_target_vs_tutorial_upper_bound"] = round(r["time_to_target_s"] / tut["train_s"], 4)

    # ---- table
    lines = [f"MNIST MLP AE 784-512-256-32 (mirrored), {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
             f"matmul peak (median of {len(all_peaks)} probes, torch.mm on this network's GEMMs at batch {peak.batch}) "
             f"{peak_ref:.1f} GFLOP/s; FLOPs/sample as executed = {FLOPS / 1e6:.2f} M (6 x {WEIGHTS:,} weights less the "
             f"first layer's input gradient); target test SE {args.target}"
             + ("  [QUICK SMOKE RUN: numbers meaningless]" if Q else ""), "",
             "| contender | settings | samples/s | % of matmul peak | samples/s (bursts) | % peak (bursts) | "
             f"test SE @ epochs | epochs to {args.target} | time to {args.target} (s) | norm. (s) | vs tutorial |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    settings = {"tutorial": "DataLoader, b128, Adam 1e-3, MSELoss, sigmoid output",
                "tutorial-ftz": "the tutorial loop with subnormals flushed to zero (not what users write)",
                "pythae": "BaseTrainer, b128, Adam 1e-3, sigmoid output",
                "aekit-default": f"TrainConfig(epochs={args.epochs}) defaults: b128, Adam lr 4e-3 betas (0.9, 0.99), warmup 200, cosine",
                "aekit-cli": f"what `aekit train ae --hidden 512,256 --latent-dim 32` builds (data-aware defaults: "
                             f"bernoulli mean for [0, 1] pixels), TrainConfig(epochs={args.epochs}) defaults",
                "aekit-tuned": f"b128, lr 4e-3, cosine, warmup 200, {plans.get('aekit-tuned', args.tuned_epochs)} ep",
                "aekit-prototype": f"PROTOTYPE: tuned + betas (0.9,0.99) + fast step, {plans.get('aekit-prototype', args.proto_epochs)} ep"}
    for r in rows:
        if "status" in r and "epochs" not in r:
            lines.append(f"| {r['contender']} | {settings.get(r['contender'], '')} | {r['status']} | | | | | | | | |")
            continue
        hit_ep = r.get("epochs_to_target")
        if hit_ep is None and r.get("epochs"):
            ttt = f"not reached in {r['epochs']} ep (>{r['train_s']:.0f})"
        else:
            ttt = fmt(r.get("time_to_target_s"), ".1f")
        vs = r.get("time_to_target_vs_tutorial")
        vs_s = (f"{vs:.2f} (norm. {r['time_to_target_vs_tutorial_norm']:.2f})" if vs is not None else
                (f"<= {r['time_to_target_vs_tutorial_upper_bound']:.2f}" if r.get("time_to_target_vs_tutorial_upper_bound") else "-"))
        se = f"{r['test_se_at_budget']:.3f} @ {r['budget_epochs']}" if r.get("budget_epochs") else "-"
        if r.get("epochs", 0) > r.get("budget_epochs", 0):
            se += f"; {r['test_se_final']:.3f} @ {r['epochs']}"
        lines.append(f"| {r['contender']} | {settings.get(r['contender'], '')} | {fmt(r.get('samples_per_s'), '.0f')} | "
                     f"{fmt(100 * r['frac_peak'] if r.get('frac_peak') else None, '.1f')} | "
                     f"{fmt(r.get('burst_samples_per_s'), '.0f')} | "
                     f"{fmt(100 * r['burst_frac_peak'] if r.get('burst_frac_peak') else None, '.1f')} | {se} | "
                     f"{fmt(hit_ep, 'd')} | {ttt} | {fmt(r.get('time_to_target_norm_s'), '.1f')} | {vs_s} |")
    extra = [k for k in bursts if not k.startswith(tuple(f"{n}@{args.threads}" for n in names))]
    if extra:
        lines += ["", "Other throughput bursts (interleaved with the above):", "",
                  "| burst | samples/s | % of matmul peak (same threads) |", "|---|---|---|"]
        for k in extra:
            lines.append(f"| {k} thread(s) | {bursts[k]['samples_per_s']:.0f} | {100 * bursts[k]['frac_peak']:.1f} |")
        lines.append("")
        lines.append("Median matmul peak per thread count during the bursts: "
                     + ", ".join(f"{t} thread(s): {v:.1f} GFLOP/s" for t, v in burst_peaks.items()))
    if prof:
        lines += ["", "Profile of one aekit step (batch 128; % of wall time, torch.profiler self CPU time):", "",
                  "| category | " + " | ".join(prof) + " |", "|---|" + "---|" * len(prof)]
        for c in next(iter(prof.values()))["percent_of_wall"]:
            lines.append(f"| {c} | " + " | ".join(f"{p['percent_of_wall'][c]:.1f}" for p in prof.values()) + " |")
        lines.append("| ms per step | " + " | ".join(f"{p['wall_ms_per_step']:.2f}" for p in prof.values()) + " |")
    table = "\n".join(lines)
    print(table)

    info = {
        "benchmark": "train_throughput",
        "command": " ".join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": round(time.time() - t_start, 1),
        "quick": Q,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "cpu": _cpu_name(), "loadavg_end": os.getloadavg()},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "pythae": py,
        "network": {"dims": DIMS, "weights": WEIGHTS, "flops_per_sample": FLOPS, "flops_counted": "executed",
                    "nominal_6x_flops_per_sample": NOMINAL_FLOPS, "tutorial_pythae_output": "sigmoid",
                    "aekit_output": "linear (Gaussian AE)"},
        "target_test_se": args.target, "epochs_budget": args.epochs, "plans_epochs": plans,
        "tuned_settings": TUNED, "prototype": {"settings": TUNED, "betas": PROTO_BETAS, "doc": PrototypeTrainer.__doc__},
        "matmul_peak": {"batch": peak.batch, "threads": args.threads, "median_gflops": peak_ref,
                        "max_gflops": max(all_peaks), "min_gflops": min(all_peaks), "probes": len(all_peaks),
                        "note": "probes around the convergence-run epochs (each the mean of the probes before and after)",
                        "batch128_mix_gflops": peak_b128.probes},
        "throughput_bursts": {k: {kk: vv for kk, vv in v.items()} for k, v in bursts.items()},
        "burst_errors": burst_err, "burst_peaks_by_threads": burst_peaks,
        "rows": rows, "profile": prof, "table": table,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(info, indent=1, default=str) + "\n")
    print(f"\nwrote {out_path}", file=sys.stderr)
    return 0


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
