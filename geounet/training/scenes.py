"""The scenes of a training run, prepared without reading their pixels.

For each scene of the dataset (:mod:`geounet.training.dataset`) this module
keeps what the windowed reads need, all small: the grid the scene is read on
(its own, or a grid of the training GSD read through a rasterio ``WarpedVRT``
exactly as ``geounet predict`` reads a scene at the model's GSD,
:mod:`geounet.io.regrid`), its label polygons reprojected to its CRS and
clipped to it, which of them are held out, its validation region, and its
sampling weight. Pixels are read window by window later
(:mod:`geounet.training.windows`); band statistics are accumulated over
blocks (:func:`band_statistics_of`), so no scene is ever read whole.

The training GSD is the starting model's (``--init``), else ``config.gsd_m``,
else the first training scene's. Scenes whose GSD differs from it by more
than :data:`GSD_TOLERANCE` are resampled (``average`` when the scene is finer,
``nearest`` when coarser, as at inference).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from geounet.constants import CLASS_NODATA
from geounet.errors import EmptySceneError, LabelError, RegionError
from geounet.io.read import Scene
from geounet.io.regrid import model_grid
from geounet.labels import (
    LabelSpec,
    burn_labels,
    hold_out_polygons,
    label_text,
    natural_key,
    read_label_polygons,
)
from geounet.regions import parse_region
from geounet.training.dataset import SceneSpec

log = logging.getLogger(__name__)

GSD_TOLERANCE = 0.05
"""Largest ``|scene GSD / training GSD - 1|`` read at the scene's own GSD (as ``--resample``)."""

STATS_BLOCK_PX = 1024
"""Side of the blocks band statistics are accumulated over (pixels)."""


@dataclass
class TrainScene:
    """A scene of a training run (no pixels).

    Attributes:
        index: Position in the dataset.
        spec: The :class:`~geounet.training.dataset.SceneSpec`.
        bands: 1-based bands read.
        width, height: Size of the grid it is read on (px at the training GSD).
        transform: Affine transform of that grid (pixel -> CRS units).
        crs: The scene's CRS.
        gsd_m: The scene's own GSD (m/px).
        train_gsd_m: The training GSD (m/px); differs from ``gsd_m`` when resampled.
        polygons: Its label polygons in its CRS (``class_id``, ``row``, ``held``).
        val_window: Pixels held out from training (region, or the whole scene
            for ``split="val"``), or ``None``.
        weight: Relative share of the training windows drawn from it.
    """

    index: int
    spec: SceneSpec
    bands: list[int]
    width: int
    height: int
    transform: Any
    crs: Any
    gsd_m: float
    train_gsd_m: float
    polygons: Any
    val_window: Window | None = None
    weight: float = 0.0
    held_rows: list[int] = field(default_factory=list)

    def open(self) -> Scene:
        """Open the scene on its training grid (caller closes it).

        Returns:
            A :class:`~geounet.io.read.Scene` of :attr:`bands`.
        """
        scene = Scene(self.spec.scene, self.bands)
        grid = model_grid(scene.native_grid(), scene.pixel_size_m(), self.train_gsd_m,
                          GSD_TOLERANCE)
        if grid is not None:
            scene.use_grid(grid)
        return scene

    @property
    def validated(self) -> bool:
        """True when some of its pixels are validation truth."""
        return self.val_window is not None or bool(self.polygons["held"].any())

    def labels(self, window: Window, fill: int, train: bool) -> np.ndarray:
        """Burn the labels of a window.

        Args:
            window: Pixel window of the training grid (may reach past the edge).
            fill: Value of unlabelled pixels (0 background, or ``CLASS_NODATA``).
            train: ``True``: training labels (held-out polygons and the
                validation window ``CLASS_NODATA``). ``False``: validation truth
                (the held-out polygons, and every polygon inside the validation
                window; ``CLASS_NODATA`` elsewhere).

        Returns:
            ``(h, w)`` uint8 class ids; ``CLASS_NODATA`` past the scene's edge.
        """
        h, w = int(window.height), int(window.width)
        tr = window_transform(window, self.transform)
        # only the polygons near the window: the cost stays that of a window, not a scene
        polys = clip_to(self.polygons, window_bounds(window, self.transform))
        held = polys["held"].to_numpy()
        held_px = burn_labels(polys[held], w, h, tr, CLASS_NODATA)
        inside = self._mask(window, self.val_window)
        if train:
            out = burn_labels(polys[~held], w, h, tr, fill)
            out[(held_px != CLASS_NODATA) | inside] = CLASS_NODATA
        else:
            out = held_px
            if inside.any():
                out[inside] = burn_labels(polys, w, h, tr, fill)[inside]
        out[~self._mask(window, Window(0, 0, self.width, self.height))] = CLASS_NODATA
        return out

    @staticmethod
    def _mask(window: Window, region: Window | None) -> np.ndarray:
        """``(h, w)`` bool: the pixels of ``window`` inside ``region``."""
        h, w = int(window.height), int(window.width)
        out = np.zeros((h, w), bool)
        if region is None:
            return out
        r0, c0 = int(region.row_off - window.row_off), int(region.col_off - window.col_off)
        rs = slice(max(0, r0), max(0, min(h, r0 + int(region.height))))
        cs = slice(max(0, c0), max(0, min(w, c0 + int(region.width))))
        out[rs, cs] = True
        return out


def consistent_spec(spec: LabelSpec, label_files: list[str]) -> LabelSpec:
    """A label spec that gives every label file the same class ids.

    With a ``label_column`` and no class map, one file's sorted values are its
    classes; several files could disagree, so the sorted union of their
    values becomes the class map.

    Args:
        spec: The run's label options.
        label_files: The distinct label files of the dataset.

    Returns:
        ``spec``, or a copy with a class map.

    Raises:
        LabelError: if a file lacks the label column.
    """
    if spec.label_column is None or spec.class_map is not None or len(label_files) < 2:
        return spec
    values: set[str] = set()
    for path in label_files:
        gdf = read_label_polygons(path, None)
        if spec.label_column not in gdf.columns:
            raise LabelError(f"label column {spec.label_column!r} is not in {path!r}")
        values |= {label_text(v) for v in gdf[spec.label_column].dropna()}
    names = sorted(values, key=natural_key)
    return LabelSpec(spec.label_column, spec.class_name, {v: v for v in names}, spec.unlabelled)


class LabelFiles:
    """Label files read once, reprojected once per CRS, with their held-out polygons.

    Args:
        spec: Label options (consistent over the files, :func:`consistent_spec`).
        val_polygons: Fraction of each class's polygons held out per file, or ``None``.
        seed: Seed of that choice.
    """

    def __init__(self, spec: LabelSpec, val_polygons: float | None, seed: int) -> None:
        self.spec, self.val_polygons, self.seed = spec, val_polygons, seed
        self._files: dict[str, Any] = {}
        self.classes: list[str] | None = None

    def polygons(self, path: str, crs: Any) -> Any:
        """The polygons of ``path`` in ``crs``, with ``class_id``, ``row`` and ``held``.

        Raises:
            InputNotFoundError, MissingCRSError, LabelError: see
                :meth:`geounet.labels.LabelSpec.load`.
        """
        if path not in self._files:
            gdf, classes = self.spec.load(path, None)
            if self.classes is not None and classes != self.classes:
                raise LabelError(f"labels {path!r} give classes {classes}, others "
                                 f"{self.classes}; pass --classes to name them alike")
            self.classes = classes
            held = (hold_out_polygons(gdf["class_id"].to_numpy(), self.val_polygons, self.seed)
                    if self.val_polygons else np.zeros(len(gdf), bool))
            self._files[path] = gdf.assign(held=held)
        gdf = self._files[path]
        return gdf if crs is None or gdf.crs == crs else gdf.to_crs(crs)

    def held_rows(self, path: str) -> list[int]:
        """0-based rows (feature positions in the file) of its held-out polygons."""
        gdf = self._files[path]
        return [int(r) for r in gdf.loc[gdf["held"], "row"]]


def clip_to(gdf: Any, bounds: tuple[float, float, float, float]) -> Any:
    """The polygons whose bounding boxes meet ``bounds`` (minx, miny, maxx, maxy; CRS units)."""
    from shapely.geometry import box

    if not len(gdf):
        return gdf
    return gdf.iloc[np.sort(gdf.sindex.query(box(*bounds)))]


def prepare_scene(index: int, spec: SceneSpec, bands: list[int] | None, gsd_m: float | None,
                  labels: LabelFiles, region: str | None) -> TrainScene:
    """Prepare one scene: its grid, polygons, validation window and weight.

    Args:
        index: Position in the dataset.
        spec: The scene.
        bands: 1-based bands (``None``: all).
        gsd_m: Training GSD (m/px), or ``None`` for the scene's own.
        labels: The run's label files.
        region: Held-out region of ``train`` scenes (:mod:`geounet.regions`), or ``None``.

    Returns:
        The :class:`TrainScene` (``weight`` set by :func:`set_weights`).

    Raises:
        GeounetError: subclasses from :class:`~geounet.io.read.Scene` and the labels.
        RegionError: if the region covers a whole training scene.
    """
    with Scene(spec.scene, bands) as sc:
        native_gsd = sc.gsd_m()
        ts = TrainScene(index, spec, list(sc.bands), 0, 0, None, sc.crs, native_gsd,
                        gsd_m or native_gsd, None)
    with ts.open() as sc:
        ts.width, ts.height, ts.transform = sc.width, sc.height, sc.transform
        bounds = sc.dataset.bounds
    ts.polygons = clip_to(labels.polygons(spec.labels, ts.crs), tuple(bounds))
    ts.held_rows = [int(r) for r in ts.polygons.loc[ts.polygons["held"], "row"]]
    if spec.split == "val":
        ts.val_window = Window(0, 0, ts.width, ts.height)
    elif region and spec.split == "train":
        ts.val_window = _region_window(region, ts)
    return ts


def _region_window(region: str, ts: TrainScene) -> Window | None:
    """The region's window in ``ts`` (``None`` when a ``map:`` region misses it)."""
    try:
        win = parse_region(region, ts.width, ts.height, ts.transform)
    except RegionError:
        if region.strip().lower().startswith("map:"):
            log.info("validation region %s does not meet scene %s", region, ts.spec.scene)
            return None
        raise
    if int(win.width) * int(win.height) >= ts.width * ts.height:
        raise RegionError(f"validation region {region!r} covers the whole scene "
                          f"{ts.spec.scene!r}; give a smaller one, or split='val' scenes")
    return win


def set_weights(scenes: list[TrainScene], sparse: bool) -> None:
    """Set each scene's sampling weight: its labelled area (sparse labels) or its area.

    Areas are in pixels of the training grid, less the validation window;
    ``val`` and ``test`` scenes get 0.

    Raises:
        LabelError: if no training scene has training labels.
    """
    for ts in scenes:
        if ts.spec.split != "train":
            ts.weight = 0.0
            continue
        area = float(ts.width * ts.height)
        if ts.val_window is not None:
            area -= float(ts.val_window.width * ts.val_window.height)
        if sparse:
            px = abs(ts.transform.a * ts.transform.e)
            polys = ts.polygons[~ts.polygons["held"].to_numpy()]
            area = float(polys.geometry.area.sum()) / px if len(polys) else 0.0
        ts.weight = max(area, 0.0)
        if not len(ts.polygons):
            log.warning("labels %s have no polygon on scene %s: trained on as background only",
                        ts.spec.labels, ts.spec.scene)
    if not any(ts.weight > 0 and len(ts.polygons) for ts in scenes):
        raise LabelError(
            "the labels do not overlap any training scene (after reprojection to each scene's "
            "CRS); check that they belong to these scenes"
        )


def band_statistics_of(scenes: list[TrainScene]) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation over the valid training pixels of the scenes.

    Accumulated in float64 over blocks of :data:`STATS_BLOCK_PX` px, so memory
    does not grow with the scenes; the pixels of validation windows and of
    ``val``/``test`` scenes are left out.

    Args:
        scenes: The run's scenes (only ``train`` scenes count).

    Returns:
        ``(mean, std)``, one float per band (population standard deviation).

    Raises:
        EmptySceneError: if no valid training pixel is found.
    """
    total, s1, s2 = 0, None, None
    for ts in scenes:
        if ts.spec.split != "train":
            continue
        with ts.open() as sc:
            for win in _blocks(ts.width, ts.height, STATS_BLOCK_PX):
                data, valid = sc.read(win)
                valid &= ~ts._mask(win, ts.val_window)
                sel = data[:, valid].astype(np.float64)
                s1 = sel.sum(1) if s1 is None else s1 + sel.sum(1)
                s2 = (sel**2).sum(1) if s2 is None else s2 + (sel**2).sum(1)
                total += sel.shape[1]
    if not total or s1 is None or s2 is None:
        raise EmptySceneError("every pixel of the training scenes is nodata (or held out)")
    mean = s1 / total
    std = np.sqrt(np.maximum(s2 / total - mean**2, 0.0))
    return mean.tolist(), std.tolist()


def _blocks(width: int, height: int, size: int) -> list[Window]:
    return [Window(c, r, min(size, width - c), min(size, height - r))
            for r in range(0, height, size) for c in range(0, width, size)]

