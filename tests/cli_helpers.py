"""Helpers shared by the command-line tests: run `aekit` in process, skip fsync, read score files."""

from __future__ import annotations

import contextlib
import io

from aekit.cli import main


def cli(*args) -> tuple[int, str, str]:
    """Run `aekit ARGS` in process: (exit code, stdout, stderr); argparse exits become codes too."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def read_scores(path):
    """index, score, label columns of an `aekit detect` CSV as arrays."""
    import numpy as np

    lines = path.read_text().splitlines()
    assert lines[0] == "index,score,label"
    rows = [line.split(",") for line in lines[1:]]
    return (np.array([int(r[0]) for r in rows]), np.array([float(r[1]) for r in rows]),
            np.array([int(r[2]) for r in rows]))
