"""SAE metrics against hand-computed values: L0, FVU, dead/dense latents, the downstream splice."""

import pytest
import torch
from torch import nn

from aekit.errors import ConfigError, DataError
from aekit.tasks.sae.metrics import (FVU, FiringTracker, downstream_effect, fraction_loss_recovered, fvu, l0,
                                    reconstruction_metrics, splice)
from aekit.tasks.sae.store import ActivationStore


def test_l0_of_a_known_matrix():
    codes = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [3.0, -4.0, 5.0]])
    assert l0(codes) == pytest.approx(5 / 3, abs=1e-12)
    with pytest.raises(DataError, match="codes"):
        l0(torch.zeros(3))


def test_fvu_values():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 2.0, 3.0, 4.0]) + 7
    assert fvu(x, x.mean(0).expand_as(x)) == pytest.approx(1.0, abs=1e-12)  # the mean predictor
    assert fvu(x, x) == 0.0
    centred = x - x.mean(0)
    assert fvu(x, x.mean(0) + 0.5 * centred) == pytest.approx(0.25, abs=1e-6)  # half the deviation: a quarter of the variance
    streamed = FVU().update(x[:17], x[:17] * 0.9).update(x[17:], x[17:] * 0.9).value()
    assert streamed == pytest.approx(fvu(x, x * 0.9), rel=1e-9)


def test_firing_tracker_dead_window_and_dense_rate():
    t = FiringTracker(3, window=3)
    # latent 0 fires on row 0 only; latent 1 on every row; latent 2 never
    t.update(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))
    assert t.dead_mask().tolist() == [False, False, False]  # fewer than `window` samples seen
    t.update(torch.tensor([[0.0, 2.0, 0.0]]))
    assert t.dead_mask().tolist() == [False, False, True]  # latent 0 fired on the first of the last 3 rows: still alive
    t.update(torch.tensor([[0.0, 2.0, 0.0]]))
    assert t.dead_mask().tolist() == [True, False, True] and t.dead_fraction() == pytest.approx(2 / 3)
    t.update(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))  # latent 2 fires on the last row: alive again
    assert t.dead_mask().tolist() == [True, False, False]
    assert t.since_fired.tolist() == [5, 2, 0]  # rows since each last fired
    # window 3 is covered by the last two batches (1 + 2 rows): rates over those 3 rows
    assert t.firing_rate().tolist() == pytest.approx([0.0, 1 / 3, 1 / 3])
    assert t.dense_fraction(0.3) == pytest.approx(2 / 3) and t.dense_fraction(0.5) == 0.0
    with pytest.raises(DataError, match=r"\(N, 3\)"):
        t.update(torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="window"):
        FiringTracker(3, window=0)


def _classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


def _batches():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 5, generator=g)
    y = torch.randint(0, 3, (40,), generator=g)
    return [(x[:25], y[:25]), (x[25:], y[25:])]


def test_splice_identity_recovers_the_loss_exactly_and_zero_recovers_none():
    model = _classifier()
    exact = downstream_effect(model, layer="1", reconstruct=lambda rows: rows.clone(), data=_batches())
    assert exact["loss_sae"] == exact["loss_original"] and exact["fraction_loss_recovered"] == 1.0
    assert exact["accuracy_sae"] == exact["accuracy_original"]
    assert exact["loss_zero"] != exact["loss_original"]
    zero = downstream_effect(model, layer="1", reconstruct=torch.zeros_like, data=_batches())
    assert zero["fraction_loss_recovered"] == 0.0 and zero["loss_sae"] == zero["loss_zero"]
    # zero-ablation's loss is the loss of the last layer's bias alone
    y = torch.cat([b[1] for b in _batches()])
    with torch.no_grad():
        bias_only = nn.functional.cross_entropy(model[2].bias.expand(40, 3), y)
    assert zero["loss_zero"] == pytest.approx(float(bias_only), rel=1e-6)
    assert not model[1]._forward_hooks  # the splice hook is gone


def test_splice_on_a_conv_map_replaces_rows_per_position():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
    x = torch.randn(4, 1, 3, 3)
    scale = torch.tensor([2.0, -1.0])  # a per-channel map: acts on each position's (C,) row
    with splice(model, layer="0", fn=lambda rows: rows * scale):
        spliced = model(x)
    expected = model[2](model[1](model[0](x) * scale[None, :, None, None]))
    assert torch.allclose(spliced, expected, atol=1e-6)
    with pytest.raises(DataError, match="rows of shape"):
        with splice(model, layer="0", fn=lambda rows: rows[:, :1]):
            model(x)


def test_fraction_loss_recovered_formula():
    assert fraction_loss_recovered(loss_original=1.0, loss_sae=2.0, loss_zero=3.0) == 0.5
    assert fraction_loss_recovered(loss_original=1.0, loss_sae=4.0, loss_zero=3.0) == -0.5


def test_reconstruction_metrics_over_a_store(tmp_path):
    x = torch.zeros(30, 4)
    x[:, 0] = 1.0  # latent 0 fires on every row (dense)
    x[::3, 1] = 2.0  # latent 1 on a third of them
    x[5, 2] = 3.0  # latent 2 once; latent 3 never (dead)
    store = ActivationStore.create(tmp_path / "s", d=4)
    store.append(x)
    identity = reconstruction_metrics(store, encode=lambda r: r, decode=lambda c: c, batch_size=7)
    assert identity["rows"] == 30 and identity["fvu"] == 0.0
    assert identity["l0"] == pytest.approx((30 + 10 + 1) / 30) and identity["l0"] == pytest.approx(l0(x))
    assert identity["dead_fraction"] == 0.25 and identity["dense_fraction"] == 0.5  # latents 0 and 1 above 10%
    halved = reconstruction_metrics(store, encode=lambda r: r, decode=lambda c: c * 0.5, max_rows=20)
    assert halved["rows"] == 20 and halved["fvu"] == pytest.approx(fvu(x[:20], x[:20] * 0.5), rel=1e-9)


def test_splice_into_an_aekit_autoencoder_uses_its_own_loss():
    from pathlib import Path

    import aekit

    run = Path(__file__).parent / "fixtures" / "v1" / "ae"
    x = torch.randn(12, 6, generator=torch.Generator().manual_seed(0))
    exact = downstream_effect(run, layer="encoder", reconstruct=lambda rows: rows.clone(), data=x, batch_size=5)
    model = aekit.load(run)
    with torch.no_grad():
        own = float(model(x).loss)
    assert exact["loss_original"] == pytest.approx(own, rel=1e-6) and exact["fraction_loss_recovered"] == 1.0
    assert "accuracy_original" not in exact and exact["loss_zero"] != exact["loss_original"]
    with pytest.raises(ConfigError, match="loss_fn"):
        downstream_effect(nn.Sequential(nn.Linear(3, 2)), layer="0", reconstruct=torch.zeros_like, data=torch.randn(2, 3))
