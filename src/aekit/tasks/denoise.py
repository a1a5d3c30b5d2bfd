"""Denoising with a trained (denoising) autoencoder, and the noise models used to evaluate it.

A denoising autoencoder (Vincent et al. 2008) is trained to map corrupted inputs back to the
clean ones (`aekit train dae --noise gaussian_clipped:0.3`); denoising is then one deterministic
pass, `model.reconstruct(x_noisy)` (eval mode: no corruption, posterior means).

Noise specs are the corruption specs of aekit.axes.corruption, levels in the data's units (pixel
intensities in [0, 1] for images):
  gaussian:STD          x + N(0, STD^2), not clipped
  gaussian_clipped:STD  the same, clipped to [0, 1] (the usual image-denoising protocol)
  salt_and_pepper:P     a fraction P of values set to 0 or 1 (half each)
  masking:P             a fraction P of values set to 0
"""

from __future__ import annotations

import torch

from ..axes.corruption import NoCorruption, corruption_spec
from ..registry import CORRUPTIONS
from ..errors import ConfigError, ShapeError


def add_noise(x: torch.Tensor, spec, *, seed: int = 0) -> torch.Tensor:
    """x (N, ...) -> a noisy copy under `spec` ('gaussian_clipped:0.5', ...), reproducible from seed.

    Uses the same code as training-time corruption, so evaluation noise is exactly the noise the
    model was trained on; the global RNG is left untouched.
    """
    corruption = CORRUPTIONS.create(corruption_spec(spec)).train()
    if isinstance(corruption, NoCorruption):
        raise ConfigError(f"noise must name a corruption such as 'gaussian_clipped:0.5'; got {spec!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return corruption(x.float())


@torch.no_grad()
def denoise(model, x_noisy: torch.Tensor, *, batch_size: int = 1000, ensemble: bool = False) -> torch.Tensor:
    """Reconstructions of noisy inputs (N, *input_shape) -> same shape, in the model's units.

    ensemble=True (images (N, C, H, W) only) averages the reconstructions of the 8 turned and flipped copies of
    each image (4 when not square), each turned back (aekit.training.dihedral.self_ensemble): 8x the work."""
    if not isinstance(x_noisy, torch.Tensor):
        raise ShapeError(f"x_noisy must be a torch.Tensor; got {type(x_noisy).__name__}.")
    model.eval()
    model.check_input(x_noisy, name="x_noisy")  # the whole shape in any message
    if ensemble and x_noisy.dim() != 4:
        raise ConfigError(f"ensemble needs images (N, C, H, W); got data of shape {tuple(x_noisy.shape)}.")
    if x_noisy.shape[0] == 0:
        return x_noisy.clone()
    from ..training.denoise_ensemble import reconstructed

    return reconstructed(model, x_noisy, ensemble=ensemble, batch_size=batch_size)


def ensemble_by_default(info: dict) -> bool:
    """Whether denoising with a run averages over the image symmetries when not told: what its run.json records
    ("denoise": {"ensemble": true/false}, chosen on its validation images by 'aekit train dae' on images), else
    whether it trained with augment='dihedral'. Runs with neither (older ones included) take one pass."""
    if not isinstance(info, dict):
        return False
    recorded = info.get("denoise")
    if isinstance(recorded, dict) and isinstance(recorded.get("ensemble"), bool):
        return recorded["ensemble"]
    train = info.get("train")
    return isinstance(train, dict) and train.get("augment") == "dihedral"


def denoising_metrics(x_clean: torch.Tensor, x_noisy: torch.Tensor, x_denoised: torch.Tensor) -> dict:
    """PSNR (dB, mean over images, peak 1) and SSIM (images) of the noisy input and the denoised output.

    Both are clipped to [0, 1] first when the clean data lies in [0, 1] (an image viewer would clip).
    """
    from ..metrics import reconstruction_metrics, ssim

    unit = bool(x_clean.min() >= 0 and x_clean.max() <= 1)
    clip = (lambda t: t.clamp(0, 1)) if unit else (lambda t: t)  # noqa: E731
    out = {"psnr_noisy": reconstruction_metrics(x_clean, clip(x_noisy), peak=1.0 if unit else None)["psnr"],
           "psnr_denoised": reconstruction_metrics(x_clean, clip(x_denoised), peak=1.0 if unit else None)["psnr"]}
    if x_clean.dim() == 4 and unit:
        out["ssim_noisy"] = ssim(x_clean, clip(x_noisy))
        out["ssim_denoised"] = ssim(x_clean, clip(x_denoised))
    return out


def denoise_run(run_dir, *, data: str, data_dir: str | None = None, split: str | None = None,
                max_samples: int | None = None, noise: str | None = None, seed: int = 0,
                ensemble: bool | None = None) -> dict:
    """Denoise data with a run's model; with noise, corrupt the clean data first and score noisy vs denoised.

    ensemble: average over the image symmetries (denoise's ensemble); None (default): what the run records
    (ensemble_by_default: chosen on the validation images by 'aekit train dae' on images; off for runs that record
    nothing).

    {'data', 'denoised' (float32, the data's units, clipped where bounded), 'noisy' (float32, the data's units,
    converted but not clipped: an input, not a model output), 'metrics' (with noise; else None)}."""
    import numpy as np

    from ..training.runs import load_run, run_data
    from ..units import OutputUnits

    model, info = load_run(run_dir)
    x, _, ds, what = run_data(info, source=data, data_dir=data_dir, split=split, model=model, max_samples=max_samples)
    x_noisy = add_noise(x, noise, seed=seed) if noise else x
    if ensemble is None:
        ensemble = ensemble_by_default(info) and x_noisy.dim() == 4
    x_hat = denoise(model, x_noisy, ensemble=bool(ensemble))
    metrics = None
    if noise:
        metrics = {"data": what, "noise": noise, "images": int(x.shape[0]), **denoising_metrics(x, x_noisy, x_hat)}
    return {"data": what, "ensemble": bool(ensemble), "denoised": OutputUnits.from_dataset(ds, model).to_raw(x_hat).numpy().astype(np.float32),
            "noisy": ds.to_raw(x_noisy).numpy().astype(np.float32), "metrics": metrics}
