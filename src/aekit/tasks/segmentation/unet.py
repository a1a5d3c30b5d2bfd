"""The segmentation U-Net (Ronneberger, Fischer and Brox, MICCAI 2015), fully convolutional.

Per level of the contracting path two 3x3 convolutions (padding 1; optional BatchNorm) whose
output is kept as a skip, then 2x2 max pooling; the width doubles per level (width * 2**l).
The expanding path upsamples with a 2x2 transposed convolution of stride 2, concatenates the
skip of that level along channels and applies two 3x3 convolutions; a 1x1 convolution gives
the logits: 1 channel for binary masks (sigmoid / BCE), C channels for C >= 3 classes
(softmax / cross-entropy).

Any input size: the input is reflect-padded at the bottom and right to a multiple of
2**depth (so every pooling halves exactly) and the logits are cropped back to H x W. The
original paper used unpadded convolutions and an overlap-tile strategy; padded convolutions
keep the output the size of the input, and tiles.py does the overlap-tiling for large images.

This is a standalone module rather than aekit.backbones.unet: that backbone flattens its
deepest map into a code vector for an autoencoder, which fixes the input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones.activations import make_activation
from ...errors import ConfigError, ShapeError, check_choice
from ...step import OptimizerGroup, StepOutput
from .losses import segmentation_loss

NORMS = ("batch", "none")


def conv_block(c_in: int, c_out: int, *, norm: str, activation: str) -> nn.Sequential:
    """Two 3x3 convolutions, sizes kept; BatchNorm after each when norm='batch'."""
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers.append(nn.Conv2d(c, c_out, kernel_size=3, padding=1, bias=norm == "none"))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(make_activation(activation))
    return nn.Sequential(*layers)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W') with H', W' the next multiples; reflect padding at bottom/right.

    Reflection needs the pad to be smaller than the side; for tiny inputs replicate is used.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class SegmentationUNet(nn.Module):
    """U-Net: (B, in_channels, H, W) -> logits (B, 1 or classes, H, W) for any H, W."""

    def __init__(self, *, in_channels: int = 1, classes: int = 2, depth: int = 3, width: int = 16,
                 norm: str = "batch", activation: str = "relu") -> None:
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("classes", classes, 2), ("depth", depth, 1),
                                 ("width", width, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                extra = " (classes counts the background: 2 for binary masks)" if name == "classes" else ""
                raise ConfigError(f"{name} must be an integer >= {low}{extra}; got {value!r}.")
        if depth > 8:
            raise ConfigError(f"depth must be at most 8 (the input is padded to a multiple of 2**depth); got {depth}.")
        check_choice("norm", norm, NORMS)
        self.config = {"in_channels": in_channels, "classes": classes, "depth": depth, "width": width,
                       "norm": norm, "activation": activation}
        self.in_channels, self.classes, self.depth = in_channels, classes, depth
        self.out_channels = 1 if classes == 2 else classes
        self.multiple = 2 ** depth
        widths = [width * 2 ** level for level in range(depth + 1)]  # the last one is the bottom
        self.down_blocks = nn.ModuleList()
        c = in_channels
        for c_out in widths[:-1]:
            self.down_blocks.append(conv_block(c, c_out, norm=norm, activation=activation))
            c = c_out
        self.bottom = conv_block(c, widths[-1], norm=norm, activation=activation)
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for level in range(depth - 1, -1, -1):
            self.ups.append(nn.ConvTranspose2d(widths[level + 1], widths[level], kernel_size=2, stride=2))
            self.up_blocks.append(conv_block(2 * widths[level], widths[level], norm=norm, activation=activation))
        self.head = nn.Conv2d(widths[0], self.out_channels, kernel_size=1)

    def check_input(self, x: torch.Tensor, *, name: str = "input") -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"{name} must have shape (B, {self.in_channels}, H, W) for this U-Net; got {tuple(x.shape)}.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.multiple)  # (B, C, H', W'), H' and W' multiples of 2**depth
        skips = []
        for block in self.down_blocks:
            x = block(x)  # (B, w_l, H_l, W_l)
            skips.append(x)
            x = F.max_pool2d(x, 2)  # -> (B, w_l, H_l / 2, W_l / 2)
        x = self.bottom(x)  # (B, w_depth, H' / 2**depth, W' / 2**depth)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))  # concatenated skip: (B, 2 w_l, H_l, W_l) -> (B, w_l, H_l, W_l)
        return self.head(x)[..., :h, :w]  # (B, 1 or classes, H, W)

    # ----------------------------------------------------------------- step contract (aekit.step)
    def configure_training(self, *, lr: float = 2e-3, min_lr_ratio: float = 0.05, weight_decay: float = 0.0,
                           dice_weight: float = 1.0) -> "SegmentationUNet":
        """The training objective and optimizer (not part of the saved config): Adam with a cosine decay of the
        learning rate from lr to lr * min_lr_ratio over the run; loss = BCE/CE + dice_weight * soft Dice."""
        self.training_options = {"lr": lr, "min_lr_ratio": min_lr_ratio, "weight_decay": weight_decay,
                                 "dice_weight": dice_weight}
        return self

    def _options(self) -> dict:
        return getattr(self, "training_options", None) or self.configure_training().training_options

    def training_step(self, batch, group: str = "main") -> StepOutput:
        """Loss of a batch {"x": (B, C, h, w) images, "y": (B, h, w) class maps} or (x, y)."""
        x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else (batch[0], batch[1])
        loss, terms = segmentation_loss(self(x), y, dice_weight=self._options()["dice_weight"])
        weights = {k: (1.0 if k != "dice" else self._options()["dice_weight"]) for k in terms}
        return StepOutput(loss=loss, terms=terms, weights=weights)

    def validation_step(self, batch) -> StepOutput:
        return self.training_step(batch)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        o = self._options()

        def schedule(opt, total_steps: int):
            r = o["min_lr_ratio"]
            return torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: r + (1 - r) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total_steps)))))

        return [OptimizerGroup("main", list(self.parameters()), schedule=schedule,
                               optimizer=lambda params: torch.optim.Adam(params, lr=o["lr"], weight_decay=o["weight_decay"]))]

    @torch.no_grad()
    def predict_labels(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, H, W) -> class maps (B, H, W) int64: logit > 0 for binary, argmax otherwise."""
        return logits_to_labels(logits)


def logits_to_labels(logits: torch.Tensor) -> torch.Tensor:
    if logits.shape[-3] == 1:
        return (logits[..., 0, :, :] > 0).long()
    return logits.argmax(dim=-3)
