"""The linear autoencoder at its optimum spans the top-k principal subspace (Baldi & Hornik 1989).

Trained full batch on sklearn's digits (8 x 8, divided by 16) with the model's own loss (Gaussian
NLL, sigma = 1: half the squared error plus a constant), the decoder's columns must span the
same subspace as PCA's top-k components and the reconstruction error must equal PCA's, which
by Eckart-Young no rank-k linear map can beat.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

import aekit

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

K = 5
MAX_ANGLE_DEG = 2.0  # reached: about 0.1 degrees
MAX_ERROR_RATIO = 1.01  # reached: about 1.00001


def test_linear_autoencoder_recovers_the_pca_subspace():
    X = load_digits().data.astype(np.float64) / 16.0  # (1797, 64)
    pca = PCA(n_components=K).fit(X)
    pca_err = float(((X - pca.inverse_transform(pca.transform(X))) ** 2).sum(1).mean())

    # float64: the loss carries the constant 32 log(2 pi) ~ 58.8 nats, which would drown the last
    # digits of the squared error in float32 and stall the quasi-Newton steps
    model = aekit.build("linear", input_shape=(64,), latent_dim=K, seed=0).double()
    assert model.config["backbone"] == {"mlp": {"hidden": [], "activation": "identity"}}
    x = torch.from_numpy(X)
    model.train()

    # a short Adam phase with a cosine schedule, then L-BFGS to converge
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(adam, T_max=100)
    for _ in range(100):
        adam.zero_grad()
        model(x).loss.backward()
        adam.step()
        sched.step()
    lbfgs = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=450, history_size=50,
                              line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=0.0)

    def closure():
        lbfgs.zero_grad()
        loss = model(x).loss
        loss.backward()
        return loss

    lbfgs.step(closure)

    model.eval()
    with torch.no_grad():
        ae_err = float((model.reconstruct(x) - x).pow(2).sum(1).mean())
    w_dec = model.decoder.net[-1].weight.detach().numpy()  # (64, K)
    assert w_dec.shape == (64, K)
    angles = np.degrees(scipy.linalg.subspace_angles(w_dec, pca.components_.T))
    ratio = ae_err / pca_err
    print(f"largest principal angle {angles.max():.4f} deg, error ratio AE/PCA {ratio:.7f}")
    assert angles.max() < MAX_ANGLE_DEG, angles
    assert ratio < MAX_ERROR_RATIO, (ae_err, pca_err)
    assert ratio > 1 - 1e-6, (ae_err, pca_err)  # Eckart-Young: nothing rank-k beats PCA


# ---------------------------------------------------------------- the 'linear' recipe's defaults (init='pca')
HELD_OUT_MAX_RATIO = 1.01  # the bar; measured 1.0000 on both (the solved layers are held)


def _split(name: str):
    from sklearn.datasets import load_breast_cancer

    X = load_digits().data / 16.0 if name == "digits" else load_breast_cancer().data  # (1797, 64) / (569, 30) raw
    X = X.astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(X))
    cut = int(0.75 * len(X))
    return X[perm[:cut]], X[perm[cut:]]


def _held_out_ratio(model, train, test, k: int) -> float:
    pca = PCA(n_components=k).fit(train)
    pca_err = float(((test - pca.inverse_transform(pca.transform(test))) ** 2).sum(1).mean())
    model.eval()
    with torch.no_grad():
        ae_err = float((model.reconstruct(torch.from_numpy(test)) - torch.from_numpy(test)).pow(2).sum(1).mean())
    return ae_err / pca_err


@pytest.mark.parametrize("name,k", [("digits", 8), ("breast_cancer", 3)])
def test_linear_recipe_with_defaults_matches_pca_on_held_out_data(name, k):
    train, test = _split(name)
    model = aekit.build("linear", input_shape=(train.shape[1],), latent_dim=k, seed=0)
    assert model.config["init"] == "pca"
    aekit.fit(model, train, epochs=3, progress=False)  # default lr, batch, schedule
    assert model.config["init_from"] == {"method": "pca", "samples": len(train), "components": k, "solved": True}
    ratio = _held_out_ratio(model, train, test, k)
    print(f"{name}: held-out error ratio AE/PCA {ratio:.5f}")
    assert ratio < HELD_OUT_MAX_RATIO

    # the same budget from a random start is far from PCA: the bar above is one the start has to earn
    rand = aekit.build("linear", input_shape=(train.shape[1],), latent_dim=k, seed=0, init="random")
    aekit.fit(rand, train, epochs=3, progress=False)
    assert _held_out_ratio(rand, train, test, k) > 1.05


def test_pca_start_is_pca_exactly_before_any_step():
    train, test = _split("digits")
    model = aekit.build("linear", input_shape=(64,), latent_dim=5, seed=0)
    from aekit.pca_init import init_from_pca

    init_from_pca(model, torch.from_numpy(train))
    pca = PCA(n_components=5).fit(train)
    model.eval()
    with torch.no_grad():
        rec = model.reconstruct(torch.from_numpy(test)).numpy()
    np.testing.assert_allclose(rec, pca.inverse_transform(pca.transform(test)), atol=1e-4)


def test_randomized_path_for_wide_data_finds_the_same_subspace(monkeypatch):
    from aekit import pca_init

    X = torch.from_numpy(_split("digits")[0]).double()
    exact_mean, exact = pca_init.principal_subspace(X, 6)
    monkeypatch.setattr(pca_init, "EXACT_MAX_FEATURES", 10)  # digits' 64 features now take the randomized SVD
    mean, approx = pca_init.principal_subspace(X, 6)
    torch.testing.assert_close(mean, exact_mean)
    angles = np.degrees(scipy.linalg.subspace_angles(approx.T.numpy(), exact.T.numpy()))
    assert angles.max() < 0.5, angles
    np.testing.assert_allclose(approx.numpy() @ approx.numpy().T, np.eye(6), atol=1e-10)  # orthonormal rows


def test_more_codes_than_the_data_has_rank_leave_the_rest_zero():
    X = torch.randn(4, 10)  # rank 3 after centring
    model = aekit.build("linear", input_shape=(10,), latent_dim=6, seed=0)
    aekit.fit(model, X, epochs=1, progress=False, batch_size=4)
    assert model.config["init_from"]["components"] == 3


def test_the_pca_start_is_recorded_and_never_repeated(tmp_path):
    train, _ = _split("digits")
    model = aekit.build("linear", input_shape=(64,), latent_dim=4, seed=0)
    aekit.fit(model, train, epochs=1, progress=False, out_dir=tmp_path / "run")
    import json

    saved = json.loads((tmp_path / "run" / "run.json").read_text())["model"]
    assert saved["init"] == "pca" and saved["init_from"]["method"] == "pca"
    loaded = aekit.load(tmp_path / "run")
    assert loaded.config["init_from"] == model.config["init_from"]
    with torch.no_grad():
        loaded.decoder.net[-1].bias.add_(1.0)  # a weight PCA would not give: a second PCA start would undo it
    before = loaded.decoder.net[-1].bias.clone()
    aekit.fit(loaded, train, epochs=1, progress=False, lr=1e-9)
    torch.testing.assert_close(loaded.decoder.net[-1].bias, before, atol=1e-5, rtol=0)


def test_a_streamed_dataset_gets_the_pca_start_too():
    train, test = _split("digits")
    ds = torch.utils.data.TensorDataset(torch.from_numpy(train))
    model = aekit.build("linear", input_shape=(64,), latent_dim=8, seed=0)
    aekit.fit(model, ds, epochs=2, progress=False)
    assert model.config["init_from"]["samples"] == len(train)
    assert _held_out_ratio(model, train, test, 8) < HELD_OUT_MAX_RATIO


def test_init_pca_on_a_nonlinear_model_is_refused_and_the_recipe_falls_back():
    with pytest.raises(aekit.ConfigError, match=r"init='pca' needs a linear model: 'linear_backbone' \(provided by backbone 'mlp' with hidden=\[\]\)"):
        aekit.build("ae", input_shape=(64,), init="pca")
    with pytest.raises(aekit.ConfigError, match="init"):
        aekit.build("linear", input_shape=(64,), init="svd")
    # the recipe's PCA start on a model the caller made nonlinear: a random start, no error
    assert aekit.build("linear", input_shape=(64,), hidden=[16]).config["init"] == "random"
    assert aekit.build("linear", input_shape=(64,), likelihood="bernoulli").config["init"] == "random"


def test_old_run_folders_without_init_still_load(tmp_path):
    model = aekit.build("linear", input_shape=(64,), latent_dim=4, seed=0)
    for key in ("init", "init_from"):
        model.config.pop(key, None)  # a run saved before init existed
    aekit.save(model, tmp_path / "old")
    loaded = aekit.load(tmp_path / "old")
    torch.testing.assert_close(loaded.decoder.net[-1].weight, model.decoder.net[-1].weight)


def test_solved_layers_are_held_and_a_richer_objective_still_trains():
    train, test = _split("breast_cancer")  # raw scale (up to ~4000): free Adam steps drift the code measurably
    model = aekit.build("linear", input_shape=(30,), latent_dim=3, seed=0)
    aekit.fit(model, train, epochs=2, progress=False)
    assert model.config["init_from"]["solved"] is True
    assert all(p.requires_grad for p in model.parameters())  # held for the run only
    pca = PCA(n_components=3).fit(train)
    torch.testing.assert_close(model.decoder.net[-1].bias.double(), torch.from_numpy(pca.mean_).double(), rtol=1e-5, atol=1e-3)

    # a learned sigma is more than the squared error: nothing is held, the weights move, sigma is fitted
    digits_train, _ = _split("digits")
    sig = aekit.build("linear", input_shape=(64,), latent_dim=4, seed=0, learn_sigma=True)
    aekit.fit(sig, digits_train, epochs=1, progress=False, out_dir=None)
    assert sig.config["init_from"]["solved"] is False
    start = aekit.build("linear", input_shape=(64,), latent_dim=4, seed=0, learn_sigma=True)
    from aekit.pca_init import init_from_pca

    init_from_pca(start, torch.from_numpy(digits_train))
    assert not torch.equal(start.decoder.net[-1].weight, sig.decoder.net[-1].weight)


def test_a_fully_held_run_steps_no_schedule_and_warns_nothing():
    import warnings

    train, _ = _split("digits")
    model = aekit.build("linear", input_shape=(64,), latent_dim=8, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # torch: "lr_scheduler.step() before optimizer.step()"
        warnings.filterwarnings("ignore", category=aekit.errors.ShortRunWarning)
        aekit.fit(model, train, epochs=2, progress=False)
    assert model.config["init_from"]["solved"] is True
