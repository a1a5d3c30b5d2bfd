"""The option groups every command shares, generated from the library: data, model, training, output.

One source of defaults: the training options' defaults are TrainConfig's fields
(aekit.training.trainer), the model options' the build defaults, the data options' those of
load_data; help strings show them through `default_text`, never as restated literals.

The ingredient options come from the registries (aekit.registry.AXES): `--backbone`,
`--bottleneck NAME[:k=v,...]`, `--corruption`, `--likelihood`, `--reg NAME[:k=v,...]`
(repeatable), each listing the registered names. The first release's flags (`--beta`,
`--noise`, `--channels`, `--code-activation`, ...) stay as shorthands that fold into those
specs; `build_kwargs(args)` turns a parsed command line into exactly the keywords of
`aekit.build` (second edition): a shorthand and a spec that disagree are a one-line error.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError, check_choice
from ..ingredients import load_all
from ..registry import AXES, parse_spec_string
from .parser import int_list, parse_sparsity, positive_float, positive_int

# ---------------------------------------------------------------------- defaults, one source


def default_text(value: Any) -> str:
    """A library default as the help shows it: 0.004, none, true, 512,256, adam."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(default_text(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _help(text: str, value: Any) -> str:
    """text + ' (default: X)' with X the library's value; '%' escaped for argparse."""
    return f"{text} (default: {default_text(value)})".replace("%", "%%")


def train_defaults() -> dict:
    """TrainConfig's field defaults (the trainer's, recorded in every run)."""
    from ..training.trainer import TrainConfig

    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def data_defaults() -> dict:
    """load_data's keyword defaults (val_fraction, image_size, ...)."""
    from ..data import load_data

    return {p.name: p.default for p in inspect.signature(load_data).parameters.values()
            if p.default is not inspect.Parameter.empty}


def model_defaults() -> dict:
    """The build defaults a model without a variant gets, one entry per short form and axis.

    Axes are given as ingredient names (the spec's name); the short forms and shorthands show the
    defaults of the default ingredients' parameters, read from their registered signatures."""
    from ..build import DEFAULTS

    load_all()
    out = {"latent_dim": DEFAULTS["latent_dim"]}
    for axis in ("backbone", "bottleneck", "corruption", "likelihood"):
        out[axis] = next(iter(DEFAULTS[axis]))

    def param(axis: str, name: str):
        for p in AXES[axis].params(out[axis]):
            if p.name == name and not p.required:
                return list(p.default) if isinstance(p.default, tuple) else p.default
        return None

    for key, (axis, name) in {"hidden": ("backbone", "hidden"), "activation": ("backbone", "activation"),
                              "code_activation": ("bottleneck", "activation"),
                              "sigma": ("likelihood", "sigma")}.items():
        value = param(axis, name)
        if value is not None:
            out[key] = value
    return out


def _model_help(text: str, key: str) -> str:
    """text + ' (default: the variant's; without one: X)', X the build default of `key` when it has one."""
    defaults = model_defaults()
    shown = "the variant's" + (f"; without one: {default_text(defaults[key])}" if key in defaults else "")
    return f"{text} (default: {shown})".replace("%", "%%")


# ---------------------------------------------------------------------- data options


def add_data_options(p: argparse.ArgumentParser, *, required: bool, max_samples: bool = False) -> None:
    """--data, --data-dir (and --max-samples): the data a command reads, by default the run's own."""
    p.add_argument("--data", required=required, default=None if not required else argparse.SUPPRESS,
                   help="data source: digits, mnist, fashion-mnist, dsprites, dsprites32, or a .npy/.npz/.csv/.mat/IDX "
                        "file or image folder (default: the run's own data)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the IDX .gz files of mnist / fashion-mnist (default: the run's folder, else "
                        "$AEKIT_DATA_DIR, else download)")
    if max_samples:
        p.add_argument("--max-samples", type=positive_int, default=None, metavar="N",
                       help="use a seeded random subset of N of the rows (in their order), for a quicker look")


def add_split_options(p: argparse.ArgumentParser) -> None:
    """How a training command splits and scales its data."""
    d = data_defaults()
    g = p.add_argument_group("data options")
    g.add_argument("--val-fraction", type=float, default=None,
                   help=_help("share of the training data held out", d["val_fraction"]))
    g.add_argument("--max-samples", type=positive_int, default=None, help="train on a random subset of this size")
    g.add_argument("--image-size", type=int_list, default=None, help="resize image folders to H,W (or one size)")
    g.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="standardize table columns to mean 0, std 1 on the training split; the scaler is saved "
                        "with the run and applied by every command; on unless given for tables, off for images")
    g.add_argument("--label-column", default=None, help="csv column holding labels (name or index)")


def absolute_source(source: str | None) -> str | None:
    """A file or folder source as an absolute path (so the run works from any folder); named sources as given."""
    from ..data.load import NAMED_SOURCES

    if source is None or str(source).strip().lower() in NAMED_SOURCES or not Path(source).expanduser().exists():
        return source  # a missing path stays as typed: load_data's error names it (with a did-you-mean)
    return os.path.abspath(Path(source).expanduser())  # absolute, symlinks kept as named


def absolute_dir(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(Path(path).expanduser())


def data_options(args) -> dict:
    """The data keywords of a training command (recorded in run.json as they are)."""
    d = data_defaults()
    size = args.image_size
    if isinstance(size, list):
        size = tuple(size) if len(size) == 2 else (size[0] if len(size) == 1 else size)
    return {"source": absolute_source(args.data), "data_dir": absolute_dir(args.data_dir),
            "val_fraction": args.val_fraction if args.val_fraction is not None else d["val_fraction"],
            "seed": args.seed if args.seed is not None else train_defaults()["seed"], "image_size": size,
            "standardize": args.standardize, "label_column": args.label_column, "max_samples": args.max_samples}


# ---------------------------------------------------------------------- training options

TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "schedule", "warmup_fraction",
                 "warmup_steps", "grad_clip", "early_stopping", "binarize", "augment", "max_time", "seed", "tensorboard",
                 "device", "deterministic", "checkpoint_every", "precision", "loggers")


def add_training_options(p: argparse.ArgumentParser) -> None:
    """The trainer's options, their defaults TrainConfig's."""
    from ..training.loggers import LOGGERS
    from ..training.precision import PRECISIONS
    from ..training.trainer import AUGMENT, BINARIZE, OPTIMIZERS, SCHEDULES

    t = train_defaults()
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=None, help=_help("passes over the training data", t["epochs"]))
    g.add_argument("--batch-size", type=positive_int, default=None, help=_help("samples per step", t["batch_size"]))
    g.add_argument("--lr", type=positive_float, default=None,
                   help=_help("peak learning rate, reached after the --warmup-fraction warm-up and followed by the "
                              "--schedule decay", t["lr"]))
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help=_help("optimizer (adam is fused)", t["optimizer"]))
    g.add_argument("--weight-decay", type=float, default=None, help=_help("weight decay", t["weight_decay"]))
    g.add_argument("--schedule", choices=SCHEDULES, default=None, help=_help("learning-rate schedule", t["schedule"]))
    g.add_argument("--warmup-fraction", type=float, default=None,
                   help=_help(f"linear learning-rate warm-up over this share of the run's steps, in [0, 1), at most "
                              f"{default_text(t['warmup_max_steps'])} steps", t["warmup_fraction"]))
    g.add_argument("--warmup-steps", type=int, default=None,
                   help=_help("an absolute number of warm-up steps instead of --warmup-fraction", t["warmup_steps"]))
    g.add_argument("--grad-clip", type=positive_float, default=None,
                   help=_help("clip the gradient norm (none: off)", t["grad_clip"]))
    g.add_argument("--early-stopping", type=positive_int, default=None,
                   help=_help("patience in epochs on the validation loss (none: off)", t["early_stopping"]))
    g.add_argument("--binarize", choices=BINARIZE, default=None,
                   help=_help(f"binarize inputs: {', '.join(BINARIZE)}", t["binarize"]))
    g.add_argument("--augment", choices=AUGMENT, default=None,
                   help=_help("training augmentation: dihedral turns and flips each training image at random (image "
                              "data only)", t["augment"]))
    g.add_argument("--max-time", type=positive_float, default=None,
                   help=_help("stop after the epoch that passes this many seconds", t["max_time"]))
    g.add_argument("--checkpoint-every", default=None, metavar="N|DURATION",
                   help=_help("also checkpoint inside epochs, every N steps or every DURATION (90s, 10m, 1h), or off; "
                              "--resume continues from the newest, bit-identical; epoch ends always", t["checkpoint_every"]))
    g.add_argument("--seed", type=int, default=None, help=_help("seed for weights, shuffling and noise", t["seed"]))
    g.add_argument("--tensorboard", action="store_true", default=None,
                   help=_help("also write TensorBoard logs", t["tensorboard"]))
    g.add_argument("--device", default=None,
                   help=_help("auto (cuda when available), cpu, cuda, cuda:N", t["device"]))
    g.add_argument("--deterministic", action="store_true", default=None,
                   help=_help("deterministic GPU kernels (bit-exact resume)", t["deterministic"]))
    g.add_argument("--precision", choices=PRECISIONS, default=None,
                   help=_help("32, bf16-mixed (CUDA, or a CPU with AMX) or 16-mixed (CUDA, with a loss scale)",
                              t["precision"]))
    g.add_argument("--logger", dest="loggers", action="append", choices=LOGGERS[1:], default=None, metavar="NAME",
                   help="also log to tensorboard, mlflow or wandb (offline), into --out; repeatable")
    g.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def train_options(args) -> dict:
    """The training options given on the command line (TrainConfig fills the rest)."""
    return {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k, None) is not None}


# ---------------------------------------------------------------------- model options


def registered_names(axis: str) -> list[str]:
    """The names registered on an axis."""
    load_all()
    return AXES[axis].names()


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The model: short forms, one spec option per ingredient axis, and the first release's shorthands."""
    g = p.add_argument_group("model")
    g.add_argument("--latent-dim", type=positive_int, default=None, help=_model_help("code size", "latent_dim"))
    g.add_argument("--hidden", type=int_list, default=None,
                   help=_model_help("mlp hidden widths, e.g. 512,256", "hidden"))
    spec = "NAME[:key=value,...]"
    for axis, what in (("backbone", "encoder/decoder family"), ("bottleneck", "code"),
                       ("corruption", "input corruption"), ("likelihood", "decoder likelihood")):
        g.add_argument(f"--{axis}", default=None, metavar=spec,
                       help=_model_help(f"{what}: {', '.join(registered_names(axis))} ('aekit list' shows the "
                                        "parameters)", axis))
    g.add_argument("--reg", action="append", default=None, metavar=spec,
                   help=f"add a regularizer (repeatable): {', '.join(registered_names('regularizer'))}; "
                        "NAME:none removes the variant's")
    s = p.add_argument_group("model shorthands (fold into the specs above)")
    s.add_argument("--channels", type=int_list, default=None, help="backbone channels per level, e.g. 32,64")
    s.add_argument("--conv-hidden", type=int_list, default=None,
                   help="backbone conv: fully connected widths between the conv features and the code, e.g. 256,256")
    s.add_argument("--activation", default=None, help=_model_help("backbone hidden activation: relu, tanh, elu, gelu, ...",
                                                                   "activation"))
    s.add_argument("--code-activation", default=None,
                   help=_model_help("bottleneck deterministic: code activation none, sigmoid, relu, tanh", "code_activation"))
    s.add_argument("--quantization-noise", type=positive_int, default=None, metavar="BITS",
                   help="bottleneck deterministic: train the code with uniform noise of a BITS-bit quantizer's step "
                        "(for 'aekit compress')")
    s.add_argument("--lambda", dest="lmbda", type=positive_float, default=None,
                   help="bottleneck entropy/hyperprior: the rate-distortion trade-off, loss = rate in bits + LAMBDA * "
                        "distortion (the likelihood's NLL)")
    s.add_argument("--noise", default=None,
                   help="corruption: none, gaussian:STD, gaussian_clipped:STD, masking:P, salt_and_pepper:P")
    s.add_argument("--sigma", type=positive_float, default=None, help=_model_help("likelihood gaussian: sigma", "sigma"))
    s.add_argument("--learn-sigma", action="store_true", default=None, help="likelihood gaussian: learn sigma")
    s.add_argument("--beta", type=float, default=None, help="regularizer kl_prior: KL weight (default: the variant's)")
    s.add_argument("--capacity", type=float, default=None, help="regularizer kl_prior: KL capacity C_max in nats "
                                                                "(annealed VAE: gamma * max(0, I - C))")
    s.add_argument("--capacity-steps", type=int, default=None,
                   help="regularizer kl_prior: steps over which C rises linearly from --capacity-start to C_max")
    s.add_argument("--capacity-start", type=float, default=None,
                   help="regularizer kl_prior: C at step 0 in nats (default 0; about half of C_max kept the annealed "
                        "VAE from entangling x and y on dSprites)")
    s.add_argument("--gamma", type=float, default=None, help="regularizer kl_prior: weight gamma of |KL - C| (same as --beta)")
    s.add_argument("--sparsity", default=None,
                   help="regularizer kl_sparsity (kl:RHO[:WEIGHT]) or l1_activity (l1:WEIGHT)")
    s.add_argument("--contractive", type=float, default=None, help="regularizer contractive: weight")
    g.add_argument("--num-classes", type=positive_int, default=None, metavar="K",
                   help="condition on the labels (a conditional VAE; 'cvae' sets it from the data's labels)")


# Shorthand flag -> (axis, parameter): the first release's flags, folded into the axis's spec.
SHORTHANDS = {
    "channels": ("backbone", "channels"),
    "conv_hidden": ("backbone", "hidden"),  # conv: the fully connected widths
    "activation": ("backbone", "activation"),
    "code_activation": ("bottleneck", "activation"),
    "quantization_noise": ("bottleneck", "noise_bits"),
    "lmbda": ("bottleneck", "lmbda"),
    "sigma": ("likelihood", "sigma"),
    "learn_sigma": ("likelihood", "learn_sigma"),
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _same(a, b) -> bool:
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).strip().lower() == str(b).strip().lower()


def _recipe_name(variant: str | None, axis: str) -> str | None:
    """The ingredient a variant's recipe (else the build defaults) picks on an axis, or None."""
    recipe: dict = {}
    if variant:
        from ..registry import VARIANTS as REGISTERED

        load_all()
        if variant in REGISTERED:
            recipe = dict(REGISTERED.get(variant)())
    value = recipe.get(axis, model_defaults().get(axis))
    if isinstance(value, dict):
        return next(iter(value)) if len(value) == 1 else value.get("kind")
    if isinstance(value, str):
        return value.partition(":")[0].strip()
    return None


def _checked(axis: str, name: str, params: dict) -> dict:
    """Params checked and typed against the registered class, when the registry knows it."""
    reg = AXES[axis]
    return reg.check_params(name, params, what=_flag(axis)[2:]) if name in reg else params


def _level_param(kind: str) -> str:
    """The one parameter of a corruption (its level: std or p), read from its registered class."""
    reg = AXES["corruption"]
    if kind in reg:
        params = reg.params(kind)
        if len(params) >= 1:
            return params[0].name
    return "level"  # the first release's name


def _noise_spec(text: str) -> tuple[str, dict]:
    """--noise gaussian:0.3 -> ('gaussian', {level-parameter: 0.3}); 'none' -> ('none', {})."""
    kind, _, level = text.partition(":")
    kind = kind.strip()
    known = registered_names("corruption")
    check_choice("--noise", kind, known)
    if kind == "none":
        return "none", {}
    if not level.strip():
        raise ConfigError(f"--noise {kind!r} needs a level, e.g. '{kind}:0.3'; got {text!r}.")
    try:
        value = float(level)
    except ValueError:
        raise ConfigError(f"--noise level must be a number; got {level!r} in {text!r}.") from None
    return kind, {_level_param(kind): value}


def _axis_spec(args, axis: str, *, what: str | None = None) -> tuple[str, dict] | None:
    text = getattr(args, axis, None)
    if text is None:
        return None
    if not isinstance(text, str):
        raise ConfigError(f"--{axis} must be NAME or NAME:key=value,...; got {text!r}.")
    name, params = parse_spec_string(text, what=f"--{what or axis}")
    if not name:
        raise ConfigError(f"--{axis} needs an ingredient name, one of {', '.join(registered_names(axis))}; got {text!r}.")
    check_choice(f"--{axis}", name, registered_names(axis))
    return name, params


def build_kwargs(args) -> dict:
    """A parsed command line -> the keywords of aekit.build (second edition), only those given.

    {'latent_dim', 'hidden', 'backbone': {name: params}, 'bottleneck': {...}, 'corruption': {...},
    'likelihood': {...}, 'regularizers': {name: params or None}, 'num_classes'}. A shorthand lands on
    the ingredient named by its axis's spec, else the variant's, else the default one."""
    variant = getattr(args, "variant", None)
    out: dict = {}
    for key in ("latent_dim", "hidden", "num_classes"):
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)

    specs: dict[str, tuple[str, dict]] = {}
    given: dict[str, tuple[str, dict]] = {}
    for axis in ("backbone", "bottleneck", "corruption", "likelihood"):
        spec = _axis_spec(args, axis)
        if spec is not None:
            given[axis] = spec
            specs[axis] = (spec[0], dict(spec[1]))

    if getattr(args, "noise", None) is not None:  # --noise KIND:LEVEL sets the whole corruption
        kind, params = _noise_spec(args.noise)
        if "corruption" in given:
            g_name, g_params = given["corruption"]
            same = g_name == kind and set(g_params) == set(params) and all(_same(g_params[k], params[k]) for k in params)
            if not same:
                raise ConfigError(f"--noise {args.noise} and --corruption {args.corruption} both set the corruption; "
                                  "give one of them.")
        specs["corruption"] = (kind, params)

    if getattr(args, "sparsity", None) and str(args.sparsity).startswith("kl") and getattr(args, "code_activation", None) is None:
        bottleneck = specs.get("bottleneck", (_recipe_name(variant, "bottleneck"), {}))[0]
        takes_activation = bottleneck in AXES["bottleneck"] and any(
            p.name == "activation" for p in AXES["bottleneck"].params(bottleneck))
        if takes_activation and "activation" not in specs.get("bottleneck", ("", {}))[1]:
            specs.setdefault("bottleneck", (bottleneck, {}))[1]["activation"] = "sigmoid"  # KL needs codes in (0, 1)

    for dest, (axis, param) in SHORTHANDS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if axis not in specs:
            name = _recipe_name(variant, axis)
            if name is None:
                raise ConfigError(f"{_flag(dest)} sets a {axis} parameter; name the {axis} with --{axis}.")
            specs[axis] = (name, {})
        name, params = specs[axis]
        if dest == "conv_hidden" and not AXES["backbone"].capabilities(name, params) >= {"conv_features"}:
            raise ConfigError(f"conv_hidden applies to backbone='conv' only (allowed: 'conv'); got backbone={name!r}. "
                              "Use --hidden for the mlp backbone.")
        if param in params and not _same(params[param], value):
            raise ConfigError(f"{_flag(dest)} {default_text(value)} and --{axis} {name}:{param}={params[param]} "
                              f"disagree; give one of them.")
        params[param] = value

    for axis, (name, params) in specs.items():
        out[axis] = {name: _checked(axis, name, params)}

    regs = _regularizers(args)
    if regs is not None:
        out["regularizers"] = regs
    return out


def _regularizers(args) -> dict | None:
    """--reg specs plus the shorthands (--sparsity, --contractive, --beta, --gamma, --capacity, --capacity-steps,
    --capacity-start)."""
    regs: dict[str, dict | None] = {}
    for text in getattr(args, "reg", None) or []:
        head, _, rest = str(text).partition(":")
        removes = rest.strip().lower() == "none"  # NAME:none removes the recipe's regularizer
        name, params = (head.strip(), {}) if removes else parse_spec_string(text, what="--reg")
        if name in regs:
            raise ConfigError(f"--reg {name} is given twice; give each regularizer once with all its parameters.")
        check_choice("--reg", name, registered_names("regularizer"))
        if removes:
            regs[name] = None
            continue
        regs[name] = params

    short: dict[str, dict] = {}
    if getattr(args, "sparsity", None):
        short.update(parse_sparsity(args.sparsity))
    if getattr(args, "contractive", None) is not None:
        short["contractive"] = {"weight": args.contractive}
    if getattr(args, "gamma", None) is not None and getattr(args, "beta", None) is not None:
        raise ConfigError("--gamma and --beta both set the kl_prior weight; give one of them.")
    kl = {k: v for k, v in (("beta", getattr(args, "beta", None)), ("beta", getattr(args, "gamma", None)),
                            ("capacity", getattr(args, "capacity", None)),
                            ("capacity_steps", getattr(args, "capacity_steps", None)),
                            ("capacity_start", getattr(args, "capacity_start", None))) if v is not None}
    if kl:
        short["kl_prior"] = kl
    flags = {"kl_sparsity": "--sparsity", "l1_activity": "--sparsity", "contractive": "--contractive",
             "kl_prior": "--beta/--gamma/--capacity"}
    for name, params in short.items():
        if name in regs and regs[name] is None:
            raise ConfigError(f"{flags[name]} sets regularizer {name!r}, which --reg {name}:none removes; give one of them.")
        merged = dict(regs.get(name) or {})
        for key, value in params.items():
            if key in merged and not _same(merged[key], value):
                raise ConfigError(f"{flags[name]} and --reg {name}:{key}={merged[key]} disagree on {key}; give one of them.")
            merged[key] = value
        regs[name] = merged
    if not regs:
        return None
    return {name: (None if params is None else _checked("regularizer", name, params)) for name, params in regs.items()}


# ---------------------------------------------------------------------- output options


def out_path(path: str, suffixes: tuple[str, ...]) -> Path:
    """--out checked for its suffix, its folder made."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise ConfigError(f"--out must end in {' or '.join(suffixes)}; got {path!r}.")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


# ---------------------------------------------------------------------- --config FILE

LIST_OPTIONS = ("hidden", "channels", "conv_hidden", "image_size", "layers")


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
        if isinstance(action, argparse._AppendAction):  # --reg: a list of specs (or one)
            setattr(args, dest, [str(v) for v in (value if isinstance(value, list) else [value])])
            continue
        if isinstance(value, list) and dest in LIST_OPTIONS:
            value = ",".join(str(v) for v in value)
        if action.type is not None and not isinstance(value, bool):
            try:
                value = action.type(str(value))
            except (argparse.ArgumentTypeError, ValueError) as exc:
                raise ConfigError(f"option {key!r} in {path.name}: {exc}.") from None
        if action.choices is not None and value not in action.choices:
            check_choice(f"option {key!r} in {path.name}", value, list(action.choices))
        setattr(args, dest, value)

