"""`aekit report RUN_DIR` and `aekit compare RUN_DIR|VARIANT ...`: see what models learned.

    aekit report runs/vae                          # runs/vae/report.html, one self-contained page
    aekit compare runs/ae runs/vae --out cmp.html  # side by side (+ cmp.md, a Markdown table)
    aekit compare ae vae --data digits --epochs 5  # train the variants first (into --workdir)
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ConfigError
from ..tasks.demo import runs_or_variants
from .options import absolute_dir, absolute_source, add_data_options
from .parser import positive_int


def add_report_parsers(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report of a run: plots, metrics, latent diagnostics",
                       description="One self-contained HTML page (images embedded) with the run's configuration, "
                                   "metrics, latent-space diagnostics and every plot that applies to its variant.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train'")
    p.add_argument("--out", default=None, help="output .html (default: RUN_DIR/report.html)")
    add_data_options(p, required=False, max_samples=True)
    p.add_argument("--tsne", action="store_true", help="add a t-SNE map of the codes (slower)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random subsets and draws (default: %(default)s)")
    p.set_defaults(func=run_report)

    p = sub.add_parser("compare", help="compare runs (or variants, trained first) side by side",
                       description="Side-by-side HTML page and Markdown table of several runs. Variant names "
                                   "instead of run directories are trained first on --data; every run is then "
                                   "evaluated on its own recorded data. With run directories only, --data (if "
                                   "given) is the evaluation data of all of them.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR|VARIANT",
                   help="run directories, or variant names to train (a folder holding a run wins over a variant name)")
    p.add_argument("--out", default="compare.html", help="output .html (default: %(default)s)")
    p.add_argument("--md", default=None, help="output Markdown table (default: --out with .md)")
    add_data_options(p, required=False)
    g = p.add_argument_group("training variants given by name")
    g.add_argument("--epochs", type=positive_int, default=10, help="epochs per variant (default: %(default)s)")
    g.add_argument("--latent-dim", type=positive_int, default=None, help="code size (default: each variant's)")
    g.add_argument("--max-samples", type=positive_int, default=None, help="train on a random subset of this size")
    g.add_argument("--workdir", default=None, help="folder for the new runs (default: a new temporary folder)")
    g.add_argument("--overwrite", action="store_true", help="replace runs already in --workdir")
    g.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.set_defaults(func=run_compare)


def run_report(args) -> int:
    from ..viz.report import write_report

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out must end in .html; got {args.out!r}.")
    path = write_report(args.run_dir, out=out, data=args.data, data_dir=args.data_dir, tsne=args.tsne, seed=args.seed,
                        max_samples=args.max_samples)
    print(path)
    return 0


def run_compare(args) -> int:
    from ..viz.compare import write_comparison

    if Path(args.out).suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out must end in .html; got {args.out!r}.")
    if args.md is not None and Path(args.md).suffix.lower() != ".md":
        raise ConfigError(f"--md must end in .md; got {args.md!r}.")
    run_dirs, trained_any = runs_or_variants(
        args.runs, data=absolute_source(args.data), data_dir=absolute_dir(args.data_dir), epochs=args.epochs,
        latent_dim=args.latent_dim, max_samples=args.max_samples, seed=args.seed, workdir=args.workdir,
        overwrite=args.overwrite, log=lambda line: print(line, file=sys.stderr))
    # --data names the training data of variants; with run directories only it is the evaluation data
    html, md, rows = write_comparison(run_dirs, out=args.out, md=args.md, seed=args.seed,
                                      data=None if trained_any else args.data, data_dir=args.data_dir,
                                      return_rows=True)
    from ..viz.compare import terminal_columns
    from .parser import print_table

    print_table(rows, terminal_columns(rows))
    print(f"\nwrote {html} and {md}")
    return 0
