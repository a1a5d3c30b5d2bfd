"""Hostile input for every loader: only aekit errors come out, no code runs, memory stays bounded.

Targets, seed files, mutations and the outcome rule live in tests/fuzz_harness.py (shared with
benchmarks/fuzz_loaders.py, the long run). Here: every hand-made hostile input (huge declared
sizes, NaN/inf, wrong dtypes, zero-length, pickles), hypothesis-drawn mutations of every seed
file (random bytes, truncation, byte flips, wrong magic numbers, zero length, a huge integer or
a NaN / inf written over any field), and a pickle
canary that proves a payload would have run had any loader unpickled it.
"""

from __future__ import annotations

import pickle
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_harness as fh

TIMEOUT_S = 10  # a load of a file under 1 MB that takes longer than this is a hang
EXAMPLES = 15  # per target; benchmarks/fuzz_loaders.py runs thousands

_MARKER_DIR = Path(tempfile.mkdtemp(prefix="aekit-fuzz-"))
MARKER = _MARKER_DIR / "code-was-executed"
TARGETS = {t.name: t for t in fh.targets(MARKER)}


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"no answer within {TIMEOUT_S} s")


def run(target: fh.Target, files: dict[str, bytes]) -> fh.Outcome:
    """Load the seed files with `files` replaced, in a fresh folder, under a timeout."""
    with tempfile.TemporaryDirectory() as d:
        fh.write_files(Path(d), {**target.seed, **files})
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TIMEOUT_S)
        try:
            return fh.check_outcome(target, Path(d), MARKER)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


def assert_clean(outcome: fh.Outcome, what: str) -> None:
    assert not outcome.is_finding, f"{what}: {outcome.kind}: {outcome.detail}"


def test_every_seed_file_loads():
    for name, target in TARGETS.items():
        outcome = run(target, {})
        assert outcome.kind == "ok", f"{name}: {outcome.detail}"


CRAFTED = [(name, what) for name, t in TARGETS.items() for what, _ in t.crafted]


@pytest.mark.parametrize("name,what", CRAFTED, ids=[f"{n}: {w}" for n, w in CRAFTED])
def test_crafted_hostile_input_gives_an_aekit_error_or_clean_data(name, what):
    target = TARGETS[name]
    outcome = run(target, dict(target.crafted)[what])
    assert_clean(outcome, f"{name} / {what}")
    if outcome.kind == "aekit-error":
        assert len(outcome.detail.splitlines()) == 1  # one line for the CLI


@pytest.mark.parametrize("name,what,needle", [
    ("npy", "huge declared shape", "refusing more than"),
    ("npz", "huge declared shape in a member", "refusing more than"),
    ("idx", "huge declared dims", "refusing more than"),
    ("idx.gz", "huge declared dims (4 GiB)", "memory budget"),
    ("png folder", "huge declared size", "exceeds limit"),
    ("checkpoint config", "huge latent_dim", "the model expects (1000000000, 4)"),
    ("npy", "object dtype (pickle)", "never unpickles"),
    ("npz", "object member (pickle)", "never unpickles"),
    ("checkpoint weights", "pickle payload", "corrupted or truncated"),
    ("npy", "NaN", "NaN or inf"), ("csv", "overflowing number", "NaN or inf"), ("idx", "float inf", "NaN or inf"),
    ("npy", "zero rows", "empty data"), ("csv", "empty", "empty data"),
])
def test_messages_say_what_is_wrong(name, what, needle):
    outcome = run(TARGETS[name], dict(TARGETS[name].crafted)[what])
    assert outcome.kind == "aekit-error" and needle in outcome.detail, outcome.detail
    assert outcome.rss_growth < fh.MEMORY_LIMIT  # refused before allocating


@pytest.mark.parametrize("name,what", CRAFTED, ids=[f"{n}: {w}" for n, w in CRAFTED])
def test_crafted_input_is_refused_before_any_large_allocation(name, what):
    """Not even an untouched reservation: tracemalloc's peak stays under the limit."""
    outcome = run(TARGETS[name], dict(TARGETS[name].crafted)[what])
    assert outcome.peak_bytes < fh.MEMORY_LIMIT, f"{name} / {what}: peak {outcome.peak_bytes >> 20} MiB"


def test_pickle_payloads_are_never_executed(tmp_path):
    # the canary works: unpickling the payload creates the marker file ...
    canary = tmp_path / "canary"
    pickle.loads(fh.pickle_payload(canary))
    assert canary.exists()
    # ... and no loader unpickles it, whatever the file is called
    hits = [(name, what) for name, t in TARGETS.items() for what, _ in t.crafted if "pickle" in what]
    assert len(hits) >= 8
    for name, what in hits:
        outcome = run(TARGETS[name], dict(TARGETS[name].crafted)[what])
        assert outcome.kind == "aekit-error", (name, what, outcome.detail)
        assert not MARKER.exists(), f"{name} / {what} executed code from the file"


def _mutations(seed: bytes):
    n = len(seed)
    flips = st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 255)), min_size=1, max_size=8)

    def apply(changes):
        out = bytearray(seed)
        for i, b in changes:
            out[i] = b
        return bytes(out)

    def place(args):
        i, word = args
        return seed[:i] + word + seed[i + len(word):]

    return st.one_of(
        st.binary(max_size=min(2 * n, 4096)),  # random bytes
        st.integers(0, max(n - 1, 0)).map(lambda k: seed[:k]),  # truncated
        flips.map(apply),  # damaged
        st.binary(min_size=1, max_size=8).map(lambda m: m + seed[len(m):]),  # wrong magic
        st.just(b""),  # zero length
        st.tuples(st.integers(0, max(n - 8, 0)), st.sampled_from(fh.HUGE_WORDS)).map(place),  # huge size field
        st.tuples(st.integers(0, max(n - 8, 0)), st.sampled_from(fh.NONFINITE_WORDS)).map(place),  # NaN / inf
    )


@pytest.mark.parametrize("name", list(TARGETS))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_files_give_only_aekit_errors(name, data):
    target = TARGETS[name]
    mutated = data.draw(_mutations(target.seed[target.mutated]), label=target.mutated)
    outcome = run(target, {target.mutated: mutated})
    assert_clean(outcome, f"{name} ({len(mutated)} bytes: {mutated[:64]!r})")


def test_the_fuzz_benchmark_runs_small_and_finds_nothing():
    """benchmarks/fuzz_loaders.py itself, a few inputs per loader of two targets, --smoke (no results file)."""
    import json
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_loaders.py"
    results = script.parent / "results" / "fuzz_loaders.json"
    before = results.read_bytes() if results.exists() else None
    proc = subprocess.run([sys.executable, str(script), "--per-target", "3", "--chunk", "3", "--smoke",
                           "--only", "container"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["inputs tried"] == len(TARGETS["container (.aekc)"].crafted) + 3
    assert summary["tracebacks (other exceptions)"] == summary["hangs"] == summary["crashes"] == 0
    assert not summary["code executed"]
    assert (results.read_bytes() if results.exists() else None) == before  # a smoke run publishes nothing
