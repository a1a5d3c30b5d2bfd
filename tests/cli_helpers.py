"""Helpers shared by the command-line tests: run `aekit` in process, skip fsync."""

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
