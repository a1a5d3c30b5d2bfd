"""Entropy coding of quantized codes: a range coder with a fitted per-dimension model, or a
general-purpose compressor as the fallback.

method "range": symbol s of latent dimension d costs -log2 p_d(s) bits (plus a few bytes per
  stream), where p_d is the Laplace-smoothed histogram of dimension d over the training codes:
  p_d(s) = (count_d(s) + alpha) / (sum_s count_d(s) + alpha * L). The range coder is
  `constriction` (Bamler 2022, "Understanding entropy coding with asymmetric numeral systems
  (ANS): a statistician's perspective"; a queue-based range coder with 32-bit words).
  Symbols are coded dimension by dimension (all images' dimension 0, then dimension 1, ...),
  each dimension with its own fixed model.
method "lzma" / "zlib": the same dimension-major symbol bytes (uint8 up to 8 bits, else
  little-endian uint16) through the standard library's compressors; no model needed.

`encode_symbols` and `decode_symbols` are exact inverses; `ideal_bits` is the model's code
length, the bound the range coder gets within a few bytes of.
"""

from __future__ import annotations

import lzma
import math
import zlib

import numpy as np

from ...errors import ConfigError, DataError, check_choice

METHODS = ("range", "lzma", "zlib")
DEFLATE_MAX_RATIO = 1032  # deflate's largest expansion (258-byte matches in ~2 bits)
RANGE_SLACK_BITS = 96  # a range coder's stream ends with up to two 32-bit words of state, plus rounding


def _constriction():
    try:
        import constriction
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("method 'range' needs the 'constriction' package: pip install 'aekit[compression]' "
                          "(or pick method 'lzma' or 'zlib').") from None
    return constriction


def fit_counts(symbols: np.ndarray, *, levels: int) -> np.ndarray:
    """Per-dimension histogram of symbols (N, D) over {0..levels-1}: (D, levels) int64."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.ndim != 2:
        raise DataError(f"symbols must have shape (N, D); got {symbols.shape}.")
    if symbols.size and (symbols.min() < 0 or symbols.max() >= levels):
        raise DataError(f"symbols must lie in [0, {levels - 1}].")
    n, d = symbols.shape
    flat = symbols + np.arange(d, dtype=np.int64) * levels  # (N, D) offsets per dimension
    return np.bincount(flat.reshape(-1), minlength=d * levels).reshape(d, levels)


def probabilities(counts: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """Laplace-smoothed model (D, L) float64 from histogram counts (D, L); every symbol > 0."""
    if not alpha > 0:
        raise ConfigError(f"alpha (the Laplace smoothing count) must be > 0; got {alpha!r}.")
    c = np.asarray(counts, dtype=np.float64) + float(alpha)
    return c / c.sum(axis=1, keepdims=True)


def ideal_bits(symbols: np.ndarray, counts: np.ndarray, *, alpha: float = 1.0) -> float:
    """-sum log2 p_d(s): the code length under the model, in bits (the range coder's target)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size == 0:
        return 0.0
    logp = np.log2(probabilities(counts, alpha=alpha))  # (D, L)
    return float(-logp[np.arange(symbols.shape[1])[None, :], symbols].sum())


def _symbol_bytes(symbols: np.ndarray, levels: int) -> bytes:
    dtype = np.uint8 if levels <= 256 else np.dtype("<u2")
    return np.ascontiguousarray(symbols.T).astype(dtype).tobytes()  # dimension-major


def encode_symbols(symbols: np.ndarray, *, levels: int, method: str = "range", counts: np.ndarray | None = None,
                   alpha: float = 1.0) -> bytes:
    """Symbols (N, D) int in [0, levels) -> payload bytes. counts (D, levels) is the model for 'range'."""
    check_choice("method", method, METHODS)
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.ndim != 2:
        raise DataError(f"symbols must have shape (N, D); got {symbols.shape}.")
    if symbols.size and (symbols.min() < 0 or symbols.max() >= levels):
        raise DataError(f"symbols must lie in [0, {levels - 1}].")
    if method == "lzma":
        return lzma.compress(_symbol_bytes(symbols, levels), format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)
    if method == "zlib":
        return zlib.compress(_symbol_bytes(symbols, levels), 9)
    probs = _check_model(counts, symbols.shape[1], levels, alpha)
    if symbols.size == 0:
        return b""
    c = _constriction()
    encoder = c.stream.queue.RangeEncoder()
    for d in range(symbols.shape[1]):  # one fixed model per dimension, all images at once
        model = c.stream.model.Categorical(probs[d], perfect=False)
        encoder.encode(symbols[:, d].astype(np.int32), model)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_symbols(payload: bytes, *, n: int, d: int, levels: int, method: str = "range",
                   counts: np.ndarray | None = None, alpha: float = 1.0) -> np.ndarray:
    """Inverse of encode_symbols: payload -> symbols (n, d) int64; DataError on malformed data."""
    check_choice("method", method, METHODS)
    if n == 0 or d == 0:
        if method == "range" and payload:
            raise DataError("the payload holds data but the header declares no symbols.")
        if method != "range":
            _inflate(payload, method, 0)
        return np.zeros((n, d), dtype=np.int64)
    if method in ("lzma", "zlib"):
        itemsize = 1 if levels <= 256 else 2
        if method == "zlib" and n * d * itemsize > DEFLATE_MAX_RATIO * len(payload) + 64:
            raise DataError(f"the zlib payload ({len(payload)} bytes) cannot hold the {n * d * itemsize} bytes of "
                            f"symbols the header declares (deflate expands at most {DEFLATE_MAX_RATIO}:1).")
        raw = _inflate(payload, method, n * d * itemsize)
        sym = np.frombuffer(raw, dtype=np.uint8 if itemsize == 1 else np.dtype("<u2")).astype(np.int64)
        if sym.size and sym.max() >= levels:
            raise DataError(f"the payload holds symbols outside [0, {levels - 1}].")
        return sym.reshape(d, n).T.copy()
    probs = _check_model(counts, d, levels, alpha)
    if len(payload) % 4:
        raise DataError(f"a range-coded payload is a whole number of 32-bit words; got {len(payload)} bytes.")
    # every sample costs at least sum_d -log2 max_s p_d(s) bits: a payload too short for n samples is forged
    # (1e-4: slack for the coder's fixed-point probabilities; RANGE_SLACK_BITS: its final words)
    min_bits = n * float(-np.log2(np.minimum(probs.max(axis=1) * (1 + 1e-4), 1.0)).sum())
    if min_bits > 8 * len(payload) + RANGE_SLACK_BITS:
        raise DataError(f"the range-coded payload ({len(payload)} bytes) cannot hold {n} samples: this codec's model "
                        f"needs at least {math.ceil(min_bits / 8)} bytes for them.")
    c = _constriction()
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    out = np.empty((n, d), dtype=np.int64)
    try:
        decoder = c.stream.queue.RangeDecoder(words)
        for j in range(d):
            model = c.stream.model.Categorical(probs[j], perfect=False)
            out[:, j] = decoder.decode(model, n)
    except Exception as exc:  # constriction raises plain exceptions on invalid streams
        raise DataError(f"the range-coded payload could not be decoded ({type(exc).__name__}: {exc}).") from None
    # the decoder reads past a short stream and stops before a long one: only a payload that is exactly the
    # encoding of what it decoded to is accepted (truncated, padded, random or miscounted payloads are refused)
    if encode_symbols(out, levels=levels, method="range", counts=counts, alpha=alpha) != bytes(payload):
        raise DataError(f"the range-coded payload is not a valid encoding of {n} samples (truncated, extended, "
                        "damaged or a wrong count in the header).")
    return out


def _inflate(payload: bytes, method: str, expected: int) -> bytes:
    """Decompress at most expected + 1 bytes (no decompression bombs); exact length or DataError."""
    try:
        if method == "zlib":
            dec = zlib.decompressobj()
            raw = dec.decompress(payload, expected + 1)
            done = dec.eof and not dec.unused_data
        else:
            dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            raw = dec.decompress(payload, max_length=expected + 1)
            done = dec.eof and not dec.unused_data
    except (zlib.error, lzma.LZMAError, EOFError) as exc:
        raise DataError(f"the {method} payload is corrupted ({exc}).") from None
    if len(raw) != expected or not done:
        raise DataError(f"the {method} payload holds {'more' if len(raw) > expected else 'fewer'} bytes than the "
                        f"{expected} the header declares, or is truncated.")
    return raw


def _check_model(counts, d: int, levels: int, alpha: float) -> np.ndarray:
    if counts is None:
        raise ConfigError("method 'range' needs the fitted model counts (D, levels).")
    counts = np.asarray(counts)
    if counts.shape != (d, levels):
        raise DataError(f"the entropy model has shape {counts.shape}; expected ({d}, {levels}).")
    if counts.size and (not np.all(np.isfinite(counts)) or counts.min() < 0):
        raise DataError("the entropy model's counts must be finite and non-negative.")
    return probabilities(counts, alpha=alpha)
