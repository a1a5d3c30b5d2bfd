"""Ex-post density estimation: a Gaussian mixture fitted on the training codes makes any deterministic
autoencoder generative (Ghosh et al. 2020, "From variational to deterministic autoencoders", sec. 4).

    sampler = ExPostSampler(n_components=10).fit(model, x_train)   # GMM on model.encode(x_train)
    images = sampler.sample(16)                                    # z ~ GMM, decoded to means

The mixture is scikit-learn's GaussianMixture (full covariances, fitted by EM); it is fitted after
training, in the calling process, on the codes of the data given.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..metrics.codes import eval_codes


class ExPostSampler:
    """GaussianMixture(n_components) on a trained model's codes; sample(n) decodes draws of it."""

    def __init__(self, n_components: int = 10, *, covariance_type: str = "full", seed: int = 0) -> None:
        if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
            raise ConfigError(f"n_components must be a positive integer; got {n_components!r}.")
        self.n_components, self.covariance_type, self.seed = n_components, covariance_type, int(seed)
        self.model = None
        self.gmm = None

    @torch.no_grad()
    def fit(self, model, x, *, batch_size: int = 1000) -> "ExPostSampler":
        """Encode x (N, *shape) with the model in eval mode and fit the mixture to the codes (N, D)."""
        from sklearn.mixture import GaussianMixture

        if model.uses_skips:
            raise ConfigError("an ex-post sampler decodes codes alone; this model's decoder uses skip connections "
                              "(skips=True).")
        x = model.as_input(x)
        if x.shape[0] < self.n_components:
            raise ConfigError(f"n_components={self.n_components} needs at least as many inputs; got {x.shape[0]}.")
        z = eval_codes(model, x, batch_size=batch_size)  # (N, D)
        self.gmm = GaussianMixture(n_components=self.n_components, covariance_type=self.covariance_type,
                                   random_state=self.seed).fit(z.double().cpu().numpy())
        self.model = model
        return self

    def sample_codes(self, n: int) -> torch.Tensor:
        """n codes drawn from the mixture: (n, D) in the model's dtype and device."""
        if self.gmm is None:
            raise ConfigError("the ex-post sampler is not fitted: call fit(model, x) first.")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be a positive integer; got {n!r}.")
        z, _ = self.gmm.sample(n)
        p = next(self.model.parameters())
        return torch.as_tensor(z, dtype=p.dtype, device=p.device)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n draws decoded to reconstruction means: (n, *input_shape)."""
        z = self.sample_codes(n)
        was = self.model.training
        self.model.eval()
        try:
            return self.model.decode(z)
        finally:
            self.model.train(was)
