"""The Autoencoder: one model for every variant, assembled from the five axes.

    x --corruption--> x~ --encoder--> (h, skips) --bottleneck--> Code(z, posterior?, aux)
    z (+ skips) --decoder--> params --likelihood.nll(x, params)--> per-sample NLL
    loss = mean over batch [ nll + sum(aux) + sum_k weight_k * regularizer_k ]

The target is always the clean x. `forward` returns an `AEOutput` whose `terms` (batch means,
unweighted) combined with `weights` give `loss` exactly: loss = sum_k weights[k] * terms[k].
A regularizer of several terms (tc, rae) adds each part as '<name>.<part>'. A gaussian bottleneck
with iwae_k = K replaces nll + KL by the K-sample importance-weighted bound (Burda et al. 2016),
logged as 'nll'.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .axes.bottlenecks import Code
from .axes.divergences import iwae_objective
from .conditioning import balanced_labels, label_input, label_tensor
from .errors import ConfigError, ShapeError
from .interpolation import interpolate_codes, interpolation_weights
from .axes.likelihoods import LOG_2PI, GaussianLikelihood
from .axes.regularizers import RegContext


@dataclass
class AEOutput:
    x_hat: torch.Tensor  # (B, *shape) reconstruction mean in data units
    z: torch.Tensor  # (B, D) the code the decoder saw
    code: Code
    loss: torch.Tensor  # () scalar = sum_k weights[k] * terms[k]
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> () batch mean, unweighted
    weights: dict[str, float] = field(default_factory=dict)  # name -> multiplier
    per_sample_: torch.Tensor | None = None  # (B,) weighted per-sample loss (anomaly scores)
    nll_: torch.Tensor | None = None  # (B,) negative log-likelihood of each clean input
    params: torch.Tensor | None = None  # (B, *shape) raw decoder output (logits for bernoulli)
    lazy_nll: Callable[[], torch.Tensor] | None = None  # computes nll_ on first use (the fast path)

    @property
    def nll(self) -> torch.Tensor | None:
        if self.nll_ is None and self.lazy_nll is not None:
            self.nll_ = self.lazy_nll()
        return self.nll_

    @property
    def per_sample(self) -> torch.Tensor | None:
        return self.per_sample_ if self.per_sample_ is not None else self.nll  # no penalties: the NLL itself


class Autoencoder(nn.Module):
    """Corruption x backbone x bottleneck x regularizers x likelihood. Build it with `aekit.build`."""

    def __init__(self, *, input_shape, corruption, encoder, bottleneck, decoder, likelihood,
                 regularizers: dict[str, nn.Module], config: dict | None = None,
                 capabilities=frozenset()) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.corruption = corruption
        self.encoder = encoder
        self.bottleneck = bottleneck
        self.decoder = decoder
        self.likelihood = likelihood
        self.regularizers = nn.ModuleDict(regularizers)
        self.config = dict(config or {})
        self.capabilities = frozenset(capabilities)  # what the ingredients provide (aekit.registry)

    # ----------------------------------------------------------------- properties
    @property
    def latent_dim(self) -> int:
        return self.bottleneck.latent_dim

    def provides(self, capability: str) -> bool:
        """Whether an ingredient of this model provides a capability ('posterior', 'bounded_code', 'skips', ...)."""
        return capability in self.capabilities

    def ingredient(self, axis: str) -> str | None:
        """The name of this model's ingredient on an axis ('bottleneck' -> 'gaussian'), from its config."""
        spec = self.config.get(axis)
        return next(iter(spec)) if isinstance(spec, dict) and len(spec) == 1 else spec

    @property
    def is_generative(self) -> bool:
        """A prior to sample from and a posterior to score: the bottleneck provides 'posterior'."""
        return self.provides("posterior")

    @property
    def prior_regularizers(self) -> list:
        """Regularizers that hold a prior to draw codes from (kl_vamp's mixture, adversarial's N(0, I))."""
        return [r for r in self.regularizers.values() if hasattr(r, "sample_prior")]

    @property
    def has_prior(self) -> bool:
        """sample() can draw without a fitted code prior: a posterior's N(0, I) or a regularizer's prior."""
        return self.provides("posterior") or bool(self.prior_regularizers)

    @property
    def uses_skips(self) -> bool:
        return bool(getattr(self.decoder, "use_skips", False))

    @property
    def variant(self) -> str | None:
        return self.config.get("variant")

    @property
    def num_classes(self) -> int:
        """K for a conditional model (the label is an input to encoder and decoder), else 0."""
        return int(self.config.get("num_classes") or 0)

    def _label(self, y, x: torch.Tensor) -> torch.Tensor | None:
        """(B, K) one-hot conditioning input for a conditional model; None otherwise (see conditioning.py)."""
        return label_input(y, num_classes=self.num_classes, batch=x.shape[0], like=x)

    @staticmethod
    def _join(h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return h if c is None else torch.cat([h, c], dim=1)  # (B, F) + (B, K) -> (B, F + K)

    def as_input(self, x, *, name: str = "x") -> torch.Tensor:
        """x as the model takes it, (B, *input_shape): NumPy arrays and pandas frames become tensors (on the
        model's device and dtype), and flattened images (B, C*H*W) are reshaped to (B, C, H, W)."""
        if not isinstance(x, torch.Tensor):
            from .inputs import as_float_tensor

            p = next(self.parameters(), None)
            x = as_float_tensor(x, name=name, dtype=p.dtype if p is not None else torch.float32,
                                device=p.device if p is not None else None)
        if len(self.input_shape) > 1 and x.dim() == 2 and x.shape[1] == math.prod(self.input_shape):
            x = x.reshape(x.shape[0], *self.input_shape)  # (B, C*H*W) -> (B, C, H, W)
        self.check_input(x, name=name)
        return x

    def check_input(self, x: torch.Tensor, *, name: str = "x") -> None:
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"{name} must be a torch.Tensor; got {type(x).__name__}.")
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"{name} has shape {tuple(x.shape)}; expected (batch, {', '.join(map(str, self.input_shape))}) "
                f"for a model built with input_shape={self.input_shape}."
            )
        if not x.is_floating_point():
            raise ShapeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}.")

    def check_latent(self, z: torch.Tensor, *, name: str = "z") -> None:
        if self.provides("spatial_code"):  # a fully convolutional backbone: (B, latent_dim, H_L, W_L)
            if not isinstance(z, torch.Tensor) or z.dim() != 4 or z.shape[1] != self.latent_dim:
                shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
                raise ShapeError(f"{name} has shape {shape}; expected (batch, {self.latent_dim}, height, width).")
            return
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ShapeError(f"{name} has shape {shape}; expected (batch, {self.latent_dim}).")

    # ----------------------------------------------------------------- pieces
    def encode_code(self, x: torch.Tensor, y=None) -> tuple[Code, list]:
        x = self.as_input(x)
        c = self._label(y, x)
        h, skips = self.encoder(x)  # (B, F), [skip maps]
        return self.bottleneck(self._join(h, c)), skips

    def encode(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """The deterministic code of clean x: z for deterministic bottlenecks, mu for Gaussian ones."""
        code, _ = self.encode_code(x, y)
        return code.mean  # (B, D)

    def decode_params(self, z: torch.Tensor, skips=(), *, y=None) -> torch.Tensor:
        if self.provides("spatial_code") and isinstance(z, torch.Tensor) and z.dim() == 2:
            deep = tuple(self.decoder.deep_shape[1:])  # flattened codes of the model's input size, as encode_codes gives
            if z.shape[1] == self.latent_dim * math.prod(deep):
                z = z.reshape(z.shape[0], self.latent_dim, *deep)  # (B, C * H_L * W_L) -> (B, C, H_L, W_L)
        self.check_latent(z)
        c = self._label(y, z)
        if self.uses_skips and not skips:
            raise ConfigError(
                "this model's decoder uses U-Net skip connections (skips=True), so it cannot decode a code "
                "alone; use reconstruct(x) or build it with skips=False."
            )
        return self.decoder(self._join(z, c), skips)

    def decode(self, z: torch.Tensor, skips=(), *, y=None) -> torch.Tensor:
        """Reconstruction mean for codes z: (B, D) -> (B, *input_shape)."""
        return self.likelihood.mean(self.decode_params(z, skips, y=y))

    def reconstruct(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """Decode the deterministic code of clean x (no corruption, no sampling); (B, *input_shape)."""
        x = self.as_input(x)
        code, skips = self.encode_code(x, y)
        return self.likelihood.mean(self.decoder(self._join(code.mean, self._label(y, x)), skips))

    # ----------------------------------------------------------------- training objective
    def forward(self, x: torch.Tensor, y=None) -> AEOutput:
        """The training objective on x; y: the labels (B,) of a conditional model (num_classes), else None."""
        x = self.as_input(x)
        c = self._label(y, x)  # (B, K) one-hot, or None
        x_in = self.corruption(x)  # (B, *shape); the clean x stays the target
        needs_grad = any(r.needs_input_grad and r.weight > 0 for r in self.regularizers.values())
        if needs_grad:
            x_in = x_in.detach().requires_grad_(True)
        with torch.enable_grad() if needs_grad else contextlib.nullcontext():  # the penalty differentiates z wrt x
            h, skips = self.encoder(x_in)
            code = self.bottleneck(self._join(h, c))  # q(z | x) or, conditional, q(z | x, y)
            iwae = bool(getattr(self.bottleneck, "iwae_k", None))
            params = None if iwae else self.decoder(self._join(code.z, c), skips)
            if iwae:  # the K-sample importance-weighted bound (Burda 2016) replaces the NLL and the KL
                nll, params = self._iwae_nll(x, code, skips, c)  # (B,) -log (1/K) sum_k w_k
                terms, weights = {"nll": nll.mean()}, {"nll": 1.0}
            elif self._plain_gaussian() and not code.aux_losses:
                # fast path (plain AE, fixed sigma): one fused squared-error sum instead of per-sample
                # reductions; the per-sample NLL is computed only if someone reads it
                lik = self.likelihood
                d = x[0].numel()
                sse = torch.nn.functional.mse_loss(params, x, reduction="sum")  # () summed over batch and pixels
                nll_mean = 0.5 * sse * torch.exp(-2.0 * lik.log_sigma) / x.shape[0] + d * lik.log_sigma + 0.5 * d * LOG_2PI
                return AEOutput(x_hat=params, z=code.z, code=code, loss=nll_mean, terms={"nll": nll_mean},
                                weights={"nll": 1.0}, params=params, lazy_nll=lambda: lik.nll(x, params))
            else:
                nll = self.likelihood.nll(x, params)  # (B,)
                terms = {"nll": nll.mean()}
                # a rate-trained bottleneck weights the distortion: loss = rate + lambda * nll (axes/entropy_models.py)
                weights = {"nll": float(getattr(self.bottleneck, "distortion_weight", 1.0))}
            per_sample = weights["nll"] * nll
            for name, value in code.aux_losses.items():
                terms[name], weights[name] = value.mean(), 1.0
                per_sample = per_sample + value
            ctx = RegContext(x_in=x_in, code=code, model=self)
            for name, reg in self.regularizers.items():
                w = reg.current_weight()
                value = reg(ctx)  # (B,), or {part: (B,)} for a regularizer of several terms
                parts = value.items() if isinstance(value, dict) else [(None, value)]
                part_weights = reg.term_weights() if isinstance(value, dict) else {}
                for part, v in parts:
                    key, wk = (name, w) if part is None else (f"{name}.{part}", w * part_weights[part])
                    terms[key], weights[key] = v.mean(), wk
                    per_sample = per_sample + wk * v
        loss = sum(weights[k] * terms[k] for k in terms)
        return AEOutput(x_hat=self.likelihood.mean(params), z=code.z, code=code, loss=loss, terms=terms,
                        weights=weights, per_sample_=per_sample, nll_=nll, params=params)

    def _iwae_nll(self, x: torch.Tensor, code: Code, skips, c) -> tuple[torch.Tensor, torch.Tensor]:
        """-log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x), p(z) = N(0, I); K = bottleneck.iwae_k.

        The term 'nll' then holds this estimate of -log p(x) (prior and posterior included; no KL regularizer
        joins an importance-weighted bottleneck). In training z_1 is the code's own sample, so K = 1 is
        exactly the one-sample ELBO at out.z; in eval all K are draws of a fixed seed and the returned
        decoder output is the mean's. -> ((B,), decoder params (B, *shape))."""
        k, b, post = self.bottleneck.iwae_k, x.shape[0], code.posterior
        if self.training:
            zk = code.z.unsqueeze(0) if k == 1 else torch.cat([code.z.unsqueeze(0), post.rsample(k - 1)])  # (K, B, D)
        else:  # fixed draws (seed 0): eval is deterministic and validation losses share their noise
            gen = torch.Generator(device=post.mu.device).manual_seed(0)
            zk = post.mu + post.std * torch.randn((k, *post.mu.shape), generator=gen, device=post.mu.device,
                                                  dtype=post.mu.dtype)  # (K, B, D)
        rep = [s.repeat(k, *([1] * (s.dim() - 1))) for s in skips]  # (K*B, ...) sample-major, as zk.reshape
        c_k = None if c is None else c.repeat(k, 1)
        params_k = self.decoder(self._join(zk.reshape(k * b, -1), c_k), rep)  # (K*B, *shape)
        x_k = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
        log_px_z = -self.likelihood.nll(x_k, params_k).view(k, b)  # (K, B)
        log_pz = (-0.5 * (zk.pow(2) + LOG_2PI)).sum(-1)  # (K, B) standard normal prior
        log_w = log_px_z + log_pz - post.log_prob(zk)  # (K, B)
        params = params_k[:b] if self.training else self.decoder(self._join(code.z, c), skips)
        return -iwae_objective(log_w), params

    def _plain_gaussian(self) -> bool:
        """No regularizers and a fixed-sigma Gaussian likelihood: the loss is a scaled MSE plus a constant."""
        lik = self.likelihood
        return not self.regularizers and isinstance(lik, GaussianLikelihood) and not lik.learn_sigma

    # ----------------------------------------------------------------- step contract (aekit.step)
    def training_step(self, batch, group: str = "main") -> AEOutput:
        """The objective on a batch x, (x, y) or {"x": x, "y": y}; y is used by a conditional model only.

        group 'entropy_aux' (a rate-trained bottleneck's own group): the entropy model's auxiliary loss,
        which fits its quantiles (Balle et al. 2018; the density itself is detached there)."""
        if group == "entropy_aux":
            from .step import StepOutput

            aux = self.bottleneck.aux_loss()
            return StepOutput(loss=aux, terms={"aux": aux.detach()}, weights={"aux": 1.0}, batch_size=1)
        if group != "main" and group in self._discriminator_groups():
            return self._discriminator_step(batch, self._discriminator_groups()[group])
        if isinstance(batch, torch.Tensor):
            return self(batch)
        x, y = (batch["x"], batch.get("y")) if isinstance(batch, dict) else (batch[0], batch[1] if len(batch) > 1 else None)
        return self(x) if y is None or not self.num_classes else self(x, y)

    def validation_step(self, batch) -> AEOutput:
        needs_grad = any(r.needs_input_grad for r in self.regularizers.values())  # e.g. the contractive penalty
        with torch.enable_grad() if needs_grad else contextlib.nullcontext():
            return self.training_step(batch)

    def optimizer_groups(self) -> list:
        from .step import OptimizerGroup  # the contract's type; no import of the trainer

        aux = list(self.bottleneck.aux_parameters()) if hasattr(self.bottleneck, "aux_loss") else []
        extra = []
        if aux:  # the entropy model's quantiles: their own Adam at a constant 1e-3, one step after each main step
            extra.append(OptimizerGroup("entropy_aux", aux, optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
                                        schedule=lambda opt, total: None))
        for group, reg in self._discriminator_groups().items():  # a discriminator on codes (axes/adversarial.py)
            extra.append(OptimizerGroup(group, list(reg.discriminator.parameters()), steps=reg.disc_steps,
                                        optimizer=reg.optimizer, schedule=lambda opt, total: None))
        if not extra:
            return [OptimizerGroup("main", list(self.parameters()))]
        ids = {id(p) for g in extra for p in g.params}
        return [OptimizerGroup("main", [p for p in self.parameters() if id(p) not in ids]), *extra]

    def _discriminator_groups(self) -> dict:
        """{'<name>_discriminator': regularizer} for the regularizers that train a discriminator in their own group."""
        return {f"{name}_discriminator": reg for name, reg in self.regularizers.items()
                if hasattr(reg, "discriminator_loss")}

    def _discriminator_step(self, batch, reg):
        """The discriminator's loss on the codes of the model's step on this batch (detached); without one
        (the group called first), the batch is encoded here without gradients."""
        from .step import StepOutput, split_xy

        rows = reg.last_codes()
        if rows is None:
            x, y = split_xy(batch)
            x = self.as_input(x)
            with torch.no_grad():
                h, _ = self.encoder(self.corruption(x))
                code = self.bottleneck(self._join(h, self._label(y if self.num_classes else None, x)))
            from .axes.adversarial import code_rows

            rows = code_rows(code.z)
        loss, terms = reg.discriminator_loss(rows)
        return StepOutput(loss=loss, terms=terms, weights={k: 1.0 for k in terms})

    # ----------------------------------------------------------------- generation
    def sample(self, n: int, *, generator: torch.Generator | None = None, label=None, prior=None) -> torch.Tensor:
        """n draws of the prior decoded to means: (n, *input_shape).

        Gaussian bottlenecks draw z ~ N(0, I), or the prior of a regularizer that has one
        (kl_vamp's mixture; adversarial's N(0, I), which the AAE's codes are trained to match). Discrete codes ('discrete': vq, fsq) draw indices from a code prior fitted
        on the training indices (prior=, or model.code_prior; aekit.tasks.code_prior.fit_code_prior)
        and decode their codebook entries.
        label (conditional models only): one class index for all n, or n indices; None gives every
        class in turn (0, 1, ..., K-1, 0, ...), a balanced set.
        """
        prior = prior if prior is not None else getattr(self, "code_prior", None)
        discrete = self.provides("discrete") and not self.provides("posterior")
        learned = self.prior_regularizers
        if not self.has_prior and not (discrete and prior is not None):
            raise ConfigError(
                "sample() needs a generative model: a bottleneck that provides 'posterior' (e.g. 'gaussian', a VAE), "
                "or a 'discrete' one (vq, fsq) with a code prior fitted on its training indices "
                "(aekit.tasks.code_prior.fit_code_prior(model, x)); "
                f"got bottleneck={self.ingredient('bottleneck')!r}."
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be a positive integer; got {n!r}.")
        if label is not None and not self.num_classes:
            raise ConfigError(f"label={label!r} needs a conditional model (num_classes, variant 'cvae'); "
                              f"this one is {self.variant!r} without labels.")
        y = None
        if self.num_classes:
            y = balanced_labels(n, self.num_classes) if label is None else \
                label_tensor(label, num_classes=self.num_classes, n=n, name="label")
        if discrete:
            z = self.bottleneck.embed(prior.sample(n, generator=generator))  # (n,) indices -> (n, D)
        elif learned:
            z = learned[0].sample_prior(n, model=self, generator=generator)
        else:
            z = self.bottleneck.sample_prior(n, generator=generator)
        return self.decode(z, y=y)

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8, *, mode: str = "linear",
                    y=None) -> torch.Tensor:
        """Decode a path between the codes of a and b: (steps, *input_shape).

        mode: 'linear' (the straight line) or 'slerp' (the great circle; see interpolation.py).
        y (conditional models only): the labels (ya, yb) of a and b; the path's label blends the
        two one-hot vectors linearly, so it ends at each input's own class.
        """
        interpolation_weights(steps)  # checks steps
        a = a.unsqueeze(0) if a.dim() == len(self.input_shape) else a
        b = b.unsqueeze(0) if b.dim() == len(self.input_shape) else b
        ya = yb = labels = None
        if self.num_classes:
            if y is None or len(y) != 2:
                raise ConfigError(f"this model is conditional (num_classes={self.num_classes}): pass y=(label_a, label_b).")
            ya, yb = (label_tensor(v, num_classes=self.num_classes, n=1, name="y") for v in y)
        za, zb = self.encode(a[:1], ya)[0].flatten(), self.encode(b[:1], yb)[0].flatten()  # (D,) each (spatial: C*H*W)
        path = interpolate_codes(za, zb, steps, mode=mode)  # (steps, D)
        if self.num_classes:
            t = interpolation_weights(steps, device=za.device).unsqueeze(1)  # (steps, 1)
            eye = torch.eye(self.num_classes, device=za.device)
            labels = (1 - t) * eye[ya] + t * eye[yb]  # (steps, K) blended one-hot
        return self.decode(path, y=labels)
