"""JumpReLU and its step function with straight-through threshold gradients.

Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU Sparse
Autoencoders": JumpReLU(z) = z H(z - theta), with pseudo-derivatives with respect to theta
d/dtheta = -(theta / eps) K((z - theta) / eps) and, for the step used in the L0 penalty,
d/dtheta H(z - theta) = -(1 / eps) K((z - theta) / eps); K the rectangle kernel K(u) = 1 for
|u| < 1/2, eps the bandwidth. The gradient to z is H(z - theta) (JumpReLU) and none (step).
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError


# JumpReLU -----------------------------------------------------------------------------------------
def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return (u.abs() < 0.5).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, threshold, bandwidth):
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return z * (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_z = grad * (z > threshold).to(grad.dtype)
        grad_t = (grad * (-threshold / eps) * _rectangle((z - threshold) / eps)).sum_to_size(threshold.shape)
        return grad_z, grad_t, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, threshold, bandwidth):
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_t = (grad * (-1.0 / eps) * _rectangle((z - threshold) / eps)).sum_to_size(threshold.shape)
        return torch.zeros_like(z), grad_t, None


def _check_bandwidth(bandwidth) -> float:
    if not (isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool) and math.isfinite(bandwidth) and bandwidth > 0):
        raise ConfigError(f"bandwidth must be a positive number; got {bandwidth!r}.")
    return float(bandwidth)


def jumprelu(z: torch.Tensor, threshold: torch.Tensor, *, bandwidth: float) -> torch.Tensor:
    """z * H(z - threshold), elementwise, threshold broadcast (e.g. (m,) against (N, m)).

    Gradients: to z, H(z - threshold); to threshold, the straight-through pseudo-derivative
    -(threshold / bandwidth) * K((z - threshold) / bandwidth) with the rectangle kernel K."""
    return _JumpReLU.apply(z, threshold, _check_bandwidth(bandwidth))


def step(z: torch.Tensor, threshold: torch.Tensor, *, bandwidth: float) -> torch.Tensor:
    """H(z - threshold) (its sum over latents is the L0 penalty); gradient to threshold
    -(1 / bandwidth) * K((z - threshold) / bandwidth), none to z."""
    return _Step.apply(z, threshold, _check_bandwidth(bandwidth))


__all__ = ["jumprelu", "step"]
