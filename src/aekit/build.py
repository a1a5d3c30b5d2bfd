"""build(...): resolve a variant name and overrides into a checked, recorded Autoencoder.

    model = aekit.build("vae", input_shape=(1, 28, 28), latent_dim=2)
    model = aekit.build(input_shape=(1, 28, 28), backbone="conv", bottleneck="gaussian",
                        corruption="gaussian:0.3", regularizers={"kl_prior": {"beta": 4}})
    model = aekit.build(input_shape=(784,), bottleneck={"deterministic": {"activation": "sigmoid"}},
                        regularizers=["kl_sparsity:rho=0.05"])

Every axis (backbone, bottleneck, corruption, likelihood; regularizers) takes a spec: a name,
{name: {parameter: value}} or "name:k=v,..." (aekit.registry); parameters are checked against
the ingredient's signature and recorded unchanged. Defaults < the variant's recipe < the caller's
keywords; an axis named differently replaces the one before, the same name merges parameters.
`latent_dim` and `hidden` (the mlp/conv fully connected widths) are short forms; the first
release's flat keywords (channels, conv_hidden, activation, skips, code_activation,
quantization_noise, sigma, learn_sigma, beta) still work, with a DeprecationWarning, translated
into specs.

Impossible mixes are refused by capabilities, never by comparing names: an ingredient provides
capabilities ('posterior', 'bounded_code', ...) and requires some (kl_prior requires a
'posterior'); the error names the missing capability and the ingredients that provide it.
The resolved configuration (CONFIG_FORMAT below) is stored on the model (model.config) and in
checkpoints, so `aekit.load` rebuilds the same model; configs of the first release (flat keys)
are translated by `migrate_config` wherever a config is read.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Mapping

import torch

from .axes.corruption import corruption_spec
from .errors import ConfigError, check_choice
from .model import Autoencoder
from .pca_init import INITS, pca_eligible
from .ingredients import load_all
from .registry import (BACKBONES, BOTTLENECKS, CORRUPTIONS, LIKELIHOODS, REGULARIZERS, VARIANTS, check_requirements,
                       doc_summary)

load_all()  # every axis module registers its ingredients on import

FORMAT_VERSION = 1  # the container (config.json + model.safetensors); the config inside has its own CONFIG_VERSION
CONFIG_VERSION = 2  # 2: each axis recorded as {name: params}; 1 (no key): the first release's flat keys

SPEC_AXES = {"backbone": BACKBONES, "bottleneck": BOTTLENECKS, "corruption": CORRUPTIONS, "likelihood": LIKELIHOODS}

DEFAULTS = {
    "latent_dim": 32,
    "backbone": {"mlp": {}},  # hidden=[256]; image data: the CLI picks conv
    "bottleneck": {"deterministic": {}},
    "corruption": {"none": {}},
    "likelihood": {"gaussian": {}},
    "regularizers": {},
    "num_classes": None,  # K: a conditional model, the one-hot label an input to encoder and decoder
    "init": "random",  # random | pca: a linear model starts at PCA's solution on the training data (pca_init.py)
}

# the first release's flat keywords -> (axis, parameter of the chosen ingredient)
LEGACY = {
    "channels": ("backbone", "channels"),
    "conv_hidden": ("backbone", "hidden"),
    "activation": ("backbone", "activation"),
    "skips": ("backbone", "skips"),
    "code_activation": ("bottleneck", "activation"),
    "quantization_noise": ("bottleneck", "noise_bits"),
    "sigma": ("likelihood", "sigma"),
    "learn_sigma": ("likelihood", "learn_sigma"),
}
SHORT_FORMS = ("latent_dim", "hidden")
CONFIG_KEYS = ("config_version", "variant", "input_shape", "latent_dim", *SPEC_AXES, "regularizers", "num_classes",
               "init", "init_from", "seed", "kwargs")


def _shape(input_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ConfigError(f"input_shape must be a tuple of positive integers; got {input_shape!r}.") from None
    if not shape or len(shape) > 3 or any(s <= 0 for s in shape):
        raise ConfigError(
            f"input_shape must be (D,) for vectors or (C, H, W) for images with positive sizes; got {input_shape!r}."
        )
    return shape


# ---------------------------------------------------------------------- specs
def axis_spec(axis: str, value) -> tuple[str, dict]:
    """(name, checked params) of one axis's spec; corruption also takes 'gaussian:0.3' and {'kind', 'level'}."""
    if axis == "corruption":
        value = corruption_spec(value)
    return SPEC_AXES[axis].spec(value, name=axis)


def _merge(old: tuple[str, dict], new: tuple[str, dict]) -> tuple[str, dict]:
    """The same ingredient: parameters merged (new over old); another one: replaced."""
    return (new[0], {**old[1], **new[1]}) if new[0] == old[0] else new


def regularizer_specs(value) -> dict:
    """{name: params or None} from a dict {name: params} or a list of specs; None removes a recipe's regularizer."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = [REGULARIZERS.spec(v, name="regularizer") for v in value]
    else:
        raise ConfigError(f"regularizers must be a dict name -> parameters or a list of specs ('kl_prior:beta=4'); "
                          f"got {value!r}.")
    out = {}
    for name, params in items:
        if params is None:
            out[name] = None
            continue
        if not isinstance(params, Mapping):
            raise ConfigError(f"regularizers[{name!r}] must be a dict of parameters or None; got {params!r}.")
        out[name] = REGULARIZERS.spec({name: dict(params)}, name="regularizer")[1]
    return out


def _params_of(axis: str, name: str) -> set[str]:
    return {p.name for p in SPEC_AXES[axis].params(name)}


def _apply_legacy(axes: dict, regs: dict, legacy: dict) -> None:
    """Translate the first release's flat keywords into parameters of the chosen ingredients (in place)."""
    for key, value in legacy.items():
        if key == "beta":
            if "kl_prior" not in regs:
                raise ConfigError(
                    f"beta weights the kl_prior regularizer, which this model does not have (got beta={value!r}); "
                    "use a variant 'vae' or 'beta_vae', or regularizers={'kl_prior': {...}} with bottleneck='gaussian'.")
            regs["kl_prior"] = {**regs["kl_prior"], "beta": value}
            continue
        axis, param = LEGACY[key]
        name, params = axes[axis]
        if param in _params_of(axis, name) and not (key == "conv_hidden" and "channels" not in _params_of(axis, name)):
            try:
                value = SPEC_AXES[axis].check_params(name, {param: value}, what=axis)[param]
            except ConfigError as exc:
                raise ConfigError(f"{key} ({axis} {name!r} parameter {param!r}): {exc}") from None
            axes[axis] = (name, {**params, param: value})
        elif key == "conv_hidden" and value:
            raise ConfigError(f"conv_hidden applies to backbone='conv' only (allowed: 'conv'); got backbone={name!r}. "
                              "Use hidden for the mlp backbone.")
        elif key in ("code_activation", "quantization_noise") and value not in ("none", None):
            raise ConfigError(
                f"{key} sets the {param} parameter of the bottleneck, which {axis} {name!r} does not have: "
                f"{key} must be {'none' if key == 'code_activation' else 'None'!r} (allowed: "
                f"{'none' if key == 'code_activation' else 'None'!r}) with bottleneck={name!r}; got {key}={value!r}.")
        elif key == "learn_sigma" and value:
            raise ConfigError(f"learn_sigma=True applies to a likelihood with a learn_sigma parameter ('gaussian'); "
                              f"got likelihood={name!r}.")
        # otherwise the first release ignored the keyword for this ingredient (channels of an mlp, sigma of a bernoulli)


def resolve_config(variant: str | None = None, *, input_shape, **overrides) -> dict:
    """Defaults, then the recipe, then overrides (None means 'not given'); checked and JSON-able (CONFIG_FORMAT)."""
    legacy = {k: overrides.pop(k) for k in (*LEGACY, "beta") if overrides.get(k) is not None}
    for k in (*LEGACY, "beta"):
        overrides.pop(k, None)
    if legacy:
        warnings.warn(f"build() keywords {', '.join(sorted(legacy))} are deprecated: give the parameters in the axis "
                      "specs (backbone={'conv': {'channels': [...]}}, bottleneck={'deterministic': {'activation': ...}}, "
                      "likelihood={'gaussian': {'sigma': ...}}, regularizers={'kl_prior': {'beta': ...}}).",
                      DeprecationWarning, stacklevel=3)
    allowed = [*DEFAULTS, *SHORT_FORMS, *LEGACY, "beta", "seed"]
    for key in overrides:
        if key not in allowed:
            check_choice("build() keyword", key, allowed)
    axes = {axis: axis_spec(axis, DEFAULTS[axis]) for axis in SPEC_AXES}
    regs: dict = {}
    cfg = {k: copy.deepcopy(v) for k, v in DEFAULTS.items() if k not in SPEC_AXES and k != "regularizers"}
    hidden = None
    layers = []
    if variant is not None:
        VARIANTS.get(variant)  # an unknown name: the allowed ones and a did-you-mean
        layers.append(copy.deepcopy(VARIANTS[variant]()))
    layers.append({k: v for k, v in overrides.items() if v is not None and k != "seed"})
    for layer in layers:
        for key, value in layer.items():
            if key in SPEC_AXES:
                axes[key] = _merge(axes[key], axis_spec(key, value))
            elif key == "regularizers":
                for name, params in regularizer_specs(value).items():
                    if params is None:
                        regs.pop(name, None)  # None removes a recipe's regularizer
                    else:
                        regs[name] = {**regs.get(name, {}), **params}
            elif key == "hidden":
                hidden = value
            else:
                cfg[key] = value
    if hidden is not None:
        name, params = axes["backbone"]
        if "hidden" not in _params_of("backbone", name):
            with_fc = [n for n in BACKBONES if "hidden" in _params_of("backbone", n)]
            raise ConfigError(f"hidden (fully connected widths) applies to backbones {', '.join(map(repr, with_fc))}; "
                              f"got backbone={name!r}.")
        axes["backbone"] = (name, {**params, "hidden": hidden})
    _apply_legacy(axes, regs, legacy)
    cfg["input_shape"] = list(_shape(input_shape))
    cfg["variant"] = variant
    for axis in SPEC_AXES:
        cfg[axis] = {axes[axis][0]: axes[axis][1]}
    cfg["regularizers"] = regs
    cfg = check_config(cfg)
    if cfg["init"] == "pca" and overrides.get("init") is None and pca_eligible(cfg, capabilities(cfg)) is not None:
        cfg["init"] = "random"  # the recipe's PCA start, on a model the caller made nonlinear: a random start
    if cfg["init"] == "pca" and pca_eligible(cfg, capabilities(cfg)) is not None:
        raise ConfigError(f"{pca_eligible(cfg, capabilities(cfg))}; use init='random' for this model.")
    return {"config_version": CONFIG_VERSION, **cfg}


def _chosen(cfg: dict) -> dict:
    """label -> (registry, name, params) of every ingredient of a (new-format) config."""
    chosen = {}
    for axis, reg in SPEC_AXES.items():
        (name, params), = cfg[axis].items()
        chosen[axis] = (reg, name, params)
    for name, params in cfg["regularizers"].items():
        chosen[f"regularizer:{name}"] = (REGULARIZERS, name, params)
    return chosen


def capabilities(cfg: dict) -> frozenset[str]:
    """Every capability a (checked) config's ingredients and input provide."""
    given = {"image_input"} if len(cfg["input_shape"]) == 3 else set()
    if cfg.get("num_classes"):
        given.add("conditional")
    return check_requirements(_chosen(cfg), given=given)


def check_config(cfg: dict) -> dict:
    """Check a config (the new format): names, parameters against signatures and values, requirements."""
    cfg = dict(cfg)
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"the model configuration has unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(CONFIG_KEYS)}." + _did_you_mean_any(unknown))
    cfg["input_shape"] = list(_shape(cfg.get("input_shape")))
    for axis in SPEC_AXES:
        name, params = axis_spec(axis, cfg.get(axis))
        cfg[axis] = {name: params}
    if not isinstance(cfg.get("regularizers"), Mapping):
        raise ConfigError(f"regularizers must be a dict name -> parameters; got {cfg.get('regularizers')!r}.")
    # in name order, the order a saved config.json (sorted keys) gives back: the loss sums its terms identically
    cfg["regularizers"] = {n: p for n, p in sorted(regularizer_specs(cfg["regularizers"]).items()) if p is not None}
    d = cfg.get("latent_dim")
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise ConfigError(f"latent_dim must be a positive integer; got {d!r}.")
    k = cfg.get("num_classes")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ConfigError(f"num_classes must be a positive integer (the number of labels) or None; got {k!r}.")
    check_choice("init", cfg.setdefault("init", "random"), INITS)
    # values: constructing the light ingredients checks their ranges (std >= 0, rho in (0, 1), sigma > 0, ...)
    CORRUPTIONS.create(cfg["corruption"])
    LIKELIHOODS.create(cfg["likelihood"])
    for name, params in cfg["regularizers"].items():
        REGULARIZERS.create({name: params})
    shape = cfg["input_shape"]
    if len(shape) != 3:  # an ingredient that needs images, on vectors: name the ones that take vectors
        for axis, reg in SPEC_AXES.items():
            (name, params), = cfg[axis].items()
            if "image_input" in reg.requirements(name, params):
                alternatives = [n for n in reg if "image_input" not in reg.requirements(n, {})]
                raise ConfigError(f"{axis}={name!r} needs image inputs (C, H, W); got input_shape={tuple(shape)}. "
                                  f"Allowed for vectors: {', '.join(map(repr, alternatives))}.")
    needs = {"num_classes (a conditional model)": ["posterior"]} if k else {}
    check_requirements(_chosen(cfg), needs=needs, given={"image_input"} if len(shape) == 3 else ())
    return cfg


def _did_you_mean_any(names) -> str:
    from .errors import did_you_mean

    return "".join(did_you_mean(n, [*CONFIG_KEYS, *LEGACY]) for n in names[:1])


# ---------------------------------------------------------------------- the first release's configs
FLAT_KEYS = ("hidden", "channels", "conv_hidden", "activation", "skips", "code_activation", "quantization_noise",
             "sigma", "learn_sigma")


def migrate_config(cfg: dict) -> dict:
    """A config of any release in the current format (CONFIG_VERSION); a current one is returned unchanged.

    The first release recorded flat keys: backbone/bottleneck/likelihood as names, hidden, channels,
    conv_hidden, activation, skips, code_activation, quantization_noise, sigma, learn_sigma, and the
    corruption as {'kind', 'level'}. Each becomes the parameter of its ingredient, so the model built
    has the same modules, the same state_dict keys and gives the same numbers. A flat key found beside
    specs (a hand-edited run.json) is translated the same way."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a model configuration must be a JSON object; got {type(cfg).__name__}.")
    new = dict(cfg)
    flat = {k: new.pop(k) for k in FLAT_KEYS if k in new}
    if new.get("config_version") == CONFIG_VERSION and not flat:
        return new
    new["config_version"] = CONFIG_VERSION
    axes = {}
    for axis, default in (("backbone", "mlp"), ("bottleneck", "deterministic"), ("likelihood", "gaussian")):
        value = new.get(axis, default)
        if isinstance(value, str):
            axes[axis] = (value, {})
        elif isinstance(value, Mapping) and len(value) == 1 and isinstance(next(iter(value.values())), (Mapping, type(None))):
            name, params = next(iter(value.items()))
            axes[axis] = (name, dict(params or {}))
        else:
            return new | flat  # not a config this function can read: check_config names the problem
    new["corruption"] = corruption_spec(new.get("corruption"))

    def has(axis: str, param: str) -> bool:
        name = axes[axis][0]
        return name in SPEC_AXES[axis] and param in _params_of(axis, name)

    def put(axis: str, param: str, value) -> None:
        axes[axis] = (axes[axis][0], {**axes[axis][1], param: value})

    # the first release: mlp widths in hidden, conv widths (with channels) in conv_hidden
    widths = flat.get("conv_hidden") if has("backbone", "channels") else flat.get("hidden")
    if widths is not None and has("backbone", "hidden"):
        put("backbone", "hidden", widths)
    for key, param in (("channels", "channels"), ("activation", "activation"), ("skips", "skips")):
        if flat.get(key) is not None and has("backbone", param):
            put("backbone", param, flat[key])
    if flat.get("code_activation") is not None and has("bottleneck", "activation"):
        put("bottleneck", "activation", flat["code_activation"])
    if flat.get("quantization_noise") is not None and has("bottleneck", "noise_bits"):
        put("bottleneck", "noise_bits", flat["quantization_noise"])
    for key in ("sigma", "learn_sigma"):
        if flat.get(key) is not None and has("likelihood", key):
            put("likelihood", key, flat[key])
    for axis, (name, params) in axes.items():
        new[axis] = {name: params}
    new.setdefault("regularizers", {})
    return new


# ---------------------------------------------------------------------- listing
def describe_variants() -> list[dict]:
    """Every named variant with its summary, reference, the axes it sets and the capabilities it provides."""
    out = []
    for name in VARIANTS:
        summary, reference = doc_summary(VARIANTS[name])
        cfg = resolve_config(name, input_shape=(1, 28, 28))
        axes = {axis: next(iter(cfg[axis])) for axis in SPEC_AXES}  # the ingredients' names
        axes["regularizers"] = sorted(cfg["regularizers"])
        specs = {axis: cfg[axis] for axis in (*SPEC_AXES, "regularizers")}  # with their parameters
        out.append({"name": name, "summary": summary, "reference": reference, "axes": axes, "specs": specs,
                    "latent_dim": cfg["latent_dim"], "provides": sorted(capabilities(cfg))})
    return out


list_variants = describe_variants


def assemble(cfg: dict) -> Autoencoder:
    """Construct the modules of a configuration (resolve_config's, or a saved one of any release).

    The config is migrated (migrate_config) and checked first. The model is then laid out on the
    meta device (shapes only, no memory) and its parameter count checked against the memory budget
    (aekit.memory_budget): a configuration that would need more, e.g. a first layer over an
    8192 x 8192 image, is refused before a byte is allocated."""
    cfg = check_config(migrate_config(cfg))
    if torch.get_default_device().type != "meta":
        with torch.device("meta"):
            probe = _construct(cfg)
        check_model_size(probe, cfg)
    return _construct(cfg)


def check_model_size(model: torch.nn.Module, cfg: dict) -> None:
    """ConfigError when training the model (weights, gradients, two Adam moments: 4 copies) exceeds the budget."""
    from .memory_budget import check_budget, human

    n_params = sum(p.numel() for p in model.parameters())
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    check_budget(4 * n_bytes, error=ConfigError,
                 what=f"a model of {n_params:,} parameters ({human(n_bytes)} of weights; training keeps weights, "
                      f"gradients and two optimizer moments) for inputs of shape {tuple(cfg['input_shape'])}",
                 hint="downscale images with --image-size (image_size=), or choose a narrower --hidden / "
                      "--channels / --conv-hidden")


def _construct(cfg: dict) -> Autoencoder:
    shape = tuple(cfg["input_shape"])
    k = int(cfg.get("num_classes") or 0)  # conditional: the one-hot label joins h and z (conditioning.py)
    backbone = BACKBONES.create(cfg["backbone"], input_shape=shape, latent_dim=cfg["latent_dim"] + k)
    bottleneck = BOTTLENECKS.create(cfg["bottleneck"], in_features=backbone.encoder.out_features + k,
                                    latent_dim=cfg["latent_dim"])
    provided = capabilities(cfg)
    regularizers = {name: _regularizer(name, params, shape, cfg["latent_dim"])
                    for name, params in cfg["regularizers"].items()}
    for reg in regularizers.values():
        reg.configure(provided)
    return Autoencoder(
        input_shape=shape,
        corruption=CORRUPTIONS.create(cfg["corruption"]),
        encoder=backbone.encoder,
        bottleneck=bottleneck,
        decoder=backbone.decoder,
        likelihood=LIKELIHOODS.create(cfg["likelihood"]),
        regularizers=regularizers,
        config=cfg,
        capabilities=provided,
    )


def _regularizer(name: str, params: dict, shape: tuple[int, ...], latent_dim: int):
    """A regularizer, given the input shape (learned pseudo-inputs, aekit.axes.priors) and the code width
    (a discriminator on codes, aekit.axes.adversarial) when it takes them."""
    import inspect

    takes = inspect.signature(REGULARIZERS.get(name).__init__).parameters
    structural = {k: v for k, v in (("input_shape", shape), ("latent_dim", latent_dim)) if k in takes}
    return REGULARIZERS.create({name: params}, **structural)


def build(variant: str | None = None, *, input_shape, latent_dim: int | None = None, hidden=None,
          backbone=None, bottleneck=None, corruption=None, likelihood=None, regularizers=None,
          num_classes: int | None = None, init: str | None = None, seed: int | None = None,
          **legacy) -> Autoencoder:
    """Build an Autoencoder from a variant name and/or explicit axes; see the module docstring.

    backbone, bottleneck, corruption, likelihood: a spec ("name", {"name": {param: value}} or "name:k=v,...").
    regularizers: {name: {param: value}} (None as the parameters removes a recipe's regularizer) or a list of specs.
    latent_dim, hidden: short forms (hidden: the fully connected widths of the mlp or conv backbone).
    legacy: the first release's flat keywords (channels, conv_hidden, activation, skips, code_activation,
    quantization_noise, sigma, learn_sigma, beta), translated into specs with a DeprecationWarning.
    seed, when given, makes the initial weights reproducible without touching the global RNG.
    init='pca' (the 'linear' recipe's default) starts a linear model at PCA's solution on the data it is
    first trained on (aekit.pca_init); 'random' keeps the random weights.
    """
    given = {k: v for k, v in dict(latent_dim=latent_dim, hidden=hidden, backbone=backbone, bottleneck=bottleneck,
                                   corruption=corruption, likelihood=likelihood, regularizers=regularizers,
                                   num_classes=num_classes, init=init, **legacy).items() if v is not None}
    cfg = resolve_config(variant, input_shape=input_shape, **copy.deepcopy(given))
    cfg["seed"] = seed
    if seed is None:
        model = assemble(cfg)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = assemble(cfg)
    model.config["kwargs"] = _jsonable(given)
    return model


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj
