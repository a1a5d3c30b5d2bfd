"""Save and load the scikit-learn estimators (aekit.tasks.sklearn) as a folder, without pickle.

    det.save("detector")                                   # a fitted AutoencoderOutlierDetector
    det = AutoencoderOutlierDetector.load("detector")      # identical score_samples / predict / predict_proba

The folder holds config.json and one safetensors file per model (member_0.safetensors, ...):

    config.json   {"kind": "aekit-sklearn-estimator", "estimator": class name, "format_version", "aekit_version",
                   "params": the constructor's keywords (get_params), "n_features_in_", "feature_names_in_" (when
                   fitted on a DataFrame), "scaler": {"center", "scale"} per feature, "members": [{"file", "sha256",
                   "config": the model's aekit config}], "state": the estimator's own fitted numbers (a detector's
                   per-member score normalisation, offset_, predict_proba's calibration), "config_sha256"}

The checksums are aekit.checkpoint's, the ones run folders use: config.json carries the SHA-256 of the rest of
its contents (config_sha256), each weights file the SHA-256 of its tensors in its header, and config.json also
records each weights file's SHA-256. Floats are written as JSON numbers (shortest repr, exact round trip) and
the weights in float64, the precision the estimators score in, so a loaded estimator's outputs are bit-identical.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..errors import CheckpointError, ConfigError

KIND = "aekit-sklearn-estimator"
FORMAT_VERSION = 1


def is_estimator_dir(directory) -> bool:
    """True when directory holds a saved estimator (its config.json's kind)."""
    return ckpt.folder_kind(directory) == KIND


def _member_name(i: int) -> str:
    return f"member_{i}.safetensors"


def _jsonable_params(params: dict) -> dict:
    """get_params() as JSON: tuples become lists; a RandomState (not storable) becomes None."""
    out = {}
    for key, value in params.items():
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, np.random.RandomState):
            value = None  # the fitted weights are saved; only a refit would draw from it
        if isinstance(value, np.integer):
            value = int(value)
        if isinstance(value, np.floating):
            value = float(value)
        out[key] = value
    return out


def save_estimator(est, directory: str | os.PathLike) -> Path:
    """Write a fitted estimator to directory (created if needed); returns the folder.

    A folder that exists and holds anything but a saved estimator is refused, so a run folder or a data folder is
    never overwritten."""
    from .._version import __version__

    if not hasattr(est, "model_"):
        raise ConfigError(f"this {type(est).__name__} is not fitted yet: call fit(X) before save().")
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or (any(directory.iterdir()) and not is_estimator_dir(directory))):
        raise ConfigError(f"cannot save to {str(directory)!r}: it exists and does not hold a saved aekit estimator; "
                          "choose a new folder.")
    models = est._saved_models()
    members = []
    for i, model in enumerate(models):
        data = ckpt.tensors_to_bytes(model.state_dict())  # float64 tensors, their checksum in the header
        ckpt.atomic_write_bytes(directory / _member_name(i), data)
        members.append({"file": _member_name(i), "sha256": ckpt.sha256(data), "config": model.config})
    for stale in directory.glob("member_*.safetensors"):  # a previous save with more members
        if stale.name not in {m["file"] for m in members}:
            stale.unlink()
    meta = {"kind": KIND, "estimator": type(est).__name__, "format_version": FORMAT_VERSION,
            "aekit_version": __version__, "params": _jsonable_params(est.get_params(deep=False)),
            "n_features_in_": int(est.n_features_in_),
            "scaler": {"center": [float(v) for v in est.center_], "scale": [float(v) for v in est.scale_]},
            "members": members, "state": est._saved_state()}
    if hasattr(est, "feature_names_in_"):
        meta["feature_names_in_"] = [str(v) for v in est.feature_names_in_]
    meta["config_sha256"] = ckpt.config_sha256(meta)
    ckpt.atomic_write_json(directory / ckpt.CONFIG_NAME, meta)  # last: a folder is complete once it is written
    return directory


def _member(directory: Path, entry, n_features: int) -> torch.nn.Module:
    """One saved model, rebuilt from its config, in float64 eval mode; its weights' checksums verified."""
    config_path = directory / ckpt.CONFIG_NAME
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or "/" in entry["file"] \
            or entry["file"].startswith("."):
        raise CheckpointError(f"{str(config_path)!r} is corrupted: a member entry does not name a weights file.")
    path = directory / entry["file"]
    state = ckpt.read_tensors(path, expected_sha256=entry.get("sha256"))
    model = ckpt.build_from_config(entry.get("config"), source=config_path)
    if tuple(getattr(model, "input_shape", ())) != (n_features,):
        raise CheckpointError(f"{str(config_path)!r} is corrupted: a member's input shape "
                              f"{tuple(getattr(model, 'input_shape', ()))} does not match n_features_in_={n_features}.")
    model = model.double()  # the weights were saved in float64, the precision the estimators score in
    ckpt.load_state_into(model, state, source=path)
    return model.cpu().eval()


def load_estimator(cls, directory: str | os.PathLike):
    """The estimator save_estimator wrote to directory, ready to score (CheckpointError naming the file otherwise)."""
    directory = Path(directory)
    config_path = directory / ckpt.CONFIG_NAME
    meta = ckpt.read_kind_folder(directory, kind=KIND, format_version=FORMAT_VERSION, holds="a saved aekit estimator")
    if "config_sha256" not in meta:
        raise CheckpointError(f"{str(config_path)!r} is corrupted: it has no checksum (config_sha256).")
    ckpt.check_config_checksum(meta, config_path)
    if meta.get("estimator") != cls.__name__:
        raise CheckpointError(f"{str(config_path)!r} holds a {meta.get('estimator')!r}, not a {cls.__name__}; "
                              f"load it with {meta.get('estimator')}.load.")
    try:
        est = cls(**meta["params"])
        n = int(meta["n_features_in_"])
        center = np.asarray(meta["scaler"]["center"], dtype=np.float64)  # (D,)
        scale = np.asarray(meta["scaler"]["scale"], dtype=np.float64)  # (D,)
        members = meta["members"]
        if center.shape != (n,) or scale.shape != (n,) or not isinstance(members, list) or not members:
            raise ValueError("the scaler or the member list does not match n_features_in_")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(config_path)!r} is corrupted or not an aekit estimator "
                              f"({type(exc).__name__}: {str(exc)[:200]}).") from None
    est.n_features_in_, est.center_, est.scale_ = n, center, scale
    if "feature_names_in_" in meta:
        est.feature_names_in_ = np.asarray(meta["feature_names_in_"], dtype=object)
    models = [_member(directory, entry, n) for entry in members]
    try:
        est._restore_state(models, meta.get("state") or {})
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{str(config_path)!r} is corrupted: its fitted state cannot be restored "
                              f"({type(exc).__name__}: {str(exc)[:200]}).") from None
    return est


def jsonable_history(history) -> list:
    """The per-epoch training records as JSON (records that are not plain numbers or text are left out)."""
    try:
        return json.loads(json.dumps(history))
    except (TypeError, ValueError):
        return []


__all__ = ["FORMAT_VERSION", "KIND", "is_estimator_dir", "load_estimator", "save_estimator"]
