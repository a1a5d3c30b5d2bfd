"""CPU: float32 vs bfloat16 autocast for a 784-512-256-32 MLP autoencoder, forward+backward, batch 128, one thread.

    OMP_NUM_THREADS=1 python benchmarks/precision_cpu.py          # this CPU as it is, then oneDNN limited to
                                                                 # AVX512_BF16, AVX512 and AVX2 (ONEDNN_MAX_CPU_ISA)

Justifies aekit.training.precision refusing precision='bf16-mixed' on a CPU without AMX.
Prints one line per instruction-set limit: best-of-5 mean step time of fp32 and bf16 autocast, and their ratio.
"""

import os
import subprocess
import sys
import time

import torch
from torch import nn


def _model() -> nn.Module:
    enc = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 32))
    dec = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784))
    return nn.Sequential(enc, dec)


def _bench(model: nn.Module, x: torch.Tensor, bf16: bool, reps: int = 5, n: int = 20) -> float:
    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)  # (128, 784)
        nn.functional.binary_cross_entropy_with_logits(logits.float(), x).backward()

    for _ in range(3):
        step()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n):
            step()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def one() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, x = _model(), torch.rand(128, 784)
    fp32 = min(_bench(model, x, False), _bench(model, x, False))
    bf16 = _bench(model, x, True)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "native")
    print(f"{isa:18s} fp32 {fp32 * 1e3:7.2f} ms/step  bf16-autocast {bf16 * 1e3:7.2f} ms/step  ratio {bf16 / fp32:6.2f}x",
          flush=True)


if __name__ == "__main__":
    if "--one" in sys.argv:
        one()
    else:
        print(f"torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, 1 thread", flush=True)
        for isa in (None, "AVX512_CORE_BF16", "AVX512_CORE", "AVX2"):
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            if isa:
                env["ONEDNN_MAX_CPU_ISA"] = isa
            subprocess.run([sys.executable, __file__, "--one"], env=env, check=True)
