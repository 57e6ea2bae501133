"""Scoring prediction files against ground-truth files.

Either side may be a raster (a geounet class raster, or any raster where
non-zero is foreground) or a vector file. Vectors are rasterised onto the grid
of the raster side (or of ``grid``), and rasters are polygonised for the
building metric. A ``region`` limits the pixel metrics to its pixels and the
building metric to footprints whose centroid lies inside it. The figures are
computed by :mod:`geounet.metrics`.

With a ``label_column`` the truth is multi-class (land cover): its polygons
are burned by class name into the grid of the predicted class raster, pixels
outside every polygon are not scored, and the figures come from the confusion
matrix. ``rows`` restricts the truth to some polygons, e.g. those a model held
out (``held_out_of``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from rasterio.windows import bounds as window_bounds

from geounet.constants import CLASS_NODATA, RASTER_SUFFIXES
from geounet.errors import (
    InputNotFoundError,
    InvalidOptionError,
    LabelError,
    MissingCRSError,
    ModelFileError,
)
from geounet.held_out import check_truth, held_out_of
from geounet.io.read import open_raster
from geounet.io.vector import read_vector
from geounet.labels import LabelSpec, burn_labels
from geounet.metrics import (
    EvaluationResult,
    class_metrics,
    confusion_matrix,
    match_footprints,
    pixel_metrics,
)
from geounet.models.modelfile import read_metadata, resolve_model_path
from geounet.pipeline.vectorize import polygons_from_classes
from geounet.regions import parse_region, window_slices

Grid = dict[str, Any]
"""A raster grid: ``shape`` ``(h, w)`` px, ``transform``, ``crs`` and ``path``."""


def _is_raster(path: str | os.PathLike) -> bool:
    """True when the file extension is a raster's (:data:`~geounet.constants.RASTER_SUFFIXES`)."""
    return Path(path).suffix.lower() in RASTER_SUFFIXES


def _tag_class_names(tags: dict[str, str]) -> list[str] | None:
    """Class names from a geounet class raster's tags (``CLASS_NAMES``), or None."""
    text = tags.get("CLASS_NAMES")
    try:
        names = json.loads(text) if text else None
    except ValueError:
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


def _require_files(*paths: str | os.PathLike) -> None:
    """Raise InputNotFoundError for the first path that does not exist."""
    for p in paths:
        if not Path(p).exists():
            raise InputNotFoundError(f"{str(p)!r} does not exist; check the path")


def _region_mask(region: str, shape: tuple[int, int], transform: Any) -> tuple[np.ndarray, Any]:
    """``(mask, window)`` of a region: ``(h, w)`` bool, True inside it, and its window."""
    win = parse_region(region, shape[1], shape[0], transform)
    rs, cs = window_slices(win)
    mask = np.zeros(shape, bool)
    mask[rs, cs] = True
    return mask, win


def held_out_selection(model: str | os.PathLike,
                       truth: str | os.PathLike) -> tuple[list[int], str | None, dict | None]:
    """The truth polygons a model held out in training (``geounet train --val-polygons``).

    Args:
        model: Model file path or bundled model name.
        truth: The label file to score; it must be the one the model was
            trained on (checked by SHA-256), since rows are positions in it.

    Returns:
        ``(rows, label_column, class_map)`` from the model's ``training``
        metadata (``held_out_rows`` and its training config).

    Raises:
        ModelFileError: if the model records no held-out polygons.
        InvalidOptionError: if ``truth`` is not its label file.
    """
    training = read_metadata(resolve_model_path(model)).training
    held = training.get("held_out_rows")
    if not held:
        raise ModelFileError(
            f"model {model!r} records no held-out polygons (train it with "
            "--val-polygons); pass --rows instead"
        )
    check_truth(model, truth, training.get("labels_sha256"))
    cfg = training.get("config", {})
    class_map = ({str(k): v for k, v in cfg["class_map"].items()} if cfg.get("class_map")
                 else None)
    return [int(v) for v in held], cfg.get("label_column"), class_map


def _read_class_raster(pred: str | os.PathLike, classes: list[str] | None
                       ) -> tuple[np.ndarray, np.ndarray, list[str], Grid]:
    """``(ids, valid, names, grid)`` of a class raster; names default to its tag."""
    if not _is_raster(pred):
        raise InvalidOptionError(
            f"multi-class evaluation needs a class raster as PRED, not {str(pred)!r}; write one "
            "with geounet predict --mask-out CLASSES.tif"
        )
    with open_raster(pred) as ds:
        names = classes or _tag_class_names(ds.tags())
        if not names:
            raise InvalidOptionError(
                f"class raster {str(pred)!r} does not name its classes (no CLASS_NAMES tag); "
                "pass them in id order, e.g. --raster-classes developed,forest,water"
            )
        arr = ds.read(1)
        valid = ds.read_masks(1) > 0
        grid = {"shape": ds.shape, "transform": ds.transform, "crs": ds.crs, "path": str(pred)}
    return arr, valid, names, grid


def _select_rows(gdf: Any, rows: list[int] | None, truth: str | os.PathLike) -> Any:
    """The truth polygons at ``rows`` (feature positions), or all of them."""
    if rows is None:
        return gdf
    missing = sorted(set(rows) - set(gdf["row"]))
    if missing:
        raise InvalidOptionError(
            f"truth rows {missing} are not polygons of {str(truth)!r} (it has rows "
            f"0..{int(gdf['row'].max())} with a class)"
        )
    return gdf[gdf["row"].isin(rows)]


def _to_raster_ids(gdf: Any, truth_names: list[str], names: list[str],
                   pred: str | os.PathLike) -> Any:
    """Renumber the truth's class ids as the raster's class ids (by name)."""
    present = [truth_names[i] for i in sorted(set(gdf["class_id"]))]
    unknown = sorted(set(present) - set(names))
    if unknown:
        raise LabelError(
            f"truth classes {unknown} are not classes of {str(pred)!r} ({', '.join(names)}); "
            "map the label values to them with --classes VALUE=NAME,..."
        )
    lut = np.array([names.index(n) if n in names else -1 for n in truth_names])
    return gdf.assign(class_id=lut[gdf["class_id"].to_numpy()])


def _class_selection(truth: str | os.PathLike, label_column: str | None,
                     class_map: dict[str, str] | None, rows: list[int] | None,
                     held_out_of: Any) -> tuple[LabelSpec, list[int] | None]:
    """Label options and rows of a multi-class evaluation, from the arguments or the model."""
    if held_out_of is not None:
        if rows is not None:
            raise InvalidOptionError(
                "give rows or held_out_of (--rows or --held-out-of), not both")
        rows, model_column, model_map = held_out_selection(held_out_of, truth)
        label_column = label_column or model_column
        class_map = class_map if class_map is not None else model_map
    if label_column is None:
        raise InvalidOptionError("multi-class evaluation needs the truth's label column: pass "
                                 "--label-column")
    return LabelSpec(label_column, class_map=class_map, unlabelled="ignore"), rows


def evaluate_classes(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    label_column: str | None = None,
    class_map: dict[str, str] | None = None,
    classes: list[str] | None = None,
    rows: list[int] | None = None,
    region: str | None = None,
    held_out_of: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Score a predicted class raster against multi-class truth polygons.

    Args:
        pred: Class raster (uint8 ids, nodata 255), e.g. ``--mask-out`` of
            ``geounet predict`` with a multi-class model.
        truth: Vector file of labelled polygons (any CRS; reprojected to the
            raster's).
        label_column: Attribute with each true polygon's class.
        class_map: Label value (as text) -> class name, when the values are
            not the names (e.g. ``{"1": "developed"}``).
        classes: Class names by id of the raster; default: the raster's
            ``CLASS_NAMES`` tag (written by ``geounet predict``).
        rows: 0-based feature positions of the truth polygons to score
            (default: all), e.g. a model's ``training.held_out_rows``.
        region: Only pixels in this region (see :mod:`geounet.regions`).
        held_out_of: A model (path or bundled name): score the polygons it
            held out (:func:`held_out_selection`), with its label column and
            class map unless given.

    Returns:
        :class:`~geounet.metrics.EvaluationResult` with
        :attr:`~geounet.metrics.EvaluationResult.classes`.

    Raises:
        InputNotFoundError: for a missing file.
        InvalidOptionError: if the class names are unknown or incomplete, no
            label column is known, ``rows`` and ``held_out_of`` are both
            given, or ``rows`` are not polygons of the truth.
        LabelError: if a truth class is not a class of the raster, or no
            pixel is left to score.
        ModelFileError: if ``held_out_of`` records no held-out polygons.
    """
    spec, rows = _class_selection(truth, label_column, class_map, rows, held_out_of)
    _require_files(pred, truth)
    arr, valid, names, grid = _read_class_raster(pred, classes)
    shape, transform = grid["shape"], grid["transform"]
    gdf, truth_names = spec.load(truth, grid["crs"])
    gdf = _to_raster_ids(_select_rows(gdf, rows, truth), truth_names, names, pred)
    lab = burn_labels(gdf, shape[1], shape[0], transform, CLASS_NODATA)
    sel = (lab != CLASS_NODATA) & valid
    if sel.any() and int(arr[sel].max()) >= len(names):
        raise InvalidOptionError(
            f"class raster {str(pred)!r} holds class id {int(arr[sel].max())} but only "
            f"{len(names)} class names are known ({', '.join(names)}); give every class, in "
            "id order, with --raster-classes"
        )
    if region:
        sel &= _region_mask(region, shape, transform)[0]
    if not sel.any():
        raise LabelError(
            f"no pixel of {str(pred)!r} lies in a selected truth polygon of {str(truth)!r}; "
            "check that they cover the same place"
        )
    cm = confusion_matrix(arr[sel], lab[sel], len(names))
    return EvaluationResult(None, None, region, class_metrics(cm, names, len(gdf)))


def _raster_foreground(path: str | os.PathLike,
                       grid: Grid | None = None) -> tuple[np.ndarray, np.ndarray, list, Grid]:
    """``(fg, valid, polygons, grid)`` of a raster (non-zero is foreground), checked on ``grid``."""
    with open_raster(path) as ds:
        arr = ds.read(1)
        valid = ds.read_masks(1) > 0
        if grid is not None and (ds.shape != grid["shape"] or ds.transform != grid["transform"]):
            raise InvalidOptionError(
                f"raster {str(path)!r} is not on the same grid as {grid['path']!r}; "
                "give rasters of the same size and transform"
            )
        fg = (arr != 0) & valid
        geoms, _ = polygons_from_classes(fg.astype(np.uint8), ds.transform, fg)
        g = {"shape": ds.shape, "transform": ds.transform, "crs": ds.crs, "path": str(path)}
    return fg, valid, geoms, g


def _read_footprints(path: str | os.PathLike, crs: Any) -> Any:
    """The non-empty geometries of a vector file (which must have a CRS), in ``crs``."""
    gdf = read_vector(path)
    if gdf.crs is None:
        raise MissingCRSError(f"vector {str(path)!r} has no CRS; write it with one")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    return gdf.to_crs(crs)


def _foreground_masks(pred: str | os.PathLike, truth: str | os.PathLike,
                      grid: str | os.PathLike | None) -> tuple[dict[str, tuple], Grid]:
    """``{"pred"|"truth": (fg, valid, geoms)}`` on one grid (the first raster's, or ``grid``)."""
    from rasterio.features import rasterize

    gridinfo = None
    masks = {}
    for key, path in (("pred", pred), ("truth", truth)):
        if _is_raster(path):
            fg, valid, geoms, g = _raster_foreground(path, gridinfo)
            gridinfo = gridinfo or g
            masks[key] = (fg, valid, geoms)
    if gridinfo is None:
        if grid is None:
            raise InvalidOptionError(
                "both inputs are vectors: pass a raster grid (--grid SCENE.tif) to count pixels on"
            )
        with open_raster(grid) as ds:
            gridinfo = {"shape": ds.shape, "transform": ds.transform, "crs": ds.crs,
                        "path": str(grid)}
    shape, transform = gridinfo["shape"], gridinfo["transform"]
    for key, path in (("pred", pred), ("truth", truth)):
        if key not in masks:
            gdf = _read_footprints(path, gridinfo["crs"])
            fg = (rasterize(((g, 1) for g in gdf.geometry), out_shape=shape, transform=transform,
                            fill=0, dtype="uint8").astype(bool)
                  if len(gdf) else np.zeros(shape, bool))
            masks[key] = (fg, np.ones(shape, bool), list(gdf.geometry))
    return masks, gridinfo


def evaluate(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    region: str | None = None,
    grid: str | os.PathLike | None = None,
    iou_threshold: float = 0.5,
    label_column: str | None = None,
    class_map: dict[str, str] | None = None,
    classes: list[str] | None = None,
    rows: list[int] | None = None,
    held_out_of: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Score a prediction against ground truth.

    With ``label_column`` or ``held_out_of`` the evaluation is multi-class
    (:func:`evaluate_classes`: confusion matrix, per-class IoU, mean IoU);
    without it, binary (foreground pixel metrics and the SpaceNet building
    metric).

    Args:
        pred: Class raster (e.g. ``--mask-out`` of ``geounet predict``) or
            vector file of predicted footprints.
        truth: Raster or vector file of true footprints.
        region: Part of the grid to score (see :mod:`geounet.regions`).
        grid: Raster whose grid is used when both inputs are vectors.
        iou_threshold: IoU of a footprint match (0.5 in SpaceNet).
        label_column: Multi-class evaluation (see :func:`evaluate_classes`).
        class_map: See :func:`evaluate_classes`.
        classes: See :func:`evaluate_classes`.
        rows: See :func:`evaluate_classes`.
        held_out_of: A model (path or bundled name): score only what it held out
            of the scene ``pred`` covers (:func:`geounet.held_out.held_out_of`:
            a ``val``/``test`` scene whole, a held-out region, or held-out
            polygons), with its label column and class map unless given.

    Returns:
        :class:`~geounet.metrics.EvaluationResult`.

    Raises:
        InputNotFoundError: for a missing file.
        InvalidOptionError: if no raster grid is available, or grids differ.
        MissingCRSError: for a vector without CRS.
        RegionError: for a bad region.
    """
    if held_out_of is not None:
        return _evaluate_held_out(pred, truth, held_out_of, region, grid, iou_threshold,
                                  label_column, class_map, classes, rows)
    if label_column is not None:
        return evaluate_classes(pred, truth, label_column, class_map, classes, rows, region)
    _require_files(pred, truth)
    masks, gridinfo = _foreground_masks(pred, truth, grid)
    valid = masks["pred"][1] & masks["truth"][1]
    pred_geoms, truth_geoms = masks["pred"][2], masks["truth"][2]
    if region:
        sel, win = _region_mask(region, gridinfo["shape"], gridinfo["transform"])
        valid &= sel
        box = shapely.box(*window_bounds(win, gridinfo["transform"]))
        pred_geoms = [g for g in pred_geoms if box.contains(g.centroid)]
        truth_geoms = [g for g in truth_geoms if box.contains(g.centroid)]
    pix = pixel_metrics(masks["pred"][0], masks["truth"][0], valid)
    bld = match_footprints(pred_geoms, truth_geoms, iou_threshold)
    return EvaluationResult(pix, bld, region)


def _evaluate_held_out(pred: str | os.PathLike, truth: str | os.PathLike, model: Any,
                       region: str | None, grid: Any, iou_threshold: float,
                       label_column: str | None, class_map: dict[str, str] | None,
                       classes: list[str] | None, rows: list[int] | None) -> EvaluationResult:
    """:func:`evaluate` of what ``model`` held out (``--held-out-of``)."""
    if rows is not None:
        raise InvalidOptionError("give rows or held_out_of (--rows or --held-out-of), not both")
    _require_files(pred, truth)
    h = held_out_of(model, pred, truth)
    if region and h.region:
        raise InvalidOptionError(
            f"model {str(model)!r} held out region {h.region} of scene {h.scene!r}; give "
            "--region or --held-out-of, not both")
    region = region or h.region
    column = label_column or h.label_column
    if h.rows is not None or h.multiclass or label_column:
        return evaluate_classes(pred, truth, column, class_map or h.class_map, classes, h.rows,
                                region)
    return evaluate(pred, truth, region=region, grid=grid, iou_threshold=iou_threshold)
