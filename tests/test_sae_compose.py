"""The SAE pieces compose: a TopK SAE (Gao et al. 2024) trained by a bare loop of this test on superposition
data, with the unit-norm decoder, encoder = decoder transpose, geometric-median pre-bias, activation scale
and AuxK, recovers most true features; folding the scale keeps its outputs. (The library trains SAEs
through the one trainer; this loop only checks that the pieces fit together.)"""

import torch

from aekit.tasks.sae import (FiringTracker, activation_scale, auxk_loss, feature_recovery, fold_activation_scale, fvu,
                             geometric_median, init_encoder_from_decoder_, l0, normalize_decoder_, project_decoder_grad_,
                             random_decoder, sae_forward, superposition_data)


def _topk(k):
    def act(h):  # (N, m) -> (N, m) with the k largest kept (ReLU'd)
        values, indices = h.topk(k, dim=1)
        return torch.zeros_like(h).scatter(1, indices, torch.relu(values))
    return act


def test_topk_sae_from_the_pieces_recovers_superposed_features():
    torch.manual_seed(0)
    d, n, m, k = 8, 16, 32, 2
    x, true, _ = superposition_data(4096, n_features=n, dim=d, p=0.05, seed=0)
    s = activation_scale(x)
    dec = random_decoder(d, m, seed=1).requires_grad_(True)
    enc = torch.empty(m, d)
    init_encoder_from_decoder_(enc, dec.detach())
    enc.requires_grad_(True)
    b_enc = torch.zeros(m, requires_grad=True)
    b_dec = geometric_median(x[:1024] * s).requires_grad_(True)
    before = feature_recovery(dec.detach(), true)
    opt = torch.optim.Adam([dec, enc, b_enc, b_dec], lr=1e-2)
    tracker, act = FiringTracker(m, window=2048), _topk(k)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        xb = x[torch.randint(0, x.shape[0], (256,), generator=g)] * s  # (256, d)
        pre = (xb - b_dec) @ enc.T + b_enc  # (256, m)
        z = act(pre)
        x_hat = z @ dec.T + b_dec
        tracker.update(z)
        loss = (x_hat - xb).pow(2).sum(1).mean() + auxk_loss(xb, x_hat, pre, dec, tracker.dead_mask(), k_aux=8) / 32
        opt.zero_grad()
        loss.backward()
        project_decoder_grad_(dec)
        opt.step()
        normalize_decoder_(dec)
        assert torch.allclose(dec.detach().norm(dim=0), torch.ones(m), atol=1e-5)  # unit norm after each step
    after = feature_recovery(dec.detach(), true)
    assert before["fraction_recovered"] < 0.1 and after["fraction_recovered"] > 0.7 and after["mean_max_cosine"] > 0.9
    weights = {"encoder.weight": enc.detach(), "encoder.bias": b_enc.detach(), "decoder.weight": dec.detach(),
               "decoder.bias": b_dec.detach()}
    z, x_hat = sae_forward(x, weights, activation=act, scale=s)
    z2, x_hat2 = sae_forward(x, fold_activation_scale(weights, scale=s), activation=act)  # raw activations in and out
    assert torch.allclose(x_hat, x_hat2, atol=1e-5) and torch.allclose(z, z2, atol=1e-5)
    assert l0(z) <= k and fvu(x, x_hat) < 0.2
