"""Stage 5 - vectorise: class raster to georeferenced polygons.

Polygons come from ``rasterio.features.shapes`` on the class raster, masked to
valid, non-background pixels; holes are kept. Areas (``area_m2``), the
``min_area_m2`` filter and the ``simplify_m`` tolerance are in metres, measured
in the scene's CRS when it is projected (scaled by its linear unit) and in the
local UTM zone (``GeoDataFrame.estimate_utm_crs``) when it is geographic.
Geometries stay in the scene's CRS.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features
from shapely.geometry import shape

from geounet.config import VectorizeConfig

log = logging.getLogger(__name__)

CLASS_NODATA = 255
"""Nodata value of geounet's class rasters (class ids are 0..254)."""

COLUMNS = ["class_id", "class_name", "area_m2", "score", "geometry"]


def empty_frame(crs) -> gpd.GeoDataFrame:
    """An empty GeoDataFrame with geounet's footprint columns."""
    return gpd.GeoDataFrame(
        {
            "class_id": np.array([], np.int32),
            "class_name": np.array([], object),
            "area_m2": np.array([], np.float64),
            "score": np.array([], np.float64),
        },
        geometry=gpd.GeoSeries([], crs=crs),
        crs=crs,
    )


def _metric(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoSeries, float]:
    """Geometries in a metric-ish CRS and the factor from its unit to metres."""
    crs = gdf.crs
    if crs.is_geographic:
        return gdf.geometry.to_crs(gdf.estimate_utm_crs()), 1.0
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return gdf.geometry, float(factor or 1.0)


def polygons_from_classes(
    classes: np.ndarray,
    transform,
    mask: np.ndarray | None = None,
    connectivity: int = 4,
) -> tuple[list, np.ndarray]:
    """Polygonise a class raster.

    Args:
        classes: ``(h, w)`` uint8 class ids.
        transform: Affine transform of the raster (pixel -> CRS units).
        mask: ``(h, w)`` bool, True where polygons are wanted (default:
            class != 0 and != :data:`CLASS_NODATA`).
        connectivity: 4 or 8.

    Returns:
        ``(geometries, class_ids)``: shapely Polygons (with holes) in CRS units
        and a matching int32 array.
    """
    if mask is None:
        mask = (classes != 0) & (classes != CLASS_NODATA)
    geoms, ids = [], []
    for geom, value in features.shapes(
        classes, mask=mask, transform=transform, connectivity=connectivity
    ):
        geoms.append(shape(geom))
        ids.append(int(value))
    return geoms, np.asarray(ids, np.int32)


def polygon_scores(
    geoms: list, class_ids: np.ndarray, probs: np.ndarray, transform
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
    channel = np.zeros(n, np.int64) if probs.shape[0] == 1 else class_ids.astype(np.int64)
    scores = np.zeros(n)
    counts = np.bincount(ids.ravel(), minlength=n + 1)[1:]
    for c in np.unique(channel):
        sums = np.bincount(ids.ravel(), weights=probs[c].ravel(), minlength=n + 1)[1:]
        sel = channel == c
        scores[sel] = sums[sel] / np.maximum(counts[sel], 1)
    return scores


def vectorize(
    classes: np.ndarray,
    transform,
    crs,
    class_names: list[str],
    probs: np.ndarray | None = None,
    config: VectorizeConfig | None = None,
    mask: np.ndarray | None = None,
) -> gpd.GeoDataFrame:
    """Class raster to a GeoDataFrame of polygons.

    Args:
        classes: ``(h, w)`` uint8 class ids (0 = background,
            :data:`CLASS_NODATA` = nodata).
        transform: Affine transform of the raster.
        crs: CRS of the raster (any rasterio/pyproj CRS).
        class_names: Name per class id.
        probs: Optional ``(k, h, w)`` float probabilities for the ``score``
            column (NaN scores without it).
        config: Area filter, simplification, connectivity.
        mask: Optional ``(h, w)`` bool restricting where polygons are made.

    Returns:
        GeoDataFrame in ``crs`` with columns ``class_id`` (int32),
        ``class_name`` (str), ``area_m2`` (float, square metres), ``score``
        (float in [0, 1]) and Polygon/MultiPolygon ``geometry``.
    """
    config = config or VectorizeConfig()
    geoms, ids = polygons_from_classes(classes, transform, mask, config.connectivity)
    if not geoms:
        return empty_frame(crs)
    scores = polygon_scores(geoms, ids, probs, transform) if probs is not None else np.full(
        len(geoms), np.nan
    )
    names = [class_names[i] if i < len(class_names) else str(i) for i in ids]
    gdf = gpd.GeoDataFrame(
        {"class_id": ids, "class_name": names, "score": scores},
        geometry=gpd.GeoSeries(geoms, crs=crs),
        crs=crs,
    )
    return finish_polygons(gdf, config)


def finish_polygons(gdf: gpd.GeoDataFrame, config: VectorizeConfig) -> gpd.GeoDataFrame:
    """Measure ``area_m2``, drop small polygons, simplify (all in metres).

    Args:
        gdf: Polygons with a CRS.
        config: ``min_area_m2`` and ``simplify_m``.

    Returns:
        A new GeoDataFrame in the same CRS with :data:`COLUMNS`; simplified
        geometries are made valid (``shapely.make_valid``) and kept polygonal.
    """
    if gdf.empty:
        return empty_frame(gdf.crs)
    metric, factor = _metric(gdf)
    area = metric.area.to_numpy() * factor**2
    keep = area >= config.min_area_m2
    gdf = gdf.loc[keep].copy()
    metric = metric.loc[keep]
    if config.simplify_m > 0 and len(gdf):
        simplified = metric.simplify(config.simplify_m / factor, preserve_topology=True)
        simplified = gpd.GeoSeries(
            shapely.make_valid(simplified.to_numpy()), crs=simplified.crs, index=simplified.index
        )
        simplified = simplified.apply(_polygonal)
        metric = simplified
        area = metric.area.to_numpy() * factor**2
        geoms = simplified.to_crs(gdf.crs) if simplified.crs != gdf.crs else simplified
        gdf = gdf.set_geometry(geoms.to_numpy(), crs=gdf.crs)
        nonempty = ~gdf.geometry.is_empty.to_numpy()
        gdf = gdf.loc[nonempty]
        area = area[nonempty]
    else:
        area = area[keep]
    gdf["area_m2"] = area
    gdf["class_id"] = gdf["class_id"].astype(np.int32)
    return gdf[COLUMNS].reset_index(drop=True)


def _polygonal(geom):
    """Keep only the polygonal part of a geometry (after make_valid)."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)
