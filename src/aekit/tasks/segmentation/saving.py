"""Save and load a segmentation U-Net: model.safetensors (self-checking) + config.json, no pickle.

Reuses aekit.checkpoint's atomic writes and checksummed safetensors files. config.json holds
{"kind": "segmentation-unet", "format_version", "aekit_version", "config": the U-Net's keyword
arguments}, so a saved model rebuilds exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

from ... import checkpoint as ckpt
from ...errors import CheckpointError, ConfigError
from .unet import SegmentationUNet

KIND = "segmentation-unet"
FORMAT_VERSION = 1


def save_segmenter(model: SegmentationUNet, directory: str | os.PathLike) -> Path:
    from ..._version import __version__

    directory = Path(directory)
    ckpt.atomic_write_bytes(directory / ckpt.WEIGHTS_NAME, ckpt.tensors_to_bytes(model.state_dict()))
    ckpt.atomic_write_json(directory / ckpt.CONFIG_NAME, {"kind": KIND, "format_version": FORMAT_VERSION,
                                                           "aekit_version": __version__, "config": model.config})
    return directory


def is_segmenter_dir(directory) -> bool:
    return ckpt.folder_kind(directory) == KIND


def load_segmenter(directory: str | os.PathLike, *, map_location: str = "cpu") -> SegmentationUNet:
    """Rebuild the U-Net saved by save_segmenter (eval mode), checking the weights' checksum."""
    directory = Path(directory)
    meta = ckpt.read_kind_folder(directory, kind=KIND, format_version=FORMAT_VERSION, holds="a segmentation U-Net",
                                 hint="train one with 'aekit segment train'")
    try:
        model = SegmentationUNet(**meta["config"])
    except (TypeError, KeyError, ConfigError) as exc:
        raise CheckpointError(f"{str(directory / ckpt.CONFIG_NAME)!r} has an invalid U-Net config ({exc}).") from None
    state = ckpt.read_tensors(directory / ckpt.WEIGHTS_NAME)
    ckpt.load_state_into(model, state, source=directory / ckpt.WEIGHTS_NAME)
    return model.to(map_location).eval()
