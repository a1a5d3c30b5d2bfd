"""U-Net encoder/decoder (Ronneberger et al. 2015) with concatenated skip connections.

Encoder: per level two 3x3 convolutions (padding 1, sizes kept) whose output is saved as a
skip, then a stride-2 3x3 convolution down. The deepest map is flattened into h for the
bottleneck. Decoder: a linear map back to the deepest map, then per level a transposed
convolution up (output_padding picked per level, so any H x W works), concatenation with the
skip of that level, and two 3x3 convolutions; a 1x1 convolution gives the output channels.

Caveat: with skips=True the input reaches the decoder without passing the bottleneck, so a
reconstruction model can copy it and bottleneck regularizers (KL, sparsity) become nearly
vacuous. For reconstruction use skips=False or the conv backbone; skips are for segmentation.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import BACKBONES
from .activations import make_activation
from .conv import check_channels, check_image_shape, spatial_sizes, up_layer


def double_conv(c_in: int, c_out: int, activation: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), make_activation(activation),
        nn.Conv2d(c_out, c_out, kernel_size=3, padding=1), make_activation(activation),
    )


class UNetEncoder(nn.Module):
    def __init__(self, *, input_shape, channels=(16, 32), activation: str = "relu") -> None:
        super().__init__()
        c, h, w = check_image_shape(input_shape, "unet")
        chans = check_channels(channels)
        self.input_shape = (c, h, w)
        self.sizes = spatial_sizes(h, w, len(chans))
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        for c_out in chans:
            self.blocks.append(double_conv(c, c_out, activation))
            self.downs.append(nn.Sequential(nn.Conv2d(c_out, c_out, 3, stride=2, padding=1), make_activation(activation)))
            c = c_out
        hl, wl = self.sizes[-1]
        self.out_features = c * hl * wl

    def forward(self, x: torch.Tensor):
        skips = []
        for block, down in zip(self.blocks, self.downs):
            x = block(x)  # (B, c_l, H_l, W_l)
            skips.append(x)
            x = down(x)  # -> (B, c_l, H_{l+1}, W_{l+1})
        return x.flatten(1), skips


class UNetDecoder(nn.Module):
    def __init__(self, *, input_shape, latent_dim: int, channels=(16, 32), activation: str = "relu",
                 sizes=None, skips: bool = True) -> None:
        super().__init__()
        c, h, w = check_image_shape(input_shape, "unet")
        chans = check_channels(channels)
        sizes = sizes or spatial_sizes(h, w, len(chans))
        self.use_skips = bool(skips)
        self.deep_shape = (chans[-1], *sizes[-1])
        self.project = nn.Sequential(
            nn.Linear(latent_dim, chans[-1] * sizes[-1][0] * sizes[-1][1]), make_activation(activation)
        )
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        c_in = chans[-1]
        for level in range(len(chans), 0, -1):  # deepest first
            c_skip = chans[level - 1]
            self.ups.append(up_layer(c_in, c_skip, sizes[level], sizes[level - 1]))
            self.blocks.append(double_conv(c_skip * (2 if self.use_skips else 1), c_skip, activation))
            c_in = c_skip
        self.head = nn.Conv2d(c_in, c, kernel_size=1)  # no activation: the likelihood reads it

    def forward(self, z: torch.Tensor, skips=()) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], *self.deep_shape)
        if self.use_skips and len(skips) != len(self.ups):
            raise ConfigError(f"the unet decoder needs {len(self.ups)} skip maps from the encoder; got {len(skips)}")
        for i, (up, block) in enumerate(zip(self.ups, self.blocks)):
            x = up(x)
            if self.use_skips:
                x = torch.cat([x, skips[len(skips) - 1 - i]], dim=1)  # concatenate along channels
            x = block(x)
        return self.head(x)  # (B, C, H, W)


@BACKBONES.register("unet")
class UNetBackbone:
    """U-Net encoder/decoder with concatenated skip connections (skips=False: a plain conv pyramid).
    Ronneberger et al. 2015, U-Net: convolutional networks for biomedical image segmentation."""

    provides = frozenset()
    may_provide = {"skips": "skips=True", "code_decoder": "skips=False"}
    requires = frozenset({"image_input"})
    examples = ({"channels": [4], "skips": True}, {"channels": [4], "skips": False})

    @classmethod
    def provides_for(cls, *, channels=(16, 32), activation: str = "relu", skips: bool = True) -> frozenset[str]:
        return frozenset({"skips"}) if skips else frozenset({"code_decoder"})  # without skips: decodes a code alone

    def __init__(self, *, input_shape, latent_dim: int, channels: list[int] = (16, 32), activation: str = "relu",
                 skips: bool = True) -> None:
        self.encoder = UNetEncoder(input_shape=input_shape, channels=channels, activation=activation)
        self.decoder = UNetDecoder(input_shape=input_shape, latent_dim=latent_dim, channels=channels,
                                   activation=activation, sizes=self.encoder.sizes, skips=skips)
