"""`aekit explore` in a real headless browser: the page loads cleanly and the map, sliders and interpolation work.

Needs Python playwright and a system chromium at /usr/bin/chromium (as tests/test_report_browser.py);
skips cleanly without them. Never downloads a browser.
"""

from __future__ import annotations

import json
import threading

import pytest

pytest.importorskip("playwright.sync_api")  # skip the module (and its costly fixtures) without playwright

from browser_helpers import browser_fixture, needs_browser  # noqa: E402

pytestmark = needs_browser
browser = browser_fixture()


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """The explorer of a 3-unit autoencoder (a PCA map) on digits, opened the way `aekit explore` opens it."""
    import aekit
    from aekit.checkpoint import atomic_write_json
    from aekit.cli import make_parser
    from aekit.cli.explore_cmd import open_server

    run = tmp_path_factory.mktemp("explore") / "run"
    aekit.save(aekit.build("ae", input_shape=(1, 8, 8), hidden=[16], latent_dim=3, seed=0), run)
    atomic_write_json(run / "run.json", {"variant": "ae", "data": {"source": "digits", "max_samples": 300}})
    args = make_parser().parse_args(["explore", str(run), "--port", "0"])
    server = open_server(args)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()



def decodes(page) -> int:
    return int(page.get_attribute("#decoded", "data-decodes"))


def wait_for_decodes(page, more_than: int) -> None:
    # arrow functions, not bare expressions: the page's CSP (no 'unsafe-eval') stays enforced
    page.wait_for_function("n => Number(document.getElementById('decoded').dataset.decodes) > n", arg=more_than,
                           timeout=10000)


def test_explorer_page_end_to_end(url, browser):
    page = browser.new_page()
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.goto(url, wait_until="load")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=10000)
    wait_for_decodes(page, 0)  # the centre of the map is decoded on load
    assert "principal components" in page.inner_text("#map-note")
    assert page.evaluate("document.querySelectorAll('#sliders input[type=range]').length") == 3
    picture = "() => document.getElementById('decoded').toDataURL()"
    before = page.evaluate(picture)

    box = page.locator("#map").bounding_box()
    n = decodes(page)
    page.mouse.click(box["x"] + 0.12 * box["width"], box["y"] + 0.15 * box["height"])  # a corner of the map
    wait_for_decodes(page, n)
    after = page.evaluate(picture)
    assert after != before  # the click decoded a different point
    assert page.inner_text("#status").startswith("z = [")

    n = decodes(page)  # drag across the map: decoded live
    page.mouse.move(box["x"] + 0.8 * box["width"], box["y"] + 0.8 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.3 * box["height"], steps=5)
    page.mouse.up()
    wait_for_decodes(page, n)
    assert page.evaluate(picture) != after

    n = decodes(page)  # a slider moves one latent unit
    z_before = page.evaluate("window.explore.z.slice()")
    page.evaluate("(() => { const s = document.getElementById('z1'); s.value = s.max;"
                  " s.dispatchEvent(new Event('input')); })()")
    wait_for_decodes(page, n)
    z_after = page.evaluate("window.explore.z")
    assert z_after[0] == z_before[0] and z_after[2] == z_before[2] and z_after[1] != z_before[1]

    page.keyboard.down("Shift")  # pick two samples: the interpolation between them
    page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + 0.5 * box["height"])
    page.mouse.click(box["x"] + 0.7 * box["width"], box["y"] + 0.5 * box["height"])
    page.keyboard.up("Shift")
    page.wait_for_function("() => document.querySelectorAll('#strip canvas').length === 10", timeout=10000)  # 8 + 2 inputs
    assert page.input_value("#pick-a") != "" and page.input_value("#pick-b") != ""
    assert errors == []

    bad = page.evaluate("""fetch('/api/decode', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                 body: JSON.stringify({z: [1e9, 0, 0]})})
                           .then(async r => [r.status, await r.json()])""")
    assert bad[0] == 400 and "within +-10000" in bad[1]["error"], json.dumps(bad)
    page.close()


@pytest.fixture(scope="module")
def url16(tmp_path_factory):
    """The explorer of a 16-unit autoencoder: one slider per unit."""
    import aekit
    from aekit.checkpoint import atomic_write_json
    from aekit.cli import make_parser
    from aekit.cli.explore_cmd import open_server

    run = tmp_path_factory.mktemp("explore16") / "run"
    aekit.save(aekit.build("ae", input_shape=(1, 8, 8), hidden=[16], latent_dim=16, seed=0), run)
    atomic_write_json(run / "run.json", {"variant": "ae", "data": {"source": "digits", "max_samples": 300}})
    server = open_server(make_parser().parse_args(["explore", str(run), "--port", "0"]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()


def test_every_slider_of_a_16_unit_code_is_in_view(url16, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url16, wait_until="load")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=10000)
    assert page.evaluate("document.querySelectorAll('#sliders input[type=range]').length") == 16
    hidden = page.evaluate("""() => { const box = document.getElementById('sliders');
        return box.scrollHeight - box.clientHeight; }""")
    assert hidden <= 1, f"{hidden} px of the slider list are cut off"
    last = page.locator("#z15").bounding_box()
    panel = page.locator("#decoded-panel").bounding_box()
    assert last is not None and last["y"] + last["height"] <= panel["y"] + panel["height"]
    page.close()
