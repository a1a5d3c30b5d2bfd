"""Hostile inputs for every aekit loader: seed files, mutations, and the outcome rule.

Shared by tests/test_fuzz_loaders.py (hypothesis, a few hundred inputs) and
benchmarks/fuzz_loaders.py (the long run). Not a test module itself.

A *target* is one loader and the files it reads: npy, npz, csv, idx, idx.gz, mat, png / jpeg
folders (aekit.load_data), model checkpoints (weights and config.json: aekit.checkpoint.load),
training states (Trainer.load_checkpoint), codec files and .aekc containers
(aekit.tasks.compression). `Target.load(files)` writes the files into a fresh folder and runs the
loader on them.

The rule (`check_outcome`): a load either succeeds with finite numbers or raises an
aekit.errors.AekitError with a non-empty message. Any other exception, resident memory growing
by more than `MEMORY_LIMIT` bytes during the load (Linux: the peak RSS is reset before each
load), a file executing code, and a load slower than the caller's timeout are findings. An
allocation above the limit that never became resident (tracemalloc sees it; the peak RSS does
not: e.g. scipy reserving a declared size before finding the data missing) is recorded as a
"reservation", not a finding.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import random
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

MEMORY_LIMIT = 64 * 1024 * 1024  # a load of a < 1 MB file may not allocate more than this
BUDGET_VAR, BUDGET = "AEKIT_MEMORY_BUDGET", "64M"  # the memory budget every load runs under (aekit.memory_budget)
HUGE = 2**40


# ---------------------------------------------------------------------- file builders
def npy_bytes(descr: str, shape: tuple, payload: bytes, *, fortran: bool = False, version: int = 1) -> bytes:
    """A .npy file with any header (shape, dtype) and any payload: what a hostile writer can make."""
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    pre = 10 if version == 1 else 12
    pad = (64 - (pre + len(header) + 1) % 64) % 64
    header = (header + " " * pad + "\n").encode("latin1")
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + payload


def npy_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def npz_of(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def npz_with_members(members: dict[str, bytes]) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data)
    return buf.getvalue()


def idx_bytes(code: int, dims: tuple, payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def mat_of(**arrays) -> bytes:
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, arrays)
    return buf.getvalue()


def image_bytes(fmt: str, size=(8, 8), mode="L") -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def png_with_size(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR declares width x height (CRC fixed, so only the size lies)."""
    data = bytearray(image_bytes("PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


class Special:
    """A file that is not a regular file: a FIFO, or a symbolic link to a device (write_files makes it)."""

    def __init__(self, kind: str, target: str | None = None):
        self.kind, self.target = kind, target

    def __repr__(self) -> str:
        return f"Special({self.kind!r}, {self.target!r})"


FIFO = Special("fifo")
DEV_ZERO = Special("link", "/dev/zero")

_BOMBS: dict = {}
BOMB_SIDE = 8192  # 8192 x 8192 uint8: 64 MiB decoded from ~65 KB on disk


def bombs() -> dict[str, bytes]:
    """Decompression bombs, built once: 64 MiB of zeros behind ~65 KB (npz, IDX .gz, .mat, PNG)."""
    if not _BOMBS:
        from scipy.io import savemat

        side = BOMB_SIDE
        zeros = np.zeros((side, side), np.uint8)
        buf = io.BytesIO()
        savemat(buf, {"X": zeros})  # uncompressed (fast), then its element compressed by hand (miCOMPRESSED)
        plain = buf.getvalue()
        packed = zlib.compress(plain[128:], 9)
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grayscale
        idat = zlib.compress(b"\0" * ((side + 1) * side), 9)  # every row: filter byte 0, then zeros

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        _BOMBS.update(
            npz=npz_of(x=zeros),
            idx_gz=gzip.compress(idx_bytes(0x08, (1, side, side), zeros.tobytes()), 6),
            mat=plain[:128] + struct.pack("<II", 15, len(packed)) + packed,
            png=b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""),
            csv=("1," * (3 * 10**6 - 1) + "1\n").encode(),  # 6 MB, 3 million columns
        )
    return _BOMBS


def npz_with_lying_size(member: bytes, extra: int) -> bytes:
    """A stored .npz whose member's declared (uncompressed) size is `extra` bytes larger than its data."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("x.npy", member)
    data = bytearray(buf.getvalue())
    lie = struct.pack("<I", len(member) + extra)
    data[22:26] = lie  # the local header's size
    c = data.find(b"PK\x01\x02")
    data[c + 24:c + 28] = lie  # the central directory's
    return bytes(data)


def patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


def safetensors_bytes(header: dict, payload: bytes) -> bytes:
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + payload


class _Marker:
    """Unpickling this creates the marker file: proof that a loader executed code from a file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(_Marker(str(marker)))


def object_npy(marker: Path) -> bytes:
    """A .npy of dtype object whose pickled payload would create `marker`."""
    return npy_bytes("|O", (1,), pickle.dumps([_Marker(str(marker))]))


# ---------------------------------------------------------------------- targets
@dataclass
class Target:
    """One loader: the files of a valid input (`seed`), which file is mutated, and how to load."""

    name: str
    seed: dict[str, bytes]  # file name (relative) -> bytes
    mutated: str  # the file the generic mutations change
    load: Callable[[Path], object]  # folder -> result (raises on bad input)
    crafted: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (what, files replacing the seed's)


def _data_loader(rel: str):
    def load(folder: Path):
        from aekit.data import load_data

        ds = load_data(str(folder / rel))
        for t in (ds.train, ds.val, ds.whole):
            if t is not None and not torch.isfinite(t).all():
                raise AssertionError(f"load_data returned non-finite numbers for {rel}")
        return ds

    return load


def _tiny_model():
    import aekit

    return aekit.build("ae", input_shape=(6,), latent_dim=2, hidden=[4], seed=0)


def _checkpoint_files() -> dict[str, bytes]:
    import tempfile

    from aekit import checkpoint as ckpt

    with tempfile.TemporaryDirectory() as d:
        ckpt.save(_tiny_model(), d)
        return {name: (Path(d) / name).read_bytes() for name in (ckpt.CONFIG_NAME, ckpt.WEIGHTS_NAME)}


def _train_state_files() -> dict[str, bytes]:
    import tempfile

    from aekit.training.trainer import TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as d:
        x = torch.rand(8, 6)
        Trainer(_tiny_model(), TrainConfig(epochs=1, batch_size=4, progress=False), out_dir=d).fit(x)
        root = Path(d) / "checkpoints"
        files = {f"checkpoints/{p.relative_to(root).as_posix()}": p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return files


def _load_train_state(folder: Path):
    from aekit.training.trainer import TrainConfig, Trainer

    trainer = Trainer(_tiny_model(), TrainConfig(epochs=2, batch_size=4, progress=False), out_dir=folder)
    return trainer.load_checkpoint()


_CODEC_CACHE: dict = {}


def _codec_setup():
    """(model, codec, container bytes, codec file bytes) of a tiny compression setup, built once."""
    if not _CODEC_CACHE:
        import tempfile

        from aekit.tasks.compression import compress, fit_codec

        model = _tiny_model().eval()
        x = torch.rand(16, 6)
        codec = fit_codec(model, x, bits=4)
        with tempfile.TemporaryDirectory() as d:
            codec_bytes = codec.save(Path(d) / "codec.safetensors").read_bytes()
        _CODEC_CACHE.update(model=model, codec=codec, range=compress(model, x[:5], codec, method="range"),
                            zlib=compress(model, x[:5], codec, method="zlib"), codec_bytes=codec_bytes)
    return _CODEC_CACHE


def _load_container(folder: Path):
    from aekit.tasks.compression import decompress

    c = _codec_setup()
    x_hat, _ = decompress(c["model"], (folder / "codes.aekc").read_bytes(), c["codec"], where="codes.aekc")
    if not torch.isfinite(x_hat).all():
        raise AssertionError("decompress returned non-finite numbers")
    return x_hat


def _load_codec(folder: Path):
    from aekit.tasks.compression import Codec

    return Codec.load(folder / "codec.safetensors")


def _container_with(header_changes: dict, payload: bytes | None = None, method: str = "range") -> bytes:
    """A container whose header fields are replaced (CRC and checksums recomputed: a careful forger)."""
    from aekit.tasks.compression.container import MAGIC, VERSION, _PREFIX

    c = _codec_setup()
    data = c[method]
    n = _PREFIX.unpack(data[:_PREFIX.size])[2]
    header = json.loads(data[_PREFIX.size:_PREFIX.size + n])
    body = data[_PREFIX.size + n + 4:] if payload is None else payload
    header.update(header_changes)
    import hashlib

    header["payload_bytes"], header["payload_sha256"] = len(body), hashlib.sha256(body).hexdigest()
    head = json.dumps(header, sort_keys=True).encode()
    return _PREFIX.pack(MAGIC, VERSION, len(head)) + head + struct.pack(">I", zlib.crc32(head)) + body


def targets(marker: Path) -> list[Target]:
    """Every loader with its seed files and hand-made hostile inputs (`marker`: the pickle canary)."""
    rng = np.random.default_rng(0)
    table = rng.random((6, 4)).astype(np.float32)
    images = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    f4 = np.float32
    nan_table = table.copy()
    nan_table[1, 2] = np.nan
    inf_table = table.copy()
    inf_table[0, 0] = np.inf
    out = [
        Target("npy", {"x.npy": npy_of(table)}, "x.npy", _data_loader("x.npy"), [
            ("huge declared shape", {"x.npy": npy_bytes("<f4", (HUGE, 4), table.tobytes())}),
            ("huge declared shape, v2 header", {"x.npy": npy_bytes("<f8", (2**31, 2**31), b"", version=2)}),
            ("negative shape", {"x.npy": npy_bytes("<f4", (-1, 4), table.tobytes())}),
            ("NaN", {"x.npy": npy_of(nan_table)}), ("inf", {"x.npy": npy_of(inf_table)}),
            ("complex dtype", {"x.npy": npy_of(table.astype(np.complex64))}),
            ("text dtype", {"x.npy": npy_of(np.array([["a", "b"], ["c", "d"]]))}),
            ("structured dtype", {"x.npy": npy_of(np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))}),
            ("float16", {"x.npy": npy_of(table.astype(np.float16))}),
            ("big-endian float64", {"x.npy": npy_of(table.astype(">f8"))}),
            ("datetime dtype", {"x.npy": npy_of(np.zeros((2, 2), dtype="datetime64[s]"))}),
            ("object dtype (pickle)", {"x.npy": object_npy(marker)}),
            ("zero rows", {"x.npy": npy_of(np.zeros((0, 4), f4))}), ("zero columns", {"x.npy": npy_of(np.zeros((4, 0), f4))}),
            ("0-d", {"x.npy": npy_of(np.float32(1.0))}), ("1-D", {"x.npy": npy_of(np.zeros(5, f4))}),
            ("5-D", {"x.npy": npy_of(np.zeros((1, 1, 1, 1, 1), f4))}),
            ("header not a dict", {"x.npy": b"\x93NUMPY\x01\x00\x10\x00" + b"[1, 2, 3]      \n"}),
            ("header code", {"x.npy": b"\x93NUMPY\x01\x00\x20\x00" + b"__import__('os').system('true')\n"}),
            ("pickle file named .npy", {"x.npy": pickle_payload(marker)}),
            ("empty", {"x.npy": b""}),
            ("a FIFO named .npy", {"x.npy": FIFO}), ("/dev/zero named .npy", {"x.npy": DEV_ZERO}),
        ]),
        Target("npz", {"x.npz": npz_of(x=table, y=np.arange(6))}, "x.npz", _data_loader("x.npz"), [
            ("huge declared shape in a member", {"x.npz": npz_with_members({"x": npy_bytes("<f4", (HUGE, 4), b"")})}),
            ("member larger than declared", {"x.npz": npz_with_members({"x": npy_bytes("<f4", (1, 1), b"\0" * 4096)})}),
            ("object member (pickle)", {"x.npz": npz_with_members({"x": object_npy(marker)})}),
            ("NaN", {"x.npz": npz_of(x=nan_table)}), ("no arrays", {"x.npz": npz_of()}),
            ("labels wrong length", {"x.npz": npz_of(x=table, y=np.arange(3))}),
            ("labels NaN", {"x.npz": npz_of(x=table, y=np.array([0, 1, np.nan, 1, 0, 1]))}),
            ("zeros, honest size", {"x.npz": npz_of(x=np.zeros((1000, 1000), np.uint8))}),
            ("pickle file named .npz", {"x.npz": pickle_payload(marker)}),
            ("empty", {"x.npz": b""}),
            ("bomb: 64 MiB of zeros in 65 KB", {"x.npz": bombs()["npz"]}),
            ("member size lies (stored)", {"x.npz": npz_with_lying_size(npy_bytes("<f4", (100, 4), b"\0" * 16), 1584)}),
            ("member size lies, huge", {"x.npz": npz_with_lying_size(npy_bytes("<f4", (2**20, 4), b"\0" * 16), 2**24)}),
            ("/dev/zero named .npz", {"x.npz": DEV_ZERO}),
        ]),
        Target("csv", {"x.csv": b"a,b,c,label\n" + b"".join(f"{i},{i * 2},{i / 3},{i % 2}\n".encode() for i in range(6))},
               "x.csv", _data_loader("x.csv"), [
            ("nan cell", {"x.csv": b"1,2\nnan,3\n"}), ("inf cell", {"x.csv": b"1,2\ninf,3\n"}),
            ("overflowing number", {"x.csv": b"1,2\n1e999,3\n"}), ("text cell", {"x.csv": b"1,2\nx,3\n"}),
            ("ragged", {"x.csv": b"1,2\n3\n"}), ("header only", {"x.csv": b"a,b\n"}), ("empty", {"x.csv": b""}),
            ("binary", {"x.csv": bytes(range(256))}), ("NUL bytes", {"x.csv": b"1,\x002\n3,4\n"}),
            ("huge field", {"x.csv": b"1," + b"9" * 200_000 + b"\n"}),
            ("latin-1", {"x.csv": "é,b\n1,2\n".encode("latin1")}),
            ("many columns", {"x.csv": (",".join(["1"] * 20000) + "\n").encode()}),
            ("3 million columns (6 MB)", {"x.csv": bombs()["csv"]}),
            ("/dev/zero named .csv", {"x.csv": DEV_ZERO}), ("a FIFO named .csv", {"x.csv": FIFO}),
        ]),
        Target("idx", {"x.idx": idx_bytes(0x08, (3, 8, 8), images.tobytes())}, "x.idx", _data_loader("x.idx"), [
            ("huge declared dims", {"x.idx": idx_bytes(0x08, (2**32 - 1, 2**32 - 1, 8), images.tobytes())}),
            ("float NaN", {"x.idx": idx_bytes(0x0D, (2, 2), np.array([1, np.nan, 0, 1], ">f4").tobytes())}),
            ("float inf", {"x.idx": idx_bytes(0x0E, (2, 2), np.array([1, np.inf, 0, 1], ">f8").tobytes())}),
            ("unknown type code", {"x.idx": idx_bytes(0x07, (2, 2), b"\0" * 4)}),
            ("zero dims", {"x.idx": idx_bytes(0x08, (0, 8, 8), b"")}), ("no dims", {"x.idx": bytes([0, 0, 8, 0])}),
            ("9 dims", {"x.idx": idx_bytes(0x08, (1,) * 9, b"\0")}), ("empty", {"x.idx": b""}),
            ("/dev/zero named .idx", {"x.idx": DEV_ZERO}),
        ]),
        Target("idx.gz", {"x.idx.gz": gzip.compress(idx_bytes(0x08, (3, 8, 8), images.tobytes()))}, "x.idx.gz",
               _data_loader("x.idx.gz"), [
            ("huge declared dims (4 GiB)", {"x.idx.gz": gzip.compress(idx_bytes(0x08, (2**16, 2**16 - 1), b"\0" * 64))}),
            ("gzip bomb within the cap", {"x.idx.gz": gzip.compress(idx_bytes(0x08, (1, 2**14, 2**13), b""))}),
            ("truncated gzip", {"x.idx.gz": gzip.compress(idx_bytes(0x08, (3, 8, 8), images.tobytes()))[:40]}),
            ("gzip of garbage", {"x.idx.gz": gzip.compress(b"\xff" * 100)}),
            ("bomb: 64 MiB of zeros in 65 KB", {"x.idx.gz": bombs()["idx_gz"]}),
        ]),
        Target("mat", {"x.mat": mat_of(X=table, y=np.arange(6))}, "x.mat", _data_loader("x.mat"), [
            # one damaged byte; each of these crashed SciPy's reader with a segmentation fault
            ("unknown element type", {"x.mat": patch(mat_of(X=table, y=np.arange(6)), 328, struct.pack("<I", 11))}),
            ("complex flag without an imaginary part", {"x.mat": patch(mat_of(X=table, y=np.arange(6)), 145, b"\xff")}),
            ("NaN", {"x.mat": mat_of(X=nan_table)}), ("complex", {"x.mat": mat_of(X=table.astype(np.complex64))}),
            ("only text", {"x.mat": mat_of(s="hello")}), ("cell array", {"x.mat": mat_of(c=np.array([[1], "a"], dtype=object))}),
            ("struct", {"x.mat": mat_of(s={"a": 1.0})}), ("empty array", {"x.mat": mat_of(X=np.zeros((0, 3)))}),
            ("HDF5 (v7.3) signature", {"x.mat": b"MATLAB 7.3 MAT-file" + b" " * 97 + b"\x00\x02IM" + b"\x89HDF\r\n\x1a\n"}),
            ("empty", {"x.mat": b""}),
            ("bomb: a compressed element of 64 MiB in 65 KB", {"x.mat": bombs()["mat"]}),
            ("/dev/zero named .mat", {"x.mat": DEV_ZERO}), ("a FIFO named .mat", {"x.mat": FIFO}),
        ]),
        Target("png folder", {"imgs/a.png": image_bytes("PNG"), "imgs/b.png": image_bytes("PNG")}, "imgs/a.png",
               _data_loader("imgs"), [
            ("huge declared size", {"imgs/a.png": png_with_size(2**30, 2**30)}),
            ("large declared size (64k x 64k)", {"imgs/a.png": png_with_size(65000, 65000)}),
            ("zero size", {"imgs/a.png": png_with_size(0, 0)}),
            ("chunk length 2^32-1", {"imgs/a.png": patch(image_bytes("PNG"), 33, struct.pack(">I", 2**32 - 1))}),
            ("RGB next to gray", {"imgs/a.png": image_bytes("PNG", mode="RGB")}),
            ("other size", {"imgs/a.png": image_bytes("PNG", size=(5, 7))}), ("empty", {"imgs/a.png": b""}),
            ("pickle named .png", {"imgs/a.png": pickle_payload(marker)}),
            ("eight 8192x8192 PNG bombs of 65 KB", {f"imgs/{c}.png": bombs()["png"] for c in "abcdefgh"}),
            ("a FIFO among the images", {"imgs/c.png": FIFO}), ("/dev/zero named .png", {"imgs/c.png": DEV_ZERO}),
        ]),
        Target("jpeg folder", {"imgs/a.jpg": image_bytes("JPEG"), "imgs/b.jpg": image_bytes("JPEG")}, "imgs/a.jpg",
               _data_loader("imgs"), [("empty", {"imgs/a.jpg": b""}), ("png named .jpg", {"imgs/a.jpg": image_bytes("PNG")})]),
    ]
    ck = _checkpoint_files()
    weights_header = {"__metadata__": {"aekit_sha256": "0" * 64}}
    out += [
        Target("checkpoint weights", ck, "model.safetensors", _load_checkpoint, [
            ("pickle payload", {"model.safetensors": pickle_payload(marker)}),
            ("torch.save zip", {"model.safetensors": b"PK\x03\x04" + pickle_payload(marker)}),
            ("huge header length", {"model.safetensors": struct.pack("<Q", 2**62) + b"{}"}),
            ("huge tensor shape", {"model.safetensors": safetensors_bytes(
                {**weights_header, "w": {"dtype": "F32", "shape": [HUGE, HUGE], "data_offsets": [0, 16]}}, b"\0" * 16)}),
            ("offsets past the end", {"model.safetensors": safetensors_bytes(
                {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 2**40]}}, b"\0" * 16)}),
            ("unknown dtype", {"model.safetensors": safetensors_bytes(
                {"w": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16)}),
            ("deeply nested header", {"model.safetensors": safetensors_bytes({"a": json.loads("[" * 50 + "]" * 50)}, b"")}),
            ("empty", {"model.safetensors": b""}),
        ]),
        Target("checkpoint config", ck, "config.json", _load_checkpoint, [
            ("huge latent_dim", {"config.json": _edit_config(ck, latent_dim=10**9)}),
            ("huge hidden", {"config.json": _edit_config(ck, hidden=[10**6, 10**6])}),
            ("huge input shape", {"config.json": _edit_config(ck, input_shape=[10**12])}),
            ("negative latent_dim", {"config.json": _edit_config(ck, latent_dim=-3)}),
            ("wrong types", {"config.json": _edit_config(ck, latent_dim="two", hidden={"a": 1})}),
            ("config is a list", {"config.json": json.dumps({"format_version": 1, "config": [1, 2]}).encode()}),
            ("unknown variant keys", {"config.json": _edit_config(ck, backbone="transformer", nonsense=1)}),
            ("deep nesting", {"config.json": b"[" * 100_000 + b"]" * 100_000}),
            ("NaN beta", {"config.json": _edit_config(ck, beta=float("nan"))}),
            ("hidden [2^31, 512], checksum recomputed", {"config.json": _edit_config(ck, hidden=[2**31, 512])}),
            ("beta changed, old checksum kept", {"config.json": _edit_config(ck, recompute=False, beta=0.0)}),
            ("not JSON", {"config.json": pickle_payload(marker)}), ("empty", {"config.json": b""}),
        ]),
    ]
    ts = _train_state_files()
    state_json = next(k for k in ts if k.endswith("state.json"))
    state_st = next(k for k in ts if k.endswith("state.safetensors"))
    out += [
        Target("training state (state.json)", ts, state_json, _load_train_state, [
            ("deep nesting", {state_json: b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000}),
            ("pickle", {state_json: pickle_payload(marker)}),
            *[(f"{what}, checksum recomputed", {state_json: _edit_state(ts[state_json], **change)}) for what, change in [
                ("epoch Infinity", {"epoch": float("inf")}), ("history 'x'", {"history": "x"}),
                ("history of strings", {"history": ["x"]}), ("step -1", {"step": -1}), ("epoch 10^30", {"epoch": 10**30}),
                ("elapsed NaN", {"elapsed": float("nan")}), ("epoch_step 10^12", {"epoch_step": 10**12}),
                ("state refers to a missing tensor", {"state": {"__tensor__": "nope"}})]],
            ("last.json names a folder outside the run", {"checkpoints/last.json": b'{"dir": "../../..", "epoch": 1}'}),
            ("last.json is a list", {"checkpoints/last.json": b"[1, 2]"}),
        ]),
        Target("training state (state.safetensors)", ts, state_st, _load_train_state, [
            ("pickle", {state_st: pickle_payload(marker)}),
        ]),
    ]
    try:
        c = _codec_setup()
    except ImportError:  # compression not installed: skip its targets
        return out
    out += [
        Target("codec file", {"codec.safetensors": c["codec_bytes"]}, "codec.safetensors", _load_codec,
               [("pickle", {"codec.safetensors": pickle_payload(marker)})]),
        Target("container (.aekc)", {"codes.aekc": c["range"]}, "codes.aekc", _load_container, [
            ("huge count", {"codes.aekc": _container_with({"count": 2**27})}),
            ("huge count, zlib", {"codes.aekc": _container_with({"count": 2**27, "method": "zlib"}, payload=b"x\x9c\x03\x00\x00\x00\x00\x01")}),
            ("zlib bomb", {"codes.aekc": _container_with({"method": "zlib"}, payload=zlib.compress(b"\0" * 10_000_000))}),
            ("NaN alpha", {"codes.aekc": _container_with({"alpha": float("nan")})}),
            ("bits 0", {"codes.aekc": _container_with({"bits": 0})}),
            ("pickle", {"codes.aekc": pickle_payload(marker)}), ("empty", {"codes.aekc": b""}),
            ("zlib, valid", {"codes.aekc": c["zlib"]}),
            *[(f"{what}, checksums recomputed", {"codes.aekc": blob}) for what, blob in [
                ("count 2^20 (5 coded)", _container_with({"count": 2**20})),
                ("count 2^25, 2 dims (the symbol limit)", _container_with({"count": 2**25})),
                ("count 4 (one fewer)", _container_with({"count": 4})), ("count 6", _container_with({"count": 6})),
                ("range payload truncated", _container_with({}, payload=_payload(c["range"])[:-4])),
                ("range payload extended", _container_with({}, payload=_payload(c["range"]) + b"\0" * 4)),
                ("range payload random", _container_with({}, payload=random.Random(0).randbytes(len(_payload(c["range"]))))),
                ("zlib, count 2^20", _container_with({"count": 2**20, "method": "zlib"},
                                                     payload=zlib.compress(b"\0" * 2**21, 9))),
                ("scale 3e38, offset 3e38", _container_with({"scale": 3e38, "offset": 3e38})),
                ("scale 0", _container_with({"scale": 0.0, "offset": 0.0})),
                ("offset 1e308", _container_with({"scale": 1.0, "offset": 1e308})),
                ("scale without offset", _container_with({"scale": 2.0})),
                ("bits 8 (the codec has 4)", _container_with({"bits": 8})),
                ("shape [1048576]", _container_with({"shape": [2**20]}))]],
        ]),
    ]
    return out


def _edit_config(ck: dict, *, recompute: bool = True, **changes) -> bytes:
    """config.json with fields changed and (recompute) its checksum recomputed, as a careful forger would."""
    from aekit.checkpoint import config_sha256

    meta = json.loads(ck["config.json"])
    meta["config"].update(changes)
    if recompute:
        meta["config_sha256"] = config_sha256(meta)
    return json.dumps(meta).encode()


def _edit_state(data: bytes, **changes) -> bytes:
    """state.json with fields changed and its own checksum (meta_sha256) recomputed."""
    import hashlib

    meta = json.loads(data)
    meta.pop("meta_sha256", None)
    meta.update(changes)
    meta["meta_sha256"] = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    return json.dumps(meta).encode()


def _payload(container: bytes) -> bytes:
    from aekit.tasks.compression.container import _PREFIX

    n = _PREFIX.unpack(container[:_PREFIX.size])[2]
    return container[_PREFIX.size + n + 4:]


def _load_checkpoint(folder: Path):
    from aekit import checkpoint as ckpt

    return ckpt.load(folder)


# ---------------------------------------------------------------------- mutations
MUTATIONS = ("random bytes", "truncate", "flip bytes", "wrong magic", "zero length", "splice", "duplicate tail",
             "huge integer", "NaN / inf bytes")
HUGE_WORDS = [struct.pack(fmt, v) for v in (2**31 - 1, 2**32 - 1, 2**31) for fmt in ("<I", ">I")] + [
    struct.pack(fmt, v) for v in (2**63 - 1, 2**40) for fmt in ("<Q", ">Q")]
NONFINITE_WORDS = [struct.pack(fmt, v) for v in (float("nan"), float("inf"), float("-inf"))
                   for fmt in ("<f", ">f", "<d", ">d")]


def mutate(data: bytes, how: str, rng: random.Random) -> bytes:
    """One generic mutation of a file's bytes (drawn from rng)."""
    n = len(data)
    if how == "random bytes":
        return rng.randbytes(rng.randint(1, max(2, 2 * n)))
    if how == "truncate":
        return data[: rng.randint(0, max(0, n - 1))]
    if how == "flip bytes":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if out:
                out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if how == "wrong magic":
        magic = rng.choice([b"\x93NUMPY", b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b"\x1f\x8b", b"\0\0\x08\x03", b"AEKC",
                            b"\x80\x04\x95", b"MATLAB", rng.randbytes(4)])
        return magic + data[len(magic):]
    if how == "zero length":
        return b""
    if how == "splice":  # a chunk of itself pasted elsewhere: plausible structure, wrong sizes
        if n < 4:
            return data + data
        i, j, k = sorted(rng.randrange(n) for _ in range(3))
        return data[:i] + data[j:k] + data[i:]
    if how == "duplicate tail":
        return data + data[rng.randrange(n):] if n else b"\0"
    if how in ("huge integer", "NaN / inf bytes"):  # a size field (or a value) replaced, in place
        word = rng.choice(HUGE_WORDS if how == "huge integer" else NONFINITE_WORDS)
        if n < len(word):
            return word
        i = rng.randrange(0, n - len(word) + 1)
        i -= i % len(word) if rng.random() < 0.5 else 0  # aligned half of the time, like real headers
        return data[:i] + word + data[i + len(word):]
    raise ValueError(how)


# ---------------------------------------------------------------------- the rule
@dataclass
class Outcome:
    kind: str  # "ok" | "aekit-error" | finding: "other-exception" | "memory" | "bad-message" | "code-executed"
    detail: str = ""
    peak_bytes: int = 0  # tracemalloc's peak (allocations, resident or not)
    rss_growth: int = 0  # peak resident memory above the resident memory before the load
    reservation: bool = False  # peak_bytes above MEMORY_LIMIT but never resident

    @property
    def is_finding(self) -> bool:
        return self.kind not in ("ok", "aekit-error")


def write_files(folder: Path, files: dict[str, bytes | Special]) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Special):
            if path.exists() or path.is_symlink():
                path.unlink()
            if data.kind == "fifo":
                os.mkfifo(path)
            else:
                path.symlink_to(data.target)
        else:
            path.write_bytes(data)


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(field_name)


def _reset_peak_rss() -> int | None:
    """Reset the peak RSS (Linux clear_refs) and return the current RSS; None where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS")
    except OSError:
        return None


def _peak_rss() -> int:
    return _status_kib("VmHWM")


_LIFETIME_PEAK = [0]


def _peak_rss_lifetime() -> int:
    """The largest resident size this process reached at any load (VmHWM is reset before each)."""
    try:
        return max(_LIFETIME_PEAK[0], _peak_rss())
    except OSError:
        return _LIFETIME_PEAK[0]


def check_outcome(target: Target, folder: Path, marker: Path) -> Outcome:
    """Run target.load(folder) under tracemalloc and classify what happened (see module docstring)."""
    import tracemalloc
    import warnings

    from aekit.errors import AekitError

    rss_before = _reset_peak_rss()
    budget = os.environ.get(BUDGET_VAR)
    os.environ[BUDGET_VAR] = BUDGET  # every load runs under the same, small memory budget
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning, scipy's format warnings
            target.load(folder)
        outcome = Outcome("ok")
    except AekitError as exc:
        msg = str(exc)
        outcome = Outcome("aekit-error", f"{type(exc).__name__}: {msg}")
        if not msg.strip():
            outcome = Outcome("bad-message", f"{type(exc).__name__} with an empty message")
    except Exception as exc:  # noqa: BLE001 - any other exception is what we are looking for
        outcome = Outcome("other-exception", f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if budget is None:
            del os.environ[BUDGET_VAR]
        else:
            os.environ[BUDGET_VAR] = budget
    if rss_before is not None:
        _LIFETIME_PEAK[0] = max(_LIFETIME_PEAK[0], _peak_rss())
    growth = max(0, _peak_rss() - rss_before) if rss_before is not None else peak
    outcome.peak_bytes, outcome.rss_growth = peak, growth
    if growth > MEMORY_LIMIT and not outcome.is_finding:
        outcome = Outcome("memory", f"resident +{growth / 2**20:.0f} MiB ({outcome.kind}: {outcome.detail[:200]})",
                          peak, growth)
    outcome.reservation = peak > MEMORY_LIMIT and growth <= MEMORY_LIMIT
    if marker.exists():
        outcome = Outcome("code-executed", f"the marker file was created ({outcome.detail[:200]})", peak)
    return outcome
