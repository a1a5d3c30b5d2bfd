"""`aekit train VARIANT --data SRC --out RUN_DIR [...]`: build a model, train it, keep the run."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from dataclasses import asdict
from pathlib import Path

from ..build import build
from ..checkpoint import read_json
from ..data import load_data
from ..errors import CheckpointError, ConfigError, check_choice
from ..training.trainer import BINARIZE, OPTIMIZERS, SCHEDULES, TrainConfig
from ..registry import BOTTLENECKS, REGULARIZERS
from ..variants import VARIANTS
from .parser import int_list, parse_sparsity, positive_float, positive_int


def add_data_options(p: argparse.ArgumentParser, *, required: bool, max_samples: bool = False) -> None:
    p.add_argument("--data", required=required, default=None if not required else argparse.SUPPRESS,
                   help="data source: digits, mnist, fashion-mnist, dsprites, dsprites32, or a .npy/.npz/.csv/.mat/IDX "
                        "file or image folder (default: the run's own data)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the IDX .gz files of mnist / fashion-mnist (default: the run's folder, else "
                        "$AEKIT_DATA_DIR, else download)")
    if max_samples:
        p.add_argument("--max-samples", type=positive_int, default=None, metavar="N",
                       help="use a seeded random subset of N of the rows (in their order), for a quicker look")


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a variant and write a run directory",
                       description="Train a named variant on a data source; RUN_DIR gets the config, weights and history.")
    p.add_argument("variant", help=f"one of: {', '.join(VARIANTS)}, stacked")
    add_data_options(p, required=False)
    p.add_argument("--out", default=None, help="run directory to write (required)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--config", default=None, help="TOML or YAML file of options (keys as below; the command line wins)")
    g = p.add_argument_group("model")
    g.add_argument("--latent-dim", type=positive_int, default=None, help="code size (default: the variant's)")
    g.add_argument("--backbone", choices=["mlp", "conv", "unet"], default=None, help="encoder/decoder family (default: the variant's)")
    g.add_argument("--hidden", type=int_list, default=None, help="mlp hidden widths, e.g. 512,256 (default: the variant's)")
    g.add_argument("--channels", type=int_list, default=None, help="conv/unet channels per level, e.g. 32,64")
    g.add_argument("--conv-hidden", type=int_list, default=None,
                   help="conv: fully connected widths between the conv features and the code, e.g. 256,256 (default: none)")
    g.add_argument("--activation", default=None, help="hidden activation: relu, tanh, elu, gelu, ... (default: the variant's)")
    g.add_argument("--code-activation", default=None, help="deterministic code activation: none, sigmoid, relu, tanh")
    g.add_argument("--bottleneck", default=None, metavar="SPEC",
                   help=f"bottleneck NAME[:key=value,...], e.g. vq:num_codes=256; one of {', '.join(BOTTLENECKS)} "
                        "(default: the variant's; 'aekit list --ingredients' shows the parameters)")
    g.add_argument("--reg", action="append", default=None, metavar="SPEC",
                   help=f"add a regularizer NAME[:key=value,...] (repeatable), e.g. mmd:weight=10; one of "
                        f"{', '.join(REGULARIZERS)}; a regularizer of the variant gets its parameters merged")
    g.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default=None, help="decoder likelihood (default: the variant's)")
    g.add_argument("--learn-sigma", action="store_true", default=None, help="learn the Gaussian likelihood's sigma")
    g.add_argument("--beta", type=float, default=None, help="KL weight of VAE variants (default: the variant's)")
    g.add_argument("--capacity", type=float, default=None, help="KL capacity C_max in nats (annealed VAE: gamma * |KL - C|)")
    g.add_argument("--capacity-steps", type=int, default=None, help="steps over which C rises linearly from 0 to C_max")
    g.add_argument("--gamma", type=float, default=None, help="weight gamma of |KL - C| (the kl_prior weight; same as --beta)")
    g.add_argument("--noise", default=None,
                   help="input corruption: none, gaussian:STD, gaussian_clipped:STD, masking:P, salt_and_pepper:P")
    g.add_argument("--sparsity", default=None, help="sparsity penalty: kl:RHO[:WEIGHT] or l1:WEIGHT")
    g.add_argument("--contractive", type=float, default=None, help="contractive penalty weight")
    g.add_argument("--num-classes", type=positive_int, default=None, metavar="K",
                   help="condition on the labels (a conditional VAE; 'cvae' sets it from the data's labels)")
    g.add_argument("--quantization-noise", type=positive_int, default=None, metavar="BITS",
                   help="train the code with uniform noise of a BITS-bit quantizer's step (for 'aekit compress')")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=None, help="passes over the training data (default: 10)")
    g.add_argument("--batch-size", type=positive_int, default=None, help="samples per step (default: 128)")
    g.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (default: 4e-3, after a warm-up over 40%% of the steps, at most 200, cosine decay)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="optimizer (default: adam, fused)")
    g.add_argument("--weight-decay", type=float, default=None, help="weight decay (default: 0)")
    g.add_argument("--schedule", choices=SCHEDULES, default=None, help="learning-rate schedule (default: cosine)")
    g.add_argument("--warmup-fraction", type=float, default=None,
                   help="linear learning-rate warm-up over this share of the run's steps, in [0, 1), at most 200 "
                        "steps (default: 0.4)")
    g.add_argument("--warmup-steps", type=int, default=None,
                   help="an absolute number of warm-up steps instead of --warmup-fraction")
    g.add_argument("--grad-clip", type=positive_float, default=None, help="clip the gradient norm (default: off)")
    g.add_argument("--early-stopping", type=positive_int, default=None, help="patience in epochs on the validation loss")
    g.add_argument("--binarize", choices=BINARIZE, default=None, help="binarize inputs: none, dynamic, threshold")
    g.add_argument("--max-time", type=positive_float, default=None, help="stop after the epoch that passes this many seconds")
    g.add_argument("--checkpoint-every", default=None, metavar="N|DURATION",
                   help="also checkpoint inside epochs, every N steps or every DURATION (90s, 10m, 1h), or off; "
                        "--resume continues from the newest, bit-identical (default: 10m; epoch ends always)")
    g.add_argument("--seed", type=int, default=None, help="seed for weights, shuffling and noise (default: 0)")
    g.add_argument("--tensorboard", action="store_true", default=None, help="also write TensorBoard logs")
    g.add_argument("--device", default=None, help="auto (cuda when available), cpu, cuda, cuda:N (default: auto)")
    g.add_argument("--deterministic", action="store_true", default=None, help="deterministic GPU kernels (bit-exact resume)")
    g.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    g = p.add_argument_group("data options")
    g.add_argument("--val-fraction", type=float, default=None, help="share of the training data held out (default: 0.1)")
    g.add_argument("--max-samples", type=positive_int, default=None, help="train on a random subset of this size")
    g.add_argument("--image-size", type=int_list, default=None, help="resize image folders to H,W (or one size)")
    g.add_argument("--standardize", action="store_true", default=None, help="standardize table columns")
    g.add_argument("--label-column", default=None, help="csv column holding labels (name or index)")
    from .stacked_cmd import add_stacked_options

    add_stacked_options(p)
    p.set_defaults(func=run_train)


def apply_config_file(args: argparse.Namespace, actions: dict) -> None:
    """Fill options not given on the command line from --config (TOML or YAML)."""
    path = Path(args.config)
    if not path.is_file():
        raise ConfigError(f"--config file {str(path)!r} does not exist.")
    try:
        if path.suffix.lower() == ".toml":
            values = tomllib.loads(path.read_text())
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(path.read_text()) or {}
        else:
            raise ConfigError(f"--config must be a .toml, .yaml or .yml file; got {str(path)!r}.")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config file {str(path)!r} is not valid TOML: {exc}.") from None
    except Exception as exc:  # yaml.YAMLError and friends
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"--config file {str(path)!r} could not be read: {exc}.") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config file {str(path)!r} must hold a table of options.")
    allowed = sorted(k for k in actions if k not in ("help", "func", "command", "config", "variant"))
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        check_choice(f"option in {path.name}", dest, allowed)
        current = getattr(args, dest, None)
        if current is not None and current is not False:
            continue  # given on the command line: the command line wins
        action = actions[dest]
        if dest == "reg" and isinstance(value, str):
            value = [value]
        if isinstance(value, list) and dest in ("hidden", "channels", "conv_hidden", "image_size", "layers"):
            value = ",".join(str(v) for v in value)
        if action.type is not None and not isinstance(value, bool):
            try:
                value = action.type(str(value))
            except (argparse.ArgumentTypeError, ValueError) as exc:
                raise ConfigError(f"option {key!r} in {path.name}: {exc}.") from None
        if action.choices is not None and value not in action.choices:
            check_choice(f"option {key!r} in {path.name}", value, list(action.choices))
        setattr(args, dest, value)


def model_overrides(args) -> dict:
    regs: dict = {}
    if args.sparsity:
        regs.update(parse_sparsity(args.sparsity))
    if args.contractive is not None:
        regs["contractive"] = {"weight": args.contractive}
    capacity = {k: v for k, v in (("capacity", getattr(args, "capacity", None)),
                                  ("capacity_steps", getattr(args, "capacity_steps", None)),
                                  ("beta", getattr(args, "gamma", None))) if v is not None}
    if capacity:  # annealed-capacity options of the kl_prior regularizer
        if args.beta is not None and "beta" in capacity:
            raise ConfigError("--gamma and --beta both set the kl_prior weight; give one of them.")
        regs["kl_prior"] = capacity
    for spec in getattr(args, "reg", None) or []:
        name, params = REGULARIZERS.spec(spec, name="--reg")
        regs[name] = {**regs.get(name, {}), **params}
    out = dict(latent_dim=args.latent_dim, backbone=args.backbone, bottleneck=getattr(args, "bottleneck", None), hidden=args.hidden, channels=args.channels,
               conv_hidden=getattr(args, "conv_hidden", None), activation=args.activation,
               code_activation=args.code_activation, likelihood=args.likelihood,
               learn_sigma=args.learn_sigma, beta=args.beta, corruption=args.noise, regularizers=regs or None,
               quantization_noise=getattr(args, "quantization_noise", None),
               num_classes=getattr(args, "num_classes", None))
    if args.sparsity and args.sparsity.startswith("kl") and args.code_activation is None:
        out["code_activation"] = "sigmoid"  # the KL penalty needs codes in (0, 1)
    return out


def train_options(args) -> dict:
    names = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "schedule", "warmup_fraction", "warmup_steps",
             "grad_clip", "early_stopping", "binarize", "max_time", "seed", "tensorboard", "device", "deterministic",
             "checkpoint_every")
    return {k: getattr(args, k) for k in names if getattr(args, k) is not None}


def absolute_source(source: str | None) -> str | None:
    """A file or folder source as an absolute path (so the run works from any folder); named sources as given."""
    from ..data.load import NAMED_SOURCES

    if source is None or str(source).strip().lower() in NAMED_SOURCES or not Path(source).expanduser().exists():
        return source  # a missing path stays as typed: load_data's error names it (with a did-you-mean)
    return os.path.abspath(Path(source).expanduser())  # absolute, symlinks kept as named


def absolute_dir(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(Path(path).expanduser())


def data_options(args) -> dict:
    size = args.image_size
    if isinstance(size, list):
        size = tuple(size) if len(size) == 2 else (size[0] if len(size) == 1 else size)
    return {"source": absolute_source(args.data), "data_dir": absolute_dir(args.data_dir),
            "val_fraction": args.val_fraction if args.val_fraction is not None else 0.1,
            "seed": args.seed if args.seed is not None else 0, "image_size": size,
            "standardize": bool(args.standardize), "label_column": args.label_column, "max_samples": args.max_samples}


def build_checked(config: dict, *, source):
    """The model of a recorded config: its size checked on the meta device first (as aekit.load does)."""
    from ..checkpoint import build_from_config

    return build_from_config(config, source=source)


def run_train(args) -> int:
    if args.out is None:
        raise ConfigError("--out RUN_DIR is required: the folder that receives the config, weights and history.")
    out = Path(args.out)
    from .stacked_cmd import reject_stacked_options, run_train_stacked

    if args.variant == "stacked":  # greedy layer-wise pretraining: its own schedule (aekit.tasks.stacked.layerwise)
        return run_train_stacked(args)
    reject_stacked_options(args)
    check_choice("variant", args.variant, [*VARIANTS, "stacked"])
    if args.resume and not (out / "run.json").is_file() and args.data is not None:
        # killed before it wrote anything: its own command, --resume included, starts it
        print(f"aekit: {str(out)!r} holds no run yet: starting it from the beginning.", file=sys.stderr)
        args.resume = False
    if args.resume:
        info = read_json(out / "run.json")
        for key in ("data", "model", "train"):
            if not isinstance(info.get(key), dict):
                raise CheckpointError(f"{str(out / 'run.json')!r} has no {key!r} object (damaged or not written by "
                                      "'aekit train'); start the run again with --overwrite.")
        data = dict(info["data"])
        if args.data_dir:
            data["data_dir"] = absolute_dir(args.data_dir)
        if not isinstance(data.get("source"), str):
            raise CheckpointError(f"{str(out / 'run.json')!r} records no data source; start again with --overwrite.")
        source = data.pop("source")
        ds = load_data(source, **{k: v for k, v in data.items() if v is not None})
        model = build_checked(dict(info["model"]), source=out / "run.json")
        train_cfg = dict(info["train"])
        if args.epochs is not None:
            train_cfg["epochs"] = args.epochs
        if args.checkpoint_every is not None:
            train_cfg["checkpoint_every"] = args.checkpoint_every
        try:
            cfg = TrainConfig.from_dict(train_cfg)
        except TypeError as exc:
            raise CheckpointError(f"{str(out / 'run.json')!r} holds invalid training options ({exc}).") from None
        run_info = {k: v for k, v in info.items() if k not in ("train", "model")}
    else:
        if (out / "run.json").exists() and not args.overwrite:
            raise ConfigError(f"{str(out)!r} already holds a run; pass --resume to continue it or --overwrite to replace it.")
        if args.data is None:
            raise ConfigError("--data is required: digits, mnist, fashion-mnist or a file/folder path.")
        data = data_options(args)
        ds = load_data(data["source"], **{k: v for k, v in data.items() if k != "source" and v is not None})
        overrides = model_overrides(args)
        if args.variant in VARIANTS and (overrides.get("num_classes") or VARIANTS[args.variant]().get("num_classes")):
            from ..conditioning import num_classes_of

            overrides["num_classes"] = overrides.get("num_classes") or num_classes_of(ds, variant=args.variant)
        model = build(args.variant, input_shape=ds.shape, seed=args.seed if args.seed is not None else 0,
                      **overrides)
        cfg = TrainConfig.from_dict({**train_options(args), "progress": False if args.quiet else None})
        run_info = {"variant": args.variant, "data": data, "dataset": ds.to_dict(),
                    "command": ["aekit", *getattr(args, "argv", sys.argv[1:])]}
    verbose = not args.quiet

    def report(record, trainer):
        if verbose:
            terms = "  ".join(f"{k}={v:.4g}" for k, v in record.items() if k.startswith(("train_", "val_")))
            print(f"epoch {record['epoch']:>3}/{trainer.cfg.epochs}  {terms}  ({record['time']:.1f}s)", file=sys.stderr)

    from ..training.distributed import distributed_session, make_trainer

    with distributed_session(cfg.device) as dist_ctx:  # torchrun: data-parallel over the ranks; else one process
        trainer = make_trainer(model, cfg, dist_ctx=dist_ctx, out_dir=out, run_info=run_info, callbacks=[report])
        labels = {}
        if getattr(model, "num_classes", 0):  # a conditional model trains on (x, y)
            from ..conditioning import num_classes_of

            num_classes_of(ds, variant=model.variant)  # names the data source when it has no labels
            labels = {"y_train": ds.y_train, "y_val": ds.y_val if ds.val.shape[0] else None}
        result = trainer.fit(ds.train, ds.val, resume=args.resume, **labels)
    if not dist_ctx.is_main:
        return 0  # rank 0 reports
    summary = {"run_dir": str(out), "epochs": trainer.epoch, "seconds": round(result.seconds, 2),
               "best_epoch": result.best_epoch, "best_val_loss": result.best_val,
               "stopped_early": result.stopped_early}
    print(json.dumps(summary))
    return 0


__all__ = ["add_train_parser", "add_data_options", "asdict"]
