"""`aekit report RUN_DIR` and `aekit compare RUN_DIR|VARIANT ...`: see what models learned.

    aekit report runs/vae                          # runs/vae/report.html, one self-contained page
    aekit compare runs/ae runs/vae --out cmp.html  # side by side (+ cmp.md, a Markdown table)
    aekit compare ae vae --data digits --epochs 5  # train the variants first (into --workdir)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import ConfigError, did_you_mean
from .parser import positive_int
from .options import add_data_options


def add_report_parsers(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report of a run: plots, metrics, latent diagnostics",
                       description="One self-contained HTML page (images embedded) with the run's configuration, "
                                   "metrics, latent-space diagnostics and every plot that applies to its variant.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train'")
    p.add_argument("--out", default=None, help="output .html (default: RUN_DIR/report.html)")
    add_data_options(p, required=False, max_samples=True)
    p.add_argument("--tsne", action="store_true", help="add a t-SNE map of the codes (slower)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random subsets and draws (default: 0)")
    p.set_defaults(func=run_report)

    p = sub.add_parser("compare", help="compare runs (or variants, trained first) side by side",
                       description="Side-by-side HTML page and Markdown table of several runs. Variant names "
                                   "instead of run directories are trained first on --data; every run is then "
                                   "evaluated on its own recorded data. With run directories only, --data (if "
                                   "given) is the evaluation data of all of them.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR|VARIANT",
                   help="run directories, or variant names to train (a folder holding a run wins over a variant name)")
    p.add_argument("--out", default="compare.html", help="output .html (default: compare.html)")
    p.add_argument("--md", default=None, help="output Markdown table (default: --out with .md)")
    add_data_options(p, required=False)
    g = p.add_argument_group("training variants given by name")
    g.add_argument("--epochs", type=positive_int, default=10, help="epochs per variant (default: 10)")
    g.add_argument("--latent-dim", type=positive_int, default=None, help="code size (default: each variant's)")
    g.add_argument("--max-samples", type=positive_int, default=None, help="train on a random subset of this size")
    g.add_argument("--workdir", default=None, help="folder for the new runs (default: a new temporary folder)")
    g.add_argument("--overwrite", action="store_true", help="replace runs already in --workdir")
    g.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
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


def train_variant(name: str, *, data: str, data_dir: str | None, out: Path, epochs: int, latent_dim: int | None,
                  max_samples: int | None, seed: int) -> Path:
    """Train one named variant the way `aekit demo` does (aekit.tasks.demo.train_quick); returns its run directory."""
    from ..tasks.demo import train_quick
    from .options import absolute_dir, absolute_source, data_defaults

    data_info = {"source": absolute_source(data), "data_dir": absolute_dir(data_dir),
                 "val_fraction": data_defaults()["val_fraction"], "seed": seed, "max_samples": max_samples}
    return train_quick(name, data=data_info, out=out, epochs=epochs, latent_dim=latent_dim, seed=seed)


def resolve_runs(args) -> tuple[list[Path], bool]:
    """(run directories, whether any was trained): directories as given, variant names trained into --workdir."""
    from ..variants import VARIANTS

    def is_run_dir(item: str) -> bool:
        path = Path(item)
        return (path / "config.json").is_file() or (path.is_dir() and item not in VARIANTS)

    for item in args.runs:  # every name checked before anything is trained
        if is_run_dir(item):
            continue
        if item not in VARIANTS:
            raise ConfigError(f"{item!r} is neither a run directory nor a variant ({', '.join(VARIANTS)})."
                              + did_you_mean(item, VARIANTS))
        if args.data is None:
            raise ConfigError(f"--data is required to train variant {item!r} (e.g. --data digits).")
    run_dirs, workdir = [], None
    for item in args.runs:
        path = Path(item)
        if is_run_dir(item):
            if item in VARIANTS:
                print(f"aekit: using the run directory {item!r}, not the variant of that name", file=sys.stderr)
            run_dirs.append(path)  # load_run names what is missing in a folder that holds no run
            continue
        if workdir is None:
            workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="aekit-compare-"))
        out = workdir / item
        if (out / "run.json").exists():
            if not args.overwrite:
                raise ConfigError(f"{str(out)!r} already holds a run; pass it as a RUN_DIR to reuse it, "
                                  "or --overwrite to train it again.")
            shutil.rmtree(out)
        print(f"training {item} on {args.data} for {args.epochs} epochs into {out}", file=sys.stderr)
        run_dirs.append(train_variant(item, data=args.data, data_dir=args.data_dir, out=out, epochs=args.epochs,
                                      latent_dim=args.latent_dim, max_samples=args.max_samples, seed=args.seed))
    return run_dirs, workdir is not None


def run_compare(args) -> int:
    from ..viz.compare import write_comparison

    if Path(args.out).suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out must end in .html; got {args.out!r}.")
    if args.md is not None and Path(args.md).suffix.lower() != ".md":
        raise ConfigError(f"--md must end in .md; got {args.md!r}.")
    run_dirs, trained_any = resolve_runs(args)
    # --data names the training data of variants; with run directories only it is the evaluation data
    html, md, rows = write_comparison(run_dirs, out=args.out, md=args.md, seed=args.seed,
                                      data=None if trained_any else args.data, data_dir=args.data_dir,
                                      return_rows=True)
    from ..viz.compare import terminal_columns
    from .parser import print_table

    print_table(rows, terminal_columns(rows))
    print(f"\nwrote {html} and {md}")
    return 0
