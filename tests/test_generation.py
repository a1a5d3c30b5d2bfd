"""Generation: slerp/lerp by hand, the conditional VAE's contract, class-conditional samples, the CLI.

The cvae's class-conditional samples are checked by a logistic regression trained on real digits:
samples asked for class k must be classified as k far above chance (10%).
"""

from __future__ import annotations

import math

import json

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import aekit
from aekit.data import load_data
from aekit.interpolation import interpolate_codes, lerp, slerp
from aekit.training.trainer import TrainConfig, Trainer
from cli_helpers import cli

# ---------------------------------------------------------------------- slerp by hand


def _angle(u: torch.Tensor, v: torch.Tensor) -> float:
    u, v = u.double(), v.double()  # acos near 1 needs the precision
    return math.atan2(float(torch.linalg.norm(u * v.norm() - v * u.norm())), float(torch.linalg.norm(u * v.norm() + v * u.norm()))) * 2


def test_slerp_of_orthogonal_unit_vectors_is_the_quarter_circle():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    path = slerp(a, b, t)
    expected = torch.stack([torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)], dim=1)  # (cos, sin) of t * 90 deg
    assert_close(path, expected)
    assert_close(path[2], torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]))
    assert_close(lerp(a, b, t)[2], torch.tensor([0.5, 0.5]))  # the chord's midpoint has norm 0.71, not 1


def test_slerp_keeps_the_norm_and_moves_the_angle_linearly():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, generator=g)
    b = torch.randn(6, generator=g)
    b = b / b.norm() * a.norm()  # equal norms
    omega = _angle(a, b)
    t = torch.linspace(0, 1, 7)
    path = interpolate_codes(a, b, 7, mode="slerp")
    assert_close(path[0], a)
    assert_close(path[-1], b)
    for ti, z in zip(t.tolist(), path):
        assert float(z.norm()) == pytest.approx(float(a.norm()), rel=1e-5)
        assert _angle(a, z) == pytest.approx(ti * omega, abs=1e-5)
        assert _angle(z, b) == pytest.approx((1 - ti) * omega, abs=1e-5)
    linear = interpolate_codes(a, b, 7, mode="linear")
    assert float(linear[3].norm()) < float(a.norm()) * math.cos(omega / 2) + 1e-5  # the chord dips inside


def test_slerp_of_unequal_norms_follows_the_formula():
    a, b = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    mid = slerp(a, b, torch.tensor([0.5]))[0]
    s = math.sin(math.pi / 4)  # sin((1 - t) W) / sin W with W = 90 deg, t = 1/2
    assert_close(mid, torch.tensor([2 * s, s]))


def test_slerp_of_parallel_or_opposite_codes_is_the_straight_line():
    a = torch.tensor([1.0, 2.0, 3.0])
    t = torch.linspace(0, 1, 5)
    assert_close(slerp(a, 2 * a, t), lerp(a, 2 * a, t))  # parallel: sin W = 0, the formula's limit
    assert_close(slerp(a, -a, t), lerp(a, -a, t))  # opposite: no unique great circle
    assert_close(slerp(torch.zeros(3), a, t), lerp(torch.zeros(3), a, t))  # no direction at the origin


def test_interpolation_mode_and_steps_are_checked():
    a, b = torch.zeros(3), torch.ones(3)
    with pytest.raises(aekit.ConfigError, match="Did you mean 'slerp'"):
        interpolate_codes(a, b, 4, mode="slrep")
    with pytest.raises(aekit.ConfigError, match="steps"):
        interpolate_codes(a, b, 1)


@torch.no_grad()
def test_model_interpolate_slerp_ends_at_the_inputs_and_differs_from_linear():
    model = aekit.build("vae", input_shape=(12,), hidden=[16], latent_dim=4, seed=0).eval()
    x = torch.rand(2, 12, generator=torch.Generator().manual_seed(1))
    lin = model.interpolate(x[0], x[1], steps=5)
    sph = model.interpolate(x[0], x[1], steps=5, mode="slerp")
    ends = model.decode(model.encode(x))
    assert_close(sph[0], ends[0])
    assert_close(sph[-1], ends[1])
    assert_close(lin[0], sph[0])
    assert not torch.allclose(lin[2], sph[2])
    za, zb = model.encode(x)
    assert_close(sph, model.decode(slerp(za, zb, torch.linspace(0, 1, 5))))


# ---------------------------------------------------------------------- the conditional VAE's contract
SHAPES = {"mlp": (12,), "conv": (1, 8, 8)}
K = 3


def make_cvae(backbone: str) -> aekit.Autoencoder:
    return aekit.build("cvae", input_shape=SHAPES[backbone], backbone=backbone, hidden=[16], channels=[4, 8],
                       latent_dim=3, num_classes=K, seed=0)


def batch(shape, n: int = 12):
    g = torch.Generator().manual_seed(1)
    return torch.rand((n, *shape), generator=g), torch.arange(n) % K


@pytest.mark.parametrize("backbone", ["mlp", "conv"])
def test_cvae_shapes_loss_terms_and_gradients(backbone):
    model = make_cvae(backbone).train()
    x, y = batch(SHAPES[backbone])
    out = model(x, y)
    assert out.x_hat.shape == x.shape and out.z.shape == (12, 3)
    assert set(out.terms) == {"nll", "kl_prior"}
    assert_close(out.loss, sum(out.weights[k] * out.terms[k] for k in out.terms))
    assert_close(out.per_sample.mean(), out.loss)
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # the label is an input of both halves: the columns that read it get gradient too
    k_cols = model.bottleneck.mu.weight.grad[:, -K:]
    assert k_cols.abs().sum() > 0
    assert model.bottleneck.mu.in_features == model.encoder.out_features + K


@pytest.mark.parametrize("backbone", ["mlp", "conv"])
@torch.no_grad()
def test_cvae_label_changes_encoder_and_decoder(backbone):
    model = make_cvae(backbone).eval()
    x, y = batch(SHAPES[backbone])
    z = model.encode(x, y)
    assert not torch.allclose(z, model.encode(x, (y + 1) % K))  # q(z | x, y) depends on y
    assert not torch.allclose(model.decode(z, y=y), model.decode(z, y=(y + 1) % K))  # p(x | z, y) too
    soft = torch.nn.functional.one_hot(y, K).float()
    assert_close(model.decode(z, y=soft), model.decode(z, y=y))  # (B, K) one-hot == indices
    assert_close(model.reconstruct(x, y), model.decode(z, y=y))


@pytest.mark.parametrize("backbone", ["mlp", "conv"])
def test_cvae_save_load_round_trip(backbone, tmp_path):
    model = make_cvae(backbone)
    x, y = batch(SHAPES[backbone])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        model(x, y).loss.backward()
        opt.step()
    model.eval()
    aekit.save(model, tmp_path / "m")
    loaded = aekit.load(tmp_path / "m")
    assert loaded.config == model.config and loaded.num_classes == K
    assert torch.equal(loaded(x, y).x_hat, model(x, y).x_hat)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(loaded.sample(7, generator=g(), label=2), model.sample(7, generator=g(), label=2))


@torch.no_grad()
def test_cvae_sample_labels_and_misuse():
    model = make_cvae("mlp").eval()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    s = model.sample(6, generator=g())  # balanced: 0, 1, 2, 0, 1, 2
    z = model.bottleneck.sample_prior(6, generator=g())
    assert_close(s, model.decode(z, y=torch.tensor([0, 1, 2, 0, 1, 2])))
    assert_close(model.sample(6, generator=g(), label=1), model.decode(z, y=torch.ones(6, dtype=torch.long)))
    x, y = batch((12,))
    with pytest.raises(aekit.ConfigError, match="conditional"):
        model(x)
    with pytest.raises(aekit.ConfigError, match=r"0\.\.2"):
        model(x, y + 5)
    with pytest.raises(aekit.ShapeError, match="expected 12"):
        model(x, y[:5])
    with pytest.raises(aekit.ConfigError, match=r"0\.\.2.*got 3"):
        model.sample(2, label=3)
    with pytest.raises(aekit.ConfigError, match="label_a, label_b"):
        model.interpolate(x[0], x[1])
    assert model.interpolate(x[0], x[1], steps=4, mode="slerp", y=(0, 2)).shape == (4, 12)
    plain = aekit.build("vae", input_shape=(12,), hidden=[16], latent_dim=3)
    with pytest.raises(aekit.ConfigError, match="not conditional"):
        plain(x, y)
    with pytest.raises(aekit.ConfigError, match="conditional model"):
        plain.sample(2, label=0)
    with pytest.raises(aekit.ConfigError, match="num_classes.*'posterior'.*bottleneck 'gaussian'"):
        aekit.build("ae", input_shape=(12,), num_classes=3)
    with pytest.raises(aekit.ConfigError, match="num_classes must be a positive integer"):
        aekit.build("cvae", input_shape=(12,), num_classes=0)


def test_trainer_slices_labels_with_the_same_permutation_and_validates_with_them():
    model = make_cvae("mlp")
    x = torch.rand(50, 12, generator=torch.Generator().manual_seed(2))
    y = torch.arange(50) % K
    x[:, 0] = torch.arange(50) / 50.0  # the row index is readable from the data
    seen = []
    forward = model.forward

    def spy(xb, yb=None):
        seen.append((model.training, xb.detach().clone(), yb))
        return forward(xb, yb)

    model.forward = spy
    trainer = Trainer(model, TrainConfig(epochs=2, batch_size=16, progress=False))
    trainer.fit(x[:40], x[40:], y_train=y[:40], y_val=y[40:])
    assert len(seen) == 2 * 3 + 2
    for training, xb, yb in seen:
        rows = (xb[:, 0] * 50).round().long()
        assert torch.equal(yb, y[rows]), "every label belongs to its own row"
    assert sum(not t for t, _, _ in seen) == 2  # validation ran with its labels
    with pytest.raises(aekit.ConfigError, match="pass y_train"):
        Trainer(make_cvae("mlp"), TrainConfig(epochs=1, progress=False)).fit(x)
    plain = aekit.build("vae", input_shape=(12,), hidden=[16], latent_dim=3)
    with pytest.raises(aekit.ConfigError, match="not conditional"):
        Trainer(plain, TrainConfig(epochs=1, progress=False)).fit(x, y_train=y)
    dataset = torch.utils.data.TensorDataset(x, y)  # the streaming path: the Dataset yields (x, y)
    result = Trainer(make_cvae("mlp"), TrainConfig(epochs=1, batch_size=16, progress=False)).fit(dataset, x[40:], y_val=y[40:])
    assert math.isfinite(result.history[-1]["val_loss"])


# ---------------------------------------------------------------------- class-conditional samples are recognisable


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def test_cvae_samples_are_recognised_as_the_requested_class(digits):
    from sklearn.linear_model import LogisticRegression

    model = aekit.build("cvae", input_shape=digits.shape, hidden=[128], latent_dim=4, num_classes=10, seed=0)
    aekit.fit(model, digits.train, y_train=digits.y_train, epochs=20, batch_size=64, lr=3e-3, progress=False)
    clf = LogisticRegression(max_iter=2000).fit(digits.train.reshape(len(digits.train), -1).numpy(), digits.y_train.numpy())
    real = clf.score(digits.test.reshape(len(digits.test), -1).numpy(), digits.y_test.numpy())
    with torch.no_grad():
        samples = model.eval().sample(200, generator=torch.Generator().manual_seed(0))  # 20 per class, in turn
    asked = np.arange(200) % 10
    acc = float((clf.predict(samples.reshape(200, -1).numpy()) == asked).mean())
    assert real > 0.9
    assert acc > 0.7, acc  # chance is 0.1; measured 1.0


# ---------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    for variant in ("cvae", "vae"):
        code, _, err = cli("train", variant, "--data", "digits", "--out", root / variant, "--epochs", "1",
                           "--hidden", "32", "--latent-dim", "3", "--quiet")
        assert code == 0, err
    return root


def test_cli_trains_a_cvae_with_the_data_labels(runs):
    model = aekit.load(runs / "cvae")
    assert model.variant == "cvae" and model.num_classes == 10


def test_cli_cvae_on_unlabelled_data_names_the_file(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.random.default_rng(0).random((30, 5)).astype(np.float32))
    code, _, err = cli("train", "cvae", "--data", path, "--out", tmp_path / "r", "--epochs", "1", "--quiet")
    assert code == 1 and "plain.npy" in err and "labels" in err and len(err.strip().splitlines()) == 1


def test_cli_sample_with_label(runs, tmp_path):
    code, _, err = cli("sample", runs / "cvae", "-n", "5", "--label", "3", "--out", tmp_path / "s.npy")
    assert code == 0, err
    model = aekit.load(runs / "cvae")
    with torch.no_grad():
        expected = model.sample(5, generator=torch.Generator().manual_seed(0), label=3)
    scale = json.loads((runs / "cvae" / "run.json").read_text())["dataset"]["scale"]  # the training data's units
    assert_close(torch.from_numpy(np.load(tmp_path / "s.npy")), expected.clamp(0, 1) * scale)
    code, _, err = cli("sample", runs / "cvae", "-n", "5", "--label", "10", "--out", tmp_path / "s.npy")
    assert code == 2 and "0..9" in err
    code, _, err = cli("sample", runs / "vae", "-n", "5", "--label", "1", "--out", tmp_path / "s.npy")
    assert code == 2 and "conditional" in err and len(err.strip().splitlines()) == 1


def test_cli_interpolate(runs, tmp_path):
    out = tmp_path / "path.npy"
    code, _, err = cli("interpolate", runs / "vae", "--pair", "0,5", "--steps", "6", "--mode", "slerp", "--out", out)
    assert code == 0, err
    path = np.load(out)
    assert path.shape == (6, 1, 8, 8)
    model = aekit.load(runs / "vae")
    x = load_data("digits").test
    with torch.no_grad():
        expected = model.interpolate(x[0], x[5], steps=6, mode="slerp") * 16.0  # digits' units: 0..16
    assert_close(torch.from_numpy(path), expected, rtol=1e-5, atol=1e-5)
    code, _, err = cli("interpolate", runs / "cvae", "--pair", "0,-1", "--out", tmp_path / "p.png")
    assert code == 0, err
    assert (tmp_path / "p.png").is_file()
    code, _, err = cli("interpolate", runs / "vae", "--pair", "0,9999", "--out", out)
    assert code == 2 and "9999" in err
    code, _, err = cli("interpolate", runs / "vae", "--mode", "slerpp", "--out", out)
    assert code == 2 and "slerp" in err


def test_cli_evaluate_encode_reconstruct_a_cvae_with_the_data_labels(runs, tmp_path):
    import json

    from aekit.data import load_data as _load

    code, out, err = cli("evaluate", runs / "cvae", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["variant"] == "cvae" and result["mse_per_pixel"] > 0
    code, _, err = cli("reconstruct", runs / "cvae", "--data", "digits", "--split", "test", "--out", tmp_path / "r.npy")
    assert code == 0, err
    code, _, err = cli("encode", runs / "cvae", "--data", "digits", "--split", "test", "--out", tmp_path / "z.npy")
    assert code == 0, err
    ds = _load("digits")
    model = aekit.load(runs / "cvae").eval()
    with torch.no_grad():  # the labels of the data went in: compare with the model given them by hand
        z = model.encode(ds.test, torch.as_tensor(ds.y_test, dtype=torch.long))
    assert_close(torch.from_numpy(np.load(tmp_path / "z.npy")), z, atol=1e-5, rtol=1e-5)
    code, _, err = cli("evaluate", runs / "cvae", "--iwae-k", "5")
    assert code == 2 and "conditional" in err
