"""`aekit train VARIANT --data SRC --out RUN_DIR [...]`: build a model, train it, keep the run.

Parses the shared option groups (cli/options.py) and calls aekit.training.train_run.train_run;
variant 'stacked' goes to cli/stacked_cmd.py (aekit.tasks.stacked).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ConfigError, check_choice
from ..training.train_run import has_run, train_run
from ..variants import VARIANTS
from .options import (absolute_dir, add_data_options, add_model_options, add_split_options,
                      add_training_options, build_kwargs, data_options, train_options)
from .stacked_cmd import add_stacked_options, reject_stacked_options, run_train_stacked


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a variant and write a run directory",
                       description="Train a named variant on a data source; RUN_DIR gets the config, weights and history.")
    p.add_argument("variant", help=f"one of: {', '.join(VARIANTS)}, stacked")
    add_data_options(p, required=False)
    p.add_argument("--out", default=None, help="run directory to write (required)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--config", default=None, help="TOML or YAML file of options (keys as below; the command line wins)")
    add_model_options(p)
    add_training_options(p)
    add_split_options(p)
    add_stacked_options(p)
    p.set_defaults(func=run_train)


def _epoch_printer(verbose: bool):
    def report(record, trainer):
        if verbose:
            terms = "  ".join(f"{k}={v:.4g}" for k, v in record.items() if k.startswith(("train_", "val_")))
            print(f"epoch {record['epoch']:>3}/{trainer.cfg.epochs}  {terms}  ({record['time']:.1f}s)", file=sys.stderr)

    return report


def _announce(lines: list[str]) -> None:
    """Print the defaults the data chose (aekit.training.data_defaults), one per line."""
    print("aekit: defaults chosen from the data:" + "".join(f"\n  {line}" for line in lines), file=sys.stderr)


def run_train(args) -> int:
    if args.out is None:
        raise ConfigError("--out RUN_DIR is required: the folder that receives the config, weights and history.")
    if args.variant == "stacked":  # greedy layer-wise pretraining: its own schedule (aekit.tasks.stacked.layerwise)
        return run_train_stacked(args)
    reject_stacked_options(args)
    check_choice("variant", args.variant, [*VARIANTS, "stacked"])
    out = Path(args.out)
    if args.resume and not has_run(out) and args.data is not None:
        # killed before it wrote anything: its own command, --resume included, starts it
        print(f"aekit: {str(out)!r} holds no run yet: starting it from the beginning.", file=sys.stderr)
        args.resume = False
    if args.resume:
        summary = train_run(out, resume=True, data_dir=absolute_dir(args.data_dir), epochs=args.epochs,
                            checkpoint_every=args.checkpoint_every, callbacks=[_epoch_printer(not args.quiet)])
    else:
        if has_run(out) and not args.overwrite:
            raise ConfigError(f"{str(out)!r} already holds a run; pass --resume to continue it or --overwrite to replace it.")
        if args.data is None:
            raise ConfigError("--data is required: digits, mnist, fashion-mnist or a file/folder path.")
        model = build_kwargs(args)
        summary = train_run(out, variant=args.variant, data=data_options(args), model=model,
                            train={**train_options(args), "progress": False if args.quiet else None},
                            overwrite=args.overwrite, command=["aekit", *getattr(args, "argv", sys.argv[1:])],
                            callbacks=[_epoch_printer(not args.quiet)], announce=None if args.quiet else _announce)
    if summary is not None:  # rank 0 reports
        print(json.dumps(summary))
    return 0
