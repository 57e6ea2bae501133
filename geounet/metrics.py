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

With a ``label_column`` the truth is multi-class (land cover): its polygons
are burned by class name into the grid of the predicted class raster, pixels
outside every polygon are not scored, and the figures come from the confusion
matrix: overall accuracy, and per class IoU, precision (user's accuracy),
recall (producer's accuracy) and F1, with the mean IoU over the classes
present in the truth (as in the PASCAL VOC and Cityscapes benchmarks;
Everingham et al. 2010, "The PASCAL Visual Object Classes Challenge").
``rows`` restricts the truth to some polygons, e.g. those a model held out.
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
    per_class: dict[str, dict]
    overall_accuracy: float
    mean_iou: float
    pixels: int
    polygons: int


@dataclass(frozen=True)
class EvaluationResult:
    """Result of :func:`evaluate`.

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
        classes: ``k`` class names.
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


def _tag_class_names(tags: dict) -> list[str] | None:
    """Class names from a geounet class raster's tags (``CLASS_NAMES``), or None."""
    import json

    text = tags.get("CLASS_NAMES")
    try:
        names = json.loads(text) if text else None
    except ValueError:
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


def held_out_selection(model, truth) -> tuple[list[int], str | None, dict | None]:
    """The truth polygons a model held out in training (``geounet train --val-polygons``).

    Args:
        model: Model file path or bundled model name.
        truth: The label file to score; it must be the one the model was
            trained on (checked by SHA-256), since rows are positions in it.

    Returns:
        ``(rows, label_column, class_map)`` from the model's ``training``
        metadata (``held_out_rows`` and its training config).

    Raises:
        GeounetError: if the model records no held-out polygons, or ``truth``
            is not its label file.
    """
    from geounet.models.modelfile import read_metadata, resolve_model_path
    from geounet.training import _sha256

    training = read_metadata(resolve_model_path(model)).training
    held = training.get("held_out_rows")
    if not held:
        raise GeounetError(
            f"model {model!r} records no held-out polygons (train it with "
            "--val-polygons); pass --rows instead"
        )
    want = training.get("labels_sha256")
    if want and Path(truth).is_file() and _sha256(truth) != want:
        raise GeounetError(
            f"{truth!r} is not the label file model {model!r} was trained on "
            f"({training.get('labels')!r}, SHA-256 {want[:12]}...): its held-out rows "
            "would select other polygons; pass that file, or --rows"
        )
    cfg = training.get("config", {})
    class_map = ({str(k): v for k, v in cfg["class_map"].items()} if cfg.get("class_map")
                 else None)
    return [int(v) for v in held], cfg.get("label_column"), class_map


def evaluate_classes(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    label_column: str | None = None,
    class_map: dict[str, str] | None = None,
    classes: list[str] | None = None,
    rows: list[int] | None = None,
    region: str | None = None,
    held_out_of=None,
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
        :class:`EvaluationResult` with :attr:`~EvaluationResult.classes`.

    Raises:
        InputNotFoundError: for a missing file.
        GeounetError: if the class names are unknown, a truth value is not
            one of them, no label column is known, ``rows`` and
            ``held_out_of`` are both given, or no pixel is left to score.
    """
    from geounet.io.read import open_raster
    from geounet.regions import parse_region, window_slices
    from geounet.training import IGNORE, burn_labels, load_labels

    if held_out_of is not None:
        if rows is not None:
            raise GeounetError("give rows or held_out_of (--rows or --held-out-of), not both")
        rows, model_column, model_map = held_out_selection(held_out_of, truth)
        label_column = label_column or model_column
        class_map = class_map if class_map is not None else model_map
    if label_column is None:
        raise GeounetError("multi-class evaluation needs the truth's label column: pass "
                           "--label-column")
    for p in (pred, truth):
        if not Path(p).exists():
            raise InputNotFoundError(f"{str(p)!r} does not exist; check the path")
    if not _is_raster(pred):
        raise GeounetError(
            f"multi-class evaluation needs a class raster as PRED, not {str(pred)!r}; write one "
            "with geounet predict --mask-out CLASSES.tif"
        )
    with open_raster(pred) as ds:
        names = classes or _tag_class_names(ds.tags())
        if not names:
            raise GeounetError(
                f"class raster {str(pred)!r} does not name its classes (no CLASS_NAMES tag); "
                "pass them in id order, e.g. --raster-classes developed,forest,water"
            )
        arr = ds.read(1)
        valid = ds.read_masks(1) > 0
        shape, transform, crs = ds.shape, ds.transform, ds.crs
    gdf, truth_names = load_labels(truth, crs, label_column, class_map=class_map,
                                   unlabelled="ignore")
    if rows is not None:
        missing = sorted(set(rows) - set(gdf["row"]))
        if missing:
            raise GeounetError(
                f"truth rows {missing} are not polygons of {str(truth)!r} (it has rows "
                f"0..{int(gdf['row'].max())} with a class)"
            )
        gdf = gdf[gdf["row"].isin(rows)]
    present = [truth_names[i] for i in sorted(set(gdf["class_id"]))]
    unknown = sorted(set(present) - set(names))
    if unknown:
        raise GeounetError(
            f"truth classes {unknown} are not classes of {str(pred)!r} ({', '.join(names)}); "
            "map the label values to them with --classes VALUE=NAME,..."
        )
    lut = np.array([names.index(n) if n in names else -1 for n in truth_names])
    gdf = gdf.assign(class_id=lut[gdf["class_id"].to_numpy()])
    lab = burn_labels(gdf, shape[1], shape[0], transform, IGNORE)
    sel = (lab != IGNORE) & valid
    if sel.any() and int(arr[sel].max()) >= len(names):
        raise GeounetError(
            f"class raster {str(pred)!r} holds class id {int(arr[sel].max())} but only "
            f"{len(names)} class names are known ({', '.join(names)}); give every class, in "
            "id order, with --raster-classes"
        )
    if region:
        win = parse_region(region, shape[1], shape[0], transform)
        rs, cs = window_slices(win)
        keep = np.zeros(shape, bool)
        keep[rs, cs] = True
        sel &= keep
    if not sel.any():
        raise GeounetError(
            f"no pixel of {str(pred)!r} lies in a selected truth polygon of {str(truth)!r}; "
            "check that they cover the same place"
        )
    cm = confusion_matrix(arr[sel], lab[sel], len(names))
    return EvaluationResult(None, None, region, class_metrics(cm, names, len(gdf)))


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
    label_column: str | None = None,
    class_map: dict[str, str] | None = None,
    classes: list[str] | None = None,
    rows: list[int] | None = None,
    held_out_of=None,
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
        label_column, class_map, classes, rows, held_out_of: Multi-class
            evaluation (see :func:`evaluate_classes`).

    Returns:
        :class:`EvaluationResult`.

    Raises:
        InputNotFoundError: for a missing file.
        GeounetError: if no raster grid is available, or grids differ.
    """
    if label_column is not None or held_out_of is not None:
        return evaluate_classes(pred, truth, label_column, class_map, classes, rows, region,
                                held_out_of)
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
