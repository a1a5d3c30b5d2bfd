"""`aekit sae capture | train | evaluate` end to end on tiny shapes: an aekit run and a Python-defined classifier as
hosts; one-line errors on bad input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from aekit.tasks.sae import ActivationStore, load_sae
from cli_helpers import cli

TINY = ["--epochs", "1", "--max-samples", "200", "--hidden", "16", "--latent-dim", "4", "--batch-size", "64", "--quiet"]
CLASSIFIER = '''
import torch
from torch import nn

def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
'''


@pytest.fixture(autouse=True)
def _no_fsync(no_fsync):
    """fsync is slow on VMs and durability is not under test here."""


def ok(*args) -> str:
    code, out, err = cli(*args)
    assert code == 0, err
    return out


def one_line_error(*args, code: int | None = None) -> str:
    got, _, err = cli(*args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert got != 0 and len(lines) == 1 and "Traceback" not in err, err
    if code is not None:
        assert got == code, err
    return lines[0]


def test_an_aekit_run_captured_trained_and_evaluated(tmp_path):
    run = tmp_path / "run"
    ok("train", "ae", "--data", "digits", *TINY, "--out", run)
    ok("sae", "capture", run, "--layer", "encoder.net.0", "--out", tmp_path / "acts")
    store = ActivationStore(tmp_path / "acts")
    assert store.d == 16 and len(store) > 0 and store.meta["host"]["run"] == str(run.resolve())
    out = ok("sae", "train", tmp_path / "acts", "--out", tmp_path / "sae", "--latents", "32", "--k", "4",
             "--epochs", "3", "--batch-size", "32", "--lr", "0.01")
    assert "topk SAE of 32 latents" in out
    sae = load_sae(tmp_path / "sae")
    assert sae.config["k"] == 4 and torch.allclose(sae.decoder.weight.norm(dim=0), torch.ones(32), atol=1e-5)
    ok("sae", "evaluate", tmp_path / "sae", tmp_path / "acts", "--json", tmp_path / "eval.json")
    result = json.loads((tmp_path / "eval.json").read_text())
    assert 0 < result["l0"] <= 4 and 0 <= result["fvu"] < 1.0
    assert 0 <= result["dead_fraction"] <= 1 and 0 <= result["dense_fraction"] <= 1
    # the splice: the host's own loss with the SAE's reconstruction lies between zero-ablation and the original
    assert result["loss_zero"] > result["loss_original"]
    assert result["fraction_loss_recovered"] == pytest.approx(
        (result["loss_zero"] - result["loss_sae"]) / (result["loss_zero"] - result["loss_original"]))
    assert "accuracy_sae" not in result  # an autoencoder host has no accuracy


def test_a_python_classifier_host_with_safetensors_weights(tmp_path):
    (tmp_path / "clf.py").write_text(CLASSIFIER)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 12), torch.nn.ReLU(), torch.nn.Linear(12, 10))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "clf.safetensors")
    host = f"{tmp_path / 'clf.py'}:make"
    ok("sae", "capture", host, "--weights", tmp_path / "clf.safetensors", "--data", "digits", "--split", "train",
       "--max-samples", "300", "--layer", "2", "--out", tmp_path / "acts")
    assert len(ActivationStore(tmp_path / "acts")) == 300
    ok("sae", "train", tmp_path / "acts", "--out", tmp_path / "sae", "--latents", "24", "--activation", "relu",
       "--l1", "0.001", "--epochs", "2", "--batch-size", "50")
    ok("sae", "evaluate", tmp_path / "sae", tmp_path / "acts", "--max-samples", "100", "--json", tmp_path / "e.json")
    result = json.loads((tmp_path / "e.json").read_text())
    assert {"accuracy_original", "accuracy_sae", "accuracy_zero", "fraction_loss_recovered"} <= set(result)
    assert result["downstream_inputs"] == 100


def test_bad_input_is_one_line(tmp_path):
    (tmp_path / "clf.py").write_text(CLASSIFIER)
    host = f"{tmp_path / 'clf.py'}:make"
    assert "did you mean" in one_line_error("sae", "capture", host, "--data", "digits", "--layer", "22",
                                            "--out", tmp_path / "a").lower()
    assert "no callable 'nope'" in one_line_error("sae", "capture", f"{tmp_path / 'clf.py'}:nope", "--data", "digits",
                                                  "--layer", "1", "--out", tmp_path / "a")
    assert "needs --data" in one_line_error("sae", "capture", host, "--layer", "1", "--out", tmp_path / "a")
    ok("sae", "capture", host, "--data", "digits", "--max-samples", "64", "--layer", "2", "--out", tmp_path / "a")
    assert "needs k" in one_line_error("sae", "train", tmp_path / "a", "--out", tmp_path / "s", "--latents", "8", code=2)
    assert "k must be at most" in one_line_error("sae", "train", tmp_path / "a", "--out", tmp_path / "s",
                                                 "--latents", "8", "--k", "9")
    assert "invalid choice" in one_line_error("sae", "train", tmp_path / "a", "--out", tmp_path / "s", "--latents",
                                              "8", "--activation", "topkk")
    assert "holds no sparse autoencoder" in one_line_error("sae", "evaluate", tmp_path, tmp_path / "a")
    assert "is not an activation store" in one_line_error("sae", "train", tmp_path / "nowhere", "--out", tmp_path / "s",
                                              "--latents", "8", "--k", "2")


def test_sae_train_without_epochs_takes_the_step_budget(tmp_path, monkeypatch):
    """No --epochs: enough passes over the store for MIN_STEPS optimizer steps (here patched to 20: one batch a
    pass, so 20 passes), said and trained."""
    import aekit.training.data_defaults as dd

    monkeypatch.setattr(dd, "MIN_STEPS", 20)
    run = tmp_path / "run"
    ok("train", "ae", "--data", "digits", *TINY, "--out", run)
    ok("sae", "capture", run, "--layer", "encoder.net.0", "--out", tmp_path / "acts", "--max-samples", "300",
       "--split", "train")
    rows = len(ActivationStore(tmp_path / "acts"))
    out = ok("sae", "train", tmp_path / "acts", "--out", tmp_path / "sae", "--latents", "16", "--k", "2",
             "--batch-size", str(rows))
    assert f"(epochs=20: {rows} rows at batch {rows} take 20 passes" in out
    history = json.loads((tmp_path / "sae" / "history.json").read_text())
    assert len(history) == 20
