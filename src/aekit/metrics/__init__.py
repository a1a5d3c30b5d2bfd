"""Metrics: reconstruction quality and likelihood bounds, as plain functions over tensors."""

from .likelihood import elbo_terms
from .reconstruction import reconstruction_metrics

__all__ = ["elbo_terms", "reconstruction_metrics"]
