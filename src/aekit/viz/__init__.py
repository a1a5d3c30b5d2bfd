"""See the model: plots, latent-space diagnostics, and self-contained HTML reports.

    from aekit.viz import plot_reconstructions, save_figure, diagnose, write_report
    save_figure(plot_reconstructions(model, x_test), "recon.png")    # or .svg
    diagnose(model, x_train, x_test, y_train=y_train, y_test=y_test)  # gaps, separability, continuity
    write_report("runs/vae")                                         # runs/vae/report.html

Every plot function returns a headless matplotlib Figure (figures.py); image plots are in
images.py, latent-space plots in latent.py, charts in curves.py; report.py and compare.py
assemble the `aekit report` and `aekit compare` pages from them (templates.py).
"""

from .compare import write_comparison
from .curves import plot_code_histogram, plot_kl_per_unit, plot_loss_comparison, plot_loss_curves, read_history
from .diagnostics import continuity, diagnose, gap_fractions, separability, training_codes
from .figures import png_bytes, save_figure
from .images import (plot_denoising, plot_interpolations, plot_reconstruction_comparison, plot_reconstructions,
                     plot_samples)
from .latent import manifold_grid, plot_latent_scatter, plot_manifold, plot_traversals, project_2d
from .report import build_report, write_report

__all__ = [
    "build_report", "continuity", "diagnose", "gap_fractions", "manifold_grid", "plot_code_histogram",
    "plot_denoising", "plot_interpolations", "plot_kl_per_unit", "plot_latent_scatter", "plot_loss_comparison",
    "plot_loss_curves", "plot_manifold", "plot_reconstruction_comparison", "plot_reconstructions", "plot_samples",
    "plot_traversals", "png_bytes", "project_2d", "read_history", "save_figure", "separability", "training_codes",
    "write_comparison", "write_report",
]
