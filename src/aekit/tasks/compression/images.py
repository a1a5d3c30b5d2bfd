"""Image files through a rate-trained run (bottleneck 'entropy' or 'hyperprior'): what `aekit compress --images`
and `aekit decompress` (to PNG) do.

    stats = compress_images("runs/hp", images="photos/", out="coded/")    # one .aekc per image, per-image stats
    paths = decompress_images("runs/hp", "coded/", out="decoded/")        # one 8-bit PNG per .aekc

Pixels are read with Pillow (PNG, JPEG, ...), converted to the run's channels (1: 'L', 3: 'RGB') and scaled
to [0, 1] (value / 255), the units of a run trained on image folders. Any size goes through a fully
convolutional model (the learned bitstream pads and crops); a model with a fixed input shape takes only that
size. Reported per image: bpp (8 x file bytes / pixels, the container header counted), payload_bpp (the
range-coded payload only), PSNR (dB, peak 1) and MS-SSIM of the 8-bit image that decompress writes,
measured by decoding the file just written.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ...checkpoint import atomic_write_bytes
from ...errors import ConfigError, DataError
from ...training.runs import load_run
from .container import unpack_container
from .learned import LearnedCodec, _check_model, compress_learned, decompress_learned

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_files(path, suffixes: tuple[str, ...], *, what: str) -> list[Path]:
    """The file itself, or the files with one of `suffixes` in the folder (sorted, not recursive)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
        if not files:
            raise DataError(f"{what} {str(p)!r} holds no {'/'.join(suffixes)} files.")
        return files
    if not p.is_file():
        raise DataError(f"{what} {str(p)!r} does not exist.")
    return [p]


def read_image(path, channels: int) -> torch.Tensor:
    """(1, channels, H, W) float32 in [0, 1] from an image file (1 channel: luminance 'L'; 3: 'RGB')."""
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ConfigError(f"image files need a run with 1 or 3 input channels; this run takes {channels}.")
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{str(path)!r} is not a readable image ({type(exc).__name__}).") from None
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # (C, H, W)
    return torch.from_numpy(np.ascontiguousarray(a))[None]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) in [0, 1] -> (H, W) or (H, W, C) uint8, rounded half up after clipping."""
    a = np.floor(x[0].detach().double().clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def write_png(path, a: np.ndarray) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())


def image_quality(x: torch.Tensor, x_hat: torch.Tensor) -> dict:
    """PSNR (dB, peak 1) and MS-SSIM (with the number of scales it could use) of (1, C, H, W) images in [0, 1]."""
    from ...metrics import ms_ssim, ms_ssim_scales

    mse = float(((x.double() - x_hat.double()) ** 2).mean())
    psnr = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
    return {"psnr": psnr, "ms_ssim": ms_ssim(x, x_hat), "ms_ssim_scales": ms_ssim_scales(*x.shape[2:])}


def _out_files(inputs: list[Path], out, suffix: str, *, single_ok: bool) -> list[Path]:
    out = Path(out)
    if out.suffix.lower() in (*IMAGE_SUFFIXES, ".aekc") and out.suffix.lower() != suffix and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r}: this writes {suffix} files; give a {suffix} file (one input) or a folder.")
    if len(inputs) == 1 and single_ok and out.suffix.lower() == suffix:
        out.parent.mkdir(parents=True, exist_ok=True)
        return [out]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} must be a folder (several inputs) or a {suffix} file (one input).")
    out.mkdir(parents=True, exist_ok=True)
    names = [p.stem for p in inputs]
    if len(set(names)) != len(names):
        raise ConfigError(f"the inputs hold files with the same name stem ({names}); one {suffix} each would collide.")
    return [out / f"{p.stem}{suffix}" for p in inputs]


def _average(rows: list[dict]) -> dict:
    keys = ("bpp", "payload_bpp", "psnr", "ms_ssim", "encode_s", "decode_s")
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def compress_images(run_dir, *, images, out) -> dict:
    """Compress each image file (a file or a folder) into its own .aekc (out: a .aekc for one image, else a folder).
    Returns {"images": [per-image stats], "average": {...}, "run": ...}."""
    model, _ = load_run(run_dir)
    _check_model(model)
    c = int(model.input_shape[0])
    inputs = list_files(images, IMAGE_SUFFIXES, what="--images")
    outs = _out_files(inputs, out, ".aekc", single_ok=True)
    codec = LearnedCodec(model)
    rows = []
    for src, dst in zip(inputs, outs):
        x = read_image(src, c)  # (1, C, H, W)
        t0 = time.perf_counter()
        blob = compress_learned(model, x, codec=codec)
        t1 = time.perf_counter()
        atomic_write_bytes(dst, blob)
        x_hat, _ = decompress_learned(model, blob, codec=codec, where=repr(str(dst)))  # what decompress gives
        t2 = time.perf_counter()
        x8 = torch.from_numpy(to_uint8(x_hat).astype(np.float32) / 255.0)
        x8 = x8[None, None] if x8.dim() == 2 else x8.permute(2, 0, 1)[None]
        _, payload = unpack_container(blob, versions=(2,))
        pixels = x.shape[2] * x.shape[3]
        rows.append({"image": str(src), "file": str(dst), "height": int(x.shape[2]), "width": int(x.shape[3]),
                     "bytes": len(blob), "payload_bytes": len(payload), "bpp": 8 * len(blob) / pixels,
                     "payload_bpp": 8 * len(payload) / pixels, **image_quality(x, x8),
                     "encode_s": t1 - t0, "decode_s": t2 - t1})
    return {"run": str(run_dir), "coder": codec.kind, "images": rows, "average": _average(rows)}


def decompress_images(run_dir, file, *, out) -> list[Path]:
    """Decode a .aekc file (or a folder of them) of images into 8-bit PNG files (out: a .png for one, else a folder)."""
    model, _ = load_run(run_dir)
    _check_model(model)
    codec = LearnedCodec(model)
    inputs = list_files(file, (".aekc",), what="the file")
    outs = _out_files(inputs, out, ".png", single_ok=True)
    for src, dst in zip(inputs, outs):
        x_hat, header = decompress_learned(model, src.read_bytes(), codec=codec, where=repr(str(src)))
        if header["count"] != 1 or len(header["shape"]) != 3:
            raise DataError(f"{str(src)!r} holds {header['count']} samples of shape {tuple(header['shape'])}, not one "
                            "image; decode it with aekit.tasks.compression.decompress_learned.")
        write_png(dst, to_uint8(x_hat))
    return outs
