"""Import paths of the first release, kept working: `aekit.train`, `aekit.sklearn`, `aekit.segment`, ...

The second edition moved modules into axes/, training/ and tasks/ (docs/DESIGN.md). A finder on
sys.meta_path answers an old name with the module at its new place (the same module object, so
`aekit.train.Trainer is aekit.training.trainer.Trainer`) and a DeprecationWarning naming the new
path. Packages are aliased with their submodules (`aekit.segment.tiles`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

MOVED = {  # first-release module -> where it lives now
    "aekit.corruption": "aekit.axes.corruption",
    "aekit.bottlenecks": "aekit.axes.bottlenecks",
    "aekit.regularizers": "aekit.axes.regularizers",
    "aekit.likelihoods": "aekit.axes.likelihoods",
    "aekit.train": "aekit.training.trainer",
    "aekit.train_checkpoints": "aekit.training.checkpoints",
    "aekit.distributed": "aekit.training.distributed",
    "aekit.runs": "aekit.training.runs",
    "aekit.run_lock": "aekit.training.run_lock",
    "aekit.progress": "aekit.training.progress",
    "aekit.anomaly": "aekit.tasks.anomaly",
    "aekit.denoise": "aekit.tasks.denoise",
    "aekit.augment": "aekit.tasks.augment",
    "aekit.disentangle": "aekit.tasks.disentangle",
    "aekit.export": "aekit.tasks.export",
    "aekit.sklearn": "aekit.tasks.sklearn",
    "aekit.stacked": "aekit.tasks.stacked.layerwise",
    "aekit.stacked_classifier": "aekit.tasks.stacked.classifier",
    "aekit.segment": "aekit.tasks.segmentation",
    "aekit.compression": "aekit.tasks.compression",
    "aekit.explore": "aekit.tasks.explore",
}
PACKAGES = ("aekit.segment", "aekit.compression", "aekit.explore")


def new_name(name: str) -> str | None:
    """The current module path of a first-release one, or None when `name` did not move."""
    if name in MOVED:
        return MOVED[name]
    for old in PACKAGES:
        if name.startswith(old + "."):
            return MOVED[old] + name[len(old):]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target
        self.real_spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self.real_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self.real_spec  # the import system stamped the alias's spec on the real module


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = new_name(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new}; the old path is kept for compatibility and will be removed "
                      "in a later release.", DeprecationWarning, stacklevel=3)
        is_pkg = any(fullname == old for old in PACKAGES)
        return importlib.machinery.ModuleSpec(fullname, _Alias(new), is_package=is_pkg)


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())  # before the path finder: a stale folder of an old install must not win
