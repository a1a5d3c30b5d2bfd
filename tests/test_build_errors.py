"""Impossible models and bad checkpoints are refused with aekit's errors, and the message names
the parameter, what is allowed and what was given."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch

import aekit
from aekit.backbones import BACKBONES
from aekit.axes.bottlenecks import CODE_ACTIVATIONS
from aekit.axes.corruption import CORRUPTIONS
from aekit.axes.likelihoods import LIKELIHOODS
from aekit.axes.regularizers import REGULARIZERS

VEC = (10,)
IMG = (1, 8, 8)


def refused(*needles, **kwargs) -> str:
    """build(**kwargs) must raise ConfigError whose message contains every needle."""
    variant = kwargs.pop("variant", None)
    with pytest.raises(aekit.ConfigError) as info:
        aekit.build(variant, **kwargs)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} missing from: {msg}"
    return msg


def test_config_error_is_a_value_error():
    assert issubclass(aekit.ConfigError, ValueError) and issubclass(aekit.ConfigError, aekit.AekitError)


# ----------------------------------------------------------------------------- impossible mixes
def test_kl_prior_needs_a_gaussian_bottleneck():
    refused("kl_prior", "bottleneck", "'gaussian'", "'deterministic'",
            input_shape=VEC, regularizers={"kl_prior": {"beta": 1.0}})
    refused("kl_prior", "'gaussian'", "'deterministic'", variant="vae", input_shape=VEC, bottleneck="deterministic")


@pytest.mark.parametrize("act", ["relu", "none", "tanh"])
def test_kl_sparsity_needs_sigmoid_codes(act):
    refused("kl_sparsity", "'bounded_code'", "activation='sigmoid'", f"activation={act!r}", variant="sparse_kl",
            input_shape=VEC, code_activation=act)
    refused("kl_sparsity", "'bounded_code'", "activation='sigmoid'", variant="sparse_kl", input_shape=VEC,
            bottleneck={"deterministic": {"activation": act}})


def test_kl_sparsity_refuses_gaussian_bottleneck():
    refused("kl_sparsity", "'bounded_code'", "bottleneck 'gaussian'", variant="sparse_kl", input_shape=VEC,
            bottleneck="gaussian")
    # the first release's flat keyword: sigmoid codes are refused with a gaussian bottleneck
    refused("code_activation", "'sigmoid'", variant="sparse_kl", input_shape=VEC, bottleneck="gaussian",
            code_activation="sigmoid")


def test_contractive_closed_form_needs_one_sigmoid_layer():
    refused("contractive", "method='closed_form'", "'linear_backbone'", "hidden=[8]", "backbone 'mlp' with hidden=[]",
            variant="cae", input_shape=VEC, hidden=[8], regularizers={"contractive": {"method": "closed_form"}})
    refused("closed_form", "'sigmoid_code'", "activation='tanh'", variant="cae", input_shape=VEC,
            bottleneck={"deterministic": {"activation": "tanh"}}, regularizers={"contractive": {"method": "closed_form"}})
    refused("closed_form", "'linear_backbone'", "backbone 'conv'", variant="cae", input_shape=IMG, backbone="conv",
            regularizers={"contractive": {"method": "closed_form"}})
    # the same recipe with the defaults builds
    assert aekit.build("cae", input_shape=VEC, regularizers={"contractive": {"method": "closed_form"}})


@pytest.mark.parametrize("backbone", ["conv", "unet"])
def test_image_backbones_refuse_vectors(backbone):
    refused("backbone", repr(backbone), "(12,)", "'mlp'", input_shape=(12,), backbone=backbone)
    refused("backbone", repr(backbone), variant="conv", input_shape=(12,), backbone=backbone)


def test_gaussian_bottleneck_refuses_code_activation():
    refused("code_activation", "'none'", "'sigmoid'", input_shape=VEC, bottleneck="gaussian",
            code_activation="sigmoid")


def test_learn_sigma_refused_for_bernoulli():
    refused("learn_sigma", "bernoulli", variant="vae", input_shape=VEC, learn_sigma=True)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("inf")])
def test_bad_sigma(sigma):
    refused("sigma", repr(sigma), input_shape=VEC, sigma=sigma)


# ----------------------------------------------------------------------------- unknown names
def test_unknown_variant_suggests_the_closest():
    msg = refused("variant", "'vea'", "Did you mean 'vae'?", variant="vea", input_shape=VEC)
    for name in aekit.VARIANTS:
        assert repr(name) in msg
    with pytest.raises(aekit.ConfigError, match="Did you mean 'beta_vae'"):
        aekit.build("betavae", input_shape=VEC)


@pytest.mark.parametrize("key,value,allowed", [
    ("backbone", "cnn", BACKBONES),
    ("likelihood", "poisson", LIKELIHOODS),
    ("code_activation", "softplus", CODE_ACTIVATIONS),
    ("bottleneck", "wavelet", ("deterministic", "gaussian", "vq", "fsq")),
    ("activation", "swish", ("relu", "gelu", "identity")),
])
def test_unknown_axis_value(key, value, allowed):
    msg = refused(key, repr(value), input_shape=IMG, **{key: value})
    for name in allowed:
        assert repr(name) in msg, msg


@pytest.mark.parametrize("spec", ["blur:0.3", "maskign:0.2", {"kind": "blur", "level": 0.1}])
def test_unknown_corruption(spec):
    msg = refused("corruption", "blur" if "blur" in str(spec) else "maskign", input_shape=VEC, corruption=spec)
    for name in CORRUPTIONS:
        assert repr(name) in msg, msg


def test_misspelled_corruption_suggests_the_closest():
    refused("Did you mean 'masking'?", input_shape=VEC, corruption="maskign:0.2")


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "8"])
def test_bad_latent_dim(value):
    refused("latent_dim", repr(value), "positive integer", input_shape=VEC, latent_dim=value)


@pytest.mark.parametrize("shape", [(), (0, 4), (1, 2, 3, 4), ("a",), (3, -1, 4)])
def test_bad_input_shape(shape):
    refused("input_shape", input_shape=shape)


@pytest.mark.parametrize("spec,needles", [
    ("masking:1.5", ["masking", "[0, 1]", "1.5"]),
    ("masking:-0.1", ["masking", "[0, 1]", "-0.1"]),
    ("salt_and_pepper:2", ["salt_and_pepper", "[0, 1]", "2.0"]),
    ("masking:nan", ["masking", "[0, 1]", "nan"]),
    ("gaussian:-0.3", ["gaussian", ">= 0", "-0.3"]),
    ("gaussian:abc", ["level", "'abc'"]),
    ("gaussian", ["level", "gaussian:0.3"]),
    ({"kind": "masking", "level": 1.2}, ["masking", "[0, 1]", "1.2"]),
    ({"kind": "masking", "strength": 0.2}, ["kind", "level", "strength"]),
    (0.3, ["corruption", "0.3"]),
])
def test_bad_corruption_level(spec, needles):
    refused(*needles, input_shape=VEC, corruption=spec)


# ----------------------------------------------------------------------------- regularizers
@pytest.mark.parametrize("variant", ["ae", "dae", "sparse_kl", "cae"])
def test_beta_on_a_model_without_kl_prior(variant):
    refused("beta", "kl_prior", "'vae'", variant=variant, input_shape=VEC, beta=4.0)


def test_beta_sets_the_kl_weight_where_it_applies():
    model = aekit.build("vae", input_shape=VEC, beta=3.0)
    assert model.regularizers["kl_prior"].beta == 3.0


def test_unknown_regularizer_name():
    msg = refused("regularizer", "'l2_activity'", "Did you mean 'l1_activity'?", input_shape=VEC,
                  regularizers={"l2_activity": {"weight": 1.0}})
    for name in REGULARIZERS:
        assert repr(name) in msg


@pytest.mark.parametrize("variant,regs,needles", [
    ("vae", {"kl_prior": {"gamma": 1.0}}, ["kl_prior", "gamma", "beta", "warmup_steps", "free_bits"]),
    ("sparse_kl", {"kl_sparsity": {"target": 0.1}}, ["kl_sparsity", "target", "rho"]),
    ("cae", {"contractive": {"samples": 3}}, ["contractive", "samples", "n_samples", "method"]),
    ("sparse_l1", {"l1_activity": {"rho": 0.1}}, ["l1_activity", "rho", "weight"]),
])
def test_unknown_regularizer_parameter(variant, regs, needles):
    refused(*needles, variant=variant, input_shape=VEC, regularizers=regs)


@pytest.mark.parametrize("variant,regs,needles", [
    ("sparse_kl", {"kl_sparsity": {"rho": 1.5}}, ["rho", "(0, 1)", "1.5"]),
    ("sparse_kl", {"kl_sparsity": {"rho": 0.0}}, ["rho", "(0, 1)", "0.0"]),
    ("sparse_l1", {"l1_activity": {"weight": -1.0}}, ["weight", ">= 0", "-1.0"]),
    ("cae", {"contractive": {"method": "approx"}}, ["method", "'exact'", "'hutchinson'", "'approx'"]),
    ("cae", {"contractive": {"n_samples": 0}}, ["n_samples", ">= 1", "0"]),
    ("vae", {"kl_prior": {"warmup_steps": -5}}, ["warmup_steps", ">= 0", "-5"]),
    ("vae", {"kl_prior": {"free_bits": -0.5}}, ["free_bits", ">= 0", "-0.5"]),
    ("vae", {"kl_prior": {"beta": float("nan")}}, ["weight", "nan"]),
])
def test_bad_regularizer_values(variant, regs, needles):
    refused(*needles, variant=variant, input_shape=VEC, regularizers=regs)


def test_regularizers_are_a_dict_or_a_list_of_specs():
    refused("regularizers", "dict", "list", input_shape=VEC, regularizers=3)
    model = aekit.build(input_shape=VEC, regularizers=["l1_activity:weight=0.5"])
    assert model.regularizers["l1_activity"].weight == 0.5 and model.config["regularizers"] == {"l1_activity": {"weight": 0.5}}


def test_unknown_build_keyword_in_resolve_config():
    with pytest.raises(aekit.ConfigError, match=r"latnet_dim.*Did you mean 'latent_dim'"):
        aekit.resolve_config("ae", input_shape=VEC, latnet_dim=3)


def test_none_removes_a_recipe_regularizer():
    model = aekit.build("sparse_l1", input_shape=VEC, regularizers={"l1_activity": None})
    assert "l1_activity" not in model.regularizers


# ----------------------------------------------------------------------------- checkpoints
def _saved(tmp_path: Path) -> Path:
    model = aekit.build("ae", input_shape=VEC, hidden=[8], latent_dim=3, seed=0)
    return aekit.save(model, tmp_path / "model")


def test_load_missing_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(aekit.CheckpointError, match="does not exist") as info:
        aekit.load(missing)
    assert str(missing) in str(info.value)


def test_load_missing_files(tmp_path):
    d = _saved(tmp_path)
    (d / "model.safetensors").unlink()
    with pytest.raises(aekit.CheckpointError, match="model.safetensors"):
        aekit.load(d)
    d2 = _saved(tmp_path / "b")
    (d2 / "config.json").unlink()
    with pytest.raises(aekit.CheckpointError, match="config.json"):
        aekit.load(d2)


def test_load_bad_config(tmp_path):
    d = _saved(tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(aekit.CheckpointError, match="JSON"):
        aekit.load(d)
    d2 = _saved(tmp_path / "b")
    meta = json.loads((d2 / "config.json").read_text())
    meta["format_version"] = 99
    (d2 / "config.json").write_text(json.dumps(meta))
    with pytest.raises(aekit.CheckpointError, match="format_version"):
        aekit.load(d2)


def _message_without(exc_info, path: Path) -> str:
    """The error message with the file's path removed (tmp_path holds the test's name)."""
    return str(exc_info.value).replace(str(path), "<path>")


@pytest.mark.parametrize("where", [3, 20, 0.5, 0.9, -1])
def test_load_corrupted_weights(tmp_path, where):
    d = _saved(tmp_path)
    path = d / "model.safetensors"
    data = bytearray(path.read_bytes())
    i = where if isinstance(where, int) else int(len(data) * where)  # header length, header, tensor data
    data[i] ^= 0xFF  # flip one byte
    path.write_bytes(bytes(data))
    with pytest.raises(aekit.CheckpointError) as info:
        aekit.load(d)
    assert "corrupted" in _message_without(info, path), str(info.value)


def test_load_truncated_weights(tmp_path):
    d = _saved(tmp_path)
    path = d / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(aekit.CheckpointError) as info:
        aekit.load(d)
    msg = _message_without(info, path)
    assert "corrupted" in msg or "truncated" in msg, str(info.value)


class _Tripwire:
    """Unpickling this object creates a file: proof that the loader ran pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_pickle_disguised_as_safetensors_is_never_unpickled(tmp_path):
    d = _saved(tmp_path)
    tripwire = tmp_path / "unpickled"
    payload = pickle.dumps({"encoder.net.0.weight": torch.zeros(8, 10), "evil": _Tripwire(tripwire)})
    pickle.loads(pickle.dumps(_Tripwire(tmp_path / "selftest")))  # the tripwire does fire when unpickled
    assert (tmp_path / "selftest").exists()

    path = d / "model.safetensors"
    path.write_bytes(payload)
    meta = json.loads((d / "config.json").read_text())
    if "weights_sha256" in meta:  # a file checksum recorded in the config: make it agree
        meta["weights_sha256"] = hashlib.sha256(payload).hexdigest()
        (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(aekit.CheckpointError) as info:
        aekit.load(d)
    assert "model.safetensors" in str(info.value)
    assert "SHA-256 does not match" not in str(info.value)  # the format check refused it, not a checksum
    assert not tripwire.exists()


def test_weights_of_another_model_are_refused(tmp_path):
    small = aekit.save(aekit.build("ae", input_shape=VEC, hidden=[8], latent_dim=3), tmp_path / "small")
    big = aekit.save(aekit.build("ae", input_shape=VEC, hidden=[8], latent_dim=4), tmp_path / "big")
    # the big model's file is internally consistent (its own checksum passes): only the shapes differ
    (small / "model.safetensors").write_bytes((big / "model.safetensors").read_bytes())
    with pytest.raises(aekit.CheckpointError, match="shape"):
        aekit.load(small)


# ----------------------------------------------------------------------------- regressions
def test_sample_refuses_a_bool_count():
    model = aekit.build("vae", input_shape=VEC, hidden=[8], latent_dim=2)
    with pytest.raises(aekit.ConfigError, match="n must be a positive integer"):
        model.sample(True)


def test_sample_from_a_float64_model():
    model = aekit.build("vae", input_shape=VEC, hidden=[8], latent_dim=2).double()
    assert model.sample(3).dtype == torch.float64


def test_resolve_config_refuses_bad_corruption_level():
    with pytest.raises(aekit.ConfigError, match=r"\[0, 1\]"):
        aekit.resolve_config("dae", input_shape=VEC, corruption="masking:1.5")
