"""Save and load models and training states without pickle.

A model directory holds `config.json` (format version, the resolved configuration, the
caller's keyword arguments, and `config_sha256`, the SHA-256 of the rest; files written before
it existed load without it) and `model.safetensors`, whose header carries the SHA-256 of its
tensors. Every file is
written to a temporary name in the same folder, flushed, fsynced and renamed, so a crash or a
full disk leaves the previous file whole. Loading checks the checksum, refuses anything that is
not a safetensors file (a pickle disguised as a checkpoint is never unpickled) and rebuilds the
identical model.

Nested state (an optimizer's state_dict) is stored by `save_state`: tensors go to safetensors
under flat keys, everything else to JSON with {"__tensor__": key} placeholders.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def file_mode() -> int:
    """The mode a plain open() would give a new file: 0o666 less the process umask (0o644 under umask 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write data to path via a temporary file + fsync + rename; the old file survives any failure.

    The file gets the usual mode (0o666 less the umask), not mkstemp's private 0o600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            # a failed write (ENOSPC, EIO) names no file: name the one that could not be written
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def atomic_write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of the tensors, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """A safetensors file whose header carries the payload's SHA-256: the file checks itself."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    return st_save(tensors, metadata={"aekit_sha256": payload_sha256(tensors)})


def _header_metadata(data: bytes, path) -> dict:
    if len(data) < 8:
        raise CheckpointError(f"{str(path)!r} is corrupted or truncated: {len(data)} bytes, not a safetensors file.")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8 or n > 100_000_000:
        raise CheckpointError(f"{str(path)!r} is corrupted or truncated: it declares a {n}-byte header in {len(data)} bytes.")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{str(path)!r} is corrupted or not a safetensors file: its header is not JSON.") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def read_tensors(path, *, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file, verifying its embedded checksum (and an expected file SHA-256 if given)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist.")
    data = path.read_bytes()
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise CheckpointError(f"{str(path)!r} is corrupted or truncated: its SHA-256 does not match the recorded one.")
    meta = _header_metadata(data, path)
    try:
        tensors = st_load(data)
    except (SafetensorError, Exception) as exc:  # safetensors raises several types on garbage
        raise CheckpointError(f"{str(path)!r} is corrupted or truncated, not a valid safetensors file "
                              f"({type(exc).__name__}: {exc}).") from None
    if "aekit_sha256" in meta and payload_sha256(tensors) != meta["aekit_sha256"]:
        raise CheckpointError(f"{str(path)!r} is corrupted or truncated: its tensors do not match the checksum in its header.")
    return tensors


def read_kind_folder(directory, *, kind: str, format_version: int, holds: str, hint: str = "") -> dict:
    """config.json of a saved folder of `kind` (a segmenter, an estimator, ...), its kind and format checked:
    a CheckpointError naming the folder or file otherwise. holds: what such a folder holds, for the message."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"folder {str(directory)!r} does not exist.")
    path = directory / CONFIG_NAME
    meta = read_json(path)
    if meta.get("kind") != kind:
        raise CheckpointError(f"{str(directory)!r} does not hold {holds} (config.json kind is {meta.get('kind')!r})"
                              + (f"; {hint}" if hint else "") + ".")
    if meta.get("format_version") != format_version:
        raise CheckpointError(f"{str(path)!r} has format_version {meta.get('format_version')!r}; "
                              f"this aekit reads {format_version}.")
    return meta


def read_json(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} does not exist.")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: [[[[...]]]]
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({exc}).") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{str(path)!r} must hold a JSON object; got {type(obj).__name__}.")
    return obj


def folder_kind(directory) -> str | None:
    """The 'kind' in a saved folder's config.json (a segmenter, an SAE, ...), None without a readable one."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        kind = read_json(path).get("kind")
    except CheckpointError:
        return None
    return kind if isinstance(kind, str) else None


# ---------------------------------------------------------------------- models
def save(model, directory: str | os.PathLike) -> Path:
    """Write model.safetensors and config.json into directory (created if needed)."""
    from ._version import __version__
    from .build import FORMAT_VERSION

    directory = Path(directory)
    # the weights carry their own checksum, so config.json and model.safetensors are each valid on
    # their own: a crash between the two renames leaves a loadable pair (same architecture)
    config = {"format_version": FORMAT_VERSION, "aekit_version": __version__, "config": model.config}
    config["config_sha256"] = config_sha256(config)  # config.json checks itself, like the weights
    atomic_write_bytes(directory / WEIGHTS_NAME, tensors_to_bytes(model.state_dict()))
    atomic_write_json(directory / CONFIG_NAME, config)
    return directory


def config_sha256(meta: dict) -> str:
    """SHA-256 of config.json's contents (canonical JSON, every key but config_sha256 itself)."""
    body = {k: v for k, v in meta.items() if k != "config_sha256"}
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def check_config_checksum(meta: dict, path) -> None:
    """Verify config.json's checksum; files written before it existed (no config_sha256) are accepted."""
    if "config_sha256" in meta and meta["config_sha256"] != config_sha256(meta):
        raise CheckpointError(f"{str(path)!r} is corrupted: its contents do not match its checksum (config_sha256).")


def load(directory: str | os.PathLike, *, map_location: str = "cpu"):
    """Rebuild a model saved by `save` (eval mode); outputs are bit-identical to the saved model's."""
    from .build import FORMAT_VERSION, assemble

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"model directory {str(directory)!r} does not exist.")
    meta = read_json(directory / CONFIG_NAME)
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{str(directory / CONFIG_NAME)!r} has format_version {version!r}; this aekit reads {FORMAT_VERSION}.")
    check_config_checksum(meta, directory / CONFIG_NAME)
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{str(directory / CONFIG_NAME)!r} has no 'config' object.")
    state = read_tensors(directory / WEIGHTS_NAME)  # bounded by the file's size
    with torch.device("meta"):  # shapes only, no memory: a config declaring a huge model is refused here
        probe = _assemble(assemble, meta["config"], directory / CONFIG_NAME)
    _check_shapes(probe.state_dict(), state, source=directory / WEIGHTS_NAME)
    model = _assemble(assemble, meta["config"], directory / CONFIG_NAME)
    if model.config != meta["config"]:  # a config of an earlier release, migrated: what identifies the saved model
        model.source_config = meta["config"]
    load_state_into(model, state, source=directory / WEIGHTS_NAME)
    return model.to(map_location).eval()


def build_from_config(config: dict, *, source):
    """Build the model a recorded config (run.json's "model") describes, its size checked on the meta device first.

    Every failure, a model larger than the memory budget included, is a CheckpointError naming source."""
    from .build import assemble

    if not isinstance(config, dict):
        raise CheckpointError(f"{str(source)!r} has no model configuration object.")
    with torch.device("meta"):
        _assemble(assemble, config, source)  # the size check of aekit.build runs here, on shapes only
    seed = config.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _assemble(assemble, config, source)
    with torch.random.fork_rng(devices=[]):  # the initial weights build() drew from this seed
        torch.manual_seed(seed)
        return _assemble(assemble, config, source)


def _assemble(assemble, config: dict, source):
    """Build the model of a config.json; any failure (a hostile or damaged config) is a CheckpointError."""
    from .build import migrate_config
    from .errors import AekitError

    try:
        return assemble(migrate_config(config))  # configs of the first release (flat keys) are translated
    except AekitError as exc:
        raise CheckpointError(f"{str(source)!r} describes a model that cannot be built: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, OverflowError,
            RecursionError) as exc:
        raise CheckpointError(f"{str(source)!r} is corrupted or not an aekit config: building its model failed "
                              f"({type(exc).__name__}: {str(exc)[:200]}).") from None


def load_state_into(module: torch.nn.Module, state: dict, *, source) -> None:
    _check_shapes(module.state_dict(), state, source=source)
    module.load_state_dict(state)


def _check_shapes(own: dict, state: dict, *, source) -> None:
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{str(source)!r} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}.")
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{str(source)!r}: {key} has shape {tuple(state[key].shape)}, the model expects {tuple(value.shape)}.")


# ---------------------------------------------------------------------- nested states
def flatten_state(obj, prefix: str = "s") -> tuple[object, dict[str, torch.Tensor]]:
    """Replace every tensor in a nested dict/list by {'__tensor__': key}; return (skeleton, tensors)."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(o, path):
        if isinstance(o, torch.Tensor):
            tensors[path] = o
            return {"__tensor__": path}
        if isinstance(o, dict):
            return {"__dict__": [[walk(k, f"{path}.k{i}"), walk(v, f"{path}.{i}")] for i, (k, v) in enumerate(o.items())]}
        if isinstance(o, (list, tuple)):
            return {"__list__" if isinstance(o, list) else "__tuple__": [walk(v, f"{path}.{i}") for i, v in enumerate(o)]}
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        raise CheckpointError(f"cannot store a value of type {type(o).__name__} at {path} without pickle.")

    return walk(obj, prefix), tensors


def unflatten_state(skeleton, tensors: dict[str, torch.Tensor]):
    def walk(o):
        if isinstance(o, dict):
            if "__tensor__" in o:
                return tensors[o["__tensor__"]]
            if "__dict__" in o:
                return {walk(k): walk(v) for k, v in o["__dict__"]}
            if "__list__" in o:
                return [walk(v) for v in o["__list__"]]
            if "__tuple__" in o:
                return tuple(walk(v) for v in o["__tuple__"])
        return o

    try:
        return walk(skeleton)
    except KeyError as exc:
        raise CheckpointError(f"training state refers to a missing tensor {exc}.") from None
