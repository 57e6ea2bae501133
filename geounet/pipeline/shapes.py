"""Pixels to polygons: GDAL's ``shapes`` on a class raster, scores, the product mask.

The primitives of the vectorise stage (:mod:`geounet.pipeline.vectorize`):
polygons come from ``rasterio.features.shapes`` on the class raster, masked to
valid, non-background pixels; holes are kept. A polygon's score is the mean
probability of its own class over its pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from rasterio import features

from geounet.constants import CLASS_NODATA
from geounet.io.vector import COLUMNS, empty_frame

__all__ = ["COLUMNS", "footprint_frame", "label_sums", "polygon_scores",
           "polygons_from_classes", "product_mask", "raw_polygons"]


def product_mask(classes: np.ndarray, background: int | None = 0) -> np.ndarray:
    """Pixels that become polygons: not nodata and not the background class.

    Args:
        classes: ``(h, w)`` uint8 class ids.
        background: Background class id, or ``None`` (every class is a product).

    Returns:
        ``(h, w)`` bool.
    """
    mask = classes != CLASS_NODATA
    if background is not None:
        mask &= classes != background
    return mask


def polygons_from_classes(
    classes: np.ndarray,
    transform: Any,
    mask: np.ndarray | None = None,
    connectivity: int = 4,
    with_geojson: bool = False,
) -> tuple[Any, ...]:
    """Polygonise a class raster.

    Args:
        classes: ``(h, w)`` uint8 class ids.
        transform: Affine transform of the raster (pixel -> CRS units).
        mask: ``(h, w)`` bool, True where polygons are wanted (default:
            class != 0 and != :data:`CLASS_NODATA`).
        connectivity: 4 or 8.
        with_geojson: Also return GDAL's GeoJSON-like dicts (see Returns).

    Returns:
        ``(geometries, class_ids)``: valid shapely Polygons (with holes) in CRS
        units and a matching int32 array. With 8-connectivity GDAL returns a
        region joined only through a pixel corner as one self-touching (OGC
        invalid) ring; ``shapely.make_valid`` turns it into a MultiPolygon.
        With ``with_geojson``, GDAL's GeoJSON-like dicts come third (cheaper
        than shapely objects to hand to ``rasterize``).
    """
    if mask is None:
        mask = product_mask(classes)
    raw = list(features.shapes(classes, mask=mask, transform=transform,
                               connectivity=connectivity))
    geoms = _polygons_from_geojson([g for g, _ in raw])
    invalid = ~shapely.is_valid(geoms) if geoms else np.zeros(0, bool)
    for i in np.flatnonzero(invalid):
        geoms[i] = shapely.make_valid(geoms[i])
    ids = np.asarray([int(v) for _, v in raw], np.int32)
    if with_geojson:
        return geoms, ids, [g for g, _ in raw]
    return geoms, ids


def _polygons_from_geojson(dicts: list[Any]) -> list[Any]:
    """Shapely Polygons from GDAL's GeoJSON-like polygon dicts.

    Built in one vectorised call (``shapely.linearrings``/``shapely.polygons``
    with indices) rather than one ``shape()`` per polygon.
    """
    if not dicts:
        return []
    coords, ring_sizes, ring_poly = [], [], []
    for i, g in enumerate(dicts):
        for ring in g["coordinates"]:
            coords.extend(ring)
            ring_sizes.append(len(ring))
            ring_poly.append(i)
    rings = shapely.linearrings(np.asarray(coords, np.float64),
                                indices=np.repeat(np.arange(len(ring_sizes)), ring_sizes))
    return list(shapely.polygons(rings, indices=np.asarray(ring_poly)))


def polygon_scores(
    geoms: list[Any], class_ids: np.ndarray, probs: np.ndarray, transform: Any
) -> np.ndarray:
    """Mean probability of each polygon's own class over the pixels inside it.

    Pixels are matched to polygons by ``rasterio.features.rasterize`` (pixel
    centre inside), which for polygons made of pixel edges selects exactly the
    pixels they were made from.

    Args:
        geoms: Polygons in the raster's CRS.
        class_ids: Class id per polygon.
        probs: ``(k, h, w)`` float probabilities in [0, 1]; ``k == 1`` for a
            binary model (the foreground probability).
        transform: The raster's affine transform.

    Returns:
        ``(n,)`` float64 scores.
    """
    n = len(geoms)
    if n == 0:
        return np.zeros(0)
    h, w = probs.shape[1:]
    ids = features.rasterize(
        ((g, i + 1) for i, g in enumerate(geoms)),
        out_shape=(h, w),
        transform=transform,
        fill=0,
        dtype="int32",
    )
    sums, counts = label_sums(ids, class_ids, probs)
    return np.asarray(sums / np.maximum(counts, 1))


def label_sums(labels: np.ndarray, class_ids: np.ndarray,
               probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-label sum of each label's own class probability, and pixel counts.

    Args:
        labels: ``(h, w)`` int32, 0 = none, ``i + 1`` = polygon ``i``.
        class_ids: ``(n,)`` class id per polygon.
        probs: ``(k, h, w)``; channel 0 for every polygon when ``k == 1``
            (binary), else channel = class id.

    Returns:
        ``(sums, counts)``, two ``(n,)`` float64 arrays.
    """
    n = len(class_ids)
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    channel = np.zeros(n, np.int64) if probs.shape[0] == 1 else class_ids.astype(np.int64)
    sums = np.zeros(n)
    for c in np.unique(channel):
        s = np.bincount(flat, weights=probs[c].ravel(), minlength=n + 1)[1:]
        sel = channel == c
        sums[sel] = s[sel]
    return sums, counts


def raw_polygons(
    classes: np.ndarray,
    transform: Any,
    crs: Any,
    class_names: list[str],
    probs: np.ndarray | None = None,
    connectivity: int = 4,
    mask: np.ndarray | None = None,
    background: int | None = 0,
) -> Any:
    """A whole class raster to unfinished polygons (one ``features.shapes`` call).

    Args:
        classes: ``(h, w)`` uint8 class ids (:data:`CLASS_NODATA` = nodata).
        transform: Affine transform of the raster.
        crs: CRS of the raster (any rasterio/pyproj CRS).
        class_names: Name per class id.
        probs: Optional ``(k, h, w)`` float probabilities for the ``score``
            column (NaN scores without it).
        connectivity: 4 or 8.
        mask: Optional ``(h, w)`` bool restricting where polygons are made
            (default: :func:`product_mask` with ``background``).
        background: Class id left out of the polygons, or ``None``.

    Returns:
        GeoDataFrame in ``crs`` with :data:`COLUMNS`; ``area_m2`` is NaN
        (measured by :func:`geounet.pipeline.postprocess.finish_polygons`).
    """
    if mask is None:
        mask = product_mask(classes, background)
    geoms, ids = polygons_from_classes(classes, transform, mask, connectivity)
    if not geoms:
        return empty_frame(crs)
    scores = (polygon_scores(geoms, ids, probs, transform) if probs is not None
              else np.full(len(geoms), np.nan))
    return footprint_frame(geoms, ids, scores, class_names, crs)


def footprint_frame(geoms: Any, ids: np.ndarray, scores: np.ndarray, class_names: list[str],
                    crs: Any) -> Any:
    """Raw polygons as a GeoDataFrame with :data:`COLUMNS` (``area_m2`` NaN).

    Args:
        geoms: ``(n,)`` shapely geometries in ``crs``.
        ids: ``(n,)`` int32 class ids.
        scores: ``(n,)`` float64 scores.
        class_names: Name per class id (ids past the list are named by number).
        crs: Their CRS.

    Returns:
        The GeoDataFrame.
    """
    import geopandas as gpd

    names = [class_names[i] if i < len(class_names) else str(i) for i in ids]
    return gpd.GeoDataFrame(
        {"class_id": ids, "class_name": names, "area_m2": np.full(len(ids), np.nan),
         "score": scores},
        geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs,
    )
