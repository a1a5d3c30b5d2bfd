"""Convolutional encoder/decoder for images C x H x W of any size.

Encoder: per level a 3x3 Conv2d with stride 2 and padding 1 (H -> ceil(H / 2)), then flatten.
Optional fully connected layers (`fc`, e.g. (256, 256), the beta-VAE papers' architecture) sit
between the flattened features and the code, mirrored in the decoder.
Decoder: a linear map to the deepest feature map, then per level a 3x3 ConvTranspose2d with
stride 2 whose output_padding is chosen per level so that every odd or even size is restored
exactly (28 -> 14 -> 7 -> 4 and back 4 -> 7 -> 14 -> 28; 8 x 8, 28 x 20, 64 x 64 alike).

fully_convolutional=True: no flattening. The encoder returns its deepest feature map
(B, C_L, H_L, W_L) and the code keeps that spatial shape (B, latent_dim, H_L, W_L) (a
bottleneck that provides 'spatial_bottleneck' maps channels to code channels per position);
the decoder starts with a 1x1 convolution and its transposed convolutions are given the output
size, so one model codes images of any size (decoder(z, output_size=(H, W))).
activation='gdn': GDN after the encoder's convolutions and IGDN in the decoder (backbones/gdn.py).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from ..registry import BACKBONES
from .activations import ACTIVATIONS, make_activation
from .dense import check_widths, dense_stack
from .gdn import GDN

CONV_ACTIVATIONS = (*ACTIVATIONS, "gdn")


def conv_activation(name: str, channels: int, *, inverse: bool = False) -> nn.Module:
    """make_activation, plus 'gdn': GDN over `channels` (IGDN when inverse, i.e. in the decoder)."""
    if name == "gdn":
        return GDN(channels, inverse=inverse)
    return make_activation(name)


def check_conv_activation(activation: str, fc) -> None:
    from ..errors import check_choice

    check_choice("backbone 'conv' activation", activation, CONV_ACTIVATIONS)
    if activation == "gdn" and fc:
        raise ConfigError(f"backbone 'conv' activation='gdn' normalizes feature maps and cannot follow the fully "
                          f"connected layers hidden={list(fc)!r}; use hidden=[] (or another activation).")


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
    def __init__(self, *, input_shape, channels=(32, 64), activation: str = "relu", fc=(),
                 fully_convolutional: bool = False) -> None:
        super().__init__()
        c, h, w = check_image_shape(input_shape, "conv")
        chans = check_channels(channels)
        fc = check_widths(fc, name="conv_hidden")
        check_conv_activation(activation, fc)
        self.input_shape = (c, h, w)
        self.sizes = spatial_sizes(h, w, len(chans))
        self.fully_convolutional = bool(fully_convolutional)
        layers: list[nn.Module] = []
        for c_out in chans:
            layers += [nn.Conv2d(c, c_out, kernel_size=3, stride=2, padding=1), conv_activation(activation, c_out)]
            c = c_out
        self.net = nn.Sequential(*layers)
        hl, wl = self.sizes[-1]
        if self.fully_convolutional:
            self.out_features = c  # channels of the deepest map (B, C_L, H_L, W_L)
        else:
            self.fc = nn.Sequential(*dense_stack([c * hl * wl, *fc], activation))
            self.out_features = fc[-1] if fc else c * hl * wl

    def forward(self, x: torch.Tensor):
        if self.fully_convolutional:
            return self.net(x), []  # (B, C, H, W) -> (B, C_L, ceil(H / 2^L), ceil(W / 2^L)), any H, W
        return self.fc(self.net(x).flatten(1)), []  # (B, C, H, W) -> (B, C_L * H_L * W_L) -> (B, fc[-1])


class ConvDecoder(nn.Module):
    def __init__(self, *, input_shape, latent_dim: int, channels=(32, 64), activation: str = "relu", sizes=None,
                 fc=(), fully_convolutional: bool = False) -> None:
        super().__init__()
        c, h, w = check_image_shape(input_shape, "conv")
        chans = check_channels(channels)
        fc = check_widths(fc, name="conv_hidden")
        check_conv_activation(activation, fc)
        self.input_shape = (c, h, w)
        self.levels = len(chans)
        self.fully_convolutional = bool(fully_convolutional)
        sizes = sizes or spatial_sizes(h, w, len(chans))
        self.deep_shape = (chans[-1], *sizes[-1])
        if self.fully_convolutional:  # (B, latent, H_L, W_L) -> (B, C_L, H_L, W_L), a 1x1 convolution
            self.project = nn.Sequential(nn.Conv2d(latent_dim, chans[-1], kernel_size=1),
                                         conv_activation(activation, chans[-1], inverse=True))
        elif activation == "gdn":  # (B, latent) -> (B, C_L * H_L * W_L), then IGDN on the deepest map
            self.project = nn.Sequential(nn.Linear(latent_dim, chans[-1] * sizes[-1][0] * sizes[-1][1]))
            self.deep_activation = GDN(chans[-1], inverse=True)
        else:  # (B, latent) -> fc reversed -> (B, C_L * H_L * W_L)
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
                layers.append(conv_activation(activation, c_out, inverse=True))  # no activation on the output
            c_in = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, skips=(), *, output_size=None) -> torch.Tensor:
        """z: (B, latent) or, fully convolutional, (B, latent, H_L, W_L); output_size (H, W): the image size to
        restore (fully convolutional only; default the model's input size) -> (B, C, H, W)."""
        if not self.fully_convolutional:
            h = self.project(z).view(z.shape[0], *self.deep_shape)  # (B, latent) -> (B, C_L, H_L, W_L)
            if hasattr(self, "deep_activation"):
                h = self.deep_activation(h)
            return self.net(h)  # -> (B, C, H, W)
        size = tuple(output_size) if output_size is not None else self.input_shape[1:]
        sizes = spatial_sizes(int(size[0]), int(size[1]), self.levels)
        if z.dim() != 4 or tuple(z.shape[2:]) != sizes[-1]:
            raise ShapeError(f"a code of shape {tuple(z.shape)} does not decode to an image of size {size}: "
                             f"expected (batch, channels, {sizes[-1][0]}, {sizes[-1][1]}).")
        h = self.project(z)  # (B, C_L, H_L, W_L)
        level = self.levels
        for layer in self.net:
            if isinstance(layer, nn.ConvTranspose2d):  # the output size picks output_padding: any H, W
                level -= 1
                h = layer(h, output_size=sizes[level])
            else:
                h = layer(h)
        return h  # (B, C, H, W)


@BACKBONES.register("conv")
class ConvBackbone:
    """Strided 3x3 convolutions down, transposed convolutions up; hidden: fully connected widths before the code.
    Masci et al. 2011, Stacked convolutional auto-encoders for hierarchical feature extraction."""

    provides = frozenset({"conv_features", "code_decoder"})  # conv features (hidden: FC widths after them)
    requires = frozenset({"image_input"})
    may_provide = {"spatial_code": "fully_convolutional=True"}
    may_require = {"spatial_bottleneck": "fully_convolutional=True"}
    examples = ({"channels": [4, 8]}, {"channels": [4], "hidden": [8]},
                {"channels": [4, 8], "activation": "gdn", "fully_convolutional": True})

    @classmethod
    def provides_for(cls, *, fully_convolutional: bool = False, **_) -> frozenset[str]:
        return frozenset({"conv_features", "code_decoder"} | ({"spatial_code"} if fully_convolutional else set()))

    @classmethod
    def requires_for(cls, *, fully_convolutional: bool = False, **_) -> frozenset[str]:
        # a spatial code (B, C, H, W) needs a bottleneck that works per position (entropy, hyperprior)
        return frozenset({"image_input", "spatial_bottleneck"} if fully_convolutional else {"image_input"})

    def __init__(self, *, input_shape, latent_dim: int, channels: list[int] = (32, 64), hidden: list[int] = (),
                 activation: str = "relu", fully_convolutional: bool = False) -> None:
        if fully_convolutional and hidden:
            raise ConfigError(f"backbone 'conv' fully_convolutional=True keeps the code spatial and has no fully "
                              f"connected layers; got hidden={list(hidden)!r} (use hidden=[]).")
        self.encoder = ConvEncoder(input_shape=input_shape, channels=channels, activation=activation, fc=hidden,
                                   fully_convolutional=fully_convolutional)
        self.decoder = ConvDecoder(input_shape=input_shape, latent_dim=latent_dim, channels=channels,
                                   activation=activation, sizes=self.encoder.sizes, fc=hidden,
                                   fully_convolutional=fully_convolutional)
