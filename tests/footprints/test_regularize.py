"""geounet.footprints.regularization: right-angled footprints (buildingregulariser + tidy-up).

Footprints come from :mod:`builders` (seeded synthetic pixel masks).
"""

from __future__ import annotations

import logging
import math
import sys

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from builders import COLUMNS, GEO, T_GEO, UTM, check_frame, frame, polygons_of
from builders import FOOTPRINT_T as T
from rasterio import features
from shapely import affinity

from geounet.errors import GeounetError, InvalidOptionError, MissingDependencyError
from geounet.footprints import regularize
from geounet.footprints.regularization import regularize_with_count


def _angles(poly):
    """Interior angles of the exterior ring, degrees."""
    c = np.asarray(poly.exterior.coords)[:-1]
    out = []
    for i in range(len(c)):
        a, b = c[i - 1] - c[i], c[(i + 1) % len(c)] - c[i]
        out.append(math.degrees(math.acos(np.clip(a @ b / np.hypot(*a) / np.hypot(*b), -1, 1))))
    return np.array(out)


def _orientation(poly):
    """Direction of the longest edge, degrees in [0, 90)."""
    c = np.asarray(poly.exterior.coords)
    d = np.diff(c, axis=0)
    i = np.hypot(d[:, 0], d[:, 1]).argmax()
    return math.degrees(math.atan2(d[i, 1], d[i, 0])) % 90


def _jagged(angle=20.0, w=30.0, h=15.0, transform=T, crs=UTM):
    """A rotated rectangle rasterised on the grid and vectorised: pixel staircase edges."""
    if crs == UTM:
        cx, cy = transform * (50, 50)
        true = affinity.rotate(shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), angle)
    else:  # draw it in UTM, take it to the geographic grid
        utm = gpd.GeoSeries([shapely.Point(transform * (50, 50))], crs=crs).estimate_utm_crs()
        c = gpd.GeoSeries([shapely.Point(transform * (50, 50))], crs=crs).to_crs(utm).iloc[0]
        box = shapely.box(c.x - w / 2, c.y - h / 2, c.x + w / 2, c.y + h / 2)
        true = gpd.GeoSeries([affinity.rotate(box, angle)], crs=utm).to_crs(crs).iloc[0]
    mask = features.rasterize([(true, 1)], out_shape=(100, 100), transform=transform,
                              dtype="uint8") > 0
    (geom,) = polygons_of(mask, transform)
    return frame([geom], crs=crs), true


def test_regularize_jagged_rotated_rectangle():
    """A pixel staircase becomes a right-angled rectangle in its direction."""
    gdf, true = _jagged()
    raw = gdf.geometry.iloc[0]
    assert len(raw.exterior.coords) > 40                    # a staircase
    out, n_fallback = regularize_with_count(gdf)
    check_frame(out, gdf)
    assert n_fallback == 0
    (geom,) = out.geometry
    assert geom.geom_type == "Polygon"
    assert len(geom.exterior.coords) - 1 in (4, 5)
    assert np.abs(_angles(geom) - 90).max() < 3
    assert abs(_orientation(geom) - 20) < 3
    assert geom.area == pytest.approx(true.area, rel=0.1)
    assert out["area_m2"].iloc[0] == pytest.approx(geom.area)
    assert out["score"].iloc[0] == gdf["score"].iloc[0]


def test_regularize_seeded_rectangles_and_l_shapes():
    """Seeded rotated rectangles and L-shapes get right angles and a high IoU."""
    rng = np.random.default_rng(0)
    shapes = []
    for k in range(12):
        cx, cy = T * (50 + 100 * (k % 4), 50 + 100 * (k // 4))
        w, h = rng.uniform(10, 30, 2)
        p = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if k % 2:
            p = p.difference(shapely.box(cx, cy, cx + w, cy + h))   # an L
        shapes.append(affinity.rotate(p, rng.uniform(0, 90)))
    labels = features.rasterize([(p, i + 1) for i, p in enumerate(shapes)], out_shape=(300, 400),
                                transform=T, dtype="int32")
    found = {int(v): shapely.geometry.shape(g)
             for g, v in features.shapes(labels, mask=labels > 0, transform=T)}
    gdf = frame([found[i + 1] for i in range(12)])
    out, n_fallback = regularize_with_count(gdf)
    check_frame(out, gdf)
    assert n_fallback <= 1
    for k, (geom, raw, true) in enumerate(zip(out.geometry, gdf.geometry, shapes, strict=True)):
        if geom is raw:
            continue
        assert np.abs(_angles(geom) - 90).max() < 3
        iou = geom.intersection(true).area / geom.union(true).area
        assert iou > 0.9
        assert len(geom.exterior.coords) - 1 <= (6 if k % 2 else 5) + 2


def test_regularize_45_degree_edges():
    """A rectangle with a 45-degree chamfered corner keeps it only with allow_45."""
    cx, cy = T * (50, 50)
    true = shapely.box(cx - 15, cy - 8, cx + 15, cy + 8).difference(
        shapely.Polygon([(cx + 8, cy + 8), (cx + 15, cy + 8), (cx + 15, cy + 1)]))
    true = affinity.rotate(true, 20, origin=(cx, cy))
    mask = features.rasterize([(true, 1)], out_shape=(100, 100), transform=T, dtype="uint8") > 0
    gdf = frame(polygons_of(mask))
    for allow_45, want in ((False, {0, 90}), (True, {0, 45, 90})):
        out, n_fallback = regularize_with_count(gdf, allow_45=allow_45)
        assert n_fallback == 0
        (geom,) = out.geometry
        d = np.diff(np.asarray(geom.exterior.coords), axis=0)
        rel = (np.degrees(np.arctan2(d[:, 1], d[:, 0])) - 20) % 90
        snapped = {int(45 * round(a / 45)) % 90 if a < 87 else 0 for a in rel}
        assert np.abs(rel - 45 * np.round(rel / 45)).max() < 3
        assert snapped <= want
        if allow_45:
            assert 45 in snapped and len(d) == 5
            assert geom.intersection(true).area / geom.union(true).area > 0.95


def test_regularize_falls_back_beyond_area_change():
    """A polygon whose area changes too much keeps its raw geometry."""
    gdf, _ = _jagged()
    out, n_fallback = regularize_with_count(gdf, max_area_change=1e-9)
    assert n_fallback == 1
    assert out.geometry.iloc[0] is gdf.geometry.iloc[0]
    assert out["area_m2"].iloc[0] == gdf["area_m2"].iloc[0]


def test_regularize_falls_back_on_a_distorted_result(monkeypatch, caplog):
    """A distorted library result falls back, and the fallback is logged."""
    import buildingregulariser

    def far_away(gdf, **kwargs):
        assert kwargs["num_cores"] == 1 and kwargs["allow_circles"] is False
        out = gdf.copy()
        out["geometry"] = out.geometry.translate(100.0, 0.0).scale(2.0, 1.0)
        return out

    monkeypatch.setattr(buildingregulariser, "regularize_geodataframe", far_away)
    gdf, _ = _jagged()
    with caplog.at_level(logging.INFO, logger="geounet.footprints"):
        out = regularize(gdf)
    assert out.geometry.iloc[0] is gdf.geometry.iloc[0]
    assert "1 of 1 polygons fell back" in caplog.text


def test_regularize_falls_back_on_low_iou(monkeypatch):
    """A result with a low IoU falls back unless min_iou is 0."""
    import buildingregulariser

    def shifted(gdf, **kwargs):
        out = gdf.copy()
        out["geometry"] = out.geometry.translate(6.0, 0.0)   # same area, IoU about 0.6
        return out

    monkeypatch.setattr(buildingregulariser, "regularize_geodataframe", shifted)
    gdf, _ = _jagged()
    out, n_fallback = regularize_with_count(gdf, max_area_change=float("inf"))
    assert n_fallback == 1 and out.geometry.iloc[0] is gdf.geometry.iloc[0]
    out, n_fallback = regularize_with_count(gdf, max_area_change=float("inf"), min_iou=0.0)
    assert n_fallback == 0 and out.geometry.iloc[0] is not gdf.geometry.iloc[0]


def test_regularize_geographic_crs():
    """A geographic CRS is regularised in the local UTM zone and returned in degrees."""
    gdf, true = _jagged(transform=T_GEO, crs=GEO)
    out, n_fallback = regularize_with_count(gdf)
    check_frame(out, gdf)
    assert n_fallback == 0 and out.crs == GEO
    (geom,) = out.geometry
    assert -84.41 < geom.bounds[0] < geom.bounds[2] < -84.39
    assert len(geom.exterior.coords) - 1 in (4, 5)
    utm = gpd.GeoSeries([geom, true], crs=GEO).to_crs(gdf.estimate_utm_crs())
    assert np.abs(_angles(utm.iloc[0]) - 90).max() < 3
    assert utm.iloc[0].area == pytest.approx(utm.iloc[1].area, rel=0.1)
    assert out["area_m2"].iloc[0] == pytest.approx(utm.iloc[0].area, rel=1e-3)


def test_regularize_crs_in_feet():
    """Tolerances in metres are converted to the CRS unit (US survey feet here)."""
    ft = "EPSG:2240"                                       # NAD83 / Georgia West (ftUS)
    t_ft = Affine(1.64, 0, 2_200_000, 0, -1.64, 1_400_000)  # 0.5 m pixels
    cx, cy = t_ft * (50, 50)
    true = affinity.rotate(shapely.box(cx - 49, cy - 25, cx + 49, cy + 25), 20)
    mask = features.rasterize([(true, 1)], out_shape=(100, 100), transform=t_ft,
                              dtype="uint8") > 0
    gdf = frame(polygons_of(mask, t_ft), crs=ft)
    out, n_fallback = regularize_with_count(gdf)
    check_frame(out, gdf)
    assert n_fallback == 0
    assert len(out.geometry.iloc[0].exterior.coords) - 1 in (4, 5)
    assert out["area_m2"].iloc[0] == pytest.approx(true.area * 0.3048006**2, rel=0.1)


def test_regularize_empty_and_bad_arguments():
    """An empty frame comes back empty; bad options raise naming the option."""
    empty = frame([])
    out = regularize(empty)
    assert out.empty and list(out.columns) == COLUMNS and out.crs == UTM
    gdf, _ = _jagged()
    for kwargs, name in [({"tolerance_m": 0}, "tolerance_m"), ({"tolerance_m": -1}, "tolerance_m"),
                         ({"max_area_change": -0.1}, "max_area_change"),
                         ({"min_iou": 1.5}, "min_iou"),
                         ({"parallel_threshold_m": 0}, "parallel_threshold_m")]:
        with pytest.raises(GeounetError, match=name):
            regularize(gdf, **kwargs)



def test_regularize_error_classes(monkeypatch):
    """Bad options raise InvalidOptionError; a missing library MissingDependencyError."""
    gdf, _ = _jagged()
    with pytest.raises(InvalidOptionError, match="min_iou"):
        regularize(gdf, min_iou=1.5)
    monkeypatch.setitem(sys.modules, "buildingregulariser", None)   # import raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'geounet\[footprints\]'"):
        regularize(gdf)
    assert regularize(frame([])).empty                              # nothing to regularise
