"""What a model held out in training, for the prediction being scored (``--held-out-of``).

A model file records its dataset (``training.dataset``: each scene's name,
SHA-256, split, CRS and bounds, its held-out region's bounds and polygons;
:meth:`geounet.training.data.TrainingData.record`). Given a prediction, the
scene it covers is the recorded scene whose bounds it overlaps most (at least
half of the prediction's extent); then what is scored is:

* a ``val`` or ``test`` scene: all of it (the model never trained on it);
* a ``train`` scene with a held-out region: that region, as a ``map:`` region
  in the prediction's CRS;
* a ``train`` scene with held-out polygons: those polygons (rows of the label
  file, which must be the one trained on, checked by SHA-256).

Models trained before datasets were recorded give their held-out polygons.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geounet.constants import RASTER_SUFFIXES
from geounet.errors import InvalidOptionError, ModelFileError
from geounet.io.checksum import file_sha256
from geounet.models.modelfile import read_metadata, resolve_model_path

MIN_OVERLAP = 0.5
"""Least share of the prediction's extent a recorded scene must cover to be its scene."""


@dataclass(frozen=True)
class HeldOut:
    """The part of a prediction a model held out.

    Attributes:
        scene: Recorded name of the scene the prediction covers (``None``: not found).
        split: Its split (``train``, ``val``, ``test``), or ``None``.
        region: A ``map:`` region in the prediction's CRS, or ``None`` (all of it).
        rows: Rows of the truth file to score, or ``None`` (all polygons).
        label_column: The model's label column (multi-class), or ``None``.
        class_map: The model's class map, or ``None``.
        multiclass: True when the model has more than two classes.
    """

    scene: str | None
    split: str | None
    region: str | None
    rows: list[int] | None
    label_column: str | None
    class_map: dict[str, str] | None
    multiclass: bool


def _extent(pred: str | os.PathLike) -> tuple[tuple[float, float, float, float], Any]:
    """``(bounds, crs)`` of a raster or vector prediction."""
    if Path(pred).suffix.lower() in RASTER_SUFFIXES:
        import rasterio

        with rasterio.open(pred) as ds:
            return tuple(ds.bounds), ds.crs
    from geounet.io.vector import read_vector

    gdf = read_vector(pred)
    return tuple(gdf.total_bounds), gdf.crs


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Share of box ``a``'s area inside box ``b``."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return w * h / area if area > 0 else 0.0


def covered_scene(dataset: list[dict[str, Any]], pred: str | os.PathLike
                  ) -> tuple[dict[str, Any] | None, Any]:
    """The recorded scene a prediction covers (see the module docstring), and the pred's CRS."""
    from rasterio.warp import transform_bounds

    bounds, crs = _extent(pred)
    best, share = None, MIN_OVERLAP
    for entry in dataset:
        mine = (transform_bounds(crs, entry["crs"], *bounds)
                if crs and entry.get("crs") else bounds)
        s = _overlap(mine, tuple(entry["bounds"]))
        if s >= share:
            best, share = entry, s
    return best, crs


def held_out_of(model: str | os.PathLike, pred: str | os.PathLike,
                truth: str | os.PathLike) -> HeldOut:
    """What to score of ``pred`` against ``truth`` for a model's held-out figures.

    Args:
        model: Model file or bundled name.
        pred: The prediction (class raster or footprints).
        truth: The label file.

    Returns:
        The :class:`HeldOut` selection.

    Raises:
        ModelFileError: if the model records nothing held out there.
        InvalidOptionError: if ``truth`` is not the label file trained on
            (held-out polygons are rows of it).
    """
    from rasterio.warp import transform_bounds

    meta = read_metadata(resolve_model_path(model))
    training = meta.training
    cfg = training.get("config", {})
    class_map = ({str(k): v for k, v in cfg["class_map"].items()} if cfg.get("class_map")
                 else None)
    base = dict(label_column=cfg.get("label_column"), class_map=class_map,
                multiclass=len(meta.classes) > 2)
    entry, crs = covered_scene(training.get("dataset") or [], pred)
    if entry is not None and entry["split"] in ("val", "test"):
        return HeldOut(entry["scene"], entry["split"], None, None, **base)
    if entry is not None and entry.get("val_bounds"):
        b = entry["val_bounds"]
        if crs and entry.get("crs"):
            b = transform_bounds(entry["crs"], crs, *b)
        region = "map:" + ",".join(f"{v:.6f}" for v in b)
        return HeldOut(entry["scene"], "train", region, None, **base)
    rows = entry["held_out_rows"] if entry is not None else training.get("held_out_rows")
    want = entry["labels_sha256"] if entry is not None else training.get("labels_sha256")
    if not rows and entry is None and cfg.get("val_region"):
        raise ModelFileError(
            f"model {str(model)!r} held out region {cfg['val_region']} of "
            f"{training.get('scene')!r} but records no scene bounds (trained before datasets "
            f"were recorded); score that scene's prediction with --region {cfg['val_region']}")
    if not rows:
        where = f"scene {entry['scene']!r}" if entry else "the model's training data"
        raise ModelFileError(
            f"model {str(model)!r} held out nothing of {where}, which {str(pred)!r} covers "
            "(train with --val-region, --val-polygons or split=val scenes); score it without "
            "--held-out-of, or pass --rows / --region")
    check_truth(model, truth, want)
    return HeldOut(entry["scene"] if entry else None, "train" if entry else None, None,
                   [int(v) for v in rows], **base)


def check_truth(model: Any, truth: str | os.PathLike, want: str | None) -> None:
    """Refuse a truth file that is not the label file trained on (SHA-256 ``want``).

    Raises:
        InvalidOptionError: naming the file and the fix.
    """
    if want and Path(truth).is_file() and file_sha256(truth) != want:
        raise InvalidOptionError(
            f"{str(truth)!r} is not the label file model {str(model)!r} was trained on "
            f"(SHA-256 {want[:12]}...): its held-out rows would select other polygons; pass "
            "that file, or --rows")
