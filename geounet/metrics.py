"""Scoring predictions against ground truth.

Two families of figures:

* pixel metrics of the foreground (any class other than background): IoU
  ``tp / (tp + fp + fn)``, precision, recall and F1, counted on a raster grid;
* the SpaceNet building metric (Van Etten, Lindenbaum and Bacastow 2018,
  "SpaceNet: A Remote Sensing Dataset and Challenge Series", arXiv:1807.01232):
  predicted and true footprints are matched one-to-one, greedily, each
  prediction taking the unmatched true footprint of highest IoU, and count as
  a true positive when that IoU is at least 0.5. Precision, recall and F1
  follow from the counts.

Either side may be a raster (a geounet class raster, or any raster where
non-zero is foreground) or a vector file. Vectors are rasterised onto the grid
of the raster side (or of ``grid``), and rasters are polygonised for the
building metric. A ``region`` limits the pixel metrics to its pixels and the
building metric to footprints whose centroid lies inside it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely

from geounet.errors import GeounetError, InputNotFoundError, MissingCRSError

log = logging.getLogger(__name__)

RASTER_EXTS = {".tif", ".tiff", ".vrt", ".img", ".jp2"}


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
class EvaluationResult:
    """Result of :func:`evaluate`."""

    pixel: PixelMetrics
    buildings: BuildingMetrics
    region: str | None

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)


def _ratios(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def pixel_metrics(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> PixelMetrics:
    """Pixel metrics of boolean foreground masks.

    Args:
        pred: ``(h, w)`` bool predicted foreground.
        truth: ``(h, w)`` bool true foreground.
        valid: ``(h, w)`` bool pixels to count (default all).
    """
    if valid is None:
        valid = np.ones(pred.shape, bool)
    tp = int(np.sum(pred & truth & valid))
    fp = int(np.sum(pred & ~truth & valid))
    fn = int(np.sum(~pred & truth & valid))
    p, r, f = _ratios(tp, fp, fn)
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    return PixelMetrics(tp, fp, fn, iou, p, r, f)


def match_footprints(pred, truth, iou_threshold: float = 0.5) -> BuildingMetrics:
    """One-to-one greedy matching of footprints (SpaceNet metric).

    Args:
        pred: Sequence of predicted shapely polygons (same CRS as ``truth``).
        truth: Sequence of true polygons.
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


def _is_raster(path) -> bool:
    return Path(path).suffix.lower() in RASTER_EXTS


def _raster_foreground(path, grid=None):
    """Foreground mask, valid mask and polygons of a raster."""
    from geounet.io.read import open_raster
    from geounet.polygons import polygons_from_classes

    with open_raster(path) as ds:
        arr = ds.read(1)
        valid = ds.read_masks(1) > 0
        if grid is not None and (ds.shape != grid["shape"] or ds.transform != grid["transform"]):
            raise GeounetError(
                f"raster {str(path)!r} is not on the same grid as {grid['path']!r}; "
                "give rasters of the same size and transform"
            )
        fg = (arr != 0) & valid
        geoms, _ = polygons_from_classes(fg.astype(np.uint8), ds.transform, fg)
        g = {"shape": ds.shape, "transform": ds.transform, "crs": ds.crs, "path": str(path)}
    return fg, valid, geoms, g


def _vector(path, crs):
    from geounet.io.write import read_vector

    gdf = read_vector(path)
    if gdf.crs is None:
        raise MissingCRSError(f"vector {str(path)!r} has no CRS; write it with one")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    return gdf.to_crs(crs)


def evaluate(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    region: str | None = None,
    grid: str | os.PathLike | None = None,
    iou_threshold: float = 0.5,
) -> EvaluationResult:
    """Score a prediction against ground truth.

    Args:
        pred: Class raster (e.g. ``--mask-out`` of ``geounet predict``) or
            vector file of predicted footprints.
        truth: Raster or vector file of true footprints.
        region: Part of the grid to score (see :mod:`geounet.regions`).
        grid: Raster whose grid is used when both inputs are vectors.
        iou_threshold: IoU of a footprint match (0.5 in SpaceNet).

    Returns:
        :class:`EvaluationResult`.

    Raises:
        InputNotFoundError: for a missing file.
        GeounetError: if no raster grid is available, or grids differ.
    """
    from rasterio.features import rasterize
    from rasterio.windows import bounds as window_bounds

    from geounet.io.read import open_raster
    from geounet.regions import parse_region, window_slices

    for p in (pred, truth):
        if not Path(p).exists():
            raise InputNotFoundError(f"{str(p)!r} does not exist; check the path")
    gridinfo = None
    masks = {}
    for key, path in (("pred", pred), ("truth", truth)):
        if _is_raster(path):
            fg, valid, geoms, g = _raster_foreground(path, gridinfo)
            gridinfo = gridinfo or g
            masks[key] = (fg, valid, geoms)
    if gridinfo is None:
        if grid is None:
            raise GeounetError(
                "both inputs are vectors: pass a raster grid (--grid SCENE.tif) to count pixels on"
            )
        with open_raster(grid) as ds:
            gridinfo = {"shape": ds.shape, "transform": ds.transform, "crs": ds.crs,
                        "path": str(grid)}
    shape, transform, crs = gridinfo["shape"], gridinfo["transform"], gridinfo["crs"]
    for key, path in (("pred", pred), ("truth", truth)):
        if key not in masks:
            gdf = _vector(path, crs)
            fg = rasterize(((g, 1) for g in gdf.geometry), out_shape=shape, transform=transform,
                           fill=0, dtype="uint8").astype(bool) if len(gdf) else np.zeros(shape, bool)
            masks[key] = (fg, np.ones(shape, bool), list(gdf.geometry))
    valid = masks["pred"][1] & masks["truth"][1]
    pred_geoms, truth_geoms = masks["pred"][2], masks["truth"][2]
    if region:
        win = parse_region(region, shape[1], shape[0], transform)
        sel = np.zeros(shape, bool)
        rs, cs = window_slices(win)
        sel[rs, cs] = True
        valid &= sel
        box = shapely.box(*window_bounds(win, transform))
        pred_geoms = [g for g in pred_geoms if box.contains(g.centroid)]
        truth_geoms = [g for g in truth_geoms if box.contains(g.centroid)]
    pix = pixel_metrics(masks["pred"][0], masks["truth"][0], valid)
    bld = match_footprints(pred_geoms, truth_geoms, iou_threshold)
    return EvaluationResult(pix, bld, region)
