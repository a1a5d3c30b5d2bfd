"""The .aekc container: a versioned, self-checking file for compressed codes.

Layout (all integers big-endian):

    magic        4 bytes   b"AEKC"
    version      u16       1
    header_len   u32       length of the header (at most 64 KiB)
    header       JSON      UTF-8 object, fields below
    header_crc   u32       CRC-32 of the header bytes
    payload      payload_bytes bytes (exactly; nothing may follow)

Header fields: shape (the per-sample input shape), count (samples), latent_dim, bits, method
(range | lzma | zlib), alpha (Laplace count of the range coder's model), model_hash (SHA-256 of
the model's config and weights: a file only decodes with the model that wrote it), codec_hash
(SHA-256 of the fitted quantizer and entropy model), payload_bytes, payload_sha256, and
optionally scale / offset (raw = x * scale + offset, for data loaded from raw units; scale in
(0, 1e30], |offset| <= 1e30). Sizes are bounded twice: by the fixed limits below, and, before
decoding, by the memory budget (aekit.memory_budget) and by what the payload can hold
(codec.decompress).

Version 2 (the learned entropy coder, learned.py) has the same framing but a compact binary
header (48 bytes without scale / offset: small images pay little for it), all big-endian:

    coder u8 (0 entropy, 1 hyperprior) | precision u8 | flags u8 (bit 0: scale and offset follow)
    ndim u8 | shape ndim x u32 (one sample: (C, H, W) of any H, W for a fully convolutional model)
    count u32 | model_hash 8 bytes | codec_hash 8 bytes | payload_bytes u32 | payload_sha256 8 bytes
    [scale f64 | offset f64]

The hashes are 64-bit prefixes of the SHA-256 digests (16 hex digits in the header dict):
enough to tell models, tables and damaged payloads apart (the decoder also re-encodes what it
decoded and accepts only an identical payload). Readers say which versions they take
(`versions=`): version-1 files keep decoding with codec.decompress, version-2 files with
learned.decompress_learned.

`read_container` trusts nothing: every field is type- and range-checked, declared sizes are
bounded before anything is allocated, and every failure is an aekit error (DataError for a
damaged or foreign file, CheckpointError for a file written by another model).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from pathlib import Path

from ...errors import CheckpointError, DataError
from .entropy import METHODS
from .quantize import MAX_BITS

MAGIC = b"AEKC"
VERSION = 1  # the quantizer + fitted histogram codec (codec.py)
VERSION_LEARNED = 2  # the learned entropy models (learned.py)
SUPPORTED_VERSIONS = (1, 2)
READERS = {1: "aekit.tasks.compression.decompress", 2: "aekit.tasks.compression.decompress_learned"}
CODERS = ("entropy", "hyperprior")
MAX_PRECISION = 24
MAX_HEADER_BYTES = 64 * 1024
MAX_FILE_BYTES = 2 ** 32  # 4 GiB
MAX_SYMBOLS = 2 ** 26  # count * latent_dim: 64 M symbols (1 M images x 64 dims) per file; the decoder holds them as int64
MAX_ELEMENTS = 2 ** 31  # count * prod(shape): the decoded array
MAX_SCALE = 1e30  # |scale|, |offset|: raw = x * scale + offset stays finite in float32 for any |x| < 3e8
_PREFIX = struct.Struct(">4sHI")  # magic, version, header_len


def _hex64(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _int(value, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_header(header, *, where: str = "container") -> dict:
    """Validate every header field's type and range; returns the header. DataError otherwise."""
    def bad(msg):
        raise DataError(f"{where}: invalid header: {msg}.")

    if not isinstance(header, dict):
        bad("not a JSON object")
    required = ("shape", "count", "latent_dim", "bits", "method", "alpha", "model_hash", "codec_hash",
                "payload_bytes", "payload_sha256")
    missing = [k for k in required if k not in header]
    if missing:
        bad(f"missing field(s) {missing}")
    shape = header["shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3 or not all(_int(s, 1, 2 ** 20) for s in shape):
        bad(f"shape must be a list of 1 to 3 positive integers; got {shape!r}")
    if not _int(header["count"], 0, MAX_SYMBOLS):
        bad(f"count must be an integer in [0, {MAX_SYMBOLS}]; got {header['count']!r}")
    if not _int(header["latent_dim"], 1, 2 ** 20):
        bad(f"latent_dim must be a positive integer; got {header['latent_dim']!r}")
    if not _int(header["bits"], 1, MAX_BITS):
        bad(f"bits must be an integer in [1, {MAX_BITS}]; got {header['bits']!r}")
    if header["method"] not in METHODS:
        bad(f"method must be one of {', '.join(map(repr, METHODS))}; got {header['method']!r}")
    if not _number(header["alpha"]) or not header["alpha"] > 0:
        bad(f"alpha must be a positive number; got {header['alpha']!r}")
    for key in ("model_hash", "codec_hash", "payload_sha256"):
        if not _hex64(header[key]):
            bad(f"{key} must be 64 lowercase hex digits")
    if not _int(header["payload_bytes"], 0, MAX_FILE_BYTES):
        bad(f"payload_bytes must be an integer in [0, {MAX_FILE_BYTES}]; got {header['payload_bytes']!r}")
    _check_scale(header, bad)
    if header["count"] * header["latent_dim"] > MAX_SYMBOLS:
        bad(f"count x latent_dim = {header['count'] * header['latent_dim']} exceeds the limit {MAX_SYMBOLS}")
    if header["count"] * math.prod(shape) > MAX_ELEMENTS:
        bad(f"count x prod(shape) = {header['count'] * math.prod(shape)} exceeds the limit {MAX_ELEMENTS}")
    return header


def _hex(value, n: int) -> bool:
    return isinstance(value, str) and len(value) == n and all(c in "0123456789abcdef" for c in value)


_V2_HEAD = struct.Struct(">BBBB")  # coder, precision, flags, ndim
_V2_TAIL = struct.Struct(">I8s8sI8s")  # count, model_hash, codec_hash, payload_bytes, payload_sha256
_V2_SCALE = struct.Struct(">dd")
HASH_PREFIX = 16  # hex digits of each hash a version-2 header keeps


def check_header_learned(header, *, where: str = "container") -> dict:
    """Validate a version-2 header dict (learned entropy coder); DataError otherwise.
    Hashes may be given whole (64 hex digits, as the writer has them) or as the 16-digit prefixes the file keeps."""
    def bad(msg):
        raise DataError(f"{where}: invalid header: {msg}.")

    if not isinstance(header, dict):
        bad("not a dict")
    required = ("coder", "shape", "count", "precision", "model_hash", "codec_hash", "payload_bytes", "payload_sha256")
    missing = [k for k in required if k not in header]
    if missing:
        bad(f"missing field(s) {missing}")
    if header["coder"] not in CODERS:
        bad(f"coder must be one of {', '.join(map(repr, CODERS))}; got {header['coder']!r}")
    shape = header["shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3 or not all(_int(v, 1, 2 ** 20) for v in shape):
        bad(f"shape must be a list of 1 to 3 positive integers up to 2^20; got {shape!r}")
    if not _int(header["count"], 0, MAX_SYMBOLS):
        bad(f"count must be an integer in [0, {MAX_SYMBOLS}]; got {header['count']!r}")
    if not _int(header["precision"], 8, MAX_PRECISION):
        bad(f"precision must be an integer in [8, {MAX_PRECISION}]; got {header['precision']!r}")
    for key in ("model_hash", "codec_hash", "payload_sha256"):
        if not (_hex(header[key], 64) or _hex(header[key], HASH_PREFIX)):
            bad(f"{key} must be 64 (or {HASH_PREFIX}) lowercase hex digits")
    if not _int(header["payload_bytes"], 0, MAX_FILE_BYTES - 1):
        bad(f"payload_bytes must be an integer in [0, {MAX_FILE_BYTES - 1}]; got {header['payload_bytes']!r}")
    _check_scale(header, bad)
    if header["count"] * math.prod(shape) > MAX_ELEMENTS:
        bad(f"count x prod(shape) = {header['count'] * math.prod(shape)} exceeds the limit {MAX_ELEMENTS}")
    return header


def _pack_header_learned(header: dict) -> bytes:
    scaled = "scale" in header
    out = _V2_HEAD.pack(CODERS.index(header["coder"]), header["precision"], int(scaled), len(header["shape"]))
    out += struct.pack(f">{len(header['shape'])}I", *header["shape"])
    out += _V2_TAIL.pack(header["count"], *(bytes.fromhex(header[k][:HASH_PREFIX]) for k in ("model_hash", "codec_hash")),
                         header["payload_bytes"], bytes.fromhex(header["payload_sha256"][:HASH_PREFIX]))
    if scaled:
        out += _V2_SCALE.pack(float(header["scale"]), float(header["offset"]))
    return out


def _unpack_header_learned(head: bytes, *, where: str) -> dict:
    def bad(msg):
        raise DataError(f"{where}: invalid header: {msg}.")

    if len(head) < _V2_HEAD.size:
        bad(f"{len(head)} bytes, too short")
    coder, precision, flags, ndim = _V2_HEAD.unpack_from(head)
    if coder >= len(CODERS) or flags > 1 or not 1 <= ndim <= 3:
        bad(f"coder {coder}, flags {flags} or ndim {ndim} out of range")
    size = _V2_HEAD.size + 4 * ndim + _V2_TAIL.size + (_V2_SCALE.size if flags else 0)
    if len(head) != size:
        bad(f"{len(head)} bytes where its fields take {size}")
    shape = list(struct.unpack_from(f">{ndim}I", head, _V2_HEAD.size))
    count, mh, ch, nbytes, ph = _V2_TAIL.unpack_from(head, _V2_HEAD.size + 4 * ndim)
    header = {"coder": CODERS[coder], "precision": precision, "shape": shape, "count": count, "model_hash": mh.hex(),
              "codec_hash": ch.hex(), "payload_bytes": nbytes, "payload_sha256": ph.hex()}
    if flags:
        header["scale"], header["offset"] = _V2_SCALE.unpack_from(head, size - _V2_SCALE.size)
    return check_header_learned(header, where=where)


def _check_scale(header: dict, bad) -> None:
    for key in ("scale", "offset"):
        if key in header and not _number(header[key]):
            bad(f"{key} must be a finite number; got {header[key]!r}")
    if ("scale" in header) != ("offset" in header):
        bad("scale and offset come together")
    if "scale" in header and not 0 < header["scale"] <= MAX_SCALE:
        bad(f"scale must be in (0, {MAX_SCALE:g}] (raw = x * scale + offset); got {header['scale']!r}")
    if "offset" in header and not abs(header["offset"]) <= MAX_SCALE:
        bad(f"offset must be in [-{MAX_SCALE:g}, {MAX_SCALE:g}]; got {header['offset']!r}")


HEADER_CHECKS = {1: check_header, 2: check_header_learned}


def pack_container(header: dict, payload: bytes, *, version: int = VERSION) -> bytes:
    """Header fields (payload_bytes and payload_sha256 are filled in) + payload -> container bytes."""
    if version not in SUPPORTED_VERSIONS:
        raise DataError(f"container version must be one of {SUPPORTED_VERSIONS}; got {version!r}.")
    header = dict(header)
    header["payload_bytes"] = len(payload)
    header["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    HEADER_CHECKS[version](header, where="pack_container")
    if version == VERSION_LEARNED:
        head = _pack_header_learned(header)
    else:
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(head) > MAX_HEADER_BYTES:
        raise DataError(f"the container header is {len(head)} bytes; the limit is {MAX_HEADER_BYTES}.")
    return _PREFIX.pack(MAGIC, version, len(head)) + head + struct.pack(">I", zlib.crc32(head)) + bytes(payload)


def container_version(data: bytes, *, where: str = "container") -> int:
    """The version of container bytes (after checking the magic); DataError for anything else."""
    data = bytes(data[:_PREFIX.size])
    if len(data) < _PREFIX.size:
        raise DataError(f"{where} is truncated or not an aekit container: {len(data)} bytes.")
    magic, version, _ = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise DataError(f"{where} is not an aekit container (magic {magic!r}, expected {MAGIC!r}).")
    return int(version)


def unpack_container(data: bytes, *, where: str = "container", model_hash: str | None = None,
                     codec_hash: str | None = None, versions=(VERSION,)) -> tuple[dict, bytes]:
    """Container bytes -> (header, payload), validating magic, version, sizes, CRC, checksum, hashes.

    versions: the container versions the caller decodes (1: codec.decompress, 2: learned.decompress_learned)."""
    data = bytes(data)
    if len(data) < _PREFIX.size:
        raise DataError(f"{where} is truncated or not an aekit container: {len(data)} bytes.")
    magic, version, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise DataError(f"{where} is not an aekit container (magic {magic!r}, expected {MAGIC!r}).")
    if version not in SUPPORTED_VERSIONS:
        raise DataError(f"{where} has container version {version}; this aekit reads version(s) "
                        f"{', '.join(map(str, SUPPORTED_VERSIONS))}.")
    if version not in versions:
        raise DataError(f"{where} has container version {version} ({'learned entropy coder' if version == 2 else 'quantizer codec'}); "
                        f"decode it with {READERS[version]}.")
    if head_len > MAX_HEADER_BYTES:
        raise DataError(f"{where} declares a {head_len}-byte header; the limit is {MAX_HEADER_BYTES} (corrupted?).")
    start = _PREFIX.size
    if len(data) < start + head_len + 4:
        raise DataError(f"{where} is truncated: the header needs {start + head_len + 4} bytes, the file has {len(data)}.")
    head = data[start:start + head_len]
    (crc,) = struct.unpack_from(">I", data, start + head_len)
    if zlib.crc32(head) != crc:
        raise DataError(f"{where} is corrupted: the header's CRC-32 does not match.")
    if version == VERSION_LEARNED:
        header = _unpack_header_learned(head, where=where)
    else:
        try:
            header = json.loads(head.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise DataError(f"{where} is corrupted: its header is not UTF-8 JSON.") from None
        check_header(header, where=where)
    body = data[start + head_len + 4:]
    if len(body) < header["payload_bytes"]:
        raise DataError(f"{where} is truncated: the header declares {header['payload_bytes']} payload bytes, "
                        f"{len(body)} are present.")
    if len(body) > header["payload_bytes"]:
        raise DataError(f"{where} is corrupted: {len(body) - header['payload_bytes']} unexpected bytes follow the payload.")
    keep = HASH_PREFIX if version == VERSION_LEARNED else 64  # version 2 keeps 64-bit prefixes of the hashes
    if hashlib.sha256(body).hexdigest()[:keep] != header["payload_sha256"]:
        raise DataError(f"{where} is corrupted: the payload's SHA-256 does not match its header.")
    model_hash = model_hash[:keep] if model_hash is not None else None
    codec_hash = codec_hash[:keep] if codec_hash is not None else None
    if model_hash is not None and header["model_hash"] != model_hash:
        raise CheckpointError(f"{where} was written by a different model (model hash {header['model_hash'][:12]}..., "
                              f"this run's is {model_hash[:12]}...); decompress it with the run that compressed it.")
    if codec_hash is not None and header["codec_hash"] != codec_hash:
        raise CheckpointError(f"{where} was coded with a different quantizer/entropy model (codec hash "
                              f"{header['codec_hash'][:12]}..., expected {codec_hash[:12]}...); refit or use the original run.")
    return header, body


def write_container(path, header: dict, payload: bytes) -> Path:
    """Write a container atomically; returns the path."""
    from ...checkpoint import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, pack_container(header, payload))
    return path


def read_container(path, *, model_hash: str | None = None, codec_hash: str | None = None,
                   versions=(VERSION,)) -> tuple[dict, bytes]:
    """Read and validate a container file: (header, payload). See unpack_container."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"compressed file {str(path)!r} does not exist.")
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES + MAX_HEADER_BYTES + 64:
        raise DataError(f"{str(path)!r} is {size} bytes, larger than any aekit container can be.")
    return unpack_container(path.read_bytes(), where=repr(str(path)), model_hash=model_hash, codec_hash=codec_hash,
                            versions=versions)
