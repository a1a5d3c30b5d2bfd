"""Progress bars for long steps: tqdm on stderr when stderr is a terminal (or a notebook), else nothing.

    for batch in progress(range(0, n, b), desc="IWAE bound"): ...   # a bar on a terminal only
    with stages(["encode", "entropy-code", "check"], desc="compress") as step:
        ...; step("entropy-code"); ...                               # one tick per finished stage

Logs, pipes and CI get no bars (their output stays clean); `enabled=True/False` overrides.
"""

from __future__ import annotations

import contextlib
import sys


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def wanted(enabled: bool | None = None) -> bool:
    """Whether to draw bars: `enabled` when given, else stderr is a terminal or a Jupyter kernel runs us."""
    if enabled is not None:
        return bool(enabled)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) or _in_notebook()


def progress(iterable, *, desc: str, total: int | None = None, enabled: bool | None = None, unit: str = "it"):
    """`iterable` wrapped in a tqdm bar on stderr when wanted(enabled); the iterable itself otherwise."""
    if not wanted(enabled):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, file=sys.stderr, unit=unit, dynamic_ncols=True)


@contextlib.contextmanager
def stages(names: list[str], *, desc: str, enabled: bool | None = None):
    """A bar over named stages: call the yielded function with a stage's name when it begins."""
    if not wanted(enabled):
        yield lambda name: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(names), desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True,
               bar_format="{desc}: {n_fmt}/{total_fmt} {postfix} [{elapsed}]")
    started = []

    def begin(name: str) -> None:
        if started:
            bar.update(1)
        started.append(name)
        bar.set_postfix_str(name)

    try:
        yield begin
        bar.update(len(names) - bar.n)
    finally:
        bar.close()


__all__ = ["progress", "stages", "wanted"]
