"""Validation of a training run: held-out pixels predicted as ``geounet predict`` does.

For every scene with validation truth (a ``val`` scene, a held-out region,
held-out polygons), the bounding box of that truth is predicted in chunks of
at most :data:`VAL_CHUNK_PX` px, each read with ``overlap`` px of context on
every side where the scene has them, tiled and blended like a run
(:func:`geounet.pipeline.arrays.predict_array`). The confusion matrices of all
chunks and scenes are summed and scored once
(:func:`geounet.metrics.iou_from_confusion`), so a figure is the IoU of all
held-out pixels together, not a mean of per-scene figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window, from_bounds

from geounet.constants import CLASS_NODATA
from geounet.io.padding import read_scaled
from geounet.io.read import BandScaler
from geounet.metrics import confusion_matrix
from geounet.pipeline.arrays import predict_array
from geounet.training.scenes import TrainScene

VAL_CHUNK_PX = 2048
"""Largest side of a chunk of validation pixels predicted at once (px)."""


@dataclass(frozen=True)
class ValidationSetup:
    """How held-out pixels are predicted and scored.

    Attributes:
        scaler: Input scaler of the run.
        fill: Value of unlabelled pixels (0 or ``CLASS_NODATA``).
        classes: Number of classes (confusion matrix size).
        out_channels: Model output channels.
        binary: One sigmoid channel (thresholded) or a softmax (argmax).
        threshold: Probability threshold of a binary model.
        tile: Tile size (px).
        overlap: Overlap and context margin (px).
        batch: Tiles per forward pass.
    """

    scaler: BandScaler
    fill: int
    classes: int
    out_channels: int
    binary: bool
    threshold: float
    tile: int
    overlap: int
    batch: int


def truth_box(ts: TrainScene) -> Window | None:
    """The bounding window of ``ts``'s validation truth, or ``None`` without any."""
    boxes = []
    if ts.val_window is not None:
        boxes.append(ts.val_window)
    held = ts.polygons[ts.polygons["held"].to_numpy()]
    if len(held):
        win = from_bounds(*held.total_bounds, transform=ts.transform)
        boxes.append(win.round_offsets(op="floor").round_lengths(op="ceil"))
    if not boxes:
        return None
    c0 = max(0, min(int(b.col_off) for b in boxes))
    r0 = max(0, min(int(b.row_off) for b in boxes))
    c1 = min(ts.width, max(int(b.col_off + b.width) for b in boxes))
    r1 = min(ts.height, max(int(b.row_off + b.height) for b in boxes))
    return Window(c0, r0, c1 - c0, r1 - r0) if c1 > c0 and r1 > r0 else None


def chunks(box: Window, size: int = VAL_CHUNK_PX) -> list[Window]:
    """``box`` cut into windows of at most ``size`` x ``size`` px, row by row."""
    c0, r0 = int(box.col_off), int(box.row_off)
    w, h = int(box.width), int(box.height)
    return [Window(c0 + c, r0 + r, min(size, w - c), min(size, h - r))
            for r in range(0, h, size) for c in range(0, w, size)]


def scene_confusion(predictor: Any, ts: TrainScene, setup: ValidationSetup) -> np.ndarray:
    """Confusion matrix (rows true) of one scene's validation truth.

    Args:
        predictor: The model as a predictor (:class:`~geounet.pipeline.predictors.Predictor`).
        ts: The scene.
        setup: How to predict and score.

    Returns:
        ``(k, k)`` int64.
    """
    cm = np.zeros((setup.classes, setup.classes), np.int64)
    box = truth_box(ts)
    if box is None:
        return cm
    m = setup.overlap
    with ts.open() as sc:
        for ch in chunks(box):
            c0, r0 = max(0, int(ch.col_off) - m), max(0, int(ch.row_off) - m)
            c1 = min(ts.width, int(ch.col_off + ch.width) + m)
            r1 = min(ts.height, int(ch.row_off + ch.height) + m)
            ext = Window(c0, r0, c1 - c0, r1 - r0)
            x, valid = read_scaled(sc, ext, setup.scaler)
            probs = predict_array(predictor, x, setup.out_channels, setup.tile, setup.overlap,
                                  setup.batch)
            pred = (probs[0] >= setup.threshold) if setup.binary else probs.argmax(0)
            truth = ts.labels(ext, setup.fill, train=False)
            truth[~valid] = CLASS_NODATA
            inner = (slice(int(ch.row_off) - r0, int(ch.row_off + ch.height) - r0),
                     slice(int(ch.col_off) - c0, int(ch.col_off + ch.width) - c0))
            t, p = truth[inner], pred[inner]
            sel = t != CLASS_NODATA
            cm += confusion_matrix(p[sel], t[sel], setup.classes)
    return cm


def validation_confusion(predictor: Any, scenes: list[TrainScene],
                         setup: ValidationSetup) -> np.ndarray | None:
    """Summed confusion matrix of every scene's validation truth, or ``None`` without any.

    Returns:
        ``(k, k)`` int64, or ``None`` when no pixel was validated.
    """
    cm = np.zeros((setup.classes, setup.classes), np.int64)
    for ts in scenes:
        if ts.validated and ts.spec.split != "test":
            cm += scene_confusion(predictor, ts, setup)
    return cm if cm.sum() else None
