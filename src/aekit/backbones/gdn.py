"""Generalized divisive normalization (GDN) and its approximate inverse (IGDN).

    GDN:  y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)
    IGDN: y_i = x_i * sqrt(beta_i + sum_j gamma_ij x_j^2)

over the channels j of the same spatial position (a 1x1 convolution of x^2). beta > 0 and
gamma >= 0 are kept so by a reparameterisation: each is stored as a raw parameter p with
value = max(p, bound)^2 - pedestal (pedestal = 2^-36, so gradients never vanish at zero),
bound = sqrt(minimum + pedestal); beta's minimum is beta_min > 0, gamma's is 0. An encoder
uses GDN after its convolutions, the decoder IGDN (activation='gdn' of the conv backbone).
Balle, Laparra & Simoncelli 2016, Density modeling of images using a generalized normalization transformation;
Balle et al. 2018 (appendix) for the non-negative reparameterisation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError

PEDESTAL = 2.0 ** -36


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows where x < bound if it pushes x up (Balle et al. 2018)."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad):
        x, bound = ctx.saved_tensors
        pass_through = (x >= bound) | (grad < 0)
        return grad * pass_through.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, torch.as_tensor(bound, dtype=x.dtype, device=x.device))


class NonNegative(nn.Module):
    """value = max(p, sqrt(minimum + pedestal))^2 - pedestal >= minimum; p is stored (Balle et al. 2018)."""

    def __init__(self, minimum: float = 0.0) -> None:
        super().__init__()
        self.minimum = float(minimum)
        self.bound = (self.minimum + PEDESTAL) ** 0.5

    def init(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.clamp(value + PEDESTAL, min=PEDESTAL))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return lower_bound(p, self.bound).pow(2) - PEDESTAL


class GDN(nn.Module):
    """Generalized divisive normalization over channels; inverse=True gives IGDN.
    Balle, Laparra & Simoncelli 2016, Density modeling of images using a generalized normalization transformation."""

    def __init__(self, channels: int, *, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"GDN channels must be a positive integer; got {channels!r}.")
        if not beta_min > 0:
            raise ConfigError(f"GDN beta_min must be > 0; got {beta_min!r}.")
        self.channels, self.inverse = channels, bool(inverse)
        self.beta_param = NonNegative(beta_min)
        self.gamma_param = NonNegative(0.0)
        self.beta = nn.Parameter(self.beta_param.init(torch.ones(channels)))  # (C,) raw
        self.gamma = nn.Parameter(self.gamma_param.init(gamma_init * torch.eye(channels)))  # (C, C) raw

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(beta (C,) > 0, gamma (C, C) >= 0) as used in the formula."""
        return self.beta_param(self.beta), self.gamma_param(self.gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        beta, gamma = self.effective()
        norm = torch.sqrt(F.conv2d(x * x, gamma[:, :, None, None], beta))  # sqrt(beta_i + sum_j gamma_ij x_j^2)
        return x * norm if self.inverse else x / norm

    def extra_repr(self) -> str:
        return f"{self.channels}, inverse={self.inverse}"
