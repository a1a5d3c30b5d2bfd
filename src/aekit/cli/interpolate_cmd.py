"""`aekit interpolate RUN_DIR --data SRC --pair I,J --steps N --mode linear|slerp --out FILE`.

Encodes rows I and J of the data, walks the path between their codes (a straight line, or the
great circle with --mode slerp; see aekit.interpolation) and decodes every step. A conditional
run (cvae) encodes each row with its own label and blends the two labels along the path.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..errors import ConfigError
from ..evaluation import interpolate_run
from ..interpolation import MODES
from ..units import OutputUnits
from ..npy_file import save_npy
from .options import out_path
from ..image_grid import image_grid
from .options import add_data_options


def index_pair(text: str) -> list[int]:
    """'I,J' -> [I, J]: two row indices (negative ones count from the end)."""
    try:
        pair = [int(v) for v in text.split(",")]
    except ValueError:
        pair = []
    if len(pair) != 2:
        raise argparse.ArgumentTypeError(f"expected two row indices I,J; got {text!r}")
    return pair


def add_interpolate_parser(sub) -> None:
    p = sub.add_parser("interpolate", help="decode a path between the codes of two inputs",
                       description="Decode the linear or spherical path between the codes of rows I and J of the data.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train' (decoders without U-Net skips)")
    add_data_options(p, required=False)
    p.add_argument("--split", default=None, help="split of a named dataset: train, val, test, all (default: test)")
    p.add_argument("--pair", type=index_pair, default=[0, 1], metavar="I,J", help="rows of the data to join (default: 0,1)")
    p.add_argument("--steps", type=int, default=8, help="images on the path, both ends included (>= 2, default: 8)")
    p.add_argument("--mode", choices=MODES, default="linear", help="linear (straight line) or slerp (great circle)")
    p.add_argument("--out", required=True, help="output .npy (steps x shape, in the data's units) or .png (a row)")
    p.set_defaults(func=run_interpolate)


def run_interpolate(args) -> int:
    out = out_path(args.out, (".npy", ".png"))
    path, ds, model = interpolate_run(args.run_dir, pair=args.pair, steps=args.steps, mode=args.mode, data=args.data,
                                      data_dir=args.data_dir, split=args.split)
    if out.suffix.lower() == ".npy":
        save_npy(out, OutputUnits.from_dataset(ds, model).to_raw(path).numpy().astype(np.float32))
    else:
        if len(model.input_shape) != 3:
            raise ConfigError(f"--out .png needs an image model; this one has input_shape={model.input_shape}. Use .npy.")
        from PIL import Image

        Image.fromarray(image_grid(path.numpy(), cols=path.shape[0])).save(out)
    print(f"wrote a {args.mode} path of {path.shape[0]} steps to {out}", file=sys.stderr)
    return 0
