"""The import graph of src/aekit: no circles, and no module imports a higher layer.

Every module is parsed with ast; relative imports are resolved; `from pkg import name` counts as
an import of pkg.name when that is a module, else of pkg. Imports inside functions count too: a
function-level import hides a circle from Python's import machinery, not from the design.
Package faces (__init__.py) count like modules; `aekit/__init__.py` (the public face, which
re-exports from every layer), `aekit/__main__.py` and `aekit/_compat.py` (aliases of the first
release's import paths) stand above the layers and are left out.

Layers (a module may import its own layer and lower ones):
  0  errors, _version, registry, inputs, memory_budget, image_grid
  1  axes, backbones, conditioning, interpolation, pca_init
  2  model, build, variants, checkpoint, catalogue, npy_file
  3  data, units (the data's units: it reads data.dataset's scaling), metrics, training
  4  tasks, viz, evaluation
  5  cli
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "aekit"
ABOVE_LAYERS = {"aekit", "aekit.__main__", "aekit._compat"}

LAYERS = {
    0: ["errors", "_version", "registry", "inputs", "memory_budget", "image_grid"],
    1: ["axes", "backbones", "conditioning", "interpolation", "pca_init", "step"],
    2: ["model", "build", "variants", "ingredients", "checkpoint", "catalogue", "npy_file"],
    3: ["data", "units", "metrics", "training", "pretrained"],
    4: ["tasks", "viz", "evaluation"],
    5: ["cli"],
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}

# Edges of the tree as it stands that break the rules, in files this change does not own; the
# list may only shrink (a test below fails when an entry is fixed, so that it is removed here).
KNOWN_CIRCLES: set[frozenset[str]] = set()
KNOWN_UPWARD: set[tuple[str, str]] = set()

# The registries are the ground floor every axis imports; the module that imports every registering
# module (aekit.ingredients) sits above the axes and the variants.
REGISTRY = "aekit.registry"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The aekit modules that module `name` imports (anywhere in the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in known else mod for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # aekit.x.y where y is a name: the module aekit.x
                target = target.rpartition(".")[0]
            if target.startswith("aekit") and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYER_OF.get(parts[1]) if len(parts) > 1 else None


def circles(g: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[frozenset[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def _package_face_edges(g):
    """Edges from a package's face to its own modules (a package re-exporting its parts is not a circle)."""
    return {(a, b) for a, targets in g.items() for b in targets if b.startswith(a + ".")}


def layered_graph() -> dict[str, set[str]]:
    g = graph()
    faces = _package_face_edges(g)
    return {a: {b for b in targets if (a, b) not in faces and b not in ABOVE_LAYERS}
            for a, targets in g.items() if a not in ABOVE_LAYERS}


def test_every_module_has_a_layer():
    missing = sorted(n for n in modules() if n not in ABOVE_LAYERS and layer(n) is None)
    assert not missing, f"give these modules a layer in LAYERS (and in CONTRIBUTING.md): {missing}"


def test_the_parser_resolves_relative_imports():
    g = graph()
    assert "aekit.errors" in g["aekit.registry"]  # from .errors import ...
    assert "aekit.training.runs" in g["aekit.evaluation"]  # from .training.runs import ...
    assert "aekit.checkpoint" in g["aekit.training.runs"]  # from .. import checkpoint as ckpt
    assert "aekit.tasks.stacked.layerwise" in g["aekit.evaluation"]  # an import inside a function


def test_no_import_circles():
    found = set(circles(layered_graph()))
    new = sorted(sorted(c) for c in found - KNOWN_CIRCLES)
    assert not new, f"import circles: {new}"


def test_known_circles_only_shrink():
    fixed = KNOWN_CIRCLES - set(circles(layered_graph()))
    assert not fixed, f"fixed: remove from KNOWN_CIRCLES: {[sorted(c) for c in fixed]}"


def upward_edges() -> set[tuple[str, str]]:
    g = layered_graph()
    return {(a, b) for a, targets in g.items() for b in targets
            if layer(a) is not None and layer(b) is not None and layer(b) > layer(a)}


def test_the_registry_imports_nothing_but_errors():
    """Anywhere in the file, functions included: the registry stays below every axis."""
    assert graph()[REGISTRY] <= {"aekit.errors"}, graph()[REGISTRY]


def test_nothing_imports_a_higher_layer():
    new = sorted(upward_edges() - KNOWN_UPWARD)
    assert not new, "imports from a lower layer into a higher one: " + ", ".join(
        f"{a} (layer {layer(a)}) -> {b} (layer {layer(b)})" for a, b in new)


def test_known_upward_imports_only_shrink():
    fixed = KNOWN_UPWARD - upward_edges()
    assert not fixed, f"fixed: remove from KNOWN_UPWARD: {sorted(fixed)}"


def test_library_never_imports_cli():
    g = layered_graph()
    offenders = sorted(a for a, targets in g.items() if not a.startswith("aekit.cli")
                       for b in targets if b.startswith("aekit.cli"))
    assert not offenders, offenders
