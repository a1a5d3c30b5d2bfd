"""`aekit detect RUN_DIR --data SRC [--quantile Q | --contamination X] --out scores.csv`: anomaly detection.

Scores every input of SRC with the run's model (reconstruction NLL, or -ELBO for a VAE), sets a
threshold and writes one row per input: index, score (higher = more anomalous), label (1 = outlier).
The threshold and how it was set go to stdout (one JSON object) and to SCORES.json beside the
CSV. When SRC has 0/1 labels (the ODDS .mat form: y = 1 for an outlier), or class labels and
--normal-classes, AUROC and average precision are added. --maps DIR writes the per-pixel
(per-feature, for tables) squared errors as DIR/error_maps.npy and, with --png N, a grid of the
N highest-scoring images: input, reconstruction, error map.

The threshold: --quantile Q (default 0.99) of the scores of held-out normal data (the run's
validation split, or --calibration SRC); or, with --contamination X, the share of outliers
expected in the data being scored, as in scikit-learn: the 1 - X quantile of SRC's own scores
(of --calibration's, when given). The summary says which ("calibrated_on", "calibration").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..tasks.anomaly import DEFAULT_SAMPLES, SCORES, binary_truth, check_level, detect, error_maps, map_grid
from ..checkpoint import atomic_write_bytes, atomic_write_json
from ..data.load import NAMED_SOURCES
from ..errors import ConfigError, DataError
from ..training.runs import load_run, run_data, subset_rows
from .options import save_npy
from ..evaluation import batched
from ..image_grid import image_grid
from .parser import positive_int
from .options import add_data_options


def class_list(text: str) -> list[int]:
    """'3' or '3,5' -> [3, 5] (class labels may be 0)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integer class labels like 3 or 3,5; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one class label; got {text!r}")
    return values


def add_detect_parser(sub) -> None:
    p = sub.add_parser("detect", help="anomaly scores, a calibrated threshold and outlier labels",
                       description="Score inputs with a trained run (reconstruction NLL, or -ELBO for VAEs), calibrate a "
                                   "threshold on held-out data and write index,score,label rows (label 1 = outlier).")
    p.add_argument("run_dir", help="a run directory written by 'aekit train' (trained on normal data)")
    add_data_options(p, required=False, max_samples=True)
    p.add_argument("--split", default=None,
                   help="split to score: train, val, test, all (default: a named dataset's test split, every row of a file)")
    p.add_argument("--out", required=True, help="output .csv with columns index, score, label")
    level = p.add_mutually_exclusive_group()
    level.add_argument("--quantile", type=float, default=None,
                       help="threshold = this quantile of the calibration scores (default: 0.99)")
    level.add_argument("--contamination", type=float, default=None,
                       help="expected share of outliers in the data being scored, in (0, 0.5]; threshold = the "
                            "1 - X quantile of their scores (of the --calibration data's, when given)")
    p.add_argument("--calibration", default=None,
                   help="held-out data for the threshold (a file is used whole, a named dataset's val split); "
                        "default: the run's validation split for --quantile, the scored data for --contamination")
    p.add_argument("--score", choices=SCORES, default="auto",
                   help="auto (-ELBO for VAEs, else nll), nll (reconstruction NLL), sse (squared error), elbo")
    p.add_argument("--samples", type=positive_int, default=DEFAULT_SAMPLES,
                   help=f"posterior draws per input for -ELBO (default: {DEFAULT_SAMPLES})")
    p.add_argument("--seed", type=int, default=0, help="seed of the posterior draws (default: 0)")
    p.add_argument("--normal-classes", type=class_list, default=None,
                   help="class labels that are normal, e.g. 3 or 3,5: the others count as outliers for AUROC")
    p.add_argument("--maps", default=None, help="folder for error_maps.npy: per-pixel (per-feature) squared errors")
    p.add_argument("--png", type=positive_int, default=None,
                   help="with --maps and an image model: also top.png, input / reconstruction / error map of the N highest scores")
    p.set_defaults(func=run_detect)


def _binarize_like_training(x: torch.Tensor, info: dict) -> torch.Tensor:
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
        x_hat = batched(model.reconstruct, x_top)
        rows = map_grid(x_top.numpy(), x_hat.numpy(), maps[idx].numpy())  # (3n, C, H, W)
        from PIL import Image

        Image.fromarray(image_grid(rows, cols=3)).save(folder / "top.png")
        atomic_write_json(folder / "top.json", {"columns": ["input", "reconstruction", "error map"],
                                                "index": top.tolist(), "score": scores[top].tolist()})
        written += [str(folder / "top.png"), str(folder / "top.json")]
    return written


def run_detect(args) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out must end in .csv; got {args.out!r}.")
    check_level(quantile=args.quantile, contamination=args.contamination)  # fail before any scoring
    model, info = load_run(args.run_dir)
    if args.png is not None and args.maps is None:
        raise ConfigError("--png N draws the error maps; give the folder with --maps DIR as well.")
    if args.png is not None and len(model.input_shape) != 3:
        raise ConfigError(f"--png needs an image model; this one has input_shape={model.input_shape}. "
                          "--maps alone writes the per-feature errors as .npy.")
    split = args.split
    recorded = str((info.get("data") or {}).get("source") or "")
    if args.data is None and split is None and recorded and recorded.strip().lower() not in NAMED_SOURCES:
        split = "all"  # no --data: every row of the run's own file, in file order
    x, y, _, what = run_data(info, source=args.data, data_dir=args.data_dir, split=split, model=model)
    rows = subset_rows(x.shape[0], args.max_samples)  # the CSV's index: row numbers of the data, also in a subset
    if rows.shape[0] < x.shape[0]:
        x, y = x[rows], (None if y is None else y[rows])
        what = f"{what}, {rows.shape[0]} random rows"
    if args.normal_classes is not None and y is None:
        raise ConfigError(f"--normal-classes needs labels, but {what} has none.")
    if args.contamination is not None and args.calibration is None:
        x_cal, cal_what = None, f"the scored data, {what}"  # scikit-learn's convention: a share of the data scored
    else:
        x_cal, cal_what = calibration_data(info, model, source=args.calibration, data_dir=args.data_dir)
        x_cal = _binarize_like_training(x_cal, info)
    x = _binarize_like_training(x, info)
    truth = binary_truth(y, normal_classes=args.normal_classes)
    if truth is not None and truth.min() == truth.max():
        truth = None  # one class only: no AUROC to report
    result = detect(model, x, x_cal, score=args.score, quantile=args.quantile, contamination=args.contamination,
                    samples=args.samples, seed=args.seed, truth=truth)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(out, result.scores, result.labels, rows.numpy())
    summary = {"data": what, "calibration": cal_what, "out": str(out), **result.summary()}
    if args.maps is not None:
        summary["maps"] = _write_maps(Path(args.maps), model, x, result.scores, args.png)
    atomic_write_json(out.with_suffix(".json"), summary)
    print(json.dumps(summary))
    rule = f"quantile {result.level:g}" if result.method == "quantile" else f"contamination {result.level:g}"
    extra = f"; AUROC {result.metrics['auroc']:.4f}, AP {result.metrics['average_precision']:.4f}" if result.metrics else ""
    print(f"threshold {result.threshold:.6g} ({rule} of {result.n_calibration} {result.score} scores of {cal_what}); "
          f"{summary['n_flagged']} of {summary['n_samples']} flagged{extra}; wrote {out}", file=sys.stderr)
    return 0


__all__ = ["add_detect_parser", "run_detect"]
