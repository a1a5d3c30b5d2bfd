"""`aekit compress RUN_DIR --data SRC --out FILE [--bits B] [--method M]` and
`aekit decompress RUN_DIR FILE --out X.npy`: lossy compression with a trained autoencoder.

The quantizer and entropy model are fitted once per bit depth on the run's training data and
kept in RUN_DIR/compression/codec-<B>bit.safetensors (shared side information, like the weights).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..tasks.compression import METHODS, Codec, compress, compression_stats, decompress, fit_codec, read_container
from ..tasks.compression.codec import CODEC_DIR
from ..errors import CheckpointError, ConfigError, DataError
from ..training.runs import load_run, run_data
from ..units import OutputUnits
from .options import out_path, save_npy
from .parser import positive_int
from .options import add_data_options


def add_compress_parsers(sub) -> None:
    p = sub.add_parser("compress", help="compress data with a trained autoencoder into a .aekc file",
                       description="Encode, quantize (uniform, BITS per code dimension), entropy-code and write a "
                                   "versioned, checksummed container; prints bytes per image, bits per pixel, PSNR, SSIM.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train' (deterministic or VAE, no U-Net skips)")
    add_data_options(p, required=True, max_samples=True)
    p.add_argument("--split", default=None, help="split of a named dataset (default: test)")
    p.add_argument("--out", required=True, help="output container file (.aekc)")
    p.add_argument("--bits", type=positive_int, default=8, help="quantizer bits per code dimension, 1-16 (default: 8)")
    p.add_argument("--method", choices=METHODS, default="range",
                   help="entropy coder: range (fitted per-dimension model, default), lzma or zlib (general-purpose)")
    p.add_argument("--refit", action="store_true", help="refit the quantizer and entropy model on the run's training data")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_compress)

    p = sub.add_parser("decompress", help="decode a .aekc file back to arrays",
                       description="Read a container written by 'aekit compress' and write the reconstructions as .npy.")
    p.add_argument("run_dir", help="the run directory that compressed the file")
    p.add_argument("file", help="a container written by 'aekit compress'")
    p.add_argument("--out", required=True, help="output .npy file")
    p.set_defaults(func=run_decompress)


def codec_path(run_dir, bits: int) -> Path:
    return Path(run_dir) / CODEC_DIR / f"codec-{int(bits)}bit.safetensors"


def run_codec(run_dir, model, info: dict, *, bits: int, refit: bool = False, data_dir: str | None = None) -> Codec:
    """The run's codec for `bits`: loaded from the run directory, or fitted on its training split and kept."""
    if not 1 <= bits <= 16:
        raise ConfigError(f"--bits must be an integer from 1 to 16; got {bits}.")
    path = codec_path(run_dir, bits)
    if path.is_file() and not refit:
        return Codec.load(path)
    x_train, _, _, what = run_data(info, data_dir=data_dir, split="train", model=model)
    codec = fit_codec(model, x_train, bits=bits)
    codec.save(path)
    print(f"fitted the {bits}-bit quantizer and entropy model on {what} ({x_train.shape[0]} samples): {path}",
          file=sys.stderr)
    return codec


def run_compress(args) -> int:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from ..checkpoint import atomic_write_bytes
    from ..training.progress import stages

    with stages(["load", "codec", "compress", "check"], desc="compress") as stage:
        stage("load")
        model, info = load_run(args.run_dir)
        x, _, ds, what = run_data(info, source=args.data, data_dir=args.data_dir, split=args.split, model=model,
                                  max_samples=args.max_samples)
        stage("codec")
        codec = run_codec(args.run_dir, model, info, bits=args.bits, refit=args.refit, data_dir=args.data_dir)
        stage("compress")
        scalar = isinstance(ds.scale, float) and isinstance(ds.offset, float)
        blob = compress(model, x, codec, method=args.method, scale=ds.scale if scalar else None,
                        offset=ds.offset if scalar else None)
        atomic_write_bytes(out, blob)
        stage("check")
        x_hat, header = decompress(model, blob, codec, where=repr(str(out)))  # what decompress will give back
    stats = {"file": str(out), "data": what, "bits": args.bits, "method": args.method,
             **compression_stats(x, x_hat, file_bytes=len(blob), payload_bytes=header["payload_bytes"],
                                 image_shape=ds.image_shape)}
    if args.json:
        print(json.dumps(stats))
    else:
        for k, v in stats.items():
            print(f"{k:>16}: {v:.6g}" if isinstance(v, float) else f"{k:>16}: {v}")
    return 0


def run_decompress(args) -> int:
    out = out_path(args.out, (".npy",))
    model, info = load_run(args.run_dir)
    header, _ = read_container(args.file)
    path = codec_path(args.run_dir, header["bits"])
    if not path.is_file():
        raise CheckpointError(f"{str(args.file)!r} needs the {header['bits']}-bit codec of this run ({str(path)!r}), "
                              "which does not exist; was it compressed with another run?")
    x_hat, header = decompress(model, Path(args.file).read_bytes(), Codec.load(path), where=repr(str(args.file)))
    units = OutputUnits.from_run(info, model)  # the run's data: bounded or not, per-feature scaling
    if "scale" in header and "offset" in header:  # the compressed data's own scalar units
        units = OutputUnits(scale=float(header["scale"]), offset=float(header["offset"]), bounded=units.bounded)
    x_hat = units.to_raw(x_hat).numpy().astype(np.float32)  # the loaded data's units, clipped where bounded
    if not np.isfinite(x_hat).all():
        raise DataError(f"{str(args.file)!r}: decoding gives non-finite values (its scale / offset or this model's "
                        "decoder); nothing written.")
    save_npy(out, x_hat)
    print(f"wrote {tuple(x_hat.shape)} reconstructions to {out}", file=sys.stderr)
    return 0
