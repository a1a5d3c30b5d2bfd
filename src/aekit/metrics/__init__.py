"""Metrics as plain functions over tensors: reconstruction, likelihood bounds, representation."""

from .disentanglement import betavae_score, dci, factorvae_score, mig
from .likelihood import active_units, elbo_terms, iwae_bound
from .ms_ssim import ms_ssim, ms_ssim_scales
from .reconstruction import reconstruction_metrics, ssim
from .representation import knn_accuracy, linear_probe_accuracy

__all__ = ["betavae_score", "dci", "factorvae_score", "mig", "active_units", "elbo_terms", "iwae_bound", "knn_accuracy", "linear_probe_accuracy",
           "ms_ssim", "ms_ssim_scales", "reconstruction_metrics", "ssim"]
