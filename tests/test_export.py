"""`aekit export RUN_DIR --format onnx`: the ONNX graphs give PyTorch's outputs at any batch size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import cli

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

import aekit  # noqa: E402

RUNS = {  # a Bernoulli VAE on an mlp (the decoder must apply the sigmoid) and a Gaussian conv AE
    "mlp": ["vae", "--hidden", "16", "--latent-dim", "3"],
    "conv": ["conv", "--channels", "4,8", "--latent-dim", "4"],
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"export-{request.param}")
    run, out = root / "run", root / "onnx"
    code, _, err = cli("train", *RUNS[request.param], "--data", "digits", "--max-samples", "100", "--epochs", "1",
                       "--quiet", "--out", run)
    assert code == 0, err
    code, stdout, err = cli("export", run, "--format", "onnx", "--out", out)
    assert code == 0, err
    return request.param, aekit.load(run).eval(), out, json.loads(stdout)


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_graphs_match_pytorch(exported, batch):
    _, model, out, _ = exported
    gen = torch.Generator().manual_seed(batch)
    x = torch.rand((batch, *model.input_shape), generator=gen)  # (B, 1, 8, 8) digits-like in [0, 1]
    enc = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    z = enc.run(["z"], {"x": x.numpy()})[0]
    with torch.no_grad():
        z_torch = model.encode(x)
        np.testing.assert_allclose(z, z_torch.numpy(), atol=1e-5, rtol=0)
        x_mean = dec.run(["x_mean"], {"z": z_torch.numpy()})[0]
        np.testing.assert_allclose(x_mean, model.decode(z_torch).numpy(), atol=1e-5, rtol=0)
        if model.likelihood.name == "bernoulli":  # the graph outputs probabilities, not logits
            np.testing.assert_allclose(x_mean, torch.sigmoid(model.decoder(z_torch, [])).numpy(), atol=1e-5)
            assert 0 < x_mean.min() and x_mean.max() < 1
    assert z.shape == (batch, model.latent_dim) and x_mean.shape == (batch, *model.input_shape)


def test_graphs_have_a_dynamic_batch_and_metadata(exported):
    kind, model, out, printed = exported
    for name, tensor in (("encoder", "x"), ("decoder", "z")):
        graph = onnx.load(str(out / f"{name}.onnx")).graph
        (inp,) = [i for i in graph.input if i.name == tensor]
        dims = inp.type.tensor_type.shape.dim
        assert dims[0].dim_param and not dims[0].dim_value  # symbolic batch dimension
        assert [d.dim_value for d in dims[1:]] == ([*model.input_shape] if tensor == "x" else [model.latent_dim])
    meta = json.loads((out / "aekit-onnx.json").read_text())
    assert meta["input_shape"] == list(model.input_shape) and meta["latent_dim"] == model.latent_dim
    assert meta["graphs"]["encoder"]["file"] == "encoder.onnx" and meta["graphs"]["decoder"]["output"] == "x_mean"
    assert meta["variant"] == ("vae" if kind == "mlp" else "conv")
    assert max(meta["max_abs_diff_vs_torch"].values()) < 1e-5  # the self-check at export time
    assert printed["graphs"] == {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}


def test_export_errors_are_one_line(tmp_path):
    code, _, err = cli("export", tmp_path / "missing", "--format", "onnx")
    assert code == 1 and "does not exist" in err and "Traceback" not in err
    code, _, err = cli("export", tmp_path, "--format", "onxx")
    assert code == 2 and "--format must be one of 'onnx'; got 'onxx'. Did you mean 'onnx'?" in err
    code, _, err = cli("export", tmp_path, "--formt", "onnx")
    assert code == 2 and "Did you mean '--format'?" in err


def test_unet_with_skips_exports_a_reconstruct_graph(tmp_path, monkeypatch):
    """A U-Net decoder needs the encoder's maps: the second graph is x -> x_mean (routing only; no real export)."""
    from aekit.tasks import export

    calls = []

    def fake_export(module, example, path, *, input_name, output_name):
        calls.append((type(module).__name__, tuple(example.shape), path.name, input_name, output_name))
        with torch.no_grad():
            assert module(example).shape == ((2, *model.input_shape) if output_name == "x_mean" else (2, 2))

    monkeypatch.setattr(export, "_export_graph", fake_export)
    monkeypatch.setattr(export, "_check_graphs", lambda files, model: {})
    model = aekit.build(input_shape=(1, 8, 8), backbone="unet", channels=[2, 4], latent_dim=2, seed=0).eval()
    meta = export.export_onnx(model, tmp_path)
    assert calls == [("_Encode", (2, 1, 8, 8), "encoder.onnx", "x", "z"),
                     ("_Reconstruct", (2, 1, 8, 8), "reconstruct.onnx", "x", "x_mean")]
    assert sorted(meta["graphs"]) == ["encoder", "reconstruct"] and "skip" in meta["graphs"]["reconstruct"]["note"]


def test_a_conditional_model_exports_with_a_label_input(tmp_path):
    """cvae: the label is an input of both graphs, one-hot (batch, K) float32, as Autoencoder accepts soft labels."""
    run, out = tmp_path / "run", tmp_path / "onnx"
    code, _, err = cli("train", "cvae", "--data", "digits", "--max-samples", "100", "--epochs", "1", "--hidden", "16",
                       "--latent-dim", "2", "--quiet", "--out", run)
    assert code == 0, err
    code, stdout, err = cli("export", run, "--format", "onnx", "--out", out)
    assert code == 0 and "Traceback" not in err, err[-2000:]
    model = aekit.load(run).eval()
    k = model.num_classes
    meta = json.loads((out / "aekit-onnx.json").read_text())
    assert meta["num_classes"] == k and meta["graphs"]["encoder"]["label_input"] == "y"
    enc = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    for batch in (1, 4):
        x = torch.rand((batch, *model.input_shape), generator=gen)
        labels = torch.randint(0, k, (batch,), generator=gen)
        y = torch.nn.functional.one_hot(labels, k).float()  # (B, K)
        z = enc.run(["z"], {"x": x.numpy(), "y": y.numpy()})[0]
        with torch.no_grad():
            z_torch = model.encode(x, labels)
            np.testing.assert_allclose(z, z_torch.numpy(), atol=1e-5, rtol=0)
            x_mean = dec.run(["x_mean"], {"z": z_torch.numpy(), "y": y.numpy()})[0]
            np.testing.assert_allclose(x_mean, model.decode(z_torch, y=labels).numpy(), atol=1e-5, rtol=0)
