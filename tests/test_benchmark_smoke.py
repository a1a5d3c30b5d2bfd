"""No smoke (--quick / --smoke) run of a benchmark script may write a published results file
(benchmarks/results/): the shared writer sends smoke runs elsewhere, every script writes through
it, and a real smoke run leaves benchmarks/results/ untouched."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
import common  # noqa: E402

SMOKE_LIKE = re.compile(r"^--(quick|smoke|fast|tiny|mini|dry-run|debug)(-|$)")
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if p.name not in ("common.py", "clipped_noise.py"))


def test_write_results_sends_smoke_runs_out_of_results(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(common, "SMOKE", tmp_path / "smoke")
    monkeypatch.setattr(sys, "argv", ["benchmarks/x.py", "--quick"])
    path = common.write_results("x", {"table": "t"})
    assert path == tmp_path / "smoke" / "x.json" and path.is_file()
    assert not (tmp_path / "results").exists()
    # an explicit quick=True wins over the command line, and a full run goes to results/
    monkeypatch.setattr(sys, "argv", ["benchmarks/x.py"])
    assert common.write_results("y", {}, quick=True).parent == tmp_path / "smoke"
    full = common.write_results("z", {})
    assert full.parent == tmp_path / "results" and json.loads(full.read_text())["command"].startswith("python")


def test_is_published():
    assert common.is_published(common.RESULTS / "a.json")
    assert not common.is_published(common.SMOKE / "a.json")


def _smoke_flags(tree: ast.AST) -> set[str]:
    flags = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            for a in node.args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and SMOKE_LIKE.match(a.value):
                    flags.add(a.value)
    return flags


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_writes_results_through_the_shared_writer(script):
    src = script.read_text()
    tree = ast.parse(src)
    # a smoke mode is spelled --quick or --smoke, the flags the shared writer recognises
    assert _smoke_flags(tree) <= set(common.SMOKE_FLAGS), f"{script.name}: smoke flag not in {common.SMOKE_FLAGS}"
    # no script builds a path into benchmarks/results itself (the generator of BENCHMARKS.md only reads it;
    # the anomaly re-render and the sweep rewrite a file they are given)
    if script.name not in ("make_benchmarks_md.py",):
        assert '"results" /' not in src and "/ \"results\"" not in src, f"{script.name} builds a results path"
        assert "_quick\"" not in src and "_quick.json" not in src, f"{script.name} names a smoke results file"


def test_segmentation_quick_leaves_results_untouched(tmp_path):
    before = {p.name: p.stat().st_mtime_ns for p in (BENCH / "results").glob("*")}
    env = {**os.environ, "AEKIT_BENCH_SMOKE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(BENCH / "segmentation.py"), "--quick", "--classes", "2",
                           "--n-large", "1", "--large-size", "128"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = {p.name: p.stat().st_mtime_ns for p in (BENCH / "results").glob("*")}
    assert after == before, "a --quick run changed benchmarks/results/"
    assert (tmp_path / "segmentation.json").is_file()
