"""Long steps show a tqdm bar on a terminal and nothing in logs; evaluate can look at a subset."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

import aekit
from aekit.cli import main


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def run(args, *, tty: bool) -> tuple[int, str, str]:
    out, err = io.StringIO(), (Terminal() if tty else io.StringIO())
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    out = tmp_path_factory.mktemp("progress") / "vae"
    code, _, err = run(["train", "vae", "--data", "digits", "--max-samples", "200", "--epochs", "1", "--hidden", "16",
                        "--latent-dim", "3", "--quiet", "--out", out], tty=False)
    assert code == 0, err
    return out


@pytest.mark.parametrize("tty", [True, False])
def test_long_commands_show_bars_only_on_a_terminal(vae, tmp_path, tty):
    bars = {  # command -> the bar's description
        ("evaluate", vae, "--iwae-k", "5"): "IWAE bound, K=5",
        ("report", vae, "--out", tmp_path / "r.html"): "report: plots",
        ("compare", vae, "--out", tmp_path / "c.html"): "compare: evaluating runs",
        ("compress", vae, "--data", "digits", "--bits", "4", "--out", tmp_path / "c.aekc"): "compress:",
    }
    for args, desc in bars.items():
        code, _, err = run(args, tty=tty)
        assert code == 0, err
        assert (desc in err) == tty, f"{args[0]}: {err!r}"


@pytest.mark.parametrize("tty", [True, False])
def test_fit_shows_its_bar_by_default_on_a_terminal(tty, monkeypatch):
    err = Terminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    model = aekit.build("ae", input_shape=(6,), latent_dim=2, hidden=[8], seed=0)
    aekit.fit(model, torch.rand(600, 6), epochs=1, batch_size=8)
    assert ("epoch 1/1" in err.getvalue()) == tty


def test_evaluate_max_samples_scores_a_subset(vae):
    code, out, err = run(["evaluate", vae, "--json", "--max-samples", "7"], tty=False)
    assert code == 0, err
    result = json.loads(out)
    assert result["n_samples"] == 7 and "7 random rows" in result["data"]
    code, out, _ = run(["evaluate", vae, "--json", "--max-samples", "7"], tty=False)
    assert json.loads(out) == result  # a seeded subset: the same rows every time


def test_fit_shows_its_bar_in_a_notebook(monkeypatch):
    """Jupyter's stderr is no terminal, yet a notebook user wants the bar (tqdm.auto picks its form)."""
    import sys
    import types

    class ZMQInteractiveShell:  # what IPython.get_ipython() returns inside a Jupyter kernel
        config: dict = {}

    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    model = aekit.build("ae", input_shape=(6,), latent_dim=2, hidden=[8], seed=0)
    aekit.fit(model, torch.rand(600, 6), epochs=1, batch_size=8)
    assert "epoch 1/1" in err.getvalue()
