"""What a first install pulls in: `aekit demo` needs only the base dependencies; the test-only packages
live in the `dev` extra, which CI installs."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TEST_ONLY = {  # distribution -> the module it provides
    "pytest": "pytest", "hypothesis": "hypothesis", "playwright": "playwright", "scikit-image": "skimage",
    "tensorboard": "tensorboard", "onnx": "onnx", "onnxruntime": "onnxruntime", "onnxscript": "onnxscript",
    "constriction": "constriction", "PyWavelets": "pywt", "pandas": "pandas",
}
BLOCKER = """
import importlib.abc, importlib.machinery, sys
BLOCKED = set(sys.argv[1].split(','))
class Missing(importlib.abc.Loader):  # found (find_spec callers stay happy) but never importable
    def create_module(self, spec):
        raise ModuleNotFoundError(f'No module named {spec.name!r} (not installed: blocked by the test)', name=spec.name)
    def exec_module(self, module):
        pass
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, Missing())
        return None
sys.meta_path.insert(0, Block())
from aekit.cli import main
code = main(['demo', '--epochs', '1', '--variants', 'ae,vae', '--latent-dim', '2', '--out', sys.argv[2]])
print('IMPORTED', ','.join(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)))
sys.exit(code)
"""


def name_of(requirement: str) -> str:
    for sep in "<>=!~[ ;":
        requirement = requirement.split(sep)[0]
    return requirement.strip()


def test_test_only_packages_are_not_base_dependencies():
    base = {name_of(r).lower() for r in PYPROJECT["project"]["dependencies"]}
    dev = {name_of(r).lower() for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert not base & {d.lower() for d in TEST_ONLY}, base & {d.lower() for d in TEST_ONLY}
    assert {d.lower() for d in TEST_ONLY} <= dev  # CI's `pip install -e ".[dev]"` still brings them
    assert 'pip install -q -e ".[dev]"' in (ROOT / ".ci" / "run").read_text()


def test_the_demo_runs_without_any_test_only_package(tmp_path):
    proc = subprocess.run([sys.executable, "-c", BLOCKER, ",".join(TEST_ONLY.values()), str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "IMPORTED \n" in proc.stdout or proc.stdout.rstrip().endswith("IMPORTED")
    rows = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert [r["model"] for r in rows] == ["ae", "vae", "PCA (baseline)"]
    assert (tmp_path / "demo" / "compare.html").is_file()
