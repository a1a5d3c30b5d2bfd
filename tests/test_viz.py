"""aekit.viz: every plot writes a non-trivial PNG and a valid SVG; the latent diagnostics measure what they claim.

The AE-vs-VAE test trains both on the full digits training split (latent 2, 10 epochs, ~3 s) and
checks that the VAE's latent space has fewer holes, the weakness of plain autoencoders VAEs address.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.data import load_data
from aekit.errors import ConfigError
from aekit.viz import (continuity, diagnose, gap_fractions, manifold_grid, plot_code_histogram, plot_denoising,
                       plot_interpolations, plot_kl_per_unit, plot_latent_scatter, plot_loss_comparison,
                       plot_loss_curves, plot_manifold, plot_reconstruction_comparison, plot_reconstructions,
                       plot_samples, plot_traversals, save_figure, separability)
from aekit.viz.images import corrupt


def trained(name, ds, *, latent_dim, epochs=2, hidden=(32,), seed=0):
    model = aekit.build(name, input_shape=ds.shape, latent_dim=latent_dim, hidden=list(hidden), seed=seed)
    aekit.fit(model, ds.train, ds.val, epochs=epochs, batch_size=64, lr=3e-3, seed=seed, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def models():
    ds = load_data("digits", seed=0, max_samples=400)
    out = {"ds": ds, "ae2": trained("ae", ds, latent_dim=2), "ae3": trained("ae", ds, latent_dim=3),
           "vae": trained("vae", ds, latent_dim=3), "dae": trained("dae", ds, latent_dim=3),
           "sparse": trained("sparse_kl", ds, latent_dim=8)}
    history = [{"epoch": e, "train_loss": 10.0 / e, "val_loss": 11.0 / e, "train_nll": 9.0 / e, "val_nll": 9.5 / e,
                "train_kl_prior": 1.0 + 0.1 * e} for e in range(1, 6)]
    out["history"] = history
    return out


def check_files(fig, tmp_path, name, *, min_std=8.0):
    """PNG decodes and is not blank (grey-level std over pixels); SVG parses as XML with an <svg> root."""
    png = save_figure(fig, tmp_path / f"{name}.png", close=False)
    svg = save_figure(fig, tmp_path / f"{name}.svg")
    with Image.open(png) as im:
        im.load()
        pixels = np.asarray(im.convert("L"), dtype=np.float64)
    assert pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert pixels.std() > min_std, f"{name}.png looks blank (std {pixels.std():.1f})"
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 20


PLOTS = {
    "reconstructions": lambda m: plot_reconstructions(m["ae3"], m["ds"].test),
    "reconstruction_comparison": lambda m: plot_reconstruction_comparison(
        m["ds"].test[:6], {k: m[k].reconstruct(m["ds"].test[:6]) for k in ("ae3", "vae")}),
    "loss_curves": lambda m: plot_loss_curves(m["history"]),
    "loss_comparison": lambda m: plot_loss_comparison({"a": m["history"], "b": m["history"][:3]}),
    "latent_scatter_2d": lambda m: plot_latent_scatter(m["ae2"].encode(m["ds"].test), m["ds"].y_test),
    "latent_scatter_pca": lambda m: plot_latent_scatter(m["vae"].encode(m["ds"].test), m["ds"].y_test,
                                                        prior_circles=True),
    "latent_scatter_tsne": lambda m: plot_latent_scatter(m["ae3"].encode(m["ds"].test), m["ds"].y_test,
                                                         method="tsne", max_points=100),
    "latent_scatter_unlabelled": lambda m: plot_latent_scatter(m["ae3"].encode(m["ds"].test)),
    "manifold_ae2": lambda m: plot_manifold(m["ae2"], m["ae2"].encode(m["ds"].train)),
    "manifold_vae": lambda m: plot_manifold(m["vae"], m["vae"].encode(m["ds"].train), n=8),
    "traversals": lambda m: plot_traversals(m["ae3"], m["ae3"].encode(m["ds"].train)),
    "interpolations": lambda m: plot_interpolations(m["vae"], m["ds"].test),
    "samples": lambda m: plot_samples(m["vae"], n=25),
    "kl_per_unit": lambda m: plot_kl_per_unit([0.001, 1.5, 0.7]),
    "code_histogram": lambda m: plot_code_histogram(m["sparse"].encode(m["ds"].test)),
    "denoising": lambda m: plot_denoising(m["dae"], m["ds"].test),
}


@pytest.mark.parametrize("name", list(PLOTS))
def test_plot_writes_png_and_svg(models, tmp_path, name):
    with torch.no_grad():
        fig = PLOTS[name](models)
    check_files(fig, tmp_path, name)


def test_image_plots_refuse_what_does_not_apply(models):
    table = aekit.build("ae", input_shape=(12,), latent_dim=2, hidden=[8], seed=0).eval()
    with pytest.raises(ConfigError, match="image model"):
        plot_reconstructions(table, torch.rand(4, 12))
    with pytest.raises(ConfigError, match="VAE"):
        plot_samples(models["ae3"])
    with pytest.raises(ConfigError, match="corruption"):
        plot_denoising(models["ae3"], models["ds"].test)
    fig = plot_latent_scatter(table.encode(torch.rand(30, 12)))  # codes of table models are still plotted
    assert fig.axes


def test_denoising_uses_the_models_own_corruption_and_restores_eval(models):
    dae, x = models["dae"], models["ds"].test[:16]
    state = torch.get_rng_state()
    noisy = corrupt(dae, x, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert not dae.corruption.training and not dae.training
    zeroed = (noisy == 0) & (x != 0)  # masking:0.25 zeroes about a quarter of the pixels
    assert 0.1 < zeroed.float().sum() / (x != 0).float().sum() < 0.4
    assert torch.equal(corrupt(dae, x, seed=1), noisy)


@torch.no_grad()
def test_manifold_grid_spans_codes_or_prior_quantiles(models):
    z2 = models["ae2"].encode(models["ds"].train).double().numpy()
    grid, u, v, note = manifold_grid(models["ae2"], z2, n=5)
    assert grid.shape == (25, 2) and "percentiles" in note
    assert np.isclose(u[0], np.percentile(z2[:, 0], 1)) and np.isclose(u[-1], np.percentile(z2[:, 0], 99))
    assert np.allclose(grid[0].numpy(), [u[0], v[-1]], atol=1e-5)  # top-left: smallest u, largest v
    zv = models["vae"].encode(models["ds"].train)
    grid, u, v, note = manifold_grid(models["vae"], zv, n=5)
    assert grid.shape == (25, 3) and "prior" in note
    assert np.allclose([u[0], u[-1]], [-1.6449, 1.6449], atol=1e-3)
    assert np.allclose(grid.mean(0).numpy(), 0.0, atol=1e-5)  # centred at the prior mean


def test_gap_fraction_is_about_five_percent_without_holes_and_large_with_them():
    rng = np.random.default_rng(0)
    blob = rng.normal(size=(1500, 2))
    clusters = np.concatenate([rng.normal(size=(750, 2)) * 0.1 + c for c in ([-3, 0], [3, 0])])
    even = gap_fractions(blob)["gap_fraction"]
    assert even < 0.12
    assert gap_fractions(clusters)["gap_fraction"] > 0.5
    moved = gap_fractions(blob * 7.0 + 3.0)["gap_fraction"]  # invariant to the codes' scale and offset
    assert abs(moved - even) < 0.01


def test_separability_and_continuity_on_known_cases():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    z = rng.normal(size=(200, 2)) * 0.1 + np.stack([y * 5.0, y * 0.0], axis=1)
    sep = separability(z[::2], y[::2], z[1::2], y[1::2])
    assert sep["probe_accuracy"] == 1.0 and sep["knn_accuracy"] == 1.0 and sep["silhouette"] > 0.8
    linear = aekit.build("linear", input_shape=(1, 8, 8), latent_dim=3, seed=0).eval()  # an affine decoder
    cont = continuity(linear, rng.normal(size=(50, 3)))
    assert cont["jump_ratio"] == pytest.approx(1.0, abs=1e-4) and cont["path_ratio"] == pytest.approx(1.0, abs=1e-4)


def test_vae_latent_space_has_fewer_holes_than_the_ae():
    ds = load_data("digits", seed=0)
    diags = {}
    for name in ("ae", "vae"):
        model = trained(name, ds, latent_dim=2, epochs=10, hidden=(64,))
        diags[name] = diagnose(model, ds.train, ds.test, y_train=ds.y_train, y_test=ds.y_test)
    for d in diags.values():
        assert set(d) == {"gap_fraction", "gap_fraction_box", "probe_accuracy", "knn_accuracy", "silhouette",
                          "jump_ratio", "path_ratio"}
        assert all(isinstance(e["interpretation"], str) and e["interpretation"] for e in d.values())
        assert d["probe_accuracy"]["value"] > 0.3  # both learned something about the digits
    ae, vae = diags["ae"], diags["vae"]
    # measured over weight seeds 0-4, latent 2 (and 4): gap_fraction ae 0.15-0.19 (0.36-0.46), vae 0.06-0.08
    # (0.06-0.09); box ae 0.24-0.36 (0.59-0.68), vae 0.12-0.14 (0.20-0.29); path_ratio ae 1.10-1.18, vae 1.02-1.04.
    # jump_ratio does not separate them (vae 1.14-1.22, ae 1.10-1.15) and is not asserted.
    assert vae["gap_fraction"]["value"] < 0.7 * ae["gap_fraction"]["value"]
    assert vae["gap_fraction_box"]["value"] < ae["gap_fraction_box"]["value"]
    assert vae["path_ratio"]["value"] < ae["path_ratio"]["value"]
