"""geounet.footprints.holes: fill small holes.

Footprints come from :mod:`builders` (seeded synthetic pixel masks).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from builders import GEO, T_GEO, check_frame, frame, polygons_of
from builders import FOOTPRINT_T as T
from shapely import affinity

from geounet.errors import GeounetError
from geounet.footprints import fill_holes
from geounet.geometry import metric_geometries


def _holey(transform=T):
    """A 40 x 40 px square with a 4 px and a 100 px hole."""
    m = np.zeros((50, 50), bool)
    m[5:45, 5:45] = True
    m[10:12, 10:12] = False                   # 4 px hole
    m[25:35, 25:35] = False                   # 100 px hole
    return polygons_of(m, transform)[0]


def test_fill_small_holes_only():
    """Only holes under the limit are filled; the kept ring and the exterior are exact."""
    gdf = frame([_holey()])
    out = fill_holes(gdf, max_hole_area_m2=5.0)   # holes: 1 m2 and 25 m2
    check_frame(out, gdf)
    (geom,) = out.geometry
    assert len(geom.interiors) == 1
    assert shapely.Polygon(geom.interiors[0]).area == pytest.approx(25.0)
    assert out["area_m2"].iloc[0] == pytest.approx(400 - 25)
    assert geom.exterior.equals(gdf.geometry.iloc[0].exterior)


def test_fill_holes_limits():
    """0 and the exact hole area keep every hole, inf fills all, bad limits raise."""
    gdf = frame([_holey()])
    assert fill_holes(gdf, 0).geometry.iloc[0] is gdf.geometry.iloc[0]
    assert fill_holes(gdf, 1.0).geometry.iloc[0] is gdf.geometry.iloc[0]   # strictly below
    out = fill_holes(gdf, float("inf"))
    assert len(out.geometry.iloc[0].interiors) == 0
    assert out["area_m2"].iloc[0] == pytest.approx(400)
    for bad in (-1, float("nan"), "x"):
        with pytest.raises(GeounetError, match="max_hole_area_m2"):
            fill_holes(gdf, bad)


def test_fill_holes_multipolygon():
    """Each part of a MultiPolygon loses its small holes."""
    a = _holey()
    b = affinity.translate(a, 30, 0)
    gdf = frame([shapely.MultiPolygon([a, b]), a])
    out = fill_holes(gdf, 5.0)
    check_frame(out, gdf)
    assert out.geom_type.iloc[0] == "MultiPolygon"
    assert [len(p.interiors) for p in out.geometry.iloc[0].geoms] == [1, 1]
    assert out["area_m2"].iloc[0] == pytest.approx(2 * 375)


def test_fill_holes_geographic_crs():
    """Hole areas of a geographic CRS are measured in the local UTM zone."""
    gdf = frame([_holey(T_GEO)], crs=GEO)
    metric, _ = metric_geometries(gdf)
    holes = sorted(shapely.Polygon(r).area for r in metric.iloc[0].interiors)
    out = fill_holes(gdf, (holes[0] + holes[1]) / 2)
    check_frame(out, gdf)
    assert out.crs == GEO
    (geom,) = out.geometry
    assert len(geom.interiors) == 1
    assert out["area_m2"].iloc[0] > gdf["area_m2"].iloc[0]

