"""Segmentation metrics from hard label maps: Dice, IoU (Jaccard) and pixel error.

For a class c with predicted set P and true set T (pixels):

    dice_c = 2 |P & T| / (|P| + |T|),   iou_c = |P & T| / |P | T|,   pixel_error = mean(pred != true)

A class absent from both prediction and truth scores 1 (nothing to find, nothing found).
Binary masks report class 1 (the foreground); multi-class masks report the mean over the
foreground classes 1..C-1 plus every class in `per_class`. Counts are pooled over all the
images given (one confusion matrix), so big images weigh more than small ones.
"""

from __future__ import annotations

import numpy as np
import torch


def confusion_matrix(pred, target, classes: int) -> np.ndarray:
    """(classes, classes) int64 counts; rows = true class, columns = predicted class."""
    p = torch.as_tensor(pred).reshape(-1).long()
    t = torch.as_tensor(target).reshape(-1).long()
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same number of pixels; got {p.numel()} and {t.numel()}.")
    counts = torch.bincount(t * classes + p, minlength=classes * classes)
    return counts.reshape(classes, classes).cpu().numpy().astype(np.int64)


def scores_from_confusion(cm: np.ndarray) -> dict:
    """{"dice", "iou", "pixel_error", "per_class": {c: {"dice", "iou"}}} from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    classes = cm.shape[0]
    tp = np.diag(cm)
    true_count, pred_count = cm.sum(axis=1), cm.sum(axis=0)
    union = true_count + pred_count - tp
    per_class = {}
    for c in range(classes):
        dice = 1.0 if true_count[c] + pred_count[c] == 0 else 2 * tp[c] / (true_count[c] + pred_count[c])
        iou = 1.0 if union[c] == 0 else tp[c] / union[c]
        per_class[c] = {"dice": float(dice), "iou": float(iou)}
    fg = list(range(1, classes))
    total = cm.sum()
    return {"dice": float(np.mean([per_class[c]["dice"] for c in fg])),
            "iou": float(np.mean([per_class[c]["iou"] for c in fg])),
            "pixel_error": float(1 - tp.sum() / total) if total else 0.0,
            "per_class": per_class}


def segmentation_scores(pred, target, *, classes: int = 2) -> dict:
    """Dice, IoU and pixel error of label maps pred vs target (any matching shapes); see module docstring."""
    if isinstance(pred, (list, tuple)):
        cm = sum(confusion_matrix(p, t, classes) for p, t in zip(pred, target))
    else:
        cm = confusion_matrix(pred, target, classes)
    return scores_from_confusion(cm)


def dice(pred, target) -> float:
    """Binary Dice of two 0/1 maps."""
    return segmentation_scores(pred, target, classes=2)["dice"]


def iou(pred, target) -> float:
    """Binary IoU (Jaccard) of two 0/1 maps."""
    return segmentation_scores(pred, target, classes=2)["iou"]


def pixel_error(pred, target) -> float:
    """Share of pixels whose labels differ."""
    p, t = torch.as_tensor(pred), torch.as_tensor(target)
    return float((p != t).float().mean())
