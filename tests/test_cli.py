"""The `aekit` command line, called in process (aekit.cli.main) plus a few real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import cli
import torch

import aekit
from aekit.data import load_data
from aekit.variants import VARIANTS

TINY = ["--max-samples", "200", "--epochs", "2", "--hidden", "16", "--latent-dim", "3", "--quiet"]


@pytest.fixture(autouse=True)
def _no_fsync(no_fsync):
    """fsync is slow on VMs and durability is not under test here."""




def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line error, got:\n{err}"
    assert "Traceback" not in err
    assert lines[0].startswith("aekit")
    return lines[0]


def ok(*args) -> tuple[str, str]:
    code, out, err = cli(*args)
    assert code == 0, err
    return out, err


def digits_test_split(max_samples=200):
    """The split `aekit evaluate RUN` uses for a digits run: run.json's data options, split 'test'."""
    return load_data("digits", seed=0, val_fraction=0.1, max_samples=max_samples).test


def own_mse(model, x):
    with torch.no_grad():
        return float((model.reconstruct(x).double() - x.double()).pow(2).mean())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three small runs shared by the read-only tests: ae and vae on digits, ae on a uint8 .npy file."""
    root = tmp_path_factory.mktemp("runs")
    images = load_data("digits", seed=0).train[:120, 0]  # (120, 8, 8) in [0, 1]
    raw = np.round(images.numpy() * 240).astype(np.uint8)  # a uint8 image file: 0..240
    np.save(root / "digits_u8.npy", raw)
    paths = {"root": root, "npy": root / "digits_u8.npy", "raw": raw}
    for name, args in (("ae", ["ae", "--data", "digits"]), ("vae", ["vae", "--data", "digits"]),
                       ("file", ["ae", "--data", root / "digits_u8.npy", "--val-fraction", "0.25"])):
        code, out, err = cli("train", *args, *TINY, "--out", root / name)
        assert code == 0, err
        paths[name] = root / name
        paths[name + "_summary"] = json.loads(out.strip().splitlines()[-1])
    return paths


# ---------------------------------------------------------------------- list
def test_list_prints_every_variant():
    out, _ = ok("list")
    for name in VARIANTS:
        assert f"\n{name} " in out or out.startswith(f"{name} "), name
    assert any(line.startswith("variant ") and "reference" in line for line in out.splitlines())


def test_list_json_parses():
    out, _ = ok("list", "--json")
    data = json.loads(out)["variants"]
    assert [v["name"] for v in data] == list(VARIANTS)
    assert all({"summary", "reference", "axes", "latent_dim"} <= set(v) for v in data)


# ---------------------------------------------------------------------- train + evaluate
def test_train_writes_a_complete_run(runs):
    run = runs["ae"]
    for name in ("run.json", "config.json", "model.safetensors", "history.json", "history.csv", "checkpoints/last.json"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["variant"] == "ae"
    assert info["data"]["source"] == "digits" and info["data"]["max_samples"] == 200
    assert info["train"]["epochs"] == 2
    assert info["model"]["latent_dim"] == 3 and info["model"]["backbone"]["mlp"]["hidden"] == [16]
    assert len(json.loads((run / "history.json").read_text())) == 2
    summary = runs["ae_summary"]
    assert summary["epochs"] == 2 and summary["best_epoch"] == 2 and summary["run_dir"] == str(run)
    model = aekit.load(run)
    assert model.latent_dim == 3 and model.variant == "ae"


def test_run_json_records_the_command_given_to_main(runs):
    info = json.loads((runs["ae"] / "run.json").read_text())
    assert info["command"][:4] == ["aekit", "train", "ae", "--data"]


def test_evaluate_json_matches_own_computation(runs):
    out, _ = ok("evaluate", runs["ae"], "--json")
    result = json.loads(out)
    assert {"mse_per_pixel", "sse_per_image", "bce_per_image", "psnr", "n_samples"} <= set(result)
    x = digits_test_split()
    assert result["n_samples"] == x.shape[0]
    model = aekit.load(runs["ae"])
    mse = own_mse(model, x)
    assert result["mse_per_pixel"] == pytest.approx(mse, rel=1e-9)
    assert result["sse_per_image"] == pytest.approx(mse * 64, rel=1e-9)
    assert "elbo" not in result
    # the human-readable form has the same numbers
    text, _ = ok("evaluate", runs["ae"])
    assert "mse_per_pixel" in text and f"{result['mse_per_pixel']:.6g}" in text


def test_evaluate_split_option(runs):
    result = json.loads(ok("evaluate", runs["ae"], "--json", "--split", "val")[0])
    val = load_data("digits", seed=0, max_samples=200).val
    assert result["n_samples"] == val.shape[0]
    assert result["mse_per_pixel"] == pytest.approx(own_mse(aekit.load(runs["ae"]), val), rel=1e-9)
    code, _, err = cli("evaluate", runs["ae"], "--split", "tset")
    assert code == 2 and "Did you mean 'test'" in one_line_error(err)


def test_evaluate_vae_reports_elbo_and_kl(runs):
    result = json.loads(ok("evaluate", runs["vae"], "--json")[0])
    assert {"mse_per_pixel", "sse_per_image", "bce_per_image", "psnr", "n_samples", "elbo", "kl"} <= set(result)
    assert result["elbo"] < 0
    assert result["kl"] >= 0
    assert -result["elbo"] >= result["nll_recon"]
    assert -result["elbo"] == pytest.approx(result["nll_recon"] + result["kl"], rel=1e-9)
    assert len(result["kl_per_unit"]) == 3 and sum(result["kl_per_unit"]) == pytest.approx(result["kl"], rel=1e-6)
    assert result["n_samples"] == digits_test_split().shape[0]


def test_evaluate_with_a_file_uses_the_whole_file(runs):
    raw = runs["raw"]
    result = json.loads(ok("evaluate", runs["ae"], "--data", runs["npy"], "--json")[0])
    assert result["n_samples"] == raw.shape[0] == 120
    x = torch.from_numpy(raw.astype(np.float32) / 255.0)[:, None]
    assert result["mse_per_pixel"] == pytest.approx(own_mse(aekit.load(runs["ae"]), x), rel=1e-6)


# ---------------------------------------------------------------------- encode / reconstruct / sample
def test_encode_writes_codes(runs, tmp_path):
    ok("encode", runs["ae"], "--out", tmp_path / "z.npy")
    z = np.load(tmp_path / "z.npy")
    x = digits_test_split()
    assert z.shape == (x.shape[0], 3) and z.dtype == np.float32
    with torch.no_grad():
        expected = aekit.load(runs["ae"]).encode(x).numpy()
    np.testing.assert_allclose(z, expected, rtol=1e-6, atol=1e-6)
    code, _, err = cli("encode", runs["ae"], "--out", tmp_path / "z.txt")
    assert code == 2 and ".npy" in one_line_error(err)


def test_reconstruct_writes_the_units_of_the_loaded_data(runs, tmp_path):
    raw = runs["raw"]
    ok("reconstruct", runs["file"], "--data", runs["npy"], "--out", tmp_path / "r.npy")
    r = np.load(tmp_path / "r.npy")
    assert r.shape == (120, 1, 8, 8)
    x = torch.from_numpy(raw.astype(np.float32) / 255.0)[:, None]
    with torch.no_grad():
        expected = aekit.load(runs["file"]).reconstruct(x).clamp(0, 1).numpy() * 255.0  # image units, clipped
    np.testing.assert_allclose(r, expected, rtol=1e-5, atol=1e-3)
    assert r.max() > 2.0, "values must be on the file's 0..255 scale, not in [0, 1]"
    # without --data: the run's own file, its held-out validation rows
    ok("reconstruct", runs["file"], "--out", tmp_path / "r_val.npy")
    assert np.load(tmp_path / "r_val.npy").shape == (30, 1, 8, 8)


def test_sample_from_a_vae(runs, tmp_path):
    ok("sample", runs["vae"], "-n", 5, "--out", tmp_path / "s.npy")
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (5, 1, 8, 8) and s.min() >= 0 and s.max() <= 16  # the units of digits: 0..16
    with torch.no_grad():
        expected = aekit.load(runs["vae"]).sample(5, generator=torch.Generator().manual_seed(0)).clamp(0, 1) * 16
    np.testing.assert_allclose(s, expected.numpy(), rtol=1e-6, atol=1e-5)
    ok("sample", runs["vae"], "-n", 5, "--out", tmp_path / "again.npy")
    np.testing.assert_array_equal(s, np.load(tmp_path / "again.npy"))  # --seed 0 by default
    ok("sample", runs["vae"], "-n", 5, "--seed", 1, "--out", tmp_path / "other.npy")
    assert not np.array_equal(s, np.load(tmp_path / "other.npy"))

    ok("sample", runs["vae"], "-n", 5, "--out", tmp_path / "s.png")
    from PIL import Image

    with Image.open(tmp_path / "s.png") as img:
        assert img.size == (3 * 9 - 1, 2 * 9 - 1)  # 3 columns x 2 rows of 8x8 with 1-pixel gaps
    code, _, err = cli("sample", runs["vae"], "-n", 0, "--out", tmp_path / "x.npy")
    assert code == 2 and "positive integer" in err


def test_sample_from_an_ae_fails_with_one_line(runs, tmp_path):
    code, _, err = cli("sample", runs["ae"], "-n", 5, "--out", tmp_path / "s.npy")
    assert code == 2
    assert "gaussian" in one_line_error(err)
    assert not (tmp_path / "s.npy").exists()


def test_real_subprocess_exit_codes_and_one_line_errors(runs, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "aekit", "sample", str(runs["ae"]), "-n", "5", "--out",
                           str(tmp_path / "s.npy")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "gaussian" in one_line_error(proc.stderr)
    proc = subprocess.run([sys.executable, "-m", "aekit", "train", "ae", "--data", "digits", "--lattent-dim", "3",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    line = one_line_error(proc.stderr)
    assert "--lattent-dim" in line
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------- resume / overwrite
def test_resume_continues_to_more_epochs_like_an_uninterrupted_run(tmp_path):
    # a constant learning rate: a cosine schedule's shape depends on the total epochs, so extending it changes history
    run, ref = tmp_path / "run", tmp_path / "ref"
    ok("train", "ae", "--data", "digits", *TINY, "--schedule", "none", "--warmup-steps", 0, "--out", run)
    out, _ = ok("train", "ae", "--out", run, "--resume", "--epochs", 4, "--quiet")
    assert json.loads(out.strip().splitlines()[-1])["epochs"] == 4
    history = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    ok("train", "ae", "--data", "digits", *TINY[:2], "--epochs", 4, *TINY[4:], "--schedule", "none", "--warmup-steps", 0, "--out", ref)
    a, b = aekit.load(run).state_dict(), aekit.load(ref).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # ae: no random noise, so the CLI runs are exact
    assert [r["val_loss"] for r in history] == [r["val_loss"] for r in json.loads((ref / "history.json").read_text())]


def test_training_into_an_existing_run_is_refused(runs):
    run = runs["ae"]
    before = {name: (run / name).read_bytes() for name in ("model.safetensors", "run.json", "history.json")}
    code, _, err = cli("train", "ae", "--data", "digits", *TINY, "--out", run)
    assert code == 2
    line = one_line_error(err)
    assert "--resume" in line and "--overwrite" in line
    assert {name: (run / name).read_bytes() for name in before} == before


def test_same_seed_gives_the_same_denoising_run(tmp_path):
    ok("train", "dae", "--data", "digits", *TINY, "--seed", 1, "--out", tmp_path / "a")
    torch.rand(3)  # whatever ran before in the process must not matter
    ok("train", "dae", "--data", "digits", *TINY, "--seed", 1, "--out", tmp_path / "b")
    a, b = aekit.load(tmp_path / "a").state_dict(), aekit.load(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_overwrite_replaces_a_run(tmp_path):
    run = tmp_path / "run"
    ok("train", "ae", "--data", "digits", *TINY, "--out", run)
    ok("train", "vae", "--data", "digits", *TINY, "--out", run, "--overwrite")
    assert json.loads((run / "run.json").read_text())["variant"] == "vae"
    assert aekit.load(run).is_generative


def test_overwrite_with_fewer_epochs_leaves_a_consistent_checkpoint_folder(tmp_path):
    run = tmp_path / "run"
    ok("train", "ae", "--data", "digits", *TINY[:2], "--epochs", 4, *TINY[4:], "--out", run)
    ok("train", "ae", "--data", "digits", *TINY, "--out", run, "--overwrite")
    ckpts = run / "checkpoints"
    last = json.loads((ckpts / "last.json").read_text())["dir"]
    assert (ckpts / last).is_dir()
    assert sorted(p.name for p in ckpts.glob("epoch-*")) == ["epoch-00001", "epoch-00002"]


def test_resume_onecycle_run_to_more_epochs(tmp_path):
    run = tmp_path / "run"
    ok("train", "ae", "--data", "digits", *TINY, "--schedule", "onecycle", "--out", run)
    code, _, err = cli("train", "ae", "--out", run, "--resume", "--epochs", 4, "--quiet")
    assert code == 0 or (code == 1 and one_line_error(err))


# ---------------------------------------------------------------------- config files
def test_config_toml_sets_options_and_the_command_line_wins(tmp_path):
    cfg = tmp_path / "opts.toml"
    cfg.write_text('epochs = 3\nhidden = [12]\nlatent-dim = 2\nmax_samples = 150\nlr = 0.005\n')
    out, _ = ok("train", "ae", "--data", "digits", "--config", cfg, "--epochs", 2, "--quiet", "--out", tmp_path / "r")
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["train"]["epochs"] == 2  # the command line wins
    assert info["train"]["lr"] == 0.005
    assert info["model"]["backbone"]["mlp"]["hidden"] == [12] and info["model"]["latent_dim"] == 2
    assert info["data"]["max_samples"] == 150
    assert len(json.loads((tmp_path / "r" / "history.json").read_text())) == 2


def test_config_yaml_sets_options(tmp_path):
    cfg = tmp_path / "opts.yaml"
    cfg.write_text("epochs: 1\nhidden: '8'\nlatent_dim: 2\nmax_samples: 100\nlr: 0.02\nquiet: true\n")
    ok("train", "ae", "--data", "digits", "--config", cfg, "--out", tmp_path / "r")
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["train"]["epochs"] == 1 and info["train"]["lr"] == 0.02
    assert info["model"]["backbone"]["mlp"]["hidden"] == [8] and info["model"]["latent_dim"] == 2


def test_config_unknown_key_is_an_error_with_did_you_mean(tmp_path):
    cfg = tmp_path / "opts.toml"
    cfg.write_text("epoch = 3\n")
    code, _, err = cli("train", "ae", "--data", "digits", "--config", cfg, "--out", tmp_path / "r")
    assert code == 2
    line = one_line_error(err)
    assert "epoch" in line and "Did you mean 'epochs'" in line
    assert not (tmp_path / "r").exists()
    code, _, err = cli("train", "ae", "--data", "digits", "--config", tmp_path / "missing.toml", "--out", tmp_path / "r")
    assert code == 2 and "missing.toml" in one_line_error(err)
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    code, _, err = cli("train", "ae", "--data", "digits", "--config", bad, "--out", tmp_path / "r")
    assert code == 2 and "bad.toml" in one_line_error(err)


def test_config_does_not_override_a_zero_given_on_the_command_line(tmp_path):
    cfg = tmp_path / "opts.toml"
    cfg.write_text("seed = 3\n")
    ok("train", "ae", "--data", "digits", *TINY, "--config", cfg, "--seed", 0, "--out", tmp_path / "r")
    assert json.loads((tmp_path / "r" / "run.json").read_text())["train"]["seed"] == 0


def test_config_yaml_scientific_notation(tmp_path):
    cfg = tmp_path / "opts.yaml"
    cfg.write_text("lr: 1e-3\n")
    ok("train", "ae", "--data", "digits", *TINY, "--config", cfg, "--out", tmp_path / "r")


# ---------------------------------------------------------------------- user errors
def test_mistyped_option_exit_2_one_line(tmp_path):
    code, _, err = cli("train", "ae", "--data", "digits", "--lattent-dim", "3", "--out", tmp_path / "r")
    assert code == 2
    assert "unrecognized arguments: --lattent-dim" in one_line_error(err)
    code, _, err = cli("trian", "ae")
    assert code == 2 and "Did you mean 'train'" in one_line_error(err)
    code, _, err = cli("train", "ae", "--data", "digits", "--epochs", "two", "--out", tmp_path / "r")
    assert code == 2 and "two" in one_line_error(err)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,hint", [
    (["train", "ae", "--data", "digits", "--lattent-dim", "3"], "Did you mean '--latent-dim'"),
    (["list", "--jsn"], "Did you mean '--json'"),
])
def test_mistyped_option_did_you_mean(tmp_path, args, hint):
    code, _, err = cli(*args, "--out", tmp_path / "r") if args[0] == "train" else cli(*args)
    assert code == 2
    assert hint in one_line_error(err)


def test_mistyped_variant_one_line_with_did_you_mean(tmp_path):
    code, _, err = cli("train", "vea", "--data", "digits", "--out", tmp_path / "r")
    assert code == 2
    assert "Did you mean 'vae'" in one_line_error(err)
    assert not (tmp_path / "r" / "run.json").exists()


def test_missing_data_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.npy"
    code, _, err = cli("train", "ae", "--data", missing, "--out", tmp_path / "r")
    assert code == 1
    assert str(missing) in one_line_error(err)
    code, _, err = cli("train", "ae", "--data", "digts", "--out", tmp_path / "r")
    assert code == 1 and "Did you mean 'digits'" in one_line_error(err)


@pytest.mark.parametrize("args,needle", [
    (["--noise", "gaussian:abc"], "abc"),
    (["--noise", "gausian:0.1"], "Did you mean 'gaussian'"),
    (["--noise", "masking:1.5"], "masking"),
    (["--sparsity", "kl:abc"], "kl:abc"),
    (["--sparsity", "kx:0.05"], "Did you mean 'kl'"),
])
def test_bad_model_options_are_one_line_errors(tmp_path, args, needle):
    code, _, err = cli("train", "ae", "--data", "digits", *TINY, *args, "--out", tmp_path / "r")
    assert code == 2
    assert needle in one_line_error(err)


def test_missing_out_and_missing_run_dir(tmp_path):
    code, _, err = cli("train", "ae", "--data", "digits")
    assert code == 2 and "--out" in one_line_error(err)
    code, _, err = cli("evaluate", tmp_path / "nothing")
    assert code == 1 and "does not exist" in one_line_error(err)


def test_sparsity_kl_on_sparse_kl_trains(tmp_path):
    ok("train", "sparse_kl", "--data", "digits", *TINY, "--sparsity", "kl:0.05", "--out", tmp_path / "r")
    model_cfg = json.loads((tmp_path / "r" / "run.json").read_text())["model"]
    assert model_cfg["regularizers"]["kl_sparsity"]["rho"] == 0.05
    assert model_cfg["bottleneck"]["deterministic"]["activation"] == "sigmoid"
    result = json.loads(ok("evaluate", tmp_path / "r", "--json")[0])
    assert np.isfinite(result["mse_per_pixel"])


def test_noise_option_makes_a_denoising_run(tmp_path):
    ok("train", "ae", "--data", "digits", *TINY, "--noise", "gaussian:0.2", "--out", tmp_path / "r")
    assert json.loads((tmp_path / "r" / "run.json").read_text())["model"]["corruption"] == {"gaussian": {"std": 0.2}}


def test_negative_weight_decay_is_a_one_line_error(tmp_path):
    code, _, err = cli("train", "ae", "--data", "digits", *TINY, "--weight-decay", "-1", "--out", tmp_path / "r")
    assert code in (1, 2) and "weight" in one_line_error(err)


# ---------------------------------------------------------------------- demo
def test_demo_prints_a_table_and_writes_results(tmp_path):
    out_dir = tmp_path / "demo"
    out, err = ok("demo", "--epochs", 2, "--variants", "ae,vae", "--latent-dim", 3, "--out", out_dir)
    rows = {line.split("  ")[0].strip() for line in out.strip().splitlines()[2:]}
    assert rows == {"ae", "vae", "PCA (baseline)"}
    assert "mse_per_pixel" in out and "probe_acc" in out
    results = json.loads((out_dir / "results.json").read_text())
    assert [r["model"] for r in results] == ["ae", "vae", "PCA (baseline)"]
    assert all(0 < r["mse_per_pixel"] < 1 and 0 <= r["probe_acc"] <= 1 for r in results)
    assert results[1]["elbo"] < 0 and "elbo" not in results[0]
    md = (out_dir / "results.md").read_text()
    assert md.startswith("| model |") and "PCA (baseline)" in md
    assert (out_dir / "ae" / "model.safetensors").is_file() and (out_dir / "vae" / "run.json").is_file()
    code, _, err = cli("demo", "--epochs", 1, "--variants", "ae,vea", "--out", out_dir)
    assert code == 2 and "Did you mean 'vae'" in one_line_error(err)
