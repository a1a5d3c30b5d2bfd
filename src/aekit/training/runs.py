"""Run directories: what `aekit train` writes and every other command reads.

    RUN_DIR/run.json            the variant, model config, training options and data source
    RUN_DIR/config.json         the kept model (best validation epoch) ...
    RUN_DIR/model.safetensors   ... loadable with aekit.load(RUN_DIR)
    RUN_DIR/history.json|csv    per-epoch metrics
    RUN_DIR/checkpoints/        per-epoch training states for --resume
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..data import load_data
from ..errors import CheckpointError, DataError, ShapeError

DATA_OPTIONS = ("data_dir", "val_fraction", "seed", "image_size", "standardize", "label_column", "max_samples")


def load_run(run_dir) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, run.json contents or {})."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {str(run_dir)!r} does not exist.")
    if not (run_dir / ckpt.CONFIG_NAME).is_file():
        raise CheckpointError(f"{str(run_dir)!r} holds no model (config.json missing); train one with 'aekit train'.")
    model = ckpt.load(run_dir)
    info = ckpt.read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}
    return model, info


def subset_rows(n: int, max_samples: int | None, *, seed: int = 0) -> torch.Tensor:
    """(m,) int64 row numbers: a seeded random choice of max_samples of n rows, in increasing order (all when fewer)."""
    if max_samples is None or n <= max_samples:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_samples].sort().values


def subset(x: torch.Tensor, y: torch.Tensor | None, max_samples: int | None, *, seed: int = 0):
    """(x, y) cut to subset_rows; as given when there are no more rows than max_samples."""
    if max_samples is None or x.shape[0] <= max_samples:
        return x, y
    keep = subset_rows(x.shape[0], max_samples, seed=seed)
    return x[keep], (None if y is None else y[keep])


def _run_scaler(info: dict) -> dict | None:
    """{'scale', 'offset'} per feature of a standardized run (its recorded dataset), or None when not recorded."""
    ds = info.get("dataset") or {}
    scale, offset = ds.get("scale"), ds.get("offset")
    if isinstance(scale, list) and isinstance(offset, list) and len(scale) == len(offset):
        return {"scale": scale, "offset": offset}
    return None


def run_data(info: dict, *, source: str | None = None, data_dir: str | None = None, split: str | None = None,
             model=None, max_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None, object, str]:
    """Resolve the data a command should use: (x, labels, dataset, description).

    A file given with --data is used whole; a named dataset (given or recorded in run.json) takes
    `split` (default 'test'). With no --data the run's own source and options are used; for a file
    source its held-out validation part is used unless a split is named. The run's data_dir (the
    folder of mnist / fashion-mnist) is used unless data_dir is given, also with --data mnist.
    A standardized run's other data are standardized with the run's scaler (its recorded dataset's
    per-column scale and offset), so every command feeds the model what it was trained on.
    """
    data_info = dict(info.get("data") or {})
    options = {k: data_info[k] for k in DATA_OPTIONS if data_info.get(k) is not None}
    if source is None:
        source = data_info.get("source")
        if source is None:
            raise DataError("this run records no data source; pass one with --data.")
        from_run = True
    else:
        from_run = False
        same = str(source).strip().lower() == str(data_info.get("source") or "").strip().lower()
        keep = ("image_size", "standardize", "label_column", "seed") + (("data_dir",) if same else ())
        options = {k: v for k, v in options.items() if k in keep}  # --data mnist on an mnist run: the same folder
    if data_dir is not None:
        options["data_dir"] = data_dir
    if not from_run:
        options.pop("max_samples", None)
    scaler = _run_scaler(info) if options.get("standardize") and not from_run else None
    if scaler is not None:  # other data go through the run's own scaler, not statistics of their own
        from ..data.load import with_scaler

        options.pop("standardize")
        ds = load_data(source, **options)
        if tuple(ds.shape) == (len(scaler["scale"]),):  # other widths: the model's own shape error names them
            ds = with_scaler(ds, **scaler)
    else:
        ds = load_data(source, **options)
    if ds.whole is not None and not from_run and split is None:
        x, y, what = ds.whole, ds.y_whole, f"{source} (all {ds.whole.shape[0]} rows)"
    else:
        if split is None:
            split = "test" if ds.test is not None else "val"
        x, y = ds.split(split)
        what = f"{source} [{split}]"
    if max_samples is not None and x.shape[0] > max_samples:
        x, y = subset(x, y, max_samples)
        what = f"{what}, {max_samples} random rows"
    if model is not None:
        try:
            x = model.as_input(x, name=f"data from {source!r}") if hasattr(model, "as_input") else x
        except ShapeError as exc:  # name what the run was trained on, so the mismatch is plain
            trained = info.get("dataset") or {}
            on = (f" The run was trained on {trained.get('name') or data_info.get('source')!r} "
                  f"(samples of shape {tuple(trained['shape'])})." if trained.get("shape") else "")
            raise ShapeError(f"{exc}{on}") from None
    return x, y, ds, what
