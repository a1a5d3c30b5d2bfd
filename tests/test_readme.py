"""The README runs as written, so the docs cannot drift: every Python block, and every shell line in
order in one fresh folder (with fewer epochs and samples, the substitutions below)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
SHELL = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)
REAL_MNIST = Path(os.environ.get("AEKIT_MNIST_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")

# lines not run here, each with the reason; everything else runs
SKIPPED = {
    "pip install": "installs the package under test",
    "pytest": "is this very test suite",
    "torchrun --nnodes=2": "needs a second machine (the single-node torchrun line runs)",
}
SMALL = 300  # training samples of every README run here
EVAL = 60  # samples scored by the commands that take --max-samples
TAKES_MAX_SAMPLES = ("evaluate", "encode", "reconstruct", "report", "compress", "denoise", "detect")


def shell_lines() -> list[str]:
    """The README's shell commands in order: continuation lines joined, comments and blanks dropped."""
    lines = []
    for block in SHELL:
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    return lines


def skip_reason(line: str) -> str | None:
    return next((why for start, why in SKIPPED.items() if line.startswith(start)), None)


def set_option(args: list[str], name: str, value: str) -> list[str]:
    if name in args:
        args = list(args)
        args[args.index(name) + 1] = value
        return args
    return [*args, name, value]


def smaller(args: list[str]) -> list[str]:
    """The same command with fewer epochs and samples: the README's lines, quick."""
    command = args[0]
    if command == "demo":
        return [*args, "--epochs", "1", "--variants", "ae,vae"]
    if "--epochs" in args:
        resume = "--resume" in args
        args = set_option(args, "--epochs", "2" if resume else "1")
    if command == "train" and "--resume" not in args:
        args = set_option(set_option(args, "--max-samples", str(SMALL)), "--epochs", "1")
    if command in TAKES_MAX_SAMPLES:
        args = set_option(args, "--max-samples", str(EVAL))
    if command == "compare" and any(a in ("ae", "vae") for a in args[1:3]):
        args = set_option(args, "--max-samples", str(SMALL))
    if command == "disentangle":
        args = [*args, "--samples", "400", "--votes", "40", "--batch-size", "16"]
    if args[:2] == ["segment", "make-data"]:
        args = set_option(set_option(args, "-n", "6"), "--size", "48")
    if command == "augment":
        args = set_option(args, "-n", "200")
    return args


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write files
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})


def test_readme_states_the_cpu_install_and_expected_times():
    lines = shell_lines()
    torch_cpu = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    assert lines[0].startswith(torch_cpu) and lines[1].startswith("pip install -e .") and "[dev]" not in lines[1]
    assert lines[2].startswith("aekit demo")
    for line in lines:  # the long ones say how long
        if re.search(r"--iwae-k|^aekit report|^aekit compress|^aekit train .*mnist|^aekit train .*dsprites", line):
            assert re.search(r"~\d+(\.\d+)? (s|min)", line), f"no expected time on: {line}"


@pytest.mark.skipif(not (REAL_MNIST / "train-images-idx3-ubyte.gz").is_file(), reason=f"no MNIST in {REAL_MNIST}")
def test_every_shell_line_runs_in_order_in_a_fresh_folder(tmp_path, monkeypatch, no_fsync):
    from aekit.cli import main

    work = tmp_path / "fresh"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing cached: no line may need a download
    ran, skipped = [], []
    for line in shell_lines():
        if skip_reason(line):
            skipped.append(line)
            continue
        if line.startswith("export "):
            name, _ = line.split()[1].split("=", 1)
            monkeypatch.setenv(name, str(REAL_MNIST) if name == "MNIST" else os.path.expandvars(_))
            ran.append(line)
            continue
        words = shlex.split(os.path.expandvars(line), comments=True)
        if words[0] == "aekit" and words[1:2] == ["explore"]:
            check_explore(words, env=os.environ)
        elif words[0] == "aekit":
            args = smaller(words[1:])
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(args)
            assert code == 0, f"README line failed: {line}\n  ran: aekit {' '.join(args)}\n{err.getvalue()}"
        elif words[0] == "torchrun":
            args = smaller(words[words.index("aekit") + 1:])
            proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                   "-m", "aekit", *args], capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            assert proc.returncode == 0, f"README line failed: {line}\n{proc.stderr[-3000:]}"
        else:  # python -c, printf > file: the shell runs them as written
            proc = subprocess.run(["bash", "-c", os.path.expandvars(line)], capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode == 0, f"README line failed: {line}\n{proc.stderr[-3000:]}"
        ran.append(line)
    assert len(skipped) == 5 and len(ran) >= 40, (len(ran), skipped)  # 3 pip, pytest, the two-node line


def check_explore(words: list[str], *, env) -> None:
    """`aekit explore RUN` serves forever: start it on a free port, wait for its URL, stop it."""
    proc = subprocess.Popen([sys.executable, "-m", "aekit", *words[1:], "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**env, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if "serving" in line:
                break
        assert "serving" in line and "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() else "")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
