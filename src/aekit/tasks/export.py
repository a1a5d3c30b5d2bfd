"""Export a trained model's encoder and decoder as ONNX graphs with a dynamic batch size.

    from aekit.tasks.export import export_run
    meta = export_run("runs/vae", out_dir="runs/vae/onnx")   # encoder.onnx, decoder.onnx, aekit-onnx.json

    encoder.onnx : x (batch, *input_shape) float32 -> z (batch, latent_dim), the deterministic code
                   (the posterior mean for a VAE), as Autoencoder.encode;
    decoder.onnx : z (batch, latent_dim) -> x_mean (batch, *input_shape), the reconstruction mean
                   (the sigmoid of the logits for a Bernoulli decoder), as Autoencoder.decode;
    aekit-onnx.json : input shape, latent size, file/tensor names, the opset, and the largest
                   difference to PyTorch measured right after export (when onnxruntime is installed).

A conditional model (num_classes K, e.g. 'cvae') takes its label as a second input of every
graph: y (batch, K) float32, the one-hot label (any soft labels summing to one work too).

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

from .._version import __version__
from ..checkpoint import atomic_write_json
from ..errors import ConfigError, check_choice
from ..training.runs import load_run
from ..units import OutputUnits

FORMATS = ("onnx",)
META_NAME = "aekit-onnx.json"
OPSET = 18
CHECK_BATCH_SIZES = (1, 5)
LABEL_INPUT = "y"  # a conditional model's second input: the one-hot label (batch, num_classes)


class _Encode(nn.Module):
    """x (and y, the one-hot label of a conditional model) -> z, the deterministic code (posterior mean for Gaussian bottlenecks)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.encode(x, y)  # (B, *shape) [, (B, K)] -> (B, D)


class _Decode(nn.Module):
    """z (and y) -> the reconstruction mean (sigmoid of logits for Bernoulli decoders)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.decode(z, y=y)  # (B, D) [, (B, K)] -> (B, *shape)


class _Reconstruct(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.reconstruct(x, y)  # (B, *shape) [, (B, K)] -> (B, *shape)


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"ONNX export needs the {module!r} package: pip install 'aekit[onnx]'.") from None


def _export_graph(module: nn.Module, example: torch.Tensor, path: Path, *, input_name: str, output_name: str,
                  label: torch.Tensor | None = None) -> None:
    """One graph with a dynamic first (batch) dimension, written to path as a single file.

    label: an example one-hot label (B, K) of a conditional model, exported as the second input "y"."""
    batch = torch.export.Dim("batch", min=1, max=2**20)
    args, names, dynamic = (example,), [input_name], {input_name: {0: batch}}
    if label is not None:
        args, names, dynamic = (example, label), [input_name, LABEL_INPUT], {input_name: {0: batch}, LABEL_INPUT: {0: batch}}
    quiet = logging.getLogger("torch.onnx")  # 'torchvision is not installed' notes: not the user's concern
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # the exporter narrates its steps through warnings
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, input_names=names,
                                        output_names=[output_name], dynamic_shapes=dynamic,
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
    k = int(getattr(model, "num_classes", 0) or 0)
    report = {}
    for role, (path, fn, in_shape) in files.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        worst = 0.0
        for n in CHECK_BATCH_SIZES:
            x = torch.rand((n, *in_shape), generator=gen)  # inputs in [0, 1]: a typical image / code scale
            feed = {name: x.numpy()}
            args = (x,)
            if k:  # a conditional model: random one-hot labels (B, K)
                y = torch.nn.functional.one_hot(torch.randint(0, k, (n,), generator=gen), k).float()
                feed[LABEL_INPUT], args = y.numpy(), (x, y)
            with torch.no_grad():
                want = fn(*args).numpy()
            got = session.run(None, feed)[0]
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
    k = int(getattr(model, "num_classes", 0) or 0)
    x_example = torch.rand((2, *shape))  # batch 2: a batch of 1 would be specialised to a constant
    z_example = torch.randn((2, d))
    label = {"label": torch.nn.functional.one_hot(torch.tensor([0, k - 1]), k).float()} if k else {}  # (2, K)
    enc_path = out / "encoder.onnx"
    _export_graph(_Encode(model), x_example, enc_path, input_name="x", output_name="z", **label)
    files = {"encoder": (enc_path, _Encode(model), shape)}
    graphs = {"encoder": {"file": enc_path.name, "input": "x", "input_shape": ["batch", *shape],
                          "output": "z", "output_shape": ["batch", d]}}
    if model.uses_skips:
        rec_path = out / "reconstruct.onnx"
        _export_graph(_Reconstruct(model), x_example, rec_path, input_name="x", output_name="x_mean", **label)
        files["reconstruct"] = (rec_path, _Reconstruct(model), shape)
        graphs["reconstruct"] = {"file": rec_path.name, "input": "x", "input_shape": ["batch", *shape],
                                 "output": "x_mean", "output_shape": ["batch", *shape],
                                 "note": "U-Net skip connections: the decoder needs the encoder's maps, so no decoder.onnx"}
    else:
        dec_path = out / "decoder.onnx"
        _export_graph(_Decode(model), z_example, dec_path, input_name="z", output_name="x_mean", **label)
        files["decoder"] = (dec_path, _Decode(model), (d,))
        graphs["decoder"] = {"file": dec_path.name, "input": "z", "input_shape": ["batch", d],
                             "output": "x_mean", "output_shape": ["batch", *shape]}
    if k:
        for graph in graphs.values():
            graph.update(label_input=LABEL_INPUT, label_shape=["batch", k])
    info = run_info or {}
    meta = {
        "format": "onnx", "opset": OPSET, "aekit_version": __version__, "dtype": "float32",
        "variant": model.config.get("variant"), "input_shape": list(shape), "latent_dim": d, "num_classes": k or None,
        "likelihood": model.likelihood.name, "decoder_output": "reconstruction mean"
        + (" (sigmoid of the Bernoulli logits)" if model.provides("bounded_mean") else ""),
        "graphs": graphs, "data": (info.get("dataset") or {}).get("name") or (info.get("data") or {}).get("source"),
        "output_units": OutputUnits.from_run(info, model).to_dict(),  # x_mean is in model units: see aekit.units
        "max_abs_diff_vs_torch": _check_graphs(files, model),
    }
    atomic_write_json(out / META_NAME, meta)
    return meta


def export_run(run_dir, *, out_dir=None, format: str = "onnx") -> dict:  # noqa: A002 - the CLI's word
    """Export the model kept in a run directory (see aekit.training.runs) in `format`; returns the metadata."""
    check_choice("--format", format, FORMATS)
    model, info = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "onnx"
    return export_onnx(model, out, run_info=info)


def read_meta(out_dir) -> dict:
    return json.loads((Path(out_dir) / META_NAME).read_text())


__all__ = ["FORMATS", "META_NAME", "export_onnx", "export_run", "read_meta"]
