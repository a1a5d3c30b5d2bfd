"""Metrics as plain functions over tensors: reconstruction, likelihood bounds, representation."""

from .codes import code_sparsity, codebook_usage
from .disentanglement import betavae_score, dci, factorvae_score, mig
from .likelihood import active_units, elbo_terms, iwae_bound
from .reconstruction import reconstruction_metrics, ssim
from .representation import knn_accuracy, linear_probe_accuracy

__all__ = ["code_sparsity", "codebook_usage", "betavae_score", "dci", "factorvae_score", "mig", "active_units", "elbo_terms", "iwae_bound", "knn_accuracy", "linear_probe_accuracy",
           "reconstruction_metrics", "ssim"]

from .ms_ssim import ms_ssim, ms_ssim_scales  # noqa: E402  (Wang et al. 2003)

__all__ += ["ms_ssim", "ms_ssim_scales"]
