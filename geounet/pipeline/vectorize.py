"""Stage 6 - vectorise: class raster to georeferenced polygons, strip by strip.

Polygons come from ``rasterio.features.shapes`` on the class raster, masked to
valid, non-background pixels; holes are kept. :class:`StreamingVectorizer` takes
the class raster strip by strip and merges polygons across strip edges, so the
result equals one ``features.shapes`` call over the whole raster while memory
holds only the open polygons. Polygons leave this stage *raw*: class, name,
score and geometry in the scene's CRS, ``area_m2`` not yet measured; hole
filling, splitting, the area filter and simplification are the next stage
(:mod:`geounet.pipeline.postprocess`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from rasterio import features
from rasterio.transform import Affine

from geounet.config import VectorizeConfig
from geounet.constants import CLASS_NODATA
from geounet.geometry import pixel_to_crs
from geounet.io.vector import COLUMNS, empty_frame
from geounet.pipeline.shapes import (
    footprint_frame,
    label_sums,
    polygon_scores,
    polygons_from_classes,
    product_mask,
    raw_polygons,
)

log = logging.getLogger(__name__)

__all__ = [
    "CLASS_NODATA",
    "COLUMNS",
    "StreamingVectorizer",
    "empty_frame",
    "label_sums",
    "polygon_scores",
    "polygons_from_classes",
    "product_mask",
    "raw_polygons",
]


class StreamingVectorizer:
    """Polygonise a class raster strip by strip without cutting polygons.

    Strips of rows arrive top to bottom. Each strip is polygonised with
    ``rasterio.features.shapes`` in pixel coordinates (exact integers).
    Polygons that touch the strip's bottom edge stay *open*; in the next
    strip, new polygons connected to them across the edge (same class,
    4- or 8-connected pixels, found from the two rows either side of the edge)
    are unioned with them. A polygon is finished, transformed to the scene's
    CRS and handed on as soon as it no longer touches the newest edge, so
    memory holds only the open polygons, never the scene.

    The result equals one ``features.shapes`` call over the whole raster
    (the tests check it on generated masks, with objects spanning many
    strips and with holes). It is a strip stage (:mod:`geounet.pipeline.strips`):
    :meth:`add` takes a classified strip.

    Args:
        width: Raster width in pixels.
        transform: Affine transform of the whole raster.
        crs: Its CRS.
        class_names: Name per class id.
        on_polygons: Called with a GeoDataFrame (columns as
            :func:`raw_polygons`, ``area_m2`` NaN) of each batch of finished
            polygons.
        config: Its ``connectivity`` (4 or 8) is used.
        batch_size: Finished polygons are handed on in batches of at least
            this many (and at :meth:`finish`), which keeps the per-batch cost of
            building GeoDataFrames small.
        background: Class id that is not polygonised by default (0), or
            ``None`` to polygonise every class (land cover).
    """

    def __init__(self, width: int, transform: Any, crs: Any, class_names: list[str],
                 on_polygons: Callable[[Any], None], config: VectorizeConfig | None = None,
                 batch_size: int = 1000, background: int | None = 0) -> None:
        self.background = background
        self.width = width
        self.transform = transform
        self.crs = crs
        self.class_names = list(class_names)
        self.on_polygons = on_polygons
        self.connectivity = (config or VectorizeConfig()).connectivity
        self._open: list[dict[str, Any]] = []   # open polygons (pixel coordinates)
        self._edge_ids = np.zeros(width, np.int32)  # last row: index into _open + 1, 0 = none
        self._edge_cls = np.zeros(width, np.uint8)  # class ids of the last row
        self._row = 0                            # next expected row
        self._done: list[dict[str, Any]] = []   # finished, not yet emitted
        self.batch_size = batch_size
        self.count = 0

    def add(self, strip: Any) -> None:
        """Add a classified strip (:class:`geounet.pipeline.strips.Strip`).

        Args:
            strip: Its ``classes`` and ``probs`` are polygonised.
        """
        self.add_rows(strip.row_off, strip.classes, strip.probs)

    def abort(self) -> None:
        """Drop the open polygons (nothing is handed on)."""
        self._open, self._done = [], []

    def add_rows(self, row_off: int, classes: np.ndarray, probs: np.ndarray | None = None,
                 mask: np.ndarray | None = None) -> None:
        """Add the strip ``classes[(n, width)]`` starting at ``row_off``.

        Args:
            row_off: First row of the strip; strips must be contiguous.
            classes: ``(n, width)`` uint8 class ids.
            probs: ``(k, n, width)`` float probabilities for scores, or None.
            mask: ``(n, width)`` bool where polygons are wanted (default:
                class != ``background`` and != :data:`CLASS_NODATA`).

        Raises:
            ValueError: if strips are not contiguous.
        """
        if row_off != self._row:
            raise ValueError(f"strip at row {row_off} does not follow row {self._row}")
        if mask is None:
            mask = product_mask(classes, self.background)
        new, first_labels, last_labels = self._polygonise(row_off, classes, probs, mask)
        groups = self._connect(new, first_labels, classes[0])
        bottom = row_off + classes.shape[0]
        still_open, finished = self._merge(groups, self._open + new, bottom)
        self._edge_ids = self._edge_map(still_open, len(new), last_labels)
        self._open = [p for p, _ in still_open]
        self._edge_cls = classes[-1].copy()
        self._row = bottom
        self._done.extend(p for p, _ in finished)
        if len(self._done) >= self.batch_size:
            self._emit(self._done)
            self._done = []

    def _polygonise(self, row_off: int, classes: np.ndarray, probs: np.ndarray | None,
                    mask: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
        """The strip's polygons (pixel coordinates) and its first and last rows' labels."""
        n, width = classes.shape
        t = Affine.translation(0, row_off)
        geoms, ids, raw = polygons_from_classes(classes, t, mask, self.connectivity,
                                                with_geojson=True)
        m = len(geoms)

        def burn(shape: tuple[int, int], transform: Any) -> np.ndarray:
            return features.rasterize(((g, i + 1) for i, g in enumerate(raw)), out_shape=shape,
                                      transform=transform, fill=0, dtype="int32")

        labels = None
        if probs is None and n > 2 and m:
            # no scores wanted: only the first and last rows' labels are needed (merging)
            first = burn((1, width), Affine.translation(0, row_off))[0]
            last = burn((1, width), Affine.translation(0, row_off + n - 1))[0]
        else:
            labels = burn(classes.shape, t) if m else np.zeros(classes.shape, np.int32)
            first, last = labels[0], labels[-1]
        if probs is not None and m and labels is not None:
            sums, counts = label_sums(labels, ids, probs)
        else:  # no probabilities: NaN scores
            sums, counts = np.zeros(m), np.zeros(m)
        new = [{"geom": g, "cls": int(k), "sum": s, "n": cnt}
               for g, k, s, cnt in zip(geoms, ids, sums, counts, strict=True)]
        return new, first, last

    def _connect(self, new: list[dict[str, Any]], top_ids: np.ndarray,
                 top_cls: np.ndarray) -> dict[int, list[int]]:
        """Groups of open (0..n_open-1) and new (n_open..) polygons joined across the edge."""
        n_open, m = len(self._open), len(new)
        parent = list(range(n_open + m))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        if n_open and m:
            w = self.width
            for s in ([0] if self.connectivity == 4 else [-1, 0, 1]):
                a_ids = self._edge_ids[max(0, -s): w - max(0, s)]
                a_cls = self._edge_cls[max(0, -s): w - max(0, s)]
                b_ids = top_ids[max(0, s): w - max(0, -s)]
                b_cls = top_cls[max(0, s): w - max(0, -s)]
                sel = (a_ids > 0) & (b_ids > 0) & (a_cls == b_cls)
                for oa, nb in set(zip(a_ids[sel].tolist(), b_ids[sel].tolist(), strict=True)):
                    ra, rb = find(oa - 1), find(n_open + nb - 1)
                    if ra != rb:
                        parent[rb] = ra
        groups: dict[int, list[int]] = {}
        for i in range(n_open + m):
            groups.setdefault(find(i), []).append(i)
        return groups

    @staticmethod
    def _merge(groups: dict[int, list[int]], items: list[dict[str, Any]],
               bottom: int) -> tuple[list[Any], list[Any]]:
        """Union each group; split into those still touching row ``bottom`` and finished."""
        still_open: list[Any] = []
        finished: list[Any] = []
        for members in groups.values():
            parts = [items[i] for i in members]
            if len(parts) == 1:
                merged = dict(parts[0])
            else:
                geom = shapely.union_all([p["geom"] for p in parts]).simplify(0)
                merged = {"geom": geom, "cls": parts[0]["cls"],
                          "sum": sum(p["sum"] for p in parts), "n": sum(p["n"] for p in parts)}
            touches = merged["geom"].bounds[3] >= bottom
            (still_open if touches else finished).append((merged, members))
        return still_open, finished

    def _edge_map(self, still_open: list[Any], m: int, last_labels: np.ndarray) -> np.ndarray:
        """The bottom row's pixel -> open polygon (index + 1) map for the next strip."""
        n_open = len(self._open)
        new_index = {}
        for j, (_, members) in enumerate(still_open):
            for i in members:
                if i >= n_open:
                    new_index[i - n_open + 1] = j + 1
        if not new_index:
            return np.zeros(self.width, np.int32)
        lut = np.zeros(m + 1, np.int32)
        for k, v in new_index.items():
            lut[k] = v
        return np.asarray(lut[last_labels])

    def finish(self) -> None:
        """Emit every polygon still pending or open (call after the last strip)."""
        self._emit(self._done + self._open)
        self._done, self._open = [], []

    def _emit(self, polys: list[dict[str, Any]]) -> None:
        if not polys:
            return
        geoms = pixel_to_crs(np.array([p["geom"] for p in polys], dtype=object), self.transform)
        ids = np.array([p["cls"] for p in polys], np.int32)
        scores = np.array([p["sum"] / p["n"] if p["n"] else np.nan for p in polys])
        self.count += len(polys)
        self.on_polygons(footprint_frame(geoms, ids, scores, self.class_names, self.crs))
