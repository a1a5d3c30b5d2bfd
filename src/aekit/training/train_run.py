"""Train a run directory from scratch or resume it: what `aekit train` does, callable from Python.

    train_run("runs/vae", variant="vae", data={"source": "digits"}, model={"latent_dim": 2},
              train={"epochs": 5})
    train_run("runs/vae", resume=True, epochs=10)   # continue the recorded run, 10 epochs in all

The run folder's layout is aekit.training.runs's; under torchrun the ranks train data-parallel
(aekit.training.distributed) and rank 0 writes the folder and returns the summary.
"""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import read_json
from ..data import load_data
from ..errors import CheckpointError, ConfigError
from .trainer import TrainConfig


def has_run(out_dir) -> bool:
    """Whether out_dir already holds a run (its run.json)."""
    return (Path(out_dir) / "run.json").is_file()


def _recorded(out: Path, *, data_dir: str | None, epochs: int | None, checkpoint_every) -> tuple:
    """(dataset, model, TrainConfig, run_info) of the run recorded in out/run.json."""
    from ..checkpoint import build_from_config

    info = read_json(out / "run.json")
    for key in ("data", "model", "train"):
        if not isinstance(info.get(key), dict):
            raise CheckpointError(f"{str(out / 'run.json')!r} has no {key!r} object (damaged or not written by "
                                  "'aekit train'); start the run again with --overwrite.")
    data = dict(info["data"])
    if data_dir:
        data["data_dir"] = data_dir
    if not isinstance(data.get("source"), str):
        raise CheckpointError(f"{str(out / 'run.json')!r} records no data source; start again with --overwrite.")
    source = data.pop("source")
    ds = load_data(source, **{k: v for k, v in data.items() if v is not None})
    model = build_from_config(dict(info["model"]), source=out / "run.json")  # its size checked on the meta device
    train_cfg = dict(info["train"])
    if epochs is not None:
        train_cfg["epochs"] = epochs
    if checkpoint_every is not None:
        train_cfg["checkpoint_every"] = checkpoint_every
    try:
        cfg = TrainConfig.from_dict(train_cfg)
    except TypeError as exc:
        raise CheckpointError(f"{str(out / 'run.json')!r} holds invalid training options ({exc}).") from None
    return ds, model, cfg, {k: v for k, v in info.items() if k not in ("train", "model")}


def _new(out: Path, *, variant: str, data: dict, model: dict, train: dict, overwrite: bool, command,
         defaults: bool = True, announce=None) -> tuple:
    from ..build import build
    from ..variants import VARIANTS

    if has_run(out) and not overwrite:
        raise ConfigError(f"{str(out)!r} already holds a run; pass --resume to continue it or --overwrite to replace it.")
    if data.get("source") is None:
        raise ConfigError("--data is required: digits, mnist, fashion-mnist or a file/folder path.")
    given_standardize = data.get("standardize")
    ds = load_data(data["source"], **{k: v for k, v in data.items() if k not in ("source", "standardize") and v is not None},
                   standardize=bool(given_standardize))
    model = dict(model)
    chosen = None
    if defaults:
        from ..data.load import standardized
        from .data_defaults import choose_defaults

        VARIANTS.get(variant)  # an unknown name: the allowed ones and a did-you-mean, before any rule
        chosen = choose_defaults(ds, variant=variant, model=model, standardize=given_standardize, train=train)
        if chosen.standardize and not given_standardize:
            ds = standardized(ds)
        model = {**chosen.model, **model}  # the user's keywords win
        train = {**chosen.train, **train}
        if announce is not None and chosen.reasons:
            announce(chosen.lines())
    data = {**data, "standardize": bool(chosen.standardize if chosen is not None else given_standardize)}
    recipe = VARIANTS[variant]() if variant in VARIANTS else {}
    if model.get("num_classes") or recipe.get("num_classes"):
        from ..conditioning import num_classes_of

        model["num_classes"] = model.get("num_classes") or num_classes_of(ds, variant=variant)
    net = build(variant, input_shape=ds.shape, seed=train.get("seed", TrainConfig.seed), **model)
    cfg = TrainConfig.from_dict(train)
    run_info = {"variant": variant, "data": data, "dataset": ds.to_dict(), "command": list(command or [])}
    if chosen is not None:
        run_info["defaults"] = chosen.reasons  # [{"key", "value", "reason"}]: what the data chose (data_defaults.py)
        run_info.update(chosen.run)  # e.g. {"denoise": {"ensemble": true}}: read by the commands that use the run
    return ds, net, cfg, run_info


def train_run(out_dir, *, variant: str | None = None, data: dict | None = None, model: dict | None = None,
              train: dict | None = None, resume: bool = False, overwrite: bool = False, data_dir: str | None = None,
              epochs: int | None = None, checkpoint_every=None, command=None, callbacks=(), defaults: bool = True,
              announce=None) -> dict | None:
    """Train (or, resume=True, continue) the run in out_dir; the summary dict, None on ranks other than 0.

    variant, data (load_data's keywords plus 'source'), model (build's keywords) and train
    (TrainConfig's fields) describe a new run; a resumed run reads them from its run.json, where
    data_dir, epochs and checkpoint_every may be changed. callbacks get (record, trainer) per epoch.
    defaults=True applies the data-aware defaults (aekit.training.data_defaults) to what model and
    data['standardize'] (None: not given) leave open; they are recorded in run.json's 'defaults' and
    announce, when given, is called with their 'key=value: reason' lines before training.
    """
    out = Path(out_dir)
    if resume:
        ds, net, cfg, run_info = _recorded(out, data_dir=data_dir, epochs=epochs, checkpoint_every=checkpoint_every)
    else:
        ds, net, cfg, run_info = _new(out, variant=variant, data=dict(data or {}), model=dict(model or {}),
                                      train=dict(train or {}), overwrite=overwrite, command=command,
                                      defaults=defaults, announce=announce)
    from .distributed import distributed_session, make_trainer

    with distributed_session(cfg.device) as dist_ctx:  # torchrun: data-parallel over the ranks; else one process
        trainer = make_trainer(net, cfg, dist_ctx=dist_ctx, out_dir=out, run_info=run_info, callbacks=list(callbacks))
        labels = {}
        if getattr(net, "num_classes", 0):  # a conditional model trains on (x, y)
            from ..conditioning import num_classes_of

            num_classes_of(ds, variant=net.variant)  # names the data source when it has no labels
            labels = {"y_train": ds.y_train, "y_val": ds.y_val if ds.val.shape[0] else None}
        result = trainer.fit(ds.train, ds.val, resume=resume, **labels)
    if not dist_ctx.is_main:
        return None  # rank 0 reports
    summary = {"run_dir": str(out), "epochs": trainer.epoch, "seconds": round(result.seconds, 2),
               "best_epoch": result.best_epoch, "best_val_loss": result.best_val, "stopped_early": result.stopped_early}
    if isinstance(run_info.get("denoise"), dict):  # a denoiser whose self-ensemble is chosen on its validation split
        from .denoise_ensemble import choose_ensemble_for_run

        record = choose_ensemble_for_run(out, ds.val)
        if record is not None:
            summary["denoise_ensemble"] = record["ensemble"]
    return summary
