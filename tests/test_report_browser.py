"""The report and comparison pages in a real headless browser: every image loads, no console errors.

Needs Python playwright and a system chromium at /usr/bin/chromium (CI installs both, see .ci/run);
skips cleanly without them. Never downloads a browser.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")  # skip the module (and its costly fixtures) without playwright

from browser_helpers import browser_fixture, needs_browser  # noqa: E402

pytestmark = needs_browser
browser = browser_fixture()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """A report with every section (a denoising, sparse VAE) and a comparison page."""
    from aekit.cli import main
    from aekit.viz.compare import write_comparison
    from aekit.viz.report import write_report

    root = tmp_path_factory.mktemp("browser")
    run = root / "run"
    code = main(["train", "vae", "--data", "digits", "--noise", "masking:0.25", "--sparsity", "l1:0.001",
                 "--max-samples", "200", "--epochs", "2", "--hidden", "16", "--latent-dim", "3", "--quiet",
                 "--out", str(run)])
    assert code == 0
    report = write_report(run, out=root / "report.html")
    compare, _ = write_comparison([run], out=root / "compare.html")
    return {"report": report, "compare": compare}



@pytest.mark.parametrize("which", ["report", "compare"])
def test_page_renders_every_image_without_errors(pages, browser, which):
    page = browser.new_page()
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.goto(Path(pages[which]).resolve().as_uri(), wait_until="load")
    images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) >= (10 if which == "report" else 3)
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, f"image {alt!r} did not load"
    sections = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
    assert "metrics" in sections and (which == "compare" or "denoising" in sections)
    links = page.evaluate("Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href'))")
    assert links == [f"#{s}" for s in sections]
    assert errors == []
    page.close()


def test_comparison_page_fits_its_cards(pages, browser, tmp_path_factory):
    """Six runs: the metrics table stays inside its card (scrolling sideways) and the plots form a grid,
    not one column thousands of pixels tall."""
    from aekit.viz.compare import write_comparison

    run = Path(pages["report"]).parent / "run"
    names = [f"run-{i}-with-a-long-name" for i in range(6)]
    out = tmp_path_factory.mktemp("cmp6") / "compare.html"
    write_comparison([run] * 6, names=names, out=out)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(out.resolve().as_uri(), wait_until="load")
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll('section')).map(s =>
        [s.id, s.scrollWidth, s.clientWidth, s.getBoundingClientRect().height])""")
    for sid, scroll_width, client_width, _ in sizes:
        assert scroll_width <= client_width + 1, f"section {sid!r} overflows its card"
    height = {sid: h for sid, _, _, h in sizes}
    assert height["latent-space"] < 1200, height  # 6 scatter plots in rows, not a 6000-px column
    assert "PCA (baseline)" in page.inner_text("#metrics")
    page.close()


def test_compression_section_renders_and_its_data_parses(browser, tmp_path):
    """A rate-trained model's compression section in a page: the R-D figure loads, the JSON data parses in the
    browser and holds the JPEG / WebP curves and the run's point."""
    import torch

    import aekit
    from aekit.tasks.compression.rd_points import rate_distortion
    from aekit.viz import templates as T
    from aekit.viz.compression import DATA_ID, SECTION_ID, TITLE, compression_html

    model = aekit.build(input_shape=(1, 12, 12), latent_dim=3, seed=0, bottleneck="entropy",
                        backbone={"conv": {"channels": [4], "activation": "gdn", "fully_convolutional": True}}).eval()
    x = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    html = T.page(title="rd", subtitle="", sections=[(SECTION_ID, TITLE, compression_html(
        rate_distortion(model, x, qualities=(20, 60, 90))))])
    out = tmp_path / "rd.html"
    out.write_text(html)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(out.resolve().as_uri(), wait_until="load")
    images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert images and all(ok and width > 0 for ok, width in images)
    data = page.evaluate(f"JSON.parse(document.getElementById('{DATA_ID}').textContent)")
    assert [p["setting"] for p in data["jpeg"]] == [20, 60, 90] and len(data["webp"]) == 3 and data["run"]["bpp"] > 0
    assert errors == []
    page.close()
