"""Checks on every request the explorer receives; a bad one becomes a 4xx with a message.

Rules (each violation names the field, what was expected and what was given):
- POST bodies: Content-Length required (411) and at most MAX_BODY bytes (413); Content-Type,
  when given, application/json (415); UTF-8 JSON (400) holding an object (400) with only known
  keys (400, with a did-you-mean);
- numbers: JSON numbers (not strings, booleans or null), finite (NaN / Infinity are refused at
  parse time) and within +-VALUE_LIMIT;
- a code z: a list of exactly latent_dim numbers; a map point: a list of 2 numbers;
- sample indices: integers in [0, n_points); steps: an integer in [2, MAX_STEPS].
"""

from __future__ import annotations

import json
import math

from ...errors import did_you_mean

MAX_BODY = 64 * 1024  # bytes; a 1024-unit code in JSON is ~25 KB
VALUE_LIMIT = 1e4  # |number| allowed in a code or a map point
MAX_STEPS = 64  # images in one interpolation


class RequestError(Exception):
    """A request the server refuses: HTTP status and a one-line message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message


def _refuse_constant(name: str):
    raise RequestError(400, f"the body holds {name}; numbers must be finite.")


def content_length(header: str | None) -> int:
    """The body size from the Content-Length header, checked against MAX_BODY."""
    if header is None:
        raise RequestError(411, "a POST needs a Content-Length header.")
    try:
        n = int(header.strip())
    except ValueError:
        raise RequestError(400, f"Content-Length must be an integer; got {header!r}.") from None
    if n < 0:
        raise RequestError(400, f"Content-Length must be >= 0; got {n}.")
    if n > MAX_BODY:
        raise RequestError(413, f"the body is {n} bytes; at most {MAX_BODY} are accepted.")
    return n


def content_type(header: str | None) -> None:
    if header is None:
        return
    kind = header.split(";", 1)[0].strip().lower()
    if kind not in ("application/json", "text/plain"):  # text/plain: what a bare fetch() sends
        raise RequestError(415, f"Content-Type must be application/json; got {kind!r}.")


def parse_object(body: bytes, allowed: tuple[str, ...]) -> dict:
    """UTF-8 JSON object with keys from `allowed` only."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not UTF-8 text.") from None
    try:
        obj = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc.msg} at character {exc.pos}.") from None
    except RecursionError:
        raise RequestError(400, "the body is nested too deeply.") from None
    except ValueError as exc:  # e.g. an integer literal past Python's digit limit
        raise RequestError(400, f"the body is not acceptable JSON: {exc}.") from None
    if not isinstance(obj, dict):
        raise RequestError(400, f"the body must be a JSON object; got a JSON {_kind(obj)}.")
    for key in obj:
        if key not in allowed:
            raise RequestError(400, f"unknown key {key!r}; allowed: {', '.join(map(repr, allowed))}."
                               + did_you_mean(key, allowed))
    return obj


def _kind(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def number(name: str, value, *, limit: float = VALUE_LIMIT) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(400, f"{name} must be a number; got a JSON {_kind(value)}.")
    x = float(value) if not isinstance(value, int) or abs(value) <= 1e300 else math.inf
    if not math.isfinite(x) or abs(x) > limit:
        raise RequestError(400, f"{name} must be a finite number within +-{limit:g}; got {value!r}.")
    return x


def vector(name: str, value, length: int) -> list[float]:
    """A JSON array of exactly `length` finite numbers within +-VALUE_LIMIT."""
    if not isinstance(value, list):
        raise RequestError(400, f"{name} must be an array of {length} numbers; got a JSON {_kind(value)}.")
    if len(value) != length:
        raise RequestError(400, f"{name} must have {length} numbers; got {len(value)}.")
    return [number(f"{name}[{i}]", v) for i, v in enumerate(value)]


def integer(name: str, value, lo: int, hi: int) -> int:
    """An integer in [lo, hi] (a JSON number with no fractional part)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RequestError(400, f"{name} must be an integer in [{lo}, {hi}]; got {value!r}.")
    if not lo <= value <= hi:
        raise RequestError(400, f"{name} must be an integer in [{lo}, {hi}]; got {value}.")
    return value


def decode_request(obj: dict, latent_dim: int) -> tuple[str, list[float]]:
    """{"z": [...latent_dim numbers]} or {"point": [x, y]} (exactly one): ("z" | "point", values)."""
    given = [k for k in ("z", "point") if k in obj]
    if len(given) != 1:
        raise RequestError(400, 'the body must hold exactly one of "z" (a code of '
                           f'{latent_dim} numbers) or "point" (map coordinates [x, y]); got {sorted(obj) or "none"}.')
    key = given[0]
    return key, vector(key, obj[key], latent_dim if key == "z" else 2)


def interpolate_request(obj: dict, n_points: int) -> tuple[int, int, int]:
    """{"a": i, "b": j, "steps": n}: sample indices of the map and the number of images."""
    for key in ("a", "b"):
        if key not in obj:
            raise RequestError(400, f'"{key}" (a sample index in [0, {n_points - 1}]) is required.')
    steps = integer("steps", obj.get("steps", 8), 2, MAX_STEPS)
    return integer("a", obj["a"], 0, n_points - 1), integer("b", obj["b"], 0, n_points - 1), steps


def feature_request(obj: dict, features) -> int:
    """{"latent": i}: a latent of the feature browser's SAE (404 when the explorer has no SAE)."""
    if features is None:
        raise RequestError(404, "this explorer has no sparse autoencoder; start it with --sae SAE_DIR.")
    if "latent" not in obj:
        raise RequestError(400, f'"latent" (an integer in [0, {features.n_latents - 1}]) is required.')
    return integer("latent", obj["latent"], 0, features.n_latents - 1)


__all__ = ["MAX_BODY", "MAX_STEPS", "RequestError", "VALUE_LIMIT", "content_length", "content_type",
           "decode_request", "feature_request", "integer", "interpolate_request", "number", "parse_object", "vector"]
