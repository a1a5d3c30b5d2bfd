"""Every module that registers ingredients, imported: the registries of aekit.registry complete.

    from aekit.ingredients import load_all
    load_all()   # (importing this module is enough; the function says so at the call site)

The registries live in registry.py (the ground floor every axis imports); this module sits above
the axes and the variants, so that nothing below it imports upward.
"""

from __future__ import annotations

from . import backbones, variants  # noqa: F401  (register on import)
from .axes import adversarial, bottlenecks, corruption, distortions, entropy_models  # noqa: F401
from .axes import likelihoods, priors, regularizers  # noqa: F401


def load_all() -> None:
    """The registering modules are imported with this module; kept as an explicit call for readers."""
