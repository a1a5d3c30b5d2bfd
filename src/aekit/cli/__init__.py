"""The `aekit` command: list, train, evaluate, encode, reconstruct, sample, interpolate, report,
compare, demo; compress, decompress, denoise, detect, augment, disentangle, segment, sae; export, explore.

Every error a user can cause ends the command with a one-line message and a non-zero exit
code: 2 for usage errors (a bad option or argument, as argparse does: every ConfigError), 1 for
everything else (missing or malformed data, runs, checkpoints; a failed training); never a
traceback from inside torch. Warnings (aekit.errors.AekitWarning) print as one line too.
"""

from __future__ import annotations

import os
import sys
import warnings

from ..errors import AekitError, AekitWarning, ConfigError
from .parser import Parser


def make_parser() -> Parser:
    from .._version import __version__
    from .augment_cmd import add_augment_parser
    from .compress_cmd import add_compress_parsers
    from .demo import add_demo_parser
    from .denoise_cmd import add_denoise_parser
    from .detect_cmd import add_detect_parser
    from .disentangle_cmd import add_disentangle_parser
    from .explore_cmd import add_explore_parser
    from .export_cmd import add_export_parser
    from .inspect_cmd import add_inspect_parsers
    from .interpolate_cmd import add_interpolate_parser
    from .list_cmd import add_list_parser
    from .report_cmd import add_report_parsers
    from .sae_cmd import add_sae_parser
    from .segment_cmd import add_segment_parser
    from .train_cmd import add_train_parser

    parser = Parser(prog="aekit", description="Train, compare, inspect and use autoencoders.")
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    # train and look
    add_list_parser(sub)
    add_train_parser(sub)
    add_inspect_parsers(sub)  # evaluate, encode, reconstruct, sample
    add_interpolate_parser(sub)
    add_report_parsers(sub)  # report, compare
    add_demo_parser(sub)
    # use
    add_compress_parsers(sub)  # compress, decompress
    add_denoise_parser(sub)
    add_detect_parser(sub)
    add_augment_parser(sub)
    add_disentangle_parser(sub)
    add_segment_parser(sub)
    add_sae_parser(sub)
    # elsewhere
    add_export_parser(sub)
    add_explore_parser(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """aekit's own warnings as 'aekit: warning: ...'; others as Python prints them."""
    if issubclass(category, AekitWarning):
        print(f"aekit: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), file=sys.stderr, end="")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    sub = parser._subparsers._group_actions[0].choices.get(getattr(args, "command", None)) if parser._subparsers else None
    if extra:  # report unknown options from the subcommand's parser, which knows its options for a did-you-mean
        (sub or parser).error("unrecognized arguments: " + " ".join(extra))
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "config", None):
        from .options import apply_config_file

        try:
            apply_config_file(args, {a.dest: a for a in sub._actions})
        except AekitError as exc:
            print(f"aekit: error: {exc}", file=sys.stderr)
            return 2
    if os.environ.get("OMP_NUM_THREADS") is None and os.environ.get("AEKIT_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["AEKIT_THREADS"]))
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return int(args.func(args) or 0)
    except AekitError as exc:
        print(f"aekit: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        if args.command == "train":
            print("aekit: interrupted; continue with the same command plus --resume (from the newest checkpoint, or "
                  "from the beginning if none was written yet), or start over with --overwrite.", file=sys.stderr)
        else:
            print("aekit: interrupted.", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permission denied, ...: name the file, no traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"aekit: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
