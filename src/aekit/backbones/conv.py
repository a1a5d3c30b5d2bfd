"""Convolutional encoder/decoder for images C x H x W of any size.

Encoder: per level a 3x3 Conv2d with stride 2 and padding 1 (H -> ceil(H / 2)), then flatten.
Optional fully connected layers (`fc`, e.g. (256, 256), the beta-VAE papers' architecture) sit
between the flattened features and the code, mirrored in the decoder.
Decoder: a linear map to the deepest feature map, then per level a 3x3 ConvTranspose2d with
stride 2 whose output_padding is chosen per level so that every odd or even size is restored
exactly (28 -> 14 -> 7 -> 4 and back 4 -> 7 -> 14 -> 28; 8 x 8, 28 x 20, 64 x 64 alike).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import BACKBONES
from .activations import make_activation
from .dense import check_widths, dense_stack


def check_image_shape(input_shape, backbone: str) -> tuple[int, int, int]:
    if len(input_shape) != 3 or any(int(s) <= 0 for s in input_shape):
        raise ConfigError(
            f"backbone={backbone!r} needs image inputs of shape (C, H, W); got input_shape={tuple(input_shape)!r}. "
            "Use backbone='mlp' for vectors."
        )
    return tuple(int(s) for s in input_shape)  # type: ignore[return-value]


def check_channels(channels) -> tuple[int, ...]:
    chans = tuple(channels)
    if not chans or any((not isinstance(c, int)) or c <= 0 for c in chans):
        raise ConfigError(f"channels must be a non-empty list of positive integers; got {list(channels)!r}.")
    return chans


def downsampled(size: int) -> int:
    return (size - 1) // 2 + 1  # k=3, s=2, p=1: ceil(size / 2)


def spatial_sizes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    for _ in range(levels):
        h, w = downsampled(h), downsampled(w)
        sizes.append((h, w))
    return sizes  # [(H, W), (H1, W1), ..., (HL, WL)]


def up_layer(c_in: int, c_out: int, src: tuple[int, int], dst: tuple[int, int]) -> nn.ConvTranspose2d:
    # ConvTranspose2d(k=3, s=2, p=1): out = 2 * in - 1 + output_padding; pick output_padding in {0, 1}
    pad = (dst[0] - (2 * src[0] - 1), dst[1] - (2 * src[1] - 1))
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1, output_padding=pad)


class ConvEncoder(nn.Module):
    def __init__(self, *, input_shape, channels=(32, 64), activation: str = "relu", fc=()) -> None:
        super().__init__()
        c, h, w = check_image_shape(input_shape, "conv")
        chans = check_channels(channels)
        fc = check_widths(fc, name="conv_hidden")
        self.input_shape = (c, h, w)
        self.sizes = spatial_sizes(h, w, len(chans))
        layers: list[nn.Module] = []
        for c_out in chans:
            layers += [nn.Conv2d(c, c_out, kernel_size=3, stride=2, padding=1), make_activation(activation)]
            c = c_out
        self.net = nn.Sequential(*layers)
        hl, wl = self.sizes[-1]
        self.fc = nn.Sequential(*dense_stack([c * hl * wl, *fc], activation))
        self.out_features = fc[-1] if fc else c * hl * wl

    def forward(self, x: torch.Tensor):
        return self.fc(self.net(x).flatten(1)), []  # (B, C, H, W) -> (B, C_L * H_L * W_L) -> (B, fc[-1])


class ConvDecoder(nn.Module):
    def __init__(self, *, input_shape, latent_dim: int, channels=(32, 64), activation: str = "relu", sizes=None,
                 fc=()) -> None:
        super().__init__()
        c, h, w = check_image_shape(input_shape, "conv")
        chans = check_channels(channels)
        fc = check_widths(fc, name="conv_hidden")
        self.input_shape = (c, h, w)
        sizes = sizes or spatial_sizes(h, w, len(chans))
        self.deep_shape = (chans[-1], *sizes[-1])
        # (B, latent) -> fc reversed -> (B, C_L * H_L * W_L)
        self.project = nn.Sequential(
            *dense_stack([latent_dim, *reversed(fc), chans[-1] * sizes[-1][0] * sizes[-1][1]], activation)
        )
        layers: list[nn.Module] = []
        outs = list(reversed(chans[:-1])) + [c]  # channels after each up-step, ending at the image's
        c_in = chans[-1]
        for i, c_out in enumerate(outs):
            level = len(chans) - i  # from the deepest level L down to 1
            layers.append(up_layer(c_in, c_out, sizes[level], sizes[level - 1]))
            if i < len(outs) - 1:
                layers.append(make_activation(activation))  # no activation on the output
            c_in = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, skips=()) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], *self.deep_shape)  # (B, latent) -> (B, C_L, H_L, W_L)
        return self.net(h)  # -> (B, C, H, W)


@BACKBONES.register("conv")
class ConvBackbone:
    """Strided 3x3 convolutions down, transposed convolutions up; hidden: fully connected widths before the code.
    Masci et al. 2011, Stacked convolutional auto-encoders for hierarchical feature extraction."""

    provides = frozenset({"conv_features"})  # convolutional features (its hidden: fully connected widths after them)
    requires = frozenset({"image_input"})
    examples = ({"channels": [4, 8]}, {"channels": [4], "hidden": [8]})

    def __init__(self, *, input_shape, latent_dim: int, channels: list[int] = (32, 64), hidden: list[int] = (),
                 activation: str = "relu") -> None:
        self.encoder = ConvEncoder(input_shape=input_shape, channels=channels, activation=activation, fc=hidden)
        self.decoder = ConvDecoder(input_shape=input_shape, latent_dim=latent_dim, channels=channels,
                                   activation=activation, sizes=self.encoder.sizes, fc=hidden)
