"""A geounet pipeline plugin: shape attributes for every footprint."""

import math

from geounet.hooks import hookimpl


@hookimpl
def geounet_postprocess_footprints(footprints, context):
    """Add ``perimeter_m`` and Polsby-Popper ``compactness`` (4*pi*A/P^2, 1 for a circle)."""
    gdf = footprints.copy()
    metric = gdf.geometry.to_crs(gdf.estimate_utm_crs()) if gdf.crs.is_geographic else gdf.geometry
    factor = gdf.crs.axis_info[0].unit_conversion_factor if not gdf.crs.is_geographic else 1.0
    gdf["perimeter_m"] = metric.length.to_numpy() * factor
    gdf["compactness"] = 4 * math.pi * gdf["area_m2"] / gdf["perimeter_m"] ** 2
    return gdf
