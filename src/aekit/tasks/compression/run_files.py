"""Compress and decompress with a trained run directory: what `aekit compress` / `aekit decompress` do.

    stats = compress_run("runs/ae32", out="x.aekc", data="mnist", bits=8)
    x_hat = decompress_run("runs/ae32", "x.aekc")      # (N, *shape) in the data's units

The quantizer and entropy model are fitted once per bit depth on the run's training data and
kept in RUN_DIR/compression/codec-<B>bit.safetensors (shared side information, like the weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ...checkpoint import atomic_write_bytes
from ...errors import CheckpointError, ConfigError, DataError
from ...training.runs import load_run, run_data
from ...units import OutputUnits
from .codec import CODEC_DIR, Codec, compress, compression_stats, decompress, fit_codec
from .container import read_container


def codec_path(run_dir, bits: int) -> Path:
    return Path(run_dir) / CODEC_DIR / f"codec-{int(bits)}bit.safetensors"


def run_codec(run_dir, model, info: dict, *, bits: int, refit: bool = False, data_dir: str | None = None,
              log: Callable[[str], None] = lambda line: None) -> Codec:
    """The run's codec for `bits`: loaded from the run directory, or fitted on its training split and kept."""
    if not 1 <= bits <= 16:
        raise ConfigError(f"--bits must be an integer from 1 to 16; got {bits}.")
    path = codec_path(run_dir, bits)
    if path.is_file() and not refit:
        return Codec.load(path)
    x_train, _, _, what = run_data(info, data_dir=data_dir, split="train", model=model)
    codec = fit_codec(model, x_train, bits=bits)
    codec.save(path)
    log(f"fitted the {bits}-bit quantizer and entropy model on {what} ({x_train.shape[0]} samples): {path}")
    return codec


def compress_run(run_dir, *, out, data: str, data_dir: str | None = None, split: str | None = None,
                 max_samples: int | None = None, bits: int = 8, method: str = "range", refit: bool = False,
                 log: Callable[[str], None] = lambda line: None) -> dict:
    """Write data compressed by the run's model to out (.aekc); the statistics of what decompress gives back."""
    from ...training.progress import stages

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with stages(["load", "codec", "compress", "check"], desc="compress") as stage:
        stage("load")
        model, info = load_run(run_dir)
        x, _, ds, what = run_data(info, source=data, data_dir=data_dir, split=split, model=model,
                                  max_samples=max_samples)
        stage("codec")
        codec = run_codec(run_dir, model, info, bits=bits, refit=refit, data_dir=data_dir, log=log)
        stage("compress")
        scalar = isinstance(ds.scale, float) and isinstance(ds.offset, float)
        blob = compress(model, x, codec, method=method, scale=ds.scale if scalar else None,
                        offset=ds.offset if scalar else None)
        atomic_write_bytes(out, blob)
        stage("check")
        x_hat, header = decompress(model, blob, codec, where=repr(str(out)))  # what decompress will give back
    return {"file": str(out), "data": what, "bits": bits, "method": method,
            **compression_stats(x, x_hat, file_bytes=len(blob), payload_bytes=header["payload_bytes"],
                                image_shape=ds.image_shape)}


def decompress_run(run_dir, file) -> np.ndarray:
    """(N, *shape) float32 reconstructions of a container, in the compressed data's units."""
    model, info = load_run(run_dir)
    header, _ = read_container(file)
    path = codec_path(run_dir, header["bits"])
    if not path.is_file():
        raise CheckpointError(f"{str(file)!r} needs the {header['bits']}-bit codec of this run ({str(path)!r}), "
                              "which does not exist; was it compressed with another run?")
    x_hat, header = decompress(model, Path(file).read_bytes(), Codec.load(path), where=repr(str(file)))
    units = OutputUnits.from_run(info, model)  # the run's data: bounded or not, per-feature scaling
    if "scale" in header and "offset" in header:  # the compressed data's own scalar units
        units = OutputUnits(scale=float(header["scale"]), offset=float(header["offset"]), bounded=units.bounded)
    x_hat = units.to_raw(x_hat).numpy().astype(np.float32)  # the loaded data's units, clipped where bounded
    if not np.isfinite(x_hat).all():
        raise DataError(f"{str(file)!r}: decoding gives non-finite values (its scale / offset or this model's "
                        "decoder); nothing written.")
    return x_hat
