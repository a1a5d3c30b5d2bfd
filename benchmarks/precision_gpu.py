"""GPU: speedup of bf16-mixed (and 16-mixed) over fp32, and the fraction of the matmul peak reached.

    python benchmarks/precision_gpu.py              # on a CUDA machine: one table, ~2-3 minutes
    python benchmarks/precision_gpu.py --smoke      # anywhere: tiny sizes, fp32 only on a CPU (checks the script)

Models (aekit.build): a conv autoencoder ("conv", 3x64x64, channels 64,128,256, latent 256) and a large
MLP autoencoder ("ae", 784-4096-4096-1024-256 mirrored). One training step = forward (under
Precision.autocast), backward, Adam step, through aekit.training.precision (GradScaler for 16-mixed).
FLOPs of one step: counted by torch.utils.flop_counter.FlopCounterMode (matmuls and convolutions,
forward and backward). Peak: the best of torch.mm on 8192x8192 matrices in the same dtype. Reported:
ms/step (median of 5 timed windows of 20 steps after 10 warm-up steps, CUDA-synchronised),
samples/s, speedup over fp32, TFLOP/s and its fraction of the measured mm peak of that dtype.
Not yet run on a GPU (none was available when it was written).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import aekit
from aekit.errors import ConfigError
from aekit.training.precision import make_precision

DTYPES = {"32": torch.float32, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mm_peak(device, dtype, n):
    """FLOP/s of torch.mm on n x n matrices in dtype (TF32 off for float32: the fp32 peak proper)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps, best = 10, float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * n ** 3 / best


def models(smoke):
    if smoke:
        return {"conv": (lambda: aekit.build("conv", input_shape=(1, 8, 8), channels=[2, 4], latent_dim=3), (1, 8, 8)),
                "mlp": (lambda: aekit.build("ae", input_shape=(16,), hidden=[8], latent_dim=2), (16,))}
    return {"conv": (lambda: aekit.build("conv", input_shape=(3, 64, 64), channels=[64, 128, 256], latent_dim=256),
                     (3, 64, 64)),
            "mlp": (lambda: aekit.build("ae", input_shape=(784,), hidden=[4096, 4096, 1024], latent_dim=256), (784,))}


def step_fn(model, prec, opt, x):
    def step():
        opt.zero_grad(set_to_none=True)
        with prec.autocast():
            out = model(x)
        prec.backward(out.loss)
        prec.step(opt)
    return step


def bench(name, build, shape, precision, batch, device, smoke):
    torch.manual_seed(0)
    prec = make_precision(precision, device)
    model = build().to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, *shape, device=device)  # (B, *shape) in [0, 1]
    step = step_fn(model, prec, opt, x)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(2 if smoke else 10):
        step()
    sync(device)
    n, windows = (2, 2) if smoke else (20, 5)
    times = []
    for _ in range(windows):
        t = time.perf_counter()
        for _ in range(n):
            step()
        sync(device)
        times.append((time.perf_counter() - t) / n)
    return statistics.median(times), flops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--batch", type=int, nargs=2, default=(512, 8192), metavar=("CONV", "MLP"))
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 is fp32 (Lightning's "32" does the same by default)
    torch.backends.cudnn.allow_tf32 = False
    batches = {"conv": 4 if args.smoke else args.batch[0], "mlp": 4 if args.smoke else args.batch[1]}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}")
    peaks = {}
    for precision, dtype in DTYPES.items():
        try:
            make_precision(precision, device)
        except ConfigError:
            continue
        peaks[precision] = mm_peak(device, dtype, 256 if args.smoke else 8192)
        print(f"mm peak {precision:10s} {peaks[precision] / 1e12:8.1f} TFLOP/s")
    print(f"{'model':5s} {'precision':10s} {'batch':>6s} {'ms/step':>9s} {'samples/s':>11s} {'speedup':>8s} "
          f"{'TFLOP/s':>8s} {'of peak':>8s}")
    for mname, (build, shape) in models(args.smoke).items():
        base = None
        for precision in peaks:
            sec, flops = bench(mname, build, shape, precision, batches[mname], device, args.smoke)
            base = base or sec
            print(f"{mname:5s} {precision:10s} {batches[mname]:6d} {sec * 1e3:9.2f} {batches[mname] / sec:11.0f} "
                  f"{base / sec:7.2f}x {flops / sec / 1e12:8.2f} {flops / sec / peaks[precision]:7.1%}")


if __name__ == "__main__":
    main()
