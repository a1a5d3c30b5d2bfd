"""The dihedral group as augmentation and self-ensemble (aekit.training.dihedral), and augment='dihedral' in training."""

import pytest
import torch

from aekit.errors import ConfigError
from aekit.training.dihedral import (RECTANGLE, SQUARE, RandomDihedral, dihedral, self_ensemble, symmetries,
                                     undo_dihedral)


def _img(h=5, w=5, n=3):
    return torch.arange(n * 2 * h * w, dtype=torch.float32).reshape(n, 2, h, w)  # every pixel distinct


def test_the_eight_symmetries_are_distinct_and_invertible():
    x = _img()
    outs = [dihedral(x, k) for k in SQUARE]
    for k, y in zip(SQUARE, outs):
        assert torch.equal(undo_dihedral(y, k), x)
    assert len({tuple(y.flatten().tolist()) for y in outs}) == 8  # the group has 8 elements
    # closed under composition: turning a turned image is again one of the eight
    for a in SQUARE:
        for b in SQUARE:
            assert any(torch.equal(dihedral(dihedral(x, a), b), y) for y in outs)
    # k = 1 is one counter-clockwise quarter turn: the top-right pixel moves to the top-left
    assert dihedral(x, 1)[0, 0, 0, 0] == x[0, 0, 0, -1]
    assert torch.equal(dihedral(x, 4), x.flip(-1))


def test_a_rectangle_keeps_its_shape_under_its_four_symmetries():
    x = _img(h=3, w=6)
    assert symmetries(x) == RECTANGLE and symmetries(_img()) == SQUARE
    outs = [dihedral(x, k) for k in RECTANGLE]
    assert all(y.shape == x.shape for y in outs)
    assert len({tuple(y.flatten().tolist()) for y in outs}) == 4
    assert torch.equal(dihedral(x, 6), x.flip(-2))  # the half turn then a left-right flip is the up-down flip
    for k in RECTANGLE:
        assert torch.equal(undo_dihedral(dihedral(x, k), k), x)


def test_random_dihedral_turns_each_image_by_one_symmetry_uniformly():
    x = _img(n=4000)
    g = torch.Generator().manual_seed(0)
    y = RandomDihedral()(x, g)
    counts = torch.zeros(8)
    for i in range(x.shape[0]):
        ks = [k for k in SQUARE if torch.equal(dihedral(x[i], k), y[i])]
        assert len(ks) == 1  # exactly one symmetry, per image
        counts[ks[0]] += 1
    # uniform over 8: each count ~ Binomial(4000, 1/8), mean 500, sd 21; 6 sd bounds
    assert counts.min() > 500 - 6 * 21 and counts.max() < 500 + 6 * 21
    assert not torch.equal(RandomDihedral()(x, torch.Generator().manual_seed(1)), y)
    assert torch.equal(RandomDihedral()(x, torch.Generator().manual_seed(0)), y)  # seeded


def test_random_dihedral_leaves_labels_and_refuses_non_images():
    x, labels = _img(n=6), torch.arange(6)
    g = torch.Generator().manual_seed(0)
    xb, yb = RandomDihedral()((x, labels), g)
    assert torch.equal(yb, labels) and xb.shape == x.shape
    d = RandomDihedral()({"x": x, "y": labels}, g)
    assert torch.equal(d["y"], labels) and d["x"].shape == x.shape
    with pytest.raises(ConfigError, match="augment='dihedral' needs image batches"):
        RandomDihedral()(torch.zeros(4, 10), g)


def test_self_ensemble_of_a_shift_is_the_mean_of_the_four_shifts():
    """A map that shifts the image one pixel right is not symmetric: averaged over the group it becomes the mean
    of the shifts right, left, up and down (each reached by two of the eight symmetries)."""
    x = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    out = self_ensemble(lambda t: torch.roll(t, 1, dims=-1), x)
    four = sum(torch.roll(x, s, dims=d) for s in (1, -1) for d in (-1, -2)) / 4
    assert torch.allclose(out, four, atol=1e-6)
    assert torch.allclose(self_ensemble(lambda t: 3 * t, x), 3 * x)  # a symmetric map is unchanged
    rect = torch.randn(2, 1, 4, 6)
    out = self_ensemble(lambda t: torch.roll(t, 1, dims=-1), rect)  # 4 symmetries: right and left only
    assert torch.allclose(out, (torch.roll(rect, 1, dims=-1) + torch.roll(rect, -1, dims=-1)) / 2, atol=1e-6)
    with pytest.raises(ConfigError, match="self-ensemble needs image batches"):
        self_ensemble(lambda t: t, torch.zeros(3, 4))


@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
def test_training_with_augment_dihedral_and_its_errors(tmp_path):
    import aekit
    from aekit.training.trainer import TrainConfig

    with pytest.raises(ConfigError, match="augment"):
        TrainConfig(augment="mirror")
    x = torch.rand(16, 1, 8, 8)
    model = aekit.build("ae", input_shape=(1, 8, 8), backbone="conv", channels=[4], latent_dim=3, seed=0)
    r = aekit.fit(model, x, epochs=2, batch_size=8, augment="dihedral", out_dir=tmp_path / "a", progress=False)
    assert len(r.history) == 2
    table = aekit.build("ae", input_shape=(10,), hidden=[8], latent_dim=2, seed=0)
    with pytest.raises(ConfigError, match="augment='dihedral' needs image batches"):
        aekit.fit(table, torch.rand(16, 10), epochs=1, batch_size=8, augment="dihedral", progress=False)


@pytest.mark.filterwarnings("ignore::aekit.errors.ShortRunWarning")
def test_augmented_training_resumes_bit_identically(tmp_path):
    """The augmentation's random stream is the trainer's checkpointed transform generator: 2 + 2 epochs == 4 (a
    constant learning rate without warm-up, so nothing depends on the planned length)."""
    import aekit

    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def build():
        return aekit.build("ae", input_shape=(1, 8, 8), backbone="conv", channels=[4], latent_dim=3, seed=0)

    full = build()
    aekit.fit(full, x, epochs=4, batch_size=8, augment="dihedral", out_dir=tmp_path / "full", progress=False,
              schedule="none", warmup_steps=0)
    part = build()
    aekit.fit(part, x, epochs=2, batch_size=8, augment="dihedral", out_dir=tmp_path / "part", progress=False,
              schedule="none", warmup_steps=0)
    part = build()
    aekit.fit(part, x, epochs=4, batch_size=8, augment="dihedral", out_dir=tmp_path / "part", resume=True,
              progress=False, schedule="none", warmup_steps=0)
    for a, b in zip(full.state_dict().values(), part.state_dict().values()):
        assert torch.equal(a, b)
    plain = build()  # and the augmentation did change the training
    aekit.fit(plain, x, epochs=4, batch_size=8, out_dir=tmp_path / "plain", progress=False, schedule="none", warmup_steps=0)
    assert any(not torch.equal(a, b) for a, b in zip(full.state_dict().values(), plain.state_dict().values()))


def test_denoise_with_the_ensemble_is_the_mean_of_the_turned_reconstructions():
    import aekit
    from aekit.tasks.denoise import denoise

    model = aekit.build("dae", input_shape=(1, 6, 6), backbone="conv", channels=[4], latent_dim=3, seed=0)
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = sum(undo_dihedral(model.reconstruct(dihedral(x, k)), k) for k in SQUARE) / 8
    assert torch.allclose(denoise(model, x, ensemble=True, batch_size=2), want, atol=1e-6)
    assert torch.allclose(denoise(model, x), model.eval().reconstruct(x))
    table = aekit.build("dae", input_shape=(10,), hidden=[8], latent_dim=2, seed=0)
    with pytest.raises(ConfigError, match="ensemble needs images"):
        denoise(table, torch.rand(3, 10), ensemble=True)


def test_which_runs_denoise_with_the_ensemble_by_default():
    from aekit.tasks.denoise import ensemble_by_default

    assert ensemble_by_default({"denoise": {"ensemble": True}})  # chosen on validation by 'aekit train dae'
    assert not ensemble_by_default({"denoise": {"ensemble": False}, "train": {"augment": "dihedral"}})  # the record wins
    assert ensemble_by_default({"train": {"augment": "dihedral"}})  # trained on the symmetries
    assert ensemble_by_default({"denoise": {"choose": "validation", "ensemble": None}, "train": {"augment": "dihedral"}})
    for info in ({}, {"train": {"epochs": 3}}, {"denoise": {"ensemble": "yes"}}, {"denoise": None}, None, [],
                 {"denoise": {"choose": "validation", "ensemble": None}}):  # undecided (interrupted): one pass
        assert not ensemble_by_default(info)  # runs that record nothing (older ones too): one pass


class _Turned(torch.nn.Module):
    """A 'denoiser' that is right on upright images only: it returns its input, except that an image whose
    top-left pixel is not its largest gets a fixed offset (so turned copies are reconstructed badly)."""

    def __init__(self, offset: float):
        super().__init__()
        self.offset = offset
        self.corruption = torch.nn.Identity()

    def check_input(self, x, name="x"):
        pass

    def reconstruct(self, x):
        upright = (x[..., 0, 0] == x.flatten(-2).amax(-1))[..., None, None]
        return torch.where(upright, x, x + self.offset)


def test_compare_ensemble_prefers_what_has_the_lower_error():
    from aekit.training.denoise_ensemble import compare_ensemble

    x = torch.rand(6, 1, 5, 5, generator=torch.Generator().manual_seed(0)) * 0.5
    x[..., 0, 0] = 1.0  # upright: the top-left pixel is the largest
    # exact on upright images, off by 0.2 on the others. Two of the eight symmetries keep the top-left pixel where
    # it is (the identity and the transpose), so the ensemble's mean is off by 6/8 * 0.2 = 0.15 at every pixel but
    # the top-left one, where 1.15 is clipped back to 1: MSE 0.15^2 * 24/25; one pass is exact.
    out = compare_ensemble(_Turned(0.2), x)
    assert out["ensemble"] is False and out["mse_one_pass"] == 0.0
    assert out["mse_ensemble"] == pytest.approx(0.15 ** 2 * 24 / 25, rel=1e-5)
    out = compare_ensemble(_Turned(0.0), x)  # a symmetric map: equal errors (up to rounding): one pass is kept
    assert out["ensemble"] is False and out["mse_one_pass"] == 0.0 and out["mse_ensemble"] < 1e-12


def test_a_dae_on_images_chooses_its_ensemble_on_its_validation_images(tmp_path):
    """'aekit train dae' on images records "denoise": {"choose": "validation", "ensemble": <bool>, "validation":
    {...}}, the bool being exactly the lower of the two recorded errors, and 'aekit denoise' follows it."""
    import json

    import numpy as np

    from aekit.training.train_run import train_run

    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    summary = train_run(tmp_path / "r", variant="dae", data={"source": str(tmp_path / "x.npy"), "val_fraction": 0.25},
                        model={}, train={"epochs": 1, "batch_size": 8, "progress": False})
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    rec = info["denoise"]
    assert rec["choose"] == "validation" and isinstance(rec["ensemble"], bool)
    v = rec["validation"]
    assert v["images"] == 10 and rec["ensemble"] == (v["mse_ensemble"] < v["mse_one_pass"])
    assert summary["denoise_ensemble"] == rec["ensemble"]
    from aekit.tasks.denoise import denoise_run

    assert denoise_run(tmp_path / "r", data=str(tmp_path / "x.npy"))["ensemble"] == rec["ensemble"]
    from aekit.training.denoise_ensemble import choose_ensemble_for_run

    none = choose_ensemble_for_run(tmp_path / "r", torch.zeros(0, 1, 8, 8))  # no validation images: one pass
    assert none["ensemble"] is False and none["validation"] is None
    assert json.loads((tmp_path / "r" / "run.json").read_text())["denoise"]["ensemble"] is False
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    del info["denoise"]
    (tmp_path / "r" / "run.json").write_text(json.dumps(info))
    assert choose_ensemble_for_run(tmp_path / "r", torch.rand(4, 1, 8, 8)) is None  # a run that asks for no choice
