"""Real bitstreams for the rate-trained bottlenecks ('entropy', 'hyperprior'): range coding with the learned CDFs.

    blob = compress_learned(model, x)              # x: (N, C, H, W), any H, W for a fully convolutional model
    x_hat, header = decompress_learned(model, blob)
    rate_bits(model, x)                            # the model's own estimate of the payload, in bits

Coding tables. For the factorized density of each channel c the coded values are the integers
k = round(y - m_c) in [-ceil(m_c - q_lo), ceil(q_hi - m_c)], q_lo/q_hi the learned tail quantiles,
plus one escape symbol for values outside (their probability is the density's tail mass). For
the hyperprior's y, each element's predicted scale is rounded (in log scale) to the nearest of
SCALE_LEVELS log-spaced scales, each with a table over [-ceil(6.2 s), ceil(6.2 s)] plus an escape. Every
table is turned into integer frequencies summing to 2^PRECISION with every symbol >= 1
(`integer_frequencies`), computed in float64 on the CPU from the model's parameters;
`codec_hash` (SHA-256 of the tables) goes into the container and the decoder refuses a file
whose tables it does not reproduce. Escaped values follow their stream as an Elias-gamma-style
code (bit length uniform over 64, then the bits in 16-bit chunks).

Coder: one constriction queue range coder per file (Bamler 2022), symbols in a fixed order: z
channel by channel (hyperprior), z's escapes, then y (channel by channel for 'entropy'; grouped by
scale index in raster order for 'hyperprior'), y's escapes. The decoder re-encodes what it decoded
and accepts only a payload identical to it (a truncated, extended or forged stream is refused).

Determinism: the decoded image is bit-identical to the encoder's `model.reconstruct` on the same
machine. Across machines it is bit-identical when both run on the CPU with the same torch build
and the same number of intra-op threads (torch.set_num_threads): the tables are float64 and
checked by hash, but the hyperprior's scale indices come from float32 convolutions, whose
summation order may differ between builds, thread counts and devices.
Balle et al. 2017, End-to-end optimized image compression; Balle et al. 2018, Variational image
compression with a scale hyperprior.
"""

from __future__ import annotations

import copy
import hashlib
import math

import numpy as np
import torch

from ...axes.entropy_models import (EntropyBottleneck, HyperpriorBottleneck, SCALE_LEVELS, bits, channels_first,
                                    from_channels_first, gaussian_box_probability, scale_table)
from ...backbones.conv import spatial_sizes
from ...errors import CheckpointError, ConfigError, DataError, ShapeError
from .codec import model_hash
from .container import MAX_SYMBOLS, VERSION_LEARNED, pack_container, unpack_container

PRECISION = 16  # integer frequencies sum to 2^16
MAX_HALF_WIDTH = 4096  # a table covers at most 2 * 4096 + 1 values (+ escape); wider values escape
GAUSS_TAIL = 6.2  # table half-width in scales: P(|Y| > 6.2 s) < 1e-9


def _constriction():
    try:
        import constriction
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("learned compression needs the 'constriction' package: pip install 'aekit[compression]'.") from None
    return constriction


# ---------------------------------------------------------------------- tables
def integer_frequencies(probs: np.ndarray, *, precision: int = PRECISION) -> np.ndarray:
    """Probabilities (L,) (any non-negative, finite; need not sum to 1) -> int64 frequencies (L,) summing to
    2^precision, every one >= 1 (each symbol stays codable); the rounding remainder goes to the largest."""
    p = np.nan_to_num(np.asarray(probs, dtype=np.float64), nan=0.0, posinf=0.0)
    p = np.clip(p, 0.0, None)
    total, n = 1 << precision, p.size
    if n < 1 or n >= total:
        raise DataError(f"a coding table needs 1 to {total - 1} symbols; got {n}.")
    mass = p.sum()
    p = p / mass if mass > 0 else np.full(n, 1.0 / n)
    freq = np.floor(p * (total - n)).astype(np.int64) + 1
    freq[int(np.argmax(freq))] += total - int(freq.sum())
    return freq


class Table:
    """One coding table: the values start .. start + L - 1 (symbols 0 .. L-1) and an escape symbol L."""

    def __init__(self, start: int, freqs: np.ndarray) -> None:
        self.start, self.freqs = int(start), np.asarray(freqs, dtype=np.int64)
        self.size = self.freqs.size - 1  # L coded values, then the escape
        self._model = None

    def model(self):
        if self._model is None:
            c = _constriction()
            self._model = c.stream.model.Categorical(self.freqs.astype(np.float64) / float(1 << PRECISION), perfect=False)
        return self._model

    def bits(self, values: np.ndarray) -> float:
        """Ideal code length of values under the table (escapes counted at the escape symbol's cost only)."""
        s = np.asarray(values, dtype=np.int64) - self.start
        s = np.where((s < 0) | (s >= self.size), self.size, s)
        return float(-np.log2(self.freqs[s] / float(1 << PRECISION)).sum())


@torch.no_grad()
def factorized_tables(density) -> list[Table]:
    """One Table per channel of a FactorizedDensity, in float64 on the CPU."""
    d = copy.deepcopy(density).to(device="cpu", dtype=torch.float64)
    q = d.quantiles.detach()[:, 0, :]  # (C, 3): lower tail, median, upper tail
    med = q[:, 1]
    lo = torch.ceil(med - q[:, 0]).clamp(0, MAX_HALF_WIDTH).to(torch.int64)  # (C,)
    hi = torch.ceil(q[:, 2] - med).clamp(0, MAX_HALF_WIDTH).to(torch.int64)
    width = int((lo + hi).max()) + 1
    k = torch.arange(width, dtype=torch.float64)[None, :] - lo[:, None].double()  # (C, W) offsets from the median
    probs = d.box_probability(med[:, None] + k).numpy()  # (C, W)
    tables = []
    for c in range(d.channels):
        n = int(lo[c] + hi[c]) + 1
        p = probs[c, :n]
        tail = max(1.0 - float(p.sum()), 0.0)
        tables.append(Table(-int(lo[c]), integer_frequencies(np.append(p, tail))))
    return tables


def gaussian_tables() -> list[Table]:
    """One Table per coding scale (scale_table()), zero-mean Gaussian convolved with a unit box, float64."""
    tables = []
    for s in scale_table(torch.float64):
        m = min(int(math.ceil(GAUSS_TAIL * float(s))), MAX_HALF_WIDTH)
        k = torch.arange(-m, m + 1, dtype=torch.float64)
        p = gaussian_box_probability(k, s).numpy()
        tables.append(Table(-m, integer_frequencies(np.append(p, max(1.0 - float(p.sum()), 0.0)))))
    return tables


def scale_indices(scales: torch.Tensor) -> torch.Tensor:
    """The coding scale of each element: the table scale nearest to sigma in log scale (clamped to the table); int64.
    The scales come from float32 convolutions; their float64 logarithms are compared with the table's midpoints."""
    log_table = torch.log(scale_table(torch.float64))
    mids = 0.5 * (log_table[1:] + log_table[:-1])  # (L - 1,) boundaries between neighbouring scales
    return torch.searchsorted(mids, torch.log(scales.detach().double().cpu()).contiguous())


def _hash_tables(kind: str, groups) -> str:
    h = hashlib.sha256(f"aekit-learned|{kind}|{PRECISION}|".encode())
    for tables in groups:
        for t in tables:
            h.update(np.int64(t.start).tobytes())
            h.update(np.int64(t.size).tobytes())
            h.update(t.freqs.astype("<i8").tobytes())
    return h.hexdigest()


class LearnedCodec:
    """The coding tables of a model's rate-trained bottleneck (computed once per model, deterministic)."""

    def __init__(self, model) -> None:
        b = model.bottleneck
        if isinstance(b, HyperpriorBottleneck):
            self.kind = "hyperprior"
            self.z_tables, self.y_tables = factorized_tables(b.hyper_density), gaussian_tables()
        elif isinstance(b, EntropyBottleneck):
            self.kind = "entropy"
            self.z_tables, self.y_tables = [], factorized_tables(b.density)
        else:
            raise ConfigError("learned compression needs a model with a rate-trained bottleneck ('entropy' or "
                              f"'hyperprior'); got bottleneck={model.ingredient('bottleneck')!r}.")
        self.hash = _hash_tables(self.kind, (self.z_tables, self.y_tables))


# ---------------------------------------------------------------------- symbol streams
def _encode_groups(encoder, groups, escapes: list) -> None:
    """groups: [(values int64 (n,), Table)]; escaped values are appended to `escapes` as (value, table)."""
    for values, table in groups:
        if values.size == 0:
            continue
        s = values - table.start
        out = (s < 0) | (s >= table.size)
        s = np.where(out, table.size, s).astype(np.int32)
        escapes.extend((int(v), table) for v in values[out])
        encoder.encode(s, table.model())


def _encode_escapes(encoder, escapes) -> None:
    c = _constriction()
    for value, table in escapes:
        side, e = (0, table.start - 1 - value) if value < table.start else (1, value - (table.start + table.size))
        n = (e + 1).bit_length()  # 1..64
        encoder.encode(np.array([side], dtype=np.int32), c.stream.model.Uniform(2))
        encoder.encode(np.array([n - 1], dtype=np.int32), c.stream.model.Uniform(64))
        rest, nbits = (e + 1) - (1 << (n - 1)), n - 1  # the bits below the leading one
        while nbits > 0:
            chunk = min(16, nbits)
            nbits -= chunk
            encoder.encode(np.array([(rest >> nbits) & ((1 << chunk) - 1)], dtype=np.int32),
                           c.stream.model.Uniform(1 << chunk))


def _decode_groups(decoder, groups) -> list[np.ndarray]:
    """groups: [(n, Table)] -> symbol arrays (escape symbols still marked as table.size)."""
    return [np.asarray(decoder.decode(table.model(), n), dtype=np.int64) if n else np.zeros(0, np.int64)
            for n, table in groups]


def _decode_escapes(decoder, symbols: list[np.ndarray], tables: list[Table]) -> list[np.ndarray]:
    c = _constriction()
    out = []
    for s, table in zip(symbols, tables):
        values = s + table.start
        for i in np.flatnonzero(s == table.size):
            side = int(decoder.decode(c.stream.model.Uniform(2), 1)[0])
            n = int(decoder.decode(c.stream.model.Uniform(64), 1)[0]) + 1
            rest, nbits = 0, n - 1
            while nbits > 0:
                chunk = min(16, nbits)
                nbits -= chunk
                rest = (rest << chunk) | int(decoder.decode(c.stream.model.Uniform(1 << chunk), 1)[0])
            e = (1 << (n - 1)) + rest - 1
            values[i] = table.start - 1 - e if side == 0 else table.start + table.size + e
        out.append(values)
    return out


def _y_groups_entropy(q: torch.Tensor, tables) -> list:
    rows = channels_first(q).numpy()  # (C, N * H * W)
    return [(rows[c], tables[c]) for c in range(rows.shape[0])]


def _y_groups_hyper(q: torch.Tensor, idx: torch.Tensor, tables) -> list:
    flat, fidx = q.reshape(-1).numpy(), idx.reshape(-1).numpy()
    return [(flat[fidx == j], tables[j]) for j in range(len(tables))]


def _encode_stream(codec: LearnedCodec, q_y: torch.Tensor, q_z: torch.Tensor | None, idx: torch.Tensor | None) -> bytes:
    c = _constriction()
    encoder = c.stream.queue.RangeEncoder()
    if codec.kind == "hyperprior":
        escapes: list = []
        _encode_groups(encoder, _y_groups_entropy(q_z, codec.z_tables), escapes)
        _encode_escapes(encoder, escapes)
        escapes = []
        _encode_groups(encoder, _y_groups_hyper(q_y, idx, codec.y_tables), escapes)
    else:
        escapes = []
        _encode_groups(encoder, _y_groups_entropy(q_y, codec.y_tables), escapes)
    _encode_escapes(encoder, escapes)
    return encoder.get_compressed().astype("<u4").tobytes()


# ---------------------------------------------------------------------- model side
def _check_model(model):
    b = model.bottleneck
    if not isinstance(b, (EntropyBottleneck, HyperpriorBottleneck)):
        raise ConfigError("learned compression needs a model with a rate-trained bottleneck ('entropy' or "
                          f"'hyperprior'); got bottleneck={model.ingredient('bottleneck')!r}. Use "
                          "aekit.tasks.compression.compress (quantizer + fitted histogram) for other models.")
    if model.uses_skips or model.num_classes:
        raise ConfigError("learned compression needs a decoder that works from the code alone (no skips, no labels).")
    return b


def _spatial(model) -> bool:
    return model.provides("spatial_code")


def _check_x(model, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ShapeError(f"x must be a floating-point torch.Tensor; got {type(x).__name__}.")
    if _spatial(model):
        c = model.input_shape[0]
        if x.dim() != 4 or x.shape[1] != c or min(x.shape[2:]) < 1:
            raise ShapeError(f"x has shape {tuple(x.shape)}; expected (batch, {c}, height, width) images with the "
                             f"model's {c} channel(s) (any height and width).")
    else:
        model.check_input(x, name="x")
    if not torch.isfinite(x).all():
        raise DataError("x holds NaN or infinite values.")
    return x


@torch.no_grad()
def _analyse(model, x: torch.Tensor):
    """(y, q_y, z, q_z, scale indices) of x in eval mode (what forward's eval path rounds)."""
    b = _check_model(model)
    model.eval()
    h, _ = model.encoder(x.to(next(model.parameters()).dtype))
    y = b.analysis(h)
    if isinstance(b, HyperpriorBottleneck):
        z = b.hyper(y)
        q_z = b.hyper_symbols(z)
        scales = b.scales(b.hyper_dequantize(q_z, dtype=y.dtype), y.shape[-2:])
        return y, b.symbols(y), z, q_z, scales
    return y, b.symbols(y), None, None, None


@torch.no_grad()
def rate_bits(model, x: torch.Tensor) -> float:
    """The model's estimated code length of x in bits: the sum over x of its eval-mode rate terms (float density,
    unquantized scales): what the training loss calls 'rate' ('rate_y' + 'rate_z')."""
    x = _check_x(model, x)
    b = _check_model(model)
    y, q, z, q_z, scales = _analyse(model, x)
    if isinstance(b, HyperpriorBottleneck):
        y_hat = q.to(y.dtype)
        z_hat = b.hyper_dequantize(q_z, dtype=z.dtype)
        rz = bits(from_channels_first(b.hyper_density.box_probability(channels_first(z_hat)), z_hat))
        return float(bits(gaussian_box_probability(y_hat, scales)).sum() + rz.sum())
    return float(bits(b.likelihood(b.dequantize(q, dtype=y.dtype))).sum())


def compress_learned(model, x: torch.Tensor, *, codec: LearnedCodec | None = None, scale: float | None = None,
                     offset: float | None = None) -> bytes:
    """x (N, C, H, W) (any H, W with a fully convolutional backbone; else the model's input shape) -> container bytes."""
    x = _check_x(model, x)
    codec = codec or LearnedCodec(model)
    y, q_y, _, q_z, scales = _analyse(model, x)
    idx = scale_indices(scales) if scales is not None else None
    payload = _encode_stream(codec, q_y.cpu(), None if q_z is None else q_z.cpu(), idx) if x.shape[0] else b""
    header = {"coder": codec.kind, "shape": [int(s) for s in x.shape[1:]], "count": int(x.shape[0]),
              "precision": PRECISION, "model_hash": model_hash(model), "codec_hash": codec.hash}
    if scale is not None and offset is not None:
        header.update(scale=float(scale), offset=float(offset))
    return pack_container(header, payload, version=VERSION_LEARNED)


def _expected_shapes(model, shape: list[int]) -> tuple[list[int], list[int]]:
    """The code shapes (y, z) the model gives an image of `shape` (checks the header against the model)."""
    b = model.bottleneck
    if not _spatial(model):
        if tuple(shape) != tuple(model.input_shape):
            raise CheckpointError(f"the file holds samples of shape {tuple(shape)}; this model takes {model.input_shape}.")
        return [model.latent_dim], []
    if len(shape) != 3 or shape[0] != model.input_shape[0]:
        raise CheckpointError(f"the file holds images of shape {tuple(shape)}; this model takes "
                              f"{model.input_shape[0]}-channel images.")
    hl, wl = spatial_sizes(shape[1], shape[2], model.decoder.levels)[-1]
    if isinstance(b, HyperpriorBottleneck):
        zh, zw = spatial_sizes(hl, wl, 2)[-1]
        return [model.latent_dim, hl, wl], [b.hyper_channels, zh, zw]
    return [model.latent_dim, hl, wl], []


@torch.no_grad()
def decompress_learned(model, data: bytes, *, codec: LearnedCodec | None = None,
                       where: str = "container") -> tuple[torch.Tensor, dict]:
    """Container bytes -> (reconstructions (N, C, H, W) in the model's units, header); one-line errors on bad files."""
    b = _check_model(model)
    codec = codec or LearnedCodec(model)
    header, payload = unpack_container(data, where=where, model_hash=model_hash(model), versions=(VERSION_LEARNED,))
    if header["codec_hash"] != codec.hash[:len(header["codec_hash"])]:
        raise CheckpointError(f"{where} was coded with other entropy tables (codec hash {header['codec_hash'][:12]}..., "
                              f"this machine computes {codec.hash[:12]}...); see the determinism conditions in "
                              "aekit.tasks.compression.learned.")
    if header["coder"] != codec.kind or header["precision"] != PRECISION:
        raise CheckpointError(f"{where} holds a {header['coder']!r} stream at precision {header['precision']}; this "
                              f"model codes {codec.kind!r} at {PRECISION}.")
    code_shape, hyper_shape = _expected_shapes(model, header["shape"])  # what this model gives images of that shape
    n = header["count"]
    if n * (math.prod(code_shape) + math.prod(hyper_shape or [0])) > MAX_SYMBOLS:
        raise DataError(f"{where} declares {n} images of shape {tuple(header['shape'])}: more code symbols than the "
                        f"limit {MAX_SYMBOLS}.")
    dtype = next(model.parameters()).dtype
    if n == 0:
        if payload:
            raise DataError(f"{where} is corrupted: a payload follows a header that declares no images.")
        return torch.zeros((0, *header["shape"]), dtype=dtype), header
    if len(payload) % 4:
        raise DataError(f"{where} is corrupted: a range-coded payload is a whole number of 32-bit words; "
                        f"got {len(payload)} bytes.")
    # every symbol costs at least -log2 of its table's largest probability: a payload too short for the declared
    # count is refused before anything is decoded (1e-4: the coder's own fixed point; 64 bits: its final words)
    per_y = n * math.prod(code_shape[1:]) if len(code_shape) == 3 else n
    need = per_y * (sum(_min_bits(t) for t in codec.y_tables) if codec.kind == "entropy"
                    else min(_min_bits(t) for t in codec.y_tables) * code_shape[0])
    need += n * math.prod(hyper_shape[1:]) * sum(_min_bits(t) for t in codec.z_tables) if hyper_shape else 0
    if need > 8 * len(payload) + 64:
        raise DataError(f"{where} is corrupted: its {len(payload)}-byte payload cannot hold {n} images of shape "
                        f"{tuple(header['shape'])} (at least {math.ceil(need / 8)} bytes).")
    from ...memory_budget import check_budget

    check_budget(n * (math.prod(code_shape) + math.prod(hyper_shape or [0])) * 24 + 3 * n * math.prod(header["shape"]) * 4,
                 what=f"decoding {where} ({n} images of shape {tuple(header['shape'])})")
    c = _constriction()
    model.eval()
    try:
        decoder = c.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
        q_z = idx = None
        if codec.kind == "hyperprior":
            zc = hyper_shape[0]
            per = n * hyper_shape[1] * hyper_shape[2]
            sym = _decode_groups(decoder, [(per, t) for t in codec.z_tables])
            rows = _decode_escapes(decoder, sym, codec.z_tables)
            q_z = from_channels_first(torch.from_numpy(np.stack(rows)), torch.empty((n, zc, *hyper_shape[1:]), device="meta"))
            scales = b.scales(b.hyper_dequantize(q_z, dtype=dtype), code_shape[1:])
            idx = scale_indices(scales)
            counts = [int((idx == j).sum()) for j in range(SCALE_LEVELS)]
            sym = _decode_groups(decoder, [(counts[j], codec.y_tables[j]) for j in range(SCALE_LEVELS)])
            vals = _decode_escapes(decoder, sym, codec.y_tables)
            flat = np.empty(idx.numel(), dtype=np.int64)
            fidx = idx.reshape(-1).numpy()
            for j in range(SCALE_LEVELS):
                flat[fidx == j] = vals[j]
            q_y = torch.from_numpy(flat).reshape(n, *code_shape)
        else:
            per = n * math.prod(code_shape[1:])
            sym = _decode_groups(decoder, [(per, t) for t in codec.y_tables])
            rows = _decode_escapes(decoder, sym, codec.y_tables)
            q_y = from_channels_first(torch.from_numpy(np.stack(rows)), torch.empty((n, *code_shape), device="meta"))
    except (DataError, CheckpointError):
        raise
    except Exception as exc:  # constriction raises plain exceptions on invalid streams
        raise DataError(f"{where} is corrupted: the range-coded payload could not be decoded "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}).") from None
    # only a payload that is exactly the encoding of what it decoded to is accepted
    if _encode_stream(codec, q_y, q_z, idx) != bytes(payload):
        raise DataError(f"{where} is corrupted: the payload is not a valid encoding of {n} images (truncated, "
                        "extended or damaged).")
    y_hat = b.dequantize(q_y, dtype=dtype) if isinstance(b, EntropyBottleneck) else q_y.to(dtype)
    if _spatial(model):
        params = model.decoder(y_hat, (), output_size=header["shape"][1:])
    else:
        params = model.decoder(y_hat, ())
    return model.likelihood.mean(params), header


def _min_bits(table: Table) -> float:
    return -math.log2(min(float(table.freqs.max()) / float(1 << PRECISION) * (1 + 1e-4), 1.0))


def payload_bits(blob: bytes) -> int:
    """8 x the payload bytes of a container (the header excluded)."""
    header, payload = unpack_container(blob, versions=(VERSION_LEARNED,))
    return 8 * len(payload)
