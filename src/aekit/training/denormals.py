"""Subnormal floats flushed to zero while training on the CPU, on every thread that computes.

Training drives some values into the subnormal range (|x| < 1.2e-38 in float32): the gradient of a
saturated sigmoid or Bernoulli logit on a background pixel (sigmoid(-90) ~ 1e-39), and Adam's second
moments of such gradients. x86 CPUs handle subnormals in microcode, tens of times slower than normal
floats, so an MNIST epoch slows by about half once the model has learned the background
(benchmarks/results/train_throughput_*.json; measured side by side: 3.0-3.4 s an epoch with the flush,
6.3 s without, the same test error curve to three decimals). Flush-to-zero / denormals-are-zero
(the MXCSR FTZ and DAZ bits, torch.set_flush_denormal) remove the cost; no value a model learns from
lives below 1e-38.

torch.set_flush_denormal sets the bits of the calling thread only, and OpenMP's worker threads keep
their own (a 2-thread matmul with subnormal products stays slow). So every thread of the calling
thread's OpenMP team sets them itself: one parallel region of PyTorch's own libgomp runs
torch.set_flush_denormal in each thread (a ctypes callback through GOMP_parallel). Where that is not
possible (another OpenMP runtime, not x86/ARM with the flags), the calling thread is flushed alone.

    with flushed_denormals():   # Trainer.fit on the CPU
        ...                     # the previous mode comes back on exit
"""

from __future__ import annotations

import contextlib
import ctypes
import os

import torch

_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def flush_is_on() -> bool:
    """Whether the calling thread flushes subnormals: a product in the subnormal range comes out 0."""
    tiny = torch.tensor([1e-30], dtype=torch.float32)
    return float(tiny * 1e-10) == 0.0  # 1e-40 is subnormal in float32


def _team_library():
    """PyTorch's bundled GNU OpenMP runtime (the one its kernels' threads come from), or None."""
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1")
    if not os.path.exists(path):
        return None
    try:
        lib = ctypes.CDLL(path)  # the already-loaded copy: dlopen returns the same handle
        lib.GOMP_parallel.argtypes = [_CALLBACK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        lib.GOMP_parallel.restype = None
        return lib
    except (OSError, AttributeError):
        return None


def set_flush(on: bool) -> bool:
    """Flush subnormals (on=True) or keep them (False) in the calling thread and every thread of its OpenMP
    team (torch.get_num_threads() of them). Returns False where the CPU has no such mode."""
    supported = torch.set_flush_denormal(bool(on))
    if not supported or torch.get_num_threads() <= 1:
        return supported
    lib = _team_library()
    if lib is None:
        return supported

    def each_thread(_data) -> None:  # runs once in every thread of the team, the caller included
        torch.set_flush_denormal(bool(on))

    callback = _CALLBACK(each_thread)  # kept alive for the call
    lib.GOMP_parallel(callback, None, ctypes.c_uint(torch.get_num_threads()), ctypes.c_uint(0))
    return supported


@contextlib.contextmanager
def flushed_denormals(enabled: bool = True):
    """Flush subnormals to zero inside the block (every thread of the team); the previous mode after it."""
    if not enabled:
        yield False
        return
    was = flush_is_on()
    supported = set_flush(True)
    try:
        yield supported
    finally:
        if supported and not was:
            set_flush(False)
