"""Fill small holes (interior rings) of footprints."""

from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geounet.footprints.checks import (
    assemble_per_row,
    check_frame,
    check_number,
    empty_like,
    prepare,
)
from geounet.geometry import metric_geometries, polygonal

log = logging.getLogger(__name__)


def fill_holes(gdf: gpd.GeoDataFrame, max_hole_area_m2: float) -> gpd.GeoDataFrame:
    """Remove the interior rings (holes) smaller than ``max_hole_area_m2``.

    Each hole's area is measured in square metres (in the CRS scaled by its
    linear unit, or in the local UTM zone for a geographic CRS); the rings that
    stay keep their exact input coordinates. Works on Polygons and on each part
    of MultiPolygons.

    Args:
        gdf: Footprints in any CRS.
        max_hole_area_m2: Holes with an area strictly below this many square
            metres are filled. 0 keeps every hole; ``float('inf')`` fills every
            hole.

    Returns:
        A new GeoDataFrame in the input CRS with the same columns; ``area_m2``
        is recomputed for polygons that lost a hole, other rows (and geometry
        objects) are unchanged.

    Raises:
        InvalidOptionError: if ``max_hole_area_m2`` is negative, NaN or not a
            number, or ``gdf`` is not a GeoDataFrame.
        MissingCRSError: if ``gdf`` has no CRS.
    """
    check_frame(gdf, "fill_holes")
    limit = check_number("max_hole_area_m2", max_hole_area_m2, "square metres",
                         "pass 0 to keep every hole or float('inf') to fill them all")
    gdf, changed = prepare(gdf)
    if gdf.empty:
        return empty_like(gdf)
    geoms = gdf.geometry.to_numpy()
    out = list(geoms)
    n_holes = shapely.get_num_interior_rings(shapely.get_parts(geoms))
    if limit > 0 and n_holes.sum() > 0:
        _fill_small(gdf, limit, out, changed)
    return assemble_per_row(gdf, out, changed)


def _fill_small(gdf: gpd.GeoDataFrame, limit: float, out: list[Any], changed: np.ndarray) -> None:
    """Fill the holes under ``limit`` m2: updates ``out`` and ``changed`` in place, per row."""
    geoms = gdf.geometry.to_numpy()
    metric, factor = metric_geometries(gdf)
    # all parts of all geometries, in input and metric CRS (same ring order)
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    small, ring_of = _small_holes(shapely.get_parts(metric.to_numpy()), factor, limit)
    touched = np.unique(ring_of[small])
    for p in touched:
        part = parts[p]
        sel = np.flatnonzero(ring_of == p)[1:]     # this part's holes, in order
        keep = [part.interiors[k] for k, r in enumerate(sel) if not small[r]]
        parts[p] = shapely.Polygon(part.exterior, keep)
    for g in np.unique(part_of[touched]):
        mine = parts[part_of == g]
        geom = mine[0] if geoms[g].geom_type == "Polygon" else shapely.MultiPolygon(list(mine))
        if not geom.is_valid:
            geom = polygonal(shapely.make_valid(geom))
        out[g] = geom
        changed[g] = True
    log.info("fill_holes: filled %d holes in %d polygons", int(small.sum()),
             len(np.unique(part_of[touched])) if len(touched) else 0)


def _small_holes(mparts: np.ndarray, factor: float,
                 limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Rings of the metric polygon parts ``mparts`` that are holes under ``limit`` m2.

    Returns:
        ``(small, ring_of)``: per ring (each part's exterior first, then its
        holes) whether it is a small hole, and the index of its part.
    """
    rings, ring_of = shapely.get_rings(mparts, return_index=True)
    is_hole = np.ones(len(rings), bool)
    # get_rings lists each part's exterior first
    first = np.r_[True, ring_of[1:] != ring_of[:-1]]
    is_hole[first] = False
    ring_area = shapely.area(shapely.polygons(rings)) * factor**2
    return is_hole & (ring_area < limit), ring_of
