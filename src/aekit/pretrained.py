"""Shareable models: a folder in the Hugging Face Hub's layout, with a model card; loaded from local folders only.

    import aekit
    aekit.save_pretrained(model, "mnist-vae", data="mnist", metrics={"val_loss": 98.2},
                          command="aekit train vae --data mnist --out runs/vae", license="mit")
    same = aekit.from_pretrained("mnist-vae")        # eval mode; outputs bit-identical to model's

    mnist-vae/config.json         aekit's model config, with its own SHA-256 (as aekit.save writes it)
    mnist-vae/model.safetensors   the weights; the header carries the SHA-256 of the tensors
    mnist-vae/README.md           the model card: YAML front matter (library_name: aekit, license, tags)
                                  and a body with the variant, input shape, data, metrics and command

The weights and config are written and checked by aekit.checkpoint (save/load): a tampered or
truncated file is refused, nothing is unpickled. A Hub repository is a git repository of such a
folder (Hugging Face, "Model Cards", https://huggingface.co/docs/hub/model-cards, after Mitchell et al.
2019, "Model Cards for Model Reporting", FAT*), so a user uploads it with their own client
(`huggingface_hub.upload_folder(repo_id=..., folder_path="mnist-vae")`), and downloads one with
`huggingface_hub.snapshot_download(repo_id)` before `aekit.from_pretrained(that_folder)`:
aekit itself makes no network call.

A run written by `aekit train` is exported with `aekit export RUN_DIR --pretrained FOLDER`
(export_run_pretrained): its kept model, with run.json's data and command and the kept epoch's metrics.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from pathlib import Path

import yaml

from . import checkpoint as ckpt
from .errors import CheckpointError, ConfigError

CARD_NAME = "README.md"
DEFAULT_LICENSE = "other"  # the Hub's identifier for "see the card": the weights' terms are their author's to state
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # user/repo
_LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")  # the Hub's license identifiers: mit, apache-2.0, cc-by-4.0, other ...


def save_pretrained(model, folder: str | os.PathLike, *, data=None, metrics: dict | None = None, command=None,
                    license: str = DEFAULT_LICENSE, tags: list[str] | None = None) -> Path:
    """Write config.json, model.safetensors (checksummed, via aekit.save) and README.md (the model card) into folder.

    data: what it was trained on: a name ("mnist") or a dict (run.json's "data"/"dataset"), shown in the card.
    metrics: {name: number} for the card's metrics table. command: the command that made it (a string or an
    argv list). license: a Hub license identifier ("mit", "apache-2.0", "cc-by-4.0", ...; default "other").
    tags: extra Hub tags (the card always has aekit, autoencoder and the variant). Returns the folder."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ConfigError(f"model must be an aekit model (with a .config dict); got {type(model).__name__}.")
    if not isinstance(license, str) or not _LICENSE.match(license):
        raise ConfigError(f"license must be a Hugging Face license identifier such as 'mit', 'apache-2.0' or 'other'; "
                          f"got {license!r}.")
    if metrics is not None and not (isinstance(metrics, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in metrics.items())):
        raise ConfigError(f"metrics must be a dict of names to numbers; got {metrics!r:.100}.")
    if tags is not None and not (isinstance(tags, (list, tuple)) and all(isinstance(t, str) and t for t in tags)):
        raise ConfigError(f"tags must be a list of non-empty strings; got {tags!r:.100}.")
    if command is not None and not isinstance(command, (str, list, tuple)):
        raise ConfigError(f"command must be a string or a list of arguments; got {type(command).__name__}.")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"folder {str(folder)!r} exists and is not a folder.")
    ckpt.save(model, folder)
    card = model_card(model, data=data, metrics=metrics, command=command, license=license, tags=tags,
                      weights_sha256=ckpt.sha256((folder / ckpt.WEIGHTS_NAME).read_bytes()))
    ckpt.atomic_write_bytes(folder / CARD_NAME, card.encode())
    return folder


def from_pretrained(folder: str | os.PathLike, *, map_location: str = "cpu"):
    """Load a folder written by save_pretrained (or aekit.save) from the local disk, checksums verified; eval mode.

    Only local folders: a Hub id ("user/repo") or URL is refused with how to download it first."""
    if not isinstance(folder, (str, os.PathLike)):
        raise ConfigError(f"folder must be a path to a local folder; got {type(folder).__name__}.")
    path = Path(folder)
    if not path.is_dir():
        text = os.fspath(folder)
        hub = text.startswith(("http://", "https://", "hf://")) or (_HUB_ID.match(text) and not path.exists())
        what = "looks like a Hugging Face Hub id or URL" if hub else "is not a folder"
        raise CheckpointError(f"{text!r} {what}: aekit loads local folders only; download it first with "
                              f"huggingface_hub.snapshot_download(repo_id, local_dir=FOLDER) and pass FOLDER.")
    return ckpt.load(path, map_location=map_location)


# ---------------------------------------------------------------------- the model card
def _number(v) -> str:
    return repr(v) if isinstance(v, int) or not math.isfinite(v) else f"{v:.6g}"


def _cell(text) -> str:
    """Text safe inside one Markdown table cell or line: no newlines, no pipes."""
    return str(text).replace("\n", " ").replace("|", "\\|")


def model_card(model, *, data=None, metrics: dict | None = None, command=None, license: str = DEFAULT_LICENSE,
               tags: list[str] | None = None, weights_sha256: str | None = None) -> str:
    """README.md text: YAML front matter for the Hub (library_name, license, tags) and a Markdown body."""
    config = model.config
    variant = config.get("variant") or "custom"
    all_tags = ["aekit", "autoencoder", str(variant)] + [t for t in (tags or []) if t]
    all_tags = list(dict.fromkeys(all_tags))  # once each, in order
    front = {"library_name": "aekit", "license": license, "tags": all_tags}
    params = sum(p.numel() for p in model.parameters())
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
             f"# {_cell(variant)} autoencoder (aekit)", "",
             f"An aekit model: variant `{_cell(variant)}`, saved with `aekit.save_pretrained`.", "",
             "| | |", "|---|---|",
             f"| variant | `{_cell(variant)}` |",
             f"| input shape | `{tuple(config.get('input_shape') or ())}` (per sample, batch first) |",
             f"| latent size | {_cell(config.get('latent_dim'))} |",
             f"| backbone | {_cell(config.get('backbone'))} |",
             f"| bottleneck | {_cell(config.get('bottleneck'))} |",
             f"| likelihood | {_cell(config.get('likelihood'))} |",
             f"| parameters | {params:,} |",
             f"| license | {license} |", ""]
    lines += ["## Data", ""]
    if data is None:
        lines += ["Not recorded.", ""]
    elif isinstance(data, dict):
        lines += [f"- {_cell(k)}: {_cell(v)}" for k, v in data.items() if v is not None] + [""]
    else:
        lines += [_cell(data), ""]
    lines += ["## Metrics", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {_cell(k)} | {_number(v)} |" for k, v in metrics.items()] + [""]
    else:
        lines += ["Not recorded.", ""]
    lines += ["## How it was made", ""]
    if command is None:
        lines += ["Not recorded.", ""]
    else:
        text = command if isinstance(command, str) else shlex.join(str(c) for c in command)
        lines += ["```bash", text.replace("```", "'''"), "```", ""]
    lines += ["## Use", "", "```python", "import aekit", "",
              "model = aekit.from_pretrained(\"path/to/this/folder\")  # checks the weights' and config's SHA-256",
              "z = model.encode(x)        # x: (batch, *input_shape) -> z: (batch, latent size)",
              "x_hat = model.decode(z)    # the reconstruction mean",
              "```", "",
              "From the Hub, download the folder first (aekit makes no network calls):", "",
              "```python", "from huggingface_hub import snapshot_download", "",
              "model = aekit.from_pretrained(snapshot_download(\"USER/REPO\"))", "```", ""]
    lines += ["## Files", "", f"- `{ckpt.CONFIG_NAME}`: the model configuration (with its own `config_sha256`)",
              f"- `{ckpt.WEIGHTS_NAME}`: the weights (safetensors; the header holds the tensors' SHA-256)"
              + (f"; file SHA-256 `{weights_sha256}`" if weights_sha256 else ""), ""]
    return "\n".join(lines)


def read_card(folder: str | os.PathLike) -> tuple[dict, str]:
    """(front matter as a dict, Markdown body) of a folder's README.md."""
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} does not exist.")
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise CheckpointError(f"{str(path)!r} has no YAML front matter (a '---' block first).")
    head, body = text[4:].split("\n---\n", 1)
    try:
        meta = yaml.safe_load(head)
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{str(path)!r} has invalid YAML front matter ({str(exc).splitlines()[0]}).") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{str(path)!r} front matter must be a mapping.")
    return meta, body


# ---------------------------------------------------------------------- from a run folder
def run_metrics(history: list[dict], *, best_epoch: int | None = None) -> dict:
    """The kept epoch's numbers: the record of best_epoch, else the lowest val_loss, else the last one."""
    records = [r for r in history if isinstance(r, dict)]
    if not records:
        return {}
    pick = None
    if best_epoch is not None:
        pick = next((r for r in records if r.get("epoch") == best_epoch), None)
    if pick is None:
        with_val = [r for r in records if isinstance(r.get("val_loss"), (int, float))]
        pick = min(with_val, key=lambda r: r["val_loss"]) if with_val else records[-1]
    keep = {k: v for k, v in pick.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and (k == "epoch" or k.startswith(("train_", "val_")))}
    return keep


def _read_history(path: Path) -> list:
    """history.json's records ([] when the file is absent); a damaged file is a one-line CheckpointError."""
    if not path.is_file():
        return []
    try:
        history = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({exc}).") from None
    if not isinstance(history, list):
        raise CheckpointError(f"{str(path)!r} must hold a list of per-epoch records; got {type(history).__name__}.")
    return history


def _public(value):
    """An absolute local path shortened to its last part (a shared card need not show the author's folders)."""
    if isinstance(value, str):
        head, eq, tail = value.partition("=")
        if eq and head.startswith("--") and os.path.isabs(tail):  # --data=/home/me/x.npy
            return f"{head}={Path(tail).name}"
        if os.path.isabs(value):
            return Path(value).name
    return value


def export_run_pretrained(run_dir: str | os.PathLike, folder: str | os.PathLike, *,
                          license: str = DEFAULT_LICENSE) -> Path:
    """save_pretrained for the kept model of a run written by `aekit train`: data and command from run.json,
    metrics from history.json (the kept epoch: the lowest validation loss, else the last). Absolute local paths
    in the data and the command are shortened to their last part."""
    from .training.runs import load_run

    run_dir, folder = Path(run_dir), Path(folder)
    if folder.resolve() == run_dir.resolve():
        raise ConfigError(f"--pretrained {str(folder)!r} is the run folder itself; give a new folder.")
    model, info = load_run(run_dir)
    history = _read_history(run_dir / "history.json")
    data = {}
    for key in ("data", "dataset"):
        if isinstance(info.get(key), dict):
            data.update({k: _public(v) for k, v in info[key].items() if isinstance(v, (str, int, float, bool, list))})
    command = info.get("command")
    command = [_public(str(a)) for a in command] if isinstance(command, list) else None
    return save_pretrained(model, folder, data=data or None, metrics=run_metrics(history) or None,
                           command=command, license=license)
