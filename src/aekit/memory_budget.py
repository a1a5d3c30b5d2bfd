"""The memory budget: how much memory decoding a file or building a model may take, checked before it happens.

A small file can declare a huge array (a compressed .npz, IDX .gz or .mat element, a PNG whose
header says 8192 x 8192, a container whose header declares millions of codes), and a table or
image of that size builds a huge first layer. Every such size is computed from the headers and
compared with the budget *before* anything is decoded or allocated; above it the load stops
with a one-line error naming the size, the budget and how to change it.

The budget is AEKIT_MEMORY_BUDGET when set (bytes, or with a unit: 512M, 8G, 1.5GiB; or a share
of the available memory: 25%), else half of the memory available now (MemAvailable in
/proc/meminfo; os.sysconf where there is no /proc; 8 GiB when neither says).
"""

from __future__ import annotations

import os
import re

from .errors import ConfigError, DataError

ENV_VAR = "AEKIT_MEMORY_BUDGET"
DEFAULT_FRACTION = 0.5
FALLBACK_AVAILABLE = 16 * 2**30
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)")


def available_bytes() -> int | None:
    """Memory available to new allocations now, in bytes (None when the system does not say)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def parse_size(text: str, *, name: str = ENV_VAR) -> int:
    """'512M' / '8G' / '1.5GiB' / '1000000' / '25%' (of the available memory) -> bytes."""
    value = str(text).strip().lower()
    if value.endswith("%"):
        try:
            share = float(value[:-1])
        except ValueError:
            share = -1.0
        if not 0 < share <= 100:
            raise ConfigError(f"{name} must be a size (512M, 8G) or a share of the available memory (25%); got {text!r}.")
        return int((available_bytes() or FALLBACK_AVAILABLE) * share / 100)
    match = _SIZE.fullmatch(value)
    if match is None or match.group(2) not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"{name} must be a size (512M, 8G, 1.5GiB, or bytes) or a share of the available memory "
                          f"(25%); got {text!r}.")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def memory_budget() -> int:
    """The budget in bytes (see the module docstring)."""
    value = os.environ.get(ENV_VAR)
    if value:
        return parse_size(value)
    return int((available_bytes() or FALLBACK_AVAILABLE) * DEFAULT_FRACTION)


def human(n: int | float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover


def check_budget(n_bytes: int, *, what: str, hint: str = "", error: type = DataError) -> None:
    """Raise `error` when n_bytes (what decoding / building would take) is above the memory budget."""
    budget = memory_budget()
    if n_bytes > budget:
        where = f"{ENV_VAR}={os.environ[ENV_VAR]}" if os.environ.get(ENV_VAR) else \
            f"half of the available memory; set {ENV_VAR} (e.g. 8G) to change it"
        raise error(f"{what} would take {human(n_bytes)} of memory, above the memory budget of {human(budget)} "
                    f"({where}){'; ' + hint if hint else ''}.")




def array_cost(n_values: int, itemsize: int) -> int:
    """Bytes a data array of n_values takes once loaded: as stored, its float32 tensor, one float32 copy (the split)."""
    return int(n_values) * (int(itemsize) + 8)


__all__ = ["ENV_VAR", "array_cost", "available_bytes", "check_budget", "memory_budget", "parse_size"]
