"""The report's compression section for a rate-trained run (bottleneck 'entropy' or 'hyperprior'): the run's
rate-distortion point beside Pillow's JPEG and WebP curves on the same test images (bits per pixel against PSNR and
against MS-SSIM), a table of every point, and the numbers as JSON in the page
(<script type="application/json" id="rate-distortion-data">) for anyone who wants to re-plot them.
The points come from aekit.tasks.compression.rd_points (one file per image, headers counted).
"""

from __future__ import annotations

import json
import math

from . import templates as T
from .figures import new_figure, png_bytes

SECTION_ID = "compression"
TITLE = "Compression: rate and distortion"
DATA_ID = "rate-distortion-data"


def why_not_compression(model, x) -> str | None:
    """None when the section applies, else the reason it is left out."""
    if not model.provides("rate"):
        return "only rate-trained runs (bottleneck entropy or hyperprior)"
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        return f"needs grayscale or RGB images; the test data has shape {tuple(x.shape[1:])}"
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        return f"needs images in [0, 1] (value / 255); the test data spans [{lo:.3g}, {hi:.3g}]"
    return None


def plot_rate_distortion(summary: dict):
    """Two panels: bpp (headers counted) against PSNR and against MS-SSIM; JPEG and WebP lines, the run a star."""
    from matplotlib.ticker import FormatStrFormatter

    fig = new_figure(width=8.4, height=3.3)
    for i, (quality, label) in enumerate((("psnr", "PSNR (dB)"), ("ms_ssim", "MS-SSIM"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for codec, style in (("jpeg", "o-"), ("webp", "s-")):
            pts = sorted(summary[codec], key=lambda p: p["bpp"])
            ax.plot([p["bpp"] for p in pts], [p[quality] for p in pts], style, ms=3, lw=1, label=f"{codec.upper()} (Pillow)")
        run = summary["run"]
        ax.plot([run["bpp"]], [run[quality]], "*", ms=12, color="crimson", label=f"this run (lambda {run['setting']:g})")
        ax.set_xlabel("bits per pixel (file, headers counted)", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"Rate-distortion on {summary['images']} test images "
                 f"({summary['size'][0]} x {summary['size'][1]}, {summary['channels']} channel(s))", fontsize=9)
    return fig


def _finite(obj):
    """JSON without NaN / Infinity (not valid JSON): those become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def compression_html(summary: dict) -> str:
    """The section's body: figure, the equal-quality rates, a table of every point, the JSON data."""
    run = summary["run"]
    lines = []
    for quality, label in (("psnr", f"PSNR {run['psnr']:.2f} dB"), ("ms_ssim", f"MS-SSIM {run['ms_ssim']:.4f}")):
        parts = []
        for codec in ("jpeg", "webp"):
            v = summary.get(f"{codec}_bpp_at_run_{quality}")
            parts.append(f"{codec.upper()} {v:.3f} bpp" if v is not None else f"{codec.upper()}: outside its quality sweep")
        lines.append(f"<li>At the run's {label}: this run {run['bpp']:.3f} bpp; " + "; ".join(parts) + "</li>")
    scales = summary["ms_ssim_scales"]
    note = (f"<p class='note'>Each image coded on its own: one .aekc (aekit compress --images), one JPEG, one WebP "
            f"(method 6) file each; bpp counts every header (payload_bpp: the coded bits alone). MS-SSIM with "
            f"{scales} scale(s){' (small images)' if scales < 5 else ''}. A run is one point: train runs with "
            f"several --lambda values for a curve.</p>")
    rows = [dict(p, codec=("this run" if p is run else p["codec"])) for p in [run, *summary["jpeg"], *summary["webp"]]]
    table = T.table(rows, ["codec", "setting", "bpp", "payload_bpp", "psnr", "ms_ssim", "encode_ms", "decode_ms"],
                    headers={"setting": "lambda / quality"})
    data = json.dumps(_finite(summary)).replace("</", "<\\/")
    return (T.figure_html(png_bytes(plot_rate_distortion(summary)), alt=TITLE,
                          caption="Bits per pixel against PSNR and MS-SSIM: this run and Pillow's JPEG and WebP.")
            + f"<ul class='note'>{''.join(lines)}</ul>" + note
            + f"<details><summary>Every point</summary>{table}</details>"
            + f'<script type="application/json" id="{DATA_ID}">{data}</script>')
