"""Prediction of large images by overlapping tiles with blending.

An image no larger than the tile goes through the net whole. A larger one is first padded to
a multiple of the net's 2**depth (exactly as the net would pad it), then cut into tiles whose
size, stride and start positions are multiples of 2**depth, so every tile sees the same
pooling grid as the whole image would; the last tile in each direction is moved back to end at
the border, so any size is covered. Tile logits are blended with a weight that is zero in a
margin of overlap // 4 pixels along each tile edge that lies inside the image (where zero
padding corrupts the context), then ramps up linearly over another overlap // 4 pixels; edges
on the image border keep full weight. The blend is a weighted mean of logits.

Consequence (tested): for a net whose receptive field reaches at most overlap // 4 pixels, the
tiled logits equal the whole-image logits up to float rounding; for a U-Net (a much larger
receptive field) they agree closely, and more so with a larger overlap.
"""

from __future__ import annotations

import torch

from ...errors import ConfigError
from .unet import logits_to_labels, pad_to_multiple


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_starts(size: int, tile: int, step: int) -> list[int]:
    """Start offsets covering [0, size) with tiles of `tile` pixels every `step`; the last ends at size."""
    if tile >= size:
        return [0]
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def edge_weights(length: int, *, margin: int, ramp: int, border_start: bool, border_end: bool) -> torch.Tensor:
    """(length,) blending weights: 0 within `margin` of an inner edge, then a linear ramp to 1."""
    i = torch.arange(length, dtype=torch.float32)
    big = torch.full_like(i, float(length))
    d_start = big if border_start else i
    d_end = big if border_end else (length - 1 - i)
    d = torch.minimum(d_start, d_end)
    return ((d - margin + 1) / (ramp + 1)).clamp(0.0, 1.0)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, image: torch.Tensor, *, tile: int = 256, overlap: int = 32,
                   batch_size: int = 4) -> torch.Tensor:
    """Logits (K, H, W) of one image (C, H, W); tiled when H or W exceeds `tile`."""
    if not isinstance(tile, int) or tile < 1:
        raise ConfigError(f"tile must be a positive integer; got {tile!r}.")
    if not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise ConfigError(f"overlap must be an integer in [0, tile={tile}); got {overlap!r}.")
    device = next(model.parameters()).device
    x = torch.as_tensor(image, dtype=torch.float32, device=device)[None]  # (1, C, H, W)
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return model(x)[0]
    m = int(getattr(model, "multiple", 1))
    xp = pad_to_multiple(x, m)  # the padding the net itself would apply to the whole image
    hp, wp = xp.shape[-2:]
    th, tw = min(_round_up(tile, m), hp), min(_round_up(tile, m), wp)
    sh = max(m, (th - overlap) // m * m)
    sw = max(m, (tw - overlap) // m * m)
    # zero-weight margins must leave neighbouring tiles' positive parts overlapping: 2 margin + 1 <= tile - step
    mh = min(overlap // 4, max(0, (th - sh - 1) // 2))
    mw = min(overlap // 4, max(0, (tw - sw - 1) // 2))
    boxes = [(y, x0) for y in tile_starts(hp, th, sh) for x0 in tile_starts(wp, tw, sw)]
    out = None
    weight = torch.zeros(1, hp, wp, device=device)
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i:i + batch_size]
        logits = model(torch.cat([xp[:, :, y:y + th, x0:x0 + tw] for y, x0 in chunk]))  # (b, K, th, tw)
        if out is None:
            out = torch.zeros(logits.shape[1], hp, wp, device=device)
        for (y, x0), lg in zip(chunk, logits):
            wy = edge_weights(th, margin=mh, ramp=mh, border_start=y == 0, border_end=y + th == hp)
            wx = edge_weights(tw, margin=mw, ramp=mw, border_start=x0 == 0, border_end=x0 + tw == wp)
            wt = (wy[:, None] * wx[None, :]).to(device)  # (th, tw)
            out[:, y:y + th, x0:x0 + tw] += lg * wt
            weight[:, y:y + th, x0:x0 + tw] += wt
    return (out / weight)[:, :h, :w]


@torch.no_grad()
def predict_mask(model: torch.nn.Module, image, *, tile: int = 256, overlap: int = 32) -> torch.Tensor:
    """Class map (H, W) int64 of one image (C, H, W), in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return logits_to_labels(predict_logits(model, image, tile=tile, overlap=overlap))
    finally:
        model.train(was_training)
