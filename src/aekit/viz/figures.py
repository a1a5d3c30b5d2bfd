"""Figure plumbing shared by every plot: headless figures, saving PNG / SVG, image tiles.

Headless by construction: figures are `matplotlib.figure.Figure` objects drawn by the Agg
canvas, never pyplot figures, so no GUI backend is touched, no global figure registry fills up,
and aekit does not switch the backend of a user's own pyplot session. A figure is freed as soon
as nothing refers to it; `save_figure` also clears it after writing.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")
DPI = 110


def new_figure(*, width: float, height: float) -> Figure:
    """A figure (inches) attached to the Agg canvas: drawing never needs a display."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path, *, close: bool = True) -> Path:
    """Write fig to path; the format follows the suffix (.png, .svg, .pdf)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"figure path must end in {', '.join('.' + f for f in FORMATS)}; got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=DPI)
    if close:
        fig.clear()
    return path


def png_bytes(fig: Figure, *, close: bool = True) -> bytes:
    """The figure as PNG bytes (for data: URIs in the HTML report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    if close:
        fig.clear()
    return buf.getvalue()


def svg_text(fig: Figure, *, close: bool = True) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    if close:
        fig.clear()
    return buf.getvalue()


def to_images(x) -> np.ndarray:
    """(N, C, H, W) tensor or array -> float32 array clipped to [0, 1] for display."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
        x = x[:, None]
    return np.clip(x, 0.0, 1.0)


def tile(images: np.ndarray, *, cols: int, pad: int = 1) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (rows*(H+pad)-pad, cols*(W+pad)-pad, 3) RGB with white gaps.

    One channel is shown in grey; three as RGB; any other count shows its first channel.
    """
    n, c, h, w = images.shape
    rows = max(1, int(np.ceil(n / cols)))
    if c == 3:
        rgb = images.transpose(0, 2, 3, 1)  # (N, H, W, 3)
    else:
        rgb = np.repeat(images[:, :1].transpose(0, 2, 3, 1), 3, axis=3)  # grey -> (N, H, W, 3)
    grid = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), dtype=np.float32)
    for i, img in enumerate(rgb):
        r, k = divmod(i, cols)
        grid[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = img
    return grid


def image_rows(rows: list[tuple[str, object]], *, title: str | None = None, cell: float = 0.55,
               col_labels: list[str] | None = None) -> Figure:
    """One figure of labelled rows of images; rows: [(label, (N, C, H, W)), ...], equal N.

    Drawn as one tiled array (crisp pixels, one imshow), the row labels on the y axis.
    """
    arrays = [to_images(images) for _, images in rows]
    n, c, h, w = arrays[0].shape
    pad = max(1, h // 8)
    grid = tile(np.concatenate(arrays), cols=n, pad=pad)
    fig = new_figure(width=max(3.0, cell * n + 1.2), height=max(1.2, cell * len(rows) + (0.5 if title else 0.2)))
    ax = fig.add_subplot()
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(len(rows))], [label for label, _ in rows])
    if col_labels:
        ax.set_xticks([k * (w + pad) + w / 2 for k in range(n)], col_labels, fontsize=7)
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def image_grid_figure(images, *, cols: int, title: str | None = None, cell: float = 0.45,
                      x_labels: list[str] | None = None, y_labels: list[str] | None = None,
                      x_name: str | None = None, y_name: str | None = None) -> Figure:
    """A grid of images (row-major), optionally with tick labels for columns and rows."""
    arr = to_images(images)
    n, c, h, w = arr.shape
    rows = int(np.ceil(n / cols))
    pad = max(1, h // 8)
    grid = tile(arr, cols=cols, pad=pad)
    fig = new_figure(width=max(3.0, cell * cols + 1.0), height=max(2.0, cell * rows + 0.8))
    ax = fig.add_subplot()
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([k * (w + pad) + w / 2 for k in range(cols)] if x_labels else [], x_labels or [], fontsize=7)
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(rows)] if y_labels else [], y_labels or [], fontsize=7)
    ax.tick_params(length=0)
    if x_name:
        ax.set_xlabel(x_name)
    if y_name:
        ax.set_ylabel(y_name)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
