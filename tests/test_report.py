"""`aekit report`, `aekit compare` and the demo's comparison page: sections, embedded images, Markdown."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from cli_helpers import cli
import torch
from PIL import Image

import aekit
from aekit.viz.report import PLOTS, Context

TINY = ["--max-samples", "200", "--epochs", "2", "--hidden", "16", "--latent-dim", "3", "--quiet"]
ALWAYS = ["metrics", "config", "diagnostics", "loss-curves", "latent-space"]
DECODING = ["manifold", "traversals", "interpolations"]
EXPECTED = {  # plot sections per variant on digits (input (1, 8, 8))
    "ae": ["reconstructions", "loss-curves", "latent-space"] + DECODING,
    "vae": ["reconstructions", "loss-curves", "latent-space", "manifold", "traversals", "traversals-by-kl",
            "interpolations", "samples", "kl-per-unit"],
    "dae": ["reconstructions", "loss-curves", "latent-space"] + DECODING + ["denoising"],
    "sparse_kl": ["reconstructions", "loss-curves", "latent-space"] + DECODING + ["code-histogram"],
    "sparse_l1": ["reconstructions", "loss-curves", "latent-space"] + DECODING + ["code-histogram"],
}
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(autouse=True)
def _no_fsync(no_fsync):
    """fsync is slow on VMs and durability is not under test here."""




@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs: a denoising, sparse VAE on digits (every plot applies) and an ae on a table (.npy vectors)."""
    root = tmp_path_factory.mktemp("report_runs")
    table = np.random.default_rng(0).normal(size=(150, 12)).astype(np.float32)
    np.save(root / "table.npy", table)
    paths = {"root": root}
    for name, args in (("every", ["vae", "--data", "digits", "--noise", "masking:0.25", "--sparsity", "l1:0.001"]),
                       ("table", ["ae", "--data", root / "table.npy"])):
        code, _, err = cli("train", *args, *TINY, "--out", root / name)
        assert code == 0, err
        paths[name] = root / name
    return paths


def section_ids(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


def check_images(html: str) -> int:
    """Every embedded image decodes as a PNG that is not blank; returns how many there are."""
    found = IMG.findall(html)
    for data in found:
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            assert im.format == "PNG"
            assert np.asarray(im.convert("L"), dtype=np.float64).std() > 5
    assert html.count("<img") == len(found)  # no image that is not an embedded PNG
    return len(found)


@pytest.mark.parametrize("variant", list(EXPECTED))
def test_the_plots_that_apply_to_each_variant(variant):
    model = aekit.build(variant, input_shape=(1, 8, 8), latent_dim=3, hidden=[8], seed=0).eval()
    x = torch.rand(20, 1, 8, 8)
    ctx = Context(model=model, x=x, y=None, z=model.encode(x).detach().numpy(), history=[{"train_loss": 1.0}],
                  kl_per_unit=[0.1] * 3 if model.is_generative else None, tsne=False, seed=0)
    shown = [sid for sid, _, _, why_not, _ in PLOTS if why_not(ctx) is None]
    assert shown == EXPECTED[variant]


def test_report_of_a_model_with_every_ingredient(runs, tmp_path):
    out = tmp_path / "sub" / "r.html"
    code, stdout, err = cli("report", runs["every"], "--out", out, "--tsne")
    assert code == 0, err
    assert stdout.strip() == str(out)
    html = out.read_text()
    plots = [sid for sid, *_ in PLOTS]
    # every plot section, in order; left out only the compression section, which needs a rate-trained bottleneck
    assert section_ids(html) == ALWAYS[:3] + plots + ["not-shown"]
    assert html.count("<li><b>") == 1 and "only rate-trained runs" in html
    for sid in ALWAYS[:3] + plots:
        assert f'href="#{sid}"' in html  # and the navigation links to it
    assert check_images(html) == len(plots)
    for word in ("gap_fraction", "probe_accuracy", "silhouette", "jump_ratio", "mse_per_pixel", "elbo",
                 "masking", "l1_activity", "Training options"):
        assert word in html
    assert "http://" not in html and "https://" not in html  # self-contained: nothing fetched


def test_report_of_a_table_model(runs):
    code, stdout, err = cli("report", runs["table"])
    assert code == 0, err
    path = runs["table"] / "report.html"  # the default --out
    assert stdout.strip() == str(path)
    html = path.read_text()
    assert section_ids(html) == ALWAYS + ["not-shown"]
    assert check_images(html) == 2
    assert "needs an image model" in html and "gap_fraction" in html
    assert "probe_accuracy" not in html  # no labels


def test_report_errors_are_one_line(runs, tmp_path):
    code, _, err = cli("report", runs["table"], "--out", tmp_path / "r.txt")
    assert code == 2 and "--out must end in .html" in err
    code, _, err = cli("report", tmp_path / "missing")
    assert code == 1 and "does not exist" in err and "Traceback" not in err


def test_compare_a_run_dir_and_a_variant_trained_first(runs, tmp_path):
    work, out = tmp_path / "work", tmp_path / "cmp.html"
    args = ["compare", runs["every"], "ae", "--data", "digits", "--epochs", "1", "--max-samples", "200",
            "--latent-dim", "2", "--workdir", work, "--out", out]
    code, stdout, err = cli(*args)
    assert code == 0, err
    assert stdout.splitlines()[-1] == f"wrote {out} and {tmp_path / 'cmp.md'}"
    assert (work / "ae" / "model.safetensors").is_file() and (work / "ae" / "run.json").is_file()
    html = out.read_text()
    assert section_ids(html) == ["metrics", "reconstructions", "latent-space", "loss-curves", "diagnostics"]
    assert check_images(html) == 1 + 2 + 1  # one reconstruction figure for both, one scatter per run, the curves
    md = (tmp_path / "cmp.md").read_text().splitlines()
    assert md[0].startswith("| run | variant | latent |") and "gap_fraction" in md[0]
    assert md[2].startswith("| every | vae | 3 |") and md[3].startswith("| ae | ae | 2 |")
    assert "cmp_reconstructions.png" in md[-1]
    with Image.open(tmp_path / "cmp_reconstructions.png") as im:
        assert im.size[0] > 100
    code, _, err = cli(*args)
    assert code == 2 and "already holds a run" in err
    code, _, err = cli("compare", "vea", "--data", "digits", "--out", tmp_path / "x.html")
    assert code == 2 and "Did you mean 'vae'" in err
    code, _, err = cli("compare", "ae", "--out", tmp_path / "x.html")
    assert code == 2 and "--data is required" in err


def test_demo_ends_with_a_comparison_page(tmp_path):
    out_dir = tmp_path / "demo"
    code, _, err = cli("demo", "--epochs", "1", "--variants", "ae", "--latent-dim", "2", "--out", out_dir)
    assert code == 0, err
    page = out_dir / "compare.html"
    assert str(page) in err
    html = page.read_text()
    assert "metrics" in section_ids(html) and check_images(html) == 3


def test_report_leads_with_metrics_then_the_settings_that_matter(runs, tmp_path):
    out = tmp_path / "r.html"
    code, _, err = cli("report", runs["every"], "--out", out)
    assert code == 0, err
    html = out.read_text()
    assert section_ids(html)[:2] == ["metrics", "config"]  # the numbers first, not a long option table
    config = html.split('<section id="config">', 1)[1].split("</section>", 1)[0]
    key, rest = config.split("<details>", 1)
    keys = re.findall(r"<tr><th>([^<]+)</th>", key)
    assert keys[:3] == ["variant", "input_shape", "latent_dim"] and "epochs" in keys and "data" in keys
    assert len(keys) <= 20 and "keep_checkpoints" not in keys and "num_workers" not in keys
    assert "keep_checkpoints" in rest and "Every recorded option" in rest  # all of it, folded away


def test_report_of_a_run_with_a_single_test_row(tmp_path):
    """12 rows leave one held-out row: no interpolation line and no projection to draw, a report all the same."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((12, 6)).astype(np.float32))
    code, _, err = cli("train", "ae", "--data", tmp_path / "x.npy", "--out", tmp_path / "run", "--epochs", "2",
                       "--quiet")
    assert code == 0, err
    code, _, err = cli("report", tmp_path / "run", "--out", tmp_path / "r.html")
    assert code == 0, err
    assert (tmp_path / "r.html").stat().st_size > 1000
