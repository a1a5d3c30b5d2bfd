"""Rate-distortion points of a rate-trained run and of Pillow's JPEG and WebP on the same 8-bit images: what the
report's compression section plots and benchmarks/compression_learned.py tabulates.

    summary = rate_distortion(model, x)     # x: (N, C, H, W) in [0, 1], C = 1 or 3
    summary["run"], summary["jpeg"], summary["webp"], summary["bd_rate"]

Every image is coded on its own (one .aekc container / one JPEG / one WebP file each, as `aekit compress --images`
writes them). Per point: bpp = 8 x file bytes / pixels (every header counted) and payload_bpp (aekit: the
range-coded payload; JPEG: the entropy-coded scan between the SOS header and EOI; WebP: the VP8 / VP8L bitstream
less its frame header), PSNR (dB; peak 255 on the 8-bit images, the same as peak 1 on value / 255) and MS-SSIM
(metrics/ms_ssim.py; images under 176 pixels a side get fewer scales), each the mean over the images, and the
mean encode and decode times. The originals are the 8-bit images round(255 x); the decoded ones are 8-bit too.
One run is one point (one lambda); `<codec>_bpp_at_run_<quality>` gives the rate JPEG / WebP need for the run's
PSNR (MS-SSIM), read off their curves (log-rate linear between settings), None outside their range.
"""

from __future__ import annotations

import io
import struct
import time

import numpy as np
import torch

from ...errors import ConfigError, DataError
from .images import image_quality, to_uint8
from .learned import LearnedCodec, _check_model, compress_learned, decompress_learned

QUALITIES = tuple(range(5, 100, 10))  # 5, 15, ..., 95: Pillow's quality sweep for the report


def jpeg_payload(blob: bytes) -> int:
    """Bytes of the entropy-coded scan(s): after the first SOS segment's header, before EOI."""
    i = 2
    while i < len(blob) - 4:
        marker, length = blob[i + 1], struct.unpack(">H", blob[i + 2:i + 4])[0]
        if marker == 0xDA:
            return len(blob) - (i + 2 + length) - 2
        i += 2 + length
    return len(blob)


def webp_payload(blob: bytes) -> int:
    """Bytes of the VP8 (lossy: less its 10-byte frame header) or VP8L (less its 5-byte header) bitstream."""
    i = 12
    while i + 8 <= len(blob):
        tag, size = blob[i:i + 4], struct.unpack("<I", blob[i + 4:i + 8])[0]
        if tag == b"VP8 ":
            return size - 10
        if tag == b"VP8L":
            return size - 5
        i += 8 + size + (size & 1)
    return len(blob)


def to_u8_images(x: torch.Tensor) -> list[np.ndarray]:
    """(N, C, H, W) in [0, 1] -> N arrays (H, W) or (H, W, 3) uint8 (round half up)."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ConfigError(f"rate-distortion points need images (N, 1 or 3, H, W); got shape {tuple(x.shape)}.")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise DataError(f"rate-distortion points need images in [0, 1] (value / 255); got values in [{lo:.4g}, {hi:.4g}].")
    return [to_uint8(x[i:i + 1]) for i in range(x.shape[0])]


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(a.astype(np.float64) / 255.0)
    return t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]  # (1, C, H, W)


def _row(a: np.ndarray, b: np.ndarray, nbytes: int, payload: int, encode_s: float, decode_s: float) -> dict:
    q = image_quality(_as_tensor(a), _as_tensor(b))
    pixels = a.shape[0] * a.shape[1]
    return {"bpp": 8 * nbytes / pixels, "payload_bpp": 8 * payload / pixels, "psnr": min(q["psnr"], 99.0),
            "ms_ssim": q["ms_ssim"], "encode_ms": 1e3 * encode_s, "decode_ms": 1e3 * decode_s}


def summarise(codec: str, setting, rows: list[dict]) -> dict:
    """The mean of each number over the images (PSNR: the mean of per-image PSNR, capped at 99 dB)."""
    keys = ("bpp", "payload_bpp", "psnr", "ms_ssim", "encode_ms", "decode_ms")
    return {"codec": codec, "setting": setting, **{k: float(np.mean([r[k] for r in rows])) for k in keys},
            "images": len(rows)}


def pillow_point(fmt: str, quality: int, images: list[np.ndarray]) -> dict:
    """One JPEG or WebP (method 6) setting over 8-bit images (H, W) or (H, W, 3)."""
    from PIL import Image

    fmt = fmt.upper()
    if fmt not in ("JPEG", "WEBP"):
        raise ConfigError(f"fmt must be 'JPEG' or 'WEBP'; got {fmt!r}.")
    rows = []
    for a in images:
        buf = io.BytesIO()
        t0 = time.perf_counter()
        Image.fromarray(a).save(buf, format=fmt, quality=int(quality), **({"method": 6} if fmt == "WEBP" else {}))
        t1 = time.perf_counter()
        blob = buf.getvalue()
        with Image.open(io.BytesIO(blob)) as im:
            b = np.asarray(im.convert("L" if a.ndim == 2 else "RGB"))
        t2 = time.perf_counter()
        rows.append(_row(a, b, len(blob), jpeg_payload(blob) if fmt == "JPEG" else webp_payload(blob), t1 - t0, t2 - t1))
    return summarise(fmt.lower(), int(quality), rows)


@torch.no_grad()
def learned_point(model, images: list[np.ndarray], *, codec: LearnedCodec | None = None, name: str = "run",
                  setting=None) -> dict:
    """A rate-trained model's point: each image compressed into its own container and decoded to 8 bits."""
    _check_model(model)
    codec = codec or LearnedCodec(model)
    rows = []
    for a in images:
        x = _as_tensor(a).float()
        t0 = time.perf_counter()
        blob = compress_learned(model, x, codec=codec)
        t1 = time.perf_counter()
        x_hat, header = decompress_learned(model, blob, codec=codec)
        t2 = time.perf_counter()
        rows.append(_row(a, to_uint8(x_hat), len(blob), header["payload_bytes"], t1 - t0, t2 - t1))
    return summarise(name, setting, rows)


def rate_distortion(model, x: torch.Tensor, *, qualities=QUALITIES, max_images: int = 32) -> dict:
    """{'run': point, 'jpeg': [points], 'webp': [points], 'images': n, 'ms_ssim_scales': m, 'size', 'channels',
    'jpeg_bpp_at_run_psnr', ...} on the first `max_images` images of x (N, C, H, W) in [0, 1]."""
    from ...metrics import ms_ssim_scales

    images = to_u8_images(x[:max_images])
    out = {"images": len(images), "ms_ssim_scales": ms_ssim_scales(*x.shape[2:]),
           "size": [int(x.shape[2]), int(x.shape[3])], "channels": int(x.shape[1]),
           "run": learned_point(model, images, setting=float(getattr(model.bottleneck, "distortion_weight", 1.0))),
           "jpeg": [pillow_point("JPEG", q, images) for q in qualities],
           "webp": [pillow_point("WEBP", q, images) for q in qualities]}
    for anchor in ("jpeg", "webp"):
        for quality in ("psnr", "ms_ssim"):
            out[f"{anchor}_bpp_at_run_{quality}"] = rate_at(out[anchor], quality, out["run"][quality])
    return out


def rate_at(points: list[dict], quality: str, value: float) -> float | None:
    """bpp (headers counted) of a codec's curve at a quality value: log-rate linear in quality between the two
    nearest settings; None outside the curve's range."""
    pts = sorted((p[quality], np.log(p["bpp"])) for p in points)
    q = np.array([p[0] for p in pts])
    keep = np.concatenate([[True], np.diff(q) > 0])
    q, lr = q[keep], np.array([p[1] for p in pts])[keep]
    if q.size < 2 or not q[0] <= value <= q[-1]:
        return None
    return float(np.exp(np.interp(value, q, lr)))
