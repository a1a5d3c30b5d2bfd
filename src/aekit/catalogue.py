"""What aekit can build: every registered ingredient per axis and every named variant (`aekit list`).

    from aekit.catalogue import catalogue
    catalogue()["ingredients"]["bottleneck"]   # [{'name', 'summary', 'reference', 'params', 'provides', ...}]

Read from the registries (aekit.registry.Registry.describe), so a newly registered ingredient
appears with its parameters, defaults and reference without a line here.
"""

from __future__ import annotations

from .ingredients import load_all
from .registry import AXES


def ingredients() -> dict[str, list[dict]]:
    """axis -> [Registry.describe(name) for every registered name], in registration order."""
    load_all()
    return {axis: [registry.describe(name) for name in registry.names()] for axis, registry in AXES.items()}


def catalogue() -> dict:
    """{'ingredients': axis -> descriptions, 'variants': the named variants with their axes and references}."""
    from .build import list_variants

    return {"ingredients": ingredients(), "variants": list_variants()}
