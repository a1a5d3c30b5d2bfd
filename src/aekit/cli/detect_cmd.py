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

from ..tasks.anomaly import DEFAULT_SAMPLES, SCORES
from ..tasks.anomaly_run import detect_run
from .options import add_data_options
from .parser import positive_int


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
    p.add_argument("--seed", type=int, default=0, help="seed of the posterior draws (default: %(default)s)")
    p.add_argument("--normal-classes", type=class_list, default=None,
                   help="class labels that are normal, e.g. 3 or 3,5: the others count as outliers for AUROC")
    p.add_argument("--maps", default=None, help="folder for error_maps.npy: per-pixel (per-feature) squared errors")
    p.add_argument("--png", type=positive_int, default=None,
                   help="with --maps and an image model: also top.png, input / reconstruction / error map of the N highest scores")
    p.set_defaults(func=run_detect)


def run_detect(args) -> int:
    summary, result = detect_run(args.run_dir, out=args.out, data=args.data, data_dir=args.data_dir, split=args.split,
                                 max_samples=args.max_samples, quantile=args.quantile,
                                 contamination=args.contamination, calibration=args.calibration, score=args.score,
                                 samples=args.samples, seed=args.seed, normal_classes=args.normal_classes,
                                 maps=args.maps, png=args.png)
    print(json.dumps(summary))
    rule = f"quantile {result.level:g}" if result.method == "quantile" else f"contamination {result.level:g}"
    extra = f"; AUROC {result.metrics['auroc']:.4f}, AP {result.metrics['average_precision']:.4f}" if result.metrics else ""
    print(f"threshold {result.threshold:.6g} ({rule} of {result.n_calibration} {result.score} scores of "
          f"{summary['calibration']}); {summary['n_flagged']} of {summary['n_samples']} flagged{extra}; "
          f"wrote {summary['out']}", file=sys.stderr)
    return 0


__all__ = ["add_detect_parser", "run_detect"]
