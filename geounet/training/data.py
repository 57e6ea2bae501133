"""The data of a training run: its scenes, classes, band statistics and training GSD.

:func:`prepare_data` reads no scene whole: scenes are prepared from their
metadata and label polygons (:mod:`geounet.training.scenes`), band statistics
accumulated over blocks. Validation combines, per scene, a ``val`` split (the
whole scene), a rectangular held-out region of ``train`` scenes
(``val_region``, whose labels never reach the loss and whose pixels are left
out of the band statistics), and whole held-out polygons (``val_polygons``,
whose pixels never reach the loss, also where they touch a training polygon).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from geounet.constants import CLASS_NODATA
from geounet.errors import LabelError
from geounet.io.checksum import file_sha256
from geounet.io.read import BandScaler, Scene
from geounet.labels import LabelSpec
from geounet.models.metadata import output_channels
from geounet.training.config import TrainConfig
from geounet.training.dataset import SceneSpec
from geounet.training.scenes import (
    LabelFiles,
    TrainScene,
    band_statistics_of,
    consistent_spec,
    prepare_scene,
    set_weights,
)

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """The scenes of a run, prepared (no pixels in memory).

    Attributes:
        scenes: The :class:`~geounet.training.scenes.TrainScene` of every row
            of the dataset, in order.
        classes: Class names by class id.
        spec: The label options used (with a class map shared by all label files).
        bands: 1-based bands used.
        band_mean: Per-band mean of raw values over the training pixels (or the
            starting model's, ``--init``).
        band_std: Per-band standard deviation of the same.
        gsd_m: Training GSD in metres per pixel (every scene is read at it).
        held_rows: Label file -> 0-based rows of its held-out polygons.
    """

    scenes: list[TrainScene]
    classes: list[str]
    spec: LabelSpec
    bands: list[int]
    band_mean: list[float]
    band_std: list[float]
    gsd_m: float
    held_rows: dict[str, list[int]]

    @property
    def binary(self) -> bool:
        """True for two classes (one sigmoid output channel)."""
        return len(self.classes) == 2

    @property
    def out_channels(self) -> int:
        """Model output channels (:func:`geounet.models.metadata.output_channels`)."""
        return output_channels(len(self.classes))

    @property
    def has_validation(self) -> bool:
        """True when some scene has validation truth."""
        return any(ts.validated and ts.spec.split != "test" for ts in self.scenes)

    @property
    def scaler(self) -> BandScaler:
        """The input scaler of the run's band statistics."""
        return BandScaler(self.band_mean, self.band_std)

    def record(self) -> list[dict[str, Any]]:
        """The dataset as the model file records it: names, SHA-256, splits, bounds.

        One entry per scene: ``scene``, ``scene_sha256``, ``labels``,
        ``labels_sha256``, ``split``, ``crs`` (WKT), ``bounds`` (of the scene,
        CRS units), ``val_bounds`` (of its held-out region, or ``None``),
        ``held_out_rows`` (rows of its label file held out on it) and
        ``gsd_m`` (its own).
        """
        out, sha = [], {}
        for ts in self.scenes:
            for p in (ts.spec.scene, ts.spec.labels):
                if p not in sha:
                    sha[p] = file_sha256(p)
            out.append({
                "scene": os.path.basename(ts.spec.scene), "scene_sha256": sha[ts.spec.scene],
                "labels": os.path.basename(ts.spec.labels),
                "labels_sha256": sha[ts.spec.labels], "split": ts.spec.split,
                "crs": ts.crs.to_wkt() if ts.crs else None,
                "bounds": list(_bounds(ts, None)), "val_bounds": (
                    list(_bounds(ts, ts.val_window))
                    if ts.val_window is not None and ts.spec.split == "train" else None),
                "held_out_rows": ts.held_rows, "gsd_m": round(ts.gsd_m, 4),
            })
        return out


def _bounds(ts: TrainScene, win: Any) -> tuple[float, ...]:
    from rasterio.windows import Window, bounds

    win = win if win is not None else Window(0, 0, ts.width, ts.height)
    return tuple(round(v, 6) for v in bounds(win, ts.transform))


def training_gsd(dataset: list[SceneSpec], bands: list[int] | None,
                 gsd_m: float | None) -> float:
    """The training GSD: ``gsd_m`` if given, else the first training scene's (m/px)."""
    if gsd_m:
        return float(gsd_m)
    first = next((s for s in dataset if s.split == "train"), None)
    if first is None:
        raise LabelError("the dataset has no 'train' scene; mark at least one scene split=train")
    with Scene(first.scene, bands) as sc:
        return sc.gsd_m()


def prepare_data(dataset: list[SceneSpec], config: TrainConfig, gsd_m: float | None = None,
                 bands: list[int] | None = None) -> TrainingData:
    """Prepare the scenes of a run and their split into training and validation.

    Args:
        dataset: The scenes (:mod:`geounet.training.dataset`).
        config: Training options (bands, label options, validation).
        gsd_m: Training GSD in m/px (the starting model's), or ``None``: the
            first training scene's.
        bands: 1-based bands when ``config.bands`` is ``None`` (the starting
            model's); else all of the scene's.

    Returns:
        The :class:`TrainingData`, with band statistics of the training pixels.

    Raises:
        EmptySceneError: if every training pixel is nodata.
        LabelError: for unusable labels, or fewer than two classes.
        RegionError: for a bad validation region.
    """
    bands = config.bands or bands
    gsd = training_gsd(dataset, bands, gsd_m)
    files = list(dict.fromkeys(s.labels for s in dataset))
    spec = consistent_spec(config.label_spec, files)
    labels = LabelFiles(spec, config.val_polygons, config.seed)
    scenes = [prepare_scene(i, s, bands, gsd, labels, config.val_region)
              for i, s in enumerate(dataset)]
    classes = labels.classes or []
    if len(classes) < 2:
        raise LabelError(
            f"labels {files[0]!r} give one class ({classes[0] if classes else None!r}) and no "
            "background: a model needs two classes or more; with sparse labels (--unlabelled "
            "ignore) give a --label-column with several values (and --classes), or use "
            "--unlabelled background for a binary model"
        )
    set_weights(scenes, spec.unlabelled == "ignore")
    held = {f: labels.held_rows(f) for f in files}
    for f, rows in held.items():
        if rows:
            log.info("holding out %d polygons of %s for validation (rows %s)", len(rows), f,
                     rows)
    mean, std = band_statistics_of(scenes)
    return TrainingData(scenes=scenes, classes=classes, spec=spec, bands=scenes[0].bands,
                        band_mean=mean, band_std=std, gsd_m=gsd, held_rows=held)


def class_pixel_counts(data: TrainingData, block: int = 1024) -> np.ndarray:
    """Pixels of each class among the training labels of every ``train`` scene.

    Labels are burned block by block (no pixels are read; nodata pixels count).

    Returns:
        ``(len(classes),)`` int64.
    """
    from rasterio.windows import Window

    counts = np.zeros(len(data.classes), np.int64)
    for ts in data.scenes:
        if ts.spec.split != "train":
            continue
        for r in range(0, ts.height, block):
            for c in range(0, ts.width, block):
                win = Window(c, r, min(block, ts.width - c), min(block, ts.height - r))
                lab = ts.labels(win, data.spec.fill, train=True)
                counts += np.bincount(lab[lab != CLASS_NODATA], minlength=len(counts))[
                    : len(counts)]
    return counts

