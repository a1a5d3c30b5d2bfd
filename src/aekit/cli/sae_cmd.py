"""`aekit sae capture | train | evaluate`: sparse dictionaries of a network's activations (aekit.tasks.sae).

    aekit sae capture runs/mnist_ae --layer encoder.net.0 --out acts          # an aekit run's own data
    aekit sae capture clf.py:make_model --weights clf.safetensors --data mnist --split train --layer fc1 --out acts
    aekit sae train acts --out sae_run --latents 512 --activation topk --k 16 --epochs 4
    aekit sae evaluate sae_run acts [--data mnist --split test]                # the host the store recorded
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from .parser import positive_float, positive_int, print_table

SPLITS = ("train", "val", "test")


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0; got {text!r}")
    return value


def _host_options(p) -> None:
    p.add_argument("--weights", default=None, help="a safetensors file of the host's weights (FILE.py:FACTORY hosts)")
    p.add_argument("--data", default=None, help="the host's inputs: a data source as elsewhere in aekit (default: a "
                                                "run's own held-out data; required for a FILE.py:FACTORY host)")
    p.add_argument("--data-dir", default=None, help="folder with the IDX .gz files of mnist / fashion-mnist")
    p.add_argument("--split", choices=SPLITS, default=None, help="split of a named data set (default: test)")
    p.add_argument("--max-samples", type=positive_int, default=None, metavar="N", help="a seeded subset of N inputs")


def add_sae_parser(sub) -> None:
    p = sub.add_parser("sae", help="sparse autoencoders of a network's activations: capture, train, evaluate",
                       description="Capture a layer's activations to an on-disk store, train a sparse autoencoder "
                                   "(TopK, BatchTopK, JumpReLU or ReLU + L1) on it, and evaluate it (L0, FVU, dead "
                                   "and dense latents, loss recovered when spliced into the host).")
    s = p.add_subparsers(dest="sae_command", metavar="STEP", parser_class=type(p))
    s.required = True

    c = s.add_parser("capture", help="capture a layer's activations to a store")
    c.add_argument("host", help="an aekit run folder, or FILE.py:FACTORY (FACTORY() returns the nn.Module)")
    c.add_argument("--layer", required=True, help="the dotted name of the layer whose output is captured")
    c.add_argument("--out", required=True, help="the new store's folder")
    _host_options(c)
    c.add_argument("--max-rows", type=positive_int, default=None, help="stop after this many rows")
    c.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="stored dtype (default: float32)")
    c.add_argument("--layout", choices=("auto", "channels_last", "channels_first"), default="auto",
                   help="how a 3-D or 4-D output becomes rows (default: auto)")
    c.add_argument("--batch-size", type=positive_int, default=256, help="inputs per forward pass (default: 256)")
    c.add_argument("--overwrite", action="store_true", help="replace a store already at --out")
    c.set_defaults(func=run_capture)

    t = s.add_parser("train", help="train a sparse autoencoder on a store")
    t.add_argument("store", help="a store written by 'aekit sae capture'")
    t.add_argument("--out", required=True, help="the run folder (checkpoints, history, the kept SAE)")
    t.add_argument("--latents", type=positive_int, required=True, help="dictionary size m")
    t.add_argument("--activation", choices=("topk", "batch_topk", "jumprelu", "relu"), default="topk",
                   help="the sparsifying bottleneck (default: topk)")
    t.add_argument("--k", type=positive_int, default=None, help="latents per row (topk, batch_topk)")
    t.add_argument("--l1", type=non_negative_float, default=1e-3, help="L1 coefficient (relu; default: 1e-3)")
    t.add_argument("--sparsity", type=non_negative_float, default=1e-3, help="L0 coefficient (jumprelu; default: 1e-3)")
    t.add_argument("--threshold", type=positive_float, default=0.001, help="initial threshold (jumprelu)")
    t.add_argument("--bandwidth", type=positive_float, default=0.001, help="straight-through bandwidth (jumprelu)")
    t.add_argument("--aux-k", type=int, default=None, help="AuxK latents (topk, batch_topk; default 2k; 0: off)")
    t.add_argument("--aux-weight", type=non_negative_float, default=1 / 32, help="AuxK weight (default: 1/32)")
    t.add_argument("--dead-window", type=positive_int, default=1_000_000,
                   help="training samples without firing after which a latent is dead (default: 1,000,000)")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="passes over the store (default: at least one, and enough for 1,000 optimizer steps)")
    t.add_argument("--batch-size", type=positive_int, default=1024, help="rows per step (default: 1024)")
    t.add_argument("--lr", type=positive_float, default=1e-3, help="Adam's peak learning rate (default: 1e-3)")
    t.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the shuffling (default: 0)")
    t.add_argument("--buffer-rows", type=positive_int, default=65536, help="rows held by the shuffling buffer")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.set_defaults(func=run_train)

    e = s.add_parser("evaluate", help="L0, FVU, dead/dense latents and the loss recovered in the host")
    e.add_argument("sae", help="an SAE folder written by 'aekit sae train'")
    e.add_argument("store", help="a store of the same layer's activations (e.g. captured on held-out data)")
    e.add_argument("--host", default=None, help="the host (run folder or FILE.py:FACTORY); default: the store's own")
    _host_options(e)
    e.add_argument("--no-downstream", action="store_true", help="skip the splice into the host")
    e.add_argument("--max-rows", type=positive_int, default=None, help="evaluate the first N rows of the store")
    e.add_argument("--json", default=None, metavar="FILE", help="also write the numbers to this JSON file")
    e.set_defaults(func=run_evaluate)


def run_capture(args) -> int:
    from ..tasks.sae.capture import capture
    from ..tasks.sae.hosts import host_data, host_record, load_host

    model, info = load_host(args.host, weights=args.weights)
    x, _, what = host_data(args.host, info, model, source=args.data, data_dir=args.data_dir, split=args.split,
                           max_samples=args.max_samples)
    store = capture(model, layer=args.layer, data=x, store=args.out, batch_size=args.batch_size, dtype=args.dtype,
                    layout=args.layout, max_rows=args.max_rows, overwrite=args.overwrite)
    store.update_meta(host={**host_record(args.host, weights=args.weights), "data_source": args.data}, data=what)
    print(f"aekit sae capture: {len(store)} rows of d={store.d} from {args.layer!r} on {what} -> {args.out}")
    return 0


def run_train(args) -> int:
    from ..tasks.sae.train import open_store, train_sae

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not (args.resume or args.overwrite):
        raise ConfigError(f"{str(out)!r} is not empty; pass --resume to continue that run or --overwrite to replace it.")
    if args.overwrite and not args.resume and out.exists():
        import shutil

        shutil.rmtree(out)
    store = open_store(args.store)
    epochs, chosen = args.epochs, ""
    if epochs is None:  # the data-aware step budget of aekit train (training/data_defaults.py)
        from ..training.data_defaults import MIN_STEPS, default_epochs

        epochs = default_epochs(len(store), batch_size=args.batch_size, epochs=1)
        if epochs > 1:
            chosen = (f" (epochs={epochs}: {len(store)} rows at batch {args.batch_size} take {epochs} passes for "
                      f"about {MIN_STEPS} optimizer steps; --epochs sets it)")
    sae, result = train_sae(store, n_latents=args.latents, activation=args.activation, k=args.k, l1=args.l1,
                            sparsity=args.sparsity, threshold=args.threshold, bandwidth=args.bandwidth,
                            aux_k=args.aux_k, aux_weight=args.aux_weight, dead_window=args.dead_window,
                            epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            buffer_rows=args.buffer_rows, out_dir=out, resume=args.resume,
                            run_info={"argv": args.argv})
    last = result.history[-1] if result.history else {}
    print(f"aekit sae train: {args.activation} SAE of {args.latents} latents on {len(store)} rows of d={store.d}; "
          f"train fvu {last.get('train_fvu', float('nan')):.4g}, l0 {last.get('train_l0', float('nan')):.3g} -> {out}"
          + chosen)
    return 0


def run_evaluate(args) -> int:
    from ..tasks.sae.evaluate import evaluate_sae
    from ..tasks.sae.hosts import host_data, host_from_record, load_host
    from ..tasks.sae.model import load_sae
    from ..tasks.sae.train import open_store

    sae = load_sae(args.sae)
    store = open_store(args.store)
    host = x = y = None
    if not args.no_downstream:
        spec, weights = (args.host, args.weights) if args.host else host_from_record(store.meta.get("host"))
        if args.host is None and args.weights is not None:
            weights = args.weights
        host, info = load_host(spec, weights=weights)
        source = args.data
        if source is None and not args.host:  # a Python host: the source it was captured from (its test split)
            source = (store.meta.get("host") or {}).get("data_source")
        x, y, _ = host_data(spec, info, host, source=source, data_dir=args.data_dir, split=args.split,
                            max_samples=args.max_samples)
    result = evaluate_sae(sae, store, host=host, inputs=x, labels=y, max_rows=args.max_rows)
    if args.json:
        from ..checkpoint import atomic_write_json

        atomic_write_json(args.json, result)
    print_table([{"metric": k, "value": v} for k, v in result.items()], ["metric", "value"], file=sys.stdout)
    return 0


__all__ = ["add_sae_parser"]
