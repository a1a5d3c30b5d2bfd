"""`aekit list`: the named variants with their axes and references."""

from __future__ import annotations

import json

from ..build import list_variants
from .parser import print_table


def add_list_parser(sub) -> None:
    p = sub.add_parser("list", help="list the named variants", description="The named variants, their axes and references.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--ingredients", action="store_true",
                   help="list the registered ingredients of every axis (bottlenecks, regularizers, ...) with their "
                        "parameters and references instead of the variants")
    p.set_defaults(func=run_list)


def run_list(args) -> int:
    if getattr(args, "ingredients", False):
        return run_list_ingredients(args)
    variants = list_variants()
    if args.json:
        print(json.dumps(variants, indent=2))
        return 0
    rows = []
    for v in variants:
        a = v["axes"]
        rows.append({"variant": v["name"], "backbone": a["backbone"], "bottleneck": a["bottleneck"],
                     "corruption": a["corruption"]["kind"] if isinstance(a["corruption"], dict) else a["corruption"],
                     "regularizers": ",".join(a["regularizers"]) or "-", "likelihood": a["likelihood"],
                     "reference": v["reference"]})
    rows.append({"variant": "stacked", "backbone": "mlp", "bottleneck": "deterministic", "corruption": "per layer",
                 "regularizers": "per layer", "likelihood": "gaussian",  # a training schedule (aekit.tasks.stacked.layerwise), not a recipe
                 "reference": "Bengio et al. 2007, Greedy layer-wise training of deep networks"})
    print_table(rows, ["variant", "backbone", "bottleneck", "corruption", "regularizers", "likelihood", "reference"])
    return 0


def run_list_ingredients(args) -> int:
    """Every registered ingredient, axis by axis: name, parameters with defaults, capabilities, reference."""
    from ..registry import AXES, load_all

    load_all()
    entries = [reg.describe(name) for reg in AXES.values() for name in reg]
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    rows = [{"axis": e["axis"], "name": e["name"],
             "parameters": ", ".join(p["name"] + ("" if p["required"] else f"={p['default']!r}") for p in e["params"]) or "-",
             "provides": ",".join(e["provides"]) or "-", "reference": e["reference"]} for e in entries]
    print_table(rows, ["axis", "name", "parameters", "provides", "reference"])
    return 0
