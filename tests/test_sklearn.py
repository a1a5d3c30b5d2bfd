"""aekit.tasks.sklearn: scikit-learn's own estimator checks, Pipeline / GridSearchCV, and analytic references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit.tasks.sklearn import EXPECTED_FAILED_CHECKS, AutoencoderOutlierDetector, AutoencoderTransformer

FAST = dict(hidden=(8,), epochs=2)  # the checks fit dozens of times: tiny models, two epochs


@parametrize_with_checks([AutoencoderTransformer(**FAST), AutoencoderOutlierDetector(**FAST)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_expected_failed_checks_is_a_short_documented_list():
    assert isinstance(EXPECTED_FAILED_CHECKS, dict) and len(EXPECTED_FAILED_CHECKS) <= 3
    assert all(isinstance(reason, str) and reason for reason in EXPECTED_FAILED_CHECKS.values())


def _low_rank(n=200, seed=0):
    """Centred 5-D data with principal standard deviations 3, 2, 0.7, 0.5, 0.3 along a random basis."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    return (rng.normal(size=(n, 5)) * np.array([3.0, 2.0, 0.7, 0.5, 0.3])) @ q.T


def test_linear_variant_reaches_the_pca_optimum():
    """Baldi & Hornik 1989: a linear autoencoder's optimum is the top-k principal subspace (PCA's error)."""
    X = _low_rank()
    pca = PCA(2).fit(X)
    pca_mse = np.mean((X - pca.inverse_transform(pca.transform(X))) ** 2)
    ae = AutoencoderTransformer("linear", latent_dim=2, epochs=200, lr=0.1, batch_size=len(X), scaling="none",
                                random_state=0).fit(X)
    ratio = -ae.score(X) / pca_mse
    assert 1 - 1e-6 <= ratio < 1.01  # PCA is optimal: never beaten, and matched
    codes = ae.transform(X)
    r2 = LinearRegression().fit(codes, pca.transform(X)).score(codes, pca.transform(X))
    assert r2 > 0.999  # the codes span the principal subspace


def test_transform_inverse_transform_and_score_are_consistent():
    X = _low_rank(60) * 4 + 10
    ae = AutoencoderTransformer(latent_dim=3, hidden=(16,), epochs=5, random_state=0).fit(X)
    z = ae.transform(X)
    assert z.shape == (60, 3) and z.dtype == np.float64 and ae.n_features_in_ == 5
    x_hat = ae.inverse_transform(z)
    assert x_hat.shape == X.shape
    assert ae.score(X) == pytest.approx(-np.mean((X - x_hat) ** 2), rel=1e-9)
    model_in = torch.from_numpy((X - ae.center_) / ae.scale_)  # scaling learned in fit: zero mean, unit std
    np.testing.assert_allclose(model_in.mean(0).numpy(), 0, atol=1e-9)
    np.testing.assert_allclose(ae.model_.encode(model_in).detach().numpy(), z, atol=1e-12)
    np.testing.assert_allclose(ae.fit_transform(X), z, atol=1e-12)  # same random_state, same model
    assert list(ae.get_feature_names_out()) == [f"autoencodertransformer{i}" for i in range(3)]
    with pytest.raises(ValueError, match="expecting 3 features"):
        ae.inverse_transform(z[:, :2])


def test_params_clone_and_global_rng_untouched():
    ae = AutoencoderTransformer("dae", latent_dim=4, hidden=[12], noise="gaussian:0.1", epochs=2, random_state=3)
    params = ae.get_params()
    assert params["variant"] == "dae" and params["hidden"] == [12] and params["noise"] == "gaussian:0.1"
    twin = clone(ae)
    assert twin.get_params() == params and twin is not ae
    before = torch.get_rng_state()
    X = _low_rank(40)
    ae.set_params(latent_dim=2).fit(X)
    assert torch.equal(torch.get_rng_state(), before)  # fitting seeds its own streams
    assert ae.transform(X).shape == (40, 2) and params["hidden"] == [12]
    assert not hasattr(twin, "model_")


@pytest.mark.parametrize("kwargs, match", [
    (dict(variant="vea"), "Did you mean 'vae'"),
    (dict(scaling="zscore"), "scaling must be one of"),
    (dict(latent_dim=0), "latent_dim must be a positive integer"),
    (dict(hidden=(8, -1)), "hidden must be a sequence of positive integers"),
    (dict(likelihood="bernoulli"), "use scaling='minmax'"),
    (dict(lr=float("nan")), "lr must be a positive finite number"),
])
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(aekit.ConfigError, match=match):
        AutoencoderTransformer(**{"epochs": 1, **kwargs}).fit(_low_rank(20))


def test_bad_contamination_is_named():
    with pytest.raises(aekit.ConfigError, match=r"contamination must be a number in \(0, 0.5\]; got 0.7"):
        AutoencoderOutlierDetector(contamination=0.7, epochs=1).fit(_low_rank(20))


def test_bernoulli_vae_with_minmax_scaling():
    X = np.random.default_rng(0).uniform(2, 5, size=(50, 6))
    vae = AutoencoderTransformer("vae", latent_dim=2, hidden=(8,), likelihood="bernoulli", scaling="minmax",
                                 epochs=3, random_state=0).fit(X)
    x_hat = vae.inverse_transform(vae.transform(X))  # sigmoid means mapped back: inside the training range
    assert x_hat.min() >= 2 - 1e-9 and x_hat.max() <= 5 + 1e-9


def test_pipeline_and_grid_search():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:500], y[:500]
    pipe = make_pipeline(AutoencoderTransformer(latent_dim=8, hidden=(32,), epochs=10, lr=1e-2, batch_size=32,
                                                random_state=0),
                         LogisticRegression(max_iter=300))
    grid = GridSearchCV(pipe, {"autoencodertransformer__latent_dim": [1, 8]}, cv=2).fit(X, y)
    assert grid.best_params_ == {"autoencodertransformer__latent_dim": 8}
    assert grid.best_score_ > 0.65  # chance is 0.1: the codes carry the digit identity

    # with no scoring, GridSearchCV uses the transformer's score: held-out reconstruction
    search = GridSearchCV(AutoencoderTransformer(epochs=40, lr=0.03, scaling="none", random_state=0),
                          {"latent_dim": [1, 3]}, cv=2).fit(_low_rank(120))
    assert search.best_params_ == {"latent_dim": 3}
    assert search.cv_results_["mean_test_score"][1] > search.cv_results_["mean_test_score"][0]


def test_outlier_detector_scores_and_conventions():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(8, 2)))[0].T  # (2, 8): inliers live on a plane
    inliers = rng.normal(size=(190, 2)) @ basis * 2 + 0.05 * rng.normal(size=(190, 8))
    outliers = rng.normal(size=(10, 8)) * 2.5
    X = np.vstack([inliers, outliers])
    truth = np.r_[np.zeros(190), np.ones(10)]
    det = AutoencoderOutlierDetector("linear", latent_dim=2, contamination=0.05, epochs=150, lr=0.05, n_estimators=1,
                                     batch_size=200, scaling="none", random_state=0).fit(X)
    scores = det.score_samples(X)
    assert roc_auc_score(truth, -scores) > 0.97  # higher score = more normal
    np.testing.assert_allclose(det.decision_function(X), scores - det.offset_, rtol=0, atol=0)
    pred = det.predict(X)
    assert set(np.unique(pred)) == {-1, 1}
    assert abs(np.mean(pred == -1) - 0.05) <= 1 / len(X)  # the contamination share of the training data
    np.testing.assert_array_equal(pred, np.where(det.decision_function(X) < 0, -1, 1))
    np.testing.assert_array_equal(det.fit_predict(X), pred)
    # a plain autoencoder's score: minus the Gaussian NLL with sigma = 1 of the scaled row
    x = (X - det.center_) / det.scale_
    x_hat = det.model_.reconstruct(torch.from_numpy(x)).detach().numpy()
    nll = 0.5 * ((x - x_hat) ** 2).sum(1) + 0.5 * X.shape[1] * math.log(2 * math.pi)
    np.testing.assert_allclose(scores, -nll, rtol=1e-10)


def test_outlier_detector_predict_proba_is_calibrated_on_the_training_scores():
    from scipy.special import erf

    X = _low_rank(200)
    det = AutoencoderOutlierDetector(latent_dim=2, hidden=(8,), epochs=3, random_state=0).fit(X)
    o_train = -det.score_samples(X)  # (n,) higher = more unusual
    far = X[:5] * 10.0  # far outside the training cloud
    lin = det.predict_proba(np.vstack([X, far]))  # (205, 2)
    assert lin.shape == (205, 2)
    np.testing.assert_allclose(lin.sum(1), 1.0)
    # linear: min-max of the training scores; the training set spans exactly [0, 1], far rows clip at 1
    np.testing.assert_allclose(lin[:200, 1], (o_train - o_train.min()) / (o_train.max() - o_train.min()), atol=1e-12)
    assert lin[:200, 1].min() == 0.0 and lin[:200, 1].max() == pytest.approx(1.0)
    np.testing.assert_array_equal(lin[200:, 1], 1.0)
    # unify: erf of the standardized score, 0 below the training mean
    uni = det.predict_proba(X, method="unify")[:, 1]
    z = (o_train - o_train.mean()) / o_train.std()
    np.testing.assert_allclose(uni, np.clip(erf(z / math.sqrt(2)), 0, 1), atol=1e-12)
    assert np.mean(uni == 0) == pytest.approx(np.mean(z <= 0))
    # the ordering is the score's: a monotone map, so AUROC is unchanged
    assert np.all(np.diff(lin[np.argsort(o_train), 1]) >= 0)
    with pytest.raises(aekit.ConfigError, match="method"):
        det.predict_proba(X, method="softmax")


def test_outlier_detector_ensemble_averages_standardized_member_losses():
    X = _low_rank(120)
    det = AutoencoderOutlierDetector(latent_dim=2, hidden=(8,), epochs=2, n_estimators=3, random_state=0).fit(X)
    assert len(det.estimators_) == 3 and det.estimators_[0] is det.model_
    losses = [det._per_sample_loss(X, m) for m in det.estimators_]  # (n,) each
    assert not np.allclose(losses[0], losses[1])  # independently seeded members
    z = [(loss - loss.mean()) / loss.std() for loss in losses]
    np.testing.assert_allclose(det.score_samples(X), -np.mean(z, axis=0), atol=1e-10)
    assert abs(det.score_samples(X).mean()) < 1e-10  # each member is centred on its training losses


def test_outlier_detector_keep_fraction_refits_on_the_best_reconstructed_rows():
    rng = np.random.default_rng(0)
    X = np.vstack([_low_rank(100), rng.normal(size=(10, 5)) * 8.0])  # 10 far rows
    det = AutoencoderOutlierDetector(latent_dim=2, hidden=(8,), epochs=3, keep_fraction=0.9, n_estimators=1,
                                     random_state=0).fit(X)
    first = AutoencoderOutlierDetector(latent_dim=2, hidden=(8,), epochs=3, n_estimators=1, random_state=0).fit(X)
    loss = first._per_sample_loss(X)
    kept = X[loss <= np.quantile(loss, 0.9)]
    assert len(kept) == 99 and np.sum(loss[100:] > np.quantile(loss, 0.9)) >= 8  # the far rows are dropped
    again, _ = det._train_one(kept, det._seed)  # the same seed on the kept rows: the same model
    for a, b in zip(again.parameters(), det.model_.parameters()):
        torch.testing.assert_close(a, b)
    for bad in ({"keep_fraction": 0.0}, {"keep_fraction": 1.5}, {"n_estimators": 0}):
        with pytest.raises(aekit.ConfigError, match=next(iter(bad))):
            AutoencoderOutlierDetector(epochs=1, **bad).fit(X)


def test_latent_dim_auto_grows_with_the_input_width():
    for d, k in ((5, 3), (16, 4), (17, 5)):  # ceil(sqrt(d))
        X = np.random.default_rng(0).normal(size=(40, d))
        det = AutoencoderOutlierDetector(latent_dim="auto", hidden=(8,), epochs=1).fit(X)
        assert det.model_.latent_dim == k
        tr = AutoencoderTransformer(latent_dim="auto", hidden=(8,), epochs=1).fit(X)
        assert tr.transform(X).shape == (40, k) and tr.get_feature_names_out().shape == (k,)
    with pytest.raises(aekit.ConfigError, match="latent_dim"):
        AutoencoderOutlierDetector(latent_dim="wide", epochs=1).fit(X)
