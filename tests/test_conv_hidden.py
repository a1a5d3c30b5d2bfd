"""conv_hidden: fully connected layers between the conv features and the code (conv backbone).

The beta-VAE papers' encoder is conv layers, then FC 256, FC 256, then the code; the decoder
mirrors it. Without conv_hidden the modules and state-dict keys are those of earlier runs, so
saved conv models still load.
"""

from __future__ import annotations

import json

import pytest
import torch

import aekit
from aekit.errors import ConfigError
from cli_helpers import cli


def test_layers_shapes_and_gradients():
    model = aekit.build("beta_vae", input_shape=(1, 16, 16), backbone="conv", channels=[4, 8], conv_hidden=[32, 24],
                        latent_dim=3, seed=0)
    widths = [m.out_features for m in model.encoder.fc if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 24] and model.encoder.out_features == 24
    assert model.encoder.fc[0].in_features == 8 * 4 * 4  # 16 -> 8 -> 4 with 8 channels
    dec = [(m.in_features, m.out_features) for m in model.decoder.project if isinstance(m, torch.nn.Linear)]
    assert dec == [(3, 24), (24, 32), (32, 8 * 4 * 4)]  # the mirror image
    x = torch.rand(5, 1, 16, 16)
    out = model(x)
    assert out.params.shape == x.shape
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_without_conv_hidden_the_state_dict_is_unchanged():
    model = aekit.build("ae", input_shape=(1, 8, 8), backbone="conv", channels=[4, 8], latent_dim=2, seed=0)
    keys = sorted(model.state_dict())
    assert not any(k.startswith("encoder.fc.") for k in keys)
    assert [k for k in keys if k.startswith("decoder.project.")] == ["decoder.project.0.bias", "decoder.project.0.weight"]
    assert model.config["backbone"] == {"conv": {"channels": [4, 8]}}


def test_save_load_round_trip_and_old_configs(tmp_path):
    model = aekit.build("vae", input_shape=(1, 8, 8), backbone="conv", channels=[4], conv_hidden=[16], latent_dim=2,
                        seed=0)
    aekit.save(model, tmp_path / "m")
    again = aekit.load(tmp_path / "m")
    assert again.config["backbone"]["conv"]["hidden"] == [16]
    model.eval(), again.eval()
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model.encode(x), again.encode(x))

    plain = aekit.build("ae", input_shape=(1, 8, 8), backbone="conv", channels=[4], latent_dim=2, seed=0)
    aekit.save(plain, tmp_path / "old")
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["config"] = {"variant": "ae", "input_shape": [1, 8, 8], "latent_dim": 2, "backbone": "conv", "channels": [4],
                     "hidden": [256], "activation": "relu", "skips": True, "bottleneck": "deterministic",
                     "code_activation": "none", "corruption": {"kind": "none", "level": 0.0}, "regularizers": {},
                     "likelihood": "gaussian", "sigma": 1.0, "learn_sigma": False, "quantization_noise": None,
                     "num_classes": None, "seed": 0}  # a run of the first release, saved before conv_hidden existed
    del cfg["config_sha256"]  # (and before config.json had a checksum)
    cfg_path.write_text(json.dumps(cfg))
    old = aekit.load(tmp_path / "old")
    assert old.config["backbone"] == {"conv": {"activation": "relu", "channels": [4]}}
    assert sorted(old.state_dict()) == sorted(plain.state_dict())


@pytest.mark.parametrize("kwargs, needles", [
    (dict(backbone="mlp", conv_hidden=[8]), ["conv_hidden", "backbone='conv'", "'mlp'"]),
    (dict(backbone="unet", conv_hidden=[8]), ["conv_hidden", "'unet'"]),
    (dict(backbone="conv", conv_hidden=[8, 0]), ["conv_hidden", "positive integers", "[8, 0]"]),
    (dict(backbone="conv", conv_hidden=[8, True]), ["conv_hidden", "integer", "True"]),
    (dict(backbone="conv", conv_hidden="a"), ["conv_hidden", "'a'"]),
])
def test_bad_conv_hidden_is_refused(kwargs, needles):
    shape = (1, 8, 8)
    with pytest.raises(ConfigError) as err:
        aekit.build("ae", input_shape=shape, latent_dim=2, **kwargs)
    assert all(n in str(err.value) for n in needles), str(err.value)


def test_command_line_option(tmp_path):
    code, out, err = cli("train", "beta_vae", "--data", "digits", "--max-samples", "200", "--backbone", "conv",
                         "--channels", "4,8", "--conv-hidden", "16,8", "--latent-dim", "2", "--epochs", "1",
                         "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["backbone"]["conv"]["hidden"] == [16, 8]
    code, _, err = cli("train", "ae", "--data", "digits", "--max-samples", "200", "--conv-hidden", "16",
                       "--epochs", "1", "--out", tmp_path / "bad", "--quiet")
    assert code == 2 and "conv_hidden applies to backbone='conv' only" in err


def test_the_annealed_recipe_has_the_papers_fc_layers_only_on_conv():
    assert aekit.resolve_config("annealed_vae", input_shape=(1, 32, 32))["backbone"]["conv"]["hidden"] == [256, 256]
    assert aekit.resolve_config("annealed_vae", input_shape=(1, 8, 8), backbone="mlp")["backbone"] == {"mlp": {}}
    assert aekit.resolve_config("annealed_vae", input_shape=(1, 8, 8), conv_hidden=[8])["backbone"]["conv"]["hidden"] == [8]
    with pytest.raises(ConfigError, match="conv_hidden applies to backbone='conv' only"):
        aekit.resolve_config("annealed_vae", input_shape=(1, 8, 8), backbone="unet", conv_hidden=[8])
