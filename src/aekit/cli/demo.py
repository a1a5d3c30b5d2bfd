"""`aekit demo`: the main job on the bundled digits in about a minute.

Trains several variants side by side on scikit-learn's 8x8 digits (offline), evaluates each on
the test split, adds a PCA baseline at the same code size, and prints one table (also written as
Markdown and JSON into the output folder); aekit.tasks.demo does the work.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..tasks.demo import COLUMNS, DEMO_VARIANTS, compare_variants
from .parser import markdown_table, positive_int, print_table


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="train several variants on digits and print a comparison table",
                       description="Train linear, ae, dae, sparse_kl, cae and vae on the bundled digits and compare them.")
    p.add_argument("--out", default="aekit-demo", help="folder for the runs and the table (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=60, help="epochs per variant (default: %(default)s)")
    p.add_argument("--latent-dim", type=positive_int, default=8, help="code size of every model (default: %(default)s)")
    p.add_argument("--variants", default=",".join(DEMO_VARIANTS), help="comma-separated variants to train")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.set_defaults(func=run_demo)


def run_demo(args) -> int:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)  # 8x8 models are too small for a second thread to pay off
    out = Path(args.out)
    rows = compare_variants(variants, out=out, epochs=args.epochs, latent_dim=args.latent_dim, seed=args.seed,
                            log=lambda line: print(line, file=sys.stderr), markdown=markdown_table)
    print()
    print_table(rows, COLUMNS)
    print(f"\nruns, results.json and results.md are in {out}/", file=sys.stderr)
    from ..viz.compare import write_comparison

    report, _ = write_comparison([out / name for name in variants], out=out / "compare.html", seed=args.seed)
    print(f"comparison report: {report}", file=sys.stderr)
    return 0
