"""The k-sparse code (Makhzani & Frey 2013): exactly k non-zeros per row, the largest pre-activations kept
unchanged, gradients only through the kept units."""

from __future__ import annotations

import pytest
import torch

import aekit
from aekit.axes.bottlenecks import TopKBottleneck


def test_exactly_k_nonzeros_per_row_are_the_largest_preactivations():
    torch.manual_seed(0)
    b = TopKBottleneck(in_features=5, latent_dim=7, k=3)
    h = torch.randn(11, 5)
    a = b.linear(h)  # (B, D)
    z = b(h).z
    assert ((z != 0).sum(dim=1) == 3).all()
    kept = z != 0
    assert torch.equal(z[kept], a[kept])  # kept units unchanged (not rectified, not rescaled)
    smallest_kept = torch.where(kept, a, torch.full_like(a, float("inf"))).amin(dim=1)  # (B,)
    largest_dropped = torch.where(kept, torch.full_like(a, -float("inf")), a).amax(dim=1)
    assert (smallest_kept > largest_dropped).all()
    assert torch.equal(b(h).mean, z)


def test_gradients_flow_only_through_the_kept_units():
    torch.manual_seed(1)
    b = TopKBottleneck(in_features=4, latent_dim=6, k=2)
    h = torch.randn(1, 4, requires_grad=True)  # one row: the gradient of W's row j is zero unless j is kept
    z = b(h).z
    upstream = torch.randn_like(z)
    (z * upstream).sum().backward()
    kept = (z != 0)[0]  # (D,)
    w_grad = b.linear.weight.grad  # (D, H): d/dW_j = upstream_j * h for a kept j, 0 otherwise
    assert torch.equal(w_grad[~kept], torch.zeros_like(w_grad[~kept]))
    torch.testing.assert_close(w_grad[kept], upstream[0, kept, None] * h.detach()[0][None, :])
    torch.testing.assert_close(b.linear.bias.grad, upstream[0] * kept)
    torch.testing.assert_close(h.grad[0], (upstream[0] * kept) @ b.linear.weight.detach())


@pytest.mark.parametrize("k", [0, 8, 2.5, True])
def test_k_outside_one_to_latent_dim_is_refused(k):
    with pytest.raises(aekit.ConfigError, match="topk"):
        aekit.build(input_shape=(6,), latent_dim=7, bottleneck={"topk": {"k": k}})


def test_the_recipe_and_its_capabilities():
    model = aekit.build("ksparse", input_shape=(12,))
    assert model.config["bottleneck"] == {"topk": {"k": 25}} and model.latent_dim == 100
    assert model.provides("sparse_code") and not model.provides("bounded_code")
    with pytest.raises(aekit.ConfigError, match="'bounded_code'"):
        aekit.build("ksparse", input_shape=(12,), regularizers={"kl_sparsity": {}})
