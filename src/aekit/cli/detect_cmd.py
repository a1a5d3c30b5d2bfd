"""`aekit detect RUN_DIR --data SRC [--quantile Q | --contamination X] --out scores.csv`: anomaly detection.

Scores every input of SRC with the run's model (reconstruction NLL, or -ELBO for a VAE), sets a
threshold and writes one row per input: index, score (higher = more anomalous), label (1 = outlier).
The threshold and how it was set go to stdout (one JSON object) and to SCORES.json beside the
CSV. When SRC has 0/1 labels (the ODDS .mat form: y = 1 for an outlier), or class labels and
--normal-classes, AUROC and average precision are added. --maps DIR writes the per-pixel
(per-feature, for tables) squared errors as DIR/error_maps.npy and, with --png N, a grid of the
N highest-scoring images: input, reconstruction, error map.

With --train TRAIN instead of RUN_DIR (tables): fits the recommended detector for tables,
AutoencoderOutlierDetector() with its defaults (an ensemble of five autoencoders with score
normalisation, seeded by --seed; --contamination and --epochs pass through) on TRAIN, scores SRC,
writes the same CSV and summary, and saves the detector (--save DIR, default beside --out:
scores.csv -> scores.detector/). `aekit detect DIR --data NEW` re-scores with a saved detector.
Its threshold is the detector's own contamination rule: the 1 - contamination quantile of its
training scores (offset_, default contamination 0.1).

The threshold of a run: --quantile Q (default 0.99) of the scores of held-out normal data (the run's
validation split, or --calibration SRC); or, with --contamination X, the share of outliers
expected in the data being scored, as in scikit-learn: the 1 - X quantile of SRC's own scores
(of --calibration's, when given). The summary says which ("calibrated_on", "calibration").
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from ..errors import AekitError, CheckpointError, ConfigError
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


DESCRIPTION = textwrap.dedent("""\
    Score inputs with a trained run (reconstruction NLL, or -ELBO for VAEs), calibrate a threshold on
    held-out data and write index,score,label rows (label 1 = outlier; score: higher = more anomalous).

    For tables, the recommended detector (AutoencoderOutlierDetector() with its defaults: five
    autoencoders with score normalisation), fitted on TRAIN, scoring TEST, saved beside --out:
      aekit detect --train train.csv --data test.csv --out scores.csv    # saves scores.detector/
      aekit detect scores.detector --data new.csv --out new.csv         # re-scores with it
    Its threshold is its contamination rule: the 1 - contamination quantile of its training scores
    (default contamination 0.1). --contamination, --epochs and --seed pass through when fitting.

    With a run: aekit train ae --data normal.npy --out run && aekit detect run --data new.npy --out s.csv""")


def add_detect_parser(sub) -> None:
    p = sub.add_parser("detect", help="anomaly scores, a calibrated threshold and outlier labels",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", default=None,
                   help="a run directory written by 'aekit train' (trained on normal data), or a detector folder saved "
                        "by 'aekit detect --train'")
    add_data_options(p, required=False, max_samples=True)
    p.add_argument("--train", default=None, metavar="TRAIN",
                   help="instead of RUN_DIR: a table (.npy/.npz/.csv/.mat/...) to fit the recommended detector on "
                        "(AutoencoderOutlierDetector() with its defaults; its labels, if any, are ignored)")
    p.add_argument("--save", default=None, metavar="DIR",
                   help="with --train: folder for the fitted detector (default: beside --out, scores.csv -> "
                        "scores.detector/)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="with --train: training epochs of each of the detector's models (default: the estimator's, 50)")
    p.add_argument("--label-column", default=None,
                   help="with --train or a detector folder: csv column holding labels (name or index), not a feature")
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


DETECTOR_ONLY = ("save", "epochs", "label_column")
RUN_ONLY = {"split": None, "quantile": None, "calibration": None, "score": "auto", "samples": DEFAULT_SAMPLES,
            "maps": None, "png": None}


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def run_detect(args) -> int:
    from ..checkpoint import CONFIG_NAME
    from ..tasks.estimator_folder import is_estimator_dir

    if args.train is not None and args.run_dir is not None:
        raise ConfigError(f"give a run or detector folder, or --train TRAIN, not both; got {args.run_dir!r} and "
                          f"--train {args.train!r}.")
    if args.train is None and args.run_dir is None:
        raise ConfigError("give a run folder (aekit detect RUN --data SRC), a detector folder, or --train TRAIN "
                          "--data SRC (the recommended detector for tables).")
    detector = args.train is not None or is_estimator_dir(args.run_dir)
    if detector:
        return _run_detector(args)
    if Path(args.run_dir).is_dir() and not (Path(args.run_dir) / CONFIG_NAME).is_file():
        raise CheckpointError(f"{args.run_dir!r} is neither a run folder ('aekit train': config.json, run.json) nor a "
                              "detector folder ('aekit detect --train': config.json of kind aekit-sklearn-estimator).")
    for dest in DETECTOR_ONLY:
        if getattr(args, dest) is not None:
            raise ConfigError(f"{_option(dest)} applies to the fitted detector (--train or a detector folder), not to "
                              f"the run {args.run_dir!r}.")
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
    if _trained_on_table(args.run_dir):
        print("aekit: for tables the recommended detector is 'aekit detect --train TRAIN --data SRC --out scores.csv' "
              "(five autoencoders with score normalisation; docs/anomaly.md).", file=sys.stderr)
    return 0


def _trained_on_table(run_dir) -> bool:
    """The run's model takes vectors (a table), not images: its config's input_shape has one axis."""
    from ..checkpoint import CONFIG_NAME, read_json

    try:
        shape = read_json(Path(run_dir) / CONFIG_NAME).get("config", {}).get("input_shape")
    except AekitError:
        return False
    return isinstance(shape, list) and len(shape) == 1


def _run_detector(args) -> int:
    """--train TRAIN (fit, save, score) or a detector folder (score)."""
    from ..tasks.detector_run import detect_with_detector, fit_and_detect

    for dest, default in RUN_ONLY.items():
        if getattr(args, dest) != default:
            raise ConfigError(f"{_option(dest)} applies to a run folder; the fitted detector's threshold is its "
                              "contamination rule (--contamination, with --train).")
    if args.data is None:
        raise ConfigError("--data SRC is required with --train or a detector folder: the data to score.")
    common = dict(data=args.data, out=args.out, data_dir=args.data_dir, label_column=args.label_column,
                  max_samples=args.max_samples, normal_classes=args.normal_classes)
    if args.train is not None:
        summary, det = fit_and_detect(train=args.train, save=args.save, seed=args.seed,
                                      contamination=args.contamination, epochs=args.epochs, **common)
        print(f"aekit: saved the fitted detector to {summary['detector']} (re-score with 'aekit detect "
              f"{summary['detector']} --data NEW --out new.csv')", file=sys.stderr)
    else:
        for dest in ("save", "epochs", "contamination"):
            if getattr(args, dest) is not None:
                raise ConfigError(f"{_option(dest)} applies when fitting (--train); the detector in {args.run_dir!r} "
                                  "keeps the settings it was fitted with.")
        summary, det = detect_with_detector(args.run_dir, **common)
    print(json.dumps(summary))
    extra = f"; AUROC {summary['auroc']:.4f}, AP {summary['average_precision']:.4f}" if "auroc" in summary else ""
    print(f"threshold {summary['threshold']:.6g} (contamination {det.contamination:g} of the {det.n_samples_fit_} "
          f"training scores); {summary['n_flagged']} of {summary['n_samples']} flagged{extra}; wrote {summary['out']}",
          file=sys.stderr)
    return 0


__all__ = ["add_detect_parser", "run_detect"]
