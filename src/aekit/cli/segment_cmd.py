"""`aekit segment train|predict|evaluate|make-data`: U-Net segmentation from the command line.

    aekit segment make-data --out cells -n 200
    aekit segment train --images cells/images --masks cells/masks --out runs/seg
    aekit segment predict runs/seg --images new/images --out new/pred
    aekit segment evaluate runs/seg --images test/images --masks test/masks --json
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError, check_choice
from ..training.loggers import LOGGERS
from ..training.precision import PRECISIONS
from .parser import Parser, positive_float, positive_int, print_table


class _GroupParser(Parser):
    """The `segment` parser: a mistyped option is matched against every action's options."""

    def error(self, message: str):  # noqa: D401 - argparse API
        if "unrecognized arguments:" in message:
            options = sorted({s for child in self._children() for a in child._actions for s in a.option_strings
                              if s.startswith("--")})
            from ..errors import did_you_mean

            hint = ""
            for token in message.split(":", 1)[1].split():
                if token.startswith("-"):
                    hint = did_you_mean(token.split("=")[0], options)
                    if hint:
                        break
            self.exit(2, f"{self.prog}: error: {message}.{hint}\n".replace("..", "."))
        super().error(message)

    def _children(self):
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from action.choices.values()


def augment_list(text: str) -> list[str]:
    """'flip,rotate,elastic' -> the list; 'none' or '' -> []."""
    from ..tasks.segmentation.training import AUGMENTATIONS

    if text.strip().lower() in ("", "none"):
        return []
    values = [v.strip() for v in text.split(",") if v.strip()]
    for v in values:
        if v not in AUGMENTATIONS:
            from ..errors import did_you_mean

            raise argparse.ArgumentTypeError(f"--augment takes a comma list of {', '.join(AUGMENTATIONS)} or none; "
                                             f"got {v!r}.{did_you_mean(v, AUGMENTATIONS)}")
    return values


def add_segment_parser(sub) -> None:
    p = sub.add_parser("segment", help="U-Net segmentation: train, predict, evaluate, make-data",
                       description="U-Net segmentation of images into masks (binary or multi-class).")
    p.__class__ = _GroupParser  # the top level makes every subparser a Parser; this one also hints across its actions
    actions = p.add_subparsers(dest="segment_command", metavar="ACTION", parser_class=Parser)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    t = actions.add_parser("train", help="train a U-Net on image/mask pairs",
                           description="Train a U-Net on image/mask pairs (two folders matched by file stem, or .npy/.npz).")
    t.add_argument("--images", default=None, help="folder of PNG/TIFF images, or a .npz (images + masks) / .npy file")
    t.add_argument("--masks", default=None, help="folder of masks with the images' file stems, or a .npy/.npz file")
    t.add_argument("--mask-suffix", default="", help="mask stems end with this, e.g. _mask for a.png -> a_mask.png")
    t.add_argument("--out", default=None, help="run directory to write (required)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    g = t.add_argument_group("model")
    g.add_argument("--classes", type=positive_int, default=None,
                   help="number of classes including background (default: from the masks; 2 = binary)")
    g.add_argument("--depth", type=positive_int, default=3, help="poolings in the U-Net (default: 3)")
    g.add_argument("--width", type=positive_int, default=16, help="channels of the first level, doubled per level (default: 16)")
    g.add_argument("--norm", choices=["batch", "none"], default="batch", help="normalization after each conv (default: batch)")
    g = t.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=None, help="passes over the training pairs (default: 30)")
    g.add_argument("--batch-size", type=positive_int, default=None, help="crops per step (default: 8)")
    g.add_argument("--crop", type=positive_int, default=None, help="side of the random training crops (default: 128)")
    g.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate, cosine-decayed (default: 2e-3)")
    g.add_argument("--dice-weight", type=float, default=None, help="weight of the soft Dice loss (default: 1)")
    g.add_argument("--augment", type=augment_list, default=None,
                   help="comma list of flip, rotate, elastic, or none (default: flip,rotate,elastic)")
    g.add_argument("--elastic-std", type=float, default=None, help="elastic displacement std in pixels (default: 4)")
    g.add_argument("--val-fraction", type=float, default=0.1, help="share of the pairs held out (default: 0.1)")
    g.add_argument("--seed", type=int, default=None, help="seed for weights, split, crops and augmentation (default: 0)")
    g.add_argument("--tile", type=positive_int, default=None, help="prediction tile side for validation (default: 256)")
    g.add_argument("--overlap", type=int, default=None, help="tile overlap in pixels (default: min(32, tile / 4))")
    g.add_argument("--max-time", type=positive_float, default=None, help="stop after the epoch that passes this many seconds")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: cpu)")
    g.add_argument("--early-stopping", type=positive_int, default=None, metavar="EPOCHS",
                   help="stop after this many epochs without a better validation Dice (default: off)")
    g.add_argument("--checkpoint-every", default=None,
                   help="also checkpoint inside epochs: N steps or a duration such as 90s, 10m; off (default: 10m)")
    g.add_argument("--tensorboard", action="store_true", default=None, help="also write TensorBoard logs into --out")
    g.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="32 (default), bf16-mixed (CUDA, or a CPU with AMX) or 16-mixed (CUDA, with a loss scale)")
    g.add_argument("--logger", dest="loggers", action="append", choices=LOGGERS[1:],
                   default=None, metavar="NAME", help="also log to tensorboard, mlflow or wandb (offline); repeatable")
    g.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    t.set_defaults(func=run_segment_train)

    r = actions.add_parser("predict", help="write predicted masks for a folder of images",
                           description="Predict a mask per image (tiled for large images); PNG masks with the images' names.")
    r.add_argument("run_dir", help="a run directory written by 'aekit segment train'")
    r.add_argument("--images", required=True, help="folder of PNG/TIFF images")
    r.add_argument("--out", required=True, help="folder for the masks (created)")
    _tile_options(r)
    r.set_defaults(func=run_segment_predict)

    e = actions.add_parser("evaluate", help="Dice, IoU and pixel error on image/mask pairs",
                           description="Score a trained U-Net on image/mask pairs: Dice, IoU, pixel error.")
    e.add_argument("run_dir", help="a run directory written by 'aekit segment train'")
    e.add_argument("--images", required=True, help="folder of PNG/TIFF images, or a .npz / .npy file")
    e.add_argument("--masks", default=None, help="folder of masks (same file stems), or a .npy/.npz file")
    e.add_argument("--mask-suffix", default="", help="mask stems end with this suffix")
    e.add_argument("--json", action="store_true", help="print one JSON object (keys dice, iou, pixel_error, ...)")
    _tile_options(e)
    e.set_defaults(func=run_segment_evaluate)

    m = actions.add_parser("make-data", help="write the procedural cells data set (images/ and masks/)",
                           description="Cell-like blobs and shapes on noisy, uneven backgrounds, with masks.")
    m.add_argument("--out", required=True, help="folder that receives images/ and masks/")
    m.add_argument("-n", type=positive_int, default=200, help="number of images (default: 200)")
    m.add_argument("--size", type=positive_int, default=96, help="image side in pixels (default: 96)")
    m.add_argument("--classes", type=int, choices=[2, 3], default=2,
                   help="2: objects vs background; 3: background, cell, shape (default: 2)")
    m.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    m.set_defaults(func=run_segment_make_data)


def _tile_options(p) -> None:
    p.add_argument("--tile", type=positive_int, default=256, help="tile side for large images (default: 256)")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap in pixels (default: min(32, tile / 4))")


# ---------------------------------------------------------------------- train
def run_segment_train(args) -> int:
    from ..tasks.segmentation.run import train_segmentation_run
    from .options import absolute_dir

    if args.out is None:
        raise ConfigError("--out RUN_DIR is required: the folder that receives the model, history and checkpoints.")
    options = {k: getattr(args, k) for k in ("epochs", "batch_size", "crop", "lr", "dice_weight", "augment",
                                             "elastic_std", "seed", "tile", "overlap", "max_time", "device",
                                             "early_stopping", "checkpoint_every", "tensorboard", "precision",
                                             "loggers")
               if getattr(args, k) is not None}
    data = None
    if not args.resume and args.images is not None:
        data = {"images": absolute_dir(args.images), "masks": absolute_dir(args.masks), "mask_suffix": args.mask_suffix,
                "classes": args.classes, "val_fraction": args.val_fraction,
                "seed": args.seed if args.seed is not None else 0}
    verbose = not args.quiet

    def report(record, trainer):
        if verbose:
            terms = "  ".join(f"{k}={v:.4g}" for k, v in record.items() if k.startswith(("train_", "val_")))
            print(f"epoch {record['epoch']:>3}/{trainer.cfg.epochs}  {terms}  ({record['time']:.1f}s)", file=sys.stderr)

    summary = train_segmentation_run(args.out, resume=args.resume, overwrite=args.overwrite, data=data, options=options,
                                     architecture={"depth": args.depth, "width": args.width, "norm": args.norm},
                                     command=["aekit", *getattr(args, "argv", sys.argv[1:])], callbacks=[report])
    print(json.dumps(summary))
    return 0


# ---------------------------------------------------------------------- predict
def run_segment_predict(args) -> int:
    from ..tasks.segmentation.run import predict_folder

    print(json.dumps(predict_folder(args.run_dir, args.images, args.out, tile=args.tile, overlap=args.overlap)))
    return 0


# ---------------------------------------------------------------------- evaluate
def run_segment_evaluate(args) -> int:
    from ..tasks.segmentation.run import evaluate_segmentation_run

    result = evaluate_segmentation_run(args.run_dir, args.images, args.masks, mask_suffix=args.mask_suffix,
                                       tile=args.tile, overlap=args.overlap)
    if args.json:
        print(json.dumps(result))
    else:
        print_table([{k: result[k] for k in ("images", "classes", "dice", "iou", "pixel_error", "loss")}],
                    ["images", "classes", "dice", "iou", "pixel_error", "loss"])
        if result["classes"] > 2:
            print_table([{"class": c, **v} for c, v in result["per_class"].items()], ["class", "dice", "iou"])
    return 0


# ---------------------------------------------------------------------- make-data
def run_segment_make_data(args) -> int:
    from ..tasks.segmentation.procedural import write_cells

    check_choice("classes", str(args.classes), ["2", "3"])
    img_dir, mask_dir = write_cells(args.out, args.n, size=args.size, classes=args.classes, seed=args.seed)
    print(json.dumps({"images": str(img_dir), "masks": str(mask_dir), "n": args.n, "size": args.size,
                      "classes": args.classes, "seed": args.seed}))
    return 0
