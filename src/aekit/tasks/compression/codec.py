"""Lossy compression with a trained autoencoder: encode -> quantize -> entropy-code -> container.

    codec = fit_codec(model, x_train, bits=6)          # quantizer range + per-dimension histogram
    blob = compress(model, x, codec, method="range")   # container bytes
    x_hat, header = decompress(model, blob, codec)     # (N, *input_shape) reconstructions
    compression_stats(x, x_hat, len(blob), header)      # bytes per image, bits per pixel, PSNR, SSIM

The codec (a `UniformQuantizer` fitted on the training codes and the Laplace-smoothed symbol
histogram the range coder uses) is side information shared by encoder and decoder, like the
decoder's weights: `aekit compress` keeps it next to the run in
RUN_DIR/compression/codec-<bits>bit.safetensors and each container records its hash and the
model's hash, so a file decodes only with the model and codec that wrote it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import CheckpointError, ConfigError, DataError
from .container import pack_container, unpack_container
from .entropy import METHODS, decode_symbols, encode_symbols, fit_counts, ideal_bits
from .quantize import UniformQuantizer, check_bits

CODEC_DIR = "compression"


@dataclass
class Codec:
    """A fitted quantizer and its entropy model: counts (D, 2^bits) int64, Laplace count alpha."""

    quantizer: UniformQuantizer
    counts: np.ndarray
    alpha: float = 1.0

    @property
    def bits(self) -> int:
        return self.quantizer.bits

    @property
    def hash(self) -> str:
        """SHA-256 over bits, alpha, the ranges and the counts: identifies the codec in containers."""
        h = hashlib.sha256(f"aekit-codec|{self.bits}|{float(self.alpha)!r}|".encode())
        for arr in (self.quantizer.lo.astype("<f8"), self.quantizer.hi.astype("<f8"), self.counts.astype("<i8")):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def save(self, path) -> Path:
        from ...checkpoint import atomic_write_bytes, tensors_to_bytes

        tensors = {"lo": torch.from_numpy(self.quantizer.lo.copy()), "hi": torch.from_numpy(self.quantizer.hi.copy()),
                   "counts": torch.from_numpy(self.counts.astype(np.int64)),
                   "bits": torch.tensor(self.bits, dtype=torch.int64),
                   "alpha": torch.tensor(float(self.alpha), dtype=torch.float64)}
        path = Path(path)
        atomic_write_bytes(path, tensors_to_bytes(tensors))
        return path

    @classmethod
    def load(cls, path) -> "Codec":
        from ...checkpoint import read_tensors

        t = read_tensors(path)  # verifies the embedded checksum
        try:
            quantizer = UniformQuantizer(lo=t["lo"].numpy(), hi=t["hi"].numpy(), bits=int(t["bits"]))
            counts = t["counts"].numpy().astype(np.int64)
            alpha = float(t["alpha"])
        except (KeyError, ConfigError, DataError) as exc:
            raise CheckpointError(f"codec file {str(path)!r} is not a valid aekit codec ({exc}).") from None
        if counts.shape != (quantizer.dim, quantizer.levels):
            raise CheckpointError(f"codec file {str(path)!r} has counts of shape {counts.shape}; "
                                  f"expected ({quantizer.dim}, {quantizer.levels}).")
        return cls(quantizer=quantizer, counts=counts, alpha=alpha)


def _check_decodable(model) -> None:
    if model.uses_skips:
        raise ConfigError("compression needs a decoder that works from the code alone; this model uses U-Net "
                          "skip connections (skips=True). Train it with skips off or use an mlp/conv backbone.")


@torch.no_grad()
def encode_codes(model, x: torch.Tensor, *, batch_size: int = 1000) -> np.ndarray:
    """Deterministic codes (N, D) float64 of x (eval mode: no corruption, no noise, posterior means)."""
    model.eval()
    if x.shape[0] == 0:
        return np.zeros((0, model.latent_dim))
    z = torch.cat([model.encode(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    return z.double().cpu().numpy()


def fit_codec(model, x_train: torch.Tensor, *, bits: int, alpha: float = 1.0) -> Codec:
    """Fit the quantizer range and the per-dimension symbol histogram on training data x_train."""
    _check_decodable(model)
    bits = check_bits(bits)
    z = encode_codes(model, x_train)  # (N, D)
    quantizer = UniformQuantizer.fit(z, bits=bits)
    counts = fit_counts(quantizer.quantize(z), levels=quantizer.levels)
    return Codec(quantizer=quantizer, counts=counts, alpha=float(alpha))


def model_hash(model) -> str:
    """SHA-256 of the model's configuration (canonical JSON) and of its weights."""
    from ...checkpoint import payload_sha256

    # a model loaded from an earlier release's config (migrated on load) keeps the hash its containers carry
    config = json.dumps(getattr(model, "source_config", None) or model.config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{config}|{payload_sha256(model.state_dict())}".encode()).hexdigest()


def compress(model, x: torch.Tensor, codec: Codec, *, method: str = "range", scale: float | None = None,
             offset: float | None = None) -> bytes:
    """x: (N, *input_shape) in the model's units -> container bytes (see container.py)."""
    from ...errors import check_choice

    check_choice("method", method, METHODS)
    _check_decodable(model)
    model.check_input(x, name="x")  # the whole shape in any message
    if codec.quantizer.dim != model.latent_dim:
        raise ConfigError(f"the codec quantizes {codec.quantizer.dim} dimensions but the model's code has {model.latent_dim}.")
    symbols = codec.quantizer.quantize(encode_codes(model, x))  # (N, D)
    payload = encode_symbols(symbols, levels=codec.quantizer.levels, method=method, counts=codec.counts,
                             alpha=codec.alpha)
    header = {"shape": list(model.input_shape), "count": int(x.shape[0]), "latent_dim": int(model.latent_dim),
              "bits": codec.bits, "method": method, "alpha": float(codec.alpha), "model_hash": model_hash(model),
              "codec_hash": codec.hash}
    if scale is not None and offset is not None:
        header.update(scale=float(scale), offset=float(offset))
    return pack_container(header, payload)


@torch.no_grad()
def decompress(model, data: bytes, codec: Codec, *, where: str = "container",
               batch_size: int = 1000) -> tuple[torch.Tensor, dict]:
    """Container bytes -> (reconstructions (N, *input_shape) in the model's units, header)."""
    _check_decodable(model)
    header, payload = unpack_container(data, where=where, model_hash=model_hash(model), codec_hash=codec.hash)
    if tuple(header["shape"]) != tuple(model.input_shape) or header["latent_dim"] != model.latent_dim:
        raise CheckpointError(f"{where} holds shape {tuple(header['shape'])} / latent_dim {header['latent_dim']}, "
                              f"but the model has {tuple(model.input_shape)} / {model.latent_dim}.")
    if header["bits"] != codec.bits:
        raise CheckpointError(f"{where} was coded with {header['bits']} bits; this codec has {codec.bits}.")
    n, d = header["count"], header["latent_dim"]
    from ...memory_budget import check_budget

    # symbols (int64) and codes (float64), then the reconstructions (float32) and their concatenation
    check_budget(n * d * 16 + 2 * n * math.prod(header["shape"]) * 4,
                 what=f"decoding {where} ({n} samples of shape {tuple(header['shape'])})")
    symbols = decode_symbols(payload, n=n, d=d, levels=2 ** header["bits"],
                             method=header["method"], counts=codec.counts, alpha=header["alpha"])
    z = torch.from_numpy(codec.quantizer.dequantize(symbols))  # (N, D)
    model.eval()
    dtype = next(model.parameters()).dtype
    if z.shape[0] == 0:
        return torch.zeros((0, *model.input_shape)), header
    x_hat = torch.cat([model.decode(z[i:i + batch_size].to(dtype)) for i in range(0, z.shape[0], batch_size)])
    return x_hat, header


def compression_stats(x: torch.Tensor, x_hat: torch.Tensor, *, file_bytes: int, payload_bytes: int,
                      image_shape: tuple | None = None) -> dict:
    """Bytes per image, bits per pixel (payload only, and with the container's header), PSNR, SSIM.

    Pixels per image are H * W for images (C, H, W) (per-pixel rate over all channels), and the
    number of values otherwise ('bits per dimension').
    """
    from ...metrics import reconstruction_metrics, ssim

    n = int(x.shape[0])
    if n == 0:
        raise DataError("no samples to measure.")
    shape = tuple(image_shape or x.shape[1:])
    pixels = shape[-2] * shape[-1] if len(shape) == 3 else math.prod(shape)
    rec = reconstruction_metrics(x, x_hat.clamp(0, 1) if float(x.min()) >= 0 and float(x.max()) <= 1 else x_hat)
    out = {"images": n, "file_bytes": int(file_bytes), "payload_bytes": int(payload_bytes),
           "bytes_per_image": payload_bytes / n, "bpp": 8 * payload_bytes / (n * pixels),
           "bpp_with_header": 8 * file_bytes / (n * pixels), "psnr": rec["psnr"], "mse_per_pixel": rec["mse_per_pixel"]}
    if len(shape) == 3 and rec["bce_per_image"] is not None:
        out["ssim"] = ssim(x, x_hat.clamp(0, 1))
    return out


def code_length(model, x: torch.Tensor, codec: Codec) -> float:
    """The entropy model's ideal code length of x's symbols in bits (what 'range' achieves, to a few bytes)."""
    symbols = codec.quantizer.quantize(encode_codes(model, x))
    return ideal_bits(symbols, codec.counts, alpha=codec.alpha)
