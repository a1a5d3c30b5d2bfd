"""Export a trained model's encoder and decoder as ONNX graphs with a dynamic batch size.

    from aekit.export import export_run
    meta = export_run("runs/vae", out_dir="runs/vae/onnx")   # encoder.onnx, decoder.onnx, aekit-onnx.json

    encoder.onnx : x (batch, *input_shape) float32 -> z (batch, latent_dim), the deterministic code
                   (the posterior mean for a VAE), as Autoencoder.encode;
    decoder.onnx : z (batch, latent_dim) -> x_mean (batch, *input_shape), the reconstruction mean
                   (the sigmoid of the logits for a Bernoulli decoder), as Autoencoder.decode;
    aekit-onnx.json : input shape, latent size, file/tensor names, the opset, and the largest
                   difference to PyTorch measured right after export (when onnxruntime is installed).

A U-Net with skip connections cannot decode a code alone; for it the second graph is
reconstruct.onnx (x -> x_mean), and the JSON says so. Graphs come from torch.onnx.export
(the torch.export-based exporter, which needs the onnx and onnxscript packages).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .checkpoint import atomic_write_json
from .errors import ConfigError, check_choice
from .runs import load_run
from .units import OutputUnits

FORMATS = ("onnx",)
META_NAME = "aekit-onnx.json"
OPSET = 18
CHECK_BATCH_SIZES = (1, 5)


class _Encode(nn.Module):
    """x -> z, the deterministic code (posterior mean for Gaussian bottlenecks)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)  # (B, *shape) -> (B, D)


class _Decode(nn.Module):
    """z -> the reconstruction mean (sigmoid of logits for Bernoulli decoders)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)  # (B, D) -> (B, *shape)


class _Reconstruct(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.reconstruct(x)  # (B, *shape) -> (B, *shape)


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"ONNX export needs the {module!r} package: pip install 'aekit[onnx]'.") from None


def _export_graph(module: nn.Module, example: torch.Tensor, path: Path, *, input_name: str, output_name: str) -> None:
    """One graph with a dynamic first (batch) dimension, written to path as a single file."""
    batch = torch.export.Dim("batch", min=1, max=2**20)
    quiet = logging.getLogger("torch.onnx")  # 'torchvision is not installed' notes: not the user's concern
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # the exporter narrates its steps through warnings
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, input_names=[input_name],
                                        output_names=[output_name], dynamic_shapes={input_name: {0: batch}},
                                        opset_version=OPSET, verbose=False)
    finally:
        quiet.setLevel(level)
    program.save(str(path), external_data=False)


def _check_graphs(files: dict, model: nn.Module) -> dict:
    """Largest |onnxruntime - PyTorch| of each graph at a few batch sizes; {} without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {}
    gen = torch.Generator().manual_seed(0)
    report = {}
    for role, (path, fn, in_shape) in files.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        worst = 0.0
        for n in CHECK_BATCH_SIZES:
            x = torch.rand((n, *in_shape), generator=gen)  # inputs in [0, 1]: a typical image / code scale
            with torch.no_grad():
                want = fn(x).numpy()
            got = session.run(None, {name: x.numpy()})[0]
            worst = max(worst, float(abs(got - want).max()))
        report[role] = worst
    return report


def export_onnx(model: nn.Module, out_dir, *, run_info: dict | None = None) -> dict:
    """Write the encoder and decoder of `model` as ONNX graphs into out_dir; returns the metadata."""
    _require("onnx")
    _require("onnxscript")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").float().eval()
    shape, d = tuple(model.input_shape), int(model.latent_dim)
    x_example = torch.rand((2, *shape))  # batch 2: a batch of 1 would be specialised to a constant
    z_example = torch.randn((2, d))
    enc_path = out / "encoder.onnx"
    _export_graph(_Encode(model), x_example, enc_path, input_name="x", output_name="z")
    files = {"encoder": (enc_path, model.encode, shape)}
    graphs = {"encoder": {"file": enc_path.name, "input": "x", "input_shape": ["batch", *shape],
                          "output": "z", "output_shape": ["batch", d]}}
    if model.uses_skips:
        rec_path = out / "reconstruct.onnx"
        _export_graph(_Reconstruct(model), x_example, rec_path, input_name="x", output_name="x_mean")
        files["reconstruct"] = (rec_path, model.reconstruct, shape)
        graphs["reconstruct"] = {"file": rec_path.name, "input": "x", "input_shape": ["batch", *shape],
                                 "output": "x_mean", "output_shape": ["batch", *shape],
                                 "note": "U-Net skip connections: the decoder needs the encoder's maps, so no decoder.onnx"}
    else:
        dec_path = out / "decoder.onnx"
        _export_graph(_Decode(model), z_example, dec_path, input_name="z", output_name="x_mean")
        files["decoder"] = (dec_path, model.decode, (d,))
        graphs["decoder"] = {"file": dec_path.name, "input": "z", "input_shape": ["batch", d],
                             "output": "x_mean", "output_shape": ["batch", *shape]}
    info = run_info or {}
    meta = {
        "format": "onnx", "opset": OPSET, "aekit_version": __version__, "dtype": "float32",
        "variant": model.config.get("variant"), "input_shape": list(shape), "latent_dim": d,
        "likelihood": model.likelihood.name, "decoder_output": "reconstruction mean"
        + (" (sigmoid of the Bernoulli logits)" if model.likelihood.name == "bernoulli" else ""),
        "graphs": graphs, "data": (info.get("dataset") or {}).get("name") or (info.get("data") or {}).get("source"),
        "output_units": OutputUnits.from_run(info, model).to_dict(),  # x_mean is in model units: see aekit.units
        "max_abs_diff_vs_torch": _check_graphs(files, model),
    }
    atomic_write_json(out / META_NAME, meta)
    return meta


def export_run(run_dir, *, out_dir=None, format: str = "onnx") -> dict:  # noqa: A002 - the CLI's word
    """Export the model kept in a run directory (see aekit.runs) in `format`; returns the metadata."""
    check_choice("--format", format, FORMATS)
    model, info = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "onnx"
    return export_onnx(model, out, run_info=info)


def read_meta(out_dir) -> dict:
    return json.loads((Path(out_dir) / META_NAME).read_text())


__all__ = ["FORMATS", "META_NAME", "export_onnx", "export_run", "read_meta"]
