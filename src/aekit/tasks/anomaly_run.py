"""Anomaly detection on a trained run directory, end to end: what `aekit detect` does, callable from Python.

    summary, result = detect_run("runs/ae", data="scores.npy", out="scores.csv", quantile=0.99)

Scores every input with the run's model (aekit.tasks.anomaly.detect: reconstruction NLL, or -ELBO
for a VAE), calibrates a threshold on held-out normal data (the run's validation split, or
`calibration`) or on the scored data's own contamination share, and writes index,score,label rows
to out, a summary to out's .json and, with maps, the per-pixel squared errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import atomic_write_bytes, atomic_write_json
from ..data.load import NAMED_SOURCES
from ..errors import ConfigError, DataError
from ..image_grid import image_grid
from ..npy_file import save_npy
from ..training.runs import load_run, run_data, subset_rows
from .anomaly import binary_truth, check_level, detect, error_maps, map_grid


def binarize_like_training(x: torch.Tensor, info: dict) -> torch.Tensor:
    """A run trained on thresholded inputs is scored on thresholded inputs; dynamic binarization is not
    applied (scores of grey levels are deterministic)."""
    if (info.get("train") or {}).get("binarize") == "threshold":
        return (x > 0.5).float()
    return x


def calibration_data(info: dict, model, *, source: str | None, data_dir: str | None) -> tuple[torch.Tensor, str]:
    """Held-out data for the threshold: --calibration (a file whole, a named dataset's val split), else the run's val split."""
    if source is None:
        x, _, _, what = run_data(info, source=None, data_dir=data_dir, split="val", model=model)
    else:
        named = source.strip().lower() in NAMED_SOURCES
        x, _, _, what = run_data(info, source=source, data_dir=data_dir, split="val" if named else None, model=model)
    if x.shape[0] == 0:
        raise DataError(f"the calibration data {what} has no samples; pass held-out normal data with --calibration SRC.")
    return x, what


def _write_csv(path: Path, scores: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> None:
    """index (the row of the data), score, label per scored row."""
    lines = ["index,score,label"] + [f"{int(i)},{float(s)!r},{int(k)}" for i, s, k in zip(rows, scores, labels)]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _write_maps(folder: Path, model, x: torch.Tensor, scores: np.ndarray, png: int | None) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    maps = error_maps(model, x)  # (N, *input_shape) squared errors; each sums to the sample's SSE
    written = [str(folder / "error_maps.npy")]
    save_npy(folder / "error_maps.npy", maps.numpy().astype(np.float32))
    if png is not None:
        top = np.argsort(-scores, kind="stable")[:png]  # the highest scores first
        idx = torch.from_numpy(top.copy())
        x_top = x[idx]
        with torch.no_grad():  # (n, *shape), in batches of 1000
            x_hat = torch.cat([model.reconstruct(x_top[k:k + 1000]) for k in range(0, x_top.shape[0], 1000)])
        rows = map_grid(x_top.numpy(), x_hat.numpy(), maps[idx].numpy())  # (3n, C, H, W)
        from PIL import Image

        Image.fromarray(image_grid(rows, cols=3)).save(folder / "top.png")
        atomic_write_json(folder / "top.json", {"columns": ["input", "reconstruction", "error map"],
                                                "index": top.tolist(), "score": scores[top].tolist()})
        written += [str(folder / "top.png"), str(folder / "top.json")]
    return written




def detect_run(run_dir, *, out, data: str | None = None, data_dir: str | None = None, split: str | None = None,
               max_samples: int | None = None, quantile: float | None = None, contamination: float | None = None,
               calibration: str | None = None, score: str = "auto", samples: int | None = None, seed: int = 0,
               normal_classes=None, maps=None, png: int | None = None):
    """(summary dict, aekit.tasks.anomaly result) of scoring data with a run; writes out (.csv) and its .json."""
    if Path(out).suffix.lower() != ".csv":
        raise ConfigError(f"--out must end in .csv; got {str(out)!r}.")
    out = Path(out)
    check_level(quantile=quantile, contamination=contamination)  # fail before any scoring
    model, info = load_run(run_dir)
    if png is not None and maps is None:
        raise ConfigError("--png N draws the error maps; give the folder with --maps DIR as well.")
    if png is not None and len(model.input_shape) != 3:
        raise ConfigError(f"--png needs an image model; this one has input_shape={model.input_shape}. "
                          "--maps alone writes the per-feature errors as .npy.")
    recorded = str((info.get("data") or {}).get("source") or "")
    if data is None and split is None and recorded and recorded.strip().lower() not in NAMED_SOURCES:
        split = "all"  # no --data: every row of the run's own file, in file order
    x, y, _, what = run_data(info, source=data, data_dir=data_dir, split=split, model=model)
    rows = subset_rows(x.shape[0], max_samples)  # the CSV's index: row numbers of the data, also in a subset
    if rows.shape[0] < x.shape[0]:
        x, y = x[rows], (None if y is None else y[rows])
        what = f"{what}, {rows.shape[0]} random rows"
    if normal_classes is not None and y is None:
        raise ConfigError(f"--normal-classes needs labels, but {what} has none.")
    if contamination is not None and calibration is None:
        x_cal, cal_what = None, f"the scored data, {what}"  # scikit-learn's convention: a share of the data scored
    else:
        x_cal, cal_what = calibration_data(info, model, source=calibration, data_dir=data_dir)
        x_cal = binarize_like_training(x_cal, info)
    x = binarize_like_training(x, info)
    truth = binary_truth(y, normal_classes=normal_classes)
    if truth is not None and truth.min() == truth.max():
        truth = None  # one class only: no AUROC to report
    extra = {} if samples is None else {"samples": samples}
    result = detect(model, x, x_cal, score=score, quantile=quantile, contamination=contamination, seed=seed,
                    truth=truth, **extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(out, result.scores, result.labels, rows.numpy())
    summary = {"data": what, "calibration": cal_what, "out": str(out), **result.summary()}
    if maps is not None:
        summary["maps"] = _write_maps(Path(maps), model, x, result.scores, png)
    atomic_write_json(out.with_suffix(".json"), summary)
    return summary, result
