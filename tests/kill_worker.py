"""Run `aekit ARGS` and kill this process at a chosen moment (tests/test_resume_anywhere.py; not a test module).

    python tests/kill_worker.py step:N[:SIGNAL] -- train ...   # SIGNAL (default KILL) during optimizer step N (1-based)
    python tests/kill_worker.py last:E -- train ...            # SIGKILL right after last.json names epoch E's end

The moments are found through public hooks only (torch's global optimizer step hook, the JSON
writer), so the same worker kills today's trainer and tomorrow's at the same place. The signal
is real: SIGKILL leaves the files exactly as a crash would.
"""

from __future__ import annotations

import os
import signal
import sys

from torch.optim.optimizer import register_optimizer_step_pre_hook


def main() -> None:
    spec, rest = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    kind, _, value = spec.partition(":")
    if kind == "step":
        number, _, name = value.partition(":")
        target, sig = int(number), getattr(signal, f"SIG{name or 'KILL'}")
        if sig == signal.SIGINT:  # a shell's background job starts with SIGINT ignored; a terminal's Ctrl-C does not
            signal.signal(signal.SIGINT, signal.default_int_handler)
        count = [0]

        def hook(optimizer, args, kwargs):
            count[0] += 1
            if count[0] == target:  # after the backward pass, before the update
                os.kill(os.getpid(), sig)

        register_optimizer_step_pre_hook(hook)
    elif kind == "last":
        from aekit import checkpoint as ckpt

        epoch, real = int(value), ckpt.atomic_write_json

        def write(path, obj):
            real(path, obj)
            if os.path.basename(str(path)) == "last.json" and obj.get("epoch") == epoch and not obj.get("epoch_step"):
                os.kill(os.getpid(), signal.SIGKILL)

        ckpt.atomic_write_json = write
    else:
        raise SystemExit(f"unknown kill spec {spec!r}")
    from aekit.cli import main as aekit_main

    sys.exit(aekit_main(rest))


if __name__ == "__main__":
    main()
