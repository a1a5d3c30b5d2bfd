"""Sparse dictionaries of a network's activations (issue 21): the overcomplete sparse autoencoder at work.

capture.py     forward hooks on any nn.Module by layer name, streaming activations to a store
store.py       the append-only memory-mapped activation store and the shuffling buffer
features.py    per latent: firing rate and top-activating rows, mapped back to inputs (feature browser data)
metrics.py     L0, FVU, dead / dense latents, the downstream splice and fraction of loss recovered
synthetic.py   superposition data with a known dictionary and the recovery metrics
model.py       SparseAutoencoder (topk, batch_topk, jumprelu, relu + L1) on the step contract; save_sae / load_sae
train.py       train_sae: an SAE trained by the one Trainer from a store through the shuffling buffer
dictionary.py  decoder unit norm, encoder = decoder transpose, geometric-median pre-bias,
               activation scale folding, AuxK, JumpReLU's straight-through threshold

See docs/sae.md for what exists and what remains.
"""

from .capture import capture, find_layer
from .dictionary import (activation_scale, auxk_loss, fold_activation_scale, geometric_median, init_encoder_from_decoder_,
                         jumprelu, normalize_decoder_, project_decoder_grad_, random_decoder, sae_forward, step)
from .model import ACTIVATIONS, SparseAutoencoder, load_sae, save_sae
from .features import TopActivations, feature_summary, row_origin
from .metrics import (FVU, FiringTracker, downstream_effect, fraction_loss_recovered, fvu, l0, reconstruction_metrics,
                      splice)
from .store import ActivationStore, ShufflingBuffer
from .synthetic import feature_recovery, max_cosines, superposition_data
from .train import train_sae

__all__ = [
    "ACTIVATIONS", "SparseAutoencoder", "load_sae", "save_sae", "train_sae",
    "ActivationStore", "FVU", "FiringTracker", "ShufflingBuffer", "TopActivations", "activation_scale", "auxk_loss", "capture",
    "downstream_effect", "feature_recovery", "feature_summary", "find_layer", "fold_activation_scale", "fraction_loss_recovered", "fvu",
    "geometric_median", "init_encoder_from_decoder_", "jumprelu", "l0", "max_cosines", "normalize_decoder_",
    "project_decoder_grad_", "random_decoder", "reconstruction_metrics", "row_origin", "sae_forward", "splice", "step", "superposition_data",
]
