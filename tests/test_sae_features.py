"""Feature-browser data: each latent's top activating rows (streaming, against a brute-force sort), firing
rates, and rows mapped back to (input, position) through what capture records."""

import pytest
import torch
from torch import nn

from aekit.errors import DataError
from aekit.tasks.sae.capture import capture
from aekit.tasks.sae.features import TopActivations, feature_summary, row_origin


def test_top_activations_streaming_equals_a_full_sort():
    g = torch.Generator().manual_seed(0)
    codes = torch.relu(torch.randn(40, 5, generator=g) - 0.8)  # sparse, distinct values
    codes[:, 3] = 0.0  # never fires
    codes[:, 4] = 0.0
    codes[17, 4] = 2.0  # fires once
    top = TopActivations(5, k=3)
    for i in range(0, 40, 7):
        top.update(codes[i:i + 7])
    for j in range(3):
        order = torch.argsort(codes[:, j], descending=True)[:3]
        assert top.rows[j].tolist() == order.tolist()
        assert torch.equal(top.values[j], codes[order, j])
    assert top.rows[3].tolist() == [-1, -1, -1] and top.values[3].tolist() == [0, 0, 0]
    assert top.rows[4].tolist() == [17, -1, -1] and top.values[4].tolist() == [2.0, 0, 0]
    with pytest.raises(DataError, match=r"\(N, 5\)"):
        top.update(torch.zeros(2, 4))


def test_feature_summary_maps_top_rows_back_to_inputs_and_positions(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU())
    x = torch.randn(6, 1, 4, 4)
    store = capture(model, layer="1", data=x, store=tmp_path / "s", batch_size=4)
    assert store.meta == {"layer": "1", "layout": "channels_first", "positions": 16}
    summary = feature_summary(store, encode=lambda rows: rows, k=2, batch_size=10)
    maps = model(x).detach()  # (6, 3, 4, 4)
    for c in range(3):
        flat = maps[:, c].reshape(6, 16)
        best = int(flat.argmax())
        sample, position = row_origin(store, int(summary["top_rows"][c, 0]))
        assert (sample, position) == divmod(best, 16)
        assert float(summary["top_values"][c, 0]) == pytest.approx(float(flat.max()))
        assert float(summary["firing_rate"][c]) == pytest.approx(float((flat > 0).float().mean()))


def test_varying_lengths_leave_no_position_map(tmp_path):
    layer = nn.Linear(3, 2)
    host = nn.Sequential(layer)
    batches = [torch.randn(2, 5, 3), torch.randn(2, 4, 3)]  # (B, T, d) with T varying
    store = capture(host, layer="0", data=batches, store=tmp_path / "s")
    assert len(store) == 18 and store.meta["positions"] is None
    with pytest.raises(DataError, match="no fixed number of positions"):
        row_origin(store, 0)
