"""`aekit augment RUN_DIR [--data SRC] -n N [--label K] --out synthetic.npz`: labelled synthetic samples.

A conditional run (cvae) samples its prior with balanced labels (or --label); any other VAE run
perturbs the codes of real labelled samples within their posterior and keeps their labels (see
aekit.tasks.augment). The .npz holds `x` in the data's shape and units and `y` (int64), so it loads
back as a data source (`--data synthetic.npz`) or with numpy.load.
"""

from __future__ import annotations

import io
import sys

import numpy as np

from ..checkpoint import atomic_write_bytes
from ..tasks.augment import METHODS, augment_run
from .options import add_data_options, out_path
from .parser import positive_int


def add_augment_parser(sub) -> None:
    p = sub.add_parser("augment", help="write labelled synthetic samples from a VAE run",
                       description="Labelled synthetic samples: a conditional VAE's prior with balanced labels, or "
                                   "real samples' codes perturbed within their posterior (labels kept).")
    p.add_argument("run_dir", help="a run directory of a VAE variant (cvae, vae, beta_vae)")
    add_data_options(p, required=False)
    p.add_argument("--split", default=None,
                   help="split whose samples are perturbed (default: train; a --data file is used whole)")
    p.add_argument("-n", type=positive_int, required=True, help="number of synthetic samples")
    p.add_argument("--label", type=int, default=None, metavar="K", help="make every sample of class K")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="prior (conditional runs), posterior (any VAE), auto: prior when conditional (default)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="scale of the prior's or posterior's standard deviation (default: %(default)s; 0: means only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default: %(default)s)")
    p.add_argument("--out", required=True, help="output .npz with arrays x and y")
    p.set_defaults(func=run_augment)


def run_augment(args) -> int:
    out = out_path(args.out, (".npz",))
    x, y, what = augment_run(args.run_dir, n=args.n, data=args.data, data_dir=args.data_dir, split=args.split,
                             label=args.label, method=args.method, temperature=args.temperature, seed=args.seed)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)  # plain arrays: no pickle needed to read them back
    atomic_write_bytes(out, buf.getvalue())
    counts = {int(k): int(v) for k, v in zip(*np.unique(y, return_counts=True))}  # label -> count
    print(f"wrote {x.shape[0]} synthetic samples {tuple(x.shape[1:])} (labels {counts}) "
          f"to {out}", file=sys.stderr)
    return 0
