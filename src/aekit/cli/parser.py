"""An ArgumentParser whose errors are one line with a did-you-mean hint, and option helpers."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError, did_you_mean


class Parser(argparse.ArgumentParser):
    """argparse with 'Did you mean ...?' for mistyped options and one-line errors (exit code 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        hint = ""
        if "unrecognized arguments:" in message:
            options = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
            for token in message.split(":", 1)[1].split():
                if token.startswith("-"):
                    hint = did_you_mean(token.split("=")[0], options)
                    if hint:
                        break
        elif "invalid choice:" in message:
            bad = message.split("invalid choice:", 1)[1].split("(")[0].strip().strip("'\"")
            choices = []
            for a in self._actions:
                if a.choices:
                    choices += list(a.choices)
            hint = did_you_mean(bad, choices)
        self.exit(2, f"{self.prog}: error: {message}.{hint}\n".replace("..", "."))


def int_list(text: str) -> list[int]:
    """'512,256' -> [512, 256]; '' or 'none' -> []."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 512,256; got {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers; got {text!r}")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def parse_sparsity(text: str) -> dict:
    """'kl:0.05' / 'kl:0.05:3' -> kl_sparsity(rho, weight); 'l1:1e-3' -> l1_activity(weight)."""
    kind, *values = text.split(":")
    try:
        nums = [float(v) for v in values]
    except ValueError:
        raise ConfigError(f"--sparsity values must be numbers; got {text!r}.") from None
    if kind == "kl" and 1 <= len(nums) <= 2:
        params = {"rho": nums[0]}
        if len(nums) == 2:
            params["weight"] = nums[1]
        return {"kl_sparsity": params}
    if kind == "l1" and len(nums) == 1:
        return {"l1_activity": {"weight": nums[0]}}
    raise ConfigError(
        f"--sparsity must be 'kl:RHO[:WEIGHT]' or 'l1:WEIGHT'; got {text!r}." + did_you_mean(kind, ["kl", "l1"])
    )


def print_table(rows: list[dict], columns: list[str], *, file=None) -> str:
    """A fixed-width text table; also returned as a string."""
    file = file or sys.stdout

    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    text = "\n".join(lines)
    print(text, file=file)
    return text


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if v is None:
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(out)
