"""aekit.save_pretrained / aekit.from_pretrained: a Hub-layout folder with a model card, loaded locally only."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import torch
from cli_helpers import cli

import aekit
from aekit.errors import CheckpointError, ConfigError
from aekit.pretrained import read_card, run_metrics

FIXTURES = Path(__file__).parent / "fixtures" / "v1"


@pytest.fixture(autouse=True)
def _no_fsync(no_fsync):
    """fsync is slow on VMs and durability is not under test here."""


@pytest.fixture
def no_network(monkeypatch):
    def refuse(self, address):
        raise AssertionError(f"network call to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _vae():
    return aekit.build("vae", input_shape=(1, 8, 8), hidden=[8], latent_dim=2, seed=3)


def test_round_trip_gives_identical_outputs_and_the_hub_layout(tmp_path, no_network):
    model = _vae().eval()
    folder = aekit.save_pretrained(model, tmp_path / "m", data="digits (sklearn), 8x8", metrics={"val_loss": 12.5},
                                   command=["aekit", "train", "vae", "--data", "digits"], license="mit")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    same = aekit.from_pretrained(folder)
    assert not same.training
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(same.encode(x), model.encode(x))
    assert torch.equal(same.decode(model.encode(x)), model.decode(model.encode(x)))
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), model.state_dict().values()))
    assert torch.equal(aekit.load(folder).encode(x), model.encode(x))  # the same files aekit.save writes


def test_the_card_has_front_matter_and_every_field(tmp_path):
    model = _vae()
    aekit.save_pretrained(model, tmp_path, data={"source": "digits", "val_fraction": 0.1},
                          metrics={"val_loss": 12.5, "epoch": 3}, command="aekit train vae --data digits | tee log",
                          license="apache-2.0", tags=["mnist", "aekit"])
    meta, body = read_card(tmp_path)
    assert meta == {"library_name": "aekit", "license": "apache-2.0", "tags": ["aekit", "autoencoder", "vae", "mnist"]}
    assert "| variant | `vae` |" in body and "| input shape | `(1, 8, 8)` (per sample, batch first) |" in body
    assert "| latent size | 2 |" in body
    assert f"| parameters | {sum(p.numel() for p in model.parameters()):,} |" in body
    assert "- source: digits" in body and "- val_fraction: 0.1" in body
    assert "| val_loss | 12.5 |" in body and "| epoch | 3 |" in body
    assert "```bash\naekit train vae --data digits | tee log\n```" in body  # a code block: pipes are kept
    weights = (tmp_path / "model.safetensors").read_bytes()
    import hashlib

    assert hashlib.sha256(weights).hexdigest() in body


def test_without_data_metrics_or_command_the_card_says_not_recorded(tmp_path):
    aekit.save_pretrained(_vae(), tmp_path)
    meta, body = read_card(tmp_path)
    assert meta["license"] == "other" and body.count("Not recorded.") == 3


def test_tampered_weights_are_refused(tmp_path):
    aekit.save_pretrained(_vae(), tmp_path)
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the checksum in its header"):
        aekit.from_pretrained(tmp_path)


def test_a_tampered_config_is_refused(tmp_path):
    aekit.save_pretrained(_vae(), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["config"]["latent_dim"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config_sha256"):
        aekit.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", ["someone/mnist-vae", "https://huggingface.co/someone/mnist-vae", "hf://someone/x"])
def test_a_hub_id_is_refused_with_how_to_download_it(name, no_network):
    with pytest.raises(CheckpointError) as info:
        aekit.from_pretrained(name)
    msg = str(info.value)
    assert "looks like a Hugging Face Hub id or URL: aekit loads local folders only" in msg
    assert "snapshot_download" in msg and "\n" not in msg


def test_a_file_or_missing_path_is_not_a_folder(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    for path in (tmp_path / "f.txt", tmp_path / "missing"):
        with pytest.raises(CheckpointError, match="is not a folder: aekit loads local folders only"):
            aekit.from_pretrained(path)
    with pytest.raises(ConfigError, match="folder must be a path"):
        aekit.from_pretrained(3)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ConfigError, match="license must be a Hugging Face license identifier.*'MIT License'"):
        aekit.save_pretrained(_vae(), tmp_path, license="MIT License")
    with pytest.raises(ConfigError, match="metrics must be a dict of names to numbers"):
        aekit.save_pretrained(_vae(), tmp_path, metrics={"val_loss": "low"})
    with pytest.raises(ConfigError, match="model must be an aekit model"):
        aekit.save_pretrained(torch.nn.Linear(2, 2), tmp_path)
    assert not (tmp_path / "config.json").exists()  # nothing written before the arguments are checked


def test_run_metrics_pick_the_kept_epoch():
    history = [{"epoch": 1, "val_loss": 3.0, "train_loss": 4.0, "lr": 1e-3},
               {"epoch": 2, "val_loss": 2.0, "train_loss": 3.0, "lr": 1e-3},
               {"epoch": 3, "val_loss": 2.5, "train_loss": 2.0, "lr": 1e-3}]
    assert run_metrics(history) == {"epoch": 2, "val_loss": 2.0, "train_loss": 3.0}  # lr is no metric
    assert run_metrics([{k: v for k, v in r.items() if k != "val_loss"} for r in history])["epoch"] == 3
    assert run_metrics(history, best_epoch=1)["epoch"] == 1 and run_metrics([]) == {}


def test_cli_exports_a_run_folder_as_a_pretrained_folder(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "vae", run)
    code, out, err = cli("export", "--pretrained", tmp_path / "hub", run, "--license", "mit")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["pretrained"] == str(tmp_path / "hub")
    model, kept = aekit.from_pretrained(tmp_path / "hub"), aekit.load(run)
    x = torch.rand(4, *kept.config["input_shape"])
    assert torch.equal(model.encode(x), kept.encode(x))
    meta, body = read_card(tmp_path / "hub")
    assert meta["license"] == "mit" and "vae" in meta["tags"]
    info = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    best = min(history, key=lambda r: r["val_loss"])
    assert f"| val_loss | {best['val_loss']:.6g} |" in body
    assert "```bash\n" + " ".join(info["command"]) + "\n```" in body  # plain arguments: shlex.join adds no quotes
    assert f"- source: {Path(info['data']['source']).name}" in body
    assert str(Path(info["data"]["source"]).parent) not in body  # the fixture's source is an absolute path


def test_export_shortens_absolute_local_paths(tmp_path):
    from aekit.pretrained import _public

    assert _public("/home/me/data/x.npy") == "x.npy" and _public("--data=/home/me/x.npy") == "--data=x.npy"
    assert _public("mnist") == "mnist" and _public("rel/x.npy") == "rel/x.npy" and _public(3) == 3


def test_cli_export_pretrained_refuses_out_and_the_run_folder_itself(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "vae", run)
    code, _, err = cli("export", run, "--pretrained", tmp_path / "hub", "--out", tmp_path / "x")
    assert code != 0 and "--out is for --format exports" in err
    code, _, err = cli("export", run, "--pretrained", run)
    assert code != 0 and "is the run folder itself" in err


def test_the_hub_client_reads_the_card(tmp_path, no_network):
    hub = pytest.importorskip("huggingface_hub", reason="huggingface_hub not installed (only this check needs it)")
    aekit.save_pretrained(_vae(), tmp_path, license="cc-by-4.0", metrics={"val_loss": 1.5})
    card = hub.ModelCard.load(tmp_path / "README.md")  # parsing only; validate() would call the Hub's API
    assert card.data.library_name == "aekit" and card.data.license == "cc-by-4.0"
    assert card.data.tags == ["aekit", "autoencoder", "vae"]
    assert card.text.lstrip().startswith("# vae autoencoder (aekit)")
