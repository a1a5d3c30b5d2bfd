"""One registry for every axis: corruptions, backbones, bottlenecks, regularizers, likelihoods, variants.

    @BOTTLENECKS.register("topk")
    class TopK(Bottleneck):
        '''k-sparse code: keep the k largest pre-activations.
        Makhzani & Frey 2013, k-sparse autoencoders.'''
        provides = frozenset({"code", "sparse_code"})
        def __init__(self, *, in_features: int, latent_dim: int, k: int = 16): ...

A *spec* names an ingredient and its parameters: a name (``"topk"``), a mapping
(``{"topk": {"k": 16}}``) or, from the command line, ``"topk:k=16,aux_weight=0.1"``. Parameters
are checked against the class signature (its keyword arguments minus the structural ones the
model supplies, such as ``in_features`` and ``latent_dim``): an unknown name or parameter gets a
did-you-mean, a wrong type an error naming the parameter. The checked spec is what the config
records, so a saved run rebuilds itself from it.

Compatibility is declared, never string-compared: an ingredient ``provides`` capabilities
(``posterior``, ``bounded_code``, ``discrete``, ``indices``, ``skips``, ...) and ``requires``
some; ``check_requirements`` refuses a mix whose requirements are not met, naming the missing
capability and the registered ingredients that provide it. Capabilities that depend on a
parameter (a deterministic code is bounded only with a sigmoid activation) come from a
``provides_for(**params)`` classmethod.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .errors import ConfigError, did_you_mean

_UNSET = inspect.Parameter.empty


class RegistryError(ConfigError):
    """A registry used wrongly by code (a name registered twice, a bad registration)."""


@dataclass(frozen=True)
class Param:
    """One parameter of an ingredient, as `aekit list` shows it."""

    name: str
    default: Any  # inspect.Parameter.empty when required
    annotation: Any

    @property
    def required(self) -> bool:
        return self.default is _UNSET

    def describe(self) -> str:
        kind = _type_name(self.annotation)
        return f"{self.name}: {kind}" + ("" if self.required else f" = {self.default!r}")


def _type_name(annotation) -> str:
    if annotation is _UNSET:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


class Registry:
    """Name -> ingredient (a class or a recipe function) for one axis."""

    def __init__(self, axis: str, *, structural: Iterable[str] = ()) -> None:
        self.axis = axis
        self.structural = frozenset(structural)  # keyword arguments the model supplies, never a spec's
        self._entries: dict[str, Any] = {}

    # ------------------------------------------------------------------ registration
    def register(self, name: str) -> Callable:
        if not isinstance(name, str) or not name.isidentifier():
            raise RegistryError(f"{self.axis} names must be identifiers; got {name!r}.")

        def deco(obj):
            if name in self._entries:
                raise RegistryError(
                    f"{self.axis} {name!r} is registered twice ({_where(self._entries[name])} and {_where(obj)}); "
                    "choose another name."
                )
            self._entries[name] = obj
            return obj

        return deco

    # ------------------------------------------------------------------ lookup
    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self):
        return self._entries.items()

    def get(self, name: str):
        if name not in self._entries:
            raise ConfigError(
                f"{self.axis} must be one of {', '.join(map(repr, self._entries))}; got {name!r}."
                + did_you_mean(name, self._entries)
            )
        return self._entries[name]

    def __getitem__(self, name: str):
        return self.get(name)

    # ------------------------------------------------------------------ parameters
    def params(self, name: str) -> list[Param]:
        """The spec parameters of an ingredient: its keyword arguments minus the structural ones."""
        obj = self.get(name)
        target = obj.__init__ if inspect.isclass(obj) else obj
        try:
            hints = typing.get_type_hints(target)
        except Exception:  # noqa: BLE001 - an unresolvable annotation only loses the type check
            hints = {}
        out = []
        for p in inspect.signature(target).parameters.values():
            if p.name == "self" or p.name in self.structural or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            out.append(Param(p.name, p.default, hints.get(p.name, p.annotation)))
        return out

    def spec(self, value, *, name: str | None = None) -> tuple[str, dict]:
        """(name, checked params) from a name, {name: {param: value}} or 'name:k=v,...'.

        Values given as strings (from the command line) are converted to the parameter's type."""
        what = name or self.axis
        if isinstance(value, str):
            ing, _, rest = value.strip().partition(":")
            short = getattr(self._entries.get(ing.strip()), "shorthand", None)
            if rest and short and "=" not in rest:  # 'gaussian:0.3' -> gaussian with std=0.3 (the class's shorthand)
                ing, params = ing.strip(), {short: rest.strip()}
            else:
                ing, params = parse_spec_string(value, what=what)
        elif isinstance(value, Mapping) and len(value) == 1:
            ing, params = next(iter(value.items()))
            if params is None:
                params = {}
            if not isinstance(params, Mapping):
                raise ConfigError(f"{what} must be a name or {{name: {{parameter: value}}}}; got {value!r}.")
            params = dict(params)
        else:
            raise ConfigError(f"{what} must be a name or {{name: {{parameter: value}}}} (one name); got {value!r}.")
        self.get(ing)
        return ing, self.check_params(ing, params, what=what)

    def check_params(self, name: str, params: Mapping, *, what: str | None = None) -> dict:
        what = what or self.axis
        known = {p.name: p for p in self.params(name)}
        out = {}
        for key, val in params.items():
            if key not in known:
                allowed = ", ".join(known) or "none"
                raise ConfigError(
                    f"{what} {name!r} has no parameter {key!r} (its parameters: {allowed})." + did_you_mean(key, known)
                )
            out[key] = coerce(val, known[key].annotation, where=f"{what} {name!r} parameter {key!r}")
        missing = [p.name for p in known.values() if p.required and p.name not in out]
        if missing:
            raise ConfigError(f"{what} {name!r} needs the parameter(s) {', '.join(missing)}; "
                              f"e.g. {name}:{missing[0]}=VALUE.")
        return out

    def create(self, value, **structural):
        """Instantiate a spec; `structural` are the arguments the model supplies (in_features, ...)."""
        name, params = self.spec(value)
        return self.get(name)(**structural, **params)

    # ------------------------------------------------------------------ capabilities and docs
    def capabilities(self, name: str, params: Mapping | None = None) -> frozenset[str]:
        obj = self.get(name)
        if hasattr(obj, "provides_for"):
            return frozenset(obj.provides_for(**dict(params or {})))
        return frozenset(getattr(obj, "provides", ()))

    def requirements(self, name: str, params: Mapping | None = None) -> frozenset[str]:
        """What an ingredient requires; `requires_for(**params)` when it depends on the parameters."""
        obj = self.get(name)
        if hasattr(obj, "requires_for"):
            return frozenset(obj.requires_for(**dict(params or {})))
        return frozenset(getattr(obj, "requires", ()))

    def providers(self, capability: str) -> list[str]:
        """This axis's ingredients that can provide a capability, each as "axis 'name'" followed by the
        parameters it needs for it when it depends on them (class attribute may_provide: cap -> condition)."""
        out = []
        for name, obj in self._entries.items():
            may = getattr(obj, "may_provide", {})
            if capability in set(getattr(obj, "provides", ())):
                out.append(f"{self.axis} {name!r}")
            elif capability in may:
                cond = may[capability] if isinstance(may, Mapping) else ""
                out.append(f"{self.axis} {name!r}" + (f" with {cond}" if cond else ""))
        return out

    def describe(self, name: str) -> dict:
        """Summary, reference, parameters and capabilities of an ingredient (for `aekit list`)."""
        obj = self.get(name)
        summary, reference = doc_summary(obj)
        return {
            "axis": self.axis, "name": name, "summary": summary, "reference": reference,
            "params": [{"name": p.name, "type": _type_name(p.annotation),
                        "default": None if p.required else p.default, "required": p.required}
                       for p in self.params(name)],
            "provides": sorted(set(getattr(obj, "provides", ())) | set(getattr(obj, "may_provide", ()))),
            "requires": sorted(set(getattr(obj, "requires", ())) | set(getattr(obj, "may_require", ()))),
        }


def _where(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def doc_summary(obj) -> tuple[str, str]:
    """(summary, reference): the docstring's lines, the last one being the reference when there are several."""
    lines = [line.strip() for line in (inspect.getdoc(obj) or "").split("\n\n")[0].splitlines() if line.strip()]
    if len(lines) < 2:
        return " ".join(lines), ""
    return " ".join(lines[:-1]), lines[-1]


# ---------------------------------------------------------------------- spec strings and values
def parse_spec_string(text: str, *, what: str) -> tuple[str, dict]:
    """'topk:k=16,aux_weight=0.1' -> ('topk', {'k': '16', 'aux_weight': '0.1'}) (values still strings)."""
    name, _, rest = text.strip().partition(":")
    params: dict[str, str] = {}
    if rest:
        for item in rest.split(","):
            key, eq, val = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"{what} {text!r}: parameters are written NAME:key=value,key=value; got {item!r}.")
            params[key.strip()] = val.strip()
    return name.strip(), params


def coerce(value, annotation, *, where: str):
    """value converted to the annotated type (strings from the CLI), or a ConfigError naming `where`."""
    if annotation is _UNSET or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            if type(None) in typing.get_args(annotation):
                return None
        last = None
        for arg in args:
            try:
                return coerce(value, arg, where=where)
            except ConfigError as exc:
                last = exc
        raise last or ConfigError(f"{where}: cannot use {value!r}.")
    if origin in (list, tuple) or annotation in (list, tuple):
        inner = args[0] if args else _UNSET
        if isinstance(value, str):
            value = [v for v in value.replace(";", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list; got {value!r}.")
        return [coerce(v, inner, where=where) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where} must be true or false; got {value!r}.")
    if annotation in (int, float):
        what = "an integer" if annotation is int else "a number"
        number = value
        if isinstance(value, str):
            try:
                number = float(value) if annotation is float else int(value)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ConfigError(f"{where} must be {what}; got {value!r}.")
        if annotation is float:
            return float(number)
        if isinstance(number, float) and not number.is_integer():
            raise ConfigError(f"{where} must be {what}; got {value!r}.")
        return int(number)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string; got {value!r}.")
    return value


# ---------------------------------------------------------------------- capabilities across axes
def check_requirements(chosen: Mapping[str, tuple[Registry, str, dict]], *, needs: Mapping[str, Iterable[str]] = (),
                       given: Iterable[str] = ()) -> frozenset[str]:
    """Refuse a mix whose requirements are not met; returns the capabilities the mix provides.

    chosen: label -> (registry, name, params), e.g. {'bottleneck': (BOTTLENECKS, 'gaussian', {})}.
    needs: extra label -> capabilities required by a use (e.g. {'sample()': ['posterior']}).
    given: capabilities the context provides besides the ingredients (e.g. 'image_input' for (C, H, W) inputs).
    The error names the missing capability, the ingredient that needs it, the ingredients that provide it
    and the mix as chosen.
    """
    provided: set[str] = set(given)
    for reg, name, params in chosen.values():
        provided |= reg.capabilities(name, params)
    demands = [(f"{reg.axis} {name!r}" + (f" ({_params_text(params)})" if params else ""), reg.requirements(name, params))
               for reg, name, params in chosen.values()]
    demands += [(label, frozenset(caps)) for label, caps in dict(needs).items()]
    for head, reqs in demands:
        for cap in sorted(reqs):
            if cap not in provided:
                offers = []
                for reg2, _, _ in chosen.values():
                    offers += reg2.providers(cap)
                offers = list(dict.fromkeys(offers))
                mix = ", ".join(f"{reg2.axis} {n!r}" + (f" ({_params_text(p)})" if p else "")
                                for reg2, n, p in chosen.values())
                raise ConfigError(
                    f"{head} needs a '{cap}' capability that nothing in this model provides "
                    f"(this model: {mix}); "
                    + (f"provided by: {', '.join(offers)}." if offers else "no registered ingredient provides it.")
                )
    return frozenset(provided)


def _params_text(params: Mapping) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


# ---------------------------------------------------------------------- the axes
# Each axis module registers its ingredients on import (axes/*.py, backbones/*.py, variants.py);
# aekit.ingredients imports them all, so every registry is complete wherever that is imported.
CORRUPTIONS = Registry("corruption")
BACKBONES = Registry("backbone", structural=("input_shape", "latent_dim"))
BOTTLENECKS = Registry("bottleneck", structural=("in_features", "latent_dim"))
REGULARIZERS = Registry("regularizer", structural=("input_shape", "latent_dim"))  # pseudo-inputs; discriminators
LIKELIHOODS = Registry("likelihood")
VARIANTS = Registry("variant")
AXES = {"corruption": CORRUPTIONS, "backbone": BACKBONES, "bottleneck": BOTTLENECKS,
        "regularizer": REGULARIZERS, "likelihood": LIKELIHOODS}
