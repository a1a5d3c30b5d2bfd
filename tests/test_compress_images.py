"""Image files through a rate-trained run (tasks/compression/images.py, `aekit compress --images`,
`aekit decompress` to PNG): any size, grayscale and RGB, the printed numbers are those of the written PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import aekit
from aekit.checkpoint import save
from aekit.errors import ConfigError, DataError
from aekit.metrics import ms_ssim
from aekit.tasks.compression import compress_images, decompress_images

from cli_helpers import cli

PIL = pytest.importorskip("PIL.Image")


def _run(tmp_path, channels, bottleneck="entropy"):
    model = aekit.build(input_shape=(channels, 16, 16), latent_dim=4, bottleneck=bottleneck, seed=0,
                        backbone={"conv": {"channels": [8, 8], "activation": "gdn", "fully_convolutional": True}})
    return save(model, tmp_path / f"run{channels}{bottleneck}")


def _png(path, h, w, channels, seed=0):
    a = np.random.default_rng(seed).integers(0, 256, size=(h, w) if channels == 1 else (h, w, 3), dtype=np.uint8)
    PIL.fromarray(a).save(path)
    return a


@pytest.mark.parametrize("channels,bottleneck", [(1, "entropy"), (3, "hyperprior")])
def test_images_round_trip_any_size_and_stats_match_the_png(tmp_path, channels, bottleneck):
    run = _run(tmp_path, channels, bottleneck)
    src = tmp_path / "in"
    src.mkdir()
    originals = {"a": _png(src / "a.png", 19, 23, channels), "b": _png(src / "b.png", 16, 30, 3, seed=1)}  # b: RGB in
    stats = compress_images(run, images=src, out=tmp_path / "coded")
    assert [r["width"] for r in stats["images"]] == [23, 30] and stats["coder"] == bottleneck
    outs = decompress_images(run, tmp_path / "coded", out=tmp_path / "dec")
    for row, out in zip(stats["images"], outs):
        dec = np.asarray(PIL.open(out))
        assert dec.shape[:2] == (row["height"], row["width"]) and (dec.ndim == 2) == (channels == 1)
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (row["height"] * row["width"]))
        assert row["payload_bpp"] < row["bpp"]
        orig = originals[out.stem]
        if channels == 1 and orig.ndim == 3:
            orig = np.asarray(PIL.fromarray(orig).convert("L"))
        x = torch.from_numpy(orig.astype(np.float32) / 255).reshape(1, *orig.shape[:2], -1).permute(0, 3, 1, 2)
        y = torch.from_numpy(dec.astype(np.float32) / 255).reshape(1, *dec.shape[:2], -1).permute(0, 3, 1, 2)
        mse = float(((x.double() - y.double()) ** 2).mean())
        assert row["psnr"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-6)  # measured on the written PNG
        assert row["ms_ssim"] == pytest.approx(ms_ssim(x, y), abs=1e-9) and row["ms_ssim_scales"] == 1
    assert stats["average"]["bpp"] == pytest.approx(np.mean([r["bpp"] for r in stats["images"]]))


def test_cli_images_and_errors(tmp_path):
    run = _run(tmp_path, 1)
    _png(tmp_path / "one.png", 12, 17, 1)
    code, out, err = cli("compress", run, "--images", tmp_path / "one.png", "--out", tmp_path / "one.aekc", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["images"][0]["file"].endswith("one.aekc") and stats["average"]["psnr"] > 0
    code, out, err = cli("compress", run, "--images", tmp_path / "one.png", "--out", tmp_path / "one.aekc")
    assert code == 0 and "average" in out and "ms_ssim" in out, err
    code, _, err = cli("decompress", run, tmp_path / "one.aekc", "--out", tmp_path / "one_dec.png")
    assert code == 0, err
    assert np.asarray(PIL.open(tmp_path / "one_dec.png")).shape == (12, 17)
    code, _, err = cli("compress", run, "--out", tmp_path / "x.aekc")
    assert code != 0 and "--data or --images" in err and "Traceback" not in err
    code, _, err = cli("compress", run, "--images", tmp_path / "one.png", "--out", tmp_path / "o.aekc", "--bits", "4")
    assert code != 0 and "--bits apply to --data only" in err and "Traceback" not in err
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="not a readable image"):
        compress_images(run, images=tmp_path / "bad.png", out=tmp_path / "bad.aekc")
    plain = save(aekit.build(input_shape=(1, 16, 16), latent_dim=4, seed=0), tmp_path / "plain")
    with pytest.raises(ConfigError, match="rate-trained bottleneck"):
        compress_images(plain, images=tmp_path / "one.png", out=tmp_path / "p.aekc")


def test_benchmark_header_free_sizes_of_jpeg_and_webp():
    """The benchmark's payload parsers: a baseline JPEG's headers (tables fixed by Pillow's defaults) do not depend on
    the quality, and a simple lossy WebP is RIFF (12) + chunk header (8) + VP8 frame header (10) + payload."""
    import io

    from aekit.tasks.compression.rd_points import jpeg_payload, webp_payload

    a = np.random.default_rng(0).integers(0, 256, size=(24, 40), dtype=np.uint8)
    heads = []
    for q in (20, 80):
        buf = io.BytesIO()
        PIL.fromarray(a).save(buf, format="JPEG", quality=q)
        blob = buf.getvalue()
        assert 0 < jpeg_payload(blob) < len(blob)
        heads.append(len(blob) - jpeg_payload(blob))
    assert heads[0] == heads[1]
    buf = io.BytesIO()
    PIL.fromarray(a).save(buf, format="WEBP", quality=50)
    blob = buf.getvalue()
    size = int.from_bytes(blob[16:20], "little")
    assert blob[12:16] == b"VP8 " and len(blob) == 20 + size + (size & 1)  # one chunk, padded to even length
    assert webp_payload(blob) == size - 10


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_fresh_cli_run_folder_in_folder_out(tmp_path, mode):
    """A run trained from the command line on a PNG folder (rate + lambda * (1 - MS-SSIM)), then compress a folder of
    other sizes (odd ones too) and decompress it back to PNGs of the same sizes and mode."""
    from aekit.cli import main

    rng = np.random.default_rng(0)
    train = tmp_path / "train"
    train.mkdir()
    shape = (12, 14) if mode == "L" else (12, 14, 3)
    for i in range(6):
        PIL.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode).save(train / f"t{i}.png")
    run = tmp_path / "run"
    assert main(["train", "ae", "--data", str(train), "--out", str(run), "--epochs", "1", "--quiet", "--latent-dim", "3",
                 "--backbone", "conv:fully_convolutional=true,activation=gdn", "--channels", "4,4",
                 "--bottleneck", "entropy", "--lambda", "8", "--likelihood", "ms_ssim"]) == 0
    assert aekit.load(run).config["likelihood"] == {"ms_ssim": {}}
    src = tmp_path / "in"
    src.mkdir()
    sizes = {"a": (17, 9), "b": (31, 40)}
    for name, (h, w) in sizes.items():
        PIL.fromarray(rng.integers(0, 256, size=(h, w) if mode == "L" else (h, w, 3), dtype=np.uint8),
                      mode=mode).save(src / f"{name}.png")
    code, out, err = cli("compress", run, "--images", src, "--out", tmp_path / "coded", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert [r["file"].endswith(".aekc") for r in stats["images"]] == [True, True]
    assert all(r["bpp"] > r["payload_bpp"] > 0 and 0 <= r["ms_ssim"] <= 1 for r in stats["images"])
    code, _, err = cli("decompress", run, tmp_path / "coded", "--out", tmp_path / "dec")
    assert code == 0, err
    for name, (h, w) in sizes.items():
        with PIL.open(tmp_path / "dec" / f"{name}.png") as im:
            assert im.mode == mode and im.size == (w, h)
    code, _, err = cli("decompress", run, tmp_path / "in", "--out", tmp_path / "dec2")  # PNGs, not containers
    assert code != 0 and "holds no .aekc files" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("decompress", run, tmp_path / "coded" / "a.aekc", "--out", tmp_path / "a.jpg")
    assert code != 0 and "writes .png files" in err and "Traceback" not in err
    code, _, err = cli("compress", run, "--images", src / "a.png", "--out", tmp_path / "a.png")
    assert code != 0 and "writes .aekc files" in err and "Traceback" not in err
