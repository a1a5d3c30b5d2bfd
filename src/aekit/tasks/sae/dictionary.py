"""The pieces of sparse-autoencoder training that do not depend on the training loop.

The SAE these act on (Bricken et al. 2023, "Towards Monosemanticity"; Gao et al. 2024,
"Scaling and evaluating sparse autoencoders"), with a scale s on the inputs:

    h     = (s x - b_dec) @ W_enc.T + b_enc      W_enc: encoder.weight (m, d), b_enc: encoder.bias (m,)
    z     = activation(h)                        TopK / BatchTopK / JumpReLU / ReLU, (N, m)
    x_hat = (z @ W_dec.T + b_dec) / s            W_dec: decoder.weight (d, m), b_dec: decoder.bias (d,), the pre-bias

- Decoder columns at unit norm: renormalise after each optimizer step and, before it, remove the
  gradient's component parallel to each column (Bricken et al. 2023; dictionary_learning's
  remove_gradient_parallel_to_decoder_directions), so the L1 / sparsity penalty cannot be
  dodged by shrinking codes and growing columns.
- Encoder initialised as the decoder's transpose (Gao et al. 2024, section 2.4).
- Pre-bias b_dec initialised at the geometric median of a sample (Bricken et al. 2023), by
  Weiszfeld's iterations (Weiszfeld 1937; Vardi & Zhang 2000 for the guard at data points).
- Activation scale: s = sqrt(d / E||x||^2) so that E||s x||^2 = d (Rajamanoharan et al. 2024,
  "Jumping Ahead", and SAELens' normalize_activations="expected_average_only_in"); folded back
  into the weights when saving so the saved SAE reads and writes raw activations.
- AuxK (Gao et al. 2024, appendix A.2): the top-k_aux dead latents reconstruct the residual
  e = x - x_hat; L_aux = ||e - W_dec z_aux||^2, normalised by the residual's variance as in the
  authors' code; its gradient reaches dead latents only.
- JumpReLU (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with
  JumpReLU Sparse Autoencoders"): z H(z - theta), with straight-through pseudo-derivatives
  d/dtheta = -(theta / eps) K((z - theta) / eps) and, for the step used in the L0 penalty,
  d/dtheta H(z - theta) = -(1 / eps) K((z - theta) / eps), K the rectangle kernel
  K(u) = 1 for |u| < 1/2, eps the bandwidth.
"""

from __future__ import annotations

import math

import torch

from ...axes.jumprelu import jumprelu, step  # noqa: F401  (re-exported: the SAE's JumpReLU pieces)
from ...errors import ConfigError, DataError, ShapeError

WEIGHT_NAMES = ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias")


# decoder columns ----------------------------------------------------------------------------------
def random_decoder(dim: int, n_latents: int, *, seed: int = 0) -> torch.Tensor:
    """(dim, n_latents) decoder weight with random unit-norm columns (Gao et al. 2024's initialisation)."""
    w = torch.randn(dim, n_latents, generator=torch.Generator().manual_seed(seed))
    return w / w.norm(dim=0, keepdim=True)


@torch.no_grad()
def normalize_decoder_(weight: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Scale each column of weight (d, m) to unit norm in place; return the (m,) norms it had."""
    if weight.dim() != 2:
        raise ShapeError(f"the decoder weight must be (d, m); got {tuple(weight.shape)}.")
    norms = weight.norm(dim=0)  # (m,)
    weight.div_(norms.clamp_min(eps))
    return norms


@torch.no_grad()
def project_decoder_grad_(weight: torch.Tensor) -> None:
    """Remove from weight.grad (d, m) each column's component along that column of weight (in place).

    After it, a small gradient step changes every column's norm only to second order, and the
    renormalisation that follows the step undoes no part of the update."""
    if weight.grad is None:
        return
    unit = weight / weight.norm(dim=0, keepdim=True).clamp_min(1e-12)  # (d, m)
    weight.grad.sub_((weight.grad * unit).sum(0, keepdim=True) * unit)


@torch.no_grad()
def init_encoder_from_decoder_(encoder_weight: torch.Tensor, decoder_weight: torch.Tensor) -> None:
    """encoder.weight (m, d) := decoder.weight (d, m) transposed, in place."""
    if encoder_weight.shape != decoder_weight.T.shape:
        raise ShapeError(f"encoder weight {tuple(encoder_weight.shape)} is not the transpose of the decoder weight "
                         f"{tuple(decoder_weight.shape)}.")
    encoder_weight.copy_(decoder_weight.T)


# pre-bias -----------------------------------------------------------------------------------------
@torch.no_grad()
def geometric_median(x: torch.Tensor, *, max_iter: int = 500, tol: float = 1e-7) -> torch.Tensor:
    """(d,) the point minimising sum_i ||x_i - y|| over the rows of x (N, d), by Weiszfeld's iterations.

    y <- sum_i w_i x_i / sum_i w_i with w_i = 1 / ||x_i - y||, from the mean. When y sits on data
    points (eta of them), Vardi & Zhang's step is taken instead: y <- (1 - eta/r)^+ T(y) +
    min(1, eta/r) y, with T the Weiszfeld map over the other points and r the norm of the sum of
    their unit vectors from y, so the iterations leave a data point that is not the median (plain
    Weiszfeld can stick there). Stops when a step moves y by less than tol times the data's
    spread, or after max_iter steps. Computed in float64, returned as float32."""
    if x.dim() != 2 or x.shape[0] == 0:
        raise DataError(f"x must have shape (N, d) with N >= 1; got {tuple(x.shape)}.")
    x = x.double()
    y = x.mean(0)
    spread = float((x - y).norm(dim=1).mean())
    if spread == 0:
        return y.float()
    for _ in range(max_iter):
        dist = (x - y).norm(dim=1)  # (N,)
        on = dist <= 1e-12 * spread  # rows y sits on
        w = torch.where(on, torch.zeros_like(dist), 1.0 / dist.clamp_min(1e-300))  # (N,)
        if float(w.sum()) == 0:  # every row is at y
            break
        t = (w[:, None] * x).sum(0) / w.sum()  # Weiszfeld map over the other rows
        eta = int(on.sum())
        if eta:
            r = float(((x - y) * w[:, None]).sum(0).norm())
            share = min(1.0, eta / r) if r > 0 else 1.0
            new = (1.0 - share) * t + share * y
        else:
            new = t
        moved = float((new - y).norm())
        y = new
        if moved < tol * spread:
            break
    return y.float()


# activation scale ---------------------------------------------------------------------------------
def activation_scale(x: torch.Tensor) -> float:
    """s with E||s x||^2 = d over the rows of x (N, d): s = sqrt(d / mean_i ||x_i||^2)."""
    if x.dim() != 2 or x.shape[0] == 0:
        raise DataError(f"x must have shape (N, d) with N >= 1; got {tuple(x.shape)}.")
    mean_sq = float(x.double().pow(2).sum(1).mean())
    if not mean_sq > 0 or not math.isfinite(mean_sq):
        raise DataError(f"activations with mean squared norm {mean_sq} cannot be scaled to E||x||^2 = d.")
    return math.sqrt(x.shape[1] / mean_sq)


def _check_weights(weights: dict) -> None:
    missing = [k for k in WEIGHT_NAMES if k not in weights]
    if missing:
        raise ConfigError(f"SAE weights need {', '.join(WEIGHT_NAMES)}; missing {', '.join(missing)}.")
    m, d = weights["encoder.weight"].shape
    if weights["decoder.weight"].shape != (d, m) or weights["encoder.bias"].shape != (m,) or weights["decoder.bias"].shape != (d,):
        raise ShapeError("SAE weights must be encoder.weight (m, d), encoder.bias (m,), decoder.weight (d, m), "
                         f"decoder.bias (d,); got {', '.join(f'{k} {tuple(weights[k].shape)}' for k in WEIGHT_NAMES)}.")


def sae_forward(x: torch.Tensor, weights: dict, *, activation=torch.relu, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(z (N, m), x_hat (N, d)) of the SAE in the module docstring, inputs x (N, d) scaled by `scale`."""
    _check_weights(weights)
    h = (x * scale - weights["decoder.bias"]) @ weights["encoder.weight"].T + weights["encoder.bias"]  # (N, m)
    z = activation(h)
    return z, (z @ weights["decoder.weight"].T + weights["decoder.bias"]) / scale  # (N, d)


def fold_activation_scale(weights: dict, *, scale: float) -> dict:
    """Weights of the same SAE for unscaled inputs: sae_forward(x, folded) == sae_forward(x, weights, scale=scale).

    W_enc -> s W_enc, b_dec -> b_dec / s, W_dec -> W_dec / s (b_enc, and a JumpReLU threshold, are
    unchanged: the pre-activations h are the same). The decoder columns then have norm 1 / s."""
    _check_weights(weights)
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ConfigError(f"scale must be a positive finite number; got {scale!r}.")
    out = dict(weights)
    out["encoder.weight"] = weights["encoder.weight"] * scale
    out["decoder.weight"] = weights["decoder.weight"] / scale
    out["decoder.bias"] = weights["decoder.bias"] / scale
    return out


# AuxK ---------------------------------------------------------------------------------------------
def auxk_loss(x: torch.Tensor, x_hat: torch.Tensor, pre_activations: torch.Tensor, decoder_weight: torch.Tensor,
              dead_mask: torch.Tensor, *, k_aux: int, normalize: bool = True) -> torch.Tensor:
    """Gao et al. 2024's auxiliary loss: the top-k_aux dead latents reconstruct the residual x - x_hat.

    x, x_hat (N, d); pre_activations (N, m) (before the sparsifying activation); decoder_weight
    (d, m); dead_mask (m,) bool. The residual is a target (detached), so the gradient reaches only
    the dead latents' pre-activations and decoder columns. normalize divides by the residual's
    total variance (sum_i ||e_i - mean(e)||^2 / N), as in the authors' code. Zero with no dead latent.
    """
    if not isinstance(k_aux, int) or isinstance(k_aux, bool) or k_aux < 1:
        raise ConfigError(f"k_aux must be a positive integer; got {k_aux!r}.")
    m = pre_activations.shape[-1]
    if dead_mask.shape != (m,) or decoder_weight.shape != (x.shape[1], m) or x.shape != x_hat.shape:
        raise ShapeError(f"auxk_loss needs x, x_hat (N, d), pre_activations (N, m), decoder_weight (d, m), dead_mask (m,); "
                         f"got {tuple(x.shape)}, {tuple(x_hat.shape)}, {tuple(pre_activations.shape)}, "
                         f"{tuple(decoder_weight.shape)}, {tuple(dead_mask.shape)}.")
    n_dead = int(dead_mask.sum())
    if n_dead == 0:
        return (pre_activations.sum() + decoder_weight.sum()) * 0.0  # keeps the graph, no gradient
    residual = (x - x_hat).detach()  # (N, d) the target
    masked = pre_activations.masked_fill(~dead_mask, float("-inf"))  # (N, m) live latents never chosen
    values, indices = masked.topk(min(k_aux, n_dead), dim=-1)  # (N, k)
    z_aux = torch.zeros_like(pre_activations).scatter(-1, indices, torch.relu(values))  # (N, m)
    err = (z_aux @ decoder_weight.T - residual).pow(2).sum(-1).mean()
    if not normalize:
        return err
    denom = (residual - residual.mean(0)).pow(2).sum(-1).mean()
    return torch.nan_to_num(err / denom, nan=0.0, posinf=0.0)


__all__ = ["WEIGHT_NAMES", "activation_scale", "auxk_loss", "fold_activation_scale", "geometric_median",
           "init_encoder_from_decoder_", "jumprelu", "normalize_decoder_", "project_decoder_grad_", "random_decoder",
           "sae_forward", "step"]
