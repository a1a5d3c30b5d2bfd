"""The Python API as a scikit-learn user meets it: arrays and data frames in, every option of fit in its
signature, error messages that list options in a fixed order and show real shapes."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch
from cli_helpers import cli

import aekit
from aekit.data import load_data
from aekit.errors import ConfigError, ShapeError
from aekit.training.trainer import TrainConfig


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", seed=0, max_samples=300)


def test_fit_reconstruct_encode_take_numpy_arrays(digits):
    x = digits.train.numpy()  # (N, 1, 8, 8) float32 NumPy
    model = aekit.build("ae", input_shape=(1, 8, 8), latent_dim=3, hidden=[16], seed=0)
    result = aekit.fit(model, x, digits.val.numpy(), epochs=2, batch_size=32, progress=False)
    assert len(result.history) == 2
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.reconstruct(x[:5]), model.reconstruct(digits.train[:5]))
        assert torch.equal(model.encode(x[:5]), model.encode(digits.train[:5]))
        flat = x[:5].reshape(5, 64)  # (N, C*H*W) images, as scikit-learn keeps them
        assert torch.equal(model.reconstruct(flat), model.reconstruct(digits.train[:5]))


def test_fit_takes_a_pandas_table():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(64, 4)), columns=list("abcd"))
    model = aekit.build("ae", input_shape=(4,), latent_dim=2, hidden=[8], seed=0)
    aekit.fit(model, frame, epochs=1, batch_size=16, progress=False)
    model.eval()
    with torch.no_grad():
        assert model.encode(frame).shape == (64, 2)
    with pytest.raises(ConfigError, match="non-numeric"):
        model.encode(frame.assign(e=["x"] * 64))


def test_every_training_option_is_in_fits_signature_and_documented():
    params = inspect.signature(aekit.fit).parameters
    doc = inspect.getdoc(aekit.fit)
    for f in dataclasses.fields(TrainConfig):
        assert f.name in params, f.name
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert params[f.name].default == default, f.name
        assert f"{f.name} :" in doc or f"{f.name}:" in doc or f" {f.name} " in doc, f.name
    with pytest.raises(ConfigError, match="Did you mean 'batch_size'"):
        aekit.fit(aekit.build("ae", input_shape=(4,), latent_dim=2, hidden=[4]), torch.rand(8, 4), batchsize=3)


def test_option_lists_print_in_the_same_order_every_time():
    code = ("from aekit.training.trainer import TrainConfig\n"
            "try:\n    TrainConfig.from_dict({'epochz': 1})\n"
            "except Exception as exc:\n    print(exc)\n")
    messages = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)}).stdout
                for seed in (1, 2, 3)}
    assert len(messages) == 1
    message = messages.pop()
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert message.index("'epochs'") < message.index("'batch_size'") < message.index("'deterministic'")
    assert ", ".join(repr(n) for n in names) in message


def test_shape_messages_show_the_real_shape():
    model = aekit.build("ae", input_shape=(1, 8, 8), latent_dim=2, hidden=[4])
    with pytest.raises(ShapeError, match=r"has shape \(7, 1, 9, 9\)"):
        model.reconstruct(torch.rand(7, 1, 9, 9))
    with pytest.raises(ShapeError, match=r"train has shape \(12, 50\)"):
        aekit.fit(model, torch.rand(12, 50), epochs=1, progress=False)


def test_commands_name_the_runs_training_data_and_take_flat_images(tmp_path):
    code, _, err = cli("train", "ae", "--data", "digits", "--max-samples", "200", "--epochs", "1", "--hidden", "8",
                       "--latent-dim", "2", "--quiet", "--out", tmp_path / "run")
    assert code == 0, err
    np.save(tmp_path / "wrong.npy", np.random.default_rng(0).random((30, 7, 7)).astype(np.float32))
    code, _, err = cli("encode", tmp_path / "run", "--data", tmp_path / "wrong.npy", "--out", tmp_path / "z.npy")
    assert code == 1
    assert "(30, 1, 7, 7)" in err and "(1, 1, 7, 7)" not in err
    assert "trained on 'digits' (samples of shape (1, 8, 8))" in err
    flat = load_data("digits", seed=0).test[:25].reshape(25, 64).numpy()  # (N, 64): flattened 8x8 images
    np.save(tmp_path / "flat.npy", flat)
    code, _, err = cli("encode", tmp_path / "run", "--data", tmp_path / "flat.npy", "--out", tmp_path / "z.npy")
    assert code == 0, err
    assert np.load(tmp_path / "z.npy").shape == (25, 2)
