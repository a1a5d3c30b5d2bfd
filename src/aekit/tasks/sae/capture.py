"""Capture a layer's activations from any PyTorch model into an on-disk activation store.

Sparse dictionaries are learned on the activations of a trained network (Bricken et al. 2023,
"Towards Monosemanticity"; Cunningham et al. 2023, "Sparse Autoencoders Find Highly
Interpretable Features in Language Models"). SAELens and dictionary_learning capture them from
a transformer language model's residual stream; here a forward hook is put on any
`nn.Module`, found by its dotted name in `dict(model.named_modules())` (an aekit run folder,
loaded with `aekit.load`, or any module passed in Python), and the activations are flattened
so that each row is one position's feature vector:

    (B, d)                -> (B, d)
    (B, T, d)   tokens    -> (B*T, d)        layout 'channels_last' (transformers, RNN outputs)
    (B, C, L)   Conv1d    -> (B*L, C)        layout 'channels_first'
    (B, C, H, W) conv map -> (B*H*W, C)      layout 'channels_first' (one row per pixel position)

layout='auto' takes 'channels_first' for outputs of 4 or more dimensions and for the 3-D
outputs of convolution and batch-norm layers, 'channels_last' for any other 3-D output.
The store's meta records {"layer", "layout", "positions"} (rows per input: 1, T, L or H*W), so
row r of the store is position r % positions of input r // positions (in the order captured);
positions is null when the inputs' lengths varied.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from ...errors import ConfigError, DataError, did_you_mean, check_choice
from .store import DTYPES, HEADER_NAME, ActivationStore

LAYOUTS = ("auto", "channels_last", "channels_first")
WRITE_BYTES = 8 * 2**20  # rows are written to the store in chunks of about this size
_CHANNELS_FIRST_MODULES = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm,
                           nn.modules.instancenorm._InstanceNorm, nn.GroupNorm)


class _StopForward(Exception):
    """Raised by the capture hook to skip the rest of the forward pass once the layer has run."""


def find_layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule of model named `layer` (a dotted name of model.named_modules()); ConfigError with did-you-mean if none."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module or an aekit run folder; got {type(model).__name__}.")
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or layer not in modules or layer == "":
        names = [n for n in modules if n]
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise ConfigError(f"layer {layer!r} is not a submodule of this {type(model).__name__} (layers: {shown})."
                          + did_you_mean(str(layer), names))
    return modules[layer]


def select_output(output, *, output_index: int | str | None = None) -> torch.Tensor:
    """The tensor a hooked module returned: as is, element output_index of a tuple/list, key/attribute of a
    dict/object (default for those: element 0 of a tuple, attribute 'z' of an aekit Code)."""
    if isinstance(output, torch.Tensor) and output_index is None:
        return output
    if output_index is None:
        if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            return output[0]
        if isinstance(getattr(output, "z", None), torch.Tensor):
            return output.z
        raise ConfigError(f"the layer returned a {type(output).__name__}, not a tensor; pass output_index to pick one.")
    try:
        if isinstance(output_index, int) and isinstance(output, (tuple, list)):
            picked = output[output_index]
        elif isinstance(output_index, str) and isinstance(output, dict):
            picked = output[output_index]
        else:
            picked = getattr(output, str(output_index))
    except (IndexError, KeyError, AttributeError):
        raise ConfigError(f"output_index {output_index!r} does not name a part of the layer's "
                          f"{type(output).__name__} output.") from None
    if not isinstance(picked, torch.Tensor):
        raise ConfigError(f"output_index {output_index!r} picks a {type(picked).__name__}, not a tensor.")
    return picked


def resolve_layout(activation: torch.Tensor, module: nn.Module | None = None, layout: str = "auto") -> str:
    """'flat' (2-D), 'channels_last' or 'channels_first' for this activation (see the module docstring)."""
    check_choice("layout", layout, LAYOUTS)
    if activation.dim() < 2:
        raise DataError(f"a captured activation needs a batch dimension and features; got shape {tuple(activation.shape)}.")
    if activation.dim() == 2:
        return "flat"
    if layout != "auto":
        return layout
    if activation.dim() >= 4 or isinstance(module, _CHANNELS_FIRST_MODULES):
        return "channels_first"
    return "channels_last"


def flatten(activation: torch.Tensor, layout: str) -> torch.Tensor:
    """(B, ..., d) or (B, C, ...) -> (N, d) rows, one per position (layout from resolve_layout)."""
    if layout == "flat":
        return activation
    if layout == "channels_first":
        activation = activation.movedim(1, -1)  # (B, C, *S) -> (B, *S, C)
    return activation.reshape(-1, activation.shape[-1])  # (B * prod(S), d)


def unflatten(rows: torch.Tensor, like: torch.Tensor, layout: str) -> torch.Tensor:
    """Inverse of flatten: (N, d) rows back to the shape of `like` (the original activation)."""
    if layout == "flat":
        return rows.reshape(like.shape)
    if layout == "channels_first":
        moved = like.movedim(1, -1).shape  # (B, *S, C)
        return rows.reshape(moved).movedim(-1, 1)
    return rows.reshape(like.shape)


def _batches(data, batch_size: int) -> Iterable:
    if isinstance(data, torch.Tensor):
        for i in range(0, data.shape[0], batch_size):
            yield data[i:i + batch_size]
    else:
        yield from data


def _input_of(batch):
    """A batch is a tensor, or a tuple/list whose first element is the model's input (labels travel after it)."""
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise DataError("an empty batch was given.")
        return batch[0]
    return batch


def capture(model, *, layer: str, data=None, store: str | os.PathLike, batch_size: int = 256, dtype: str = "float32",
            layout: str = "auto", output_index: int | str | None = None, max_rows: int | None = None,
            max_bytes: int | None = None, forward: Callable | None = None, stop_early: bool = True,
            overwrite: bool = False, device: str | torch.device | None = None) -> ActivationStore:
    """Run model over data and stream the activations of `layer` into a new store at `store`; return it.

    model: an nn.Module or an aekit run folder (loaded with aekit.load). data: a tensor of inputs
    (split into batch_size rows) or an iterable of batches (a tensor, or a tuple whose first element
    is the input, as a DataLoader gives); for a run folder None takes the run's own data (its
    test split or held-out part, as `aekit evaluate` does). forward(model, inputs) calls the model (default
    model(inputs)). Rows come out flattened per position (see the module docstring); capture stops
    after max_rows rows; the store's size is bounded by max_bytes and the disk's free space before
    each chunk is written. stop_early skips the layers after `layer` (their outputs are not needed).
    """
    if isinstance(model, (str, os.PathLike)):
        from ...training.runs import load_run, run_data

        model, info = load_run(Path(model))
        if data is None:  # the run's own held-out data, as `aekit evaluate` uses it
            data = run_data(info, model=model)[0]
    if data is None:
        raise ConfigError("data is required (a tensor of inputs or an iterable of batches) unless model is a run folder.")
    module = find_layer(model, layer)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise ConfigError(f"max_rows must be a positive integer or None; got {max_rows!r}.")
    check_choice("layout", layout, LAYOUTS)
    check_choice("dtype", dtype, DTYPES)
    if (Path(store) / HEADER_NAME).exists() and not overwrite:  # before any forward pass
        raise ConfigError(f"{str(store)!r} already holds an activation store; pass overwrite=True to replace it.")
    forward = forward or (lambda m, inputs: m(inputs))
    if device is not None:
        model = model.to(device)
    caught: list[tuple[torch.Tensor, str, int]] = []  # (rows, layout, inputs in the batch)

    def hook(_module, _inputs, output):
        act = select_output(output, output_index=output_index)
        kind = resolve_layout(act, module, layout)
        caught.append((flatten(act.detach(), kind), kind, act.shape[0]))
        if stop_early:
            raise _StopForward

    out: ActivationStore | None = None
    pending: list[torch.Tensor] = []  # rows captured, not yet written
    pending_rows, write_rows = 0, 1
    was_training = model.training
    handle = module.register_forward_hook(hook)
    model.eval()
    try:
        with torch.no_grad():
            for batch in _batches(data, batch_size):
                inputs = _input_of(batch)
                if device is not None and isinstance(inputs, torch.Tensor):
                    inputs = inputs.to(device)
                caught.clear()
                try:
                    forward(model, inputs)
                except _StopForward:
                    pass
                if not caught:
                    raise ConfigError(f"layer {layer!r} did not run in the model's forward pass; pick a layer the forward uses.")
                rows, kind, n_inputs = caught[0]  # a layer called twice: its first call
                rows = rows.to("cpu", torch.float32)  # (N, d), N = n_inputs * positions
                if out is None:
                    positions = rows.shape[0] // max(n_inputs, 1)
                    out = ActivationStore.create(store, d=int(rows.shape[1]), dtype=dtype, max_bytes=max_bytes,
                                                 overwrite=overwrite,
                                                 meta={"layer": layer, "layout": kind, "positions": positions})
                elif out.meta["positions"] is not None and rows.shape[0] != n_inputs * out.meta["positions"]:
                    out.update_meta(positions=None)  # inputs of varying length: rows no longer map to inputs by division
                    write_rows = max(1, WRITE_BYTES // out.row_bytes)
                if max_rows is not None:
                    rows = rows[:max_rows - len(out) - pending_rows]
                pending.append(rows)
                pending_rows += rows.shape[0]
                if pending_rows >= write_rows:  # one write (and fsync) per few MiB, not per batch
                    out.append(torch.cat(pending))
                    pending, pending_rows = [], 0
                if max_rows is not None and len(out) + pending_rows >= max_rows:
                    break
            if pending_rows:
                out.append(torch.cat(pending))
    finally:
        handle.remove()
        model.train(was_training)
    if out is None:
        raise DataError("no batches were given; nothing was captured.")
    return out


__all__ = ["LAYOUTS", "capture", "find_layer", "flatten", "resolve_layout", "select_output", "unflatten"]
