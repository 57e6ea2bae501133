"""geounet.footprints.split: split touching buildings (marker-controlled watershed).

Footprints come from :mod:`builders` (seeded synthetic pixel masks).
"""

from __future__ import annotations

import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from builders import COLUMNS, GEO, PX_M2, T_GEO, UTM, check_frame, frame, polygons_of
from builders import FOOTPRINT_T as T
from rasterio import features
from shapely import affinity

from geounet.errors import GeounetError, InvalidOptionError, MissingCRSError
from geounet.footprints import split_touching
from geounet.geometry import metric_geometries


def dumbbell(shape=(40, 70), top=10, left=5, side=20, neck=4, gap=8):
    """Two ``side`` px squares joined by a ``neck`` px wide, ``gap`` px long bar."""
    m = np.zeros(shape, bool)
    m[top:top + side, left:left + side] = True
    l2 = left + side + gap
    m[top:top + side, l2:l2 + side] = True
    mid = top + side // 2 - neck // 2
    m[mid:mid + neck, left + side:l2] = True
    return m


# --------------------------------------------------------------------------- split_touching


def test_split_two_squares_joined_by_a_neck():
    """A dumbbell splits into its two squares, which tile it and keep its attributes."""
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
    """One rectangle is one building: the same geometry object comes back."""
    m = np.zeros((30, 50), bool)
    m[5:25, 5:45] = True                      # 40 x 20 px
    gdf = frame(polygons_of(m))
    out = split_touching(gdf, T)
    check_frame(out, gdf)
    assert len(out) == 1
    assert out.geometry.iloc[0] is gdf.geometry.iloc[0]
    assert out["area_m2"].iloc[0] == gdf["area_m2"].iloc[0]


def test_l_shape_comes_back_unchanged():
    """An L-shaped building is not split."""
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
    """The pieces of a split polygon keep its holes."""
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
    """A square with a hole is one building."""
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
    """Seeded pairs of buildings, joined by necks or not, all split; area is conserved."""
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
    """Splitting works in a geographic CRS with metre-based options."""
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
    pixel = metric_geometries(frame([shapely.box(*(T_GEO * (0, 1)), *(T_GEO * (1, 0)))], crs=GEO))
    pixel_m2 = float(pixel[0].area.iloc[0])
    for area in out["area_m2"]:
        assert area == pytest.approx(400 * pixel_m2, rel=0.1)


def test_small_polygons_are_not_rasterised(monkeypatch):
    """Polygons under min_area_m2 are not examined."""
    import geounet.footprints.split as fp_split

    def boom(*a, **k):
        raise AssertionError("small polygon examined")

    monkeypatch.setattr(fp_split, "split_polygon", boom)
    m = np.zeros((10, 10), bool)
    m[2:6, 2:6] = True                         # 4 m2 < 2 * pi * 1 m2
    gdf = frame(polygons_of(m))
    out = split_touching(gdf, T)
    assert out.geometry.iloc[0] is gdf.geometry.iloc[0]


def test_split_min_separation_merges_close_markers():
    """A large min_separation_m or h_m keeps the dumbbell whole."""
    gdf = frame(polygons_of(dumbbell()))
    assert len(split_touching(gdf, T, min_separation_m=20.0)) == 1
    assert len(split_touching(gdf, T, h_m=6.0)) == 1   # squares' dynamic is about 4 m


def test_split_empty_and_bad_arguments():
    """An empty frame comes back empty; bad options, transform and CRS raise."""
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



# --------------------------------------------------------------------------- package


def test_importing_the_module_is_cheap():
    """Importing geounet.footprints imports none of the heavy libraries."""
    code = ("import sys, geounet.footprints; "
            "print(sorted(m for m in ('skimage', 'buildingregulariser', 'scipy.ndimage') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_bad_arguments_raise_invalid_option_errors():
    """Bad numbers, transforms and non-frames raise InvalidOptionError (a ValueError)."""
    gdf = frame(polygons_of(dumbbell()))
    for call in (lambda: split_touching(gdf, T, h_m=0),
                 lambda: split_touching(gdf, T, min_piece_px="x"),
                 lambda: split_touching(gdf, Affine(0, 0, 0, 0, 0, 0)),
                 lambda: split_touching(gdf.drop(columns="geometry"), T)):
        with pytest.raises(InvalidOptionError) as info:
            call()
        assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidOptionError, match=r"split_touching\(\) got a DataFrame"):
        split_touching(gdf.drop(columns="geometry"), T)
