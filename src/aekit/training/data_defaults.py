"""Data-aware defaults: what `aekit train` (aekit.training.train_run) picks from the data, and why.

    chosen = choose_defaults(ds, variant="ae", model={...user's build keywords...}, standardize=None)
    chosen.standardize        # bool: standardize the table's columns
    chosen.model              # build keywords to add (the user's own keywords always win)
    chosen.reasons            # [{"key", "value", "reason"}, ...]: printed and recorded in run.json

Each rule applies only to what the user did not set (a short form, an axis spec or a shorthand
that folds into one, see cli/options.build_kwargs; `--standardize` / `--no-standardize`):

  standardize  tables (vector data not from an image source) are standardized: each column to
               mean 0, std 1 on the training split; the scaler is the run's recorded dataset
               scale/offset, applied by every command (training.runs.run_data).
  backbone     images (C, H, W): 'ae' gets the conv backbone (the 'conv' recipe's channels,
               Masci et al. 2011); 'dae' gets the U-Net (channels [16, 32], Ronneberger et al. 2015).
               Recipes that name a published architecture (linear, deep, cae, sparse, VAE family)
               keep theirs.
  corruption   'dae' on images: gaussian_blind:max_std=0.55, one std per image drawn from
               U[0, 0.55] (Zhang et al. 2017, DnCNN-B): one model for every noise level.
  denoise_ensemble  'dae' on images with that U-Net: after training, the run's validation images, corrupted
               by its own training noise, are denoised in one pass and as the mean over the 8 turned and
               flipped copies of each image (the geometric self-ensemble of Timofte et al. 2016,
               training/dihedral.py); run.json records the lower-error choice as "denoise": {"ensemble": ...}
               and 'aekit denoise' follows it (--ensemble / --no-ensemble override). Measured in
               benchmarks/results/denoising_ensemble_validation.json (validation images only): on photographs
               the ensemble added 0.41 / 0.28 / 0.22 dB at sigma 0.1 / 0.3 / 0.5; on MNIST digits, which have an
               orientation, it added 0.08 dB at 0.1 and lost 0.37 / 0.74 dB at 0.3 / 0.5: no fixed answer
               fits both, so each run measures its own. Training on the 8 turns as well (--augment dihedral)
               added 0.09 dB at 0.1 and lost 0.05 / 0.12 dB at 0.3 / 0.5 on the photographs: not a default.
  likelihood   'dae' on images: gaussian (the mean-squared error, PSNR-optimal). Other data bounded
               in [0, 1]: bernoulli, a sigmoid mean that cannot leave [0, 1] (the cross-entropy of
               Bengio et al. 2007); not for 'linear', whose optimum is PCA's under a gaussian.
  latent_dim   an undercomplete model's code is at most max(1, d // 2) for d inputs, so it cannot
               copy its input (Goodfellow et al. 2016, ch. 14.1); the overcomplete recipes (sparse_l1,
               sparse_kl, ksparse) keep theirs.
  hidden       mlp widths at most max(4 d, latent_dim): a layer wider than four times its input
               adds parameters without information to carry (the 4x expansion of Vaswani et al.
               2017's feed-forward blocks); on a 21-column table 256 -> 84.
  epochs       at least MIN_STEPS (1,000) optimizer steps: on small data the default 10 epochs are
               a few dozen steps (a 128-row table: 10), too few for any model to converge; the
               epochs rise to ceil(1000 / steps per epoch), at most MAX_EPOCHS (2,000). Large data
               (10 epochs >= 1,000 steps, e.g. MNIST's 469 steps per epoch) keeps the 10.
               'dae' on images: at least DENOISER_MIN_STEPS (5,000): chosen on validation patches of the
               training photographs of benchmarks/denoising_defaults.py (PSNR at sigma 0.1 / 0.3 / 0.5:
               30.1 / 26.1 / 23.8 dB after 1,000 steps, 31.6 / 27.2 / 24.9 after 5,000; BM3D 31.0 / 24.2 /
               21.4 there); about 19 min on one thread for 4,000 images of 32 x 32.

aekit.build has no data and stays explicit; the sklearn estimators apply the table rules themselves
(standardized by default, `code_width` and `mlp_widths` below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DAE_IMAGE_BACKBONE = {"unet": {"channels": [16, 32]}}
DAE_IMAGE_CORRUPTION = {"gaussian_blind": {"max_std": 0.55}}
CONV_VARIANTS = ("ae",)  # generic recipes whose mlp is no choice of a paper: images get convolutions
OVERCOMPLETE = ("sparse_l1", "sparse_kl", "ksparse")  # codes wider than the input on purpose
GAUSSIAN_ONLY = ("linear", "dae")  # linear: PCA's optimum; dae on images: PSNR (checked below)
WIDTH_RATIO = 4
MIN_STEPS = 1000  # optimizer steps a default run takes at least
DENOISER_MIN_STEPS = 5000  # ... and an image denoiser ('dae' on images), which keeps improving far longer
MAX_EPOCHS = 2000  # ... but never more epochs than this (a few rows per batch)


def code_width(d: int, recipe: int) -> int:
    """The code of an undercomplete model on d inputs: min(recipe, max(1, d // 2))."""
    return min(int(recipe), max(1, int(d) // 2))


def mlp_widths(d: int, recipe: list[int], latent_dim: int) -> list[int]:
    """The recipe's mlp widths, each at most max(4 d, latent_dim)."""
    cap = max(WIDTH_RATIO * int(d), int(latent_dim))
    return [min(int(h), cap) for h in recipe]


@dataclass
class Defaults:
    """What the data chose: standardize, build keywords to add, and one reason per choice."""

    standardize: bool = False
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # TrainConfig keywords to add (epochs)
    run: dict = field(default_factory=dict)  # run.json entries for the commands that use the run ({"denoise": ...})
    reasons: list = field(default_factory=list)

    def add(self, key: str, value, reason: str) -> None:
        self.reasons.append({"key": key, "value": value, "reason": reason})

    def lines(self) -> list[str]:
        """'key=value: reason' per choice (what `aekit train` prints)."""
        return [f"{r['key']}={_text(r['value'])}: {r['reason']}" for r in self.reasons]


def _text(value) -> str:
    if isinstance(value, dict) and len(value) == 1:
        (name, params), = value.items()
        return name + (":" + ",".join(f"{k}={_text(v)}" for k, v in params.items()) if params else "")
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def default_epochs(n_train: int, *, batch_size: int, epochs: int, min_steps: int | None = None) -> int:
    """The epochs a default run takes on n_train rows: `epochs`, or enough for min_steps optimizer steps
    (default MIN_STEPS; at most MAX_EPOCHS) when `epochs` would take fewer. The trainer's last batch may be
    short, not dropped."""
    min_steps = MIN_STEPS if min_steps is None else int(min_steps)
    per_epoch = max(1, math.ceil(int(n_train) / max(1, int(batch_size))))
    if int(epochs) * per_epoch >= min_steps:
        return int(epochs)
    return max(int(epochs), min(MAX_EPOCHS, math.ceil(min_steps / per_epoch)))


def _recipe(variant: str | None) -> dict:
    from ..build import DEFAULTS
    from ..ingredients import load_all
    from ..registry import VARIANTS

    load_all()
    out = {k: v for k, v in DEFAULTS.items()}
    if variant is not None and variant in VARIANTS:
        out.update(VARIANTS[variant]())
    return out


def fc_widths(backbone) -> list[int] | None:
    """The widths of a fully connected backbone on vectors (the mlp's hidden), None for any other backbone.

    Read from capabilities and the signature, not the name: no 'image_input' requirement, no
    'conv_features', and a 'hidden' parameter."""
    from ..build import axis_spec
    from ..registry import BACKBONES

    name, params = axis_spec("backbone", backbone)
    if "image_input" in BACKBONES.requirements(name, params) or "conv_features" in BACKBONES.capabilities(name, params):
        return None
    hidden = [p for p in BACKBONES.params(name) if p.name == "hidden"]
    if not hidden:
        return None
    return [int(h) for h in params.get("hidden", hidden[0].default)]


def _gaussian_mean(likelihood) -> bool:
    """The likelihood is a Gaussian on the mean (its capability 'gaussian_mean'): unbounded outputs."""
    from ..build import axis_spec
    from ..registry import LIKELIHOODS

    name, params = axis_spec("likelihood", likelihood)
    return "gaussian_mean" in LIKELIHOODS.capabilities(name, params)


def is_table(ds) -> bool:
    """Vector data not from an image source (a flattened image is no table)."""
    return ds.kind == "table" and len(ds.shape) == 1 and ds.image_shape is None


def choose_defaults(ds, *, variant: str | None, model: dict, standardize: bool | None,
                    train: dict | None = None) -> Defaults:
    """The defaults for data `ds` (an aekit.data.Dataset, loaded without standardizing) given the user's
    variant, build keywords `model` (only those given), standardize (None: not given) and the training
    options `train` (only those given; None: the epochs rule is not applied)."""
    out = Defaults(standardize=bool(standardize))
    shape = tuple(ds.shape)
    d = math.prod(shape)
    if standardize is None and is_table(ds):
        out.standardize = True
        out.add("standardize", True, f"a table of {d} columns: each standardized to mean 0, std 1 on the training "
                                     "split (the scaler is saved with the run; --no-standardize: off)")
    recipe = _recipe(variant)
    given = {k for k, v in model.items() if v is not None}
    image = len(shape) == 3
    rows = ds.train  # (n, *shape)
    bounded = (not out.standardize and rows.numel() > 0 and float(rows.min()) >= 0.0 and float(rows.max()) <= 1.0)

    backbone = recipe.get("backbone")
    if image and not given & {"backbone", "hidden"}:
        if variant == "dae":
            backbone = DAE_IMAGE_BACKBONE
            out.model["backbone"] = backbone
            out.add("backbone", backbone, f"images {shape}: a U-Net (skips carry the detail a denoiser must keep)")
        elif variant in CONV_VARIANTS and fc_widths(backbone) is not None:
            backbone = _recipe("conv")["backbone"]
            out.model["backbone"] = backbone
            out.add("backbone", backbone, f"images {shape}: convolutions (the 'conv' recipe's channels) instead of "
                                          "a fully connected network")
    if variant == "dae" and image and "corruption" not in given:
        spec = {"gaussian_blind": {**DAE_IMAGE_CORRUPTION["gaussian_blind"], "clip": bounded}}
        out.model["corruption"] = spec
        out.add("corruption", spec, "blind Gaussian noise, each image's std drawn from U[0, 0.55] (DnCNN-B): one "
                                    "model for every noise level" + (", clipped to [0, 1]" if bounded else ""))
    if "likelihood" not in given and _gaussian_mean(recipe.get("likelihood")):
        if variant == "dae" and image:
            out.model["likelihood"] = {"gaussian": {}}
            out.add("likelihood", {"gaussian": {}}, "the mean-squared error, whose optimum is the PSNR-optimal "
                                                    "estimate of the clean image")
        elif bounded and variant not in GAUSSIAN_ONLY:
            out.model["likelihood"] = {"bernoulli": {}}
            out.add("likelihood", {"bernoulli": {}}, "data in [0, 1]: a sigmoid mean that stays in [0, 1] "
                                                     "(cross-entropy)")
    if "latent_dim" not in given and variant not in OVERCOMPLETE:
        latent = code_width(d, recipe["latent_dim"])
        if latent != recipe["latent_dim"]:
            out.model["latent_dim"] = latent
            out.add("latent_dim", latent, f"{d} inputs: a code of at most d // 2 = {latent} units cannot copy "
                                          f"its input (the recipe's {recipe['latent_dim']} would)")
    latent = out.model.get("latent_dim", model.get("latent_dim") or recipe["latent_dim"])
    widths = fc_widths(backbone)
    if not image and not given & {"backbone", "hidden"} and widths is not None:
        chosen = mlp_widths(d, widths, latent)
        if chosen != widths:
            out.model["hidden"] = chosen
            out.add("hidden", chosen, f"{d} inputs: no hidden layer wider than max(4 * {d}, latent_dim) = "
                                      f"{max(WIDTH_RATIO * d, latent)}")
    if variant == "dae" and image and out.model.get("backbone") == DAE_IMAGE_BACKBONE:  # the validated pairing
        out.run["denoise"] = {"choose": "validation", "ensemble": None}
        out.add("denoise_ensemble", "validation", "images: after training, the run's validation images (with its "
                                                  "training noise) decide whether 'aekit denoise' averages the outputs "
                                                  "for the 8 turned and flipped copies of each image (the geometric "
                                                  "self-ensemble of Timofte et al. 2016): it helps images without a "
                                                  "preferred orientation (photographs) and hurts oriented ones (digits)")
    if train is not None and train.get("epochs") is None and train.get("max_time") is None:
        from .trainer import TrainConfig

        batch = int(train.get("batch_size") or TrainConfig.batch_size)
        train_rows = int(rows.shape[0])
        denoiser = variant == "dae" and image
        min_steps = DENOISER_MIN_STEPS if denoiser else MIN_STEPS
        epochs = default_epochs(train_rows, batch_size=batch, epochs=TrainConfig.epochs, min_steps=min_steps)
        if epochs != TrainConfig.epochs:
            out.train["epochs"] = epochs
            per_epoch = max(1, math.ceil(train_rows / batch))
            why = (" (an image denoiser keeps improving long after 1,000 steps: on held-out patches of the training "
                   "photographs, sigma 0.1, 30.1 dB at 1,000 steps, 31.6 dB at 5,000)" if denoiser else "")
            out.add("epochs", epochs, f"{train_rows} training rows at batch {batch}: {per_epoch} steps per epoch, so "
                                      f"{epochs} epochs for about {min(min_steps, epochs * per_epoch)} optimizer "
                                      f"steps (the default {TrainConfig.epochs} would take {TrainConfig.epochs * per_epoch})"
                                      + why)
    return out


__all__ = ["Defaults", "choose_defaults", "code_width", "default_epochs", "is_table", "mlp_widths"]
