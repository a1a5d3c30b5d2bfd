"""The sparse autoencoder as a module of the step contract: one of four sparsifying bottlenecks, trained by the one Trainer.

    x_s   = s x                                  s: the activation scale (E||s x||^2 = d on a data sample)
    a     = (x_s - b_dec) @ W_enc.T + b_enc      the bottleneck's linear layer: W_enc (m, d), b_enc (m,)
    z     = act(a)                               (N, m), act from a registered bottleneck (below)
    x_hat = z @ W_dec.T + b_dec                  decoder: W_dec (d, m) with unit-norm columns, b_dec (d,) the pre-bias

The bottleneck (aekit.registry.BOTTLENECKS) supplies the encoder's linear layer and act:

- 'topk': ReLU of each row's k largest (Gao et al. 2024, "Scaling and evaluating sparse
  autoencoders"; Makhzani & Frey 2013), with the AuxK loss on dead latents (aux_k, aux_weight).
- 'batch_topk': the batch's B*k largest, a threshold at inference (Bussmann, Leask & Nanda 2024,
  "BatchTopK sparse autoencoders"), with AuxK as for TopK.
- 'jumprelu': a H(a - theta) with learned thresholds and an L0 penalty through straight-through
  estimators (Rajamanoharan et al. 2024, "Jumping Ahead").
- 'relu': ReLU with an L1 penalty on z (Bricken et al. 2023, "Towards Monosemanticity"); the
  decoder columns' unit norm keeps the penalty from being dodged by shrinking z.

The loss is the squared error over the data's variance: 'fvu' = mean_i ||x_s,i - x_hat_i||^2 / V,
V = the mean squared distance of the scaled sample to its mean, fixed at `init_from_sample` (so the
per-sample mean over a set is that set's fraction of variance unexplained, near enough), plus
the bottleneck's penalty. The per-step hooks of the step contract keep the decoder columns at unit
norm: before each optimizer step the gradient's part along each column is removed, after it every
column is scaled back to norm 1. Initialisation from a data sample (`init_from_sample`): s, the
pre-bias at the sample's geometric median (Bricken et al. 2023), random unit decoder columns and
the encoder as their transpose (Gao et al. 2024). Dead latents (no firing in the last
`dead_window` training samples; Gao et al. 2024) are counted in buffers, so resume is exact.

Saved (`save_sae`): model.safetensors (the state for resuming), sae.safetensors (the weights with
the scale folded in, reading and writing raw activations: W_enc, b_enc, W_dec, b_dec, and a
threshold for jumprelu / batch_topk) and config.json (kind 'sae').
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn

from ... import checkpoint as ckpt
from ...errors import CheckpointError, ConfigError, ShapeError, check_choice
from ...registry import BOTTLENECKS
from ...step import OptimizerGroup, StepOutput
from .dictionary import (activation_scale, auxk_loss, fold_activation_scale, geometric_median, init_encoder_from_decoder_,
                         normalize_decoder_, project_decoder_grad_, random_decoder)

ACTIVATIONS = ("topk", "batch_topk", "jumprelu", "relu")
FOLDED_NAME = "sae.safetensors"
KIND = "sae"


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
    return value


def _non_negative(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0; got {value!r}.")
    return float(value)


class SparseAutoencoder(nn.Module):
    """An overcomplete sparse autoencoder of d-dimensional activations with n_latents latents (see the module docstring).

    activation: 'topk' | 'batch_topk' (k latents per row, on average for batch_topk) | 'jumprelu'
    (sparsity: the L0 coefficient; threshold, bandwidth) | 'relu' (l1: the L1 coefficient).
    aux_k: latents of the AuxK loss (topk, batch_topk; default 2 k; 0: off), aux_weight its weight
    (Gao et al.: 1/32); dead_window: training samples without firing after which a latent is dead.
    """

    def __init__(self, *, d: int, n_latents: int, activation: str = "topk", k: int | None = None,
                 l1: float = 1e-3, sparsity: float = 1e-3, threshold: float = 0.001, bandwidth: float = 0.001,
                 aux_k: int | None = None, aux_weight: float = 1 / 32, dead_window: int = 1_000_000,
                 seed: int = 0) -> None:
        super().__init__()
        _positive_int("d", d)
        _positive_int("n_latents", n_latents)
        check_choice("activation", activation, ACTIVATIONS)
        sparse_k = activation in ("topk", "batch_topk")
        if sparse_k:
            if k is None:
                raise ConfigError(f"activation {activation!r} needs k, the latents kept per row (e.g. k=32).")
            _positive_int("k", k)
            if k > n_latents:
                raise ConfigError(f"k must be at most n_latents={n_latents}; got k={k}.")
        elif k is not None:
            raise ConfigError(f"k applies to activation 'topk' or 'batch_topk', not {activation!r}.")
        if aux_k is None:
            aux_k = min(2 * k, n_latents) if sparse_k else 0
        if isinstance(aux_k, bool) or not isinstance(aux_k, int) or aux_k < 0:
            raise ConfigError(f"aux_k must be an integer >= 0; got {aux_k!r}.")
        if aux_k and not sparse_k:
            raise ConfigError(f"aux_k (the AuxK loss) applies to activation 'topk' or 'batch_topk', not {activation!r}.")
        _positive_int("dead_window", dead_window)
        self.config = {"kind": KIND, "d": d, "n_latents": n_latents, "activation": activation, "k": k,
                       "l1": _non_negative("l1", l1), "sparsity": _non_negative("sparsity", sparsity),
                       "threshold": float(threshold), "bandwidth": float(bandwidth), "aux_k": aux_k,
                       "aux_weight": _non_negative("aux_weight", aux_weight), "dead_window": dead_window, "seed": int(seed)}
        self.d, self.n_latents, self.activation = d, n_latents, activation
        if activation == "topk":
            spec = {"topk": {"k": k}}
        elif activation == "batch_topk":
            spec = {"batch_topk": {"k": k}}
        elif activation == "jumprelu":
            spec = {"jumprelu": {"threshold": float(threshold), "bandwidth": float(bandwidth)}}
        else:
            spec = {"deterministic": {"activation": "relu"}}
        self.bottleneck = BOTTLENECKS.create(spec, in_features=d, latent_dim=n_latents)  # holds the encoder's linear
        self.decoder = nn.Linear(n_latents, d)  # weight (d, m): one feature per column; bias (d,): the pre-bias
        with torch.no_grad():
            self.decoder.weight.copy_(random_decoder(d, n_latents, seed=seed))
            self.decoder.bias.zero_()
            init_encoder_from_decoder_(self.encoder.weight, self.decoder.weight)
            self.encoder.bias.zero_()
        self.register_buffer("scale", torch.ones(()))  # s
        self.register_buffer("variance", torch.full((), float(d)))  # V of the scaled data
        self.register_buffer("since_fired", torch.zeros(n_latents, dtype=torch.long))  # (m,) samples since it fired

    # ------------------------------------------------------------------ parts
    @property
    def encoder(self) -> nn.Linear:
        return self.bottleneck.linear  # weight (m, d), bias (m,)

    @property
    def k(self) -> int | None:
        return self.config["k"]

    def check_input(self, x: torch.Tensor, *, name: str = "x") -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.d:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"{name} has shape {shape}; this SAE reads rows of d={self.d} activations, (N, {self.d}).")

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Raw activations x (N, d) -> a (N, m)."""
        return self.encoder(x * self.scale - self.decoder.bias)

    def activate(self, a: torch.Tensor) -> torch.Tensor:
        """a (N, m) -> the sparse code z (N, m)."""
        if self.activation == "topk":
            return torch.relu(self.bottleneck.activate(a))  # TopK then ReLU (Gao et al. 2024)
        if self.activation == "relu":
            return torch.relu(a)
        return self.bottleneck.activate(a)  # batch_topk (ReLU inside), jumprelu

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw activations x (N, d) -> codes z (N, m)."""
        return self.activate(self.pre_activations(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes z (N, m) -> reconstructed raw activations (N, d)."""
        return self.decoder(z) / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw activations (N, d) -> their reconstruction (N, d)."""
        return self.decode(self.encode(x))

    def dead_mask(self) -> torch.Tensor:
        """(m,) bool: latents that have not fired in the last dead_window training samples."""
        return self.since_fired >= self.config["dead_window"]

    @torch.no_grad()
    def _track_firing(self, z: torch.Tensor) -> None:
        """since_fired as FiringTracker counts it (aekit.tasks.sae.metrics), in a buffer."""
        fired = z.detach() != 0  # (N, m)
        n = fired.shape[0]
        if n == 0:
            return
        last = (n - 1) - torch.flip(fired, dims=[0]).to(torch.int8).argmax(0)  # (m,) last row that fired
        self.since_fired.copy_(torch.where(fired.any(0), n - 1 - last, self.since_fired + n))

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def init_from_sample(self, x: torch.Tensor) -> "SparseAutoencoder":
        """From a sample of raw activations x (N, d): the scale s, the variance V, b_dec at the geometric median of
        s x, b_enc = 0; the decoder's random unit columns and the encoder = their transpose are kept from __init__."""
        self.check_input(x, name="the initialisation sample")
        x = x.detach().float().cpu()
        s = activation_scale(x)
        xs = x * s
        variance = float((xs - xs.mean(0)).pow(2).sum(1).mean())
        if not variance > 0:
            raise ConfigError("the activations have no variance (every sampled row is the same); nothing to learn.")
        self.scale.fill_(s)
        self.variance.fill_(variance)
        self.decoder.bias.copy_(geometric_median(xs))
        self.encoder.bias.zero_()
        return self

    # ------------------------------------------------------------------ step contract
    def _terms(self, x: torch.Tensor, *, track: bool):
        xs = x * self.scale  # (B, d) scaled
        a = self.encoder(xs - self.decoder.bias)  # (B, m)
        z = self.activate(a)
        x_hat = self.decoder(z)  # (B, d) in scaled units
        per_fvu = (x_hat - xs).pow(2).sum(-1) / self.variance  # (B,)
        terms, weights = {"fvu": per_fvu.mean()}, {"fvu": 1.0}
        if track:
            self._track_firing(z)
        cfg = self.config
        if self.activation == "relu":
            terms["l1"], weights["l1"] = z.abs().sum(-1).mean(), cfg["l1"]
        elif self.activation == "jumprelu":
            terms["l0_penalty"], weights["l0_penalty"] = self.bottleneck.l0(a).mean(), cfg["sparsity"]
        elif cfg["aux_k"]:
            dead = self.dead_mask()
            terms["auxk"] = auxk_loss(xs, x_hat, a, self.decoder.weight, dead, k_aux=cfg["aux_k"])
            weights["auxk"] = cfg["aux_weight"]
            terms["dead_fraction"], weights["dead_fraction"] = dead.float().mean(), 0.0  # logged, not optimised
        terms["l0"], weights["l0"] = (z != 0).sum(-1).float().mean(), 0.0  # logged, not optimised
        loss = sum(weights[k] * terms[k] for k in terms)
        return StepOutput(loss=loss, terms=terms, weights=weights)

    def training_step(self, batch, group: str = "main") -> StepOutput:
        x = batch if isinstance(batch, torch.Tensor) else (batch["x"] if isinstance(batch, dict) else batch[0])
        return self._terms(x, track=self.training)

    def validation_step(self, batch) -> StepOutput:
        return self.training_step(batch)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("main", list(self.parameters()))]

    @torch.no_grad()
    def before_optimizer_step(self, group: str) -> None:
        """Remove each decoder column's gradient component along the column (the step then keeps its norm to first order)."""
        project_decoder_grad_(self.decoder.weight)

    @torch.no_grad()
    def after_optimizer_step(self, group: str) -> None:
        """Decoder columns back to unit norm after every optimizer step."""
        normalize_decoder_(self.decoder.weight)

    # ------------------------------------------------------------------ saved weights
    def folded_weights(self) -> dict[str, torch.Tensor]:
        """The weights reading and writing raw activations (the scale folded in): sae_forward(x, weights) with act."""
        w = {"encoder.weight": self.encoder.weight.detach(), "encoder.bias": self.encoder.bias.detach(),
             "decoder.weight": self.decoder.weight.detach(), "decoder.bias": self.decoder.bias.detach()}
        out = fold_activation_scale(w, scale=float(self.scale))
        if self.activation == "jumprelu":
            out["threshold"] = self.bottleneck.threshold.detach()  # (m,) on the pre-activations, unchanged by folding
        elif self.activation == "batch_topk":
            out["threshold"] = self.bottleneck.threshold.detach().clone()  # () the inference threshold
        return {k: v.contiguous().clone() for k, v in out.items()}


def save_sae(model: SparseAutoencoder, directory: str | os.PathLike) -> Path:
    """model.safetensors (the training state), sae.safetensors (folded weights) and config.json into directory."""
    from ..._version import __version__

    directory = Path(directory)
    ckpt.atomic_write_bytes(directory / ckpt.WEIGHTS_NAME, ckpt.tensors_to_bytes(model.state_dict()))
    ckpt.atomic_write_bytes(directory / FOLDED_NAME, ckpt.tensors_to_bytes(model.folded_weights()))
    meta = {"kind": KIND, "aekit_version": __version__, "config": model.config}
    meta["config_sha256"] = ckpt.config_sha256(meta)
    ckpt.atomic_write_json(directory / ckpt.CONFIG_NAME, meta)
    return directory


def is_sae_folder(directory) -> bool:
    return ckpt.folder_kind(directory) == KIND


def load_sae(directory: str | os.PathLike, *, map_location: str = "cpu") -> SparseAutoencoder:
    """The SAE save_sae wrote (eval mode); a missing, damaged or foreign folder is a CheckpointError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"SAE folder {str(directory)!r} does not exist.")
    meta = ckpt.read_json(directory / ckpt.CONFIG_NAME) if (directory / ckpt.CONFIG_NAME).is_file() else {}
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{str(directory)!r} holds no sparse autoencoder (config.json has no kind 'sae'); "
                              "train one with 'aekit sae train'.")
    ckpt.check_config_checksum(meta, directory / ckpt.CONFIG_NAME)
    config = meta.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{str(directory / ckpt.CONFIG_NAME)!r} has no 'config' object.")
    try:
        model = SparseAutoencoder(**{k: v for k, v in config.items() if k != "kind"})
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{str(directory)!r} describes an SAE that cannot be built: {exc}") from None
    ckpt.load_state_into(model, ckpt.read_tensors(directory / ckpt.WEIGHTS_NAME), source=directory / ckpt.WEIGHTS_NAME)
    return model.to(map_location).eval()


__all__ = ["ACTIVATIONS", "FOLDED_NAME", "SparseAutoencoder", "is_sae_folder", "load_sae", "save_sae"]
