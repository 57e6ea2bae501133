"""Scoring predictions against ground truth: pure functions of arrays and geometries.

Two families of figures:

* pixel metrics of the foreground (any class other than background): IoU
  ``tp / (tp + fp + fn)``, precision, recall and F1, counted on a raster grid;
* the SpaceNet building metric (Van Etten, Lindenbaum and Bacastow 2018,
  "SpaceNet: A Remote Sensing Dataset and Challenge Series", arXiv:1807.01232):
  predicted and true footprints are matched one-to-one, greedily, each
  prediction taking the unmatched true footprint of highest IoU, and count as
  a true positive when that IoU is at least 0.5. Precision, recall and F1
  follow from the counts.

For multi-class (land cover) truth the figures come from the confusion
matrix: overall accuracy, and per class IoU, precision (user's accuracy),
recall (producer's accuracy) and F1, with the mean IoU over the classes
present in the truth (as in the PASCAL VOC and Cityscapes benchmarks;
Everingham et al. 2010, "The PASCAL Visual Object Classes Challenge").

Reading the files to score (rasters, vectors, regions, a model's held-out
polygons) is :mod:`geounet.evaluation`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely

from geounet._deprecated import moved_to
from geounet.constants import CLASS_NODATA

__getattr__ = moved_to(__name__, {
    "evaluate": "geounet.evaluation",
    "evaluate_classes": "geounet.evaluation",
    "held_out_selection": "geounet.evaluation",
    "RASTER_EXTS": "geounet.constants:RASTER_SUFFIXES",
})


@dataclass(frozen=True)
class PixelMetrics:
    """Pixel counts and ratios of the foreground.

    Attributes:
        tp, fp, fn: Pixel counts.
        iou, precision, recall, f1: Ratios in [0, 1] (0 when undefined).
    """

    tp: int
    fp: int
    fn: int
    iou: float
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class BuildingMetrics:
    """SpaceNet footprint metric.

    Attributes:
        tp, fp, fn: Footprint counts.
        precision, recall, f1: Ratios in [0, 1].
        iou_threshold: IoU a match needs (0.5 in SpaceNet).
        mean_iou_matched: Mean IoU of the matched pairs.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    iou_threshold: float
    mean_iou_matched: float


@dataclass(frozen=True)
class ClassMetrics:
    """Multi-class pixel figures from a confusion matrix.

    Attributes:
        classes: Class names by class id (rows and columns of ``confusion``).
        confusion: ``confusion[t][p]`` pixels of true class ``t`` predicted
            as ``p`` (list of lists of int).
        per_class: Per class name: ``iou``, ``precision`` (user's accuracy),
            ``recall`` (producer's accuracy), ``f1`` and ``support_px`` (true
            pixels); ratios are ``None`` where undefined.
        overall_accuracy: Correct pixels / scored pixels.
        mean_iou: Mean IoU over the classes with true pixels.
        pixels: Scored pixels.
        polygons: True polygons scored.
    """

    classes: list[str]
    confusion: list[list[int]]
    per_class: dict[str, dict[str, Any]]
    overall_accuracy: float
    mean_iou: float
    pixels: int
    polygons: int


@dataclass(frozen=True)
class EvaluationResult:
    """Result of :func:`geounet.evaluation.evaluate`.

    Attributes:
        pixel: Foreground pixel metrics (binary evaluation), else ``None``.
        buildings: SpaceNet footprint metric (binary evaluation), else ``None``.
        region: The region scored, or ``None``.
        classes: Multi-class figures (with ``label_column``), else ``None``.
    """

    pixel: PixelMetrics | None
    buildings: BuildingMetrics | None
    region: str | None
    classes: ClassMetrics | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable).

        Returns:
            The fields as nested dicts and lists.
        """
        return asdict(self)


def _ratios(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of counts (0 where undefined)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def pixel_metrics(pred: np.ndarray, truth: np.ndarray,
                  valid: np.ndarray | None = None) -> PixelMetrics:
    """Pixel metrics of boolean foreground masks.

    Args:
        pred: ``(h, w)`` bool predicted foreground.
        truth: ``(h, w)`` bool true foreground.
        valid: ``(h, w)`` bool pixels to count (default all).

    Returns:
        :class:`PixelMetrics` (counts in pixels).
    """
    if valid is None:
        valid = np.ones(pred.shape, bool)
    tp = int(np.sum(pred & truth & valid))
    fp = int(np.sum(pred & ~truth & valid))
    fn = int(np.sum(~pred & truth & valid))
    p, r, f = _ratios(tp, fp, fn)
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    return PixelMetrics(tp, fp, fn, iou, p, r, f)


def match_footprints(pred: Iterable[Any], truth: Iterable[Any],
                     iou_threshold: float = 0.5) -> BuildingMetrics:
    """One-to-one greedy matching of footprints (SpaceNet metric).

    Each prediction, in order, takes the unmatched true footprint of highest
    IoU; the pair is a true positive when that IoU is at least
    ``iou_threshold``. Empty and ``None`` geometries are skipped; invalid ones
    are made valid first.

    Args:
        pred: Predicted shapely polygons (same CRS as ``truth``).
        truth: True polygons.
        iou_threshold: Minimum IoU of a true positive.

    Returns:
        :class:`BuildingMetrics`.
    """
    pred = [g for g in pred if g is not None and not g.is_empty]
    truth = [shapely.make_valid(g) for g in truth if g is not None and not g.is_empty]
    tree = shapely.STRtree(truth)
    unmatched = set(range(len(truth)))
    tp, ious = 0, []
    for g in pred:
        g = shapely.make_valid(g)
        best, best_iou = None, 0.0
        for j in tree.query(g):
            j = int(j)
            if j not in unmatched:
                continue
            inter = g.intersection(truth[j]).area
            union = g.union(truth[j]).area
            iou = inter / union if union else 0.0
            if iou > best_iou:
                best, best_iou = j, iou
        if best is not None and best_iou >= iou_threshold:
            unmatched.discard(best)
            tp += 1
            ious.append(best_iou)
    fp = len(pred) - tp
    fn = len(truth) - tp
    p, r, f = _ratios(tp, fp, fn)
    return BuildingMetrics(tp, fp, fn, p, r, f, iou_threshold,
                           float(np.mean(ious)) if ious else 0.0)


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix of class ids.

    Args:
        pred: ``(n,)`` int predicted class ids in ``0..n_classes-1``.
        truth: ``(n,)`` int true class ids in the same range.
        n_classes: Number of classes.

    Returns:
        ``(n_classes, n_classes)`` int64, rows true, columns predicted.
    """
    idx = truth.astype(np.int64) * n_classes + pred.astype(np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_metrics(cm: np.ndarray, classes: list[str], polygons: int = 0) -> ClassMetrics:
    """Per-class and overall figures from a confusion matrix (rows true).

    Args:
        cm: ``(k, k)`` int confusion matrix (see :func:`confusion_matrix`).
        classes: ``k`` class names (by id).
        polygons: Number of true polygons behind it (reported only).

    Returns:
        :class:`ClassMetrics`.
    """
    tp = np.diag(cm).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm.sum(0).astype(float)
    per = {}
    ious = []
    for i, name in enumerate(classes):
        union = support[i] + predicted[i] - tp[i]
        iou = tp[i] / union if union else None
        prec = tp[i] / predicted[i] if predicted[i] else None
        rec = tp[i] / support[i] if support[i] else None
        f1 = (2 * prec * rec / (prec + rec) if prec is not None and rec is not None
              and prec + rec else (0.0 if support[i] else None))
        per[name] = {"iou": iou, "precision": prec, "recall": rec, "f1": f1,
                     "support_px": int(support[i])}
        if support[i]:
            ious.append(iou or 0.0)
    total = cm.sum()
    return ClassMetrics(
        classes=list(classes),
        confusion=cm.astype(int).tolist(),
        per_class=per,
        overall_accuracy=float(tp.sum() / total) if total else 0.0,
        mean_iou=float(np.mean(ious)) if ious else 0.0,
        pixels=int(total),
        polygons=int(polygons),
    )


def iou_from_labels(pred: np.ndarray, truth: np.ndarray, n_classes: int,
                    background: int | None = 0) -> float:
    """Foreground IoU (binary) or mean IoU over the classes present in the truth.

    The mean IoU is as :func:`class_metrics` computes it. Pixels where
    ``truth == CLASS_NODATA`` are left out.

    Args:
        pred: ``(h, w)`` int (or bool) predicted class ids.
        truth: ``(h, w)`` uint8 true class ids.
        n_classes: Number of classes including background.
        background: Background class id, or ``None`` (no background class).

    Returns:
        The IoU in [0, 1].
    """
    sel = truth != CLASS_NODATA
    return iou_from_confusion(confusion_matrix(pred[sel], truth[sel], n_classes), background)


def iou_from_confusion(cm: np.ndarray, background: int | None = 0) -> float:
    """Foreground IoU (two classes with background 0) or mean IoU of a confusion matrix.

    The mean IoU is over the classes present in the truth, as
    :func:`class_metrics` computes it; summing the matrices of several
    windows first scores them as one.

    Args:
        cm: ``(k, k)`` int confusion matrix, rows true (:func:`confusion_matrix`).
        background: Background class id, or ``None`` (no background class).

    Returns:
        The IoU in [0, 1].
    """
    n_classes = cm.shape[0]
    m = class_metrics(cm, [str(c) for c in range(n_classes)])
    if n_classes == 2 and background == 0:
        return m.per_class["1"]["iou"] or 0.0
    return m.mean_iou
