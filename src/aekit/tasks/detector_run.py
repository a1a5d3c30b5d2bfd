"""The recommended detector for tables from the command line: what `aekit detect --train` does, callable from Python.

    summary, det = fit_and_detect(train="train.npy", data="test.npy", out="scores.csv", seed=0)
    summary, det = detect_with_detector("scores.detector", data="new.npy", out="new.csv")

fit_and_detect fits `AutoencoderOutlierDetector()` with its defaults (an ensemble of five autoencoders with
score normalisation; aekit.tasks.sklearn) on the rows of `train`, saves it (aekit.tasks.estimator_folder) and
scores `data`; detect_with_detector re-scores with a saved one. Both write what `aekit detect RUN` writes:
index,score,label rows (score = minus score_samples, higher = more anomalous; label 1 = outlier) and a summary
JSON beside the CSV, with AUROC and average precision when the scored data carry 0/1 outlier labels.

The threshold is the detector's contamination rule: offset_, the `contamination` quantile of its training
scores (scikit-learn's convention), so a share `contamination` of the training rows scores above it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import load_data
from ..errors import ConfigError, DataError
from ..training.runs import subset_rows
from .anomaly import binary_truth, detection_metrics
from .anomaly_run import _write_csv
from .estimator_folder import is_estimator_dir

SCORE_NAME = "detector"  # the summary's "score": minus AutoencoderOutlierDetector.score_samples


def default_save_dir(out) -> Path:
    """Where --train saves the detector without --save: beside the CSV, scores.csv -> scores.detector/."""
    return Path(out).with_suffix(".detector")


def table_rows(source: str, *, option: str, data_dir: str | None = None, label_column=None,
               split: str = "train") -> tuple[np.ndarray, np.ndarray | None, str]:
    """(X (n, d) float64, labels (n,) or None, description) of a table source: a file whole, in its row order
    (a named dataset: `split`). Images, non-finite values and empty data are refused, naming `option`."""
    try:
        ds = load_data(source, data_dir=data_dir, label_column=label_column, standardize=False)
    except DataError as exc:
        raise DataError(f"{option}: {exc}") from None
    if ds.kind != "table":
        raise DataError(f"{option} {source!r} holds images (samples of shape {tuple(ds.shape)}); the fitted detector "
                        "is for tables. For images train a model with 'aekit train' and score with 'aekit detect RUN'.")
    if ds.whole is not None:
        x, y, what = ds.whole, ds.y_whole, f"{source} (all {ds.whole.shape[0]} rows)"
    else:
        x, y = ds.split(split)
        what = f"{source} [{split}]"
    # a table is read unscaled, except uint8 columns (read as /255): the detector standardizes per column anyway
    x = x.numpy().astype(np.float64).reshape(x.shape[0], -1)  # (n, d)
    if not np.isfinite(x).all():
        raise DataError(f"{option} {source!r} has non-finite values (NaN or inf); remove or impute them first.")
    return x, (None if y is None else y.numpy()), what


def _check_columns(x: np.ndarray, n_features: int, *, source: str, fitted_on: str) -> None:
    if x.shape[1] != n_features:
        raise DataError(f"--data {source!r} has {x.shape[1]} columns, but the detector was fitted on {n_features} "
                        f"({fitted_on}); score data with the same columns.")


def _score(det, x: np.ndarray, y, *, data: str, what: str, out, max_samples: int | None, normal_classes,
           fitted_on: str, extra: dict) -> dict:
    """Score x with det, write out (.csv) and its .json; the summary."""
    rows = subset_rows(x.shape[0], max_samples).numpy()  # the CSV's index: row numbers of the data
    if rows.shape[0] < x.shape[0]:
        x, y = x[rows], (None if y is None else y[rows])
        what = f"{what}, {rows.shape[0]} random rows"
    if normal_classes is not None and y is None:
        raise ConfigError(f"--normal-classes needs labels, but {what} has none.")
    scores = -det.score_samples(x)  # (n,) higher = more anomalous
    threshold = -det.offset_  # label 1 iff decision_function < 0 iff score > threshold
    labels = (det.predict(x) == -1).astype(np.int64)  # (n,)
    truth = binary_truth(y, normal_classes=normal_classes)
    metrics = detection_metrics(scores, truth) if truth is not None and truth.min() != truth.max() else {}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(out, scores, labels, rows)
    n_members = len(det.estimators_)
    summary = {"data": what, "detector": extra.pop("detector"), "out": str(out), "score": SCORE_NAME,
               "score_definition": f"minus AutoencoderOutlierDetector.score_samples: the mean over {n_members} "
                                   "autoencoder(s) of each one's loss standardized by its training losses",
               "threshold": float(threshold), "method": "contamination", "level": float(det.contamination),
               "calibrated_on": "training data",
               "calibration": f"the detector's training data, {fitted_on}: the 1 - {det.contamination:g} quantile of "
                              "their scores (offset_)",
               "n_calibration": int(det.n_samples_fit_), "n_samples": int(scores.size),
               "n_flagged": int(labels.sum()), "flagged_fraction": float(labels.mean()) if labels.size else 0.0,
               **extra, **metrics}
    from ..checkpoint import atomic_write_json

    atomic_write_json(out.with_suffix(".json"), summary)
    return summary


def _check_out(out) -> None:
    if Path(out).suffix.lower() != ".csv":
        raise ConfigError(f"--out must end in .csv; got {str(out)!r}.")


def fit_and_detect(*, train: str, data: str, out, save=None, seed: int = 0, contamination: float | None = None,
                   epochs: int | None = None, data_dir: str | None = None, label_column=None,
                   max_samples: int | None = None, normal_classes=None):
    """Fit AutoencoderOutlierDetector() (its defaults; random_state=seed, and contamination / epochs when given) on
    the rows of train, save it to `save` (default: beside out), score data; (summary, detector)."""
    from .sklearn import AutoencoderOutlierDetector

    _check_out(out)
    save = default_save_dir(out) if save is None else Path(save)
    if save.exists() and not is_estimator_dir(save) and (not save.is_dir() or any(save.iterdir())):
        raise ConfigError(f"--save {str(save)!r} exists and does not hold a saved detector; choose a new folder.")
    params = {"random_state": int(seed)}
    if contamination is not None:
        params["contamination"] = contamination
    if epochs is not None:
        params["epochs"] = epochs
    det = AutoencoderOutlierDetector(**params)
    det._check_params()  # a bad --contamination fails before any reading or training
    x_train, _, fitted_on = table_rows(train, option="--train", data_dir=data_dir, label_column=label_column)
    x, y, what = table_rows(data, option="--data", data_dir=data_dir, label_column=label_column, split="test")
    _check_columns(x, x_train.shape[1], source=data, fitted_on=f"--train {fitted_on}")
    det.fit(x_train)
    det.save(save)
    summary = _score(det, x, y, data=data, what=what, out=out, max_samples=max_samples, normal_classes=normal_classes,
                     fitted_on=f"--train {fitted_on}",
                     extra={"detector": str(save), "trained_on": fitted_on, "params": det.get_params()})
    return summary, det


def detect_with_detector(directory, *, data: str, out, data_dir: str | None = None, label_column=None,
                         max_samples: int | None = None, normal_classes=None):
    """Score data with the detector saved in directory; (summary, detector)."""
    from .sklearn import AutoencoderOutlierDetector

    _check_out(out)
    det = AutoencoderOutlierDetector.load(directory)
    x, y, what = table_rows(data, option="--data", data_dir=data_dir, label_column=label_column, split="test")
    _check_columns(x, det.n_features_in_, source=data, fitted_on=f"the detector in {str(directory)!r}")
    summary = _score(det, x, y, data=data, what=what, out=out, max_samples=max_samples, normal_classes=normal_classes,
                     fitted_on=f"{det.n_samples_fit_} rows", extra={"detector": str(directory)})
    return summary, det


__all__ = ["default_save_dir", "detect_with_detector", "fit_and_detect", "table_rows"]
