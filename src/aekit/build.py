"""build(...): resolve a variant name and overrides into a checked, recorded Autoencoder.

    model = aekit.build("vae", input_shape=(1, 28, 28), latent_dim=2)
    model = aekit.build(input_shape=(1, 28, 28), backbone="conv", bottleneck="gaussian",
                        corruption="gaussian:0.3", regularizers={"kl_prior": {"beta": 4}})

Defaults < the variant's recipe < the caller's keywords. Impossible mixes (kl_prior without a
posterior, kl_sparsity on unbounded codes, a conv backbone on vectors) are refused with an error
naming the parameter, the allowed values and the value given. The resolved configuration is
stored on the model (model.config) and in checkpoints, so `aekit.load` rebuilds the same model.
"""

from __future__ import annotations

import copy
import math

import torch

from .backbones import BACKBONES, make_backbone
from .backbones.dense import check_widths
from .axes.bottlenecks import BOTTLENECKS, CODE_ACTIVATIONS, make_bottleneck
from .axes.corruption import Corruption, parse_corruption
from .errors import ConfigError, check_choice
from .axes.likelihoods import LIKELIHOODS, make_likelihood
from .model import Autoencoder
from .pca_init import INITS, pca_eligible
from .axes.regularizers import make_regularizer
from .variants import VARIANTS

FORMAT_VERSION = 1

DEFAULTS = {
    "latent_dim": 32,
    "backbone": "mlp",
    "hidden": [256],
    "channels": None,  # per backbone: conv [32, 64], unet [16, 32]
    "conv_hidden": [],  # conv: fully connected widths between the conv features and the code, e.g. [256, 256]
    "activation": "relu",
    "skips": True,
    "bottleneck": "deterministic",
    "code_activation": "none",
    "corruption": "none",
    "regularizers": {},
    "likelihood": "gaussian",
    "sigma": 1.0,
    "learn_sigma": False,
    "quantization_noise": None,  # bits: train deterministic codes with uniform noise (aekit.tasks.compression)
    "num_classes": None,  # K: a conditional model, the one-hot label an input to encoder and decoder
    "init": "random",  # random | pca: a linear model starts at PCA's solution on the training data (pca_init.py)
}
DEFAULT_CHANNELS = {"mlp": [], "conv": [32, 64], "unet": [16, 32]}


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


def resolve_config(variant: str | None = None, *, input_shape, **overrides) -> dict:
    """Defaults, then the recipe, then overrides (None means 'not given'); checked and JSON-able."""
    cfg = copy.deepcopy(DEFAULTS)
    if variant is not None:
        check_choice("variant", variant, VARIANTS)
        cfg.update(copy.deepcopy(VARIANTS[variant]()))
    beta = overrides.pop("beta", None)
    regs = overrides.pop("regularizers", None)
    for key, value in overrides.items():
        if key not in DEFAULTS:
            check_choice("build() keyword", key, list(DEFAULTS) + ["beta", "regularizers", "seed"])
        if value is not None:
            cfg[key] = value
    if cfg["backbone"] != "conv" and overrides.get("conv_hidden") is None:
        cfg["conv_hidden"] = []  # a conv recipe's fully connected layers go with its conv backbone
    if regs is not None:
        if not isinstance(regs, dict):
            raise ConfigError(f"regularizers must be a dict name -> parameters; got {regs!r}.")
        merged = dict(cfg["regularizers"])
        for name, params in regs.items():
            if params is None:
                merged.pop(name, None)  # None removes a recipe's regularizer
            else:
                merged[name] = {**merged.get(name, {}), **dict(params)}
        cfg["regularizers"] = merged
    if beta is not None:
        if "kl_prior" not in cfg["regularizers"]:
            raise ConfigError(
                f"beta weights the kl_prior regularizer, which this model does not have (got beta={beta!r}); use a variant "
                "'vae' or 'beta_vae', or regularizers={'kl_prior': {...}} with bottleneck='gaussian'."
            )
        cfg["regularizers"]["kl_prior"]["beta"] = float(beta)
    cfg["input_shape"] = list(_shape(input_shape))
    cfg["variant"] = variant
    if cfg["init"] == "pca" and overrides.get("init") is None and pca_eligible(cfg) is not None:
        cfg["init"] = "random"  # the recipe's PCA start, on a model the caller made nonlinear: a random start
    return _check(cfg)


def _check(cfg: dict) -> dict:
    check_choice("backbone", cfg["backbone"], BACKBONES)
    check_choice("bottleneck", cfg["bottleneck"], BOTTLENECKS)
    check_choice("code_activation", cfg["code_activation"], CODE_ACTIVATIONS)
    check_choice("likelihood", cfg["likelihood"], LIKELIHOODS)
    if not isinstance(cfg["latent_dim"], int) or isinstance(cfg["latent_dim"], bool) or cfg["latent_dim"] < 1:
        raise ConfigError(f"latent_dim must be a positive integer; got {cfg['latent_dim']!r}.")
    if cfg["bottleneck"] == "gaussian" and cfg["code_activation"] != "none":
        raise ConfigError(
            "code_activation must be 'none' (allowed: 'none') with bottleneck='gaussian'; "
            f"got code_activation={cfg['code_activation']!r}."
        )
    if cfg["backbone"] in ("conv", "unet") and len(cfg["input_shape"]) != 3:
        raise ConfigError(
            f"backbone={cfg['backbone']!r} needs image inputs (C, H, W); got input_shape={tuple(cfg['input_shape'])}. "
            "Allowed for vectors: 'mlp'."
        )
    cfg["hidden"] = [int(h) for h in cfg["hidden"]] if cfg["hidden"] is not None else []
    fc = check_widths(cfg.get("conv_hidden"), name="conv_hidden")
    if fc and cfg["backbone"] != "conv":
        raise ConfigError(f"conv_hidden applies to backbone='conv' only (allowed: 'conv'); got backbone={cfg['backbone']!r}. "
                          "Use hidden for the mlp backbone.")
    cfg["conv_hidden"] = [int(n) for n in fc]
    if cfg["channels"] is None or cfg["backbone"] == "mlp":
        cfg["channels"] = list(DEFAULT_CHANNELS[cfg["backbone"]]) if cfg["channels"] is None else list(cfg["channels"])
    cfg["corruption"] = parse_corruption(cfg["corruption"])
    Corruption(**cfg["corruption"])  # range-checks the level (std >= 0, probabilities in [0, 1])
    for name, params in cfg["regularizers"].items():
        reg = make_regularizer(name, dict(params))  # validates names and values
        reg.check(bottleneck=cfg["bottleneck"], code_activation=cfg["code_activation"],
                  backbone=cfg["backbone"], hidden=cfg["hidden"])
    qn = cfg.get("quantization_noise")
    if qn is not None:
        if isinstance(qn, bool) or not isinstance(qn, int) or not 1 <= qn <= 16:
            raise ConfigError(f"quantization_noise must be a number of bits from 1 to 16 (or None); got {qn!r}.")
        if cfg["bottleneck"] != "deterministic":
            raise ConfigError("quantization_noise applies to bottleneck='deterministic' only (allowed: 'deterministic'); "
                              f"got bottleneck={cfg['bottleneck']!r}.")
    k = cfg.get("num_classes")
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"num_classes must be a positive integer (the number of labels) or None; got {k!r}.")
        if cfg["bottleneck"] != "gaussian":
            raise ConfigError("num_classes (a conditional model) needs bottleneck='gaussian' (allowed: 'gaussian'), "
                              f"the conditional VAE; got bottleneck={cfg['bottleneck']!r}.")
    check_choice("init", cfg.setdefault("init", "random"), INITS)
    if cfg["init"] == "pca" and pca_eligible(cfg) is not None:
        raise ConfigError(f"{pca_eligible(cfg)}; use init='random' for this model.")
    if cfg["likelihood"] == "bernoulli" and cfg["learn_sigma"]:
        raise ConfigError("learn_sigma=True applies to likelihood='gaussian' only; got likelihood='bernoulli'.")
    return cfg


def assemble(cfg: dict) -> Autoencoder:
    """Construct the modules of a resolved configuration (see resolve_config).

    The model is first laid out on the meta device (shapes only, no memory) and its parameter
    count checked against the memory budget (aekit.memory_budget): a configuration that would need
    more, e.g. a first layer over an 8192 x 8192 image, is refused before a byte is allocated."""
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
    encoder, decoder = make_backbone(
        cfg["backbone"], input_shape=shape, latent_dim=cfg["latent_dim"] + k, hidden=cfg["hidden"],
        channels=cfg["channels"], activation=cfg["activation"], skips=cfg["skips"],
        conv_hidden=cfg.get("conv_hidden") or [],
    )
    bottleneck = make_bottleneck(cfg["bottleneck"], in_features=encoder.out_features + k,
                                 latent_dim=cfg["latent_dim"], activation=cfg["code_activation"],
                                 noise_bits=cfg.get("quantization_noise"))
    regularizers = {}
    for name, params in cfg["regularizers"].items():
        reg = make_regularizer(name, dict(params))
        reg.check(bottleneck=cfg["bottleneck"], code_activation=cfg["code_activation"],
                  backbone=cfg["backbone"], hidden=cfg["hidden"])
        regularizers[name] = reg
    return Autoencoder(
        input_shape=shape,
        corruption=Corruption(**cfg["corruption"]),
        encoder=encoder,
        bottleneck=bottleneck,
        decoder=decoder,
        likelihood=make_likelihood(cfg["likelihood"], sigma=cfg["sigma"], learn_sigma=cfg["learn_sigma"]),
        regularizers=regularizers,
        config=cfg,
    )


def build(variant: str | None = None, *, input_shape, latent_dim: int | None = None, backbone: str | None = None,
          hidden=None, channels=None, conv_hidden=None, activation: str | None = None, skips: bool | None = None,
          bottleneck: str | None = None, code_activation: str | None = None, corruption=None,
          regularizers: dict | None = None, likelihood: str | None = None, sigma: float | None = None,
          learn_sigma: bool | None = None, beta: float | None = None, quantization_noise: int | None = None,
          num_classes: int | None = None, init: str | None = None, seed: int | None = None) -> Autoencoder:
    """Build an Autoencoder from a variant name and/or explicit axes; see the module docstring.

    seed, when given, makes the initial weights reproducible without touching the global RNG.
    init='pca' (the 'linear' recipe's default) starts a linear model at PCA's solution on the data it is
    first trained on (aekit.pca_init); 'random' keeps the random weights.
    """
    given = {k: v for k, v in dict(latent_dim=latent_dim, backbone=backbone, hidden=hidden, channels=channels,
                                   conv_hidden=conv_hidden,
                                   activation=activation, skips=skips, bottleneck=bottleneck,
                                   code_activation=code_activation, corruption=corruption,
                                   regularizers=regularizers, likelihood=likelihood, sigma=sigma,
                                   learn_sigma=learn_sigma, beta=beta,
                                   quantization_noise=quantization_noise,
                                   num_classes=num_classes, init=init).items() if v is not None}
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
