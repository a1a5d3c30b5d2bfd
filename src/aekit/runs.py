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

from . import checkpoint as ckpt
from .data import load_data
from .errors import CheckpointError, DataError

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


def run_data(info: dict, *, source: str | None = None, data_dir: str | None = None, split: str | None = None,
             model=None) -> tuple[torch.Tensor, torch.Tensor | None, object, str]:
    """Resolve the data a command should use: (x, labels, dataset, description).

    A file given with --data is used whole; a named dataset (given or recorded in run.json) takes
    `split` (default 'test'). With no --data the run's own source and options are used; for a file
    source its held-out validation part is used unless a split is named.
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
        options = {k: v for k, v in options.items() if k in ("image_size", "standardize", "label_column", "seed")}
    if data_dir is not None:
        options["data_dir"] = data_dir
    if not from_run:
        options.pop("max_samples", None)
    ds = load_data(source, **options)
    if ds.whole is not None and not from_run and split is None:
        x, y, what = ds.whole, ds.y_whole, f"{source} (all {ds.whole.shape[0]} rows)"
    else:
        if split is None:
            split = "test" if ds.test is not None else "val"
        x, y = ds.split(split)
        what = f"{source} [{split}]"
    if model is not None:
        model.check_input(x[:1], name=f"data from {source!r}")
    return x, y, ds, what
