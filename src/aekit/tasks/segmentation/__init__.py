"""U-Net segmentation (Ronneberger et al. 2015): image/mask pairs in, class masks out.

Not a point in the autoencoder product (its target is a mask, not the input), so it lives in
its own small package, one file per concept:

    pairs.py       image/mask pairs from two folders (PNG/TIFF) or arrays (.npy/.npz)
    procedural.py  a seeded synthetic set: cell-like blobs and shapes on uneven, noisy backgrounds
    unet.py        the fully convolutional U-Net (any input size, one or more classes)
    augment.py     random crops, flips, 90-degree rotations, elastic deformations (image and mask alike)
    losses.py      BCE / cross-entropy + soft Dice
    metrics.py     Dice, IoU, pixel error
    tiles.py       prediction of large images by overlapping, blended tiles
    training.py    crops and augmentation as a batch transform, Dice validation; trains in the one Trainer
    saving.py      safetensors + JSON model files

    from aekit.tasks.segmentation import make_cells, SegmentationSet, SegmentationUNet, fit_segmenter
"""

from .augment import Augment, random_crops
from .losses import segmentation_loss, soft_dice_loss
from .metrics import confusion_matrix, dice, iou, pixel_error, segmentation_scores
from .pairs import SegmentationSet, load_pairs, read_arrays, read_folders, read_images
from .procedural import make_cells, write_cells
from .saving import is_segmenter_dir, load_segmenter, save_segmenter
from .tiles import predict_logits, predict_mask
from .training import (CropAugment, SegmentConfig, SegmentResult, SegmentTrainer, evaluate_model, fit_segmenter,
                       make_segment_trainer)
from .unet import SegmentationUNet, logits_to_labels, pad_to_multiple


def cells_set(n: int, *, size=96, classes: int = 2, seed: int = 0, **options) -> SegmentationSet:
    """make_cells(...) as a SegmentationSet (in memory, no files); options go to make_cells."""
    images, masks = make_cells(n, size=size, classes=classes, seed=seed, **options)
    return SegmentationSet(list(images), list(masks), [f"cell_{i:05d}.png" for i in range(n)], classes,
                           "0/255" if classes == 2 else "indices",
                           {"procedural": {"n": n, "size": size, "classes": classes, "seed": seed, **options}})


__all__ = [
    "Augment", "CropAugment", "SegmentConfig", "SegmentResult", "SegmentTrainer", "SegmentationSet", "SegmentationUNet",
    "cells_set", "confusion_matrix", "dice", "evaluate_model", "fit_segmenter", "iou", "is_segmenter_dir",
    "load_pairs", "load_segmenter", "logits_to_labels", "make_cells", "make_segment_trainer", "pad_to_multiple", "pixel_error",
    "predict_logits", "predict_mask", "random_crops", "read_arrays", "read_folders", "read_images",
    "save_segmenter", "segmentation_loss", "segmentation_scores", "soft_dice_loss", "write_cells",
]
