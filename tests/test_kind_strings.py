"""Compatibility is declared by capabilities, never string-compared: no code outside the registry and the
ingredient definitions compares a bottleneck, likelihood, backbone or corruption name (issue 15, item 3).

Code asks `model.provides("posterior")` (or another capability, aekit.registry) instead.
"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "aekit"
# where ingredients are defined and registered, and where names are translated into specs
ALLOWED = {"registry.py", "variants.py", "build.py"}
ALLOWED_DIRS = {"axes", "backbones"}
NAMES = "gaussian|deterministic|bernoulli|mlp|conv|unet|masking|salt_and_pepper|gaussian_clipped"
PATTERNS = [
    re.compile(r"\b(bottleneck|corruption|likelihood|encoder|decoder)\.kind\b"),  # the first release's kind attribute
    re.compile(r"getattr\([^)]*['\"]kind['\"]"),
    re.compile(rf"(==|!=)\s*['\"]({NAMES})['\"]"),
    re.compile(rf"['\"]({NAMES})['\"]\s*(==|!=)"),
    re.compile(r"likelihood\.name\s*(==|!=)"),
    re.compile(r"config(\.get\(|\[)['\"](bottleneck|likelihood|backbone|corruption)['\"]\)?\]?\s*(==|!=|in\b)"),
]


def offending_lines() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ALLOWED_DIRS or str(rel) in ALLOWED:
            continue
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if any(p.search(code) for p in PATTERNS):
                out.append(f"{rel}:{i}: {line.strip()}")
    return out


def test_no_ingredient_name_is_compared_outside_the_registry():
    assert offending_lines() == []


def test_the_check_finds_what_it_forbids(tmp_path, monkeypatch):
    for bad in ['if model.bottleneck.kind == "gaussian":', 'ok = cfg["bottleneck"] != "deterministic"',
                "bernoulli = likelihood.name == 'bernoulli'", 'getattr(b, "kind", None)']:
        assert any(p.search(bad) for p in PATTERNS), bad
    for fine in ['if model.provides("posterior"):', 'mode == "none"', 'x.dtype.kind in "biuf"']:
        assert not any(p.search(fine) for p in PATTERNS), fine
