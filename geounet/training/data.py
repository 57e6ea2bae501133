"""The training data of one scene: scaled pixels, training labels and validation truth.

Labels are burned in the scene's grid (:mod:`geounet.labels`). Two kinds of
validation can be combined: a rectangular region (``val_region``), whose
labels never reach the loss and whose pixels are left out of the band
statistics, and whole held-out polygons (``val_polygons``), whose pixels
never reach the loss, also where they touch a training polygon. Pixels left
out are :data:`~geounet.constants.CLASS_NODATA`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from geounet.constants import CLASS_NODATA
from geounet.errors import EmptySceneError, LabelError, RegionError
from geounet.io.read import BandScaler, Scene, band_statistics
from geounet.labels import LabelSpec, burn_labels, hold_out_polygons, require_overlap
from geounet.models.metadata import output_channels
from geounet.regions import parse_region, window_slices
from geounet.training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """A scene prepared for training.

    Attributes:
        scaled: ``(c, h, w)`` float32 standardised bands (nodata pixels 0).
        train_labels: ``(h, w)`` uint8 class ids to train on (``CLASS_NODATA``
            elsewhere: nodata, validation region, held-out polygons).
        val_labels: ``(h, w)`` uint8 validation truth (``CLASS_NODATA``
            where not validated).
        val_window: Validation region as a pixel window, or ``None``.
        classes: Class names by class id.
        spec: The label options used.
        bands: 1-based band indexes used.
        band_mean: Per-band mean of raw values over the training pixels.
        band_std: Per-band standard deviation of the same.
        gsd_m: Ground sample distance in metres per pixel.
        transform: Affine transform of the scene.
        held_rows: 0-based rows (feature positions in the label file) of the
            held-out polygons.
    """

    scaled: np.ndarray
    train_labels: np.ndarray
    val_labels: np.ndarray
    val_window: Window | None
    classes: list[str]
    spec: LabelSpec
    bands: list[int]
    band_mean: list[float]
    band_std: list[float]
    gsd_m: float
    transform: Any
    held_rows: list[int]

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
        """True when some pixel has validation truth."""
        return bool((self.val_labels != CLASS_NODATA).any())


def read_scene(scene: str | os.PathLike,
               bands: list[int] | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a whole training scene.

    Args:
        scene: Raster with a CRS.
        bands: 1-based bands to read (``None``: all).

    Returns:
        ``(data, valid, grid)``: ``(c, h, w)`` raw values, ``(h, w)`` bool
        valid pixels, and ``grid`` with ``width``, ``height`` (px),
        ``transform``, ``crs``, ``bands`` and ``gsd_m`` (m/px).

    Raises:
        EmptySceneError: if every pixel is nodata.
        GeounetError: subclasses from :class:`~geounet.io.read.Scene`.
    """
    with Scene(scene, bands) as sc:
        data, valid = sc.read(Window(0, 0, sc.width, sc.height))
        grid = {"width": sc.width, "height": sc.height, "transform": sc.transform,
                "crs": sc.crs, "bands": sc.bands, "gsd_m": sc.gsd_m()}
    if not valid.any():
        raise EmptySceneError(f"every pixel of training scene {str(scene)!r} is nodata")
    return data, valid, grid


def polygon_labels(gdf: Any, held: np.ndarray, grid: dict[str, Any], spec: LabelSpec,
                   labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Burn the training polygons and the held-out ones.

    Args:
        gdf: Label polygons with ``class_id`` (see :func:`geounet.labels.load_labels`).
        held: ``(n,)`` bool, True for held-out polygons.
        grid: Scene grid (see :func:`read_scene`).
        spec: Label options (``fill`` of unlabelled pixels).
        labels_path: Label file, for messages.

    Returns:
        ``(train_labels, val_labels)``: ``(h, w)`` uint8 each; the held-out
        polygons' pixels are ``CLASS_NODATA`` in ``train_labels``, and only
        they are set in ``val_labels``.

    Raises:
        LabelError: if the training polygons do not overlap the scene.
    """
    width, height, transform = grid["width"], grid["height"], grid["transform"]
    train_lab = burn_labels(gdf[~held], width, height, transform, spec.fill)
    require_overlap(train_lab, spec.fill, labels_path)
    val_lab = np.full((height, width), CLASS_NODATA, np.uint8)
    if held.any():
        held_px = burn_labels(gdf[held], width, height, transform, CLASS_NODATA)
        train_lab[held_px != CLASS_NODATA] = CLASS_NODATA  # never trained on, also where they meet
        val_lab = held_px
    return train_lab, val_lab


def hold_out_region(region: str | None, gdf: Any, grid: dict[str, Any], spec: LabelSpec,
                    train_lab: np.ndarray, val_lab: np.ndarray,
                    valid: np.ndarray) -> tuple[Window | None, np.ndarray]:
    """Move the labels of the validation region from training to validation, in place.

    Args:
        region: Region string (see :mod:`geounet.regions`), or ``None``.
        gdf: All label polygons with ``class_id``.
        grid: Scene grid (see :func:`read_scene`).
        spec: Label options.
        train_lab: ``(h, w)`` uint8 training labels (modified).
        val_lab: ``(h, w)`` uint8 validation truth (modified).
        valid: ``(h, w)`` bool valid pixels of the scene.

    Returns:
        ``(window, train_valid)``: the region's window (or ``None``) and the
        ``(h, w)`` bool valid pixels outside it.

    Raises:
        RegionError: if the region cannot be parsed or covers the whole scene.
    """
    width, height, transform = grid["width"], grid["height"], grid["transform"]
    val = parse_region(region, width, height, transform) if region else None
    train_valid = valid.copy()
    if val is not None:
        rs, cs = window_slices(val)
        val_lab[rs, cs] = burn_labels(gdf, width, height, transform, spec.fill)[rs, cs]
        train_lab[rs, cs] = CLASS_NODATA
        train_valid[rs, cs] = False
        if not train_valid.any():
            raise RegionError(f"validation region {region!r} covers the whole scene")
    return val, train_valid


def prepare_data(scene: str | os.PathLike, labels: str | os.PathLike,
                 config: TrainConfig) -> TrainingData:
    """Read a scene and its labels and split them into training and validation.

    Args:
        scene: Raster with a CRS.
        labels: Label polygons (any CRS; reprojected).
        config: Training options (bands, label options, validation).

    Returns:
        The :class:`TrainingData`.

    Raises:
        EmptySceneError: if every pixel of the scene is nodata.
        LabelError: for unusable labels, or fewer than two classes.
        RegionError: for a bad validation region.
    """
    data, valid, grid = read_scene(scene, config.bands)
    spec = config.label_spec
    gdf, classes = spec.load(labels, grid["crs"])
    if len(classes) < 2:
        raise LabelError(
            f"labels {str(labels)!r} give one class ({classes[0]!r}) and no background: a "
            "model needs two classes or more; with sparse labels (--unlabelled ignore) give "
            "a --label-column with several values (and --classes), or use --unlabelled "
            "background for a binary model"
        )
    held = (hold_out_polygons(gdf["class_id"].to_numpy(), config.val_polygons, config.seed)
            if config.val_polygons else np.zeros(len(gdf), bool))
    train_lab, val_lab = polygon_labels(gdf, held, grid, spec, labels)
    train_lab[~valid] = CLASS_NODATA
    val, train_valid = hold_out_region(config.val_region, gdf, grid, spec, train_lab, val_lab,
                                       valid)
    val_lab[~valid] = CLASS_NODATA
    held_rows = [int(r) for r in gdf.loc[held, "row"]]
    if held.any():
        log.info("holding out %d of %d polygons for validation (rows %s)", int(held.sum()),
                 len(gdf), held_rows)
    mean, std = band_statistics(data, train_valid)
    scaled = BandScaler(mean, std)(data, valid)
    return TrainingData(scaled=scaled, train_labels=train_lab, val_labels=val_lab,
                        val_window=val, classes=classes, spec=spec, bands=list(grid["bands"]),
                        band_mean=mean, band_std=std, gsd_m=grid["gsd_m"],
                        transform=grid["transform"], held_rows=held_rows)
