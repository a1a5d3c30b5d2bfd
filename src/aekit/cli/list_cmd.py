"""`aekit list [--json]`: every ingredient per axis (parameters, defaults, reference), then the named variants."""

from __future__ import annotations

import json

from ..catalogue import catalogue
from .parser import print_table

STACKED = {"variant": "stacked", "backbone": "mlp", "bottleneck": "deterministic", "corruption": "per layer",
           "regularizers": "per layer", "likelihood": "gaussian",  # a training schedule (aekit.tasks.stacked.layerwise)
           "reference": "Bengio et al. 2007, Greedy layer-wise training of deep networks"}


def add_list_parser(sub) -> None:
    p = sub.add_parser("list", help="list the ingredients of every axis and the named variants",
                       description="Every registered ingredient per axis (its parameters, defaults, capabilities and "
                                   "reference), then the named variants, their axes and references.")
    p.add_argument("--json", action="store_true", help="print JSON: {'ingredients': {axis: [...]}, 'variants': [...]}")
    p.set_defaults(func=run_list)


def param_text(param: dict) -> str:
    """'k: int = 16', or 'k: int (required)'."""
    if param["required"]:
        return f"{param['name']}: {param['type']} (required)"
    return f"{param['name']}: {param['type']} = {param['default']!r}"


def _axis_value(value):
    if isinstance(value, dict):  # {'name': {params}} (second edition) or {'kind', 'level'} (first)
        return value.get("kind") if "kind" in value else ",".join(value)
    return value


def run_list(args) -> int:
    found = catalogue()
    if args.json:
        print(json.dumps(found, indent=2, default=repr))
        return 0
    for axis, entries in found["ingredients"].items():
        if not entries:
            continue
        print(f"{axis} (--{'reg' if axis == 'regularizer' else axis} NAME[:key=value,...])")
        rows = [{"name": e["name"], "parameters": "; ".join(param_text(p) for p in e["params"]) or "-",
                 "provides": ",".join(e["provides"]) or "-", "requires": ",".join(e["requires"]) or "-",
                 "reference": e["reference"] or e["summary"] or "-"} for e in entries]
        print_table(rows, ["name", "parameters", "provides", "requires", "reference"])
        print()
    rows = []
    for v in found["variants"]:
        a = v["axes"]
        regs = a["regularizers"]
        rows.append({"variant": v["name"], "backbone": _axis_value(a["backbone"]),
                     "bottleneck": _axis_value(a["bottleneck"]), "corruption": _axis_value(a["corruption"]),
                     "regularizers": ",".join(regs) or "-", "likelihood": _axis_value(a["likelihood"]),
                     "reference": v["reference"]})
    rows.append(dict(STACKED))
    print_table(rows, ["variant", "backbone", "bottleneck", "corruption", "regularizers", "likelihood", "reference"])
    return 0
