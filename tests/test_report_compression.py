"""The report's compression section (viz/compression.py, tasks/compression/rd_points.py): a rate-trained run's
rate-distortion point beside JPEG and WebP on the same test images, its numbers in the page as JSON."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import torch

import aekit
from aekit.tasks.compression import compress_learned
from aekit.tasks.compression.rd_points import jpeg_payload, pillow_point, rate_at, rate_distortion, to_u8_images
from aekit.viz.compression import DATA_ID, TITLE, compression_html, why_not_compression

PIL = pytest.importorskip("PIL.Image")


def _folder(path, n=24, size=(20, 22), seed=0):
    rng = np.random.default_rng(seed)
    path.mkdir()
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    for i in range(n):
        a = 128 + 90 * np.sin(xx / (2 + i % 4) + i) * np.cos(yy / 3) + rng.normal(0, 8, size)
        PIL.fromarray(a.clip(0, 255).astype(np.uint8)).save(path / f"p{i:02d}.png")
    return path


@pytest.fixture(scope="module")
def rate_run(tmp_path_factory):
    from aekit.cli import main

    root = tmp_path_factory.mktemp("rdrun")
    run = root / "run"
    assert main(["train", "ae", "--data", str(_folder(root / "imgs")), "--out", str(run), "--epochs", "3", "--quiet",
                 "--latent-dim", "4", "--backbone", "conv:fully_convolutional=true,activation=gdn", "--channels", "6,6",
                 "--bottleneck", "entropy", "--lambda", "500", "--batch-size", "8"]) == 0
    return run


def _data(html: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', html, re.S)
    assert m, "the page holds no rate-distortion data"
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_report_of_a_rate_trained_run_holds_the_curves_and_their_data(rate_run, monkeypatch):
    import aekit.viz.report as report_module
    from aekit.training.runs import load_run, run_data

    monkeypatch.setattr(report_module, "PLOTS", [])  # the other plots have their own tests; keep this one fast
    report = report_module.build_report(rate_run)
    assert "compression" in report["sections"] and TITLE not in report["skipped"]
    data = _data(report["html"])
    assert [p["setting"] for p in data["jpeg"]] == list(range(5, 100, 10)) and len(data["webp"]) == 10
    assert data["run"]["setting"] == 500.0 and data["ms_ssim_scales"] == 1 and data["size"] == [20, 22]
    # the run's point is what compressing each test image into its own container gives
    model, info = load_run(rate_run)
    x = run_data(info, model=model)[0]
    assert data["images"] == min(32, x.shape[0])
    files = [compress_learned(model, torch.from_numpy(a.astype(np.float32) / 255)[None, None])
             for a in to_u8_images(x[:32])]
    assert data["run"]["bpp"] == pytest.approx(np.mean([8 * len(f) / (20 * 22) for f in files]), rel=1e-12)
    assert 0 < data["run"]["payload_bpp"] < data["run"]["bpp"]
    assert "lambda / quality" in report["html"] and "At the run's PSNR" in report["html"]


def test_jpeg_points_are_what_pillow_writes():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=(16, 18), dtype=np.uint8), rng.integers(0, 256, size=(16, 18), dtype=np.uint8)]
    point = pillow_point("JPEG", 50, images)
    sizes, psnrs = [], []
    for a in images:
        buf = io.BytesIO()
        PIL.fromarray(a).save(buf, format="JPEG", quality=50)
        b = np.asarray(PIL.open(io.BytesIO(buf.getvalue())))
        sizes.append(8 * len(buf.getvalue()) / a.size)
        psnrs.append(10 * np.log10(255.0**2 / ((a.astype(float) - b) ** 2).mean()))
        assert jpeg_payload(buf.getvalue()) < len(buf.getvalue())
    assert point["bpp"] == pytest.approx(np.mean(sizes)) and point["psnr"] == pytest.approx(np.mean(psnrs))


def test_rate_at_interpolates_log_rate_and_refuses_to_extrapolate():
    pts = [{"bpp": 1.0, "psnr": 30.0}, {"bpp": 4.0, "psnr": 40.0}, {"bpp": 8.0, "psnr": 44.0}]
    assert rate_at(pts, "psnr", 35.0) == pytest.approx(2.0)  # halfway in quality: the geometric mean of 1 and 4
    assert rate_at(pts, "psnr", 44.0) == pytest.approx(8.0)
    assert rate_at(pts, "psnr", 29.0) is None and rate_at(pts, "psnr", 45.0) is None


def test_section_is_left_out_with_a_reason():
    plain = aekit.build(input_shape=(1, 8, 8), latent_dim=3, seed=0)
    assert "rate-trained" in why_not_compression(plain, torch.rand(4, 1, 8, 8))
    rated = aekit.build(input_shape=(1, 8, 8), latent_dim=3, seed=0, bottleneck="entropy",
                        backbone={"conv": {"channels": [4], "activation": "gdn", "fully_convolutional": True}})
    assert why_not_compression(rated, torch.rand(4, 1, 8, 8)) is None
    assert "[0, 1]" in why_not_compression(rated, torch.randn(4, 1, 8, 8) * 3)


def test_html_data_is_valid_json_even_with_nan_and_script_text():
    model = aekit.build(input_shape=(3, 12, 12), latent_dim=3, seed=0, bottleneck="hyperprior",
                        backbone={"conv": {"channels": [4, 4], "activation": "gdn", "fully_convolutional": True}})
    summary = rate_distortion(model.eval(), torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0)),
                              qualities=(10, 90))
    summary["note"] = "</script><b>"  # never closes the script element early
    summary["run"]["encode_ms"] = float("nan")
    html = compression_html(summary)
    data = _data(html)
    assert data["note"] == "</script><b>" and data["run"]["encode_ms"] is None and data["channels"] == 3
    assert html.count("</script>") == 1
