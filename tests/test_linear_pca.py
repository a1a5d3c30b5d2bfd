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
    assert model.config["hidden"] == [] and model.config["activation"] == "identity"
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
