"""build() with ingredient specs: the forms agree, legacy keywords translate with a warning, configs migrate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import aekit
from aekit.build import CONFIG_VERSION, migrate_config

V1 = Path(__file__).parent / "fixtures" / "v1"


def test_spec_forms_give_the_same_model_and_config():
    a = aekit.build(input_shape=(6,), latent_dim=2, bottleneck={"deterministic": {"activation": "sigmoid"}},
                    corruption={"masking": {"p": 0.25}}, regularizers={"kl_sparsity": {"rho": 0.1}}, seed=0)
    b = aekit.build(input_shape=(6,), latent_dim=2, bottleneck="deterministic:activation=sigmoid",
                    corruption="masking:0.25", regularizers=["kl_sparsity:rho=0.1"], seed=0)
    assert a.config["bottleneck"] == b.config["bottleneck"] == {"deterministic": {"activation": "sigmoid"}}
    assert a.config["corruption"] == b.config["corruption"] == {"masking": {"p": 0.25}}
    assert a.config["regularizers"] == b.config["regularizers"] == {"kl_sparsity": {"rho": 0.1}}
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_legacy_keywords_warn_and_translate_to_the_same_model():
    new = aekit.build("vae", input_shape=(1, 8, 8), latent_dim=2, seed=0,
                      backbone={"conv": {"channels": [4], "hidden": [8], "activation": "elu"}},
                      likelihood={"gaussian": {"sigma": 0.5}}, regularizers={"kl_prior": {"beta": 3.0}})
    with pytest.warns(DeprecationWarning, match="deprecated"):
        old = aekit.build("vae", input_shape=(1, 8, 8), latent_dim=2, seed=0, backbone="conv", channels=[4],
                          conv_hidden=[8], activation="elu", likelihood="gaussian", sigma=0.5, beta=3.0)
    for key in ("backbone", "bottleneck", "likelihood", "regularizers", "corruption"):
        assert old.config[key] == new.config[key], key
    assert all(torch.equal(v, old.state_dict()[k]) for k, v in new.state_dict().items())


def test_a_caller_axis_replaces_or_merges_the_recipe():
    # another ingredient: replaced with its own defaults; the same one: parameters merged
    assert aekit.resolve_config("vae", input_shape=(6,), backbone="mlp:activation=tanh")["backbone"] == \
        {"mlp": {"hidden": [512, 256], "activation": "tanh"}}
    assert aekit.resolve_config("annealed_vae", input_shape=(1, 8, 8), backbone="unet")["backbone"] == {"unet": {}}
    assert aekit.resolve_config("vae", input_shape=(6,), hidden=[7])["backbone"] == {"mlp": {"hidden": [7]}}
    with pytest.raises(aekit.ConfigError, match="hidden.*'conv', 'mlp'.*'unet'"):
        aekit.build("ae", input_shape=(1, 8, 8), backbone="unet", hidden=[8])


def test_unknown_parameters_name_the_ingredient_and_suggest():
    with pytest.raises(aekit.ConfigError, match=r"bottleneck 'deterministic' has no parameter 'activaton'.*Did you mean 'activation'"):
        aekit.build(input_shape=(6,), bottleneck={"deterministic": {"activaton": "relu"}})
    with pytest.raises(aekit.ConfigError, match=r"likelihood 'gaussian' parameter 'sigma' must be a number"):
        aekit.build(input_shape=(6,), likelihood="gaussian:sigma=big")


def test_first_release_config_migrates_to_specs_and_is_then_unchanged():
    old = json.loads((V1 / "sparse_kl" / "config.json").read_text())["config"]
    assert isinstance(old["bottleneck"], str)  # the first release's flat form
    new = migrate_config(old)
    assert new["config_version"] == CONFIG_VERSION
    assert new["bottleneck"] == {"deterministic": {"activation": "sigmoid"}}
    assert new["likelihood"] == {"gaussian": {"sigma": 1.0, "learn_sigma": False}}
    assert new["corruption"] == {"none": {}}
    assert not set(new) & {"code_activation", "sigma", "learn_sigma", "hidden", "channels", "quantization_noise"}
    assert migrate_config(new) == new
    model = aekit.load(V1 / "sparse_kl")
    assert model.config["bottleneck"] == new["bottleneck"] and model.provides("bounded_code")


def test_corruption_classes_and_shorthands():
    model = aekit.build("dae", input_shape=(6,), corruption="gaussian_clipped:0.3")
    assert model.config["corruption"] == {"gaussian_clipped": {"std": 0.3}}
    assert model.corruption.level == 0.3 and not model.corruption.is_identity
    assert aekit.build("ae", input_shape=(6,), corruption={"kind": "salt_and_pepper", "level": 0.1}).config[
        "corruption"] == {"salt_and_pepper": {"p": 0.1}}
    assert aekit.build("ae", input_shape=(6,)).corruption.is_identity


def test_model_capabilities():
    vae = aekit.build("vae", input_shape=(6,))
    assert vae.provides("posterior") and vae.provides("bounded_mean") and not vae.provides("bounded_code")
    ae = aekit.build("ae", input_shape=(6,))
    assert not ae.provides("posterior") and ae.provides("code") and ae.provides("fixed_sigma")
    unet = aekit.build("ae", input_shape=(1, 8, 8), backbone="unet:channels=4")
    assert unet.provides("skips") and unet.uses_skips
    assert not aekit.build("ae", input_shape=(1, 8, 8), backbone="unet:channels=4,skips=false").provides("skips")
