"""The explorer's feature browser in a real headless browser: the panel lists latents by firing rate and shows the
samples that activate the chosen latent. Needs Python playwright and /usr/bin/chromium; skips cleanly without."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright.sync_api")

from browser_helpers import browser_fixture, needs_browser  # noqa: E402
from explore_helpers import serving  # noqa: E402

pytestmark = needs_browser
browser = browser_fixture()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import torch

    import aekit
    from aekit.data import load_data
    from aekit.tasks.explore import ExploreState
    from aekit.tasks.explore.features import FeatureBrowser
    from aekit.tasks.sae import SparseAutoencoder

    ds = load_data("digits", max_samples=200)
    model = aekit.build("ae", input_shape=(1, 8, 8), hidden=[16], latent_dim=3, seed=0)
    state = ExploreState(model, ds.test, ds.y_test)
    with torch.no_grad():
        acts = model.encoder.net[0](state.x.flatten(1))
    sae = SparseAutoencoder(d=16, n_latents=12, activation="topk", k=2, seed=0).init_from_sample(acts)
    state.features = FeatureBrowser(state, sae, layer="encoder.net.0", k=4, name="sae")
    with serving(state) as server:
        yield server


def test_feature_panel_end_to_end(served, browser):
    page = browser.new_page()
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url, wait_until="load")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=10000)
    assert page.is_visible("#features-panel")
    features = served.state.features
    buttons = page.locator("#feature-list button")
    n_buttons = buttons.count()
    assert n_buttons == 12
    first = int(buttons.nth(0).get_attribute("data-latent"))
    assert features.firing_rate[first] == features.firing_rate.max()  # listed by firing rate, highest first
    assert page.get_attribute("#feature-top", "data-latent") == str(first)  # shown on load
    want = features.feature(first)
    assert page.locator("#feature-top canvas").count() == len(want["top"]) > 0
    # pick another latent from the list: its own samples appear
    other = int(buttons.nth(1).get_attribute("data-latent"))
    buttons.nth(1).click()
    page.wait_for_function("n => document.getElementById('feature-top').dataset.latent === String(n)", arg=other,
                           timeout=10000)
    captions = page.locator("#feature-top figcaption").all_inner_texts()
    assert [c.split()[0] for c in captions] == [f"#{t['index']}" for t in features.feature(other)["top"]]
    assert f"latent {other}" in page.inner_text("#feature-info")
    assert not errors, errors
