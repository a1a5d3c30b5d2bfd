"""U-Net segmentation on the procedural cells data set (aekit.tasks.segmentation.make_cells).

Trains a U-Net on procedural images (cell-like blobs and shapes on noisy backgrounds with an
illumination gradient and vignetting), keeps the epoch with the best Dice on a separate
validation set, and reports Dice, IoU and pixel error on held-out test images (new seeds),
plus the training wall time and process CPU time on this machine. Classical baselines on the same
test images: a per-image Otsu threshold (defeated by the uneven background the procedural cells
were designed with), and the classical fix a competent user applies first, background-corrected
Otsu: subtract a large-scale background estimate (a wide Gaussian blur, or a morphological
opening = white top-hat) and threshold the result with Otsu; the background method and its scale
are chosen on the validation images (never the test images). The trained net predicts large held-out images (objects at the training
scale) both whole and by overlapping tiles (tiles.py), to show that tiling costs no accuracy.

    python benchmarks/segmentation.py                    # binary (8 epochs) and 3-class (20 epochs), 1 thread
    python benchmarks/segmentation.py --classes 2 --epochs 8
    python benchmarks/segmentation.py --quick            # a smoke run (writes no published results file)

Real microscopy: no real segmentation data with masks is available offline here (scikit-image
bundles cell.png and ihc.png without masks; its cells3d / human_mitosis fetchers need a network
download), so this benchmark has procedural data only.

The machine is shared: the load average at the start and end is recorded, since wall time on a
loaded machine overstates the cost (CPU time does not).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown, write_results  # noqa: E402

from aekit.tasks.segmentation import (  # noqa: E402
    SegmentConfig, SegmentationUNet, SegmentTrainer, cells_set, evaluate_model, segmentation_scores,
)

TARGET_DICE = 0.9


BG_BLUR_SIGMAS = (4, 8, 16, 24, 32, 48)  # background = Gaussian blur of the image (pixels)
BG_OPEN_SIZES = (9, 15, 21, 31, 41)  # background = grey opening with a square of this side (white top-hat)


def otsu_threshold(img: np.ndarray) -> float:
    """Otsu's threshold over the image's own value range (256 bins): maximises the between-class variance."""
    lo, hi = float(img.min()), float(img.max())
    hist, edges = np.histogram(img, bins=256, range=(lo, hi if hi > lo else lo + 1.0))
    p = hist / hist.sum()
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centers)
    between = (mu[-1] * w0 - mu) ** 2 / np.maximum(w0 * (1 - w0), 1e-12)
    return float(centers[int(np.argmax(between))])


def background_corrected(img: np.ndarray, method: str, scale: int) -> np.ndarray:
    """img (H, W) minus a large-scale background estimate."""
    from scipy import ndimage

    if method == "blur":
        return img - ndimage.gaussian_filter(img, sigma=scale, mode="reflect")
    if method == "opening":
        return img - ndimage.grey_opening(img, size=(scale, scale), mode="reflect")
    if method == "none":
        return img
    raise ValueError(f"background method must be blur, opening or none; got {method!r}")


def otsu_scores(data, method: str = "none", scale: int = 0) -> dict:
    preds = []
    for img in data.images:
        x = background_corrected(np.asarray(img[0], dtype=np.float64), method, scale)
        preds.append((x > otsu_threshold(x)).astype(np.int64))
    fg = [(m > 0).astype(np.int64) for m in data.masks]
    return segmentation_scores([torch.as_tensor(p) for p in preds], [torch.as_tensor(m) for m in fg], classes=2)


def tune_background(val) -> dict:
    """The background method and scale with the best foreground Dice on the validation images."""
    grid = [("blur", s) for s in BG_BLUR_SIGMAS] + [("opening", s) for s in BG_OPEN_SIZES]
    scored = [{"method": m, "scale": s, "val_dice": otsu_scores(val, m, s)["dice"]} for m, s in grid]
    return {"best": max(scored, key=lambda r: r["val_dice"]), "grid": scored}


def large_image_scores(model, classes: int, args) -> dict:
    """Large images (objects at the training scale): whole-image vs overlapping-tile prediction."""
    large = cells_set(args.n_large, size=args.large_size, classes=classes, seed=4, object_scale=args.size)
    out = {"images": args.n_large, "size": args.large_size}
    for name, tile in (("whole", args.large_size), ("tiled", args.tile)):
        t0 = time.perf_counter()
        s = evaluate_model(model, large, tile=tile, overlap=args.overlap)
        out[name] = {"dice": s["dice"], "iou": s["iou"], "pixel_error": s["pixel_error"],
                     "seconds": time.perf_counter() - t0}
    return out


def run(classes: int, epochs: int, args) -> dict:
    train = cells_set(args.n_train, size=args.size, classes=classes, seed=1)
    val = cells_set(args.n_val, size=args.size, classes=classes, seed=2)
    test = cells_set(args.n_test, size=args.size, classes=classes, seed=3)
    torch.manual_seed(0)
    model = SegmentationUNet(in_channels=1, classes=classes, depth=args.depth, width=args.width)
    cfg = SegmentConfig(epochs=epochs, batch_size=args.batch_size, crop=args.crop, lr=args.lr, seed=0)

    def report(record, trainer):
        print(f"  [{classes} classes] epoch {record['epoch']}/{cfg.epochs} train_loss={record['train_loss']:.4f} "
              f"val_dice={record['val_dice']:.4f} ({record['time']:.0f}s)", flush=True)

    best = {}

    def keep_best(record, trainer):  # keep the best-validation weights in memory (no out_dir in a benchmark)
        if trainer.best_epoch == record["epoch"]:
            best["state"] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    cpu0, t0 = time.process_time(), time.perf_counter()
    result = SegmentTrainer(model, cfg, callbacks=[report, keep_best]).fit(train, val)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    model.load_state_dict(best["state"])
    t1 = time.perf_counter()
    scores = evaluate_model(model, test)
    eval_seconds = time.perf_counter() - t1
    out = {"classes": classes, "train_images": args.n_train, "val_images": args.n_val, "test_images": args.n_test,
           "size": args.size, "epochs": epochs, "best_epoch": result.best_epoch, "steps": result.history[-1]["step"],
           "train_wall_s": wall, "train_cpu_s": cpu, "test_eval_s": eval_seconds,
           "test": {k: v for k, v in scores.items()}, "history": result.history,
           "params": sum(p.numel() for p in model.parameters())}
    out["large"] = large_image_scores(model, classes, args)
    # the Otsu baselines separate objects from background only (3-class: scored on the foreground union)
    key = "otsu" if classes == 2 else "otsu_foreground"
    out[key] = {k: v for k, v in otsu_scores(test).items() if k != "per_class"}
    bg = tune_background(val)
    out[key + "_background_corrected"] = {
        **{k: v for k, v in otsu_scores(test, bg["best"]["method"], bg["best"]["scale"]).items() if k != "per_class"},
        "chosen_on_validation": bg["best"], "validation_grid": bg["grid"]}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", default="2,3", help="comma list: 2 (binary), 3 (background, cell, shape)")
    p.add_argument("--n-train", type=int, default=256)
    p.add_argument("--n-val", type=int, default=32)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--epochs", default="8,20", help="epochs per entry of --classes (one value: for all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--tile", type=int, default=128)
    p.add_argument("--n-large", type=int, default=4)
    p.add_argument("--large-size", type=int, default=384)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a smoke run: 40 training images, 2 epochs")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.n_train, args.n_val, args.n_test, args.epochs = 40, 8, 16, "2"
    tasks = [int(c) for c in args.classes.split(",")]
    epochs = [int(e) for e in args.epochs.split(",")]
    epochs = epochs * len(tasks) if len(epochs) == 1 else epochs
    if len(epochs) != len(tasks):
        p.error(f"--epochs needs one value or one per --classes entry; got {args.epochs!r} for {args.classes!r}")
    load_start = os.getloadavg()[0]
    runs = []
    for classes, n_epochs in zip(tasks, epochs):
        print(f"training a U-Net (depth {args.depth}, width {args.width}) for {classes} classes, {n_epochs} epochs ...",
              flush=True)
        runs.append(run(classes, n_epochs, args))
    load_end = os.getloadavg()[0]
    rows = []
    for r in runs:
        t = r["test"]
        rows.append({"task": "binary (objects)" if r["classes"] == 2 else "3-class (cell, shape)", "method": "U-Net",
                     "epochs": r["epochs"],
                     "test Dice": t["dice"], "test IoU": t["iou"], "pixel error": t["pixel_error"],
                     "large whole Dice": r["large"]["whole"]["dice"], "large tiled Dice": r["large"]["tiled"]["dice"],
                     "train wall s": round(r["train_wall_s"], 1),
                     "train CPU s": round(r["train_cpu_s"], 1)})
        task = rows[-1]["task"] + ("" if r["classes"] == 2 else ", foreground only")
        key = "otsu" if r["classes"] == 2 else "otsu_foreground"
        base, bgc = r[key], r[key + "_background_corrected"]
        pick = bgc["chosen_on_validation"]
        rows.append({"task": task, "method": "Otsu threshold per image", "test Dice": base["dice"],
                     "test IoU": base["iou"], "pixel error": base["pixel_error"]})
        rows.append({"task": task, "method": (f"background-corrected Otsu ({pick['method']} {pick['scale']} px, "
                                              "chosen on validation)"),
                     "test Dice": bgc["dice"], "test IoU": bgc["iou"], "pixel error": bgc["pixel_error"]})
    columns = ["task", "method", "epochs", "test Dice", "test IoU", "pixel error", "large whole Dice", "large tiled Dice",
               "train wall s", "train CPU s"]
    table = markdown(rows, columns)
    table += (f"\n\n{args.n_train} training / {args.n_val} validation / {args.n_test} test images of {args.size}x{args.size} "
              f"(seeds 1 / 2 / 3); epochs of {args.crop}x{args.crop} random crops, batch {args.batch_size}, "
              f"Adam lr {args.lr} with cosine decay, flips + 90-degree rotations + elastic deformations; U-Net depth "
              f"{args.depth}, width {args.width} ({runs[0]['params']} parameters for binary), BatchNorm; BCE/CE + soft "
              f"Dice. Dice/IoU pooled over all test pixels (3-class: mean over cell and shape). Large: {args.n_large} "
              f"held-out {args.large_size}x{args.large_size} images with objects at the training scale (seed 4), "
              f"predicted whole and by {args.tile}x{args.tile} tiles overlapping by {args.overlap} pixels. {args.threads} thread(s); load average {load_start:.1f} at the start and "
              f"{load_end:.1f} at the end on a shared 2-core machine, so wall time overstates the cost; CPU time is the "
              "process's own. Background-corrected Otsu: image minus a Gaussian blur (sigma "
              f"{', '.join(map(str, BG_BLUR_SIGMAS))} px) or minus a grey opening (square {', '.join(map(str, BG_OPEN_SIZES))} "
              "px), then Otsu; method and scale chosen by foreground Dice on the validation images. Procedural data only: "
              "no real microscopy set with masks is available offline here.")
    print(table)
    binary = next((r for r in runs if r["classes"] == 2), None)
    met = binary is not None and binary["test"]["dice"] >= TARGET_DICE
    path = write_results("segmentation", {
        "title": "U-Net segmentation of procedural cells (held-out Dice, IoU, pixel error; CPU training time)",
        "table": table, "target": f"binary test Dice >= {TARGET_DICE} on held-out procedural images", "met": bool(met),
        "threads": args.threads, "load_average_start": load_start, "load_average_end": load_end,
        "options": vars(args), "runs": runs}, quick=args.quick)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
