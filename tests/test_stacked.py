"""Stacked autoencoders: greedy layer-wise pretraining, assembly into one deep model, fine-tuning, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import cli

from aekit.data import load_data
from aekit.errors import ConfigError, DataError
from aekit.training.runs import load_run
from aekit.tasks.stacked.layerwise import (LAYER_VARIANTS, assemble_autoencoder, check_layers, fit_stacked, predict, pretrain_stack,
                           stacked_decode, stacked_encode)
from aekit.tasks.stacked.classifier import load_classifier
from aekit.training.trainer import TrainConfig


@pytest.fixture(autouse=True)
def _no_fsync(no_fsync):
    """fsync is slow on VMs and durability is not under test here."""


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", seed=0)


def cfg(epochs: int, **kw) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=64, lr=kw.pop("lr", 1e-2), warmup_steps=5, progress=False, **kw)


@pytest.mark.parametrize("variant", list(LAYER_VARIANTS))
def test_pretraining_lowers_each_layers_loss(digits, variant):
    stack = pretrain_stack(digits.train[:600], digits.val, layers=[24, 12], layer_variant=variant, config=cfg(3))
    assert [s["layer"] for s in stack.summary] == [1, 2]
    assert [s["in"] for s in stack.summary] == [64, 24] and stack.widths == [24, 12]
    for s in stack.summary:  # the layer's own objective on validation codes, before vs after its training
        assert s["loss_after"] < s["loss_before"], s
    assert {r["layer"] for r in stack.history} == {1, 2}
    assert all(r["phase"] == "pretrain" and "train_loss" in r for r in stack.history)
    # layers above the first see sigmoid codes through a Bernoulli likelihood, others a Gaussian
    expected = "bernoulli" if LAYER_VARIANTS[variant]["activation"] == "sigmoid" else "gaussian"
    assert stack.summary[1]["likelihood"] == expected


def _reference_forward(stack, x):
    """Encoder and decoder written out from the layers' weights: h_k = a_k(W_k h_{k-1} + b_k), back down."""
    acts = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "none": lambda t: t}
    n = len(stack.layers)
    h = x.flatten(1)
    for k, layer in enumerate(stack.layers):
        lin = layer.bottleneck.linear
        act = stack.top_activation if k == n - 1 else stack.activation
        h = acts[act](h @ lin.weight.T + lin.bias)
    z = h
    for k in range(n - 1, -1, -1):
        dec = stack.layers[k].decoder.net[0]  # layer k+1's one decoder Linear
        h = h @ dec.weight.T + dec.bias
        h = acts[stack.activation](h) if k > 0 else (torch.sigmoid(h) if stack.likelihood == "bernoulli" else h)
    return z, h.reshape(x.shape)


@pytest.mark.parametrize("variant,likelihood,activation", [
    ("plain", "gaussian", None), ("sparse_kl", "bernoulli", None), ("denoising", "gaussian", "tanh"),
])
def test_assembled_model_reproduces_the_stack_exactly(digits, variant, likelihood, activation):
    stack = pretrain_stack(digits.train[:300], None, layers=[20, 10, 5], layer_variant=variant, likelihood=likelihood,
                           activation=activation, config=cfg(1))
    model = assemble_autoencoder(stack)
    x = digits.val
    assert model.config["backbone"]["mlp"]["hidden"] == [20, 10] and model.latent_dim == 5
    with torch.no_grad():
        z_ref, x_ref = _reference_forward(stack, x)
        z_stack = stacked_encode(stack, x)
        x_stack = stacked_decode(stack, z_stack)
        assert torch.allclose(z_stack, z_ref, atol=1e-6) and torch.allclose(x_stack, x_ref, atol=1e-6)
        assert torch.equal(model.encode(x), z_stack)  # same weights, same operations: bit-identical
        assert torch.equal(model.decode(z_stack), x_stack)
        assert torch.equal(model.reconstruct(x), x_stack)
    assert not torch.allclose(x_stack, torch.zeros_like(x_stack))


def test_reconstruction_finetune_lowers_the_error_further(digits, tmp_path):
    res = fit_stacked(digits.train, digits.val, layers=[32, 12], layer_variant="plain", finetune="reconstruction",
                      config=cfg(8, lr=5e-3), pretrain_epochs=3, out_dir=tmp_path / "run")
    s = res.summary
    assert s["sse_finetuned"] < 0.9 * s["sse_pretrained"], s
    model, info = load_run(tmp_path / "run")
    with torch.no_grad():  # the number in the summary is the run's own reconstruction error on val
        sse = float((model.reconstruct(digits.val) - digits.val).pow(2).flatten(1).sum(1).mean())
    assert sse == pytest.approx(s["sse_finetuned"], rel=1e-4)
    assert info["variant"] == "stacked" and info["stacked"]["layers"] == [32, 12]
    phases = [r["phase"] for r in json.loads((tmp_path / "run" / "history.json").read_text())]
    assert phases.count("pretrain") == 6 and phases.count("finetune") == 8


def test_classifier_finetune_beats_chance(digits, tmp_path):
    res = fit_stacked(digits.train, digits.val, digits.y_train, digits.y_val, layers=[32, 16], finetune="classifier",
                      config=cfg(6, lr=5e-3), pretrain_epochs=3, head_epochs=3, out_dir=tmp_path / "run")
    c = res.summary["classifier"]
    assert c["accuracy_finetuned"] > 0.7 and c["accuracy_finetuned"] >= c["accuracy_pretrained"] - 0.05, c
    y_hat = predict(tmp_path / "run", digits.test)  # from the saved run: encoder + classifier.safetensors
    acc = float((y_hat == digits.y_test).float().mean())
    assert acc > 0.7
    assert torch.equal(y_hat, predict(res.classifier, digits.test))


def test_cli_end_to_end(tmp_path):
    run = tmp_path / "run"
    code, out, err = cli("train", "stacked", "--layers", "24,10", "--layer-variant", "sparse_kl", "--finetune",
                         "classifier", "--pretrain-epochs", "2", "--epochs", "3", "--head-epochs", "2", "--lr", "0.01",
                         "--batch-size", "64", "--data", "digits", "--out", run, "--quiet")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["layers"] == [24, 10] and len(summary["pretrain_loss"]) == 2
    model, info = load_run(run)
    assert model.latent_dim == 10 and info["stacked"]["layer_variant"] == "sparse_kl"
    history = json.loads((run / "history.json").read_text())
    assert [r["layer"] for r in history if r["phase"] == "pretrain"] == [1, 1, 2, 2]
    code, out, err = cli("evaluate", run, "--json")
    assert code == 0, err
    result = json.loads(out)
    clf = load_classifier(run)
    x = load_data("digits", seed=0).test
    y = load_data("digits", seed=0).y_test
    assert result["accuracy"] == pytest.approx(float((predict(clf, x) == y).float().mean()))
    assert "sse_per_image" in result
    code, _, err = cli("encode", run, "--out", tmp_path / "z.npy")
    assert code == 0, err
    assert np.load(tmp_path / "z.npy").shape == (x.shape[0], 10)

    run2 = tmp_path / "run2"  # reconstruction fine-tune: a plain aekit model, no head, no accuracy
    code, out, err = cli("train", "stacked", "--layers", "16,8", "--epochs", "2", "--pretrain-epochs", "1",
                         "--data", "digits", "--out", run2, "--quiet")
    assert code == 0, err
    code, out, err = cli("evaluate", run2, "--json")
    assert code == 0 and "accuracy" not in json.loads(out)
    assert not (run2 / "classifier.safetensors").exists()


@pytest.mark.parametrize("args,needle", [
    ([], "needs --layers"),
    (["--layers", "16,x"], "comma-separated integers"),
    (["--layers", "16,0"], "positive integers"),
    (["--layers", "16", "--layer-variant", "sparse_kll"], "Did you mean 'sparse_kl'"),
    (["--layers", "16", "--finetune", "clasifier"], "Did you mean 'classifier'"),
    (["--layers", "16", "--hidden", "32"], "--hidden does not apply"),
])
def test_cli_errors(tmp_path, args, needle):
    code, _, err = cli("train", "stacked", *args, "--data", "digits", "--out", tmp_path / "r", "--quiet")
    assert code != 0 and needle in err, err
    assert "Traceback" not in err and not (tmp_path / "r" / "run.json").exists()


def test_cli_classifier_needs_labels(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((60, 12)).astype(np.float32))
    code, _, err = cli("train", "stacked", "--layers", "8", "--finetune", "classifier", "--data", tmp_path / "x.npy",
                       "--out", tmp_path / "r", "--quiet")
    assert code == 1 and "needs labels" in err and len(err.strip().splitlines()) == 1, err


def test_stacked_options_need_the_stacked_variant(tmp_path):
    code, _, err = cli("train", "ae", "--layers", "16", "--data", "digits", "--out", tmp_path / "r", "--quiet")
    assert code == 2 and "--layers applies to variant 'stacked'" in err


def test_python_api_errors(digits):
    for bad in ([], [16, 0], "16", [16.5], None):
        with pytest.raises(ConfigError, match="layers must be"):
            check_layers(bad)
    with pytest.raises(ConfigError, match="Did you mean 'contractive'"):
        pretrain_stack(digits.train[:50], layers=[8], layer_variant="contractiv")
    with pytest.raises(DataError, match="needs labels"):
        fit_stacked(digits.train[:50], layers=[8], finetune="classifier")
    with pytest.raises(ConfigError, match="sigmoid"):
        pretrain_stack(digits.train[:50], layers=[8], layer_variant="sparse_kl", activation="relu", top_activation="relu")


def test_list_shows_stacked_and_config_file_takes_a_layers_list(tmp_path):
    code, out, _ = cli("list")
    assert code == 0 and any(line.startswith("stacked ") for line in out.splitlines())
    (tmp_path / "opts.toml").write_text('layers = [12, 6]\nfinetune = "none"\npretrain-epochs = 1\n')
    code, out, err = cli("train", "stacked", "--config", tmp_path / "opts.toml", "--data", "digits",
                         "--out", tmp_path / "r", "--quiet")
    assert code == 0, err
    assert json.loads(out)["layers"] == [12, 6] and load_run(tmp_path / "r")[0].latent_dim == 6
