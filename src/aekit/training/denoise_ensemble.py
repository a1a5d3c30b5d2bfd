"""An image denoiser's self-ensemble, chosen on its own validation images after training.

    figures = compare_ensemble(model, x_val)       # one pass vs the mean over the 8 turned copies
    record = choose_ensemble_for_run(run_dir, x_val)  # decide and record it in run.json ("denoise")

'aekit train dae' on images asks for the choice (training/data_defaults.py: run.json "denoise":
{"choose": "validation"}); train_run calls choose_ensemble_for_run after training, and 'aekit
denoise' follows the record (tasks/denoise.py ensemble_by_default). No fixed answer fits all images:
averaging over the turns helps photographs and hurts digits, which have an orientation
(benchmarks/results/denoising_ensemble_validation.json).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .dihedral import self_ensemble


@torch.no_grad()
def reconstructed(model, x: torch.Tensor, *, ensemble: bool, batch_size: int = 1000) -> torch.Tensor:
    """model.reconstruct of x (N, ...) in eval mode, batch_size rows at a time, or (ensemble=True, images
    (N, C, H, W)) its mean over the symmetries; the one loop behind tasks.denoise.denoise and the choice below."""
    model.eval()
    one = model.reconstruct
    parts = [self_ensemble(one, x[i:i + batch_size]) if ensemble else one(x[i:i + batch_size])
             for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts)


@torch.no_grad()
def compare_ensemble(model, x_val: torch.Tensor, *, seed: int = 0, max_images: int = 512) -> dict:
    """Denoise validation images corrupted by the model's own training corruption (its blind noise: one level per
    image from the training range), in one pass and with the ensemble, and compare the mean squared errors.

    {'ensemble': bool (True when the ensemble's MSE is lower), 'images', 'mse_one_pass', 'mse_ensemble',
    'psnr_one_pass', 'psnr_ensemble' (dB, peak 1, of the mean MSE; None unless the data lie in [0, 1])}."""
    x = x_val[:max_images].float()
    corruption = model.corruption
    was = corruption.training
    corruption.train()  # the training corruption (identity in eval mode)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            noisy = corruption(x)
    finally:
        corruption.train(was)
    unit = bool(x.numel() and x.min() >= 0 and x.max() <= 1)
    out = {}
    for name, ens in (("one_pass", False), ("ensemble", True)):
        y = reconstructed(model, noisy, ensemble=ens)
        y = y.clamp(0, 1) if unit else y
        mse = float(((y - x) ** 2).mean())
        out[f"mse_{name}"] = mse
        out[f"psnr_{name}"] = (10 * math.log10(1 / mse) if mse > 0 else float("inf")) if unit else None
    return {"ensemble": out["mse_ensemble"] < out["mse_one_pass"], "images": int(x.shape[0]), **out}


def choose_ensemble_for_run(run_dir, x_val: torch.Tensor) -> dict | None:
    """For a run whose run.json asks for it ({"denoise": {"choose": "validation"}}: 'aekit train dae' on images),
    decide on its validation images whether denoising averages over the symmetries, and record the decision and
    the figures in run.json ("denoise": {"choose", "ensemble", "validation"}). Returns the record, or None when the
    run asks for no choice. Without validation images the run denoises in one pass."""
    from ..checkpoint import atomic_write_json, read_json
    from .runs import load_run

    path = Path(run_dir) / "run.json"
    info = read_json(path)
    asked = info.get("denoise")
    if not (isinstance(asked, dict) and asked.get("choose") == "validation"):
        return None
    if x_val is None or x_val.shape[0] == 0 or x_val.dim() != 4:
        record = {"choose": "validation", "ensemble": False, "validation": None,
                  "reason": "no validation images: one pass"}
    else:
        model, _ = load_run(run_dir)  # the kept (best) model, as 'aekit denoise' loads it
        figures = compare_ensemble(model, x_val)
        record = {"choose": "validation", "ensemble": figures.pop("ensemble"), "validation": figures}
    atomic_write_json(path, {**info, "denoise": record})
    return record


__all__ = ["choose_ensemble_for_run", "compare_ensemble", "reconstructed"]
