"""Mixed precision: `precision="32" | "bf16-mixed" | "16-mixed"`, checked against the device.

    from aekit.training.precision import make_precision
    prec = make_precision("bf16-mixed", torch.device("cuda"))
    with prec.autocast():
        out = model(xb)                  # matmuls and convolutions in bfloat16, reductions in float32
    prec.backward(out.loss)              # fp16: the loss is scaled first (a GradScaler)
    prec.unscale_(opt)                   # before clipping gradients (fp16 only; else nothing)
    prec.step(opt)                       # fp16: skipped when a gradient is inf/NaN, then the scale is updated

The weights, the optimizer state and the loss stay float32 ("mixed" precision, Micikevicius et
al. 2018, "Mixed Precision Training", ICLR): only the operations torch.autocast lists run in the
low-precision type. float16 has 5 exponent bits, so small gradients underflow; a dynamic loss
scale (GradScaler) multiplies the loss before backward and divides the gradients after. bfloat16
keeps float32's 8 exponent bits and needs no scaling (Kalamkar et al. 2019, "A Study of BFLOAT16
for Deep Learning Training", arXiv:1905.12322).

Where each choice is allowed:

    precision     cuda                               cpu
    "32"          yes                                yes
    "bf16-mixed"  torch.cuda.is_bf16_supported()     only with AMX (native bf16 tile matmul)
    "16-mixed"    yes (with a GradScaler)            no

On a CPU without AMX, bfloat16 autocast is slower than float32, never faster. Measured on one
Xeon with AMX (benchmarks/precision_cpu.py: one thread, a 784-512-256-32 MLP autoencoder,
forward+backward at batch 128, best of 5x20 steps, two runs), with oneDNN limited by
ONEDNN_MAX_CPU_ISA to what older CPUs have: AVX2 only 19-21x slower, AVX512 3.9-4.2x,
AVX512_BF16 without AMX 1.6-1.7x; with AMX 0.71-0.79x the float32 time. So bf16-mixed is
refused on a CPU without AMX rather than run silently slower.

A resumed run restores the loss scale and its growth counter (`state_dict` / `load_state_dict`),
so the steps after a resume scale, skip and grow exactly as an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from ..errors import CheckpointError, ConfigError, check_choice

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
_DTYPES = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
# measured with benchmarks/precision_cpu.py (see the module docstring)
CPU_BF16_SLOWDOWN = "20x slower than float32 with AVX2 only, 4x with AVX512, 1.7x with AVX512_BF16 but no AMX"


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 matrices in hardware tiles (Intel AMX), the one case measured faster.

    Uses torch.cpu's own checks (cpuinfo-based) and asks the kernel for the AMX tile state
    (torch.cpu._init_amx); where torch lacks them, reads the `amx_bf16` flag of /proc/cpuinfo.
    ONEDNN_MAX_CPU_ISA set to an instruction set without AMX keeps oneDNN off it: False then."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa and isa != "ALL" and "AMX" not in isa:
        return False
    tile = getattr(torch.cpu, "_is_amx_tile_supported", None)
    init = getattr(torch.cpu, "_init_amx", None)
    if tile is not None and init is not None:
        try:
            return bool(tile()) and bool(init())
        except Exception:  # a private torch function that changed: fall back to the flags
            pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


@dataclass
class Precision:
    """One run's precision: the autocast context, the GradScaler (16-mixed only) and its state.

    name: one of PRECISIONS; device_type: 'cpu' | 'cuda' | ...; scaler: a torch.amp.GradScaler or None."""

    name: str
    device_type: str
    scaler: "torch.amp.GradScaler | None" = None

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast type (torch.bfloat16 / torch.float16), None for "32"."""
        return _DTYPES[self.name]

    def autocast(self):
        """A context manager for the forward pass (and the loss): torch.autocast, or nothing for "32"."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward(), on the scaled loss when there is a GradScaler."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the loss scale in place (call before clipping them); nothing without a scaler."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """optimizer.step(); with a scaler, skipped when a gradient is inf/NaN, then the scale is updated.

        Returns False when the step was skipped (the loss scale was too large), else True."""
        if self.scaler is None:
            optimizer.step()
            return True
        before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        return not self.scaler.get_scale() < before  # update() lowers the scale exactly when it skipped the step

    def fresh(self) -> "Precision":
        """A Precision of the same kind with its own GradScaler (same settings, initial scale): another optimizer
        group's. Each group steps on its own loss, so each keeps its own loss scale: an overflow in one group's
        gradients lowers that group's scale only. Without a scaler, an equal Precision (nothing to share)."""
        if self.scaler is None:
            return Precision(name=self.name, device_type=self.device_type)
        s = self.scaler
        scaler = torch.amp.GradScaler(getattr(s, "_device", self.device_type), init_scale=s._init_scale,
                                      growth_factor=s._growth_factor, backoff_factor=s._backoff_factor,
                                      growth_interval=s._growth_interval, enabled=s.is_enabled())
        return Precision(name=self.name, device_type=self.device_type, scaler=scaler)

    def state_dict(self) -> dict:
        """JSON-able state: {"precision": name, "scaler": GradScaler.state_dict() or None}."""
        state = dict(self.scaler.state_dict()) if self.scaler is not None else None  # python floats and ints
        return {"precision": self.name, "scaler": state or None}

    def load_state_dict(self, state: dict, *, source="checkpoint") -> None:
        """Restore what state_dict() returned; a checkpoint of another precision is refused (CheckpointError)."""
        if not isinstance(state, dict) or state.get("precision") not in PRECISIONS:
            raise CheckpointError(f"{str(source)!r} has no valid precision state; got {state!r:.80}.")
        if state["precision"] != self.name:
            raise CheckpointError(f"{str(source)!r} was trained with precision={state['precision']!r}; resume it with "
                                  f"that precision, not {self.name!r} (the loss scale and numerics would differ).")
        saved = state.get("scaler")
        if self.scaler is not None and saved:
            if not isinstance(saved, dict) or not {"scale", "_growth_tracker"} <= set(saved):
                raise CheckpointError(f"{str(source)!r} has a malformed GradScaler state: {saved!r:.80}.")
            self.scaler.load_state_dict(dict(saved))


def make_precision(precision: str, device: torch.device | str) -> Precision:
    """Check `precision` against `device` and return its Precision; an impossible choice is a one-line ConfigError."""
    check_choice("precision", precision, PRECISIONS)
    device = torch.device(device)
    kind = device.type
    if precision == "32":
        return Precision(name=precision, device_type=kind)
    if kind == "cuda":
        if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
            name = torch.cuda.get_device_name(device)
            raise ConfigError(f"precision='bf16-mixed' needs a GPU with bfloat16 support (compute capability 8.0+); "
                              f"{name!r} has none: use precision='16-mixed' or '32'.")
        scaler = torch.amp.GradScaler("cuda") if precision == "16-mixed" else None
        return Precision(name=precision, device_type=kind, scaler=scaler)
    if kind == "cpu":
        if precision == "16-mixed":
            raise ConfigError("precision='16-mixed' is for CUDA GPUs; on the CPU use precision='32' "
                              "(or 'bf16-mixed' on a CPU with AMX).")
        if not cpu_has_native_bf16():
            raise ConfigError(f"precision='bf16-mixed' on this CPU would be slower than '32': it has no AMX bfloat16 "
                              f"matrix unit (measured: {CPU_BF16_SLOWDOWN}); use precision='32'.")
        return Precision(name=precision, device_type=kind)
    raise ConfigError(f"precision={precision!r} is supported on 'cuda' and 'cpu' devices; got device {str(device)!r}: "
                      f"use precision='32'.")
