"""Ground units and CRS helpers: the one way geounet gets metres.

Lengths and areas on the ground are measured in the CRS itself when it is
projected (scaled by its linear unit, so US survey feet work) and in the local
UTM zone (``GeoDataFrame.estimate_utm_crs``) when it is geographic. Pixel sizes
of a geographic grid use the WGS84 mean radius at the grid's centre latitude.
Geometries handed back are always in the input CRS.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EARTH_MEAN_RADIUS_M = 6_371_008.8
"""WGS84 mean radius (IUGG R1), metres."""


def pixel_size_m(crs: Any, res: tuple[float, float], centre_lat: float) -> tuple[float, float]:
    """Approximate ground size of one pixel in metres, ``(x, y)``.

    Args:
        crs: A rasterio CRS (projected or geographic).
        res: ``(xres, yres)`` pixel size in CRS units (positive).
        centre_lat: Latitude in degrees of the grid's centre (used for
            geographic CRSs only).

    Returns:
        ``(x_m, y_m)``: the linear unit times the resolution for projected
        CRSs; the length of a degree of longitude (at ``centre_lat``) and of
        latitude on the WGS84 mean radius, times the resolution, for
        geographic ones.
    """
    xres, yres = res
    if crs.is_geographic:
        m_per_deg = math.pi / 180 * EARTH_MEAN_RADIUS_M
        return xres * m_per_deg * math.cos(math.radians(centre_lat)), yres * m_per_deg
    factor = crs.linear_units_factor[1] if crs.linear_units else 1.0
    return xres * factor, yres * factor


def metric_geometries(gdf: Any) -> tuple[Any, float]:
    """Geometries in a CRS whose unit is a fixed length, and that unit in metres.

    Args:
        gdf: A GeoDataFrame with a CRS.

    Returns:
        ``(geoms, factor)``: a GeoSeries in the frame's CRS when it is
        projected (``factor`` = its linear unit in metres, 1.0 for metres) or
        reprojected to the local UTM zone when it is geographic
        (``factor`` 1.0). Lengths times ``factor`` are metres; areas times
        ``factor**2`` square metres.
    """
    crs = gdf.crs
    if crs.is_geographic:
        return gdf.geometry.to_crs(gdf.estimate_utm_crs()), 1.0
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return gdf.geometry, float(factor or 1.0)


def pixel_steps_m(gdf: Any, geoms: np.ndarray, transform: Any, factor: float) -> np.ndarray:
    """Ground length in metres of one pixel row step and one column step, at each polygon.

    Projected CRS: the steps' lengths times the unit ``factor``. Geographic:
    measured in the local UTM zone (as :func:`metric_geometries`) at a point on
    each polygon's surface, so non-square pixels of a geographic grid are exact.

    Args:
        gdf: The GeoDataFrame the polygons belong to (its CRS, its UTM zone).
        geoms: ``(n,)`` polygons in that CRS.
        transform: Affine transform of the pixel grid (pixel -> CRS units).
        factor: The CRS unit in metres (from :func:`metric_geometries`).

    Returns:
        ``(n, 2)`` float64: metres per row step, metres per column step.
    """
    import shapely
    from pyproj import Transformer

    col_step = math.hypot(transform.a, transform.d)
    row_step = math.hypot(transform.b, transform.e)
    if not gdf.crs.is_geographic:
        return np.tile([row_step * factor, col_step * factor], (len(geoms), 1))
    tr = Transformer.from_crs(gdf.crs, gdf.estimate_utm_crs(), always_xy=True)
    pts = shapely.get_coordinates(shapely.point_on_surface(geoms))
    x, y = pts[:, 0], pts[:, 1]
    x0, y0 = tr.transform(x, y)
    xc, yc = tr.transform(x + transform.a, y + transform.d)
    xr, yr = tr.transform(x + transform.b, y + transform.e)
    return np.column_stack([np.hypot(xr - x0, yr - y0), np.hypot(xc - x0, yc - y0)])


def areas_m2(geoms: Any, crs: Any) -> np.ndarray:
    """Ground areas of geometries in square metres (see :func:`metric_geometries`).

    Args:
        geoms: A sequence or array of shapely geometries in ``crs``.
        crs: Their CRS.

    Returns:
        ``(n,)`` float64 areas in square metres.
    """
    import geopandas as gpd

    if len(geoms) == 0:
        return np.zeros(0)
    metric, factor = metric_geometries(
        gpd.GeoDataFrame(geometry=gpd.GeoSeries(list(geoms), crs=crs)))
    return np.asarray(metric.area.to_numpy() * factor**2, np.float64)


def polygonal(geom: Any) -> Any:
    """Keep only the polygonal part of a geometry (after ``shapely.make_valid``).

    Args:
        geom: A shapely geometry or ``None``.

    Returns:
        The Polygon or MultiPolygon itself, the union of the polygonal parts
        of a collection, or an empty Polygon when there are none.
    """
    import shapely

    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)


def pixel_to_crs(geom: Any, transform: Any) -> Any:
    """Apply an affine transform to pixel coordinates as GDAL does (``c + a*x + b*y``).

    Args:
        geom: One shapely geometry or an array of them, in pixel coordinates
            (column, row) of the grid of ``transform``.
        transform: The grid's affine transform (pixel -> CRS units).

    Returns:
        The geometry (or array) in CRS units.
    """
    import shapely

    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([c + a * x + b * y, f + d * x + e * y])

    return shapely.transform(geom, fn)
