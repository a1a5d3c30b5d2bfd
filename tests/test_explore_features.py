"""The explorer's feature browser (an SAE of one of the model's layers): its numbers against a direct computation,
its JSON endpoints and their errors, `aekit explore --sae` through the command line's opener, and the page in a
headless browser (skipped without playwright / chromium)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

import aekit
from aekit.errors import AekitWarning
from aekit.data import load_data
from aekit.tasks.explore import ExploreState
from aekit.tasks.explore.features import FeatureBrowser
from aekit.tasks.sae import SparseAutoencoder
from explore_helpers import serving


@pytest.fixture(scope="module")
def setup():
    ds = load_data("digits", max_samples=200)
    x, y = ds.test, ds.y_test
    model = aekit.build("ae", input_shape=(1, 8, 8), hidden=[16], latent_dim=3, seed=0)
    state = ExploreState(model, x, y)
    with torch.no_grad():
        acts = model.encoder.net[0](state.x.flatten(1))  # (N, 16): the layer 'encoder.net.0'
    sae = SparseAutoencoder(d=16, n_latents=12, activation="topk", k=2, seed=0).init_from_sample(acts)
    return state, sae, acts


def request(srv, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def server(setup):
    state, sae, _ = setup
    state.features = FeatureBrowser(state, sae, layer="encoder.net.0", k=5, name="sae")
    with serving(state) as srv:
        yield srv
    state.features = None


def test_firing_rates_and_top_samples_match_a_direct_computation(setup):
    state, sae, acts = setup
    browser = FeatureBrowser(state, sae, layer="encoder.net.0", k=5)
    with torch.no_grad():
        z = sae.encode(acts)  # (N, 12), one position per sample
    assert np.allclose(browser.firing_rate, (z != 0).double().mean(0).numpy())
    for latent in range(12):
        got = browser.feature(latent)
        want = torch.sort(z[:, latent], descending=True, stable=True)
        fired = [(int(i), float(v)) for v, i in zip(want.values[:5], want.indices[:5]) if v > 0]
        assert [t["value"] for t in got["top"]] == pytest.approx([v for _, v in fired], abs=1e-4)
        assert {t["index"] for t in got["top"]} == {i for i, _ in fired} or len({v for _, v in fired}) < len(fired)
        for t in got["top"]:  # each sample's own image and label
            pixels = np.frombuffer(base64.b64decode(t["image"]["data"]), dtype="<f4")
            assert np.allclose(pixels, state.x[t["index"]].flatten().numpy())
            assert t["label"] == state.labels[t["index"]]


def test_a_conv_layer_takes_each_samples_largest_position(setup):
    state, _, _ = setup
    model = aekit.build("conv", input_shape=(1, 8, 8), channels=[4, 8], latent_dim=3, seed=0)
    conv_state = ExploreState(model, state.x[:40])
    layer = next(name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d))
    sae = SparseAutoencoder(d=4, n_latents=6, activation="relu", seed=0)
    browser = FeatureBrowser(conv_state, sae, layer=layer, k=3)
    with torch.no_grad():
        maps = dict(model.named_modules())[layer](conv_state.x)  # (40, 4, H, W)
        rows = maps.permute(0, 2, 3, 1).reshape(-1, 4)  # one row per position
        z = sae.encode(rows).view(40, -1, 6)  # (40, H*W, 6)
    assert browser.rows == rows.shape[0]
    assert np.allclose(browser.firing_rate, (z != 0).double().mean((0, 1)).numpy())
    assert np.allclose(browser.top_values[:, 0], z.amax(1).amax(0).double().numpy(), atol=1e-5)


def test_the_feature_endpoints(server, setup):
    status, info = request(server, "GET", "/api/info")
    assert status == 200 and info["features"] == {"name": "sae", "layer": "encoder.net.0", "n_latents": 12}
    status, summary = request(server, "GET", "/api/features")
    assert status == 200 and summary["n_latents"] == 12 and len(summary["firing_rate"]) == 12
    assert summary["rows"] == server.state.x.shape[0]
    status, feature = request(server, "POST", "/api/feature", {"latent": 3})
    assert status == 200 and feature["latent"] == 3 and len(feature["top"]) <= 5
    assert feature["firing_rate"] == pytest.approx(summary["firing_rate"][3], abs=1e-6)
    for body, fragment in (({"latent": 12}, "[0, 11]"), ({"latent": "a"}, "integer"), ({}, '"latent"'),
                           ({"latent": 1, "x": 2}, "x")):
        status, err = request(server, "POST", "/api/feature", body)
        assert status == 400 and fragment in err["error"], err
    status, err = request(server, "GET", "/api/feature")
    assert status == 405


def test_without_an_sae_the_feature_endpoints_say_so(setup):
    state, _, _ = setup
    with serving(ExploreState(state.model, state.x[:20])) as srv:
        assert request(srv, "GET", "/api/info")[1]["features"] is None
        for method, path, body in (("GET", "/api/features", None), ("POST", "/api/feature", {"latent": 0})):
            status, err = request(srv, method, path, body)
            assert status == 404 and "--sae" in err["error"]


def test_explore_with_sae_from_the_command_line(tmp_path):
    """aekit explore RUN --sae SAE_DIR: the layer comes from the SAE's store; a wrong layer is one line."""
    from aekit.checkpoint import atomic_write_json
    from aekit.cli import make_parser
    from aekit.cli.explore_cmd import open_server
    from aekit.tasks.sae import capture, train_sae
    from cli_helpers import cli

    run = tmp_path / "run"
    model = aekit.build("ae", input_shape=(1, 8, 8), hidden=[16], latent_dim=3, seed=0)
    aekit.save(model, run)
    atomic_write_json(run / "run.json", {"variant": "ae", "data": {"source": "digits", "max_samples": 200}})
    x = load_data("digits", max_samples=200).train
    store = capture(model, layer="encoder.net.0", data=x, store=tmp_path / "acts")
    with pytest.warns(AekitWarning):
        train_sae(store, n_latents=12, activation="topk", k=2, epochs=1, batch_size=64, out_dir=tmp_path / "sae")
    args = make_parser().parse_args(["explore", str(run), "--port", "0", "--sae", str(tmp_path / "sae")])
    srv = open_server(args)
    try:
        assert srv.state.features.layer == "encoder.net.0" and srv.state.features.n_latents == 12
    finally:
        srv.server_close()
    code, _, err = cli("explore", run, "--port", "0", "--sae", tmp_path / "sae", "--sae-layer", "decoder.net.2")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code != 0 and len(lines) == 1 and "d=16" in lines[0] and "64" in lines[0], err
