"""Bounded inputs: decompression bombs, forged containers, special files and lying headers (issue 18).

Each crafted file is small; what it declares is large. The rule: the size is checked against the
memory budget (aekit.memory_budget, AEKIT_MEMORY_BUDGET) before anything is decoded, so the load
ends with a one-line aekit error and its traced allocations stay far below what the file declares.
Forged .aekc containers carry recomputed CRC and SHA-256, so only the header and payload checks
can catch them.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fuzz_harness as fh
from aekit.data import load_data
from aekit.errors import ConfigError, DataError

MiB = 2**20


@pytest.fixture
def budget(monkeypatch):
    def set_budget(value: str):
        monkeypatch.setenv("AEKIT_MEMORY_BUDGET", value)
    return set_budget


def peak_of(fn) -> tuple[object, int]:
    """(what fn raised or returned, peak traced bytes)."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - returned for the caller to check
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_refused_by_the_budget(path, *, peak_below: int = 16 * 1024 * 1024) -> None:
    """load_data(path) raises a DataError naming the memory budget, having traced less than peak_below bytes."""
    result, peak = peak_of(lambda: load_data(str(path)))
    assert isinstance(result, DataError) and "memory budget" in str(result), result
    assert peak < peak_below, peak


class _Hang(Exception):
    pass


def within(seconds: int, fn):
    def alarm(signum, frame):
        raise _Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------- point 7: bombs
def test_budget_parsing(monkeypatch):
    from aekit.memory_budget import memory_budget, parse_size

    assert parse_size("512M") == 512 * MiB and parse_size("2G") == 2 * 2**30 and parse_size("1000") == 1000
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    monkeypatch.setenv("AEKIT_MEMORY_BUDGET", "64M")
    assert memory_budget() == 64 * MiB
    monkeypatch.delenv("AEKIT_MEMORY_BUDGET")
    assert 0 < memory_budget() < 2**50
    for bad in ("lots", "-1G", "0", "12Q", "150%"):
        with pytest.raises(ConfigError, match="AEKIT_MEMORY_BUDGET"):
            parse_size(bad)


def test_npz_bomb_is_refused_before_decoding(tmp_path, budget):
    budget("32M")
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((8192, 8192), np.uint8))  # 64 MiB of zeros in ~65 KB
    assert path.stat().st_size < 200_000
    assert_refused_by_the_budget(path)


def test_idx_gz_bomb_is_refused_before_decoding(tmp_path, budget):
    budget("32M")
    path = tmp_path / "bomb-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(fh.idx_bytes(0x08, (1, 8192, 8192), bytes(8192 * 8192))))
    assert_refused_by_the_budget(path)


def test_many_large_pngs_are_refused_from_their_headers(tmp_path, budget):
    from PIL import Image

    budget("32M")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):  # 4 x 16 MiB of pixels, a few KB each on disk
        Image.new("L", (4096, 4096)).save(folder / f"{i}.png")
    result, peak = peak_of(lambda: load_data(str(folder)))
    assert isinstance(result, DataError) and "memory budget" in str(result) and "image" in str(result), result
    assert peak < 16 * MiB


def test_csv_with_many_cells_is_refused_from_its_size(tmp_path, budget):
    budget("4M")
    path = tmp_path / "wide.csv"
    path.write_text(",".join(["1"] * 300_000) + "\n")  # 600 KB: 300k Python strings while parsing
    result, peak = peak_of(lambda: load_data(str(path)))
    assert isinstance(result, DataError) and "memory budget" in str(result), result


def test_a_model_above_the_budget_is_refused_before_it_is_built(budget):
    import aekit

    budget("16M")
    result, peak = peak_of(lambda: aekit.build("ae", input_shape=(20_000,), hidden=[512], latent_dim=8))
    assert isinstance(result, ConfigError), result
    msg = str(result)
    assert "memory budget" in msg and "parameters" in msg and "--image-size" in msg
    assert peak < 8 * MiB


def test_an_8192_square_image_model_names_its_size_and_the_downscale_option():
    import aekit

    with pytest.raises(ConfigError, match=r"parameters.*--image-size"):
        aekit.build("ae", input_shape=(1, 8192, 8192))


def test_aekit_train_on_a_huge_image_is_a_one_line_error(tmp_path, budget):
    from cli_helpers import cli

    budget("64M")
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 1024, 1024), np.uint8))  # 2 MiB of data; a 1M-input first layer
    code, _, err = cli("train", "ae", "--data", tmp_path / "x.npy", "--out", tmp_path / "run", "--epochs", "1",
                       "--quiet", "--device", "cpu")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--image-size" in err, err  # a ConfigError: usage


# ---------------------------------------------------------------------- point 8: special files
def load_in_a_capped_process(path: Path) -> subprocess.CompletedProcess:
    """load_data(path) in a child with 2 GiB of address space and 30 s: a regression fails, it cannot eat the machine."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))

    code = "import sys; from aekit.data import load_data; load_data(sys.argv[1])"
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=30,
                          preexec_fn=cap, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("name", ["x.csv", "x.mat", "x.npy", "x.npz", "x-images-idx3-ubyte"])
def test_a_device_behind_a_data_name_is_refused(tmp_path, name):
    (tmp_path / name).symlink_to("/dev/zero")
    proc = load_in_a_capped_process(tmp_path / name)
    assert proc.returncode == 1 and "DataError" in proc.stderr and "not a regular file" in proc.stderr, proc.stderr[-500:]


@pytest.mark.parametrize("name", ["x.npy", "x.csv", "x.mat"])
def test_a_fifo_named_like_data_is_refused_without_opening_it(tmp_path, name):
    os.mkfifo(tmp_path / name)
    proc = load_in_a_capped_process(tmp_path / name)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr, proc.stderr[-500:]


def test_a_fifo_among_images_is_refused(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(fh.image_bytes("PNG"))
    os.mkfifo(folder / "b.png")
    proc = load_in_a_capped_process(folder)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr, proc.stderr[-500:]


# ---------------------------------------------------------------------- point 13: lying sizes
def npz_with_lying_member_size(tmp_path) -> Path:
    member = fh.npy_bytes("<f4", (100, 4), np.zeros(4, np.float32).tobytes())  # declares 1600 bytes, holds 16
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("x.npy", member)
    data = bytearray(buf.getvalue())
    lie = struct.pack("<I", len(member) + 1584)
    data[22:26] = lie  # the local header's uncompressed size
    c = data.find(b"PK\x01\x02")
    data[c + 24:c + 28] = lie  # and the central directory's
    path = tmp_path / "lie.npz"
    path.write_bytes(bytes(data))
    return path


def test_an_npz_member_shorter_than_declared_says_so(tmp_path):
    with pytest.raises(DataError) as info:
        load_data(str(npz_with_lying_member_size(tmp_path)))
    msg = str(info.value)
    assert "pickle" not in msg and "shorter" in msg, msg


# ---------------------------------------------------------------------- point 6: forged containers
def container(**changes):
    return fh._container_with(changes)


def decode(blob: bytes):
    from aekit.tasks.compression import decompress

    c = fh._codec_setup()
    return decompress(c["model"], blob, c["codec"], where="forged.aekc")


def header_and_payload(blob: bytes) -> tuple[dict, bytes]:
    from aekit.tasks.compression.container import _PREFIX

    n = _PREFIX.unpack(blob[:_PREFIX.size])[2]
    return json.loads(blob[_PREFIX.size:_PREFIX.size + n]), blob[_PREFIX.size + n + 4:]


def test_a_forged_huge_count_is_refused_before_allocating(budget):
    budget("64M")
    blob = container(count=2**20)  # 1 M samples declared, 5 coded; CRC and SHA-256 recomputed
    result, peak = peak_of(lambda: decode(blob))
    assert isinstance(result, DataError), result
    assert "payload" in str(result) or "memory budget" in str(result)
    assert peak < 8 * MiB


@pytest.mark.parametrize("count", [4, 6, 50])
def test_a_wrong_count_is_refused(count):
    with pytest.raises(DataError):
        decode(container(count=count))


def test_a_truncated_or_random_range_payload_is_refused():
    _, payload = header_and_payload(fh._codec_setup()["range"])
    rng = np.random.default_rng(0)
    forged = {"truncated": payload[:-4], "extended": payload + b"\0\0\0\0",
              "random": rng.integers(0, 256, len(payload), dtype=np.uint8).tobytes()}
    for what, body in forged.items():
        with pytest.raises(DataError):
            decode(fh._container_with({}, payload=body))
        assert what


def test_the_honest_containers_still_decode():
    c = fh._codec_setup()
    for method in ("range", "zlib"):
        x_hat, header = decode(c[method])
        assert x_hat.shape == (5, 6) and header["count"] == 5


@pytest.mark.parametrize("changes", [{"scale": 1e308, "offset": 0.0}, {"scale": 1.0, "offset": 1e308},
                                     {"scale": 0.0, "offset": 0.0}, {"scale": -1.0, "offset": 0.0}])
def test_scale_and_offset_that_make_inf_or_nonsense_are_refused(changes):
    with pytest.raises(DataError, match="scale|offset"):
        decode(container(**changes))


def test_a_scale_that_overflows_float32_is_refused_in_the_header():
    from aekit.tasks.compression.container import check_header

    header, _ = header_and_payload(fh._codec_setup()["range"])
    header.update(scale=3e38, offset=3e38)  # finite in float64, inf once x * scale + offset is taken in float32
    with pytest.raises(DataError, match="scale"):
        check_header(header)
