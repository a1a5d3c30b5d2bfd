"""Segmentation losses: BCE (binary) or cross-entropy (multi-class) plus a soft Dice loss.

Soft Dice (Milletari et al., V-Net, 2016), pooled over the whole batch:

    dice_c = (2 sum_i p_ic t_ic + eps) / (sum_i p_ic + sum_i t_ic + eps),   loss = 1 - mean_c dice_c

with p the sigmoid (binary: the foreground channel only) or softmax probabilities, t the
one-hot target and eps = 1 so an empty crop with an empty prediction scores 1, not 0/0.
Multi-class averages over the foreground classes 1..C-1 (background is left to the
cross-entropy, so large background areas do not inflate the Dice term). The pixel term (BCE or
CE) is a mean over pixels; the total is pixel + dice_weight * dice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1.0


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    """logits (B, K, H, W) with K = 1 (binary) or K = C classes; target (B, H, W) int64 -> scalar."""
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits[:, 0])  # (B, H, W)
        t = target.to(p.dtype)
        inter, total = (p * t).sum(), p.sum() + t.sum()
        return 1 - (2 * inter + eps) / (total + eps)
    p = torch.softmax(logits, dim=1)[:, 1:]  # (B, C-1, H, W): foreground classes
    t = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(p.dtype)
    inter = (p * t).sum(dim=(0, 2, 3))  # (C-1,)
    total = p.sum(dim=(0, 2, 3)) + t.sum(dim=(0, 2, 3))
    return 1 - ((2 * inter + eps) / (total + eps)).mean()


def pixel_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits (K = 1) or cross-entropy (K = C), averaged over every pixel."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], target.to(logits.dtype))
    return F.cross_entropy(logits, target)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, *, dice_weight: float = 1.0
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, {"bce" or "ce": ..., "dice": ...}); loss = pixel term + dice_weight * soft Dice loss."""
    pix = pixel_loss(logits, target)
    dice = soft_dice_loss(logits, target)
    name = "bce" if logits.shape[1] == 1 else "ce"
    return pix + dice_weight * dice, {name: pix.detach(), "dice": dice.detach()}
