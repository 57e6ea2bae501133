"""geounet.footprints: split touching buildings, fill holes, regularise.

Footprints are built from seeded synthetic pixel masks with
``rasterio.features.shapes`` (as :mod:`geounet.polygons` vectorises), on a
0.5 m UTM grid or a small geographic grid near Atlanta.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio import features
from shapely import affinity

from geounet.errors import GeounetError, MissingCRSError
from geounet.footprints import _regularize, fill_holes, regularize, split_touching
from geounet.polygons import _metric

UTM = "EPSG:32616"
T = Affine(0.5, 0, 500000, 0, -0.5, 3700000)
PX_M2 = 0.25
# about 0.46 m x 0.55 m pixels near lon -84.4, lat 33.7
GEO = "EPSG:4326"
T_GEO = Affine(5e-6, 0, -84.4, 0, -5e-6, 33.7)
COLUMNS = ["class_id", "class_name", "area_m2", "score", "geometry"]


def frame(geoms, crs=UTM, scores=None) -> gpd.GeoDataFrame:
    """geounet's footprint frame for ``geoms``, with areas measured as geounet does."""
    n = len(geoms)
    gdf = gpd.GeoDataFrame(
        {"class_id": np.ones(n, np.int32), "class_name": ["building"] * n,
         "area_m2": np.zeros(n),
         "score": np.linspace(0.6, 0.9, n) if scores is None else np.asarray(scores, float)},
        geometry=gpd.GeoSeries(list(geoms), crs=crs), crs=crs)
    if n:
        metric, factor = _metric(gdf)
        gdf["area_m2"] = metric.area.to_numpy() * factor**2
    return gdf


def polygons_of(mask, transform=T):
    """The polygons of a boolean mask, from pixel edges."""
    return [shapely.geometry.shape(g) for g, _ in
            features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)]


def dumbbell(shape=(40, 70), top=10, left=5, side=20, neck=4, gap=8):
    """Two ``side`` px squares joined by a ``neck`` px wide, ``gap`` px long bar."""
    m = np.zeros(shape, bool)
    m[top:top + side, left:left + side] = True
    l2 = left + side + gap
    m[top:top + side, l2:l2 + side] = True
    mid = top + side // 2 - neck // 2
    m[mid:mid + neck, left + side:l2] = True
    return m


def check_frame(out, like):
    assert list(out.columns) == list(like.columns)
    assert out.crs == like.crs
    assert list(out.index) == list(range(len(out)))
    assert out["class_id"].dtype == np.int32
    geoms = out.geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    assert set(out.geom_type) <= {"Polygon", "MultiPolygon"}
    metric, factor = _metric(out) if len(out) else (None, 1.0)
    if len(out):
        np.testing.assert_allclose(out["area_m2"], metric.area * factor**2, rtol=1e-6)


# --------------------------------------------------------------------------- split_touching


def test_split_two_squares_joined_by_a_neck():
    gdf = frame(polygons_of(dumbbell()), scores=[0.75])
    assert len(gdf) == 1
    out = split_touching(gdf, T)
    check_frame(out, gdf)
    assert len(out) == 2
    assert set(out.geom_type) == {"Polygon"}
    square = 20 * 20 * PX_M2
    for area in out["area_m2"]:
        assert area == pytest.approx(square, rel=0.1)      # plus half of the 4x8 px neck
    assert out["area_m2"].sum() == pytest.approx(gdf["area_m2"].iloc[0], rel=1e-9)
    assert shapely.union_all(out.geometry.to_numpy()).equals(gdf.geometry.iloc[0])
    # pieces do not overlap and carry the parent's attributes
    a, b = out.geometry
    assert a.intersection(b).area == pytest.approx(0.0, abs=1e-9)
    assert (out["class_id"] == 1).all() and (out["class_name"] == "building").all()
    assert (out["score"] == 0.75).all()


def test_single_rectangle_comes_back_unchanged():
    m = np.zeros((30, 50), bool)
    m[5:25, 5:45] = True                      # 40 x 20 px
    gdf = frame(polygons_of(m))
    out = split_touching(gdf, T)
    check_frame(out, gdf)
    assert len(out) == 1
    assert out.geometry.iloc[0] is gdf.geometry.iloc[0]
    assert out["area_m2"].iloc[0] == gdf["area_m2"].iloc[0]


def test_l_shape_comes_back_unchanged():
    m = np.zeros((60, 60), bool)
    m[5:50, 5:20] = True
    m[35:50, 5:50] = True
    gdf = frame(polygons_of(m))
    out = split_touching(gdf, T)
    assert len(out) == 1
    assert shapely.equals_exact(out.geometry.iloc[0], gdf.geometry.iloc[0], tolerance=0)


def test_rotated_rectangles_are_not_split():
    """Pixelated ridges of long rotated buildings make no spurious markers."""
    rng = np.random.default_rng(3)
    shapes = []
    for k in range(16):
        cx, cy = T * (40 + 80 * (k % 4), 40 + 80 * (k // 4))
        w, h = rng.uniform(6, 30), rng.uniform(6, 12)
        box = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        shapes.append(affinity.rotate(box, rng.uniform(0, 90)))
    labels = features.rasterize([(p, i + 1) for i, p in enumerate(shapes)], out_shape=(320, 320),
                                transform=T, dtype="int32")
    gdf = frame([shapely.geometry.shape(g) for g, _ in
                 features.shapes(labels, mask=labels > 0, transform=T)])
    assert len(gdf) == 16
    out = split_touching(gdf, T)
    assert len(out) == 16


def test_holes_are_kept_by_split_pieces():
    m = dumbbell(shape=(40, 70))
    m[15:19, 10:14] = False                   # a 4x4 px hole in the left square
    m[20:26, 43:49] = False                   # a 6x6 px hole in the right square
    gdf = frame(polygons_of(m))
    assert len(gdf.geometry.iloc[0].interiors) == 2
    out = split_touching(gdf, T)
    check_frame(out, gdf)
    assert len(out) == 2
    holes = sorted(shapely.Polygon(r).area for g in out.geometry for r in g.interiors)
    assert holes == pytest.approx([16 * PX_M2, 36 * PX_M2])
    assert out["area_m2"].sum() == pytest.approx(gdf["area_m2"].iloc[0])


def test_square_with_hole_is_unchanged():
    m = np.zeros((30, 30), bool)
    m[5:25, 5:25] = True
    m[12:16, 12:16] = False
    gdf = frame(polygons_of(m))
    out = split_touching(gdf, T)
    assert len(out) == 1
    assert out.geometry.iloc[0] is gdf.geometry.iloc[0]
    assert len(out.geometry.iloc[0].interiors) == 1


def test_multipolygon_parts():
    """Only a part holding two buildings is split; other parts become their own pieces."""
    m = np.zeros((40, 100), bool)
    m[5:25, 80:95] = True                     # a separate 15 x 20 px building
    (square,) = polygons_of(m)
    (pair,) = polygons_of(dumbbell())
    m = np.zeros((40, 100), bool)
    m[5:25, 5:25] = True
    (other,) = polygons_of(m)
    gdf = frame([shapely.MultiPolygon([pair, square]), shapely.MultiPolygon([other, square])])
    out = split_touching(gdf, T)
    check_frame(out, gdf)
    # first row: the pair split in two + the separate building; second: no part has two
    assert len(out) == 4
    assert out.geometry.iloc[3] is gdf.geometry.iloc[1]
    assert out["area_m2"].iloc[:3].sum() == pytest.approx(gdf["area_m2"].iloc[0])
    assert sorted(out["area_m2"].iloc[:3]) == pytest.approx([75, 104, 104], abs=5)


def test_split_seeded_scene_is_valid_and_conserves_area():
    rng = np.random.default_rng(0)
    m = np.zeros((200, 200), bool)
    for r in range(4):
        for c in range(4):
            top, left = 8 + 48 * r, 8 + 48 * c
            side = int(rng.integers(12, 18))   # the smaller one is 5 m or more
            gap = int(rng.integers(2, 8))
            m[top:top + side, left:left + side] = True
            m[top + 2:top + side, left + side + gap:left + 2 * side + gap - 2] = True
            if rng.random() < 0.75:           # a neck narrower than the buildings
                neck = int(rng.integers(2, 5))
                m[top + 4:top + 4 + neck, left + side:left + side + gap] = True
    gdf = frame(polygons_of(m))
    out = split_touching(gdf, T)
    check_frame(out, gdf)
    assert out["area_m2"].sum() == pytest.approx(gdf["area_m2"].sum())
    assert len(out) == 32                     # every pair, joined or not, is two buildings


def test_split_geographic_crs():
    m = dumbbell()
    gdf = frame(polygons_of(m, T_GEO), crs=GEO)
    out = split_touching(gdf, T_GEO)
    check_frame(out, gdf)
    assert len(out) == 2
    assert out.crs == GEO
    minx, miny, maxx, maxy = out.total_bounds
    assert -84.41 < minx < maxx < -84.39 and 33.69 < miny < maxy < 33.71
    assert shapely.union_all(out.geometry.to_numpy()).equals(gdf.geometry.iloc[0])
    # 20 x 20 px of about 0.46 x 0.55 m, plus half the neck
    pixel = _metric(frame([shapely.box(*(T_GEO * (0, 1)), *(T_GEO * (1, 0)))], crs=GEO))
    pixel_m2 = float(pixel[0].area.iloc[0])
    for area in out["area_m2"]:
        assert area == pytest.approx(400 * pixel_m2, rel=0.1)


def test_small_polygons_are_not_rasterised(monkeypatch):
    import geounet.footprints as fp

    def boom(*a, **k):
        raise AssertionError("small polygon examined")

    monkeypatch.setattr(fp, "_split_one", boom)
    m = np.zeros((10, 10), bool)
    m[2:6, 2:6] = True                         # 4 m2 < 2 * pi * 1 m2
    gdf = frame(polygons_of(m))
    out = split_touching(gdf, T)
    assert out.geometry.iloc[0] is gdf.geometry.iloc[0]


def test_split_min_separation_merges_close_markers():
    gdf = frame(polygons_of(dumbbell()))
    assert len(split_touching(gdf, T, min_separation_m=20.0)) == 1
    assert len(split_touching(gdf, T, h_m=6.0)) == 1   # squares' dynamic is about 4 m


def test_split_empty_and_bad_arguments():
    empty = frame([])
    out = split_touching(empty, T)
    assert out.empty and list(out.columns) == COLUMNS and out.crs == UTM
    gdf = frame(polygons_of(dumbbell()))
    with pytest.raises(GeounetError, match="h_m"):
        split_touching(gdf, T, h_m=0)
    with pytest.raises(GeounetError, match="min_separation_m"):
        split_touching(gdf, T, min_separation_m=-1)
    with pytest.raises(GeounetError, match="transform"):
        split_touching(gdf, Affine(0, 0, 0, 0, 0, 0))
    with pytest.raises(MissingCRSError):
        split_touching(gpd.GeoDataFrame(gdf.drop(columns="geometry"),
                                        geometry=list(gdf.geometry)), T)


# --------------------------------------------------------------------------- fill_holes


def _holey(transform=T):
    m = np.zeros((50, 50), bool)
    m[5:45, 5:45] = True
    m[10:12, 10:12] = False                   # 4 px hole
    m[25:35, 25:35] = False                   # 100 px hole
    return polygons_of(m, transform)[0]


def test_fill_small_holes_only():
    gdf = frame([_holey()])
    out = fill_holes(gdf, max_hole_area_m2=5.0)   # holes: 1 m2 and 25 m2
    check_frame(out, gdf)
    (geom,) = out.geometry
    assert len(geom.interiors) == 1
    assert shapely.Polygon(geom.interiors[0]).area == pytest.approx(25.0)
    assert out["area_m2"].iloc[0] == pytest.approx(400 - 25)
    assert geom.exterior.equals(gdf.geometry.iloc[0].exterior)


def test_fill_holes_limits():
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
    a = _holey()
    b = affinity.translate(a, 30, 0)
    gdf = frame([shapely.MultiPolygon([a, b]), a])
    out = fill_holes(gdf, 5.0)
    check_frame(out, gdf)
    assert out.geom_type.iloc[0] == "MultiPolygon"
    assert [len(p.interiors) for p in out.geometry.iloc[0].geoms] == [1, 1]
    assert out["area_m2"].iloc[0] == pytest.approx(2 * 375)


def test_fill_holes_geographic_crs():
    gdf = frame([_holey(T_GEO)], crs=GEO)
    metric, _ = _metric(gdf)
    holes = sorted(shapely.Polygon(r).area for r in metric.iloc[0].interiors)
    out = fill_holes(gdf, (holes[0] + holes[1]) / 2)
    check_frame(out, gdf)
    assert out.crs == GEO
    (geom,) = out.geometry
    assert len(geom.interiors) == 1
    assert out["area_m2"].iloc[0] > gdf["area_m2"].iloc[0]


# --------------------------------------------------------------------------- regularize


def _angles(poly):
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
    gdf, true = _jagged()
    raw = gdf.geometry.iloc[0]
    assert len(raw.exterior.coords) > 40                    # a staircase
    out, n_fallback = _regularize(gdf)
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
    out, n_fallback = _regularize(gdf)
    check_frame(out, gdf)
    assert n_fallback <= 1
    for k, (geom, raw, true) in enumerate(zip(out.geometry, gdf.geometry, shapes)):
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
        out, n_fallback = _regularize(gdf, allow_45=allow_45)
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
    gdf, _ = _jagged()
    out, n_fallback = _regularize(gdf, max_area_change=1e-9)
    assert n_fallback == 1
    assert out.geometry.iloc[0] is gdf.geometry.iloc[0]
    assert out["area_m2"].iloc[0] == gdf["area_m2"].iloc[0]


def test_regularize_falls_back_on_a_distorted_result(monkeypatch, caplog):
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
    import buildingregulariser

    def shifted(gdf, **kwargs):
        out = gdf.copy()
        out["geometry"] = out.geometry.translate(6.0, 0.0)   # same area, IoU about 0.6
        return out

    monkeypatch.setattr(buildingregulariser, "regularize_geodataframe", shifted)
    gdf, _ = _jagged()
    out, n_fallback = _regularize(gdf, max_area_change=float("inf"))
    assert n_fallback == 1 and out.geometry.iloc[0] is gdf.geometry.iloc[0]
    out, n_fallback = _regularize(gdf, max_area_change=float("inf"), min_iou=0.0)
    assert n_fallback == 0 and out.geometry.iloc[0] is not gdf.geometry.iloc[0]


def test_regularize_geographic_crs():
    gdf, true = _jagged(transform=T_GEO, crs=GEO)
    out, n_fallback = _regularize(gdf)
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
    out, n_fallback = _regularize(gdf)
    check_frame(out, gdf)
    assert n_fallback == 0
    assert len(out.geometry.iloc[0].exterior.coords) - 1 in (4, 5)
    assert out["area_m2"].iloc[0] == pytest.approx(true.area * 0.3048006**2, rel=0.1)


def test_regularize_empty_and_bad_arguments():
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


def test_importing_the_module_is_cheap():
    code = ("import sys, geounet.footprints; "
            "print(sorted(m for m in ('skimage', 'buildingregulariser', 'scipy.ndimage') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
