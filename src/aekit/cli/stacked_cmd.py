"""`aekit train stacked --layers 500,250,30 [--layer-variant sparse_kl] [--finetune ...] --data SRC --out RUN_DIR`.

Greedy layer-wise pretraining and fine-tuning (aekit.tasks.stacked.layerwise). The options of `aekit train`
apply: the training group to every phase (--epochs is the fine-tune's; --pretrain-epochs each
layer's), --likelihood to the first layer and the assembled model, --activation /
--code-activation to the hidden / top codes, --noise / --sparsity / --contractive replace the
layer variant's corruption and penalty.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

from ..data import load_data
from ..errors import ConfigError
from ..tasks.stacked.layerwise import FINETUNE, LAYER_VARIANTS, fit_stacked
from ..training.trainer import TrainConfig
from .options import _help, data_options, train_options
from .parser import int_list, parse_sparsity, positive_int


def stacked_defaults() -> dict:
    """fit_stacked's keyword defaults (layer_variant, finetune, head_epochs, likelihood, ...)."""
    return {p.name: p.default for p in inspect.signature(fit_stacked).parameters.values()
            if p.default is not inspect.Parameter.empty}


def add_stacked_options(p) -> None:
    d = stacked_defaults()
    g = p.add_argument_group("stacked (variant 'stacked': greedy layer-wise pretraining)")
    g.add_argument("--layers", type=int_list, default=None, help="layer widths from the input up, e.g. 500,250,30 (required)")
    g.add_argument("--layer-variant", default=None,
                   help=_help(f"autoencoder of each layer: {', '.join(LAYER_VARIANTS)}", d["layer_variant"]))
    g.add_argument("--finetune", default=None, help=_help(f"after pretraining: {', '.join(FINETUNE)}", d["finetune"]))
    g.add_argument("--pretrain-epochs", type=positive_int, default=None,
                   help="epochs per pretrained layer (when not given: the fine-tune's --epochs)")
    g.add_argument("--head-epochs", type=int, default=None,
                   help=_help("classifier fine-tune: epochs of the softmax head alone before the whole stack",
                              d["head_epochs"]))


def reject_stacked_options(args) -> None:
    """The stacked options given with another variant: an error rather than silently ignored."""
    for name in ("layers", "layer_variant", "finetune", "pretrain_epochs", "head_epochs"):
        if getattr(args, name, None) is not None:
            raise ConfigError(f"--{name.replace('_', '-')} applies to variant 'stacked' only; got variant {args.variant!r}.")


def run_train_stacked(args) -> int:
    if args.resume:
        raise ConfigError("--resume is not supported for 'stacked' runs; train again with --overwrite.")
    if args.out is None:
        raise ConfigError("--out RUN_DIR is required: the folder that receives the config, weights and history.")
    if not args.layers:
        raise ConfigError("variant 'stacked' needs --layers: the widths from the input up, e.g. --layers 500,250,30.")
    for name in ("hidden", "latent_dim", "backbone", "channels", "conv_hidden", "beta", "learn_sigma"):
        if getattr(args, name, None):
            raise ConfigError(f"--{name.replace('_', '-')} does not apply to 'stacked'; the widths come from --layers.")
    for name in ("bottleneck", "corruption", "reg", "sigma"):
        if getattr(args, name, None):
            raise ConfigError(f"--{name} does not apply to 'stacked'; each layer is its --layer-variant "
                              "(--noise, --sparsity and --contractive replace its corruption and penalty).")
    if args.likelihood is not None and ":" in args.likelihood:
        raise ConfigError(f"--likelihood of 'stacked' is a name (bernoulli or gaussian); got {args.likelihood!r}.")
    out = Path(args.out)
    if (out / "run.json").exists() and not args.overwrite:
        raise ConfigError(f"{str(out)!r} already holds a run; pass --overwrite to replace it.")
    if args.data is None:
        raise ConfigError("--data is required: digits, mnist, fashion-mnist or a file/folder path.")
    defaults = stacked_defaults()
    finetune = args.finetune or defaults["finetune"]
    regs = None
    if args.sparsity or args.contractive is not None:
        regs = dict(parse_sparsity(args.sparsity)) if args.sparsity else {}
        if args.contractive is not None:
            regs["contractive"] = {"weight": args.contractive}
    data = data_options(args)
    ds = load_data(data["source"], **{k: v for k, v in data.items() if k != "source" and v is not None})
    cfg = TrainConfig.from_dict({**train_options(args), "progress": False if args.quiet else None})
    run_info = {"variant": "stacked", "data": data, "dataset": ds.to_dict(),
                "command": ["aekit", *getattr(args, "argv", sys.argv[1:])]}
    verbose = not args.quiet

    def report(record, trainer):
        if verbose:
            where = f"layer {record['layer']}" if record.get("layer") else record["phase"]
            terms = "  ".join(f"{k}={v:.4g}" for k, v in record.items() if k.startswith(("train_", "val_")))
            print(f"{where:>20}  epoch {record['epoch']:>3}/{trainer.cfg.epochs}  {terms}  ({record['time']:.1f}s)",
                  file=sys.stderr)

    result = fit_stacked(ds.train, ds.val, ds.y_train, ds.y_val, layers=args.layers,
                         layer_variant=args.layer_variant or defaults["layer_variant"], finetune=finetune,
                         likelihood=args.likelihood or defaults["likelihood"], activation=args.activation,
                         top_activation=args.code_activation, corruption=args.noise, regularizers=regs,
                         config=cfg, pretrain_epochs=args.pretrain_epochs,
                         head_epochs=defaults["head_epochs"] if args.head_epochs is None else args.head_epochs, out_dir=out,
                         run_info=run_info, callbacks=[report], seed=cfg.seed)
    s = result.summary
    summary = {"run_dir": str(out), "layers": s["layers"], "finetune": finetune,
               "pretrain_loss": [[round(p["loss_before"], 4), round(p["loss_after"], 4)] for p in s["pretrain"]],
               "sse_pretrained": s["sse_pretrained"], "sse_finetuned": s["sse_finetuned"]}
    if "classifier" in s:
        summary.update({k: s["classifier"][k] for k in ("accuracy_pretrained", "accuracy_finetuned", "accuracy_on")})
    print(json.dumps(summary))
    return 0
