"""cli/options.py: build_kwargs (a command line -> the second-edition build() keywords), the shorthands
and their conflicts, the registry-generated ingredient options, help defaults from the library, `aekit list`.

The registries are filled by a test registry (monkeypatched) so these tests do not depend on which
ingredients are registered; the adapter to today's build() is tested at the end (delete with it).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re

import pytest

from aekit.cli import main, make_parser
from aekit.cli.options import build_kwargs, model_defaults, train_defaults
from aekit.errors import ConfigError
from aekit.ingredients import load_all
from aekit.registry import AXES


# ---------------------------------------------------------------------- a test registry
class MLP:
    """Multilayer perceptron encoder and mirrored decoder.
    Rumelhart, Hinton & Williams 1986."""
    provides = frozenset({"code"})

    def __init__(self, *, input_shape, latent_dim, activation: str = "relu", skips: bool = True):
        pass


class Conv:
    """Strided convolutions down, transposed convolutions up.
    Masci et al. 2011."""
    provides = frozenset({"conv_features"})

    def __init__(self, *, input_shape, latent_dim, channels: list[int] = (32, 64), hidden: list[int] = (),
                 activation: str = "relu"):
        pass


class Deterministic:
    """A linear map to the code, then an activation.
    Rumelhart et al. 1986."""
    provides = frozenset({"code"})

    def __init__(self, *, in_features, latent_dim, activation: str = "none", noise_bits: int | None = None):
        pass


class Gaussian:
    """Diagonal Gaussian posterior, reparameterised.
    Kingma & Welling 2014."""
    provides = frozenset({"code", "posterior"})

    def __init__(self, *, in_features, latent_dim):
        pass


class TopK:
    """Keep the k largest pre-activations.
    Makhzani & Frey 2013, k-sparse autoencoders."""
    provides = frozenset({"code", "sparse_code"})

    def __init__(self, *, in_features, latent_dim, k: int):
        pass


class NoCorruption:
    """The identity."""

    def __init__(self):
        pass


class GaussianNoise:
    """Additive Gaussian noise.
    Vincent et al. 2010."""

    def __init__(self, *, std: float = 0.1):
        pass


class Masking:
    """Zero a random share p of the inputs.
    Vincent et al. 2008."""

    def __init__(self, *, p: float = 0.25):
        pass


class GaussianLik:
    """Gaussian decoder likelihood.
    Bishop 2006."""

    def __init__(self, *, sigma: float = 1.0, learn_sigma: bool = False):
        pass


class Bernoulli:
    """Bernoulli decoder likelihood.
    Kingma & Welling 2014."""

    def __init__(self):
        pass


class KLPrior:
    """KL(q(z|x) || N(0, I)), optionally annealed to a capacity.
    Burgess et al. 2018."""
    requires = frozenset({"posterior"})

    def __init__(self, *, beta: float = 1.0, capacity: float = 0.0, capacity_steps: int = 0, capacity_start: float = 0.0):
        pass


class KLSparsity:
    """KL sparsity of mean activations.
    Ng 2011."""

    def __init__(self, *, rho: float = 0.05, weight: float = 3.0):
        pass


class L1:
    """L1 penalty on code activations.
    Ranzato et al. 2007."""

    def __init__(self, *, weight: float = 1e-3):
        pass


class Contractive:
    """Squared Frobenius norm of the encoder's Jacobian.
    Rifai et al. 2011."""

    def __init__(self, *, weight: float = 0.1, method: str = "auto"):
        pass


TEST_REGISTRY = {
    "backbone": {"mlp": MLP, "conv": Conv},
    "bottleneck": {"deterministic": Deterministic, "gaussian": Gaussian, "topk": TopK},
    "corruption": {"none": NoCorruption, "gaussian": GaussianNoise, "masking": Masking},
    "likelihood": {"gaussian": GaussianLik, "bernoulli": Bernoulli},
    "regularizer": {"kl_prior": KLPrior, "kl_sparsity": KLSparsity, "l1_activity": L1, "contractive": Contractive},
}


@pytest.fixture
def registry(monkeypatch):
    load_all()  # the real modules registered what they register, before the entries are swapped
    for axis, entries in TEST_REGISTRY.items():
        monkeypatch.setattr(AXES[axis], "_entries", dict(entries))
    return AXES


def kwargs_of(*argv: str) -> dict:
    args = make_parser().parse_args(["train", *argv])
    return build_kwargs(args)


API_KEYWORDS = set(inspect.signature(lambda *, latent_dim=None, hidden=None, backbone=None, bottleneck=None,
                                     corruption=None, likelihood=None, regularizers=None, num_classes=None: 0)
                   .parameters)  # the command line's share of build()'s keywords (/work/api-15.md)


# ---------------------------------------------------------------------- specs
def test_nothing_given_is_no_keyword(registry):
    assert kwargs_of("ae") == {}


def test_short_forms_pass_through(registry):
    assert kwargs_of("ae", "--latent-dim", "4", "--hidden", "8,4", "--num-classes", "3") == {
        "latent_dim": 4, "hidden": [8, 4], "num_classes": 3}


def test_spec_strings_are_checked_and_typed_by_the_registry(registry):
    out = kwargs_of("ae", "--bottleneck", "topk:k=16", "--corruption", "masking:p=0.3", "--likelihood", "bernoulli",
                    "--backbone", "conv:channels=4 8")
    assert out == {"bottleneck": {"topk": {"k": 16}}, "corruption": {"masking": {"p": 0.3}},
                   "likelihood": {"bernoulli": {}}, "backbone": {"conv": {"channels": [4, 8]}}}
    assert set(out) <= API_KEYWORDS


@pytest.mark.parametrize("argv, message", [
    (["--bottleneck", "topq:k=3"], "Did you mean 'topk'"),
    (["--bottleneck", "topk"], "needs the parameter(s) k"),
    (["--bottleneck", "topk:k=many"], "must be an integer"),
    (["--bottleneck", "topk:kk=3"], "has no parameter 'kk'"),
    (["--reg", "kl_prior:beta"], "key=value"),
    (["--reg", "kl_pior:beta=2"], "Did you mean 'kl_prior'"),
])
def test_bad_specs_are_one_line_errors(registry, argv, message):
    with pytest.raises(ConfigError) as info:
        kwargs_of("ae", *argv)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_regularizer_specs_repeat_and_none_removes(registry):
    out = kwargs_of("vae", "--reg", "l1_activity:weight=0.01", "--reg", "contractive", "--reg", "kl_prior:none")
    assert out == {"regularizers": {"l1_activity": {"weight": 0.01}, "contractive": {}, "kl_prior": None}}
    with pytest.raises(ConfigError, match="given twice"):
        kwargs_of("ae", "--reg", "contractive", "--reg", "contractive:weight=1")


# ---------------------------------------------------------------------- shorthands
def test_shorthands_fold_into_the_recipes_ingredients(registry):
    # ae: deterministic code, gaussian likelihood, mlp backbone (the first release's recipe); conv: conv backbone
    assert kwargs_of("ae", "--code-activation", "sigmoid", "--quantization-noise", "6") == {
        "bottleneck": {"deterministic": {"activation": "sigmoid", "noise_bits": 6}}}
    assert kwargs_of("ae", "--sigma", "0.5", "--learn-sigma") == {
        "likelihood": {"gaussian": {"sigma": 0.5, "learn_sigma": True}}}
    assert kwargs_of("conv", "--channels", "4,8", "--conv-hidden", "16") == {
        "backbone": {"conv": {"channels": [4, 8], "hidden": [16]}}}
    assert kwargs_of("ae", "--activation", "tanh") == {"backbone": {"mlp": {"activation": "tanh"}}}


def test_shorthands_land_on_the_named_ingredient(registry):
    assert kwargs_of("ae", "--backbone", "conv", "--channels", "4,8") == {"backbone": {"conv": {"channels": [4, 8]}}}
    with pytest.raises(ConfigError, match="'mlp' has no parameter 'channels'"):  # mlp takes no channels
        kwargs_of("ae", "--channels", "4,8")
    with pytest.raises(ConfigError, match="'bernoulli' has no parameter 'learn_sigma'"):  # vae: bernoulli decoder
        kwargs_of("vae", "--learn-sigma")


def test_noise_shorthand_names_the_corruptions_level_parameter(registry):
    assert kwargs_of("ae", "--noise", "gaussian:0.3") == {"corruption": {"gaussian": {"std": 0.3}}}
    assert kwargs_of("ae", "--noise", "masking:0.5") == {"corruption": {"masking": {"p": 0.5}}}
    assert kwargs_of("dae", "--noise", "none") == {"corruption": {"none": {}}}
    with pytest.raises(ConfigError, match="Did you mean 'gaussian'"):
        kwargs_of("ae", "--noise", "gausian:0.1")


def test_regularizer_shorthands(registry):
    assert kwargs_of("vae", "--beta", "4") == {"regularizers": {"kl_prior": {"beta": 4.0}}}
    assert kwargs_of("beta_vae", "--gamma", "20", "--capacity", "5", "--capacity-steps", "10") == {
        "regularizers": {"kl_prior": {"beta": 20.0, "capacity": 5.0, "capacity_steps": 10}}}
    assert kwargs_of("annealed_vae", "--gamma", "30", "--capacity", "8", "--capacity-start", "4") == {
        "regularizers": {"kl_prior": {"beta": 30.0, "capacity": 8.0, "capacity_start": 4.0}}}
    assert kwargs_of("ae", "--sparsity", "l1:0.01", "--contractive", "0.5") == {
        "regularizers": {"l1_activity": {"weight": 0.01}, "contractive": {"weight": 0.5}}}
    # the KL sparsity penalty needs codes in (0, 1): a deterministic code gets a sigmoid unless told otherwise
    assert kwargs_of("ae", "--sparsity", "kl:0.05:2") == {
        "bottleneck": {"deterministic": {"activation": "sigmoid"}},
        "regularizers": {"kl_sparsity": {"rho": 0.05, "weight": 2.0}}}
    assert kwargs_of("vae", "--reg", "kl_prior:beta=4", "--capacity", "5") == {
        "regularizers": {"kl_prior": {"beta": 4.0, "capacity": 5.0}}}


@pytest.mark.parametrize("argv, message", [
    (["--code-activation", "sigmoid", "--bottleneck", "deterministic:activation=relu"], "disagree"),
    (["--noise", "gaussian:0.3", "--corruption", "masking:p=0.2"], "both set the corruption"),
    (["--noise", "gaussian:0.3", "--corruption", "gaussian:std=0.2"], "both set the corruption"),
    (["--beta", "4", "--reg", "kl_prior:beta=2"], "disagree on beta"),
    (["--beta", "4", "--gamma", "3"], "--gamma and --beta"),
    (["--contractive", "0.5", "--reg", "contractive:none"], "removes"),
    (["--sigma", "0.5", "--likelihood", "gaussian:sigma=2"], "disagree"),
])
def test_a_shorthand_and_a_conflicting_spec_are_a_one_line_error(registry, argv, message):
    with pytest.raises(ConfigError) as info:
        kwargs_of("ae", *argv)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_shorthand_that_agrees_with_the_spec_is_fine(registry):
    assert kwargs_of("ae", "--code-activation", "sigmoid", "--bottleneck", "deterministic:activation=sigmoid") == {
        "bottleneck": {"deterministic": {"activation": "sigmoid"}}}
    assert kwargs_of("ae", "--noise", "gaussian:0.3", "--corruption", "gaussian:std=0.3") == {
        "corruption": {"gaussian": {"std": 0.3}}}


def test_a_conflict_on_the_command_line_exits_2_with_one_line(registry, capsys):
    assert main(["train", "ae", "--data", "digits", "--out", "unused", "--beta", "4", "--reg", "kl_prior:beta=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aekit: error:") and "disagree" in err and "\n" not in err


# ---------------------------------------------------------------------- generated help
def test_ingredient_options_list_the_registered_names(registry):
    sub = make_parser()._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help or "" for a in sub._actions}
    assert "deterministic, gaussian, topk" in helps["bottleneck"]
    assert "kl_prior, kl_sparsity, l1_activity, contractive" in helps["reg"]
    assert "none, gaussian, masking" in helps["corruption"]


def _parse_default(text: str, like):
    """A help's '(default: X)' as a value of the library default's type."""
    if isinstance(like, str):
        return text
    if text == "none":
        return None
    if isinstance(like, bool):
        return {"true": True, "false": False}[text]
    if isinstance(like, (list, tuple)):
        return [int(v) for v in text.split(",")]
    if isinstance(like, (int, float)) and not isinstance(like, bool):
        return type(like)(float(text)) if isinstance(like, float) else int(text)
    return text


DESCRIPTIVE = {"the run's own data", "the run's folder, else $AEKIT_DATA_DIR, else download", "the variant's"}


def test_every_default_in_train_help_is_the_librarys():
    from aekit.data import load_data
    from aekit.tasks.stacked.layerwise import fit_stacked
    from aekit.training.trainer import TrainConfig

    library = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    library |= {k: p.default for k, p in inspect.signature(load_data).parameters.items() if k == "val_fraction"}
    library |= {k: p.default for k, p in inspect.signature(fit_stacked).parameters.items()
                if k in ("layer_variant", "finetune", "head_epochs")}
    models = model_defaults()
    sub = make_parser()._subparsers._group_actions[0].choices["train"]
    seen = {}
    for action in sub._actions:
        found = re.findall(r"\(default: ([^)]*)\)", (action.help or "").replace("%%", "%"))
        assert len(found) <= 1, action.dest
        if not found or found[0] in DESCRIPTIVE:
            continue
        text = found[0]
        if text.startswith("the variant's; without one: "):
            expected = models[action.dest]
            text = text.removeprefix("the variant's; without one: ")
        else:
            assert action.dest in library, f"--{action.dest} shows a default the library does not define: {text!r}"
            expected = library[action.dest]
        got = _parse_default(text, expected)
        want = list(expected) if isinstance(expected, (list, tuple)) else expected
        assert got == want, (action.dest, got, want)
        seen[action.dest] = got
    # the defaults a user looks for are shown, and come from TrainConfig / build
    assert {"epochs", "batch_size", "lr", "warmup_fraction", "seed", "val_fraction", "latent_dim", "hidden"} <= set(seen)
    assert seen["lr"] == TrainConfig.lr and seen["epochs"] == train_defaults()["epochs"]
    # the printed help (wrapped by argparse) shows as many defaults as the options declare
    text = " ".join(sub.format_help().split())
    declared = sum(len(re.findall(r"\(default: ", a.help or "")) for a in sub._actions)
    assert text.count("(default: ") == declared


# ---------------------------------------------------------------------- aekit list
def test_list_shows_every_registered_ingredient_with_parameters_and_reference(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    sections = [line.split()[0] for line in out.splitlines() if "NAME[:key=value,...])" in line]
    assert sections == ["corruption", "backbone", "bottleneck", "regularizer", "likelihood"]
    assert "--reg NAME" in out and "--bottleneck NAME" in out
    topk = next(line for line in out.splitlines() if line.startswith("topk "))
    assert "k: int (required)" in topk and "Makhzani & Frey 2013" in topk and "sparse_code" in topk
    kl = next(line for line in out.splitlines() if line.startswith("kl_prior "))
    assert "beta: float = 1.0" in kl and "capacity_steps: int = 0" in kl and "posterior" in kl
    assert out.index("likelihood (") < out.index("\nvariant ")  # sections per axis, then the variants
    assert any(line.startswith("stacked ") for line in out.splitlines())


def test_list_json_has_ingredients_and_variants(capsys):
    from aekit.ingredients import load_all
    from aekit.registry import AXES

    load_all()
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"ingredients", "variants"}
    names = {axis: [e["name"] for e in entries] for axis, entries in data["ingredients"].items()}
    assert names == {axis: reg.names() for axis, reg in AXES.items()}
    topk = next(e for e in data["ingredients"]["bottleneck"] if e["name"] == "topk")
    assert topk["params"] == [{"name": "k", "type": "int", "default": None, "required": True}]
    assert topk["reference"].startswith("Makhzani & Frey 2013")
    assert topk["provides"] == ["code", "sparse_code"]


def test_every_commands_shown_default_is_its_parsers_default():
    """Outside the generated groups, '(default: X)' shows the argparse default (via %(default)s), never a stale literal."""
    import argparse

    root = make_parser()
    stale = []
    for name, sub in root._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if action.default in (None, argparse.SUPPRESS) or isinstance(action.default, bool) or not action.help:
                continue
            shown = re.findall(r"\(default: ([^)]*)\)", action.help % {"default": action.default}
                               if "%(default)" in action.help else action.help.replace("%%", "%"))
            value = (",".join(map(str, action.default)) if isinstance(action.default, list) else str(action.default))
            for text in shown:  # the value, maybe followed by '; a note' or ', a note'
                if not re.fullmatch(rf"{re.escape(value)}([;,] .*)?", text):
                    stale.append((name, action.dest, text, action.default))
    assert not stale, stale
