"""`aekit explore RUN_DIR [--data SRC] [--host 127.0.0.1] [--port 8000]`: look around a model's latent space.

Serves a local page (loopback by default) with the encoded data as a 2-D map coloured by label;
click or drag on the map to decode that point, move one slider per latent unit, shift-click two
samples to see the interpolation between them. See aekit/explore/ and docs/explore.md.
"""

from __future__ import annotations

import argparse
import sys

from .parser import positive_int
from .options import add_data_options


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535; got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535; got {text!r}")
    return value


def add_explore_parser(sub) -> None:
    from ..tasks.explore.state import MAX_POINTS

    p = sub.add_parser("explore", help="serve an interactive page to explore a run's latent space",
                       description="Start a local web server with a 2-D map of the encoded data (a PCA projection "
                                   "when the code has more than 2 units): click or drag to decode a point, move "
                                   "sliders per latent unit, pick two samples to interpolate. Ctrl-C stops it.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train'")
    add_data_options(p, required=False)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=port_number, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--max-points", type=positive_int, default=MAX_POINTS,
                   help=f"samples drawn on the map, a seeded random subset (default: {MAX_POINTS})")
    p.add_argument("--seed", type=int, default=0, help="seed of that subset (default: %(default)s)")
    p.add_argument("--sae", default=None, metavar="SAE_DIR",
                   help="a sparse autoencoder of one of this model's layers ('aekit sae train'): adds the feature "
                        "browser (each latent's firing rate and the samples that activate it most)")
    p.add_argument("--sae-layer", default=None, help="the layer the SAE reads (default: the one its store recorded)")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.set_defaults(func=run_explore)


def open_server(args):
    """Load the run and its data, bind the server (not serving yet)."""
    from ..tasks.explore import ExploreState, make_server
    from ..training.runs import load_run, run_data

    model, info = load_run(args.run_dir)
    x, labels, _, what = run_data(info, source=args.data, data_dir=args.data_dir, model=model)
    state = ExploreState(model, x, labels, max_points=args.max_points, seed=args.seed,
                         title=f"{args.run_dir} on {what}")
    if getattr(args, "sae", None):
        state.features = sae_features(state, args.sae, layer=args.sae_layer)
    return make_server(state, args.host, args.port, verbose=args.verbose)


def sae_features(state, sae_dir, *, layer=None):
    """The feature browser of the SAE in sae_dir on the explorer's samples (layer: default the SAE's store's)."""
    from pathlib import Path

    from ..checkpoint import read_json
    from ..errors import ConfigError
    from ..tasks.explore.features import FeatureBrowser
    from ..tasks.sae.model import load_sae

    sae = load_sae(sae_dir)
    run = Path(sae_dir) / "run.json"
    meta = ((read_json(run).get("store") or {}).get("meta") or {}) if run.is_file() else {}
    layer = layer or meta.get("layer")
    if not layer:
        raise ConfigError(f"{str(sae_dir)!r} records no layer; name it with --sae-layer.")
    return FeatureBrowser(state, sae, layer=layer, layout=meta.get("layout") or "auto", name=str(sae_dir))


def run_explore(args) -> int:
    server = open_server(args)
    if not server.loopback:
        print(f"aekit: warning: listening on {args.host}: anyone who can reach this machine can use the explorer",
              file=sys.stderr)
    print(f"aekit explore: serving {args.run_dir} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("aekit explore: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
