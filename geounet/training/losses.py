"""Training losses.

A binary model (one output channel) is trained with BCE + soft Dice
(Milletari et al. 2016, V-Net); a model of several classes with cross-entropy,
optionally weighted by inverse class frequency. Pixels labelled
:data:`~geounet.constants.CLASS_NODATA` are left out of both.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from geounet.constants import CLASS_NODATA

log = logging.getLogger(__name__)


def balanced_class_weights(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Cross-entropy weights proportional to the inverse pixel frequency of each class.

    Classes without pixels get weight 0; the others are scaled to mean 1.

    Args:
        labels: ``(h, w)`` uint8 training labels (``CLASS_NODATA`` not counted).
        classes: Class names by id (their number sets the length).

    Returns:
        ``(len(classes),)`` float64 weights.
    """
    counts = np.bincount(labels[labels != CLASS_NODATA], minlength=len(classes))
    return weights_from_counts(counts, classes)


def weights_from_counts(counts: np.ndarray, classes: list[str]) -> np.ndarray:
    """:func:`balanced_class_weights` from ``(k,)`` int pixel counts per class."""
    counts = np.asarray(counts)
    freq = counts / max(1, counts.sum())
    w = np.where(counts > 0, 1.0 / np.maximum(freq, 1e-12), 0.0)
    w = w / w[counts > 0].mean()
    log.info("class weights %s", dict(zip(classes, np.round(w, 3).tolist(), strict=True)))
    return w


def bce_dice_loss(logits: Any, target: Any) -> Any:
    """Binary cross-entropy plus soft Dice loss (smoothing 1) of labelled pixels.

    Args:
        logits: ``(n,)`` float torch tensor, the foreground logits of the labelled pixels.
        target: ``(n,)`` float torch tensor of 0/1 labels.

    Returns:
        Scalar torch tensor.
    """
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


def segmentation_loss(logits: Any, target: Any, binary: bool, weight: Any = None) -> Any:
    """Loss of a batch, leaving out pixels labelled ``CLASS_NODATA``.

    Args:
        logits: ``(b, k, t, t)`` float torch tensor (``k = 1`` for a binary model).
        target: ``(b, t, t)`` int64 torch tensor of class ids.
        binary: BCE + Dice of channel 0 when True, else cross-entropy.
        weight: ``(k,)`` float32 torch class weights of the cross-entropy, or ``None``.

    Returns:
        Scalar torch tensor, or ``None`` when no pixel of ``target`` is labelled.
    """
    import torch.nn.functional as F

    keep = target != CLASS_NODATA
    if not keep.any():
        return None
    if binary:
        return bce_dice_loss(logits[:, 0][keep], target[keep].float())
    return F.cross_entropy(logits, target, weight=weight, ignore_index=CLASS_NODATA)
