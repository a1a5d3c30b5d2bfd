"""The host network whose activations an SAE reads: an aekit run folder, or a module built by Python code.

A host spec is a run folder ('runs/mnist_ae'), or 'FILE.py:FACTORY' — FACTORY() in that file returns
the nn.Module (a classifier defined by the user), with its weights from a safetensors file when
`weights` is given (no pickle is ever read). `host_record` is what a store's meta keeps so that
`aekit sae evaluate` finds the host again; `host_data` the inputs (and labels) a command feeds it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import torch
from torch import nn

from ... import checkpoint as ckpt
from ...errors import CheckpointError, ConfigError, DataError


def is_python_host(spec: str) -> bool:
    path, sep, _ = str(spec).rpartition(":")
    return bool(sep) and path.endswith(".py")


def load_python_host(spec: str, *, weights: str | os.PathLike | None = None) -> nn.Module:
    """FACTORY() of FILE.py for spec 'FILE.py:FACTORY', with the state in the safetensors file `weights` (eval mode)."""
    path, _, name = str(spec).rpartition(":")
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"host file {path!r} does not exist (a host is a run folder or FILE.py:FACTORY).")
    if not name.isidentifier():
        raise ConfigError(f"host {spec!r}: {name!r} is not a Python name; give FILE.py:FACTORY.")
    module_name = f"_aekit_host_{abs(hash(str(file.resolve())))}"
    loader = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module
    try:
        loader.loader.exec_module(module)
    except Exception as exc:  # the user's file: say which and why, in one line
        raise ConfigError(f"host file {path!r} failed to import: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ConfigError(f"host file {path!r} has no callable {name!r}.")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"host {spec!r}: {name}() returned a {type(model).__name__}, not a torch.nn.Module.")
    if weights is not None:
        state = ckpt.read_tensors(weights)
        own = model.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        bad = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
        if missing or unexpected or bad:
            raise CheckpointError(f"weights {str(weights)!r} do not fit {name}(): missing {missing[:4]}, "
                                  f"unexpected {unexpected[:4]}, other shapes {bad[:4]}.")
        model.load_state_dict(state)
    return model.eval()


def load_host(spec: str, *, weights=None) -> tuple[nn.Module, dict]:
    """(the host module in eval mode, the run's run.json or {} for a Python host)."""
    if is_python_host(spec):
        return load_python_host(spec, weights=weights), {}
    if weights is not None:
        raise ConfigError("--weights applies to a host given as FILE.py:FACTORY, not to a run folder.")
    from ...training.runs import load_run

    return load_run(Path(spec))


def host_record(spec: str, *, weights=None) -> dict:
    """What a store's meta records of its host: absolute paths, so commands run from any folder."""
    if is_python_host(spec):
        path, _, name = str(spec).rpartition(":")
        return {"python": f"{Path(path).resolve()}:{name}", "weights": None if weights is None else str(Path(weights).resolve())}
    return {"run": str(Path(spec).resolve())}


def host_from_record(record) -> tuple[str, str | None]:
    if not isinstance(record, dict) or not (record.get("run") or record.get("python")):
        raise ConfigError("the store records no host; pass the host (a run folder or FILE.py:FACTORY) with --host.")
    return (record.get("run") or record["python"]), record.get("weights")


def host_data(spec: str, info: dict, model, *, source=None, data_dir=None, split=None,
              max_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(inputs, labels or None, description): a run's own data (or `source` the run's way); a Python host's `source`."""
    from ...training.runs import run_data

    if not is_python_host(spec):
        x, y, _, what = run_data(info, source=source, data_dir=data_dir, split=split, model=model,
                                 max_samples=max_samples)
        return x, y, what
    if source is None:
        raise ConfigError("a host given as FILE.py:FACTORY needs --data (e.g. --data mnist).")
    x, y, _, what = run_data({}, source=source, data_dir=data_dir, split=split, max_samples=max_samples)
    if x.shape[0] == 0:
        raise DataError(f"{what} has no rows.")
    return x, y, what


__all__ = ["host_data", "host_from_record", "host_record", "is_python_host", "load_host", "load_python_host"]
