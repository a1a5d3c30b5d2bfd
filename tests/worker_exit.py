"""How a test's torch.distributed worker process ends (imported by the worker scripts, not a test module)."""

from __future__ import annotations

import faulthandler
import gc
import os
import sys


def end_worker() -> None:
    """Destroy the process group, free its native threads now, and end without interpreter-shutdown destructors:
    a joinable native thread destroyed at shutdown aborts with "terminate called without an active exception"."""
    import torch.distributed as dist

    dist.destroy_process_group()
    gc.collect()
    faulthandler.cancel_dump_traceback_later()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
